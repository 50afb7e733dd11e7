//! Refinement of [`spec::RwSpec`] by [`RwTicket`], loom model checks of
//! [`RwLock`], and unit tests of it.
use super::spec::{LockSpecError, Party, RwSpec};
use super::*;
use proptest::prelude::*;
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};
use std::collections::BTreeSet;
use std::vec::Vec;

const PARTIES: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    TryRead(Party),
    ReadRelease(Party),
    TakeWriteTicket(Party),
    TryEnterWrite(Party),
    WriteRelease(Party),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Read(bool),
    Done(Result<(), LockSpecError>),
    Entered(bool),
}

#[derive(Debug, Clone)]
struct Model {
    spec: RwSpec,
    last: Option<Outcome>,
}

struct RwModel;

impl ReferenceStateMachine for RwModel {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model { spec: RwSpec::default(), last: None }).boxed()
    }

    fn transitions(_: &Model) -> BoxedStrategy<Op> {
        let p = 0..PARTIES;
        prop_oneof![
            p.clone().prop_map(Op::TryRead),
            p.clone().prop_map(Op::ReadRelease),
            p.clone().prop_map(Op::TakeWriteTicket),
            p.clone().prop_map(Op::TryEnterWrite),
            p.prop_map(Op::WriteRelease),
        ]
        .boxed()
    }

    /// A party is a reader or a writer (holding a ticket) or neither; it
    /// releases only what it holds (the guards enforce this in the kernel).
    fn preconditions(m: &Model, op: &Op) -> bool {
        let s = &m.spec;
        let idle = |p| !s.readers.contains(&p) && !s.writers.is_queued(p);
        match *op {
            Op::TryRead(p) | Op::TakeWriteTicket(p) => idle(p),
            Op::ReadRelease(p) => s.readers.contains(&p),
            Op::TryEnterWrite(p) | Op::WriteRelease(p) => s.writers.is_queued(p),
        }
    }

    fn apply(mut m: Model, op: &Op) -> Model {
        let s = &mut m.spec;
        m.last = Some(match *op {
            Op::TryRead(p) => Outcome::Read(s.try_read(p)),
            Op::ReadRelease(p) => Outcome::Done(s.read_release(p)),
            Op::TakeWriteTicket(p) => {
                s.take_write_ticket(p);
                Outcome::Done(Ok(()))
            }
            Op::TryEnterWrite(p) => Outcome::Entered(s.try_enter_write(p)),
            Op::WriteRelease(p) => Outcome::Done(s.write_release(p)),
        });
        m
    }
}

struct Impl {
    lock: RwTicket,
    tickets: Vec<Option<Ticket>>,
    readers: BTreeSet<Party>,
    writing: Option<Party>,
}

/// The spec state the implementation's state means.
fn abstraction(i: &Impl) -> RwSpec {
    let (inside, closed) = i.lock.state();
    assert_eq!(inside as usize, i.readers.len(), "readers counted in the lock word vs readers that entered");
    let writers = super::tests::queue_abstraction(i.lock.writers(), &i.tickets);
    RwSpec { readers: i.readers.clone(), writers, closed, writing: i.writing }
}

struct RwRefinement;

impl StateMachineTest for RwRefinement {
    type SystemUnderTest = Impl;
    type Reference = RwModel;

    fn init_test(_: &Model) -> Impl {
        Impl {
            lock: RwTicket::new(),
            tickets: (0..PARTIES).map(|_| None).collect(),
            readers: BTreeSet::new(),
            writing: None,
        }
    }

    fn apply(mut i: Impl, m: &Model, op: Op) -> Impl {
        let seen = match op {
            Op::TryRead(p) => {
                let ok = i.lock.try_read();
                if ok {
                    i.readers.insert(p);
                }
                Outcome::Read(ok)
            }
            Op::ReadRelease(p) => {
                i.lock.read_release();
                i.readers.remove(&p);
                Outcome::Done(Ok(()))
            }
            Op::TakeWriteTicket(p) => {
                i.tickets[p] = Some(i.lock.take_write_ticket());
                Outcome::Done(Ok(()))
            }
            Op::TryEnterWrite(p) => {
                let t = i.tickets[p].as_ref().expect("precondition: a ticket");
                let entered = i.lock.try_enter_write(t);
                if entered {
                    i.writing = Some(p);
                }
                Outcome::Entered(entered)
            }
            Op::WriteRelease(p) => {
                let t = i.tickets[p].take().expect("precondition: a ticket");
                Outcome::Done(match i.lock.write_release(t) {
                    Ok(()) => {
                        i.writing = None;
                        Ok(())
                    }
                    Err(t) => {
                        i.tickets[p] = Some(t);
                        Err(LockSpecError::NotHolder)
                    }
                })
            }
        };
        assert_eq!(
            Some(&seen),
            m.last.as_ref(),
            "result of {op:?}: spec expected {:?}, the lock gave {seen:?}",
            m.last
        );
        i
    }

    fn check_invariants(i: &Impl, m: &Model) {
        assert_eq!(abstraction(i), m.spec, "abstraction of the lock (left) differs from the spec (right)");
        assert!(m.spec.writing.is_none() || m.spec.readers.is_empty(), "a writer inside with readers: {:?}", m.spec);
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn rw_ticket_refines_writers_first_rw_spec(sequential 1..40 => RwRefinement);
}

#[test]
fn a_writer_waits_for_readers_inside_and_keeps_new_ones_out() {
    let l = RwLock::new(1u32);
    let r = l.read();
    let raw = &l.raw_for_tests();
    let t = raw.take_write_ticket();
    assert!(!raw.try_enter_write(&t), "a reader is inside: the writer waits");
    assert!(l.try_read().is_none(), "the door is closed to a new reader");
    assert_eq!(*r, 1, "the reader inside still reads");
    drop(r);
    assert!(raw.try_enter_write(&t), "the reader left: the writer is alone");
    assert!(raw.write_release(t).is_ok());
    assert_eq!(l.try_read().as_deref(), Some(&1), "the door is open again");
}

#[test]
fn rw_lock_keeps_writes_whole_against_std_threads_reading() {
    static L: RwLock<(u64, u64)> = RwLock::new((0, 0));
    let writers: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(|| {
                for _ in 0..5_000 {
                    let mut g = L.write();
                    g.0 += 1;
                    g.1 += 1;
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(|| {
                for _ in 0..5_000 {
                    let g = L.read();
                    assert_eq!(g.0, g.1, "a reader saw half a write");
                }
            })
        })
        .collect();
    for t in writers.into_iter().chain(readers) {
        t.join().unwrap();
    }
    assert_eq!(*L.read(), (10_000, 10_000), "every write counted once");
}

mod loom {
    //! The blocking lock on loom's atomics: a writer's two stores are never
    //! seen half done by a reader, two writers never overlap, and the
    //! nudge runs once, after the door is closed.
    use super::super::{LoomAtomics, RwLock};
    use loom::sync::atomic::{AtomicU32, Ordering::Relaxed};
    use loom::sync::Arc;

    struct Shared {
        lock: RwLock<(), LoomAtomics>,
        a: AtomicU32,
        b: AtomicU32,
        nudges: AtomicU32,
    }

    fn shared() -> Arc<Shared> {
        Arc::new(Shared {
            lock: RwLock::with_atomics(()),
            a: AtomicU32::new(0),
            b: AtomicU32::new(0),
            nudges: AtomicU32::new(0),
        })
    }

    fn write(s: &Shared) {
        let _g = s.lock.write_nudging(|| {
            s.nudges.fetch_add(1, Relaxed);
        });
        let a = s.a.load(Relaxed);
        s.a.store(a + 1, Relaxed);
        let b = s.b.load(Relaxed);
        s.b.store(b + 1, Relaxed);
    }

    #[test]
    fn loom_a_reader_never_sees_half_a_write() {
        loom::model(|| {
            let s = shared();
            let w = {
                let s = s.clone();
                loom::thread::spawn(move || write(&s))
            };
            {
                let _g = s.lock.read();
                let (a, b) = (s.a.load(Relaxed), s.b.load(Relaxed));
                assert_eq!(a, b, "a reader saw a={a} b={b}: half a write");
            }
            w.join().unwrap();
            assert_eq!(s.nudges.load(Relaxed), 1, "the nudge runs once");
        });
    }

    #[test]
    fn loom_two_writers_never_overlap() {
        loom::model(|| {
            let s = shared();
            let w = {
                let s = s.clone();
                loom::thread::spawn(move || write(&s))
            };
            write(&s);
            w.join().unwrap();
            let (a, b) = (s.a.load(Relaxed), s.b.load(Relaxed));
            assert_eq!((a, b), (2, 2), "lost update: two writers were inside at once");
        });
    }
}
