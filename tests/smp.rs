//! Guests with several vCPUs: the `smp32` test guest (tests/guests/smp32.S)
//! starts its second vCPU with INIT and two start-up IPIs and exchanges
//! IPIs with it (physical, all-excluding-self, flat logical, self), on a
//! VM of two vCPUs on two host CPUs. Each vCPU's thread starts on its own
//! CPU unless the VM is pinned (`hv.cpu=N`), which keeps both on that CPU.
use integration::*;
use std::time::Duration;

/// Boots smp32 with two vCPUs (`extra` more module options) on `on` with
/// two host CPUs, and checks that the VM starts on host CPU `cpu`, its PASS
/// line and its clean stop.
fn smp32_passes(on: Svm, extra: &str, cpu: u32) -> Outcome {
    let g = test_guests().join("smp32.elf");
    let args = format!("hv.vcpus=2 {extra}");
    let out = on.machine("log=info", &[(&g, &args)]).cpus(2).timeout(on.patience(Duration::from_secs(120))).run();
    out.assert_status(EXIT_SUCCESS)
        .assert_contains(&format!("vm0: starting on cpu{cpu} with 2 vCPU(s)"))
        .assert_in_order(&[
            "vm0: smp32: start",
            "vm0: vCPU 1 started at 0x0800:0000",
            "vm0: smp32: AP 1 started",
            "vm0: PASS smp32",
            "vm0: stopped cleanly: the guest requested a reset",
        ])
        .assert_lacks("FAIL");
    out
}

#[test]
fn two_vcpus_start_with_init_sipi_sipi_and_exchange_ipis_on_qemu() {
    smp32_passes(QEMU64, "", 0);
}

#[test]
fn two_vcpus_pinned_to_one_host_cpu_still_exchange_ipis_on_qemu() {
    smp32_passes(QEMU64, "hv.cpu=1", 1);
}

/// On Bochs 2.7, which looks at a posted virtual interrupt only when the
/// guest's IF changes: vCPU 0 spins with interrupts on and no exits of its
/// own while it waits for the answering IPI, so the hypervisor finds the
/// missed V_IRQ at a timer exit (the guest's RIP moved) and delivers it
/// through EVENTINJ.
#[test]
fn two_vcpus_start_with_init_sipi_sipi_and_exchange_ipis_on_bochs_ryzen() {
    smp32_passes(BOCHS_RYZEN, "", 0);
}

#[test]
fn a_vcpu_count_out_of_range_is_reported_and_the_vm_runs_with_one() {
    let g = test_guests().join("guest32.elf");
    let out = QEMU64.machine("log=info", &[(&g, "hv.vcpus=17")]).icount().run();
    out.assert_status(EXIT_SUCCESS)
        .assert_contains("hv.vcpus=17")
        .assert_contains("hv.vcpus must be a count from 1 to 16; ignored (1 vCPU)")
        .assert_contains("vm0: starting on cpu0 with 1 vCPU(s)")
        .assert_contains("vm0: PASS guest32");
}
