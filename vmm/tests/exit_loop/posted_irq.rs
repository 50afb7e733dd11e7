//! A posted interrupt the guest has not taken yet follows its controller:
//! the vector the guest takes is the one the controller would give when the
//! guest takes it (the INTA cycle of a PC), never one from before the guest
//! re-initialised or masked it (or raised its TPR above), and a
//! higher-priority request overtakes it.
use crate::fake::{Call, FakeSys};
use crate::hlt_irq::program_pic_and_pit_at;
use crate::*;
use sysabi::Reg;
use vmcb::{CrAccessInfo, EventInj, IoDirection::Out};
use vmm::vcpu::VcpuLoop;

/// The master PIC's vector base a PC BIOS leaves: IRQ 0 is vector 8.
const BIOS_BASE: u8 = 0x08;
/// The base a protected-mode guest moves it to.
const GUEST_BASE: u8 = 0x20;
/// Guest time of a run in which the PIT's 1 ms period passes.
const TICK_RUN_NS: u64 = 2_000_000;
/// Guest time of a run of a few instructions.
const SHORT_RUN_NS: u64 = 1_000;

/// The guest writes `value` to `port` (OUT): one exit, one step.
fn out(sys: &FakeSys, lp: &mut VcpuLoop<'_, '_, FakeSys>, port: u16, value: u8) {
    sys.put(Reg::Rax, u64::from(value));
    sys.script([io_exit(port, 1, Out, CODE + 1)]);
    step_ok(lp);
}

/// The posts and withdrawals among the calls since the last look.
fn interrupt_calls(sys: &FakeSys) -> Vec<Call> {
    sys.take_calls().into_iter().filter(|c| matches!(c, Call::Inject(_) | Call::Withdraw)).collect()
}

fn posted(sys: &FakeSys) -> Option<u8> {
    sys.state().posted
}

/// A guest with interrupts off whose PIC pair the BIOS initialised (base
/// 8, IRQs `master_mask` masked) and whose PIT ticks at 1 kHz; the first
/// tick has come and is posted.
fn tick_posted_with_interrupts_off(sys: &FakeSys) -> VcpuLoop<'_, 'static, FakeSys> {
    sys.put(Reg::Rflags, 0x2);
    let mut lp = vcpu_loop(sys);
    let now = sys.state().now_ns;
    program_pic_and_pit_at(&mut lp, now, BIOS_BASE, 0xFE);
    sys.state().run_ns = TICK_RUN_NS;
    sys.script([VmExit::Intr, VmExit::Intr]);
    step_ok(&mut lp);
    sys.state().run_ns = SHORT_RUN_NS;
    step_ok(&mut lp);
    assert_eq!(interrupt_calls(sys), [Call::Inject(EventInj::external_interrupt(BIOS_BASE))]);
    lp
}

#[test]
fn a_tick_posted_before_the_guest_reinitialises_the_pic_is_never_taken_with_the_old_vector() {
    let sys = protected_mode();
    let mut lp = tick_posted_with_interrupts_off(&sys);
    // The guest moves the master to 0x20 (ICW1..ICW4) and unmasks IRQ 0.
    for (port, value) in [(0x20, 0x11), (0x21, GUEST_BASE), (0x21, 0x04), (0x21, 0x01), (0x21, 0xFE)] {
        out(&sys, &mut lp, port, value);
    }
    let seen = interrupt_calls(&sys);
    assert_eq!(seen, [Call::Withdraw], "ICW1 cleared the PIC's request: vector 8 must be withdrawn");
    // STI: the guest takes what is posted at its next run.
    sys.script([VmExit::Intr]);
    step_ok(&mut lp);
    let taken = posted(&sys);
    assert!(taken.is_none() || taken == Some(GUEST_BASE), "expected 0x20 or nothing, saw {taken:x?}");
    // The next tick comes with the new base.
    sys.state().run_ns = TICK_RUN_NS;
    sys.script([VmExit::Intr, VmExit::Intr]);
    step_ok(&mut lp);
    step_ok(&mut lp);
    assert_eq!(posted(&sys), Some(GUEST_BASE), "the next tick is vector 0x20");
}

#[test]
fn masking_the_line_withdraws_its_posted_vector_and_unmasking_posts_it_again() {
    let sys = protected_mode();
    let mut lp = tick_posted_with_interrupts_off(&sys);
    out(&sys, &mut lp, 0x21, 0xFF);
    out(&sys, &mut lp, 0x21, 0xFF);
    assert_eq!(interrupt_calls(&sys), [Call::Withdraw]);
    assert_eq!(posted(&sys), None, "IRQ 0 is masked");
    out(&sys, &mut lp, 0x21, 0xFE);
    out(&sys, &mut lp, 0x21, 0xFE);
    assert_eq!(interrupt_calls(&sys), [Call::Inject(EventInj::external_interrupt(BIOS_BASE))], "kept in the IRR");
    // The guest takes it: only now is IRQ 0 in service.
    assert_eq!(lp.board().pending_vector(), Some(BIOS_BASE));
    sys.state().posted = None;
    out(&sys, &mut lp, 0x80, 0);
    assert_eq!(lp.board().pending_vector(), None, "IRQ 0 in service after the guest took it");
    assert_eq!(interrupt_calls(&sys), []);
}

#[test]
fn a_higher_priority_request_overtakes_a_posted_vector_the_guest_has_not_taken() {
    let sys = protected_mode();
    sys.put(Reg::Rflags, 0x2);
    let mut lp = vcpu_loop(&sys);
    let now = sys.state().now_ns;
    // IRQ 0 (the PIT) and IRQ 4 (COM1, receive interrupts and OUT2) unmasked.
    program_pic_and_pit_at(&mut lp, now, GUEST_BASE, 0xEE);
    lp.board().io_write(0x3F9, 1, 0x01, now);
    lp.board().io_write(0x3FC, 1, 0x08, now);
    sys.state().console_in.push_back(b'x');
    sys.script([VmExit::Intr, VmExit::Intr, VmExit::Intr]);
    step_ok(&mut lp);
    // COM1's interrupt is posted; the PIT ticks before the guest takes it.
    sys.state().run_ns = TICK_RUN_NS;
    step_ok(&mut lp);
    step_ok(&mut lp);
    let expected = [
        Call::Inject(EventInj::external_interrupt(GUEST_BASE + 4)),
        Call::Withdraw,
        Call::Inject(EventInj::external_interrupt(GUEST_BASE)),
    ];
    assert_eq!(interrupt_calls(&sys), expected, "IRQ 0 goes ahead of IRQ 4, as at an INTA cycle");
}

/// The guest (or the test for it) writes `value` to the device register at
/// `gpa`.
pub fn mmio_write(lp: &mut VcpuLoop<'_, '_, FakeSys>, gpa: u64, value: u32, now: u64) {
    let device = lp.board().mmio_device(gpa).expect("a device is wired there");
    lp.board().mmio_write(device, gpa, 4, u64::from(value), now);
}

const LAPIC: u64 = 0xFEE0_0000;
const LAPIC_VECTOR: u8 = 0x30;

/// A long-mode guest with interrupts off whose local APIC has vector 0x30
/// (class 3) posted: the PIT's IRQ 0 through I/O APIC pin 2, the 8259
/// masked.
fn lapic_vector_posted(sys: &FakeSys) -> VcpuLoop<'_, 'static, FakeSys> {
    const IOAPIC: u64 = 0xFEC0_0000;
    sys.put(Reg::Rflags, 0x2);
    let mut lp = vcpu_loop(sys);
    let now = sys.state().now_ns;
    program_pic_and_pit_at(&mut lp, now, GUEST_BASE, 0xFF);
    mmio_write(&mut lp, LAPIC + 0xF0, 0x1FF, now);
    mmio_write(&mut lp, LAPIC + 0x350, 1 << 16, now);
    for (index, value) in [(0x14, u32::from(LAPIC_VECTOR)), (0x15, 0)] {
        mmio_write(&mut lp, IOAPIC, index, now);
        mmio_write(&mut lp, IOAPIC + 0x10, value, now);
    }
    sys.state().run_ns = TICK_RUN_NS;
    sys.script([VmExit::Intr, VmExit::Intr]);
    step_ok(&mut lp);
    sys.state().run_ns = SHORT_RUN_NS;
    step_ok(&mut lp);
    assert_eq!(interrupt_calls(sys), [Call::Inject(EventInj::external_interrupt(LAPIC_VECTOR))]);
    lp
}

#[test]
fn raising_the_tpr_above_a_posted_local_apic_vector_withdraws_it_until_the_tpr_drops() {
    let sys = long_mode();
    let mut lp = lapic_vector_posted(&sys);
    sys.script([VmExit::Intr, VmExit::Intr]);
    // The guest raises its TPR to class 4 before it takes vector 0x30.
    let now = sys.state().now_ns;
    mmio_write(&mut lp, LAPIC + 0x80, 0x40, now);
    step_ok(&mut lp);
    assert_eq!(interrupt_calls(&sys), [Call::Withdraw], "class 3 is below the TPR's class 4");
    assert_eq!(sys.get(Reg::Cr8), 4, "CR8 (V_TPR) follows the TPR written through the APIC page");
    mmio_write(&mut lp, LAPIC + 0x80, 0, now);
    step_ok(&mut lp);
    assert_eq!(interrupt_calls(&sys), [Call::Inject(EventInj::external_interrupt(LAPIC_VECTOR))], "still in the IRR");
    assert_eq!(sys.get(Reg::Cr8), 0);
}

/// MOV to CR8 (intercepted) writes the local APIC's TPR: class 4 holds off
/// the posted class-3 vector, class 0 lets it through, and a value with a
/// reserved bit (above bit 3) raises #GP(0) and changes nothing.
#[test]
fn mov_to_cr8_sets_the_tpr_class_and_a_reserved_bit_raises_gp() {
    const NEXT: u64 = 0x1004;
    let cr8_write = VmExit::CrWrite { cr: 8, info: CrAccessInfo { gpr: 1, mov_cr: true } };
    let sys = long_mode();
    let mut lp = lapic_vector_posted(&sys);
    sys.state().nrips = Some(NEXT);
    sys.put(Reg::Rcx, 4);
    sys.script([cr8_write, VmExit::Intr]);
    step_ok(&mut lp);
    assert_eq!(sys.get(Reg::Rip), NEXT, "RIP after MOV CR8, RCX");
    assert_eq!(lp.board().tpr(), 0x40, "the local APIC's TPR is CR8 << 4");
    step_ok(&mut lp);
    assert_eq!(sys.get(Reg::Cr8), 4, "V_TPR before the next entry");
    assert_eq!(interrupt_calls(&sys), [Call::Withdraw], "class 3 is below CR8's class 4");

    sys.put(Reg::Rcx, 0x10);
    sys.script([cr8_write]);
    step_ok(&mut lp);
    assert_eq!(interrupt_calls(&sys), [Call::Inject(EventInj::exception_with_error(13, 0))], "#GP(0)");
    assert_eq!((sys.get(Reg::Cr8), lp.board().tpr()), (4, 0x40), "the refused write changed nothing");

    sys.put(Reg::Rcx, 0);
    sys.script([cr8_write, VmExit::Intr]);
    step_ok(&mut lp);
    step_ok(&mut lp);
    assert_eq!(sys.get(Reg::Cr8), 0);
    assert_eq!(interrupt_calls(&sys), [Call::Inject(EventInj::external_interrupt(LAPIC_VECTOR))], "still in the IRR");
}
