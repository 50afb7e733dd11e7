//! What a VM's VMCBs point at by host-physical address: its nested page
//! table with the RAM it maps, and its I/O and MSR permission maps.
//!
//! VMRUN follows these pointers without checking them, so they are the
//! memory-safety boundary of running a guest. A [`VmSpace`] owns everything
//! they reach and is the only way to set them: the nested page table maps
//! only RAM runs the space holds (zeroed before the guest sees them), the
//! MSR map lets through only the MSRs the world switch swaps, and a VMCB
//! exists only as a [`GuestVmcb`], made by [`VmSpace::new_vmcb`] already
//! pointing at its space (with the intercepts `vmcb` never lets go). A space
//! counts the VMCBs bound to it and gives its frames back only when none is
//! left; dropped earlier, it keeps them for good (a leak, never a frame
//! that a CPU may still reach).
use super::frames::{self, FrameError, PoolId, TableFrames};
use super::phys::{PhysBox, PhysRun, PAGE};
use arrayvec::ArrayVec;
use guest_x86::mem::{GuestMemory, MemError};
use npt::{GuestPhysAddr, HostPhysAddr, NestedPageTable, NptError, Perms, TlbFlush};
use vmcb::{Iopm, MsrAccess, Msrpm, Vmcb};

/// Physically contiguous pieces of guest RAM a VM may have.
pub const MAX_RAM_CHUNKS: usize = 64;
const _: () = assert!(MAX_RAM_CHUNKS <= u8::MAX as usize + 1, "a chunk's index is kept in a u8");

/// The MSRs the guest reaches without an exit: those whose guest values
/// VMRUN/#VMEXIT or the world switch's VMLOAD/VMSAVE swap (APM vol. 2,
/// §15.5.1 and the VMSAVE description), so the guest touches only its own
/// values. Every other MSR stays intercepted.
pub const SWITCHED_MSRS: [u32; 10] = [
    0xC000_0081, // STAR
    0xC000_0082, // LSTAR
    0xC000_0083, // CSTAR
    0xC000_0084, // SFMASK
    0xC000_0100, // FS_BASE
    0xC000_0101, // GS_BASE
    0xC000_0102, // KERNEL_GS_BASE
    0x174,       // SYSENTER_CS
    0x175,       // SYSENTER_ESP
    0x176,       // SYSENTER_EIP
];

/// A piece of guest RAM: frames the space owns, mapped at `gpa`.
struct RamChunk {
    gpa: u64,
    run: PhysRun,
}

impl RamChunk {
    fn holds(&self, gpa: u64) -> bool {
        gpa.wrapping_sub(self.gpa) < self.run.len()
    }
}

/// Which RAM chunk to look in first ([`VmSpace::read_array`]): only a
/// hint, checked at each use, so any value is safe (chunks are never
/// removed while the space lives).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkHint(u8);

/// Why RAM could not be mapped. The run offered is given back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// The space holds [`MAX_RAM_CHUNKS`] pieces already.
    TooManyChunks,
    /// The nested page table refused (overlap, alignment, no table frames).
    Npt(NptError),
}

/// A VM's nested page table, RAM and permission maps (see the module docs).
pub struct VmSpace {
    /// `None` only once destroyed, in `drop`.
    npt: Option<NestedPageTable>,
    tables: TableFrames,
    ram: ArrayVec<RamChunk, MAX_RAM_CHUNKS>,
    iopm: PhysBox<Iopm>,
    msrpm: PhysBox<Msrpm>,
    /// VMCBs made by [`VmSpace::new_vmcb`] and not yet given back.
    vmcbs: u32,
}

impl VmSpace {
    /// An empty space with frames from `pool`: every I/O port and every MSR
    /// but [`SWITCHED_MSRS`] intercepted, no RAM.
    pub fn new(pool: PoolId) -> Result<VmSpace, FrameError> {
        let mut iopm = PhysBox::<Iopm>::alloc(pool)?;
        let mut msrpm = PhysBox::<Msrpm>::alloc(pool)?;
        let mut tables = TableFrames::new(pool);
        let npt = NestedPageTable::new(&mut tables).map_err(|_| FrameError::OutOfQuota)?;
        iopm.fill(true);
        msrpm.fill(true);
        for msr in SWITCHED_MSRS {
            // Every one of them lies in the MSRPM's ranges.
            let _ = msrpm.set(msr, MsrAccess::ReadWrite, false);
        }
        Ok(VmSpace { npt: Some(npt), tables, ram: ArrayVec::new(), iopm, msrpm, vmcbs: 0 })
    }

    /// Intercept (or pass through) a guest I/O port.
    pub fn set_io_intercept(&mut self, port: u16, intercept: bool) {
        self.iopm.set_port(port, intercept);
    }

    /// Zeroes `run` and maps it at `gpa`, read-write-execute, with the
    /// largest pages that fit. The space keeps the run until it is dropped.
    /// The token names what the change left stale (nothing, when it maps
    /// unmapped space).
    pub fn map_ram(&mut self, gpa: u64, mut run: PhysRun) -> Result<TlbFlush<GuestPhysAddr>, MapError> {
        let Some(npt) = self.npt.as_mut() else {
            return Err(MapError::Npt(NptError::NotMapped));
        };
        if self.ram.is_full() {
            return Err(MapError::TooManyChunks);
        }
        let len = run.len();
        run.zero(0, len);
        let flush = npt
            .map_range(&mut self.tables, GuestPhysAddr(gpa), HostPhysAddr(run.pa()), len, Perms::RWX)
            .map_err(MapError::Npt)?;
        self.ram.push(RamChunk { gpa, run });
        Ok(flush)
    }

    /// Bytes of guest RAM mapped.
    pub fn ram_bytes(&self) -> u64 {
        self.ram.iter().map(|c| c.run.len()).sum()
    }

    /// The chunk holding `gpa`.
    fn chunk(&self, gpa: u64) -> Option<&RamChunk> {
        self.ram.iter().find(|c| gpa >= c.gpa && gpa < c.gpa + c.run.len())
    }

    /// The `N` bytes at `gpa`, read in place, if they lie in one chunk of
    /// RAM (a few bytes of code, for the fast path), and their host
    /// address, which stays theirs while the VM lives (chunks are never
    /// unmapped). The chunk `hint` names is tried first, and `hint` then
    /// names the chunk that held them.
    pub fn read_array<const N: usize>(&self, gpa: u64, hint: &mut ChunkHint) -> Option<([u8; N], u64)> {
        let c = match self.ram.get(usize::from(hint.0)) {
            Some(c) if c.holds(gpa) => c,
            _ => {
                let (i, c) = self.ram.iter().enumerate().find(|(_, c)| c.holds(gpa))?;
                *hint = ChunkHint(i as u8);
                c
            }
        };
        c.run.read_array(gpa - c.gpa)
    }

    /// Every byte of `[gpa, gpa + len)` is guest RAM.
    fn covers(&self, gpa: u64, len: u64) -> bool {
        let Some(end) = gpa.checked_add(len) else {
            return false;
        };
        let mut at = gpa;
        while at < end {
            match self.chunk(at) {
                Some(c) => at = c.gpa + c.run.len(),
                None => return false,
            }
        }
        true
    }

    /// Writes all of `data` at `gpa` or, when part of the range is not RAM,
    /// nothing; through a shared reference, so that the VMM writes guest
    /// RAM while the guest runs (see [`PhysRun::write_shared`]).
    pub fn write_shared(&self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        if !self.covers(gpa, data.len() as u64) {
            return Err(MemError::OutOfRange { gpa, len: data.len() as u64 });
        }
        let mut done = 0usize;
        while done < data.len() {
            let at = gpa + done as u64;
            let Some(c) = self.chunk(at) else { break };
            let n = ((c.gpa + c.run.len() - at) as usize).min(data.len() - done);
            c.run.write_shared(at - c.gpa, &data[done..done + n]);
            done += n;
        }
        Ok(())
    }

    /// A VMCB in a fresh zeroed frame of `pool`, pointing at this space's
    /// nested page table and permission maps with nested paging on.
    pub fn new_vmcb(&mut self, pool: PoolId) -> Result<GuestVmcb, FrameError> {
        // The root comes from the table itself (only the npt crate makes a `TableRoot`).
        let root = self.npt.as_ref().map(|npt| npt.root().addr().0).ok_or(FrameError::Refused)?;
        let mut run = frames::alloc(pool, 1, 1)?;
        run.zero(0, PAGE);
        let mut vmcb = GuestVmcb { run };
        // The three are this space's own frames (its table's root, its 12 KiB IOPM and 8 KiB MSRPM); the table maps
        // only RAM the space holds and the MSRPM grants only SWITCHED_MSRS.
        // SAFETY: as above; the space keeps all of them while `vmcbs` counts this VMCB (a VMCB cannot be copied),
        // and forever if it is dropped before.
        unsafe { vmcb.control.bind_host_memory(self.iopm.pa(), self.msrpm.pa(), root) };
        self.vmcbs += 1;
        Ok(vmcb)
    }

    /// Takes back a VMCB made by [`VmSpace::new_vmcb`] and frees it. One
    /// from another space (its N_CR3 is not this space's root) is freed
    /// without being counted off, so that space keeps its frames for good.
    pub fn release_vmcb(&mut self, vmcb: GuestVmcb) {
        let ours = self.npt.as_ref().is_some_and(|npt| npt.root().addr().0 == vmcb.control.n_cr3());
        if ours && self.vmcbs > 0 {
            self.vmcbs -= 1;
        }
    }
}

impl GuestMemory for VmSpace {
    fn size(&self) -> u64 {
        self.ram.iter().map(|c| c.gpa + c.run.len()).max().unwrap_or(0)
    }

    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let bad = MemError::OutOfRange { gpa, len: buf.len() as u64 };
        let mut done = 0usize;
        while done < buf.len() {
            let at = gpa.checked_add(done as u64).ok_or(bad)?;
            let c = self.chunk(at).ok_or(bad)?;
            let n = ((c.gpa + c.run.len() - at) as usize).min(buf.len() - done);
            c.run.read(at - c.gpa, &mut buf[done..done + n]);
            done += n;
        }
        Ok(())
    }

    /// Every byte of the range is RAM: a hole between chunks is not.
    fn check_range(&self, gpa: u64, len: u64) -> Result<(), MemError> {
        if self.covers(gpa, len) {
            Ok(())
        } else {
            Err(MemError::OutOfRange { gpa, len })
        }
    }

    /// Writes all of `data` or, when part of the range is not RAM, nothing.
    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        self.write_shared(gpa, data)
    }

    fn zero(&mut self, gpa: u64, len: u64) -> Result<(), MemError> {
        if !self.covers(gpa, len) {
            return Err(MemError::OutOfRange { gpa, len });
        }
        let mut at = gpa;
        while at < gpa + len {
            let Some(c) = self.ram.iter_mut().find(|c| c.holds(at)) else { break };
            let n = (c.gpa + c.run.len() - at).min(gpa + len - at);
            c.run.zero(at - c.gpa, n);
            at += n;
        }
        Ok(())
    }
}

impl Drop for VmSpace {
    fn drop(&mut self) {
        if self.vmcbs != 0 {
            log::error!("vmspace: dropped with {} VMCBs still pointing at it; its frames are kept", self.vmcbs);
            for c in &mut self.ram {
                c.run.leak();
            }
            self.iopm.leak();
            self.msrpm.leak();
            // The table's frames stay owned: `destroy` is not called.
            return;
        }
        if let Some(npt) = self.npt.take() {
            // No VMCB names this table any more; the vCPUs that used it took
            // their ASIDs with them.
            npt.destroy(&mut self.tables).apply(|_| {});
        }
        // The RAM runs and the permission maps give themselves back.
    }
}

/// A VMCB in a frame of its own, pointing at the [`VmSpace`] that made it:
/// the only VMCB the world switch runs ([`super::svm::run_vmcb`]).
pub struct GuestVmcb {
    run: PhysRun,
}

impl GuestVmcb {
    /// The VMCB's host-physical address, for VMRUN.
    pub fn pa(&self) -> u64 {
        self.run.pa()
    }
}

impl core::ops::Deref for GuestVmcb {
    type Target = Vmcb;
    fn deref(&self) -> &Vmcb {
        // SAFETY: the run is ours, one page-aligned page, zeroed before use (all-zero bytes are a valid Vmcb: plain
        // integers), and reachable only through this value.
        unsafe { &*(super::phys::ptr(self.run.pa()) as *const Vmcb) }
    }
}

impl core::ops::DerefMut for GuestVmcb {
    fn deref_mut(&mut self) -> &mut Vmcb {
        // SAFETY: as for Deref; `&mut self` makes the access exclusive. Safe code cannot unset what VMRUN relies
        // on through it: `vmcb` keeps the host-physical pointers private, and no other Vmcb value exists to swap in.
        unsafe { &mut *(super::phys::ptr(self.run.pa()) as *mut Vmcb) }
    }
}
