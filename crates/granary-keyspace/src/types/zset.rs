//! ZSetValue: Redis's sorted set (t_zset.c data structures).
//!
//! Small sets are a "listpack": one Vec of (score, member) kept sorted by
//! (score, member), members inline up to 22 bytes. Past
//! zset-max-listpack-entries/value the set becomes a "skiplist": a
//! member→score [`Dict`] (O(1) ZSCORE, and ZSCAN's cursor) plus an order
//! structure with O(log n) rank and select. The order structure is a treap
//! with subtree sizes, its nodes in one arena Vec linked by u32 indices
//! (safe Rust, no per-node allocation). Like Redis, a set never converts back.

use crate::compact::Key;
use crate::dict::{Dict, DictItem};
use crate::hash::hash_bytes;
use std::cmp::Ordering;

/// Orders two (score, member) pairs as Redis does: by score, then by the
/// member bytes (memcmp). Scores are never NaN; -0 equals 0.
pub fn cmp_pair(s1: f64, m1: &[u8], s2: f64, m2: &[u8]) -> Ordering {
    s1.partial_cmp(&s2)
        .unwrap_or(Ordering::Equal)
        .then_with(|| m1.cmp(m2))
}

#[derive(Clone, Debug)]
pub struct Item {
    pub score: f64,
    pub member: Key,
}

impl Item {
    fn cmp_to(&self, score: f64, member: &[u8]) -> Ordering {
        cmp_pair(self.score, self.member.as_bytes(), score, member)
    }
}

/// The dict half of the skiplist encoding.
struct Scored {
    member: Key,
    score: f64,
}

impl DictItem for Scored {
    fn key(&self) -> &[u8] {
        self.member.as_bytes()
    }
}

const NIL: u32 = u32::MAX;

#[derive(Clone, Debug)]
struct Node {
    item: Item,
    left: u32,
    right: u32,
    size: u32,
    pri: u32,
}

/// An order-statistic treap in an arena.
#[derive(Clone, Default, Debug)]
struct Treap {
    nodes: Vec<Node>,
    free: Vec<u32>,
    root: u32,
    seed: u32,
}

impl Treap {
    fn new() -> Self {
        Treap {
            nodes: Vec::new(),
            free: Vec::new(),
            root: NIL,
            seed: 0x9E37_79B9,
        }
    }

    fn size(&self, t: u32) -> u32 {
        if t == NIL {
            0
        } else {
            self.nodes[t as usize].size
        }
    }

    fn update(&mut self, t: u32) {
        let n = &self.nodes[t as usize];
        let s = 1 + self.size(n.left) + self.size(n.right);
        self.nodes[t as usize].size = s;
    }

    /// Xorshift: priorities only need to be independent of the data.
    fn next_pri(&mut self) -> u32 {
        let mut x = self.seed;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.seed = x;
        x
    }

    /// Splits `t` into (nodes where `before` holds, the rest); `before`
    /// must hold for a prefix of the order.
    fn split(&mut self, t: u32, before: &dyn Fn(&Item) -> bool) -> (u32, u32) {
        if t == NIL {
            return (NIL, NIL);
        }
        if before(&self.nodes[t as usize].item) {
            let (a, b) = self.split(self.nodes[t as usize].right, before);
            self.nodes[t as usize].right = a;
            self.update(t);
            (t, b)
        } else {
            let (a, b) = self.split(self.nodes[t as usize].left, before);
            self.nodes[t as usize].left = b;
            self.update(t);
            (a, t)
        }
    }

    fn merge(&mut self, a: u32, b: u32) -> u32 {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.nodes[a as usize].pri > self.nodes[b as usize].pri {
            let r = self.merge(self.nodes[a as usize].right, b);
            self.nodes[a as usize].right = r;
            self.update(a);
            a
        } else {
            let l = self.merge(a, self.nodes[b as usize].left);
            self.nodes[b as usize].left = l;
            self.update(b);
            b
        }
    }

    /// Points the link that led to a subtree (`parent`'s child on `side`,
    /// or the root) at `t`.
    fn relink(&mut self, parent: u32, went_right: bool, t: u32) {
        if parent == NIL {
            self.root = t;
        } else if went_right {
            self.nodes[parent as usize].right = t;
        } else {
            self.nodes[parent as usize].left = t;
        }
    }

    /// Inserts in one descent: down the path while the nodes outrank the
    /// new one's priority (each gains a descendant), then the subtree found
    /// there is split around the item and hung below it. The subtree is
    /// small in expectation, so this costs one root-to-leaf walk, not the
    /// split-and-merge of the whole tree.
    fn insert(&mut self, item: Item) {
        let pri = self.next_pri();
        let (mut parent, mut went_right, mut t) = (NIL, false, self.root);
        while t != NIL && self.nodes[t as usize].pri > pri {
            let n = &mut self.nodes[t as usize];
            n.size += 1;
            parent = t;
            went_right = n.item.cmp_to(item.score, item.member.as_bytes()) == Ordering::Less;
            t = if went_right { n.right } else { n.left };
        }
        let (score, member) = (item.score, item.member.clone());
        let (l, r) = self.split(t, &|it| {
            it.cmp_to(score, member.as_bytes()) == Ordering::Less
        });
        let node = Node {
            item,
            left: l,
            right: r,
            size: 1,
            pri,
        };
        let idx = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        self.update(idx);
        self.relink(parent, went_right, idx);
    }

    /// Removes the item (score, member) if present, in one descent: its
    /// two subtrees are merged in its place and the nodes above lose one
    /// descendant.
    fn remove(&mut self, score: f64, member: &[u8]) {
        let mut path: smallvec::SmallVec<[u32; 64]> = smallvec::SmallVec::new();
        let (mut parent, mut went_right, mut t) = (NIL, false, self.root);
        while t != NIL {
            let n = &self.nodes[t as usize];
            match n.item.cmp_to(score, member) {
                Ordering::Equal => break,
                ord => {
                    path.push(t);
                    parent = t;
                    went_right = ord == Ordering::Less;
                    t = if went_right { n.right } else { n.left };
                }
            }
        }
        if t == NIL {
            return;
        }
        for &p in &path {
            self.nodes[p as usize].size -= 1;
        }
        let (l, r) = (self.nodes[t as usize].left, self.nodes[t as usize].right);
        let merged = self.merge(l, r);
        self.relink(parent, went_right, merged);
        // Release the member's memory now; the slot is reused later.
        self.nodes[t as usize].item.member = Key::new(b"");
        self.free.push(t);
    }

    /// How many items come before the first one where `before` is false.
    fn count(&self, before: &dyn Fn(&Item) -> bool) -> usize {
        let mut t = self.root;
        let mut acc = 0usize;
        while t != NIL {
            let n = &self.nodes[t as usize];
            if before(&n.item) {
                acc += self.size(n.left) as usize + 1;
                t = n.right;
            } else {
                t = n.left;
            }
        }
        acc
    }

    /// The node holding the k-th item (0-based) and the path to it: the
    /// ancestors still to visit in ascending (or descending) order.
    fn path_to(&self, mut k: usize, rev: bool) -> Vec<u32> {
        let mut stack = Vec::new();
        let mut t = self.root;
        while t != NIL {
            let n = &self.nodes[t as usize];
            let (near, far) = if rev {
                (n.right, n.left)
            } else {
                (n.left, n.right)
            };
            let ls = self.size(near) as usize;
            match k.cmp(&ls) {
                Ordering::Less => {
                    stack.push(t);
                    t = near;
                }
                Ordering::Equal => {
                    stack.push(t);
                    break;
                }
                Ordering::Greater => {
                    k -= ls + 1;
                    t = far;
                }
            }
        }
        stack
    }
}

/// In-order walk of a treap from a given position.
struct TreapIter<'a> {
    tree: &'a Treap,
    stack: Vec<u32>,
    rev: bool,
}

impl<'a> Iterator for TreapIter<'a> {
    type Item = &'a Item;

    fn next(&mut self) -> Option<&'a Item> {
        let t = self.stack.pop()?;
        let n = &self.tree.nodes[t as usize];
        let mut c = if self.rev { n.left } else { n.right };
        while c != NIL {
            self.stack.push(c);
            let cn = &self.tree.nodes[c as usize];
            c = if self.rev { cn.right } else { cn.left };
        }
        Some(&n.item)
    }
}

struct Big {
    dict: Dict<Scored>,
    tree: Treap,
}

impl Clone for Big {
    fn clone(&self) -> Self {
        let mut b = Big {
            dict: Dict::new(),
            tree: self.tree.clone(),
        };
        for s in self.dict.iter() {
            let h = hash_bytes(s.member.as_bytes());
            b.dict.insert_new(
                h,
                Scored {
                    member: s.member.clone(),
                    score: s.score,
                },
            );
        }
        b
    }
}

#[derive(Clone)]
enum Enc {
    Listpack(Vec<Item>),
    Skiplist(Box<Big>),
}

/// The encoding thresholds (zset-max-listpack-entries / -value).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub entries: usize,
    pub value: usize,
}

impl Limits {
    /// Whether a set of `len` members, the longest `maxlen` bytes, may be a listpack.
    pub fn fits(&self, len: usize, maxlen: usize) -> bool {
        len <= self.entries && maxlen <= self.value
    }
}

#[derive(Clone)]
pub struct ZSetValue {
    enc: Enc,
}

impl Default for ZSetValue {
    fn default() -> Self {
        ZSetValue {
            enc: Enc::Listpack(Vec::new()),
        }
    }
}

impl std::fmt::Debug for ZSetValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter_from(0, false).map(|(m, s)| (Key::new(m), s)))
            .finish()
    }
}

impl ZSetValue {
    /// An empty set encoded as Redis's zsetTypeCreate would for `hint`
    /// members, the longest `maxlen` bytes.
    pub fn with_hint(hint: usize, maxlen: usize, lim: Limits) -> Self {
        let mut z = ZSetValue::default();
        if lim.entries == 0 || !lim.fits(hint, maxlen) {
            z.convert();
        }
        z
    }

    pub fn len(&self) -> usize {
        match &self.enc {
            Enc::Listpack(v) => v.len(),
            Enc::Skiplist(b) => b.dict.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name OBJECT ENCODING replies with.
    pub fn encoding(&self) -> &'static str {
        match &self.enc {
            Enc::Listpack(_) => "listpack",
            Enc::Skiplist(_) => "skiplist",
        }
    }

    fn convert(&mut self) {
        if let Enc::Listpack(v) = &mut self.enc {
            let items = std::mem::take(v);
            let mut big = Big {
                dict: Dict::new(),
                tree: Treap::new(),
            };
            for it in items {
                let h = hash_bytes(it.member.as_bytes());
                big.dict.insert_new(
                    h,
                    Scored {
                        member: it.member.clone(),
                        score: it.score,
                    },
                );
                big.tree.insert(it);
            }
            self.enc = Enc::Skiplist(Box::new(big));
        }
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.enc {
            Enc::Listpack(v) => v
                .iter()
                .find(|it| it.member.as_bytes() == member)
                .map(|it| it.score),
            Enc::Skiplist(b) => b.dict.get(hash_bytes(member), member).map(|s| s.score),
        }
    }

    /// Sets `member`'s score, adding it if new; converts to the skiplist
    /// encoding first when the listpack would outgrow `lim`. Returns
    /// whether the member was new.
    pub fn insert(&mut self, member: &[u8], score: f64, lim: Limits) -> bool {
        let old = self.score(member);
        if let Some(old) = old {
            if old == score {
                return false;
            }
            self.remove(member);
        } else if matches!(self.enc, Enc::Listpack(_)) && !lim.fits(self.len() + 1, member.len()) {
            self.convert();
        }
        match &mut self.enc {
            Enc::Listpack(v) => {
                // The listpack stores a score as text, and Redis writes -0 as 0 there.
                let score = score + 0.0;
                let at = v.partition_point(|it| it.cmp_to(score, member) == Ordering::Less);
                v.insert(
                    at,
                    Item {
                        score,
                        member: Key::new(member),
                    },
                );
            }
            Enc::Skiplist(b) => {
                let key = Key::new(member);
                b.dict.insert_new(
                    hash_bytes(member),
                    Scored {
                        member: key.clone(),
                        score,
                    },
                );
                b.tree.insert(Item { score, member: key });
            }
        }
        old.is_none()
    }

    /// Removes `member`; returns its score if it was there.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        match &mut self.enc {
            Enc::Listpack(v) => {
                let at = v.iter().position(|it| it.member.as_bytes() == member)?;
                Some(v.remove(at).score)
            }
            Enc::Skiplist(b) => {
                let s = b.dict.remove(hash_bytes(member), member)?;
                b.tree.remove(s.score, member);
                Some(s.score)
            }
        }
    }

    /// 0-based ascending rank of `member` and its score.
    pub fn rank(&self, member: &[u8]) -> Option<(usize, f64)> {
        let score = self.score(member)?;
        let r = self.count_before(&|s, m| cmp_pair(s, m, score, member) == Ordering::Less);
        Some((r, score))
    }

    /// How many leading members (in ascending order) satisfy `before`,
    /// which must hold for a prefix of the order.
    pub fn count_before(&self, before: &dyn Fn(f64, &[u8]) -> bool) -> usize {
        match &self.enc {
            Enc::Listpack(v) => v.partition_point(|it| before(it.score, it.member.as_bytes())),
            Enc::Skiplist(b) => b.tree.count(&|it| before(it.score, it.member.as_bytes())),
        }
    }

    /// Walks the set from ascending index `start` (or, with `rev`, from
    /// descending index `start`, i.e. ascending index len-1-start down).
    pub fn iter_from(
        &self,
        start: usize,
        rev: bool,
    ) -> Box<dyn Iterator<Item = (&[u8], f64)> + '_> {
        let len = self.len();
        if start >= len {
            return Box::new(std::iter::empty());
        }
        fn pair(it: &Item) -> (&[u8], f64) {
            (it.member.as_bytes(), it.score)
        }
        match &self.enc {
            Enc::Listpack(v) => {
                if rev {
                    Box::new(v[..len - start].iter().rev().map(pair))
                } else {
                    Box::new(v[start..].iter().map(pair))
                }
            }
            Enc::Skiplist(b) => Box::new(
                TreapIter {
                    tree: &b.tree,
                    stack: b.tree.path_to(start, rev),
                    rev,
                }
                .map(pair),
            ),
        }
    }

    /// The member at ascending index `i`.
    pub fn get(&self, i: usize) -> Option<(&[u8], f64)> {
        self.iter_from(i, false).next()
    }

    /// Removes the members at ascending indexes [start, end).
    pub fn remove_range(&mut self, start: usize, end: usize) {
        if start >= end {
            return;
        }
        if let Enc::Listpack(v) = &mut self.enc {
            v.drain(start..end.min(v.len()));
            return;
        }
        let doomed: Vec<Vec<u8>> = self
            .iter_from(start, false)
            .take(end - start)
            .map(|(m, _)| m.to_vec())
            .collect();
        for m in doomed {
            self.remove(&m);
        }
    }

    /// One ZSCAN step: calls `f` with each (member, score) the cursor names
    /// and returns the next cursor. A listpack is returned whole.
    pub fn scan(&self, cursor: u64, f: &mut dyn FnMut(&[u8], f64)) -> u64 {
        match &self.enc {
            Enc::Listpack(v) => {
                for it in v {
                    f(it.member.as_bytes(), it.score);
                }
                0
            }
            Enc::Skiplist(b) => b.dict.scan(cursor, |s| f(s.member.as_bytes(), s.score)),
        }
    }

    /// Whether this is the skiplist (full) encoding.
    pub fn is_skiplist(&self) -> bool {
        matches!(self.enc, Enc::Skiplist(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Limits = Limits {
        entries: 4,
        value: 64,
    };

    fn members(z: &ZSetValue, rev: bool) -> Vec<(Vec<u8>, f64)> {
        z.iter_from(0, rev).map(|(m, s)| (m.to_vec(), s)).collect()
    }

    /// Checks every node: subtree sizes, heap order of priorities, and
    /// search order; returns the subtree's size.
    fn check(t: &Treap, n: u32) -> u32 {
        if n == NIL {
            return 0;
        }
        let node = &t.nodes[n as usize];
        for c in [node.left, node.right] {
            if c != NIL {
                assert!(t.nodes[c as usize].pri <= node.pri, "heap order");
            }
        }
        if node.left != NIL {
            let l = &t.nodes[node.left as usize].item;
            assert_eq!(
                l.cmp_to(node.item.score, node.item.member.as_bytes()),
                Ordering::Less
            );
        }
        if node.right != NIL {
            let r = &t.nodes[node.right as usize].item;
            assert_eq!(
                r.cmp_to(node.item.score, node.item.member.as_bytes()),
                Ordering::Greater
            );
        }
        let size = 1 + check(t, node.left) + check(t, node.right);
        assert_eq!(node.size, size, "subtree size");
        size
    }

    #[test]
    fn treap_keeps_its_invariants_under_churn() {
        let mut t = Treap::new();
        let mut present: Vec<(f64, Vec<u8>)> = Vec::new();
        let mut x: u64 = 11;
        for step in 0..20_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let m = format!("m{}", (x >> 33) % 500).into_bytes();
            let s = ((x >> 20) % 40) as f64;
            if let Some(p) = present.iter().position(|(_, mm)| *mm == m) {
                let (old, _) = present.swap_remove(p);
                t.remove(old, &m);
                // Removing what is absent changes nothing.
                t.remove(old, &m);
            } else {
                t.insert(Item {
                    score: s,
                    member: Key::new(&m),
                });
                present.push((s, m));
            }
            if step % 500 == 0 {
                assert_eq!(check(&t, t.root) as usize, present.len());
            }
        }
        assert_eq!(check(&t, t.root) as usize, present.len());
    }

    #[test]
    fn matches_a_sorted_model_across_conversion() {
        let mut z = ZSetValue::default();
        let mut model: Vec<(f64, Vec<u8>)> = Vec::new();
        let mut x: u64 = 7;
        for step in 0..3000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let m = format!("m{}", (x >> 33) % 200).into_bytes();
            let s = ((x >> 20) % 50) as f64;
            if step % 3 == 0 {
                let had = z.remove(&m).is_some();
                let pos = model.iter().position(|(_, mm)| *mm == m);
                assert_eq!(had, pos.is_some());
                if let Some(p) = pos {
                    model.remove(p);
                }
            } else {
                let new = z.insert(&m, s, SMALL);
                let pos = model.iter().position(|(_, mm)| *mm == m);
                assert_eq!(new, pos.is_none());
                if let Some(p) = pos {
                    model.remove(p);
                }
                model.push((s, m.clone()));
            }
            model.sort_by(|a, b| cmp_pair(a.0, &a.1, b.0, &b.1));
            assert_eq!(z.len(), model.len());
            if step % 97 == 0 {
                let want: Vec<(Vec<u8>, f64)> =
                    model.iter().map(|(s, m)| (m.clone(), *s)).collect();
                assert_eq!(members(&z, false), want);
                let mut rev = want.clone();
                rev.reverse();
                assert_eq!(members(&z, true), rev);
                for (i, (m, s)) in want.iter().enumerate() {
                    assert_eq!(z.rank(m), Some((i, *s)));
                    assert_eq!(z.get(i).map(|(mm, _)| mm.to_vec()), Some(m.clone()));
                }
            }
        }
        assert!(z.is_skiplist());
        let n = z.len();
        z.remove_range(1, n - 1);
        assert_eq!(z.len(), 2);
    }
}
