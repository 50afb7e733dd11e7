//! Host tests of the local APIC, one file per area.

mod ipi;
mod lint;
mod mmio;
mod msr;
mod priority;
mod timer;

use super::*;
use crate::dev::apic_bus::{DeliveryMode, Destination, InterruptMessage, Trigger};

/// An enabled local APIC (SVR = 0x1FF), as Linux leaves it after setup.
pub fn enabled(id: u8) -> Lapic {
    let mut l = Lapic::new(id, id == 0);
    write(&mut l, regs::SVR, 0x1FF);
    l
}

pub fn read(l: &mut Lapic, reg: u16) -> u32 {
    read_at(l, reg, 0)
}

pub fn read_at(l: &mut Lapic, reg: u16, now: u64) -> u32 {
    let mut b = [0u8; 4];
    l.read(u64::from(reg), &mut b, now);
    u32::from_le_bytes(b)
}

pub fn write(l: &mut Lapic, reg: u16, value: u32) -> Option<LapicOutput> {
    write_at(l, reg, value, 0)
}

pub fn write_at(l: &mut Lapic, reg: u16, value: u32, now: u64) -> Option<LapicOutput> {
    l.write(u64::from(reg), &value.to_le_bytes(), now)
}

pub fn fixed(vector: u8) -> InterruptMessage {
    InterruptMessage {
        destination: Destination::Physical(0),
        delivery: DeliveryMode::Fixed,
        vector,
        trigger: Trigger::Edge,
    }
}

/// Acknowledges the pending vector, as the VMM does when it injects it.
pub fn take(l: &mut Lapic) -> Option<u8> {
    l.acknowledge()
}
