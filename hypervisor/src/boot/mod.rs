//! What the boot loader tells the hypervisor, in one loader-neutral form.
//!
//! Multiboot v1 (QEMU `-kernel`) and multiboot2 (GRUB) describe memory,
//! modules and the command line differently; both are parsed into
//! [`BootInfo`] as early as possible, because the loaders' structures can
//! lie anywhere in RAM and the frame allocator must not hand them out.
pub mod cmdline;
pub mod guests;
pub mod multiboot;

use arrayvec::{ArrayString, ArrayVec};

pub const MAX_REGIONS: usize = 64;
pub const MAX_MODULES: usize = 16;
pub const MAX_CMDLINE: usize = 1024;

/// How a range of physical memory may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemKind {
    Usable,
    Reserved,
    AcpiReclaimable,
    AcpiNvs,
    Defective,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemRegion {
    pub start: u64,
    pub len: u64,
    pub kind: MemKind,
}

impl MemRegion {
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }
}

/// A boot module: a file the loader placed in memory, with its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub start: u64,
    pub end: u64,
    pub cmdline: ArrayString<256>,
}

impl Module {
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loader {
    Multiboot1,
    Multiboot2,
}

/// Everything the hypervisor keeps from its boot loader.
#[derive(Debug, Clone)]
pub struct BootInfo {
    pub loader: Loader,
    pub cmdline: ArrayString<MAX_CMDLINE>,
    pub regions: ArrayVec<MemRegion, MAX_REGIONS>,
    pub modules: ArrayVec<Module, MAX_MODULES>,
    /// Physical address of the ACPI RSDP, when the loader passed one.
    pub rsdp: Option<u64>,
    /// Where the loader's own information structure lies (`[start, end)`).
    pub info_range: (u64, u64),
    /// Anything that did not fit or did not parse, for the log.
    pub truncated: bool,
}

impl BootInfo {
    pub fn new(loader: Loader) -> Self {
        BootInfo {
            loader,
            cmdline: ArrayString::new(),
            regions: ArrayVec::new(),
            modules: ArrayVec::new(),
            rsdp: None,
            info_range: (0, 0),
            truncated: false,
        }
    }

    /// Stores a command line, cut at a character boundary if too long.
    pub fn set_cmdline(&mut self, s: &str) {
        self.cmdline.clear();
        for c in s.chars() {
            if self.cmdline.try_push(c).is_err() {
                self.truncated = true;
                break;
            }
        }
    }

    pub fn push_region(&mut self, r: MemRegion) {
        if self.regions.try_push(r).is_err() {
            self.truncated = true;
        }
    }

    pub fn push_module(&mut self, m: Module) {
        if self.modules.try_push(m).is_err() {
            self.truncated = true;
        }
    }

    /// Bytes of usable RAM the loader reported.
    pub fn usable_bytes(&self) -> u64 {
        self.regions.iter().filter(|r| r.kind == MemKind::Usable).map(|r| r.len).sum()
    }
}

/// Copies `s` into a bounded string, cutting at a character boundary.
pub fn bounded<const N: usize>(s: &str) -> ArrayString<N> {
    let mut out = ArrayString::new();
    for c in s.chars() {
        if out.try_push(c).is_err() {
            break;
        }
    }
    out
}
