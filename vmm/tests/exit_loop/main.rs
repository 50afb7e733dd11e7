//! The VMM's exit loop (`VcpuLoop::step` and `run`) against a scripted
//! kernel ([`fake::FakeSys`]): each test sets up the guest's registers and
//! RAM, queues the exits `run` returns, steps the loop, and checks the
//! calls the VMM made and the state it left.
mod fake;

mod cpuid_msr;
pub mod hlt_irq;
mod hypercall;
mod io;
mod launch;
mod nmi;
mod npf;
mod posted_irq;
mod smp;
mod stops;

use fake::{FakeSys, GRANTS, VCPU, VM};
use sysabi::{Reg, SegReg, VmExit};
use vmcb::{IoAccessSize, IoDirection, IoioInfo, Segment};
use vmm::dev::{Board, BoardConfig};
use vmm::vcpu::{VcpuLoop, VmShared};

/// Guest RAM of the test VMs.
pub const RAM: usize = 1 << 20;
/// Where the tests put the guest's code.
pub const CODE: u64 = 0x1000;
pub const RFLAGS_IF: u64 = 1 << 9;

/// The loop for the fake's one vCPU, with a fresh board.
pub fn vcpu_loop(sys: &FakeSys) -> VcpuLoop<'_, 'static, FakeSys> {
    let board = Board::new(BoardConfig { rtc_epoch_seconds: 1_700_000_000, ram_size: RAM as u64, vcpus: 1 }, "test")
        .expect("the board's devices are wired without overlaps");
    VcpuLoop::new("test", sys, GRANTS, (VM, 0), RAM as u64, one_vcpu_vm(board)).expect("the fake kernel answers")
}

/// The shared state of a VM with the fake's one vCPU and `board`, kept
/// for the rest of the test run.
pub fn one_vcpu_vm(board: Board<'static>) -> &'static VmShared<'static> {
    Box::leak(Box::new(VmShared::new(board, &[VCPU])))
}

/// A fake vCPU in 32-bit protected mode without paging (flat segments),
/// interrupts on, at RIP `CODE`.
pub fn protected_mode() -> FakeSys {
    let sys = FakeSys::new(RAM);
    sys.put(Reg::Cr0, 0x11);
    sys.put(Reg::Rflags, 0x2 | RFLAGS_IF);
    sys.put(Reg::Rip, CODE);
    sys.put_seg(SegReg::Cs, Segment::flat_code32(0x08));
    sys
}

/// A fake vCPU in 64-bit mode (CS.L, EFER.LMA, paging on) at RIP `CODE`.
/// Its page tables are not built: tests that use it give NRIPS, so
/// nothing is fetched.
pub fn long_mode() -> FakeSys {
    let sys = FakeSys::new(RAM);
    sys.put(Reg::Cr0, 0x8000_0011);
    sys.put(Reg::Cr4, 0x20);
    sys.put(Reg::Efer, 0x500);
    sys.put(Reg::Rflags, 0x2 | RFLAGS_IF);
    sys.put(Reg::Rip, CODE);
    sys.put_seg(SegReg::Cs, Segment::flat_code64(0x08));
    sys
}

/// An IOIO exit of a non-string `in`/`out`.
pub fn io_exit(port: u16, bytes: u8, direction: IoDirection, next_rip: u64) -> VmExit {
    let size = IoAccessSize::from_bytes(bytes).expect("1, 2 or 4 bytes");
    let io = IoioInfo { port, size, address_size: None, rep: false, string: false, direction, segment: None };
    VmExit::Io { io, next_rip }
}

/// Steps the loop once, which must go on.
pub fn step_ok(lp: &mut VcpuLoop<'_, '_, FakeSys>) {
    if let Err(stop) = lp.step() {
        panic!("expected the vCPU to go on, saw it stop: {stop}");
    }
}
