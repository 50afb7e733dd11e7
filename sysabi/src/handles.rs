//! Handles: how a process names the kernel objects it holds.
//!
//! A handle is only a name. The kernel looks up the object it names in
//! its own tables and checks that it belongs to the calling process, which
//! the kernel knows from the thread that made the call; a forged or stale
//! handle gets `NoSuchObject` or `NotOwner`, never another process's object.

/// A VM, created by `Sys::vm_create`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VmHandle(pub u16);

/// A vCPU of a VM, created by `Sys::vcpu_create`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VcpuHandle(pub u16);

/// A console: the right to write text to the hypervisor's console and to
/// read what is typed into it. Granted to a process when it is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConsoleHandle(pub u16);

/// A clock: the right to read the time and to wait for a deadline.
/// Granted to a process when it is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClockHandle(pub u16);

/// A share of the CPU: the right to give up the rest of one's time slice.
/// Granted to a process when it is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SchedHandle(pub u16);

/// What the kernel grants a process when it creates it: the handles of the
/// objects that are not created by calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grants {
    pub console: ConsoleHandle,
    pub clock: ClockHandle,
    pub sched: SchedHandle,
    /// A port of the switch between VMs (see [`crate::net`]).
    pub net: crate::net::NetHandle,
}
