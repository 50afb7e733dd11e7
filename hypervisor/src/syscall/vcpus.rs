//! The calls a VM with several vCPUs needs besides the kick
//! (`kick.rs`): a thread per vCPU ([`sys_fork_join`]) and a halt that a
//! kick ends ([`sys_vcpu_halt`]).
use super::granted::{check_sched, sys_yield, wait_until};
use super::vmobj::{Caller, VcpuHandle};
use super::{account, kick, SysError, SysResult};
use crate::arch::lend;
use crate::sync::Lock;
use crate::thread::{self, Chan, CpuId, Placement};
use arrayvec::ArrayVec;
use sysabi::{SchedHandle, ThreadCpu};

/// The condition lock of every fork_join's gate and count-off: held while
/// a thread checks either and begins to sleep, and while one changes
/// either (before the wakeup), so no wakeup is lost.
static JOIN: Lock<()> = Lock::new(());

fn join_wait(chan: u64, still: &dyn Fn() -> bool) {
    let g = JOIN.lock();
    if still() {
        // On a CPU with nothing else to run (no idle thread yet), sleep is
        // refused and the caller's loop looks again.
        let _ = thread::sleep(Chan(chan), g);
    }
}

fn join_wake(chan: u64, update: &dyn Fn()) {
    {
        let _g = JOIN.lock();
        update();
    }
    thread::wakeup(Chan(chan));
}

/// Runs `body(0)` on the calling thread and `body(i)` on a new thread of
/// the caller's process for each `extra[i - 1]`, placed as it says, all at
/// once; returns when every body has returned (the new threads end then).
/// The caller sleeps while it waits.
///
/// Errors, with no body run: `BadArgument` for a CPU that is not running;
/// `NoSlot` for more threads than a call or the thread pool has room for.
pub fn sys_fork_join(
    caller: Caller,
    sched: SchedHandle,
    extra: &[ThreadCpu],
    body: &(dyn Fn(usize) + Sync),
) -> SysResult<()> {
    check_sched(caller, sched)?;
    if extra.len() > lend::MAX_EXTRA {
        return Err(SysError::NoSlot);
    }
    let online = thread::global().scheduler().online();
    let placements = extra
        .iter()
        .map(|c| match *c {
            ThreadCpu::LeastLoaded => Ok(Placement::LeastLoaded),
            ThreadCpu::Cpu(n) if (n as usize) < thread::MAX_CPUS && online & (1 << n) != 0 => {
                Ok(Placement::Cpu(CpuId(n as usize)))
            }
            ThreadCpu::Cpu(_) => Err(SysError::BadArgument),
        })
        .collect::<SysResult<ArrayVec<Placement, { lend::MAX_EXTRA }>>>()?;
    let spawn = |i: usize, entry: fn(usize), arg: usize| {
        let placement = placements.get(i - 1).copied().ok_or(SysError::BadArgument)?;
        crate::proc::spawn_on(caller.pid(), entry, arg, placement).map(drop).map_err(|_| SysError::NoSlot)
    };
    lend::fork_join(body, extra.len(), spawn, join_wait, join_wake, SysError::NoSlot)
}

/// A halted vCPU waits: as [`sys_idle_until`](super::sys_idle_until), but
/// it returns at once if `vcpu` has a kick, and a kick that comes while it
/// halts ends the halt (the kick IPI). Either way the kick is taken.
pub fn sys_vcpu_halt(caller: Caller, sched: SchedHandle, vcpu: VcpuHandle, deadline_ns: u64) -> SysResult<()> {
    check_sched(caller, sched)?;
    let kick = kick::cell_on(caller, vcpu, crate::arch::cpu::current())?;
    if kick.take() || sys_yield(caller, sched)? {
        return Ok(());
    }
    // Interrupts stay disabled from this look to the `sti; hlt`, so a kick
    // IPI sent after it ends the HLT.
    if kick.take_or_arrive(crate::arch::cpu::current()) {
        return Ok(());
    }
    account::off_cpu(caller.pid(), || wait_until(deadline_ns));
    kick.leave();
    kick.take();
    Ok(())
}
