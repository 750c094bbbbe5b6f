//! The four Services of a set: headless (a stable DNS name per pod, used for replication),
//! master (what clients write to) and replicas (reads), those two selected by the role
//! label the operator moves on failover, and sentinel (every ready pod's Sentinel-compatible
//! endpoint, for Sentinel-aware clients). Pure: no network.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::{
    ROLE_LABEL, ROLE_MASTER, ROLE_REPLICA, SENTINEL_PORT, SERVER_PORT, child_meta, names,
    selector_labels,
};
use crate::crd::ServiceType;
use crate::validate::ValidSet;

/// Headless, master, replicas and sentinel Services, in that order.
pub fn services(set: &ValidSet<'_>) -> [Service; 4] {
    let service_type = match set.rrs.spec.service_type {
        ServiceType::ClusterIP => "ClusterIP",
        ServiceType::NodePort => "NodePort",
        ServiceType::LoadBalancer => "LoadBalancer",
    };
    let headless = Service {
        metadata: child_meta(set, names::headless_service(&set.name)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            // Replicas must resolve the master while it is still loading or syncing.
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(&set.name)),
            ports: Some(ports()),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    let spec = &set.rrs.spec;
    // Source ranges mean something to a load balancer only (the schema refuses them with
    // another type).
    let source_ranges = (spec.service_type == ServiceType::LoadBalancer
        && !spec.load_balancer_source_ranges.is_empty())
    .then(|| spec.load_balancer_source_ranges.clone());
    let by_role = |object_name: String, role: &str| Service {
        metadata: ObjectMeta {
            annotations: (!spec.service_annotations.is_empty())
                .then(|| spec.service_annotations.clone()),
            ..child_meta(set, object_name)
        },
        spec: Some(ServiceSpec {
            type_: Some(service_type.to_owned()),
            selector: Some(role_selector(&set.name, role)),
            ports: Some(ports()),
            load_balancer_source_ranges: source_ranges.clone(),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    // Inside the cluster only: the addresses it answers with are the pods' DNS names.
    let sentinel = Service {
        metadata: child_meta(set, names::sentinel_service(&set.name)),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector_labels(&set.name)),
            ports: Some(vec![ServicePort {
                name: Some("sentinel".to_owned()),
                port: SENTINEL_PORT,
                target_port: Some(IntOrString::String("sentinel".to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    [
        headless,
        by_role(names::master_service(&set.name), ROLE_MASTER),
        by_role(names::replicas_service(&set.name), ROLE_REPLICA),
        sentinel,
    ]
}

fn role_selector(name: &str, role: &str) -> BTreeMap<String, String> {
    let mut selector = selector_labels(name);
    selector.insert(ROLE_LABEL.to_owned(), role.to_owned());
    selector
}

fn ports() -> Vec<ServicePort> {
    vec![ServicePort {
        name: Some("redis".to_owned()),
        port: SERVER_PORT,
        target_port: Some(IntOrString::String("redis".to_owned())),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Observed;
    use crate::resources::fixtures::rrs;
    use crate::validate::validate;

    #[test]
    fn master_and_replicas_follow_the_role_label() {
        let r = rrs("  replicas: 3\n  datasetSizeHint: 1Gi\n  serviceType: LoadBalancer\n");
        let set = validate(&r, Observed::default()).expect("valid");
        let [headless, master, replicas, sentinel] =
            services(&set).map(|s| serde_json::to_value(s).expect("json"));
        assert_eq!(headless["metadata"]["name"], "cache-headless");
        assert_eq!(headless["spec"]["clusterIP"], "None");
        assert_eq!(headless["spec"]["publishNotReadyAddresses"], true);
        assert!(headless["spec"]["selector"].get(ROLE_LABEL).is_none());
        assert_eq!(master["metadata"]["name"], "cache");
        assert_eq!(master["spec"]["type"], "LoadBalancer");
        assert_eq!(master["spec"]["selector"][ROLE_LABEL], "master");
        assert_eq!(replicas["metadata"]["name"], "cache-replicas");
        assert_eq!(replicas["spec"]["selector"][ROLE_LABEL], "replica");
        assert_eq!(replicas["spec"]["ports"][0]["port"], 6379);
        assert_eq!(sentinel["metadata"]["name"], "cache-sentinel");
        assert_eq!(
            sentinel["spec"]["type"], "ClusterIP",
            "pods' DNS names only resolve inside"
        );
        assert!(
            sentinel["spec"]["selector"].get(ROLE_LABEL).is_none(),
            "every pod answers"
        );
        assert_eq!(sentinel["spec"]["ports"][0]["port"], 26379);
        assert_eq!(sentinel["spec"]["ports"][0]["targetPort"], "sentinel");
    }
}
