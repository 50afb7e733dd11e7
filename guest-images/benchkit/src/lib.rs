//! What the two exit benchmarks share: `hvctl bench` (under Certivisor) and
//! `kvmbench` (under Linux KVM) take the same options, summarise their
//! samples the same way and print the same `BENCH` and `HIST` lines, so
//! `scripts/bench --vs-kvm` can set their numbers side by side
//! (docs/benchmarking.md).
//!
//! Pure logic, tested on the host; the measuring itself stays in each tool.

pub mod opts;
pub mod report;
pub mod stats;

pub use opts::{count, parse_bench_opts, parse_number, BenchOpts, Kind};
pub use report::{bench_line, hist_line, print_report, table_header, table_row, write_samples};
pub use stats::{log2_bucket, percentile, summarize, Summary};
