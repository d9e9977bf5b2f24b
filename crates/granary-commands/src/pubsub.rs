//! Pub/sub delivery (Redis's pubsub.c): who is subscribed to which channel,
//! pattern or shard channel, and the per-connection queue of messages the
//! connection task drains into its socket.
//!
//! PUBLISH takes read locks only, so publishers do not serialize each other;
//! (un)subscribing takes the write lock of one of the three maps. A message
//! is encoded once per protocol (RESP2 array, RESP3 push) per PUBLISH and
//! shared by every receiver as `Bytes`.
//!
//! [`publish`] is the entry point for anything that emits messages
//! (PUBLISH, and keyspace notifications later).

use crate::client::{Client, ClientInfo};
use crate::server::Server;
use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Notify;

type Subscribers = HashMap<Bytes, Vec<Arc<Subscriber>>>;

/// The three registries: channels, patterns, shard channels.
#[derive(Default)]
pub struct PubSub {
    channels: RwLock<Subscribers>,
    patterns: RwLock<Subscribers>,
    shard: RwLock<Subscribers>,
    /// Subscribers closed for their output buffer (INFO
    /// client_output_buffer_limit_disconnections).
    pub obuf_disconnections: AtomicUsize,
}

/// Which registry a (un)subscription is about.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Channel,
    Pattern,
    Shard,
}

impl Kind {
    fn map(self, ps: &PubSub) -> &RwLock<Subscribers> {
        match self {
            Kind::Channel => &ps.channels,
            Kind::Pattern => &ps.patterns,
            Kind::Shard => &ps.shard,
        }
    }
}

/// A subscribed connection as publishers see it: its queue and the signal
/// that wakes its task.
pub struct Subscriber {
    pub info: Arc<ClientInfo>,
    queue: Mutex<Queue>,
    /// Notified when the queue goes from empty to non-empty.
    pub ready: Notify,
}

#[derive(Default)]
struct Queue {
    messages: VecDeque<Bytes>,
    bytes: usize,
    /// Since when the queue is over the soft limit (Redis's
    /// obuf_soft_limit_reached_time).
    over_soft_since: Option<Instant>,
}

impl Subscriber {
    pub fn new(info: Arc<ClientInfo>) -> Self {
        Subscriber {
            info,
            queue: Mutex::new(Queue::default()),
            ready: Notify::new(),
        }
    }

    /// Takes up to `max_bytes` worth of queued messages (at least one).
    pub fn take(&self, max_bytes: usize) -> Vec<Bytes> {
        let mut q = self.queue.lock();
        let mut taken = Vec::new();
        let mut size = 0;
        while let Some(m) = q.messages.front() {
            if size > 0 && size + m.len() > max_bytes {
                break;
            }
            size += m.len();
            if let Some(m) = q.messages.pop_front() {
                taken.push(m);
            }
        }
        q.bytes -= size;
        if q.bytes == 0 {
            q.over_soft_since = None;
        }
        self.info.out_buf.store(q.bytes, Relaxed);
        taken
    }

    /// Queues a message that is not a PUBLISH (tracking invalidations),
    /// under the same output-buffer limit.
    pub fn push(&self, server: &Server, msg: Bytes) {
        self.deliver(msg, &mut None, server);
    }

    pub fn has_pending(&self) -> bool {
        !self.queue.lock().messages.is_empty()
    }

    /// Queues a message unless that takes the client past its pubsub
    /// output-buffer limit, in which case the client is killed (Redis's
    /// closeClientOnOutputBufferLimitReached).
    fn deliver(&self, msg: Bytes, limits: &mut Option<Limits>, server: &Server) {
        // Being closed: drop, as Redis drops replies to a CLOSE_ASAP client.
        if self.info.killed.load(Relaxed) {
            return;
        }
        let mut q = self.queue.lock();
        let was_empty = q.messages.is_empty();
        q.bytes += msg.len();
        q.messages.push_back(msg);
        let used = q.bytes;
        self.info.out_buf.store(used, Relaxed);
        // A subscriber that keeps up has an empty queue and a small message:
        // skip reading the config then. Any backlog is checked.
        if !was_empty || used > 1 << 16 {
            let l = *limits.get_or_insert_with(|| Limits::of(server));
            if l.exceeded(&mut q) {
                q.messages.clear();
                q.bytes = 0;
                drop(q);
                tracing::warn!(
                    "Client id={} addr={} scheduled to be closed ASAP for overcoming of output buffer limits.",
                    self.info.id,
                    self.info.addr
                );
                server
                    .clients
                    .pubsub
                    .obuf_disconnections
                    .fetch_add(1, Relaxed);
                self.info.kill();
                return;
            }
        }
        drop(q);
        if was_empty {
            self.ready.notify_one();
        }
    }
}

/// The pubsub class of client-output-buffer-limit.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Limits {
    hard: usize,
    soft: usize,
    soft_secs: u64,
}

impl Limits {
    const DEFAULT: Limits = Limits {
        hard: 32 << 20,
        soft: 8 << 20,
        soft_secs: 60,
    };

    fn of(server: &Server) -> Limits {
        server
            .config
            .get("client-output-buffer-limit")
            .and_then(|s| Self::parse(&s))
            .unwrap_or(Self::DEFAULT)
    }

    /// Finds "pubsub <hard> <soft> <secs>" in the config value.
    fn parse(value: &str) -> Option<Limits> {
        let words: Vec<&str> = value.split_whitespace().collect();
        let i = words
            .iter()
            .position(|w| w.eq_ignore_ascii_case("pubsub"))?;
        let num = |j: usize| -> Option<u64> { words.get(i + j)?.parse().ok() };
        Some(Limits {
            hard: num(1)? as usize,
            soft: num(2)? as usize,
            soft_secs: num(3)?,
        })
    }

    /// Redis's checkClientOutputBufferLimits: over the hard limit, or over
    /// the soft limit for longer than its time.
    fn exceeded(&self, q: &mut Queue) -> bool {
        if self.hard != 0 && q.bytes >= self.hard {
            return true;
        }
        if self.soft == 0 || q.bytes < self.soft {
            q.over_soft_since = None;
            return false;
        }
        let since = *q.over_soft_since.get_or_insert_with(Instant::now);
        since.elapsed().as_secs() >= self.soft_secs
    }
}

/// A connection's own subscriptions, in subscription order.
#[derive(Default)]
pub struct Subscriptions {
    pub subscriber: Option<Arc<Subscriber>>,
    channels: Vec<Bytes>,
    patterns: Vec<Bytes>,
    shard: Vec<Bytes>,
}

impl Subscriptions {
    fn list(&mut self, kind: Kind) -> &mut Vec<Bytes> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }

    /// The count Redis replies with: channels and patterns together, shard
    /// channels on their own.
    pub fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Shard => self.shard.len(),
            _ => self.channels.len() + self.patterns.len(),
        }
    }

    /// Subscribed to anything (Redis's CLIENT_PUBSUB flag).
    pub fn active(&self) -> bool {
        !(self.channels.is_empty() && self.patterns.is_empty() && self.shard.is_empty())
    }

    pub fn names(&self, kind: Kind) -> Vec<Bytes> {
        match kind {
            Kind::Channel => self.channels.clone(),
            Kind::Pattern => self.patterns.clone(),
            Kind::Shard => self.shard.clone(),
        }
    }
}

fn publish_counts(info: &ClientInfo, s: &Subscriptions) {
    info.sub.store(s.channels.len(), Relaxed);
    info.psub.store(s.patterns.len(), Relaxed);
    info.ssub.store(s.shard.len(), Relaxed);
}

/// Subscribes the client; false if it already was.
pub fn subscribe(server: &Server, client: &mut Client, kind: Kind, name: &Bytes) -> bool {
    let subs = &mut client.pubsub;
    if subs.list(kind).contains(name) {
        return false;
    }
    let me = subs
        .subscriber
        .get_or_insert_with(|| Arc::new(Subscriber::new(client.info.clone())))
        .clone();
    subs.list(kind).push(name.clone());
    kind.map(&server.clients.pubsub)
        .write()
        .entry(name.clone())
        .or_default()
        .push(me);
    publish_counts(&client.info, subs);
    true
}

/// Unsubscribes the client; false if it was not subscribed.
pub fn unsubscribe(server: &Server, client: &mut Client, kind: Kind, name: &[u8]) -> bool {
    let subs = &mut client.pubsub;
    let list = subs.list(kind);
    let Some(pos) = list.iter().position(|n| n[..] == *name) else {
        return false;
    };
    list.remove(pos);
    let id = client.info.id;
    let mut map = kind.map(&server.clients.pubsub).write();
    if let Some(v) = map.get_mut(name) {
        v.retain(|s| s.info.id != id);
        if v.is_empty() {
            map.remove(name);
        }
    }
    drop(map);
    publish_counts(&client.info, subs);
    true
}

/// Drops every subscription silently (RESET, disconnect).
pub fn unsubscribe_all(server: &Server, client: &mut Client) {
    for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
        for name in client.pubsub.names(kind) {
            unsubscribe(server, client, kind, &name);
        }
    }
    client.pubsub.subscriber = None;
}

/// A message encoded for both protocols, built on first use.
struct Encoded<'a> {
    parts: &'a [&'a [u8]],
    resp2: Option<Bytes>,
    resp3: Option<Bytes>,
}

impl Encoded<'_> {
    fn for_client(&mut self, info: &ClientInfo) -> Bytes {
        let resp3 = info.resp.load(Relaxed) == 3;
        let slot = if resp3 {
            &mut self.resp3
        } else {
            &mut self.resp2
        };
        slot.get_or_insert_with(|| encode(resp3, self.parts))
            .clone()
    }
}

/// `*N`/`>N` followed by the parts as bulk strings.
fn encode(resp3: bool, parts: &[&[u8]]) -> Bytes {
    let size: usize = parts.iter().map(|p| p.len() + 16).sum();
    let mut b = BytesMut::with_capacity(size + 8);
    b.put_u8(if resp3 { b'>' } else { b'*' });
    b.put_slice(parts.len().to_string().as_bytes());
    b.put_slice(b"\r\n");
    for p in parts {
        b.put_u8(b'$');
        b.put_slice(p.len().to_string().as_bytes());
        b.put_slice(b"\r\n");
        b.put_slice(p);
        b.put_slice(b"\r\n");
    }
    b.freeze()
}

/// Sends `message` to the subscribers of `channel` and of every matching
/// pattern; returns how many received it (PUBLISH's reply).
pub fn publish(server: &Server, channel: &[u8], message: &[u8]) -> usize {
    let ps = &server.clients.pubsub;
    let mut limits = None;
    let mut receivers = 0;
    if let Some(subs) = ps.channels.read().get(channel) {
        let parts: &[&[u8]] = &[b"message", channel, message];
        let mut enc = Encoded {
            parts,
            resp2: None,
            resp3: None,
        };
        for s in subs {
            s.deliver(enc.for_client(&s.info), &mut limits, server);
        }
        receivers += subs.len();
    }
    let patterns = ps.patterns.read();
    for (pattern, subs) in patterns.iter() {
        if !crate::glob::glob_match(pattern, channel, false) {
            continue;
        }
        let parts: &[&[u8]] = &[b"pmessage", pattern, channel, message];
        let mut enc = Encoded {
            parts,
            resp2: None,
            resp3: None,
        };
        for s in subs {
            s.deliver(enc.for_client(&s.info), &mut limits, server);
        }
        receivers += subs.len();
    }
    receivers
}

/// The queue of client `id` if it is subscribed to `channel` (tracking
/// finds RESP2 redirect clients on `__redis__:invalidate` this way).
pub fn subscriber_of(server: &Server, channel: &[u8], id: u64) -> Option<Arc<Subscriber>> {
    let map = server.clients.pubsub.channels.read();
    map.get(channel)?.iter().find(|s| s.info.id == id).cloned()
}

/// SPUBLISH: shard channels have no patterns.
pub fn spublish(server: &Server, channel: &[u8], message: &[u8]) -> usize {
    let ps = &server.clients.pubsub;
    let Some(subs) = ps.shard.read().get(channel).cloned() else {
        return 0;
    };
    let parts: &[&[u8]] = &[b"smessage", channel, message];
    let mut enc = Encoded {
        parts,
        resp2: None,
        resp3: None,
    };
    let mut limits = None;
    for s in &subs {
        s.deliver(enc.for_client(&s.info), &mut limits, server);
    }
    subs.len()
}

/// Names in a registry matching `pattern` (PUBSUB CHANNELS/SHARDCHANNELS).
pub fn active(server: &Server, kind: Kind, pattern: Option<&[u8]>) -> Vec<Bytes> {
    kind.map(&server.clients.pubsub)
        .read()
        .keys()
        .filter(|n| pattern.is_none_or(|p| crate::glob::glob_match(p, n, false)))
        .cloned()
        .collect()
}

/// Subscribers of one name (PUBSUB NUMSUB/SHARDNUMSUB).
pub fn count_of(server: &Server, kind: Kind, name: &[u8]) -> usize {
    kind.map(&server.clients.pubsub)
        .read()
        .get(name)
        .map_or(0, Vec::len)
}

/// Distinct names in a registry (PUBSUB NUMPAT, INFO pubsub_channels & co.).
pub fn total(server: &Server, kind: Kind) -> usize {
    kind.map(&server.clients.pubsub).read().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_the_pubsub_class() {
        let l = Limits::parse("normal 0 0 0 slave 268435456 67108864 60 pubsub 100 50 7");
        assert_eq!(
            l,
            Some(Limits {
                hard: 100,
                soft: 50,
                soft_secs: 7
            })
        );
        assert_eq!(Limits::parse("normal 0 0 0"), None);
    }

    #[test]
    fn soft_limit_counts_from_when_it_was_first_exceeded() {
        let l = Limits {
            hard: 100,
            soft: 10,
            soft_secs: 0,
        };
        let mut q = Queue {
            bytes: 5,
            ..Default::default()
        };
        assert!(!l.exceeded(&mut q));
        q.bytes = 10;
        assert!(l.exceeded(&mut q), "0 s allowed over the soft limit");
        let patient = Limits { soft_secs: 60, ..l };
        q.over_soft_since = None;
        assert!(!patient.exceeded(&mut q));
        assert!(q.over_soft_since.is_some());
        q.bytes = 100;
        assert!(patient.exceeded(&mut q), "hard limit is immediate");
    }

    #[test]
    fn encode_matches_resp() {
        assert_eq!(
            &encode(false, &[b"message", b"ch", b"hi"])[..],
            b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n"
        );
        assert_eq!(&encode(true, &[b"x"])[..], b">1\r\n$1\r\nx\r\n");
    }
}
