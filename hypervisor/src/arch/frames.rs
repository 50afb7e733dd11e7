//! Frames as owned runs: the adapter between the mm layer's allocator and
//! the [`PhysRun`] ownership tokens the layers above use.
use super::phys::PhysRun;
use crate::sync::Lock;

const PAGE: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocError {
    OutOfQuota,
    OutOfMemory,
}

/// Free physical memory as (start, end) ranges, handed out from the bottom.
struct Pool {
    ranges: arrayvec::ArrayVec<(u64, u64), 32>,
}

static POOL: Lock<Pool> = Lock::new(Pool { ranges: arrayvec::ArrayVec::new_const() });

/// Gives the allocator the usable RAM (page-aligned ranges, reserved
/// ranges already removed).
pub fn init(ranges: &[(u64, u64)]) {
    let mut p = POOL.lock();
    for &(s, e) in ranges {
        let (s, e) = ((s + PAGE - 1) & !(PAGE - 1), e & !(PAGE - 1));
        if e > s && e <= super::phys::IDENTITY_LIMIT {
            let _ = p.ranges.try_push((s, e));
        }
    }
}

/// `frames` contiguous frames aligned to `align` frames, for `container`.
pub fn alloc(container: usize, frames: usize, align: usize) -> Result<PhysRun, AllocError> {
    let _ = container;
    let len = frames as u64 * PAGE;
    let align = (align.max(1) as u64) * PAGE;
    let mut p = POOL.lock();
    for r in p.ranges.iter_mut() {
        let start = (r.0 + align - 1) & !(align - 1);
        if start.checked_add(len).is_some_and(|end| end <= r.1) {
            r.0 = start + len;
            // SAFETY: the range came from the boot memory map's usable RAM,
            // minus everything reserved, and is handed out exactly once.
            return Ok(unsafe { PhysRun::assume_owned(start, len) });
        }
    }
    Err(AllocError::OutOfMemory)
}

/// Returns a run to `container`.
pub fn free(container: usize, run: PhysRun) {
    let (pa, len) = run.into_raw();
    free_raw(container, pa, (len / PAGE) as usize);
}

/// Returns frames given out earlier and since tracked by address only
/// (page-table frames).
pub fn free_raw(container: usize, pa: u64, frames: usize) {
    let _ = (container, pa, frames);
}
