//! The Granary server: start-up configuration, the TCP listener, and the
//! per-connection loop that reads RESP, runs commands and writes replies.

pub mod conn;
pub mod startup;

pub use startup::{parse_args, run, Options};
