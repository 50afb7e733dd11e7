//! The SVM core on the small test guests of `tests/guests/`: real mode,
//! 32-bit protected mode and long mode, on QEMU and on Bochs's AMD models.
//! Under `-icount` (QEMU) and `clock: sync=none` (Bochs) every run is
//! deterministic, so each test states the exits it expects, and how they
//! were served (the `paths:` line): QEMU's TCG and Bochs's phenom have no
//! NRIPS, so every next RIP comes from EXITINFO2 (port I/O) or the decoder;
//! Bochs's ryzen and zambezi have it. A vCPU takes one ASID and, as no
//! guest here changes its paging under the hypervisor, never needs a flush.
//!
//! Bochs 2.7 looks at a posted virtual interrupt (V_IRQ) only when the
//! guest's RFLAGS.IF changes, so the first IRQ0, posted while the guest sits
//! at `sti; hlt` with IF set, is missed; the hypervisor sees that, moves the
//! interrupt to EVENTINJ, and does so for every open window from then on
//! (`eventinj=1 virq-missed=1`, and a second HLT exit). QEMU takes V_IRQ as
//! hardware does (`eventinj=0 virq-missed=0`).
//!
//! QEMU's TCG treats INT3 as a software interrupt and never raises the #BP
//! exception intercept, so the #BP checks of guest32/guest64 run without an
//! exit there; Bochs, like hardware, intercepts it, and each adds
//! `exception=1`. Real mode raises #UD for CLGI before the SVM intercept is
//! checked (on both), so guest16's CLGI is an intercepted #UD that the VMM
//! reflects back (`exception=1`).
use integration::*;
use std::path::Path;

fn boot(on: Svm, modules: &[(&Path, &str)]) -> Outcome {
    on.machine("log=info", modules).icount().run()
}

fn guest(name: &str) -> std::path::PathBuf {
    test_guests().join(name)
}

/// The SVM features of the `cpu:` line that tell the implementations apart.
fn svm_features(on: Svm) -> &'static str {
    match on {
        QEMU64 | BOCHS_PHENOM => "np=yes nrips=no decode-assists=no vmcb-clean=no flush-by-asid=no",
        BOCHS_RYZEN | BOCHS_ZAMBEZI => "np=yes nrips=yes decode-assists=no vmcb-clean=no flush-by-asid=yes",
        other => panic!("no SVM features recorded for {other:?}"),
    }
}

/// Boots `guest` with `args` on `on` and checks what every implementation
/// must show: the features it reports, the guest's PASS line, the clean
/// stop and the hypervisor's successful end.
fn guest_passes(on: Svm, guest_file: &str, args: &str, pass: &str, stop: &str) -> Outcome {
    let g = guest(guest_file);
    let out = boot(on, &[(&g, args)]);
    out.assert_status(EXIT_SUCCESS)
        .assert_contains(svm_features(on))
        .assert_contains(pass)
        .assert_contains(stop)
        .assert_lacks("FAIL");
    out
}

fn real_mode_guest_passes(on: Svm) -> Outcome {
    guest_passes(
        on,
        "guest16.bin",
        "hv.format=raw16",
        "vm0: PASS guest16",
        "vm0: stopped cleanly: the guest requested a reset",
    )
}

fn protected_mode_guest_passes(on: Svm) -> Outcome {
    let out = guest_passes(on, "guest32.elf", "", "vm0: PASS guest32", "vm0: stopped cleanly");
    out.assert_contains("vm0: rdmsr 0xc001dead refused (#GP)")
        .assert_contains("vm0: wrmsr 0xc001dead <- 0x0 refused (#GP)");
    out
}

fn long_mode_guest_passes(on: Svm) -> Outcome {
    let out = guest_passes(on, "guest64.elf", "", "vm0: PASS guest64", "vm0: stopped cleanly");
    out.assert_contains("vm0: guest64: long mode");
    out
}

#[test]
fn real_mode_guest_passes_with_exact_exits() {
    real_mode_guest_passes(QEMU64)
        .assert_contains("vm0: exits: io=46 cpuid=3 hlt=1 vmmcall=2 exception=1\n")
        .assert_contains(
            "vm0: paths: next-rip: nrips=0 io=46 decoded=6, single-step=0, tlb: asid-flush=0 new-asid=1 full-flush=0, irq: eventinj=0 virq-missed=0\n",
        );
}

#[test]
fn protected_mode_guest_passes_with_exact_exits() {
    protected_mode_guest_passes(QEMU64)
        .assert_contains("vm0: exits: io=49 cpuid=4 msr=5 hlt=1 vmmcall=4 npf=6 svm-insn=7\n")
        .assert_contains(
            "vm0: paths: next-rip: nrips=0 io=49 decoded=18, single-step=3, tlb: asid-flush=0 new-asid=1 full-flush=0, irq: eventinj=0 virq-missed=0\n",
        );
}

#[test]
fn long_mode_guest_passes_with_exact_exits() {
    // exception=4: MONITOR, MWAIT, MONITORX and MWAITX, which qemu64 does not
    // have, raise #UD at once (intercepted, reflected). other=6: the MOV to
    // CR4 that sets PAE on the way to long mode (completed; it changes
    // paging, so the vCPU takes a fresh ASID: new-asid=2), the two CR4
    // writes (PKE, OSXSAVE) that the hypervisor answers with #GP because the
    // guest's CPUID hides those features, and three MOV to CR8 (two
    // completed, one #GP). npf=11: 9 of the MMIO device, 2 of the TPR.
    long_mode_guest_passes(QEMU64)
        .assert_contains("vm0: exits: io=68 cpuid=4 msr=3 hlt=1 vmmcall=4 npf=11 exception=4 svm-insn=1 other=6\n")
        .assert_contains(
            "vm0: paths: next-rip: nrips=0 io=68 decoded=26, single-step=3, tlb: asid-flush=0 new-asid=2 full-flush=0, irq: eventinj=0 virq-missed=0\n",
        );
}

#[test]
fn a_guest_spinning_with_interrupts_on_gets_its_timer_ticks_after_fast_path_exits() {
    // 100,000 CPUIDs answered on the fast path outlast several time slices;
    // then the guest spins with IF set and makes no exit of its own. Only a
    // host timer armed on every entry (for the PIT's next tick) gets it its
    // 20 ticks.
    let g = guest("guest32.elf");
    let out = boot(QEMU64, &[(&g, "mode=ticks")]);
    out.assert_status(EXIT_SUCCESS).assert_contains("vm0: PASS guest32 ticks").assert_contains("vm0: stopped cleanly");
}

/// The local APIC of a one-vCPU VM, as a guest sees it through its page
/// and IA32_TSC_DEADLINE (guest32 `mode=lapic`, tests/guests/lapic.inc):
/// the timer in one-shot, periodic and TSC-deadline modes and masked; the
/// order in which fixed self-IPIs are taken, nest and retire (ISR, IRR,
/// EOI); the TPR holding a vector off; an NMI to the vCPU's own APIC ID
/// with IF clear, and a second one sent from its handler, which must wait
/// for the handler's IRET (the VMM tracks the guest's NMI blocking);
/// lowest-priority delivery to its logical ID; a software-disabled APIC
/// refusing a fixed IPI. Both CPU models show the TSC-deadline timer (the
/// kernel's CPUID shows it whatever the host has).
fn lapic_guest_passes(on: Svm) {
    guest_passes(on, "guest32.elf", "mode=lapic", "vm0: PASS guest32 lapic", "vm0: stopped cleanly").assert_in_order(
        &[
            "vm0: lapic: one-shot ok\n",
            "vm0: lapic: periodic ok\n",
            "vm0: lapic: tsc-deadline ok\n",
            "vm0: lapic: masked timer ok\n",
            "vm0: lapic: order 91 51 61 e0 52\n",
            "vm0: lapic: eoi and isr order ok\n",
            "vm0: lapic: tpr and ppr ok\n",
            "vm0: lapic: nmi ok\n",
            "vm0: lapic: lowest priority ok\n",
            "vm0: lapic: svr ok\n",
        ],
    );
}

#[test]
fn lapic_timer_modes_priorities_and_delivery_modes_work_on_qemu() {
    lapic_guest_passes(QEMU64);
}

#[test]
fn lapic_timer_modes_priorities_and_delivery_modes_work_on_bochs_ryzen() {
    lapic_guest_passes(BOCHS_RYZEN);
}

/// The exits each guest's own code causes on a passing run under Bochs, as
/// tests/guests/README.md derives them, with the #BP of INT3 that Bochs
/// intercepts and the second HLT of the missed V_IRQ (see the top). Not the
/// `intr` exits (host timer interrupts): how many come depends on where the
/// host timer falls between the guest's instructions.
const GUEST16_EXITS: &[(&str, u64)] =
    &[("io", 46), ("cpuid", 3), ("hlt", 2), ("vmmcall", 2), ("exception", 1), ("svm-insn", 0)];
const GUEST32_EXITS: &[(&str, u64)] =
    &[("io", 49), ("cpuid", 4), ("msr", 5), ("hlt", 2), ("vmmcall", 4), ("npf", 6), ("exception", 1), ("svm-insn", 7)];
const GUEST64_EXITS: &[(&str, u64)] =
    &[("io", 68), ("cpuid", 4), ("msr", 3), ("hlt", 2), ("vmmcall", 4), ("npf", 11), ("svm-insn", 1)];

/// guest64's checks of the MONITOR family and of CR4 exit differently on
/// each model, as each has other features: an instruction the model lacks
/// (MONITOR, MONITORX) or a CR4 bit it does not implement (PKE everywhere,
/// OSXSAVE on phenom) faults natively, before the intercept is checked
/// (#UD: an `exception` exit, reflected; #GP: no exit, the guest takes it);
/// the rest exit (`other`). Bochs ryzen has every MONITOR instruction and
/// XSAVE: exception=1 (#BP), other=10 (4 MONITOR family, CR4 PAE, OSXSAVE
/// and its undo, 3 completed; 3 CR8 writes, 2 completed). zambezi lacks
/// MONITORX: exception=3, other=8. phenom lacks MONITORX and XSAVE:
/// exception=3, other=6 (MONITOR, MWAIT, CR4 PAE, the CR8 writes). Returns
/// (exception, other, completed CR writes).
fn guest64_model_exits(on: Svm) -> (u64, u64, u64) {
    match on {
        BOCHS_RYZEN => (1, 10, 5),
        BOCHS_ZAMBEZI => (3, 8, 5),
        BOCHS_PHENOM => (3, 6, 3),
        other => panic!("no guest64 exit counts recorded for {other:?}"),
    }
}

/// The `paths:` line of a guest on a Bochs model: with NRIPS every
/// intercepted instruction but the MMIO accesses (NPF exits, which have no
/// next RIP) completes through it; without, through the decoder. Each of
/// `flushes` paging changes (CR4 writes) flushes the vCPU's ASID where the
/// model can (ryzen, zambezi), else gives it a fresh one (phenom). One
/// interrupt goes through EVENTINJ after one missed V_IRQ.
fn bochs_paths(on: Svm, io: u64, insns: u64, npf: u64, single_steps: u64, flushes: u64) -> String {
    let phenom = on == BOCHS_PHENOM;
    let (nrips, decoded) = if phenom { (0, insns + npf) } else { (insns, npf) };
    let (asid_flushes, new_asids) = if phenom { (0, 1 + flushes) } else { (flushes, 1) };
    format!(
        "vm0: paths: next-rip: nrips={nrips} io={io} decoded={decoded}, single-step={single_steps}, \
         tlb: asid-flush={asid_flushes} new-asid={new_asids} full-flush=0, irq: eventinj=1 virq-missed=1\n"
    )
}

/// The three guests on one Bochs model, in a module named after it
/// (`cargo test -p integration --test svm bochs_ryzen`).
macro_rules! guests_on_bochs {
    ($($module:ident: $model:expr;)*) => {$(
        mod $module {
            use super::*;

            #[test]
            fn real_mode_guest_passes() {
                super::real_mode_guest_passes($model)
                    .assert_exit_counts("vm0", GUEST16_EXITS)
                    .assert_contains(&bochs_paths($model, 46, 7, 0, 0, 0));
            }

            #[test]
            fn protected_mode_guest_passes() {
                super::protected_mode_guest_passes($model)
                    .assert_exit_counts("vm0", GUEST32_EXITS)
                    .assert_contains(&bochs_paths($model, 49, 13, 6, 3, 0));
            }

            #[test]
            fn long_mode_guest_passes() {
                let (exception, other, cr) = guest64_model_exits($model);
                super::long_mode_guest_passes($model)
                    .assert_exit_counts("vm0", GUEST64_EXITS)
                    .assert_exit_counts("vm0", &[("exception", exception), ("other", other)])
                    .assert_contains(&bochs_paths($model, 68, 13 + cr, 11, 3, 1));
            }
        }
    )*};
}

guests_on_bochs! {
    bochs_ryzen: BOCHS_RYZEN;
    bochs_zambezi: BOCHS_ZAMBEZI;
    bochs_phenom: BOCHS_PHENOM;
}

/// DR0-DR3 are in no VMCB field, so only the hypervisor keeps one VM's
/// breakpoints from another (`docs/virtual-cpu.md`). vm0 writes 256 bits to
/// its DR0-DR3 and checks them twice, unarmed and armed in DR7, and then
/// that an armed breakpoint fires; vm1 reads its own RESET values in
/// between, writes its own, and checks them twice. The guests pace
/// themselves by their timer ticks (tests/guests/debugregs.inc); the order
/// of their lines shows that each check came after the other VM's writes.
/// At the end the host's own DR0-DR3 and DR7 must be what they were at boot.
fn two_vms_keep_their_own_debug_registers(on: Svm) {
    let g = guest("guest64.elf");
    let out = boot(on, &[(&g, "mode=dr-keep hv.mem=32M"), (&g, "mode=dr-other hv.mem=32M")]);
    out.assert_status(EXIT_SUCCESS)
        .assert_lacks("FAIL")
        .assert_in_order(&[
            "vm0: dr: set\n",
            "vm1: dr: own zeros\n",
            "vm1: dr: set\n",
            "vm0: dr: kept unarmed\n",
            "vm0: dr: armed\n",
            "vm1: dr: kept\n",
            "vm0: dr: kept armed\n",
            "vm1: dr: kept again\n",
        ])
        .assert_contains("vm0: dr: breakpoint fired\n")
        .assert_contains("vm0: PASS guest64 dr-keep")
        .assert_contains("vm1: PASS guest64 dr-other")
        .assert_contains("host debug registers: DR0-DR3 [0, 0, 0, 0] and DR7 0x400 as at boot");
}

#[test]
fn two_vms_keep_their_own_debug_registers_on_qemu() {
    two_vms_keep_their_own_debug_registers(QEMU64);
}

/// A hostile guest (guest64 `mode=hostile`) runs every SVM instruction,
/// touches the host's SVM MSRs and writes the ports the host uses (QEMU's
/// debug-exit port among them, which would end the whole run): each gets
/// the documented outcome (#UD, #GP(0), the guest's own devices), and the
/// VM beside it runs its whole check list undisturbed.
#[test]
fn a_hostile_guest_gets_the_documented_outcomes_and_the_vm_beside_it_passes() {
    hostile_guest_beside_a_passing_one(QEMU64);
}

/// The same on Bochs's Zen model, which has NRIPS and flush-by-ASID and
/// checks VMRUN's state as hardware does.
#[test]
fn a_hostile_guest_gets_the_documented_outcomes_and_the_vm_beside_it_passes_on_bochs_ryzen() {
    hostile_guest_beside_a_passing_one(BOCHS_RYZEN);
}

fn hostile_guest_beside_a_passing_one(on: Svm) {
    let g = guest("guest64.elf");
    let out = boot(on, &[(&g, "mode=hostile hv.mem=32M"), (&g, "hv.mem=32M")]);
    out.assert_status(EXIT_SUCCESS)
        .assert_lacks("FAIL")
        .assert_contains("vm0: PASS guest64 hostile")
        .assert_contains("vm0: stopped cleanly")
        .assert_contains("vm1: PASS guest64\n")
        .assert_contains("vm1: stopped cleanly");
}

/// Hypercall fuzzing: guest64 `mode=hcfuzz` makes 100,000 random calls
/// with random registers from CPL 0 and 100,000 from CPL 3
/// (tests/guests/hcfuzz.inc). Every outcome must be a documented result,
/// errno or the caller's own fault, the VM still answers afterwards, and
/// the VM beside it runs its whole check list undisturbed.
/// `scripts/hcfuzz` runs ten million of each.
#[test]
fn random_hypercalls_from_cpl0_and_cpl3_get_documented_outcomes_and_harm_no_one() {
    random_hypercalls_harm_no_one(QEMU64);
}

/// The same on Bochs's Zen model (NRIPS: the kernel's fast path and the
/// VMM take the next RIP from the CPU there).
#[test]
fn random_hypercalls_from_cpl0_and_cpl3_get_documented_outcomes_and_harm_no_one_on_bochs_ryzen() {
    random_hypercalls_harm_no_one(BOCHS_RYZEN);
}

fn random_hypercalls_harm_no_one(on: Svm) {
    let g = guest("guest64.elf");
    let out = boot(on, &[(&g, "mode=hcfuzz hv.mem=32M"), (&g, "hv.mem=32M")]);
    out.assert_status(EXIT_SUCCESS)
        .assert_lacks("FAIL")
        .assert_contains("vm0: PASS guest64 hcfuzz")
        .assert_contains("vm1: PASS guest64\n");
    let count = |cpl: &str, what: &str| -> u64 {
        let key = format!(" {what} ");
        out.serial
            .lines()
            .filter(|l| l.contains(&format!("vm0: hcfuzz: {cpl} ")))
            .find_map(|l| l.split(&key).nth(1))
            .and_then(|r| u64::from_str_radix(&r[..16.min(r.len())], 16).ok())
            .unwrap_or_else(|| panic!("no {what} count for {cpl}:\n{}", out.serial))
    };
    for l in out.serial.lines().filter(|l| l.contains("vm0: hcfuzz: ")) {
        eprintln!("{l}");
    }
    for cpl in ["cpl0", "cpl3"] {
        let calls = count(cpl, "calls");
        assert_eq!(calls, 100_000, "{cpl}: calls made");
        let kinds = ["ok", "pf", "gp", "eperm", "enoent", "e2big", "eagain", "efault", "einval", "enosys"];
        let total: u64 = kinds.iter().map(|k| count(cpl, k)).sum();
        assert_eq!(total, calls, "{cpl}: every call has exactly one outcome");
        for k in ["ok", "pf", "gp", "e2big", "enosys"] {
            assert!(count(cpl, k) > 0, "{cpl}: the fuzzer never reached outcome {k}");
        }
    }
    assert!(count("cpl0", "efault") > 0, "CPL 0 named non-RAM memory (the MMIO page) and got -EFAULT");
    assert!(count("cpl3", "eperm") > 0, "CPL 3 tried STATS_RESET or POWEROFF and got -EPERM");
}

/// Noninterference: VM A (`mode=ni-observe`) looks at everything it shares
/// with VM B: its TSC across rounds in which B runs, DR0-DR3, INFO and
/// STATS, the channel from B. VM B holds a 256-bit secret in its DRs,
/// registers and memory. Under icount two runs with different secrets must
/// give byte-identical serial logs, once B's mode name is masked: nothing
/// A sees, and nothing the hypervisor prints, depends on the secret. What
/// this does and does not cover: docs/security.md.
#[test]
fn two_icount_runs_differing_only_in_vm_bs_secret_are_identical() {
    two_runs_differing_only_in_vm_bs_secret_are_identical(QEMU64);
}

/// The same on Bochs's Zen model, whose emulated time follows executed
/// instructions (`clock: sync=none`), so its runs are deterministic too.
/// Its DR0-DR3 are switched through the same lazy intercepts, and its
/// NRIPS path serves the hypercalls.
#[test]
fn two_runs_differing_only_in_vm_bs_secret_are_identical_on_bochs_ryzen() {
    two_runs_differing_only_in_vm_bs_secret_are_identical(BOCHS_RYZEN);
}

fn two_runs_differing_only_in_vm_bs_secret_are_identical(on: Svm) {
    let g = guest("guest64.elf");
    let run = |secret: &str| {
        let b = format!("mode=ni-secret-{secret} hv.mem=32M");
        boot(on, &[(&g, "mode=ni-observe hv.mem=32M"), (&g, &b)])
    };
    let (a, b) = (run("a"), run("b"));
    for out in [&a, &b] {
        out.assert_status(EXIT_SUCCESS)
            .assert_lacks("FAIL")
            .assert_contains("vm0: PASS guest64 ni-observe")
            .assert_contains("vm1: ni: secret kept")
            .assert_contains("vm1: PASS guest64 ni-secret");
    }
    let count = |needle: &str| a.serial.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(count("vm0: ni: round "), 4, "four observation rounds:\n{}", a.serial);
    let zeros = "vm0: ni: dr 0000000000000000 0000000000000000 0000000000000000 0000000000000000";
    assert_eq!(count(zeros), 4, "A reads its own zero DR0-DR3 in every round:\n{}", a.serial);
    assert_eq!(count(" recv fffffffffffffff5"), 4, "B sent nothing: CHAN_RECV is EAGAIN:\n{}", a.serial);
    let mask = |s: &str| s.replace("ni-secret-a", "ni-secret-?").replace("ni-secret-b", "ni-secret-?");
    let (la, lb) = (mask(&a.serial), mask(&b.serial));
    if la != lb {
        let (n, (x, y)) = la.lines().zip(lb.lines()).enumerate().find(|(_, (x, y))| x != y).unwrap_or((0, ("", "")));
        panic!("the runs differ first at line {}:\n  secret a: {x}\n  secret b: {y}\nlog a:\n{}", n + 1, a.serial);
    }
}

#[test]
fn two_vms_keep_their_own_debug_registers_on_bochs_ryzen() {
    two_vms_keep_their_own_debug_registers(BOCHS_RYZEN);
}

#[test]
fn access_to_unbacked_guest_memory_stops_the_vm_naming_gpa_and_rip() {
    let g = guest("guest32.elf");
    let out = boot(QEMU64, &[(&g, "mode=npf")]);
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
    let out = boot(QEMU64, &[(&g, "mode=triple"), (&g, "")]);
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
    let out = boot(QEMU64, &[(&bad, ""), (&g, "")]);
    out.assert_status(EXIT_SUCCESS)
        .assert_contains("vm0: not started: bad guest image:")
        .assert_contains("vm1: PASS guest32");
}

#[test]
fn a_command_line_that_cannot_be_passed_whole_refuses_its_vm_and_others_still_run() {
    // Module 0's line is longer than the hypervisor takes (1024 bytes);
    // module 1's guest line is longer than a VM takes (512). Neither is cut
    // and run: both are refused with the reason, and module 2 runs.
    let g = guest("guest32.elf");
    let huge = "word ".repeat(220);
    let long = "mode=pass ".repeat(60);
    let out = boot(QEMU64, &[(&g, &huge), (&g, &long), (&g, "")]);
    out.assert_status(EXIT_SUCCESS)
        .assert_contains("boot: module 0's command line is longer than 1024 bytes; its VM is refused")
        .assert_contains("module command line not taken whole; module refused")
        .assert_contains("guest command line longer than 512 bytes; VM refused")
        .assert_contains("vm0: PASS guest32")
        .assert_lacks("vm1:");
}

#[test]
fn nine_vm_modules_run_eight_refuse_the_ninth_and_every_process_ends() {
    let g = guest("guest32.elf");
    // 16 MiB each, so that memory is not what limits them.
    let modules: Vec<(&Path, &str)> = (0..9).map(|_| (g.as_path(), "hv.mem=16M")).collect();
    let out = boot(QEMU64, &modules);
    out.assert_status(EXIT_SUCCESS)
        .assert_contains("more VMs than the hypervisor runs at once; VM refused")
        .assert_lacks("vm8:")
        .assert_contains("all guests have stopped");
    for n in 0..8 {
        out.assert_contains(&format!("vm{n}: PASS guest32"));
        // The self-test's process ended before: the VMs get p1 to p8.
        out.assert_contains(&format!("vm{n}: process p{} ended", n + 1));
    }
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
    let out = boot(QEMU64, &[(&g, "mode=mbinfo extra=1"), (&module, "the-module-args")]);
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
    boot(QEMU64, &[(&g, "mode=debugexit hv.debug-exit=on")]).assert_status(67);
    // Not passed through: the port is an unassigned one, the guest sees its
    // write ignored and reports it.
    boot(QEMU64, &[(&g, "mode=debugexit")])
        .assert_status(EXIT_SUCCESS)
        .assert_contains("vm0: FAIL guest32: debug-exit port not passed through");
}
