//! mm: physical memory, handed out through containers with quotas.
//!
//! Two sublayers, each with an executable spec in `spec` (host tests only):
//!
//! 1. [`FrameTable`]: `palloc(tag)` / `pfree(frame)` over the frames of a
//!    memory map (usable regions minus reserved ranges), with a per-frame
//!    owner tag. Promise: a frame is handed out at most once until it is
//!    freed; `palloc` returns the lowest free frame; freeing a frame that is
//!    not allocated is refused.
//! 2. [`Mm`]: containers after CertiKOS's MContainer. A root container owns
//!    all frames; `split` carves a child's quota out of its parent's;
//!    `alloc` charges a frame to a container within its quota; `free`
//!    refuses a frame the container does not own.
//!
//! No heap: the tables are fixed-size arrays. The kernel instance covers
//! [`MAX_PHYS_MEM`] (4 GiB); usable memory above that is ignored with a log
//! note. Nothing here touches the frames themselves, so the whole layer is
//! bookkeeping and runs in host tests unchanged.
//!
//! The kernel's instance sits behind the sync layer's [`Lock`]: call
//! [`init`] once at boot, then [`alloc`], [`free`], [`split`], or lock
//! [`global`] for several operations at once.
mod container;
mod frame;
mod frames;
#[cfg(test)]
pub mod spec;
#[cfg(test)]
mod tests;

pub use container::{ContainerId, ContainerInfo, Mm, MAX_CONTAINERS};
pub use frame::{Frame, PhysRange, FRAME_SIZE};
pub use frames::{FrameTable, InitReport, MAX_TAG};

use crate::arch::frames::{FrameAllocator, FrameError, PoolId};
use crate::sync::Lock;
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

/// The physical memory the kernel's frame table covers: 4 GiB.
pub const MAX_PHYS_MEM: u64 = 4 << 30;

/// Bitmap words of the kernel's frame table (64 frames each).
pub const KERNEL_FRAME_WORDS: usize = (MAX_PHYS_MEM / FRAME_SIZE / 64) as usize;

/// The kernel's memory manager type.
pub type KernelMm = Mm<KERNEL_FRAME_WORDS>;

/// What went wrong in the mm layer, and whose fault it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmError {
    /// The container (or, for `split`, its parent) has no quota left.
    OutOfQuota,
    /// No free frame, although the quota allowed one.
    OutOfMemory,
    /// The container does not own the frame it tried to free.
    NotOwner,
    /// `pfree` of a frame that is not allocated.
    NotAllocated,
    /// No container with that id exists.
    NoSuchContainer,
    /// The container table is full.
    TooManyContainers,
    /// A `palloc` tag above [`MAX_TAG`].
    BadTag,
    /// A run of 0 frames, or an alignment of 0.
    BadRun,
    /// [`init`] was called twice.
    AlreadyInitialised,
    /// `destroy` of a container that still holds frames or has children,
    /// or of the root.
    InUse,
}

impl fmt::Display for MmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MmError::OutOfQuota => "container quota exhausted",
            MmError::OutOfMemory => "no free physical frame",
            MmError::NotOwner => "frame not owned by the container",
            MmError::NotAllocated => "frame not allocated",
            MmError::NoSuchContainer => "no such container",
            MmError::TooManyContainers => "container table full",
            MmError::BadTag => "owner tag out of range",
            MmError::BadRun => "empty run or zero alignment",
            MmError::AlreadyInitialised => "mm already initialised",
            MmError::InUse => "container still holds frames or children, or is the root",
        })
    }
}

static MM: Lock<KernelMm> = Lock::new(Mm::new());
static INITIALISED: AtomicBool = AtomicBool::new(false);

/// Boot: gives the frames of `usable` minus `reserved` to the root
/// container. `reserved` must name everything in use: low memory
/// ([`PhysRange::LOW_MEMORY`]), the hypervisor image (including .bss and
/// the boot stacks), the boot information and the modules. Call once,
/// before any other mm function.
pub fn init(usable: &[PhysRange], reserved: &[PhysRange]) -> Result<InitReport, MmError> {
    if INITIALISED.swap(true, Ordering::AcqRel) {
        return Err(MmError::AlreadyInitialised);
    }
    let report = MM.lock().init(usable, reserved);
    log::info!(
        "mm: {} frames ({} MiB) managed by the root container",
        report.managed_frames,
        (report.managed_frames * FRAME_SIZE) >> 20
    );
    Ok(report)
}

/// Whether [`init`] has run.
pub fn is_initialised() -> bool {
    INITIALISED.load(Ordering::Acquire)
}

/// The kernel's memory manager, for several operations under one lock.
pub fn global() -> &'static Lock<KernelMm> {
    &MM
}

/// [`Mm::alloc`] on the kernel's instance.
pub fn alloc(c: ContainerId) -> Result<Frame, MmError> {
    MM.lock().alloc(c)
}

/// [`Mm::free`] on the kernel's instance.
pub fn free(c: ContainerId, frame: Frame) -> Result<(), MmError> {
    MM.lock().free(c, frame)
}

/// [`Mm::split`] on the kernel's instance.
pub fn split(parent: ContainerId, quota: u64) -> Result<ContainerId, MmError> {
    MM.lock().split(parent, quota)
}

/// [`Mm::alloc_run`] on the kernel's instance.
pub fn alloc_run(c: ContainerId, count: usize, align: usize) -> Result<Frame, MmError> {
    MM.lock().alloc_run(c, count, align)
}

/// [`Mm::free_run`] on the kernel's instance.
pub fn free_run(c: ContainerId, first: Frame, count: usize) -> Result<(), MmError> {
    MM.lock().free_run(c, first, count)
}

/// [`Mm::info`] on the kernel's instance.
pub fn info(c: ContainerId) -> Result<ContainerInfo, MmError> {
    MM.lock().info(c)
}

/// The kernel's containers as arch's frame pools: what [`crate::arch::frames`]
/// allocates from once [`crate::arch::frames::install`]ed at boot.
pub struct KernelFrames;

/// The one [`KernelFrames`].
pub static KERNEL_FRAMES: KernelFrames = KernelFrames;

impl From<ContainerId> for PoolId {
    fn from(c: ContainerId) -> PoolId {
        PoolId(c.index() as u16)
    }
}

impl FrameAllocator for KernelFrames {
    fn alloc_run(&self, pool: PoolId, count: usize, align: usize) -> Result<u64, FrameError> {
        alloc_run(ContainerId::from_index(usize::from(pool.0)), count, align).map(Frame::addr).map_err(|e| match e {
            MmError::OutOfQuota => FrameError::OutOfQuota,
            _ => FrameError::OutOfMemory,
        })
    }

    /// A refusal is a kernel bug: reported, and the frames stay allocated.
    fn free_run(&self, pool: PoolId, pa: u64, count: usize) {
        let container = ContainerId::from_index(usize::from(pool.0));
        let result = Frame::from_addr(pa).ok_or(MmError::NotAllocated).and_then(|f| free_run(container, f, count));
        if let Err(e) = result {
            log::error!("mm: cannot free {count} frames at {pa:#x} for {container}: {e}");
        }
    }
}
