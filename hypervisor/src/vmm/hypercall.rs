//! The hypercall service: VMMCALL from guest tools. docs/hypercalls.md is
//! the ABI's reference; this file is its implementation.
//!
//! RAX holds the call number, RBX, RCX, RDX and RSI the arguments; the
//! result, or a negative errno, comes back in RAX. Pointers are
//! guest-physical addresses and are checked against the VM's RAM: a bad one
//! gets -EFAULT, never a fault in the host. In 16- and 32-bit code only the
//! low 32 bits of each register count.
use super::vcpu::{Stop, VcpuLoop};
use crate::syscall::{self, Reg};
use crate::vm::stats::BUCKETS;
use crate::vm::ExitReason;

/// The ABI version returned by VERSION and by CPUID 0x4000_0001.
pub const ABI_VERSION: i64 = syscall::HYPERCALL_VERSION as i64;

pub const EPERM: i64 = -1;
pub const ENOENT: i64 = -2;
pub const E2BIG: i64 = -7;
pub const EAGAIN: i64 = -11;
pub const EFAULT: i64 = -14;
pub const EINVAL: i64 = -22;
pub const ENOSYS: i64 = -38;

/// Who may make a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    /// Guest user mode too (CPL 3).
    Any,
    /// Guest kernel mode only (CPL 0).
    Kernel,
}

/// The calls, by number: (number, name, privilege).
pub const CALLS: [(u64, &str, Privilege); 11] = [
    (0, "version", Privilege::Any),
    (1, "ping", Privilege::Any),
    (2, "lookup", Privilege::Any),
    (3, "info", Privilege::Any),
    (4, "stats", Privilege::Any),
    (5, "stats_reset", Privilege::Kernel),
    (6, "console_write", Privilege::Any),
    (7, "chan_send", Privilege::Any),
    (8, "chan_recv", Privilege::Any),
    (9, "yield", Privilege::Any),
    (10, "poweroff", Privilege::Kernel),
];

pub const VERSION: u64 = 0;
pub const PING: u64 = 1;
pub const LOOKUP: u64 = 2;
pub const INFO: u64 = 3;
pub const STATS: u64 = 4;
pub const STATS_RESET: u64 = 5;
pub const CONSOLE_WRITE: u64 = 6;
pub const CHAN_SEND: u64 = 7;
pub const CHAN_RECV: u64 = 8;
pub const YIELD: u64 = 9;
pub const POWEROFF: u64 = 10;

pub const INFO_MAGIC: u32 = 0x4E49_5643;
pub const INFO_SIZE: usize = 64;
pub const STATS_MAGIC: u32 = 0x5354_5643;
const STATS_HEADER: usize = 24;
const STATS_RECORD: usize = 16 + 4 * 8 + 8 * BUCKETS;
pub const STATS_SIZE: usize = STATS_HEADER + ExitReason::COUNT * STATS_RECORD;
// A guest tool passes one page for the reply.
const _: () = assert!(STATS_SIZE <= 4096);
pub const CONSOLE_MAX: u64 = 4096;
pub const NAME_MAX: u64 = 32;

/// The largest channel message.
pub const MSG_MAX: u64 = crate::proc::MSG_SIZE as u64;

fn errno(e: syscall::SysError) -> i64 {
    match e {
        syscall::SysError::WouldBlock => EAGAIN,
        syscall::SysError::TooBig => E2BIG,
        _ => EINVAL,
    }
}

/// The call number for `name`.
pub fn lookup(name: &[u8]) -> Option<u64> {
    CALLS.iter().find(|(_, n, _)| n.as_bytes() == name).map(|(nr, _, _)| *nr)
}

/// Whether code at `cpl` may make call `nr` (unknown calls are ENOSYS,
/// whatever the CPL).
pub fn allowed(nr: u64, cpl: u64) -> bool {
    CALLS.iter().find(|(n, _, _)| *n == nr).is_none_or(|(_, _, p)| *p == Privilege::Any || cpl == 0)
}

/// Encodes INFO's reply.
pub fn encode_info(vm_id: u32, vcpus: u32, mem: u64, vcpu_index: u32, tsc_hz: u64) -> [u8; INFO_SIZE] {
    let mut b = [0u8; INFO_SIZE];
    b[0..4].copy_from_slice(&INFO_MAGIC.to_le_bytes());
    b[4..8].copy_from_slice(&(ABI_VERSION as u32).to_le_bytes());
    b[8..12].copy_from_slice(&vm_id.to_le_bytes());
    b[12..16].copy_from_slice(&vcpus.to_le_bytes());
    b[16..24].copy_from_slice(&mem.to_le_bytes());
    b[24..28].copy_from_slice(&vcpu_index.to_le_bytes());
    b[32..40].copy_from_slice(&tsc_hz.to_le_bytes());
    b[40..50].copy_from_slice(b"Certivisor");
    b
}

/// Encodes STATS's reply.
pub fn encode_stats(stats: &crate::vm::stats::ExitStats, tsc_hz: u64) -> [u8; STATS_SIZE] {
    let mut b = [0u8; STATS_SIZE];
    b[0..4].copy_from_slice(&STATS_MAGIC.to_le_bytes());
    b[4..8].copy_from_slice(&1u32.to_le_bytes());
    b[8..12].copy_from_slice(&(ExitReason::COUNT as u32).to_le_bytes());
    b[12..16].copy_from_slice(&(BUCKETS as u32).to_le_bytes());
    b[16..24].copy_from_slice(&tsc_hz.to_le_bytes());
    for (i, reason) in ExitReason::ALL.iter().enumerate() {
        let r = stats.get(*reason);
        let at = STATS_HEADER + i * STATS_RECORD;
        let name = reason.name().as_bytes();
        b[at..at + name.len()].copy_from_slice(name);
        for (j, v) in [r.count, r.total, r.min, r.max].iter().chain(r.histogram.iter()).enumerate() {
            let o = at + 16 + j * 8;
            b[o..o + 8].copy_from_slice(&v.to_le_bytes());
        }
    }
    b
}

/// Performs the hypercall the guest's registers describe and returns RAX.
pub fn dispatch(v: &mut VcpuLoop<'_>) -> Result<i64, Stop> {
    let (c, h) = (v.caller, v.vcpu);
    let wide = v.is_64bit()?;
    let arg = |r: Reg| -> Result<u64, Stop> {
        let x = syscall::sys_reg_get(c, h, r)?;
        Ok(if wide { x } else { x & 0xFFFF_FFFF })
    };
    let nr = arg(Reg::Rax)?;
    if !allowed(nr, syscall::sys_reg_get(c, h, Reg::Cpl)?) {
        return Ok(EPERM);
    }
    let (a1, a2, a3) = (arg(Reg::Rbx)?, arg(Reg::Rcx)?, arg(Reg::Rdx)?);
    let write_back = |gpa: u64, len: u64, data: &[u8]| -> i64 {
        if (len as usize) < data.len() {
            return E2BIG;
        }
        match syscall::sys_guest_write(c, v.vm, gpa, data) {
            Ok(()) => data.len() as i64,
            Err(_) => EFAULT,
        }
    };
    Ok(match nr {
        VERSION => ABI_VERSION,
        PING => 0,
        LOOKUP => {
            if a2 > NAME_MAX {
                return Ok(E2BIG);
            }
            let mut name = [0u8; NAME_MAX as usize];
            let name = &mut name[..a2 as usize];
            if syscall::sys_guest_read(c, v.vm, a1, name).is_err() {
                return Ok(EFAULT);
            }
            lookup(name).map_or(ENOENT, |n| n as i64)
        }
        INFO => {
            let (index, vm_id, vcpus) = syscall::sys_vcpu_info(c, h)?;
            let mem = syscall::sys_vm_ram(c, v.vm)?;
            write_back(a1, a2, &encode_info(vm_id, vcpus, mem, index, syscall::sys_tsc_hz()))
        }
        STATS => {
            let reply = syscall::sys_with_stats(c, h, |s| encode_stats(s, syscall::sys_tsc_hz()))?;
            write_back(a1, a2, &reply)
        }
        STATS_RESET => {
            syscall::sys_reset_stats(c, h)?;
            0
        }
        CONSOLE_WRITE => {
            if a2 > CONSOLE_MAX {
                return Ok(E2BIG);
            }
            let mut buf = [0u8; 256];
            let mut done = 0;
            while done < a2 {
                let n = (a2 - done).min(buf.len() as u64) as usize;
                if syscall::sys_guest_read(c, v.vm, a1.wrapping_add(done), &mut buf[..n]).is_err() {
                    return Ok(EFAULT);
                }
                v.console_text(&buf[..n]);
                done += n as u64;
            }
            v.console_flush();
            a2 as i64
        }
        CHAN_SEND => {
            if a3 > MSG_MAX {
                return Ok(E2BIG);
            }
            let mut msg = [0u8; MSG_MAX as usize];
            let msg = &mut msg[..a3 as usize];
            if syscall::sys_guest_read(c, v.vm, a2, msg).is_err() {
                return Ok(EFAULT);
            }
            let Ok(peer) = u32::try_from(a1) else { return Ok(EINVAL) };
            match syscall::sys_chan_send(c, peer, msg) {
                Ok(()) => 0,
                Err(e) => errno(e),
            }
        }
        CHAN_RECV => {
            let mut msg = [0u8; MSG_MAX as usize];
            let want = (a3.min(MSG_MAX)) as usize;
            // Check the destination before taking the message off the queue.
            if syscall::sys_guest_read(c, v.vm, a2, &mut msg[..want]).is_err() {
                return Ok(EFAULT);
            }
            let Ok(peer) = u32::try_from(a1) else { return Ok(EINVAL) };
            match syscall::sys_chan_recv(c, peer, &mut msg[..want]) {
                Ok(n) => write_back(a2, a3, &msg[..n]),
                Err(e) => errno(e),
            }
        }
        YIELD => {
            if syscall::sys_yield() {
                // Another thread ran and may have re-armed the host timer.
                v.slice_end_ns = 0;
                v.now_ns = syscall::sys_now_ns();
            }
            0
        }
        POWEROFF => return Err(Stop::PowerOff),
        _ => ENOSYS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_has_a_unique_number_and_name() {
        for (i, (nr, name, _)) in CALLS.iter().enumerate() {
            assert_eq!(*nr, i as u64);
            assert_eq!(lookup(name.as_bytes()), Some(*nr));
        }
        assert_eq!(lookup(b"nonesuch"), None);
    }

    #[test]
    fn kernel_only_calls_are_refused_from_user_mode() {
        assert!(!allowed(STATS_RESET, 3));
        assert!(!allowed(POWEROFF, 3));
        assert!(allowed(STATS_RESET, 0));
        assert!(allowed(PING, 3));
        assert!(allowed(12345, 3), "unknown calls are ENOSYS, not EPERM");
    }

    #[test]
    fn stats_reply_fits_a_page_and_names_reasons() {
        let mut s = crate::vm::stats::ExitStats::new();
        s.count(ExitReason::Vmmcall);
        s.record_time(ExitReason::Vmmcall, 77);
        let b = encode_stats(&s, 1_000_000_000);
        assert_eq!(&b[0..4], &STATS_MAGIC.to_le_bytes());
        let at = STATS_HEADER + ExitReason::Vmmcall as usize * STATS_RECORD;
        assert_eq!(&b[at..at + 7], b"vmmcall");
        assert_eq!(u64::from_le_bytes(b[at + 16..at + 24].try_into().unwrap()), 1);
        assert_eq!(u64::from_le_bytes(b[at + 24..at + 32].try_into().unwrap()), 77);
    }

    #[test]
    fn info_reply_layout() {
        let b = encode_info(2, 1, 256 << 20, 0, 1_000_000_000);
        assert_eq!(u32::from_le_bytes(b[0..4].try_into().unwrap()), INFO_MAGIC);
        assert_eq!(u32::from_le_bytes(b[8..12].try_into().unwrap()), 2);
        assert_eq!(u64::from_le_bytes(b[16..24].try_into().unwrap()), 256 << 20);
        assert_eq!(&b[40..50], b"Certivisor");
    }
}
