//! Command families, one module each, like Redis's source files:
//! `string` (t_string.c), `keys` (db.c, object.c), `expire` (expire.c), `connection`,
//! `client`, `server` (INFO, CONFIG, DEBUG, SHUTDOWN, ...), `introspection`
//! (COMMAND). Each exports `COMMANDS`, its slice of the command table.

pub mod client;
pub mod connection;
pub mod expire;
pub mod hash;
pub mod introspection;
pub mod keys;
pub mod list;
pub mod multi;
pub mod server;
pub mod set;
pub mod string;
pub mod zset;

use crate::table::Spec;

pub static FAMILIES: &[&[Spec]] = &[
    connection::COMMANDS,
    client::COMMANDS,
    string::COMMANDS,
    keys::COMMANDS,
    list::COMMANDS,
    expire::COMMANDS,
    hash::COMMANDS,
    multi::COMMANDS,
    set::COMMANDS,
    zset::COMMANDS,
    server::COMMANDS,
    introspection::COMMANDS,
];
