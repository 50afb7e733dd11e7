//! IA32_APIC_BASE: enable, BSP flag, relocation.
use super::*;

#[test]
fn apic_base_after_reset_is_fee00000_enabled_with_the_bsp_flag_on_the_bsp_only() {
    assert_eq!(Lapic::new(0, true).apic_base_msr(), 0xFEE0_0900);
    assert_eq!(Lapic::new(1, false).apic_base_msr(), 0xFEE0_0800);
    assert!(Lapic::new(0, true).is_bsp());
    assert_eq!(Lapic::new(1, false).mmio_base(), Some(DEFAULT_BASE));
}

#[test]
fn writing_a_new_base_moves_the_page() {
    let mut l = Lapic::new(0, true);
    l.write_apic_base_msr(0xFED0_0800).unwrap();
    assert_eq!(l.mmio_base(), Some(0xFED0_0000));
    assert_eq!(l.apic_base_msr(), 0xFED0_0900, "BSP flag kept");
}

#[test]
fn reserved_bits_and_x2apic_enable_are_refused_with_gp() {
    let mut l = Lapic::new(0, false);
    for bad in [1u64, 1 << 7, 1 << 9, apic_base::EXTD, 1 << 52, 1 << 63] {
        let value = DEFAULT_BASE | apic_base::ENABLE | bad;
        assert_eq!(l.write_apic_base_msr(value), Err(GeneralProtection), "{value:#x}");
    }
    assert_eq!(l.apic_base_msr(), 0xFEE0_0800, "unchanged");
}

#[test]
fn the_bsp_flag_is_read_only() {
    let mut bsp = Lapic::new(0, true);
    bsp.write_apic_base_msr(DEFAULT_BASE | apic_base::ENABLE).unwrap();
    assert!(bsp.is_bsp());
    let mut ap = Lapic::new(1, false);
    ap.write_apic_base_msr(DEFAULT_BASE | apic_base::ENABLE | apic_base::BSP).unwrap();
    assert!(!ap.is_bsp());
}

#[test]
fn clearing_enable_removes_the_apic_and_resets_its_registers_and_timer() {
    let mut l = enabled(2);
    write(&mut l, TPR, 0x20);
    write(&mut l, LDR, 0x0100_0000);
    write(&mut l, LVT_TIMER, 0x30);
    write(&mut l, TIMER_INITIAL, 1000);
    l.accept(0x40, Trigger::Edge);
    l.write_apic_base_msr(DEFAULT_BASE).unwrap();
    assert_eq!(l.mmio_base(), None);
    assert_eq!(l.pending(), None);
    assert!(l.accepts_pic_interrupt(), "the 8259 drives INTR directly");
    l.receive(&fixed(0x50));
    l.write_apic_base_msr(DEFAULT_BASE | apic_base::ENABLE).unwrap();
    for (reg, value) in [(ID, 0x0200_0000), (TPR, 0), (LDR, 0), (SVR, 0xFF), (LVT_TIMER, 0x1_0000), (IRR + 0x20, 0)] {
        assert_eq!(read(&mut l, reg), value, "register {reg:#x}");
    }
    assert_eq!(l.next_deadline_ns(), None);
    assert_eq!(read_at(&mut l, TIMER_CURRENT, 10), 0, "timer stopped");
}
