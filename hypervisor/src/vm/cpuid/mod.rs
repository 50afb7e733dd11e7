//! The CPUID a guest sees: a whitelist.
//!
//! [`CpuModel::new`] builds the guest's answers once per VM from the host's
//! CPUID and the declared features and fields of [`shown`]: a bit reaches
//! the guest only if it is declared, the host has it, and what it needs is
//! shown too (AVX needs the guest to be able to enable AVX state in XCR0,
//! ...); the few the VMM emulates (`Needs::Vmm`: the local APIC and its
//! TSC-deadline timer) are shown whatever the host has. Every other bit, and every leaf not declared, is zero; the highest
//! basic and extended leaves are clamped to the declared ones. A few answers
//! are computed rather than copied: the leaf ranges, the APIC ID, the
//! hypervisor bit and leaves 0x4000_0000.., the extended-state leaf 0xD
//! (from the components the host switches), and, per vCPU at the time of
//! the CPUID, OSXSAVE (the guest's CR4.OSXSAVE) and the XSAVE area size for
//! the guest's XCR0. Answering from the table also spares the exit path a
//! host CPUID, itself an exit when the host is a nested VM.
pub use sysabi::cpuid as shown;
pub use sysabi::CpuidResult;
#[cfg(test)]
mod tests;

use crate::arch::xsave::{self, Component};
use arrayvec::ArrayVec;
use guest_x86::regs::{cr4, xcr0};
use shown::{Feature, Needs};

/// Leaf 0x4000_0000 EBX/ECX/EDX: "CertiVisorHV".
pub const SIGNATURE: [u8; 12] = *hvabi::SIGNATURE;
/// The highest hypervisor leaf.
pub const MAX_HV_LEAF: u32 = hvabi::LEAF_ABI;
const HV_BASE: u32 = hvabi::LEAF_SIGNATURE;
const EXT_BASE: u32 = 0x8000_0000;
/// The XSAVE state components listed in leaf 0xD (x87 .. Hi16_ZMM).
const COMPONENTS: usize = 8;

/// What answers depend on besides the host: the vCPU asking and its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GuestView {
    /// The vCPU's index in its VM, which is its APIC ID.
    pub index: u32,
    pub cr4: u64,
    pub xcr0: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    leaf: u32,
    /// The sub-leaf, for leaves that have them (7 and 0xD).
    sub: Option<u32>,
    r: CpuidResult,
}

const MAX_ENTRIES: usize = 24;

fn has_subleaves(leaf: u32) -> bool {
    matches!(leaf, 7 | 0xD)
}

/// The guest's virtual CPU as CPUID describes it.
#[derive(Debug, Clone)]
pub struct CpuModel {
    entries: ArrayVec<Entry, MAX_ENTRIES>,
    max_basic: u32,
    max_ext: u32,
    /// The XCR0 bits the guest may set: the components the host switches.
    xcr0: u64,
    layout: [Component; COMPONENTS],
    hypercall_version: u32,
}

impl CpuModel {
    /// The model for a host whose CPUID is `host` and which switches the
    /// extended state components `host_xcr0` (0: no XSAVE).
    pub fn new(host: &dyn Fn(u32, u32) -> CpuidResult, host_xcr0: u64, hypercall_version: u32) -> CpuModel {
        let host_max_basic = host(0, 0).eax;
        let host_max_ext = host(EXT_BASE, 0).eax;
        let host_xsave = host_max_basic >= 0xD && host(1, 0).ecx & shown::XSAVE.mask() != 0;
        let xcr0 = match host_xcr0 & xsave::SWITCHABLE {
            x if host_xsave && x & xcr0::SSE != 0 && xsave::valid_xcr0(x, x) => x,
            _ => 0,
        };
        let max_basic = host_max_basic.min(if xcr0 != 0 { shown::MAX_BASIC } else { shown::MAX_BASIC_WITHOUT_XSAVE });
        let max_ext = if host_max_ext >= EXT_BASE { host_max_ext.min(shown::MAX_EXTENDED) } else { EXT_BASE };
        let mut layout = [Component::default(); COMPONENTS];
        for (i, c) in layout.iter_mut().enumerate().skip(2) {
            if xcr0 & (1 << i) != 0 {
                let r = host(0xD, i as u32);
                *c = Component { size: r.eax, offset: r.ebx };
            }
        }
        let mut m = CpuModel { entries: ArrayVec::new(), max_basic, max_ext, xcr0, layout, hypercall_version };
        let in_range = |leaf: u32| leaf <= max_basic || (EXT_BASE..=max_ext).contains(&leaf);
        let needs_met = |n: Needs| match n {
            Needs::Host | Needs::Vmm => true,
            Needs::Xsave => xcr0 != 0,
            Needs::Avx => xcr0 & xcr0::AVX != 0,
            Needs::Avx512 => xcr0 & xcr0::AVX512 == xcr0::AVX512,
        };
        let keys = shown::FEATURES.iter().map(|f| (f.leaf, f.sub)).chain(shown::FIELDS.iter().map(|f| (f.leaf, 0)));
        for (leaf, sub) in keys.chain([(0xD, 0)]) {
            if !in_range(leaf) || m.entry(leaf, sub).is_some() {
                continue;
            }
            let h = host(leaf, sub);
            let mut r = CpuidResult::default();
            for f in shown::FEATURES.iter().filter(|f| f.leaf == leaf && f.sub == sub && needs_met(f.needs)) {
                let have = if f.needs == Needs::Vmm { f.mask() } else { h.reg(f.reg) };
                *r.reg_mut(f.reg) |= have & f.mask();
            }
            for f in shown::FIELDS.iter().filter(|f| f.leaf == leaf && sub == 0) {
                *r.reg_mut(f.reg) |= h.reg(f.reg) & f.mask;
            }
            m.push(leaf, sub, r);
        }
        m.compute_fixed_answers(host);
        m
    }

    fn push(&mut self, leaf: u32, sub: u32, r: CpuidResult) {
        let sub = has_subleaves(leaf).then_some(sub);
        // The declared list has fewer distinct leaves than MAX_ENTRIES
        // (checked by a test), so this never drops an entry.
        let _ = self.entries.try_push(Entry { leaf, sub, r });
    }

    fn entry(&self, leaf: u32, sub: u32) -> Option<&Entry> {
        self.entries.iter().find(|e| e.leaf == leaf && e.sub.is_none_or(|s| s == sub))
    }

    fn entry_mut(&mut self, leaf: u32, sub: u32) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.leaf == leaf && e.sub.is_none_or(|s| s == sub))
    }

    /// The answers that are computed rather than masked from the host's.
    fn compute_fixed_answers(&mut self, host: &dyn Fn(u32, u32) -> CpuidResult) {
        let (max_basic, max_ext, xcr0) = (self.max_basic, self.max_ext, self.xcr0);
        if let Some(e) = self.entry_mut(0, 0) {
            e.r.eax = max_basic;
        }
        if let Some(e) = self.entry_mut(EXT_BASE, 0) {
            e.r.eax = max_ext;
        }
        if let Some(e) = self.entry_mut(1, 0) {
            // One logical processor per package; the APIC ID is added per
            // vCPU, OSXSAVE follows the guest's CR4.
            e.r.ebx |= 1 << 16;
            e.r.ecx |= shown::HYPERVISOR.mask();
            e.r.ecx &= !shown::OSXSAVE.mask();
        }
        if let Some(e) = self.entry_mut(7, 0) {
            e.r.eax = 0; // the highest sub-leaf: only sub-leaf 0 is shown
        }
        if xcr0 == 0 {
            return;
        }
        let all = xsave::area_size(xcr0, |i| self.layout.get(i as usize).copied().unwrap_or_default());
        if let Some(e) = self.entry_mut(0xD, 0) {
            e.r = CpuidResult { eax: xcr0 as u32, ebx: 0, ecx: all, edx: (xcr0 >> 32) as u32 };
        }
        for i in 2..COMPONENTS {
            if xcr0 & (1 << i) != 0 {
                let c = self.layout[i];
                // ECX bit 1: the component's alignment in the compacted
                // format, a fact about the CPU; bit 0 (supervisor) stays 0.
                let aligned = host(0xD, i as u32).ecx & 0b10;
                self.push(0xD, i as u32, CpuidResult { eax: c.size, ebx: c.offset, ecx: aligned, edx: 0 });
            }
        }
    }

    /// CPUID(`leaf`, `sub`)'s answer depends on the vCPU and its state
    /// ([`GuestView`]), not only on the model: leaf 1 (the APIC ID, OSXSAVE)
    /// and leaf 0xD subleaf 0 (the XSAVE area size for the guest's XCR0).
    /// Keep in step with [`Self::answer`].
    pub fn depends_on_state(leaf: u32, sub: u32) -> bool {
        matches!((leaf, sub), (1, _) | (0xD, 0))
    }

    /// What CPUID(`leaf`, `sub`) returns to the vCPU described by `g`.
    pub fn answer(&self, leaf: u32, sub: u32, g: &GuestView) -> CpuidResult {
        match leaf {
            HV_BASE => {
                let word =
                    |i: usize| u32::from_le_bytes([SIGNATURE[i], SIGNATURE[i + 1], SIGNATURE[i + 2], SIGNATURE[i + 3]]);
                return CpuidResult { eax: MAX_HV_LEAF, ebx: word(0), ecx: word(4), edx: word(8) };
            }
            MAX_HV_LEAF => return CpuidResult { eax: self.hypercall_version, ..Default::default() },
            _ => {}
        }
        let in_range = leaf <= self.max_basic || (EXT_BASE..=self.max_ext).contains(&leaf);
        let Some(e) = self.entry(leaf, sub).filter(|_| in_range) else {
            return CpuidResult::default();
        };
        let mut r = e.r;
        match (leaf, sub) {
            (1, _) => {
                r.ebx |= g.index << 24;
                if self.xcr0 != 0 && g.cr4 & cr4::OSXSAVE != 0 {
                    r.ecx |= shown::OSXSAVE.mask();
                }
            }
            // The size of an XSAVE area for what the guest's XCR0 enables.
            (0xD, 0) => r.ebx = xsave::area_size(g.xcr0 & self.xcr0, |i| self.layout(i)),
            _ => {}
        }
        r
    }

    fn layout(&self, i: u32) -> Component {
        self.layout.get(i as usize).copied().unwrap_or_default()
    }

    /// The guest's CPUID shows `f` (OSXSAVE: can ever show it).
    pub fn shows(&self, f: Feature) -> bool {
        if f == shown::OSXSAVE {
            return self.shows(shown::XSAVE);
        }
        let in_range = f.leaf <= self.max_basic || (EXT_BASE..=self.max_ext).contains(&f.leaf);
        in_range && self.entry(f.leaf, f.sub).is_some_and(|e| e.r.reg(f.reg) & f.mask() != 0)
    }

    /// The XCR0 bits the guest may set (leaf 0xD sub-leaf 0 EDX:EAX); 0
    /// when XSAVE is hidden.
    pub fn xcr0_supported(&self) -> u64 {
        self.xcr0
    }
}

/// The host CPUID leaves that matter to a model, for logs and test dumps:
/// the basic leaves (sub-leaves of 7 and 0xD), then the extended ones.
pub fn dump(host: &dyn Fn(u32, u32) -> CpuidResult, mut out: impl FnMut(u32, u32, CpuidResult)) {
    let max_basic = host(0, 0).eax.min(0x3F);
    for leaf in 0..=max_basic {
        let first = host(leaf, 0);
        out(leaf, 0, first);
        let last = match leaf {
            7 => first.eax.min(3),
            0xD => 63,
            _ => 0,
        };
        for sub in 1..=last {
            let r = host(leaf, sub);
            if r != CpuidResult::default() {
                out(leaf, sub, r);
            }
        }
    }
    let max_ext = host(EXT_BASE, 0).eax.clamp(EXT_BASE, EXT_BASE + 0x3F);
    for leaf in EXT_BASE..=max_ext {
        out(leaf, 0, host(leaf, 0));
    }
}
