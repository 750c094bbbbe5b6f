//! GEO commands (the `geo` group): GEOADD, GEOPOS, GEODIST, GEOHASH and the searches
//! (GEOSEARCH, GEOSEARCHSTORE, GEORADIUS, GEORADIUSBYMEMBER and their `_RO` forms).
//!
//! A GEO key is a plain sorted set whose scores are 52-bit geohashes, so it moves between
//! tandem and Redis by RDB or replication unchanged; GEOADD reaches replicas as the ZADD it
//! amounts to, as Redis propagates it. Arguments, error texts (and the order they are
//! detected in), reply shapes and digits follow Redis 7.0's `geo.c`; the arithmetic lives
//! in [`crate::geohash`], the storage in the sorted-set code.

use super::zset::{AddFlags, add_members, parse_double, read_zset, store_result, zset_at};
use super::{CmdError, CmdResult, Ctx, Spec, eq, flags::*, int_arg, spec};
use crate::geohash::{self, Search, Shape};
use crate::keyspace::SmallBytes;
use crate::keyspace::zset::ZSet;
use crate::longdouble::LongDouble;
use crate::pqsort::pqsort;
use crate::protocol::{Args, Reply};
use std::cmp::Ordering;

/// GEORADIUS and GEORADIUSBYMEMBER have movable keys: STORE's key can be anywhere among the
/// options.
pub static COMMANDS: &[Spec] = &[
    spec("geoadd", -5, WRITE | DENYOOM, (1, 1, 1), "geo", geoadd),
    spec("geodist", -4, READONLY, (1, 1, 1), "geo", geodist),
    spec("geohash", -2, READONLY, (1, 1, 1), "geo", geohash_cmd),
    spec("geopos", -2, READONLY, (1, 1, 1), "geo", geopos),
    spec(
        "georadius",
        -6,
        WRITE | DENYOOM | MOVABLEKEYS,
        (1, 1, 1),
        "geo",
        georadius,
    ),
    spec(
        "georadiusbymember",
        -5,
        WRITE | DENYOOM | MOVABLEKEYS,
        (1, 1, 1),
        "geo",
        georadiusbymember,
    ),
    spec("georadius_ro", -6, READONLY, (1, 1, 1), "geo", georadius_ro),
    spec(
        "georadiusbymember_ro",
        -5,
        READONLY,
        (1, 1, 1),
        "geo",
        georadiusbymember_ro,
    ),
    spec("geosearch", -7, READONLY, (1, 1, 1), "geo", geosearch),
    spec(
        "geosearchstore",
        -8,
        WRITE | DENYOOM,
        (1, 2, 1),
        "geo",
        geosearchstore,
    ),
];

const NOT_DECODABLE: &str = "ERR could not decode requested zset member";

// ---------------------------------------------------------------------------------------
// Arguments.

/// A double argument, `ERR <msg>` (or Redis's default float error) when it is not one.
fn double_arg(a: &[u8], msg: Option<&str>) -> Result<f64, CmdError> {
    parse_double(a).ok_or_else(|| match msg {
        Some(m) => CmdError::msg(format!("ERR {m}")),
        None => CmdError::NotFloat,
    })
}

/// A longitude and a latitude, within Redis's limits.
fn long_lat(long: &[u8], lat: &[u8]) -> Result<(f64, f64), CmdError> {
    let (long, lat) = (double_arg(long, None)?, double_arg(lat, None)?);
    if !geohash::valid(long, lat) {
        return Err(CmdError::msg(format!(
            "ERR invalid longitude,latitude pair {long:.6},{lat:.6}"
        )));
    }
    Ok((long, lat))
}

/// Meters per unit.
fn unit_arg(a: &[u8]) -> Result<f64, CmdError> {
    [("m", 1.0), ("km", 1000.0), ("ft", 0.3048), ("mi", 1609.34)]
        .iter()
        .find(|(name, _)| eq(a, name))
        .map(|&(_, meters)| meters)
        .ok_or_else(|| CmdError::msg("ERR unsupported unit provided. please use M, KM, FT, MI"))
}

/// `<radius> <unit>`: the radius and meters per unit.
fn radius_arg(radius: &[u8], unit: &[u8]) -> Result<(f64, f64), CmdError> {
    let r = double_arg(radius, Some("need numeric radius"))?;
    if r < 0.0 {
        return Err(CmdError::msg("ERR radius cannot be negative"));
    }
    Ok((r, unit_arg(unit)?))
}

/// `<width> <height> <unit>`: the box and meters per unit.
fn box_arg(width: &[u8], height: &[u8], unit: &[u8]) -> Result<(Shape, f64), CmdError> {
    let w = double_arg(width, Some("need numeric width"))?;
    let h = double_arg(height, Some("need numeric height"))?;
    if h < 0.0 || w < 0.0 {
        return Err(CmdError::msg("ERR height or width cannot be negative"));
    }
    Ok((
        Shape::Box {
            width: w,
            height: h,
        },
        unit_arg(unit)?,
    ))
}

/// The point of a member of the sorted set at slot `i`.
fn member_point(ctx: &mut Ctx<'_>, i: u32, member: &[u8]) -> Result<(f64, f64), CmdError> {
    zset_at(ctx.db(), i)
        .score(member)
        .map(geohash::decode_score)
        .ok_or_else(|| CmdError::msg(NOT_DECODABLE))
}

// ---------------------------------------------------------------------------------------
// Replies.

/// A distance with four decimals, rounded as `llrint` does (Redis's
/// `addReplyDoubleDistance`): always a bulk string.
fn reply_distance(reply: &mut Reply<'_>, d: f64) {
    let v = (d * 10000.0).round_ties_even() as i64;
    let text = if v == 0 {
        "0.0000".to_string()
    } else {
        let sign = if v < 0 { "-" } else { "" };
        let a = v.unsigned_abs();
        format!("{sign}{}.{:04}", a / 10000, a % 10000)
    };
    reply.bulk(text.as_bytes());
}

/// A coordinate through `long double`, `%.17Lf` without trailing zeros: a bulk string in
/// RESP2, a double in RESP3 (Redis's `addReplyHumanLongDouble`).
fn reply_coordinate(reply: &mut Reply<'_>, v: f64) {
    let text = LongDouble::from(v).to_human_string();
    if reply.resp3() {
        reply.raw(b",");
        reply.raw(text.as_bytes());
        reply.raw(b"\r\n");
    } else {
        reply.bulk(text.as_bytes());
    }
}

// ---------------------------------------------------------------------------------------
// GEOADD, GEOPOS, GEODIST, GEOHASH.

fn geoadd(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let mut f = AddFlags::default();
    let mut idx = 2;
    while idx < args.len() {
        let a = args.get(idx);
        if eq(a, "nx") {
            f.nx = true;
        } else if eq(a, "xx") {
            f.xx = true;
        } else if eq(a, "ch") {
            f.ch = true;
        } else {
            break;
        }
        idx += 1;
    }
    let rest = args.len() - idx;
    // No element at all is ZADD's syntax error once the command became a ZADD.
    if !rest.is_multiple_of(3) || (f.xx && f.nx) || rest == 0 {
        return Err(CmdError::Syntax);
    }
    let mut scored = Vec::with_capacity(rest / 3);
    let mut zadd: Vec<Vec<u8>> = Vec::with_capacity(idx + 2 * (rest / 3));
    zadd.push(b"zadd".to_vec());
    zadd.extend((1..idx).map(|i| args.get(i).to_vec()));
    for j in (idx..args.len()).step_by(3) {
        let (long, lat) = long_lat(args.get(j), args.get(j + 1))?;
        let score = geohash::score(long, lat);
        let member = args.get(j + 2);
        scored.push((score as f64, member));
        zadd.push(itoa::Buffer::new().format(score).as_bytes().to_vec());
        zadd.push(member.to_vec());
    }
    add_members(ctx, args.get(1), &scored, f)?;
    ctx.rewrite(vec![zadd]);
    Ok(())
}

fn geopos(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let slot = read_zset(ctx, args.get(1))?;
    let (db, reply) = ctx.db_and_reply();
    let z = slot.map(|i| zset_at(db, i));
    reply.array(args.len() - 2);
    for m in args.iter().skip(2) {
        match z.and_then(|z| z.score(m)) {
            Some(s) => {
                let (long, lat) = geohash::decode_score(s);
                reply.array(2);
                reply_coordinate(reply, long);
                reply_coordinate(reply, lat);
            }
            None => reply.null_array(),
        }
    }
    Ok(())
}

fn geodist(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let to_meters = match args.len() {
        4 => 1.0,
        5 => unit_arg(args.get(4))?,
        _ => return Err(CmdError::Syntax),
    };
    let Some(i) = read_zset(ctx, args.get(1))? else {
        ctx.reply.null();
        return Ok(());
    };
    let (db, reply) = ctx.db_and_reply();
    let z = zset_at(db, i);
    match (z.score(args.get(2)), z.score(args.get(3))) {
        (Some(a), Some(b)) => {
            let (lon1, lat1) = geohash::decode_score(a);
            let (lon2, lat2) = geohash::decode_score(b);
            reply_distance(reply, geohash::distance(lon1, lat1, lon2, lat2) / to_meters);
        }
        _ => reply.null(),
    }
    Ok(())
}

fn geohash_cmd(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let slot = read_zset(ctx, args.get(1))?;
    let (db, reply) = ctx.db_and_reply();
    let z = slot.map(|i| zset_at(db, i));
    reply.array(args.len() - 2);
    for m in args.iter().skip(2) {
        match z.and_then(|z| z.score(m)) {
            Some(s) => {
                let (long, lat) = geohash::decode_score(s);
                reply.bulk(&geohash::standard_string(long, lat));
            }
            None => reply.null(),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The searches.

/// Which search command runs: what Redis's `georadiusGeneric` takes as flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// GEORADIUS: the centre as coordinates; STORE allowed unless read-only.
    Radius { store_ok: bool },
    /// GEORADIUSBYMEMBER: the centre as a member.
    ByMember { store_ok: bool },
    /// GEOSEARCH, or GEOSEARCHSTORE (`store`).
    Search { store: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    None,
    Asc,
    Desc,
}

/// A point found by a search, its member borrowed from the sorted set.
struct Found<'z> {
    member: &'z [u8],
    long: f64,
    lat: f64,
    dist: f64,
    score: f64,
}

/// The points of `z` inside the search, cell by cell in Redis's order; stops after `limit`
/// points when it is not zero (COUNT ... ANY).
fn points_within<'z>(z: &'z ZSet, search: &Search, limit: usize) -> Vec<Found<'z>> {
    let cells = search.cells();
    let mut found = Vec::new();
    // Very large radii make neighbouring cells coincide: a cell equal to the one scanned
    // just before is skipped (the centre never counts as "before", as in Redis).
    let mut last = 0;
    for (k, cell) in cells.iter().enumerate() {
        let Some(hash) = *cell else { continue };
        if last != 0 && cells[last] == Some(hash) {
            continue;
        }
        if limit != 0 && found.len() >= limit {
            break;
        }
        let (min, max) = geohash::score_range(hash);
        let (min, max) = (min as f64, max as f64);
        for (member, score) in z.iter_from_score(min) {
            if score < min {
                continue;
            }
            if score >= max {
                break;
            }
            let (long, lat) = geohash::decode_score(score);
            if let Some(dist) = search.distance_within(long, lat) {
                found.push(Found {
                    member,
                    long,
                    lat,
                    dist,
                    score,
                });
            }
            if limit != 0 && found.len() >= limit {
                break;
            }
        }
        last = k;
    }
    found
}

/// Orders the points by distance; only the first `keep` need be right (Redis sorts all of
/// them with the C library's stable sort, or partially with its own quicksort).
fn order_points(points: &mut [Found<'_>], order: Order, keep: usize) {
    let asc = |a: &Found<'_>, b: &Found<'_>| {
        if a.dist > b.dist {
            Ordering::Greater
        } else if a.dist == b.dist {
            Ordering::Equal
        } else {
            Ordering::Less
        }
    };
    let mut cmp = |a: &Found<'_>, b: &Found<'_>| match order {
        Order::Desc => asc(a, b).reverse(),
        _ => asc(a, b),
    };
    if order == Order::None {
        return;
    }
    if keep == points.len() {
        points.sort_by(&mut cmp);
    } else if keep > 0 {
        pqsort(points, 0, keep - 1, &mut cmp);
    }
}

/// The options every search shares.
struct Options<'a> {
    search: Search,
    store: Option<&'a [u8]>,
    storedist: bool,
    withdist: bool,
    withhash: bool,
    withcoord: bool,
    order: Order,
    any: bool,
    count: usize,
}

/// Redis's `georadiusGeneric`: parses in Redis's order (WRONGTYPE first, then the fixed
/// arguments, then the options left to right), then searches, replies or stores.
fn search_generic(ctx: &mut Ctx<'_>, args: Args<'_>, variant: Variant) -> CmdResult {
    let src = if variant == (Variant::Search { store: true }) {
        2
    } else {
        1
    };
    let slot = read_zset(ctx, args.get(src))?;
    let mut o = Options {
        search: Search {
            long: 0.0,
            lat: 0.0,
            shape: Shape::Radius(0.0),
            conversion: 1.0,
        },
        store: None,
        storedist: false,
        withdist: false,
        withhash: false,
        withcoord: false,
        order: Order::None,
        any: false,
        count: 0,
    };
    let base = match variant {
        Variant::Radius { .. } => {
            (o.search.long, o.search.lat) = long_lat(args.get(2), args.get(3))?;
            let (r, conversion) = radius_arg(args.get(4), args.get(5))?;
            o.search.shape = Shape::Radius(r);
            o.search.conversion = conversion;
            6
        }
        Variant::ByMember { .. } => {
            // Without the key, the options are still parsed: STORE decides the reply.
            if let Some(i) = slot {
                (o.search.long, o.search.lat) = member_point(ctx, i, args.get(2))?;
                let (r, conversion) = radius_arg(args.get(3), args.get(4))?;
                o.search.shape = Shape::Radius(r);
                o.search.conversion = conversion;
            }
            5
        }
        Variant::Search { store: true } => {
            o.store = Some(args.get(1));
            3
        }
        Variant::Search { store: false } => 2,
    };
    let store_ok = matches!(
        variant,
        Variant::Radius { store_ok: true } | Variant::ByMember { store_ok: true }
    );
    let is_search = matches!(variant, Variant::Search { .. });
    let (mut from_member, mut from_lonlat, mut by_radius, mut by_box) =
        (false, false, false, false);
    let n = args.len();
    let mut i = base;
    while i < n {
        let a = args.get(i);
        if eq(a, "withdist") {
            o.withdist = true;
        } else if eq(a, "withhash") {
            o.withhash = true;
        } else if eq(a, "withcoord") {
            o.withcoord = true;
        } else if eq(a, "any") {
            o.any = true;
        } else if eq(a, "asc") {
            o.order = Order::Asc;
        } else if eq(a, "desc") {
            o.order = Order::Desc;
        } else if eq(a, "count") && i + 1 < n {
            let c = int_arg(args.get(i + 1))?;
            if c <= 0 {
                return Err(CmdError::msg("ERR COUNT must be > 0"));
            }
            o.count = c as usize;
            i += 1;
        } else if (eq(a, "store") || eq(a, "storedist")) && i + 1 < n && store_ok {
            o.store = Some(args.get(i + 1));
            o.storedist = eq(a, "storedist");
            i += 1;
        } else if eq(a, "storedist") && variant == (Variant::Search { store: true }) {
            o.storedist = true;
        } else if eq(a, "frommember") && i + 1 < n && is_search && !from_lonlat {
            if let Some(slot) = slot {
                (o.search.long, o.search.lat) = member_point(ctx, slot, args.get(i + 1))?;
            }
            from_member = true;
            i += 1;
        } else if eq(a, "fromlonlat") && i + 2 < n && is_search && !from_member {
            (o.search.long, o.search.lat) = long_lat(args.get(i + 1), args.get(i + 2))?;
            from_lonlat = true;
            i += 2;
        } else if eq(a, "byradius") && i + 2 < n && is_search && !by_box {
            let (r, conversion) = radius_arg(args.get(i + 1), args.get(i + 2))?;
            o.search.shape = Shape::Radius(r);
            o.search.conversion = conversion;
            by_radius = true;
            i += 2;
        } else if eq(a, "bybox") && i + 3 < n && is_search && !by_radius {
            (o.search.shape, o.search.conversion) =
                box_arg(args.get(i + 1), args.get(i + 2), args.get(i + 3))?;
            by_box = true;
            i += 3;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if o.store.is_some() && (o.withdist || o.withhash || o.withcoord) {
        let who = if variant == (Variant::Search { store: true }) {
            "GEOSEARCHSTORE"
        } else {
            "STORE option in GEORADIUS"
        };
        return Err(CmdError::msg(format!(
            "ERR {who} is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        )));
    }
    let name = String::from_utf8_lossy(args.get(0));
    if is_search && !(from_member || from_lonlat) {
        return Err(CmdError::msg(format!(
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
        )));
    }
    if is_search && !(by_radius || by_box) {
        return Err(CmdError::msg(format!(
            "ERR exactly one of BYRADIUS and BYBOX can be specified for {name}"
        )));
    }
    if o.any && o.count == 0 {
        return Err(CmdError::msg(
            "ERR the ANY argument requires COUNT argument",
        ));
    }
    let store_event = if is_search {
        "geosearchstore"
    } else {
        "georadiusstore"
    };
    let Some(slot) = slot else {
        match o.store {
            Some(dst) => store_points(ctx, store_event, dst, Vec::new()),
            None => ctx.reply.array(0),
        }
        return Ok(());
    };
    // COUNT keeps the nearest points, so it implies ASC unless ANY takes the first found.
    if o.count != 0 && o.order == Order::None && !o.any {
        o.order = Order::Asc;
    }
    match o.store {
        None => {
            let (db, reply) = ctx.db_and_reply();
            reply_points(zset_at(db, slot), &o, reply);
        }
        Some(dst) => {
            let entries = {
                let z = zset_at(ctx.db(), slot);
                let c = o.search.conversion;
                search_points(z, &o)
                    .into_iter()
                    .map(|p| {
                        let score = if o.storedist { p.dist / c } else { p.score };
                        (SmallBytes::new(p.member), score)
                    })
                    .collect()
            };
            store_points(ctx, store_event, dst, entries);
        }
    }
    Ok(())
}

/// The points to return, ordered and cut to COUNT.
fn search_points<'z>(z: &'z ZSet, o: &Options<'_>) -> Vec<Found<'z>> {
    let mut points = points_within(z, &o.search, if o.any { o.count } else { 0 });
    let keep = if o.count == 0 {
        points.len()
    } else {
        points.len().min(o.count)
    };
    order_points(&mut points, o.order, keep);
    points.truncate(keep);
    points
}

fn reply_points(z: &ZSet, o: &Options<'_>, reply: &mut Reply<'_>) {
    let points = search_points(z, o);
    let extras = usize::from(o.withdist) + usize::from(o.withhash) + usize::from(o.withcoord);
    reply.array(points.len());
    for p in &points {
        if extras > 0 {
            reply.array(extras + 1);
        }
        reply.bulk(p.member);
        if o.withdist {
            reply_distance(reply, p.dist / o.search.conversion);
        }
        if o.withhash {
            reply.int(p.score as i64);
        }
        if o.withcoord {
            reply.array(2);
            reply_coordinate(reply, p.long);
            reply_coordinate(reply, p.lat);
        }
    }
}

/// Stores the found points at `dst` (deleting it when there are none) and replies with
/// their number. Redis counts one change per stored point.
fn store_points(
    ctx: &mut Ctx<'_>,
    event: &'static str,
    dst: &[u8],
    entries: Vec<(SmallBytes, f64)>,
) {
    let extra = entries.len().saturating_sub(1) as u64;
    store_result(ctx, event, dst, entries);
    ctx.dirty(extra);
    ctx.touched_only(dst);
}

fn georadius(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    search_generic(ctx, args, Variant::Radius { store_ok: true })
}

fn georadiusbymember(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    search_generic(ctx, args, Variant::ByMember { store_ok: true })
}

fn georadius_ro(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    search_generic(ctx, args, Variant::Radius { store_ok: false })
}

fn georadiusbymember_ro(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    search_generic(ctx, args, Variant::ByMember { store_ok: false })
}

fn geosearch(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    search_generic(ctx, args, Variant::Search { store: false })
}

fn geosearchstore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    search_generic(ctx, args, Variant::Search { store: true })
}
