//! Connection commands: PING, ECHO, HELLO, AUTH, SELECT, QUIT, RESET, CLIENT, and the
//! transaction verbs (MULTI, EXEC, DISCARD, WATCH, UNWATCH; EXEC itself runs in `exec`).

use super::{CmdError, CmdResult, Ctx, Spec, eq, flags::*, int_arg, spec};
use crate::protocol::{Args, Protocol};

pub static COMMANDS: &[Spec] = &[
    spec(
        "ping",
        -1,
        FAST | STALE | LOADING | SUBSCRIBED_OK,
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
        FAST | NO_AUTH | STALE | LOADING | NOSCRIPT,
        (0, 0, 0),
        "connection",
        hello,
    ),
    spec(
        "auth",
        -2,
        FAST | NO_AUTH | STALE | LOADING | NOSCRIPT,
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
        FAST | NO_AUTH | STALE | LOADING | NO_MULTI_QUEUE | SUBSCRIBED_OK,
        (0, 0, 0),
        "connection",
        quit,
    ),
    spec(
        "reset",
        1,
        FAST | NO_AUTH | STALE | LOADING | NO_MULTI_QUEUE | SUBSCRIBED_OK,
        (0, 0, 0),
        "connection",
        reset,
    ),
    spec(
        "client",
        -2,
        ADMIN | STALE | LOADING | NOSCRIPT,
        (0, 0, 0),
        "connection",
        client,
    ),
    spec(
        "multi",
        1,
        FAST | STALE | LOADING | NO_MULTI_QUEUE | NOSCRIPT,
        (0, 0, 0),
        "transactions",
        multi,
    ),
    spec(
        "exec",
        1,
        STALE | LOADING | NO_MULTI_QUEUE | NOSCRIPT,
        (0, 0, 0),
        "transactions",
        exec_placeholder,
    ),
    spec(
        "discard",
        1,
        FAST | STALE | LOADING | NO_MULTI_QUEUE | NOSCRIPT,
        (0, 0, 0),
        "transactions",
        discard,
    ),
    spec(
        "watch",
        -2,
        FAST | STALE | LOADING | NO_MULTI_QUEUE | NOSCRIPT,
        (1, -1, 1),
        "transactions",
        watch,
    ),
    spec(
        "unwatch",
        1,
        FAST | STALE | LOADING | NOSCRIPT,
        (0, 0, 0),
        "transactions",
        unwatch,
    ),
];

fn ping(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len() > 2 {
        return Err(super::arity_error("ping"));
    }
    if ctx.client.subscriptions() > 0 && ctx.client.proto == Protocol::Resp2 {
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
    let Some(required) = ctx.srv.config.requirepass.clone() else {
        if user.is_none() {
            return Err(CmdError::msg(
                "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            ));
        }
        if user.is_some_and(|u| u == b"default") {
            ctx.client.authenticated = true;
            return Ok(());
        }
        return Err(CmdError::msg(
            "WRONGPASS invalid username-password pair or user is disabled.",
        ));
    };
    let user_ok = user.is_none_or(|u| u == b"default");
    if user_ok && constant_time_eq(pass, required.as_bytes()) {
        ctx.client.authenticated = true;
        Ok(())
    } else {
        Err(CmdError::msg(
            "WRONGPASS invalid username-password pair or user is disabled.",
        ))
    }
}

/// Compares secrets without leaking the position of the first difference through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
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
    ctx.reply.bulk(crate::info::REDIS_VERSION.as_bytes());
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
    ctx.client.db = 0;
    ctx.client.name = None;
    ctx.client.shared.info.borrow_mut().name = None;
    ctx.client.reply_off = false;
    ctx.client.reply_skip_next = false;
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
    "    * ID <client-id>",
    "      Kill connections by client id.",
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
    "HELP",
    "    Prints this help.",
];

/// One CLIENT LIST line, in Redis 7.0's field order.
fn client_line(info: &crate::client::ClientInfo, now_ms: u64) -> String {
    let flags = if info.flags.is_empty() {
        "N".to_string()
    } else {
        info.flags.clone()
    };
    format!(
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub=0 multi={} qbuf={} qbuf-free={} argv-mem=0 multi-mem=0 rbs=16384 rbp=0 obl=0 oll=0 omem={} tot-mem={} events=r cmd={} user=default redir=-1 resp={}",
        info.id,
        info.addr,
        info.laddr,
        info.fd,
        info.name
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default(),
        now_ms.saturating_sub(info.created_ms) / 1000,
        now_ms.saturating_sub(info.last_interaction_ms) / 1000,
        flags,
        info.db,
        info.sub,
        info.psub,
        info.multi,
        info.qbuf,
        16384usize.saturating_sub(info.qbuf),
        info.omem,
        16384 + info.qbuf + info.omem,
        info.last_cmd,
        info.proto,
    )
}

fn client(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let sub = args.get(1);
    let wrong = || {
        CmdError::msg(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(sub)
        ))
    };
    let n = args.len();
    if eq(sub, "help") && n == 2 {
        ctx.reply.array(CLIENT_HELP.len());
        for l in CLIENT_HELP {
            ctx.reply.simple(l);
        }
    } else if eq(sub, "id") && n == 2 {
        ctx.reply.int(ctx.client.id as i64);
    } else if eq(sub, "getname") && n == 2 {
        match ctx.client.name.clone() {
            Some(name) => ctx.reply.bulk(&name),
            None => ctx.reply.null(),
        }
    } else if eq(sub, "setname") && n == 3 {
        set_name(ctx, args.get(2))?;
        ctx.reply.ok();
    } else if eq(sub, "info") && n == 2 {
        let mut info = ctx.client.shared.info.borrow().clone();
        info.last_cmd = "client|info";
        let line = client_line(&info, ctx.now_ms) + "\n";
        ctx.reply.verbatim(line.as_bytes());
    } else if eq(sub, "list") {
        let mut ids: Option<Vec<u64>> = None;
        let mut i = 2;
        while i < n {
            if eq(args.get(i), "type") && i + 1 < n {
                let t = args.get(i + 1);
                if !["normal", "master", "replica", "slave", "pubsub"]
                    .iter()
                    .any(|x| eq(t, x))
                {
                    return Err(CmdError::msg(format!(
                        "ERR Unknown client type '{}'",
                        String::from_utf8_lossy(t)
                    )));
                }
                i += 2;
            } else if eq(args.get(i), "id") && i + 1 < n {
                let mut v = Vec::new();
                for a in args.iter().skip(i + 1) {
                    let id = int_arg(a).map_err(|_| CmdError::msg("ERR Invalid client ID"))?;
                    v.push(id as u64);
                }
                ids = Some(v);
                i = n;
            } else {
                return Err(CmdError::Syntax);
            }
        }
        let mut all: Vec<_> = ctx
            .srv
            .clients
            .values()
            .map(|c| c.info.borrow().clone())
            .collect();
        all.sort_by_key(|c| c.id);
        let mut text = String::new();
        for mut info in all {
            if ids.as_ref().is_some_and(|ids| !ids.contains(&info.id)) {
                continue;
            }
            if info.id == ctx.client.id {
                info.last_cmd = "client|list";
            }
            text.push_str(&client_line(&info, ctx.now_ms));
            text.push('\n');
        }
        ctx.reply.verbatim(text.as_bytes());
    } else if eq(sub, "kill") && n >= 3 {
        client_kill(ctx, args)?;
    } else if eq(sub, "pause") && (n == 3 || n == 4) {
        let ms = int_arg(args.get(2))
            .map_err(|_| CmdError::msg("ERR timeout is not an integer or out of range"))?;
        if ms < 0 {
            return Err(CmdError::msg("ERR timeout is negative"));
        }
        let writes_only = match n {
            4 if eq(args.get(3), "write") => true,
            4 if eq(args.get(3), "all") => false,
            4 => return Err(CmdError::Syntax),
            _ => false,
        };
        ctx.srv.pause = Some((ctx.now_ms + ms as u64, writes_only));
        ctx.reply.ok();
    } else if eq(sub, "unpause") && n == 2 {
        ctx.srv.pause = None;
        ctx.reply.ok();
    } else if eq(sub, "reply") && n == 3 {
        let a = args.get(2);
        if eq(a, "on") {
            ctx.client.reply_off = false;
            ctx.reply.ok();
        } else if eq(a, "off") {
            ctx.client.reply_off = true;
        } else if eq(a, "skip") {
            ctx.client.reply_skip_next = true;
        } else {
            return Err(CmdError::Syntax);
        }
    } else {
        return Err(wrong());
    }
    Ok(())
}

/// The class CLIENT KILL TYPE matches: replica links are flagged `S`, our master's link `M`.
fn client_type(info: &crate::client::ClientInfo) -> &'static str {
    if info.flags.contains('S') {
        "replica"
    } else if info.flags.contains('M') {
        "master"
    } else if info.sub + info.psub > 0 {
        "pubsub"
    } else {
        "normal"
    }
}

/// CLIENT KILL addr | CLIENT KILL <filter> <value> ...
fn client_kill(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let n = args.len();
    let mut addr = None;
    let mut laddr = None;
    let mut id = None;
    let mut skipme = true;
    let mut ctype: Option<String> = None;
    let old_style = n == 3;
    if old_style {
        addr = Some(String::from_utf8_lossy(args.get(2)).into_owned());
    } else {
        if !n.is_multiple_of(2) {
            return Err(CmdError::Syntax);
        }
        for i in (2..n).step_by(2) {
            let (k, v) = (args.get(i), args.get(i + 1));
            if eq(k, "addr") {
                addr = Some(String::from_utf8_lossy(v).into_owned());
            } else if eq(k, "laddr") {
                laddr = Some(String::from_utf8_lossy(v).into_owned());
            } else if eq(k, "id") {
                let v = int_arg(v)
                    .map_err(|_| CmdError::msg("ERR client-id should be greater than 0"))?;
                if v <= 0 {
                    return Err(CmdError::msg("ERR client-id should be greater than 0"));
                }
                id = Some(v as u64);
            } else if eq(k, "skipme") {
                skipme = if eq(v, "yes") {
                    true
                } else if eq(v, "no") {
                    false
                } else {
                    return Err(CmdError::Syntax);
                };
            } else if eq(k, "type") || eq(k, "user") {
                if eq(k, "type")
                    && !["normal", "master", "replica", "slave", "pubsub"]
                        .iter()
                        .any(|x| eq(v, x))
                {
                    return Err(CmdError::msg(format!(
                        "ERR Unknown client type '{}'",
                        String::from_utf8_lossy(v)
                    )));
                }
                if eq(k, "type") {
                    ctype = Some(String::from_utf8_lossy(v).to_ascii_lowercase());
                }
            } else {
                return Err(CmdError::Syntax);
            }
        }
    }
    let mut killed = 0;
    for (cid, c) in &ctx.srv.clients {
        let info = c.info.borrow();
        let matches = addr.as_ref().is_none_or(|a| *a == info.addr)
            && laddr.as_ref().is_none_or(|a| *a == info.laddr)
            && id.is_none_or(|i| i == *cid)
            && ctype
                .as_deref()
                .is_none_or(|t| client_type(&info) == t.replace("slave", "replica"));
        if !matches || (skipme && *cid == ctx.client.id && !old_style) {
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
