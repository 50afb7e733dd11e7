//! Typed forms of the smaller control-area words: TLB control, the
//! virtual-interrupt control word, the interrupt-shadow word, nested-paging
//! control, virtualization extensions and VMCB clean bits (APM vol. 2,
//! table B-1 and 15.15.3).

use bitflags::bitflags;

/// TLB_CONTROL (control area offset 0x05C).
///
/// Only [`TlbControl::DoNothing`] and [`TlbControl::FlushAll`] exist on
/// every SVM processor; the ASID-scoped flushes need the FlushByAsid
/// feature (CPUID Fn8000_000A EDX bit 6), which QEMU TCG lacks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TlbControl {
    /// Flush nothing.
    #[default]
    DoNothing = 0,
    /// Flush the whole TLB, every ASID (meant for legacy hypervisors).
    FlushAll = 1,
    /// Flush this guest's entries.
    FlushThisAsid = 3,
    /// Flush this guest's non-global entries.
    FlushThisAsidNonGlobal = 7,
}

impl TlbControl {
    /// The value for a raw TLB_CONTROL byte; `None` for reserved encodings.
    pub const fn from_raw(raw: u8) -> Option<Self> {
        match raw {
            0 => Some(Self::DoNothing),
            1 => Some(Self::FlushAll),
            3 => Some(Self::FlushThisAsid),
            7 => Some(Self::FlushThisAsidNonGlobal),
            _ => None,
        }
    }

    /// The raw byte.
    pub const fn to_raw(self) -> u8 {
        self as u8
    }
}

bitflags! {
    /// Byte 0x05D: bits 40 and 41 of the ASID/TLB quadword (enhanced return
    /// address predictor control).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct ErapControl: u8 {
        /// The guest's return address predictor has the size in CPUID
        /// Fn8000_0021 EBX.RapSize instead of 32.
        const ALLOW_LARGER_RAP = 1 << 0;
        /// Clear the return address predictor on VMRUN.
        const CLEAR_RAP = 1 << 1;
        const _ = !0;
    }
}

/// The virtual interrupt control word (control area offset 0x060).
///
/// | bits | field |
/// |---|---|
/// | 7:0 | V_TPR (3:0 used), written back on #VMEXIT |
/// | 8 | V_IRQ: a virtual interrupt is pending, written back on #VMEXIT |
/// | 9 | VGIF value |
/// | 11 | V_NMI pending |
/// | 12 | V_NMI_MASK |
/// | 19:16 | V_INTR_PRIO |
/// | 20 | V_IGN_TPR |
/// | 24 | V_INTR_MASKING |
/// | 25 | V_GIF_ENABLE |
/// | 26 | V_NMI_ENABLE |
/// | 30 | x2AVIC enable |
/// | 31 | AVIC enable |
/// | 39:32 | V_INTR_VECTOR |
///
/// With AVIC enabled, V_IRQ, V_INTR_PRIO, V_IGN_TPR and V_INTR_VECTOR are
/// ignored on VMRUN. The other bits are reserved (SBZ); the `with_*`
/// methods never set them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct IntControl(u64);

macro_rules! int_control_flag {
    ($(#[$doc:meta])* $get:ident, $with:ident, $bit:expr) => {
        $(#[$doc])*
        pub const fn $get(self) -> bool {
            self.0 & (1 << $bit) != 0
        }
        $(#[$doc])*
        ///
        /// Returns the word with the bit set to `on`.
        pub const fn $with(self, on: bool) -> Self {
            if on {
                Self(self.0 | (1 << $bit))
            } else {
                Self(self.0 & !(1 << $bit))
            }
        }
    };
}

impl IntControl {
    const V_TPR_MASK: u64 = 0xF;
    const V_INTR_PRIO_SHIFT: u32 = 16;
    const V_INTR_PRIO_MASK: u64 = 0xF << Self::V_INTR_PRIO_SHIFT;
    const V_INTR_VECTOR_SHIFT: u32 = 32;
    const V_INTR_VECTOR_MASK: u64 = 0xFF << Self::V_INTR_VECTOR_SHIFT;

    /// All fields zero.
    pub const ZERO: Self = Self(0);

    /// Wraps a raw word unchanged.
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    /// The raw word.
    pub const fn to_raw(self) -> u64 {
        self.0
    }

    /// V_TPR (4 bits).
    pub const fn v_tpr(self) -> u8 {
        (self.0 & Self::V_TPR_MASK) as u8
    }

    /// Returns the word with V_TPR set to the low 4 bits of `tpr`.
    pub const fn with_v_tpr(self, tpr: u8) -> Self {
        Self((self.0 & !0xFF) | (tpr as u64 & Self::V_TPR_MASK))
    }

    int_control_flag!(
        /// V_IRQ: a virtual interrupt is pending.
        v_irq, with_v_irq, 8
    );
    int_control_flag!(
        /// VGIF: the guest's virtual GIF (1 = virtual interrupts unmasked).
        v_gif, with_v_gif, 9
    );
    int_control_flag!(
        /// V_NMI: a virtual NMI is pending.
        v_nmi, with_v_nmi, 11
    );
    int_control_flag!(
        /// V_NMI_MASK: virtual NMIs are masked.
        v_nmi_mask, with_v_nmi_mask, 12
    );
    int_control_flag!(
        /// V_IGN_TPR: the pending virtual interrupt ignores V_TPR.
        v_ign_tpr, with_v_ign_tpr, 20
    );
    int_control_flag!(
        /// V_INTR_MASKING: virtualize interrupt masking (the host's
        /// RFLAGS.IF governs physical interrupts, CR8 goes to V_TPR).
        v_intr_masking, with_v_intr_masking, 24
    );
    int_control_flag!(
        /// V_GIF_ENABLE: the guest has a virtual GIF.
        v_gif_enable, with_v_gif_enable, 25
    );
    int_control_flag!(
        /// V_NMI_ENABLE: NMI virtualization.
        v_nmi_enable, with_v_nmi_enable, 26
    );
    int_control_flag!(
        /// x2AVIC enable (requires AVIC enable).
        x2avic_enable, with_x2avic_enable, 30
    );
    int_control_flag!(
        /// AVIC enable.
        avic_enable, with_avic_enable, 31
    );

    /// V_INTR_PRIO (4 bits).
    pub const fn v_intr_prio(self) -> u8 {
        ((self.0 & Self::V_INTR_PRIO_MASK) >> Self::V_INTR_PRIO_SHIFT) as u8
    }

    /// Returns the word with V_INTR_PRIO set to the low 4 bits of `prio`.
    pub const fn with_v_intr_prio(self, prio: u8) -> Self {
        Self((self.0 & !Self::V_INTR_PRIO_MASK) | (((prio as u64) & 0xF) << Self::V_INTR_PRIO_SHIFT))
    }

    /// V_INTR_VECTOR.
    pub const fn v_intr_vector(self) -> u8 {
        ((self.0 & Self::V_INTR_VECTOR_MASK) >> Self::V_INTR_VECTOR_SHIFT) as u8
    }

    /// Returns the word with V_INTR_VECTOR set.
    pub const fn with_v_intr_vector(self, vector: u8) -> Self {
        Self((self.0 & !Self::V_INTR_VECTOR_MASK) | ((vector as u64) << Self::V_INTR_VECTOR_SHIFT))
    }
}

bitflags! {
    /// The interrupt-state word (control area offset 0x068).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct InterruptState: u64 {
        /// The guest is in an interrupt shadow (after STI or MOV SS).
        const INTERRUPT_SHADOW = 1 << 0;
        /// The guest's RFLAGS.IF (only maintained for SEV-ES guests),
        /// written back on #VMEXIT.
        const GUEST_INTERRUPT_MASK = 1 << 1;
        const _ = !0;
    }
}

bitflags! {
    /// Nested-paging and related enables (control area offset 0x090).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct NestedControl: u64 {
        /// NP_ENABLE: nested paging through N_CR3.
        const NP_ENABLE = 1 << 0;
        /// Secure Encrypted Virtualization.
        const SEV = 1 << 1;
        /// Encrypted state (SEV-ES).
        const SEV_ES = 1 << 2;
        /// Guest Mode Execute Trap.
        const GMET = 1 << 3;
        /// Supervisor shadow stack restrictions in nested page tables.
        const SSS_CHECK = 1 << 4;
        /// Virtual Transparent Encryption.
        const VTE = 1 << 5;
        /// Read-only guest page tables.
        const RO_GUEST_PAGE_TABLES = 1 << 6;
        /// Let the guest execute INVLPGB/TLBSYNC (otherwise #UD, when the
        /// feature exists).
        const INVLPGB_TLBSYNC = 1 << 7;
        const _ = !0;
    }
}

bitflags! {
    /// Virtualization extensions (control area offset 0x0B8).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct VirtExtensions: u64 {
        /// LBR virtualization.
        const LBR_VIRT = 1 << 0;
        /// VMSAVE/VMLOAD virtualization.
        const VMSAVE_VMLOAD_VIRT = 1 << 1;
        /// IBS virtualization.
        const IBS_VIRT = 1 << 2;
        /// PMC virtualization.
        const PMC_VIRT = 1 << 3;
        const _ = !0;
    }
}

bitflags! {
    /// VMCB clean bits (control area offset 0x0C0, APM 15.15.3): a set bit
    /// tells the processor it may keep its cached copy of that group of
    /// fields. Clear everything (`CleanBits::empty()`) on the first VMRUN
    /// of a VMCB, after moving it, or when running it on another CPU; clear
    /// a bit whenever a field of its group changes. Processors without the
    /// feature (QEMU TCG) ignore the word.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct CleanBits: u32 {
        /// Intercept vectors, TSC_OFFSET, pause filter threshold and count.
        const INTERCEPTS = 1 << 0;
        /// IOPM_BASE_PA and MSRPM_BASE_PA.
        const IOPM = 1 << 1;
        /// ASID.
        const ASID = 1 << 2;
        /// V_TPR, V_IRQ, V_INTR_PRIO, V_IGN_TPR, V_INTR_MASKING,
        /// V_INTR_VECTOR (offsets 0x60..0x67).
        const TPR = 1 << 3;
        /// NP_ENABLE, N_CR3, G_PAT.
        const NP = 1 << 4;
        /// CR0, CR3, CR4, EFER.
        const CRX = 1 << 5;
        /// DR6, DR7.
        const DRX = 1 << 6;
        /// GDTR, IDTR.
        const DT = 1 << 7;
        /// CS, DS, SS, ES, CPL.
        const SEG = 1 << 8;
        /// CR2.
        const CR2 = 1 << 9;
        /// DbgCtlMsr, br_from/to, lastint_from/to.
        const LBR = 1 << 10;
        /// AVIC APIC_BAR and the backing-page, logical and physical table
        /// pointers.
        const AVIC = 1 << 11;
        /// S_CET, SSP, ISST_ADDR.
        const CET = 1 << 12;
        const _ = !0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlb_control_encodings_match_table_b1() {
        for (ctl, raw) in [
            (TlbControl::DoNothing, 0),
            (TlbControl::FlushAll, 1),
            (TlbControl::FlushThisAsid, 3),
            (TlbControl::FlushThisAsidNonGlobal, 7),
        ] {
            assert_eq!(ctl.to_raw(), raw);
            assert_eq!(TlbControl::from_raw(raw), Some(ctl));
        }
        for reserved in [2, 4, 5, 6, 8, 0xFF] {
            assert_eq!(TlbControl::from_raw(reserved), None);
        }
    }

    #[test]
    fn int_control_fields_land_on_their_bits() {
        let z = IntControl::ZERO;
        assert_eq!(z.with_v_tpr(0xF).to_raw(), 0xF);
        assert_eq!(z.with_v_tpr(0x1F).to_raw(), 0xF);
        assert_eq!(z.with_v_irq(true).to_raw(), 1 << 8);
        assert_eq!(z.with_v_gif(true).to_raw(), 1 << 9);
        assert_eq!(z.with_v_nmi(true).to_raw(), 1 << 11);
        assert_eq!(z.with_v_nmi_mask(true).to_raw(), 1 << 12);
        assert_eq!(z.with_v_intr_prio(0xF).to_raw(), 0xF << 16);
        assert_eq!(z.with_v_ign_tpr(true).to_raw(), 1 << 20);
        assert_eq!(z.with_v_intr_masking(true).to_raw(), 1 << 24);
        assert_eq!(z.with_v_gif_enable(true).to_raw(), 1 << 25);
        assert_eq!(z.with_v_nmi_enable(true).to_raw(), 1 << 26);
        assert_eq!(z.with_x2avic_enable(true).to_raw(), 1 << 30);
        assert_eq!(z.with_avic_enable(true).to_raw(), 1 << 31);
        assert_eq!(z.with_v_intr_vector(0xEF).to_raw(), 0xEF << 32);
    }

    #[test]
    fn int_control_setters_preserve_other_fields() {
        let c = IntControl::ZERO
            .with_v_irq(true)
            .with_v_intr_vector(0x30)
            .with_v_intr_prio(2)
            .with_v_intr_masking(true)
            .with_v_tpr(5);
        assert!(c.v_irq() && c.v_intr_masking());
        assert_eq!((c.v_intr_vector(), c.v_intr_prio(), c.v_tpr()), (0x30, 2, 5));
        let c = c.with_v_irq(false);
        assert!(!c.v_irq());
        assert_eq!(c.v_intr_vector(), 0x30);
    }

    #[test]
    fn clean_bits_match_the_apm_numbering() {
        assert_eq!(CleanBits::INTERCEPTS.bits(), 1);
        assert_eq!(CleanBits::NP.bits(), 1 << 4);
        assert_eq!(CleanBits::SEG.bits(), 1 << 8);
        assert_eq!(CleanBits::AVIC.bits(), 1 << 11);
        assert_eq!(CleanBits::CET.bits(), 1 << 12);
    }

    #[test]
    fn nested_control_np_enable_is_bit_0() {
        assert_eq!(NestedControl::NP_ENABLE.bits(), 1);
        assert_eq!(NestedControl::INVLPGB_TLBSYNC.bits(), 1 << 7);
        assert_eq!(VirtExtensions::VMSAVE_VMLOAD_VIRT.bits(), 2);
        assert_eq!(InterruptState::INTERRUPT_SHADOW.bits(), 1);
    }
}
