//! virtio-blk (device ID 2, virtio 1.x §5.2) over a disk image in memory
//! the hypervisor holds for the VM.
//!
//! One request queue of [`QUEUE_SIZE`] entries. Features: `VIRTIO_BLK_F_SEG_MAX`
//! (a request may have [`SEG_MAX`] data buffers), `VIRTIO_BLK_F_FLUSH`,
//! and `VIRTIO_BLK_F_RO` for a read-only disk. The configuration space
//! holds the capacity (512-byte sectors; bytes of the image past the last
//! whole sector are not seen) and `seg_max`.
//!
//! A request is a 16-byte header (type u32, reserved u32, sector u64) in
//! device-readable buffers, data, and one status byte, the last
//! device-writable byte. Served types: `IN` (read), `OUT` (write),
//! `FLUSH` (nothing to do: the image is memory, and stays the VM's until
//! it ends) and `GET_ID` (the serial, up to 20 bytes). A request past the
//! disk's end, with a short header, whose data is not whole sectors, or a
//! write to a read-only disk completes with `VIRTIO_BLK_S_IOERR`; an
//! unknown type with `VIRTIO_BLK_S_UNSUPP`. Only a chain without a
//! device-writable byte (no room for the status) is a queue error.
//!
//! A device reset keeps the disk's contents: the image is the disk, not a
//! cache of it.
use super::chain::{for_each_piece, DescChain};
use super::device::VirtioDevice;
use super::queue::{QueueError, Virtqueue};
use guest_x86::mem::GuestMemory;

/// The block device's ID.
pub const DEVICE_ID: u32 = 2;
/// Entries in the request queue.
pub const QUEUE_SIZE: u16 = 256;
/// Data buffers per request: the queue less the header and the status.
pub const SEG_MAX: u32 = QUEUE_SIZE as u32 - 2;
/// Bytes in a sector.
pub const SECTOR: u64 = 512;
/// Bytes of the serial GET_ID returns (`VIRTIO_BLK_ID_BYTES`).
pub const ID_BYTES: usize = 20;

/// Feature bits (§5.2.3).
pub mod feature {
    pub const SEG_MAX: u64 = 1 << 2;
    pub const RO: u64 = 1 << 5;
    pub const FLUSH: u64 = 1 << 9;
}

/// Request types (§5.2.6).
pub mod req {
    pub const IN: u32 = 0;
    pub const OUT: u32 = 1;
    pub const FLUSH: u32 = 4;
    pub const GET_ID: u32 = 8;
}

/// Status bytes.
pub mod status {
    pub const OK: u8 = 0;
    pub const IOERR: u8 = 1;
    pub const UNSUPP: u8 = 2;
}

/// The disk's bytes.
pub enum Image<'a> {
    ReadOnly(&'a [u8]),
    ReadWrite(&'a mut [u8]),
}

impl Image<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Image::ReadOnly(b) => b,
            Image::ReadWrite(b) => b,
        }
    }
}

/// A virtio block device.
pub struct Blk<'a> {
    image: Image<'a>,
    serial: [u8; ID_BYTES],
}

/// Why a request failed: the status it completes with.
type Status = u8;

impl<'a> Blk<'a> {
    /// A disk over `image`, reporting `serial` (cut to 20 bytes) to GET_ID.
    pub fn new(image: Image<'a>, serial: &str) -> Self {
        let mut s = [0u8; ID_BYTES];
        let n = serial.len().min(ID_BYTES);
        s[..n].copy_from_slice(&serial.as_bytes()[..n]);
        Blk { image, serial: s }
    }

    /// 512-byte sectors the guest sees.
    pub fn capacity(&self) -> u64 {
        self.image.bytes().len() as u64 / SECTOR
    }

    pub fn read_only(&self) -> bool {
        matches!(self.image, Image::ReadOnly(_))
    }

    /// The disk's bytes (what the guest wrote included).
    pub fn bytes(&self) -> &[u8] {
        self.image.bytes()
    }

    /// The byte range of `len` bytes at `sector`, if whole sectors inside
    /// the disk.
    fn span(&self, sector: u64, len: u64) -> Result<core::ops::Range<usize>, Status> {
        let start = sector.checked_mul(SECTOR).ok_or(status::IOERR)?;
        let end = start.checked_add(len).ok_or(status::IOERR)?;
        if !len.is_multiple_of(SECTOR) || end > self.capacity() * SECTOR {
            return Err(status::IOERR);
        }
        Ok(start as usize..end as usize)
    }

    /// Serves one request; returns the bytes written into the chain before
    /// the status byte, and the status.
    fn handle(&mut self, chain: &DescChain, mem: &mut dyn GuestMemory) -> (u64, Status) {
        let mut header = [0u8; 16];
        if chain.read_at(mem, 0, &mut header) != Ok(16) {
            return (0, status::IOERR);
        }
        let kind = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let sector = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
        // Data buffers: the device-writable bytes before the status byte
        // (reads, GET_ID), or the device-readable bytes after the header
        // (writes).
        let in_len = chain.writable_len() - 1;
        match kind {
            req::IN => match self.read(chain, mem, sector, in_len) {
                Ok(()) => (in_len, status::OK),
                Err(s) => (0, s),
            },
            req::OUT => (0, self.write(chain, mem, sector).err().unwrap_or(status::OK)),
            req::FLUSH => (0, status::OK),
            req::GET_ID => {
                let n = (in_len as usize).min(ID_BYTES);
                match chain.write_at(mem, 0, &self.serial[..n]) {
                    Ok(done) => (done as u64, status::OK),
                    Err(_) => (0, status::IOERR),
                }
            }
            _ => (0, status::UNSUPP),
        }
    }

    fn read(&self, chain: &DescChain, mem: &mut dyn GuestMemory, sector: u64, len: u64) -> Result<(), Status> {
        let span = self.span(sector, len)?;
        let disk = &self.image.bytes()[span];
        let mut pos = 0usize;
        for_each_piece(chain.writable(), 0, disk.len(), |s, at, n| {
            mem.write(s.addr + at, &disk[pos..pos + n]).map_err(|_| s)?;
            pos += n;
            Ok(())
        })
        .map_err(|_| status::IOERR)
    }

    fn write(&mut self, chain: &DescChain, mem: &mut dyn GuestMemory, sector: u64) -> Result<(), Status> {
        let len = chain.readable_len() - 16;
        let span = self.span(sector, len)?;
        let Image::ReadWrite(image) = &mut self.image else {
            return Err(status::IOERR);
        };
        let disk = &mut image[span];
        let mut pos = 0usize;
        for_each_piece(chain.readable(), 16, disk.len(), |s, at, n| {
            mem.read(s.addr + at, &mut disk[pos..pos + n]).map_err(|_| s)?;
            pos += n;
            Ok(())
        })
        .map_err(|_| status::IOERR)
    }
}

impl VirtioDevice for Blk<'_> {
    fn device_id(&self) -> u32 {
        DEVICE_ID
    }

    fn kind(&self) -> &'static str {
        "virtio-blk"
    }

    fn features(&self) -> u64 {
        let ro = if self.read_only() { feature::RO } else { 0 };
        feature::SEG_MAX | feature::FLUSH | ro
    }

    fn queue_max_sizes(&self) -> &'static [u16] {
        &[QUEUE_SIZE]
    }

    /// capacity (u64) at 0, size_max (u32, not offered) at 8, seg_max
    /// (u32) at 12; the rest reads zero.
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let mut config = [0u8; 24];
        config[0..8].copy_from_slice(&self.capacity().to_le_bytes());
        config[12..16].copy_from_slice(&SEG_MAX.to_le_bytes());
        for (i, b) in data.iter_mut().enumerate() {
            *b = offset.checked_add(i as u64).and_then(|at| config.get(at as usize)).copied().unwrap_or(0);
        }
    }

    fn reset(&mut self) {}

    fn serve(&mut self, index: usize, queues: &mut [Virtqueue], mem: &mut dyn GuestMemory) -> Result<(), QueueError> {
        let q = queues.get_mut(index).ok_or(QueueError::NotReady)?;
        while let Some(chain) = q.pop(mem)? {
            if chain.writable_len() == 0 {
                return Err(QueueError::Device("request without a status byte"));
            }
            let (written, status) = self.handle(&chain, mem);
            let at = chain.writable_len() - 1;
            chain.write_at(mem, at, &[status]).map_err(|_| QueueError::Device("status byte not writable"))?;
            // The used length counts the status byte too (§5.2.6).
            q.push_used(mem, chain.head, u32::try_from(written + 1).unwrap_or(u32::MAX))?;
        }
        Ok(())
    }
}
