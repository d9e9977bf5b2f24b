//! HyperLogLog commands (Redis's hyperloglog.c). The representation, with
//! its sparse and dense encodings, is `granary_keyspace::types::hll`; an
//! HLL is an ordinary string value, so GET, SET, DUMP and RESTORE carry it.

use crate::cmd::string::{from_buf, take_buf};
use crate::ctx::{CmdError, CmdResult, Ctx};
use crate::notify::class;
use crate::table::{flag::*, Keys, Spec};
use crate::util::lossy;
use granary_keyspace::types::hll::{self, Corrupt};
use granary_keyspace::{StrValue, Value};
use std::sync::atomic::Ordering::Relaxed;

const G: &str = "hyperloglog";
const K1: Keys = Keys::Range(1, 1, 1);
const KALL: Keys = Keys::Range(1, -1, 1);

pub static COMMANDS: &[Spec] = &[
    Spec::new("pfadd", -2, WRITE | DENYOOM | FAST, K1, pfadd).group(G, "2.8.9").doc("Adds elements to a HyperLogLog key. Creates the key if it doesn't exist."),
    Spec::new("pfcount", -2, READONLY, KALL, pfcount).group(G, "2.8.9").doc("Returns the approximated cardinality of the set(s) observed by the HyperLogLog key(s)."),
    Spec::new("pfmerge", -2, WRITE | DENYOOM, KALL, pfmerge).group(G, "2.8.9").doc("Merges one or more HyperLogLog values into a single key."),
    Spec::new("pfdebug", 3, WRITE | DENYOOM | ADMIN, Keys::Range(2, 2, 1), pfdebug).group(G, "2.8.9").doc("Internal commands for debugging HyperLogLog values."),
    Spec::new("pfselftest", 1, ADMIN, Keys::None, pfselftest).group(G, "2.8.9").doc("An internal command for testing HyperLogLog values."),
];

const NOT_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
const CORRUPT: &str = "INVALIDOBJ Corrupted HLL object detected";

impl From<Corrupt> for CmdError {
    fn from(_: Corrupt) -> Self {
        CORRUPT.into()
    }
}

fn sparse_max(c: &Ctx) -> usize {
    c.server
        .config
        .hot
        .hll_sparse_max_bytes
        .load(Relaxed)
        .max(0) as usize
}

/// The bytes of an HLL at `key`, or None if missing; a string that is not
/// an HLL is an error, as is any other type.
fn read_hll(c: &mut Ctx, key: &[u8]) -> Result<Option<bytes::Bytes>, CmdError> {
    hll_at(c, key, true)
}

/// The HLL at `key`; `read` counts a keyspace hit or miss (and sends
/// keymiss), as Redis's lookupKeyRead does and its lookupKeyWrite does not.
fn hll_at(c: &mut Ctx, key: &[u8], read: bool) -> Result<Option<bytes::Bytes>, CmdError> {
    let found = if read {
        c.store.read_str(key)?
    } else {
        c.store.str_mut(key)?
    };
    match found {
        None => Ok(None),
        Some(StrValue::Int(_)) => Err(NOT_HLL.into()),
        Some(v) => {
            let b = v.to_bytes();
            if hll::is_hll(&b) {
                Ok(Some(b))
            } else {
                Err(NOT_HLL.into())
            }
        }
    }
}

/// Runs `f` on the HLL at `key` as a mutable buffer, creating an empty
/// one if missing (which counts as a change; `f` is told). `f` says
/// whether it changed the value; the key is marked modified if so.
fn update_hll<R>(
    c: &mut Ctx,
    key: &[u8],
    f: impl FnOnce(&mut Vec<u8>, bool) -> Result<(R, bool), CmdError>,
) -> Result<(R, bool), CmdError> {
    match c.store.str_mut(key)? {
        None => {
            let mut buf = hll::new_sparse();
            let result = f(&mut buf, true);
            // Redis adds the key before applying the update, so it stays
            // even if the update fails.
            c.store.set(key, Value::Str(from_buf(buf)), None);
            let (r, _) = result?;
            Ok((r, true))
        }
        Some(v) => {
            if matches!(v, StrValue::Int(_)) || !hll::is_hll(v.bytes(&mut itoa::Buffer::new())) {
                return Err(NOT_HLL.into());
            }
            let len = v.len();
            let mut buf = take_buf(v, len);
            let result = f(&mut buf, false);
            *v = from_buf(buf);
            let (r, changed) = result?;
            if changed {
                c.store.modified(c.store.db, key);
            }
            Ok((r, changed))
        }
    }
}

fn pfadd(c: &mut Ctx) -> CmdResult {
    let max = sparse_max(c);
    let elements = c.args[2..].to_vec();
    let (_, changed) = update_hll(c, &c.args[1].clone(), |buf, created| {
        let mut changed = created;
        for e in &elements {
            changed |= hll::add(buf, e, max)?;
        }
        if changed {
            hll::invalidate_cache(buf);
        }
        Ok(((), changed))
    })?;
    if changed {
        c.notify(class::STRING, "pfadd", &c.args[1]);
    }
    c.out.int(i64::from(changed));
    Ok(())
}

fn pfcount(c: &mut Ctx) -> CmdResult {
    if c.args.len() == 2 {
        return pfcount_one(c);
    }
    let mut max = vec![0u8; hll::REGISTERS];
    for i in 1..c.args.len() {
        let key = c.args[i].clone();
        if let Some(b) = read_hll(c, &key)? {
            hll::merge_into(&mut max, &b)?;
        }
    }
    c.out.int(hll::count_registers(&max) as i64);
    Ok(())
}

/// One key: the cached count if valid, else computed and cached (a write
/// Redis propagates, so WATCH sees it).
fn pfcount_one(c: &mut Ctx) -> CmdResult {
    let key = c.args[1].clone();
    let Some(b) = read_hll(c, &key)? else {
        c.out.int(0);
        return Ok(());
    };
    if let Some(n) = hll::cached_count(&b) {
        c.out.int(n as i64);
        return Ok(());
    }
    let n = hll::count(&b)?;
    update_hll(c, &key, |buf, _| {
        hll::set_cached_count(buf, n);
        Ok(((), true))
    })?;
    c.out.int(n as i64);
    Ok(())
}

fn pfmerge(c: &mut Ctx) -> CmdResult {
    let mut max = vec![0u8; hll::REGISTERS];
    let mut dense = false;
    // The destination is one of the sources.
    for i in 1..c.args.len() {
        let key = c.args[i].clone();
        if let Some(b) = read_hll(c, &key)? {
            dense |= !hll::is_sparse(&b);
            hll::merge_into(&mut max, &b)?;
        }
    }
    let limit = sparse_max(c);
    update_hll(c, &c.args[1].clone(), |buf, _| {
        if dense {
            hll::to_dense(buf)?;
        }
        hll::raise_registers(buf, &max, limit)?;
        Ok(((), true))
    })?;
    // Redis's PFMERGE notifies "pfadd" too.
    c.notify(class::STRING, "pfadd", &c.args[1]);
    c.out.ok();
    Ok(())
}

fn pfdebug(c: &mut Ctx) -> CmdResult {
    let sub = c.args[1].clone();
    let key = c.args[2].clone();
    // Redis's PFDEBUG looks the key up for writing: no hit/miss counted.
    if hll_at(c, &key, false)?.is_none() {
        return Err("ERR The specified key does not exist".into());
    }
    let name = lossy(&sub).to_ascii_lowercase();
    match name.as_str() {
        "getreg" => {
            update_hll(c, &key, |buf, _| {
                let was_sparse = hll::is_sparse(buf);
                hll::to_dense(buf)?;
                Ok(((), was_sparse))
            })?;
            let b = hll_at(c, &key, false)?.unwrap_or_default();
            let regs = hll::registers(&b)?;
            c.out.array(regs.len());
            for r in regs {
                c.out.int(i64::from(r));
            }
        }
        "decode" => {
            let b = hll_at(c, &key, false)?.unwrap_or_default();
            if !hll::is_sparse(&b) {
                return Err("ERR HLL encoding is not sparse".into());
            }
            let text = hll::describe_sparse(&b);
            c.out.bulk(text.as_bytes());
        }
        "encoding" => {
            let b = hll_at(c, &key, false)?.unwrap_or_default();
            c.out.simple(if hll::is_sparse(&b) {
                "sparse"
            } else {
                "dense"
            });
        }
        "todense" => {
            let (converted, _) = update_hll(c, &key, |buf, _| {
                let was_sparse = hll::is_sparse(buf);
                hll::to_dense(buf)?;
                Ok((was_sparse, was_sparse))
            })?;
            c.out.int(i64::from(converted));
        }
        _ => {
            return Err(CmdError::concat(&[
                b"ERR Unknown PFDEBUG subcommand '",
                &sub,
                b"'",
            ]))
        }
    }
    Ok(())
}

/// Checks the representation end to end: register packing, sparse and
/// dense agreeing on every update, and the estimate's error bound.
fn pfselftest(c: &mut Ctx) -> CmdResult {
    let mut sparse = hll::new_sparse();
    let mut dense = hll::new_sparse();
    hll::to_dense(&mut dense)?;
    let mut rng_state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state
    };
    const N: u64 = 100_000;
    for _ in 0..N {
        let e = next().to_le_bytes();
        let a = hll::add(&mut sparse, &e, usize::MAX)?;
        let b = hll::add(&mut dense, &e, usize::MAX)?;
        if a != b {
            return Err("ERR TESTFAILED sparse and dense updates disagree".into());
        }
    }
    if hll::registers(&sparse)? != hll::registers(&dense)? {
        return Err("ERR TESTFAILED sparse and dense registers differ".into());
    }
    let estimate = hll::count(&dense)? as f64;
    // 1.04/sqrt(m) is the standard error; allow five of them.
    let bound = 5.0 * 1.04 / (hll::REGISTERS as f64).sqrt();
    if (estimate - N as f64).abs() / N as f64 > bound {
        return Err(CmdError::concat(&[
            b"ERR TESTFAILED estimate ",
            estimate.to_string().as_bytes(),
            b" too far from ",
            N.to_string().as_bytes(),
        ]));
    }
    c.out.ok();
    Ok(())
}
