//! Reply encoding. Command code calls the typed methods; the protocol version
//! of the client (RESP2 or RESP3) decides the bytes. Small replies are
//! coalesced in one buffer; a large bulk is queued as its own chunk so a
//! 50 MB value is never copied into the output buffer.

use bytes::{BufMut, Bytes, BytesMut};
use std::collections::VecDeque;

/// Bulks at least this large are queued by reference instead of copied.
pub const BIG_CHUNK: usize = 16 * 1024;

#[derive(Default)]
pub struct Reply {
    resp3: bool,
    buf: BytesMut,
    chunks: VecDeque<Bytes>,
    queued: usize,
}

impl Reply {
    pub fn new(resp3: bool) -> Self {
        Reply {
            resp3,
            ..Default::default()
        }
    }

    pub fn resp3(&self) -> bool {
        self.resp3
    }

    pub fn set_resp3(&mut self, on: bool) {
        self.resp3 = on;
    }

    /// Bytes waiting to be written (for output-buffer limits).
    pub fn pending(&self) -> usize {
        self.buf.len() + self.queued
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty() && self.chunks.is_empty()
    }

    /// Position marker for [`Reply::truncate`].
    pub fn mark(&self) -> (usize, usize) {
        (self.chunks.len(), self.buf.len())
    }

    /// Drops everything written after `mark` (used to replace a partially
    /// written reply by an error).
    pub fn truncate(&mut self, mark: (usize, usize)) {
        if self.chunks.len() == mark.0 {
            self.buf.truncate(mark.1);
        }
    }

    /// Everything written so far, in order, leaving the reply empty.
    pub fn take_chunks(&mut self) -> VecDeque<Bytes> {
        if !self.buf.is_empty() {
            let b = self.buf.split().freeze();
            self.chunks.push_back(b);
        }
        self.queued = 0;
        std::mem::take(&mut self.chunks)
    }

    fn line(&mut self, prefix: u8, n: i64) {
        let mut tmp = itoa::Buffer::new();
        let s = tmp.format(n);
        self.buf.reserve(s.len() + 3);
        self.buf.put_u8(prefix);
        self.buf.put_slice(s.as_bytes());
        self.buf.put_slice(b"\r\n");
    }

    pub fn ok(&mut self) {
        self.buf.put_slice(b"+OK\r\n");
    }

    pub fn simple(&mut self, s: &str) {
        self.buf.put_u8(b'+');
        self.buf.put_slice(s.as_bytes());
        self.buf.put_slice(b"\r\n");
    }

    /// An error reply. `msg` starts with the error code (`ERR`, `WRONGTYPE`,
    /// ...); newlines are replaced so the reply stays one line.
    /// Like Redis's addReplyErrorFormat, CR and LF are trimmed from both
    /// ends and turned into spaces inside.
    pub fn error(&mut self, msg: impl AsRef<[u8]>) {
        let msg = msg.as_ref();
        let newline = |b: &u8| *b == b'\r' || *b == b'\n';
        let start = msg.iter().position(|b| !newline(b)).unwrap_or(msg.len());
        let end = msg
            .iter()
            .rposition(|b| !newline(b))
            .map_or(start, |i| i + 1);
        self.buf.put_u8(b'-');
        for &b in &msg[start..end] {
            self.buf
                .put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
        }
        self.buf.put_slice(b"\r\n");
    }

    pub fn int(&mut self, n: i64) {
        self.line(b':', n);
    }

    pub fn bulk(&mut self, data: &[u8]) {
        self.line(b'$', data.len() as i64);
        self.buf.extend_from_slice(data);
        self.buf.put_slice(b"\r\n");
    }

    /// A bulk from shared bytes: large ones are queued without copying.
    pub fn bulk_shared(&mut self, data: &Bytes) {
        if data.len() < BIG_CHUNK {
            return self.bulk(data);
        }
        self.line(b'$', data.len() as i64);
        let head = self.buf.split().freeze();
        self.queued += head.len() + data.len();
        self.chunks.push_back(head);
        self.chunks.push_back(data.clone());
        self.buf.put_slice(b"\r\n");
    }

    pub fn bulk_str(&mut self, s: &str) {
        self.bulk(s.as_bytes());
    }

    pub fn bulk_int(&mut self, n: i64) {
        let mut tmp = itoa::Buffer::new();
        self.bulk(tmp.format(n).as_bytes());
    }

    /// Null bulk (RESP2 `$-1`, RESP3 `_`).
    pub fn null(&mut self) {
        self.buf
            .put_slice(if self.resp3 { b"_\r\n" } else { b"$-1\r\n" });
    }

    /// Null array (RESP2 `*-1`, RESP3 `_`).
    pub fn null_array(&mut self) {
        self.buf
            .put_slice(if self.resp3 { b"_\r\n" } else { b"*-1\r\n" });
    }

    pub fn array(&mut self, n: usize) {
        self.line(b'*', n as i64);
    }

    /// A map of `n` pairs (RESP2: flat array of 2n).
    pub fn map(&mut self, n: usize) {
        if self.resp3 {
            self.line(b'%', n as i64)
        } else {
            self.line(b'*', 2 * n as i64)
        }
    }

    /// A set (RESP2: array).
    pub fn set(&mut self, n: usize) {
        self.line(if self.resp3 { b'~' } else { b'*' }, n as i64);
    }

    /// An out-of-band push (RESP2: array, as pub/sub messages are).
    pub fn push(&mut self, n: usize) {
        self.line(if self.resp3 { b'>' } else { b'*' }, n as i64);
    }

    pub fn double(&mut self, d: f64) {
        let s = format_double(d);
        if self.resp3 {
            self.buf.put_u8(b',');
            self.buf.put_slice(s.as_bytes());
            self.buf.put_slice(b"\r\n");
        } else {
            self.bulk(s.as_bytes());
        }
    }

    pub fn boolean(&mut self, b: bool) {
        if self.resp3 {
            self.buf.put_slice(if b { b"#t\r\n" } else { b"#f\r\n" });
        } else {
            self.int(b as i64);
        }
    }

    /// Verbatim text (RESP3 `=`, RESP2 bulk), e.g. INFO and CLIENT LIST.
    pub fn verbatim(&mut self, text: &str) {
        if self.resp3 {
            self.line(b'=', text.len() as i64 + 4);
            self.buf.put_slice(b"txt:");
            self.buf.put_slice(text.as_bytes());
            self.buf.put_slice(b"\r\n");
        } else {
            self.bulk(text.as_bytes());
        }
    }

    /// Raw protocol bytes (for replies cached in encoded form).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
}

/// Formats a double the way Redis 7.4 replies with one: shortest text that
/// reads back to the same value; `inf`, `-inf`, `nan` for the specials.
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        "nan".into()
    } else if d.is_infinite() {
        if d > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        }
    } else if d == 0.0 && d.is_sign_negative() {
        "-0".into()
    } else if d == d.trunc() && d.abs() < 1e17 {
        format!("{}", d as i64)
    } else {
        let mut b = ryu::Buffer::new();
        let s = b.format_finite(d);
        // ryu writes "1e20" / "1.5e-7"; Redis writes "1e+20" / "1.5e-07".
        match s.find('e') {
            Some(pos) => {
                let (mant, exp) = s.split_at(pos);
                let exp: i32 = exp[1..].parse().unwrap_or(0);
                format!("{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
            }
            None => s.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(r: &mut Reply) -> Vec<u8> {
        r.take_chunks()
            .into_iter()
            .flat_map(|c| c.to_vec())
            .collect()
    }

    #[test]
    fn resp2_and_resp3_shapes() {
        let mut r2 = Reply::new(false);
        let mut r3 = Reply::new(true);
        for r in [&mut r2, &mut r3] {
            r.map(1);
            r.bulk(b"k");
            r.null();
            r.double(1.5);
            r.boolean(true);
        }
        assert_eq!(
            bytes(&mut r2),
            b"*2\r\n$1\r\nk\r\n$-1\r\n$3\r\n1.5\r\n:1\r\n"
        );
        assert_eq!(bytes(&mut r3), b"%1\r\n$1\r\nk\r\n_\r\n,1.5\r\n#t\r\n");
    }

    #[test]
    fn big_bulk_is_not_copied() {
        let big = Bytes::from(vec![7u8; BIG_CHUNK * 2]);
        let mut r = Reply::new(false);
        r.int(1);
        r.bulk_shared(&big);
        r.ok();
        let chunks = r.take_chunks();
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[1].as_ptr(), big.as_ptr());
        assert_eq!(&chunks[2][..], b"\r\n+OK\r\n");
    }

    #[test]
    fn error_stays_on_one_line() {
        let mut r = Reply::new(false);
        r.error("ERR a\r\nb");
        r.error("ERR x \r\n");
        assert_eq!(bytes(&mut r), b"-ERR a  b\r\n-ERR x \r\n");
    }

    #[test]
    fn doubles_like_redis() {
        assert_eq!(format_double(3.0), "3");
        assert_eq!(format_double(-0.5), "-0.5");
        assert_eq!(format_double(1.1), "1.1");
        assert_eq!(format_double(f64::INFINITY), "inf");
        assert_eq!(format_double(1e20), "1e+20");
        assert_eq!(format_double(-0.0), "-0");
    }
}
