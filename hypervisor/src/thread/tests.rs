//! Refinement tests of the queues and the scheduler against [`super::spec`],
//! and host tests of [`Threads`] switching real stacks.
use super::queue::{QueueError, QueueSet};
use super::spec::{QueueSpec, SchedSpec, SpecState};
use super::*;
use proptest::prelude::*;
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;
use std::vec::Vec;

// ---- queues ----------------------------------------------------------

const QT: usize = 8;
const QQ: usize = 3;

#[derive(Debug, Clone)]
enum QOp {
    Enqueue(usize, usize),
    Dequeue(usize),
    Remove(usize, usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum QOut {
    Unit(Result<(), QueueError>),
    Thread(Result<usize, QueueError>),
}

#[derive(Debug, Clone)]
struct QModel {
    spec: QueueSpec,
    last: Option<QOut>,
}

struct QRef;

impl ReferenceStateMachine for QRef {
    type State = QModel;
    type Transition = QOp;

    fn init_state() -> BoxedStrategy<QModel> {
        Just(QModel { spec: QueueSpec::new(QT, QQ), last: None }).boxed()
    }

    fn transitions(_: &QModel) -> BoxedStrategy<QOp> {
        // Queue QQ and thread QT are out of range on purpose.
        let q = prop_oneof![9 => 0..QQ, 1 => Just(QQ)];
        let t = prop_oneof![9 => 0..QT, 1 => Just(QT)];
        prop_oneof![
            3 => (q.clone(), t.clone()).prop_map(|(q, t)| QOp::Enqueue(q, t)),
            2 => q.clone().prop_map(QOp::Dequeue),
            2 => (q, t).prop_map(|(q, t)| QOp::Remove(q, t)),
        ]
        .boxed()
    }

    fn apply(mut m: QModel, op: &QOp) -> QModel {
        m.last = Some(match *op {
            QOp::Enqueue(q, t) => QOut::Unit(m.spec.enqueue(q, t)),
            QOp::Dequeue(q) => QOut::Thread(m.spec.dequeue(q)),
            QOp::Remove(q, t) => QOut::Unit(m.spec.remove(q, t)),
        });
        m
    }
}

struct QueueRefinement;

impl StateMachineTest for QueueRefinement {
    type SystemUnderTest = QueueSet<QT, QQ>;
    type Reference = QRef;

    fn init_test(_: &QModel) -> Self::SystemUnderTest {
        QueueSet::new()
    }

    fn apply(mut qs: Self::SystemUnderTest, m: &QModel, op: QOp) -> Self::SystemUnderTest {
        let seen = match op {
            QOp::Enqueue(q, t) => QOut::Unit(qs.enqueue(q, t)),
            QOp::Dequeue(q) => QOut::Thread(qs.dequeue(q)),
            QOp::Remove(q, t) => QOut::Unit(qs.remove(q, t)),
        };
        assert_eq!(Some(&seen), m.last.as_ref(), "result of {op:?}: spec expected {:?}, queues gave {seen:?}", m.last);
        qs
    }

    fn check_invariants(qs: &Self::SystemUnderTest, m: &QModel) {
        let abs: Vec<VecDeque<usize>> = (0..QQ).map(|q| qs.iter(q).collect()).collect();
        assert_eq!(abs, m.spec.queues, "abstraction of the linked queues (left) vs spec (right)");
        for q in 0..QQ {
            assert_eq!(qs.len(q), m.spec.queues[q].len(), "length of queue {q}");
            // Walking backwards from the tail must give the reverse order.
            for (i, &t) in m.spec.queues[q].iter().enumerate() {
                assert_eq!(qs.queue_of(t), Some(q), "thread {t} (position {i}) records queue {q}");
            }
        }
    }
}

// ---- scheduler ---------------------------------------------------------

/// Channels 0..3 plus one that shares channel 0's sleep bucket.
fn chans() -> Vec<Chan> {
    let twin = (1..).map(Chan).find(|c| bucket(*c) == bucket(Chan(0)) && c.0 > 3).unwrap();
    vec![Chan(0), Chan(1), Chan(2), twin]
}

#[derive(Debug, Clone)]
enum SOp {
    Attach(usize),
    Detach(usize),
    Spawn(u32, usize),
    SpawnIdle(usize),
    BecomeIdle(usize),
    Yield(usize),
    Sleep(usize, Chan),
    Wakeup(Chan),
    Exit(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SOut {
    Tid(Result<Tid, ThreadError>),
    Yield(Result<Option<(Tid, Tid)>, ThreadError>),
    Switch(Result<(Tid, Tid), ThreadError>),
    Woken((usize, u32)),
}

#[derive(Debug, Clone)]
struct SModel {
    spec: SchedSpec,
    last: Option<SOut>,
}

struct SRef;

impl ReferenceStateMachine for SRef {
    type State = SModel;
    type Transition = SOp;

    fn init_state() -> BoxedStrategy<SModel> {
        Just(SModel { spec: SchedSpec::default(), last: None }).boxed()
    }

    fn transitions(_: &SModel) -> BoxedStrategy<SOp> {
        // Mostly CPUs 0 and 1; sometimes one without a thread or out of range.
        let cpu = prop_oneof![8 => 0..2usize, 1 => 2..MAX_CPUS, 1 => Just(MAX_CPUS)];
        let chan = proptest::sample::select(chans());
        prop_oneof![
            1 => cpu.clone().prop_map(SOp::Attach),
            1 => cpu.clone().prop_map(SOp::Detach),
            4 => ((0..3u32), cpu.clone()).prop_map(|(o, c)| SOp::Spawn(o, c)),
            1 => cpu.clone().prop_map(SOp::SpawnIdle),
            1 => cpu.clone().prop_map(SOp::BecomeIdle),
            4 => cpu.clone().prop_map(SOp::Yield),
            3 => (cpu.clone(), chan.clone()).prop_map(|(c, ch)| SOp::Sleep(c, ch)),
            3 => chan.prop_map(SOp::Wakeup),
            2 => cpu.prop_map(SOp::Exit),
        ]
        .boxed()
    }

    fn apply(mut m: SModel, op: &SOp) -> SModel {
        let s = &mut m.spec;
        m.last = Some(match *op {
            SOp::Attach(c) => SOut::Tid(s.attach(CpuId(c), 9)),
            SOp::Detach(c) => SOut::Tid(s.detach(CpuId(c))),
            SOp::Spawn(o, c) => SOut::Tid(s.spawn(o, CpuId(c))),
            SOp::SpawnIdle(c) => SOut::Tid(s.spawn_idle(CpuId(c))),
            SOp::BecomeIdle(c) => SOut::Tid(s.become_idle(CpuId(c))),
            SOp::Yield(c) => SOut::Yield(s.yield_now(CpuId(c))),
            SOp::Sleep(c, ch) => SOut::Switch(s.sleep(CpuId(c), ch)),
            SOp::Wakeup(ch) => SOut::Woken(s.wakeup(ch)),
            SOp::Exit(c) => SOut::Switch(s.exit(CpuId(c))),
        });
        m
    }
}

fn nop(_: usize) {}

fn sched_abstraction(s: &Scheduler) -> SchedSpec {
    let mut a = SchedSpec {
        current: (0..MAX_CPUS).map(|c| s.current(CpuId(c)).ok()).collect(),
        ready: (0..MAX_CPUS).map(|c| s.ready(CpuId(c)).collect()).collect(),
        idle: (0..MAX_CPUS).map(|c| s.idle(CpuId(c))).collect(),
        ..SchedSpec::default()
    };
    let mut sleepers: BTreeMap<Chan, VecDeque<Tid>> = BTreeMap::new();
    for (t, c) in s.sleepers() {
        sleepers.entry(c).or_default().push_back(t);
    }
    a.sleepers = sleepers;
    for i in 0..MAX_THREADS {
        let t = Tid::from_index(i);
        let st = match s.state(t) {
            ThreadState::Free => continue,
            ThreadState::Ready => SpecState::Ready,
            ThreadState::Running(c) => SpecState::Running(c),
            ThreadState::Sleeping(ch) => SpecState::Sleeping(ch),
            ThreadState::Idle => SpecState::Idle,
        };
        let owner = s.owner(t).expect("live thread has an owner");
        a.threads.insert(t, (st, owner, s.cpu_of(t).expect("live thread has a CPU")));
    }
    a
}

struct SchedRefinement;

impl StateMachineTest for SchedRefinement {
    type SystemUnderTest = Box<Scheduler>;
    type Reference = SRef;

    fn init_test(_: &SModel) -> Self::SystemUnderTest {
        Box::new(Scheduler::new())
    }

    fn apply(mut s: Self::SystemUnderTest, m: &SModel, op: SOp) -> Self::SystemUnderTest {
        let seen = match op {
            SOp::Attach(c) => SOut::Tid(s.attach(CpuId(c), 9)),
            SOp::Detach(c) => SOut::Tid(s.detach(CpuId(c))),
            SOp::Spawn(o, c) => SOut::Tid(s.spawn(nop, 0, o, CpuId(c))),
            SOp::SpawnIdle(c) => SOut::Tid(s.spawn_idle(CpuId(c))),
            SOp::BecomeIdle(c) => SOut::Tid(s.become_idle(CpuId(c))),
            SOp::Yield(c) => SOut::Yield(s.yield_now(CpuId(c))),
            SOp::Sleep(c, ch) => SOut::Switch(s.sleep(CpuId(c), ch)),
            SOp::Wakeup(ch) => SOut::Woken(s.wakeup(ch)),
            SOp::Exit(c) => SOut::Switch(s.exit(CpuId(c))),
        };
        assert_eq!(
            Some(&seen),
            m.last.as_ref(),
            "result of {op:?}: spec expected {:?}, scheduler gave {seen:?}",
            m.last
        );
        s
    }

    fn check_invariants(s: &Self::SystemUnderTest, m: &SModel) {
        assert_eq!(sched_abstraction(s), m.spec, "abstraction of the scheduler (left) vs spec (right)");
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn linked_queues_refine_queue_spec(sequential 1..60 => QueueRefinement);
    #[test]
    fn scheduler_refines_scheduler_spec(sequential 1..80 => SchedRefinement);
}

#[test]
fn new_threads_go_to_the_online_cpu_with_the_fewest_process_threads() {
    let mut s = Box::new(Scheduler::new());
    assert_eq!(s.least_loaded(), CpuId(0), "no CPU online");
    s.attach(CpuId(0), 0).unwrap();
    s.attach(CpuId(2), 0).unwrap();
    s.become_idle(CpuId(2)).unwrap();
    assert_eq!(s.online(), 0b101, "CPUs with a current or idle thread");
    assert_eq!(s.least_loaded(), CpuId(0), "the kernel's own threads do not count: the lowest index wins");
    s.spawn(nop, 0, 5, CpuId(0)).unwrap();
    assert_eq!(s.least_loaded(), CpuId(2), "CPU 0 runs a process thread, CPU 2 none");
    s.spawn(nop, 0, 6, CpuId(2)).unwrap();
    assert_eq!(s.least_loaded(), CpuId(0), "one each: the lowest index");
    s.spawn(nop, 0, 7, CpuId(0)).unwrap();
    assert_eq!(s.least_loaded(), CpuId(2), "two on CPU 0, one on CPU 2");
    assert_eq!(s.cpus_of_owner(6), 0b100, "owner 6's thread is on CPU 2");
    s.spawn(nop, 0, 6, CpuId(0)).unwrap();
    assert_eq!(s.cpus_of_owner(6), 0b101, "and now on CPU 0 too");
    assert_eq!(s.cpus_of_owner(9), 0, "no thread of owner 9");
}

#[test]
fn dequeue_on_empty_and_remove_of_non_member_are_refused() {
    let mut q: QueueSet<4, 2> = QueueSet::new();
    assert_eq!(q.dequeue(0), Err(QueueError::Empty), "dequeue on an empty queue");
    q.enqueue(1, 2).unwrap();
    assert_eq!(q.remove(0, 2), Err(QueueError::NotMember), "remove from the wrong queue");
    assert_eq!(q.remove(1, 3), Err(QueueError::NotMember), "remove of a thread on no queue");
    assert_eq!(q.enqueue(0, 2), Err(QueueError::AlreadyQueued), "enqueue of a queued thread");
    assert_eq!(q.dequeue(1), Ok(2), "dequeue the one member");
}

// ---- real threads on the host ------------------------------------------

/// Runs the calling test's flow as thread 0 of `t` until every other
/// thread has exited, then detaches it.
fn run_until_alone(t: &'static Threads) {
    let mut spins = 0;
    while t.scheduler().live_threads() > 1 {
        t.yield_now().expect("the test flow is thread 0");
        spins += 1;
        assert!(spins < 100_000, "threads did not finish");
    }
    t.detach_current().expect("detach the test flow");
}

static RR: Threads = Threads::new();
static RR_LOG: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());
static RR_ERRORS: AtomicUsize = AtomicUsize::new(0);

fn rr_worker(id: usize) {
    for round in 0..3 {
        RR_LOG.lock().unwrap().push((id, round));
        if RR.yield_now().is_err() {
            RR_ERRORS.fetch_add(1, SeqCst);
        }
    }
}

#[test]
fn threads_yield_in_round_robin_order_on_separate_stacks() {
    let main = RR.attach_current(CpuId(0)).expect("attach");
    assert_eq!(main, Tid::from_index(0), "the test flow is thread 0");
    for id in 0..3 {
        let t = RR.spawn(rr_worker, id).expect("spawn");
        assert_eq!(t, Tid::from_index(id + 1), "worker {id}'s tid");
    }
    assert_eq!(RR.current(), Some(main), "current thread of the test flow");
    run_until_alone(&RR);
    let log = RR_LOG.lock().unwrap().clone();
    let expected: Vec<(usize, usize)> = (0..3).flat_map(|r| (0..3).map(move |id| (id, r))).collect();
    assert_eq!(log, expected, "round-robin order of (worker, round)");
    assert_eq!(RR_ERRORS.load(SeqCst), 0, "yield errors inside workers");
}

static SW: Threads = Threads::new();
static SW_COND: crate::sync::Lock<u32> = crate::sync::Lock::new(0);
static SW_WAKES: AtomicUsize = AtomicUsize::new(0);
static SW_SEEN_SELF: AtomicUsize = AtomicUsize::new(usize::MAX);
const SW_CHAN: Chan = Chan(0x5157);

fn sleeper(_: usize) {
    SW_SEEN_SELF.store(SW.current().map_or(usize::MAX, Tid::index), SeqCst);
    loop {
        let g = SW_COND.lock();
        if *g >= 3 {
            break;
        }
        let before = *g;
        if SW.sleep(SW_CHAN, g).is_err() {
            return;
        }
        if *SW_COND.lock() > before {
            SW_WAKES.fetch_add(1, SeqCst);
        }
    }
}

#[test]
fn sleeper_waits_until_woken_and_wakeup_counts_sleepers() {
    SW.attach_current(CpuId(0)).unwrap();
    let t = SW.spawn(sleeper, 0).unwrap();
    SW.yield_now().unwrap();
    assert_eq!(SW_SEEN_SELF.load(SeqCst), t.index(), "current() inside the spawned thread");
    for round in 1..=3u32 {
        assert_eq!(SW.state(t), ThreadState::Sleeping(SW_CHAN), "sleeper's state before round {round}");
        // Nobody else is ready: yielding does not run the sleeper.
        SW.yield_now().unwrap();
        assert_eq!(SW.state(t), ThreadState::Sleeping(SW_CHAN), "a yield does not wake a sleeper");
        assert_eq!(SW.wakeup(Chan(SW_CHAN.0 + 1)), 0, "wakeup on another channel");
        *SW_COND.lock() = round;
        assert_eq!(SW.wakeup(SW_CHAN), 1, "wakeup in round {round}");
        assert_eq!(SW.state(t), ThreadState::Ready, "sleeper after wakeup");
        SW.yield_now().unwrap();
    }
    assert_eq!(SW.state(t), ThreadState::Free, "the sleeper exited after the last round");
    assert_eq!(SW_WAKES.load(SeqCst), 3, "wakeups seen by the sleeper");
    assert_eq!(SW.sleep(SW_CHAN, ()), Err(ThreadError::NothingToRun), "sleep with nothing else to run");
    SW.detach_current().unwrap();
}

static EX: Threads = Threads::new();
static EX_RUNS: AtomicUsize = AtomicUsize::new(0);

fn short(_: usize) {
    EX_RUNS.fetch_add(1, SeqCst);
}

#[test]
fn exited_threads_free_their_tcbs_and_stacks_for_reuse() {
    EX.attach_current(CpuId(0)).unwrap();
    for batch in 0..3 {
        for _ in 1..MAX_THREADS {
            EX.spawn(short, 0).expect("spawn while TCBs are free");
        }
        assert_eq!(EX.spawn(short, 0), Err(ThreadError::NoFreeThread), "spawn with a full pool (batch {batch})");
        EX.yield_now().unwrap();
        assert_eq!(EX.scheduler().live_threads(), 1, "all of batch {batch} ran and exited");
    }
    assert_eq!(EX_RUNS.load(SeqCst), 3 * (MAX_THREADS - 1), "thread bodies run");
    assert_eq!(EX.attach_current(CpuId(0)), Err(ThreadError::CpuBusy), "attach twice");
    EX.detach_current().unwrap();
    assert_eq!(EX.yield_now(), Err(ThreadError::NoCurrentThread), "yield after detach");
}

static OW: Threads = Threads::new();
static OW_SEEN: Mutex<Vec<Option<u32>>> = Mutex::new(Vec::new());

fn owned_worker(_: usize) {
    OW_SEEN.lock().unwrap().push(OW.running_owner(CpuId(0)));
    OW.yield_now().unwrap();
    OW_SEEN.lock().unwrap().push(OW.running_owner(CpuId(0)));
}

#[test]
fn the_running_owner_follows_every_switch() {
    assert_eq!(OW.running_owner(CpuId(0)), None, "no thread runs before attach");
    OW.attach_current(CpuId(0)).unwrap();
    assert_eq!(OW.running_owner(CpuId(0)), Some(0), "the attached flow is owned by 0");
    OW.spawn_owned(owned_worker, 0, 7).unwrap();
    OW.yield_now().unwrap();
    assert_eq!(OW.running_owner(CpuId(0)), Some(0), "back in the test flow after the worker yielded");
    OW.yield_now().unwrap();
    assert_eq!(*OW_SEEN.lock().unwrap(), vec![Some(7), Some(7)], "what the worker saw of itself");
    assert_eq!(OW.running_owner(CpuId(0)), Some(0), "back after the worker exited");
    assert_eq!(OW.running_owner(CpuId(MAX_CPUS)), None, "a CPU out of range runs nothing");
    OW.detach_current().unwrap();
    assert_eq!(OW.running_owner(CpuId(0)), None, "nothing runs after detach");
}
