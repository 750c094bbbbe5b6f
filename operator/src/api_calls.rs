//! Every Kubernetes API call the operator makes, as RBAC sees it: verb, API group, resource
//! (with subresource) and the namespace it happens in. Pure data, no network.
//!
//! A server-side apply is a `patch` request, but when the object does not exist yet the API
//! server also authorizes it as `create`: every applied kind is listed with both verbs.
//!
//! Two checks keep this list honest: the mock API server of the controller tests
//! (`fixtures`) fails any request that [`declared`] does not cover, and the chart's tests
//! render the RBAC objects and check that they grant every entry (`operator/tests/chart.rs`).

use serde::Serialize;

/// Where a call happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Scope {
    /// In every watched namespace: cluster-wide by default, or the one `--namespace`.
    Watched,
    /// In the operator's own namespace (the leader election Lease).
    Own,
}

/// One kind of request, in RBAC's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ApiCall {
    /// RBAC verb: get, list, watch, create, update, patch, delete.
    pub verb: &'static str,
    /// API group ("" for the core group).
    pub group: &'static str,
    /// Resource, `resource/subresource` for a subresource.
    pub resource: &'static str,
    /// Where the call happens.
    pub scope: Scope,
}

const fn call(
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    scope: Scope,
) -> ApiCall {
    ApiCall {
        verb,
        group,
        resource,
        scope,
    }
}

/// The operator's API calls: the controller's watches (list + watch), server-side applies
/// (patch, plus create for the first apply), the auth Secret read and create, the status
/// apply, events, and the Lease.
pub const API_CALLS: &[ApiCall] = &[
    call("list", "tandem.dev", "redisreplicasets", Scope::Watched),
    call("watch", "tandem.dev", "redisreplicasets", Scope::Watched),
    call(
        "patch",
        "tandem.dev",
        "redisreplicasets/status",
        Scope::Watched,
    ),
    call("list", "apps", "statefulsets", Scope::Watched),
    call("watch", "apps", "statefulsets", Scope::Watched),
    call("patch", "apps", "statefulsets", Scope::Watched),
    call("create", "apps", "statefulsets", Scope::Watched),
    call("list", "", "services", Scope::Watched),
    call("watch", "", "services", Scope::Watched),
    call("patch", "", "services", Scope::Watched),
    call("create", "", "services", Scope::Watched),
    call("list", "", "configmaps", Scope::Watched),
    call("watch", "", "configmaps", Scope::Watched),
    call("patch", "", "configmaps", Scope::Watched),
    call("create", "", "configmaps", Scope::Watched),
    call("get", "", "secrets", Scope::Watched),
    call("list", "", "secrets", Scope::Watched),
    call("watch", "", "secrets", Scope::Watched),
    call("create", "", "secrets", Scope::Watched),
    call("patch", "", "secrets", Scope::Watched),
    call("list", "policy", "poddisruptionbudgets", Scope::Watched),
    call("watch", "policy", "poddisruptionbudgets", Scope::Watched),
    call("patch", "policy", "poddisruptionbudgets", Scope::Watched),
    call("create", "policy", "poddisruptionbudgets", Scope::Watched),
    call("list", "", "pods", Scope::Watched),
    call("watch", "", "pods", Scope::Watched),
    // The data plane moves the role label (`tandem.dev/role`) the Services select on.
    call("patch", "", "pods", Scope::Watched),
    // A rolling update deletes outdated pods itself, the master last (`OnDelete`).
    call("delete", "", "pods", Scope::Watched),
    // kube's Recorder creates an event, then patches it when the same event repeats.
    call("create", "events.k8s.io", "events", Scope::Watched),
    call("patch", "events.k8s.io", "events", Scope::Watched),
    call("get", "coordination.k8s.io", "leases", Scope::Own),
    call("create", "coordination.k8s.io", "leases", Scope::Own),
    call("update", "coordination.k8s.io", "leases", Scope::Own),
];

/// The RBAC attributes of one request: verb, group, resource (with subresource). None for
/// paths that are not resource requests (discovery, for one).
pub fn rbac_attributes(method: &str, path: &str, query: &str) -> Option<(String, String, String)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let rest = match rest {
        ["namespaces", _namespace, rest @ ..] if !rest.is_empty() => rest,
        other => other,
    };
    let (resource, named) = match rest {
        [resource] => ((*resource).to_owned(), false),
        [resource, _name] => ((*resource).to_owned(), true),
        [resource, _name, sub] => (format!("{resource}/{sub}"), true),
        _ => return None,
    };
    let watch = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match (method, named) {
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    };
    Some((verb.to_owned(), group.to_owned(), resource))
}

/// Whether [`API_CALLS`] lists what the request needs (method, path, raw query, and whether
/// it is a server-side apply, which may create the object and so also needs `create`).
pub fn declared(method: &str, path: &str, query: &str, apply: bool) -> bool {
    let listed = |verb: &str, group: &str, resource: &str| {
        API_CALLS
            .iter()
            .any(|c| c.verb == verb && c.group == group && c.resource == resource)
    };
    rbac_attributes(method, path, query).is_some_and(|(verb, group, resource)| {
        listed(&verb, &group, &resource)
            && (!apply || resource.contains('/') || listed("create", &group, &resource))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_paths_map_to_rbac_attributes() {
        let attrs = |m, p, q| rbac_attributes(m, p, q).expect("resource request");
        let a = |v: &str, g: &str, r: &str| (v.to_owned(), g.to_owned(), r.to_owned());
        assert_eq!(
            attrs("GET", "/api/v1/namespaces/ns1/secrets/cache-auth", ""),
            a("get", "", "secrets")
        );
        assert_eq!(
            attrs(
                "GET",
                "/apis/apps/v1/statefulsets",
                "watch=true&timeoutSeconds=290"
            ),
            a("watch", "apps", "statefulsets")
        );
        assert_eq!(
            attrs("GET", "/api/v1/namespaces/db/pods", "labelSelector=x"),
            a("list", "", "pods")
        );
        assert_eq!(
            attrs(
                "PATCH",
                "/apis/tandem.dev/v1alpha1/namespaces/ns1/redisreplicasets/cache/status",
                "fieldManager=tandem-operator&force=true"
            ),
            a("patch", "tandem.dev", "redisreplicasets/status")
        );
        assert_eq!(
            attrs(
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/ops/leases/l",
                ""
            ),
            a("update", "coordination.k8s.io", "leases")
        );
        assert_eq!(
            attrs("POST", "/apis/events.k8s.io/v1/namespaces/ns1/events", ""),
            a("create", "events.k8s.io", "events")
        );
        // A namespace object itself is a cluster-scoped resource named by the path.
        assert_eq!(
            attrs("GET", "/api/v1/namespaces/ns1", ""),
            a("get", "", "namespaces")
        );
        assert_eq!(rbac_attributes("GET", "/version", ""), None);
    }

    #[test]
    fn undeclared_requests_are_caught() {
        assert!(declared(
            "GET",
            "/api/v1/namespaces/ns1/secrets/x",
            "",
            false
        ));
        assert!(!declared(
            "DELETE",
            "/api/v1/namespaces/ns1/secrets/x",
            "",
            false
        ));
        assert!(!declared("GET", "/api/v1/namespaces/ns1/pods/x", "", false));
        assert!(!declared("GET", "/api/v1/nodes", "", false));
        // An apply may create: it needs create as well as patch (not for a subresource).
        assert!(declared(
            "PATCH",
            "/api/v1/namespaces/ns1/services/x",
            "",
            true
        ));
        assert!(declared(
            "PATCH",
            "/apis/events.k8s.io/v1/namespaces/ns1/events/x",
            "",
            false
        ));
        assert!(declared(
            "PATCH",
            "/apis/tandem.dev/v1alpha1/namespaces/ns1/redisreplicasets/cache/status",
            "",
            true
        ));
    }
}
