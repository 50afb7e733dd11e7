//! A 16550A UART, the PC's COM1 (ports 0x3F8–0x3FF, IRQ 4).
//!
//! The model follows the 16550A data sheet's register set, with one
//! simplification: the transmitter is infinitely fast. A byte written to THR
//! goes at once to the output queue that the VMM drains to the real serial
//! port, so THR empties again at once. The output queue stands for the wire:
//! when fewer than [`TX_FIFO_SIZE`] bytes of room are left in it, THR reads as
//! full (LSR.THRE = LSR.TEMT = 0) until the VMM drains it, which is how a slow
//! host port pushes back on the guest without losing bytes.
//!
//! Received bytes come from the VMM through [`Uart::receive`] into a 16-byte
//! FIFO (one byte when FIFOs are off). The character-timeout interrupt is
//! reported as soon as data sits below the trigger level, as if the four
//! character times had already passed.
//!
//! The interrupt output reaches IRQ 4 only while MCR.OUT2 is set and the UART
//! is not in loopback, as on the PC's COM ports.

use super::queue::ByteQueue;
use crate::bus::{self, BusDevice, Ctx, Range};

/// First port of COM1.
pub const COM1_BASE: u16 = 0x3F8;
/// COM1's ISA interrupt line.
pub const COM1_IRQ: u8 = 4;
/// Depth of the 16550A's FIFOs.
pub const TX_FIFO_SIZE: usize = 16;
/// Bytes the output queue holds before THR reads as full.
pub const OUTPUT_CAPACITY: usize = 1024;

const RX_FIFO_SIZE: usize = 16;

// Register offsets from the base port.
const RBR_THR_DLL: u16 = 0;
const IER_DLM: u16 = 1;
const IIR_FCR: u16 = 2;
const LCR: u16 = 3;
const MCR: u16 = 4;
const LSR: u16 = 5;
const MSR: u16 = 6;
// Offset 7 is the scratch register.

// Interrupt enable register.
const IER_ERBFI: u8 = 0x01;
const IER_ETBEI: u8 = 0x02;
const IER_ELSI: u8 = 0x04;
const IER_EDSSI: u8 = 0x08;
const IER_WRITABLE: u8 = 0x0F;

// Interrupt identification codes (bits 3..0), highest priority first.
const IIR_LINE_STATUS: u8 = 0x06;
const IIR_RX_DATA: u8 = 0x04;
const IIR_RX_TIMEOUT: u8 = 0x0C;
const IIR_THRE: u8 = 0x02;
const IIR_MODEM_STATUS: u8 = 0x00;
const IIR_NO_INTERRUPT: u8 = 0x01;
const IIR_FIFOS_ENABLED: u8 = 0xC0;

// FIFO control register.
const FCR_ENABLE: u8 = 0x01;
const FCR_CLEAR_RX: u8 = 0x02;

// Line control register.
const LCR_DLAB: u8 = 0x80;

// Modem control register.
const MCR_DTR: u8 = 0x01;
const MCR_RTS: u8 = 0x02;
const MCR_OUT1: u8 = 0x04;
const MCR_OUT2: u8 = 0x08;
const MCR_LOOP: u8 = 0x10;
const MCR_WRITABLE: u8 = 0x1F;

// Line status register.
const LSR_DR: u8 = 0x01;
const LSR_OE: u8 = 0x02;
const LSR_PE: u8 = 0x04;
const LSR_FE: u8 = 0x08;
const LSR_BI: u8 = 0x10;
const LSR_THRE: u8 = 0x20;
const LSR_TEMT: u8 = 0x40;
const LSR_RX_FIFO_ERROR: u8 = 0x80;

// Modem status register: deltas in the low nibble, lines in the high one.
const MSR_DCTS: u8 = 0x01;
const MSR_DDSR: u8 = 0x02;
const MSR_TERI: u8 = 0x04;
const MSR_DDCD: u8 = 0x08;
const MSR_CTS: u8 = 0x10;
const MSR_DSR: u8 = 0x20;
const MSR_RI: u8 = 0x40;
const MSR_DCD: u8 = 0x80;

/// The modem lines a connected terminal presents outside loopback.
const MSR_LINES_CONNECTED: u8 = MSR_CTS | MSR_DSR | MSR_DCD;

/// One 16550A.
#[derive(Clone, Debug)]
pub struct Uart {
    ier: u8,
    lcr: u8,
    mcr: u8,
    scr: u8,
    dll: u8,
    dlm: u8,
    /// Sticky LSR error bits (OE, PE, FE, BI), cleared by reading LSR.
    lsr_errors: u8,
    /// MSR delta bits, cleared by reading MSR.
    msr_deltas: u8,
    fifo_enabled: bool,
    /// Receive FIFO trigger level, in bytes.
    rx_trigger: usize,
    rx: ByteQueue<RX_FIFO_SIZE>,
    /// The byte RBR returns when the receiver is empty: the last one read.
    last_rx: u8,
    /// The THRE interrupt latch: set when THR empties (or ETBEI is written
    /// while it is empty), cleared by reading IIR while THRE is the reported
    /// source, or by writing THR.
    thre_pending: bool,
    output: ByteQueue<OUTPUT_CAPACITY>,
    /// Bytes the guest wrote to THR while it was full, which were lost.
    output_dropped: u64,
}

impl Default for Uart {
    fn default() -> Self {
        Self::new()
    }
}

impl Uart {
    /// A UART in its reset state: 115200 baud divisor, 8N1, FIFOs off.
    pub const fn new() -> Self {
        Self {
            ier: 0,
            lcr: 0x03,
            mcr: 0,
            scr: 0,
            dll: 0x01,
            dlm: 0x00,
            lsr_errors: 0,
            msr_deltas: 0,
            fifo_enabled: false,
            rx_trigger: 1,
            rx: ByteQueue::new(),
            last_rx: 0,
            thre_pending: false,
            output: ByteQueue::new(),
            output_dropped: 0,
        }
    }

    /// Reads the register at `offset` (0..=7) from the base port.
    pub fn read(&mut self, offset: u16) -> u8 {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset & 7 {
            RBR_THR_DLL if dlab => self.dll,
            RBR_THR_DLL => {
                if let Some(byte) = self.rx.pop() {
                    self.last_rx = byte;
                }
                self.last_rx
            }
            IER_DLM if dlab => self.dlm,
            IER_DLM => self.ier,
            IIR_FCR => {
                let id = self.interrupt_id();
                if id == IIR_THRE {
                    self.thre_pending = false;
                }
                id | if self.fifo_enabled { IIR_FIFOS_ENABLED } else { 0 }
            }
            LCR => self.lcr,
            MCR => self.mcr,
            LSR => {
                let value = self.lsr();
                self.lsr_errors = 0;
                value
            }
            MSR => {
                let value = self.msr_lines() | self.msr_deltas;
                self.msr_deltas = 0;
                value
            }
            // Offset 7: the scratch register.
            _ => self.scr,
        }
    }

    /// Writes `value` to the register at `offset` (0..=7) from the base port.
    pub fn write(&mut self, offset: u16, value: u8) {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset & 7 {
            RBR_THR_DLL if dlab => self.dll = value,
            RBR_THR_DLL => self.transmit(value),
            IER_DLM if dlab => self.dlm = value,
            IER_DLM => {
                self.ier = value & IER_WRITABLE;
                // Enabling the THRE interrupt while THR is empty raises it.
                if self.ier & IER_ETBEI != 0 && self.thr_empty() {
                    self.thre_pending = true;
                }
            }
            IIR_FCR => self.write_fcr(value),
            LCR => self.lcr = value,
            MCR => {
                let before = self.msr_lines();
                self.mcr = value & MCR_WRITABLE;
                self.note_modem_changes(before, self.msr_lines());
            }
            // LSR and MSR are read-only here (their writes are factory tests).
            LSR | MSR => {}
            // Offset 7: the scratch register.
            _ => self.scr = value,
        }
    }

    /// Offers one byte from the host to the receiver. Returns false, keeping
    /// nothing, if the receive FIFO is full or the UART is in loopback (its
    /// serial input is then disconnected); the VMM should offer it again later.
    pub fn receive(&mut self, byte: u8) -> bool {
        if self.loopback() || self.rx.len() >= self.rx_capacity() {
            return false;
        }
        self.rx.push(byte)
    }

    /// Hands every transmitted byte to `sink`, oldest first.
    pub fn drain_output(&mut self, mut sink: impl FnMut(u8)) {
        while let Some(byte) = self.pop_output() {
            sink(byte);
        }
    }

    /// Takes the oldest transmitted byte, for a VMM that drains a byte at a
    /// time.
    pub fn pop_output(&mut self) -> Option<u8> {
        let was_empty = self.thr_empty();
        let byte = self.output.pop();
        if !was_empty && self.thr_empty() {
            // THR just drained onto the wire.
            self.thre_pending = true;
        }
        byte
    }

    /// Transmitted bytes waiting for the VMM.
    pub fn output_len(&self) -> usize {
        self.output.len()
    }

    /// Bytes lost because the guest wrote THR while it read as full.
    pub fn output_dropped(&self) -> u64 {
        self.output_dropped
    }

    /// The level of the UART's interrupt as seen on IRQ 4.
    pub fn irq_level(&self) -> bool {
        self.interrupt_id() != IIR_NO_INTERRUPT && self.mcr & MCR_OUT2 != 0 && self.mcr & MCR_LOOP == 0
    }

    fn loopback(&self) -> bool {
        self.mcr & MCR_LOOP != 0
    }

    fn rx_capacity(&self) -> usize {
        if self.fifo_enabled {
            RX_FIFO_SIZE
        } else {
            1
        }
    }

    /// True when THR (and the transmit FIFO behind it) can take a full FIFO's
    /// worth of bytes. In loopback the wire is not used, so it always can.
    fn thr_empty(&self) -> bool {
        self.loopback() || self.output.free() >= TX_FIFO_SIZE
    }

    fn transmit(&mut self, byte: u8) {
        self.thre_pending = false;
        if self.loopback() {
            if self.rx.len() >= self.rx_capacity() {
                self.lsr_errors |= LSR_OE;
            } else {
                self.rx.push(byte);
            }
        } else if !self.output.push(byte) {
            self.output_dropped += 1;
        }
        // The byte left THR at once; if there is room for more, THR is
        // empty again.
        if self.thr_empty() {
            self.thre_pending = true;
        }
    }

    fn write_fcr(&mut self, value: u8) {
        let enable = value & FCR_ENABLE != 0;
        if enable != self.fifo_enabled {
            // Switching the FIFOs on or off empties them.
            self.rx.clear();
            self.fifo_enabled = enable;
        }
        if value & FCR_CLEAR_RX != 0 {
            self.rx.clear();
        }
        // FCR_CLEAR_TX has nothing to clear: bytes leave THR at once.
        self.rx_trigger = if enable { [1, 4, 8, 14][usize::from(value >> 6)] } else { 1 };
    }

    fn lsr(&self) -> u8 {
        let mut value = self.lsr_errors;
        if !self.rx.is_empty() {
            value |= LSR_DR;
        }
        if self.thr_empty() {
            value |= LSR_THRE | LSR_TEMT;
        }
        if self.fifo_enabled && self.lsr_errors & (LSR_PE | LSR_FE | LSR_BI) != 0 {
            value |= LSR_RX_FIFO_ERROR;
        }
        value
    }

    /// MSR bits 7..4: in loopback the modem outputs are wired back to the
    /// inputs (RTS→CTS, DTR→DSR, OUT1→RI, OUT2→DCD).
    fn msr_lines(&self) -> u8 {
        if !self.loopback() {
            return MSR_LINES_CONNECTED;
        }
        let mut lines = 0;
        if self.mcr & MCR_RTS != 0 {
            lines |= MSR_CTS;
        }
        if self.mcr & MCR_DTR != 0 {
            lines |= MSR_DSR;
        }
        if self.mcr & MCR_OUT1 != 0 {
            lines |= MSR_RI;
        }
        if self.mcr & MCR_OUT2 != 0 {
            lines |= MSR_DCD;
        }
        lines
    }

    fn note_modem_changes(&mut self, before: u8, after: u8) {
        let changed = before ^ after;
        if changed & MSR_CTS != 0 {
            self.msr_deltas |= MSR_DCTS;
        }
        if changed & MSR_DSR != 0 {
            self.msr_deltas |= MSR_DDSR;
        }
        // TERI flags the trailing edge of RI only.
        if before & MSR_RI != 0 && after & MSR_RI == 0 {
            self.msr_deltas |= MSR_TERI;
        }
        if changed & MSR_DCD != 0 {
            self.msr_deltas |= MSR_DDCD;
        }
    }

    /// The highest-priority pending interrupt, as IIR bits 3..0.
    fn interrupt_id(&self) -> u8 {
        if self.ier & IER_ELSI != 0 && self.lsr_errors != 0 {
            IIR_LINE_STATUS
        } else if self.ier & IER_ERBFI != 0 && !self.rx.is_empty() {
            if self.fifo_enabled && self.rx.len() < self.rx_trigger {
                IIR_RX_TIMEOUT
            } else {
                IIR_RX_DATA
            }
        } else if self.ier & IER_ETBEI != 0 && self.thre_pending {
            IIR_THRE
        } else if self.ier & IER_EDSSI != 0 && self.msr_deltas != 0 {
            IIR_MODEM_STATUS
        } else {
            IIR_NO_INTERRUPT
        }
    }
}

/// COM1's ports.
pub const COM1_PORTS: Range = Range::new(COM1_BASE as u64, 8);

impl BusDevice for Uart {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8], cx: &mut Ctx) {
        bus::read_bytes(offset, data, |at| self.read(at as u16));
        cx.set_irq(COM1_IRQ, self.irq_level());
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8], cx: &mut Ctx) {
        bus::write_bytes(offset, data, |at, v| self.write(at as u16, v));
        cx.set_irq(COM1_IRQ, self.irq_level());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCR: u16 = 7;

    fn drained(uart: &mut Uart) -> Vec<u8> {
        let mut out = Vec::new();
        uart.drain_output(|b| out.push(b));
        out
    }

    #[test]
    fn ier_keeps_only_the_four_enable_bits_as_linux_probe_expects() {
        let mut u = Uart::new();
        u.write(IER_DLM, 0);
        assert_eq!(u.read(IER_DLM), 0);
        u.write(IER_DLM, 0xFF);
        assert_eq!(u.read(IER_DLM), 0x0F);
    }

    #[test]
    fn loopback_probe_reads_cts_and_dcd_from_rts_and_out2() {
        // Linux's autoconfig: MCR = LOOP | RTS | OUT2, expects MSR & 0xF0 == 0x90.
        let mut u = Uart::new();
        u.write(MCR, MCR_LOOP | 0x0A);
        assert_eq!(u.read(MSR) & 0xF0, 0x90);
        u.write(MCR, MCR_LOOP | MCR_DTR | MCR_OUT1);
        assert_eq!(u.read(MSR) & 0xF0, MSR_DSR | MSR_RI);
        u.write(MCR, 0);
        assert_eq!(u.read(MSR) & 0xF0, MSR_LINES_CONNECTED);
    }

    #[test]
    fn linux_autoconfig_sequence_identifies_a_plain_16550a() {
        let mut u = Uart::new();
        // No EFR behind LCR = 0x80 or 0xBF: offset 2 reads IIR, never 0.
        u.write(LCR, 0xBF);
        u.write(IIR_FCR, 0);
        u.write(LCR, 0);
        u.write(IIR_FCR, FCR_ENABLE);
        assert_eq!(u.read(IIR_FCR) >> 6, 3, "FIFOs present: 16550A class");
        for lcr in [0x80, 0xBF] {
            u.write(LCR, lcr);
            assert_ne!(u.read(IIR_FCR), 0, "LCR {lcr:#x}");
        }
        // Not a NatSemi SuperIO: offset 2 under LCR = 0xE0 does not track
        // MCR.LOOP.
        u.write(LCR, 0);
        let mcr = u.read(MCR);
        u.write(LCR, 0xE0);
        assert_eq!((u.read(IIR_FCR) ^ mcr) & MCR_LOOP, 0);
        u.write(LCR, 0);
        u.write(MCR, mcr ^ MCR_LOOP);
        u.write(LCR, 0xE0);
        assert_eq!((u.read(IIR_FCR) ^ mcr) & MCR_LOOP, 0);
        u.write(LCR, 0);
        u.write(MCR, mcr);
        // Not a 16750: FCR bit 5 never shows as IIR bit 5.
        for lcr in [0x00, 0x80] {
            u.write(LCR, lcr);
            u.write(IIR_FCR, FCR_ENABLE | 0x20);
            assert_eq!(u.read(IIR_FCR) & 0xE0, 0xC0, "LCR {lcr:#x}");
        }
        // Not an XScale: IER bit 6 does not stick.
        u.write(LCR, 0);
        u.write(IER_DLM, 0x40);
        assert_eq!(u.read(IER_DLM) & 0x40, 0);
    }

    #[test]
    fn loopback_sends_transmitted_bytes_to_the_receiver_not_the_wire() {
        let mut u = Uart::new();
        u.write(MCR, MCR_LOOP);
        u.write(RBR_THR_DLL, 0x5A);
        assert_eq!(u.read(LSR) & LSR_DR, LSR_DR);
        assert_eq!(u.read(RBR_THR_DLL), 0x5A);
        assert_eq!(u.read(LSR) & LSR_DR, 0);
        assert!(drained(&mut u).is_empty());
        assert!(!u.receive(1), "host input is disconnected in loopback");
    }

    #[test]
    fn loopback_overrun_sets_oe_until_lsr_is_read() {
        let mut u = Uart::new();
        u.write(MCR, MCR_LOOP);
        u.write(RBR_THR_DLL, 1);
        u.write(RBR_THR_DLL, 2); // non-FIFO mode holds one byte
        assert_eq!(u.read(LSR) & LSR_OE, LSR_OE);
        assert_eq!(u.read(LSR) & LSR_OE, 0);
        assert_eq!(u.read(RBR_THR_DLL), 1);
    }

    #[test]
    fn modem_status_deltas_interrupt_and_clear_on_msr_read() {
        let mut u = Uart::new();
        u.write(MCR, MCR_LOOP);
        // Entering loopback dropped CTS, DSR and DCD.
        assert_eq!(u.read(MSR), MSR_DCTS | MSR_DDSR | MSR_DDCD);
        assert_eq!(u.read(MSR), 0);
        u.write(IER_DLM, IER_EDSSI);
        u.write(MCR, MCR_LOOP | MCR_OUT1 | MCR_RTS);
        assert_eq!(u.read(IIR_FCR) & 0x0F, IIR_MODEM_STATUS);
        u.write(MCR, MCR_LOOP);
        let msr = u.read(MSR);
        assert_eq!(msr & 0x0F, MSR_DCTS | MSR_TERI, "msr {msr:#x}");
        assert_eq!(u.read(IIR_FCR) & 0x0F, IIR_NO_INTERRUPT);
    }

    #[test]
    fn divisor_latch_is_behind_dlab() {
        let mut u = Uart::new();
        u.write(LCR, LCR_DLAB | 0x03);
        u.write(0, 0x0C);
        u.write(1, 0x00);
        assert_eq!(u.read(0), 0x0C);
        u.write(LCR, 0x03);
        u.write(IER_DLM, IER_ERBFI);
        assert_eq!(u.read(IER_DLM), IER_ERBFI);
        u.write(LCR, LCR_DLAB | 0x03);
        assert_eq!((u.read(0), u.read(1)), (0x0C, 0x00));
        assert!(drained(&mut u).is_empty(), "DLL writes are not data");
    }

    #[test]
    fn scratch_and_lcr_read_back() {
        let mut u = Uart::new();
        u.write(SCR, 0xA5);
        u.write(LCR, 0x1B);
        assert_eq!(u.read(SCR), 0xA5);
        assert_eq!(u.read(LCR), 0x1B);
    }

    #[test]
    fn transmitted_bytes_reach_the_output_queue_in_order() {
        let mut u = Uart::new();
        for b in b"hello" {
            assert_eq!(u.read(LSR) & (LSR_THRE | LSR_TEMT), LSR_THRE | LSR_TEMT);
            u.write(RBR_THR_DLL, *b);
        }
        assert_eq!(drained(&mut u), b"hello");
    }

    #[test]
    fn fifo_enable_shows_in_iir_and_16750_bits_stay_clear() {
        let mut u = Uart::new();
        assert_eq!(u.read(IIR_FCR), IIR_NO_INTERRUPT);
        u.write(IIR_FCR, FCR_ENABLE | 0x20);
        assert_eq!(u.read(IIR_FCR), IIR_FIFOS_ENABLED | IIR_NO_INTERRUPT);
        u.write(IIR_FCR, 0);
        assert_eq!(u.read(IIR_FCR), IIR_NO_INTERRUPT);
    }

    #[test]
    fn thre_interrupt_dance_matches_linux_startup_test() {
        let mut u = Uart::new();
        u.write(MCR, MCR_OUT2);
        // Enabling ETBEI with THR empty raises THRE...
        u.write(IER_DLM, IER_ETBEI);
        assert!(u.irq_level());
        let iir1 = u.read(IIR_FCR);
        assert_eq!(iir1 & 0x0F, IIR_THRE);
        // ...reading IIR while THRE is the source clears it...
        assert_eq!(u.read(IIR_FCR) & 0x0F, IIR_NO_INTERRUPT);
        assert!(!u.irq_level());
        // ...and re-enabling ETBEI raises it again.
        u.write(IER_DLM, 0);
        u.write(IER_DLM, IER_ETBEI);
        assert_eq!(u.read(IIR_FCR) & 0x0F, IIR_THRE);
        // Writing THR clears it; the byte leaves at once, so THR empties and
        // THRE is raised again.
        u.write(RBR_THR_DLL, b'x');
        assert_eq!(u.read(IIR_FCR) & 0x0F, IIR_THRE);
        // With ETBEI off, nothing is reported.
        u.write(IER_DLM, 0);
        u.write(RBR_THR_DLL, b'y');
        assert_eq!(u.read(IIR_FCR) & 0x0F, IIR_NO_INTERRUPT);
        assert!(!u.irq_level());
    }

    #[test]
    fn full_output_queue_holds_thr_until_drained_then_raises_thre() {
        let mut u = Uart::new();
        u.write(MCR, MCR_OUT2);
        u.write(IER_DLM, IER_ETBEI);
        let mut written = 0;
        while u.read(LSR) & LSR_THRE != 0 {
            // Linux writes a FIFO's worth per THRE.
            for _ in 0..TX_FIFO_SIZE {
                u.write(RBR_THR_DLL, written as u8);
                written += 1;
            }
        }
        assert_eq!(written, OUTPUT_CAPACITY);
        assert_eq!(u.output_dropped(), 0);
        assert_eq!(u.read(IIR_FCR) & 0x0F, IIR_NO_INTERRUPT);
        assert!(!u.irq_level());
        let out = drained(&mut u);
        assert_eq!(out.len(), written);
        assert!(out.iter().enumerate().all(|(i, b)| *b == i as u8));
        assert!(u.irq_level(), "draining empties THR and raises THRE");
        assert_eq!(u.read(LSR) & LSR_THRE, LSR_THRE);
    }

    #[test]
    fn bytes_written_to_a_full_thr_are_counted_as_dropped() {
        let mut u = Uart::new();
        for i in 0..OUTPUT_CAPACITY + 3 {
            u.write(RBR_THR_DLL, i as u8);
        }
        assert_eq!(u.output_dropped(), 3);
        assert_eq!(u.output_len(), OUTPUT_CAPACITY);
    }

    #[test]
    fn receive_fills_the_fifo_and_refuses_when_full() {
        let mut u = Uart::new();
        assert!(u.receive(1));
        assert!(!u.receive(2), "without FIFOs the receiver holds one byte");
        assert_eq!(u.read(RBR_THR_DLL), 1);
        u.write(IIR_FCR, FCR_ENABLE);
        for i in 0..16 {
            assert!(u.receive(i));
        }
        assert!(!u.receive(16));
        for i in 0..16 {
            assert_eq!(u.read(RBR_THR_DLL), i);
        }
        assert_eq!(u.read(LSR) & LSR_DR, 0);
        assert_eq!(u.read(RBR_THR_DLL), 15, "an empty RBR repeats the last byte");
    }

    #[test]
    fn fcr_clear_rx_empties_the_receiver() {
        let mut u = Uart::new();
        u.write(IIR_FCR, FCR_ENABLE);
        u.receive(7);
        u.write(IIR_FCR, FCR_ENABLE | FCR_CLEAR_RX);
        assert_eq!(u.read(LSR) & LSR_DR, 0);
    }

    #[test]
    fn rx_interrupt_is_timeout_below_trigger_and_data_at_trigger() {
        let mut u = Uart::new();
        u.write(MCR, MCR_OUT2);
        u.write(IIR_FCR, FCR_ENABLE | 0x40); // trigger at 4 bytes
        u.write(IER_DLM, IER_ERBFI);
        assert!(!u.irq_level());
        u.receive(b'a');
        assert!(u.irq_level());
        assert_eq!(u.read(IIR_FCR) & 0x0F, IIR_RX_TIMEOUT);
        for b in b"bcd" {
            u.receive(*b);
        }
        assert_eq!(u.read(IIR_FCR) & 0x0F, IIR_RX_DATA);
        for _ in 0..4 {
            u.read(RBR_THR_DLL);
        }
        assert_eq!(u.read(IIR_FCR) & 0x0F, IIR_NO_INTERRUPT);
        assert!(!u.irq_level());
    }

    #[test]
    fn iir_reports_line_status_over_rx_over_thre_over_modem() {
        let mut u = Uart::new();
        u.write(IER_DLM, IER_ERBFI | IER_ETBEI | IER_ELSI | IER_EDSSI);
        // THRE pending (ETBEI written with THR empty) and a modem delta.
        u.write(MCR, MCR_LOOP | MCR_RTS);
        // Two bytes in a one-byte receiver: data plus an overrun.
        u.write(RBR_THR_DLL, 1);
        u.write(RBR_THR_DLL, 2);
        assert_eq!(u.read(IIR_FCR) & 0x0F, IIR_LINE_STATUS);
        u.read(LSR);
        assert_eq!(u.read(IIR_FCR) & 0x0F, IIR_RX_DATA);
        u.read(RBR_THR_DLL);
        assert_eq!(u.read(IIR_FCR) & 0x0F, IIR_THRE);
        assert_eq!(u.read(IIR_FCR) & 0x0F, IIR_MODEM_STATUS);
        u.read(MSR);
        assert_eq!(u.read(IIR_FCR) & 0x0F, IIR_NO_INTERRUPT);
    }

    #[test]
    fn irq_needs_out2_and_is_cut_in_loopback() {
        let mut u = Uart::new();
        u.write(IER_DLM, IER_ETBEI);
        assert!(!u.irq_level(), "OUT2 clear gates the interrupt");
        u.write(MCR, MCR_OUT2 | MCR_LOOP);
        assert!(!u.irq_level(), "loopback disconnects the interrupt");
        u.write(MCR, MCR_OUT2);
        assert!(u.irq_level());
    }
}
