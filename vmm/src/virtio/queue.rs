//! One split virtqueue as the device sees it (virtio 1.x §2.7): where the
//! driver put its three areas, and the device's two counters.
//!
//! - descriptor table: `size` × 16 bytes, 16-byte aligned;
//! - driver area (available ring): flags u16, idx u16, ring[size] u16,
//!   used_event u16; 2-byte aligned;
//! - device area (used ring): flags u16, idx u16, ring[size] {id u32,
//!   len u32}, avail_event u16; 4-byte aligned.
//!
//! With VIRTIO_F_EVENT_IDX (always offered here) the device writes
//! `avail_event` so the driver notifies only when it adds the buffer the
//! device will look at next, and interrupts the driver only when the used
//! index passes the driver's `used_event` (§2.7.10, the `vring_need_event`
//! rule). Without it the ring flags do the same coarser job (the device
//! honours `VIRTQ_AVAIL_F_NO_INTERRUPT` and never sets
//! `VIRTQ_USED_F_NO_NOTIFY`).
//!
//! Every ring access goes through [`GuestMemory`]; the areas are checked
//! against the guest's RAM when the driver makes the queue ready
//! ([`Virtqueue::validate`]), and any access that still fails is a
//! [`QueueError`], which puts the device into DEVICE_NEEDS_RESET.
use super::chain::{self, ChainError, DescChain, DESC_SIZE};
use guest_x86::mem::GuestMemory;

/// `VIRTQ_AVAIL_F_NO_INTERRUPT`: the driver does not want interrupts
/// (ignored once EVENT_IDX is negotiated).
pub const AVAIL_F_NO_INTERRUPT: u16 = 1;

/// Why a queue could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// A chain was malformed.
    Chain(ChainError),
    /// The driver's available index ran more than `size` ahead of the device.
    AvailIndexJump { avail: u16, seen: u16 },
    /// A ring could not be read or written (outside RAM).
    Ring { gpa: u64 },
    /// The device was notified or used while the queue was not ready.
    NotReady,
    /// The ready queue's setup is invalid: a reason.
    Setup(&'static str),
    /// A device-specific request could not be served at all: a reason.
    Device(&'static str),
}

impl From<ChainError> for QueueError {
    fn from(e: ChainError) -> Self {
        QueueError::Chain(e)
    }
}

impl core::fmt::Display for QueueError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            QueueError::Chain(e) => write!(f, "{e}"),
            QueueError::AvailIndexJump { avail, seen } => {
                write!(f, "available index {avail} more than the queue size past {seen}")
            }
            QueueError::Ring { gpa } => write!(f, "ring access at {gpa:#x} outside guest RAM"),
            QueueError::NotReady => write!(f, "queue not ready"),
            QueueError::Setup(why) => write!(f, "queue setup: {why}"),
            QueueError::Device(why) => write!(f, "{why}"),
        }
    }
}

/// One split virtqueue: the driver's setup (through the transport's
/// registers) and the device's position in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Virtqueue {
    /// Largest size the device accepts (QueueNumMax); 0: no such queue.
    pub max_size: u16,
    /// Entries, as the driver set them (QueueNum).
    pub size: u16,
    /// QueueReady.
    pub ready: bool,
    /// Guest-physical addresses of the descriptor table, the driver area
    /// (available ring) and the device area (used ring).
    pub desc: u64,
    pub driver: u64,
    pub device: u64,
    /// VIRTIO_F_EVENT_IDX was negotiated.
    pub event_idx: bool,
    /// The next available-ring entry the device will take.
    next_avail: u16,
    /// The next used-ring entry the device will fill.
    next_used: u16,
    /// The used index at the last interrupt decision (EVENT_IDX).
    signalled_used: u16,
}

impl Virtqueue {
    /// A queue that is not set up, of at most `max_size` entries.
    pub const fn new(max_size: u16) -> Self {
        Virtqueue {
            max_size,
            size: max_size,
            ready: false,
            desc: 0,
            driver: 0,
            device: 0,
            event_idx: false,
            next_avail: 0,
            next_used: 0,
            signalled_used: 0,
        }
    }

    /// Back to the state after a device reset: not ready, nothing set up.
    pub fn reset(&mut self) {
        *self = Virtqueue::new(self.max_size);
    }

    /// The driver took the queue back (QueueReady 0): not ready, its
    /// position forgotten, its setup kept.
    pub fn unready(&mut self) {
        *self = Virtqueue {
            size: self.size,
            desc: self.desc,
            driver: self.driver,
            device: self.device,
            ..Virtqueue::new(self.max_size)
        };
    }

    /// Checks the driver's setup when it makes the queue ready: a size that
    /// is a power of two up to `max_size`, and each area aligned and inside
    /// the guest's RAM.
    pub fn validate(&self, ram: u64) -> Result<(), &'static str> {
        let size = u64::from(self.size);
        if self.size == 0 || self.size > self.max_size || !self.size.is_power_of_two() {
            return Err("size not a power of two up to the maximum");
        }
        let areas = [
            (
                self.desc,
                size * DESC_SIZE,
                16,
                "descriptor table not 16-byte aligned",
                "descriptor table outside guest RAM",
            ),
            (self.driver, 6 + 2 * size, 2, "driver area not 2-byte aligned", "driver area outside guest RAM"),
            (self.device, 6 + 8 * size, 4, "device area not 4-byte aligned", "device area outside guest RAM"),
        ];
        for (gpa, len, align, misaligned, outside) in areas {
            if gpa % align != 0 {
                return Err(misaligned);
            }
            if gpa.checked_add(len).is_none_or(|end| end > ram) {
                return Err(outside);
            }
        }
        Ok(())
    }

    fn read_u16<M: GuestMemory + ?Sized>(mem: &M, gpa: u64) -> Result<u16, QueueError> {
        let mut b = [0u8; 2];
        mem.read(gpa, &mut b).map_err(|_| QueueError::Ring { gpa })?;
        Ok(u16::from_le_bytes(b))
    }

    fn write_u16<M: GuestMemory + ?Sized>(mem: &mut M, gpa: u64, v: u16) -> Result<(), QueueError> {
        mem.write(gpa, &v.to_le_bytes()).map_err(|_| QueueError::Ring { gpa })
    }

    /// The driver's available index.
    fn avail_idx<M: GuestMemory + ?Sized>(&self, mem: &M) -> Result<u16, QueueError> {
        Self::read_u16(mem, self.driver + 2)
    }

    /// Where the device's `avail_event` lives (after the used ring).
    fn avail_event_gpa(&self) -> u64 {
        self.device + 4 + 8 * u64::from(self.size)
    }

    /// Where the driver's `used_event` lives (after the available ring).
    fn used_event_gpa(&self) -> u64 {
        self.driver + 4 + 2 * u64::from(self.size)
    }

    /// Takes the next chain the driver made available, walked and checked,
    /// or `None` if there is none. With EVENT_IDX, an empty queue asks the
    /// driver to notify at its next buffer.
    pub fn pop<M: GuestMemory + ?Sized>(&mut self, mem: &mut M) -> Result<Option<DescChain>, QueueError> {
        if !self.ready {
            return Err(QueueError::NotReady);
        }
        let mut avail = self.avail_idx(mem)?;
        if avail == self.next_avail && self.event_idx {
            // Ask for a notification when the next buffer comes, then look
            // once more in case it came meanwhile.
            Self::write_u16(mem, self.avail_event_gpa(), self.next_avail)?;
            avail = self.avail_idx(mem)?;
        }
        if avail == self.next_avail {
            return Ok(None);
        }
        if avail.wrapping_sub(self.next_avail) > self.size {
            return Err(QueueError::AvailIndexJump { avail, seen: self.next_avail });
        }
        let slot = u64::from(self.next_avail % self.size);
        let head = Self::read_u16(mem, self.driver + 4 + 2 * slot)?;
        let chain = chain::walk(mem, self.desc, self.size, head)?;
        self.next_avail = self.next_avail.wrapping_add(1);
        if self.event_idx {
            Self::write_u16(mem, self.avail_event_gpa(), self.next_avail)?;
        }
        Ok(Some(chain))
    }

    /// Gives chain `head` back to the driver with `len` bytes written into
    /// its device-writable buffers.
    pub fn push_used<M: GuestMemory + ?Sized>(&mut self, mem: &mut M, head: u16, len: u32) -> Result<(), QueueError> {
        if !self.ready {
            return Err(QueueError::NotReady);
        }
        let slot = self.device + 4 + 8 * u64::from(self.next_used % self.size);
        let mut entry = [0u8; 8];
        entry[..4].copy_from_slice(&u32::from(head).to_le_bytes());
        entry[4..].copy_from_slice(&len.to_le_bytes());
        mem.write(slot, &entry).map_err(|_| QueueError::Ring { gpa: slot })?;
        // The entry is in place before the index that shows it.
        self.next_used = self.next_used.wrapping_add(1);
        Self::write_u16(mem, self.device + 2, self.next_used)
    }

    /// Whether the driver wants an interrupt for the used entries pushed
    /// since the last time this said yes (§2.7.10). Call after a batch of
    /// [`Virtqueue::push_used`].
    pub fn needs_interrupt<M: GuestMemory + ?Sized>(&mut self, mem: &M) -> Result<bool, QueueError> {
        let old = self.signalled_used;
        let new = self.next_used;
        if old == new {
            return Ok(false);
        }
        self.signalled_used = new;
        if self.event_idx {
            let event = Self::read_u16(mem, self.used_event_gpa())?;
            return Ok(need_event(event, new, old));
        }
        let flags = Self::read_u16(mem, self.driver)?;
        Ok(flags & AVAIL_F_NO_INTERRUPT == 0)
    }

    /// Entries the device has taken from the available ring.
    pub fn next_avail(&self) -> u16 {
        self.next_avail
    }

    /// Entries the device has put in the used ring.
    pub fn next_used(&self) -> u16 {
        self.next_used
    }
}

/// `vring_need_event`: the used index moved from `old` to `new`; the driver
/// asked to hear when it passes `event`.
pub fn need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}
