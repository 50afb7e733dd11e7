//! The Linux guest: Debian's kernel boots under the hypervisor, through the
//! bzImage boot protocol and through PVH, to an interactive busybox shell
//! that answers commands typed on the serial line.
use integration::*;
use std::time::Duration;

const READY: &str = "CERTIVISOR-GUEST-READY";

/// Boots `kernel`, drives the shell, reboots, and checks the clean stop.
fn boot_and_use_the_shell(kernel: &std::path::Path, expect_kind: &str) {
    let img = linux_images();
    let mut s = Qemu::new()
        .cpu("qemu64,+svm,+npt")
        .kernel(&kernel_image(), "log=info")
        .modules(&[(kernel, &img.cmdline), (&img.initramfs, "")])
        .spawn();
    let boot = s.expect(READY, Duration::from_secs(300));
    assert!(boot.contains(expect_kind), "expected the loader to report {expect_kind:?}:\n{boot}");
    s.expect("# ", Duration::from_secs(60));

    s.send("uname -r\n");
    let out = s.expect("# ", Duration::from_secs(60));
    assert!(out.contains(&img.release), "uname -r: expected {:?}, saw:\n{out}", img.release);

    s.send("head -n 1 /proc/meminfo\n");
    let out = s.expect("# ", Duration::from_secs(60));
    assert!(out.contains("MemTotal:"), "expected the MemTotal line, saw:\n{out}");
    let kb: u64 = out
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!((200_000..=262_144).contains(&kb), "MemTotal {kb} kB is not about the default 256 MiB:\n{out}");

    s.send("dmesg | grep -i hypervisor\n");
    let out = s.expect("# ", Duration::from_secs(60));
    assert!(out.to_lowercase().matches("hypervisor").count() >= 2, "expected dmesg lines about the hypervisor:\n{out}");

    s.send("reboot -f\n");
    s.expect("vm0: stopped cleanly", Duration::from_secs(60));
    assert_eq!(s.wait(Duration::from_secs(30)), Some(EXIT_SUCCESS), "log:\n{}", s.output());
}

fn kernel_image() -> std::path::PathBuf {
    kernel()
}

#[test]
fn linux_bzimage_boots_to_an_interactive_shell() {
    boot_and_use_the_shell(&linux_images().bzimage, "BzImage image");
}

#[test]
fn linux_vmlinux_boots_through_pvh_to_an_interactive_shell() {
    boot_and_use_the_shell(&linux_images().vmlinux, "Pvh image");
}
