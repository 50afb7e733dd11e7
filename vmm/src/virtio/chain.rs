//! The descriptor-chain walker of a split virtqueue (virtio 1.x §2.7.5):
//! pure logic over [`GuestMemory`], tested on the host with hostile
//! tables.
//!
//! Given the descriptor table and a head index, [`walk`] follows the
//! `NEXT` links and returns the chain's buffers as [`Segment`]s, the
//! device-readable ones first, then the device-writable ones. It reads
//! nothing but the descriptors themselves (16 bytes each, inside the
//! table), and every segment it returns lies inside the guest's RAM, so a
//! device that copies through the checked accessors afterwards cannot miss
//! either. A chain is refused with a [`ChainError`] when it:
//!
//! - starts or continues at an index past the queue's size;
//! - has more descriptors than the queue has entries (a loop, or a table
//!   the driver cannot have meant: the spec bounds a chain by the queue
//!   size, §2.7.5.3.1);
//! - points (a buffer) outside the guest's RAM, or wraps around;
//! - puts a device-readable buffer after a device-writable one (§2.7.4.2
//!   says the driver must not);
//! - uses `INDIRECT`, which this transport does not offer.
use arrayvec::ArrayVec;
use guest_x86::mem::GuestMemory;

/// The largest queue any device here offers; bounds a chain's length.
pub const QUEUE_MAX: u16 = 256;

/// Descriptor flags (§2.7.5).
pub mod desc_flags {
    /// The chain continues at `next`.
    pub const NEXT: u16 = 1;
    /// The buffer is device-writable (else device-readable).
    pub const WRITE: u16 = 2;
    /// The buffer holds a table of descriptors (VIRTIO_F_INDIRECT_DESC).
    pub const INDIRECT: u16 = 4;
}

/// Bytes in one descriptor: addr (u64), len (u32), flags (u16), next (u16).
pub const DESC_SIZE: u64 = 16;

/// One buffer of a chain: `len` bytes of guest RAM at `addr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub addr: u64,
    pub len: u32,
}

/// Why a chain was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainError {
    /// Descriptor `index` is past the queue's `size`.
    IndexOutOfRange { index: u16, size: u16 },
    /// More than `size` descriptors: a loop, or a chain longer than the queue.
    TooLong { size: u16 },
    /// Descriptor `index`'s buffer is not entirely inside guest RAM.
    OutsideRam { index: u16, addr: u64, len: u32 },
    /// The descriptor table itself could not be read (it was validated at
    /// queue setup; this means RAM shrank under it).
    TableUnreadable { index: u16 },
    /// Descriptor `index` is device-readable but follows a device-writable one.
    ReadableAfterWritable { index: u16 },
    /// Descriptor `index` asks for an indirect table, which is not offered.
    Indirect { index: u16 },
}

impl core::fmt::Display for ChainError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            ChainError::IndexOutOfRange { index, size } => {
                write!(f, "descriptor {index} past the queue size {size}")
            }
            ChainError::TooLong { size } => write!(f, "chain longer than the queue size {size} (a loop?)"),
            ChainError::OutsideRam { index, addr, len } => {
                write!(f, "descriptor {index}: buffer [{addr:#x}, +{len:#x}) outside guest RAM")
            }
            ChainError::TableUnreadable { index } => write!(f, "descriptor {index} unreadable"),
            ChainError::ReadableAfterWritable { index } => {
                write!(f, "descriptor {index}: device-readable buffer after a device-writable one")
            }
            ChainError::Indirect { index } => write!(f, "descriptor {index}: indirect table, not negotiated"),
        }
    }
}

/// A walked chain: its head (the id the used ring gets back) and its
/// buffers, the `readable` ones first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DescChain {
    pub head: u16,
    segments: ArrayVec<Segment, { QUEUE_MAX as usize }>,
    readable: usize,
}

impl DescChain {
    /// The device-readable buffers, in chain order.
    pub fn readable(&self) -> &[Segment] {
        &self.segments[..self.readable]
    }

    /// The device-writable buffers, in chain order.
    pub fn writable(&self) -> &[Segment] {
        &self.segments[self.readable..]
    }

    /// Bytes in the device-readable buffers.
    pub fn readable_len(&self) -> u64 {
        self.readable().iter().map(|s| u64::from(s.len)).sum()
    }

    /// Bytes in the device-writable buffers.
    pub fn writable_len(&self) -> u64 {
        self.writable().iter().map(|s| u64::from(s.len)).sum()
    }
}

/// Walks the chain starting at `head` in the descriptor table at
/// `table` (`size` entries, which the caller checked lie in RAM).
pub fn walk<M: GuestMemory + ?Sized>(mem: &M, table: u64, size: u16, head: u16) -> Result<DescChain, ChainError> {
    let size = size.min(QUEUE_MAX);
    let mut chain = DescChain { head, segments: ArrayVec::new(), readable: 0 };
    let mut index = head;
    let mut seen_writable = false;
    for _ in 0..size {
        if index >= size {
            return Err(ChainError::IndexOutOfRange { index, size });
        }
        let mut raw = [0u8; DESC_SIZE as usize];
        mem.read(table + u64::from(index) * DESC_SIZE, &mut raw).map_err(|_| ChainError::TableUnreadable { index })?;
        let addr = u64::from_le_bytes(raw[0..8].try_into().unwrap_or_default());
        let len = u32::from_le_bytes(raw[8..12].try_into().unwrap_or_default());
        let flags = u16::from_le_bytes([raw[12], raw[13]]);
        let next = u16::from_le_bytes([raw[14], raw[15]]);
        if flags & desc_flags::INDIRECT != 0 {
            return Err(ChainError::Indirect { index });
        }
        if mem.check_range(addr, u64::from(len)).is_err() {
            return Err(ChainError::OutsideRam { index, addr, len });
        }
        let writable = flags & desc_flags::WRITE != 0;
        if !writable && seen_writable {
            return Err(ChainError::ReadableAfterWritable { index });
        }
        seen_writable |= writable;
        // At most `size` descriptors reach here, and `segments` holds QUEUE_MAX.
        chain.segments.push(Segment { addr, len });
        if !writable {
            chain.readable += 1;
        }
        if flags & desc_flags::NEXT == 0 {
            return Ok(chain);
        }
        index = next;
    }
    Err(ChainError::TooLong { size })
}

impl DescChain {
    /// Copies the chain's device-readable bytes from byte `offset` on into
    /// `buf`; returns how many there were (fewer than `buf.len()` at the
    /// end of the readable part). `Err` only if RAM refused a copy.
    pub fn read_at<M: GuestMemory + ?Sized>(&self, mem: &M, offset: u64, buf: &mut [u8]) -> Result<usize, Segment> {
        let mut done = 0usize;
        for_each_piece(self.readable(), offset, buf.len(), |s, at, n| {
            mem.read(s.addr + at, &mut buf[done..done + n]).map_err(|_| s)?;
            done += n;
            Ok(())
        })?;
        Ok(done)
    }

    /// Copies `data` into the chain's device-writable bytes from byte
    /// `offset` on; returns how many fitted.
    pub fn write_at<M: GuestMemory + ?Sized>(&self, mem: &mut M, offset: u64, data: &[u8]) -> Result<usize, Segment> {
        let mut done = 0usize;
        for_each_piece(self.writable(), offset, data.len(), |s, at, n| {
            mem.write(s.addr + at, &data[done..done + n]).map_err(|_| s)?;
            done += n;
            Ok(())
        })?;
        Ok(done)
    }
}

/// Calls `f(segment, offset in it, bytes)` for the pieces of `segments`
/// that hold the `len` bytes starting `offset` bytes into them, in order.
pub fn for_each_piece(
    segments: &[Segment],
    mut offset: u64,
    mut len: usize,
    mut f: impl FnMut(Segment, u64, usize) -> Result<(), Segment>,
) -> Result<(), Segment> {
    for &s in segments {
        if len == 0 {
            break;
        }
        let seg_len = u64::from(s.len);
        if offset >= seg_len {
            offset -= seg_len;
            continue;
        }
        let n = (seg_len - offset).min(len as u64) as usize;
        f(s, offset, n)?;
        len -= n;
        offset = 0;
    }
    Ok(())
}
