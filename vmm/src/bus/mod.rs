//! The guest's buses: one for I/O ports and one for MMIO, each a table of
//! address ranges, every range leading to a device behind one trait.
//!
//! A device implements [`BusDevice`]: it is read and written at an offset
//! within one of its ranges, and is given a [`Ctx`] with the guest time of
//! the access and the machine's wires (its interrupt lines, reset and
//! power-off requests). A device that changes by itself as time passes (a
//! timer) says so through [`BusDevice::is_timer`]; the board then brings it
//! up to each new guest time and asks it for its next interrupt.
//!
//! Devices are registered once, with all their ranges, through a function
//! that finds the device in the structure holding it ([`DeviceRef`]).
//! Registration refuses ranges that are empty, leave the bus's address
//! space or overlap another range ([`BusError`]), so every address leads to
//! at most one device. The devices themselves live outside the bus (the
//! board's `Devices`), which keeps the VMM free of a heap and of shared
//! ownership: each access borrows the one device it reaches.
//!
//! The port bus ([`PortBus`]) follows the ISA rule: a multi-byte access is
//! split where it crosses from one device's range into another's or into
//! nothing, and the ports no device answers read all ones and are counted.
//! The MMIO bus ([`MmioBus`]) hands each access whole to the device at its
//! address.
mod buses;
mod ctx;
mod map;
mod mmio;
mod port;
#[cfg(test)]
mod tests;

pub use buses::{Buses, Wiring, MAX_TIMERS};
pub use ctx::{BoardEvent, Ctx};
pub use map::{Bus, BusError, DeviceRef, Mapping, Range};
pub use mmio::{MmioBus, MMIO_RANGES};
pub use port::{PortBus, UnassignedPort, PORT_RANGES, UNASSIGNED_PORT_SLOTS};

/// When a timer device will next raise an interrupt by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerIrq {
    /// The interrupt line it will raise; `None` for a timer that interrupts
    /// its own CPU without a line (the local APIC's).
    pub line: Option<u8>,
    /// The guest time it will do so.
    pub at_ns: u64,
}

/// A device on a bus.
///
/// `base` is the first address of the range the access falls in (a device
/// may have several), `offset` the access's distance from it. A port
/// access never runs past the end of that range; an MMIO access (1, 2, 4
/// or 8 bytes) starts in it. `data` holds the bytes in little-endian
/// order, as many as the access is wide.
pub trait BusDevice {
    /// Fills `data` with the device's answer.
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8], cx: &mut Ctx);
    /// Takes `data`.
    fn write(&mut self, base: u64, offset: u64, data: &[u8], cx: &mut Ctx);

    /// True for a device whose state moves with guest time by itself (a
    /// timer). Asked once, at registration.
    fn is_timer(&self) -> bool {
        false
    }

    /// A timer: brings the device up to `cx.now_ns`, driving its interrupt
    /// lines. The board calls it whenever guest time has moved since.
    fn advance(&mut self, _cx: &mut Ctx) {}

    /// A timer: when it will next raise an interrupt without being
    /// reprogrammed, if ever; always later than `now_ns`. A device whose
    /// answer can change through an access calls [`Ctx::timers_changed`] in
    /// that access.
    fn next_irq(&self, _now_ns: u64) -> Option<TimerIrq> {
        None
    }
}

/// Reads `data` one byte at a time from an 8-bit device: byte `i` comes
/// from `byte(offset + i)`. The ISA rule for a device whose registers are
/// all one byte wide.
pub fn read_bytes(offset: u64, data: &mut [u8], mut byte: impl FnMut(u64) -> u8) {
    for (at, b) in (offset..).zip(data.iter_mut()) {
        *b = byte(at);
    }
}

/// Writes `data` one byte at a time to an 8-bit device: `byte(offset + i,
/// data[i])`.
pub fn write_bytes(offset: u64, data: &[u8], mut byte: impl FnMut(u64, u8)) {
    for (at, &b) in (offset..).zip(data.iter()) {
        byte(at, b);
    }
}
