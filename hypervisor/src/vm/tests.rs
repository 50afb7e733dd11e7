//! Host tests of the vm layer's guarantees (see the module docs): ASIDs and
//! TLB flushes, clean bits, event delivery around the world switch, the
//! state check before VMRUN and the registers the guest must not see. They
//! run `Vcpu::run` over the scripted world switch of `arch::sim`.
use super::*;
use crate::arch::sim::{self, ScriptedExit};
use crate::testkit::{kernel, Process, HOST_DR, TEST_CAPS};
use vmcb::{DrSet, ExitCode};

/// A VM with `n` vCPUs and CPU 0 with `caps`, over frames of a process of
/// its own. Dropping it gives the vCPUs back to the VM, then ends the
/// process (which checks that every frame came back).
struct Rig {
    vm: Vm,
    v: Vec<Vcpu>,
    cpu: CpuVm,
    /// Last: ended after the VM is gone.
    _p: Process,
}

fn rig(n: usize, caps: SvmCaps) -> Rig {
    let p = Process::new(4096);
    let host = |leaf, sub| {
        let [eax, ebx, ecx, edx] = crate::arch::cpu::cpuid(leaf, sub);
        cpuid::CpuidResult { eax, ebx, ecx, edx }
    };
    let mut vm = Vm::new(p.pool(), cpuid::CpuModel::new(&host, 0, hvabi::ABI_VERSION)).expect("a VM");
    let v = (0..n).map(|_| Vcpu::new(&mut vm, p.pool()).expect("a vCPU")).collect();
    Rig { vm, v, cpu: CpuVm::new(0, caps, host_state_limits(), HOST_DR), _p: p }
}

impl Drop for Rig {
    fn drop(&mut self) {
        for v in self.v.drain(..) {
            self.vm.release_vcpu(v);
        }
    }
}

fn hlt() -> ScriptedExit {
    ScriptedExit::new(ExitCode::Hlt.to_raw())
}

/// Runs `n` scripted HLT exits and returns what each VMRUN saw.
fn run_hlts(v: &mut Vcpu, cpu: &mut CpuVm, vm: &Vm, n: usize) -> Vec<sim::VmrunSeen> {
    let before = sim::vmruns().len();
    sim::script((0..n).map(|_| hlt()));
    for i in 0..n {
        assert_eq!(v.run(cpu, vm), VmExit::Hlt, "run {i}");
    }
    sim::vmruns()[before..].to_vec()
}

#[test]
fn a_vcpu_keeps_its_asid_until_the_npt_loses_a_translation() {
    let _k = kernel();
    let mut r = rig(1, TEST_CAPS);
    let runs = run_hlts(&mut r.v[0], &mut r.cpu, &r.vm, 2);
    assert_ne!(runs[0].asid, 0, "the host's ASID is never a guest's");
    assert_eq!((runs[1].asid, runs[1].tlb_control), (runs[0].asid, 0), "second run: same ASID, no flush");
    r.vm.npt_changed();
    let after = run_hlts(&mut r.v[0], &mut r.cpu, &r.vm, 1)[0];
    assert_ne!(after.asid, runs[0].asid, "without flush-by-ASID a stale ASID is replaced: {after:?}");
    assert_eq!((r.v[0].paths.new_asids, r.v[0].paths.asid_flushes), (2, 0));
}

#[test]
fn with_flush_by_asid_a_stale_asid_is_flushed_and_kept() {
    let _k = kernel();
    let mut r = rig(1, SvmCaps { flush_by_asid: true, ..TEST_CAPS });
    let first = run_hlts(&mut r.v[0], &mut r.cpu, &r.vm, 1)[0];
    r.vm.npt_changed();
    let after = run_hlts(&mut r.v[0], &mut r.cpu, &r.vm, 1)[0];
    assert_eq!(after.asid, first.asid);
    assert_eq!(after.tlb_control, TlbControl::FlushThisAsid as u8, "{after:?}");
    r.v[0].request_tlb_flush();
    assert_eq!(
        run_hlts(&mut r.v[0], &mut r.cpu, &r.vm, 1)[0].tlb_control,
        TlbControl::FlushThisAsid as u8,
        "CR4 change"
    );
    assert_eq!(run_hlts(&mut r.v[0], &mut r.cpu, &r.vm, 1)[0].tlb_control, 0, "then nothing more");
}

#[test]
fn running_out_of_asids_starts_a_generation_with_a_full_flush() {
    let _k = kernel();
    // Three ASIDs: 0 (the host's), 1 and 2.
    let mut r = rig(3, SvmCaps { asids: 3, ..TEST_CAPS });
    let a1 = run_hlts(&mut r.v[0], &mut r.cpu, &r.vm, 1)[0];
    let a2 = run_hlts(&mut r.v[1], &mut r.cpu, &r.vm, 1)[0];
    let a3 = run_hlts(&mut r.v[2], &mut r.cpu, &r.vm, 1)[0];
    assert_eq!((a1.asid, a2.asid), (1, 2));
    assert_eq!((a3.asid, a3.tlb_control), (1, TlbControl::FlushAll as u8), "{a3:?}");
    let again = run_hlts(&mut r.v[0], &mut r.cpu, &r.vm, 1)[0];
    assert_eq!(again.asid, 2, "v1's ASID is of the old generation: it takes a new one");
}

#[test]
fn clean_bits_claim_only_unchanged_fields_and_only_on_the_same_cpu() {
    let _k = kernel();
    let caps = SvmCaps { vmcb_clean: true, ..TEST_CAPS };
    let mut r = rig(1, caps);
    run_hlts(&mut r.v[0], &mut r.cpu, &r.vm, 1);
    assert_eq!(r.v[0].vmcb.control.clean_bits(), CleanBits::empty(), "a first run claims nothing");
    run_hlts(&mut r.v[0], &mut r.cpu, &r.vm, 1);
    assert_eq!(r.v[0].vmcb.control.clean_bits(), CleanBits::all(), "nothing changed");
    let cr0 = r.v[0].reg(Reg::Cr0);
    r.v[0].set_reg(Reg::Cr0, cr0);
    r.v[0].set_seg(SegReg::Ds, Segment::real_mode(0x40));
    run_hlts(&mut r.v[0], &mut r.cpu, &r.vm, 1);
    let seen = r.v[0].vmcb.control.clean_bits();
    assert_eq!(seen, CleanBits::all() - CleanBits::CRX - CleanBits::SEG, "CR0 and DS written");
    // As if it had run on CPU 1 since (host tests have only CPU 0).
    r.v[0].last_cpu = Some(1);
    run_hlts(&mut r.v[0], &mut r.cpu, &r.vm, 1);
    assert_eq!(r.v[0].vmcb.control.clean_bits(), CleanBits::empty(), "this CPU's cached copy may be stale");
}

#[test]
fn an_event_cut_short_by_an_exit_is_delivered_again_at_the_next_entry() {
    let _k = kernel();
    let mut r = rig(1, TEST_CAPS);
    let pf = EventInj::exception_with_error(14, 2);
    sim::script([ScriptedExit::new(ExitCode::Npf.to_raw()).int_info(pf.to_raw()), hlt()]);
    let first = r.v[0].run(&mut r.cpu, &r.vm);
    assert!(matches!(first, VmExit::NpfInDelivery { vector: 14, .. }), "expected the scripted NPF, saw {first:?}");
    assert_eq!(r.v[0].run(&mut r.cpu, &r.vm), VmExit::Hlt);
    let runs = sim::vmruns();
    assert_eq!((runs[0].event_inj, runs[1].event_inj), (EventInj::NONE, pf), "{runs:?}");
}

#[test]
fn a_cpu_seen_skipping_v_irq_gets_interrupts_through_eventinj() {
    let _k = kernel();
    let mut r = rig(1, TEST_CAPS);
    r.v[0].set_reg(Reg::Rflags, guest_x86::regs::rflags::IF);
    assert!(r.v[0].inject(EventInj::external_interrupt(0x30)), "the V_IRQ slot was free");
    // The guest runs into HLT with V_IRQ still set: as if the CPU ignored it.
    let skipped = hlt().guest(|vmcb, _| {
        let ic = vmcb.control.interrupt_control();
        vmcb.control.set_interrupt_control(ic.with_v_irq(true).with_v_intr_vector(0x30));
    });
    sim::script([skipped, hlt()]);
    assert_eq!(r.v[0].run(&mut r.cpu, &r.vm), VmExit::Hlt);
    assert!(!r.cpu.virq_reliable && r.v[0].paths.virq_missed == 1, "the miss was seen: {:?}", r.v[0].paths);
    assert_eq!(r.v[0].run(&mut r.cpu, &r.vm), VmExit::Hlt);
    let second = sim::vmruns()[1];
    assert_eq!(second.event_inj, EventInj::external_interrupt(0x30), "{second:?}");
    assert_eq!((second.virq_delivered, r.v[0].paths.eventinj_irqs), (None, 1));
    assert!(!r.v[0].interrupt_posted(), "the interrupt left V_IRQ for EVENTINJ");
}

#[test]
fn a_state_vmrun_would_refuse_is_not_run_until_fixed() {
    let _k = kernel();
    let mut r = rig(1, TEST_CAPS);
    let good = r.v[0].reg(Reg::Cr0);
    r.v[0].set_reg(Reg::Cr0, good | (1 << 32));
    let seen = r.v[0].run(&mut r.cpu, &r.vm);
    assert!(matches!(seen, VmExit::Invalid(Some(_))), "CR0 bit 32 set: expected Invalid(Some), saw {seen:?}");
    assert_eq!(r.v[0].stats.get(ExitReason::Invalid).count, 0, "a refused entry is no exit");
    assert!(sim::vmruns().is_empty(), "expected no VMRUN, saw {:?}", sim::vmruns());
    r.v[0].set_reg(Reg::Cr0, good);
    assert_eq!(run_hlts(&mut r.v[0], &mut r.cpu, &r.vm, 1).len(), 1, "fixed, it runs");
}

#[test]
fn the_guest_never_sees_efer_svme_and_cannot_clear_it() {
    let _k = kernel();
    let mut r = rig(1, TEST_CAPS);
    assert_eq!(r.v[0].reg(Reg::Efer), 0, "reset EFER as the guest reads it");
    r.v[0].set_reg(Reg::Efer, efer::LME);
    assert_eq!(r.v[0].reg(Reg::Efer), efer::LME);
    assert_eq!(r.v[0].vmcb.save.efer, efer::LME | efer::SVME, "VMRUN still gets SVME");
}

#[test]
fn loading_ss_sets_the_cpl_from_its_dpl() {
    let _k = kernel();
    let mut r = rig(1, TEST_CAPS);
    let mut ss = Segment::real_mode(0);
    ss.attrib = (ss.attrib & !(3 << 5)) | (3 << 5);
    r.v[0].set_seg(SegReg::Ss, ss);
    assert_eq!(r.v[0].reg(Reg::Cpl), 3);
}

#[test]
fn exits_are_counted_and_timed_by_reason() {
    let _k = kernel();
    let mut r = rig(1, TEST_CAPS);
    sim::script([ScriptedExit::new(ExitCode::Cpuid.to_raw()), hlt(), hlt()]);
    let exits: Vec<VmExit> = (0..3).map(|_| r.v[0].run(&mut r.cpu, &r.vm)).collect();
    assert_eq!(exits, [VmExit::Cpuid, VmExit::Hlt, VmExit::Hlt], "each run returns its exit");
    let (c, h) = (r.v[0].stats.get(ExitReason::Cpuid), r.v[0].stats.get(ExitReason::Hlt));
    assert_eq!((c.count, h.count), (1, 2));
    assert_eq!((c.timed, h.timed), (1, 1), "an exit is timed when the next entry closes it");
}

/// A scripted exit after which the guest left `dr` in DR0–DR3 and `dr7`
/// in DR7 (a guest that MOVs to them while they are not intercepted).
fn hlt_leaving_drs(dr: [u64; 4], dr7: u64) -> ScriptedExit {
    hlt().guest(move |vmcb, _| {
        sim::set_dr0_3(dr);
        vmcb.save.dr7 = dr7;
    })
}

#[test]
fn two_vcpus_find_only_their_own_dr0_3_and_the_host_gets_its_own_back() {
    const SET: [u64; 4] = [0x1000, 0x2000, 0x3000, 0x4000];
    const OTHER: [u64; 4] = [0xA, 0xB, 0xC, 0xD];
    const ARMED: u64 = debug::DR7_RESET | 0x2;
    let _k = kernel();
    let mut r = rig(2, TEST_CAPS);
    let Rig { vm, v, cpu, .. } = &mut r;
    let (a, b) = v.split_at_mut(1);
    let (a, b) = (&mut a[0], &mut b[0]);
    let intercepted = |v: &Vcpu| (v.vmcb.control.dr_read_intercepts(), v.vmcb.control.dr_write_intercepts());
    assert_eq!(intercepted(a), (debug::READS_INTERCEPTED, debug::WRITES_INTERCEPTED));

    // a writes DR0 (intercepted), gets its registers, writes and arms them.
    sim::script([ScriptedExit::new(ExitCode::DrWrite(0).to_raw())]);
    assert_eq!(a.run(cpu, vm), VmExit::Other(ExitCode::DrWrite(0)));
    a.give_debug_registers();
    assert_eq!(intercepted(a), (DrSet::empty(), DrSet::empty()), "the MOV runs again on the CPU");
    sim::script([hlt_leaving_drs(SET, ARMED)]);
    assert_eq!(a.run(cpu, vm), VmExit::Hlt);
    assert_eq!(sim::vmruns().last().unwrap().dr0_3, [0; 4], "a found its RESET values");
    assert_eq!(sim::dr0_3(), HOST_DR, "the host's registers after a's exit");

    // b, intercepted, runs with nothing loaded; its first access gets it its own zeros.
    sim::script([ScriptedExit::new(ExitCode::DrRead(1).to_raw())]);
    assert_eq!(b.run(cpu, vm), VmExit::Other(ExitCode::DrRead(1)));
    b.give_debug_registers();
    sim::script([hlt_leaving_drs(OTHER, debug::DR7_RESET)]);
    b.run(cpu, vm);
    assert_eq!(sim::vmruns().last().unwrap().dr0_3, [0; 4], "b found its RESET values, not a's");
    assert_eq!(intercepted(b), (debug::READS_INTERCEPTED, debug::WRITES_INTERCEPTED), "b armed nothing");
    assert_eq!(sim::dr0_3(), HOST_DR);

    // a's breakpoints are armed: loaded at once, its own, until it disarms them.
    assert_eq!(run_hlts(a, cpu, vm, 1)[0].dr0_3, SET, "a's registers, armed");
    assert_eq!(intercepted(a), (DrSet::empty(), DrSet::empty()), "still armed: still loaded");
    sim::script([hlt_leaving_drs(SET, debug::DR7_RESET)]);
    a.run(cpu, vm);
    assert_eq!(intercepted(a), (debug::READS_INTERCEPTED, debug::WRITES_INTERCEPTED), "disarmed: intercepted again");

    // b's next access finds what b left, not a's.
    sim::script([ScriptedExit::new(ExitCode::DrRead(2).to_raw())]);
    b.run(cpu, vm);
    b.give_debug_registers();
    assert_eq!(run_hlts(b, cpu, vm, 1)[0].dr0_3, OTHER, "b's own values");
    assert_eq!(sim::dr0_3(), HOST_DR);
}

#[test]
fn a_vms_walk_limits_are_those_its_vcpus_cpuid_states() {
    let _k = kernel();
    let r = rig(1, TEST_CAPS);
    let view = r.v[0].cpuid_view(0);
    let seen = WalkLimits::from_cpuid(|leaf, sub| {
        let c = r.vm.cpuid.answer(leaf, sub, &view);
        [c.eax, c.ebx, c.ecx, c.edx]
    });
    assert_eq!(r.vm.walk_limits, seen, "the kernel's walks obey what CPUID tells the guest");
}

#[test]
fn the_iret_intercept_is_set_and_cleared_alone_and_the_cpu_reloads_the_intercepts() {
    let _k = kernel();
    let caps = SvmCaps { vmcb_clean: true, ..TEST_CAPS };
    let mut r = rig(1, caps);
    run_hlts(&mut r.v[0], &mut r.cpu, &r.vm, 2);
    let before = r.v[0].vmcb.control.misc1_intercepts();
    assert!(!before.contains(InterceptMisc1::IRET), "IRET is not trapped at first");
    r.v[0].set_iret_intercept(true);
    run_hlts(&mut r.v[0], &mut r.cpu, &r.vm, 1);
    assert_eq!(r.v[0].vmcb.control.misc1_intercepts(), before | InterceptMisc1::IRET);
    assert!(!r.v[0].vmcb.control.clean_bits().contains(CleanBits::INTERCEPTS), "the intercepts changed");
    r.v[0].set_iret_intercept(false);
    assert_eq!(r.v[0].vmcb.control.misc1_intercepts(), before, "the others stay");
}
