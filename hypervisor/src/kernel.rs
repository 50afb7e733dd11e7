//! The boot flow: from `kmain` to the VMM.
use crate::arch::{self, acpi, cpu::Features, phys, qemu, serial};
use crate::boot::cmdline::{self, Options};
use crate::boot::multiboot::{self, BootInfoError, MB1_BOOTLOADER_MAGIC, MB2_BOOTLOADER_MAGIC};
use crate::boot::BootInfo;
use crate::mm::{self, PhysRange};
use crate::proc;
use crate::sync::Lock;
use crate::thread;
use arrayvec::{ArrayString, ArrayVec};
use core::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use log::{error, info, warn};

pub const BANNER: &str = concat!("Certivisor ", env!("CARGO_PKG_VERSION"), ": AMD SVM hypervisor");

fn boot_info(magic: u32, addr: u64) -> Result<BootInfo, BootInfoError> {
    match magic {
        MB1_BOOTLOADER_MAGIC => multiboot::parse_v1(&phys::IdentityMem, addr),
        MB2_BOOTLOADER_MAGIC => {
            phys::multiboot2_info(addr).map(|mbi| multiboot::from_v2(&mbi)).ok_or(BootInfoError::Malformed)
        }
        other => Err(BootInfoError::UnknownMagic(other)),
    }
}

/// Stops with a message naming what this machine lacks.
fn refuse(what: &str) -> ! {
    error!("cannot run: {what}");
    qemu::exit(qemu::ExitStatus::Unsupported);
    arch::cpu::halt_forever()
}

/// The boot CPU's path from the boot assembly to the VMM.
pub fn boot(magic: u32, info_addr: u64) -> ! {
    serial::init();
    arch::init_cpu(0);
    let boot = boot_info(magic, info_addr);
    let (opts, problems) = match &boot {
        Ok(b) => cmdline::parse(&b.cmdline),
        Err(_) => (Options::default(), Default::default()),
    };
    crate::logger::init(opts.log_level);
    info!("{BANNER}");
    log_problems("command line", &problems);
    let boot = match boot {
        Ok(b) => b,
        Err(e) => arch::fatal(format_args!("boot information: {e}")),
    };
    log_boot_info(&boot);

    let mut features = Features::detect();
    features.xcr0 = arch::xsave::init();
    info!("{features}");
    crate::syscall::log_cpuid();
    if let Some(missing) = features.missing() {
        refuse(missing);
    }
    arch::lapic::init(true);
    arch::svm::enable(0);
    if features.tsc_aux {
        // The vm layer assumes 0 here and loads guests' values as needed.
        arch::cpu::write_tsc_aux(0);
    }
    let host_debug = HostDebug::read();
    let caps = crate::vm::SvmCaps {
        asids: features.asids,
        nrips: features.nrips,
        vmcb_clean: features.vmcb_clean,
        flush_by_asid: features.flush_by_asid,
        tsc_aux: features.tsc_aux,
    };
    crate::syscall::cpu_init(0, caps, host_debug.dr0_3);
    let spread = arch::lapic::calibration_spread();
    info!(
        "timer: tsc {} MHz (median of 3 rounds, spread {}.{:02}%)",
        arch::lapic::tsc_hz() / 1_000_000,
        spread / 100,
        spread % 100
    );
    init_layers(&boot, &opts, &features);

    match acpi::discover(boot.rsdp) {
        Ok(p) => {
            info!("acpi: cpus={} lapic={:#x} ioapics={}", p.cpus.len(), p.lapic_addr, p.ioapics.len());
            for (id, addr, gsi) in &p.ioapics {
                info!("acpi: ioapic id={id} at {addr:#x} gsi-base={gsi}");
            }
            start_aps(&p.cpus, &boot, &ApSetup { caps, host_dr: host_debug.dr0_3, selftest: opts.selftest });
        }
        Err(e) => warn!("acpi: no usable tables ({e:?}); assuming one CPU"),
    }
    if opts.selftest && thread::global().scheduler().online() & 0b10 != 0 {
        let report = crate::smptest::run();
        if report.pass() {
            info!("{report}");
        } else {
            error!("{report}");
        }
    }

    if let Some(f) = opts.test_fault {
        warn!("test-fault: raising {f:?} on purpose");
        arch::cpu::raise_test_fault(f);
    }

    run_guests(&boot, &opts);
    host_debug.check_unchanged();
    qemu::exit(qemu::ExitStatus::Success);
    arch::cpu::halt_forever()
}

/// What the application processors need to know of the boot CPU's set-up.
#[derive(Debug, Clone, Copy)]
struct ApSetup {
    caps: crate::vm::SvmCaps,
    /// DR0-DR3 as the boot CPU found them.
    host_dr: [u64; 4],
    selftest: bool,
}

static AP_SETUP: spin::Once<ApSetup> = spin::Once::new();
/// The index of the AP that last finished its set-up (0: none yet).
static AP_FINISHED: AtomicUsize = AtomicUsize::new(0);
/// How long the boot CPU waits for an AP's set-up and self-test.
const AP_SETUP_TIMEOUT_NS: u64 = 10_000_000_000;

/// Starts every CPU the MADT lists besides this one, one at a time: each
/// sets itself up as the boot CPU did (descriptor tables, XCR0, local
/// APIC, SVM with its own host save area and ASIDs), runs the layer
/// self-test on itself, and then schedules threads: the VMs placed on it.
fn start_aps(apic_ids: &[u32], boot: &BootInfo, setup: &ApSetup) {
    let me = arch::lapic::id();
    let others = apic_ids.iter().copied().filter(|&id| id != me);
    if apic_ids.len() <= 1 {
        return;
    }
    let Some(page) = trampoline_page(boot) else {
        warn!("smp: no free page below 640 KiB for the start-up code; running on one CPU");
        return;
    };
    AP_SETUP.call_once(|| *setup);
    let mut up = 1;
    for (i, apic_id) in others.enumerate() {
        let cpu = i + 1;
        if cpu >= arch::gdt::MAX_CPUS {
            warn!("smp: {} CPUs listed; using the first {}", apic_ids.len(), arch::gdt::MAX_CPUS);
            break;
        }
        if let Err(e) = arch::smp::start_ap(cpu, apic_id, page, ap_main) {
            error!("smp: cpu{cpu}: {e}");
            continue;
        }
        let deadline = arch::lapic::now_ns() + AP_SETUP_TIMEOUT_NS;
        while AP_FINISHED.load(SeqCst) != cpu && arch::lapic::now_ns() < deadline {
            core::hint::spin_loop();
        }
        if AP_FINISHED.load(SeqCst) == cpu {
            up += 1;
            info!("smp: cpu{cpu} (apic id {apic_id}) up");
        } else {
            error!("smp: cpu{cpu} (apic id {apic_id}) started but did not finish its set-up");
        }
    }
    info!("smp: {up} of {} CPUs up", apic_ids.len());
}

/// A page for the APs' start-up code: one a startup IPI can name
/// (`arch::smp::valid_trampoline_page`), usable in the memory map, and
/// clear of the boot information and the modules; 0x8000 first.
fn trampoline_page(boot: &BootInfo) -> Option<u64> {
    let page_size = arch::phys::PAGE;
    let usable = |p: u64| {
        boot.regions.iter().any(|r| r.kind == crate::boot::MemKind::Usable && r.start <= p && p + page_size <= r.end())
    };
    let overlaps = |p: u64, (s, e): (u64, u64)| p < e && s < p + page_size;
    (8..0x100).chain(1..8).map(|n| n * page_size).find(|&p| {
        arch::smp::valid_trampoline_page(p, 0)
            && usable(p)
            && !overlaps(p, boot.info_range)
            && !boot.modules.iter().any(|m| overlaps(p, (m.start, m.end)))
    })
}

/// An AP's path after the start-up code: the boot CPU's set-up for this
/// CPU, the self-test, then the CPU's idle thread for good.
fn ap_main(cpu: usize) -> ! {
    let Some(setup) = AP_SETUP.get().copied() else { arch::cpu::halt_forever() };
    arch::xsave::init_ap();
    arch::lapic::init(false);
    arch::svm::enable(cpu);
    if setup.caps.tsc_aux {
        arch::cpu::write_tsc_aux(0);
    }
    crate::syscall::cpu_init(cpu, setup.caps, setup.host_dr);
    let id = thread::CpuId(cpu);
    if setup.selftest {
        let report = crate::selftest::run(id);
        if report.pass {
            info!("cpu{cpu}: {report}");
        } else {
            error!("cpu{cpu}: {report}");
        }
    }
    if !thread::is_initialised(id) {
        if let Err(e) = thread::init(id) {
            error!("cpu{cpu}: cannot schedule threads: {e}");
            arch::cpu::halt_forever();
        }
    }
    AP_FINISHED.store(cpu, SeqCst);
    let e = thread::run_as_idle();
    arch::fatal(format_args!("cpu{cpu}: idle thread stopped: {e}"))
}

/// The host's own debug registers: the guests' must never show through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HostDebug {
    dr0_3: [u64; 4],
    dr7: u64,
}

impl HostDebug {
    fn read() -> HostDebug {
        HostDebug { dr0_3: arch::debugreg::read_dr0_3(), dr7: arch::debugreg::read_dr7() }
    }

    /// Logs whether DR0-DR3 and DR7 still hold what they held at boot.
    fn check_unchanged(&self) {
        let now = HostDebug::read();
        if now == *self {
            info!("host debug registers: DR0-DR3 {:x?} and DR7 {:#x} as at boot", now.dr0_3, now.dr7);
        } else {
            error!(
                "host debug registers changed: DR0-DR3 {:x?} DR7 {:#x}, at boot {:x?} {:#x}",
                now.dr0_3, now.dr7, self.dr0_3, self.dr7
            );
        }
    }
}

/// What must never be handed out: the first MiB (BIOS data, the loader's
/// structures), the hypervisor image, the boot information and the modules.
fn reserved_ranges(boot: &BootInfo) -> arrayvec::ArrayVec<PhysRange, 24> {
    let mut reserved = arrayvec::ArrayVec::new();
    reserved.push(PhysRange::LOW_MEMORY);
    let (s, e) = phys::image_range();
    reserved.push(PhysRange::new(s, e));
    reserved.push(PhysRange::new(boot.info_range.0, boot.info_range.1));
    for m in &boot.modules {
        let _ = reserved.try_push(PhysRange::new(m.start, m.end));
    }
    reserved
}

/// Brings up the layers below the VMM: mm over the memory map, the boot
/// flow as thread 0, and the root process.
fn init_layers(boot: &BootInfo, opts: &Options, features: &Features) {
    let usable: arrayvec::ArrayVec<PhysRange, { crate::boot::MAX_REGIONS }> = boot
        .regions
        .iter()
        .filter(|r| r.kind == crate::boot::MemKind::Usable)
        .map(|r| PhysRange::new(r.start, r.end()))
        .collect();
    match mm::init(&usable, &reserved_ranges(boot)) {
        Ok(_) => {}
        Err(e) => arch::fatal(format_args!("mm: {e}")),
    }
    arch::frames::install(&mm::KERNEL_FRAMES);
    if let Err(e) = arch::paging::init(mm::ContainerId::ROOT.into(), features.nx, features.gb_pages) {
        arch::fatal(format_args!("host page tables: {e:?}"));
    }
    info!("paging: host page tables active, stack guard page at {:#x}", arch::paging::stack_guard_page());
    thread::set_cpu_id_source(|| thread::CpuId(arch::cpu::current()));
    arch::smp::record_boot_cpu(arch::lapic::id());
    thread::set_kick(|cpu| arch::smp::kick(cpu.0));
    if let Err(e) = thread::init(thread::CpuId(0)).and_then(|_| thread::spawn_idle(thread::CpuId(0))) {
        arch::fatal(format_args!("thread: {e}"));
    }
    if let Err(e) = proc::init() {
        arch::fatal(format_args!("proc: {e:?}"));
    }
    if opts.selftest {
        let report = crate::selftest::run(thread::CpuId(0));
        if report.pass {
            info!("{report}");
        } else {
            error!("{report}");
        }
    }
}

/// One VM to run, as its thread finds it.
struct Job {
    name: ArrayString<16>,
    image: &'static [u8],
    initrd: Option<&'static [u8]>,
    initrd_cmdline: ArrayString<{ crate::boot::MAX_CMDLINE }>,
    cmdline: ArrayString<512>,
    mem: u64,
    raw16: bool,
    debug_exit: bool,
    virtio_console: bool,
    /// vCPUs, and where the threads of vCPUs 1 and up run.
    vcpus: usize,
    extra_vcpu_cpu: sysabi::ThreadCpu,
    /// The VM's disks, taken by its thread when it starts.
    disks: vmm::launch::Disks<'static>,
    /// The VM's process and the console, clock and share of the CPU it
    /// holds.
    pid: proc::Pid,
    grants: sysabi::Grants,
    done: bool,
}

static JOBS: Lock<ArrayVec<Job, { crate::boot::MAX_MODULES }>> = Lock::new(ArrayVec::new_const());
/// The boot thread sleeps here until every VM thread has finished.
const JOBS_DONE: thread::Chan = thread::Chan(0x4A0B);

/// Extra frames a VM's process gets beyond its RAM: VMCB, permission maps,
/// nested page tables.
const VM_OVERHEAD_FRAMES: u64 = 1024;

/// A VM's thread: runs the guest to its end, reports, and exits.
fn vm_thread(index: usize) {
    use vmm::launch::{run_guest, GuestConfig};
    let (name, image, initrd, initrd_cmdline, cmdline, mem, raw16, debug_exit, virtio_console, grants, disks, vcpus) = {
        let mut jobs = JOBS.lock();
        let j = &mut jobs[index];
        let disks = core::mem::take(&mut j.disks);
        (
            j.name,
            j.image,
            j.initrd,
            j.initrd_cmdline,
            j.cmdline,
            j.mem,
            j.raw16,
            j.debug_exit,
            j.virtio_console,
            j.grants,
            disks,
            (j.vcpus, j.extra_vcpu_cpu),
        )
    };
    let cfg = GuestConfig {
        name: &name,
        image,
        initrd,
        initrd_cmdline: &initrd_cmdline,
        cmdline: &cmdline,
        mem,
        raw16,
        debug_exit,
        virtio_console,
        vcpus: vcpus.0,
        extra_vcpu_cpu: vcpus.1,
    };
    info!(
        "{name}: starting on cpu{} with {} vCPU(s) and {} MiB, command line \"{}\"",
        arch::cpu::current(),
        vcpus.0,
        mem >> 20,
        cmdline
    );
    match run_guest(&crate::syscall::Kernel, grants, &cfg, disks, 0) {
        Ok(out) => {
            if out.stop.is_clean() {
                info!("{name}: stopped cleanly: {}", out.stop);
            } else {
                error!("{name}: stopped: {}", out.stop);
            }
            info!("{name}: exits: {}", out.stats);
            info!("{name}: paths: {}", out.paths);
            info!("{name}: cpu: {}", out.cpu);
        }
        Err(e) => error!("{name}: not started: {e}"),
    }
    JOBS.lock()[index].done = true;
    thread::wakeup(JOBS_DONE);
    let e = thread::exit();
    arch::fatal(format_args!("{name}: thread exit failed: {e}"));
}

/// Starts every guest the boot modules describe, each in its own process
/// and thread, and waits until all have stopped.
fn run_guests(boot: &BootInfo, opts: &Options) {
    let module_bytes = |i: usize| phys::boot_module(boot.modules[i].start, boot.modules[i].end);
    let (plans, problems) = crate::boot::guests::plan(&boot.modules, opts, crate::syscall::MAX_VMS, |i| {
        module_bytes(i).is_some_and(|b| vmm::loader::detect(b).is_some())
    });
    log_problems("module", &problems);
    if plans.is_empty() {
        info!("no guest given; nothing to run");
        return;
    }
    for (n, plan) in plans.iter().enumerate() {
        let mut name = ArrayString::<16>::new();
        let _ = core::fmt::write(&mut name, format_args!("vm{n}"));
        let Some(image) = module_bytes(plan.kernel) else {
            error!("{name}: module {} lies outside the identity map; skipped", plan.kernel);
            continue;
        };
        let quota = plan.mem / 4096 + VM_OVERHEAD_FRAMES;
        let pid = match proc::proc_create(proc::Pid::ROOT, quota) {
            Ok(p) => p,
            Err(e) => {
                error!("{name}: no process for it ({e:?}); skipped");
                continue;
            }
        };
        let grants = match crate::syscall::grant_process(pid, &name) {
            Ok(g) => g,
            Err(e) => {
                error!("{name}: no console, clock or CPU share for it ({e}); skipped");
                end_vm_process(&name, pid);
                continue;
            }
        };
        let job = Job {
            disks: vm_disks(&name, boot, plan),
            virtio_console: plan.virtio_console,
            vcpus: plan.vcpus,
            extra_vcpu_cpu: match plan.cpu {
                Some(c) => sysabi::ThreadCpu::Cpu(c as u32),
                None => sysabi::ThreadCpu::LeastLoaded,
            },
            name,
            image,
            initrd: plan.initrd.and_then(module_bytes),
            initrd_cmdline: plan.initrd_cmdline,
            cmdline: plan.cmdline,
            mem: plan.mem,
            raw16: plan.raw16,
            debug_exit: plan.debug_exit,
            pid,
            grants,
            done: false,
        };
        let index = {
            let mut jobs = JOBS.lock();
            jobs.push(job);
            jobs.len() - 1
        };
        let online = thread::global().scheduler().online();
        let started = match plan.cpu {
            Some(c) if online & (1 << c) == 0 => {
                error!("{name}: hv.cpu={c} names a CPU that is not running; not started");
                false
            }
            Some(c) => spawn_vm_thread(&name, pid, index, thread::Placement::Cpu(thread::CpuId(c))),
            None => spawn_vm_thread(&name, pid, index, thread::Placement::LeastLoaded),
        };
        if !started {
            JOBS.lock()[index].done = true;
        }
    }
    let mut ended = [false; crate::boot::MAX_MODULES];
    loop {
        let jobs = JOBS.lock();
        let finished: ArrayVec<(usize, ArrayString<16>, proc::Pid), { crate::boot::MAX_MODULES }> =
            jobs.iter().enumerate().filter(|(i, j)| j.done && !ended[*i]).map(|(i, j)| (i, j.name, j.pid)).collect();
        if finished.is_empty() {
            if ended[..jobs.len()].iter().all(|&e| e) {
                break;
            }
            if let Err(e) = thread::sleep(JOBS_DONE, jobs) {
                arch::fatal(format_args!("boot thread cannot wait for the VMs: {e}"));
            }
            continue;
        }
        drop(jobs);
        for (i, name, pid) in finished {
            ended[i] = end_vm_process(&name, pid);
        }
    }
    info!("all guests have stopped");
}

/// Starts VM `index`'s thread in its process `pid`, on the CPU
/// `placement` names; false (and logged) if it cannot.
fn spawn_vm_thread(name: &str, pid: proc::Pid, index: usize, placement: thread::Placement) -> bool {
    match proc::spawn_on(pid, vm_thread, index, placement) {
        Ok(_) => true,
        Err(e) => {
            error!("{name}: no thread for it ({e:?}); skipped");
            false
        }
    }
}

/// The disk modules of `plan`: a writable one becomes the VM's own memory
/// (`phys::boot_module_owned`), a read-only one a shared range. A module
/// that cannot be had so is left out, and said.
fn vm_disks(name: &str, boot: &BootInfo, plan: &crate::boot::guests::GuestPlan) -> vmm::launch::Disks<'static> {
    use vmm::virtio::blk::Image;
    let mut disks = vmm::launch::Disks::new();
    for d in &plan.disks {
        let m = &boot.modules[d.module];
        let image = if d.writable {
            phys::boot_module_owned(m.start, m.end).map(Image::ReadWrite)
        } else {
            phys::boot_module(m.start, m.end).map(Image::ReadOnly)
        };
        match image {
            Some(image) => {
                info!(
                    "{name}: disk vd{} from module {} ({} KiB, {})",
                    (b'a' + disks.len() as u8) as char,
                    d.module,
                    (m.end - m.start) >> 10,
                    if d.writable { "rw" } else { "ro" }
                );
                disks.push(image);
            }
            None => error!(
                "{name}: module {} cannot be a disk (not page-aligned, shared or outside memory); left out",
                d.module
            ),
        }
    }
    disks
}

/// Gives back a finished VM's process: its pid, its quota and anything it
/// left behind. False while its thread has not exited yet (the boot thread
/// then yields to it and tries again).
fn end_vm_process(name: &str, pid: proc::Pid) -> bool {
    match crate::syscall::end_process(pid) {
        Ok(0) => info!("{name}: process {pid} ended"),
        Ok(n) => warn!("{name}: process {pid} ended; the kernel destroyed {n} VM(s) it had left"),
        Err(proc::ProcError::InUse) => {
            let _ = thread::yield_now();
            return false;
        }
        Err(e) => error!("{name}: process {pid} cannot end: {e}; its slot stays taken"),
    }
    true
}
fn log_problems(what: &str, problems: &cmdline::Problems) {
    for p in problems.iter() {
        warn!("{what}: `{}`: {}", p.word, p.reason);
    }
    if problems.more > 0 {
        warn!("{what}: {} more problems not listed", problems.more);
    }
}

fn log_boot_info(b: &BootInfo) {
    info!(
        "boot: {:?}, {} MiB usable in {} regions, {} modules, cmdline \"{}\"",
        b.loader,
        b.usable_bytes() >> 20,
        b.regions.len(),
        b.modules.len(),
        b.cmdline
    );
    for m in &b.modules {
        info!("boot: module [{:#x}, {:#x}) \"{}\"", m.start, m.end, m.cmdline);
    }
    for p in &b.problems {
        warn!("boot: {p}");
    }
}
