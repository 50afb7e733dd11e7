//! Decoders for EXITINFO1/EXITINFO2 (control area offsets 0x078 and 0x080)
//! per exit reason (APM vol. 2, chapter 15 and appendix C).
//!
//! Decoders that can meet a value no processor produces return
//! [`ExitInfoError`] instead of guessing; none of them panics.

use bitflags::bitflags;

/// An EXITINFO value that does not follow the format its exit defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExitInfoError {
    /// IOIO EXITINFO1 does not have exactly one of SZ8/SZ16/SZ32 set.
    IoioOperandSize(u64),
    /// IOIO EXITINFO1 has more than one of A16/A32/A64 set.
    IoioAddressSize(u64),
    /// IOIO EXITINFO1 names segment 6 or 7 for a string instruction.
    IoioSegment(u64),
    /// MSR EXITINFO1 is neither 0 (RDMSR) nor 1 (WRMSR).
    MsrDirection(u64),
}

/// Direction of an I/O instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IoDirection {
    /// IN/INS: the guest reads from the port.
    In,
    /// OUT/OUTS: the guest writes to the port.
    Out,
}

/// Operand size of an I/O access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum IoAccessSize {
    /// One byte.
    Byte = 1,
    /// Two bytes.
    Word = 2,
    /// Four bytes.
    Dword = 4,
}

impl IoAccessSize {
    /// Number of bytes accessed.
    pub const fn bytes(self) -> u8 {
        self as u8
    }

    /// The size for a byte count of 1, 2 or 4.
    pub const fn from_bytes(bytes: u8) -> Option<Self> {
        match bytes {
            1 => Some(Self::Byte),
            2 => Some(Self::Word),
            4 => Some(Self::Dword),
            _ => None,
        }
    }
}

/// Address size of a string I/O instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressSize {
    /// 16-bit addressing.
    Bits16,
    /// 32-bit addressing.
    Bits32,
    /// 64-bit addressing.
    Bits64,
}

/// A segment register number as the processor encodes it (ES=0 .. GS=5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SegmentRegister {
    /// ES.
    Es = 0,
    /// CS.
    Cs = 1,
    /// SS.
    Ss = 2,
    /// DS.
    Ds = 3,
    /// FS.
    Fs = 4,
    /// GS.
    Gs = 5,
}

impl SegmentRegister {
    /// The register for an encoding 0..=5.
    pub const fn from_raw(raw: u8) -> Option<Self> {
        match raw {
            0 => Some(Self::Es),
            1 => Some(Self::Cs),
            2 => Some(Self::Ss),
            3 => Some(Self::Ds),
            4 => Some(Self::Fs),
            5 => Some(Self::Gs),
            _ => None,
        }
    }
}

/// EXITINFO1 of an IOIO exit (APM 15.10.2, figure 15-2). EXITINFO2 holds
/// the RIP of the next instruction, on every SVM implementation.
///
/// | bits | field |
/// |---|---|
/// | 0 | TYPE: 1 = IN, 0 = OUT |
/// | 2 | STR: INS/OUTS |
/// | 3 | REP prefix |
/// | 6:4 | SZ32, SZ16, SZ8 (one-hot operand size) |
/// | 9:7 | A64, A32, A16 (one-hot address size) |
/// | 12:10 | SEG: effective segment (decode assists only) |
/// | 31:16 | PORT |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IoioInfo {
    /// Port number.
    pub port: u16,
    /// Operand size.
    pub size: IoAccessSize,
    /// Address size; `None` if the processor reported none.
    pub address_size: Option<AddressSize>,
    /// REP prefix present.
    pub rep: bool,
    /// String instruction (INS/OUTS).
    pub string: bool,
    /// In or out.
    pub direction: IoDirection,
    /// Effective segment of a string instruction, `None` for IN/OUT.
    /// Only meaningful on processors with decode assists.
    pub segment: Option<SegmentRegister>,
}

impl IoioInfo {
    const TYPE_IN: u64 = 1 << 0;
    const STR: u64 = 1 << 2;
    const REP: u64 = 1 << 3;
    const SZ8: u64 = 1 << 4;
    const SZ16: u64 = 1 << 5;
    const SZ32: u64 = 1 << 6;
    const A16: u64 = 1 << 7;
    const A32: u64 = 1 << 8;
    const A64: u64 = 1 << 9;
    const SEG_SHIFT: u32 = 10;
    const SEG_MASK: u64 = 0x7 << Self::SEG_SHIFT;
    const PORT_SHIFT: u32 = 16;

    /// Decodes EXITINFO1 of an IOIO exit.
    pub const fn from_exitinfo1(info1: u64) -> Result<Self, ExitInfoError> {
        let size = match info1 & (Self::SZ8 | Self::SZ16 | Self::SZ32) {
            Self::SZ8 => IoAccessSize::Byte,
            Self::SZ16 => IoAccessSize::Word,
            Self::SZ32 => IoAccessSize::Dword,
            _ => return Err(ExitInfoError::IoioOperandSize(info1)),
        };
        let address_size = match info1 & (Self::A16 | Self::A32 | Self::A64) {
            0 => None,
            Self::A16 => Some(AddressSize::Bits16),
            Self::A32 => Some(AddressSize::Bits32),
            Self::A64 => Some(AddressSize::Bits64),
            _ => return Err(ExitInfoError::IoioAddressSize(info1)),
        };
        let string = info1 & Self::STR != 0;
        let segment = if string {
            let raw = ((info1 & Self::SEG_MASK) >> Self::SEG_SHIFT) as u8;
            match SegmentRegister::from_raw(raw) {
                Some(seg) => Some(seg),
                None => return Err(ExitInfoError::IoioSegment(info1)),
            }
        } else {
            None
        };
        Ok(Self {
            port: (info1 >> Self::PORT_SHIFT) as u16,
            size,
            address_size,
            rep: info1 & Self::REP != 0,
            string,
            direction: if info1 & Self::TYPE_IN != 0 { IoDirection::In } else { IoDirection::Out },
            segment,
        })
    }

    /// Encodes back into the EXITINFO1 format (useful to synthesize exits,
    /// e.g. for a nested guest, and for tests).
    pub const fn to_exitinfo1(self) -> u64 {
        let mut raw = (self.port as u64) << Self::PORT_SHIFT;
        if matches!(self.direction, IoDirection::In) {
            raw |= Self::TYPE_IN;
        }
        if self.string {
            raw |= Self::STR;
        }
        if self.rep {
            raw |= Self::REP;
        }
        raw |= match self.size {
            IoAccessSize::Byte => Self::SZ8,
            IoAccessSize::Word => Self::SZ16,
            IoAccessSize::Dword => Self::SZ32,
        };
        raw |= match self.address_size {
            None => 0,
            Some(AddressSize::Bits16) => Self::A16,
            Some(AddressSize::Bits32) => Self::A32,
            Some(AddressSize::Bits64) => Self::A64,
        };
        if let Some(seg) = self.segment {
            raw |= (seg as u64) << Self::SEG_SHIFT;
        }
        raw
    }

    /// Whether the guest reads from the port.
    pub const fn is_in(&self) -> bool {
        matches!(self.direction, IoDirection::In)
    }
}

bitflags! {
    /// EXITINFO1 of a nested page fault: the #PF-style error code of the
    /// nested walk (APM 15.25.6) plus where in the guest walk it happened.
    /// EXITINFO2 is the faulting guest physical address.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct NpfErrorCode: u64 {
        /// The nested entry was present (a protection violation, not a
        /// missing page).
        const PRESENT = 1 << 0;
        /// The access was a write.
        const WRITE = 1 << 1;
        /// The access was a user access. Nested walks are always user
        /// accesses, so this is normally set.
        const USER = 1 << 2;
        /// A reserved bit was set in a nested entry.
        const RESERVED_BIT = 1 << 3;
        /// The access was an instruction fetch.
        const EXECUTE = 1 << 4;
        /// Protection-key violation.
        const PROTECTION_KEY = 1 << 5;
        /// Shadow-stack access.
        const SHADOW_STACK = 1 << 6;
        /// RMP check failed (SEV-SNP).
        const RMP = 1 << 31;
        /// The fault happened translating the guest's final physical
        /// address.
        const FINAL_TRANSLATION = 1 << 32;
        /// The fault happened translating a guest page-table access
        /// (during the guest's own walk).
        const PAGE_TABLE_WALK = 1 << 33;
        /// Encrypted-access check (SEV-SNP).
        const ENCRYPTED = 1 << 34;
        /// RMP page-size mismatch (SEV-SNP).
        const SIZE_MISMATCH = 1 << 35;
        /// VMPL permission check failed (SEV-SNP).
        const VMPL = 1 << 36;
        const _ = !0;
    }
}

/// Which part of the guest's address translation hit the nested fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NpfStage {
    /// The guest's final physical address (the data or code access itself).
    FinalTranslation,
    /// A guest page-table entry read or A/D update.
    GuestPageTableWalk,
    /// Neither bit is set (older processors do not report it).
    Unreported,
}

/// A decoded nested page fault (exit code 0x400).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NestedPageFault {
    /// EXITINFO1.
    pub error: NpfErrorCode,
    /// EXITINFO2: the faulting guest physical address.
    pub gpa: u64,
}

impl NestedPageFault {
    /// Decodes EXITINFO1/EXITINFO2 of an NPF exit.
    pub const fn from_exitinfo(info1: u64, info2: u64) -> Self {
        Self { error: NpfErrorCode::from_bits_retain(info1), gpa: info2 }
    }

    /// The access was a write.
    pub const fn is_write(&self) -> bool {
        self.error.contains(NpfErrorCode::WRITE)
    }

    /// The access was an instruction fetch.
    pub const fn is_fetch(&self) -> bool {
        self.error.contains(NpfErrorCode::EXECUTE)
    }

    /// No nested mapping was present (as opposed to a permission fault).
    pub const fn is_not_present(&self) -> bool {
        !self.error.contains(NpfErrorCode::PRESENT)
    }

    /// Where in the guest's translation the fault hit. If a processor ever
    /// set both bits, the final translation wins.
    pub const fn stage(&self) -> NpfStage {
        if self.error.contains(NpfErrorCode::FINAL_TRANSLATION) {
            NpfStage::FinalTranslation
        } else if self.error.contains(NpfErrorCode::PAGE_TABLE_WALK) {
            NpfStage::GuestPageTableWalk
        } else {
            NpfStage::Unreported
        }
    }
}

/// Direction of an MSR exit (exit code 0x7C). The MSR number is the
/// guest's ECX and the value its EDX:EAX; neither is in the VMCB except
/// RAX.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MsrExitKind {
    /// RDMSR (EXITINFO1 = 0).
    Rdmsr,
    /// WRMSR (EXITINFO1 = 1).
    Wrmsr,
}

impl MsrExitKind {
    /// Decodes EXITINFO1 of an MSR exit.
    pub const fn from_exitinfo1(info1: u64) -> Result<Self, ExitInfoError> {
        match info1 {
            0 => Ok(Self::Rdmsr),
            1 => Ok(Self::Wrmsr),
            _ => Err(ExitInfoError::MsrDirection(info1)),
        }
    }

    /// Whether this is a write.
    pub const fn is_write(self) -> bool {
        matches!(self, Self::Wrmsr)
    }
}

/// Whether exception `vector` pushes an error code: #DF (8), #TS (10),
/// #NP (11), #SS (12), #GP (13), #PF (14), #AC (17), #CP (21), #VC (29),
/// #SX (30).
pub const fn exception_has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

/// An intercepted exception (exit codes 0x40..=0x5F).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExceptionExit {
    /// Exception vector.
    pub vector: u8,
    /// The error code from EXITINFO1, for exceptions that push one.
    pub error_code: Option<u32>,
    /// For #PF, the faulting linear address from EXITINFO2 (what CR2 would
    /// have become; CR2 itself is not written on an intercepted #PF).
    pub fault_address: Option<u64>,
}

impl ExceptionExit {
    /// The #PF vector.
    pub const PAGE_FAULT: u8 = 14;

    /// Decodes an exception exit for `vector` (the exit code minus 0x40).
    pub const fn from_exitinfo(vector: u8, info1: u64, info2: u64) -> Self {
        Self {
            vector,
            error_code: if exception_has_error_code(vector) { Some(info1 as u32) } else { None },
            fault_address: if vector == Self::PAGE_FAULT { Some(info2) } else { None },
        }
    }
}

/// EXITINFO1 of a MOV-to/from-CR exit (exit codes 0x00..=0x1F) on a
/// processor with decode assists (CPUID Fn8000_000A EDX bit 7). Without
/// decode assists EXITINFO1 is zero and the instruction must be decoded by
/// hand. For CR write traps (0x90..=0x9F) EXITINFO1 is instead the new
/// value of the register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CrAccessInfo {
    /// The general-purpose register operand, 0 = RAX .. 15 = R15.
    pub gpr: u8,
    /// The exit came from a MOV CRn instruction (as opposed to LMSW, CLTS
    /// or SMSW, which have no GPR operand reported).
    pub mov_cr: bool,
}

impl CrAccessInfo {
    /// Decodes EXITINFO1.
    pub const fn from_exitinfo1(info1: u64) -> Self {
        Self { gpr: (info1 & 0xF) as u8, mov_cr: info1 & (1 << 63) != 0 }
    }
}

/// EXITINFO1 of a MOV-to/from-DR exit (exit codes 0x20..=0x3F) with decode
/// assists: the GPR operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DrAccessInfo {
    /// The general-purpose register operand, 0 = RAX .. 15 = R15.
    pub gpr: u8,
}

impl DrAccessInfo {
    /// Decodes EXITINFO1.
    pub const fn from_exitinfo1(info1: u64) -> Self {
        Self { gpr: (info1 & 0xF) as u8 }
    }
}

/// What started a task switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskSwitchReason {
    /// IRET with NT set.
    Iret,
    /// Far JMP.
    Jmp,
    /// Far CALL, or an interrupt/exception through a task gate
    /// (EXITINTINFO tells which).
    CallOrEvent,
}

/// A decoded task-switch exit (exit code 0x7D).
///
/// EXITINFO1 bits 15:0 hold the target TSS selector. EXITINFO2 holds the
/// error code (bits 31:0, valid if bit 44 is set), bit 36 for IRET, bit 38
/// for a far JMP and bit 48 for the value of RFLAGS.RF.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TaskSwitchInfo {
    /// Target TSS selector.
    pub selector: u16,
    /// What started the switch.
    pub reason: TaskSwitchReason,
    /// Error code to push in the new task, if any.
    pub error_code: Option<u32>,
    /// RFLAGS.RF at the time of the switch.
    pub rf: bool,
}

impl TaskSwitchInfo {
    const IRET: u64 = 1 << 36;
    const JMP: u64 = 1 << 38;
    const EV: u64 = 1 << 44;
    const RF: u64 = 1 << 48;

    /// Decodes EXITINFO1/EXITINFO2 of a task-switch exit.
    pub const fn from_exitinfo(info1: u64, info2: u64) -> Self {
        Self {
            selector: info1 as u16,
            reason: if info2 & Self::IRET != 0 {
                TaskSwitchReason::Iret
            } else if info2 & Self::JMP != 0 {
                TaskSwitchReason::Jmp
            } else {
                TaskSwitchReason::CallOrEvent
            },
            error_code: if info2 & Self::EV != 0 { Some(info2 as u32) } else { None },
            rf: info2 & Self::RF != 0,
        }
    }
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ioio_out_byte_to_com1() {
        // `out dx, al` with dx = 0x3F8, 32-bit address size.
        let raw = (0x3F8 << 16) | (1 << 8) | (1 << 4);
        let info = IoioInfo::from_exitinfo1(raw).unwrap();
        assert_eq!(info.port, 0x3F8);
        assert_eq!(info.size, IoAccessSize::Byte);
        assert_eq!(info.address_size, Some(AddressSize::Bits32));
        assert_eq!(info.direction, IoDirection::Out);
        assert!(!info.rep && !info.string);
        assert_eq!(info.segment, None);
        assert_eq!(info.to_exitinfo1(), raw);
    }

    #[test]
    fn ioio_in_dword_from_pci_config_data() {
        // `in eax, dx` with dx = 0xCFC, 64-bit address size.
        let raw = (0xCFC << 16) | (1 << 9) | (1 << 6) | 1;
        let info = IoioInfo::from_exitinfo1(raw).unwrap();
        assert_eq!(info.port, 0xCFC);
        assert_eq!(info.size, IoAccessSize::Dword);
        assert_eq!(info.size.bytes(), 4);
        assert!(info.is_in());
        assert_eq!(info.address_size, Some(AddressSize::Bits64));
    }

    #[test]
    fn ioio_rep_outsw_with_fs_override() {
        // `rep outsw` with an FS override, 16-bit addressing, port 0x1F0.
        let raw = (0x1F0 << 16) | (4 << 10) | (1 << 7) | (1 << 5) | (1 << 3) | (1 << 2);
        let info = IoioInfo::from_exitinfo1(raw).unwrap();
        assert_eq!(info.port, 0x1F0);
        assert_eq!(info.size, IoAccessSize::Word);
        assert!(info.rep && info.string);
        assert_eq!(info.direction, IoDirection::Out);
        assert_eq!(info.segment, Some(SegmentRegister::Fs));
        assert_eq!(info.address_size, Some(AddressSize::Bits16));
    }

    #[test]
    fn ioio_with_bad_operand_size_is_an_error() {
        assert_eq!(IoioInfo::from_exitinfo1(0x80 << 16), Err(ExitInfoError::IoioOperandSize(0x80 << 16)));
        let two_sizes = (1 << 4) | (1 << 5);
        assert_eq!(IoioInfo::from_exitinfo1(two_sizes), Err(ExitInfoError::IoioOperandSize(two_sizes)));
        let two_asizes = (1 << 4) | (1 << 7) | (1 << 8);
        assert_eq!(IoioInfo::from_exitinfo1(two_asizes), Err(ExitInfoError::IoioAddressSize(two_asizes)));
        let bad_seg = (1 << 4) | (1 << 2) | (7 << 10);
        assert_eq!(IoioInfo::from_exitinfo1(bad_seg), Err(ExitInfoError::IoioSegment(bad_seg)));
    }

    #[test]
    fn npf_decodes_write_to_missing_page_during_final_translation() {
        let npf = NestedPageFault::from_exitinfo((1 << 32) | 0b110, 0xFEE0_0000);
        assert!(npf.is_write());
        assert!(npf.is_not_present());
        assert!(!npf.is_fetch());
        assert_eq!(npf.stage(), NpfStage::FinalTranslation);
        assert_eq!(npf.gpa, 0xFEE0_0000);
    }

    #[test]
    fn npf_decodes_fetch_protection_fault_during_guest_walk() {
        let npf = NestedPageFault::from_exitinfo((1 << 33) | 0b1_0101, 0x1000);
        assert!(npf.is_fetch());
        assert!(!npf.is_not_present());
        assert_eq!(npf.stage(), NpfStage::GuestPageTableWalk);
        assert!(npf.error.contains(NpfErrorCode::USER));
    }

    #[test]
    fn msr_exit_direction_comes_from_exitinfo1() {
        assert_eq!(MsrExitKind::from_exitinfo1(0), Ok(MsrExitKind::Rdmsr));
        assert_eq!(MsrExitKind::from_exitinfo1(1), Ok(MsrExitKind::Wrmsr));
        assert!(MsrExitKind::Wrmsr.is_write());
        assert_eq!(MsrExitKind::from_exitinfo1(2), Err(ExitInfoError::MsrDirection(2)));
    }

    #[test]
    fn page_fault_exit_reports_error_code_and_address() {
        let pf = ExceptionExit::from_exitinfo(14, 0x0000_0000_0000_0007, 0xDEAD_B000);
        assert_eq!(pf.error_code, Some(7));
        assert_eq!(pf.fault_address, Some(0xDEAD_B000));
        let gp = ExceptionExit::from_exitinfo(13, 0x10, 0);
        assert_eq!(gp.error_code, Some(0x10));
        assert_eq!(gp.fault_address, None);
        let ud = ExceptionExit::from_exitinfo(6, 0x1234, 0x5678);
        assert_eq!((ud.error_code, ud.fault_address), (None, None));
    }

    #[test]
    fn error_code_vectors_are_the_architectural_ones() {
        let with: Vec<u8> = (0..32).filter(|&v| exception_has_error_code(v)).collect();
        assert_eq!(with, [8, 10, 11, 12, 13, 14, 17, 21, 29, 30]);
    }

    #[test]
    fn cr_access_reports_gpr_and_mov_flag() {
        let info = CrAccessInfo::from_exitinfo1((1 << 63) | 11);
        assert_eq!(info, CrAccessInfo { gpr: 11, mov_cr: true });
        assert!(!CrAccessInfo::from_exitinfo1(0).mov_cr);
        assert_eq!(DrAccessInfo::from_exitinfo1(0x3).gpr, 3);
    }

    #[test]
    fn task_switch_decodes_reason_error_and_rf() {
        let t = TaskSwitchInfo::from_exitinfo(0x28, (1 << 44) | (1 << 48) | 0x1C);
        assert_eq!(t.selector, 0x28);
        assert_eq!(t.reason, TaskSwitchReason::CallOrEvent);
        assert_eq!(t.error_code, Some(0x1C));
        assert!(t.rf);
        assert_eq!(TaskSwitchInfo::from_exitinfo(0x30, 1 << 36).reason, TaskSwitchReason::Iret);
        assert_eq!(TaskSwitchInfo::from_exitinfo(0x30, 1 << 38).reason, TaskSwitchReason::Jmp);
    }

    fn any_ioio() -> impl Strategy<Value = IoioInfo> {
        (
            any::<u16>(),
            prop_oneof![Just(IoAccessSize::Byte), Just(IoAccessSize::Word), Just(IoAccessSize::Dword)],
            prop_oneof![
                Just(None),
                Just(Some(AddressSize::Bits16)),
                Just(Some(AddressSize::Bits32)),
                Just(Some(AddressSize::Bits64))
            ],
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            0u8..6,
        )
            .prop_map(|(port, size, address_size, rep, string, is_in, seg)| IoioInfo {
                port,
                size,
                address_size,
                rep,
                string,
                direction: if is_in { IoDirection::In } else { IoDirection::Out },
                segment: if string { SegmentRegister::from_raw(seg) } else { None },
            })
    }

    proptest! {
        #[test]
        fn ioio_encode_decode_round_trips(info in any_ioio()) {
            prop_assert_eq!(IoioInfo::from_exitinfo1(info.to_exitinfo1()), Ok(info));
        }

        #[test]
        fn ioio_decoding_never_panics(raw in any::<u64>()) {
            let _ = IoioInfo::from_exitinfo1(raw);
        }
    }
}
