//! Command-line parsing (pure; tested on the host).

use crate::abi::{MAX_CONSOLE, MAX_NAME};
use benchkit::{count, parse_bench_opts, parse_number, Kind};

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
      --iterations N       samples per kind (default 10000; MMIO 2000)
      --mmio-iterations N  samples for the MMIO kinds (default 2000, or N
                           if smaller)
      --warmup N           untimed rounds before each kind (default 200)
      --only K[,K...]      only these kinds: cpuid vmcall port_read port_write
                           mmio_read mmio_write rdtsc
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

/// The measurements `hvctl bench` knows, named as common VM-exit
/// microbenchmarks name them (docs/benchmarking.md). `mov_cr8` is not
/// among them: hvctl runs at CPL 3, where MOV to CR8 faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchKind {
    /// CPUID leaf 0x4000_0000.
    Cpuid,
    /// VMMCALL PING round trip.
    Vmcall,
    /// `in al, 0xE9`: the debug port, a read the kernel answers.
    PortRead,
    /// `out 0x80, al`: the POST port, a write the VMM's board takes.
    PortWrite,
    /// 32-bit read of the MMIO information device's MAGIC register.
    MmioRead,
    /// 32-bit write of the MMIO information device's SCRATCH register.
    MmioWrite,
    /// Back-to-back timestamps, no exit: the measurement's own overhead.
    Rdtsc,
}

impl Kind for BenchKind {
    const ALL: &'static [BenchKind] = &[
        BenchKind::Cpuid,
        BenchKind::Vmcall,
        BenchKind::PortRead,
        BenchKind::PortWrite,
        BenchKind::MmioRead,
        BenchKind::MmioWrite,
        BenchKind::Rdtsc,
    ];

    fn name(self) -> &'static str {
        match self {
            BenchKind::Cpuid => "cpuid",
            BenchKind::Vmcall => "vmcall",
            BenchKind::PortRead => "port_read",
            BenchKind::PortWrite => "port_write",
            BenchKind::MmioRead => "mmio_read",
            BenchKind::MmioWrite => "mmio_write",
            BenchKind::Rdtsc => "rdtsc",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            BenchKind::Cpuid => "CPUID 0x40000000",
            BenchKind::Vmcall => "VMMCALL PING",
            BenchKind::PortRead => "in al,0xE9",
            BenchKind::PortWrite => "out 0x80,al",
            BenchKind::MmioRead => "MMIO read (NPF)",
            BenchKind::MmioWrite => "MMIO write (NPF)",
            BenchKind::Rdtsc => "RDTSC pair, no exit",
        }
    }

    fn is_mmio(self) -> bool {
        matches!(self, BenchKind::MmioRead | BenchKind::MmioWrite)
    }

    fn is_overhead(self) -> bool {
        self == BenchKind::Rdtsc
    }
}

/// `hvctl bench`'s options.
pub type BenchOpts = benchkit::BenchOpts<BenchKind>;

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

fn number(what: &str, s: &str) -> Result<u64, UsageError> {
    parse_number(s).map_or_else(|| err(format!("{what}: not a number: {s:?}")), Ok)
}

/// A channel number. Its range is the hypervisor's to check (-EINVAL), so
/// that `hvctl` can also show how it treats a bad one.
fn channel(s: &str) -> Result<u64, UsageError> {
    number("channel", s)
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
            [opt, n] if opt == "--rounds" => Command::Avx2 { rounds: count("--rounds", Some(n)).map_err(UsageError)? },
            _ => return err("avx2 takes only --rounds N"),
        },
        "bench" => Command::Bench(parse_bench_opts(rest).map_err(UsageError)?),
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
    fn bench_takes_the_shared_options_with_hvctls_kinds() {
        let Ok(Command::Bench(o)) = p("bench") else { panic!() };
        assert_eq!(o.kinds, BenchKind::ALL.to_vec());
        assert_eq!(o.iterations_for(BenchKind::Vmcall), 10_000);
        assert_eq!(o.iterations_for(BenchKind::MmioRead), 2_000);
        assert_eq!(o.iterations_for(BenchKind::MmioWrite), 2_000);
        let Ok(Command::Bench(o)) = p("bench --only=vmcall,mmio_read --iterations 500") else { panic!() };
        assert_eq!(o.kinds, vec![BenchKind::Vmcall, BenchKind::MmioRead]);
        assert_eq!(o.iterations_for(BenchKind::MmioRead), 500);
        assert_eq!(
            p("bench --only nope"),
            Err(UsageError(
                "--only: unknown kind \"nope\" (kinds: cpuid vmcall port_read port_write mmio_read mmio_write rdtsc)"
                    .into()
            ))
        );
        assert!(p("bench --fast").is_err());
    }

    #[test]
    fn bench_kind_names_round_trip() {
        for &k in BenchKind::ALL {
            assert_eq!(BenchKind::from_name(k.name()), Some(k));
        }
    }
}
