//! Pub/sub commands: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, their shard-channel
//! forms SSUBSCRIBE, SUNSUBSCRIBE, SPUBLISH (Redis 7.0 sharded pub/sub, one shard here),
//! PUBLISH and PUBSUB.
//!
//! Subscriptions live in two places kept in step here: the client's own sets (for reply
//! counts and cleanup) and the server's registry (for delivery). Messages for other clients
//! are appended to their pending output and their task is woken; this module never writes to
//! a socket. Removing a client's subscriptions when it leaves is `Server::unsubscribe_all`'s job.

use super::{CmdError, CmdResult, Ctx, Spec, container, eq, flags::*, spec};
use crate::client::{Client, ClientShared};
use crate::config::{BufferLimit, Config};
use crate::protocol::{Args, Protocol, Reply};
use crate::pubsub;
use hashbrown::HashSet;
use tracing::warn;

const SUB: u32 = PUBSUB | NOSCRIPT | LOADING | STALE | SUBSCRIBED_OK;

pub static COMMANDS: &[Spec] = &[
    spec("subscribe", -2, SUB, (0, 0, 0), "pubsub", subscribe),
    spec("unsubscribe", -1, SUB, (0, 0, 0), "pubsub", unsubscribe),
    spec("psubscribe", -2, SUB, (0, 0, 0), "pubsub", psubscribe),
    spec("punsubscribe", -1, SUB, (0, 0, 0), "pubsub", punsubscribe),
    spec("ssubscribe", -2, SUB, (1, -1, 1), "pubsub", ssubscribe),
    spec("sunsubscribe", -1, SUB, (1, -1, 1), "pubsub", sunsubscribe),
    spec(
        "publish",
        3,
        PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE,
        (0, 0, 0),
        "pubsub",
        publish,
    ),
    spec(
        "spublish",
        3,
        PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE,
        (1, 1, 1),
        "pubsub",
        spublish,
    ),
    container(
        "pubsub",
        -2,
        PUBSUB | LOADING | STALE,
        "pubsub",
        pubsub_cmd,
        &[
            ("channels", "pubsub|channels", -2),
            ("help", "pubsub|help", 2),
            ("numpat", "pubsub|numpat", 2),
            ("numsub", "pubsub|numsub", -2),
            ("shardchannels", "pubsub|shardchannels", -2),
            ("shardnumsub", "pubsub|shardnumsub", -2),
        ],
    ),
];

/// The three namespaces a client can listen to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Channel,
    Pattern,
    Shard,
}

impl Kind {
    fn verbs(self) -> (&'static str, &'static str) {
        match self {
            Kind::Channel => ("subscribe", "unsubscribe"),
            Kind::Pattern => ("psubscribe", "punsubscribe"),
            Kind::Shard => ("ssubscribe", "sunsubscribe"),
        }
    }

    fn set(self, client: &mut Client) -> &mut HashSet<Vec<u8>> {
        match self {
            Kind::Channel => &mut client.channels,
            Kind::Pattern => &mut client.patterns,
            Kind::Shard => &mut client.shard_channels,
        }
    }

    /// The count a confirmation carries: shard subscriptions are counted apart.
    fn count(self, client: &Client) -> usize {
        match self {
            Kind::Shard => client.shard_channels.len(),
            _ => client.subscriptions(),
        }
    }
}

fn subscribe(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    subscribe_to(ctx, args, Kind::Channel)
}

fn psubscribe(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    subscribe_to(ctx, args, Kind::Pattern)
}

/// Unlike SUBSCRIBE, which Redis keeps allowing in MULTI for compatibility, SSUBSCRIBE is
/// refused inside EXEC: the client expects one reply per command there.
fn ssubscribe(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if ctx.client.in_exec {
        return Err(CmdError::msg(
            "ERR SSUBSCRIBE isn't allowed for a DENY BLOCKING client",
        ));
    }
    subscribe_to(ctx, args, Kind::Shard)
}

fn unsubscribe(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    unsubscribe_from(ctx, args, Kind::Channel)
}

fn punsubscribe(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    unsubscribe_from(ctx, args, Kind::Pattern)
}

fn sunsubscribe(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    unsubscribe_from(ctx, args, Kind::Shard)
}

/// One confirmation per name, in argument order; subscribing twice is not an error.
fn subscribe_to(ctx: &mut Ctx<'_>, args: Args<'_>, kind: Kind) -> CmdResult {
    let id = ctx.client.id;
    for name in args.iter().skip(1) {
        if kind.set(ctx.client).insert(name.to_vec()) {
            match kind {
                Kind::Channel => ctx.srv.pubsub.subscribe(name, id),
                Kind::Pattern => ctx.srv.pubsub.psubscribe(name, id),
                Kind::Shard => ctx.srv.pubsub.ssubscribe(name, id),
            }
        }
        let n = kind.count(ctx.client);
        pubsub::confirmation(&mut ctx.reply, kind.verbs().0, Some(name), n);
    }
    ctx.client.sync_sub_counts();
    Ok(())
}

/// Without arguments, leaves everything of `kind` (one confirmation each, or one with a
/// null name when there was nothing).
fn unsubscribe_from(ctx: &mut Ctx<'_>, args: Args<'_>, kind: Kind) -> CmdResult {
    let id = ctx.client.id;
    let names: Vec<Vec<u8>> = if args.len() > 1 {
        args.iter().skip(1).map(<[u8]>::to_vec).collect()
    } else {
        kind.set(ctx.client).iter().cloned().collect()
    };
    let verb = kind.verbs().1;
    for name in &names {
        if kind.set(ctx.client).remove(name) {
            match kind {
                Kind::Channel => ctx.srv.pubsub.unsubscribe(name, id),
                Kind::Pattern => ctx.srv.pubsub.punsubscribe(name, id),
                Kind::Shard => ctx.srv.pubsub.sunsubscribe(name, id),
            }
        }
        let n = kind.count(ctx.client);
        pubsub::confirmation(&mut ctx.reply, verb, Some(name), n);
    }
    if names.is_empty() {
        let n = kind.count(ctx.client);
        pubsub::confirmation(&mut ctx.reply, verb, None, n);
    }
    ctx.client.sync_sub_counts();
    Ok(())
}

/// Redis 7.0 forces the propagation of PUBLISH and SPUBLISH to replicas (their subscribers
/// get the message too) although no key changes, so the handler feeds the stream itself:
/// the executor only propagates writes that changed something.
fn propagate(ctx: &mut Ctx<'_>, args: Args<'_>) {
    let argv: Vec<&[u8]> = args.iter().collect();
    ctx.srv.feed.feed(ctx.client.db, &argv);
}

/// PUBLISH: delivers to every subscriber and replies how many deliveries were made.
fn publish(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    propagate(ctx, args);
    let own = (ctx.client.id, &mut ctx.reply);
    let count = publish_message(ctx.srv, own, ctx.now_ms, args.get(1), args.get(2));
    ctx.reply.int(count as i64);
    Ok(())
}

/// Delivers a message on `channel` to its subscribers, then to the clients of matching
/// patterns (Redis's order); the publishing client's own copy goes to `own.1`, in line with
/// its replies. Returns the number of deliveries (PUBLISH's reply).
fn publish_message(
    srv: &mut crate::state::Server,
    own: (u64, &mut Reply<'_>),
    now_ms: u64,
    channel: &[u8],
    payload: &[u8],
) -> usize {
    let receivers = srv.pubsub.receivers(channel);
    let limit = Config::buffer_class("pubsub").map(|i| srv.config.client_output_buffer_limit[i]);
    let now_s = now_ms / 1000;
    let (own_id, own_reply) = own;
    for &id in &receivers.direct {
        if id == own_id {
            pubsub::message(own_reply, "message", channel, payload);
        } else if let Some(c) = srv.clients.get(&id) {
            deliver(c, limit, now_s, |r| {
                pubsub::message(r, "message", channel, payload);
            });
        }
    }
    for &(pattern, id) in &receivers.by_pattern {
        if id == own_id {
            pubsub::pmessage(own_reply, pattern, channel, payload);
        } else if let Some(c) = srv.clients.get(&id) {
            deliver(c, limit, now_s, |r| {
                pubsub::pmessage(r, pattern, channel, payload);
            });
        }
    }
    receivers.count()
}

/// Publishes the keyspace notifications raised so far (see [`crate::notify`]), in the
/// order they were raised. `own` is the client whose command raised them, if any: its copies
/// are returned to be placed before that command's reply, as Redis delivers them while the
/// command runs.
pub fn publish_events(srv: &mut crate::state::Server, own: Option<(u64, Protocol)>) -> Vec<u8> {
    use crate::notify::class;
    let mut own_bytes = Vec::new();
    if srv.events.is_empty() {
        return own_bytes;
    }
    let (own_id, proto) = own.unwrap_or((0, Protocol::Resp2));
    let classes = srv.config.notify_keyspace_events;
    let now_ms = srv.now_ms;
    for e in std::mem::take(&mut srv.events) {
        let mut r = Reply::new(&mut own_bytes, proto);
        if classes.has(class::KEYSPACE) {
            publish_message(
                srv,
                (own_id, &mut r),
                now_ms,
                &e.keyspace_channel(),
                e.event.as_bytes(),
            );
        }
        if classes.has(class::KEYEVENT) {
            publish_message(srv, (own_id, &mut r), now_ms, &e.keyevent_channel(), &e.key);
        }
    }
    own_bytes
}

/// SPUBLISH: like PUBLISH for shard channels (`smessage`, no patterns), propagated alike.
fn spublish(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    propagate(ctx, args);
    let (channel, payload) = (args.get(1), args.get(2));
    let srv = &mut *ctx.srv;
    let limit = Config::buffer_class("pubsub").map(|i| srv.config.client_output_buffer_limit[i]);
    let now_s = ctx.now_ms / 1000;
    let receivers = srv.pubsub.shard_subscribers(channel);
    for &id in receivers {
        if id == ctx.client.id {
            pubsub::message(&mut ctx.reply, "smessage", channel, payload);
        } else if let Some(c) = srv.clients.get(&id) {
            deliver(c, limit, now_s, |r| {
                pubsub::message(r, "smessage", channel, payload);
            });
        }
    }
    let count = receivers.len();
    ctx.reply.int(count as i64);
    Ok(())
}

/// Appends a message to another client's pending output and wakes it; a client whose
/// pending output passes its class's limit is disconnected, as Redis does.
pub(super) fn deliver(
    c: &ClientShared,
    limit: Option<BufferLimit>,
    now_s: u64,
    write: impl FnOnce(&mut Reply<'_>),
) {
    if c.killed.get() {
        return;
    }
    let proto = if c.info.borrow().proto == 3 {
        Protocol::Resp3
    } else {
        Protocol::Resp2
    };
    let used = {
        let mut pending = c.pending.borrow_mut();
        write(&mut Reply::new(&mut pending, proto));
        pending.len() as u64
    };
    c.info.borrow_mut().omem = used as usize;
    if limit.is_some_and(|l| over_limit(c, l, used, now_s)) {
        let line = c.info.borrow().line(now_s * 1000);
        warn!("Client {line} scheduled to be closed ASAP for overcoming of output buffer limits.");
        c.killed.set(true);
        c.pending.borrow_mut().clear();
    }
    c.notify.notify_one();
}

/// Redis's rule: over the hard limit, or over the soft limit continuously for more than the
/// soft seconds (the first time it is seen over, the clock starts).
fn over_limit(c: &ClientShared, limit: BufferLimit, used: u64, now_s: u64) -> bool {
    let hard = limit.hard > 0 && used >= limit.hard;
    let soft = limit.soft > 0 && used >= limit.soft;
    if !soft {
        c.obuf_soft_since.set(0);
        return hard;
    }
    let since = c.obuf_soft_since.get();
    if since == 0 {
        c.obuf_soft_since.set(now_s);
        return hard;
    }
    hard || now_s - since > limit.soft_seconds
}

const PUBSUB_HELP: &[&str] = &[
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
];

/// PUBSUB CHANNELS / NUMSUB / NUMPAT / SHARDCHANNELS / SHARDNUMSUB / HELP.
fn pubsub_cmd(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let sub = args.get(1);
    let n = args.len();
    // The executor has checked the subcommand and its arity against the table.
    let syntax = || {
        CmdError::msg(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
            String::from_utf8_lossy(sub)
        ))
    };
    if eq(sub, "help") {
        ctx.reply.array(PUBSUB_HELP.len());
        for l in PUBSUB_HELP {
            ctx.reply.simple(l);
        }
    } else if eq(sub, "numpat") {
        ctx.reply.int(ctx.srv.pubsub.num_patterns() as i64);
    } else if eq(sub, "channels") {
        if n > 3 {
            return Err(syntax());
        }
        let pattern = (n == 3).then(|| args.get(2));
        let list = ctx.srv.pubsub.channels_matching(pattern);
        ctx.reply.array(list.len());
        for c in list {
            ctx.reply.bulk(c);
        }
    } else if eq(sub, "numsub") {
        ctx.reply.array((n - 2) * 2);
        for ch in args.iter().skip(2) {
            ctx.reply.bulk(ch);
            ctx.reply.int(ctx.srv.pubsub.num_subscribers(ch) as i64);
        }
    } else if eq(sub, "shardchannels") {
        if n > 3 {
            return Err(syntax());
        }
        let pattern = (n == 3).then(|| args.get(2));
        let list = ctx.srv.pubsub.shard_channels_matching(pattern);
        ctx.reply.array(list.len());
        for c in list {
            ctx.reply.bulk(c);
        }
    } else {
        // SHARDNUMSUB, the table's last subcommand.
        ctx.reply.array((n - 2) * 2);
        for ch in args.iter().skip(2) {
            ctx.reply.bulk(ch);
            ctx.reply
                .int(ctx.srv.pubsub.shard_subscribers(ch).len() as i64);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::client::Client;
    use crate::exec::Outcome;
    use crate::state::Server;
    use crate::testing::{execute, server as setup};

    /// Runs one command through the executor and returns what the client would read.
    fn run(srv: &mut Server, client: &mut Client, argv: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        let outcome = execute(srv, client, argv, &mut out);
        assert!(matches!(outcome, Outcome::Continue), "{argv:?}");
        out
    }

    #[test]
    fn publish_is_propagated_although_nothing_changed() {
        let (mut srv, mut c) = setup();
        srv.feed.attach();
        assert_eq!(run(&mut srv, &mut c, &["PUBLISH", "ch", "hi"]), b":0\r\n");
        assert_eq!(
            srv.feed.drain(),
            b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$2\r\nhi\r\n"
        );
        assert_eq!(run(&mut srv, &mut c, &["SPUBLISH", "ch", "hi"]), b":0\r\n");
        assert_eq!(
            srv.feed.drain(),
            b"*3\r\n$8\r\nSPUBLISH\r\n$2\r\nch\r\n$2\r\nhi\r\n"
        );
        // A rejected PUBLISH propagates nothing.
        assert!(run(&mut srv, &mut c, &["PUBLISH", "ch"]).starts_with(b"-ERR"));
        assert!(srv.feed.drain().is_empty());
    }

    #[test]
    fn messages_reach_other_clients_pending_output() {
        let (mut srv, mut publisher) = setup();
        let mut sub = Client::new(srv.next_client_id(), None, None, false);
        srv.clients.insert(sub.id, sub.shared.clone());
        run(&mut srv, &mut sub, &["PSUBSCRIBE", "c*"]);
        assert_eq!(sub.shared.info.borrow().psub, 1);
        assert_eq!(sub.shared.info.borrow().flags, "P");
        assert_eq!(
            run(&mut srv, &mut publisher, &["PUBLISH", "ch", "x"]),
            b":1\r\n"
        );
        assert_eq!(
            *sub.shared.pending.borrow(),
            b"*4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\nch\r\n$1\r\nx\r\n"
        );
        srv.unregister_client(&mut sub);
        assert_eq!(srv.pubsub.num_patterns(), 0);
    }

    #[test]
    fn reply_skip_and_off_drop_replies() {
        let (mut srv, mut c) = setup();
        assert_eq!(run(&mut srv, &mut c, &["CLIENT", "REPLY", "SKIP"]), b"");
        assert_eq!(run(&mut srv, &mut c, &["PING"]), b"");
        assert_eq!(run(&mut srv, &mut c, &["PING"]), b"+PONG\r\n");
        assert_eq!(run(&mut srv, &mut c, &["CLIENT", "REPLY", "OFF"]), b"");
        assert_eq!(run(&mut srv, &mut c, &["PING"]), b"");
        assert_eq!(
            run(&mut srv, &mut c, &["CLIENT", "REPLY", "ON"]),
            b"+OK\r\n"
        );
    }

    #[test]
    fn pause_write_holds_only_commands_that_replicate() {
        let (mut srv, mut c) = setup();
        run(&mut srv, &mut c, &["CLIENT", "PAUSE", "100000", "WRITE"]);
        assert_eq!(run(&mut srv, &mut c, &["GET", "k"]), b"$-1\r\n");
        let mut out = Vec::new();
        let outcome = execute(&mut srv, &mut c, &["PUBLISH", "ch", "x"], &mut out);
        assert!(matches!(outcome, Outcome::Paused(_)));
        assert!(out.is_empty());
        run(&mut srv, &mut c, &["CLIENT", "UNPAUSE"]);
        assert_eq!(run(&mut srv, &mut c, &["PUBLISH", "ch", "x"]), b":0\r\n");
    }
}
