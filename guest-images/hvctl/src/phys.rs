//! The devices `hvctl bench` times: the MMIO information device through
//! /dev/mem, and I/O port permission (both root only). Hypercall buffers
//! need nothing here: ABI 2 takes them as ordinary addresses of this
//! process (docs/hypercalls.md §6).
//!
//! The libc functions come from the C library std links anyway (statically
//! with +crt-static), so no crate is needed.

use std::ffi::{c_int, c_long, c_ulong, c_void};
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;

pub const PAGE_SIZE: usize = 4096;

const PROT_READ: c_int = 1;
const PROT_WRITE: c_int = 2;
const MAP_SHARED: c_int = 0x01;
const MAP_FAILED: *mut c_void = !0usize as *mut c_void;
const O_SYNC: c_int = 0o4010000;

extern "C" {
    fn mmap(addr: *mut c_void, len: usize, prot: c_int, flags: c_int, fd: c_int, off: c_long) -> *mut c_void;
    fn munmap(addr: *mut c_void, len: usize) -> c_int;
    fn ioperm(from: c_ulong, num: c_ulong, turn_on: c_int) -> c_int;
}

/// Guest-physical base of the MMIO information device.
pub const MMIO_INFO_BASE: u64 = 0xFEBF_F000;
/// Register offsets.
pub const MMIO_MAGIC: usize = 0x0;
/// The MAGIC register's value.
pub const MMIO_MAGIC_VALUE: u32 = 0x4345_5254;

/// The read/write SCRATCH register.
pub const MMIO_SCRATCH: usize = 0x8;
/// The POST code port: the board takes a write and does nothing else.
pub const POST_PORT: u16 = 0x80;

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
        // SAFETY: a shared mapping of a device page through /dev/mem; the result is checked. The mapping outlives the
        // fd (mmap keeps its own reference).
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
        // SAFETY (for the caller's reads): inside the mapped page, aligned.
        self.ptr.wrapping_add(offset).cast()
    }
}

impl Drop for MmioPage {
    fn drop(&mut self) {
        // SAFETY: our own mapping.
        unsafe { munmap(self.ptr.cast(), PAGE_SIZE) };
    }
}

/// Allows this process `in`/`out` on one port (root only).
pub fn allow_port(port: u16) -> io::Result<()> {
    // SAFETY: ioperm changes only this process's I/O bitmap.
    if unsafe { ioperm(c_ulong::from(port), 1, 1) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("ioperm({port:#x}): {e}")));
    }
    Ok(())
}
