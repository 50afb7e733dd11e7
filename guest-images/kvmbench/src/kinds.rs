//! The round trips kvmbench times, and who serves each one under KVM.

use benchkit::Kind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvmKind {
    /// VMMCALL with RAX = 1 (KVM_HC_VAPIC_POLL_IRQ): answered in the kernel.
    Vmmcall,
    /// CPUID 0x4000_0000: answered in the kernel from the vCPU's CPUID table.
    Cpuid,
    /// `in al, 0x21`: the in-kernel PIC.
    IoKernel,
    /// `in al, 0xE9`: KVM_EXIT_IO, answered by kvmbench.
    IoUser,
    /// A 32-bit read of the IOAPIC's data window: the in-kernel IOAPIC.
    MmioKernel,
    /// A 32-bit read of an address without memory: KVM_EXIT_MMIO, answered by kvmbench.
    MmioUser,
    /// `mov cr8, r9`: the task priority.
    MovCr8,
    /// Nothing: the timing sequence alone.
    Rdtsc,
}

impl Kind for KvmKind {
    const ALL: &'static [KvmKind] = &[
        KvmKind::Vmmcall,
        KvmKind::Cpuid,
        KvmKind::IoKernel,
        KvmKind::IoUser,
        KvmKind::MmioKernel,
        KvmKind::MmioUser,
        KvmKind::MovCr8,
        KvmKind::Rdtsc,
    ];

    fn name(self) -> &'static str {
        match self {
            KvmKind::Vmmcall => "vmcall",
            KvmKind::Cpuid => "cpuid",
            KvmKind::IoKernel => "port_read",
            KvmKind::IoUser => "port_read_user",
            KvmKind::MmioKernel => "mmio_read",
            KvmKind::MmioUser => "mmio_read_user",
            KvmKind::MovCr8 => "mov_cr8",
            KvmKind::Rdtsc => "rdtsc",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            KvmKind::Vmmcall => "VMMCALL VAPIC_POLL_IRQ",
            KvmKind::Cpuid => "CPUID 0x40000000",
            KvmKind::IoKernel => "in al,0x21 (PIC)",
            KvmKind::IoUser => "in al,0xE9 (userspace)",
            KvmKind::MmioKernel => "MMIO read (IOAPIC)",
            KvmKind::MmioUser => "MMIO read (userspace)",
            KvmKind::MovCr8 => "mov cr8,r9",
            KvmKind::Rdtsc => "RDTSC pair, no exit",
        }
    }

    fn is_mmio(self) -> bool {
        matches!(self, KvmKind::MmioKernel | KvmKind::MmioUser)
    }

    fn is_overhead(self) -> bool {
        self == KvmKind::Rdtsc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_fit_the_table() {
        for &k in KvmKind::ALL {
            assert_eq!(KvmKind::from_name(k.name()), Some(k));
            assert!(k.name().len() <= 14 && k.describe().len() <= 24, "{k:?}");
        }
    }
}
