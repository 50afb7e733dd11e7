//! The hypervisor's command line.
//!
//! Options are `key=value` words. Everything after a lone `--` is the
//! guest's command line. A word that is not an option, or whose value does
//! not parse, is reported and ignored: a typo on the boot line must never
//! stop the machine.
use arrayvec::{ArrayString, ArrayVec};
use log::LevelFilter;

/// Default guest RAM: 256 MiB.
pub const DEFAULT_GUEST_MEM: u64 = 256 << 20;
/// Smallest and largest guest RAM we accept.
pub const MIN_GUEST_MEM: u64 = 16 << 20;
pub const MAX_GUEST_MEM: u64 = 3 << 30;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub log_level: LevelFilter,
    /// Guest RAM in bytes.
    pub guest_mem: u64,
    /// Pass port 0xF4 (QEMU's debug-exit device) through to the guest.
    pub debug_exit_passthrough: bool,
    /// Run the layer self-test at boot.
    pub selftest: bool,
    /// Diagnostic: raise this host exception after boot, to check that the
    /// exception path reports it (`test-fault=ud|pf|gp|stack`).
    pub test_fault: Option<TestFault>,
    /// The guest's command line (after `--`).
    pub guest_cmdline: ArrayString<512>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            log_level: LevelFilter::Info,
            guest_mem: DEFAULT_GUEST_MEM,
            debug_exit_passthrough: false,
            selftest: true,
            test_fault: None,
            guest_cmdline: ArrayString::new(),
        }
    }
}

pub use crate::arch::cpu::TestFault;

/// A problem with one word of the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub word: ArrayString<64>,
    pub reason: &'static str,
}

/// The problems found, in order: the first [`Problems::KEPT`] in full, and a
/// count of the rest so that none goes unmentioned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems {
    list: ArrayVec<Problem, { Problems::KEPT }>,
    /// Problems past the first `KEPT`.
    pub more: usize,
}

impl Problems {
    pub const KEPT: usize = 24;

    pub fn new() -> Problems {
        Problems::default()
    }

    /// Notes that `word` has a problem, for `reason`.
    pub fn report(&mut self, word: &str, reason: &'static str) {
        if self.list.try_push(Problem { word: super::bounded(word), reason }).is_err() {
            self.more += 1;
        }
    }
}

impl core::ops::Deref for Problems {
    type Target = [Problem];
    fn deref(&self) -> &[Problem] {
        &self.list
    }
}

fn parse_level(v: &str) -> Option<LevelFilter> {
    Some(match v {
        "off" => LevelFilter::Off,
        "error" => LevelFilter::Error,
        "warn" => LevelFilter::Warn,
        "info" => LevelFilter::Info,
        "debug" => LevelFilter::Debug,
        "trace" => LevelFilter::Trace,
        _ => return None,
    })
}

/// Parses a size such as `256M`, `1G`, `65536K` or a plain byte count.
pub fn parse_size(v: &str) -> Option<u64> {
    let (digits, shift) = match v.as_bytes().last()? {
        b'K' | b'k' => (&v[..v.len() - 1], 10),
        b'M' | b'm' => (&v[..v.len() - 1], 20),
        b'G' | b'g' => (&v[..v.len() - 1], 30),
        _ => (v, 0),
    };
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(1 << shift)
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "on" | "yes" | "true" => Some(true),
        "0" | "off" | "no" | "false" => Some(false),
        _ => None,
    }
}

/// Parses the whole command line. QEMU's `-kernel` puts the kernel's path
/// first, GRUB may too: a leading word with a `/` and no `=` is skipped.
pub fn parse(cmdline: &str) -> (Options, Problems) {
    let mut opts = Options::default();
    let mut problems = Problems::new();
    let mut report = |word: &str, reason: &'static str| problems.report(word, reason);

    let (own, guest) = match cmdline.split_once(" -- ") {
        Some((a, b)) => (a, Some(b)),
        None => match cmdline.strip_suffix(" --") {
            Some(a) => (a, Some("")),
            None => (cmdline, None),
        },
    };
    if let Some(g) = guest {
        let g = g.trim();
        if g.len() > opts.guest_cmdline.capacity() {
            report(g, "guest command line too long (512 bytes at most); ignored");
        } else {
            opts.guest_cmdline = super::bounded(g);
        }
    }

    for (i, word) in own.split_ascii_whitespace().enumerate() {
        if i == 0 && word.contains('/') && !word.contains('=') {
            continue;
        }
        if word == "--" {
            continue;
        }
        let Some((key, value)) = word.split_once('=') else {
            report(word, "not an option (expected key=value); ignored");
            continue;
        };
        match key {
            "log" => match parse_level(value) {
                Some(l) => opts.log_level = l,
                None => report(word, "log level must be off|error|warn|info|debug|trace; ignored"),
            },
            "mem" => match parse_size(value) {
                Some(m) if (MIN_GUEST_MEM..=MAX_GUEST_MEM).contains(&m) && m % (2 << 20) == 0 => opts.guest_mem = m,
                _ => report(word, "guest memory must be a multiple of 2M between 16M and 3G; ignored"),
            },
            "debug-exit" => match parse_bool(value) {
                Some(b) => opts.debug_exit_passthrough = b,
                None => report(word, "debug-exit must be on or off; ignored"),
            },
            "selftest" => match parse_bool(value) {
                Some(b) => opts.selftest = b,
                None => report(word, "selftest must be on or off; ignored"),
            },
            "test-fault" => match value {
                "ud" => opts.test_fault = Some(TestFault::InvalidOpcode),
                "pf" => opts.test_fault = Some(TestFault::PageFault),
                "gp" => opts.test_fault = Some(TestFault::GeneralProtection),
                "stack" => opts.test_fault = Some(TestFault::StackOverflow),
                _ => report(word, "test-fault must be ud, pf, gp or stack; ignored"),
            },
            _ => report(word, "unknown option; ignored"),
        }
    }
    (opts, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn kernel_path_is_skipped_and_options_are_read() {
        let (o, p) = parse("/tmp/hypervisor log=debug mem=512M");
        assert!(p.is_empty(), "unexpected problems: {p:?}");
        assert_eq!(o.log_level, LevelFilter::Debug);
        assert_eq!(o.guest_mem, 512 << 20);
    }

    #[test]
    fn guest_command_line_follows_double_dash() {
        let (o, p) = parse("log=warn -- console=ttyS0 quiet");
        assert!(p.is_empty());
        assert_eq!(o.guest_cmdline.as_str(), "console=ttyS0 quiet");
        assert_eq!(o.log_level, LevelFilter::Warn);
    }

    #[test]
    fn unknown_and_malformed_options_are_reported_and_ignored() {
        let (o, p) = parse("bogus=1 log=loud mem=7 justaword");
        assert_eq!(o, Options::default());
        let words: Vec<_> = p.iter().map(|p| p.word.as_str()).collect();
        assert_eq!(words, ["bogus=1", "log=loud", "mem=7", "justaword"]);
    }

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_size("256M"), Some(256 << 20));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("M"), None);
        assert_eq!(parse_size("99999999999999999999G"), None);
    }

    proptest! {
        #[test]
        fn any_command_line_parses_without_panicking(s in "\\PC{0,300}") {
            let _ = parse(&s);
        }
    }
}
