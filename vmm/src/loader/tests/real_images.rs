//! The real Debian kernel, when `guest-images/out` has been built. Each
//! test prints a note and passes if its image is absent.

use std::path::PathBuf;

use crate::loader::bzimage::{hdr, SetupHeader};
use crate::loader::layout::BOOT_INFO_ADDR;
use crate::loader::pvh::{pvh_entry, si};
use crate::loader::testutil::{bytes, c_string, u32_at, SparseMemory};
use crate::loader::{detect, load, CpuMode, ImageKind, MemLayout};

fn image(name: &str) -> Option<Vec<u8>> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "..", "guest-images", "out", name].iter().collect();
    match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) => {
            eprintln!("note: skipping, {} not available ({e})", path.display());
            None
        }
    }
}

const RAM: u64 = 512 << 20;

#[test]
fn real_bzimage_loads_at_its_64bit_entry() {
    let Some(kernel) = image("bzImage") else {
        return;
    };
    assert_eq!(detect(&kernel), Some(ImageKind::BzImage));
    let h = SetupHeader::parse(&kernel).expect("Debian bzImage setup header");
    eprintln!("bzImage: {h:x?}");
    let mut mem = SparseMemory::new(RAM);
    let initrd = vec![0x5Au8; 3 << 20];
    let (_, s) = load(
        &mut mem,
        &MemLayout::new(RAM),
        &kernel,
        Some(crate::loader::Module { data: &initrd, cmdline: b"" }),
        b"console=ttyS0 quiet",
    )
    .expect("load real bzImage");
    assert_eq!(s.mode, CpuMode::Long64);
    let load_addr = s.rip - 0x200;
    assert_eq!(load_addr, h.pref_address, "512 MiB holds the kernel at pref_address");
    let payload = h.protected_mode_kernel(&kernel).unwrap();
    assert_eq!(bytes(&mem, load_addr, 4096), payload[..4096]);
    let zp = BOOT_INFO_ADDR;
    assert_eq!(&bytes(&mem, zp + 0x202, 4), b"HdrS");
    assert_eq!(c_string(&mem, u32_at(&mem, zp + hdr::CMD_LINE_PTR) as u64), b"console=ttyS0 quiet");
    let rd = u32_at(&mem, zp + hdr::RAMDISK_IMAGE) as u64;
    assert!(rd >= load_addr + h.init_size as u64);
    assert!(rd + initrd.len() as u64 <= RAM.min(h.initrd_addr_max as u64 + 1));
}

#[test]
fn real_vmlinux_loads_through_its_pvh_note() {
    let Some(kernel) = image("vmlinux") else {
        return;
    };
    assert_eq!(detect(&kernel), Some(ImageKind::Pvh));
    let entry = pvh_entry(&kernel).expect("PVH entry note");
    eprintln!("vmlinux PVH entry: {entry:#x}");
    if let Some(noted) = image("vmlinux.pvh-entry") {
        let noted = String::from_utf8(noted).unwrap();
        let noted = u64::from_str_radix(noted.trim().trim_start_matches("0x"), 16).unwrap();
        assert_eq!(entry, noted, "entry agrees with guest-images/build's readelf");
    }
    let mut mem = SparseMemory::new(RAM);
    let (_, s) = load(
        &mut mem,
        &MemLayout::new(RAM),
        &kernel,
        Some(crate::loader::Module { data: &[1; 4096], cmdline: b"" }),
        b"console=ttyS0",
    )
    .expect("load real vmlinux");
    assert_eq!(s.mode, CpuMode::Protected32);
    assert_eq!(s.rip, entry);
    assert_eq!(u32_at(&mem, s.rbx + si::MAGIC), 0x336E_C578);
    assert_eq!(u32_at(&mem, s.rbx + si::NR_MODULES), 1);
    assert_ne!(bytes(&mem, entry, 16), vec![0; 16], "code at the entry point");
}
