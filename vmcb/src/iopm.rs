//! The I/O permission map (APM vol. 2, 15.10.1): 12 KiB, one bit per port,
//! consulted when the IOIO_PROT intercept is set.
//!
//! Bit `p` (byte `p / 8`, bit `p % 8`) intercepts port `p`. A multi-byte
//! access is intercepted if the bit of *any* byte it touches is set, so a
//! 4-byte access to port 0xFFFF also looks at the bits for 0x10000..0x10002;
//! that is why the map is 12 KiB rather than 8 KiB. Those extra bits are
//! set by [`Iopm::intercept_all`] and left clear by [`Iopm::intercept_none`];
//! the per-port setters never touch them.

use core::fmt;
use core::ops::RangeInclusive;

use crate::exit_info::IoAccessSize;

/// Size of the IOPM in bytes (three pages).
pub const IOPM_SIZE: usize = 3 * 4096;

/// An I/O permission map, page aligned as the processor requires.
#[repr(C, align(4096))]
#[derive(Clone, PartialEq, Eq)]
pub struct Iopm {
    bits: [u8; IOPM_SIZE],
}

const _: () = assert!(core::mem::size_of::<Iopm>() == IOPM_SIZE);
const _: () = assert!(core::mem::align_of::<Iopm>() == 4096);

impl Iopm {
    /// A map that intercepts no port.
    pub const fn intercept_none() -> Self {
        Self { bits: [0; IOPM_SIZE] }
    }

    /// A map that intercepts every port (and every wrapping access).
    pub const fn intercept_all() -> Self {
        Self { bits: [0xFF; IOPM_SIZE] }
    }

    /// Sets or clears every bit in place, extra bits included.
    pub fn fill(&mut self, intercept: bool) {
        self.bits.fill(if intercept { 0xFF } else { 0 });
    }

    /// Intercepts (or lets through) accesses that touch `port`.
    pub fn set_port(&mut self, port: u16, intercept: bool) {
        self.set_bit(usize::from(port), intercept);
    }

    /// [`Iopm::set_port`] for every port in `ports`.
    pub fn set_range(&mut self, ports: RangeInclusive<u16>, intercept: bool) {
        for port in ports {
            self.set_port(port, intercept);
        }
    }

    /// Whether the bit for `port` itself is set.
    pub fn is_port_set(&self, port: u16) -> bool {
        self.bit(usize::from(port))
    }

    /// Whether an access of `size` bytes starting at `port` is
    /// intercepted: true if any byte's bit is set.
    pub fn is_intercepted(&self, port: u16, size: IoAccessSize) -> bool {
        let first = usize::from(port);
        (first..first + usize::from(size.bytes())).any(|bit| self.bit(bit))
    }

    /// The raw map, to copy into the page that IOPM_BASE_PA points at.
    pub fn as_bytes(&self) -> &[u8; IOPM_SIZE] {
        &self.bits
    }

    fn bit(&self, bit: usize) -> bool {
        self.bits[bit / 8] & (1 << (bit % 8)) != 0
    }

    fn set_bit(&mut self, bit: usize, on: bool) {
        let mask = 1u8 << (bit % 8);
        if on {
            self.bits[bit / 8] |= mask;
        } else {
            self.bits[bit / 8] &= !mask;
        }
    }
}

impl fmt::Debug for Iopm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ports = (0..=u16::MAX).filter(|&p| self.is_port_set(p)).count();
        f.debug_struct("Iopm").field("intercepted_ports", &ports).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn port_bit_is_byte_port_div_8_bit_port_mod_8() {
        let mut m = Box::new(Iopm::intercept_none());
        m.set_port(0x3F8, true);
        // 0x3F8 / 8 = 0x7F, 0x3F8 % 8 = 0.
        assert_eq!(m.as_bytes()[0x7F], 0x01);
        m.set_port(0x61, true);
        // 0x61 / 8 = 0x0C, 0x61 % 8 = 1.
        assert_eq!(m.as_bytes()[0x0C], 0x02);
        m.set_port(0xFFFF, true);
        assert_eq!(m.as_bytes()[0x1FFF], 0x80);
        assert_eq!(m.as_bytes().iter().map(|b| b.count_ones()).sum::<u32>(), 3);
    }

    #[test]
    fn multi_byte_access_is_intercepted_if_any_byte_is() {
        let mut m = Box::new(Iopm::intercept_none());
        m.set_port(0xCFE, true);
        assert!(!m.is_intercepted(0xCFC, IoAccessSize::Byte));
        assert!(!m.is_intercepted(0xCFC, IoAccessSize::Word));
        assert!(m.is_intercepted(0xCFC, IoAccessSize::Dword));
        assert!(m.is_intercepted(0xCFD, IoAccessSize::Word));
        assert!(!m.is_intercepted(0xCFF, IoAccessSize::Dword));
    }

    #[test]
    fn access_past_port_ffff_checks_the_extra_bits() {
        let mut m = Box::new(Iopm::intercept_all());
        m.set_port(0xFFFF, false);
        assert!(!m.is_intercepted(0xFFFF, IoAccessSize::Byte));
        // Bits 0x10000.. are still set by intercept_all.
        assert!(m.is_intercepted(0xFFFF, IoAccessSize::Word));
        let mut n = Box::new(Iopm::intercept_none());
        n.set_port(0xFFFF, false);
        assert!(!n.is_intercepted(0xFFFF, IoAccessSize::Dword));
    }

    #[test]
    fn set_range_covers_both_ends_and_nothing_else() {
        let mut m = Box::new(Iopm::intercept_all());
        m.set_range(0x3F8..=0x3FF, false);
        assert!(m.is_port_set(0x3F7));
        assert!((0x3F8..=0x3FF).all(|p| !m.is_port_set(p)));
        assert!(m.is_port_set(0x400));
        m.fill(false);
        assert!(!m.is_port_set(0x3F7));
        assert!(format!("{m:?}").contains("intercepted_ports: 0"));
    }

    proptest! {
        #[test]
        fn set_then_query_agrees_for_any_port(port in any::<u16>(), on in any::<bool>()) {
            let mut m = Box::new(if on { Iopm::intercept_none() } else { Iopm::intercept_all() });
            m.set_port(port, on);
            prop_assert_eq!(m.is_port_set(port), on);
            prop_assert_eq!(m.is_intercepted(port, IoAccessSize::Byte), on);
            if let Some(other) = port.checked_add(1) {
                prop_assert_eq!(m.is_port_set(other), !on);
            }
        }
    }
}
