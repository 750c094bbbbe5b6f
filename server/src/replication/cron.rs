//! The replication cron: PINGs into the stream, output-buffer and backlog upkeep, the
//! diskless transfer's start, and the replica link task's (re)start.

use crate::state::Shared;
use std::time::Duration;
use tracing::info;

/// The replication cron (10 times a second): PINGs to replicas every
/// `repl-ping-replica-period`, the soft output-buffer limit, backlog resizing and
/// `repl-backlog-ttl`, and starting the link task when a master is configured.
pub async fn supervise(state: Shared) {
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        cron(&state);
        super::fanout::maybe_start(&state);
    }
}

/// One tick of the replication cron.
fn cron(state: &Shared) {
    let mut srv = state.borrow_mut();
    let srv = &mut *srv;
    let now = crate::clock::now_ms();
    let size = srv.config.repl_backlog_size;
    if let Some(b) = srv.repl.backlog.as_mut()
        && b.size() as u64 != size.max(16 * 1024)
    {
        b.resize(size);
    }
    // A FAILOVER with a TIMEOUT holds PINGs back while it waits, as Redis's does, so the
    // replicas can reach the offset it waits for.
    let failover_waits = srv
        .repl
        .failover
        .as_ref()
        .is_some_and(|f| f.end_ms.is_some());
    if !srv.repl.is_replica()
        && !failover_waits
        && !srv.repl.replicas.is_empty()
        && now.saturating_sub(srv.repl.last_ping_ms)
            >= srv.config.repl_ping_replica_period.max(1) * 1000
    {
        srv.repl.last_ping_ms = now;
        srv.feed.feed_raw(b"*1\r\n$4\r\nping\r\n");
    }
    super::failover::tick(srv, now);
    super::pump(srv);
    let limit = srv.config.client_output_buffer_limit[1];
    for l in &srv.repl.replicas {
        l.check_limit(l.buffered(), limit, now);
    }
    let ttl = srv.config.repl_backlog_ttl;
    if !srv.repl.is_replica()
        && srv.repl.replicas.is_empty()
        && srv.repl.backlog.is_some()
        && ttl > 0
        && now.saturating_sub(srv.repl.no_replicas_since_ms) >= ttl * 1000
    {
        info!("Replication backlog freed after {ttl} seconds without connected replicas.");
        srv.repl.backlog = None;
        srv.repl.ids.reset();
    }
    // A master restarted from a dump with replication AUX fields keeps that history as
    // replid2, so its replicas can continue partially (Redis's `loadDataFromDisk`).
    if srv.repl.master.is_none()
        && let Some((id, off)) = srv.persistence.loaded_repl.take()
        && off >= 0
    {
        srv.repl.ids.replid2 = id;
        srv.repl.ids.second_offset = off + 1;
        srv.feed.offset = off as u64;
        srv.feed.attach();
        srv.repl.create_backlog(off as u64, size, false);
        srv.repl.no_replicas_since_ms = now;
    }
    if let Some(m) = srv.repl.master.as_mut()
        && m.task.is_none()
    {
        let h = tokio::task::spawn_local(super::replica::run(state.clone()));
        m.task = Some(h.abort_handle());
    }
}
