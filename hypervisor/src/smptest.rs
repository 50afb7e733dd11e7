//! Boot check of the calls a VM with several vCPUs uses, across two CPUs,
//! through the door as a VMM calls it (`syscall::Kernel`).
//!
//! [`run`] makes a process with a VM and one vCPU, and a thread of it on
//! CPU 0 that calls `fork_join` with one extra thread pinned to CPU 1:
//!
//! 1. each body notes its CPU and waits (up to [`PATIENCE_NS`]) until the
//!    other is inside too: both inside at once, on two CPUs, shows the
//!    bodies run at the same time;
//! 2. body 1 then halts its vCPU (`vcpu_halt`, deadline [`HALT_NS`] away),
//!    again until body 0's kick has come; body 0 waits [`KICK_DELAY_NS`]
//!    so that CPU 1 is in its HLT, then kicks (`vcpu_kick`). The time from
//!    the kick to the halt's return, far below the deadline, shows the kick
//!    woke the halted CPU;
//! 3. body 1 then runs its vCPU's guest (`jmp $` at the reset vector, IF=1,
//!    deadline [`HALT_NS`] away) on CPU 1, while body 0 maps more RAM into
//!    the VM (`npt_map`: the TLB shootdown makes CPU 1 leave the guest and
//!    waits for it) and then kicks the vCPU: `run` returns `Intr` soon
//!    after the kick, far before its deadline, and the map came back while
//!    the guest ran;
//! 4. body 1 runs the guest again until `run` fails, while body 0
//!    destroys the VM (`vm_destroy` kicks the VM's vCPUs and takes their
//!    slot locks): the destroy comes back soon, not at the run's deadline,
//!    and body 1's next `run` finds the vCPU gone.
//!
//! The report is one line starting with `smp-selftest:`.
use crate::proc::{self, Pid};
use crate::sync::Lock;
use crate::thread::{self, Chan, CpuId, Placement};
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use sysabi::{Grants, Sys, ThreadCpu};

/// How long a body waits for the other to come in.
const PATIENCE_NS: u64 = 2_000_000_000;
/// How far away the halted vCPU's deadline is.
const HALT_NS: u64 = 2_000_000_000;
/// How long body 0 waits before it kicks.
const KICK_DELAY_NS: u64 = 5_000_000;
/// A kick that wakes the halt later than this counts as not waking it.
const WAKE_LIMIT_NS: u64 = 100_000_000;
/// Frames for the test process: a VM (permission maps, tables), a VMCB,
/// the page of the reset vector and [`MAP_LEN`] of RAM.
const QUOTA: u64 = 256;
/// The page the reset vector (0xFFFF_FFF0) lies in.
const RESET_PAGE: u64 = 0xFFFF_F000;
/// `jmp $`: the guest spins.
const SPIN: [u8; 2] = [0xEB, 0xFE];
/// The RAM body 0 maps while the guest runs.
const MAP_AT: u64 = 0x10_0000;
const MAP_LEN: u64 = 0x1_0000;

/// What the check saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SmpReport {
    /// The CPUs bodies 0 and 1 ran on (+1; 0: did not run).
    pub body_cpus: [usize; 2],
    /// Each body saw the other inside while it was.
    pub overlapped: bool,
    /// From the kick to the halt's return, in ns (`None`: never).
    pub wake_ns: Option<u64>,
    /// Halts body 1 made until the kick came (1 when the kick found it halted).
    pub halts: usize,
    /// How long `npt_map` took while the guest ran on the other CPU, in ns.
    pub map_ns: Option<u64>,
    /// From the kick to the running guest's `run` returning `Intr`, in ns.
    pub run_kick_ns: Option<u64>,
    /// How long `vm_destroy` took while the guest ran on the other CPU, in
    /// ns (`None`: it failed, or the vCPU's `run` did not fail after it).
    pub destroy_ns: Option<u64>,
    /// The first call that failed, if any.
    pub failed: Option<&'static str>,
}

impl SmpReport {
    pub fn pass(&self) -> bool {
        self.failed.is_none()
            && self.overlapped
            && self.body_cpus[0] != self.body_cpus[1]
            && self.wake_ns.is_some_and(|ns| ns < WAKE_LIMIT_NS)
            && self.map_ns.is_some_and(|ns| ns < WAKE_LIMIT_NS)
            && self.run_kick_ns.is_some_and(|ns| ns < WAKE_LIMIT_NS)
            && self.destroy_ns.is_some_and(|ns| ns < WAKE_LIMIT_NS)
    }
}

impl fmt::Display for SmpReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cpu = |c: usize| c.checked_sub(1).map_or(-1, |c| c as i64);
        write!(
            f,
            "smp-selftest: {} fork_join bodies on cpu{} and cpu{} {}; ",
            if self.pass() { "ok" } else { "FAIL" },
            cpu(self.body_cpus[0]),
            cpu(self.body_cpus[1]),
            if self.overlapped { "at the same time" } else { "NOT at the same time" },
        )?;
        match self.wake_ns {
            Some(ns) => write!(f, "kick woke the halted vCPU in {} us (halts={})", ns / 1000, self.halts)?,
            None => write!(f, "kick did not wake the halted vCPU")?,
        }
        match self.map_ns {
            Some(ns) => write!(f, "; npt_map beside the running guest took {} us", ns / 1000)?,
            None => write!(f, "; npt_map beside the running guest did not return")?,
        }
        match self.run_kick_ns {
            Some(ns) => write!(f, "; kick ended the running guest in {} us", ns / 1000)?,
            None => write!(f, "; kick did not end the running guest")?,
        }
        match self.destroy_ns {
            Some(ns) => write!(f, "; vm_destroy beside the running guest took {} us", ns / 1000)?,
            None => write!(f, "; vm_destroy beside the running guest failed")?,
        }
        if let Some(call) = self.failed {
            write!(f, "; {call} failed")?;
        }
        Ok(())
    }
}

/// The test thread's grants and, when it is done, its report.
struct Shared {
    grants: Option<Grants>,
    report: Option<SmpReport>,
}

static SHARED: Lock<Shared> = Lock::new(Shared { grants: None, report: None });
const DONE: Chan = Chan(0x5E1F_0002);

fn now() -> u64 {
    crate::arch::lapic::now_ns()
}

/// Runs the check (CPUs 0 and 1 must be running) and ends its process.
pub fn run() -> SmpReport {
    let failed = |call| SmpReport { failed: Some(call), ..SmpReport::default() };
    let Ok(pid) = proc::proc_create(Pid::ROOT, QUOTA) else {
        return failed("proc_create");
    };
    let report = match crate::syscall::grant_process(pid, "smptest") {
        Ok(g) => {
            *SHARED.lock() = Shared { grants: Some(g), report: None };
            match proc::spawn_on(pid, check_thread, 0, Placement::Cpu(CpuId(0))) {
                Ok(_) => wait_for_report(),
                Err(_) => failed("spawn"),
            }
        }
        Err(_) => failed("grant_process"),
    };
    // The threads exit right after they report; wait for the last to go.
    loop {
        match crate::syscall::end_process(pid) {
            Err(proc::ProcError::InUse) => {
                let _ = thread::yield_now();
            }
            Err(e) => {
                log::error!("smp-selftest: process {pid} cannot end: {e}");
                break;
            }
            Ok(_) => break,
        }
    }
    report
}

fn wait_for_report() -> SmpReport {
    loop {
        let s = SHARED.lock();
        if let Some(r) = s.report {
            return r;
        }
        if thread::sleep(DONE, s).is_err() {
            return SmpReport { failed: Some("sleep"), ..SmpReport::default() };
        }
    }
}

/// The test process's thread: the VMM's side of the check.
fn check_thread(_: usize) {
    let grants = SHARED.lock().grants;
    let report = grants.map_or(SmpReport { failed: Some("grants"), ..SmpReport::default() }, check);
    SHARED.lock().report = Some(report);
    thread::wakeup(DONE);
}

fn check(g: Grants) -> SmpReport {
    let k = crate::syscall::Kernel;
    let mut report = SmpReport::default();
    let made = k.vm_create().and_then(|vm| {
        k.npt_map(vm, RESET_PAGE, 0x1000)?;
        k.guest_write(vm, 0xFFFF_FFF0, &SPIN)?;
        let vcpu = k.vcpu_create(vm)?;
        // IF=1: Bochs 2.7 (ryzen) was seen to take no #VMEXIT(INTR) at all
        // while the guest's IF is 0, V_INTR_MASKING notwithstanding (the
        // host's IF decides, APM vol. 2, §15.21.1): a `jmp $` guest with
        // IF=0 there is neither preempted nor kicked.
        k.set_reg(vcpu, sysabi::Reg::Rflags, 0x202)?;
        Ok((vm, vcpu))
    });
    let Ok((vm, vcpu)) = made else {
        report.failed = Some("vm_create/npt_map/guest_write/vcpu_create");
        return report;
    };
    let cpus = [AtomicUsize::new(0), AtomicUsize::new(0)];
    let inside = AtomicUsize::new(0);
    let saw_other = [AtomicBool::new(false), AtomicBool::new(false)];
    let halting = AtomicBool::new(false);
    let kicked_at = AtomicU64::new(0);
    let woke_at = AtomicU64::new(0);
    let halts = AtomicUsize::new(0);
    let call_failed = AtomicBool::new(false);
    let running = AtomicBool::new(false);
    let map_ns = AtomicU64::new(u64::MAX);
    let run_kicked_at = AtomicU64::new(0);
    let run_exited_at = AtomicU64::new(0);
    let running_again = AtomicBool::new(false);
    let vcpu_gone = AtomicBool::new(false);
    let destroy_ns = AtomicU64::new(u64::MAX);
    let wait_ns = |ns: u64| {
        let at = now() + ns;
        while now() < at {
            core::hint::spin_loop();
        }
    };
    // Spins until `done` says so, or for at most PATIENCE_NS.
    let wait_for = |done: &dyn Fn() -> bool| {
        let until = now() + PATIENCE_NS;
        while !done() && now() < until {
            core::hint::spin_loop();
        }
    };
    let body = |i: usize| {
        cpus[i].store(crate::arch::cpu::current() + 1, SeqCst);
        inside.fetch_add(1, SeqCst);
        wait_for(&|| inside.load(SeqCst) >= 2);
        saw_other[i].store(inside.load(SeqCst) == 2, SeqCst);
        if i == 1 {
            halting.store(true, SeqCst);
            let deadline = now() + HALT_NS;
            while kicked_at.load(SeqCst) == 0 && now() < deadline {
                halts.fetch_add(1, SeqCst);
                if k.vcpu_halt(g.sched, vcpu, deadline).is_err() {
                    call_failed.store(true, SeqCst);
                    break;
                }
            }
            woke_at.store(now(), SeqCst);
            running.store(true, SeqCst);
            match k.run(vcpu, now() + HALT_NS) {
                Ok(sysabi::VmExit::Intr) => run_exited_at.store(now(), SeqCst),
                _ => call_failed.store(true, SeqCst),
            }
            let until = now() + PATIENCE_NS;
            while now() < until {
                running_again.store(true, SeqCst);
                if k.run(vcpu, now() + HALT_NS).is_err() {
                    vcpu_gone.store(true, SeqCst);
                    break;
                }
            }
        } else {
            // Kicks the vCPU, noting when in `at`.
            let kick = |at: &AtomicU64| {
                at.store(now(), SeqCst);
                if k.vcpu_kick(vcpu).is_err() {
                    call_failed.store(true, SeqCst);
                }
            };
            // Makes `call`, noting in `ns` how long it took if it succeeded.
            let time = |ns: &AtomicU64, call: &dyn Fn() -> sysabi::SysResult<()>| {
                let t0 = now();
                if call().is_ok() {
                    ns.store(now() - t0, SeqCst);
                }
            };
            wait_for(&|| halting.load(SeqCst));
            wait_ns(KICK_DELAY_NS);
            kick(&kicked_at);
            wait_for(&|| running.load(SeqCst));
            wait_ns(KICK_DELAY_NS);
            time(&map_ns, &|| k.npt_map(vm, MAP_AT, MAP_LEN));
            wait_ns(KICK_DELAY_NS);
            kick(&run_kicked_at);
            wait_for(&|| running_again.load(SeqCst));
            wait_ns(KICK_DELAY_NS);
            time(&destroy_ns, &|| k.vm_destroy(vm));
        }
    };
    if k.fork_join(g.sched, &[ThreadCpu::Cpu(1)], &body).is_err() {
        report.failed = Some("fork_join");
        return report;
    }
    if call_failed.load(SeqCst) {
        report.failed = Some("vcpu_halt/vcpu_kick");
    }
    report.body_cpus = [cpus[0].load(SeqCst), cpus[1].load(SeqCst)];
    report.overlapped = saw_other.iter().all(|s| s.load(SeqCst));
    let (kicked, woke) = (kicked_at.load(SeqCst), woke_at.load(SeqCst));
    report.wake_ns = (kicked != 0 && woke >= kicked).then(|| woke - kicked);
    report.halts = halts.load(SeqCst);
    report.map_ns = Some(map_ns.load(SeqCst)).filter(|&ns| ns != u64::MAX);
    let (kicked, exited) = (run_kicked_at.load(SeqCst), run_exited_at.load(SeqCst));
    report.run_kick_ns = (kicked != 0 && exited >= kicked).then(|| exited - kicked);
    report.destroy_ns = Some(destroy_ns.load(SeqCst)).filter(|&ns| ns != u64::MAX && vcpu_gone.load(SeqCst));
    report
}
