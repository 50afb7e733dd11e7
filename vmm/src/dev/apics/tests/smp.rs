//! A board with several vCPUs: each vCPU sees its own local APIC at the
//! APIC page, IPIs of every delivery mode, destination mode and shorthand
//! reach the local APICs they name, the I/O APIC's entries reach any local
//! APIC, each timer belongs to its vCPU, and every vCPU other than the one
//! making the access that got something is to be kicked.
use super::*;
use crate::dev::apic_bus::CpuSet;

fn smp_board(vcpus: usize) -> Board<'static> {
    Board::new(BoardConfig { rtc_epoch_seconds: 1_709_214_330, ram_size: 512 << 20, vcpus }, "smp").expect("wired")
}

fn lapic_read(b: &mut Board, reg: u16, now: u64) -> u32 {
    let gpa = LAPIC_PAGE.base + u64::from(reg);
    let dev = b.mmio_device(gpa).expect("local APIC page");
    b.mmio_read(dev, gpa, 4, now) as u32
}

/// vCPU `cpu` software-enables its local APIC.
fn enable(b: &mut Board, cpu: usize) {
    b.select_cpu(cpu);
    lapic_write(b, regs::SVR, 0x1FF, 0);
}

/// vCPU `from` writes ICR high (destination `dest`) then low (`low`).
fn send_ipi(b: &mut Board, from: usize, dest: u8, low: u32) {
    b.select_cpu(from);
    lapic_write(b, regs::ICR_HIGH, u32::from(dest) << 24, 0);
    lapic_write(b, regs::ICR_LOW, low, 0);
}

/// The vector pending at vCPU `cpu`.
fn pending_at(b: &mut Board, cpu: usize) -> Option<u8> {
    b.select_cpu(cpu);
    b.pending_vector()
}

/// The vCPUs at which `vector` is pending, in order.
fn pending_on(b: &mut Board, vcpus: usize, vector: u8) -> Vec<usize> {
    (0..vcpus).filter(|&c| pending_at(b, c) == Some(vector)).collect()
}

fn kicked(set: CpuSet) -> Vec<usize> {
    set.iter().collect()
}

#[test]
fn each_vcpu_reads_its_own_apic_id_and_only_vcpu_0_is_the_bsp() {
    let mut b = smp_board(3);
    for cpu in 0..3 {
        b.select_cpu(cpu);
        assert_eq!(lapic_read(&mut b, regs::ID, 0), (cpu as u32) << 24, "APIC ID of vCPU {cpu}");
        let bsp = b.apic_base_msr() & lapic::apic_base::BSP != 0;
        assert_eq!(bsp, cpu == 0, "BSP bit of vCPU {cpu}");
    }
    assert_eq!(b.vcpus(), 3);
}

#[test]
fn a_fixed_ipi_by_physical_id_is_pending_only_at_its_target_which_is_kicked() {
    let mut b = smp_board(3);
    for cpu in 0..3 {
        enable(&mut b, cpu);
    }
    b.take_kicks();
    send_ipi(&mut b, 0, 2, 0x4041);
    assert_eq!(kicked(b.take_kicks()), [2], "kicked");
    assert_eq!(pending_on(&mut b, 3, 0x41), [2], "pending at");
    b.select_cpu(2);
    assert_eq!(b.acknowledge(), Some(0x41));
    lapic_write(&mut b, regs::EOI, 0, 0);
    assert_eq!(b.pending_vector(), None, "retired by vCPU 2's EOI");
}

#[test]
fn shorthands_self_all_and_all_but_self_reach_their_vcpus() {
    for (icr, expected_pending, expected_kicks) in
        [(0x4_4042u32, vec![1], vec![]), (0x8_4042, vec![0, 1, 2], vec![0, 2]), (0xC_4042, vec![0, 2], vec![0, 2])]
    {
        let mut b = smp_board(3);
        for cpu in 0..3 {
            enable(&mut b, cpu);
        }
        b.take_kicks();
        send_ipi(&mut b, 1, 0, icr);
        assert_eq!(kicked(b.take_kicks()), expected_kicks, "kicks for ICR {icr:#x}");
        assert_eq!(pending_on(&mut b, 3, 0x42), expected_pending, "pending for ICR {icr:#x}");
    }
}

#[test]
fn flat_and_cluster_logical_destinations_select_by_ldr() {
    let mut b = smp_board(4);
    for cpu in 0..4 {
        enable(&mut b, cpu);
        lapic_write(&mut b, regs::LDR, 1 << (24 + cpu), 0);
    }
    send_ipi(&mut b, 0, 0b1010, 0x4843);
    assert_eq!(pending_on(&mut b, 4, 0x43), [1, 3], "flat: bits 1 and 3");

    let mut b = smp_board(4);
    for (cpu, ldr) in [0x11u32, 0x12, 0x21, 0x22].into_iter().enumerate() {
        enable(&mut b, cpu);
        lapic_write(&mut b, regs::DFR, 0x0FFF_FFFF, 0);
        lapic_write(&mut b, regs::LDR, ldr << 24, 0);
    }
    send_ipi(&mut b, 0, 0x22, 0x4844);
    assert_eq!(pending_on(&mut b, 4, 0x44), [3], "cluster 2, member 2");
    send_ipi(&mut b, 0, 0xF1, 0x4845);
    assert_eq!(pending_on(&mut b, 4, 0x45), [0, 2], "member 1 of every cluster");
}

#[test]
fn a_lowest_priority_ipi_goes_to_the_vcpu_with_the_lowest_task_priority() {
    let mut b = smp_board(3);
    for (cpu, tpr) in [(0, 0x30), (1, 0x20), (2, 0x10)] {
        enable(&mut b, cpu);
        lapic_write(&mut b, regs::TPR, tpr, 0);
    }
    send_ipi(&mut b, 0, 0xFF, 0x4146);
    assert_eq!(pending_on(&mut b, 3, 0x46), [2], "lowest TPR");
}

#[test]
fn nmi_init_and_start_up_ipis_are_events_of_their_target() {
    let mut b = smp_board(2);
    enable(&mut b, 0);
    b.take_kicks();
    send_ipi(&mut b, 0, 1, 0x4500);
    send_ipi(&mut b, 0, 1, 0x4610);
    assert_eq!(kicked(b.take_kicks()), [1]);
    b.select_cpu(0);
    assert!(!b.has_apic_events(), "the sender got nothing");
    b.select_cpu(1);
    assert!(b.has_apic_events());
    let events = b.take_apic_events();
    assert_eq!((events.init, events.startup, events.nmi), (true, Some(0x10), false), "{events:?}");
    send_ipi(&mut b, 0, 1, 0x4400);
    b.select_cpu(1);
    assert!(b.take_apic_events().nmi, "NMI");
}

#[test]
fn init_of_a_vcpu_resets_its_local_apic_but_not_its_id() {
    let mut b = smp_board(2);
    enable(&mut b, 1);
    lapic_write(&mut b, regs::TPR, 0x40, 0);
    b.init_lapic();
    assert_eq!(lapic_read(&mut b, regs::SVR, 0), 0xFF, "software-disabled after INIT");
    assert_eq!(lapic_read(&mut b, regs::TPR, 0), 0);
    assert_eq!(lapic_read(&mut b, regs::ID, 0), 1 << 24);
    b.select_cpu(0);
    assert_eq!(lapic_read(&mut b, regs::SVR, 0), 0xFF, "vCPU 0's untouched (never enabled)");
}

#[test]
fn an_ioapic_entry_sends_to_the_local_apic_it_names_and_that_vcpus_eoi_clears_remote_irr() {
    let mut b = smp_board(2);
    enable(&mut b, 0);
    enable(&mut b, 1);
    b.select_cpu(0);
    // The SCI (pin 9), level-triggered, to APIC ID 1.
    ioapic_write(&mut b, reg::REDIRECTION + 19, 1 << 24);
    ioapic_write(&mut b, reg::REDIRECTION + 18, 0x39 | (1 << 15));
    b.io_write(0x602, 2, u32::from(crate::dev::acpi_pm::event::PWRBTN), 0);
    b.take_kicks();
    b.press_power_button();
    assert_eq!(kicked(b.take_kicks()), [1], "vCPU 0 raised it, vCPU 1 takes it");
    assert_eq!(pending_on(&mut b, 2, 0x39), [1]);
    b.select_cpu(1);
    assert_eq!(b.acknowledge(), Some(0x39));
    b.select_cpu(0);
    b.io_write(0x600, 2, u32::from(crate::dev::acpi_pm::event::PWRBTN), 0);
    b.press_power_button();
    assert_eq!(pending_on(&mut b, 2, 0x39), Vec::<usize>::new(), "remote IRR holds the second one back");
    b.select_cpu(1);
    lapic_write(&mut b, regs::EOI, 0, 0);
    assert_eq!(pending_on(&mut b, 2, 0x39), [1], "vCPU 1's EOI reached the I/O APIC: sent again");
}

#[test]
fn each_vcpu_has_its_own_timer_and_one_that_expires_under_another_vcpu_is_kicked() {
    let mut b = smp_board(2);
    for (cpu, initial) in [(0, 3_000_000u32), (1, 1_000_000)] {
        enable(&mut b, cpu);
        lapic_write(&mut b, regs::TIMER_DIVIDE, 0xB, 0);
        lapic_write(&mut b, regs::LVT_TIMER, 0xE0 + cpu as u32, 0);
        lapic_write(&mut b, regs::TIMER_INITIAL, initial, 0);
    }
    b.select_cpu(0);
    assert_eq!(b.next_deadline_ns(0), Some(3 * MS), "vCPU 0 wakes for its own timer");
    b.select_cpu(1);
    assert_eq!(b.next_deadline_ns(0), Some(MS), "vCPU 1 for its own");
    b.select_cpu(0);
    b.take_kicks();
    b.update(MS);
    assert_eq!(kicked(b.take_kicks()), [1], "vCPU 1's timer fired while vCPU 0 held the board");
    assert_eq!(pending_on(&mut b, 2, 0xE1), [1]);
    assert_eq!(pending_at(&mut b, 0), None);
}

#[test]
fn the_8259_reaches_only_the_vcpu_on_the_virtual_wire() {
    let mut b = smp_board(2);
    b.select_cpu(1);
    pic_and_pit(&mut b);
    b.take_kicks();
    b.update(2 * MS);
    assert_eq!(kicked(b.take_kicks()), [0], "vCPU 0 is on the virtual wire");
    assert_eq!(pending_at(&mut b, 1), None, "an AP's LINT0 is masked");
    assert_eq!(pending_at(&mut b, 0), Some(0x30));
}
