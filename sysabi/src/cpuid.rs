//! The declared virtual CPU: every CPUID feature bit and field a guest may
//! see. A bit reaches the guest only if it is listed here *and* the host
//! CPU has it (and what it depends on is shown too); every other bit, and
//! every leaf not listed, reads as zero. `docs/virtual-cpu.md` gives the
//! reason for each bit shown and each bit hidden.

/// A register of a CPUID answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reg {
    Eax,
    Ebx,
    Ecx,
    Edx,
}

/// The register values of one CPUID answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuidResult {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

impl CpuidResult {
    pub fn reg(&self, r: Reg) -> u32 {
        match r {
            Reg::Eax => self.eax,
            Reg::Ebx => self.ebx,
            Reg::Ecx => self.ecx,
            Reg::Edx => self.edx,
        }
    }

    pub fn reg_mut(&mut self, r: Reg) -> &mut u32 {
        match r {
            Reg::Eax => &mut self.eax,
            Reg::Ebx => &mut self.ebx,
            Reg::Ecx => &mut self.ecx,
            Reg::Edx => &mut self.edx,
        }
    }
}

/// What a shown feature needs besides the host having it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Nothing: the guest runs it natively and no host state is involved.
    Host,
    /// The host switches extended state with XSAVE.
    Xsave,
    /// The guest may enable AVX state in XCR0 (VEX-encoded instructions
    /// use YMM registers).
    Avx,
    /// The guest may enable all three AVX-512 state components.
    Avx512,
    /// Nothing from the host: the VMM emulates the feature (the local
    /// APIC and its TSC-deadline timer), so it is shown whatever the host
    /// CPU has.
    Vmm,
}

/// One feature bit of a leaf and sub-leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feature {
    pub name: &'static str,
    pub leaf: u32,
    pub sub: u32,
    pub reg: Reg,
    pub bit: u8,
    pub needs: Needs,
}

impl Feature {
    pub const fn mask(&self) -> u32 {
        1 << self.bit
    }
}

/// A feature of sub-leaf 0 (or of a leaf without sub-leaves).
const fn f(name: &'static str, leaf: u32, reg: Reg, bit: u8, needs: Needs) -> Feature {
    Feature { name, leaf, sub: 0, reg, bit, needs }
}

/// A multi-bit field passed through from the host as it is: identification,
/// cache and TLB descriptions, address sizes, the vendor and brand strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub leaf: u32,
    pub reg: Reg,
    pub mask: u32,
}

const fn field(name: &'static str, leaf: u32, reg: Reg, mask: u32) -> Field {
    Field { name, leaf, reg, mask }
}

use Needs::*;
use Reg::*;

// Features the hypervisor itself depends on, by name.
pub const XSAVE: Feature = f("xsave", 1, Ecx, 26, Xsave);
pub const OSXSAVE: Feature = f("osxsave", 1, Ecx, 27, Xsave);
pub const HYPERVISOR: Feature = f("hypervisor", 1, Ecx, 31, Host);
/// The local APIC timer's TSC-deadline mode and IA32_TSC_DEADLINE, which
/// the VMM's local APIC model has.
pub const TSC_DEADLINE: Feature = f("tsc_deadline_timer", 1, Ecx, 24, Vmm);
pub const APIC: Feature = f("apic", 1, Edx, 9, Vmm);
pub const VME: Feature = f("vme", 1, Edx, 1, Host);
pub const DE: Feature = f("de", 1, Edx, 2, Host);
pub const PSE: Feature = f("pse", 1, Edx, 3, Host);
pub const TSC: Feature = f("tsc", 1, Edx, 4, Host);
pub const PAE: Feature = f("pae", 1, Edx, 6, Host);
pub const PGE: Feature = f("pge", 1, Edx, 13, Host);
pub const FXSR: Feature = f("fxsr", 1, Edx, 24, Host);
pub const SSE: Feature = f("sse", 1, Edx, 25, Host);
pub const FSGSBASE: Feature = f("fsgsbase", 7, Ebx, 0, Host);
pub const SMEP: Feature = f("smep", 7, Ebx, 7, Host);
pub const SMAP: Feature = f("smap", 7, Ebx, 20, Host);
pub const UMIP: Feature = f("umip", 7, Ecx, 2, Host);
pub const RDPID: Feature = f("rdpid", 7, Ecx, 22, Host);
pub const RDTSCP: Feature = f("rdtscp", 0x8000_0001, Edx, 27, Host);
pub const PDPE1GB: Feature = f("pdpe1gb", 0x8000_0001, Edx, 26, Host);
pub const NX: Feature = f("nx", 0x8000_0001, Edx, 20, Host);
pub const FFXSR: Feature = f("fxsr_opt", 0x8000_0001, Edx, 25, Host);
pub const INVARIANT_TSC: Feature = f("invariant_tsc", 0x8000_0007, Edx, 8, Host);

/// Every feature bit the guest may see.
pub const FEATURES: &[Feature] = &[
    // Leaf 1 ECX.
    f("sse3", 1, Ecx, 0, Host),
    f("pclmulqdq", 1, Ecx, 1, Host),
    f("ssse3", 1, Ecx, 9, Host),
    f("fma", 1, Ecx, 12, Avx),
    f("cx16", 1, Ecx, 13, Host),
    f("sse4_1", 1, Ecx, 19, Host),
    f("sse4_2", 1, Ecx, 20, Host),
    f("movbe", 1, Ecx, 22, Host),
    f("popcnt", 1, Ecx, 23, Host),
    f("aes", 1, Ecx, 25, Host),
    XSAVE,
    OSXSAVE,
    f("avx", 1, Ecx, 28, Avx),
    f("f16c", 1, Ecx, 29, Avx),
    TSC_DEADLINE,
    f("rdrand", 1, Ecx, 30, Host),
    HYPERVISOR,
    // Leaf 1 EDX.
    f("fpu", 1, Edx, 0, Host),
    VME,
    DE,
    PSE,
    TSC,
    f("msr", 1, Edx, 5, Host),
    PAE,
    f("cx8", 1, Edx, 8, Host),
    // The VMM emulates an xAPIC (the page at 0xFEE0_0000, IA32_APIC_BASE).
    APIC,
    f("sep", 1, Edx, 11, Host),
    PGE,
    f("cmov", 1, Edx, 15, Host),
    f("pat", 1, Edx, 16, Host),
    f("pse36", 1, Edx, 17, Host),
    f("clflush", 1, Edx, 19, Host),
    f("mmx", 1, Edx, 23, Host),
    FXSR,
    SSE,
    f("sse2", 1, Edx, 26, Host),
    // Leaf 7 sub-leaf 0 EBX.
    FSGSBASE,
    f("bmi1", 7, Ebx, 3, Host),
    f("avx2", 7, Ebx, 5, Avx),
    f("fdp_excptn_only", 7, Ebx, 6, Host),
    SMEP,
    f("bmi2", 7, Ebx, 8, Host),
    f("erms", 7, Ebx, 9, Host),
    f("zero_fcs_fds", 7, Ebx, 13, Host),
    f("avx512f", 7, Ebx, 16, Avx512),
    f("avx512dq", 7, Ebx, 17, Avx512),
    f("rdseed", 7, Ebx, 18, Host),
    f("adx", 7, Ebx, 19, Host),
    SMAP,
    f("avx512ifma", 7, Ebx, 21, Avx512),
    f("clflushopt", 7, Ebx, 23, Host),
    f("clwb", 7, Ebx, 24, Host),
    f("avx512pf", 7, Ebx, 26, Avx512),
    f("avx512er", 7, Ebx, 27, Avx512),
    f("avx512cd", 7, Ebx, 28, Avx512),
    f("sha_ni", 7, Ebx, 29, Host),
    f("avx512bw", 7, Ebx, 30, Avx512),
    f("avx512vl", 7, Ebx, 31, Avx512),
    // Leaf 7 sub-leaf 0 ECX.
    f("avx512vbmi", 7, Ecx, 1, Avx512),
    UMIP,
    f("avx512_vbmi2", 7, Ecx, 6, Avx512),
    f("gfni", 7, Ecx, 8, Host),
    f("vaes", 7, Ecx, 9, Avx),
    f("vpclmulqdq", 7, Ecx, 10, Avx),
    f("avx512_vnni", 7, Ecx, 11, Avx512),
    f("avx512_bitalg", 7, Ecx, 12, Avx512),
    f("avx512_vpopcntdq", 7, Ecx, 14, Avx512),
    RDPID,
    // Leaf 7 sub-leaf 0 EDX.
    f("avx512_4vnniw", 7, Edx, 2, Avx512),
    f("avx512_4fmaps", 7, Edx, 3, Avx512),
    f("fsrm", 7, Edx, 4, Host),
    f("avx512_vp2intersect", 7, Edx, 8, Avx512),
    f("avx512_fp16", 7, Edx, 23, Avx512),
    // Leaf 0xD sub-leaf 1 EAX.
    Feature { sub: 1, ..f("xsaveopt", 0xD, Eax, 0, Xsave) },
    Feature { sub: 1, ..f("xgetbv1", 0xD, Eax, 2, Xsave) },
    // Leaf 0x8000_0001 ECX.
    f("lahf_lm", 0x8000_0001, Ecx, 0, Host),
    f("cr8_legacy", 0x8000_0001, Ecx, 4, Host),
    f("abm", 0x8000_0001, Ecx, 5, Host),
    f("sse4a", 0x8000_0001, Ecx, 6, Host),
    f("misalignsse", 0x8000_0001, Ecx, 7, Host),
    f("3dnowprefetch", 0x8000_0001, Ecx, 8, Host),
    f("xop", 0x8000_0001, Ecx, 11, Avx),
    f("fma4", 0x8000_0001, Ecx, 16, Avx),
    f("tbm", 0x8000_0001, Ecx, 21, Host),
    // Leaf 0x8000_0001 EDX (the AMD copies of leaf 1 EDX bits, and more).
    f("fpu", 0x8000_0001, Edx, 0, Host),
    f("vme", 0x8000_0001, Edx, 1, Host),
    f("de", 0x8000_0001, Edx, 2, Host),
    f("pse", 0x8000_0001, Edx, 3, Host),
    f("tsc", 0x8000_0001, Edx, 4, Host),
    f("msr", 0x8000_0001, Edx, 5, Host),
    f("pae", 0x8000_0001, Edx, 6, Host),
    f("cx8", 0x8000_0001, Edx, 8, Host),
    f("apic", 0x8000_0001, Edx, 9, Vmm),
    f("syscall", 0x8000_0001, Edx, 11, Host),
    f("pge", 0x8000_0001, Edx, 13, Host),
    f("cmov", 0x8000_0001, Edx, 15, Host),
    f("pat", 0x8000_0001, Edx, 16, Host),
    f("pse36", 0x8000_0001, Edx, 17, Host),
    NX,
    f("mmxext", 0x8000_0001, Edx, 22, Host),
    f("mmx", 0x8000_0001, Edx, 23, Host),
    f("fxsr", 0x8000_0001, Edx, 24, Host),
    FFXSR,
    PDPE1GB,
    RDTSCP,
    f("lm", 0x8000_0001, Edx, 29, Host),
    f("3dnowext", 0x8000_0001, Edx, 30, Host),
    f("3dnow", 0x8000_0001, Edx, 31, Host),
    // Leaf 0x8000_0007 EDX.
    INVARIANT_TSC,
    // Leaf 0x8000_0008 EBX.
    f("clzero", 0x8000_0008, Ebx, 0, Host),
    f("xsaveerptr", 0x8000_0008, Ebx, 2, Host),
    f("ssb_no", 0x8000_0008, Ebx, 26, Host),
    f("btc_no", 0x8000_0008, Ebx, 29, Host),
];

/// Every multi-bit field the guest sees as the host has it.
pub const FIELDS: &[Field] = &[
    field("vendor", 0, Ebx, !0),
    field("vendor", 0, Ecx, !0),
    field("vendor", 0, Edx, !0),
    field("stepping, model, family, type, extended model and family", 1, Eax, 0x0FFF_3FFF),
    field("clflush line size", 1, Ebx, 0x0000_FF00),
    field("vendor", 0x8000_0000, Ebx, !0),
    field("vendor", 0x8000_0000, Ecx, !0),
    field("vendor", 0x8000_0000, Edx, !0),
    field("extended family, model, stepping", 0x8000_0001, Eax, 0x0FFF_3FFF),
    field("brand id, package type", 0x8000_0001, Ebx, !0),
    field("brand string", 0x8000_0002, Eax, !0),
    field("brand string", 0x8000_0002, Ebx, !0),
    field("brand string", 0x8000_0002, Ecx, !0),
    field("brand string", 0x8000_0002, Edx, !0),
    field("brand string", 0x8000_0003, Eax, !0),
    field("brand string", 0x8000_0003, Ebx, !0),
    field("brand string", 0x8000_0003, Ecx, !0),
    field("brand string", 0x8000_0003, Edx, !0),
    field("brand string", 0x8000_0004, Eax, !0),
    field("brand string", 0x8000_0004, Ebx, !0),
    field("brand string", 0x8000_0004, Ecx, !0),
    field("brand string", 0x8000_0004, Edx, !0),
    field("L1 TLB (2M/4M pages)", 0x8000_0005, Eax, !0),
    field("L1 TLB (4K pages)", 0x8000_0005, Ebx, !0),
    field("L1 data cache", 0x8000_0005, Ecx, !0),
    field("L1 instruction cache", 0x8000_0005, Edx, !0),
    field("L2 TLB (2M/4M pages)", 0x8000_0006, Eax, !0),
    field("L2 TLB (4K pages)", 0x8000_0006, Ebx, !0),
    field("L2 cache", 0x8000_0006, Ecx, !0),
    field("L3 cache", 0x8000_0006, Edx, !0),
    field("physical and linear address sizes", 0x8000_0008, Eax, 0x0000_FFFF),
];

/// The highest basic leaf the guest sees (leaf 0xD, extended state).
pub const MAX_BASIC: u32 = 0xD;
/// The highest basic leaf without XSAVE (leaf 7, structured features).
pub const MAX_BASIC_WITHOUT_XSAVE: u32 = 0x7;
/// The highest extended leaf the guest sees (address sizes).
pub const MAX_EXTENDED: u32 = 0x8000_0008;
