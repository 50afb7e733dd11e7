//! The i8042 keyboard controller (data port 0x60, status/command port 0x64),
//! present but with no keyboard and no mouse plugged in.
//!
//! The controller answers every command at once (input buffer never full),
//! so a driver never waits out a timeout: the self-test returns 0x55, the
//! port tests pass, the command byte reads and writes, and the AUX loopback
//! command echoes through the output buffer as mouse data. A byte sent to the
//! keyboard or to the mouse finds no device: the controller answers 0xFE with
//! the timeout bit set, which Linux's atkbd and psmouse take as "nothing
//! there" without waiting.
//!
//! Pulsing output-port bit 0 (command 0xFE, or any 0xF0–0xFF with bit 0
//! clear) or writing the output port with bit 0 clear asks for a system reset.
//! IRQ 1 and IRQ 12 follow the output buffer, gated by the command byte.

use crate::bus::{self, BoardEvent, BusDevice, Ctx, Range};

/// The controller's data port.
pub const KBC_DATA: u16 = 0x60;
/// The controller's status (read) and command (write) port.
pub const KBC_COMMAND: u16 = 0x64;
/// The keyboard's ISA interrupt line.
pub const KBD_IRQ: u8 = 1;
/// The mouse's ISA interrupt line.
pub const MOUSE_IRQ: u8 = 12;

const STATUS_OBF: u8 = 0x01;
const STATUS_SYS: u8 = 0x04;
const STATUS_COMMAND: u8 = 0x08;
const STATUS_UNLOCKED: u8 = 0x10;
const STATUS_AUX_DATA: u8 = 0x20;
const STATUS_TIMEOUT: u8 = 0x40;

const CTR_KBD_INT: u8 = 0x01;
const CTR_AUX_INT: u8 = 0x02;
const CTR_SYS: u8 = 0x04;
const CTR_KBD_DISABLE: u8 = 0x10;
const CTR_AUX_DISABLE: u8 = 0x20;
/// The command byte a BIOS leaves: translation on, system flag, keyboard
/// interrupt enabled.
const CTR_DEFAULT: u8 = 0x45;

/// Output port: bit 0 is the reset line (low = reset), bit 1 the A20 gate.
const OUTPUT_PORT_DEFAULT: u8 = 0x03;
const OUTPUT_PORT_RESET: u8 = 0x01;

/// What a device with nothing attached answers.
const NO_DEVICE: u8 = 0xFE;

/// A byte in the output buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Output {
    byte: u8,
    aux: bool,
    timeout: bool,
}

/// The destination of the next byte written to the data port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DataFor {
    Keyboard,
    Ram(u8),
    OutputPort,
    KeyboardOutputBuffer,
    AuxOutputBuffer,
    AuxDevice,
}

/// The i8042.
#[derive(Clone, Debug)]
pub struct Kbc {
    /// The controller's 32 bytes of internal RAM; byte 0 is the command byte.
    ram: [u8; 32],
    output_port: u8,
    output: Option<Output>,
    /// What a data-port read returns when the buffer is empty: the last byte.
    last_output: u8,
    data_for: DataFor,
    last_write_was_command: bool,
    reset_requested: bool,
}

impl Default for Kbc {
    fn default() -> Self {
        Self::new()
    }
}

impl Kbc {
    pub const fn new() -> Self {
        let mut ram = [0u8; 32];
        ram[0] = CTR_DEFAULT;
        Self {
            ram,
            output_port: OUTPUT_PORT_DEFAULT,
            output: None,
            last_output: 0,
            data_for: DataFor::Keyboard,
            last_write_was_command: false,
            reset_requested: false,
        }
    }

    fn ctr(&self) -> u8 {
        self.ram[0]
    }

    /// Reads the data port (0x60) or the status register (0x64).
    pub fn read(&mut self, port: u16) -> u8 {
        if port == KBC_COMMAND {
            return self.status();
        }
        if let Some(out) = self.output.take() {
            self.last_output = out.byte;
        }
        self.last_output
    }

    /// Writes the data port (0x60) or the command register (0x64).
    pub fn write(&mut self, port: u16, value: u8) {
        if port == KBC_COMMAND {
            self.last_write_was_command = true;
            self.command(value);
        } else {
            self.last_write_was_command = false;
            self.data(value);
        }
    }

    /// Takes a pending reset request.
    pub fn take_reset_request(&mut self) -> bool {
        core::mem::take(&mut self.reset_requested)
    }

    /// The level of IRQ 1: keyboard data waiting, keyboard interrupt on.
    pub fn irq1(&self) -> bool {
        matches!(self.output, Some(out) if !out.aux) && self.ctr() & CTR_KBD_INT != 0
    }

    /// The level of IRQ 12: mouse data waiting, mouse interrupt on.
    pub fn irq12(&self) -> bool {
        matches!(self.output, Some(out) if out.aux) && self.ctr() & CTR_AUX_INT != 0
    }

    fn status(&self) -> u8 {
        let mut status = STATUS_UNLOCKED;
        if self.ctr() & CTR_SYS != 0 {
            status |= STATUS_SYS;
        }
        if self.last_write_was_command {
            status |= STATUS_COMMAND;
        }
        if let Some(out) = self.output {
            status |= STATUS_OBF;
            if out.aux {
                status |= STATUS_AUX_DATA;
            }
            if out.timeout {
                status |= STATUS_TIMEOUT;
            }
        }
        status
    }

    fn respond(&mut self, byte: u8) {
        self.output = Some(Output { byte, aux: false, timeout: false });
    }

    fn command(&mut self, command: u8) {
        self.data_for = DataFor::Keyboard;
        match command {
            0x20..=0x3F => self.respond(self.ram[usize::from(command & 0x1F)]),
            0x60..=0x7F => self.data_for = DataFor::Ram(command & 0x1F),
            0xA7 => self.ram[0] |= CTR_AUX_DISABLE,
            0xA8 => self.ram[0] &= !CTR_AUX_DISABLE,
            // AUX and keyboard interface tests: no error.
            0xA9 | 0xAB => self.respond(0x00),
            0xAA => {
                self.ram[0] |= CTR_SYS;
                self.respond(0x55);
            }
            0xAD => self.ram[0] |= CTR_KBD_DISABLE,
            0xAE => self.ram[0] &= !CTR_KBD_DISABLE,
            // Input port: keyboard not inhibited.
            0xC0 => self.respond(0x80),
            0xD0 => self.respond(self.output_port),
            0xD1 => self.data_for = DataFor::OutputPort,
            0xD2 => self.data_for = DataFor::KeyboardOutputBuffer,
            0xD3 => self.data_for = DataFor::AuxOutputBuffer,
            0xD4 => self.data_for = DataFor::AuxDevice,
            // Test inputs: clock and data low.
            0xE0 => self.respond(0x00),
            // Pulse the output-port bits whose mask bit is clear.
            0xF0..=0xFF if command & OUTPUT_PORT_RESET == 0 => self.reset_requested = true,
            _ => {}
        }
    }

    fn data(&mut self, value: u8) {
        let target = core::mem::replace(&mut self.data_for, DataFor::Keyboard);
        let (byte, aux, timeout) = match target {
            DataFor::Ram(index) => {
                self.ram[usize::from(index)] = value;
                return;
            }
            DataFor::OutputPort => {
                self.output_port = value;
                if value & OUTPUT_PORT_RESET == 0 {
                    self.reset_requested = true;
                }
                return;
            }
            DataFor::KeyboardOutputBuffer => (value, false, false),
            DataFor::AuxOutputBuffer => (value, true, false),
            DataFor::AuxDevice => (NO_DEVICE, true, true),
            DataFor::Keyboard => (NO_DEVICE, false, true),
        };
        self.output = Some(Output { byte, aux, timeout });
    }
}

/// The controller's two ports.
pub const KBC_PORTS: [Range; 2] = [Range::port(KBC_DATA), Range::port(KBC_COMMAND)];

impl Kbc {
    /// Drives IRQ 1 and IRQ 12, and passes on a reset request.
    fn drive(&mut self, cx: &mut Ctx) {
        cx.set_irq(KBD_IRQ, self.irq1());
        cx.set_irq(MOUSE_IRQ, self.irq12());
        if self.take_reset_request() {
            cx.request(BoardEvent::Reset);
        }
    }
}

impl BusDevice for Kbc {
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8], cx: &mut Ctx) {
        bus::read_bytes(offset, data, |at| self.read((base + at) as u16));
        self.drive(cx);
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8], cx: &mut Ctx) {
        bus::write_bytes(offset, data, |at, v| self.write((base + at) as u16, v));
        self.drive(cx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux's i8042_command: write the command, any parameter, then read
    /// the answer if the status says there is one.
    fn command(kbc: &mut Kbc, cmd: u8, param: Option<u8>) -> Option<(u8, u8)> {
        kbc.write(KBC_COMMAND, cmd);
        if let Some(p) = param {
            kbc.write(KBC_DATA, p);
        }
        let status = kbc.read(KBC_COMMAND);
        (status & STATUS_OBF != 0).then(|| (status, kbc.read(KBC_DATA)))
    }

    #[test]
    fn empty_controller_has_no_output_and_never_a_full_input_buffer() {
        let mut kbc = Kbc::new();
        let status = kbc.read(KBC_COMMAND);
        assert_eq!(status & (STATUS_OBF | 0x02), 0, "status {status:#x}");
        assert_ne!(status & STATUS_UNLOCKED, 0, "keylock not engaged");
    }

    #[test]
    fn self_test_answers_55_and_port_tests_pass() {
        let mut kbc = Kbc::new();
        assert_eq!(command(&mut kbc, 0xAA, None).map(|r| r.1), Some(0x55));
        assert_eq!(command(&mut kbc, 0xAB, None).map(|r| r.1), Some(0x00));
        assert_eq!(command(&mut kbc, 0xA9, None).map(|r| r.1), Some(0x00));
        assert_eq!(kbc.read(KBC_COMMAND) & STATUS_OBF, 0, "buffer emptied");
    }

    #[test]
    fn command_byte_reads_back_and_aux_enable_bits_toggle() {
        let mut kbc = Kbc::new();
        assert_eq!(command(&mut kbc, 0x20, None).map(|r| r.1), Some(CTR_DEFAULT));
        command(&mut kbc, 0x60, Some(0x74));
        assert_eq!(command(&mut kbc, 0x20, None).map(|r| r.1), Some(0x74));
        command(&mut kbc, 0xA8, None);
        assert_eq!(command(&mut kbc, 0x20, None).unwrap().1 & CTR_AUX_DISABLE, 0);
        command(&mut kbc, 0xA7, None);
        assert_ne!(command(&mut kbc, 0x20, None).unwrap().1 & CTR_AUX_DISABLE, 0);
    }

    #[test]
    fn aux_loopback_echoes_as_mouse_data_and_raises_irq12_when_enabled() {
        let mut kbc = Kbc::new();
        command(&mut kbc, 0x60, Some(CTR_AUX_INT | CTR_SYS));
        kbc.write(KBC_COMMAND, 0xD3);
        kbc.write(KBC_DATA, 0x5A);
        assert!(kbc.irq12());
        assert!(!kbc.irq1());
        let status = kbc.read(KBC_COMMAND);
        assert_eq!(status & (STATUS_OBF | STATUS_AUX_DATA), STATUS_OBF | STATUS_AUX_DATA);
        assert_eq!(kbc.read(KBC_DATA), 0x5A);
        assert!(!kbc.irq12());
    }

    #[test]
    fn bytes_for_absent_devices_come_back_as_fe_with_timeout() {
        let mut kbc = Kbc::new();
        kbc.write(KBC_DATA, 0xF2); // keyboard GET ID
        assert!(kbc.irq1(), "the default command byte enables IRQ 1");
        let status = kbc.read(KBC_COMMAND);
        assert_eq!(status & (STATUS_OBF | STATUS_TIMEOUT | STATUS_AUX_DATA), STATUS_OBF | STATUS_TIMEOUT);
        assert_eq!(kbc.read(KBC_DATA), NO_DEVICE);
        let (status, byte) = command(&mut kbc, 0xD4, Some(0xFF)).unwrap();
        assert_eq!(byte, NO_DEVICE);
        assert_eq!(status & (STATUS_AUX_DATA | STATUS_TIMEOUT), STATUS_AUX_DATA | STATUS_TIMEOUT);
    }

    #[test]
    fn pulse_command_fe_and_output_port_bit0_request_reset() {
        let mut kbc = Kbc::new();
        kbc.write(KBC_COMMAND, 0xFF); // pulse nothing
        assert!(!kbc.take_reset_request());
        kbc.write(KBC_COMMAND, 0xFE);
        assert!(kbc.take_reset_request());
        assert!(!kbc.take_reset_request(), "taken once");
        command(&mut kbc, 0xD1, Some(0x02));
        assert!(kbc.take_reset_request());
        command(&mut kbc, 0xD1, Some(0x03));
        assert!(!kbc.take_reset_request());
        assert_eq!(command(&mut kbc, 0xD0, None).map(|r| r.1), Some(0x03));
    }

    #[test]
    fn status_command_bit_follows_the_last_write() {
        let mut kbc = Kbc::new();
        kbc.write(KBC_COMMAND, 0xAD);
        assert_ne!(kbc.read(KBC_COMMAND) & STATUS_COMMAND, 0);
        kbc.write(KBC_COMMAND, 0xD2);
        kbc.write(KBC_DATA, 0x11);
        assert_eq!(kbc.read(KBC_COMMAND) & STATUS_COMMAND, 0);
        assert_eq!(kbc.read(KBC_DATA), 0x11);
        assert_eq!(kbc.read(KBC_DATA), 0x11, "an empty buffer repeats");
    }
}
