//! What the vCPU loops of one VM share: the board behind a lock, every
//! vCPU's handle (to kick it), and the VM's end.
//!
//! Each vCPU runs its own [`VcpuLoop`](super::VcpuLoop) on its own thread
//! (`launch::run_guest` starts them through `Sys::fork_join`). A loop takes
//! the board's lock only while it touches devices and never across a call
//! that runs the guest or sleeps; when it lets go, it kicks the vCPUs its
//! accesses gave an interrupt or event ([`Board::take_kicks`]).
//!
//! The first vCPU that stops for good (power-off, reset, triple fault, a
//! state VMRUN refuses) ends the VM: its [`Stop`] is kept, every other vCPU
//! is kicked, and each loop returns that same stop at its next look.
use super::Stop;
use crate::dev::apic_bus::CpuSet;
use crate::dev::apics::MAX_VCPUS;
use crate::dev::Board;
use arrayvec::ArrayVec;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use sysabi::{SchedHandle, Sys, VcpuHandle};

/// How often a vCPU spins on a taken board lock before it lets other
/// threads of its host CPU run (the holder may be one of them).
const SPINS_BEFORE_YIELD: u32 = 256;

/// One VM's state that its vCPU threads share.
pub struct VmShared<'a> {
    board: spin::Mutex<Board<'a>>,
    /// Every vCPU's handle, by index (the index is its APIC ID).
    vcpus: ArrayVec<VcpuHandle, MAX_VCPUS>,
    /// Set once a vCPU stopped for good: every loop returns.
    stopping: AtomicBool,
    /// The stop that ended the VM, set before `stopping`.
    first_stop: spin::Mutex<Option<Stop>>,
    /// vCPUs that wait for a start-up IPI or halted with interrupts
    /// disabled: when all do, nothing can wake the VM again.
    asleep: AtomicUsize,
}

impl<'a> VmShared<'a> {
    /// The state of a VM with `board` and the vCPUs `vcpus` (at most
    /// [`MAX_VCPUS`]; the rest are dropped): vCPU 0 runs, the others wait
    /// for a start-up IPI.
    pub fn new(board: Board<'a>, vcpus: &[VcpuHandle]) -> Self {
        let vcpus: ArrayVec<VcpuHandle, MAX_VCPUS> = vcpus.iter().copied().take(MAX_VCPUS).collect();
        let asleep = AtomicUsize::new(vcpus.len().saturating_sub(1));
        VmShared {
            board: spin::Mutex::new(board),
            vcpus,
            stopping: AtomicBool::new(false),
            first_stop: spin::Mutex::new(None),
            asleep,
        }
    }

    /// How many vCPUs the VM has.
    pub fn vcpus(&self) -> usize {
        self.vcpus.len()
    }

    /// vCPU `index`'s handle.
    pub fn vcpu(&self, index: usize) -> Option<VcpuHandle> {
        self.vcpus.get(index).copied()
    }

    /// Takes the board for vCPU `cpu`: waits for the lock (spinning, then
    /// yielding the host CPU), and selects `cpu` on it.
    pub fn lock_board<S: Sys>(&self, sys: &S, sched: SchedHandle, cpu: usize) -> spin::MutexGuard<'_, Board<'a>> {
        let mut spins = 0;
        loop {
            if let Some(mut board) = self.board.try_lock() {
                board.select_cpu(cpu);
                return board;
            }
            spins += 1;
            if spins < SPINS_BEFORE_YIELD {
                core::hint::spin_loop();
            } else {
                spins = 0;
                let _ = sys.yield_now(sched);
            }
        }
    }

    /// Kicks each vCPU in `set`.
    pub fn kick<S: Sys>(&self, sys: &S, set: CpuSet) {
        for i in set.iter() {
            if let Some(&vcpu) = self.vcpus.get(i) {
                if let Err(e) = sys.vcpu_kick(vcpu) {
                    log::warn!("could not kick vCPU {i}: {e}");
                }
            }
        }
    }

    /// A vCPU stopped for good.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// The stop that ended the VM, once [`stopping`](Self::stopping).
    pub fn first_stop(&self) -> Option<Stop> {
        *self.first_stop.lock()
    }

    /// A vCPU stopped with `stop`: the first such ends the VM and kicks
    /// every vCPU so that each loop sees it. Returns the VM's stop (the
    /// first one).
    pub fn end<S: Sys>(&self, sys: &S, stop: Stop) -> Stop {
        let first = *self.first_stop.lock().get_or_insert(stop);
        if !self.stopping.swap(true, Ordering::AcqRel) && self.vcpus.len() > 1 {
            self.kick(sys, CpuSet((1u64 << self.vcpus.len()) - 1));
        }
        first
    }

    /// A vCPU goes to sleep for good (waits for a start-up IPI, or halted
    /// with interrupts off). Returns true if that was the last awake one.
    pub fn fall_asleep(&self) -> bool {
        self.asleep.fetch_add(1, Ordering::AcqRel) + 1 == self.vcpus.len()
    }

    /// A sleeping vCPU was woken (start-up IPI, NMI).
    pub fn wake(&self) {
        self.asleep.fetch_sub(1, Ordering::AcqRel);
    }

    /// The board, once the vCPU threads have ended.
    pub fn into_board(self) -> Board<'a> {
        self.board.into_inner()
    }
}
