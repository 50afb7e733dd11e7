//! Instruction fetch: the bytes at CS:RIP, read through the guest's tables.

use super::insn::{CpuMode, MAX_INSN_LEN};
use super::walk::{translate, AccessKind, PagingState, WalkError};
use crate::mem::GuestMemory;

const PAGE: u64 = 4096;

/// What [`fetch`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fetched {
    /// Bytes placed at the start of the buffer, 1 to 15.
    pub len: usize,
    /// Why fewer than 15 bytes were read, if so: a later page faulted or
    /// lies outside RAM. The instruction may end before that point; if the
    /// decoder reports `Truncated`, this is the fault the CPU would raise.
    pub stop: Option<WalkError>,
}

/// Reads up to 15 instruction bytes at `cs_base + rip` into `buf`.
///
/// Each 4 KiB page is translated on its own (as a fetch, at CPL 3 when
/// `user`), so an instruction that straddles two pages is read from two
/// frames. In 64-bit mode the CS base is ignored (it is 0 there); in other
/// modes the linear address wraps at 4 GiB. Segment limits are not checked.
///
/// Fails only if not even the first byte can be read: with the page fault
/// to inject, or with [`WalkError::BadGpa`] when RIP maps outside RAM.
pub fn fetch(
    mem: &impl GuestMemory,
    cpu: &PagingState,
    mode: CpuMode,
    cs_base: u64,
    rip: u64,
    user: bool,
    buf: &mut [u8; MAX_INSN_LEN],
) -> Result<Fetched, WalkError> {
    let linear = |i: usize| match mode {
        CpuMode::Bits64 => rip.wrapping_add(i as u64),
        _ => cs_base.wrapping_add(rip).wrapping_add(i as u64) & 0xFFFF_FFFF,
    };
    let mut len = 0;
    while len < MAX_INSN_LEN {
        let la = linear(len);
        let gpa = match translate(mem, cpu, la, AccessKind::fetch(user)) {
            Ok(gpa) => gpa,
            Err(e) => return stopped(len, e),
        };
        let in_page = PAGE - (la % PAGE);
        let want = (MAX_INSN_LEN - len).min(in_page as usize);
        let in_ram = mem.size().saturating_sub(gpa);
        let got = want.min(usize::try_from(in_ram).unwrap_or(usize::MAX));
        if got > 0 && mem.read(gpa, &mut buf[len..len + got]).is_err() {
            return stopped(len, WalkError::BadGpa { gpa });
        }
        len += got;
        if got < want {
            return stopped(len, WalkError::BadGpa { gpa: gpa + got as u64 });
        }
    }
    Ok(Fetched { len, stop: None })
}

/// The result when the fetch stops after `len` bytes because of `e`.
fn stopped(len: usize, e: WalkError) -> Result<Fetched, WalkError> {
    if len == 0 {
        Err(e)
    } else {
        Ok(Fetched { len, stop: Some(e) })
    }
}
