//! The ACL command: users (SETUSER, GETUSER, DELUSER, LIST, USERS, WHOAMI), the ACL file
//! (LOAD, SAVE), categories (CAT), passwords (GENPASS), refusals (LOG) and DRYRUN, with Redis
//! 7.0's replies and error texts. The rules themselves live in `crate::acl`.

use super::{CmdError, CmdResult, Ctx, Spec, container, eq, flags::*, help, int_arg};
use crate::acl::universe::{UNIVERSE, category};
use crate::acl::{Denied, Selector, file, request, selector::has_spaces};
use crate::protocol::Args;

pub static COMMANDS: &[Spec] = &[container(
    "acl",
    -2,
    ADMIN | NOSCRIPT | LOADING | STALE,
    "server",
    acl,
    &[
        ("cat", "acl|cat", -2),
        ("deluser", "acl|deluser", -3),
        ("dryrun", "acl|dryrun", -4),
        ("genpass", "acl|genpass", -2),
        ("getuser", "acl|getuser", 3),
        ("help", "acl|help", 2),
        ("list", "acl|list", 2),
        ("load", "acl|load", 2),
        ("log", "acl|log", -2),
        ("save", "acl|save", 2),
        ("setuser", "acl|setuser", -3),
        ("users", "acl|users", 2),
        ("whoami", "acl|whoami", 2),
    ],
)];

const ACL_HELP: &[&str] = &[
    "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "DELUSER <username> [<username> ...]",
    "    Delete a list of users.",
    "DRYRUN <username> <command> [<arg> ...]",
    "    Returns whether the user can execute the given command without executing the command.",
    "GETUSER <username>",
    "    Get the user's details.",
    "GENPASS [<bits>]",
    "    Generate a secure 256-bit user password. The optional `bits` argument can",
    "    be used to specify a different size.",
    "LIST",
    "    Show users details in config file format.",
    "LOAD",
    "    Reload users from the ACL file.",
    "LOG [<count> | RESET]",
    "    Show the ACL log entries.",
    "SAVE",
    "    Save the current config to the ACL file.",
    "SETUSER <username> <attribute> [<attribute> ...]",
    "    Create or modify a user with the specified attributes.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
    "HELP",
    "    Prints this help.",
];

const NO_ACLFILE: &str = "ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.";

fn acl(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let sub = String::from_utf8_lossy(args.get(1)).to_ascii_lowercase();
    let n = args.len();
    match sub.as_str() {
        "setuser" => setuser(ctx, args),
        "deluser" => deluser(ctx, args),
        "getuser" => getuser(ctx, args.get(2)),
        "list" | "users" => {
            let lines: Vec<Vec<u8>> = ctx
                .srv
                .acl
                .iter()
                .map(|u| {
                    if sub == "users" {
                        u.name.clone()
                    } else {
                        u.config_line()
                    }
                })
                .collect();
            ctx.reply.array(lines.len());
            lines.iter().for_each(|l| ctx.reply.bulk(l));
            Ok(())
        }
        "whoami" => {
            let user = ctx.client.user.clone();
            ctx.reply.bulk(&user);
            Ok(())
        }
        "load" | "save" => aclfile(ctx, sub == "load"),
        "cat" if n == 2 => {
            let names = crate::acl::categories::NAMES;
            ctx.reply.array(names.len());
            names.iter().for_each(|c| ctx.reply.bulk(c.as_bytes()));
            Ok(())
        }
        "cat" if n == 3 => {
            let cat = category(args.get(2)).ok_or_else(|| {
                let name = args.get(2);
                CmdError::msg(format!(
                    "ERR Unknown category '{}'",
                    String::from_utf8_lossy(&name[..name.len().min(128)])
                ))
            })?;
            let names: Vec<&str> = UNIVERSE
                .commands
                .iter()
                .filter(|c| c.categories & cat != 0)
                .map(|c| c.full)
                .collect();
            ctx.reply.array(names.len());
            names.iter().for_each(|c| ctx.reply.bulk(c.as_bytes()));
            Ok(())
        }
        "genpass" if n <= 3 => genpass(ctx, args),
        "log" if n <= 3 => log(ctx, args),
        "dryrun" => dryrun(ctx, args),
        "help" => {
            help(ctx, ACL_HELP);
            Ok(())
        }
        _ => Err(CmdError::msg(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try ACL HELP.",
            String::from_utf8_lossy(args.get(1))
        ))),
    }
}

fn setuser(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let name = args.get(2);
    if has_spaces(name) {
        return Err(CmdError::msg(
            "ERR Usernames can't contain spaces or null characters",
        ));
    }
    let ops: Vec<&[u8]> = args.iter().skip(3).collect();
    ctx.srv.acl.set_user(name, &ops).map_err(CmdError::msg)?;
    disconnect_lost_subscribers(ctx, name);
    ctx.reply.ok();
    Ok(())
}

/// Redis 7.0 disconnects the user's clients subscribed to a channel or pattern its new
/// rules no longer allow (`ACLKillPubsubClientsIfNeeded`).
fn disconnect_lost_subscribers(ctx: &mut Ctx<'_>, name: &[u8]) {
    let Some(user) = ctx.srv.acl.get(name) else {
        return;
    };
    let allowed = |ch: &[u8], pattern: bool| {
        user.selectors
            .iter()
            .any(|s| s.channel_allowed(ch, pattern))
    };
    let mut doomed = Vec::new();
    let own_lost = ctx.client.user == name
        && (ctx.client.channels.iter().any(|c| !allowed(c, false))
            || ctx.client.shard_channels.iter().any(|c| !allowed(c, false))
            || ctx.client.patterns.iter().any(|p| !allowed(p, true)));
    for (id, shared) in &ctx.srv.clients {
        if *id == ctx.client.id || shared.info.borrow().user != name {
            continue;
        }
        let lost = ctx
            .srv
            .pubsub
            .subscriptions_of(*id)
            .any(|(ch, pattern)| !allowed(ch, pattern));
        if lost {
            doomed.push(shared.clone());
        }
    }
    for c in doomed {
        c.killed.set(true);
        c.notify.notify_one();
    }
    if own_lost {
        ctx.client.close_after_reply = true;
    }
}

fn deluser(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.iter().skip(2).any(|n| n == b"default") {
        return Err(CmdError::msg("ERR The 'default' user cannot be removed"));
    }
    let mut deleted = 0;
    for name in args.iter().skip(2) {
        if !ctx.srv.acl.remove(name) {
            continue;
        }
        deleted += 1;
        disconnect(ctx, |user| user == name);
    }
    ctx.reply.int(deleted);
    Ok(())
}

/// Disconnects the clients authenticated as the users `doomed` picks, this one after its
/// reply, as Redis does when it frees a user.
fn disconnect(ctx: &mut Ctx<'_>, doomed: impl Fn(&[u8]) -> bool) {
    for (id, shared) in &ctx.srv.clients {
        if !doomed(&shared.info.borrow().user) {
            continue;
        }
        if *id == ctx.client.id {
            ctx.client.close_after_reply = true;
        } else {
            shared.killed.set(true);
            shared.notify.notify_one();
        }
    }
}

fn getuser(ctx: &mut Ctx<'_>, name: &[u8]) -> CmdResult {
    let Some(user) = ctx.srv.acl.get(name).cloned() else {
        ctx.reply.null();
        return Ok(());
    };
    ctx.reply.map(6);
    ctx.reply.bulk(b"flags");
    let flags = user.flags();
    ctx.reply.set(flags.len());
    flags.iter().for_each(|f| ctx.reply.bulk(f.as_bytes()));
    ctx.reply.bulk(b"passwords");
    ctx.reply.array(user.passwords.len());
    user.passwords
        .iter()
        .for_each(|p| ctx.reply.bulk(p.as_bytes()));
    describe_selector(ctx, &user.selectors[0]);
    ctx.reply.bulk(b"selectors");
    ctx.reply.array(user.selectors.len() - 1);
    for s in &user.selectors[1..] {
        ctx.reply.map(3);
        describe_selector(ctx, s);
    }
    Ok(())
}

fn describe_selector(ctx: &mut Ctx<'_>, s: &Selector) {
    ctx.reply.bulk(b"commands");
    ctx.reply.bulk(s.describe_commands().as_bytes());
    ctx.reply.bulk(b"keys");
    ctx.reply.bulk(&s.describe_keys());
    ctx.reply.bulk(b"channels");
    ctx.reply.bulk(&s.describe_channels());
}

fn aclfile(ctx: &mut Ctx<'_>, load: bool) -> CmdResult {
    let path = crate::config::directive("aclfile")
        .map(|d| d.get(&ctx.srv.config))
        .unwrap_or_default();
    if path.is_empty() {
        return Err(CmdError::msg(NO_ACLFILE));
    }
    let path = std::path::Path::new(&path);
    if load {
        let users = file::load(path, ctx.srv.acl.channels_by_default)
            .map_err(|e| CmdError::msg(format!("ERR {e}")))?;
        ctx.srv.acl.replace(users);
        // Every user but `default` is a new one: Redis 7.0 frees the old users and
        // disconnects their clients.
        disconnect(ctx, |user| user != b"default");
    } else {
        let text = file::render(ctx.srv.acl.iter());
        if let Err(e) = file::save(path, &text) {
            tracing::warn!(
                "Writing ACL file for ACL SAVE: {}",
                crate::state::persistence::strerror(&e)
            );
            return Err(CmdError::msg(
                "ERR There was an error trying to save the ACLs. Please check the server logs for more information",
            ));
        }
    }
    ctx.reply.ok();
    Ok(())
}

fn genpass(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    const MAX_BITS: i64 = 4096;
    let bits = if args.len() == 3 {
        int_arg(args.get(2))?
    } else {
        256
    };
    if bits <= 0 || bits > MAX_BITS {
        return Err(CmdError::msg(format!(
            "ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to {MAX_BITS}"
        )));
    }
    let chars = (bits as usize).div_ceil(4);
    let mut bytes = vec![0u8; chars.div_ceil(2)];
    rand::fill(&mut bytes[..]);
    let hex: Vec<u8> = bytes
        .iter()
        .flat_map(|b| [b >> 4, b & 15])
        .take(chars)
        .map(|d| b"0123456789abcdef"[usize::from(d)])
        .collect();
    ctx.reply.bulk(&hex);
    Ok(())
}

fn log(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let mut count = 10;
    if args.len() == 3 {
        if eq(args.get(2), "reset") {
            ctx.srv.acl.log.reset();
            ctx.reply.ok();
            return Ok(());
        }
        count = int_arg(args.get(2))?.max(0);
    }
    let now = crate::clock::now_ms();
    let entries: Vec<_> = ctx
        .srv
        .acl
        .log
        .entries()
        .take(usize::try_from(count).unwrap_or(usize::MAX))
        .cloned()
        .collect();
    ctx.reply.array(entries.len());
    for e in entries {
        ctx.reply.map(7);
        ctx.reply.bulk(b"count");
        ctx.reply.int(e.count as i64);
        ctx.reply.bulk(b"reason");
        ctx.reply.bulk(e.reason.name().as_bytes());
        ctx.reply.bulk(b"context");
        ctx.reply.bulk(e.context.name().as_bytes());
        ctx.reply.bulk(b"object");
        ctx.reply.bulk(&e.object);
        ctx.reply.bulk(b"username");
        ctx.reply.bulk(&e.username);
        ctx.reply.bulk(b"age-seconds");
        ctx.reply
            .double(now.saturating_sub(e.updated_ms) as f64 / 1000.0);
        ctx.reply.bulk(b"client-info");
        ctx.reply.bulk(e.client_info.as_bytes());
    }
    Ok(())
}

fn dryrun(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let name = args.get(2);
    if ctx.srv.acl.get(name).is_none() {
        return Err(CmdError::msg(format!(
            "ERR User '{}' not found",
            String::from_utf8_lossy(name)
        )));
    }
    let cmd = args.slice_from(3);
    let spec = super::lookup(cmd.get(0)).filter(|s| {
        s.subcommands.is_empty() || cmd.len() < 2 || super::stat_name(s, cmd).is_some()
    });
    let Some(spec) = spec else {
        return Err(CmdError::msg(format!(
            "ERR Command '{}' not found",
            String::from_utf8_lossy(cmd.get(0))
        )));
    };
    let full = super::stat_name(spec, cmd).unwrap_or(spec.name);
    let arity_ok = super::subcommand_error(spec, cmd).is_none() && spec.arity_ok(cmd.len());
    if !arity_ok {
        return Err(super::arity_error(full));
    }
    let Some(req) = request::of(spec, cmd) else {
        return Err(CmdError::msg(format!("ERR Command '{full}' not found")));
    };
    match ctx.srv.acl.check(name, &req) {
        Ok(()) => ctx.reply.ok(),
        Err(d) => {
            let text = match d {
                Denied::Command => {
                    format!("This user has no permissions to run the '{full}' command")
                }
                Denied::Key(i) => format!(
                    "This user has no permissions to access the '{}' key",
                    String::from_utf8_lossy(cmd.get(i))
                ),
                Denied::Channel(i) => format!(
                    "This user has no permissions to access the '{}' channel",
                    String::from_utf8_lossy(cmd.get(i))
                ),
            };
            ctx.reply.bulk(text.as_bytes());
        }
    }
    Ok(())
}
