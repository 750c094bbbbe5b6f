//! Stream commands (the `stream` group): XADD, XLEN, XRANGE/XREVRANGE, XDEL, XTRIM, XREAD,
//! XSETID, and the consumer-group commands in [`groups`].
//!
//! Argument parsing, error texts, reply shapes and what reaches replicas follow Redis 7.0's
//! `t_stream.c`: XADD propagates the id it generated and an approximate trim as the exact
//! one it performed, so replicas hold what the master holds. The storage lives in
//! [`crate::keyspace::stream`]; this module never looks inside its nodes.

mod groups;
mod io;

use io::{
    BLOCKED_DEFAULT_COUNT, block_on_streams, find_stream, may_serve, owned_args, parse_id_generic,
    parse_range, parse_read, parse_strict_id, read_reply_head, read_reply_key, read_stream,
    reply_entries, stream_at, write_stream,
};

use super::{CmdError, CmdResult, Ctx, Spec, container, eq, flags::*, int_arg, spec};
use crate::keyspace::Value;
use crate::keyspace::stream::block::NodeLimits;
use crate::keyspace::stream::{Stream, StreamId, Trim};
use crate::notify::class;
use crate::protocol::Args;

pub static COMMANDS: &[Spec] = &[
    spec(
        "xadd",
        -5,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "stream",
        xadd,
    ),
    spec("xlen", 2, READONLY | FAST, (1, 1, 1), "stream", xlen),
    spec("xrange", -4, READONLY, (1, 1, 1), "stream", xrange),
    spec("xrevrange", -4, READONLY, (1, 1, 1), "stream", xrevrange),
    spec("xdel", -3, WRITE | FAST, (1, 1, 1), "stream", xdel),
    spec("xtrim", -4, WRITE, (1, 1, 1), "stream", xtrim),
    spec(
        "xread",
        -4,
        READONLY | BLOCKING | MOVABLEKEYS,
        (0, 0, 0),
        "stream",
        xread,
    ),
    spec(
        "xsetid",
        -3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "stream",
        xsetid,
    ),
    spec(
        "xreadgroup",
        -7,
        WRITE | BLOCKING | MOVABLEKEYS,
        (0, 0, 0),
        "stream",
        groups::xreadgroup,
    ),
    spec("xack", -4, WRITE | FAST, (1, 1, 1), "stream", groups::xack),
    spec(
        "xpending",
        -3,
        READONLY,
        (1, 1, 1),
        "stream",
        groups::xpending,
    ),
    spec(
        "xclaim",
        -6,
        WRITE | FAST,
        (1, 1, 1),
        "stream",
        groups::xclaim,
    ),
    spec(
        "xautoclaim",
        -6,
        WRITE | FAST,
        (1, 1, 1),
        "stream",
        groups::xautoclaim,
    ),
    // Every XGROUP subcommand but HELP writes, and the table holds flags per command: the
    // container carries them (Redis 7.0 puts them on the subcommands).
    container(
        "xgroup",
        -2,
        WRITE | DENYOOM,
        "stream",
        groups::xgroup,
        &[
            ("create", "xgroup|create", -5),
            ("createconsumer", "xgroup|createconsumer", 5),
            ("delconsumer", "xgroup|delconsumer", 5),
            ("destroy", "xgroup|destroy", 4),
            ("setid", "xgroup|setid", -5),
            ("help", "xgroup|help", 2),
        ],
    ),
    container(
        "xinfo",
        -2,
        READONLY,
        "stream",
        groups::xinfo,
        &[
            ("consumers", "xinfo|consumers", 4),
            ("groups", "xinfo|groups", 3),
            ("stream", "xinfo|stream", -3),
            ("help", "xinfo|help", 2),
        ],
    ),
];

/// XADD's and XTRIM's trimming options (`streamAddTrimArgs`).
#[derive(Default)]
struct TrimArgs {
    how: Option<Trim>,
    approx: bool,
    limit: u64,
    /// Where the MAXLEN/MINID value is, to rewrite it for replicas.
    arg_idx: usize,
    no_mkstream: bool,
    /// XADD's id: `None` for `*`; the flag is false for `ms-*`.
    id: Option<(StreamId, bool)>,
}

/// Parses options from argument 2; for XADD, stops at the id and returns its position.
fn parse_add_trim(
    ctx: &Ctx<'_>,
    args: Args<'_>,
    xadd: bool,
) -> Result<(TrimArgs, usize), CmdError> {
    let mut t = TrimArgs::default();
    let mut limit_given = false;
    let mut i = 2;
    let both = || {
        CmdError::msg(
            "ERR syntax error, MAXLEN and MINID options at the same time are not compatible",
        )
    };
    while i < args.len() {
        let more = args.len() - 1 - i;
        let a = args.get(i);
        if xadd && a == b"*" {
            break;
        } else if (eq(a, "maxlen") || eq(a, "minid")) && more > 0 {
            if t.how.is_some() {
                return Err(both());
            }
            t.approx = false;
            let next = args.get(i + 1);
            if more >= 2 && (next == b"~" || next == b"=") {
                t.approx = next == b"~";
                i += 1;
            }
            let v = args.get(i + 1);
            t.how = Some(if eq(a, "maxlen") {
                let n = int_arg(v)?;
                if n < 0 {
                    return Err(CmdError::msg("ERR The MAXLEN argument must be >= 0."));
                }
                Trim::MaxLen(n as u64)
            } else {
                Trim::MinId(parse_strict_id(v)?)
            });
            i += 1;
            t.arg_idx = i;
        } else if eq(a, "limit") && more > 0 {
            let n = int_arg(args.get(i + 1))?;
            if n < 0 {
                return Err(CmdError::msg("ERR The LIMIT argument must be >= 0."));
            }
            t.limit = n as u64;
            limit_given = true;
            i += 1;
        } else if xadd && eq(a, "nomkstream") {
            t.no_mkstream = true;
        } else if xadd {
            t.id = Some(parse_id_generic(a, true, 0, true)?);
            break;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if t.limit > 0 && t.how.is_none() {
        return Err(CmdError::msg(
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if !xadd && t.how.is_none() {
        return Err(CmdError::msg(
            "ERR syntax error, XTRIM must be called with a trimming strategy",
        ));
    }
    if ctx.client.is_master {
        // The master rewrote its approximate trim as the exact one it performed.
        t.limit = 0;
    } else if limit_given {
        if !t.approx {
            return Err(CmdError::msg(
                "ERR syntax error, LIMIT cannot be used without the special ~ option",
            ));
        }
    } else if t.approx {
        // At most 100 nodes' worth of work, bounded both ways as Redis bounds it.
        t.limit = match ctx.srv.config.stream_node_max_entries.saturating_mul(100) {
            0 => 10_000,
            n => n.min(1_000_000),
        };
    }
    Ok((t, i))
}

/// The node limits of the configuration.
fn node_limits(ctx: &Ctx<'_>) -> NodeLimits {
    NodeLimits {
        max_entries: ctx.srv.config.stream_node_max_entries,
        max_bytes: ctx.srv.config.stream_node_max_bytes,
    }
}

/// The command's arguments, with an approximate trim made exact: `~` becomes `=` and the
/// MAXLEN/MINID value at `arg_idx` becomes `trimmed_to`.
fn with_exact_trim(args: Args<'_>, arg_idx: usize, trimmed_to: Option<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut argv: Vec<Vec<u8>> = args.iter().map(<[u8]>::to_vec).collect();
    if let Some(value) = trimmed_to {
        argv[arg_idx - 1] = b"=".to_vec();
        argv[arg_idx] = value;
    }
    argv
}

/// The trim argument an approximate trim is propagated with: the length or first id left.
fn trim_rewrite(s: &Stream, how: Trim) -> Vec<u8> {
    match how {
        Trim::MaxLen(_) => s.len().to_string().into_bytes(),
        Trim::MinId(_) => s
            .edge(false)
            .map_or(StreamId::MAX, |e| e.id)
            .text()
            .to_vec(),
    }
}

fn xadd(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (t, idpos) = parse_add_trim(ctx, args, true)?;
    let fields_at = idpos + 1;
    let n = args.len() - fields_at;
    if n < 2 || !n.is_multiple_of(2) {
        return Err(super::arity_error("xadd"));
    }
    if let Some((id, true)) = t.id
        && id.is_zero()
    {
        return Err(CmdError::msg(
            "ERR The ID specified in XADD must be greater than 0-0",
        ));
    }
    let key = args.get(1);
    if write_stream(ctx, key)?.is_none() {
        if t.no_mkstream {
            ctx.reply.null();
            return Ok(());
        }
        ctx.set(key, Value::Stream(Box::default()), false);
    }
    let now = ctx.now_ms;
    let limits = node_limits(ctx);
    let replicating = ctx.srv.feed.is_active();
    let Some(s) = write_stream(ctx, key)? else {
        return Ok(());
    };
    let last = s.last_id();
    if last == StreamId::MAX {
        return Err(CmdError::msg(
            "ERR The stream has exhausted the last possible ID, unable to add more items",
        ));
    }
    let id = match t.id {
        None if now > last.ms => Some(StreamId::new(now, 0)),
        None => last.next(),
        Some((id, true)) => Some(id),
        Some((id, false)) if id.ms == last.ms => last.next().filter(|n| n.ms == id.ms),
        Some((id, false)) => Some(id),
    };
    if matches!(t.id, Some((id, false)) if id.ms == last.ms && last.seq == u64::MAX) {
        // Redis fails here without setting errno and reports the stale ERANGE.
        return Err(CmdError::msg("ERR Elements are too large to be stored"));
    }
    let Some(id) = id.filter(|&id| id > last) else {
        return Err(CmdError::msg(
            "ERR The ID specified in XADD is equal or smaller than the target stream top item",
        ));
    };
    let fields = (fields_at..args.len())
        .step_by(2)
        .map(|j| (args.get(j), args.get(j + 1)));
    s.append(id, fields, limits);
    let mut trimmed_to = None;
    let mut trimmed = 0;
    if let Some(how) = t.how {
        trimmed = s.trim(how, t.approx, t.limit);
        if t.approx && replicating {
            trimmed_to = Some(trim_rewrite(s, how));
        }
    }
    let text = id.text();
    ctx.reply.bulk(text.as_bytes());
    ctx.dirty(1);
    ctx.notify(class::STREAM, "xadd", key);
    if trimmed > 0 {
        ctx.notify(class::STREAM, "xtrim", key);
    }
    let generated = !matches!(t.id, Some((_, true)));
    if replicating && (t.approx || generated) {
        let mut rewrite = with_exact_trim(args, t.arg_idx, trimmed_to);
        if generated {
            rewrite[idpos] = text.to_vec();
        }
        ctx.rewrite(vec![rewrite]);
    }
    Ok(())
}

fn xlen(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let len = match read_stream(ctx, args.get(1))? {
        Some(i) => stream_at(ctx.db(), i).len(),
        None => 0,
    };
    ctx.reply.int(len as i64);
    Ok(())
}

fn xrange_generic(ctx: &mut Ctx<'_>, args: Args<'_>, rev: bool) -> CmdResult {
    let (a, b) = if rev { (3, 2) } else { (2, 3) };
    let (start, end) = parse_range(args.get(a), args.get(b))?;
    let mut count: i64 = -1;
    let mut j = 4;
    while j < args.len() {
        if eq(args.get(j), "count") && j + 1 < args.len() {
            count = int_arg(args.get(j + 1))?.max(0);
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let Some(i) = read_stream(ctx, args.get(1))? else {
        ctx.reply.array(0);
        return Ok(());
    };
    if count == 0 {
        ctx.reply.null_array();
        return Ok(());
    }
    let count = count.max(0) as usize;
    let (db, reply) = ctx.db_and_reply();
    let s = stream_at(db, i);
    if rev {
        reply_entries(reply, s.rev_range(start, end), count);
    } else {
        reply_entries(reply, s.range(start, end), count);
    }
    Ok(())
}

fn xrange(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    xrange_generic(ctx, args, false)
}

fn xrevrange(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    xrange_generic(ctx, args, true)
}

fn xdel(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let Some(s) = write_stream(ctx, args.get(1))? else {
        ctx.reply.int(0);
        return Ok(());
    };
    let ids = (2..args.len())
        .map(|j| parse_strict_id(args.get(j)))
        .collect::<Result<Vec<_>, _>>()?;
    let deleted = ids.into_iter().filter(|&id| s.delete(id)).count();
    ctx.reply.int(deleted as i64);
    ctx.dirty(deleted as u64);
    if deleted > 0 {
        ctx.notify(class::STREAM, "xdel", args.get(1));
    }
    Ok(())
}

fn xtrim(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (t, _) = parse_add_trim(ctx, args, false)?;
    let Some(s) = write_stream(ctx, args.get(1))? else {
        ctx.reply.int(0);
        return Ok(());
    };
    let Some(how) = t.how else {
        return Err(CmdError::Syntax);
    };
    let deleted = s.trim(how, t.approx, t.limit);
    if deleted > 0 && t.approx {
        let trimmed_to = trim_rewrite(s, how);
        ctx.rewrite(vec![with_exact_trim(args, t.arg_idx, Some(trimmed_to))]);
    }
    ctx.reply.int(deleted as i64);
    ctx.dirty(deleted);
    if deleted > 0 {
        ctx.notify(class::STREAM, "xtrim", args.get(1));
    }
    Ok(())
}

fn xsetid(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let id = parse_strict_id(args.get(2))?;
    let mut entries_added: Option<u64> = None;
    let mut max_deleted = StreamId::MIN;
    let mut i = 3;
    while i < args.len() {
        let a = args.get(i);
        if eq(a, "entriesadded") && i + 1 < args.len() {
            let n = int_arg(args.get(i + 1))?;
            if n < 0 {
                return Err(CmdError::msg("ERR entries_added must be positive"));
            }
            entries_added = Some(n as u64);
        } else if eq(a, "maxdeletedid") && i + 1 < args.len() {
            max_deleted = parse_strict_id(args.get(i + 1))?;
            if id < max_deleted {
                return Err(CmdError::msg(
                    "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                ));
            }
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    let Some(s) = write_stream(ctx, args.get(1))? else {
        return Err(CmdError::NoSuchKey);
    };
    if let Some(top) = s.last_entry_id() {
        if id < top {
            return Err(CmdError::msg(
                "ERR The ID specified in XSETID is smaller than the target stream top item",
            ));
        }
        if entries_added.is_some_and(|n| n < s.len()) {
            return Err(CmdError::msg(
                "ERR The entries_added specified in XSETID is smaller than the target stream length",
            ));
        }
    }
    let mut m = s.meta();
    m.last_id = id;
    if let Some(n) = entries_added {
        m.entries_added = n;
    }
    if !max_deleted.is_zero() {
        m.max_deleted = max_deleted;
    }
    s.set_meta(m);
    ctx.reply.ok();
    ctx.dirty(1);
    ctx.notify(class::STREAM, "xsetid", args.get(1));
    Ok(())
}

fn xread(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let r = parse_read(ctx, args, false)?;
    let mut after = Vec::with_capacity(r.streams);
    let mut dollar = false;
    for k in 0..r.streams {
        let key = args.get(r.streams_at + k);
        let idarg = args.get(r.streams_at + r.streams + k);
        let slot = find_stream(ctx, key)?;
        if idarg == b"$" {
            dollar = true;
            after.push(slot.map_or(StreamId::MIN, |i| stream_at(ctx.db(), i).last_id()));
        } else if idarg == b">" {
            return Err(CmdError::msg(
                "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.",
            ));
        } else {
            after.push(parse_strict_id(idarg)?);
        }
    }
    let mut ready = Vec::new();
    for (k, &gt) in after.iter().enumerate() {
        let key = args.get(r.streams_at + k);
        if !may_serve(ctx, key) || ready.len() == 1 && ctx.woken_by.is_some() {
            continue;
        }
        if let Some(i) = find_stream(ctx, key)?
            && stream_at(ctx.db(), i)
                .last_entry_id()
                .is_some_and(|top| top > gt)
        {
            ready.push(k);
        }
    }
    if ready.is_empty() {
        // `$` stands for the ids at the time of the call, not of the wake-up.
        let command = dollar.then(|| {
            let resolved: Vec<Vec<u8>> = args
                .iter()
                .enumerate()
                .map(|(j, a)| match j.checked_sub(r.streams_at + r.streams) {
                    Some(k) if a == b"$" => after[k].text().to_vec(),
                    _ => a.to_vec(),
                })
                .collect();
            owned_args(&resolved)
        });
        block_on_streams(ctx, args, &r, command);
        return Ok(());
    }
    let count = match r.count {
        0 if ctx.woken_by.is_some() => BLOCKED_DEFAULT_COUNT,
        n => n,
    };
    read_reply_head(&mut ctx.reply, ready.len());
    for k in ready {
        let key = args.get(r.streams_at + k);
        let Some(i) = ctx.find(key) else { continue };
        let Some(start) = after[k].next() else {
            continue;
        };
        let (db, reply) = ctx.db_and_reply();
        read_reply_key(reply, key);
        reply_entries(reply, stream_at(db, i).range(start, StreamId::MAX), count);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::testing::run_all;

    #[test]
    fn xadd_and_ranges() {
        let (out, _) = run_all(&[
            &["xadd", "s", "1-1", "a", "1"],
            &["xadd", "s", "1-*", "b", "2"],
            &["xadd", "s", "1", "c", "3"],
            &["xlen", "s"],
            &["xrange", "s", "(1-1", "+", "count", "1"],
            &["xrevrange", "s", "+", "-"],
        ]);
        assert!(
            out.contains("ERR The ID specified in XADD is equal or smaller"),
            "{out}"
        );
        assert!(out.contains("1-2"), "{out}");
    }

    #[test]
    fn ids_parse_like_redis() {
        use super::io::{parse_interval_id, parse_range, parse_strict_id, parse_u64};
        use crate::keyspace::stream::StreamId;
        assert_eq!(parse_strict_id(b"5").ok(), Some(StreamId::new(5, 0)));
        assert!(parse_strict_id(b"-").is_err());
        assert_eq!(
            parse_interval_id(b"+", 0).ok(),
            Some((StreamId::MAX, false))
        );
        assert_eq!(
            parse_interval_id(b"(3", u64::MAX).ok(),
            Some((StreamId::new(3, u64::MAX), true))
        );
        assert_eq!(parse_u64(b"-01"), Some(u64::MAX));
        assert!(parse_u64(b"-1").is_none());
        assert!(parse_range(b"(+", b"+").is_err());
    }
}
