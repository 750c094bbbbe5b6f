//! Shutting down without losing what replicas have not received yet (Redis 7.0's
//! `shutdown-timeout`): a master with replicas pauses writes, asks them for their offsets
//! and exits once every one has the whole stream, or when `shutdown-timeout` seconds have
//! passed; then it saves as configured. SHUTDOWN waits this way unless NOW is given, and so
//! does SIGTERM (and SIGINT), whose options come from `shutdown-on-sigterm` /
//! `shutdown-on-sigint`. SHUTDOWN ABORT cancels the wait.
//!
//! `shutdown-handover-timeout` (a tandem-server directive, 0 by default) puts one step
//! before that for a signal: a master with replicas keeps serving for up to that many
//! seconds, showing `shutdown_in_milliseconds` in INFO, so that an operator can switch the
//! master role over to a replica (pause, catch up, promote) while the master still answers;
//! once it is a replica, or has no replicas left, or the time is up, the shutdown above
//! begins. A master that exits at once would leave its replicas to a failover after
//! `downAfterSeconds`, and a SIGTERM is how every planned pod departure starts.
//!
//! This matters most as the container's PID 1 under Kubernetes: the kubelet's SIGTERM is
//! the only notice a pod gets, and a process that ignored it (PID 1 has no default action)
//! would be killed at the end of the grace period without its final save.

use crate::persistence::save::{self, ShutdownOptions};
use crate::state::Server;
use crate::state::persistence::SaveError;
use crate::state::persistence::{HandoverWait, ShutdownWait};
use tracing::{info, warn};

/// The pause a waiting shutdown holds.
const PAUSE: (u64, bool) = (u64::MAX, true);

/// Redis's `isReadyToShutdown`: every replica has acknowledged the whole stream.
fn replicas_caught_up(srv: &Server) -> bool {
    let offset = srv.feed.offset;
    srv.repl.replicas.iter().all(|l| l.ack_off.get() >= offset)
}

/// Starts a shutdown: waits for lagging replicas unless NOW or `shutdown-timeout 0` (then
/// `Server::shutdown_wait` is set, and a SHUTDOWN client blocks), else finishes at once.
///
/// # Errors
/// The final save failed (the server keeps running, as Redis's).
pub fn begin(
    srv: &mut Server,
    opts: ShutdownOptions,
    client: Option<u64>,
    now_ms: u64,
) -> Result<(), SaveError> {
    if let Some(w) = srv.shutdown_wait.as_mut() {
        w.clients.extend(client);
        return Ok(());
    }
    let timeout = srv.config.shutdown_timeout;
    if !opts.now && timeout > 0 && !replicas_caught_up(srv) {
        info!("Waiting for replicas before shutting down.");
        srv.shutdown_wait = Some(ShutdownWait {
            opts,
            deadline_ms: now_ms.saturating_add(timeout * 1000),
            clients: client.into_iter().collect(),
        });
        srv.pause = Some(PAUSE);
        srv.repl.want_getack = true;
        return Ok(());
    }
    finish(srv, opts)
}

/// A signal's shutdown: with `shutdown-handover-timeout` set, a master with replicas first
/// waits for the master role to move away ([`complete`] begins the shutdown once it has);
/// otherwise (and for a second signal during that wait) [`begin`] at once.
///
/// # Errors
/// The final save failed (the server keeps running, as Redis's).
pub fn on_signal(srv: &mut Server, opts: ShutdownOptions, now_ms: u64) -> Result<(), SaveError> {
    let handover = srv.config.shutdown_handover_timeout;
    if srv.shutdown_handover.is_none()
        && srv.shutdown_wait.is_none()
        && !opts.now
        && handover > 0
        && !srv.repl.is_replica()
        && !srv.repl.replicas.is_empty()
    {
        info!("Waiting up to {handover} seconds for a replica to take over before shutting down.");
        srv.shutdown_handover = Some(HandoverWait {
            opts,
            deadline_ms: now_ms.saturating_add(handover * 1000),
        });
        return Ok(());
    }
    srv.shutdown_handover = None;
    begin(srv, opts, None, now_ms)
}

/// Whether a shutdown was asked for and has not finished or been aborted.
pub fn in_progress(srv: &Server) -> bool {
    srv.shutdown_wait.is_some() || srv.shutdown_handover.is_some()
}

/// Milliseconds until the server shuts down at the latest (INFO's
/// `shutdown_in_milliseconds`): the replicas' wait, or the handover wait followed by it.
pub fn remaining_ms(srv: &Server, now_ms: u64) -> Option<u64> {
    let deadline = match (&srv.shutdown_wait, &srv.shutdown_handover) {
        (Some(w), _) => w.deadline_ms,
        (None, Some(h)) => h
            .deadline_ms
            .saturating_add(srv.config.shutdown_timeout * 1000),
        (None, None) => return None,
    };
    Some(deadline.saturating_sub(now_ms))
}

/// Whether a waiting shutdown can finish now: the replicas caught up or the time is out.
pub fn due(srv: &Server, now_ms: u64) -> bool {
    srv.shutdown_wait
        .as_ref()
        .is_some_and(|w| now_ms >= w.deadline_ms || replicas_caught_up(srv))
}

/// Ends a waiting shutdown that is due (the cron's and a woken SHUTDOWN's step). A failed
/// save cancels it: writes resume and the blocked SHUTDOWN clients get their error.
pub fn complete(srv: &mut Server, now_ms: u64) -> Result<(), SaveError> {
    if let Some(h) = &srv.shutdown_handover
        && (now_ms >= h.deadline_ms || srv.repl.is_replica() || srv.repl.replicas.is_empty())
    {
        let opts = h.opts;
        if srv.repl.is_replica() {
            info!("The master role moved to a replica: shutting down.");
        }
        srv.shutdown_handover = None;
        return begin(srv, opts, None, now_ms);
    }
    if !due(srv, now_ms) {
        return Ok(());
    }
    let Some(w) = srv.shutdown_wait.clone() else {
        return Ok(());
    };
    let offset = srv.feed.offset;
    for l in &srv.repl.replicas {
        let acked = l.ack_off.get();
        if acked < offset {
            warn!(
                "Lagging replica {}:{} reported offset {acked} behind master, lag={}, state={}.",
                l.ip,
                l.port,
                offset - acked,
                l.state.get().name()
            );
        }
    }
    finish(srv, w.opts).inspect_err(|_| abort(srv))
}

/// SHUTDOWN ABORT, or a failed final save: the wait ends, writes resume, and each blocked
/// SHUTDOWN client is re-run to answer its error.
pub fn abort(srv: &mut Server) {
    srv.shutdown_handover = None;
    let Some(w) = srv.shutdown_wait.take() else {
        return;
    };
    if srv.pause == Some(PAUSE) {
        srv.pause = None;
    }
    for id in w.clients {
        crate::blocking::retry(srv, id);
    }
}

/// Saves as asked and signals the accept loop to stop; the process exits.
fn finish(srv: &mut Server, opts: ShutdownOptions) -> Result<(), SaveError> {
    save::prepare_shutdown(srv, opts)?;
    srv.shutdown_wait = None;
    srv.shutdown.notify_one();
    Ok(())
}

/// The options a signal asks for: `shutdown-on-sigterm` / `shutdown-on-sigint` (`default`,
/// or any of `save`, `nosave`, `now`, `force`).
pub fn signal_options(words: &str) -> ShutdownOptions {
    let has = |w: &str| words.split_whitespace().any(|x| x == w);
    ShutdownOptions {
        nosave: has("nosave"),
        save: has("save"),
        now: has("now"),
        force: has("force"),
    }
}
