//! The PC's pair of 8259A programmable interrupt controllers.
//!
//! The master answers at 0x20/0x21 and takes ISA IRQs 0–7; the slave answers
//! at 0xA0/0xA1, takes IRQs 8–15 and drives the master's IR2. The PIIX edge/
//! level control registers (ELCR) are at 0x4D0/0x4D1.
//!
//! The model follows the 8259A data sheet: the ICW1–ICW4 initialisation
//! sequence, OCW1 (mask), OCW2 (EOI, specific EOI, rotation, set priority),
//! OCW3 (read IRR/ISR, poll, special mask mode), fully nested priority with
//! rotation, auto-EOI and special fully nested mode. Deliberate differences:
//!
//! - An edge-latched request stays in IRR until it is acknowledged or the
//!   chip is re-initialised, even if its line falls first. (The real part
//!   forgets it and answers the INTA with a spurious IR7.) This keeps a timer
//!   edge that the VMM sampled late from being lost.
//! - Level sensitivity comes from the ELCR only; ICW1.LTIM is ignored, as on
//!   the PIIX. The master's IR2 is always level-sensitive to the slave's INT
//!   output, so a request queued behind an in-service slave interrupt is
//!   never lost.
//! - There is no bus for an INTA cycle to find nothing on: [`DualPic::acknowledge`]
//!   returns `None` when INT is not asserted. A spurious IR7/IR15 vector is
//!   still produced when the master picks a cascade input whose slave has no
//!   request left.

use crate::bus::{self, BusDevice, Ctx, Range};

/// The master's and slave's command/data ports.
pub const MASTER_CMD: u16 = 0x20;
pub const MASTER_DATA: u16 = 0x21;
pub const SLAVE_CMD: u16 = 0xA0;
pub const SLAVE_DATA: u16 = 0xA1;
/// The PIIX edge/level control registers for IRQs 0–7 and 8–15.
pub const ELCR_MASTER: u16 = 0x4D0;
pub const ELCR_SLAVE: u16 = 0x4D1;

/// The master input the slave is wired to.
const CASCADE_IR: u8 = 2;
/// ELCR bits that may be set: IRQ 0, 1, 2, 8 and 13 are always edge-triggered.
const ELCR_MASTER_WRITABLE: u8 = 0xF8;
const ELCR_SLAVE_WRITABLE: u8 = 0xDE;

// ICW1 and the command register's other words.
const ICW1: u8 = 0x10;
const ICW1_IC4: u8 = 0x01;
const ICW1_SNGL: u8 = 0x02;
const OCW3: u8 = 0x08;
const OCW3_RIS: u8 = 0x01;
const OCW3_RR: u8 = 0x02;
const OCW3_POLL: u8 = 0x04;
const OCW3_SMM: u8 = 0x20;
const OCW3_ESMM: u8 = 0x40;
const ICW4_AEOI: u8 = 0x02;
const ICW4_SFNM: u8 = 0x10;
const POLL_INTERRUPT: u8 = 0x80;

/// Where a chip is in its initialisation sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InitStep {
    Ready,
    Icw2,
    Icw3,
    Icw4,
}

/// One 8259A.
#[derive(Clone, Debug)]
pub struct Pic8259 {
    /// Edge-latched requests.
    irr: u8,
    /// The current level of each IR input.
    lines: u8,
    /// Inputs that are level-sensitive (their request follows the line).
    level_mask: u8,
    isr: u8,
    imr: u8,
    /// ICW2: vector of IR0 (low three bits zero).
    vector_base: u8,
    /// ICW3: on the master, the inputs with a slave; on the slave, its ID.
    icw3: u8,
    step: InitStep,
    icw4_expected: bool,
    single: bool,
    auto_eoi: bool,
    rotate_on_auto_eoi: bool,
    special_fully_nested: bool,
    special_mask: bool,
    read_isr: bool,
    poll: bool,
    /// The input with the lowest priority; the next one has the highest.
    lowest_priority: u8,
    /// True on the master: its cascade inputs pass slave vectors.
    is_master: bool,
}

impl Pic8259 {
    /// A chip as a PC BIOS leaves it: initialised for an 8086 system with
    /// `vector_base` and `icw3`, every input masked.
    const fn new(is_master: bool, vector_base: u8, icw3: u8) -> Self {
        Self {
            irr: 0,
            lines: 0,
            level_mask: 0,
            isr: 0,
            imr: 0xFF,
            vector_base,
            icw3,
            step: InitStep::Ready,
            icw4_expected: false,
            single: false,
            auto_eoi: false,
            rotate_on_auto_eoi: false,
            special_fully_nested: false,
            special_mask: false,
            read_isr: false,
            poll: false,
            lowest_priority: 7,
            is_master,
        }
    }

    /// The requests as IRR shows them: edge latches for edge inputs, the line
    /// itself for level inputs.
    fn requests(&self) -> u8 {
        (self.irr & !self.level_mask) | (self.lines & self.level_mask)
    }

    /// Drives input `ir` to `level`; a rising edge latches a request.
    fn set_line(&mut self, ir: u8, level: bool) {
        let bit = 1u8 << (ir & 7);
        if level {
            if self.lines & bit == 0 {
                self.irr |= bit;
            }
            self.lines |= bit;
        } else {
            self.lines &= !bit;
        }
    }

    fn set_level_mask(&mut self, mask: u8) {
        // A request latched under the old sense must not leak into the new.
        self.irr &= !(self.level_mask ^ mask);
        self.level_mask = mask;
    }

    /// Priority rank of `ir`: 0 is the highest.
    fn rank(&self, ir: u8) -> u8 {
        ir.wrapping_sub(self.lowest_priority).wrapping_sub(1) & 7
    }

    /// The highest-priority input among `bits`.
    fn highest(&self, bits: u8) -> Option<u8> {
        (0..8).map(|i| (self.lowest_priority + 1 + i) & 7).find(|ir| bits & (1 << ir) != 0)
    }

    fn is_cascade(&self, ir: u8) -> bool {
        self.is_master && !self.single && self.icw3 & (1 << ir) != 0
    }

    /// The input INT is asserted for, if any: the highest-priority unmasked
    /// request that outranks everything in service.
    fn pending_ir(&self) -> Option<u8> {
        let ir = self.highest(self.requests() & !self.imr)?;
        let mut in_service = self.isr;
        if self.special_mask {
            // Masked levels do not hold off anything in special mask mode.
            in_service &= !self.imr;
        }
        match self.highest(in_service) {
            None => Some(ir),
            Some(busy) if self.rank(ir) < self.rank(busy) => Some(ir),
            // Special fully nested mode lets a cascade input interrupt itself.
            Some(busy) if busy == ir && self.special_fully_nested && self.is_cascade(ir) => Some(ir),
            Some(_) => None,
        }
    }

    /// The INTA cycle for the input `pending_ir` chose, or for nothing:
    /// returns the input whose vector goes on the bus, or 7 for a spurious
    /// interrupt (which sets no ISR bit).
    fn acknowledge(&mut self) -> u8 {
        let Some(ir) = self.pending_ir() else {
            return 7;
        };
        let bit = 1u8 << ir;
        self.irr &= !bit;
        if self.auto_eoi {
            if self.rotate_on_auto_eoi {
                self.lowest_priority = ir;
            }
        } else {
            self.isr |= bit;
        }
        ir
    }

    fn vector(&self, ir: u8) -> u8 {
        self.vector_base | (ir & 7)
    }

    fn read(&mut self, data_port: bool) -> u8 {
        if data_port {
            return self.imr;
        }
        if self.poll {
            // A poll read is this chip's INTA: it reports and acknowledges.
            self.poll = false;
            return match self.pending_ir() {
                Some(_) => POLL_INTERRUPT | self.acknowledge(),
                None => 0,
            };
        }
        if self.read_isr {
            self.isr
        } else {
            self.requests()
        }
    }

    fn write(&mut self, data_port: bool, value: u8) {
        if !data_port {
            if value & ICW1 != 0 {
                self.icw1(value);
            } else if value & OCW3 != 0 {
                self.ocw3(value);
            } else {
                self.ocw2(value);
            }
            return;
        }
        match self.step {
            InitStep::Ready => self.imr = value,
            InitStep::Icw2 => {
                self.vector_base = value & 0xF8;
                self.step = if !self.single {
                    InitStep::Icw3
                } else if self.icw4_expected {
                    InitStep::Icw4
                } else {
                    InitStep::Ready
                };
            }
            InitStep::Icw3 => {
                self.icw3 = value;
                self.step = if self.icw4_expected { InitStep::Icw4 } else { InitStep::Ready };
            }
            InitStep::Icw4 => {
                // Bit 0 (8086 mode) and the buffered-mode bits change nothing here.
                self.auto_eoi = value & ICW4_AEOI != 0;
                self.special_fully_nested = value & ICW4_SFNM != 0;
                self.step = InitStep::Ready;
            }
        }
    }

    fn icw1(&mut self, value: u8) {
        // Edge detection restarts: a line already high must rise again.
        self.irr = 0;
        self.isr = 0;
        self.imr = 0;
        self.lowest_priority = 7;
        self.special_mask = false;
        self.read_isr = false;
        self.poll = false;
        self.rotate_on_auto_eoi = false;
        self.icw4_expected = value & ICW1_IC4 != 0;
        self.single = value & ICW1_SNGL != 0;
        if !self.icw4_expected {
            self.auto_eoi = false;
            self.special_fully_nested = false;
        }
        if self.is_master {
            self.icw3 = 0;
        }
        self.step = InitStep::Icw2;
    }

    fn ocw2(&mut self, value: u8) {
        let level = value & 7;
        match value >> 5 {
            // Non-specific EOI, with or without rotation.
            0b001 | 0b101 => {
                if let Some(ir) = self.highest(self.isr) {
                    self.isr &= !(1 << ir);
                    if value >> 5 == 0b101 {
                        self.lowest_priority = ir;
                    }
                }
            }
            // Specific EOI, with or without rotation.
            0b011 | 0b111 => {
                self.isr &= !(1 << level);
                if value >> 5 == 0b111 {
                    self.lowest_priority = level;
                }
            }
            0b100 => self.rotate_on_auto_eoi = true,
            0b000 => self.rotate_on_auto_eoi = false,
            0b110 => self.lowest_priority = level,
            // 0b010: no operation.
            _ => {}
        }
    }

    fn ocw3(&mut self, value: u8) {
        if value & OCW3_ESMM != 0 {
            self.special_mask = value & OCW3_SMM != 0;
        }
        self.poll = value & OCW3_POLL != 0;
        if value & OCW3_RR != 0 {
            self.read_isr = value & OCW3_RIS != 0;
        }
    }
}

/// The master/slave pair with its ELCR, as on the PC.
#[derive(Clone, Debug)]
pub struct DualPic {
    master: Pic8259,
    slave: Pic8259,
    elcr: [u8; 2],
}

impl Default for DualPic {
    fn default() -> Self {
        Self::new()
    }
}

impl DualPic {
    /// The pair as a BIOS leaves it: master vectors 0x08–0x0F, slave
    /// 0x70–0x77, cascaded on IR2, everything masked, all inputs edge-triggered.
    pub const fn new() -> Self {
        let mut master = Pic8259::new(true, 0x08, 1 << CASCADE_IR);
        master.level_mask = 1 << CASCADE_IR;
        Self { master, slave: Pic8259::new(false, 0x70, CASCADE_IR), elcr: [0, 0] }
    }

    /// Reads one of the ports 0x20, 0x21, 0xA0, 0xA1, 0x4D0 or 0x4D1.
    /// Returns `None` for any other port.
    pub fn read(&mut self, port: u16) -> Option<u8> {
        let value = match port {
            MASTER_CMD | MASTER_DATA => self.master.read(port == MASTER_DATA),
            SLAVE_CMD | SLAVE_DATA => self.slave.read(port == SLAVE_DATA),
            ELCR_MASTER => self.elcr[0],
            ELCR_SLAVE => self.elcr[1],
            _ => return None,
        };
        self.update_cascade();
        Some(value)
    }

    /// Writes one of the PIC or ELCR ports; returns false for any other port.
    pub fn write(&mut self, port: u16, value: u8) -> bool {
        match port {
            MASTER_CMD | MASTER_DATA => self.master.write(port == MASTER_DATA, value),
            SLAVE_CMD | SLAVE_DATA => self.slave.write(port == SLAVE_DATA, value),
            ELCR_MASTER => {
                self.elcr[0] = value & ELCR_MASTER_WRITABLE;
                self.master.set_level_mask(self.elcr[0] | 1 << CASCADE_IR);
            }
            ELCR_SLAVE => {
                self.elcr[1] = value & ELCR_SLAVE_WRITABLE;
                self.slave.set_level_mask(self.elcr[1]);
            }
            _ => return false,
        }
        self.update_cascade();
        true
    }

    /// Drives ISA interrupt line `irq` (0–15). IRQ 2 does not exist on the
    /// ISA bus (the master's IR2 carries the slave), so it is ignored.
    pub fn set_irq_level(&mut self, irq: u8, level: bool) {
        match irq {
            0..=7 if irq != CASCADE_IR => self.master.set_line(irq, level),
            8..=15 => {
                self.slave.set_line(irq - 8, level);
                self.update_cascade();
            }
            _ => {}
        }
    }

    /// True if `irq` is masked in its chip's IMR (or, for a slave line, the
    /// master masks the cascade).
    pub fn irq_masked(&self, irq: u8) -> bool {
        match irq {
            0..=7 => self.master.imr & (1 << irq) != 0,
            8..=15 => self.slave.imr & (1 << (irq - 8)) != 0 || self.master.imr & (1 << CASCADE_IR) != 0,
            _ => true,
        }
    }

    /// The vector an INTA cycle would return now, if the master's INT is
    /// asserted.
    pub fn pending_vector(&self) -> Option<u8> {
        let ir = self.master.pending_ir()?;
        if self.master.is_cascade(ir) {
            let slave_ir = self.slave.pending_ir().unwrap_or(7);
            Some(self.slave.vector(slave_ir))
        } else {
            Some(self.master.vector(ir))
        }
    }

    /// The INTA cycle: moves the chosen request from IRR to ISR (unless in
    /// auto-EOI) and returns its vector. Returns `None` if INT is not asserted.
    pub fn acknowledge(&mut self) -> Option<u8> {
        self.master.pending_ir()?;
        let ir = self.master.acknowledge();
        let vector = if self.master.is_cascade(ir) {
            let slave_ir = self.slave.acknowledge();
            self.slave.vector(slave_ir)
        } else {
            self.master.vector(ir)
        };
        self.update_cascade();
        Some(vector)
    }

    /// Feeds the slave's INT output to the master's IR2.
    fn update_cascade(&mut self) {
        let int = self.slave.pending_ir().is_some();
        self.master.set_line(CASCADE_IR, int);
    }
}

/// The pair's command and data ports, and the ELCR.
pub const PIC_PORTS: [Range; 3] =
    [Range::new(MASTER_CMD as u64, 2), Range::new(SLAVE_CMD as u64, 2), Range::new(ELCR_MASTER as u64, 2)];

/// The PIC pair takes the interrupt lines from the board, which hands them
/// over before every access; its masks decide which timer deadlines count.
impl BusDevice for DualPic {
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8], cx: &mut Ctx) {
        bus::read_bytes(offset, data, |at| self.read((base + at) as u16).unwrap_or(0xFF));
        cx.timers_changed();
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8], cx: &mut Ctx) {
        bus::write_bytes(offset, data, |at, v| {
            self.write((base + at) as u16, v);
        });
        cx.timers_changed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux's init_8259A: vectors 0x30/0x38, cascade on IR2, normal EOI.
    fn linux_init(pic: &mut DualPic, auto_eoi: bool) {
        pic.write(MASTER_DATA, 0xFF);
        pic.write(MASTER_CMD, 0x11);
        pic.write(MASTER_DATA, 0x30);
        pic.write(MASTER_DATA, 0x04);
        pic.write(MASTER_DATA, if auto_eoi { 0x03 } else { 0x01 });
        pic.write(SLAVE_CMD, 0x11);
        pic.write(SLAVE_DATA, 0x38);
        pic.write(SLAVE_DATA, 0x02);
        pic.write(SLAVE_DATA, 0x01);
        pic.write(MASTER_DATA, 0x00);
        pic.write(SLAVE_DATA, 0x00);
    }

    fn pulse(pic: &mut DualPic, irq: u8) {
        pic.set_irq_level(irq, true);
        pic.set_irq_level(irq, false);
    }

    fn read_isr(pic: &mut DualPic, cmd: u16) -> u8 {
        pic.write(cmd, 0x0B);
        let v = pic.read(cmd).unwrap();
        pic.write(cmd, 0x0A);
        v
    }

    #[test]
    fn starts_with_everything_masked_and_nothing_pending() {
        let mut pic = DualPic::new();
        pulse(&mut pic, 0);
        assert_eq!(pic.pending_vector(), None);
        assert_eq!(pic.acknowledge(), None);
        assert_eq!(pic.read(MASTER_DATA), Some(0xFF));
        assert_eq!(pic.read(SLAVE_DATA), Some(0xFF));
    }

    #[test]
    fn init_sequence_sets_vectors_and_clears_mask_as_linux_probe_expects() {
        let mut pic = DualPic::new();
        linux_init(&mut pic, false);
        pic.write(MASTER_DATA, 0x5A);
        assert_eq!(pic.read(MASTER_DATA), Some(0x5A), "IMR reads back");
        pic.write(MASTER_DATA, 0);
        pulse(&mut pic, 3);
        assert_eq!(pic.pending_vector(), Some(0x33));
        // IRQ 9 arrives through IR2, which outranks IR3.
        pulse(&mut pic, 9);
        assert_eq!(pic.acknowledge(), Some(0x39));
        assert_eq!(pic.pending_vector(), None);
        pic.write(SLAVE_CMD, 0x20);
        pic.write(MASTER_CMD, 0x20);
        assert_eq!(pic.acknowledge(), Some(0x33));
    }

    #[test]
    fn edge_request_latches_on_the_rising_edge_only() {
        let mut pic = DualPic::new();
        linux_init(&mut pic, false);
        pic.set_irq_level(4, true);
        assert_eq!(pic.acknowledge(), Some(0x34));
        pic.write(MASTER_CMD, 0x20);
        // Still high: no new edge, no new request.
        pic.set_irq_level(4, true);
        assert_eq!(pic.pending_vector(), None);
        pic.set_irq_level(4, false);
        pic.set_irq_level(4, true);
        assert_eq!(pic.pending_vector(), Some(0x34));
    }

    #[test]
    fn lower_number_wins_and_in_service_blocks_equal_or_lower_priority() {
        let mut pic = DualPic::new();
        linux_init(&mut pic, false);
        pulse(&mut pic, 4);
        assert_eq!(pic.acknowledge(), Some(0x34));
        pulse(&mut pic, 5);
        pulse(&mut pic, 4);
        assert_eq!(pic.pending_vector(), None, "IR4 in service holds off IR4, IR5");
        pulse(&mut pic, 1);
        assert_eq!(pic.acknowledge(), Some(0x31), "IR1 nests over IR4");
        assert_eq!(read_isr(&mut pic, MASTER_CMD), 0x12);
        pic.write(MASTER_CMD, 0x20); // non-specific EOI ends IR1
        assert_eq!(read_isr(&mut pic, MASTER_CMD), 0x10);
        assert_eq!(pic.pending_vector(), None);
        pic.write(MASTER_CMD, 0x64); // specific EOI for IR4
        assert_eq!(pic.acknowledge(), Some(0x34));
        pic.write(MASTER_CMD, 0x20);
        assert_eq!(pic.acknowledge(), Some(0x35));
    }

    #[test]
    fn masked_requests_stay_in_irr_until_unmasked() {
        let mut pic = DualPic::new();
        linux_init(&mut pic, false);
        pic.write(MASTER_DATA, 0x01);
        pulse(&mut pic, 0);
        assert_eq!(pic.pending_vector(), None);
        assert_eq!(pic.read(MASTER_CMD), Some(0x01), "IRR shows the request");
        assert!(pic.irq_masked(0));
        pic.write(MASTER_DATA, 0x00);
        assert_eq!(pic.acknowledge(), Some(0x30));
        assert_eq!(pic.read(MASTER_CMD), Some(0x00));
    }

    #[test]
    fn slave_interrupt_goes_through_master_ir2_and_needs_both_eois() {
        let mut pic = DualPic::new();
        linux_init(&mut pic, false);
        pulse(&mut pic, 12);
        assert_eq!(pic.pending_vector(), Some(0x3C));
        assert_eq!(pic.acknowledge(), Some(0x3C));
        assert_eq!(read_isr(&mut pic, MASTER_CMD), 0x04);
        assert_eq!(read_isr(&mut pic, SLAVE_CMD), 0x10);
        pulse(&mut pic, 8);
        assert_eq!(pic.pending_vector(), None, "master IR2 in service");
        pic.write(SLAVE_CMD, 0x64);
        pic.write(MASTER_CMD, 0x62);
        assert_eq!(pic.acknowledge(), Some(0x38));
        // Masking the cascade masks every slave line.
        pic.write(MASTER_DATA, 0x04);
        assert!(pic.irq_masked(9));
    }

    #[test]
    fn slave_request_waiting_behind_lower_priority_in_service_is_not_lost() {
        let mut pic = DualPic::new();
        linux_init(&mut pic, false);
        pulse(&mut pic, 14);
        assert_eq!(pic.acknowledge(), Some(0x3E));
        pulse(&mut pic, 15);
        pic.write(SLAVE_CMD, 0x20);
        pic.write(MASTER_CMD, 0x20);
        assert_eq!(pic.acknowledge(), Some(0x3F));
    }

    #[test]
    fn auto_eoi_leaves_isr_clear() {
        let mut pic = DualPic::new();
        linux_init(&mut pic, true);
        pulse(&mut pic, 0);
        assert_eq!(pic.acknowledge(), Some(0x30));
        assert_eq!(read_isr(&mut pic, MASTER_CMD), 0);
        pulse(&mut pic, 0);
        assert_eq!(pic.acknowledge(), Some(0x30), "no EOI needed");
    }

    #[test]
    fn spurious_irq7_and_irq15_come_from_an_empty_inta() {
        let mut chip = Pic8259::new(true, 0x30, 0x04);
        chip.imr = 0;
        assert_eq!(chip.acknowledge(), 7);
        assert_eq!(chip.isr, 0, "a spurious IR7 sets no ISR bit");
        // The master chose the cascade, but the slave has nothing left.
        let mut pic = DualPic::new();
        linux_init(&mut pic, false);
        pic.master.set_line(CASCADE_IR, false);
        pic.master.level_mask = 0;
        pic.master.irr = 1 << CASCADE_IR;
        assert_eq!(pic.pending_vector(), Some(0x3F));
        assert_eq!(pic.acknowledge(), Some(0x3F));
        assert_eq!(read_isr(&mut pic, SLAVE_CMD), 0);
        assert_eq!(read_isr(&mut pic, MASTER_CMD), 0x04, "master still needs its EOI");
    }

    #[test]
    fn poll_command_acknowledges_the_highest_request() {
        let mut pic = DualPic::new();
        linux_init(&mut pic, false);
        pulse(&mut pic, 6);
        pic.write(MASTER_CMD, 0x0C);
        assert_eq!(pic.read(MASTER_CMD), Some(0x86));
        assert_eq!(read_isr(&mut pic, MASTER_CMD), 0x40);
        pic.write(MASTER_CMD, 0x0C);
        assert_eq!(pic.read(MASTER_CMD), Some(0x00));
    }

    #[test]
    fn rotation_and_set_priority_change_the_order() {
        let mut pic = DualPic::new();
        linux_init(&mut pic, false);
        pic.write(MASTER_CMD, 0xC3); // IR3 lowest, IR4 highest
        pulse(&mut pic, 1);
        pulse(&mut pic, 5);
        assert_eq!(pic.acknowledge(), Some(0x35));
        pic.write(MASTER_CMD, 0xA0); // rotate on non-specific EOI: IR5 lowest
        assert_eq!(pic.acknowledge(), Some(0x31));
        pic.write(MASTER_CMD, 0xE1); // rotate on specific EOI of IR1
        pulse(&mut pic, 1);
        pulse(&mut pic, 7);
        assert_eq!(pic.acknowledge(), Some(0x37), "IR1 is now lowest");
    }

    #[test]
    fn special_mask_mode_lets_lower_levels_in() {
        let mut pic = DualPic::new();
        linux_init(&mut pic, false);
        pulse(&mut pic, 3);
        assert_eq!(pic.acknowledge(), Some(0x33));
        pulse(&mut pic, 5);
        assert_eq!(pic.pending_vector(), None);
        pic.write(MASTER_DATA, 0x08);
        pic.write(MASTER_CMD, 0x68); // set special mask mode
        assert_eq!(pic.pending_vector(), Some(0x35));
        pic.write(MASTER_CMD, 0x48); // reset special mask mode
        assert_eq!(pic.pending_vector(), None);
    }

    #[test]
    fn elcr_makes_a_line_level_triggered_and_keeps_fixed_edge_bits() {
        let mut pic = DualPic::new();
        linux_init(&mut pic, false);
        pic.write(ELCR_MASTER, 0xFF);
        pic.write(ELCR_SLAVE, 0xFF);
        assert_eq!(pic.read(ELCR_MASTER), Some(0xF8));
        assert_eq!(pic.read(ELCR_SLAVE), Some(0xDE));
        pic.set_irq_level(5, true);
        assert_eq!(pic.acknowledge(), Some(0x35));
        pic.write(MASTER_CMD, 0x20);
        assert_eq!(pic.pending_vector(), Some(0x35), "a held level requests again");
        pic.set_irq_level(5, false);
        assert_eq!(pic.pending_vector(), None, "a dropped level withdraws");
    }

    #[test]
    fn reinitialisation_forgets_requests_and_in_service() {
        let mut pic = DualPic::new();
        linux_init(&mut pic, false);
        pulse(&mut pic, 3);
        pulse(&mut pic, 4);
        pic.acknowledge();
        linux_init(&mut pic, false);
        assert_eq!(pic.pending_vector(), None);
        assert_eq!(read_isr(&mut pic, MASTER_CMD), 0);
    }

    #[test]
    fn rotate_in_auto_eoi_makes_the_served_level_lowest() {
        let mut pic = DualPic::new();
        linux_init(&mut pic, true);
        pic.write(MASTER_CMD, 0x40);
        pic.write(MASTER_CMD, 0x80); // rotate in auto-EOI
        pulse(&mut pic, 3);
        assert_eq!(pic.acknowledge(), Some(0x33));
        pulse(&mut pic, 0);
        pulse(&mut pic, 4);
        assert_eq!(pic.acknowledge(), Some(0x34), "IR3 became lowest, IR4 highest");
        pic.write(MASTER_CMD, 0x00);
    }
}
