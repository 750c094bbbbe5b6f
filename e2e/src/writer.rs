//! A client that keeps writing through the master Service while the master moves: a `SET`
//! and a `WAIT 1` over one redis-cli connection, again and again, each to a key of its own,
//! remembering which writes a replica acknowledged. Those are the writes no departure of
//! the master may lose (invariant 4); the others (refused with `READONLY` or `NOREPLICAS`
//! while the role moves, cut off when the old master disconnects its clients, a `WAIT`
//! that timed out) promised nothing, and are only counted.
//!
//! A new connection per write, as a client that reconnects after an error does: every
//! write goes wherever the master Service routes at that moment.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Error;
use crate::redis_cli::{RedisCli, Reply};
use crate::set::master_host;

/// How long one `WAIT 1` may wait for a replica's acknowledgement, in milliseconds.
pub const WAIT_TIMEOUT_MS: u64 = 2000;

/// Keys read back per `MGET`.
const READ_BACK_CHUNK: usize = 200;

/// The writer running beside a scenario.
pub struct Writer {
    stop: Arc<AtomicBool>,
    acknowledged: watch::Receiver<usize>,
    task: JoinHandle<Written>,
}

/// What the writer did.
#[derive(Clone, Debug, Default)]
pub struct Written {
    /// Key prefix: key `<prefix>:<i>` holds `<prefix>-<i>`.
    pub prefix: String,
    /// Writes tried.
    pub attempts: u64,
    /// Indexes of the writes a replica acknowledged, in order.
    pub acknowledged: Vec<u64>,
    /// Why the other writes were not acknowledged, counted by kind (an error reply's code,
    /// `WAIT 0`, `no reply`).
    pub unacknowledged: BTreeMap<String, u64>,
    /// The last failure in full, for the report.
    pub last_failure: Option<String>,
}

impl Writer {
    /// Starts writing keys `<prefix>:<i>` through the master Service.
    pub fn start(cli: RedisCli, prefix: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (count_tx, acknowledged) = watch::channel(0);
        let task = tokio::spawn(write_until(cli, prefix.to_owned(), stop.clone(), count_tx));
        Self {
            stop,
            acknowledged,
            task,
        }
    }

    /// Writes acknowledged so far.
    pub fn acknowledged(&self) -> usize {
        *self.acknowledged.borrow()
    }

    /// Waits until at least `n` writes were acknowledged.
    ///
    /// # Errors
    /// [`Error::Timeout`] with the count reached.
    pub async fn wait_acknowledged(&mut self, n: usize, timeout: Duration) -> Result<(), Error> {
        let reached = tokio::time::timeout(timeout, self.acknowledged.wait_for(|c| *c >= n))
            .await
            .is_ok_and(|r| r.is_ok());
        if reached {
            return Ok(());
        }
        Err(Error::Timeout {
            what: format!("{n} writes acknowledged by WAIT 1 through the master Service"),
            seconds: timeout.as_secs(),
            last: format!("{} acknowledged", self.acknowledged()),
        })
    }

    /// Stops after the write in progress and returns what was written.
    ///
    /// # Panics
    /// When the writer task panicked.
    pub async fn stop(self) -> Written {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("the writer task")
    }
}

async fn write_until(
    cli: RedisCli,
    prefix: String,
    stop: Arc<AtomicBool>,
    count: watch::Sender<usize>,
) -> Written {
    let mut written = Written {
        prefix,
        ..Written::default()
    };
    let host = master_host();
    for i in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        written.attempts += 1;
        let lines = [
            format!("SET {} {}", written.key(i), written.value(i)),
            format!("WAIT 1 {WAIT_TIMEOUT_MS}"),
        ];
        let outcome = match cli.pipeline(&host, &lines).await {
            Ok(replies) => acknowledgement(&replies),
            Err(e) => Err(("no reply".to_owned(), e.to_string())),
        };
        match outcome {
            Ok(()) => {
                written.acknowledged.push(i);
                count.send_replace(written.acknowledged.len());
            }
            Err((kind, detail)) => {
                *written.unacknowledged.entry(kind).or_default() += 1;
                written.last_failure = Some(detail);
            }
        }
    }
    written
}

/// Whether the replies of `SET` + `WAIT 1` mean a replica acknowledged the write; if not,
/// the kind of failure and its detail.
fn acknowledgement(replies: &[Reply]) -> Result<(), (String, String)> {
    let detail = || format!("{replies:?}");
    match replies {
        [Reply::Text(ok), Reply::Integer(n)] if ok == "OK" && *n >= 1 => Ok(()),
        [Reply::Text(ok), Reply::Integer(_)] if ok == "OK" => Err(("WAIT 0".to_owned(), detail())),
        [Reply::Error(e), ..] | [_, Reply::Error(e)] => Err((
            e.split_whitespace().next().unwrap_or("error").to_owned(),
            detail(),
        )),
        _ => Err(("no reply".to_owned(), detail())),
    }
}

impl Written {
    /// Key of write `i`.
    pub fn key(&self, i: u64) -> String {
        format!("{}:{i}", self.prefix)
    }

    /// Value of write `i`.
    pub fn value(&self, i: u64) -> String {
        format!("{}-{i}", self.prefix)
    }

    /// The acknowledged writes `host` does not hold with their value, read back with `MGET`.
    ///
    /// # Errors
    /// When a read fails or does not answer an array.
    pub async fn missing_on(&self, cli: &RedisCli, host: &str) -> Result<Vec<String>, Error> {
        let mut missing = Vec::new();
        for chunk in self.acknowledged.chunks(READ_BACK_CHUNK) {
            let keys: Vec<String> = chunk.iter().map(|i| self.key(*i)).collect();
            let mut args = vec!["MGET"];
            args.extend(keys.iter().map(String::as_str));
            let values = match cli.command(host, &args).await? {
                Reply::Array(values) if values.len() == chunk.len() => values,
                other => {
                    return Err(Error::Exec {
                        pod: crate::redis_cli::CLIENT_POD.to_owned(),
                        message: format!(
                            "MGET of {} keys on {host} replied {other:?}",
                            chunk.len()
                        ),
                    });
                }
            };
            for (i, value) in chunk.iter().zip(values) {
                if value.as_deref() != Some(self.value(*i).as_str()) {
                    missing.push(format!("{} = {value:?}", self.key(*i)));
                }
            }
        }
        Ok(missing)
    }

    /// One line for the scenario's output.
    pub fn summary(&self) -> String {
        format!(
            "{} writes, {} acknowledged by WAIT 1, not acknowledged: {:?} (last: {:?})",
            self.attempts,
            self.acknowledged.len(),
            self.unacknowledged,
            self.last_failure
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ok_and_a_replica_count_of_one_or_more_is_an_acknowledgement() {
        let ok = || Reply::Text("OK".into());
        assert_eq!(acknowledgement(&[ok(), Reply::Integer(1)]), Ok(()));
        assert_eq!(acknowledgement(&[ok(), Reply::Integer(2)]), Ok(()));
        let kind = |replies: &[Reply]| acknowledgement(replies).expect_err("not acknowledged").0;
        assert_eq!(kind(&[ok(), Reply::Integer(0)]), "WAIT 0");
        assert_eq!(
            kind(&[
                Reply::Error("READONLY You can't write against a read only replica.".into()),
                Reply::Error("ERR WAIT cannot be used with replica instances.".into()),
            ]),
            "READONLY"
        );
        assert_eq!(
            kind(&[
                Reply::Error("NOREPLICAS Not enough good replicas to write.".into()),
                Reply::Integer(1),
            ]),
            "NOREPLICAS"
        );
        assert_eq!(kind(&[ok()]), "no reply");
        assert_eq!(kind(&[]), "no reply");
    }

    #[test]
    fn keys_and_values_carry_the_prefix_and_index() {
        let w = Written {
            prefix: "e2e:w".to_owned(),
            ..Written::default()
        };
        assert_eq!(w.key(7), "e2e:w:7");
        assert_eq!(w.value(7), "e2e:w-7");
    }
}
