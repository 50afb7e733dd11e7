//! The I/O APIC: 24 interrupt pins, each turned into an interrupt message
//! by its redirection-table entry, after the Intel 82093AA data sheet and
//! the ICH's I/O APIC (version 0x20, with the EOI register).
//!
//! The guest selects a register by writing its index to IOREGSEL (offset
//! 0x00) and reads or writes it through IOWIN (offset 0x10). Registers: ID
//! (0x00, bits 27:24), version (0x01: version 0x20, max redirection entry
//! 23), arbitration ID (0x02, reads the ID) and the redirection table
//! (0x10 + 2·pin: low half, 0x11 + 2·pin: high half). Writing a vector to
//! the EOI register (offset 0x40) ends a level-triggered interrupt as the
//! local APIC's EOI broadcast does.
//!
//! A redirection entry gives the vector, delivery mode, destination mode
//! and destination (bits 63:56), the pin's polarity and trigger mode, and a
//! mask. An edge-triggered pin sends a message on each asserting edge; an
//! edge on a masked pin is lost (82093AA: "not delivered or held pending").
//! A level-triggered fixed or lowest-priority pin sends one while it is
//! asserted, unmasked and its remote IRR is clear, and sets remote IRR; the
//! EOI of its vector clears remote IRR, and the pin sends again if it is
//! still asserted. Changing an entry to edge-triggered clears remote IRR
//! (Linux's way of ending an interrupt on I/O APICs without the EOI
//! register; KVM and QEMU do the same). NMI, SMI, INIT and ExtINT entries
//! act on edges whatever their trigger bit says. The delivery status bit
//! always reads idle: a message leaves at once.
//!
//! The model returns the messages; the VMM routes them to local APICs with
//! [`apic_bus::route`](super::apic_bus::route).

use super::apic_bus::{DeliveryMode, Destination, InterruptMessage, Trigger};
use arrayvec::ArrayVec;

/// Where the I/O APIC's registers are on a PC.
pub const DEFAULT_BASE: u64 = 0xFEC0_0000;
/// The MMIO window the VMM gives it.
pub const MMIO_SIZE: u64 = 0x1000;
/// Interrupt input pins (global system interrupts 0–23).
pub const PINS: usize = 24;
/// The version register: version 0x20 (has the EOI register), highest
/// redirection entry 23.
pub const VERSION_VALUE: u32 = 0x20 | ((PINS as u32 - 1) << 16);

/// MMIO offsets.
pub const IOREGSEL: u64 = 0x00;
pub const IOWIN: u64 = 0x10;
pub const EOI: u64 = 0x40;

/// Register indices behind IOWIN.
pub mod reg {
    pub const ID: u8 = 0x00;
    pub const VERSION: u8 = 0x01;
    pub const ARBITRATION: u8 = 0x02;
    pub const REDIRECTION: u8 = 0x10;
}

/// Redirection-table entry bits.
pub mod rte {
    pub const VECTOR: u64 = 0xFF;
    pub const DELIVERY_SHIFT: u32 = 8;
    pub const LOGICAL: u64 = 1 << 11;
    pub const POLARITY_LOW: u64 = 1 << 13;
    pub const REMOTE_IRR: u64 = 1 << 14;
    pub const LEVEL: u64 = 1 << 15;
    pub const MASKED: u64 = 1 << 16;
    pub const DESTINATION_SHIFT: u32 = 56;
    /// Vector, delivery mode, destination mode, polarity, trigger, mask,
    /// destination. Delivery status (12) and remote IRR (14) are read-only.
    pub const WRITABLE: u64 = 0xFF00_0000_0001_AFFF;
}

/// The messages one event can send: at most one per pin.
pub type Messages = ArrayVec<InterruptMessage, PINS>;

/// The I/O APIC.
#[derive(Clone, Debug)]
pub struct Ioapic {
    /// Bits 27:24 of the ID register.
    id: u8,
    /// IOREGSEL.
    select: u8,
    redirection: [u64; PINS],
    /// The electrical level of each pin.
    lines: u32,
}

impl Ioapic {
    /// An I/O APIC with the ID firmware gave it (the MADT's), every entry
    /// masked and every pin low.
    pub const fn new(id: u8) -> Self {
        Ioapic { id: id & 0xF, select: 0, redirection: [rte::MASKED; PINS], lines: 0 }
    }

    pub fn id(&self) -> u8 {
        self.id
    }

    /// Redirection entry `pin` (bits as in [`rte`]).
    pub fn entry(&self, pin: usize) -> u64 {
        self.redirection[pin]
    }

    /// Drives pin `pin` (a global system interrupt below 24) to `level`.
    pub fn set_irq(&mut self, pin: u8, level: bool) -> Option<InterruptMessage> {
        let pin = usize::from(pin);
        if pin >= PINS {
            return None;
        }
        let was = self.asserted(pin);
        self.lines = (self.lines & !(1 << pin)) | (u32::from(level) << pin);
        let entry = self.redirection[pin];
        if is_level(entry) {
            self.service_level(pin)
        } else if !was && self.asserted(pin) && entry & rte::MASKED == 0 {
            message(entry)
        } else {
            None
        }
    }

    /// The EOI of `vector`, broadcast by a local APIC or written to the EOI
    /// register: clears the remote IRR of the level-triggered entries with
    /// that vector and resends those whose pin is still asserted.
    pub fn eoi(&mut self, vector: u8) -> Messages {
        let mut sent = Messages::new();
        for pin in 0..PINS {
            let entry = &mut self.redirection[pin];
            if *entry & rte::REMOTE_IRR != 0 && *entry & rte::VECTOR == u64::from(vector) {
                *entry &= !rte::REMOTE_IRR;
                sent.extend(self.service_level(pin));
            }
        }
        sent
    }

    /// A guest read at `offset` in the I/O APIC's window. IOREGSEL and IOWIN
    /// are 32-bit registers at the start of their 16-byte slots; a read
    /// within those four bytes returns those bytes, anything else reads 0.
    pub fn read(&mut self, offset: u64, data: &mut [u8]) {
        for (at, byte) in (offset..).zip(data.iter_mut()) {
            let value = match at & !3 {
                IOREGSEL => u32::from(self.select),
                IOWIN => self.read_register(self.select),
                _ => 0,
            };
            *byte = value.to_le_bytes()[(at & 3) as usize];
        }
    }

    /// A guest write at `offset`. Only four-byte writes to IOREGSEL, IOWIN
    /// or the EOI register count (the data sheet asks for 32-bit accesses;
    /// QEMU drops other IOWIN writes too). Returns the messages the write
    /// sends: unmasking an asserted level-triggered pin, or an EOI.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Messages {
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            return Messages::new();
        };
        let value = u32::from_le_bytes(bytes);
        match offset {
            IOREGSEL => self.select = value as u8,
            IOWIN => return self.write_register(self.select, value).into_iter().collect(),
            EOI => return self.eoi(value as u8),
            _ => {}
        }
        Messages::new()
    }

    fn read_register(&self, index: u8) -> u32 {
        match index {
            reg::ID | reg::ARBITRATION => u32::from(self.id) << 24,
            reg::VERSION => VERSION_VALUE,
            _ => match redirection_half(index) {
                Some((pin, false)) => self.redirection[pin] as u32,
                Some((pin, true)) => (self.redirection[pin] >> 32) as u32,
                None => 0,
            },
        }
    }

    fn write_register(&mut self, index: u8, value: u32) -> Option<InterruptMessage> {
        if index == reg::ID {
            self.id = ((value >> 24) & 0xF) as u8;
            return None;
        }
        let (pin, high) = redirection_half(index)?;
        let (shift, half) = if high { (32, 0xFFFF_FFFF << 32) } else { (0, 0xFFFF_FFFF) };
        let writable = rte::WRITABLE & half;
        let entry = &mut self.redirection[pin];
        *entry = (*entry & !writable) | ((u64::from(value) << shift) & writable);
        if !is_level(*entry) {
            *entry &= !rte::REMOTE_IRR;
        }
        self.service_level(pin)
    }

    fn asserted(&self, pin: usize) -> bool {
        let level = self.lines & (1 << pin) != 0;
        level != (self.redirection[pin] & rte::POLARITY_LOW != 0)
    }

    /// A level-triggered pin sends its message while asserted, unmasked
    /// and not waiting for an EOI.
    fn service_level(&mut self, pin: usize) -> Option<InterruptMessage> {
        let entry = self.redirection[pin];
        if !is_level(entry) || entry & (rte::MASKED | rte::REMOTE_IRR) != 0 || !self.asserted(pin) {
            return None;
        }
        let sent = message(entry)?;
        self.redirection[pin] |= rte::REMOTE_IRR;
        Some(sent)
    }
}

/// The pin and half (high: true) of redirection register `index`.
fn redirection_half(index: u8) -> Option<(usize, bool)> {
    let offset = usize::from(index.checked_sub(reg::REDIRECTION)?);
    (offset < 2 * PINS).then_some((offset / 2, offset % 2 == 1))
}

fn delivery(entry: u64) -> Option<DeliveryMode> {
    DeliveryMode::from_bits((entry >> rte::DELIVERY_SHIFT) as u32)
}

/// Whether the entry uses remote IRR: level-triggered, fixed or lowest
/// priority.
fn is_level(entry: u64) -> bool {
    entry & rte::LEVEL != 0 && delivery(entry).is_some_and(DeliveryMode::uses_vector)
}

/// The message of an entry; none for the reserved delivery modes (011 and
/// 110: start-up is not an I/O APIC mode).
fn message(entry: u64) -> Option<InterruptMessage> {
    let delivery = delivery(entry).filter(|&m| m != DeliveryMode::StartUp)?;
    let target = (entry >> rte::DESTINATION_SHIFT) as u8;
    let destination =
        if entry & rte::LOGICAL != 0 { Destination::Logical(target) } else { Destination::Physical(target) };
    let trigger = if is_level(entry) { Trigger::Level } else { Trigger::Edge };
    Some(InterruptMessage { destination, delivery, vector: entry as u8, trigger })
}

#[cfg(test)]
mod tests;
