//! HLT and interrupt delivery: a halted vCPU sleeps until its board's next
//! interrupt, and a pending PIC interrupt is posted to the vCPU before the
//! next run, but only while none is posted yet.
use crate::fake::{Call, FakeSys};
use crate::*;
use sysabi::{NextRipSource, Reg};
use vmcb::EventInj;
use vmm::vcpu::{Stop, VcpuLoop};

const HLT: [u8; 1] = [0xF4];
/// The master PIC's vector base in these tests: IRQ 0 is vector 0x20.
const VECTOR_BASE: u8 = 0x20;
/// The PIT count of 1 ms (Linux's LATCH for HZ=1000).
const PIT_1MS: u16 = 1193;

/// Linux's PIC initialisation (vectors 0x20/0x28) with `master_mask`, and
/// the PIT's counter 0 at 1 kHz (mode 2), as the guest would program them.
fn program_pic_and_pit(lp: &mut VcpuLoop<'_, '_, FakeSys>, now: u64, master_mask: u8) {
    program_pic_and_pit_at(lp, now, VECTOR_BASE, master_mask);
}

/// The PIC pair initialised with the master's vectors at `base` (the
/// slave's 8 above) and `master_mask`, and the PIT's counter 0 at 1 kHz.
pub fn program_pic_and_pit_at(lp: &mut VcpuLoop<'_, '_, FakeSys>, now: u64, base: u8, master_mask: u8) {
    for (port, value) in [
        (0x20, 0x11u8),
        (0x21, base),
        (0x21, 0x04),
        (0x21, 0x01),
        (0xA0, 0x11),
        (0xA1, base + 8),
        (0xA1, 0x02),
        (0xA1, 0x01),
        (0x21, master_mask),
        (0xA1, 0xFF),
        (0x43, 0x34),
        (0x40, PIT_1MS.to_le_bytes()[0]),
        (0x40, PIT_1MS.to_le_bytes()[1]),
    ] {
        lp.board().io_write(port, 1, u32::from(value), now);
    }
}

fn position(calls: &[Call], what: impl Fn(&Call) -> bool) -> Option<usize> {
    calls.iter().position(what)
}

#[test]
fn hlt_with_interrupts_off_stops_the_vcpu_as_halted() {
    let sys = protected_mode();
    sys.put(Reg::Rflags, 0x2);
    let mut lp = vcpu_loop(&sys);
    sys.script([VmExit::Hlt]);
    assert_eq!(lp.step(), Err(Stop::Halted { rip: CODE }));
    let calls = sys.take_calls();
    assert!(!calls.iter().any(|c| matches!(c, Call::Complete { .. } | Call::IdleUntil(_))), "{calls:?}");
}

#[test]
fn hlt_sleeps_until_the_pit_deadline_and_the_tick_is_injected_before_the_next_run() {
    let sys = protected_mode();
    let mut lp = vcpu_loop(&sys);
    let now = sys.state().now_ns;
    program_pic_and_pit(&mut lp, now, 0xFE);
    let deadline = lp.board().next_deadline_ns(now).expect("IRQ 0 is unmasked and the PIT runs");
    // The count loads on the PIT clock after the write, then counts 1193.
    assert!(deadline > now + 999_000 && deadline <= now + 1_001_000, "deadline {deadline} at {now}");
    sys.poke(CODE, &HLT);
    sys.script([VmExit::Hlt, VmExit::Intr]);

    step_ok(&mut lp);
    let calls = sys.take_calls();
    let expected = [
        Call::Run { deadline_ns: deadline },
        Call::Complete { next_rip: CODE + 1, from: NextRipSource::Decoded },
        Call::IdleUntil(deadline),
    ];
    assert_eq!(calls, expected, "HLT: run to the deadline, complete, sleep until it");
    assert_eq!(lp.board().pending_vector(), Some(VECTOR_BASE), "IRQ 0 must be pending after the sleep");

    step_ok(&mut lp);
    let calls = sys.take_calls();
    let inject = position(&calls, |c| *c == Call::Inject(EventInj::external_interrupt(VECTOR_BASE)));
    let run = position(&calls, |c| matches!(c, Call::Run { .. }));
    assert!(inject.is_some() && inject < run, "expected the injection before the run, saw {calls:?}");
}

#[test]
fn pit_tick_is_posted_once_and_taken_into_service_only_when_the_guest_takes_it() {
    let sys = protected_mode();
    let mut lp = vcpu_loop(&sys);
    let now = sys.state().now_ns;
    program_pic_and_pit(&mut lp, now, 0xFE);
    // Every run lasts 2 ms: the PIT's period passes in each.
    sys.state().run_ns = 2_000_000;
    sys.script([VmExit::Intr, VmExit::Intr, VmExit::Intr, VmExit::Intr]);
    step_ok(&mut lp);
    step_ok(&mut lp);
    step_ok(&mut lp);
    let seen: Vec<_> = sys.take_calls().into_iter().filter(|c| matches!(c, Call::Inject(_) | Call::Withdraw)).collect();
    assert_eq!(seen, [Call::Inject(EventInj::external_interrupt(VECTOR_BASE))], "one post, nothing more");
    assert_eq!(lp.board().pending_vector(), Some(VECTOR_BASE), "the tick waits in the PIC's IRR, not taken");
    // The guest takes it during the next run.
    sys.state().posted = None;
    step_ok(&mut lp);
    let seen: Vec<_> = sys.take_calls().into_iter().filter(|c| matches!(c, Call::Inject(_) | Call::Withdraw)).collect();
    assert_eq!(seen, [], "IRQ 0 is in service: the next ticks wait for its EOI");
    assert_eq!(lp.board().pending_vector(), None, "the tick is in service now");
}

#[test]
fn masked_pit_gives_no_deadline_and_no_interrupt() {
    let sys = protected_mode();
    let mut lp = vcpu_loop(&sys);
    let now = sys.state().now_ns;
    program_pic_and_pit(&mut lp, now, 0xFF);
    sys.state().run_ns = 5_000_000;
    sys.script([VmExit::Intr, VmExit::Intr]);
    step_ok(&mut lp);
    step_ok(&mut lp);
    let calls = sys.take_calls();
    let expected = [Call::Run { deadline_ns: sysabi::NEVER }, Call::Run { deadline_ns: sysabi::NEVER }];
    assert_eq!(calls, expected, "no deadline and no injection with IRQ 0 masked");
}

#[test]
fn a_byte_typed_on_the_console_raises_com1s_interrupt() {
    let sys = protected_mode();
    let mut lp = vcpu_loop(&sys);
    let now = sys.state().now_ns;
    // IRQ 4 unmasked, the PIT's IRQ 0 masked; COM1 with receive interrupts and OUT2.
    program_pic_and_pit(&mut lp, now, 0xEF);
    lp.board().io_write(0x3F9, 1, 0x01, now);
    lp.board().io_write(0x3FC, 1, 0x08, now);
    sys.state().console_in.push_back(b'x');
    sys.script([VmExit::Intr, VmExit::Intr, io_exit(0x3F8, 1, vmcb::IoDirection::In, CODE + 1)]);
    step_ok(&mut lp);
    step_ok(&mut lp);
    let seen: Vec<_> = sys.take_calls().into_iter().filter(|c| matches!(c, Call::Inject(_))).collect();
    assert_eq!(seen, [Call::Inject(EventInj::external_interrupt(VECTOR_BASE + 4))]);
    step_ok(&mut lp);
    assert_eq!(sys.get(Reg::Rax) & 0xFF, u64::from(b'x'), "the guest reads the typed byte from RBR");
}
