//! The calls on a VM handle, and VM creation.
use super::*;

const MIB: u64 = 1 << 20;

/// Every call that names a VM, but `vm_destroy` (tested on its own). Each
/// succeeds on a fresh VM of its caller's.
const VM_CALLS: &[NamedCall<VmHandle>] = &[
    ("npt_map", |c, vm| sys_npt_map(c, vm, 0, 2 * MIB)),
    ("guest_write", |c, vm| sys_guest_write(c, vm, 0x1000, b"certivisor")),
    ("guest_read", |c, vm| sys_guest_read(c, vm, 0x1000, &mut [0; 10])),
    ("vm_ram", |c, vm| sys_vm_ram(c, vm).map(drop)),
    ("set_io_intercept", |c, vm| sys_set_io_intercept(c, vm, 0x3F8, false)),
    ("declare_constant_port", |c, vm| sys_declare_constant_port(c, vm, 0xE9, 1, 0xE9)),
    ("declare_constant_mmio", |c, vm| sys_declare_constant_mmio(c, vm, 0xFEBF_F000, 4, 1)),
    ("vcpu_create", |c, vm| sys_vcpu_create(c, vm).map(drop)),
];

#[test]
fn every_vm_call_serves_the_vms_owner() {
    let _k = kernel();
    let w = two_vms();
    let wrong = unexpected(VM_CALLS, w.a.caller(), w.vm_a, Ok(()));
    assert!(wrong.is_empty(), "{wrong:#?}");
    let mut buf = [0u8; 10];
    sys_guest_read(w.a.caller(), w.vm_a, 0x1000, &mut buf).unwrap();
    assert_eq!(&buf, b"certivisor", "what guest_write wrote, guest_read reads back");
    assert_eq!(sys_vm_ram(w.a.caller(), w.vm_a), Ok(2 * MIB));
    assert_eq!(sys_vm_destroy(w.a.caller(), w.vm_a), Ok(()));
}

#[test]
fn every_vm_call_refuses_another_process_with_not_owner() {
    let _k = kernel();
    let w = two_vms();
    sys_npt_map(w.a.caller(), w.vm_a, 0, 2 * MIB).unwrap();
    sys_guest_write(w.a.caller(), w.vm_a, 0, b"A's").unwrap();
    let wrong = unexpected(VM_CALLS, w.b.caller(), w.vm_a, Err(SysError::NotOwner));
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert_eq!(sys_vm_destroy(w.b.caller(), w.vm_a), Err(SysError::NotOwner));
    // A's VM is untouched: same RAM, same bytes, its vCPU still there.
    assert_eq!(sys_vm_ram(w.a.caller(), w.vm_a), Ok(2 * MIB), "B's npt_map did not add RAM");
    let mut buf = [0u8; 3];
    sys_guest_read(w.a.caller(), w.vm_a, 0, &mut buf).unwrap();
    assert_eq!(&buf, b"A's");
    assert_eq!(sys_reg_get(w.a.caller(), w.vcpu_a, Reg::Rip), Ok(0xFFF0));
}

#[test]
fn every_vm_call_refuses_a_stale_handle() {
    let _k = kernel();
    let w = two_vms();
    sys_vm_destroy(w.a.caller(), w.vm_a).unwrap();
    let wrong = unexpected(VM_CALLS, w.a.caller(), w.vm_a, Err(SysError::NoSuchObject));
    assert!(wrong.is_empty(), "after destroy: {wrong:#?}");
    assert_eq!(sys_vm_destroy(w.a.caller(), w.vm_a), Err(SysError::NoSuchObject), "destroyed twice");
    // The slot is taken again, by B: A's old handle names B's VM now.
    let reused = sys_vm_create(w.b.caller()).unwrap();
    assert_eq!(reused, w.vm_a, "the lowest free slot is reused");
    let wrong = unexpected(VM_CALLS, w.a.caller(), w.vm_a, Err(SysError::NotOwner));
    assert!(wrong.is_empty(), "after reuse by another process: {wrong:#?}");
    assert_eq!(sys_vm_destroy(w.a.caller(), w.vm_a), Err(SysError::NotOwner));
}

#[test]
fn every_vm_call_refuses_a_handle_out_of_range() {
    let _k = kernel();
    let w = two_vms();
    for h in [VmHandle(MAX_VMS as u16), VmHandle(u16::MAX)] {
        let wrong = unexpected(VM_CALLS, w.a.caller(), h, Err(SysError::NoSuchObject));
        assert!(wrong.is_empty(), "{h:?}: {wrong:#?}");
        assert_eq!(sys_vm_destroy(w.a.caller(), h), Err(SysError::NoSuchObject), "{h:?}");
    }
}

#[test]
fn npt_map_refuses_misaligned_empty_huge_and_overlapping_ranges() {
    let _k = kernel();
    let w = two_vms();
    let (a, vm) = (w.a.caller(), w.vm_a);
    sys_npt_map(a, vm, 4 * MIB, 2 * MIB).unwrap();
    let used = w.a.frames_used();
    for (what, gpa, len) in [
        ("unaligned address", 0x800, PAGE),
        ("unaligned length", 0, PAGE + 1),
        ("empty", 0, 0),
        ("beyond 1 TiB", (1 << 40) - PAGE, 2 * PAGE),
        ("wrapping", u64::MAX - PAGE + 1, PAGE),
        ("overlapping mapped RAM", 5 * MIB, PAGE),
    ] {
        assert_eq!(sys_npt_map(a, vm, gpa, len), Err(SysError::BadArgument), "{what}");
    }
    assert_eq!(sys_vm_ram(a, vm), Ok(2 * MIB), "no refused call added RAM");
    assert_eq!(w.a.frames_used(), used, "no refused call kept frames");
}

#[test]
fn npt_map_beyond_the_quota_is_refused_and_keeps_nothing() {
    let _k = kernel();
    let small = Process::new(64);
    let vm = sys_vm_create(small.caller()).unwrap();
    let used = small.frames_used();
    assert_eq!(sys_npt_map(small.caller(), vm, 0, 2 * MIB), Err(SysError::OutOfQuota));
    assert_eq!(small.frames_used(), used, "the refused map gave its frames back");
    assert_eq!(sys_npt_map(small.caller(), vm, 0, 16 * PAGE), Ok(()), "what fits the quota is mapped");
}

#[test]
fn guest_read_and_write_outside_ram_are_refused_and_change_nothing() {
    let _k = kernel();
    let w = two_vms();
    let (a, vm) = (w.a.caller(), w.vm_a);
    // Two chunks, [0, 2 MiB) and [2 MiB, 2 MiB + 4 KiB): a copy may cross between them.
    sys_npt_map(a, vm, 0, 2 * MIB).unwrap();
    sys_npt_map(a, vm, 2 * MIB, PAGE).unwrap();
    sys_guest_write(a, vm, 2 * MIB - 2, b"span").unwrap();
    let mut buf = [0u8; 4];
    sys_guest_read(a, vm, 2 * MIB - 2, &mut buf).unwrap();
    assert_eq!(&buf, b"span", "a copy across two chunks");
    let end = 2 * MIB + PAGE;
    assert_eq!(sys_guest_write(a, vm, end - 2, b"over"), Err(SysError::BadGuestAddress));
    sys_guest_read(a, vm, end - 2, &mut [0; 2]).unwrap();
    let mut tail = [0xAAu8; 2];
    sys_guest_read(a, vm, end - 2, &mut tail).unwrap();
    assert_eq!(tail, [0, 0], "a write running past RAM changes nothing");
    assert_eq!(sys_guest_read(a, vm, end - 2, &mut [0; 4]), Err(SysError::BadGuestAddress));
    assert_eq!(sys_guest_read(a, vm, u64::MAX, &mut [0; 2]), Err(SysError::BadGuestAddress), "wrapping");
    assert_eq!(sys_guest_write(a, vm, 64 * MIB, b"x"), Err(SysError::BadGuestAddress), "unmapped");
}

#[test]
fn destroying_a_vm_gives_back_every_frame() {
    let _k = kernel();
    let a = Process::new(QUOTA);
    let before = a.frames_used();
    let vm = sys_vm_create(a.caller()).unwrap();
    sys_vcpu_create(a.caller(), vm).unwrap();
    sys_npt_map(a.caller(), vm, 0, 4 * MIB + 3 * PAGE).unwrap();
    assert!(a.frames_used() > before + 1024, "RAM, tables, maps and VMCB are charged: {}", a.frames_used());
    sys_vm_destroy(a.caller(), vm).unwrap();
    assert_eq!(a.frames_used(), before, "frames charged after destroy");
}

#[test]
fn vm_create_refuses_when_slots_or_quota_run_out_or_the_caller_has_no_process() {
    let _k = kernel();
    let a = Process::new(QUOTA);
    let vms: Vec<_> =
        (0..MAX_VMS).map(|i| sys_vm_create(a.caller()).unwrap_or_else(|e| panic!("VM {i}: {e:?}"))).collect();
    assert_eq!(sys_vm_create(a.caller()), Err(SysError::NoSlot), "a ninth VM");
    for vm in vms {
        sys_vm_destroy(a.caller(), vm).unwrap();
    }
    let tiny = Process::new(2);
    assert_eq!(sys_vm_create(tiny.caller()), Err(SysError::OutOfQuota));
    assert_eq!(tiny.frames_used(), 0, "the refused VM kept no frame");
    let gone = Process::new(QUOTA);
    let pid = gone.pid;
    drop(gone);
    assert_eq!(sys_vm_create(Caller::of(pid)), Err(SysError::NoSuchObject), "a process that has ended");
}

#[test]
fn vcpu_create_refuses_when_slots_run_out() {
    let _k = kernel();
    let w = two_vms();
    for i in 1..MAX_VCPUS {
        sys_vcpu_create(w.a.caller(), w.vm_a).unwrap_or_else(|e| panic!("vCPU {i} of {MAX_VCPUS}: {e:?}"));
    }
    assert_eq!(sys_vcpu_create(w.b.caller(), w.vm_b), Err(SysError::NoSlot));
    let info = sys_vcpu_info(w.a.caller(), w.vcpu_a).unwrap();
    assert_eq!((info.index, info.vcpus), (0, MAX_VCPUS as u32), "{info:?}");
}

#[test]
fn ending_a_process_destroys_the_vms_it_left_and_takes_back_its_handles_and_quota() {
    use crate::mm::{self, ContainerId};
    use crate::proc::{self, Pid};
    let _k = kernel();
    let root_usage = || mm::info(ContainerId::ROOT).expect("the root container").usage;
    let before = root_usage();
    let pid = proc::proc_create(Pid::ROOT, QUOTA).unwrap();
    let grants = grant_process(pid, "test").unwrap();
    let c = Caller::of(pid);
    let vm = sys_vm_create(c).unwrap();
    sys_vcpu_create(c, vm).unwrap();
    sys_npt_map(c, vm, 0, 2 * MIB).unwrap();
    let second = sys_vm_create(c).unwrap();
    assert_eq!(end_process(pid), Ok(2), "both VMs were left to end_process");
    for h in [vm, second] {
        assert_eq!(vm_owner(u32::from(h.0)), Err(SysError::BadArgument), "{h:?}'s slot is free");
    }
    assert_eq!(sys_now_ns(c, grants.clock), Err(SysError::NoSuchObject), "its clock was revoked");
    assert!(proc::container_of(pid).is_err(), "its pid is free");
    assert_eq!(root_usage(), before, "its quota went back to the root");
    assert!(end_process(pid).is_err(), "a process ends once");
}

#[test]
fn vcpu_create_beyond_the_quota_is_refused_and_keeps_nothing() {
    let _k = kernel();
    let probe = Process::new(QUOTA);
    sys_vm_create(probe.caller()).unwrap();
    let vm_frames = probe.frames_used();
    drop(probe);
    // Room for the VM and not one frame more: its vCPU's VMCB does not fit.
    let tight = Process::new(vm_frames);
    let vm = sys_vm_create(tight.caller()).unwrap();
    assert_eq!(sys_vcpu_create(tight.caller(), vm), Err(SysError::OutOfQuota));
    assert_eq!(tight.frames_used(), vm_frames, "the refused vCPU kept no frame");
}

#[test]
fn constant_ports_take_sizes_1_2_4_with_values_that_fit_and_four_ports_at_most() {
    let _k = kernel();
    let w = two_vms();
    let declare = |port, size, value| sys_declare_constant_port(w.a.caller(), w.vm_a, port, size, value);
    assert_eq!(declare(0xE9, 3, 0), Err(SysError::BadArgument), "size 3");
    assert_eq!(declare(0xE9, 1, 0x100), Err(SysError::BadArgument), "a byte read cannot give 0x100");
    assert_eq!(declare(0xE9, 2, 0x1_0000), Err(SysError::BadArgument), "a word read cannot give 0x10000");
    for port in 0x80..0x84 {
        assert_eq!(declare(port, 4, 0xFFFF_FFFF), Ok(()), "port {port:#x}");
    }
    assert_eq!(declare(0x81, 4, 7), Ok(()), "declaring a port again replaces its value");
    assert_eq!(declare(0x84, 1, 0), Err(SysError::NoSlot), "a fifth port");
}

#[test]
fn constant_mmio_takes_sizes_1_2_4_8_with_values_that_fit_outside_ram() {
    let _k = kernel();
    let w = two_vms();
    let declare = |gpa, size, value| sys_declare_constant_mmio(w.a.caller(), w.vm_a, gpa, size, value);
    assert_eq!(declare(0xFEBF_F000, 3, 0), Err(SysError::BadArgument), "size 3");
    assert_eq!(declare(0xFEBF_F000, 2, 0x1_0000), Err(SysError::BadArgument), "a word read cannot give 0x10000");
    assert_eq!(sys_npt_map(w.a.caller(), w.vm_a, 0, PAGE), Ok(()));
    assert_eq!(declare(0x10, 4, 0), Err(SysError::BadArgument), "RAM never faults: nothing to answer");
    assert_eq!(declare(0xFEBF_F000, 8, u64::MAX), Ok(()));
    assert_eq!(declare(0xFEBF_F000, 4, 7), Ok(()));
}
