//! One typed `VmExit` for every #VMEXIT, decoded in one place.
use vmcb::{CrAccessInfo, ExceptionExit, ExitCode, IoioInfo, MsrExitKind, NestedPageFault};

/// Why the guest stopped running, with what the handler needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmExit {
    /// IN/OUT/INS/OUTS on an intercepted port. EXITINFO2 holds the RIP of
    /// the next instruction, with or without NRIPS.
    Io {
        io: IoioInfo,
        next_rip: u64,
    },
    Cpuid,
    Msr(MsrExitKind),
    Hlt,
    /// VMMCALL: a hypercall.
    Vmmcall,
    /// A write of CR`cr` (MOV to CR4: `vm::cr` checks it). `info` names the
    /// source register when the CPU has decode assists (`info.mov_cr`).
    CrWrite {
        cr: u8,
        info: CrAccessInfo,
    },
    /// A nested page fault: MMIO, or an access outside the VM's memory.
    Npf(NestedPageFault),
    /// A nested page fault taken while the CPU delivered event `vector`
    /// (EXITINTINFO valid): its IDT, stack or TSS lies outside RAM.
    NpfInDelivery {
        gpa: u64,
        vector: u8,
    },
    /// An intercepted guest exception.
    Exception(ExceptionExit),
    /// A triple fault (shutdown): the guest cannot go on.
    Shutdown,
    /// A physical interrupt arrived; the host has handled it.
    Intr,
    /// VMRUN, VMLOAD, VMSAVE, STGI, CLGI, SKINIT or INVLPGA in the guest:
    /// SVM is hidden from guests, so these get #UD.
    SvmInstruction(ExitCode),
    /// The guest state is one VMRUN refuses: found by the check before
    /// VMRUN (naming the field), or by VMRUN itself (VMEXIT_INVALID, `None`).
    Invalid(Option<vmcb::StateError>),
    /// An exit the decoder names but the VMM has no handler for.
    Other(ExitCode),
}

/// The raw exit fields, as read from the VMCB control area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawExit {
    pub code: u64,
    pub info1: u64,
    pub info2: u64,
    /// EXITINTINFO: an event whose delivery the exit interrupted.
    pub int_info: u64,
}

impl VmExit {
    pub fn decode(raw: &RawExit) -> VmExit {
        let code = ExitCode::from_raw(raw.code);
        match code {
            ExitCode::Ioio => match IoioInfo::from_exitinfo1(raw.info1) {
                Ok(io) => VmExit::Io { io, next_rip: raw.info2 },
                Err(_) => VmExit::Other(code),
            },
            ExitCode::Cpuid => VmExit::Cpuid,
            ExitCode::Msr => match MsrExitKind::from_exitinfo1(raw.info1) {
                Ok(k) => VmExit::Msr(k),
                Err(_) => VmExit::Other(code),
            },
            ExitCode::Hlt => VmExit::Hlt,
            ExitCode::CrWrite(cr) => VmExit::CrWrite { cr, info: CrAccessInfo::from_exitinfo1(raw.info1) },
            ExitCode::Vmmcall => VmExit::Vmmcall,
            ExitCode::Npf => match vmcb::EventInj::from_exit_int_info(raw.int_info) {
                // The CPU was delivering an event: the fault belongs to
                // the delivery, not to the instruction at RIP.
                Some(ev) => VmExit::NpfInDelivery { gpa: raw.info2, vector: ev.vector() },
                None => VmExit::Npf(NestedPageFault::from_exitinfo(raw.info1, raw.info2)),
            },
            ExitCode::Exception(v) => VmExit::Exception(ExceptionExit::from_exitinfo(v, raw.info1, raw.info2)),
            ExitCode::Shutdown => VmExit::Shutdown,
            ExitCode::Intr => VmExit::Intr,
            ExitCode::Vmrun
            | ExitCode::Vmload
            | ExitCode::Vmsave
            | ExitCode::Stgi
            | ExitCode::Clgi
            | ExitCode::Skinit
            | ExitCode::Invlpga => VmExit::SvmInstruction(code),
            ExitCode::Invalid => VmExit::Invalid(None),
            other => VmExit::Other(other),
        }
    }

    /// The exit came from an event outside the guest's instruction stream
    /// (a host interrupt, NMI, SMI or INIT), not from what it executed.
    pub fn is_asynchronous(&self) -> bool {
        use vmcb::ExitCode as C;
        matches!(self, VmExit::Intr | VmExit::Other(C::Nmi | C::Smi | C::Init))
    }

    /// A short, stable name for statistics and logs.
    pub fn reason(&self) -> ExitReason {
        match self {
            VmExit::Io { .. } => ExitReason::Io,
            VmExit::Cpuid => ExitReason::Cpuid,
            VmExit::Msr(_) => ExitReason::Msr,
            VmExit::Hlt => ExitReason::Hlt,
            VmExit::Vmmcall => ExitReason::Vmmcall,
            VmExit::Npf(_) | VmExit::NpfInDelivery { .. } => ExitReason::Npf,
            VmExit::Exception(_) => ExitReason::Exception,
            VmExit::Shutdown => ExitReason::Shutdown,
            VmExit::Intr => ExitReason::Intr,
            VmExit::SvmInstruction(_) => ExitReason::SvmInstruction,
            VmExit::Invalid(_) => ExitReason::Invalid,
            // Counted with the rarer exits: the statistics page has room
            // for no more reasons.
            VmExit::CrWrite { .. } | VmExit::Other(_) => ExitReason::Other,
        }
    }
}

/// The kind of an exit, without its details ([`VmExit::reason`]): what
/// exit statistics count and logs name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum ExitReason {
    Io = 0,
    Cpuid,
    Msr,
    Hlt,
    Vmmcall,
    Npf,
    Exception,
    Shutdown,
    Intr,
    SvmInstruction,
    Invalid,
    Other,
}

impl ExitReason {
    pub const COUNT: usize = ExitReason::Other as usize + 1;
    pub const ALL: [ExitReason; Self::COUNT] = [
        ExitReason::Io,
        ExitReason::Cpuid,
        ExitReason::Msr,
        ExitReason::Hlt,
        ExitReason::Vmmcall,
        ExitReason::Npf,
        ExitReason::Exception,
        ExitReason::Shutdown,
        ExitReason::Intr,
        ExitReason::SvmInstruction,
        ExitReason::Invalid,
        ExitReason::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ExitReason::Io => "io",
            ExitReason::Cpuid => "cpuid",
            ExitReason::Msr => "msr",
            ExitReason::Hlt => "hlt",
            ExitReason::Vmmcall => "vmmcall",
            ExitReason::Npf => "npf",
            ExitReason::Exception => "exception",
            ExitReason::Shutdown => "shutdown",
            ExitReason::Intr => "intr",
            ExitReason::SvmInstruction => "svm-insn",
            ExitReason::Invalid => "invalid",
            ExitReason::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmcb::IoDirection;

    #[test]
    fn ioio_exit_carries_port_direction_and_next_rip() {
        // OUT dx, al on port 0xE9: port in 31:16, SZ8 (bit 4), OUT (bit 0 clear).
        let raw = RawExit { code: 0x7B, info1: (0xE9 << 16) | (1 << 4), info2: 0x1234, int_info: 0 };
        match VmExit::decode(&raw) {
            VmExit::Io { io, next_rip } => {
                assert_eq!(io.port, 0xE9);
                assert_eq!(io.direction, IoDirection::Out);
                assert_eq!(next_rip, 0x1234);
            }
            other => panic!("expected an I/O exit, saw {other:?}"),
        }
    }

    #[test]
    fn tcg_style_invalid_exit_code_decodes_as_invalid() {
        let raw = RawExit { code: 0x0000_0000_FFFF_FFFF, ..Default::default() };
        assert_eq!(VmExit::decode(&raw), VmExit::Invalid(None));
        let raw = RawExit { code: u64::MAX, ..Default::default() };
        assert_eq!(VmExit::decode(&raw), VmExit::Invalid(None));
    }

    #[test]
    fn svm_instructions_decode_as_svm_instruction() {
        for code in [0x80u64, 0x82, 0x83, 0x84, 0x85, 0x86, 0x7A] {
            let raw = RawExit { code, ..Default::default() };
            assert!(matches!(VmExit::decode(&raw), VmExit::SvmInstruction(_)), "code {code:#x}");
        }
    }

    #[test]
    fn cr4_write_exit_carries_the_register_with_decode_assists_only() {
        let raw = RawExit { code: 0x14, info1: (1 << 63) | 3, ..Default::default() };
        let info = CrAccessInfo { gpr: 3, mov_cr: true };
        assert_eq!(VmExit::decode(&raw), VmExit::CrWrite { cr: 4, info });
        let raw = RawExit { code: 0x14, ..Default::default() };
        assert!(matches!(VmExit::decode(&raw), VmExit::CrWrite { cr: 4, info } if !info.mov_cr));
    }

    #[test]
    fn npf_exit_keeps_the_gpa() {
        let raw = RawExit { code: 0x400, info1: 0b110, info2: 0xC000_0000, int_info: 0 };
        match VmExit::decode(&raw) {
            VmExit::Npf(f) => {
                assert_eq!(f.gpa, 0xC000_0000);
                assert!(f.is_write());
            }
            other => panic!("expected NPF, saw {other:?}"),
        }
    }

    #[test]
    fn npf_during_event_delivery_names_the_event_not_the_instruction() {
        // EXITINTINFO: valid, an exception (type 3), vector 14.
        let int_info = (1 << 31) | (3 << 8) | 14;
        let raw = RawExit { code: 0x400, info1: 0b100, info2: 0xFEC0_0000, int_info };
        assert_eq!(VmExit::decode(&raw), VmExit::NpfInDelivery { gpa: 0xFEC0_0000, vector: 14 });
        assert_eq!(VmExit::decode(&raw).reason(), ExitReason::Npf);
    }

    #[test]
    fn reasons_are_listed_once_in_order() {
        for (i, r) in ExitReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }
}
