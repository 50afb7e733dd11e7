//! What the engine needs from the rest of the hypervisor: table frames and
//! access to their contents.
//!
//! The hypervisor implements these over its mm layer and its identity map of
//! physical memory (the only unsafe part, kept in the arch layer); host tests
//! implement them over simulated memory (`npt::sim::SimMemory`).

use crate::HostPhysAddr;

/// Gives and takes back the 4 KiB frames that hold page tables.
pub trait FrameSource {
    /// A zero-filled, 4 KiB-aligned frame below 2^52, or `None` when the
    /// quota or memory is exhausted.
    fn alloc_table(&mut self) -> Option<HostPhysAddr>;
    /// Returns a frame obtained from [`FrameSource::alloc_table`].
    fn free_table(&mut self, frame: HostPhysAddr);
}

/// Reads and writes the 512 eight-byte entries of a table frame.
///
/// Writes must be single 8-byte stores, so a concurrent hardware walker never
/// sees half an entry.
pub trait TableMemory {
    /// Entry `index` (0..512) of the table at `table`.
    fn read_entry(&self, table: HostPhysAddr, index: usize) -> u64;
    /// Sets entry `index` (0..512) of the table at `table`.
    fn write_entry(&mut self, table: HostPhysAddr, index: usize, value: u64);
}
