//! The command table: one [`Spec`] per command (and subcommand) drives
//! dispatch, arity checks, key locking, COMMAND INFO/DOCS/COUNT/LIST, and
//! the compatibility table in docs/commands.md.

use crate::ctx::{CmdResult, Ctx};
use foldhash::HashMap;
use std::sync::OnceLock;

pub type Handler = fn(&mut Ctx) -> CmdResult;

/// Command flags, named as in Redis's COMMAND INFO.
pub mod flag {
    pub const WRITE: u32 = 1 << 0;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const PUBSUB: u32 = 1 << 4;
    pub const NOSCRIPT: u32 = 1 << 5;
    pub const BLOCKING: u32 = 1 << 6;
    pub const LOADING: u32 = 1 << 7;
    pub const STALE: u32 = 1 << 8;
    pub const SKIP_MONITOR: u32 = 1 << 9;
    pub const FAST: u32 = 1 << 10;
    pub const NO_AUTH: u32 = 1 << 11;
    pub const MAY_REPLICATE: u32 = 1 << 12;
    pub const NO_MULTI: u32 = 1 << 13;
    pub const ALLOW_BUSY: u32 = 1 << 14;
    pub const SKIP_SLOWLOG: u32 = 1 << 15;
    pub const NO_MANDATORY_KEYS: u32 = 1 << 16;
    pub const NO_ASYNC_LOADING: u32 = 1 << 17;
    /// Granary: the handler needs every shard locked (whole-keyspace commands).
    pub const ALL_SHARDS: u32 = 1 << 20;

    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (SKIP_MONITOR, "skip_monitor"),
        (SKIP_SLOWLOG, "skip_slowlog"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        // Redis hides may_replicate from COMMAND INFO.
        (NO_MANDATORY_KEYS, "no_mandatory_keys"),
        (NO_ASYNC_LOADING, "no_async_loading"),
        (NO_MULTI, "no_multi"),
        (ALLOW_BUSY, "allow_busy"),
    ];
}

/// Where a command's keys are among its arguments.
#[derive(Clone, Copy)]
pub enum Keys {
    None,
    /// Redis's legacy (first, last, step); negative last counts from the end.
    Range(i32, i32, i32),
    /// Arguments that are computed from the arguments (numkeys forms).
    Custom(fn(&[bytes::Bytes]) -> Vec<usize>),
}

pub struct Spec {
    /// Lowercase, as Redis reports it; subcommands are "container|sub".
    pub name: &'static str,
    /// Redis arity: n = exactly n arguments (name included), -n = at least n.
    pub arity: i32,
    pub flags: u32,
    pub keys: Keys,
    pub acl: &'static [&'static str],
    pub group: &'static str,
    pub since: &'static str,
    pub summary: &'static str,
    pub handler: Option<Handler>,
    pub subcommands: &'static [Spec],
}

impl Spec {
    pub const fn new(
        name: &'static str,
        arity: i32,
        flags: u32,
        keys: Keys,
        handler: Handler,
    ) -> Spec {
        Spec {
            name,
            arity,
            flags,
            keys,
            acl: &[],
            group: "generic",
            since: "1.0.0",
            summary: "",
            handler: Some(handler),
            subcommands: &[],
        }
    }

    /// A container command (CONFIG, CLIENT, ...) dispatching on its first argument.
    pub const fn container(name: &'static str, subcommands: &'static [Spec]) -> Spec {
        Spec {
            name,
            arity: -2,
            flags: 0,
            keys: Keys::None,
            acl: &[],
            group: "server",
            since: "1.0.0",
            summary: "",
            handler: None,
            subcommands,
        }
    }

    pub const fn group(mut self, group: &'static str, since: &'static str) -> Spec {
        self.group = group;
        self.since = since;
        self
    }

    pub const fn doc(mut self, summary: &'static str) -> Spec {
        self.summary = summary;
        self
    }

    pub const fn acl(mut self, acl: &'static [&'static str]) -> Spec {
        self.acl = acl;
        self
    }

    pub fn is_write(&self) -> bool {
        self.flags & flag::WRITE != 0
    }

    pub fn arity_ok(&self, argc: usize) -> bool {
        let a = self.arity;
        (a >= 0 && argc == a as usize) || (a < 0 && argc >= (-a) as usize)
    }

    /// Positions of the key arguments in `args`.
    pub fn key_positions(&self, args: &[bytes::Bytes]) -> Vec<usize> {
        match self.keys {
            Keys::None => vec![],
            Keys::Range(first, last, step) => {
                let n = args.len() as i32;
                let last = if last < 0 { n + last } else { last.min(n - 1) };
                let mut v = vec![];
                let mut i = first;
                while i <= last && i < n {
                    v.push(i as usize);
                    i += step.max(1);
                }
                v
            }
            Keys::Custom(f) => f(args),
        }
    }

    pub fn flag_names(&self) -> Vec<&'static str> {
        flag::NAMES
            .iter()
            .filter(|(f, _)| self.flags & f != 0)
            .map(|(_, n)| *n)
            .collect()
    }

    /// Redis's legacy key range triple for COMMAND INFO.
    pub fn legacy_range(&self) -> (i64, i64, i64) {
        match self.keys {
            Keys::Range(a, b, c) => (a as i64, b as i64, c as i64),
            _ => (0, 0, 0),
        }
    }

    /// The subcommand part of the name, for "container|sub".
    pub fn sub_name(&self) -> &'static str {
        self.name.rsplit('|').next().unwrap_or(self.name)
    }
}

/// Every command family's table, concatenated.
fn families() -> impl Iterator<Item = &'static Spec> {
    crate::cmd::FAMILIES.iter().flat_map(|f| f.iter())
}

pub struct Table {
    by_name: HashMap<&'static [u8], (&'static Spec, usize)>,
    /// Every command and subcommand; positions index the command stats.
    all: Vec<&'static Spec>,
    index: HashMap<usize, usize>,
}

impl Table {
    pub fn get() -> &'static Table {
        static T: OnceLock<Table> = OnceLock::new();
        T.get_or_init(|| {
            let top: Vec<&'static Spec> = families().collect();
            let all: Vec<&'static Spec> = top
                .iter()
                .flat_map(|s| std::iter::once(*s).chain(s.subcommands.iter()))
                .collect();
            let index: HashMap<usize, usize> = all
                .iter()
                .enumerate()
                .map(|(i, s)| (*s as *const Spec as usize, i))
                .collect();
            let by_name = top
                .iter()
                .map(|s| {
                    (
                        s.name.as_bytes(),
                        (*s, index[&(*s as *const Spec as usize)]),
                    )
                })
                .collect();
            Table {
                by_name,
                all,
                index,
            }
        })
    }

    /// Case-insensitive lookup without allocating.
    pub fn lookup(&self, name: &[u8]) -> Option<&'static Spec> {
        self.lookup_indexed(name).map(|(s, _)| s)
    }

    /// Like `lookup`, with the command's index into the stats.
    pub fn lookup_indexed(&self, name: &[u8]) -> Option<(&'static Spec, usize)> {
        let mut buf = [0u8; 32];
        if name.len() > buf.len() {
            return None;
        }
        let lower = &mut buf[..name.len()];
        for (d, s) in lower.iter_mut().zip(name) {
            *d = s.to_ascii_lowercase();
        }
        self.by_name.get(&*lower).copied()
    }

    /// Every command and subcommand.
    pub fn all(&self) -> &[&'static Spec] {
        &self.all
    }

    /// Top-level commands only.
    pub fn top_level(&self) -> impl Iterator<Item = &'static Spec> + '_ {
        self.all.iter().copied().filter(|s| !s.name.contains('|'))
    }

    pub fn index_of(&self, spec: &'static Spec) -> usize {
        self.index[&(spec as *const Spec as usize)]
    }
}

/// Finds a subcommand of a container by name, case-insensitively.
pub fn lookup_sub(container: &'static Spec, sub: &[u8]) -> Option<&'static Spec> {
    container
        .subcommands
        .iter()
        .find(|s| s.sub_name().as_bytes().eq_ignore_ascii_case(sub))
}
