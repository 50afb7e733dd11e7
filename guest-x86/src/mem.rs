//! Guest-physical memory as the VMM sees it.
//!
//! Loaders, the instruction fetcher and the hypercall service reach guest
//! memory only through [`GuestMemory`], so each of them is tested on the host
//! against [`VecMemory`] and runs in the kernel against the VM's real frames.

/// Why a guest-memory access failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemError {
    /// `[gpa, gpa + len)` is not entirely backed by the VM's RAM.
    OutOfRange { gpa: u64, len: u64 },
}

/// Byte-granular access to a VM's RAM, by guest-physical address.
pub trait GuestMemory {
    /// Bytes of RAM, starting at guest-physical address 0.
    fn size(&self) -> u64;
    /// Copies `buf.len()` bytes at `gpa` into `buf`.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError>;
    /// Copies `data` to guest memory at `gpa`.
    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError>;
    /// Fills `[gpa, gpa + len)` with zeroes.
    fn zero(&mut self, gpa: u64, len: u64) -> Result<(), MemError>;

    /// Checks that `[gpa, gpa + len)` lies inside RAM without wrapping.
    fn check_range(&self, gpa: u64, len: u64) -> Result<(), MemError> {
        match gpa.checked_add(len) {
            Some(end) if end <= self.size() => Ok(()),
            _ => Err(MemError::OutOfRange { gpa, len }),
        }
    }
    fn read_u64(&self, gpa: u64) -> Result<u64, MemError> {
        let mut b = [0u8; 8];
        self.read(gpa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn read_u32(&self, gpa: u64) -> Result<u32, MemError> {
        let mut b = [0u8; 4];
        self.read(gpa, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn write_u64(&mut self, gpa: u64, v: u64) -> Result<(), MemError> {
        self.write(gpa, &v.to_le_bytes())
    }
    fn write_u32(&mut self, gpa: u64, v: u32) -> Result<(), MemError> {
        self.write(gpa, &v.to_le_bytes())
    }
}

/// Guest RAM simulated by a vector, for host tests.
#[cfg(any(test, feature = "std"))]
pub struct VecMemory(pub Vec<u8>);

#[cfg(any(test, feature = "std"))]
impl VecMemory {
    pub fn new(size: usize) -> Self {
        VecMemory(vec![0; size])
    }
}

#[cfg(any(test, feature = "std"))]
impl GuestMemory for VecMemory {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        self.check_range(gpa, buf.len() as u64)?;
        buf.copy_from_slice(&self.0[gpa as usize..gpa as usize + buf.len()]);
        Ok(())
    }
    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        self.check_range(gpa, data.len() as u64)?;
        self.0[gpa as usize..gpa as usize + data.len()].copy_from_slice(data);
        Ok(())
    }
    fn zero(&mut self, gpa: u64, len: u64) -> Result<(), MemError> {
        self.check_range(gpa, len)?;
        self.0[gpa as usize..(gpa + len) as usize].fill(0);
        Ok(())
    }
}
