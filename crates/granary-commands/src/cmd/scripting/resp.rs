//! A command's reply, as encoded for the script's protocol version, read
//! back into Lua values with Redis's rules (script_lua.c,
//! redisProtocolToLuaType): integer → number, bulk → string, null → false
//! (RESP2) or nil (RESP3), status → {ok=...}, error → {err=...}, array →
//! table; RESP3 map → {map={...}}, set → {set={k=true}}, double →
//! {double=n}, boolean → boolean, big number → {big_number=s}, verbatim →
//! {verbatim_string={format=..., string=...}}.

use mlua::{Lua, Result, Table, Value};

/// Parses the first reply in `buf` into a Lua value. The bytes come from
/// our own reply writer, so malformed input only yields a Lua error.
pub fn to_lua(lua: &Lua, buf: &[u8]) -> Result<Value> {
    let mut pos = 0;
    parse(lua, buf, &mut pos)
}

fn bad() -> mlua::Error {
    mlua::Error::runtime("malformed reply")
}

/// The line starting at `*pos` (without CRLF), advancing past it.
fn line<'b>(buf: &'b [u8], pos: &mut usize) -> Result<&'b [u8]> {
    let rest = buf.get(*pos..).ok_or_else(bad)?;
    let end = rest.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
    *pos += end + 2;
    Ok(&rest[..end])
}

fn number(s: &[u8]) -> Result<i64> {
    std::str::from_utf8(s)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)
}

fn bulk<'b>(buf: &'b [u8], pos: &mut usize, len: i64) -> Result<&'b [u8]> {
    let len = usize::try_from(len).map_err(|_| bad())?;
    let data = buf.get(*pos..*pos + len).ok_or_else(bad)?;
    *pos += len + 2;
    Ok(data)
}

fn single(lua: &Lua, key: &str, v: impl mlua::IntoLua) -> Result<Value> {
    let t = lua.create_table()?;
    t.raw_set(key, v)?;
    Ok(Value::Table(t))
}

fn parse(lua: &Lua, buf: &[u8], pos: &mut usize) -> Result<Value> {
    let kind = *buf.get(*pos).ok_or_else(bad)?;
    *pos += 1;
    let head = line(buf, pos)?;
    Ok(match kind {
        b':' => Value::Number(number(head)? as f64),
        b'$' => match number(head)? {
            -1 => Value::Boolean(false),
            n => Value::String(lua.create_string(bulk(buf, pos, n)?)?),
        },
        b'+' => single(lua, "ok", lua.create_string(head)?)?,
        b'-' => single(lua, "err", lua.create_string(head)?)?,
        b'*' | b'>' => match number(head)? {
            -1 => Value::Boolean(false),
            n => Value::Table(array(lua, buf, pos, n)?),
        },
        b'%' => {
            let n = number(head)?;
            let t = lua.create_table()?;
            for _ in 0..n {
                let k = parse(lua, buf, pos)?;
                let v = parse(lua, buf, pos)?;
                t.raw_set(k, v)?;
            }
            single(lua, "map", t)?
        }
        b'~' => {
            let n = number(head)?;
            let t = lua.create_table()?;
            for _ in 0..n {
                let k = parse(lua, buf, pos)?;
                t.raw_set(k, true)?;
            }
            single(lua, "set", t)?
        }
        b'_' => Value::Nil,
        b'#' => Value::Boolean(head == b"t"),
        b',' => {
            let d = crate::util::parse_f64_opt(head).ok_or_else(bad)?;
            single(lua, "double", d)?
        }
        b'(' => single(lua, "big_number", lua.create_string(head)?)?,
        b'=' => {
            let data = bulk(buf, pos, number(head)?)?;
            let (format, text) = if data.len() >= 4 {
                data.split_at(3)
            } else {
                (&b"txt"[..], &b":"[..])
            };
            let v = lua.create_table()?;
            v.raw_set("format", lua.create_string(format)?)?;
            v.raw_set("string", lua.create_string(&text[1..])?)?;
            single(lua, "verbatim_string", v)?
        }
        // An attribute precedes the reply it describes: scripts ignore it.
        b'|' => {
            let n = number(head)?;
            for _ in 0..2 * n {
                parse(lua, buf, pos)?;
            }
            parse(lua, buf, pos)?
        }
        _ => return Err(bad()),
    })
}

fn array(lua: &Lua, buf: &[u8], pos: &mut usize, n: i64) -> Result<Table> {
    let t = lua.create_table()?;
    for i in 1..=n {
        let v = parse(lua, buf, pos)?;
        t.raw_set(i, v)?;
    }
    Ok(t)
}
