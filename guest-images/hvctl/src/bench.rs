//! `hvctl bench`: exit round trips timed with RDTSC (see hv.rs for the
//! exact instruction sequence and docs/benchmarking.md for what the numbers
//! mean).

use crate::args::{BenchKind, BenchOpts};
use crate::hv::{self, Hypervisor};
use crate::phys::{self, MmioPage};
use crate::stats::{log2_bucket, summarize, Summary};
use std::io::{self, Write};

/// The machine-readable line for one kind.
pub fn bench_line(kind: &str, s: &Summary) -> String {
    format!("BENCH {kind} min={} median={} p99={} n={}", s.min, s.median, s.p99, s.n)
}

/// The samples' log2 histogram as `HIST <kind> b:count ...` (bucket b holds
/// [2^b, 2^(b+1)) cycles, like STATS), so that a reader of the console gets
/// the distribution even without the raw samples.
pub fn hist_line(kind: &str, samples: &[u64]) -> String {
    let mut buckets = [0u64; 64];
    for &c in samples {
        buckets[log2_bucket(c) as usize] += 1;
    }
    let mut line = format!("HIST {kind}");
    for (b, c) in buckets.iter().enumerate().filter(|(_, &c)| c > 0) {
        line.push_str(&format!(" {b}:{c}"));
    }
    line
}

/// The table's header, in the same columns as [`table_row`].
pub fn table_header() -> String {
    format!(
        "{:<8} {:<20} {:>9} {:>9} {:>9} {:>9} {:>13} {:>9}",
        "kind", "what", "n", "min", "median", "p99", "mean", "max"
    )
}

/// One human-readable table row.
pub fn table_row(kind: BenchKind, s: &Summary) -> String {
    format!(
        "{:<8} {:<20} {:>9} {:>9} {:>9} {:>9} {:>13.1} {:>9}",
        kind.name(),
        kind.describe(),
        s.n,
        s.min,
        s.median,
        s.p99,
        s.mean,
        s.max
    )
}

/// Prepared access for one kind, or why it cannot run.
enum Probe {
    Vmmcall,
    Cpuid,
    Io,
    Mmio(MmioPage),
    Rdtsc,
}

fn prepare(kind: BenchKind, hv: &Hypervisor) -> Result<Probe, String> {
    Ok(match kind {
        BenchKind::Vmmcall => {
            let r = hv.call0(crate::abi::nr::PING);
            if r != 0 {
                return Err(format!("PING returned {}", crate::abi::format_result(r)));
            }
            Probe::Vmmcall
        }
        BenchKind::Cpuid => Probe::Cpuid,
        BenchKind::Io => {
            phys::allow_port(0xE9).map_err(|e| e.to_string())?;
            let v = hv::inb(0xE9);
            if v != 0xE9 {
                return Err(format!("port 0xE9 read {v:#04x}, expected 0xe9 (no Certivisor debug device?)"));
            }
            Probe::Io
        }
        BenchKind::Mmio => {
            let page = MmioPage::map(phys::MMIO_INFO_BASE).map_err(|e| e.to_string())?;
            // Safety: reg32 points into the page just mapped.
            let magic = unsafe { hv::mmio_read32(page.reg32(phys::MMIO_MAGIC)) };
            if magic != phys::MMIO_MAGIC_VALUE {
                return Err(format!(
                    "MMIO MAGIC at {:#x} reads {magic:#010x}, expected {:#010x}",
                    phys::MMIO_INFO_BASE,
                    phys::MMIO_MAGIC_VALUE
                ));
            }
            Probe::Mmio(page)
        }
        BenchKind::Rdtsc => Probe::Rdtsc,
    })
}

fn sample(probe: &Probe, hv: &Hypervisor) -> u64 {
    match probe {
        Probe::Vmmcall => hv::time_vmmcall_ping(hv),
        Probe::Cpuid => hv::time_cpuid(),
        Probe::Io => hv::time_io_e9(),
        // Safety: reg32 points into the mapped device page.
        Probe::Mmio(page) => unsafe { hv::time_mmio_read32(page.reg32(phys::MMIO_MAGIC)) },
        Probe::Rdtsc => hv::time_rdtsc_pair(),
    }
}

/// Runs the benchmark; returns the exit status (0 if every kind ran).
pub fn run(hv: &Hypervisor, opts: &BenchOpts) -> i32 {
    let mut out = io::stdout().lock();
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

    let _ = writeln!(
        out,
        "hvctl bench: TSC cycles per round trip (lfence;rdtsc;lfence .. lfence;rdtsc), {} warm-up rounds",
        opts.warmup
    );
    let _ = writeln!(out, "{}", table_header());
    let summaries: Vec<(BenchKind, Summary)> =
        results.iter().filter_map(|(k, v)| summarize(v).map(|s| (*k, s))).collect();
    for (k, s) in &summaries {
        let _ = writeln!(out, "{}", table_row(*k, s));
    }
    if let Some((_, base)) = summaries.iter().find(|(k, _)| *k == BenchKind::Rdtsc) {
        let _ =
            writeln!(out, "(every row includes the timing overhead the rdtsc row measures: median {})", base.median);
    }
    for (k, s) in &summaries {
        let _ = writeln!(out, "{}", bench_line(k.name(), s));
    }
    for (k, v) in &results {
        let _ = writeln!(out, "{}", hist_line(k.name(), v));
    }
    let _ = out.flush();

    if let Some(path) = &opts.histogram {
        if let Err(e) = write_samples(path, &results) {
            eprintln!("hvctl: bench: {path}: {e}");
            failed = true;
        }
    }
    i32::from(failed)
}

/// Writes the raw samples, one `kind cycles` per line.
fn write_samples(path: &str, results: &[(BenchKind, Vec<u64>)]) -> io::Result<()> {
    let mut w = io::BufWriter::new(std::fs::File::create(path)?);
    for (k, v) in results {
        for c in v {
            writeln!(w, "{} {c}", k.name())?;
        }
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_line_has_the_machine_readable_format() {
        let s = summarize(&[71, 71, 72, 90]).unwrap();
        assert_eq!(bench_line("vmmcall", &s), "BENCH vmmcall min=71 median=71 p99=90 n=4");
    }

    #[test]
    fn hist_line_counts_log2_buckets() {
        assert_eq!(hist_line("io", &[70, 71, 127, 128, 1, 0]), "HIST io 0:2 6:3 7:1");
        assert_eq!(hist_line("io", &[]), "HIST io");
    }

    #[test]
    fn table_rows_line_up_with_the_header() {
        let s = summarize(&[1, 2, 3]).unwrap();
        let row = table_row(BenchKind::Mmio, &s);
        assert!(row.starts_with("mmio     MMIO read (NPF)"));
        let header = table_header();
        assert_eq!(row.len(), header.len(), "{row:?}\n{header:?}");
        // Each right-aligned column ends at the same place.
        assert_eq!(row.rfind(" 3"), Some(header.len() - 2), "{row:?}\n{header:?}");
    }
}
