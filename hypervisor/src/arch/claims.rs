//! Who may touch which physical frames: arch's own record, checked whenever
//! it hands out access to physical memory.
//!
//! A frame is *owned* while a [`PhysRun`](super::phys::PhysRun) or a page
//! table holds it; *shared* when it lies in a range the kernel reads for the
//! rest of its life (a boot module, the boot information) or in low memory;
//! *kernel* when it lies in the hypervisor image. A run is made only of
//! frames that are none of these, and a range is shared or read only if no
//! run owns any of its frames and it is not the image. So the frame
//! allocator above arch (mm, through [`FrameAllocator`](super::frames::FrameAllocator))
//! decides which frames a pool gets and charges them, but cannot make two
//! owners of a frame or give out memory the kernel uses otherwise: the
//! ownership tokens stay sound whatever it does.
use super::phys::{limit, IDENTITY_LIMIT, PAGE};
use arrayvec::ArrayVec;

/// Bitmap words covering the identity map, one bit per frame.
const WORDS: usize = (IDENTITY_LIMIT / PAGE / 64) as usize;
/// Shared and kernel ranges: low memory, the image, the boot information,
/// the boot modules and the ACPI tables.
const MAX_FIXED: usize = 24;
/// Firmware and loader data below 1 MiB: read at boot, never owned.
const LOW_MEMORY_END: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fixed {
    start: u64,
    end: u64,
    /// Shared ranges may be read; the image may not (its statics change).
    readable: bool,
}

/// The record. Its lock is taken only when memory is handed out or given
/// back, never on a VM exit.
pub(super) struct Map {
    owned: [u64; WORDS],
    fixed: ArrayVec<Fixed, MAX_FIXED>,
    kernel_ranges_added: bool,
}

static MAP: spin::Mutex<Map> = spin::Mutex::new(Map::new());

/// Calls `f(word, mask)` for the bitmap words that frames `[first, end)`
/// touch, with the mask of their bits in that word; stops early (false)
/// when `f` does.
fn for_words(first: usize, end: usize, mut f: impl FnMut(usize, u64) -> bool) -> bool {
    let mut i = first;
    while i < end {
        let word = i / 64;
        let lo = i % 64;
        let hi = (end - word * 64).min(64);
        let mask = if hi - lo == 64 { u64::MAX } else { ((1u64 << (hi - lo)) - 1) << lo };
        if !f(word, mask) {
            return false;
        }
        i = word * 64 + hi;
    }
    true
}

/// The frames that `[start, end)` touches, as frame numbers `[first, end)`.
fn frames_of(start: u64, end: u64) -> (usize, usize) {
    ((start / PAGE) as usize, end.div_ceil(PAGE) as usize)
}

impl Map {
    pub(super) const fn new() -> Map {
        Map { owned: [0; WORDS], fixed: ArrayVec::new_const(), kernel_ranges_added: false }
    }

    /// Low memory and (in the kernel) the image are fixed from the start.
    fn add_kernel_ranges(&mut self) {
        if self.kernel_ranges_added {
            return;
        }
        self.kernel_ranges_added = true;
        self.fixed.push(Fixed { start: 0, end: LOW_MEMORY_END, readable: true });
        #[cfg(not(test))]
        {
            let (start, end) = super::phys::image_range();
            self.fixed.push(Fixed { start, end, readable: false });
        }
    }

    fn any_owned(&self, start: u64, end: u64) -> bool {
        let (first, last) = frames_of(start, end);
        !for_words(first, last, |w, mask| self.owned[w] & mask == 0)
    }

    fn overlaps_fixed(&self, start: u64, end: u64, only_unreadable: bool) -> bool {
        self.fixed.iter().any(|f| (!only_unreadable || !f.readable) && f.start < end && start < f.end)
    }

    fn in_range(start: u64, end: u64) -> bool {
        start < end && end <= limit()
    }

    /// Takes the page-aligned frames `[pa, pa + len)` for a new owner, if
    /// nobody owns any of them and none is shared or the kernel's.
    pub(super) fn claim(&mut self, pa: u64, len: u64) -> bool {
        self.add_kernel_ranges();
        let Some(end) = pa.checked_add(len) else {
            return false;
        };
        if !pa.is_multiple_of(PAGE)
            || !len.is_multiple_of(PAGE)
            || !Self::in_range(pa, end)
            || self.overlaps_fixed(pa, end, false)
            || self.any_owned(pa, end)
        {
            return false;
        }
        let (first, last) = frames_of(pa, end);
        for_words(first, last, |w, mask| {
            self.owned[w] |= mask;
            true
        });
        true
    }

    /// Gives up frames taken by [`Map::claim`].
    pub(super) fn release(&mut self, pa: u64, len: u64) {
        let (first, last) = frames_of(pa, pa.saturating_add(len).min(limit()));
        for_words(first, last, |w, mask| {
            debug_assert_eq!(self.owned[w] & mask, mask, "releasing frames nobody owns");
            self.owned[w] &= !mask;
            true
        });
    }

    /// Marks `[start, end)` shared for the kernel's life: it may be read,
    /// and no run will ever own it. Refused if a run owns part of it, it
    /// overlaps the image, or the table is full. An empty range is shared
    /// trivially; one that overlaps or touches a shared range joins it.
    pub(super) fn share(&mut self, start: u64, end: u64) -> bool {
        self.add_kernel_ranges();
        if start == end {
            return end <= limit();
        }
        if !Self::in_range(start, end) || self.overlaps_fixed(start, end, true) || self.any_owned(start, end) {
            return false;
        }
        // A shared range that overlaps or touches this one grows to cover it
        // (the ACPI tables are mapped a piece at a time, mostly side by side).
        if let Some(f) = self.fixed.iter_mut().find(|f| f.readable && f.start <= end && start <= f.end) {
            (f.start, f.end) = (f.start.min(start), f.end.max(end));
            return true;
        }
        self.fixed.try_push(Fixed { start, end, readable: true }).is_ok()
    }

    /// `[start, end)` may be read: no run owns any of it and it is not the
    /// image.
    pub(super) fn readable(&mut self, start: u64, end: u64) -> bool {
        self.add_kernel_ranges();
        Self::in_range(start, end) && !self.overlaps_fixed(start, end, true) && !self.any_owned(start, end)
    }
}

/// The kernel's record.
pub(super) fn map() -> spin::MutexGuard<'static, Map> {
    MAP.lock()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn fresh() -> Box<Map> {
        Box::new(Map::new())
    }

    #[test]
    fn a_frame_has_one_owner_at_a_time() {
        let mut m = fresh();
        assert!(m.claim(2 * MIB, 64 * PAGE));
        assert!(!m.claim(2 * MIB + 63 * PAGE, 2 * PAGE), "the last frame is owned");
        assert!(!m.claim(2 * MIB - PAGE, 2 * PAGE), "the first frame is owned");
        assert!(m.claim(2 * MIB + 64 * PAGE, PAGE), "the next frame is free");
        m.release(2 * MIB, 64 * PAGE);
        assert!(m.claim(2 * MIB + PAGE, 3 * PAGE), "released frames can be owned again");
    }

    #[test]
    fn runs_must_be_page_aligned_non_empty_and_inside_physical_memory() {
        let mut m = fresh();
        assert!(!m.claim(2 * MIB + 1, PAGE));
        assert!(!m.claim(2 * MIB, PAGE + 1));
        assert!(!m.claim(2 * MIB, 0));
        assert!(!m.claim(limit() - PAGE, 2 * PAGE));
        assert!(!m.claim(u64::MAX - PAGE + 1, PAGE), "no wrap-around");
    }

    #[test]
    fn low_memory_and_shared_ranges_are_never_owned() {
        let mut m = fresh();
        assert!(!m.claim(0x9000, PAGE), "low memory");
        assert!(m.share(4 * MIB + 10, 5 * MIB - 10));
        assert!(!m.claim(5 * MIB - PAGE, PAGE), "a frame holding the end of a shared range");
        assert!(m.claim(5 * MIB, PAGE));
        assert!(m.share(4 * MIB + 10, 5 * MIB - 10), "sharing the same range again is fine");
    }

    #[test]
    fn adjacent_shared_ranges_join_so_many_pieces_fit_the_table() {
        let mut m = fresh();
        let base = 32 * MIB;
        for i in 0..(4 * MAX_FIXED as u64) {
            assert!(m.share(base + i * PAGE, base + (i + 1) * PAGE), "piece {i} of {}", 4 * MAX_FIXED);
        }
        assert!(!m.claim(base + 10 * PAGE, PAGE), "a joined range is shared throughout");
        assert!(m.claim(base + 4 * MAX_FIXED as u64 * PAGE, PAGE), "and ends where its last piece does");
        assert!(m.share(0xE_0000, 0xF_0000), "a range inside low memory");
    }

    #[test]
    fn owned_frames_can_be_neither_shared_nor_read() {
        let mut m = fresh();
        assert!(m.claim(8 * MIB, PAGE));
        assert!(!m.share(8 * MIB + 100, 8 * MIB + 200));
        assert!(!m.readable(8 * MIB - 8, 8 * MIB + 8));
        assert!(m.readable(8 * MIB - 8, 8 * MIB), "the byte range stops short of the owned frame");
        assert!(m.readable(0x9000, 0x9100), "low memory is readable");
    }

    #[test]
    fn bitmap_masks_cover_partial_and_whole_words() {
        let mut m = fresh();
        // 130 frames from frame 1000: a partial word, a whole one, a partial one.
        let pa = 1000 * PAGE + 0x1000_0000 / 16;
        assert!(m.claim(pa, 130 * PAGE));
        for f in [0, 63, 64, 129] {
            assert!(!m.claim(pa + f * PAGE, PAGE), "frame {f} of the run is owned");
        }
        assert!(m.claim(pa - PAGE, PAGE) && m.claim(pa + 130 * PAGE, PAGE), "its neighbours are not");
    }
}
