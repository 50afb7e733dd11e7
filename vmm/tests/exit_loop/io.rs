//! Port I/O: the value moves between RAX and the port bus by width, and the
//! instruction completes at EXITINFO2.
use crate::fake::Call;
use crate::*;
use sysabi::{NextRipSource, Reg};
use vmcb::IoDirection::{In, Out};
use vmm::vcpu::Stop;

#[test]
fn out_byte_to_com1_sends_al_and_completes_at_exitinfo2() {
    let sys = protected_mode();
    let mut lp = vcpu_loop(&sys);
    sys.put(Reg::Rax, 0xDEAD_BE00 | u64::from(b'K'));
    sys.script([io_exit(0x3F8, 1, Out, CODE + 1)]);
    step_ok(&mut lp);
    let calls = sys.take_calls();
    let complete = Call::Complete { next_rip: CODE + 1, from: NextRipSource::IoExitInfo };
    assert!(calls.contains(&complete), "expected {complete:?} among {calls:?}");
    assert_eq!(sys.get(Reg::Rip), CODE + 1);
    let out = sys.state().console_out.clone();
    assert_eq!(out, b"K", "expected AL on the host console, saw {out:?}");
}

#[test]
fn in_merges_the_port_value_into_rax_by_width() {
    let sys = protected_mode();
    let mut lp = vcpu_loop(&sys);
    let before = 0x1111_2222_3333_4444u64;
    // (port, bytes, RAX after): 0xE9 reads 0xE9; 0x3FA/0x3FB read COM1's
    // IIR (0x01, no interrupt) and LCR (0x03, 8N1 as firmware leaves it);
    // 0x5555 is unassigned; IN to EAX zero-extends.
    for (port, bytes, expected) in [
        (0xE9, 1, 0x1111_2222_3333_44E9),
        (0x3FA, 2, 0x1111_2222_3333_0301),
        (0x5555, 2, 0x1111_2222_3333_FFFF),
        (0x5555, 4, 0x0000_0000_FFFF_FFFF),
    ] {
        sys.put(Reg::Rax, before);
        sys.script([io_exit(port, bytes, In, CODE + 2)]);
        step_ok(&mut lp);
        let rax = sys.get(Reg::Rax);
        assert_eq!(rax, expected, "in of {bytes} bytes from {port:#x}: expected RAX {expected:#x}, saw {rax:#x}");
    }
}

#[test]
fn out_word_to_8_bit_ports_writes_consecutive_registers() {
    let sys = protected_mode();
    let mut lp = vcpu_loop(&sys);
    // COM1's LCR (0x3FB) and MCR (0x3FC) in one word, read back the same way.
    sys.put(Reg::Rax, 0x0B03);
    sys.script([io_exit(0x3FB, 2, Out, CODE + 2), io_exit(0x3FB, 2, In, CODE + 4)]);
    step_ok(&mut lp);
    sys.put(Reg::Rax, 0);
    step_ok(&mut lp);
    assert_eq!(sys.get(Reg::Rax), 0x0B03, "expected LCR 0x03 and MCR 0x0B back");
}

#[test]
fn unassigned_ports_read_all_ones_and_are_tallied_once_per_access() {
    let sys = protected_mode();
    let mut lp = vcpu_loop(&sys);
    sys.script([io_exit(0x2E, 1, In, CODE + 2), io_exit(0x2E, 4, In, CODE + 4), io_exit(0x2E, 1, Out, CODE + 6)]);
    for _ in 0..3 {
        step_ok(&mut lp);
    }
    assert_eq!(sys.get(Reg::Rax), 0xFFFF_FFFF);
    assert_eq!(lp.board().unassigned_accesses(), 3);
}

#[test]
fn string_io_stops_the_vcpu_as_unemulated() {
    let sys = protected_mode();
    let mut lp = vcpu_loop(&sys);
    let VmExit::Io { mut io, next_rip } = io_exit(0x3F8, 1, Out, CODE + 1) else { unreachable!() };
    io.string = true;
    sys.script([VmExit::Io { io, next_rip }]);
    let stop = lp.step();
    let expected = Stop::Unemulated { rip: CODE, what: "string I/O (INS/OUTS)" };
    assert_eq!(stop, Err(expected));
    let calls = sys.take_calls();
    assert!(!calls.iter().any(|c| matches!(c, Call::Complete { .. })), "nothing may complete: {calls:?}");
}

#[test]
fn debug_port_text_does_not_reach_the_uart() {
    let sys = protected_mode();
    let mut lp = vcpu_loop(&sys);
    for b in *b"hi\n" {
        sys.put(Reg::Rax, u64::from(b));
        sys.script([io_exit(0xE9, 1, Out, CODE + 2)]);
        step_ok(&mut lp);
    }
    let out = sys.state().console_out.clone();
    assert_eq!(out, b"", "port 0xE9 goes to the log, not to COM1's console; saw {out:?}");
    assert_eq!(lp.board().unassigned_accesses(), 0);
}
