//! The registers the kernel reads and writes for the VMM.

/// The guest registers the kernel reads and writes for the VMM.
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
    /// CR8, the task priority class (bits 7:4 of the local APIC's TPR);
    /// 4 bits, the VMCB's V_TPR.
    Cr8,
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

/// RAX after an IN of `size` bytes (1, 2 or 4) read `value`: IN to EAX
/// zero-extends into RAX; AL and AX keep the rest of RAX. `None` for
/// another size.
pub fn rax_after_in(rax: u64, size: u8, value: u32) -> Option<u64> {
    let mask = match size {
        1 => 0xFF,
        2 => 0xFFFF,
        4 => return Some(u64::from(value)),
        _ => return None,
    };
    Some((rax & !mask) | (u64::from(value) & mask))
}

/// Where the address of the instruction after an intercepted one came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextRipSource {
    /// The VMCB's next_rip (NRIPS).
    Nrips,
    /// EXITINFO2 of an IOIO exit (every SVM CPU has it).
    IoExitInfo,
    /// The instruction was decoded from guest memory.
    Decoded,
}
