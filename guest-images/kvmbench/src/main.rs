//! `kvmbench`: the exit round trips of `hvctl bench`, measured under Linux
//! KVM (docs/benchmarking.md, `scripts/bench --vs-kvm`).
//!
//! It runs in Linux with /dev/kvm (the KVM L1 image of
//! guest-images/build-kvm-l1), creates a VM with one vCPU and KVM's
//! in-kernel interrupt controllers, and runs a tiny 64-bit guest
//! (`guest.rs`) that times each kind with the instruction sequence hvctl
//! uses, storing the samples in its memory. Then it prints the same table,
//! `BENCH` and `HIST` lines as `hvctl bench` (the shared `benchkit` crate).
//!
//! Files: `kvm_abi.rs` (ioctl numbers and structures), `kvm.rs` (the
//! ioctls: the unsafe code), `guest.rs` (guest code, memory layout, page
//! tables, 64-bit mode), `machine.rs` (the VM, and the exits answered in
//! userspace), `kinds.rs` (what is measured).
#![forbid(unsafe_op_in_unsafe_fn)]

mod guest;
mod kinds;
mod kvm;
mod kvm_abi;
mod machine;

use benchkit::{parse_bench_opts, print_report, write_samples, BenchOpts, Kind};
use kinds::KvmKind;
use machine::Machine;
use std::io;
use std::process::exit;

const USAGE: &str = "\
usage: kvmbench [options]

Times VM exits under Linux KVM with RDTSC, like `hvctl bench` under Certivisor.

options:
  --iterations N       samples per kind (default 10000; mmio 2000)
  --mmio-iterations N  samples for the mmio kinds (default 2000, or N if smaller)
  --warmup N           untimed rounds before each kind (default 200)
  --only K[,K...]      only these kinds: vmcall cpuid port_read
                       port_read_user mmio_read mmio_read_user mov_cr8 rdtsc
  --histogram FILE     write raw samples, one `kind cycles` per line

exit status: 0 every kind ran, 1 a kind failed, 64 usage, 69 no usable /dev/kvm.";

const EXIT_ERROR: i32 = 1;
const EXIT_USAGE: i32 = 64;
const EXIT_UNAVAILABLE: i32 = 69;

fn run(opts: &BenchOpts<KvmKind>) -> i32 {
    let kvm = match kvm::Kvm::open() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("kvmbench: {e}");
            return EXIT_UNAVAILABLE;
        }
    };
    let max_samples = opts.kinds.iter().map(|&k| opts.warmup + opts.iterations_for(k)).max().unwrap_or(0);
    let vm = match machine::create_vm(&kvm, max_samples) {
        Ok(vm) => vm,
        Err(e) => {
            eprintln!("kvmbench: cannot create the VM: {e}");
            return EXIT_UNAVAILABLE;
        }
    };
    let mut m = match Machine::new(&kvm, &vm) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("kvmbench: cannot create the vCPU: {e}");
            return EXIT_UNAVAILABLE;
        }
    };
    let mut failed = false;
    let mut results = Vec::new();
    for &kind in &opts.kinds {
        let samples = m.probe(kind).and_then(|()| m.measure(kind, opts.warmup + opts.iterations_for(kind)));
        match samples {
            Ok(v) => results.push((kind, v[opts.warmup..].to_vec())),
            Err(e) => {
                eprintln!("kvmbench: skipping {}: {e}", kind.name());
                failed = true;
            }
        }
    }
    let _ = print_report(&mut io::stdout().lock(), "kvmbench", opts.warmup, &results);
    if let Some(path) = &opts.histogram {
        if let Err(e) = write_samples(path, &results) {
            eprintln!("kvmbench: {path}: {e}");
            failed = true;
        }
    }
    if failed {
        EXIT_ERROR
    } else {
        0
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help" || a == "help") {
        println!("{USAGE}");
        exit(0);
    }
    match parse_bench_opts::<KvmKind>(&args) {
        Ok(opts) => exit(run(&opts)),
        Err(e) => {
            eprintln!("kvmbench: {e}\n\n{USAGE}");
            exit(EXIT_USAGE);
        }
    }
}
