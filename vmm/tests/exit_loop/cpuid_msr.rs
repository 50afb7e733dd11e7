//! CPUID and MSR exits: answers in the registers, RIP past the instruction
//! (decoded without NRIPS, from the VMCB with it), #GP for refused MSRs.
use crate::fake::Call;
use crate::*;
use sysabi::{CpuidResult, NextRipSource, Reg};
use vmcb::{EventInj, MsrExitKind};

const CPUID: [u8; 2] = [0x0F, 0xA2];
const RDMSR: [u8; 2] = [0x0F, 0x32];
const WRMSR: [u8; 2] = [0x0F, 0x30];

/// The vCPU's completions, in order.
fn completions(calls: &[Call]) -> Vec<Call> {
    calls.iter().filter(|c| matches!(c, Call::Complete { .. })).cloned().collect()
}

fn injections(calls: &[Call]) -> Vec<EventInj> {
    calls.iter().filter_map(|c| if let Call::Inject(e) = c { Some(*e) } else { None }).collect()
}

#[test]
fn cpuid_answers_from_the_kernel_and_decodes_its_length_without_nrips() {
    let sys = protected_mode();
    let leaf = CpuidResult { eax: 0x4000_0001, ebx: 0x7472_6543, ecx: 0x7369_5669, edx: 0x5648_726F };
    sys.state().cpuid.insert((0x4000_0000, 0), leaf);
    let mut lp = vcpu_loop(&sys);
    sys.poke(CODE, &CPUID);
    sys.put(Reg::Rax, 0x4000_0000);
    sys.put(Reg::Rcx, 0);
    sys.script([VmExit::Cpuid]);
    step_ok(&mut lp);
    let seen = [Reg::Rax, Reg::Rbx, Reg::Rcx, Reg::Rdx].map(|r| sys.get(r) as u32);
    assert_eq!(seen, [leaf.eax, leaf.ebx, leaf.ecx, leaf.edx], "registers after CPUID");
    let seen = completions(&sys.take_calls());
    assert_eq!(seen, [Call::Complete { next_rip: CODE + 2, from: NextRipSource::Decoded }]);
}

#[test]
fn cpuid_with_nrips_completes_at_the_vmcb_next_rip() {
    let sys = protected_mode();
    let mut lp = vcpu_loop(&sys);
    // No instruction bytes in RAM: NRIPS means nothing is fetched.
    sys.state().nrips = Some(CODE + 2);
    sys.script([VmExit::Cpuid]);
    step_ok(&mut lp);
    let seen = completions(&sys.take_calls());
    assert_eq!(seen, [Call::Complete { next_rip: CODE + 2, from: NextRipSource::Nrips }]);
}

#[test]
fn rdmsr_returns_edx_eax_and_completes() {
    let sys = protected_mode();
    let mut lp = vcpu_loop(&sys);
    sys.poke(CODE, &RDMSR);
    // IA32_APIC_BASE: the xAPIC's address with the enable and BSP bits.
    sys.put(Reg::Rcx, 0x1B);
    sys.put(Reg::Rdx, 0xFFFF);
    sys.script([VmExit::Msr(MsrExitKind::Rdmsr)]);
    step_ok(&mut lp);
    assert_eq!((sys.get(Reg::Rdx), sys.get(Reg::Rax)), (0, 0xFEE0_0900), "EDX:EAX of APIC_BASE");
    let seen = completions(&sys.take_calls());
    assert_eq!(seen, [Call::Complete { next_rip: CODE + 2, from: NextRipSource::Decoded }]);
}

#[test]
fn wrmsr_of_pat_sets_the_guest_pat_from_edx_eax() {
    let sys = protected_mode();
    let mut lp = vcpu_loop(&sys);
    sys.poke(CODE, &WRMSR);
    sys.put(Reg::Rcx, 0x277);
    sys.put(Reg::Rdx, 0x0007_0406);
    sys.put(Reg::Rax, 0xFFFF_FFFF_0007_0406);
    sys.script([VmExit::Msr(MsrExitKind::Wrmsr)]);
    step_ok(&mut lp);
    let calls = sys.take_calls();
    let expected = Call::SetReg(Reg::Pat, 0x0007_0406_0007_0406);
    assert!(calls.contains(&expected), "expected {expected:?} among {calls:?}");
    assert_eq!(completions(&calls).len(), 1, "one completion in {calls:?}");
}

#[test]
fn unknown_and_absent_msrs_get_gp0_and_do_not_complete() {
    // 0x1234: no such MSR (refused); 0x179 MCG_CAP: hidden with machine checks.
    for (index, kind) in [
        (0x1234, MsrExitKind::Rdmsr),
        (0x1234, MsrExitKind::Wrmsr),
        (0x179, MsrExitKind::Rdmsr),
        (0x179, MsrExitKind::Wrmsr),
    ] {
        let sys = protected_mode();
        let mut lp = vcpu_loop(&sys);
        sys.put(Reg::Rcx, index);
        sys.put(Reg::Rax, 0x55);
        sys.script([VmExit::Msr(kind)]);
        step_ok(&mut lp);
        let calls = sys.take_calls();
        let seen = injections(&calls);
        assert_eq!(seen, [EventInj::exception_with_error(13, 0)], "{kind:?} of MSR {index:#x}");
        assert_eq!(completions(&calls), [], "{kind:?} of MSR {index:#x} must not complete");
        assert_eq!(sys.get(Reg::Rip), CODE);
    }
}

#[test]
fn wrmsr_efer_changing_lme_with_paging_on_gets_gp0() {
    let sys = long_mode();
    let mut lp = vcpu_loop(&sys);
    sys.put(Reg::Rcx, 0xC000_0080);
    sys.put(Reg::Rdx, 0);
    sys.put(Reg::Rax, 0); // clears LME while CR0.PG is set
    sys.script([VmExit::Msr(MsrExitKind::Wrmsr)]);
    step_ok(&mut lp);
    let calls = sys.take_calls();
    assert_eq!(injections(&calls), [EventInj::exception_with_error(13, 0)]);
    assert_eq!(sys.get(Reg::Efer), 0x500, "EFER must stay as it was");
}
