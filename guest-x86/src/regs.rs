//! The architectural bits of the x86 control, flags and extended-control
//! registers: the one definition every crate of the workspace uses (the
//! kernel, the VMM, the VMCB checks, the decoder and page walker).
//!
//! Sources: AMD APM vol. 2, §3.1.1 (CR0), §3.1.3 (CR4), §3.1.7 (EFER),
//! §3.1.6 (RFLAGS), §11.5.2 (XCR0); Intel SDM vol. 1, §3.4.3 and §13.3.

/// CR0 (APM vol. 2, figure 3-1).
pub mod cr0 {
    /// Protection enabled.
    pub const PE: u64 = 1 << 0;
    /// Monitor coprocessor.
    pub const MP: u64 = 1 << 1;
    /// x87 emulation.
    pub const EM: u64 = 1 << 2;
    /// Task switched.
    pub const TS: u64 = 1 << 3;
    /// Extension type: reads as 1 on every x86-64 CPU.
    pub const ET: u64 = 1 << 4;
    /// Numeric error: native x87 error reporting.
    pub const NE: u64 = 1 << 5;
    /// Write protect: supervisor writes honour read-only pages.
    pub const WP: u64 = 1 << 16;
    /// Alignment mask.
    pub const AM: u64 = 1 << 18;
    /// Not write-through.
    pub const NW: u64 = 1 << 29;
    /// Cache disable.
    pub const CD: u64 = 1 << 30;
    /// Paging enabled.
    pub const PG: u64 = 1 << 31;
}

/// CR4 (APM vol. 2, figure 3-7).
pub mod cr4 {
    pub const VME: u64 = 1 << 0;
    pub const PVI: u64 = 1 << 1;
    pub const TSD: u64 = 1 << 2;
    pub const DE: u64 = 1 << 3;
    /// 4 MiB pages in 32-bit paging.
    pub const PSE: u64 = 1 << 4;
    /// 64-bit page-table entries.
    pub const PAE: u64 = 1 << 5;
    pub const MCE: u64 = 1 << 6;
    pub const PGE: u64 = 1 << 7;
    pub const PCE: u64 = 1 << 8;
    pub const OSFXSR: u64 = 1 << 9;
    pub const OSXMMEXCPT: u64 = 1 << 10;
    pub const UMIP: u64 = 1 << 11;
    /// Five-level paging.
    pub const LA57: u64 = 1 << 12;
    pub const VMXE: u64 = 1 << 13;
    pub const SMXE: u64 = 1 << 14;
    pub const FSGSBASE: u64 = 1 << 16;
    pub const PCIDE: u64 = 1 << 17;
    /// XSAVE and XCR0 enabled.
    pub const OSXSAVE: u64 = 1 << 18;
    /// Supervisor fetches from user pages fault.
    pub const SMEP: u64 = 1 << 20;
    pub const SMAP: u64 = 1 << 21;
    pub const PKE: u64 = 1 << 22;
    pub const CET: u64 = 1 << 23;
    /// VME through OSXMMEXCPT: the bits every x86-64 CPU implements.
    pub const BASELINE: u64 = 0x7FF;
}

/// EFER, MSR 0xC000_0080 (APM vol. 2, figure 3-9).
pub mod efer {
    /// The MSR's index.
    pub const MSR: u32 = 0xC000_0080;
    /// SYSCALL/SYSRET enabled.
    pub const SCE: u64 = 1 << 0;
    /// Long mode enabled.
    pub const LME: u64 = 1 << 8;
    /// Long mode active (CR0.PG with LME).
    pub const LMA: u64 = 1 << 10;
    /// The no-execute page bit is enabled.
    pub const NXE: u64 = 1 << 11;
    /// SVM enabled.
    pub const SVME: u64 = 1 << 12;
    /// Long-mode segment limits.
    pub const LMSLE: u64 = 1 << 13;
    /// Fast FXSAVE/FXRSTOR.
    pub const FFXSR: u64 = 1 << 14;
    /// Translation cache extension.
    pub const TCE: u64 = 1 << 15;
}

/// RFLAGS (APM vol. 2, figure 3-5).
pub mod rflags {
    pub const CF: u64 = 1 << 0;
    /// Bit 1 reads as 1.
    pub const FIXED: u64 = 1 << 1;
    pub const PF: u64 = 1 << 2;
    pub const AF: u64 = 1 << 4;
    pub const ZF: u64 = 1 << 6;
    pub const SF: u64 = 1 << 7;
    /// Trap flag: single-step.
    pub const TF: u64 = 1 << 8;
    /// Interrupts enabled.
    pub const IF: u64 = 1 << 9;
    pub const DF: u64 = 1 << 10;
    pub const OF: u64 = 1 << 11;
    /// Virtual-8086 mode.
    pub const VM: u64 = 1 << 17;
    /// The status flags arithmetic sets.
    pub const STATUS: u64 = CF | PF | AF | ZF | SF | OF;
}

/// XCR0, the state components XSAVE manages (APM vol. 2, §11.5.2).
pub mod xcr0 {
    /// x87 state. Always set in a valid XCR0.
    pub const X87: u64 = 1 << 0;
    /// SSE state (XMM0-15, MXCSR).
    pub const SSE: u64 = 1 << 1;
    /// AVX state (the upper halves of YMM0-15).
    pub const AVX: u64 = 1 << 2;
    /// AVX-512 opmask, ZMM_Hi256 and Hi16_ZMM state: set together or not at all.
    pub const AVX512: u64 = 0b111 << 5;
}
