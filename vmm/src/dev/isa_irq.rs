//! The ISA interrupt lines of a PC that has both the 8259 pair and an I/O
//! APIC, and the interrupt source overrides the MADT describes them with.
//!
//! Every ISA line goes to both controllers, as on the PIIX and ICH
//! chipsets: to the 8259 input of its number and to the I/O APIC pin of its
//! global system interrupt. That is the same number, except for IRQ 0 (the
//! PIT), which goes to pin 2 by the usual override; pin 0 is unconnected,
//! as in QEMU. IRQ 9, the ACPI SCI, is level-triggered and active high.
//!
//! Which controller reaches a CPU is the guest's choice, made with masks:
//! at boot every I/O APIC entry is masked and the bootstrap processor's
//! LINT0 passes the 8259's INT on (virtual wire, see
//! [`Lapic::accepts_pic_interrupt`](super::lapic::Lapic::accepts_pic_interrupt));
//! when Linux moves to the I/O APIC it masks every 8259 input and LINT0 and
//! programs the I/O APIC's entries from the MADT's overrides.

use super::acpi_pm::SCI_IRQ;
use super::apic_bus::InterruptMessage;
use super::ioapic::Ioapic;
use super::pic::DualPic;

/// MPS INTI flags, as MADT interrupt source overrides carry them (ACPI 6.0
/// table 5-50).
pub mod inti {
    /// Polarity and trigger as the bus (ISA: active high, edge) says.
    pub const CONFORMING: u16 = 0;
    pub const ACTIVE_HIGH: u16 = 0b01;
    pub const ACTIVE_LOW: u16 = 0b11;
    pub const EDGE: u16 = 0b01 << 2;
    pub const LEVEL: u16 = 0b11 << 2;
}

/// An ISA IRQ that does not reach the I/O APIC pin of its own number, or
/// not with the ISA bus's polarity and trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceOverride {
    pub isa_irq: u8,
    /// The global system interrupt: the I/O APIC pin.
    pub gsi: u8,
    /// [`inti`] flags.
    pub flags: u16,
}

/// The board's overrides, in the order the MADT lists them.
pub const OVERRIDES: [SourceOverride; 2] = [
    SourceOverride { isa_irq: 0, gsi: 2, flags: inti::CONFORMING },
    SourceOverride { isa_irq: SCI_IRQ, gsi: SCI_IRQ, flags: inti::ACTIVE_HIGH | inti::LEVEL },
];

/// ISA IRQs (0–15).
pub const ISA_IRQS: u8 = 16;

/// The I/O APIC pin of ISA IRQ `irq`.
pub fn ioapic_pin(irq: u8) -> u8 {
    OVERRIDES.iter().find(|o| o.isa_irq == irq).map_or(irq, |o| o.gsi)
}

/// I/O APIC pins above the ISA IRQs that board lines reach directly: the
/// virtio devices' (`crate::virtio::slots`), 16–23.
pub const PCI_PINS: core::ops::Range<u8> = 16..24;

/// Drives ISA IRQ `irq` to `level` on both controllers. Returns the
/// message the I/O APIC sends, if any; the 8259 shows its request through
/// [`DualPic::pending_vector`]. IRQ 2 is the 8259's cascade and is not an
/// ISA line. Lines 16–23 ([`PCI_PINS`]) are I/O APIC pins only.
pub fn set_isa_irq(pic: &mut DualPic, ioapic: &mut Ioapic, irq: u8, level: bool) -> Option<InterruptMessage> {
    if PCI_PINS.contains(&irq) {
        return ioapic.set_irq(irq, level);
    }
    if irq >= ISA_IRQS || irq == 2 {
        return None;
    }
    pic.set_irq_level(irq, level);
    ioapic.set_irq(ioapic_pin(irq), level)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::apic_bus::{route, DeliveryMode, Destination, Trigger};
    use crate::dev::ioapic::{reg, rte, IOREGSEL, IOWIN};
    use crate::dev::kbc::{KBD_IRQ, MOUSE_IRQ};
    use crate::dev::lapic::{regs, Lapic};
    use crate::dev::pic::{MASTER_CMD, MASTER_DATA, SLAVE_CMD, SLAVE_DATA};
    use crate::dev::rtc::RTC_IRQ;
    use crate::dev::uart::COM1_IRQ;

    const PIT_IRQ: u8 = 0;

    /// Linux's init_8259A: vectors 0x30 and 0x38, everything unmasked.
    fn linux_pic() -> DualPic {
        let mut pic = DualPic::new();
        for (port, value) in [
            (MASTER_CMD, 0x11),
            (MASTER_DATA, 0x30),
            (MASTER_DATA, 0x04),
            (MASTER_DATA, 0x01),
            (SLAVE_CMD, 0x11),
            (SLAVE_DATA, 0x38),
            (SLAVE_DATA, 0x02),
            (SLAVE_DATA, 0x01),
            (MASTER_DATA, 0x00),
            (SLAVE_DATA, 0x00),
        ] {
            pic.write(port, value);
        }
        pic
    }

    fn program_pin(io: &mut Ioapic, pin: u8, low: u32) {
        for (index, value) in [(reg::REDIRECTION + 2 * pin + 1, 0), (reg::REDIRECTION + 2 * pin, low)] {
            io.write(IOREGSEL, &u32::from(index).to_le_bytes());
            io.write(IOWIN, &value.to_le_bytes());
        }
    }

    fn pulse(pic: &mut DualPic, io: &mut Ioapic, irq: u8) -> Option<InterruptMessage> {
        let sent = set_isa_irq(pic, io, irq, true);
        set_isa_irq(pic, io, irq, false);
        sent
    }

    #[test]
    fn isa_irqs_map_to_their_own_pin_except_the_pit_on_pin_2() {
        for (irq, pin) in [(PIT_IRQ, 2), (KBD_IRQ, 1), (COM1_IRQ, 4), (RTC_IRQ, 8), (SCI_IRQ, 9), (MOUSE_IRQ, 12)] {
            assert_eq!(ioapic_pin(irq), pin, "IRQ {irq}");
        }
    }

    #[test]
    fn at_boot_the_pit_reaches_the_bsp_through_the_8259_only() {
        let mut pic = linux_pic();
        let mut io = Ioapic::new(1);
        let bsp = Lapic::new(0, true);
        assert_eq!(pulse(&mut pic, &mut io, PIT_IRQ), None, "I/O APIC entries start masked");
        assert_eq!(pic.pending_vector(), Some(0x30));
        assert!(bsp.accepts_pic_interrupt());
    }

    #[test]
    fn after_linux_switches_to_the_ioapic_the_pit_arrives_on_pin_2_and_the_8259_is_silent() {
        let mut pic = linux_pic();
        let mut io = Ioapic::new(1);
        let mut bsp = Lapic::new(0, true);
        // Linux: mask the 8259 and LINT0, enable the APIC, program pin 2.
        pic.write(MASTER_DATA, 0xFF);
        pic.write(SLAVE_DATA, 0xFF);
        for (reg, value) in [(regs::SVR, 0x1FFu32), (regs::LVT_LINT0, 0x1_0700)] {
            bsp.write(u64::from(reg), &value.to_le_bytes(), 0);
        }
        program_pin(&mut io, 2, 0x30);
        let sent = pulse(&mut pic, &mut io, PIT_IRQ).expect("pin 2 sends");
        assert_eq!(pic.pending_vector(), None);
        assert!(!bsp.accepts_pic_interrupt());
        assert_eq!(route(&sent, None, [&bsp]).iter().collect::<Vec<_>>(), [0]);
        bsp.receive(&sent);
        assert_eq!(bsp.pending(), Some(0x30));
    }

    #[test]
    fn the_board_devices_reach_their_ioapic_pins() {
        let mut pic = linux_pic();
        let mut io = Ioapic::new(1);
        for irq in [KBD_IRQ, COM1_IRQ, RTC_IRQ, MOUSE_IRQ] {
            program_pin(&mut io, irq, 0x40 + u32::from(irq));
        }
        for irq in [KBD_IRQ, COM1_IRQ, RTC_IRQ, MOUSE_IRQ] {
            let sent = pulse(&mut pic, &mut io, irq).unwrap_or_else(|| panic!("IRQ {irq} sent nothing"));
            assert_eq!(sent.vector, 0x40 + irq, "IRQ {irq}");
            assert_eq!(sent.destination, Destination::Physical(0));
        }
    }

    #[test]
    fn the_sci_is_a_level_interrupt_held_until_eoi() {
        let mut pic = linux_pic();
        let mut io = Ioapic::new(1);
        program_pin(&mut io, 9, 0x49 | rte::LEVEL as u32);
        let sent = set_isa_irq(&mut pic, &mut io, SCI_IRQ, true).unwrap();
        assert_eq!((sent.delivery, sent.trigger), (DeliveryMode::Fixed, Trigger::Level));
        assert_eq!(set_isa_irq(&mut pic, &mut io, SCI_IRQ, true), None);
        assert_eq!(io.eoi(0x49).len(), 1, "still asserted after the EOI");
    }

    #[test]
    fn irq_2_and_lines_past_23_reach_nothing() {
        let mut pic = linux_pic();
        let mut io = Ioapic::new(1);
        program_pin(&mut io, 2, 0x30);
        assert_eq!(set_isa_irq(&mut pic, &mut io, 2, true), None);
        assert_eq!(set_isa_irq(&mut pic, &mut io, 24, true), None);
        assert_eq!(set_isa_irq(&mut pic, &mut io, 31, true), None);
        assert_eq!(pic.pending_vector(), None);
    }

    #[test]
    fn lines_16_to_23_reach_their_io_apic_pin_and_not_the_8259() {
        let mut pic = linux_pic();
        let mut io = Ioapic::new(1);
        for pin in PCI_PINS {
            program_pin(&mut io, pin, 0x50 + u32::from(pin));
            let sent = set_isa_irq(&mut pic, &mut io, pin, true);
            assert_eq!(sent.map(|m| m.vector), Some(0x50 + pin), "pin {pin}");
            set_isa_irq(&mut pic, &mut io, pin, false);
        }
        assert_eq!(pic.pending_vector(), None);
    }
}
