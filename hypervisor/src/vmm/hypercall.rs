//! The hypercall service: VMMCALL from guest tools (docs/hypercalls.md).
//!
//! RAX holds the call number, RBX, RCX, RDX and RSI the arguments; the
//! result, or a negative errno, comes back in RAX.
use super::vcpu::{Stop, VcpuLoop};
use crate::syscall::Reg;

/// The ABI version returned by [`VERSION`] and CPUID 0x4000_0001.
pub const ABI_VERSION: i64 = crate::syscall::HYPERCALL_VERSION as i64;

pub const VERSION: u64 = 0;
pub const PING: u64 = 1;

/// Negative errno values.
pub const ENOSYS: i64 = -38;

/// Performs the hypercall the guest's registers describe.
pub fn dispatch(v: &mut VcpuLoop<'_>) -> Result<i64, Stop> {
    let nr = crate::syscall::sys_reg_get(v.caller, v.vcpu, Reg::Rax)?;
    Ok(match nr {
        VERSION => ABI_VERSION,
        PING => 0,
        _ => ENOSYS,
    })
}
