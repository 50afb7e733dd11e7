//! PCI configuration space through configuration mechanism #1: the address
//! register at 0xCF8 (dword accesses only) and the data window 0xCFC–0xCFF.
//!
//! Bus 0 holds one device, a host bridge at 00:00.0 with Intel's 82441FX
//! (i440FX) IDs, class 06 00 00, header type 0 and no BARs. Its registers are
//! read-only except the cache-line size, latency timer and interrupt line,
//! which are plain storage. Every other function reads all ones and ignores
//! writes, as a missing device does.

/// The configuration address register.
pub const CONFIG_ADDRESS: u16 = 0xCF8;
/// The first port of the configuration data window.
pub const CONFIG_DATA: u16 = 0xCFC;

/// The host bridge's identity: Intel 82441FX PMC (i440FX).
pub const HOST_BRIDGE_VENDOR: u16 = 0x8086;
pub const HOST_BRIDGE_DEVICE: u16 = 0x1237;
const HOST_BRIDGE_REVISION: u8 = 0x02;
/// Class code 06 00 00: bridge, host bridge, no programming interface.
const HOST_BRIDGE_CLASS: [u8; 3] = [0x00, 0x00, 0x06];
/// Memory space and bus mastering, always on.
const HOST_BRIDGE_COMMAND: u16 = 0x0006;

const ADDRESS_ENABLE: u32 = 0x8000_0000;
/// Bits of the address register that hold state: enable, bus, device,
/// function and dword-aligned register.
const ADDRESS_MASK: u32 = ADDRESS_ENABLE | 0x00FF_FFFC;

const CACHE_LINE_SIZE: usize = 0x0C;
const LATENCY_TIMER: usize = 0x0D;
const INTERRUPT_LINE: usize = 0x3C;

/// The configuration mechanism and the host bridge behind it.
#[derive(Clone, Debug)]
pub struct PciHost {
    address: u32,
    bridge: [u8; 256],
}

impl Default for PciHost {
    fn default() -> Self {
        Self::new()
    }
}

impl PciHost {
    pub fn new() -> Self {
        let mut bridge = [0u8; 256];
        bridge[0..2].copy_from_slice(&HOST_BRIDGE_VENDOR.to_le_bytes());
        bridge[2..4].copy_from_slice(&HOST_BRIDGE_DEVICE.to_le_bytes());
        bridge[4..6].copy_from_slice(&HOST_BRIDGE_COMMAND.to_le_bytes());
        bridge[8] = HOST_BRIDGE_REVISION;
        bridge[9..12].copy_from_slice(&HOST_BRIDGE_CLASS);
        Self { address: 0, bridge }
    }

    /// The address register, as a dword read of 0xCF8 returns it.
    pub fn address(&self) -> u32 {
        self.address
    }

    /// A dword write of 0xCF8.
    pub fn set_address(&mut self, value: u32) {
        self.address = value & ADDRESS_MASK;
    }

    /// Reads one byte of the data window at `port` (0xCFC–0xCFF).
    pub fn read_data(&self, port: u16) -> u8 {
        match self.selected(port) {
            Some(offset) => self.bridge[offset],
            None => 0xFF,
        }
    }

    /// Writes one byte of the data window at `port` (0xCFC–0xCFF).
    pub fn write_data(&mut self, port: u16, value: u8) {
        if let Some(offset) = self.selected(port) {
            if matches!(offset, CACHE_LINE_SIZE | LATENCY_TIMER | INTERRUPT_LINE) {
                self.bridge[offset] = value;
            }
        }
    }

    /// The host-bridge register byte the address register and `port` select,
    /// or `None` if configuration is disabled or the function is absent.
    fn selected(&self, port: u16) -> Option<usize> {
        // Bus 0, device 0, function 0 is the only function present.
        if self.address & ADDRESS_ENABLE == 0 || self.address & 0x00FF_FF00 != 0 {
            return None;
        }
        Some((self.address & 0xFC) as usize + usize::from(port & 3))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bdf(bus: u32, dev: u32, func: u32, reg: u32) -> u32 {
        ADDRESS_ENABLE | bus << 16 | dev << 11 | func << 8 | reg
    }

    fn read32(pci: &mut PciHost, address: u32) -> u32 {
        pci.set_address(address);
        u32::from_le_bytes([0, 1, 2, 3].map(|i| pci.read_data(CONFIG_DATA + i)))
    }

    #[test]
    fn host_bridge_has_i440fx_ids_and_host_bridge_class() {
        let mut pci = PciHost::new();
        assert_eq!(read32(&mut pci, bdf(0, 0, 0, 0)), 0x1237_8086);
        assert_eq!(read32(&mut pci, bdf(0, 0, 0, 8)), 0x0600_0002);
        assert_eq!(read32(&mut pci, bdf(0, 0, 0, 0x0C)) >> 16 & 0xFF, 0, "header type 0");
        assert_eq!(read32(&mut pci, bdf(0, 0, 0, 0x10)), 0, "no BARs");
    }

    #[test]
    fn absent_functions_and_disabled_config_read_all_ones() {
        let mut pci = PciHost::new();
        for address in
            [bdf(0, 1, 0, 0), bdf(0, 0, 1, 0), bdf(1, 0, 0, 0), bdf(0, 31, 7, 0xFC), bdf(0, 0, 0, 0) & !ADDRESS_ENABLE]
        {
            assert_eq!(read32(&mut pci, address), 0xFFFF_FFFF, "address {address:#x}");
        }
    }

    #[test]
    fn byte_offsets_in_the_window_select_bytes_of_the_dword() {
        let mut pci = PciHost::new();
        pci.set_address(bdf(0, 0, 0, 0));
        assert_eq!(pci.read_data(0xCFE), 0x37);
        assert_eq!(pci.read_data(0xCFF), 0x12);
        pci.set_address(bdf(0, 0, 0, 8));
        assert_eq!(pci.read_data(0xCFF), 0x06);
    }

    #[test]
    fn read_only_registers_ignore_writes_and_scratch_registers_keep_them() {
        let mut pci = PciHost::new();
        pci.set_address(bdf(0, 0, 0, 0));
        for port in CONFIG_DATA..CONFIG_DATA + 4 {
            pci.write_data(port, 0);
        }
        assert_eq!(read32(&mut pci, bdf(0, 0, 0, 0)), 0x1237_8086);
        pci.set_address(bdf(0, 0, 0, 4));
        pci.write_data(CONFIG_DATA, 0x07);
        assert_eq!(pci.read_data(CONFIG_DATA), 0x06, "command is fixed");
        pci.set_address(bdf(0, 0, 0, 0x0C));
        pci.write_data(0xCFD, 0x40);
        assert_eq!(pci.read_data(0xCFD), 0x40, "latency timer is storage");
        pci.set_address(bdf(0, 0, 0, 0x3C));
        pci.write_data(CONFIG_DATA, 0x0B);
        assert_eq!(pci.read_data(CONFIG_DATA), 0x0B);
        // Writes to absent functions go nowhere.
        pci.set_address(bdf(0, 2, 0, 0x3C));
        pci.write_data(CONFIG_DATA, 0x55);
        assert_eq!(read32(&mut pci, bdf(0, 2, 0, 0x3C)), 0xFFFF_FFFF);
    }

    #[test]
    fn address_register_keeps_only_its_defined_bits() {
        let mut pci = PciHost::new();
        pci.set_address(0xFFFF_FFFF);
        assert_eq!(pci.address(), 0x80FF_FFFC);
        // Linux's pci_check_type1 probe.
        pci.set_address(0x8000_0000);
        assert_eq!(pci.address(), 0x8000_0000);
    }
}
