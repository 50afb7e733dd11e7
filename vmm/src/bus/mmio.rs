//! The MMIO bus: guest-physical ranges that are not RAM, each leading to a
//! device. The guest reaches them through nested page faults; the VMM
//! decodes the faulting instruction and hands its access to the device at
//! the faulting address, whole.
use super::{Bus, BusError, Ctx, DeviceRef, Mapping, Range};

/// Ranges the MMIO bus holds.
pub const MMIO_RANGES: usize = 16;

/// The guest-physical address space's device ranges.
pub struct MmioBus<D> {
    map: Bus<D, MMIO_RANGES>,
}

impl<D> Default for MmioBus<D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<D> MmioBus<D> {
    pub const fn new() -> Self {
        MmioBus { map: Bus::new(u64::MAX) }
    }

    /// Registers `device` at the guest-physical `ranges`.
    pub fn register(&mut self, ranges: &[Range], device: DeviceRef<D>) -> Result<(), BusError> {
        self.map.register(ranges, device)
    }

    /// The device range `gpa` falls in, if any.
    #[inline]
    pub fn find(&self, gpa: u64) -> Option<Mapping<D>> {
        self.map.find(gpa)
    }

    /// A read of `data.len()` bytes at `gpa`, which lies in `m`.
    pub fn read(m: Mapping<D>, devices: &mut D, gpa: u64, data: &mut [u8], cx: &mut Ctx) {
        (m.device)(devices).read(m.first, gpa - m.first, data, cx);
    }

    /// A write of `data` at `gpa`, which lies in `m`.
    pub fn write(m: Mapping<D>, devices: &mut D, gpa: u64, data: &[u8], cx: &mut Ctx) {
        (m.device)(devices).write(m.first, gpa - m.first, data, cx);
    }
}
