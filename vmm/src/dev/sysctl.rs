//! The chipset's small ports: the PCI configuration ports with the reset
//! control register among them (0xCF8–0xCFF), system control port A (0x92),
//! and the POST-code port (0x80).
use super::pci::{PciHost, CONFIG_ADDRESS};
use crate::bus::{self, BoardEvent, BusDevice, Ctx, Range};

/// Configuration mechanism #1's address register and data window.
pub const CONFIG_PORTS: Range = Range::new(CONFIG_ADDRESS as u64, 8);
/// Port 0x80, the POST-code port, which Linux also writes as an I/O delay.
pub const PORT_POST: u16 = 0x80;
/// Port 0x92, system control port A: fast A20 and fast reset.
pub const PORT_SYSTEM_CONTROL_A: u16 = 0x92;
/// Port 0xCF9, the PIIX reset control register (byte accesses only).
pub const PORT_RESET_CONTROL: u16 = 0xCF9;

/// The reset control register's offset in [`CONFIG_PORTS`].
const RCR_OFFSET: u64 = (PORT_RESET_CONTROL - CONFIG_ADDRESS) as u64;
/// The data window's offset in [`CONFIG_PORTS`].
const DATA_OFFSET: u64 = 4;
/// Reset control: SYS_RST and FULL_RST are stored; RST_CPU starts a reset.
const RCR_STORED: u8 = 0x0A;
const RCR_RESET_CPU: u8 = 0x04;

const P92_FAST_RESET: u8 = 0x01;
const P92_A20: u8 = 0x02;

/// Ports 0xCF8–0xCFF. A dword at 0xCF8 is the PCI address register; a lone
/// byte at 0xCF9 is the reset control register; the other bytes of
/// 0xCF8–0xCFB do nothing, and 0xCFC–0xCFF are the data window, a byte at a
/// time.
#[derive(Clone, Debug, Default)]
pub struct ConfigPorts {
    pci: PciHost,
    reset_control: u8,
}

impl ConfigPorts {
    pub fn new() -> Self {
        ConfigPorts { pci: PciHost::new(), reset_control: 0 }
    }
}

impl BusDevice for ConfigPorts {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8], _cx: &mut Ctx) {
        if offset == 0 && data.len() == 4 {
            data.copy_from_slice(&self.pci.address().to_le_bytes());
            return;
        }
        let lone = data.len() == 1;
        bus::read_bytes(offset, data, |at| match at {
            RCR_OFFSET if lone => self.reset_control,
            DATA_OFFSET.. => self.pci.read_data(CONFIG_ADDRESS + at as u16),
            _ => 0xFF,
        });
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8], cx: &mut Ctx) {
        if let (0, Ok(dword)) = (offset, <[u8; 4]>::try_from(data)) {
            self.pci.set_address(u32::from_le_bytes(dword));
            return;
        }
        let lone = data.len() == 1;
        bus::write_bytes(offset, data, |at, value| match at {
            RCR_OFFSET if lone => {
                self.reset_control = value & RCR_STORED;
                if value & RCR_RESET_CPU != 0 {
                    cx.request(BoardEvent::Reset);
                }
            }
            DATA_OFFSET.. => self.pci.write_data(CONFIG_ADDRESS + at as u16, value),
            _ => {}
        });
    }
}

/// Port 0x92: the A20 gate (stored, always on for the guest) and the fast
/// reset bit.
#[derive(Clone, Debug)]
pub struct SystemControlA {
    value: u8,
}

impl Default for SystemControlA {
    fn default() -> Self {
        Self::new()
    }
}

impl SystemControlA {
    pub const fn new() -> Self {
        SystemControlA { value: P92_A20 }
    }
}

impl BusDevice for SystemControlA {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8], _cx: &mut Ctx) {
        bus::read_bytes(offset, data, |_| self.value);
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8], cx: &mut Ctx) {
        bus::write_bytes(offset, data, |_, value| {
            self.value = value & P92_A20;
            if value & P92_FAST_RESET != 0 {
                cx.request(BoardEvent::Reset);
            }
        });
    }
}

/// Port 0x80: writes are dropped, reads return all ones.
#[derive(Clone, Copy, Debug, Default)]
pub struct PostCode;

impl BusDevice for PostCode {
    fn read(&mut self, _base: u64, _offset: u64, data: &mut [u8], _cx: &mut Ctx) {
        data.fill(0xFF);
    }

    fn write(&mut self, _base: u64, _offset: u64, _data: &[u8], _cx: &mut Ctx) {}
}
