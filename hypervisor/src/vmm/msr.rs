//! The guest's view of the MSRs the VMM intercepts.
//!
//! MSRs whose guest values live in the VMCB are passed through by the vm
//! layer. The rest are listed here: each is emulated, or refused with #GP(0)
//! as a CPU without that MSR would.

/// What a guest RDMSR/WRMSR does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsrAction {
    /// RDMSR returns this value.
    Value(u64),
    /// Use the guest's EFER / PAT as the vCPU holds it.
    Efer,
    Pat,
    /// The guest's TSC.
    Tsc,
    /// WRMSR is accepted and has no effect.
    Ignore,
    /// #GP(0).
    Refuse,
}

pub const EFER: u32 = 0xC000_0080;
pub const PAT: u32 = 0x277;
pub const EFER_LMA: u64 = 1 << 10;
pub const EFER_LME: u64 = 1 << 8;

/// EFER bits a guest may set: SCE, LME, LMA (kept by the CPU), NXE, FFXSR.
pub const EFER_WRITABLE: u64 = (1 << 0) | (1 << 8) | (1 << 10) | (1 << 11) | (1 << 14);

/// What RDMSR of `msr` does.
pub fn read(msr: u32) -> MsrAction {
    match msr {
        EFER => MsrAction::Efer,
        PAT => MsrAction::Pat,
        0x10 => MsrAction::Tsc,
        // APIC_BASE: the xAPIC address, this is the BSP; the APIC is not
        // advertised (CPUID) and not enabled.
        0x1B => MsrAction::Value(0xFEE0_0000 | (1 << 8)),
        // Microcode patch level.
        0x8B => MsrAction::Value(0),
        // MISC_ENABLE: fast strings.
        0x1A0 => MsrAction::Value(1),
        // AMD: SYSCFG, HWCR, NB_CFG read as plain defaults.
        0xC001_0010 | 0xC001_0015 | 0xC001_001F => MsrAction::Value(0),
        // AMD DE_CFG: LFENCE is dispatch-serialising (bit 1), as Linux wants.
        0xC001_1029 => MsrAction::Value(1 << 1),
        _ => MsrAction::Refuse,
    }
}

/// What WRMSR of `value` to `msr` does.
pub fn write(msr: u32, value: u64) -> MsrAction {
    match msr {
        EFER if value & !EFER_WRITABLE == 0 => MsrAction::Efer,
        PAT if valid_pat(value) => MsrAction::Pat,
        // Writes that change nothing we model.
        0x10 | 0x1B | 0x1A0 | 0xC001_0015 | 0xC001_001F | 0xC001_1029 => MsrAction::Ignore,
        _ => MsrAction::Refuse,
    }
}

/// Each PAT entry must be a defined memory type (0, 1, 4, 5, 6 or 7).
fn valid_pat(v: u64) -> bool {
    (0..8).all(|i| matches!((v >> (i * 8)) & 0xFF, 0 | 1 | 4 | 5 | 6 | 7))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn efer_writes_with_reserved_or_svme_bits_are_refused() {
        assert_eq!(write(EFER, 1 << 12), MsrAction::Refuse, "SVME is hidden from the guest");
        assert_eq!(write(EFER, 1 << 3), MsrAction::Refuse);
        assert_eq!(write(EFER, (1 << 8) | (1 << 11)), MsrAction::Efer);
    }

    #[test]
    fn pat_accepts_only_defined_memory_types() {
        assert_eq!(write(PAT, 0x0007_0406_0007_0406), MsrAction::Pat);
        assert_eq!(write(PAT, 0x0007_0406_0007_0402), MsrAction::Refuse);
    }

    #[test]
    fn unknown_msrs_are_refused() {
        assert_eq!(read(0xC001_DEAD), MsrAction::Refuse);
        assert_eq!(write(0xC001_DEAD, 0), MsrAction::Refuse);
    }
}
