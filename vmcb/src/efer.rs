//! EFER (MSR 0xC000_0080, `guest_x86::regs::efer::MSR`) bits a hypervisor sets or checks in a guest's
//! saved EFER (APM vol. 2, 3.1.7).

use bitflags::bitflags;
use guest_x86::regs::efer;

bitflags! {
    /// Extended Feature Enable Register. Unnamed bits are kept.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct Efer: u64 {
        /// System-call extensions (SYSCALL/SYSRET).
        const SCE = efer::SCE;
        /// Long mode enable.
        const LME = efer::LME;
        /// Long mode active. VMRUN loads it as given, so a 64-bit guest
        /// needs LME and LMA both set (with CR0.PG and CR4.PAE).
        const LMA = efer::LMA;
        /// No-execute enable.
        const NXE = efer::NXE;
        /// Secure virtual machine enable. VMRUN rejects a guest EFER
        /// without it (VMEXIT_INVALID).
        const SVME = efer::SVME;
        /// Long mode segment limit enable.
        const LMSLE = efer::LMSLE;
        /// Fast FXSAVE/FXRSTOR.
        const FFXSR = efer::FFXSR;
        /// Translation cache extension.
        const TCE = efer::TCE;
        const _ = !0;
    }
}

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
