//! Refinement of the process and channel tables against [`super::spec`]
//! (over a real `Mm`), and blocking channels between real threads.
use super::spec::{ChanEntry, ProcEntry, ProcSpec};
use super::*;
use crate::mm::spec::{ContainerSpec, FrameSpec, MmSpec};
use crate::mm::{Mm, PhysRange, FRAME_SIZE};
use crate::thread::{CpuId, ThreadState, Threads};
use proptest::prelude::*;
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};
use std::collections::BTreeMap;
use std::vec::Vec;

const W: usize = 1;
const FRAMES: u64 = 64;

fn usable() -> [PhysRange; 1] {
    [PhysRange::new(0, FRAMES * FRAME_SIZE)]
}

/// A recognisable message: `len` bytes from `seed`.
fn message(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add(i as u8)).collect()
}

#[derive(Debug, Clone)]
enum Op {
    Create(usize, u64),
    ChanCreate(usize, usize),
    Send(usize, usize, u8, usize),
    Recv(usize, usize, usize),
    Destroy(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Id(Result<usize, ProcError>),
    Sent(Result<(), ProcError>),
    Received(Result<Vec<u8>, ProcError>),
}

#[derive(Debug, Clone)]
struct Model {
    spec: ProcSpec,
    last: Option<Out>,
}

struct Ref;

impl ReferenceStateMachine for Ref {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Model> {
        let frames = FrameSpec::from_map(&usable(), &[], 64 * W as u64);
        Just(Model { spec: ProcSpec::new(MmSpec::new(frames, FRAMES)), last: None }).boxed()
    }

    fn transitions(m: &Model) -> BoxedStrategy<Op> {
        let pids: Vec<usize> = m.spec.procs.keys().copied().collect();
        let pid = prop_oneof![8 => proptest::sample::select(pids), 1 => 0..MAX_PROCS + 1];
        let chans: Vec<usize> = m.spec.chans.keys().copied().chain([MAX_CHANNELS]).collect();
        let chan = proptest::sample::select(chans);
        let len = prop_oneof![4 => 0..16usize, 1 => Just(MSG_SIZE), 1 => Just(MSG_SIZE + 1)];
        // Endpoints: mostly the right ones, so that messages flow.
        let ends: Vec<(usize, usize, usize)> = m.spec.chans.iter().map(|(c, e)| (*c, e.sender, e.receiver)).collect();
        let flowing = if ends.is_empty() {
            (chan.clone(), pid.clone(), any::<u8>(), len.clone()).prop_map(|(c, p, s, l)| Op::Send(c, p, s, l)).boxed()
        } else {
            let ends = proptest::sample::select(ends);
            prop_oneof![
                (ends.clone(), any::<u8>(), len.clone()).prop_map(|((c, s, _), seed, l)| Op::Send(c, s, seed, l)),
                (ends, prop_oneof![3 => Just(MSG_SIZE), 1 => 0..8usize]).prop_map(|((c, _, r), b)| Op::Recv(c, r, b)),
            ]
            .boxed()
        };
        prop_oneof![
            2 => (pid.clone(), 0..24u64).prop_map(|(p, q)| Op::Create(p, q)),
            2 => (pid.clone(), pid.clone()).prop_map(|(s, r)| Op::ChanCreate(s, r)),
            6 => flowing,
            1 => (chan.clone(), pid.clone(), any::<u8>(), len).prop_map(|(c, p, s, l)| Op::Send(c, p, s, l)),
            1 => (chan, pid.clone(), 0..MSG_SIZE + 1).prop_map(|(c, p, b)| Op::Recv(c, p, b)),
            1 => pid.prop_map(Op::Destroy),
        ]
        .boxed()
    }

    fn apply(mut m: Model, op: &Op) -> Model {
        let s = &mut m.spec;
        m.last = Some(match *op {
            Op::Create(p, q) => Out::Id(s.create(p, q)),
            Op::ChanCreate(a, b) => Out::Id(s.chan_create(a, b)),
            Op::Send(c, p, seed, len) => Out::Sent(s.try_send(c, p, &message(seed, len))),
            Op::Recv(c, p, b) => Out::Received(s.try_recv(c, p, b)),
            Op::Destroy(p) => Out::Sent(s.destroy(p)),
        });
        m
    }
}

struct Sut {
    mm: Box<Mm<W>>,
    table: Box<ProcTable>,
}

fn abstraction(sut: &Sut) -> ProcSpec {
    let t = &sut.table;
    let procs = t
        .pids()
        .map(|p| {
            let e = ProcEntry { parent: t.parent(p).unwrap().index(), container: t.container(p).unwrap().index() };
            (p.index(), e)
        })
        .collect();
    let chans = t
        .chan_ids()
        .map(|c| {
            let (s, r) = t.endpoints(c).unwrap();
            let e = ChanEntry {
                sender: s.index(),
                receiver: r.index(),
                msgs: t.queued(c).unwrap().map(<[u8]>::to_vec).collect(),
            };
            (c.index(), e)
        })
        .collect();
    let mut containers = BTreeMap::new();
    for c in sut.mm.containers() {
        let i = sut.mm.info(c).unwrap();
        let spec = ContainerSpec { parent: i.parent.map(|p| p.index()), quota: i.quota, usage: i.usage };
        containers.insert(c.index(), spec);
    }
    let frames = FrameSpec::from_map(&usable(), &[], 64 * W as u64);
    ProcSpec { procs, chans, mm: MmSpec { frames, containers } }
}

struct ProcRefinement;

impl StateMachineTest for ProcRefinement {
    type SystemUnderTest = Sut;
    type Reference = Ref;

    fn init_test(_: &Model) -> Sut {
        let mut mm = Box::new(Mm::new());
        mm.init(&usable(), &[]);
        let mut table = Box::new(ProcTable::new());
        table.init_root(ContainerId::ROOT);
        Sut { mm, table }
    }

    fn apply(mut sut: Sut, m: &Model, op: Op) -> Sut {
        let t = &mut sut.table;
        let seen = match op {
            Op::Create(p, q) => Out::Id(t.create(&mut sut.mm, Pid::from_index(p), q).map(Pid::index)),
            Op::ChanCreate(a, b) => Out::Id(t.chan_create(Pid::from_index(a), Pid::from_index(b)).map(ChanId::index)),
            Op::Send(c, p, seed, len) => {
                Out::Sent(t.try_send(ChanId::from_index(c), Pid::from_index(p), &message(seed, len)))
            }
            Op::Recv(c, p, b) => {
                let mut buf = vec![0xeeu8; b];
                let r = t.try_recv(ChanId::from_index(c), Pid::from_index(p), &mut buf);
                Out::Received(r.map(|n| buf[..n].to_vec()))
            }
            Op::Destroy(p) => Out::Sent(t.destroy(&mut sut.mm, Pid::from_index(p)).map(|_| ())),
        };
        assert_eq!(Some(&seen), m.last.as_ref(), "result of {op:?}: spec expected {:?}, tables gave {seen:?}", m.last);
        sut
    }

    fn check_invariants(sut: &Sut, m: &Model) {
        assert_eq!(abstraction(sut), m.spec, "abstraction of the tables (left) vs spec (right)");
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn proc_tables_refine_proc_spec(sequential 1..80 => ProcRefinement);
}

#[test]
fn recv_on_empty_and_send_to_full_are_refused_without_blocking() {
    let mut mm = Box::new(Mm::<W>::new());
    mm.init(&usable(), &[]);
    let mut t = Box::new(ProcTable::new());
    let root = t.init_root(ContainerId::ROOT);
    let child = t.create(&mut mm, root, 4).unwrap();
    let c = t.chan_create(root, child).unwrap();
    let mut buf = [0u8; MSG_SIZE];
    assert_eq!(t.try_recv(c, child, &mut buf), Err(ProcError::Empty), "recv on an empty channel");
    for i in 0..CHAN_CAPACITY {
        t.try_send(c, root, &[i as u8]).unwrap();
    }
    assert_eq!(t.try_send(c, root, b"x"), Err(ProcError::Full), "send to a full channel");
    assert_eq!(t.try_send(c, child, b"x"), Err(ProcError::NotSender), "send by the receiver");
    assert_eq!(t.try_recv(c, root, &mut buf), Err(ProcError::NotReceiver), "recv by the sender");
    assert_eq!(t.try_recv(c, child, &mut buf[..0]), Err(ProcError::BufferTooSmall { needed: 1 }), "short buffer");
    assert_eq!(t.try_recv(c, child, &mut buf), Ok(1), "first message still there");
    assert_eq!(buf[0], 0, "FIFO: the first message comes first");
    let before = mm.remaining(ContainerId::ROOT).unwrap();
    assert_eq!(
        t.create(&mut mm, root, 1000),
        Err(ProcError::Mm(crate::mm::MmError::OutOfQuota)),
        "child larger than parent"
    );
    assert_eq!(mm.remaining(ContainerId::ROOT).unwrap(), before, "a refused create costs no quota");
}

// ---- blocking channels between real threads ------------------------------

static TH: Threads = Threads::new();
static PT: Lock<ProcTable> = Lock::new(ProcTable::new());
static RESULT: std::sync::Mutex<Vec<Result<(), ProcError>>> = std::sync::Mutex::new(Vec::new());
const MESSAGES: usize = 20;

fn producer(chan: usize) {
    let c = ChanId::from_index(chan);
    let child = Pid::from_index(1);
    for i in 0..MESSAGES {
        let r = send_on(&PT, &TH, c, child, &message(i as u8, 1 + i % 7));
        RESULT.lock().unwrap().push(r);
    }
}

#[test]
fn blocking_send_and_recv_pass_messages_in_order_through_a_small_channel() {
    let mut mm = Box::new(Mm::<W>::new());
    mm.init(&usable(), &[]);
    let (child, c) = {
        let mut t = PT.lock();
        let root = t.init_root(ContainerId::ROOT);
        let child = t.create(&mut mm, root, 8).unwrap();
        (child, t.chan_create(child, root).unwrap())
    };
    TH.attach_current(CpuId(0)).unwrap();
    let mut buf = [0u8; MSG_SIZE];
    // Alone, a blocking recv would wait forever: refused.
    let r = recv_on(&PT, &TH, c, Pid::ROOT, &mut buf);
    assert_eq!(r, Err(ProcError::Thread(ThreadError::NothingToRun)), "blocking recv with nobody to send");

    let p = spawn_in(&PT, &TH, child, producer, c.index(), crate::thread::Placement::Caller).unwrap();
    assert_eq!(TH.owner(p), Some(child.index() as u32), "the thread belongs to the child process");
    TH.yield_now().unwrap();
    // The producer filled the channel and sleeps until there is space.
    let space = PT.lock().space_chan(c);
    assert_eq!(TH.state(p), ThreadState::Sleeping(space), "producer blocked on a full channel");
    assert_eq!(PT.lock().pending(c), Ok(CHAN_CAPACITY), "channel full");

    for i in 0..MESSAGES {
        let n = recv_on(&PT, &TH, c, Pid::ROOT, &mut buf).expect("blocking recv");
        assert_eq!(&buf[..n], &message(i as u8, 1 + i % 7)[..], "message {i}");
    }
    // Let the producer finish and exit.
    TH.yield_now().unwrap();
    assert_eq!(TH.state(p), ThreadState::Free, "producer exited");
    let results = RESULT.lock().unwrap().clone();
    assert_eq!(results, vec![Ok(()); MESSAGES], "producer's send results");
    TH.detach_current().unwrap();
}

#[test]
fn a_destroyed_process_gives_back_its_quota_pid_and_channels() {
    let mut mm = Box::new(Mm::<W>::new());
    mm.init(&usable(), &[]);
    let mut t = Box::new(ProcTable::new());
    let root = t.init_root(ContainerId::ROOT);
    let before = mm.remaining(ContainerId::ROOT).unwrap();
    let child = t.create(&mut mm, root, 8).unwrap();
    let grandchild = t.create(&mut mm, child, 2).unwrap();
    let c = t.chan_create(root, child).unwrap();
    t.try_send(c, root, b"lost with the channel").unwrap();
    assert_eq!(t.destroy(&mut mm, root).unwrap_err(), ProcError::InUse, "the root stays");
    assert_eq!(t.destroy(&mut mm, child).unwrap_err(), ProcError::InUse, "a parent waits for its children");
    let frame = mm.alloc(t.container(grandchild).unwrap()).unwrap();
    assert_eq!(
        t.destroy(&mut mm, grandchild).unwrap_err(),
        ProcError::Mm(crate::mm::MmError::InUse),
        "a process holding frames"
    );
    mm.free(t.container(grandchild).unwrap(), frame).unwrap();
    assert!(t.destroy(&mut mm, grandchild).unwrap().is_empty());
    assert_eq!(t.destroy(&mut mm, child).unwrap().as_slice(), &[c], "its channel is closed");
    assert_eq!(t.endpoints(c), Err(ProcError::NoSuchChannel));
    assert_eq!(mm.remaining(ContainerId::ROOT).unwrap(), before, "the quota is back with the root");
    assert_eq!(t.create(&mut mm, root, 8), Ok(child), "the pid is given again");
    assert_eq!(t.destroy(&mut mm, grandchild).unwrap_err(), ProcError::NoSuchProcess, "a stale pid");
}
