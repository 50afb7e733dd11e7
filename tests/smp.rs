//! Guests with several vCPUs: the `smp32` test guest (tests/guests/smp32.S)
//! starts its second vCPU with INIT and two start-up IPIs and exchanges
//! IPIs with it (physical, all-excluding-self, flat logical, self), on a
//! VM of two vCPUs on two host CPUs. Each vCPU's thread starts on its own
//! CPU unless the VM is pinned (`hv.cpu=N`), which keeps both on that CPU.
//! In `mode=ipibench` smp32 times IPI round trips between its two vCPUs
//! instead (docs/benchmarking.md, "IPI round trips").
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

/// The variants of smp32's `mode=ipibench`: the AP spinning with
/// interrupts on, and the AP halted.
const IPI_VARIANTS: [&str; 2] = ["ipi", "ipi_halted"];

/// smp32's untimed round trips per variant (BENCH_WARMUP).
const IPI_WARMUP: u64 = 10;

/// Boots smp32 in `mode=ipibench` with `n` round trips per variant, two
/// vCPUs (`extra` more module options, e.g. `hv.cpu=0` to pin both) on a
/// machine of two host CPUs of `on`, under icount; checks that each variant reports `n` round trips with min <=
/// median <= p99 <= max, the PASS line (the guest has checked that every
/// ping was handled and answered), and that before each round trip of
/// `ipi_halted` the AP halted and the BSP napped (at least that many HLT
/// exits of each vCPU). Never a speed. Returns the medians of the variants.
fn ipibench_reports_both_variants(on: Svm, extra: &str, n: u32) -> [u64; 2] {
    let g = test_guests().join("smp32.elf");
    let args = format!("hv.vcpus=2 {extra} mode=ipibench iterations={n}");
    let out =
        on.machine("log=info", &[(&g, &args)]).cpus(2).icount().timeout(on.patience(Duration::from_secs(300))).run();
    out.assert_status(EXIT_SUCCESS)
        .assert_in_order(&[
            "vm0: smp32: AP 1 started",
            "vm0: smp32: bench ipi n=",
            "vm0: smp32: bench ipi_halted n=",
            "vm0: PASS smp32 ipibench",
            "vm0: stopped cleanly: the guest requested a reset",
        ])
        .assert_lacks("FAIL");
    let mut medians = [0; 2];
    for (v, median) in IPI_VARIANTS.iter().zip(&mut medians) {
        let prefix = format!("smp32: bench {v} ");
        println!("{}", out.line(&prefix).unwrap_or_default());
        let values = out.values(&prefix);
        let stats = ["n", "min", "median", "p99", "max"].map(|key| number(&out, &values, key, v));
        assert_eq!(stats[0], u64::from(n), "{v}: round trips; serial log:\n{}", out.serial);
        assert!(stats[1..].is_sorted(), "{v}: expected min <= median <= p99 <= max, saw {:?}", &stats[1..]);
        *median = stats[2];
    }
    // vCPU 1 halts before each ipi_halted ping, vCPU 0 naps once then.
    let want = u64::from(n) + IPI_WARMUP;
    for (vcpu, prefix) in [(1, "vm0: vCPU 1 exits: "), (0, "vm0: exits: ")] {
        let halts = number(&out, &out.values(prefix), "hlt", prefix);
        assert!(halts >= want, "expected vCPU {vcpu} to halt at least {want} times, saw hlt={halts}");
    }
    medians
}

/// The number of `key` among `key=value` words, or a panic naming `what`.
fn number(out: &Outcome, values: &[(&str, &str)], key: &str, what: &str) -> u64 {
    let value = values.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    value
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{what}: expected a number for {key}=, saw {value:?}; serial log:\n{}", out.serial))
}

#[test]
fn ipi_round_trips_between_two_vcpus_are_timed_under_icount_on_qemu() {
    ipibench_reports_both_variants(QEMU64, "", 200);
}

#[test]
fn ipi_round_trips_between_two_vcpus_are_timed_on_bochs_ryzen() {
    ipibench_reports_both_variants(BOCHS_RYZEN, "", 200);
}

/// Both vCPUs on host CPU 0. The sender's kick hands the rest of its time
/// slice to the woken vCPU (`CpuTime::hand_over`), so a round trip takes
/// no time slice: before that, each waited out one or two 1 ms slices
/// (about 1 M and 2 M ticks). Under icount a tick is a guest instruction,
/// so this is a count, not a timing: the medians stay under a tenth of a
/// slice.
#[test]
fn ipi_round_trips_between_two_vcpus_pinned_to_one_host_cpu_wait_for_no_time_slice_under_icount_on_qemu() {
    let medians = ipibench_reports_both_variants(QEMU64, "hv.cpu=0", 200);
    for (v, median) in IPI_VARIANTS.iter().zip(medians) {
        assert!(median < 100_000, "{v}: median round trip {median} ticks: it waited for a time slice (1,000,000)");
    }
}
