//! Shutting down without losing what replicas have not received yet (Redis 7.0's
//! `shutdown-timeout`): a master with replicas pauses writes, asks them for their offsets
//! and exits once every one has the whole stream, or when `shutdown-timeout` seconds have
//! passed; then it saves as configured. SHUTDOWN waits this way unless NOW is given, and so
//! does SIGTERM (and SIGINT), whose options come from `shutdown-on-sigterm` /
//! `shutdown-on-sigint`. SHUTDOWN ABORT cancels the wait.
//!
//! This matters most as the container's PID 1 under Kubernetes: the kubelet's SIGTERM is
//! the only notice a pod gets, and a process that ignored it (PID 1 has no default action)
//! would be killed at the end of the grace period without its final save.

use crate::persistence::save::{self, ShutdownOptions};
use crate::state::Server;
use crate::state::persistence::SaveError;
use crate::state::persistence::ShutdownWait;
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

/// Whether a waiting shutdown can finish now: the replicas caught up or the time is out.
pub fn due(srv: &Server, now_ms: u64) -> bool {
    srv.shutdown_wait
        .as_ref()
        .is_some_and(|w| now_ms >= w.deadline_ms || replicas_caught_up(srv))
}

/// Ends a waiting shutdown that is due (the cron's and a woken SHUTDOWN's step). A failed
/// save cancels it: writes resume and the blocked SHUTDOWN clients get their error.
pub fn complete(srv: &mut Server, now_ms: u64) -> Result<(), SaveError> {
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
