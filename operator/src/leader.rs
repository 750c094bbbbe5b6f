//! Leader election on a `coordination.k8s.io/v1` Lease, so two operator replicas never act
//! at once (kube 5 ships none). Touches the network: it reads and writes one Lease.
//!
//! The decision is a pure function of the Lease and the clock ([`decide`]); writes use the
//! Lease's resourceVersion, so of two replicas racing for an expired Lease exactly one write
//! succeeds and the other gets a conflict. This optimistic read-modify-write is the one
//! place the operator does not use server-side apply: apply would let both racers win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, PostParams};

/// How the Lease is configured.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Lease name.
    pub name: String,
    /// Lease namespace (usually the operator's own).
    pub namespace: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// A holder that has not renewed for this long has lost the Lease.
    pub duration: Duration,
    /// How often the holder renews; well under `duration`.
    pub renew_every: Duration,
}

/// What to do with the Lease as it is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No Lease yet: create it, holding it.
    Create,
    /// We hold it: renew.
    Renew,
    /// Nobody holds it or the holder let it expire: take it over.
    TakeOver,
    /// Somebody else holds it.
    Follow {
        /// The current holder.
        holder: String,
    },
}

/// Decides from the current Lease (None: absent), who we are and the time.
pub fn decide(lease: Option<&Lease>, identity: &str, now: Timestamp) -> Decision {
    let Some(lease) = lease else {
        return Decision::Create;
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.unwrap_or_default();
    if holder == identity {
        return Decision::Renew;
    }
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)));
    let expired = spec
        .renew_time
        .is_none_or(|renewed| renewed.0.checked_add(duration).is_ok_and(|end| end < now));
    if holder.is_empty() || expired {
        Decision::TakeOver
    } else {
        Decision::Follow { holder }
    }
}

/// Why talking to the Lease failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// Reading the Lease failed.
    #[error("failed to get lease {name}: {source}")]
    GetLease {
        /// Lease name.
        name: String,
        /// API error.
        #[source]
        source: kube::Error,
    },
    /// Writing the Lease failed for another reason than losing a race.
    #[error("failed to write lease {name}: {source}")]
    WriteLease {
        /// Lease name.
        name: String,
        /// API error.
        #[source]
        source: kube::Error,
    },
}

/// Acquires, renews and releases the Lease.
#[derive(Clone)]
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
}

impl LeaderElector {
    /// An elector for `config` talking through `client`.
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    /// One election round: returns whether this replica holds the Lease afterwards.
    ///
    /// # Errors
    /// API errors other than a lost race (conflict or already exists).
    pub async fn try_acquire_or_renew(&self) -> Result<bool, LeaderError> {
        let now = Timestamp::now();
        let current = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|source| LeaderError::GetLease {
                name: self.config.name.clone(),
                source,
            })?;
        let duration = i32::try_from(self.config.duration.as_secs()).unwrap_or(i32::MAX);
        let write = match decide(current.as_ref(), &self.config.identity, now) {
            Decision::Follow { holder } => {
                tracing::debug!(%holder, "lease held by another replica");
                return Ok(false);
            }
            Decision::Create => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.config.identity.clone()),
                        lease_duration_seconds: Some(duration),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            decision @ (Decision::Renew | Decision::TakeOver) => {
                let mut lease = current.unwrap_or_default();
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                if decision == Decision::TakeOver {
                    spec.holder_identity = Some(self.config.identity.clone());
                    spec.acquire_time = Some(MicroTime(now));
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                spec.lease_duration_seconds = Some(duration);
                spec.renew_time = Some(MicroTime(now));
                // resourceVersion from the read makes this a compare-and-swap.
                self.api
                    .replace(&self.config.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match write {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.is_conflict() || status.is_already_exists() => {
                Ok(false)
            }
            Err(source) => Err(LeaderError::WriteLease {
                name: self.config.name.clone(),
                source,
            }),
        }
    }

    /// Gives the Lease up on shutdown so a standby replica takes over at once instead of
    /// waiting for it to expire.
    ///
    /// # Errors
    /// API errors other than a lost race.
    pub async fn release(&self) -> Result<(), LeaderError> {
        let current = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|source| LeaderError::GetLease {
                name: self.config.name.clone(),
                source,
            })?;
        let Some(mut lease) = current else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.is_conflict() => Ok(()),
            Err(source) => Err(LeaderError::WriteLease {
                name: self.config.name.clone(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use http::{Method, StatusCode};

    use super::*;
    use crate::fixtures::{Reply, mock_client};

    fn lease(holder: Option<&str>, renewed_at: Option<i64>, duration: i32) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                renew_time: renewed_at.map(|s| MicroTime(Timestamp::from_second(s).expect("ts"))),
                lease_duration_seconds: Some(duration),
                ..LeaseSpec::default()
            }),
        }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).expect("ts")
    }

    fn elector(client: Client) -> LeaderElector {
        LeaderElector::new(
            client,
            LeaseConfig {
                name: "tandem-operator".to_owned(),
                namespace: "ops".to_owned(),
                identity: "me".to_owned(),
                duration: Duration::from_secs(15),
                renew_every: Duration::from_secs(5),
            },
        )
    }

    const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/ops/leases/tandem-operator";

    fn lease_json(holder: &str, renewed: Timestamp, version: &str) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": { "name": "tandem-operator", "namespace": "ops", "resourceVersion": version },
            "spec": { "holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": MicroTime(renewed), "leaseTransitions": 3 }
        })
    }

    #[tokio::test]
    async fn creates_a_missing_lease() {
        let (client, mut api) = mock_client();
        let server = tokio::spawn(async move {
            api.expect(
                Method::GET,
                LEASE,
                Reply::not_found("leases \"tandem-operator\""),
            )
            .await;
            let created = api
                .expect(
                    Method::POST,
                    "/apis/coordination.k8s.io/v1/namespaces/ops/leases",
                    Reply::Echo,
                )
                .await;
            assert_eq!(created.body["spec"]["holderIdentity"], "me");
            assert_eq!(created.body["spec"]["leaseDurationSeconds"], 15);
            assert_eq!(created.body["spec"]["leaseTransitions"], 0);
        });
        assert!(elector(client).try_acquire_or_renew().await.expect("round"));
        server.await.expect("script");
    }

    #[tokio::test]
    async fn follows_a_live_holder_and_loses_a_takeover_race() {
        let (client, mut api) = mock_client();
        let server = tokio::spawn(async move {
            api.expect(
                Method::GET,
                LEASE,
                Reply::Json(StatusCode::OK, lease_json("other", Timestamp::now(), "7")),
            )
            .await;
            let expired = Timestamp::now()
                .checked_sub(SignedDuration::from_secs(60))
                .expect("ts");
            api.expect(
                Method::GET,
                LEASE,
                Reply::Json(StatusCode::OK, lease_json("other", expired, "8")),
            )
            .await;
            let put = api
                .expect(
                    Method::PUT,
                    LEASE,
                    Reply::Json(StatusCode::CONFLICT, serde_json::json!({
                        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": "the object has been modified", "reason": "Conflict", "code": 409
                    })),
                )
                .await;
            assert_eq!(
                put.body["metadata"]["resourceVersion"], "8",
                "compare-and-swap on the version read"
            );
            assert_eq!(put.body["spec"]["holderIdentity"], "me");
            assert_eq!(put.body["spec"]["leaseTransitions"], 4);
        });
        let e = elector(client);
        assert!(!e.try_acquire_or_renew().await.expect("follow"));
        assert!(!e.try_acquire_or_renew().await.expect("lost race"));
        server.await.expect("script");
    }

    #[tokio::test]
    async fn release_hands_the_lease_over() {
        let (client, mut api) = mock_client();
        let server = tokio::spawn(async move {
            api.expect(
                Method::GET,
                LEASE,
                Reply::Json(StatusCode::OK, lease_json("me", Timestamp::now(), "9")),
            )
            .await;
            let put = api.expect(Method::PUT, LEASE, Reply::Echo).await;
            assert!(
                put.body["spec"].get("holderIdentity").is_none(),
                "{}",
                put.body
            );
            assert_eq!(put.body["spec"]["leaseDurationSeconds"], 1);
        });
        elector(client).release().await.expect("released");
        server.await.expect("script");
    }

    #[test]
    fn decisions() {
        assert_eq!(decide(None, "a", at(100)), Decision::Create);
        assert_eq!(
            decide(Some(&lease(Some("a"), Some(90), 15)), "a", at(100)),
            Decision::Renew
        );
        assert_eq!(
            decide(Some(&lease(Some("b"), Some(90), 15)), "a", at(100)),
            Decision::Follow {
                holder: "b".to_owned()
            }
        );
        assert_eq!(
            decide(Some(&lease(Some("b"), Some(80), 15)), "a", at(100)),
            Decision::TakeOver,
            "expired"
        );
        assert_eq!(
            decide(Some(&lease(None, Some(99), 1)), "a", at(100)),
            Decision::TakeOver,
            "released"
        );
        assert_eq!(
            decide(Some(&lease(Some("b"), None, 15)), "a", at(100)),
            Decision::TakeOver,
            "never renewed"
        );
    }
}
