//! ListValue: Redis's list (t_list.c).
//!
//! Storage: like Redis's quicklist, a deque of chunks, each a packed byte
//! buffer of at most `CHUNK` bytes holding consecutive elements (an element
//! larger than that gets a chunk of its own). Each element is one header
//! byte (small integers 0..127 are the header byte itself) followed by its
//! payload: an 11-byte string takes 12 bytes, a small integer 1 or 2.
//! Unlike a listpack there is no back-length, so a chunk can be walked
//! forwards only; popping from the tail uses the entry offsets of the last
//! chunk, computed once and kept up to date (`back`), so it stays O(1)
//! amortised. The end chunks keep free space at both ends of their buffer,
//! so pushing to the head writes in front of the first element instead of
//! moving the chunk.
//!
//! The encoding OBJECT ENCODING reports follows Redis 7.2+'s rule: a list
//! is a listpack until the listpack holding it would exceed
//! `list-max-listpack-size`, then a quicklist; after a removal it turns back
//! into a listpack once it is a single node that fits in half the limit.
//! To decide exactly as Redis does, the byte size of the equivalent
//! listpack is tracked, and in quicklist form the size and count of each
//! node Redis would have (`Node`), following quicklist.c's rules for where
//! an element goes. That bookkeeping is independent of the chunks.

use crate::compact::{canonical_i64, StrValue};
use bytes::Bytes;
use std::collections::VecDeque;

/// Listpack header (total bytes + element count) and end marker.
const LP_OVERHEAD: usize = 7;
/// Node size limits for negative `list-max-listpack-size` values -1..-5.
const SIZE_LIMITS: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
/// Redis's SIZE_SAFETY_LIMIT, applied to count-limited (positive) fills.
const SAFETY_LIMIT: usize = 8192;

/// Redis's SIZE_ESTIMATE_OVERHEAD: what quicklist assumes an insert adds.
const ESTIMATE_OVERHEAD: usize = 8;

/// One quicklist node as Redis would have it: `count` consecutive elements,
/// `bytes` its listpack size (or the element's length for a plain node).
#[derive(Clone, Copy, Debug)]
struct Node {
    count: usize,
    bytes: usize,
    plain: bool,
}

#[derive(Clone)]
pub struct ListValue {
    /// The elements, packed (see the module comment). Never holds an
    /// empty chunk.
    chunks: VecDeque<Chunk>,
    len: usize,
    /// When `back_ok`: the offsets of the last chunk's elements, in order.
    /// (u32: a chunk of more than one element is at most CHUNK bytes.)
    back: VecDeque<u32>,
    back_ok: bool,
    /// Bytes a single listpack holding every element would take.
    lp_bytes: usize,
    quicklist: bool,
    /// The quicklist's nodes, in order (empty for a listpack).
    nodes: VecDeque<Node>,
    /// The fill the quicklist was created with (Redis keeps it).
    ql_fill: i64,
}

impl std::fmt::Debug for ListValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ListValue({} items, {})", self.len(), self.encoding())
    }
}

impl Default for ListValue {
    fn default() -> Self {
        ListValue {
            chunks: VecDeque::new(),
            len: 0,
            back: VecDeque::new(),
            back_ok: false,
            lp_bytes: LP_OVERHEAD,
            quicklist: false,
            nodes: VecDeque::new(),
            ql_fill: -2,
        }
    }
}

/// Bytes one element takes in a listpack: encoding + data + back-length.
pub fn lp_entry_size(b: &[u8]) -> usize {
    lp_size(canonical_i64(b), b.len())
}

/// `lp_entry_size` of an integer (`int`) or of a string of `len` bytes.
fn lp_size(int: Option<i64>, len: usize) -> usize {
    let enc = match int {
        Some(v) if (0..=127).contains(&v) => 1,
        Some(v) if (-4096..=4095).contains(&v) => 2,
        Some(v) if i16::try_from(v).is_ok() => 3,
        Some(v) if (-8_388_608..=8_388_607).contains(&v) => 4,
        Some(v) if i32::try_from(v).is_ok() => 5,
        Some(_) => 9,
        None if len <= 63 => 1 + len,
        None if len <= 4095 => 2 + len,
        None => 5 + len,
    };
    let back = match enc {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2_097_150 => 3,
        2_097_151..=268_435_454 => 4,
        _ => 5,
    };
    enc + back
}

/// (size limit, count limit) of a quicklist node for `fill`, as Redis's
/// quicklistNodeLimit.
fn node_limits(fill: i64) -> (usize, usize) {
    if fill >= 0 {
        (usize::MAX, fill.max(1) as usize)
    } else {
        let level = ((-fill - 1) as usize).min(SIZE_LIMITS.len() - 1);
        (SIZE_LIMITS[level], usize::MAX)
    }
}

/// Redis's quicklistNodeExceedsLimit.
fn exceeds(fill: i64, bytes: usize, count: usize) -> bool {
    let (size, max_count) = node_limits(fill);
    if size != usize::MAX {
        bytes > size
    } else {
        bytes > SAFETY_LIMIT || count > max_count
    }
}

/// Redis's isLargeElement: such an element gets a plain node of its own.
fn is_large(sz: usize, fill: i64) -> bool {
    if fill >= 0 {
        sz > SAFETY_LIMIT
    } else {
        sz > node_limits(fill).0
    }
}

/// Redis's _quicklistNodeAllowInsert for an element of length `sz`.
fn allow_insert(node: Option<&Node>, fill: i64, sz: usize) -> bool {
    node.is_some_and(|n| {
        !n.plain
            && !is_large(sz, fill)
            && !exceeds(fill, n.bytes + sz + ESTIMATE_OVERHEAD, n.count + 1)
    })
}

/// Redis's _quicklistNodeAllowMerge.
fn allow_merge(a: Option<&Node>, b: Option<&Node>, fill: i64) -> bool {
    match (a, b) {
        (Some(a), Some(b)) if !a.plain && !b.plain => {
            !exceeds(fill, a.bytes + b.bytes - LP_OVERHEAD, a.count + b.count)
        }
        _ => false,
    }
}

// ---------------------------------------------------------------- elements

/// Largest chunk buffer; bigger elements get a chunk of their own. 4 KB is
/// an allocator size class, and what Redis's default node size allows.
const CHUNK: usize = 4096;
/// First buffer of a list's first chunk (small lists stay small).
const FIRST_CHUNK: usize = 32;

// Header bytes. 0x00..=0x7F is the integer itself.
const STR6: u8 = 0x80; // 0x80..=0xBF: string of 0..63 bytes
const INT13: u8 = 0xC0; // 0xC0..=0xDF: 13-bit integer, low byte follows
const INT16: u8 = 0xE0;
const INT24: u8 = 0xE1;
const INT32: u8 = 0xE2;
const INT64: u8 = 0xE3;
const STR16: u8 = 0xF0;
const STR32: u8 = 0xF1;
const STR64: u8 = 0xF2;

/// One element of a list, read in place: an integer (stored as one when
/// its text is a canonical i64, as Redis does) or string bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl<'a> Elem<'a> {
    /// The bytes, formatting an integer into `scratch` if needed.
    pub fn bytes<'b>(self, scratch: &'b mut itoa::Buffer) -> &'b [u8]
    where
        'a: 'b,
    {
        match self {
            Elem::Int(i) => scratch.format(i).as_bytes(),
            Elem::Str(s) => s,
        }
    }

    pub fn to_vec(self) -> Vec<u8> {
        self.bytes(&mut itoa::Buffer::new()).to_vec()
    }

    pub fn to_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self.bytes(&mut itoa::Buffer::new()))
    }

    pub fn to_str_value(self) -> StrValue {
        match self {
            Elem::Int(i) => StrValue::Int(i),
            Elem::Str(s) => StrValue::from_bytes(s),
        }
    }

    pub fn as_int(self) -> Option<i64> {
        match self {
            Elem::Int(i) => Some(i),
            Elem::Str(_) => None,
        }
    }

    pub fn len(self) -> usize {
        match self {
            Elem::Int(i) => itoa::Buffer::new().format(i).len(),
            Elem::Str(s) => s.len(),
        }
    }

    pub fn is_empty(self) -> bool {
        matches!(self, Elem::Str(s) if s.is_empty())
    }

    /// Bytes it takes in a listpack (for the encoding bookkeeping).
    fn lp_size(self) -> usize {
        match self {
            Elem::Int(i) => lp_size(Some(i), 0),
            Elem::Str(s) => lp_size(None, s.len()),
        }
    }
}

/// An element ready to be written: header bytes, then `data`.
struct Encoded<'a> {
    hdr: [u8; 9],
    hlen: usize,
    data: &'a [u8],
    int: Option<i64>,
}

impl<'a> Encoded<'a> {
    fn new(v: &'a [u8]) -> Self {
        let mut hdr = [0; 9];
        let int = canonical_i64(v);
        let (hlen, data): (usize, &[u8]) = match int {
            Some(i) => (encode_int(i, &mut hdr), &[]),
            None => (encode_str_len(v.len(), &mut hdr), v),
        };
        Encoded {
            hdr,
            hlen,
            data,
            int,
        }
    }

    fn len(&self) -> usize {
        self.hlen + self.data.len()
    }

    fn lp_size(&self) -> usize {
        lp_size(self.int, self.data.len())
    }

    /// Writes it into `dst`, which is exactly `len()` bytes.
    fn write(&self, dst: &mut [u8]) {
        dst[..self.hlen].copy_from_slice(&self.hdr[..self.hlen]);
        dst[self.hlen..].copy_from_slice(self.data);
    }

    fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.len()];
        self.write(&mut v);
        v
    }
}

fn encode_int(i: i64, hdr: &mut [u8; 9]) -> usize {
    let le = i.to_le_bytes();
    let (tag, n) = match i {
        0..=127 => {
            hdr[0] = i as u8;
            return 1;
        }
        -4096..=4095 => {
            let u = (i as u16) & 0x1FFF;
            hdr[0] = INT13 | (u >> 8) as u8;
            hdr[1] = u as u8;
            return 2;
        }
        _ if i16::try_from(i).is_ok() => (INT16, 2),
        -8_388_608..=8_388_607 => (INT24, 3),
        _ if i32::try_from(i).is_ok() => (INT32, 4),
        _ => (INT64, 8),
    };
    hdr[0] = tag;
    hdr[1..=n].copy_from_slice(&le[..n]);
    1 + n
}

fn encode_str_len(len: usize, hdr: &mut [u8; 9]) -> usize {
    let le = (len as u64).to_le_bytes();
    let (tag, n) = if len <= 63 {
        hdr[0] = STR6 | len as u8;
        return 1;
    } else if len <= 0xFFFF {
        (STR16, 2)
    } else if len <= 0xFFFF_FFFF {
        (STR32, 4)
    } else {
        (STR64, 8)
    };
    hdr[0] = tag;
    hdr[1..=n].copy_from_slice(&le[..n]);
    1 + n
}

/// `N` bytes of `buf` from `at`, little-endian, sign-extended to 8.
fn le_int<const N: usize>(buf: &[u8], at: usize) -> i64 {
    let mut a = [0; 8];
    a[8 - N..].copy_from_slice(&buf[at..at + N]);
    i64::from_le_bytes(a) >> (8 * (8 - N))
}

fn le_len<const N: usize>(buf: &[u8], at: usize) -> usize {
    let mut a = [0; 8];
    a[..N].copy_from_slice(&buf[at..at + N]);
    u64::from_le_bytes(a) as usize
}

/// The element at `p` and where the next one starts.
fn decode(buf: &[u8], p: usize) -> (Elem<'_>, usize) {
    let b = buf[p];
    let string = |hlen: usize, n: usize| (Elem::Str(&buf[p + hlen..p + hlen + n]), p + hlen + n);
    match b {
        0..=0x7F => (Elem::Int(b as i64), p + 1),
        0x80..=0xBF => string(1, (b & 0x3F) as usize),
        0xC0..=0xDF => {
            let u = (((b & 0x1F) as u16) << 8) | buf[p + 1] as u16;
            (Elem::Int(((u << 3) as i16 >> 3) as i64), p + 2)
        }
        INT16 => (Elem::Int(le_int::<2>(buf, p + 1)), p + 3),
        INT24 => (Elem::Int(le_int::<3>(buf, p + 1)), p + 4),
        INT32 => (Elem::Int(le_int::<4>(buf, p + 1)), p + 5),
        INT64 => (Elem::Int(le_int::<8>(buf, p + 1)), p + 9),
        STR16 => string(3, le_len::<2>(buf, p + 1)),
        STR32 => string(5, le_len::<4>(buf, p + 1)),
        _ => string(9, le_len::<8>(buf, p + 1)),
    }
}

/// Where the element at `p` ends.
fn skip(buf: &[u8], p: usize) -> usize {
    decode(buf, p).1
}

// ---------------------------------------------------------------- chunks

/// Consecutive elements packed in `buf[head..tail]`; the bytes around
/// that range are free room for pushes at either end.
#[derive(Clone, Default)]
struct Chunk {
    buf: Vec<u8>,
    head: usize,
    tail: usize,
    count: usize,
}

impl Chunk {
    /// A chunk of `cap` bytes holding `e`, the free room on the side
    /// pushes will come from (`front`).
    fn with(e: &Encoded, cap: usize, front: bool) -> Chunk {
        let n = e.len();
        let cap = cap.max(n);
        let head = if front { cap - n } else { 0 };
        let mut buf = vec![0; cap];
        e.write(&mut buf[head..head + n]);
        Chunk {
            buf,
            head,
            tail: head + n,
            count: 1,
        }
    }

    /// A chunk of exactly the given encoded elements.
    fn packed(parts: &[&[u8]]) -> Chunk {
        let buf = parts.concat();
        Chunk {
            tail: buf.len(),
            buf,
            head: 0,
            count: parts.len(),
        }
    }

    fn live(&self) -> usize {
        self.tail - self.head
    }

    /// The encoded elements, as slices of the buffer.
    fn parts(&self) -> Vec<&[u8]> {
        let mut out = Vec::with_capacity(self.count);
        let mut p = self.head;
        while p < self.tail {
            let next = skip(&self.buf, p);
            out.push(&self.buf[p..next]);
            p = next;
        }
        out
    }

    fn offsets(&self, out: &mut Vec<usize>) {
        let mut p = self.head;
        while p < self.tail {
            out.push(p);
            p = skip(&self.buf, p);
        }
    }

    /// Offset of the `k`th element.
    fn offset_of(&self, k: usize) -> usize {
        (0..k).fold(self.head, |p, _| skip(&self.buf, p))
    }

    /// Makes `n` bytes of room at the front or back. None when the chunk
    /// should not take it (a new chunk is due); Some(true) if the elements
    /// moved. Grows by doubling up to CHUNK; at full size moves the
    /// elements over only when that frees a quarter of the chunk, so
    /// alternating pushes and pops do not move it back and forth.
    fn make_room(&mut self, n: usize, front: bool) -> Option<bool> {
        let room = if front {
            self.head
        } else {
            self.buf.len() - self.tail
        };
        if room >= n {
            return Some(false);
        }
        let need = self.live() + n;
        if need > CHUNK {
            return None;
        }
        let cap = if self.buf.len() < CHUNK {
            (self.buf.len() * 2).clamp(need, CHUNK)
        } else if need <= CHUNK * 3 / 4 {
            self.buf.len()
        } else {
            return None;
        };
        self.relayout(cap, n, front);
        Some(true)
    }

    /// Moves the elements into a buffer of `cap` bytes with room for `n`
    /// on the `front` (or back) side, which also gets three quarters of
    /// the rest of the free room.
    fn relayout(&mut self, cap: usize, n: usize, front: bool) {
        let live = self.live();
        let free = cap - live;
        let other = (free - n) / 4;
        let head = if front { free - other } else { other };
        if cap == self.buf.len() {
            self.buf.copy_within(self.head..self.tail, head);
        } else {
            let mut buf = vec![0; cap];
            buf[head..head + live].copy_from_slice(&self.buf[self.head..self.tail]);
            self.buf = buf;
        }
        self.head = head;
        self.tail = head + live;
    }

    /// Drops the free room of a chunk that is no longer at an end.
    fn compact(&mut self) -> bool {
        if self.buf.len() - self.live() <= CHUNK / 8 {
            return false;
        }
        self.buf = self.buf[self.head..self.tail].to_vec();
        self.tail -= self.head;
        self.head = 0;
        true
    }
}

/// A change to one element of a chunk (by rank; encoded bytes).
enum Edit<'e> {
    Insert(usize, &'e [u8]),
    Set(usize, &'e [u8]),
    Remove(usize),
}

/// Packs encoded elements into chunks of at most CHUNK bytes (a larger
/// element alone).
fn pack(parts: &[&[u8]]) -> Vec<Chunk> {
    let mut out = Vec::new();
    let (mut from, mut bytes) = (0, 0);
    for (i, p) in parts.iter().enumerate() {
        if bytes + p.len() > CHUNK && i > from {
            out.push(Chunk::packed(&parts[from..i]));
            (from, bytes) = (i, 0);
        }
        bytes += p.len();
    }
    if from < parts.len() {
        out.push(Chunk::packed(&parts[from..]));
    }
    out
}

impl ListValue {
    fn forget_back(&mut self) {
        if self.back_ok {
            self.back = VecDeque::new();
            self.back_ok = false;
        }
    }

    /// Pushes an encoded element at the head (`front`) or the tail.
    fn phys_push(&mut self, e: &Encoded, front: bool) {
        let n = e.len();
        let single = self.chunks.len() == 1;
        let end = if front {
            self.chunks.front_mut()
        } else {
            self.chunks.back_mut()
        };
        let room = end.and_then(|c| c.make_room(n, front));
        self.len += 1;
        let Some(moved) = room else {
            return self.new_end_chunk(e, front);
        };
        let touches_back = !front || single;
        if moved && touches_back {
            self.forget_back();
        }
        let c = if front {
            &mut self.chunks[0]
        } else {
            let last = self.chunks.len() - 1;
            &mut self.chunks[last]
        };
        c.count += 1;
        let at = if front {
            c.head -= n;
            c.head
        } else {
            c.tail += n;
            c.tail - n
        };
        e.write(&mut c.buf[at..at + n]);
        if self.back_ok && touches_back {
            if front {
                self.back.push_front(at as u32);
            } else {
                self.back.push_back(at as u32);
            }
        }
    }

    fn new_end_chunk(&mut self, e: &Encoded, front: bool) {
        let cap = if self.chunks.is_empty() {
            FIRST_CHUNK
        } else {
            CHUNK
        };
        let chunk = Chunk::with(e, cap, front);
        if front {
            let single = self.chunks.len() == 1;
            if self.chunks.front_mut().is_some_and(Chunk::compact) && single {
                self.forget_back();
            }
            self.chunks.push_front(chunk);
        } else {
            self.forget_back();
            if let Some(c) = self.chunks.back_mut() {
                c.compact();
            }
            self.chunks.push_back(chunk);
        }
    }

    /// Removes the head element: `f` of it, and its listpack size.
    fn phys_pop_front<R>(&mut self, f: impl FnOnce(Elem) -> R) -> Option<(R, usize)> {
        let single = self.chunks.len() == 1;
        let c = self.chunks.front_mut()?;
        let (e, next) = decode(&c.buf, c.head);
        let v = (f(e), e.lp_size());
        c.head = next;
        c.count -= 1;
        if c.count == 0 {
            self.chunks.pop_front();
            if single {
                self.forget_back();
            }
        } else if single && self.back_ok {
            self.back.pop_front();
        }
        self.len -= 1;
        Some(v)
    }

    fn phys_pop_back<R>(&mut self, f: impl FnOnce(Elem) -> R) -> Option<(R, usize)> {
        let c = self.chunks.back_mut()?;
        if !self.back_ok {
            let mut offsets = Vec::with_capacity(c.count);
            c.offsets(&mut offsets);
            self.back = offsets.into_iter().map(|o| o as u32).collect();
            self.back_ok = true;
        }
        let start = self.back.pop_back()? as usize;
        let e = decode(&c.buf, start).0;
        let v = (f(e), e.lp_size());
        c.tail = start;
        c.count -= 1;
        if c.count == 0 {
            self.chunks.pop_back();
            self.forget_back();
        }
        self.len -= 1;
        Some(v)
    }

    /// The chunk holding element `i` (< len) and `i`'s rank in it, walking
    /// from the nearer end.
    fn find(&self, i: usize) -> (usize, usize) {
        if i < self.len / 2 {
            let mut k = i;
            for (ci, c) in self.chunks.iter().enumerate() {
                if k < c.count {
                    return (ci, k);
                }
                k -= c.count;
            }
        } else {
            let mut k = self.len - 1 - i;
            for (ci, c) in self.chunks.iter().enumerate().rev() {
                if k < c.count {
                    return (ci, c.count - 1 - k);
                }
                k -= c.count;
            }
        }
        (0, 0)
    }

    /// Rewrites chunk `ci` with one element changed, splitting it if it
    /// outgrew CHUNK and merging it with a neighbour if both fit in one.
    fn edit_chunk(&mut self, ci: usize, edit: Edit) {
        self.forget_back();
        let old = std::mem::take(&mut self.chunks[ci]);
        let mut parts = old.parts();
        match edit {
            Edit::Insert(k, e) => parts.insert(k, e),
            Edit::Set(k, e) => parts[k] = e,
            Edit::Remove(k) => {
                parts.remove(k);
            }
        }
        self.len = self.len + parts.len() - old.count;
        let new = pack(&parts);
        let added = new.len();
        self.chunks.remove(ci);
        for (k, c) in new.into_iter().enumerate() {
            self.chunks.insert(ci + k, c);
        }
        if added <= 1 {
            self.merge_at(ci.min(self.chunks.len()));
        }
    }

    /// Merges chunk `ci` into a neighbour when they fit in one.
    fn merge_at(&mut self, ci: usize) {
        let fits = |a: Option<&Chunk>, b: Option<&Chunk>| match (a, b) {
            (Some(a), Some(b)) => a.live() + b.live() <= CHUNK,
            _ => false,
        };
        if ci > 0 && fits(self.chunks.get(ci - 1), self.chunks.get(ci)) {
            self.merge_pair(ci - 1);
        } else if fits(self.chunks.get(ci), self.chunks.get(ci + 1)) {
            self.merge_pair(ci);
        }
    }

    fn merge_pair(&mut self, a: usize) {
        if let Some(b) = self.chunks.remove(a + 1) {
            let first = &self.chunks[a];
            let mut buf = Vec::with_capacity(first.live() + b.live());
            buf.extend_from_slice(&first.buf[first.head..first.tail]);
            buf.extend_from_slice(&b.buf[b.head..b.tail]);
            self.chunks[a] = Chunk {
                tail: buf.len(),
                buf,
                head: 0,
                count: first.count + b.count,
            };
        }
    }

    fn phys_insert(&mut self, p: usize, e: &Encoded) {
        if p == 0 || p == self.len {
            return self.phys_push(e, p == 0);
        }
        let (ci, k) = self.find(p);
        let bytes = e.to_vec();
        self.edit_chunk(ci, Edit::Insert(k, &bytes));
    }

    fn phys_set(&mut self, i: usize, e: &Encoded) {
        let (ci, k) = self.find(i);
        let bytes = e.to_vec();
        self.edit_chunk(ci, Edit::Set(k, &bytes));
    }

    fn phys_remove(&mut self, i: usize) -> Option<(StrValue, usize)> {
        if i >= self.len {
            return None;
        }
        if i == 0 {
            return self.phys_pop_front(|e| e.to_str_value());
        }
        if i == self.len - 1 {
            return self.phys_pop_back(|e| e.to_str_value());
        }
        let (ci, k) = self.find(i);
        let c = &self.chunks[ci];
        let e = decode(&c.buf, c.offset_of(k)).0;
        let v = (e.to_str_value(), e.lp_size());
        self.edit_chunk(ci, Edit::Remove(k));
        Some(v)
    }

    /// Removes the elements at `positions` (ascending) in one pass over
    /// the chunks, merging the ones left small.
    fn phys_remove_many(&mut self, positions: &[usize]) {
        if positions.is_empty() {
            return;
        }
        self.forget_back();
        let old = std::mem::take(&mut self.chunks);
        let mut next = positions.iter().copied().peekable();
        let mut start = 0;
        let mut last_touched = false;
        for c in old {
            let end = start + c.count;
            let touched = next.peek().is_some_and(|&p| p < end);
            let c = if touched {
                let mut parts = c.parts();
                let mut k = 0;
                parts.retain(|_| {
                    let drop = next.next_if(|&p| p == start + k).is_some();
                    k += 1;
                    !drop
                });
                self.len -= c.count - parts.len();
                Chunk::packed(&parts)
            } else {
                c
            };
            start = end;
            if c.count == 0 {
                last_touched |= touched;
                continue;
            }
            let merge = (touched || last_touched)
                && self
                    .chunks
                    .back()
                    .is_some_and(|b| b.live() + c.live() <= CHUNK);
            self.chunks.push_back(c);
            if merge {
                self.merge_pair(self.chunks.len() - 2);
            }
            last_touched = touched;
        }
    }
}

impl ListValue {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The name OBJECT ENCODING replies with.
    pub fn encoding(&self) -> &'static str {
        if self.quicklist {
            "quicklist"
        } else {
            "listpack"
        }
    }

    /// Before adding elements (`add_bytes` of argument bytes, `add_count`
    /// elements): switches to quicklist if the listpack would grow past the
    /// limit (Redis's listTypeTryConvertListpack, which counts raw argument
    /// lengths).
    pub fn grow(&mut self, fill: i64, add_bytes: usize, add_count: usize) {
        if !self.quicklist && exceeds(fill, self.lp_bytes + add_bytes, self.len() + add_count) {
            self.quicklist = true;
            self.ql_fill = fill;
            self.nodes.clear();
            if !self.is_empty() {
                self.nodes.push_back(Node {
                    count: self.len(),
                    bytes: self.lp_bytes,
                    plain: false,
                });
            }
        }
    }

    /// After removing elements: back to listpack once it fits in half the
    /// limit (Redis's listTypeTryConvertQuicklist with shrinking set).
    pub fn shrink(&mut self, fill: i64) {
        let (size, count) = node_limits(fill);
        let single = self.nodes.len() == 1 && !self.nodes[0].plain;
        if self.quicklist && single && self.lp_bytes <= size / 2 && self.len() <= count / 2 {
            self.quicklist = false;
            self.nodes.clear();
        }
    }

    pub fn push_back(&mut self, v: &[u8]) {
        self.push(v, false)
    }

    pub fn push_front(&mut self, v: &[u8]) {
        self.push(v, true)
    }

    /// Adds a value at the head (`left`) or the tail.
    pub fn push(&mut self, v: &[u8], left: bool) {
        let e = Encoded::new(v);
        let size = e.lp_size();
        self.lp_bytes += size;
        self.phys_push(&e, left);
        if self.quicklist {
            self.node_push(v.len(), size, left);
        }
    }

    /// Removes from the head (`left`) or the tail.
    pub fn pop(&mut self, left: bool) -> Option<StrValue> {
        self.pop_with(left, |e| e.to_str_value())
    }

    /// Removes from the head (`left`) or the tail, handing the element to
    /// `f` while it is still in place (no copy for a reply).
    pub fn pop_with<R>(&mut self, left: bool, f: impl FnOnce(Elem) -> R) -> Option<R> {
        let (r, size) = if left {
            self.phys_pop_front(f)?
        } else {
            self.phys_pop_back(f)?
        };
        self.lp_bytes -= size;
        if self.quicklist {
            let n = if left { 0 } else { self.nodes.len() - 1 };
            self.node_removed(n, size);
        }
        Some(r)
    }

    pub fn get(&self, i: usize) -> Option<Elem<'_>> {
        if i >= self.len {
            return None;
        }
        let (ci, k) = self.find(i);
        let c = &self.chunks[ci];
        Some(decode(&c.buf, c.offset_of(k)).0)
    }

    /// Replaces element `i` (which must exist).
    pub fn set(&mut self, i: usize, v: &[u8]) {
        let Some(old_size) = self.get(i).map(Elem::lp_size) else {
            return;
        };
        let e = Encoded::new(v);
        self.lp_bytes = self.lp_bytes + e.lp_size() - old_size;
        self.phys_set(i, &e);
        if self.quicklist {
            self.node_replace(i, v, old_size);
        }
    }

    /// Inserts `v` next to the pivot at `pivot` (after it if `after`).
    pub fn insert_at_pivot(&mut self, pivot: usize, v: &[u8], after: bool) {
        if pivot >= self.len {
            return;
        }
        if self.quicklist {
            self.node_insert(pivot, v, after);
        }
        let e = Encoded::new(v);
        self.lp_bytes += e.lp_size();
        self.phys_insert(pivot + after as usize, &e);
    }

    pub fn remove(&mut self, i: usize) -> Option<StrValue> {
        let (v, size) = self.phys_remove(i)?;
        self.lp_bytes -= size;
        if self.quicklist {
            // The ends are found without walking the nodes (RPOP on a
            // long list stays O(1)).
            let n = if i == 0 {
                0
            } else if i == self.len {
                self.nodes.len() - 1
            } else {
                self.locate(i).0
            };
            self.node_removed(n, size);
        }
        Some(v)
    }

    /// Removes the elements at `positions` (ascending) in one pass.
    pub fn remove_many(&mut self, positions: &[usize]) {
        // Node boundaries as they were before any removal.
        let counts: Vec<usize> = self.nodes.iter().map(|n| n.count).collect();
        let (mut node, mut node_end) = (0, counts.first().copied().unwrap_or(0));
        let mut sizes = Vec::with_capacity(positions.len());
        let mut next = positions.iter().peekable();
        for (i, v) in self.iter().enumerate() {
            if next.peek().is_none() {
                break;
            }
            if next.peek() == Some(&&i) {
                next.next();
                sizes.push((i, v.lp_size()));
            }
        }
        for (i, size) in sizes {
            self.lp_bytes -= size;
            if self.quicklist {
                while i >= node_end && node + 1 < counts.len() {
                    node += 1;
                    node_end += counts[node];
                }
                let n = &mut self.nodes[node];
                n.count -= 1;
                n.bytes = n.bytes.saturating_sub(size);
            }
        }
        self.nodes.retain(|n| n.count > 0);
        self.phys_remove_many(positions);
    }

    fn node_removed(&mut self, n: usize, size: usize) {
        let node = &mut self.nodes[n];
        node.count -= 1;
        node.bytes = node.bytes.saturating_sub(size);
        if node.count == 0 {
            self.nodes.remove(n);
        }
    }

    /// Keeps only positions `start..end`.
    pub fn trim(&mut self, start: usize, end: usize) {
        let end = end.min(self.len());
        let start = start.min(end);
        while self.len() > end {
            self.pop(false);
        }
        for _ in 0..start {
            self.pop(true);
        }
    }

    /// The elements, head to tail.
    pub fn iter(&self) -> Iter<'_> {
        self.range(0, self.len)
    }

    /// The elements, tail to head.
    pub fn iter_rev(&self) -> RevIter<'_> {
        RevIter {
            chunks: &self.chunks,
            cur: self.chunks.len(),
            offsets: Vec::new(),
            left: self.len,
        }
    }

    /// Positions `start..end` in order.
    pub fn range(&self, start: usize, end: usize) -> Iter<'_> {
        let end = end.min(self.len);
        if start >= end {
            return Iter {
                chunks: &self.chunks,
                ci: 0,
                pos: 0,
                left: 0,
            };
        }
        let (ci, k) = self.find(start);
        Iter {
            chunks: &self.chunks,
            ci,
            pos: self.chunks[ci].offset_of(k),
            left: end - start,
        }
    }
}

/// Forward iterator over a list's elements.
pub struct Iter<'a> {
    chunks: &'a VecDeque<Chunk>,
    ci: usize,
    pos: usize,
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Elem<'a>;

    fn next(&mut self) -> Option<Elem<'a>> {
        if self.left == 0 {
            return None;
        }
        let chunks = self.chunks;
        while self.pos >= chunks[self.ci].tail {
            self.ci += 1;
            self.pos = chunks[self.ci].head;
        }
        let (e, next) = decode(&chunks[self.ci].buf, self.pos);
        self.pos = next;
        self.left -= 1;
        Some(e)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// Backward iterator: a chunk can only be walked forwards, so each chunk's
/// offsets are collected when the iterator reaches it.
pub struct RevIter<'a> {
    chunks: &'a VecDeque<Chunk>,
    /// The chunk `offsets` belong to.
    cur: usize,
    offsets: Vec<usize>,
    left: usize,
}

impl<'a> Iterator for RevIter<'a> {
    type Item = Elem<'a>;

    fn next(&mut self) -> Option<Elem<'a>> {
        if self.left == 0 {
            return None;
        }
        let chunks = self.chunks;
        while self.offsets.is_empty() {
            self.cur -= 1;
            chunks[self.cur].offsets(&mut self.offsets);
        }
        let at = self.offsets.pop()?;
        self.left -= 1;
        Some(decode(&chunks[self.cur].buf, at).0)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for RevIter<'_> {}

impl ListValue {
    // ------------------------------------------------ quicklist nodes

    /// The node holding element `i` and `i`'s offset in it.
    fn locate(&self, mut i: usize) -> (usize, usize) {
        for (n, node) in self.nodes.iter().enumerate() {
            if i < node.count {
                return (n, i);
            }
            i -= node.count;
        }
        (self.nodes.len().saturating_sub(1), i)
    }

    /// A node of one element of `len` bytes (`size` in a listpack).
    fn node_of(&self, len: usize, size: usize) -> Node {
        if is_large(len, self.ql_fill) {
            Node {
                count: 1,
                bytes: len,
                plain: true,
            }
        } else {
            Node {
                count: 1,
                bytes: LP_OVERHEAD + size,
                plain: false,
            }
        }
    }

    fn new_node(&self, v: &[u8]) -> Node {
        self.node_of(v.len(), lp_entry_size(v))
    }

    fn add_to(&mut self, n: usize, size: usize) {
        self.nodes[n].count += 1;
        self.nodes[n].bytes += size;
    }

    /// quicklistPushHead / quicklistPushTail of an element of `len` bytes
    /// (`size` in a listpack).
    fn node_push(&mut self, len: usize, size: usize, head: bool) {
        let fill = self.ql_fill;
        let end = if head {
            self.nodes.front()
        } else {
            self.nodes.back()
        };
        if !is_large(len, fill) && allow_insert(end, fill, len) {
            let n = if head { 0 } else { self.nodes.len() - 1 };
            self.add_to(n, size);
        } else {
            let node = self.node_of(len, size);
            if head {
                self.nodes.push_front(node);
            } else {
                self.nodes.push_back(node);
            }
        }
    }

    /// Splits node `n` at `offset` as _quicklistSplitNode: the pivot stays
    /// in node `n`; the other part becomes a node after (`after`) or
    /// before it. Returns the index of the new part.
    fn split(&mut self, n: usize, offset: usize, after: bool) -> usize {
        let first = offset + after as usize;
        let start: usize = self.nodes.iter().take(n).map(|x| x.count).sum();
        let bytes_of = |r: std::ops::Range<usize>| -> usize {
            self.range(r.start, r.end).map(Elem::lp_size).sum::<usize>() + LP_OVERHEAD
        };
        let count = self.nodes[n].count;
        let (keep, moved) = if after {
            (start..start + first, start + first..start + count)
        } else {
            (start + offset..start + count, start..start + offset)
        };
        let kept = Node {
            count: keep.len(),
            bytes: bytes_of(keep),
            plain: false,
        };
        let part = Node {
            count: moved.len(),
            bytes: bytes_of(moved),
            plain: false,
        };
        self.nodes[n] = kept;
        if after {
            self.nodes.insert(n + 1, part);
            n + 1
        } else {
            self.nodes.insert(n, part);
            n
        }
    }

    /// _quicklistMergeNodes around node `c`.
    fn merge_around(&mut self, c: usize) {
        let fill = self.ql_fill;
        let mut c = c;
        if c >= 2 && allow_merge(self.nodes.get(c - 1), self.nodes.get(c - 2), fill) {
            self.merge(c - 2);
            c -= 1;
        }
        if allow_merge(self.nodes.get(c + 1), self.nodes.get(c + 2), fill) {
            self.merge(c + 1);
        }
        if c >= 1 && allow_merge(self.nodes.get(c), self.nodes.get(c - 1), fill) {
            self.merge(c - 1);
            c -= 1;
        }
        if allow_merge(self.nodes.get(c), self.nodes.get(c + 1), fill) {
            self.merge(c);
        }
    }

    /// Merges node `a + 1` into node `a`.
    fn merge(&mut self, a: usize) {
        if let Some(b) = self.nodes.remove(a + 1) {
            let node = &mut self.nodes[a];
            node.count += b.count;
            node.bytes = node.bytes + b.bytes - LP_OVERHEAD;
        }
    }

    /// _quicklistInsert: `v` goes next to element `pivot` (called before
    /// the chunks hold it).
    fn node_insert(&mut self, pivot: usize, v: &[u8], after: bool) {
        let fill = self.ql_fill;
        let size = lp_entry_size(v);
        let (n, offset) = self.locate(pivot);
        let node = self.nodes[n];
        let full = !allow_insert(Some(&node), fill, v.len());
        let at_tail = after && offset == node.count - 1;
        let at_head = !after && offset == 0;
        let avail_next = at_tail && allow_insert(self.nodes.get(n + 1), fill, v.len());
        let avail_prev = at_head && n > 0 && allow_insert(self.nodes.get(n - 1), fill, v.len());
        if is_large(v.len(), fill) {
            if node.plain || at_tail || at_head {
                self.nodes.insert(n + after as usize, self.new_node(v));
            } else {
                // Split, the plain node goes between the two parts.
                self.split(n, offset, after);
                self.nodes.insert(n + 1, self.new_node(v));
            }
        } else if !full {
            self.add_to(n, size);
        } else if avail_next {
            self.add_to(n + 1, size);
        } else if avail_prev {
            self.add_to(n - 1, size);
        } else if at_tail || at_head {
            self.nodes
                .insert(n + after as usize, self.node_of(v.len(), size));
        } else {
            let part = self.split(n, offset, after);
            self.add_to(part, size);
            self.merge_around(if after { n } else { n + 1 });
        }
    }

    /// quicklistReplaceEntry for element `i` (already replaced in the chunks;
    /// `old_size` was its listpack size).
    fn node_replace(&mut self, i: usize, v: &[u8], old_size: usize) {
        let fill = self.ql_fill;
        let (n, offset) = self.locate(i);
        let node = self.nodes[n];
        let new_size = lp_entry_size(v);
        let large = is_large(v.len(), fill);
        if !node.plain && !large {
            self.nodes[n].bytes = node.bytes - old_size + new_size;
            return;
        }
        if node.plain {
            if large {
                self.nodes[n] = self.new_node(v);
            } else {
                // Inserted after the plain node, which then goes.
                self.node_insert(i, v, true);
                self.nodes.remove(n);
            }
            return;
        }
        // Split after the entry, put the new value in a node of its own
        // after it, drop the old entry, merge around the new node.
        // The chunks already hold the new value: a split counts its size.
        let held = if offset != node.count - 1 {
            self.split(n, offset, true);
            new_size
        } else {
            old_size
        };
        self.nodes.insert(n + 1, self.new_node(v));
        if self.nodes[n].count == 1 {
            self.nodes.remove(n);
        } else {
            self.nodes[n].count -= 1;
            self.nodes[n].bytes -= held;
            self.merge_around(n + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_sizes_match_listpack() {
        assert_eq!(lp_entry_size(b"5"), 2);
        assert_eq!(lp_entry_size(b"-1"), 3);
        assert_eq!(lp_entry_size(b"hello"), 7);
        assert_eq!(lp_entry_size(&[b'a'; 64]), 64 + 2 + 1);
        assert_eq!(lp_entry_size(&[b'a'; 200]), 200 + 2 + 2);
    }

    #[test]
    fn converts_past_the_limit_and_back() {
        let mut l = ListValue::default();
        for _ in 0..100 {
            l.grow(-2, 80, 1);
            l.push_back(&[b'x'; 80]);
        }
        assert_eq!(l.encoding(), "quicklist");
        // 98 elements filled the first node, 2 went to a second one.
        // Popping from the head leaves two nodes: still a quicklist.
        for _ in 0..60 {
            l.pop(true);
            l.shrink(-2);
        }
        assert_eq!(l.encoding(), "quicklist");
        // Once the tail node is gone, one node of 38 fits in 4 KB.
        l.pop(false);
        l.shrink(-2);
        assert_eq!(l.encoding(), "quicklist");
        l.pop(false);
        l.shrink(-2);
        assert_eq!(l.encoding(), "listpack");
    }

    /// The list's elements as bytes, read forwards, backwards and by index
    /// (all three must agree), after checking the chunks' invariants.
    fn contents(l: &ListValue) -> Vec<Vec<u8>> {
        let counted: usize = l.chunks.iter().map(|c| c.count).sum();
        assert_eq!(counted, l.len());
        for c in &l.chunks {
            assert!(c.count > 0, "empty chunk");
            let mut offsets = Vec::new();
            c.offsets(&mut offsets);
            assert_eq!(offsets.len(), c.count);
            assert!(c.live() <= CHUNK || c.count == 1, "oversized chunk");
        }
        if l.back_ok {
            let mut offsets = Vec::new();
            l.chunks.back().unwrap().offsets(&mut offsets);
            let back: Vec<usize> = l.back.iter().map(|&o| o as usize).collect();
            assert_eq!(back, offsets);
        }
        let fwd: Vec<Vec<u8>> = l.iter().map(Elem::to_vec).collect();
        let mut rev: Vec<Vec<u8>> = l.iter_rev().map(Elem::to_vec).collect();
        rev.reverse();
        assert_eq!(fwd, rev);
        for (i, v) in fwd.iter().enumerate() {
            assert_eq!(&l.get(i).unwrap().to_vec(), v);
        }
        assert!(l.get(fwd.len()).is_none());
        fwd
    }

    fn model_of(l: &ListValue) -> VecDeque<Vec<u8>> {
        contents(l).into()
    }

    #[test]
    fn every_encoding_round_trips() {
        let mut l = ListValue::default();
        let mut vals: Vec<Vec<u8>> = Vec::new();
        for i in [
            0i64,
            1,
            127,
            128,
            -1,
            -4096,
            4095,
            4096,
            -4097,
            32767,
            -32768,
            32768,
            8_388_607,
            -8_388_608,
            8_388_608,
            i32::MAX as i64,
            i32::MIN as i64,
            i32::MAX as i64 + 1,
            i64::MAX,
            i64::MIN,
        ] {
            vals.push(i.to_string().into_bytes());
        }
        for s in ["", "a", "01", "-0", "+1", " 1", "9223372036854775808"] {
            vals.push(s.as_bytes().to_vec());
        }
        for n in [63, 64, 65535, 65536, 70_000] {
            vals.push(vec![b'z'; n]);
        }
        for v in &vals {
            l.push_back(v);
        }
        assert_eq!(contents(&l), vals);
        let popped: Vec<Vec<u8>> = std::iter::from_fn(|| l.pop(true))
            .map(|v| v.to_vec())
            .collect();
        assert_eq!(popped, vals);
    }

    #[test]
    fn pushes_and_pops_cross_chunk_edges_from_both_ends() {
        let mut l = ListValue::default();
        let mut m = VecDeque::new();
        for i in 0..3000 {
            let v = format!("e{i:010}").into_bytes();
            if i % 3 == 0 {
                l.push_front(&v);
                m.push_front(v);
            } else {
                l.push_back(&v);
                m.push_back(v);
            }
        }
        assert!(l.chunks.len() > 5);
        assert_eq!(model_of(&l), m);
        // Drain alternately from both ends, crossing every chunk edge.
        while !m.is_empty() {
            let left = m.len() % 2 == 0;
            let want = if left { m.pop_front() } else { m.pop_back() };
            assert_eq!(l.pop(left).map(|v| v.to_vec()), want);
        }
        assert!(l.chunks.is_empty() && l.is_empty());
        assert!(l.pop(true).is_none());
    }

    #[test]
    fn full_chunks_are_packed_tight() {
        let mut l = ListValue::default();
        for i in 0..10_000 {
            l.push_front(format!("e{i:010}").as_bytes());
        }
        let n = l.chunks.len();
        assert!(l
            .chunks
            .range(1..n - 1)
            .all(|c| c.buf.len() - c.live() < 12));
    }

    #[test]
    fn queue_on_one_chunk_keeps_the_tail_offsets() {
        let mut l = ListValue::default();
        for i in 0..50 {
            l.push_front(i.to_string().as_bytes());
        }
        for i in 50..5000 {
            l.push_front(format!("v{i}").as_bytes());
            let v = l.pop(false).unwrap().to_vec();
            let j = i - 50;
            let want = if j < 50 {
                j.to_string()
            } else {
                format!("v{j}")
            };
            assert_eq!(v, want.into_bytes());
            contents(&l);
        }
    }

    #[test]
    fn edits_grow_shrink_and_empty_chunks() {
        let mut l = ListValue::default();
        let mut m: VecDeque<Vec<u8>> = VecDeque::new();
        for i in 0..1000 {
            let v = format!("e{i:010}").into_bytes();
            l.push_back(&v);
            m.push_back(v);
        }
        // LSET past a chunk's capacity: the chunk splits.
        let big = vec![b'b'; 3000];
        for i in [5, 6, 7, 400] {
            l.set(i, &big);
            m[i] = big.clone();
        }
        assert_eq!(model_of(&l), m);
        // An element larger than a chunk, set and inserted in the middle.
        let huge = vec![b'h'; 3 * CHUNK];
        l.set(500, &huge);
        m[500] = huge.clone();
        l.insert_at_pivot(200, &huge, false);
        m.insert(200, huge.clone());
        l.insert_at_pivot(200, b"after", true);
        m.insert(201, b"after".to_vec());
        assert_eq!(model_of(&l), m);
        // Removing every element of a run of chunks.
        let gone: Vec<usize> = (100..700).collect();
        l.remove_many(&gone);
        for _ in 100..700 {
            m.remove(100);
        }
        assert_eq!(model_of(&l), m);
        // Small chunks left by removals were merged.
        assert!(l.chunks.len() <= 4, "{} chunks", l.chunks.len());
        l.trim(50, 60);
        let kept: VecDeque<Vec<u8>> = m.range(50..60).cloned().collect();
        assert_eq!(model_of(&l), kept);
        l.trim(0, 0);
        assert!(l.is_empty() && l.chunks.is_empty());
    }

    #[test]
    fn clones_are_independent() {
        let mut l = ListValue::default();
        for i in 0..2000 {
            l.push_back(format!("x{i}").as_bytes());
        }
        l.pop(false);
        let mut c = l.clone();
        c.push_front(b"new");
        c.set(1000, b"changed");
        assert_eq!(l.len(), 1999);
        assert_eq!(contents(&l)[0], b"x0");
        assert_eq!(contents(&c)[0], b"new");
        assert_eq!(c.pop(false).unwrap().to_vec(), b"x1998");
    }

    #[derive(Clone, Debug)]
    enum Op {
        Push(bool, Vec<u8>),
        Pop(bool),
        Set(usize, Vec<u8>),
        Insert(usize, Vec<u8>, bool),
        Remove(usize),
        RemoveEvery(usize),
        Trim(usize, usize),
    }

    fn value() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (0i64..200).prop_map(|i| i.to_string().into_bytes()),
            2 => any::<i64>().prop_map(|i| i.to_string().into_bytes()),
            4 => proptest::collection::vec(b'a'..=b'z', 0..80),
            1 => (60usize..70).prop_map(|n| vec![b'q'; n]),
            1 => (1000usize..5000).prop_map(|n| vec![b'L'; n]),
        ]
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            8 => (any::<bool>(), value()).prop_map(|(l, v)| Op::Push(l, v)),
            4 => any::<bool>().prop_map(Op::Pop),
            2 => (any::<usize>(), value()).prop_map(|(i, v)| Op::Set(i, v)),
            2 => (any::<usize>(), value(), any::<bool>()).prop_map(|(i, v, a)| Op::Insert(i, v, a)),
            1 => any::<usize>().prop_map(Op::Remove),
            1 => (2usize..6).prop_map(Op::RemoveEvery),
            1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Trim(a, b)),
        ]
    }

    fn apply(l: &mut ListValue, m: &mut VecDeque<Vec<u8>>, op: Op, fill: i64) {
        match op {
            Op::Push(left, v) => {
                l.grow(fill, v.len(), 1);
                l.push(&v, left);
                if left {
                    m.push_front(v)
                } else {
                    m.push_back(v)
                }
            }
            Op::Pop(left) => {
                let want = if left { m.pop_front() } else { m.pop_back() };
                assert_eq!(l.pop(left).map(|v| v.to_vec()), want);
            }
            Op::Set(i, v) if !m.is_empty() => {
                let i = i % m.len();
                l.grow(fill, v.len(), 1);
                l.set(i, &v);
                m[i] = v;
            }
            Op::Insert(i, v, after) if !m.is_empty() => {
                let i = i % m.len();
                l.grow(fill, v.len(), 1);
                l.insert_at_pivot(i, &v, after);
                m.insert(i + after as usize, v);
            }
            Op::Remove(i) if !m.is_empty() => {
                let i = i % m.len();
                assert_eq!(l.remove(i).map(|v| v.to_vec()), m.remove(i));
            }
            Op::RemoveEvery(k) => {
                let gone: Vec<usize> = (0..m.len()).filter(|i| i % k == 1).collect();
                l.remove_many(&gone);
                for &i in gone.iter().rev() {
                    m.remove(i);
                }
            }
            Op::Trim(a, b) => {
                let len = m.len().max(1);
                let (a, b) = (a % len, b % (len + 1));
                l.trim(a, b);
                let kept: VecDeque<Vec<u8>> = m.iter().take(b).skip(a).cloned().collect();
                *m = kept;
            }
            _ => {}
        }
        l.shrink(fill);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn behaves_like_a_deque(
            prefill in 0usize..1200,
            ops in proptest::collection::vec(op(), 1..300),
            fill in proptest::prop_oneof![proptest::strategy::Just(-2i64), proptest::strategy::Just(-1), proptest::strategy::Just(4)],
        ) {
            let mut l = ListValue::default();
            let mut m = VecDeque::new();
            for i in 0..prefill {
                apply(&mut l, &mut m, Op::Push(i % 4 == 0, format!("p{i:010}").into_bytes()), fill);
            }
            for op in ops {
                apply(&mut l, &mut m, op, fill);
                proptest::prop_assert_eq!(model_of(&l), m.clone());
            }
            let range: Vec<Vec<u8>> = l.range(m.len() / 3, m.len()).map(Elem::to_vec).collect();
            let want: Vec<Vec<u8>> = m.iter().skip(m.len() / 3).cloned().collect();
            proptest::prop_assert_eq!(range, want);
        }
    }
}
