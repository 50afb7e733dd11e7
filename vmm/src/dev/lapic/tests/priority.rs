//! TPR, PPR, APR, acceptance, acknowledge and EOI ordering.
use super::*;

#[test]
fn ppr_is_the_tpr_or_the_in_service_class_whichever_is_higher() {
    let mut l = enabled(0);
    write(&mut l, TPR, 0x45);
    assert_eq!(read(&mut l, PPR), 0x45, "nothing in service");
    l.accept(0x61, Trigger::Edge);
    assert_eq!(take(&mut l), Some(0x61));
    assert_eq!(read(&mut l, PPR), 0x60, "in-service class above the TPR's");
    write(&mut l, TPR, 0x6A);
    assert_eq!(read(&mut l, PPR), 0x6A, "same class: the TPR");
}

#[test]
fn a_requested_vector_is_pending_only_above_the_ppr_class() {
    let mut l = enabled(0);
    write(&mut l, TPR, 0x50);
    l.accept(0x5F, Trigger::Edge);
    assert_eq!(l.pending(), None, "class 5 does not beat PPR class 5");
    assert_eq!(l.acknowledge(), None);
    l.accept(0x61, Trigger::Edge);
    assert_eq!(l.pending(), Some(0x61));
    write(&mut l, TPR, 0);
    assert_eq!(l.pending(), Some(0x61), "highest vector first");
}

#[test]
fn cr8_tpr_writes_hold_off_interrupts() {
    let mut l = enabled(0);
    l.accept(0xE0, Trigger::Edge);
    l.set_tpr(0xF0);
    assert_eq!(l.tpr(), 0xF0);
    assert_eq!(l.pending(), None);
    l.set_tpr(0xD0);
    assert_eq!(l.pending(), Some(0xE0));
}

#[test]
fn nested_interrupts_are_taken_by_priority_and_retired_highest_first() {
    let mut l = enabled(0);
    l.accept(0x40, Trigger::Edge);
    assert_eq!(take(&mut l), Some(0x40));
    l.accept(0x80, Trigger::Edge);
    assert_eq!(take(&mut l), Some(0x80), "a higher class interrupts the handler");
    l.accept(0x45, Trigger::Edge);
    assert_eq!(l.pending(), None, "class 4 waits behind 0x80");
    assert_eq!(write(&mut l, EOI, 0), None);
    assert_eq!(read(&mut l, ISR + 0x40), 0, "EOI retired 0x80 first");
    assert_eq!(read(&mut l, ISR + 0x20), 1, "0x40 still in service");
    assert_eq!(l.pending(), None, "0x45 is in the same class as 0x40");
    write(&mut l, EOI, 0);
    assert_eq!(take(&mut l), Some(0x45));
    write(&mut l, EOI, 0);
    assert_eq!(read(&mut l, ISR + 0x20), 0);
    assert_eq!(read(&mut l, PPR), 0);
}

#[test]
fn a_vector_already_requested_is_taken_once() {
    let mut l = enabled(0);
    l.accept(0x40, Trigger::Edge);
    l.accept(0x40, Trigger::Edge);
    assert_eq!(take(&mut l), Some(0x40));
    assert_eq!(l.pending(), None);
}

#[test]
fn eoi_of_a_level_triggered_vector_is_broadcast_and_of_an_edge_one_is_not() {
    let mut l = enabled(0);
    l.accept(0x50, Trigger::Level);
    l.accept(0x51, Trigger::Edge);
    assert_eq!(take(&mut l), Some(0x51));
    assert_eq!(write(&mut l, EOI, 0), None);
    assert_eq!(take(&mut l), Some(0x50));
    assert_eq!(write(&mut l, EOI, 0), Some(LapicOutput::Eoi { vector: 0x50 }));
}

#[test]
fn eoi_with_nothing_in_service_does_nothing() {
    let mut l = enabled(0);
    l.accept(0x50, Trigger::Level);
    assert_eq!(write(&mut l, EOI, 0), None);
    assert_eq!(l.pending(), Some(0x50));
}

#[test]
fn acceptance_sets_the_tmr_for_level_and_clears_it_for_edge() {
    let mut l = enabled(0);
    l.accept(0x60, Trigger::Level);
    assert_eq!(read(&mut l, TMR + 0x30), 1);
    l.accept(0x60, Trigger::Edge);
    assert_eq!(read(&mut l, TMR + 0x30), 0);
}

#[test]
fn apr_follows_the_tpr_unless_a_request_or_service_is_above_it() {
    let mut l = enabled(0);
    write(&mut l, TPR, 0x35);
    assert_eq!(read(&mut l, APR), 0x35);
    l.accept(0x51, Trigger::Edge);
    assert_eq!(read(&mut l, APR), 0x50, "requested class 5 above TPR class 3");
    write(&mut l, TPR, 0x65);
    assert_eq!(read(&mut l, APR), 0x65);
    l.accept(0x71, Trigger::Edge);
    assert_eq!(take(&mut l), Some(0x71));
    assert_eq!(read(&mut l, APR), 0x70, "in-service class 7 above TPR class 6");
}

#[test]
fn an_illegal_vector_is_refused_with_receive_illegal_vector() {
    let mut l = enabled(0);
    l.accept(0x0F, Trigger::Edge);
    assert_eq!(l.pending(), None);
    assert_eq!(read(&mut l, IRR), 0);
    write(&mut l, ESR, 0);
    assert_eq!(read(&mut l, ESR), esr::RECEIVE_ILLEGAL_VECTOR);
}

#[test]
fn software_disabled_apic_discards_new_fixed_interrupts_but_holds_old_ones() {
    let mut l = enabled(0);
    l.accept(0x40, Trigger::Edge);
    write(&mut l, SVR, 0xFF);
    l.accept(0x50, Trigger::Edge);
    assert_eq!(take(&mut l), Some(0x40), "held request still delivered");
    assert_eq!(l.pending(), None, "0x50 was discarded");
}

/// The VMM posted 0x31; before the guest took it another vCPU's IPI put
/// 0x41 in the IRR. The guest took 0x31: 0x31 goes into service and 0x41
/// stays requested, to be posted next (acknowledging the highest instead
/// would put 0x41 in service and lose it).
#[test]
fn the_vector_the_guest_took_goes_into_service_not_a_higher_one_that_came_since() {
    let mut l = enabled(0);
    l.accept(0x31, Trigger::Edge);
    assert_eq!(l.pending(), Some(0x31), "posted");
    l.accept(0x41, Trigger::Edge);
    assert!(l.acknowledge_vector(0x31));
    assert_eq!(l.pending(), Some(0x41), "0x41 still requested, above the in-service 0x31");
    assert!(!l.acknowledge_vector(0x31), "0x31 is no longer requested");
    assert_eq!(take(&mut l), Some(0x41));
}
