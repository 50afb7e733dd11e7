//! `hvctl bench`: exit round trips timed with RDTSC (see hv.rs for the
//! exact instruction sequence and docs/benchmarking.md for what the numbers
//! mean).

use crate::args::{BenchKind, BenchOpts};
use crate::hv::{self, Hypervisor};
use crate::phys::{self, MmioPage};
use benchkit::{print_report, write_samples, Kind};
use std::io;

/// Prepared access for one kind, or why it cannot run.
enum Probe {
    Cpuid,
    Vmcall,
    PortRead,
    PortWrite,
    MmioRead(MmioPage),
    MmioWrite(MmioPage),
    Rdtsc,
}

/// The information device's page, checked by its MAGIC.
fn info_device() -> Result<MmioPage, String> {
    let page = MmioPage::map(phys::MMIO_INFO_BASE).map_err(|e| e.to_string())?;
    // SAFETY: reg32 points into the page just mapped.
    let magic = unsafe { hv::mmio_read32(page.reg32(phys::MMIO_MAGIC)) };
    if magic != phys::MMIO_MAGIC_VALUE {
        return Err(format!(
            "MMIO MAGIC at {:#x} reads {magic:#010x}, expected {:#010x}",
            phys::MMIO_INFO_BASE,
            phys::MMIO_MAGIC_VALUE
        ));
    }
    Ok(page)
}

fn prepare(kind: BenchKind, hv: &Hypervisor) -> Result<Probe, String> {
    Ok(match kind {
        BenchKind::Cpuid => Probe::Cpuid,
        BenchKind::Vmcall => {
            let r = hv.call0(crate::abi::nr::PING);
            if r != 0 {
                return Err(format!("PING returned {}", crate::abi::format_result(r)));
            }
            Probe::Vmcall
        }
        BenchKind::PortRead => {
            phys::allow_port(0xE9).map_err(|e| e.to_string())?;
            let v = hv::inb(0xE9);
            if v != 0xE9 {
                return Err(format!("port 0xE9 read {v:#04x}, expected 0xe9 (no Certivisor debug device?)"));
            }
            Probe::PortRead
        }
        BenchKind::PortWrite => {
            phys::allow_port(phys::POST_PORT).map_err(|e| e.to_string())?;
            Probe::PortWrite
        }
        BenchKind::MmioRead => Probe::MmioRead(info_device()?),
        BenchKind::MmioWrite => {
            let page = info_device()?;
            // SAFETY: reg32 points into the mapped device page.
            let back = unsafe {
                hv::time_mmio_write32(page.reg32(phys::MMIO_SCRATCH).cast_mut());
                hv::mmio_read32(page.reg32(phys::MMIO_SCRATCH))
            };
            if back != hv::MMIO_WRITE_VALUE {
                return Err(format!("MMIO SCRATCH reads back {back:#010x}, expected {:#010x}", hv::MMIO_WRITE_VALUE));
            }
            Probe::MmioWrite(page)
        }
        BenchKind::Rdtsc => Probe::Rdtsc,
    })
}

fn sample(probe: &Probe, hv: &Hypervisor) -> u64 {
    match probe {
        Probe::Cpuid => hv::time_cpuid(),
        Probe::Vmcall => hv::time_vmmcall_ping(hv),
        Probe::PortRead => hv::time_io_e9(),
        Probe::PortWrite => hv::time_out_post(),
        // SAFETY: reg32 points into the mapped device page.
        Probe::MmioRead(page) => unsafe { hv::time_mmio_read32(page.reg32(phys::MMIO_MAGIC)) },
        // SAFETY: as above; SCRATCH takes any value.
        Probe::MmioWrite(page) => unsafe { hv::time_mmio_write32(page.reg32(phys::MMIO_SCRATCH).cast_mut()) },
        Probe::Rdtsc => hv::time_rdtsc_pair(),
    }
}

/// Runs the benchmark; returns the exit status (0 if every kind ran).
pub fn run(hv: &Hypervisor, opts: &BenchOpts) -> i32 {
    let mut results: Vec<(BenchKind, Vec<u64>)> = Vec::new();
    let mut failed = false;
    for &kind in &opts.kinds {
        let probe = match prepare(kind, hv) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("hvctl: bench: skipping {}: {e}", kind.name());
                failed = true;
                continue;
            }
        };
        for _ in 0..opts.warmup {
            sample(&probe, hv);
        }
        let n = opts.iterations_for(kind);
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            samples.push(sample(&probe, hv));
        }
        results.push((kind, samples));
    }

    let _ = print_report(&mut io::stdout().lock(), "hvctl bench", opts.warmup, &results);

    if let Some(path) = &opts.histogram {
        if let Err(e) = write_samples(path, &results) {
            eprintln!("hvctl: bench: {path}: {e}");
            failed = true;
        }
    }
    i32::from(failed)
}
