//! The Certivisor hypercall ABI, version 2 (docs/hypercalls.md): call
//! numbers, error codes, limits, and decoders for the structures the
//! hypervisor writes into guest memory. Everything here is plain data and
//! pure functions, tested on the host.

// The ABI's numbers, names, privileges, limits and error codes come from
// `hvabi`, the definition the hypervisor serves from.
pub use hvabi::{errno, errno_name, nr, ABI_VERSION, LEAF_ABI, LEAF_SIGNATURE, SIGNATURE};
#[cfg_attr(not(test), allow(unused_imports))]
pub use hvabi::{MAX_CONSOLE, MAX_MESSAGE, MAX_NAME};

/// The names LOOKUP knows, indexed by call number.
#[cfg_attr(not(test), allow(dead_code))]
pub const CALL_NAMES: [&str; hvabi::CALLS.len()] = {
    let mut names = [""; hvabi::CALLS.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = hvabi::CALLS[i].1;
        i += 1;
    }
    names
};

/// What an error code means, in a few words.
pub fn errno_text(result: i64) -> &'static str {
    match result {
        errno::EPERM => "needs CPL 0 (the kernel), not user mode",
        errno::ENOENT => "no such name",
        errno::E2BIG => "buffer too small or message too long",
        errno::EAGAIN => "channel full or empty, try again",
        errno::EFAULT => "buffer not inside the VM's RAM",
        errno::EINVAL => "invalid argument",
        errno::ENOSYS => "unknown call number",
        _ => "unknown error",
    }
}

/// `-38 ENOSYS`, `0`, `-5 E?`: a raw result the way `hvctl call` prints it.
pub fn format_result(result: i64) -> String {
    if result >= 0 {
        result.to_string()
    } else {
        format!("{result} {}", errno_name(result).unwrap_or("E?"))
    }
}

/// Why a structure from the hypervisor could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the structure needs.
    Short { need: usize, have: usize },
    /// The magic number is not the expected one.
    BadMagic { want: u32, saw: u32 },
    /// A header field makes no sense (e.g. too many histogram buckets).
    BadField { field: &'static str, value: u64 },
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::Short { need, have } => {
                write!(f, "structure too short: need {need} bytes, have {have}")
            }
            DecodeError::BadMagic { want, saw } => {
                write!(f, "bad magic: expected {want:#010x}, saw {saw:#010x}")
            }
            DecodeError::BadField { field, value } => write!(f, "implausible {field}: {value}"),
        }
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

/// A NUL-padded name field as text (up to the first NUL).
fn padded_name(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn need(b: &[u8], n: usize) -> Result<(), DecodeError> {
    if b.len() < n {
        Err(DecodeError::Short { need: n, have: b.len() })
    } else {
        Ok(())
    }
}

/// INFO's magic: the bytes "CVIN".
pub const INFO_MAGIC: u32 = 0x4E49_5643;
/// INFO writes this many bytes.
pub const INFO_LEN: usize = 64;

/// The structure INFO writes (64 bytes, little-endian).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub abi_version: u32,
    pub vm_id: u32,
    pub vcpu_count: u32,
    pub mem_bytes: u64,
    pub vcpu_index: u32,
    pub tsc_hz: u64,
    pub name: String,
}

impl Info {
    /// Offsets: 0 magic, 4 abi_version, 8 vm_id, 12 vcpu_count,
    /// 16 mem_bytes, 24 vcpu_index, 28 reserved, 32 tsc_hz, 40 name[24].
    pub fn decode(b: &[u8]) -> Result<Info, DecodeError> {
        need(b, INFO_LEN)?;
        let magic = u32_at(b, 0);
        if magic != INFO_MAGIC {
            return Err(DecodeError::BadMagic { want: INFO_MAGIC, saw: magic });
        }
        Ok(Info {
            abi_version: u32_at(b, 4),
            vm_id: u32_at(b, 8),
            vcpu_count: u32_at(b, 12),
            mem_bytes: u64_at(b, 16),
            vcpu_index: u32_at(b, 24),
            tsc_hz: u64_at(b, 32),
            name: padded_name(&b[40..64]),
        })
    }
}

/// STATS's magic, as the ABI gives the number. (Its bytes in memory are
/// 43 56 54 53, "CVTS".)
pub const STATS_MAGIC: u32 = hvabi::stats::MAGIC;
/// The same magic spelled as the bytes "CVST" (0x5453_5643); accepted too,
/// so that either reading of the ABI text decodes.
pub const STATS_MAGIC_BYTES: u32 = u32::from_le_bytes(*b"CVST");
/// The STATS header: magic, version, nreasons, nbuckets, tsc_hz.
pub const STATS_HEADER_LEN: usize = hvabi::stats::HEADER_LEN;
/// Bytes of a reason record before its histogram: name[16] and four u64.
pub const STATS_RECORD_FIXED: usize = hvabi::stats::NAME_LEN + 4 * 8;
/// The largest histogram STATS can describe (u64 cycle counts).
pub const MAX_BUCKETS: u32 = 64;

/// The CPU section after STATS's records: "CVCP", then guest, VMM and
/// elapsed nanoseconds.
pub const CPU_MAGIC: u32 = hvabi::stats::cpu::MAGIC;
pub const CPU_LEN: usize = hvabi::stats::cpu::LEN;

/// How many bytes a STATS answer with these dimensions takes (without the
/// CPU section).
pub fn stats_len(nreasons: u32, nbuckets: u32) -> usize {
    STATS_HEADER_LEN + nreasons as usize * (STATS_RECORD_FIXED + 8 * nbuckets as usize)
}

/// One exit reason's statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonStats {
    pub name: String,
    pub count: u64,
    pub total_cycles: u64,
    pub min_cycles: u64,
    pub max_cycles: u64,
    /// Bucket i counts exits handled in [2^i, 2^(i+1)) cycles; bucket 0
    /// also holds 0 and 1.
    pub histogram: Vec<u64>,
}

impl ReasonStats {
    /// The mean handling time, if there were exits.
    pub fn mean_cycles(&self) -> Option<f64> {
        (self.count > 0).then(|| self.total_cycles as f64 / self.count as f64)
    }

    /// The non-empty histogram buckets as `bucket:count`, e.g. `6:12 7:1000`.
    pub fn compact_histogram(&self) -> String {
        let parts: Vec<String> =
            self.histogram.iter().enumerate().filter(|(_, &c)| c > 0).map(|(i, c)| format!("{i}:{c}")).collect();
        parts.join(" ")
    }
}

/// STATS's CPU section: the VM's use of the CPU since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuUse {
    /// In guest mode.
    pub guest_ns: u64,
    /// On a CPU outside guest mode (the VMM, and the kernel's work for it).
    pub vmm_ns: u64,
    /// Since the VM started.
    pub elapsed_ns: u64,
}

impl CpuUse {
    /// The part of its lifetime the VM held a CPU, in percent.
    pub fn share_percent(&self) -> Option<f64> {
        (self.elapsed_ns > 0).then(|| (self.guest_ns + self.vmm_ns) as f64 * 100.0 / self.elapsed_ns as f64)
    }
}

/// The structure STATS writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub version: u32,
    pub nbuckets: u32,
    pub tsc_hz: u64,
    pub reasons: Vec<ReasonStats>,
    /// Absent from a hypervisor that writes only the records.
    pub cpu: Option<CpuUse>,
}

impl Stats {
    /// Decodes the header and `nreasons` records of
    /// `{ name[16], count, total_cycles, min_cycles, max_cycles, histogram[nbuckets] }`,
    /// and the CPU section after them if `b` goes on that far and it has
    /// its magic.
    pub fn decode(b: &[u8]) -> Result<Stats, DecodeError> {
        need(b, STATS_HEADER_LEN)?;
        let magic = u32_at(b, 0);
        if magic != STATS_MAGIC && magic != STATS_MAGIC_BYTES {
            return Err(DecodeError::BadMagic { want: STATS_MAGIC, saw: magic });
        }
        let version = u32_at(b, 4);
        let nreasons = u32_at(b, 8);
        let nbuckets = u32_at(b, 12);
        let tsc_hz = u64_at(b, 16);
        if nbuckets > MAX_BUCKETS {
            return Err(DecodeError::BadField { field: "nbuckets", value: nbuckets.into() });
        }
        if nreasons > 1024 {
            return Err(DecodeError::BadField { field: "nreasons", value: nreasons.into() });
        }
        need(b, stats_len(nreasons, nbuckets))?;
        let rec_len = STATS_RECORD_FIXED + 8 * nbuckets as usize;
        let reasons = (0..nreasons as usize)
            .map(|i| {
                let r = &b[STATS_HEADER_LEN + i * rec_len..][..rec_len];
                ReasonStats {
                    name: padded_name(&r[..16]),
                    count: u64_at(r, 16),
                    total_cycles: u64_at(r, 24),
                    min_cycles: u64_at(r, 32),
                    max_cycles: u64_at(r, 40),
                    histogram: (0..nbuckets as usize).map(|k| u64_at(r, 48 + 8 * k)).collect(),
                }
            })
            .collect();
        let cpu = b.get(stats_len(nreasons, nbuckets)..).filter(|c| c.len() >= CPU_LEN && u32_at(c, 0) == CPU_MAGIC);
        let cpu = cpu.map(|c| CpuUse {
            guest_ns: u64_at(c, hvabi::stats::cpu::GUEST_NS_AT),
            vmm_ns: u64_at(c, hvabi::stats::cpu::VMM_NS_AT),
            elapsed_ns: u64_at(c, hvabi::stats::cpu::ELAPSED_NS_AT),
        });
        Ok(Stats { version, nbuckets, tsc_hz, reasons, cpu })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info_bytes() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&INFO_MAGIC.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&(256u64 << 20).to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&2_596_000_000u64.to_le_bytes());
        let mut name = [0u8; 24];
        name[..10].copy_from_slice(b"Certivisor");
        b.extend_from_slice(&name);
        b
    }

    #[test]
    fn info_magic_spells_cvin() {
        assert_eq!(&INFO_MAGIC.to_le_bytes(), b"CVIN");
    }

    #[test]
    fn info_decodes_every_field_at_its_offset() {
        let b = info_bytes();
        assert_eq!(b.len(), INFO_LEN);
        let i = Info::decode(&b).unwrap();
        assert_eq!(
            i,
            Info {
                abi_version: 1,
                vm_id: 3,
                vcpu_count: 2,
                mem_bytes: 256 << 20,
                vcpu_index: 1,
                tsc_hz: 2_596_000_000,
                name: "Certivisor".into()
            }
        );
    }

    #[test]
    fn info_rejects_short_buffers_and_bad_magic() {
        let b = info_bytes();
        assert_eq!(Info::decode(&b[..63]), Err(DecodeError::Short { need: 64, have: 63 }));
        let mut bad = b.clone();
        bad[0] = 0;
        assert!(matches!(Info::decode(&bad), Err(DecodeError::BadMagic { .. })));
    }

    #[test]
    fn info_name_without_nul_uses_all_24_bytes() {
        let mut b = info_bytes();
        b[40..64].copy_from_slice(b"ABCDEFGHIJKLMNOPQRSTUVWX");
        assert_eq!(Info::decode(&b).unwrap().name, "ABCDEFGHIJKLMNOPQRSTUVWX");
    }

    /// (name, count, [(bucket, count)])
    type Reason<'a> = (&'a str, u64, &'a [(usize, u64)]);

    fn stats_bytes(magic: u32, reasons: &[Reason<'_>], nbuckets: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&magic.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&(reasons.len() as u32).to_le_bytes());
        b.extend_from_slice(&nbuckets.to_le_bytes());
        b.extend_from_slice(&1_000_000_000u64.to_le_bytes());
        for (name, count, hist) in reasons {
            let mut n = [0u8; 16];
            n[..name.len()].copy_from_slice(name.as_bytes());
            b.extend_from_slice(&n);
            b.extend_from_slice(&count.to_le_bytes());
            b.extend_from_slice(&(count * 100).to_le_bytes());
            b.extend_from_slice(&(if *count > 0 { 64u64 } else { 0 }).to_le_bytes());
            b.extend_from_slice(&(if *count > 0 { 200u64 } else { 0 }).to_le_bytes());
            let mut h = vec![0u64; nbuckets as usize];
            for &(i, c) in hist.iter() {
                h[i] = c;
            }
            for c in h {
                b.extend_from_slice(&c.to_le_bytes());
            }
        }
        b
    }

    #[test]
    fn stats_record_size_matches_the_abi_for_32_buckets() {
        assert_eq!(stats_len(13, 32), 24 + 13 * (16 + 32 + 8 * 32));
        assert!(stats_len(13, 32) <= 4096, "13 reasons fit one page");
    }

    #[test]
    fn stats_decodes_header_and_records() {
        let b = stats_bytes(
            STATS_MAGIC,
            &[("io", 10, &[(6, 9), (7, 1)]), ("cpuid", 0, &[]), ("vmmcall", 4, &[(31, 4)])],
            32,
        );
        assert_eq!(b.len(), stats_len(3, 32));
        let s = Stats::decode(&b).unwrap();
        assert_eq!((s.version, s.nbuckets, s.tsc_hz), (1, 32, 1_000_000_000));
        assert_eq!(s.reasons.len(), 3);
        let io = &s.reasons[0];
        assert_eq!(io.name, "io");
        assert_eq!((io.count, io.total_cycles, io.min_cycles, io.max_cycles), (10, 1000, 64, 200));
        assert_eq!(io.histogram[6], 9);
        assert_eq!(io.histogram[7], 1);
        assert_eq!(io.mean_cycles(), Some(100.0));
        assert_eq!(io.compact_histogram(), "6:9 7:1");
        assert_eq!(s.reasons[1].mean_cycles(), None);
        assert_eq!(s.reasons[1].compact_histogram(), "");
        assert_eq!(s.reasons[2].histogram[31], 4, "the last bucket is read too");
    }

    #[test]
    fn stats_decodes_the_cpu_section_after_the_records_if_there_is_one() {
        let records = stats_bytes(STATS_MAGIC, &[("io", 1, &[(0, 1)])], 32);
        assert_eq!(Stats::decode(&records).unwrap().cpu, None, "a version-1 reply has no CPU section");
        let mut b = records.clone();
        b.extend_from_slice(b"CVCP");
        b.extend_from_slice(&0u32.to_le_bytes());
        for ns in [40_000_000u64, 1_000_000, 82_000_000] {
            b.extend_from_slice(&ns.to_le_bytes());
        }
        let cpu = Stats::decode(&b).unwrap().cpu.expect("a CPU section");
        assert_eq!(cpu, CpuUse { guest_ns: 40_000_000, vmm_ns: 1_000_000, elapsed_ns: 82_000_000 });
        assert_eq!(cpu.share_percent(), Some(50.0));
        assert_eq!(Stats::decode(&b[..b.len() - 1]).unwrap().cpu, None, "a cut-off section is ignored");
        let mut other = b.clone();
        other[records.len()] = b'X';
        assert_eq!(Stats::decode(&other).unwrap().cpu, None, "bytes without the magic are not a CPU section");
    }

    #[test]
    fn stats_accepts_the_cvst_byte_spelling_of_the_magic() {
        let b = stats_bytes(STATS_MAGIC_BYTES, &[("io", 1, &[(0, 1)])], 32);
        assert!(Stats::decode(&b).is_ok());
    }

    #[test]
    fn stats_follows_nbuckets_from_the_header() {
        let b = stats_bytes(STATS_MAGIC, &[("a", 1, &[(3, 1)]), ("b", 2, &[(7, 2)])], 8);
        let s = Stats::decode(&b).unwrap();
        assert_eq!(s.reasons[1].name, "b");
        assert_eq!(s.reasons[1].histogram, vec![0, 0, 0, 0, 0, 0, 0, 2]);
    }

    #[test]
    fn stats_rejects_truncated_answers_and_nonsense_headers() {
        let b = stats_bytes(STATS_MAGIC, &[("io", 1, &[])], 32);
        assert!(matches!(Stats::decode(&b[..b.len() - 1]), Err(DecodeError::Short { .. })));
        assert!(matches!(Stats::decode(&b[..10]), Err(DecodeError::Short { need: 24, have: 10 })));
        let mut bad = b.clone();
        bad[12..16].copy_from_slice(&65u32.to_le_bytes());
        assert!(matches!(Stats::decode(&bad), Err(DecodeError::BadField { field: "nbuckets", .. })));
        let mut bad = b.clone();
        bad[0] ^= 0xff;
        assert!(matches!(Stats::decode(&bad), Err(DecodeError::BadMagic { .. })));
    }

    #[test]
    fn results_print_with_their_errno_names() {
        assert_eq!(format_result(-38), "-38 ENOSYS");
        assert_eq!(format_result(-1), "-1 EPERM");
        assert_eq!(format_result(-5), "-5 E?");
        assert_eq!(format_result(0), "0");
        assert_eq!(format_result(64), "64");
    }

    #[test]
    fn call_names_are_indexed_by_number() {
        assert_eq!(CALL_NAMES[nr::PING as usize], "ping");
        assert_eq!(CALL_NAMES[nr::CHAN_RECV as usize], "chan_recv");
        assert_eq!(CALL_NAMES[nr::POWEROFF as usize], "poweroff");
        assert!(CALL_NAMES.iter().all(|n| n.len() <= MAX_NAME));
    }
}
