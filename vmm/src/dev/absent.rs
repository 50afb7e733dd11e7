//! Pages where a PC has devices this board leaves out: the IOAPIC and the
//! local APIC. The guest's CPUID shows no APIC and Linux runs with
//! `acpi=off` on the PIC, but a guest that probes the pages anyway finds
//! nothing there: reads return zero and writes are dropped.
use crate::bus::{BusDevice, Ctx, Range};

/// The IOAPIC's page, where a PC has it.
pub const IOAPIC_PAGE: Range = Range::new(0xFEC0_0000, 0x1000);
/// The local APIC's page at its reset base.
pub const LAPIC_PAGE: Range = Range::new(0xFEE0_0000, 0x1000);
/// Both.
pub const ABSENT_PAGES: [Range; 2] = [IOAPIC_PAGE, LAPIC_PAGE];

/// Nothing, answering reads with zero.
#[derive(Clone, Copy, Debug, Default)]
pub struct Absent;

impl BusDevice for Absent {
    fn read(&mut self, _base: u64, _offset: u64, data: &mut [u8], _cx: &mut Ctx) {
        data.fill(0);
    }

    fn write(&mut self, _base: u64, _offset: u64, _data: &[u8], _cx: &mut Ctx) {}
}
