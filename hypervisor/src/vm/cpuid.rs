//! The CPUID a guest sees: the host's, filtered.
//!
//! The guest is told it runs under a hypervisor (leaf 1 ECX bit 31, and
//! leaves 0x4000_0000..), and is not shown what we do not virtualise: SVM
//! and VMX, XSAVE and the AVX family (only the legacy FXSAVE state is
//! switched), the local APIC, x2APIC, MONITOR/MWAIT, MTRRs, performance
//! counters, and the TSC deadline timer.

/// The register values of one CPUID answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuidResult {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

/// Leaf 0x4000_0000 EBX/ECX/EDX: "CertiVisorHV".
pub const SIGNATURE: [u8; 12] = *hvabi::SIGNATURE;
/// The highest hypervisor leaf.
pub const MAX_HV_LEAF: u32 = hvabi::LEAF_ABI;
/// The highest basic leaf we pass on (clamped to what we filter).
const MAX_BASIC_LEAF: u32 = 0x7;

mod bits {
    // Leaf 1 ECX
    pub const MONITOR: u32 = 1 << 3;
    pub const VMX: u32 = 1 << 5;
    pub const SMX: u32 = 1 << 6;
    pub const PDCM: u32 = 1 << 15;
    pub const X2APIC: u32 = 1 << 21;
    pub const TSC_DEADLINE: u32 = 1 << 24;
    pub const XSAVE: u32 = 1 << 26;
    pub const OSXSAVE: u32 = 1 << 27;
    pub const AVX: u32 = 1 << 28;
    pub const F16C: u32 = 1 << 29;
    pub const HYPERVISOR: u32 = 1 << 31;
    // Leaf 1 EDX
    pub const APIC: u32 = 1 << 9;
    pub const MTRR: u32 = 1 << 12;
    pub const MCE: u32 = 1 << 7;
    pub const MCA: u32 = 1 << 14;
    pub const ACPI: u32 = 1 << 22;
    // Leaf 7 EBX: what we keep (no AVX2/AVX-512/TSX/SGX/MPX/PT/RDT).
    pub const LEAF7_EBX_KEEP: u32 = (1 << 0) // FSGSBASE
        | (1 << 3) // BMI1
        | (1 << 7) // SMEP
        | (1 << 8) // BMI2
        | (1 << 9) // ERMS
        | (1 << 18) // RDSEED
        | (1 << 19) // ADX
        | (1 << 20) // SMAP
        | (1 << 23) // CLFLUSHOPT
        | (1 << 29); // SHA
                     // Leaf 7 ECX: UMIP only.
    pub const LEAF7_ECX_KEEP: u32 = 1 << 2;
    // Leaf 8000_0001 ECX
    pub const SVM: u32 = 1 << 2;
    pub const EXTAPIC: u32 = 1 << 3;
    pub const SKINIT: u32 = 1 << 12;
    pub const WDT: u32 = 1 << 13;
    pub const PERFCTR_CORE: u32 = 1 << 23;
}

/// What the guest sees for CPUID(`leaf`, `subleaf`), given what the host
/// CPU answered (`host`) and the guest's vCPU index.
pub fn filter(leaf: u32, subleaf: u32, host: CpuidResult, vcpu: u32, hypercall_version: u32) -> CpuidResult {
    let _ = subleaf;
    let zero = CpuidResult::default();
    match leaf {
        0 => CpuidResult { eax: host.eax.min(MAX_BASIC_LEAF), ..host },
        1 => CpuidResult {
            // EBX: APIC ID in 31:24, one logical CPU, CLFLUSH size kept.
            ebx: (host.ebx & 0x0000_FF00) | (vcpu << 24) | (1 << 16),
            ecx: (host.ecx
                & !(bits::MONITOR
                    | bits::VMX
                    | bits::SMX
                    | bits::PDCM
                    | bits::X2APIC
                    | bits::TSC_DEADLINE
                    | bits::XSAVE
                    | bits::OSXSAVE
                    | bits::AVX
                    | bits::F16C))
                | bits::HYPERVISOR,
            edx: host.edx & !(bits::APIC | bits::MTRR | bits::MCE | bits::MCA | bits::ACPI | (1 << 28)),
            ..host
        },
        // Cache descriptors and deterministic cache parameters pass through.
        2 | 4 => host,
        7 if subleaf == 0 => {
            CpuidResult { eax: 0, ebx: host.ebx & bits::LEAF7_EBX_KEEP, ecx: host.ecx & bits::LEAF7_ECX_KEEP, edx: 0 }
        }
        0x4000_0000 => CpuidResult {
            eax: MAX_HV_LEAF,
            ebx: u32::from_le_bytes([SIGNATURE[0], SIGNATURE[1], SIGNATURE[2], SIGNATURE[3]]),
            ecx: u32::from_le_bytes([SIGNATURE[4], SIGNATURE[5], SIGNATURE[6], SIGNATURE[7]]),
            edx: u32::from_le_bytes([SIGNATURE[8], SIGNATURE[9], SIGNATURE[10], SIGNATURE[11]]),
        },
        // Hypervisor leaf 1: EAX = hypercall ABI version.
        0x4000_0001 => CpuidResult { eax: hypercall_version, ..zero },
        0x8000_0000 => CpuidResult { eax: host.eax.min(0x8000_0008), ..host },
        0x8000_0001 => CpuidResult {
            ecx: host.ecx & !(bits::SVM | bits::EXTAPIC | bits::SKINIT | bits::WDT | bits::PERFCTR_CORE),
            ..host
        },
        // Brand string, cache/TLB info, address sizes.
        0x8000_0002..=0x8000_0006 => host,
        0x8000_0008 => CpuidResult { ebx: 0, ecx: 0, ..host },
        _ => zero,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_ones() -> CpuidResult {
        CpuidResult { eax: u32::MAX, ebx: u32::MAX, ecx: u32::MAX, edx: u32::MAX }
    }

    #[test]
    fn hypervisor_bit_is_set_and_virtualisation_is_hidden() {
        let r = filter(1, 0, CpuidResult::default(), 0, 1);
        assert_ne!(r.ecx & (1 << 31), 0);
        let r = filter(1, 0, all_ones(), 0, 1);
        assert_eq!(r.ecx & (1 << 5), 0, "VMX must be hidden");
        assert_eq!(r.ecx & (1 << 26), 0, "XSAVE must be hidden");
        assert_eq!(r.edx & (1 << 9), 0, "the LAPIC is not emulated");
        let r = filter(0x8000_0001, 0, all_ones(), 0, 1);
        assert_eq!(r.ecx & (1 << 2), 0, "SVM must be hidden");
        assert_eq!(filter(0x8000_000A, 0, all_ones(), 0, 1), CpuidResult::default());
    }

    #[test]
    fn hypervisor_leaf_returns_signature_and_max_leaf() {
        let r = filter(0x4000_0000, 0, all_ones(), 0, 1);
        assert_eq!(r.eax, MAX_HV_LEAF);
        let mut sig = Vec::new();
        for reg in [r.ebx, r.ecx, r.edx] {
            sig.extend_from_slice(&reg.to_le_bytes());
        }
        assert_eq!(&sig, b"CertiVisorHV");
        assert_eq!(filter(0x4000_0001, 0, all_ones(), 0, 7).eax, 7);
    }

    #[test]
    fn apic_id_is_the_vcpu_index() {
        assert_eq!(filter(1, 0, all_ones(), 3, 1).ebx >> 24, 3);
    }

    #[test]
    fn unknown_leaves_are_zero() {
        assert_eq!(filter(0x4000_0002, 0, all_ones(), 0, 1), CpuidResult::default());
        assert_eq!(filter(0xD, 0, all_ones(), 0, 1), CpuidResult::default());
    }
}
