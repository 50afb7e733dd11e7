//! Guest writes of CR4 and of XCR0, checked the way the CPU checks them
//! against the virtual CPU that the guest's CPUID describes.
//!
//! MOV to CR4 and XSETBV are intercepted. A write the CPU would refuse (a
//! reserved bit, a bit of a feature the guest's CPUID does not show, an
//! invalid combination) raises the fault the CPU raises; the VMM injects it
//! and the register keeps its value. Sources: AMD APM vol. 2, §3.1.3 (CR4)
//! and vol. 4 (MOV CRn, XSETBV); Intel SDM vol. 3, §2.5 and vol. 1, §13.3.
use super::cpuid::shown;
use super::cpuid::CpuModel;
use super::Reg;
use crate::arch::xsave;
use guest_x86::regs::{cr4, efer};
pub use sysabi::GuestFault;

/// Changing any of these CR4 bits invalidates the TLB, global entries
/// included (APM vol. 2, §5.5.3; PCIDE and SMEP after Intel SDM vol. 3,
/// §4.10.4.1).
pub const CR4_TLB_AFFECTING: u64 = cr4::PGE | cr4::PAE | cr4::PSE | cr4::PCIDE | cr4::SMEP;

/// The CR4 bits a guest of model `m` may set: each bit whose feature the
/// guest's CPUID shows (TSD and PCE need none on x86-64). Everything else
/// is reserved for this guest: MCE (machine checks are not virtualised),
/// PCIDE, LA57, VMXE, SMXE, PKE, CET and the rest are never shown.
pub fn cr4_allowed(m: &CpuModel) -> u64 {
    let by_feature = [
        (cr4::VME | cr4::PVI, shown::VME),
        (cr4::DE, shown::DE),
        (cr4::PSE, shown::PSE),
        (cr4::PAE, shown::PAE),
        (cr4::PGE, shown::PGE),
        (cr4::OSFXSR, shown::FXSR),
        (cr4::OSXMMEXCPT, shown::SSE),
        (cr4::UMIP, shown::UMIP),
        (cr4::FSGSBASE, shown::FSGSBASE),
        (cr4::OSXSAVE, shown::XSAVE),
        (cr4::SMEP, shown::SMEP),
        (cr4::SMAP, shown::SMAP),
        (cr4::TSD, shown::TSC),
    ];
    by_feature.iter().filter(|(_, f)| m.shows(*f)).fold(cr4::PCE, |a, (bits, _)| a | bits)
}

/// Checks MOV to CR4 of `new` (from `old`) at privilege `cpl` with the
/// guest's `efer`. Ok(true) when the write changes a bit that invalidates
/// the TLB.
pub fn check_cr4_write(cpl: u8, old: u64, new: u64, efer: u64, allowed: u64) -> Result<bool, GuestFault> {
    let gp = Err(GuestFault::GeneralProtection);
    if cpl != 0 || new & !allowed != 0 {
        return gp;
    }
    // Long mode needs PAE paging.
    if efer & efer::LMA != 0 && new & cr4::PAE == 0 {
        return gp;
    }
    Ok((old ^ new) & CR4_TLB_AFFECTING != 0)
}

/// Checks XSETBV of `value` into XCR`index` at privilege `cpl` with the
/// guest's `cr4`, for a guest that may enable the components `supported`.
pub fn check_xsetbv(cpl: u8, cr4: u64, index: u32, value: u64, supported: u64) -> Result<(), GuestFault> {
    if cr4 & cr4::OSXSAVE == 0 {
        return Err(GuestFault::InvalidOpcode);
    }
    if cpl != 0 || index != 0 || !xsave::valid_xcr0(value, supported) {
        return Err(GuestFault::GeneralProtection);
    }
    Ok(())
}

impl super::Vcpu {
    /// The guest's MOV to CR4: checked against its CPUID like the CPU
    /// would, then done (with a TLB flush where the CPU would flush).
    pub fn write_cr4(&mut self, value: u64) -> Result<(), GuestFault> {
        let s = &self.vmcb.save;
        if check_cr4_write(s.cpl, s.cr4, value, s.efer, self.cr4_allowed)? {
            self.request_tlb_flush();
        }
        self.set_reg(Reg::Cr4, value);
        Ok(())
    }

    /// The guest's XSETBV: checked like the CPU would, then XCR`index`
    /// takes `value` (loaded at the next VMRUN).
    pub fn xsetbv(&mut self, index: u32, value: u64) -> Result<(), GuestFault> {
        let s = &self.vmcb.save;
        check_xsetbv(s.cpl, s.cr4, index, value, self.xcr0_supported)?;
        // The host switches every component the guest may enable, so the
        // world switch accepts what the check accepted.
        if self.regs.set_xcr0(value) {
            Ok(())
        } else {
            Err(GuestFault::GeneralProtection)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::cpuid::CpuidResult;
    use guest_x86::regs::xcr0;
    use GuestFault::*;

    fn model(host_xcr0: u64, hide: &[shown::Feature]) -> CpuModel {
        let host = |leaf: u32, sub: u32| {
            let mut r = CpuidResult { eax: !0, ebx: !0, ecx: !0, edx: !0 };
            for f in hide.iter().filter(|f| f.leaf == leaf && f.sub == sub) {
                match f.reg {
                    shown::Reg::Eax => r.eax &= !f.mask(),
                    shown::Reg::Ebx => r.ebx &= !f.mask(),
                    shown::Reg::Ecx => r.ecx &= !f.mask(),
                    shown::Reg::Edx => r.edx &= !f.mask(),
                }
            }
            r
        };
        CpuModel::new(&host, host_xcr0, 1)
    }

    const LINUX_CR4: u64 = cr4::PAE | cr4::PGE | cr4::OSFXSR | cr4::OSXMMEXCPT;
    const LMA: u64 = efer::LMA | efer::LME;

    #[test]
    fn a_full_host_allows_every_shown_feature_and_nothing_hidden() {
        let a = cr4_allowed(&model(xsave::SWITCHABLE, &[]));
        let shown = [cr4::VME, cr4::DE, cr4::PSE, cr4::PAE, cr4::PGE, cr4::OSXSAVE, cr4::SMEP, cr4::SMAP];
        for bit in shown.iter().chain(&[cr4::FSGSBASE, cr4::UMIP, cr4::TSD, cr4::PCE]) {
            assert_ne!(a & bit, 0, "{bit:#x} should be allowed");
        }
        for bit in
            [cr4::MCE, cr4::LA57, cr4::VMXE, cr4::SMXE, cr4::PCIDE, cr4::PKE, cr4::CET, 1 << 15, 1 << 19, 1 << 32]
        {
            assert_eq!(a & bit, 0, "{bit:#x} should be reserved");
            assert_eq!(check_cr4_write(0, LINUX_CR4, LINUX_CR4 | bit, LMA, a), Err(GeneralProtection));
        }
    }

    #[test]
    fn osxsave_needs_xsave_shown() {
        let without = cr4_allowed(&model(0, &[]));
        assert_eq!(without & cr4::OSXSAVE, 0);
        assert_eq!(check_cr4_write(0, LINUX_CR4, LINUX_CR4 | cr4::OSXSAVE, LMA, without), Err(GeneralProtection));
        let with = cr4_allowed(&model(xcr0::X87 | xcr0::SSE, &[]));
        assert_eq!(check_cr4_write(0, LINUX_CR4, LINUX_CR4 | cr4::OSXSAVE, LMA, with), Ok(false));
    }

    #[test]
    fn features_the_host_lacks_are_reserved() {
        let a = cr4_allowed(&model(0, &[shown::SMEP, shown::FSGSBASE, shown::UMIP, shown::VME]));
        for bit in [cr4::SMEP, cr4::FSGSBASE, cr4::UMIP, cr4::VME, cr4::PVI] {
            assert_eq!(a & bit, 0, "{bit:#x}");
        }
        assert_ne!(a & cr4::SMAP, 0);
    }

    #[test]
    fn cr4_write_checks_privilege_and_long_mode_pae() {
        let a = cr4_allowed(&model(0, &[]));
        assert_eq!(check_cr4_write(3, LINUX_CR4, LINUX_CR4, LMA, a), Err(GeneralProtection));
        assert_eq!(check_cr4_write(0, LINUX_CR4, LINUX_CR4 & !cr4::PAE, LMA, a), Err(GeneralProtection));
        assert_eq!(check_cr4_write(0, cr4::PAE, 0, 0, a), Ok(true), "PAE may go while long mode is off");
    }

    #[test]
    fn tlb_affecting_changes_ask_for_a_flush() {
        let a = cr4_allowed(&model(xsave::SWITCHABLE, &[]));
        assert_eq!(check_cr4_write(0, LINUX_CR4, LINUX_CR4 & !cr4::PGE, LMA, a), Ok(true));
        assert_eq!(check_cr4_write(0, LINUX_CR4, LINUX_CR4 | cr4::SMEP, LMA, a), Ok(true));
        assert_eq!(check_cr4_write(0, LINUX_CR4, LINUX_CR4 | cr4::PSE, LMA, a), Ok(true));
        assert_eq!(check_cr4_write(0, LINUX_CR4, LINUX_CR4 | cr4::OSXSAVE | cr4::TSD, LMA, a), Ok(false));
        assert_eq!(check_cr4_write(0, LINUX_CR4, LINUX_CR4, LMA, a), Ok(false));
    }

    #[test]
    fn xsetbv_is_checked_like_hardware() {
        let all = xsave::SWITCHABLE;
        let os = cr4::OSXSAVE;
        assert_eq!(check_xsetbv(0, 0, 0, 3, all), Err(InvalidOpcode), "CR4.OSXSAVE clear");
        assert_eq!(check_xsetbv(3, os, 0, 3, all), Err(GeneralProtection), "CPL 3");
        assert_eq!(check_xsetbv(0, os, 1, 3, all), Err(GeneralProtection), "ECX names XCR1");
        assert_eq!(check_xsetbv(0, os, 0, 2, all), Err(GeneralProtection), "x87 clear");
        assert_eq!(check_xsetbv(0, os, 0, 5, all), Err(GeneralProtection), "AVX without SSE");
        assert_eq!(check_xsetbv(0, os, 0, 0x67, all), Err(GeneralProtection), "AVX-512 in part");
        assert_eq!(check_xsetbv(0, os, 0, 0x207, all), Err(GeneralProtection), "PKRU is not shown");
        assert_eq!(check_xsetbv(0, os, 0, 7, 3), Err(GeneralProtection), "AVX the guest's CPUID lacks");
        assert_eq!(check_xsetbv(0, os, 0, 7, all), Ok(()));
        assert_eq!(check_xsetbv(0, os, 0, 0xE7, all), Ok(()));
        assert_eq!(check_xsetbv(0, os, 0, 1, all), Ok(()), "back to x87 only");
    }
}
