//! Boot paths of the hypervisor image: multiboot v1 from QEMU's `-kernel`,
//! multiboot2 from a GRUB ISO, the refusal on a CPU that cannot host it, and
//! the report of a host exception.
use integration::*;

const SVM_NPT: &str = "qemu64,+svm,+npt";

#[test]
fn boots_through_multiboot1_and_prints_the_feature_line() {
    let out = Qemu::new().cpu(SVM_NPT).icount().kernel(&kernel(), "log=info selftest=off").run();
    out.assert_status(EXIT_SUCCESS)
        .assert_contains("Certivisor")
        .assert_contains("boot: Multiboot1")
        .assert_contains("cpu: vendor=AuthenticAMD svm=yes svm-rev=1 asids=16 np=yes")
        .assert_contains("acpi: cpus=1 lapic=0xfee00000");
}

#[test]
fn boots_from_a_grub_iso_through_multiboot2() {
    let image = root().join("target/iso/boot-mb2.iso");
    iso(&kernel(), &image, "log=info selftest=off", &[]);
    let out = Qemu::new().cpu(SVM_NPT).cdrom(&image).timeout(std::time::Duration::from_secs(240)).run();
    out.assert_status(EXIT_SUCCESS)
        .assert_contains("boot: Multiboot2")
        .assert_contains("cmdline \"log=info selftest=off\"")
        .assert_contains("np=yes");
}

#[test]
fn refuses_a_cpu_without_nested_paging_and_names_it() {
    let out = Qemu::new().cpu("qemu64,+svm,-npt").icount().kernel(&kernel(), "").run();
    out.assert_status(EXIT_UNSUPPORTED).assert_contains("cannot run: the CPU has no nested paging");
}

#[test]
fn refuses_a_cpu_without_svm_and_names_it() {
    let out = Qemu::new().cpu("qemu64,-svm").icount().kernel(&kernel(), "").run();
    out.assert_status(EXIT_UNSUPPORTED).assert_contains("cannot run: the CPU has no AMD SVM");
}

#[test]
fn host_exception_is_reported_with_vector_and_registers() {
    let out = Qemu::new().cpu(SVM_NPT).icount().kernel(&kernel(), "test-fault=ud selftest=off").run();
    out.assert_status(EXIT_FAILURE)
        .assert_contains("host exception: vector 6 invalid opcode (#UD)")
        .assert_contains("rip=0x")
        .assert_contains("r15=");
}

#[test]
fn host_page_fault_reports_the_faulting_address() {
    let out = Qemu::new().cpu(SVM_NPT).icount().kernel(&kernel(), "test-fault=pf selftest=off").run();
    out.assert_status(EXIT_FAILURE)
        .assert_contains("host exception: vector 14 page fault (#PF)")
        .assert_contains("cr2=0x0000001000000000");
}

#[test]
fn malformed_command_line_options_are_logged_and_ignored() {
    let out = Qemu::new().cpu(SVM_NPT).icount().kernel(&kernel(), "log=shouty mem=12Q nonsense selftest=off").run();
    out.assert_status(EXIT_SUCCESS)
        .assert_contains("command line: `log=shouty`: log level must be")
        .assert_contains("command line: `mem=12Q`: guest memory must be")
        .assert_contains("command line: `nonsense`: not an option");
}

#[test]
fn boot_stack_overflow_faults_on_its_guard_page() {
    let out = Qemu::new().cpu(SVM_NPT).icount().kernel(&kernel(), "test-fault=stack selftest=off").run();
    out.assert_status(EXIT_FAILURE).assert_contains("host exception: vector 14 page fault (#PF)");
    // The faulting address lies in the guard page the log announced.
    let guard = out.line("stack guard page at 0x").and_then(|l| l.rsplit("0x").next()).unwrap();
    let guard = u64::from_str_radix(guard.trim(), 16).unwrap();
    let cr2 = out.line("cr2=0x").and_then(|l| l.split("cr2=0x").nth(1)).unwrap();
    let cr2 = u64::from_str_radix(&cr2[..16], 16).unwrap();
    assert!((guard..guard + 4096).contains(&cr2), "cr2 {cr2:#x} outside the guard page {guard:#x}:\n{}", out.serial);
}

/// The application processors: each starts through INIT-SIPI-SIPI, sets
/// itself up, runs the layer self-test on itself and then schedules the
/// VMs placed on it; `vms` guest64 VMs run, VM n on CPU n.
fn aps_start_and_run_a_vm_each(out: &Outcome, cpus: usize) {
    out.assert_status(EXIT_SUCCESS).assert_contains(&format!("acpi: cpus={cpus} "));
    for cpu in 1..cpus {
        out.assert_contains(&format!("cpu{cpu}: selftest: ok threads=4 "))
            .assert_contains(&format!("smp: cpu{cpu} (apic id {cpu}) up"));
    }
    out.assert_contains(&format!("smp: {cpus} of {cpus} CPUs up")).assert_lacks("FAIL");
    out.assert_contains(SMP_SELFTEST_OK);
    for vm in 0..cpus {
        out.assert_contains(&format!("vm{vm}: starting on cpu{vm} "))
            .assert_contains(&format!("vm{vm}: PASS guest64"))
            .assert_contains(&format!("vm{vm}: stopped cleanly"));
    }
}

/// The boot check of fork_join, vcpu_kick and vcpu_halt across CPUs 0 and
/// 1 (`hypervisor/src/smptest.rs`): its line up to the measured wake time.
const SMP_SELFTEST_OK: &str =
    "smp-selftest: ok fork_join bodies on cpu0 and cpu1 at the same time; kick woke the halted vCPU in ";

/// "ok" also says each measured time is under 100 ms (2 s deadlines).
#[test]
fn fork_join_bodies_run_on_two_cpus_at_once_and_a_kick_wakes_the_other_cpus_halt() {
    // Without -icount: host time, as on hardware.
    let out = Qemu::new().cpu(SVM_NPT).smp(2).kernel(&kernel(), "log=info").run();
    out.assert_status(EXIT_SUCCESS)
        .assert_contains("smp: 2 of 2 CPUs up")
        .assert_contains(SMP_SELFTEST_OK)
        .assert_contains("; npt_map beside the running guest took ")
        .assert_contains("; kick ended the running guest in ")
        .assert_contains("; vm_destroy beside the running guest took ");
    let line = out.line("smp-selftest:").unwrap();
    let us: u64 =
        line.split("halted vCPU in ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).unwrap();
    eprintln!("{line}");
    assert!(us < 100_000, "kick to wake: expected under 100 ms of a 2 s halt, saw {us} us: {line}");
}

#[test]
fn four_cpus_start_and_each_runs_a_vm_of_its_own() {
    // Four VMs placed by load (the CPU with the fewest VM threads, the
    // lowest index first), and a fifth pinned to a CPU that is not there.
    let g = test_guests().join("guest64.elf");
    let m = "hv.mem=64M";
    let modules = [(&*g, m), (&*g, m), (&*g, m), (&*g, m), (&*g, "hv.mem=64M hv.cpu=6")];
    let out = Qemu::new().cpu(SVM_NPT).smp(4).icount().kernel(&kernel(), "log=info").modules(&modules).run();
    aps_start_and_run_a_vm_each(&out, 4);
    out.assert_contains("vm4: hv.cpu=6 names a CPU that is not running; not started");
}

#[test]
fn two_vms_pinned_to_two_cpus_run_on_bochs_ryzen() {
    let g = test_guests().join("guest64.elf");
    let modules = [(&*g, "hv.cpu=0"), (&*g, "hv.cpu=1")];
    let out = Bochs::new("ryzen").cpus(2).kernel(&kernel(), "log=info").modules(&modules).run();
    aps_start_and_run_a_vm_each(&out, 2);
}
