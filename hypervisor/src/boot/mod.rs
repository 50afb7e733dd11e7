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
/// Room for every problem the parsers can report at once, so none is lost:
/// three per module line and three for the hypervisor's (too long, not
/// UTF-8, unterminated), too many modules, too many regions, one malformed
/// multiboot2 tag and the three parts of a v1 structure that can be
/// unreadable.
pub const MAX_PROBLEMS: usize = 3 * MAX_MODULES + 3 + 3 + 3;

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
    pub cmdline: ArrayString<MAX_CMDLINE>,
    /// The command line arrived whole: not longer than [`MAX_CMDLINE`] and
    /// valid UTF-8. A module whose line did not is refused, not run with a
    /// line it was not given.
    pub cmdline_whole: bool,
}

/// Something the boot information held that the hypervisor could not take
/// as it was. Each is reported in the log at boot; none is dropped silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootProblem {
    /// A command line (the hypervisor's: `module` None) longer than
    /// [`MAX_CMDLINE`] bytes.
    CmdlineTooLong { module: Option<usize> },
    /// A command line with a byte that is not UTF-8 at `offset`.
    NotUtf8 { module: Option<usize>, offset: usize },
    /// A multiboot2 command line whose tag ends before its NUL: the line
    /// may have been cut.
    Unterminated { module: Option<usize> },
    /// More modules than [`MAX_MODULES`]: the first ones are kept.
    TooManyModules { given: usize },
    /// More memory-map entries than [`MAX_REGIONS`]: the first are kept.
    TooManyRegions { given: usize },
    /// Part of the boot information could not be read.
    Unreadable { what: &'static str },
    /// A multiboot2 tag (the first such) whose size does not fit its type;
    /// every such tag is skipped.
    MalformedTag { typ: u32, size: u32 },
}

impl core::fmt::Display for BootProblem {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let line = |f: &mut core::fmt::Formatter<'_>, m: Option<usize>| match m {
            None => f.write_str("the hypervisor's command line"),
            Some(i) => write!(f, "module {i}'s command line"),
        };
        match *self {
            BootProblem::CmdlineTooLong { module } => {
                line(f, module)?;
                write!(f, " is longer than {MAX_CMDLINE} bytes")?;
                f.write_str(if module.is_some() { "; its VM is refused" } else { "; the rest is ignored" })
            }
            BootProblem::NotUtf8 { module, offset } => {
                line(f, module)?;
                write!(f, " has a byte that is not UTF-8 at offset {offset}")?;
                f.write_str(if module.is_some() { "; its VM is refused" } else { "; it is read as '?'" })
            }
            BootProblem::Unterminated { module } => {
                line(f, module)?;
                f.write_str(" ends with its tag, not with a NUL, and may be cut")?;
                f.write_str(if module.is_some() { "; its VM is refused" } else { "; it is used as far as it goes" })
            }
            BootProblem::TooManyModules { given } => write!(
                f,
                "{given} modules given, the hypervisor takes {MAX_MODULES}: modules {MAX_MODULES} to {} are ignored",
                given - 1
            ),
            BootProblem::TooManyRegions { given } => {
                write!(f, "{given} memory-map entries given, only the first {MAX_REGIONS} are used")
            }
            BootProblem::Unreadable { what } => write!(f, "{what} could not be read"),
            BootProblem::MalformedTag { typ, size } => {
                write!(f, "a multiboot2 tag of type {typ} has size {size}, which does not fit its type; it is ignored")
            }
        }
    }
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
    pub problems: ArrayVec<BootProblem, MAX_PROBLEMS>,
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
            problems: ArrayVec::new(),
        }
    }

    /// Notes a problem once. The list holds all the parsers can report
    /// ([`MAX_PROBLEMS`]); were it ever full, the last entry would become
    /// the most recent problem.
    pub fn report(&mut self, p: BootProblem) {
        if self.problems.contains(&p) {
            return;
        }
        if self.problems.try_push(p).is_err() {
            let last = self.problems.len() - 1;
            self.problems[last] = p;
        }
    }

    /// Stores the hypervisor's command line: `text` as read, whether the
    /// loader's line was longer, and where its first bad UTF-8 byte was.
    pub fn set_cmdline(&mut self, text: &CmdlineText) {
        self.cmdline = text.text;
        if text.too_long {
            self.report(BootProblem::CmdlineTooLong { module: None });
        }
        if let Some(offset) = text.bad_utf8 {
            self.report(BootProblem::NotUtf8 { module: None, offset });
        }
        if text.unterminated {
            self.report(BootProblem::Unterminated { module: None });
        }
    }

    pub fn push_region(&mut self, r: MemRegion, given: usize) {
        if self.regions.try_push(r).is_err() {
            self.report(BootProblem::TooManyRegions { given });
        }
    }

    /// Adds module number `index` (of `given`), with its command line.
    pub fn push_module(&mut self, start: u64, end: u64, text: &CmdlineText, given: usize) {
        let index = self.modules.len();
        let m = Module { start, end, cmdline: text.text, cmdline_whole: text.is_whole() };
        if self.modules.try_push(m).is_err() {
            self.report(BootProblem::TooManyModules { given });
            return;
        }
        if text.too_long {
            self.report(BootProblem::CmdlineTooLong { module: Some(index) });
        }
        if let Some(offset) = text.bad_utf8 {
            self.report(BootProblem::NotUtf8 { module: Some(index), offset });
        }
        if text.unterminated {
            self.report(BootProblem::Unterminated { module: Some(index) });
        }
    }

    /// Bytes of usable RAM the loader reported.
    pub fn usable_bytes(&self) -> u64 {
        self.regions.iter().filter(|r| r.kind == MemKind::Usable).map(|r| r.len).sum()
    }
}

/// A command line as read from the boot information.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CmdlineText {
    pub text: ArrayString<MAX_CMDLINE>,
    /// The line was longer than [`MAX_CMDLINE`] bytes.
    pub too_long: bool,
    /// The offset of the first byte that is not UTF-8, read as `?`.
    pub bad_utf8: Option<usize>,
    /// The line ran to the end of what held it without a NUL.
    pub unterminated: bool,
}

impl CmdlineText {
    /// The line is exactly what the loader gave: not cut, all UTF-8.
    pub fn is_whole(&self) -> bool {
        !self.too_long && self.bad_utf8.is_none() && !self.unterminated
    }

    /// Reads `bytes` (up to its first NUL), each byte that is not UTF-8
    /// becoming `?`.
    pub fn from_bytes(bytes: &[u8]) -> CmdlineText {
        let bytes = bytes.split(|&b| b == 0).next().unwrap_or(&[]);
        let mut out = CmdlineText::default();
        let mut rest = bytes;
        while !rest.is_empty() {
            let (good, bad) = match core::str::from_utf8(rest) {
                Ok(s) => (s, 0),
                Err(e) => {
                    out.bad_utf8.get_or_insert(bytes.len() - rest.len() + e.valid_up_to());
                    let bad = e.error_len().unwrap_or(rest.len() - e.valid_up_to()).max(1);
                    (core::str::from_utf8(&rest[..e.valid_up_to()]).unwrap_or(""), bad)
                }
            };
            for c in good.chars().chain((bad > 0).then_some('?')) {
                if out.text.try_push(c).is_err() {
                    out.too_long = true;
                    return out;
                }
            }
            rest = &rest[good.len() + bad..];
        }
        out
    }

    /// A line given as valid UTF-8 (`too_long` if it does not fit).
    pub fn from_text(s: &str) -> CmdlineText {
        CmdlineText::from_bytes(s.as_bytes())
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
