//! `hvctl`: the guest-side tool for the Certivisor hypercall ABI
//! (docs/hypercalls.md) and the exit-latency benchmark
//! (docs/benchmarking.md).
//!
//! It is an ordinary static Linux program that runs as root in the guest's
//! initramfs; every hypercall works as any user (docs/hypercalls.md §3),
//! and only `bench`'s port and MMIO probes need root. The instructions that
//! reach the hypervisor live in `hv.rs`, the device plumbing (/dev/mem,
//! ioperm) in `phys.rs`; everything else is plain logic tested on the host: `abi.rs`
//! (numbers and structure decoders), `args.rs` (the command line),
//! and the shared `benchkit` crate (options, min/median/p99, report lines).
//! `avx2.rs` checks AVX2 and the YMM registers across exits (the
//! hypervisor's XSAVE switch).
//!
//! Before issuing any VMMCALL it checks the CPUID hypervisor signature, so it
//! is safe to run on bare QEMU, KVM or real hardware: it exits with status
//! 69 there.
#![forbid(unsafe_op_in_unsafe_fn)]

mod abi;
mod args;
mod avx2;
mod bench;
mod hv;
mod phys;

use abi::{errno, nr};
use args::{Command, UsageError, USAGE};
use hv::{Hypervisor, Presence};
use std::io::Write;
use std::process::exit;

const EXIT_ERROR: i32 = 1;
const EXIT_NO_MESSAGE: i32 = 2;
/// `hvctl avx2`: AVX2 is not usable on this (virtual) CPU.
pub const EXIT_ABSENT: i32 = 3;
const EXIT_USAGE: i32 = 64;
const EXIT_UNAVAILABLE: i32 = 69;

/// A failed command: what to print, and the exit status.
struct Failure(String, i32);

type Outcome = Result<i32, Failure>;

fn fail<T>(msg: impl Into<String>) -> Result<T, Failure> {
    Err(Failure(msg.into(), EXIT_ERROR))
}

/// Fails with the errno name and meaning if `r` is an error result.
fn check(what: &str, r: i64) -> Result<i64, Failure> {
    if r < 0 {
        fail(format!("{what}: {} ({})", abi::format_result(r), abi::errno_text(r)))
    } else {
        Ok(r)
    }
}

/// The reply buffer for INFO, STATS and CHAN_RECV: one page, as the ABI
/// promises every reply fits.
const REPLY_LEN: usize = 4096;

/// Makes call `nr` with `buf` as its buffer (address, length) after the
/// leading arguments `lead`. The hypervisor reaches the buffer through this
/// process's page tables, with this process's rights.
fn call_with_buffer(hv: &Hypervisor, nr: u64, lead: &[u64], buf: &mut [u8]) -> i64 {
    let mut args = [0u64; 4];
    args[..lead.len()].copy_from_slice(lead);
    args[lead.len()] = buf.as_mut_ptr() as u64;
    args[lead.len() + 1] = buf.len() as u64;
    hv.call(nr, args)
}

/// The first `r` bytes of `buf`, once `r` is a byte count the call returned.
fn reply(buf: &[u8], r: i64) -> &[u8] {
    &buf[..(r as usize).min(buf.len())]
}

fn version(hv: &Hypervisor) -> Outcome {
    let v = check("VERSION", hv.call0(nr::VERSION))?;
    println!("Certivisor hypercall ABI {v} (CPUID signature CertiVisorHV)");
    if v != i64::from(hv.cpuid_abi_version) {
        eprintln!("hvctl: warning: CPUID 0x40000001 reports ABI {}, VERSION {v}", hv.cpuid_abi_version);
    }
    if v != i64::from(abi::ABI_VERSION) {
        eprintln!("hvctl: warning: this hvctl speaks ABI {}", abi::ABI_VERSION);
    }
    Ok(0)
}

fn ping(hv: &Hypervisor) -> Outcome {
    check("PING", hv.call0(nr::PING))?;
    let cycles = hv::time_vmmcall_ping(hv);
    println!("pong ({cycles} cycles)");
    Ok(0)
}

fn format_memory(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    if bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

fn info(hv: &Hypervisor) -> Outcome {
    let mut buf = vec![0u8; REPLY_LEN];
    let n = check("INFO", call_with_buffer(hv, nr::INFO, &[], &mut buf))?;
    let i = abi::Info::decode(reply(&buf, n)).or_else(|e| fail(format!("INFO: {e}")))?;
    println!("hypervisor: {}", i.name);
    println!("abi_version: {}", i.abi_version);
    println!("vm_id: {}", i.vm_id);
    println!("vcpus: {}", i.vcpu_count);
    println!("vcpu_index: {}", i.vcpu_index);
    println!("memory: {}", format_memory(i.mem_bytes));
    println!("tsc_hz: {}", i.tsc_hz);
    Ok(0)
}

fn stats(hv: &Hypervisor) -> Outcome {
    let mut buf = vec![0u8; REPLY_LEN];
    let r = call_with_buffer(hv, nr::STATS, &[], &mut buf);
    if r == errno::E2BIG {
        return fail("STATS: -7 E2BIG: the statistics no longer fit in one page; this hvctl is too old");
    }
    let n = check("STATS", r)?;
    let s = abi::Stats::decode(reply(&buf, n)).or_else(|e| fail(format!("STATS: {e}")))?;
    print!("{}", format_stats(&s));
    Ok(0)
}

fn format_stats(s: &abi::Stats) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let mhz = s.tsc_hz as f64 / 1e6;
    let _ = writeln!(o, "exit statistics of this vCPU (TSC cycles, #VMEXIT to next VMRUN; TSC {mhz:.3} MHz)");
    let _ = writeln!(o, "{:<12} {:>10} {:>14} {:>10} {:>12} {:>12}", "reason", "count", "total", "min", "mean", "max");
    for r in &s.reasons {
        match r.mean_cycles() {
            Some(mean) => {
                let _ = writeln!(
                    o,
                    "{:<12} {:>10} {:>14} {:>10} {:>12.1} {:>12}",
                    r.name, r.count, r.total_cycles, r.min_cycles, mean, r.max_cycles
                );
            }
            None => {
                let _ = writeln!(o, "{:<12} {:>10} {:>14} {:>10} {:>12} {:>12}", r.name, 0, 0, "-", "-", "-");
            }
        }
    }
    if s.reasons.iter().any(|r| r.count > 0) {
        let _ = writeln!(o, "log2 histograms (b:count = count exits took [2^b, 2^(b+1)) cycles):");
        for r in s.reasons.iter().filter(|r| r.count > 0) {
            let _ = writeln!(o, "  {:<12} {}", r.name, r.compact_histogram());
        }
    }
    if let Some(c) = s.cpu {
        let ms = |ns: u64| ns as f64 / 1e6;
        let share = c.share_percent().map_or("-".to_string(), |p| format!("{p:.1}%"));
        let _ = writeln!(
            o,
            "cpu of this VM since it started: guest {:.3} ms, vmm {:.3} ms, elapsed {:.3} ms, share {share}",
            ms(c.guest_ns),
            ms(c.vmm_ns),
            ms(c.elapsed_ns)
        );
    }
    o
}

fn send(hv: &Hypervisor, chan: u64, text: &str) -> Outcome {
    let r = call_with_buffer(hv, nr::CHAN_SEND, &[chan], &mut text.as_bytes().to_vec());
    if r == errno::E2BIG {
        return fail(format!("CHAN_SEND: -7 E2BIG: messages are at most {} bytes", abi::MAX_MESSAGE));
    }
    check("CHAN_SEND", r)?;
    Ok(0)
}

fn recv(hv: &Hypervisor, chan: u64, wait: bool) -> Outcome {
    let mut buf = vec![0u8; REPLY_LEN];
    loop {
        let r = call_with_buffer(hv, nr::CHAN_RECV, &[chan], &mut buf);
        if r == errno::EAGAIN {
            if !wait {
                eprintln!("no message");
                return Ok(EXIT_NO_MESSAGE);
            }
            check("YIELD", hv.call0(nr::YIELD))?;
            continue;
        }
        let n = check("CHAN_RECV", r)?;
        let mut msg = reply(&buf, n).to_vec();
        msg.push(b'\n');
        let mut out = std::io::stdout().lock();
        out.write_all(&msg).and_then(|_| out.flush()).or_else(|e| fail(format!("stdout: {e}")))?;
        return Ok(0);
    }
}

fn console(hv: &Hypervisor, text: &str) -> Outcome {
    let r = call_with_buffer(hv, nr::CONSOLE_WRITE, &[], &mut text.as_bytes().to_vec());
    let n = check("CONSOLE_WRITE", r)?;
    if n as usize != text.len() {
        eprintln!("hvctl: warning: CONSOLE_WRITE returned {n}, expected {}", text.len());
    }
    Ok(0)
}

fn lookup(hv: &Hypervisor, name: &str) -> Outcome {
    let r = call_with_buffer(hv, nr::LOOKUP, &[], &mut name.as_bytes().to_vec());
    if r == errno::ENOENT {
        return fail(format!("LOOKUP: no call named {name:?} (-2 ENOENT)"));
    }
    println!("{}", check("LOOKUP", r)?);
    Ok(0)
}

fn call(hv: &Hypervisor, nr: u64, args: [u64; 4]) -> Outcome {
    let r = hv.call(nr, args);
    println!("{}", abi::format_result(r));
    Ok(if r >= 0 { 0 } else { EXIT_ERROR })
}

fn kmsg(hv: &Hypervisor) -> Outcome {
    let v = check("VERSION", hv.call0(nr::VERSION))?;
    // <6>: KERN_INFO, in the kernel log without crowding a `quiet` console.
    let line = format!("<6>hvctl: hypervisor detected: Certivisor (CPUID signature CertiVisorHV), hypercall ABI {v}\n");
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/kmsg")
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .or_else(|e| fail(format!("/dev/kmsg: {e}")))?;
    Ok(0)
}

fn not_certivisor(p: Presence) -> Failure {
    let why = match p {
        Presence::NoHypervisor => "no hypervisor (CPUID.1:ECX bit 31 is clear)".to_string(),
        Presence::Other(sig) => {
            format!("the hypervisor's CPUID signature is {sig:?}, not \"CertiVisorHV\"")
        }
        Presence::Certivisor { .. } => unreachable!(),
    };
    Failure(format!("not running under Certivisor: {why}"), EXIT_UNAVAILABLE)
}

fn run(cmd: Command) -> Outcome {
    if cmd == Command::Help {
        println!("{USAGE}");
        return Ok(0);
    }
    let hv = Hypervisor::detect().map_err(not_certivisor)?;
    match cmd {
        Command::Help => unreachable!(),
        Command::Version => version(&hv),
        Command::Ping => ping(&hv),
        Command::Info => info(&hv),
        Command::Stats => stats(&hv),
        Command::Bench(o) => Ok(bench::run(&hv, &o)),
        Command::Send { chan, text } => send(&hv, chan, &text),
        Command::Recv { chan, wait } => recv(&hv, chan, wait),
        Command::Console { text } => console(&hv, &text),
        Command::Lookup { name } => lookup(&hv, &name),
        Command::Call { nr, args } => call(&hv, nr, args),
        Command::Kmsg => kmsg(&hv),
        Command::Avx2 { rounds } => avx2::run(&hv, rounds).map_err(|e| Failure(e, EXIT_ERROR)),
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let cmd = match args::parse(&argv) {
        Ok(c) => c,
        Err(UsageError(msg)) => {
            eprintln!("hvctl: {msg}\n\n{USAGE}");
            exit(EXIT_USAGE);
        }
    };
    let code = match run(cmd) {
        Ok(code) => code,
        Err(Failure(msg, code)) => {
            eprintln!("hvctl: {msg}");
            code
        }
    };
    let _ = std::io::stdout().flush();
    exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_prints_in_mib_when_whole() {
        assert_eq!(format_memory(256 << 20), "256 MiB");
        assert_eq!(format_memory((256 << 20) + 1), "268435457 bytes");
    }

    #[test]
    fn stats_table_shows_dashes_for_unused_reasons_and_histograms_for_used_ones() {
        let mut hist = vec![0; 32];
        hist[6] = 3;
        hist[9] = 1;
        let s = abi::Stats {
            version: 1,
            nbuckets: 32,
            tsc_hz: 1_000_000_000,
            reasons: vec![
                abi::ReasonStats {
                    name: "vmmcall".into(),
                    count: 4,
                    total_cycles: 800,
                    min_cycles: 70,
                    max_cycles: 590,
                    histogram: hist,
                },
                abi::ReasonStats {
                    name: "npf".into(),
                    count: 0,
                    total_cycles: 0,
                    min_cycles: u64::MAX,
                    max_cycles: 0,
                    histogram: vec![0; 32],
                },
            ],
            cpu: None,
        };
        let t = format_stats(&s);
        assert!(t.contains("TSC 1000.000 MHz"), "{t}");
        let line = t.lines().find(|l| l.starts_with("vmmcall ")).unwrap();
        assert_eq!(line.split_whitespace().collect::<Vec<_>>(), ["vmmcall", "4", "800", "70", "200.0", "590"]);
        let line = t.lines().find(|l| l.starts_with("npf ")).unwrap();
        assert_eq!(line.split_whitespace().collect::<Vec<_>>(), ["npf", "0", "0", "-", "-", "-"]);
        assert!(t.contains("  vmmcall      6:3 9:1"), "{t}");
        assert!(!t.contains("  npf "), "no histogram line for unused reasons:\n{t}");
        assert!(!t.contains("cpu "), "no CPU line without a CPU section:\n{t}");
    }

    #[test]
    fn stats_show_the_vms_cpu_use_in_milliseconds_and_its_share() {
        let cpu = abi::CpuUse { guest_ns: 40_000_000, vmm_ns: 1_234_567, elapsed_ns: 82_469_134 };
        let s = abi::Stats { version: 1, nbuckets: 32, tsc_hz: 1_000_000_000, reasons: vec![], cpu: Some(cpu) };
        let t = format_stats(&s);
        let expected = "cpu of this VM since it started: guest 40.000 ms, vmm 1.235 ms, elapsed 82.469 ms, share 50.0%";
        assert!(t.lines().any(|l| l == expected), "expected {expected:?} in:\n{t}");
    }
}
