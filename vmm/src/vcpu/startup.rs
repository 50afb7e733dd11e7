//! The interrupts that bypass a local APIC's IRR (INIT, start-up, NMI),
//! and a vCPU that sleeps until one comes: the application processor's
//! wait for a start-up IPI and the halt with interrupts disabled.
//!
//! INIT (Intel SDM vol. 3 §8.4.1 and table 9-1, AMD APM vol. 2 §14.1.3)
//! puts the processor in its reset state, except that it then waits for a
//! start-up IPI instead of fetching at the reset vector; its local APIC
//! keeps its ID and IA32_APIC_BASE. A start-up IPI with vector V starts a
//! waiting processor in real mode with CS selector V << 8, CS base V << 12
//! and IP 0 (SDM §10.6.1, "Start-Up"); a processor that is not waiting
//! ignores it.
use super::{Stop, VcpuLoop, VcpuState};
use crate::dev::lapic::LapicEvents;
use log::Level;
use sysabi::{Reg, SegReg, Sys, NEVER};
use vmcb::Segment;

/// CR0 after INIT: CD, NW and ET (the reset value).
const CR0_AT_INIT: u64 = 0x6000_0010;
/// RFLAGS after INIT: only the fixed bit 1.
const RFLAGS_AT_INIT: u64 = 0x2;

impl<S: Sys> VcpuLoop<'_, '_, S> {
    /// Carries out the local APIC events `events` the vCPU took: INIT
    /// makes it wait for a start-up IPI, a start-up IPI starts a waiting
    /// vCPU, an NMI is injected into a running or halted one. SMI and
    /// ExtINT messages have nowhere to go.
    pub(super) fn apic_events(&mut self, events: LapicEvents) -> Result<(), Stop> {
        if events.init {
            self.init()?;
        }
        if let Some(vector) = events.startup {
            if self.state == VcpuState::WaitForSipi {
                self.start_up(vector)?;
            }
        }
        if events.nmi && self.state != VcpuState::WaitForSipi {
            // A held NMI does not end a HLT: it waits for an IRET that the
            // halted handler never reaches, as on a CPU.
            if matches!(self.state, VcpuState::HaltedForGood { .. }) && !self.nmi_blocked() {
                self.shared.wake();
                self.state = VcpuState::Running;
            }
            self.deliver_nmi()?;
        }
        if events.smi || events.extint {
            let (smi, extint) = (events.smi, events.extint);
            self.guest_line(Level::Debug, format_args!("local APIC events dropped: smi {smi}, extint {extint}"));
        }
        Ok(())
    }

    /// A vCPU that does not run the guest (waiting for a start-up IPI, or
    /// halted with interrupts off) sleeps until it is kicked, then looks at
    /// its local APIC's events.
    pub(super) fn sleep(&mut self) -> Result<(), Stop> {
        loop {
            let events = self.board().take_apic_events();
            if events != LapicEvents::default() {
                self.apic_events(events)?;
                if self.state == VcpuState::Running {
                    return Ok(());
                }
            }
            self.release_board();
            if self.shared.stopping() {
                return Err(self.stopped_by_another());
            }
            self.sys.vcpu_halt(self.grants.sched, self.vcpu, NEVER)?;
            self.now_ns = self.sys.now_ns(self.grants.clock)?;
        }
    }

    /// The stop another vCPU ended the VM with.
    pub(super) fn stopped_by_another(&self) -> Stop {
        // `stopping` is set after the first stop is kept.
        self.shared.first_stop().unwrap_or(Stop::PowerOff)
    }

    /// INIT: the vCPU's registers and its local APIC go back to their
    /// state at reset, an interrupt posted to it is taken back, and it
    /// waits for a start-up IPI.
    fn init(&mut self) -> Result<(), Stop> {
        self.board().init_lapic();
        self.reset_nmi_blocking()?;
        if self.posted.take().is_some() {
            self.sys.withdraw_interrupt(self.vcpu)?;
        }
        let sys = self.sys;
        let vcpu = self.vcpu;
        for (r, v) in [
            (Reg::Cr0, CR0_AT_INIT),
            (Reg::Cr2, 0),
            (Reg::Cr3, 0),
            (Reg::Cr4, 0),
            (Reg::Efer, 0),
            (Reg::Rflags, RFLAGS_AT_INIT),
            (Reg::Rip, 0xFFF0),
        ] {
            sys.set_reg(vcpu, r, v)?;
        }
        for n in 0..16 {
            if let Some(r) = Reg::gpr(n) {
                sys.set_reg(vcpu, r, 0)?;
            }
        }
        let mut cs = Segment::real_mode_code(0xF000);
        cs.base = 0xFFFF_0000;
        sys.set_seg(vcpu, SegReg::Cs, cs)?;
        for r in [SegReg::Ds, SegReg::Es, SegReg::Ss, SegReg::Fs, SegReg::Gs] {
            sys.set_seg(vcpu, r, Segment::real_mode(0))?;
        }
        sys.set_seg(vcpu, SegReg::Gdtr, Segment::table(0, 0xFFFF))?;
        sys.set_seg(vcpu, SegReg::Idtr, Segment::table(0, 0xFFFF))?;
        sys.set_seg(vcpu, SegReg::Ldtr, Segment::ldt(0, 0, 0xFFFF))?;
        sys.set_seg(vcpu, SegReg::Tr, Segment::busy_tss(0, 0, 0xFFFF))?;
        match self.state {
            VcpuState::Running => {
                self.state = VcpuState::WaitForSipi;
                if self.shared.fall_asleep() {
                    return Err(Stop::Halted { rip: 0xFFF0 });
                }
            }
            VcpuState::HaltedForGood { .. } | VcpuState::WaitForSipi => self.state = VcpuState::WaitForSipi,
        }
        Ok(())
    }

    /// A start-up IPI with `vector` for a vCPU waiting for one: real mode
    /// at `vector << 8` : 0.
    fn start_up(&mut self, vector: u8) -> Result<(), Stop> {
        let selector = u16::from(vector) << 8;
        self.sys.set_seg(self.vcpu, SegReg::Cs, Segment::real_mode_code(selector))?;
        self.sys.set_reg(self.vcpu, Reg::Rip, 0)?;
        self.shared.wake();
        self.state = VcpuState::Running;
        let index = self.index;
        self.guest_line(Level::Info, format_args!("vCPU {index} started at {selector:#06x}:0000"));
        Ok(())
    }
}
