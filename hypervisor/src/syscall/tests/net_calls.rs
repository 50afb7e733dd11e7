//! The calls on a switch port: each process is granted one, and frames
//! move between VMs' RAM through it.
use super::*;
use crate::syscall::switch::mac_of;
use sysabi::net::{GuestSpan, NetHandle, MAX_FRAME, MAX_SPANS, MIN_FRAME};

/// Where the tests put a frame to send, and where they receive one.
const TX_AT: u64 = 0x1000;
const RX_AT: u64 = 0x8000;
const RAM: u64 = 16 * PAGE;

/// A process with a VM of [`RAM`] bytes, and its port.
struct Nic {
    p: Process,
    vm: VmHandle,
}

impl Nic {
    fn new() -> Nic {
        let p = Process::new(QUOTA);
        let vm = sys_vm_create(p.caller()).expect("a VM");
        sys_npt_map(p.caller(), vm, 0, RAM).expect("its RAM");
        Nic { p, vm }
    }

    fn port(&self) -> NetHandle {
        self.p.grants.net
    }

    fn mac(&self) -> sysabi::MacAddr {
        mac_of(usize::from(self.port().0))
    }

    /// Writes `frame` at [`TX_AT`] and sends it as one span.
    fn send(&self, frame: &[u8]) -> SysResult<()> {
        sys_guest_write(self.p.caller(), self.vm, TX_AT, frame).unwrap();
        sys_net_send(self.p.caller(), self.port(), self.vm, &[span(TX_AT, frame.len())])
    }

    /// Receives the next frame at [`RX_AT`], as bytes.
    fn recv(&self) -> Option<Vec<u8>> {
        let n = sys_net_recv(self.p.caller(), self.port(), self.vm, &[span(RX_AT, MAX_FRAME)]).unwrap()?;
        let mut f = vec![0; n];
        sys_guest_read(self.p.caller(), self.vm, RX_AT, &mut f).unwrap();
        Some(f)
    }

    fn stats(&self) -> sysabi::NetStats {
        sys_net_info(self.p.caller(), self.port()).unwrap().stats
    }
}

fn span(gpa: u64, len: usize) -> GuestSpan {
    GuestSpan { gpa, len: len as u32 }
}

/// A frame to `dst` from `src` with `payload` bytes from `seed`.
fn frame(dst: sysabi::MacAddr, src: sysabi::MacAddr, seed: u8, payload: usize) -> Vec<u8> {
    let mut f = [dst, src].concat();
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend((0..payload).map(|i| seed.wrapping_add(i as u8)));
    f
}

/// Every call on a port, with the VM frames come from or go to.
const NET_CALLS: &[NamedCall<(NetHandle, VmHandle)>] = &[
    ("net_info", |c, (p, _)| sys_net_info(c, p).map(drop)),
    ("net_send", |c, (p, vm)| sys_net_send(c, p, vm, &[span(TX_AT, 60)])),
    ("net_recv", |c, (p, vm)| sys_net_recv(c, p, vm, &[span(RX_AT, MAX_FRAME)]).map(drop)),
];

#[test]
fn every_net_call_serves_the_ports_owner() {
    let _k = kernel();
    let a = Nic::new();
    let wrong = unexpected(NET_CALLS, a.p.caller(), (a.port(), a.vm), Ok(()));
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn every_net_call_refuses_another_process_with_not_owner() {
    let _k = kernel();
    let (a, b) = (Nic::new(), Nic::new());
    b.send(&frame(a.mac(), b.mac(), 0, 46)).unwrap();
    let wrong = unexpected(NET_CALLS, b.p.caller(), (a.port(), b.vm), Err(SysError::NotOwner));
    assert!(wrong.is_empty(), "B on A's port: {wrong:#?}");
    let wrong = unexpected(NET_CALLS[1..].as_ref(), a.p.caller(), (a.port(), b.vm), Err(SysError::NotOwner));
    assert!(wrong.is_empty(), "A's port with B's VM: {wrong:#?}");
    assert_eq!(a.recv(), Some(frame(a.mac(), b.mac(), 0, 46)), "A's frame was still waiting, whole");
}

#[test]
fn every_net_call_refuses_the_port_of_an_ended_process_and_one_never_granted() {
    let _k = kernel();
    let a = Nic::new();
    let (port, caller) = (a.port(), a.p.caller());
    let b = Nic::new();
    drop(a);
    let wrong = unexpected(NET_CALLS, caller, (port, b.vm), Err(SysError::NoSuchObject));
    assert!(wrong.is_empty(), "ended: {wrong:#?}");
    let c = Nic::new();
    assert_eq!(c.port(), port, "the next process gets the freed port");
    let wrong = unexpected(NET_CALLS, b.p.caller(), (port, b.vm), Err(SysError::NotOwner));
    assert!(wrong.is_empty(), "now another process's: {wrong:#?}");
    for h in [PORTS as u16, u16::MAX] {
        let wrong = unexpected(NET_CALLS, b.p.caller(), (NetHandle(h), b.vm), Err(SysError::NoSuchObject));
        assert!(wrong.is_empty(), "port {h}: {wrong:#?}");
    }
}

#[test]
fn bad_spans_and_sizes_are_refused_and_leave_the_frame_queued() {
    let _k = kernel();
    let (a, b) = (Nic::new(), Nic::new());
    let (c, port, vm) = (a.p.caller(), a.port(), a.vm);
    let too_many = [span(TX_AT, 4); MAX_SPANS + 1];
    assert_eq!(sys_net_send(c, port, vm, &too_many), Err(SysError::BadArgument), "too many spans");
    assert_eq!(sys_net_send(c, port, vm, &[span(TX_AT, MAX_FRAME + 1)]), Err(SysError::TooBig));
    assert_eq!(sys_net_send(c, port, vm, &[span(TX_AT, MIN_FRAME - 1)]), Err(SysError::BadArgument));
    assert_eq!(sys_net_send(c, port, vm, &[span(RAM - 10, 60)]), Err(SysError::BadGuestAddress), "past RAM");
    assert_eq!(a.stats(), sysabi::NetStats::default(), "nothing was sent");
    b.send(&frame(a.mac(), b.mac(), 5, 100)).unwrap();
    assert_eq!(sys_net_recv(c, port, vm, &[span(RX_AT, 113)]), Err(SysError::TooBig), "one byte short");
    assert_eq!(sys_net_recv(c, port, vm, &[span(RX_AT, 60), span(RAM - 4, 60)]), Err(SysError::BadGuestAddress));
    assert_eq!(sys_net_recv(c, port, vm, &too_many), Err(SysError::BadArgument));
    let mut untouched = [0u8; 60];
    sys_guest_read(c, vm, RX_AT, &mut untouched).unwrap();
    assert_eq!(untouched, [0; 60], "a refused receive wrote nothing");
    assert_eq!(a.recv(), Some(frame(a.mac(), b.mac(), 5, 100)), "the frame waited");
    assert_eq!(a.recv(), None);
}

#[test]
fn a_frame_moves_from_one_vms_ram_to_the_vm_with_its_destination_mac_only() {
    let _k = kernel();
    let (a, b, c) = (Nic::new(), Nic::new(), Nic::new());
    assert_eq!(sys_net_info(a.p.caller(), a.port()).unwrap().mac, a.mac());
    assert_eq!(a.mac()[..5], [0x52, 0x54, 0x00, 0x12, 0x34], "a locally administered unicast address");
    let f = frame(b.mac(), a.mac(), 9, 300);
    // Gathered from two spans, scattered into three.
    sys_guest_write(a.p.caller(), a.vm, TX_AT, &f[..100]).unwrap();
    sys_guest_write(a.p.caller(), a.vm, TX_AT + 0x1000, &f[100..]).unwrap();
    let from = [span(TX_AT, 100), span(TX_AT + 0x1000, f.len() - 100)];
    sys_net_send(a.p.caller(), a.port(), a.vm, &from).unwrap();
    let into = [span(RX_AT, 10), span(RX_AT + 0x1000, 200), span(RX_AT + 0x2000, 1000)];
    assert_eq!(sys_net_recv(b.p.caller(), b.port(), b.vm, &into), Ok(Some(f.len())));
    let mut got = vec![0; f.len()];
    sys_guest_read(b.p.caller(), b.vm, RX_AT, &mut got[..10]).unwrap();
    sys_guest_read(b.p.caller(), b.vm, RX_AT + 0x1000, &mut got[10..210]).unwrap();
    sys_guest_read(b.p.caller(), b.vm, RX_AT + 0x2000, &mut got[210..]).unwrap();
    assert_eq!(got, f, "B's RAM holds the frame A's RAM held");
    assert_eq!((c.recv(), a.recv()), (None, None), "C and the sender got nothing");
    assert_eq!((a.stats().tx_frames, b.stats().rx_frames), (1, 1));
}

#[test]
fn a_broadcast_reaches_every_other_vm() {
    let _k = kernel();
    let (a, b, c) = (Nic::new(), Nic::new(), Nic::new());
    let f = frame([0xff; 6], c.mac(), 1, 28);
    c.send(&f).unwrap();
    assert_eq!((a.recv(), b.recv(), c.recv()), (Some(f.clone()), Some(f), None));
}

#[test]
fn a_flooding_vm_fills_half_a_queue_and_another_vms_frames_still_arrive() {
    let _k = kernel();
    let (flooder, victim, other) = (Nic::new(), Nic::new(), Nic::new());
    for i in 0..2 * RX_DEPTH {
        flooder.send(&frame(victim.mac(), flooder.mac(), i as u8, 46)).unwrap();
    }
    for i in 0..RX_DEPTH / 2 {
        other.send(&frame(victim.mac(), other.mac(), i as u8, 46)).unwrap();
    }
    let st = victim.stats();
    assert_eq!((st.rx_dropped_share, st.rx_dropped_full), ((2 * RX_DEPTH - RX_DEPTH / 2) as u64, 0));
    let got: Vec<Vec<u8>> = std::iter::from_fn(|| victim.recv()).collect();
    let from_other = got.iter().filter(|f| f[6..12] == other.mac()).count();
    assert_eq!((got.len(), from_other), (RX_DEPTH, RX_DEPTH / 2), "frames received, of them from the other VM");
}
