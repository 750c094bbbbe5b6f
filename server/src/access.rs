//! The executor's permission check: asks the ACL whether the client's user may run a
//! command (at the top level, queued in MULTI, again at EXEC, or called by a script),
//! records refusals in the ACL LOG, and words them as Redis 7.0 does in each place.

use crate::acl::log::{Context, Reason};
use crate::acl::{Denied, request};
use crate::client::Client;
use crate::cmd::Spec;
use crate::protocol::Args;
use crate::state::Server;

/// Where the command is being checked; each place words the refusal its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Sent by the client, or queued by it inside MULTI.
    Direct,
    /// Run by EXEC: the rules may have changed since it was queued.
    Exec,
    /// Called by a script.
    Script,
}

/// The refusal, as the error line (code included) Redis sends, or `None` when allowed.
pub fn refusal(
    srv: &mut Server,
    client: &Client,
    spec: &Spec,
    args: Args<'_>,
    place: Place,
) -> Option<String> {
    // The master's link is obeyed whatever the rules (Redis gives it no user).
    if client.is_master {
        return None;
    }
    if srv
        .acl
        .get(&client.user)
        .is_some_and(|u| u.is_unrestricted())
    {
        return None;
    }
    let req = request::of(spec, args)?;
    let denied = srv.acl.check(&client.user, &req).err()?;
    let (reason, object) = match denied {
        Denied::Command => (
            Reason::Command,
            crate::acl::universe::UNIVERSE.commands[req.id]
                .full
                .as_bytes()
                .to_vec(),
        ),
        Denied::Key(i) => (Reason::Key, args.get(i).to_vec()),
        Denied::Channel(i) => (Reason::Channel, args.get(i).to_vec()),
    };
    let context = match place {
        Place::Script => Context::Lua,
        Place::Exec => Context::Multi,
        Place::Direct if client.multi.is_some() => Context::Multi,
        Place::Direct => Context::Toplevel,
    };
    let full = crate::acl::universe::UNIVERSE.commands[req.id].full;
    log(srv, client, reason, context, object);
    Some(match (place, denied) {
        (Place::Direct, d) => noperm(d, full),
        (Place::Exec, d) => format!(
            "NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: {}",
            match d {
                Denied::Command => "no permission to execute the command or subcommand",
                Denied::Key(_) => "no permission to touch the specified keys",
                Denied::Channel(_) => {
                    "no permission to access one of the channels used as arguments"
                }
            }
        ),
        (Place::Script, d) => format!(
            "The user executing the script {}",
            match d {
                Denied::Command => "can't run this command or subcommand",
                Denied::Key(_) => {
                    "can't access at least one of the keys mentioned in the command arguments"
                }
                Denied::Channel(_) => "can't publish to the channel mentioned in the command",
            }
        ),
    })
}

/// The NOPERM line for a command refused when sent (the top level, or queued in MULTI).
pub fn noperm(denied: Denied, full: &str) -> String {
    match denied {
        Denied::Command => {
            format!("NOPERM this user has no permissions to run the '{full}' command")
        }
        Denied::Key(_) => {
            "NOPERM this user has no permissions to access one of the keys used as arguments".into()
        }
        Denied::Channel(_) => {
            "NOPERM this user has no permissions to access one of the channels used as arguments"
                .into()
        }
    }
}

/// Records a refusal in the ACL LOG under the client's user.
fn log(srv: &mut Server, client: &Client, reason: Reason, context: Context, object: Vec<u8>) {
    let max_len = crate::acl::log::max_len(&srv.config);
    let client_info = client.shared.info.borrow().line(srv.now_ms);
    srv.acl.log.record(
        reason,
        context,
        object,
        client.user.clone(),
        client_info,
        max_len,
    );
}
