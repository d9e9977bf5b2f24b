//! A global-allocator wrapper that counts live heap bytes, for INFO
//! used_memory and maxmemory.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

static USED: AtomicUsize = AtomicUsize::new(0);

pub struct Counting<A>(pub A);

/// Live heap bytes allocated through [`Counting`].
pub fn used_memory() -> usize {
    USED.load(Ordering::Relaxed)
}

// SAFETY: every method forwards to the wrapped allocator with the caller's
// own arguments and only adds bookkeeping; the wrapped allocator upholds the
// GlobalAlloc contract. Exercised by every test binary of the server, which
// installs it as #[global_allocator], and by `counts_live_bytes` below.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            USED.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { self.0.dealloc(ptr, layout) };
        USED.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            USED.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            USED.fetch_add(new_size, Ordering::Relaxed);
            USED.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[global_allocator]
    static A: Counting<std::alloc::System> = Counting(std::alloc::System);

    #[test]
    fn counts_live_bytes() {
        let before = used_memory();
        let v = vec![0u8; 10 << 20];
        assert!(used_memory() >= before + (10 << 20) - (1 << 20));
        drop(v);
        assert!(used_memory() < before + (1 << 20));
    }
}
