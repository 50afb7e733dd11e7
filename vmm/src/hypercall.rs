//! The hypercall service: VMMCALL from guest tools. docs/hypercalls.md is
//! the ABI's reference; this file is its implementation.
//!
//! RAX holds the call number, RBX, RCX, RDX and RSI the arguments; the
//! result, or a negative errno, comes back in RAX. Pointers are
//! guest-physical addresses and are checked against the VM's RAM: a bad one
//! gets -EFAULT, never a fault in the host. In 16- and 32-bit code only the
//! low 32 bits of each register count.
use super::vcpu::{Stop, VcpuLoop};
use sysabi::stats::BUCKETS;
use sysabi::{CpuUsage, ExitReason, ExitStats, Reg, Sys, SysError, VcpuInfo};

pub use hvabi::errno::*;
pub use hvabi::nr::*;
use hvabi::{info, stats};

/// The ABI version returned by VERSION and by CPUID 0x4000_0001.
pub const ABI_VERSION: i64 = hvabi::ABI_VERSION as i64;

/// The STATS reply for this hypervisor's exit reasons, with the CPU section.
pub const STATS_SIZE: usize = stats::len_with_cpu(ExitReason::COUNT);
/// The STATS reply without the CPU section: what a buffer too small for it
/// gets.
pub const STATS_RECORDS_SIZE: usize = stats::len(ExitReason::COUNT);
// A guest tool passes one page for the reply.
const _: () = assert!(STATS_SIZE <= 4096);
const _: () = assert!(stats::BUCKETS == BUCKETS);

/// The largest channel message.
pub const MSG_MAX: u64 = hvabi::MAX_MESSAGE as u64;

fn errno(e: SysError) -> i64 {
    match e {
        SysError::WouldBlock => EAGAIN,
        SysError::TooBig => E2BIG,
        _ => EINVAL,
    }
}

/// Encodes INFO's reply.
pub fn encode_info(vm_id: u32, vcpus: u32, mem: u64, vcpu_index: u32, tsc_hz: u64) -> [u8; info::LEN] {
    let mut b = [0u8; info::LEN];
    let mut put = |at: usize, bytes: &[u8]| b[at..at + bytes.len()].copy_from_slice(bytes);
    put(info::MAGIC_AT, &info::MAGIC.to_le_bytes());
    put(info::ABI_VERSION_AT, &hvabi::ABI_VERSION.to_le_bytes());
    put(info::VM_ID_AT, &vm_id.to_le_bytes());
    put(info::VCPU_COUNT_AT, &vcpus.to_le_bytes());
    put(info::MEM_BYTES_AT, &mem.to_le_bytes());
    put(info::VCPU_INDEX_AT, &vcpu_index.to_le_bytes());
    put(info::TSC_HZ_AT, &tsc_hz.to_le_bytes());
    put(info::NAME_AT, b"Certivisor");
    b
}

/// Encodes STATS's reply: the exit statistics, then `cpu`, the VM's use of
/// the CPU.
pub fn encode_stats(stats: &ExitStats, tsc_hz: u64, cpu: &CpuUsage) -> [u8; STATS_SIZE] {
    let mut b = [0u8; STATS_SIZE];
    b[0..4].copy_from_slice(&stats::MAGIC.to_le_bytes());
    b[4..8].copy_from_slice(&stats::VERSION.to_le_bytes());
    b[8..12].copy_from_slice(&(ExitReason::COUNT as u32).to_le_bytes());
    b[12..16].copy_from_slice(&(BUCKETS as u32).to_le_bytes());
    b[16..24].copy_from_slice(&tsc_hz.to_le_bytes());
    for (i, reason) in ExitReason::ALL.iter().enumerate() {
        let r = stats.get(*reason);
        let at = stats::HEADER_LEN + i * stats::RECORD_LEN;
        let name = reason.name().as_bytes();
        b[at..at + name.len()].copy_from_slice(name);
        for (j, v) in [r.count, r.total, r.min, r.max].iter().chain(r.histogram.iter()).enumerate() {
            let o = at + stats::NAME_LEN + j * 8;
            b[o..o + 8].copy_from_slice(&v.to_le_bytes());
        }
    }
    let c = &mut b[STATS_RECORDS_SIZE..];
    c[stats::cpu::MAGIC_AT..][..4].copy_from_slice(&stats::cpu::MAGIC.to_le_bytes());
    c[stats::cpu::GUEST_NS_AT..][..8].copy_from_slice(&cpu.guest_ns.to_le_bytes());
    c[stats::cpu::VMM_NS_AT..][..8].copy_from_slice(&cpu.vmm_ns.to_le_bytes());
    c[stats::cpu::ELAPSED_NS_AT..][..8].copy_from_slice(&cpu.elapsed_ns.to_le_bytes());
    b
}

/// Performs the hypercall the guest's registers describe and returns RAX.
pub fn dispatch<S: Sys>(v: &mut VcpuLoop<'_, S>) -> Result<i64, Stop> {
    let (sys, h) = (v.sys, v.vcpu);
    let wide = v.is_64bit()?;
    let arg = |r: Reg| -> Result<u64, Stop> {
        let x = sys.reg(h, r)?;
        Ok(if wide { x } else { x & 0xFFFF_FFFF })
    };
    let nr = arg(Reg::Rax)?;
    if !hvabi::allowed(nr, sys.reg(h, Reg::Cpl)?) {
        return Ok(EPERM);
    }
    let (a1, a2, a3) = (arg(Reg::Rbx)?, arg(Reg::Rcx)?, arg(Reg::Rdx)?);
    let write_back = |gpa: u64, len: u64, data: &[u8]| -> i64 {
        if (len as usize) < data.len() {
            return E2BIG;
        }
        match sys.guest_write(v.vm, gpa, data) {
            Ok(()) => data.len() as i64,
            Err(_) => EFAULT,
        }
    };
    Ok(match nr {
        VERSION => ABI_VERSION,
        PING => 0,
        LOOKUP => {
            if a2 > hvabi::MAX_NAME as u64 {
                return Ok(E2BIG);
            }
            let mut name = [0u8; hvabi::MAX_NAME];
            let name = &mut name[..a2 as usize];
            if sys.guest_read(v.vm, a1, name).is_err() {
                return Ok(EFAULT);
            }
            hvabi::lookup(name).map_or(ENOENT, |n| n as i64)
        }
        INFO => {
            let VcpuInfo { index, vm_id, vcpus } = sys.vcpu_info(h)?;
            let mem = sys.vm_ram(v.vm)?;
            write_back(a1, a2, &encode_info(vm_id, vcpus, mem, index, sys.tsc_hz(v.grants.clock)?))
        }
        STATS => {
            let reply = encode_stats(&sys.stats(h)?, sys.tsc_hz(v.grants.clock)?, &sys.cpu_usage(v.grants.sched)?);
            // A buffer that ends at the records (ABI version 1's reply)
            // gets them without the CPU section.
            let len = if a2 < STATS_SIZE as u64 { STATS_RECORDS_SIZE } else { STATS_SIZE };
            write_back(a1, a2, &reply[..len])
        }
        STATS_RESET => {
            sys.reset_stats(h)?;
            0
        }
        CONSOLE_WRITE => {
            if a2 > hvabi::MAX_CONSOLE as u64 {
                return Ok(E2BIG);
            }
            let mut buf = [0u8; 256];
            let mut done = 0;
            while done < a2 {
                let n = (a2 - done).min(buf.len() as u64) as usize;
                if sys.guest_read(v.vm, a1.wrapping_add(done), &mut buf[..n]).is_err() {
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
            if sys.guest_read(v.vm, a2, msg).is_err() {
                return Ok(EFAULT);
            }
            let Ok(peer) = u32::try_from(a1) else { return Ok(EINVAL) };
            match sys.chan_send(peer, msg) {
                Ok(()) => 0,
                Err(e) => errno(e),
            }
        }
        CHAN_RECV => {
            let mut msg = [0u8; MSG_MAX as usize];
            let want = (a3.min(MSG_MAX)) as usize;
            // Check the destination before taking the message off the queue.
            if sys.guest_read(v.vm, a2, &mut msg[..want]).is_err() {
                return Ok(EFAULT);
            }
            let Ok(peer) = u32::try_from(a1) else { return Ok(EINVAL) };
            match sys.chan_recv(peer, &mut msg[..want]) {
                Ok(n) => write_back(a2, a3, &msg[..n]),
                Err(e) => errno(e),
            }
        }
        YIELD => {
            if sys.yield_now(v.grants.sched)? {
                v.now_ns = sys.now_ns(v.grants.clock)?;
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
    fn stats_reply_fits_a_page_and_names_reasons() {
        let mut s = ExitStats::new();
        s.count(ExitReason::Vmmcall);
        s.record_time(ExitReason::Vmmcall, 77);
        let cpu = CpuUsage { guest_ns: 7, vmm_ns: 8, elapsed_ns: 30 };
        let b = encode_stats(&s, 1_000_000_000, &cpu);
        assert_eq!(&b[0..4], &stats::MAGIC.to_le_bytes());
        let at = stats::HEADER_LEN + ExitReason::Vmmcall as usize * stats::RECORD_LEN;
        assert_eq!(&b[at..at + 7], b"vmmcall");
        assert_eq!(u64::from_le_bytes(b[at + 16..at + 24].try_into().unwrap()), 1);
        assert_eq!(u64::from_le_bytes(b[at + 24..at + 32].try_into().unwrap()), 77);
        let c = &b[STATS_RECORDS_SIZE..];
        assert_eq!(&c[0..4], b"CVCP", "the CPU section after the records");
        let seen = [8, 16, 24].map(|at| u64::from_le_bytes(c[at..at + 8].try_into().unwrap()));
        assert_eq!(seen, [7, 8, 30], "guest_ns, vmm_ns, elapsed_ns");
    }

    #[test]
    fn info_reply_layout() {
        let b = encode_info(2, 1, 256 << 20, 0, 1_000_000_000);
        assert_eq!(u32::from_le_bytes(b[0..4].try_into().unwrap()), info::MAGIC);
        assert_eq!(u32::from_le_bytes(b[8..12].try_into().unwrap()), 2);
        assert_eq!(u64::from_le_bytes(b[16..24].try_into().unwrap()), 256 << 20);
        assert_eq!(&b[40..50], b"Certivisor");
    }
}
