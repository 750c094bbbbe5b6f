//! Consumer-group commands: XGROUP, XREADGROUP, XACK, XPENDING, XCLAIM, XAUTOCLAIM and XINFO,
//! with Redis 7.0's entries-read/lag bookkeeping and its propagation: XREADGROUP, XCLAIM and
//! XAUTOCLAIM reach replicas as one `XCLAIM ... FORCE JUSTID LASTID` per entry (or
//! `XGROUP SETID ... ENTRIESREAD` for NOACK), never as themselves.

use super::io::{
    block_on_streams, may_serve, parse_range, parse_read, parse_strict_id, read_reply_head,
    read_reply_key, read_stream, reply_entry, stream_at, write_stream,
};
use crate::cmd::{CmdError, CmdResult, Ctx, eq, int_arg};
use crate::keyspace::Value;
use crate::keyspace::stream::group::{ENTRIES_READ_UNKNOWN, Group, Pending};
use crate::keyspace::stream::{Stream, StreamId};
use crate::notify::class;
use crate::protocol::{Args, Reply};

fn no_group(key: &[u8], group: &[u8], suffix: &str) -> CmdError {
    CmdError::msg(format!(
        "NOGROUP No such key '{}' or consumer group '{}'{suffix}",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(group)
    ))
}

/// Runs `f` on the stream at `key` and its group `name` (taken out of the stream meanwhile,
/// so `f` can read the entries while it changes the group), with the reply and the time.
///
/// # Errors
/// WRONGTYPE, or NOGROUP (with `suffix` after Redis's common text) when either is missing.
fn with_group<R>(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    name: &[u8],
    suffix: &str,
    f: impl FnOnce(&mut Stream, &mut Group, &mut Reply<'_>, u64) -> R,
) -> Result<R, CmdError> {
    let missing = || no_group(key, name, suffix);
    if write_stream(ctx, key)?.is_none_or(|s| !s.groups.contains_key(name)) {
        return Err(missing());
    }
    let i = ctx.find(key).ok_or_else(missing)?;
    let now = ctx.now_ms;
    let (db, reply) = ctx.db_and_reply();
    let Value::Stream(s) = &mut db.entry_mut(i).value else {
        return Err(CmdError::WrongType);
    };
    let (gname, mut g) = s.groups.remove_entry(name).ok_or_else(missing)?;
    let r = f(s, &mut g, reply, now);
    s.groups.insert(gname, g);
    Ok(r)
}

/// The commands a group command reaches replicas as, built only when something reads the
/// replication feed (most of an XREADGROUP's cost otherwise).
struct Effects {
    on: bool,
    cmds: Vec<Vec<Vec<u8>>>,
}

impl Effects {
    fn new(ctx: &Ctx<'_>) -> Self {
        Effects {
            on: ctx.srv.feed.is_active(),
            cmds: Vec::new(),
        }
    }

    fn push(&mut self, cmd: impl FnOnce() -> Vec<Vec<u8>>) {
        if self.on {
            self.cmds.push(cmd());
        }
    }

    /// Hands the commands to the executor: these instead of the command itself.
    fn propagate(self, ctx: &mut Ctx<'_>) {
        if self.cmds.is_empty() {
            ctx.no_propagate();
        } else {
            ctx.rewrite(self.cmds);
        }
    }
}

/// `XCLAIM key group consumer 0 id TIME t RETRYCOUNT n FORCE JUSTID LASTID last`: how Redis
/// 7.0 propagates a delivery or claim (`streamPropagateXCLAIM`).
fn xclaim_effect(key: &[u8], group: &[u8], g: &Group, id: StreamId, p: &Pending) -> Vec<Vec<u8>> {
    vec![
        b"XCLAIM".to_vec(),
        key.to_vec(),
        group.to_vec(),
        p.consumer.to_vec(),
        b"0".to_vec(),
        id.text().to_vec(),
        b"TIME".to_vec(),
        p.delivery_time.to_string().into_bytes(),
        b"RETRYCOUNT".to_vec(),
        p.delivery_count.to_string().into_bytes(),
        b"FORCE".to_vec(),
        b"JUSTID".to_vec(),
        b"LASTID".to_vec(),
        g.last_id.text().to_vec(),
    ]
}

/// `XGROUP SETID key group last ENTRIESREAD n` (`streamPropagateGroupID`).
fn setid_effect(key: &[u8], group: &[u8], g: &Group) -> Vec<Vec<u8>> {
    vec![
        b"XGROUP".to_vec(),
        b"SETID".to_vec(),
        key.to_vec(),
        group.to_vec(),
        g.last_id.text().to_vec(),
        b"ENTRIESREAD".to_vec(),
        g.entries_read.to_string().into_bytes(),
    ]
}

fn syntax_sub(args: Args<'_>, container: &str) -> CmdError {
    let sub = args.get(1);
    CmdError::msg(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {container} HELP.",
        String::from_utf8_lossy(&sub[..sub.len().min(128)])
    ))
}

const XGROUP_HELP: &[&str] = &[
    "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
    "HELP",
    "    Prints this help.",
];

pub fn xgroup(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let sub = args.get(1);
    if args.len() == 2 && eq(sub, "help") {
        crate::cmd::help(ctx, XGROUP_HELP);
        return Ok(());
    }
    let create = eq(sub, "create");
    let setid = eq(sub, "setid");
    let mut mkstream = false;
    let mut entries_read = ENTRIES_READ_UNKNOWN;
    let mut i = 5;
    while i < args.len() {
        let a = args.get(i);
        if create && eq(a, "mkstream") {
            mkstream = true;
            i += 1;
        } else if (create || setid) && eq(a, "entriesread") && i + 1 < args.len() {
            entries_read = int_arg(args.get(i + 1))?;
            if entries_read < 0 && entries_read != ENTRIES_READ_UNKNOWN {
                return Err(CmdError::msg(
                    "ERR value for ENTRIESREAD must be positive or -1",
                ));
            }
            i += 2;
        } else {
            return Err(syntax_sub(args, "XGROUP"));
        }
    }
    let key = args.get(2);
    let name = args.get(3);
    let exists = write_stream(ctx, key)?.map(|s| s.groups.contains_key(name));
    if !mkstream {
        let Some(has_group) = exists else {
            return Err(CmdError::msg(
                "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.",
            ));
        };
        if !has_group && (setid || eq(sub, "createconsumer") || eq(sub, "delconsumer")) {
            return Err(CmdError::msg(format!(
                "NOGROUP No such consumer group '{}' for key name '{}'",
                String::from_utf8_lossy(name),
                String::from_utf8_lossy(key)
            )));
        }
    }
    let argc = args.len();
    if create && (5..=8).contains(&argc) {
        let id = if args.get(4) == b"$" {
            write_stream(ctx, key)?.map_or(StreamId::MIN, |s| s.last_id())
        } else {
            parse_strict_id(args.get(4))?
        };
        if exists.is_none() {
            ctx.set(key, Value::Stream(Box::default()), false);
        }
        let Some(s) = write_stream(ctx, key)? else {
            return Ok(());
        };
        if s.groups.contains_key(name) {
            return Err(CmdError::msg(
                "BUSYGROUP Consumer Group name already exists",
            ));
        }
        s.groups.insert(name.into(), Group::new(id, entries_read));
        ctx.reply.ok();
        ctx.dirty(1);
        ctx.notify(class::STREAM, "xgroup-create", key);
    } else if setid && (argc == 5 || argc == 7) {
        let idarg = args.get(4);
        let id = if idarg == b"$" {
            None
        } else {
            Some(super::io::parse_interval_id(idarg, 0).and_then(|(id, ex)| {
                if ex {
                    Err(super::io::invalid_id())
                } else {
                    Ok(id)
                }
            })?)
        };
        with_group(ctx, key, name, "", |s, g, _, _| {
            g.last_id = id.unwrap_or(s.last_id());
            g.entries_read = entries_read;
        })?;
        ctx.reply.ok();
        ctx.dirty(1);
        ctx.notify(class::STREAM, "xgroup-setid", key);
    } else if eq(sub, "destroy") && argc == 4 {
        let removed = write_stream(ctx, key)?.is_some_and(|s| s.groups.remove(name).is_some());
        ctx.reply.int(i64::from(removed));
        if removed {
            ctx.dirty(1);
            ctx.notify(class::STREAM, "xgroup-destroy", key);
        }
    } else if eq(sub, "createconsumer") && argc == 5 {
        let created = with_group(ctx, key, name, "", |_, g, _, now| {
            g.consumer(args.get(4), now).1
        })?;
        ctx.reply.int(i64::from(created));
        if created {
            ctx.dirty(1);
            ctx.notify(class::STREAM, "xgroup-createconsumer", key);
        }
    } else if eq(sub, "delconsumer") && argc == 5 {
        let pending = with_group(ctx, key, name, "", |_, g, _, _| {
            g.remove_consumer(args.get(4))
        })?;
        ctx.reply.int(pending.unwrap_or(0) as i64);
        if pending.is_some() {
            ctx.dirty(1);
            ctx.notify(class::STREAM, "xgroup-delconsumer", key);
        }
    } else {
        return Err(syntax_sub(args, "XGROUP"));
    }
    // A container has no key positions in the table: name the key for WATCH and for the
    // clients blocked on it (a destroyed group unblocks its readers).
    ctx.touched_only(key);
    Ok(())
}

pub fn xreadgroup(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let r = parse_read(ctx, args, true)?;
    let Some((group, consumer)) = r.group else {
        return Err(CmdError::Syntax);
    };
    // Re-run after a write to a key it waits on: Redis 7.0 unblocks it with an error when
    // the stream or the group went away, and keeps it waiting when the key changed type.
    if let Some(w) = ctx.woken_by.clone() {
        let state = ctx.find(&w).map(|i| match &ctx.db().entry(i).value {
            Value::Stream(s) => Some(s.groups.contains_key(group)),
            _ => None,
        });
        match state {
            None => return Err(CmdError::msg("UNBLOCKED the stream key no longer exists")),
            Some(None) => {
                block_on_streams(ctx, args, &r, None);
                return Ok(());
            }
            Some(Some(false)) => {
                return Err(CmdError::msg(
                    "NOGROUP the consumer group this client was blocked on no longer exists",
                ));
            }
            Some(Some(true)) => {}
        }
    }
    // `None` stands for `>`: entries never delivered to the group.
    let mut from: Vec<Option<StreamId>> = Vec::with_capacity(r.streams);
    for k in 0..r.streams {
        let key = args.get(r.streams_at + k);
        let idarg = args.get(r.streams_at + r.streams + k);
        let found = if ctx.woken_by.is_some() {
            ctx.find(key)
        } else {
            ctx.read(key)
        };
        let has = match found {
            Some(i) => match &ctx.db().entry(i).value {
                Value::Stream(s) => s.groups.contains_key(group),
                _ => return Err(CmdError::WrongType),
            },
            None => false,
        };
        if !has {
            return Err(no_group(key, group, " in XREADGROUP with GROUP option"));
        }
        if idarg == b"$" {
            return Err(CmdError::msg(
                "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.",
            ));
        }
        // Redis marks `>` with the largest id, so that id given explicitly means `>` too.
        from.push(if idarg == b">" {
            None
        } else {
            Some(parse_strict_id(idarg)?).filter(|&id| id != StreamId::MAX)
        });
    }
    if ctx.woken_by.is_none() {
        // Redis's serving pass looks every key up again as a read.
        for k in 0..r.streams {
            ctx.read(args.get(r.streams_at + k));
        }
    }
    let mut serve = Vec::new();
    for (k, start) in from.iter().enumerate() {
        let key = args.get(r.streams_at + k);
        if !may_serve(ctx, key) || serve.len() == 1 && ctx.woken_by.is_some() {
            continue;
        }
        let fresh = start.is_none()
            && ctx.find(key).is_some_and(|i| {
                let s = stream_at(ctx.db(), i);
                let last = s.groups.get(group).map_or(StreamId::MAX, |g| g.last_id);
                s.last_entry_id().is_some_and(|top| top > last)
            });
        if start.is_some() || fresh {
            serve.push(k);
        }
    }
    if serve.is_empty() {
        block_on_streams(ctx, args, &r, None);
        return Ok(());
    }
    read_reply_head(&mut ctx.reply, serve.len());
    let mut effects = Effects::new(ctx);
    for k in serve {
        let key = args.get(r.streams_at + k);
        let start = from[k];
        let count = match r.count {
            0 if ctx.woken_by.is_some() => super::io::BLOCKED_DEFAULT_COUNT,
            n => n,
        };
        let noack = r.noack;
        let mut created = false;
        with_group(ctx, key, group, "", |s, g, reply, now| {
            read_reply_key(reply, key);
            created = g.consumer(consumer, now).1;
            if let Some(c) = g.consumers.get_mut(consumer) {
                c.seen_time = now;
            }
            if created && noack {
                effects.push(|| {
                    vec![
                        b"XGROUP".to_vec(),
                        b"CREATECONSUMER".to_vec(),
                        key.to_vec(),
                        group.to_vec(),
                        consumer.to_vec(),
                    ]
                });
            }
            match start {
                Some(start) => serve_history(s, g, consumer, start, count, reply, now),
                None => serve_new(
                    s,
                    g,
                    key,
                    group,
                    consumer,
                    (count, noack),
                    reply,
                    now,
                    &mut effects,
                ),
            }
        })?;
        if created {
            ctx.notify(class::STREAM, "xgroup-createconsumer", key);
        }
        ctx.dirty(1);
    }
    effects.propagate(ctx);
    let keys = (0..r.streams)
        .map(|k| args.get(r.streams_at + k).to_vec())
        .collect();
    ctx.touched = Some(keys);
    Ok(())
}

/// Delivers the entries after the group's last id (`streamReplyWithRange` with a group).
#[allow(clippy::too_many_arguments)]
fn serve_new(
    s: &Stream,
    g: &mut Group,
    key: &[u8],
    group: &[u8],
    consumer: &[u8],
    (count, noack): (usize, bool),
    reply: &mut Reply<'_>,
    now: u64,
    effects: &mut Effects,
) {
    let Some(start) = g.last_id.next() else {
        reply.array(0);
        return;
    };
    let limit = if count == 0 { usize::MAX } else { count };
    let entries: Vec<_> = s.range(start, StreamId::MAX).take(limit).collect();
    reply.array(entries.len());
    let mut moved = false;
    for e in &entries {
        if e.id > g.last_id {
            if g.entries_read != ENTRIES_READ_UNKNOWN && !s.has_tombstones_from(e.id) {
                g.entries_read += 1;
            } else if s.meta().entries_added > 0 {
                g.entries_read = s.entries_before(e.id);
            }
            g.last_id = e.id;
            moved = true;
        }
        reply_entry(reply, e);
        if !noack {
            g.deliver(e.id, consumer, now, 1);
            if let Some(p) = g.pel.get(&e.id) {
                effects.push(|| xclaim_effect(key, group, g, e.id, p));
            }
        }
    }
    if noack && moved {
        effects.push(|| setid_effect(key, group, g));
    }
}

/// Serves a consumer's own pending entries from `start` (`streamReplyWithRangeFromConsumerPEL`):
/// an entry deleted since is reported as its id with a null.
fn serve_history(
    s: &Stream,
    g: &mut Group,
    consumer: &[u8],
    start: StreamId,
    count: usize,
    reply: &mut Reply<'_>,
    now: u64,
) {
    let limit = if count == 0 { usize::MAX } else { count };
    // Like `>`, a history id means "after this one".
    let ids: Vec<StreamId> = match (start.next(), g.consumers.get(consumer)) {
        (Some(from), Some(c)) => c.pel.range(from..).take(limit).copied().collect(),
        _ => Vec::new(),
    };
    reply.array(ids.len());
    for id in ids {
        match s.range(id, id).next() {
            Some(e) => {
                reply_entry(reply, &e);
                if let Some(p) = g.pel.get_mut(&id) {
                    p.delivery_time = now;
                    p.delivery_count += 1;
                }
            }
            None => {
                reply.array(2);
                reply.bulk(id.text().as_bytes());
                reply.null_array();
            }
        }
    }
}

pub fn xack(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let name = args.get(2);
    let Some(s) = write_stream(ctx, key)? else {
        ctx.reply.int(0);
        return Ok(());
    };
    if !s.groups.contains_key(name) {
        ctx.reply.int(0);
        return Ok(());
    }
    let ids = (3..args.len())
        .map(|j| parse_strict_id(args.get(j)))
        .collect::<Result<Vec<_>, _>>()?;
    let acked = with_group(ctx, key, name, "", |_, g, _, _| {
        ids.into_iter().filter(|&id| g.ack(id)).count()
    })?;
    ctx.reply.int(acked as i64);
    ctx.dirty(acked as u64);
    Ok(())
}

/// XPENDING's extended form: IDLE, range, COUNT and consumer.
struct PendingQuery<'a> {
    min_idle: u64,
    start: StreamId,
    end: StreamId,
    count: usize,
    consumer: Option<&'a [u8]>,
}

pub fn xpending(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let argc = args.len();
    if argc != 3 && !(6..=9).contains(&argc) {
        return Err(CmdError::Syntax);
    }
    let mut ext: Option<PendingQuery<'_>> = None;
    if argc >= 6 {
        let mut at = 3;
        let mut min_idle = 0i64;
        if eq(args.get(3), "idle") {
            min_idle = int_arg(args.get(4))?;
            if argc < 8 {
                return Err(CmdError::Syntax);
            }
            at += 2;
        }
        let count = int_arg(args.get(at + 2))?.max(0) as usize;
        let (start, end) = parse_range(args.get(at), args.get(at + 1))?;
        let consumer = (at + 3 < argc).then(|| args.get(at + 3));
        ext = Some(PendingQuery {
            min_idle: min_idle.max(0) as u64,
            start,
            end,
            count,
            consumer,
        });
    }
    let key = args.get(1);
    let name = args.get(2);
    if read_stream(ctx, key)?.is_none() {
        return Err(no_group(key, name, ""));
    }
    with_group(ctx, key, name, "", |_, g, reply, now| match ext {
        None => {
            reply.array(4);
            reply.int(g.pel.len() as i64);
            match (g.pel.first_key_value(), g.pel.last_key_value()) {
                (Some((first, _)), Some((last, _))) => {
                    reply.bulk(first.text().as_bytes());
                    reply.bulk(last.text().as_bytes());
                    let owners: Vec<_> = g
                        .consumers
                        .iter()
                        .filter(|(_, c)| !c.pel.is_empty())
                        .collect();
                    reply.array(owners.len());
                    for (n, c) in owners {
                        reply.array(2);
                        reply.bulk(n);
                        reply.bulk_int(c.pel.len() as i64);
                    }
                }
                _ => {
                    reply.null();
                    reply.null();
                    reply.null_array();
                }
            }
        }
        Some(PendingQuery {
            min_idle,
            start,
            end,
            count,
            consumer,
        }) => {
            // An empty range when start > end; the PEL is walked only as far as needed.
            let range = start..=end.max(start);
            let ids: Box<dyn Iterator<Item = StreamId> + '_> = match consumer {
                Some(c) => match g.consumers.get(c) {
                    Some(c) => Box::new(c.pel.range(range).copied()),
                    None => Box::new(std::iter::empty()),
                },
                None => Box::new(g.pel.range(range).map(|(id, _)| *id)),
            };
            let rows: Vec<(StreamId, &Pending)> = ids
                .filter(|id| *id <= end)
                .filter_map(|id| g.pel.get(&id).map(|p| (id, p)))
                .filter(|(_, p)| min_idle == 0 || now.saturating_sub(p.delivery_time) >= min_idle)
                .take(count)
                .collect();
            reply.array(rows.len());
            for (id, p) in rows {
                reply.array(4);
                reply.bulk(id.text().as_bytes());
                reply.bulk(&p.consumer);
                reply.int(now.saturating_sub(p.delivery_time) as i64);
                reply.int(p.delivery_count as i64);
            }
        }
    })
}

fn int_opt(a: &[u8], what: &str) -> Result<i64, CmdError> {
    crate::protocol::parse_i64(a).ok_or_else(|| CmdError::msg(format!("ERR {what}")))
}

pub fn xclaim(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let name = args.get(2);
    let consumer = args.get(3);
    if write_stream(ctx, key)?.is_none_or(|s| !s.groups.contains_key(name)) {
        return Err(no_group(key, name, ""));
    }
    let min_idle = int_opt(args.get(4), "Invalid min-idle-time argument for XCLAIM")?.max(0) as u64;
    let mut ids = Vec::new();
    let mut j = 5;
    while j < args.len() {
        match parse_strict_id(args.get(j)) {
            Ok(id) => ids.push((id, j)),
            Err(_) => break,
        }
        j += 1;
    }
    let now = ctx.now_ms;
    let (mut force, mut justid) = (false, false);
    let mut delivery: Option<i64> = None;
    let mut retry: Option<u64> = None;
    let mut last_id = StreamId::MIN;
    while j < args.len() {
        let more = args.len() - 1 - j;
        let o = args.get(j);
        if eq(o, "force") {
            force = true;
        } else if eq(o, "justid") {
            justid = true;
        } else if eq(o, "idle") && more > 0 {
            j += 1;
            let idle = int_opt(args.get(j), "Invalid IDLE option argument for XCLAIM")?;
            delivery = Some(now as i64 - idle);
        } else if eq(o, "time") && more > 0 {
            j += 1;
            delivery = Some(int_opt(
                args.get(j),
                "Invalid TIME option argument for XCLAIM",
            )?);
        } else if eq(o, "retrycount") && more > 0 {
            j += 1;
            let n = int_opt(args.get(j), "Invalid RETRYCOUNT option argument for XCLAIM")?;
            retry = u64::try_from(n).ok();
        } else if eq(o, "lastid") && more > 0 {
            j += 1;
            last_id = parse_strict_id(args.get(j))?;
        } else {
            return Err(CmdError::msg(format!(
                "ERR Unrecognized XCLAIM option '{}'",
                String::from_utf8_lossy(o)
            )));
        }
        j += 1;
    }
    let time = match delivery {
        Some(t) if t >= 0 && t as u64 <= now => t as u64,
        _ => now,
    };
    let mut effects = Effects::new(ctx);
    let mut created = false;
    let changes = with_group(ctx, key, name, "", |s, g, reply, now| {
        let mut changes = 0u64;
        let mut setid = false;
        if last_id > g.last_id {
            g.last_id = last_id;
            setid = true;
        }
        let mut claimed: Vec<StreamId> = Vec::new();
        for (id, _) in ids {
            let exists = s.range(id, id).next().is_some();
            if !exists {
                if let Some(p) = g.pel.get(&id).cloned() {
                    effects.push(|| xclaim_effect(key, name, g, id, &p));
                    setid = false;
                    changes += 1;
                    g.ack(id);
                }
                continue;
            }
            let pending = g.pel.get(&id).cloned();
            let pending = match pending {
                Some(p) => {
                    if min_idle > 0 && now.saturating_sub(p.delivery_time) < min_idle {
                        continue;
                    }
                    Some(p)
                }
                None if force => None,
                None => continue,
            };
            created |= g.consumer(consumer, now).1;
            if let Some(c) = g.consumers.get_mut(consumer) {
                c.seen_time = now;
            }
            let old = pending.as_ref().map_or(0, |p| p.delivery_count);
            let count = match retry {
                Some(n) => n,
                None if !justid => old + 1,
                None => old,
            };
            g.deliver(id, consumer, time, count);
            if let Some(p) = g.pel.get(&id) {
                effects.push(|| xclaim_effect(key, name, g, id, p));
            }
            setid = false;
            changes += 1;
            claimed.push(id);
        }
        if setid {
            effects.push(|| setid_effect(key, name, g));
            changes += 1;
        }
        reply.array(claimed.len());
        for id in claimed {
            if justid {
                reply.bulk(id.text().as_bytes());
            } else if let Some(e) = s.range(id, id).next() {
                reply_entry(reply, &e);
            }
        }
        changes
    })?;
    if created {
        ctx.notify(class::STREAM, "xgroup-createconsumer", key);
    }
    ctx.dirty(changes);
    effects.propagate(ctx);
    Ok(())
}

pub fn xautoclaim(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let name = args.get(2);
    let consumer = args.get(3);
    let min_idle =
        int_opt(args.get(4), "Invalid min-idle-time argument for XAUTOCLAIM")?.max(0) as u64;
    let (mut start, ex) = super::io::parse_interval_id(args.get(5), 0)?;
    if ex {
        start = start
            .next()
            .ok_or_else(|| CmdError::msg("ERR invalid start ID for the interval"))?;
    }
    let mut count: u64 = 100;
    let mut justid = false;
    let mut j = 6;
    while j < args.len() {
        let o = args.get(j);
        if eq(o, "count") && j + 1 < args.len() {
            let max = (i64::MAX / 16) as u64;
            count = crate::protocol::parse_i64(args.get(j + 1))
                .and_then(|n| u64::try_from(n).ok())
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| CmdError::msg("ERR COUNT must be > 0"))?;
            j += 1;
        } else if eq(o, "justid") {
            justid = true;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    if read_stream(ctx, key)?.is_none() {
        return Err(no_group(key, name, ""));
    }
    let mut effects = Effects::new(ctx);
    let mut created = false;
    let changes = with_group(ctx, key, name, "", |s, g, reply, now| {
        let mut changes = 0u64;
        let mut attempts = count * 10;
        let mut left = count;
        let mut claimed = Vec::new();
        let mut deleted = Vec::new();
        let mut next = StreamId::MIN;
        // The ids this call may look at, and one more for the next cursor (collected: the
        // loop changes the PEL).
        let window = usize::try_from(attempts)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let mut cursor = g
            .pel
            .range(start..)
            .map(|(id, _)| *id)
            .take(window)
            .collect::<Vec<_>>()
            .into_iter();
        while attempts > 0 && left > 0 {
            let Some(id) = cursor.next() else { break };
            attempts -= 1;
            let Some(p) = g.pel.get(&id).cloned() else {
                continue;
            };
            if s.range(id, id).next().is_none() {
                effects.push(|| xclaim_effect(key, name, g, id, &p));
                changes += 1;
                g.ack(id);
                deleted.push(id);
                left -= 1;
                continue;
            }
            if min_idle > 0 && now.saturating_sub(p.delivery_time) < min_idle {
                continue;
            }
            created |= g.consumer(consumer, now).1;
            if let Some(c) = g.consumers.get_mut(consumer) {
                c.seen_time = now;
            }
            let n = if justid {
                p.delivery_count
            } else {
                p.delivery_count + 1
            };
            g.deliver(id, consumer, now, n);
            if let Some(p) = g.pel.get(&id) {
                effects.push(|| xclaim_effect(key, name, g, id, p));
            }
            changes += 1;
            claimed.push(id);
            left -= 1;
        }
        if let Some(id) = cursor.next() {
            next = id;
        }
        reply.array(3);
        reply.bulk(next.text().as_bytes());
        reply.array(claimed.len());
        for id in claimed {
            if justid {
                reply.bulk(id.text().as_bytes());
            } else if let Some(e) = s.range(id, id).next() {
                reply_entry(reply, &e);
            }
        }
        reply.array(deleted.len());
        for id in deleted {
            reply.bulk(id.text().as_bytes());
        }
        changes
    })?;
    if created {
        ctx.notify(class::STREAM, "xgroup-createconsumer", key);
    }
    ctx.dirty(changes);
    effects.propagate(ctx);
    Ok(())
}

const XINFO_HELP: &[&str] = &[
    "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
    "HELP",
    "    Prints this help.",
];

pub fn xinfo(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let sub = args.get(1);
    if eq(sub, "help") {
        crate::cmd::help(ctx, XINFO_HELP);
        return Ok(());
    }
    let key = args.get(2);
    let Some(i) = read_stream(ctx, key)? else {
        return Err(CmdError::NoSuchKey);
    };
    let now = ctx.now_ms;
    if eq(sub, "consumers") {
        let name = args.get(3);
        let (db, reply) = ctx.db_and_reply();
        let s = stream_at(db, i);
        let Some(g) = s.groups.get(name) else {
            return Err(CmdError::msg(format!(
                "NOGROUP No such consumer group '{}' for key name '{}'",
                String::from_utf8_lossy(name),
                String::from_utf8_lossy(key)
            )));
        };
        reply.array(g.consumers.len());
        for (n, c) in &g.consumers {
            reply.map(3);
            reply.bulk(b"name");
            reply.bulk(n);
            reply.bulk(b"pending");
            reply.int(c.pel.len() as i64);
            reply.bulk(b"idle");
            reply.int(now.saturating_sub(c.seen_time) as i64);
        }
        return Ok(());
    }
    if eq(sub, "groups") {
        let (db, reply) = ctx.db_and_reply();
        let s = stream_at(db, i);
        reply.array(s.groups.len());
        for (n, g) in &s.groups {
            reply.map(6);
            reply.bulk(b"name");
            reply.bulk(n);
            reply.bulk(b"consumers");
            reply.int(g.consumers.len() as i64);
            reply.bulk(b"pending");
            reply.int(g.pel.len() as i64);
            reply.bulk(b"last-delivered-id");
            reply.bulk(g.last_id.text().as_bytes());
            reply_group_counters(reply, s, g);
        }
        return Ok(());
    }
    if !eq(sub, "stream") {
        return Err(syntax_sub(args, "XINFO"));
    }
    let mut full = false;
    let mut count: usize = 10;
    if args.len() > 3 {
        if !eq(args.get(3), "full") {
            return Err(syntax_sub(args, "XINFO"));
        }
        full = true;
        if args.len() > 4 {
            if args.len() != 6 || !eq(args.get(4), "count") {
                return Err(syntax_sub(args, "XINFO"));
            }
            count = int_arg(args.get(5))?.max(0) as usize;
        }
    }
    let (db, reply) = ctx.db_and_reply();
    let s = stream_at(db, i);
    let m = s.meta();
    reply.map(if full { 9 } else { 10 });
    reply.bulk(b"length");
    reply.int(s.len() as i64);
    reply.bulk(b"radix-tree-keys");
    reply.int(s.node_count() as i64);
    reply.bulk(b"radix-tree-nodes");
    reply.int(s.node_count() as i64 + 1);
    reply.bulk(b"last-generated-id");
    reply.bulk(m.last_id.text().as_bytes());
    reply.bulk(b"max-deleted-entry-id");
    reply.bulk(m.max_deleted.text().as_bytes());
    reply.bulk(b"entries-added");
    reply.int(m.entries_added as i64);
    reply.bulk(b"recorded-first-entry-id");
    reply.bulk(m.first_id.text().as_bytes());
    if !full {
        reply.bulk(b"groups");
        reply.int(s.groups.len() as i64);
        for (label, last) in [(&b"first-entry"[..], false), (b"last-entry", true)] {
            reply.bulk(label);
            match s.edge(last) {
                Some(e) => reply_entry(reply, &e),
                None => reply.null(),
            }
        }
        return Ok(());
    }
    reply.bulk(b"entries");
    super::io::reply_entries(reply, s.range(StreamId::MIN, StreamId::MAX), count);
    reply.bulk(b"groups");
    reply.array(s.groups.len());
    let limit = if count == 0 { usize::MAX } else { count };
    for (n, g) in &s.groups {
        reply.map(7);
        reply.bulk(b"name");
        reply.bulk(n);
        reply.bulk(b"last-delivered-id");
        reply.bulk(g.last_id.text().as_bytes());
        reply_group_counters(reply, s, g);
        reply.bulk(b"pel-count");
        reply.int(g.pel.len() as i64);
        reply.bulk(b"pending");
        let pel: Vec<_> = g.pel.iter().take(limit).collect();
        reply.array(pel.len());
        for (id, p) in pel {
            reply.array(4);
            reply.bulk(id.text().as_bytes());
            reply.bulk(&p.consumer);
            reply.int(p.delivery_time as i64);
            reply.int(p.delivery_count as i64);
        }
        reply.bulk(b"consumers");
        reply.array(g.consumers.len());
        for (cn, c) in &g.consumers {
            reply.map(4);
            reply.bulk(b"name");
            reply.bulk(cn);
            reply.bulk(b"seen-time");
            reply.int(c.seen_time as i64);
            reply.bulk(b"pel-count");
            reply.int(c.pel.len() as i64);
            reply.bulk(b"pending");
            let own: Vec<_> = c.pel.iter().take(limit).collect();
            reply.array(own.len());
            for id in own {
                let p = g.pel.get(id);
                reply.array(3);
                reply.bulk(id.text().as_bytes());
                reply.int(p.map_or(0, |p| p.delivery_time) as i64);
                reply.int(p.map_or(0, |p| p.delivery_count) as i64);
            }
        }
    }
    Ok(())
}

/// A group's `entries-read` (null when unknown) and `lag` (null when it cannot be known).
fn reply_group_counters(reply: &mut Reply<'_>, s: &Stream, g: &Group) {
    reply.bulk(b"entries-read");
    if g.entries_read == ENTRIES_READ_UNKNOWN {
        reply.null();
    } else {
        reply.int(g.entries_read);
    }
    reply.bulk(b"lag");
    match s.lag(g) {
        Some(lag) => reply.int(lag),
        None => reply.null(),
    }
}
