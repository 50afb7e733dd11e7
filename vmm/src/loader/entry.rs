//! The CPU state a loader asks the VMM to start the guest in, and the
//! GDT and identity page tables that back it in guest memory.
//!
//! Segment attributes use the VMCB's packed format (AMD APM vol. 2,
//! appendix B): the descriptor's access byte in bits 7:0 (type, S, DPL, P)
//! and its AVL, L, D/B, G flags in bits 11:8. Limits are in bytes, already
//! scaled by G, as the VMCB holds them.

use super::error::LoadError;
use super::layout::{GDT_ADDR, IDENTITY_MAP_GIB, PDPT_ADDR, PD_ADDR, PML4_ADDR};
use guest_x86::mem::GuestMemory;
use guest_x86::regs::{cr0, cr4, efer, rflags};

/// Selector of the flat code segment (Linux's `__BOOT_CS`).
pub const CODE_SELECTOR: u16 = 0x10;
/// Selector of the flat data segment (Linux's `__BOOT_DS`).
pub const DATA_SELECTOR: u16 = 0x18;
/// Selector of the TSS descriptor that TR refers to.
pub const TSS_SELECTOR: u16 = 0x20;
/// GDT descriptors: null, unused, code, data, TSS (16 bytes in long mode).
const GDT_ENTRIES: usize = 6;

/// Attribute bits (VMCB format).
pub mod attrib {
    /// Access byte: present.
    pub const P: u16 = 1 << 7;
    /// Access byte: code or data (not a system segment).
    pub const S: u16 = 1 << 4;
    /// Type: execute/read code, accessed.
    pub const TYPE_CODE_RX: u16 = 0xB;
    /// Type: read/write data, accessed.
    pub const TYPE_DATA_RW: u16 = 0x3;
    /// Type: busy 32-bit (or 64-bit) TSS.
    pub const TYPE_TSS_BUSY: u16 = 0xB;
    /// Flag: 64-bit code segment.
    pub const L: u16 = 1 << 9;
    /// Flag: 32-bit default operand size.
    pub const DB: u16 = 1 << 10;
    /// Flag: limit counts 4 KiB units.
    pub const G: u16 = 1 << 11;
}

/// The processor mode the guest starts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuMode {
    /// Real mode (reset state). No loader produces it yet.
    Real16,
    /// Flat 32-bit protected mode, paging off.
    Protected32,
    /// 64-bit long mode with paging (identity map) on.
    Long64,
}

/// Segments are the VMCB's own type: the loaders fill in exactly what the
/// VMM writes into the VMCB.
pub use vmcb::Segment;

/// The flat segments the loaders enter their kernels with.
pub mod flat {
    use super::{attrib, Segment, CODE_SELECTOR, DATA_SELECTOR, TSS_SELECTOR};

    /// Flat 4 GiB execute/read code, 64-bit.
    pub const CODE64: Segment = Segment {
        selector: CODE_SELECTOR,
        base: 0,
        limit: 0xFFFF_FFFF,
        attrib: attrib::P | attrib::S | attrib::TYPE_CODE_RX | attrib::L | attrib::G,
    };
    /// Flat 4 GiB execute/read code, 32-bit.
    pub const CODE32: Segment = Segment {
        selector: CODE_SELECTOR,
        base: 0,
        limit: 0xFFFF_FFFF,
        attrib: attrib::P | attrib::S | attrib::TYPE_CODE_RX | attrib::DB | attrib::G,
    };
    /// Flat 4 GiB read/write data.
    pub const DATA: Segment = Segment {
        selector: DATA_SELECTOR,
        base: 0,
        limit: 0xFFFF_FFFF,
        attrib: attrib::P | attrib::S | attrib::TYPE_DATA_RW | attrib::DB | attrib::G,
    };
    /// A busy TSS at 0 with limit 0x67, as PVH asks for TR.
    pub const TSS: Segment =
        Segment { selector: TSS_SELECTOR, base: 0, limit: 0x67, attrib: attrib::P | attrib::TYPE_TSS_BUSY };
}

/// A descriptor-table register (GDTR/IDTR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableRegister {
    pub base: u64,
    pub limit: u16,
}

/// Everything the VMM must put into the VMCB to start the guest. Registers
/// not listed here (IDTR, LDTR, DR*, the other GPRs) start as zero.
///
/// `efer` holds the guest-visible bits, the VMM adds EFER.SVME. For
/// [`CpuMode::Long64`] it includes LMA as well as LME: VMRUN takes EFER
/// from the VMCB as it is, so a VMCB with CR0.PG and LME but not LMA does
/// not start in long mode (the 64-bit entry then triple-faults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryState {
    pub mode: CpuMode,
    pub rip: u64,
    pub rsp: u64,
    pub rflags: u64,
    pub rax: u64,
    pub rbx: u64,
    pub rsi: u64,
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
    pub gdtr: TableRegister,
    /// CS.
    pub code: Segment,
    /// DS, ES, FS, GS and SS.
    pub data: Segment,
    /// TR.
    pub tr: Segment,
}

impl EntryState {
    fn gdtr() -> TableRegister {
        TableRegister { base: GDT_ADDR, limit: (GDT_ENTRIES * 8 - 1) as u16 }
    }

    /// Flat 32-bit protected mode, paging off, interrupts off, at `rip`.
    pub fn protected32(rip: u64) -> Self {
        EntryState {
            mode: CpuMode::Protected32,
            rip,
            rsp: 0,
            rflags: rflags::FIXED,
            rax: 0,
            rbx: 0,
            rsi: 0,
            cr0: cr0::PE | cr0::ET,
            cr3: 0,
            cr4: 0,
            efer: 0,
            gdtr: Self::gdtr(),
            code: flat::CODE32,
            data: flat::DATA,
            tr: flat::TSS,
        }
    }

    /// 64-bit long mode on the loader's identity map, interrupts off, at
    /// `rip`.
    pub fn long64(rip: u64) -> Self {
        EntryState {
            mode: CpuMode::Long64,
            cr0: cr0::PE | cr0::ET | cr0::PG,
            cr3: PML4_ADDR,
            cr4: cr4::PAE,
            efer: efer::LME | efer::LMA,
            code: flat::CODE64,
            ..Self::protected32(rip)
        }
    }

    /// Writes the GDT that backs this state's segments into guest memory.
    pub(super) fn write_gdt<M: GuestMemory + ?Sized>(&self, mem: &mut M) -> Result<(), LoadError> {
        let mut gdt = [0u64; GDT_ENTRIES];
        gdt[(CODE_SELECTOR >> 3) as usize] = self.code.to_descriptor();
        gdt[(DATA_SELECTOR >> 3) as usize] = self.data.to_descriptor();
        gdt[(TSS_SELECTOR >> 3) as usize] = self.tr.to_descriptor();
        gdt[(TSS_SELECTOR >> 3) as usize + 1] = self.tr.base >> 32;
        for (i, d) in gdt.iter().enumerate() {
            mem.write_u64(self.gdtr.base + 8 * i as u64, *d)?;
        }
        Ok(())
    }
}

/// Page-table entry bits.
const PTE_PRESENT: u64 = 1 << 0;
const PTE_WRITABLE: u64 = 1 << 1;
const PTE_LARGE: u64 = 1 << 7;

/// Writes page tables mapping [0, 4 GiB) to itself with 2 MiB pages:
/// PML4[0] -> PDPT, PDPT[0..4] -> four page directories.
pub(super) fn write_identity_map<M: GuestMemory + ?Sized>(mem: &mut M) -> Result<(), LoadError> {
    mem.zero(PML4_ADDR, 0x1000)?;
    mem.zero(PDPT_ADDR, 0x1000)?;
    mem.write_u64(PML4_ADDR, PDPT_ADDR | PTE_PRESENT | PTE_WRITABLE)?;
    for gib in 0..IDENTITY_MAP_GIB {
        let pd = PD_ADDR + gib * 0x1000;
        mem.write_u64(PDPT_ADDR + 8 * gib, pd | PTE_PRESENT | PTE_WRITABLE)?;
        let mut table = [0u8; 0x1000];
        for (i, pde) in table.chunks_exact_mut(8).enumerate() {
            let addr = (gib << 30) | ((i as u64) << 21);
            pde.copy_from_slice(&(addr | PTE_PRESENT | PTE_WRITABLE | PTE_LARGE).to_le_bytes());
        }
        mem.write(pd, &table)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use guest_x86::mem::VecMemory;

    #[test]
    fn flat_descriptors_match_the_classic_encodings() {
        assert_eq!(flat::CODE64.to_descriptor(), 0x00AF_9B00_0000_FFFF);
        assert_eq!(flat::CODE32.to_descriptor(), 0x00CF_9B00_0000_FFFF);
        assert_eq!(flat::DATA.to_descriptor(), 0x00CF_9300_0000_FFFF);
        assert_eq!(flat::TSS.to_descriptor(), 0x0000_8B00_0000_0067);
    }

    #[test]
    fn vmcb_attributes_of_flat_segments() {
        assert_eq!(flat::CODE64.attrib, 0xA9B);
        assert_eq!(flat::CODE32.attrib, 0xC9B);
        assert_eq!(flat::DATA.attrib, 0xC93);
        assert_eq!(flat::TSS.attrib, 0x08B);
    }

    #[test]
    fn descriptor_spreads_base_and_limit_over_their_fields() {
        let s = Segment { selector: 0, attrib: 0x93, limit: 0xA_BCDE, base: 0x1234_5678 };
        assert_eq!(s.to_descriptor(), 0x120A_9334_5678_BCDE);
    }

    #[test]
    fn long64_state_has_paging_pae_and_long_mode() {
        let s = EntryState::long64(0x1000200);
        assert_eq!(s.mode, CpuMode::Long64);
        assert_eq!(s.cr0, 0x8000_0011);
        assert_eq!(s.cr3, PML4_ADDR);
        assert_eq!(s.cr4, 0x20);
        assert_eq!(s.efer, 0x500);
        assert_eq!(s.rflags, 0x2);
        assert_eq!(s.code.selector, 0x10);
        assert_eq!(s.data.selector, 0x18);
    }

    #[test]
    fn gdt_in_memory_holds_the_entry_state_segments() {
        let mut mem = VecMemory::new(0x10_0000);
        let s = EntryState::long64(0);
        s.write_gdt(&mut mem).unwrap();
        assert_eq!(s.gdtr.limit, 0x2F);
        let at = |sel: u16| mem.read_u64(s.gdtr.base + sel as u64).unwrap();
        assert_eq!(at(0), 0);
        assert_eq!(at(0x10), s.code.to_descriptor());
        assert_eq!(at(0x18), s.data.to_descriptor());
        assert_eq!(at(0x20), s.tr.to_descriptor());
        assert_eq!(at(0x28), 0);
    }

    #[test]
    fn identity_map_translates_every_2mib_page_below_4gib_to_itself() {
        let mut mem = VecMemory::new(0x10_0000);
        write_identity_map(&mut mem).unwrap();
        let walk = |va: u64| -> u64 {
            let pml4e = mem.read_u64(PML4_ADDR + 8 * ((va >> 39) & 511)).unwrap();
            assert_eq!(pml4e & 3, 3, "PML4E for {va:#x}");
            let pdpte = mem.read_u64((pml4e & !0xFFF) + 8 * ((va >> 30) & 511)).unwrap();
            assert_eq!(pdpte & 0x83, 3, "PDPTE for {va:#x}");
            let pde = mem.read_u64((pdpte & !0xFFF) + 8 * ((va >> 21) & 511)).unwrap();
            assert_eq!(pde & 0x83, 0x83, "PDE for {va:#x}");
            (pde & !0x1F_FFFF & 0x000F_FFFF_FFFF_F000) | (va & 0x1F_FFFF)
        };
        for va in [0, 0x12_3456, 0x1000_0000, 0xBFFF_FFFF, 0xFEE0_0000, 0xFFFF_FFFF] {
            assert_eq!(walk(va), va);
        }
        assert_eq!(mem.read_u64(PML4_ADDR + 8).unwrap(), 0);
        assert_eq!(mem.read_u64(PDPT_ADDR + 8 * 4).unwrap(), 0);
    }
}
