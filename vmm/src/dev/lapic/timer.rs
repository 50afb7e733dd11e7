//! The local APIC timer: one-shot, periodic and TSC-deadline modes, and the
//! divide configuration (Intel SDM vol. 3 §10.5.4, AMD APM vol. 2 §16.4.1).
//!
//! Like the board's other timers, nothing ticks: the count is a function of
//! the guest time passed in. The timer keeps the guest time at which it next
//! expires; the current count is the number of timer ticks left until then,
//! rounded up, so it reads the initial count right after a load or a reload
//! and reaches 0 exactly at the expiry.
//!
//! The timer counts the APIC bus clock, [`BUS_HZ`] (1 GHz, KVM's choice;
//! Linux measures it against the PIT), divided by the divide configuration.

use super::regs::{TIMER_MODE_MASK, TIMER_PERIODIC, TIMER_TSC_DEADLINE};
use crate::dev::time::{time_of_tick, NS_PER_SEC};

/// The APIC bus clock the timer divides: one tick per nanosecond.
pub const BUS_HZ: u64 = 1_000_000_000;
const NS_PER_BUS_TICK: u64 = NS_PER_SEC / BUS_HZ;
const _: () = assert!(NS_PER_SEC.is_multiple_of(BUS_HZ), "a bus tick is a whole number of nanoseconds");

/// The guest's time-stamp counter at the moment of an access: what the
/// TSC-deadline mode needs to turn a deadline into a guest time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TscClock {
    /// The guest TSC at the access's `now_ns`.
    pub tsc: u64,
    /// The guest TSC's frequency.
    pub hz: u64,
}

/// The timer mode field of the LVT timer entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerMode {
    OneShot,
    Periodic,
    TscDeadline,
    /// Mode 11b: the timer does not run (as in KVM).
    Reserved,
}

impl TimerMode {
    pub fn of_lvt(lvt: u32) -> Self {
        match lvt & TIMER_MODE_MASK {
            0 => TimerMode::OneShot,
            TIMER_PERIODIC => TimerMode::Periodic,
            TIMER_TSC_DEADLINE => TimerMode::TscDeadline,
            _ => TimerMode::Reserved,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Timer {
    /// The initial-count register.
    initial: u32,
    /// The divide configuration register (bits 0, 1, 3).
    divide: u32,
    mode: TimerMode,
    /// When the count next reaches zero or the deadline passes, if armed.
    expiry_ns: Option<u64>,
    /// IA32_TSC_DEADLINE: the armed deadline, 0 when disarmed or fired.
    deadline_tsc: u64,
}

impl Timer {
    /// Stopped, one-shot, divide by 2, as after reset.
    pub const fn new() -> Self {
        Timer { initial: 0, divide: 0, mode: TimerMode::OneShot, expiry_ns: None, deadline_tsc: 0 }
    }

    /// The divisor the divide configuration selects: bits 3,1,0 = 000 is 2,
    /// 001 is 4, … 110 is 128, 111 is 1.
    pub fn divisor(&self) -> u64 {
        let code = ((self.divide & 8) >> 1) | (self.divide & 3);
        1 << ((code + 1) & 7)
    }

    /// Nanoseconds per timer tick.
    fn tick_ns(&self) -> u64 {
        self.divisor() * NS_PER_BUS_TICK
    }

    fn ns_for_ticks(&self, ticks: u64) -> u64 {
        ticks.saturating_mul(self.tick_ns())
    }

    pub fn initial(&self) -> u32 {
        self.initial
    }

    pub fn divide(&self) -> u32 {
        self.divide
    }

    /// The guest time of the next expiry, if the timer is armed.
    pub fn expiry_ns(&self) -> Option<u64> {
        self.expiry_ns
    }

    /// Handles the expiries due by `now_ns`: true if at least one happened
    /// (several periodic expiries since the last call make one interrupt,
    /// as they would in the IRR). A periodic timer rearms for its next
    /// period after `now_ns`; the others stop.
    pub fn advance(&mut self, now_ns: u64) -> bool {
        let Some(expiry) = self.expiry_ns.filter(|&e| e <= now_ns) else {
            return false;
        };
        self.expiry_ns = None;
        match self.mode {
            TimerMode::Periodic => {
                let period = self.ns_for_ticks(u64::from(self.initial)).max(1);
                let periods = (now_ns - expiry) / period + 1;
                self.expiry_ns = Some(expiry.saturating_add(periods.saturating_mul(period)));
            }
            TimerMode::TscDeadline => self.deadline_tsc = 0,
            TimerMode::OneShot | TimerMode::Reserved => {}
        }
        true
    }

    /// The current-count register: 0 in TSC-deadline mode and once a
    /// one-shot count has run out. Call [`Timer::advance`] first.
    pub fn current(&self, now_ns: u64) -> u32 {
        match (self.mode, self.expiry_ns) {
            (TimerMode::OneShot | TimerMode::Periodic, Some(expiry)) if expiry > now_ns => {
                let ticks = (expiry - now_ns).div_ceil(self.tick_ns());
                u32::try_from(ticks).unwrap_or(u32::MAX)
            }
            _ => 0,
        }
    }

    /// A write of the initial-count register: starts the count (0 stops
    /// it). Ignored in TSC-deadline mode.
    pub fn write_initial(&mut self, value: u32, now_ns: u64) {
        if self.mode == TimerMode::TscDeadline {
            return;
        }
        self.initial = value;
        let counts = matches!(self.mode, TimerMode::OneShot | TimerMode::Periodic);
        self.expiry_ns = (counts && value != 0).then(|| now_ns.saturating_add(self.ns_for_ticks(u64::from(value))));
    }

    /// A write of the divide configuration: a running count keeps its
    /// current value and goes on at the new rate.
    pub fn write_divide(&mut self, value: u32, now_ns: u64) {
        let left = self.current(now_ns);
        self.divide = value;
        if left != 0 {
            self.expiry_ns = Some(now_ns.saturating_add(self.ns_for_ticks(u64::from(left))));
        }
    }

    /// The LVT timer entry was written with `mode`. Moving into or out of
    /// TSC-deadline mode disarms the timer and clears the initial count
    /// (SDM §10.5.4.1); moving between one-shot and periodic keeps the
    /// running count; the reserved mode stops it.
    pub fn set_mode(&mut self, mode: TimerMode) {
        if (self.mode == TimerMode::TscDeadline) != (mode == TimerMode::TscDeadline) {
            self.initial = 0;
            self.expiry_ns = None;
            self.deadline_tsc = 0;
        }
        if mode == TimerMode::Reserved {
            self.expiry_ns = None;
        }
        self.mode = mode;
    }

    /// IA32_TSC_DEADLINE as RDMSR reads it: the armed deadline, 0 when none
    /// is armed and always 0 outside TSC-deadline mode.
    pub fn deadline(&self) -> u64 {
        self.deadline_tsc
    }

    /// WRMSR IA32_TSC_DEADLINE: arms the timer to expire when the guest TSC
    /// reaches `value` (at once if it has), disarms it for 0. Ignored
    /// outside TSC-deadline mode.
    pub fn write_deadline(&mut self, value: u64, now_ns: u64, clock: TscClock) {
        if self.mode != TimerMode::TscDeadline {
            return;
        }
        self.deadline_tsc = value;
        self.expiry_ns = (value != 0).then(|| {
            let ticks_left = value.saturating_sub(clock.tsc);
            now_ns.saturating_add(time_of_tick(ticks_left, clock.hz.max(1)))
        });
    }
}
