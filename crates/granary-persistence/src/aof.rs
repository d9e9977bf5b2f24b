//! The append-only file, laid out as Redis 7 lays it out (aof.c): a
//! directory (`appenddirname`) holding a manifest that lists a base file
//! (an RDB snapshot, or commands) and incremental files of commands in the
//! RESP protocol. Redis's tools and Redis itself read what this writes.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

/// What a file listed in the manifest is (`type b|h|i`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Base,
    History,
    Incr,
}

/// One line of the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub seq: u64,
    pub kind: Kind,
}

/// The manifest: which files make up the AOF, in load order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    pub entries: Vec<Entry>,
}

impl Manifest {
    /// Parses a manifest (`file <name> seq <n> type <b|h|i>` per line).
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || format!("Invalid AOF manifest file format at line {}", i + 1);
            let words: Vec<&str> = line.split_whitespace().collect();
            let (mut name, mut seq, mut kind) = (None, None, None);
            for pair in words.chunks(2) {
                let [k, v] = pair else { return Err(bad()) };
                match *k {
                    "file" => name = Some(v.to_string()),
                    "seq" => seq = v.parse::<u64>().ok(),
                    "type" => {
                        kind = match *v {
                            "b" => Some(Kind::Base),
                            "h" => Some(Kind::History),
                            "i" => Some(Kind::Incr),
                            _ => return Err(bad()),
                        }
                    }
                    _ => {} // later Redis versions add fields: ignored
                }
            }
            match (name, seq, kind) {
                (Some(name), Some(seq), Some(kind)) => entries.push(Entry { name, seq, kind }),
                _ => return Err(bad()),
            }
        }
        Ok(Manifest { entries })
    }

    pub fn format(&self) -> String {
        let mut out = String::new();
        for e in &self.entries {
            let t = match e.kind {
                Kind::Base => "b",
                Kind::History => "h",
                Kind::Incr => "i",
            };
            out.push_str(&format!("file {} seq {} type {}\n", e.name, e.seq, t));
        }
        out
    }

    pub fn base(&self) -> Option<&Entry> {
        self.entries.iter().find(|e| e.kind == Kind::Base)
    }

    pub fn incrs(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.kind == Kind::Incr)
    }

    /// Writes the manifest to `path` atomically (temporary file, fsync,
    /// rename, fsync of the directory).
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let tmp = path.with_extension("manifest.tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(self.format().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).ok();
        }
        Ok(())
    }
}

/// Appends one command as a RESP multibulk.
pub fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    out.extend_from_slice(itoa::Buffer::new().format(args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.push(b'$');
        out.extend_from_slice(itoa::Buffer::new().format(a.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// How reading a command file ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Replayed {
    /// Every byte was a complete command.
    Complete,
    /// The file ends inside a command (a crash while appending); the
    /// commands before `valid_len` were all passed on.
    Truncated { valid_len: u64 },
}

/// A command file that is not RESP multibulk.
#[derive(Debug)]
pub struct BadFormat {
    pub offset: u64,
    pub what: &'static str,
}

/// Reads the commands of a file written by [`encode_command`] (or Redis),
/// calling `each` with every complete one in order, and the offset where
/// it starts.
pub fn replay(
    path: &Path,
    mut each: impl FnMut(Vec<Vec<u8>>, u64),
) -> io::Result<Result<Replayed, BadFormat>> {
    let mut r = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut offset = 0u64;
    loop {
        let start = offset;
        match read_command(&mut r, &mut offset)? {
            Step::Command(args) => each(args, start),
            Step::End => return Ok(Ok(Replayed::Complete)),
            Step::Short => return Ok(Ok(Replayed::Truncated { valid_len: start })),
            Step::Bad(what) => {
                return Ok(Err(BadFormat {
                    offset: start,
                    what,
                }))
            }
        }
    }
}

enum Step {
    Command(Vec<Vec<u8>>),
    End,
    Short,
    Bad(&'static str),
}

/// Reads one multibulk. A file ending anywhere inside one is Short.
/// Lines starting with `#` are annotations (aof-timestamp-enabled's
/// `#TS:`), skipped as Redis skips them.
fn read_command(r: &mut impl BufRead, offset: &mut u64) -> io::Result<Step> {
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(Step::End);
        }
        *offset += n as u64;
        if line[0] != b'#' {
            break;
        }
    }
    let Some(count) = header(&line, b'*') else {
        return Ok(if line.ends_with(b"\n") {
            Step::Bad("expected '*'")
        } else {
            Step::Short
        });
    };
    if count == 0 {
        return Ok(Step::Bad("empty command"));
    }
    let mut args = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        line.clear();
        let n = r.read_until(b'\n', &mut line)?;
        *offset += n as u64;
        if !line.ends_with(b"\n") {
            return Ok(Step::Short);
        }
        let Some(len) = header(&line, b'$') else {
            return Ok(Step::Bad("expected '$'"));
        };
        let mut arg = Vec::new();
        let got = r.by_ref().take(len as u64 + 2).read_to_end(&mut arg)?;
        *offset += got as u64;
        if got < len + 2 {
            return Ok(Step::Short);
        }
        if !arg.ends_with(b"\r\n") {
            return Ok(Step::Bad("bulk not followed by CRLF"));
        }
        arg.truncate(len);
        args.push(arg);
    }
    Ok(Step::Command(args))
}

/// Parses `<prefix><digits>\r\n`.
fn header(line: &[u8], prefix: u8) -> Option<usize> {
    let body = line.strip_prefix(&[prefix])?.strip_suffix(b"\r\n")?;
    std::str::from_utf8(body).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_and_rejects_garbage() {
        let text = "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n";
        let m = Manifest::parse(text).unwrap();
        assert_eq!(m.format(), text);
        assert_eq!(m.base().unwrap().name, "appendonly.aof.1.base.rdb");
        assert_eq!(m.incrs().count(), 1);
        assert!(Manifest::parse("file x seq 1 type z\n").is_err());
        assert!(Manifest::parse("file x seq\n").is_err());
    }

    #[test]
    fn replay_reads_commands_and_reports_a_truncated_tail() {
        let dir = std::env::temp_dir().join(format!("granary-aof-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.aof");
        let mut bytes = Vec::new();
        encode_command(&mut bytes, &[b"SET", b"k", b"v\r\nx"]);
        encode_command(&mut bytes, &[b"INCR", b"n"]);
        let whole = bytes.len() as u64;
        let first = {
            let mut b = Vec::new();
            encode_command(&mut b, &[b"SET", b"k", b"v\r\nx"]);
            b.len() as u64
        };
        for cut in 0..=bytes.len() {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let mut got = Vec::new();
            let end = replay(&path, |c, _| got.push(c)).unwrap().unwrap();
            if cut as u64 == whole {
                assert_eq!(end, Replayed::Complete);
                assert_eq!(got.len(), 2);
            } else if cut == 0 {
                assert_eq!(end, Replayed::Complete);
            } else if (cut as u64) < first {
                assert_eq!(end, Replayed::Truncated { valid_len: 0 }, "cut {cut}");
                assert!(got.is_empty());
            } else if cut as u64 == first {
                assert_eq!(end, Replayed::Complete);
                assert_eq!(
                    got,
                    vec![vec![b"SET".to_vec(), b"k".to_vec(), b"v\r\nx".to_vec()]]
                );
            } else {
                assert_eq!(end, Replayed::Truncated { valid_len: first }, "cut {cut}");
                assert_eq!(got.len(), 1);
            }
        }
        // Annotations are skipped.
        std::fs::write(&path, b"#TS:1700000000\r\n*1\r\n$4\r\nPING\r\n#x").unwrap();
        let mut got = Vec::new();
        let end = replay(&path, |c, at| got.push((c, at))).unwrap().unwrap();
        assert_eq!(end, Replayed::Complete);
        assert_eq!(got, vec![(vec![b"PING".to_vec()], 0)]);
        std::fs::write(&path, b"*1\r\n$4\r\nPING\r\nGARBAGE\r\n").unwrap();
        let e = replay(&path, |_, _| {}).unwrap().unwrap_err();
        assert_eq!(e.offset, 14);
        std::fs::remove_dir_all(&dir).ok();
    }
}
