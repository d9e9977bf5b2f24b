//! Keeps the flusher out of the commands' way when CPUs are scarce.
//!
//! The flusher runs at a lower priority than the threads serving commands,
//! but a fair scheduler still gives it a share whenever it is runnable, and
//! on a small machine that share is taken from commands: writing rows into
//! SQLite (or a PostgreSQL on the same host) costs about as much CPU per
//! row as the command that made it. So the flusher watches, over each
//! slice of its own work (building a batch's operations, then each chunk),
//! how long it waited for a CPU while it was runnable (the kernel's
//! per-thread `run_delay`, /proc/thread-self/schedstat). Waiting a tenth
//! of the slice or more means other threads want every CPU (on a quiet
//! machine it waits next to nothing; measured under a saturating load,
//! a quarter let through slices that still took a tenth of the commands'
//! throughput). It then pauses
//! after the slice so that its own work (the slice less its waits for a
//! CPU: its CPU time and the database's round trips, which on a shared
//! host are the database's CPU time) takes at most a budget of the wall
//! time: 5 % while the backlog is small, growing with the backlog to all of
//! it at half of `writebehind-max-pending`. A burst of writes is absorbed
//! by the backlog and written once the CPUs are free; a sustained load
//! that the budget cannot keep up with raises the backlog until the
//! flusher gets the CPU it needs, well before writes would be refused.
//! With a CPU to itself the flusher never pauses, and a WRITEBEHIND FLUSH
//! is never paced.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

/// The flusher's share of the wall time while it has to wait for CPUs and
/// the backlog is small.
const MIN_BUDGET: f64 = 0.05;
/// Waiting for a CPU at least this share of a slice means CPUs are scarce.
const CONTENDED: f64 = 0.1;
/// The longest pause after one slice (the pause is rechecked after it).
const MAX_PAUSE: Duration = Duration::from_millis(500);

/// Measures the flusher's slices of work (see the module doc).
pub struct Pacer {
    /// The flusher thread's own /proc/thread-self/schedstat; None where the
    /// kernel has no such file (then the flusher never pauses).
    schedstat: Option<File>,
    started: Instant,
    waited_ns: u64,
}

impl Pacer {
    /// Called on the flusher thread: /proc/thread-self names the thread
    /// that opens it.
    pub fn for_this_thread() -> Pacer {
        let schedstat = File::open("/proc/thread-self/schedstat").ok();
        let mut p = Pacer {
            schedstat,
            started: Instant::now(),
            waited_ns: 0,
        };
        if p.run_delay_ns().is_none() {
            p.schedstat = None;
        }
        p
    }

    /// Nanoseconds this thread has spent runnable but waiting for a CPU.
    fn run_delay_ns(&self) -> Option<u64> {
        let f = self.schedstat.as_ref()?;
        let mut buf = [0u8; 96];
        let n = f.read_at(&mut buf, 0).ok()?;
        // "<on-cpu ns> <run_delay ns> <timeslices>"
        let text = std::str::from_utf8(&buf[..n]).ok()?;
        text.split_whitespace().nth(1)?.parse().ok()
    }

    /// A slice of work starts.
    pub fn start(&mut self) {
        self.started = Instant::now();
        self.waited_ns = self.run_delay_ns().unwrap_or(0);
    }

    /// The slice started by `start` ended: how long to pause before the
    /// next, with `backlog` rows not yet committed out of `max_pending`.
    pub fn pause(&self, backlog: u64, max_pending: u64) -> Duration {
        let Some(now) = self.run_delay_ns() else {
            return Duration::ZERO;
        };
        let waited = Duration::from_nanos(now.saturating_sub(self.waited_ns));
        pause_for(self.started.elapsed(), waited, backlog, max_pending)
    }
}

/// The pause after a slice of `wall` time in which the flusher waited
/// `waited` for a CPU (the policy of the module doc, apart from the clock).
pub fn pause_for(wall: Duration, waited: Duration, backlog: u64, max_pending: u64) -> Duration {
    if wall.is_zero() || waited.as_secs_f64() < CONTENDED * wall.as_secs_f64() {
        return Duration::ZERO;
    }
    let pressure = (2.0 * backlog as f64 / max_pending.max(1) as f64).min(1.0);
    let budget = MIN_BUDGET + (1.0 - MIN_BUDGET) * pressure;
    let worked = wall.saturating_sub(waited);
    worked.div_f64(budget).saturating_sub(wall).min(MAX_PAUSE)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn pauses_only_when_cpus_are_scarce_and_less_as_the_backlog_grows() {
        // A CPU to itself: no pause, whatever the backlog.
        assert_eq!(pause_for(10 * MS, MS / 2, 0, 1000), Duration::ZERO);
        // Worked 5 ms of a 10 ms slice, empty backlog: 5 % of the wall
        // time, so 100 ms in all.
        assert_eq!(pause_for(10 * MS, 5 * MS, 0, 1000), 90 * MS);
        // Waiting more leaves less to pause.
        assert_eq!(pause_for(10 * MS, 9 * MS, 0, 1000), 10 * MS);
        // A quarter of max_pending waiting: budget 52.5 %.
        let p = pause_for(10 * MS, 3 * MS, 250, 1000);
        assert!(p > 3 * MS && p < 4 * MS, "{p:?}");
        // Half of max_pending: no pause any more.
        assert_eq!(pause_for(10 * MS, 5 * MS, 500, 1000), Duration::ZERO);
        assert_eq!(pause_for(10 * MS, 5 * MS, 5000, 1000), Duration::ZERO);
        // Long slices pause at most MAX_PAUSE before looking again.
        assert_eq!(pause_for(100 * MS, 50 * MS, 0, 1000), MAX_PAUSE);
    }

    /// Linux with schedstat info (Debian's kernels, and the kernels
    /// Granary is tested on) shows the file; elsewhere the flusher never
    /// pauses.
    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_threads_wait_for_a_cpu() {
        assert!(Pacer::for_this_thread().run_delay_ns().is_some());
    }
}
