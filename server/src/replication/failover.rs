//! FAILOVER: Redis 7.0's coordinated failover from this master to one of its replicas, with
//! no write lost. Writes are paused; once a replica has acknowledged the whole stream (or the
//! one named by TO), this master follows it and sends it `PSYNC <replid> <offset> FAILOVER`,
//! which makes the replica promote itself before answering; the old master then continues
//! as its replica. TIMEOUT aborts (or, with FORCE, fails over to the named replica anyway);
//! FAILOVER ABORT gives the master its role back.
//!
//! The operator does not use this (it drives its own switchover, docs/operations.md); it is
//! here for users and tools that call FAILOVER on a Redis 7.0.

use super::role;
use crate::state::Server;
use crate::state::replication::Failover;
use crate::state::replication::replicas::ReplicaState;
use tracing::info;

/// The pause a failover holds: writes only, until the failover ends.
const PAUSE: (u64, bool) = (u64::MAX, true);

/// FAILOVER [TO host port [FORCE]] [TIMEOUT ms], arguments parsed. Redis's checks and texts.
pub fn start(
    srv: &mut Server,
    target: Option<(String, u16)>,
    timeout_ms: Option<u64>,
    force: bool,
    now_ms: u64,
) -> Result<(), &'static str> {
    if srv.repl.failover.is_some() {
        return Err("ERR FAILOVER already in progress.");
    }
    if srv.repl.is_replica() {
        return Err("ERR FAILOVER is not valid when server is a replica.");
    }
    if srv.repl.replicas.is_empty() {
        return Err("ERR FAILOVER requires connected replicas.");
    }
    if force && (timeout_ms.is_none() || target.is_none()) {
        return Err(
            "ERR FAILOVER with force option requires both a timeout and target HOST and IP.",
        );
    }
    if let Some((host, port)) = &target {
        let Some(r) = srv
            .repl
            .replicas
            .iter()
            .find(|l| l.ip.eq_ignore_ascii_case(host) && l.port == *port)
        else {
            return Err("ERR FAILOVER target HOST and PORT is not a replica.");
        };
        if r.state.get() != ReplicaState::Online {
            return Err("ERR FAILOVER target replica is not online.");
        }
        info!("FAILOVER requested to {host}:{port}.");
    } else {
        info!("FAILOVER requested to any replica.");
    }
    srv.repl.failover = Some(Failover {
        in_progress: false,
        target,
        end_ms: timeout_ms.map(|t| now_ms.saturating_add(t)),
        force,
    });
    srv.pause = Some(PAUSE);
    Ok(())
}

/// The replication cron's step (Redis's `updateFailoverStatus`): timeout, then whether a
/// replica has caught up.
pub fn tick(srv: &mut Server, now_ms: u64) {
    let Some(f) = srv.repl.failover.clone() else {
        return;
    };
    if f.in_progress {
        return;
    }
    if f.end_ms.is_some_and(|end| end <= now_ms) {
        match (&f.target, f.force) {
            (Some((host, port)), true) => {
                info!("FAILOVER to {host}:{port} time out exceeded, failing over.");
                hand_over(srv, host.clone(), *port);
            }
            _ => abort(srv, "Replica never caught up before timeout"),
        }
        return;
    }
    let offset = srv.feed.offset;
    let caught_up = srv
        .repl
        .replicas
        .iter()
        .filter(|l| l.ack_off.get() == offset)
        .find(|l| {
            f.target
                .as_ref()
                .is_none_or(|(h, p)| l.ip.eq_ignore_ascii_case(h) && l.port == *p)
        })
        .map(|l| (l.ip.clone(), l.port));
    if let Some((host, port)) = caught_up {
        info!("Failover target {host}:{port} is synced, failing over.");
        hand_over(srv, host, port);
    }
}

/// Follows the target: the replica link sends PSYNC with FAILOVER while this is in progress.
fn hand_over(srv: &mut Server, host: String, port: u16) {
    if let Some(f) = srv.repl.failover.as_mut() {
        f.in_progress = true;
        f.target = Some((host.clone(), port));
    }
    role::follow(srv, &host, port);
}

/// Whether the PSYNC this replica link sends must carry FAILOVER.
pub fn handing_over(srv: &Server) -> bool {
    srv.repl.failover.as_ref().is_some_and(|f| f.in_progress)
}

/// The target answered PSYNC FAILOVER with +CONTINUE or +FULLRESYNC: the failover is done.
pub fn completed(srv: &mut Server) {
    if handing_over(srv) {
        clear(srv);
    }
}

/// Ends a failover that cannot go on (FAILOVER ABORT, timeout, the target refusing): a
/// master that had started following the target is master again.
pub fn abort(srv: &mut Server, why: &str) {
    let Some(f) = srv.repl.failover.clone() else {
        return;
    };
    match &f.target {
        Some((host, port)) => info!("FAILOVER to {host}:{port} aborted: {why}"),
        None => info!("FAILOVER to any replica aborted: {why}"),
    }
    if f.in_progress {
        role::promote(srv, "failover aborted");
    }
    clear(srv);
}

fn clear(srv: &mut Server) {
    srv.repl.failover = None;
    if srv.pause == Some(PAUSE) {
        srv.pause = None;
    }
}
