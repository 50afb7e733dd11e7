//! Physical memory: how the kernel reaches it, and the tokens that say who
//! may.
//!
//! The boot page tables map the first 4 GiB one to one, so a physical
//! address below 4 GiB is also a valid pointer; `ptr` is the one place
//! that turns one into the other. Host tests build the same code over
//! simulated RAM (`arch::sim`), where `ptr` adds the RAM's base instead.
//!
//! Access is granted three ways, each checked against arch's record of who
//! holds which frame (`arch::claims`): a [`PhysRun`] owns frames
//! exclusively; a shared range (a boot module, the multiboot2 information)
//! is read for the kernel's life; [`read`] copies out of memory nobody
//! owns (boot structures).

use super::frames::{self, FrameError, PoolId};

/// The highest physical address (exclusive) the identity map covers.
pub const IDENTITY_LIMIT: u64 = 4 << 30;
/// Bytes in a frame.
pub const PAGE: u64 = 4096;

/// The highest physical address (exclusive) this kernel reaches: the
/// identity map, or the simulated RAM in host tests.
pub(super) fn limit() -> u64 {
    #[cfg(not(test))]
    {
        IDENTITY_LIMIT
    }
    #[cfg(test)]
    {
        super::sim::RAM_SIZE
    }
}

/// The pointer through which the kernel reaches physical address `pa`
/// (below [`limit`]).
#[inline(always)]
pub(super) fn ptr(pa: u64) -> *mut u8 {
    #[cfg(not(test))]
    {
        pa as *mut u8
    }
    #[cfg(test)]
    {
        super::sim::ram_ptr(pa)
    }
}

/// Copies `buf.len()` bytes of physical memory at `pa` into `buf`. Returns
/// false, copying nothing, if the range is outside the identity map or
/// touches a frame that a run owns or the hypervisor image.
pub fn read(pa: u64, buf: &mut [u8]) -> bool {
    let Some(end) = pa.checked_add(buf.len() as u64) else {
        return false;
    };
    if pa == 0 || buf.is_empty() {
        return pa != 0 && end <= limit();
    }
    // The record stays locked during the copy, so no run can take the frames meanwhile.
    let mut claims = super::claims::map();
    if !claims.readable(pa, end) {
        return false;
    }
    // SAFETY: the range lies below the limit and no run owns it (checked, under the record's lock); it is boot
    // structures or firmware data, RAM that nothing writes meanwhile.
    unsafe { core::ptr::copy_nonoverlapping(ptr(pa), buf.as_mut_ptr(), buf.len()) };
    drop(claims);
    true
}

/// Reads physical memory; false when the range is not readable. The boot
/// information parsers read through this, so that they run on the host
/// against fake memory.
pub trait PhysRead {
    fn read(&self, pa: u64, buf: &mut [u8]) -> bool;
}

/// Physical memory through the identity map ([`read`]), for boot-information
/// parsers.
pub struct IdentityMem;

impl PhysRead for IdentityMem {
    fn read(&self, pa: u64, buf: &mut [u8]) -> bool {
        read(pa, buf)
    }
}

/// A `'static` view of `[start, end)`, which becomes shared for the rest of
/// the kernel's life (no run will ever own it). None if a run owns part of
/// it already, or it is outside the identity map or the image.
fn shared_slice(start: u64, end: u64) -> Option<&'static [u8]> {
    if start == 0 || end < start || !super::claims::map().share(start, end) {
        return None;
    }
    // SAFETY: the range is below the limit and shared from now on: no run owns any of it (checked) nor ever will
    // (`claims` refuses such runs), it is not the image, and the kernel never writes shared ranges.
    Some(unsafe { core::slice::from_raw_parts(ptr(start), (end - start) as usize) })
}

/// The multiboot2 information structure at `pa`, checked by the crate; its
/// bytes become shared for the kernel's life.
pub fn multiboot2_info(pa: u64) -> Option<multiboot2::BootInformation<'static>> {
    let mut size = [0u8; 4];
    if !pa.is_multiple_of(8) || !read(pa, &mut size) {
        return None;
    }
    let total = u64::from(u32::from_le_bytes(size));
    let bytes = shared_slice(pa, pa.checked_add(total.max(8))?)?;
    // SAFETY: the structure's bytes are a shared `'static` range (above), 8-byte aligned; the crate validates its
    // header and tags within them.
    unsafe { multiboot2::BootInformation::load(bytes.as_ptr() as *const multiboot2::BootInformationHeader) }.ok()
}

/// The bytes of a boot module, `[start, end)`: a shared range from now on.
/// None if a run owns part of it already (the allocator handed it out), or
/// it lies outside the identity map or in the image.
pub fn boot_module(start: u64, end: u64) -> Option<&'static [u8]> {
    shared_slice(start, end)
}

/// The bytes of a boot module, `[start, end)`, for one owner to read and
/// write for the kernel's life (a VM's writable disk): its frames become
/// owned and stay so. None if the module does not start on a page, lies
/// outside the identity map or in the image, is empty, or any of its
/// frames is shared or owned already (a module is given out once).
pub fn boot_module_owned(start: u64, end: u64) -> Option<&'static mut [u8]> {
    let len = end.checked_sub(start)?;
    // The module's last frame is its own too: the loader starts each module on a page.
    let frames = end.div_ceil(PAGE).checked_mul(PAGE)?.checked_sub(start)?;
    if start == 0 || !super::claims::map().claim(start, frames) {
        return None;
    }
    // SAFETY: `[start, start + frames)` is below the limit and now owned by this slice alone (claimed above and never
    // released): no run, shared range, page table or other slice reaches those frames, so the exclusive borrow holds.
    Some(unsafe { core::slice::from_raw_parts_mut(ptr(start), len as usize) })
}

unsafe extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

/// The hypervisor image in memory, `[start, end)`, `.bss` included.
pub fn image_range() -> (u64, u64) {
    (core::ptr::addr_of!(__image_start) as u64, core::ptr::addr_of!(__image_end) as u64)
}

/// The multiboot2 structure at the start of a host buffer, for host tests
/// of what the kernel makes of it. Its size field is first clamped to the
/// buffer, which is what lets the crate read it soundly.
#[cfg(test)]
pub fn multiboot2_from_buffer(buf: &mut [u64]) -> Option<multiboot2::BootInformation<'_>> {
    let len = u32::try_from(buf.len() * 8).ok()?;
    let first = buf.first_mut()?;
    let total = (*first as u32).min(len);
    *first = (*first & !0xFFFF_FFFF) | u64::from(total);
    // SAFETY: the buffer is 8-byte aligned (u64s), readable for `len` bytes, and its size field (the low half of the
    // first word, little-endian) is at most `len`; the exclusive borrow keeps it unchanged while the result lives.
    unsafe { multiboot2::BootInformation::load(buf.as_ptr().cast()) }.ok()
}

/// A run of physical frames this kernel owns exclusively: the proof of
/// ownership that lets the layers above touch physical memory safely.
///
/// Only [`frames::alloc`] makes runs, from frames arch's record says nobody
/// holds; a run is not `Clone`, so two owners of the same frames cannot
/// exist. Dropping a run gives its frames back to its pool.
#[derive(Debug)]
pub struct PhysRun {
    pa: u64,
    len: u64,
    pool: PoolId,
}

impl PhysRun {
    /// The frames `[pa, pa + len)` of `pool`, if arch's record lets a new
    /// owner have them (page-aligned, in range, and held by nobody).
    pub(super) fn claim(pa: u64, len: u64, pool: PoolId) -> Option<PhysRun> {
        super::claims::map().claim(pa, len).then_some(PhysRun { pa, len, pool })
    }

    pub fn pa(&self) -> u64 {
        self.pa
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pool the frames go back to.
    pub fn pool(&self) -> PoolId {
        self.pool
    }

    /// Ends the run but keeps its frame owned, by a page table now, which
    /// gives it back by address ([`frames::free_table_frame`]).
    pub(super) fn into_table_frame(self) -> u64 {
        let pa = self.pa;
        core::mem::forget(self);
        pa
    }

    /// Keeps the frames owned for good: dropping the run then gives nothing
    /// back. For memory a CPU may still use.
    pub(super) fn leak(&mut self) {
        self.len = 0;
    }

    /// Copies out of the run; false if `[offset, offset + buf.len())` is
    /// outside it.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> bool {
        if !self.contains(offset, buf.len() as u64) {
            return false;
        }
        // SAFETY: the range is inside a run we own exclusively (checked).
        unsafe { core::ptr::copy_nonoverlapping(ptr(self.pa + offset), buf.as_mut_ptr(), buf.len()) };
        true
    }

    /// The `N` bytes at `offset`, read in place with one load where `N` is
    /// a load's size (no call to memcpy), and the host address they were
    /// read from; `None` if they are not all inside the run.
    pub fn read_array<const N: usize>(&self, offset: u64) -> Option<([u8; N], u64)> {
        if !self.contains(offset, N as u64) {
            return None;
        }
        let at = ptr(self.pa + offset);
        // SAFETY: the range is inside a run we own exclusively (checked); `[u8; N]` has no alignment and every bit
        // pattern is valid.
        Some((unsafe { core::ptr::read_unaligned(at as *const [u8; N]) }, at as u64))
    }

    /// Copies into the run; false if the range is outside it.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> bool {
        if !self.contains(offset, data.len() as u64) {
            return false;
        }
        // SAFETY: the range is inside a run we own exclusively (checked).
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), ptr(self.pa + offset), data.len()) };
        true
    }

    /// Copies into the run through a shared reference: for guest RAM, which
    /// the guest's vCPUs (on other CPUs) and other threads of its VMM read
    /// and write at the same time anyway. False if the range is outside it.
    pub fn write_shared(&self, offset: u64, data: &[u8]) -> bool {
        if !self.contains(offset, data.len() as u64) {
            return false;
        }
        // Guest RAM is memory shared with the guest, like a DMA buffer: the kernel never makes a Rust reference
        // into it (only raw copies in and out, as `read` does), so concurrent copies give unspecified bytes, never
        // broken invariants of the kernel's own data.
        // SAFETY: as above; the range is inside a run this space owns (checked), which no host code references.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), ptr(self.pa + offset), data.len()) };
        true
    }

    /// Zeroes part of the run; false if the range is outside it.
    pub fn zero(&mut self, offset: u64, len: u64) -> bool {
        if !self.contains(offset, len) {
            return false;
        }
        // SAFETY: the range is inside a run we own exclusively (checked).
        unsafe { core::ptr::write_bytes(ptr(self.pa + offset), 0, len as usize) };
        true
    }

    fn contains(&self, offset: u64, len: u64) -> bool {
        offset.checked_add(len).is_some_and(|end| end <= self.len)
    }
}

impl Drop for PhysRun {
    fn drop(&mut self) {
        if self.len != 0 {
            super::claims::map().release(self.pa, self.len);
            frames::give_back(self.pool, self.pa, self.len / PAGE);
        }
    }
}

/// Types for which all-zero bytes are a valid value (plain hardware
/// structures made of integers), and that safe code may write freely.
///
/// # Safety
/// Implement only for types whose every field accepts all-zero bytes.
/// Not for the VMCB, whose host-physical pointers only their owner may set
/// (see [`super::vmspace::GuestVmcb`]).
pub unsafe trait ZeroValid {}

// SAFETY: a byte array.
unsafe impl ZeroValid for vmcb::Iopm {}
// SAFETY: a byte array.
unsafe impl ZeroValid for vmcb::Msrpm {}

/// A `T` living in frames we own, at a known physical address (for
/// structures the CPU reads by physical address: IOPM, MSRPM).
pub struct PhysBox<T: ZeroValid> {
    run: PhysRun,
    _t: core::marker::PhantomData<T>,
}

impl<T: ZeroValid> PhysBox<T> {
    /// A zeroed `T` in fresh frames of `pool`.
    pub fn alloc(pool: PoolId) -> Result<Self, FrameError> {
        const { assert!(core::mem::align_of::<T>() <= PAGE as usize) };
        let frames = (core::mem::size_of::<T>() as u64).div_ceil(PAGE).max(1);
        let mut run = frames::alloc(pool, frames as usize, 1)?;
        run.zero(0, frames * PAGE);
        Ok(PhysBox { run, _t: core::marker::PhantomData })
    }

    pub fn pa(&self) -> u64 {
        self.run.pa()
    }

    /// See [`PhysRun::leak`].
    pub(super) fn leak(&mut self) {
        self.run.leak();
    }
}

impl<T: ZeroValid> core::ops::Deref for PhysBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the run is ours, page-aligned, large enough, zero-initialised
        // (a valid T by ZeroValid) and only reachable through this box.
        unsafe { &*(ptr(self.run.pa()) as *const T) }
    }
}

impl<T: ZeroValid> core::ops::DerefMut for PhysBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for Deref; `&mut self` makes the access exclusive.
        unsafe { &mut *(ptr(self.run.pa()) as *mut T) }
    }
}
