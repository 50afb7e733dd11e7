//! A vCPU's kick: "look at your events" from another thread
//! (`Sys::vcpu_kick`), remembered until the vCPU's thread takes it in
//! `sys_run` (before each entry into the guest) or in `sys_vcpu_halt`.
//!
//! The protocol: one atomic word per vCPU holds both the pending kick (bit
//! 0) and where the vCPU's thread runs its guest or halts (the CPU + 1, in
//! the bits above; 0: it does neither). Every change is one read-modify-
//! write of that word, so all of them fall in one total order:
//! - the kicker sets the pending bit and gets the word as it was; if it
//!   names a CPU other than the kicker's own, it sends that CPU the kick
//!   IPI;
//! - the vCPU's thread, before each VMRUN or HLT, either takes a pending
//!   kick or (in the same step) records its CPU; only in the second case
//!   does it go on into the guest or the HLT, with interrupts disabled
//!   from that step on (IF=0 in the kernel, GIF=0 in the world switch).
//!
//! So a kick that comes before the step is taken by it, and one that comes
//! after it finds the CPU and sends the IPI, which stays pending until the
//! VMRUN (which then exits at once, #VMEXIT(INTR)) or ends the HLT. A
//! kicker on the thread's own CPU needs no IPI: the thread is not in its
//! guest or halted while another runs there. `kick/loom_tests.rs`
//! model-checks that no kick is lost (and that the two-step order, look
//! then record, loses one).
use super::vmobj::{Caller, VcpuHandle, VmHandle, MAX_VCPUS};
use super::{SysError, SysResult};
use crate::sync::{Atomics, CoreAtomics};
use core::sync::atomic::{
    AtomicU32,
    Ordering::{Relaxed, SeqCst},
};

const PENDING: u32 = 1;
const AT_SHIFT: u32 = 1;

/// One vCPU's kick state.
pub struct KickCell<A: Atomics = CoreAtomics> {
    /// [`PENDING`] | (CPU + 1) << [`AT_SHIFT`].
    word: A::U32,
}

impl KickCell<CoreAtomics> {
    pub const fn new() -> Self {
        KickCell { word: core::sync::atomic::AtomicU32::new(0) }
    }
}

impl<A: Atomics> KickCell<A> {
    /// A cell on the atomics `A` (loom's, in the model checks).
    #[cfg(test)]
    pub fn with_atomics() -> Self {
        KickCell { word: A::new_u32(0) }
    }

    /// Replaces the word by `f(word)` in one step; returns the old word.
    fn update(&self, f: impl Fn(u32) -> u32) -> u32 {
        let mut old = A::load(&self.word, SeqCst);
        loop {
            match A::compare_exchange(&self.word, old, f(old), SeqCst, SeqCst) {
                Ok(was) => return was,
                Err(now) => old = now,
            }
        }
    }

    /// Kicks the vCPU from CPU `me`, and says where its thread was.
    pub fn kick(&self, me: usize) -> Kicked {
        let was = self.update(|w| w | PENDING);
        match (was >> AT_SHIFT).checked_sub(1) {
            None => Kicked::Away,
            Some(cpu) if cpu as usize == me => Kicked::Here,
            Some(cpu) => Kicked::Elsewhere(cpu as usize),
        }
    }

    /// Before a VMRUN or HLT on `cpu`: takes a pending kick (true: do not
    /// enter) or else records `cpu` (false: enter, interrupts disabled).
    pub fn take_or_arrive(&self, cpu: usize) -> bool {
        let at = (cpu as u32 + 1) << AT_SHIFT;
        let was = self.update(|w| if w & PENDING != 0 { 0 } else { at });
        was & PENDING != 0
    }

    /// The vCPU's thread leaves its guest loop or its halt: it is nowhere.
    /// A kick that came meanwhile stays for the next look.
    pub fn leave(&self) {
        self.update(|w| w & PENDING);
    }

    /// Takes the kick, if there is one, without saying where the thread is.
    pub fn take(&self) -> bool {
        self.update(|w| w & !PENDING) & PENDING != 0
    }

    /// The wrong order, for the model check that shows it loses kicks:
    /// records `cpu` without looking at the kick.
    #[cfg(test)]
    pub fn arrive_without_taking(&self, cpu: usize) {
        self.update(|w| (w & PENDING) | (cpu as u32 + 1) << AT_SHIFT);
    }

    /// Forgets any kick (a new vCPU in the slot).
    pub fn reset(&self) {
        A::store(&self.word, 0, SeqCst);
    }
}

impl Default for KickCell<CoreAtomics> {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a kicked vCPU's thread was when the kick came ([`KickCell::kick`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kicked {
    /// In its guest or halted on that other CPU: send it the kick IPI.
    Elsewhere(usize),
    /// On the kicker's own CPU, which it cannot be in its guest or halted
    /// on while the kicker runs there: it takes the kick at its next look.
    Here,
    /// Neither in its guest nor halted: it takes the kick at its next look.
    Away,
}

/// A vCPU slot's kick, with its owner and VM, reachable without the slot's
/// lock (which the vCPU's thread holds while it runs the guest).
struct VcpuKick {
    /// The owning process's pid + 1; 0 while the slot is empty.
    owner: AtomicU32,
    /// The vCPU's VM slot + 1 (meaningful while `owner` is not 0).
    vm: AtomicU32,
    /// The CPU + 1 on which the vCPU's thread last ran its guest or
    /// halted (0: not yet). Threads never move, so this is its CPU: a hint
    /// for [`sys_vcpu_kick`]'s hand-over, outside the kick protocol.
    home: AtomicU32,
    cell: KickCell,
}

static KICKS: [VcpuKick; MAX_VCPUS] = [const {
    VcpuKick { owner: AtomicU32::new(0), vm: AtomicU32::new(0), home: AtomicU32::new(0), cell: KickCell::new() }
}; MAX_VCPUS];

/// A new vCPU of `caller`'s VM `vm` fills slot `index`: its kick starts
/// clear.
pub(super) fn vcpu_created(index: usize, caller: Caller, vm: VmHandle) {
    if let Some(k) = KICKS.get(index) {
        k.cell.reset();
        k.home.store(0, SeqCst);
        k.vm.store(u32::from(vm.0) + 1, SeqCst);
        k.owner.store(caller.pid().index() as u32 + 1, SeqCst);
    }
}

/// Slot `index` is empty again.
pub(super) fn vcpu_destroyed(index: usize) {
    if let Some(k) = KICKS.get(index) {
        k.owner.store(0, SeqCst);
        k.cell.reset();
    }
}

/// The kick slot of the caller's vCPU `h`.
fn slot(caller: Caller, h: VcpuHandle) -> SysResult<&'static VcpuKick> {
    let k = KICKS.get(usize::from(h.0)).ok_or(SysError::NoSuchObject)?;
    match k.owner.load(SeqCst) {
        0 => Err(SysError::NoSuchObject),
        o if o != caller.pid().index() as u32 + 1 => Err(SysError::NotOwner),
        _ => Ok(k),
    }
}

/// The kick of the caller's vCPU `h`, whose thread is about to run its
/// guest or halt on `cpu` (remembered as its CPU).
pub(super) fn cell_on(caller: Caller, h: VcpuHandle, cpu: usize) -> SysResult<&'static KickCell> {
    let k = slot(caller, h)?;
    k.home.store(cpu as u32 + 1, Relaxed);
    Ok(&k.cell)
}

/// Kicks the caller's vCPU `vcpu`: its `sys_run` returns `VmExit::Intr`
/// (at once if it runs the guest on another CPU, which gets the kick IPI),
/// and its `sys_vcpu_halt` returns; if it does neither now, its next one
/// does. Never waits for the vCPU's thread.
///
/// A vCPU that neither runs its guest nor halts, and whose thread lives
/// on the caller's CPU, is a thread ready there, waiting for the caller's
/// slice to end (two vCPUs of a VM pinned to one CPU): the caller then
/// hands over the rest of its slice, so that the kicked vCPU runs at the
/// caller's next entry, not up to a slice later (`CpuTime::hand_over`). A
/// vCPU whose thread lives elsewhere gets no slice of this CPU's.
pub fn sys_vcpu_kick(caller: Caller, vcpu: VcpuHandle) -> SysResult<()> {
    let k = slot(caller, vcpu)?;
    let me = crate::arch::cpu::current();
    if kick(&k.cell) == Kicked::Away && k.home.load(Relaxed) == me as u32 + 1 {
        if let Some(c) = super::CPUS[me].lock().as_mut() {
            c.time.hand_over();
        }
    }
    Ok(())
}

/// Kicks every vCPU of `caller`'s VM `vm`, so that those running its guest
/// leave it and let go of their slot locks now rather than at their slice
/// end (`sys_vm_destroy` takes each of those locks).
pub(super) fn kick_vm(caller: Caller, vm: VmHandle) {
    let owner = caller.pid().index() as u32 + 1;
    for k in KICKS.iter().filter(|k| k.owner.load(SeqCst) == owner && k.vm.load(SeqCst) == u32::from(vm.0) + 1) {
        kick(&k.cell);
    }
}

/// Sets `cell`'s kick and sends the kick IPI to the CPU it names, if any.
fn kick(cell: &KickCell) -> Kicked {
    let kicked = cell.kick(crate::arch::cpu::current());
    if let Kicked::Elsewhere(cpu) = kicked {
        crate::thread::kick_cpu(crate::thread::CpuId(cpu));
    }
    kicked
}

#[cfg(test)]
mod loom_tests;
