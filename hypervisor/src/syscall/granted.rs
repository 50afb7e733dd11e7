//! The objects a process is granted when it is created, rather than
//! creating them by calls: a console, a clock, a share of the CPU and a
//! port of the switch between VMs (`net.rs`). Each
//! call on them names the object by its handle, and the kernel checks that
//! the calling process holds it.
use super::account;
use super::console;
use super::vmobj::{Caller, CPUS};
use super::{SysError, SysResult};
use crate::proc::{Pid, MAX_PROCS};
use core::sync::atomic::{AtomicU32, Ordering};
use sysabi::{ClockHandle, ConsoleHandle, CpuUsage, Grants, SchedHandle};

/// Who holds each object of one kind: the owner's pid + 1, 0 when free.
/// Read without a lock on every call (a clock is read at every VM exit);
/// written only when a process is created or ends.
struct GrantTable {
    owners: [AtomicU32; MAX_PROCS],
}

impl GrantTable {
    const fn new() -> Self {
        GrantTable { owners: [const { AtomicU32::new(0) }; MAX_PROCS] }
    }

    /// A free object of this kind for `pid`.
    fn grant(&self, pid: Pid) -> SysResult<u16> {
        let tag = pid.index() as u32 + 1;
        let slot = self
            .owners
            .iter()
            .position(|o| o.compare_exchange(0, tag, Ordering::AcqRel, Ordering::Relaxed).is_ok())
            .ok_or(SysError::NoSlot)?;
        Ok(slot as u16)
    }

    /// The caller holds object `h`.
    fn check(&self, caller: Caller, h: u16) -> SysResult<()> {
        match self.owners.get(usize::from(h)).map(|o| o.load(Ordering::Acquire)) {
            None | Some(0) => Err(SysError::NoSuchObject),
            Some(tag) if tag != caller.pid().index() as u32 + 1 => Err(SysError::NotOwner),
            Some(_) => Ok(()),
        }
    }

    /// Frees every object `pid` holds, and calls `freed` with each.
    fn revoke_all(&self, pid: Pid, mut freed: impl FnMut(usize)) {
        let tag = pid.index() as u32 + 1;
        for (slot, o) in self.owners.iter().enumerate() {
            if o.compare_exchange(tag, 0, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                freed(slot);
            }
        }
    }
}

static CONSOLES: GrantTable = GrantTable::new();
static CLOCKS: GrantTable = GrantTable::new();
static SCHEDS: GrantTable = GrantTable::new();

/// Grants a new process its console, clock, share of the CPU and switch
/// port. The
/// console shows the process's output as `name`'s (`console.rs`). On
/// failure nothing stays granted.
pub fn grant_process(pid: Pid, name: &str) -> SysResult<Grants> {
    let grants = (|| {
        Ok(Grants {
            console: ConsoleHandle(CONSOLES.grant(pid)?),
            clock: ClockHandle(CLOCKS.grant(pid)?),
            sched: SchedHandle(SCHEDS.grant(pid)?),
            net: super::net::grant_port(pid)?,
        })
    })();
    match grants {
        Ok(g) => {
            console::attach(usize::from(g.console.0), name);
            account::open_process(pid);
        }
        Err(_) => revoke_process(pid),
    }
    grants
}

/// Takes back everything [`grant_process`] gave `pid`.
pub fn revoke_process(pid: Pid) {
    CONSOLES.revoke_all(pid, console::detach);
    for table in [&CLOCKS, &SCHEDS] {
        table.revoke_all(pid, |_| ());
    }
    super::net::revoke_ports(pid);
}

/// Nanoseconds since boot, from the TSC.
pub fn sys_now_ns(caller: Caller, clock: ClockHandle) -> SysResult<u64> {
    CLOCKS.check(caller, clock.0)?;
    Ok(crate::arch::lapic::now_ns())
}

/// The TSC as the guest reads it (no offset is applied).
pub fn sys_guest_tsc(caller: Caller, clock: ClockHandle) -> SysResult<u64> {
    CLOCKS.check(caller, clock.0)?;
    Ok(crate::arch::cpu::rdtsc())
}

/// TSC ticks per second.
pub fn sys_tsc_hz(caller: Caller, clock: ClockHandle) -> SysResult<u64> {
    CLOCKS.check(caller, clock.0)?;
    Ok(crate::arch::lapic::tsc_hz())
}

/// The caller holds the CPU share `sched`.
pub(super) fn check_sched(caller: Caller, sched: SchedHandle) -> SysResult<()> {
    SCHEDS.check(caller, sched.0)
}

/// Lets another ready thread run. False if there was none.
pub fn sys_yield(caller: Caller, sched: SchedHandle) -> SysResult<bool> {
    SCHEDS.check(caller, sched.0)?;
    // Giving up the CPU ends the caller's slice (`CpuTime::end_slice`).
    if let Some(c) = CPUS[crate::arch::cpu::current()].lock().as_mut() {
        c.time.end_slice();
    }
    Ok(account::off_cpu(caller.pid(), crate::thread::yield_to_others).unwrap_or(false))
}

/// Idles until `deadline_ns` or the next host interrupt: other ready
/// threads run first; if none is ready the CPU halts until then. Neither
/// is charged to the caller.
pub fn sys_idle_until(caller: Caller, sched: SchedHandle, deadline_ns: u64) -> SysResult<()> {
    if !sys_yield(caller, sched)? {
        account::off_cpu(caller.pid(), || wait_until(deadline_ns));
    }
    Ok(())
}

/// The caller's use of the CPU since its process was created.
pub fn sys_cpu_usage(caller: Caller, sched: SchedHandle) -> SysResult<CpuUsage> {
    SCHEDS.check(caller, sched.0)?;
    Ok(account::usage(caller.pid()))
}

/// Halts this CPU until `deadline_ns` or the next host interrupt, whichever
/// comes first; returns at once if the deadline passed.
pub(super) fn wait_until(deadline_ns: u64) {
    let now = crate::arch::lapic::now_ns();
    if deadline_ns <= now {
        return;
    }
    let cpu = crate::arch::cpu::current();
    let fired = crate::arch::lapic::timer_interrupts(cpu);
    let arm = CPUS[cpu].lock().as_mut().and_then(|c| {
        c.time.timer_interrupts(fired);
        c.time.arm(deadline_ns, now)
    });
    if let Some(at) = arm {
        crate::arch::lapic::arm_timer_at_ns(at);
    }
    crate::arch::cpu::wait_for_interrupt();
}

/// Writes bytes to the hypervisor's console (the host serial port), as
/// lines prefixed with the caller's name and without escape sequences.
pub fn sys_console_write(caller: Caller, console: ConsoleHandle, bytes: &[u8]) -> SysResult<()> {
    CONSOLES.check(caller, console.0)?;
    console::write(usize::from(console.0), bytes);
    Ok(())
}

/// A byte typed on the hypervisor's console for the caller, if one is
/// waiting: typed bytes go to the console with the input focus only.
pub fn sys_console_read(caller: Caller, console: ConsoleHandle) -> SysResult<Option<u8>> {
    CONSOLES.check(caller, console.0)?;
    Ok(console::read(usize::from(console.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_granted_object_answers_its_owner_only() {
        let t = GrantTable::new();
        let (a, b) = (Pid::from_index(3), Pid::from_index(4));
        let h = t.grant(a).unwrap();
        assert_eq!(t.check(Caller::of(a), h), Ok(()));
        assert_eq!(t.check(Caller::of(b), h), Err(SysError::NotOwner));
        assert_eq!(t.check(Caller::of(a), h + 1), Err(SysError::NoSuchObject), "a handle never granted");
        assert_eq!(t.check(Caller::of(a), MAX_PROCS as u16), Err(SysError::NoSuchObject), "out of range");
    }

    #[test]
    fn revoked_handles_are_stale_and_their_slots_reused() {
        let t = GrantTable::new();
        let a = Pid::from_index(1);
        let h = t.grant(a).unwrap();
        t.revoke_all(a, |_| ());
        assert_eq!(t.check(Caller::of(a), h), Err(SysError::NoSuchObject));
        let b = Pid::from_index(2);
        assert_eq!(t.grant(b), Ok(h), "the freed slot is reused");
        assert_eq!(t.check(Caller::of(a), h), Err(SysError::NotOwner), "the old holder's handle now names another's");
    }

    #[test]
    fn a_full_table_refuses_more_grants() {
        let t = GrantTable::new();
        for i in 0..MAX_PROCS {
            t.grant(Pid::from_index(i)).unwrap();
        }
        assert_eq!(t.grant(Pid::from_index(0)), Err(SysError::NoSlot));
    }
}
