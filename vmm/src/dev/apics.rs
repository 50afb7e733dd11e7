//! The APIC side of the board: the I/O APIC and one local APIC per vCPU,
//! together one device on the MMIO bus at their two pages.
//!
//! They share a device because they talk to each other on every EOI: a
//! local APIC broadcasts the EOI of a level-triggered vector, the I/O APIC
//! clears that entry's remote IRR and may send the interrupt again. The
//! messages of all of them (IPIs from the ICRs, the I/O APIC's redirected
//! interrupts) go through [`apic_bus::route`] to the local APICs they name.
//!
//! Every vCPU sees its own local APIC at the same page, as on hardware: the
//! board tells this device which vCPU makes the access ([`Apics::select`]).
//! A message that reaches another vCPU's local APIC (an IPI, an interrupt
//! the I/O APIC sends there, its timer expiring while another vCPU brings
//! the board's time forward) marks that vCPU to be kicked
//! ([`Apics::take_kicks`]), so that a vCPU running the guest or halted in
//! the host looks at its local APIC soon.
//!
//! The ISA lines reach the I/O APIC through [`Apics::set_isa_irq`], which
//! drives the 8259 pair at the same time ([`isa_irq`]). Which of the two a
//! vCPU listens to is the guest's choice: a local APIC passes the 8259's
//! INT on while its LINT0 is in ExtINT mode and unmasked (virtual wire, the
//! state firmware leaves on the bootstrap processor), or while the APIC is
//! hardware-disabled.
//!
//! The local APICs' timers make this a timer device: the board advances
//! all of them with guest time, and asks for the next interrupt of the
//! selected vCPU's timer (each vCPU wakes for its own timer only), which
//! has no ISA line (it goes straight into that local APIC's IRR).
//!
//! Limits: the local APIC page stays at its reset base (a guest that moves
//! it gets #GP from [`Apics::write_apic_base_msr`]); SMI and ExtINT
//! messages have nowhere to go and are dropped (INIT, start-up and NMI are
//! the vCPU loop's, see [`LapicEvents`]); at most [`MAX_VCPUS`] vCPUs.

use super::apic_bus::{route, CpuSet, InterruptMessage};
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

/// Most vCPUs a VM has: local APIC IDs 0 to 15 and the I/O APIC's after
/// them fit the xAPIC's 8-bit IDs, and flat logical mode's eight bits name
/// the first eight. A power of two: the selected vCPU's index is masked
/// with it instead of bounds-checked on every access.
pub const MAX_VCPUS: usize = 16;
const _: () = assert!(MAX_VCPUS.is_power_of_two());

/// The I/O APIC's ID on a board of `vcpus` vCPUs: the first after the local
/// APICs' (0 to `vcpus - 1`), as firmware numbers them. The MADT says the
/// same.
pub const fn ioapic_id(vcpus: usize) -> u8 {
    vcpus as u8
}

/// The I/O APIC and the local APIC of each vCPU.
#[derive(Clone, Debug)]
pub struct Apics {
    /// Indexed by vCPU; the APIC ID is the index. The first `count` are
    /// the VM's.
    lapics: [Lapic; MAX_VCPUS],
    count: usize,
    pub ioapic: Ioapic,
    /// The vCPU whose accesses the board is serving.
    current: usize,
    /// vCPUs other than the current one that got something to look at.
    kicks: CpuSet,
}

impl Default for Apics {
    fn default() -> Self {
        Self::new(1)
    }
}

impl Apics {
    /// All of them as firmware leaves them for `vcpus` vCPUs (1 to
    /// [`MAX_VCPUS`], clamped): every local APIC enabled at its reset base,
    /// the bootstrap processor's (vCPU 0) in virtual-wire mode, every I/O
    /// APIC entry masked. vCPU 0 is selected.
    pub fn new(vcpus: usize) -> Self {
        let count = vcpus.clamp(1, MAX_VCPUS);
        let lapics = core::array::from_fn(|i| Lapic::new(i as u8, i == 0));
        Apics { lapics, count, ioapic: Ioapic::new(ioapic_id(count)), current: 0, kicks: CpuSet::EMPTY }
    }

    /// How many vCPUs (local APICs) there are.
    pub fn vcpus(&self) -> usize {
        self.count
    }

    /// The VM's local APICs.
    fn vm_lapics(&self) -> &[Lapic] {
        &self.lapics[..self.count]
    }

    /// The following accesses are vCPU `cpu`'s (an index past the last
    /// vCPU is taken as vCPU 0). Returns whether that changed the vCPU.
    pub fn select(&mut self, cpu: usize) -> bool {
        let cpu = if cpu < self.count { cpu } else { 0 };
        let changed = cpu != self.current;
        self.current = cpu;
        changed
    }

    /// The selected vCPU's local APIC.
    pub fn lapic(&self) -> &Lapic {
        &self.lapics[self.current & (MAX_VCPUS - 1)]
    }

    /// The selected vCPU's local APIC, to change.
    pub fn lapic_mut(&mut self) -> &mut Lapic {
        &mut self.lapics[self.current & (MAX_VCPUS - 1)]
    }

    /// Takes the set of vCPUs (never the selected one) whose local APIC got
    /// an interrupt or event since the last call: they are to be kicked.
    pub fn take_kicks(&mut self) -> CpuSet {
        core::mem::take(&mut self.kicks)
    }

    /// Drives ISA IRQ `irq` to `level` on the 8259 pair and the I/O APIC.
    pub fn set_isa_irq(&mut self, pic: &mut DualPic, irq: u8, level: bool) {
        if let Some(message) = isa_irq::set_isa_irq(pic, &mut self.ioapic, irq, level) {
            self.deliver(&message, None);
        }
        if self.count > 1 && pic.pending_vector().is_some() {
            // The 8259's INT goes to every vCPU on the virtual wire.
            for (i, l) in self.lapics[..self.count].iter().enumerate() {
                if i != self.current && l.accepts_pic_interrupt() {
                    self.kicks.insert(i);
                }
            }
        }
    }

    /// Whether ISA IRQ `irq` can reach a vCPU through neither controller:
    /// masked in the 8259 pair (or the 8259 cut off from every local APIC
    /// by LINT0) and masked in its I/O APIC entry.
    pub fn isa_irq_masked(&self, pic: &DualPic, irq: u8) -> bool {
        let through_pic = !pic.irq_masked(irq) && self.vm_lapics().iter().any(Lapic::accepts_pic_interrupt);
        let through_ioapic = self.ioapic.entry(usize::from(ioapic_pin(irq))) & rte::MASKED == 0;
        !through_pic && !through_ioapic
    }

    /// The vector the selected vCPU takes next, if any: its local APIC's,
    /// else the 8259's when it reaches the vCPU.
    pub fn pending_vector(&self, pic: &DualPic) -> Option<u8> {
        let lapic = self.lapic();
        lapic.pending().or_else(|| lapic.accepts_pic_interrupt().then(|| pic.pending_vector()).flatten())
    }

    /// The selected vCPU's guest took `vector`, posted when it was
    /// [`pending_vector`](Self::pending_vector): it goes into service where
    /// it came from, even if another vector has become pending since (the
    /// board is shared, and another vCPU may have sent one meanwhile).
    /// Returns the vector taken into service (from the 8259: whatever its
    /// acknowledge gives).
    pub fn acknowledge_taken(&mut self, pic: &mut DualPic, vector: u8) -> Option<u8> {
        let lapic = &mut self.lapics[self.current & (MAX_VCPUS - 1)];
        if lapic.acknowledge_vector(vector) {
            return Some(vector);
        }
        if lapic.accepts_pic_interrupt() {
            return pic.acknowledge();
        }
        None
    }

    /// Takes the selected local APIC's interrupts that bypass its IRR (NMI
    /// and the rest).
    pub fn take_events(&mut self) -> LapicEvents {
        self.lapic_mut().take_events()
    }

    /// RDMSR IA32_APIC_BASE.
    pub fn apic_base_msr(&self) -> u64 {
        self.lapic().apic_base_msr()
    }

    /// WRMSR IA32_APIC_BASE. The page stays where the board wired it: a
    /// write that moves it is refused.
    pub fn write_apic_base_msr(&mut self, value: u64) -> Result<(), GeneralProtection> {
        if value & apic_base::BASE != lapic::DEFAULT_BASE {
            return Err(GeneralProtection);
        }
        self.lapic_mut().write_apic_base_msr(value)
    }

    /// Sends `message` from `sender` (a vCPU index; `None` for the I/O
    /// APIC) to the local APICs it names; those of other vCPUs than the
    /// selected one are to be kicked.
    fn deliver(&mut self, message: &InterruptMessage, sender: Option<usize>) {
        for target in route(message, sender, self.vm_lapics()).iter() {
            self.lapics[target].receive(message);
            if target != self.current {
                self.kicks.insert(target);
            }
        }
    }

    /// Brings every vCPU's timer up to `now_ns`; a timer that fires for
    /// another vCPU than the selected one kicks it.
    #[inline(never)]
    fn advance_all(&mut self, now_ns: u64) {
        for (i, lapic) in self.lapics[..self.count].iter_mut().enumerate() {
            if lapic.advance(now_ns) && i != self.current {
                self.kicks.insert(i);
            }
        }
    }

    /// Carries out what a local APIC register write asked for.
    fn lapic_output(&mut self, output: LapicOutput) {
        match output {
            LapicOutput::Ipi(message) => self.deliver(&message, Some(self.current)),
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
            self.lapic_mut().read(offset, data, cx.now_ns);
        } else {
            self.ioapic.read(offset, data);
        }
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8], cx: &mut Ctx) {
        if base == LAPIC_PAGE.base {
            if let Some(output) = self.lapic_mut().write(offset, data, cx.now_ns) {
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
        if self.count == 1 {
            self.lapics[0].advance(cx.now_ns);
        } else {
            self.advance_all(cx.now_ns);
        }
    }

    fn next_irq(&self, now_ns: u64) -> Option<TimerIrq> {
        self.lapic().next_deadline_ns().filter(|&at| at > now_ns).map(|at_ns| TimerIrq { line: None, at_ns })
    }
}

#[cfg(test)]
mod tests;
