//! Frames as owned runs: the adapter between a frame allocator and the
//! [`PhysRun`] ownership tokens the layers above use.
//!
//! The allocator (mm's containers, installed at boot with [`install`]) does
//! the bookkeeping: which frames a pool may have, under which quota. arch
//! does not trust it with memory safety: every run it returns is checked
//! against arch's own record of who holds which frame (`arch::claims`)
//! before it becomes a [`PhysRun`], so a frame has one owner at a time and
//! the kernel's own memory is never handed out, whatever the allocator says.
use super::phys::{PhysRun, PAGE};

/// Names whose quota frames are charged to (mm: a container).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolId(pub(crate) u16);

/// Why no frames were handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The pool has used its quota.
    OutOfQuota,
    /// No free frames (or none contiguous and aligned enough).
    OutOfMemory,
    /// The allocator handed out frames that arch's record says someone
    /// holds or the kernel uses: an allocator bug, reported and refused.
    Refused,
    /// No allocator is installed yet.
    NoAllocator,
}

/// What arch needs from the frame allocator above it.
pub trait FrameAllocator: Sync {
    /// `count` contiguous frames aligned to `align` frames, charged to
    /// `pool`: the address of the first.
    fn alloc_run(&self, pool: PoolId, count: usize, align: usize) -> Result<u64, FrameError>;
    /// Gives back `count` frames from `pa` that [`Self::alloc_run`] charged
    /// to `pool`.
    fn free_run(&self, pool: PoolId, pa: u64, count: usize);
}

static ALLOCATOR: spin::Once<&'static dyn FrameAllocator> = spin::Once::new();

/// Installs the frame allocator (once, at boot). False if one is already
/// installed.
pub fn install(allocator: &'static dyn FrameAllocator) -> bool {
    let mut installed = false;
    ALLOCATOR.call_once(|| {
        installed = true;
        allocator
    });
    installed
}

/// `frames` contiguous frames aligned to `align` frames, charged to `pool`.
pub fn alloc(pool: PoolId, frames: usize, align: usize) -> Result<PhysRun, FrameError> {
    let allocator = ALLOCATOR.get().ok_or(FrameError::NoAllocator)?;
    let pa = allocator.alloc_run(pool, frames, align.max(1))?;
    let len = frames as u64 * PAGE;
    PhysRun::claim(pa, len, pool).ok_or_else(|| {
        log::error!("frames: the allocator handed {pool:?} {frames} frames at {pa:#x} that are not free; leaked");
        FrameError::Refused
    })
}

/// Gives frames back to the allocator (a run dropped, a table freed).
pub(super) fn give_back(pool: PoolId, pa: u64, frames: u64) {
    if let Some(allocator) = ALLOCATOR.get() {
        allocator.free_run(pool, pa, frames as usize);
    }
}

/// Gives back a page-table frame made by [`PhysRun::into_table_frame`].
fn free_table_frame(pool: PoolId, pa: u64) {
    super::claims::map().release(pa, PAGE);
    give_back(pool, pa, 1);
}

/// Page-table frames from one pool, for the `npt` engine: the nested page
/// tables of a VM ([`super::vmspace`]) and the host's own page tables.
///
/// Its `TableMemory` writes any frame it is named, so only arch makes one,
/// and only for a table whose frames all came from it: the engine names
/// only frames it got from [`npt::FrameSource::alloc_table`].
pub(super) struct TableFrames {
    pool: PoolId,
}

impl TableFrames {
    pub(super) fn new(pool: PoolId) -> TableFrames {
        TableFrames { pool }
    }

    fn entry(table: npt::HostPhysAddr, index: usize) -> *mut u64 {
        assert!(index < 512 && table.0.is_multiple_of(PAGE) && table.0 < super::phys::limit());
        super::phys::ptr(table.0).cast::<u64>().wrapping_add(index)
    }
}

impl npt::FrameSource for TableFrames {
    fn alloc_table(&mut self) -> Option<npt::HostPhysAddr> {
        let mut run = alloc(self.pool, 1, 1).ok()?;
        run.zero(0, PAGE);
        // The frame now belongs to the page table; `free_table` gives it back.
        Some(npt::HostPhysAddr(run.into_table_frame()))
    }

    fn free_table(&mut self, frame: npt::HostPhysAddr) {
        free_table_frame(self.pool, frame.0);
    }
}

impl npt::TableMemory for TableFrames {
    fn read_entry(&self, table: npt::HostPhysAddr, index: usize) -> u64 {
        // SAFETY: `table` is a page-table frame this source handed out and still owns (see the type's docs);
        // `index < 512` keeps the read inside it (checked by `entry`).
        unsafe { core::ptr::read_volatile(Self::entry(table, index)) }
    }

    fn write_entry(&mut self, table: npt::HostPhysAddr, index: usize, value: u64) {
        // SAFETY: as for `read_entry`; the CPU's walker reads the entry
        // atomically, and a volatile aligned u64 store is one write.
        unsafe { core::ptr::write_volatile(Self::entry(table, index), value) }
    }
}
