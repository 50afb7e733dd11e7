//! The APIC page: reset values, register access rules, ESR.
use super::*;

#[test]
fn registers_read_their_reset_values_after_power_up() {
    let mut ap = Lapic::new(3, false);
    let expected = [
        (ID, 0x0300_0000),
        (VERSION, 0x0005_0014),
        (TPR, 0),
        (APR, 0),
        (PPR, 0),
        (LDR, 0),
        (DFR, 0xFFFF_FFFF),
        (SVR, 0xFF),
        (ESR, 0),
        (ICR_LOW, 0),
        (ICR_HIGH, 0),
        (LVT_TIMER, 0x1_0000),
        (LVT_THERMAL, 0x1_0000),
        (LVT_PERF, 0x1_0000),
        (LVT_LINT0, 0x1_0000),
        (LVT_LINT1, 0x1_0000),
        (LVT_ERROR, 0x1_0000),
        (TIMER_INITIAL, 0),
        (TIMER_CURRENT, 0),
        (TIMER_DIVIDE, 0),
    ];
    for (reg, value) in expected {
        assert_eq!(read(&mut ap, reg), value, "register {reg:#x}");
    }
    for reg in (ISR..ESR).step_by(0x10) {
        assert_eq!(read(&mut ap, reg), 0, "register {reg:#x}");
    }
    let mut bsp = Lapic::new(0, true);
    assert_eq!(read(&mut bsp, LVT_LINT0), 0x700, "BSP LINT0 in ExtINT mode");
}

#[test]
fn id_is_writable_in_bits_31_to_24_only() {
    let mut l = Lapic::new(1, false);
    write(&mut l, ID, 0x07FF_FFFF);
    assert_eq!(read(&mut l, ID), 0x0700_0000);
    assert_eq!(l.id(), 7);
}

#[test]
fn ldr_keeps_bits_31_to_24_and_dfr_reads_ones_below_the_model() {
    let mut l = enabled(0);
    write(&mut l, LDR, 0x12FF_FFFF);
    write(&mut l, DFR, 0x0000_0000);
    assert_eq!(read(&mut l, LDR), 0x1200_0000);
    assert_eq!(read(&mut l, DFR), 0x0FFF_FFFF);
}

#[test]
fn sub_dword_reads_return_those_bytes_of_the_register() {
    let mut l = Lapic::new(0x5A, false);
    let mut one = [0u8; 1];
    l.read(u64::from(ID) + 3, &mut one, 0);
    assert_eq!(one, [0x5A]);
    let mut two = [0u8; 2];
    l.read(u64::from(VERSION) + 2, &mut two, 0);
    assert_eq!(u16::from_le_bytes(two), 0x0005);
}

#[test]
fn bytes_4_to_15_of_a_register_slot_read_as_zero() {
    let mut l = Lapic::new(0, false);
    let mut four = [0xEEu8; 4];
    l.read(u64::from(VERSION) + 4, &mut four, 0);
    assert_eq!(four, [0; 4]);
    let mut eight = [0xEEu8; 8];
    l.read(u64::from(VERSION), &mut eight, 0);
    assert_eq!(u64::from_le_bytes(eight), 0x0005_0014);
    // A read straddling two slots gets the tail of one and the head of
    // the next.
    l.read(u64::from(SVR) - 4, &mut eight, 0);
    assert_eq!(u64::from_le_bytes(eight), 0xFF << 32);
    assert_eq!(read(&mut l, ESR), 0, "slot padding is not an illegal register");
}

#[test]
fn writes_that_are_not_aligned_dwords_are_dropped() {
    let mut l = enabled(0);
    let tpr = u64::from(TPR);
    assert_eq!(l.write(tpr, &[0x20, 0], 0), None);
    assert_eq!(l.write(tpr, &[0x30], 0), None);
    assert_eq!(l.write(tpr, &0x40u64.to_le_bytes(), 0), None);
    assert_eq!(l.write(tpr + 4, &0x50u32.to_le_bytes(), 0), None);
    assert_eq!(l.write(tpr + 1, &0x60u32.to_le_bytes(), 0), None);
    assert_eq!(read(&mut l, TPR), 0);
    write(&mut l, TPR, 0x70);
    assert_eq!(read(&mut l, TPR), 0x70);
}

#[test]
fn reserved_register_access_sets_illegal_register_address_in_esr() {
    for (reserved, by_write) in [(0x040u16, false), (0x2F0, false), (0x3F0, true), (0x400, true)] {
        let mut l = enabled(0);
        if by_write {
            write(&mut l, reserved, 1);
        } else {
            assert_eq!(read(&mut l, reserved), 0, "reserved {reserved:#x} reads 0");
        }
        write(&mut l, ESR, 0);
        assert_eq!(read(&mut l, ESR), esr::ILLEGAL_REGISTER, "after access to {reserved:#x}");
    }
}

#[test]
fn esr_reads_the_errors_seen_before_its_last_write() {
    let mut l = enabled(0);
    write(&mut l, ICR_LOW, 0x4005); // fixed IPI with vector 5: illegal
    assert_eq!(read(&mut l, ESR), 0, "errors show only after an ESR write");
    write(&mut l, ESR, 0);
    assert_eq!(read(&mut l, ESR), esr::SEND_ILLEGAL_VECTOR);
    write(&mut l, ESR, 0);
    assert_eq!(read(&mut l, ESR), 0, "a second write clears it");
}

#[test]
fn error_lvt_raises_its_vector_when_an_error_is_detected() {
    let mut l = enabled(0);
    write(&mut l, LVT_ERROR, 0xFE);
    write(&mut l, ICR_LOW, 0x4005);
    assert_eq!(l.pending(), Some(0xFE));
}

#[test]
fn error_lvt_with_an_illegal_vector_only_records_it() {
    let mut l = enabled(0);
    write(&mut l, LVT_ERROR, 0x03);
    write(&mut l, ICR_LOW, 0x4005);
    write(&mut l, ESR, 0);
    assert_eq!(read(&mut l, ESR), esr::SEND_ILLEGAL_VECTOR | esr::RECEIVE_ILLEGAL_VECTOR);
    assert_eq!(l.pending(), None);
}

#[test]
fn read_only_registers_ignore_writes_without_error() {
    let mut l = enabled(0);
    l.accept(0x40, Trigger::Edge);
    for reg in [VERSION, APR, PPR, ISR, TMR, IRR + 0x20, TIMER_CURRENT] {
        write(&mut l, reg, 0xFFFF_FFFF);
    }
    assert_eq!(read(&mut l, VERSION), VERSION_VALUE);
    assert_eq!(read(&mut l, IRR + 0x20), 1, "vector 0x40 still requested");
    assert_eq!(read(&mut l, PPR), 0);
    write(&mut l, ESR, 0);
    assert_eq!(read(&mut l, ESR), 0);
}

#[test]
fn isr_tmr_and_irr_show_each_vector_in_its_word() {
    let mut l = enabled(0);
    l.accept(0x31, Trigger::Edge);
    l.accept(0x85, Trigger::Level);
    assert_eq!(read(&mut l, IRR + 0x10), 1 << 0x11);
    assert_eq!(read(&mut l, IRR + 0x40), 1 << 5);
    assert_eq!(read(&mut l, TMR + 0x40), 1 << 5);
    assert_eq!(read(&mut l, TMR + 0x10), 0);
    assert_eq!(take(&mut l), Some(0x85));
    assert_eq!(read(&mut l, ISR + 0x40), 1 << 5);
    assert_eq!(read(&mut l, IRR + 0x40), 0);
}

#[test]
fn clearing_svr_enable_masks_every_lvt_and_keeps_them_masked_while_disabled() {
    let mut l = enabled(0);
    write(&mut l, LVT_TIMER, 0x30);
    write(&mut l, LVT_LINT1, 0x400);
    write(&mut l, SVR, 0xFF);
    assert!(!l.software_enabled());
    for reg in (LVT_TIMER..=LVT_ERROR).step_by(0x10) {
        assert_ne!(read(&mut l, reg) & LVT_MASKED, 0, "LVT {reg:#x} masked");
    }
    write(&mut l, LVT_TIMER, 0x30);
    assert_eq!(read(&mut l, LVT_TIMER), 0x1_0030, "mask cannot be cleared while disabled");
    write(&mut l, SVR, 0x1FF);
    assert_eq!(read(&mut l, LVT_TIMER), 0x1_0030, "re-enabling leaves the masks set");
    write(&mut l, LVT_TIMER, 0x30);
    assert_eq!(read(&mut l, LVT_TIMER), 0x30);
}

#[test]
fn svr_keeps_vector_enable_and_focus_bits_only() {
    let mut l = enabled(0);
    write(&mut l, SVR, 0xFFFF_FFFF);
    assert_eq!(read(&mut l, SVR), 0x3FF);
}

#[test]
fn lvt_entries_keep_only_their_writable_bits() {
    let mut l = enabled(0);
    for (reg, kept) in [
        (LVT_TIMER, 0x7_00FF),
        (LVT_THERMAL, 0x1_07FF),
        (LVT_PERF, 0x1_07FF),
        (LVT_LINT0, 0x1_A7FF),
        (LVT_LINT1, 0x1_A7FF),
        (LVT_ERROR, 0x1_00FF),
    ] {
        write(&mut l, reg, 0xFFFF_FFFF);
        assert_eq!(read(&mut l, reg), kept, "LVT {reg:#x}");
    }
}

#[test]
fn hardware_disabled_apic_reads_all_ones_and_ignores_writes() {
    let mut l = enabled(0);
    l.write_apic_base_msr(DEFAULT_BASE).unwrap();
    assert_eq!(read(&mut l, VERSION), 0xFFFF_FFFF);
    assert_eq!(write(&mut l, ICR_LOW, 0x4031), None);
    l.write_apic_base_msr(DEFAULT_BASE | apic_base::ENABLE).unwrap();
    assert_eq!(read(&mut l, ICR_LOW), 0);
}
