//! The hypervisor's own guest devices: the debug console on port 0xE9 and
//! the MMIO information device at [`MMIO_BASE`].
//!
//! The debug console is an 8-bit port: each byte written is a character,
//! lines go to the hypervisor's log (within the VM's budget of lines, see
//! `guestlog`), and a read returns 0xE9 (as on Bochs and QEMU, so a guest
//! can tell the port is there).
//!
//! The MMIO device gives guests (and `hvctl bench`) a register whose every
//! access goes through the nested-page-fault path and the instruction
//! emulator: offset 0x0 MAGIC (read-only, [`MAGIC`]), 0x4 VERSION
//! (read-only, 1), 0x8 SCRATCH (read/write, up to 64 bits), 0x10 COUNTER
//! (read-only, counts its own reads). Other offsets read as zero and ignore
//! writes.
use crate::bus::{self, BusDevice, Ctx, Range};
use crate::guestlog::log_line;
use arrayvec::ArrayString;
use guest_x86::decode::size_mask;
use log::Level;
use sysabi::{Sys, SysResult, VmHandle};

pub const DEBUG_PORT: u16 = 0xE9;
/// What a byte read of the debug port returns: a constant, so the VMM
/// declares it to the kernel, which answers such reads itself
/// ([`declare_to_kernel`]).
pub const DEBUG_PORT_READS: u8 = 0xE9;
pub const MMIO_BASE: u64 = 0xFEBF_F000;
pub const MMIO_SIZE: u64 = 0x1000;
pub const MAGIC: u32 = 0x4345_5254;

/// The debug console's port.
pub const DEBUG_PORTS: Range = Range::port(DEBUG_PORT);
/// The information device's page.
pub const INFO_MMIO: Range = Range::new(MMIO_BASE, MMIO_SIZE);

/// A line-buffered console: the guest writes bytes, the VMM logs lines.
pub struct DebugConsole {
    line: ArrayString<160>,
}

impl DebugConsole {
    pub const fn new() -> Self {
        DebugConsole { line: ArrayString::new_const() }
    }

    /// Takes one byte; returns a complete line when one ends (or the buffer
    /// fills).
    pub fn put(&mut self, b: u8, out: impl FnOnce(&str)) {
        if b == b'\n' || self.line.is_full() {
            out(&self.line);
            self.line.clear();
            if b == b'\n' {
                return;
            }
        }
        if b != b'\r' {
            let c = if b.is_ascii_graphic() || b == b' ' { b as char } else { '.' };
            self.line.push(c);
        }
    }
}

impl DebugConsole {
    /// Emits a partial line, if any.
    pub fn flush(&mut self, out: impl FnOnce(&str)) {
        if !self.line.is_empty() {
            out(&self.line);
            self.line.clear();
        }
    }
}

impl Default for DebugConsole {
    fn default() -> Self {
        Self::new()
    }
}

/// Declares to the kernel the reads of these devices that have a constant
/// answer and no effect, which it then answers without the VMM: a byte
/// read of the debug port, and 32- and 64-bit reads of the information
/// device's MAGIC and VERSION. (The rule for what the kernel may answer is
/// in docs/exit-path.md, "Which exits the kernel answers".)
pub fn declare_to_kernel<S: Sys>(sys: &S, vm: VmHandle) -> SysResult<()> {
    sys.declare_constant_port(vm, DEBUG_PORT, 1, u32::from(DEBUG_PORT_READS))?;
    for (offset, size) in CONSTANT_INFO_READS {
        sys.declare_constant_mmio(vm, MMIO_BASE + offset, size, InfoDevice::default().read(offset, size))?;
    }
    Ok(())
}

/// The information device's reads (offset, size) whose value never
/// changes and whose reading changes nothing: MAGIC and VERSION.
pub const CONSTANT_INFO_READS: [(u64, u8); 4] = [(0x0, 4), (0x0, 8), (0x4, 4), (0x4, 8)];

/// The debug console on port 0xE9, logging as `name`.
pub struct DebugPort<'a> {
    name: &'a str,
    console: DebugConsole,
}

impl<'a> DebugPort<'a> {
    pub const fn new(name: &'a str) -> Self {
        DebugPort { name, console: DebugConsole::new() }
    }
}

impl BusDevice for DebugPort<'_> {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8], _cx: &mut Ctx) {
        bus::read_bytes(offset, data, |_| DEBUG_PORT_READS);
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8], cx: &mut Ctx) {
        let (name, now) = (self.name, cx.now_ns);
        bus::write_bytes(offset, data, |_, b| {
            self.console.put(b, |line| log_line(&mut cx.log_budget, now, name, Level::Info, format_args!("{line}")))
        });
    }
}

/// The MMIO information device.
#[derive(Debug, Default)]
pub struct InfoDevice {
    scratch: u64,
    counter: u32,
}

impl InfoDevice {
    /// A read of `size` bytes (1, 2, 4 or 8) at `offset` in the page.
    pub fn read(&mut self, offset: u64, size: u8) -> u64 {
        let mask = size_mask(size);
        let v = match offset {
            0x0 => u64::from(MAGIC),
            0x4 => 1,
            0x8 => self.scratch,
            0x10 => {
                let c = self.counter;
                self.counter = self.counter.wrapping_add(1);
                u64::from(c)
            }
            _ => 0,
        };
        v & mask
    }

    /// A write of the low `size` bytes of `value` at `offset` in the page.
    pub fn write(&mut self, offset: u64, size: u8, value: u64) {
        if offset == 0x8 {
            let mask = size_mask(size);
            self.scratch = (self.scratch & !mask) | (value & mask);
        }
    }
}

impl BusDevice for InfoDevice {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8], _cx: &mut Ctx) {
        // The emulator's accesses are 1, 2, 4 or 8 bytes wide.
        let n = data.len().min(8);
        let value = self.read(offset, n as u8);
        data[..n].copy_from_slice(&value.to_le_bytes()[..n]);
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8], _cx: &mut Ctx) {
        let n = data.len().min(8);
        let mut bytes = [0u8; 8];
        bytes[..n].copy_from_slice(&data[..n]);
        self.write(offset, n as u8, u64::from_le_bytes(bytes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_emits_whole_lines_only() {
        let mut c = DebugConsole::new();
        let mut lines = Vec::new();
        for &b in b"hello\nwor" {
            c.put(b, |l| lines.push(l.to_string()));
        }
        assert_eq!(lines, ["hello"]);
    }

    #[test]
    fn info_device_registers_behave_as_documented() {
        let mut d = InfoDevice::default();
        assert_eq!(d.read(0, 4), u64::from(MAGIC));
        assert_eq!(d.read(4, 4), 1);
        d.write(8, 8, 0x1122_3344_5566_7788);
        assert_eq!(d.read(8, 4), 0x5566_7788);
        d.write(8, 2, 0xAAAA);
        assert_eq!(d.read(8, 8), 0x1122_3344_5566_AAAA);
        let a = d.read(0x10, 4);
        assert_eq!(d.read(0x10, 4), a + 1);
        d.write(0, 4, 0);
        assert_eq!(d.read(0, 4), u64::from(MAGIC), "MAGIC is read-only");
    }

    #[test]
    fn the_reads_declared_constant_read_the_same_from_any_device_state() {
        let mut used = InfoDevice::default();
        used.write(8, 8, u64::MAX);
        for _ in 0..3 {
            used.read(0x10, 4);
        }
        for (offset, size) in CONSTANT_INFO_READS {
            let (fresh, seen) = (InfoDevice::default().read(offset, size), used.read(offset, size));
            assert_eq!(seen, fresh, "read of {size} bytes at {offset:#x}: expected {fresh:#x}, seen {seen:#x}");
        }
    }
}
