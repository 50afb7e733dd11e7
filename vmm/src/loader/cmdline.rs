//! What the hypervisor adds to a Linux guest's command line.
//!
//! Linux calibrates its TSC against the PIT (quick_pit_calibrate, then
//! pit_calibrate_tsc), and both give up when reading the PIT is slow: the
//! second wants at least 1,000 reads of port 0x61 in 10 ms. Each read is a
//! VM exit, which on QEMU's TCG costs ~25 µs, so Linux there marked its TSC
//! unstable and kept time with jiffies, running at about 75 % of real time.
//! The hypervisor has measured the TSC already (against the PIT, without
//! exits), so it hands the value over with Linux's own `tsc_early_khz=`
//! parameter, unless the user gave one.
use arrayvec::ArrayString;

/// Room for the user's command line (the boot modules allow 512 bytes)
/// and what is appended.
pub const LINUX_CMDLINE_MAX: usize = 576;

/// The command line a Linux guest boots with: the user's, then
/// ` tsc_early_khz=<tsc_khz>` unless the user's already sets it. A line too
/// long for the addition is returned as it was.
pub fn linux_cmdline(user: &str, tsc_khz: u64) -> ArrayString<LINUX_CMDLINE_MAX> {
    let mut out = ArrayString::new();
    if out.try_push_str(user).is_err() {
        // Longer than any module command line: the loader will refuse it.
        let _ = out.try_push_str(&user[..user.floor_char_boundary(LINUX_CMDLINE_MAX)]);
        return out;
    }
    if tsc_khz == 0 || user.split_ascii_whitespace().any(|w| w.starts_with("tsc_early_khz=")) {
        return out;
    }
    let mut add = ArrayString::<32>::new();
    let sep = if user.is_empty() { "" } else { " " };
    let _ = core::fmt::write(&mut add, format_args!("{sep}tsc_early_khz={tsc_khz}"));
    let _ = out.try_push_str(&add);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_measured_tsc_frequency_is_appended() {
        assert_eq!(
            linux_cmdline("console=ttyS0 quiet", 2_596_134).as_str(),
            "console=ttyS0 quiet tsc_early_khz=2596134"
        );
        assert_eq!(linux_cmdline("", 1_000_000).as_str(), "tsc_early_khz=1000000");
    }

    #[test]
    fn a_users_own_value_wins() {
        let user = "console=ttyS0 tsc_early_khz=1234";
        assert_eq!(linux_cmdline(user, 2_596_134).as_str(), user);
    }

    #[test]
    fn an_unknown_frequency_adds_nothing() {
        assert_eq!(linux_cmdline("quiet", 0).as_str(), "quiet");
    }

    #[test]
    fn a_full_line_is_kept_as_it_was() {
        let user = "x".repeat(LINUX_CMDLINE_MAX - 5);
        assert_eq!(linux_cmdline(&user, 2_596_134).as_str(), user);
    }
}
