//! The vm layer: SVM per CPU, VMCB lifecycle, nested page tables, the world
//! switch and exit decoding.
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
//! - the guest's GPRs, extended state (x87, SSE, AVX...), XCR0 and TSC_AUX
//!   are the guest's alone.
pub mod asid;
pub mod cpuid;
pub mod cr;
pub mod exit;
pub mod msr;
pub mod stats;

pub use exit::{ExitReason, RawExit, VmExit};

use crate::arch::phys::{PhysBox, PhysRun};
use crate::arch::svm::GuestRegs;
use asid::{AsidAllocator, AsidTag, TlbAction};
use vmcb::{
    CleanBits, CrSet, EventInj, ExceptionIntercepts, IntControl, InterceptMisc1, InterceptMisc2, Iopm, Msrpm,
    NestedControl, Segment, TlbControl, Vmcb,
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

/// Per-CPU vm-layer state.
pub struct CpuVm {
    pub cpu: usize,
    pub caps: SvmCaps,
    asids: AsidAllocator,
    /// What this CPU's TSC_AUX MSR holds: VMRUN does not switch it, so it
    /// is loaded only when the next guest's value differs.
    tsc_aux: u32,
}

impl CpuVm {
    pub fn new(cpu: usize, caps: SvmCaps) -> Self {
        CpuVm { cpu, caps, asids: AsidAllocator::new(cpu, caps.asids), tsc_aux: 0 }
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

/// The registers the syscall layer can read and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reg {
    Rax,
    Rbx,
    Rcx,
    Rdx,
    Rsi,
    Rdi,
    Rbp,
    Rsp,
    R8,
    R9,
    R10,
    R11,
    R12,
    R13,
    R14,
    R15,
    Rip,
    Rflags,
    Cr0,
    Cr2,
    Cr3,
    Cr4,
    Efer,
    Dr6,
    Dr7,
    Pat,
    SysenterCs,
    SysenterEsp,
    SysenterEip,
    Cpl,
    /// The TSC_AUX MSR (what RDTSCP and RDPID read); 32 bits.
    TscAux,
}

impl Reg {
    /// The general register with encoding `n` (0 = RAX ... 15 = R15).
    pub fn gpr(n: u8) -> Option<Reg> {
        use Reg::*;
        const GPRS: [Reg; 16] = [Rax, Rcx, Rdx, Rbx, Rsp, Rbp, Rsi, Rdi, R8, R9, R10, R11, R12, R13, R14, R15];
        GPRS.get(usize::from(n)).copied()
    }
}

/// The segment registers and descriptor tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegReg {
    Es,
    Cs,
    Ss,
    Ds,
    Fs,
    Gs,
    Gdtr,
    Ldtr,
    Idtr,
    Tr,
}

/// One virtual CPU: its VMCB, the registers the VMCB lacks, and what it
/// remembers between runs.
pub struct Vcpu {
    vmcb: PhysBox<Vmcb>,
    regs: GuestRegs,
    asid: AsidTag,
    /// VMCB fields written since the last VMRUN (for the clean bits).
    dirty: CleanBits,
    /// The CPU this vCPU last ran on, if any.
    last_cpu: Option<usize>,
    /// The VM's NPT generation this vCPU's ASID is known clean for.
    npt_generation: u64,
    last_exit: Option<(VmExit, RawExit)>,
    /// The reason and TSC of the last exit, until the next VMRUN closes its
    /// handling time.
    open_exit: Option<(ExitReason, u64)>,
    pub stats: stats::ExitStats,
    /// The CR4 bits and XCR0 components the guest's CPUID allows.
    cr4_allowed: u64,
    xcr0_supported: u64,
    /// The guest's TLB must be flushed before it runs again.
    tlb_flush_requested: bool,
    /// The guest's TSC_AUX, loaded into the MSR before VMRUN.
    tsc_aux: u32,
}

/// What an intercept setup for a fresh vCPU traps: everything the VMM must
/// see, nothing more.
fn default_intercepts(vmcb: &mut Vmcb) {
    let c = &mut vmcb.control;
    c.set_exception_intercepts(ExceptionIntercepts::MC);
    // CR4 writes are checked against the guest's CPUID (vm::cr).
    c.set_cr_write_intercepts(CrSet::CR4);
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

const EFER_SVME: u64 = 1 << 12;
const PAT_DEFAULT: u64 = 0x0007_0406_0007_0406;

impl Vcpu {
    /// A vCPU in the x86 reset state (real mode at F000:FFF0), whose VMCB
    /// lives in `vmcb_frame` and which uses the VM's IOPM, MSRPM and NPT.
    pub fn new(vmcb_frame: PhysRun, vm: &Vm) -> Result<Vcpu, PhysRun> {
        let mut vmcb = PhysBox::<Vmcb>::new_zeroed(vmcb_frame)?;
        default_intercepts(&mut vmcb);
        let c = &mut vmcb.control;
        c.iopm_base_pa = vm.iopm.pa();
        c.msrpm_base_pa = vm.msrpm.pa();
        c.set_nested_control(NestedControl::NP_ENABLE);
        c.n_cr3 = vm.npt_root;
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
        s.rflags = 0x2;
        s.cr0 = 0x6000_0010; // CD | NW | ET
        s.dr6 = 0xFFFF_0FF0;
        s.dr7 = 0x400;
        s.efer = EFER_SVME;
        s.g_pat = PAT_DEFAULT;
        Ok(Vcpu {
            vmcb,
            regs: GuestRegs::new(),
            asid: AsidTag::default(),
            dirty: CleanBits::all(),
            last_cpu: None,
            npt_generation: vm.npt_generation,
            last_exit: None,
            open_exit: None,
            stats: stats::ExitStats::new(),
            cr4_allowed: cr::cr4_allowed(&vm.cpuid),
            xcr0_supported: vm.cpuid.xcr0_supported(),
            tlb_flush_requested: false,
            tsc_aux: 0,
        })
    }

    /// Gives back the VMCB's frame.
    pub fn into_frame(self) -> PhysRun {
        self.vmcb.into_run()
    }

    /// Enters the guest on this CPU and returns when it exits.
    pub fn run(&mut self, cpu: &mut CpuVm, vm: &Vm) -> VmExit {
        // A nested page table that lost translations since we last ran: our
        // ASID's TLB entries may be stale; a fresh ASID has none.
        if self.npt_generation != vm.npt_generation {
            self.asid = AsidTag::default();
            self.npt_generation = vm.npt_generation;
        }
        let mut tlb =
            if self.take_tlb_flush(cpu.caps.flush_by_asid) { TlbControl::FlushThisAsid } else { TlbControl::DoNothing };
        match cpu.asids.ensure(&mut self.asid) {
            TlbAction::None => {}
            TlbAction::NewAsid => {
                self.vmcb.control.guest_asid = self.asid.asid;
                self.dirty |= CleanBits::ASID;
            }
            TlbAction::FlushAll => {
                self.vmcb.control.guest_asid = self.asid.asid;
                self.dirty |= CleanBits::ASID;
                tlb = TlbControl::FlushAll;
            }
        }
        self.vmcb.control.set_tlb_flush(tlb);
        // Clean bits are valid only for the CPU that cached this VMCB.
        let clean = if cpu.caps.vmcb_clean && self.last_cpu == Some(cpu.cpu) {
            CleanBits::all() - self.dirty
        } else {
            CleanBits::empty()
        };
        self.vmcb.control.set_clean_bits(clean);

        if let Some((reason, at)) = self.open_exit.take() {
            self.stats.record_time(reason, crate::arch::cpu::rdtsc().wrapping_sub(at));
        }
        cpu.load_tsc_aux(self.tsc_aux);
        crate::arch::svm::run_vmcb(cpu.cpu, &mut self.regs, &self.vmcb);
        let exited_at = crate::arch::cpu::rdtsc();

        self.last_cpu = Some(cpu.cpu);
        self.dirty = CleanBits::empty();
        let c = &mut self.vmcb.control;
        let raw = RawExit { code: c.exit_code, info1: c.exit_info1, info2: c.exit_info2, int_info: c.exit_int_info };
        // An event the exit interrupted is delivered again on the next run,
        // unless it was a software interrupt: its INT instruction re-runs.
        c.set_event_injection(EventInj::from_raw(0));
        if let Some(ev) = EventInj::from_exit_int_info(raw.int_info) {
            if ev.event_type() != Some(vmcb::EventType::SoftwareInterrupt) {
                c.set_event_injection(ev);
            }
        }
        let exit = VmExit::decode(&raw);
        self.last_exit = Some((exit, raw));
        self.stats.count(exit.reason());
        self.open_exit = Some((exit.reason(), exited_at));
        exit
    }

    /// Makes the next `run` flush this vCPU's TLB entries: the guest changed
    /// something (a CR4 paging bit) that hardware would have flushed on.
    pub fn request_tlb_flush(&mut self) {
        self.tlb_flush_requested = true;
    }

    /// Takes a requested flush: true if this VMRUN must flush the vCPU's
    /// ASID (the CPU can flush by ASID); without flush-by-ASID the vCPU
    /// drops its ASID instead, as after an NPT change.
    fn take_tlb_flush(&mut self, flush_by_asid: bool) -> bool {
        if !core::mem::take(&mut self.tlb_flush_requested) {
            return false;
        }
        if !flush_by_asid {
            self.asid = AsidTag::default();
        }
        flush_by_asid
    }

    /// What CPUID answers depend on in this vCPU's state.
    pub fn cpuid_view(&self, index: u32) -> cpuid::GuestView {
        cpuid::GuestView { index, cr4: self.vmcb.save.cr4, xcr0: self.regs.xcr0() }
    }

    pub fn last_exit(&self) -> Option<&(VmExit, RawExit)> {
        self.last_exit.as_ref()
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
            Reg::Efer => s.efer & !EFER_SVME,
            Reg::Dr6 => s.dr6,
            Reg::Dr7 => s.dr7,
            Reg::Pat => s.g_pat,
            Reg::SysenterCs => s.sysenter_cs,
            Reg::SysenterEsp => s.sysenter_esp,
            Reg::SysenterEip => s.sysenter_eip,
            Reg::Cpl => u64::from(s.cpl),
            Reg::TscAux => u64::from(self.tsc_aux),
        }
    }

    /// Writes a register, marking the VMCB fields it lives in dirty.
    pub fn set_reg(&mut self, r: Reg, v: u64) {
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
            Reg::Rflags => s.rflags = v | 0x2,
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
                s.efer = v | EFER_SVME;
                self.dirty |= CleanBits::CRX;
            }
            Reg::Dr6 => {
                s.dr6 = v;
                self.dirty |= CleanBits::DRX;
            }
            Reg::Dr7 => {
                s.dr7 = v;
                self.dirty |= CleanBits::DRX;
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
        if r == SegReg::Ss {
            // CPL is SS.DPL.
            self.vmcb.save.cpl = v.attributes().dpl();
        }
    }

    /// Queues an event for delivery at the next VMRUN. Fails if one is
    /// already queued and not yet delivered.
    pub fn inject(&mut self, ev: EventInj) -> bool {
        if self.vmcb.control.event_injection().is_valid() {
            return false;
        }
        self.vmcb.control.set_event_injection(ev);
        true
    }

    /// An event is queued and not yet delivered.
    pub fn event_pending(&self) -> bool {
        self.vmcb.control.event_injection().is_valid()
    }

    /// The guest is in an interrupt shadow (after STI or MOV SS).
    pub fn in_interrupt_shadow(&self) -> bool {
        self.vmcb.control.in_interrupt_shadow()
    }

    /// Asks for an exit as soon as the guest can take an external interrupt
    /// (the VINTR intercept with a dummy virtual interrupt), or cancels it.
    pub fn set_interrupt_window_exit(&mut self, on: bool) {
        let c = &mut self.vmcb.control;
        let ic = c.interrupt_control().with_v_irq(on).with_v_ign_tpr(on).with_v_intr_vector(0);
        c.set_interrupt_control(ic);
        let misc = c.misc1_intercepts();
        c.set_misc1_intercepts(if on { misc | InterceptMisc1::VINTR } else { misc - InterceptMisc1::VINTR });
        self.dirty |= CleanBits::TPR | CleanBits::INTERCEPTS;
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

/// A VM: its nested page table root, I/O and MSR permission maps, and the
/// generation of its nested page table (bumped whenever a translation is
/// removed or weakened).
pub struct Vm {
    pub npt_root: u64,
    pub npt_generation: u64,
    /// The virtual CPU its vCPUs' CPUID describes.
    pub cpuid: cpuid::CpuModel,
    iopm: PhysBox<Iopm>,
    msrpm: PhysBox<Msrpm>,
}

impl Vm {
    /// A VM whose I/O ports and MSRs are all intercepted, with the given
    /// nested page table root and CPU model.
    pub fn new(
        iopm_frames: PhysRun,
        msrpm_frames: PhysRun,
        npt_root: u64,
        cpuid: cpuid::CpuModel,
    ) -> Result<Vm, (PhysRun, PhysRun)> {
        let (iopm, msrpm) = match (PhysBox::<Iopm>::new_zeroed(iopm_frames), PhysBox::<Msrpm>::new_zeroed(msrpm_frames))
        {
            (Ok(i), Ok(m)) => (i, m),
            (Ok(i), Err(m)) => return Err((i.into_run(), m)),
            (Err(i), Ok(m)) => return Err((i, m.into_run())),
            (Err(i), Err(m)) => return Err((i, m)),
        };
        let mut vm = Vm { npt_root, npt_generation: 0, cpuid, iopm, msrpm };
        vm.iopm.fill(true);
        vm.msrpm.fill(true);
        Ok(vm)
    }

    pub fn into_frames(self) -> (PhysRun, PhysRun) {
        (self.iopm.into_run(), self.msrpm.into_run())
    }

    /// Intercept (or pass through) a guest I/O port.
    pub fn set_io_intercept(&mut self, port: u16, intercept: bool) {
        self.iopm.set_port(port, intercept);
    }

    /// Intercept (or pass through) guest reads and/or writes of an MSR.
    /// MSRs outside the MSRPM's ranges are always intercepted.
    pub fn set_msr_intercept(&mut self, msr: u32, access: vmcb::MsrAccess, intercept: bool) -> bool {
        self.msrpm.set(msr, access, intercept).is_ok()
    }

    /// Records that the nested page table lost or weakened translations:
    /// every vCPU takes a fresh ASID before it runs again.
    pub fn npt_changed(&mut self) {
        self.npt_generation += 1;
    }
}
