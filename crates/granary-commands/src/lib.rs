//! Command execution: the command table, one module per command family
//! (`cmd::string` is Redis's t_string.c, `cmd::keys` its db.c, ...), and the
//! server-wide state commands act on. Sockets live in granary-server; this
//! crate turns argument vectors into replies.

pub mod aof;
pub mod blocking;
pub mod client;
pub mod cmd;
pub mod config;
pub mod cron;
pub mod ctx;
pub mod dispatch;
pub mod docs_data;
pub mod evict;
pub mod geohash;
pub mod glob;
pub mod lazyfree;
pub mod longdouble;
pub mod notify;
pub mod pubsub;
pub mod rdb;
pub mod server;
pub mod table;
pub mod tracking;
pub mod util;
pub mod watch;

pub use client::{Client, ClientInfo};
pub use ctx::{Action, CmdError, CmdResult, Ctx};
pub use dispatch::execute;
pub use server::Server;

/// The Redis version whose behaviour Granary matches (INFO redis_version).
pub const REDIS_VERSION: &str = "7.4.0";
/// Granary's own version.
pub const GRANARY_VERSION: &str = env!("CARGO_PKG_VERSION");
