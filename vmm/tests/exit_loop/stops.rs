//! How a vCPU stops for good: shutdown, VMRUN state errors, reset and
//! power-off requests, unhandled exits and kernel errors; and the events
//! reflected into the guest instead.
use crate::fake::Call;
use crate::*;
use sysabi::{Reg, SysError};
use vmcb::IoDirection::Out;
use vmcb::{EventInj, ExceptionExit, ExitCode, StateError};
use vmm::vcpu::Stop;

#[test]
fn shutdown_stops_as_a_triple_fault_at_rip() {
    let sys = protected_mode();
    let mut lp = vcpu_loop(&sys);
    sys.put(Reg::Rip, 0xFFF0);
    sys.script([VmExit::Shutdown]);
    assert_eq!(lp.step(), Err(Stop::TripleFault { rip: 0xFFF0 }));
}

#[test]
fn vmrun_state_error_stops_naming_the_field() {
    let sys = protected_mode();
    let mut lp = vcpu_loop(&sys);
    let why = StateError::Cr0NwWithoutCd;
    sys.script([VmExit::Invalid(Some(why))]);
    let seen = lp.step();
    assert_eq!(seen, Err(Stop::InvalidState { rip: CODE, why: Some(why) }));
    let text = seen.unwrap_err().to_string();
    assert!(text.contains(&why.to_string()), "the stop must name the field: {text:?}");
    sys.script([VmExit::Invalid(None)]);
    assert_eq!(lp.step(), Err(Stop::InvalidState { rip: CODE, why: None }));
}

#[test]
fn run_ends_at_a_reset_through_port_cf9_after_the_exits_before_it() {
    let sys = protected_mode();
    let mut lp = vcpu_loop(&sys);
    sys.put(Reg::Rax, 0x06);
    sys.script([io_exit(0x80, 1, Out, CODE + 2), io_exit(0xCF9, 1, Out, CODE + 4), VmExit::Shutdown]);
    assert_eq!(lp.run(), Stop::Reset);
    let runs = sys.take_calls().iter().filter(|c| matches!(c, Call::Run { .. })).count();
    assert_eq!(runs, 2, "the VM stops at the second exit");
    assert!(Stop::Reset.is_clean());
}

#[test]
fn i8042_pulse_and_port_92_fast_reset_also_reset() {
    for (port, value) in [(0x64u16, 0xFEu64), (0x92, 0x01)] {
        let sys = protected_mode();
        let mut lp = vcpu_loop(&sys);
        sys.put(Reg::Rax, value);
        sys.script([io_exit(port, 1, Out, CODE + 2)]);
        assert_eq!(lp.step(), Err(Stop::Reset), "out {value:#x} to {port:#x}");
    }
}

#[test]
fn a_word_write_over_cf9_is_no_reset() {
    let sys = protected_mode();
    let mut lp = vcpu_loop(&sys);
    sys.put(Reg::Rax, 0x0600);
    sys.script([io_exit(0xCF8, 2, Out, CODE + 2)]);
    step_ok(&mut lp);
}

#[test]
fn exits_without_a_handler_stop_with_their_code() {
    let sys = protected_mode();
    let mut lp = vcpu_loop(&sys);
    sys.script([VmExit::Other(ExitCode::Pause)]);
    assert_eq!(lp.step(), Err(Stop::UnhandledExit { code: ExitCode::Pause.to_raw(), rip: CODE }));
}

#[test]
fn a_failing_kernel_call_stops_the_vcpu_with_the_error() {
    let sys = protected_mode();
    let mut lp = vcpu_loop(&sys);
    // No exit queued: the fake's run fails.
    assert_eq!(lp.run(), Stop::Kernel(SysError::NoExit));
}

#[test]
fn guest_exceptions_and_svm_instructions_are_reflected_into_the_guest() {
    let sys = protected_mode();
    let mut lp = vcpu_loop(&sys);
    let page_fault = ExceptionExit { vector: 14, error_code: Some(0x2), fault_address: Some(0xDEAD_0000) };
    sys.script([
        VmExit::Exception(ExceptionExit { vector: 6, error_code: None, fault_address: None }),
        VmExit::Exception(page_fault),
        VmExit::SvmInstruction(ExitCode::Vmrun),
    ]);
    for _ in 0..3 {
        step_ok(&mut lp);
    }
    let calls = sys.take_calls();
    let injected: Vec<_> = calls.iter().filter_map(|c| if let Call::Inject(e) = c { Some(*e) } else { None }).collect();
    let expected = [EventInj::exception(6), EventInj::exception_with_error(14, 2), EventInj::exception(6)];
    assert_eq!(injected, expected);
    assert!(calls.contains(&Call::SetReg(Reg::Cr2, 0xDEAD_0000)), "CR2 for the #PF: {calls:?}");
    assert_eq!(sys.get(Reg::Rip), CODE, "faults do not move RIP");
}

#[test]
fn rsm_outside_smm_is_an_invalid_opcode() {
    let sys = protected_mode();
    let mut lp = vcpu_loop(&sys);
    sys.script([VmExit::Other(ExitCode::Rsm)]);
    step_ok(&mut lp);
    let calls = sys.take_calls();
    assert!(calls.contains(&Call::Inject(EventInj::exception(6))), "RSM must raise #UD: {calls:?}");
    assert_eq!(sys.get(Reg::Rip), CODE, "a fault does not move RIP");
}

#[test]
fn a_nested_page_fault_during_event_delivery_stops_naming_the_event_not_the_instruction() {
    let sys = protected_mode();
    let mut lp = vcpu_loop(&sys);
    // The instruction at RIP is an ordinary MMIO load of the info device:
    // emulating it would be wrong, since the fault came from delivering #PF.
    sys.poke(CODE, &[0x8B, 0x03]);
    sys.script([VmExit::NpfInDelivery { gpa: vmm::hvdev::MMIO_BASE, vector: 14 }]);
    let seen = lp.step();
    assert_eq!(seen, Err(Stop::DeliveryFault { gpa: vmm::hvdev::MMIO_BASE, vector: 14, rip: CODE }));
    let text = seen.unwrap_err().to_string();
    assert!(text.contains("delivering vector 14"), "the stop names the event: {text:?}");
}
