//! Model checks, with loom, that a kick is never lost between a vCPU
//! thread's look at its kick and its VMRUN or HLT.
//!
//! The cell is the kernel's own [`KickCell`] on loom's atomics. The local
//! APIC's request register is a latch (see `thread/loom_tests.rs`): an IPI
//! that arrives while the vCPU's CPU runs host code with IF=0 stays pending,
//! and a VMRUN or HLT with one pending ends at once. The vCPU's side is
//! `sys_run`'s loop and `sys_vcpu_halt`: arrive, take the kick or enter.
//! The property: when the kicker is done, the vCPU thread has taken the
//! kick, or it sits in its guest (or HLT) with the IPI pending, which ends
//! that at once and leads to the take.
use super::KickCell;
use crate::sync::LoomAtomics;
use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
use loom::sync::Arc;

const KICKER_CPU: usize = 0;
const VCPU_CPU: usize = 1;

struct Machine {
    cell: KickCell<LoomAtomics>,
    /// An IPI is pending at the vCPU's CPU.
    ipi: AtomicBool,
}

/// How the vCPU thread's turn ended.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// It took the kick.
    Took,
    /// It entered the guest (or halted) with no IPI pending.
    Entered,
}

/// `sys_run`'s loop (or `sys_vcpu_halt`), `entries` times at most: an
/// entry with an IPI pending exits at once (#VMEXIT(INTR), handled on the
/// fast path) and the loop looks at the kick again. `take_first` is the
/// wrong order (look, then say where, in two steps), to show the model catches it.
fn vcpu_thread(m: &Machine, entries: usize, take_first: bool) -> Seen {
    for _ in 0..entries {
        if take_first {
            if m.cell.take() {
                return Seen::Took;
            }
            m.cell.arrive_without_taking(VCPU_CPU);
        } else if m.cell.take_or_arrive(VCPU_CPU) {
            return Seen::Took;
        }
        // The IPI is taken (a CAS: loom 0.7's `swap` was seen to let a
        // later load read a value older than the store it had lost to).
        if m.ipi.compare_exchange(true, false, SeqCst, SeqCst).is_err() {
            return Seen::Entered;
        }
    }
    m.cell.leave();
    Seen::Took
}

fn kicker(m: &Machine) {
    if let super::Kicked::Elsewhere(cpu) = m.cell.kick(KICKER_CPU) {
        assert_eq!(cpu, VCPU_CPU, "the IPI goes to the vCPU's CPU");
        m.ipi.store(true, SeqCst);
    }
}

fn check(take_first: bool) {
    loom::model(move || {
        let m = Arc::new(Machine { cell: KickCell::with_atomics(), ipi: AtomicBool::new(false) });
        let k = {
            let m = m.clone();
            loom::thread::spawn(move || kicker(&m))
        };
        let seen = vcpu_thread(&m, 2, take_first);
        k.join().unwrap();
        match seen {
            Seen::Took => {}
            Seen::Entered => assert!(
                m.ipi.load(SeqCst),
                "lost kick: expected the vCPU to take it or to run with the IPI pending, saw it running without"
            ),
        }
    });
}

#[test]
fn a_kick_is_taken_or_its_ipi_ends_the_guest_run_or_halt() {
    check(false);
}

#[test]
#[should_panic(expected = "lost kick")]
fn looking_at_the_kick_before_saying_where_the_vcpu_runs_loses_one() {
    check(true);
}

#[test]
fn a_kick_is_taken_once_and_a_second_one_is_remembered() {
    loom::model(|| {
        let m = Arc::new(Machine { cell: KickCell::with_atomics(), ipi: AtomicBool::new(false) });
        let k = {
            let m = m.clone();
            loom::thread::spawn(move || {
                kicker(&m);
                kicker(&m);
            })
        };
        let first = m.cell.take();
        k.join().unwrap();
        let second = m.cell.take();
        let third = m.cell.take();
        assert!(first || second, "one kick at least is taken: saw first={first} second={second}");
        assert!(!third, "a kick is taken once: saw a third take succeed");
    });
}

/// The TLB shootdown of `vmobj::vm_write` with the kernel's own `RwLock`
/// (on loom's atomics): a vCPU thread on CPU 1 says it is in the guest
/// loop (a read-modify-write of the VM's CPU mask), then per entry reads
/// the VM's slot, looks at the NPT generation (`prepare_tlb`), and runs
/// the guest until an IPI ends it. A writer on CPU 0 closes the slot,
/// kicks the CPUs in the mask, waits for the readers, and bumps the
/// generation. Checked: the writer is never inside while a guest runs; it
/// never waits for ever (the kick reaches every guest it waits for: loom
/// fails a model whose threads all spin); and the vCPU's first entry after
/// the write sees the new generation (so it flushes before the guest runs).
mod shootdown {
    use crate::sync::{LoomAtomics, RwLock};
    use loom::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed, Ordering::SeqCst};
    use loom::sync::Arc;

    struct Vm {
        slot: RwLock<(), LoomAtomics>,
        /// CPUs whose vCPU threads are in the guest loop.
        in_guest_loop: AtomicU32,
        /// CPU 1's interrupt latch.
        ipi: AtomicBool,
        /// Guests running now.
        running: AtomicU32,
        generation: AtomicU32,
    }

    fn vcpu_thread(vm: &Vm) {
        vm.in_guest_loop.fetch_or(1 << 1, SeqCst);
        loop {
            let g = vm.slot.read();
            let seen = vm.generation.load(Relaxed);
            // VMRUN with an IPI pending exits at once.
            if vm.ipi.compare_exchange(true, false, SeqCst, SeqCst).is_ok() {
                drop(g);
                continue;
            }
            if seen == 1 {
                // Entered with the new generation's flush: done.
                drop(g);
                break;
            }
            vm.running.fetch_add(1, SeqCst);
            // The guest runs until an interrupt comes.
            while vm.ipi.compare_exchange(true, false, SeqCst, SeqCst).is_err() {
                loom::thread::yield_now();
            }
            vm.running.fetch_sub(1, SeqCst);
            drop(g);
        }
        vm.in_guest_loop.fetch_and(!(1 << 1), SeqCst);
    }

    fn writer(vm: &Vm) {
        let g = vm.slot.write_nudging(|| {
            let cpus = vm.in_guest_loop.fetch_or(0, SeqCst);
            if cpus & (1 << 1) != 0 {
                vm.ipi.store(true, SeqCst);
            }
        });
        assert_eq!(vm.running.load(SeqCst), 0, "the writer is inside while a guest runs");
        vm.generation.store(1, Relaxed);
        drop(g);
    }

    #[test]
    fn loom_a_change_waits_for_running_guests_which_the_kick_ends_and_the_next_entry_sees_it() {
        loom::model(|| {
            let vm = Arc::new(Vm {
                slot: RwLock::with_atomics(()),
                in_guest_loop: AtomicU32::new(0),
                ipi: AtomicBool::new(false),
                running: AtomicU32::new(0),
                generation: AtomicU32::new(0),
            });
            let w = {
                let vm = vm.clone();
                loom::thread::spawn(move || writer(&vm))
            };
            vcpu_thread(&vm);
            w.join().unwrap();
        });
    }
}
