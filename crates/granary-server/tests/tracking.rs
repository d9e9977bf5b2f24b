//! Client-side caching: CLIENT TRACKING in its modes (default, BCAST with
//! prefixes, OPTIN/OPTOUT, NOLOOP, REDIRECT to a RESP2 subscriber), the
//! invalidation messages, CLIENT CACHING / GETREDIR / TRACKINGINFO, and
//! the error replies, the latter compared byte for byte with redis-server.

mod common;

use common::{encode, show, RawConn, ServerProc};

fn cmd(c: &mut RawConn, line: &str) -> Vec<u8> {
    let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
    c.cmd(&args)
}

/// A RESP3 connection (HELLO 3 read and dropped).
fn resp3(server: &ServerProc) -> RawConn {
    let mut c = server.raw();
    cmd(&mut c, "HELLO 3");
    c
}

fn id_of(c: &mut RawConn) -> String {
    let r = cmd(c, "CLIENT ID");
    String::from_utf8_lossy(&r[1..r.len() - 2]).into_owned()
}

/// The push Redis sends when `keys` are invalidated.
fn push(keys: &[&str]) -> Vec<u8> {
    let mut b = b">2\r\n$10\r\ninvalidate\r\n".to_vec();
    b.extend_from_slice(&encode(
        &keys.iter().map(|k| k.as_bytes()).collect::<Vec<_>>(),
    ));
    b
}

/// Runs a check against Granary and against redis-server, so the
/// expectations are Redis's own behaviour.
macro_rules! both {
    ($check:ident) => {
        mod $check {
            use super::*;

            #[test]
            fn granary() {
                super::$check(&ServerProc::granary(&[]));
            }

            #[test]
            fn redis() {
                super::$check(&ServerProc::redis(&[]));
            }
        }
    };
}

/// Asserts nothing is pending on `c`: a PING answers right away.
fn assert_quiet(c: &mut RawConn) {
    assert_eq!(show(&cmd(c, "PING")), show(b"+PONG\r\n"));
}

fn default_mode_invalidates_keys_read_once(g: &ServerProc) {
    let mut reader = resp3(g);
    let mut writer = g.raw();
    assert_eq!(cmd(&mut reader, "CLIENT TRACKING ON"), b"+OK\r\n");
    cmd(&mut writer, "SET k 1");
    cmd(&mut reader, "GET k");
    cmd(&mut writer, "SET k 2");
    assert_eq!(show(&reader.read_reply().unwrap()), show(&push(&["k"])));
    // Not read again since: a second write says nothing.
    cmd(&mut writer, "SET k 3");
    assert_quiet(&mut reader);
    // A key never read is never invalidated.
    cmd(&mut writer, "SET other 1");
    assert_quiet(&mut reader);
}

fn own_writes_invalidate_unless_noloop(g: &ServerProc) {
    let mut c = resp3(g);
    cmd(&mut c, "CLIENT TRACKING ON");
    cmd(&mut c, "GET k");
    // The reply comes first, then the push.
    assert_eq!(cmd(&mut c, "SET k 1"), b"+OK\r\n");
    assert_eq!(show(&c.read_reply().unwrap()), show(&push(&["k"])));
    cmd(&mut c, "CLIENT TRACKING ON NOLOOP");
    cmd(&mut c, "GET k");
    cmd(&mut c, "SET k 2");
    assert_quiet(&mut c);
}

fn redirect_to_a_resp2_subscriber(g: &ServerProc) {
    let mut sub = g.raw();
    let sub_id = id_of(&mut sub);
    cmd(&mut sub, "SUBSCRIBE __redis__:invalidate");
    let mut c = g.raw();
    let line = format!("CLIENT TRACKING ON REDIRECT {sub_id}");
    assert_eq!(cmd(&mut c, &line), b"+OK\r\n");
    assert_eq!(
        cmd(&mut c, "CLIENT GETREDIR"),
        format!(":{sub_id}\r\n").into_bytes()
    );
    cmd(&mut c, "GET k");
    cmd(&mut c, "SET k v");
    let msg = sub.read_reply().unwrap();
    assert_eq!(
        show(&msg),
        show(b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\nk\r\n")
    );
    // FLUSHALL: a null invalidation, everything must go.
    cmd(&mut c, "FLUSHALL");
    let msg = sub.read_reply().unwrap();
    assert_eq!(
        show(&msg),
        show(b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n")
    );
    let list = String::from_utf8_lossy(&cmd(&mut c, "CLIENT INFO")).into_owned();
    assert!(list.contains(" flags=t "), "{list}");
    assert!(list.contains(&format!(" redir={sub_id} ")), "{list}");
}

fn bcast_prefixes_invalidate_without_reads(g: &ServerProc) {
    let mut c = resp3(g);
    let mut w = g.raw();
    assert_eq!(
        cmd(&mut c, "CLIENT TRACKING ON BCAST PREFIX user: PREFIX cfg"),
        b"+OK\r\n"
    );
    cmd(&mut w, "SET user:1 x");
    assert_eq!(show(&c.read_reply().unwrap()), show(&push(&["user:1"])));
    cmd(&mut w, "SET other x");
    cmd(&mut w, "SET cfg.a x");
    assert_eq!(show(&c.read_reply().unwrap()), show(&push(&["cfg.a"])));
    let info = String::from_utf8_lossy(&cmd(&mut c, "CLIENT TRACKINGINFO")).into_owned();
    assert!(info.contains("bcast"), "{info}");
    assert!(info.contains("$3\r\ncfg\r\n$5\r\nuser:\r\n"), "{info}");
}

fn optin_tracks_only_after_caching_yes(g: &ServerProc) {
    let mut c = resp3(g);
    let mut w = g.raw();
    cmd(&mut c, "CLIENT TRACKING ON OPTIN");
    cmd(&mut c, "GET a");
    cmd(&mut c, "CLIENT CACHING YES");
    cmd(&mut c, "GET b");
    cmd(&mut w, "SET a 1");
    cmd(&mut w, "SET b 1");
    assert_eq!(show(&c.read_reply().unwrap()), show(&push(&["b"])));
    // CACHING lasts one command.
    cmd(&mut c, "CLIENT CACHING YES");
    cmd(&mut c, "PING");
    cmd(&mut c, "GET d");
    cmd(&mut w, "SET d 1");
    assert_quiet(&mut c);
}

fn optout_skips_after_caching_no(g: &ServerProc) {
    let mut c = resp3(g);
    let mut w = g.raw();
    cmd(&mut c, "CLIENT TRACKING ON OPTOUT");
    cmd(&mut c, "CLIENT CACHING NO");
    cmd(&mut c, "GET a");
    cmd(&mut c, "GET b");
    cmd(&mut w, "SET a 1");
    cmd(&mut w, "SET b 1");
    assert_eq!(show(&c.read_reply().unwrap()), show(&push(&["b"])));
}

fn expiry_invalidates(g: &ServerProc) {
    let mut c = resp3(g);
    let mut w = g.raw();
    cmd(&mut w, "SET k v PX 30");
    cmd(&mut c, "CLIENT TRACKING ON");
    cmd(&mut c, "GET k");
    // The cron expires it: the push arrives without any command.
    assert_eq!(show(&c.read_reply().unwrap()), show(&push(&["k"])));
}

fn trackinginfo_and_getredir_when_off(g: &ServerProc) {
    let mut c = resp3(g);
    assert_eq!(cmd(&mut c, "CLIENT GETREDIR"), b":-1\r\n");
    assert_eq!(
        show(&cmd(&mut c, "CLIENT TRACKINGINFO")),
        show(b"%3\r\n$5\r\nflags\r\n~1\r\n$3\r\noff\r\n$8\r\nredirect\r\n:-1\r\n$8\r\nprefixes\r\n*0\r\n")
    );
    cmd(&mut c, "CLIENT TRACKING ON OPTIN NOLOOP");
    cmd(&mut c, "CLIENT CACHING YES");
    assert_eq!(
        show(&cmd(&mut c, "CLIENT TRACKINGINFO")),
        show(b"%3\r\n$5\r\nflags\r\n~4\r\n$2\r\non\r\n$5\r\noptin\r\n$11\r\ncaching-yes\r\n$6\r\nnoloop\r\n$8\r\nredirect\r\n:0\r\n$8\r\nprefixes\r\n*0\r\n")
    );
}

/// Error replies and option checks, byte for byte against Redis.
#[test]
fn errors_match_redis() {
    let lines = [
        "CLIENT TRACKING maybe",
        "CLIENT TRACKING ON PREFIX a",
        "CLIENT TRACKING ON BCAST OPTIN",
        "CLIENT TRACKING ON OPTIN OPTOUT",
        "CLIENT TRACKING ON REDIRECT 999999",
        "CLIENT TRACKING ON REDIRECT abc",
        "CLIENT TRACKING ON BOGUS",
        "CLIENT TRACKING ON BCAST PREFIX a PREFIX ab",
        "CLIENT CACHING YES",
        "CLIENT TRACKING ON OPTIN",
        "CLIENT CACHING NO",
        "CLIENT CACHING maybe",
        "CLIENT TRACKING ON OPTOUT",
        "CLIENT TRACKING ON BCAST",
        "CLIENT TRACKING OFF",
        "CLIENT TRACKING ON BCAST PREFIX foo",
        "CLIENT TRACKING ON BCAST PREFIX fo",
        "CLIENT TRACKING ON BCAST PREFIX bar",
        "CLIENT TRACKINGINFO",
        "CLIENT GETREDIR",
        "CLIENT TRACKING OFF",
        "CLIENT TRACKINGINFO",
    ];
    let run = |server: &ServerProc| -> Vec<String> {
        let mut c = resp3(server);
        lines
            .iter()
            .map(|l| format!("{l} -> {}", show(&cmd(&mut c, l))))
            .collect()
    };
    let g = ServerProc::granary(&[]);
    let r = ServerProc::redis(&[]);
    assert_eq!(run(&g), run(&r));
}

both!(default_mode_invalidates_keys_read_once);

both!(own_writes_invalidate_unless_noloop);

both!(redirect_to_a_resp2_subscriber);

both!(bcast_prefixes_invalidate_without_reads);

both!(optin_tracks_only_after_caching_yes);

both!(optout_skips_after_caching_no);

both!(expiry_invalidates);

both!(trackinginfo_and_getredir_when_off);

#[test]
fn full_table_evicts_keys_with_invalidations() {
    let g = ServerProc::granary(&[]);
    let mut c = resp3(&g);
    cmd(&mut c, "CONFIG SET tracking-table-max-keys 1");
    cmd(&mut c, "CLIENT TRACKING ON");
    cmd(&mut c, "GET a");
    cmd(&mut c, "GET b");
    // One of the two had to go, and the client is told which.
    let evicted = show(&c.read_reply().unwrap());
    assert!(
        evicted == show(&push(&["a"])) || evicted == show(&push(&["b"])),
        "{evicted}"
    );
    let info = String::from_utf8_lossy(&cmd(&mut c, "INFO stats")).into_owned();
    assert!(info.contains("tracking_total_keys:1\r\n"), "{info}");
}

fn broken_redirect_is_reported(g: &ServerProc) {
    let mut c = resp3(g);
    let mut w = g.raw();
    let mut gone = g.raw();
    let gone_id = id_of(&mut gone);
    cmd(&mut c, &format!("CLIENT TRACKING ON REDIRECT {gone_id}"));
    drop(gone);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while String::from_utf8_lossy(&cmd(&mut w, "CLIENT LIST")).contains(&format!("id={gone_id} ")) {
        assert!(std::time::Instant::now() < deadline, "client never left");
    }
    cmd(&mut c, "GET k");
    cmd(&mut w, "SET k v");
    let msg = c.read_reply().unwrap();
    let want = format!(">2\r\n$21\r\ntracking-redir-broken\r\n:{gone_id}\r\n");
    assert_eq!(show(&msg), show(want.as_bytes()));
    let info = String::from_utf8_lossy(&cmd(&mut c, "CLIENT TRACKINGINFO")).into_owned();
    assert!(info.contains("broken_redirect"), "{info}");
    let list = String::from_utf8_lossy(&cmd(&mut c, "CLIENT INFO")).into_owned();
    assert!(list.contains(" flags=tR "), "{list}");
}

both!(broken_redirect_is_reported);
