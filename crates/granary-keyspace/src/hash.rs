//! The one hash function of the keyspace, seeded once per process so that
//! clients cannot choose colliding keys in advance. foldhash: fast on short
//! keys without needing AES instructions at compile time.

use std::hash::BuildHasher;
use std::sync::LazyLock;

static STATE: LazyLock<foldhash::fast::RandomState> =
    LazyLock::new(foldhash::fast::RandomState::default);

#[inline]
pub fn hash_bytes(b: &[u8]) -> u64 {
    STATE.hash_one(b)
}
