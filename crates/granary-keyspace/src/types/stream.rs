//! Streams (the data structure of Redis's t_stream.c).
//!
//! Entries live in blocks keyed by their first ("master") ID in a BTreeMap,
//! as Redis keeps listpack nodes in a radix tree. A block packs its entries
//! into one byte buffer: the master field names once, then per entry a flag
//! byte, the ID as varint deltas from the master ID, and the values only
//! when the entry has exactly the master fields (else its own field
//! names). Deleted entries stay in their block, flagged, until the whole
//! block is empty, as in Redis.
//!
//! A block is full by Redis's rules (stream-node-max-entries counting
//! deleted entries too, and stream-node-max-bytes against the size the
//! node's listpack would have), so `MAXLEN ~` and `MINID ~`, which only
//! drop whole blocks, leave the same entries as Redis.
//!
//! Consumer groups keep their pending entries list (PEL) by ID, and each
//! consumer the set of IDs it owns.

use crate::compact::canonical_i64;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

/// A stream entry ID: milliseconds and sequence number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    pub const fn new(ms: u64, seq: u64) -> Self {
        StreamId { ms, seq }
    }

    pub fn is_zero(self) -> bool {
        self == StreamId::MIN
    }

    /// The next ID, or None past the largest (streamIncrID).
    pub fn next(self) -> Option<StreamId> {
        if self.seq < u64::MAX {
            Some(StreamId::new(self.ms, self.seq + 1))
        } else if self.ms < u64::MAX {
            Some(StreamId::new(self.ms + 1, 0))
        } else {
            None
        }
    }

    /// The previous ID, or None before the smallest (streamDecrID).
    pub fn prev(self) -> Option<StreamId> {
        if self.seq > 0 {
            Some(StreamId::new(self.ms, self.seq - 1))
        } else if self.ms > 0 {
            Some(StreamId::new(self.ms - 1, u64::MAX))
        } else {
            None
        }
    }

    /// The 16-byte big-endian form Redis uses as the radix tree key.
    fn key_bytes(self) -> [u8; 16] {
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&self.ms.to_be_bytes());
        k[8..].copy_from_slice(&self.seq.to_be_bytes());
        k
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

// ---------------------------------------------------------------- sizes

/// Bytes of a listpack element's back-length field (lpEncodeBacklen).
fn lp_backlen(l: usize) -> usize {
    match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}

/// Bytes an integer takes in a listpack.
fn lp_int_size(v: i64) -> usize {
    let enc = if (0..=127).contains(&v) {
        1
    } else if (-4096..=4095).contains(&v) {
        2
    } else if i16::try_from(v).is_ok() {
        3
    } else if (-8_388_608..=8_388_607).contains(&v) {
        4
    } else if i32::try_from(v).is_ok() {
        5
    } else {
        9
    };
    enc + lp_backlen(enc)
}

/// Bytes a string takes in a listpack (integers are stored as integers).
fn lp_str_size(s: &[u8]) -> usize {
    if let Some(v) = canonical_i64(s) {
        return lp_int_size(v);
    }
    let enc = s.len()
        + match s.len() {
            0..=63 => 1,
            64..=4095 => 2,
            _ => 5,
        };
    enc + lp_backlen(enc)
}

// ---------------------------------------------------------------- varints

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint written by `put_varint` at `*at` (blocks only hold what
/// `put_varint` wrote, so the input is well formed).
fn get_varint(data: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    while let Some(&b) = data.get(*at) {
        *at += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    v
}

fn put_bytes(out: &mut Vec<u8>, s: &[u8]) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s);
}

fn get_bytes<'a>(data: &'a [u8], at: &mut usize) -> &'a [u8] {
    let n = get_varint(data, at) as usize;
    let start = (*at).min(data.len());
    let end = (start + n).min(data.len());
    *at = end;
    &data[start..end]
}

// ---------------------------------------------------------------- blocks

const FLAG_DELETED: u8 = 1;
const FLAG_SAMEFIELDS: u8 = 2;

/// One node of entries (a listpack node in Redis).
#[derive(Clone)]
struct Block {
    /// Master field count and names, then the entries.
    data: Vec<u8>,
    /// Where the entries start in `data`.
    entries_at: usize,
    master_fields: usize,
    live: u64,
    deleted: u64,
    /// The size Redis's listpack would have, less the header, end byte and
    /// the live/deleted counters (which change size as they grow).
    lp_rest: usize,
    /// The last ID stored, deleted or not.
    last: StreamId,
}

/// Where one entry sits in a block.
#[derive(Clone, Copy)]
struct Pos {
    id: StreamId,
    flags: u8,
    /// Offset of the flag byte.
    at: usize,
    /// Offset of the field count or values.
    body: usize,
}

impl Block {
    fn new(fields: &[&[u8]]) -> Block {
        let n = fields.len() / 2;
        let mut data = Vec::new();
        put_varint(&mut data, n as u64);
        let mut lp_rest = lp_int_size(n as i64) + lp_int_size(0);
        for f in fields.iter().step_by(2) {
            put_bytes(&mut data, f);
            lp_rest += lp_str_size(f);
        }
        Block {
            entries_at: data.len(),
            data,
            master_fields: n,
            live: 0,
            deleted: 0,
            lp_rest,
            last: StreamId::MIN,
        }
    }

    /// What lpBytes would answer for this node.
    fn lp_bytes(&self) -> usize {
        7 + lp_int_size(self.live as i64) + lp_int_size(self.deleted as i64) + self.lp_rest
    }

    fn master_names(&self) -> impl Iterator<Item = &[u8]> {
        let mut at = 0;
        let n = get_varint(&self.data, &mut at);
        (0..n).map(move |_| get_bytes(&self.data, &mut at))
    }

    fn same_fields(&self, fields: &[&[u8]]) -> bool {
        fields.len() / 2 == self.master_fields
            && self
                .master_names()
                .zip(fields.iter().step_by(2))
                .all(|(a, b)| a == *b)
    }

    fn append(&mut self, master: StreamId, id: StreamId, fields: &[&[u8]]) {
        let same = self.same_fields(fields);
        let ms = id.ms.wrapping_sub(master.ms);
        let seq = id.seq.wrapping_sub(master.seq);
        let flags = if same { FLAG_SAMEFIELDS } else { 0 };
        self.data.push(flags);
        put_varint(&mut self.data, ms);
        put_varint(&mut self.data, seq);
        let n = fields.len() / 2;
        let mut lp = lp_int_size(flags as i64) + lp_int_size(ms as i64) + lp_int_size(seq as i64);
        let mut lp_count = n + 3;
        if same {
            for v in fields.iter().skip(1).step_by(2) {
                put_bytes(&mut self.data, v);
                lp += lp_str_size(v);
            }
        } else {
            put_varint(&mut self.data, n as u64);
            lp += lp_int_size(n as i64);
            for f in fields {
                put_bytes(&mut self.data, f);
                lp += lp_str_size(f);
            }
            lp_count += n + 1;
        }
        lp += lp_int_size(lp_count as i64);
        self.lp_rest += lp;
        self.live += 1;
        self.last = id;
    }

    /// Every entry, deleted ones included, in ID order.
    fn positions(&self, master: StreamId) -> Vec<Pos> {
        let mut out = Vec::with_capacity((self.live + self.deleted) as usize);
        let mut at = self.entries_at;
        let data = &self.data;
        while at < data.len() {
            let start = at;
            let flags = data[at];
            at += 1;
            let ms = get_varint(data, &mut at);
            let seq = get_varint(data, &mut at);
            let id = StreamId::new(master.ms.wrapping_add(ms), master.seq.wrapping_add(seq));
            let body = at;
            let values = if flags & FLAG_SAMEFIELDS != 0 {
                self.master_fields
            } else {
                2 * get_varint(data, &mut at) as usize
            };
            for _ in 0..values {
                get_bytes(data, &mut at);
            }
            out.push(Pos {
                id,
                flags,
                at: start,
                body,
            });
        }
        out
    }

    /// The field/value pairs of the entry at `p`, into `out`.
    fn fields<'a>(&'a self, p: &Pos, out: &mut Vec<(&'a [u8], &'a [u8])>) {
        out.clear();
        let data = &self.data;
        let mut at = p.body;
        if p.flags & FLAG_SAMEFIELDS != 0 {
            for name in self.master_names() {
                out.push((name, get_bytes(data, &mut at)));
            }
        } else {
            let n = get_varint(data, &mut at);
            for _ in 0..n {
                let f = get_bytes(data, &mut at);
                out.push((f, get_bytes(data, &mut at)));
            }
        }
    }

    /// Appends an entry as loaded from an RDB node, deleted or not.
    fn append_loaded(&mut self, master: StreamId, id: StreamId, fields: &[&[u8]], deleted: bool) {
        let at = self.data.len();
        self.append(master, id, fields);
        if deleted {
            self.data[at] |= FLAG_DELETED;
            self.live -= 1;
            self.deleted += 1;
        }
    }

    fn mark_deleted(&mut self, p: &Pos) {
        self.data[p.at] |= FLAG_DELETED;
        self.live -= 1;
        self.deleted += 1;
    }
}

/// One entry of a node as RDB stores it, deleted ones included.
pub struct NodeEntry<'a> {
    pub id: StreamId,
    pub deleted: bool,
    /// Whether the entry has exactly the master fields (values only).
    pub same_fields: bool,
    pub fields: Fields<'a>,
}

/// One node (a listpack in Redis's radix tree), for persistence.
pub struct Node<'a> {
    /// The node's key: the ID its entries' IDs are relative to.
    pub master: StreamId,
    pub master_fields: Vec<&'a [u8]>,
    pub live: u64,
    pub deleted: u64,
    pub entries: Vec<NodeEntry<'a>>,
}

// ---------------------------------------------------------------- groups

/// An entry delivered to a consumer and not yet acknowledged.
#[derive(Clone, Debug)]
pub struct Pending {
    /// Unix ms of the last delivery.
    pub delivery_time: u64,
    pub delivery_count: u64,
    pub consumer: Arc<[u8]>,
}

#[derive(Clone, Debug)]
pub struct Consumer {
    pub name: Arc<[u8]>,
    /// Last time it tried to read or claim (ms).
    pub seen_time: u64,
    /// Last time it actually read or claimed something (ms), -1 never.
    pub active_time: i64,
    pub pel: BTreeSet<StreamId>,
}

/// A consumer group.
#[derive(Clone, Debug)]
pub struct Group {
    pub last_id: StreamId,
    /// Entries the group has read (its logical position), or -1 when
    /// unknown (SCG_INVALID_ENTRIES_READ).
    pub entries_read: i64,
    pub pel: BTreeMap<StreamId, Pending>,
    pub consumers: BTreeMap<Box<[u8]>, Consumer>,
}

impl Group {
    pub fn new(last_id: StreamId, entries_read: i64) -> Group {
        Group {
            last_id,
            entries_read,
            pel: BTreeMap::new(),
            consumers: BTreeMap::new(),
        }
    }

    /// Creates the consumer unless it exists; true if created.
    pub fn create_consumer(&mut self, name: &[u8], now: u64) -> bool {
        if self.consumers.contains_key(name) {
            return false;
        }
        let c = Consumer {
            name: Arc::from(name),
            seen_time: now,
            active_time: -1,
            pel: BTreeSet::new(),
        };
        self.consumers.insert(name.into(), c);
        true
    }

    /// Deletes a consumer and its pending entries; the number it had.
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let c = self.consumers.remove(name)?;
        for id in &c.pel {
            self.pel.remove(id);
        }
        Some(c.pel.len())
    }

    /// Acknowledges `id`; true if it was pending.
    pub fn ack(&mut self, id: StreamId) -> bool {
        let Some(p) = self.pel.remove(&id) else {
            return false;
        };
        if let Some(c) = self.consumers.get_mut(&*p.consumer) {
            c.pel.remove(&id);
        }
        true
    }

    /// Makes `id` pending for `consumer` (which must exist), delivered now
    /// with `count` deliveries, moving it from its previous owner.
    pub fn assign(&mut self, id: StreamId, consumer: &[u8], time: u64, count: u64) {
        if let Some(old) = self.pel.get(&id) {
            if *old.consumer != *consumer {
                let old = old.consumer.clone();
                if let Some(c) = self.consumers.get_mut(&*old) {
                    c.pel.remove(&id);
                }
            }
        }
        let Some(c) = self.consumers.get_mut(consumer) else {
            return;
        };
        c.pel.insert(id);
        let p = Pending {
            delivery_time: time,
            delivery_count: count,
            consumer: c.name.clone(),
        };
        self.pel.insert(id, p);
    }
}

// ---------------------------------------------------------------- streams

/// An entry's field/value pairs, borrowed from its block.
pub type Fields<'a> = Vec<(&'a [u8], &'a [u8])>;

/// How XADD and XTRIM trim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trim {
    MaxLen(u64),
    MinId(StreamId),
}

/// A stream.
#[derive(Clone, Default)]
pub struct Stream {
    blocks: BTreeMap<StreamId, Block>,
    len: u64,
    pub last_id: StreamId,
    /// The first live entry's ID (0-0 when empty).
    pub first_id: StreamId,
    pub max_deleted_id: StreamId,
    pub entries_added: u64,
    pub groups: BTreeMap<Box<[u8]>, Group>,
}

/// Node limits (stream-node-max-entries, stream-node-max-bytes).
#[derive(Clone, Copy, Debug)]
pub struct NodeLimits {
    pub max_entries: u64,
    pub max_bytes: u64,
}

/// STREAM_LISTPACK_MAX_SIZE: the node size cap when the config is 0 or larger.
const LISTPACK_MAX_SIZE: u64 = 1 << 30;

impl Stream {
    pub fn new() -> Stream {
        Stream::default()
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Rough number of allocations (lazy free decisions).
    pub fn free_effort(&self) -> usize {
        self.blocks.len() + self.groups.values().map(|g| g.pel.len() + 1).sum::<usize>() + 1
    }

    /// Number of nodes (XINFO radix-tree-keys).
    pub fn node_count(&self) -> usize {
        self.blocks.len()
    }

    /// The number of nodes Redis's radix tree would have for these keys
    /// (XINFO radix-tree-nodes): one per branching point, per compressed
    /// run and per key end, plus the root.
    pub fn radix_nodes(&self) -> usize {
        let keys: Vec<[u8; 16]> = self.blocks.keys().map(|k| k.key_bytes()).collect();
        if keys.is_empty() {
            return 1;
        }
        let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        rax_nodes(&refs)
    }

    /// Every node in ID order, deleted entries included (RDB saving).
    pub fn nodes(&self) -> impl Iterator<Item = Node<'_>> {
        self.blocks.iter().map(|(master, b)| {
            let entries = b
                .positions(*master)
                .iter()
                .map(|p| {
                    let mut fields = Vec::new();
                    b.fields(p, &mut fields);
                    NodeEntry {
                        id: p.id,
                        deleted: p.flags & FLAG_DELETED != 0,
                        same_fields: p.flags & FLAG_SAMEFIELDS != 0,
                        fields,
                    }
                })
                .collect();
            Node {
                master: *master,
                master_fields: b.master_names().collect(),
                live: b.live,
                deleted: b.deleted,
                entries,
            }
        })
    }

    /// Adds a node as loaded from RDB, after every node so far: master
    /// field names, then each entry's ID, deletion flag and flattened
    /// field/value pairs. The caller checks the IDs ascend (past the
    /// previous nodes' too) and sets the stream's IDs and counters; the
    /// length grows by the live entries.
    pub fn push_node<'a>(
        &mut self,
        master: StreamId,
        master_fields: &[&[u8]],
        entries: impl IntoIterator<Item = (StreamId, bool, Vec<&'a [u8]>)>,
    ) {
        // Block::new takes field/value pairs; only the names matter.
        let pairs: Vec<&[u8]> = master_fields.iter().flat_map(|f| [*f, &[][..]]).collect();
        let mut b = Block::new(&pairs);
        for (id, deleted, fields) in entries {
            b.append_loaded(master, id, &fields, deleted);
        }
        self.len += b.live;
        self.blocks.insert(master, b);
    }

    /// Appends an entry with ID `id` (greater than `last_id`) and the
    /// field/value pairs `fields` (flattened).
    pub fn append(&mut self, id: StreamId, fields: &[&[u8]], lim: NodeLimits) {
        let max_bytes = match lim.max_bytes {
            0 => LISTPACK_MAX_SIZE,
            b => b.min(LISTPACK_MAX_SIZE),
        } as usize;
        let total: usize = fields.iter().map(|f| f.len()).sum();
        let tail_full = match self.blocks.last_key_value() {
            None => true,
            Some((_, b)) => {
                b.lp_bytes() + total >= max_bytes
                    || (lim.max_entries != 0 && b.live + b.deleted >= lim.max_entries)
            }
        };
        if tail_full {
            self.blocks.insert(id, Block::new(fields));
        }
        if let Some(mut e) = self.blocks.last_entry() {
            let master = *e.key();
            e.get_mut().append(master, id, fields);
        }
        if self.len == 0 {
            self.first_id = id;
        }
        self.len += 1;
        self.entries_added += 1;
        self.last_id = id;
    }

    /// Calls `f` with each live entry between `start` and `end` inclusive,
    /// in order (reverse order if `rev`), until it returns false.
    pub fn range<'a>(
        &'a self,
        start: StreamId,
        end: StreamId,
        rev: bool,
        mut f: impl FnMut(StreamId, &[(&'a [u8], &'a [u8])]) -> bool,
    ) {
        if start > end {
            return;
        }
        let mut fields = Vec::new();
        if rev {
            for (master, b) in self.blocks.range(..=end).rev() {
                if b.last < start {
                    return;
                }
                for p in b.positions(*master).iter().rev() {
                    if p.id > end || p.flags & FLAG_DELETED != 0 {
                        continue;
                    }
                    if p.id < start {
                        return;
                    }
                    b.fields(p, &mut fields);
                    if !f(p.id, &fields) {
                        return;
                    }
                }
            }
        } else {
            let from = self
                .blocks
                .range(..=start)
                .next_back()
                .map_or(start, |(k, _)| *k);
            for (master, b) in self.blocks.range(from..) {
                if *master > end {
                    return;
                }
                if b.last < start {
                    continue;
                }
                for p in &b.positions(*master) {
                    if p.id < start || p.flags & FLAG_DELETED != 0 {
                        continue;
                    }
                    if p.id > end {
                        return;
                    }
                    b.fields(p, &mut fields);
                    if !f(p.id, &fields) {
                        return;
                    }
                }
            }
        }
    }

    /// The field/value pairs of entry `id`, if it exists.
    pub fn get(&self, id: StreamId) -> Option<Fields<'_>> {
        let mut found = None;
        self.range(id, id, false, |_, f| {
            found = Some(f.to_vec());
            false
        });
        found
    }

    /// Up to `count` (0: all) live entries from `start` to `end`.
    pub fn collect(
        &self,
        start: StreamId,
        end: StreamId,
        rev: bool,
        count: usize,
    ) -> Vec<(StreamId, Fields<'_>)> {
        let mut out = Vec::new();
        self.range(start, end, rev, |id, f| {
            out.push((id, f.to_vec()));
            count == 0 || out.len() < count
        });
        out
    }

    pub fn contains(&self, id: StreamId) -> bool {
        let mut found = false;
        self.range(id, id, false, |_, _| {
            found = true;
            false
        });
        found
    }

    /// The first (or last) live entry's ID.
    pub fn edge_id(&self, first: bool) -> Option<StreamId> {
        let mut out = None;
        self.range(StreamId::MIN, StreamId::MAX, !first, |id, _| {
            out = Some(id);
            false
        });
        out
    }

    /// Deletes entry `id`; false if there is none (streamDeleteItem).
    /// Does not touch first_id / max_deleted_id (XDEL does, once).
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some(mut e) = self.blocks.range_mut(..=id).next_back() else {
            return false;
        };
        let master = *e.0;
        let b = &mut e.1;
        let Some(p) = b
            .positions(master)
            .into_iter()
            .find(|p| p.id == id && p.flags & FLAG_DELETED == 0)
        else {
            return false;
        };
        b.mark_deleted(&p);
        if b.live == 0 {
            self.blocks.remove(&master);
        }
        self.len -= 1;
        true
    }

    /// Updates first_id after deletions (0-0 when empty).
    pub fn refresh_first_id(&mut self) {
        self.first_id = if self.len == 0 {
            StreamId::MIN
        } else {
            self.edge_id(true).unwrap_or_default()
        };
    }

    /// Redis's streamTrim: drops whole nodes from the head while allowed;
    /// unless `approx`, then marks entries deleted inside the next node.
    /// `limit` (0 = none) caps the entries removed by whole nodes. Returns
    /// the number of entries removed.
    pub fn trim(&mut self, how: Trim, approx: bool, limit: u64) -> u64 {
        let mut removed = 0u64;
        while let Some(mut e) = self.blocks.first_entry() {
            if let Trim::MaxLen(max) = how {
                if self.len <= max {
                    break;
                }
            }
            let master = *e.key();
            let b = e.get_mut();
            if limit != 0 && removed + b.live > limit {
                break;
            }
            let whole = match how {
                Trim::MaxLen(max) => self.len - b.live >= max,
                Trim::MinId(min) => b.last < min,
            };
            if whole {
                self.len -= b.live;
                removed += b.live;
                e.remove();
                continue;
            }
            if approx {
                break;
            }
            for p in b.positions(master) {
                let stop = match how {
                    Trim::MaxLen(max) => self.len <= max,
                    Trim::MinId(min) => p.id >= min,
                };
                if stop {
                    break;
                }
                if p.flags & FLAG_DELETED == 0 {
                    b.mark_deleted(&p);
                    self.len -= 1;
                    removed += 1;
                }
            }
            // Like Redis, a node whose entries are now all deleted stays
            // (it can only be the node holding the last ID).
            break;
        }
        self.refresh_first_id();
        removed
    }

    /// Redis's streamEstimateDistanceFromFirstEverEntry: the logical
    /// position of `id`, or -1 when it cannot be known.
    pub fn estimate_position(&self, id: StreamId) -> i64 {
        if self.entries_added == 0 {
            return 0;
        }
        if self.len == 0 && id <= self.last_id {
            return self.entries_added as i64;
        }
        // Fragmentation between `id` and the last ID.
        if !id.is_zero() && id < self.max_deleted_id {
            return -1;
        }
        match id.cmp(&self.last_id) {
            std::cmp::Ordering::Equal => return self.entries_added as i64,
            std::cmp::Ordering::Greater => return -1,
            std::cmp::Ordering::Less => {}
        }
        if self.max_deleted_id.is_zero() || self.max_deleted_id < self.first_id {
            match id.cmp(&self.first_id) {
                std::cmp::Ordering::Less => return (self.entries_added - self.len) as i64,
                std::cmp::Ordering::Equal => return (self.entries_added - self.len + 1) as i64,
                std::cmp::Ordering::Greater => {}
            }
        }
        -1
    }

    /// Redis's streamRangeHasTombstones from `start` to the end.
    pub fn has_tombstones_from(&self, start: StreamId) -> bool {
        if self.len == 0 || self.max_deleted_id.is_zero() {
            return false;
        }
        start <= self.max_deleted_id
    }

    /// Whether a group's read counter can simply count an entry it is
    /// delivered (no tombstone between its last ID and the end).
    pub fn counter_stays_exact(&self, g: &Group) -> bool {
        g.entries_read != -1 && g.last_id >= self.first_id && !self.has_tombstones_from(g.last_id)
    }

    /// The lag of a group (XINFO GROUPS), or None when unknown.
    pub fn group_lag(&self, g: &Group) -> Option<i64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if g.entries_read != -1 && !self.has_tombstones_from(g.last_id) {
            return Some(self.entries_added as i64 - g.entries_read);
        }
        let read = self.estimate_position(g.last_id);
        (read != -1).then(|| self.entries_added as i64 - read)
    }
}

/// Nodes of a radix tree holding `keys` (sorted, distinct, none a prefix
/// of another), counted as Redis's rax does.
fn rax_nodes(keys: &[&[u8]]) -> usize {
    if keys.len() == 1 {
        // A compressed node with the rest, then the key's end node.
        return if keys[0].is_empty() { 1 } else { 2 };
    }
    let first = keys[0];
    let last = keys[keys.len() - 1];
    let common = first.iter().zip(last).take_while(|(a, b)| a == b).count();
    if common > 0 {
        let rest: Vec<&[u8]> = keys.iter().map(|k| &k[common..]).collect();
        return 1 + rax_nodes(&rest);
    }
    // A branching node, one child per distinct first byte.
    let mut n = 1;
    let mut i = 0;
    while i < keys.len() {
        let c = keys[i][0];
        let j = i + keys[i..].iter().take_while(|k| k[0] == c).count();
        let rest: Vec<&[u8]> = keys[i..j].iter().map(|k| &k[1..]).collect();
        n += rax_nodes(&rest);
        i = j;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIM: NodeLimits = NodeLimits {
        max_entries: 100,
        max_bytes: 4096,
    };

    fn id(ms: u64, seq: u64) -> StreamId {
        StreamId::new(ms, seq)
    }

    fn ids(s: &Stream, rev: bool) -> Vec<StreamId> {
        let mut v = vec![];
        s.range(StreamId::MIN, StreamId::MAX, rev, |i, _| {
            v.push(i);
            true
        });
        v
    }

    #[test]
    fn appends_and_reads_back() {
        let mut s = Stream::new();
        for i in 1..=250u64 {
            let v = i.to_string();
            let f: [&[u8]; 4] = [b"a", v.as_bytes(), b"b", b"x"];
            if i % 7 == 0 {
                s.append(id(i, 0), &f[..2], LIM);
            } else {
                s.append(id(i, 0), &f, LIM);
            }
        }
        assert_eq!(s.len(), 250);
        assert_eq!(s.node_count(), 3);
        let got = s.get(id(14, 0)).unwrap();
        assert_eq!(got, vec![(&b"a"[..], &b"14"[..])]);
        let got = s.get(id(15, 0)).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(ids(&s, false).len(), 250);
        let rev = ids(&s, true);
        assert_eq!(rev[0], id(250, 0));
        assert_eq!(rev[249], id(1, 0));
    }

    #[test]
    fn delete_and_trim() {
        let mut s = Stream::new();
        for i in 1..=300u64 {
            s.append(id(i, 0), &[b"f", b"v"], LIM);
        }
        assert!(s.delete(id(1, 0)));
        assert!(!s.delete(id(1, 0)));
        s.refresh_first_id();
        assert_eq!(s.first_id, id(2, 0));
        assert_eq!(s.trim(Trim::MaxLen(150), true, 0), 99);
        assert_eq!(s.len(), 200);
        assert_eq!(s.trim(Trim::MaxLen(150), false, 0), 50);
        assert_eq!(s.first_id, id(151, 0));
        assert_eq!(s.trim(Trim::MinId(id(290, 0)), false, 0), 139);
        assert_eq!(ids(&s, false)[0], id(290, 0));
    }

    #[test]
    fn nodes_rebuild_the_same_stream() {
        let mut s = Stream::new();
        for i in 1..=250u64 {
            let v = i.to_string();
            let f: [&[u8]; 4] = [b"a", v.as_bytes(), b"b", b"x"];
            s.append(id(i, 0), if i % 3 == 0 { &f[..2] } else { &f }, LIM);
        }
        s.delete(id(5, 0));
        s.delete(id(150, 0));
        let mut t = Stream::new();
        for n in s.nodes() {
            assert_eq!(n.entries.len() as u64, n.live + n.deleted);
            let entries = n.entries.iter().map(|e| {
                let flat = e.fields.iter().flat_map(|(f, v)| [*f, *v]).collect();
                (e.id, e.deleted, flat)
            });
            t.push_node(n.master, &n.master_fields, entries);
        }
        assert_eq!(t.len(), s.len());
        assert_eq!(t.node_count(), s.node_count());
        assert_eq!(ids(&t, false), ids(&s, false));
        assert_eq!(t.get(id(9, 0)), s.get(id(9, 0)));
        let deleted: u64 = t.nodes().map(|n| n.deleted).sum();
        assert_eq!(deleted, 2);
    }

    #[test]
    fn rax_node_counts() {
        let mut s = Stream::new();
        assert_eq!(s.radix_nodes(), 1);
        s.append(id(1, 0), &[b"f", b"v"], LIM);
        assert_eq!(s.radix_nodes(), 2);
    }

    #[test]
    fn listpack_sizes() {
        assert_eq!(lp_str_size(b"123"), 2);
        assert_eq!(lp_str_size(b"abc"), 5);
        assert_eq!(lp_int_size(0), 2);
        assert_eq!(lp_int_size(-1), 3);
        assert_eq!(lp_int_size(1 << 40), 10);
    }
}
