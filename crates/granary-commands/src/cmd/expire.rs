//! Key expiry commands (Redis's expire.c): EXPIRE, PEXPIRE, EXPIREAT,
//! PEXPIREAT with NX/XX/GT/LT, TTL, PTTL, EXPIRETIME, PEXPIRETIME, PERSIST.
//! Deleting keys whose time has come is the keyspace's job (lazily on
//! access, actively from the cron thread).

use crate::ctx::{CmdError, CmdResult, Ctx};
use crate::notify::class;
use crate::table::{flag::*, Keys, Spec};
use crate::util::{cstr, is, parse_i64};

const G: &str = "generic";
const K1: Keys = Keys::Range(1, 1, 1);
const READ_FAST: &[&str] = &["@keyspace", "@read", "@fast"];
const WRITE_FAST: &[&str] = &["@keyspace", "@write", "@fast"];

#[rustfmt::skip]
pub static COMMANDS: &[Spec] = &[
    Spec::new("expire", -3, WRITE | FAST, K1, expire).group(G, "1.0.0").acl(WRITE_FAST).doc("Sets the expiration time of a key in seconds."),
    Spec::new("pexpire", -3, WRITE | FAST, K1, pexpire).group(G, "2.6.0").acl(WRITE_FAST).doc("Sets the expiration time of a key in milliseconds."),
    Spec::new("expireat", -3, WRITE | FAST, K1, expireat).group(G, "1.2.0").acl(WRITE_FAST).doc("Sets the expiration time of a key to a Unix timestamp."),
    Spec::new("pexpireat", -3, WRITE | FAST, K1, pexpireat).group(G, "2.6.0").acl(WRITE_FAST).doc("Sets the expiration time of a key to a Unix milliseconds timestamp."),
    Spec::new("ttl", 2, READONLY | FAST, K1, ttl).group(G, "1.0.0").acl(READ_FAST).doc("Returns the expiration time in seconds of a key."),
    Spec::new("pttl", 2, READONLY | FAST, K1, pttl).group(G, "2.6.0").acl(READ_FAST).doc("Returns the expiration time in milliseconds of a key."),
    Spec::new("expiretime", 2, READONLY | FAST, K1, expiretime).group(G, "7.0.0").acl(READ_FAST).doc("Returns the expiration time of a key as a Unix timestamp."),
    Spec::new("pexpiretime", 2, READONLY | FAST, K1, pexpiretime).group(G, "7.0.0").acl(READ_FAST).doc("Returns the expiration time of a key as a Unix milliseconds timestamp."),
    Spec::new("persist", 2, WRITE | FAST, K1, persist).group(G, "2.2.0").acl(WRITE_FAST).doc("Removes the expiration time of a key."),
];

fn expire(c: &mut Ctx) -> CmdResult {
    let now = c.store.now as i64;
    expire_generic(c, now, Unit::Seconds)
}

fn pexpire(c: &mut Ctx) -> CmdResult {
    let now = c.store.now as i64;
    expire_generic(c, now, Unit::Millis)
}

fn expireat(c: &mut Ctx) -> CmdResult {
    expire_generic(c, 0, Unit::Seconds)
}

fn pexpireat(c: &mut Ctx) -> CmdResult {
    expire_generic(c, 0, Unit::Millis)
}

#[derive(Clone, Copy, PartialEq)]
enum Unit {
    Seconds,
    Millis,
}

/// The NX/XX/GT/LT conditions.
#[derive(Default, Debug, PartialEq)]
struct Cond {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

impl Cond {
    fn parse(args: &[bytes::Bytes]) -> Result<Cond, CmdError> {
        let mut c = Cond::default();
        for opt in args {
            let flag = match () {
                _ if is(opt, "nx") => &mut c.nx,
                _ if is(opt, "xx") => &mut c.xx,
                _ if is(opt, "gt") => &mut c.gt,
                _ if is(opt, "lt") => &mut c.lt,
                _ => {
                    return Err(CmdError::concat(&[
                        b"ERR Unsupported option ",
                        cstr(opt, usize::MAX),
                    ]))
                }
            };
            *flag = true;
        }
        if c.nx && (c.xx || c.gt || c.lt) {
            return Err(
                "ERR NX and XX, GT or LT options at the same time are not compatible".into(),
            );
        }
        if c.gt && c.lt {
            return Err("ERR GT and LT options at the same time are not compatible".into());
        }
        Ok(c)
    }

    /// Whether a new deadline `when` may replace `current` (None: no TTL,
    /// which counts as infinite for GT and LT).
    fn allows(&self, current: Option<i64>, when: i64) -> bool {
        match current {
            None => !self.xx && !self.gt,
            Some(cur) => {
                let gt_fails = self.gt && when <= cur;
                let lt_fails = self.lt && when >= cur;
                !self.nx && !gt_fails && !lt_fails
            }
        }
    }
}

/// The absolute deadline in ms for `n` in `unit` after `base`, or None on
/// overflow. Negative results are allowed: they delete the key.
fn deadline(n: i64, unit: Unit, base: i64) -> Option<i64> {
    let ms = match unit {
        Unit::Seconds => n.checked_mul(1000)?,
        Unit::Millis => n,
    };
    ms.checked_add(base)
}

fn expire_generic(c: &mut Ctx, base: i64, unit: Unit) -> CmdResult {
    let cond = Cond::parse(&c.args[3..])?;
    let n = parse_i64(&c.args[2])?;
    let when = deadline(n, unit, base).ok_or_else(|| {
        CmdError::from(format!(
            "ERR invalid expire time in '{}' command",
            c.spec.name
        ))
    })?;
    let key = &c.args[1];
    if c.store.entry(key).is_none() {
        c.out.int(0);
        return Ok(());
    }
    let current = c.store.expire_of(key).map(|t| t as i64);
    if !cond.allows(current, when) {
        c.out.int(0);
        return Ok(());
    }
    if when <= c.store.now as i64 {
        // A deadline already past deletes the key (Redis propagates a DEL
        // and does not count it in expired_keys).
        c.store.remove(key);
        c.notify(class::GENERIC, "del", key);
    } else {
        c.store.set_expire(key, Some(when as u64));
        c.notify(class::GENERIC, "expire", key);
    }
    c.out.int(1);
    Ok(())
}

fn ttl(c: &mut Ctx) -> CmdResult {
    ttl_generic(c, false, false)
}

fn pttl(c: &mut Ctx) -> CmdResult {
    ttl_generic(c, true, false)
}

fn expiretime(c: &mut Ctx) -> CmdResult {
    ttl_generic(c, false, true)
}

fn pexpiretime(c: &mut Ctx) -> CmdResult {
    ttl_generic(c, true, true)
}

/// -2 for a missing key, -1 without a TTL, else the remaining time (or the
/// deadline when `absolute`), in ms or rounded to seconds.
fn ttl_generic(c: &mut Ctx, ms: bool, absolute: bool) -> CmdResult {
    c.store.no_touch = true;
    let key = &c.args[1];
    if c.store.read(key).is_none() {
        c.out.int(-2);
        return Ok(());
    }
    let Some(when) = c.store.expire_of(key) else {
        c.out.int(-1);
        return Ok(());
    };
    let when = i64::try_from(when).unwrap_or(i64::MAX);
    let t = if absolute {
        when
    } else {
        when.saturating_sub(c.store.now as i64)
    }
    .max(0);
    // Rounded to the nearest second; in u64 so the deadline i64::MAX rounds
    // up as Redis's does rather than overflowing.
    c.out.int(if ms {
        t
    } else {
        ((t as u64 + 500) / 1000) as i64
    });
    Ok(())
}

fn persist(c: &mut Ctx) -> CmdResult {
    let key = &c.args[1];
    let had_ttl = c.store.entry(key).is_some() && c.store.expire_of(key).is_some();
    if had_ttl {
        c.store.set_expire(key, None);
        c.notify(class::GENERIC, "persist", key);
    }
    c.out.int(had_ttl as i64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn cond(opts: &[&str]) -> Result<Cond, CmdError> {
        let args: Vec<Bytes> = opts.iter().map(|s| Bytes::from(s.to_string())).collect();
        Cond::parse(&args)
    }

    #[test]
    fn conditions_parse_with_redis_errors() {
        assert!(cond(&["nX", "nx"]).unwrap().nx);
        let e = cond(&["nx", "gt"]).unwrap_err();
        assert_eq!(
            e.text(),
            "ERR NX and XX, GT or LT options at the same time are not compatible"
        );
        let e = cond(&["gt", "lt"]).unwrap_err();
        assert_eq!(
            e.text(),
            "ERR GT and LT options at the same time are not compatible"
        );
        assert_eq!(
            cond(&["foo"]).unwrap_err().text(),
            "ERR Unsupported option foo"
        );
    }

    #[test]
    fn conditions_decide_like_redis() {
        let gt = cond(&["gt"]).unwrap();
        assert!(!gt.allows(None, 100), "GT treats no TTL as infinite");
        assert!(gt.allows(Some(50), 100));
        assert!(!gt.allows(Some(100), 100));
        let lt = cond(&["lt"]).unwrap();
        assert!(lt.allows(None, 100));
        assert!(!lt.allows(Some(100), 100));
        assert!(!cond(&["xx"]).unwrap().allows(None, 1));
        assert!(!cond(&["nx"]).unwrap().allows(Some(5), 1));
        assert!(Cond::default().allows(Some(5), 1));
    }

    #[test]
    fn deadlines_detect_overflow() {
        assert_eq!(deadline(5, Unit::Seconds, 1000), Some(6000));
        assert_eq!(deadline(-5, Unit::Millis, 0), Some(-5));
        assert_eq!(deadline(i64::MAX / 1000 + 1, Unit::Seconds, 0), None);
        assert_eq!(deadline(i64::MAX - 10, Unit::Millis, 11), None);
        assert_eq!(deadline(i64::MIN / 1000 - 1, Unit::Seconds, 0), None);
    }
}
