//! Geospatial commands (Redis's geo.c): points live in a sorted set whose
//! scores are 52-bit geohashes (see `crate::geohash`).

use crate::cmd::zset::{finish_write, limits, parse_score, store_result};
use crate::ctx::{err, CmdError, CmdResult, Ctx, Store};
use crate::geohash::{self, Shape, ShapeKind, LAT_MAX, LAT_MIN, LON_MAX, LON_MIN};
use crate::table::{flag::*, Keys, Spec};
use crate::util::{is, parse_i64};
use bytes::Bytes;
use granary_keyspace::types::zset::ZSetValue;
use granary_keyspace::Value;
use granary_protocol::Reply;

const G: &str = "geo";
const K1: Keys = Keys::Range(1, 1, 1);
const K12: Keys = Keys::Range(1, 2, 1);
const R_SLOW: &[&str] = &["@read", "@geo", "@slow"];
const W_SLOW: &[&str] = &["@write", "@geo", "@slow"];

const BAD_MEMBER: &str = "ERR could not decode requested zset member";

#[rustfmt::skip]
pub static COMMANDS: &[Spec] = &[
    Spec::new("geoadd", -5, WRITE | DENYOOM, K1, geoadd).group(G, "3.2.0").acl(W_SLOW).doc("Adds one or more members to a geospatial index. The key is created if it doesn't exist."),
    Spec::new("geopos", -2, READONLY, K1, geopos).group(G, "3.2.0").acl(R_SLOW).doc("Returns the longitude and latitude of members from a geospatial index."),
    Spec::new("geodist", -4, READONLY, K1, geodist).group(G, "3.2.0").acl(R_SLOW).doc("Returns the distance between two members of a geospatial index."),
    Spec::new("geohash", -2, READONLY, K1, geohash_cmd).group(G, "3.2.0").acl(R_SLOW).doc("Returns members from a geospatial index as geohash strings."),
    Spec::new("geosearch", -7, READONLY, K1, geosearch).group(G, "6.2.0").acl(R_SLOW).doc("Queries a geospatial index for members inside an area of a box or a circle."),
    Spec::new("geosearchstore", -8, WRITE | DENYOOM, K12, geosearchstore).group(G, "6.2.0").acl(W_SLOW).doc("Queries a geospatial index for members inside an area of a box or a circle, optionally stores the result."),
    Spec::new("georadius", -6, WRITE | DENYOOM, Keys::Custom(radius_keys), georadius).group(G, "3.2.0").acl(W_SLOW).doc("Queries a geospatial index for members within a distance from a coordinate, optionally stores the result."),
    Spec::new("georadiusbymember", -5, WRITE | DENYOOM, Keys::Custom(radius_keys), georadiusbymember).group(G, "3.2.0").acl(W_SLOW).doc("Queries a geospatial index for members within a distance from a member, optionally stores the result."),
    Spec::new("georadius_ro", -6, READONLY, K1, georadius_ro).group(G, "3.2.10").acl(R_SLOW).doc("Returns members from a geospatial index that are within a distance from a coordinate."),
    Spec::new("georadiusbymember_ro", -5, READONLY, K1, georadiusbymember_ro).group(G, "3.2.10").acl(R_SLOW).doc("Returns members from a geospatial index that are within a distance from a member."),
];

/// GEORADIUS[BYMEMBER] keys: the source and every argument that follows a
/// STORE or STOREDIST word (a superset of the one the command writes, so
/// every shard it may touch is locked).
fn radius_keys(args: &[Bytes]) -> Vec<usize> {
    let mut keys = vec![1];
    let mut i = 2;
    while i + 1 < args.len() {
        if is(&args[i], "store") || is(&args[i], "storedist") {
            keys.push(i + 1);
            i += 1;
        }
        i += 1;
    }
    keys
}

// ------------------------------------------------------------ helpers

/// The sorted set at `key` for a read (counts hits/misses), or WRONGTYPE.
fn zread<'s>(store: &'s mut Store, key: &[u8]) -> Result<Option<&'s mut ZSetValue>, CmdError> {
    match store.read(key) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::ZSet(z) => Ok(Some(z)),
            _ => Err(err::WRONGTYPE.into()),
        },
    }
}

/// The sorted set at `key` without counting a keyspace hit (a second look
/// by a command that already read it).
fn zlook<'s>(store: &'s mut Store, key: &[u8]) -> Option<&'s mut ZSetValue> {
    match &mut store.entry(key)?.value {
        Value::ZSet(z) => Some(z),
        _ => None,
    }
}

/// A float argument as getDoubleFromObjectOrReply reads it, with its error.
fn parse_float(arg: &[u8], msg: &'static str) -> Result<f64, CmdError> {
    parse_score(arg).ok_or_else(|| msg.into())
}

/// A longitude, latitude pair (extractLongLatOrReply).
fn parse_lonlat(args: &[Bytes]) -> Result<[f64; 2], CmdError> {
    let lon = parse_float(&args[0], err::NOT_FLOAT)?;
    let lat = parse_float(&args[1], err::NOT_FLOAT)?;
    if !(LON_MIN..=LON_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return Err(format!("ERR invalid longitude,latitude pair {lon:.6},{lat:.6}").into());
    }
    Ok([lon, lat])
}

/// Meters per unit (extractUnitOrReply).
fn parse_unit(arg: &[u8]) -> Result<f64, CmdError> {
    let units = [("m", 1.0), ("km", 1000.0), ("ft", 0.3048), ("mi", 1609.34)];
    units
        .iter()
        .find(|(name, _)| is(arg, name))
        .map(|(_, f)| *f)
        .ok_or_else(|| "ERR unsupported unit provided. please use M, KM, FT, MI".into())
}

/// `radius unit` (extractDistanceOrReply): (radius, meters per unit).
fn parse_distance(args: &[Bytes]) -> Result<(f64, f64), CmdError> {
    let r = parse_float(&args[0], "ERR need numeric radius")?;
    if r < 0.0 {
        return Err("ERR radius cannot be negative".into());
    }
    Ok((r, parse_unit(&args[1])?))
}

/// `width height unit` (extractBoxOrReply): (width, height, meters per unit).
fn parse_box(args: &[Bytes]) -> Result<(f64, f64, f64), CmdError> {
    let w = parse_float(&args[0], "ERR need numeric width")?;
    let h = parse_float(&args[1], "ERR need numeric height")?;
    if h < 0.0 || w < 0.0 {
        return Err("ERR height or width cannot be negative".into());
    }
    Ok((w, h, parse_unit(&args[2])?))
}

/// A distance as Redis prints it: four decimals.
fn reply_distance(out: &mut Reply, d: f64) {
    out.bulk(format!("{d:.4}").as_bytes());
}

/// A coordinate as addReplyHumanLongDouble prints it: "%.17Lf" without
/// trailing zeros; a bulk string in RESP2, a double in RESP3.
fn reply_coord(out: &mut Reply, d: f64) {
    let mut s = format!("{d:.17}");
    if s.contains('.') {
        s.truncate(s.trim_end_matches('0').trim_end_matches('.').len());
    }
    if s == "-0" {
        s = "0".into();
    }
    if out.resp3() {
        out.raw(format!(",{s}\r\n").as_bytes());
    } else {
        out.bulk(s.as_bytes());
    }
}

// ------------------------------------------------------------ GEOADD & co

fn geoadd(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let (mut nx, mut xx, mut ch) = (false, false, false);
    let mut i = 2;
    while i < args.len() {
        if is(&args[i], "nx") {
            nx = true;
        } else if is(&args[i], "xx") {
            xx = true;
        } else if is(&args[i], "ch") {
            ch = true;
        } else {
            break;
        }
        i += 1;
    }
    let rest = &args[i..];
    if rest.is_empty() || !rest.len().is_multiple_of(3) || (nx && xx) {
        return Err(err::SYNTAX.into());
    }
    let mut points = Vec::with_capacity(rest.len() / 3);
    for p in rest.chunks(3) {
        let [lon, lat] = parse_lonlat(&p[..2])?;
        let score = geohash::encode_score(lon, lat).unwrap_or(0) as f64;
        points.push((score, &p[2]));
    }
    let key = &args[1];
    let lim = limits(c);
    if zread_write(&mut c.store, key)?.is_none() {
        if xx {
            c.out.int(0);
            return Ok(());
        }
        let maxlen = points.iter().map(|(_, m)| m.len()).max().unwrap_or(0);
        let z = ZSetValue::with_hint(points.len(), maxlen, lim);
        c.store.set(key, Value::ZSet(Box::new(z)), None);
    }
    let Some(z) = zlook(&mut c.store, key) else {
        return Err(err::NO_SUCH_KEY.into());
    };
    let (mut added, mut updated) = (0i64, 0i64);
    for (score, member) in points {
        match z.score(member) {
            Some(_) if nx => {}
            Some(cur) if cur != score => {
                z.insert(member, score, lim);
                updated += 1;
            }
            Some(_) => {}
            None if !xx => {
                z.insert(member, score, lim);
                added += 1;
            }
            None => {}
        }
    }
    let len = z.len();
    if added + updated > 0 || len == 0 {
        // GEOADD is ZADD underneath, in Redis too.
        finish_write(&mut c.store, key, len, "zadd");
    }
    c.out.int(if ch { added + updated } else { added });
    Ok(())
}

/// The sorted set at `key` for a write (no hit counting), or WRONGTYPE.
fn zread_write<'s>(
    store: &'s mut Store,
    key: &[u8],
) -> Result<Option<&'s mut ZSetValue>, CmdError> {
    match store.entry(key) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::ZSet(z) => Ok(Some(z)),
            _ => Err(err::WRONGTYPE.into()),
        },
    }
}

fn geopos(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let z = zread(&mut c.store, &args[1])?;
    c.out.array(args.len() - 2);
    for m in &args[2..] {
        match z.as_ref().and_then(|z| z.score(m)) {
            None => c.out.null_array(),
            Some(s) => {
                let [lon, lat] = geohash::decode_score(s);
                c.out.array(2);
                reply_coord(c.out, lon);
                reply_coord(c.out, lat);
            }
        }
    }
    Ok(())
}

fn geodist(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let to_meter = match args.len() {
        5 => parse_unit(&args[4])?,
        n if n > 5 => return Err(err::SYNTAX.into()),
        _ => 1.0,
    };
    let Some(z) = zread(&mut c.store, &args[1])? else {
        c.out.null();
        return Ok(());
    };
    match (z.score(&args[2]), z.score(&args[3])) {
        (Some(a), Some(b)) => {
            let [x1, y1] = geohash::decode_score(a);
            let [x2, y2] = geohash::decode_score(b);
            reply_distance(c.out, geohash::distance(x1, y1, x2, y2) / to_meter);
        }
        _ => c.out.null(),
    }
    Ok(())
}

fn geohash_cmd(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let z = zread(&mut c.store, &args[1])?;
    c.out.array(args.len() - 2);
    for m in &args[2..] {
        match z.as_ref().and_then(|z| z.score(m)) {
            None => c.out.null(),
            Some(s) => c.out.bulk(&geohash::geohash_string(s)),
        }
    }
    Ok(())
}

// ------------------------------------------------------------ searches

const COORDS: u8 = 1;
const MEMBER: u8 = 1 << 1;
const NOSTORE: u8 = 1 << 2;
const SEARCH: u8 = 1 << 3;
const SEARCHSTORE: u8 = 1 << 4;

fn georadius(c: &mut Ctx) -> CmdResult {
    search_generic(c, 1, COORDS)
}

fn georadiusbymember(c: &mut Ctx) -> CmdResult {
    search_generic(c, 1, MEMBER)
}

fn georadius_ro(c: &mut Ctx) -> CmdResult {
    search_generic(c, 1, COORDS | NOSTORE)
}

fn georadiusbymember_ro(c: &mut Ctx) -> CmdResult {
    search_generic(c, 1, MEMBER | NOSTORE)
}

fn geosearch(c: &mut Ctx) -> CmdResult {
    search_generic(c, 1, SEARCH)
}

fn geosearchstore(c: &mut Ctx) -> CmdResult {
    search_generic(c, 2, SEARCH | SEARCHSTORE)
}

#[derive(Clone, Copy, PartialEq)]
enum Sort {
    None,
    Asc,
    Desc,
}

/// Everything a search command's arguments ask for.
struct Query {
    center: [f64; 2],
    conversion: f64,
    kind: Option<ShapeKind>,
    withdist: bool,
    withhash: bool,
    withcoord: bool,
    any: bool,
    sort: Sort,
    count: i64,
    store: Option<usize>,
    storedist: bool,
    frommember: bool,
    fromloc: bool,
}

/// A member found inside the search shape.
struct Point {
    member: Vec<u8>,
    score: f64,
    lon: f64,
    lat: f64,
    dist: f64,
}

/// The position of `member` in the set at `key` (longLatFromMember).
fn member_pos(store: &mut Store, key: &[u8], member: &[u8]) -> Result<[f64; 2], CmdError> {
    let s = zlook(store, key).and_then(|z| z.score(member));
    s.map(geohash::decode_score)
        .ok_or_else(|| BAD_MEMBER.into())
}

/// georadiusGeneric: parses in Redis's order (so the same error wins),
/// searches the nine cells, then replies or stores.
fn search_generic(c: &mut Ctx, src: usize, flags: u8) -> CmdResult {
    let args = c.args;
    let key = &args[src];
    let exists = zread(&mut c.store, key)?.is_some();
    let mut q = Query {
        center: [0.0; 2],
        conversion: 1.0,
        kind: None,
        withdist: false,
        withhash: false,
        withcoord: false,
        any: false,
        sort: Sort::None,
        count: 0,
        store: None,
        storedist: false,
        frommember: false,
        fromloc: false,
    };
    let base = if flags & COORDS != 0 {
        q.center = parse_lonlat(&args[2..4])?;
        let (r, conv) = parse_distance(&args[4..6])?;
        (q.kind, q.conversion) = (Some(ShapeKind::Radius(r)), conv);
        6
    } else if flags & MEMBER != 0 {
        // Without a source key Redis still parses the options, to know
        // which empty reply to give, but not the member nor the radius.
        if exists {
            q.center = member_pos(&mut c.store, key, &args[2])?;
            let (r, conv) = parse_distance(&args[3..5])?;
            (q.kind, q.conversion) = (Some(ShapeKind::Radius(r)), conv);
        }
        5
    } else if flags & SEARCHSTORE != 0 {
        q.store = Some(1);
        3
    } else {
        2
    };
    parse_options(c, &mut q, base, flags, exists)?;
    if q.store.is_some() && (q.withdist || q.withhash || q.withcoord) {
        let what = if flags & SEARCHSTORE != 0 {
            "GEOSEARCHSTORE"
        } else {
            "STORE option in GEORADIUS"
        };
        return Err(format!(
            "ERR {what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        )
        .into());
    }
    let name = String::from_utf8_lossy(&args[0]).into_owned();
    if flags & SEARCH != 0 && !(q.frommember || q.fromloc) {
        return Err(format!(
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
        )
        .into());
    }
    if flags & SEARCH != 0 && q.kind.is_none() {
        return Err(
            format!("ERR exactly one of BYRADIUS and BYBOX can be specified for {name}").into(),
        );
    }
    if q.any && q.count == 0 {
        return Err("ERR the ANY argument requires COUNT argument".into());
    }
    let Some(kind) = q.kind.filter(|_| exists) else {
        return reply_empty(c, &q);
    };
    if q.count != 0 && q.sort == Sort::None && !q.any {
        q.sort = Sort::Asc;
    }
    let shape = Shape {
        center: q.center,
        conversion: q.conversion,
        kind,
    };
    let limit = if q.any { q.count as usize } else { 0 };
    let mut points = match zlook(&mut c.store, key) {
        Some(z) => find_points(z, &shape, limit),
        None => Vec::new(),
    };
    match q.sort {
        Sort::Asc => points.sort_by(|a, b| a.dist.total_cmp(&b.dist)),
        Sort::Desc => points.sort_by(|a, b| b.dist.total_cmp(&a.dist)),
        Sort::None => {}
    }
    if q.count > 0 {
        points.truncate(q.count as usize);
    }
    for p in &mut points {
        p.dist /= q.conversion;
    }
    match q.store {
        None => reply_points(c.out, &q, &points),
        Some(dst) => {
            let items: Vec<(Vec<u8>, f64)> = points
                .into_iter()
                .map(|p| (p.member, if q.storedist { p.dist } else { p.score }))
                .collect();
            let mut sorted = items;
            sorted.sort_by(|a, b| granary_keyspace::types::zset::cmp_pair(a.1, &a.0, b.1, &b.0));
            let lim = limits(c);
            let event = if c.spec.name == "geosearchstore" {
                "geosearchstore"
            } else {
                "georadiusstore"
            };
            store_result(&mut c.store, &args[dst], &sorted, lim, event);
            c.out.int(sorted.len() as i64);
        }
    }
    Ok(())
}

/// The reply when the source key does not exist: 0 after deleting the
/// destination of a store, else an empty array.
fn reply_empty(c: &mut Ctx, q: &Query) -> CmdResult {
    match q.store {
        Some(dst) => {
            if c.store.remove(&c.args[dst]).is_some() {
                c.notify(crate::notify::class::GENERIC, "del", &c.args[dst]);
            }
            c.out.int(0);
        }
        None => c.out.array(0),
    }
    Ok(())
}

/// The optional arguments from `base` on, in Redis's order of checks.
fn parse_options(c: &mut Ctx, q: &mut Query, base: usize, flags: u8, exists: bool) -> CmdResult {
    let args = c.args;
    let key = &args[if flags & SEARCHSTORE != 0 { 2 } else { 1 }];
    let search = flags & SEARCH != 0;
    let store_ok = flags & (NOSTORE | SEARCH) == 0;
    let mut i = base;
    while i < args.len() {
        let a = &args[i];
        let left = args.len() - i - 1;
        if is(a, "withdist") {
            q.withdist = true;
        } else if is(a, "withhash") {
            q.withhash = true;
        } else if is(a, "withcoord") {
            q.withcoord = true;
        } else if is(a, "any") {
            q.any = true;
        } else if is(a, "asc") {
            q.sort = Sort::Asc;
        } else if is(a, "desc") {
            q.sort = Sort::Desc;
        } else if is(a, "count") && left >= 1 {
            q.count = parse_i64(&args[i + 1])?;
            if q.count <= 0 {
                return Err("ERR COUNT must be > 0".into());
            }
            i += 1;
        } else if (is(a, "store") || is(a, "storedist")) && left >= 1 && store_ok {
            q.store = Some(i + 1);
            q.storedist = is(a, "storedist");
            i += 1;
        } else if is(a, "storedist") && search && flags & SEARCHSTORE != 0 {
            q.storedist = true;
        } else if is(a, "frommember") && left >= 1 && search && !q.fromloc {
            if exists {
                q.center = member_pos(&mut c.store, key, &args[i + 1])?;
            }
            q.frommember = true;
            i += 1;
        } else if is(a, "fromlonlat") && left >= 2 && search && !q.frommember {
            q.center = parse_lonlat(&args[i + 1..i + 3])?;
            q.fromloc = true;
            i += 2;
        } else if is(a, "byradius")
            && left >= 2
            && search
            && !matches!(q.kind, Some(ShapeKind::Box { .. }))
        {
            let (r, conv) = parse_distance(&args[i + 1..i + 3])?;
            (q.kind, q.conversion) = (Some(ShapeKind::Radius(r)), conv);
            i += 2;
        } else if is(a, "bybox")
            && left >= 3
            && search
            && !matches!(q.kind, Some(ShapeKind::Radius(_)))
        {
            let (width, height, conv) = parse_box(&args[i + 1..i + 4])?;
            (q.kind, q.conversion) = (Some(ShapeKind::Box { width, height }), conv);
            i += 3;
        } else {
            return Err(err::SYNTAX.into());
        }
        i += 1;
    }
    Ok(())
}

/// The members inside `shape`, cell by cell in Redis's scan order, each
/// cell in score order; stops once `limit` (COUNT ANY) are found.
fn find_points(z: &ZSetValue, shape: &Shape, limit: usize) -> Vec<Point> {
    let mut out = Vec::new();
    for cell in geohash::search_cells(shape) {
        if limit > 0 && out.len() >= limit {
            break;
        }
        let (min, max) = cell.score_range();
        let (min, max) = (min as f64, max as f64);
        let start = z.count_before(&|s, _| s < min);
        for (m, s) in z.iter_from(start, false) {
            if s >= max {
                break;
            }
            let [lon, lat] = geohash::decode_score(s);
            if let Some(dist) = shape.contains(lon, lat) {
                out.push(Point {
                    member: m.to_vec(),
                    score: s,
                    lon,
                    lat,
                    dist,
                });
                if limit > 0 && out.len() >= limit {
                    break;
                }
            }
        }
    }
    out
}

fn reply_points(out: &mut Reply, q: &Query, points: &[Point]) {
    let extras = usize::from(q.withdist) + usize::from(q.withhash) + usize::from(q.withcoord);
    out.array(points.len());
    for p in points {
        if extras > 0 {
            out.array(extras + 1);
        }
        out.bulk(&p.member);
        if q.withdist {
            reply_distance(out, p.dist);
        }
        if q.withhash {
            out.int(p.score as i64);
        }
        if q.withcoord {
            out.array(2);
            reply_coord(out, p.lon);
            reply_coord(out, p.lat);
        }
    }
}
