//! The one hash function of the keyspace, seeded once per process so that
//! clients cannot choose colliding keys in advance.

use std::sync::OnceLock;

static STATE: OnceLock<ahash::RandomState> = OnceLock::new();

#[inline]
pub fn hash_bytes(b: &[u8]) -> u64 {
    STATE.get_or_init(ahash::RandomState::new).hash_one(b)
}
