//! The guest's NMI blocking: an NMI that comes while the guest runs its NMI
//! handler waits for the handler's IRET (Intel SDM vol. 3 §6.7.1). The VMM
//! traps that IRET, steps over it with TF and #DB trapped, and injects the
//! held NMI at the #DB (`vmm/src/vcpu/nmi.rs`).
use crate::fake::Call;
use crate::posted_irq::mmio_write;
use crate::*;
use vmcb::{EventInj, ExceptionExit, ExitCode};

const ICR_LOW: u64 = 0xFEE0_0300;
/// ICR: NMI (delivery mode 100), level assert, physical destination 0.
const ICR_NMI: u32 = 0x4400;
const TF: u64 = 1 << 8;
const DR6_RESET: u64 = 0xFFFF_0FF0;
/// DR6 after a single-step trap (BS).
const DR6_STEPPED: u64 = DR6_RESET | 0x4000;

fn debug_exit() -> VmExit {
    VmExit::Exception(ExceptionExit { vector: 1, error_code: None, fault_address: None })
}

/// The guest sends an NMI to itself (APIC ID 0), as an ICR write would.
fn sends_itself_an_nmi(lp: &mut VcpuLoop<'_, '_, FakeSys>) {
    mmio_write(lp, ICR_LOW, ICR_NMI, 0);
    lp.release_board();
}

fn nmis_injected(sys: &FakeSys) -> usize {
    sys.state().calls.iter().filter(|c| **c == Call::Inject(EventInj::nmi())).count()
}

/// The first NMI is injected and the IRET trapped; a second one, sent from
/// its handler, is held until that IRET has run.
fn first_nmi_running_second_held(sys: &FakeSys, lp: &mut VcpuLoop<'_, '_, FakeSys>) {
    sys.put(Reg::Dr6, DR6_RESET);
    sends_itself_an_nmi(lp);
    sys.script([VmExit::Intr]);
    step_ok(lp);
    assert_eq!(nmis_injected(sys), 1, "the first NMI is injected");
    assert!(sys.state().calls.contains(&Call::IretIntercept(true)), "the IRET that ends its handler is trapped");
    sends_itself_an_nmi(lp);
    sys.script([VmExit::Intr]);
    step_ok(lp);
    assert_eq!(nmis_injected(sys), 1, "the second NMI waits: its handler has not reached an IRET");
    sys.script([VmExit::Other(ExitCode::Iret)]);
    step_ok(lp);
    assert_eq!(nmis_injected(sys), 1, "at the IRET intercept the IRET has not run yet");
    let calls = sys.state().calls.clone();
    assert!(calls.contains(&Call::IretIntercept(false)), "the IRET is no longer trapped");
    assert!(calls.contains(&Call::ExceptionIntercept { vector: 1, on: true }), "#DB trapped for the step");
    assert_eq!(sys.get(Reg::Rip), CODE, "the IRET is not skipped: it runs in the guest");
}

#[test]
fn an_nmi_sent_from_the_nmi_handler_is_injected_only_after_the_handlers_iret() {
    let sys = protected_mode();
    let mut lp = vcpu_loop(&sys);
    first_nmi_running_second_held(&sys, &mut lp);
    assert_ne!(sys.get(Reg::Rflags) & TF, 0, "the IRET runs with TF set");
    // The IRET ran and loaded the guest's own flags; the step trapped.
    sys.put(Reg::Rflags, 0x2);
    sys.put(Reg::Dr6, DR6_STEPPED);
    sys.put(Reg::Rip, CODE + 0x40);
    sys.script([debug_exit()]);
    step_ok(&mut lp);
    assert_eq!(nmis_injected(&sys), 2, "the held NMI is injected right after the IRET");
    let calls = sys.state().calls.clone();
    assert!(!calls.contains(&Call::Inject(EventInj::exception(1))), "the VMM's step is not the guest's #DB");
    assert!(calls.contains(&Call::ExceptionIntercept { vector: 1, on: false }), "#DB no longer trapped");
    assert_eq!(sys.get(Reg::Dr6), DR6_RESET, "the guest's DR6 is as before the step");
    assert_eq!(
        calls.iter().filter(|c| **c == Call::IretIntercept(true)).count(),
        2,
        "the second handler's IRET is trapped"
    );
}

#[test]
fn a_guest_single_stepping_over_the_nmi_handlers_iret_keeps_its_debug_trap() {
    let sys = protected_mode();
    sys.put(Reg::Rflags, 0x2 | TF);
    let mut lp = vcpu_loop(&sys);
    first_nmi_running_second_held(&sys, &mut lp);
    sys.put(Reg::Dr6, DR6_STEPPED);
    sys.script([debug_exit()]);
    step_ok(&mut lp);
    assert!(sys.state().calls.contains(&Call::Inject(EventInj::exception(1))), "the guest's own #DB is delivered");
    assert_eq!(sys.get(Reg::Dr6), DR6_STEPPED, "with the DR6 the CPU gave it");
    sys.script([VmExit::Intr]);
    step_ok(&mut lp);
    assert_eq!(nmis_injected(&sys), 2, "the held NMI follows at the next entry");
}
