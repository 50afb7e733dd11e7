//! Intercept vectors of the VMCB control area (APM vol. 2, table B-1,
//! offsets 0x000..0x017).
//!
//! | offset | vector | type here |
//! |---|---|---|
//! | 0x000 | CR reads (15:0) and writes (31:16) | [`CrSet`] twice |
//! | 0x004 | DR reads (15:0) and writes (31:16) | [`DrSet`] twice |
//! | 0x008 | exception vectors 0..31 | [`ExceptionIntercepts`] |
//! | 0x00C | first miscellaneous vector | [`InterceptMisc1`] |
//! | 0x010 | second miscellaneous vector | [`InterceptMisc2`] |
//! | 0x014 | third miscellaneous vector | [`InterceptMisc3`] |
//!
//! Every flags type keeps unnamed bits (`const _ = !0`), so reading a
//! vector and writing it back never loses anything.

use bitflags::bitflags;

bitflags! {
    /// A set of control registers CR0..CR15, one bit each. Used for both
    /// the read half and the write half of intercept vector 0.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct CrSet: u16 {
        /// CR0.
        const CR0 = 1 << 0;
        /// CR1.
        const CR1 = 1 << 1;
        /// CR2.
        const CR2 = 1 << 2;
        /// CR3.
        const CR3 = 1 << 3;
        /// CR4.
        const CR4 = 1 << 4;
        /// CR5.
        const CR5 = 1 << 5;
        /// CR6.
        const CR6 = 1 << 6;
        /// CR7.
        const CR7 = 1 << 7;
        /// CR8.
        const CR8 = 1 << 8;
        /// CR9.
        const CR9 = 1 << 9;
        /// CR10.
        const CR10 = 1 << 10;
        /// CR11.
        const CR11 = 1 << 11;
        /// CR12.
        const CR12 = 1 << 12;
        /// CR13.
        const CR13 = 1 << 13;
        /// CR14.
        const CR14 = 1 << 14;
        /// CR15.
        const CR15 = 1 << 15;
    }
}

impl CrSet {
    /// The set holding only CR`n` (`n` is taken modulo 16).
    pub const fn cr(n: u8) -> Self {
        Self::from_bits_retain(1 << (n & 0xF))
    }
}

bitflags! {
    /// A set of debug registers DR0..DR15, one bit each. Used for both
    /// the read half and the write half of intercept vector 1.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct DrSet: u16 {
        /// DR0.
        const DR0 = 1 << 0;
        /// DR1.
        const DR1 = 1 << 1;
        /// DR2.
        const DR2 = 1 << 2;
        /// DR3.
        const DR3 = 1 << 3;
        /// DR4.
        const DR4 = 1 << 4;
        /// DR5.
        const DR5 = 1 << 5;
        /// DR6.
        const DR6 = 1 << 6;
        /// DR7.
        const DR7 = 1 << 7;
        /// DR8.
        const DR8 = 1 << 8;
        /// DR9.
        const DR9 = 1 << 9;
        /// DR10.
        const DR10 = 1 << 10;
        /// DR11.
        const DR11 = 1 << 11;
        /// DR12.
        const DR12 = 1 << 12;
        /// DR13.
        const DR13 = 1 << 13;
        /// DR14.
        const DR14 = 1 << 14;
        /// DR15.
        const DR15 = 1 << 15;
    }
}

impl DrSet {
    /// The set holding only DR`n` (`n` is taken modulo 16).
    pub const fn dr(n: u8) -> Self {
        Self::from_bits_retain(1 << (n & 0xF))
    }
}

bitflags! {
    /// Intercept vector 2: one bit per exception vector 0..31. The named
    /// flags are the architecturally defined exceptions; any other vector
    /// can be built with [`ExceptionIntercepts::vector`].
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct ExceptionIntercepts: u32 {
        /// #DE, divide error.
        const DE = 1 << 0;
        /// #DB, debug.
        const DB = 1 << 1;
        /// Vector 2 (NMI). NMIs are intercepted through
        /// [`InterceptMisc1::NMI`]; this bit only matters for software
        /// raising vector 2 as an exception.
        const NMI = 1 << 2;
        /// #BP, breakpoint.
        const BP = 1 << 3;
        /// #OF, overflow.
        const OF = 1 << 4;
        /// #BR, bound range.
        const BR = 1 << 5;
        /// #UD, invalid opcode.
        const UD = 1 << 6;
        /// #NM, device not available.
        const NM = 1 << 7;
        /// #DF, double fault.
        const DF = 1 << 8;
        /// #TS, invalid TSS.
        const TS = 1 << 10;
        /// #NP, segment not present.
        const NP = 1 << 11;
        /// #SS, stack fault.
        const SS = 1 << 12;
        /// #GP, general protection.
        const GP = 1 << 13;
        /// #PF, page fault.
        const PF = 1 << 14;
        /// #MF, x87 floating-point.
        const MF = 1 << 16;
        /// #AC, alignment check.
        const AC = 1 << 17;
        /// #MC, machine check.
        const MC = 1 << 18;
        /// #XF, SIMD floating-point.
        const XF = 1 << 19;
        /// #CP, control-protection.
        const CP = 1 << 21;
        /// #HV, hypervisor injection (SEV-SNP).
        const HV = 1 << 28;
        /// #VC, VMM communication (SEV-ES).
        const VC = 1 << 29;
        /// #SX, security exception.
        const SX = 1 << 30;
        const _ = !0;
    }
}

impl ExceptionIntercepts {
    /// The set holding only exception `vector` (taken modulo 32).
    pub const fn vector(vector: u8) -> Self {
        Self::from_bits_retain(1 << (vector & 0x1F))
    }
}

bitflags! {
    /// Intercept vector 3 (offset 0x00C), the first miscellaneous vector.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct InterceptMisc1: u32 {
        /// Physical maskable interrupt.
        const INTR = 1 << 0;
        /// Physical NMI.
        const NMI = 1 << 1;
        /// SMI.
        const SMI = 1 << 2;
        /// INIT.
        const INIT = 1 << 3;
        /// Virtual interrupt (interrupt window when V_IRQ is pending).
        const VINTR = 1 << 4;
        /// CR0 writes that change bits other than CR0.TS or CR0.MP.
        const CR0_SEL_WRITE = 1 << 5;
        /// SIDT.
        const IDTR_READ = 1 << 6;
        /// SGDT.
        const GDTR_READ = 1 << 7;
        /// SLDT.
        const LDTR_READ = 1 << 8;
        /// STR.
        const TR_READ = 1 << 9;
        /// LIDT.
        const IDTR_WRITE = 1 << 10;
        /// LGDT.
        const GDTR_WRITE = 1 << 11;
        /// LLDT.
        const LDTR_WRITE = 1 << 12;
        /// LTR.
        const TR_WRITE = 1 << 13;
        /// RDTSC.
        const RDTSC = 1 << 14;
        /// RDPMC.
        const RDPMC = 1 << 15;
        /// PUSHF.
        const PUSHF = 1 << 16;
        /// POPF.
        const POPF = 1 << 17;
        /// CPUID.
        const CPUID = 1 << 18;
        /// RSM.
        const RSM = 1 << 19;
        /// IRET.
        const IRET = 1 << 20;
        /// INTn (software interrupt).
        const INTN = 1 << 21;
        /// INVD.
        const INVD = 1 << 22;
        /// PAUSE.
        const PAUSE = 1 << 23;
        /// HLT.
        const HLT = 1 << 24;
        /// INVLPG.
        const INVLPG = 1 << 25;
        /// INVLPGA.
        const INVLPGA = 1 << 26;
        /// IN/OUT to ports selected in the IOPM.
        const IOIO_PROT = 1 << 27;
        /// RDMSR/WRMSR of MSRs selected in the MSRPM.
        const MSR_PROT = 1 << 28;
        /// Task switches.
        const TASK_SWITCH = 1 << 29;
        /// Processor freezing during legacy FERR handling.
        const FERR_FREEZE = 1 << 30;
        /// Shutdown events (e.g. triple fault).
        const SHUTDOWN = 1 << 31;
    }
}

bitflags! {
    /// Intercept vector 4 (offset 0x010), the second miscellaneous vector.
    /// Bits 31:16 are *trap* intercepts of CR0..CR15 writes: they fire
    /// after the guest instruction completed.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct InterceptMisc2: u32 {
        /// VMRUN. VMRUN refuses a VMCB that does not set this.
        const VMRUN = 1 << 0;
        /// VMMCALL.
        const VMMCALL = 1 << 1;
        /// VMLOAD.
        const VMLOAD = 1 << 2;
        /// VMSAVE.
        const VMSAVE = 1 << 3;
        /// STGI.
        const STGI = 1 << 4;
        /// CLGI.
        const CLGI = 1 << 5;
        /// SKINIT.
        const SKINIT = 1 << 6;
        /// RDTSCP.
        const RDTSCP = 1 << 7;
        /// ICEBP (INT1).
        const ICEBP = 1 << 8;
        /// WBINVD and WBNOINVD.
        const WBINVD = 1 << 9;
        /// MONITOR/MONITORX.
        const MONITOR = 1 << 10;
        /// MWAIT/MWAITX, unconditionally.
        const MWAIT = 1 << 11;
        /// MWAIT/MWAITX, only if the monitor hardware is armed.
        const MWAIT_CONDITIONAL = 1 << 12;
        /// XSETBV.
        const XSETBV = 1 << 13;
        /// RDPRU.
        const RDPRU = 1 << 14;
        /// Trap after writes of EFER.
        const EFER_WRITE_TRAP = 1 << 15;
        /// Trap after writes of CR0.
        const CR0_WRITE_TRAP = 1 << 16;
        /// Trap after writes of CR1.
        const CR1_WRITE_TRAP = 1 << 17;
        /// Trap after writes of CR2.
        const CR2_WRITE_TRAP = 1 << 18;
        /// Trap after writes of CR3.
        const CR3_WRITE_TRAP = 1 << 19;
        /// Trap after writes of CR4.
        const CR4_WRITE_TRAP = 1 << 20;
        /// Trap after writes of CR5.
        const CR5_WRITE_TRAP = 1 << 21;
        /// Trap after writes of CR6.
        const CR6_WRITE_TRAP = 1 << 22;
        /// Trap after writes of CR7.
        const CR7_WRITE_TRAP = 1 << 23;
        /// Trap after writes of CR8.
        const CR8_WRITE_TRAP = 1 << 24;
        /// Trap after writes of CR9.
        const CR9_WRITE_TRAP = 1 << 25;
        /// Trap after writes of CR10.
        const CR10_WRITE_TRAP = 1 << 26;
        /// Trap after writes of CR11.
        const CR11_WRITE_TRAP = 1 << 27;
        /// Trap after writes of CR12.
        const CR12_WRITE_TRAP = 1 << 28;
        /// Trap after writes of CR13.
        const CR13_WRITE_TRAP = 1 << 29;
        /// Trap after writes of CR14.
        const CR14_WRITE_TRAP = 1 << 30;
        /// Trap after writes of CR15.
        const CR15_WRITE_TRAP = 1 << 31;
    }
}

impl InterceptMisc2 {
    /// The write-trap bit for CR`n` (`n` taken modulo 16).
    pub const fn cr_write_trap(n: u8) -> Self {
        Self::from_bits_retain(1 << (16 + (n & 0xF) as u32))
    }
}

bitflags! {
    /// Intercept vector 5 (offset 0x014), the third miscellaneous vector.
    /// Bits 31:7 are reserved and kept as they are.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct InterceptMisc3: u32 {
        /// Every INVLPGB.
        const INVLPGB = 1 << 0;
        /// Only illegally specified INVLPGB.
        const INVLPGB_ILLEGAL = 1 << 1;
        /// INVPCID.
        const INVPCID = 1 << 2;
        /// MCOMMIT.
        const MCOMMIT = 1 << 3;
        /// TLBSYNC (CPUID Fn8000_000A EDX bit 24).
        const TLBSYNC = 1 << 4;
        /// Bus locks while the bus lock threshold counter is 0.
        const BUS_LOCK = 1 << 5;
        /// HLT when no virtual interrupt is pending.
        const IDLE_HLT = 1 << 6;
        const _ = !0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misc1_bits_match_table_b1() {
        assert_eq!(InterceptMisc1::CPUID.bits(), 1 << 18);
        assert_eq!(InterceptMisc1::HLT.bits(), 1 << 24);
        assert_eq!(InterceptMisc1::IOIO_PROT.bits(), 1 << 27);
        assert_eq!(InterceptMisc1::MSR_PROT.bits(), 1 << 28);
        assert_eq!(InterceptMisc1::SHUTDOWN.bits(), 1 << 31);
        assert_eq!(InterceptMisc1::all().bits(), u32::MAX);
    }

    #[test]
    fn misc2_bits_match_table_b1() {
        assert_eq!(InterceptMisc2::VMRUN.bits(), 1);
        assert_eq!(InterceptMisc2::VMMCALL.bits(), 1 << 1);
        assert_eq!(InterceptMisc2::XSETBV.bits(), 1 << 13);
        assert_eq!(InterceptMisc2::RDPRU.bits(), 1 << 14);
        assert_eq!(InterceptMisc2::EFER_WRITE_TRAP.bits(), 1 << 15);
        assert_eq!(InterceptMisc2::cr_write_trap(0), InterceptMisc2::CR0_WRITE_TRAP);
        assert_eq!(InterceptMisc2::cr_write_trap(8), InterceptMisc2::CR8_WRITE_TRAP);
        assert_eq!(InterceptMisc2::all().bits(), u32::MAX);
    }

    #[test]
    fn misc3_bits_match_table_b1() {
        assert_eq!(InterceptMisc3::INVPCID.bits(), 1 << 2);
        assert_eq!(InterceptMisc3::BUS_LOCK.bits(), 1 << 5);
        assert_eq!(InterceptMisc3::IDLE_HLT.bits(), 1 << 6);
    }

    #[test]
    fn exception_vector_helper_matches_named_flags() {
        assert_eq!(ExceptionIntercepts::vector(14), ExceptionIntercepts::PF);
        assert_eq!(ExceptionIntercepts::vector(13), ExceptionIntercepts::GP);
        assert_eq!(ExceptionIntercepts::vector(29), ExceptionIntercepts::VC);
        // A reserved vector survives a round trip through the raw bits.
        let v = ExceptionIntercepts::vector(25);
        assert_eq!(ExceptionIntercepts::from_bits_retain(v.bits()), v);
    }

    #[test]
    fn cr_and_dr_helpers_select_one_register() {
        assert_eq!(CrSet::cr(3), CrSet::CR3);
        assert_eq!(CrSet::cr(15), CrSet::CR15);
        assert_eq!(DrSet::dr(7), DrSet::DR7);
    }
}
