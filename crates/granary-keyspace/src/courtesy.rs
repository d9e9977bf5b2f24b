//! Background work that walks the keyspace (the saver, the cron's
//! rehashing) gives its core back every half millisecond. The kernel only
//! preempts a busy thread at its tick (4 ms here), so on a core shared
//! with the command workers a background thread picked to run would
//! otherwise hold it for a whole tick while replies wait; measured on one
//! core under a write load, that made the worst PING during a BGSAVE of
//! 10M keys 30-50 ms. Yielding costs nothing when no one else wants the
//! core.

use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_micros(500);

pub struct Courtesy {
    since: Instant,
}

impl Default for Courtesy {
    fn default() -> Self {
        Courtesy {
            since: Instant::now(),
        }
    }
}

impl Courtesy {
    /// Call between bounded steps, holding no lock: yields once half a
    /// millisecond of work has passed since the last yield.
    pub fn step(&mut self) {
        if self.since.elapsed() >= EVERY {
            std::thread::yield_now();
            self.since = Instant::now();
        }
    }
}
