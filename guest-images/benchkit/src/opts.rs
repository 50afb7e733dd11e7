//! The benchmark options both tools take (pure; tested on the host):
//!
//! ```text
//! --iterations N       samples per kind (default 10000; mmio 2000)
//! --mmio-iterations N  samples for MMIO kinds (default 2000, or N if smaller)
//! --warmup N           untimed rounds before each kind (default 200)
//! --only K[,K...]      only these kinds
//! --histogram FILE     write raw samples, one `kind cycles` per line
//! ```

pub const DEFAULT_ITERATIONS: usize = 10_000;
pub const DEFAULT_MMIO_ITERATIONS: usize = 2_000;
pub const DEFAULT_WARMUP: usize = 200;

/// One measurement a tool knows.
pub trait Kind: Copy + Eq + Sized + 'static {
    /// Every kind, in the order they run and are reported.
    const ALL: &'static [Self];

    /// The name on the command line and in `BENCH`/`HIST` lines.
    fn name(self) -> &'static str;

    /// A short description for the table (up to 24 characters).
    fn describe(self) -> &'static str;

    /// MMIO reads are the slowest exits and take `--mmio-iterations` samples.
    fn is_mmio(self) -> bool;

    /// The kind that times nothing but the timing sequence itself.
    fn is_overhead(self) -> bool;

    fn from_name(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.name() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchOpts<K> {
    pub iterations: usize,
    pub mmio_iterations: usize,
    pub warmup: usize,
    pub kinds: Vec<K>,
    pub histogram: Option<String>,
}

impl<K: Kind> BenchOpts<K> {
    pub fn iterations_for(&self, kind: K) -> usize {
        if kind.is_mmio() {
            self.mmio_iterations
        } else {
            self.iterations
        }
    }
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

/// A count option's value: 1 to 100,000,000.
pub fn count(what: &str, s: Option<&String>) -> Result<usize, String> {
    let s = s.ok_or_else(|| format!("{what} needs a value"))?;
    match parse_number(s) {
        Some(n) if n > 0 && n <= 100_000_000 => Ok(n as usize),
        _ => Err(format!("{what}: expected a count from 1 to 100000000, saw {s:?}")),
    }
}

fn kind_list<K: Kind>(v: &str) -> Result<Vec<K>, String> {
    let mut kinds = Vec::new();
    for k in v.split(',').filter(|k| !k.is_empty()) {
        let kind = K::from_name(k).ok_or_else(|| {
            let names: Vec<&str> = K::ALL.iter().map(|k| k.name()).collect();
            format!("--only: unknown kind {k:?} (kinds: {})", names.join(" "))
        })?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    if kinds.is_empty() {
        return Err("--only needs at least one kind".into());
    }
    Ok(kinds)
}

/// Parses the benchmark options (the arguments after `bench`, or all of
/// `kvmbench`'s).
pub fn parse_bench_opts<K: Kind>(rest: &[String]) -> Result<BenchOpts<K>, String> {
    let mut iterations = None;
    let mut mmio_iterations = None;
    let mut warmup = DEFAULT_WARMUP;
    let mut kinds: Vec<K> = K::ALL.to_vec();
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
                    _ => return Err("--warmup: expected a count from 0 to 1000000".into()),
                }
            }
            "--only" => kinds = kind_list(&value().ok_or("--only needs a list of kinds")?)?,
            "--histogram" => match value() {
                Some(f) if !f.is_empty() => histogram = Some(f),
                _ => return Err("--histogram needs a file name".into()),
            },
            _ => return Err(format!("bench: unknown option {a:?}")),
        }
    }
    let iterations = iterations.unwrap_or(DEFAULT_ITERATIONS);
    // MMIO exits are the slowest; by default take fewer, but never more
    // than asked for overall.
    let mmio_iterations = mmio_iterations.unwrap_or(DEFAULT_MMIO_ITERATIONS.min(iterations));
    Ok(BenchOpts { iterations, mmio_iterations, warmup, kinds, histogram })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Kinds for the tests: one ordinary, one MMIO, the overhead.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum T {
        Call,
        Mmio,
        Tsc,
    }

    impl Kind for T {
        const ALL: &'static [T] = &[T::Call, T::Mmio, T::Tsc];
        fn name(self) -> &'static str {
            match self {
                T::Call => "call",
                T::Mmio => "mmio_user",
                T::Tsc => "rdtsc",
            }
        }
        fn describe(self) -> &'static str {
            match self {
                T::Call => "a call",
                T::Mmio => "an MMIO read",
                T::Tsc => "RDTSC pair, no exit",
            }
        }
        fn is_mmio(self) -> bool {
            self == T::Mmio
        }
        fn is_overhead(self) -> bool {
            self == T::Tsc
        }
    }

    fn p(s: &str) -> Result<BenchOpts<T>, String> {
        let v: Vec<String> = s.split_whitespace().map(String::from).collect();
        parse_bench_opts(&v)
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
    fn defaults_are_all_kinds_with_fewer_mmio_samples() {
        let o = p("").unwrap();
        assert_eq!(o.kinds, T::ALL.to_vec());
        assert_eq!(o.iterations_for(T::Call), 10_000);
        assert_eq!(o.iterations_for(T::Mmio), 2_000);
        assert_eq!(o.warmup, DEFAULT_WARMUP);
        assert_eq!(o.histogram, None);
    }

    #[test]
    fn options_parse_with_space_or_equals() {
        let o = p("--iterations 500 --histogram /tmp/h.txt --only=call,mmio_user,call --warmup 0").unwrap();
        assert_eq!(o.iterations, 500);
        assert_eq!(o.mmio_iterations, 500, "mmio never takes more than --iterations by default");
        assert_eq!(o.warmup, 0);
        assert_eq!(o.kinds, vec![T::Call, T::Mmio], "a repeated kind runs once");
        assert_eq!(o.histogram.as_deref(), Some("/tmp/h.txt"));
        let o = p("--iterations=50000 --mmio-iterations 7").unwrap();
        assert_eq!((o.iterations, o.mmio_iterations), (50_000, 7));
    }

    #[test]
    fn bad_options_are_rejected() {
        for bad in [
            "--iterations",
            "--iterations 0",
            "--iterations x",
            "--only",
            "--only nope",
            "--only ,",
            "--histogram",
            "--warmup 1000001",
            "--fast",
        ] {
            assert!(p(bad).is_err(), "{bad:?} must be rejected");
        }
        assert_eq!(p("--only nope").unwrap_err(), "--only: unknown kind \"nope\" (kinds: call mmio_user rdtsc)");
    }

    #[test]
    fn kind_names_round_trip() {
        for &k in T::ALL {
            assert_eq!(T::from_name(k.name()), Some(k));
        }
        assert_eq!(T::from_name("mmio"), None);
    }
}
