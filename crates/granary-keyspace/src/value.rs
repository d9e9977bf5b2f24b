//! Stored values and keyspace entries.

use crate::compact::{Key, StrValue};
use crate::dict::DictItem;
use crate::types::{HashValue, ListValue, SetValue, Stream, ZSetValue};

/// A value of one of Redis's types, 24 bytes inside its entry. A hash is
/// held directly (its small form is one exact-size listpack buffer, so a
/// small hash costs a single allocation besides its entry); the other
/// collections are boxed to fit.
#[derive(Clone)]
pub enum Value {
    Str(StrValue),
    Hash(HashValue),
    List(Box<ListValue>),
    Set(Box<SetValue>),
    ZSet(Box<ZSetValue>),
    Stream(Box<Stream>),
}

impl Value {
    /// The name TYPE replies with.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Hash(_) => "hash",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
        }
    }

    /// The name OBJECT ENCODING replies with.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(s) => s.encoding(),
            Value::Hash(h) => h.encoding(),
            Value::List(l) => l.encoding(),
            Value::Set(s) => s.encoding(),
            Value::ZSet(z) => z.encoding(),
            Value::Stream(_) => "stream",
        }
    }

    /// Rough number of allocations, used to decide whether a delete is
    /// freed in the background (UNLINK, FLUSHALL ASYNC).
    pub fn free_effort(&self) -> usize {
        match self {
            Value::Str(_) => 1,
            Value::Hash(h) => h.len(),
            Value::List(l) => l.len(),
            Value::Set(s) => s.len(),
            Value::ZSet(z) => z.len(),
            Value::Stream(s) => s.free_effort(),
        }
    }
}

/// Expiry times are stored in 46 bits of milliseconds (until year 4199);
/// this value means "later than that", with the exact time kept aside.
pub(crate) const FAR_EXPIRE: u64 = (1 << 46) - 1;
const EXPIRE_MASK: u64 = (1 << 46) - 1;
/// Bit 46: write-behind has this key pending (see `Db::mark_pending`).
const PENDING: u64 = 1 << 46;
/// Bit 47: the snapshot mark (see `snapshot.rs`).
const MARK: u64 = 1 << 47;
const CLOCK_SHIFT: u32 = 48;

/// One key of the keyspace: 64 bytes with its hash-chain link, TTL included.
pub struct Entry {
    key: Key,
    pub value: Value,
    /// Bits 0..46: expire time in ms (0 = none, FAR_EXPIRE = see side table);
    /// bit 46: write-behind pending; bit 47: snapshot mark; bits 48..64:
    /// access clock for OBJECT
    /// IDLETIME/FREQ and eviction.
    meta: u64,
}

impl DictItem for Entry {
    #[inline]
    fn key(&self) -> &[u8] {
        self.key.as_bytes()
    }
}

impl Entry {
    pub(crate) fn new(key: &[u8], value: Value) -> Self {
        Entry {
            key: Key::new(key),
            value,
            meta: 0,
        }
    }

    #[inline]
    pub fn key(&self) -> &[u8] {
        self.key.as_bytes()
    }

    /// Raw 46-bit expire field (0 = no TTL).
    #[inline]
    pub(crate) fn expire_field(&self) -> u64 {
        self.meta & EXPIRE_MASK
    }

    pub(crate) fn set_expire_field(&mut self, v: u64) {
        self.meta = (self.meta & !EXPIRE_MASK) | (v & EXPIRE_MASK);
    }

    pub fn access_clock(&self) -> u16 {
        (self.meta >> CLOCK_SHIFT) as u16
    }

    pub fn set_access_clock(&mut self, c: u16) {
        self.meta = (self.meta & !(0xffff << CLOCK_SHIFT)) | ((c as u64) << CLOCK_SHIFT);
    }

    /// The snapshot mark: equal to the snapshot's current parity once the
    /// running (or last) save has this entry's value.
    #[inline]
    pub(crate) fn mark(&self) -> bool {
        self.meta & MARK != 0
    }

    #[inline]
    pub(crate) fn set_mark(&mut self, m: bool) {
        self.meta = (self.meta & !MARK) | if m { MARK } else { 0 };
    }

    /// Write-behind has this key pending: a write to it needs no new mark.
    /// Set only together with queueing the key, cleared when the flusher
    /// reads it; an entry created under this key starts without it.
    #[inline]
    pub(crate) fn pending(&self) -> bool {
        self.meta & PENDING != 0
    }

    #[inline]
    pub(crate) fn set_pending(&mut self, p: bool) {
        self.meta = (self.meta & !PENDING) | if p { PENDING } else { 0 };
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn entry_is_compact() {
        assert_eq!(std::mem::size_of::<super::Value>(), 24);
        assert_eq!(std::mem::size_of::<super::Entry>(), 56);
    }
}
