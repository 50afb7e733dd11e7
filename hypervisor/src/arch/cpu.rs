//! CPU identification, model-specific registers, control registers.
use core::arch::asm;
use core::fmt;
use raw_cpuid::CpuId;

pub mod msr {
    pub use guest_x86::regs::efer::MSR as EFER;
    pub const VM_CR: u32 = 0xC001_0114;
    pub const VM_HSAVE_PA: u32 = 0xC001_0117;
    pub const FS_BASE: u32 = 0xC000_0100;
    pub const GS_BASE: u32 = 0xC000_0101;
    pub const KERNEL_GS_BASE: u32 = 0xC000_0102;
    pub const PAT: u32 = 0x277;
    pub const APIC_BASE: u32 = 0x1B;
    pub const TSC: u32 = 0x10;
    pub const TSC_AUX: u32 = 0xC000_0103;

    /// VM_CR.SVMDIS: firmware turned SVM off.
    pub const VM_CR_SVMDIS: u64 = 1 << 4;
}

/// Reads an MSR.
///
/// # Safety
/// `msr` must exist on this CPU (or the read faults) and reading it must not
/// have side effects the caller does not own.
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: delegated to the caller.
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Writes an MSR.
///
/// # Safety
/// The write must keep the kernel's memory and execution model intact.
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: delegated to the caller.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack, preserves_flags))
    };
}

pub fn read_cr0() -> u64 {
    let v;
    // SAFETY: reading CR0 has no side effects.
    unsafe { asm!("mov {}, cr0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}
pub fn read_cr2() -> u64 {
    let v;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}
pub fn read_cr3() -> u64 {
    let v;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}
pub fn read_cr4() -> u64 {
    let v;
    // SAFETY: reading CR4 has no side effects.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Sets CR4 bits.
///
/// # Safety
/// The bits must be supported and must not change the memory model under the
/// running code (PAE, PGE, LA57...).
pub unsafe fn set_cr4_bits(bits: u64) {
    let v = read_cr4() | bits;
    // SAFETY: delegated to the caller.
    unsafe { asm!("mov cr4, {}", in(reg) v, options(nostack, preserves_flags)) };
}

/// The host's CPUID(`leaf`, `subleaf`) as [EAX, EBX, ECX, EDX].
pub fn cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    let r = raw_cpuid::cpuid!(leaf, subleaf);
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// Writes TSC_AUX (what RDTSCP and RDPID read); only on a CPU that has it
/// (`Features::tsc_aux`).
pub fn write_tsc_aux(value: u32) {
    // SAFETY: callers check that the MSR exists; the host itself never reads TSC_AUX, and the value has no reserved
    // bits set (bits 63:32 are zero).
    unsafe { wrmsr(msr::TSC_AUX, u64::from(value)) };
}

/// The time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects; CR4.TSD is clear.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Per-CPU block that GS points to; its first word is the CPU's index.
#[repr(C, align(64))]
struct PerCpu {
    index: usize,
}

static PER_CPU: [PerCpu; super::gdt::MAX_CPUS] = {
    let mut a = [const { PerCpu { index: 0 } }; super::gdt::MAX_CPUS];
    let mut i = 0;
    while i < a.len() {
        a[i].index = i;
        i += 1;
    }
    a
};

/// Points GS at CPU `cpu`'s per-CPU block.
pub fn set_current(cpu: usize) {
    let block = &PER_CPU[cpu] as *const PerCpu as u64;
    // SAFETY: GS is the kernel's; the block is static. The world switch
    // restores the host's GS base (VMLOAD) before any host code runs.
    unsafe {
        wrmsr(msr::GS_BASE, block);
        wrmsr(msr::KERNEL_GS_BASE, 0);
    }
}

/// The index of the CPU this code runs on (0 is the boot CPU).
#[cfg(not(test))]
pub fn current() -> usize {
    let i: usize;
    // SAFETY: GS points to this CPU's static block (set_current at boot).
    unsafe { asm!("mov {}, gs:[0]", out(reg) i, options(readonly, nostack, preserves_flags)) };
    i
}

/// In host tests: the one simulated CPU.
#[cfg(test)]
pub fn current() -> usize {
    0
}

/// Lets interrupts in until the next one has been handled, then masks them
/// again. STI's one-instruction shadow makes `sti; hlt` atomic, so an
/// interrupt that is already pending wakes the HLT instead of being lost.
#[cfg(not(test))]
pub fn wait_for_interrupt() {
    // SAFETY: handlers run on IST stacks and return; IF is 0 again after.
    unsafe { asm!("sti", "hlt", "cli", options(nomem, nostack)) };
}

/// In host tests: the simulated timer fires.
#[cfg(test)]
pub fn wait_for_interrupt() {
    super::sim::wait_for_interrupt()
}

/// Stops this CPU for good.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: with interrupts off, HLT just parks the CPU.
        unsafe { asm!("cli; hlt", options(nomem, nostack)) };
    }
}

/// What this CPU offers the hypervisor, read once at boot.
#[derive(Debug, Clone, Copy, Default)]
pub struct Features {
    pub vendor: [u8; 12],
    pub svm: bool,
    pub svm_disabled_by_firmware: bool,
    pub svm_revision: u8,
    pub asids: u32,
    pub npt: bool,
    pub nrips: bool,
    pub decode_assists: bool,
    pub vmcb_clean: bool,
    pub flush_by_asid: bool,
    pub vgif: bool,
    pub xsave: bool,
    /// The host's XCR0 after `arch::xsave::init` (0: XSAVE is not used).
    pub xcr0: u64,
    pub nx: bool,
    pub gb_pages: bool,
    /// RDTSCP or RDPID, and with them the TSC_AUX MSR.
    pub tsc_aux: bool,
    pub in_hypervisor: bool,
}

impl Features {
    pub fn detect() -> Features {
        let cpuid = CpuId::new();
        let mut f = Features::default();
        if let Some(v) = cpuid.get_vendor_info() {
            f.vendor.copy_from_slice(v.as_str().as_bytes());
        }
        if let Some(fi) = cpuid.get_feature_info() {
            f.xsave = fi.has_xsave();
            f.in_hypervisor = fi.has_hypervisor();
        }
        if let Some(ext) = cpuid.get_extended_processor_and_feature_identifiers() {
            f.svm = ext.has_svm();
            f.nx = ext.has_execute_disable();
            f.gb_pages = ext.has_1gib_pages();
            f.tsc_aux = ext.has_rdtscp();
        }
        if let Some(ef) = cpuid.get_extended_feature_info() {
            f.tsc_aux |= ef.has_rdpid();
        }
        if f.svm {
            if let Some(s) = cpuid.get_svm_info() {
                f.svm_revision = s.revision();
                f.asids = s.supported_asids();
                f.npt = s.has_nested_paging();
                f.nrips = s.has_nrip();
                f.decode_assists = s.has_decode_assists();
                f.vmcb_clean = s.has_vmcb_clean_bits();
                f.flush_by_asid = s.has_flush_by_asid();
                f.vgif = s.has_gif();
            }
            // SAFETY: VM_CR exists on every CPU that reports SVM.
            let vm_cr = unsafe { rdmsr(msr::VM_CR) };
            f.svm_disabled_by_firmware = vm_cr & msr::VM_CR_SVMDIS != 0;
        }
        f
    }

    pub fn vendor_str(&self) -> &str {
        core::str::from_utf8(&self.vendor).unwrap_or("?")
    }

    /// What is missing for the hypervisor to run, if anything.
    pub fn missing(&self) -> Option<&'static str> {
        if !self.svm {
            Some("the CPU has no AMD SVM (CPUID 8000_0001h ECX bit 2)")
        } else if self.svm_disabled_by_firmware {
            Some("SVM is disabled by firmware (VM_CR.SVMDIS is set)")
        } else if !self.npt {
            Some("the CPU has no nested paging (CPUID 8000_000Ah EDX bit 0, NP)")
        } else {
            None
        }
    }
}

impl fmt::Display for Features {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yn = |b: bool| if b { "yes" } else { "no" };
        write!(
            f,
            "cpu: vendor={} svm={} svm-rev={} asids={} np={} nrips={} decode-assists={} vmcb-clean={} flush-by-asid={} vgif={} xsave={} xcr0={:#x}",
            self.vendor_str(),
            yn(self.svm && !self.svm_disabled_by_firmware),
            self.svm_revision,
            self.asids,
            yn(self.npt),
            yn(self.nrips),
            yn(self.decode_assists),
            yn(self.vmcb_clean),
            yn(self.flush_by_asid),
            yn(self.vgif),
            yn(self.xsave),
            self.xcr0,
        )
    }
}

/// A host exception raised on purpose (`test-fault=` on the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestFault {
    /// `ud2`: invalid opcode, vector 6.
    InvalidOpcode,
    /// A read from an unmapped address: page fault, vector 14.
    PageFault,
    /// A read from a non-canonical address: general protection, vector 13.
    GeneralProtection,
    /// Unbounded recursion on the boot stack: a page fault on its guard page.
    StackOverflow,
}

/// Raises the host exception `fault` on purpose, to show that the
/// exception path reports it.
pub fn raise_test_fault(fault: TestFault) {
    match fault {
        // SAFETY: ud2 traps at once; the exception handler never returns.
        TestFault::InvalidOpcode => unsafe { asm!("ud2", options(nomem, nostack)) },
        TestFault::PageFault => {
            // 64 GiB is above the boot identity map, so the read faults.
            // SAFETY: the read traps before it can observe anything.
            let _ = unsafe { core::ptr::read_volatile(0x10_0000_0000 as *const u64) };
        }
        TestFault::StackOverflow => {
            #[allow(unconditional_recursion)]
            fn recurse(depth: u64) -> u64 {
                let frame = core::hint::black_box([depth; 64]);
                recurse(depth + 1).wrapping_add(frame[depth as usize % 64])
            }
            core::hint::black_box(recurse(0));
        }
        TestFault::GeneralProtection => {
            // SAFETY: a non-canonical address traps before any access.
            let _ = unsafe { core::ptr::read_volatile(0x8000_0000_0000_0000 as *const u64) };
        }
    }
}
