//! Nested page faults: MMIO on the information device and the APIC pages
//! is emulated through the MMIO bus; any other address stops the vCPU.
use crate::fake::{Call, FakeSys};
use crate::*;
use sysabi::{NextRipSource, Reg};
use vmcb::NestedPageFault;
use vmm::hvdev::{MAGIC, MMIO_BASE};
use vmm::vcpu::Stop;

/// `mov eax, [ebx]`
const LOAD: [u8; 2] = [0x8B, 0x03];
/// `mov [ebx+8], ecx`
const STORE_8: [u8; 3] = [0x89, 0x4B, 0x08];
/// `mov eax, [ebx+8]`
const LOAD_8: [u8; 3] = [0x8B, 0x43, 0x08];

/// A nested page fault at `gpa` (a not-present fault, a write if `write`).
fn npf(gpa: u64, write: bool) -> VmExit {
    let error = 0b100 | if write { 0b10 } else { 0 };
    VmExit::Npf(NestedPageFault::from_exitinfo(error, gpa))
}

/// Runs `code` at RIP `CODE` until it faults at `gpa`.
fn fault(sys: &FakeSys, lp: &mut vmm::vcpu::VcpuLoop<'_, '_, FakeSys>, code: &[u8], gpa: u64, write: bool) {
    sys.put(Reg::Rip, CODE);
    sys.poke(CODE, code);
    sys.script([npf(gpa, write)]);
    step_ok(lp);
}

#[test]
fn info_device_load_is_emulated_and_completes_after_the_instruction() {
    let sys = protected_mode();
    let mut lp = vcpu_loop(&sys);
    sys.put(Reg::Rbx, MMIO_BASE);
    sys.put(Reg::Rax, 0xFFFF_FFFF_FFFF_FFFF);
    fault(&sys, &mut lp, &LOAD, MMIO_BASE, false);
    // A 32-bit load zero-extends into RAX.
    assert_eq!(sys.get(Reg::Rax), u64::from(MAGIC), "RAX after mov eax, [MAGIC]");
    let calls = sys.take_calls();
    let complete = Call::Complete { next_rip: CODE + 2, from: NextRipSource::Decoded };
    assert!(calls.contains(&complete), "expected {complete:?} among {calls:?}");
}

#[test]
fn info_device_store_then_load_round_trips_scratch() {
    let sys = protected_mode();
    let mut lp = vcpu_loop(&sys);
    sys.put(Reg::Rbx, MMIO_BASE);
    sys.put(Reg::Rcx, 0xCAFE_F00D);
    fault(&sys, &mut lp, &STORE_8, MMIO_BASE + 8, true);
    assert_eq!(sys.get(Reg::Rip), CODE + 3);
    fault(&sys, &mut lp, &LOAD_8, MMIO_BASE + 8, false);
    assert_eq!(sys.get(Reg::Rax), 0xCAFE_F00D, "SCRATCH read back");
}

#[test]
fn local_apic_tpr_round_trips_and_version_reads_through_the_exit_loop() {
    let sys = protected_mode();
    let mut lp = vcpu_loop(&sys);
    // TPR at 0xFEE0_0080, written and read back through [ebx+8].
    sys.put(Reg::Rbx, 0xFEE0_0078);
    sys.put(Reg::Rcx, 0x20);
    fault(&sys, &mut lp, &STORE_8, 0xFEE0_0080, true);
    sys.put(Reg::Rax, 0x5555);
    fault(&sys, &mut lp, &LOAD_8, 0xFEE0_0080, false);
    assert_eq!(sys.get(Reg::Rax), 0x20, "TPR read back");
    assert_eq!(sys.get(Reg::Rip), CODE + 3);
    // Version at 0xFEE0_0030: version 0x14, six LVT entries (max LVT 5).
    sys.put(Reg::Rbx, 0xFEE0_0028);
    fault(&sys, &mut lp, &LOAD_8, 0xFEE0_0030, false);
    assert_eq!(sys.get(Reg::Rax), 0x0005_0014, "local APIC version");
}

#[test]
fn ioapic_version_reads_through_its_index_and_window_registers() {
    let sys = protected_mode();
    let mut lp = vcpu_loop(&sys);
    // IOREGSEL (0xFEC0_0000) <- 1, then IOWIN (0xFEC0_0010).
    sys.put(Reg::Rbx, 0xFEBF_FFF8);
    sys.put(Reg::Rcx, 1);
    fault(&sys, &mut lp, &STORE_8, 0xFEC0_0000, true);
    sys.put(Reg::Rbx, 0xFEC0_0008);
    sys.put(Reg::Rax, 0x5555);
    fault(&sys, &mut lp, &LOAD_8, 0xFEC0_0010, false);
    assert_eq!(sys.get(Reg::Rax), 0x0017_0020, "I/O APIC version: 24 pins (max entry 23), version 0x20");
}

#[test]
fn npf_outside_every_device_stops_with_its_gpa_and_rip() {
    let sys = protected_mode();
    let mut lp = vcpu_loop(&sys);
    for (gpa, write) in [(0xC000_0000u64, false), (0xFEBF_EFFF, true), (0xFEE0_1000, false)] {
        sys.put(Reg::Rip, CODE);
        sys.script([npf(gpa, write)]);
        let seen = lp.step();
        assert_eq!(seen, Err(Stop::UnhandledNpf { gpa, rip: CODE, write }), "fault at {gpa:#x}");
    }
}

#[test]
fn mmio_by_an_instruction_the_emulator_lacks_stops_as_unemulated() {
    let sys = protected_mode();
    let mut lp = vcpu_loop(&sys);
    sys.poke(CODE, &[0x0F, 0xA2]); // cpuid: no memory operand
    sys.script([npf(MMIO_BASE, false)]);
    let seen = lp.step();
    let expected = Stop::Unemulated { rip: CODE, what: "MMIO access by an instruction the emulator does not handle" };
    assert_eq!(seen, Err(expected));
}

#[test]
fn mmio_with_rip_outside_ram_stops_as_a_failed_fetch() {
    let sys = protected_mode();
    let mut lp = vcpu_loop(&sys);
    let rip = RAM as u64 + 0x100;
    sys.put(Reg::Rip, rip);
    sys.script([npf(MMIO_BASE, false)]);
    assert_eq!(lp.step(), Err(Stop::Unemulated { rip, what: "instruction fetch failed" }));
}
