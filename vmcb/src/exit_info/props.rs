//! The EXITINFO decoders against reference predicates written from the
//! field tables (APM vol. 2, figure 15-2 for IOIO, 15.25.6 for the nested
//! page fault, 15.20 for EVENTINJ/EXITINTINFO): every valid value decodes
//! to its fields and encodes back, every invalid one is refused.
use super::*;
use crate::{EventInj, EventType};
use proptest::prelude::*;

/// The case count: `n`, or `PROPTEST_CASES` when set (the long run).
fn cases(n: u32) -> ProptestConfig {
    ProptestConfig::with_cases(std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(n))
}

/// IOIO EXITINFO1 as figure 15-2 lays it out, field by field.
fn ioio_reference(raw: u64) -> Result<IoioInfo, ExitInfoError> {
    let bit = |n: u32| raw >> n & 1 == 1;
    let size = match (bit(4), bit(5), bit(6)) {
        (true, false, false) => IoAccessSize::Byte,
        (false, true, false) => IoAccessSize::Word,
        (false, false, true) => IoAccessSize::Dword,
        _ => return Err(ExitInfoError::IoioOperandSize(raw)),
    };
    let address_size = match (bit(7), bit(8), bit(9)) {
        (false, false, false) => None,
        (true, false, false) => Some(AddressSize::Bits16),
        (false, true, false) => Some(AddressSize::Bits32),
        (false, false, true) => Some(AddressSize::Bits64),
        _ => return Err(ExitInfoError::IoioAddressSize(raw)),
    };
    let segment = match (bit(2), (raw >> 10 & 7) as u8) {
        (false, _) => None,
        (true, 6 | 7) => return Err(ExitInfoError::IoioSegment(raw)),
        (true, seg) => SegmentRegister::from_raw(seg),
    };
    Ok(IoioInfo {
        port: (raw >> 16 & 0xFFFF) as u16,
        size,
        address_size,
        rep: bit(3),
        string: bit(2),
        direction: if bit(0) { IoDirection::In } else { IoDirection::Out },
        segment,
    })
}

/// The bits an IOIO decode keeps: everything but the reserved bits (1,
/// 15:13, 63:32) and, for IN/OUT, the segment field.
fn ioio_kept_bits(raw: u64) -> u64 {
    let seg = if raw & (1 << 2) != 0 { 0x7 << 10 } else { 0 };
    raw & (0xFFFF_0000 | 0x3FD | seg)
}

#[test]
fn ioio_every_low_half_decodes_as_the_reference_and_encodes_back() {
    // All 2^16 combinations of the flag bits, on ports at both ends and in
    // the middle, with and without reserved high bits.
    for low in 0u64..=0xFFFF {
        for high in [0u64, 0x3F8 << 16, 0xFFFF << 16, (0xCFC << 16) | (0xDEAD_BEEF << 32)] {
            let raw = high | low;
            let got = IoioInfo::from_exitinfo1(raw);
            assert_eq!(got, ioio_reference(raw), "EXITINFO1 {raw:#x}");
            if let Ok(info) = got {
                assert_eq!(info.to_exitinfo1(), ioio_kept_bits(raw), "EXITINFO1 {raw:#x} re-encoded");
            }
        }
    }
}

/// The EVENTINJ injection rules, from the field table: V clear is nothing
/// to inject; else reserved bits 30:12 clear, TYPE one of 0, 2, 3, 4, an
/// exception vector 0..=31 but not 2, and EV only on exceptions.
fn event_well_formed_reference(raw: u64) -> bool {
    if raw & (1 << 31) == 0 {
        return true;
    }
    let (vector, ty, ev) = (raw & 0xFF, raw >> 8 & 7, raw & (1 << 11) != 0);
    raw & 0x7FFF_F000 == 0
        && match ty {
            3 => vector <= 31 && vector != 2,
            0 | 2 | 4 => !ev,
            _ => false,
        }
}

/// Raw event values with every field at the edges more often than chance.
fn event_raw() -> impl Strategy<Value = u64> {
    let vector = prop_oneof![0u64..40, any::<u8>().prop_map(u64::from)];
    let reserved = prop_oneof![4 => Just(0u64), 1 => (12u32..31).prop_map(|b| 1u64 << b), 1 => any::<u64>()];
    (vector, 0u64..8, any::<bool>(), any::<bool>(), reserved, any::<u32>()).prop_map(|(v, t, ev, valid, res, code)| {
        v | t << 8 | u64::from(ev) << 11 | (res & 0x7FFF_F000) | u64::from(valid) << 31 | u64::from(code) << 32
    })
}

/// Valid, well-formed events of every type, by the field table.
fn well_formed_event_raw() -> impl Strategy<Value = u64> {
    let vector = prop_oneof![0u8..32, any::<u8>()];
    (prop::sample::select(&[0u64, 2, 3, 4][..]), vector, any::<bool>(), any::<u32>())
        .prop_filter("an exception vector is 0..=31 but not 2", |&(ty, v, _, _)| ty != 3 || (v <= 31 && v != 2))
        .prop_map(|(ty, v, ev, code)| {
            u64::from(v) | ty << 8 | u64::from(ev && ty == 3) << 11 | 1 << 31 | u64::from(code) << 32
        })
}

proptest! {
    #![proptest_config(cases(4096))]

    #[test]
    fn ioio_any_value_decodes_as_the_reference(raw in any::<u64>()) {
        prop_assert_eq!(IoioInfo::from_exitinfo1(raw), ioio_reference(raw));
    }

    #[test]
    fn npf_fields_are_exitinfo_unchanged(info1 in any::<u64>(), info2 in any::<u64>()) {
        let f = NestedPageFault::from_exitinfo(info1, info2);
        prop_assert_eq!((f.error.bits(), f.gpa), (info1, info2));
        prop_assert_eq!(f.is_write(), info1 & 2 != 0);
        prop_assert_eq!(f.is_fetch(), info1 & 0x10 != 0);
        prop_assert_eq!(f.is_not_present(), info1 & 1 == 0);
        let stage = match (info1 >> 32 & 1, info1 >> 33 & 1) {
            (1, _) => NpfStage::FinalTranslation,
            (0, 1) => NpfStage::GuestPageTableWalk,
            _ => NpfStage::Unreported,
        };
        prop_assert_eq!(f.stage(), stage);
    }

    #[test]
    fn exception_exit_takes_the_error_code_and_address_of_its_vector(
        vector in 0u8..32, info1 in any::<u64>(), info2 in any::<u64>(),
    ) {
        let e = ExceptionExit::from_exitinfo(vector, info1, info2);
        prop_assert_eq!(e.vector, vector);
        prop_assert_eq!(e.error_code, exception_has_error_code(vector).then_some(info1 as u32));
        prop_assert_eq!(e.fault_address, (vector == 14).then_some(info2));
    }

    #[test]
    fn event_well_formedness_is_the_reference(raw in event_raw()) {
        prop_assert_eq!(EventInj::from_raw(raw).is_well_formed(), event_well_formed_reference(raw), "{:#x}", raw);
    }

    /// A well-formed, valid event is rebuilt exactly by the constructor of
    /// its type from its decoded fields (an NMI's vector, which the CPU
    /// ignores, is the constructor's 2).
    #[test]
    fn well_formed_events_round_trip_through_their_constructor(raw in well_formed_event_raw()) {
        let e = EventInj::from_raw(raw);
        prop_assert!(e.is_valid() && e.is_well_formed(), "{:#x}", raw);
        let rebuilt = match (e.event_type(), e.error_code()) {
            (Some(EventType::ExternalInterrupt), None) => EventInj::external_interrupt(e.vector()),
            (Some(EventType::Nmi), None) => EventInj::nmi(),
            (Some(EventType::Exception), None) => EventInj::exception(e.vector()),
            (Some(EventType::Exception), Some(code)) => EventInj::exception_with_error(e.vector(), code),
            (Some(EventType::SoftwareInterrupt), None) => EventInj::software_interrupt(e.vector()),
            other => return Err(TestCaseError::fail(format!("{raw:#x} well formed with {other:?}"))),
        };
        // Without EV the error code half is not part of the event.
        let meaningful = if e.error_code_valid() { raw } else { raw & 0xFFFF_FFFF };
        let expected = if e.event_type() == Some(EventType::Nmi) { meaningful & !0xFF | 2 } else { meaningful };
        prop_assert_eq!(rebuilt.to_raw(), expected, "{:#x}", raw);
        prop_assert_eq!(EventInj::from_exit_int_info(raw), Some(e));
    }

    #[test]
    fn exit_int_info_without_v_is_no_event(raw in any::<u64>()) {
        prop_assert_eq!(EventInj::from_exit_int_info(raw & !(1 << 31)), None);
    }
}
