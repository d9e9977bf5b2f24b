//! Row ids that stay above every id an earlier run used, whatever the
//! clock says.
//!
//! Appended rows are made idempotent by their ids (`INSERT ... ON CONFLICT
//! DO NOTHING`), so an id used twice would make the second row vanish.
//! Ids start at the start time in microseconds and grow by one a row, so
//! a run that appended faster than one row a microsecond, or a clock set
//! back between two runs, could start below ids already in a table. So the
//! journal directory keeps a ceiling, `ids`: no id at or above it was
//! handed out. It is raised (written and fsynced) before ids past it are
//! used, a block at a time, mostly by the journal's background thread,
//! and a start begins at or above it.

use parking_lot::Mutex;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

/// Ids reserved at a time: 16 s of rows at a million rows a second.
pub const BLOCK: i64 = 1 << 24;

pub struct IdCeiling {
    file: Mutex<File>,
    ceiling: AtomicI64,
}

impl IdCeiling {
    /// Opens (or creates) `dir/ids`; returns it with the ceiling the last
    /// run left (0 if none).
    pub fn open(dir: &Path) -> Result<IdCeiling, String> {
        let path = dir.join("ids");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| format!("can't open {}: {e}", path.display()))?;
        let mut buf = [0u8; 8];
        let ceiling = match file.read_exact_at(&mut buf, 0) {
            Ok(()) => i64::from_le_bytes(buf),
            Err(_) => {
                // Just created: its directory entry is made durable before
                // the first ceiling is relied on.
                if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
                    tracing::warn!("write-behind: can't fsync {}: {e}", dir.display());
                }
                0
            }
        };
        Ok(IdCeiling {
            file: Mutex::new(file),
            ceiling: AtomicI64::new(ceiling),
        })
    }

    pub fn get(&self) -> i64 {
        self.ceiling.load(Relaxed)
    }

    /// Makes every id below `upto` usable: raises the ceiling to `upto`
    /// plus a block, durably, unless it is there already.
    pub fn reserve(&self, upto: i64) -> Result<(), String> {
        if upto <= self.get() {
            return Ok(());
        }
        let file = self.file.lock();
        if upto <= self.get() {
            return Ok(());
        }
        let ceiling = upto.saturating_add(BLOCK);
        file.write_all_at(&ceiling.to_le_bytes(), 0)
            .and_then(|()| file.sync_data())
            .map_err(|e| format!("can't save the row id ceiling: {e}"))?;
        self.ceiling.store(ceiling, Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_survives_a_restart_and_only_rises() {
        let dir = std::env::temp_dir().join(format!("granary-ids-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let c = IdCeiling::open(&dir).unwrap();
        assert_eq!(c.get(), 0);
        c.reserve(1000).unwrap();
        assert_eq!(c.get(), 1000 + BLOCK);
        // Below the ceiling: nothing to do.
        c.reserve(10).unwrap();
        assert_eq!(c.get(), 1000 + BLOCK);
        drop(c);
        assert_eq!(IdCeiling::open(&dir).unwrap().get(), 1000 + BLOCK);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
