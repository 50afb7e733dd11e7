//! Boot self-test of the layers as the kernel runs them.
//!
//! [`run`] uses the kernel's own instances of mm, thread and proc (not
//! copies): it creates a child process with a small quota, charges frames
//! to it, and runs worker threads of that process which
//!
//! 1. contend on a sync-layer [`Lock`]: each holds it across a yield, so
//!    the others find it taken (`try_lock` fails) and must come back;
//! 2. sleep at a gate until the boot thread wakes them all at once;
//! 3. send numbered messages to the root process over a channel smaller
//!    than the traffic, so that both blocking send and blocking receive
//!    sleep and are woken.
//!
//! The boot thread checks every count and each sender's message order,
//! then ends the child process and checks that its quota came back and
//! its channel closed.
//! The report's `Display` is one line starting with `selftest:`.
use crate::mm::{self, ContainerId, MmError};
use crate::proc::{self, ChanId, Pid, CHAN_CAPACITY, MSG_SIZE};
use crate::sync::Lock;
use crate::thread::{self, Chan, CpuId};
use core::fmt;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};

/// Worker threads.
const THREADS: usize = 4;
/// Critical sections per worker.
const LOCK_ROUNDS: usize = 8;
/// Messages per worker (the channel holds [`CHAN_CAPACITY`]).
const MESSAGES_PER_THREAD: usize = 2 * CHAN_CAPACITY;
/// The child process's quota, all of which the test allocates.
const QUOTA: u64 = 8;
/// Bytes per test message.
const MSG_LEN: usize = 32;
/// Yields the boot thread allows itself while waiting for the workers.
const PATIENCE: usize = 10_000;

/// What the self-test did and whether everything held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelfTestReport {
    pub pass: bool,
    /// The first check that failed.
    pub failure: Option<&'static str>,
    pub threads: usize,
    /// Critical sections completed under the lock.
    pub lock_rounds: u64,
    /// Times a worker found the lock taken.
    pub contended: u64,
    /// Threads woken from the gate.
    pub wakeups: usize,
    /// Messages received in order.
    pub messages: usize,
    /// Frames charged to the child process and given back.
    pub frames: u64,
}

impl fmt::Display for SelfTestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.failure {
            None if self.pass => f.write_str("selftest: ok")?,
            None => f.write_str("selftest: FAILED")?,
            Some(why) => write!(f, "selftest: FAILED ({why})")?,
        }
        write!(
            f,
            " threads={} lock_rounds={} contended={} wakeups={} messages={} frames={}",
            self.threads, self.lock_rounds, self.contended, self.wakeups, self.messages, self.frames
        )
    }
}

/// State shared by the boot thread and the workers.
struct Shared {
    counter: Lock<u64>,
    gate: Lock<bool>,
    contended: AtomicU64,
    at_gate: AtomicUsize,
    errors: AtomicUsize,
    chan: AtomicUsize,
    child: AtomicUsize,
}

static SHARED: Shared = Shared {
    counter: Lock::new(0),
    gate: Lock::new(false),
    contended: AtomicU64::new(0),
    at_gate: AtomicUsize::new(0),
    errors: AtomicUsize::new(0),
    chan: AtomicUsize::new(0),
    child: AtomicUsize::new(0),
};

fn gate_chan() -> Chan {
    Chan(&SHARED.gate as *const _ as u64)
}

/// The message worker `w` sends as its `seq`-th.
fn message(w: usize, seq: usize) -> [u8; MSG_LEN] {
    let mut m = [0u8; MSG_LEN];
    m[0] = w as u8;
    m[1] = seq as u8;
    for (i, b) in m.iter_mut().enumerate().skip(2) {
        *b = (w * 31 + seq * 7 + i) as u8;
    }
    m
}

fn worker(w: usize) {
    let s = &SHARED;
    let err = || {
        s.errors.fetch_add(1, SeqCst);
    };
    // 1. Contend on the lock, holding it across a switch.
    for _ in 0..LOCK_ROUNDS {
        loop {
            if let Some(mut g) = s.counter.try_lock() {
                let v = *g;
                if thread::yield_now().is_err() {
                    err();
                }
                *g = v + 1;
                break;
            }
            s.contended.fetch_add(1, SeqCst);
            if thread::yield_now().is_err() {
                err();
            }
        }
        if thread::yield_now().is_err() {
            err();
        }
    }
    // 2. Sleep at the gate until it opens.
    s.at_gate.fetch_add(1, SeqCst);
    loop {
        let g = s.gate.lock();
        if *g {
            break;
        }
        if thread::sleep(gate_chan(), g).is_err() {
            err();
            break;
        }
    }
    // 3. Send to the root process.
    let chan = ChanId::from_index(s.chan.load(SeqCst));
    let child = Pid::from_index(s.child.load(SeqCst));
    for seq in 0..MESSAGES_PER_THREAD {
        if proc::send(chan, child, &message(w, seq)).is_err() {
            err();
        }
    }
}

/// Initialises what the self-test needs and is not up yet: the calling
/// (boot) flow becomes the current thread of `cpu`, and the root process
/// exists.
fn prerequisites(cpu: CpuId) -> Result<(), &'static str> {
    if !mm::is_initialised() {
        return Err("mm::init has not run");
    }
    if !thread::is_initialised(cpu) && thread::init(cpu).is_err() {
        return Err("thread::init failed");
    }
    match proc::init() {
        Ok(_) | Err(proc::ProcError::AlreadyInitialised) => Ok(()),
        Err(_) => Err("proc::init failed"),
    }
}

/// Charges the child's whole quota, checks the limit, gives it back.
fn exercise_frames(c: ContainerId, report: &mut SelfTestReport) -> Result<(), &'static str> {
    let run = mm::alloc_run(c, 2, 2).map_err(|_| "alloc_run in the child container")?;
    let mut singles = [None; QUOTA as usize - 2];
    for slot in singles.iter_mut() {
        *slot = Some(mm::alloc(c).map_err(|_| "alloc within quota")?);
    }
    report.frames = QUOTA;
    if mm::alloc(c) != Err(MmError::OutOfQuota) {
        return Err("alloc beyond quota was not refused");
    }
    mm::free_run(c, run, 2).map_err(|_| "free_run of own frames")?;
    for f in singles.into_iter().flatten() {
        mm::free(c, f).map_err(|_| "free of own frame")?;
    }
    match mm::info(c) {
        Ok(i) if i.usage == 0 => Ok(()),
        _ => Err("child usage not back to 0"),
    }
}

/// Waits (yielding) until `done` holds; false if it never does.
fn wait_for(done: impl Fn() -> bool) -> bool {
    for _ in 0..PATIENCE {
        if done() {
            return true;
        }
        if thread::yield_now().is_err() {
            return false;
        }
    }
    done()
}

fn run_checks(cpu: CpuId, report: &mut SelfTestReport) -> Result<(), &'static str> {
    prerequisites(cpu)?;
    let s = &SHARED;
    *s.counter.lock() = 0;
    *s.gate.lock() = false;
    s.contended.store(0, SeqCst);
    s.at_gate.store(0, SeqCst);
    s.errors.store(0, SeqCst);

    let root_quota = || mm::global().lock().remaining(ContainerId::ROOT).map_err(|_| "root quota");
    let quota_before = root_quota()?;
    let child = proc::proc_create(Pid::ROOT, QUOTA).map_err(|_| "proc_create")?;
    let container = proc::container_of(child).map_err(|_| "container_of")?;
    exercise_frames(container, report)?;
    let chan = proc::chan_create(child, Pid::ROOT).map_err(|_| "chan_create")?;
    s.chan.store(chan.index(), SeqCst);
    s.child.store(child.index(), SeqCst);

    for w in 0..THREADS {
        proc::spawn(child, worker, w).map_err(|_| "spawn")?;
        report.threads += 1;
    }
    if !wait_for(|| s.at_gate.load(SeqCst) == THREADS) {
        return Err("workers did not reach the gate");
    }
    report.lock_rounds = *s.counter.lock();
    report.contended = s.contended.load(SeqCst);
    if report.lock_rounds != (THREADS * LOCK_ROUNDS) as u64 {
        return Err("lost update under the lock");
    }
    if report.contended == 0 {
        return Err("the lock was never contended");
    }
    // Let every worker go to sleep at the gate, then open it.
    if !wait_for(|| proc::thread_count(child) == THREADS && gate_sleepers() == THREADS) {
        return Err("workers did not sleep at the gate");
    }
    {
        let mut g = s.gate.lock();
        *g = true;
        report.wakeups = thread::wakeup(gate_chan());
    }
    if report.wakeups != THREADS {
        return Err("wakeup did not wake every sleeper");
    }
    let mut next = [0usize; THREADS];
    let mut buf = [0u8; MSG_SIZE];
    for _ in 0..THREADS * MESSAGES_PER_THREAD {
        let n = proc::recv(chan, Pid::ROOT, &mut buf).map_err(|_| "blocking recv")?;
        let w = buf[0] as usize;
        if n != MSG_LEN || w >= THREADS || buf[..n] != message(w, next[w]) {
            return Err("message out of order or corrupted");
        }
        next[w] += 1;
        report.messages += 1;
    }
    if !wait_for(|| proc::thread_count(child) == 0) {
        return Err("workers did not exit");
    }
    if s.errors.load(SeqCst) != 0 {
        return Err("a worker saw an error");
    }
    proc::proc_destroy(child).map_err(|_| "the child process did not end")?;
    if root_quota()? != quota_before {
        return Err("the child's quota did not come back");
    }
    if proc::try_recv(chan, Pid::ROOT, &mut buf) != Err(proc::ProcError::NoSuchChannel) {
        return Err("the child's channel stayed open");
    }
    Ok(())
}

/// Threads sleeping on the gate.
fn gate_sleepers() -> usize {
    let chan = gate_chan();
    thread::global().scheduler().sleepers().filter(|&(_, c)| c == chan).count()
}

/// Runs the self-test on the kernel's layers, on `cpu`, the CPU the
/// caller runs on: its workers run there while no other CPU schedules
/// threads. Needs `mm::init` first; initialises the thread layer for `cpu`
/// (the caller becomes its current thread) and the root process if that
/// has not been done. Never panics on a failed check: the report says
/// what failed.
pub fn run(cpu: CpuId) -> SelfTestReport {
    let mut report = SelfTestReport {
        pass: false,
        failure: None,
        threads: 0,
        lock_rounds: 0,
        contended: 0,
        wakeups: 0,
        messages: 0,
        frames: 0,
    };
    match run_checks(cpu, &mut report) {
        Ok(()) => report.pass = true,
        Err(why) => report.failure = Some(why),
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Uses the kernel's global instances (see `testkit`).
    #[test]
    fn selftest_passes_on_the_host_with_the_kernel_instances() {
        let _kernel = crate::testkit::kernel();
        let before = thread::global().scheduler().live_threads();
        let report = run(CpuId(0));
        let line = report.to_string();
        println!("{line}");
        assert!(report.pass, "expected a passing report, saw: {line}");
        assert!(line.starts_with("selftest: ok threads=4 "), "summary line: {line}");
        assert_eq!(report.messages, THREADS * MESSAGES_PER_THREAD, "messages");
        assert_eq!(thread::global().scheduler().live_threads(), before + 1, "only the boot thread is left");
        let again = run(CpuId(0));
        assert!(again.pass, "a second run passes too: {again}");
        assert_eq!(SHARED.child.load(SeqCst), 1, "the second run's child got the first one's pid");
        thread::global().detach_current().expect("detach the test flow");
    }

    #[test]
    fn failed_report_names_the_failure() {
        let r = SelfTestReport {
            pass: false,
            failure: Some("lost update under the lock"),
            threads: 4,
            lock_rounds: 3,
            contended: 1,
            wakeups: 0,
            messages: 0,
            frames: 8,
        };
        let line = r.to_string();
        assert_eq!(
            line,
            "selftest: FAILED (lost update under the lock) threads=4 lock_rounds=3 contended=1 wakeups=0 messages=0 frames=8"
        );
    }
}
