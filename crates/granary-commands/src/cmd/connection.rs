//! Connection commands: PING, ECHO, QUIT, RESET, AUTH, HELLO, SELECT.

use crate::ctx::{err, Action, CmdError, CmdResult, Ctx};
use crate::table::{flag::*, Keys, Spec};
use crate::util::{cstr, is, lossy, parse_i64};
use std::sync::atomic::Ordering::Relaxed;

const G: &str = "connection";

pub static COMMANDS: &[Spec] = &[
    Spec::new("ping", -1, FAST, Keys::None, ping)
        .group(G, "1.0.0")
        .doc("Returns the server's liveliness response."),
    Spec::new("echo", 2, LOADING | STALE | FAST, Keys::None, echo)
        .group(G, "1.0.0")
        .doc("Returns the given string."),
    Spec::new(
        "quit",
        -1,
        ALLOW_BUSY | NO_AUTH | FAST | STALE | LOADING | NOSCRIPT,
        Keys::None,
        quit,
    )
    .group(G, "1.0.0")
    .doc("Closes the connection."),
    Spec::new(
        "reset",
        1,
        NO_AUTH | FAST | STALE | LOADING | NOSCRIPT | ALLOW_BUSY,
        Keys::None,
        reset,
    )
    .group(G, "6.2.0")
    .doc("Resets the connection."),
    Spec::new(
        "auth",
        -2,
        NO_AUTH | FAST | STALE | LOADING | NOSCRIPT | ALLOW_BUSY,
        Keys::None,
        auth,
    )
    .group(G, "1.0.0")
    .doc("Authenticates the connection."),
    Spec::new(
        "hello",
        -1,
        NO_AUTH | FAST | STALE | LOADING | NOSCRIPT | ALLOW_BUSY,
        Keys::None,
        hello,
    )
    .group(G, "6.0.0")
    .doc("Handshakes with the Redis server."),
    Spec::new("select", 2, FAST | LOADING | STALE, Keys::None, select)
        .group(G, "1.0.0")
        .doc("Changes the selected database."),
];

fn ping(c: &mut Ctx) -> CmdResult {
    if c.client.in_subscribed_mode() && c.args.len() <= 2 {
        // Subscribed RESP2 clients get a message-shaped reply (pubsub.c).
        c.out.array(2);
        c.out.bulk(b"pong");
        c.out.bulk(c.args.get(1).map_or(&b""[..], |a| &a[..]));
        return Ok(());
    }
    match c.args.len() {
        1 => c.out.simple("PONG"),
        2 => c.out.bulk(&c.args[1]),
        _ => return Err(c.arity_error()),
    }
    Ok(())
}

fn echo(c: &mut Ctx) -> CmdResult {
    c.out.bulk(&c.args[1]);
    Ok(())
}

fn quit(c: &mut Ctx) -> CmdResult {
    c.out.ok();
    c.action = Some(Action::Close);
    Ok(())
}

fn reset(c: &mut Ctx) -> CmdResult {
    crate::tracking::disable(c.server, c.client);
    crate::pubsub::unsubscribe_all(c.server, c.client);
    c.client.select(0);
    c.client.resp3 = false;
    c.out.set_resp3(false);
    c.client.info.resp.store(2, Relaxed);
    c.client.no_touch = false;
    c.client.info.no_touch.store(false, Relaxed);
    c.client.info.no_evict.store(false, Relaxed);
    *c.client.info.name.lock() = None;
    if c.server.config.hot.has_password.load(Relaxed) {
        set_auth(c, false);
    }
    c.out.simple("RESET");
    Ok(())
}

fn set_auth(c: &mut Ctx, on: bool) {
    c.client.authenticated = on;
    c.client.info.authenticated.store(on, Relaxed);
}

/// Checks a username/password pair against requirepass (the default user;
/// ACL users arrive with ACL support).
fn check_password(c: &Ctx, user: &[u8], pass: &[u8]) -> bool {
    let required = c.server.config.get("requirepass").unwrap_or_default();
    let user_ok = is(user, "default");
    user_ok && (required.is_empty() || required.as_bytes() == pass)
}

fn auth(c: &mut Ctx) -> CmdResult {
    let (user, pass) = match c.args.len() {
        2 => (&b"default"[..], &c.args[1][..]),
        3 => (&c.args[1][..], &c.args[2][..]),
        _ => return Err(crate::ctx::err::SYNTAX.into()),
    };
    if c.args.len() == 2 && !c.server.config.hot.has_password.load(Relaxed) {
        return Err("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?".into());
    }
    if !check_password(c, user, pass) {
        return Err(err::WRONGPASS.into());
    }
    set_auth(c, true);
    c.out.ok();
    Ok(())
}

fn hello(c: &mut Ctx) -> CmdResult {
    let args = c.args;
    let mut proto = None;
    let mut i = 1;
    if args.len() > 1 {
        let v = parse_i64(&args[1])
            .map_err(|_| "ERR Protocol version is not an integer or out of range")?;
        if !(2..=3).contains(&v) {
            return Err("NOPROTO unsupported protocol version".into());
        }
        proto = Some(v);
        i = 2;
    }
    let mut creds = None;
    let mut name = None;
    while i < args.len() {
        let more = args.len() - i - 1;
        if is(&args[i], "AUTH") && more >= 2 {
            creds = Some((&args[i + 1], &args[i + 2]));
            i += 3;
        } else if is(&args[i], "SETNAME") && more >= 1 {
            name = Some(&args[i + 1]);
            i += 2;
        } else {
            return Err(CmdError::concat(&[
                b"ERR Syntax error in HELLO option '",
                cstr(&args[i], usize::MAX),
                b"'",
            ]));
        }
    }
    if let Some((user, pass)) = creds {
        if !check_password(c, user, pass) {
            return Err(err::WRONGPASS.into());
        }
        set_auth(c, true);
    }
    if !c.client.authenticated && c.server.config.hot.has_password.load(Relaxed) {
        return Err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time".into());
    }
    if let Some(name) = name {
        super::client::validate_name(name)?;
        *c.client.info.name.lock() = if name.is_empty() {
            None
        } else {
            Some(lossy(name))
        };
    }
    if let Some(v) = proto {
        c.client.resp3 = v == 3;
        c.out.set_resp3(v == 3);
        c.client.info.resp.store(v as usize, Relaxed);
    }
    let out = &mut *c.out;
    out.map(7);
    out.bulk(b"server");
    out.bulk(b"redis");
    out.bulk(b"version");
    out.bulk(crate::REDIS_VERSION.as_bytes());
    out.bulk(b"proto");
    out.int(if c.client.resp3 { 3 } else { 2 });
    out.bulk(b"id");
    out.int(c.client.id() as i64);
    out.bulk(b"mode");
    out.bulk(b"standalone");
    out.bulk(b"role");
    out.bulk(b"master");
    out.bulk(b"modules");
    out.array(0);
    Ok(())
}

fn select(c: &mut Ctx) -> CmdResult {
    // Redis reads the index as a C int: beyond its range it is no integer.
    let db = parse_i64(&c.args[1])?;
    if i32::try_from(db).is_err() {
        return Err(
            "ERR value is out of range, value must between -2147483648 and 2147483647".into(),
        );
    }
    if db < 0 || db as usize >= c.server.keyspace.databases() {
        return Err(err::DB_RANGE.into());
    }
    c.client.select(db as usize);
    c.out.ok();
    Ok(())
}
