//! The "a script is running" state other clients see: before
//! busy-reply-threshold they wait for it to finish (as they would queue
//! behind Redis's single thread), after it they get BUSY, and SCRIPT KILL /
//! FUNCTION KILL ask the script to stop.
//!
//! Waiting happens here, before the dispatcher takes any shard lock: a
//! command stuck on a shard mutex for the whole length of a script would
//! hold a tokio worker that SCRIPT KILL may need.

use crate::server::Server;
use crate::table::{flag, Keys, Spec};
use crate::util::is;
use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const BUSY_EVAL: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
pub const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";
pub const NOTBUSY: &str = "NOTBUSY No scripts in execution right now.";
pub const UNKILLABLE: &str = "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.";

/// What is running, for FUNCTION STATS and the kill commands.
#[derive(Clone, Default)]
pub struct Running {
    pub started: Option<Instant>,
    /// EVAL/EVALSHA (true) or FCALL (false).
    pub eval: bool,
    /// Function name (FCALL) or "" (EVAL).
    pub name: String,
    /// The command that started it, arguments included.
    pub command: Vec<Bytes>,
}

#[derive(Default)]
pub struct Busy {
    /// Fast check for the dispatcher: one relaxed load per command.
    active: AtomicBool,
    /// Set by SCRIPT KILL / FUNCTION KILL; the Lua hook raises on it.
    pub kill: Arc<AtomicBool>,
    /// The script called a write command: it cannot be killed any more.
    pub wrote: AtomicBool,
    state: Mutex<Running>,
    done: Condvar,
}

/// Marks a script as running until dropped (also on panic).
pub struct RunGuard<'a>(&'a Busy);

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        let mut s = self.0.state.lock();
        *s = Running::default();
        self.0.active.store(false, Relaxed);
        self.0.done.notify_all();
    }
}

impl Busy {
    pub fn begin(&self, eval: bool, name: &str, command: &[Bytes]) -> RunGuard<'_> {
        let mut s = self.state.lock();
        *s = Running {
            started: Some(Instant::now()),
            eval,
            name: name.to_string(),
            command: command.to_vec(),
        };
        self.kill.store(false, Relaxed);
        self.wrote.store(false, Relaxed);
        self.active.store(true, Relaxed);
        RunGuard(self)
    }

    #[inline]
    pub fn active(&self) -> bool {
        self.active.load(Relaxed)
    }

    pub fn running(&self) -> Running {
        self.state.lock().clone()
    }

    /// Waits until no script runs, or until the one running has run for
    /// `threshold`; then returns the BUSY error if one still runs.
    pub fn wait(&self, threshold: Duration) -> Option<&'static str> {
        let mut s = self.state.lock();
        loop {
            let started = s.started?;
            let deadline = started + threshold;
            if Instant::now() >= deadline {
                return Some(if s.eval { BUSY_EVAL } else { BUSY_FUNCTION });
            }
            self.done.wait_until(&mut s, deadline);
        }
    }

    /// SCRIPT KILL (`eval`) or FUNCTION KILL: the reply's error, or None
    /// once the kill is requested.
    pub fn request_kill(&self, eval: bool) -> Option<&'static str> {
        let s = self.state.lock();
        if s.started.is_none() {
            return Some(NOTBUSY);
        }
        if self.wrote.load(Relaxed) {
            return Some(UNKILLABLE);
        }
        if s.eval != eval {
            return Some(if s.eval { BUSY_EVAL } else { BUSY_FUNCTION });
        }
        self.kill.store(true, Relaxed);
        None
    }
}

/// Called by the dispatcher for every command while a script runs: Ok to
/// go ahead (the script ended, or the command is one Redis allows during a
/// busy script and needs no shard lock), else the BUSY error.
pub fn gate(server: &Server, spec: &Spec, args: &[Bytes]) -> Result<(), &'static str> {
    let busy = &server.scripting.busy;
    if allowed_while_busy(spec, args) {
        return Ok(());
    }
    let ms = server.config.get_int("busy-reply-threshold").max(0) as u64;
    match busy.wait(Duration::from_millis(ms)) {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

/// Redis's allow-busy commands, minus those that would wait for the
/// script's shard locks (WATCH, EXEC) and SHUTDOWN without NOSAVE.
fn allowed_while_busy(spec: &Spec, args: &[Bytes]) -> bool {
    if spec.flags & flag::ALLOW_BUSY == 0 || spec.flags & flag::ALL_SHARDS != 0 {
        return false;
    }
    if !matches!(spec.keys, Keys::None) || spec.name == "exec" {
        return false;
    }
    if spec.name == "shutdown" {
        return args[1..].iter().any(|a| is(a, "NOSAVE"));
    }
    true
}
