//! Command-line parsing (pure; tested on the host).

use crate::abi::{MAX_CONSOLE, MAX_NAME};

/// hvctl passes every buffer in one page.
const MAX_BUFFER: usize = 4096;

pub const USAGE: &str = "\
usage: hvctl <command> [arguments]

Guest tool for the Certivisor hypercall ABI (docs/hypercalls.md).

commands:
  version                  ABI version and CPUID signature
  ping                     PING round trip, in TSC cycles
  info                     the VM's INFO structure
  stats                    this vCPU's exit statistics (STATS)
  bench [options]          time exits with RDTSC:
      --iterations N       samples per kind (default 10000; mmio 2000)
      --mmio-iterations N  samples for mmio (default 2000, or N if smaller)
      --warmup N           untimed rounds before each kind (default 200)
      --only K[,K...]      only these kinds: vmmcall cpuid io mmio rdtsc
      --histogram FILE     write raw samples, one `kind cycles` per line
  send <vm> <text>...      CHAN_SEND the words to VM <vm> (its id)
  recv <vm> [--wait]       CHAN_RECV a message from VM <vm>
                           (exit 2 if none; --wait retries with YIELD)
  console <text>...        CONSOLE_WRITE to the hypervisor's log
  lookup <name>            LOOKUP a call number by name
  call <nr> [args...]      raw hypercall; up to 4 numeric arguments
                           (decimal or 0x hex) in RBX, RCX, RDX, RSI
  kmsg                     write the ABI version line to /dev/kmsg
  avx2 [--rounds N]        compute with AVX2 and check that YMM0-15 survive
                           N rounds (default 1000) of VMMCALL, CPUID and
                           port I/O exits (exit 3 if AVX2 is not usable)
  help                     this text

exit status: 0 ok, 1 error (or error result), 2 recv found no message,
3 avx2 not usable, 64 usage, 69 not running under Certivisor.";

/// Rounds of `hvctl avx2` unless --rounds says otherwise.
pub const DEFAULT_AVX2_ROUNDS: usize = 1000;

/// The measurements `hvctl bench` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchKind {
    /// VMMCALL PING round trip.
    Vmmcall,
    /// CPUID leaf 0x4000_0000.
    Cpuid,
    /// `in al, 0xE9`.
    Io,
    /// 32-bit read of the MMIO device's MAGIC register (nested page fault).
    Mmio,
    /// Back-to-back timestamps, no exit: the measurement's own overhead.
    Rdtsc,
}

impl BenchKind {
    pub const ALL: [BenchKind; 5] =
        [BenchKind::Vmmcall, BenchKind::Cpuid, BenchKind::Io, BenchKind::Mmio, BenchKind::Rdtsc];

    pub fn name(self) -> &'static str {
        match self {
            BenchKind::Vmmcall => "vmmcall",
            BenchKind::Cpuid => "cpuid",
            BenchKind::Io => "io",
            BenchKind::Mmio => "mmio",
            BenchKind::Rdtsc => "rdtsc",
        }
    }

    pub fn from_name(s: &str) -> Option<BenchKind> {
        BenchKind::ALL.into_iter().find(|k| k.name() == s)
    }

    pub fn describe(self) -> &'static str {
        match self {
            BenchKind::Vmmcall => "VMMCALL PING",
            BenchKind::Cpuid => "CPUID 0x40000000",
            BenchKind::Io => "in al, 0xE9",
            BenchKind::Mmio => "MMIO read (NPF)",
            BenchKind::Rdtsc => "RDTSC pair, no exit",
        }
    }
}

pub const DEFAULT_ITERATIONS: usize = 10_000;
pub const DEFAULT_MMIO_ITERATIONS: usize = 2_000;
pub const DEFAULT_WARMUP: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchOpts {
    pub iterations: usize,
    pub mmio_iterations: usize,
    pub warmup: usize,
    pub kinds: Vec<BenchKind>,
    pub histogram: Option<String>,
}

impl BenchOpts {
    pub fn iterations_for(&self, kind: BenchKind) -> usize {
        if kind == BenchKind::Mmio {
            self.mmio_iterations
        } else {
            self.iterations
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Version,
    Ping,
    Info,
    Stats,
    Bench(BenchOpts),
    Send { chan: u64, text: String },
    Recv { chan: u64, wait: bool },
    Console { text: String },
    Lookup { name: String },
    Call { nr: u64, args: [u64; 4] },
    Kmsg,
    Avx2 { rounds: usize },
    Help,
}

/// A bad command line, with what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, UsageError> {
    Err(UsageError(msg.into()))
}

/// Parses `123`, `0x7b` or `0X7B` (underscores allowed as separators).
pub fn parse_number(s: &str) -> Option<u64> {
    let s = s.replace('_', "");
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        if hex.is_empty() {
            return None;
        }
        u64::from_str_radix(hex, 16).ok()
    } else {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    }
}

fn number(what: &str, s: &str) -> Result<u64, UsageError> {
    parse_number(s).map_or_else(|| err(format!("{what}: not a number: {s:?}")), Ok)
}

/// A channel number. Its range is the hypervisor's to check (-EINVAL), so
/// that `hvctl` can also show how it treats a bad one.
fn channel(s: &str) -> Result<u64, UsageError> {
    number("channel", s)
}

fn count(what: &str, s: Option<&String>) -> Result<usize, UsageError> {
    let s = match s {
        Some(s) => s,
        None => return err(format!("{what} needs a value")),
    };
    match parse_number(s) {
        Some(n) if n > 0 && n <= 100_000_000 => Ok(n as usize),
        _ => err(format!("{what}: expected a count from 1 to 100000000, saw {s:?}")),
    }
}

fn text(args: &[String], what: &str, max: usize) -> Result<String, UsageError> {
    if args.is_empty() {
        return err(format!("{what} needs a text"));
    }
    let t = args.join(" ");
    if t.len() > max {
        return err(format!("{what}: text is {} bytes, the limit is {max}", t.len()));
    }
    Ok(t)
}

fn no_more(rest: &[String], cmd: &str) -> Result<(), UsageError> {
    match rest.first() {
        None => Ok(()),
        Some(a) => err(format!("{cmd}: unexpected argument {a:?}")),
    }
}

fn parse_bench(rest: &[String]) -> Result<BenchOpts, UsageError> {
    let mut iterations = None;
    let mut mmio_iterations = None;
    let mut warmup = DEFAULT_WARMUP;
    let mut kinds: Vec<BenchKind> = BenchKind::ALL.to_vec();
    let mut histogram = None;
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        // Accept both `--opt value` and `--opt=value`.
        let (opt, inline) = match a.split_once('=') {
            Some((o, v)) if o.starts_with("--") => (o, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut value = || inline.clone().or_else(|| it.next().cloned());
        match opt {
            "--iterations" | "-n" => iterations = Some(count("--iterations", value().as_ref())?),
            "--mmio-iterations" => mmio_iterations = Some(count("--mmio-iterations", value().as_ref())?),
            "--warmup" => {
                warmup = match value().as_deref().and_then(parse_number) {
                    Some(n) if n <= 1_000_000 => n as usize,
                    _ => return err("--warmup: expected a count from 0 to 1000000"),
                }
            }
            "--only" => {
                let v = value().ok_or_else(|| UsageError("--only needs a list of kinds".into()))?;
                kinds = Vec::new();
                for k in v.split(',').filter(|k| !k.is_empty()) {
                    let kind = BenchKind::from_name(k).ok_or_else(|| {
                        UsageError(format!("--only: unknown kind {k:?} (kinds: vmmcall cpuid io mmio rdtsc)"))
                    })?;
                    if !kinds.contains(&kind) {
                        kinds.push(kind);
                    }
                }
                if kinds.is_empty() {
                    return err("--only needs at least one kind");
                }
            }
            "--histogram" => match value() {
                Some(f) if !f.is_empty() => histogram = Some(f),
                _ => return err("--histogram needs a file name"),
            },
            _ => return err(format!("bench: unknown option {a:?}")),
        }
    }
    let iterations = iterations.unwrap_or(DEFAULT_ITERATIONS);
    // MMIO exits are the slowest; by default take fewer, but never more
    // than asked for overall.
    let mmio_iterations = mmio_iterations.unwrap_or(DEFAULT_MMIO_ITERATIONS.min(iterations));
    Ok(BenchOpts { iterations, mmio_iterations, warmup, kinds, histogram })
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, UsageError> {
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => return err("no command given"),
    };
    let cmd = match cmd {
        "version" => {
            no_more(rest, cmd)?;
            Command::Version
        }
        "ping" => {
            no_more(rest, cmd)?;
            Command::Ping
        }
        "info" => {
            no_more(rest, cmd)?;
            Command::Info
        }
        "stats" => {
            no_more(rest, cmd)?;
            Command::Stats
        }
        "kmsg" => {
            no_more(rest, cmd)?;
            Command::Kmsg
        }
        "help" | "-h" | "--help" => Command::Help,
        "avx2" => match rest {
            [] => Command::Avx2 { rounds: DEFAULT_AVX2_ROUNDS },
            [opt, n] if opt == "--rounds" => Command::Avx2 { rounds: count("--rounds", Some(n))? },
            _ => return err("avx2 takes only --rounds N"),
        },
        "bench" => Command::Bench(parse_bench(rest)?),
        "send" => match rest.split_first() {
            Some((c, t)) => Command::Send { chan: channel(c)?, text: text(t, "send", MAX_BUFFER)? },
            None => return err("send needs a channel and a text"),
        },
        "recv" => {
            let mut chan = None;
            let mut wait = false;
            for a in rest {
                match a.as_str() {
                    "--wait" | "-w" => wait = true,
                    _ if chan.is_none() => chan = Some(channel(a)?),
                    _ => return err(format!("recv: unexpected argument {a:?}")),
                }
            }
            match chan {
                Some(chan) => Command::Recv { chan, wait },
                None => return err("recv needs a channel"),
            }
        }
        "console" => Command::Console { text: text(rest, "console", MAX_CONSOLE)? },
        "lookup" => match rest {
            [name] if name.len() <= MAX_NAME => Command::Lookup { name: name.clone() },
            [name] => return err(format!("lookup: name is {} bytes, the limit is {MAX_NAME}", name.len())),
            _ => return err("lookup needs exactly one name"),
        },
        "call" => {
            let (nr, a) = match rest.split_first() {
                Some(x) => x,
                None => return err("call needs a call number"),
            };
            if a.len() > 4 {
                return err("call takes at most 4 arguments (RBX, RCX, RDX, RSI)");
            }
            let mut args = [0u64; 4];
            for (slot, s) in args.iter_mut().zip(a) {
                *slot = number("call argument", s)?;
            }
            Command::Call { nr: number("call number", nr)?, args }
        }
        other => return err(format!("unknown command {other:?}")),
    };
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command, UsageError> {
        let v: Vec<String> = s.split_whitespace().map(String::from).collect();
        parse(&v)
    }

    #[test]
    fn numbers_parse_in_decimal_and_hex() {
        assert_eq!(parse_number("999"), Some(999));
        assert_eq!(parse_number("0x3e7"), Some(999));
        assert_eq!(parse_number("0XFEBF_F000"), Some(0xFEBF_F000));
        assert_eq!(parse_number("18446744073709551615"), Some(u64::MAX));
        for bad in ["", "0x", "-1", "+1", "12a", "0xg", "18446744073709551616", "1.5"] {
            assert_eq!(parse_number(bad), None, "{bad:?} must not parse");
        }
    }

    #[test]
    fn avx2_takes_an_optional_round_count() {
        assert_eq!(p("avx2"), Ok(Command::Avx2 { rounds: DEFAULT_AVX2_ROUNDS }));
        assert_eq!(p("avx2 --rounds 0x10"), Ok(Command::Avx2 { rounds: 16 }));
        assert!(p("avx2 --rounds 0").is_err());
        assert!(p("avx2 7").is_err());
    }

    #[test]
    fn simple_commands_take_no_arguments() {
        assert_eq!(p("version"), Ok(Command::Version));
        assert_eq!(p("ping"), Ok(Command::Ping));
        assert_eq!(p("info"), Ok(Command::Info));
        assert_eq!(p("stats"), Ok(Command::Stats));
        assert_eq!(p("kmsg"), Ok(Command::Kmsg));
        assert!(p("ping extra").is_err());
        assert!(p("").is_err());
        assert!(p("frobnicate").is_err());
    }

    #[test]
    fn call_takes_a_number_and_up_to_four_register_arguments() {
        assert_eq!(p("call 999"), Ok(Command::Call { nr: 999, args: [0; 4] }));
        assert_eq!(p("call 0x6 0x1000 5 6 7"), Ok(Command::Call { nr: 6, args: [0x1000, 5, 6, 7] }));
        assert!(p("call").is_err());
        assert!(p("call 1 2 3 4 5 6").is_err());
        assert!(p("call ping").is_err());
    }

    #[test]
    fn send_joins_words_and_checks_channel_and_length() {
        assert_eq!(p("send 3 hello  world"), Ok(Command::Send { chan: 3, text: "hello world".into() }));
        assert_eq!(
            p("send 8 x"),
            Ok(Command::Send { chan: 8, text: "x".into() }),
            "the hypervisor, not hvctl, rejects channels out of range"
        );
        assert!(p("send x y").is_err());
        assert!(p("send 1").is_err(), "needs a text");
        // Longer than a message may be (the hypervisor says -E2BIG), but
        // not longer than the one-page buffer.
        let long = vec!["send".to_string(), "0".into(), "x".repeat(257)];
        assert!(parse(&long).is_ok());
        let too_long = vec!["send".to_string(), "0".into(), "x".repeat(4097)];
        assert!(parse(&too_long).is_err());
    }

    #[test]
    fn recv_takes_a_channel_and_an_optional_wait_flag() {
        assert_eq!(p("recv 2"), Ok(Command::Recv { chan: 2, wait: false }));
        assert_eq!(p("recv 2 --wait"), Ok(Command::Recv { chan: 2, wait: true }));
        assert_eq!(p("recv --wait 7"), Ok(Command::Recv { chan: 7, wait: true }));
        assert!(p("recv").is_err());
        assert!(p("recv 1 2").is_err());
        assert!(p("recv x").is_err());
    }

    #[test]
    fn console_and_lookup_check_their_limits() {
        assert_eq!(p("console hi there"), Ok(Command::Console { text: "hi there".into() }));
        assert!(p("console").is_err());
        assert_eq!(p("lookup ping"), Ok(Command::Lookup { name: "ping".into() }));
        assert!(parse(&["lookup".to_string(), "n".repeat(33)]).is_err());
        assert!(p("lookup a b").is_err());
    }

    #[test]
    fn bench_defaults_to_all_kinds_with_fewer_mmio_samples() {
        let Ok(Command::Bench(o)) = p("bench") else { panic!() };
        assert_eq!(o.kinds, BenchKind::ALL.to_vec());
        assert_eq!(o.iterations_for(BenchKind::Vmmcall), 10_000);
        assert_eq!(o.iterations_for(BenchKind::Mmio), 2_000);
        assert_eq!(o.warmup, DEFAULT_WARMUP);
        assert_eq!(o.histogram, None);
    }

    #[test]
    fn bench_options_parse_with_space_or_equals() {
        let Ok(Command::Bench(o)) = p("bench --iterations 500 --histogram /tmp/h.txt --only=vmmcall,mmio --warmup 0")
        else {
            panic!()
        };
        assert_eq!(o.iterations, 500);
        assert_eq!(o.mmio_iterations, 500, "mmio never takes more than --iterations by default");
        assert_eq!(o.warmup, 0);
        assert_eq!(o.kinds, vec![BenchKind::Vmmcall, BenchKind::Mmio]);
        assert_eq!(o.histogram.as_deref(), Some("/tmp/h.txt"));
        let Ok(Command::Bench(o)) = p("bench --iterations=50000 --mmio-iterations 7") else { panic!() };
        assert_eq!((o.iterations, o.mmio_iterations), (50_000, 7));
    }

    #[test]
    fn bench_rejects_bad_options() {
        for bad in [
            "bench --iterations",
            "bench --iterations 0",
            "bench --iterations x",
            "bench --only",
            "bench --only nope",
            "bench --histogram",
            "bench --fast",
        ] {
            assert!(p(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn bench_kind_names_round_trip() {
        for k in BenchKind::ALL {
            assert_eq!(BenchKind::from_name(k.name()), Some(k));
        }
    }
}
