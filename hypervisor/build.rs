//! Link the kernel binary as a static, non-PIE ELF placed by `linker.ld`.
//!
//! Only the `[[bin]]` gets these arguments: the library and its host tests
//! link as ordinary Linux programs.
use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).parent().unwrap().to_path_buf();
    let script = root.join("linker.ld");
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--build-id=none",
        "-Wl,-z,max-page-size=0x1000",
        "-Wl,--no-dynamic-linker",
        "-Wl,--gc-sections",
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=src/arch/boot.S");
    println!("cargo:rerun-if-changed=src/arch/ap_boot.S");
}
