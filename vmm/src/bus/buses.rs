//! Both buses together, with the list of the timers on them, and the one
//! call that puts a device on a bus.
use super::{BusError, Ctx, DeviceRef, MmioBus, PortBus, Range};
use arrayvec::ArrayVec;

/// Timer devices the buses keep track of.
pub const MAX_TIMERS: usize = 8;

/// The port and MMIO buses of the devices in `D`, and which of those
/// devices are timers.
pub struct Buses<D> {
    pub ports: PortBus<D>,
    pub mmio: MmioBus<D>,
    timers: ArrayVec<DeviceRef<D>, MAX_TIMERS>,
}

impl<D> Default for Buses<D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<D> Buses<D> {
    pub const fn new() -> Self {
        Buses { ports: PortBus::new(), mmio: MmioBus::new(), timers: ArrayVec::new_const() }
    }

    /// The timer devices, in the order they were registered.
    pub fn timers(&self) -> &[DeviceRef<D>] {
        &self.timers
    }

    /// Brings every timer up to `cx.now_ns`.
    pub fn advance_timers(&self, devices: &mut D, cx: &mut Ctx) {
        for timer in &self.timers {
            timer(devices).advance(cx);
        }
    }
}

/// Puts devices on the buses: `ports` and `mmio` register one device with
/// all its ranges, and note it as a timer if it is one. Each device is
/// registered once.
pub struct Wiring<'w, D> {
    devices: &'w mut D,
    buses: &'w mut Buses<D>,
}

impl<'w, D> Wiring<'w, D> {
    pub fn new(devices: &'w mut D, buses: &'w mut Buses<D>) -> Self {
        Wiring { devices, buses }
    }

    /// Registers `device` at the I/O ports of `ranges`.
    pub fn ports(&mut self, ranges: &[Range], device: DeviceRef<D>) -> Result<(), BusError> {
        let timer = self.timer_slot(device)?;
        self.buses.ports.register(ranges, device)?;
        self.buses.timers.extend(timer);
        Ok(())
    }

    /// Registers `device` at the guest-physical `ranges`.
    pub fn mmio(&mut self, ranges: &[Range], device: DeviceRef<D>) -> Result<(), BusError> {
        let timer = self.timer_slot(device)?;
        self.buses.mmio.register(ranges, device)?;
        self.buses.timers.extend(timer);
        Ok(())
    }

    /// `Some(device)` if it is a timer and there is room to note it.
    fn timer_slot(&mut self, device: DeviceRef<D>) -> Result<Option<DeviceRef<D>>, BusError> {
        if !device(self.devices).is_timer() {
            return Ok(None);
        }
        if self.buses.timers.is_full() {
            return Err(BusError::TooManyTimers { capacity: MAX_TIMERS });
        }
        Ok(Some(device))
    }
}
