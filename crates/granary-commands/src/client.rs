//! Connected clients: the state a connection owns ([`Client`]) and the part
//! other connections may read or act on ([`ClientInfo`], for CLIENT LIST and
//! CLIENT KILL), plus the registry of all of them.

use crate::table::Spec;
use crate::watch::{Watched, Watches};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed,
};
use std::sync::Arc;
use tokio::sync::Notify;

/// Visible to other connections. Fields updated per command are atomics.
pub struct ClientInfo {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    /// The socket's file descriptor (CLIENT LIST fd=), -1 until known.
    pub fd: AtomicI32,
    pub created_ms: u64,
    pub name: Mutex<Option<String>>,
    pub lib_name: Mutex<Option<String>>,
    pub lib_ver: Mutex<Option<String>>,
    pub db: AtomicUsize,
    pub resp: AtomicUsize,
    pub last_active_ms: AtomicU64,
    /// Index into the command table of the last command (usize::MAX: none).
    pub last_cmd: AtomicUsize,
    pub query_buf: AtomicUsize,
    pub out_buf: AtomicUsize,
    pub commands: AtomicU64,
    pub authenticated: AtomicBool,
    pub no_evict: AtomicBool,
    pub no_touch: AtomicBool,
    /// Commands queued by MULTI, or -1 outside MULTI (CLIENT LIST multi=).
    pub multi: AtomicI64,
    /// Keys watched (CLIENT LIST watch=).
    pub watching: AtomicUsize,
    /// Channels, patterns and shard channels subscribed to (CLIENT LIST
    /// sub=, psub=, ssub=).
    pub sub: AtomicUsize,
    pub psub: AtomicUsize,
    pub ssub: AtomicUsize,
    /// A watched key changed: the next EXEC fails (Redis's CLIENT_DIRTY_CAS).
    /// Set by the writer of the key, so it lives in the shared part.
    pub dirty_cas: AtomicBool,
    /// Set by CLIENT KILL; the connection closes at its next wake-up.
    pub killed: AtomicBool,
    pub wake: Notify,
    /// CLIENT TRACKING flags and redirect id, for CLIENT LIST (t, R, B,
    /// redir=); kept by `crate::tracking`.
    pub tracking: std::sync::atomic::AtomicU32,
    pub tracking_redir: AtomicI64,
}

impl ClientInfo {
    pub fn new(id: u64, addr: String, laddr: String, now_ms: u64) -> Self {
        ClientInfo {
            id,
            addr,
            laddr,
            fd: AtomicI32::new(-1),
            created_ms: now_ms,
            name: Mutex::new(None),
            lib_name: Mutex::new(None),
            lib_ver: Mutex::new(None),
            db: AtomicUsize::new(0),
            resp: AtomicUsize::new(2),
            last_active_ms: AtomicU64::new(now_ms),
            last_cmd: AtomicUsize::new(usize::MAX),
            query_buf: AtomicUsize::new(0),
            out_buf: AtomicUsize::new(0),
            commands: AtomicU64::new(0),
            authenticated: AtomicBool::new(false),
            no_evict: AtomicBool::new(false),
            no_touch: AtomicBool::new(false),
            multi: AtomicI64::new(-1),
            watching: AtomicUsize::new(0),
            sub: AtomicUsize::new(0),
            psub: AtomicUsize::new(0),
            ssub: AtomicUsize::new(0),
            dirty_cas: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            wake: Notify::new(),
            tracking: Default::default(),
            tracking_redir: AtomicI64::new(-1),
        }
    }

    pub fn kill(&self) {
        self.killed.store(true, Relaxed);
        self.wake.notify_one();
    }
}

/// Owned by the connection task.
pub struct Client {
    pub info: Arc<ClientInfo>,
    pub db: usize,
    pub resp3: bool,
    pub authenticated: bool,
    pub user: String,
    pub no_touch: bool,
    /// Between MULTI and EXEC/DISCARD: the queued commands.
    pub multi: Option<Multi>,
    /// Keys this client WATCHes.
    pub watched: Vec<Watched>,
    /// True while EXEC runs the queue: blocking commands must not block
    /// (Redis checks CLIENT_MULTI for the same purpose).
    pub in_exec: bool,
    /// Pub/sub subscriptions and the queue publishers deliver into.
    pub pubsub: crate::pubsub::Subscriptions,
    /// CLIENT TRACKING mode (`crate::tracking::flags`; 0: off).
    pub tracking: u32,
    /// The AOF offset the replies of this batch wait for (0: none).
    pub aof_offset: u64,
    /// Effects of the commands run inside EXEC (or a script), appended to
    /// the AOF as one MULTI/EXEC block when it ends.
    pub propagated: Vec<(usize, Vec<Vec<u8>>)>,
}

/// A transaction being queued.
#[derive(Default)]
pub struct Multi {
    pub queue: Vec<Queued>,
    /// A command was rejected while queueing (unknown, arity, NOAUTH, OOM,
    /// not allowed in MULTI): EXEC replies EXECABORT (CLIENT_DIRTY_EXEC).
    pub failed: bool,
    /// Flags of the queued commands OR-ed: a DENYOOM one makes EXEC itself
    /// subject to the maxmemory check, as in Redis.
    pub flags: u32,
}

/// One command waiting for EXEC, already resolved.
pub struct Queued {
    pub spec: &'static Spec,
    pub idx: usize,
    pub args: Vec<Bytes>,
}

impl Client {
    pub fn new(info: Arc<ClientInfo>, authenticated: bool) -> Self {
        info.authenticated.store(authenticated, Relaxed);
        Client {
            info,
            db: 0,
            resp3: false,
            authenticated,
            user: "default".into(),
            no_touch: false,
            multi: None,
            watched: Vec::new(),
            in_exec: false,
            pubsub: Default::default(),
            tracking: 0,
            aof_offset: 0,
            propagated: Vec::new(),
        }
    }

    pub fn id(&self) -> u64 {
        self.info.id
    }

    /// In RESP2 subscribed mode (Redis's CLIENT_PUBSUB without RESP3): only
    /// the pub/sub commands, PING, QUIT and RESET may run.
    pub fn in_subscribed_mode(&self) -> bool {
        !self.resp3 && self.pubsub.active()
    }

    pub fn select(&mut self, db: usize) {
        self.db = db;
        self.info.db.store(db, Relaxed);
    }
}

#[derive(Default)]
pub struct Clients {
    next_id: AtomicU64,
    map: Mutex<BTreeMap<u64, Arc<ClientInfo>>>,
    /// Who watches which keys (WATCH).
    pub watches: Watches,
    /// Who is subscribed to which channel (pub/sub).
    pub pubsub: crate::pubsub::PubSub,
    /// Client-side caching: who tracks which keys.
    pub tracking: crate::tracking::Table,
}

impl Clients {
    pub fn register(&self, addr: String, laddr: String, now_ms: u64) -> Arc<ClientInfo> {
        let id = self.next_id.fetch_add(1, Relaxed) + 1;
        let info = Arc::new(ClientInfo::new(id, addr, laddr, now_ms));
        self.map.lock().insert(id, info.clone());
        info
    }

    pub fn unregister(&self, id: u64) {
        self.map.lock().remove(&id);
    }

    pub fn all(&self) -> Vec<Arc<ClientInfo>> {
        self.map.lock().values().cloned().collect()
    }

    pub fn get(&self, id: u64) -> Option<Arc<ClientInfo>> {
        self.map.lock().get(&id).cloned()
    }

    pub fn count(&self) -> usize {
        self.map.lock().len()
    }
}
