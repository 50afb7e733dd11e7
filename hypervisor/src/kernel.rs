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
    info!("timer: tsc {} MHz", arch::lapic::tsc_hz() / 1_000_000);

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

    info!("no guest given; nothing to run");
    qemu::exit(qemu::ExitStatus::Success);
    arch::cpu::halt_forever()
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
