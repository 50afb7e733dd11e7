//! The calls on a vCPU handle, `sys_run` on the scripted world switch, and
//! the arguments each call refuses.
use super::*;
use crate::syscall::time::{NEVER, SLICE_NS};
use guest_x86::regs::cr4;
use vmcb::{EventInj, ExitCode, Segment};

/// Every call that names a vCPU. Each succeeds on a fresh vCPU of its
/// caller's (`run` on the HLT exit the test scripts first).
const VCPU_CALLS: &[NamedCall<VcpuHandle>] = &[
    ("run", |c, v| sys_run(c, v, NEVER).map(drop)),
    ("next_rip", |c, v| sys_get_next_rip(c, v).map(drop)),
    ("complete_instruction", |c, v| sys_complete_instruction(c, v, 0xFFF2, NextRipSource::Decoded)),
    ("complete_in", |c, v| sys_complete_in(c, v, 1, 0xE9, 0xFFF2)),
    ("inject", |c, v| sys_inject(c, v, EventInj::exception(6))),
    ("interrupt_pending", |c, v| sys_check_pending_interrupt(c, v).map(drop)),
    ("withdraw_interrupt", |c, v| sys_withdraw_interrupt(c, v).map(drop)),
    ("set_exception_intercept", |c, v| sys_set_exception_intercept(c, v, 14, true)),
    ("set_iret_intercept", |c, v| sys_set_iret_intercept(c, v, true)),
    ("reg", |c, v| sys_reg_get(c, v, Reg::Rbx).map(drop)),
    ("regs", |c, v| sys_regs_get(c, v, &[Reg::Rbx, Reg::Rip], &mut [0; 2])),
    ("set_reg", |c, v| sys_reg_set(c, v, Reg::Rbx, 7)),
    ("seg", |c, v| sys_seg_get(c, v, SegReg::Ds).map(drop)),
    ("set_seg", |c, v| sys_seg_set(c, v, SegReg::Ds, Segment::real_mode(0x100))),
    ("write_cr4", |c, v| sys_write_cr4(c, v, 0).map(drop)),
    ("xsetbv", |c, v| sys_xsetbv(c, v, 0, 1).map(drop)),
    ("cpuid", |c, v| sys_cpuid(c, v, 0, 0).map(drop)),
    ("vcpu_info", |c, v| sys_vcpu_info(c, v).map(drop)),
    ("stats", |c, v| sys_get_stats(c, v).map(drop)),
    ("reset_stats", |c, v| sys_reset_stats(c, v)),
    ("paths", |c, v| sys_get_paths(c, v).map(drop)),
];

#[test]
fn every_vcpu_call_serves_the_vcpus_owner() {
    let _k = kernel();
    let w = two_vms();
    sim::script([exit(ExitCode::Hlt)]);
    let wrong = unexpected(VCPU_CALLS, w.a.caller(), w.vcpu_a, Ok(()));
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert_eq!(sim::vmruns().len(), 1, "run entered the guest once");
    assert_eq!(sys_reg_get(w.a.caller(), w.vcpu_a, Reg::Rbx), Ok(7), "set_reg's value reads back");
    assert_eq!(sys_seg_get(w.a.caller(), w.vcpu_a, SegReg::Ds), Ok(Segment::real_mode(0x100)));
    assert_eq!(sys_reg_get(w.a.caller(), w.vcpu_a, Reg::Rip), Ok(0xFFF2), "complete_instruction moved RIP");
}

#[test]
fn every_vcpu_call_refuses_another_process_with_not_owner() {
    let _k = kernel();
    let w = two_vms();
    sys_reg_set(w.a.caller(), w.vcpu_a, Reg::Rbx, 0xA).unwrap();
    let wrong = unexpected(VCPU_CALLS, w.b.caller(), w.vcpu_a, Err(SysError::NotOwner));
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(sim::vmruns().is_empty(), "B's run did not enter A's guest: {:?}", sim::vmruns());
    let a = w.a.caller();
    assert_eq!(sys_reg_get(a, w.vcpu_a, Reg::Rbx), Ok(0xA), "B's set_reg changed nothing");
    assert_eq!(sys_reg_get(a, w.vcpu_a, Reg::Rip), Ok(0xFFF0), "B's complete_instruction changed nothing");
    assert_eq!(sys_seg_get(a, w.vcpu_a, SegReg::Ds), Ok(Segment::real_mode(0)), "B's set_seg changed nothing");
    assert_eq!(sys_check_pending_interrupt(a, w.vcpu_a), Ok(false), "B's inject queued nothing");
}

#[test]
fn every_vcpu_call_refuses_a_stale_handle() {
    let _k = kernel();
    let w = two_vms();
    sys_vm_destroy(w.a.caller(), w.vm_a).unwrap();
    let wrong = unexpected(VCPU_CALLS, w.a.caller(), w.vcpu_a, Err(SysError::NoSuchObject));
    assert!(wrong.is_empty(), "after its VM was destroyed: {wrong:#?}");
    let reused = sys_vcpu_create(w.b.caller(), w.vm_b).unwrap();
    assert_eq!(reused, w.vcpu_a, "the lowest free slot is reused");
    let wrong = unexpected(VCPU_CALLS, w.a.caller(), w.vcpu_a, Err(SysError::NotOwner));
    assert!(wrong.is_empty(), "after reuse by another process: {wrong:#?}");
}

#[test]
fn every_vcpu_call_refuses_a_handle_out_of_range() {
    let _k = kernel();
    let w = two_vms();
    for h in [VcpuHandle(MAX_VCPUS as u16), VcpuHandle(u16::MAX)] {
        let wrong = unexpected(VCPU_CALLS, w.a.caller(), h, Err(SysError::NoSuchObject));
        assert!(wrong.is_empty(), "{h:?}: {wrong:#?}");
    }
}

#[test]
fn inject_refuses_malformed_events_and_a_full_slot() {
    let _k = kernel();
    let w = two_vms();
    let (a, v) = (w.a.caller(), w.vcpu_a);
    for (what, ev) in [
        ("not valid", EventInj::NONE),
        ("exception 2, which must be an NMI", EventInj::exception(2)),
        ("exception vector 32", EventInj::exception(32)),
        ("an error code on an interrupt", EventInj::from_raw(EventInj::external_interrupt(0x30).to_raw() | (1 << 11))),
        ("reserved type 1", EventInj::from_raw((1 << 31) | (1 << 8) | 32)),
    ] {
        assert_eq!(sys_inject(a, v, ev), Err(SysError::BadArgument), "{what}: {ev:?}");
    }
    assert_eq!(sys_inject(a, v, EventInj::external_interrupt(0x30)), Ok(()));
    assert_eq!(sys_check_pending_interrupt(a, v), Ok(true), "the interrupt waits for the guest");
    assert_eq!(sys_inject(a, v, EventInj::external_interrupt(0x31)), Err(SysError::Busy), "a second one");
    assert_eq!(sys_inject(a, v, EventInj::exception(13)), Ok(()), "exceptions use EVENTINJ, which is free");
    assert_eq!(sys_inject(a, v, EventInj::exception(6)), Err(SysError::Busy), "EVENTINJ holds #GP already");
}

#[test]
fn withdraw_interrupt_takes_back_the_posted_vector_and_leaves_eventinj_alone() {
    let _k = kernel();
    let w = two_vms();
    let (a, v) = (w.a.caller(), w.vcpu_a);
    assert_eq!(sys_withdraw_interrupt(a, v), Ok(None), "nothing posted yet");
    sys_inject(a, v, EventInj::external_interrupt(0x08)).unwrap();
    sys_inject(a, v, EventInj::exception(13)).unwrap();
    assert_eq!(sys_withdraw_interrupt(a, v), Ok(Some(0x08)));
    assert_eq!(sys_check_pending_interrupt(a, v), Ok(false), "the vector is gone");
    assert_eq!(sys_inject(a, v, EventInj::exception(6)), Err(SysError::Busy), "the #GP stays queued");
    assert_eq!(sys_inject(a, v, EventInj::external_interrupt(0x20)), Ok(()), "the slot is free for another");
}

#[test]
fn regs_reads_each_named_register_and_refuses_a_buffer_of_another_length() {
    let _k = kernel();
    let w = two_vms();
    let (a, v) = (w.a.caller(), w.vcpu_a);
    sys_reg_set(a, v, Reg::Rbx, 0xB).unwrap();
    sys_reg_set(a, v, Reg::Cr3, 0x3000).unwrap();
    let mut seen = [0u64; 3];
    assert_eq!(sys_regs_get(a, v, &[Reg::Cr3, Reg::Rip, Reg::Rbx], &mut seen), Ok(()));
    assert_eq!(seen, [0x3000, 0xFFF0, 0xB], "CR3, RIP, RBX in the order named");
    for (which, len) in [(&[Reg::Rbx, Reg::Rip][..], 1), (&[Reg::Rbx][..], 2)] {
        let mut out = vec![0xAAu64; len];
        assert_eq!(sys_regs_get(a, v, which, &mut out), Err(SysError::BadArgument), "{which:?} into {len}");
        assert!(out.iter().all(|&o| o == 0xAA), "a refused call wrote nothing: {out:?}");
    }
}

#[test]
fn complete_in_puts_the_value_in_rax_as_the_cpu_would_and_refuses_other_sizes() {
    let _k = kernel();
    let w = two_vms();
    let (a, v) = (w.a.caller(), w.vcpu_a);
    for (size, value, expected) in
        [(1, 0xE9, 0x1122_3344_5566_77E9), (2, 0xBEEF, 0x1122_3344_5566_BEEF), (4, 0xCAFE_F00D, 0xCAFE_F00D)]
    {
        sys_reg_set(a, v, Reg::Rax, 0x1122_3344_5566_7788).unwrap();
        assert_eq!(sys_complete_in(a, v, size, value, 0x1234), Ok(()));
        assert_eq!(sys_reg_get(a, v, Reg::Rax), Ok(expected), "IN of {size} byte(s)");
        assert_eq!(sys_reg_get(a, v, Reg::Rip), Ok(0x1234), "resumes at EXITINFO2");
    }
    assert_eq!(sys_get_paths(a, v).unwrap().io_exitinfo, 3, "each completed through EXITINFO2");
    sys_reg_set(a, v, Reg::Rax, 7).unwrap();
    assert_eq!(sys_complete_in(a, v, 3, 0xFF, 0x5678), Err(SysError::BadArgument), "a 3-byte IN");
    assert_eq!(sys_reg_get(a, v, Reg::Rax), Ok(7), "a refused call changed nothing");
    assert_eq!(sys_reg_get(a, v, Reg::Rip), Ok(0x1234), "nor RIP");
}

#[test]
fn set_exception_intercept_refuses_vectors_past_31() {
    let _k = kernel();
    let w = two_vms();
    for vector in [32, 255] {
        assert_eq!(sys_set_exception_intercept(w.a.caller(), w.vcpu_a, vector, true), Err(SysError::BadArgument));
    }
    assert_eq!(sys_set_exception_intercept(w.a.caller(), w.vcpu_a, 31, true), Ok(()));
}

/// CR8 is the VMCB's V_TPR: four bits, read back as written.
#[test]
fn cr8_is_the_four_bit_v_tpr() {
    let _k = kernel();
    let w = two_vms();
    let (a, v) = (w.a.caller(), w.vcpu_a);
    assert_eq!(sys_reg_get(a, v, Reg::Cr8), Ok(0), "a fresh vCPU's CR8");
    sys_reg_set(a, v, Reg::Cr8, 0xA).unwrap();
    assert_eq!(sys_reg_get(a, v, Reg::Cr8), Ok(0xA));
    sys_reg_set(a, v, Reg::Cr8, 0x13).unwrap();
    assert_eq!(sys_reg_get(a, v, Reg::Cr8), Ok(0x3), "only bits 3:0 are kept");
}

#[test]
fn cr4_and_xsetbv_answer_with_the_fault_the_cpu_would_raise() {
    let _k = kernel();
    let w = two_vms();
    let (a, v) = (w.a.caller(), w.vcpu_a);
    assert_eq!(sys_write_cr4(a, v, 1 << 63), Ok(Err(GuestFault::GeneralProtection)), "a reserved CR4 bit");
    assert_eq!(sys_reg_get(a, v, Reg::Cr4), Ok(0), "the refused write left CR4 alone");
    assert_eq!(sys_write_cr4(a, v, cr4::PSE), Ok(Ok(())), "a bit every model shows");
    assert_eq!(sys_reg_get(a, v, Reg::Cr4), Ok(cr4::PSE));
    assert_eq!(sys_xsetbv(a, v, 0, 1), Ok(Err(GuestFault::InvalidOpcode)), "XSETBV with CR4.OSXSAVE clear");
    // Host tests run with XCR0 0 (arch::xsave was not set up), so the model hides XSAVE.
    assert_eq!(sys_write_cr4(a, v, cr4::PSE | cr4::OSXSAVE), Ok(Err(GuestFault::GeneralProtection)), "OSXSAVE");
    sys_reg_set(a, v, Reg::Cr4, cr4::OSXSAVE).unwrap();
    assert_eq!(sys_xsetbv(a, v, 1, 1), Ok(Err(GuestFault::GeneralProtection)), "XCR1 does not exist");
    assert_eq!(sys_xsetbv(a, v, 0, 0), Ok(Err(GuestFault::GeneralProtection)), "x87 must stay on");
    assert_eq!(sys_xsetbv(a, v, 0, 1), Ok(Err(GuestFault::GeneralProtection)), "a component the model hides");
}

#[test]
fn run_returns_the_exit_and_counts_it() {
    let _k = kernel();
    let w = two_vms();
    let (a, v) = (w.a.caller(), w.vcpu_a);
    sys_npt_map(a, w.vm_a, 0, 2 << 20).unwrap();
    sim::script([exit(ExitCode::Hlt), exit(ExitCode::Shutdown)]);
    assert_eq!(sys_run(a, v, NEVER), Ok(VmExit::Hlt));
    assert_eq!(sys_run(a, v, NEVER), Ok(VmExit::Shutdown));
    let runs = sim::vmruns();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(runs.iter().all(|r| r.nested_paging && r.asid != 0), "nested paging on, a guest ASID: {runs:?}");
    let stats = sys_get_stats(a, v).unwrap();
    assert_eq!((stats.get(ExitReason::Hlt).count, stats.get(ExitReason::Shutdown).count), (1, 1));
    sys_reset_stats(a, v).unwrap();
    assert_eq!(sys_get_stats(a, v).unwrap().get(ExitReason::Hlt).count, 0, "after reset_stats");
}

#[test]
fn run_answers_cpuid_and_ping_itself_and_returns_the_next_exit() {
    let _k = kernel();
    let w = two_vms();
    let (a, v) = (w.a.caller(), w.vcpu_a);
    sys_reg_set(a, v, Reg::Rax, 0).unwrap();
    sim::script([
        exit(ExitCode::Cpuid).next_rip(0xFFF2),
        exit(ExitCode::Vmmcall).next_rip(0xFFF5).guest(|vmcb, _| vmcb.save.rax = hvabi::nr::PING),
        exit(ExitCode::Hlt),
    ]);
    assert_eq!(sys_run(a, v, NEVER), Ok(VmExit::Hlt), "CPUID and PING did not come back");
    let runs = sim::vmruns();
    let rips: Vec<u64> = runs.iter().map(|r| r.rip).collect();
    assert_eq!(rips, [0xFFF0, 0xFFF2, 0xFFF5], "each entry resumed after the instruction answered");
    let expected = sys_cpuid(a, v, 0, 0).unwrap();
    assert_eq!(runs[1].rax, u64::from(expected.eax), "CPUID leaf 0's EAX went to the guest");
    assert_eq!(sys_reg_get(a, v, Reg::Rax), Ok(0), "PING answers 0");
    assert_eq!(sys_get_paths(a, v).unwrap().nrips, 2, "both completed through NRIPS");
    assert_eq!(sys_get_next_rip(a, v), Ok(Some(0)), "the HLT exit's next_rip, which the script left at 0");
}

#[test]
fn run_answers_a_debug_register_access_itself_and_the_mov_runs_again() {
    let _k = kernel();
    let w = two_vms();
    let (a, v) = (w.a.caller(), w.vcpu_a);
    sim::script([exit(ExitCode::DrWrite(7)), exit(ExitCode::Hlt).guest(|_, _| sim::set_dr0_3([1, 2, 3, 4]))]);
    assert_eq!(sys_run(a, v, NEVER), Ok(VmExit::Hlt), "the DR exit did not come back to the VMM");
    let runs = sim::vmruns();
    let rips: Vec<u64> = runs.iter().map(|r| r.rip).collect();
    assert_eq!(rips, [0xFFF0, 0xFFF0], "the intercepted MOV was not completed but entered again");
    assert_eq!(runs[1].dr0_3, [0; 4], "the guest's RESET DR0-DR3 loaded for the second entry");
    assert_eq!(sim::dr0_3(), crate::testkit::HOST_DR, "the host's back after the exit");
}

#[test]
fn run_returns_intr_at_the_callers_deadline_and_arms_the_timer_for_it() {
    let _k = kernel();
    let w = two_vms();
    let (a, v) = (w.a.caller(), w.vcpu_a);
    let deadline = SLICE_NS / 4;
    sim::script([exit(ExitCode::Intr).after_ns(deadline)]);
    assert_eq!(sys_run(a, v, deadline), Ok(VmExit::Intr));
    assert_eq!(sim::vmruns().len(), 1);
    assert_eq!(sim::timer_interrupts(), 1, "the timer armed for the deadline fired");
    sim::pass_ns(10);
    assert_eq!(sys_run(a, v, deadline), Ok(VmExit::Intr), "a deadline already past");
    assert_eq!(sim::vmruns().len(), 1, "the guest was not entered for it");
}

#[test]
fn run_refuses_to_enter_a_state_vmrun_would_reject() {
    let _k = kernel();
    let w = two_vms();
    let (a, v) = (w.a.caller(), w.vcpu_a);
    // CR0.NW without CR0.CD is an illegal combination (APM vol. 2, §15.5.1).
    sys_reg_set(a, v, Reg::Cr0, guest_x86::regs::cr0::NW | guest_x86::regs::cr0::ET).unwrap();
    let seen = sys_run(a, v, NEVER).unwrap();
    assert!(matches!(seen, VmExit::Invalid(Some(_))), "expected Invalid naming the field, saw {seen:?}");
    assert!(sim::vmruns().is_empty(), "expected no VMRUN, saw {:?}", sim::vmruns());
}

#[test]
fn a_vcpu_reports_its_index_vm_and_the_vms_vcpu_count() {
    let _k = kernel();
    let w = two_vms();
    let second = sys_vcpu_create(w.a.caller(), w.vm_a).unwrap();
    let info = sys_vcpu_info(w.a.caller(), second).unwrap();
    assert_eq!((info.index, info.vm_id, info.vcpus), (1, u32::from(w.vm_a.0), 2), "{info:?}");
    // CPUID reports each vCPU's APIC ID (leaf 1, EBX 31:24).
    let apic_id = |h| sys_cpuid(w.a.caller(), h, 1, 0).unwrap().ebx >> 24;
    assert_eq!((apic_id(w.vcpu_a), apic_id(second)), (0, 1));
}
