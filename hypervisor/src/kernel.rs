//! The boot flow: from `kmain` to the VMM.
use crate::arch::{self, acpi, cpu::Features, phys, qemu, serial};
use crate::boot::cmdline::{self, Options};
use crate::boot::multiboot::{self, BootInfoError, MB1_BOOTLOADER_MAGIC, MB2_BOOTLOADER_MAGIC};
use crate::boot::BootInfo;
use log::{error, info, warn};

pub const BANNER: &str = concat!("Certivisor ", env!("CARGO_PKG_VERSION"), ": AMD SVM hypervisor");

fn boot_info(magic: u32, addr: u64) -> Result<BootInfo, BootInfoError> {
    match magic {
        MB1_BOOTLOADER_MAGIC => multiboot::parse_v1(&phys::IdentityMem, addr),
        MB2_BOOTLOADER_MAGIC => phys::multiboot2_info(addr)
            .map(|mbi| multiboot::from_v2(&mbi))
            .ok_or(BootInfoError::Malformed),
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
    arch::plant_stack_canary();
    serial::init();
    arch::init_cpu(0);
    let boot = boot_info(magic, info_addr);
    let (opts, problems) = match &boot {
        Ok(b) => cmdline::parse(&b.cmdline),
        Err(_) => (Options::default(), Default::default()),
    };
    crate::logger::init(opts.log_level);
    info!("{BANNER}");
    for p in &problems {
        warn!("command line: `{}`: {}", p.word, p.reason);
    }
    let boot = match boot {
        Ok(b) => b,
        Err(e) => arch::fatal(format_args!("boot information: {e}")),
    };
    log_boot_info(&boot);

    let features = Features::detect();
    info!("{features}");
    if let Some(missing) = features.missing() {
        refuse(missing);
    }
    arch::lapic::init(true);
    arch::svm::enable(0);
    crate::syscall::cpu_init(
        0,
        crate::vm::SvmCaps {
            asids: features.asids,
            nrips: features.nrips,
            vmcb_clean: features.vmcb_clean,
            flush_by_asid: features.flush_by_asid,
        },
    );
    info!("timer: tsc {} MHz", arch::lapic::tsc_hz() / 1_000_000);
    init_memory(&boot);

    match acpi::discover(boot.rsdp) {
        Ok(p) => {
            info!("acpi: cpus={} lapic={:#x} ioapics={}", p.cpus.len(), p.lapic_addr, p.ioapics.len());
            for (id, addr, gsi) in &p.ioapics {
                info!("acpi: ioapic id={id} at {addr:#x} gsi-base={gsi}");
            }
        }
        Err(e) => warn!("acpi: no usable tables ({e:?}); assuming one CPU"),
    }

    if let Some(f) = opts.test_fault {
        warn!("test-fault: raising {f:?} on purpose");
        arch::cpu::raise_test_fault(f);
    }

    run_guests(&boot, &opts);
    qemu::exit(qemu::ExitStatus::Success);
    arch::cpu::halt_forever()
}

/// Usable RAM minus what must never be handed out: the first MiB (BIOS
/// data, the loader's structures), the hypervisor image, the boot
/// information and the modules.
fn usable_ranges(boot: &BootInfo) -> arrayvec::ArrayVec<(u64, u64), 32> {
    let mut reserved: arrayvec::ArrayVec<(u64, u64), 24> = arrayvec::ArrayVec::new();
    reserved.push((0, 1 << 20));
    reserved.push(phys::image_range());
    reserved.push(boot.info_range);
    for m in &boot.modules {
        let _ = reserved.try_push((m.start, m.end));
    }
    let mut out = arrayvec::ArrayVec::new();
    for r in boot.regions.iter().filter(|r| r.kind == crate::boot::MemKind::Usable) {
        let mut pieces: arrayvec::ArrayVec<(u64, u64), 32> = arrayvec::ArrayVec::new();
        pieces.push((r.start, r.end()));
        for &(rs, re) in &reserved {
            let mut next = arrayvec::ArrayVec::<(u64, u64), 32>::new();
            for &(s, e) in &pieces {
                if re <= s || rs >= e {
                    let _ = next.try_push((s, e));
                } else {
                    if s < rs {
                        let _ = next.try_push((s, rs));
                    }
                    if re < e {
                        let _ = next.try_push((re, e));
                    }
                }
            }
            pieces = next;
        }
        for p in pieces {
            let _ = out.try_push(p);
        }
    }
    out
}

fn init_memory(boot: &BootInfo) {
    let ranges = usable_ranges(boot);
    arch::frames::init(&ranges);
    let total: u64 = ranges.iter().map(|(s, e)| e - s).sum();
    info!("mm: {} MiB free for guests and kernel objects", total >> 20);
}

/// Starts every guest the boot modules describe, one after another, and
/// reports how each ended.
fn run_guests(boot: &BootInfo, opts: &Options) {
    use crate::vmm::launch::{run_guest, GuestConfig};
    let module_bytes = |i: usize| phys::boot_module(boot.modules[i].start, boot.modules[i].end);
    let (plans, problems) = crate::boot::guests::plan(&boot.modules, opts, |i| {
        module_bytes(i).is_some_and(|b| crate::vmm::loader::detect(b).is_some())
    });
    for p in &problems {
        warn!("module: `{}`: {}", p.word, p.reason);
    }
    if plans.is_empty() {
        info!("no guest given; nothing to run");
        return;
    }
    let caller = crate::syscall::Caller { pid: 1, container: 0 };
    for (n, plan) in plans.iter().enumerate() {
        let mut name = arrayvec::ArrayString::<16>::new();
        let _ = core::fmt::write(&mut name, format_args!("vm{n}"));
        let Some(image) = module_bytes(plan.kernel) else {
            error!("{name}: module {} lies outside the identity map; skipped", plan.kernel);
            continue;
        };
        let cfg = GuestConfig {
            name: &name,
            image,
            initrd: plan.initrd.and_then(module_bytes),
            cmdline: &plan.cmdline,
            mem: plan.mem,
            raw16: plan.raw16,
            debug_exit: plan.debug_exit,
        };
        info!("{name}: starting with {} MiB, command line \"{}\"", plan.mem >> 20, plan.cmdline);
        match run_guest(caller, &cfg, 0) {
            Ok(out) => {
                if out.stop.is_clean() {
                    info!("{name}: stopped cleanly: {}", out.stop);
                } else {
                    error!("{name}: stopped: {}", out.stop);
                }
                info!("{name}: exits: {}", out.stats);
            }
            Err(e) => error!("{name}: not started: {e}"),
        }
    }
    info!("all guests have stopped");
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
    if b.truncated {
        warn!("boot: some boot information did not fit and was dropped");
    }
}
