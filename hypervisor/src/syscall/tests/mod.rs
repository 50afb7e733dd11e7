//! Host tests of every kernel call: for each, that it serves its owner,
//! refuses another process (`NotOwner`), refuses a stale handle (the object
//! is gone, or its slot now holds another process's object) and refuses a
//! bad argument. They run on the kernel's own global instances over the
//! simulated machine of `arch::sim` (see `crate::testkit`), with the world
//! switch scripted.
use super::*;
use crate::arch::phys::PAGE;
use crate::arch::sim::{self, ScriptedExit};
use crate::testkit::{kernel, Process};

mod door;
mod granted_calls;
mod ipc_calls;
mod net_calls;
mod vcpu_calls;
mod vcpu_thread_calls;
mod vm_calls;

/// Frames enough for a VM with a vCPU and a few MiB of RAM.
const QUOTA: u64 = 4096;

/// Two processes, each with its own VM and one vCPU in it.
struct TwoVms {
    a: Process,
    b: Process,
    vm_a: VmHandle,
    vcpu_a: VcpuHandle,
    vm_b: VmHandle,
}

fn two_vms() -> TwoVms {
    let a = Process::new(QUOTA);
    let b = Process::new(QUOTA);
    let vm_a = sys_vm_create(a.caller()).expect("A's VM");
    let vcpu_a = sys_vcpu_create(a.caller(), vm_a).expect("A's vCPU");
    let vm_b = sys_vm_create(b.caller()).expect("B's VM");
    TwoVms { a, b, vm_a, vcpu_a, vm_b }
}

/// A kernel call by name, on a handle of type `H`, its result reduced to
/// success or the error.
type NamedCall<H> = (&'static str, fn(Caller, H) -> SysResult<()>);

/// The result of each call in `calls`, by name, where it differs from
/// `expected`: empty when every call answered as expected.
fn unexpected<H: Copy>(calls: &[NamedCall<H>], caller: Caller, handle: H, expected: SysResult<()>) -> Vec<String> {
    calls
        .iter()
        .filter_map(|(name, call)| {
            let seen = call(caller, handle);
            (seen != expected).then(|| format!("{name}: expected {expected:?}, saw {seen:?}"))
        })
        .collect()
}

/// The exit code of `code` as the VMCB holds it.
fn exit(code: vmcb::ExitCode) -> ScriptedExit {
    ScriptedExit::new(code.to_raw())
}
