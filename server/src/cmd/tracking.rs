//! CLIENT TRACKING / CACHING / GETREDIR / TRACKINGINFO, and the delivery of invalidation
//! messages decided by [`crate::tracking`]: a RESP3 push `invalidate` to the tracking client,
//! or to the client it redirects to (a `message` on `__redis__:invalidate` when that client
//! is a RESP2 subscriber), with Redis 7.0's handling of a redirect target that went away.

use super::{CmdError, CmdResult, Ctx, Spec, eq, flags};
use crate::client::Client;
use crate::config::Config;
use crate::protocol::{Args, Protocol, Reply};
use crate::state::Server;
use crate::tracking::{ClientTracking, Invalidation, check_options};

/// CLIENT TRACKING ON|OFF [REDIRECT id] [BCAST] [PREFIX p]... [OPTIN] [OPTOUT] [NOLOOP].
pub(super) fn tracking(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let mut wanted = ClientTracking::default();
    let mut j = 3;
    while j < args.len() {
        let a = args.get(j);
        let more = j + 1 < args.len();
        if eq(a, "redirect") && more {
            j += 1;
            if wanted.redirect != 0 {
                return Err(CmdError::msg(
                    "ERR A client can only redirect to a single other client",
                ));
            }
            let id = super::int_arg(args.get(j))?;
            if id <= 0 || !ctx.srv.clients.contains_key(&(id as u64)) {
                return Err(CmdError::msg(
                    "ERR The client ID you want redirect to does not exist",
                ));
            }
            wanted.redirect = id as u64;
        } else if eq(a, "bcast") {
            wanted.bcast = true;
        } else if eq(a, "optin") {
            wanted.optin = true;
        } else if eq(a, "optout") {
            wanted.optout = true;
        } else if eq(a, "noloop") {
            wanted.noloop = true;
        } else if eq(a, "prefix") && more {
            j += 1;
            wanted.prefixes.push(args.get(j).to_vec());
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    let id = ctx.client.id;
    if eq(args.get(2), "on") {
        check_options(ctx.srv.tracking.of(id), &wanted).map_err(CmdError::msg)?;
        ctx.srv.tracking.enable(id, wanted);
    } else if eq(args.get(2), "off") {
        ctx.srv.tracking.disable(id);
        ctx.client.tracking_caching = false;
    } else {
        return Err(CmdError::Syntax);
    }
    sync_info(ctx.srv, id);
    ctx.reply.ok();
    Ok(())
}

/// Mirrors a client's tracking state into what CLIENT LIST shows of it.
fn sync_info(srv: &Server, id: u64) {
    let Some(c) = srv.clients.get(&id) else {
        return;
    };
    let mut info = c.info.borrow_mut();
    match srv.tracking.of(id) {
        None => {
            info.tracking_flags = "";
            info.redir = -1;
        }
        Some(t) => {
            info.tracking_flags = match (t.broken_redirect, t.bcast) {
                (false, false) => "t",
                (true, false) => "tR",
                (false, true) => "tB",
                (true, true) => "tRB",
            };
            info.redir = t.redirect as i64;
        }
    }
}

/// Turns tracking off for a client that disconnects or RESETs.
pub fn forget(srv: &mut Server, client: &mut Client) {
    srv.tracking.disable(client.id);
    client.tracking_caching = false;
    sync_info(srv, client.id);
}

/// CLIENT CACHING YES|NO: the next command (or transaction) is cached (OPTIN) or not
/// (OPTOUT).
pub(super) fn caching(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let Some(t) = ctx.srv.tracking.of(ctx.client.id) else {
        return Err(CmdError::msg(
            "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled",
        ));
    };
    let opt = args.get(2);
    if eq(opt, "yes") {
        if !t.optin {
            return Err(CmdError::msg(
                "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
            ));
        }
    } else if eq(opt, "no") {
        if !t.optout {
            return Err(CmdError::msg(
                "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
            ));
        }
    } else {
        return Err(CmdError::Syntax);
    }
    ctx.client.tracking_caching = true;
    ctx.reply.ok();
    Ok(())
}

/// CLIENT GETREDIR: the redirect target, 0 without one, -1 when tracking is off.
pub(super) fn getredir(ctx: &mut Ctx<'_>) {
    let r = ctx
        .srv
        .tracking
        .of(ctx.client.id)
        .map_or(-1, |t| t.redirect as i64);
    ctx.reply.int(r);
}

/// CLIENT TRACKINGINFO: flags (a set), redirect, prefixes.
pub(super) fn trackinginfo(ctx: &mut Ctx<'_>) {
    let t = ctx.srv.tracking.of(ctx.client.id).cloned();
    let caching = ctx.client.tracking_caching;
    let mut flags: Vec<&str> = Vec::new();
    match &t {
        None => flags.push("off"),
        Some(t) => {
            flags.push("on");
            if t.bcast {
                flags.push("bcast");
            }
            if t.optin {
                flags.push("optin");
                if caching {
                    flags.push("caching-yes");
                }
            }
            if t.optout {
                flags.push("optout");
                if caching {
                    flags.push("caching-no");
                }
            }
            if t.noloop {
                flags.push("noloop");
            }
            if t.broken_redirect {
                flags.push("broken_redirect");
            }
        }
    }
    let r = &mut ctx.reply;
    r.map(3);
    r.bulk(b"flags");
    r.set(flags.len());
    flags.iter().for_each(|f| r.bulk(f.as_bytes()));
    r.bulk(b"redirect");
    r.int(t.as_ref().map_or(-1, |t| t.redirect as i64));
    r.bulk(b"prefixes");
    let prefixes = t.map(|t| t.prefixes).unwrap_or_default();
    r.array(prefixes.len());
    prefixes.iter().for_each(|p| r.bulk(p));
}

/// After a client's command: the keys it read are remembered when it tracks them (Redis's
/// `trackingRememberKeys`: read-only commands, OPTIN only after CACHING YES, OPTOUT unless
/// CACHING NO; not the keys of the `_RO` script commands, whose own reads count).
pub fn remember_reads(srv: &mut Server, client: &Client, spec: &Spec, args: Args<'_>) {
    if !spec.is(flags::READONLY) || spec.is(flags::PUBSUB) {
        return;
    }
    if matches!(spec.name, "eval_ro" | "evalsha_ro" | "fcall_ro") {
        return;
    }
    let Some(t) = srv.tracking.of(client.id) else {
        return;
    };
    let caching = client.tracking_caching;
    if t.bcast || (t.optin && !caching) || (t.optout && caching) {
        return;
    }
    if let Ok(keys) = super::getkeys::key_indices(spec, args) {
        let max = srv.config.tracking_table_max_keys as usize;
        srv.tracking
            .remember(client.id, keys.into_iter().map(|i| args.get(i).to_vec()));
        srv.tracking.limit(max);
    }
}

/// Delivers the invalidations decided so far, the broadcasts included. `own` is the client
/// whose command just ended: its own messages are returned, to follow that command's reply
/// (Redis sends them once the command is done, never inside a transaction's reply).
pub fn deliver_invalidations(srv: &mut Server, own: Option<(u64, Protocol)>) -> Vec<u8> {
    let mut own_bytes = Vec::new();
    if !srv.tracking.has_pending() {
        return own_bytes;
    }
    srv.tracking.broadcast();
    let (own_id, own_proto) = own.unwrap_or((0, Protocol::Resp2));
    let limit = Config::buffer_class("pubsub").map(|i| srv.config.client_output_buffer_limit[i]);
    let now_s = srv.now_ms / 1000;
    for inv in srv.tracking.take_pending() {
        let (target, keys) = match inv {
            Invalidation::Keys { target, keys } => (target, Some(keys)),
            Invalidation::All { target } => (target, None),
        };
        let Some(t) = srv.tracking.of(target).cloned() else {
            continue;
        };
        let Some(tracker_proto) = proto_of(srv, target, own_id, own_proto) else {
            continue;
        };
        let receiver = if t.redirect == 0 {
            target
        } else if srv.clients.contains_key(&t.redirect) {
            t.redirect
        } else {
            // The target went away: say so to a RESP3 tracker, drop the message.
            if let Some(tt) = srv.tracking.of_mut(target) {
                tt.broken_redirect = true;
            }
            sync_info(srv, target);
            if tracker_proto == Protocol::Resp3 {
                write_to(
                    srv,
                    target,
                    (own_id, own_proto),
                    &mut own_bytes,
                    limit,
                    now_s,
                    |r| {
                        r.push(2);
                        r.bulk(b"tracking-redir-broken");
                        r.int(t.redirect as i64);
                    },
                );
            }
            continue;
        };
        let Some(receiver_proto) = proto_of(srv, receiver, own_id, own_proto) else {
            continue;
        };
        let subscribed = srv
            .clients
            .get(&receiver)
            .is_some_and(|c| c.info.borrow().flags.contains('P'));
        let as_message = receiver_proto == Protocol::Resp2;
        if as_message && !(t.redirect != 0 && subscribed) {
            // A RESP2 connection can only take invalidations as a subscriber of
            // `__redis__:invalidate` through a redirect.
            continue;
        }
        write_to(
            srv,
            receiver,
            (own_id, own_proto),
            &mut own_bytes,
            limit,
            now_s,
            |r| {
                if as_message {
                    r.array(3);
                    r.bulk(b"message");
                    r.bulk(b"__redis__:invalidate");
                } else {
                    r.push(2);
                    r.bulk(b"invalidate");
                }
                match &keys {
                    Some(keys) => {
                        r.array(keys.len());
                        keys.iter().for_each(|k| r.bulk(k));
                    }
                    // A flush: the null of the tracking client's protocol, as Redis writes it.
                    None if tracker_proto == Protocol::Resp3 => r.raw(b"_\r\n"),
                    None => r.raw(b"$-1\r\n"),
                }
            },
        );
    }
    own_bytes
}

fn proto_of(srv: &Server, id: u64, own_id: u64, own_proto: Protocol) -> Option<Protocol> {
    if id == own_id {
        return Some(own_proto);
    }
    let c = srv.clients.get(&id)?;
    Some(if c.info.borrow().proto == 3 {
        Protocol::Resp3
    } else {
        Protocol::Resp2
    })
}

fn write_to(
    srv: &Server,
    id: u64,
    own: (u64, Protocol),
    own_bytes: &mut Vec<u8>,
    limit: Option<crate::config::BufferLimit>,
    now_s: u64,
    write: impl FnOnce(&mut Reply<'_>),
) {
    if id == own.0 {
        write(&mut Reply::new(own_bytes, own.1));
    } else if let Some(c) = srv.clients.get(&id) {
        super::pubsub::deliver(c, limit, now_s, write);
    }
}
