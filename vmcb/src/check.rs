//! The guest-state checks VMRUN makes (AMD APM vol. 2, §15.5.1, "Basic
//! Operation", the list of illegal state combinations), done in software
//! before VMRUN.
//!
//! A VMRUN that fails these checks exits at once with VMEXIT_INVALID and
//! tells nothing about which field was wrong; implementations also differ
//! in how many of the checks they make (QEMU's TCG makes some, Bochs others).
//! Checking first gives the same outcome everywhere and a report that names
//! the field.

use crate::{Efer, InterceptMisc2, Vmcb};
use guest_x86::regs::{cr0, cr4};

/// The CPU (or virtual CPU) the state must be legal for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateLimits {
    /// The physical-address width (CPUID Fn8000_0008 EAX[7:0]).
    pub phys_addr_bits: u8,
    /// EFER bits that are not must-be-zero.
    pub efer_allowed: u64,
    /// CR4 bits that are not must-be-zero.
    pub cr4_allowed: u64,
}

/// A guest state VMRUN would refuse, naming the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateError {
    /// EFER.SVME is clear.
    EferSvmeClear,
    /// An EFER bit the CPU does not define (must be zero) is set.
    EferReserved(u64),
    /// CR0.NW set with CR0.CD clear.
    Cr0NwWithoutCd,
    /// CR0[63:32] is not zero.
    Cr0High(u64),
    /// A CR3 bit above the physical-address width is set in long mode.
    Cr3Reserved(u64),
    /// A must-be-zero CR4 bit is set.
    Cr4Reserved(u64),
    /// DR6[63:32] is not zero.
    Dr6High(u64),
    /// DR7[63:32] is not zero.
    Dr7High(u64),
    /// EFER.LME and CR0.PG set with CR4.PAE clear.
    LongModeWithoutPae,
    /// EFER.LME and CR0.PG set with CR0.PE clear.
    LongModeWithoutPe,
    /// EFER.LME, CR0.PG, CR4.PAE, CS.L and CS.D all set.
    CsLongAndDefaultBig,
    /// The VMRUN intercept is clear.
    VmrunNotIntercepted,
    /// The I/O or MSR permission map reaches past the physical-address width.
    PermissionMapOutOfRange,
    /// EVENTINJ holds an event VMRUN does not accept.
    BadEventInjection(u64),
    /// The guest ASID is zero (the host's).
    AsidZero,
}

impl core::fmt::Display for StateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            StateError::EferSvmeClear => f.write_str("EFER.SVME is clear"),
            StateError::EferReserved(b) => write!(f, "EFER has must-be-zero bits {b:#x} set"),
            StateError::Cr0NwWithoutCd => f.write_str("CR0.NW is set while CR0.CD is clear"),
            StateError::Cr0High(v) => write!(f, "CR0[63:32] is not zero (CR0 {v:#x})"),
            StateError::Cr3Reserved(b) => write!(f, "CR3 has must-be-zero bits {b:#x} set"),
            StateError::Cr4Reserved(b) => write!(f, "CR4 has must-be-zero bits {b:#x} set"),
            StateError::Dr6High(v) => write!(f, "DR6[63:32] is not zero (DR6 {v:#x})"),
            StateError::Dr7High(v) => write!(f, "DR7[63:32] is not zero (DR7 {v:#x})"),
            StateError::LongModeWithoutPae => f.write_str("EFER.LME and CR0.PG are set but CR4.PAE is clear"),
            StateError::LongModeWithoutPe => f.write_str("EFER.LME and CR0.PG are set but CR0.PE is clear"),
            StateError::CsLongAndDefaultBig => f.write_str("CS.L and CS.D are both set in long mode"),
            StateError::VmrunNotIntercepted => f.write_str("the VMRUN intercept is clear"),
            StateError::PermissionMapOutOfRange => {
                f.write_str("the I/O or MSR permission map lies beyond the physical-address width")
            }
            StateError::BadEventInjection(raw) => write!(f, "EVENTINJ {raw:#x} is not a legal event"),
            StateError::AsidZero => f.write_str("the guest ASID is zero"),
        }
    }
}

/// The IOPM spans 12 KiB, the MSRPM 8 KiB.
const IOPM_BYTES: u64 = 3 * 4096;
const MSRPM_BYTES: u64 = 2 * 4096;

/// Checks `vmcb` against the state VMRUN accepts, in the APM's order, and
/// returns the first problem.
pub fn check_vmrun_state(vmcb: &Vmcb, limits: &StateLimits) -> Result<(), StateError> {
    let s = &vmcb.save;
    let c = &vmcb.control;
    let efer = s.efer;
    if efer & Efer::SVME.bits() == 0 {
        return Err(StateError::EferSvmeClear);
    }
    if s.cr0 & cr0::NW != 0 && s.cr0 & cr0::CD == 0 {
        return Err(StateError::Cr0NwWithoutCd);
    }
    if s.cr0 >> 32 != 0 {
        return Err(StateError::Cr0High(s.cr0));
    }
    let long = efer & Efer::LME.bits() != 0 && s.cr0 & cr0::PG != 0;
    let phys_limit = if limits.phys_addr_bits >= 64 { u64::MAX } else { (1u64 << limits.phys_addr_bits) - 1 };
    if long && s.cr3 & !phys_limit != 0 {
        return Err(StateError::Cr3Reserved(s.cr3 & !phys_limit));
    }
    if s.cr4 & !limits.cr4_allowed != 0 {
        return Err(StateError::Cr4Reserved(s.cr4 & !limits.cr4_allowed));
    }
    if s.dr6 >> 32 != 0 {
        return Err(StateError::Dr6High(s.dr6));
    }
    if s.dr7 >> 32 != 0 {
        return Err(StateError::Dr7High(s.dr7));
    }
    if efer & !(limits.efer_allowed | Efer::SVME.bits()) != 0 {
        return Err(StateError::EferReserved(efer & !(limits.efer_allowed | Efer::SVME.bits())));
    }
    if long && s.cr4 & cr4::PAE == 0 {
        return Err(StateError::LongModeWithoutPae);
    }
    if long && s.cr0 & cr0::PE == 0 {
        return Err(StateError::LongModeWithoutPe);
    }
    let cs = s.cs.attributes();
    if long && cs.long() && cs.default_big() {
        return Err(StateError::CsLongAndDefaultBig);
    }
    if !c.misc2_intercepts().contains(InterceptMisc2::VMRUN) {
        return Err(StateError::VmrunNotIntercepted);
    }
    let past = |base: u64, len: u64| base.checked_add(len).is_none_or(|end| end - 1 > phys_limit);
    if past(c.iopm_base_pa, IOPM_BYTES) || past(c.msrpm_base_pa, MSRPM_BYTES) {
        return Err(StateError::PermissionMapOutOfRange);
    }
    let ev = c.event_injection();
    if !ev.is_well_formed() {
        return Err(StateError::BadEventInjection(ev.to_raw()));
    }
    if c.guest_asid == 0 {
        return Err(StateError::AsidZero);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventInj, Segment};

    const LIMITS: StateLimits = StateLimits {
        phys_addr_bits: 40,
        efer_allowed: (1 << 0) | (1 << 8) | (1 << 10) | (1 << 11),
        cr4_allowed: 0x3F_FFFF,
    };

    /// A legal 64-bit guest state.
    fn long_mode() -> Vmcb {
        let mut v = Vmcb::default();
        v.save.efer = Efer::SVME.bits() | Efer::LME.bits() | Efer::LMA.bits();
        v.save.cr0 = cr0::PE | cr0::PG;
        v.save.cr4 = cr4::PAE;
        v.save.cr3 = 0x1000;
        v.save.cs = Segment::flat_code64(8);
        v.save.dr6 = 0xFFFF_0FF0;
        v.save.dr7 = 0x400;
        v.control.set_misc2_intercepts(InterceptMisc2::VMRUN);
        v.control.iopm_base_pa = 0x10_0000;
        v.control.msrpm_base_pa = 0x20_0000;
        v.control.guest_asid = 1;
        v
    }

    fn check(v: &Vmcb) -> Result<(), StateError> {
        check_vmrun_state(v, &LIMITS)
    }

    #[test]
    fn a_legal_long_mode_state_passes() {
        assert_eq!(check(&long_mode()), Ok(()));
    }

    #[test]
    fn a_reset_state_in_real_mode_passes() {
        let mut v = long_mode();
        v.save.efer = Efer::SVME.bits();
        v.save.cr0 = 0x6000_0010; // CD | NW | ET
        v.save.cr4 = 0;
        v.save.cs = Segment::real_mode_code(0xF000);
        assert_eq!(check(&v), Ok(()));
    }

    #[test]
    fn each_illegal_combination_is_named() {
        let cases: [(&str, fn(&mut Vmcb), StateError); 15] = [
            ("svme", |v| v.save.efer &= !Efer::SVME.bits(), StateError::EferSvmeClear),
            ("efer", |v| v.save.efer |= 1 << 20, StateError::EferReserved(1 << 20)),
            ("nw", |v| v.save.cr0 |= cr0::NW, StateError::Cr0NwWithoutCd),
            ("cr0 high", |v| v.save.cr0 |= 1 << 40, StateError::Cr0High(cr0::PE | cr0::PG | 1 << 40)),
            ("cr3", |v| v.save.cr3 |= 1 << 45, StateError::Cr3Reserved(1 << 45)),
            ("cr4", |v| v.save.cr4 |= 1 << 30, StateError::Cr4Reserved(1 << 30)),
            ("dr6", |v| v.save.dr6 |= 1 << 32, StateError::Dr6High(0x1_FFFF_0FF0)),
            ("dr7", |v| v.save.dr7 |= 1 << 33, StateError::Dr7High(0x2_0000_0400)),
            ("pae", |v| v.save.cr4 &= !cr4::PAE, StateError::LongModeWithoutPae),
            ("pe", |v| v.save.cr0 &= !cr0::PE, StateError::LongModeWithoutPe),
            (
                "cs.l+d",
                |v| v.save.cs = Segment::from_descriptor(8, 0x00ef_9a00_0000_ffff),
                StateError::CsLongAndDefaultBig,
            ),
            ("vmrun", |v| v.control.set_misc2_intercepts(InterceptMisc2::empty()), StateError::VmrunNotIntercepted),
            ("iopm", |v| v.control.iopm_base_pa = (1 << 40) - 4096, StateError::PermissionMapOutOfRange),
            (
                "eventinj",
                |v| v.control.set_event_injection(EventInj::from_raw(0x8000_0302)),
                StateError::BadEventInjection(0x8000_0302),
            ),
            ("asid", |v| v.control.guest_asid = 0, StateError::AsidZero),
        ];
        for (name, break_it, want) in cases {
            let mut v = long_mode();
            break_it(&mut v);
            assert_eq!(check(&v), Err(want), "case {name}");
        }
    }

    #[test]
    fn cr3_high_bits_are_legal_outside_long_mode() {
        let mut v = long_mode();
        v.save.efer = Efer::SVME.bits();
        v.save.cr3 = 1 << 45;
        v.save.cs = Segment::flat_code32(8);
        assert_eq!(check(&v), Ok(()));
    }

    #[test]
    fn errors_name_the_field() {
        let text = format!("{}", StateError::LongModeWithoutPae);
        assert!(text.contains("CR4.PAE"), "{text}");
        let text = format!("{}", StateError::EferReserved(0x100000));
        assert!(text.contains("EFER") && text.contains("0x100000"), "{text}");
    }
}
