//! Refinement tests of the frame table and the containers against
//! [`super::spec`], and unit tests of the kernel-sized instance.
use super::spec::{ContainerSpec, FrameSpec, MmSpec};
use super::*;
use proptest::prelude::*;
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};
use std::collections::BTreeMap;

/// Test tables cover 2 * 64 = 128 frames (512 KiB).
const W: usize = 2;
const CAP: u64 = 64 * W as u64;

/// Regions whose ends are often, but not always, frame-aligned, and which
/// sometimes reach past the table's limit or are empty.
fn range() -> impl Strategy<Value = PhysRange> {
    let edge = prop_oneof![
        3 => (0..CAP + 16).prop_map(|n| n * FRAME_SIZE),
        1 => 0..(CAP + 16) * FRAME_SIZE,
    ];
    (edge.clone(), edge).prop_map(|(a, b)| PhysRange::new(a, b))
}

fn memory_map() -> impl Strategy<Value = (Vec<PhysRange>, Vec<PhysRange>)> {
    (proptest::collection::vec(range(), 0..4), proptest::collection::vec(range(), 0..4))
}

fn frame() -> impl Strategy<Value = Frame> {
    (0..CAP + 4).prop_map(|n| Frame::from_number(n).unwrap())
}

fn frame_abstraction(t: &FrameTable<W>) -> FrameSpec {
    let mut s = FrameSpec::default();
    for n in 0..CAP + 8 {
        let f = Frame::from_number(n).unwrap();
        if t.is_managed(f) {
            s.managed.insert(f);
        }
        if let Some(tag) = t.owner(f) {
            s.owner.insert(f, tag);
        }
    }
    s
}

// ---- frame table -------------------------------------------------------

#[derive(Debug, Clone)]
enum FrameOp {
    Palloc(u16),
    Pfree(Frame),
    PallocRun(u16, usize, usize),
    PfreeRun(Frame, usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum FrameOut {
    Palloc(Result<Frame, MmError>),
    Pfree(Result<u16, MmError>),
}

/// Run lengths and alignments: mostly small, sometimes 0 (an error).
fn run_shape() -> impl Strategy<Value = (usize, usize)> {
    (
        prop_oneof![1 => Just(0usize), 8 => 1..6usize, 1 => 6..40usize],
        prop_oneof![1 => Just(0usize), 8 => 1..5usize, 1 => Just(8usize)],
    )
}

#[derive(Debug, Clone)]
struct FrameModel {
    usable: Vec<PhysRange>,
    reserved: Vec<PhysRange>,
    spec: FrameSpec,
    last: Option<FrameOut>,
}

struct FrameRef;

impl ReferenceStateMachine for FrameRef {
    type State = FrameModel;
    type Transition = FrameOp;

    fn init_state() -> BoxedStrategy<FrameModel> {
        memory_map()
            .prop_map(|(usable, reserved)| FrameModel {
                spec: FrameSpec::from_map(&usable, &reserved, CAP),
                usable,
                reserved,
                last: None,
            })
            .boxed()
    }

    fn transitions(m: &FrameModel) -> BoxedStrategy<FrameOp> {
        let owned: Vec<Frame> = m.spec.owner.keys().copied().collect();
        let tag = prop_oneof![8 => 0..4u16, 1 => Just(MAX_TAG), 1 => Just(MAX_TAG + 1)];
        let any_run = (frame(), 0..6usize).prop_map(|(f, n)| FrameOp::PfreeRun(f, n));
        let common = prop_oneof![
            3 => tag.clone().prop_map(FrameOp::Palloc),
            2 => (tag, run_shape()).prop_map(|(t, (n, a))| FrameOp::PallocRun(t, n, a)),
            1 => frame().prop_map(FrameOp::Pfree),
            1 => any_run,
        ];
        if owned.is_empty() {
            common.boxed()
        } else {
            prop_oneof![
                4 => common,
                2 => proptest::sample::select(owned.clone()).prop_map(FrameOp::Pfree),
                1 => (proptest::sample::select(owned), 1..4usize)
                    .prop_map(|(f, n)| FrameOp::PfreeRun(f, n)),
            ]
            .boxed()
        }
    }

    fn apply(mut m: FrameModel, op: &FrameOp) -> FrameModel {
        m.last = Some(match *op {
            FrameOp::Palloc(tag) => FrameOut::Palloc(m.spec.palloc(tag)),
            FrameOp::Pfree(f) => FrameOut::Pfree(m.spec.pfree(f)),
            FrameOp::PallocRun(t, n, a) => FrameOut::Palloc(m.spec.palloc_run(t, n, a)),
            FrameOp::PfreeRun(f, n) => FrameOut::Pfree(m.spec.pfree_run(f, n)),
        });
        m
    }
}

struct FrameTableRefinement;

impl StateMachineTest for FrameTableRefinement {
    type SystemUnderTest = Box<FrameTable<W>>;
    type Reference = FrameRef;

    fn init_test(m: &FrameModel) -> Self::SystemUnderTest {
        let mut t = Box::new(FrameTable::new());
        let report = t.init(&m.usable, &m.reserved);
        assert_eq!(
            report.managed_frames,
            m.spec.managed.len() as u64,
            "managed frames after init: spec expected {}, table reports {}",
            m.spec.managed.len(),
            report.managed_frames
        );
        t
    }

    fn apply(mut t: Self::SystemUnderTest, m: &FrameModel, op: FrameOp) -> Self::SystemUnderTest {
        let seen = match op {
            FrameOp::Palloc(tag) => FrameOut::Palloc(t.palloc(tag)),
            FrameOp::Pfree(f) => FrameOut::Pfree(t.pfree(f)),
            FrameOp::PallocRun(tag, n, a) => FrameOut::Palloc(t.palloc_run(tag, n, a)),
            FrameOp::PfreeRun(f, n) => FrameOut::Pfree(t.pfree_run(f, n)),
        };
        assert_eq!(Some(&seen), m.last.as_ref(), "result of {op:?}: spec expected {:?}, table gave {seen:?}", m.last);
        t
    }

    fn check_invariants(t: &Self::SystemUnderTest, m: &FrameModel) {
        assert_eq!(frame_abstraction(t), m.spec, "abstraction of the frame table (left) vs spec (right)");
        let free = m.spec.free_frames().count() as u64;
        assert_eq!(t.free_frames(), free, "free count: spec expected {free}, table says {}", t.free_frames());
    }
}

// ---- containers --------------------------------------------------------

#[derive(Debug, Clone)]
enum MmOp {
    Split(usize, u64),
    Alloc(usize),
    Free(usize, Frame),
    AllocRun(usize, usize, usize),
    FreeRun(usize, Frame, usize),
    Destroy(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum MmOut {
    Split(Result<usize, MmError>),
    Alloc(Result<Frame, MmError>),
    Free(Result<(), MmError>),
}

#[derive(Debug, Clone)]
struct MmModel {
    usable: Vec<PhysRange>,
    reserved: Vec<PhysRange>,
    /// `Some(q)`: the root's quota is overcommitted to `q`.
    root_quota: Option<u64>,
    spec: MmSpec,
    last: Option<MmOut>,
}

struct MmRef;

impl ReferenceStateMachine for MmRef {
    type State = MmModel;
    type Transition = MmOp;

    fn init_state() -> BoxedStrategy<MmModel> {
        (memory_map(), proptest::option::of(0..CAP + 32))
            .prop_map(|((usable, reserved), root_quota)| {
                let frames = FrameSpec::from_map(&usable, &reserved, CAP);
                let q = root_quota.unwrap_or(frames.managed.len() as u64);
                MmModel { spec: MmSpec::new(frames, q), usable, reserved, root_quota, last: None }
            })
            .boxed()
    }

    fn transitions(m: &MmModel) -> BoxedStrategy<MmOp> {
        let ids: Vec<usize> = m.spec.containers.keys().copied().collect();
        // Mostly existing containers, sometimes ids that do not exist.
        let c = prop_oneof![6 => proptest::sample::select(ids), 1 => 0..MAX_CONTAINERS + 2];
        let owned: Vec<(usize, Frame)> = m.spec.frames.owner.iter().map(|(f, t)| (*t as usize, *f)).collect();
        let free_owned = if owned.is_empty() {
            (c.clone(), frame()).prop_map(|(c, f)| MmOp::Free(c, f)).boxed()
        } else {
            prop_oneof![
                3 => proptest::sample::select(owned).prop_map(|(c, f)| MmOp::Free(c, f)),
                // Someone else's frame, a free one or an unmanaged one.
                1 => (c.clone(), frame()).prop_map(|(c, f)| MmOp::Free(c, f)),
            ]
            .boxed()
        };
        let runs = m.spec.frames.owner.iter().map(|(f, t)| (*t as usize, *f)).collect::<Vec<_>>();
        let free_run = if runs.is_empty() {
            (c.clone(), frame(), 0..4usize).prop_map(|(c, f, n)| MmOp::FreeRun(c, f, n)).boxed()
        } else {
            (proptest::sample::select(runs), 0..5usize).prop_map(|((c, f), n)| MmOp::FreeRun(c, f, n)).boxed()
        };
        prop_oneof![
            2 => (c.clone(), prop_oneof![0..8u64, 0..CAP + 8]).prop_map(|(c, q)| MmOp::Split(c, q)),
            4 => c.clone().prop_map(MmOp::Alloc),
            3 => free_owned,
            2 => (c.clone(), run_shape()).prop_map(|(c, (n, a))| MmOp::AllocRun(c, n, a)),
            1 => free_run,
            1 => c.prop_map(MmOp::Destroy),
        ]
        .boxed()
    }

    fn apply(mut m: MmModel, op: &MmOp) -> MmModel {
        m.last = Some(match *op {
            MmOp::Split(p, q) => MmOut::Split(m.spec.split(p, q)),
            MmOp::Alloc(c) => MmOut::Alloc(m.spec.alloc(c)),
            MmOp::Free(c, f) => MmOut::Free(m.spec.free(c, f)),
            MmOp::AllocRun(c, n, a) => MmOut::Alloc(m.spec.alloc_run(c, n, a)),
            MmOp::FreeRun(c, f, n) => MmOut::Free(m.spec.free_run(c, f, n)),
            MmOp::Destroy(c) => MmOut::Free(m.spec.destroy(c)),
        });
        m
    }
}

fn mm_abstraction(mm: &Mm<W>) -> MmSpec {
    let mut s = MmSpec { frames: frame_abstraction(mm.frames()), containers: BTreeMap::new() };
    for c in mm.containers() {
        let i = mm.info(c).expect("listed container has info");
        s.containers.insert(
            c.index(),
            ContainerSpec { parent: i.parent.map(ContainerId::index), quota: i.quota, usage: i.usage },
        );
    }
    s
}

struct MmRefinement;

impl StateMachineTest for MmRefinement {
    type SystemUnderTest = Box<Mm<W>>;
    type Reference = MmRef;

    fn init_test(m: &MmModel) -> Self::SystemUnderTest {
        let mut mm = Box::new(Mm::new());
        match m.root_quota {
            Some(q) => mm.init_with_root_quota(&m.usable, &m.reserved, q),
            None => mm.init(&m.usable, &m.reserved),
        };
        mm
    }

    fn apply(mut mm: Self::SystemUnderTest, m: &MmModel, op: MmOp) -> Self::SystemUnderTest {
        let id = ContainerId::from_index;
        let seen = match op {
            MmOp::Split(p, q) => MmOut::Split(mm.split(id(p), q).map(ContainerId::index)),
            MmOp::Alloc(c) => MmOut::Alloc(mm.alloc(id(c))),
            MmOp::Free(c, f) => MmOut::Free(mm.free(id(c), f)),
            MmOp::AllocRun(c, n, a) => MmOut::Alloc(mm.alloc_run(id(c), n, a)),
            MmOp::FreeRun(c, f, n) => MmOut::Free(mm.free_run(id(c), f, n)),
            MmOp::Destroy(c) => MmOut::Free(mm.destroy(id(c))),
        };
        assert_eq!(Some(&seen), m.last.as_ref(), "result of {op:?}: spec expected {:?}, mm gave {seen:?}", m.last);
        mm
    }

    fn check_invariants(mm: &Self::SystemUnderTest, m: &MmModel) {
        assert_eq!(mm_abstraction(mm), m.spec, "abstraction of mm (left) vs spec (right)");
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn frame_table_refines_frame_spec(sequential 1..150 => FrameTableRefinement);
    #[test]
    fn containers_refine_container_spec(sequential 1..150 => MmRefinement);
}

// ---- unit tests ----------------------------------------------------------

#[test]
fn split_fails_with_too_many_containers_after_the_table_fills() {
    let mut mm = Box::new(Mm::<W>::new());
    mm.init(&[PhysRange::new(0, CAP * FRAME_SIZE)], &[]);
    for i in 1..MAX_CONTAINERS {
        let c = mm.split(ContainerId::ROOT, 1);
        assert_eq!(c, Ok(ContainerId::from_index(i)), "split #{i}");
    }
    let seen = mm.split(ContainerId::ROOT, 0);
    assert_eq!(seen, Err(MmError::TooManyContainers), "split with a full table");
}

#[test]
fn child_quota_is_enforced_and_returns_after_free() {
    let mut mm = Box::new(Mm::<W>::new());
    mm.init(&[PhysRange::new(0, 16 * FRAME_SIZE)], &[]);
    let child = mm.split(ContainerId::ROOT, 2).unwrap();
    let a = mm.alloc(child).unwrap();
    let b = mm.alloc(child).unwrap();
    assert_eq!(mm.alloc(child), Err(MmError::OutOfQuota), "third alloc in a 2-frame container");
    assert_eq!(mm.free(ContainerId::ROOT, a), Err(MmError::NotOwner), "root freeing the child's frame");
    mm.free(child, a).unwrap();
    assert_eq!(mm.alloc(child), Ok(a), "the freed (lowest) frame comes back");
    assert_eq!(mm.info(ContainerId::ROOT).unwrap().usage, 2, "root usage counts the child's quota");
    let _ = b;
}

/// Captures log records of the current thread (tests run in parallel).
mod capture {
    use std::sync::{Mutex, Once};
    use std::thread::ThreadId;
    static RECORDS: Mutex<Vec<(ThreadId, log::Level, String)>> = Mutex::new(Vec::new());
    struct Capture;
    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, r: &log::Record<'_>) {
            let t = std::thread::current().id();
            RECORDS.lock().unwrap().push((t, r.level(), r.args().to_string()));
        }
        fn flush(&self) {}
    }
    static CAPTURE: Capture = Capture;
    pub fn install() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            let _ = log::set_logger(&CAPTURE);
            log::set_max_level(log::LevelFilter::Trace);
        });
    }
    pub fn warnings_of_this_thread() -> Vec<String> {
        let me = std::thread::current().id();
        let recs = RECORDS.lock().unwrap();
        recs.iter().filter(|(t, l, _)| *t == me && *l == log::Level::Warn).map(|(_, _, m)| m.clone()).collect()
    }
}

#[test]
fn freeing_a_frame_not_owned_is_refused_and_warned() {
    capture::install();
    let mut mm = Box::new(Mm::<W>::new());
    mm.init(&[PhysRange::new(0, 8 * FRAME_SIZE)], &[]);
    let child = mm.split(ContainerId::ROOT, 1).unwrap();
    let f = mm.alloc(ContainerId::ROOT).unwrap();
    assert_eq!(mm.free(child, f), Err(MmError::NotOwner), "child freeing the root's frame");
    let warnings = capture::warnings_of_this_thread();
    assert!(
        warnings.iter().any(|w| w.contains("does not own") && w.contains(&f.to_string())),
        "expected a warning naming frame {f}, saw {warnings:?}"
    );
    assert_eq!(mm.owner_of(f), Some(ContainerId::ROOT), "the frame still belongs to the root");
}

#[test]
fn kernel_sized_table_ignores_memory_above_4_gib_and_reserved_ranges() {
    static M: crate::sync::Lock<KernelMm> = crate::sync::Lock::new(Mm::new());
    let mut mm = M.lock();
    let usable = [
        PhysRange::new(0, 0x9_f000),
        PhysRange::new(0x10_0000, 0x2000_0000),
        PhysRange::new(0x1_0000_0000 - 0x10_0000, 0x1_4000_0000),
    ];
    let image = PhysRange::new(0x10_0000, 0x40_0000);
    let report = mm.init(&usable, &[PhysRange::LOW_MEMORY, image]);
    let expected = (0x2000_0000 - 0x40_0000) / FRAME_SIZE + 0x10_0000 / FRAME_SIZE;
    assert_eq!(report.managed_frames, expected, "frames managed below 4 GiB");
    assert_eq!(report.ignored_frames, 0x4000_0000 / FRAME_SIZE, "frames ignored above 4 GiB");
    let first = mm.alloc(ContainerId::ROOT).unwrap();
    assert_eq!(first.addr(), 0x40_0000, "the lowest free frame is just above the image");
    let top = Frame::from_addr(0xffff_f000).unwrap();
    assert!(mm.frames().is_free(top), "the last frame below 4 GiB is free");
    assert!(!mm.frames().is_managed(Frame::from_addr(0x1_0000_0000).unwrap()), "4 GiB is not managed");
}

#[test]
fn aligned_runs_skip_taken_frames_and_come_back_whole() {
    let mut mm = Box::new(Mm::<W>::new());
    mm.init(&[PhysRange::new(FRAME_SIZE, CAP * FRAME_SIZE)], &[]);
    let a = mm.alloc_run(ContainerId::ROOT, 3, 1).unwrap();
    assert_eq!(a.number(), 1, "first run starts at the lowest free frame");
    let b = mm.alloc_run(ContainerId::ROOT, 4, 8).unwrap();
    assert_eq!(b.number(), 8, "aligned run starts at the next multiple of 8");
    assert_eq!(mm.free_run(ContainerId::ROOT, a, 4), Err(MmError::NotOwner), "run reaching a free frame");
    mm.free_run(ContainerId::ROOT, a, 3).unwrap();
    assert_eq!(mm.alloc(ContainerId::ROOT).unwrap().number(), 1, "freed run is reused");
    assert_eq!(mm.alloc_run(ContainerId::ROOT, CAP as usize, 1), Err(MmError::OutOfQuota), "run beyond the quota");
    assert_eq!(
        mm.alloc_run(ContainerId::ROOT, 117, 1),
        Err(MmError::OutOfMemory),
        "116 frames free, but not 117 in a row"
    );
}

#[test]
fn bad_input_gives_errors_not_panics() {
    let mut mm = Box::new(Mm::<W>::new());
    let c = ContainerId::from_index(9999);
    assert_eq!(mm.alloc(ContainerId::ROOT), Err(MmError::NoSuchContainer), "alloc before init");
    mm.init(&[PhysRange::new(5 * FRAME_SIZE, 0), PhysRange::new(u64::MAX - 10, u64::MAX)], &[]);
    assert_eq!(mm.alloc(c), Err(MmError::NoSuchContainer), "alloc in a bogus container");
    assert_eq!(mm.split(c, 1), Err(MmError::NoSuchContainer), "split of a bogus container");
    assert_eq!(mm.split(ContainerId::ROOT, u64::MAX), Err(MmError::OutOfQuota), "split beyond the root's quota");
    let far = Frame::from_addr(!0xfff).unwrap();
    assert_eq!(mm.free(ContainerId::ROOT, far), Err(MmError::NotOwner), "free of a frame beyond the table");
    assert_eq!(mm.alloc(ContainerId::ROOT), Err(MmError::OutOfQuota), "alloc with no memory at all");
}

/// Found by `containers_refine_container_spec`: a reserved range whose end
/// lies below its start (a broken memory map) covers nothing, in the table
/// and in the spec alike.
#[test]
fn an_inverted_reserved_range_reserves_nothing_in_table_and_spec() {
    let usable = [PhysRange::new(0, CAP * FRAME_SIZE)];
    let reserved = [PhysRange { start: 53352, end: 53249 }];
    let mut t = Box::new(FrameTable::<W>::new());
    let report = t.init(&usable, &reserved);
    let spec = FrameSpec::from_map(&usable, &reserved, CAP);
    assert_eq!(report.managed_frames, CAP, "the table manages every frame");
    assert_eq!(spec.managed.len() as u64, CAP, "the spec agrees");
    assert_eq!(frame_abstraction(&t), spec);
}
