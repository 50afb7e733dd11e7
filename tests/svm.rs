//! The SVM core on the small test guests of `tests/guests/`: real mode,
//! 32-bit protected mode and long mode. Under `-icount` every run is
//! deterministic, so each test states the exact exits it expects.
//!
//! QEMU's TCG treats INT3 as a software interrupt and never raises the #BP
//! exception intercept, so the #BP checks of guest32/guest64 run without an
//! exit here; on hardware each adds `exception=1`. Real mode raises #UD for
//! CLGI before the SVM intercept is checked, so guest16's CLGI is an
//! intercepted #UD that the VMM reflects back (`exception=1`).
use integration::*;
use std::path::Path;

fn boot(modules: &[(&Path, &str)]) -> Outcome {
    Qemu::new().cpu("qemu64,+svm,+npt").icount().kernel(&kernel(), "log=info").modules(modules).run()
}

fn guest(name: &str) -> std::path::PathBuf {
    test_guests().join(name)
}

#[test]
fn real_mode_guest_passes_with_exact_exits() {
    let g = guest("guest16.bin");
    let out = boot(&[(&g, "hv.format=raw16")]);
    out.assert_status(EXIT_SUCCESS)
        .assert_contains("vm0: PASS guest16")
        .assert_contains("vm0: stopped cleanly: the guest requested a reset")
        .assert_contains("vm0: exits: io=46 cpuid=3 hlt=1 vmmcall=2 exception=1 vintr=1\n");
}

#[test]
fn protected_mode_guest_passes_with_exact_exits() {
    let g = guest("guest32.elf");
    let out = boot(&[(&g, "")]);
    out.assert_status(EXIT_SUCCESS)
        .assert_contains("vm0: PASS guest32")
        .assert_contains("vm0: rdmsr 0xc001dead refused (#GP)")
        .assert_contains("vm0: wrmsr 0xc001dead <- 0x0 refused (#GP)")
        .assert_contains("vm0: exits: io=48 cpuid=3 msr=5 hlt=1 vmmcall=3 npf=6 vintr=1 svm-insn=7\n");
}

#[test]
fn long_mode_guest_passes_with_exact_exits() {
    let g = guest("guest64.elf");
    let out = boot(&[(&g, "")]);
    out.assert_status(EXIT_SUCCESS)
        .assert_contains("vm0: guest64: long mode")
        .assert_contains("vm0: PASS guest64")
        // exception=4: MONITOR, MWAIT, MONITORX and MWAITX, which qemu64
        // does not have, raise #UD at once (intercepted, reflected).
        // other=3: the MOV to CR4 that sets PAE on the way to long mode and
        // the two CR4 writes (PKE, OSXSAVE) that the hypervisor answers
        // with #GP because the guest's CPUID hides those features.
        .assert_contains(
            "vm0: exits: io=67 cpuid=3 msr=3 hlt=1 vmmcall=3 npf=9 exception=4 vintr=1 svm-insn=1 other=3\n",
        );
}

#[test]
fn access_to_unbacked_guest_memory_stops_the_vm_naming_gpa_and_rip() {
    let g = guest("guest32.elf");
    let out = boot(&[(&g, "mode=npf")]);
    out.assert_status(EXIT_SUCCESS)
        .assert_contains(
            "vm0: stopped: read of guest-physical 0xc0000000, which is neither RAM nor a device, at RIP 0x",
        )
        .assert_contains("vm0: exits: io=15 npf=1\n")
        .assert_lacks("FAIL");
}

#[test]
fn triple_fault_stops_only_that_vm_and_the_next_one_runs() {
    let g = guest("guest32.elf");
    let out = boot(&[(&g, "mode=triple"), (&g, "")]);
    out.assert_status(EXIT_SUCCESS)
        .assert_contains("vm0: stopped: triple fault (shutdown) at RIP 0x")
        .assert_contains("vm0: exits: io=15 shutdown=1\n")
        .assert_contains("vm1: PASS guest32")
        .assert_contains("vm1: stopped cleanly")
        .assert_contains("all guests have stopped");
}

#[test]
fn malformed_guest_image_is_refused_with_a_reason_and_others_still_run() {
    // A truncated multiboot kernel: the header survives, the segments do not.
    let g = guest("guest32.elf");
    let bytes = std::fs::read(&g).unwrap();
    let bad = root().join("target/guests/truncated32.elf");
    std::fs::write(&bad, &bytes[..0x1100]).unwrap();
    let out = boot(&[(&bad, ""), (&g, "")]);
    out.assert_status(EXIT_SUCCESS)
        .assert_contains("vm0: not started: bad guest image:")
        .assert_contains("vm1: PASS guest32");
}

#[test]
fn a_spinning_guest_is_preempted_and_another_vm_runs() {
    // vm0 spins forever with interrupts off; only the host timer gets the
    // CPU back. vm1 must still run to completion beside it.
    let g = guest("guest32.elf");
    let mut s = Qemu::new()
        .cpu("qemu64,+svm,+npt")
        .icount()
        .kernel(&kernel(), "log=info")
        .modules(&[(&g, "mode=spin"), (&g, "")])
        .spawn();
    s.expect("vm0: guest32: spinning", std::time::Duration::from_secs(60));
    s.expect("vm1: PASS guest32", std::time::Duration::from_secs(120));
    s.expect("vm1: stopped cleanly", std::time::Duration::from_secs(60));
}

#[test]
fn layer_selftest_passes_at_boot() {
    let out = Qemu::new().cpu("qemu64,+svm,+npt").icount().kernel(&kernel(), "log=info").run();
    out.assert_status(EXIT_SUCCESS).assert_contains("selftest: ok threads=");
}

#[test]
fn multiboot_guest_sees_its_command_line_and_module() {
    let g = guest("guest32.elf");
    let module = root().join("target/guests/module.txt");
    std::fs::write(&module, "hello-module-data-and-more").unwrap();
    let out = boot(&[(&g, "mode=mbinfo extra=1"), (&module, "the-module-args")]);
    out.assert_status(EXIT_SUCCESS)
        .assert_contains("vm0: cmdline: mode=mbinfo extra=1\n")
        .assert_contains("vm0: modules: 1\n")
        .assert_contains("vm0: module0: the-module-args\n")
        .assert_contains("vm0: module0 data: hello-module-dat\n")
        .assert_contains("vm0: PASS guest32");
}

#[test]
fn debug_exit_port_is_passed_through_only_when_asked() {
    let g = guest("guest32.elf");
    // Passed through: QEMU exits with the guest's value, (0x21 << 1) | 1.
    boot(&[(&g, "mode=debugexit hv.debug-exit=on")]).assert_status(67);
    // Not passed through: the port is an unassigned one, the guest sees its
    // write ignored and reports it.
    boot(&[(&g, "mode=debugexit")])
        .assert_status(EXIT_SUCCESS)
        .assert_contains("vm0: FAIL guest32: debug-exit port not passed through");
}
