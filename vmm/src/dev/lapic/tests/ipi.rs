//! The ICR, the messages it sends, and their routing between vCPUs.
use super::*;
use crate::dev::apic_bus::{route, CpuSet};

/// Writes ICR high then low, as Linux does, and returns what was sent.
fn send(l: &mut Lapic, dest: u8, low: u32) -> Option<InterruptMessage> {
    write(l, ICR_HIGH, u32::from(dest) << 24);
    match write(l, ICR_LOW, low) {
        Some(LapicOutput::Ipi(m)) => Some(m),
        Some(other) => panic!("ICR write produced {other:?}"),
        None => None,
    }
}

fn message(destination: Destination, delivery: DeliveryMode, vector: u8, trigger: Trigger) -> InterruptMessage {
    InterruptMessage { destination, delivery, vector, trigger }
}

#[test]
fn each_delivery_mode_of_the_icr_makes_its_message() {
    use DeliveryMode::*;
    use Trigger::*;
    let phys = Destination::Physical(3);
    let cases = [
        (0x0000_4031, message(phys, Fixed, 0x31, Edge)),
        (0x0000_C031, message(phys, Fixed, 0x31, Level)),
        (0x0000_4131, message(phys, LowestPriority, 0x31, Edge)),
        (0x0000_4200, message(phys, Smi, 0, Edge)),
        (0x0000_4400, message(phys, Nmi, 0, Edge)),
        (0x0000_C500, message(phys, Init, 0, Level)),
        (0x0000_4500, message(phys, Init, 0, Edge)),
        (0x0000_4698, message(phys, StartUp, 0x98, Edge)),
        (0x0000_4831, message(Destination::Logical(3), Fixed, 0x31, Edge)),
    ];
    for (icr, expected) in cases {
        let mut l = enabled(0);
        assert_eq!(send(&mut l, 3, icr), Some(expected), "ICR {icr:#x}");
        assert_eq!(read(&mut l, ICR_LOW), icr, "ICR reads back, delivery status idle");
        assert_eq!(read(&mut l, ICR_HIGH), 0x0300_0000);
    }
}

#[test]
fn each_shorthand_of_the_icr_makes_its_destination() {
    let mut l = enabled(0);
    let dest = |m: Option<InterruptMessage>| m.map(|m| m.destination);
    assert_eq!(dest(send(&mut l, 9, 0x8_4031)), Some(Destination::AllIncludingSelf));
    assert_eq!(dest(send(&mut l, 9, 0xC_4031)), Some(Destination::AllExcludingSelf));
    assert_eq!(dest(send(&mut l, 9, 0xC_4400)), Some(Destination::AllExcludingSelf), "NMI to all others");
}

#[test]
fn a_self_ipi_is_accepted_locally_and_never_leaves() {
    let mut l = enabled(0);
    assert_eq!(send(&mut l, 9, 0x4_4031), None);
    assert_eq!(l.pending(), Some(0x31));
    assert_eq!(send(&mut l, 9, 0x4_4400), None, "NMI to self is not valid");
    assert!(!l.has_events());
}

#[test]
fn invalid_icr_messages_send_nothing() {
    let mut l = enabled(0);
    assert_eq!(send(&mut l, 1, 0x8500), None, "INIT level de-assert");
    assert_eq!(send(&mut l, 1, 0x4700), None, "ExtINT");
    assert_eq!(send(&mut l, 1, 0x4300), None, "remote read");
    write(&mut l, ESR, 0);
    assert_eq!(read(&mut l, ESR), 0);
}

#[test]
fn a_fixed_ipi_with_an_illegal_vector_is_not_sent_and_sets_send_illegal_vector() {
    let mut l = enabled(0);
    assert_eq!(send(&mut l, 1, 0x400F), None);
    write(&mut l, ESR, 0);
    assert_eq!(read(&mut l, ESR), esr::SEND_ILLEGAL_VECTOR);
    assert!(send(&mut l, 1, 0x4608).is_some(), "a start-up vector below 16 is a page number");
}

/// Three vCPUs with APIC IDs 0, 1, 2, enabled.
fn three() -> [Lapic; 3] {
    [enabled(0), enabled(1), enabled(2)]
}

fn targets(lapics: &[Lapic], sender: Option<usize>, m: InterruptMessage) -> Vec<usize> {
    route(&m, sender, lapics).iter().collect()
}

#[test]
fn physical_destinations_name_one_apic_id_or_all_with_ff() {
    let l = three();
    let m = |d| message(Destination::Physical(d), DeliveryMode::Fixed, 0x40, Trigger::Edge);
    assert_eq!(targets(&l, Some(0), m(1)), [1]);
    assert_eq!(targets(&l, Some(0), m(0xFF)), [0, 1, 2]);
    assert_eq!(targets(&l, Some(0), m(7)), Vec::<usize>::new());
}

#[test]
fn flat_logical_destinations_match_any_shared_ldr_bit() {
    let mut l = three();
    for (i, lapic) in l.iter_mut().enumerate() {
        write(lapic, LDR, 1 << (24 + i));
    }
    let m = |mda| message(Destination::Logical(mda), DeliveryMode::Fixed, 0x40, Trigger::Edge);
    assert_eq!(targets(&l, None, m(0x05)), [0, 2]);
    assert_eq!(targets(&l, None, m(0xFF)), [0, 1, 2]);
    assert_eq!(targets(&l, None, m(0x08)), Vec::<usize>::new());
}

#[test]
fn cluster_logical_destinations_match_the_cluster_and_a_member_bit() {
    let mut l = three();
    for (lapic, ldr) in l.iter_mut().zip([0x11u32, 0x12, 0x21]) {
        write(lapic, DFR, 0x0FFF_FFFF);
        write(lapic, LDR, ldr << 24);
    }
    let m = |mda| message(Destination::Logical(mda), DeliveryMode::Fixed, 0x40, Trigger::Edge);
    assert_eq!(targets(&l, None, m(0x13)), [0, 1]);
    assert_eq!(targets(&l, None, m(0x21)), [2]);
    assert_eq!(targets(&l, None, m(0xF1)), [0, 2], "cluster 0xF is every cluster");
    assert_eq!(targets(&l, None, m(0x14)), Vec::<usize>::new());
}

#[test]
fn shorthands_reach_everyone_with_or_without_the_sender() {
    let l = three();
    let m = |d| message(d, DeliveryMode::Fixed, 0x40, Trigger::Edge);
    assert_eq!(targets(&l, Some(1), m(Destination::AllIncludingSelf)), [0, 1, 2]);
    assert_eq!(targets(&l, Some(1), m(Destination::AllExcludingSelf)), [0, 2]);
}

#[test]
fn lowest_priority_goes_to_the_one_with_the_lowest_arbitration_priority() {
    let mut l = three();
    for (lapic, tpr) in l.iter_mut().zip([0x20, 0x10, 0x30]) {
        write(lapic, TPR, tpr);
    }
    let m = message(Destination::Physical(0xFF), DeliveryMode::LowestPriority, 0x40, Trigger::Edge);
    assert_eq!(route(&m, None, &l), CpuSet(0b010));
    write(&mut l[0], TPR, 0x10);
    assert_eq!(route(&m, None, &l), CpuSet(0b001), "ties go to the lowest index");
}

#[test]
fn a_hardware_disabled_apic_is_not_on_the_bus() {
    let mut l = three();
    l[1].write_apic_base_msr(DEFAULT_BASE).unwrap();
    let m = message(Destination::AllIncludingSelf, DeliveryMode::Init, 0, Trigger::Edge);
    assert_eq!(targets(&l, Some(0), m), [0, 2]);
}

#[test]
fn an_ipi_routed_to_another_vcpu_is_pending_there() {
    let mut l = three();
    let ipi = send(&mut l[0], 2, 0x40F3).unwrap();
    for i in route(&ipi, Some(0), &l).iter() {
        l[i].receive(&ipi);
    }
    assert_eq!(l[2].pending(), Some(0xF3));
    assert_eq!(l[1].pending(), None);
    assert_eq!(l[0].pending(), None);
}

#[test]
fn init_and_start_up_reach_the_vcpu_as_events() {
    let mut ap = Lapic::new(1, false);
    ap.receive(&message(Destination::Physical(1), DeliveryMode::Init, 0, Trigger::Edge));
    ap.receive(&message(Destination::Physical(1), DeliveryMode::StartUp, 0x9A, Trigger::Edge));
    assert_eq!(ap.take_events(), LapicEvents { init: true, startup: Some(0x9A), ..Default::default() });
    assert!(!ap.has_events(), "taken");
    ap.receive(&message(Destination::Physical(1), DeliveryMode::Smi, 0, Trigger::Edge));
    ap.receive(&message(Destination::Physical(1), DeliveryMode::ExtInt, 0, Trigger::Edge));
    ap.receive(&message(Destination::Physical(1), DeliveryMode::Nmi, 0, Trigger::Edge));
    assert_eq!(ap.take_events(), LapicEvents { smi: true, extint: true, nmi: true, ..Default::default() });
}

#[test]
fn init_reset_keeps_the_id_and_base_and_resets_the_rest() {
    let mut l = enabled(4);
    write(&mut l, LDR, 0x0400_0000);
    write(&mut l, TPR, 0x30);
    write(&mut l, LVT_LINT1, 0x400);
    l.accept(0x50, Trigger::Edge);
    l.write_apic_base_msr(0xFED0_0800).unwrap();
    l.init_reset();
    assert_eq!(read(&mut l, ID), 0x0400_0000);
    assert_eq!(l.mmio_base(), Some(0xFED0_0000));
    for (reg, value) in [(LDR, 0), (TPR, 0), (SVR, 0xFF), (LVT_LINT1, 0x1_0000), (IRR + 0x20, 0)] {
        assert_eq!(read(&mut l, reg), value, "register {reg:#x}");
    }
}
