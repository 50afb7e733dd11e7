//! The calls on the objects a process is granted: its console, clock and
//! share of the CPU.
use super::*;
use sysabi::{ClockHandle, ConsoleHandle, Grants, NetHandle, SchedHandle};

/// Every call on a granted object, each on the object of its kind in
/// `Grants`. Each succeeds for the process it was granted to.
const GRANTED_CALLS: &[NamedCall<Grants>] = &[
    ("now_ns", |c, g| sys_now_ns(c, g.clock).map(drop)),
    ("guest_tsc", |c, g| sys_guest_tsc(c, g.clock).map(drop)),
    ("tsc_hz", |c, g| sys_tsc_hz(c, g.clock).map(drop)),
    ("yield", |c, g| sys_yield(c, g.sched).map(drop)),
    ("idle_until", |c, g| sys_idle_until(c, g.sched, 0)),
    ("console_write", |c, g| sys_console_write(c, g.console, b"hi")),
    ("console_read", |c, g| sys_console_read(c, g.console).map(drop)),
];

#[test]
fn every_granted_call_serves_the_process_it_was_granted_to() {
    let _k = kernel();
    let a = Process::new(QUOTA);
    let wrong = unexpected(GRANTED_CALLS, a.caller(), a.grants, Ok(()));
    assert!(wrong.is_empty(), "{wrong:#?}");
    let out = sim::console_output();
    assert!(out.ends_with(b"test| hi"), "console_write reached the console as the process's line: {out:?}");
}

#[test]
fn every_granted_call_refuses_another_process_with_not_owner() {
    let _k = kernel();
    let (a, b) = (Process::new(QUOTA), Process::new(QUOTA));
    let wrong = unexpected(GRANTED_CALLS, b.caller(), a.grants, Err(SysError::NotOwner));
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(sim::console_output().is_empty(), "B wrote nothing on A's console");
}

#[test]
fn every_granted_call_refuses_the_handles_of_an_ended_process() {
    let _k = kernel();
    let a = Process::new(QUOTA);
    let (pid, grants) = (a.pid, a.grants);
    drop(a);
    let wrong = unexpected(GRANTED_CALLS, Caller::of(pid), grants, Err(SysError::NoSuchObject));
    assert!(wrong.is_empty(), "revoked: {wrong:#?}");
    let (other, b) = (Process::new(QUOTA), Process::new(QUOTA));
    assert_eq!(other.pid, pid, "the next process takes the pid");
    assert_eq!(other.grants, grants, "and the freed objects");
    let wrong = unexpected(GRANTED_CALLS, b.caller(), grants, Err(SysError::NotOwner));
    assert!(wrong.is_empty(), "now another process's: {wrong:#?}");
}

#[test]
fn every_granted_call_refuses_a_handle_never_granted() {
    let _k = kernel();
    let a = Process::new(QUOTA);
    for h in [crate::proc::MAX_PROCS as u16, u16::MAX] {
        let never =
            Grants { console: ConsoleHandle(h), clock: ClockHandle(h), sched: SchedHandle(h), net: NetHandle(h) };
        let wrong = unexpected(GRANTED_CALLS, a.caller(), never, Err(SysError::NoSuchObject));
        assert!(wrong.is_empty(), "handle {h}: {wrong:#?}");
    }
}

#[test]
fn the_clock_reads_the_machines_time() {
    let _k = kernel();
    let a = Process::new(QUOTA);
    sim::pass_ns(12_345);
    assert_eq!(sys_now_ns(a.caller(), a.grants.clock), Ok(12_345));
}

#[test]
fn idle_until_sleeps_to_the_deadline_and_returns_at_once_past_it() {
    let _k = kernel();
    let a = Process::new(QUOTA);
    let (c, s) = (a.caller(), a.grants.sched);
    sys_idle_until(c, s, 50_000).unwrap();
    assert_eq!(sim::now_ns(), 50_000, "the CPU halted until the timer armed for the deadline");
    assert_eq!(sim::timer_interrupts(), 1);
    sys_idle_until(c, s, 10).unwrap();
    assert_eq!((sim::now_ns(), sim::timer_interrupts()), (50_000, 1), "a past deadline: no halt, no timer");
}

#[test]
fn console_read_takes_typed_bytes_in_order_then_none() {
    let _k = kernel();
    let a = Process::new(QUOTA);
    sim::type_on_console(b"ok");
    let read = || sys_console_read(a.caller(), a.grants.console);
    assert_eq!([read(), read(), read()], [Ok(Some(b'o')), Ok(Some(b'k')), Ok(None)]);
}
