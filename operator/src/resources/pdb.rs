//! The PodDisruptionBudget of a set: voluntary evictions (node drains) take one pod at a
//! time, so a drain never removes the master and its replicas together. Pure: no network.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::{child_meta, names, selector_labels};
use crate::validate::ValidSet;

/// The PDB: `maxUnavailable: 1` at every size. With one pod, `minAvailable: 1` would block
/// every drain forever; with more, one at a time keeps a synced copy of the data up.
pub fn pdb(set: &ValidSet<'_>) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: child_meta(set, names::pdb(&set.name)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(&set.name)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Observed;
    use crate::resources::fixtures::rrs;
    use crate::validate::validate;

    #[test]
    fn one_pod_at_a_time() {
        let r = rrs("  replicas: 1\n  datasetSizeHint: 1Gi\n");
        let set = validate(&r, Observed::default()).expect("valid");
        let got = serde_json::to_value(pdb(&set)).expect("json");
        assert_eq!(got["apiVersion"], "policy/v1");
        assert_eq!(got["spec"]["maxUnavailable"], 1);
        assert_eq!(
            got["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"],
            "cache"
        );
        assert_eq!(
            got["metadata"]["ownerReferences"][0]["kind"],
            "RedisReplicaSet"
        );
    }
}
