//! What can go wrong while loading a guest, and whose fault it is.
//!
//! Every variant names the offending field or offset, so that a bad image
//! can be diagnosed from the message alone.

use core::fmt;

use guest_x86::mem::MemError;

/// Why a loader refused an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadError {
    // --- The VM's memory layout (the VMM's fault) ---
    /// `MemLayout::ram_size` is outside the supported range or not page
    /// aligned.
    BadRamSize { ram_size: u64 },
    /// The guest memory handed to the loader is smaller than the layout says.
    GuestMemoryTooSmall { memory_size: u64, ram_size: u64 },
    /// A guest-memory access failed (should not happen once the layout has
    /// been checked; reported rather than hidden).
    Memory(MemError),
    /// The ACPI tables were asked to describe no vCPU or more than they
    /// can.
    BadVcpuCount { count: u8, max: u8 },
    /// The ACPI tables were asked to describe more virtio slots than the
    /// board has.
    BadVirtioSlots { count: u8 },

    // --- Any image ---
    /// [`detect`](super::detect) recognised none of the supported formats.
    UnknownImageFormat,
    /// The image ends before a structure it describes.
    Truncated { what: &'static str, offset: u64, len: u64, image_len: u64 },

    // --- bzImage (Linux x86 boot protocol) ---
    /// The boot sector signature at 0x1FE is not 0xAA55.
    BadBootFlag { found: u16 },
    /// The setup header magic at 0x202 is not "HdrS".
    BadSetupHeaderMagic { found: u32 },
    /// The boot protocol version is older than this loader needs.
    UnsupportedProtocolVersion { version: u16, minimum: u16 },
    /// The setup header length (0x202 + the byte at 0x201) is implausible.
    BadSetupHeaderLength { end: u64 },
    /// LOADED_HIGH is clear: a zImage, which must be loaded below 1 MiB.
    NotLoadedHigh,
    /// xloadflags lacks XLF_KERNEL_64: there is no 64-bit entry point.
    No64BitEntry,
    /// The kernel cannot run at its preferred address and is not
    /// relocatable.
    NotRelocatable { pref_address: u64 },
    /// kernel_alignment is not a power of two.
    BadKernelAlignment { alignment: u32 },
    /// The kernel (its whole in-memory size) does not fit in usable RAM.
    KernelDoesNotFit { addr: u64, size: u64, ram_size: u64 },

    // --- initrd, modules, command lines ---
    /// The initrd does not fit between the kernel and the highest address
    /// it may occupy.
    InitrdTooLarge { size: u64, available: u64 },
    /// A command line (or all of them together) is longer than allowed.
    CmdlineTooLong { len: u64, max: u64 },
    /// A command line contains a NUL byte (the loader adds the terminator).
    CmdlineContainsNul { offset: u64 },
    /// More multiboot modules than the module list has room for.
    TooManyModules { count: usize, max: usize },
    /// A multiboot module does not fit in usable RAM.
    ModuleDoesNotFit { index: usize, addr: u64, size: u64 },

    // --- ELF ---
    /// The ELF file header is malformed or unsupported.
    BadElfHeader { reason: &'static str },
    /// Program header `index` is malformed.
    BadSegment { index: usize, reason: &'static str },
    /// PT_LOAD segment `index` does not lie inside usable RAM.
    SegmentOutOfRange { index: usize, paddr: u64, memsz: u64 },
    /// The ELF file has no PT_LOAD segment with bytes to load.
    NoLoadableSegments,
    /// The entry point is not inside any loaded segment.
    EntryOutsideImage { entry: u64 },
    /// The entry point is not reachable from 32-bit protected mode.
    EntryAbove4G { entry: u64 },

    // --- PVH ---
    /// No XEN_ELFNOTE_PHYS32_ENTRY note in any PT_NOTE segment.
    NoPvhNote,
    /// The PVH entry note's descriptor is neither 4 nor 8 bytes.
    BadPvhNote { descsz: u32 },
    /// A note header in PT_NOTE segment `segment` runs past the segment.
    BadNote { segment: usize, offset: u64 },

    // --- Multiboot v1 ---
    /// No multiboot header magic in the first 8 KiB.
    NoMultibootHeader,
    /// A header magic was found but magic + flags + checksum != 0.
    BadMultibootChecksum { offset: u64, sum: u32 },
    /// The header sets a required flag (bits 0-15) this loader cannot honour.
    UnsupportedMultibootFlags { flags: u32 },
    /// The a.out kludge address fields contradict each other or the file.
    AoutKludgeInconsistent { reason: &'static str },
    /// No a.out kludge and the image is not ELF either.
    NotElfNorAout,
}

impl From<MemError> for LoadError {
    fn from(e: MemError) -> Self {
        LoadError::Memory(e)
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use LoadError::*;
        match *self {
            BadRamSize { ram_size } => write!(
                f,
                "unsupported RAM size {ram_size:#x}: must be a multiple of 4 KiB in [{:#x}, {:#x}]",
                super::layout::MIN_RAM_SIZE,
                super::layout::MAX_RAM_SIZE
            ),
            GuestMemoryTooSmall { memory_size, ram_size } => {
                write!(f, "guest memory holds {memory_size:#x} bytes but the layout needs {ram_size:#x}")
            }
            Memory(MemError::OutOfRange { gpa, len }) => {
                write!(f, "guest memory access [{gpa:#x}, +{len:#x}) is outside guest RAM")
            }
            BadVcpuCount { count, max } => {
                write!(f, "ACPI tables for {count} vCPUs: between 1 and {max} are supported")
            }
            BadVirtioSlots { count } => {
                write!(f, "ACPI tables for {count} virtio slots: at most {} exist", crate::virtio::slots::SLOTS)
            }
            UnknownImageFormat => {
                f.write_str("unknown image format: not a bzImage, an ELF with a PVH note, or a multiboot kernel")
            }
            Truncated { what, offset, len, image_len } => write!(
                f,
                "image truncated: {what} at offset {offset:#x} needs {len:#x} bytes, \
                 but the image is only {image_len:#x} bytes long"
            ),
            BadBootFlag { found } => write!(f, "bad magic: boot flag at 0x1fe is {found:#06x}, expected 0xaa55"),
            BadSetupHeaderMagic { found } => {
                write!(f, "bad magic: setup header signature at 0x202 is {found:#010x}, expected \"HdrS\"")
            }
            UnsupportedProtocolVersion { version, minimum } => write!(
                f,
                "unsupported boot protocol version {}.{:02}: need at least {}.{:02}",
                version >> 8,
                version & 0xff,
                minimum >> 8,
                minimum & 0xff
            ),
            BadSetupHeaderLength { end } => {
                write!(f, "setup header ends at {end:#x}, outside the expected range [0x268, 0x290]")
            }
            NotLoadedHigh => f.write_str("zImage (LOADED_HIGH clear in loadflags) is not supported"),
            No64BitEntry => f.write_str("kernel has no 64-bit entry point (XLF_KERNEL_64 clear in xloadflags)"),
            NotRelocatable { pref_address } => {
                write!(f, "kernel is not relocatable and cannot be loaded at its preferred address {pref_address:#x}")
            }
            BadKernelAlignment { alignment } => write!(f, "kernel_alignment {alignment:#x} is not a power of two"),
            KernelDoesNotFit { addr, size, ram_size } => write!(
                f,
                "kernel does not fit in RAM: [{addr:#x}, +{size:#x}) is not usable memory \
                 (RAM size {ram_size:#x})"
            ),
            InitrdTooLarge { size, available } => {
                write!(f, "initrd too large: {size:#x} bytes, but only {available:#x} bytes are free above the kernel")
            }
            CmdlineTooLong { len, max } => write!(f, "command line too long: {len} bytes, at most {max} allowed"),
            CmdlineContainsNul { offset } => write!(f, "command line contains a NUL byte at offset {offset}"),
            TooManyModules { count, max } => {
                write!(f, "too many modules: {count}, at most {max} supported")
            }
            ModuleDoesNotFit { index, addr, size } => {
                write!(f, "module {index} does not fit in RAM: [{addr:#x}, +{size:#x}) is not usable memory")
            }
            BadElfHeader { reason } => write!(f, "bad ELF header: {reason}"),
            BadSegment { index, reason } => {
                write!(f, "bad ELF program header {index}: {reason}")
            }
            SegmentOutOfRange { index, paddr, memsz } => {
                write!(f, "ELF segment {index} out of range: [{paddr:#x}, +{memsz:#x}) is not usable RAM")
            }
            NoLoadableSegments => f.write_str("ELF file has no loadable (PT_LOAD) segment"),
            EntryOutsideImage { entry } => write!(f, "entry point {entry:#x} is not inside any loaded segment"),
            EntryAbove4G { entry } => write!(f, "no 32-bit entry point: entry {entry:#x} is at or above 4 GiB"),
            NoPvhNote => {
                f.write_str("no PVH note: no XEN_ELFNOTE_PHYS32_ENTRY (18) note owned by \"Xen\" in a PT_NOTE segment")
            }
            BadPvhNote { descsz } => write!(f, "PVH entry note has a {descsz}-byte descriptor, expected 4 or 8"),
            BadNote { segment, offset } => {
                write!(f, "malformed ELF note at offset {offset:#x} of PT_NOTE segment {segment}")
            }
            NoMultibootHeader => f.write_str("no multiboot header (magic 0x1badb002) in the first 8 KiB of the image"),
            BadMultibootChecksum { offset, sum } => write!(
                f,
                "multiboot header at offset {offset:#x} has a bad checksum: \
                 magic + flags + checksum = {sum:#010x}, expected 0"
            ),
            UnsupportedMultibootFlags { flags } => {
                write!(f, "multiboot header requires unsupported features: flags {flags:#010x}")
            }
            AoutKludgeInconsistent { reason } => {
                write!(f, "multiboot a.out kludge fields inconsistent: {reason}")
            }
            NotElfNorAout => f.write_str("multiboot image is not ELF and its header has no a.out kludge (flag bit 16)"),
        }
    }
}

impl core::error::Error for LoadError {}
