//! EVENTINJ (control area offset 0x0A8) and EXITINTINFO (offset 0x088),
//! which share one format (APM vol. 2, 15.20 and 15.7.2):
//!
//! | bits | field |
//! |---|---|
//! | 7:0 | VECTOR |
//! | 10:8 | TYPE: 0 external interrupt, 2 NMI, 3 exception, 4 software interrupt |
//! | 11 | EV: an error code is pushed |
//! | 30:12 | reserved |
//! | 31 | V: valid |
//! | 63:32 | ERRORCODE |

/// The TYPE field of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EventType {
    /// External or virtual interrupt (INTR).
    ExternalInterrupt = 0,
    /// Non-maskable interrupt; the vector is ignored.
    Nmi = 2,
    /// Exception (fault or trap).
    Exception = 3,
    /// Software interrupt (INTn).
    SoftwareInterrupt = 4,
}

impl EventType {
    /// The type for a raw 3-bit TYPE value; `None` for the reserved
    /// encodings 1, 5, 6 and 7.
    pub const fn from_raw(raw: u8) -> Option<Self> {
        match raw {
            0 => Some(Self::ExternalInterrupt),
            2 => Some(Self::Nmi),
            3 => Some(Self::Exception),
            4 => Some(Self::SoftwareInterrupt),
            _ => None,
        }
    }
}

/// An event to inject, or the event that was being delivered when an exit
/// happened ([`ExitIntInfo`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EventInj(u64);

/// EXITINTINFO has the EVENTINJ format.
pub type ExitIntInfo = EventInj;

impl EventInj {
    const VECTOR_MASK: u64 = 0xFF;
    const TYPE_SHIFT: u32 = 8;
    const TYPE_MASK: u64 = 0x7 << Self::TYPE_SHIFT;
    const EV: u64 = 1 << 11;
    const RESERVED: u64 = 0x7FFF_F000;
    const V: u64 = 1 << 31;
    const ERROR_SHIFT: u32 = 32;

    /// Nothing to inject (V clear).
    pub const NONE: Self = Self(0);

    const fn build(vector: u8, ty: EventType, error: Option<u32>) -> Self {
        let mut raw = vector as u64 | ((ty as u64) << Self::TYPE_SHIFT) | Self::V;
        if let Some(code) = error {
            raw |= Self::EV | ((code as u64) << Self::ERROR_SHIFT);
        }
        Self(raw)
    }

    /// An external interrupt with `vector`.
    pub const fn external_interrupt(vector: u8) -> Self {
        Self::build(vector, EventType::ExternalInterrupt, None)
    }

    /// An NMI. The vector field is ignored by the processor; it is set to
    /// 2 for readability.
    pub const fn nmi() -> Self {
        Self::build(2, EventType::Nmi, None)
    }

    /// An exception without an error code. `vector` must be 0..=31 and
    /// not 2 (see [`EventInj::is_well_formed`]).
    pub const fn exception(vector: u8) -> Self {
        Self::build(vector, EventType::Exception, None)
    }

    /// An exception that pushes `code` (#DF, #TS, #NP, #SS, #GP, #PF, #AC,
    /// #CP, #VC, #SX; see [`crate::exception_has_error_code`]).
    pub const fn exception_with_error(vector: u8, code: u32) -> Self {
        Self::build(vector, EventType::Exception, Some(code))
    }

    /// A software interrupt (INTn) with `vector`.
    pub const fn software_interrupt(vector: u8) -> Self {
        Self::build(vector, EventType::SoftwareInterrupt, None)
    }

    /// Wraps a raw EVENTINJ/EXITINTINFO value unchanged.
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    /// The raw value for the VMCB.
    pub const fn to_raw(self) -> u64 {
        self.0
    }

    /// V: the event is valid (to be injected, or was being delivered).
    pub const fn is_valid(self) -> bool {
        self.0 & Self::V != 0
    }

    /// VECTOR.
    pub const fn vector(self) -> u8 {
        (self.0 & Self::VECTOR_MASK) as u8
    }

    /// TYPE as the raw 3-bit number.
    pub const fn raw_type(self) -> u8 {
        ((self.0 & Self::TYPE_MASK) >> Self::TYPE_SHIFT) as u8
    }

    /// TYPE, or `None` for a reserved encoding.
    pub const fn event_type(self) -> Option<EventType> {
        EventType::from_raw(self.raw_type())
    }

    /// EV: an error code is pushed.
    pub const fn error_code_valid(self) -> bool {
        self.0 & Self::EV != 0
    }

    /// The error code if EV is set.
    pub const fn error_code(self) -> Option<u32> {
        if self.error_code_valid() {
            Some((self.0 >> Self::ERROR_SHIFT) as u32)
        } else {
            None
        }
    }

    /// The event recorded in EXITINTINFO, or `None` when V is clear (no
    /// event was being delivered when the exit happened).
    pub const fn from_exit_int_info(raw: u64) -> Option<Self> {
        let event = Self(raw);
        if event.is_valid() {
            Some(event)
        } else {
            None
        }
    }

    /// Whether this event is one VMRUN accepts and a hypervisor should
    /// inject: reserved bits 30:12 clear, a defined TYPE, an exception
    /// vector in 0..=31 other than 2 (an NMI must use the NMI type), and an
    /// error code only on exceptions. An invalid (V clear) event is
    /// trivially well formed: nothing is injected.
    pub const fn is_well_formed(self) -> bool {
        if !self.is_valid() {
            return true;
        }
        if self.0 & Self::RESERVED != 0 {
            return false;
        }
        match self.event_type() {
            None => false,
            Some(EventType::Exception) => self.vector() <= 31 && self.vector() != 2,
            Some(_) => !self.error_code_valid(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn external_interrupt_sets_vector_type_0_and_valid() {
        assert_eq!(EventInj::external_interrupt(0x20).to_raw(), 0x8000_0020);
    }

    #[test]
    fn nmi_is_type_2_valid() {
        assert_eq!(EventInj::nmi().to_raw(), 0x8000_0202);
        assert_eq!(EventInj::nmi().event_type(), Some(EventType::Nmi));
    }

    #[test]
    fn exception_without_error_is_type_3() {
        // #UD: vector 6, type 3, V.
        assert_eq!(EventInj::exception(6).to_raw(), 0x8000_0306);
        assert_eq!(EventInj::exception(6).error_code(), None);
    }

    #[test]
    fn exception_with_error_sets_ev_and_the_high_dword() {
        // #GP(0x18): vector 13, type 3, EV, V, error code in bits 63:32.
        let gp = EventInj::exception_with_error(13, 0x18);
        assert_eq!(gp.to_raw(), 0x0000_0018_8000_0B0D);
        assert_eq!(gp.error_code(), Some(0x18));
        assert!(gp.error_code_valid());
        // #PF with all error bits set.
        let pf = EventInj::exception_with_error(14, 0xFFFF_FFFF);
        assert_eq!(pf.to_raw(), 0xFFFF_FFFF_8000_0B0E);
    }

    #[test]
    fn software_interrupt_is_type_4() {
        assert_eq!(EventInj::software_interrupt(0x80).to_raw(), 0x8000_0480);
    }

    #[test]
    fn exit_int_info_without_valid_bit_is_none() {
        assert_eq!(EventInj::from_exit_int_info(0x0000_0306), None);
        assert_eq!(EventInj::from_exit_int_info(0x8000_0306), Some(EventInj::exception(6)));
    }

    #[test]
    fn well_formedness_follows_the_injection_rules() {
        assert!(EventInj::NONE.is_well_formed());
        assert!(EventInj::exception_with_error(14, 2).is_well_formed());
        assert!(EventInj::nmi().is_well_formed());
        assert!(!EventInj::exception(2).is_well_formed());
        assert!(!EventInj::exception(32).is_well_formed());
        assert!(!EventInj::from_raw(0x8000_0100).is_well_formed()); // type 1
        assert!(!EventInj::from_raw(0x8000_1000).is_well_formed()); // reserved bit
        assert!(!EventInj::from_raw(0x8000_0820).is_well_formed()); // EV on INTR
    }

    proptest! {
        #[test]
        fn raw_round_trip_is_identity(raw in any::<u64>()) {
            prop_assert_eq!(EventInj::from_raw(raw).to_raw(), raw);
        }

        #[test]
        fn constructors_decode_to_their_inputs(vector in any::<u8>(), code in any::<u32>()) {
            let e = EventInj::exception_with_error(vector, code);
            prop_assert!(e.is_valid());
            prop_assert_eq!(e.vector(), vector);
            prop_assert_eq!(e.event_type(), Some(EventType::Exception));
            prop_assert_eq!(e.error_code(), Some(code));

            let i = EventInj::external_interrupt(vector);
            prop_assert_eq!(i.vector(), vector);
            prop_assert_eq!(i.event_type(), Some(EventType::ExternalInterrupt));
            prop_assert_eq!(i.error_code(), None);

            let s = EventInj::software_interrupt(vector);
            prop_assert_eq!(s.event_type(), Some(EventType::SoftwareInterrupt));
            prop_assert!(s.is_well_formed());
        }
    }
}
