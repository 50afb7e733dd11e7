//! Access rights and caching attributes of a mapping.

use bitflags::bitflags;

bitflags! {
    /// What a mapping allows, and how its memory is cached.
    ///
    /// `READ` is the present bit: a mapping without it does not exist, so
    /// every mapping request must include it. x86 cannot express write-only
    /// or execute-only pages.
    ///
    /// | flag | entry bit |
    /// |---|---|
    /// | `READ` | P (bit 0) |
    /// | `WRITE` | R/W (bit 1) |
    /// | `USER` | U/S (bit 2); always set in the nested flavor, see [`crate::Flavor`] |
    /// | `WRITE_THROUGH` | PWT (bit 3) |
    /// | `CACHE_DISABLE` | PCD (bit 4) |
    /// | `EXECUTE` | NX (bit 63) clear |
    ///
    /// Bit 63 is reserved while EFER.NXE is clear, and then every page
    /// without `EXECUTE` faults on any access: the hypervisor must run with
    /// EFER.NXE set (nested walks follow the host's paging mode).
    ///
    /// PWT and PCD select one of the first four PAT entries; with the
    /// power-on PAT they mean write-back (neither), write-through, UC- and
    /// uncached (both: [`Perms::UNCACHED`], for MMIO).
    #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
    pub struct Perms: u8 {
        /// The page is present and readable.
        const READ = 1 << 0;
        /// The page is writable.
        const WRITE = 1 << 1;
        /// Instructions may be fetched from the page.
        const EXECUTE = 1 << 2;
        /// The page is accessible at CPL 3 (all guest accesses count as
        /// CPL 3 accesses under nested paging).
        const USER = 1 << 3;
        /// PWT: write-through caching.
        const WRITE_THROUGH = 1 << 4;
        /// PCD: caching disabled.
        const CACHE_DISABLE = 1 << 5;
    }
}

impl Perms {
    /// Readable and writable.
    pub const RW: Perms = Perms::READ.union(Perms::WRITE);
    /// Readable and executable.
    pub const RX: Perms = Perms::READ.union(Perms::EXECUTE);
    /// Readable, writable and executable.
    pub const RWX: Perms = Perms::RW.union(Perms::EXECUTE);
    /// Both caching bits: uncached memory, for MMIO.
    pub const UNCACHED: Perms = Perms::WRITE_THROUGH.union(Perms::CACHE_DISABLE);
    /// The bits that grant access.
    pub const RIGHTS: Perms = Perms::READ.union(Perms::WRITE).union(Perms::EXECUTE).union(Perms::USER);

    /// Only the access rights of `self`.
    pub const fn rights(self) -> Perms {
        self.intersection(Perms::RIGHTS)
    }

    /// Only the caching bits of `self`.
    pub const fn caching(self) -> Perms {
        self.intersection(Perms::UNCACHED)
    }
}
