//! Building a VM from a guest image and running it to its end.
use super::bus::BusError;
use super::dev::apics::{ioapic_id, MAX_VCPUS};
use super::dev::{Board, BoardConfig, UnassignedPort};
use super::guestmem::VmMemory;
use super::loader::{self, CpuMode, EntryState, LoadError, MemLayout};
use super::vcpu::{Stop, VcpuLoop, VmShared};
use crate::virtio::blk::{Blk, Image};
use crate::virtio::console::Console;
use crate::virtio::net::VirtioNet;
use crate::virtio::slots::{Model, VirtioBus};
use arrayvec::{ArrayString, ArrayVec};
use guest_x86::mem::GuestMemory;
use sysabi::{
    CpuUsage, ExitStats, Grants, MacAddr, PathStats, Reg, SegReg, Sys, SysError, SysResult, ThreadCpu, VcpuHandle,
    VmHandle,
};
use vmcb::Segment;

/// Where a raw 16-bit guest is loaded and entered (0000:7C00, like a boot
/// sector).
pub const RAW16_LOAD: u64 = 0x7C00;

/// One guest to run.
#[derive(Debug, Clone, Copy)]
pub struct GuestConfig<'a> {
    pub name: &'a str,
    pub image: &'a [u8],
    pub initrd: Option<&'a [u8]>,
    /// The initrd module's own command line (a multiboot guest sees it).
    pub initrd_cmdline: &'a str,
    pub cmdline: &'a str,
    /// Bytes of RAM from guest-physical 0.
    pub mem: u64,
    /// The image is a flat real-mode binary, not a kernel format.
    pub raw16: bool,
    /// Pass port 0xF4 (QEMU's debug-exit device) through to the guest.
    pub debug_exit: bool,
    /// Give the VM a virtio console (`hv.virtio-console=on`).
    pub virtio_console: bool,
    /// vCPUs (`hv.vcpus=N`), 1 to [`MAX_VCPUS`].
    pub vcpus: usize,
    /// Where the threads of vCPUs 1 and up run (vCPU 0 runs on the
    /// calling thread): on the VM's pinned CPU, or the least loaded.
    pub extra_vcpu_cpu: ThreadCpu,
}

/// Most disks a VM has (one virtio slot each; the console and the NIC
/// take one each).
pub const MAX_DISKS: usize = crate::virtio::slots::SLOTS - 2;

/// A VM's disks, in the order the guest sees them (/dev/vda first).
pub type Disks<'a> = ArrayVec<Image<'a>, MAX_DISKS>;

/// Why a VM could not be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchError {
    Kernel(SysError),
    Load(LoadError),
    Raw16TooLarge(usize),
    /// The board's devices could not be wired to the buses (a VMM bug).
    Board(BusError),
    /// More vCPUs than a board has local APICs for, or none.
    Vcpus(usize),
}

impl From<SysError> for LaunchError {
    fn from(e: SysError) -> Self {
        LaunchError::Kernel(e)
    }
}

impl core::fmt::Display for LaunchError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LaunchError::Kernel(e) => write!(f, "kernel refused: {e}"),
            LaunchError::Load(e) => write!(f, "bad guest image: {e}"),
            LaunchError::Raw16TooLarge(n) => write!(f, "raw 16-bit image of {n} bytes does not fit below 640 KiB"),
            LaunchError::Board(e) => write!(f, "board wiring: {e}"),
            LaunchError::Vcpus(n) => write!(f, "{n} vCPUs asked for; a VM has 1 to {MAX_VCPUS}"),
        }
    }
}

/// How the VM ended, and what it did on the way.
pub struct Outcome {
    pub stop: Stop,
    /// vCPU 0's exit statistics.
    pub stats: ExitStats,
    /// How vCPU 0's exits were served.
    pub paths: PathStats,
    /// The VM's process's use of the CPU, up to its stop.
    pub cpu: CpuUsage,
}

/// Puts the vCPU in the state a loader asked for.
fn apply_entry<S: Sys>(sys: &S, vcpu: VcpuHandle, e: &EntryState) -> SysResult<()> {
    for (r, v) in [
        (Reg::Cr0, e.cr0),
        (Reg::Cr3, e.cr3),
        (Reg::Cr4, e.cr4),
        (Reg::Efer, e.efer),
        (Reg::Rip, e.rip),
        (Reg::Rsp, e.rsp),
        (Reg::Rflags, e.rflags),
        (Reg::Rax, e.rax),
        (Reg::Rbx, e.rbx),
        (Reg::Rsi, e.rsi),
    ] {
        sys.set_reg(vcpu, r, v)?;
    }
    if e.mode == CpuMode::Real16 {
        return Ok(());
    }
    sys.set_seg(vcpu, SegReg::Cs, e.code)?;
    for r in [SegReg::Ds, SegReg::Es, SegReg::Ss, SegReg::Fs, SegReg::Gs] {
        sys.set_seg(vcpu, r, e.data)?;
    }
    sys.set_seg(vcpu, SegReg::Tr, e.tr)?;
    sys.set_seg(vcpu, SegReg::Gdtr, Segment::table(e.gdtr.base, e.gdtr.limit))?;
    sys.set_seg(vcpu, SegReg::Idtr, Segment::table(0, 0))?;
    Ok(())
}

fn load<S: Sys>(
    sys: &S,
    grants: Grants,
    vm: VmHandle,
    vcpu: VcpuHandle,
    cfg: &GuestConfig<'_>,
    virtio_slots: u8,
) -> Result<(), LaunchError> {
    let mut mem = VmMemory { sys, vm, size: cfg.mem };
    if cfg.raw16 {
        if cfg.image.len() as u64 > 0xA0000 - RAW16_LOAD {
            return Err(LaunchError::Raw16TooLarge(cfg.image.len()));
        }
        mem.write(RAW16_LOAD, cfg.image).map_err(|_| LaunchError::Raw16TooLarge(cfg.image.len()))?;
        // Real mode at 0000:7C00.
        sys.set_seg(vcpu, SegReg::Cs, Segment::real_mode_code(0))?;
        sys.set_reg(vcpu, Reg::Rip, RAW16_LOAD)?;
        return Ok(());
    }
    let layout = MemLayout { ram_size: cfg.mem };
    let initrd = cfg.initrd.map(|data| loader::Module { data, cmdline: cfg.initrd_cmdline.as_bytes() });
    let linux;
    let cmdline = match loader::detect(cfg.image) {
        Some(loader::ImageKind::BzImage | loader::ImageKind::Pvh) => {
            linux = loader::linux_cmdline(cfg.cmdline, sys.tsc_hz(grants.clock)? / 1000);
            linux.as_str()
        }
        _ => cfg.cmdline,
    };
    let (kind, entry) =
        loader::load(&mut mem, &layout, cfg.image, initrd, cmdline.as_bytes()).map_err(LaunchError::Load)?;
    log::info!("{}: {:?} image, entry {:#x} in {:?}", cfg.name, kind, entry.rip, entry.mode);
    // The ACPI tables describe the board: the vCPUs, their local APICs,
    // the I/O APIC, the PM block.
    let acpi = loader::AcpiConfig { vcpus: cfg.vcpus as u8, ioapic_id: ioapic_id(cfg.vcpus), virtio_slots };
    let rsdp = loader::write_acpi_tables(&mut mem, &layout, &acpi).map_err(LaunchError::Load)?;
    loader::set_acpi_rsdp(&mut mem, kind, rsdp).map_err(LaunchError::Load)?;
    apply_entry(sys, vcpu, &entry)?;
    Ok(())
}

/// Logs the ports the guest touched that no device answers, if any: what
/// a guest probed and did not find.
fn report_unassigned(name: &str, board: &Board<'_>) {
    let total = board.unassigned_accesses();
    if total > 0 {
        log::info!("{name}: ports no device answers: {} ({total} accesses)", PortCounts(board.unassigned_ports()));
    }
}

/// "0x2e=5 0x4e=3".
struct PortCounts<'a>(&'a [UnassignedPort]);

impl core::fmt::Display for PortCounts<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            write!(f, "{}{:#x}={}", if i == 0 { "" } else { " " }, p.port, p.count)?;
        }
        Ok(())
    }
}

/// The VM's virtio devices: its disks in slots 0.., then its console if
/// it asked for one, then its NIC on the switch port with address `mac`.
fn virtio_devices<'a>(cfg: &GuestConfig<'a>, disks: Disks<'a>, mac: Option<MacAddr>) -> VirtioBus<'a> {
    let mut bus = VirtioBus::new(cfg.name, cfg.mem);
    for (n, image) in disks.into_iter().enumerate() {
        let mut serial = ArrayString::<20>::new();
        let _ = core::fmt::write(&mut serial, format_args!("{}-disk{n}", cfg.name));
        // MAX_DISKS leaves slots for the console and the NIC: every disk fits.
        let _ = bus.add(Model::Blk(Blk::new(image, &serial)));
    }
    if cfg.virtio_console {
        let _ = bus.add(Model::Console(Console::new()));
    }
    if let Some(mac) = mac {
        let _ = bus.add(Model::Net(VirtioNet::new(mac)));
    }
    bus
}

/// The guest kernel's console (the last `console=` on its command line,
/// which Linux makes /dev/console) is the virtio console.
fn console_is_hvc0(cmdline: &str) -> bool {
    cmdline
        .split_ascii_whitespace()
        .rev()
        .find_map(|w| w.strip_prefix("console="))
        .is_some_and(|c| c.starts_with("hvc0"))
}

/// Creates the VM with its vCPUs, loads the guest, runs one loop per vCPU
/// (each on its own thread, through [`Sys::fork_join`]) until the VM stops,
/// and frees the VM again. A guest that cannot be loaded gets an error
/// naming why; the hypervisor and other VMs are not affected either way.
pub fn run_guest<S: Sys + Sync>(
    sys: &S,
    grants: Grants,
    cfg: &GuestConfig<'_>,
    disks: Disks<'_>,
    epoch_seconds: u64,
) -> Result<Outcome, LaunchError> {
    if !(1..=MAX_VCPUS).contains(&cfg.vcpus) {
        return Err(LaunchError::Vcpus(cfg.vcpus));
    }
    let vm = sys.vm_create()?;
    let result = (|| {
        sys.npt_map(vm, 0, cfg.mem)?;
        let mut vcpus = ArrayVec::<VcpuHandle, MAX_VCPUS>::new();
        for _ in 0..cfg.vcpus {
            let vcpu = sys.vcpu_create(vm)?;
            // #BP and #UD are intercepted and reflected back into the guest
            // through `inject`: a debugger in the VMM could take them instead.
            // (QEMU's TCG treats INT3 as a software interrupt and never
            // delivers the #BP intercept; real CPUs do.)
            sys.set_exception_intercept(vcpu, 3, true)?;
            sys.set_exception_intercept(vcpu, 6, true)?;
            vcpus.push(vcpu);
        }
        crate::hvdev::declare_to_kernel(sys, vm)?;
        if cfg.debug_exit {
            for port in 0xF4..=0xF7 {
                sys.set_io_intercept(vm, port, false)?;
            }
        }
        // Every VM's process has a switch port (`Grants::net`): it becomes the NIC.
        let mac = sys.net_info(grants.net).ok().map(|port| port.mac);
        let virtio = virtio_devices(cfg, disks, mac);
        load(sys, grants, vm, vcpus[0], cfg, virtio.len() as u8)?;
        let input_to_virtio = virtio.has_console() && console_is_hvc0(cfg.cmdline);
        let board_config = BoardConfig { rtc_epoch_seconds: epoch_seconds, ram_size: cfg.mem, vcpus: cfg.vcpus };
        let board = Board::with_virtio(board_config, cfg.name, virtio).map_err(LaunchError::Board)?;
        let shared = VmShared::new(board, &vcpus);
        // The guest's TSC runs without offset: this is its clock at entry.
        log::info!("{}: entering the guest at tsc={}", cfg.name, sys.guest_tsc(grants.clock)?);
        let extra: ArrayVec<ThreadCpu, MAX_VCPUS> = (1..cfg.vcpus).map(|_| cfg.extra_vcpu_cpu).collect();
        let run_vcpu = |index: usize| match VcpuLoop::new(cfg.name, sys, grants, (vm, index), cfg.mem, &shared) {
            Ok(mut lp) => {
                lp.input_to_virtio = input_to_virtio;
                lp.run();
            }
            Err(e) => {
                shared.end(sys, Stop::Kernel(e));
            }
        };
        sys.fork_join(grants.sched, &extra, &run_vcpu)?;
        let stop = shared.first_stop().unwrap_or(Stop::Kernel(SysError::BadArgument));
        let mut board = shared.into_board();
        report_unassigned(cfg.name, &board);
        board.report_suppressed_log_lines();
        if let Ok(port) = sys.net_info(grants.net) {
            log::info!("{}: network: {}", cfg.name, port.stats);
        }
        // The outcome has vCPU 0's figures; the others' go to the log.
        for (i, &vcpu) in vcpus.iter().enumerate().skip(1) {
            log::info!("{}: vCPU {i} exits: {}", cfg.name, sys.stats(vcpu)?);
            log::info!("{}: vCPU {i} paths: {}", cfg.name, sys.paths(vcpu)?);
        }
        Ok(Outcome {
            stop,
            stats: sys.stats(vcpus[0])?,
            paths: sys.paths(vcpus[0])?,
            cpu: sys.cpu_usage(grants.sched)?,
        })
    })();
    if let Err(e) = sys.vm_destroy(vm) {
        log::error!("{}: could not free the VM: {e}", cfg.name);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::console_is_hvc0;

    #[test]
    fn input_goes_to_hvc0_only_when_the_last_console_is_hvc0() {
        for (cmdline, expected) in [
            ("console=ttyS0 quiet", false),
            ("console=hvc0", true),
            ("console=ttyS0 console=hvc0", true),
            ("console=hvc0 console=ttyS0,115200", false),
            ("quiet", false),
            ("xconsole=hvc0", false),
        ] {
            assert_eq!(console_is_hvc0(cmdline), expected, "{cmdline:?}");
        }
    }
}
