//! Events into the guest, and finishing intercepted instructions: pure
//! functions over a VMCB, so that they are tested on the host. Each returns
//! the VMCB fields it changed that the clean bits cover.
//!
//! - Exceptions and NMIs go through EVENTINJ, delivered at the next VMRUN.
//! - External interrupts go through V_IRQ: the CPU delivers the virtual
//!   interrupt itself as soon as the guest can take one (RFLAGS.IF set, no
//!   interrupt shadow), with no exit in between. Why not EVENTINJ: QEMU
//!   7.2's TCG delivers an EVENTINJ external interrupt at VMRUN but also
//!   leaves it pending, and delivers it a second time at the next kick of
//!   the CPU, even while the guest has interrupts off (a guest was seen
//!   re-entering its UART handler that way and deadlocking on its own lock).
//!   V_IRQ needs no interrupt-window exit either.
//! - Bochs 2.7 has the opposite flaw: it re-evaluates V_IRQ only when the
//!   guest's RFLAGS.IF changes, so an interrupt posted while the guest
//!   already has interrupts enabled (the usual case after HLT) waits for the
//!   guest's next CLI/STI pair. A CPU is therefore watched: a VMRUN into an
//!   open interrupt window with V_IRQ set must not come back from a
//!   synchronous exit with V_IRQ still set. Once a CPU is seen doing that, a
//!   posted interrupt is moved into EVENTINJ whenever the window is open at
//!   VMRUN ([`deliver_posted_now`]); V_IRQ still serves a closed window.
use guest_x86::regs::rflags;
use vmcb::{CleanBits, EventInj, EventType, InterruptState, Vmcb};

/// DR6.BS: the #DB was a single-step trap.
const DR6_BS: u64 = 1 << 14;
const VEC_DB: u8 = 1;

/// Queues `ev`: an external interrupt as V_IRQ ([`post_interrupt`]), the
/// rest in EVENTINJ. `None` if the slot it needs holds an event the guest
/// has not taken yet.
pub fn inject(vmcb: &mut Vmcb, ev: EventInj) -> Option<CleanBits> {
    if ev.event_type() == Some(EventType::ExternalInterrupt) {
        return post_interrupt(vmcb, ev.vector());
    }
    if vmcb.control.event_injection().is_valid() {
        return None;
    }
    vmcb.control.set_event_injection(ev);
    Some(CleanBits::empty())
}

/// Posts external interrupt `vector` as the guest's virtual interrupt, or
/// `None` if one posted earlier has not been taken yet.
pub fn post_interrupt(vmcb: &mut Vmcb, vector: u8) -> Option<CleanBits> {
    if interrupt_posted(vmcb) {
        return None;
    }
    Some(set_virq(vmcb, vector))
}

/// A posted interrupt has not been taken by the guest yet (the CPU clears
/// V_IRQ when it takes the interrupt and writes it back at #VMEXIT).
pub fn interrupt_posted(vmcb: &Vmcb) -> bool {
    vmcb.control.interrupt_control().v_irq()
}

/// Takes back the posted interrupt the guest has not taken yet and returns
/// its vector, or `None` if none is posted. After an exit a posted
/// interrupt is always in V_IRQ: `Vcpu::run` empties EVENTINJ at every exit
/// and queues an interrupted delivery as V_IRQ again ([`redeliver`]).
pub fn withdraw_interrupt(vmcb: &mut Vmcb) -> Option<(u8, CleanBits)> {
    if !interrupt_posted(vmcb) {
        return None;
    }
    let c = &mut vmcb.control;
    let ic = c.interrupt_control();
    c.set_interrupt_control(ic.with_v_irq(false));
    Some((ic.v_intr_vector(), CleanBits::TPR))
}

/// The guest takes an external interrupt before its next instruction:
/// RFLAGS.IF is set, no interrupt shadow, and no event queued ahead of it.
pub fn window_open(vmcb: &Vmcb) -> bool {
    vmcb.save.rflags & rflags::IF != 0
        && !vmcb.control.in_interrupt_shadow()
        && !vmcb.control.event_injection().is_valid()
}

/// Moves the posted interrupt from V_IRQ into EVENTINJ, for a VMRUN into
/// an open interrupt window on a CPU that does not deliver V_IRQ there.
pub fn deliver_posted_now(vmcb: &mut Vmcb) -> CleanBits {
    let c = &mut vmcb.control;
    let ic = c.interrupt_control();
    c.set_interrupt_control(ic.with_v_irq(false));
    c.set_event_injection(EventInj::external_interrupt(ic.v_intr_vector()));
    CleanBits::TPR
}

fn set_virq(vmcb: &mut Vmcb, vector: u8) -> CleanBits {
    let c = &mut vmcb.control;
    // The guest's TPR (CR8) gates LAPIC interrupts, and these come from the
    // PIC: they ignore it.
    let ic = c.interrupt_control().with_v_irq(true).with_v_intr_vector(vector).with_v_intr_prio(vector >> 4);
    c.set_interrupt_control(ic.with_v_ign_tpr(true));
    CleanBits::TPR
}

/// Queues again an event whose delivery the last exit interrupted
/// (EXITINTINFO), the way it was first delivered: external interrupts as
/// V_IRQ, exceptions and NMIs in EVENTINJ. A software interrupt is not
/// queued: its INT instruction runs again.
pub fn redeliver(vmcb: &mut Vmcb, ev: EventInj) -> CleanBits {
    match ev.event_type() {
        Some(EventType::SoftwareInterrupt) => CleanBits::empty(),
        Some(EventType::ExternalInterrupt) => set_virq(vmcb, ev.vector()),
        // QEMU's TCG records an external interrupt it was delivering as an
        // "exception" with the interrupt's vector; no exception has a vector
        // above 31, so that is what it is.
        Some(EventType::Exception) if ev.vector() > 31 => set_virq(vmcb, ev.vector()),
        _ => {
            vmcb.control.set_event_injection(ev);
            CleanBits::empty()
        }
    }
}

/// What finishing an instruction did beyond moving RIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completed {
    /// The fields the clean bits cover that changed.
    pub dirty: CleanBits,
    /// The guest was single-stepping: a #DB trap is queued.
    pub single_step: bool,
}

/// The intercepted instruction is done: RIP moves to `next_rip`, the
/// interrupt shadow of a preceding STI or MOV SS ends (it covered this
/// instruction), and a guest single-stepping with RFLAGS.TF gets the #DB
/// trap the instruction would have raised on bare metal (DR6.BS set).
pub fn complete_instruction(vmcb: &mut Vmcb, next_rip: u64) -> Completed {
    vmcb.save.rip = next_rip;
    let state = vmcb.control.interrupt_state();
    vmcb.control.set_interrupt_state(state - InterruptState::INTERRUPT_SHADOW);
    if vmcb.save.rflags & rflags::TF == 0 {
        return Completed { dirty: CleanBits::empty(), single_step: false };
    }
    vmcb.save.dr6 |= DR6_BS;
    // An exception already queued for this instruction keeps its slot; the
    // guest then sees the #DB at its handler's first instruction instead.
    let _ = inject(vmcb, EventInj::exception(VEC_DB));
    Completed { dirty: CleanBits::DRX, single_step: true }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completing_an_instruction_ends_the_interrupt_shadow() {
        // `sti; hlt`: real CPUs (and Bochs) report the STI shadow at the
        // HLT intercept. Left set, it would hold off the next interrupt
        // for one more instruction, past the guest's `cli`.
        let mut v = Vmcb::default();
        v.control.set_interrupt_state(InterruptState::INTERRUPT_SHADOW);
        let done = complete_instruction(&mut v, 0x1001);
        assert_eq!(v.save.rip, 0x1001);
        assert!(!v.control.in_interrupt_shadow());
        assert_eq!(done, Completed { dirty: CleanBits::empty(), single_step: false });
    }

    #[test]
    fn a_single_stepping_guest_gets_a_debug_trap_after_the_instruction() {
        let mut v = Vmcb::default();
        v.save.rflags = rflags::FIXED | rflags::TF;
        v.save.dr6 = 0xFFFF_0FF0;
        let done = complete_instruction(&mut v, 0x2000);
        assert!(done.single_step);
        assert_eq!(v.control.event_injection(), EventInj::exception(VEC_DB));
        assert_eq!(v.save.dr6 & DR6_BS, DR6_BS, "DR6.BS names the single-step");
        assert!(done.dirty.contains(CleanBits::DRX));
    }

    #[test]
    fn a_queued_exception_keeps_its_slot_over_the_debug_trap() {
        let mut v = Vmcb::default();
        v.save.rflags = rflags::FIXED | rflags::TF;
        v.control.set_event_injection(EventInj::exception_with_error(13, 0));
        complete_instruction(&mut v, 0x2000);
        assert_eq!(v.control.event_injection(), EventInj::exception_with_error(13, 0));
    }

    #[test]
    fn external_interrupts_are_posted_as_v_irq_once_at_a_time() {
        let mut v = Vmcb::default();
        assert_eq!(inject(&mut v, EventInj::external_interrupt(0x30)), Some(CleanBits::TPR));
        let ic = v.control.interrupt_control();
        assert!(ic.v_irq() && ic.v_ign_tpr());
        assert_eq!((ic.v_intr_vector(), ic.v_intr_prio()), (0x30, 3));
        assert!(!v.control.event_injection().is_valid(), "EVENTINJ stays free for exceptions");
        assert_eq!(inject(&mut v, EventInj::external_interrupt(0x31)), None, "one posted at a time");
        // The guest took it: the CPU cleared V_IRQ.
        v.control.set_interrupt_control(ic.with_v_irq(false));
        assert!(!interrupt_posted(&v));
        assert!(post_interrupt(&mut v, 0x31).is_some());
    }

    #[test]
    fn a_withdrawn_interrupt_is_no_longer_posted_and_names_its_vector() {
        let mut v = Vmcb::default();
        assert_eq!(withdraw_interrupt(&mut v), None, "nothing posted");
        post_interrupt(&mut v, 0x08);
        assert_eq!(withdraw_interrupt(&mut v), Some((0x08, CleanBits::TPR)), "V_IRQ is in the TPR clean-bit group");
        assert!(!interrupt_posted(&v));
        assert_eq!(withdraw_interrupt(&mut v), None, "withdrawn once");
        assert_eq!(post_interrupt(&mut v, 0x20), Some(CleanBits::TPR), "the slot is free again");
        assert_eq!(v.control.interrupt_control().v_intr_vector(), 0x20);
    }

    #[test]
    fn the_window_is_open_with_if_set_no_shadow_and_no_queued_event() {
        let mut v = Vmcb::default();
        v.save.rflags = rflags::FIXED;
        assert!(!window_open(&v), "IF clear");
        v.save.rflags |= rflags::IF;
        assert!(window_open(&v));
        v.control.set_interrupt_state(InterruptState::INTERRUPT_SHADOW);
        assert!(!window_open(&v), "STI shadow");
        v.control.set_interrupt_state(InterruptState::empty());
        v.control.set_event_injection(EventInj::exception(13));
        assert!(!window_open(&v), "an exception goes first");
    }

    #[test]
    fn a_posted_interrupt_moves_to_eventinj_for_cpus_that_skip_v_irq() {
        let mut v = Vmcb::default();
        post_interrupt(&mut v, 0x34);
        assert_eq!(deliver_posted_now(&mut v), CleanBits::TPR);
        assert!(!interrupt_posted(&v));
        assert_eq!(v.control.event_injection(), EventInj::external_interrupt(0x34));
    }

    #[test]
    fn exceptions_use_eventinj_and_wait_for_a_free_slot() {
        let mut v = Vmcb::default();
        assert!(inject(&mut v, EventInj::exception(6)).is_some());
        assert_eq!(inject(&mut v, EventInj::nmi()), None);
        assert!(!interrupt_posted(&v));
    }

    #[test]
    fn interrupted_deliveries_are_queued_again_the_way_they_came() {
        let mut v = Vmcb::default();
        redeliver(&mut v, EventInj::external_interrupt(0x34));
        assert!(interrupt_posted(&v));
        assert_eq!(v.control.interrupt_control().v_intr_vector(), 0x34);

        let mut v = Vmcb::default();
        redeliver(&mut v, EventInj::exception_with_error(14, 2));
        assert_eq!(v.control.event_injection(), EventInj::exception_with_error(14, 2));

        let mut v = Vmcb::default();
        redeliver(&mut v, EventInj::software_interrupt(0x80));
        assert!(!v.control.event_injection().is_valid() && !interrupt_posted(&v), "INT n runs again");
    }

    #[test]
    fn tcg_interrupts_recorded_as_exceptions_are_redelivered_as_interrupts() {
        let mut v = Vmcb::default();
        // Type 3 (exception) with vector 0x30: QEMU's way of saying IRQ.
        redeliver(&mut v, EventInj::from_raw(0x8000_0330));
        assert!(interrupt_posted(&v));
        assert!(!v.control.event_injection().is_valid());
    }
}
