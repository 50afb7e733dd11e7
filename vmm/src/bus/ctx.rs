//! What a device sees of the machine around it during an access: the guest
//! time, the wires it drives, and the VM's budget of host log lines.
use crate::guestlog::LineBudget;

/// Something the guest asked of the machine that the VMM must carry out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoardEvent {
    /// Reset the machine: a write of 0x06/0x0E to port 0xCF9, the i8042
    /// reset pulse (command 0xFE), or the fast-reset bit of port 0x92.
    Reset,
    /// Turn the machine off: the guest wrote SLP_EN with the S5 sleep type
    /// to the ACPI PM1a control register. (A guest booted with `acpi=off`
    /// cannot ask; it halts with interrupts off instead.)
    PowerOff,
}

/// The guest time and the machine's wires, handed to every device access.
///
/// Interrupt lines are numbered as the ISA bus numbers them (0–15, with
/// room up to 31 for an IOAPIC's inputs). A device drives its lines to
/// their levels after each access that may change them; a timer that rose
/// and fell again between two looks reports the edge with
/// [`Ctx::pulse_irq`]. The board hands the lines to the interrupt
/// controller before and after every access.
#[derive(Clone, Debug, Default)]
pub struct Ctx {
    /// The guest time of the access, in nanoseconds. Never goes back.
    pub now_ns: u64,
    /// The VM's host log lines (see `guestlog`), shared by its devices and
    /// the VMM's own lines about the guest.
    pub log_budget: LineBudget,
    lines: u32,
    pulses: u32,
    event: Option<BoardEvent>,
    timers_changed: bool,
}

impl Ctx {
    /// A machine at guest time 0 with every line low.
    pub const fn new() -> Self {
        Ctx { now_ns: 0, log_budget: LineBudget::new(), lines: 0, pulses: 0, event: None, timers_changed: false }
    }

    /// Drives interrupt line `line` (0–31) to `level`.
    pub fn set_irq(&mut self, line: u8, level: bool) {
        let bit = 1u32 << (line & 31);
        if level {
            self.lines |= bit;
        } else {
            self.lines &= !bit;
        }
    }

    /// Line `line` rose at least once since it was last looked at, whatever
    /// its level now: an edge-triggered controller must latch it.
    pub fn pulse_irq(&mut self, line: u8) {
        self.pulses |= 1u32 << (line & 31);
    }

    /// Asks the machine for a reset or power-off. The first request wins:
    /// the VM stops on it.
    pub fn request(&mut self, event: BoardEvent) {
        self.event.get_or_insert(event);
    }

    /// Something that decides when the next timer interrupt comes changed:
    /// a timer's programming, or an interrupt controller's masks.
    pub fn timers_changed(&mut self) {
        self.timers_changed = true;
    }

    /// The lines' levels, bit `n` for line `n`.
    pub fn lines(&self) -> u32 {
        self.lines
    }

    /// True if a line pulsed since the last [`Ctx::take_pulses`].
    pub fn has_pulses(&self) -> bool {
        self.pulses != 0
    }

    /// Takes the lines that pulsed since the last call.
    pub fn take_pulses(&mut self) -> u32 {
        core::mem::take(&mut self.pulses)
    }

    /// Takes the pending reset or power-off request.
    pub fn take_event(&mut self) -> Option<BoardEvent> {
        self.event.take()
    }

    /// True (once) if [`Ctx::timers_changed`] was called since the last call.
    pub fn take_timers_changed(&mut self) -> bool {
        core::mem::take(&mut self.timers_changed)
    }
}
