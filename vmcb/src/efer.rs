//! EFER (MSR 0xC000_0080) bits a hypervisor sets or checks in a guest's
//! saved EFER (APM vol. 2, 3.1.7).

use bitflags::bitflags;

bitflags! {
    /// Extended Feature Enable Register. Unnamed bits are kept.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct Efer: u64 {
        /// System-call extensions (SYSCALL/SYSRET).
        const SCE = 1 << 0;
        /// Long mode enable.
        const LME = 1 << 8;
        /// Long mode active. VMRUN loads it as given, so a 64-bit guest
        /// needs LME and LMA both set (with CR0.PG and CR4.PAE).
        const LMA = 1 << 10;
        /// No-execute enable.
        const NXE = 1 << 11;
        /// Secure virtual machine enable. VMRUN rejects a guest EFER
        /// without it (VMEXIT_INVALID).
        const SVME = 1 << 12;
        /// Long mode segment limit enable.
        const LMSLE = 1 << 13;
        /// Fast FXSAVE/FXRSTOR.
        const FFXSR = 1 << 14;
        /// Translation cache extension.
        const TCE = 1 << 15;
        const _ = !0;
    }
}

/// The EFER MSR number.
pub const EFER_MSR: u32 = 0xC000_0080;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn efer_bits_are_at_architectural_positions() {
        assert_eq!(Efer::SCE.bits(), 0x1);
        assert_eq!(Efer::LME.bits(), 0x100);
        assert_eq!(Efer::LMA.bits(), 0x400);
        assert_eq!(Efer::NXE.bits(), 0x800);
        assert_eq!(Efer::SVME.bits(), 0x1000);
    }
}
