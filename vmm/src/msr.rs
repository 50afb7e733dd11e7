//! The guest's view of the MSRs the VMM intercepts.
//!
//! MSRs whose guest values live in the VMCB are passed through by the vm
//! layer (`vm::msr`). Every other MSR the guest touches exits here and is
//! looked up in this table: emulated (a value, or per-vCPU state), absent on
//! purpose (#GP(0), as on a CPU without it: the MSR belongs to a feature the
//! guest's CPUID hides), or unknown (#GP(0) too, with a warning in the log).
//! `docs/virtual-cpu.md` lists each MSR, its answer and why, with KVM's
//! choice where it was the reference.

use guest_x86::regs::efer;
use sysabi::cpuid::{self as shown, Feature};
use sysabi::CpuidResult;

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
    /// The guest's TSC_AUX, as the vCPU holds it.
    TscAux,
    /// WRMSR: IA32_MISC_ENABLE takes this value.
    MiscEnable(u64),
    /// IA32_APIC_BASE: the board's local APIC holds it.
    ApicBase,
    /// IA32_TSC_DEADLINE: the local APIC timer's deadline.
    TscDeadline,
    /// WRMSR is accepted and has no effect.
    Ignore,
    /// #GP(0): the MSR belongs to a feature the guest's CPUID does not
    /// show, so a CPU like the guest's has no such MSR. Expected (guests
    /// probe these with a fault-tolerant access) and logged at debug level.
    Absent,
    /// #GP(0): an MSR this table does not know, logged as a warning.
    Refuse,
}

pub use guest_x86::regs::efer::MSR as EFER;
pub const PAT: u32 = 0x277;
const TSC: u32 = 0x10;
const APIC_BASE: u32 = 0x1B;
const TSC_DEADLINE: u32 = 0x6E0;
const PATCH_LEVEL: u32 = 0x8B;
const MCG_CAP: u32 = 0x179;
const MCG_STATUS: u32 = 0x17A;
const MCG_CTL: u32 = 0x17B;
const MISC_ENABLE: u32 = 0x1A0;
const TSC_AUX: u32 = 0xC000_0103;
/// The legacy (K7) performance event selects and counters, 0..3 each.
const K7_PERF: core::ops::RangeInclusive<u32> = 0xC001_0000..=0xC001_0007;
const SYSCFG: u32 = 0xC001_0010;
const HWCR: u32 = 0xC001_0015;
const NB_CFG: u32 = 0xC001_001F;
const INT_PENDING_MSG: u32 = 0xC001_0055;
const OSVW_ID_LENGTH: u32 = 0xC001_0140;
const OSVW_STATUS: u32 = 0xC001_0141;
const CPUID_FEATURES_OVERRIDE: u32 = 0xC001_1004;
const CPUID_EXT_FEATURES_OVERRIDE: u32 = 0xC001_1005;
const LS_CFG: u32 = 0xC001_1020;
const FP_CFG: u32 = 0xC001_1028;
const DE_CFG: u32 = 0xC001_1029;

/// HWCR bit 24, TscFreqSel: the TSC counts at the P0 frequency (read-only 1
/// on AMD CPUs since family 10h revision 2).
const HWCR_TSC_FREQ_SEL: u64 = 1 << 24;

/// DE_CFG bit 1: LFENCE is dispatch-serialising.
const DE_CFG_LFENCE_SERIALIZE: u64 = 1 << 1;

/// IA32_MISC_ENABLE bits (Intel SDM vol. 4, table 2-2).
pub mod misc_enable {
    pub const FAST_STRING: u64 = 1 << 0;
    pub const AUTO_THERMAL: u64 = 1 << 3;
    pub const PERF_MON: u64 = 1 << 7;
    pub const BTS_UNAVAILABLE: u64 = 1 << 11;
    pub const PEBS_UNAVAILABLE: u64 = 1 << 12;
    pub const ENHANCED_SPEEDSTEP: u64 = 1 << 16;
    pub const XTPR_DISABLE: u64 = 1 << 23;
    /// Bits the guest may change, kept as written.
    pub const WRITABLE: u64 = FAST_STRING | AUTO_THERMAL | ENHANCED_SPEEDSTEP | XTPR_DISABLE;
    /// Read-only bits: no performance monitoring, no BTS, no PEBS.
    pub const READ_ONLY: u64 = PERF_MON | BTS_UNAVAILABLE | PEBS_UNAVAILABLE;
    /// After RESET: fast strings on; BTS and PEBS unavailable.
    pub const RESET: u64 = FAST_STRING | BTS_UNAVAILABLE | PEBS_UNAVAILABLE;
}

/// The VMM's per-vCPU MSR state, with what the guest's CPUID says exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestMsrs {
    /// RDTSCP or RDPID is shown, so TSC_AUX exists.
    pub tsc_aux: bool,
    /// The TSC-deadline timer is shown, so IA32_TSC_DEADLINE exists.
    pub tsc_deadline: bool,
    /// The EFER bits the guest may set (NXE and FFXSR only where shown).
    pub efer_writable: u64,
    /// HWCR as the guest reads it.
    pub hwcr: u64,
    /// IA32_MISC_ENABLE as the guest last wrote it.
    pub misc_enable: u64,
}

impl GuestMsrs {
    /// The MSRs of a vCPU whose CPUID shows RDTSCP or RDPID (`tsc_aux`),
    /// the TSC-deadline timer (`tsc_deadline`), NX (`nx`), FFXSR (`ffxsr`)
    /// and the invariant TSC (`invariant_tsc`).
    pub fn new(tsc_aux: bool, tsc_deadline: bool, nx: bool, ffxsr: bool, invariant_tsc: bool) -> GuestMsrs {
        let mut efer_writable = efer::SCE | efer::LME | efer::LMA;
        if nx {
            efer_writable |= efer::NXE;
        }
        if ffxsr {
            efer_writable |= efer::FFXSR;
        }
        // With an invariant TSC Linux checks that it counts at P0 frequency.
        let hwcr = if invariant_tsc { HWCR_TSC_FREQ_SEL } else { 0 };
        GuestMsrs { tsc_aux, tsc_deadline, efer_writable, hwcr, misc_enable: misc_enable::RESET }
    }

    /// The MSRs of a vCPU whose CPUID answers as `cpuid(leaf, subleaf)`.
    pub fn from_cpuid(cpuid: impl Fn(u32, u32) -> CpuidResult) -> GuestMsrs {
        let shows = |f: Feature| cpuid(f.leaf, f.sub).reg(f.reg) & f.mask() != 0;
        GuestMsrs::new(
            shows(shown::RDTSCP) || shows(shown::RDPID),
            shows(shown::TSC_DEADLINE),
            shows(shown::NX),
            shows(shown::FFXSR),
            shows(shown::INVARIANT_TSC),
        )
    }

    /// What RDMSR of `msr` does.
    pub fn read(&self, msr: u32) -> MsrAction {
        match msr {
            EFER => MsrAction::Efer,
            PAT => MsrAction::Pat,
            TSC => MsrAction::Tsc,
            TSC_AUX if self.tsc_aux => MsrAction::TscAux,
            APIC_BASE => MsrAction::ApicBase,
            TSC_DEADLINE if self.tsc_deadline => MsrAction::TscDeadline,
            // Microcode patch level: none.
            PATCH_LEVEL => MsrAction::Value(0),
            MISC_ENABLE => MsrAction::Value(self.misc_enable),
            // No PMU: the legacy counters read 0 (KVM without a PMU).
            m if K7_PERF.contains(&m) => MsrAction::Value(0),
            // Plain defaults, as KVM gives them.
            SYSCFG | NB_CFG => MsrAction::Value(0),
            HWCR => MsrAction::Value(self.hwcr),
            // C1E is not active (what Linux checks for AMD erratum 400).
            INT_PENDING_MSG => MsrAction::Value(0),
            DE_CFG => MsrAction::Value(DE_CFG_LFENCE_SERIALIZE),
            // Machine checks (MCA), errata reporting (OSVW), the CPUID
            // override registers (the guest's CPUID is the hypervisor's), and
            // the load-store and FP configuration registers (SSBD control,
            // Zen erratum workarounds) are not virtualised.
            MCG_CAP | MCG_STATUS | MCG_CTL | OSVW_ID_LENGTH | OSVW_STATUS => MsrAction::Absent,
            CPUID_FEATURES_OVERRIDE | CPUID_EXT_FEATURES_OVERRIDE | LS_CFG | FP_CFG => MsrAction::Absent,
            TSC_AUX | TSC_DEADLINE => MsrAction::Absent,
            _ => MsrAction::Refuse,
        }
    }

    /// What WRMSR of `value` to `msr` does.
    pub fn write(&self, msr: u32, value: u64) -> MsrAction {
        match msr {
            EFER if value & !self.efer_writable == 0 => MsrAction::Efer,
            PAT if valid_pat(value) => MsrAction::Pat,
            // TSC_AUX has 32 bits; the upper ones are reserved.
            TSC_AUX if self.tsc_aux && value >> 32 == 0 => MsrAction::TscAux,
            MISC_ENABLE => match self.misc_enable_write(value) {
                Some(v) => MsrAction::MiscEnable(v),
                None => MsrAction::Refuse,
            },
            APIC_BASE => MsrAction::ApicBase,
            TSC_DEADLINE if self.tsc_deadline => MsrAction::TscDeadline,
            // Writes that change nothing the guest can observe: the TSC is
            // not offset, a patch level cannot be loaded,
            // the counters do not count, HWCR/NB_CFG/DE_CFG hold no state we
            // model (DE_CFG keeps LFENCE serialising).
            TSC | PATCH_LEVEL | HWCR | NB_CFG | DE_CFG => MsrAction::Ignore,
            m if K7_PERF.contains(&m) => MsrAction::Ignore,
            m if matches!(self.read(m), MsrAction::Absent) => MsrAction::Absent,
            _ => MsrAction::Refuse,
        }
    }

    /// IA32_MISC_ENABLE after writing `value`, or None (#GP) if the write
    /// changes a read-only bit or sets one this virtual CPU lacks (MONITOR
    /// FSM, CPUID limit, XD disable and the reserved bits).
    fn misc_enable_write(&self, value: u64) -> Option<u64> {
        let ro = misc_enable::READ_ONLY;
        if (value ^ self.misc_enable) & ro != 0 || value & !(misc_enable::WRITABLE | ro) != 0 {
            return None;
        }
        Some(value)
    }
}

/// Each PAT entry must be a defined memory type (0, 1, 4, 5, 6 or 7).
fn valid_pat(v: u64) -> bool {
    (0..8).all(|i| matches!((v >> (i * 8)) & 0xFF, 0 | 1 | 4 | 5 | 6 | 7))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> GuestMsrs {
        GuestMsrs::new(true, true, true, true, true)
    }

    #[test]
    fn what_exists_follows_the_guests_cpuid() {
        let none = GuestMsrs::from_cpuid(|_, _| CpuidResult::default());
        assert_eq!(none, GuestMsrs::new(false, false, false, false, false));
        assert_eq!(none.read(0xC001_0015), MsrAction::Value(0), "HWCR without an invariant TSC");
        let rdpid_only = |leaf, _| match leaf {
            7 => CpuidResult { ecx: shown::RDPID.mask(), ..Default::default() },
            _ => CpuidResult::default(),
        };
        assert!(GuestMsrs::from_cpuid(rdpid_only).tsc_aux);
        let all = GuestMsrs::from_cpuid(|_, _| CpuidResult { eax: !0, ebx: !0, ecx: !0, edx: !0 });
        assert_eq!(all, full());
    }

    #[test]
    fn efer_writes_with_reserved_hidden_or_svme_bits_are_refused() {
        let m = full();
        assert_eq!(m.write(EFER, efer::SVME), MsrAction::Refuse, "SVME is hidden from the guest");
        assert_eq!(m.write(EFER, 1 << 3), MsrAction::Refuse);
        assert_eq!(m.write(EFER, efer::LME | efer::NXE), MsrAction::Efer);
        let no_nx = GuestMsrs::new(true, true, false, false, false);
        assert_eq!(no_nx.write(EFER, efer::LME | efer::NXE), MsrAction::Refuse, "NX not shown");
        assert_eq!(no_nx.write(EFER, efer::FFXSR), MsrAction::Refuse, "FFXSR not shown");
    }

    #[test]
    fn pat_accepts_only_defined_memory_types() {
        assert_eq!(full().write(PAT, 0x0007_0406_0007_0406), MsrAction::Pat);
        assert_eq!(full().write(PAT, 0x0007_0406_0007_0402), MsrAction::Refuse);
    }

    #[test]
    fn unknown_msrs_are_refused() {
        assert_eq!(full().read(0xC001_DEAD), MsrAction::Refuse);
        assert_eq!(full().write(0xC001_DEAD, 0), MsrAction::Refuse);
    }

    #[test]
    fn tsc_aux_exists_only_with_rdtscp_or_rdpid_and_has_32_bits() {
        assert_eq!(full().read(TSC_AUX), MsrAction::TscAux);
        assert_eq!(full().write(TSC_AUX, 0xFFFF_FFFF), MsrAction::TscAux);
        assert_eq!(full().write(TSC_AUX, 1 << 32), MsrAction::Refuse);
        let none = GuestMsrs::new(false, true, true, true, true);
        assert_eq!(none.read(TSC_AUX), MsrAction::Absent);
        assert_eq!(none.write(TSC_AUX, 0), MsrAction::Absent);
    }

    #[test]
    fn tsc_deadline_exists_only_with_the_tsc_deadline_timer() {
        assert_eq!(full().read(TSC_DEADLINE), MsrAction::TscDeadline);
        assert_eq!(full().write(TSC_DEADLINE, u64::MAX), MsrAction::TscDeadline);
        let none = GuestMsrs::new(true, false, true, true, true);
        assert_eq!(none.read(TSC_DEADLINE), MsrAction::Absent);
        assert_eq!(none.write(TSC_DEADLINE, 0), MsrAction::Absent);
    }

    #[test]
    fn legacy_performance_msrs_read_zero_and_ignore_writes() {
        for msr in 0xC001_0000..=0xC001_0007 {
            assert_eq!(full().read(msr), MsrAction::Value(0), "{msr:#x}");
            assert_eq!(full().write(msr, 0x53_0076), MsrAction::Ignore, "{msr:#x}");
        }
        assert_eq!(full().read(0xC001_0008), MsrAction::Refuse, "the table ends at PERFCTR3");
    }

    #[test]
    fn the_msrs_linux_touches_are_answered() {
        let m = full();
        for (msr, want) in [
            (0x8B, MsrAction::Value(0)),
            (0x1A0, MsrAction::Value(misc_enable::RESET)),
            (0xC001_0010, MsrAction::Value(0)),
            (0xC001_0015, MsrAction::Value(HWCR_TSC_FREQ_SEL)),
            (0xC001_001F, MsrAction::Value(0)),
            (0xC001_0055, MsrAction::Value(0)),
            (0xC001_1029, MsrAction::Value(DE_CFG_LFENCE_SERIALIZE)),
            (0x179, MsrAction::Absent),
            (0xC001_0140, MsrAction::Absent),
            (0xC001_1020, MsrAction::Absent),
            (0xC001_1028, MsrAction::Absent),
            (0xC001_1004, MsrAction::Absent),
        ] {
            assert_eq!(m.read(msr), want, "rdmsr {msr:#x}");
        }
        for (msr, value, want) in [
            (0xC001_0015, 0x40, MsrAction::Ignore),
            (0xC001_001F, 1 << 46, MsrAction::Ignore),
            (0xC001_1029, DE_CFG_LFENCE_SERIALIZE, MsrAction::Ignore),
            (0xC001_1028, 1 << 9, MsrAction::Absent),
            (0xC001_0055, 0, MsrAction::Refuse),
        ] {
            assert_eq!(m.write(msr, value), want, "wrmsr {msr:#x} <- {value:#x}");
        }
    }

    #[test]
    fn misc_enable_keeps_writable_bits_and_guards_the_rest() {
        use misc_enable::*;
        let mut m = full();
        let v = RESET & !FAST_STRING | XTPR_DISABLE | AUTO_THERMAL;
        assert_eq!(m.write(0x1A0, v), MsrAction::MiscEnable(v));
        m.misc_enable = v;
        assert_eq!(m.read(0x1A0), MsrAction::Value(v), "reads return what was written");
        assert_eq!(m.write(0x1A0, v & !BTS_UNAVAILABLE), MsrAction::Refuse, "a read-only bit changed");
        assert_eq!(m.write(0x1A0, v | PERF_MON), MsrAction::Refuse, "a read-only bit changed");
        for absent in [1 << 18, 1 << 22, 1 << 34, 1 << 63] {
            assert_eq!(m.write(0x1A0, v | absent), MsrAction::Refuse, "bit {absent:#x}");
        }
    }
}
