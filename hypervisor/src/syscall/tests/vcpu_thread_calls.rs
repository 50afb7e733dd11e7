//! The calls of a VM with several vCPUs on the simulated machine: the
//! kick's effect on `run` and `vcpu_halt`, and the arguments `fork_join`
//! refuses (with no body run).
use super::*;
use crate::syscall::time::NEVER;
use core::sync::atomic::{AtomicUsize, Ordering};
use sysabi::ThreadCpu;
use vmcb::ExitCode;

#[test]
fn a_kick_before_run_returns_intr_without_entering_the_guest_and_is_taken_once() {
    let _k = kernel();
    let w = two_vms();
    let a = w.a.caller();
    sim::script([exit(ExitCode::Hlt)]);
    sys_vcpu_kick(a, w.vcpu_a).unwrap();
    assert_eq!(sys_run(a, w.vcpu_a, NEVER), Ok(VmExit::Intr), "the kicked run");
    assert!(sim::vmruns().is_empty(), "expected no VMRUN for the kick, saw {:?}", sim::vmruns());
    assert_eq!(sys_run(a, w.vcpu_a, NEVER), Ok(VmExit::Hlt), "the next run enters: the kick was taken");
    assert_eq!(sim::vmruns().len(), 1, "one VMRUN");
}

#[test]
fn kicks_do_not_add_up_one_run_takes_all_that_came_before_it() {
    let _k = kernel();
    let w = two_vms();
    let a = w.a.caller();
    sim::script([exit(ExitCode::Hlt)]);
    sys_vcpu_kick(a, w.vcpu_a).unwrap();
    sys_vcpu_kick(a, w.vcpu_a).unwrap();
    assert_eq!(sys_run(a, w.vcpu_a, NEVER), Ok(VmExit::Intr));
    assert_eq!(sys_run(a, w.vcpu_a, NEVER), Ok(VmExit::Hlt), "one kick remembered, not two");
}

#[test]
fn a_kick_before_halt_ends_it_at_once_and_the_next_halt_waits_to_its_deadline() {
    let _k = kernel();
    let w = two_vms();
    let (a, s) = (w.a.caller(), w.a.grants.sched);
    sys_vcpu_kick(a, w.vcpu_a).unwrap();
    sys_vcpu_halt(a, s, w.vcpu_a, 50_000).unwrap();
    assert_eq!((sim::now_ns(), sim::timer_interrupts()), (0, 0), "kicked: no halt, no timer");
    sys_vcpu_halt(a, s, w.vcpu_a, 50_000).unwrap();
    assert_eq!(sim::now_ns(), 50_000, "not kicked: the CPU halted until the deadline's timer");
    assert_eq!(sim::timer_interrupts(), 1);
}

#[test]
fn kick_and_halt_refuse_another_process_and_stale_or_out_of_range_handles() {
    let _k = kernel();
    let w = two_vms();
    let (a, b) = (w.a.caller(), w.b.caller());
    assert_eq!(sys_vcpu_kick(b, w.vcpu_a), Err(SysError::NotOwner));
    assert_eq!(sys_vcpu_halt(b, w.b.grants.sched, w.vcpu_a, 10), Err(SysError::NotOwner));
    assert_eq!(sys_vcpu_halt(a, w.b.grants.sched, w.vcpu_a, 10), Err(SysError::NotOwner), "B's CPU share");
    assert_eq!(sys_vcpu_kick(a, VcpuHandle(MAX_VCPUS as u16)), Err(SysError::NoSuchObject));
    assert_eq!(sys_vcpu_kick(a, VcpuHandle(u16::MAX)), Err(SysError::NoSuchObject));
    sys_vm_destroy(a, w.vm_a).unwrap();
    assert_eq!(sys_vcpu_kick(a, w.vcpu_a), Err(SysError::NoSuchObject), "stale");
    assert_eq!(sys_vcpu_halt(a, w.a.grants.sched, w.vcpu_a, 10), Err(SysError::NoSuchObject), "stale");
}

#[test]
fn a_kick_left_on_a_destroyed_vcpu_does_not_reach_the_next_vcpu_in_its_slot() {
    let _k = kernel();
    let w = two_vms();
    let a = w.a.caller();
    sys_vcpu_kick(a, w.vcpu_a).unwrap();
    sys_vm_destroy(a, w.vm_a).unwrap();
    let vm = sys_vm_create(a).unwrap();
    let vcpu = sys_vcpu_create(a, vm).unwrap();
    assert_eq!(vcpu, w.vcpu_a, "the slot is reused");
    sim::script([exit(ExitCode::Hlt)]);
    assert_eq!(sys_run(a, vcpu, NEVER), Ok(VmExit::Hlt), "the new vCPU enters its guest");
}

#[test]
fn fork_join_with_no_extra_thread_runs_body_zero_on_the_caller() {
    let _k = kernel();
    let p = Process::new(QUOTA);
    let ran = AtomicUsize::new(0);
    sys_fork_join(p.caller(), p.grants.sched, &[], &|i| {
        ran.fetch_add(i + 1, Ordering::SeqCst);
    })
    .unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1, "body(0) once");
}

#[test]
fn fork_join_refuses_cpus_that_do_not_run_too_many_threads_and_another_share_running_no_body() {
    let _k = kernel();
    let p = Process::new(QUOTA);
    let q = Process::new(QUOTA);
    let ran = AtomicUsize::new(0);
    let body = |_: usize| {
        ran.fetch_add(1, Ordering::SeqCst);
    };
    let (c, s) = (p.caller(), p.grants.sched);
    let not_running = crate::thread::MAX_CPUS as u32 - 1;
    let cases: [(&str, SysResult<()>, SysResult<()>); 4] = [
        (
            "a CPU that does not run",
            sys_fork_join(c, s, &[ThreadCpu::Cpu(not_running)], &body),
            Err(SysError::BadArgument),
        ),
        ("a CPU past the tables", sys_fork_join(c, s, &[ThreadCpu::Cpu(u32::MAX)], &body), Err(SysError::BadArgument)),
        ("64 threads", sys_fork_join(c, s, &[ThreadCpu::LeastLoaded; 64], &body), Err(SysError::NoSlot)),
        ("another's CPU share", sys_fork_join(c, q.grants.sched, &[], &body), Err(SysError::NotOwner)),
    ];
    for (what, seen, expected) in cases {
        assert_eq!(seen, expected, "{what}");
    }
    assert_eq!(ran.load(Ordering::SeqCst), 0, "bodies run: expected none");
}
