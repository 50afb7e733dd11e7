//! The harness shared by the integration tests.
//!
//! Each test builds what it boots (once per test binary), starts an emulator
//! (QEMU, `qemu.rs`, or Bochs, `bochs.rs`) with a hard timeout, reads the
//! serial output as it arrives (`console.rs`), and always kills its emulator:
//! on success, on failure and on panic (the session's `Drop`). `matrix.rs`
//! names the SVM implementations a test can run on.
mod bochs;
mod console;
mod matrix;
mod qemu;
pub mod stress_load;

pub use bochs::Bochs;
pub use console::{Outcome, Session};
pub use matrix::*;
pub use qemu::Qemu;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// QEMU's exit status for each status the hypervisor reports through the
/// debug-exit device, `(value << 1) | 1`; under Bochs the harness reads the
/// same numbers from the hypervisor's `exit:` line.
pub const EXIT_SUCCESS: i32 = 33;
pub const EXIT_FAILURE: i32 = 35;
pub const EXIT_UNSUPPORTED: i32 = 37;

/// A line of a guest's console without the `vmN| ` that the hypervisor's
/// console puts before each guest line (docs/running.md); any other line
/// as it is.
pub fn guest_line(line: &str) -> &str {
    line.strip_prefix("vm")
        .and_then(|r| r.split_once("| "))
        .filter(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .map_or(line, |(_, text)| text)
}

/// `text` with [`guest_line`] applied to every line.
pub fn guest_text(text: &str) -> String {
    text.lines().map(guest_line).collect::<Vec<_>>().join("\n")
}

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn run_checked(cmd: &mut Command) {
    let status = cmd.status().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?} failed with {status}");
}

/// Builds the hypervisor image (release, with symbols) once per process.
/// A separate target directory keeps this build out of the way of the
/// `cargo test` that runs us.
pub fn kernel() -> PathBuf {
    static KERNEL: OnceLock<PathBuf> = OnceLock::new();
    KERNEL
        .get_or_init(|| {
            let target = root().join("target/kernel");
            run_checked(
                Command::new(env!("CARGO"))
                    .current_dir(root())
                    .args(["build", "--release", "-p", "hypervisor"])
                    .env("CARGO_TARGET_DIR", &target),
            );
            target.join("x86_64-unknown-linux-gnu/release/hypervisor")
        })
        .clone()
}

/// Builds at `out` a GRUB rescue ISO that boots `kernel` with `cmdline`
/// through multiboot2, with `modules` (each a path and its command line,
/// which GRUB passes after the module's file name, as QEMU's `-initrd` does).
pub fn iso(kernel: &Path, out: &Path, cmdline: &str, modules: &[(&Path, &str)]) {
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let mut cmd = Command::new(root().join("scripts/mkiso"));
    cmd.arg("--kernel").arg(kernel).arg("--cmdline").arg(cmdline).arg("--output").arg(out);
    for (path, args) in modules {
        let name = path.file_name().unwrap().to_string_lossy();
        cmd.arg("--module").arg(path).arg(if args.is_empty() { name.to_string() } else { format!("{name} {args}") });
    }
    run_checked(&mut cmd);
}

/// Builds the small test guests in `tests/guests/` once per process.
pub fn test_guests() -> PathBuf {
    static GUESTS: OnceLock<PathBuf> = OnceLock::new();
    GUESTS
        .get_or_init(|| {
            let out = root().join("target/guests");
            run_checked(Command::new(root().join("tests/guests/build")).arg(&out));
            out
        })
        .clone()
}

/// The Linux guest built from Debian's packages by `guest-images/build`.
pub struct LinuxImages {
    pub bzimage: PathBuf,
    pub vmlinux: PathBuf,
    pub initramfs: PathBuf,
    /// The recommended guest command line.
    pub cmdline: String,
    /// What `uname -r` prints in the guest.
    pub release: String,
}

/// The ext4 root disk of the Linux guest and the initramfs that mounts it.
pub struct RootDisk {
    pub image: PathBuf,
    /// `initramfs.cpio` with the modules `/init` loads for `root=`.
    pub initramfs: PathBuf,
}

/// Builds (or reuses the cached) root disk with `guest-images/build-rootdisk`
/// once per process. That script runs `guest-images/build` again, after
/// [`linux_images`] has, so that it finds everything up to date and
/// rewrites nothing that other tests are reading.
pub fn linux_root_disk() -> RootDisk {
    static BUILT: OnceLock<()> = OnceLock::new();
    linux_images();
    BUILT.get_or_init(|| run_checked(&mut Command::new(root().join("guest-images/build-rootdisk"))));
    let out = root().join("guest-images/out");
    RootDisk { image: out.join("rootdisk.ext4"), initramfs: out.join("initramfs-rootdisk.cpio") }
}

/// Builds (or reuses the cached) Linux guest images once per process.
pub fn linux_images() -> LinuxImages {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| run_checked(&mut Command::new(root().join("guest-images/build"))));
    let out = root().join("guest-images/out");
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}")).trim().to_string();
    let version = read("kernel-version");
    // "linux-image-6.1.0-56-amd64 6.1.192-2": the release is the package
    // name without its prefix.
    let release = version.split_whitespace().next().unwrap().trim_start_matches("linux-image-").to_string();
    LinuxImages {
        bzimage: out.join("bzImage"),
        vmlinux: out.join("vmlinux"),
        initramfs: out.join("initramfs.cpio"),
        cmdline: read("cmdline.txt"),
        release,
    }
}
