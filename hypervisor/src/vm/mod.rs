//! The vm layer: SVM per CPU, the VMCB's lifecycle, ASIDs and TLB flushes,
//! event injection, the guest's CPU model and its CR4/XCR0 checks, and the
//! step from a VMRUN to one typed exit. The world switch itself is
//! `arch::svm`; what a VMCB points at (the nested page table, built with
//! the `npt` crate, the guest RAM it maps and the I/O and MSR permission
//! maps) is one `arch::vmspace::VmSpace` per VM, which [`Vm`] owns and the
//! syscall layer fills through [`Vm::map_ram`]; decoding the exit is
//! `sysabi::VmExit::decode`. Host tests: `tests.rs`, on the scripted world
//! switch of `arch::sim`.
//!
//! Interface to the layer above: [`Vm`] and [`Vcpu`] objects and
//! [`Vcpu::run`], which enters the guest and returns one typed [`VmExit`].
//! The syscall layer wraps these in ownership-checked handles; the VMM never
//! sees them directly.
//!
//! What the layer guarantees:
//! - every VMRUN uses an ASID that no other live vCPU on this CPU holds in
//!   this generation, and a fresh ASID whenever the VM's nested page tables
//!   lost a translation since the vCPU last ran (so no stale TLB entry
//!   survives, on hardware that caches them);
//! - the VMCB clean bits claim only fields unchanged since this vCPU's last
//!   VMRUN on this CPU;
//! - the guest's GPRs, extended state (x87, SSE, AVX...), XCR0, TSC_AUX
//!   and debug registers are the guest's alone (`docs/virtual-cpu.md` has
//!   the table of who switches what).
pub mod asid;
pub mod constant_mmio;
pub mod cpuid;
pub mod cr;
pub mod debug;
pub mod events;
#[cfg(test)]
mod tests;

pub use sysabi::stats;
pub use sysabi::{ExitReason, NextRipSource, RawExit, Reg, SegReg, VmExit};

use crate::arch::frames::{FrameError, PoolId};
use crate::arch::phys::PhysRun;
use crate::arch::svm::{ConstantPorts, GuestRegs, InPlaceInsn, Served};
use crate::arch::vmspace::{GuestVmcb, MapError, VmSpace};
use asid::{AsidAllocator, AsidTag, TlbAction};
use guest_x86::decode::WalkLimits;
use guest_x86::regs::{cr0, cr4, efer, rflags, xcr0};
use vmcb::{
    CleanBits, CrSet, EventInj, ExceptionIntercepts, IntControl, InterceptMisc1, InterceptMisc2, Segment, StateLimits,
    TlbControl, Vmcb,
};

/// Host CPU facts the vm layer needs, from the feature probe at boot.
#[derive(Debug, Clone, Copy)]
pub struct SvmCaps {
    pub asids: u32,
    pub nrips: bool,
    pub vmcb_clean: bool,
    pub flush_by_asid: bool,
    /// The CPU has the TSC_AUX MSR (RDTSCP or RDPID), and it holds 0 when
    /// the CPU registers with the vm layer.
    pub tsc_aux: bool,
}

/// What VMRUN accepts on the host CPU: its physical-address width and the
/// EFER and CR4 bits it implements (the rest are must-be-zero).
pub fn host_state_limits() -> StateLimits {
    use crate::arch::cpu::cpuid;
    let [_, _, leaf1_ecx, _] = cpuid(1, 0);
    let [max_basic, ..] = cpuid(0, 0);
    let [_, l7_ebx, l7_ecx, _] = if max_basic >= 7 { cpuid(7, 0) } else { [0; 4] };
    let [max_ext, ..] = cpuid(0x8000_0000, 0);
    let [_, _, e1_ecx, e1_edx] = if max_ext >= 0x8000_0001 { cpuid(0x8000_0001, 0) } else { [0; 4] };
    let [e8_eax, ..] = if max_ext >= 0x8000_0008 { cpuid(0x8000_0008, 0) } else { [36, 0, 0, 0] };
    let bit = |reg: u32, n: u32| reg & (1 << n) != 0;
    let mut efer_allowed = efer::SCE | efer::LME | efer::LMA;
    for (have, b) in [(bit(e1_edx, 20), efer::NXE), (bit(e1_edx, 25), efer::FFXSR), (bit(e1_ecx, 17), efer::TCE)] {
        if have {
            efer_allowed |= b;
        }
    }
    let mut cr4_allowed = cr4::BASELINE;
    for (have, b) in [
        (bit(l7_ecx, 2), cr4::UMIP),
        (bit(l7_ecx, 16), cr4::LA57),
        (bit(l7_ebx, 0), cr4::FSGSBASE),
        (bit(leaf1_ecx, 17), cr4::PCIDE),
        (bit(leaf1_ecx, 26), cr4::OSXSAVE),
        (bit(l7_ebx, 7), cr4::SMEP),
        (bit(l7_ebx, 20), cr4::SMAP),
        (bit(l7_ecx, 3), cr4::PKE),
        (bit(l7_ecx, 7), cr4::CET),
    ] {
        if have {
            cr4_allowed |= b;
        }
    }
    StateLimits { phys_addr_bits: (e8_eax & 0xFF) as u8, efer_allowed, cr4_allowed }
}

/// Per-CPU vm-layer state.
pub struct CpuVm {
    pub cpu: usize,
    pub caps: SvmCaps,
    asids: AsidAllocator,
    /// What VMRUN accepts on this CPU, for the state check before it.
    limits: StateLimits,
    /// This CPU delivers V_IRQ to an interrupt window that is open at
    /// VMRUN: true until seen otherwise (see [`events`]).
    pub virq_reliable: bool,
    /// What this CPU's TSC_AUX MSR holds: VMRUN does not switch it, so it
    /// is loaded only when the next guest's value differs.
    tsc_aux: u32,
    /// The host's DR0–DR3, put back after a guest ran with its own.
    host_dr: [u64; 4],
}

impl CpuVm {
    /// `host_dr`: what DR0–DR3 hold when the CPU registers.
    pub fn new(cpu: usize, caps: SvmCaps, limits: StateLimits, host_dr: [u64; 4]) -> Self {
        CpuVm {
            cpu,
            caps,
            asids: AsidAllocator::new(cpu, caps.asids),
            limits,
            virq_reliable: true,
            tsc_aux: 0,
            host_dr,
        }
    }

    /// Puts `value` in this CPU's TSC_AUX for the guest about to run. The
    /// host never reads TSC_AUX, so it keeps the last guest's value. A CPU
    /// without the MSR only ever runs guests whose TSC_AUX is 0 (their
    /// CPUID hides RDTSCP and RDPID, and the MSR is refused).
    fn load_tsc_aux(&mut self, value: u32) {
        if value != self.tsc_aux && self.caps.tsc_aux {
            crate::arch::cpu::write_tsc_aux(value);
            self.tsc_aux = value;
        }
    }
}

/// One virtual CPU: its VMCB, the registers the VMCB lacks, and what it
/// remembers between runs.
pub struct Vcpu {
    vmcb: GuestVmcb,
    regs: GuestRegs,
    asid: AsidTag,
    /// VMCB fields written since the last VMRUN (for the clean bits).
    dirty: CleanBits,
    /// The CPU this vCPU last ran on, if any.
    last_cpu: Option<usize>,
    /// The VM's NPT generation this vCPU's ASID is known clean for.
    npt_generation: u64,
    /// The reason and TSC of the last exit, until the next VMRUN closes its
    /// handling time.
    open_exit: Option<(ExitReason, u64)>,
    /// Guest state the VMM wrote since the last VMRUN: checked before the next.
    state_changed: bool,
    /// The guest's TLB entries must go before the next VMRUN (a CR4 change).
    flush_requested: bool,
    pub stats: stats::ExitStats,
    /// Which mechanisms served this vCPU (NRIPS or decoding, ASID flushes).
    pub paths: stats::PathStats,
    /// TSC cycles spent in guest mode, VMRUN to #VMEXIT (the world switch
    /// included), since the vCPU was created.
    pub guest_cycles: u64,
    /// The CR4 bits and XCR0 components the guest's CPUID allows.
    cr4_allowed: u64,
    xcr0_supported: u64,
    /// The guest's TSC_AUX, loaded into the MSR before VMRUN.
    tsc_aux: u32,
    /// The guest's DR0–DR3 (DR6 and DR7 are in the VMCB).
    debug: debug::GuestDebug,
}

/// What an intercept setup for a fresh vCPU traps: everything the VMM must
/// see, nothing more.
fn default_intercepts(vmcb: &mut Vmcb) {
    let c = &mut vmcb.control;
    c.set_exception_intercepts(ExceptionIntercepts::MC);
    // CR4 writes are checked against the guest's CPUID (vm::cr). CR8
    // writes go to the VMM's local APIC, whose TPR it is; reads of CR8
    // come from V_TPR, which the VMM keeps equal to the TPR's class.
    c.set_cr_write_intercepts(CrSet::CR4 | CrSet::CR8);
    // Until the guest touches DR0-DR3, they are not loaded (vm::debug).
    let (dr_reads, dr_writes) = debug::GuestDebug::new().intercepts();
    c.set_dr_read_intercepts(dr_reads);
    c.set_dr_write_intercepts(dr_writes);
    c.set_misc1_intercepts(
        InterceptMisc1::INTR
            | InterceptMisc1::NMI
            | InterceptMisc1::SMI
            | InterceptMisc1::INIT
            | InterceptMisc1::CPUID
            | InterceptMisc1::RDPMC
            | InterceptMisc1::HLT
            | InterceptMisc1::INVLPGA
            | InterceptMisc1::IOIO_PROT
            | InterceptMisc1::MSR_PROT
            | InterceptMisc1::SHUTDOWN
            | InterceptMisc1::RSM
            | InterceptMisc1::INVD
            | InterceptMisc1::TASK_SWITCH,
    );
    c.set_misc2_intercepts(
        InterceptMisc2::VMRUN
            | InterceptMisc2::VMMCALL
            | InterceptMisc2::VMLOAD
            | InterceptMisc2::VMSAVE
            | InterceptMisc2::STGI
            | InterceptMisc2::CLGI
            | InterceptMisc2::SKINIT
            | InterceptMisc2::XSETBV
            | InterceptMisc2::MONITOR
            | InterceptMisc2::MWAIT
            | InterceptMisc2::RDPRU,
    );
}

const PAT_DEFAULT: u64 = 0x0007_0406_0007_0406;

impl Vcpu {
    /// A vCPU of `vm` in the x86 reset state (real mode at F000:FFF0),
    /// whose VMCB is a frame of `pool` pointing at the VM's nested page
    /// table and permission maps. Give it back with [`Vm::release_vcpu`].
    pub fn new(vm: &mut Vm, pool: PoolId) -> Result<Vcpu, FrameError> {
        let mut vmcb = vm.space.new_vmcb(pool)?;
        default_intercepts(&mut vmcb);
        let c = &mut vmcb.control;
        // The host's RFLAGS.IF gates physical interrupts; the guest's IF
        // and CR8 act on virtual interrupts only.
        c.set_interrupt_control(IntControl::from_raw(0).with_v_intr_masking(true));
        let s = &mut vmcb.save;
        s.cs = Segment::real_mode_code(0xF000);
        s.cs.base = 0xFFFF_0000;
        for seg in [&mut s.ds, &mut s.es, &mut s.ss, &mut s.fs, &mut s.gs] {
            *seg = Segment::real_mode(0);
        }
        s.gdtr = Segment::table(0, 0xFFFF);
        s.idtr = Segment::table(0, 0xFFFF);
        s.ldtr = Segment::ldt(0, 0, 0xFFFF);
        s.tr = Segment::busy_tss(0, 0, 0xFFFF);
        s.rip = 0xFFF0;
        s.rflags = rflags::FIXED;
        s.cr0 = cr0::CD | cr0::NW | cr0::ET;
        s.dr6 = debug::DR6_RESET;
        s.dr7 = debug::DR7_RESET;
        s.efer = efer::SVME;
        s.g_pat = PAT_DEFAULT;
        Ok(Vcpu {
            vmcb,
            regs: GuestRegs::new(),
            asid: AsidTag::default(),
            dirty: CleanBits::all(),
            last_cpu: None,
            npt_generation: vm.npt_generation,
            open_exit: None,
            state_changed: true,
            flush_requested: false,
            stats: stats::ExitStats::new(),
            paths: stats::PathStats::default(),
            guest_cycles: 0,
            cr4_allowed: cr::cr4_allowed(&vm.cpuid),
            xcr0_supported: vm.cpuid.xcr0_supported(),
            tsc_aux: 0,
            debug: debug::GuestDebug::new(),
        })
    }

    /// Enters the guest on this CPU and returns when it exits. A guest
    /// state that VMRUN would refuse is not run: the exit is
    /// [`VmExit::Invalid`] naming the field.
    pub fn run(&mut self, cpu: &mut CpuVm, vm: &Vm) -> VmExit {
        self.prepare_tlb(cpu, vm);
        // Clean bits are valid only for the CPU that cached this VMCB.
        let clean = if cpu.caps.vmcb_clean && self.last_cpu == Some(cpu.cpu) {
            CleanBits::all() - self.dirty
        } else {
            CleanBits::empty()
        };
        self.vmcb.control.set_clean_bits(clean);
        if self.state_changed {
            if let Err(e) = vmcb::check_vmrun_state(&self.vmcb, &cpu.limits) {
                return VmExit::Invalid(Some(e));
            }
            self.state_changed = false;
        }

        // A posted interrupt the guest can take at once must be taken before
        // its first instruction; where this CPU was seen not to, it goes in
        // through EVENTINJ instead.
        let must_take = events::interrupt_posted(&self.vmcb) && events::window_open(&self.vmcb);
        if must_take && !cpu.virq_reliable {
            self.dirty |= events::deliver_posted_now(&mut self.vmcb);
            self.paths.eventinj_irqs += 1;
        }

        let rip_at_entry = self.vmcb.save.rip;
        cpu.load_tsc_aux(self.tsc_aux);
        self.regs.in_place.set_nrips(cpu.caps.nrips);
        self.regs.in_place.set_ports(&vm.constant_ports);
        let guest_dr = self.debug.before_run();
        let entered_at = crate::arch::cpu::rdtsc();
        if let Some((reason, at)) = self.open_exit.take() {
            self.stats.record_time(reason, entered_at.wrapping_sub(at));
        }
        crate::arch::svm::run_vmcb(cpu.cpu, &mut self.regs, &mut self.vmcb);
        let exited_at = crate::arch::cpu::rdtsc();
        self.guest_cycles = self.guest_cycles.wrapping_add(exited_at.wrapping_sub(entered_at));
        let served = self.regs.in_place.take_served();
        if served.any() {
            self.count_served_in_place(cpu.caps.nrips, served);
        }
        if guest_dr && self.debug.after_run(&cpu.host_dr, self.vmcb.save.dr7) {
            self.set_dr_intercepts();
        }

        self.last_cpu = Some(cpu.cpu);
        self.dirty = CleanBits::empty();
        let c = &self.vmcb.control;
        let raw = RawExit { code: c.exit_code, info1: c.exit_info1, info2: c.exit_info2, int_info: c.exit_int_info };
        self.vmcb.control.set_event_injection(EventInj::NONE);
        if let Some(ev) = EventInj::from_exit_int_info(raw.int_info) {
            self.dirty |= events::redeliver(&mut self.vmcb, ev);
        }
        let exit = VmExit::decode(&raw);
        // The interrupt is still pending after the guest ran into a
        // synchronous exit, or ran any instruction before an asynchronous
        // one (its RIP moved; the CPU would have taken the interrupt before
        // the first): the CPU skipped it. An INTR exit before the first
        // instruction is no sign. Bochs 2.7 looks at V_IRQ only when the
        // guest's IF changes, so a guest spinning with IF set is seen only
        // by its timer exits.
        let ran = !exit.is_asynchronous() || self.vmcb.save.rip != rip_at_entry;
        if must_take && cpu.virq_reliable && events::interrupt_posted(&self.vmcb) && ran {
            cpu.virq_reliable = false;
            self.paths.virq_missed += 1;
            log::warn!(
                "cpu{}: the CPU did not deliver a virtual interrupt (V_IRQ) to an open interrupt window; \
                 such interrupts now go through EVENTINJ on this CPU",
                cpu.cpu
            );
        }
        let reason = exit.reason();
        self.stats.count(reason);
        self.open_exit = Some((reason, exited_at));
        exit
    }

    /// Counts the exits the world switch answered in place (counted, not
    /// timed: their time is in `guest_cycles`).
    fn count_served_in_place(&mut self, nrips: bool, served: Served) {
        self.stats.count_many(ExitReason::Vmmcall, served.pings);
        self.stats.count_many(ExitReason::Cpuid, served.cpuids);
        self.stats.count_many(ExitReason::Io, served.port_reads);
        let insns = if nrips { &mut self.paths.nrips } else { &mut self.paths.decoded };
        *insns += served.pings + served.cpuids;
        self.paths.io_exitinfo += served.port_reads;
    }

    /// Without NRIPS: `insn` was found at `rip` (64-bit mode) under the
    /// guest's current CR3, its bytes at host address `bytes` in the VM's
    /// RAM; the world switch answers it there itself from now on.
    pub fn remember_in_place_site(&mut self, insn: InPlaceInsn, rip: u64, bytes: u64) {
        let cr3 = self.vmcb.save.cr3;
        self.regs.in_place.remember_site(insn, cr3, rip, bytes);
    }

    /// `insn` was not where the world switch would look for it.
    pub fn forget_in_place_site(&mut self, insn: InPlaceInsn) {
        self.regs.in_place.forget_site(insn);
    }

    /// CPUID(`leaf`, `sub`) answers `answer` whatever this vCPU's state:
    /// the world switch gives it itself from now on.
    pub fn remember_in_place_cpuid(&mut self, leaf: u32, sub: u32, answer: [u32; 4]) {
        self.regs.in_place.remember_cpuid(leaf, sub, answer);
    }

    /// Gives this vCPU an ASID on this CPU whose TLB entries are not stale,
    /// and tells VMRUN what to flush.
    fn prepare_tlb(&mut self, cpu: &mut CpuVm, vm: &Vm) {
        // A nested page table that lost translations since we last ran, or
        // a guest paging change the VMM emulated (a CR4 paging bit): our
        // ASID's TLB entries may be stale. Flush them where the CPU can flush
        // one ASID, else take a fresh ASID, which has none.
        let stale = self.npt_generation != vm.npt_generation || self.flush_requested;
        self.npt_generation = vm.npt_generation;
        self.flush_requested = false;
        if stale {
            // The guest's code may now be elsewhere in RAM.
            self.regs.in_place.forget_sites();
            if !cpu.caps.flush_by_asid {
                self.asid = AsidTag::default();
            }
        }
        let tlb = match cpu.asids.ensure(&mut self.asid) {
            TlbAction::None if stale => {
                self.paths.asid_flushes += 1;
                TlbControl::FlushThisAsid
            }
            TlbAction::None => TlbControl::DoNothing,
            TlbAction::NewAsid => {
                self.paths.new_asids += 1;
                TlbControl::DoNothing
            }
            TlbAction::FlushAll => {
                self.paths.full_flushes += 1;
                TlbControl::FlushAll
            }
        };
        if self.vmcb.control.guest_asid != self.asid.asid {
            self.vmcb.control.guest_asid = self.asid.asid;
            self.dirty |= CleanBits::ASID;
            self.state_changed = true;
        }
        self.vmcb.control.set_tlb_flush(tlb);
    }

    /// The intercepted instruction is done: RIP moves to `next_rip`, the
    /// interrupt shadow ends, and a single-stepping guest gets its #DB (see
    /// [`events::complete_instruction`]).
    pub fn complete_instruction(&mut self, next_rip: u64, source: NextRipSource) {
        let done = events::complete_instruction(&mut self.vmcb, next_rip);
        self.dirty |= done.dirty;
        self.paths.single_steps += u64::from(done.single_step);
        match source {
            NextRipSource::Nrips => self.paths.nrips += 1,
            NextRipSource::IoExitInfo => self.paths.io_exitinfo += 1,
            NextRipSource::Decoded => self.paths.decoded += 1,
        }
    }

    /// The guest's intercepted MOV from or to a debug register (an exit
    /// that [`debug::is_access`] names): its DR0–DR3 are loaded from the
    /// next VMRUN on and the intercepts dropped, so that the MOV, not
    /// completed, runs again on the CPU. Answering here, not in `run`,
    /// keeps the test off every other exit.
    pub fn give_debug_registers(&mut self) {
        if self.debug.accessed() {
            self.set_dr_intercepts();
        }
    }

    /// Intercepts the debug registers as [`debug::GuestDebug`] says.
    fn set_dr_intercepts(&mut self) {
        let (reads, writes) = self.debug.intercepts();
        let c = &mut self.vmcb.control;
        c.set_dr_read_intercepts(reads);
        c.set_dr_write_intercepts(writes);
        self.dirty |= CleanBits::INTERCEPTS;
    }

    /// Makes the next `run` flush this vCPU's TLB entries: the guest changed
    /// something (a CR4 paging bit) that hardware would have flushed on.
    pub fn request_tlb_flush(&mut self) {
        self.flush_requested = true;
    }

    /// What CPUID answers depend on in this vCPU's state.
    pub fn cpuid_view(&self, index: u32) -> cpuid::GuestView {
        cpuid::GuestView { index, cr4: self.vmcb.save.cr4, xcr0: self.regs.xcr0() }
    }

    /// The VMCB's next_rip: on a CPU with NRIPS, the address of the
    /// instruction after the intercepted one.
    pub fn next_rip_raw(&self) -> u64 {
        self.vmcb.control.next_rip
    }

    pub fn reg(&self, r: Reg) -> u64 {
        let s = &self.vmcb.save;
        let g = &self.regs.gprs;
        match r {
            Reg::Rax => s.rax,
            Reg::Rbx => g.rbx,
            Reg::Rcx => g.rcx,
            Reg::Rdx => g.rdx,
            Reg::Rsi => g.rsi,
            Reg::Rdi => g.rdi,
            Reg::Rbp => g.rbp,
            Reg::Rsp => s.rsp,
            Reg::R8 => g.r8,
            Reg::R9 => g.r9,
            Reg::R10 => g.r10,
            Reg::R11 => g.r11,
            Reg::R12 => g.r12,
            Reg::R13 => g.r13,
            Reg::R14 => g.r14,
            Reg::R15 => g.r15,
            Reg::Rip => s.rip,
            Reg::Rflags => s.rflags,
            Reg::Cr0 => s.cr0,
            Reg::Cr2 => s.cr2,
            Reg::Cr3 => s.cr3,
            Reg::Cr4 => s.cr4,
            // The guest never sees SVME, which VMRUN needs set.
            Reg::Efer => s.efer & !efer::SVME,
            Reg::Dr6 => s.dr6,
            Reg::Dr7 => s.dr7,
            Reg::Pat => s.g_pat,
            Reg::SysenterCs => s.sysenter_cs,
            Reg::SysenterEsp => s.sysenter_esp,
            Reg::SysenterEip => s.sysenter_eip,
            Reg::Cpl => u64::from(s.cpl),
            Reg::TscAux => u64::from(self.tsc_aux),
            Reg::Cr8 => u64::from(self.vmcb.control.interrupt_control().v_tpr()),
        }
    }

    /// Writes a register, marking the VMCB fields it lives in dirty.
    pub fn set_reg(&mut self, r: Reg, v: u64) {
        if matches!(r, Reg::Cr0 | Reg::Cr3 | Reg::Cr4 | Reg::Efer | Reg::Dr6 | Reg::Dr7) {
            self.state_changed = true;
        }
        let s = &mut self.vmcb.save;
        let g = &mut self.regs.gprs;
        match r {
            Reg::Rax => s.rax = v,
            Reg::Rbx => g.rbx = v,
            Reg::Rcx => g.rcx = v,
            Reg::Rdx => g.rdx = v,
            Reg::Rsi => g.rsi = v,
            Reg::Rdi => g.rdi = v,
            Reg::Rbp => g.rbp = v,
            Reg::Rsp => s.rsp = v,
            Reg::R8 => g.r8 = v,
            Reg::R9 => g.r9 = v,
            Reg::R10 => g.r10 = v,
            Reg::R11 => g.r11 = v,
            Reg::R12 => g.r12 = v,
            Reg::R13 => g.r13 = v,
            Reg::R14 => g.r14 = v,
            Reg::R15 => g.r15 = v,
            Reg::Rip => s.rip = v,
            Reg::Rflags => s.rflags = v | rflags::FIXED,
            Reg::Cr0 => {
                s.cr0 = v;
                self.dirty |= CleanBits::CRX;
            }
            Reg::Cr2 => {
                s.cr2 = v;
                self.dirty |= CleanBits::CR2;
            }
            Reg::Cr3 => {
                s.cr3 = v;
                self.dirty |= CleanBits::CRX;
            }
            Reg::Cr4 => {
                s.cr4 = v;
                self.dirty |= CleanBits::CRX;
            }
            Reg::Efer => {
                // SVME stays set for VMRUN, whatever the guest believes.
                s.efer = v | efer::SVME;
                self.dirty |= CleanBits::CRX;
            }
            Reg::Dr6 => {
                s.dr6 = v;
                self.dirty |= CleanBits::DRX;
            }
            Reg::Dr7 => {
                s.dr7 = v;
                self.dirty |= CleanBits::DRX;
                if self.debug.dr7_written(v) {
                    self.set_dr_intercepts();
                }
            }
            Reg::Pat => {
                s.g_pat = v;
                self.dirty |= CleanBits::NP;
            }
            Reg::SysenterCs => s.sysenter_cs = v,
            Reg::SysenterEsp => s.sysenter_esp = v,
            Reg::SysenterEip => s.sysenter_eip = v,
            Reg::Cpl => {
                s.cpl = v as u8;
                self.dirty |= CleanBits::SEG;
            }
            // The MSR has 32 bits; the VMM refuses wider values (#GP).
            Reg::TscAux => self.tsc_aux = v as u32,
            // The guest reads CR8 from V_TPR without an exit.
            Reg::Cr8 => {
                let c = &mut self.vmcb.control;
                c.set_interrupt_control(c.interrupt_control().with_v_tpr((v & 0xF) as u8));
                self.dirty |= CleanBits::TPR;
            }
        }
    }

    pub fn seg(&self, r: SegReg) -> Segment {
        let s = &self.vmcb.save;
        match r {
            SegReg::Es => s.es,
            SegReg::Cs => s.cs,
            SegReg::Ss => s.ss,
            SegReg::Ds => s.ds,
            SegReg::Fs => s.fs,
            SegReg::Gs => s.gs,
            SegReg::Gdtr => s.gdtr,
            SegReg::Ldtr => s.ldtr,
            SegReg::Idtr => s.idtr,
            SegReg::Tr => s.tr,
        }
    }

    pub fn set_seg(&mut self, r: SegReg, v: Segment) {
        let s = &mut self.vmcb.save;
        match r {
            SegReg::Es => s.es = v,
            SegReg::Cs => s.cs = v,
            SegReg::Ss => s.ss = v,
            SegReg::Ds => s.ds = v,
            SegReg::Fs => s.fs = v,
            SegReg::Gs => s.gs = v,
            SegReg::Gdtr => s.gdtr = v,
            SegReg::Ldtr => s.ldtr = v,
            SegReg::Idtr => s.idtr = v,
            SegReg::Tr => s.tr = v,
        }
        self.dirty |= match r {
            SegReg::Gdtr | SegReg::Idtr => CleanBits::DT,
            _ => CleanBits::SEG,
        };
        self.state_changed = true;
        if r == SegReg::Ss {
            // CPL is SS.DPL.
            self.vmcb.save.cpl = v.attributes().dpl();
        }
    }

    /// Queues an event for delivery: exceptions and NMIs at the next VMRUN
    /// (EVENTINJ), external interrupts as soon as the guest can take them
    /// (V_IRQ; see [`events`] for why). Fails if the slot the event needs
    /// holds one the guest has not taken yet.
    pub fn inject(&mut self, ev: EventInj) -> bool {
        match events::inject(&mut self.vmcb, ev) {
            Some(dirty) => {
                self.dirty |= dirty;
                true
            }
            None => false,
        }
    }

    /// A posted external interrupt has not been taken by the guest yet.
    pub fn interrupt_posted(&self) -> bool {
        events::interrupt_posted(&self.vmcb)
    }

    /// Takes back the posted external interrupt the guest has not taken yet
    /// and returns its vector (`None` if none is posted).
    pub fn withdraw_interrupt(&mut self) -> Option<u8> {
        let (vector, dirty) = events::withdraw_interrupt(&mut self.vmcb)?;
        self.dirty |= dirty;
        Some(vector)
    }

    /// Traps (or stops trapping) the guest's IRET.
    pub fn set_iret_intercept(&mut self, on: bool) {
        let c = &mut self.vmcb.control;
        let cur = c.misc1_intercepts();
        c.set_misc1_intercepts(if on { cur | InterceptMisc1::IRET } else { cur - InterceptMisc1::IRET });
        self.dirty |= CleanBits::INTERCEPTS;
    }

    /// Traps (or stops trapping) a guest exception vector.
    pub fn set_exception_intercept(&mut self, vector: u8, on: bool) {
        let c = &mut self.vmcb.control;
        let v = ExceptionIntercepts::vector(vector);
        let cur = c.exception_intercepts();
        c.set_exception_intercepts(if on { cur | v } else { cur - v });
        self.dirty |= CleanBits::INTERCEPTS;
    }
}

/// A VM: what its VMCBs point at (nested page table, RAM, I/O and MSR
/// permission maps: [`VmSpace`]), the generation of its nested page table
/// (bumped whenever a translation is removed or weakened), and its CPU
/// model.
pub struct Vm {
    space: VmSpace,
    pub npt_generation: u64,
    /// The virtual CPU its vCPUs' CPUID describes.
    pub cpuid: cpuid::CpuModel,
    /// What that CPUID tells the guest about its page tables, for the
    /// kernel's walks of them.
    pub walk_limits: WalkLimits,
    /// Port reads whose value the VMM declared constant: the world switch
    /// answers them (`arch::svm::InPlace`).
    constant_ports: ConstantPorts,
    /// MMIO reads whose value the VMM declared constant: the fast path
    /// answers them (`syscall::constant_mmio`).
    constant_mmio: constant_mmio::ConstantMmio,
}

impl Vm {
    /// A VM with frames from `pool`, no RAM, every I/O port and every MSR
    /// but those the world switch swaps intercepted, and CPU model `cpuid`.
    pub fn new(pool: PoolId, cpuid: cpuid::CpuModel) -> Result<Vm, FrameError> {
        // Leaves 8000_0001h and 8000_0008h are the same for every vCPU and state.
        let view = cpuid::GuestView { index: 0, cr4: 0, xcr0: xcr0::X87 };
        let walk_limits = WalkLimits::from_cpuid(|leaf, sub| {
            let r = cpuid.answer(leaf, sub, &view);
            [r.eax, r.ebx, r.ecx, r.edx]
        });
        Ok(Vm {
            space: VmSpace::new(pool)?,
            npt_generation: 0,
            cpuid,
            walk_limits,
            constant_ports: Default::default(),
            constant_mmio: Default::default(),
        })
    }

    /// Takes back a vCPU of this VM and frees its VMCB.
    pub fn release_vcpu(&mut self, vcpu: Vcpu) {
        self.space.release_vmcb(vcpu.vmcb);
    }

    /// Intercept (or pass through) a guest I/O port.
    pub fn set_io_intercept(&mut self, port: u16, intercept: bool) {
        self.space.set_io_intercept(port, intercept);
    }

    /// The VMM declares that an IN of `size` bytes from `port` always reads
    /// `value` and that reading it changes nothing: the kernel may answer
    /// it without the VMM. False if `size` (1, 2, 4) or `value` does not
    /// fit, or [`CONSTANT_PORTS`](crate::arch::svm::CONSTANT_PORTS) ports
    /// are declared already.
    pub fn declare_constant_port(&mut self, port: u16, size: u8, value: u32) -> bool {
        self.constant_ports.declare(port, size, value)
    }

    /// What an IN of `size` bytes from `port` reads, if the VMM declared it.
    pub fn constant_port(&self, port: u16, size: u8) -> Option<u32> {
        self.constant_ports.answer(port, size)
    }

    /// The VMM declares that a read of `size` bytes at `gpa` (MMIO, no
    /// RAM) always reads `value` and that reading it changes nothing (see
    /// [`ConstantMmio::declare`](constant_mmio::ConstantMmio::declare)).
    pub fn declare_constant_mmio(&mut self, gpa: u64, size: u8, value: u64) -> bool {
        self.constant_mmio.declare(gpa, size, value)
    }

    /// The MMIO reads the VMM declared constant.
    pub fn constant_mmio(&self) -> &constant_mmio::ConstantMmio {
        &self.constant_mmio
    }

    /// Maps `run`, zeroed, as guest RAM at `gpa` (see [`VmSpace::map_ram`]).
    pub fn map_ram(&mut self, gpa: u64, run: PhysRun) -> Result<(), MapError> {
        let flush = self.space.map_ram(gpa, run)?;
        if !flush.is_none() {
            self.npt_changed();
        }
        // A new ASID generation for the VM's vCPUs is the flush.
        flush.apply(|_| {});
        Ok(())
    }

    /// The VM's RAM, by guest-physical address.
    pub fn ram(&self) -> &VmSpace {
        &self.space
    }

    /// Records that the nested page table lost or weakened translations:
    /// every vCPU takes a fresh ASID before it runs again.
    pub fn npt_changed(&mut self) {
        self.npt_generation += 1;
    }
}
