//! Waiting with deadlines, never bare sleeps: a watch on one resource
//! ([`kube::runtime::wait::await_condition`]) for API state, and a poll loop for what only a
//! command can observe (a server's `CONFIG GET`, a write through a Service). On timeout both
//! report the last thing they saw.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use kube::runtime::wait::await_condition;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

use crate::Error;

/// Pause between two polls.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Waits until the object `name` exists and `check` accepts it. `check` says what is missing
/// when it rejects, and that reason ends up in the timeout error.
///
/// # Errors
/// [`Error::Timeout`] with the last rejection, or [`Error::Wait`] when the watch fails.
pub async fn resource<K, C>(
    api: &Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    check: C,
) -> Result<K, Error>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    C: Fn(&K) -> Result<(), String>,
{
    let condition = |obj: Option<&K>| obj.is_some_and(|o| check(o).is_ok());
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, condition)).await {
        Ok(Ok(Some(obj))) => Ok(obj),
        Ok(Ok(None)) => Err(Error::Timeout {
            what: what.to_owned(),
            seconds: timeout.as_secs(),
            last: format!("{name} does not exist"),
        }),
        Ok(Err(source)) => Err(Error::Wait {
            what: what.to_owned(),
            source,
        }),
        Err(_) => {
            let last = match api.get_opt(name).await {
                Ok(Some(obj)) => match check(&obj) {
                    Ok(()) => "the condition holds now".to_owned(),
                    Err(why) => why,
                },
                Ok(None) => format!("{name} does not exist"),
                Err(e) => format!("cannot read {name}: {e}"),
            };
            Err(Error::Timeout {
                what: what.to_owned(),
                seconds: timeout.as_secs(),
                last,
            })
        }
    }
}

/// Calls `probe` until it returns `Ok`, at most until `timeout`. `Err` means "not yet" and
/// says why; errors of the probe itself (a refused connection during a failover) are "not
/// yet" too, since the point of waiting is that they pass.
///
/// # Errors
/// [`Error::Timeout`] with the last reason.
pub async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let attempt = tokio::time::timeout_at(deadline, probe()).await;
        let last = match attempt {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(why)) => why,
            Err(_) => "the last attempt did not finish before the deadline".to_owned(),
        };
        if tokio::time::Instant::now() + POLL_INTERVAL >= deadline {
            return Err(Error::Timeout {
                what: what.to_owned(),
                seconds: timeout.as_secs(),
                last,
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
