//! SVM: enabling it on a CPU, and the world switch.
//!
//! The world switch follows AMD APM vol. 2, §15.5 (VMRUN), §15.6 (#VMEXIT)
//! and §15.17 (GIF): the host's hidden state (FS/GS/TR/LDTR, the SYSCALL
//! MSRs) is saved with VMSAVE and restored with VMLOAD around VMRUN, because
//! VMRUN itself saves only the host's core state (segments, CRs, EFER, RSP,
//! RIP, RAX) into the HSAVE area.
use super::cpu::{msr, rdmsr, wrmsr};
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

/// The legacy FXSAVE area: x87, MMX and SSE state (512 bytes).
#[repr(C, align(16))]
#[derive(Clone, Copy)]
pub struct FxArea(pub [u8; 512]);

impl FxArea {
    /// The state after FNINIT with MXCSR at its reset value: what a CPU has
    /// after RESET, so a new guest starts with sane FPU control words.
    pub const fn reset() -> FxArea {
        let mut a = [0u8; 512];
        a[0] = 0x7F; // FCW = 0x037F
        a[1] = 0x03;
        a[24] = 0x80; // MXCSR = 0x1F80
        a[25] = 0x1F;
        a[28] = 0xFF; // MXCSR_MASK = 0xFFFF (the bits we allow)
        a[29] = 0xFF;
        FxArea(a)
    }
}

/// What the world switch loads before VMRUN and stores after #VMEXIT.
#[repr(C, align(16))]
#[derive(Clone, Copy)]
pub struct GuestRegs {
    pub gprs: Gprs,
    _pad: u64,
    pub fpu: FxArea,
}

impl GuestRegs {
    pub const fn new() -> Self {
        GuestRegs {
            gprs: Gprs {
                rbx: 0,
                rcx: 0,
                rdx: 0,
                rsi: 0,
                rdi: 0,
                rbp: 0,
                r8: 0,
                r9: 0,
                r10: 0,
                r11: 0,
                r12: 0,
                r13: 0,
                r14: 0,
                r15: 0,
            },
            _pad: 0,
            fpu: FxArea::reset(),
        }
    }
}

impl Default for GuestRegs {
    fn default() -> Self {
        Self::new()
    }
}

const _: () = assert!(offset_of!(GuestRegs, fpu) % 16 == 0);

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
    // Guest x87/SSE state in; the host's is dead across this call (SysV: all
    // XMM registers are caller-saved; MXCSR/FCW are reset after the exit).
    "fxrstor64 [rdi + {fpu}]",
    // GIF=0 holds every interrupt; IF=1 lets a physical interrupt that
    // arrives while the guest runs cause #VMEXIT(INTR) (with V_INTR_MASKING
    // set, the host's IF, saved by VMRUN, gates physical interrupts).
    "clgi",
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
    // Guest x87/SSE state out, then a clean FPU for the host's Rust code.
    "fxsave64 [rdi + {fpu}]",
    "fninit",
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
    fpu = const offset_of!(GuestRegs, fpu),
);

unsafe extern "C" {
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
        wrmsr(msr::EFER, rdmsr(msr::EFER) | msr::EFER_SVME);
        wrmsr(msr::VM_HSAVE_PA, hsave);
    }
}

/// The world switch's handle on one guest VMCB.
///
/// # Safety
/// `vmcb_pa` must be the identity-mapped physical address of a VMCB page
/// owned by the caller, consistent enough for VMRUN (or VMRUN fails with
/// VMEXIT_INVALID, which is safe), and must not be in use on another CPU.
/// SVM must be enabled on `cpu`, the current CPU.
pub unsafe fn run(cpu: usize, regs: &mut GuestRegs, vmcb_pa: u64) {
    // SAFETY: the caller vouches for the VMCB; the host save page is this
    // CPU's own; `regs` is a valid exclusive reference.
    unsafe {
        let host_save = core::ptr::addr_of!(SVM_PAGES[cpu].host_save) as u64;
        svm_world_switch(regs, vmcb_pa, host_save);
    }
}

/// Invalidates the TLB entries of `asid` for the page at `va` (INVLPGA).
pub fn invlpga(va: u64, asid: u32) {
    // SAFETY: INVLPGA only drops TLB entries; SVM is enabled.
    unsafe { core::arch::asm!("invlpga rax, ecx", in("rax") va, in("ecx") asid, options(nostack, preserves_flags)) };
}

/// Runs the guest whose VMCB is `vmcb` on CPU `cpu` (the current one).
pub fn run_vmcb(cpu: usize, regs: &mut GuestRegs, vmcb: &super::phys::PhysBox<vmcb::Vmcb>) {
    debug_assert_eq!(cpu, super::cpu::current());
    // SAFETY: the VMCB is a frame we own (PhysBox); VMRUN checks its consistency itself and reports VMEXIT_INVALID
    // instead of running a bad one. SVM was enabled on every CPU at boot.
    unsafe { run(cpu, regs, vmcb.pa()) }
}
