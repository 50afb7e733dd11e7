//! The guest buffers a hypercall names.
//!
//! A buffer is a linear (guest-virtual) address and a length, and the
//! hypervisor reaches it with the caller's own rights: through the caller's
//! page tables, as a user access when the caller runs at CPL 3. So a user
//! process can name only memory its kernel mapped for it, and no call reads
//! or writes guest-physical memory on a user's say-so (docs/hypercalls.md
//! §6, docs/security.md).
//!
//! A buffer is translated whole before the call does anything, so a call
//! either runs with every buffer in reach or has no effect. An address the
//! caller could not access itself gives the fault the caller would have
//! taken ([`GuestFault`]); the VMM injects it with RIP still on the
//! VMMCALL, and the call runs again once the guest's kernel has handled it
//! (a copy-on-write or a not-yet-populated page) or ends the process (a bad
//! pointer).
use guest_x86::decode::{walk_and_mark, AccessKind, PageFault, PagingState, WalkError};
use guest_x86::mem::GuestMemory;

/// The largest buffer a call reads or writes: one page's worth.
pub const MAX_BUF: usize = 4096;
const PAGE: u64 = 4096;

/// An exception the caller takes instead of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestFault {
    /// #PF, with CR2 and the error code the caller's own access would give.
    Page(PageFault),
    /// #GP(0): a non-canonical address in long mode.
    GeneralProtection,
}

/// Why a buffer cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The caller's own access would fault.
    Fault(GuestFault),
    /// The caller's tables map the buffer to guest-physical memory that is
    /// not RAM, or lie outside RAM themselves, or use a paging mode the
    /// walker does not know: -EFAULT.
    NotRam,
}

/// Who is calling: the paging state and privilege the buffers are
/// translated with.
#[derive(Debug, Clone, Copy)]
pub struct Rights {
    pub paging: PagingState,
    /// CPL 3: every page must be a user page.
    pub user: bool,
}

/// A translated buffer: at most [`MAX_BUF`] bytes, so at most two pieces of
/// guest-physical memory (one page boundary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pieces: [(u64, usize); 2],
    count: usize,
}

impl Span {
    /// The buffer's length in bytes.
    pub fn len(&self) -> usize {
        self.pieces[..self.count].iter().map(|p| p.1).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `buf` from the start of the buffer.
    pub fn read(&self, mem: &impl GuestMemory, buf: &mut [u8]) -> Result<(), Refusal> {
        let mut done = 0;
        for &(gpa, n) in &self.pieces[..self.count] {
            let n = n.min(buf.len() - done);
            mem.read(gpa, &mut buf[done..done + n]).map_err(|_| Refusal::NotRam)?;
            done += n;
        }
        Ok(())
    }

    /// Writes `data` at the start of the buffer.
    pub fn write(&self, mem: &mut impl GuestMemory, data: &[u8]) -> Result<(), Refusal> {
        let mut done = 0;
        for &(gpa, n) in &self.pieces[..self.count] {
            let n = n.min(data.len() - done);
            mem.write(gpa, &data[done..done + n]).map_err(|_| Refusal::NotRam)?;
            done += n;
        }
        Ok(())
    }
}

/// Translates `len` bytes at linear address `lin` for a read (or a write)
/// with `rights`, setting the accessed (and dirty) bits the caller's own
/// access would set. `len` is at most [`MAX_BUF`]; the caller checks it
/// first and answers -E2BIG.
pub fn translate(
    mem: &mut impl GuestMemory,
    rights: &Rights,
    lin: u64,
    len: usize,
    write: bool,
) -> Result<Span, Refusal> {
    debug_assert!(len <= MAX_BUF, "buffer of {len} bytes");
    let access = if write { AccessKind::write(rights.user) } else { AccessKind::read(rights.user) };
    let mut span = Span { pieces: [(0, 0); 2], count: 0 };
    let mut done = 0usize;
    while done < len.min(MAX_BUF) {
        let at = lin.wrapping_add(done as u64);
        let n = ((PAGE - at % PAGE) as usize).min(len - done);
        let gpa = match walk_and_mark(mem, &rights.paging, at, access) {
            Ok(t) => t.gpa,
            Err(WalkError::PageFault(pf)) => return Err(Refusal::Fault(GuestFault::Page(pf))),
            Err(WalkError::NonCanonical { .. }) => return Err(Refusal::Fault(GuestFault::GeneralProtection)),
            Err(WalkError::BadGpa { .. } | WalkError::UnsupportedPaging) => return Err(Refusal::NotRam),
        };
        mem.check_range(gpa, n as u64).map_err(|_| Refusal::NotRam)?;
        span.pieces[span.count] = (gpa, n);
        span.count += 1;
        done += n;
    }
    Ok(span)
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;
    use guest_x86::decode::PfErrorCode;
    use guest_x86::mem::VecMemory;
    use guest_x86::regs::{cr0, cr4, efer};

    const P: u64 = 1;
    const RW: u64 = 2;
    const US: u64 = 4;

    /// Long-mode tables: linear page `i` (for i in 0..4) at 0x40_0000 maps
    /// frame 0x10_0000 + i * 0x3000 (not contiguous), with the leaf flags
    /// given; linear 0x40_4000 is not mapped.
    fn machine(leaf: [u64; 4]) -> (VecMemory, Rights) {
        let mut mem = VecMemory::new(0x20_0000);
        mem.write_u64(0x1000, 0x2000 | P | RW | US).unwrap();
        mem.write_u64(0x2000, 0x3000 | P | RW | US).unwrap();
        mem.write_u64(0x3000 + 2 * 8, 0x4000 | P | RW | US).unwrap();
        for (i, flags) in leaf.iter().enumerate() {
            mem.write_u64(0x4000 + i as u64 * 8, (0x10_0000 + i as u64 * 0x3000) | flags).unwrap();
        }
        let paging = PagingState {
            cr0: cr0::PG | cr0::PE | cr0::WP,
            cr3: 0x1000,
            cr4: cr4::PAE,
            efer: efer::LMA | efer::LME,
            phys_addr_bits: 40,
            gbpages: false,
        };
        (mem, Rights { paging, user: true })
    }

    const USER_RW: [u64; 4] = [P | RW | US; 4];

    #[test]
    fn a_buffer_across_a_page_boundary_reaches_both_frames() {
        let (mut mem, caller) = machine(USER_RW);
        let span = translate(&mut mem, &caller, 0x40_0FFE, 4, true).unwrap();
        assert_eq!(span.len(), 4);
        span.write(&mut mem, b"abcd").unwrap();
        assert_eq!(&mem.0[0x10_0FFE..0x10_1000], b"ab");
        assert_eq!(&mem.0[0x10_3000..0x10_3002], b"cd");
        let mut back = [0u8; 4];
        span.read(&mem, &mut back).unwrap();
        assert_eq!(&back, b"abcd");
    }

    #[test]
    fn a_user_caller_cannot_name_a_supervisor_page() {
        let (mut mem, caller) = machine([P | RW | US, P | RW, P | RW | US, P | RW | US]);
        let got = translate(&mut mem, &caller, 0x40_0800, 0x1000, false);
        let code = PfErrorCode::PRESENT | PfErrorCode::USER;
        assert_eq!(got, Err(Refusal::Fault(GuestFault::Page(PageFault { error_code: code, addr: 0x40_1000 }))));
        // The same buffer from the guest kernel is fine.
        let kernel = Rights { user: false, ..caller };
        assert!(translate(&mut mem, &kernel, 0x40_0800, 0x1000, false).is_ok());
    }

    #[test]
    fn a_read_only_page_refuses_a_write_with_the_fault_the_caller_would_take() {
        let (mut mem, caller) = machine([P | US; 4]);
        assert!(translate(&mut mem, &caller, 0x40_0000, 16, false).is_ok());
        let got = translate(&mut mem, &caller, 0x40_0000, 16, true);
        let code = PfErrorCode::PRESENT | PfErrorCode::WRITE | PfErrorCode::USER;
        assert_eq!(got, Err(Refusal::Fault(GuestFault::Page(PageFault { error_code: code, addr: 0x40_0000 }))));
    }

    #[test]
    fn an_unmapped_page_is_a_not_present_fault_at_its_first_byte() {
        let (mut mem, caller) = machine(USER_RW);
        let got = translate(&mut mem, &caller, 0x40_3F00, 0x200, false);
        let code = PfErrorCode::USER;
        assert_eq!(got, Err(Refusal::Fault(GuestFault::Page(PageFault { error_code: code, addr: 0x40_4000 }))));
    }

    #[test]
    fn a_non_canonical_address_is_a_general_protection_fault() {
        let (mut mem, caller) = machine(USER_RW);
        let got = translate(&mut mem, &caller, 0x8000_0000_0000, 8, false);
        assert_eq!(got, Err(Refusal::Fault(GuestFault::GeneralProtection)));
    }

    #[test]
    fn a_page_mapped_outside_ram_is_not_ram() {
        let (mut mem, caller) = machine(USER_RW);
        mem.write_u64(0x4000, 0xFEE0_0000 | P | RW | US).unwrap();
        assert_eq!(translate(&mut mem, &caller, 0x40_0000, 8, false), Err(Refusal::NotRam));
    }

    #[test]
    fn a_written_buffer_is_marked_dirty_and_a_read_one_only_accessed() {
        let (mut mem, caller) = machine(USER_RW);
        translate(&mut mem, &caller, 0x40_0000, 8, false).unwrap();
        translate(&mut mem, &caller, 0x40_1000, 8, true).unwrap();
        let (a, d) = (1 << 5, 1 << 6);
        assert_eq!(mem.read_u64(0x4000).unwrap() & (a | d), a);
        assert_eq!(mem.read_u64(0x4008).unwrap() & (a | d), a | d);
    }

    #[test]
    fn without_paging_the_linear_address_is_the_physical_one() {
        let mut mem = VecMemory::new(0x1_0000);
        let paging = PagingState { cr0: 1, cr3: 0, cr4: 0, efer: 0, phys_addr_bits: 40, gbpages: false };
        let rights = Rights { paging, user: false };
        let span = translate(&mut mem, &rights, 0x8000, 3, true).unwrap();
        span.write(&mut mem, b"xyz").unwrap();
        assert_eq!(&mem.0[0x8000..0x8003], b"xyz");
        assert_eq!(translate(&mut mem, &rights, 0xFFFF, 2, false), Err(Refusal::NotRam));
    }
}
