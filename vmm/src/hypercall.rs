//! The hypercall service: VMMCALL from guest tools. docs/hypercalls.md is
//! the ABI's reference; this file is its implementation.
//!
//! RAX holds the call number, RBX, RCX, RDX and RSI the arguments; the
//! result, or a negative errno, comes back in RAX. Pointers are linear
//! addresses, reached with the caller's own rights (`hcbuf`): a pointer the
//! caller could not use itself gets the fault it would have taken, and one
//! that leads outside RAM gets -EFAULT, never a fault in the host. In 16-
//! and 32-bit code only the low 32 bits of each register count.
use super::hcbuf::{self, GuestFault, Refusal, Rights, Span, MAX_BUF};
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
pub const MSG_MAX: usize = hvabi::MAX_MESSAGE;
const _: () = assert!(MSG_MAX <= MAX_BUF && hvabi::MAX_CONSOLE <= MAX_BUF && hvabi::MAX_NAME <= MAX_BUF);

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

/// How a hypercall ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// RAX gets the value and RIP moves past the VMMCALL.
    Return(i64),
    /// A buffer the caller could not have accessed itself: the guest takes
    /// this exception with RIP still on the VMMCALL, so the call runs again
    /// once the guest's kernel has handled it.
    Fault(GuestFault),
}

/// Why a call ends early.
enum Early {
    Reply(Reply),
    Stop(Stop),
}

impl From<Stop> for Early {
    fn from(s: Stop) -> Early {
        Early::Stop(s)
    }
}

impl From<SysError> for Early {
    fn from(e: SysError) -> Early {
        Early::Stop(Stop::Kernel(e))
    }
}

impl From<Refusal> for Early {
    fn from(r: Refusal) -> Early {
        Early::Reply(match r {
            Refusal::Fault(f) => Reply::Fault(f),
            Refusal::NotRam => Reply::Return(EFAULT),
        })
    }
}

/// Returns `errno` from the call.
fn fail(errno: i64) -> Early {
    Early::Reply(Reply::Return(errno))
}

/// Performs the hypercall the guest's registers describe.
pub fn dispatch<S: Sys>(v: &mut VcpuLoop<'_, '_, S>) -> Result<Reply, Stop> {
    match serve(v) {
        Ok(result) => Ok(Reply::Return(result)),
        Err(Early::Reply(r)) => Ok(r),
        Err(Early::Stop(s)) => Err(s),
    }
}

/// The call's result, or how it ends early.
fn serve<S: Sys>(v: &mut VcpuLoop<'_, '_, S>) -> Result<i64, Early> {
    let (sys, h) = (v.sys, v.vcpu);
    let wide = v.is_64bit()?;
    let arg = |r: Reg| -> Result<u64, Early> {
        let x = sys.reg(h, r)?;
        Ok(if wide { x } else { x & 0xFFFF_FFFF })
    };
    let nr = arg(Reg::Rax)?;
    let cpl = sys.reg(h, Reg::Cpl)?;
    if !hvabi::allowed(nr, cpl) {
        return Err(fail(EPERM));
    }
    let (a1, a2, a3) = (arg(Reg::Rbx)?, arg(Reg::Rcx)?, arg(Reg::Rdx)?);
    let rights = Rights { paging: v.paging()?, user: cpl == 3 };
    // A buffer of `len` bytes at `lin`; longer than `max`: -E2BIG.
    let buffer = |v: &mut VcpuLoop<'_, '_, S>, lin: u64, len: u64, max: usize, write: bool| -> Result<Span, Early> {
        if len > max as u64 {
            return Err(fail(E2BIG));
        }
        Ok(hcbuf::translate(&mut v.mem, &rights, lin, len as usize, write)?)
    };
    // Writes a reply of `data.len()` bytes into the caller's `len` bytes at `lin`.
    let reply = |v: &mut VcpuLoop<'_, '_, S>, lin: u64, len: u64, data: &[u8]| -> Result<i64, Early> {
        if len < data.len() as u64 {
            return Err(fail(E2BIG));
        }
        buffer(v, lin, data.len() as u64, MAX_BUF, true)?.write(&mut v.mem, data)?;
        Ok(data.len() as i64)
    };
    Ok(match nr {
        VERSION => ABI_VERSION,
        PING => 0,
        LOOKUP => {
            let span = buffer(v, a1, a2, hvabi::MAX_NAME, false)?;
            let mut name = [0u8; hvabi::MAX_NAME];
            let name = &mut name[..span.len()];
            span.read(&v.mem, name)?;
            hvabi::lookup(name).map_or(ENOENT, |n| n as i64)
        }
        INFO => {
            let VcpuInfo { index, vm_id, vcpus } = sys.vcpu_info(h)?;
            let mem = sys.vm_ram(v.vm)?;
            reply(v, a1, a2, &encode_info(vm_id, vcpus, mem, index, sys.tsc_hz(v.grants.clock)?))?
        }
        STATS => {
            let stats = encode_stats(&sys.stats(h)?, sys.tsc_hz(v.grants.clock)?, &sys.cpu_usage(v.grants.sched)?);
            // A buffer that ends at the records gets them without the CPU
            // section, as a caller written before it expects.
            let len = if a2 < STATS_SIZE as u64 { STATS_RECORDS_SIZE } else { STATS_SIZE };
            reply(v, a1, a2, &stats[..len])?
        }
        STATS_RESET => {
            sys.reset_stats(h)?;
            0
        }
        CONSOLE_WRITE => {
            let span = buffer(v, a1, a2, hvabi::MAX_CONSOLE, false)?;
            let mut text = [0u8; hvabi::MAX_CONSOLE];
            let text = &mut text[..span.len()];
            span.read(&v.mem, text)?;
            v.console_text(text);
            v.console_flush();
            text.len() as i64
        }
        CHAN_SEND => {
            let span = buffer(v, a2, a3, MSG_MAX, false)?;
            let mut msg = [0u8; MSG_MAX];
            let msg = &mut msg[..span.len()];
            span.read(&v.mem, msg)?;
            let peer = u32::try_from(a1).map_err(|_| fail(EINVAL))?;
            sys.chan_send(peer, msg).map_or_else(errno, |()| 0)
        }
        CHAN_RECV => {
            // The whole destination is translated before the message is
            // taken off the queue: a fault leaves it queued.
            let span = buffer(v, a2, a3.min(MSG_MAX as u64), MSG_MAX, true)?;
            let mut msg = [0u8; MSG_MAX];
            let peer = u32::try_from(a1).map_err(|_| fail(EINVAL))?;
            match sys.chan_recv(peer, &mut msg[..span.len()]) {
                Ok(n) => {
                    span.write(&mut v.mem, &msg[..n])?;
                    n as i64
                }
                Err(e) => errno(e),
            }
        }
        YIELD => {
            if sys.yield_now(v.grants.sched)? {
                v.now_ns = sys.now_ns(v.grants.clock)?;
            }
            0
        }
        POWEROFF => return Err(Early::Stop(Stop::PowerOff)),
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
