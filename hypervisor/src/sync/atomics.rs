//! The atomic operations the locks need, as a trait, so that the same lock
//! code runs on `core` atomics in the kernel and on loom's in model checks.
use core::sync::atomic::{AtomicU32, Ordering};

/// A family of atomic operations on 32-bit counters.
///
/// Implementations must behave like `core::sync::atomic::AtomicU32`:
/// in particular `fetch_add` wraps around on overflow.
pub trait Atomics: 'static {
    /// The atomic 32-bit cell.
    type U32: Send + Sync;
    /// A cell holding `v`.
    fn new_u32(v: u32) -> Self::U32;
    fn load(cell: &Self::U32, order: Ordering) -> u32;
    fn store(cell: &Self::U32, v: u32, order: Ordering);
    /// Adds `v` with wrapping arithmetic and returns the previous value.
    fn fetch_add(cell: &Self::U32, v: u32, order: Ordering) -> u32;
    fn compare_exchange(
        cell: &Self::U32,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32>;
    /// Called once per iteration of a spin-wait loop.
    fn spin_hint();
}

/// The kernel's atomics: `core::sync::atomic`.
#[derive(Debug)]
pub enum CoreAtomics {}

impl Atomics for CoreAtomics {
    type U32 = AtomicU32;

    fn new_u32(v: u32) -> AtomicU32 {
        AtomicU32::new(v)
    }
    fn load(cell: &AtomicU32, order: Ordering) -> u32 {
        cell.load(order)
    }
    fn store(cell: &AtomicU32, v: u32, order: Ordering) {
        cell.store(v, order)
    }
    fn fetch_add(cell: &AtomicU32, v: u32, order: Ordering) -> u32 {
        cell.fetch_add(v, order)
    }
    fn compare_exchange(
        cell: &AtomicU32,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32> {
        cell.compare_exchange(current, new, success, failure)
    }
    fn spin_hint() {
        core::hint::spin_loop()
    }
}

/// loom's atomics, for model checking the lock code in tests.
#[cfg(test)]
#[derive(Debug)]
pub enum LoomAtomics {}

#[cfg(test)]
impl Atomics for LoomAtomics {
    type U32 = loom::sync::atomic::AtomicU32;

    fn new_u32(v: u32) -> Self::U32 {
        loom::sync::atomic::AtomicU32::new(v)
    }
    fn load(cell: &Self::U32, order: Ordering) -> u32 {
        cell.load(order)
    }
    fn store(cell: &Self::U32, v: u32, order: Ordering) {
        cell.store(v, order)
    }
    fn fetch_add(cell: &Self::U32, v: u32, order: Ordering) -> u32 {
        cell.fetch_add(v, order)
    }
    fn compare_exchange(
        cell: &Self::U32,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32> {
        cell.compare_exchange(current, new, success, failure)
    }
    fn spin_hint() {
        // loom explores a spin loop only if it yields to the other threads.
        loom::thread::yield_now()
    }
}
