//! Test helpers: a sparse guest memory for large layouts, and readers.

use std::collections::BTreeMap;

use guest_x86::mem::{GuestMemory, MemError};

const PAGE: u64 = 0x1000;

/// Guest RAM that stores only the pages written, so a 3 GiB layout costs
/// what the loader touches. Unwritten bytes read as zero.
pub struct SparseMemory {
    size: u64,
    pages: BTreeMap<u64, Box<[u8; PAGE as usize]>>,
}

impl SparseMemory {
    pub fn new(size: u64) -> Self {
        SparseMemory { size, pages: BTreeMap::new() }
    }
}

impl GuestMemory for SparseMemory {
    fn size(&self) -> u64 {
        self.size
    }
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        self.check_range(gpa, buf.len() as u64)?;
        let mut done = 0;
        while done < buf.len() {
            let a = gpa + done as u64;
            let off = (a % PAGE) as usize;
            let n = (PAGE as usize - off).min(buf.len() - done);
            let dst = &mut buf[done..done + n];
            match self.pages.get(&(a / PAGE)) {
                Some(p) => dst.copy_from_slice(&p[off..off + n]),
                None => dst.fill(0),
            }
            done += n;
        }
        Ok(())
    }
    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        self.check_range(gpa, data.len() as u64)?;
        let mut done = 0;
        while done < data.len() {
            let a = gpa + done as u64;
            let off = (a % PAGE) as usize;
            let n = (PAGE as usize - off).min(data.len() - done);
            let page = self.pages.entry(a / PAGE).or_insert_with(|| Box::new([0; PAGE as usize]));
            page[off..off + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
        Ok(())
    }
    fn zero(&mut self, gpa: u64, len: u64) -> Result<(), MemError> {
        self.check_range(gpa, len)?;
        if len == 0 {
            return Ok(());
        }
        let end = gpa + len;
        for (&n, page) in self.pages.range_mut(gpa / PAGE..=(end - 1) / PAGE) {
            let from = gpa.max(n * PAGE) - n * PAGE;
            let to = end.min((n + 1) * PAGE) - n * PAGE;
            page[from as usize..to as usize].fill(0);
        }
        Ok(())
    }
}

pub fn bytes(mem: &impl GuestMemory, gpa: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    mem.read(gpa, &mut v).expect("read inside guest RAM");
    v
}

pub fn u16_at(mem: &impl GuestMemory, gpa: u64) -> u16 {
    u16::from_le_bytes(bytes(mem, gpa, 2).try_into().unwrap())
}

pub fn u32_at(mem: &impl GuestMemory, gpa: u64) -> u32 {
    mem.read_u32(gpa).expect("read inside guest RAM")
}

pub fn u64_at(mem: &impl GuestMemory, gpa: u64) -> u64 {
    mem.read_u64(gpa).expect("read inside guest RAM")
}

/// The NUL-terminated string at `gpa`, without the NUL.
pub fn c_string(mem: &impl GuestMemory, gpa: u64) -> Vec<u8> {
    let mut s = Vec::new();
    let mut b = [0u8; 1];
    loop {
        mem.read(gpa + s.len() as u64, &mut b).expect("string inside guest RAM");
        if b[0] == 0 {
            return s;
        }
        s.push(b[0]);
    }
}

/// A recognisable byte pattern of length `len`, different per `seed`.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8).collect()
}

#[test]
fn sparse_memory_reads_back_writes_and_zeroes_ranges() {
    let mut m = SparseMemory::new(3 << 30);
    m.write(0xBFFF_FFFE, &[1, 2]).unwrap();
    m.write(0x1FFE, &[7; 4]).unwrap();
    assert_eq!(bytes(&m, 0xBFFF_FFFD, 3), [0, 1, 2]);
    m.zero(0x1FFF, 2).unwrap();
    assert_eq!(bytes(&m, 0x1FFE, 4), [7, 0, 0, 7]);
    assert!(m.write(0xBFFF_FFFF, &[1, 2]).is_err());
    assert!(m.zero(u64::MAX, 2).is_err());
}
