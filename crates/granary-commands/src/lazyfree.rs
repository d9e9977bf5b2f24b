//! Background freeing: large values deleted by UNLINK, and whole databases
//! emptied by FLUSHDB/FLUSHALL ASYNC, are dropped on a separate thread so the
//! command path never pays for freeing millions of allocations.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;

pub struct LazyFree {
    tx: Sender<Box<dyn Send>>,
    pending: Arc<AtomicU64>,
    freed: Arc<AtomicU64>,
}

impl LazyFree {
    pub fn start() -> Self {
        let (tx, rx) = channel::<Box<dyn Send>>();
        let pending = Arc::new(AtomicU64::new(0));
        let freed = Arc::new(AtomicU64::new(0));
        let (p, f) = (pending.clone(), freed.clone());
        std::thread::Builder::new()
            .name("granary-lazyfree".into())
            .spawn(move || {
                for obj in rx {
                    drop(obj);
                    p.fetch_sub(1, Relaxed);
                    f.fetch_add(1, Relaxed);
                }
            })
            .expect("spawn lazyfree thread");
        LazyFree { tx, pending, freed }
    }

    /// Drops `obj` in the background.
    pub fn free<T: Send + 'static>(&self, obj: T) {
        self.pending.fetch_add(1, Relaxed);
        if let Err(e) = self.tx.send(Box::new(obj)) {
            // The thread is gone (only at exit): free here.
            drop(e);
            self.pending.fetch_sub(1, Relaxed);
        }
    }

    pub fn pending(&self) -> u64 {
        self.pending.load(Relaxed)
    }

    pub fn freed(&self) -> u64 {
        self.freed.load(Relaxed)
    }
}
