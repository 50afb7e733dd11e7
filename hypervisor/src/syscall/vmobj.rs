//! VM and vCPU objects behind handles, and the calls that act on them.
use super::fast;
use super::time::{CpuTime, Entry};
use super::{SysError, SysResult};
use crate::arch::frames::{self, FrameError, PoolId};
use crate::arch::phys::PAGE;
use crate::arch::vmspace::MapError;
use crate::sync::{Lock, LockGuard, RwLock};
use crate::vm::cpuid::CpuidResult;
use crate::vm::cr::GuestFault;
use crate::vm::{CpuVm, NextRipSource, Reg, SegReg, Vcpu, Vm, VmExit};
use core::sync::atomic::{AtomicU32, Ordering};
use guest_x86::mem::GuestMemory;
use npt::NptError;
use vmcb::{EventInj, Segment};

pub const MAX_VMS: usize = 8;
pub const MAX_VCPUS: usize = 16;
const LARGE: u64 = 2 << 20;
/// The largest physically contiguous piece of guest RAM we ask for at once.
const MAX_CHUNK: u64 = 64 << 20;

/// Who is calling: the process of the thread that made the call. Only the
/// kernel makes one (`Caller::current`); no call takes it from its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pid: crate::proc::Pid,
}

impl Caller {
    /// The process of the calling thread, which the CPU is charged to from
    /// now on (see [`account`](super::account)).
    pub(crate) fn current() -> SysResult<Caller> {
        let owner = crate::thread::current_owner().ok_or(SysError::NoSuchObject)?;
        let pid = crate::proc::Pid::from_index(owner as usize);
        super::account::charge_caller(pid);
        Ok(Caller { pid })
    }

    /// A caller for the kernel's own tests of the calls.
    #[cfg(test)]
    pub(crate) fn of(pid: crate::proc::Pid) -> Caller {
        Caller { pid }
    }

    pub(crate) fn pid(self) -> crate::proc::Pid {
        self.pid
    }

    /// The pool the caller's frames come from (its process's container).
    fn pool(self) -> SysResult<PoolId> {
        crate::proc::container_of(self.pid).map(PoolId::from).map_err(|_| SysError::NoSuchObject)
    }
}

pub use sysabi::{VcpuHandle, VcpuInfo, VmHandle};

struct VmObj {
    owner: Caller,
    vm: Vm,
    vcpus: u16,
}

struct VcpuObj {
    owner: Caller,
    vm: VmHandle,
    /// The vCPU's index within its VM (its APIC ID).
    index: u16,
    vcpu: Vcpu,
    /// The fast path's one-entry translation of the guest's code page.
    code_page: fast::CodeCache,
    /// The fast path's last decode of a load from a constant MMIO register.
    load_memo: Option<super::constant_mmio::LoadMemo>,
    /// How long its slices ran over, owed from its next ones
    /// ([`CpuTime::entry`]).
    slice_debt_ns: u64,
}

/// The VMs. A vCPU's thread holds its VM's slot for reading across each
/// VMRUN (and the fast path after it), so vCPUs of one VM run at once on
/// several CPUs, and copies to and from guest RAM go on beside them. A
/// change to what the VMCBs point at (the nested page table, the I/O
/// permission map, the VM itself) writes the slot: see [`vm_write`].
static VMS: [RwLock<Option<VmObj>>; MAX_VMS] = [const { RwLock::new(None) }; MAX_VMS];
/// Per VM slot, the CPUs on which one of its vCPUs' threads is in
/// `run_until_exit` (a bit per CPU), read by a writer of the slot to kick
/// them out of their guests. Kept outside the slot: the writer reads it
/// before it may touch the slot's value.
static IN_GUEST: [AtomicU32; MAX_VMS] = [const { AtomicU32::new(0) }; MAX_VMS];
static VCPUS: [Lock<Option<VcpuObj>>; MAX_VCPUS] = [const { Lock::new(None) }; MAX_VCPUS];
/// One CPU's state in the kernel: the vm layer's, and its timekeeping.
pub(super) struct PerCpu {
    vm: CpuVm,
    pub(super) time: CpuTime,
}

pub(super) static CPUS: [Lock<Option<PerCpu>>; crate::arch::gdt::MAX_CPUS] =
    [const { Lock::new(None) }; crate::arch::gdt::MAX_CPUS];

/// Registers this CPU with the vm layer (called once per CPU at boot), with
/// what its DR0-DR3 hold.
pub fn cpu_init(cpu: usize, caps: crate::vm::SvmCaps, host_dr: [u64; 4]) {
    let vm = CpuVm::new(cpu, caps, crate::vm::host_state_limits(), host_dr);
    *CPUS[cpu].lock() = Some(PerCpu { vm, time: CpuTime::new() });
}

fn map_err(e: FrameError) -> SysError {
    match e {
        FrameError::OutOfQuota => SysError::OutOfQuota,
        FrameError::OutOfMemory | FrameError::Refused | FrameError::NoAllocator => SysError::OutOfMemory,
    }
}

fn vm_slot(caller: Caller, h: VmHandle) -> SysResult<&'static RwLock<Option<VmObj>>> {
    let slot = VMS.get(usize::from(h.0)).ok_or(SysError::NoSuchObject)?;
    owned(slot.read().as_ref(), caller)?;
    Ok(slot)
}

/// Writes VM slot `index`, once every CPU running one of its vCPUs has
/// left the guest: the TLB shootdown. Closing the slot to readers keeps
/// the vCPUs out of their guests from then on; the CPUs that may be in one
/// now ([`IN_GUEST`]) get the kick IPI, which ends the guest's run at
/// once (#VMEXIT(INTR)); the write waits for their threads to let go of
/// the slot. A change to the nested page table bumps the VM's NPT
/// generation under this lock, so each vCPU's next VMRUN, on whatever CPU,
/// flushes its ASID's TLB entries (or takes a fresh ASID) before the guest
/// runs again (`Vcpu::prepare_tlb`). docs/layers.md has the protocol.
fn vm_write(index: usize) -> SysResult<crate::sync::WriteGuard<'static, Option<VmObj>>> {
    let slot = VMS.get(index).ok_or(SysError::NoSuchObject)?;
    let running = &IN_GUEST[index];
    Ok(slot.write_nudging(|| {
        let me = crate::arch::cpu::current();
        // A read-modify-write: ordered with the vCPU threads' own (see run_until_exit).
        let cpus = running.fetch_or(0, Ordering::SeqCst);
        (0..crate::thread::MAX_CPUS)
            .filter(|&c| cpus & (1 << c) != 0 && c != me)
            .for_each(|c| crate::thread::kick_cpu(crate::thread::CpuId(c)));
    }))
}

fn vcpu_slot(caller: Caller, h: VcpuHandle) -> SysResult<&'static Lock<Option<VcpuObj>>> {
    let slot = VCPUS.get(usize::from(h.0)).ok_or(SysError::NoSuchObject)?;
    owned(slot.lock().as_ref(), caller)?;
    Ok(slot)
}

/// Objects that belong to a process.
trait Owned {
    fn owner(&self) -> Caller;
}

impl Owned for VmObj {
    fn owner(&self) -> Caller {
        self.owner
    }
}

impl Owned for VcpuObj {
    fn owner(&self) -> Caller {
        self.owner
    }
}

/// The object in a locked slot, if it exists and belongs to `caller`.
fn owned<O: Owned, R: core::ops::Deref<Target = O>>(slot: Option<R>, caller: Caller) -> SysResult<R> {
    match slot {
        None => Err(SysError::NoSuchObject),
        Some(o) if o.owner().pid != caller.pid => Err(SysError::NotOwner),
        Some(o) => Ok(o),
    }
}

/// Runs `f` on the caller's vCPU `h`, under one lock of its slot.
fn with_vcpu<T>(caller: Caller, h: VcpuHandle, f: impl FnOnce(&mut Vcpu) -> T) -> SysResult<T> {
    let mut g = VCPUS.get(usize::from(h.0)).ok_or(SysError::NoSuchObject)?.lock();
    Ok(f(&mut owned(g.as_mut(), caller)?.vcpu))
}

/// Runs `f` on the caller's VM `h`, reading its slot (beside running vCPUs).
fn with_vm<T>(caller: Caller, h: VmHandle, f: impl FnOnce(&VmObj) -> SysResult<T>) -> SysResult<T> {
    let g = VMS.get(usize::from(h.0)).ok_or(SysError::NoSuchObject)?.read();
    f(owned(g.as_ref(), caller)?)
}

/// Runs `f` on the caller's VM `h`, writing its slot ([`vm_write`]: its
/// vCPUs are out of their guests meanwhile).
fn with_vm_mut<T>(caller: Caller, h: VmHandle, f: impl FnOnce(&mut VmObj) -> SysResult<T>) -> SysResult<T> {
    let mut g = vm_write(usize::from(h.0))?;
    f(owned(g.as_mut(), caller)?)
}

/// Creates a VM with every I/O port and MSR intercepted (except the MSRs
/// the VMCB holds) and an empty nested page table.
pub fn sys_vm_create(caller: Caller) -> SysResult<VmHandle> {
    let pool = caller.pool()?;
    if VMS.iter().all(|s| s.read().is_some()) {
        return Err(SysError::NoSlot);
    }
    let vm = Vm::new(pool, fast::cpu_model()).map_err(map_err)?;
    // The slot is claimed under its own lock, after the VM is built: two
    // CPUs creating VMs at once take two slots. Without one, the VM's
    // frames go back as it drops.
    let (index, mut g) = VMS
        .iter()
        .enumerate()
        .find_map(|(i, s)| {
            let g = s.write();
            g.is_none().then_some((i, g))
        })
        .ok_or(SysError::NoSlot)?;
    IN_GUEST[index].store(0, Ordering::SeqCst);
    *g = Some(VmObj { owner: caller, vm, vcpus: 0 });
    Ok(VmHandle(index as u16))
}

/// The first free slot of `slots`, locked: the lock is held from the look
/// that finds it free to the caller's filling it.
fn claim_free<T>(slots: &'static [Lock<Option<T>>]) -> Option<(usize, LockGuard<'static, Option<T>>)> {
    slots.iter().enumerate().find_map(|(i, s)| {
        let g = s.lock();
        g.is_none().then_some((i, g))
    })
}

/// Creates a vCPU of `vm` in the x86 reset state.
pub fn sys_vcpu_create(caller: Caller, vm: VmHandle) -> SysResult<VcpuHandle> {
    let pool = caller.pool()?;
    vm_slot(caller, vm)?;
    // A free vCPU slot first, then the VM: sys_run's lock order. The VM's
    // owner is checked again under its lock, which is held while the vCPU
    // is built and counted (written: the VM's running vCPUs are kicked out
    // meanwhile, as for every write of a VM slot).
    let (slot_index, mut g) = claim_free(&VCPUS).ok_or(SysError::NoSlot)?;
    let mut vg = vm_write(usize::from(vm.0))?;
    let vmobj = owned(vg.as_mut(), caller)?;
    let vcpu = Vcpu::new(&mut vmobj.vm, pool).map_err(map_err)?;
    let index = vmobj.vcpus;
    vmobj.vcpus += 1;
    *g = Some(VcpuObj {
        owner: caller,
        vm,
        index,
        vcpu,
        code_page: fast::CodeCache::default(),
        load_memo: None,
        slice_debt_ns: 0,
    });
    super::kick::vcpu_created(slot_index, caller, vm);
    Ok(VcpuHandle(slot_index as u16))
}

/// Destroys a VM and all its vCPUs, returning every frame to the caller's
/// container.
pub fn sys_vm_destroy(caller: Caller, vm: VmHandle) -> SysResult<()> {
    vm_slot(caller, vm)?;
    // The VM's running vCPUs leave their guests now, not at their slice
    // ends, and let go of the slot locks taken below.
    super::kick::kick_vm(caller, vm);
    for (i, v) in VCPUS.iter().enumerate() {
        // sys_run's lock order: the vCPU's, then the VM's.
        let mut g = v.lock();
        if g.as_ref().is_some_and(|o| o.vm == vm && o.owner.pid == caller.pid) {
            let obj = g.take().ok_or(SysError::NoSuchObject)?;
            super::kick::vcpu_destroyed(i);
            if let Some(vmobj) = vm_write(usize::from(vm.0))?.as_mut() {
                vmobj.vm.release_vcpu(obj.vcpu);
            }
        }
    }
    // Dropping the VM gives back its nested page table, RAM and permission
    // maps, once no CPU runs its guest (vm_write).
    let mut g = vm_write(usize::from(vm.0))?;
    owned(g.as_ref(), caller)?;
    g.take();
    Ok(())
}

/// Ends process `pid` once its threads have exited: destroys the VMs it
/// still owns (a VMM that stopped early may leave one), revokes its
/// console, clock and CPU share, and gives back its pid, quota and
/// channels (`proc::proc_destroy`). Returns the VMs it had to destroy.
///
/// Errors: `InUse` while a thread of `pid` runs; the proc layer's errors
/// (e.g. frames it still holds).
pub fn end_process(pid: crate::proc::Pid) -> Result<usize, crate::proc::ProcError> {
    if crate::proc::thread_count(pid) != 0 {
        return Err(crate::proc::ProcError::InUse);
    }
    let owner = Caller { pid };
    let mut left = 0;
    for (i, slot) in VMS.iter().enumerate() {
        let owned = slot.read().as_ref().is_some_and(|o| o.owner == owner);
        if owned && sys_vm_destroy(owner, VmHandle(i as u16)).is_ok() {
            left += 1;
        }
    }
    super::revoke_process(pid);
    crate::proc::proc_destroy(pid)?;
    super::ipc::forget_channels(pid);
    Ok(left)
}

/// Backs `[gpa, gpa + len)` with fresh zeroed frames from the caller's
/// container and maps them, using 2 MiB pages where alignment allows.
pub fn sys_npt_map(caller: Caller, vm: VmHandle, gpa: u64, len: u64) -> SysResult<()> {
    let pool = caller.pool()?;
    if !gpa.is_multiple_of(PAGE)
        || !len.is_multiple_of(PAGE)
        || len == 0
        || gpa.checked_add(len).is_none_or(|e| e > 1 << 40)
    {
        return Err(SysError::BadArgument);
    }
    with_vm_mut(caller, vm, |obj| {
        let mut done = 0;
        while done < len {
            let at = gpa + done;
            let left = len - done;
            // The largest 2 MiB-multiple piece we can get, else 4 KiB frames.
            let mut want =
                if at.is_multiple_of(LARGE) && left >= LARGE { (left.min(MAX_CHUNK)) & !(LARGE - 1) } else { PAGE };
            let run = loop {
                let align = if want >= LARGE { (LARGE / PAGE) as usize } else { 1 };
                match frames::alloc(pool, (want / PAGE) as usize, align) {
                    Ok(r) => break r,
                    Err(_) if want > LARGE => want = (want / 2) & !(LARGE - 1),
                    Err(e) => return Err(map_err(e)),
                }
            };
            let rlen = run.len();
            obj.vm.map_ram(at, run).map_err(|e| match e {
                MapError::TooManyChunks => SysError::NoSlot,
                MapError::Npt(NptError::OutOfFrames) => SysError::OutOfQuota,
                MapError::Npt(_) => SysError::BadArgument,
            })?;
            done += rlen;
        }
        Ok(())
    })
}

/// Copies `[gpa, gpa + buf.len())` of guest RAM into `buf`.
pub fn sys_guest_read(caller: Caller, vm: VmHandle, gpa: u64, buf: &mut [u8]) -> SysResult<()> {
    with_vm(caller, vm, |obj| obj.vm.ram().read(gpa, buf).map_err(|_| SysError::BadGuestAddress))
}

/// Copies `data` into guest RAM at `gpa`; a range that is not all RAM
/// changes nothing.
pub fn sys_guest_write(caller: Caller, vm: VmHandle, gpa: u64, data: &[u8]) -> SysResult<()> {
    with_vm(caller, vm, |obj| obj.vm.ram().write_shared(gpa, data).map_err(|_| SysError::BadGuestAddress))
}

/// The pieces of `spans` that `len` bytes fill, in order: (gpa, offset in
/// the bytes, length).
fn pieces(spans: &[sysabi::GuestSpan], len: usize) -> impl Iterator<Item = (u64, usize, usize)> + '_ {
    spans.iter().scan(0usize, move |at, s| {
        let n = (s.len as usize).min(len - *at);
        let piece = (s.gpa, *at, n);
        *at += n;
        Some(piece)
    })
}

/// Copies the guest RAM that `spans` name into `buf`, which is as long as
/// they are in all, under one lock of the VM's slot.
pub(super) fn gather(caller: Caller, vm: VmHandle, spans: &[sysabi::GuestSpan], buf: &mut [u8]) -> SysResult<()> {
    with_vm(caller, vm, |obj| {
        for (gpa, at, n) in pieces(spans, buf.len()) {
            obj.vm.ram().read(gpa, &mut buf[at..at + n]).map_err(|_| SysError::BadGuestAddress)?;
        }
        Ok(())
    })
}

/// Copies `data` into the guest RAM that `spans` name, in order (they hold
/// at least as much), under one lock of the VM's slot; nothing is written
/// unless every piece is RAM.
pub(super) fn scatter(caller: Caller, vm: VmHandle, spans: &[sysabi::GuestSpan], data: &[u8]) -> SysResult<()> {
    with_vm(caller, vm, |obj| {
        let ram = obj.vm.ram();
        for (gpa, _, n) in pieces(spans, data.len()) {
            ram.check_range(gpa, n as u64).map_err(|_| SysError::BadGuestAddress)?;
        }
        for (gpa, at, n) in pieces(spans, data.len()) {
            ram.write_shared(gpa, &data[at..at + n]).map_err(|_| SysError::BadGuestAddress)?;
        }
        Ok(())
    })
}

/// Bytes of guest RAM mapped in `vm`.
pub fn sys_vm_ram(caller: Caller, vm: VmHandle) -> SysResult<u64> {
    with_vm(caller, vm, |obj| Ok(obj.vm.ram().ram_bytes()))
}

/// Intercept (or pass through) a guest I/O port.
pub fn sys_set_io_intercept(caller: Caller, vm: VmHandle, port: u16, intercept: bool) -> SysResult<()> {
    with_vm_mut(caller, vm, |obj| {
        obj.vm.set_io_intercept(port, intercept);
        Ok(())
    })
}

/// Declares that an IN of `size` bytes (1, 2 or 4) from `port` always
/// reads `value` and has no effect: the kernel answers it without
/// returning to the caller (docs/exit-path.md, "Which exits the kernel
/// answers").
pub fn sys_declare_constant_port(caller: Caller, vm: VmHandle, port: u16, size: u8, value: u32) -> SysResult<()> {
    with_vm_mut(caller, vm, |obj| {
        if !matches!(size, 1 | 2 | 4) || (size < 4 && value >> (8 * size) != 0) {
            return Err(SysError::BadArgument);
        }
        obj.vm.declare_constant_port(port, size, value).then_some(()).ok_or(SysError::NoSlot)
    })
}

/// Declares that a read of `size` bytes (1, 2, 4 or 8) at `gpa`, which
/// is MMIO (no RAM), always reads `value` and has no effect: the kernel
/// answers it without returning to the caller (docs/exit-path.md, "Which
/// exits the kernel answers").
pub fn sys_declare_constant_mmio(caller: Caller, vm: VmHandle, gpa: u64, size: u8, value: u64) -> SysResult<()> {
    with_vm_mut(caller, vm, |obj| {
        if !matches!(size, 1 | 2 | 4 | 8) || (size < 8 && value >> (8 * size) != 0) {
            return Err(SysError::BadArgument);
        }
        if obj.vm.ram().check_range(gpa, u64::from(size)).is_ok() {
            return Err(SysError::BadArgument);
        }
        obj.vm.declare_constant_mmio(gpa, size, value).then_some(()).ok_or(SysError::NoSlot)
    })
}

/// Enters the guest on the current CPU until an exit the caller must
/// handle, or until `deadline_ns` (nanoseconds since boot; [`NEVER`] for
/// none), when it returns [`VmExit::Intr`]. Exits that need no device model
/// (CPUID, the PING hypercall, reads the VMM declared constant: ports and
/// MMIO loads) and host interrupts are handled here, on the fast path,
/// without returning. The calling thread's time slice is
/// enforced here too: when it ends, other ready threads run before the
/// guest enters again.
///
/// [`NEVER`]: super::time::NEVER
pub fn sys_run(caller: Caller, vcpu: VcpuHandle, deadline_ns: u64) -> SysResult<VmExit> {
    loop {
        match run_slice(caller, vcpu, deadline_ns)? {
            Some(exit) => return Ok(exit),
            // The locks are released: let the others run.
            None => {
                super::account::off_cpu(caller.pid, crate::thread::yield_to_others)
                    .map_err(|_| SysError::NoSuchObject)?;
            }
        }
    }
}

/// Runs the guest until an exit for the caller (`Some`) or the end of the
/// thread's slice (`None`), and adds the time the guest ran to the
/// caller's account.
fn run_slice(caller: Caller, vcpu: VcpuHandle, deadline_ns: u64) -> SysResult<Option<VmExit>> {
    let mut g = VCPUS.get(usize::from(vcpu.0)).ok_or(SysError::NoSuchObject)?.lock();
    let obj = owned(g.as_mut(), caller)?;
    let kick = super::kick::cell_on(caller, vcpu, crate::arch::cpu::current())?;
    let guest_before = obj.vcpu.guest_cycles;
    let r = run_until_exit(caller, vcpu, obj, kick, deadline_ns);
    kick.leave();
    super::account::add_guest_cycles(caller.pid, obj.vcpu.guest_cycles.wrapping_sub(guest_before));
    r
}

/// [`run_slice`] with the vCPU locked. A kick (`sys_vcpu_kick`) is taken
/// before each entry: the run returns [`VmExit::Intr`] for it instead.
/// Interrupts are disabled from that look to the VMRUN (the kernel runs
/// with IF=0), so a kick IPI sent after it ends the guest's run at once.
fn run_until_exit(
    caller: Caller,
    vcpu: VcpuHandle,
    obj: &mut VcpuObj,
    kick: &super::kick::KickCell,
    deadline_ns: u64,
) -> SysResult<Option<VmExit>> {
    let vm_index = usize::from(obj.vm.0);
    let vm_slot = VMS.get(vm_index).ok_or(SysError::NoSuchObject)?;
    let cpu = crate::arch::cpu::current();
    // Said before the slot is read (both are read-modify-writes): a writer
    // that closed the slot first keeps us out; one that closes it later
    // finds this CPU here and kicks it.
    IN_GUEST[vm_index].fetch_or(1 << cpu, Ordering::SeqCst);
    let r = guest_loop(caller, vcpu, obj, kick, vm_slot, cpu, deadline_ns);
    IN_GUEST[vm_index].fetch_and(!(1 << cpu), Ordering::SeqCst);
    r
}

/// [`run_until_exit`]'s loop: each entry reads the VM's slot from the look
/// at the kick to the end of the fast path's handling of the exit.
fn guest_loop(
    caller: Caller,
    vcpu: VcpuHandle,
    obj: &mut VcpuObj,
    kick: &super::kick::KickCell,
    vm_slot: &RwLock<Option<VmObj>>,
    cpu: usize,
    deadline_ns: u64,
) -> SysResult<Option<VmExit>> {
    let mut cg = CPUS[cpu].lock();
    let percpu = cg.as_mut().ok_or(SysError::NoSuchObject)?;
    // The timer is armed for the earlier of the slice end and the caller's
    // deadline; neither moves until the timer fires. So the clock is read
    // on the way in and again whenever a timer interrupt was taken since:
    // during the guest's run (an INTR exit) or while the exit was handled.
    let mut timer_seen = None;
    loop {
        let fired = crate::arch::lapic::timer_interrupts(cpu);
        if timer_seen != Some(fired) {
            timer_seen = Some(fired);
            percpu.time.timer_interrupts(fired);
            match percpu.time.entry(vcpu.0, crate::arch::lapic::now_ns(), deadline_ns, &mut obj.slice_debt_ns) {
                Entry::SliceOver => return Ok(None),
                Entry::Deadline => return Ok(Some(VmExit::Intr)),
                Entry::Run { arm_ns: Some(at) } => crate::arch::lapic::arm_timer_at_ns(at),
                Entry::Run { arm_ns: None } => {}
            }
        }
        if kick.take_or_arrive(cpu) {
            return Ok(Some(VmExit::Intr));
        }
        let vg = vm_slot.read();
        let vmobj = owned(vg.as_ref(), caller)?;
        let exit = obj.vcpu.run(&mut percpu.vm, &vmobj.vm);
        let nrips = percpu.vm.caps.nrips;
        let handled = match exit {
            VmExit::Cpuid => fast::cpuid(&mut obj.vcpu, &vmobj.vm, &mut obj.code_page, nrips, obj.index),
            VmExit::Vmmcall => fast::ping(&mut obj.vcpu, &vmobj.vm, &mut obj.code_page, nrips),
            VmExit::Io { io, next_rip } => fast::constant_port_read(&mut obj.vcpu, &vmobj.vm, &io, next_rip),
            VmExit::Npf(npf) => {
                super::constant_mmio::read(&mut obj.vcpu, &vmobj.vm, &mut obj.code_page, &mut obj.load_memo, &npf)
            }
            // The host has taken its interrupt; the clock says what it meant.
            VmExit::Intr => true,
            // The guest gets its DR0-DR3 and the MOV runs again, on the CPU.
            VmExit::Other(code) if crate::vm::debug::is_access(code) => {
                obj.vcpu.give_debug_registers();
                true
            }
            _ => false,
        };
        drop(vg);
        if !handled {
            return Ok(Some(exit));
        }
    }
}

/// With NRIPS: the address of the instruction after the intercepted one.
pub fn sys_get_next_rip(caller: Caller, vcpu: VcpuHandle) -> SysResult<Option<u64>> {
    let cpu = crate::arch::cpu::current();
    let caps = CPUS[cpu].lock().as_ref().map(|c| c.vm.caps).ok_or(SysError::NoSuchObject)?;
    with_vcpu(caller, vcpu, |v| caps.nrips.then(|| v.next_rip_raw()))
}

/// The intercepted instruction is done: the guest resumes at `next_rip`,
/// its interrupt shadow ends, and a single-stepping guest gets its #DB.
pub fn sys_complete_instruction(caller: Caller, vcpu: VcpuHandle, next_rip: u64, from: NextRipSource) -> SysResult<()> {
    with_vcpu(caller, vcpu, |v| v.complete_instruction(next_rip, from))
}

/// An intercepted IN of `size` bytes (1, 2 or 4) read `value`: it goes into
/// RAX as the CPU would put it there, and the instruction is complete
/// (resuming at `next_rip`, EXITINFO2), under one lock of the vCPU.
pub fn sys_complete_in(caller: Caller, vcpu: VcpuHandle, size: u8, value: u32, next_rip: u64) -> SysResult<()> {
    with_vcpu(caller, vcpu, |v| {
        let rax = sysabi::rax_after_in(v.reg(Reg::Rax), size, value).ok_or(SysError::BadArgument)?;
        v.set_reg(Reg::Rax, rax);
        v.complete_instruction(next_rip, NextRipSource::IoExitInfo);
        Ok(())
    })?
}

/// Queues an event for the next entry: an exception or NMI is delivered
/// at once, an external interrupt as soon as the guest can take it.
pub fn sys_inject(caller: Caller, vcpu: VcpuHandle, ev: EventInj) -> SysResult<()> {
    if !ev.is_valid() || !ev.is_well_formed() {
        return Err(SysError::BadArgument);
    }
    if with_vcpu(caller, vcpu, |v| v.inject(ev))? {
        Ok(())
    } else {
        Err(SysError::Busy)
    }
}

/// A posted external interrupt has not been taken by the guest yet.
pub fn sys_check_pending_interrupt(caller: Caller, vcpu: VcpuHandle) -> SysResult<bool> {
    with_vcpu(caller, vcpu, |v| v.interrupt_posted())
}

/// Takes back the posted external interrupt the guest has not taken yet
/// (its interrupt controller no longer asks for it) and returns its vector,
/// or `None` if none is posted.
pub fn sys_withdraw_interrupt(caller: Caller, vcpu: VcpuHandle) -> SysResult<Option<u8>> {
    with_vcpu(caller, vcpu, |v| v.withdraw_interrupt())
}

pub fn sys_set_exception_intercept(caller: Caller, vcpu: VcpuHandle, vector: u8, on: bool) -> SysResult<()> {
    if vector >= 32 {
        return Err(SysError::BadArgument);
    }
    with_vcpu(caller, vcpu, |v| v.set_exception_intercept(vector, on))
}

/// Traps (or stops trapping) the guest's IRET (the VMM waits for the end
/// of the guest's NMI blocking).
pub fn sys_set_iret_intercept(caller: Caller, vcpu: VcpuHandle, on: bool) -> SysResult<()> {
    with_vcpu(caller, vcpu, |v| v.set_iret_intercept(on))
}

pub fn sys_reg_get(caller: Caller, vcpu: VcpuHandle, r: Reg) -> SysResult<u64> {
    with_vcpu(caller, vcpu, |v| v.reg(r))
}

/// The registers `which` names, into `out` (as long as `which`), under one
/// lock of the vCPU.
pub fn sys_regs_get(caller: Caller, vcpu: VcpuHandle, which: &[Reg], out: &mut [u64]) -> SysResult<()> {
    if which.len() != out.len() {
        return Err(SysError::BadArgument);
    }
    with_vcpu(caller, vcpu, |v| {
        for (r, o) in which.iter().zip(out.iter_mut()) {
            *o = v.reg(*r);
        }
    })
}

pub fn sys_reg_set(caller: Caller, vcpu: VcpuHandle, r: Reg, value: u64) -> SysResult<()> {
    with_vcpu(caller, vcpu, |v| v.set_reg(r, value))
}

pub fn sys_seg_get(caller: Caller, vcpu: VcpuHandle, r: SegReg) -> SysResult<Segment> {
    with_vcpu(caller, vcpu, |v| v.seg(r))
}

pub fn sys_seg_set(caller: Caller, vcpu: VcpuHandle, r: SegReg, s: Segment) -> SysResult<()> {
    with_vcpu(caller, vcpu, |v| v.set_seg(r, s))
}

/// The guest's MOV to CR4 of `value`: done (Ok(Ok)), or the fault the CPU
/// would raise for it instead (Ok(Err)).
pub fn sys_write_cr4(caller: Caller, vcpu: VcpuHandle, value: u64) -> SysResult<Result<(), GuestFault>> {
    with_vcpu(caller, vcpu, |v| v.write_cr4(value))
}

/// The guest's XSETBV of `value` into XCR`index`: done, or the fault the
/// CPU would raise instead.
pub fn sys_xsetbv(caller: Caller, vcpu: VcpuHandle, index: u32, value: u64) -> SysResult<Result<(), GuestFault>> {
    with_vcpu(caller, vcpu, |v| v.xsetbv(index, value))
}

/// The instruction bytes at the guest's RIP (see [`fast::code_at_rip`]).
pub fn sys_code_at_rip(caller: Caller, vcpu: VcpuHandle) -> SysResult<sysabi::CodeAtRip> {
    with_vcpu_and_vm(caller, vcpu, |v, vm| fast::code_at_rip(&v.vcpu, &vm.vm))?.ok_or(SysError::BadGuestAddress)
}

/// What the guest's CPUID(`leaf`, `subleaf`) returns on `vcpu`.
pub fn sys_cpuid(caller: Caller, vcpu: VcpuHandle, leaf: u32, subleaf: u32) -> SysResult<CpuidResult> {
    with_vcpu_and_vm(caller, vcpu, |v, vm| fast::guest_cpuid(&vm.vm.cpuid, &v.vcpu, v.index, leaf, subleaf))
}

/// Logs (at debug level) the host's CPUID and what a vCPU of a new VM sees
/// with XSAVE and every component it may use enabled.
pub fn log_cpuid() {
    if !log::log_enabled!(log::Level::Debug) {
        return;
    }
    let model = fast::cpu_model();
    let guest =
        crate::vm::cpuid::GuestView { index: 0, cr4: guest_x86::regs::cr4::OSXSAVE, xcr0: model.xcr0_supported() };
    crate::vm::cpuid::dump(&fast::host_cpuid, |leaf, sub, h| {
        let g = model.answer(leaf, sub, &guest);
        log::debug!(
            "cpuid {leaf:#010x}.{sub:<2x} host {:08x} {:08x} {:08x} {:08x} guest {:08x} {:08x} {:08x} {:08x}",
            h.eax,
            h.ebx,
            h.ecx,
            h.edx,
            g.eax,
            g.ebx,
            g.ecx,
            g.edx
        );
    });
}

/// Runs `f` on the caller's vCPU `h` and its VM, under one lock of each
/// (taken in `sys_run`'s order: the vCPU's, then the VM's).
fn with_vcpu_and_vm<T>(caller: Caller, h: VcpuHandle, f: impl FnOnce(&mut VcpuObj, &VmObj) -> T) -> SysResult<T> {
    let mut g = VCPUS.get(usize::from(h.0)).ok_or(SysError::NoSuchObject)?.lock();
    let obj = owned(g.as_mut(), caller)?;
    let vg = VMS.get(usize::from(obj.vm.0)).ok_or(SysError::NoSuchObject)?.read();
    let vmobj = owned(vg.as_ref(), caller)?;
    Ok(f(obj, vmobj))
}

/// How the vCPU's exits were served (next-RIP sources, TLB flushes).
pub fn sys_get_paths(caller: Caller, vcpu: VcpuHandle) -> SysResult<crate::vm::stats::PathStats> {
    with_vcpu(caller, vcpu, |v| v.paths)
}

/// A copy of the vCPU's exit statistics.
pub fn sys_get_stats(caller: Caller, vcpu: VcpuHandle) -> SysResult<crate::vm::stats::ExitStats> {
    with_vcpu(caller, vcpu, |v| v.stats.clone())
}

/// Clears the vCPU's exit statistics.
pub fn sys_reset_stats(caller: Caller, vcpu: VcpuHandle) -> SysResult<()> {
    with_vcpu(caller, vcpu, |v| v.stats = crate::vm::stats::ExitStats::new())
}

/// The vCPU's index in its VM, the VM's id and its vCPU count.
pub fn sys_vcpu_info(caller: Caller, vcpu: VcpuHandle) -> SysResult<VcpuInfo> {
    let (index, vm) = {
        let g = vcpu_slot(caller, vcpu)?.lock();
        let o = g.as_ref().ok_or(SysError::NoSuchObject)?;
        (u32::from(o.index), o.vm)
    };
    let vcpus = with_vm(caller, vm, |o| Ok(u32::from(o.vcpus)))?;
    Ok(VcpuInfo { index, vm_id: u32::from(vm.0), vcpus })
}

/// The process that owns VM `id`.
pub(super) fn vm_owner(id: u32) -> SysResult<crate::proc::Pid> {
    let slot = VMS.get(id as usize).ok_or(SysError::BadArgument)?;
    slot.read().as_ref().map(|o| o.owner.pid()).ok_or(SysError::BadArgument)
}
