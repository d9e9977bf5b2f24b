//! A chained hash table with incremental rehashing and Redis's SCAN cursor.
//!
//! Why not hashbrown: growing a hashbrown table moves every entry at once
//! (a 10M-key table stalls for hundreds of milliseconds), and open addressing
//! gives no cursor that survives a resize. This table keeps two bucket arrays
//! while it grows or shrinks and moves a few buckets per operation, like
//! Redis's dict.c, so no single command pays for a whole rehash; and its
//! bucket index is `hash & mask`, so the reverse-binary cursor of SCAN returns
//! every element present for the whole iteration at least once.

use crate::hash::hash_bytes;
use smallvec::SmallVec;

/// What a dict stores: anything that can name its key.
pub trait DictItem {
    fn key(&self) -> &[u8];
}

type Link<T> = Option<Box<Node<T>>>;

struct Node<T> {
    next: Link<T>,
    item: T,
}

struct Table<T> {
    buckets: Vec<Link<T>>,
    used: usize,
}

impl<T> Table<T> {
    fn empty() -> Self {
        Table {
            buckets: Vec::new(),
            used: 0,
        }
    }

    fn with_size(n: usize) -> Self {
        let mut buckets = Vec::with_capacity(n);
        buckets.resize_with(n, || None);
        Table { buckets, used: 0 }
    }

    fn mask(&self) -> usize {
        self.buckets.len().wrapping_sub(1)
    }

    fn is_allocated(&self) -> bool {
        !self.buckets.is_empty()
    }
}

impl<T> Drop for Table<T> {
    fn drop(&mut self) {
        // Iterative, so a long chain cannot overflow the stack.
        for b in self.buckets.iter_mut() {
            let mut link = b.take();
            while let Some(mut n) = link {
                link = n.next.take();
            }
        }
    }
}

const MIN_SIZE: usize = 4;
/// Buckets moved per write while rehashing (reads move one).
const REHASH_STEP: usize = 1;

pub struct Dict<T> {
    /// t[0] is the live table; t[1] is allocated only while rehashing into it.
    t: [Table<T>; 2],
    /// Next bucket of t[0] to move while rehashing.
    rehash_idx: usize,
    len: usize,
}

impl<T: DictItem> Default for Dict<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: DictItem> Dict<T> {
    pub fn new() -> Self {
        Dict {
            t: [Table::empty(), Table::empty()],
            rehash_idx: 0,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_rehashing(&self) -> bool {
        self.t[1].is_allocated()
    }

    /// Total buckets (both tables), for tests and INFO.
    pub fn buckets(&self) -> usize {
        self.t[0].buckets.len() + self.t[1].buckets.len()
    }

    fn chain_find<'a>(mut link: &'a Link<T>, key: &[u8]) -> Option<&'a T> {
        while let Some(n) = link {
            if n.item.key() == key {
                return Some(&n.item);
            }
            link = &n.next;
        }
        None
    }

    pub fn get(&self, hash: u64, key: &[u8]) -> Option<&T> {
        for (i, t) in self.t.iter().enumerate() {
            if !t.is_allocated() {
                break;
            }
            let idx = hash as usize & t.mask();
            if i == 0 && self.is_rehashing() && idx < self.rehash_idx {
                continue;
            }
            if let Some(found) = Self::chain_find(&t.buckets[idx], key) {
                return Some(found);
            }
        }
        None
    }

    /// Finds the link that holds `key` (or the empty link ending its chain).
    fn slot_mut(&mut self, hash: u64, key: &[u8]) -> Option<&mut Link<T>> {
        let rehashing = self.is_rehashing();
        let rehash_idx = self.rehash_idx;
        for (i, t) in self.t.iter_mut().enumerate() {
            if !t.is_allocated() {
                break;
            }
            let idx = hash as usize & t.mask();
            if i == 0 && rehashing && idx < rehash_idx {
                continue;
            }
            let mut link = &mut t.buckets[idx];
            while link.as_ref().is_some_and(|n| n.item.key() != key) {
                link = &mut link.as_mut().unwrap().next;
            }
            if link.is_some() {
                return Some(link);
            }
        }
        None
    }

    pub fn get_mut(&mut self, hash: u64, key: &[u8]) -> Option<&mut T> {
        self.step();
        self.slot_mut(hash, key)
            .and_then(|l| l.as_mut())
            .map(|n| &mut n.item)
    }

    /// Inserts an item whose key must not be present (check with `get`).
    pub fn insert_new(&mut self, hash: u64, item: T) -> &mut T {
        self.step();
        self.grow_if_needed();
        let ti = if self.is_rehashing() { 1 } else { 0 };
        let t = &mut self.t[ti];
        let idx = hash as usize & t.mask();
        let next = t.buckets[idx].take();
        t.used += 1;
        self.len += 1;
        let slot = &mut t.buckets[idx];
        &mut slot.insert(Box::new(Node { next, item })).item
    }

    pub fn remove(&mut self, hash: u64, key: &[u8]) -> Option<T> {
        self.step();
        let mut table_of_hit = None;
        for ti in 0..2 {
            let t = &self.t[ti];
            if !t.is_allocated() {
                break;
            }
            let idx = hash as usize & t.mask();
            if ti == 0 && self.is_rehashing() && idx < self.rehash_idx {
                continue;
            }
            if Self::chain_find(&t.buckets[idx], key).is_some() {
                table_of_hit = Some(ti);
                break;
            }
        }
        let ti = table_of_hit?;
        let t = &mut self.t[ti];
        let idx = hash as usize & t.mask();
        let mut link = &mut t.buckets[idx];
        while link.as_ref().is_some_and(|n| n.item.key() != key) {
            link = &mut link.as_mut().unwrap().next;
        }
        let mut node = link.take()?;
        *link = node.next.take();
        t.used -= 1;
        self.len -= 1;
        self.shrink_if_needed();
        Some(node.item)
    }

    /// Removes the first item of bucket chain matching `pred` among the items
    /// with this hash (used by the expiry index, which knows hashes, not keys).
    pub fn remove_by_hash(&mut self, hash: u64, mut pred: impl FnMut(&T) -> bool) -> Option<T> {
        let key = {
            let mut found: Option<Vec<u8>> = None;
            self.for_each_with_hash(hash, |item| {
                if found.is_none() && pred(item) {
                    found = Some(item.key().to_vec());
                }
            });
            found?
        };
        self.remove(hash, &key)
    }

    fn for_each_with_hash(&self, hash: u64, mut f: impl FnMut(&T)) {
        for (i, t) in self.t.iter().enumerate() {
            if !t.is_allocated() {
                break;
            }
            let idx = hash as usize & t.mask();
            if i == 0 && self.is_rehashing() && idx < self.rehash_idx {
                continue;
            }
            let mut link = &t.buckets[idx];
            while let Some(n) = link {
                if hash_bytes(n.item.key()) == hash {
                    f(&n.item);
                }
                link = &n.next;
            }
        }
    }

    /// Finds an item by hash and predicate without knowing its key.
    pub fn find_by_hash(&self, hash: u64, mut pred: impl FnMut(&T) -> bool) -> Option<&T> {
        for (i, t) in self.t.iter().enumerate() {
            if !t.is_allocated() {
                break;
            }
            let idx = hash as usize & t.mask();
            if i == 0 && self.is_rehashing() && idx < self.rehash_idx {
                continue;
            }
            let mut link = &t.buckets[idx];
            while let Some(n) = link {
                if pred(&n.item) && hash_bytes(n.item.key()) == hash {
                    return Some(&n.item);
                }
                link = &n.next;
            }
        }
        None
    }

    fn grow_if_needed(&mut self) {
        if self.is_rehashing() {
            return;
        }
        if !self.t[0].is_allocated() {
            self.t[0] = Table::with_size(MIN_SIZE);
        } else if self.len >= self.t[0].buckets.len() {
            self.start_rehash((self.len + 1).next_power_of_two());
        }
    }

    fn shrink_if_needed(&mut self) {
        if self.is_rehashing() {
            return;
        }
        let size = self.t[0].buckets.len();
        if self.len == 0 {
            self.t[0] = Table::empty();
        } else if size > MIN_SIZE && self.len * 8 < size {
            self.start_rehash(self.len.next_power_of_two().max(MIN_SIZE));
        }
    }

    fn start_rehash(&mut self, size: usize) {
        self.t[1] = Table::with_size(size);
        self.rehash_idx = 0;
    }

    /// Moves up to `n` buckets to the new table; visits at most 10n empty
    /// buckets. Returns true while more rehashing remains.
    pub fn rehash(&mut self, n: usize) -> bool {
        if !self.is_rehashing() {
            return false;
        }
        let mut empty_visits = n * 10;
        let mut moved = 0;
        let [t0, t1] = &mut self.t;
        let mask1 = t1.mask();
        while moved < n && t0.used > 0 {
            while t0.buckets[self.rehash_idx].is_none() {
                self.rehash_idx += 1;
                empty_visits -= 1;
                if empty_visits == 0 {
                    return true;
                }
            }
            let mut link = t0.buckets[self.rehash_idx].take();
            while let Some(mut node) = link {
                link = node.next.take();
                let idx = hash_bytes(node.item.key()) as usize & mask1;
                node.next = t1.buckets[idx].take();
                t1.buckets[idx] = Some(node);
                t0.used -= 1;
                t1.used += 1;
            }
            self.rehash_idx += 1;
            moved += 1;
        }
        if t0.used == 0 {
            self.t.swap(0, 1);
            self.t[1] = Table::empty();
            self.rehash_idx = 0;
            // Deletes during a shrink may call for another one.
            self.shrink_if_needed();
            return self.is_rehashing();
        }
        true
    }

    fn step(&mut self) {
        if self.is_rehashing() {
            self.rehash(REHASH_STEP);
        }
    }

    /// One SCAN step (Redis's dictScan): calls `f` for every item in the
    /// buckets named by `cursor` and returns the next cursor, 0 when done.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&T)) -> u64 {
        let (buckets, next) = self.scan_buckets(cursor);
        for (t, i) in buckets {
            let mut link = &self.t[t].buckets[i];
            while let Some(n) = link {
                f(&n.item);
                link = &n.next;
            }
        }
        next
    }

    /// `scan` with mutable access to the items (a snapshot's walk marks
    /// the entries it has saved).
    pub fn scan_mut(&mut self, cursor: u64, mut f: impl FnMut(&mut T)) -> u64 {
        let (buckets, next) = self.scan_buckets(cursor);
        for (t, i) in buckets {
            let mut link = &mut self.t[t].buckets[i];
            while let Some(n) = link {
                f(&mut n.item);
                link = &mut n.next;
            }
        }
        next
    }

    /// The (table, bucket) pairs one SCAN step at `cursor` visits, and the
    /// next cursor: the reverse-binary increment of dictScan, which visits
    /// every bucket of the smaller table and its expansions in the larger
    /// one during a rehash.
    fn scan_buckets(&self, cursor: u64) -> (SmallVec<[(usize, usize); 4]>, u64) {
        let mut out = SmallVec::new();
        if self.len == 0 {
            return (out, 0);
        }
        let mut v = cursor;
        if !self.is_rehashing() {
            let m0 = self.t[0].mask() as u64;
            out.push((0, (v & m0) as usize));
            v |= !m0;
            v = v.reverse_bits().wrapping_add(1).reverse_bits();
        } else {
            let (small, large) = if self.t[0].buckets.len() <= self.t[1].buckets.len() {
                (0, 1)
            } else {
                (1, 0)
            };
            let m0 = self.t[small].mask() as u64;
            let m1 = self.t[large].mask() as u64;
            out.push((small, (v & m0) as usize));
            loop {
                out.push((large, (v & m1) as usize));
                v |= !m1;
                v = v.reverse_bits().wrapping_add(1).reverse_bits();
                if v & (m0 ^ m1) == 0 {
                    break;
                }
            }
        }
        (out, v)
    }

    /// A random item, uniform over buckets then over the chain.
    pub fn random(&self, rng: &mut impl rand::Rng) -> Option<&T> {
        if self.len == 0 {
            return None;
        }
        loop {
            let (t, idx) = if self.is_rehashing() {
                let n0 = self.t[0].buckets.len() - self.rehash_idx;
                let i = rng.gen_range(0..n0 + self.t[1].buckets.len());
                if i < n0 {
                    (&self.t[0], self.rehash_idx + i)
                } else {
                    (&self.t[1], i - n0)
                }
            } else {
                (&self.t[0], rng.gen_range(0..self.t[0].buckets.len()))
            };
            if let Some(head) = &t.buckets[idx] {
                let mut len = 0;
                let mut link = &t.buckets[idx];
                while let Some(n) = link {
                    len += 1;
                    link = &n.next;
                }
                let mut pick = rng.gen_range(0..len);
                let mut node = head;
                while pick > 0 {
                    node = node.next.as_ref().unwrap();
                    pick -= 1;
                }
                return Some(&node.item);
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.t
            .iter()
            .flat_map(|t| t.buckets.iter())
            .flat_map(|head| {
                let mut link = head.as_deref();
                std::iter::from_fn(move || {
                    let n = link?;
                    link = n.next.as_deref();
                    Some(&n.item)
                })
            })
    }

    /// Takes all items out, leaving the dict empty (FLUSHDB hands the old
    /// tables to a background thread to drop).
    pub fn take(&mut self) -> Dict<T> {
        std::mem::take(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    struct Item(Vec<u8>);
    impl DictItem for Item {
        fn key(&self) -> &[u8] {
            &self.0
        }
    }

    fn k(i: u32) -> Vec<u8> {
        format!("key:{i}").into_bytes()
    }

    fn ins(d: &mut Dict<Item>, i: u32) {
        let key = k(i);
        let h = hash_bytes(&key);
        if d.get(h, &key).is_none() {
            d.insert_new(h, Item(key));
        }
    }

    fn del(d: &mut Dict<Item>, i: u32) -> bool {
        let key = k(i);
        d.remove(hash_bytes(&key), &key).is_some()
    }

    #[test]
    fn insert_get_remove_through_rehash() {
        let mut d = Dict::new();
        for i in 0..10_000 {
            ins(&mut d, i);
        }
        assert_eq!(d.len(), 10_000);
        for i in 0..10_000 {
            let key = k(i);
            assert!(d.get(hash_bytes(&key), &key).is_some(), "{i}");
        }
        for i in 0..9_990 {
            assert!(del(&mut d, i));
        }
        assert!(!del(&mut d, 5));
        assert_eq!(d.len(), 10);
        assert_eq!(d.iter().count(), 10);
        while d.rehash(100) {}
        assert!(d.buckets() <= 64, "shrunk: {}", d.buckets());
    }

    #[test]
    fn rehash_is_incremental() {
        let mut d = Dict::new();
        for i in 0..(1 << 16) {
            ins(&mut d, i);
        }
        // Crossing the next power of two starts a rehash that single inserts
        // do not finish at once.
        ins(&mut d, 1 << 16);
        assert!(d.is_rehashing());
        ins(&mut d, (1 << 16) + 1);
        assert!(d.is_rehashing());
    }

    /// Every key present for the whole scan is returned, while the table grows
    /// and shrinks under it.
    #[test]
    fn scan_guarantee_under_resize() {
        for (grow, shrink) in [(true, false), (false, true), (true, true)] {
            let mut d = Dict::new();
            for i in 0..5_000 {
                ins(&mut d, i);
            }
            let stable: HashSet<Vec<u8>> = (0..1_000).map(k).collect();
            let mut seen = HashSet::new();
            let mut cursor = 0;
            let mut round = 0u32;
            loop {
                cursor = d.scan(cursor, |it| {
                    seen.insert(it.0.clone());
                });
                round += 1;
                // The table doubles or shrinks several times over the scan.
                if grow && round < 20_000 {
                    ins(&mut d, 100_000 + round);
                    ins(&mut d, 200_000 + round);
                }
                if shrink && round < 2_000 {
                    del(&mut d, 1_000 + 2 * round);
                    del(&mut d, 1_001 + 2 * round);
                }
                if cursor == 0 {
                    break;
                }
            }
            let missing: Vec<_> = stable.difference(&seen).collect();
            assert!(missing.is_empty(), "missing {} keys", missing.len());
        }
    }

    #[test]
    fn random_returns_members() {
        let mut d = Dict::new();
        for i in 0..100 {
            ins(&mut d, i);
        }
        let mut rng = rand::thread_rng();
        let mut seen = HashSet::new();
        for _ in 0..2_000 {
            seen.insert(d.random(&mut rng).unwrap().0.clone());
        }
        assert!(seen.len() > 90);
    }

    proptest::proptest! {
        #[test]
        fn behaves_like_a_set(ops in proptest::collection::vec((proptest::bool::ANY, 0u32..300), 0..2000)) {
            let mut d = Dict::new();
            let mut model = HashSet::new();
            for (add, i) in ops {
                if add { ins(&mut d, i); model.insert(i); }
                else { proptest::prop_assert_eq!(del(&mut d, i), model.remove(&i)); }
                proptest::prop_assert_eq!(d.len(), model.len());
            }
            let got: HashSet<Vec<u8>> = d.iter().map(|it| it.0.clone()).collect();
            let want: HashSet<Vec<u8>> = model.iter().map(|&i| k(i)).collect();
            proptest::prop_assert_eq!(got, want);
        }
    }
}
