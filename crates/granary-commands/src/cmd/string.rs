//! String commands (Redis's t_string.c).

use crate::ctx::{err, CmdError, CmdResult, Ctx};
use crate::table::{flag::*, Keys, Spec};
use crate::util::{is, parse_i64};
use granary_keyspace::{StrValue, Value};

const G: &str = "string";
const K1: Keys = Keys::Range(1, 1, 1);

pub static COMMANDS: &[Spec] = &[
    Spec::new("get", 2, READONLY | FAST, K1, get).group(G, "1.0.0").doc("Returns the string value of a key."),
    Spec::new("set", -3, WRITE | DENYOOM, K1, set).group(G, "1.0.0").doc("Sets the string value of a key, ignoring its type. The key is created if it doesn't exist."),
];

fn get(c: &mut Ctx) -> CmdResult {
    match c.store.read_str(&c.args[1])? {
        None => c.out.null(),
        Some(v) => reply_str(c.out, v),
    }
    Ok(())
}

/// Writes a string value as a bulk reply (large values without copying).
pub fn reply_str(out: &mut granary_protocol::Reply, v: &StrValue) {
    match v {
        StrValue::Heap(b) => out.bulk_shared(b),
        StrValue::Int(i) => out.bulk_int(*i),
        other => out.bulk(other.bytes(&mut itoa::Buffer::new())),
    }
}

/// The expire options shared by SET and GETEX.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum ExpireOpt {
    None,
    At(u64),
    KeepTtl,
    Persist,
}

/// Parses EX/PX/EXAT/PXAT's number into an absolute ms time, with Redis's
/// "invalid expire time in '<cmd>' command" on non-positive or overflowing values.
pub fn expire_arg(c: &Ctx, unit: &[u8], n: &[u8]) -> Result<u64, CmdError> {
    let n = parse_i64(n)?;
    let bad =
        || -> CmdError { format!("ERR invalid expire time in '{}' command", c.spec.name).into() };
    if n <= 0 {
        return Err(bad());
    }
    let (ms, absolute) = if is(unit, "EX") {
        (n.checked_mul(1000).ok_or_else(bad)?, false)
    } else if is(unit, "PX") {
        (n, false)
    } else if is(unit, "EXAT") {
        (n.checked_mul(1000).ok_or_else(bad)?, true)
    } else {
        (n, true)
    };
    if absolute {
        Ok(ms as u64)
    } else {
        (c.store.now as i64)
            .checked_add(ms)
            .map(|v| v as u64)
            .ok_or_else(bad)
    }
}

fn set(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let (mut nx, mut xx, mut get_old) = (false, false, false);
    let mut expire = ExpireOpt::None;
    let mut i = 3;
    while i < args.len() {
        let a = &args[i];
        let has_next = i + 1 < args.len();
        if is(a, "NX") && !xx {
            nx = true;
        } else if is(a, "XX") && !nx {
            xx = true;
        } else if is(a, "GET") {
            get_old = true;
        } else if is(a, "KEEPTTL") && expire == ExpireOpt::None {
            expire = ExpireOpt::KeepTtl;
        } else if ["EX", "PX", "EXAT", "PXAT"].iter().any(|u| is(a, u))
            && expire == ExpireOpt::None
            && has_next
        {
            expire = ExpireOpt::At(expire_arg(c, a, &args[i + 1])?);
            i += 1;
        } else {
            return Err(err::SYNTAX.into());
        }
        i += 1;
    }
    let key = &args[1];
    let old = if get_old {
        match c.store.str_mut(key)? {
            Some(v) => Some(v.to_bytes()),
            None => None,
        }
    } else {
        None
    };
    let exists = if get_old {
        old.is_some()
    } else if nx || xx {
        c.store.entry(key).is_some()
    } else {
        false
    };
    let blocked = (nx && exists) || (xx && !exists);
    if !blocked {
        let ttl = match expire {
            ExpireOpt::At(t) => Some(t),
            ExpireOpt::KeepTtl => c.store.expire_of(key),
            _ => None,
        };
        c.store
            .set(key, Value::Str(StrValue::from_arg(&args[2])), ttl);
    }
    if get_old {
        match old {
            Some(b) => c.out.bulk_shared(&b),
            None => c.out.null(),
        }
    } else if blocked {
        c.out.null();
    } else {
        c.out.ok();
    }
    Ok(())
}
