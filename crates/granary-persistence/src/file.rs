//! The RDB file (rdb.c rdbSaveRio / rdbLoadRio): `REDIS0010`, AUX fields,
//! then per database SELECTDB and RESIZEDB followed by its keys (each with
//! an optional EXPIRETIME_MS and IDLE or FREQ record), then EOF and the
//! CRC64 of all before it (0 when the writer had rdbchecksum no).
//!
//! Both directions stream: [`Writer`] appends key by key, [`read`] calls
//! back once per key, so neither holds a whole file in memory.

use crate::codec::{put_len, put_string, put_string_with, Error, Input};
use crate::hash_ttl;
use crate::value::{self, Limits};
use crate::{RDB_VERSION_READ, RDB_VERSION_WRITE};
use granary_keyspace::Value;
use std::io::{self, Read, Write};

static CRC64: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);

/// Opcodes (rdb.h).
mod op {
    pub const SLOT_INFO: u8 = 244;
    pub const FUNCTION2: u8 = 245;
    pub const FUNCTION_PRE_GA: u8 = 246;
    pub const MODULE_AUX: u8 = 247;
    pub const IDLE: u8 = 248;
    pub const FREQ: u8 = 249;
    pub const AUX: u8 = 250;
    pub const RESIZEDB: u8 = 251;
    pub const EXPIRETIME_MS: u8 = 252;
    pub const EXPIRETIME: u8 = 253;
    pub const SELECTDB: u8 = 254;
    pub const EOF: u8 = 255;
}

// ---------------------------------------------------------------- writing

/// Writes an RDB file key by key.
pub struct Writer<W: Write> {
    out: W,
    /// None with rdbchecksum no: the file ends in 8 zero bytes, which
    /// loaders take for "not checksummed".
    digest: Option<crc::Digest<'static, u64>>,
    scratch: Vec<u8>,
    lim: Limits,
}

impl<W: Write> Writer<W> {
    /// Writes the header and the AUX fields Redis writes (`redis-ver` is
    /// the Redis version Granary is compatible with).
    pub fn new(out: W, lim: Limits, ctime_secs: u64) -> io::Result<Self> {
        Self::with_checksum(out, lim, ctime_secs, true)
    }

    /// `new`; without `checksum` (rdbchecksum no) nothing is computed and
    /// the checksum written is 0, as Redis writes it.
    pub fn with_checksum(out: W, lim: Limits, ctime_secs: u64, checksum: bool) -> io::Result<Self> {
        let mut w = Writer {
            out,
            digest: checksum.then(|| CRC64.digest()),
            scratch: Vec::new(),
            lim,
        };
        w.scratch
            .extend_from_slice(format!("REDIS{RDB_VERSION_WRITE:04}").as_bytes());
        w.aux(b"redis-ver", b"7.4.0");
        w.aux(b"redis-bits", b"64");
        w.aux(b"ctime", ctime_secs.to_string().as_bytes());
        w.aux(b"used-mem", b"0");
        w.aux(b"aof-base", b"0");
        w.flush_scratch()?;
        Ok(w)
    }

    fn aux(&mut self, key: &[u8], value: &[u8]) {
        self.scratch.push(op::AUX);
        put_string(&mut self.scratch, key);
        put_string(&mut self.scratch, value);
    }

    fn flush_scratch(&mut self) -> io::Result<()> {
        if let Some(d) = &mut self.digest {
            d.update(&self.scratch);
        }
        self.out.write_all(&self.scratch)?;
        self.scratch.clear();
        Ok(())
    }

    /// Starts database `db`, which holds `keys` keys, `expires` of them with
    /// a TTL (RESIZEDB, a sizing hint for the loader).
    pub fn select_db(&mut self, db: u64, keys: u64, expires: u64) -> io::Result<()> {
        self.scratch.push(op::SELECTDB);
        put_len(&mut self.scratch, db);
        self.scratch.push(op::RESIZEDB);
        put_len(&mut self.scratch, keys);
        put_len(&mut self.scratch, expires);
        self.flush_scratch()
    }

    /// Writes a function library's code (FUNCTION2, before the databases).
    pub fn function(&mut self, code: &[u8]) -> io::Result<()> {
        self.scratch.push(op::FUNCTION2);
        put_string(&mut self.scratch, code);
        self.flush_scratch()
    }

    /// Appends a key of the current database, with its expire time (ms).
    pub fn key(&mut self, key: &[u8], value: &Value, expire_ms: Option<u64>) -> io::Result<()> {
        record(&mut self.scratch, key, value, expire_ms, &self.lim);
        self.flush_scratch()
    }

    /// Appends records of the current database made by [`record`].
    pub fn records(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(d) = &mut self.digest {
            d.update(bytes);
        }
        self.out.write_all(bytes)
    }

    /// Writes EOF and the checksum (0 when disabled); returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.scratch.push(op::EOF);
        self.flush_scratch()?;
        let crc = self.digest.take().map_or(0, |d| d.finalize());
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// How recently or often a key was used, as Redis saves it before the key
/// under an LRU or LFU maxmemory-policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Seconds since the last access (IDLE, LRU policies).
    Idle(u64),
    /// The LFU counter (FREQ, LFU policies).
    Freq(u8),
}

/// Appends one key's record (optional EXPIRETIME_MS, type, key, value) to
/// `out`, as [`Writer::key`] writes it.
pub fn record(out: &mut Vec<u8>, key: &[u8], value: &Value, expire_ms: Option<u64>, lim: &Limits) {
    record_with_access(out, key, value, expire_ms, None, lim)
}

/// `record`, with the key's IDLE or FREQ record after its expire time.
pub fn record_with_access(
    out: &mut Vec<u8>,
    key: &[u8],
    value: &Value,
    expire_ms: Option<u64>,
    access: Option<Access>,
    lim: &Limits,
) {
    if let Some(t) = expire_ms {
        out.push(op::EXPIRETIME_MS);
        out.extend_from_slice(&t.to_le_bytes());
    }
    match access {
        Some(Access::Idle(secs)) => {
            out.push(op::IDLE);
            put_len(out, secs);
        }
        Some(Access::Freq(f)) => {
            out.push(op::FREQ);
            out.push(f);
        }
        None => {}
    }
    // The type byte comes before the key, the body after it.
    let start = out.len();
    value::write(out, value, lim);
    let body = out.split_off(start + 1);
    put_string(out, key);
    out.extend_from_slice(&body);
    // Field TTLs follow the hash as an AUX record, which Redis 7.0 skips.
    if let Value::Hash(h) = value {
        if let Some(payload) = hash_ttl::aux_payload(key, h) {
            out.push(op::AUX);
            put_string(out, hash_ttl::AUX_KEY);
            put_string_with(lim.compress, out, &payload);
        }
    }
}

// ---------------------------------------------------------------- reading

/// One key read from a file.
pub struct Item {
    pub db: u64,
    pub key: Vec<u8>,
    pub value: Value,
    /// Absolute expire time in ms.
    pub expire_ms: Option<u64>,
    /// The IDLE or FREQ record before the key, if any.
    pub access: Option<Access>,
}

/// What went wrong reading a file.
#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    Format(Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

impl From<Error> for ReadError {
    fn from(e: Error) -> Self {
        ReadError::Format(e)
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Format(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ReadError {}

/// Passes what it reads to a CRC64 digest (unless the checksum is not
/// verified), and keeps the last I/O error (the value decoder only knows
/// that its input ended).
struct Checksummed<R> {
    inner: R,
    digest: Option<crc::Digest<'static, u64>>,
    failed: Option<io::Error>,
}

impl<R: Read> Read for Checksummed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                if let Some(d) = &mut self.digest {
                    d.update(&buf[..n]);
                }
                Ok(n)
            }
            // read_exact retries an interrupted read: not a failure.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let kind = e.kind();
                self.failed = Some(e);
                Err(kind.into())
            }
        }
    }
}

/// What one record of the file was.
enum Record {
    Eof,
    Other,
}

/// Reads an RDB file of at most `len` bytes (a bound for allocations; pass
/// the file's size), calling `each` for every key in order. Values take
/// Granary's encodings for `lim`. Functions (FUNCTION2) are skipped; module
/// data is refused. Returns the RDB version.
pub fn read<R: Read>(
    r: R,
    len: u64,
    lim: &Limits,
    each: impl FnMut(Item),
) -> Result<u16, ReadError> {
    read_with_functions(r, len, lim, true, each, &mut Vec::new()).map(|f| f.version)
}

/// What the whole file said about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInfo {
    pub version: u16,
    /// The checksum was 0: the writer had rdbchecksum no, and nothing
    /// was checked (Redis logs that it performed no check).
    pub checksum_disabled: bool,
}

/// `read`, verifying the checksum only if `verify` (rdbchecksum yes: with
/// no, Redis neither computes nor checks it on load), and collecting the
/// code of the function libraries the file holds (FUNCTION2 records) into
/// `functions`.
pub fn read_with_functions<R: Read>(
    r: R,
    len: u64,
    lim: &Limits,
    verify: bool,
    mut each: impl FnMut(Item),
    functions: &mut Vec<Vec<u8>>,
) -> Result<FileInfo, ReadError> {
    let mut src = Checksummed {
        inner: r,
        digest: verify.then(|| CRC64.digest()),
        failed: None,
    };
    let mut header = [0u8; 9];
    src.read_exact(&mut header)?;
    let version = std::str::from_utf8(&header[5..])
        .ok()
        .and_then(|v| v.parse::<u16>().ok())
        .filter(|v| &header[..5] == b"REDIS" && (1..=RDB_VERSION_READ).contains(v))
        .ok_or(Error("not an RDB file of a supported version"))?;
    let mut state = State {
        db: 0,
        expire: None,
        access: None,
        left: len.saturating_sub(9),
        functions,
        pending: None,
    };
    loop {
        let mut input = Input::stream(&mut src, state.left);
        let record = read_record(&mut input, &mut state, lim, &mut each);
        state.left = input.remaining_u64();
        if let Some(e) = src.failed.take() {
            return Err(ReadError::Io(e));
        }
        if let Record::Eof = record? {
            break;
        }
    }
    // Version 5 on end with a checksum; 0 means the writer disabled it.
    let mut checksum_disabled = false;
    if version >= 5 {
        let computed = src.digest.take().map(|d| d.finalize());
        let mut stored = [0u8; 8];
        src.inner.read_exact(&mut stored)?;
        let stored = u64::from_le_bytes(stored);
        checksum_disabled = stored == 0 && computed.is_some();
        if stored != 0 && computed.is_some_and(|c| c != stored) {
            return Err(Error("RDB checksum mismatch").into());
        }
    }
    Ok(FileInfo {
        version,
        checksum_disabled,
    })
}

/// Where the reader is: the database selected, the expire time and
/// IDLE/FREQ record read for the next key, how many bytes the file may still hold, the function
/// libraries read so far, and the last key read, held back until the
/// next record shows whether field TTLs for it follow.
struct State<'f> {
    db: u64,
    expire: Option<u64>,
    access: Option<Access>,
    left: u64,
    functions: &'f mut Vec<Vec<u8>>,
    pending: Option<Item>,
}

/// Reads one opcode and what belongs to it.
fn read_record(
    input: &mut Input,
    st: &mut State,
    lim: &Limits,
    each: &mut impl FnMut(Item),
) -> Result<Record, Error> {
    let opcode = input.u8()?;
    if opcode != op::AUX {
        if let Some(item) = st.pending.take() {
            each(item);
        }
    }
    match opcode {
        op::EOF => return Ok(Record::Eof),
        op::AUX => {
            let key = input.string()?;
            let value = input.string()?;
            if key == hash_ttl::AUX_KEY {
                let Some(item) = &mut st.pending else {
                    return Err(Error("hash field TTLs without a hash before them"));
                };
                hash_ttl::apply_aux(&value, &item.key, &mut item.value)?;
            }
        }
        op::SELECTDB => st.db = input.length()?,
        op::RESIZEDB => {
            input.length()?;
            input.length()?;
        }
        op::SLOT_INFO => {
            for _ in 0..3 {
                input.length()?;
            }
        }
        op::EXPIRETIME_MS => st.expire = Some(u64::from_le_bytes(input.array()?)),
        op::EXPIRETIME => st.expire = Some(u64::from(u32::from_le_bytes(input.array()?)) * 1000),
        op::IDLE => st.access = Some(Access::Idle(input.length()?)),
        op::FREQ => st.access = Some(Access::Freq(input.u8()?)),
        op::FUNCTION2 => {
            let code = input.string()?;
            st.functions.push(code);
        }
        op::FUNCTION_PRE_GA | op::MODULE_AUX => {
            return Err(Error("modules and pre-GA functions are not supported"))
        }
        t => {
            let key = input.string()?;
            let value = value::read_body(t, input, lim)?;
            st.pending = Some(Item {
                db: st.db,
                key,
                value,
                expire_ms: st.expire.take(),
                access: st.access.take(),
            });
        }
    }
    Ok(Record::Other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use granary_keyspace::StrValue;

    fn lim() -> Limits {
        crate::value::tests::lim()
    }

    #[test]
    fn write_then_read() {
        let mut w = Writer::new(Vec::new(), lim(), 1_700_000_000).unwrap();
        w.select_db(0, 2, 1).unwrap();
        w.key(b"a", &Value::Str(StrValue::from_bytes(b"1")), None)
            .unwrap();
        w.key(b"b", &Value::Str(StrValue::from_bytes(b"xyz")), Some(99))
            .unwrap();
        w.select_db(3, 1, 0).unwrap();
        w.key(b"c", &Value::Str(StrValue::from_bytes(b"")), None)
            .unwrap();
        let file = w.finish().unwrap();
        assert!(file.starts_with(b"REDIS0010\xfa\x09redis-ver"));
        let mut got = Vec::new();
        let v = read(&file[..], file.len() as u64, &lim(), |it| {
            got.push((it.db, it.key, it.value.encoding(), it.expire_ms))
        })
        .unwrap();
        assert_eq!(v, 10);
        assert_eq!(
            got,
            [
                (0, b"a".to_vec(), "int", None),
                (0, b"b".to_vec(), "embstr", Some(99)),
                (3, b"c".to_vec(), "embstr", None)
            ]
        );
        // Any damage: an error, never a panic.
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x41;
            assert!(read(&bad[..], bad.len() as u64, &lim(), |_| {}).is_err());
            assert!(read(&file[..i], i as u64, &lim(), |_| {}).is_err());
        }
    }

    #[test]
    fn a_zero_checksum_is_not_checked() {
        let mut w = Writer::with_checksum(Vec::new(), lim(), 0, false).unwrap();
        w.select_db(0, 1, 0).unwrap();
        w.key(b"k", &Value::Str(StrValue::from_bytes(b"v")), None)
            .unwrap();
        let file = w.finish().unwrap();
        assert_eq!(file[file.len() - 8..], [0; 8]);
        for verify in [true, false] {
            let info = read_with_functions(
                &file[..],
                file.len() as u64,
                &lim(),
                verify,
                |_| {},
                &mut Vec::new(),
            )
            .unwrap();
            assert_eq!(info.checksum_disabled, verify);
        }
        // With verification off, a wrong checksum is not noticed either.
        let mut checked = Writer::new(Vec::new(), lim(), 0).unwrap().finish().unwrap();
        let n = checked.len();
        checked[n - 1] ^= 1;
        assert!(read(&checked[..], n as u64, &lim(), |_| {}).is_err());
        read_with_functions(
            &checked[..],
            n as u64,
            &lim(),
            false,
            |_| {},
            &mut Vec::new(),
        )
        .unwrap();
    }

    #[test]
    fn idle_and_freq_records_come_back_with_their_key() {
        let mut w = Writer::new(Vec::new(), lim(), 0).unwrap();
        w.select_db(0, 3, 1).unwrap();
        let v = Value::Str(StrValue::from_bytes(b"v"));
        let mut rec = Vec::new();
        record_with_access(&mut rec, b"f", &v, Some(7), Some(Access::Freq(200)), &lim());
        record_with_access(&mut rec, b"i", &v, None, Some(Access::Idle(70_000)), &lim());
        record(&mut rec, b"n", &v, None, &lim());
        w.records(&rec).unwrap();
        let file = w.finish().unwrap();
        let mut got = Vec::new();
        read(&file[..], file.len() as u64, &lim(), |it| {
            got.push((it.key, it.expire_ms, it.access))
        })
        .unwrap();
        assert_eq!(
            got,
            [
                (b"f".to_vec(), Some(7), Some(Access::Freq(200))),
                (b"i".to_vec(), None, Some(Access::Idle(70_000))),
                (b"n".to_vec(), None, None)
            ]
        );
    }

    /// A reader that fails after `ok` bytes.
    struct Failing<'a> {
        data: &'a [u8],
        ok: usize,
    }

    impl Read for Failing<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.ok == 0 {
                return Err(io::Error::other("disk on fire"));
            }
            let n = buf.len().min(self.ok).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            self.ok -= n;
            Ok(n)
        }
    }

    #[test]
    fn io_errors_are_reported_as_such() {
        let mut w = Writer::new(Vec::new(), lim(), 0).unwrap();
        w.select_db(0, 1, 0).unwrap();
        w.key(b"k", &Value::Str(StrValue::from_vec(vec![b'x'; 100])), None)
            .unwrap();
        let file = w.finish().unwrap();
        let r = Failing {
            data: &file,
            ok: file.len() - 20,
        };
        match read(r, file.len() as u64, &lim(), |_| {}) {
            Err(ReadError::Io(e)) => assert_eq!(e.to_string(), "disk on fire"),
            other => panic!("{:?}", other.map(|_| ())),
        }
    }
}
