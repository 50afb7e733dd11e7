//! Segment registers as the VMCB stores them (APM vol. 2, 15.5.1 and
//! appendix B, table B-2).
//!
//! Each segment register takes 16 bytes: selector, a 12-bit packed
//! attribute word, a 32-bit byte-granular limit, and a 64-bit base. The
//! attribute word is the descriptor's access byte (bits 47:40) followed by
//! its flag nibble (bits 55:52), squeezed together; [`SegmentAttributes`]
//! converts between that form and a GDT descriptor.

/// One segment register in the VMCB state save area.
///
/// `limit` is the expanded byte limit (the processor has already applied
/// the granularity bit), not the 20-bit descriptor field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Visible selector.
    pub selector: u16,
    /// Packed attributes, see [`SegmentAttributes`].
    pub attrib: u16,
    /// Byte-granular limit.
    pub limit: u32,
    /// Base address (only the low 32 bits are implemented for ES/CS/SS/DS).
    pub base: u64,
}

const _: () = assert!(core::mem::size_of::<Segment>() == 16);
const _: () = assert!(core::mem::offset_of!(Segment, selector) == 0);
const _: () = assert!(core::mem::offset_of!(Segment, attrib) == 2);
const _: () = assert!(core::mem::offset_of!(Segment, limit) == 4);
const _: () = assert!(core::mem::offset_of!(Segment, base) == 8);

impl Segment {
    /// An all-zero segment: selector 0, not present (unusable).
    pub const NULL: Self = Self { selector: 0, attrib: 0, limit: 0, base: 0 };

    /// A real-mode data segment for `selector`: base `selector << 4`, a
    /// 64 KiB limit, present, read/write, accessed.
    pub const fn real_mode(selector: u16) -> Self {
        Self {
            selector,
            attrib: SegmentAttributes::DATA_RW_ACCESSED.with_present(true).bits(),
            limit: 0xFFFF,
            base: (selector as u64) << 4,
        }
    }

    /// A real-mode code segment for `selector`: base `selector << 4`, a
    /// 64 KiB limit, present, execute/read, accessed.
    pub const fn real_mode_code(selector: u16) -> Self {
        Self {
            selector,
            attrib: SegmentAttributes::CODE_XR_ACCESSED.with_present(true).bits(),
            limit: 0xFFFF,
            base: (selector as u64) << 4,
        }
    }

    /// A flat 64-bit ring-0 code segment: base 0, limit 4 GiB, L=1, D=0
    /// (VMRUN rejects CS with both L and D set), G=1.
    pub const fn flat_code64(selector: u16) -> Self {
        Self {
            selector,
            attrib: SegmentAttributes::CODE_XR_ACCESSED
                .with_present(true)
                .with_long(true)
                .with_granularity(true)
                .bits(),
            limit: 0xFFFF_FFFF,
            base: 0,
        }
    }

    /// A flat 32-bit ring-0 code segment: base 0, limit 4 GiB, D=1, G=1.
    pub const fn flat_code32(selector: u16) -> Self {
        Self {
            selector,
            attrib: SegmentAttributes::CODE_XR_ACCESSED
                .with_present(true)
                .with_default_big(true)
                .with_granularity(true)
                .bits(),
            limit: 0xFFFF_FFFF,
            base: 0,
        }
    }

    /// A flat ring-0 read/write data segment: base 0, limit 4 GiB, B=1, G=1.
    pub const fn flat_data(selector: u16) -> Self {
        Self {
            selector,
            attrib: SegmentAttributes::DATA_RW_ACCESSED
                .with_present(true)
                .with_default_big(true)
                .with_granularity(true)
                .bits(),
            limit: 0xFFFF_FFFF,
            base: 0,
        }
    }

    /// A present, busy task-state segment (system type 0xB: busy 64-bit
    /// TSS in long mode, busy 32-bit TSS otherwise).
    pub const fn busy_tss(selector: u16, base: u64, limit: u32) -> Self {
        Self { selector, attrib: SegmentAttributes::TSS_BUSY.with_present(true).bits(), limit, base }
    }

    /// A present LDT segment (system type 0x2).
    pub const fn ldt(selector: u16, base: u64, limit: u32) -> Self {
        Self { selector, attrib: SegmentAttributes::LDT.with_present(true).bits(), limit, base }
    }

    /// A descriptor-table register (GDTR or IDTR): only base and limit are
    /// used, selector and attributes are reserved and left zero.
    pub const fn table(base: u64, limit: u16) -> Self {
        Self { selector: 0, attrib: 0, limit: limit as u32, base }
    }

    /// The segment a processor would load for `selector` from the 8-byte
    /// code/data `descriptor`: the base is gathered from its three pieces
    /// and the limit is expanded by the granularity bit.
    ///
    /// System descriptors in long mode are 16 bytes with base bits 63:32 in
    /// the second half; add those to `base` yourself.
    pub const fn from_descriptor(selector: u16, descriptor: u64) -> Self {
        let attributes = SegmentAttributes::from_descriptor(descriptor);
        let base = ((descriptor >> 16) & 0xFF_FFFF) | (((descriptor >> 56) & 0xFF) << 24);
        let raw_limit = ((descriptor & 0xFFFF) | ((descriptor >> 32) & 0xF_0000)) as u32;
        let limit = if attributes.granularity() { (raw_limit << 12) | 0xFFF } else { raw_limit };
        Self { selector, attrib: attributes.bits(), limit, base }
    }

    /// The 8-byte GDT/LDT descriptor for this segment: the inverse of
    /// [`Segment::from_descriptor`]. For a system segment in long mode this
    /// is the low half; the high half holds base bits 63:32.
    pub const fn to_descriptor(&self) -> u64 {
        let g = self.attributes().granularity();
        let limit = (if g { self.limit >> 12 } else { self.limit }) as u64;
        (limit & 0xFFFF)
            | ((self.base & 0xFF_FFFF) << 16)
            | self.attributes().to_descriptor_bits()
            | (((limit >> 16) & 0xF) << 48)
            | (((self.base >> 24) & 0xFF) << 56)
    }

    /// The packed attributes as a typed value.
    pub const fn attributes(&self) -> SegmentAttributes {
        SegmentAttributes::from_bits(self.attrib)
    }

    /// Whether the present bit is set (a clear P bit marks an unusable
    /// segment register).
    pub const fn is_present(&self) -> bool {
        self.attributes().present()
    }
}

/// The VMCB's 12-bit segment attribute word.
///
/// | bits | field |
/// |---|---|
/// | 3:0 | type |
/// | 4 | S (1 = code/data, 0 = system) |
/// | 6:5 | DPL |
/// | 7 | P (present) |
/// | 8 | AVL |
/// | 9 | L (64-bit code) |
/// | 10 | D/B (default size / big) |
/// | 11 | G (4 KiB granularity) |
///
/// Bits 15:12 are not used and are kept zero by every constructor here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SegmentAttributes(u16);

impl SegmentAttributes {
    const TYPE_MASK: u16 = 0xF;
    const S: u16 = 1 << 4;
    const DPL_SHIFT: u16 = 5;
    const DPL_MASK: u16 = 3 << Self::DPL_SHIFT;
    const P: u16 = 1 << 7;
    const AVL: u16 = 1 << 8;
    const L: u16 = 1 << 9;
    const DB: u16 = 1 << 10;
    const G: u16 = 1 << 11;
    /// The bits the VMCB defines.
    pub const DEFINED: u16 = 0x0FFF;

    /// Code/data, read/write data, accessed (type 0x3), not yet present.
    pub const DATA_RW_ACCESSED: Self = Self(Self::S | 0x3);
    /// Code/data, execute/read code, accessed (type 0xB), not yet present.
    pub const CODE_XR_ACCESSED: Self = Self(Self::S | 0xB);
    /// System, busy TSS (type 0xB), not yet present.
    pub const TSS_BUSY: Self = Self(0xB);
    /// System, LDT (type 0x2), not yet present.
    pub const LDT: Self = Self(0x2);

    /// Attributes from the raw VMCB word; bits 15:12 are dropped.
    pub const fn from_bits(bits: u16) -> Self {
        Self(bits & Self::DEFINED)
    }

    /// The raw VMCB word.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Packs the access byte (descriptor bits 47:40) and the flag nibble
    /// (descriptor bits 55:52) of a GDT/LDT descriptor.
    pub const fn from_descriptor(descriptor: u64) -> Self {
        let access = (descriptor >> 40) & 0xFF;
        let flags = (descriptor >> 52) & 0xF;
        Self((access | (flags << 8)) as u16)
    }

    /// Unpacks into descriptor bit positions: the access byte at bits 47:40
    /// and the flags at bits 55:52, every other bit zero.
    pub const fn to_descriptor_bits(self) -> u64 {
        let access = (self.0 & 0xFF) as u64;
        let flags = ((self.0 >> 8) & 0xF) as u64;
        (access << 40) | (flags << 52)
    }

    /// Segment type (bits 3:0).
    pub const fn segment_type(self) -> u8 {
        (self.0 & Self::TYPE_MASK) as u8
    }
    /// Replaces the segment type (the low 4 bits of `ty` are used).
    pub const fn with_segment_type(self, ty: u8) -> Self {
        Self((self.0 & !Self::TYPE_MASK) | (ty as u16 & Self::TYPE_MASK))
    }
    /// S: code/data (true) or system (false) descriptor.
    pub const fn code_or_data(self) -> bool {
        self.0 & Self::S != 0
    }
    /// Sets or clears S.
    pub const fn with_code_or_data(self, on: bool) -> Self {
        self.with_bit(Self::S, on)
    }
    /// Descriptor privilege level.
    pub const fn dpl(self) -> u8 {
        ((self.0 & Self::DPL_MASK) >> Self::DPL_SHIFT) as u8
    }
    /// Replaces the DPL (the low 2 bits of `dpl` are used).
    pub const fn with_dpl(self, dpl: u8) -> Self {
        Self((self.0 & !Self::DPL_MASK) | (((dpl as u16) & 3) << Self::DPL_SHIFT))
    }
    /// P: present.
    pub const fn present(self) -> bool {
        self.0 & Self::P != 0
    }
    /// Sets or clears P.
    pub const fn with_present(self, on: bool) -> Self {
        self.with_bit(Self::P, on)
    }
    /// AVL: available to software.
    pub const fn available(self) -> bool {
        self.0 & Self::AVL != 0
    }
    /// Sets or clears AVL.
    pub const fn with_available(self, on: bool) -> Self {
        self.with_bit(Self::AVL, on)
    }
    /// L: 64-bit code segment.
    pub const fn long(self) -> bool {
        self.0 & Self::L != 0
    }
    /// Sets or clears L.
    pub const fn with_long(self, on: bool) -> Self {
        self.with_bit(Self::L, on)
    }
    /// D/B: 32-bit default operand size (code) or big stack (data).
    pub const fn default_big(self) -> bool {
        self.0 & Self::DB != 0
    }
    /// Sets or clears D/B.
    pub const fn with_default_big(self, on: bool) -> Self {
        self.with_bit(Self::DB, on)
    }
    /// G: limit counts 4 KiB pages.
    pub const fn granularity(self) -> bool {
        self.0 & Self::G != 0
    }
    /// Sets or clears G.
    pub const fn with_granularity(self, on: bool) -> Self {
        self.with_bit(Self::G, on)
    }

    const fn with_bit(self, bit: u16, on: bool) -> Self {
        if on {
            Self(self.0 | bit)
        } else {
            Self(self.0 & !bit)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn to_descriptor_is_the_inverse_of_from_descriptor() {
        for d in [0x00AF_9B00_0000_FFFFu64, 0x00CF_9300_0000_FFFF, 0x0000_8B00_0000_0067, 0x120A_9334_5678_BCDE] {
            let s = Segment::from_descriptor(0x10, d);
            assert_eq!(s.to_descriptor(), d, "descriptor {d:#018x} via {s:?}");
        }
    }

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn flat_code64_has_the_usual_0xa9b_attributes_and_no_d_bit() {
        let cs = Segment::flat_code64(0x08);
        assert_eq!(cs.attrib, 0x0A9B, "got {:#x}", cs.attrib);
        assert!(cs.attributes().long());
        assert!(!cs.attributes().default_big());
        assert_eq!((cs.base, cs.limit, cs.selector), (0, 0xFFFF_FFFF, 0x08));
    }

    #[test]
    fn flat_data_and_code32_attributes_match_gdt_conventions() {
        assert_eq!(Segment::flat_data(0x10).attrib, 0x0C93);
        assert_eq!(Segment::flat_code32(0x08).attrib, 0x0C9B);
    }

    #[test]
    fn real_mode_segment_base_is_selector_times_16() {
        let ds = Segment::real_mode(0x1234);
        assert_eq!(ds.base, 0x12340);
        assert_eq!(ds.limit, 0xFFFF);
        assert_eq!(ds.attrib, 0x93);
        let cs = Segment::real_mode_code(0xF000);
        assert_eq!(cs.base, 0xF_0000);
        assert_eq!(cs.attrib, 0x9B);
    }

    #[test]
    fn system_segments_have_expected_types() {
        assert_eq!(Segment::busy_tss(0x28, 0x1000, 0x67).attrib, 0x8B);
        assert_eq!(Segment::ldt(0x30, 0, 0).attrib, 0x82);
        assert!(!Segment::NULL.is_present());
    }

    #[test]
    fn from_descriptor_decodes_a_flat_kernel_code_descriptor() {
        // The classic 64-bit kernel code descriptor 0x00AF9A000000FFFF.
        let seg = Segment::from_descriptor(0x08, 0x00AF_9A00_0000_FFFF);
        assert_eq!(seg.attrib, 0x0A9A);
        assert_eq!(seg.limit, 0xFFFF_FFFF);
        assert_eq!(seg.base, 0);
    }

    #[test]
    fn from_descriptor_gathers_the_split_base() {
        // base 0x12345678, limit 0x00FFF bytes, G=0, data RW present.
        let desc: u64 = 0x1200_9234_5678_0FFF;
        let seg = Segment::from_descriptor(0x10, desc);
        assert_eq!(seg.base, 0x1234_5678);
        assert_eq!(seg.limit, 0x0FFF);
        assert_eq!(seg.attrib, 0x0092);
    }

    #[test]
    fn field_setters_touch_only_their_bits() {
        let a = SegmentAttributes::default()
            .with_segment_type(0xF)
            .with_dpl(3)
            .with_code_or_data(true)
            .with_present(true)
            .with_available(true)
            .with_long(true)
            .with_default_big(true)
            .with_granularity(true);
        assert_eq!(a.bits(), 0x0FFF);
        assert_eq!(a.dpl(), 3);
        assert_eq!(a.segment_type(), 0xF);
        assert_eq!(a.with_dpl(0).bits(), 0x0F9F);
    }

    proptest! {
        #[test]
        fn attributes_round_trip_through_descriptor_bits(bits in 0u16..0x1000) {
            let a = SegmentAttributes::from_bits(bits);
            let back = SegmentAttributes::from_descriptor(a.to_descriptor_bits());
            prop_assert_eq!(back, a);
        }

        #[test]
        fn descriptor_attribute_bits_survive_packing(desc in any::<u64>()) {
            let mask = (0xFFu64 << 40) | (0xFu64 << 52);
            let packed = SegmentAttributes::from_descriptor(desc);
            prop_assert_eq!(packed.to_descriptor_bits(), desc & mask);
        }
    }
}
