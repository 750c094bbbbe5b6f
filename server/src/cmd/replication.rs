//! Replication commands: REPLCONF, PSYNC and SYNC (a replica attaching to us), REPLICAOF and
//! SLAVEOF, ROLE and WAIT. Handlers only record requests and read state: the sockets and the
//! state machines live in `crate::replication`.

use super::{CmdError, CmdResult, Ctx, Spec, eq, flags::*, int_arg, spec};
use crate::client::SyncRequest;
use crate::protocol::Args;
use crate::state::blocking::{Block, TimeoutReply};
use crate::state::replication::master_link::LinkState;
use tracing::info;

pub static COMMANDS: &[Spec] = &[
    spec(
        "replconf",
        -1,
        ADMIN | NOSCRIPT | LOADING | STALE | ALLOW_BUSY,
        (0, 0, 0),
        "server",
        replconf,
    ),
    spec(
        "psync",
        -3,
        ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI,
        (0, 0, 0),
        "server",
        psync,
    ),
    spec(
        "sync",
        1,
        ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI,
        (0, 0, 0),
        "server",
        sync,
    ),
    spec(
        "replicaof",
        3,
        ADMIN | NOSCRIPT | STALE | NO_ASYNC_LOADING,
        (0, 0, 0),
        "server",
        replicaof,
    ),
    spec(
        "slaveof",
        3,
        ADMIN | NOSCRIPT | STALE | NO_ASYNC_LOADING,
        (0, 0, 0),
        "server",
        replicaof,
    ),
    spec(
        "role",
        1,
        NOSCRIPT | LOADING | STALE | FAST,
        (0, 0, 0),
        "server",
        role,
    ),
    spec("wait", 3, NOSCRIPT, (0, 0, 0), "generic", wait),
    spec(
        "failover",
        -1,
        ADMIN | NOSCRIPT | STALE,
        (0, 0, 0),
        "server",
        failover,
    ),
];

/// FAILOVER [TO host port [FORCE]] [ABORT] [TIMEOUT ms] (see [`crate::replication::failover`]).
fn failover(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    use crate::replication::failover;
    if args.len() == 2 && eq(args.get(1), "abort") {
        if ctx.srv.repl.failover.is_none() {
            return Err(CmdError::msg("ERR No failover in progress."));
        }
        failover::abort(ctx.srv, "Failover manually aborted");
        ctx.reply.ok();
        return Ok(());
    }
    let (mut timeout, mut force, mut target) = (None, false, None);
    let mut j = 1;
    while j < args.len() {
        let a = args.get(j);
        if eq(a, "timeout") && j + 1 < args.len() && timeout.is_none() {
            let t = int_arg(args.get(j + 1))?;
            if t <= 0 {
                return Err(CmdError::msg("ERR FAILOVER timeout must be greater than 0"));
            }
            timeout = Some(t as u64);
            j += 2;
        } else if eq(a, "to") && j + 2 < args.len() && target.is_none() {
            let port = int_arg(args.get(j + 2))?;
            target = Some((utf8(args.get(j + 1)), u16::try_from(port).unwrap_or(0)));
            j += 3;
        } else if eq(a, "force") && !force {
            force = true;
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let now = ctx.now_ms;
    failover::start(ctx.srv, target, timeout, force, now).map_err(CmdError::msg)?;
    ctx.reply.ok();
    Ok(())
}

fn utf8(a: &[u8]) -> String {
    String::from_utf8_lossy(a).into_owned()
}

/// `REPLCONF <option> <value> ...`: what a replica tells us before PSYNC, and GETACK from
/// our master. ACK is read by the replica link itself; here (a client that is not a
/// replica) it is ignored without a reply, as Redis does.
fn replconf(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    let mut i = 1;
    while i < args.len() {
        let (opt, val) = (args.get(i), args.get(i + 1));
        if eq(opt, "listening-port") {
            let p = int_arg(val)?;
            ctx.client.repl_conf.listening_port = u16::try_from(p).unwrap_or(0);
        } else if eq(opt, "ip-address") {
            ctx.client.repl_conf.ip_address = Some(utf8(val));
        } else if eq(opt, "capa") {
            if eq(val, "eof") {
                ctx.client.repl_conf.capa_eof = true;
            } else if eq(val, "psync2") {
                ctx.client.repl_conf.capa_psync2 = true;
            }
        } else if eq(opt, "ack") || eq(opt, "fack") {
            return Ok(());
        } else if eq(opt, "getack") {
            if ctx.client.is_master {
                let off = ctx.srv.feed.offset;
                if let Some(m) = ctx.srv.repl.master.as_mut() {
                    m.getack = Some(off);
                }
            }
            return Ok(());
        } else if eq(opt, "rdb-only") {
            ctx.client.repl_conf.rdb_only = eq(val, "1");
        } else if eq(opt, "rdb-filter-only") {
        } else {
            return Err(CmdError::msg(format!(
                "ERR Unrecognized REPLCONF option: {}",
                utf8(opt)
            )));
        }
        i += 2;
    }
    ctx.reply.ok();
    Ok(())
}

/// Refusals common to SYNC and PSYNC (`syncCommand`).
fn sync_refusal(ctx: &Ctx<'_>) -> Option<CmdError> {
    if ctx.client.is_master {
        return Some(CmdError::msg(
            "ERR Command is not valid when client is a replica.",
        ));
    }
    if ctx.srv.repl.failover.is_some() {
        return Some(CmdError::msg("NOMASTERLINK Can't SYNC while failing over"));
    }
    if ctx
        .srv
        .repl
        .master
        .as_ref()
        .is_some_and(|m| m.state != LinkState::Connected)
    {
        return Some(CmdError::msg(
            "NOMASTERLINK Can't SYNC while not connected with my master",
        ));
    }
    None
}

/// PSYNC <replid> <offset>: the reply (`+CONTINUE`/`+FULLRESYNC`) and everything after it
/// is sent by the replica link the connection becomes.
fn psync(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    // The master of a FAILOVER asks us to take over before it follows us.
    if args.len() > 3 && eq(args.get(3), "failover") && !ctx.client.is_master {
        info!(
            "Failover request received for replid {}.",
            utf8(args.get(1))
        );
        if !ctx.srv.repl.is_replica() {
            return Err(CmdError::msg(
                "ERR PSYNC FAILOVER can't be sent to a master.",
            ));
        }
        if args.get(1) != ctx.srv.repl.ids.replid.as_bytes() {
            return Err(CmdError::msg(
                "ERR PSYNC FAILOVER replid must match my replid.",
            ));
        }
        let who = ctx.client.shared.info.borrow().line(ctx.now_ms);
        crate::replication::role::promote(ctx.srv, &format!("failover request from '{who}'"));
    }
    if let Some(e) = sync_refusal(ctx) {
        return Err(e);
    }
    ctx.client.sync_request = Some(SyncRequest {
        psync: Some((utf8(args.get(1)), utf8(args.get(2)))),
    });
    Ok(())
}

fn sync(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    if let Some(e) = sync_refusal(ctx) {
        return Err(e);
    }
    ctx.client.sync_request = Some(SyncRequest { psync: None });
    Ok(())
}

/// `REPLICAOF host port | NO ONE` (and SLAVEOF).
fn replicaof(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if ctx.client.is_master {
        return Err(CmdError::msg(
            "ERR Command is not valid when client is a replica.",
        ));
    }
    let who = {
        let i = ctx.client.shared.info.borrow();
        format!("id={} addr={} laddr={}", i.id, i.addr, i.laddr)
    };
    let srv = &mut *ctx.srv;
    if srv.repl.failover.is_some() {
        return Err(CmdError::msg(
            "ERR REPLICAOF not allowed while failing over.",
        ));
    }
    if eq(args.get(1), "no") && eq(args.get(2), "one") {
        crate::replication::role::promote(srv, &format!("user request from '{who}'"));
        ctx.reply.ok();
        return Ok(());
    }
    let port = int_arg(args.get(2))
        .ok()
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| CmdError::msg("ERR Invalid master port"))?;
    let host = utf8(args.get(1));
    if let Some(m) = srv.repl.master.as_ref()
        && m.host.eq_ignore_ascii_case(&host)
        && m.port == port
    {
        info!(
            "REPLICAOF would result into synchronization with the master we are already connected with. No operation performed."
        );
        ctx.reply.simple("OK Already connected to specified master");
        return Ok(());
    }
    crate::replication::role::follow(srv, &host, port);
    info!("REPLICAOF {host}:{port} enabled (user request from '{who}')");
    ctx.reply.ok();
    Ok(())
}

fn role(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let srv = &*ctx.srv;
    match &srv.repl.master {
        Some(m) => {
            ctx.reply.array(5);
            ctx.reply.bulk(b"slave");
            ctx.reply.bulk(m.host.as_bytes());
            ctx.reply.int(i64::from(m.port));
            ctx.reply.bulk(m.state.role_name().as_bytes());
            if m.state == LinkState::Connected {
                ctx.reply.int(srv.feed.offset as i64);
            } else {
                ctx.reply.int(-1);
            }
        }
        None => {
            ctx.reply.array(3);
            ctx.reply.bulk(b"master");
            ctx.reply.int(srv.feed.offset as i64);
            let online: Vec<_> = srv
                .repl
                .replicas
                .iter()
                .filter(|l| {
                    l.state.get() == crate::state::replication::replicas::ReplicaState::Online
                })
                .collect();
            ctx.reply.array(online.len());
            for l in online {
                ctx.reply.array(3);
                ctx.reply.bulk(l.ip.as_bytes());
                ctx.reply.bulk(l.port.to_string().as_bytes());
                ctx.reply.bulk(l.ack_off.get().to_string().as_bytes());
            }
        }
    }
    Ok(())
}

/// `WAIT numreplicas timeout`: blocks until that many replicas acknowledged the client's
/// last write, asking them with `REPLCONF GETACK *` once. The target is the client's write
/// offset when it blocked; re-runs after each ACK keep it.
fn wait(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if ctx.srv.repl.is_replica() {
        return Err(CmdError::msg(
            "ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.",
        ));
    }
    let n = int_arg(args.get(1))?;
    let timeout = int_arg(args.get(2))
        .map_err(|_| CmdError::msg("ERR timeout is not an integer or out of range"))?;
    if timeout < 0 {
        return Err(CmdError::msg("ERR timeout is negative"));
    }
    let target = ctx.client.woff;
    let acked = ctx.srv.repl.acked(target);
    let id = ctx.client.id;
    if acked as i64 >= n || ctx.client.multi.is_some() {
        ctx.srv.repl.waiters.retain(|&w| w != id);
        ctx.reply.int(acked as i64);
        return Ok(());
    }
    if !ctx.srv.repl.waiters.contains(&id) {
        ctx.srv.repl.waiters.push(id);
    }
    // Every WAIT that blocks asks once, as Redis does; a re-run woken by an ACK does not (it
    // would ask again on every answer). An id left in `waiters` by a WAIT that timed out
    // must not stop the next one from asking.
    if ctx.woken_by.is_none() {
        ctx.srv.repl.want_getack = true;
    }
    ctx.block = Some(Block {
        keys: Vec::new(),
        timeout_ms: timeout as u64,
        on_timeout: TimeoutReply::Acked(target),
    });
    Ok(())
}
