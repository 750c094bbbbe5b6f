//! What every reconcile shares: the client, the event recorder, metrics, the retry state
//! and each set's data plane, which outlives a reconcile. No network of its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::{Recorder, Reporter};
use kube::{Client, ResourceExt};

use crate::backoff::Backoffs;
use crate::crd::{DEFAULT_IMAGE, RedisReplicaSet, RedisReplicaSetStatus};
use crate::dataplane::engine::DataPlane;
use crate::dataplane::pods::{self, Resolve};
use crate::metrics::Metrics;

/// What every reconcile shares.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Publishes events.
    pub recorder: Recorder,
    /// Operator metrics.
    pub metrics: Arc<Metrics>,
    /// Per-object retry state.
    pub backoffs: Backoffs,
    /// The clock for condition transition times (fixed in tests).
    pub clock: fn() -> Timestamp,
    /// Server image of sets that do not name one.
    pub server_image: String,
    /// From a pod's DNS name to the address dialled (the name itself in a cluster).
    pub resolve: Resolve,
    /// Each set's data plane (what it knows of roles and trust, its full syncs), by `namespace/name`. A
    /// set's reconciles never run concurrently, so its lock is only contended by nothing.
    pub dataplanes: Mutex<HashMap<String, Arc<tokio::sync::Mutex<DataPlane>>>>,
}

impl Context {
    /// A context on `client` with the real clock.
    pub fn new(client: Client, reporter: Reporter, metrics: Arc<Metrics>) -> Self {
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            backoffs: Backoffs::default(),
            clock: Timestamp::now,
            server_image: DEFAULT_IMAGE.to_owned(),
            resolve: pods::dns(),
            dataplanes: Mutex::new(HashMap::new()),
        }
    }

    /// The data plane of the set at `key`, created on first use from what an
    /// earlier operator left in the set's `status` ([`DataPlane::restore`]).
    pub(super) fn dataplane(
        &self,
        key: &str,
        status: Option<&RedisReplicaSetStatus>,
    ) -> Arc<tokio::sync::Mutex<DataPlane>> {
        let mut map = self
            .dataplanes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(key.to_owned())
            .or_insert_with(|| {
                let mut dataplane = DataPlane::new(None, Duration::ZERO);
                if let Some(status) = status {
                    dataplane.restore(status);
                }
                Arc::new(tokio::sync::Mutex::new(dataplane))
            })
            .clone()
    }

    /// Drops the data plane of the set at `key`.
    pub(super) fn forget(&self, key: &str) {
        self.dataplanes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}

/// The key of a set in [`Context::dataplanes`] and [`Backoffs`]: `namespace/name`.
pub(super) fn object_key(rrs: &RedisReplicaSet) -> String {
    format!("{}/{}", rrs.namespace().unwrap_or_default(), rrs.name_any())
}
