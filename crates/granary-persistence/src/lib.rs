//! Redis's RDB serialization (rdb.c), byte-compatible with Redis: the value
//! encodings DUMP and RESTORE exchange and RDB files are made of.
//!
//! - [`codec`]: lengths, strings (integer and LZF encodings), doubles.
//! - [`listpack`] and [`intset`]: Redis's compact blobs, read and written;
//!   [`ziplist`]: the older blob of Redis 6 and before, read only.
//! - [`value`]: a keyspace [`Value`](granary_keyspace::Value) to and from
//!   its RDB type byte and body. Writing picks the oldest encoding that can
//!   express the value (RDB 10, Redis 7.0); reading also accepts Redis 7.2's
//!   listpack sets and converts to Granary's encodings at the configured
//!   thresholds, as Redis does when loading.
//! - [`stream`]: streams (listpack nodes, consumer groups and PELs).
//! - [`hash_ttl`]: hash-field TTLs: an AUX record after the hash in
//!   files (Redis 7.0 skips it), Redis 7.4's own types in DUMP payloads.
//! - [`dump`]: the DUMP payload (value, RDB version, CRC64).
//! - [`aof`]: the append-only file's manifest and command files.
//! - [`aof_rewrite`]: a dataset as the commands that rebuild it (the AOF
//!   base without an RDB preamble).
//! - [`file`]: RDB files, written and read key by key.
//! - [`snapshot`]: a whole keyspace saved point-in-time beside running
//!   commands, and loaded at start-up.

pub mod aof;
pub mod aof_rewrite;
pub mod codec;
pub mod dump;
pub mod file;
pub mod hash_ttl;
pub mod intset;
pub mod listpack;
pub mod snapshot;
pub mod stream;
pub mod value;
pub mod ziplist;

pub use codec::Error;
pub use value::Limits;

/// The RDB version this crate writes: Redis 7.0's, so that every Redis from
/// 7.0 on (and Granary) can load what it writes.
pub const RDB_VERSION_WRITE: u16 = 10;
/// The RDB version of a DUMP payload holding a hash with field TTLs
/// (Redis 7.4's, which has the types for it).
pub const RDB_VERSION_HASH_TTLS: u16 = 12;
/// The newest RDB version accepted on load (Redis 7.4's). Payloads of a
/// newer version are refused, as Redis refuses them.
pub const RDB_VERSION_READ: u16 = 12;

/// RDB object type bytes (rdb.h).
pub mod types {
    pub const STRING: u8 = 0;
    pub const LIST: u8 = 1;
    pub const SET: u8 = 2;
    pub const ZSET: u8 = 3;
    pub const HASH: u8 = 4;
    pub const ZSET_2: u8 = 5;
    pub const HASH_ZIPMAP: u8 = 9;
    pub const LIST_ZIPLIST: u8 = 10;
    pub const SET_INTSET: u8 = 11;
    pub const ZSET_ZIPLIST: u8 = 12;
    pub const HASH_ZIPLIST: u8 = 13;
    pub const LIST_QUICKLIST: u8 = 14;
    pub const STREAM_LISTPACKS: u8 = 15;
    pub const HASH_LISTPACK: u8 = 16;
    pub const ZSET_LISTPACK: u8 = 17;
    pub const LIST_QUICKLIST_2: u8 = 18;
    pub const STREAM_LISTPACKS_2: u8 = 19;
    pub const SET_LISTPACK: u8 = 20;
    pub const STREAM_LISTPACKS_3: u8 = 21;
    /// Redis 7.4 release candidates' hashes with field TTLs.
    pub const HASH_METADATA_PRE_GA: u8 = 22;
    pub const HASH_LISTPACK_EX_PRE_GA: u8 = 23;
    /// Redis 7.4's hashes with field TTLs (RDB 12).
    pub const HASH_METADATA: u8 = 24;
    pub const HASH_LISTPACK_EX: u8 = 25;
}
