//! Simulated physical memory for host tests: a map of 4 KiB frames with a
//! budget, so that running out of frames can be tested.
//!
//! Frame addresses are never reused, and touching a frame that is not
//! allocated panics, so a use after free or a double free is caught at once.

use std::boxed::Box;
use std::collections::{BTreeSet, HashMap};

use crate::{FrameSource, HostPhysAddr, TableMemory};

const FRAME: u64 = 4096;

/// Simulated physical memory holding page-table frames.
#[derive(Debug)]
pub struct SimMemory {
    frames: HashMap<u64, Box<[u64; 512]>>,
    next: u64,
    budget: Option<usize>,
    failed_allocations: u64,
}

impl Default for SimMemory {
    fn default() -> Self {
        Self::new()
    }
}

impl SimMemory {
    /// Memory with no limit on frames.
    pub fn new() -> Self {
        SimMemory {
            frames: HashMap::new(),
            // Away from 0, so a zero entry never looks like a frame.
            next: 0x10_0000,
            budget: None,
            failed_allocations: 0,
        }
    }

    /// Memory that holds at most `frames` frames at a time.
    pub fn with_budget(frames: usize) -> Self {
        let mut mem = Self::new();
        mem.budget = Some(frames);
        mem
    }

    /// Changes the most frames held at a time (`None`: no limit).
    pub fn set_budget(&mut self, frames: Option<usize>) {
        self.budget = frames;
    }

    /// How many frames are allocated.
    pub fn frames_in_use(&self) -> usize {
        self.frames.len()
    }

    /// The allocated frames.
    pub fn allocated(&self) -> BTreeSet<HostPhysAddr> {
        self.frames.keys().map(|&a| HostPhysAddr(a)).collect()
    }

    /// Whether `frame` is allocated.
    pub fn is_allocated(&self, frame: HostPhysAddr) -> bool {
        self.frames.contains_key(&frame.0)
    }

    /// How many allocations failed for lack of budget.
    pub fn failed_allocations(&self) -> u64 {
        self.failed_allocations
    }

    fn frame(&self, table: HostPhysAddr) -> &[u64; 512] {
        match self.frames.get(&table.0) {
            Some(frame) => frame,
            None => panic!("access to {table:?}, which is not an allocated frame"),
        }
    }
}

impl FrameSource for SimMemory {
    fn alloc_table(&mut self) -> Option<HostPhysAddr> {
        if self.budget.is_some_and(|b| self.frames.len() >= b) {
            self.failed_allocations += 1;
            return None;
        }
        let addr = self.next;
        self.next += FRAME;
        self.frames.insert(addr, Box::new([0; 512]));
        Some(HostPhysAddr(addr))
    }

    fn free_table(&mut self, frame: HostPhysAddr) {
        if self.frames.remove(&frame.0).is_none() {
            panic!("free of {frame:?}, which is not an allocated frame");
        }
    }
}

impl TableMemory for SimMemory {
    fn read_entry(&self, table: HostPhysAddr, index: usize) -> u64 {
        self.frame(table)[index]
    }

    fn write_entry(&mut self, table: HostPhysAddr, index: usize, value: u64) {
        match self.frames.get_mut(&table.0) {
            Some(frame) => frame[index] = value,
            None => panic!("write to {table:?}, which is not an allocated frame"),
        }
    }
}
