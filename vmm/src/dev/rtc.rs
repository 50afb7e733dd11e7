//! The MC146818-compatible real-time clock and its 128 bytes of CMOS RAM
//! (index port 0x70, data port 0x71, IRQ 8).
//!
//! **Clock.** The wall-clock time is `epoch + guest time`: the VMM gives the
//! Unix time at guest time 0, and the clock runs in UTC from there. The time
//! registers are computed from the guest time at each read, in BCD or binary
//! and in 12- or 24-hour form as register B says. Writing a time register
//! moves the clock; setting B.SET freezes the registers as plain bytes until
//! SET is cleared, which is how an OS sets the time. The day of week is always
//! derived from the date; writes to it are ignored.
//!
//! **Update cycle.** Register A's UIP bit is set for the last 244 µs of each
//! second, as on the MC146818, so a reader waiting for UIP to clear waits at
//! most that long in guest time. The divider bits of register A are stored but
//! do not stop the clock.
//!
//! **Interrupts.** The periodic (PF), alarm (AF) and update-ended (UF) flags
//! of register C are set from the guest time whether or not they are enabled;
//! IRQ 8 is their OR masked by register B's PIE/AIE/UIE, and reading register
//! C clears them. After a long gap each flag is simply set, once.
//!
//! **CMOS RAM.** Bytes 0x0E–0x7F are plain memory, filled at construction with
//! what a PC BIOS leaves there: no floppy, an FPU, 640 KiB of base memory and
//! the sizes of extended memory.

use super::time::{ticks_at, NS_PER_SEC};
use crate::bus::{self, BusDevice, Ctx, Range, TimerIrq};

/// The RTC's index port (bit 7 is the NMI-disable bit).
pub const RTC_INDEX: u16 = 0x70;
/// The RTC's data port.
pub const RTC_DATA: u16 = 0x71;
/// The RTC's ISA interrupt line.
pub const RTC_IRQ: u8 = 8;
/// RAM above this guest-physical address is reported above 4 GiB in the
/// CMOS memory-size bytes (where a PC puts its PCI hole).
pub const LOW_RAM_LIMIT: u64 = 0xC000_0000;

const REG_SECONDS: u8 = 0x00;
const REG_SECONDS_ALARM: u8 = 0x01;
const REG_MINUTES: u8 = 0x02;
const REG_MINUTES_ALARM: u8 = 0x03;
const REG_HOURS: u8 = 0x04;
const REG_HOURS_ALARM: u8 = 0x05;
const REG_WEEKDAY: u8 = 0x06;
const REG_DAY: u8 = 0x07;
const REG_MONTH: u8 = 0x08;
const REG_YEAR: u8 = 0x09;
const REG_A: u8 = 0x0A;
const REG_B: u8 = 0x0B;
const REG_C: u8 = 0x0C;
const REG_D: u8 = 0x0D;
const REG_CENTURY: u8 = 0x32;

const A_UIP: u8 = 0x80;
const A_RATE: u8 = 0x0F;
const B_SET: u8 = 0x80;
const B_PIE: u8 = 0x40;
const B_AIE: u8 = 0x20;
const B_UIE: u8 = 0x10;
const B_BINARY: u8 = 0x04;
const B_24H: u8 = 0x02;
const C_IRQF: u8 = 0x80;
const C_PF: u8 = 0x40;
const C_AF: u8 = 0x20;
const C_UF: u8 = 0x10;
const D_VRT: u8 = 0x80;
const HOUR_PM: u8 = 0x80;
/// An alarm byte with both top bits set matches any value.
const ALARM_DONT_CARE: u8 = 0xC0;

/// How long before each second's update UIP is set (t_BUC on the MC146818).
const UIP_WINDOW_NS: u64 = 244_000;
/// The time base the periodic interrupt divides down.
const RTC_BASE_HZ: u64 = 32_768;
const SECS_PER_DAY: i64 = 86_400;

/// A broken-down UTC time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DateTime {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
}

impl DateTime {
    fn from_unix(t: i64) -> Self {
        let days = t.div_euclid(SECS_PER_DAY);
        let secs = t.rem_euclid(SECS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        Self { year, month, day, hour: secs / 3600, minute: secs / 60 % 60, second: secs % 60 }
    }

    /// Seconds since the Unix epoch; out-of-range fields are clamped.
    fn to_unix(self) -> i64 {
        let days = days_from_civil(self.year, self.month.clamp(1, 12), self.day.clamp(1, 31));
        days * SECS_PER_DAY + self.hour.clamp(0, 23) * 3600 + self.minute.clamp(0, 59) * 60 + self.second.clamp(0, 59)
    }

    /// 1 = Sunday ... 7 = Saturday, as the RTC counts.
    fn weekday(self) -> i64 {
        // 1970-01-01 was a Thursday.
        (self.to_unix().div_euclid(SECS_PER_DAY) + 4).rem_euclid(7) + 1
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date. The year is
/// counted from March so that the leap day falls at its end.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month, day).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The RTC and CMOS RAM.
#[derive(Clone, Debug)]
pub struct Rtc {
    /// The last byte written to port 0x70.
    index_port: u8,
    /// CMOS RAM. Bytes 0x00–0x09 and 0x32 hold the time only while B.SET is
    /// set; otherwise the time comes from the clock.
    ram: [u8; 128],
    /// The Unix time at guest time `base_ns`.
    base_unix: i64,
    base_ns: u64,
    /// Register C's PF, AF and UF.
    flags: u8,
    /// The guest time up to which the flags are up to date.
    advanced_to_ns: u64,
}

impl Rtc {
    /// An RTC reading `epoch_seconds` (Unix time) at guest time 0, with CMOS
    /// memory-size bytes for `ram_size` bytes of guest RAM.
    pub fn new(epoch_seconds: u64, ram_size: u64) -> Self {
        let mut ram = [0u8; 128];
        ram[usize::from(REG_A)] = 0x26; // 32.768 kHz time base, 1024 Hz rate
        ram[usize::from(REG_B)] = B_24H;
        ram[0x14] = 0x02; // equipment: FPU present, no floppy
        let base_kib: u16 = 640;
        ram[0x15..0x17].copy_from_slice(&base_kib.to_le_bytes());
        let low = ram_size.min(LOW_RAM_LIMIT);
        let extended_kib = (low.saturating_sub(1 << 20) >> 10).min(0xFFFF) as u16;
        ram[0x17..0x19].copy_from_slice(&extended_kib.to_le_bytes());
        ram[0x30..0x32].copy_from_slice(&extended_kib.to_le_bytes());
        let above_16m = (low.saturating_sub(16 << 20) >> 16).min(0xFFFF) as u16;
        ram[0x34..0x36].copy_from_slice(&above_16m.to_le_bytes());
        let above_4g = (ram_size.saturating_sub(low) >> 16).min(0xFF_FFFF) as u32;
        ram[0x5B..0x5E].copy_from_slice(&above_4g.to_le_bytes()[..3]);
        let checksum: u16 = ram[0x10..0x2E].iter().map(|&b| u16::from(b)).sum();
        ram[0x2E..0x30].copy_from_slice(&checksum.to_be_bytes());
        Self {
            index_port: 0,
            ram,
            base_unix: i64::try_from(epoch_seconds).unwrap_or(i64::MAX / 2),
            base_ns: 0,
            flags: 0,
            advanced_to_ns: 0,
        }
    }

    /// True while bit 7 of the index port (NMI disable) is set.
    pub fn nmi_disabled(&self) -> bool {
        self.index_port & 0x80 != 0
    }

    /// Reads port 0x70 or 0x71 at guest time `now_ns`.
    pub fn read(&mut self, port: u16, now_ns: u64) -> u8 {
        if port == RTC_INDEX {
            return self.index_port;
        }
        self.advance(now_ns);
        let index = self.index_port & 0x7F;
        match index {
            REG_A => {
                let uip = if self.update_in_progress(now_ns) { A_UIP } else { 0 };
                self.ram[usize::from(REG_A)] | uip
            }
            REG_C => {
                let value = self.flags | if self.irq_level() { C_IRQF } else { 0 };
                self.flags = 0;
                value
            }
            REG_D => D_VRT,
            _ if is_clock_register(index) && !self.setting() => self.clock_register(index, self.clock(now_ns)),
            _ => self.ram[usize::from(index)],
        }
    }

    /// Writes port 0x70 or 0x71 at guest time `now_ns`.
    pub fn write(&mut self, port: u16, value: u8, now_ns: u64) {
        if port == RTC_INDEX {
            self.index_port = value;
            return;
        }
        self.advance(now_ns);
        let index = self.index_port & 0x7F;
        match index {
            REG_A => self.ram[usize::from(REG_A)] = value & !A_UIP,
            REG_B => self.write_b(value, now_ns),
            REG_C | REG_D => {}
            _ if is_clock_register(index) && !self.setting() => {
                // Move the clock, keeping the phase within the second.
                self.freeze_registers(now_ns);
                self.ram[usize::from(index)] = value;
                self.thaw_registers(now_ns);
            }
            _ => self.ram[usize::from(index)] = value,
        }
    }

    /// The level of IRQ 8.
    pub fn irq_level(&self) -> bool {
        self.flags & self.ram[usize::from(REG_B)] & (B_PIE | B_AIE | B_UIE) != 0
    }

    /// Sets register C's flags for the periodic, alarm and update events
    /// between the last call and `now_ns`.
    pub fn advance(&mut self, now_ns: u64) {
        let from = self.advanced_to_ns;
        if now_ns <= from {
            return;
        }
        self.advanced_to_ns = now_ns;
        if let Some(period) = self.periodic_ticks() {
            if ticks_at(now_ns, RTC_BASE_HZ) / period > ticks_at(from, RTC_BASE_HZ) / period {
                self.flags |= C_PF;
            }
        }
        if self.setting() {
            return;
        }
        let (before, after) = (self.unix_at(from), self.unix_at(now_ns));
        if after > before {
            self.flags |= C_UF;
            if self.flags & C_AF == 0 && self.alarm_rings_between(before, after) {
                self.flags |= C_AF;
            }
        }
    }

    /// The guest time of the next event that would raise IRQ 8, if it is
    /// enabled and IRQ 8 is not already asserted.
    pub fn next_irq_ns(&self, now_ns: u64) -> Option<u64> {
        if self.irq_level() {
            return None;
        }
        let b = self.ram[usize::from(REG_B)];
        let periodic = match self.periodic_ticks() {
            Some(period) if b & B_PIE != 0 => {
                let next = (ticks_at(now_ns, RTC_BASE_HZ) / period + 1) * period;
                Some(super::time::time_of_tick(next, RTC_BASE_HZ))
            }
            _ => None,
        };
        let update = if b & (B_UIE | B_AIE) != 0 && !self.setting() {
            let since = now_ns.saturating_sub(self.base_ns);
            Some(self.base_ns.saturating_add((since / NS_PER_SEC + 1).saturating_mul(NS_PER_SEC)))
        } else {
            None
        };
        match (periodic, update) {
            (Some(p), Some(u)) => Some(p.min(u)),
            (p, u) => p.or(u),
        }
    }

    fn setting(&self) -> bool {
        self.ram[usize::from(REG_B)] & B_SET != 0
    }

    fn binary(&self) -> bool {
        self.ram[usize::from(REG_B)] & B_BINARY != 0
    }

    fn unix_at(&self, now_ns: u64) -> i64 {
        let secs = now_ns.saturating_sub(self.base_ns) / NS_PER_SEC;
        self.base_unix.saturating_add(secs as i64)
    }

    fn clock(&self, now_ns: u64) -> DateTime {
        DateTime::from_unix(self.unix_at(now_ns))
    }

    fn update_in_progress(&self, now_ns: u64) -> bool {
        let into_second = now_ns.saturating_sub(self.base_ns) % NS_PER_SEC;
        !self.setting() && into_second >= NS_PER_SEC - UIP_WINDOW_NS
    }

    /// The periodic interrupt's period in 32.768 kHz clocks, per register A's
    /// rate select (rates 1 and 2 are 256 Hz and 128 Hz).
    fn periodic_ticks(&self) -> Option<u64> {
        match self.ram[usize::from(REG_A)] & A_RATE {
            0 => None,
            1 => Some(128),
            2 => Some(256),
            rate => Some(1 << (rate - 1)),
        }
    }

    fn write_b(&mut self, value: u8, now_ns: u64) {
        let was_setting = self.setting();
        let mut value = value;
        if value & B_SET != 0 {
            // Setting SET also clears UIE.
            value &= !B_UIE;
            if !was_setting {
                self.freeze_registers(now_ns);
            }
        }
        self.ram[usize::from(REG_B)] = value;
        if was_setting && value & B_SET == 0 {
            self.thaw_registers(now_ns);
        }
    }

    /// Copies the clock into the time registers of the RAM.
    fn freeze_registers(&mut self, now_ns: u64) {
        let now = self.clock(now_ns);
        for index in CLOCK_REGISTERS {
            self.ram[usize::from(index)] = self.clock_register(index, now);
        }
    }

    /// Sets the clock from the time registers of the RAM, keeping the phase
    /// of the current second.
    fn thaw_registers(&mut self, now_ns: u64) {
        let field = |rtc: &Self, index: u8| rtc.decode(rtc.ram[usize::from(index)]);
        let hour = self.decode_hour(self.ram[usize::from(REG_HOURS)]);
        let time = DateTime {
            year: field(self, REG_CENTURY) * 100 + field(self, REG_YEAR),
            month: field(self, REG_MONTH),
            day: field(self, REG_DAY),
            hour,
            minute: field(self, REG_MINUTES),
            second: field(self, REG_SECONDS),
        };
        let phase = now_ns.saturating_sub(self.base_ns) % NS_PER_SEC;
        self.base_unix = time.to_unix();
        self.base_ns = now_ns - phase;
    }

    fn clock_register(&self, index: u8, now: DateTime) -> u8 {
        match index {
            REG_SECONDS => self.encode(now.second),
            REG_MINUTES => self.encode(now.minute),
            REG_HOURS => self.encode_hour(now.hour),
            REG_WEEKDAY => self.encode(now.weekday()),
            REG_DAY => self.encode(now.day),
            REG_MONTH => self.encode(now.month),
            REG_YEAR => self.encode(now.year.rem_euclid(100)),
            _ => self.encode(now.year.div_euclid(100).rem_euclid(100)),
        }
    }

    /// Encodes 0–99 in the current data mode.
    fn encode(&self, value: i64) -> u8 {
        let v = value.rem_euclid(100) as u8;
        if self.binary() {
            v
        } else {
            ((v / 10) << 4) | (v % 10)
        }
    }

    fn decode(&self, raw: u8) -> i64 {
        if self.binary() {
            i64::from(raw)
        } else {
            i64::from(raw >> 4) * 10 + i64::from(raw & 0xF)
        }
    }

    fn encode_hour(&self, hour: i64) -> u8 {
        if self.ram[usize::from(REG_B)] & B_24H != 0 {
            return self.encode(hour);
        }
        let pm = if hour >= 12 { HOUR_PM } else { 0 };
        let twelve = match hour % 12 {
            0 => 12,
            h => h,
        };
        self.encode(twelve) | pm
    }

    fn decode_hour(&self, raw: u8) -> i64 {
        if self.ram[usize::from(REG_B)] & B_24H != 0 {
            return self.decode(raw);
        }
        let twelve = self.decode(raw & !HOUR_PM) % 12;
        twelve + if raw & HOUR_PM != 0 { 12 } else { 0 }
    }

    /// True if the alarm registers match the time at some second in
    /// `(before, after]`. Every valid alarm matches once a day, so at most the
    /// last day of a long gap is searched.
    fn alarm_rings_between(&self, before: i64, after: i64) -> bool {
        let alarm = [REG_HOURS_ALARM, REG_MINUTES_ALARM, REG_SECONDS_ALARM].map(|index| self.ram[usize::from(index)]);
        let first = before.saturating_add(1).max(after - SECS_PER_DAY + 1);
        (first..=after).any(|t| {
            let time_of_day = t.rem_euclid(SECS_PER_DAY);
            let actual = [
                self.encode_hour(time_of_day / 3600),
                self.encode(time_of_day / 60 % 60),
                self.encode(time_of_day % 60),
            ];
            alarm.iter().zip(actual).all(|(&want, have)| want & ALARM_DONT_CARE == ALARM_DONT_CARE || want == have)
        })
    }
}

/// The registers that show the clock.
const CLOCK_REGISTERS: [u8; 8] =
    [REG_SECONDS, REG_MINUTES, REG_HOURS, REG_WEEKDAY, REG_DAY, REG_MONTH, REG_YEAR, REG_CENTURY];

fn is_clock_register(index: u8) -> bool {
    CLOCK_REGISTERS.contains(&index)
}

/// The RTC's ports.
pub const RTC_PORTS: Range = Range::new(RTC_INDEX as u64, 2);

/// The RTC is a timer on the board: its flags follow the guest time, and
/// IRQ 8 with them.
impl BusDevice for Rtc {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8], cx: &mut Ctx) {
        let now = cx.now_ns;
        bus::read_bytes(offset, data, |at| self.read(RTC_INDEX + at as u16, now));
        BusDevice::advance(self, cx);
        // Reading register C lowers IRQ 8, which lets the next event raise it.
        cx.timers_changed();
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8], cx: &mut Ctx) {
        let now = cx.now_ns;
        bus::write_bytes(offset, data, |at, v| self.write(RTC_INDEX + at as u16, v, now));
        BusDevice::advance(self, cx);
        cx.timers_changed();
    }

    fn is_timer(&self) -> bool {
        true
    }

    fn advance(&mut self, cx: &mut Ctx) {
        Rtc::advance(self, cx.now_ns);
        cx.set_irq(RTC_IRQ, self.irq_level());
    }

    fn next_irq(&self, now_ns: u64) -> Option<TimerIrq> {
        Some(TimerIrq { line: Some(RTC_IRQ), at_ns: self.next_irq_ns(now_ns)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-02-29 13:45:30 UTC, a Thursday.
    const LEAP_DAY: u64 = 1_709_214_330;
    const SEC: u64 = NS_PER_SEC;

    fn reg(rtc: &mut Rtc, index: u8, now: u64) -> u8 {
        rtc.write(RTC_INDEX, index, now);
        rtc.read(RTC_DATA, now)
    }

    fn set(rtc: &mut Rtc, index: u8, value: u8, now: u64) {
        rtc.write(RTC_INDEX, index, now);
        rtc.write(RTC_DATA, value, now);
    }

    fn time_regs(rtc: &mut Rtc, now: u64) -> [u8; 8] {
        CLOCK_REGISTERS.map(|i| reg(rtc, i, now))
    }

    #[test]
    fn calendar_conversion_round_trips_across_eras() {
        for t in [
            0i64,
            -1,
            951_782_400,   // 2000-02-29
            4_107_542_400, // 2100-03-01
            LEAP_DAY as i64,
            253_402_300_799, // 9999-12-31 23:59:59
        ] {
            assert_eq!(DateTime::from_unix(t).to_unix(), t, "t = {t}");
        }
        let d = DateTime::from_unix(951_782_400);
        assert_eq!((d.year, d.month, d.day), (2000, 2, 29));
    }

    #[test]
    fn time_registers_are_bcd_24h_by_default() {
        let mut rtc = Rtc::new(LEAP_DAY, 0);
        // seconds, minutes, hours, weekday, day, month, year, century
        assert_eq!(time_regs(&mut rtc, 0), [0x30, 0x45, 0x13, 0x05, 0x29, 0x02, 0x24, 0x20]);
    }

    #[test]
    fn binary_mode_and_12_hour_mode() {
        let mut rtc = Rtc::new(LEAP_DAY, 0);
        set(&mut rtc, REG_B, B_BINARY | B_24H, 0);
        assert_eq!(time_regs(&mut rtc, 0), [30, 45, 13, 5, 29, 2, 24, 20]);
        set(&mut rtc, REG_B, B_BINARY, 0);
        assert_eq!(reg(&mut rtc, REG_HOURS, 0), 0x80 | 1, "1 PM");
        set(&mut rtc, REG_B, 0, 0);
        let eleven_hours = 11 * 3600 * SEC;
        assert_eq!(reg(&mut rtc, REG_HOURS, eleven_hours), 0x12, "00:45 is 12 AM");
        assert_eq!(reg(&mut rtc, REG_HOURS, eleven_hours - 3600 * SEC), 0x80 | 0x11);
    }

    #[test]
    fn clock_advances_with_guest_time_across_midnight_and_month_end() {
        let mut rtc = Rtc::new(LEAP_DAY, 0);
        let to_midnight = (10 * 3600 + 14 * 60 + 30) * SEC;
        assert_eq!(time_regs(&mut rtc, to_midnight - 1), [0x59, 0x59, 0x23, 0x05, 0x29, 0x02, 0x24, 0x20]);
        assert_eq!(time_regs(&mut rtc, to_midnight), [0x00, 0x00, 0x00, 0x06, 0x01, 0x03, 0x24, 0x20]);
    }

    #[test]
    fn uip_is_set_only_in_the_last_244_us_of_a_second() {
        let mut rtc = Rtc::new(LEAP_DAY, 0);
        assert_eq!(reg(&mut rtc, REG_A, 0) & A_UIP, 0);
        assert_eq!(reg(&mut rtc, REG_A, SEC - UIP_WINDOW_NS - 1) & A_UIP, 0);
        assert_eq!(reg(&mut rtc, REG_A, SEC - UIP_WINDOW_NS) & A_UIP, A_UIP);
        assert_eq!(reg(&mut rtc, REG_A, SEC - 1) & A_UIP, A_UIP);
        assert_eq!(reg(&mut rtc, REG_A, SEC) & A_UIP, 0);
        assert_eq!(reg(&mut rtc, REG_A, 0) & 0x7F, 0x26);
    }

    #[test]
    fn register_d_reports_valid_ram_and_time() {
        let mut rtc = Rtc::new(0, 0);
        // Linux's mc146818_get_time gives up if bit 6 is set.
        assert_eq!(reg(&mut rtc, REG_D, 0), D_VRT);
    }

    #[test]
    fn setting_the_time_with_set_bit_freezes_then_moves_the_clock() {
        let mut rtc = Rtc::new(LEAP_DAY, 0);
        set(&mut rtc, REG_B, B_SET | B_24H, SEC / 2);
        assert_eq!(reg(&mut rtc, REG_SECONDS, 5 * SEC), 0x30, "frozen while SET");
        set(&mut rtc, REG_SECONDS, 0x00, 5 * SEC);
        set(&mut rtc, REG_MINUTES, 0x00, 5 * SEC);
        set(&mut rtc, REG_HOURS, 0x08, 5 * SEC);
        set(&mut rtc, REG_DAY, 0x01, 5 * SEC);
        set(&mut rtc, REG_MONTH, 0x01, 5 * SEC);
        set(&mut rtc, REG_YEAR, 0x99, 5 * SEC);
        set(&mut rtc, REG_CENTURY, 0x19, 5 * SEC);
        assert_eq!(reg(&mut rtc, REG_YEAR, 6 * SEC), 0x99, "plain bytes while SET");
        set(&mut rtc, REG_B, B_24H, 6 * SEC);
        assert_eq!(time_regs(&mut rtc, 8 * SEC), [0x02, 0x00, 0x08, 0x06, 0x01, 0x01, 0x99, 0x19]);
    }

    #[test]
    fn writing_a_time_register_while_running_moves_the_clock() {
        let mut rtc = Rtc::new(LEAP_DAY, 0);
        set(&mut rtc, REG_MINUTES, 0x10, SEC / 2);
        assert_eq!(reg(&mut rtc, REG_MINUTES, SEC / 2), 0x10);
        assert_eq!(reg(&mut rtc, REG_SECONDS, SEC), 0x31, "phase kept");
        set(&mut rtc, REG_WEEKDAY, 0x01, SEC);
        assert_eq!(reg(&mut rtc, REG_WEEKDAY, SEC), 0x05, "weekday follows the date");
    }

    #[test]
    fn update_flag_raises_irq8_when_enabled_and_clears_on_read_of_c() {
        let mut rtc = Rtc::new(LEAP_DAY, 0);
        rtc.advance(2 * SEC);
        assert!(!rtc.irq_level(), "UF is set but UIE is off");
        set(&mut rtc, REG_B, B_24H | B_UIE, 2 * SEC);
        assert!(rtc.irq_level());
        assert_eq!(rtc.next_irq_ns(2 * SEC), None, "already asserted");
        // PF is set too (at register A's default 1024 Hz), but PIE is off.
        assert_eq!(reg(&mut rtc, REG_C, 2 * SEC), C_IRQF | C_PF | C_UF);
        assert!(!rtc.irq_level());
        assert_eq!(rtc.next_irq_ns(2 * SEC), Some(3 * SEC));
        rtc.advance(3 * SEC - 1);
        assert!(!rtc.irq_level());
        rtc.advance(3 * SEC);
        assert!(rtc.irq_level());
    }

    #[test]
    fn periodic_flag_follows_the_rate_select() {
        let mut rtc = Rtc::new(0, 0);
        set(&mut rtc, REG_A, 0x2F, 0); // 2 Hz
        set(&mut rtc, REG_B, B_24H | B_PIE, 0);
        reg(&mut rtc, REG_C, 0);
        rtc.advance(SEC / 2 - 1);
        assert!(!rtc.irq_level());
        assert_eq!(rtc.next_irq_ns(SEC / 2 - 1), Some(SEC / 2));
        rtc.advance(SEC / 2);
        assert!(rtc.irq_level());
        assert_eq!(reg(&mut rtc, REG_C, SEC / 2), C_IRQF | C_PF);
    }

    #[test]
    fn alarm_flag_sets_when_the_time_matches_even_across_a_gap() {
        let mut rtc = Rtc::new(LEAP_DAY, 0);
        set(&mut rtc, REG_HOURS_ALARM, 0x14, 0);
        set(&mut rtc, REG_MINUTES_ALARM, ALARM_DONT_CARE, 0);
        set(&mut rtc, REG_SECONDS_ALARM, 0x00, 0);
        set(&mut rtc, REG_B, B_24H | B_AIE, 0);
        rtc.advance(13 * 60 * SEC);
        assert!(!rtc.irq_level(), "13:58:30 does not match 14:xx:00");
        rtc.advance(15 * 60 * SEC);
        assert!(rtc.irq_level(), "14:00:00 passed during the gap");
        assert_eq!(reg(&mut rtc, REG_C, 15 * 60 * SEC) & C_AF, C_AF);
        rtc.advance(30 * 86_400 * SEC);
        assert!(rtc.irq_level(), "a long gap passes 14:xx:00 too");
    }

    #[test]
    fn cmos_memory_bytes_describe_the_guest_ram() {
        let mut rtc = Rtc::new(0, 512 << 20);
        let byte = |rtc: &mut Rtc, i| reg(rtc, i, 0);
        assert_eq!(byte(&mut rtc, 0x10), 0, "no floppy");
        assert_eq!((byte(&mut rtc, 0x15), byte(&mut rtc, 0x16)), (0x80, 0x02));
        // 511 MiB of extended memory does not fit in 16 bits of KiB.
        assert_eq!((byte(&mut rtc, 0x17), byte(&mut rtc, 0x18)), (0xFF, 0xFF));
        assert_eq!((byte(&mut rtc, 0x30), byte(&mut rtc, 0x31)), (0xFF, 0xFF));
        let above_16m = (512u16 - 16) * 16;
        assert_eq!(u16::from_le_bytes([byte(&mut rtc, 0x34), byte(&mut rtc, 0x35)]), above_16m);
        assert_eq!(byte(&mut rtc, 0x5B), 0);
        let mut big = Rtc::new(0, 5 << 30);
        let above_4g = ((5u64 << 30) - LOW_RAM_LIMIT) as u32;
        let bytes = [reg(&mut big, 0x5B, 0), reg(&mut big, 0x5C, 0), reg(&mut big, 0x5D, 0)];
        assert_eq!(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], 0]), above_4g >> 16);
        let small = Rtc::new(0, 32 << 20);
        assert_eq!(u16::from_le_bytes([small.ram[0x17], small.ram[0x18]]), 31 * 1024);
        let sum: u16 = small.ram[0x10..0x2E].iter().map(|&b| u16::from(b)).sum();
        assert_eq!(u16::from_be_bytes([small.ram[0x2E], small.ram[0x2F]]), sum);
    }

    #[test]
    fn plain_cmos_bytes_read_back_and_index_keeps_the_nmi_bit() {
        let mut rtc = Rtc::new(0, 0);
        set(&mut rtc, 0x80 | 0x40, 0xAB, 0);
        assert!(rtc.nmi_disabled());
        assert_eq!(rtc.read(RTC_INDEX, 0), 0xC0);
        assert_eq!(rtc.read(RTC_DATA, 0), 0xAB);
        set(&mut rtc, 0x40, 0xCD, 0);
        assert!(!rtc.nmi_disabled());
        assert_eq!(reg(&mut rtc, 0x40, 0), 0xCD);
        set(&mut rtc, REG_D, 0x00, 0);
        assert_eq!(reg(&mut rtc, REG_D, 0), D_VRT, "register D is read-only");
    }
}
