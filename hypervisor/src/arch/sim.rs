//! The machine under host tests (`cfg(test)` only): simulated physical RAM,
//! a scripted world switch, a clock and one-shot timer the test moves, and
//! a console it reads and types into. arch's functions that would touch
//! hardware call these instead in test builds, so the layers above run
//! unchanged under `cargo test`; the kernel build never contains them.
//!
//! RAM is shared by the whole test process (the kernel's frame allocator
//! is); everything else is per test thread.
use super::svm::{Gprs, GuestRegs};
use super::vmspace::GuestVmcb;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::OnceLock;
use vmcb::{EventInj, InterruptState, Vmcb};

/// Bytes of simulated physical RAM, from physical address 0.
pub const RAM_SIZE: u64 = 64 << 20;

static RAM: OnceLock<usize> = OnceLock::new();

/// Where physical address `pa` lives in the test process.
pub fn ram_ptr(pa: u64) -> *mut u8 {
    assert!(pa < RAM_SIZE, "physical address {pa:#x} beyond the simulated RAM");
    let base = *RAM.get_or_init(|| {
        let layout = std::alloc::Layout::from_size_align(RAM_SIZE as usize, 4096).expect("RAM layout");
        // SAFETY: a non-zero size; the allocation lives for the rest of the test process.
        let p = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!p.is_null(), "no memory for the simulated RAM");
        p as usize
    });
    (base + pa as usize) as *mut u8
}

/// One #VMEXIT the test scripts: what the CPU writes into the VMCB, how
/// long the guest ran first, and what the guest did to its state.
pub struct ScriptedExit {
    pub code: u64,
    pub info1: u64,
    pub info2: u64,
    pub int_info: u64,
    /// The VMCB's next_rip (what a CPU with NRIPS reports).
    pub next_rip: u64,
    /// Nanoseconds of guest time before the exit.
    pub runs_ns: u64,
    /// The guest's work before the exit, on its saved state.
    #[allow(clippy::type_complexity)]
    pub guest: Option<Box<dyn FnOnce(&mut Vmcb, &mut Gprs)>>,
}

impl ScriptedExit {
    /// An exit with EXITCODE `code` and nothing else.
    pub fn new(code: u64) -> ScriptedExit {
        ScriptedExit { code, info1: 0, info2: 0, int_info: 0, next_rip: 0, runs_ns: 0, guest: None }
    }

    pub fn info(mut self, info1: u64, info2: u64) -> Self {
        (self.info1, self.info2) = (info1, info2);
        self
    }

    pub fn int_info(mut self, int_info: u64) -> Self {
        self.int_info = int_info;
        self
    }

    pub fn next_rip(mut self, next_rip: u64) -> Self {
        self.next_rip = next_rip;
        self
    }

    pub fn after_ns(mut self, ns: u64) -> Self {
        self.runs_ns = ns;
        self
    }

    pub fn guest(mut self, f: impl FnOnce(&mut Vmcb, &mut Gprs) + 'static) -> Self {
        self.guest = Some(Box::new(f));
        self
    }
}

/// What the world switch saw at one VMRUN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmrunSeen {
    pub rip: u64,
    pub rax: u64,
    pub asid: u32,
    pub tlb_control: u8,
    pub event_inj: EventInj,
    /// A virtual interrupt was posted (V_IRQ) and delivered at entry.
    pub virq_delivered: Option<u8>,
    pub n_cr3: u64,
    pub nested_paging: bool,
    pub at_ns: u64,
    /// DR0–DR3 at VMRUN: what the guest finds there.
    pub dr0_3: [u64; 4],
}

#[derive(Default)]
struct Machine {
    exits: VecDeque<ScriptedExit>,
    seen: Vec<VmrunSeen>,
    now_ns: u64,
    armed_ns: Option<u64>,
    timer_interrupts: u64,
    console_out: Vec<u8>,
    console_in: VecDeque<u8>,
    dr0_3: [u64; 4],
}

thread_local! {
    static MACHINE: RefCell<Machine> = RefCell::new(Machine::default());
}

fn with<T>(f: impl FnOnce(&mut Machine) -> T) -> T {
    MACHINE.with(|m| f(&mut m.borrow_mut()))
}

/// Forgets this thread's script, records, clock, timer and console.
pub fn reset() {
    with(|m| *m = Machine::default());
}

/// Queues exits for the next VMRUNs.
pub fn script(exits: impl IntoIterator<Item = ScriptedExit>) {
    with(|m| m.exits.extend(exits));
}

/// Scripted exits not used yet.
pub fn exits_left() -> usize {
    with(|m| m.exits.len())
}

/// Every VMRUN so far, oldest first.
pub fn vmruns() -> Vec<VmrunSeen> {
    with(|m| m.seen.clone())
}

/// The world switch: takes the next scripted exit. The guest runs its
/// closure, time passes (and a timer that comes due fires, to be taken at
/// STGI), and the exit is written into the VMCB the way the CPU writes it.
/// A posted virtual interrupt the guest can take is delivered at entry,
/// and EVENTINJ is consumed, as hardware does.
pub(super) fn world_switch(regs: &mut GuestRegs, vmcb: &mut GuestVmcb) {
    let exit = with(|m| m.exits.pop_front()).expect("the guest ran, but the test scripted no further exit");
    let vmcb: &mut Vmcb = vmcb;
    let window = vmcb.save.rflags & guest_x86::regs::rflags::IF != 0
        && !vmcb.control.interrupt_state().contains(InterruptState::INTERRUPT_SHADOW)
        && !vmcb.control.event_injection().is_valid();
    let ic = vmcb.control.interrupt_control();
    let virq_delivered = (ic.v_irq() && window).then(|| ic.v_intr_vector());
    if virq_delivered.is_some() {
        vmcb.control.set_interrupt_control(ic.with_v_irq(false));
    }
    let seen = VmrunSeen {
        rip: vmcb.save.rip,
        rax: vmcb.save.rax,
        asid: vmcb.control.guest_asid,
        tlb_control: vmcb.control.tlb_control,
        event_inj: vmcb.control.event_injection(),
        virq_delivered,
        n_cr3: vmcb.control.n_cr3(),
        nested_paging: vmcb.control.nested_paging_enabled(),
        at_ns: with(|m| m.now_ns),
        dr0_3: dr0_3(),
    };
    vmcb.control.set_event_injection(EventInj::NONE);
    if let Some(f) = exit.guest {
        f(vmcb, &mut regs.gprs);
    }
    let c = &mut vmcb.control;
    c.exit_code = exit.code;
    c.exit_info1 = exit.info1;
    c.exit_info2 = exit.info2;
    c.exit_int_info = exit.int_info;
    c.next_rip = exit.next_rip;
    with(|m| {
        m.seen.push(seen);
        advance(m, exit.runs_ns);
    });
}

fn advance(m: &mut Machine, ns: u64) {
    m.now_ns += ns;
    if m.armed_ns.is_some_and(|at| at <= m.now_ns) {
        m.armed_ns = None;
        m.timer_interrupts += 1;
    }
}

/// Nanoseconds since "boot".
pub fn now_ns() -> u64 {
    with(|m| m.now_ns)
}

/// Moves the clock on (firing the timer if it comes due).
pub fn pass_ns(ns: u64) {
    with(|m| advance(m, ns));
}

/// Arms the one-shot timer for `at_ns`.
pub(super) fn arm_timer(at_ns: u64) {
    with(|m| m.armed_ns = Some(at_ns));
}

/// When the one-shot timer will fire, if armed.
pub fn armed_ns() -> Option<u64> {
    with(|m| m.armed_ns)
}

/// Timer interrupts taken so far.
pub fn timer_interrupts() -> u64 {
    with(|m| m.timer_interrupts)
}

/// `sti; hlt`: the clock jumps to the armed timer, which fires.
pub(super) fn wait_for_interrupt() {
    let at = armed_ns().expect("the CPU halted with no timer armed: it would sleep forever");
    with(|m| advance(m, at.saturating_sub(m.now_ns)));
}

pub(super) fn console_write(byte: u8) {
    with(|m| m.console_out.push(byte));
}

pub(super) fn console_read() -> Option<u8> {
    with(|m| m.console_in.pop_front())
}

/// Everything written to the console so far (and forgets it).
pub fn console_output() -> Vec<u8> {
    with(|m| core::mem::take(&mut m.console_out))
}

/// Bytes for the console to read, as if typed.
pub fn type_on_console(bytes: &[u8]) {
    with(|m| m.console_in.extend(bytes));
}

/// The CPU's DR0–DR3.
pub fn dr0_3() -> [u64; 4] {
    with(|m| m.dr0_3)
}

/// Writes DR0–DR3: the host, or a scripted guest's MOV to them.
pub fn set_dr0_3(dr: [u64; 4]) {
    with(|m| m.dr0_3 = dr);
}
