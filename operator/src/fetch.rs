//! Reconcile step 2 (the resource itself comes from the controller's cache): the
//! password and the renamed commands' names. Touches the network: reads the auth Secret and
//! creates it when absent; reads the auth-conf Secret, where the names are kept.

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, PostParams};

use crate::error::Error;
use crate::renames::{CommandNames, RENAMED_COMMANDS_KEY};
use crate::resources::names;
use crate::resources::secret::generated_auth_secret;
use crate::resources::{PASSWORD_KEY, Password};
use crate::validate::ValidSet;

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
pub async fn auth(client: &Client, set: &ValidSet<'_>) -> Result<Auth, Error> {
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
pub async fn command_names(client: &Client, set: &ValidSet<'_>) -> Result<CommandNames, Error> {
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
