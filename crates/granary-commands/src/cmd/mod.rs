//! Command families, one module each, like Redis's source files:
//! `string` (t_string.c), `bitmap` (bitops.c), `hyperloglog`
//! (hyperloglog.c), `keys` (db.c, object.c), `dump` (DUMP/RESTORE, cluster.c),
//! `expire` (expire.c), `list` (t_list.c), `hash` (t_hash.c), `set`
//! (t_set.c), `zset` (t_zset.c), `geo` (geo.c), `pubsub` (pubsub.c),
//! `multi` (multi.c), `persistence` (SAVE, BGSAVE: rdb.c), `connection`, `client`,
//! `server` (INFO, CONFIG, DEBUG, SHUTDOWN, ...), `introspection`
//! (COMMAND). Each exports `COMMANDS`, its slice of the command table.

pub mod bitmap;
pub mod client;
pub mod connection;
pub mod dump;
pub mod expire;
pub mod geo;
pub mod hash;
pub mod hyperloglog;
pub mod introspection;
pub mod keys;
pub mod list;
pub mod multi;
pub mod persistence;
pub mod pubsub;
pub mod scripting;
pub mod server;
pub mod set;
pub mod stream;
pub mod string;
pub mod writebehind;
pub mod zset;

use crate::table::Spec;

pub static FAMILIES: &[&[Spec]] = &[
    connection::COMMANDS,
    client::COMMANDS,
    string::COMMANDS,
    bitmap::COMMANDS,
    hyperloglog::COMMANDS,
    keys::COMMANDS,
    dump::COMMANDS,
    list::COMMANDS,
    expire::COMMANDS,
    hash::COMMANDS,
    multi::COMMANDS,
    pubsub::COMMANDS,
    set::COMMANDS,
    zset::COMMANDS,
    geo::COMMANDS,
    stream::COMMANDS,
    persistence::COMMANDS,
    server::COMMANDS,
    introspection::COMMANDS,
    scripting::COMMANDS,
    writebehind::COMMANDS,
];
