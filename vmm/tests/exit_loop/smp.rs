//! Two vCPUs over one board: the application processor waits for INIT and
//! a start-up IPI and then runs real-mode code at the vector's page; an IPI
//! kicks its target; HLT with interrupts off only stops the VM once every
//! vCPU sleeps; and the first vCPU to stop ends the others.
use crate::fake::Call;
use crate::*;
use sysabi::{Reg, SegReg, Sys, VcpuHandle};
use vmcb::{EventInj, Segment};
use vmm::dev::apics::LAPIC_PAGE;
use vmm::dev::lapic::regs;
use vmm::vcpu::{Stop, VcpuState};

/// The fake's vCPU is the BSP; the AP's handle is never run.
const AP: VcpuHandle = VcpuHandle(1);

fn two_vcpus(sys: &FakeSys) -> (VcpuLoop<'_, 'static, FakeSys>, VcpuLoop<'_, 'static, FakeSys>) {
    let board = Board::new(BoardConfig { rtc_epoch_seconds: 1_700_000_000, ram_size: RAM as u64, vcpus: 2 }, "smp")
        .expect("the board's devices are wired without overlaps");
    let shared: &'static VmShared<'static> = Box::leak(Box::new(VmShared::new(board, &[VCPU, AP])));
    let bsp = VcpuLoop::new("smp", sys, GRANTS, (VM, 0), RAM as u64, shared).expect("the fake answers");
    let ap = VcpuLoop::new("smp", sys, GRANTS, (VM, 1), RAM as u64, shared).expect("the fake answers");
    (bsp, ap)
}

/// A vCPU writes its ICR as the exit of its MMIO store would, and lets go
/// of the board (kicking the target).
fn sends(from: &mut VcpuLoop<'_, 'static, FakeSys>, dest: u8, low: u32) {
    for (reg, value) in [(regs::ICR_HIGH, u32::from(dest) << 24), (regs::ICR_LOW, low)] {
        let gpa = LAPIC_PAGE.base + u64::from(reg);
        let board = from.board();
        let dev = board.mmio_device(gpa).expect("local APIC page");
        board.mmio_write(dev, gpa, 4, u64::from(value), 0);
    }
    from.release_board();
}

/// The BSP starts the AP (INIT, start-up at vector 0x98), then runs into
/// HLT with interrupts off and is parked while the AP runs.
fn start_ap_then_park_bsp(
    sys: &FakeSys,
    bsp: &mut VcpuLoop<'_, 'static, FakeSys>,
    ap: &mut VcpuLoop<'_, 'static, FakeSys>,
) {
    sends(bsp, 1, 0xC500);
    sends(bsp, 1, 0x4698);
    assert_eq!(step(ap), Ok(()));
    // The fake keeps one set of registers, which the start-up changed.
    sys.put(Reg::Rip, CODE);
    sys.put(Reg::Rflags, 0x2);
    sys.state().nrips = Some(CODE + 1);
    sys.script([VmExit::Hlt]);
    assert_eq!(step(bsp), Ok(()), "the AP still runs: the BSP only parks");
}

/// One round of `lp`'s loop; then it lets go of the board, as it does
/// before its next run, so that the other vCPU's loop can take it.
fn step(lp: &mut VcpuLoop<'_, 'static, FakeSys>) -> Result<(), Stop> {
    let done = lp.step();
    lp.release_board();
    done
}

fn kicks(sys: &FakeSys) -> Vec<VcpuHandle> {
    sys.state().calls.iter().filter_map(|c| if let Call::Kick(v) = c { Some(*v) } else { None }).collect()
}

#[test]
fn an_ap_waits_for_init_and_start_up_then_runs_in_real_mode_at_the_vector_page() {
    let sys = protected_mode();
    let (mut bsp, mut ap) = two_vcpus(&sys);
    assert_eq!((bsp.state, ap.state), (VcpuState::Running, VcpuState::WaitForSipi));
    sends(&mut bsp, 1, 0xC500); // INIT, level assert
    sends(&mut bsp, 1, 0x4698); // start-up, vector 0x98
    assert_eq!(kicks(&sys), [AP, AP], "each IPI kicks the AP");
    assert_eq!(step(&mut ap), Ok(()));
    assert_eq!(ap.state, VcpuState::Running);
    let cs = sys.seg(AP, SegReg::Cs).expect("the fake answers");
    assert_eq!((cs.selector, cs.base, cs.limit), (0x9800, 0x98000, 0xFFFF), "CS after start-up");
    assert_eq!(sys.get(Reg::Rip), 0, "IP after start-up");
    assert_eq!(sys.get(Reg::Cr0), 0x6000_0010, "CR0 after INIT");
}

#[test]
fn a_start_up_ipi_without_init_to_a_running_vcpu_is_ignored() {
    let sys = protected_mode();
    let (mut bsp, mut ap) = two_vcpus(&sys);
    sends(&mut bsp, 1, 0xC500);
    sends(&mut bsp, 1, 0x4698);
    assert_eq!(step(&mut ap), Ok(()));
    sys.put_seg(SegReg::Cs, Segment::flat_code32(0x08));
    sends(&mut bsp, 1, 0x4610);
    let events = ap.board().take_apic_events();
    ap.release_board();
    assert_eq!(events.startup, Some(0x10), "the start-up reached the AP's local APIC");
    assert_eq!(sys.seg(AP, SegReg::Cs).expect("the fake answers").selector, 0x08, "a running vCPU keeps its CS");
}

#[test]
fn hlt_with_interrupts_off_stops_the_vm_only_when_every_vcpu_sleeps() {
    let sys = protected_mode();
    let (mut bsp, mut ap) = two_vcpus(&sys);
    start_ap_then_park_bsp(&sys, &mut bsp, &mut ap);
    assert_eq!(bsp.state, VcpuState::HaltedForGood { rip: CODE });
    sys.put(Reg::Rip, CODE);
    // The AP's loop is the fake's one runnable vCPU from here: it halts too.
    ap.vcpu = VCPU;
    sys.script([VmExit::Hlt]);
    assert_eq!(step(&mut ap), Err(Stop::Halted { rip: CODE }), "the last vCPU awake went to sleep");
}

#[test]
fn an_nmi_wakes_a_vcpu_parked_by_hlt_with_interrupts_off() {
    let sys = protected_mode();
    let (mut bsp, mut ap) = two_vcpus(&sys);
    start_ap_then_park_bsp(&sys, &mut bsp, &mut ap);
    // The AP sends the BSP an NMI.
    sends(&mut ap, 0, 0x4400);
    assert!(kicks(&sys).contains(&VCPU), "the NMI kicked the BSP");
    assert_eq!(step(&mut bsp), Ok(()));
    assert_eq!(bsp.state, VcpuState::Running);
    assert!(sys.state().calls.contains(&Call::Inject(EventInj::nmi())), "NMI injected");
}

#[test]
fn the_first_vcpu_to_stop_ends_the_other_with_the_same_stop() {
    let sys = protected_mode();
    let (mut bsp, mut ap) = two_vcpus(&sys);
    sys.script([VmExit::Shutdown]);
    assert_eq!(bsp.run(), Stop::TripleFault { rip: CODE });
    assert!(kicks(&sys).contains(&AP), "the other vCPU was kicked");
    assert_eq!(ap.run(), Stop::TripleFault { rip: CODE }, "the AP ends with the VM's stop");
}
