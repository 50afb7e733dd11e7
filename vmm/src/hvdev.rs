//! The hypervisor's own guest devices: the debug console on port 0xE9 and
//! the MMIO information device at [`MMIO_BASE`].
//!
//! The MMIO device gives guests (and `hvctl bench`) a register whose every
//! access goes through the nested-page-fault path and the instruction
//! emulator: offset 0x0 MAGIC (read-only, [`MAGIC`]), 0x4 VERSION
//! (read-only, 1), 0x8 SCRATCH (read/write, up to 64 bits), 0x10 COUNTER
//! (read-only, counts its own reads). Other offsets read as zero and ignore
//! writes.
use arrayvec::ArrayString;
use guest_x86::decode::size_mask;

pub const DEBUG_PORT: u16 = 0xE9;
pub const MMIO_BASE: u64 = 0xFEBF_F000;
pub const MMIO_SIZE: u64 = 0x1000;
pub const MAGIC: u32 = 0x4345_5254;

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

/// The MMIO information device.
#[derive(Debug, Default)]
pub struct InfoDevice {
    scratch: u64,
    counter: u32,
}

impl InfoDevice {
    pub fn contains(gpa: u64) -> bool {
        (MMIO_BASE..MMIO_BASE + MMIO_SIZE).contains(&gpa)
    }

    pub fn read(&mut self, gpa: u64, size: u8) -> u64 {
        let mask = size_mask(size);
        let v = match gpa - MMIO_BASE {
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

    pub fn write(&mut self, gpa: u64, size: u8, value: u64) {
        if gpa - MMIO_BASE == 0x8 {
            let mask = size_mask(size);
            self.scratch = (self.scratch & !mask) | (value & mask);
        }
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
        assert_eq!(d.read(MMIO_BASE, 4), u64::from(MAGIC));
        assert_eq!(d.read(MMIO_BASE + 4, 4), 1);
        d.write(MMIO_BASE + 8, 8, 0x1122_3344_5566_7788);
        assert_eq!(d.read(MMIO_BASE + 8, 4), 0x5566_7788);
        d.write(MMIO_BASE + 8, 2, 0xAAAA);
        assert_eq!(d.read(MMIO_BASE + 8, 8), 0x1122_3344_5566_AAAA);
        let a = d.read(MMIO_BASE + 0x10, 4);
        assert_eq!(d.read(MMIO_BASE + 0x10, 4), a + 1);
        d.write(MMIO_BASE, 4, 0);
        assert_eq!(d.read(MMIO_BASE, 4), u64::from(MAGIC), "MAGIC is read-only");
    }
}
