//! Redis's key specs, read from the captured COMMAND INFO data
//! (docs_data.rs), and what Redis derives from them: the legacy
//! (first, last, step) triple and the `movablekeys` flag of COMMAND INFO
//! (server.c populateCommandLegacyRangeSpec), and the keys with their flags
//! that COMMAND GETKEYS / GETKEYSANDFLAGS report (db.c
//! getKeysUsingKeySpecs).

use crate::docs_data;
use crate::util::parse_i64_opt;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::OnceLock;

/// Where the search for a spec's keys starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Begin {
    /// At this argument.
    Index(i64),
    /// After this keyword, searched from `startfrom` (negative: from the
    /// end, backwards).
    Keyword {
        keyword: String,
        startfrom: i64,
    },
    Unknown,
}

/// How the keys are found from there.
#[derive(Debug, Clone, PartialEq)]
pub enum Find {
    /// `lastkey` relative to the start (negative: from the end); `limit`
    /// splits the rest (e.g. half of it for XREAD's streams).
    Range {
        lastkey: i64,
        keystep: i64,
        limit: i64,
    },
    /// The number of keys is the argument at `keynumidx` (relative to the
    /// start); the keys follow at `firstkey`.
    Keynum {
        keynumidx: i64,
        firstkey: i64,
        keystep: i64,
    },
    Unknown,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KeySpec {
    /// As Redis names them ("RW", "access", "incomplete"...).
    pub flags: Vec<String>,
    pub begin: Begin,
    pub find: Find,
}

impl KeySpec {
    fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// A plain index + range spec (the only kind the legacy triple holds).
    fn index_range(&self) -> Option<(i64, i64, i64)> {
        match (&self.begin, &self.find) {
            (
                Begin::Index(pos),
                Find::Range {
                    lastkey, keystep, ..
                },
            ) => Some((*pos, *lastkey, *keystep)),
            _ => None,
        }
    }
}

/// One captured RESP3 value.
#[derive(Debug)]
enum Node {
    Int(i64),
    Text(String),
    /// Arrays and sets.
    List(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| matches!(k, Node::Text(t) if t == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    fn int(&self, key: &str) -> Option<i64> {
        match self.get(key)? {
            Node::Int(i) => Some(*i),
            _ => None,
        }
    }

    fn text(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            Node::Text(t) => Some(t),
            _ => None,
        }
    }
}

/// Parses one value from the captured lines (see docs_data.rs's format).
fn parse<'a>(lines: &mut impl Iterator<Item = &'a str>) -> Option<Node> {
    let line = lines.next()?;
    let rest = line.get(1..)?;
    let count = || rest.parse::<usize>().ok();
    Some(match line.chars().next()? {
        '%' => {
            let n = count()?;
            let mut pairs = Vec::with_capacity(n);
            for _ in 0..n {
                pairs.push((parse(lines)?, parse(lines)?));
            }
            Node::Map(pairs)
        }
        '~' | '*' => {
            let n = count()?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(parse(lines)?);
            }
            Node::List(items)
        }
        ':' => Node::Int(rest.parse().ok()?),
        // Key spec texts never need unescaping.
        '+' | '$' => Node::Text(rest.to_string()),
        _ => return None,
    })
}

fn spec_of(node: &Node) -> KeySpec {
    let flags = match node.get("flags") {
        Some(Node::List(items)) => items
            .iter()
            .filter_map(|f| match f {
                Node::Text(t) => Some(t.clone()),
                _ => None,
            })
            .collect(),
        _ => vec![],
    };
    let bs = node.get("begin_search");
    let bs_spec = bs.and_then(|b| b.get("spec"));
    let begin = match (bs.and_then(|b| b.text("type")), bs_spec) {
        (Some("index"), Some(s)) => s.int("index").map_or(Begin::Unknown, Begin::Index),
        (Some("keyword"), Some(s)) => match (s.text("keyword"), s.int("startfrom")) {
            (Some(k), Some(from)) => Begin::Keyword {
                keyword: k.to_string(),
                startfrom: from,
            },
            _ => Begin::Unknown,
        },
        _ => Begin::Unknown,
    };
    let fk = node.get("find_keys");
    let fk_spec = fk.and_then(|f| f.get("spec"));
    let find = match (fk.and_then(|f| f.text("type")), fk_spec) {
        (Some("range"), Some(s)) => match (s.int("lastkey"), s.int("keystep"), s.int("limit")) {
            (Some(lastkey), Some(keystep), Some(limit)) => Find::Range {
                lastkey,
                keystep,
                limit,
            },
            _ => Find::Unknown,
        },
        (Some("keynum"), Some(s)) => {
            match (s.int("keynumidx"), s.int("firstkey"), s.int("keystep")) {
                (Some(keynumidx), Some(firstkey), Some(keystep)) => Find::Keynum {
                    keynumidx,
                    firstkey,
                    keystep,
                },
                _ => Find::Unknown,
            }
        }
        _ => Find::Unknown,
    };
    KeySpec { flags, begin, find }
}

/// The key specs of a command as Redis 7.4 declares them; None if Redis's
/// data for it was not captured. Empty: Redis has no key specs for it.
pub fn specs(name: &str) -> Option<&'static [KeySpec]> {
    // Parsed on first use, kept for the life of the process (the set of
    // names is the command table's).
    type Cache = Mutex<HashMap<String, Option<&'static [KeySpec]>>>;
    static PARSED: OnceLock<Cache> = OnceLock::new();
    let mut cache = PARSED.get_or_init(Default::default).lock();
    *cache.entry(name.to_string()).or_insert_with(|| {
        let parsed = parse_specs(name)?;
        Some(Box::leak(parsed.into_boxed_slice()))
    })
}

fn parse_specs(name: &str) -> Option<Vec<KeySpec>> {
    let data = docs_data::get(name)?;
    match data.key_specs {
        Some(lines) => match parse(&mut lines.lines()) {
            Some(Node::List(items)) => Some(items.iter().map(spec_of).collect()),
            _ => None,
        },
        // Documented, without key specs.
        None if data.doc_fields > 0 => Some(vec![]),
        None => None,
    }
}

/// The legacy (first, last, step) triple and whether the keys are movable,
/// as Redis's populateCommandLegacyRangeSpec derives them.
pub fn legacy_range(specs: &[KeySpec]) -> ((i64, i64, i64), bool) {
    if specs.is_empty() {
        return ((0, 0, 0), false);
    }
    if let [only] = specs {
        if let Some((pos, lastkey, keystep)) = only.index_range() {
            let last = if lastkey < 0 { lastkey } else { pos + lastkey };
            return ((pos, last, keystep), only.has("incomplete"));
        }
    }
    let mut movable = false;
    let (mut first, mut last) = (i64::MAX, 0i64);
    let mut prev_last = 0;
    for s in specs {
        let Some((pos, lastkey, keystep)) = s.index_range() else {
            movable = true;
            continue;
        };
        if keystep != 1 || (prev_last != 0 && prev_last != pos - 1) {
            movable = true;
            continue;
        }
        movable |= s.has("incomplete");
        first = first.min(pos);
        let abs = if lastkey >= 0 { lastkey + pos } else { lastkey };
        // Redis compares as unsigned, so a negative (from the end) wins.
        if (abs as u64) > (last as u64) {
            last = abs;
        }
        prev_last = last;
    }
    if first == i64::MAX {
        return ((0, 0, 0), true);
    }
    ((first, last, 1), movable)
}

/// Key positions and the spec each came from, as Redis's
/// getKeysUsingKeySpecs finds them; None when a spec does not fit the
/// arguments (or is incomplete).
pub fn find_keys(
    specs: &'static [KeySpec],
    args: &[Bytes],
) -> Option<Vec<(usize, &'static KeySpec)>> {
    let argc = args.len() as i64;
    let mut out = vec![];
    for spec in specs {
        if spec.has("not_key") {
            continue;
        }
        let first = match &spec.begin {
            Begin::Index(pos) => *pos,
            Begin::Keyword { keyword, startfrom } => {
                match keyword_position(args, keyword, *startfrom) {
                    Some(i) => i + 1,
                    None => continue,
                }
            }
            Begin::Unknown => return None,
        };
        let (first, last, step) = match spec.find {
            Find::Range {
                lastkey,
                keystep,
                limit,
            } => {
                let last = if lastkey >= 0 {
                    first + lastkey
                } else if limit == 0 {
                    argc + lastkey
                } else {
                    first + ((argc - first) / limit + lastkey)
                };
                (first, last, keystep)
            }
            Find::Keynum {
                keynumidx,
                firstkey,
                keystep,
            } => {
                if keynumidx >= argc - first {
                    return None;
                }
                let n = parse_i64_opt(&args[(first + keynumidx) as usize]).filter(|n| *n >= 0)?;
                let first = first + firstkey;
                (first, first.saturating_add(n) - 1, keystep)
            }
            Find::Unknown => return None,
        };
        if last >= argc || last < first || first >= argc || step < 1 {
            return None;
        }
        let mut i = first;
        while i <= last {
            out.push((i as usize, spec));
            i += step;
        }
        if spec.has("incomplete") {
            return None;
        }
    }
    Some(out)
}

/// Where `keyword` is, searched as Redis does from `startfrom`.
fn keyword_position(args: &[Bytes], keyword: &str, startfrom: i64) -> Option<i64> {
    let argc = args.len() as i64;
    let start = if startfrom > 0 {
        startfrom
    } else {
        argc + startfrom
    };
    let end = if startfrom > 0 { argc - 1 } else { 0 };
    let mut i = start;
    while i != end {
        if i >= argc || i < 1 {
            break;
        }
        if args[i as usize].eq_ignore_ascii_case(keyword.as_bytes()) {
            return Some(i);
        }
        i += if start <= end { 1 } else { -1 };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<Bytes> {
        line.split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    #[test]
    fn legacy_triples_follow_redis() {
        let triple = |name| legacy_range(specs(name).unwrap());
        assert_eq!(triple("get"), ((1, 1, 1), false));
        assert_eq!(triple("mset"), ((1, -1, 2), false));
        assert_eq!(triple("blpop"), ((1, -2, 1), false));
        assert_eq!(triple("zunionstore"), ((1, 1, 1), true));
        assert_eq!(triple("zunion"), ((0, 0, 0), true));
        assert_eq!(triple("blmove"), ((1, 2, 1), false));
        assert_eq!(triple("ping"), ((0, 0, 0), false));
    }

    #[test]
    fn keys_follow_the_specs() {
        let keys = |line: &str| {
            let a = args(line);
            let s = specs(&line.split(' ').next().unwrap().to_lowercase()).unwrap();
            find_keys(s, &a).map(|k| k.iter().map(|(i, _)| *i).collect::<Vec<_>>())
        };
        assert_eq!(keys("zunionstore d 2 a b weights 1 2"), Some(vec![1, 3, 4]));
        assert_eq!(keys("zunionstore d 3 a b"), None);
        assert_eq!(keys("bzmpop 0 2 a b min"), Some(vec![3, 4]));
        assert_eq!(keys("eval s 0"), None);
        assert_eq!(keys("mset a 1 b 2"), Some(vec![1, 3]));
    }
}
