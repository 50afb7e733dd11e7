//! The guest's own page tables: guest-virtual (linear) to guest-physical.
//!
//! Without decode assists the VMM must read the faulting instruction itself,
//! and the guest's RIP is a linear address. [`walk`] follows the guest's
//! tables through [`GuestMemory`] the way the CPU would, in each of the four
//! paging modes (AMD APM vol. 2, §5.2–5.3; Intel SDM vol. 3A, ch. 4):
//!
//! | CR0.PG | CR4.PAE | EFER.LMA | mode                     | page sizes          |
//! |--------|---------|----------|--------------------------|---------------------|
//! | 0      | –       | 0        | none: identity           | –                   |
//! | 1      | 0       | 0        | 32-bit, two levels       | 4 KiB, 4 MiB (PSE)  |
//! | 1      | 1       | 0        | PAE, three levels        | 4 KiB, 2 MiB        |
//! | 1      | 1       | 1        | long mode, four levels   | 4 KiB, 2 MiB, 1 GiB |
//!
//! Accessed and dirty bits:
//! - [`walk`] and [`translate`] never set them. They serve the VMM's
//!   instruction fetch and MMIO emulation, which read bytes the CPU itself
//!   fetched a moment ago, so the guest already saw its A/D bits set by the
//!   hardware walk.
//! - [`walk_and_mark`] sets them as the CPU would for an access it makes
//!   itself: A in every entry the walk used (PAE PDPTEs have none), and D in
//!   the leaf for a write. The hypercall service uses it for the guest
//!   buffers it reads and writes, so that a guest kernel that tracks dirty
//!   pages through D (writeback, `MADV_FREE`) sees the hypervisor's writes.
//!   The update is a one-byte store, not the CPU's locked read-modify-write:
//!   it is exact while a VM has one vCPU, and needs an atomic compare and
//!   exchange on guest memory once vCPUs of a VM run concurrently.
//!
//! What the walk does *not* do, on purpose:
//! - It checks U/S, R/W (with CR0.WP), NX (with EFER.NXE) and SMEP. It does
//!   not model SMAP (it needs RFLAGS.AC and the implicit-access rules),
//!   protection keys or 5-level paging ([`WalkError::UnsupportedPaging`]).
//! - In PAE mode the four PDPTEs are read from memory at each walk; the CPU
//!   may instead use copies cached when CR3 was loaded.
//! - Segment limits are the caller's business; this is a linear address.

use crate::mem::{GuestMemory, MemError};
use crate::regs::{cr0, cr4, efer};

/// The guest registers that steer a page walk, as saved in its VMCB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PagingState {
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
    /// Physical-address width the guest was told (CPUID 8000_0008h, EAX bits 7:0).
    /// Entry bits at and above it are reserved. Values above 52 count as 52.
    pub phys_addr_bits: u8,
    /// Whether the guest has 1 GiB pages (CPUID 8000_0001h EDX bit 26).
    /// Without them a PDPTE with PS=1 is a reserved-bit fault.
    pub gbpages: bool,
}

/// What the guest was told about its page tables through CPUID, which its
/// walks obey: the physical-address width (leaf 8000_0008h EAX bits 7:0)
/// and 1 GiB pages (leaf 8000_0001h EDX bit 26). Fixed for a VM: worked out
/// once from the CPUID its vCPUs see, and used by every walker of its
/// tables (the kernel's fast path and the VMM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkLimits {
    pub phys_addr_bits: u8,
    pub gbpages: bool,
}

impl WalkLimits {
    /// The limits a guest whose `cpuid(leaf, subleaf)` returns `[eax, ebx,
    /// ecx, edx]` was told.
    pub fn from_cpuid(cpuid: impl Fn(u32, u32) -> [u32; 4]) -> WalkLimits {
        let [max_ext, ..] = cpuid(0x8000_0000, 0);
        let bits = if max_ext >= 0x8000_0008 { cpuid(0x8000_0008, 0)[0] as u8 } else { 0 };
        let gbpages = max_ext >= 0x8000_0001 && cpuid(0x8000_0001, 0)[3] & (1 << 26) != 0;
        // Without leaf 8000_0008h the width is 36 bits with PAE (SDM vol. 3A §4.1.4).
        WalkLimits { phys_addr_bits: if bits == 0 { 36 } else { bits }, gbpages }
    }

    /// The walk state for these control registers under these limits.
    pub fn paging(self, cr0: u64, cr3: u64, cr4: u64, efer: u64) -> PagingState {
        PagingState { cr0, cr3, cr4, efer, phys_addr_bits: self.phys_addr_bits, gbpages: self.gbpages }
    }
}

impl PagingState {
    /// Which translation the registers select.
    pub fn mode(&self) -> Result<PagingMode, WalkError> {
        let pg = self.cr0 & cr0::PG != 0;
        let pae = self.cr4 & cr4::PAE != 0;
        let lma = self.efer & efer::LMA != 0;
        match (pg, pae, lma) {
            (false, _, false) => Ok(PagingMode::None),
            (true, false, false) => Ok(PagingMode::Bits32),
            (true, true, false) => Ok(PagingMode::Pae),
            (true, true, true) if self.cr4 & cr4::LA57 == 0 => Ok(PagingMode::Long4),
            // LA57, or LMA without PG or without PAE (VMRUN refuses the latter).
            _ => Err(WalkError::UnsupportedPaging),
        }
    }

    fn nxe(&self) -> bool {
        self.efer & efer::NXE != 0
    }

    /// Mask of the physical-address bits the guest may use.
    fn phys_mask(&self) -> u64 {
        let bits = self.phys_addr_bits.clamp(32, 52);
        (1u64 << bits) - 1
    }
}

/// The translation the guest's registers select.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagingMode {
    /// CR0.PG=0: linear addresses are physical (32 bits wide).
    None,
    /// Two-level 32-bit paging, with 4 MiB pages when CR4.PSE=1.
    Bits32,
    /// Three-level PAE paging.
    Pae,
    /// Four-level long-mode paging.
    Long4,
}

/// What the access does, as the CPU would classify it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessOp {
    Read,
    Write,
    Fetch,
}

/// An access to check against the page tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessKind {
    pub op: AccessOp,
    /// CPL 3. Supervisor accesses are CPL 0–2.
    pub user: bool,
}

impl AccessKind {
    pub const fn read(user: bool) -> Self {
        AccessKind { op: AccessOp::Read, user }
    }
    pub const fn write(user: bool) -> Self {
        AccessKind { op: AccessOp::Write, user }
    }
    pub const fn fetch(user: bool) -> Self {
        AccessKind { op: AccessOp::Fetch, user }
    }
}

bitflags::bitflags! {
    /// The #PF error code (APM vol. 2 §8.4.2; SDM vol. 3A §4.7).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct PfErrorCode: u32 {
        /// The page was present: a protection or reserved-bit fault.
        const PRESENT = 1 << 0;
        /// The access was a write.
        const WRITE = 1 << 1;
        /// The access was made at CPL 3.
        const USER = 1 << 2;
        /// A present entry had a reserved bit set.
        const RSVD = 1 << 3;
        /// The access was an instruction fetch (reported only with NX
        /// under PAE/long mode, or with SMEP).
        const FETCH = 1 << 4;
    }
}

/// A page fault the guest itself would take: inject #PF with `error_code`
/// and set CR2 to `addr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageFault {
    pub error_code: PfErrorCode,
    pub addr: u64,
}

/// Why a guest-virtual address has no guest-physical translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkError {
    /// The guest's own tables refuse the access: the guest's fault.
    PageFault(PageFault),
    /// In long mode, bits 63:47 are not all equal: the guest would take #GP
    /// (or #SS for a stack access).
    NonCanonical { gva: u64 },
    /// A paging-structure entry lies outside guest RAM. The hardware would
    /// have read it from MMIO; we refuse rather than guess.
    BadGpa { gpa: u64 },
    /// 5-level paging, or register values VMRUN would have refused.
    UnsupportedPaging,
}

/// A successful translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    pub gpa: u64,
    /// Size of the page that maps the address: 4 KiB, 2 MiB, 4 MiB or 1 GiB
    /// (4 KiB when paging is off).
    pub page_size: u64,
}

/// Translates `gva` to a guest-physical address for `access`.
pub fn translate(mem: &impl GuestMemory, cpu: &PagingState, gva: u64, access: AccessKind) -> Result<u64, WalkError> {
    walk(mem, cpu, gva, access).map(|t| t.gpa)
}

/// Translates `gva` like [`translate`], and also reports the page size.
pub fn walk(mem: &impl GuestMemory, cpu: &PagingState, gva: u64, access: AccessKind) -> Result<Translation, WalkError> {
    walk_recording(mem, cpu, gva, access, &mut Path::default())
}

/// Translates `gva` like [`walk`], then sets the accessed bit of every entry
/// used and, for a write, the leaf's dirty bit, as the CPU's own access would.
pub fn walk_and_mark(
    mem: &mut impl GuestMemory,
    cpu: &PagingState,
    gva: u64,
    access: AccessKind,
) -> Result<Translation, WalkError> {
    let mut path = Path::default();
    let t = walk_recording(mem, cpu, gva, access, &mut path)?;
    for (i, step) in path.steps[..path.len].iter().enumerate() {
        let mut bits = if step.has_accessed_bit { PTE_A } else { 0 };
        if i + 1 == path.len && access.op == AccessOp::Write {
            bits |= PTE_D;
        }
        // A and D are bits 5 and 6 in every format: byte 0 of the entry.
        if step.entry & bits != bits {
            let byte = (step.entry | bits) as u8;
            mem.write(step.gpa, &[byte]).map_err(|MemError::OutOfRange { gpa, .. }| WalkError::BadGpa { gpa })?;
        }
    }
    Ok(t)
}

/// One paging-structure entry a walk used.
#[derive(Debug, Clone, Copy, Default)]
struct Step {
    gpa: u64,
    entry: u64,
    has_accessed_bit: bool,
}

/// The entries of one walk, root first; the last is the leaf.
#[derive(Debug, Default)]
struct Path {
    steps: [Step; 4],
    len: usize,
}

fn walk_recording(
    mem: &impl GuestMemory,
    cpu: &PagingState,
    gva: u64,
    access: AccessKind,
    path: &mut Path,
) -> Result<Translation, WalkError> {
    let mode = cpu.mode()?;
    let levels: &[Level] = match mode {
        PagingMode::None => return Ok(Translation { gpa: gva & 0xFFFF_FFFF, page_size: 4096 }),
        PagingMode::Bits32 => &[Level::Pd32, Level::Pt32],
        PagingMode::Pae => &[Level::PaePdpt, Level::PaePd, Level::PaePt],
        PagingMode::Long4 => &[Level::Pml4, Level::Pdpt, Level::Pd, Level::Pt],
    };
    let gva = match mode {
        PagingMode::Long4 => {
            let top = (gva as i64) >> 47;
            if top != 0 && top != -1 {
                return Err(WalkError::NonCanonical { gva });
            }
            gva
        }
        _ => gva & 0xFFFF_FFFF,
    };
    let fault = |extra: PfErrorCode| {
        WalkError::PageFault(PageFault { error_code: extra | access_bits(cpu, access), addr: gva })
    };

    let mut table = match mode {
        PagingMode::Bits32 => cpu.cr3 & 0xFFFF_F000,
        PagingMode::Pae => cpu.cr3 & 0xFFFF_FFE0,
        _ => cpu.cr3 & cpu.phys_mask() & !0xFFF,
    };
    let mut rights = Rights { write: true, user: true, no_exec: false };
    for (depth, &level) in levels.iter().enumerate() {
        let index = (gva >> level.shift()) & ((1 << level.index_bits()) - 1);
        let entry_gpa = table + index * level.entry_bytes();
        let entry = read_entry(mem, entry_gpa, level)?;
        if entry & PTE_P == 0 {
            return Err(fault(PfErrorCode::empty()));
        }
        path.steps[depth] = Step { gpa: entry_gpa, entry, has_accessed_bit: level != Level::PaePdpt };
        path.len = depth + 1;
        let leaf = depth + 1 == levels.len() || level.is_large(cpu, entry);
        if entry & level.reserved(cpu, entry) != 0 {
            return Err(fault(PfErrorCode::PRESENT | PfErrorCode::RSVD));
        }
        if level != Level::PaePdpt {
            // PAE PDPTEs carry no rights: their R/W, U/S and NX bits are
            // reserved, and `reserved` has already refused them.
            rights.write &= entry & PTE_RW != 0;
            rights.user &= entry & PTE_US != 0;
            rights.no_exec |= entry & PTE_NX != 0;
        }
        if leaf {
            if !rights.permit(cpu, access) {
                return Err(fault(PfErrorCode::PRESENT));
            }
            let page_size = 1u64 << level.shift();
            let frame = level.frame(cpu, entry) & !(page_size - 1);
            return Ok(Translation { gpa: frame | (gva & (page_size - 1)), page_size });
        }
        table = level.frame(cpu, entry);
    }
    // Not reached: the last level is always a leaf. Kept as an error rather
    // than a panic, since this path runs on guest-controlled data.
    Err(WalkError::UnsupportedPaging)
}

const PTE_P: u64 = 1 << 0;
const PTE_RW: u64 = 1 << 1;
const PTE_US: u64 = 1 << 2;
const PTE_A: u64 = 1 << 5;
const PTE_D: u64 = 1 << 6;
const PTE_PS: u64 = 1 << 7;
const PTE_NX: u64 = 1 << 63;

/// Bits `hi..=lo` set.
const fn bits(hi: u32, lo: u32) -> u64 {
    (u64::MAX >> (63 - hi)) & !((1u64 << lo) - 1)
}

/// The W/U/I bits every fault of this access reports.
fn access_bits(cpu: &PagingState, access: AccessKind) -> PfErrorCode {
    let mut code = PfErrorCode::empty();
    if access.op == AccessOp::Write {
        code |= PfErrorCode::WRITE;
    }
    if access.user {
        code |= PfErrorCode::USER;
    }
    let nx_in_use = cpu.cr4 & cr4::PAE != 0 && cpu.nxe();
    if access.op == AccessOp::Fetch && (nx_in_use || cpu.cr4 & cr4::SMEP != 0) {
        code |= PfErrorCode::FETCH;
    }
    code
}

/// The rights the walk has gathered: the most restrictive of every level.
struct Rights {
    write: bool,
    user: bool,
    no_exec: bool,
}

impl Rights {
    fn permit(&self, cpu: &PagingState, access: AccessKind) -> bool {
        if access.user && !self.user {
            return false;
        }
        match access.op {
            AccessOp::Read => true,
            AccessOp::Write => self.write || (!access.user && cpu.cr0 & cr0::WP == 0),
            AccessOp::Fetch => {
                let nx = self.no_exec && cpu.nxe();
                let smep = !access.user && self.user && cpu.cr4 & cr4::SMEP != 0;
                !nx && !smep
            }
        }
    }
}

fn read_entry(mem: &impl GuestMemory, gpa: u64, level: Level) -> Result<u64, WalkError> {
    let read = if level.entry_bytes() == 4 { mem.read_u32(gpa).map(u64::from) } else { mem.read_u64(gpa) };
    read.map_err(|MemError::OutOfRange { gpa, .. }| WalkError::BadGpa { gpa })
}

/// One level of one paging mode's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// 32-bit page directory; maps 4 MiB with PS when CR4.PSE=1.
    Pd32,
    /// 32-bit page table.
    Pt32,
    /// PAE page-directory-pointer table: four entries, no rights bits.
    PaePdpt,
    /// PAE page directory; maps 2 MiB with PS.
    PaePd,
    /// PAE page table.
    PaePt,
    /// Long-mode PML4.
    Pml4,
    /// Long-mode PDPT; maps 1 GiB with PS.
    Pdpt,
    /// Long-mode page directory; maps 2 MiB with PS.
    Pd,
    /// Long-mode page table.
    Pt,
}

impl Level {
    /// Position of this level's index in the linear address.
    fn shift(self) -> u32 {
        match self {
            Level::Pd32 => 22,
            Level::Pml4 => 39,
            Level::PaePdpt | Level::Pdpt => 30,
            Level::PaePd | Level::Pd => 21,
            Level::Pt32 | Level::PaePt | Level::Pt => 12,
        }
    }

    fn index_bits(self) -> u32 {
        match self {
            Level::Pd32 | Level::Pt32 => 10,
            Level::PaePdpt => 2,
            _ => 9,
        }
    }

    fn entry_bytes(self) -> u64 {
        match self {
            Level::Pd32 | Level::Pt32 => 4,
            _ => 8,
        }
    }

    /// Whether a present `entry` at this level maps a page rather than a table.
    fn is_large(self, cpu: &PagingState, entry: u64) -> bool {
        let ps = entry & PTE_PS != 0;
        match self {
            Level::Pd32 => ps && cpu.cr4 & cr4::PSE != 0,
            // Without 1 GiB pages, PS in a PDPTE is a reserved bit: the
            // entry then faults before anyone asks whether it is a leaf.
            Level::PaePd | Level::Pdpt | Level::Pd => ps,
            _ => false,
        }
    }

    /// Bits of a present `entry` that must be zero here.
    fn reserved(self, cpu: &PagingState, entry: u64) -> u64 {
        let phys = cpu.phys_mask();
        // Long mode: bits 51:M; bits 62:52 are free for software.
        let long_addr = bits(51, 0) & !phys;
        // PAE (legacy) mode: bits 62:M.
        let pae_addr = bits(62, 0) & !phys;
        let nx = if cpu.nxe() { 0 } else { PTE_NX };
        let ps = entry & PTE_PS != 0;
        match self {
            Level::Pt32 => 0,
            Level::Pd32 if self.is_large(cpu, entry) => {
                // 4 MiB page: bits 20:13 hold physical bits 39:32 (PSE-36),
                // bit 21 is reserved.
                let width = u32::from(cpu.phys_addr_bits.clamp(32, 40));
                let high = if width < 40 { bits(20, 13 + width - 32) } else { 0 };
                (1 << 21) | high
            }
            Level::Pd32 => 0,
            // Bits 2:1, 8:5 and 63:M (NX included) are reserved in a PDPTE.
            Level::PaePdpt => bits(2, 1) | bits(8, 5) | (bits(63, 0) & !phys),
            Level::PaePd if ps => pae_addr | nx | bits(20, 13),
            Level::PaePd | Level::PaePt => pae_addr | nx,
            Level::Pml4 => long_addr | nx | PTE_PS,
            Level::Pdpt if ps && cpu.gbpages => long_addr | nx | bits(29, 13),
            Level::Pdpt if ps => long_addr | nx | PTE_PS,
            Level::Pd if ps => long_addr | nx | bits(20, 13),
            Level::Pdpt | Level::Pd | Level::Pt => long_addr | nx,
        }
    }

    /// The physical address `entry` points at, before the in-page offset.
    fn frame(self, cpu: &PagingState, entry: u64) -> u64 {
        match self {
            Level::Pd32 if self.is_large(cpu, entry) => (entry & 0xFFC0_0000) | (((entry >> 13) & 0xFF) << 32),
            Level::Pd32 | Level::Pt32 => entry & 0xFFFF_F000,
            _ => entry & cpu.phys_mask() & !0xFFF,
        }
    }
}
