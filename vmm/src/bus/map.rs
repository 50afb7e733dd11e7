//! The address map shared by both buses: ranges, each leading to a device,
//! kept sorted and free of overlaps.
use super::BusDevice;
use arrayvec::ArrayVec;
use core::cell::Cell;

/// `len` consecutive bus addresses from `base`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub base: u64,
    pub len: u64,
}

impl Range {
    pub const fn new(base: u64, len: u64) -> Self {
        Range { base, len }
    }

    /// One I/O port.
    pub const fn port(port: u16) -> Self {
        Range { base: port as u64, len: 1 }
    }

    /// The last address, or `None` for an empty range or one that runs past
    /// the end of a 64-bit address space.
    pub fn last(&self) -> Option<u64> {
        self.base.checked_add(self.len.checked_sub(1)?)
    }
}

impl core::fmt::Display for Range {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.last() {
            Some(last) => write!(f, "{:#x}..={last:#x}", self.base),
            None => write!(f, "{:#x} (+{:#x})", self.base, self.len),
        }
    }
}

/// Why a device could not be registered. Nothing of the device is
/// registered then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusError {
    /// A range without addresses.
    Empty(Range),
    /// A range that runs past the bus's last address.
    OutOfSpace { range: Range, bus_last: u64 },
    /// A range overlaps one already registered, or another range of the
    /// same device.
    Overlap { range: Range, existing: Range },
    /// The bus has no room for more ranges.
    Full { capacity: usize },
    /// The buses keep track of no more timers.
    TooManyTimers { capacity: usize },
}

impl core::fmt::Display for BusError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BusError::Empty(r) => write!(f, "empty range at {:#x}", r.base),
            BusError::OutOfSpace { range, bus_last } => {
                write!(f, "range {range} runs past the bus's last address {bus_last:#x}")
            }
            BusError::Overlap { range, existing } => write!(f, "range {range} overlaps {existing}"),
            BusError::Full { capacity } => write!(f, "the bus holds no more than {capacity} ranges"),
            BusError::TooManyTimers { capacity } => write!(f, "the buses keep no more than {capacity} timers"),
        }
    }
}

/// How to find a device in the structure `D` that holds the devices.
pub type DeviceRef<D> = fn(&mut D) -> &mut dyn BusDevice;

/// One registered range and its device.
pub struct Mapping<D> {
    /// First and last address of the range.
    pub first: u64,
    pub last: u64,
    pub device: DeviceRef<D>,
}

// Not derived: that would ask `D: Clone`, and a `DeviceRef<D>` is a plain
// function pointer whatever `D` is.
impl<D> Clone for Mapping<D> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<D> Copy for Mapping<D> {}

impl<D> core::fmt::Debug for Mapping<D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Mapping({:#x}..={:#x})", self.first, self.last)
    }
}

/// An address map of at most `N` ranges over addresses `0..=last`.
pub struct Bus<D, const N: usize> {
    last: u64,
    /// Sorted by `first`; no two overlap.
    map: ArrayVec<Mapping<D>, N>,
    /// The index of the range last found: guests tend to use one device
    /// many times in a row, and this one compare saves the search.
    recent: Cell<usize>,
}

impl<D, const N: usize> Bus<D, N> {
    /// An empty bus whose addresses end at `last`.
    pub const fn new(last: u64) -> Self {
        Bus { last, map: ArrayVec::new_const(), recent: Cell::new(0) }
    }

    /// Registers `device` at every range in `ranges`, or at none of them.
    pub fn register(&mut self, ranges: &[Range], device: DeviceRef<D>) -> Result<(), BusError> {
        for (i, &range) in ranges.iter().enumerate() {
            let last = self.check(range)?;
            // The earlier ranges passed `check`: their `last` exists.
            let earlier = ranges[..i].iter().filter_map(|&r| Some((r, r.last()?)));
            let registered = self.map.iter().map(|m| (Range::new(m.first, m.last - m.first + 1), m.last));
            let mut others = registered.chain(earlier);
            if let Some((existing, _)) = others.find(|&(r, r_last)| r.base <= last && range.base <= r_last) {
                return Err(BusError::Overlap { range, existing });
            }
        }
        if self.map.len() + ranges.len() > N {
            return Err(BusError::Full { capacity: N });
        }
        for &range in ranges {
            let last = self.check(range)?;
            let at = self.map.partition_point(|m| m.first < range.base);
            self.map.insert(at, Mapping { first: range.base, last, device });
        }
        Ok(())
    }

    /// The range's last address, if it may be registered at all.
    fn check(&self, range: Range) -> Result<u64, BusError> {
        if range.len == 0 {
            return Err(BusError::Empty(range));
        }
        match range.last() {
            Some(last) if last <= self.last => Ok(last),
            _ => Err(BusError::OutOfSpace { range, bus_last: self.last }),
        }
    }

    /// The range `addr` falls in, and its device.
    #[inline]
    pub fn find(&self, addr: u64) -> Option<Mapping<D>> {
        match self.map.get(self.recent.get()) {
            Some(&m) if m.first <= addr && addr <= m.last => Some(m),
            _ => self.search(addr),
        }
    }

    fn search(&self, addr: u64) -> Option<Mapping<D>> {
        let at = self.map.partition_point(|m| m.first <= addr).checked_sub(1)?;
        let m = self.map[at];
        self.recent.set(at);
        (addr <= m.last).then_some(m)
    }
}
