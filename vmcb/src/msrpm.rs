//! The MSR permission map (APM vol. 2, 15.11): 8 KiB, two bits per MSR,
//! consulted for RDMSR/WRMSR when the MSR_PROT intercept is set.
//!
//! | MSRPM bytes | MSRs |
//! |---|---|
//! | 0x0000..0x07FF | 0x0000_0000..=0x0000_1FFF |
//! | 0x0800..0x0FFF | 0xC000_0000..=0xC000_1FFF |
//! | 0x1000..0x17FF | 0xC001_0000..=0xC001_1FFF |
//! | 0x1800..0x1FFF | reserved |
//!
//! Within a range, MSR `start + n` owns bits `2n` (read) and `2n + 1`
//! (write), counting from the range's first byte.
//!
//! **MSRs outside the three ranges are always intercepted** when MSR_PROT is
//! set: the processor has no bit for them. [`Msrpm::is_intercepted`]
//! reports them as intercepted and [`Msrpm::set`] refuses them.

use core::fmt;

/// Size of the MSRPM in bytes (two pages).
pub const MSRPM_SIZE: usize = 2 * 4096;

/// The (first MSR, first MSRPM byte) of each range; each range holds 0x2000
/// MSRs in 0x800 bytes.
const RANGES: [(u32, usize); 3] = [(0x0000_0000, 0x0000), (0xC000_0000, 0x0800), (0xC001_0000, 0x1000)];
const MSRS_PER_RANGE: u32 = 0x2000;

/// Which accesses a [`Msrpm::set`] call changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MsrAccess {
    /// RDMSR.
    Read,
    /// WRMSR.
    Write,
    /// Both.
    ReadWrite,
}

/// The MSR has no bit in the MSRPM, so accesses to it are always
/// intercepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MsrOutsideMsrpm(pub u32);

/// An MSR permission map, page aligned as the processor requires.
#[repr(C, align(4096))]
#[derive(Clone, PartialEq, Eq)]
pub struct Msrpm {
    bits: [u8; MSRPM_SIZE],
}

const _: () = assert!(core::mem::size_of::<Msrpm>() == MSRPM_SIZE);
const _: () = assert!(core::mem::align_of::<Msrpm>() == 4096);

impl Msrpm {
    /// A map that intercepts no MSR in the three ranges (MSRs outside them
    /// are still intercepted).
    pub const fn intercept_none() -> Self {
        Self { bits: [0; MSRPM_SIZE] }
    }

    /// A map that intercepts every access.
    pub const fn intercept_all() -> Self {
        Self { bits: [0xFF; MSRPM_SIZE] }
    }

    /// Sets or clears every bit in place.
    pub fn fill(&mut self, intercept: bool) {
        self.bits.fill(if intercept { 0xFF } else { 0 });
    }

    /// The (byte offset, bit number) of the read or write bit of `msr`, or
    /// `None` for an MSR outside the three ranges.
    pub const fn bit_location(msr: u32, write: bool) -> Option<(usize, u8)> {
        let mut i = 0;
        while i < RANGES.len() {
            let (start, byte_base) = RANGES[i];
            if msr >= start && msr - start < MSRS_PER_RANGE {
                let bit = 2 * (msr - start) as usize + write as usize;
                return Some((byte_base + bit / 8, (bit % 8) as u8));
            }
            i += 1;
        }
        None
    }

    /// Intercepts (or lets through) the chosen accesses to `msr`.
    pub fn set(&mut self, msr: u32, access: MsrAccess, intercept: bool) -> Result<(), MsrOutsideMsrpm> {
        let (read, write) = match access {
            MsrAccess::Read => (true, false),
            MsrAccess::Write => (false, true),
            MsrAccess::ReadWrite => (true, true),
        };
        for (selected, is_write) in [(read, false), (write, true)] {
            if selected {
                let (byte, bit) = Self::bit_location(msr, is_write).ok_or(MsrOutsideMsrpm(msr))?;
                if intercept {
                    self.bits[byte] |= 1 << bit;
                } else {
                    self.bits[byte] &= !(1 << bit);
                }
            }
        }
        Ok(())
    }

    /// Whether a read (`write == false`) or write of `msr` is intercepted.
    /// MSRs outside the three ranges always are.
    pub fn is_intercepted(&self, msr: u32, write: bool) -> bool {
        match Self::bit_location(msr, write) {
            Some((byte, bit)) => self.bits[byte] & (1 << bit) != 0,
            None => true,
        }
    }

    /// The raw map, to copy into the pages that MSRPM_BASE_PA points at.
    pub fn as_bytes(&self) -> &[u8; MSRPM_SIZE] {
        &self.bits
    }
}

impl fmt::Debug for Msrpm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set: u32 = self.bits.iter().map(|b| b.count_ones()).sum();
        f.debug_struct("Msrpm").field("bits_set", &set).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn efer_write_bit_is_byte_0x820_bit_1() {
        // EFER = 0xC000_0080: 0x80 MSRs into the second range, 2 bits each
        // = bit 0x100 = byte 0x20 of the range, which starts at byte 0x800.
        assert_eq!(Msrpm::bit_location(0xC000_0080, false), Some((0x820, 0)));
        assert_eq!(Msrpm::bit_location(0xC000_0080, true), Some((0x820, 1)));
        let mut m = Box::new(Msrpm::intercept_none());
        m.set(0xC000_0080, MsrAccess::Write, true).unwrap();
        assert_eq!(m.as_bytes()[0x820], 0b10);
        assert!(m.is_intercepted(0xC000_0080, true));
        assert!(!m.is_intercepted(0xC000_0080, false));
    }

    #[test]
    fn range_boundaries_map_to_the_table_offsets() {
        assert_eq!(Msrpm::bit_location(0, false), Some((0, 0)));
        assert_eq!(Msrpm::bit_location(0x1FFF, true), Some((0x7FF, 7)));
        assert_eq!(Msrpm::bit_location(0xC000_0000, false), Some((0x800, 0)));
        assert_eq!(Msrpm::bit_location(0xC000_1FFF, true), Some((0xFFF, 7)));
        assert_eq!(Msrpm::bit_location(0xC001_0000, false), Some((0x1000, 0)));
        assert_eq!(Msrpm::bit_location(0xC001_1FFF, true), Some((0x17FF, 7)));
        // APIC base 0x1B: bit 0x36 -> byte 6, bits 6 (read) and 7 (write).
        assert_eq!(Msrpm::bit_location(0x1B, false), Some((6, 6)));
        // VM_HSAVE_PA 0xC001_0117.
        assert_eq!(Msrpm::bit_location(0xC001_0117, true), Some((0x1045, 7)));
    }

    #[test]
    fn msrs_outside_the_ranges_are_always_intercepted() {
        let m = Box::new(Msrpm::intercept_none());
        for msr in [0x2000, 0x4000_0000, 0xBFFF_FFFF, 0xC000_2000, 0xC001_2000, 0xC002_0000, u32::MAX] {
            assert_eq!(Msrpm::bit_location(msr, false), None, "{msr:#x}");
            assert!(m.is_intercepted(msr, false) && m.is_intercepted(msr, true));
        }
        let mut m = m;
        assert_eq!(m.set(0x4000_0000, MsrAccess::ReadWrite, false), Err(MsrOutsideMsrpm(0x4000_0000)));
    }

    #[test]
    fn read_write_sets_both_bits_and_clearing_one_keeps_the_other() {
        let mut m = Box::new(Msrpm::intercept_none());
        m.set(0x10, MsrAccess::ReadWrite, true).unwrap(); // TSC
        assert_eq!(m.as_bytes()[4], 0b11);
        m.set(0x10, MsrAccess::Read, false).unwrap();
        assert!(!m.is_intercepted(0x10, false));
        assert!(m.is_intercepted(0x10, true));
        m.fill(true);
        assert!(m.is_intercepted(0x10, false));
        assert!(format!("{m:?}").contains("65536"));
    }

    fn in_range_msr() -> impl Strategy<Value = u32> {
        prop_oneof![0u32..0x2000, 0xC000_0000u32..0xC000_2000, 0xC001_0000u32..0xC001_2000,]
    }

    proptest! {
        #[test]
        fn setting_one_direction_changes_exactly_one_bit(msr in in_range_msr(), write in any::<bool>()) {
            let mut m = Box::new(Msrpm::intercept_none());
            let access = if write { MsrAccess::Write } else { MsrAccess::Read };
            m.set(msr, access, true).unwrap();
            let ones: u32 = m.as_bytes().iter().map(|b| b.count_ones()).sum();
            prop_assert_eq!(ones, 1);
            prop_assert!(m.is_intercepted(msr, write));
            prop_assert!(!m.is_intercepted(msr, !write));
        }

        #[test]
        fn distinct_msrs_have_distinct_bits(a in in_range_msr(), b in in_range_msr(), wa in any::<bool>(), wb in any::<bool>()) {
            prop_assume!((a, wa) != (b, wb));
            prop_assert_ne!(Msrpm::bit_location(a, wa), Msrpm::bit_location(b, wb));
        }
    }
}
