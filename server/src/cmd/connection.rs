//! Connection commands: PING, ECHO, HELLO, AUTH, SELECT, QUIT, RESET, CLIENT, and the
//! transaction verbs (MULTI, EXEC, DISCARD, WATCH, UNWATCH; EXEC itself runs in `exec`).

use super::{CmdError, CmdResult, Ctx, Spec, container, eq, flags::*, int_arg, spec};
use crate::protocol::{Args, Protocol};

pub static COMMANDS: &[Spec] = &[
    spec(
        "ping",
        -1,
        FAST | SUBSCRIBED_OK,
        (0, 0, 0),
        "connection",
        ping,
    ),
    spec(
        "echo",
        2,
        FAST | STALE | LOADING,
        (0, 0, 0),
        "connection",
        echo,
    ),
    spec(
        "hello",
        -1,
        FAST | NO_AUTH | STALE | LOADING | NOSCRIPT | ALLOW_BUSY,
        (0, 0, 0),
        "connection",
        hello,
    ),
    spec(
        "auth",
        -2,
        FAST | NO_AUTH | STALE | LOADING | NOSCRIPT | ALLOW_BUSY,
        (0, 0, 0),
        "connection",
        auth,
    ),
    spec(
        "select",
        2,
        FAST | STALE | LOADING,
        (0, 0, 0),
        "connection",
        select,
    ),
    spec(
        "quit",
        -1,
        FAST | NO_AUTH | STALE | LOADING | NO_MULTI_QUEUE | SUBSCRIBED_OK | NOSCRIPT | ALLOW_BUSY,
        (0, 0, 0),
        "connection",
        quit,
    ),
    spec(
        "reset",
        1,
        FAST | NO_AUTH | STALE | LOADING | NO_MULTI_QUEUE | SUBSCRIBED_OK | NOSCRIPT | ALLOW_BUSY,
        (0, 0, 0),
        "connection",
        reset,
    ),
    container(
        "client",
        -2,
        ADMIN | STALE | LOADING | NOSCRIPT,
        "connection",
        client,
        &[
            ("caching", "client|caching", 3),
            ("getname", "client|getname", 2),
            ("getredir", "client|getredir", 2),
            ("help", "client|help", 2),
            ("id", "client|id", 2),
            ("info", "client|info", 2),
            ("kill", "client|kill", -3),
            ("list", "client|list", -2),
            ("no-evict", "client|no-evict", 3),
            ("pause", "client|pause", -3),
            ("reply", "client|reply", 3),
            ("setname", "client|setname", 3),
            ("tracking", "client|tracking", -3),
            ("trackinginfo", "client|trackinginfo", 2),
            ("unblock", "client|unblock", -3),
            ("unpause", "client|unpause", 2),
        ],
    ),
    spec(
        "multi",
        1,
        FAST | STALE | LOADING | NO_MULTI_QUEUE | NOSCRIPT | ALLOW_BUSY,
        (0, 0, 0),
        "transactions",
        multi,
    ),
    spec(
        "exec",
        1,
        STALE | LOADING | NO_MULTI_QUEUE | NOSCRIPT | SKIP_SLOWLOG,
        (0, 0, 0),
        "transactions",
        exec_placeholder,
    ),
    spec(
        "discard",
        1,
        FAST | STALE | LOADING | NO_MULTI_QUEUE | NOSCRIPT | ALLOW_BUSY,
        (0, 0, 0),
        "transactions",
        discard,
    ),
    spec(
        "watch",
        -2,
        FAST | STALE | LOADING | NO_MULTI_QUEUE | NOSCRIPT | ALLOW_BUSY,
        (1, -1, 1),
        "transactions",
        watch,
    ),
    spec(
        "unwatch",
        1,
        FAST | STALE | LOADING | NOSCRIPT | ALLOW_BUSY,
        (0, 0, 0),
        "transactions",
        unwatch,
    ),
];

fn ping(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len() > 2 {
        return Err(super::arity_error("ping"));
    }
    if ctx.client.in_pubsub() && ctx.client.proto == Protocol::Resp2 {
        ctx.reply.array(2);
        ctx.reply.bulk(b"pong");
        ctx.reply
            .bulk(if args.len() == 2 { args.get(1) } else { b"" });
    } else if args.len() == 2 {
        ctx.reply.bulk(args.get(1));
    } else {
        ctx.reply.simple("PONG");
    }
    Ok(())
}

fn echo(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    ctx.reply.bulk(args.get(1));
    Ok(())
}

/// Checks a password for the default user.
fn check_auth(ctx: &mut Ctx<'_>, user: Option<&[u8]>, pass: &[u8]) -> CmdResult {
    crate::auth::check_default_user(ctx.srv.config.requirepass.as_deref(), user, pass)
        .map_err(CmdError::msg)?;
    ctx.client.authenticated = true;
    Ok(())
}

fn auth(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    match args.len() {
        2 => check_auth(ctx, None, args.get(1))?,
        3 => check_auth(ctx, Some(args.get(1)), args.get(2))?,
        _ => return Err(CmdError::Syntax),
    }
    ctx.reply.ok();
    Ok(())
}

fn hello(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let mut proto = ctx.client.proto;
    let mut i = 1;
    if args.len() > 1 {
        let v = int_arg(args.get(1))
            .map_err(|_| CmdError::msg("ERR Protocol version is not an integer or out of range"))?;
        proto = match v {
            2 => Protocol::Resp2,
            3 => Protocol::Resp3,
            _ => return Err(CmdError::msg("NOPROTO unsupported protocol version")),
        };
        i = 2;
    }
    let mut name = None;
    while i < args.len() {
        let more = args.len() - i - 1;
        if eq(args.get(i), "auth") && more >= 2 {
            check_auth(ctx, Some(args.get(i + 1)), args.get(i + 2))?;
            i += 3;
        } else if eq(args.get(i), "setname") && more >= 1 {
            name = Some(args.get(i + 1));
            i += 2;
        } else {
            return Err(CmdError::msg(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(args.get(i))
            )));
        }
    }
    if !ctx.client.authenticated {
        return Err(CmdError::msg(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        ));
    }
    if let Some(n) = name {
        set_name(ctx, n)?;
    }
    ctx.client.proto = proto;
    ctx.client.shared.info.borrow_mut().proto = if proto == Protocol::Resp3 { 3 } else { 2 };
    ctx.reply.set_protocol(proto);
    ctx.reply.map(7);
    ctx.reply.bulk(b"server");
    ctx.reply.bulk(b"redis");
    ctx.reply.bulk(b"version");
    ctx.reply.bulk(crate::REDIS_VERSION.as_bytes());
    ctx.reply.bulk(b"proto");
    ctx.reply.int(if proto == Protocol::Resp3 { 3 } else { 2 });
    ctx.reply.bulk(b"id");
    ctx.reply.int(ctx.client.id as i64);
    ctx.reply.bulk(b"mode");
    ctx.reply.bulk(b"standalone");
    ctx.reply.bulk(b"role");
    if ctx.srv.repl.is_replica() {
        ctx.reply.bulk(b"replica");
    } else {
        ctx.reply.bulk(b"master");
    }
    ctx.reply.bulk(b"modules");
    ctx.reply.array(0);
    Ok(())
}

fn select(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let n = int_arg(args.get(1))?;
    if n < 0 || n as usize >= ctx.srv.keyspace.num_dbs() {
        return Err(CmdError::DbIndex);
    }
    ctx.client.db = n as usize;
    ctx.reply.ok();
    Ok(())
}

fn quit(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    ctx.client.close_after_reply = true;
    ctx.reply.ok();
    Ok(())
}

fn reset(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    ctx.client.multi = None;
    ctx.client.multi_error = false;
    ctx.srv.unwatch_all(ctx.client);
    ctx.srv.unsubscribe_all(ctx.client);
    ctx.srv.stop_monitor(ctx.client);
    super::tracking::forget(ctx.srv, ctx.client);
    ctx.client.db = 0;
    ctx.client.name = None;
    ctx.client.shared.info.borrow_mut().name = None;
    ctx.client.reply_off = false;
    ctx.client.reply_skip_next = false;
    ctx.client.reply_skip = false;
    ctx.client.authenticated = ctx.srv.config.requirepass.is_none();
    ctx.client.proto = Protocol::Resp2;
    ctx.client.shared.info.borrow_mut().proto = 2;
    ctx.reply.set_protocol(Protocol::Resp2);
    ctx.reply.simple("RESET");
    Ok(())
}

fn set_name(ctx: &mut Ctx<'_>, name: &[u8]) -> CmdResult {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(CmdError::msg(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    let name = (!name.is_empty()).then(|| name.to_vec());
    ctx.client.shared.info.borrow_mut().name = name.clone();
    ctx.client.name = name;
    Ok(())
}

const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CACHING (YES|NO)",
    "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    "GETREDIR",
    "    Return the client ID we are redirecting to when tracking is enabled.",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "UNPAUSE",
    "    Stop the current client pause, resuming traffic.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    "         [OPTIN] [OPTOUT] [NOLOOP]",
    "    Control server assisted client side caching.",
    "TRACKINGINFO",
    "    Report tracking status for the current connection.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "HELP",
    "    Prints this help.",
];

/// Client kinds for CLIENT LIST TYPE and CLIENT KILL TYPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientType {
    Normal,
    Replica,
    Master,
    PubSub,
}

impl ClientType {
    fn parse(name: &[u8]) -> Result<Self, CmdError> {
        if eq(name, "normal") {
            Ok(ClientType::Normal)
        } else if eq(name, "replica") || eq(name, "slave") {
            Ok(ClientType::Replica)
        } else if eq(name, "master") {
            Ok(ClientType::Master)
        } else if eq(name, "pubsub") {
            Ok(ClientType::PubSub)
        } else {
            Err(CmdError::msg(format!(
                "ERR Unknown client type '{}'",
                String::from_utf8_lossy(name)
            )))
        }
    }

    /// Redis's precedence: master, then replica, then pubsub, else normal.
    fn of(info: &crate::client::ClientInfo) -> Self {
        if info.flags.contains('M') {
            ClientType::Master
        } else if info.flags.contains('S') {
            ClientType::Replica
        } else if info.flags.contains('P') {
            ClientType::PubSub
        } else {
            ClientType::Normal
        }
    }
}

fn client(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let sub = args.get(1);
    // The executor has checked the subcommand and its arity against the table.
    let name = String::from_utf8_lossy(sub).to_ascii_lowercase();
    match name.as_str() {
        "help" => {
            ctx.reply.array(CLIENT_HELP.len());
            for l in CLIENT_HELP {
                ctx.reply.simple(l);
            }
        }
        "id" => ctx.reply.int(ctx.client.id as i64),
        "getname" => match ctx.client.name.clone() {
            Some(name) => ctx.reply.bulk(&name),
            None => ctx.reply.null(),
        },
        "setname" => {
            set_name(ctx, args.get(2))?;
            ctx.reply.ok();
        }
        "info" => {
            let line = ctx.client.shared.info.borrow().line(ctx.now_ms) + "\n";
            ctx.reply.verbatim(line.as_bytes());
        }
        "list" => client_list(ctx, args)?,
        "kill" => client_kill(ctx, args)?,
        "pause" => client_pause(ctx, args)?,
        "unpause" => {
            ctx.srv.pause = None;
            // Wake every connection so commands held by the pause run now.
            for c in ctx.srv.clients.values() {
                c.notify.notify_one();
            }
            ctx.reply.ok();
        }
        "reply" => {
            let a = args.get(2);
            if eq(a, "on") {
                ctx.client.reply_off = false;
                ctx.client.reply_skip = false;
                ctx.reply.ok();
            } else if eq(a, "off") {
                ctx.client.reply_off = true;
            } else if eq(a, "skip") {
                if !ctx.client.reply_off {
                    ctx.client.reply_skip_next = true;
                }
            } else {
                return Err(CmdError::Syntax);
            }
        }
        "no-evict" => {
            let a = args.get(2);
            if eq(a, "on") {
                ctx.client.no_evict = true;
            } else if eq(a, "off") {
                ctx.client.no_evict = false;
            } else {
                return Err(CmdError::Syntax);
            }
            ctx.reply.ok();
        }
        "getredir" => super::tracking::getredir(ctx),
        "caching" => super::tracking::caching(ctx, args)?,
        "trackinginfo" => super::tracking::trackinginfo(ctx),
        "tracking" => super::tracking::tracking(ctx, args)?,
        _ => client_unblock(ctx, args)?,
    }
    Ok(())
}

/// CLIENT LIST [TYPE <type>] | CLIENT LIST ID <id> [<id> ...]: ids are listed in the order
/// given, unknown ids skipped.
fn client_list(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let n = args.len();
    let mut kind = None;
    let mut ids: Option<Vec<u64>> = None;
    if n == 4 && eq(args.get(2), "type") {
        kind = Some(ClientType::parse(args.get(3))?);
    } else if n > 3 && eq(args.get(2), "id") {
        let mut v = Vec::new();
        for a in args.iter().skip(3) {
            let id = int_arg(a).map_err(|_| CmdError::msg("ERR Invalid client ID"))?;
            v.push(id as u64);
        }
        ids = Some(v);
    } else if n != 2 {
        return Err(CmdError::Syntax);
    }
    let infos: Vec<crate::client::ClientInfo> = match ids {
        Some(ids) => ids
            .iter()
            .filter_map(|id| ctx.srv.clients.get(id))
            .map(|c| c.info.borrow().clone())
            .collect(),
        None => {
            let mut all: Vec<_> = ctx
                .srv
                .clients
                .values()
                .map(|c| c.info.borrow().clone())
                .filter(|i| kind.is_none_or(|k| ClientType::of(i) == k))
                .collect();
            all.sort_by_key(|c| c.id);
            all
        }
    };
    let mut text = String::new();
    for info in &infos {
        text.push_str(&info.line(ctx.now_ms));
        text.push('\n');
    }
    ctx.reply.verbatim(text.as_bytes());
    Ok(())
}

/// Redis's error for a known subcommand given arguments it does not accept.
fn subcommand_syntax(sub: &[u8]) -> CmdError {
    CmdError::msg(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
        String::from_utf8_lossy(&sub[..sub.len().min(128)])
    ))
}

/// CLIENT PAUSE <ms> [WRITE|ALL]: a new pause never ends earlier than the current one, and
/// its mode replaces the current mode, as in Redis 7.0. The mode is checked before the timeout, in Redis's order.
fn client_pause(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let n = args.len();
    if n > 4 {
        return Err(subcommand_syntax(args.get(1)));
    }
    let writes_only = if n == 4 {
        if eq(args.get(3), "write") {
            true
        } else if eq(args.get(3), "all") {
            false
        } else {
            return Err(CmdError::msg("ERR CLIENT PAUSE mode must be WRITE or ALL"));
        }
    } else {
        false
    };
    let ms = int_arg(args.get(2))
        .map_err(|_| CmdError::msg("ERR timeout is not an integer or out of range"))?;
    if ms < 0 {
        return Err(CmdError::msg("ERR timeout is negative"));
    }
    let until = ctx.now_ms.saturating_add(ms as u64);
    ctx.srv.pause = Some(match ctx.srv.pause {
        Some((old, _)) if old > ctx.now_ms => (old.max(until), writes_only),
        _ => (until, writes_only),
    });
    ctx.reply.ok();
    Ok(())
}

/// CLIENT UNBLOCK <id> [TIMEOUT|ERROR]: blocked clients are woken by their own task, which
/// reads the request from the shared state.
fn client_unblock(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let n = args.len();
    if n > 4 {
        return Err(subcommand_syntax(args.get(1)));
    }
    let id = int_arg(args.get(2))?;
    let with_error = if n == 4 {
        if eq(args.get(3), "timeout") {
            false
        } else if eq(args.get(3), "error") {
            true
        } else {
            return Err(CmdError::msg(
                "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
            ));
        }
    } else {
        false
    };
    let target = ctx.srv.clients.get(&(id as u64));
    match target {
        Some(c) if ctx.srv.is_blocked_on_keys(id as u64) => {
            c.unblock.set(Some(with_error));
            c.notify.notify_one();
            ctx.reply.int(1);
        }
        _ => ctx.reply.int(0),
    }
    Ok(())
}

/// CLIENT KILL addr | CLIENT KILL <filter> <value> ...
fn client_kill(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let n = args.len();
    let mut addr = None;
    let mut laddr = None;
    let mut id = None;
    let mut kind = None;
    let mut skipme = true;
    let old_style = n == 3;
    if old_style {
        addr = Some(String::from_utf8_lossy(args.get(2)).into_owned());
        skipme = false;
    } else {
        let mut i = 2;
        while i < n {
            if i + 1 >= n {
                return Err(CmdError::Syntax);
            }
            let (k, v) = (args.get(i), args.get(i + 1));
            if eq(k, "id") {
                let v = int_arg(v)
                    .ok()
                    .filter(|&v| v > 0)
                    .ok_or_else(|| CmdError::msg("ERR client-id should be greater than 0"))?;
                id = Some(v as u64);
            } else if eq(k, "type") {
                kind = Some(ClientType::parse(v)?);
            } else if eq(k, "addr") {
                addr = Some(String::from_utf8_lossy(v).into_owned());
            } else if eq(k, "laddr") {
                laddr = Some(String::from_utf8_lossy(v).into_owned());
            } else if eq(k, "user") {
                // Only the default user exists, and every connection is authenticated as it.
                if v != b"default" {
                    return Err(CmdError::msg(format!(
                        "ERR No such user '{}'",
                        String::from_utf8_lossy(v)
                    )));
                }
            } else if eq(k, "skipme") {
                skipme = if eq(v, "yes") {
                    true
                } else if eq(v, "no") {
                    false
                } else {
                    return Err(CmdError::Syntax);
                };
            } else {
                return Err(CmdError::Syntax);
            }
            i += 2;
        }
    }
    let mut killed = 0;
    for (cid, c) in &ctx.srv.clients {
        let info = c.info.borrow();
        let matches = addr.as_ref().is_none_or(|a| *a == info.addr)
            && laddr.as_ref().is_none_or(|a| *a == info.laddr)
            && id.is_none_or(|i| i == *cid)
            && kind.is_none_or(|k| ClientType::of(&info) == k);
        if !matches || (skipme && *cid == ctx.client.id) {
            continue;
        }
        killed += 1;
        if *cid == ctx.client.id {
            ctx.client.close_after_reply = true;
        } else {
            c.killed.set(true);
            c.notify.notify_one();
        }
    }
    if old_style {
        if killed == 0 {
            return Err(CmdError::msg("ERR No such client"));
        }
        ctx.reply.ok();
    } else {
        ctx.reply.int(killed);
    }
    Ok(())
}

fn multi(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::msg("ERR MULTI calls can not be nested"));
    }
    ctx.client.multi = Some(Vec::new());
    ctx.client.multi_error = false;
    ctx.reply.ok();
    Ok(())
}

/// EXEC is run by the executor itself (it needs to run other commands); the table entry
/// exists for arity, flags and COMMAND output.
fn exec_placeholder(_ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    Err(CmdError::msg("ERR EXEC without MULTI"))
}

fn discard(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    if ctx.client.multi.take().is_none() {
        return Err(CmdError::msg("ERR DISCARD without MULTI"));
    }
    ctx.client.multi_error = false;
    ctx.srv.unwatch_all(ctx.client);
    ctx.reply.ok();
    Ok(())
}

fn watch(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::msg("ERR WATCH inside MULTI is not allowed"));
    }
    for key in args.iter().skip(1) {
        ctx.srv.watch(ctx.client, key);
    }
    ctx.reply.ok();
    Ok(())
}

fn unwatch(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    ctx.srv.unwatch_all(ctx.client);
    ctx.reply.ok();
    Ok(())
}
