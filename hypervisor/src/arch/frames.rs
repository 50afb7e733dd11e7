//! Frames as owned runs: the adapter between the mm layer's allocator and
//! the [`PhysRun`] ownership tokens the layers above use.
//!
//! mm does the bookkeeping (who owns which frame, under which quota) and
//! never touches memory; this module turns what mm hands out into a
//! [`PhysRun`], the token that lets safe code read and write the frames.
use super::phys::PhysRun;
use crate::mm::{self, ContainerId, Frame, MmError};

const PAGE: u64 = 4096;

/// `frames` contiguous frames aligned to `align` frames, charged to
/// `container`.
pub fn alloc(container: ContainerId, frames: usize, align: usize) -> Result<PhysRun, MmError> {
    let first = mm::alloc_run(container, frames, align.max(1))?;
    // SAFETY: mm has just handed these frames to `container` and to nobody else; it manages only usable RAM below 4
    // GiB (inside the identity map) minus the kernel image, the boot information and the modules.
    Ok(unsafe { PhysRun::assume_owned(first.addr(), frames as u64 * PAGE) })
}

/// Gives a run back to `container`.
pub fn free(container: ContainerId, run: PhysRun) {
    let (pa, len) = run.into_raw();
    free_raw(container, pa, (len / PAGE) as usize);
}

/// Gives back frames tracked by address only since they were allocated
/// (page-table frames). A refusal is a kernel bug: report it, leak the
/// frames.
pub fn free_raw(container: ContainerId, pa: u64, frames: usize) {
    let result = Frame::from_addr(pa).ok_or(MmError::NotAllocated).and_then(|f| mm::free_run(container, f, frames));
    if let Err(e) = result {
        log::error!("frames: cannot free {frames} frames at {pa:#x} for {container:?}: {e}");
    }
}

/// Page-table frames from one container, for the `npt` engine: the nested
/// page tables of a VM, and the host's own page tables.
pub struct TableFrames {
    pub container: ContainerId,
}

impl npt::FrameSource for TableFrames {
    fn alloc_table(&mut self) -> Option<npt::HostPhysAddr> {
        let mut run = alloc(self.container, 1, 1).ok()?;
        run.zero(0, PAGE);
        // The table now belongs to the page table; `free_table` takes it back.
        Some(npt::HostPhysAddr(run.into_raw().0))
    }

    fn free_table(&mut self, frame: npt::HostPhysAddr) {
        free_raw(self.container, frame.0, 1);
    }
}

impl npt::TableMemory for TableFrames {
    fn read_entry(&self, table: npt::HostPhysAddr, index: usize) -> u64 {
        super::phys::IdentityTables.read_entry(table, index)
    }
    fn write_entry(&mut self, table: npt::HostPhysAddr, index: usize, value: u64) {
        super::phys::IdentityTables.write_entry(table, index, value)
    }
}
