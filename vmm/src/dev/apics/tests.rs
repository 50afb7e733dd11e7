//! The APICs on the board: the ISA lines through the I/O APIC, the local
//! APIC's timer as a board timer, the EOI path back to the I/O APIC, the
//! virtual wire at reset, and the ACPI PM block next to them.
use super::*;
use crate::bus::BoardEvent;
use crate::dev::acpi_pm::{control, PM1A_CNT_BLK, SLP_TYP_S5};
use crate::dev::board::{Board, BoardConfig};
use crate::dev::ioapic::{reg, IOREGSEL, IOWIN};
use crate::dev::lapic::{regs, TscClock};

const MS: u64 = 1_000_000;

fn board() -> Board<'static> {
    Board::new(BoardConfig { rtc_epoch_seconds: 1_709_214_330, ram_size: 512 << 20, vcpus: 1 }, "test").expect("wired")
}

fn lapic_write(b: &mut Board, reg: u16, value: u32, now: u64) {
    let gpa = LAPIC_PAGE.base + u64::from(reg);
    let dev = b.mmio_device(gpa).expect("local APIC page");
    b.mmio_write(dev, gpa, 4, u64::from(value), now);
}

fn ioapic_write(b: &mut Board, index: u8, value: u32) {
    let dev = b.mmio_device(IOAPIC_PAGE.base).expect("I/O APIC page");
    b.mmio_write(dev, IOAPIC_PAGE.base + IOREGSEL, 4, u64::from(index), 0);
    b.mmio_write(dev, IOAPIC_PAGE.base + IOWIN, 4, u64::from(value), 0);
}

/// Linux's 8259 setup (vectors 0x30/0x38, all unmasked), then the PIT's
/// counter 0 in mode 2 at 1 kHz.
fn pic_and_pit(b: &mut Board) {
    for (port, value) in [(0x20, 0x11), (0x21, 0x30), (0x21, 0x04), (0x21, 0x01)] {
        b.io_write(port, 1, value, 0);
    }
    for (port, value) in [(0xA0, 0x11), (0xA1, 0x38), (0xA1, 0x02), (0xA1, 0x01), (0x21, 0), (0xA1, 0)] {
        b.io_write(port, 1, value, 0);
    }
    for (port, value) in [(0x43, 0x34), (0x40, 1193 & 0xFF), (0x40, 1193 >> 8)] {
        b.io_write(port, 1, value, 0);
    }
}

/// What Linux does when it moves to the I/O APIC: masks the 8259 and
/// LINT0, software-enables the local APIC, and routes ISA `irq` to
/// `vector` on pin `pin` (physical destination 0, edge, active high).
fn move_to_ioapic(b: &mut Board, pin: u8, vector: u8) {
    b.io_write(0x21, 1, 0xFF, 0);
    b.io_write(0xA1, 1, 0xFF, 0);
    lapic_write(b, regs::SVR, 0x1FF, 0);
    lapic_write(b, regs::LVT_LINT0, 0x1_0700, 0);
    ioapic_write(b, reg::REDIRECTION + 2 * pin + 1, 0);
    ioapic_write(b, reg::REDIRECTION + 2 * pin, u32::from(vector));
}

#[test]
fn at_reset_the_pit_reaches_the_vcpu_through_the_8259_and_the_virtual_wire() {
    let mut b = board();
    pic_and_pit(&mut b);
    b.update(2 * MS);
    assert_eq!(b.pending_vector(), Some(0x30), "PIT on IRQ 0 through the 8259");
    assert_eq!(b.acknowledge(), Some(0x30));
}

#[test]
fn after_the_move_to_the_ioapic_the_pit_arrives_on_pin_2_through_the_local_apic_and_eoi_retires_it() {
    let mut b = board();
    pic_and_pit(&mut b);
    move_to_ioapic(&mut b, 2, 0x31);
    b.update(2 * MS);
    assert_eq!(b.pending_vector(), Some(0x31), "vector of I/O APIC pin 2");
    assert_eq!(b.acknowledge(), Some(0x31));
    b.update(4 * MS);
    assert_eq!(b.pending_vector(), None, "the next tick waits behind the one in service");
    lapic_write(&mut b, regs::EOI, 0, 4 * MS);
    assert_eq!(b.pending_vector(), Some(0x31), "after the EOI the tick that came meanwhile is taken");
}

#[test]
fn the_local_apic_timer_is_a_board_timer_with_a_deadline_and_an_interrupt() {
    let mut b = board();
    lapic_write(&mut b, regs::SVR, 0x1FF, 0);
    lapic_write(&mut b, regs::TIMER_DIVIDE, 0xB, 0); // divide by 1
    lapic_write(&mut b, regs::LVT_TIMER, 0xEC | regs::TIMER_PERIODIC, 0);
    lapic_write(&mut b, regs::TIMER_INITIAL, 1_000_000, 0); // 1 ms at 1 GHz
    assert_eq!(b.next_deadline_ns(0), Some(MS), "the board wakes the vCPU for the local APIC timer");
    assert_eq!(b.pending_vector(), None);
    b.update(MS);
    assert_eq!(b.acknowledge(), Some(0xEC));
    lapic_write(&mut b, regs::EOI, 0, MS);
    assert_eq!(b.next_deadline_ns(MS), Some(2 * MS), "periodic");
}

#[test]
fn a_tsc_deadline_written_through_the_board_sets_its_deadline_and_interrupt() {
    let mut b = board();
    lapic_write(&mut b, regs::SVR, 0x1FF, 0);
    lapic_write(&mut b, regs::LVT_TIMER, 0xEF | regs::TIMER_TSC_DEADLINE, 0);
    // A 2 GHz TSC reading 10_000 at 1 ms: a deadline 4_000_000 ticks on is 2 ms later.
    let clock = TscClock { tsc: 10_000, hz: 2_000_000_000 };
    b.write_tsc_deadline_msr(4_010_000, MS, clock);
    assert_eq!(b.tsc_deadline_msr(MS), 4_010_000, "the armed deadline reads back");
    assert_eq!(b.next_deadline_ns(MS), Some(3 * MS), "expected 3 ms");
    b.update(3 * MS - 1);
    assert_eq!(b.pending_vector(), None, "not before the deadline");
    b.update(3 * MS);
    assert_eq!(b.acknowledge(), Some(0xEF));
    assert_eq!(b.tsc_deadline_msr(3 * MS), 0, "a deadline that fired reads 0");
    assert_eq!(b.next_deadline_ns(3 * MS), None, "one shot");
}

#[test]
fn a_pit_masked_in_both_controllers_sets_no_deadline() {
    let mut b = board();
    pic_and_pit(&mut b);
    let tick = b.next_deadline_ns(0).expect("unmasked in the 8259: the PIT's tick is a deadline");
    assert!((MS - MS / 100..MS + MS / 100).contains(&tick), "a 1 kHz tick, seen at {tick} ns");
    move_to_ioapic(&mut b, 2, 0x31);
    assert_eq!(b.next_deadline_ns(0), Some(tick), "unmasked in the I/O APIC");
    ioapic_write(&mut b, reg::REDIRECTION + 4, 0x1_0031);
    assert_eq!(b.next_deadline_ns(0), None, "masked in both");
}

#[test]
fn the_sci_is_level_triggered_through_pin_9_and_power_off_ends_the_machine() {
    let mut b = board();
    move_to_ioapic(&mut b, 9, 0x39);
    ioapic_write(&mut b, reg::REDIRECTION + 18, 0x39 | (1 << 15));
    b.io_write(0x602, 2, u32::from(crate::dev::acpi_pm::event::PWRBTN), 0);
    b.press_power_button();
    assert_eq!(b.acknowledge(), Some(0x39), "power button SCI");
    lapic_write(&mut b, regs::EOI, 0, 0);
    assert_eq!(b.acknowledge(), Some(0x39), "still asserted after the EOI: sent again");
    b.io_write(0x600, 2, u32::from(crate::dev::acpi_pm::event::PWRBTN), 0);
    lapic_write(&mut b, regs::EOI, 0, 0);
    assert_eq!(b.pending_vector(), None, "status cleared: the line fell");
    b.io_write(PM1A_CNT_BLK, 2, u32::from((SLP_TYP_S5 << control::SLP_TYP_SHIFT) | control::SLP_EN), 0);
    assert_eq!(b.take_event(), Some(BoardEvent::PowerOff));
}

#[test]
fn the_apic_base_msr_reads_enabled_bsp_and_refuses_a_move() {
    let mut b = board();
    assert_eq!(b.apic_base_msr(), 0xFEE0_0900);
    assert_eq!(b.write_apic_base_msr(0xFED0_0900), Err(GeneralProtection));
    assert_eq!(b.write_apic_base_msr(0xFEE0_0100), Ok(()), "disabling is allowed");
    let dev = b.mmio_device(LAPIC_PAGE.base).unwrap();
    assert_eq!(b.mmio_read(dev, LAPIC_PAGE.base + 0x30, 4, 0), 0xFFFF_FFFF, "a disabled APIC's page floats");
}

mod smp;
