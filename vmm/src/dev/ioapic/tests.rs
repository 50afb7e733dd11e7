//! Host tests of the I/O APIC.
use super::*;

fn read_reg(io: &mut Ioapic, index: u8) -> u32 {
    io.write(IOREGSEL, &u32::from(index).to_le_bytes());
    let mut b = [0u8; 4];
    io.read(IOWIN, &mut b);
    u32::from_le_bytes(b)
}

fn write_reg(io: &mut Ioapic, index: u8, value: u32) -> Messages {
    io.write(IOREGSEL, &u32::from(index).to_le_bytes());
    io.write(IOWIN, &value.to_le_bytes())
}

/// Programs pin `pin` as Linux does: high half (destination) first.
fn program(io: &mut Ioapic, pin: u8, low: u32, dest: u8) -> Messages {
    write_reg(io, reg::REDIRECTION + 2 * pin + 1, u32::from(dest) << 24);
    write_reg(io, reg::REDIRECTION + 2 * pin, low)
}

fn fixed(vector: u8, trigger: Trigger) -> InterruptMessage {
    InterruptMessage { destination: Destination::Physical(0), delivery: DeliveryMode::Fixed, vector, trigger }
}

const LEVEL: u32 = rte::LEVEL as u32;
const MASKED: u32 = rte::MASKED as u32;

#[test]
fn id_version_and_arbitration_registers_read_as_programmed() {
    let mut io = Ioapic::new(2);
    assert_eq!(read_reg(&mut io, reg::VERSION), 0x0017_0020);
    assert_eq!(read_reg(&mut io, reg::ID), 0x0200_0000);
    write_reg(&mut io, reg::ID, 0xFAFF_FFFF);
    assert_eq!(read_reg(&mut io, reg::ID), 0x0A00_0000, "ID is bits 27:24");
    assert_eq!(read_reg(&mut io, reg::ARBITRATION), 0x0A00_0000);
    write_reg(&mut io, reg::VERSION, 0);
    assert_eq!(read_reg(&mut io, reg::VERSION), VERSION_VALUE, "version is read-only");
    assert_eq!(read_reg(&mut io, 0x03), 0, "unassigned register");
    assert_eq!(read_reg(&mut io, 0x40), 0, "past the table");
}

#[test]
fn ioregsel_reads_back_and_sub_dword_reads_return_register_bytes() {
    let mut io = Ioapic::new(0);
    io.write(IOREGSEL, &0x1234_5601u32.to_le_bytes());
    let mut b = [0u8; 4];
    io.read(IOREGSEL, &mut b);
    assert_eq!(u32::from_le_bytes(b), 0x01, "IOREGSEL holds 8 bits");
    let mut two = [0u8; 2];
    io.read(IOWIN + 2, &mut two);
    assert_eq!(u16::from_le_bytes(two), 0x0017, "max redirection entry");
    let mut tail = [0xEEu8; 4];
    io.read(IOWIN + 4, &mut tail);
    assert_eq!(tail, [0; 4]);
}

#[test]
fn writes_other_than_dwords_are_dropped() {
    let mut io = Ioapic::new(0);
    io.write(IOREGSEL, &0x01u32.to_le_bytes());
    io.write(IOREGSEL, &[0x00]);
    io.write(IOREGSEL, &0x00u64.to_le_bytes());
    let mut b = [0u8; 4];
    io.read(IOREGSEL, &mut b);
    assert_eq!(b, [1, 0, 0, 0]);
}

#[test]
fn redirection_entries_start_masked_and_keep_only_writable_bits() {
    let mut io = Ioapic::new(0);
    for pin in 0..PINS as u8 {
        assert_eq!(read_reg(&mut io, reg::REDIRECTION + 2 * pin), 0x1_0000, "pin {pin} masked");
        assert_eq!(read_reg(&mut io, reg::REDIRECTION + 2 * pin + 1), 0);
    }
    write_reg(&mut io, 0x10 + 2 * 5, 0xFFFF_FFFF);
    write_reg(&mut io, 0x11 + 2 * 5, 0xFFFF_FFFF);
    assert_eq!(io.entry(5), 0xFF00_0000_0001_AFFF);
}

#[test]
fn an_edge_pin_sends_once_per_rising_edge() {
    let mut io = Ioapic::new(0);
    program(&mut io, 2, 0x30, 0);
    assert_eq!(io.set_irq(2, true), Some(fixed(0x30, Trigger::Edge)));
    assert_eq!(io.set_irq(2, true), None, "no edge");
    assert_eq!(io.set_irq(2, false), None);
    assert_eq!(io.set_irq(2, true), Some(fixed(0x30, Trigger::Edge)));
    assert_eq!(io.entry(2) & rte::REMOTE_IRR, 0, "edge pins never set remote IRR");
}

#[test]
fn an_edge_on_a_masked_pin_is_lost() {
    let mut io = Ioapic::new(0);
    program(&mut io, 4, 0x34 | MASKED, 0);
    assert_eq!(io.set_irq(4, true), None);
    assert!(program(&mut io, 4, 0x34, 0).is_empty(), "unmasking does not replay the edge");
    io.set_irq(4, false);
    assert_eq!(io.set_irq(4, true), Some(fixed(0x34, Trigger::Edge)));
}

#[test]
fn a_level_pin_sends_once_until_the_eoi_of_its_vector() {
    let mut io = Ioapic::new(0);
    program(&mut io, 9, 0x39 | LEVEL, 0);
    assert_eq!(io.set_irq(9, true), Some(fixed(0x39, Trigger::Level)));
    assert_ne!(io.entry(9) & rte::REMOTE_IRR, 0, "remote IRR set");
    io.set_irq(9, false);
    assert_eq!(io.set_irq(9, true), None, "held off by remote IRR");
    assert!(io.eoi(0x40).is_empty(), "another vector's EOI");
    assert_eq!(io.eoi(0x39).as_slice(), [fixed(0x39, Trigger::Level)], "still asserted: sent again");
    io.set_irq(9, false);
    assert!(io.eoi(0x39).is_empty());
    assert_eq!(io.entry(9) & rte::REMOTE_IRR, 0);
    assert_eq!(io.set_irq(9, true), Some(fixed(0x39, Trigger::Level)));
}

#[test]
fn the_eoi_register_ends_a_level_interrupt_like_the_broadcast() {
    let mut io = Ioapic::new(0);
    program(&mut io, 10, 0x3A | LEVEL, 0);
    io.set_irq(10, true);
    let sent = io.write(EOI, &0x3Au32.to_le_bytes());
    assert_eq!(sent.as_slice(), [fixed(0x3A, Trigger::Level)]);
}

#[test]
fn one_eoi_resends_every_asserted_pin_sharing_the_vector() {
    let mut io = Ioapic::new(0);
    program(&mut io, 16, 0x50 | LEVEL, 0);
    program(&mut io, 17, 0x50 | LEVEL, 0);
    io.set_irq(16, true);
    io.set_irq(17, true);
    assert_eq!(io.eoi(0x50).len(), 2);
}

#[test]
fn unmasking_an_asserted_level_pin_sends_its_message() {
    let mut io = Ioapic::new(0);
    program(&mut io, 11, 0x3B | LEVEL | MASKED, 0);
    assert_eq!(io.set_irq(11, true), None);
    assert_eq!(program(&mut io, 11, 0x3B | LEVEL, 0).as_slice(), [fixed(0x3B, Trigger::Level)]);
}

#[test]
fn making_an_entry_edge_triggered_clears_remote_irr() {
    let mut io = Ioapic::new(0);
    program(&mut io, 9, 0x39 | LEVEL, 0);
    io.set_irq(9, true);
    program(&mut io, 9, 0x39 | MASKED, 0);
    assert_eq!(io.entry(9) & rte::REMOTE_IRR, 0);
    io.set_irq(9, false);
    assert_eq!(program(&mut io, 9, 0x39 | LEVEL, 0).as_slice(), []);
    assert_eq!(io.set_irq(9, true), Some(fixed(0x39, Trigger::Level)));
}

#[test]
fn an_active_low_pin_is_asserted_when_its_line_is_low() {
    let mut io = Ioapic::new(0);
    io.set_irq(9, true);
    let low = rte::POLARITY_LOW as u32;
    assert!(program(&mut io, 9, 0x39 | LEVEL | low, 0).is_empty(), "line high: deasserted");
    assert_eq!(io.set_irq(9, false), Some(fixed(0x39, Trigger::Level)));
}

#[test]
fn messages_carry_the_entry_destination_and_delivery_mode() {
    let mut io = Ioapic::new(0);
    program(&mut io, 3, 0x0933, 0x05);
    let expected = InterruptMessage {
        destination: Destination::Logical(0x05),
        delivery: DeliveryMode::LowestPriority,
        vector: 0x33,
        trigger: Trigger::Edge,
    };
    assert_eq!(io.set_irq(3, true), Some(expected));
    program(&mut io, 5, 0x0400, 0xFF);
    let nmi = io.set_irq(5, true).unwrap();
    assert_eq!((nmi.destination, nmi.delivery), (Destination::Physical(0xFF), DeliveryMode::Nmi));
}

#[test]
fn nmi_and_extint_entries_act_on_edges_even_when_marked_level() {
    let mut io = Ioapic::new(0);
    program(&mut io, 0, 0x0700 | LEVEL, 0);
    let m = io.set_irq(0, true).unwrap();
    assert_eq!((m.delivery, m.trigger), (DeliveryMode::ExtInt, Trigger::Edge));
    assert_eq!(io.entry(0) & rte::REMOTE_IRR, 0);
    assert_eq!(io.set_irq(0, true), None);
}

#[test]
fn reserved_delivery_modes_send_nothing() {
    let mut io = Ioapic::new(0);
    program(&mut io, 6, 0x0330, 0);
    program(&mut io, 7, 0x0630 | LEVEL, 0);
    assert_eq!(io.set_irq(6, true), None);
    assert_eq!(io.set_irq(7, true), None);
    assert_eq!(io.entry(7) & rte::REMOTE_IRR, 0);
}

#[test]
fn pins_past_23_do_not_exist() {
    let mut io = Ioapic::new(0);
    assert_eq!(io.set_irq(24, true), None);
    assert_eq!(read_reg(&mut io, reg::REDIRECTION + 48), 0);
}
