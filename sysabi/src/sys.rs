//! The kernel's interface, as the VMM sees it: one trait, which the kernel
//! implements over its syscall layer and tests implement with scripted
//! exits.
//!
//! No call takes the caller's identity: the kernel works it out from the
//! thread that makes the call (its process, and that process's memory
//! container). Every object is named by a handle the caller must own.
use crate::cpuid::CpuidResult;
use crate::error::{GuestFault, SysError, SysResult};
use crate::exit::VmExit;
use crate::handles::{ClockHandle, ConsoleHandle, SchedHandle, VcpuHandle, VmHandle};
use crate::net::{GuestSpan, NetHandle, NetPortInfo};
use crate::regs::{rax_after_in, NextRipSource, Reg, SegReg};
use crate::stats::{CpuUsage, ExitStats, PathStats};
use vmcb::{EventInj, Segment};

/// A vCPU's place: its index in its VM (its APIC ID), the VM's id (what
/// guests name each other's VMs by), and how many vCPUs the VM has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuInfo {
    pub index: u32,
    pub vm_id: u32,
    pub vcpus: u32,
}

/// The kernel's calls. See `docs/architecture.md` for the door they form
/// and `docs/layers.md` for what each promises.
pub trait Sys {
    /// A VM with every I/O port and MSR intercepted (except the MSRs the
    /// VMCB holds) and no memory; its frames come from the caller's quota.
    fn vm_create(&self) -> SysResult<VmHandle>;
    /// Destroys a VM and its vCPUs, giving every frame back.
    fn vm_destroy(&self, vm: VmHandle) -> SysResult<()>;
    /// A vCPU of `vm` in the x86 reset state.
    fn vcpu_create(&self, vm: VmHandle) -> SysResult<VcpuHandle>;
    /// Backs `[gpa, gpa + len)` with fresh zeroed frames and maps them.
    fn npt_map(&self, vm: VmHandle, gpa: u64, len: u64) -> SysResult<()>;
    /// Copies guest RAM at `gpa` into `buf`.
    fn guest_read(&self, vm: VmHandle, gpa: u64, buf: &mut [u8]) -> SysResult<()>;
    /// Copies `data` into guest RAM at `gpa`; nothing is written unless all
    /// of it fits.
    fn guest_write(&self, vm: VmHandle, gpa: u64, data: &[u8]) -> SysResult<()>;
    /// Bytes of RAM mapped in `vm`.
    fn vm_ram(&self, vm: VmHandle) -> SysResult<u64>;
    /// Intercepts (or passes through) a guest I/O port.
    fn set_io_intercept(&self, vm: VmHandle, port: u16, intercept: bool) -> SysResult<()>;
    /// Declares that an IN of `size` bytes (1, 2 or 4) from the intercepted
    /// `port` always reads `value` and changes nothing: the kernel may then
    /// answer such reads itself, and the caller sees only the others.
    fn declare_constant_port(&self, vm: VmHandle, port: u16, size: u8, value: u32) -> SysResult<()>;
    /// Declares that a read of `size` bytes (1, 2, 4 or 8, within one page)
    /// at `gpa`, which is not RAM, always reads `value` and changes nothing:
    /// the kernel may then answer a plain load of it itself (a MOV or MOVZX
    /// into a 32- or 64-bit register), and the caller sees only the others.
    fn declare_constant_mmio(&self, vm: VmHandle, gpa: u64, size: u8, value: u64) -> SysResult<()>;

    /// Runs the guest until an exit the caller must handle, or until
    /// `deadline_ns` (then [`VmExit::Intr`]). The kernel answers exits that
    /// need no device model itself and enforces the caller's time slice.
    fn run(&self, vcpu: VcpuHandle, deadline_ns: u64) -> SysResult<VmExit>;
    /// With NRIPS, the address after the intercepted instruction.
    fn next_rip(&self, vcpu: VcpuHandle) -> SysResult<Option<u64>>;
    /// The intercepted instruction is done: RIP moves on, the interrupt
    /// shadow ends, a single-stepping guest gets its #DB.
    fn complete_instruction(&self, vcpu: VcpuHandle, next_rip: u64, from: NextRipSource) -> SysResult<()>;
    /// Completes an intercepted IN of `size` bytes (1, 2 or 4) that read
    /// `value`: into RAX as the CPU would ([`rax_after_in`]), then the
    /// guest resumes at `next_rip` (EXITINFO2). One call for the three a
    /// port read needs; this default makes them one by one, the kernel
    /// answers in one.
    fn complete_in(&self, vcpu: VcpuHandle, size: u8, value: u32, next_rip: u64) -> SysResult<()> {
        let rax = rax_after_in(self.reg(vcpu, Reg::Rax)?, size, value).ok_or(SysError::BadArgument)?;
        self.set_reg(vcpu, Reg::Rax, rax)?;
        self.complete_instruction(vcpu, next_rip, NextRipSource::IoExitInfo)
    }
    /// Queues an event: an exception or NMI for the next entry, an
    /// external interrupt for when the guest can take it.
    fn inject(&self, vcpu: VcpuHandle, ev: EventInj) -> SysResult<()>;
    /// A posted external interrupt has not been taken yet.
    fn interrupt_pending(&self, vcpu: VcpuHandle) -> SysResult<bool>;
    /// Takes back the posted external interrupt the guest has not taken
    /// yet and returns its vector (`None` if none is posted).
    fn withdraw_interrupt(&self, vcpu: VcpuHandle) -> SysResult<Option<u8>>;
    /// Traps (or stops trapping) guest exception `vector` (0..32).
    fn set_exception_intercept(&self, vcpu: VcpuHandle, vector: u8, intercept: bool) -> SysResult<()>;
    /// Traps (or stops trapping) the guest's IRET, before it executes: the
    /// VMM tracks the guest's NMI blocking, which ends at the next IRET.
    fn set_iret_intercept(&self, vcpu: VcpuHandle, intercept: bool) -> SysResult<()>;
    fn reg(&self, vcpu: VcpuHandle, r: Reg) -> SysResult<u64>;
    /// The registers `which` names, into `out` (as long as `which`): one
    /// call for what an exit handler needs at once. This default makes one
    /// [`Sys::reg`] call per register; the kernel answers in one.
    fn regs(&self, vcpu: VcpuHandle, which: &[Reg], out: &mut [u64]) -> SysResult<()> {
        if which.len() != out.len() {
            return Err(SysError::BadArgument);
        }
        for (r, o) in which.iter().zip(out.iter_mut()) {
            *o = self.reg(vcpu, *r)?;
        }
        Ok(())
    }
    fn set_reg(&self, vcpu: VcpuHandle, r: Reg, value: u64) -> SysResult<()>;
    fn seg(&self, vcpu: VcpuHandle, r: SegReg) -> SysResult<Segment>;
    /// The instruction bytes at the guest's RIP, fetched as the CPU fetches
    /// code: through the guest's page tables, with the VM's walk limits,
    /// at the guest's CPL, in the mode its CS, CR0, EFER and RFLAGS give.
    /// `BadGuestAddress` if not even the first byte can be fetched. One
    /// call where the walk's reads through [`Sys::guest_read`] took five
    /// or more.
    fn code_at_rip(&self, vcpu: VcpuHandle) -> SysResult<CodeAtRip>;
    fn set_seg(&self, vcpu: VcpuHandle, r: SegReg, s: Segment) -> SysResult<()>;
    /// MOV to CR4 of `value`, checked as the CPU checks it against the
    /// guest's CPUID: done, or the fault the guest gets.
    fn write_cr4(&self, vcpu: VcpuHandle, value: u64) -> SysResult<Result<(), GuestFault>>;
    /// XSETBV of XCR[`index`], checked the same way.
    fn xsetbv(&self, vcpu: VcpuHandle, index: u32, value: u64) -> SysResult<Result<(), GuestFault>>;
    /// What the guest's CPUID(`leaf`, `sub`) returns on `vcpu`.
    fn cpuid(&self, vcpu: VcpuHandle, leaf: u32, sub: u32) -> SysResult<CpuidResult>;
    fn vcpu_info(&self, vcpu: VcpuHandle) -> SysResult<VcpuInfo>;
    /// A copy of the vCPU's exit statistics.
    fn stats(&self, vcpu: VcpuHandle) -> SysResult<ExitStats>;
    fn reset_stats(&self, vcpu: VcpuHandle) -> SysResult<()>;
    /// How the vCPU's exits were served (next-RIP sources, TLB flushes).
    fn paths(&self, vcpu: VcpuHandle) -> SysResult<PathStats>;

    /// Nanoseconds since boot.
    fn now_ns(&self, clock: ClockHandle) -> SysResult<u64>;
    /// The TSC as the guest reads it.
    fn guest_tsc(&self, clock: ClockHandle) -> SysResult<u64>;
    /// TSC ticks per second.
    fn tsc_hz(&self, clock: ClockHandle) -> SysResult<u64>;

    /// Lets other ready threads run; false if none was ready.
    fn yield_now(&self, sched: SchedHandle) -> SysResult<bool>;
    /// Idles until `deadline_ns` or the next host interrupt: other ready
    /// threads run first, else the CPU halts.
    fn idle_until(&self, sched: SchedHandle, deadline_ns: u64) -> SysResult<()>;
    /// The calling process's use of the CPU since it was created.
    fn cpu_usage(&self, sched: SchedHandle) -> SysResult<CpuUsage>;

    /// Writes text to the hypervisor's console.
    fn console_write(&self, console: ConsoleHandle, bytes: &[u8]) -> SysResult<()>;
    /// A byte typed into the console, if one is waiting.
    fn console_read(&self, console: ConsoleHandle) -> SysResult<Option<u8>>;

    /// Queues `msg` for the process that owns VM `peer` (VM ids, as
    /// [`VcpuInfo::vm_id`]); never blocks.
    fn chan_send(&self, peer: u32, msg: &[u8]) -> SysResult<()>;
    /// Takes the next message from the process that owns VM `peer`.
    fn chan_recv(&self, peer: u32, buf: &mut [u8]) -> SysResult<usize>;

    /// The port's MAC address and counters.
    fn net_info(&self, port: NetHandle) -> SysResult<NetPortInfo>;
    /// Sends the frame gathered from `frame` (guest RAM of `vm`, at most
    /// [`crate::net::MAX_SPANS`] spans, [`crate::net::MIN_FRAME`] to
    /// [`crate::net::MAX_FRAME`] bytes in all) through the switch; never
    /// blocks. A frame the switch drops (no such destination, a full queue)
    /// is counted in [`crate::NetStats`], not refused.
    fn net_send(&self, port: NetHandle, vm: VmHandle, frame: &[GuestSpan]) -> SysResult<()>;
    /// Scatters the next frame queued for the port into `into` (guest RAM of
    /// `vm`) and gives its length; `None` if no frame is waiting. If it
    /// does not fit or a span is not RAM, the frame stays queued.
    fn net_recv(&self, port: NetHandle, vm: VmHandle, into: &[GuestSpan]) -> SysResult<Option<usize>>;
    /// Runs `body(0)` on the calling thread and, at the same time,
    /// `body(i)` for each `i` in `1..=extra.len()` on a new thread of the
    /// caller's process, placed as `extra[i - 1]` says. Returns when every
    /// body has returned; the new threads end there. A VMM runs one vCPU
    /// per body. If a thread cannot be made, no body runs and the error is
    /// returned.
    fn fork_join(&self, sched: SchedHandle, extra: &[ThreadCpu], body: &(dyn Fn(usize) + Sync)) -> SysResult<()>;
    /// Tells vCPU `vcpu` that it has an event to look at (an IPI, an
    /// interrupt another thread raised): its `run` in progress returns
    /// [`VmExit::Intr`] soon (the host CPU running it is interrupted), or
    /// its next `run` returns that at once; its `vcpu_halt` in progress or
    /// next returns at once. One kick is remembered until one of those
    /// takes it.
    fn vcpu_kick(&self, vcpu: VcpuHandle) -> SysResult<()>;
    /// A halted vCPU waits: as [`Sys::idle_until`], and returns early when
    /// `vcpu` is kicked (taking the kick).
    fn vcpu_halt(&self, sched: SchedHandle, vcpu: VcpuHandle, deadline_ns: u64) -> SysResult<()>;
}

/// Where [`Sys::fork_join`] puts a new thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadCpu {
    /// The host CPU with the fewest VM threads.
    LeastLoaded,
    /// This host CPU (refused with `BadArgument` if it is not running).
    Cpu(u32),
}

/// What [`Sys::code_at_rip`] fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeAtRip {
    pub rip: u64,
    /// The code's default operand size in bits: 16, 32 or 64.
    pub bits: u8,
    /// How many of `bytes` were fetched (1 to 15): fewer where a later
    /// byte's page faulted or lies outside RAM.
    pub len: u8,
    pub bytes: [u8; 15],
}
