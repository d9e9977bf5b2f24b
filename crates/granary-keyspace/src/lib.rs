//! The keyspace and its value types: compact strings, the incrementally
//! rehashed dict, per-database expiry, and the sharded, lockable keyspace.

pub mod alloc;
pub mod compact;
pub mod courtesy;
pub mod db;
pub mod dict;
pub mod hash;
pub mod keyspace;
pub mod snapshot;
pub mod types;
pub mod value;

pub use compact::{canonical_i64, Key, StrValue};
pub use db::Db;
pub use dict::{Dict, DictItem};
pub use hash::hash_bytes;
pub use keyspace::{shard_of, Keyspace, Locked, Shard, SHARDS};
pub use value::{Entry, Value};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
