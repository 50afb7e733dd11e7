//! The kernel's global instances for host tests (`cfg(test)` only).
//!
//! mm, proc, the syscall layer's object tables and arch's frame record are
//! statics, shared by every test in the process. [`kernel`] sets them up
//! once, over the simulated RAM of [`crate::arch::sim`], and serialises
//! the tests that use them; [`Process`] is a process of its own for one
//! test, ended (and checked to give everything back) when it drops.
use crate::arch::frames::PoolId;
use crate::arch::sim;
use crate::mm::{self, PhysRange};
use crate::proc::{self, Pid};
use crate::syscall::{self, Caller};
use crate::vm::SvmCaps;
use std::sync::{Mutex, MutexGuard, Once};
use sysabi::Grants;

static KERNEL: Mutex<()> = Mutex::new(());
static SETUP: Once = Once::new();

/// What CPU 0 offers the vm layer in host tests: NRIPS (the scripted exits
/// give next_rip), nothing else optional.
pub const TEST_CAPS: SvmCaps =
    SvmCaps { asids: 16, nrips: true, vmcb_clean: false, flush_by_asid: false, tsc_aux: false };

/// The host's DR0–DR3 in host tests: not the RESET zeros, so that a guest
/// finding them, or the host not getting them back, shows.
pub const HOST_DR: [u64; 4] = [0x11, 0x22, 0x33, 0x44];

/// Exclusive use of the kernel's global instances for one test: mm over
/// the simulated RAM (minus low memory and its first 4 MiB, as if the image
/// were there), arch's frame allocator, the root process, and CPU 0
/// registered afresh with the vm layer. The calling thread's simulated
/// machine (clock, timer, script, console) starts from zero, and its
/// DR0–DR3 hold [`HOST_DR`].
pub fn kernel() -> MutexGuard<'static, ()> {
    let guard = KERNEL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    SETUP.call_once(|| {
        let usable = [PhysRange::new(0, 0x9f000), PhysRange::new(0x10_0000, sim::RAM_SIZE)];
        let reserved = [PhysRange::LOW_MEMORY, PhysRange::new(0x10_0000, 0x40_0000)];
        mm::init(&usable, &reserved).expect("mm::init over the simulated RAM");
        assert!(crate::arch::frames::install(&mm::KERNEL_FRAMES), "the frame allocator was installed twice");
        proc::init().expect("proc::init");
    });
    sim::reset();
    sim::set_dr0_3(HOST_DR);
    syscall::cpu_init(0, TEST_CAPS, HOST_DR);
    guard
}

/// A process for one test, with `quota` frames and its grants. Dropping it
/// ends it ([`syscall::end_process`]): its VMs are destroyed and its pid,
/// quota and grants given back; a frame it still held fails the test.
pub struct Process {
    pub pid: Pid,
    pub grants: Grants,
}

impl Process {
    pub fn new(quota: u64) -> Process {
        let pid = proc::proc_create(Pid::ROOT, quota).expect("proc_create for a test process");
        let grants = syscall::grant_process(pid, "test").expect("grant_process");
        Process { pid, grants }
    }

    pub fn caller(&self) -> Caller {
        Caller::of(self.pid)
    }

    /// The pool its frames come from (its container).
    pub fn pool(&self) -> PoolId {
        PoolId::from(proc::container_of(self.pid).expect("the process exists"))
    }

    /// Frames the process's container holds now.
    pub fn frames_used(&self) -> u64 {
        let c = proc::container_of(self.pid).expect("the process exists");
        mm::info(c).expect("its container exists").usage
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let ended = syscall::end_process(self.pid);
        if !std::thread::panicking() {
            ended.unwrap_or_else(|e| panic!("ending test process {:?}: expected Ok, saw {e:?}", self.pid));
        }
    }
}
