//! `tandem-server --check-ready [CONFIG_FILE] [--directive value ...]`: whether the node that
//! runs with this configuration should receive clients, for a container's exec readiness
//! probe (the server image has no shell and no redis-cli, so the check is the server's own
//! binary). It reads the same config file the server started with (port, password through
//! its `include`), connects to the loopback, asks `INFO`, and exits 0, or 1 with the reason
//! on stderr.
//!
//! A replica is ready only while it is online: link up, no full sync being received, not
//! loading, and heard from its master within `repl-ping-replica-period` +
//! `min-replicas-max-lag` seconds (the master pings every period, so a longer silence is a
//! link that is failing). A replica short of that would answer `-LOADING` or serve a dataset
//! that is not (yet) its master's; a TCP probe lets clients of the replicas Service reach it
//! anyway. A master is ready unless it is loading.
//!
//! Pure: [`verdict`]. Side effects: [`run`] (one connection, blocking, with timeouts).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::config::Config;

/// How long the probe waits to connect and for each reply: a node that does not answer in
/// this long is not ready (the kubelet's own timeout is longer).
const TIMEOUT: Duration = Duration::from_secs(2);

/// Why a node is not ready, or why it could not be asked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotReady {
    /// The server did not answer as a server would.
    #[error("no answer from 127.0.0.1:{port}: {reason}")]
    Unreachable { port: u16, reason: String },
    /// It answered with an error (a wrong password, for one).
    #[error("INFO refused: {0}")]
    Refused(String),
    /// It is loading its dataset.
    #[error("loading the dataset")]
    Loading,
    /// A replica whose link to its master is down.
    #[error("replica with its master link down")]
    LinkDown,
    /// A replica receiving a full sync.
    #[error("replica in a full sync ({read} of {total} bytes)")]
    Syncing { read: String, total: String },
    /// A replica that has not heard from its master in too long.
    #[error("replica last heard from its master {seconds} s ago (bound {bound} s)")]
    Lagging { seconds: u64, bound: u64 },
}

/// The verdict on an INFO text: `Ok(role)` when ready. `bound` is the longest silence from
/// the master a ready replica may have, in seconds.
///
/// # Errors
/// Why the node is not ready.
pub fn verdict(info: &str, bound: u64) -> Result<&'static str, NotReady> {
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    if field("loading") == Some("1") {
        return Err(NotReady::Loading);
    }
    if field("role") != Some("slave") {
        return Ok("master");
    }
    if field("master_sync_in_progress") == Some("1") {
        return Err(NotReady::Syncing {
            read: field("master_sync_read_bytes").unwrap_or("?").to_owned(),
            total: field("master_sync_total_bytes").unwrap_or("?").to_owned(),
        });
    }
    if field("master_link_status") != Some("up") {
        return Err(NotReady::LinkDown);
    }
    let seconds = field("master_last_io_seconds_ago")
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or(NotReady::LinkDown)?;
    if seconds > bound {
        return Err(NotReady::Lagging { seconds, bound });
    }
    Ok("replica")
}

/// Asks the node configured by `config` and judges its answer.
///
/// # Errors
/// Why the node is not ready.
pub fn run(config: &Config) -> Result<&'static str, NotReady> {
    let port = config.port;
    let unreachable = |e: std::io::Error| NotReady::Unreachable {
        port,
        reason: e.to_string(),
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(unreachable)?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(unreachable)?;
    stream
        .set_write_timeout(Some(TIMEOUT))
        .map_err(unreachable)?;
    let mut out = stream.try_clone().map_err(unreachable)?;
    let mut replies = BufReader::new(stream);
    if let Some(password) = &config.requirepass {
        out.write_all(&command(&["AUTH", password]))
            .map_err(unreachable)?;
        read_reply(&mut replies).map_err(unreachable)??;
    }
    out.write_all(&command(&["INFO", "persistence", "replication"]))
        .map_err(unreachable)?;
    let info = read_reply(&mut replies).map_err(unreachable)??;
    verdict(
        &info,
        config
            .repl_ping_replica_period
            .saturating_add(config.min_replicas_max_lag),
    )
}

/// A command as a RESP array of bulk strings.
fn command(words: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", words.len()).into_bytes();
    for w in words {
        out.extend_from_slice(format!("${}\r\n{w}\r\n", w.len()).as_bytes());
    }
    out
}

/// One reply: a simple string or a bulk string as text, an error as `Err(Refused)`.
fn read_reply(r: &mut impl BufRead) -> std::io::Result<Result<String, NotReady>> {
    let garbled = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not a RESP reply");
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let line = line.trim_end();
    match line.split_at_checked(1) {
        Some(("+", text)) => Ok(Ok(text.to_owned())),
        Some(("-", text)) => Ok(Err(NotReady::Refused(text.to_owned()))),
        Some(("$", len)) => {
            let len: usize = len.parse().map_err(|_| garbled())?;
            let mut body = vec![0; len + 2];
            r.read_exact(&mut body)?;
            body.truncate(len);
            Ok(Ok(String::from_utf8_lossy(&body).into_owned()))
        }
        _ => Err(garbled()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONLINE: &str = "# Persistence\r\nloading:0\r\n# Replication\r\nrole:slave\r\nmaster_host:m\r\nmaster_link_status:up\r\nmaster_last_io_seconds_ago:3\r\nmaster_sync_in_progress:0\r\n";

    #[test]
    fn a_replica_is_ready_only_while_online() {
        assert_eq!(verdict(ONLINE, 20), Ok("replica"));
        assert_eq!(verdict("loading:0\r\nrole:master\r\n", 20), Ok("master"));
        assert_eq!(
            verdict(&ONLINE.replace("loading:0", "loading:1"), 20),
            Err(NotReady::Loading)
        );
        assert_eq!(
            verdict(
                &ONLINE
                    .replace("master_sync_in_progress:0", "master_sync_in_progress:1\r\nmaster_sync_total_bytes:100\r\nmaster_sync_read_bytes:40")
                    .replace("link_status:up", "link_status:down"),
                20
            ),
            Err(NotReady::Syncing {
                read: "40".to_owned(),
                total: "100".to_owned()
            })
        );
        assert_eq!(
            verdict(&ONLINE.replace("link_status:up", "link_status:down"), 20),
            Err(NotReady::LinkDown)
        );
        assert_eq!(
            verdict(&ONLINE.replace("ago:3", "ago:21"), 20),
            Err(NotReady::Lagging {
                seconds: 21,
                bound: 20
            })
        );
    }

    #[test]
    fn replies_are_read_as_resp() {
        let mut r = &b"+OK\r\n$5\r\nab\r\nc\r\n-NOAUTH Authentication required.\r\n"[..];
        assert_eq!(read_reply(&mut r).expect("io"), Ok("OK".to_owned()));
        assert_eq!(read_reply(&mut r).expect("io"), Ok("ab\r\nc".to_owned()));
        assert_eq!(
            read_reply(&mut r).expect("io"),
            Err(NotReady::Refused(
                "NOAUTH Authentication required.".to_owned()
            ))
        );
        assert!(read_reply(&mut r).is_err(), "end of stream");
        assert_eq!(command(&["INFO", "x"]), b"*2\r\n$4\r\nINFO\r\n$1\r\nx\r\n");
    }
}
