//! The I/O-port bus, with the ISA bus's rules for wide accesses and for
//! ports nobody answers.
//!
//! An `in` or `out` of 2 or 4 bytes at port P covers ports P, P+1, ...
//! (wrapping at 0xFFFF). Each device receives the part of the access that
//! falls in one of its ranges, whole; an 8-bit device takes it a byte at a
//! time ([`super::read_bytes`]), as the ISA bus feeds 8-bit devices, and a
//! device with wider registers (the PCI address register at 0xCF8) may
//! take a dword at once. Bytes no device answers read 0xFF and writes to
//! them are dropped; each access that touched such a port is counted once,
//! at its first unassigned port.
use super::{Bus, BusError, Ctx, DeviceRef, Range};

/// Ranges the port bus holds.
pub const PORT_RANGES: usize = 32;

/// Distinct unassigned ports remembered individually; the rest only count
/// towards the total.
pub const UNASSIGNED_PORT_SLOTS: usize = 16;

/// How often the guest touched one port that no device answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnassignedPort {
    pub port: u16,
    pub count: u64,
}

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

/// The 64 Ki I/O ports of the devices in `D`.
pub struct PortBus<D> {
    map: Bus<D, PORT_RANGES>,
    unassigned: UnassignedLog,
}

impl<D> Default for PortBus<D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<D> PortBus<D> {
    pub const fn new() -> Self {
        PortBus { map: Bus::new(0xFFFF), unassigned: UnassignedLog::new() }
    }

    /// Registers `device` at the ports of `ranges`.
    pub fn register(&mut self, ranges: &[Range], device: DeviceRef<D>) -> Result<(), BusError> {
        self.map.register(ranges, device)
    }

    /// An `in` of `data.len()` bytes from `port`.
    #[inline]
    pub fn read(&mut self, devices: &mut D, port: u16, data: &mut [u8], cx: &mut Ctx) {
        // Most accesses fall in one device's range.
        let (first, last) = (u64::from(port), u64::from(port) + (data.len() as u64).max(1) - 1);
        match self.map.find(first) {
            Some(m) if last <= m.last => (m.device)(devices).read(m.first, first - m.first, data, cx),
            _ => self.read_split(devices, port, data, cx),
        }
    }

    #[inline(never)]
    fn read_split(&mut self, devices: &mut D, port: u16, data: &mut [u8], cx: &mut Ctx) {
        let mut done = 0;
        let mut unassigned = None;
        while done < data.len() {
            let at = port.wrapping_add(done as u16);
            let rest = &mut data[done..];
            let n = match self.map.find(u64::from(at)) {
                Some(m) => {
                    let n = rest.len().min((m.last - u64::from(at) + 1) as usize);
                    (m.device)(devices).read(m.first, u64::from(at) - m.first, &mut rest[..n], cx);
                    n
                }
                None => {
                    unassigned.get_or_insert(at);
                    rest[0] = 0xFF;
                    1
                }
            };
            done += n;
        }
        if let Some(first) = unassigned {
            self.unassigned.record(first);
        }
    }

    /// An `out` of `data` to `port`.
    #[inline]
    pub fn write(&mut self, devices: &mut D, port: u16, data: &[u8], cx: &mut Ctx) {
        let (first, last) = (u64::from(port), u64::from(port) + (data.len() as u64).max(1) - 1);
        match self.map.find(first) {
            Some(m) if last <= m.last => (m.device)(devices).write(m.first, first - m.first, data, cx),
            _ => self.write_split(devices, port, data, cx),
        }
    }

    #[inline(never)]
    fn write_split(&mut self, devices: &mut D, port: u16, data: &[u8], cx: &mut Ctx) {
        let mut done = 0;
        let mut unassigned = None;
        while done < data.len() {
            let at = port.wrapping_add(done as u16);
            let rest = &data[done..];
            let n = match self.map.find(u64::from(at)) {
                Some(m) => {
                    let n = rest.len().min((m.last - u64::from(at) + 1) as usize);
                    (m.device)(devices).write(m.first, u64::from(at) - m.first, &rest[..n], cx);
                    n
                }
                None => {
                    unassigned.get_or_insert(at);
                    1
                }
            };
            done += n;
        }
        if let Some(first) = unassigned {
            self.unassigned.record(first);
        }
    }

    /// Accesses to ports no device answers, in total.
    pub fn unassigned_accesses(&self) -> u64 {
        self.unassigned.total
    }

    /// The first [`UNASSIGNED_PORT_SLOTS`] distinct unassigned ports
    /// touched, with their access counts.
    pub fn unassigned_ports(&self) -> &[UnassignedPort] {
        &self.unassigned.ports[..self.unassigned.len]
    }
}
