//! A VM's RAM as [`GuestMemory`], through the kernel's calls.
use guest_x86::mem::{GuestMemory, MemError};
use sysabi::{Sys, VmHandle};

pub struct VmMemory<'a, S: Sys> {
    pub sys: &'a S,
    pub vm: VmHandle,
    pub size: u64,
}

impl<S: Sys> GuestMemory for VmMemory<'_, S> {
    fn size(&self) -> u64 {
        self.size
    }

    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        self.sys.guest_read(self.vm, gpa, buf).map_err(|_| MemError::OutOfRange { gpa, len: buf.len() as u64 })
    }

    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        self.sys.guest_write(self.vm, gpa, data).map_err(|_| MemError::OutOfRange { gpa, len: data.len() as u64 })
    }

    fn zero(&mut self, gpa: u64, len: u64) -> Result<(), MemError> {
        self.check_range(gpa, len)?;
        let zeros = [0u8; 512];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(zeros.len() as u64);
            self.write(gpa + done, &zeros[..n as usize])?;
            done += n;
        }
        Ok(())
    }
}
