//! Server commands: INFO, CONFIG, COMMAND, TIME, DEBUG.

use super::{CmdError, CmdResult, Ctx, Spec, TABLE, eq, flags::*, int_arg, spec};
use crate::config::ConfigError;
use crate::protocol::Args;

pub static COMMANDS: &[Spec] = &[
    spec("info", -1, LOADING | STALE, (0, 0, 0), "server", info),
    spec(
        "config",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        "server",
        config,
    ),
    spec("command", -1, LOADING | STALE, (0, 0, 0), "server", command),
    spec("time", 1, LOADING | STALE | FAST, (0, 0, 0), "server", time),
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

fn config(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let sub = args.get(1);
    let wrong = || {
        CmdError::msg(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try CONFIG HELP.",
            String::from_utf8_lossy(sub)
        ))
    };
    if eq(sub, "get") && args.len() >= 3 {
        let mut pairs = Vec::new();
        for p in args.iter().skip(2) {
            for (name, value) in ctx.srv.config.get_matching(p) {
                if !pairs.iter().any(|(n, _): &(&str, String)| *n == name) {
                    pairs.push((name, value));
                }
            }
        }
        ctx.reply.map(pairs.len());
        for (n, v) in pairs {
            ctx.reply.bulk(n.as_bytes());
            ctx.reply.bulk(v.as_bytes());
        }
    } else if eq(sub, "set") && args.len() >= 4 && args.len().is_multiple_of(2) {
        // All-or-nothing, as in Redis 7: validate on a copy, then commit.
        let mut next = ctx.srv.config.clone();
        for i in (2..args.len()).step_by(2) {
            let name = String::from_utf8_lossy(args.get(i)).into_owned();
            let value = String::from_utf8_lossy(args.get(i + 1)).into_owned();
            next.set_live(&name, &value).map_err(|e| match e {
                ConfigError::Unknown(n) => CmdError::msg(format!(
                    "ERR Unknown option or number of arguments for CONFIG SET - '{n}'"
                )),
                other => CmdError::msg(format!(
                    "ERR CONFIG SET failed (possibly related to argument '{name}') - {other}"
                )),
            })?;
        }
        ctx.srv.config = next;
        ctx.reply.ok();
    } else if eq(sub, "set") && args.len() >= 4 {
        return Err(CmdError::Syntax);
    } else if eq(sub, "resetstat") && args.len() == 2 {
        ctx.srv.stats = crate::server::Stats::default();
        ctx.reply.ok();
    } else if eq(sub, "rewrite") && args.len() == 2 {
        ctx.srv
            .config
            .rewrite()
            .map_err(|e| CmdError::msg(format!("ERR Rewriting config file: {e}")))?;
        ctx.reply.ok();
    } else {
        return Err(wrong());
    }
    Ok(())
}

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
    if eq(sub, "count") && args.len() == 2 {
        ctx.reply.int(TABLE.len() as i64);
    } else if eq(sub, "info") {
        ctx.reply.array(args.len() - 2);
        for name in args.iter().skip(2) {
            match super::lookup(name) {
                Some(s) => command_info(ctx, s),
                None => ctx.reply.null_array(),
            }
        }
    } else if eq(sub, "docs") {
        let names: Vec<&'static super::Spec> = if args.len() == 2 {
            TABLE.values().copied().collect()
        } else {
            args.iter().skip(2).filter_map(super::lookup).collect()
        };
        ctx.reply.map(names.len());
        for s in names {
            ctx.reply.bulk(s.name.as_bytes());
            ctx.reply.map(1);
            ctx.reply.bulk(b"group");
            ctx.reply.bulk(s.group.as_bytes());
        }
    } else {
        return Err(CmdError::msg(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try COMMAND HELP.",
            String::from_utf8_lossy(sub)
        )));
    }
    Ok(())
}

/// One COMMAND INFO entry: name, arity, flags, first key, last key, step, ACL categories,
/// tips, key specs, subcommands.
fn command_info(ctx: &mut Ctx<'_>, s: &Spec) {
    ctx.reply.array(10);
    ctx.reply.bulk(s.name.as_bytes());
    ctx.reply.int(i64::from(s.arity));
    let names: Vec<&str> = super::flags::NAMES
        .iter()
        .filter(|(f, _)| s.is(*f))
        .map(|(_, n)| *n)
        .collect();
    ctx.reply.set(names.len());
    for n in names {
        ctx.reply.simple(n);
    }
    ctx.reply.int(i64::from(s.keys.0));
    ctx.reply.int(i64::from(s.keys.1));
    ctx.reply.int(i64::from(s.keys.2));
    ctx.reply.set(1);
    ctx.reply.simple(&format!("@{}", s.group));
    ctx.reply.set(0);
    ctx.reply.array(0);
    ctx.reply.array(0);
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
        let secs = super::float_arg(args.get(2))?;
        std::thread::sleep(std::time::Duration::from_secs_f64(secs.max(0.0)));
        ctx.reply.ok();
    } else if eq(sub, "set-active-expire") && args.len() == 3 {
        let _ = int_arg(args.get(2))?;
        ctx.reply.ok();
    } else {
        return Err(CmdError::msg(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
            String::from_utf8_lossy(sub)
        )));
    }
    Ok(())
}
