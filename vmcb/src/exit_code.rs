//! The #VMEXIT reason in EXITCODE (control area offset 0x070), named after
//! APM vol. 2 appendix C, table C-1.
//!
//! # Decoding rule
//!
//! EXITCODE is a 64-bit field and the error codes are negative 64-bit
//! numbers (VMEXIT_INVALID is `-1`, all 64 bits set). Some implementations
//! write only the low 32 bits: under QEMU TCG (and in KVM's nested SVM)
//! VMEXIT_INVALID reads as `0x0000_0000_ffff_ffff`. [`ExitCode::from_raw`]
//! therefore decodes
//!
//! - a value whose high half is **zero** by sign-extending its low 32
//!   bits, so `0xffff_ffff` is `-1` (Invalid) and `0xffff_fffe` is `-2`
//!   (Busy), while every positive code (all below 2^31) is unchanged;
//! - any other value as the full 64-bit number. A high half of all ones
//!   with a negative low half is already the sign extension; a high half of
//!   all ones with a non-negative low half is not a sign extension of
//!   anything and stays [`ExitCode::Unknown`].
//!
//! A value that names no code in table C-1 becomes [`ExitCode::Unknown`]
//! holding the raw value exactly as read.

/// A decoded EXITCODE.
///
/// Variants with a payload cover a range of codes: the payload is the
/// register number or exception vector, `0..=15` for registers and
/// `0..=31` for exceptions. [`ExitCode::to_raw`] uses only those low bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExitCode {
    /// 0x00..=0x0F: read of CR`n`.
    CrRead(u8),
    /// 0x10..=0x1F: write of CR`n`.
    CrWrite(u8),
    /// 0x20..=0x2F: read of DR`n`.
    DrRead(u8),
    /// 0x30..=0x3F: write of DR`n`.
    DrWrite(u8),
    /// 0x40..=0x5F: exception with this vector.
    Exception(u8),
    /// 0x60: physical INTR.
    Intr,
    /// 0x61: physical NMI.
    Nmi,
    /// 0x62: SMI.
    Smi,
    /// 0x63: INIT.
    Init,
    /// 0x64: virtual INTR.
    Vintr,
    /// 0x65: CR0 write changing bits other than TS/MP.
    Cr0SelWrite,
    /// 0x66: SIDT.
    IdtrRead,
    /// 0x67: SGDT.
    GdtrRead,
    /// 0x68: SLDT.
    LdtrRead,
    /// 0x69: STR.
    TrRead,
    /// 0x6A: LIDT.
    IdtrWrite,
    /// 0x6B: LGDT.
    GdtrWrite,
    /// 0x6C: LLDT.
    LdtrWrite,
    /// 0x6D: LTR.
    TrWrite,
    /// 0x6E: RDTSC.
    Rdtsc,
    /// 0x6F: RDPMC.
    Rdpmc,
    /// 0x70: PUSHF.
    Pushf,
    /// 0x71: POPF.
    Popf,
    /// 0x72: CPUID.
    Cpuid,
    /// 0x73: RSM.
    Rsm,
    /// 0x74: IRET.
    Iret,
    /// 0x75: INTn.
    Swint,
    /// 0x76: INVD.
    Invd,
    /// 0x77: PAUSE.
    Pause,
    /// 0x78: HLT.
    Hlt,
    /// 0x79: INVLPG.
    Invlpg,
    /// 0x7A: INVLPGA.
    Invlpga,
    /// 0x7B: IN/OUT (see [`crate::IoioInfo`]).
    Ioio,
    /// 0x7C: RDMSR/WRMSR (see [`crate::MsrExitKind`]).
    Msr,
    /// 0x7D: task switch (see [`crate::TaskSwitchInfo`]).
    TaskSwitch,
    /// 0x7E: FERR freeze.
    FerrFreeze,
    /// 0x7F: shutdown.
    Shutdown,
    /// 0x80: VMRUN.
    Vmrun,
    /// 0x81: VMMCALL.
    Vmmcall,
    /// 0x82: VMLOAD.
    Vmload,
    /// 0x83: VMSAVE.
    Vmsave,
    /// 0x84: STGI.
    Stgi,
    /// 0x85: CLGI.
    Clgi,
    /// 0x86: SKINIT.
    Skinit,
    /// 0x87: RDTSCP.
    Rdtscp,
    /// 0x88: ICEBP.
    Icebp,
    /// 0x89: WBINVD/WBNOINVD.
    Wbinvd,
    /// 0x8A: MONITOR/MONITORX.
    Monitor,
    /// 0x8B: MWAIT/MWAITX.
    Mwait,
    /// 0x8C: MWAIT/MWAITX with the monitor armed.
    MwaitConditional,
    /// 0x8D: XSETBV.
    Xsetbv,
    /// 0x8E: RDPRU.
    Rdpru,
    /// 0x8F: EFER write trap.
    EferWriteTrap,
    /// 0x90..=0x9F: CR`n` write trap.
    CrWriteTrap(u8),
    /// 0xA0: INVLPGB.
    Invlpgb,
    /// 0xA1: illegal INVLPGB.
    InvlpgbIllegal,
    /// 0xA2: INVPCID.
    Invpcid,
    /// 0xA3: MCOMMIT.
    Mcommit,
    /// 0xA4: TLBSYNC.
    Tlbsync,
    /// 0xA5: bus lock threshold reached.
    BusLock,
    /// 0xA6: HLT with no virtual interrupt pending.
    IdleHlt,
    /// 0x400: nested page fault (see [`crate::NestedPageFault`]).
    Npf,
    /// 0x401: AVIC IPI delivery not completed.
    AvicIncompleteIpi,
    /// 0x402: AVIC access to an unaccelerated vAPIC register.
    AvicNoaccel,
    /// 0x403: VMGEXIT (SEV-ES).
    Vmgexit,
    /// -1: VMRUN found invalid guest state in the VMCB.
    Invalid,
    /// -2: the BUSY bit was set in the VMSA.
    Busy,
    /// -3: the sibling thread is not idle.
    IdleRequired,
    /// -4: invalid PMC state.
    InvalidPmc,
    /// A value table C-1 does not define, kept exactly as read.
    Unknown(u64),
}

impl ExitCode {
    /// Decodes a raw EXITCODE, following the rule in the module docs.
    pub const fn from_raw(raw: u64) -> Self {
        use ExitCode::*;
        let code = normalize(raw);
        match code {
            0x00..=0x0F => CrRead(code as u8),
            0x10..=0x1F => CrWrite((code - 0x10) as u8),
            0x20..=0x2F => DrRead((code - 0x20) as u8),
            0x30..=0x3F => DrWrite((code - 0x30) as u8),
            0x40..=0x5F => Exception((code - 0x40) as u8),
            0x60 => Intr,
            0x61 => Nmi,
            0x62 => Smi,
            0x63 => Init,
            0x64 => Vintr,
            0x65 => Cr0SelWrite,
            0x66 => IdtrRead,
            0x67 => GdtrRead,
            0x68 => LdtrRead,
            0x69 => TrRead,
            0x6A => IdtrWrite,
            0x6B => GdtrWrite,
            0x6C => LdtrWrite,
            0x6D => TrWrite,
            0x6E => Rdtsc,
            0x6F => Rdpmc,
            0x70 => Pushf,
            0x71 => Popf,
            0x72 => Cpuid,
            0x73 => Rsm,
            0x74 => Iret,
            0x75 => Swint,
            0x76 => Invd,
            0x77 => Pause,
            0x78 => Hlt,
            0x79 => Invlpg,
            0x7A => Invlpga,
            0x7B => Ioio,
            0x7C => Msr,
            0x7D => TaskSwitch,
            0x7E => FerrFreeze,
            0x7F => Shutdown,
            0x80 => Vmrun,
            0x81 => Vmmcall,
            0x82 => Vmload,
            0x83 => Vmsave,
            0x84 => Stgi,
            0x85 => Clgi,
            0x86 => Skinit,
            0x87 => Rdtscp,
            0x88 => Icebp,
            0x89 => Wbinvd,
            0x8A => Monitor,
            0x8B => Mwait,
            0x8C => MwaitConditional,
            0x8D => Xsetbv,
            0x8E => Rdpru,
            0x8F => EferWriteTrap,
            0x90..=0x9F => CrWriteTrap((code - 0x90) as u8),
            0xA0 => Invlpgb,
            0xA1 => InvlpgbIllegal,
            0xA2 => Invpcid,
            0xA3 => Mcommit,
            0xA4 => Tlbsync,
            0xA5 => BusLock,
            0xA6 => IdleHlt,
            0x400 => Npf,
            0x401 => AvicIncompleteIpi,
            0x402 => AvicNoaccel,
            0x403 => Vmgexit,
            INVALID => Invalid,
            BUSY => Busy,
            IDLE_REQUIRED => IdleRequired,
            INVALID_PMC => InvalidPmc,
            _ => Unknown(raw),
        }
    }

    /// The 64-bit EXITCODE for this reason, as the APM defines it (error
    /// codes are full 64-bit negatives). [`ExitCode::Unknown`] returns the
    /// value it holds.
    pub const fn to_raw(self) -> u64 {
        use ExitCode::*;
        match self {
            CrRead(n) => (n & 0xF) as u64,
            CrWrite(n) => 0x10 + (n & 0xF) as u64,
            DrRead(n) => 0x20 + (n & 0xF) as u64,
            DrWrite(n) => 0x30 + (n & 0xF) as u64,
            Exception(v) => 0x40 + (v & 0x1F) as u64,
            Intr => 0x60,
            Nmi => 0x61,
            Smi => 0x62,
            Init => 0x63,
            Vintr => 0x64,
            Cr0SelWrite => 0x65,
            IdtrRead => 0x66,
            GdtrRead => 0x67,
            LdtrRead => 0x68,
            TrRead => 0x69,
            IdtrWrite => 0x6A,
            GdtrWrite => 0x6B,
            LdtrWrite => 0x6C,
            TrWrite => 0x6D,
            Rdtsc => 0x6E,
            Rdpmc => 0x6F,
            Pushf => 0x70,
            Popf => 0x71,
            Cpuid => 0x72,
            Rsm => 0x73,
            Iret => 0x74,
            Swint => 0x75,
            Invd => 0x76,
            Pause => 0x77,
            Hlt => 0x78,
            Invlpg => 0x79,
            Invlpga => 0x7A,
            Ioio => 0x7B,
            Msr => 0x7C,
            TaskSwitch => 0x7D,
            FerrFreeze => 0x7E,
            Shutdown => 0x7F,
            Vmrun => 0x80,
            Vmmcall => 0x81,
            Vmload => 0x82,
            Vmsave => 0x83,
            Stgi => 0x84,
            Clgi => 0x85,
            Skinit => 0x86,
            Rdtscp => 0x87,
            Icebp => 0x88,
            Wbinvd => 0x89,
            Monitor => 0x8A,
            Mwait => 0x8B,
            MwaitConditional => 0x8C,
            Xsetbv => 0x8D,
            Rdpru => 0x8E,
            EferWriteTrap => 0x8F,
            CrWriteTrap(n) => 0x90 + (n & 0xF) as u64,
            Invlpgb => 0xA0,
            InvlpgbIllegal => 0xA1,
            Invpcid => 0xA2,
            Mcommit => 0xA3,
            Tlbsync => 0xA4,
            BusLock => 0xA5,
            IdleHlt => 0xA6,
            Npf => 0x400,
            AvicIncompleteIpi => 0x401,
            AvicNoaccel => 0x402,
            Vmgexit => 0x403,
            Invalid => INVALID,
            Busy => BUSY,
            IdleRequired => IDLE_REQUIRED,
            InvalidPmc => INVALID_PMC,
            Unknown(raw) => raw,
        }
    }

    /// Whether this code reports that VMRUN itself failed, so no guest
    /// instruction ran and the rest of the exit information means nothing.
    pub const fn is_vmrun_failure(self) -> bool {
        matches!(self, ExitCode::Invalid | ExitCode::Busy | ExitCode::IdleRequired | ExitCode::InvalidPmc)
    }
}

impl From<u64> for ExitCode {
    fn from(raw: u64) -> Self {
        Self::from_raw(raw)
    }
}

impl From<ExitCode> for u64 {
    fn from(code: ExitCode) -> Self {
        code.to_raw()
    }
}

const INVALID: u64 = -1i64 as u64;
const BUSY: u64 = -2i64 as u64;
const IDLE_REQUIRED: u64 = -3i64 as u64;
const INVALID_PMC: u64 = -4i64 as u64;

/// Sign-extends the low half when the high half is zero; see the module
/// docs for why.
const fn normalize(raw: u64) -> u64 {
    if raw >> 32 == 0 {
        raw as u32 as i32 as i64 as u64
    } else {
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every code table C-1 defines, with the raw value it must have.
    fn every_defined_code() -> impl Iterator<Item = (ExitCode, u64)> {
        let ranges = (0u8..16)
            .map(|n| (ExitCode::CrRead(n), n as u64))
            .chain((0u8..16).map(|n| (ExitCode::CrWrite(n), 0x10 + n as u64)))
            .chain((0u8..16).map(|n| (ExitCode::DrRead(n), 0x20 + n as u64)))
            .chain((0u8..16).map(|n| (ExitCode::DrWrite(n), 0x30 + n as u64)))
            .chain((0u8..32).map(|v| (ExitCode::Exception(v), 0x40 + v as u64)))
            .chain((0u8..16).map(|n| (ExitCode::CrWriteTrap(n), 0x90 + n as u64)));
        let singles = (0x60u64..=0x8F)
            .chain(0xA0..=0xA6)
            .chain(0x400..=0x403)
            .chain([INVALID, BUSY, IDLE_REQUIRED, INVALID_PMC])
            .map(|raw| (ExitCode::from_raw(raw), raw));
        ranges.chain(singles)
    }

    #[test]
    fn every_defined_code_decodes_to_a_named_variant_and_back() {
        let mut count = 0;
        for (code, raw) in every_defined_code() {
            assert!(!matches!(code, ExitCode::Unknown(_)), "{raw:#x} decoded as Unknown");
            assert_eq!(code.to_raw(), raw, "{code:?} encodes wrongly");
            assert_eq!(ExitCode::from_raw(raw), code, "{raw:#x} decodes wrongly");
            count += 1;
        }
        // 5 register/exception ranges (16+16+16+16+32), 16 write traps,
        // 0x60..=0x8F (48), 0xA0..=0xA6 (7), 0x400..=0x403 (4), 4 errors.
        assert_eq!(count, 96 + 16 + 48 + 7 + 4 + 4);
    }

    #[test]
    fn named_codes_pin_table_c1_values() {
        assert_eq!(ExitCode::from_raw(0x00), ExitCode::CrRead(0));
        assert_eq!(ExitCode::from_raw(0x13), ExitCode::CrWrite(3));
        assert_eq!(ExitCode::from_raw(0x4E), ExitCode::Exception(14));
        assert_eq!(ExitCode::from_raw(0x60), ExitCode::Intr);
        assert_eq!(ExitCode::from_raw(0x72), ExitCode::Cpuid);
        assert_eq!(ExitCode::from_raw(0x78), ExitCode::Hlt);
        assert_eq!(ExitCode::from_raw(0x7B), ExitCode::Ioio);
        assert_eq!(ExitCode::from_raw(0x7C), ExitCode::Msr);
        assert_eq!(ExitCode::from_raw(0x7F), ExitCode::Shutdown);
        assert_eq!(ExitCode::from_raw(0x80), ExitCode::Vmrun);
        assert_eq!(ExitCode::from_raw(0x81), ExitCode::Vmmcall);
        assert_eq!(ExitCode::from_raw(0x8D), ExitCode::Xsetbv);
        assert_eq!(ExitCode::from_raw(0x8E), ExitCode::Rdpru);
        assert_eq!(ExitCode::from_raw(0x8F), ExitCode::EferWriteTrap);
        assert_eq!(ExitCode::from_raw(0x94), ExitCode::CrWriteTrap(4));
        assert_eq!(ExitCode::from_raw(0xA2), ExitCode::Invpcid);
        assert_eq!(ExitCode::from_raw(0xA6), ExitCode::IdleHlt);
        assert_eq!(ExitCode::from_raw(0x400), ExitCode::Npf);
        assert_eq!(ExitCode::from_raw(0x401), ExitCode::AvicIncompleteIpi);
        assert_eq!(ExitCode::from_raw(0x402), ExitCode::AvicNoaccel);
        assert_eq!(ExitCode::from_raw(0x403), ExitCode::Vmgexit);
        assert_eq!(ExitCode::from_raw(u64::MAX), ExitCode::Invalid);
        assert_eq!(ExitCode::Invalid.to_raw(), u64::MAX);
        assert_eq!(ExitCode::Busy.to_raw(), (-2i64) as u64);
    }

    #[test]
    fn tcg_32_bit_invalid_decodes_as_invalid() {
        assert_eq!(ExitCode::from_raw(0x0000_0000_FFFF_FFFF), ExitCode::Invalid);
        assert_eq!(ExitCode::from_raw(0x0000_0000_FFFF_FFFE), ExitCode::Busy);
        assert_eq!(ExitCode::from_raw(0x0000_0000_FFFF_FFFD), ExitCode::IdleRequired);
        assert_eq!(ExitCode::from_raw(0x0000_0000_FFFF_FFFC), ExitCode::InvalidPmc);
        assert!(ExitCode::from_raw(0xFFFF_FFFF).is_vmrun_failure());
    }

    #[test]
    fn all_ones_high_half_with_positive_low_half_stays_unknown() {
        let raw = 0xFFFF_FFFF_0000_0072;
        assert_eq!(ExitCode::from_raw(raw), ExitCode::Unknown(raw));
    }

    #[test]
    fn undefined_codes_keep_their_raw_value() {
        for raw in [0xA7, 0xFF, 0x3FF, 0x404, 0xF000_0000, 1 << 40] {
            assert_eq!(ExitCode::from_raw(raw), ExitCode::Unknown(raw));
            assert_eq!(ExitCode::Unknown(raw).to_raw(), raw);
        }
    }

    proptest! {
        #[test]
        fn decoding_is_stable_for_any_raw_value(raw in any::<u64>()) {
            let code = ExitCode::from_raw(raw);
            match code {
                ExitCode::Unknown(kept) => prop_assert_eq!(kept, raw),
                named => {
                    prop_assert_eq!(named.to_raw(), normalize(raw));
                    prop_assert_eq!(ExitCode::from_raw(named.to_raw()), named);
                }
            }
        }

        #[test]
        fn low_32_bits_alone_decode_to_the_same_named_code(raw in prop_oneof![
            0u64..0x100, 0x3F0u64..0x410, Just(u64::MAX), Just(u64::MAX - 3)
        ]) {
            let full = ExitCode::from_raw(raw);
            if !matches!(full, ExitCode::Unknown(_)) {
                prop_assert_eq!(ExitCode::from_raw(raw & 0xFFFF_FFFF), full);
            }
        }
    }
}
