//! ListValue: Redis's list (t_list.c). Elements are kept in one deque of
//! compact strings (integers and short strings inline, no allocation).
//!
//! The encoding OBJECT ENCODING reports follows Redis 7.2+'s rule: a list
//! is a listpack until the listpack holding it would exceed
//! `list-max-listpack-size`, then a quicklist; after a removal it turns back
//! into a listpack once it is a single node that fits in half the limit.
//! To decide exactly as Redis does, the byte size of the equivalent
//! listpack is tracked, and in quicklist form the size and count of each
//! node Redis would have (`Node`), following quicklist.c's rules for where
//! an element goes.

use crate::compact::{canonical_i64, StrValue};
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
    items: VecDeque<StrValue>,
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
            items: VecDeque::new(),
            lp_bytes: LP_OVERHEAD,
            quicklist: false,
            nodes: VecDeque::new(),
            ql_fill: -2,
        }
    }
}

/// Bytes one element takes in a listpack: encoding + data + back-length.
pub fn lp_entry_size(b: &[u8]) -> usize {
    let enc = match canonical_i64(b) {
        Some(v) if (0..=127).contains(&v) => 1,
        Some(v) if (-4096..=4095).contains(&v) => 2,
        Some(v) if i16::try_from(v).is_ok() => 3,
        Some(v) if (-8_388_608..=8_388_607).contains(&v) => 4,
        Some(v) if i32::try_from(v).is_ok() => 5,
        Some(_) => 9,
        None if b.len() <= 63 => 1 + b.len(),
        None if b.len() <= 4095 => 2 + b.len(),
        None => 5 + b.len(),
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

fn entry_size(v: &StrValue) -> usize {
    lp_entry_size(v.bytes(&mut itoa::Buffer::new()))
}

impl ListValue {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        self.lp_bytes += lp_entry_size(v);
        self.items.push_back(StrValue::from_bytes(v));
        if self.quicklist {
            self.node_push(v, false);
        }
    }

    pub fn push_front(&mut self, v: &[u8]) {
        self.lp_bytes += lp_entry_size(v);
        self.items.push_front(StrValue::from_bytes(v));
        if self.quicklist {
            self.node_push(v, true);
        }
    }

    /// Adds a value at the head (`left`) or the tail.
    pub fn push(&mut self, v: &[u8], left: bool) {
        if left {
            self.push_front(v)
        } else {
            self.push_back(v)
        }
    }

    /// Removes from the head (`left`) or the tail.
    pub fn pop(&mut self, left: bool) -> Option<StrValue> {
        if self.is_empty() {
            return None;
        }
        self.remove(if left { 0 } else { self.len() - 1 })
    }

    pub fn get(&self, i: usize) -> Option<&StrValue> {
        self.items.get(i)
    }

    /// Replaces element `i` (which must exist).
    pub fn set(&mut self, i: usize, v: &[u8]) {
        let new = StrValue::from_bytes(v);
        let add = lp_entry_size(v);
        let old = std::mem::replace(&mut self.items[i], new);
        let old_size = entry_size(&old);
        self.lp_bytes = self.lp_bytes + add - old_size;
        if self.quicklist {
            self.node_replace(i, v, old_size);
        }
    }

    /// Inserts `v` next to the pivot at `pivot` (after it if `after`).
    pub fn insert_at_pivot(&mut self, pivot: usize, v: &[u8], after: bool) {
        if self.quicklist {
            self.node_insert(pivot, v, after);
        }
        self.lp_bytes += lp_entry_size(v);
        self.items
            .insert(pivot + after as usize, StrValue::from_bytes(v));
    }

    pub fn remove(&mut self, i: usize) -> Option<StrValue> {
        let v = self.items.remove(i)?;
        let size = entry_size(&v);
        self.lp_bytes -= size;
        if self.quicklist {
            // The ends are found without walking the nodes (RPOP on a
            // long list stays O(1)).
            let n = if i == 0 {
                0
            } else if i == self.items.len() {
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
        let mut next = positions.iter().peekable();
        for (i, v) in self.items.iter().enumerate() {
            if next.peek() != Some(&&i) {
                continue;
            }
            next.next();
            let size = entry_size(v);
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
        let mut i = 0;
        let mut next = positions.iter().peekable();
        self.items.retain(|_| {
            let drop = next.peek() == Some(&&i);
            if drop {
                next.next();
            }
            i += 1;
            !drop
        });
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

    fn packed(v: &[u8]) -> Node {
        Node {
            count: 1,
            bytes: LP_OVERHEAD + lp_entry_size(v),
            plain: false,
        }
    }

    fn new_node(&self, v: &[u8]) -> Node {
        if is_large(v.len(), self.ql_fill) {
            Node {
                count: 1,
                bytes: v.len(),
                plain: true,
            }
        } else {
            Self::packed(v)
        }
    }

    fn add_to(&mut self, n: usize, v: &[u8]) {
        self.nodes[n].count += 1;
        self.nodes[n].bytes += lp_entry_size(v);
    }

    /// quicklistPushHead / quicklistPushTail.
    fn node_push(&mut self, v: &[u8], head: bool) {
        let fill = self.ql_fill;
        let end = if head {
            self.nodes.front()
        } else {
            self.nodes.back()
        };
        if !is_large(v.len(), fill) && allow_insert(end, fill, v.len()) {
            let n = if head { 0 } else { self.nodes.len() - 1 };
            self.add_to(n, v);
        } else {
            let node = self.new_node(v);
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
            self.items.range(r).map(entry_size).sum::<usize>() + LP_OVERHEAD
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
    /// `items` holds it).
    fn node_insert(&mut self, pivot: usize, v: &[u8], after: bool) {
        let fill = self.ql_fill;
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
            self.add_to(n, v);
        } else if avail_next {
            self.add_to(n + 1, v);
        } else if avail_prev {
            self.add_to(n - 1, v);
        } else if at_tail || at_head {
            self.nodes.insert(n + after as usize, Self::packed(v));
        } else {
            let part = self.split(n, offset, after);
            self.add_to(part, v);
            self.merge_around(if after { n } else { n + 1 });
        }
    }

    /// quicklistReplaceEntry for element `i` (already replaced in `items`;
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
        // `items` already holds the new value: a split counts its size.
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

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &StrValue> + ExactSizeIterator {
        self.items.iter()
    }

    /// Positions `start..end` in order.
    pub fn range(&self, start: usize, end: usize) -> impl Iterator<Item = &StrValue> {
        self.items.range(start..end)
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
}
