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
    // SAFETY: the range lies in the identity map; the caller reads boot
    // structures or its own frames, which are RAM, so the read has no side
    // effects. Volatile-free byte copies are fine for plain memory.
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
    if !read(pa, &mut size) || pa % 8 != 0 {
        return None;
    }
    let total = u64::from(u32::from_le_bytes(size));
    if !read(pa, &mut [0u8; 8]) || pa.checked_add(total).is_none_or(|end| end > IDENTITY_LIMIT) {
        return None;
    }
    // SAFETY: the structure lies in the identity map (checked above), is
    // 8-byte aligned, and the loader left it for us; the crate validates its
    // header and tags. The boot code reserves it until parsing is done.
    unsafe { multiboot2::BootInformation::load(pa as *const multiboot2::BootInformationHeader) }.ok()
}
