//! The guest's NMI blocking. While a processor runs an NMI handler it
//! blocks further NMIs until the next IRET; one NMI that arrives meanwhile
//! is held and delivered after that IRET (Intel SDM vol. 3 §6.7.1; AMD APM
//! vol. 2 §8.2, "NMI"). The CPU delivers an NMI injected with EVENTINJ
//! whatever the guest's blocking, so the VMM keeps that state itself, as
//! KVM does on SVM without virtual NMIs: after injecting an NMI it traps
//! the guest's next IRET; at that exit the IRET has not run yet, so it sets
//! RFLAGS.TF and traps #DB to see the IRET complete (the single-step trap
//! comes after an instruction that began with TF set, and IRET then loads
//! the guest's own flags); at that #DB the blocking ends and a held NMI is
//! injected.
use super::{Stop, VcpuLoop};
use guest_x86::regs::rflags;
use sysabi::{Reg, Sys, SysError};
use vmcb::EventInj;

/// The #DB exception's vector.
pub(super) const VEC_DB: u8 = 1;

/// What the VMM knows of the guest's NMI blocking.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NmiBlocking {
    /// An NMI was injected and its handler has not reached an IRET.
    blocked: bool,
    /// An NMI that came while blocked (the CPU holds one, not more).
    held: bool,
    /// The IRET that ends the blocking is being stepped over: the guest's
    /// own TF and DR6 before the step, to put back at its #DB.
    stepping: Option<GuestStep>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct GuestStep {
    /// The guest had TF set itself: the #DB after the IRET is its own too.
    tf: bool,
    dr6: u64,
}

impl<S: Sys> VcpuLoop<'_, '_, S> {
    /// An NMI for this vCPU: injected now, or held until the guest's NMI
    /// handler reaches its IRET (or, if this exit already queued an
    /// exception, until the next entry).
    pub(super) fn deliver_nmi(&mut self) -> Result<(), Stop> {
        if self.nmi.blocked {
            self.nmi.held = true;
            return Ok(());
        }
        match self.sys.inject(self.vcpu, EventInj::nmi()) {
            Ok(()) => {}
            Err(SysError::Busy) => {
                self.nmi.held = true;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        self.nmi.held = false;
        self.nmi.blocked = true;
        self.sys.set_iret_intercept(self.vcpu, true)?;
        Ok(())
    }

    /// NMIs are blocked: the guest runs an NMI handler.
    pub(super) fn nmi_blocked(&self) -> bool {
        self.nmi.blocked
    }

    /// INIT: no NMI is blocked or held, and nothing is trapped for it.
    pub(super) fn reset_nmi_blocking(&mut self) -> Result<(), Stop> {
        if self.nmi.blocked {
            self.sys.set_iret_intercept(self.vcpu, false)?;
        }
        if self.nmi.stepping.is_some() {
            self.sys.set_exception_intercept(self.vcpu, VEC_DB, false)?;
        }
        self.nmi = NmiBlocking::default();
        Ok(())
    }

    /// Before an entry: a held NMI whose blocking has ended is injected.
    pub(super) fn deliver_held_nmi(&mut self) -> Result<(), Stop> {
        if self.nmi.held && !self.nmi.blocked {
            self.deliver_nmi()?;
        }
        Ok(())
    }

    /// The IRET intercept: the guest is about to execute an IRET while NMIs
    /// are blocked. It runs once more with TF set and #DB trapped, so that
    /// the next exit comes right after it.
    pub(super) fn nmi_iret(&mut self) -> Result<(), Stop> {
        self.sys.set_iret_intercept(self.vcpu, false)?;
        if !self.nmi.blocked || self.nmi.stepping.is_some() {
            return Ok(());
        }
        let flags = self.reg(Reg::Rflags)?;
        let dr6 = self.reg(Reg::Dr6)?;
        self.nmi.stepping = Some(GuestStep { tf: flags & rflags::TF != 0, dr6 });
        self.set_reg(Reg::Rflags, flags | rflags::TF)?;
        self.sys.set_exception_intercept(self.vcpu, VEC_DB, true)?;
        Ok(())
    }

    /// A #DB exit. If it is the trap after the IRET that ends the NMI
    /// blocking, the blocking ends and true is returned: the #DB was the
    /// VMM's, not the guest's, and a held NMI is injected now. A guest that
    /// was single-stepping itself gets the #DB (false), and a held NMI at
    /// the entry after it.
    pub(super) fn nmi_step_done(&mut self) -> Result<bool, Stop> {
        let Some(step) = self.nmi.stepping.take() else {
            return Ok(false);
        };
        self.sys.set_exception_intercept(self.vcpu, VEC_DB, false)?;
        self.nmi.blocked = false;
        if step.tf {
            return Ok(false);
        }
        self.set_reg(Reg::Dr6, step.dr6)?;
        self.deliver_held_nmi()?;
        Ok(true)
    }
}
