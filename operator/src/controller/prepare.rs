//! Reconcile step prepare: everything the apply step needs. Validates the spec (pure,
//! [`crate::validate`]), reads the password and the renamed commands' secret names, plans
//! the tuning ([`crate::policy`], pure) and builds the desired objects
//! ([`crate::resources`], pure), the StatefulSet at the size the set runs at now.
//!
//! Touches the network: reads the auth Secret and creates it when absent (the one write
//! before the apply step, so a new set's pods and Secret agree on one password); reads the
//! auth-conf Secret, where the names are kept.

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, PostParams};
use tracing::instrument;

use super::context::Context;
use crate::crd::RedisReplicaSet;
use crate::dataplane::engine::DataPlane;
use crate::dataplane::rollout;
use crate::error::Error;
use crate::policy::{BudgetFinding, Plan, memory_budget, plan};
use crate::renames::{CommandNames, RENAMED_COMMANDS_KEY};
use crate::resources::secret::generated_auth_secret;
use crate::resources::{Desired, PASSWORD_KEY, Password, desired, names};
use crate::validate::{ValidSet, validate};

/// What the prepare step hands to the steps after it.
pub struct Prepared<'a> {
    /// The validated spec.
    pub set: ValidSet<'a>,
    /// The tuning before the data plane's sync-loop adjustments.
    pub plan: Plan,
    /// Why the pod's memory limit cannot hold the tuning, if it cannot.
    pub budget: Option<BudgetFinding>,
    /// The password, and whether it was generated now.
    pub auth: Auth,
    /// The secret names of the renamed commands.
    pub commands: CommandNames,
    /// The objects to apply.
    pub objects: Desired,
    /// spec.replicas.
    pub wanted: u32,
    /// The StatefulSet's size: `wanted`, or more while a scale-in waits for the master to
    /// move off a pod it removes.
    pub running: u32,
}

/// Validates, reads the secrets, plans and builds. Replication measurements (the write rate)
/// come from `dataplane`; until it reports, the policy works from the hint alone.
///
/// # Errors
/// An invalid spec, a Secret that cannot be read or created, or stored names that cannot be
/// used.
#[instrument(name = "prepare", skip_all)]
pub async fn prepare<'a>(
    rrs: &'a RedisReplicaSet,
    ctx: &Context,
    dataplane: &DataPlane,
) -> Result<Prepared<'a>, Error> {
    let mut set = validate(rrs, dataplane.observed())?;
    set.default_image.clone_from(&ctx.server_image);
    let auth = auth(&ctx.client, &set).await?;
    let commands = command_names(&ctx.client, &set).await?;
    let plan = plan(&set.policy_input);
    let budget = memory_budget(&set.policy_input, &plan);
    // A scale-in keeps the master's pod until the master was switched over to a pod that
    // stays; after an operator restart the status remembers who the master is.
    let wanted = u32::try_from(rrs.spec.replicas).unwrap_or(0);
    let known_master = dataplane
        .knowledge
        .master
        .clone()
        .or_else(|| rrs.status.as_ref().and_then(|s| s.master.clone()));
    let running = rollout::statefulset_replicas(wanted, known_master.as_deref());
    let objects = desired(&set, &plan, &auth.password, &commands, running);
    Ok(Prepared {
        set,
        plan,
        budget,
        auth,
        commands,
        objects,
        wanted,
        running,
    })
}

/// The password, and whether this call generated it (worth an event).
#[derive(Debug)]
pub struct Auth {
    /// The password every node uses.
    pub password: Password,
    /// The Secret did not exist and was created now.
    pub created: bool,
}

/// Reads the password from the auth Secret, creating the Secret with a random password when
/// it does not exist. An existing Secret is never modified, so a user's password stays.
///
/// # Errors
/// API errors, or a Secret without a usable `password` key.
async fn auth(client: &Client, set: &ValidSet<'_>) -> Result<Auth, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &set.namespace);
    let name = &set.auth_secret_name;
    let existing = api
        .get_opt(name)
        .await
        .map_err(|source| Error::GetAuthSecret {
            name: name.clone(),
            source,
        })?;
    if let Some(secret) = existing {
        return Ok(Auth {
            password: password_of(&secret, name)?,
            created: false,
        });
    }
    let password = Password::generate();
    // Create, not apply: a create that loses a race to another writer fails instead of
    // replacing a password that pods may already use.
    api.create(
        &PostParams::default(),
        &generated_auth_secret(set, &password),
    )
    .await
    .map_err(|source| Error::CreateAuthSecret {
        name: name.clone(),
        source,
    })?;
    Ok(Auth {
        password,
        created: true,
    })
}

/// The secret names of the renamed commands: those kept in the auth-conf Secret, or fresh
/// ones when it does not hold any yet (a new set, or one made before renames existed). The
/// caller writes them back with the auth-conf Secret, so they are generated once per set.
///
/// # Errors
/// API errors, or stored names that cannot be used (never replaced: running pods answer to
/// them).
async fn command_names(client: &Client, set: &ValidSet<'_>) -> Result<CommandNames, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &set.namespace);
    let name = names::auth_conf_secret(&set.name);
    let existing = api
        .get_opt(&name)
        .await
        .map_err(|source| Error::GetAuthConf {
            name: name.clone(),
            source,
        })?;
    let stored = existing
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .and_then(|d| d.get(RENAMED_COMMANDS_KEY));
    match stored {
        None => Ok(CommandNames::generate()),
        Some(bytes) => CommandNames::parse(&String::from_utf8_lossy(&bytes.0))
            .map_err(|source| Error::ReadRenamedCommands { name, source }),
    }
}

fn password_of(secret: &Secret, name: &str) -> Result<Password, Error> {
    let read = |why| Error::ReadAuthSecret {
        name: name.to_owned(),
        why,
    };
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(PASSWORD_KEY))
        .map(|b| b.0.clone())
        .ok_or_else(|| read("it has no key \"password\""))?;
    let text = String::from_utf8(bytes).map_err(|_| read("the password is not UTF-8"))?;
    if text.is_empty() {
        return Err(read("the password is empty"));
    }
    if text.contains(['\n', '\r']) {
        return Err(read("the password contains a line break"));
    }
    Ok(Password::new(text))
}
