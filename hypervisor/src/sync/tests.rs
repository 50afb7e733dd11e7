//! Refinement of [`spec::LockSpec`] by [`TicketLock`], plus unit tests of
//! [`Lock`].
use super::spec::{LockSpec, LockSpecError, Party};
use super::*;
use proptest::prelude::*;
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};

const PARTIES: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    TakeTicket(Party),
    TryAcquire(Party),
    IsTurn(Party),
    Release(Party),
}

/// What an operation returned, in the spec's vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Took,
    Acquired(bool),
    Turn(bool),
    Released(Result<(), LockSpecError>),
}

#[derive(Debug, Clone)]
struct Model {
    /// Where both ticket counters start.
    start: u32,
    spec: LockSpec,
    last: Option<Outcome>,
}

struct LockModel;

impl ReferenceStateMachine for LockModel {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Model> {
        prop_oneof![Just(0u32), (u32::MAX - 6..=u32::MAX), any::<u32>(),]
            .prop_map(|start| Model { start, spec: LockSpec::default(), last: None })
            .boxed()
    }

    fn transitions(_: &Model) -> BoxedStrategy<Op> {
        let p = 0..PARTIES;
        prop_oneof![
            p.clone().prop_map(Op::TakeTicket),
            p.clone().prop_map(Op::TryAcquire),
            p.clone().prop_map(Op::IsTurn),
            p.prop_map(Op::Release),
        ]
        .boxed()
    }

    /// A party holds at most one ticket; it can only ask about or release a
    /// ticket it has (the type system enforces this on the implementation).
    fn preconditions(m: &Model, op: &Op) -> bool {
        match *op {
            Op::TakeTicket(p) | Op::TryAcquire(p) => !m.spec.is_queued(p),
            Op::IsTurn(p) | Op::Release(p) => m.spec.is_queued(p),
        }
    }

    fn apply(mut m: Model, op: &Op) -> Model {
        m.last = Some(match *op {
            Op::TakeTicket(p) => {
                m.spec.take_ticket(p);
                Outcome::Took
            }
            Op::TryAcquire(p) => Outcome::Acquired(m.spec.try_acquire(p)),
            Op::IsTurn(p) => Outcome::Turn(m.spec.is_turn(p)),
            Op::Release(p) => Outcome::Released(m.spec.release(p)),
        });
        m
    }
}

struct Impl {
    lock: TicketLock,
    tickets: Vec<Option<Ticket>>,
}

/// The abstraction function: the spec state an implementation state means.
fn abstraction(i: &Impl) -> LockSpec {
    queue_abstraction(&i.lock, &i.tickets)
}

/// The FIFO lock a ticket lock is, given the ticket each party holds.
pub(super) fn queue_abstraction(lock: &TicketLock, tickets: &[Option<Ticket>]) -> LockSpec {
    let (next, now) = lock.counters();
    let mut queued: Vec<(u32, Party)> =
        tickets.iter().enumerate().filter_map(|(p, t)| t.as_ref().map(|t| (t.value().wrapping_sub(now), p))).collect();
    queued.sort();
    assert_eq!(
        next.wrapping_sub(now) as usize,
        queued.len(),
        "outstanding tickets: expected next-now={} to equal the tickets held ({:?})",
        next.wrapping_sub(now),
        queued
    );
    let mut spec = LockSpec::default();
    let mut it = queued.into_iter();
    if let Some((0, p)) = it.clone().next() {
        spec.holder = Some(p);
        it.next();
    }
    spec.waiters = it.map(|(_, p)| p).collect();
    spec
}

impl StateMachineTest for LockRefinement {
    type SystemUnderTest = Impl;
    type Reference = LockModel;

    fn init_test(m: &Model) -> Impl {
        Impl { lock: TicketLock::<CoreAtomics>::starting_at(m.start), tickets: (0..PARTIES).map(|_| None).collect() }
    }

    fn apply(mut i: Impl, m: &Model, op: Op) -> Impl {
        let seen = match op {
            Op::TakeTicket(p) => {
                i.tickets[p] = Some(i.lock.take_ticket());
                Outcome::Took
            }
            Op::TryAcquire(p) => {
                i.tickets[p] = i.lock.try_acquire();
                Outcome::Acquired(i.tickets[p].is_some())
            }
            Op::IsTurn(p) => Outcome::Turn(i.tickets[p].as_ref().is_some_and(|t| i.lock.is_turn(t))),
            Op::Release(p) => {
                let t = i.tickets[p].take().expect("precondition: party has a ticket");
                Outcome::Released(match i.lock.release(t) {
                    Ok(()) => Ok(()),
                    Err(NotHolder(t)) => {
                        i.tickets[p] = Some(t);
                        Err(LockSpecError::NotHolder)
                    }
                })
            }
        };
        assert_eq!(
            Some(&seen),
            m.last.as_ref(),
            "result of {op:?}: spec expected {:?}, ticket lock gave {seen:?}",
            m.last
        );
        i
    }

    fn check_invariants(i: &Impl, m: &Model) {
        let abs = abstraction(i);
        assert_eq!(abs, m.spec, "abstraction of the ticket lock (left) differs from the spec (right)");
    }
}

struct LockRefinement;

prop_state_machine! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn ticket_lock_refines_fifo_lock_spec(sequential 1..40 => LockRefinement);
}

#[test]
fn ticket_from_another_lock_cannot_release() {
    let a = TicketLock::new();
    let b = TicketLock::new();
    let t = a.acquire();
    let r = b.release(t);
    assert!(r.is_err(), "expected NotHolder for a foreign ticket, saw {r:?}");
    let NotHolder(t) = r.unwrap_err();
    assert_eq!(a.release(t), Ok(()), "expected the ticket back to release its own lock");
}

#[test]
fn try_lock_fails_while_held_and_succeeds_after_release() {
    let l = Lock::new(5u32);
    let g = l.lock();
    assert!(l.try_lock().is_none(), "expected try_lock to fail while the lock is held");
    drop(g);
    let g = l.try_lock();
    assert_eq!(g.as_deref(), Some(&5), "expected try_lock to succeed on a free lock");
}

#[test]
fn guard_releases_on_drop_and_counters_advance_across_wrap() {
    let l: Lock<u32> = Lock::starting_at(0, u32::MAX - 1);
    for i in 0..4 {
        let mut g = l.lock();
        *g += 1;
        assert_eq!(g.ticket(), (u32::MAX - 1).wrapping_add(i), "ticket of round {i}");
    }
    let (next, now) = l.raw().counters();
    assert_eq!((next, now), (2, 2), "counters after 4 rounds from MAX-1: expected (2, 2)");
    assert_eq!(*l.lock(), 4, "value after 4 increments");
}

#[test]
fn lock_serialises_std_threads() {
    static L: Lock<u64> = Lock::new(0);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                for _ in 0..10_000 {
                    let mut g = L.lock();
                    let v = *g;
                    *g = v + 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(*L.lock(), 40_000, "expected 4 x 10000 increments under the lock");
}
