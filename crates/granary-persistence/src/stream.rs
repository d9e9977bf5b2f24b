//! Streams in RDB form (rdb.c's OBJ_STREAM branches, t_stream.c's node
//! layout).
//!
//! Body: the node count, then per node its key (the master ID as 16
//! big-endian bytes) and its listpack; the length, last ID, first ID, max
//! deleted entry ID and entries added (the last three from
//! RDB_TYPE_STREAM_LISTPACKS_2 on); then the consumer groups: name, last
//! ID, entries read (v2 on), the group PEL (ID, delivery time, delivery
//! count), and the consumers (name, seen time, active time from v3 on, and
//! the IDs they own, which must be in the group PEL).
//!
//! A node's listpack starts with the master entry: live count, deleted
//! count, the master field count and names, and a 0. Each entry follows:
//! flags, ms and seq differences from the master ID, then either the
//! values alone (SAMEFIELDS: the master fields, in order) or a field count
//! and the field/value pairs, then the number of listpack elements the
//! entry took before this one (its "lp-count").
//!
//! Granary's stream blocks are cut by the same rules as Redis's nodes, so
//! they are written one node each, deleted entries included; loading keeps
//! the file's nodes as they are, as Redis does. Writing uses the RDB 10
//! type (STREAM_LISTPACKS_2), which has no consumer active time: Redis 7.0
//! loads it, and loading it back sets active time to seen time, as Redis
//! 7.2+ does.

use crate::codec::{put_len, put_string_with, Error, Input, Result};
use crate::listpack::{self, LpEntry};
use crate::types;
use granary_keyspace::types::stream::{Consumer, Group, Node, Pending, StreamId};
use granary_keyspace::types::Stream;
use granary_keyspace::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

const FLAG_DELETED: i64 = 1;
const FLAG_SAMEFIELDS: i64 = 2;

// ---------------------------------------------------------------- writing

/// Appends a stream as RDB_TYPE_STREAM_LISTPACKS_2 (Redis 7.0's). The
/// whole stream is serialized at once: a snapshot writes a huge stream in
/// one step under its shard's lock.
pub fn write(lz: bool, out: &mut Vec<u8>, s: &Stream) {
    out.push(types::STREAM_LISTPACKS_2);
    put_len(out, s.node_count() as u64);
    for node in s.nodes() {
        put_string_with(lz, out, &id_bytes(node.master));
        put_string_with(lz, out, &node_listpack(&node));
    }
    put_len(out, s.len());
    put_id(out, s.last_id);
    put_id(out, s.first_id);
    put_id(out, s.max_deleted_id);
    put_len(out, s.entries_added);
    put_len(out, s.groups.len() as u64);
    for (name, g) in &s.groups {
        put_string_with(lz, out, name);
        put_id(out, g.last_id);
        // -1 (unknown) is written as 2^64-1, read back as -1.
        put_len(out, g.entries_read as u64);
        put_len(out, g.pel.len() as u64);
        for (id, p) in &g.pel {
            out.extend_from_slice(&id_bytes(*id));
            out.extend_from_slice(&p.delivery_time.to_le_bytes());
            put_len(out, p.delivery_count);
        }
        put_len(out, g.consumers.len() as u64);
        for (name, c) in &g.consumers {
            put_string_with(lz, out, name);
            out.extend_from_slice(&c.seen_time.to_le_bytes());
            put_len(out, c.pel.len() as u64);
            for id in &c.pel {
                out.extend_from_slice(&id_bytes(*id));
            }
        }
    }
}

/// The 16-byte big-endian form of an ID (node keys and PEL entries).
fn id_bytes(id: StreamId) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&id.ms.to_be_bytes());
    k[8..].copy_from_slice(&id.seq.to_be_bytes());
    k
}

fn put_id(out: &mut Vec<u8>, id: StreamId) {
    put_len(out, id.ms);
    put_len(out, id.seq);
}

/// A node's listpack, as streamAppendItem builds it.
fn node_listpack(node: &Node) -> Vec<u8> {
    let mut w = listpack::Writer::new();
    w.push_int(node.live as i64);
    w.push_int(node.deleted as i64);
    w.push_int(node.master_fields.len() as i64);
    for f in &node.master_fields {
        w.push(f);
    }
    w.push_int(0);
    for e in &node.entries {
        let mut flags = 0;
        if e.deleted {
            flags |= FLAG_DELETED;
        }
        if e.same_fields {
            flags |= FLAG_SAMEFIELDS;
        }
        w.push_int(flags);
        w.push_int(e.id.ms.wrapping_sub(node.master.ms) as i64);
        w.push_int(e.id.seq.wrapping_sub(node.master.seq) as i64);
        let n = e.fields.len();
        if e.same_fields {
            for (_, v) in &e.fields {
                w.push(v);
            }
            w.push_int(n as i64 + 3);
        } else {
            w.push_int(n as i64);
            for (f, v) in &e.fields {
                w.push(f);
                w.push(v);
            }
            w.push_int(2 * n as i64 + 4);
        }
    }
    w.finish()
}

// ---------------------------------------------------------------- reading

fn bad(what: &'static str) -> Error {
    Error(what)
}

/// Reads the body of a stream of RDB type 15, 19 or 21, checking what
/// Redis checks (and what Redis's deep sanitization checks): a payload
/// that is corrupt or inconsistent is an error.
pub fn read(t: u8, input: &mut Input) -> Result<Value> {
    let v2 = t != types::STREAM_LISTPACKS;
    let mut s = Stream::new();
    // A node takes at least its 17-byte key and a listpack.
    let nodes = input.count(17 + 8)?;
    let mut prev: Option<StreamId> = None;
    let mut last_live = None;
    for _ in 0..nodes {
        let key = input.string()?;
        let master = parse_id(&key).ok_or(bad("stream node key is not an ID"))?;
        if prev.is_some_and(|p| master <= p) {
            return Err(bad("stream nodes out of order"));
        }
        let lp = input.string()?;
        read_node(&mut s, master, &lp, &mut prev, &mut last_live)?;
    }
    let length = input.length()?;
    s.last_id = read_id(input)?;
    if v2 {
        s.first_id = read_id(input)?;
        s.max_deleted_id = read_id(input)?;
        s.entries_added = input.length()?;
    } else {
        s.entries_added = length;
        // streamGetEdgeID: the largest ID when there is no entry.
        s.first_id = s.edge_id(true).unwrap_or(StreamId::MAX);
    }
    if length != s.len() {
        return Err(bad("stream length differs from its entries"));
    }
    // XSETID keeps entries added at least the length, and a signed 64-bit
    // count: beyond, the lag arithmetic would overflow.
    if s.entries_added < length || s.entries_added > i64::MAX as u64 {
        return Err(bad("bad stream entries added"));
    }
    if last_live.is_some_and(|id| id > s.last_id) {
        return Err(bad("stream entry past the last ID"));
    }
    let groups = input.count(4)?;
    for _ in 0..groups {
        let name = input.string()?;
        let last_id = read_id(input)?;
        let entries_read = if v2 {
            // -1 (unknown) or a count XGROUP could have set.
            let n = input.length()? as i64;
            if n < -1 {
                return Err(bad("bad group entries read"));
            }
            n
        } else {
            s.estimate_position(last_id)
        };
        let g = read_group(t, input, last_id, entries_read)?;
        if s.groups.insert(name.into(), g).is_some() {
            return Err(bad("duplicate consumer group"));
        }
    }
    Ok(Value::Stream(Box::new(s)))
}

/// An ID in the 16-byte big-endian form.
fn parse_id(b: &[u8]) -> Option<StreamId> {
    let ms = u64::from_be_bytes(b.get(..8)?.try_into().ok()?);
    let seq = u64::from_be_bytes(b.get(8..16)?.try_into().ok()?);
    (b.len() == 16).then_some(StreamId::new(ms, seq))
}

fn read_id(input: &mut Input) -> Result<StreamId> {
    let ms = input.length()?;
    Ok(StreamId::new(ms, input.length()?))
}

/// A listpack element that must be an integer (lpGetIntegerIfValid).
fn int(e: Option<&LpEntry>) -> Result<i64> {
    match e {
        Some(LpEntry::Int(v)) => Ok(*v),
        Some(LpEntry::Str(s)) => {
            granary_keyspace::canonical_i64(s).ok_or(bad("stream node field not an integer"))
        }
        None => Err(bad("stream node truncated")),
    }
}

/// A non-negative count, at most what is left of the listpack.
fn small_count(e: Option<&LpEntry>, left: usize) -> Result<usize> {
    usize::try_from(int(e)?)
        .ok()
        .filter(|&n| n <= left)
        .ok_or(bad("bad stream node count"))
}

/// One entry of a node as read: its ID, whether it is deleted, and either
/// its values (it has the master fields) or its flattened field/value
/// pairs. The master names are not copied per entry: a node of many
/// entries with long master names would otherwise take far more memory
/// than the payload.
struct RawEntry {
    id: StreamId,
    deleted: bool,
    same: bool,
    items: Vec<Vec<u8>>,
}

/// Reads one node's listpack into `s` after validating it entirely
/// (streamValidateListpackIntegrity): master entry, every entry's
/// shape and lp-count, the counts, and IDs ascending from `prev`.
fn read_node(
    s: &mut Stream,
    master: StreamId,
    lp: &[u8],
    prev: &mut Option<StreamId>,
    last_live: &mut Option<StreamId>,
) -> Result<()> {
    let items = listpack::parse(lp)?;
    let mut it = items.iter();
    let live = int(it.next())?;
    let deleted = int(it.next())?;
    let nmaster = small_count(it.next(), it.len())?;
    let names: Vec<Vec<u8>> = it.by_ref().take(nmaster).map(|e| e.to_vec()).collect();
    if int(it.next())? != 0 {
        return Err(bad("stream master entry not terminated"));
    }
    let mut entries: Vec<RawEntry> = Vec::new();
    let (mut seen_live, mut seen_deleted) = (0i64, 0i64);
    while it.len() > 0 {
        let flags = int(it.next())?;
        let ms = int(it.next())? as u64;
        let seq = int(it.next())? as u64;
        let id = StreamId::new(master.ms.wrapping_add(ms), master.seq.wrapping_add(seq));
        if id < master || prev.is_some_and(|p| id <= p) {
            return Err(bad("stream entries out of order"));
        }
        *prev = Some(id);
        let same = flags & FLAG_SAMEFIELDS != 0;
        let n = if same {
            nmaster
        } else {
            2 * small_count(it.next(), it.len() / 2)?
        };
        let items: Vec<Vec<u8>> = it.by_ref().take(n).map(|e| e.to_vec()).collect();
        if items.len() != n {
            return Err(bad("stream entry truncated"));
        }
        let elements = if same { n + 3 } else { n + 4 };
        if int(it.next())? != elements as i64 {
            return Err(bad("stream entry lp-count mismatch"));
        }
        let deleted = flags & FLAG_DELETED != 0;
        if deleted {
            seen_deleted += 1;
        } else {
            seen_live += 1;
            *last_live = Some(id);
        }
        entries.push(RawEntry {
            id,
            deleted,
            same,
            items,
        });
    }
    if entries.is_empty() {
        return Err(bad("empty stream node"));
    }
    if seen_live != live || seen_deleted != deleted {
        return Err(bad("stream node counts mismatch"));
    }
    let names: Vec<&[u8]> = names.iter().map(|n| &n[..]).collect();
    s.push_node(
        master,
        &names,
        entries
            .iter()
            .map(|e| (e.id, e.deleted, entry_fields(&names, e))),
    );
    Ok(())
}

/// An entry's flattened field/value pairs, the names of a SAMEFIELDS
/// entry taken from the master entry.
fn entry_fields<'a>(names: &[&'a [u8]], e: &'a RawEntry) -> Vec<&'a [u8]> {
    if e.same {
        names
            .iter()
            .zip(&e.items)
            .flat_map(|(f, v)| [*f, &v[..]])
            .collect()
    } else {
        e.items.iter().map(|x| &x[..]).collect()
    }
}

/// A millisecond Unix time (rdbLoadMillisecondTime). Redis only stores
/// times from its clock: a negative one is corrupt (and would overflow
/// the idle time arithmetic).
fn read_time(input: &mut Input) -> Result<u64> {
    u64::try_from(i64::from_le_bytes(input.array()?)).map_err(|_| bad("bad stream time"))
}

/// A group PEL entry being loaded: delivery time and count, and the
/// consumer that owns it once one claims it.
type LoadedPending = (u64, u64, Option<Arc<[u8]>>);

/// A consumer group's PEL and consumers. Every PEL entry must belong to
/// exactly one consumer (Granary's PEL entries always have an owner).
fn read_group(t: u8, input: &mut Input, last_id: StreamId, entries_read: i64) -> Result<Group> {
    let mut g = Group::new(last_id, entries_read);
    // ID, delivery time, delivery count: 25 bytes at least.
    let n = input.count(25)?;
    let mut pel: BTreeMap<StreamId, LoadedPending> = BTreeMap::new();
    for _ in 0..n {
        let id = parse_id(&input.array::<16>()?).ok_or(bad("bad PEL ID"))?;
        let time = read_time(input)?;
        let count = input.length()?;
        if count > i64::MAX as u64 {
            return Err(bad("bad delivery count"));
        }
        if pel.insert(id, (time, count, None)).is_some() {
            return Err(bad("duplicate group PEL entry"));
        }
    }
    let n = input.count(10)?;
    for _ in 0..n {
        let name = input.string()?;
        let seen_time = read_time(input)?;
        let active_time = if t == types::STREAM_LISTPACKS_3 {
            // -1: never active (a consumer Redis 7.2+ created, unused).
            match i64::from_le_bytes(input.array()?) {
                -1 => -1,
                v => u64::try_from(v).map_err(|_| bad("bad consumer time"))? as i64,
            }
        } else {
            seen_time as i64
        };
        let name: Arc<[u8]> = Arc::from(name);
        let mut own = BTreeSet::new();
        for _ in 0..input.count(16)? {
            let id = parse_id(&input.array::<16>()?).ok_or(bad("bad PEL ID"))?;
            let Some(entry) = pel.get_mut(&id) else {
                return Err(bad("consumer PEL entry not in the group PEL"));
            };
            if entry.2.is_some() || !own.insert(id) {
                return Err(bad("PEL entry owned twice"));
            }
            entry.2 = Some(name.clone());
        }
        let c = Consumer {
            name: name.clone(),
            seen_time,
            active_time,
            pel: own,
        };
        if g.consumers.insert(name.to_vec().into(), c).is_some() {
            return Err(bad("duplicate consumer"));
        }
    }
    for (id, (delivery_time, delivery_count, owner)) in pel {
        let consumer = owner.ok_or(bad("group PEL entry without a consumer"))?;
        g.pel.insert(
            id,
            Pending {
                delivery_time,
                delivery_count,
                consumer,
            },
        );
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use granary_keyspace::types::stream::NodeLimits;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const LIM: NodeLimits = NodeLimits {
        max_entries: 10,
        max_bytes: 4096,
    };

    fn id(ms: u64, seq: u64) -> StreamId {
        StreamId::new(ms, seq)
    }

    /// A stream with several nodes, deleted entries, both entry shapes,
    /// and a group with pending entries spread over consumers.
    fn sample() -> Stream {
        let mut s = Stream::new();
        for i in 1..=45u64 {
            let v = i.to_string();
            if i % 4 == 0 {
                s.append(id(i, 0), &[b"other", v.as_bytes()], LIM);
            } else {
                s.append(id(i, 0), &[b"a", v.as_bytes(), b"b", b"text"], LIM);
            }
        }
        for i in [3u64, 12, 13, 40] {
            assert!(s.delete(id(i, 0)));
        }
        s.max_deleted_id = id(40, 0);
        s.trim(granary_keyspace::types::stream::Trim::MaxLen(35), false, 0);
        let mut g = Group::new(id(30, 0), 25);
        for (i, c) in ["alice", "bob", "carol"].iter().enumerate() {
            g.create_consumer(c.as_bytes(), 1000 + i as u64);
        }
        for i in 20..30u64 {
            let c = ["alice", "bob"][(i % 2) as usize];
            g.assign(id(i, 0), c.as_bytes(), 5000 + i, i % 3 + 1);
        }
        s.groups.insert(b"g1"[..].into(), g);
        s.groups
            .insert(b"empty"[..].into(), Group::new(StreamId::MIN, -1));
        s
    }

    /// Everything RDB keeps of a stream, as text.
    fn show(s: &Stream) -> String {
        let mut out = format!(
            "len {} last {} first {} maxdel {} added {}\n",
            s.len(),
            s.last_id,
            s.first_id,
            s.max_deleted_id,
            s.entries_added
        );
        for n in s.nodes() {
            out += &format!(
                "node {} {:?} {} {}\n",
                n.master, n.master_fields, n.live, n.deleted
            );
            for e in &n.entries {
                out += &format!("  {} {} {:?}\n", e.id, e.deleted, e.fields);
            }
        }
        for (name, g) in &s.groups {
            out += &format!("group {name:?} {} {}\n", g.last_id, g.entries_read);
            for (id, p) in &g.pel {
                out += &format!(
                    "  pel {id} {} {} {:?}\n",
                    p.delivery_time, p.delivery_count, p.consumer
                );
            }
            for (cname, c) in &g.consumers {
                out += &format!("  consumer {cname:?} {} {:?}\n", c.seen_time, c.pel);
            }
        }
        out
    }

    fn encode(s: &Stream) -> Vec<u8> {
        let mut out = Vec::new();
        write(true, &mut out, s);
        out
    }

    fn decode(b: &[u8]) -> Result<Stream> {
        let mut input = Input::new(b);
        let t = input.u8()?;
        match read(t, &mut input)? {
            Value::Stream(s) => Ok(*s),
            _ => unreachable!(),
        }
    }

    #[test]
    fn streams_round_trip_with_nodes_deletions_and_groups() {
        let s = sample();
        assert!(s.node_count() >= 4);
        let b = encode(&s);
        assert_eq!(b[0], types::STREAM_LISTPACKS_2);
        let back = decode(&b).unwrap();
        assert_eq!(show(&back), show(&s));
        // Appending goes on in the loaded tail node as in the original.
        let (mut a, mut c) = (s.clone(), back);
        a.append(id(100, 0), &[b"a", b"1"], LIM);
        c.append(id(100, 0), &[b"a", b"1"], LIM);
        assert_eq!(show(&a), show(&c));
        let empty = Stream::new();
        assert_eq!(show(&decode(&encode(&empty)).unwrap()), show(&empty));
    }

    #[test]
    fn reads_active_time_of_type_21_and_seen_time_for_19() {
        let mut s = Stream::new();
        s.append(id(1, 0), &[b"f", b"v"], LIM);
        let mut g = Group::new(id(1, 0), 1);
        g.create_consumer(b"c", 777);
        s.groups.insert(b"g"[..].into(), g);
        let v2 = encode(&s);
        let c = decode(&v2).unwrap().groups[&b"g"[..]].consumers[&b"c"[..]].clone();
        assert_eq!((c.seen_time, c.active_time), (777, 777));
        // The consumer's empty PEL is the last byte; active time goes before.
        let mut v3 = v2[..v2.len() - 1].to_vec();
        v3[0] = types::STREAM_LISTPACKS_3;
        v3.extend_from_slice(&888i64.to_le_bytes());
        v3.push(0);
        let c = decode(&v3).unwrap().groups[&b"g"[..]].consumers[&b"c"[..]].clone();
        assert_eq!((c.seen_time, c.active_time), (777, 888));
    }

    #[test]
    fn reads_redis_5_streams_without_counters() {
        let mut s = Stream::new();
        for i in 1..=5 {
            s.append(id(i, 0), &[b"f", b"v"], LIM);
        }
        s.delete(id(1, 0));
        s.refresh_first_id();
        s.groups.insert(b"g"[..].into(), Group::new(id(3, 0), 3));
        let v2 = encode(&s);
        // Type 15 lacks first ID, max deleted ID and entries added (five
        // one-byte lengths before the group section), and each group's
        // entries read (a one-byte length after its last ID). The group
        // section: count, name, last ID, entries read, empty PEL, no
        // consumers.
        let groups_at = v2.len() - 8;
        let mut v1 = v2[..groups_at - 5].to_vec();
        v1[0] = types::STREAM_LISTPACKS;
        v1.extend_from_slice(&v2[groups_at..v2.len() - 3]);
        v1.extend_from_slice(&v2[v2.len() - 2..]);
        let back = decode(&v1).unwrap();
        assert_eq!(back.entries_added, 4);
        assert_eq!(back.first_id, id(2, 0));
        assert_eq!(back.groups[&b"g"[..]].entries_read, -1);
        assert_eq!(back.groups[&b"g"[..]].last_id, id(3, 0));
    }

    #[test]
    fn inconsistent_streams_are_refused() {
        let s = sample();
        // A consumer owning an ID the group PEL lacks.
        let mut t = s.clone();
        let g = t.groups.get_mut(&b"g1"[..]).unwrap();
        g.pel.remove(&id(20, 0));
        assert!(decode(&encode(&t)).is_err());
        // A group PEL entry nobody owns.
        let mut t = s.clone();
        let g = t.groups.get_mut(&b"g1"[..]).unwrap();
        g.consumers
            .get_mut(&b"bob"[..])
            .unwrap()
            .pel
            .remove(&id(21, 0));
        assert!(decode(&encode(&t)).is_err());
        // A stored length that is not the number of live entries.
        let mut b = vec![types::STREAM_LISTPACKS_2, 0];
        put_len(&mut b, 5);
        b.extend_from_slice(&[0; 8]);
        assert!(decode(&b).is_err());
    }

    #[test]
    fn damaged_streams_never_panic() {
        let sample = sample();
        let mut rng = StdRng::seed_from_u64(7);
        for lz in [true, false] {
            let mut good = Vec::new();
            write(lz, &mut good, &sample);
            for _ in 0..3000 {
                let mut b = good.clone();
                for _ in 0..rng.gen_range(1..4) {
                    let i = rng.gen_range(1..b.len());
                    b[i] = rng.gen();
                }
                // What loads is a consistent stream: usable, and it saves
                // and loads again as it is.
                if let Ok(s) = decode(&b) {
                    s.collect(StreamId::MIN, StreamId::MAX, true, 0);
                    assert_eq!(show(&decode(&encode(&s)).unwrap()), show(&s));
                }
                let cut = rng.gen_range(0..good.len());
                assert!(decode(&good[..cut]).is_err());
            }
        }
    }
}
