//! SVM: enabling it on a CPU, and the world switch.
//!
//! The world switch follows AMD APM vol. 2, §15.5 (VMRUN), §15.6 (#VMEXIT)
//! and §15.17 (GIF): the host's hidden state (FS/GS/TR/LDTR, the SYSCALL
//! MSRs) is saved with VMSAVE and restored with VMLOAD around VMRUN, because
//! VMRUN itself saves only the host's core state (segments, CRs, EFER, RSP,
//! RIP, RAX) into the HSAVE area.
use super::cpu::{msr, rdmsr, wrmsr};
use super::xsave::{self, XsaveArea};
use core::arch::global_asm;
use core::mem::offset_of;

/// The guest's general registers that the VMCB does not hold (RAX, RSP and
/// RIP live in its state save area).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gprs {
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
}

/// What the world switch loads before VMRUN and stores after #VMEXIT: the
/// general registers the VMCB lacks and the extended (x87/SSE/AVX...)
/// state, with the XCR0 that goes with it.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
pub struct GuestRegs {
    pub gprs: Gprs,
    /// The guest's XCR0 (1, x87 only, after RESET). Changed by
    /// [`Self::set_xcr0`], which accepts only values valid for the host's
    /// XCR0, and by the world switch, which records the XCR0 the CPU held at
    /// #VMEXIT: a value the CPU itself accepted.
    xcr0: u64,
    /// The host's XCR0 while this vCPU does not run; 0 on a CPU without
    /// XSAVE, where the switch uses FXSAVE/FXRSTOR.
    host_xcr0: u64,
    /// Loaded by XRSTOR, which faults in the host on a malformed area: only
    /// the world switch writes it.
    xstate: XsaveArea,
    /// Non-zero on a CPU whose FXRSTOR/XRSTOR leave the x87 error pointers
    /// alone unless an exception is pending (AMD without XSAVEERPTR).
    x87_pointer_fix: u64,
}

impl GuestRegs {
    /// Registers after RESET, for a vCPU that will run on this host.
    pub fn new() -> Self {
        GuestRegs {
            gprs: Gprs::default(),
            xcr0: guest_x86::regs::xcr0::X87,
            host_xcr0: xsave::host_xcr0(),
            xstate: XsaveArea::reset(),
            x87_pointer_fix: u64::from(xsave::needs_x87_pointer_fix()),
        }
    }

    pub fn xcr0(&self) -> u64 {
        self.xcr0
    }

    /// Sets the XCR0 the guest runs with. Refuses (false) a value that
    /// XSETBV would reject or that names a component the host does not
    /// switch: the world switch loads it with XSETBV.
    pub fn set_xcr0(&mut self, xcr0: u64) -> bool {
        let ok = xsave::valid_xcr0(xcr0, self.host_xcr0);
        if ok {
            self.xcr0 = xcr0;
        }
        ok
    }
}

impl Default for GuestRegs {
    fn default() -> Self {
        Self::new()
    }
}

const _: () = assert!(offset_of!(GuestRegs, xstate) % 64 == 0);

// The world switch. Called as
//     svm_world_switch(regs: *mut GuestRegs, guest_vmcb_pa: u64, host_save_pa: u64)
// with interrupts disabled (IF=0) and GIF=1. Returns after the next #VMEXIT
// with the guest's registers in `regs` and the exit recorded in the VMCB.
global_asm!(
    ".pushsection .text.svm_world_switch, \"ax\"",
    ".global svm_world_switch",
    "svm_world_switch:",
    // SysV callee-saved registers: the guest will clobber them all.
    "push rbp",
    "push rbx",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "push rdi", // [rsp+8] after the next push: the GuestRegs pointer
    "push rdx", // [rsp]: the host save area, for VMLOAD after the exit
    // Host hidden state -> host save area (APM 15.5.2: VMRUN does not save it).
    "mov rax, rdx",
    "vmsave rax",
    // GIF=0 holds every interrupt; IF=1 lets a physical interrupt that
    // arrives while the guest runs cause #VMEXIT(INTR) (with V_INTR_MASKING
    // set, the host's IF, saved by VMRUN, gates physical interrupts).
    "clgi",
    // On a CPU that restores FIP/FDP/FOP only with an exception pending,
    // give them values of our own first (what Linux does for its tasks), so
    // that the last x87 pointers of another guest do not survive into this
    // one's FNSTENV.
    "cmp qword ptr [rdi + {x87_pointer_fix}], 0",
    "je 7f",
    "fnclex",
    "emms",
    "fild dword ptr [rdi + {x87_pointer_fix}]",
    "7:",
    // Guest extended state in, after CLGI so that not even an NMI can run
    // host code on it. The host's is dead across this call (SysV: every
    // vector register is caller-saved; MXCSR is reset after the exit).
    // x87 and SSE are always restored, whatever the guest's XCR0 says: SSE
    // works without XCR0.SSE. The restore runs under the host's XCR0 (a
    // superset of the guest's), then XCR0 becomes the guest's.
    "mov r8, [rdi + {host_xcr0}]",
    "test r8, r8",
    "jz 2f",
    "mov rax, [rdi + {xcr0}]",
    "or rax, {x87_sse}",
    "mov rdx, rax",
    "shr rdx, 32",
    "xrstor64 [rdi + {xstate}]",
    "mov rax, [rdi + {xcr0}]",
    "cmp rax, r8",
    "je 3f",
    "mov rdx, rax",
    "shr rdx, 32",
    "xor ecx, ecx",
    "xsetbv",
    "jmp 3f",
    "2:", // no XSAVE: the legacy region only
    "fxrstor64 [rdi + {xstate}]",
    "3:",
    "sti",
    "mov rax, rsi",
    "vmload rax", // guest FS/GS/TR/LDTR and SYSCALL MSRs from the guest VMCB
    "mov rbx, [rdi + {rbx}]",
    "mov rcx, [rdi + {rcx}]",
    "mov rdx, [rdi + {rdx}]",
    "mov rsi, [rdi + {rsi}]",
    "mov rbp, [rdi + {rbp}]",
    "mov r8,  [rdi + {r8}]",
    "mov r9,  [rdi + {r9}]",
    "mov r10, [rdi + {r10}]",
    "mov r11, [rdi + {r11}]",
    "mov r12, [rdi + {r12}]",
    "mov r13, [rdi + {r13}]",
    "mov r14, [rdi + {r14}]",
    "mov r15, [rdi + {r15}]",
    "mov rdi, [rdi + {rdi}]",
    // Run the guest. At #VMEXIT the CPU restores the host's RSP, RIP, RAX
    // (= the guest VMCB address), RFLAGS (IF=1) and segments; GIF is 0.
    "vmrun rax",
    ".global svm_vmexit_rip",
    "svm_vmexit_rip:",
    "vmsave rax", // guest hidden state back into the guest VMCB
    "push rdi",   // guest RDI; the GuestRegs pointer is now at [rsp+16]
    "mov rdi, [rsp + 16]",
    "mov [rdi + {rbx}], rbx",
    "mov [rdi + {rcx}], rcx",
    "mov [rdi + {rdx}], rdx",
    "mov [rdi + {rsi}], rsi",
    "mov [rdi + {rbp}], rbp",
    "mov [rdi + {r8}],  r8",
    "mov [rdi + {r9}],  r9",
    "mov [rdi + {r10}], r10",
    "mov [rdi + {r11}], r11",
    "mov [rdi + {r12}], r12",
    "mov [rdi + {r13}], r13",
    "mov [rdi + {r14}], r14",
    "mov [rdi + {r15}], r15",
    "pop qword ptr [rdi + {rdi}]",
    // Guest extended state out, still at GIF=0. XCR0 as the guest left it
    // (QEMU's TCG does not intercept XSETBV, so the guest may have changed
    // it without an exit), then the host's XCR0 back, so that XSAVE stores
    // every component the guest can reach.
    "mov r8, [rdi + {host_xcr0}]",
    "test r8, r8",
    "jz 4f",
    "xor ecx, ecx",
    "xgetbv",
    "shl rdx, 32",
    "or rax, rdx",
    "mov [rdi + {xcr0}], rax",
    "cmp rax, r8",
    "je 5f",
    "mov rax, r8",
    "mov rdx, r8",
    "shr rdx, 32",
    "xsetbv",
    "5:",
    "mov rax, [rdi + {xcr0}]",
    "or rax, {x87_sse}",
    "mov rdx, rax",
    "shr rdx, 32",
    "xsave64 [rdi + {xstate}]",
    "jmp 6f",
    "4:",
    "fxsave64 [rdi + {xstate}]",
    "6:",
    // The host's Rust code uses SSE, never x87: only the guest's MXCSR
    // (exception masks, rounding, DAZ/FTZ) must not reach it.
    "push 0x1F80",
    "ldmxcsr [rsp]",
    "add rsp, 8",
    "pop rax",
    "vmload rax", // host hidden state back
    // GIF=1 with IF=1: a physical interrupt that caused the exit (or came
    // in since) is taken here, on its IST stack, by the host's handler.
    "stgi",
    "cli",
    "add rsp, 8", // the GuestRegs pointer
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbx",
    "pop rbp",
    "ret",
    ".popsection",
    rbx = const offset_of!(Gprs, rbx),
    rcx = const offset_of!(Gprs, rcx),
    rdx = const offset_of!(Gprs, rdx),
    rsi = const offset_of!(Gprs, rsi),
    rdi = const offset_of!(Gprs, rdi),
    rbp = const offset_of!(Gprs, rbp),
    r8 = const offset_of!(Gprs, r8),
    r9 = const offset_of!(Gprs, r9),
    r10 = const offset_of!(Gprs, r10),
    r11 = const offset_of!(Gprs, r11),
    r12 = const offset_of!(Gprs, r12),
    r13 = const offset_of!(Gprs, r13),
    r14 = const offset_of!(Gprs, r14),
    r15 = const offset_of!(Gprs, r15),
    xcr0 = const offset_of!(GuestRegs, xcr0),
    host_xcr0 = const offset_of!(GuestRegs, host_xcr0),
    xstate = const offset_of!(GuestRegs, xstate),
    x87_pointer_fix = const offset_of!(GuestRegs, x87_pointer_fix),
    x87_sse = const guest_x86::regs::xcr0::X87 | guest_x86::regs::xcr0::SSE,
);

unsafe extern "C" {
    #[cfg_attr(test, allow(dead_code))]
    fn svm_world_switch(regs: *mut GuestRegs, guest_vmcb_pa: u64, host_save_pa: u64);
    /// The instruction after VMRUN: where the host resumes at #VMEXIT.
    static svm_vmexit_rip: u8;
}

/// The address at which the host resumes after #VMEXIT.
pub fn vmexit_rip() -> u64 {
    core::ptr::addr_of!(svm_vmexit_rip) as u64
}

/// A 4 KiB, 4 KiB-aligned page used by the CPU itself (HSAVE, host save area).
#[repr(C, align(4096))]
pub struct CpuPage(pub [u8; 4096]);

/// Per-CPU SVM pages.
struct SvmPages {
    hsave: CpuPage,
    #[cfg_attr(test, allow(dead_code))] // host tests script the world switch
    host_save: CpuPage,
}

static mut SVM_PAGES: [SvmPages; super::gdt::MAX_CPUS] =
    [const { SvmPages { hsave: CpuPage([0; 4096]), host_save: CpuPage([0; 4096]) } }; super::gdt::MAX_CPUS];

/// Turns SVM on for CPU `cpu`: EFER.SVME and the host save area (VM_HSAVE_PA).
/// The caller has checked CPUID and VM_CR (see `Features::missing`).
pub fn enable(cpu: usize) {
    assert!(cpu < super::gdt::MAX_CPUS);
    // SAFETY: the static lives for the kernel's life, is identity-mapped, and each CPU uses only its own slot.
    // EFER.SVME only enables SVM instructions; VM_HSAVE_PA names a page only the CPU writes.
    unsafe {
        let hsave = core::ptr::addr_of!(SVM_PAGES[cpu].hsave) as u64;
        wrmsr(msr::EFER, rdmsr(msr::EFER) | guest_x86::regs::efer::SVME);
        wrmsr(msr::VM_HSAVE_PA, hsave);
    }
}

/// Runs the guest whose VMCB is `vmcb` on CPU `cpu` (the current one),
/// until its next #VMEXIT. In host tests the world switch is scripted
/// (`arch::sim`).
pub fn run_vmcb(cpu: usize, regs: &mut GuestRegs, vmcb: &mut super::vmspace::GuestVmcb) {
    debug_assert_eq!(cpu, super::cpu::current());
    #[cfg(not(test))]
    {
        // The VMCB is bound to its VmSpace, whose nested page table and permission maps stay allocated while the
        // VMCB exists and let the guest reach only its own RAM, the ports the VMM passed through and the MSRs the
        // switch swaps; `vmcb` keeps the pointers and the intercepts that guard them out of safe code's reach.
        // SAFETY: as above; VMRUN checks the rest of the state (VMEXIT_INVALID). The host save page is this CPU's
        // own, SVM was enabled on every CPU at boot, and `&mut` keeps the VMCB off other CPUs.
        unsafe {
            let host_save = core::ptr::addr_of!(SVM_PAGES[cpu].host_save) as u64;
            svm_world_switch(regs, vmcb.pa(), host_save);
        }
    }
    #[cfg(test)]
    super::sim::world_switch(regs, vmcb);
}

/// Invalidates the TLB entries of `asid` for the page at `va` (INVLPGA).
pub fn invlpga(va: u64, asid: u32) {
    // SAFETY: INVLPGA only drops TLB entries; SVM is enabled.
    unsafe { core::arch::asm!("invlpga rax, ecx", in("rax") va, in("ecx") asid, options(nostack, preserves_flags)) };
}
