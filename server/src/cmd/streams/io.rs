//! What the stream commands share: their ID arguments, reaching a key's stream, the entry
//! replies, and XREAD's and XREADGROUP's reading options and blocking.

use crate::client::OwnedArgs;
use crate::cmd::{CmdError, Ctx, eq, int_arg};
use crate::keyspace::stream::block::Entry;
use crate::keyspace::stream::{Stream, StreamId};
use crate::keyspace::{Db, SmallBytes, Value};
use crate::protocol::{Args, Reply};
use crate::state::blocking::{Block, TimeoutReply};

pub(super) fn invalid_id() -> CmdError {
    CmdError::msg("ERR Invalid stream ID specified as stream command argument")
}

/// `strtoull` as Redis's `string2ull` falls back to it: leading space, a sign (a minus
/// wraps), digits to the end, no overflow.
pub(super) fn parse_u64(a: &[u8]) -> Option<u64> {
    if let Some(v) = crate::protocol::parse_i64(a) {
        return u64::try_from(v).ok();
    }
    let s = a.trim_ascii_start();
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for d in digits {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// An id argument (`streamGenericParseIDOrReply`): `ms-seq`, `ms` (sequence `missing_seq`),
/// `-` and `+` unless `strict`. With `seq_star`, `ms-*` is accepted and reported as `false`
/// in the second element (sequence not given).
pub(super) fn parse_id_generic(
    a: &[u8],
    strict: bool,
    missing_seq: u64,
    seq_star: bool,
) -> Result<(StreamId, bool), CmdError> {
    if a.len() > 127 || strict && (a == b"-" || a == b"+") {
        return Err(invalid_id());
    }
    match a {
        b"-" => return Ok((StreamId::MIN, true)),
        b"+" => return Ok((StreamId::MAX, true)),
        _ => {}
    }
    let (ms, seq) = match a.iter().position(|&b| b == b'-') {
        Some(dash) => (&a[..dash], Some(&a[dash + 1..])),
        None => (a, None),
    };
    // C strings end at a NUL byte: what follows one is not part of the argument.
    let ms = parse_u64(ms.split(|&b| b == 0).next().unwrap_or_default()).ok_or_else(invalid_id)?;
    match seq {
        Some(b"*") if seq_star => Ok((StreamId::new(ms, 0), false)),
        Some(seq) => Ok((
            StreamId::new(ms, parse_u64(seq).ok_or_else(invalid_id)?),
            true,
        )),
        None => Ok((StreamId::new(ms, missing_seq), true)),
    }
}

/// A strict id (no `-`/`+`), a missing sequence meaning 0.
pub(super) fn parse_strict_id(a: &[u8]) -> Result<StreamId, CmdError> {
    parse_id_generic(a, true, 0, false).map(|(id, _)| id)
}

/// A range bound: an id, `-`/`+`, or `(id` for an exclusive bound
/// (`streamParseIntervalIDOrReply`); returns the id and whether it was exclusive.
pub(super) fn parse_interval_id(a: &[u8], missing_seq: u64) -> Result<(StreamId, bool), CmdError> {
    if a.len() > 1 && a[0] == b'(' {
        let (id, _) = parse_id_generic(&a[1..], true, missing_seq, false)?;
        return Ok((id, true));
    }
    parse_id_generic(a, false, missing_seq, false).map(|(id, _)| (id, false))
}

/// The start and end ids of a range with exclusive bounds resolved.
///
/// # Errors
/// An invalid id, or an exclusive bound at the end of the id space.
pub(super) fn parse_range(start: &[u8], end: &[u8]) -> Result<(StreamId, StreamId), CmdError> {
    let (mut s, s_ex) = parse_interval_id(start, 0)?;
    if s_ex {
        s = s
            .next()
            .ok_or_else(|| CmdError::msg("ERR invalid start ID for the interval"))?;
    }
    let (mut e, e_ex) = parse_interval_id(end, u64::MAX)?;
    if e_ex {
        e = e
            .prev()
            .ok_or_else(|| CmdError::msg("ERR invalid end ID for the interval"))?;
    }
    Ok((s, e))
}

/// Looks a key up for a read; `Some(slot)` only when it holds a stream.
///
/// # Errors
/// WRONGTYPE when the key holds another type.
pub(super) fn read_stream(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<Option<u32>, CmdError> {
    match ctx.read(key) {
        None => Ok(None),
        Some(i) => match &ctx.db().entry(i).value {
            Value::Stream(_) => Ok(Some(i)),
            _ => Err(CmdError::WrongType),
        },
    }
}

/// The stream at a slot returned by [`read_stream`].
pub(super) fn stream_at(db: &Db, i: u32) -> &Stream {
    match &db.entry(i).value {
        Value::Stream(s) => s,
        _ => unreachable!("slot checked by read_stream"),
    }
}

/// A key's stream for writing, `None` when the key does not exist.
///
/// # Errors
/// WRONGTYPE when the key holds another type.
pub(super) fn write_stream<'c>(
    ctx: &'c mut Ctx<'_>,
    key: &[u8],
) -> Result<Option<&'c mut Stream>, CmdError> {
    match ctx.entry_mut(key) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::Stream(s) => Ok(Some(s)),
            _ => Err(CmdError::WrongType),
        },
    }
}

/// Writes one entry as Redis does: `[id, [field, value, ...]]`.
pub(super) fn reply_entry(reply: &mut Reply<'_>, e: &Entry<'_>) {
    reply.array(2);
    reply.bulk(e.id.text().as_bytes());
    reply.array(e.len() * 2);
    for (f, v) in e.fields() {
        reply.bulk(f);
        reply.bulk(v);
    }
}

/// Writes up to `count` entries (0: all) of an iterator as an array.
pub(super) fn reply_entries<'a>(
    reply: &mut Reply<'_>,
    entries: impl Iterator<Item = Entry<'a>>,
    count: usize,
) {
    let limit = if count == 0 { usize::MAX } else { count };
    let entries: Vec<Entry<'_>> = entries.take(limit).collect();
    reply.array(entries.len());
    for e in &entries {
        reply_entry(reply, e);
    }
}

/// A BLOCK timeout in milliseconds (Redis's `getTimeoutFromObjectOrReply` with
/// `UNIT_MILLISECONDS`): 0 blocks forever.
pub(super) fn timeout_ms_arg(a: &[u8], now_ms: u64) -> Result<u64, CmdError> {
    let ms = crate::protocol::parse_i64(a)
        .ok_or_else(|| CmdError::msg("ERR timeout is not an integer or out of range"))?;
    if ms < 0 {
        return Err(CmdError::msg("ERR timeout is negative"));
    }
    if ms > 0 && ms as u64 > i64::MAX as u64 - now_ms {
        return Err(CmdError::msg("ERR timeout is out of range"));
    }
    Ok(ms as u64)
}

/// XREAD's and XREADGROUP's options (`xreadCommand`'s parsing).
pub(super) struct ReadArgs<'a> {
    pub block_ms: Option<u64>,
    pub count: usize,
    pub streams_at: usize,
    pub streams: usize,
    pub group: Option<(&'a [u8], &'a [u8])>,
    pub noack: bool,
}

pub(super) fn parse_read<'a>(
    ctx: &Ctx<'_>,
    args: Args<'a>,
    group_cmd: bool,
) -> Result<ReadArgs<'a>, CmdError> {
    let mut r = ReadArgs {
        block_ms: None,
        count: 0,
        streams_at: 0,
        streams: 0,
        group: None,
        noack: false,
    };
    let mut i = 1;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let o = args.get(i);
        if eq(o, "block") && more > 0 {
            if ctx.from_script {
                return Err(CmdError::msg(format!(
                    "ERR {} command is not allowed with BLOCK option from scripts",
                    String::from_utf8_lossy(args.get(0))
                )));
            }
            i += 1;
            r.block_ms = Some(timeout_ms_arg(args.get(i), ctx.now_ms)?);
        } else if eq(o, "count") && more > 0 {
            i += 1;
            r.count = int_arg(args.get(i))?.max(0) as usize;
        } else if eq(o, "streams") && more > 0 {
            r.streams_at = i + 1;
            let n = args.len() - r.streams_at;
            if !n.is_multiple_of(2) {
                return Err(CmdError::msg(
                    "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.",
                ));
            }
            r.streams = n / 2;
            break;
        } else if eq(o, "group") && more >= 2 {
            if !group_cmd {
                return Err(CmdError::msg(
                    "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            r.group = Some((args.get(i + 1), args.get(i + 2)));
            i += 2;
        } else if eq(o, "noack") {
            if !group_cmd {
                return Err(CmdError::msg(
                    "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            r.noack = true;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if r.streams_at == 0 {
        return Err(CmdError::Syntax);
    }
    if group_cmd && r.group.is_none() {
        return Err(CmdError::msg("ERR Missing GROUP option for XREADGROUP"));
    }
    Ok(r)
}

/// Opens the reply of XREAD/XREADGROUP for `n` streams: an array of [key, entries] pairs
/// in RESP2, a map in RESP3.
pub(super) fn read_reply_head(reply: &mut Reply<'_>, n: usize) {
    if reply.resp3() {
        reply.map(n);
    } else {
        reply.array(n);
    }
}

/// Opens one stream's part of the XREAD/XREADGROUP reply.
pub(super) fn read_reply_key(reply: &mut Reply<'_>, key: &[u8]) {
    if !reply.resp3() {
        reply.array(2);
    }
    reply.bulk(key);
}

/// Redis serves a blocked XREAD without COUNT at most this many entries a stream.
pub(super) const BLOCKED_DEFAULT_COUNT: usize = 1000;

/// The stream at `key` when it holds one: `Ok(None)` when missing, or (for a client re-run
/// after a write, which keeps waiting instead) of another type. A client's own call looks
/// the key up as a read (hits, misses, `keymiss`), as each of Redis's XREAD passes does.
///
/// # Errors
/// WRONGTYPE for a client's own call.
pub(super) fn find_stream(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<Option<u32>, CmdError> {
    let woken = ctx.woken_by.is_some();
    let found = if woken { ctx.find(key) } else { ctx.read(key) };
    match found {
        Some(i) => match &ctx.db().entry(i).value {
            Value::Stream(_) => Ok(Some(i)),
            _ if woken => Ok(None),
            _ => Err(CmdError::WrongType),
        },
        None => Ok(None),
    }
}

/// Blocks XREAD/XREADGROUP on its stream keys (or, inside MULTI and scripts, answers as a
/// timeout). `command` is what to re-run when woken, if not the command as sent.
pub(super) fn block_on_streams(
    ctx: &mut Ctx<'_>,
    args: Args<'_>,
    r: &ReadArgs<'_>,
    command: Option<OwnedArgs>,
) {
    match r.block_ms {
        Some(timeout_ms) if ctx.may_block => {
            ctx.block = Some(Block {
                keys: (0..r.streams)
                    .map(|k| SmallBytes::new(args.get(r.streams_at + k)))
                    .collect(),
                timeout_ms,
                on_timeout: TimeoutReply::NullArray,
            });
            ctx.block_command = command;
        }
        _ => ctx.reply.null_array(),
    }
}

/// Whether stream `k` of the call may be served: any, or only the written key when the
/// client is re-run after a write.
pub(super) fn may_serve(ctx: &Ctx<'_>, key: &[u8]) -> bool {
    ctx.woken_by.as_ref().is_none_or(|w| w.as_bytes() == key)
}

/// A command kept as arguments, as a blocked client's command is kept.
pub(super) fn owned_args(argv: &[Vec<u8>]) -> OwnedArgs {
    let mut buf = Vec::new();
    let mut ranges = Vec::with_capacity(argv.len());
    for a in argv {
        let start = buf.len();
        buf.extend_from_slice(a);
        ranges.push((start, buf.len()));
    }
    OwnedArgs::from_args(Args::new(&buf, &ranges))
}
