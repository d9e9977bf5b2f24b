//! Redis's COMMAND DOCS entries and COMMAND INFO tips / key specs, captured
//! from the oracles by scripts/capture-command-docs.py into
//! data/command-docs.txt and replayed here value by value, so the replies
//! keep Redis's exact shape in both RESP2 and RESP3.
//!
//! The data is one RESP3 value a line: `%N` map (N pairs), `~N` set, `*N`
//! array, `:N` integer, `+TEXT` simple string, `$TEXT` bulk string; TEXT
//! escapes `\` as `\\` and newline as `\n`. Sections start with
//! `=docs NAME N` (N fields follow, subcommands excluded), `=tips NAME` and
//! `=keys NAME` (one value follows each).

use granary_protocol::Reply;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

const DATA: &str = include_str!("../data/command-docs.txt");

/// One command's captured data: each field is the text of its lines.
#[derive(Default)]
pub struct CommandData {
    /// Number of key/value pairs in `docs`.
    pub doc_fields: usize,
    pub docs: &'static str,
    pub tips: Option<&'static str>,
    pub key_specs: Option<&'static str>,
}

/// The captured data of a command or "container|sub" subcommand.
pub fn get(name: &str) -> Option<&'static CommandData> {
    static ALL: OnceLock<HashMap<&'static str, CommandData>> = OnceLock::new();
    ALL.get_or_init(parse).get(name)
}

/// Indexes the file's sections by command name.
fn parse() -> HashMap<&'static str, CommandData> {
    let mut all: HashMap<&'static str, CommandData> = HashMap::new();
    for (header, body) in sections() {
        let mut words = header.split(' ');
        let (Some(kind), Some(name)) = (words.next(), words.next()) else {
            continue;
        };
        let entry = all.entry(name).or_default();
        match kind {
            "=docs" => {
                entry.doc_fields = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
                entry.docs = body;
            }
            "=tips" => entry.tips = Some(body),
            "=keys" => entry.key_specs = Some(body),
            _ => {}
        }
    }
    all
}

/// Every `=` header line with the text of the lines up to the next one.
fn sections() -> Vec<(&'static str, &'static str)> {
    let mut out = vec![];
    // (header, offset where its body starts)
    let mut open: Option<(&'static str, usize)> = None;
    let mut offset = 0;
    for line in DATA.split_inclusive('\n') {
        if line.starts_with('=') {
            if let Some((header, start)) = open {
                out.push((header, &DATA[start..offset]));
            }
            open = Some((line.trim_end(), offset + line.len()));
        }
        offset += line.len();
    }
    if let Some((header, start)) = open {
        out.push((header, &DATA[start..]));
    }
    out
}

/// Writes the values in `lines` to `out`, one Reply call per line.
pub fn replay(out: &mut Reply, lines: &str) {
    for line in lines.lines() {
        let Some(tag) = line.chars().next() else {
            continue;
        };
        let rest = &line[1..];
        let count = || rest.parse::<usize>().unwrap_or(0);
        match tag {
            '%' => out.map(count()),
            '~' => out.set(count()),
            '*' => out.array(count()),
            ':' => out.int(rest.parse().unwrap_or(0)),
            '+' => out.simple(&unescape(rest)),
            '$' => out.bulk(unescape(rest).as_bytes()),
            _ => {}
        }
    }
}

fn unescape(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => {}
            },
            (c, false) => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many complete values `lines` holds (aggregates count as one).
    fn count_values(lines: &str) -> Option<usize> {
        let mut values = 0;
        // Items still owed by the open aggregates.
        let mut owed: Vec<usize> = vec![];
        for line in lines.lines() {
            let n: usize = match line.chars().next()? {
                '%' => line[1..].parse::<usize>().ok()? * 2,
                '~' | '*' => line[1..].parse().ok()?,
                ':' => {
                    line[1..].parse::<i64>().ok()?;
                    0
                }
                '+' | '$' => 0,
                _ => return None,
            };
            match owed.last_mut() {
                Some(left) => *left -= 1,
                None => values += 1,
            }
            owed.push(n);
            while owed.last() == Some(&0) {
                owed.pop();
            }
        }
        owed.is_empty().then_some(values)
    }

    #[test]
    fn every_section_is_well_formed() {
        let all = sections();
        for &(header, body) in &all {
            let want = match header.split(' ').collect::<Vec<_>>()[..] {
                ["=docs", _, n] => n.parse::<usize>().unwrap() * 2,
                ["=tips", _] | ["=keys", _] => 1,
                _ => panic!("bad header {header}"),
            };
            assert_eq!(count_values(body), Some(want), "{header}");
        }
        assert!(all.len() > 700, "{} sections", all.len());
    }

    #[test]
    fn lookups_find_commands_and_subcommands() {
        let get_doc = get("get").unwrap();
        assert_eq!(get_doc.doc_fields, 5);
        assert!(get_doc.docs.starts_with("$summary\n"));
        assert!(get("client|kill").unwrap().docs.contains("MAXAGE"));
        assert!(get("nosuch").is_none());
    }

    #[test]
    fn replay_writes_resp3_and_resp2() {
        let lines = "%1\n$flags\n~2\n+optional\n+multiple\n";
        let mut r3 = Reply::new(true);
        replay(&mut r3, lines);
        let mut r2 = Reply::new(false);
        replay(&mut r2, lines);
        let bytes = |r: &mut Reply| -> Vec<u8> {
            r.take_chunks().iter().flat_map(|c| c.to_vec()).collect()
        };
        assert_eq!(
            bytes(&mut r3),
            b"%1\r\n$5\r\nflags\r\n~2\r\n+optional\r\n+multiple\r\n"
        );
        assert_eq!(
            bytes(&mut r2),
            b"*2\r\n$5\r\nflags\r\n*2\r\n+optional\r\n+multiple\r\n"
        );
        assert_eq!(unescape(r"a\nb\\c"), "a\nb\\c");
    }
}
