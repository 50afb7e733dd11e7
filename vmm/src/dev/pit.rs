//! The 8254 programmable interval timer (ports 0x40–0x43).
//!
//! Three counters run from the 1.193182 MHz clock. Counter 0's output drives
//! IRQ 0; counter 1 (DRAM refresh on old PCs) is only modelled as a counter;
//! counter 2's gate is port 0x61 bit 0 and its output is port 0x61 bit 5.
//!
//! **Time.** Nothing ticks: every count and output is a pure function of the
//! guest time the caller passes in, of the tick at which the count was loaded,
//! and of the gate history. A guest that reads a counter in a tight loop (as
//! Linux's TSC calibration does) therefore sees exact counts, and a long gap
//! between calls costs nothing. IRQ 0 is reported as "at least one rising edge
//! of OUT0 happened since the last poll", so after a gap the PIC latches one
//! request, as it would on hardware.
//!
//! **Load timing.** As on the 8254, a count written at tick `w` is loaded on
//! the next clock (`w + 1`) and decremented from the clock after that. So in
//! mode 0 OUT goes high `N + 1` clocks after the count is written, and in
//! modes 2 and 3 the rising edges of OUT fall at `w + 1 + k·N`.
//!
//! **Simplifications.** Modes 2 and 3 treat a count of 1 as 2 (the data sheet
//! makes 1 illegal there). A new count written to a running mode-3 counter is
//! taken at the end of the current period, as in mode 2, rather than at the
//! end of the current half-period. The counter-1 and counter-0 gates are tied
//! high, as on the PC.

use super::time::{ticks_at, time_of_tick};

/// The 8254's input clock on the PC, in Hz.
pub const PIT_HZ: u64 = 1_193_182;
/// First port of the PIT: counter 0; 0x43 is the control word register.
pub const PIT_BASE: u16 = 0x40;
/// The PIT's last port, the control word register.
pub const PIT_CONTROL: u16 = 0x43;

/// How a counter's 16-bit value moves through its 8-bit port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Lsb = 1,
    Msb = 2,
    Word = 3,
}

impl Access {
    fn from_bits(bits: u8) -> Self {
        match bits & 3 {
            1 => Access::Lsb,
            2 => Access::Msb,
            _ => Access::Word,
        }
    }
}

/// What a counter's counting element is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Run {
    /// Not counting, holding `value` (in register format): no count since the
    /// control word, half of a two-byte count in mode 0, or a mode 1/5 counter
    /// waiting for its gate trigger.
    Idle { value: u16 },
    /// Counting; the count was loaded on clock `start`.
    Running { start: u64 },
    /// Held by a low gate, `elapsed` clocks after the load.
    Paused { elapsed: u64 },
}

/// Where a running or paused counter is in its cycle.
#[derive(Clone, Copy, Debug)]
struct Phase {
    /// Clocks since the count was loaded.
    elapsed: u64,
    /// The loaded count, as a number of clocks (0 means 65536 or 10000).
    period: u64,
    /// False while the gate holds the counter.
    counting: bool,
}

#[derive(Clone, Debug)]
struct Counter {
    /// The operating mode, 0–5 (6 and 7 alias 2 and 3).
    mode: u8,
    /// The mode bits as programmed, for the read-back status.
    mode_bits: u8,
    access: Access,
    bcd: bool,
    /// The count register: the last count written.
    count_register: u16,
    /// The count the counting element is working from.
    active: u16,
    run: Run,
    /// Modes 2 and 3: a count written while running, taken at the end of the
    /// current period: (the tick that period ends, the count).
    pending: Option<(u64, u16)>,
    gate: bool,
    /// A count has been written since the last control word.
    has_count: bool,
    /// The count register has not yet been moved into the counting element.
    null_count: bool,
    /// The first byte of a two-byte count.
    write_lsb: Option<u8>,
    /// Two-byte reads: the next read returns the most significant byte.
    read_msb_next: bool,
    count_latch: Option<u16>,
    status_latch: Option<u8>,
}

impl Counter {
    /// A counter in `mode` with `access`, counting `count` from tick 0 if
    /// `running`.
    const fn new(mode: u8, access: Access, count: u16, running: bool, gate: bool) -> Self {
        Self {
            mode,
            mode_bits: mode,
            access,
            bcd: false,
            count_register: count,
            active: count,
            run: if running { Run::Running { start: 0 } } else { Run::Idle { value: 0 } },
            pending: None,
            gate,
            has_count: running,
            null_count: !running,
            write_lsb: None,
            read_msb_next: false,
            count_latch: None,
            status_latch: None,
        }
    }

    fn modulus(&self) -> u64 {
        if self.bcd {
            10_000
        } else {
            65_536
        }
    }

    /// The number of clocks a count `raw` stands for.
    fn period(&self, raw: u16) -> u64 {
        let n = if self.bcd { bcd_to_bin(raw) } else { u64::from(raw) };
        let n = if n == 0 { self.modulus() } else { n };
        if matches!(self.mode, 2 | 3) {
            n.max(2)
        } else {
            n
        }
    }

    /// The load clock and count in force at `tick`, with a pending count
    /// taken if its period boundary has passed.
    fn effective(&self, start: u64, tick: u64) -> (u64, u16) {
        match self.pending {
            Some((boundary, count)) if boundary <= tick => (boundary, count),
            _ => (start, self.active),
        }
    }

    fn phase(&self, tick: u64) -> Option<Phase> {
        match self.run {
            Run::Idle { .. } => None,
            Run::Running { start } => {
                let (start, count) = self.effective(start, tick);
                Some(Phase { elapsed: tick.saturating_sub(start), period: self.period(count), counting: true })
            }
            Run::Paused { elapsed } => Some(Phase { elapsed, period: self.period(self.active), counting: false }),
        }
    }

    /// Commits a pending count whose period boundary has passed.
    fn settle(&mut self, tick: u64) {
        if let (Run::Running { .. }, Some((boundary, count))) = (self.run, self.pending) {
            if boundary <= tick {
                self.run = Run::Running { start: boundary };
                self.active = count;
                self.pending = None;
                self.null_count = false;
            }
        }
    }

    /// The counter's value at `tick`, in register format (binary or BCD).
    fn value(&self, tick: u64) -> u16 {
        let Some(p) = self.phase(tick) else {
            return match self.run {
                Run::Idle { value } => value,
                _ => 0,
            };
        };
        let modulus = self.modulus();
        let clocks = match self.mode {
            2 => p.period - p.elapsed % p.period,
            3 => square_wave_value(p.period, p.elapsed % p.period),
            // Modes 0, 1, 4, 5 count down through zero and wrap.
            _ => {
                let v = i128::from(p.period) - i128::from(p.elapsed);
                u64::try_from(v.rem_euclid(i128::from(modulus))).unwrap_or(0)
            }
        } % modulus;
        if self.bcd {
            bin_to_bcd(clocks)
        } else {
            clocks as u16
        }
    }

    /// The level of OUT at `tick`.
    fn out(&self, tick: u64) -> bool {
        let Some(p) = self.phase(tick) else {
            // Mode 0 starts low; every other mode starts high.
            return self.mode != 0;
        };
        match self.mode {
            0 | 1 => p.elapsed >= p.period,
            2 => !p.counting || p.elapsed % p.period != p.period - 1,
            3 => !p.counting || p.elapsed % p.period < p.period.div_ceil(2),
            // Modes 4 and 5 strobe low for the one clock at terminal count.
            _ => p.elapsed != p.period,
        }
    }

    /// True if OUT rises at some tick in `(from, to]`.
    fn rises_between(&self, from: u64, to: u64) -> bool {
        let Run::Running { start } = self.run else {
            return false;
        };
        let (mut start, mut count, mut from) = (start, self.active, from);
        let mut rose = false;
        if let Some((boundary, next)) = self.pending {
            if boundary <= to {
                if from < boundary {
                    rose |= self.rises_in_arming(start, count, from, boundary);
                    from = boundary;
                }
                start = boundary;
                count = next;
            }
        }
        rose || self.rises_in_arming(start, count, from, to)
    }

    /// Rising edges in `(from, to]` of a counter that loaded `count` at
    /// `start` and has counted without pause since.
    fn rises_in_arming(&self, start: u64, count: u16, from: u64, to: u64) -> bool {
        if to <= from {
            return false;
        }
        let n = self.period(count);
        let (a, b) = (from.saturating_sub(start), to.saturating_sub(start));
        match self.mode {
            0 | 1 => a < n && n <= b,
            2 | 3 => b / n > a / n,
            // The strobe ends, and OUT rises, at n + 1.
            _ => a <= n && n < b,
        }
    }

    /// The first tick after `tick` at which OUT rises, if it will without
    /// further programming.
    fn next_rise(&self, tick: u64) -> Option<u64> {
        let Run::Running { start } = self.run else {
            return None;
        };
        let (start, count) = self.effective(start, tick);
        let n = self.period(count);
        let e = tick.saturating_sub(start);
        let at = match self.mode {
            0 | 1 => (e < n).then_some(n)?,
            2 | 3 => (e / n + 1).saturating_mul(n),
            _ => (e <= n).then_some(n + 1)?,
        };
        Some(start.saturating_add(at))
    }

    /// The first tick after `tick` at which OUT may change level or a
    /// pending count takes over; `None` if neither happens without further
    /// programming. Until then a poll of OUT sees nothing new.
    fn next_change(&self, tick: u64) -> Option<u64> {
        let Run::Running { start: first } = self.run else {
            return None;
        };
        let boundary = self.pending.map(|(b, _)| b).filter(|&b| b > tick);
        if tick < first {
            return Some(boundary.map_or(first, |b| b.min(first)));
        }
        let (start, count) = self.effective(first, tick);
        let n = self.period(count);
        let e = tick - start;
        let r = e % n;
        let at = match self.mode {
            0 | 1 => (e < n).then_some(n),
            // Low for the last clock of each period.
            2 => Some(if r < n - 1 { e - r + n - 1 } else { e + 1 }),
            // Low for the second half of each period.
            3 => {
                let h = n.div_ceil(2);
                Some(if r < h { e - r + h } else { e - r + n })
            }
            // A one-clock strobe at terminal count.
            _ => (e <= n).then_some(if e < n { n } else { n + 1 }),
        };
        let change = at.map(|at| start.saturating_add(at));
        match (change, boundary) {
            (Some(c), Some(b)) => Some(c.min(b)),
            (c, b) => c.or(b),
        }
    }

    /// Loads the count register into the counting element, starting it on
    /// the next clock if the gate allows.
    fn start_counting(&mut self, tick: u64) {
        self.active = self.count_register;
        self.pending = None;
        self.null_count = false;
        self.run = if self.gate { Run::Running { start: tick.saturating_add(1) } } else { Run::Paused { elapsed: 0 } };
    }

    fn control_word(&mut self, value: u8, tick: u64) {
        self.settle(tick);
        let access = (value >> 4) & 3;
        if access == 0 {
            // Counter latch command.
            if self.count_latch.is_none() {
                self.count_latch = Some(self.value(tick));
            }
            return;
        }
        let held = self.value(tick);
        self.mode_bits = (value >> 1) & 7;
        self.mode = if self.mode_bits >= 6 { self.mode_bits - 4 } else { self.mode_bits };
        self.access = Access::from_bits(access);
        self.bcd = value & 1 != 0;
        self.run = Run::Idle { value: held };
        self.pending = None;
        self.has_count = false;
        self.null_count = true;
        self.write_lsb = None;
        self.read_msb_next = false;
        self.count_latch = None;
        self.status_latch = None;
    }

    fn read_back(&mut self, value: u8, tick: u64) {
        self.settle(tick);
        if value & 0x20 == 0 && self.count_latch.is_none() {
            self.count_latch = Some(self.value(tick));
        }
        if value & 0x10 == 0 && self.status_latch.is_none() {
            self.status_latch = Some(self.status(tick));
        }
    }

    fn status(&self, tick: u64) -> u8 {
        let loading = matches!(self.run, Run::Running { start } if tick < start);
        (u8::from(self.out(tick)) << 7)
            | (u8::from(self.null_count || loading) << 6)
            | ((self.access as u8) << 4)
            | (self.mode_bits << 1)
            | u8::from(self.bcd)
    }

    fn write_count(&mut self, byte: u8, tick: u64) {
        self.settle(tick);
        match self.access {
            Access::Lsb => self.load(u16::from(byte), tick),
            Access::Msb => self.load(u16::from(byte) << 8, tick),
            Access::Word => match self.write_lsb.take() {
                Some(lsb) => self.load(u16::from(lsb) | u16::from(byte) << 8, tick),
                None => {
                    self.write_lsb = Some(byte);
                    if self.mode == 0 {
                        // Writing the first byte stops a mode-0 count and
                        // drops OUT.
                        self.run = Run::Idle { value: self.value(tick) };
                    }
                }
            },
        }
    }

    fn load(&mut self, count: u16, tick: u64) {
        self.count_register = count;
        self.has_count = true;
        self.null_count = true;
        match self.mode {
            0 | 4 => self.start_counting(tick),
            // Modes 1 and 5 take the count on the next gate trigger.
            1 | 5 => {}
            _ => match self.run {
                Run::Running { start } => {
                    let n = self.period(self.active);
                    let e = tick.saturating_sub(start);
                    let boundary = start.saturating_add((e / n + 1).saturating_mul(n));
                    self.pending = Some((boundary, count));
                }
                // Loaded when the gate rises.
                Run::Paused { .. } => {}
                Run::Idle { .. } => self.start_counting(tick),
            },
        }
    }

    fn read(&mut self, tick: u64) -> u8 {
        self.settle(tick);
        if let Some(status) = self.status_latch.take() {
            return status;
        }
        let value = self.count_latch.unwrap_or_else(|| self.value(tick));
        let [lsb, msb] = value.to_le_bytes();
        match self.access {
            Access::Lsb => {
                self.count_latch = None;
                lsb
            }
            Access::Msb => {
                self.count_latch = None;
                msb
            }
            Access::Word if self.read_msb_next => {
                self.read_msb_next = false;
                self.count_latch = None;
                msb
            }
            Access::Word => {
                self.read_msb_next = true;
                lsb
            }
        }
    }

    fn set_gate(&mut self, level: bool, tick: u64) {
        self.settle(tick);
        if level == self.gate {
            return;
        }
        self.gate = level;
        match (self.mode, level, self.run) {
            // Modes 0 and 4: the gate suspends and resumes counting.
            (0 | 4, false, Run::Running { start }) => self.run = Run::Paused { elapsed: tick.saturating_sub(start) },
            (0 | 4, true, Run::Paused { elapsed }) => self.run = Run::Running { start: tick.saturating_sub(elapsed) },
            // Modes 1 and 5: a rising gate (re)triggers the count.
            (1 | 5, true, _) if self.has_count => self.start_counting(tick),
            // Modes 2 and 3: a low gate stops the counter and forces OUT
            // high; a rising gate reloads it.
            (2 | 3, false, Run::Running { start }) => {
                self.pending = None;
                self.run = Run::Paused { elapsed: tick.saturating_sub(start) };
            }
            (2 | 3, true, Run::Paused { .. }) => self.start_counting(tick),
            _ => {}
        }
    }
}

/// The count a mode-3 counter shows `p` clocks into a period of `n`: it
/// counts down by two through each half, and for odd `n` spends one extra
/// clock (showing `n`) at the start of the high half.
fn square_wave_value(n: u64, p: u64) -> u64 {
    let high = n.div_ceil(2);
    if n & 1 == 0 {
        if p < high {
            n - 2 * p
        } else {
            n - 2 * (p - high)
        }
    } else if p == 0 {
        n
    } else if p < high {
        n + 1 - 2 * p
    } else {
        n - 1 - 2 * (p - high)
    }
}

/// Decodes a four-digit BCD count; digits above 9 count at face value.
fn bcd_to_bin(raw: u16) -> u64 {
    (0..4).fold(0, |acc, i| acc * 10 + u64::from((raw >> (12 - 4 * i)) & 0xF))
}

/// Encodes `value % 10000` as four BCD digits.
fn bin_to_bcd(value: u64) -> u16 {
    let v = value % 10_000;
    (((v / 1000) << 12) | ((v / 100 % 10) << 8) | ((v / 10 % 10) << 4) | (v % 10)) as u16
}

/// What IRQ 0 did since the last poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Irq0 {
    /// OUT0 rose at least once since the previous poll.
    pub rose: bool,
    /// The level of OUT0 now.
    pub level: bool,
}

/// The three counters of the 8254.
#[derive(Clone, Debug)]
pub struct Pit {
    counters: [Counter; 3],
    /// The tick up to which IRQ 0 edges have been reported.
    irq0_polled: u64,
    /// Before this guest time OUT0 neither rises nor changes level: a poll
    /// answers from `irq0_level` without the divisions (a poll comes with
    /// every exit). 0 after any access, which may reprogram counter 0.
    irq0_quiet_until_ns: u64,
    irq0_level: bool,
}

impl Default for Pit {
    fn default() -> Self {
        Self::new()
    }
}

impl Pit {
    /// The PIT as a PC BIOS leaves it: counter 0 in mode 3 with count 65536
    /// (18.2 Hz), counter 1 in mode 2 with count 18 (refresh), both running
    /// since time 0; counter 2 unprogrammed with its gate low.
    pub const fn new() -> Self {
        Self {
            counters: [
                Counter::new(3, Access::Word, 0, true, true),
                Counter::new(2, Access::Lsb, 18, true, true),
                Counter::new(0, Access::Word, 0, false, false),
            ],
            irq0_polled: 0,
            irq0_quiet_until_ns: 0,
            irq0_level: false,
        }
    }

    /// Reads port `PIT_BASE + offset` (offset 0–3) at guest time `now_ns`.
    pub fn read(&mut self, offset: u16, now_ns: u64) -> u8 {
        self.irq0_quiet_until_ns = 0;
        let tick = ticks_at(now_ns, PIT_HZ);
        match offset {
            0..=2 => self.counters[usize::from(offset)].read(tick),
            // The control word register cannot be read.
            _ => 0xFF,
        }
    }

    /// Writes port `PIT_BASE + offset` (offset 0–3) at guest time `now_ns`.
    pub fn write(&mut self, offset: u16, value: u8, now_ns: u64) {
        self.irq0_quiet_until_ns = 0;
        let tick = ticks_at(now_ns, PIT_HZ);
        match offset {
            0..=2 => self.counters[usize::from(offset)].write_count(value, tick),
            _ => match value >> 6 {
                3 => {
                    for (i, counter) in self.counters.iter_mut().enumerate() {
                        if value & (2 << i) != 0 {
                            counter.read_back(value, tick);
                        }
                    }
                }
                select => self.counters[usize::from(select)].control_word(value, tick),
            },
        }
    }

    /// Drives counter 2's gate (port 0x61 bit 0).
    pub fn set_gate2(&mut self, level: bool, now_ns: u64) {
        self.counters[2].set_gate(level, ticks_at(now_ns, PIT_HZ));
    }

    /// Counter 2's output (port 0x61 bit 5).
    pub fn out2(&self, now_ns: u64) -> bool {
        self.counters[2].out(ticks_at(now_ns, PIT_HZ))
    }

    /// Reports whether OUT0 rose since the previous poll, and its level now.
    pub fn poll_irq0(&mut self, now_ns: u64) -> Irq0 {
        if now_ns < self.irq0_quiet_until_ns {
            return Irq0 { rose: false, level: self.irq0_level };
        }
        let tick = ticks_at(now_ns, PIT_HZ);
        let irq0 = self.poll_irq0_at(tick);
        self.irq0_level = irq0.level;
        self.irq0_quiet_until_ns = self.counters[0].next_change(tick).map_or(u64::MAX, |t| time_of_tick(t, PIT_HZ));
        irq0
    }

    /// [`Pit::poll_irq0`] worked out from the counter at PIT clock `tick`,
    /// without the shortcut.
    fn poll_irq0_at(&mut self, tick: u64) -> Irq0 {
        let counter = &mut self.counters[0];
        let rose = counter.rises_between(self.irq0_polled, tick);
        counter.settle(tick);
        self.irq0_polled = self.irq0_polled.max(tick);
        Irq0 { rose, level: counter.out(tick) }
    }

    /// The guest time of the next rising edge of OUT0 after `now_ns`, if the
    /// counter will produce one without being reprogrammed.
    pub fn next_irq0_ns(&self, now_ns: u64) -> Option<u64> {
        let tick = ticks_at(now_ns, PIT_HZ);
        let rise = self.counters[0].next_rise(tick)?;
        Some(time_of_tick(rise, PIT_HZ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CH0: u16 = 0;
    const CH2: u16 = 2;
    const CONTROL: u16 = 3;

    /// The guest time at which PIT tick `tick` begins.
    fn at(tick: u64) -> u64 {
        time_of_tick(tick, PIT_HZ)
    }

    fn program(pit: &mut Pit, control: u8, count: u16, tick: u64) {
        let channel = u16::from(control >> 6);
        pit.write(CONTROL, control, at(tick));
        pit.write(channel, count as u8, at(tick));
        pit.write(channel, (count >> 8) as u8, at(tick));
    }

    fn latched_count(pit: &mut Pit, channel: u16, tick: u64) -> u16 {
        pit.write(CONTROL, (channel as u8) << 6, at(tick));
        let lsb = pit.read(channel, at(tick));
        let msb = pit.read(channel, at(tick));
        u16::from_le_bytes([lsb, msb])
    }

    #[test]
    fn mode2_counts_down_from_n_to_1_and_reloads_each_period() {
        let mut pit = Pit::new();
        program(&mut pit, 0x34, 1000, 500); // loads on tick 501
        assert_eq!(latched_count(&mut pit, CH0, 501), 1000);
        assert_eq!(latched_count(&mut pit, CH0, 502), 999);
        assert_eq!(latched_count(&mut pit, CH0, 501 + 999), 1);
        assert_eq!(latched_count(&mut pit, CH0, 501 + 1000), 1000);
        assert_eq!(latched_count(&mut pit, CH0, 501 + 1000 * 7 + 250), 750);
    }

    #[test]
    fn mode2_raises_exactly_one_edge_per_period() {
        let mut pit = Pit::new();
        program(&mut pit, 0x34, 1193, 0);
        pit.poll_irq0(at(0));
        let mut edges = Vec::new();
        for tick in 1..=1193 * 5 + 10 {
            if pit.poll_irq0(at(tick)).rose {
                edges.push(tick);
            }
        }
        assert_eq!(edges, [1194, 1194 + 1193, 1194 + 2 * 1193, 1194 + 3 * 1193, 1194 + 4 * 1193]);
    }

    #[test]
    fn mode2_output_is_low_for_one_clock_before_reload() {
        let mut pit = Pit::new();
        program(&mut pit, 0x34, 10, 0);
        let lows: Vec<u64> = (0..40).filter(|&t| !pit.poll_irq0(at(t)).level).collect();
        assert_eq!(lows, [10, 20, 30]);
    }

    #[test]
    fn irq0_after_a_long_gap_is_a_single_edge() {
        let mut pit = Pit::new();
        program(&mut pit, 0x34, 1193, 0);
        pit.poll_irq0(at(0));
        // A guest that halted for ten seconds sees one pending edge, not ten
        // thousand; the next poll inside the same period sees none.
        let t = 10 * PIT_HZ;
        assert!(pit.poll_irq0(at(t)).rose);
        assert!(!pit.poll_irq0(at(t)).rose);
        let next = pit.next_irq0_ns(at(t)).unwrap();
        assert!(next > at(t));
        assert!(!pit.poll_irq0(next - 1).rose);
        assert!(pit.poll_irq0(next).rose);
    }

    #[test]
    fn next_irq0_is_the_next_period_boundary() {
        let mut pit = Pit::new();
        program(&mut pit, 0x34, 100, 0);
        assert_eq!(pit.next_irq0_ns(at(0)), Some(at(101)));
        assert_eq!(pit.next_irq0_ns(at(101)), Some(at(201)));
        assert_eq!(pit.next_irq0_ns(at(150)), Some(at(201)));
    }

    #[test]
    fn mode3_is_a_square_wave_with_edges_every_period() {
        let mut pit = Pit::new();
        program(&mut pit, 0x36, 10, 0);
        let levels: Vec<bool> = (1..21).map(|t| pit.poll_irq0(at(t)).level).collect();
        let expect: Vec<bool> = (0..20).map(|e| e % 10 < 5).collect();
        assert_eq!(levels, expect);
        let mut pit = Pit::new();
        program(&mut pit, 0x36, 11931, 0); // 100 Hz
        pit.poll_irq0(at(0));
        let edges = (1..=PIT_HZ).filter(|&t| pit.poll_irq0(at(t)).rose).count();
        assert_eq!(edges, (PIT_HZ as usize - 1) / 11931);
    }

    #[test]
    fn mode3_counts_down_by_two_in_each_half() {
        let mut pit = Pit::new();
        program(&mut pit, 0x36, 8, 0);
        let values: Vec<u16> = (1..9).map(|t| latched_count(&mut pit, CH0, t)).collect();
        assert_eq!(values, [8, 6, 4, 2, 8, 6, 4, 2]);
        program(&mut pit, 0x36, 5, 100);
        let values: Vec<u16> = (101..106).map(|t| latched_count(&mut pit, CH0, t)).collect();
        assert_eq!(values, [5, 4, 2, 4, 2]);
    }

    #[test]
    fn count_zero_means_65536() {
        let mut pit = Pit::new();
        program(&mut pit, 0x34, 0, 0);
        assert_eq!(pit.next_irq0_ns(at(0)), Some(at(1 + 65536)));
        assert_eq!(latched_count(&mut pit, CH0, 2), 65535);
    }

    #[test]
    fn mode0_on_channel2_raises_out_after_n_plus_one_clocks() {
        let mut pit = Pit::new();
        pit.set_gate2(true, at(0));
        program(&mut pit, 0xB0, 100, 10);
        assert!(!pit.out2(at(10)));
        assert!(!pit.out2(at(110)));
        assert!(pit.out2(at(111)));
        assert!(pit.out2(at(100_000)), "mode 0 stays high");
        assert_eq!(latched_count(&mut pit, CH2, 111), 0);
        assert_eq!(latched_count(&mut pit, CH2, 112), 0xFFFF, "and keeps counting");
    }

    #[test]
    fn mode0_gate_low_suspends_counting() {
        let mut pit = Pit::new();
        pit.set_gate2(true, at(0));
        program(&mut pit, 0xB0, 100, 0);
        pit.set_gate2(false, at(51));
        assert_eq!(latched_count(&mut pit, CH2, 1000), 50);
        pit.set_gate2(true, at(1000));
        assert_eq!(latched_count(&mut pit, CH2, 1010), 40);
        assert!(!pit.out2(at(1049)));
        assert!(pit.out2(at(1050)));
    }

    #[test]
    fn quick_pit_calibrate_sees_the_msb_fall_every_256_clocks() {
        // Linux's quick_pit_calibrate: mode 0, count 0xFFFF, then LSB/MSB
        // pairs read without latching.
        let mut pit = Pit::new();
        pit.set_gate2(true, at(0));
        program(&mut pit, 0xB0, 0xFFFF, 1000);
        let msb_at = |pit: &mut Pit, tick: u64| {
            pit.read(CH2, at(tick));
            pit.read(CH2, at(tick))
        };
        assert_eq!(msb_at(&mut pit, 1001), 0xFF);
        assert_eq!(msb_at(&mut pit, 1001 + 255), 0xFF);
        assert_eq!(msb_at(&mut pit, 1001 + 256), 0xFE);
        for i in 1..200u64 {
            assert_eq!(msb_at(&mut pit, 1001 + 255 + 256 * i), 0xFF - i as u8);
        }
    }

    #[test]
    fn unlatched_word_reads_alternate_lsb_and_msb_of_the_live_count() {
        let mut pit = Pit::new();
        program(&mut pit, 0x34, 0x1234, 0);
        assert_eq!(pit.read(CH0, at(1)), 0x34);
        // Time passes between the two halves, as it does on hardware.
        assert_eq!(pit.read(CH0, at(1 + 0x100)), 0x11);
    }

    #[test]
    fn latch_freezes_the_count_until_both_bytes_are_read() {
        let mut pit = Pit::new();
        program(&mut pit, 0x34, 5000, 0);
        pit.write(CONTROL, 0x00, at(1001));
        pit.write(CONTROL, 0x00, at(2001)); // ignored: already latched
        assert_eq!(pit.read(CH0, at(3000)), (4000u16 & 0xFF) as u8);
        assert_eq!(pit.read(CH0, at(4000)), (4000u16 >> 8) as u8);
        assert_eq!(latched_count(&mut pit, CH0, 4001), 1000);
    }

    #[test]
    fn lsb_only_and_msb_only_access_modes() {
        let mut pit = Pit::new();
        pit.write(CONTROL, 0x14, at(0)); // counter 0, LSB only, mode 2
        pit.write(CH0, 200, at(0));
        assert_eq!(pit.next_irq0_ns(at(0)), Some(at(201)));
        assert_eq!(pit.read(CH0, at(51)), 150);
        assert_eq!(pit.read(CH0, at(51)), 150, "every read is the LSB");
        pit.write(CONTROL, 0x24, at(1000)); // MSB only
        pit.write(CH0, 0x02, at(1000));
        assert_eq!(pit.next_irq0_ns(at(1000)), Some(at(1001 + 0x200)));
        assert_eq!(pit.read(CH0, at(1001 + 0x100)), 0x01);
    }

    #[test]
    fn read_back_latches_status_then_count() {
        let mut pit = Pit::new();
        program(&mut pit, 0x34, 300, 0);
        // Read back counter 0: count and status.
        pit.write(CONTROL, 0xC2, at(101));
        let status = pit.read(CH0, at(200));
        assert_eq!(status, 0x80 | 0x30 | 0x04, "OUT high, LSB/MSB, mode 2");
        assert_eq!(pit.read(CH0, at(250)), 200);
        assert_eq!(pit.read(CH0, at(250)), 0);
        // A status latched right after a control word shows null count.
        pit.write(CONTROL, 0xB0, at(300));
        pit.write(CONTROL, 0xE8, at(300)); // status only, counter 2
        assert_eq!(pit.read(CH2, at(300)), 0x40 | 0x30);
    }

    #[test]
    fn new_count_in_mode2_takes_effect_at_the_end_of_the_period() {
        let mut pit = Pit::new();
        program(&mut pit, 0x34, 100, 0);
        pit.poll_irq0(at(0));
        pit.write(CH0, 50, at(30));
        pit.write(CH0, 0, at(30));
        assert_eq!(latched_count(&mut pit, CH0, 31), 70, "old count still running");
        let edges: Vec<u64> = (31..300).filter(|&t| pit.poll_irq0(at(t)).rose).collect();
        assert_eq!(edges, [101, 151, 201, 251]);
    }

    #[test]
    fn new_count_across_a_gap_counts_edges_of_both_periods() {
        let mut pit = Pit::new();
        program(&mut pit, 0x34, 100, 0);
        pit.poll_irq0(at(0));
        pit.write(CH0, 50, at(30));
        pit.write(CH0, 0, at(30));
        pit.poll_irq0(at(30));
        assert_eq!(pit.next_irq0_ns(at(30)), Some(at(101)));
        assert_eq!(pit.next_irq0_ns(at(101)), Some(at(151)));
        assert!(pit.poll_irq0(at(120)).rose);
        assert_eq!(latched_count(&mut pit, CH0, 120), 31);
    }

    #[test]
    fn mode4_one_shot_strobes_once() {
        let mut pit = Pit::new();
        program(&mut pit, 0x38, 50, 0); // Linux's oneshot clockevent
        pit.poll_irq0(at(0));
        let edges: Vec<u64> = (1..1000).filter(|&t| pit.poll_irq0(at(t)).rose).collect();
        assert_eq!(edges, [52]);
        assert_eq!(pit.next_irq0_ns(at(1000)), None);
    }

    #[test]
    fn mode1_on_channel2_waits_for_the_gate_trigger() {
        let mut pit = Pit::new();
        program(&mut pit, 0xB2, 20, 0);
        assert!(pit.out2(at(100)), "mode 1 idles high");
        pit.set_gate2(true, at(100));
        assert!(!pit.out2(at(101)));
        assert!(pit.out2(at(121)));
        // Retriggering restarts the one-shot.
        pit.set_gate2(false, at(200));
        pit.set_gate2(true, at(200));
        assert!(!pit.out2(at(210)));
        assert!(pit.out2(at(221)));
    }

    #[test]
    fn mode2_gate_low_forces_out_high_and_rising_gate_reloads() {
        let mut pit = Pit::new();
        pit.set_gate2(true, at(0));
        program(&mut pit, 0xB4, 10, 0);
        assert!(!pit.out2(at(10)));
        pit.set_gate2(false, at(10));
        assert!(pit.out2(at(10)));
        pit.set_gate2(true, at(500));
        assert_eq!(latched_count(&mut pit, CH2, 501), 10);
        assert!(!pit.out2(at(510)));
    }

    #[test]
    fn bcd_mode_counts_in_decimal() {
        let mut pit = Pit::new();
        program(&mut pit, 0x35, 0x1000, 0); // mode 2, BCD, 1000 clocks
        assert_eq!(latched_count(&mut pit, CH0, 2), 0x0999);
        assert_eq!(pit.next_irq0_ns(at(0)), Some(at(1001)));
        program(&mut pit, 0x31, 0, 2000); // mode 0, BCD, 10000 clocks
        assert_eq!(latched_count(&mut pit, CH0, 2002), 0x9999);
    }

    #[test]
    fn bios_state_runs_counter0_at_18_hz() {
        let mut pit = Pit::new();
        assert_eq!(pit.next_irq0_ns(0), Some(at(65536)));
        assert!(pit.poll_irq0(at(70_000)).rose);
    }

    /// An access to the PIT between polls.
    #[derive(Debug, Clone)]
    enum Op {
        /// Counter 0: mode, BCD, a two-byte count.
        Program { mode: u8, bcd: bool, count: u16 },
        /// Counter 0's count alone (a reload, pending until the period ends in modes 2 and 3).
        Count(u16),
        /// A latch and a read of counter 0.
        Read,
        /// Guest time passes (ns), then both poll.
        Wait(u64),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            1 => (0u8..6, any::<bool>(), 0u16..40).prop_map(|(mode, bcd, count)| Op::Program { mode, bcd, count }),
            1 => (0u16..40).prop_map(Op::Count),
            1 => Just(Op::Read),
            8 => (0u64..60_000).prop_map(Op::Wait),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(256))]
        /// The shortcut answers exactly what the counter does: a PIT that
        /// polls with it and one that always works it out agree on every
        /// edge and level, whatever the mode, count and timing.
        #[test]
        fn polling_with_the_quiet_shortcut_matches_polling_exactly(ops in proptest::collection::vec(op(), 1..80)) {
            let (mut fast, mut exact) = (Pit::new(), Pit::new());
            let mut now = 0u64;
            for op in ops {
                match op {
                    Op::Program { mode, bcd, count } => {
                        let control = (mode << 1) | 0x30 | u8::from(bcd);
                        for pit in [&mut fast, &mut exact] {
                            pit.write(CONTROL, control, now);
                            pit.write(CH0, count as u8, now);
                            pit.write(CH0, (count >> 8) as u8, now);
                        }
                    }
                    Op::Count(count) => {
                        for pit in [&mut fast, &mut exact] {
                            pit.write(CH0, count as u8, now);
                            pit.write(CH0, (count >> 8) as u8, now);
                        }
                    }
                    Op::Read => {
                        let f = (fast.write(CONTROL, 0, now), fast.read(CH0, now), fast.read(CH0, now));
                        let e = (exact.write(CONTROL, 0, now), exact.read(CH0, now), exact.read(CH0, now));
                        proptest::prop_assert_eq!(f, e);
                    }
                    Op::Wait(ns) => {
                        now += ns;
                        let (f, e) = (fast.poll_irq0(now), exact.poll_irq0_at(ticks_at(now, PIT_HZ)));
                        proptest::prop_assert_eq!((f.rose, f.level), (e.rose, e.level), "at {} ns", now);
                    }
                }
            }
        }
    }
}
