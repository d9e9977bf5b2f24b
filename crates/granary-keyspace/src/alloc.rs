//! A global-allocator wrapper that counts live heap bytes, for INFO
//! used_memory and maxmemory.
//!
//! It counts the size of the block the allocator really handed out (its
//! size class), not the size asked for, as Redis's zmalloc_size does: a
//! 66-byte request served from an 80-byte block costs 80, and a buffer
//! shrunk in place keeps costing its whole block. Counting requests made
//! used_memory (and so maxmemory) understate what the process holds.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

static USED: AtomicUsize = AtomicUsize::new(0);

pub struct Counting<A>(pub A);

/// An allocator that can tell the real size of a live block.
pub trait BlockSize {
    /// The bytes the block at `ptr` (live, from this allocator, allocated
    /// with `layout`) occupies. By default, what was asked for.
    ///
    /// # Safety
    /// `ptr` must be a live block of this allocator allocated with `layout`.
    unsafe fn block_size(&self, _ptr: *mut u8, layout: Layout) -> usize {
        layout.size()
    }
}

impl BlockSize for std::alloc::System {}

/// mimalloc, which knows its blocks' size classes.
pub struct MiMalloc;

// SAFETY: forwards every call unchanged to mimalloc.
unsafe impl GlobalAlloc for MiMalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

impl BlockSize for MiMalloc {
    unsafe fn block_size(&self, ptr: *mut u8, _layout: Layout) -> usize {
        // SAFETY: the caller passes a live mimalloc block.
        unsafe { mimalloc::MiMalloc.usable_size(ptr) }
    }
}

/// Live heap bytes allocated through [`Counting`].
pub fn used_memory() -> usize {
    USED.load(Ordering::Relaxed)
}

// SAFETY: every method forwards to the wrapped allocator with the caller's
// own arguments and only adds bookkeeping; the wrapped allocator upholds the
// GlobalAlloc contract. Exercised by every test binary of the server, which
// installs it as #[global_allocator], and by `counts_live_bytes` below.
unsafe impl<A: GlobalAlloc + BlockSize> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; `p` is live when measured.
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            USED.fetch_add(unsafe { self.0.block_size(p, layout) }, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: measured while still live, then forwarded unchanged.
        let size = unsafe { self.0.block_size(ptr, layout) };
        unsafe { self.0.dealloc(ptr, layout) };
        USED.fetch_sub(size, Ordering::Relaxed);
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; `p` is live when measured.
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            USED.fetch_add(unsafe { self.0.block_size(p, layout) }, Ordering::Relaxed);
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` is measured while live; the call is forwarded
        // unchanged; the new block is measured with its new layout.
        let old = unsafe { self.0.block_size(ptr, layout) };
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
            USED.fetch_add(
                unsafe { self.0.block_size(p, new_layout) },
                Ordering::Relaxed,
            );
            USED.fetch_sub(old, Ordering::Relaxed);
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
    fn mimalloc_reports_size_classes() {
        let m = MiMalloc;
        let layout = Layout::from_size_align(66, 8).unwrap();
        // SAFETY: the block is live between alloc and dealloc, with `layout`.
        unsafe {
            let p = m.alloc(layout);
            assert!(!p.is_null());
            let size = m.block_size(p, layout);
            assert!((66..=96).contains(&size), "66 bytes in a {size}-byte block");
            let q = m.realloc(p, layout, 40);
            let shrunk = Layout::from_size_align(40, 8).unwrap();
            assert!(m.block_size(q, shrunk) >= 40);
            m.dealloc(q, shrunk);
        }
    }

    #[test]
    fn counts_live_bytes() {
        let before = used_memory();
        let v = vec![0u8; 10 << 20];
        assert!(used_memory() >= before + (10 << 20) - (1 << 20));
        drop(v);
        assert!(used_memory() < before + (1 << 20));
    }
}
