//! Channels between VMs' processes: a peer is named by its VM id.
use super::*;
use crate::proc::{CHAN_CAPACITY, MSG_SIZE};

/// A process with a VM, and that VM's id (the peer name others use).
fn with_vm() -> (Process, u32) {
    let p = Process::new(QUOTA);
    let vm = sys_vm_create(p.caller()).expect("a VM");
    (p, u32::from(vm.0))
}

/// The next message `to` has from `from`'s VM, as bytes.
fn recv(to: &Process, from_vm: u32) -> SysResult<Vec<u8>> {
    let mut buf = [0u8; MSG_SIZE];
    sys_chan_recv(to.caller(), from_vm, &mut buf).map(|n| buf[..n].to_vec())
}

#[test]
fn a_message_goes_to_the_process_that_owns_the_peer_vm() {
    let _k = kernel();
    let ((a, vm_a), (b, vm_b)) = (with_vm(), with_vm());
    sys_chan_send(a.caller(), vm_b, b"to B").unwrap();
    sys_chan_send(a.caller(), vm_b, b"again").unwrap();
    assert_eq!(recv(&a, vm_b), Err(SysError::WouldBlock), "the channel B -> A is another, empty");
    assert_eq!(recv(&b, vm_a).as_deref(), Ok(&b"to B"[..]));
    assert_eq!(recv(&b, vm_a).as_deref(), Ok(&b"again"[..]));
    assert_eq!(recv(&b, vm_a), Err(SysError::WouldBlock), "drained");
}

#[test]
fn a_peer_that_is_not_a_vm_is_a_bad_argument() {
    let _k = kernel();
    let (a, vm_a) = with_vm();
    let free = (0..MAX_VMS as u32).find(|&id| vm_owner(id).is_err()).expect("a free VM slot");
    for peer in [free, MAX_VMS as u32, u32::MAX] {
        assert_eq!(sys_chan_send(a.caller(), peer, b"x"), Err(SysError::BadArgument), "send to {peer}");
        assert_eq!(sys_chan_recv(a.caller(), peer, &mut [0; 8]), Err(SysError::BadArgument), "recv from {peer}");
    }
    assert_eq!(recv(&a, vm_a), Err(SysError::WouldBlock), "nothing was sent anywhere");
}

#[test]
fn a_full_channel_refuses_more_and_oversized_messages_are_refused() {
    let _k = kernel();
    let ((a, vm_a), (b, vm_b)) = (with_vm(), with_vm());
    assert_eq!(sys_chan_send(a.caller(), vm_b, &[0; MSG_SIZE + 1]), Err(SysError::TooBig));
    for i in 0..CHAN_CAPACITY {
        sys_chan_send(a.caller(), vm_b, &[i as u8]).unwrap_or_else(|e| panic!("message {i}: {e:?}"));
    }
    assert_eq!(sys_chan_send(a.caller(), vm_b, b"one more"), Err(SysError::WouldBlock));
    sys_chan_send(a.caller(), vm_b, &[0; 0]).expect_err("still full for an empty message");
    assert_eq!(sys_chan_recv(b.caller(), vm_a, &mut [0; 0]), Err(SysError::TooBig), "a buffer too small");
    assert_eq!(recv(&b, vm_a), Ok(vec![0]), "the message refused for the small buffer is still first");
}

#[test]
fn an_ended_processs_channels_do_not_pass_to_the_next_process_with_its_pid() {
    let _k = kernel();
    let ((b, vm_b), (c, vm_c)) = (with_vm(), with_vm());
    let (a, _) = with_vm();
    let pid = a.pid;
    sys_chan_send(a.caller(), vm_b, b"from the old A").unwrap();
    drop(a);
    let (a2, vm_a2) = with_vm();
    assert_eq!(a2.pid, pid, "the pid is reused");
    // A2's first channel, to C, may take the slot of the old A's channel to B.
    sys_chan_send(a2.caller(), vm_c, b"for C").unwrap();
    sys_chan_send(a2.caller(), vm_b, b"for B").unwrap();
    assert_eq!(recv(&c, vm_a2).as_deref(), Ok(&b"for C"[..]));
    assert_eq!(recv(&c, vm_a2), Err(SysError::WouldBlock), "C got nothing meant for B");
    assert_eq!(recv(&b, vm_a2).as_deref(), Ok(&b"for B"[..]), "B got only the new A's message");
}
