//! The 8254 on the bus: its ports 0x40–0x43, and port 0x61 (NMI status and
//! control, "system control port B"), which gates counter 2 and shows its
//! output. One device, because port 0x61 reaches into the PIT.
//!
//! Counter 0 drives IRQ 0. The PIT is a timer on the board: the board
//! brings it up to each new guest time ([`BusDevice::advance`]), which
//! reports one edge on IRQ 0 for however many periods passed, and asks it
//! when IRQ 0 next rises.
use super::pit::{Pit, PIT_BASE, PIT_HZ};
use super::time::ticks_at;
use crate::bus::{self, BusDevice, Ctx, Range, TimerIrq};

/// The PIT's ports.
pub const PIT_PORTS: Range = Range::new(PIT_BASE as u64, 4);
/// Port 0x61, NMI status and control.
pub const PORT_NMI_STATUS_CONTROL: u16 = 0x61;
/// Counter 0's ISA interrupt line.
pub const PIT_IRQ: u8 = 0;

/// Port 0x61: the bits the guest may write (gate 2, speaker data, and the
/// parity/channel-check disables).
const P61_WRITABLE: u8 = 0x0F;
const P61_GATE2: u8 = 0x01;
const P61_REFRESH: u8 = 0x10;
const P61_OUT2: u8 = 0x20;
/// The refresh bit toggles once per refresh cycle: every 18 PIT clocks
/// (15.09 µs), the count a BIOS gives counter 1.
const REFRESH_PIT_CLOCKS: u64 = 18;

/// The PIT and port 0x61.
#[derive(Clone, Debug, Default)]
pub struct SystemTimer {
    pit: Pit,
    port61: u8,
}

impl SystemTimer {
    pub const fn new() -> Self {
        SystemTimer { pit: Pit::new(), port61: 0 }
    }

    fn read_port61(&self, now: u64) -> u8 {
        let mut value = self.port61;
        if ticks_at(now, PIT_HZ) / REFRESH_PIT_CLOCKS % 2 == 1 {
            value |= P61_REFRESH;
        }
        if self.pit.out2(now) {
            value |= P61_OUT2;
        }
        value
    }

    fn write_port61(&mut self, value: u8, now: u64) {
        self.port61 = value & P61_WRITABLE;
        self.pit.set_gate2(value & P61_GATE2 != 0, now);
    }
}

impl BusDevice for SystemTimer {
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8], cx: &mut Ctx) {
        let now = cx.now_ns;
        if base == u64::from(PORT_NMI_STATUS_CONTROL) {
            bus::read_bytes(offset, data, |_| self.read_port61(now));
        } else {
            bus::read_bytes(offset, data, |at| self.pit.read(at as u16, now));
        }
        self.advance(cx);
        // Reads too: they latch counts and status.
        cx.timers_changed();
    }

    fn write(&mut self, base: u64, offset: u64, data: &[u8], cx: &mut Ctx) {
        let now = cx.now_ns;
        if base == u64::from(PORT_NMI_STATUS_CONTROL) {
            bus::write_bytes(offset, data, |_, v| self.write_port61(v, now));
        } else {
            bus::write_bytes(offset, data, |at, v| self.pit.write(at as u16, v, now));
        }
        self.advance(cx);
        cx.timers_changed();
    }

    fn is_timer(&self) -> bool {
        true
    }

    fn advance(&mut self, cx: &mut Ctx) {
        let irq0 = self.pit.poll_irq0(cx.now_ns);
        if irq0.rose {
            cx.pulse_irq(PIT_IRQ);
        }
        cx.set_irq(PIT_IRQ, irq0.level);
    }

    fn next_irq(&self, now_ns: u64) -> Option<TimerIrq> {
        Some(TimerIrq { line: Some(PIT_IRQ), at_ns: self.pit.next_irq0_ns(now_ns)? })
    }
}
