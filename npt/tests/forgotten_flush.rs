//! A dropped [`npt::TlbFlush`] fails to compile under
//! `#![deny(unused_must_use)]`.
//!
//! Doctests cannot check this here (`compile_fail` doctests are linked, and
//! linking fails for every doctest under this workspace's static relocation
//! model), so this test builds two small crates with `cargo check`: one that
//! applies the token, which must compile, and one that drops it, which must
//! fail with the unused-`TlbFlush` error.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Writes a crate whose only function runs `body` and `cargo check`s it.
/// Returns whether it compiled, and the compiler's messages.
fn check_crate(name: &str, body: &str) -> (bool, String) {
    let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("forgotten_flush");
    let dir = scratch.join(name);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let npt = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n\
         [dependencies]\nnpt = {{ path = {npt:?} }}\n\n[workspace]\n"
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    let source = format!(
        "#![deny(unused_must_use)]\n\
         use npt::{{FrameSource, GuestPhysAddr, NestedPageTable, NptError, PageSize, TableMemory}};\n\
         pub fn step<B: FrameSource + TableMemory>(\n\
             npt: &mut NestedPageTable,\n\
             mem: &mut B,\n\
         ) -> Result<(), NptError> {{\n\
             {body}\n\
             Ok(())\n\
         }}\n"
    );
    std::fs::write(dir.join("src/lib.rs"), source).unwrap();
    let output = Command::new(env!("CARGO"))
        .args(["check", "--offline", "--quiet", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", scratch.join("target"))
        .current_dir(&dir)
        .output()
        .expect("run cargo");
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn dropping_a_flush_token_fails_to_compile_and_applying_it_compiles() {
    let (applied_ok, messages) =
        check_crate("flush_applied", "npt.unmap(mem, GuestPhysAddr(0), PageSize::Size4K)?.apply(|_scope| {});");
    assert!(applied_ok, "expected the crate applying the token to compile, seen:\n{messages}");

    let (dropped_ok, messages) = check_crate("flush_dropped", "npt.unmap(mem, GuestPhysAddr(0), PageSize::Size4K)?;");
    assert!(!dropped_ok, "expected the crate dropping the token not to compile");
    assert!(
        messages.contains("unused `TlbFlush`") && messages.contains("must be used"),
        "expected an unused-`TlbFlush` error, seen:\n{messages}"
    );
}
