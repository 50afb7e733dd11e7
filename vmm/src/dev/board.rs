//! The guest platform: every legacy device behind one I/O-port interface.
//!
//! The VMM hands each port access to [`Board::io_read`] or [`Board::io_write`]
//! together with the current guest time. Multi-byte accesses to 8-bit devices
//! are split into byte accesses at consecutive ports, as the ISA bus does;
//! only the PCI address register (a dword at 0xCF8) is wider than a byte.
//!
//! Before and after every access the board brings the interrupt lines up to
//! date: the PIT's and RTC's for the guest time, the UART's and i8042's for
//! their state. The VMM then asks [`Board::pending_vector`] whether to inject
//! and calls [`Board::acknowledge`] when it does. Guest time only moves
//! forward: a time earlier than one already seen is taken as that one.

use super::kbc::{self, Kbc, KBD_IRQ, MOUSE_IRQ};
use super::pci::{self, PciHost};
use super::pic::{self, DualPic};
use super::pit::{self, Pit, PIT_HZ};
use super::rtc::{self, Rtc, RTC_IRQ};
use super::time::ticks_at;
use super::uart::{self, Uart, COM1_IRQ};

/// What the board is built with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoardConfig {
    /// The wall-clock time (seconds since the Unix epoch, UTC) the RTC shows
    /// at guest time 0.
    pub rtc_epoch_seconds: u64,
    /// Bytes of guest RAM, for the CMOS memory-size bytes.
    pub ram_size: u64,
}

/// Something the guest asked of the machine that the VMM must carry out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoardEvent {
    /// Reset the machine: a write of 0x06/0x0E to port 0xCF9, the i8042
    /// reset pulse (command 0xFE), or the fast-reset bit of port 0x92.
    Reset,
    /// Turn the machine off. No device raises it yet: the board has no ACPI
    /// PM block, so a guest booted with `acpi=off` just halts.
    PowerOff,
}

/// How often the guest touched one port that no device answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnassignedPort {
    pub port: u16,
    pub count: u64,
}

/// Distinct unassigned ports remembered individually; the rest only count
/// towards the total.
pub const UNASSIGNED_PORT_SLOTS: usize = 16;

/// Port 0x61, NMI status and control ("system control port B").
pub const PORT_NMI_STATUS_CONTROL: u16 = 0x61;
/// Port 0x80, the POST-code port, which Linux also writes as an I/O delay.
pub const PORT_POST: u16 = 0x80;
/// Port 0x92, system control port A: fast A20 and fast reset.
pub const PORT_SYSTEM_CONTROL_A: u16 = 0x92;
/// Port 0xCF9, the PIIX reset control register (byte accesses only).
pub const PORT_RESET_CONTROL: u16 = 0xCF9;

const COM1_LAST: u16 = uart::COM1_BASE + 7;
const PCI_ADDRESS_LAST: u16 = pci::CONFIG_ADDRESS + 3;
const PCI_DATA_LAST: u16 = pci::CONFIG_DATA + 3;

/// Port 0x61: the bits the guest may write (gate 2, speaker data, and the
/// parity/channel-check disables).
const P61_WRITABLE: u8 = 0x0F;
const P61_GATE2: u8 = 0x01;
const P61_REFRESH: u8 = 0x10;
const P61_OUT2: u8 = 0x20;
/// The refresh bit toggles once per refresh cycle: every 18 PIT clocks
/// (15.09 µs), the count a BIOS gives counter 1.
const REFRESH_PIT_CLOCKS: u64 = 18;

const P92_FAST_RESET: u8 = 0x01;
const P92_A20: u8 = 0x02;

/// Reset control: SYS_RST and FULL_RST are stored; RST_CPU starts a reset.
const RCR_STORED: u8 = 0x0A;
const RCR_RESET_CPU: u8 = 0x04;

/// The per-port tally of unassigned accesses.
#[derive(Clone, Debug)]
struct UnassignedLog {
    total: u64,
    ports: [UnassignedPort; UNASSIGNED_PORT_SLOTS],
    len: usize,
}

impl UnassignedLog {
    const fn new() -> Self {
        Self { total: 0, ports: [UnassignedPort { port: 0, count: 0 }; UNASSIGNED_PORT_SLOTS], len: 0 }
    }

    fn record(&mut self, port: u16) {
        self.total += 1;
        if let Some(entry) = self.ports[..self.len].iter_mut().find(|e| e.port == port) {
            entry.count += 1;
        } else if self.len < UNASSIGNED_PORT_SLOTS {
            self.ports[self.len] = UnassignedPort { port, count: 1 };
            self.len += 1;
        }
    }
}

/// The guest's legacy platform.
#[derive(Clone, Debug)]
pub struct Board {
    /// The latest guest time seen.
    now_ns: u64,
    /// The time the PIT and RTC were last brought up to (u64::MAX: never, or
    /// one of them was accessed since, so their state must be re-read).
    timers_synced_ns: u64,
    /// The last answer of `next_deadline_ns` (outer `None`: not known), good
    /// until that deadline passes or the guest touches a timer or the PIC.
    deadline: Option<Option<u64>>,
    /// PIT OUT0 as of `timers_synced_ns`.
    irq0_level: bool,
    uart: Uart,
    pic: DualPic,
    pit: Pit,
    rtc: Rtc,
    pci: PciHost,
    kbc: Kbc,
    port61: u8,
    port92: u8,
    reset_control: u8,
    event: Option<BoardEvent>,
    unassigned: UnassignedLog,
}

impl Board {
    /// A board in its power-on state, as firmware would leave it: PIC
    /// vectors 0x08/0x70 with every line masked, the PIT's counter 0 at
    /// 18.2 Hz, the UART idle, the RTC showing `config.rtc_epoch_seconds`.
    pub fn new(config: BoardConfig) -> Self {
        Self {
            now_ns: 0,
            timers_synced_ns: u64::MAX,
            deadline: None,
            irq0_level: false,
            uart: Uart::new(),
            pic: DualPic::new(),
            pit: Pit::new(),
            rtc: Rtc::new(config.rtc_epoch_seconds, config.ram_size),
            pci: PciHost::new(),
            kbc: Kbc::new(),
            port61: 0,
            port92: P92_A20,
            reset_control: 0,
            event: None,
            unassigned: UnassignedLog::new(),
        }
    }

    /// A guest `in` of `size` bytes (1, 2 or 4; anything else is taken as 1)
    /// from `port` at guest time `now_ns`. Bytes no device answers read 0xFF.
    pub fn io_read(&mut self, port: u16, size: u8, now_ns: u64) -> u32 {
        self.update(now_ns);
        let width = access_width(size);
        let value = if port == pci::CONFIG_ADDRESS && width == 4 {
            self.pci.address()
        } else {
            let mut value = 0u32;
            let mut unassigned = None;
            for i in 0..width {
                let byte_port = port.wrapping_add(i);
                let byte = self.read_byte(byte_port, width == 1).unwrap_or_else(|| {
                    unassigned.get_or_insert(byte_port);
                    0xFF
                });
                value |= u32::from(byte) << (8 * i);
            }
            if let Some(first) = unassigned {
                self.unassigned.record(first);
            }
            value
        };
        self.sync_irq_lines();
        value
    }

    /// A guest `out` of the low `size` bytes (1, 2 or 4; anything else is
    /// taken as 1) of `value` to `port` at guest time `now_ns`. Bytes no
    /// device answers are dropped.
    pub fn io_write(&mut self, port: u16, size: u8, value: u32, now_ns: u64) {
        self.update(now_ns);
        let width = access_width(size);
        if port == pci::CONFIG_ADDRESS && width == 4 {
            self.pci.set_address(value);
        } else {
            let mut unassigned = None;
            for i in 0..width {
                let byte_port = port.wrapping_add(i);
                let byte = (value >> (8 * i)) as u8;
                if !self.write_byte(byte_port, byte, width == 1) {
                    unassigned.get_or_insert(byte_port);
                }
            }
            if let Some(first) = unassigned {
                self.unassigned.record(first);
            }
        }
        self.sync_irq_lines();
    }

    /// Advances the time-driven devices to `now_ns` and updates the
    /// interrupt lines. Call it before [`Board::pending_vector`] when no port
    /// access brought the board up to date.
    pub fn update(&mut self, now_ns: u64) {
        self.now_ns = self.now_ns.max(now_ns);
        self.sync_irq_lines();
    }

    /// The guest time at which the next timer interrupt (PIT IRQ 0, RTC
    /// IRQ 8) will be requested, so the VMM can wake a halted vCPU; `None`
    /// if no unmasked timer will fire without further programming. Always
    /// later than `now_ns`.
    pub fn next_deadline_ns(&mut self, now_ns: u64) -> Option<u64> {
        // The VMM asks at every exit; the answer changes only when the
        // deadline passes or the guest reprograms a timer or a mask.
        if let Some(known) = self.deadline {
            if known.is_none_or(|t| t > self.now_ns.max(now_ns)) {
                return known;
            }
        }
        self.update(now_ns);
        let now = self.now_ns;
        let pit = (!self.pic.irq_masked(0)).then(|| self.pit.next_irq0_ns(now)).flatten();
        let rtc = (!self.pic.irq_masked(RTC_IRQ)).then(|| self.rtc.next_irq_ns(now)).flatten();
        let deadline = match (pit, rtc) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // A deadline past the end of representable time is no deadline.
        let deadline = deadline.filter(|&t| t > now);
        self.deadline = Some(deadline);
        deadline
    }

    /// The vector the PIC pair would deliver now, if it asserts INT.
    pub fn pending_vector(&self) -> Option<u8> {
        self.pic.pending_vector()
    }

    /// The CPU's interrupt acknowledge: takes the pending interrupt into
    /// service and returns its vector, or `None` if none is pending.
    pub fn acknowledge(&mut self) -> Option<u8> {
        self.pic.acknowledge()
    }

    /// Offers a byte typed on the host console to COM1. Returns false if the
    /// UART cannot take it now; the VMM keeps it and offers it again later.
    pub fn uart_receive(&mut self, byte: u8) -> bool {
        let taken = self.uart.receive(byte);
        self.sync_irq_lines();
        taken
    }

    /// Hands every byte the guest sent to COM1 to `sink`, oldest first.
    pub fn drain_output(&mut self, sink: impl FnMut(u8)) {
        self.uart.drain_output(sink);
        self.sync_irq_lines();
    }

    /// Takes the oldest byte the guest sent to COM1.
    pub fn pop_output(&mut self) -> Option<u8> {
        let byte = self.uart.pop_output();
        self.sync_irq_lines();
        byte
    }

    /// Bytes the guest wrote to COM1 while its transmitter read as full
    /// (ignoring LSR.THRE), which were lost.
    pub fn uart_output_dropped(&self) -> u64 {
        self.uart.output_dropped()
    }

    /// Takes the pending reset or power-off request, if any.
    pub fn take_event(&mut self) -> Option<BoardEvent> {
        self.event.take()
    }

    /// Accesses to ports no device answers, in total.
    pub fn unassigned_accesses(&self) -> u64 {
        self.unassigned.total
    }

    /// The first [`UNASSIGNED_PORT_SLOTS`] distinct unassigned ports
    /// touched, with their access counts. A multi-byte access counts once,
    /// at its first unassigned byte.
    pub fn unassigned_ports(&self) -> &[UnassignedPort] {
        &self.unassigned.ports[..self.unassigned.len]
    }

    /// True while the guest has NMIs disabled through port 0x70 bit 7.
    pub fn nmi_disabled(&self) -> bool {
        self.rtc.nmi_disabled()
    }

    fn raise(&mut self, event: BoardEvent) {
        // The first request wins: the VM stops on it.
        self.event.get_or_insert(event);
    }

    /// Brings every device's interrupt line into the PIC for `self.now_ns`.
    ///
    /// The timer devices are advanced only when time moved or one of them was
    /// accessed since: a VM exit brings the board up to date several times
    /// at the same instant, and the timer arithmetic is the costly part.
    fn sync_irq_lines(&mut self) {
        let now = self.now_ns;
        if self.timers_synced_ns != now {
            let irq0 = self.pit.poll_irq0(now);
            if irq0.rose {
                // One edge for however many periods passed since the last poll.
                self.pic.set_irq_level(0, false);
                self.pic.set_irq_level(0, true);
            }
            self.irq0_level = irq0.level;
            self.rtc.advance(now);
            self.timers_synced_ns = now;
        }
        self.pic.set_irq_level(0, self.irq0_level);
        self.pic.set_irq_level(RTC_IRQ, self.rtc.irq_level());
        self.pic.set_irq_level(COM1_IRQ, self.uart.irq_level());
        self.pic.set_irq_level(KBD_IRQ, self.kbc.irq1());
        self.pic.set_irq_level(MOUSE_IRQ, self.kbc.irq12());
        if self.kbc.take_reset_request() {
            self.raise(BoardEvent::Reset);
        }
    }

    /// An access to the PIT, port 0x61 or the RTC may change their outputs:
    /// the next sync must look at them again. Those and the PIC's masks
    /// also decide the next deadline.
    fn note_timer_access(&mut self, port: u16) {
        if matches!(port, pit::PIT_BASE..=pit::PIT_CONTROL | PORT_NMI_STATUS_CONTROL | rtc::RTC_INDEX | rtc::RTC_DATA) {
            self.timers_synced_ns = u64::MAX;
            self.deadline = None;
        } else if matches!(port, pic::MASTER_CMD | pic::MASTER_DATA | pic::SLAVE_CMD | pic::SLAVE_DATA) {
            self.deadline = None;
        }
    }

    /// One byte of a read; `None` if no device answers `port`. `lone_byte`
    /// says the whole access was one byte wide.
    fn read_byte(&mut self, port: u16, lone_byte: bool) -> Option<u8> {
        let now = self.now_ns;
        self.note_timer_access(port);
        Some(match port {
            pic::MASTER_CMD
            | pic::MASTER_DATA
            | pic::SLAVE_CMD
            | pic::SLAVE_DATA
            | pic::ELCR_MASTER
            | pic::ELCR_SLAVE => self.pic.read(port)?,
            pit::PIT_BASE..=pit::PIT_CONTROL => self.pit.read(port - pit::PIT_BASE, now),
            kbc::KBC_DATA | kbc::KBC_COMMAND => self.kbc.read(port),
            PORT_NMI_STATUS_CONTROL => {
                let mut value = self.port61;
                if ticks_at(now, PIT_HZ) / REFRESH_PIT_CLOCKS % 2 == 1 {
                    value |= P61_REFRESH;
                }
                if self.pit.out2(now) {
                    value |= P61_OUT2;
                }
                value
            }
            rtc::RTC_INDEX | rtc::RTC_DATA => self.rtc.read(port, now),
            PORT_POST => 0xFF,
            PORT_SYSTEM_CONTROL_A => self.port92,
            uart::COM1_BASE..=COM1_LAST => self.uart.read(port - uart::COM1_BASE),
            PORT_RESET_CONTROL if lone_byte => self.reset_control,
            // The rest of the address register's ports do nothing.
            pci::CONFIG_ADDRESS..=PCI_ADDRESS_LAST => 0xFF,
            pci::CONFIG_DATA..=PCI_DATA_LAST => self.pci.read_data(port),
            _ => return None,
        })
    }

    /// One byte of a write; false if no device answers `port`.
    fn write_byte(&mut self, port: u16, value: u8, lone_byte: bool) -> bool {
        let now = self.now_ns;
        self.note_timer_access(port);
        match port {
            pic::MASTER_CMD
            | pic::MASTER_DATA
            | pic::SLAVE_CMD
            | pic::SLAVE_DATA
            | pic::ELCR_MASTER
            | pic::ELCR_SLAVE => return self.pic.write(port, value),
            pit::PIT_BASE..=pit::PIT_CONTROL => self.pit.write(port - pit::PIT_BASE, value, now),
            kbc::KBC_DATA | kbc::KBC_COMMAND => self.kbc.write(port, value),
            PORT_NMI_STATUS_CONTROL => {
                self.port61 = value & P61_WRITABLE;
                self.pit.set_gate2(value & P61_GATE2 != 0, now);
            }
            rtc::RTC_INDEX | rtc::RTC_DATA => self.rtc.write(port, value, now),
            PORT_POST => {}
            PORT_SYSTEM_CONTROL_A => {
                self.port92 = value & P92_A20;
                if value & P92_FAST_RESET != 0 {
                    self.raise(BoardEvent::Reset);
                }
            }
            uart::COM1_BASE..=COM1_LAST => self.uart.write(port - uart::COM1_BASE, value),
            PORT_RESET_CONTROL if lone_byte => {
                self.reset_control = value & RCR_STORED;
                if value & RCR_RESET_CPU != 0 {
                    self.raise(BoardEvent::Reset);
                }
            }
            pci::CONFIG_ADDRESS..=PCI_ADDRESS_LAST => {}
            pci::CONFIG_DATA..=PCI_DATA_LAST => self.pci.write_data(port, value),
            _ => return false,
        }
        true
    }
}

/// Bytes in an access of `size`.
fn access_width(size: u8) -> u16 {
    match size {
        2 => 2,
        4 => 4,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::time::time_of_tick;
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;

    fn board() -> Board {
        Board::new(BoardConfig { rtc_epoch_seconds: 1_709_214_330, ram_size: 512 << 20 })
    }

    fn outb(b: &mut Board, port: u16, value: u8, now: u64) {
        b.io_write(port, 1, u32::from(value), now);
    }

    fn inb(b: &mut Board, port: u16, now: u64) -> u8 {
        b.io_read(port, 1, now) as u8
    }

    /// Linux's init_8259A with vectors 0x30/0x38, everything unmasked.
    fn init_pic(b: &mut Board) {
        for (port, value) in [
            (0x21, 0xFF),
            (0x20, 0x11),
            (0x21, 0x30),
            (0x21, 0x04),
            (0x21, 0x01),
            (0xA0, 0x11),
            (0xA1, 0x38),
            (0xA1, 0x02),
            (0xA1, 0x01),
            (0x21, 0x00),
            (0xA1, 0x00),
        ] {
            outb(b, port, value, 0);
        }
    }

    #[test]
    fn unassigned_ports_read_all_ones_by_size_and_are_counted() {
        let mut b = board();
        assert_eq!(b.io_read(0x2E, 1, 0), 0xFF);
        assert_eq!(b.io_read(0x2E, 2, 0), 0xFFFF);
        assert_eq!(b.io_read(0x2E, 4, 0), 0xFFFF_FFFF);
        b.io_write(0x2E, 1, 0x55, 0);
        assert_eq!(b.io_read(0x2E, 1, 0), 0xFF, "writes are dropped");
        for port in [0x2F, 0x4E, 0x4F, 0x2E9, 0x2F9, 0x3E9] {
            assert_eq!(inb(&mut b, port, 0), 0xFF, "port {port:#x}");
        }
        assert_eq!(b.unassigned_accesses(), 11);
        assert_eq!(b.unassigned_ports()[0], UnassignedPort { port: 0x2E, count: 5 });
        assert_eq!(b.unassigned_ports().len(), 7);
    }

    #[test]
    fn unassigned_table_keeps_the_first_ports_and_counts_the_rest() {
        let mut b = board();
        for port in 0x1000..0x1020u16 {
            b.io_read(port, 1, 0);
        }
        assert_eq!(b.unassigned_accesses(), 32);
        assert_eq!(b.unassigned_ports().len(), UNASSIGNED_PORT_SLOTS);
    }

    #[test]
    fn assigned_ports_are_not_counted() {
        let mut b = board();
        for port in [0x20, 0x21, 0x40, 0x43, 0x60, 0x61, 0x64, 0x70, 0x71, 0x80, 0x3F8, 0x3FF, 0xCFC] {
            b.io_read(port, 1, 0);
        }
        outb(&mut b, 0x80, 0x12, 0);
        b.io_write(0xCFB, 1, 0x01, 0);
        assert_eq!(b.unassigned_accesses(), 0);
    }

    #[test]
    fn pci_config_through_the_board_by_dword_word_and_byte() {
        let mut b = board();
        // Linux's pci_check_type1.
        outb(&mut b, 0xCFB, 0x01, 0);
        let saved = b.io_read(0xCF8, 4, 0);
        b.io_write(0xCF8, 4, 0x8000_0000, 0);
        assert_eq!(b.io_read(0xCF8, 4, 0), 0x8000_0000);
        b.io_write(0xCF8, 4, saved, 0);
        b.io_write(0xCF8, 4, 0x8000_0000, 0);
        assert_eq!(b.io_read(0xCFC, 4, 0), 0x1237_8086);
        assert_eq!(b.io_read(0xCFE, 2, 0), 0x1237);
        assert_eq!(b.io_read(0xCFD, 1, 0), 0x80);
        b.io_write(0xCF8, 4, 0x8000_0808, 0); // device 1
        assert_eq!(b.io_read(0xCFC, 4, 0), 0xFFFF_FFFF);
        assert_eq!(b.io_read(0xCF8, 2, 0), 0xFFFF, "only dwords reach the address");
        assert_eq!(b.io_read(0xCF8, 4, 0), 0x8000_0808);
    }

    #[test]
    fn reset_requests_from_cf9_i8042_and_port_92() {
        let mut b = board();
        assert_eq!(b.take_event(), None);
        outb(&mut b, 0xCF9, 0x02, 0);
        assert_eq!(b.take_event(), None, "SYS_RST alone only selects the kind");
        assert_eq!(inb(&mut b, 0xCF9, 0), 0x02);
        outb(&mut b, 0xCF9, 0x06, 0);
        assert_eq!(b.take_event(), Some(BoardEvent::Reset));
        assert_eq!(b.take_event(), None);
        outb(&mut b, 0xCF9, 0x0E, 0);
        assert_eq!(b.take_event(), Some(BoardEvent::Reset));
        outb(&mut b, 0x64, 0xFE, 0);
        assert_eq!(b.take_event(), Some(BoardEvent::Reset));
        outb(&mut b, 0x92, 0x03, 0);
        assert_eq!(b.take_event(), Some(BoardEvent::Reset));
        assert_eq!(inb(&mut b, 0x92, 0), 0x02);
        // A word write over 0xCF8 is not a reset-control access.
        b.io_write(0xCF8, 2, 0x0600, 0);
        assert_eq!(b.take_event(), None);
    }

    #[test]
    fn pit_periodic_irq0_reaches_the_pic_and_is_not_duplicated_after_a_gap() {
        let mut b = board();
        init_pic(&mut b);
        // Linux's periodic clockevent: mode 2, LATCH for HZ=1000.
        outb(&mut b, 0x43, 0x34, 0);
        outb(&mut b, 0x40, (1193u16 & 0xFF) as u8, 0);
        outb(&mut b, 0x40, (1193u16 >> 8) as u8, 0);
        b.update(MS / 2);
        assert_eq!(b.pending_vector(), None);
        let deadline = b.next_deadline_ns(MS / 2).unwrap();
        assert_eq!(deadline, time_of_tick(1 + 1193, PIT_HZ));
        b.update(deadline);
        assert_eq!(b.pending_vector(), Some(0x30));
        assert_eq!(b.acknowledge(), Some(0x30));
        outb(&mut b, 0x20, 0x20, deadline);
        // The guest halts for a second: one request, not a thousand.
        b.update(deadline + 1000 * MS);
        assert_eq!(b.acknowledge(), Some(0x30));
        outb(&mut b, 0x20, 0x20, deadline + 1000 * MS);
        assert_eq!(b.pending_vector(), None);
        let next = b.next_deadline_ns(deadline + 1000 * MS).unwrap();
        assert!(next > deadline + 1000 * MS && next <= deadline + 1001 * MS);
    }

    #[test]
    fn masked_irq0_sets_no_deadline_but_its_request_waits_in_irr() {
        let mut b = board();
        init_pic(&mut b);
        outb(&mut b, 0x21, 0x01, 0);
        outb(&mut b, 0x43, 0x34, 0);
        outb(&mut b, 0x40, 100, 0);
        outb(&mut b, 0x40, 0, 0);
        assert_eq!(b.next_deadline_ns(0), None);
        b.update(MS);
        assert_eq!(b.pending_vector(), None);
        outb(&mut b, 0x21, 0x00, MS);
        assert_eq!(b.pending_vector(), Some(0x30));
    }

    #[test]
    fn port61_bit5_follows_channel2_one_shot_like_pit_calibrate_tsc() {
        let mut b = board();
        let latch: u16 = 11932; // 10 ms
        let t0 = 7 * MS;
        let p61 = inb(&mut b, 0x61, t0);
        outb(&mut b, 0x61, (p61 & !0x02) | 0x01, t0);
        outb(&mut b, 0x43, 0xB0, t0);
        outb(&mut b, 0x42, latch as u8, t0);
        outb(&mut b, 0x42, (latch >> 8) as u8, t0);
        let written = ticks_at(t0, PIT_HZ);
        let high_at = time_of_tick(written + 1 + u64::from(latch), PIT_HZ);
        assert_eq!(inb(&mut b, 0x61, high_at - 1) & 0x20, 0);
        assert_eq!(inb(&mut b, 0x61, high_at) & 0x20, 0x20);
        assert_eq!(inb(&mut b, 0x61, high_at) & 0x0F, 0x01, "gate on, speaker off");
    }

    #[test]
    fn port61_refresh_bit_toggles_with_time() {
        let mut b = board();
        let mut seen = [false; 2];
        let mut t = 0;
        while t < 100_000 {
            seen[usize::from(inb(&mut b, 0x61, t) & 0x10 != 0)] = true;
            t += 1_000;
        }
        assert_eq!(seen, [true, true]);
    }

    #[test]
    fn uart_interrupt_reaches_irq4_and_output_reaches_the_vmm() {
        let mut b = board();
        init_pic(&mut b);
        outb(&mut b, 0x3FC, 0x08, 0); // OUT2
        outb(&mut b, 0x3F9, 0x02, 0); // ETBEI
        assert_eq!(b.pending_vector(), Some(0x34));
        assert_eq!(b.acknowledge(), Some(0x34));
        assert_eq!(inb(&mut b, 0x3FA, 0) & 0x0F, 0x02);
        for byte in b"ok\n" {
            outb(&mut b, 0x3F8, *byte, 0);
        }
        let mut out = Vec::new();
        b.drain_output(|byte| out.push(byte));
        assert_eq!(out, b"ok\n");
        outb(&mut b, 0x3F9, 0x01, 0); // receive interrupts only
        outb(&mut b, 0x20, 0x20, 0);
        assert!(b.uart_receive(b'k'));
        assert_eq!(b.acknowledge(), Some(0x34));
        assert_eq!(inb(&mut b, 0x3F8, 0), b'k');
    }

    #[test]
    fn word_access_to_a_byte_device_reads_consecutive_registers() {
        let mut b = board();
        outb(&mut b, 0x3FB, 0x03, 0);
        outb(&mut b, 0x3FC, 0x0B, 0);
        assert_eq!(b.io_read(0x3FB, 2, 0), 0x0B03);
        // The dword straddles COM1's last port and an unassigned one.
        assert_eq!(b.io_read(0x3FF, 4, 0) >> 8, 0x00FF_FFFF);
        assert_eq!(b.unassigned_ports(), &[UnassignedPort { port: 0x400, count: 1 }]);
    }

    #[test]
    fn rtc_reads_through_the_board_and_time_never_goes_back() {
        let mut b = board();
        outb(&mut b, 0x70, 0x00, 5 * 1_000 * MS);
        assert_eq!(inb(&mut b, 0x71, 5 * 1_000 * MS), 0x35);
        // An earlier time is taken as the latest one seen.
        outb(&mut b, 0x70, 0x00, 0);
        assert_eq!(inb(&mut b, 0x71, 0), 0x35);
    }

    #[test]
    fn rtc_update_interrupt_reaches_irq8_through_the_slave() {
        let mut b = board();
        init_pic(&mut b);
        outb(&mut b, 0x21, 0x01, 0); // keep the PIT's 18.2 Hz out of the way
        outb(&mut b, 0x70, 0x0B, 0);
        outb(&mut b, 0x71, 0x12, 0); // UIE, 24 h
        let deadline = b.next_deadline_ns(0).unwrap();
        assert_eq!(deadline, 1_000 * MS);
        b.update(deadline);
        assert_eq!(b.acknowledge(), Some(0x38));
    }

    #[test]
    fn i8042_probe_sequence_finishes_without_waiting() {
        let mut b = board();
        // i8042_flush: nothing to flush.
        assert_eq!(inb(&mut b, 0x64, 0) & 0x01, 0);
        // Self-test.
        outb(&mut b, 0x64, 0xAA, 0);
        assert_eq!(inb(&mut b, 0x64, 0) & 0x03, 0x01);
        assert_eq!(inb(&mut b, 0x60, 0), 0x55);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Read { port: u16, size: u8, dt: u64 },
        Write { port: u16, size: u8, value: u32, dt: u64 },
        Update { dt: u64 },
        Deadline { dt: u64 },
        Acknowledge,
        Receive(u8),
        Drain,
    }

    fn interesting_port() -> impl Strategy<Value = u16> {
        prop_oneof![
            prop::sample::select(vec![
                0x20u16, 0x21, 0xA0, 0xA1, 0x4D0, 0x4D1, 0x40, 0x41, 0x42, 0x43, 0x60, 0x61, 0x64, 0x70, 0x71, 0x80,
                0x92, 0xCF8, 0xCF9, 0xCFA, 0xCFB, 0xCFC, 0xCFD, 0xCFE, 0xCFF, 0x3F8, 0x3F9, 0x3FA, 0x3FB, 0x3FC, 0x3FD,
                0x3FE, 0x3FF,
            ]),
            any::<u16>(),
        ]
    }

    fn time_step() -> impl Strategy<Value = u64> {
        prop_oneof![Just(0u64), 0u64..2_000, 0u64..10_000_000, 0u64..100_000_000_000, Just(u64::MAX / 4),]
    }

    fn op() -> impl Strategy<Value = Op> {
        let size = prop::sample::select(vec![1u8, 2, 4, 0, 3]);
        prop_oneof![
            (interesting_port(), size.clone(), time_step()).prop_map(|(port, size, dt)| Op::Read { port, size, dt }),
            (interesting_port(), size, any::<u32>(), time_step()).prop_map(|(port, size, value, dt)| Op::Write {
                port,
                size,
                value,
                dt
            }),
            time_step().prop_map(|dt| Op::Update { dt }),
            time_step().prop_map(|dt| Op::Deadline { dt }),
            Just(Op::Acknowledge),
            any::<u8>().prop_map(Op::Receive),
            Just(Op::Drain),
        ]
    }

    proptest! {
        #[test]
        fn random_port_traffic_never_panics_and_reads_fit_their_size(
            ops in prop::collection::vec(op(), 1..300)
        ) {
            let mut b = board();
            let mut now = 0u64;
            for op in ops {
                match op {
                    Op::Read { port, size, dt } => {
                        now = now.saturating_add(dt);
                        let value = b.io_read(port, size, now);
                        let bits = 8 * u32::from(access_width(size));
                        prop_assert!(bits == 32 || value >> bits == 0, "{value:#x} from a {size}-byte read");
                    }
                    Op::Write { port, size, value, dt } => {
                        now = now.saturating_add(dt);
                        b.io_write(port, size, value, now);
                    }
                    Op::Update { dt } => {
                        now = now.saturating_add(dt);
                        b.update(now);
                    }
                    Op::Deadline { dt } => {
                        now = now.saturating_add(dt);
                        if let Some(deadline) = b.next_deadline_ns(now) {
                            prop_assert!(deadline > now, "deadline {deadline} at {now}");
                        }
                    }
                    Op::Acknowledge => {
                        let pending = b.pending_vector();
                        prop_assert_eq!(b.acknowledge(), pending);
                    }
                    Op::Receive(byte) => {
                        b.uart_receive(byte);
                    }
                    Op::Drain => b.drain_output(|_| {}),
                }
                b.take_event();
            }
        }
    }
}
