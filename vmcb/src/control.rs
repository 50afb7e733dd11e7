//! The VMCB control area, offsets 0x000..0x400 (APM vol. 2, table B-1).
//!
//! Fields are plain integers at the architectural offsets, each pinned by a
//! compile-time assertion below. Typed views of the packed words are the
//! accessor methods on [`ControlArea`]. Reserved bytes are private and stay
//! zero, as the APM requires (SBZ).

use crate::controls::{CleanBits, ErapControl, IntControl, InterruptState, NestedControl, TlbControl, VirtExtensions};
use crate::event::EventInj;
use crate::exit_code::ExitCode;
use crate::intercept::{CrSet, DrSet, ExceptionIntercepts, InterceptMisc1, InterceptMisc2, InterceptMisc3};

/// Size of the control area in bytes.
pub const CONTROL_AREA_SIZE: usize = 0x400;

/// Intercepts the safe interface never clears: without them the guest would
/// read and write every host I/O port and MSR directly (the permission maps
/// are consulted only with IOIO_PROT and MSR_PROT set).
pub const ALWAYS_INTERCEPTED_MISC1: InterceptMisc1 = InterceptMisc1::IOIO_PROT.union(InterceptMisc1::MSR_PROT);

/// Intercepts the safe interface never clears: a guest's own VMLOAD and
/// VMSAVE would reach host-physical memory (without the virtual
/// VMLOAD/VMSAVE extension), and SKINIT would restart the host CPU.
pub const ALWAYS_INTERCEPTED_MISC2: InterceptMisc2 =
    InterceptMisc2::VMLOAD.union(InterceptMisc2::VMSAVE).union(InterceptMisc2::SKINIT);

/// The control area of a VMCB.
///
/// What this type's safe interface lets code build never lets a guest reach
/// host memory, host MSRs or host I/O ports directly, and no copy of a
/// control area can be made (no `Clone`, no public constructor outside
/// tests). The host-physical pointers (`N_CR3`, `IOPM_BASE_PA`,
/// `MSRPM_BASE_PA`) and NP_ENABLE are set only by the unsafe
/// [`ControlArea::bind_host_memory`], whose caller vouches for them; the
/// AVIC enables, whose pointers nobody sets, stay clear; and the intercepts
/// in [`ALWAYS_INTERCEPTED_MISC1`] and [`ALWAYS_INTERCEPTED_MISC2`] stay set.
#[repr(C)]
#[derive(Debug, PartialEq, Eq)]
pub struct ControlArea {
    /// 0x000: intercept vector 0, CR reads (15:0) and writes (31:16).
    pub intercept_cr: u32,
    /// 0x004: intercept vector 1, DR reads (15:0) and writes (31:16).
    pub intercept_dr: u32,
    /// 0x008: intercept vector 2, exceptions 0..31.
    pub intercept_exceptions: u32,
    /// 0x00C: intercept vector 3, see [`InterceptMisc1`].
    pub(crate) intercept_misc1: u32,
    /// 0x010: intercept vector 4, see [`InterceptMisc2`].
    pub(crate) intercept_misc2: u32,
    /// 0x014: intercept vector 5, see [`InterceptMisc3`].
    pub intercept_misc3: u32,
    reserved_0x018: [u8; 0x24],
    /// 0x03C: PAUSE filter threshold.
    pub pause_filter_threshold: u16,
    /// 0x03E: PAUSE filter count.
    pub pause_filter_count: u16,
    /// 0x040: physical address of the 12 KiB I/O permission map (bits 11:0
    /// ignored).
    pub(crate) iopm_base_pa: u64,
    /// 0x048: physical address of the 8 KiB MSR permission map (bits 11:0
    /// ignored).
    pub(crate) msrpm_base_pa: u64,
    /// 0x050: added to the TSC in RDTSC/RDTSCP.
    pub tsc_offset: u64,
    /// 0x058: guest ASID. VMRUN refuses ASID 0.
    pub guest_asid: u32,
    /// 0x05C: TLB_CONTROL, see [`TlbControl`].
    pub tlb_control: u8,
    /// 0x05D: return address predictor control, see [`ErapControl`].
    pub erap_control: u8,
    reserved_0x05e: [u8; 2],
    /// 0x060: virtual interrupt control, see [`IntControl`].
    pub(crate) int_control: u64,
    /// 0x068: interrupt shadow and guest interrupt mask, see
    /// [`InterruptState`].
    pub interrupt_shadow: u64,
    /// 0x070: EXITCODE, see [`ExitCode`].
    pub exit_code: u64,
    /// 0x078: EXITINFO1.
    pub exit_info1: u64,
    /// 0x080: EXITINFO2.
    pub exit_info2: u64,
    /// 0x088: EXITINTINFO, in the [`EventInj`] format.
    pub exit_int_info: u64,
    /// 0x090: NP_ENABLE and related enables, see [`NestedControl`].
    pub(crate) np_enable: u64,
    /// 0x098: AVIC APIC_BAR (bits 51:0).
    pub(crate) avic_apic_bar: u64,
    /// 0x0A0: guest physical address of the GHCB (SEV-ES).
    pub ghcb_gpa: u64,
    /// 0x0A8: EVENTINJ, see [`EventInj`].
    pub event_inj: u64,
    /// 0x0B0: N_CR3, the nested page table root.
    pub(crate) n_cr3: u64,
    /// 0x0B8: virtualization extensions, see [`VirtExtensions`].
    pub virt_ext: u64,
    /// 0x0C0: VMCB clean bits, see [`CleanBits`].
    pub vmcb_clean: u32,
    reserved_0x0c4: u32,
    /// 0x0C8: nRIP, the next sequential RIP (NRIPS feature).
    pub next_rip: u64,
    /// 0x0D0: number of guest instruction bytes fetched (decode assists).
    pub guest_insn_len: u8,
    /// 0x0D1: the fetched guest instruction bytes.
    pub guest_insn_bytes: [u8; 15],
    /// 0x0E0: AVIC APIC_BACKING_PAGE pointer (bits 51:0).
    pub(crate) avic_backing_page: u64,
    reserved_0x0e8: [u8; 8],
    /// 0x0F0: AVIC LOGICAL_TABLE pointer (bits 51:12).
    pub(crate) avic_logical_table: u64,
    /// 0x0F8: AVIC PHYSICAL_TABLE pointer (bits 51:12) and
    /// AVIC_PHYSICAL_MAX_INDEX (bits 11:0).
    pub(crate) avic_physical_table: u64,
    reserved_0x100: [u8; 8],
    /// 0x108: VMSA pointer (bits 51:12), SEV-ES.
    pub(crate) vmsa_pa: u64,
    /// 0x110: VMGEXIT_RAX.
    pub vmgexit_rax: u64,
    /// 0x118: VMGEXIT_CPL.
    pub vmgexit_cpl: u8,
    reserved_0x119: [u8; 7],
    /// 0x120: bus lock threshold counter.
    pub bus_lock_threshold: u16,
    reserved_0x122: [u8; 0x12],
    /// 0x134: UPDATE_IRR (bit 0).
    pub update_irr: u32,
    /// 0x138: ALLOWED_SEV_FEATURES (mask in 61:0, enable in bit 63).
    pub allowed_sev_features: u64,
    /// 0x140: GUEST_SEV_FEATURES (61:0).
    pub guest_sev_features: u64,
    reserved_0x148: [u8; 8],
    /// 0x150: REQUESTED_IRR, 256 bits.
    pub requested_irr: [u64; 4],
    reserved_0x170: [u8; 0x270],
    /// 0x3E0: 32 bytes reserved for the host's own use; the processor
    /// never touches them.
    pub host_use: [u8; 0x20],
}

impl ControlArea {
    /// A control area with every byte zero: nested paging off, no
    /// intercepts. Only for tests: such a control area must never reach a
    /// VMCB that VMRUN runs (see the type's documentation).
    #[cfg(any(test, feature = "test-util"))]
    pub const fn new_zeroed() -> Self {
        Self {
            intercept_cr: 0,
            intercept_dr: 0,
            intercept_exceptions: 0,
            intercept_misc1: 0,
            intercept_misc2: 0,
            intercept_misc3: 0,
            reserved_0x018: [0; 0x24],
            pause_filter_threshold: 0,
            pause_filter_count: 0,
            iopm_base_pa: 0,
            msrpm_base_pa: 0,
            tsc_offset: 0,
            guest_asid: 0,
            tlb_control: 0,
            erap_control: 0,
            reserved_0x05e: [0; 2],
            int_control: 0,
            interrupt_shadow: 0,
            exit_code: 0,
            exit_info1: 0,
            exit_info2: 0,
            exit_int_info: 0,
            np_enable: 0,
            avic_apic_bar: 0,
            ghcb_gpa: 0,
            event_inj: 0,
            n_cr3: 0,
            virt_ext: 0,
            vmcb_clean: 0,
            reserved_0x0c4: 0,
            next_rip: 0,
            guest_insn_len: 0,
            guest_insn_bytes: [0; 15],
            avic_backing_page: 0,
            reserved_0x0e8: [0; 8],
            avic_logical_table: 0,
            avic_physical_table: 0,
            reserved_0x100: [0; 8],
            vmsa_pa: 0,
            vmgexit_rax: 0,
            vmgexit_cpl: 0,
            reserved_0x119: [0; 7],
            bus_lock_threshold: 0,
            reserved_0x122: [0; 0x12],
            update_irr: 0,
            allowed_sev_features: 0,
            guest_sev_features: 0,
            reserved_0x148: [0; 8],
            requested_irr: [0; 4],
            reserved_0x170: [0; 0x270],
            host_use: [0; 0x20],
        }
    }

    /// CRs whose reads are intercepted.
    pub const fn cr_read_intercepts(&self) -> CrSet {
        CrSet::from_bits_retain(self.intercept_cr as u16)
    }
    /// Sets the CRs whose reads are intercepted.
    pub fn set_cr_read_intercepts(&mut self, set: CrSet) {
        self.intercept_cr = (self.intercept_cr & 0xFFFF_0000) | set.bits() as u32;
    }
    /// CRs whose writes are intercepted.
    pub const fn cr_write_intercepts(&self) -> CrSet {
        CrSet::from_bits_retain((self.intercept_cr >> 16) as u16)
    }
    /// Sets the CRs whose writes are intercepted.
    pub fn set_cr_write_intercepts(&mut self, set: CrSet) {
        self.intercept_cr = (self.intercept_cr & 0xFFFF) | ((set.bits() as u32) << 16);
    }

    /// DRs whose reads are intercepted.
    pub const fn dr_read_intercepts(&self) -> DrSet {
        DrSet::from_bits_retain(self.intercept_dr as u16)
    }
    /// Sets the DRs whose reads are intercepted.
    pub fn set_dr_read_intercepts(&mut self, set: DrSet) {
        self.intercept_dr = (self.intercept_dr & 0xFFFF_0000) | set.bits() as u32;
    }
    /// DRs whose writes are intercepted.
    pub const fn dr_write_intercepts(&self) -> DrSet {
        DrSet::from_bits_retain((self.intercept_dr >> 16) as u16)
    }
    /// Sets the DRs whose writes are intercepted.
    pub fn set_dr_write_intercepts(&mut self, set: DrSet) {
        self.intercept_dr = (self.intercept_dr & 0xFFFF) | ((set.bits() as u32) << 16);
    }

    /// Intercepted exception vectors.
    pub const fn exception_intercepts(&self) -> ExceptionIntercepts {
        ExceptionIntercepts::from_bits_retain(self.intercept_exceptions)
    }
    /// Sets the intercepted exception vectors.
    pub fn set_exception_intercepts(&mut self, set: ExceptionIntercepts) {
        self.intercept_exceptions = set.bits();
    }

    /// The first miscellaneous intercept vector.
    pub const fn misc1_intercepts(&self) -> InterceptMisc1 {
        InterceptMisc1::from_bits_retain(self.intercept_misc1)
    }
    /// Sets the first miscellaneous intercept vector; the intercepts of
    /// [`ALWAYS_INTERCEPTED_MISC1`] stay set whatever `set` says.
    pub fn set_misc1_intercepts(&mut self, set: InterceptMisc1) {
        self.intercept_misc1 = (set | ALWAYS_INTERCEPTED_MISC1).bits();
    }

    /// The second miscellaneous intercept vector.
    pub const fn misc2_intercepts(&self) -> InterceptMisc2 {
        InterceptMisc2::from_bits_retain(self.intercept_misc2)
    }
    /// Sets the second miscellaneous intercept vector; the intercepts of
    /// [`ALWAYS_INTERCEPTED_MISC2`] stay set whatever `set` says.
    pub fn set_misc2_intercepts(&mut self, set: InterceptMisc2) {
        self.intercept_misc2 = (set | ALWAYS_INTERCEPTED_MISC2).bits();
    }

    /// The third miscellaneous intercept vector.
    pub const fn misc3_intercepts(&self) -> InterceptMisc3 {
        InterceptMisc3::from_bits_retain(self.intercept_misc3)
    }
    /// Sets the third miscellaneous intercept vector.
    pub fn set_misc3_intercepts(&mut self, set: InterceptMisc3) {
        self.intercept_misc3 = set.bits();
    }

    /// TLB_CONTROL, or `None` if the byte holds a reserved encoding.
    pub const fn tlb_flush(&self) -> Option<TlbControl> {
        TlbControl::from_raw(self.tlb_control)
    }
    /// Sets TLB_CONTROL.
    pub fn set_tlb_flush(&mut self, ctl: TlbControl) {
        self.tlb_control = ctl.to_raw();
    }

    /// The return address predictor control byte.
    pub const fn erap(&self) -> ErapControl {
        ErapControl::from_bits_retain(self.erap_control)
    }
    /// Sets the return address predictor control byte.
    pub fn set_erap(&mut self, ctl: ErapControl) {
        self.erap_control = ctl.bits();
    }

    /// The virtual interrupt control word.
    pub const fn interrupt_control(&self) -> IntControl {
        IntControl::from_raw(self.int_control)
    }
    /// Sets the virtual interrupt control word, with AVIC and x2AVIC off
    /// whatever `ctl` says: the AVIC pages are named by host-physical
    /// pointers this crate never sets.
    pub fn set_interrupt_control(&mut self, ctl: IntControl) {
        self.int_control = ctl.with_avic_enable(false).with_x2avic_enable(false).to_raw();
    }

    /// The interrupt-shadow word.
    pub const fn interrupt_state(&self) -> InterruptState {
        InterruptState::from_bits_retain(self.interrupt_shadow)
    }
    /// Sets the interrupt-shadow word.
    pub fn set_interrupt_state(&mut self, state: InterruptState) {
        self.interrupt_shadow = state.bits();
    }
    /// Whether the guest is in an interrupt shadow (an interrupt cannot be
    /// injected before the next instruction).
    pub const fn in_interrupt_shadow(&self) -> bool {
        self.interrupt_state().contains(InterruptState::INTERRUPT_SHADOW)
    }

    /// EXITCODE decoded (see [`ExitCode::from_raw`]).
    pub const fn exit_reason(&self) -> ExitCode {
        ExitCode::from_raw(self.exit_code)
    }

    /// The event that was being delivered when the exit happened, if any
    /// (EXITINTINFO with V set). It must be re-injected or it is lost.
    pub const fn exit_interrupt_info(&self) -> Option<EventInj> {
        EventInj::from_exit_int_info(self.exit_int_info)
    }

    /// The event to inject on the next VMRUN.
    pub const fn event_injection(&self) -> EventInj {
        EventInj::from_raw(self.event_inj)
    }
    /// Sets the event to inject on the next VMRUN ([`EventInj::NONE`] to
    /// inject nothing). The processor clears V once it has delivered it.
    pub fn set_event_injection(&mut self, event: EventInj) {
        self.event_inj = event.to_raw();
    }

    /// Nested-paging and related enables.
    pub const fn nested_control(&self) -> NestedControl {
        NestedControl::from_bits_retain(self.np_enable)
    }
    /// The nested page table's root (N_CR3).
    pub const fn n_cr3(&self) -> u64 {
        self.n_cr3
    }
    /// The I/O permission map's host-physical address.
    pub const fn iopm_base_pa(&self) -> u64 {
        self.iopm_base_pa
    }
    /// The MSR permission map's host-physical address.
    pub const fn msrpm_base_pa(&self) -> u64 {
        self.msrpm_base_pa
    }

    /// Points the VMCB at its nested page table and permission maps and
    /// turns nested paging on (NP_ENABLE alone: no SEV); also sets the
    /// intercepts that must always be set.
    ///
    /// # Safety
    /// `n_cr3` must be the root of a nested page table, and `iopm_pa` and
    /// `msrpm_pa` the first bytes of a 12 KiB and an 8 KiB permission map,
    /// that map and grant only what the guest may have, and that stay so,
    /// allocated and unchanged except through their owner, for as long as
    /// VMRUN may run this VMCB. The CPU reads all three by host-physical
    /// address.
    #[allow(unsafe_code)]
    pub unsafe fn bind_host_memory(&mut self, iopm_pa: u64, msrpm_pa: u64, n_cr3: u64) {
        self.iopm_base_pa = iopm_pa;
        self.msrpm_base_pa = msrpm_pa;
        self.n_cr3 = n_cr3;
        self.np_enable = NestedControl::NP_ENABLE.bits();
        self.intercept_misc1 |= ALWAYS_INTERCEPTED_MISC1.bits();
        self.intercept_misc2 |= ALWAYS_INTERCEPTED_MISC2.bits();
    }
    /// Whether NP_ENABLE is set.
    pub const fn nested_paging_enabled(&self) -> bool {
        self.nested_control().contains(NestedControl::NP_ENABLE)
    }

    /// Virtualization extensions.
    pub const fn virt_extensions(&self) -> VirtExtensions {
        VirtExtensions::from_bits_retain(self.virt_ext)
    }
    /// Sets the virtualization extensions.
    pub fn set_virt_extensions(&mut self, ext: VirtExtensions) {
        self.virt_ext = ext.bits();
    }

    /// VMCB clean bits.
    pub const fn clean_bits(&self) -> CleanBits {
        CleanBits::from_bits_retain(self.vmcb_clean)
    }
    /// Sets the VMCB clean bits.
    pub fn set_clean_bits(&mut self, bits: CleanBits) {
        self.vmcb_clean = bits.bits();
    }

    /// The guest instruction bytes the processor fetched (decode assists),
    /// at most 15; empty when the count is zero.
    pub fn fetched_instruction(&self) -> &[u8] {
        let len = usize::from(self.guest_insn_len).min(self.guest_insn_bytes.len());
        &self.guest_insn_bytes[..len]
    }
}

#[cfg(any(test, feature = "test-util"))]
impl Default for ControlArea {
    fn default() -> Self {
        Self::new_zeroed()
    }
}

/// Pins `$field` of `$ty` at `$offset`.
macro_rules! pin {
    ($ty:ty, $($field:ident = $offset:expr),+ $(,)?) => {
        $(const _: () = assert!(core::mem::offset_of!($ty, $field) == $offset);)+
    };
}

pin!(
    ControlArea,
    intercept_cr = 0x000,
    intercept_dr = 0x004,
    intercept_exceptions = 0x008,
    intercept_misc1 = 0x00C,
    intercept_misc2 = 0x010,
    intercept_misc3 = 0x014,
    reserved_0x018 = 0x018,
    pause_filter_threshold = 0x03C,
    pause_filter_count = 0x03E,
    iopm_base_pa = 0x040,
    msrpm_base_pa = 0x048,
    tsc_offset = 0x050,
    guest_asid = 0x058,
    tlb_control = 0x05C,
    erap_control = 0x05D,
    reserved_0x05e = 0x05E,
    int_control = 0x060,
    interrupt_shadow = 0x068,
    exit_code = 0x070,
    exit_info1 = 0x078,
    exit_info2 = 0x080,
    exit_int_info = 0x088,
    np_enable = 0x090,
    avic_apic_bar = 0x098,
    ghcb_gpa = 0x0A0,
    event_inj = 0x0A8,
    n_cr3 = 0x0B0,
    virt_ext = 0x0B8,
    vmcb_clean = 0x0C0,
    reserved_0x0c4 = 0x0C4,
    next_rip = 0x0C8,
    guest_insn_len = 0x0D0,
    guest_insn_bytes = 0x0D1,
    avic_backing_page = 0x0E0,
    reserved_0x0e8 = 0x0E8,
    avic_logical_table = 0x0F0,
    avic_physical_table = 0x0F8,
    reserved_0x100 = 0x100,
    vmsa_pa = 0x108,
    vmgexit_rax = 0x110,
    vmgexit_cpl = 0x118,
    reserved_0x119 = 0x119,
    bus_lock_threshold = 0x120,
    reserved_0x122 = 0x122,
    update_irr = 0x134,
    allowed_sev_features = 0x138,
    guest_sev_features = 0x140,
    reserved_0x148 = 0x148,
    requested_irr = 0x150,
    reserved_0x170 = 0x170,
    host_use = 0x3E0,
);
const _: () = assert!(core::mem::size_of::<ControlArea>() == CONTROL_AREA_SIZE);

pub(crate) use pin;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cr_and_dr_halves_are_independent() {
        let mut c = ControlArea::new_zeroed();
        c.set_cr_read_intercepts(CrSet::CR0 | CrSet::CR3);
        c.set_cr_write_intercepts(CrSet::CR0 | CrSet::CR4 | CrSet::CR8);
        assert_eq!(c.intercept_cr, 0x0111_0009);
        assert_eq!(c.cr_read_intercepts(), CrSet::CR0 | CrSet::CR3);
        c.set_cr_read_intercepts(CrSet::empty());
        assert_eq!(c.intercept_cr, 0x0111_0000);

        c.set_dr_write_intercepts(DrSet::DR7);
        c.set_dr_read_intercepts(DrSet::DR6 | DrSet::DR7);
        assert_eq!(c.intercept_dr, 0x0080_00C0);
        assert_eq!(c.dr_write_intercepts(), DrSet::DR7);
    }

    #[test]
    fn misc_vectors_write_their_own_words() {
        let mut c = ControlArea::new_zeroed();
        c.set_misc1_intercepts(InterceptMisc1::CPUID | InterceptMisc1::HLT);
        c.set_misc2_intercepts(InterceptMisc2::VMRUN | InterceptMisc2::VMMCALL);
        c.set_misc3_intercepts(InterceptMisc3::INVPCID);
        c.set_exception_intercepts(ExceptionIntercepts::PF | ExceptionIntercepts::MC);
        // IOIO_PROT and MSR_PROT (27, 28), VMLOAD, VMSAVE and SKINIT (2, 3, 6) stay set.
        assert_eq!(c.intercept_misc1, (1 << 18) | (1 << 24) | (1 << 27) | (1 << 28));
        assert_eq!(c.intercept_misc2, 0b11 | (1 << 2) | (1 << 3) | (1 << 6));
        assert_eq!(c.intercept_misc3, 1 << 2);
        assert_eq!(c.intercept_exceptions, (1 << 14) | (1 << 18));
        assert_eq!(c.misc2_intercepts(), InterceptMisc2::VMRUN | InterceptMisc2::VMMCALL | ALWAYS_INTERCEPTED_MISC2);
    }

    #[test]
    fn binding_host_memory_turns_on_nested_paging_and_the_fixed_intercepts() {
        let mut c = ControlArea::new_zeroed();
        // SAFETY: a test value that no VMRUN ever sees.
        #[allow(unsafe_code)]
        unsafe {
            c.bind_host_memory(0x1000, 0x4000, 0x6000)
        };
        assert_eq!((c.iopm_base_pa(), c.msrpm_base_pa(), c.n_cr3()), (0x1000, 0x4000, 0x6000));
        assert_eq!(c.nested_control(), NestedControl::NP_ENABLE);
        assert!(c.misc1_intercepts().contains(ALWAYS_INTERCEPTED_MISC1));
        assert!(c.misc2_intercepts().contains(ALWAYS_INTERCEPTED_MISC2));
    }

    #[test]
    fn typed_words_round_trip_through_the_raw_fields() {
        let mut c = ControlArea::new_zeroed();
        c.set_tlb_flush(TlbControl::FlushThisAsid);
        assert_eq!(c.tlb_control, 3);
        assert_eq!(c.tlb_flush(), Some(TlbControl::FlushThisAsid));
        c.tlb_control = 2;
        assert_eq!(c.tlb_flush(), None);

        c.np_enable = 1;
        assert!(c.nested_paging_enabled());

        c.set_event_injection(EventInj::exception_with_error(13, 0));
        assert_eq!(c.event_inj, 0x8000_0B0D);

        c.set_interrupt_state(InterruptState::INTERRUPT_SHADOW);
        assert!(c.in_interrupt_shadow());

        c.set_interrupt_control(IntControl::ZERO.with_v_irq(true).with_v_intr_masking(true));
        assert_eq!(c.int_control, (1 << 8) | (1 << 24));
        c.set_interrupt_control(IntControl::ZERO.with_v_irq(true).with_avic_enable(true).with_x2avic_enable(true));
        assert_eq!(c.int_control, 1 << 8, "AVIC stays off: its pages are never given");

        c.set_clean_bits(CleanBits::all() - CleanBits::TPR);
        assert_eq!(c.vmcb_clean, !(1u32 << 3));

        c.exit_code = 0xFFFF_FFFF;
        assert_eq!(c.exit_reason(), ExitCode::Invalid);

        c.exit_int_info = 0x8000_030E;
        assert_eq!(c.exit_interrupt_info(), Some(EventInj::exception(14)));
    }

    #[test]
    fn fetched_instruction_is_bounded_by_the_buffer() {
        let mut c = ControlArea::new_zeroed();
        assert!(c.fetched_instruction().is_empty());
        c.guest_insn_len = 2;
        c.guest_insn_bytes[..2].copy_from_slice(&[0x0F, 0xA2]);
        assert_eq!(c.fetched_instruction(), &[0x0F, 0xA2]);
        c.guest_insn_len = 200;
        assert_eq!(c.fetched_instruction().len(), 15);
    }
}
