//! Raw access to physical memory through the boot identity map.
//!
//! The boot page tables map the first 4 GiB one to one, so a physical
//! address below 4 GiB is also a valid pointer. Everything that reads boot
//! information or touches frames goes through here.

/// The highest physical address (exclusive) the identity map covers.
pub const IDENTITY_LIMIT: u64 = 4 << 30;

/// Copies `buf.len()` bytes of physical memory at `pa` into `buf`.
/// Returns false, copying nothing, if the range is not identity-mapped.
pub fn read(pa: u64, buf: &mut [u8]) -> bool {
    let Some(end) = pa.checked_add(buf.len() as u64) else {
        return false;
    };
    if end > IDENTITY_LIMIT || pa == 0 {
        return false;
    }
    // SAFETY: the range lies in the identity map; the caller reads boot structures or its own frames, which are RAM,
    // so the read has no side effects. Volatile-free byte copies are fine for plain memory.
    unsafe { core::ptr::copy_nonoverlapping(pa as *const u8, buf.as_mut_ptr(), buf.len()) };
    true
}

/// A `'static` view of physical memory.
///
/// # Safety
/// `[pa, pa + len)` must be RAM that nobody writes for the rest of the
/// kernel's life (e.g. boot modules the allocator never hands out).
pub unsafe fn slice(pa: u64, len: usize) -> &'static [u8] {
    // SAFETY: delegated to the caller.
    unsafe { core::slice::from_raw_parts(pa as *const u8, len) }
}

/// Physical memory through the identity map, for boot-information parsers.
pub struct IdentityMem;

impl crate::boot::multiboot::PhysRead for IdentityMem {
    fn read(&self, pa: u64, buf: &mut [u8]) -> bool {
        read(pa, buf)
    }
}

/// The multiboot2 information structure at `pa`, checked by the crate.
pub fn multiboot2_info(pa: u64) -> Option<multiboot2::BootInformation<'static>> {
    let mut size = [0u8; 4];
    if !read(pa, &mut size) || !pa.is_multiple_of(8) {
        return None;
    }
    let total = u64::from(u32::from_le_bytes(size));
    if !read(pa, &mut [0u8; 8]) || pa.checked_add(total).is_none_or(|end| end > IDENTITY_LIMIT) {
        return None;
    }
    // SAFETY: the structure lies in the identity map (checked above), is 8-byte aligned, and the loader left it for
    // us; the crate validates its header and tags. The boot code reserves it until parsing is done.
    unsafe { multiboot2::BootInformation::load(pa as *const multiboot2::BootInformationHeader) }.ok()
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
/// Only the frame allocator's adapter creates runs ([`PhysRun::assume_owned`]);
/// a run is not `Clone`, so two owners of the same frames cannot exist.
#[derive(Debug)]
pub struct PhysRun {
    pa: u64,
    len: u64,
}

impl PhysRun {
    /// # Safety
    /// `[pa, pa + len)` must be page-aligned RAM inside the identity map that
    /// nothing else reads or writes while the run lives (the allocator has
    /// just handed it out, or it was carved from a run being consumed).
    pub unsafe fn assume_owned(pa: u64, len: u64) -> PhysRun {
        debug_assert!(pa.is_multiple_of(4096) && len.is_multiple_of(4096) && pa + len <= IDENTITY_LIMIT);
        PhysRun { pa, len }
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

    /// Gives the run back as (address, length), ending the ownership claim:
    /// for returning frames to the allocator.
    pub fn into_raw(self) -> (u64, u64) {
        (self.pa, self.len)
    }

    /// Copies out of the run; false if `[offset, offset + buf.len())` is
    /// outside it.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> bool {
        if !self.contains(offset, buf.len() as u64) {
            return false;
        }
        // SAFETY: the range is inside a run we own exclusively (checked).
        unsafe { core::ptr::copy_nonoverlapping((self.pa + offset) as *const u8, buf.as_mut_ptr(), buf.len()) };
        true
    }

    /// Copies into the run; false if the range is outside it.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> bool {
        if !self.contains(offset, data.len() as u64) {
            return false;
        }
        // SAFETY: the range is inside a run we own exclusively (checked).
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), (self.pa + offset) as *mut u8, data.len()) };
        true
    }

    /// Zeroes part of the run; false if the range is outside it.
    pub fn zero(&mut self, offset: u64, len: u64) -> bool {
        if !self.contains(offset, len) {
            return false;
        }
        // SAFETY: the range is inside a run we own exclusively (checked).
        unsafe { core::ptr::write_bytes((self.pa + offset) as *mut u8, 0, len as usize) };
        true
    }

    fn contains(&self, offset: u64, len: u64) -> bool {
        offset.checked_add(len).is_some_and(|end| end <= self.len)
    }
}

/// Types for which all-zero bytes are a valid value (plain hardware
/// structures made of integers).
///
/// # Safety
/// Implement only for types whose every field accepts all-zero bytes.
pub unsafe trait ZeroValid {}

// SAFETY: these hardware structures are arrays and integers only.
unsafe impl ZeroValid for vmcb::Vmcb {}
// SAFETY: a byte array.
unsafe impl ZeroValid for vmcb::Iopm {}
// SAFETY: a byte array.
unsafe impl ZeroValid for vmcb::Msrpm {}
// SAFETY: a page of u64 entries.
unsafe impl ZeroValid for [u64; 512] {}

/// A `T` living in frames we own, at a known physical address (for
/// structures the CPU reads by physical address: VMCB, IOPM, MSRPM).
pub struct PhysBox<T: ZeroValid> {
    run: PhysRun,
    _t: core::marker::PhantomData<T>,
}

impl<T: ZeroValid> PhysBox<T> {
    /// Zeroes the run and views it as a `T`. Fails (giving the run back)
    /// if it is too small.
    pub fn new_zeroed(mut run: PhysRun) -> Result<Self, PhysRun> {
        if (core::mem::size_of::<T>() as u64) > run.len() || core::mem::align_of::<T>() > 4096 {
            return Err(run);
        }
        let len = run.len();
        run.zero(0, len);
        Ok(PhysBox { run, _t: core::marker::PhantomData })
    }

    pub fn pa(&self) -> u64 {
        self.run.pa()
    }

    pub fn into_run(self) -> PhysRun {
        self.run
    }
}

impl<T: ZeroValid> core::ops::Deref for PhysBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the run is ours, page-aligned, large enough, zero-initialised
        // (a valid T by ZeroValid) and only reachable through this box.
        unsafe { &*(self.run.pa() as *const T) }
    }
}

impl<T: ZeroValid> core::ops::DerefMut for PhysBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for Deref; `&mut self` makes the access exclusive.
        unsafe { &mut *(self.run.pa() as *mut T) }
    }
}

/// Page-table frames reached through the identity map, for the `npt` engine.
///
/// The engine only ever names table frames it obtained from its
/// `FrameSource`, which hands out frames the kernel owns; so every address
/// it passes here is one of our own table pages.
pub struct IdentityTables;

impl npt::TableMemory for IdentityTables {
    fn read_entry(&self, table: npt::HostPhysAddr, index: usize) -> u64 {
        assert!(index < 512 && table.0.is_multiple_of(4096) && table.0 < IDENTITY_LIMIT);
        // SAFETY: `table` is a page-table frame we own (see the type's
        // docs), identity-mapped; `index < 512` keeps the read inside it.
        unsafe { core::ptr::read_volatile((table.0 as *const u64).add(index)) }
    }

    fn write_entry(&mut self, table: npt::HostPhysAddr, index: usize, value: u64) {
        assert!(index < 512 && table.0.is_multiple_of(4096) && table.0 < IDENTITY_LIMIT);
        // SAFETY: as for `read_entry`; the CPU's walker reads the entry
        // atomically, and a volatile aligned u64 store is one write.
        unsafe { core::ptr::write_volatile((table.0 as *mut u64).add(index), value) }
    }
}

unsafe extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

/// The hypervisor image in memory, `[start, end)`, `.bss` included.
pub fn image_range() -> (u64, u64) {
    (core::ptr::addr_of!(__image_start) as u64, core::ptr::addr_of!(__image_end) as u64)
}

/// The bytes of a boot module.
///
/// Boot modules are excluded from the frame allocator (see
/// `kernel::usable_ranges`) and nothing writes them, so they stay intact
/// for the kernel's life. Returns None for a range outside the identity map.
pub fn boot_module(start: u64, end: u64) -> Option<&'static [u8]> {
    if end < start || end > IDENTITY_LIMIT || start == 0 {
        return None;
    }
    // SAFETY: see above: the range is reserved RAM that nobody writes.
    Some(unsafe { slice(start, (end - start) as usize) })
}
