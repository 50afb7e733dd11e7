//! The local APIC of one vCPU, in xAPIC mode, after Intel SDM vol. 3
//! chapter 10 ("Advanced Programmable Interrupt Controller") and AMD APM
//! vol. 2 chapter 16 ("Advanced Programmable Interrupt Controller").
//!
//! The model is pure: the VMM hands it the guest's accesses to the APIC
//! page and to IA32_APIC_BASE / IA32_TSC_DEADLINE, the interrupt messages
//! routed to it and the levels of its LINT pins, each with the guest time.
//! It hands back what the rest of the machine must do ([`LapicOutput`]: an
//! IPI to route, an EOI to broadcast to the IOAPIC), the vector to inject
//! ([`Lapic::pending`], [`Lapic::acknowledge`]), the interrupts that bypass
//! the IRR ([`LapicEvents`]: NMI, SMI, INIT, start-up, ExtINT) and the time
//! of its next timer interrupt ([`Lapic::next_deadline_ns`]).
//!
//! Implemented: ID, version, TPR, APR, PPR, EOI, LDR, DFR (flat and
//! cluster), SVR (software enable; LVTs masked while disabled), ISR, TMR,
//! IRR, ESR, ICR (fixed, lowest priority, SMI, NMI, INIT, start-up; physical
//! and logical destinations; the self, all-including-self and
//! all-excluding-self shorthands), the six LVT entries, and the timer in
//! one-shot, periodic and TSC-deadline modes. `docs/devices.md` lists what
//! is left out and the choices made where the manuals leave room.

pub mod regs;
mod timer;

#[cfg(test)]
mod tests;

pub use regs::Lvt;
pub use timer::{TimerMode, TscClock, BUS_HZ};

use super::apic_bus::{DeliveryMode, Destination, InterruptMessage, Trigger, BROADCAST};
use regs::*;
use timer::Timer;

/// Where the APIC page is after reset.
pub const DEFAULT_BASE: u64 = 0xFEE0_0000;
/// The APIC page's size.
pub const MMIO_SIZE: u64 = PAGE_SIZE;
/// IA32_APIC_BASE.
pub const MSR_APIC_BASE: u32 = 0x1B;
/// IA32_TSC_DEADLINE.
pub const MSR_TSC_DEADLINE: u32 = 0x6E0;

/// IA32_APIC_BASE bits (SDM figure 10-5).
pub mod apic_base {
    /// This processor is the bootstrap processor (read-only here).
    pub const BSP: u64 = 1 << 8;
    /// x2APIC mode; not offered, so setting it is #GP.
    pub const EXTD: u64 = 1 << 10;
    /// The APIC is enabled (hardware enable).
    pub const ENABLE: u64 = 1 << 11;
    /// The page's physical address, bits 12 to 51.
    pub const BASE: u64 = 0x000F_FFFF_FFFF_F000;
}

/// What a register write asks of the rest of the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LapicOutput {
    /// An inter-processor interrupt for the VMM to route (see
    /// [`apic_bus::route`](super::apic_bus::route)). Self-only IPIs never
    /// leave the local APIC.
    Ipi(InterruptMessage),
    /// The EOI of a level-triggered interrupt: the IOAPIC clears the remote
    /// IRR of the entries with this vector.
    Eoi { vector: u8 },
}

/// Interrupts that bypass the IRR and ISR and go straight to the
/// processor. The VMM takes them with [`Lapic::take_events`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LapicEvents {
    pub nmi: bool,
    pub smi: bool,
    /// INIT: the VMM resets the vCPU, calls [`Lapic::init_reset`] and
    /// waits for a start-up IPI (the application processors' path).
    pub init: bool,
    /// A start-up IPI's vector: a vCPU waiting after INIT starts in real
    /// mode at `vector << 12`; any other vCPU ignores it.
    pub startup: Option<u8>,
    /// An ExtINT message: the vector comes from the 8259's INTA cycle.
    pub extint: bool,
}

/// WRMSR IA32_APIC_BASE with a value the CPU refuses: #GP(0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeneralProtection;

/// The local APIC of one vCPU.
#[derive(Clone, Debug)]
pub struct Lapic {
    /// IA32_APIC_BASE: base, enable and BSP bits.
    base_msr: u64,
    id: u8,
    tpr: u8,
    ldr: u32,
    dfr: u32,
    svr: u32,
    isr: VectorSet,
    tmr: VectorSet,
    irr: VectorSet,
    /// The ESR as software reads it: the errors seen before its last write.
    esr: u32,
    /// Errors seen since the last ESR write.
    esr_pending: u32,
    icr_low: u32,
    icr_high: u32,
    lvt: [u32; LVT_COUNT],
    /// The electrical levels of LINT0 and LINT1.
    lint_level: [bool; 2],
    timer: Timer,
    events: LapicEvents,
}

impl Lapic {
    /// A local APIC as firmware hands it to an operating system: enabled
    /// in IA32_APIC_BASE at [`DEFAULT_BASE`], software-disabled, registers
    /// in their power-up state. On the bootstrap processor LINT0 is left
    /// in ExtINT mode and unmasked (virtual-wire mode, as a PC BIOS leaves
    /// it and as KVM and QEMU set it at reset), so the 8259 reaches the CPU
    /// until the guest programs its APICs.
    pub fn new(apic_id: u8, bsp: bool) -> Self {
        let mut lapic = Lapic {
            base_msr: DEFAULT_BASE | apic_base::ENABLE | if bsp { apic_base::BSP } else { 0 },
            id: apic_id,
            tpr: 0,
            ldr: 0,
            dfr: DFR_RESET,
            svr: SVR_RESET,
            isr: VectorSet::EMPTY,
            tmr: VectorSet::EMPTY,
            irr: VectorSet::EMPTY,
            esr: 0,
            esr_pending: 0,
            icr_low: 0,
            icr_high: 0,
            lvt: [LVT_MASKED; LVT_COUNT],
            lint_level: [false; 2],
            timer: Timer::new(),
            events: LapicEvents::default(),
        };
        lapic.init_reset();
        if bsp {
            lapic.lvt[Lvt::Lint0 as usize] = LVT_EXTINT;
        }
        lapic
    }

    /// What INIT does to the local APIC (SDM §10.4.7.3): every register
    /// back to its power-up value (LVTs masked, SVR 0xFF, DFR all ones, the
    /// timer stopped) except the APIC ID and IA32_APIC_BASE. The pin levels
    /// and untaken events are not registers and stay.
    pub fn init_reset(&mut self) {
        self.tpr = 0;
        self.ldr = 0;
        self.dfr = DFR_RESET;
        self.svr = SVR_RESET;
        self.isr = VectorSet::EMPTY;
        self.tmr = VectorSet::EMPTY;
        self.irr = VectorSet::EMPTY;
        self.esr = 0;
        self.esr_pending = 0;
        self.icr_low = 0;
        self.icr_high = 0;
        self.lvt = [LVT_MASKED; LVT_COUNT];
        self.timer = Timer::new();
    }

    pub fn id(&self) -> u8 {
        self.id
    }

    pub fn is_bsp(&self) -> bool {
        self.base_msr & apic_base::BSP != 0
    }

    /// IA32_APIC_BASE.EN: the APIC exists for the guest. When clear, the
    /// page is not decoded, nothing is received and the 8259 drives the
    /// CPU's INTR directly.
    pub fn hardware_enabled(&self) -> bool {
        self.base_msr & apic_base::ENABLE != 0
    }

    /// SVR bit 8 (and the hardware enable).
    pub fn software_enabled(&self) -> bool {
        self.hardware_enabled() && self.svr & SVR_ENABLE != 0
    }

    /// The guest-physical address of the APIC page, while it is decoded.
    pub fn mmio_base(&self) -> Option<u64> {
        self.hardware_enabled().then_some(self.base_msr & apic_base::BASE)
    }

    /// RDMSR IA32_APIC_BASE.
    pub fn apic_base_msr(&self) -> u64 {
        self.base_msr
    }

    /// WRMSR IA32_APIC_BASE: moves the page, enables or disables the APIC.
    /// Reserved bits and EXTD (x2APIC is not offered) are #GP; the BSP bit
    /// keeps its value. Clearing EN puts every register back in its
    /// power-up state (the SDM's "may return to the state after reset",
    /// §10.4.3), the timer included.
    pub fn write_apic_base_msr(&mut self, value: u64) -> Result<(), GeneralProtection> {
        if value & !(apic_base::BASE | apic_base::ENABLE | apic_base::BSP) != 0 {
            return Err(GeneralProtection);
        }
        let was_enabled = self.hardware_enabled();
        self.base_msr = (value & (apic_base::BASE | apic_base::ENABLE)) | (self.base_msr & apic_base::BSP);
        if was_enabled && !self.hardware_enabled() {
            self.init_reset();
        }
        Ok(())
    }

    /// RDMSR IA32_TSC_DEADLINE: the armed deadline, 0 once it has fired,
    /// when disarmed and outside TSC-deadline mode.
    pub fn tsc_deadline_msr(&mut self, now_ns: u64) -> u64 {
        self.advance(now_ns);
        self.timer.deadline()
    }

    /// WRMSR IA32_TSC_DEADLINE, with the guest TSC at `now_ns`. Ignored
    /// unless the LVT timer entry is in TSC-deadline mode.
    pub fn write_tsc_deadline_msr(&mut self, value: u64, now_ns: u64, clock: TscClock) {
        self.advance(now_ns);
        self.timer.write_deadline(value, now_ns, clock);
        self.advance(now_ns);
    }

    /// The task priority (also CR8 << 4).
    pub fn tpr(&self) -> u8 {
        self.tpr
    }

    /// Sets the TPR (a write through CR8 sets `class << 4`).
    pub fn set_tpr(&mut self, value: u8) {
        self.tpr = value;
    }

    /// The processor priority (SDM §10.8.3.1): the TPR, or the class of the
    /// highest in-service vector if that is above the TPR's class.
    pub fn ppr(&self) -> u8 {
        let isrv = self.isr.highest().unwrap_or(0);
        if class(self.tpr) >= class(isrv) {
            self.tpr
        } else {
            isrv & 0xF0
        }
    }

    /// The arbitration priority (SDM §10.6.2.4), which lowest-priority
    /// delivery compares: the TPR if its class is at least that of the
    /// highest requested vector and above that of the highest in-service
    /// one, else the highest of the three classes.
    pub fn arbitration_priority(&self) -> u8 {
        let tpr = class(self.tpr);
        let isrv = class(self.isr.highest().unwrap_or(0));
        let irrv = class(self.irr.highest().unwrap_or(0));
        if tpr >= irrv && tpr > isrv {
            self.tpr
        } else {
            tpr.max(isrv).max(irrv) << 4
        }
    }

    /// Whether a physical destination names this local APIC.
    pub fn matches_physical(&self, destination: u8) -> bool {
        destination == BROADCAST || destination == self.id
    }

    /// Whether a logical destination (message destination address) names
    /// this local APIC, in the model its DFR selects: flat (a bit of the
    /// MDA is set in the LDR) or cluster (the high nibbles name the same
    /// cluster, or the MDA's is 0xF for all clusters, and a low-nibble bit
    /// is shared). Any DFR model other than 0000 (cluster) acts as flat.
    pub fn matches_logical(&self, mda: u8) -> bool {
        let logical_id = (self.ldr >> ID_SHIFT) as u8;
        if self.dfr & DFR_MODEL == 0 {
            let cluster = mda >> 4;
            (cluster == 0xF || cluster == logical_id >> 4) && mda & logical_id & 0xF != 0
        } else {
            mda & logical_id != 0
        }
    }

    /// Accepts a fixed interrupt into the IRR (SDM §10.8.4): the TMR bit
    /// records the trigger mode. Vectors 0–15 are refused with "receive
    /// illegal vector" in the ESR. A software-disabled local APIC discards
    /// fixed interrupts (as KVM's does).
    pub fn accept(&mut self, vector: u8, trigger: Trigger) {
        if !self.software_enabled() {
            return;
        }
        if vector < FIRST_LEGAL_VECTOR {
            self.error(esr::RECEIVE_ILLEGAL_VECTOR);
            return;
        }
        self.irr.insert(vector);
        self.tmr.set(vector, trigger == Trigger::Level);
    }

    /// Takes an interrupt message routed to this local APIC. While the APIC
    /// is hardware-disabled it takes nothing.
    pub fn receive(&mut self, message: &InterruptMessage) {
        if !self.hardware_enabled() {
            return;
        }
        match message.delivery {
            DeliveryMode::Fixed | DeliveryMode::LowestPriority => self.accept(message.vector, message.trigger),
            DeliveryMode::Nmi => self.events.nmi = true,
            DeliveryMode::Smi => self.events.smi = true,
            DeliveryMode::Init => self.events.init = true,
            DeliveryMode::StartUp => self.events.startup = Some(message.vector),
            DeliveryMode::ExtInt => self.events.extint = true,
        }
    }

    /// The highest requested vector whose priority class is above the
    /// PPR's: the interrupt the vCPU takes next when it can.
    pub fn pending(&self) -> Option<u8> {
        if !self.hardware_enabled() {
            return None;
        }
        let vector = self.irr.highest()?;
        (class(vector) > class(self.ppr())).then_some(vector)
    }

    /// The interrupt acknowledge: moves the [`pending`](Self::pending)
    /// vector from the IRR to the ISR and returns it. The VMM calls this
    /// when it injects the vector.
    pub fn acknowledge(&mut self) -> Option<u8> {
        let vector = self.pending()?;
        self.irr.remove(vector);
        self.isr.insert(vector);
        Some(vector)
    }

    /// The interrupt acknowledge of a vector the CPU already took (posted
    /// earlier, taken by the guest since): moves `vector` from the IRR to
    /// the ISR if it is requested there. False if it is not (it came from
    /// the 8259). Another vector may have become the highest meanwhile
    /// (another vCPU's IPI); it stays requested.
    pub fn acknowledge_vector(&mut self, vector: u8) -> bool {
        if !self.irr.contains(vector) {
            return false;
        }
        self.irr.remove(vector);
        self.isr.insert(vector);
        true
    }

    /// Takes the interrupts that bypass the IRR.
    pub fn take_events(&mut self) -> LapicEvents {
        core::mem::take(&mut self.events)
    }

    /// Whether [`take_events`](Self::take_events) has anything.
    pub fn has_events(&self) -> bool {
        self.events != LapicEvents::default()
    }

    /// Drives LINT0 (`pin` 0) or LINT1 (`pin` 1) to `level`. The LVT entry
    /// decides what happens: a fixed interrupt on the asserting edge, or
    /// while the pin stays asserted for a level-triggered one (held off by
    /// the entry's remote IRR until the EOI); NMI, SMI or INIT on the
    /// asserting edge. ExtINT makes the pin the 8259's path to the CPU (see
    /// [`accepts_pic_interrupt`](Self::accepts_pic_interrupt)).
    pub fn set_lint(&mut self, pin: u8, level: bool) {
        let pin = usize::from(pin & 1);
        let was = self.lint_asserted(pin);
        self.lint_level[pin] = level;
        let rising = !was && self.lint_asserted(pin);
        let lvt = self.lvt[Lvt::Lint0 as usize + pin];
        if lvt & LVT_MASKED != 0 || !self.software_enabled() {
            return;
        }
        match DeliveryMode::from_bits(lvt >> 8) {
            Some(DeliveryMode::Fixed) if lvt & LVT_LEVEL != 0 => self.update_level_lint(pin),
            Some(DeliveryMode::Fixed) if rising => self.accept(lvt as u8, Trigger::Edge),
            Some(DeliveryMode::Nmi) if rising => self.events.nmi = true,
            Some(DeliveryMode::Smi) if rising => self.events.smi = true,
            Some(DeliveryMode::Init) if rising => self.events.init = true,
            _ => {}
        }
    }

    /// Whether the 8259's INT output reaches this vCPU (KVM's rule): when
    /// the APIC is hardware-disabled, or through LINT0 unmasked in ExtINT
    /// mode. Linux masks LINT0 (and the 8259) when it moves to the IOAPIC.
    pub fn accepts_pic_interrupt(&self) -> bool {
        let lint0 = self.lvt[Lvt::Lint0 as usize];
        !self.hardware_enabled()
            || (lint0 & LVT_MASKED == 0 && DeliveryMode::from_bits(lint0 >> 8) == Some(DeliveryMode::ExtInt))
    }

    /// Brings the timer up to `now_ns`, raising its interrupt if it
    /// expired (then it returns true). Every access does this first.
    #[inline]
    pub fn advance(&mut self, now_ns: u64) -> bool {
        if self.timer.advance(now_ns) {
            let lvt = self.lvt[Lvt::Timer as usize];
            if lvt & LVT_MASKED == 0 {
                self.accept(lvt as u8, Trigger::Edge);
                return true;
            }
        }
        false
    }

    /// The guest time of the next timer interrupt, if the timer is armed
    /// and unmasked; after [`advance`](Self::advance)`(now)` it is later
    /// than `now`. Any access may change it.
    pub fn next_deadline_ns(&self) -> Option<u64> {
        if self.lvt[Lvt::Timer as usize] & LVT_MASKED != 0 {
            return None;
        }
        self.timer.expiry_ns()
    }

    /// A guest read of `data.len()` bytes at `offset` in the APIC page.
    /// Each register is the first four bytes of its 16-byte slot: any read
    /// that stays within them returns those bytes of the register (as on
    /// hardware and in KVM); the other twelve bytes read as zero. A
    /// hardware-disabled APIC is not there: reads return all ones.
    pub fn read(&mut self, offset: u64, data: &mut [u8], now_ns: u64) {
        if !self.hardware_enabled() {
            data.fill(0xFF);
            return;
        }
        self.advance(now_ns);
        let mut slot_value: Option<(u64, [u8; 4])> = None;
        for (at, byte) in (offset..).zip(data.iter_mut()) {
            let slot = at & (PAGE_SIZE - 1) & !(SLOT - 1);
            let within = (at % SLOT) as usize;
            if within >= 4 {
                *byte = 0;
                continue;
            }
            let bytes = match slot_value {
                Some((s, bytes)) if s == slot => bytes,
                _ => {
                    let bytes = self.read_register(slot as u16, now_ns).to_le_bytes();
                    slot_value = Some((slot, bytes));
                    bytes
                }
            };
            *byte = bytes[within];
        }
    }

    /// A guest write at `offset` in the APIC page. Only a four-byte write
    /// at the start of a register's slot reaches the register; others are
    /// dropped, as KVM drops them (the SDM leaves them undefined).
    pub fn write(&mut self, offset: u64, data: &[u8], now_ns: u64) -> Option<LapicOutput> {
        let value = <[u8; 4]>::try_from(data).ok().map(u32::from_le_bytes);
        let (Some(value), true) = (value, offset.is_multiple_of(SLOT)) else {
            return None;
        };
        if !self.hardware_enabled() {
            return None;
        }
        self.advance(now_ns);
        let output = self.write_register((offset & (PAGE_SIZE - 1)) as u16, value, now_ns);
        self.advance(now_ns);
        output
    }

    /// The value of the register at `reg` (a slot offset). Reading a
    /// reserved slot sets "illegal register address" in the ESR.
    fn read_register(&mut self, reg: u16, now_ns: u64) -> u32 {
        let word = |base: u16| usize::from((reg - base) / 0x10);
        match reg {
            ID => u32::from(self.id) << ID_SHIFT,
            VERSION => VERSION_VALUE,
            TPR => u32::from(self.tpr),
            APR => u32::from(self.arbitration_priority()),
            PPR => u32::from(self.ppr()),
            EOI | RRD => 0,
            LDR => self.ldr,
            DFR => self.dfr,
            SVR => self.svr,
            ISR..TMR => self.isr.word(word(ISR)),
            TMR..IRR => self.tmr.word(word(TMR)),
            IRR..ESR => self.irr.word(word(IRR)),
            ESR => self.esr,
            ICR_LOW => self.icr_low,
            ICR_HIGH => self.icr_high,
            LVT_TIMER..=LVT_ERROR => self.lvt[word(LVT_TIMER)],
            TIMER_INITIAL => self.timer.initial(),
            TIMER_CURRENT => self.timer.current(now_ns),
            TIMER_DIVIDE => self.timer.divide(),
            _ => {
                self.error(esr::ILLEGAL_REGISTER);
                0
            }
        }
    }

    /// Writes the register at `reg`. Read-only registers ignore the write;
    /// a reserved slot sets "illegal register address" in the ESR.
    fn write_register(&mut self, reg: u16, value: u32, now_ns: u64) -> Option<LapicOutput> {
        match reg {
            ID => self.id = (value >> ID_SHIFT) as u8,
            TPR => self.tpr = value as u8,
            EOI => return self.eoi(),
            LDR => self.ldr = value & (0xFF << ID_SHIFT),
            DFR => self.dfr = value | !DFR_MODEL,
            SVR => self.write_svr(value),
            ESR => self.esr = core::mem::take(&mut self.esr_pending),
            ICR_LOW => {
                self.icr_low = value & ICR_LOW_WRITABLE;
                return self.send_ipi();
            }
            ICR_HIGH => self.icr_high = value & ICR_HIGH_WRITABLE,
            LVT_TIMER..=LVT_ERROR => {
                if let Some(lvt) = Lvt::at(reg) {
                    self.write_lvt(lvt, value);
                }
            }
            TIMER_INITIAL => self.timer.write_initial(value, now_ns),
            TIMER_DIVIDE => self.timer.write_divide(value & DIVIDE_WRITABLE, now_ns),
            VERSION | APR | PPR | RRD | ISR..ESR | TIMER_CURRENT => {}
            _ => self.error(esr::ILLEGAL_REGISTER),
        }
        None
    }

    fn write_svr(&mut self, value: u32) {
        self.svr = value & SVR_WRITABLE;
        if !self.software_enabled() {
            for lvt in &mut self.lvt {
                *lvt |= LVT_MASKED;
            }
        }
    }

    fn write_lvt(&mut self, which: Lvt, value: u32) {
        let index = which as usize;
        let mut lvt = (value & which.writable()) | (self.lvt[index] & LVT_REMOTE_IRR);
        if !self.software_enabled() {
            lvt |= LVT_MASKED;
        }
        self.lvt[index] = lvt;
        match which {
            Lvt::Timer => self.timer.set_mode(TimerMode::of_lvt(lvt)),
            Lvt::Lint0 | Lvt::Lint1 => {
                let pin = index - Lvt::Lint0 as usize;
                if !is_fixed_level(lvt) {
                    self.lvt[index] &= !LVT_REMOTE_IRR;
                }
                self.update_level_lint(pin);
            }
            Lvt::Thermal | Lvt::Perf | Lvt::Error => {}
        }
    }

    /// The EOI (SDM §10.8.5): retires the highest in-service vector. A
    /// level-triggered one clears the remote IRR of a LINT entry with its
    /// vector and is broadcast to the IOAPIC.
    fn eoi(&mut self) -> Option<LapicOutput> {
        let vector = self.isr.highest()?;
        self.isr.remove(vector);
        if !self.tmr.contains(vector) {
            return None;
        }
        for pin in 0..2 {
            let lvt = &mut self.lvt[Lvt::Lint0 as usize + pin];
            if *lvt & LVT_REMOTE_IRR != 0 && *lvt as u8 == vector {
                *lvt &= !LVT_REMOTE_IRR;
                self.update_level_lint(pin);
            }
        }
        Some(LapicOutput::Eoi { vector })
    }

    /// Sends the IPI the ICR now holds (SDM §10.6.1). The ICR's delivery
    /// status always reads idle: the message leaves at once.
    fn send_ipi(&mut self) -> Option<LapicOutput> {
        let icr = self.icr_low;
        let vector = icr as u8;
        let trigger = Trigger::from_bit(icr & ICR_LEVEL != 0);
        let delivery = match DeliveryMode::from_bits(icr >> 8)? {
            // INIT level de-assert only resynchronises arbitration IDs on
            // old processors: nothing to send.
            DeliveryMode::Init if trigger == Trigger::Level && icr & ICR_ASSERT == 0 => return None,
            // ExtINT is not a valid IPI.
            DeliveryMode::ExtInt => return None,
            mode => mode,
        };
        if delivery.uses_vector() && vector < FIRST_LEGAL_VECTOR {
            self.error(esr::SEND_ILLEGAL_VECTOR);
            return None;
        }
        let target = (self.icr_high >> ID_SHIFT) as u8;
        let destination = match (icr >> ICR_SHORTHAND_SHIFT) & 3 {
            0 if icr & ICR_LOGICAL != 0 => Destination::Logical(target),
            0 => Destination::Physical(target),
            1 => {
                // Self: only a fixed interrupt is valid, and it never
                // leaves the local APIC.
                if delivery == DeliveryMode::Fixed {
                    self.accept(vector, trigger);
                }
                return None;
            }
            2 => Destination::AllIncludingSelf,
            _ => Destination::AllExcludingSelf,
        };
        Some(LapicOutput::Ipi(InterruptMessage { destination, delivery, vector, trigger }))
    }

    /// Records an error in the ESR and raises the LVT error interrupt. An
    /// illegal vector in the error entry itself is only recorded.
    fn error(&mut self, bits: u32) {
        self.esr_pending |= bits;
        let lvt = self.lvt[Lvt::Error as usize];
        if lvt & LVT_MASKED != 0 || !self.software_enabled() {
            return;
        }
        let vector = lvt as u8;
        if vector < FIRST_LEGAL_VECTOR {
            self.esr_pending |= esr::RECEIVE_ILLEGAL_VECTOR;
        } else {
            self.accept(vector, Trigger::Edge);
        }
    }

    fn lint_asserted(&self, pin: usize) -> bool {
        let active_low = self.lvt[Lvt::Lint0 as usize + pin] & LVT_POLARITY_LOW != 0;
        self.lint_level[pin] != active_low
    }

    /// A level-triggered fixed LINT entry: while its pin is asserted and its
    /// remote IRR clear, the interrupt is accepted and remote IRR set (an
    /// illegal vector is refused and leaves remote IRR clear).
    fn update_level_lint(&mut self, pin: usize) {
        let index = Lvt::Lint0 as usize + pin;
        let lvt = self.lvt[index];
        let blocked = lvt & (LVT_MASKED | LVT_REMOTE_IRR) != 0 || !self.software_enabled();
        if !is_fixed_level(lvt) || blocked || !self.lint_asserted(pin) {
            return;
        }
        let vector = lvt as u8;
        if vector >= FIRST_LEGAL_VECTOR {
            self.lvt[index] |= LVT_REMOTE_IRR;
        }
        self.accept(vector, Trigger::Level);
    }
}

fn is_fixed_level(lvt: u32) -> bool {
    lvt & LVT_LEVEL != 0 && DeliveryMode::from_bits(lvt >> 8) == Some(DeliveryMode::Fixed)
}
