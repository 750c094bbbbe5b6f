//! Changing role: a replica promoted to master (REPLICAOF NO ONE, PSYNC FAILOVER), a master
//! or replica following a new master (REPLICAOF host port, FAILOVER's last step).

use crate::state::Server;
use crate::state::replication::master_link::MasterLink;
use crate::state::sentinel::{MasterAddr, SwitchMaster};
use tracing::info;

/// Promotes this replica: its history stays valid as replid2, so the other replicas of the
/// old master (and its own) continue with `+CONTINUE <new id>`. `why` ends the log line
/// (`user request from '...'`).
pub fn promote(srv: &mut Server, why: &str) {
    let Some(m) = srv.repl.master.take() else {
        return;
    };
    if let Some(t) = m.task {
        t.abort();
    }
    srv.repl.ids.shift(srv.feed.offset);
    srv.repl.kill_replicas();
    srv.feed.forget_db();
    srv.repl.no_replicas_since_ms = crate::clock::now_ms();
    let old = master_addr(srv);
    srv.config.replicaof = None;
    announce(srv, old);
    if srv.repl.backlog.is_none() {
        srv.repl
            .create_backlog(srv.feed.offset, srv.config.repl_backlog_size, false);
        srv.feed.attach();
    }
    info!(
        "Setting secondary replication ID to {}, valid up to offset: {}. New replication ID is {}",
        srv.repl.ids.replid2, srv.repl.ids.second_offset, srv.repl.ids.replid
    );
    info!("MASTER MODE enabled ({why})");
}

/// Follows `host:port`: from a master, our own history is the cached master (`PSYNC <our
/// replid> <offset+1>`); the link task starts at the next replication cron.
pub fn follow(srv: &mut Server, host: &str, port: u16) {
    let cached = match srv.repl.master.take() {
        Some(old) => {
            if let Some(t) = old.task {
                t.abort();
            }
            old.cached
        }
        None => true,
    };
    srv.repl.master = Some(MasterLink::new(host.to_string(), port, cached));
    let old = master_addr(srv);
    srv.config.replicaof = Some((host.to_string(), port));
    announce(srv, old);
    info!("Connecting to MASTER {host}:{port}");
}

/// The master as this node sees it now.
pub fn master_addr(srv: &Server) -> MasterAddr {
    match &srv.config.replicaof {
        Some((host, port)) => MasterAddr::Remote(host.clone(), *port),
        None => MasterAddr::Own,
    }
}

/// Tells the Sentinel endpoint's subscribers when the view changed.
fn announce(srv: &Server, old: MasterAddr) {
    let new = master_addr(srv);
    if new != old {
        // No subscriber is not an error.
        let _ = srv.sentinel_events.send(SwitchMaster { old, new });
    }
}
