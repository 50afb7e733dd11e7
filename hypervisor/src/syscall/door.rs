//! The door: the kernel's implementation of [`sysabi::Sys`]. Each call
//! works out who is calling from the thread that makes it
//! ([`Caller::current`]) and passes that to the call; nothing the caller
//! says about itself is believed.
use super::*;
use sysabi::{
    ClockHandle, ConsoleHandle, CpuUsage, CpuidResult, ExitStats, GuestSpan, NetHandle, NetPortInfo, PathStats,
    SchedHandle, Sys, ThreadCpu,
};
use vmcb::{EventInj, Segment};

/// The kernel, as the VMM calls it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kernel;

impl Sys for Kernel {
    fn vm_create(&self) -> SysResult<VmHandle> {
        sys_vm_create(Caller::current()?)
    }
    fn vm_destroy(&self, vm: VmHandle) -> SysResult<()> {
        sys_vm_destroy(Caller::current()?, vm)
    }
    fn vcpu_create(&self, vm: VmHandle) -> SysResult<VcpuHandle> {
        sys_vcpu_create(Caller::current()?, vm)
    }
    fn npt_map(&self, vm: VmHandle, gpa: u64, len: u64) -> SysResult<()> {
        sys_npt_map(Caller::current()?, vm, gpa, len)
    }
    fn guest_read(&self, vm: VmHandle, gpa: u64, buf: &mut [u8]) -> SysResult<()> {
        sys_guest_read(Caller::current()?, vm, gpa, buf)
    }
    fn guest_write(&self, vm: VmHandle, gpa: u64, data: &[u8]) -> SysResult<()> {
        sys_guest_write(Caller::current()?, vm, gpa, data)
    }
    fn vm_ram(&self, vm: VmHandle) -> SysResult<u64> {
        sys_vm_ram(Caller::current()?, vm)
    }
    fn set_io_intercept(&self, vm: VmHandle, port: u16, intercept: bool) -> SysResult<()> {
        sys_set_io_intercept(Caller::current()?, vm, port, intercept)
    }
    fn declare_constant_port(&self, vm: VmHandle, port: u16, size: u8, value: u32) -> SysResult<()> {
        sys_declare_constant_port(Caller::current()?, vm, port, size, value)
    }
    fn declare_constant_mmio(&self, vm: VmHandle, gpa: u64, size: u8, value: u64) -> SysResult<()> {
        sys_declare_constant_mmio(Caller::current()?, vm, gpa, size, value)
    }
    fn run(&self, vcpu: VcpuHandle, deadline_ns: u64) -> SysResult<VmExit> {
        sys_run(Caller::current()?, vcpu, deadline_ns)
    }
    fn next_rip(&self, vcpu: VcpuHandle) -> SysResult<Option<u64>> {
        sys_get_next_rip(Caller::current()?, vcpu)
    }
    fn complete_instruction(&self, vcpu: VcpuHandle, next_rip: u64, from: NextRipSource) -> SysResult<()> {
        sys_complete_instruction(Caller::current()?, vcpu, next_rip, from)
    }
    fn complete_in(&self, vcpu: VcpuHandle, size: u8, value: u32, next_rip: u64) -> SysResult<()> {
        sys_complete_in(Caller::current()?, vcpu, size, value, next_rip)
    }
    fn inject(&self, vcpu: VcpuHandle, ev: EventInj) -> SysResult<()> {
        sys_inject(Caller::current()?, vcpu, ev)
    }
    fn interrupt_pending(&self, vcpu: VcpuHandle) -> SysResult<bool> {
        sys_check_pending_interrupt(Caller::current()?, vcpu)
    }
    fn withdraw_interrupt(&self, vcpu: VcpuHandle) -> SysResult<Option<u8>> {
        sys_withdraw_interrupt(Caller::current()?, vcpu)
    }
    fn set_exception_intercept(&self, vcpu: VcpuHandle, vector: u8, intercept: bool) -> SysResult<()> {
        sys_set_exception_intercept(Caller::current()?, vcpu, vector, intercept)
    }
    fn set_iret_intercept(&self, vcpu: VcpuHandle, intercept: bool) -> SysResult<()> {
        sys_set_iret_intercept(Caller::current()?, vcpu, intercept)
    }
    fn reg(&self, vcpu: VcpuHandle, r: Reg) -> SysResult<u64> {
        sys_reg_get(Caller::current()?, vcpu, r)
    }
    fn regs(&self, vcpu: VcpuHandle, which: &[Reg], out: &mut [u64]) -> SysResult<()> {
        sys_regs_get(Caller::current()?, vcpu, which, out)
    }
    fn set_reg(&self, vcpu: VcpuHandle, r: Reg, value: u64) -> SysResult<()> {
        sys_reg_set(Caller::current()?, vcpu, r, value)
    }
    fn seg(&self, vcpu: VcpuHandle, r: SegReg) -> SysResult<Segment> {
        sys_seg_get(Caller::current()?, vcpu, r)
    }
    fn code_at_rip(&self, vcpu: VcpuHandle) -> SysResult<sysabi::CodeAtRip> {
        sys_code_at_rip(Caller::current()?, vcpu)
    }
    fn set_seg(&self, vcpu: VcpuHandle, r: SegReg, s: Segment) -> SysResult<()> {
        sys_seg_set(Caller::current()?, vcpu, r, s)
    }
    fn write_cr4(&self, vcpu: VcpuHandle, value: u64) -> SysResult<Result<(), GuestFault>> {
        sys_write_cr4(Caller::current()?, vcpu, value)
    }
    fn xsetbv(&self, vcpu: VcpuHandle, index: u32, value: u64) -> SysResult<Result<(), GuestFault>> {
        sys_xsetbv(Caller::current()?, vcpu, index, value)
    }
    fn cpuid(&self, vcpu: VcpuHandle, leaf: u32, sub: u32) -> SysResult<CpuidResult> {
        sys_cpuid(Caller::current()?, vcpu, leaf, sub)
    }
    fn vcpu_info(&self, vcpu: VcpuHandle) -> SysResult<VcpuInfo> {
        sys_vcpu_info(Caller::current()?, vcpu)
    }
    fn stats(&self, vcpu: VcpuHandle) -> SysResult<ExitStats> {
        sys_get_stats(Caller::current()?, vcpu)
    }
    fn reset_stats(&self, vcpu: VcpuHandle) -> SysResult<()> {
        sys_reset_stats(Caller::current()?, vcpu)
    }
    fn paths(&self, vcpu: VcpuHandle) -> SysResult<PathStats> {
        sys_get_paths(Caller::current()?, vcpu)
    }
    fn now_ns(&self, clock: ClockHandle) -> SysResult<u64> {
        sys_now_ns(Caller::current()?, clock)
    }
    fn guest_tsc(&self, clock: ClockHandle) -> SysResult<u64> {
        sys_guest_tsc(Caller::current()?, clock)
    }
    fn tsc_hz(&self, clock: ClockHandle) -> SysResult<u64> {
        sys_tsc_hz(Caller::current()?, clock)
    }
    fn yield_now(&self, sched: SchedHandle) -> SysResult<bool> {
        sys_yield(Caller::current()?, sched)
    }
    fn idle_until(&self, sched: SchedHandle, deadline_ns: u64) -> SysResult<()> {
        sys_idle_until(Caller::current()?, sched, deadline_ns)
    }
    fn fork_join(&self, sched: SchedHandle, extra: &[ThreadCpu], body: &(dyn Fn(usize) + Sync)) -> SysResult<()> {
        sys_fork_join(Caller::current()?, sched, extra, body)
    }
    fn vcpu_kick(&self, vcpu: VcpuHandle) -> SysResult<()> {
        sys_vcpu_kick(Caller::current()?, vcpu)
    }
    fn vcpu_halt(&self, sched: SchedHandle, vcpu: VcpuHandle, deadline_ns: u64) -> SysResult<()> {
        sys_vcpu_halt(Caller::current()?, sched, vcpu, deadline_ns)
    }
    fn cpu_usage(&self, sched: SchedHandle) -> SysResult<CpuUsage> {
        sys_cpu_usage(Caller::current()?, sched)
    }
    fn console_write(&self, console: ConsoleHandle, bytes: &[u8]) -> SysResult<()> {
        sys_console_write(Caller::current()?, console, bytes)
    }
    fn console_read(&self, console: ConsoleHandle) -> SysResult<Option<u8>> {
        sys_console_read(Caller::current()?, console)
    }
    fn chan_send(&self, peer: u32, msg: &[u8]) -> SysResult<()> {
        sys_chan_send(Caller::current()?, peer, msg)
    }
    fn chan_recv(&self, peer: u32, buf: &mut [u8]) -> SysResult<usize> {
        sys_chan_recv(Caller::current()?, peer, buf)
    }
    fn net_info(&self, port: NetHandle) -> SysResult<NetPortInfo> {
        sys_net_info(Caller::current()?, port)
    }
    fn net_send(&self, port: NetHandle, vm: VmHandle, frame: &[GuestSpan]) -> SysResult<()> {
        sys_net_send(Caller::current()?, port, vm, frame)
    }
    fn net_recv(&self, port: NetHandle, vm: VmHandle, into: &[GuestSpan]) -> SysResult<Option<usize>> {
        sys_net_recv(Caller::current()?, port, vm, into)
    }
}
