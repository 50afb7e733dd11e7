//! The door itself: a call is made by a process's thread, and the kernel
//! works out which process that is. Host tests run on no kernel thread, so
//! every call through the door comes from nobody and must be refused before
//! it touches anything.
use super::*;
use sysabi::Sys;
use vmcb::{EventInj, Segment};

/// Every method of `Sys`, made by `Kernel` with handles that a real
/// process (A, with a VM and a vCPU) owns.
fn door_calls(vm: VmHandle, v: VcpuHandle, g: sysabi::Grants) -> Vec<(&'static str, SysResult<()>)> {
    let k = Kernel;
    let mut buf = [0u8; 8];
    vec![
        ("vm_create", k.vm_create().map(drop)),
        ("vm_destroy", k.vm_destroy(vm)),
        ("vcpu_create", k.vcpu_create(vm).map(drop)),
        ("npt_map", k.npt_map(vm, 0, PAGE)),
        ("guest_read", k.guest_read(vm, 0, &mut buf)),
        ("guest_write", k.guest_write(vm, 0, b"x")),
        ("vm_ram", k.vm_ram(vm).map(drop)),
        ("set_io_intercept", k.set_io_intercept(vm, 0x80, false)),
        ("declare_constant_port", k.declare_constant_port(vm, 0x80, 1, 0xFF)),
        ("declare_constant_mmio", k.declare_constant_mmio(vm, 0xFEBF_F000, 4, 1)),
        ("run", k.run(v, time::NEVER).map(drop)),
        ("next_rip", k.next_rip(v).map(drop)),
        ("complete_instruction", k.complete_instruction(v, 0, NextRipSource::Decoded)),
        ("inject", k.inject(v, EventInj::exception(6))),
        ("interrupt_pending", k.interrupt_pending(v).map(drop)),
        ("withdraw_interrupt", k.withdraw_interrupt(v).map(drop)),
        ("set_exception_intercept", k.set_exception_intercept(v, 6, true)),
        ("set_iret_intercept", k.set_iret_intercept(v, true)),
        ("reg", k.reg(v, Reg::Rax).map(drop)),
        ("set_reg", k.set_reg(v, Reg::Rax, 1)),
        ("seg", k.seg(v, SegReg::Cs).map(drop)),
        ("code_at_rip", k.code_at_rip(v).map(drop)),
        ("set_seg", k.set_seg(v, SegReg::Ds, Segment::real_mode(1))),
        ("write_cr4", k.write_cr4(v, 0).map(drop)),
        ("xsetbv", k.xsetbv(v, 0, 1).map(drop)),
        ("cpuid", k.cpuid(v, 0, 0).map(drop)),
        ("vcpu_info", k.vcpu_info(v).map(drop)),
        ("stats", k.stats(v).map(drop)),
        ("reset_stats", k.reset_stats(v)),
        ("paths", k.paths(v).map(drop)),
        ("now_ns", k.now_ns(g.clock).map(drop)),
        ("guest_tsc", k.guest_tsc(g.clock).map(drop)),
        ("tsc_hz", k.tsc_hz(g.clock).map(drop)),
        ("yield_now", k.yield_now(g.sched).map(drop)),
        ("idle_until", k.idle_until(g.sched, 0)),
        ("console_write", k.console_write(g.console, b"x")),
        ("console_read", k.console_read(g.console).map(drop)),
        ("chan_send", k.chan_send(u32::from(vm.0), b"x")),
        ("chan_recv", k.chan_recv(u32::from(vm.0), &mut buf).map(drop)),
    ]
}

#[test]
fn every_door_call_from_outside_any_process_is_refused_and_changes_nothing() {
    let _k = kernel();
    let w = two_vms();
    let (a, vm, v) = (w.a.caller(), w.vm_a, w.vcpu_a);
    assert_eq!(Caller::current(), Err(SysError::NoSuchObject), "no kernel thread runs the test");
    let used = w.a.frames_used();
    let wrong: Vec<String> = door_calls(vm, v, w.a.grants)
        .into_iter()
        .filter(|(_, seen)| *seen != Err(SysError::NoSuchObject))
        .map(|(name, seen)| format!("{name}: expected Err(NoSuchObject), saw {seen:?}"))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(sim::vmruns().is_empty() && sim::console_output().is_empty(), "no guest ran, nothing was written");
    assert_eq!(w.a.frames_used(), used, "no frame was taken or given back");
    assert_eq!(sys_vm_ram(a, vm), Ok(0), "A's VM has no RAM");
    assert_eq!(sys_reg_get(a, v, Reg::Rax), Ok(0), "A's vCPU's RAX is untouched");
    assert_eq!(sys_vcpu_info(a, v).map(|i| i.vcpus), Ok(1), "A's VM has one vCPU still");
}
