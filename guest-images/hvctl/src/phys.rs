//! Memory the hypervisor can see: page-locked buffers with their
//! guest-physical addresses, the MMIO information device through /dev/mem,
//! and I/O port permission.
//!
//! Hypercalls take guest-PHYSICAL addresses. A user-space program gets one
//! by mapping an anonymous page locked and populated (MAP_LOCKED |
//! MAP_POPULATE, then mlock), writing to it so it is a private page, and
//! reading its page frame number from /proc/self/pagemap (needs root, or
//! the kernel reports PFN 0). Every buffer stays inside one page, so no
//! physical contiguity is assumed.
//!
//! The libc functions come from the C library std links anyway (statically
//! with +crt-static), so no crate is needed.

use std::ffi::{c_int, c_long, c_ulong, c_void};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;

pub const PAGE_SIZE: usize = 4096;

const PROT_READ: c_int = 1;
const PROT_WRITE: c_int = 2;
const MAP_SHARED: c_int = 0x01;
const MAP_PRIVATE: c_int = 0x02;
const MAP_ANONYMOUS: c_int = 0x20;
const MAP_LOCKED: c_int = 0x2000;
const MAP_POPULATE: c_int = 0x8000;
const MAP_FAILED: *mut c_void = !0usize as *mut c_void;
const O_SYNC: c_int = 0o4010000;

extern "C" {
    fn mmap(addr: *mut c_void, len: usize, prot: c_int, flags: c_int, fd: c_int, off: c_long) -> *mut c_void;
    fn munmap(addr: *mut c_void, len: usize) -> c_int;
    fn mlock(addr: *const c_void, len: usize) -> c_int;
    fn ioperm(from: c_ulong, num: c_ulong, turn_on: c_int) -> c_int;
}

/// The page frame number in a /proc/self/pagemap entry, if the page is
/// present (bit 63) and the kernel showed the PFN (bits 0-54; zero without
/// CAP_SYS_ADMIN).
pub fn pagemap_pfn(entry: u64) -> Option<u64> {
    let present = entry & (1 << 63) != 0;
    let pfn = entry & ((1 << 55) - 1);
    (present && pfn != 0).then_some(pfn)
}

/// One page of locked, private memory with a known guest-physical address.
pub struct PhysPage {
    ptr: *mut u8,
    pagemap: File,
    gpa: u64,
}

impl PhysPage {
    pub fn new() -> io::Result<PhysPage> {
        // Safety: an anonymous private mapping of fresh memory aliases
        // nothing; the result is checked against MAP_FAILED.
        let p = unsafe {
            mmap(
                std::ptr::null_mut(),
                PAGE_SIZE,
                PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED | MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == MAP_FAILED {
            return Err(io::Error::other(format!("mmap of a locked page: {}", io::Error::last_os_error())));
        }
        let ptr = p.cast::<u8>();
        // MAP_LOCKED is best effort; mlock reports failure.
        // Safety: [p, p + PAGE_SIZE) is the mapping made above.
        if unsafe { mlock(p, PAGE_SIZE) } != 0 {
            let e = io::Error::last_os_error();
            // Safety: unmapping the mapping made above, which nothing uses.
            unsafe { munmap(p, PAGE_SIZE) };
            return Err(io::Error::new(e.kind(), format!("mlock: {e}")));
        }
        // Write every byte so the page is this process's own frame (not the
        // shared zero page) and zeroed.
        // Safety: the page is mapped writable and owned by us.
        unsafe { std::ptr::write_bytes(ptr, 0, PAGE_SIZE) };
        let pagemap = match File::open("/proc/self/pagemap") {
            Ok(f) => f,
            Err(e) => {
                // Safety: as above.
                unsafe { munmap(p, PAGE_SIZE) };
                return Err(io::Error::new(e.kind(), format!("/proc/self/pagemap: {e}")));
            }
        };
        let mut page = PhysPage { ptr, pagemap, gpa: 0 };
        page.gpa = page.resolve()?;
        Ok(page)
    }

    /// Looks the page's frame up in /proc/self/pagemap.
    fn resolve(&self) -> io::Result<u64> {
        let vpn = self.ptr as u64 / PAGE_SIZE as u64;
        let mut e = [0u8; 8];
        self.pagemap
            .read_exact_at(&mut e, vpn * 8)
            .map_err(|e| io::Error::new(e.kind(), format!("/proc/self/pagemap: {e}")))?;
        let entry = u64::from_le_bytes(e);
        pagemap_pfn(entry).map(|pfn| pfn * PAGE_SIZE as u64).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "/proc/self/pagemap shows no page frame for a locked page (entry {entry:#018x}); \
                     hvctl must run as root to learn guest-physical addresses"
                ),
            )
        })
    }

    /// The guest-physical address of byte 0.
    pub fn gpa(&self) -> u64 {
        self.gpa
    }

    /// Checks that the page still sits at the frame we told the hypervisor
    /// (locked pages can in principle still be migrated).
    pub fn check_unmoved(&self) -> io::Result<()> {
        let now = self.resolve()?;
        if now != self.gpa {
            return Err(io::Error::other(format!(
                "the buffer moved from {:#x} to {now:#x} during the call; try again",
                self.gpa
            )));
        }
        Ok(())
    }

    /// Copies `data` to the start of the page (at most a page).
    pub fn write(&mut self, data: &[u8]) {
        let n = data.len().min(PAGE_SIZE);
        // Safety: n <= PAGE_SIZE bytes of our page; the source is a
        // distinct Rust slice.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr, n) };
    }

    /// Reads the first `n` bytes (at most a page) with volatile loads: the
    /// hypervisor wrote them behind the compiler's back.
    pub fn read(&self, n: usize) -> Vec<u8> {
        let n = n.min(PAGE_SIZE);
        // Safety: each index is inside our mapped page.
        (0..n).map(|i| unsafe { self.ptr.add(i).read_volatile() }).collect()
    }
}

impl Drop for PhysPage {
    fn drop(&mut self) {
        // Safety: unmapping our own mapping; no reference into it outlives
        // `self`.
        unsafe { munmap(self.ptr.cast(), PAGE_SIZE) };
    }
}

/// Guest-physical base of the MMIO information device.
pub const MMIO_INFO_BASE: u64 = 0xFEBF_F000;
/// Register offsets.
pub const MMIO_MAGIC: usize = 0x0;
/// The MAGIC register's value.
pub const MMIO_MAGIC_VALUE: u32 = 0x4345_5254;

/// The MMIO information device, mapped from /dev/mem.
pub struct MmioPage {
    ptr: *mut u8,
}

impl MmioPage {
    pub fn map(base: u64) -> io::Result<MmioPage> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(O_SYNC)
            .open("/dev/mem")
            .map_err(|e| io::Error::new(e.kind(), format!("/dev/mem: {e}")))?;
        // Safety: a shared mapping of a device page through /dev/mem; the
        // result is checked. The mapping outlives the fd (mmap keeps its own
        // reference).
        let p = unsafe {
            mmap(std::ptr::null_mut(), PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, f.as_raw_fd(), base as c_long)
        };
        if p == MAP_FAILED {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("mmap of /dev/mem at {base:#x}: {e}")));
        }
        Ok(MmioPage { ptr: p.cast() })
    }

    /// A pointer to the 32-bit register at `offset`.
    pub fn reg32(&self, offset: usize) -> *const u32 {
        assert!(offset + 4 <= PAGE_SIZE && offset.is_multiple_of(4));
        // Safety (for the caller's reads): inside the mapped page, aligned.
        self.ptr.wrapping_add(offset).cast()
    }
}

impl Drop for MmioPage {
    fn drop(&mut self) {
        // Safety: our own mapping.
        unsafe { munmap(self.ptr.cast(), PAGE_SIZE) };
    }
}

/// Allows this process `in`/`out` on one port (root only).
pub fn allow_port(port: u16) -> io::Result<()> {
    // Safety: ioperm changes only this process's I/O bitmap.
    if unsafe { ioperm(c_ulong::from(port), 1, 1) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("ioperm({port:#x}): {e}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagemap_entries_decode() {
        assert_eq!(pagemap_pfn((1 << 63) | 0x1234), Some(0x1234));
        assert_eq!(pagemap_pfn(0x1234), None, "not present");
        assert_eq!(pagemap_pfn(1 << 63), None, "PFN hidden (not root)");
        // Bits 55-62 are flags (soft-dirty, exclusive, file/shared), not PFN.
        assert_eq!(pagemap_pfn((1 << 63) | (1 << 62) | (1 << 56) | (1 << 55) | 7), Some(7));
        assert_eq!(pagemap_pfn((1 << 63) | ((1 << 55) - 1)), Some((1 << 55) - 1));
    }
}
