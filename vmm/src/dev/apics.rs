//! The APIC side of the board: the I/O APIC and the bootstrap processor's
//! local APIC, together one device on the MMIO bus at their two pages.
//!
//! They share a device because they talk to each other on every EOI: the
//! local APIC broadcasts the EOI of a level-triggered vector, the I/O APIC
//! clears that entry's remote IRR and may send the interrupt again. The
//! messages of both go through [`apic_bus::route`] to the local APICs they
//! name; with one vCPU that is the one local APIC here or none.
//!
//! The ISA lines reach the I/O APIC through [`Apics::set_isa_irq`], which
//! drives the 8259 pair at the same time ([`isa_irq`]). Which of the two a
//! vCPU listens to is the guest's choice: the local APIC passes the 8259's
//! INT on while its LINT0 is in ExtINT mode and unmasked (virtual wire, the
//! state firmware leaves), or while the APIC is hardware-disabled.
//!
//! The local APIC's timer makes this a timer device: the board advances it
//! with guest time and asks it for its next interrupt, which has no ISA
//! line (it goes straight into the local APIC's IRR).
//!
//! Limits: one local APIC (one vCPU), at its reset base only (a guest that
//! moves the page gets #GP from [`Apics::write_apic_base_msr`]); the guest's
//! CR8 is not the local APIC's TPR (the VMM sees the TPR written through the
//! page, which is what a Linux guest uses); INIT, start-up, SMI and ExtINT
//! messages have nowhere to go and are dropped.

use super::apic_bus::{route, InterruptMessage};
use super::ioapic::{self, rte, Ioapic};
use super::isa_irq::{self, ioapic_pin};
use super::lapic::{self, apic_base, GeneralProtection, Lapic, LapicEvents, LapicOutput};
use super::pic::DualPic;
use crate::bus::{BusDevice, Ctx, Range, TimerIrq};

/// The I/O APIC's page.
pub const IOAPIC_PAGE: Range = Range::new(ioapic::DEFAULT_BASE, ioapic::MMIO_SIZE);
/// The local APIC's page at its reset base.
pub const LAPIC_PAGE: Range = Range::new(lapic::DEFAULT_BASE, lapic::MMIO_SIZE);
/// Both, as the board wires them.
pub const APIC_PAGES: [Range; 2] = [IOAPIC_PAGE, LAPIC_PAGE];

/// The I/O APIC's ID: the first after the local APICs' (0 for the one
/// vCPU), as firmware numbers them. The MADT says the same.
pub const IOAPIC_ID: u8 = 1;

/// The I/O APIC and the local APIC of vCPU 0.
#[derive(Clone, Debug)]
pub struct Apics {
    pub lapic: Lapic,
    pub ioapic: Ioapic,
}

impl Default for Apics {
    fn default() -> Self {
        Self::new()
    }
}

impl Apics {
    /// Both as firmware leaves them: the local APIC enabled at its reset
    /// base in virtual-wire mode, every I/O APIC entry masked.
    pub fn new() -> Self {
        Apics { lapic: Lapic::new(0, true), ioapic: Ioapic::new(IOAPIC_ID) }
    }

    /// Drives ISA IRQ `irq` to `level` on the 8259 pair and the I/O APIC.
    pub fn set_isa_irq(&mut self, pic: &mut DualPic, irq: u8, level: bool) {
        if let Some(message) = isa_irq::set_isa_irq(pic, &mut self.ioapic, irq, level) {
            self.deliver(&message, None);
        }
    }

    /// Whether ISA IRQ `irq` can reach the vCPU through neither controller:
    /// masked in the 8259 pair (or the 8259 cut off by LINT0) and masked in
    /// its I/O APIC entry.
    pub fn isa_irq_masked(&self, pic: &DualPic, irq: u8) -> bool {
        let through_pic = !pic.irq_masked(irq) && self.lapic.accepts_pic_interrupt();
        let through_ioapic = self.ioapic.entry(usize::from(ioapic_pin(irq))) & rte::MASKED == 0;
        !through_pic && !through_ioapic
    }

    /// The vector the vCPU takes next, if any: the local APIC's, else the
    /// 8259's when it reaches the vCPU.
    pub fn pending_vector(&self, pic: &DualPic) -> Option<u8> {
        self.lapic.pending().or_else(|| self.lapic.accepts_pic_interrupt().then(|| pic.pending_vector()).flatten())
    }

    /// The interrupt acknowledge of the vCPU: takes the vector of
    /// [`pending_vector`](Self::pending_vector) into service where it came
    /// from and returns it.
    pub fn acknowledge(&mut self, pic: &mut DualPic) -> Option<u8> {
        if let Some(vector) = self.lapic.acknowledge() {
            return Some(vector);
        }
        if self.lapic.accepts_pic_interrupt() {
            return pic.acknowledge();
        }
        None
    }

    /// Takes the local APIC's interrupts that bypass its IRR (NMI and the
    /// rest).
    pub fn take_events(&mut self) -> LapicEvents {
        self.lapic.take_events()
    }

    /// RDMSR IA32_APIC_BASE.
    pub fn apic_base_msr(&self) -> u64 {
        self.lapic.apic_base_msr()
    }

    /// WRMSR IA32_APIC_BASE. The page stays where the board wired it: a
    /// write that moves it is refused.
    pub fn write_apic_base_msr(&mut self, value: u64) -> Result<(), GeneralProtection> {
        if value & apic_base::BASE != lapic::DEFAULT_BASE {
            return Err(GeneralProtection);
        }
        self.lapic.write_apic_base_msr(value)
    }

    /// Sends `message` from `sender` (a vCPU index; `None` for the I/O
    /// APIC) to the local APICs it names.
    fn deliver(&mut self, message: &InterruptMessage, sender: Option<usize>) {
        if !route(message, sender, [&self.lapic]).is_empty() {
            self.lapic.receive(message);
        }
    }

    /// Carries out what a local APIC register write asked for.
    fn lapic_output(&mut self, output: LapicOutput) {
        match output {
            LapicOutput::Ipi(message) => self.deliver(&message, Some(0)),
            LapicOutput::Eoi { vector } => {
                for message in self.ioapic.eoi(vector) {
                    self.deliver(&message, None);
                }
            }
        }
    }
}

impl BusDevice for Apics {
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8], cx: &mut Ctx) {
        if base == LAPIC_PAGE.base {
            self.lapic.read(offset, data, cx.now_ns);
        } else {
            self.ioapic.read(offset, data);
        }
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8], cx: &mut Ctx) {
        if base == LAPIC_PAGE.base {
            if let Some(output) = self.lapic.write(offset, data, cx.now_ns) {
                self.lapic_output(output);
            }
        } else {
            for message in self.ioapic.write(offset, data) {
                self.deliver(&message, None);
            }
        }
        // The timer's programming, LINT0 or an I/O APIC mask may have
        // changed: each decides which deadlines count.
        cx.timers_changed();
    }

    fn is_timer(&self) -> bool {
        true
    }

    fn advance(&mut self, cx: &mut Ctx) {
        self.lapic.advance(cx.now_ns);
    }

    fn next_irq(&self, now_ns: u64) -> Option<TimerIrq> {
        self.lapic.next_deadline_ns().filter(|&at| at > now_ns).map(|at_ns| TimerIrq { line: None, at_ns })
    }
}

#[cfg(test)]
mod tests;
