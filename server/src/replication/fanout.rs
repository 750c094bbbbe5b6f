//! One diskless (socket target) transfer shared by every replica waiting when it starts, as
//! Redis feeds all of them from one child: one keyspace snapshot, one RDB stream, one
//! `+FULLRESYNC` offset, a per-replica queue of chunks.
//!
//! - [`maybe_start`] is Redis's `shouldStartChildReplication` + `startBgsaveForReplication`:
//!   with no snapshot running, it starts a transfer for all replicas waiting in
//!   `wait_bgsave` once the oldest waited `repl-diskless-sync-delay` seconds, or at once when
//!   `repl-diskless-sync-max-replicas` are waiting (or diskless sync was turned off).
//! - The driver task steps the producer and appends each chunk to every live replica's
//!   queue. It steps only while every live queue has room ([`QUEUE_CHUNKS`]), so memory is
//!   bounded by the slowest replica still connected; that replica's link task drops it after
//!   `repl-timeout` without write progress, and the others continue.
//! - `Server::abort_transfer` (a method of the state) is Redis's `killRDBChild` for a socket
//!   child (FLUSHALL, SHUTDOWN): the snapshot ends at once and every replica of the transfer
//!   is dropped, to resync later.
//!
//! This module must not write to sockets (the link tasks in `master.rs` do, with the
//! framing), nor decide partial resyncs.

use crate::persistence::save;
use crate::rdb::ChecksumWriter;
use crate::state::Server;
use crate::state::Shared;
use crate::state::replication::replicas::Link;
use crate::state::replication::transfer::{Outcome, QUEUE_CHUNKS, Target, Transfer};
use std::cell::RefCell;
use std::rc::Rc;
use tokio::sync::Notify;
use tracing::{info, warn};

/// Whether waiting socket-target replicas should start a transfer now
/// (`shouldStartChildReplication`): `waiting` replicas, the oldest waiting for `max_idle_ms`.
pub fn should_start(delay_s: u64, max_replicas: u64, waiting: usize, max_idle_ms: u64) -> bool {
    waiting > 0
        && ((max_replicas > 0 && waiting as u64 >= max_replicas) || max_idle_ms >= delay_s * 1000)
}

/// Starts a transfer for every replica waiting for one, when the rules allow it and no
/// snapshot runs. Called when a replica starts waiting and by the replication cron.
pub fn maybe_start(state: &Shared) {
    let mut srv = state.borrow_mut();
    let srv = &mut *srv;
    if srv.persistence.snapshot_busy() || srv.persistence.loading.is_some() {
        return;
    }
    let now = crate::clock::now_ms();
    let waiting: Vec<Rc<Link>> = srv
        .repl
        .replicas
        .iter()
        .filter(|l| l.waits_for_socket() && !l.is_killed())
        .cloned()
        .collect();
    let max_idle = waiting
        .iter()
        .map(|l| now.saturating_sub(l.asked_ms))
        .max()
        .unwrap_or(0);
    let c = &srv.config;
    // With diskless sync turned off meanwhile, the waiting links switch to the disk target.
    if !c.repl_diskless_sync
        || !should_start(
            c.repl_diskless_sync_delay,
            c.repl_diskless_sync_max_replicas,
            waiting.len(),
            max_idle,
        )
    {
        return;
    }
    let transfer = begin(srv, &waiting);
    tokio::task::spawn_local(drive(state.clone(), transfer));
}

/// The snapshot instant: every waiting replica gets the same offset and starts buffering the
/// stream from it.
fn begin(srv: &mut Server, waiting: &[Rc<Link>]) -> Rc<Transfer> {
    srv.persistence.repl_snapshot = true;
    super::pump(srv);
    let offset = srv.feed.offset;
    srv.feed.forget_db();
    info!("Starting BGSAVE for SYNC with target: replicas sockets");
    let aux = save::aux_fields(srv);
    let producer = save::snapshot(srv, &aux);
    info!(
        "Background RDB transfer started by pid {}",
        std::process::id()
    );
    let transfer = Rc::new(Transfer {
        replid: srv.repl.ids.replid.clone(),
        offset,
        mark: crate::state::replication::ids::random_hex40(),
        targets: RefCell::new(Vec::new()),
        producer: RefCell::new(Some(producer)),
        space: Notify::new(),
    });
    for l in waiting {
        let target = Rc::new(Target::new());
        transfer.targets.borrow_mut().push(target.clone());
        l.assign(transfer.clone(), target);
    }
    srv.repl.transfer = Some(transfer.clone());
    transfer
}

/// Steps the producer while every live replica has room, fanning each chunk out.
async fn drive(state: Shared, transfer: Rc<Transfer>) {
    let checksum = state.borrow().config.rdbchecksum;
    let mut body = ChecksumWriter::new(Vec::new(), checksum);
    loop {
        let live = transfer.live();
        if transfer.producer.borrow().is_none() {
            // Aborted.
            return;
        }
        if live.is_empty() {
            warn!("Diskless rdb transfer, last replica dropped, killing fork child.");
            state.borrow_mut().release_transfer(&transfer);
            return;
        }
        if live.iter().any(|t| t.queue.borrow().len() >= QUEUE_CHUNKS) {
            transfer.space.notified().await;
            continue;
        }
        let stepped = {
            let mut srv = state.borrow_mut();
            let mut producer = transfer.producer.borrow_mut();
            let Some(p) = producer.as_mut() else {
                return;
            };
            let mut chunk = Vec::with_capacity(save::STEP_BYTES + 64 * 1024);
            p.step(
                &mut srv.keyspace,
                save::STEP_SLOTS,
                save::STEP_BYTES,
                &mut chunk,
            )
            .map_err(|e| e.to_string())
            .map(|last| {
                body.pass(&chunk);
                (last, chunk)
            })
        };
        let (last, mut out) = match stepped {
            Ok(stepped) => stepped,
            Err(e) => {
                warn!("Background transfer error: {e}");
                state.borrow_mut().release_transfer(&transfer);
                for t in transfer.targets.borrow().iter() {
                    t.end(Outcome::Failed);
                }
                return;
            }
        };
        if last {
            let trailer =
                match std::mem::replace(&mut body, ChecksumWriter::new(Vec::new(), checksum))
                    .finish()
                {
                    Ok(t) => t,
                    Err(e) => {
                        warn!("Background transfer error: {e}");
                        Vec::new()
                    }
                };
            out.extend_from_slice(&trailer);
            out.extend_from_slice(transfer.mark.as_bytes());
        }
        if !out.is_empty() {
            let chunk = Rc::new(out);
            for t in &live {
                t.push(&chunk);
            }
        }
        if last {
            warn!(
                "Diskless rdb transfer, done reading from pipe, {} replicas still up.",
                live.len()
            );
            state.borrow_mut().release_transfer(&transfer);
            info!("Background RDB transfer terminated with success");
            for t in &live {
                t.end(Outcome::Complete);
            }
            return;
        }
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_rules_follow_redis() {
        // Nobody waiting: nothing to start.
        assert!(!should_start(5, 0, 0, 60_000));
        // The delay counts from the oldest waiting replica.
        assert!(!should_start(5, 0, 3, 4_999));
        assert!(should_start(5, 0, 1, 5_000));
        // Enough replicas start it before the delay; 0 disables the count.
        assert!(should_start(60, 2, 2, 0));
        assert!(!should_start(60, 3, 2, 0));
        // A zero delay starts at once.
        assert!(should_start(0, 0, 1, 0));
    }
}
