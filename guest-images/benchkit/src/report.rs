//! What the tools print: a table for people, `BENCH` and `HIST` lines for
//! `scripts/bench`, and the raw samples file of `--histogram`.

use crate::opts::Kind;
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
        "{:<14} {:<24} {:>9} {:>9} {:>9} {:>9} {:>13} {:>9}",
        "kind", "what", "n", "min", "median", "p99", "mean", "max"
    )
}

/// One human-readable table row.
pub fn table_row(name: &str, what: &str, s: &Summary) -> String {
    format!(
        "{:<14} {:<24} {:>9} {:>9} {:>9} {:>9} {:>13.1} {:>9}",
        name, what, s.n, s.min, s.median, s.p99, s.mean, s.max
    )
}

/// Prints the whole report of `tool`: the table, then one `BENCH` and one
/// `HIST` line per kind that has samples.
pub fn print_report<K: Kind>(
    out: &mut impl Write,
    tool: &str,
    warmup: usize,
    results: &[(K, Vec<u64>)],
) -> io::Result<()> {
    writeln!(out, "{tool}: TSC cycles per round trip (lfence;rdtsc;lfence .. lfence;rdtsc), {warmup} warm-up rounds")?;
    writeln!(out, "{}", table_header())?;
    let summaries: Vec<(K, Summary)> = results.iter().filter_map(|(k, v)| summarize(v).map(|s| (*k, s))).collect();
    for (k, s) in &summaries {
        writeln!(out, "{}", table_row(k.name(), k.describe(), s))?;
    }
    if let Some((k, base)) = summaries.iter().find(|(k, _)| k.is_overhead()) {
        writeln!(
            out,
            "(every row includes the timing overhead the {} row measures: median {})",
            k.name(),
            base.median
        )?;
    }
    for (k, s) in &summaries {
        writeln!(out, "{}", bench_line(k.name(), s))?;
    }
    for (k, v) in results {
        writeln!(out, "{}", hist_line(k.name(), v))?;
    }
    out.flush()
}

/// Writes the raw samples, one `kind cycles` per line.
pub fn write_samples<K: Kind>(path: &str, results: &[(K, Vec<u64>)]) -> io::Result<()> {
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
    use crate::opts::tests::T;

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
        let row = table_row("mmio_kernel", "MMIO read, KVM's IOAPIC", &s);
        assert!(row.starts_with("mmio_kernel    MMIO read, KVM's IOAPIC  "), "{row:?}");
        let header = table_header();
        assert_eq!(row.len(), header.len(), "{row:?}\n{header:?}");
        // Each right-aligned column ends at the same place.
        assert_eq!(row.rfind(" 3"), Some(header.len() - 2), "{row:?}\n{header:?}");
    }

    #[test]
    fn report_has_table_overhead_note_bench_and_hist_lines() {
        let results = vec![(T::Call, vec![500, 500, 501]), (T::Mmio, vec![]), (T::Tsc, vec![6, 6])];
        let mut out = Vec::new();
        print_report(&mut out, "kvmbench", 200, &results).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "kvmbench: TSC cycles per round trip (lfence;rdtsc;lfence .. lfence;rdtsc), 200 warm-up rounds"
        );
        assert_eq!(lines[1], table_header());
        assert!(lines[2].starts_with("call "), "{text}");
        assert!(lines[3].starts_with("rdtsc "), "a kind without samples has no row:\n{text}");
        assert_eq!(lines[4], "(every row includes the timing overhead the rdtsc row measures: median 6)");
        assert_eq!(lines[5..7], ["BENCH call min=500 median=500 p99=501 n=3", "BENCH rdtsc min=6 median=6 p99=6 n=2"]);
        assert_eq!(lines[7..], ["HIST call 8:3", "HIST mmio_user", "HIST rdtsc 2:2"]);
    }
}
