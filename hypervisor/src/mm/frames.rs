//! The physical frame allocator: `palloc` / `pfree` over a per-frame table.
//!
//! Frame `n` (address `n * 4096`) has one 16-bit entry: 0 means the frame is
//! not managed (not RAM, reserved, or not yet initialised), 1 means free,
//! and `2 + tag` means allocated to the owner `tag` (the container layer
//! uses container indices as tags). A bitmap of free frames, one bit per
//! frame, makes the search fast; `palloc` returns the lowest free frame.
//!
//! The table covers `64 * WORDS` frames. There is no heap: the kernel
//! instance is a static of about 2.1 MiB for 4 GiB of physical memory (see
//! [`super::MAX_PHYS_MEM`]); frames above the covered range are ignored.
//! An all-zero table is a valid, empty table, so the static lives in .bss.
use super::frame::{Frame, PhysRange, FRAME_SIZE};
use super::MmError;

const UNMANAGED: u16 = 0;
const FREE: u16 = 1;
const TAG_BASE: u16 = 2;

/// The highest owner tag [`FrameTable::palloc`] accepts.
pub const MAX_TAG: u16 = u16::MAX - TAG_BASE;

/// What [`FrameTable::init`] did with the memory map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InitReport {
    /// Frames now managed (all free).
    pub managed_frames: u64,
    /// Usable frames above the table's limit, left alone.
    pub ignored_frames: u64,
    /// Usable regions that were empty or inverted.
    pub bad_regions: u64,
}

/// Per-frame ownership table and free bitmap for `64 * WORDS` frames.
pub struct FrameTable<const WORDS: usize> {
    state: [[u16; 64]; WORDS],
    free_bits: [u64; WORDS],
    /// No free frame lies in a word below this one.
    hint: usize,
    free: u64,
    managed: u64,
}

impl<const WORDS: usize> Default for FrameTable<WORDS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const WORDS: usize> FrameTable<WORDS> {
    /// Frames the table can describe.
    pub const CAPACITY: u64 = 64 * WORDS as u64;

    /// An empty table: no frame is managed.
    pub const fn new() -> Self {
        FrameTable { state: [[UNMANAGED; 64]; WORDS], free_bits: [0; WORDS], hint: 0, free: 0, managed: 0 }
    }

    /// Forgets everything, then manages every frame lying wholly inside a
    /// `usable` region and touching no `reserved` range. Usable frames at or
    /// above [`Self::CAPACITY`] are ignored (and counted in the report).
    pub fn init(&mut self, usable: &[PhysRange], reserved: &[PhysRange]) -> InitReport {
        for w in 0..WORDS {
            self.state[w] = [UNMANAGED; 64];
            self.free_bits[w] = 0;
        }
        self.hint = 0;
        let mut report = InitReport::default();
        for r in usable {
            if r.is_empty() {
                report.bad_regions += 1;
                continue;
            }
            let (first, last) = r.inner_frames();
            for n in first..last.min(Self::CAPACITY) {
                self.set(n as usize, FREE);
            }
            report.ignored_frames += last.saturating_sub(first.max(Self::CAPACITY));
        }
        for r in reserved {
            let (first, last) = r.outer_frames();
            for n in first.min(Self::CAPACITY)..last.min(Self::CAPACITY) {
                self.set(n as usize, UNMANAGED);
            }
        }
        self.free = self.free_bits.iter().map(|w| u64::from(w.count_ones())).sum();
        self.managed = self.free;
        report.managed_frames = self.managed;
        if report.ignored_frames > 0 {
            log::info!(
                "mm: ignoring {} usable frames above {} MiB (the frame table's limit)",
                report.ignored_frames,
                (Self::CAPACITY * FRAME_SIZE) >> 20
            );
        }
        report
    }

    fn set(&mut self, n: usize, v: u16) {
        let (w, b) = (n / 64, n % 64);
        self.state[w][b] = v;
        if v == FREE {
            self.free_bits[w] |= 1 << b;
        } else {
            self.free_bits[w] &= !(1 << b);
        }
    }

    fn index(&self, frame: Frame) -> Option<usize> {
        let n = frame.number();
        (n < Self::CAPACITY).then_some(n as usize)
    }

    fn get(&self, n: usize) -> u16 {
        self.state[n / 64][n % 64]
    }

    /// Allocates the lowest free frame to `tag`.
    ///
    /// Errors: `OutOfMemory` when no frame is free; `BadTag` when `tag`
    /// exceeds [`MAX_TAG`].
    pub fn palloc(&mut self, tag: u16) -> Result<Frame, MmError> {
        if tag > MAX_TAG {
            return Err(MmError::BadTag);
        }
        let mut w = self.hint;
        while w < WORDS && self.free_bits[w] == 0 {
            w += 1;
        }
        self.hint = w;
        if w == WORDS {
            return Err(MmError::OutOfMemory);
        }
        let n = w * 64 + self.free_bits[w].trailing_zeros() as usize;
        self.set(n, TAG_BASE + tag);
        self.free -= 1;
        Ok(Frame::containing(n as u64 * FRAME_SIZE))
    }

    /// The first frame in `[from, to)` that is not free, if any.
    fn first_not_free(&self, from: usize, to: usize) -> Option<usize> {
        let mut n = from;
        while n < to {
            let (w, b) = (n / 64, n % 64);
            let span = (64 - b).min(to - n);
            let mask = if span == 64 { !0 } else { (1u64 << span) - 1 };
            let not_free = !(self.free_bits[w] >> b) & mask;
            if not_free != 0 {
                return Some(n + not_free.trailing_zeros() as usize);
            }
            n += span;
        }
        None
    }

    /// Allocates `count` contiguous frames to `tag`, the first of which is
    /// a multiple of `align` frames: the lowest such run. Returns the
    /// first frame.
    ///
    /// Errors: `BadRun` when `count` or `align` is 0; `OutOfMemory` when no
    /// such run is free; `BadTag`.
    pub fn palloc_run(&mut self, tag: u16, count: usize, align: usize) -> Result<Frame, MmError> {
        if tag > MAX_TAG {
            return Err(MmError::BadTag);
        }
        if count == 0 || align == 0 {
            return Err(MmError::BadRun);
        }
        let cap = Self::CAPACITY as usize;
        let mut start = (self.hint * 64).div_ceil(align) * align;
        loop {
            let end = match start.checked_add(count) {
                Some(end) if end <= cap => end,
                _ => return Err(MmError::OutOfMemory),
            };
            match self.first_not_free(start, end) {
                None => break,
                // No run can contain that frame: restart past it.
                Some(k) => start = (k + 1).div_ceil(align) * align,
            }
        }
        for n in start..start + count {
            self.set(n, TAG_BASE + tag);
        }
        self.free -= count as u64;
        Ok(Frame::containing(start as u64 * FRAME_SIZE))
    }

    /// Frees `count` frames from `first`, which must all be allocated to
    /// the same tag; returns the tag. On error nothing changes.
    ///
    /// Errors: `BadRun` when `count` is 0; `NotAllocated` otherwise.
    pub fn pfree_run(&mut self, first: Frame, count: usize) -> Result<u16, MmError> {
        if count == 0 {
            return Err(MmError::BadRun);
        }
        let tag = self.run_owner(first, count).ok_or(MmError::NotAllocated)?;
        let n0 = first.number() as usize;
        for n in n0..n0 + count {
            self.set(n, FREE);
        }
        self.free += count as u64;
        self.hint = self.hint.min(n0 / 64);
        Ok(tag)
    }

    /// The tag all `count` frames from `first` are allocated to, if they
    /// are all allocated to one tag.
    pub fn run_owner(&self, first: Frame, count: usize) -> Option<u16> {
        let n0 = self.index(first)?;
        let end = n0.checked_add(count).filter(|&e| e <= Self::CAPACITY as usize)?;
        let tag = self.owner(first)?;
        (n0..end).all(|n| self.get(n) == TAG_BASE + tag).then_some(tag)
    }

    /// Returns an allocated frame to the free pool and says whose it was.
    ///
    /// Errors: `NotAllocated` when the frame is free, not managed, or beyond
    /// the table.
    pub fn pfree(&mut self, frame: Frame) -> Result<u16, MmError> {
        let n = self.index(frame).ok_or(MmError::NotAllocated)?;
        let v = self.get(n);
        if v < TAG_BASE {
            return Err(MmError::NotAllocated);
        }
        self.set(n, FREE);
        self.free += 1;
        self.hint = self.hint.min(n / 64);
        Ok(v - TAG_BASE)
    }

    /// The tag `frame` is allocated to, if it is allocated.
    pub fn owner(&self, frame: Frame) -> Option<u16> {
        let v = self.get(self.index(frame)?);
        (v >= TAG_BASE).then(|| v - TAG_BASE)
    }

    /// Whether `frame` is managed and free.
    pub fn is_free(&self, frame: Frame) -> bool {
        self.index(frame).is_some_and(|n| self.get(n) == FREE)
    }

    /// Whether `frame` is managed (free or allocated).
    pub fn is_managed(&self, frame: Frame) -> bool {
        self.index(frame).is_some_and(|n| self.get(n) != UNMANAGED)
    }

    /// Free frames.
    pub fn free_frames(&self) -> u64 {
        self.free
    }

    /// Managed frames, free or allocated.
    pub fn managed_frames(&self) -> u64 {
        self.managed
    }
}
