//! Intercepted control-register writes: MOV to CR4 and CR8, and XSETBV.
//! The kernel checks CR4 and XCR0 values against the guest's CPUID
//! (`vm::cr`); the VMM finds the operand, and either completes the
//! instruction or injects the fault the CPU would have raised.
use super::{Stop, VcpuLoop};
use guest_x86::decode::insn::SysInsn;
use guest_x86::decode::{CpuMode, InsnKind};
use sysabi::{GuestFault, Reg, Sys};
use vmcb::{CrAccessInfo, EventInj};

/// The event that delivers `f`: #GP carries error code 0, #UD none.
pub(super) fn fault_event(f: GuestFault) -> EventInj {
    match f {
        GuestFault::GeneralProtection => EventInj::exception_with_error(f.vector(), 0),
        GuestFault::InvalidOpcode => EventInj::exception(f.vector()),
    }
}

impl<S: Sys> VcpuLoop<'_, '_, S> {
    /// Completes the intercepted instruction, or raises `fault` instead.
    fn complete_or_fault(&mut self, done: Result<(), GuestFault>) -> Result<(), Stop> {
        match done {
            Ok(()) => self.skip_instruction(),
            Err(f) => self.inject(fault_event(f)),
        }
    }

    /// MOV to CR`cr` (CR4 and CR8 are intercepted for writes). The source
    /// register comes from EXITINFO1 with decode assists, else from
    /// decoding the instruction at RIP. CR8 is the local APIC's task
    /// priority class: the write goes to its TPR, and before the next entry
    /// into V_TPR, where the guest reads it back without an exit
    /// ([`VcpuLoop::deliver_interrupts`] keeps V_TPR equal to the TPR's class).
    pub(super) fn handle_cr_write(&mut self, cr: u8, info: CrAccessInfo) -> Result<(), Stop> {
        let rip = self.reg(Reg::Rip)?;
        if cr != 4 && cr != 8 {
            return Err(Stop::Unemulated { rip, what: "write of a control register other than CR4 and CR8" });
        }
        let gpr = if info.mov_cr {
            info.gpr
        } else {
            match self.decode_at_rip()?.insn.kind {
                InsnKind::Sys(SysInsn::MovToCr { cr: to, gpr }) if to == cr => gpr,
                _ => return Err(Stop::Unemulated { rip, what: "CR4 or CR8 write that is not a MOV to it" }),
            }
        };
        let reg = Reg::gpr(gpr).ok_or(Stop::Unemulated { rip, what: "MOV to a CR from no register" })?;
        let mut value = self.reg(reg)?;
        // Outside 64-bit mode the instruction moves the register's low half.
        if self.mode()? != CpuMode::Bits64 {
            value &= 0xFFFF_FFFF;
        }
        if cr == 4 {
            let done = self.sys.write_cr4(self.vcpu, value)?;
            return self.complete_or_fault(done);
        }
        // CR8's bits 63:4 are reserved: setting one raises #GP(0)
        // (docs/devices.md, "CR8 and the TPR").
        let Ok(class @ 0..=15) = u8::try_from(value) else {
            return self.complete_or_fault(Err(GuestFault::GeneralProtection));
        };
        self.board().write_cr8(class);
        self.skip_instruction()
    }

    /// XSETBV: XCR[ECX] = EDX:EAX.
    pub(super) fn handle_xsetbv(&mut self) -> Result<(), Stop> {
        let index = self.reg(Reg::Rcx)? as u32;
        let value = (self.reg(Reg::Rdx)? << 32) | (self.reg(Reg::Rax)? & 0xFFFF_FFFF);
        let done = self.sys.xsetbv(self.vcpu, index, value)?;
        self.complete_or_fault(done)
    }
}
