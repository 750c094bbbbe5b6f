//! Server commands: INFO, CONFIG, COMMAND, SLOWLOG, TIME, DEBUG.

use super::{CmdError, CmdResult, Ctx, Spec, TABLE, container, eq, flags::*, help, int_arg, spec};
use crate::config::ConfigError;
use crate::protocol::Args;
use crate::repr::quote_into;
use crate::state::Server;

pub static COMMANDS: &[Spec] = &[
    spec("info", -1, LOADING | STALE, (0, 0, 0), "server", info),
    container(
        "config",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        "server",
        config,
        &[
            ("help", "config|help", 2),
            ("get", "config|get", -3),
            ("set", "config|set", -4),
            ("resetstat", "config|resetstat", 2),
            ("rewrite", "config|rewrite", 2),
        ],
    ),
    container(
        "command",
        -1,
        LOADING | STALE,
        "server",
        command,
        &[
            ("help", "command|help", 2),
            ("count", "command|count", 2),
            ("list", "command|list", -2),
            ("info", "command|info", -2),
            ("docs", "command|docs", -2),
            ("getkeys", "command|getkeys", -4),
            ("getkeysandflags", "command|getkeysandflags", -4),
        ],
    ),
    container(
        "slowlog",
        -2,
        ADMIN | LOADING | STALE,
        "server",
        slowlog,
        &[
            ("help", "slowlog|help", 2),
            ("get", "slowlog|get", -2),
            ("len", "slowlog|len", 2),
            ("reset", "slowlog|reset", 2),
        ],
    ),
    spec("time", 1, LOADING | STALE | FAST, (0, 0, 0), "server", time),
    spec(
        "monitor",
        1,
        ADMIN | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        "server",
        monitor,
    ),
    spec(
        "debug",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        "server",
        debug,
    ),
];

fn info(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let wanted: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let text = crate::info::render(ctx.srv, &crate::info::sections(&wanted));
    ctx.reply.verbatim(text.as_bytes());
    Ok(())
}

const CONFIG_HELP: &[&str] = &[
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "SET <directive> <value>",
    "    Set the configuration <directive> to <value>.",
    "RESETSTAT",
    "    Reset statistics reported by the INFO command.",
    "REWRITE",
    "    Rewrite the configuration file.",
    "HELP",
    "    Prints this help.",
];

fn config(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let sub = args.get(1);
    if eq(sub, "get") {
        config_get(ctx, args);
    } else if eq(sub, "set") {
        config_set(ctx, args)?;
    } else if eq(sub, "resetstat") {
        ctx.srv.stats = crate::state::Stats::default();
        ctx.srv.latency.reset_histograms();
        ctx.reply.ok();
    } else if eq(sub, "rewrite") {
        let aclfile = crate::config::directive("aclfile").map(|d| d.get(&ctx.srv.config));
        let users: Vec<String> = ctx
            .srv
            .acl
            .iter()
            .map(|u| String::from_utf8_lossy(&u.config_line()).into_owned())
            .collect();
        let users = aclfile.is_none_or(|f| f.is_empty()).then_some(&users[..]);
        ctx.srv
            .config
            .rewrite(users)
            .map_err(|e| CmdError::msg(format!("ERR Rewriting config file: {e}")))?;
        ctx.reply.ok();
    } else {
        help(ctx, CONFIG_HELP);
    }
    Ok(())
}

/// CONFIG GET: a name without glob characters is looked up directly and echoed as given
/// (alias and case included); a pattern matches every directive and alias name.
fn config_get(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let seen =
        |pairs: &[(String, String)], n: &str| pairs.iter().any(|(p, _)| p.eq_ignore_ascii_case(n));
    for p in args.iter().skip(2) {
        let name = String::from_utf8_lossy(p);
        if !p.iter().any(|c| matches!(c, b'[' | b'*' | b'?')) {
            if let Some(d) = crate::config::directive(&name)
                && !seen(&pairs, &name)
            {
                let value = d.get(&ctx.srv.config);
                pairs.push((name.into_owned(), value));
            }
            continue;
        }
        for (n, value) in ctx.srv.config.get_matching(p) {
            if !seen(&pairs, n) {
                pairs.push((n.to_string(), value));
            }
        }
    }
    ctx.reply.map(pairs.len());
    for (n, v) in pairs {
        ctx.reply.bulk(n.as_bytes());
        ctx.reply.bulk(v.as_bytes());
    }
}

/// CONFIG SET: all-or-nothing, as in Redis 7. Names are checked first (unknown, immutable,
/// the same directive twice), then the values are applied to a copy that replaces the live
/// configuration only when every one is valid.
fn config_set(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if !args.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    let failed = |name: &str, why: &str| {
        CmdError::msg(format!(
            "ERR CONFIG SET failed (possibly related to argument '{name}') - {why}"
        ))
    };
    let mut chosen: Vec<&'static crate::config::Directive> = Vec::new();
    for i in (2..args.len()).step_by(2) {
        let name = String::from_utf8_lossy(args.get(i));
        let Some(d) = crate::config::directive(&name) else {
            return Err(CmdError::msg(format!(
                "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
            )));
        };
        if d.immutable {
            return Err(failed(&name, "can't set immutable config"));
        }
        if chosen.iter().any(|c| std::ptr::eq(*c, d)) {
            return Err(failed(&name, "duplicate parameter"));
        }
        chosen.push(d);
    }
    let mut next = ctx.srv.config.clone();
    for i in (2..args.len()).step_by(2) {
        let name = String::from_utf8_lossy(args.get(i)).into_owned();
        let value = String::from_utf8_lossy(args.get(i + 1)).into_owned();
        next.set_live(&name, &value).map_err(|e| match e {
            ConfigError::Unknown(n) => CmdError::msg(format!(
                "ERR Unknown option or number of arguments for CONFIG SET - '{n}'"
            )),
            other => failed(&name, &other.to_string()),
        })?;
    }
    let sets_requirepass = chosen.iter().any(|d| d.name == "requirepass");
    if next.tls_port != ctx.srv.config.tls_port {
        return Err(failed(
            "tls-port",
            "Unable to change the TLS port at runtime: restart with the new tls-port",
        ));
    }
    // Any `tls-*` directive, even set to the value it has, reads the files again (Redis's
    // VOLATILE_CONFIG): rotating a certificate in place is a CONFIG SET of its path.
    if let Some(d) = chosen.iter().find(|d| d.name.starts_with("tls-"))
        && crate::tls::wanted(&next)
    {
        match crate::tls::contexts(&next) {
            Ok(contexts) => ctx.srv.tls = Some(contexts),
            Err(e) => {
                tracing::warn!("{e}");
                tracing::warn!(
                    "Failed applying new configuration. Possibly related to new {} setting. Restoring previous settings.",
                    d.name
                );
                return Err(failed(
                    d.name,
                    "Unable to update TLS configuration. Check server logs.",
                ));
            }
        }
    }
    ctx.srv.acl.channels_by_default = crate::acl::users::channels_by_default(&next);
    ctx.srv.config = next;
    if crate::aof::control::config_changed(ctx.srv).is_err() {
        ctx.srv.config.appendonly = false;
        return Err(failed(
            "appendonly",
            "Unable to turn on AOF. Check server logs.",
        ));
    }
    if sets_requirepass {
        // Redis 7.0's requirepass is the default user's password.
        let pass = ctx.srv.config.requirepass.clone();
        ctx.srv
            .acl
            .set_default_password(pass.as_deref().map(str::as_bytes));
    }
    ctx.reply.ok();
    Ok(())
}

const COMMAND_HELP: &[&str] = &[
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all Redis commands.",
    "COUNT",
    "    Return the total number of commands in this Redis server.",
    "LIST",
    "    Return a list of all commands in this Redis server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "GETKEYS <full-command>",
    "    Return the keys from a full Redis command.",
    "GETKEYSANDFLAGS <full-command>",
    "    Return the keys and the access flags from a full Redis command.",
    "HELP",
    "    Prints this help.",
];

fn command(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len() == 1 {
        let mut all: Vec<_> = TABLE.values().collect();
        all.sort_by_key(|s| s.name);
        ctx.reply.array(all.len());
        for s in all {
            command_info(ctx, s);
        }
        return Ok(());
    }
    let sub = args.get(1);
    if eq(sub, "count") {
        ctx.reply.int(TABLE.len() as i64);
    } else if eq(sub, "help") {
        help(ctx, COMMAND_HELP);
    } else if eq(sub, "list") {
        command_list(ctx, args)?;
    } else if eq(sub, "getkeys") || eq(sub, "getkeysandflags") {
        let with_flags = eq(sub, "getkeysandflags");
        let cmd = args.slice_from(2);
        let Some(s) = super::names::lookup(&ctx.srv.commands, cmd.get(0)) else {
            return Err(CmdError::msg("ERR Invalid command specified"));
        };
        let no_keys = || CmdError::msg("ERR The command has no key arguments");
        if !super::getkeys::has_keys(s) {
            return Err(no_keys());
        }
        if !s.arity_ok(cmd.len()) {
            return Err(CmdError::msg(
                "ERR Invalid number of arguments specified for command",
            ));
        }
        let keys = match super::getkeys::key_indices(s, cmd) {
            Ok(keys) => keys,
            Err(super::getkeys::NoKeys::Empty) => Vec::new(),
            Err(super::getkeys::NoKeys::NoKeyArguments) => return Err(no_keys()),
            Err(super::getkeys::NoKeys::InvalidArguments) => {
                return Err(CmdError::msg("ERR Invalid arguments specified for command"));
            }
        };
        if with_flags {
            let flagged = super::docs::key_flags(s, cmd, &keys);
            ctx.reply.array(flagged.len());
            for (i, flags) in flagged {
                ctx.reply.array(2);
                ctx.reply.bulk(cmd.get(i));
                flags.write(&mut ctx.reply);
            }
        } else {
            ctx.reply.array(keys.len());
            for i in keys {
                ctx.reply.bulk(cmd.get(i));
            }
        }
    } else if eq(sub, "info") {
        ctx.reply.array(args.len() - 2);
        for name in args.iter().skip(2) {
            let spec = super::names::lookup(&ctx.srv.commands, name);
            let sub_row = subcommand(&ctx.srv.commands, name)
                .and_then(|full| super::docs::described(full)?.info.as_ref());
            match (spec, sub_row) {
                (Some(s), _) => command_info(ctx, s),
                (None, Some(row)) => row.write(&mut ctx.reply),
                // A null bulk (`$-1` in RESP2), as Redis's addReplyNull.
                (None, None) => ctx.reply.null(),
            }
        }
    } else {
        enum Doc {
            Command(&'static super::Spec),
            Subcommand(&'static str, &'static super::docs::Node),
        }
        let docs: Vec<Doc> = if args.len() == 2 {
            TABLE.values().map(|s| Doc::Command(s)).collect()
        } else {
            let names = &ctx.srv.commands;
            args.iter()
                .skip(2)
                .filter_map(|n| match super::names::lookup(names, n) {
                    Some(s) => Some(Doc::Command(s)),
                    None => {
                        let full = subcommand(names, n)?;
                        Some(Doc::Subcommand(full, super::docs::subcommand_docs(full)?))
                    }
                })
                .collect()
        };
        ctx.reply.map(docs.len());
        for d in docs {
            match d {
                Doc::Command(s) => {
                    ctx.reply.bulk(s.name.as_bytes());
                    command_docs(&mut ctx.reply, s);
                }
                Doc::Subcommand(full, node) => {
                    ctx.reply.bulk(full.as_bytes());
                    node.write(&mut ctx.reply);
                }
            }
        }
    }
    Ok(())
}

/// COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern]: every command
/// and subcommand by its full name (`config|get`), sorted.
fn command_list(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let mut pattern: Option<&[u8]> = None;
    let mut module = false;
    let mut category = None;
    let mut i = 2;
    while i < args.len() {
        if !(eq(args.get(i), "filterby") && args.len() - 1 - i == 2) {
            return Err(CmdError::Syntax);
        }
        let kind = args.get(i + 1);
        if eq(kind, "module") {
            module = true;
        } else if eq(kind, "pattern") {
            pattern = Some(args.get(i + 2));
        } else if eq(kind, "aclcat") {
            // An unknown category matches no command, as in Redis.
            category = Some(crate::acl::universe::category(args.get(i + 2)).unwrap_or(0));
        } else {
            return Err(CmdError::Syntax);
        }
        i += 3;
    }
    let mut names: Vec<&str> = TABLE
        .values()
        .flat_map(|s| std::iter::once(s.name).chain(s.subcommands.iter().map(|(_, full, _)| *full)))
        // No command comes from a module.
        .filter(|_| !module)
        .filter(|n| pattern.is_none_or(|p| crate::glob::matches(p, n.as_bytes(), true)))
        .filter(|n| category.is_none_or(|c| crate::acl::universe::categories_of(n) & c != 0))
        .collect();
    names.sort_unstable();
    ctx.reply.array(names.len());
    for n in names {
        ctx.reply.bulk(n.as_bytes());
    }
    Ok(())
}

/// One COMMAND INFO entry: name, arity, flags, first key, last key, step, ACL categories,
/// tips, key specs, subcommands.
fn command_info(ctx: &mut Ctx<'_>, s: &Spec) {
    ctx.reply.array(10);
    ctx.reply.bulk(s.name.as_bytes());
    ctx.reply.int(i64::from(s.arity));
    // A container that cannot run bare has no flags of its own in Redis (here they stand
    // for its subcommands'); COMMAND, which runs bare, has.
    let own_flags = s.subcommands.is_empty() || s.arity == -1;
    let names: Vec<&str> = super::flags::NAMES
        .iter()
        .filter(|(f, _)| own_flags && s.is(*f))
        .map(|(_, n)| *n)
        .collect();
    ctx.reply.set(names.len());
    for n in names {
        ctx.reply.simple(n);
    }
    ctx.reply.int(i64::from(s.keys.0));
    ctx.reply.int(i64::from(s.keys.1));
    ctx.reply.int(i64::from(s.keys.2));
    let categories: Vec<&str> =
        crate::acl::universe::category_names(crate::acl::universe::categories_of(s.name)).collect();
    ctx.reply.set(categories.len());
    for c in categories {
        ctx.reply.simple(&format!("@{c}"));
    }
    let described = super::docs::described(s.name);
    match described.and_then(|d| d.tips.as_ref()) {
        Some(tips) => tips.write(&mut ctx.reply),
        None => ctx.reply.set(0),
    }
    match described.and_then(|d| d.key_specs.as_ref()) {
        Some(specs) => specs.write(&mut ctx.reply),
        None => ctx.reply.set(0),
    }
    match described.and_then(|d| d.subcommands.as_ref()) {
        // Redis's rows of the subcommands tandem has.
        Some(super::docs::Node::Array(rows)) => {
            let rows: Vec<_> = rows.iter().filter(|r| has_subcommand(s, r)).collect();
            ctx.reply.array(rows.len());
            rows.iter().for_each(|r| r.write(&mut ctx.reply));
        }
        Some(other) => other.write(&mut ctx.reply),
        None => ctx.reply.set(0),
    }
}

/// The full name (`config|get`) of the subcommand `name` names, when tandem has it.
fn subcommand(names: &crate::state::commands::CommandNames, name: &[u8]) -> Option<&'static str> {
    let text = std::str::from_utf8(name).ok()?.to_ascii_lowercase();
    let (container, sub) = text.split_once('|')?;
    let spec = super::names::lookup(names, container.as_bytes())?;
    spec.subcommands
        .iter()
        .find(|(n, _, _)| *n == sub)
        .map(|(_, full, _)| *full)
}

/// Whether a subcommand row (or docs entry) of Redis's names one of `s`'s subcommands.
fn has_subcommand(s: &Spec, row: &super::docs::Node) -> bool {
    use super::docs::Node;
    let name = match row {
        Node::Array(items) => items.first(),
        _ => None,
    };
    matches!(name, Some(Node::Bulk(n)) if s.subcommands.iter().any(|(_, full, _)| full == n))
}

/// One COMMAND DOCS entry: Redis's documentation of the command, its subcommands limited to
/// the ones tandem has; a command Redis does not document gets its group alone.
fn command_docs(r: &mut crate::protocol::Reply<'_>, s: &Spec) {
    use super::docs::Node;
    let Some(Node::Map(fields)) = super::docs::described(s.name).and_then(|d| d.docs.as_ref())
    else {
        r.map(1);
        r.bulk(b"group");
        r.bulk(s.group.as_bytes());
        return;
    };
    r.map(fields.len());
    for (k, v) in fields {
        k.write(r);
        match (k, v) {
            (Node::Bulk(k), Node::Map(subs)) if k == "subcommands" => {
                let subs: Vec<_> = subs
                    .iter()
                    .filter(|(n, _)| {
                        matches!(n, Node::Bulk(n) if s.subcommands.iter().any(|(_, full, _)| full == n))
                    })
                    .collect();
                r.map(subs.len());
                for (n, d) in subs {
                    n.write(r);
                    d.write(r);
                }
            }
            _ => v.write(r),
        }
    }
}

const SLOWLOG_HELP: &[&str] = &[
    "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
    "RESET",
    "    Reset the slowlog.",
    "HELP",
    "    Prints this help.",
];

fn slowlog(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let sub = args.get(1);
    if eq(sub, "len") {
        ctx.reply.int(ctx.srv.slowlog.len() as i64);
    } else if eq(sub, "reset") {
        ctx.srv.slowlog.reset();
        ctx.reply.ok();
    } else if eq(sub, "get") {
        let count = match args.len() {
            2 => Some(10),
            3 => {
                let bad = || CmdError::msg("ERR count should be greater than or equal to -1");
                match int_arg(args.get(2)).map_err(|_| bad())? {
                    -1 => None,
                    n if n < -1 => return Err(bad()),
                    n => Some(usize::try_from(n).unwrap_or(usize::MAX)),
                }
            }
            _ => {
                return Err(CmdError::msg(format!(
                    "ERR unknown subcommand or wrong number of arguments for '{}'. Try SLOWLOG HELP.",
                    String::from_utf8_lossy(sub)
                )));
            }
        };
        let entries: Vec<_> = ctx.srv.slowlog.newest(count).cloned().collect();
        ctx.reply.array(entries.len());
        for e in entries {
            ctx.reply.array(6);
            ctx.reply.int(e.id as i64);
            ctx.reply.int(e.time_s as i64);
            ctx.reply.int(e.duration_us as i64);
            ctx.reply.array(e.args.len());
            for a in &e.args {
                ctx.reply.bulk(a);
            }
            ctx.reply.bulk(e.addr.as_bytes());
            ctx.reply.bulk(&e.name);
        }
    } else {
        help(ctx, SLOWLOG_HELP);
    }
    Ok(())
}

fn time(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let us = crate::clock::now_us();
    ctx.reply.array(2);
    ctx.reply.bulk_int((us / 1_000_000) as i64);
    ctx.reply.bulk_int((us % 1_000_000) as i64);
    Ok(())
}

fn debug(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if ctx.srv.config.enable_debug_command == "no" {
        return Err(CmdError::msg(
            "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.",
        ));
    }
    let sub = args.get(1);
    if eq(sub, "sleep") && args.len() == 3 {
        // Redis reads the duration with atof: anything unparsable sleeps 0 seconds.
        let secs = super::parse_f64(args.get(2)).unwrap_or(0.0);
        std::thread::sleep(std::time::Duration::from_secs_f64(secs.max(0.0)));
        ctx.reply.ok();
    } else if eq(sub, "digest") && args.len() == 2 {
        let d = crate::keyspace::digest::dataset_digest(ctx.srv.keyspace.dbs());
        ctx.reply.simple(&crate::keyspace::digest::hex(&d));
    } else if eq(sub, "digest-value") {
        // Logically expired keys count too: no lookup, as Redis.
        ctx.reply.array(args.len() - 2);
        for i in 2..args.len() {
            let mut d = [0u8; 20];
            let db = ctx.db();
            if let Some(slot) = db.find(args.get(i)) {
                crate::keyspace::digest::value_digest(&mut d, db.entry(slot));
            }
            ctx.reply.simple(&crate::keyspace::digest::hex(&d));
        }
    } else if eq(sub, "set-active-expire") && args.len() == 3 {
        // Redis reads it with atoi: anything but a non-zero number turns expiry off.
        ctx.srv.active_expire_enabled =
            crate::protocol::parse_i64(args.get(2)).is_some_and(|n| n != 0);
        ctx.reply.ok();
    } else if eq(sub, "populate") && (3..=5).contains(&args.len()) {
        populate(ctx, args)?;
    } else if eq(sub, "loadaof") && args.len() == 2 {
        crate::aof::control::debug_loadaof(ctx.srv);
        ctx.reply.ok();
    } else if eq(sub, "change-repl-id") && args.len() == 2 {
        tracing::warn!("Changing replication IDs after receiving DEBUG change-repl-id");
        ctx.srv.repl.ids.reset();
        ctx.reply.ok();
    } else if eq(sub, "object") && args.len() == 3 {
        debug_object(ctx, args.get(2))?;
    } else if eq(sub, "protocol") && args.len() == 3 {
        debug_protocol(ctx, args.get(2))?;
    } else if eq(sub, "log") && args.len() == 3 {
        tracing::warn!("DEBUG LOG: {}", String::from_utf8_lossy(args.get(2)));
        ctx.reply.ok();
    } else if eq(sub, "error") && args.len() == 3 {
        return Err(CmdError::msg(String::from_utf8_lossy(args.get(2))));
    } else if eq(sub, "help") && args.len() == 2 {
        help(ctx, DEBUG_HELP);
    } else {
        return Err(CmdError::msg(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
            String::from_utf8_lossy(sub)
        )));
    }
    Ok(())
}

const DEBUG_HELP: &[&str] = &[
    "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANGE-REPL-ID",
    "    Change the replication IDs of the instance.",
    "    Dangerous: should be used only for testing the replication subsystem.",
    "DIGEST",
    "    Output a hex signature representing the current DB content.",
    "DIGEST-VALUE <key> [<key> ...]",
    "    Output a hex signature of the values of all the specified keys.",
    "ERROR <string>",
    "    Return a Redis protocol error with <string> as message. Useful for clients",
    "    unit tests to simulate Redis errors.",
    "LOG <message>",
    "    Write <message> to the server log.",
    "OBJECT <key>",
    "    Show low level info about `key` and associated value.",
    "POPULATE <count> [<prefix>] [<size>]",
    "    Create <count> string keys named key:<num>. If <prefix> is specified then",
    "    it is used instead of the 'key' prefix. These are not propagated to",
    "    replicas.",
    "PROTOCOL <type>",
    "    Reply with a test value of the specified type. <type> can be: string,",
    "    integer, double, bignum, null, array, set, map, attrib, push, verbatim,",
    "    true, false.",
    "SET-ACTIVE-EXPIRE <0|1>",
    "    Setting it to 0 disables expiring keys in background when they are not",
    "    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
    "    default.",
    "SLEEP <seconds>",
    "    Stop the server for <seconds>. Decimals allowed.",
    "HELP",
    "    Prints this help.",
];

/// DEBUG OBJECT: Redis's one-line description of a value (no lookup rules: an expired key
/// not yet removed is still described). The address is the key's slot, tandem's own.
fn debug_object(ctx: &mut Ctx<'_>, key: &[u8]) -> CmdResult {
    let clock = ctx.srv.access_clock(ctx.now_ms);
    let shares_integers =
        ctx.srv.config.maxmemory == 0 || !ctx.srv.config.maxmemory_policy.uses_access_data();
    let compression = ctx.srv.config.rdbcompression;
    let db = ctx.db();
    let Some(slot) = db.find(key) else {
        return Err(CmdError::NoSuchKey);
    };
    let e = db.entry(slot);
    // The payload is the value's RDB bytes framed by a type byte, version and checksum.
    let serialized = crate::rdb::dump::encode(&e.value, compression).len() - 11;
    let line = format!(
        "Value at:0x{:x} refcount:{} encoding:{} serializedlength:{serialized} lru:{} lru_seconds_idle:{}",
        u64::from(slot) + 0x1000,
        super::keys::refcount(shares_integers, &e.value),
        e.value.encoding(),
        e.access & 0xff_ffff,
        clock.idle_seconds(e.access),
    );
    ctx.reply.simple(&line);
    Ok(())
}

/// DEBUG PROTOCOL <type>: one test value of each reply type, as Redis 7.0 sends it.
#[expect(
    clippy::approx_constant,
    reason = "3.141 is Redis's test double, not an approximation of pi"
)]
fn debug_protocol(ctx: &mut Ctx<'_>, name: &[u8]) -> CmdResult {
    let r = &mut ctx.reply;
    if eq(name, "string") {
        r.bulk(b"Hello World");
    } else if eq(name, "integer") {
        r.int(12345);
    } else if eq(name, "double") {
        r.double(3.141);
    } else if eq(name, "bignum") {
        r.big_number(b"1234567999999999999999999999999999999");
    } else if eq(name, "null") {
        r.null();
    } else if eq(name, "array") || eq(name, "set") {
        if eq(name, "set") {
            r.set(3);
        } else {
            r.array(3);
        }
        (0..3).for_each(|j| r.int(j));
    } else if eq(name, "map") {
        r.map(3);
        for j in 0..3 {
            r.int(j);
            r.boolean(j == 1);
        }
    } else if eq(name, "attrib") {
        if r.resp3() {
            r.raw(b"|1\r\n");
            r.bulk(b"key-popularity");
            r.array(2);
            r.bulk(b"key:123");
            r.int(90);
        }
        r.bulk(b"Some real reply following the attribute");
    } else if eq(name, "push") {
        if !r.resp3() {
            return Err(CmdError::msg("ERR RESP2 is not supported by this command"));
        }
        r.push(2);
        r.bulk(b"server-cpu-usage");
        r.int(42);
        r.bulk(b"Some real reply following the push reply");
    } else if eq(name, "true") || eq(name, "false") {
        r.boolean(eq(name, "true"));
    } else if eq(name, "verbatim") {
        r.verbatim(b"This is a verbatim\nstring");
    } else {
        return Err(CmdError::msg(
            "ERR Wrong protocol type name. Please use one of the following: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false",
        ));
    }
    Ok(())
}

/// MONITOR: from now on the client receives every command the server runs (the executor
/// feeds them, see `exec::feed_monitors`). A replica, or a client already monitoring, gets
/// no reply at all, as from Redis.
fn monitor(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    if !ctx.may_block {
        return Err(CmdError::msg(
            "ERR MONITOR isn't allowed for DENY BLOCKING client",
        ));
    }
    {
        let mut info = ctx.client.shared.info.borrow_mut();
        if info.flags.contains(['S', 'O']) {
            return Ok(());
        }
        info.flags.insert(0, 'O');
    }
    ctx.srv.monitors.push(ctx.client.id);
    ctx.reply.ok();
    Ok(())
}

/// Where a command fed to MONITOR came from, as its line shows it.
pub enum MonitorSource<'a> {
    Client(&'a str),
    Script,
}

/// Sends a command the server ran to every MONITOR client: `+<secs>.<usecs> [<db> <addr>]`
/// and the arguments quoted as Redis's `sdscatrepr` quotes them.
pub fn feed_monitors(srv: &mut Server, db: usize, source: MonitorSource<'_>, args: Args<'_>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut line = format!("{}.{:06} [{db} ", now.as_secs(), now.subsec_micros());
    match source {
        MonitorSource::Client(addr) => line.push_str(addr),
        MonitorSource::Script => line.push_str("lua"),
    }
    line.push(']');
    for a in args.iter() {
        line.push(' ');
        quote_into(&mut line, a);
    }
    let limit = Some(srv.config.client_output_buffer_limit[0]);
    let now_s = now.as_secs();
    for id in &srv.monitors {
        if let Some(c) = srv.clients.get(id) {
            super::pubsub::deliver(c, limit, now_s, |r| r.simple(&line));
        }
    }
}

/// DEBUG POPULATE count [prefix] [size]: `prefix:N` keys (default `key`) holding `value:N`,
/// or that text zero-padded (or cut) to `size` bytes; existing keys are left alone.
fn populate(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    use super::args::non_negative_arg;
    let count = non_negative_arg(args.get(2), None)?;
    let size = if args.len() == 5 {
        Some(non_negative_arg(args.get(4), None)? as usize).filter(|s| *s > 0)
    } else {
        None
    };
    let prefix = if args.len() >= 4 { args.get(3) } else { b"key" };
    for j in 0..count {
        let mut key = prefix.to_vec();
        key.push(b':');
        key.extend_from_slice(itoa::Buffer::new().format(j).as_bytes());
        if ctx.find(&key).is_some() {
            continue;
        }
        let mut value = format!("value:{j}").into_bytes();
        if let Some(size) = size {
            value.resize(size, 0);
        }
        ctx.set(
            &key,
            crate::keyspace::Value::Str(crate::keyspace::SmallBytes::new(&value)),
            false,
        );
    }
    ctx.reply.ok();
    Ok(())
}
