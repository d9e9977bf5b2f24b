//! Incremental RESP request parser.
//!
//! The parser keeps its position across reads (like Redis's `multibulklen` /
//! `bulklen`), so a multibulk with a million arguments or a 512 MB bulk costs
//! O(bytes) in total, never O(bytes x reads). Large bulks are read into a
//! buffer of their exact size ([`Parser::big_bulk_buf`]), which then becomes
//! the argument without another copy.

use bytes::{Buf, Bytes, BytesMut};

/// Redis's PROTO_INLINE_MAX_SIZE: the longest inline command or header line.
const INLINE_MAX: usize = 64 * 1024;
/// Bulks at least this long get a dedicated, exactly sized buffer.
const BIG_BULK: usize = 32 * 1024;
/// Redis's limits for a connection that has not authenticated yet.
const UNAUTH_MAX_MULTIBULK: i64 = 10;
const UNAUTH_MAX_BULK: i64 = 16 * 1024;

/// Limits applied while parsing; mirrors the Redis directives of the same names.
#[derive(Clone, Copy, Debug)]
pub struct ParseLimits {
    pub proto_max_bulk_len: i64,
    /// True until the client authenticates when a password is required.
    pub unauthenticated: bool,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            proto_max_bulk_len: 512 * 1024 * 1024,
            unauthenticated: false,
        }
    }
}

/// A protocol violation. The message is the text Redis sends (after `-ERR `);
/// the connection must be closed after replying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub Vec<u8>);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

fn perr(msg: &str) -> ProtocolError {
    ProtocolError(format!("Protocol error: {msg}").into_bytes())
}

#[derive(Default)]
pub struct Parser {
    /// Arguments of the multibulk being parsed.
    args: Vec<Bytes>,
    /// Arguments still expected in the current multibulk (0 = between commands).
    remaining: usize,
    /// Length of the bulk whose `$len` header was consumed but whose data was not.
    bulk_len: Option<usize>,
    /// Exactly sized buffer for the current big bulk (data + CRLF).
    big: Option<BytesMut>,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// While a big bulk is being received, the buffer the socket should read
    /// into (directly, without going through the query buffer).
    pub fn big_bulk_buf(&mut self) -> Option<&mut BytesMut> {
        self.big.as_mut()
    }

    /// Bytes held for a command not yet complete (counts toward the
    /// query-buffer limit).
    pub fn pending_bytes(&self) -> usize {
        self.args.iter().map(|a| a.len()).sum::<usize>() + self.big.as_ref().map_or(0, |b| b.len())
    }

    /// Parses the next complete command from `buf` into `out` (cleared first).
    /// Returns Ok(false) when more input is needed. Empty commands (a blank
    /// inline line, `*0`) are skipped.
    pub fn next_command(
        &mut self,
        buf: &mut BytesMut,
        limits: ParseLimits,
        out: &mut Vec<Bytes>,
    ) -> Result<bool, ProtocolError> {
        loop {
            if self.remaining == 0 && self.big.is_none() {
                if buf.is_empty() {
                    return Ok(false);
                }
                if buf[0] != b'*' {
                    match parse_inline(buf)? {
                        None => return Ok(false),
                        Some(args) if args.is_empty() => continue,
                        Some(args) => {
                            *out = args;
                            return Ok(true);
                        }
                    }
                }
                let Some(n) = take_header(buf, "too big mbulk count string")? else {
                    return Ok(false);
                };
                let n = n.filter(|&n| n <= i32::MAX as i64);
                let Some(n) = n else {
                    return Err(perr("invalid multibulk length"));
                };
                if limits.unauthenticated && n > UNAUTH_MAX_MULTIBULK {
                    return Err(perr("unauthenticated multibulk length"));
                }
                if n <= 0 {
                    continue;
                }
                self.remaining = n as usize;
                self.args.clear();
                self.args.reserve(self.remaining.min(1024));
            }
            while self.remaining > 0 {
                if !self.next_bulk(buf, limits)? {
                    return Ok(false);
                }
            }
            // Swap rather than take, so both vectors keep their capacity.
            std::mem::swap(out, &mut self.args);
            self.args.clear();
            return Ok(true);
        }
    }

    /// Consumes one bulk argument of the current multibulk if it is complete.
    fn next_bulk(
        &mut self,
        buf: &mut BytesMut,
        limits: ParseLimits,
    ) -> Result<bool, ProtocolError> {
        if let Some(big) = &mut self.big {
            let need = big.capacity() - big.len();
            let take = need.min(buf.len());
            big.extend_from_slice(&buf[..take]);
            buf.advance(take);
            if big.len() < big.capacity() {
                return Ok(false);
            }
            let mut data = self.big.take().unwrap();
            // Like Redis, the two bytes after the data are skipped unchecked.
            data.truncate(data.len() - 2);
            self.push_arg(data.freeze());
            return Ok(true);
        }
        let len = match self.bulk_len {
            Some(len) => len,
            None => {
                if buf.is_empty() {
                    return Ok(false);
                }
                if buf[0] != b'$' {
                    // Redis waits for the line's CR, and a byte after it,
                    // before looking at its type.
                    if memchr(b'\r', buf).is_none_or(|i| i + 1 >= buf.len()) {
                        if buf.len() > INLINE_MAX {
                            return Err(perr("too big bulk count string"));
                        }
                        return Ok(false);
                    }
                    let mut msg = b"Protocol error: expected '$', got '".to_vec();
                    msg.extend_from_slice(&[buf[0], b'\'']);
                    return Err(ProtocolError(msg));
                }
                let Some(n) = take_header(buf, "too big bulk count string")? else {
                    return Ok(false);
                };
                let n = match n {
                    Some(n) if n >= 0 && n <= limits.proto_max_bulk_len => n,
                    _ => return Err(perr("invalid bulk length")),
                };
                if limits.unauthenticated && n > UNAUTH_MAX_BULK {
                    return Err(perr("unauthenticated bulk length"));
                }
                let len = n as usize;
                if len >= BIG_BULK && buf.len() < len + 2 {
                    // Take over what has arrived; the rest is read straight in.
                    let mut big = BytesMut::with_capacity(len + 2);
                    big.extend_from_slice(buf);
                    buf.clear();
                    self.big = Some(big);
                    return Ok(false);
                }
                self.bulk_len = Some(len);
                len
            }
        };
        if buf.len() < len + 2 {
            buf.reserve(len + 2 - buf.len());
            return Ok(false);
        }
        let data = buf.split_to(len).freeze();
        buf.advance(2);
        self.bulk_len = None;
        self.push_arg(data);
        Ok(true)
    }

    fn push_arg(&mut self, arg: Bytes) {
        self.args.push(arg);
        self.remaining -= 1;
    }
}

/// Consumes a `*<n>` or `$<n>` header line and parses its number (None if
/// it is not one). Advancing instead of splitting keeps header lines from
/// costing a reference-count round trip each.
fn take_header(buf: &mut BytesMut, too_big: &str) -> Result<Option<Option<i64>>, ProtocolError> {
    // Fast path: digits then CRLF, parsed in the same pass that finds the CR.
    let b = &buf[..];
    let neg = b.get(1) == Some(&b'-');
    let start = 1 + neg as usize;
    let mut i = start;
    let mut v: i64 = 0;
    while i < b.len() && i - start < 18 && b[i].is_ascii_digit() {
        v = v * 10 + (b[i] - b'0') as i64;
        i += 1;
    }
    let canonical = i > start && (b[start] != b'0' || (i == start + 1 && !neg));
    if canonical && i + 1 < b.len() && b[i] == b'\r' {
        buf.advance(i + 2);
        return Ok(Some(Some(if neg { -v } else { v })));
    }
    match memchr(b'\r', buf) {
        Some(pos) if pos + 1 < buf.len() => {
            let n = parse_int(&buf[1..pos]);
            buf.advance(pos + 2);
            Ok(Some(n))
        }
        Some(_) => Ok(None),
        None if buf.len() > INLINE_MAX => Err(perr(too_big)),
        None => Ok(None),
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// Strict decimal parse of a protocol length (no sign other than '-', no spaces).
/// Redis's string2ll on a length header: canonical decimal only ("01",
/// "+1", "-0" are refused). Over 18 digits is past every limit anyway.
fn parse_int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 18 || (digits[0] == b'0' && (digits.len() > 1 || neg)) {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as i64;
    }
    Some(if neg { -v } else { v })
}

fn parse_inline(buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    // Redis finds the newline with strchr, so a NUL hides it: the line is
    // incomplete until the inline limit is reached.
    let nl = buf
        .iter()
        .position(|&b| b == b'\n' || b == 0)
        .filter(|&i| buf[i] == b'\n');
    let Some(nl) = nl else {
        if buf.len() > INLINE_MAX {
            return Err(perr("too big inline request"));
        }
        return Ok(None);
    };
    let mut line = buf.split_to(nl + 1);
    line.truncate(nl);
    if line.last() == Some(&b'\r') {
        line.truncate(nl - 1);
    }
    match split_inline_args(&line) {
        Some(args) => Ok(Some(args.into_iter().map(Bytes::from).collect())),
        None => Err(perr("unbalanced quotes in request")),
    }
}

/// Splits a line the way redis-cli and Redis's inline protocol do (sdssplitargs):
/// whitespace separated, "double quotes" with C escapes and \xHH, 'single
/// quotes' with only \'. A closing quote must be followed by a space or the
/// end. Returns None on unbalanced quotes.
pub fn split_inline_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && is_space(line[i]) {
            i += 1;
        }
        if i >= n {
            return Some(args);
        }
        let mut cur = Vec::new();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                if i >= n {
                    return None;
                }
                if line[i] == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && is_hex(line[i + 2])
                    && is_hex(line[i + 3])
                {
                    cur.push(hex(line[i + 2]) * 16 + hex(line[i + 3]));
                    i += 3;
                } else if line[i] == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        c => c,
                    });
                } else if line[i] == b'"' {
                    if i + 1 < n && !is_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(line[i]);
                }
            } else if in_sq {
                if i >= n {
                    return None;
                }
                if line[i] == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if line[i] == b'\'' {
                    if i + 1 < n && !is_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(line[i]);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        i += 1;
                        break;
                    }
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        args.push(cur);
    }
}

/// C's isspace, which sdssplitargs uses (Rust's ASCII whitespace lacks \v).
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn is_hex(c: u8) -> bool {
    c.is_ascii_hexdigit()
}

fn hex(c: u8) -> u8 {
    (c as char).to_digit(16).unwrap_or(0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut p = Parser::new();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        let mut cmds = Vec::new();
        while p.next_command(&mut buf, ParseLimits::default(), &mut out)? {
            cmds.push(std::mem::take(&mut out));
        }
        Ok(cmds)
    }

    #[test]
    fn multibulk_and_inline() {
        let cmds =
            parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n\r\nSET a \"b c\\x41\"\n").unwrap();
        assert_eq!(cmds.len(), 3);
        assert_eq!(cmds[0], vec![Bytes::from("GET"), Bytes::from("k")]);
        assert_eq!(cmds[1], vec![Bytes::from("PING")]);
        assert_eq!(cmds[2][2], Bytes::from("b cA"));
    }

    #[test]
    fn byte_at_a_time_equals_all_at_once() {
        let input = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n*1\r\n$4\r\nPING\r\n";
        let mut p = Parser::new();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut got = Vec::new();
        for &b in input.iter() {
            buf.extend_from_slice(&[b]);
            while p
                .next_command(&mut buf, ParseLimits::default(), &mut out)
                .unwrap()
            {
                got.push(std::mem::take(&mut out));
            }
        }
        assert_eq!(got, parse_all(input).unwrap());
        assert_eq!(got[0][2], Bytes::from("va\r\nl"));
    }

    #[test]
    fn big_bulk_goes_to_dedicated_buffer() {
        let len = 100_000;
        let mut p = Parser::new();
        let mut buf = BytesMut::from(&format!("*2\r\n$3\r\nSET\r\n${len}\r\nxyz")[..]);
        let mut out = Vec::new();
        assert!(!p
            .next_command(&mut buf, ParseLimits::default(), &mut out)
            .unwrap());
        let big = p.big_bulk_buf().expect("big bulk buffer");
        assert_eq!(big.capacity(), len + 2);
        big.extend_from_slice(&vec![b'x'; len - 3]);
        big.extend_from_slice(b"\r\n");
        assert!(p
            .next_command(&mut buf, ParseLimits::default(), &mut out)
            .unwrap());
        assert_eq!(out[1].len(), len);
        assert!(out[1].starts_with(b"xyz"));
    }

    #[test]
    fn redis_error_texts() {
        let e = |i: &[u8]| parse_all(i).unwrap_err().to_string();
        assert_eq!(e(b"*abc\r\n"), "Protocol error: invalid multibulk length");
        assert_eq!(e(b"*1\r\n:1\r\n"), "Protocol error: expected '$', got ':'");
        // A line whose CR is the last byte received is not judged yet.
        let mut p = Parser::new();
        let mut buf = BytesMut::from(&b"*2\r\n;x\r"[..]);
        assert!(!p
            .next_command(&mut buf, ParseLimits::default(), &mut Vec::new())
            .unwrap());
        assert_eq!(e(b"*1\r\n$-5\r\n"), "Protocol error: invalid bulk length");
        assert_eq!(
            e(b"*1\r\n$999999999999\r\n"),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(
            e(b"SET \"a\r\n"),
            "Protocol error: unbalanced quotes in request"
        );
        assert_eq!(e(&[b'x'; 70_000]), "Protocol error: too big inline request");
        let mut long = b"*".to_vec();
        long.extend(std::iter::repeat_n(b'1', 70_000));
        assert_eq!(e(&long), "Protocol error: too big mbulk count string");
        let unauth = ParseLimits {
            unauthenticated: true,
            ..Default::default()
        };
        let mut p = Parser::new();
        let mut out = Vec::new();
        let err = p
            .next_command(&mut BytesMut::from(&b"*100\r\n"[..]), unauth, &mut out)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Protocol error: unauthenticated multibulk length"
        );
    }

    #[test]
    fn lengths_are_canonical_like_string2ll() {
        let e = |i: &[u8]| parse_all(i).unwrap_err().to_string();
        assert_eq!(e(b"*01\r\n"), "Protocol error: invalid multibulk length");
        assert_eq!(
            e(b"*1\r\n$04\r\nPING\r\n"),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(e(b"*1\r\n$-0\r\n"), "Protocol error: invalid bulk length");
    }

    #[test]
    fn bytes_after_bulk_are_skipped_and_nul_hides_inline_newline() {
        let cmds = parse_all(b"*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(cmds.len(), 2);
        assert!(parse_all(b"PING\x00\r\n").unwrap().is_empty());
    }

    #[test]
    fn empty_multibulk_is_skipped() {
        let cmds = parse_all(b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(cmds, vec![vec![Bytes::from("PING")]]);
    }

    #[test]
    fn split_args_like_sdssplitargs() {
        let a = split_inline_args(br#"set 'it\'s' "a\tb" x"#).unwrap();
        assert_eq!(
            a,
            vec![
                b"set".to_vec(),
                b"it's".to_vec(),
                b"a\tb".to_vec(),
                b"x".to_vec()
            ]
        );
        assert!(split_inline_args(br#""abc"def"#).is_none());
        assert_eq!(split_inline_args(b"   ").unwrap(), Vec::<Vec<u8>>::new());
    }
}
