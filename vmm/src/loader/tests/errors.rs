//! Every error has a distinct, precise message.

use crate::loader::LoadError::{self, *};
use guest_x86::mem::MemError;

fn all_errors() -> Vec<(LoadError, &'static str)> {
    vec![
        (BadRamSize { ram_size: 0x1234 }, "RAM size 0x1234"),
        (
            GuestMemoryTooSmall { memory_size: 0x1000, ram_size: 0x2000 },
            "holds 0x1000 bytes but the layout needs 0x2000",
        ),
        (Memory(MemError::OutOfRange { gpa: 0x50, len: 8 }), "[0x50, +0x8) is outside guest RAM"),
        (UnknownImageFormat, "unknown image format"),
        (
            Truncated { what: "ELF header", offset: 0x18, len: 8, image_len: 0x1C },
            "image truncated: ELF header at offset 0x18 needs 0x8 bytes, but the image is only 0x1c bytes long",
        ),
        (BadBootFlag { found: 0x1234 }, "boot flag at 0x1fe is 0x1234, expected 0xaa55"),
        (BadSetupHeaderMagic { found: 0 }, "expected \"HdrS\""),
        (
            UnsupportedProtocolVersion { version: 0x020B, minimum: 0x020C },
            "unsupported boot protocol version 2.11: need at least 2.12",
        ),
        (BadSetupHeaderLength { end: 0x202 }, "setup header ends at 0x202"),
        (NotLoadedHigh, "zImage"),
        (No64BitEntry, "no 64-bit entry point"),
        (
            NotRelocatable { pref_address: 0x1000 },
            "not relocatable and cannot be loaded at its preferred address 0x1000",
        ),
        (BadKernelAlignment { alignment: 3 }, "kernel_alignment 0x3 is not a power of two"),
        (
            KernelDoesNotFit { addr: 0x100000, size: 0x2000000, ram_size: 0x1000000 },
            "kernel does not fit in RAM: [0x100000, +0x2000000)",
        ),
        (InitrdTooLarge { size: 0x5000, available: 0x4000 }, "initrd too large: 0x5000 bytes, but only 0x4000"),
        (CmdlineTooLong { len: 3000, max: 2047 }, "command line too long: 3000 bytes, at most 2047"),
        (CmdlineContainsNul { offset: 4 }, "NUL byte at offset 4"),
        (TooManyModules { count: 300, max: 256 }, "too many modules: 300, at most 256"),
        (ModuleDoesNotFit { index: 2, addr: 0x200000, size: 0x10 }, "module 2 does not fit in RAM: [0x200000, +0x10)"),
        (BadElfHeader { reason: "no ELF magic" }, "bad ELF header: no ELF magic"),
        (
            BadSegment { index: 3, reason: "p_filesz is larger than p_memsz" },
            "bad ELF program header 3: p_filesz is larger than p_memsz",
        ),
        (SegmentOutOfRange { index: 1, paddr: 0xa0000, memsz: 0x100 }, "ELF segment 1 out of range: [0xa0000, +0x100)"),
        (NoLoadableSegments, "no loadable (PT_LOAD) segment"),
        (EntryOutsideImage { entry: 0x42 }, "entry point 0x42 is not inside any loaded segment"),
        (EntryAbove4G { entry: 0x100000000 }, "entry 0x100000000 is at or above 4 GiB"),
        (NoPvhNote, "no PVH note"),
        (BadPvhNote { descsz: 6 }, "6-byte descriptor"),
        (BadNote { segment: 2, offset: 0x18 }, "malformed ELF note at offset 0x18 of PT_NOTE segment 2"),
        (NoMultibootHeader, "no multiboot header"),
        (
            BadMultibootChecksum { offset: 0x40, sum: 1 },
            "header at offset 0x40 has a bad checksum: magic + flags + checksum = 0x00000001",
        ),
        (UnsupportedMultibootFlags { flags: 8 }, "flags 0x00000008"),
        (
            AoutKludgeInconsistent { reason: "load_addr is above header_addr" },
            "a.out kludge fields inconsistent: load_addr is above header_addr",
        ),
        (NotElfNorAout, "not ELF and its header has no a.out kludge"),
    ]
}

#[test]
fn every_error_message_names_what_is_wrong() {
    for (e, expected) in all_errors() {
        let msg = e.to_string();
        assert!(msg.contains(expected), "{e:?}: expected {expected:?} in {msg:?}");
    }
}

#[test]
fn error_messages_are_distinct() {
    let msgs: Vec<String> = all_errors().iter().map(|(e, _)| e.to_string()).collect();
    let mut sorted = msgs.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), msgs.len());
}

#[test]
fn memory_errors_convert_into_load_errors() {
    let e: LoadError = MemError::OutOfRange { gpa: 1, len: 2 }.into();
    assert_eq!(e, Memory(MemError::OutOfRange { gpa: 1, len: 2 }));
}
