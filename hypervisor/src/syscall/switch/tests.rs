//! The switch's forwarding, flooding and queue limits, and its refinement
//! of [`super::spec`].
use super::spec::SwitchSpec;
use super::*;
use proptest::prelude::*;
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};
use std::vec::Vec;

/// Small enough to fill in a test: 4 ports of 8 frames (a share of 4).
const P: usize = 4;
const D: usize = 8;
type Small = Switch<P, D>;
const SHARE: usize = Small::SHARE;
const BROADCAST: MacAddr = [0xff; 6];

fn pid(n: usize) -> Pid {
    Pid::from_index(n)
}

/// A frame from `src` to `dst`: the header, then `payload` bytes counting
/// from `seed`.
fn frame(dst: MacAddr, src: MacAddr, seed: u8, payload: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend((0..payload).map(|i| seed.wrapping_add(i as u8)));
    f
}

/// Port `from`'s frame to port `to`.
fn unicast(from: usize, to: usize, seed: u8) -> Vec<u8> {
    frame(mac_of(to), mac_of(from), seed, 46)
}

/// Every frame waiting for `port`, taken in order.
fn drain(s: &mut Small, owner: Pid, port: usize) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    while let Some(n) = s
        .recv(owner, port, |f| {
            got.push(f.to_vec());
            Ok(())
        })
        .unwrap()
    {
        assert_eq!(n, got.last().unwrap().len(), "the length returned is the frame's");
    }
    got
}

/// A switch with ports 0..n open, port i owned by process i.
fn opened(n: usize) -> Box<Small> {
    let mut s = Box::new(Small::new());
    for i in 0..n {
        assert_eq!(s.open(pid(i)), Ok(i), "the lowest free port opens");
    }
    s
}

#[test]
fn a_unicast_frame_reaches_only_the_port_with_its_destination_mac() {
    let mut s = opened(3);
    s.send(pid(0), 0, &unicast(0, 2, 7)).unwrap();
    assert_eq!(drain(&mut s, pid(2), 2), vec![unicast(0, 2, 7)], "port 2 got the frame");
    assert!(drain(&mut s, pid(1), 1).is_empty(), "port 1 got nothing");
    assert!(drain(&mut s, pid(0), 0).is_empty(), "and the sender nothing back");
    assert_eq!(s.info(pid(0), 0).unwrap().stats.tx_frames, 1);
    assert_eq!(s.info(pid(2), 2).unwrap().stats.rx_frames, 1);
}

#[test]
fn a_send_names_the_owners_it_reached_so_their_cpus_can_be_woken() {
    let mut s = opened(3);
    let before = s.queue_lengths();
    s.send(pid(0), 0, &unicast(0, 2, 1)).unwrap();
    assert_eq!(s.reached_since(&before).collect::<Vec<_>>(), vec![pid(2)], "unicast: its receiver only");
    let before = s.queue_lengths();
    s.send(pid(1), 1, &frame(BROADCAST, mac_of(1), 0, 10)).unwrap();
    assert_eq!(s.reached_since(&before).collect::<Vec<_>>(), vec![pid(0), pid(2)], "broadcast: every other port");
    let before = s.queue_lengths();
    s.send(pid(0), 0, &unicast(0, 3, 0)).unwrap();
    assert_eq!(s.reached_since(&before).count(), 0, "a frame for no port reaches nobody");
}

#[test]
fn broadcast_and_multicast_flood_to_every_other_port() {
    let mut s = opened(3);
    let bcast = frame(BROADCAST, mac_of(1), 1, 50);
    let mcast = frame([0x01, 0x00, 0x5e, 0, 0, 1], mac_of(1), 2, 50);
    s.send(pid(1), 1, &bcast).unwrap();
    s.send(pid(1), 1, &mcast).unwrap();
    for port in [0, 2] {
        assert_eq!(drain(&mut s, pid(port), port), vec![bcast.clone(), mcast.clone()], "port {port}");
    }
    assert!(drain(&mut s, pid(1), 1).is_empty(), "nothing back to the sender");
    assert_eq!(s.info(pid(1), 1).unwrap().stats.tx_frames, 2, "a flooded frame counts once");
}

#[test]
fn frames_to_an_unknown_mac_or_with_a_forged_source_are_dropped_and_counted() {
    let mut s = opened(2);
    s.send(pid(0), 0, &unicast(0, 3, 0)).unwrap(); // port 3 is closed
    s.send(pid(0), 0, &unicast(0, 0, 0)).unwrap(); // to itself
    s.send(pid(0), 0, &unicast(1, 1, 0)).unwrap(); // port 1's source MAC
    s.send(pid(0), 0, &frame(BROADCAST, mac_of(1), 0, 10)).unwrap();
    assert!(drain(&mut s, pid(1), 1).is_empty(), "port 1 got nothing");
    let st = s.info(pid(0), 0).unwrap().stats;
    assert_eq!((st.tx_frames, st.tx_no_port, st.tx_spoofed), (2, 2, 2), "sent, no port, spoofed");
}

#[test]
fn a_flooder_holds_at_most_half_of_a_queue_and_another_sender_still_gets_through() {
    let mut s = opened(3);
    for i in 0..3 * D {
        s.send(pid(0), 0, &unicast(0, 2, i as u8)).unwrap();
    }
    assert_eq!(s.queued(2), SHARE, "the flooder's frames in port 2's queue");
    assert_eq!(s.info(pid(2), 2).unwrap().stats.rx_dropped_share, (3 * D - SHARE) as u64);
    for i in 0..SHARE {
        s.send(pid(1), 1, &unicast(1, 2, i as u8)).unwrap();
    }
    assert_eq!(s.queued(2), D, "the other sender's frames all found room");
    let got = drain(&mut s, pid(2), 2);
    let from_1 = got.iter().filter(|f| f[6..12] == mac_of(1)).count();
    assert_eq!(from_1, SHARE, "port 1's frames delivered");
    s.send(pid(0), 0, &unicast(0, 2, 0)).unwrap();
    assert_eq!(s.queued(2), 1, "taking the frames gives the flooder its share back");
}

#[test]
fn a_full_queue_drops_and_counts_without_refusing_the_sender() {
    let mut s = opened(4);
    // Senders 0 and 1 fill port 3 with their shares; 2's frame finds it full.
    for from in [0, 1] {
        for i in 0..SHARE {
            s.send(pid(from), from, &unicast(from, 3, i as u8)).unwrap();
        }
    }
    assert_eq!(s.send(pid(2), 2, &unicast(2, 3, 9)), Ok(()), "the sender is not refused");
    let st = s.info(pid(3), 3).unwrap().stats;
    assert_eq!((s.queued(3), st.rx_dropped_full, st.rx_dropped_share), (D, 1, 0));
    assert_eq!(s.info(pid(2), 2).unwrap().stats.tx_frames, 1, "the frame left its sender");
}

#[test]
fn a_frame_that_cannot_be_taken_stays_queued() {
    let mut s = opened(2);
    s.send(pid(0), 0, &unicast(0, 1, 3)).unwrap();
    assert_eq!(s.recv(pid(1), 1, |_| Err(SysError::BadGuestAddress)), Err(SysError::BadGuestAddress));
    assert_eq!(drain(&mut s, pid(1), 1), vec![unicast(0, 1, 3)], "still there, whole");
}

#[test]
fn sizes_owners_and_closed_ports_are_checked() {
    let mut s = opened(2);
    let long = frame(mac_of(1), mac_of(0), 0, MAX_FRAME - 14 + 1);
    assert_eq!(s.send(pid(0), 0, &long), Err(SysError::TooBig));
    assert_eq!(s.send(pid(0), 0, &long[..MIN_FRAME - 1]), Err(SysError::BadArgument));
    assert_eq!(s.send(pid(0), 0, &long[..MAX_FRAME]), Ok(()), "the longest frame");
    assert_eq!(s.send(pid(0), 0, &long[..MIN_FRAME]), Ok(()), "the shortest");
    assert_eq!(s.send(pid(1), 0, &unicast(0, 1, 0)), Err(SysError::NotOwner));
    assert_eq!(s.recv(pid(0), 1, |_| Ok(())), Err(SysError::NotOwner));
    assert_eq!(s.info(pid(1), 0).map(drop), Err(SysError::NotOwner));
    assert_eq!(s.send(pid(0), P, &unicast(0, 1, 0)), Err(SysError::NoSuchObject), "out of range");
    assert_eq!(s.recv(pid(0), 2, |_| Ok(())), Err(SysError::NoSuchObject), "never opened");
    s.close_all(pid(1));
    assert_eq!(s.recv(pid(1), 1, |_| Ok(())), Err(SysError::NoSuchObject), "closed");
    assert_eq!(s.open(pid(5)), Ok(1), "its number is reused");
    assert_eq!(s.queued(1), 0, "with an empty queue");
}

#[test]
fn the_ports_run_out() {
    let mut s = opened(P);
    assert_eq!(s.open(pid(9)), Err(SysError::NoSlot));
}

/// One operation on the switch; ports and owners are small numbers so
/// that they hit, miss and collide.
#[derive(Debug, Clone)]
enum Op {
    Open(usize),
    CloseAll(usize),
    Info(usize, usize),
    /// caller, port, destination port (P: broadcast), forged source, seed, payload length
    Send(usize, usize, usize, bool, u8, usize),
    /// caller, port, room for the frame
    Recv(usize, usize, usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Port(SysResult<usize>),
    Info(SysResult<NetPortInfo>),
    Sent(SysResult<()>),
    Got(SysResult<Option<Vec<u8>>>),
    Done,
}

fn send_frame(port: usize, to: usize, forged: bool, seed: u8, payload: usize) -> Vec<u8> {
    let dst = if to == P { BROADCAST } else { mac_of(to) };
    let src = if forged { mac_of(port + 1) } else { mac_of(port) };
    frame(dst, src, seed, payload)
}

#[derive(Debug, Clone)]
struct Model {
    spec: SwitchSpec,
    last: Option<Out>,
}

struct Ref;

impl ReferenceStateMachine for Ref {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model { spec: SwitchSpec::new(P, D), last: None }).boxed()
    }

    fn transitions(m: &Model) -> BoxedStrategy<Op> {
        let owners: Vec<(usize, usize)> = m.spec.open.iter().map(|(n, p)| (p.owner.index(), *n)).collect();
        let owner = 0..4usize;
        let port = 0..P + 1;
        let payload = prop_oneof![6 => 0..64usize, 1 => Just(MAX_FRAME - 14), 1 => Just(MAX_FRAME - 13)];
        let room = prop_oneof![4 => Just(MAX_FRAME), 1 => 0..80usize];
        let any_send = (owner.clone(), port.clone(), 0..P + 1, any::<bool>(), any::<u8>(), payload.clone())
            .prop_map(|(c, p, to, f, s, l)| Op::Send(c, p, to, f, s, l));
        let any_recv = (owner.clone(), port.clone(), room.clone()).prop_map(|(c, p, r)| Op::Recv(c, p, r));
        let rare = prop_oneof![
            (owner.clone()).prop_map(Op::Open),
            owner.clone().prop_map(Op::CloseAll),
            (owner, port).prop_map(|(c, p)| Op::Info(c, p)),
            any_send,
            any_recv,
        ];
        if owners.is_empty() {
            return rare.boxed();
        }
        // Mostly calls by a port's owner, so that frames flow and queues fill.
        let mine = proptest::sample::select(owners);
        let flowing = prop_oneof![
            5 => (mine.clone(), 0..P + 1, proptest::bool::weighted(0.05), any::<u8>(), payload)
                .prop_map(|((c, p), to, f, s, l)| Op::Send(c, p, to, f, s, l)),
            3 => (mine, room).prop_map(|((c, p), r)| Op::Recv(c, p, r)),
        ];
        prop_oneof![3 => flowing, 1 => rare].boxed()
    }

    fn apply(mut m: Model, op: &Op) -> Model {
        let s = &mut m.spec;
        m.last = Some(match *op {
            Op::Open(c) => Out::Port(s.open(pid(c))),
            Op::CloseAll(c) => {
                s.close_all(pid(c));
                Out::Done
            }
            Op::Info(c, p) => Out::Info(s.info(pid(c), p)),
            Op::Send(c, p, to, f, seed, l) => Out::Sent(s.send(pid(c), p, &send_frame(p, to, f, seed, l))),
            Op::Recv(c, p, room) => Out::Got(s.recv(pid(c), p, room)),
        });
        m
    }
}

struct SwitchRefinement;

impl StateMachineTest for SwitchRefinement {
    type SystemUnderTest = Box<Small>;
    type Reference = Ref;

    fn init_test(_: &Model) -> Box<Small> {
        Box::new(Small::new())
    }

    fn apply(mut sut: Box<Small>, m: &Model, op: Op) -> Box<Small> {
        let seen = match op {
            Op::Open(c) => Out::Port(sut.open(pid(c))),
            Op::CloseAll(c) => {
                sut.close_all(pid(c));
                Out::Done
            }
            Op::Info(c, p) => Out::Info(sut.info(pid(c), p)),
            Op::Send(c, p, to, f, seed, l) => Out::Sent(sut.send(pid(c), p, &send_frame(p, to, f, seed, l))),
            Op::Recv(c, p, room) => {
                let mut got = None;
                let r = sut.recv(pid(c), p, |f| {
                    if f.len() > room {
                        return Err(SysError::TooBig);
                    }
                    got = Some(f.to_vec());
                    Ok(())
                });
                Out::Got(r.map(|n| n.and(got)))
            }
        };
        assert_eq!(Some(&seen), m.last.as_ref(), "result of {op:?}: spec expected {:?}, switch gave {seen:?}", m.last);
        sut
    }

    fn check_invariants(sut: &Box<Small>, m: &Model) {
        assert_eq!(sut.abstraction(), m.spec.open, "abstraction of the switch (left) vs spec (right)");
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn the_switch_refines_its_spec(sequential 1..120 => SwitchRefinement);
}
