//! The network between VMs: the calls on a process's port of the kernel's
//! switch ([`super::switch`]).
//!
//! Each process is granted one port when it is created, and with it the MAC
//! address [`super::switch::mac_of`] gives the port's number. At boot VMs
//! are created in order and nothing else holds a port, so vmN has port N
//! and the MAC 52:54:00:12:34:0N. Frames move between the switch and guest
//! RAM through the VM's checked accessors (`gather`, `scatter`), so the
//! VMM hands the kernel guest-physical spans, never the bytes.
//!
//! Locks: each call takes the switch once and, inside it for a frame, the
//! VM's slot once (the order: switch, then a VM's slot; nothing takes them
//! the other way round).
use super::switch::Switch;
use super::vmobj::{gather, scatter, Caller};
use super::{SysError, SysResult};
use crate::proc::{Pid, MAX_PROCS};
use crate::sync::Lock;
use sysabi::net::{GuestSpan, NetHandle, NetPortInfo, MAX_FRAME, MAX_SPANS};
use sysabi::VmHandle;

/// One port per process.
pub const PORTS: usize = MAX_PROCS;
/// Frames a port's receive queue holds; one sender may hold half of them.
/// 64 frames of up to 1514 bytes: about 97 KiB per port, 1.5 MiB in all
/// (.bss).
pub const RX_DEPTH: usize = 64;

static SWITCH: Lock<Switch<PORTS, RX_DEPTH>> = Lock::new(Switch::new());

/// Opens a port for a new process.
pub(super) fn grant_port(pid: Pid) -> SysResult<NetHandle> {
    SWITCH.lock().open(pid).map(|n| NetHandle(n as u16))
}

/// Closes the ports of an ending process.
pub(super) fn revoke_ports(pid: Pid) {
    SWITCH.lock().close_all(pid);
}

/// The bytes `spans` hold in all: at most [`MAX_SPANS`] of them.
fn span_bytes(spans: &[GuestSpan]) -> SysResult<usize> {
    if spans.len() > MAX_SPANS {
        return Err(SysError::BadArgument);
    }
    Ok(spans.iter().map(|s| s.len as usize).sum())
}

/// The port's MAC address and counters.
pub fn sys_net_info(caller: Caller, port: NetHandle) -> SysResult<NetPortInfo> {
    SWITCH.lock().info(caller.pid(), usize::from(port.0))
}

/// Sends the frame that `spans` of `vm`'s RAM hold through the switch.
pub fn sys_net_send(caller: Caller, port: NetHandle, vm: VmHandle, spans: &[GuestSpan]) -> SysResult<()> {
    let mut reached = [None; PORTS];
    {
        let mut sw = SWITCH.lock();
        let port = usize::from(port.0);
        sw.check(caller.pid(), port)?;
        let len = span_bytes(spans)?;
        if len > MAX_FRAME {
            return Err(SysError::TooBig);
        }
        let mut frame = [0u8; MAX_FRAME];
        gather(caller, vm, spans, &mut frame[..len])?;
        let before = sw.queue_lengths();
        sw.send(caller.pid(), port, &frame[..len])?;
        for (slot, pid) in reached.iter_mut().zip(sw.reached_since(&before)) {
            *slot = Some(pid);
        }
    }
    // A receiver whose CPU halts (its guest waits in HLT) looks at its NIC
    // only when the CPU wakes: wake it now, not at its next timer.
    for pid in reached.into_iter().flatten() {
        crate::thread::kick_owner(pid.index() as u32);
    }
    Ok(())
}

/// Scatters the next frame for the port into `spans` of `vm`'s RAM: its
/// length, or `None` if none is waiting. A frame longer than the spans
/// (`TooBig`) or spans that are not RAM leave it queued.
pub fn sys_net_recv(caller: Caller, port: NetHandle, vm: VmHandle, spans: &[GuestSpan]) -> SysResult<Option<usize>> {
    let room = span_bytes(spans)?;
    SWITCH.lock().recv(caller.pid(), usize::from(port.0), |frame| {
        if frame.len() > room {
            return Err(SysError::TooBig);
        }
        scatter(caller, vm, spans, frame)
    })
}
