//! The operator's own pods, as the operator-restart scenario needs them: finding them,
//! telling when they are ready, and reading their metrics through the API server's pod proxy
//! (`/api/v1/namespaces/NS/pods/NAME:PORT/proxy/metrics`), so no port has to be reachable
//! from the test process.

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use crate::Error;
use crate::cluster::Cluster;
use crate::error::Context;

/// Name of the operator container's metrics port in the chart.
pub const METRICS_PORT_NAME: &str = "metrics";

/// The API of pods in the operator's namespace.
pub fn pods_api(cluster: &Cluster) -> Api<Pod> {
    Api::namespaced(cluster.client.clone(), &cluster.settings.operator_namespace)
}

/// The operator pods that are not being deleted.
///
/// # Errors
/// What the API server says.
pub async fn pods(cluster: &Cluster) -> Result<Vec<Pod>, Error> {
    let selector = &cluster.settings.operator_selector;
    Ok(pods_api(cluster)
        .list(&ListParams::default().labels(selector))
        .await
        .context(|| format!("listing operator pods ({selector})"))?
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect())
}

/// Whether the pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// One sample of the pod's Prometheus text metrics: the value of the unlabelled series
/// `name`, or `None` when the pod does not export it.
///
/// # Errors
/// When the proxy request fails.
pub async fn metric(cluster: &Cluster, pod: &Pod, name: &str) -> Result<Option<f64>, Error> {
    let port = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(METRICS_PORT_NAME))
        .map_or(8080, |p| p.container_port);
    let path = format!(
        "/api/v1/namespaces/{}/pods/{}:{port}/proxy/metrics",
        cluster.settings.operator_namespace,
        pod.name_any()
    );
    let request = http::Request::get(&path)
        .body(Vec::new())
        .map_err(|e| Error::Unreachable(format!("building {path}: {e}")))?;
    let text = cluster
        .client
        .request_text(request)
        .await
        .context(|| format!("GET {path}"))?;
    Ok(sample(&text, name))
}

/// The value of the unlabelled series `name` in Prometheus text format.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.split_once(' ')?;
            (series == name).then(|| value.trim().parse().ok())?
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_found_by_exact_series_name() {
        let text = "# HELP tandem_operator_leader 1 while leader\n# TYPE tandem_operator_leader gauge\ntandem_operator_leader 1\ntandem_operator_reconcile_duration_seconds_count 7\ntandem_operator_reconcile_duration_seconds_sum 0.5\n";
        assert_eq!(sample(text, "tandem_operator_leader"), Some(1.0));
        assert_eq!(
            sample(text, "tandem_operator_reconcile_duration_seconds_count"),
            Some(7.0)
        );
        assert_eq!(
            sample(text, "tandem_operator_reconcile_duration_seconds"),
            None
        );
    }
}
