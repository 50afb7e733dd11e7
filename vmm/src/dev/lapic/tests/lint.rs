//! LINT0 and LINT1, and the 8259's path to the CPU.
use super::*;

#[test]
fn the_8259_reaches_the_bsp_through_lint0_extint_until_it_is_masked() {
    let mut bsp = Lapic::new(0, true);
    assert!(bsp.accepts_pic_interrupt());
    write(&mut bsp, SVR, 0x1FF);
    write(&mut bsp, LVT_LINT0, 0x1_0700);
    assert!(!bsp.accepts_pic_interrupt(), "LINT0 masked, as Linux leaves it in IOAPIC mode");
    write(&mut bsp, LVT_LINT0, 0x0041);
    assert!(!bsp.accepts_pic_interrupt(), "LINT0 unmasked but fixed");
    assert!(!Lapic::new(1, false).accepts_pic_interrupt(), "an AP's LINT0 starts masked");
}

#[test]
fn lint1_in_nmi_mode_raises_an_nmi_on_each_rising_edge() {
    let mut l = enabled(0);
    write(&mut l, LVT_LINT1, 0x400);
    l.set_lint(1, true);
    assert_eq!(l.take_events(), LapicEvents { nmi: true, ..Default::default() });
    l.set_lint(1, true);
    assert!(!l.has_events(), "no edge while the pin stays high");
    l.set_lint(1, false);
    l.set_lint(1, true);
    assert!(l.take_events().nmi);
}

#[test]
fn lint0_fixed_edge_requests_its_vector_on_the_rising_edge() {
    let mut l = enabled(0);
    write(&mut l, LVT_LINT0, 0x41);
    l.set_lint(0, true);
    assert_eq!(take(&mut l), Some(0x41));
    write(&mut l, EOI, 0);
    l.set_lint(0, true);
    assert_eq!(l.pending(), None);
}

#[test]
fn lint0_fixed_level_sets_remote_irr_until_eoi_and_redelivers_while_asserted() {
    let mut l = enabled(0);
    write(&mut l, LVT_LINT0, 0x8041);
    l.set_lint(0, true);
    assert_eq!(read(&mut l, LVT_LINT0), 0xC041, "remote IRR set");
    assert_eq!(take(&mut l), Some(0x41));
    assert_eq!(write(&mut l, EOI, 0), Some(LapicOutput::Eoi { vector: 0x41 }));
    assert_eq!(take(&mut l), Some(0x41), "still asserted: delivered again");
    l.set_lint(0, false);
    write(&mut l, EOI, 0);
    assert_eq!(read(&mut l, LVT_LINT0), 0x8041, "remote IRR cleared");
    assert_eq!(l.pending(), None);
}

#[test]
fn lint_polarity_low_asserts_on_the_falling_level() {
    let mut l = enabled(0);
    l.set_lint(0, true);
    write(&mut l, LVT_LINT0, 0x2041);
    l.set_lint(0, false);
    assert_eq!(l.pending(), Some(0x41));
}

#[test]
fn a_masked_lint_delivers_nothing() {
    let mut l = enabled(0);
    write(&mut l, LVT_LINT1, 0x1_0400);
    write(&mut l, LVT_LINT0, 0x1_0041);
    l.set_lint(0, true);
    l.set_lint(1, true);
    assert_eq!(l.pending(), None);
    assert!(!l.has_events());
}

#[test]
fn unmasking_an_asserted_level_lint_delivers_it() {
    let mut l = enabled(0);
    write(&mut l, LVT_LINT0, 0x1_8041);
    l.set_lint(0, true);
    assert_eq!(l.pending(), None);
    write(&mut l, LVT_LINT0, 0x8041);
    assert_eq!(l.pending(), Some(0x41));
}
