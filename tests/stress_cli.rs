//! `scripts/stress`: the stress load of `tests/stress.rs` for as long as asked,
//! with the same checks (`integration::stress_load`). See docs/stress.md.
use integration::root;
use integration::stress_load::{clock, run, Boot, Config, Outcome, Timing};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

const USAGE: &str = "\
usage: scripts/stress [--minutes N] [--icount] [--tcg] [--runs K] [--direct] [--progress S] [--out DIR]

Boots the Linux guest under the hypervisor and runs the stress load (fork/exec
loops, a 150 MiB memory churn, a console flood, a line typed every 2 s) for N
minutes (default 60; fractions allowed), then checks it: every typed line came
back intact and in order, every loop made progress, the kernel log is clean,
the console output is intact, the shell still answers, the VM stops cleanly.

  --icount     run under -icount shift=0,sleep=off
  --tcg        run under plain TCG
               (neither: both, side by side, two emulators at once)
  --runs K     repeat K times (default 1)
  --direct     boot the guest on QEMU without the hypervisor (the baseline)
  --progress S a progress line every S seconds (default 60)
  --out DIR    results directory (default results/stress-<unix time>)

Writes DIR/run<k>-<hv|direct>-<icount|tcg>.log (gzipped when over 8 MB) and DIR/summary.txt.
Exit status: 0 if every run passed, 1 if one failed, 2 on bad options.";

/// Serial logs above this size are gzipped after their run.
const GZIP_ABOVE: u64 = 8 << 20;

struct Options {
    load: Duration,
    timings: Vec<Timing>,
    runs: u32,
    boot: Boot,
    progress: Duration,
    out: PathBuf,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        load: Duration::from_secs(3600),
        timings: Vec::new(),
        runs: 1,
        boot: Boot::Hypervisor,
        progress: Duration::from_secs(60),
        out: PathBuf::new(),
    };
    let mut out = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--minutes" => {
                let v = value()?;
                let m: f64 = v.parse().map_err(|_| format!("--minutes: not a number: {v}"))?;
                if !(m > 0.0 && m.is_finite()) {
                    return Err(format!("--minutes must be positive, got {v}"));
                }
                o.load = Duration::from_secs_f64(m * 60.0);
            }
            "--icount" => o.timings.push(Timing::Icount),
            "--tcg" => o.timings.push(Timing::Tcg),
            "--runs" => {
                let v = value()?;
                o.runs = v.parse().ok().filter(|&k| k > 0).ok_or(format!("--runs needs a positive number, got {v}"))?;
            }
            "--direct" => o.boot = Boot::Direct,
            "--progress" => {
                let v = value()?;
                let s: u64 = v.parse().ok().filter(|&s| s > 0).ok_or(format!("--progress needs seconds, got {v}"))?;
                o.progress = Duration::from_secs(s);
            }
            "--out" => out = Some(PathBuf::from(value()?)),
            _ => return Err(format!("unknown option {a}")),
        }
    }
    if o.timings.is_empty() {
        o.timings = vec![Timing::Icount, Timing::Tcg];
    }
    o.timings.dedup();
    o.out = out.unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        root().join("results").join(format!("stress-{}", now.as_secs()))
    });
    Ok(o)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let o = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("stress: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&o.out) {
        eprintln!("stress: cannot create {}: {e}", o.out.display());
        return ExitCode::FAILURE;
    }
    let summary_path = o.out.join("summary.txt");
    let mut failed = 0;
    for k in 1..=o.runs {
        let configs: Vec<Config> = o
            .timings
            .iter()
            .map(|&timing| {
                let mut c =
                    Config { boot: o.boot, timing, load: o.load, log: PathBuf::new(), progress: Some(o.progress) };
                c.log = o.out.join(format!("run{k}-{}.log", c.label()));
                c
            })
            .collect();
        for c in &configs {
            eprintln!("stress: run {k}/{} {}: {} of load, log {}", o.runs, c.label(), clock(c.load), c.log.display());
        }
        // One emulator per timing, side by side.
        let outcomes: Vec<Outcome> = std::thread::scope(|s| {
            let handles: Vec<_> = configs.iter().map(|c| s.spawn(|| run(c))).collect();
            handles.into_iter().map(|h| h.join().expect("a stress run panicked")).collect()
        });
        for mut outcome in outcomes {
            outcome.log = gzip_if_large(&outcome.log);
            failed += usize::from(!outcome.passed());
            let text = format!("run {k}/{}: {outcome}", o.runs);
            eprint!("{text}");
            let appended = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&summary_path)
                .and_then(|mut f| f.write_all(text.as_bytes()));
            if let Err(e) = appended {
                eprintln!("stress: cannot write {}: {e}", summary_path.display());
            }
        }
    }
    let total = o.runs as usize * o.timings.len();
    eprintln!("stress: {} of {total} runs passed; summary in {}", total - failed, summary_path.display());
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Gzips `log` if it is larger than [`GZIP_ABOVE`] and returns the path of
/// what is left.
fn gzip_if_large(log: &Path) -> PathBuf {
    let large = std::fs::metadata(log).map(|m| m.len() > GZIP_ABOVE).unwrap_or(false);
    if large && Command::new("gzip").arg("-f").arg(log).status().is_ok_and(|s| s.success()) {
        let mut gz = log.as_os_str().to_owned();
        gz.push(".gz");
        return gz.into();
    }
    log.to_path_buf()
}
