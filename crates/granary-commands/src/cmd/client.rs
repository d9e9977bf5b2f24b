//! CLIENT subcommands (Redis's networking.c): identity (ID, SETNAME,
//! GETNAME, SETINFO), introspection (LIST, INFO), control (KILL, PAUSE,
//! UNPAUSE, NO-EVICT, NO-TOUCH), and the client-side-caching subcommands,
//! which answer as a client with tracking off until tracking lands.

use super::server::reply_help;
use crate::client::ClientInfo;
use crate::ctx::{err, Action, CmdError, CmdResult, Ctx};
use crate::server::Pause;
use crate::table::{flag::*, Keys, Spec, Table};
use crate::util::{cstr, is, lossy, parse_i64, parse_i64_opt};
use granary_keyspace::now_ms;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

const G: &str = "connection";
const CONN: u32 = NOSCRIPT | LOADING | STALE;
const ADM: u32 = ADMIN | NOSCRIPT | LOADING | STALE;

const fn sub(name: &'static str, arity: i32, flags: u32, h: crate::table::Handler) -> Spec {
    Spec::new(name, arity, flags, Keys::None, h)
}

pub static COMMANDS: &[Spec] = &[Spec::container("client", SUBCOMMANDS)
    .group(G, "2.4.0")
    .doc("A container for client connection commands.")];

static SUBCOMMANDS: &[Spec] = &[
    sub("client|id", 2, CONN, id)
        .group(G, "5.0.0")
        .doc("Returns the unique client ID of the connection."),
    sub("client|setname", 3, CONN, setname)
        .group(G, "2.6.9")
        .doc("Sets the connection name."),
    sub("client|getname", 2, CONN, getname)
        .group(G, "2.6.9")
        .doc("Returns the name of the connection."),
    sub("client|setinfo", 4, CONN, setinfo)
        .group(G, "7.2.0")
        .doc("Sets information specific to the client or connection."),
    sub("client|list", -2, ADM, list)
        .group(G, "2.4.0")
        .doc("Lists open connections."),
    sub("client|info", 2, CONN, info)
        .group(G, "6.2.0")
        .doc("Returns information about the connection."),
    sub("client|kill", -3, ADM, kill)
        .group(G, "2.4.0")
        .doc("Terminates open connections."),
    sub("client|pause", -3, ADM, pause)
        .group(G, "3.0.0")
        .doc("Suspends commands processing."),
    sub("client|unpause", 2, ADM, unpause)
        .group(G, "6.2.0")
        .doc("Resumes processing commands from paused clients."),
    sub("client|no-evict", 3, ADM, no_evict)
        .group(G, "7.0.0")
        .doc("Sets the client eviction mode of the connection."),
    sub("client|no-touch", 3, CONN, no_touch)
        .group(G, "7.2.0")
        .doc("Controls whether commands sent by the client affect the LRU/LFU of accessed keys."),
    sub("client|reply", 3, CONN, reply)
        .group(G, "3.2.0")
        .doc("Instructs the server whether to reply to commands."),
    sub("client|unblock", -3, ADM, unblock)
        .group(G, "5.0.0")
        .doc("Unblocks a client blocked by a blocking command from a different connection."),
    sub("client|tracking", -3, CONN, tracking)
        .group(G, "6.0.0")
        .doc("Controls server-assisted client-side caching for the connection."),
    sub("client|caching", 3, CONN, caching)
        .group(G, "6.0.0")
        .doc("Instructs the server whether to track the keys in the next request."),
    sub("client|getredir", 2, CONN, getredir)
        .group(G, "6.0.0")
        .doc(
        "Returns the client ID to which the connection's tracking notifications are redirected.",
    ),
    sub("client|trackinginfo", 2, CONN, trackinginfo)
        .group(G, "6.2.0")
        .doc("Returns information about server-assisted client-side caching for the connection."),
    sub("client|help", 2, LOADING | STALE, help)
        .group(G, "5.0.0")
        .doc("Returns helpful text about the different subcommands."),
];

/// Client names may not contain spaces, newlines or special characters.
pub fn validate_name(name: &[u8]) -> Result<(), CmdError> {
    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err(
            "ERR Client names cannot contain spaces, newlines or special characters.".into(),
        );
    }
    Ok(())
}

/// An optional text attribute: empty clears it.
fn non_empty(v: &[u8]) -> Option<String> {
    (!v.is_empty()).then(|| lossy(v))
}

fn id(c: &mut Ctx) -> CmdResult {
    c.out.int(c.client.id() as i64);
    Ok(())
}

fn setname(c: &mut Ctx) -> CmdResult {
    validate_name(&c.args[2])?;
    *c.client.info.name.lock() = non_empty(&c.args[2]);
    c.out.ok();
    Ok(())
}

fn getname(c: &mut Ctx) -> CmdResult {
    match c.client.info.name.lock().as_deref() {
        Some(n) => c.out.bulk(n.as_bytes()),
        None => c.out.null(),
    }
    Ok(())
}

fn setinfo(c: &mut Ctx) -> CmdResult {
    let attr = &c.args[2];
    let value = &c.args[3];
    let slot = if is(attr, "LIB-NAME") {
        &c.client.info.lib_name
    } else if is(attr, "LIB-VER") {
        &c.client.info.lib_ver
    } else {
        return Err(CmdError::concat(&[
            b"ERR Unrecognized option '",
            cstr(attr, usize::MAX),
            b"'",
        ]));
    };
    if value.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err(format!(
            "ERR {} cannot contain spaces, newlines or special characters.",
            lossy(attr)
        )
        .into());
    }
    *slot.lock() = non_empty(value);
    c.out.ok();
    Ok(())
}

/// The CLIENT LIST / CLIENT INFO line for one client (without newline).
/// `user` is known only for the calling client; others use the default
/// user, the only one until ACLs land.
pub fn client_line(info: &ClientInfo, user: &str, now: u64) -> String {
    let mut flags = String::new();
    let multi = info.multi.load(Relaxed);
    let (sub, psub, ssub) = (
        info.sub.load(Relaxed),
        info.psub.load(Relaxed),
        info.ssub.load(Relaxed),
    );
    if sub + psub + ssub > 0 {
        flags.push('P');
    }
    if multi >= 0 {
        flags.push('x');
    }
    if crate::blocking::is_blocked(info.id) {
        flags.push('b');
    }
    flags.push_str(crate::tracking::list_flags(info));
    if info.dirty_cas.load(Relaxed) {
        flags.push('d');
    }
    if info.no_evict.load(Relaxed) {
        flags.push('e');
    }
    if info.no_touch.load(Relaxed) {
        flags.push('T');
    }
    if flags.is_empty() {
        flags.push('N');
    }
    let cmd = Table::get()
        .all()
        .get(info.last_cmd.load(Relaxed))
        .map_or("NULL", |s| s.name);
    let qbuf = info.query_buf.load(Relaxed);
    let obuf = info.out_buf.load(Relaxed);
    let name = info.name.lock().clone().unwrap_or_default();
    let lib_name = info.lib_name.lock().clone().unwrap_or_default();
    let lib_ver = info.lib_ver.lock().clone().unwrap_or_default();
    format!(
        "id={} addr={} laddr={} fd={} name={name} age={} idle={} flags={flags} db={} \
         sub={sub} psub={psub} ssub={ssub} multi={multi} watch={} qbuf={qbuf} qbuf-free=0 argv-mem=0 multi-mem=0 \
         rbs={obuf} rbp=0 obl=0 oll=0 omem=0 tot-mem={} events=r cmd={cmd} user={user} \
         redir={} resp={} lib-name={lib_name} lib-ver={lib_ver}",
        info.id,
        info.addr,
        info.laddr,
        info.fd.load(Relaxed),
        now.saturating_sub(info.created_ms) / 1000,
        now.saturating_sub(info.last_active_ms.load(Relaxed)) / 1000,
        info.db.load(Relaxed),
        // Redis drops a client's watches once one of them fires.
        if info.dirty_cas.load(Relaxed) {
            0
        } else {
            info.watching.load(Relaxed)
        },
        qbuf + obuf,
        info.tracking_redir.load(Relaxed),
        info.resp.load(Relaxed),
    )
}

/// Client types for LIST and KILL TYPE; every Granary client is "normal".
fn is_normal_type(arg: &[u8]) -> Result<bool, CmdError> {
    if is(arg, "normal") {
        Ok(true)
    } else if ["master", "replica", "slave", "pubsub"]
        .iter()
        .any(|t| is(arg, t))
    {
        Ok(false)
    } else {
        Err(CmdError::concat(&[
            b"ERR Unknown client type '",
            cstr(arg, usize::MAX),
            b"'",
        ]))
    }
}

fn list(c: &mut Ctx) -> CmdResult {
    let args = &c.args[2..];
    let mut clients = c.server.clients.all();
    if args.len() == 2 && is(&args[0], "TYPE") {
        if !is_normal_type(&args[1])? {
            clients.clear();
        }
    } else if args.len() >= 2 && is(&args[0], "ID") {
        let mut ids = vec![];
        for a in &args[1..] {
            match parse_i64_opt(a) {
                Some(n) if n > 0 => ids.push(n as u64),
                _ => return Err("ERR Invalid client ID".into()),
            }
        }
        clients.retain(|x| ids.contains(&x.id));
    } else if !args.is_empty() {
        return Err(err::SYNTAX.into());
    }
    let now = now_ms();
    let mut text = String::new();
    for info in &clients {
        let user = if info.id == c.client.id() {
            c.client.user.as_str()
        } else {
            "default"
        };
        text.push_str(&client_line(info, user, now));
        text.push('\n');
    }
    c.out.verbatim(&text);
    Ok(())
}

fn info(c: &mut Ctx) -> CmdResult {
    let mut line = client_line(&c.client.info, &c.client.user, now_ms());
    line.push('\n');
    c.out.verbatim(&line);
    Ok(())
}

/// CLIENT KILL's filters (the new form); None fields match every client.
#[derive(Default)]
struct KillFilter {
    id: Option<u64>,
    addr: Option<String>,
    laddr: Option<String>,
    normal: Option<bool>,
    user: Option<String>,
    max_age: Option<u64>,
    skip_me: bool,
}

impl KillFilter {
    fn parse(args: &[bytes::Bytes]) -> Result<KillFilter, CmdError> {
        let mut f = KillFilter {
            skip_me: true,
            ..Default::default()
        };
        if !args.len().is_multiple_of(2) {
            return Err(err::SYNTAX.into());
        }
        for pair in args.chunks(2) {
            let (opt, v) = (&pair[0], &pair[1]);
            if is(opt, "ID") {
                match parse_i64_opt(v) {
                    Some(n) if n > 0 => f.id = Some(n as u64),
                    _ => return Err("ERR client-id should be greater than 0".into()),
                }
            } else if is(opt, "TYPE") {
                f.normal = Some(is_normal_type(v)?);
            } else if is(opt, "ADDR") {
                f.addr = Some(lossy(v));
            } else if is(opt, "LADDR") {
                f.laddr = Some(lossy(v));
            } else if is(opt, "USER") {
                if !is(v, "default") {
                    return Err(CmdError::concat(&[
                        b"ERR No such user '",
                        cstr(v, usize::MAX),
                        b"'",
                    ]));
                }
                f.user = Some(lossy(v));
            } else if is(opt, "SKIPME") {
                f.skip_me = if is(v, "yes") {
                    true
                } else if is(v, "no") {
                    false
                } else {
                    return Err(err::SYNTAX.into());
                };
            } else if is(opt, "MAXAGE") {
                let n = parse_i64(v).map_err(|_| "ERR maxage is not an integer or out of range")?;
                if n <= 0 {
                    return Err("ERR maxage should be greater than 0".into());
                }
                f.max_age = Some(n as u64);
            } else {
                return Err(err::SYNTAX.into());
            }
        }
        Ok(f)
    }

    fn matches(&self, info: &ClientInfo, me: u64, now: u64) -> bool {
        let age = now.saturating_sub(info.created_ms) / 1000;
        self.id.is_none_or(|id| id == info.id)
            && self.addr.as_ref().is_none_or(|a| *a == info.addr)
            && self.laddr.as_ref().is_none_or(|a| *a == info.laddr)
            && self.normal.is_none_or(|n| n)
            && self.max_age.is_none_or(|m| age >= m)
            && !(self.skip_me && info.id == me)
    }
}

/// Kills `victims`; if the caller is among them its connection closes
/// after this reply.
fn kill_all(c: &mut Ctx, victims: &[Arc<ClientInfo>]) {
    for v in victims {
        if v.id == c.client.id() {
            c.action = Some(Action::Close);
        } else {
            v.kill();
        }
    }
}

fn kill(c: &mut Ctx) -> CmdResult {
    let me = c.client.id();
    if c.args.len() == 3 {
        // Old form: CLIENT KILL addr:port.
        let addr = &c.args[2];
        let victims: Vec<_> = c
            .server
            .clients
            .all()
            .into_iter()
            .filter(|x| x.addr.as_bytes() == &addr[..])
            .collect();
        if victims.is_empty() {
            return Err("ERR No such client".into());
        }
        kill_all(c, &victims);
        c.out.ok();
        return Ok(());
    }
    let filter = KillFilter::parse(&c.args[2..])?;
    let now = now_ms();
    let victims: Vec<_> = c
        .server
        .clients
        .all()
        .into_iter()
        .filter(|x| filter.matches(x, me, now))
        .collect();
    kill_all(c, &victims);
    c.out.int(victims.len() as i64);
    Ok(())
}

fn pause(c: &mut Ctx) -> CmdResult {
    let timeout =
        parse_i64(&c.args[2]).map_err(|_| "ERR timeout is not an integer or out of range")?;
    if timeout < 0 {
        return Err("ERR timeout is negative".into());
    }
    let writes_only = match c.args.get(3) {
        None => false,
        Some(m) if is(m, "WRITE") => true,
        Some(m) if is(m, "ALL") => false,
        Some(_) => return Err("ERR CLIENT PAUSE mode must be WRITE or ALL".into()),
    };
    if c.args.len() > 4 {
        return Err(err::SYNTAX.into());
    }
    let now = now_ms();
    let until = now.saturating_add(timeout as u64);
    // Like Redis, an active pause is only ever extended and made stricter.
    c.server.pause.send_modify(|p| {
        let active = p.until_ms > now;
        *p = Pause {
            until_ms: if active { p.until_ms.max(until) } else { until },
            writes_only: writes_only && (!active || p.writes_only),
        };
    });
    c.out.ok();
    Ok(())
}

fn unpause(c: &mut Ctx) -> CmdResult {
    c.server.pause.send_replace(Pause::default());
    c.out.ok();
    Ok(())
}

/// Parses ON / OFF.
fn on_off(arg: &[u8]) -> Result<bool, CmdError> {
    if is(arg, "ON") {
        Ok(true)
    } else if is(arg, "OFF") {
        Ok(false)
    } else {
        Err(err::SYNTAX.into())
    }
}

fn no_evict(c: &mut Ctx) -> CmdResult {
    let on = on_off(&c.args[2])?;
    c.client.info.no_evict.store(on, Relaxed);
    c.out.ok();
    Ok(())
}

fn no_touch(c: &mut Ctx) -> CmdResult {
    let on = on_off(&c.args[2])?;
    c.client.no_touch = on;
    c.client.info.no_touch.store(on, Relaxed);
    c.out.ok();
    Ok(())
}

fn reply(c: &mut Ctx) -> CmdResult {
    let mode = &c.args[2];
    if is(mode, "ON") {
        c.out.ok();
        Ok(())
    } else if is(mode, "OFF") || is(mode, "SKIP") {
        Err("ERR CLIENT REPLY OFF and SKIP are not supported yet".into())
    } else {
        Err(err::SYNTAX.into())
    }
}

/// CLIENT UNBLOCK id [TIMEOUT|ERROR]: ends the wait of a client blocked in
/// BLPOP & co.; 1 if it was blocked. Redis checks the reason before the id.
fn unblock(c: &mut Ctx) -> CmdResult {
    let error = match c.args.len() {
        3 => false,
        4 if is(&c.args[3], "TIMEOUT") => false,
        4 if is(&c.args[3], "ERROR") => true,
        4 => return Err("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR".into()),
        // Redis quotes the subcommand as typed (%.128s).
        _ => {
            return Err(CmdError::concat(&[
                b"ERR unknown subcommand or wrong number of arguments for '",
                cstr(&c.args[1], 128),
                b"'. Try CLIENT HELP.",
            ]))
        }
    };
    let id = parse_i64(&c.args[2])?;
    let unblocked = u64::try_from(id).is_ok_and(|id| crate::blocking::unblock(id, error));
    c.out.int(i64::from(unblocked));
    Ok(())
}

fn tracking(c: &mut Ctx) -> CmdResult {
    crate::tracking::tracking_command(c)
}

fn caching(c: &mut Ctx) -> CmdResult {
    crate::tracking::caching_command(c)
}

fn getredir(c: &mut Ctx) -> CmdResult {
    crate::tracking::getredir_command(c)
}

fn trackinginfo(c: &mut Ctx) -> CmdResult {
    crate::tracking::trackinginfo_command(c)
}

fn help(c: &mut Ctx) -> CmdResult {
    reply_help(
        c.out,
        "CLIENT",
        &[
            "CACHING (YES|NO)",
            "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
            "GETREDIR",
            "    Return the client ID we are redirecting to when tracking is enabled.",
            "GETNAME",
            "    Return the name of the current connection.",
            "ID",
            "    Return the ID of the current connection.",
            "INFO",
            "    Return information about the current client connection.",
            "KILL <ip:port>",
            "    Kill connection made from <ip:port>.",
            "KILL <option> <value> [<option> <value> [...]]",
            "    Kill connections. Options are:",
            "    * ADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made from the specified address",
            "    * LADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made to specified local address",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Kill connections by type.",
            "    * USER <username>",
            "      Kill connections authenticated by <username>.",
            "    * SKIPME (YES|NO)",
            "      Skip killing current connection (default: yes).",
            "    * ID <client-id>",
            "      Kill connections by client id.",
            "    * MAXAGE <maxage>",
            "      Kill connections older than the specified age.",
            "LIST [options ...]",
            "    Return information about client connections. Options:",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Return clients of specified type.",
            "UNPAUSE",
            "    Stop the current client pause, resuming traffic.",
            "PAUSE <timeout> [WRITE|ALL]",
            "    Suspend all, or just write, clients for <timeout> milliseconds.",
            "REPLY (ON|OFF|SKIP)",
            "    Control the replies sent to the current connection.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
            "SETINFO <option> <value>",
            "    Set client meta attr. Options are:",
            "    * LIB-NAME: the client lib name.",
            "    * LIB-VER: the client lib version.",
            "UNBLOCK <clientid> [TIMEOUT|ERROR]",
            "    Unblock the specified blocked client.",
            "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
            "         [OPTIN] [OPTOUT] [NOLOOP]",
            "    Control server assisted client side caching.",
            "TRACKINGINFO",
            "    Report tracking status for the current connection.",
            "NO-EVICT (ON|OFF)",
            "    Protect current client connection from eviction.",
            "NO-TOUCH (ON|OFF)",
            "    Will not touch LRU/LFU stats when this mode is on.",
        ],
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_has_redis_fields_in_order() {
        let info = ClientInfo::new(7, "127.0.0.1:5000".into(), "127.0.0.1:6379".into(), 1000);
        *info.name.lock() = Some("app".into());
        let line = client_line(&info, "default", 3500);
        let keys: Vec<&str> = line
            .split(' ')
            .map(|kv| kv.split('=').next().unwrap_or(""))
            .collect();
        assert_eq!(
            keys.join(" "),
            "id addr laddr fd name age idle flags db sub psub ssub multi watch qbuf qbuf-free \
             argv-mem multi-mem rbs rbp obl oll omem tot-mem events cmd user redir resp \
             lib-name lib-ver"
        );
        assert!(
            line.starts_with("id=7 addr=127.0.0.1:5000 laddr=127.0.0.1:6379 fd=-1 name=app age=2 ")
        );
        assert!(line.contains(" flags=N ") && line.contains(" cmd=NULL "));
    }

    #[test]
    fn kill_filter_parsing() {
        let a = |v: &[&str]| -> Vec<bytes::Bytes> {
            v.iter()
                .map(|s| bytes::Bytes::from(s.to_string()))
                .collect()
        };
        assert!(KillFilter::parse(&a(&["ID", "0"])).is_err());
        assert!(KillFilter::parse(&a(&["SKIPME", "maybe"])).is_err());
        assert!(KillFilter::parse(&a(&["USER", "nobody"])).is_err());
        let f = KillFilter::parse(&a(&["id", "7", "skipme", "no"])).unwrap();
        let info = ClientInfo::new(7, "a".into(), "b".into(), 0);
        assert!(f.matches(&info, 7, 0));
        let f = KillFilter::parse(&a(&["id", "7"])).unwrap();
        assert!(!f.matches(&info, 7, 0), "skipme defaults to yes");
    }
}
