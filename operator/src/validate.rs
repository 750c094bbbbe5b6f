//! The first thing the reconcile's prepare step does: turn the `RedisReplicaSet` the
//! controller hands in into checked, typed inputs for the builders and the policy, or a
//! message naming what is wrong.
//!
//! The schema already rejects most bad input; this re-checks what the schema cannot
//! (quantities as numbers, cross-field rules) and what an outdated CRD might let through.
//! Pure: no network.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};

use crate::crd::{
    ALLOWED_SERVER_CONFIG, DEFAULT_IMAGE, MAX_REPLICAS, ModeChoice, RedisReplicaSet, SyncMode,
};
use crate::policy::{BufferLimit, Observed, Overrides, PolicyInput};
use crate::quantity::ByteQuantity;

/// A spec that passed validation, with everything the later steps need.
#[derive(Clone, Debug)]
pub struct ValidSet<'a> {
    /// The resource itself.
    pub rrs: &'a RedisReplicaSet,
    /// metadata.name.
    pub name: String,
    /// metadata.namespace.
    pub namespace: String,
    /// Controller reference put on every child object.
    pub owner: OwnerReference,
    /// Inputs of the tuning policy.
    pub policy_input: PolicyInput,
    /// Size of each data volume, when persistence is on.
    pub volume_bytes: Option<u64>,
    /// Name of the Secret holding the password.
    pub auth_secret_name: String,
    /// Server image when `spec.image` is unset: [`DEFAULT_IMAGE`] unless the operator was
    /// started with `--server-image`.
    pub default_image: String,
}

/// Why a spec cannot be acted on; the message names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSpec(pub String);

/// Checks `rrs` and extracts the builders' and the policy's inputs.
///
/// # Errors
/// [`InvalidSpec`] naming the first field that cannot be used.
pub fn validate(rrs: &RedisReplicaSet, observed: Observed) -> Result<ValidSet<'_>, InvalidSpec> {
    let name = rrs.name_any();
    let namespace = rrs
        .namespace()
        .ok_or_else(|| InvalidSpec("metadata.namespace is missing".into()))?;
    let owner = rrs
        .controller_owner_ref(&())
        .ok_or_else(|| InvalidSpec("metadata.uid is missing".into()))?;
    let spec = &rrs.spec;

    let replicas = u32::try_from(spec.replicas)
        .ok()
        .filter(|r| *r >= 1)
        .ok_or_else(|| InvalidSpec(format!("replicas {} must be at least 1", spec.replicas)))?;
    // The schema's maximum, re-checked: an outdated CRD must not turn a typo into a
    // thousand pods, each taking a full sync from the master.
    if replicas > MAX_REPLICAS {
        return Err(InvalidSpec(format!(
            "replicas {replicas} must be at most {MAX_REPLICAS}"
        )));
    }
    let dataset_size_hint = bytes("datasetSizeHint", &spec.dataset_size_hint)?;

    let r = &spec.replication;
    let client_output_buffer_limit = r
        .client_output_buffer_limit
        .as_ref()
        .map(|cob| {
            Ok::<_, InvalidSpec>(BufferLimit {
                hard_bytes: bytes("replication.clientOutputBufferLimit.hard", &cob.hard)?,
                soft_bytes: bytes("replication.clientOutputBufferLimit.soft", &cob.soft)?,
                soft_seconds: u64::from(cob.soft_seconds),
            })
        })
        .transpose()?;
    if let Some(min) = r.min_replicas_to_write
        && min >= replicas
    {
        return Err(InvalidSpec(format!(
            "replication.minReplicasToWrite {min} must be below replicas {replicas}: the master could never accept a write"
        )));
    }
    if let Some(t) = r.repl_timeout_seconds
        && t > MAX_REPL_TIMEOUT_SECONDS
    {
        return Err(InvalidSpec(format!(
            "replication.replTimeoutSeconds {t} must be at most {MAX_REPL_TIMEOUT_SECONDS}"
        )));
    }
    let overrides = Overrides {
        mode: match r.mode {
            ModeChoice::Auto => None,
            ModeChoice::Disk => Some(SyncMode::Disk),
            ModeChoice::Diskless => Some(SyncMode::Diskless),
        },
        repl_timeout_seconds: r.repl_timeout_seconds.map(u64::from),
        diskless_sync_delay_seconds: r.diskless_sync_delay_seconds.map(u64::from),
        client_output_buffer_limit,
        backlog_bytes: r
            .backlog_size
            .as_ref()
            .map(|q| bytes("replication.backlogSize", q))
            .transpose()?,
        min_replicas_to_write: r.min_replicas_to_write,
    };

    for (key, value) in &spec.server_config {
        if !ALLOWED_SERVER_CONFIG.contains(&key.as_str()) {
            return Err(InvalidSpec(format!(
                "serverConfig does not allow {key}: the operator manages replication, ports, paths and auth"
            )));
        }
        // Quotes would unbalance the redis.conf line and stop the server from starting.
        if value.contains(['\n', '\r', '"', '\'', '\\']) {
            return Err(InvalidSpec(format!(
                "serverConfig.{key} must be a single line without quotes or backslashes"
            )));
        }
    }
    let maxmemory = spec
        .server_config
        .get("maxmemory")
        .map(|v| {
            parse_redis_memory(v).ok_or_else(|| {
                InvalidSpec(format!(
                    "serverConfig.maxmemory {v:?} is not a size (use forms like 4gb or 4294967296)"
                ))
            })
        })
        .transpose()?;

    let memory_limit = spec
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .and_then(|limits| limits.get("memory"))
        .map(|q| bytes("resources.limits.memory", &ByteQuantity::new(q.0.clone())))
        .transpose()?;

    let persistence = &spec.persistence;
    let volume_bytes = if persistence.enabled {
        let size = persistence.size.as_ref().ok_or_else(|| {
            InvalidSpec("persistence.size is required when persistence is enabled".into())
        })?;
        Some(bytes("persistence.size", size)?)
    } else {
        None
    };

    let auth_secret_name = spec
        .auth
        .as_ref()
        .map_or_else(|| format!("{name}-auth"), |a| a.secret_name.clone());

    Ok(ValidSet {
        rrs,
        policy_input: PolicyInput {
            dataset_size_hint,
            replicas,
            persistence: persistence.enabled,
            observed,
            memory_limit,
            maxmemory,
            overrides,
        },
        name,
        namespace,
        owner,
        volume_bytes,
        auth_secret_name,
        default_image: DEFAULT_IMAGE.to_owned(),
    })
}

/// The largest size any field may hold: beyond any single server's dataset, memory or disk,
/// and small enough that every value derived from it (repl-timeout at the assumed transfer
/// rate, buffers, probe budgets) stays inside the ranges tandem-server accepts. A bigger
/// value is a typo; taken as is, it would render a config the pods refuse to start with.
pub const MAX_BYTES: u64 = 1 << 50;

fn bytes(field: &str, q: &ByteQuantity) -> Result<u64, InvalidSpec> {
    let n = q
        .bytes()
        .map_err(|e| InvalidSpec(format!("{field}: {e}")))?;
    if n > MAX_BYTES {
        return Err(InvalidSpec(format!(
            "{field}: {q} is above the 1Pi any size may be"
        )));
    }
    Ok(n)
}

/// The schema's maximum of `replication.replTimeoutSeconds` (one week).
const MAX_REPL_TIMEOUT_SECONDS: u32 = 604_800;

/// Parses a size the way redis.conf does: `1k` = 1000, `1kb` = 1024, likewise m/mb and g/gb,
/// case-insensitive; a bare number is bytes.
pub fn parse_redis_memory(text: &str) -> Option<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(split);
    let n: u64 = number.parse().ok()?;
    let multiplier: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(multiplier)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quantity::{GIB, MIB};

    fn rrs(spec_yaml: &str) -> RedisReplicaSet {
        let mut rrs: RedisReplicaSet = serde_yaml::from_str(&format!(
            "apiVersion: tandem.dev/v1alpha1\nkind: RedisReplicaSet\nmetadata: {{name: cache, namespace: ns1, uid: u1}}\nspec:\n{spec_yaml}"
        ))
        .expect("test resource");
        rrs.metadata.generation = Some(1);
        rrs
    }

    #[test]
    fn extracts_policy_inputs() {
        let r = rrs(r#"
  replicas: 3
  datasetSizeHint: 20Gi
  persistence: { enabled: true, size: 30Gi }
  resources: { limits: { memory: 32Gi } }
  serverConfig: { maxmemory: 24gb }
  replication: { mode: Diskless, backlogSize: 512Mi, clientOutputBufferLimit: { hard: 1Gi } }
"#);
        let v = validate(&r, Observed::default()).expect("valid");
        assert_eq!(v.name, "cache");
        assert_eq!(v.namespace, "ns1");
        assert_eq!(v.owner.controller, Some(true));
        assert_eq!(v.auth_secret_name, "cache-auth");
        assert_eq!(v.volume_bytes, Some(30 * GIB));
        let i = &v.policy_input;
        assert_eq!(i.dataset_size_hint, 20 * GIB);
        assert_eq!(i.memory_limit, Some(32 * GIB));
        assert_eq!(i.maxmemory, Some(24 * GIB));
        assert_eq!(i.overrides.mode, Some(SyncMode::Diskless));
        assert_eq!(i.overrides.backlog_bytes, Some(512 * MIB));
        assert_eq!(
            i.overrides.client_output_buffer_limit.map(|b| b.hard_bytes),
            Some(GIB)
        );
    }

    #[test]
    fn names_the_bad_field() {
        let cases = [
            (
                "  replicas: 3\n  datasetSizeHint: 20GB\n",
                "datasetSizeHint: \"20GB\" is not a byte quantity",
            ),
            (
                "  replicas: 2\n  datasetSizeHint: 1Gi\n  replication: { minReplicasToWrite: 2 }\n",
                "replication.minReplicasToWrite 2 must be below replicas 2",
            ),
            (
                "  replicas: 2\n  datasetSizeHint: 1Gi\n  serverConfig: { repl-timeout: '5' }\n",
                "serverConfig does not allow repl-timeout",
            ),
            (
                "  replicas: 2\n  datasetSizeHint: 1Gi\n  serverConfig: { maxmemory: lots }\n",
                "serverConfig.maxmemory \"lots\" is not a size",
            ),
            (
                "  replicas: 2\n  datasetSizeHint: 1Gi\n  serverConfig: { loglevel: 'x\"y' }\n",
                "serverConfig.loglevel must be a single line without quotes",
            ),
            (
                "  replicas: 2\n  datasetSizeHint: 1Gi\n  persistence: { enabled: true }\n",
                "persistence.size is required",
            ),
            (
                "  replicas: 0\n  datasetSizeHint: 1Gi\n",
                "replicas 0 must be at least 1",
            ),
            // Hostile values an outdated or bypassed schema could let through.
            (
                "  replicas: -3\n  datasetSizeHint: 1Gi\n",
                "replicas -3 must be at least 1",
            ),
            (
                "  replicas: 33\n  datasetSizeHint: 1Gi\n",
                "replicas 33 must be at most 32",
            ),
            (
                "  replicas: 2147483647\n  datasetSizeHint: 1Gi\n",
                "replicas 2147483647 must be at most 32",
            ),
            (
                "  replicas: 2\n  datasetSizeHint: 16Ei\n",
                "datasetSizeHint: ",
            ),
            (
                "  replicas: 2\n  datasetSizeHint: 8Ei\n",
                "datasetSizeHint: 8Ei is above the 1Pi any size may be",
            ),
            (
                "  replicas: 2\n  datasetSizeHint: 1Gi\n  replication: { backlogSize: 2Pi }\n",
                "replication.backlogSize: 2Pi is above the 1Pi",
            ),
            (
                "  replicas: 2\n  datasetSizeHint: 1Gi\n  replication: { replTimeoutSeconds: 4294967295 }\n",
                "replication.replTimeoutSeconds 4294967295 must be at most 604800",
            ),
            (
                "  replicas: 2\n  datasetSizeHint: '-1Gi'\n",
                "datasetSizeHint: ",
            ),
            (
                "  replicas: 2\n  datasetSizeHint: \"1Gi\\nrequirepass x\"\n",
                "datasetSizeHint: ",
            ),
            (
                "  replicas: 2\n  datasetSizeHint: 1Gi\n  serverConfig: { loglevel: \"notice\\nrename-command CONFIG x\" }\n",
                "serverConfig.loglevel must be a single line",
            ),
            (
                "  replicas: 2\n  datasetSizeHint: 1Gi\n  serverConfig: { \"loglevel\\nrequirepass\": x }\n",
                "serverConfig does not allow loglevel\nrequirepass",
            ),
            (
                "  replicas: 2\n  datasetSizeHint: 1Gi\n  serverConfig: { rename-command: 'CONFIG x' }\n",
                "serverConfig does not allow rename-command",
            ),
            (
                "  replicas: 2\n  datasetSizeHint: 1Gi\n  serverConfig: { include: /etc/passwd }\n",
                "serverConfig does not allow include",
            ),
        ];
        for (spec, want) in cases {
            let err = validate(&rrs(spec), Observed::default()).expect_err(spec);
            assert!(err.0.starts_with(want), "{spec}: got {err}, want {want}");
        }
    }

    #[test]
    fn redis_memory_units() {
        assert_eq!(parse_redis_memory("100"), Some(100));
        assert_eq!(parse_redis_memory("1k"), Some(1000));
        assert_eq!(parse_redis_memory("1kb"), Some(1024));
        assert_eq!(parse_redis_memory("4GB"), Some(4 * GIB));
        assert_eq!(parse_redis_memory("2mb"), Some(2 * MIB));
        assert_eq!(parse_redis_memory("2xb"), None);
        assert_eq!(parse_redis_memory(""), None);
    }
}
