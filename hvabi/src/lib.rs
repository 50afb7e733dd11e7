//! The Certivisor hypercall ABI, version 2: the one definition that the
//! hypervisor (which serves the calls) and guest tools such as `hvctl`
//! (which make them) both build on, so that the two cannot drift apart.
//! docs/hypercalls.md is the prose reference.
//!
//! Plain data and pure functions only; `no_std`, no dependencies.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

/// The ABI version: VERSION returns it, CPUID 0x4000_0001 EAX reports it.
pub const ABI_VERSION: u32 = 2;

/// CPUID leaf 0x4000_0000 EBX, ECX, EDX.
pub const SIGNATURE: &[u8; 12] = b"CertiVisorHV";
/// The CPUID leaf with the signature; its EAX is the highest hypervisor leaf.
pub const LEAF_SIGNATURE: u32 = 0x4000_0000;
/// The CPUID leaf whose EAX is the ABI version.
pub const LEAF_ABI: u32 = 0x4000_0001;

/// Call numbers (RAX).
pub mod nr {
    pub const VERSION: u64 = 0;
    pub const PING: u64 = 1;
    pub const LOOKUP: u64 = 2;
    pub const INFO: u64 = 3;
    pub const STATS: u64 = 4;
    pub const STATS_RESET: u64 = 5;
    pub const CONSOLE_WRITE: u64 = 6;
    pub const CHAN_SEND: u64 = 7;
    pub const CHAN_RECV: u64 = 8;
    pub const YIELD: u64 = 9;
    pub const POWEROFF: u64 = 10;
}

/// Who may make a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    /// Guest user mode too (CPL 3).
    Any,
    /// Guest kernel mode only (CPL 0); user mode gets -EPERM.
    Kernel,
}

/// Every call: (number, name for LOOKUP, privilege), by number.
pub const CALLS: [(u64, &str, Privilege); 11] = [
    (nr::VERSION, "version", Privilege::Any),
    (nr::PING, "ping", Privilege::Any),
    (nr::LOOKUP, "lookup", Privilege::Any),
    (nr::INFO, "info", Privilege::Any),
    (nr::STATS, "stats", Privilege::Any),
    (nr::STATS_RESET, "stats_reset", Privilege::Kernel),
    (nr::CONSOLE_WRITE, "console_write", Privilege::Any),
    (nr::CHAN_SEND, "chan_send", Privilege::Any),
    (nr::CHAN_RECV, "chan_recv", Privilege::Any),
    (nr::YIELD, "yield", Privilege::Any),
    (nr::POWEROFF, "poweroff", Privilege::Kernel),
];

/// The call number LOOKUP returns for `name`.
pub fn lookup(name: &[u8]) -> Option<u64> {
    CALLS.iter().find(|(_, n, _)| n.as_bytes() == name).map(|(nr, _, _)| *nr)
}

/// Whether code at `cpl` may make call `nr`. Unknown calls are allowed
/// here: they fail with -ENOSYS whatever the CPL.
pub fn allowed(nr: u64, cpl: u64) -> bool {
    CALLS.iter().find(|(n, _, _)| *n == nr).is_none_or(|(_, _, p)| *p == Privilege::Any || cpl == 0)
}

/// Negative errno values returned in RAX.
pub mod errno {
    pub const EPERM: i64 = -1;
    pub const ENOENT: i64 = -2;
    pub const E2BIG: i64 = -7;
    pub const EAGAIN: i64 = -11;
    pub const EFAULT: i64 = -14;
    pub const EINVAL: i64 = -22;
    pub const ENOSYS: i64 = -38;
}

/// The symbolic name of an ABI error code.
pub fn errno_name(result: i64) -> Option<&'static str> {
    Some(match result {
        errno::EPERM => "EPERM",
        errno::ENOENT => "ENOENT",
        errno::E2BIG => "E2BIG",
        errno::EAGAIN => "EAGAIN",
        errno::EFAULT => "EFAULT",
        errno::EINVAL => "EINVAL",
        errno::ENOSYS => "ENOSYS",
        _ => return None,
    })
}

/// Longest name LOOKUP accepts.
pub const MAX_NAME: usize = 32;
/// Longest CONSOLE_WRITE text.
pub const MAX_CONSOLE: usize = 4096;
/// Longest channel message.
pub const MAX_MESSAGE: usize = 256;

/// INFO's reply (little-endian).
pub mod info {
    /// "CVIN".
    pub const MAGIC: u32 = 0x4E49_5643;
    pub const LEN: usize = 64;
    pub const MAGIC_AT: usize = 0;
    pub const ABI_VERSION_AT: usize = 4;
    pub const VM_ID_AT: usize = 8;
    pub const VCPU_COUNT_AT: usize = 12;
    pub const MEM_BYTES_AT: usize = 16;
    pub const VCPU_INDEX_AT: usize = 24;
    pub const TSC_HZ_AT: usize = 32;
    /// The hypervisor's name, NUL-padded.
    pub const NAME_AT: usize = 40;
    pub const NAME_LEN: usize = 24;
}

/// STATS's reply (little-endian): a header, then one record per exit reason.
pub mod stats {
    pub const MAGIC: u32 = 0x5354_5643;
    pub const VERSION: u32 = 1;
    /// magic u32, version u32, nreasons u32, nbuckets u32, tsc_hz u64.
    pub const HEADER_LEN: usize = 24;
    /// log2 buckets of handling cycles: bucket i counts [2^i, 2^(i+1)).
    pub const BUCKETS: usize = 32;
    /// The reason's name, NUL-padded, at the start of each record.
    pub const NAME_LEN: usize = 16;
    /// name, then count, total, min, max (u64 each), then the buckets.
    pub const RECORD_LEN: usize = NAME_LEN + 4 * 8 + 8 * BUCKETS;

    /// Bytes of a reply with `nreasons` records, without the CPU section.
    pub const fn len(nreasons: usize) -> usize {
        HEADER_LEN + nreasons * RECORD_LEN
    }

    /// After the records, if the caller's buffer has room for it: the
    /// calling VM's use of the CPU since it started (STATS_RESET leaves it
    /// alone). A caller whose buffer ends at the records gets them alone.
    pub mod cpu {
        /// "CVCP".
        pub const MAGIC: u32 = 0x5043_5643;
        /// magic u32, reserved u32 (0), then guest_ns, vmm_ns and
        /// elapsed_ns (u64 each).
        pub const LEN: usize = 32;
        pub const MAGIC_AT: usize = 0;
        /// Nanoseconds in guest mode (VMRUN to #VMEXIT).
        pub const GUEST_NS_AT: usize = 8;
        /// Nanoseconds on a CPU outside guest mode: the VMM, and the
        /// kernel's work for it.
        pub const VMM_NS_AT: usize = 16;
        /// Nanoseconds since the VM's process was created.
        pub const ELAPSED_NS_AT: usize = 24;
        const _: () = assert!(ELAPSED_NS_AT + 8 == LEN, "the last field ends the section");
    }

    /// Bytes of a reply with `nreasons` records and the CPU section.
    pub const fn len_with_cpu(nreasons: usize) -> usize {
        len(nreasons) + cpu::LEN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_numbered_in_order_with_unique_names() {
        for (i, (nr, name, _)) in CALLS.iter().enumerate() {
            assert_eq!(*nr, i as u64);
            assert_eq!(lookup(name.as_bytes()), Some(*nr));
        }
        assert_eq!(lookup(b"nonesuch"), None);
    }

    #[test]
    fn kernel_only_calls_are_refused_from_user_mode() {
        assert!(!allowed(nr::STATS_RESET, 3));
        assert!(!allowed(nr::POWEROFF, 3));
        assert!(allowed(nr::STATS_RESET, 0));
        assert!(allowed(nr::PING, 3));
        assert!(allowed(12345, 3), "unknown calls are ENOSYS, not EPERM");
    }

    #[test]
    fn stats_cpu_section_magic_spells_cvcp() {
        assert_eq!(&stats::cpu::MAGIC.to_le_bytes(), b"CVCP");
    }

    #[test]
    fn info_fields_fit_the_reply() {
        assert!(info::NAME_AT + info::NAME_LEN <= info::LEN);
    }
}
