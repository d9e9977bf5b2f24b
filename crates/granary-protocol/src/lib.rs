//! RESP wire format: request parsing (multibulk and inline) and reply encoding
//! for RESP2 and RESP3.
//!
//! Nothing here knows about commands or the keyspace; the server feeds bytes
//! in and takes argument vectors out, and command code writes replies through
//! [`Reply`] without caring which protocol version the client speaks.

mod parse;
mod reply;

pub use parse::{split_inline_args, ParseLimits, Parser, ProtocolError};
pub use reply::{format_double, Reply, BIG_CHUNK};
