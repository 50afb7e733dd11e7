//! Physical frames and ranges of physical memory.
use core::fmt;

/// Bytes in a frame.
pub const FRAME_SIZE: u64 = 4096;

/// A 4 KiB-aligned physical frame, named by its host-physical address.
///
/// The constructors guarantee the alignment, so a `Frame` is always a valid
/// frame address (whether that frame is RAM is the allocator's business).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Frame(u64);

impl Frame {
    /// The frame at `addr`, if `addr` is 4 KiB-aligned.
    pub const fn from_addr(addr: u64) -> Option<Frame> {
        if addr.is_multiple_of(FRAME_SIZE) {
            Some(Frame(addr))
        } else {
            None
        }
    }

    /// The frame that contains `addr`.
    pub const fn containing(addr: u64) -> Frame {
        Frame(addr & !(FRAME_SIZE - 1))
    }

    /// The frame with frame number `n` (address `n * 4096`), if it exists.
    pub const fn from_number(n: u64) -> Option<Frame> {
        match n.checked_mul(FRAME_SIZE) {
            Some(addr) => Some(Frame(addr)),
            None => None,
        }
    }

    /// The host-physical address of the frame's first byte.
    pub const fn addr(self) -> u64 {
        self.0
    }

    /// The frame number: address / 4096.
    pub const fn number(self) -> u64 {
        self.0 / FRAME_SIZE
    }
}

impl From<Frame> for npt::HostPhysAddr {
    fn from(f: Frame) -> Self {
        npt::HostPhysAddr::new(f.addr())
    }
}

impl Frame {
    /// The frame at a host-physical address, if it is 4 KiB-aligned.
    pub const fn from_hpa(hpa: npt::HostPhysAddr) -> Option<Frame> {
        Frame::from_addr(hpa.as_u64())
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Frame({:#x})", self.0)
    }
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// A half-open range `[start, end)` of physical addresses, in bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PhysRange {
    pub start: u64,
    pub end: u64,
}

impl PhysRange {
    /// Memory below 1 MiB: BIOS data, option ROMs, the real-mode IVT. The
    /// kernel reserves it, as most x86 kernels do.
    pub const LOW_MEMORY: PhysRange = PhysRange::new(0, 0x10_0000);

    pub const fn new(start: u64, end: u64) -> PhysRange {
        PhysRange { start, end }
    }

    /// `[start, start + len)`, clamped at the top of the address space.
    pub const fn from_start_len(start: u64, len: u64) -> PhysRange {
        PhysRange { start, end: start.saturating_add(len) }
    }

    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// Frame numbers `[first, last)` of the frames lying wholly inside.
    pub(crate) fn inner_frames(&self) -> (u64, u64) {
        let first = self.start.div_ceil(FRAME_SIZE);
        let last = self.end / FRAME_SIZE;
        (first, last.max(first))
    }

    /// Frame numbers `[first, last)` of the frames the range touches.
    pub(crate) fn outer_frames(&self) -> (u64, u64) {
        if self.is_empty() {
            return (0, 0);
        }
        let first = self.start / FRAME_SIZE;
        let last = self.end.div_ceil(FRAME_SIZE);
        (first, last)
    }
}
