//! Address newtypes and page sizes shared by the hypervisor's layers.
//!
//! Each address space has its own type, so a guest-physical address can never
//! be passed where a host-physical one is due.

use core::fmt;

/// An address type that a page table translates *from*: guest-physical for
/// nested tables, host-virtual for the host's own tables.
pub trait InputAddr: Copy + Ord + fmt::Debug {
    /// Wraps a raw address.
    fn from_raw(raw: u64) -> Self;
    /// The raw address.
    fn raw(self) -> u64;
}

macro_rules! address_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[repr(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// Wraps a raw address.
            pub const fn new(raw: u64) -> Self {
                Self(raw)
            }

            /// The raw address.
            pub const fn as_u64(self) -> u64 {
                self.0
            }

            /// Rounds down to a multiple of `align`, a power of two.
            pub const fn align_down(self, align: u64) -> Self {
                debug_assert!(align.is_power_of_two());
                Self(self.0 & !align.wrapping_sub(1))
            }

            /// Rounds up to a multiple of `align`, a power of two; `None` if
            /// the result does not fit in 64 bits.
            pub const fn align_up(self, align: u64) -> Option<Self> {
                debug_assert!(align.is_power_of_two());
                let mask = align.wrapping_sub(1);
                match self.0.checked_add(mask) {
                    Some(v) => Some(Self(v & !mask)),
                    None => None,
                }
            }

            /// Whether this address is a multiple of `align`, a power of two.
            pub const fn is_aligned(self, align: u64) -> bool {
                debug_assert!(align.is_power_of_two());
                self.0 & align.wrapping_sub(1) == 0
            }

            /// This address plus `bytes`; `None` on overflow.
            pub const fn offset(self, bytes: u64) -> Option<Self> {
                match self.0.checked_add(bytes) {
                    Some(v) => Some(Self(v)),
                    None => None,
                }
            }

            /// Where this address lies inside its page of `size`.
            pub const fn page_offset(self, size: PageSize) -> u64 {
                self.0 & (size.bytes() - 1)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:#x})"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }

        impl fmt::LowerHex for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }
    };
}

address_type!(
    /// A guest-physical address: what a guest's paging produces and nested
    /// paging translates.
    GuestPhysAddr
);
address_type!(
    /// A host-physical address: what the memory bus sees.
    HostPhysAddr
);
address_type!(
    /// A host-virtual address: what the host's own page tables translate.
    HostVirtAddr
);

impl InputAddr for GuestPhysAddr {
    fn from_raw(raw: u64) -> Self {
        Self(raw)
    }
    fn raw(self) -> u64 {
        self.0
    }
}

impl InputAddr for HostVirtAddr {
    fn from_raw(raw: u64) -> Self {
        Self(raw)
    }
    fn raw(self) -> u64 {
        self.0
    }
}

/// The page sizes of the long-mode format: a PTE maps 4 KiB, a PDE with PS
/// set 2 MiB, a PDPE with PS set 1 GiB.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum PageSize {
    /// 4 KiB, mapped by a level-1 entry (PTE).
    Size4K,
    /// 2 MiB, mapped by a level-2 entry (PDE) with PS set.
    Size2M,
    /// 1 GiB, mapped by a level-3 entry (PDPE) with PS set. The CPU must
    /// support it (CPUID Fn8000_0001 EDX bit 26, Page1GB).
    Size1G,
}

impl PageSize {
    /// Every size, the largest first.
    pub const LARGEST_FIRST: [PageSize; 3] = [PageSize::Size1G, PageSize::Size2M, PageSize::Size4K];

    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        1 << self.shift()
    }

    /// log2 of the size in bytes.
    pub const fn shift(self) -> u32 {
        match self {
            PageSize::Size4K => 12,
            PageSize::Size2M => 21,
            PageSize::Size1G => 30,
        }
    }

    /// The next smaller size, into which a page of this size is split.
    pub const fn smaller(self) -> Option<PageSize> {
        match self {
            PageSize::Size4K => None,
            PageSize::Size2M => Some(PageSize::Size4K),
            PageSize::Size1G => Some(PageSize::Size2M),
        }
    }

    /// The table level whose entries map pages of this size (1 = PTE).
    pub(crate) const fn level(self) -> u8 {
        match self {
            PageSize::Size4K => 1,
            PageSize::Size2M => 2,
            PageSize::Size1G => 3,
        }
    }

    /// The size mapped by a leaf at `level` (1..=3).
    pub(crate) const fn of_level(level: u8) -> PageSize {
        match level {
            1 => PageSize::Size4K,
            2 => PageSize::Size2M,
            _ => PageSize::Size1G,
        }
    }
}
