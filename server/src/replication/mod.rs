//! Replication, Redis 7.0 and PSYNC2 compatible: the behaviour that acts on the replication
//! state (`crate::state::replication`). The replicas of this master are served by link
//! tasks ([`master`]) and, for the socket target, one shared transfer ([`fanout`]); the link
//! to our own master is [`replica`], which reads its master's framing with [`framing`] and
//! loads the payload on a thread with [`loader`]. [`pump`] moves the stream from the feed to
//! the backlog and the replicas (and the AOF's buffer to its file); [`cron`] is the replication cron.

pub mod cron;
pub mod failover;
pub mod fanout;
pub mod framing;
pub mod loader;
pub mod master;
pub mod replica;
pub mod role;

use crate::state::Server;

/// Moves the stream accumulated by the feed into the backlog and every replica's buffer,
/// in order. Called after each batch of commands and by the cron, and at a synchronization
/// point before the offset is read, so the offset always covers exactly the bytes delivered.
pub fn pump(srv: &mut Server) {
    crate::aof::writer::flush(srv);
    if std::mem::take(&mut srv.repl.want_getack) && !srv.repl.replicas.is_empty() {
        srv.feed
            .feed_raw(b"*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n");
    }
    let bytes = srv.feed.drain();
    if bytes.is_empty() {
        return;
    }
    if let Some(b) = srv.repl.backlog.as_mut() {
        b.append(&bytes);
    }
    let limit = srv.config.client_output_buffer_limit[1];
    let now = crate::clock::now_ms();
    for l in &srv.repl.replicas {
        l.push(&bytes, limit, now);
    }
}
