//! A minimal safe wrapper around /dev/kvm: one VM, its memory, one vCPU and
//! its exits to userspace. kvmbench's unsafe code is here (but for one
//! slice of the guest code's bytes in guest.rs): the ioctl, mmap and munmap
//! calls, and the accesses to the shared `kvm_run` page and to guest memory
//! through raw pointers.

use crate::kvm_abi::{self as abi, run, Cpuid2, Regs, Sregs, UserspaceMemoryRegion};
use std::ffi::{c_int, c_long, c_uint, c_ulong, c_void};
use std::fs::OpenOptions;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr;

extern "C" {
    fn alarm(seconds: c_uint) -> c_uint;
    fn signal(signum: c_int, handler: extern "C" fn(c_int)) -> usize;
    fn ioctl(fd: c_int, request: c_ulong, ...) -> c_int;
    fn mmap(addr: *mut c_void, len: usize, prot: c_int, flags: c_int, fd: c_int, off: c_long) -> *mut c_void;
    fn munmap(addr: *mut c_void, len: usize) -> c_int;
}

const PROT_READ: c_int = 1;
const PROT_WRITE: c_int = 2;
const MAP_SHARED: c_int = 0x01;
const MAP_PRIVATE: c_int = 0x02;
const MAP_ANONYMOUS: c_int = 0x20;
const MAP_FAILED: *mut c_void = !0 as *mut c_void;

const SIGALRM: c_int = 14;
const SIG_ERR: usize = !0;

extern "C" fn on_alarm(_: c_int) {}

/// Makes SIGALRM interrupt a KVM_RUN that has not come back `seconds`
/// after this call (KVM_RUN then fails with EINTR; KVM does not restart
/// it); 0 disarms. Without it a vCPU that never leaves the kernel (KVM does
/// not enter the guest while the TSC rate is unknown) would hang kvmbench.
pub fn watchdog(seconds: u32) -> io::Result<()> {
    // SAFETY: the handler does nothing, so it is async-signal-safe; glibc's
    // signal() installs it for SIGALRM only, which nothing else here uses.
    if unsafe { signal(SIGALRM, on_alarm) } == SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: alarm() only (re)arms this process's timer.
    unsafe { alarm(seconds) };
    Ok(())
}

fn check(what: &str, r: c_int) -> io::Result<c_int> {
    if r < 0 {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(r)
    }
}

/// An ioctl whose argument is an integer (or unused).
fn ioctl_value(fd: &impl AsRawFd, what: &str, request: u64, arg: c_ulong) -> io::Result<c_int> {
    // The requests passed here (GET_API_VERSION, CREATE_VM, GET_VCPU_MMAP_SIZE,
    // CREATE_VCPU, CREATE_IRQCHIP, RUN) take an integer argument or none.
    // SAFETY: so the kernel touches no memory of this process through `arg`.
    check(what, unsafe { ioctl(fd.as_raw_fd(), request as c_ulong, arg) })
}

/// An ioctl that reads or writes the structure `arg` points to. Callers
/// pair each request with the structure kvm_abi.rs defines for it.
fn ioctl_struct<T>(fd: &impl AsRawFd, what: &str, request: u64, arg: &mut T) -> io::Result<c_int> {
    let p: *mut T = arg;
    // Each request is used with the structure whose size is in its number (kvm_abi.rs).
    // SAFETY: `p` comes from an exclusive reference: valid for reading and
    // writing a whole T during the call.
    check(what, unsafe { ioctl(fd.as_raw_fd(), request as c_ulong, p) })
}

fn fd_from(what: &str, r: io::Result<c_int>) -> io::Result<OwnedFd> {
    let fd = r?;
    if fd < 0 {
        return Err(io::Error::other(format!("{what} returned {fd}")));
    }
    // SAFETY: the kernel just returned this new descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An open /dev/kvm.
pub struct Kvm {
    fd: OwnedFd,
}

impl Kvm {
    pub fn open() -> io::Result<Kvm> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .map_err(|e| io::Error::new(e.kind(), format!("/dev/kvm: {e}")))?;
        let kvm = Kvm { fd: f.into() };
        let v = ioctl_value(&kvm.fd, "KVM_GET_API_VERSION", abi::GET_API_VERSION, 0)?;
        if v != abi::API_VERSION {
            return Err(io::Error::other(format!("KVM API version {v}, expected {}", abi::API_VERSION)));
        }
        Ok(kvm)
    }

    /// The CPUID entries KVM can give a guest (KVM_GET_SUPPORTED_CPUID).
    pub fn supported_cpuid(&self) -> io::Result<Box<Cpuid2>> {
        let mut c = Cpuid2::with_room();
        ioctl_struct(&self.fd, "KVM_GET_SUPPORTED_CPUID", abi::GET_SUPPORTED_CPUID, &mut *c)?;
        Ok(c)
    }

    /// A VM whose physical memory, from address 0, is `memory`.
    pub fn create_vm(&self, memory: GuestMemory) -> io::Result<Vm> {
        let fd = fd_from("KVM_CREATE_VM", ioctl_value(&self.fd, "KVM_CREATE_VM", abi::CREATE_VM, 0))?;
        let run_size = ioctl_value(&self.fd, "KVM_GET_VCPU_MMAP_SIZE", abi::GET_VCPU_MMAP_SIZE, 0)? as usize;
        let mut region = UserspaceMemoryRegion {
            slot: 0,
            flags: 0,
            guest_phys_addr: 0,
            memory_size: memory.len as u64,
            userspace_addr: memory.ptr as u64,
        };
        ioctl_struct(&fd, "KVM_SET_USER_MEMORY_REGION", abi::SET_USER_MEMORY_REGION, &mut region)?;
        Ok(Vm { fd, run_size, memory })
    }
}

/// Anonymous memory that backs the guest's physical memory.
pub struct GuestMemory {
    ptr: *mut u8,
    len: usize,
}

impl GuestMemory {
    pub fn new(len: usize) -> io::Result<GuestMemory> {
        // SAFETY: an anonymous private mapping at an address of the
        // kernel's choosing replaces nothing of this process.
        let p = unsafe { mmap(ptr::null_mut(), len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) };
        if p == MAP_FAILED {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!("mmap {len} bytes: {}", io::Error::last_os_error()),
            ));
        }
        Ok(GuestMemory { ptr: p.cast(), len })
    }

    fn check(&self, offset: usize, n: usize) {
        assert!(
            offset.checked_add(n).is_some_and(|end| end <= self.len),
            "guest memory access {offset:#x}+{n:#x} beyond {:#x}",
            self.len
        );
    }

    /// Copies `data` to guest-physical address `offset`.
    pub fn write(&self, offset: usize, data: &[u8]) {
        self.check(offset, data.len());
        // No Rust reference to guest memory exists: it is only accessed through
        // this raw pointer, while the vCPU is stopped.
        // SAFETY: the range is inside the mapping (checked above).
        unsafe { ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.add(offset), data.len()) };
    }

    /// Reads `n` little-endian u64 values starting at `offset`.
    pub fn read_u64s(&self, offset: usize, n: usize) -> Vec<u64> {
        self.check(offset, n * 8);
        // SAFETY: as in `write`; read_unaligned needs no alignment.
        (0..n).map(|i| unsafe { ptr::read_unaligned(self.ptr.add(offset + i * 8).cast::<u64>()) }).collect()
    }
}

impl Drop for GuestMemory {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`; nothing refers to it after drop.
        unsafe { munmap(self.ptr.cast(), self.len) };
    }
}

/// A VM and the memory it was given. The memory lives as long as the VM:
/// `fd` is dropped first (fields drop in order), and every `Vcpu` borrows
/// the VM, so the kernel's VM is gone before the memory is unmapped.
pub struct Vm {
    fd: OwnedFd,
    run_size: usize,
    memory: GuestMemory,
}

impl Vm {
    /// The in-kernel PIC, IOAPIC and per-vCPU LAPIC (before any vCPU).
    pub fn create_irqchip(&self) -> io::Result<()> {
        ioctl_value(&self.fd, "KVM_CREATE_IRQCHIP", abi::CREATE_IRQCHIP, 0).map(drop)
    }

    pub fn memory(&self) -> &GuestMemory {
        &self.memory
    }

    pub fn create_vcpu(&self, id: u32) -> io::Result<Vcpu<'_>> {
        let fd = fd_from("KVM_CREATE_VCPU", ioctl_value(&self.fd, "KVM_CREATE_VCPU", abi::CREATE_VCPU, id.into()))?;
        // SAFETY: maps the vCPU's kvm_run page(s) at an address of the
        // kernel's choosing, replacing nothing.
        let p = unsafe { mmap(ptr::null_mut(), self.run_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.as_raw_fd(), 0) };
        if p == MAP_FAILED {
            return Err(io::Error::other(format!("mmap kvm_run: {}", io::Error::last_os_error())));
        }
        Ok(Vcpu { fd, run: p.cast(), run_size: self.run_size, _vm: PhantomData })
    }
}

/// Why KVM_RUN returned to userspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    IoIn {
        port: u16,
        size: u8,
        count: u32,
    },
    IoOut {
        port: u16,
        size: u8,
        count: u32,
    },
    MmioRead {
        addr: u64,
        len: u32,
    },
    MmioWrite {
        addr: u64,
        len: u32,
    },
    /// Any other exit: its KVM_EXIT_* reason and the first word of its data.
    Other {
        reason: u32,
        detail: u64,
    },
}

pub struct Vcpu<'vm> {
    fd: OwnedFd,
    run: *mut u8,
    run_size: usize,
    _vm: PhantomData<&'vm Vm>,
}

impl Vcpu<'_> {
    fn run_read<T: Copy>(&self, offset: usize) -> T {
        assert!(offset + size_of::<T>() <= self.run_size);
        // The kernel writes the page only during KVM_RUN, which needs &mut self.
        // SAFETY: inside the kvm_run mapping (checked), which lives as long as self.
        unsafe { ptr::read_unaligned(self.run.add(offset).cast::<T>()) }
    }

    fn run_write(&mut self, offset: usize, data: &[u8]) {
        assert!(offset + data.len() <= self.run_size, "kvm_run write at {offset:#x} beyond the mapping");
        // SAFETY: inside the kvm_run mapping (checked), not running.
        unsafe { ptr::copy_nonoverlapping(data.as_ptr(), self.run.add(offset), data.len()) };
    }

    pub fn set_cpuid(&mut self, cpuid: &mut Cpuid2) -> io::Result<()> {
        ioctl_struct(&self.fd, "KVM_SET_CPUID2", abi::SET_CPUID2, cpuid).map(drop)
    }

    pub fn regs(&self) -> io::Result<Regs> {
        let mut r = Regs::default();
        ioctl_struct(&self.fd, "KVM_GET_REGS", abi::GET_REGS, &mut r)?;
        Ok(r)
    }

    pub fn set_regs(&mut self, mut r: Regs) -> io::Result<()> {
        ioctl_struct(&self.fd, "KVM_SET_REGS", abi::SET_REGS, &mut r).map(drop)
    }

    pub fn sregs(&self) -> io::Result<Sregs> {
        let mut s = Sregs::default();
        ioctl_struct(&self.fd, "KVM_GET_SREGS", abi::GET_SREGS, &mut s)?;
        Ok(s)
    }

    pub fn set_sregs(&mut self, mut s: Sregs) -> io::Result<()> {
        ioctl_struct(&self.fd, "KVM_SET_SREGS", abi::SET_SREGS, &mut s).map(drop)
    }

    /// Runs the vCPU until it needs userspace, or until a signal (the
    /// watchdog) interrupts it: then the error is of kind `Interrupted`.
    pub fn run(&mut self) -> io::Result<Exit> {
        ioctl_value(&self.fd, "KVM_RUN", abi::RUN, 0)?;
        let reason: u32 = self.run_read(run::EXIT_REASON);
        Ok(match reason {
            abi::EXIT_IO => {
                let (port, size, count) =
                    (self.run_read(run::IO_PORT), self.run_read(run::IO_SIZE), self.run_read(run::IO_COUNT));
                if self.run_read::<u8>(run::IO_DIRECTION) == abi::EXIT_IO_IN {
                    Exit::IoIn { port, size, count }
                } else {
                    Exit::IoOut { port, size, count }
                }
            }
            abi::EXIT_MMIO => {
                let (addr, len) = (self.run_read(run::MMIO_PHYS_ADDR), self.run_read(run::MMIO_LEN));
                if self.run_read::<u8>(run::MMIO_IS_WRITE) == 0 {
                    Exit::MmioRead { addr, len }
                } else {
                    Exit::MmioWrite { addr, len }
                }
            }
            _ => Exit::Other { reason, detail: self.run_read(run::DETAIL) },
        })
    }

    /// The data of an `IoIn` exit, which the next `run` gives the guest.
    pub fn complete_io_in(&mut self, data: &[u8]) {
        let off: u64 = self.run_read(run::IO_DATA_OFFSET);
        self.run_write(off as usize, data);
    }

    /// The data of an `MmioRead` exit, which the next `run` gives the guest.
    pub fn complete_mmio_read(&mut self, data: &[u8]) {
        assert!(data.len() <= 8, "kvm_run.mmio.data holds 8 bytes");
        self.run_write(run::MMIO_DATA, data);
    }
}

impl Drop for Vcpu<'_> {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `create_vcpu`; nothing refers to it after drop.
        unsafe { munmap(self.run.cast(), self.run_size) };
    }
}
