//! The whole 4 KiB VMCB: the control area at 0x000 and the state save area
//! at 0x400 (APM vol. 2, appendix B).

use crate::control::ControlArea;
use crate::save::StateSaveArea;

/// Size of a VMCB in bytes.
pub const VMCB_SIZE: usize = 0x1000;

/// A virtual machine control block. Must sit in one 4 KiB-aligned page of
/// physical memory; the type's alignment guarantees the virtual side.
///
/// Not `Clone` and, outside tests, without a public constructor: a VMCB
/// exists only where its owner placed it (see [`ControlArea`]).
#[repr(C, align(4096))]
#[derive(Debug, PartialEq, Eq)]
pub struct Vmcb {
    /// 0x000..0x400.
    pub control: ControlArea,
    /// 0x400..0x1000.
    pub save: StateSaveArea,
}

impl Vmcb {
    /// A VMCB with every byte zero: no intercepts, no clean bits, ASID 0,
    /// nested paging off. Only for tests (see [`ControlArea::new_zeroed`]).
    #[cfg(any(test, feature = "test-util"))]
    pub const fn new_zeroed() -> Self {
        Self { control: ControlArea::new_zeroed(), save: StateSaveArea::new_zeroed() }
    }
}

#[cfg(any(test, feature = "test-util"))]
impl Default for Vmcb {
    fn default() -> Self {
        Self::new_zeroed()
    }
}

const _: () = assert!(core::mem::size_of::<Vmcb>() == VMCB_SIZE);
const _: () = assert!(core::mem::align_of::<Vmcb>() == 4096);
const _: () = assert!(core::mem::offset_of!(Vmcb, control) == 0);
const _: () = assert!(core::mem::offset_of!(Vmcb, save) == 0x400);

/// Pins `Vmcb.$area.$field` at the absolute VMCB offset `$offset`.
macro_rules! pin_abs {
    ($area:ident: $($field:ident = $offset:expr),+ $(,)?) => {
        $(const _: () = assert!(core::mem::offset_of!(Vmcb, $area.$field) == $offset);)+
    };
}

// The offsets a hypervisor relies on most, as absolute VMCB offsets. Every
// field is also pinned relative to its area in `control.rs` and `save.rs`.
pin_abs!(control:
    intercept_cr = 0x000,
    intercept_dr = 0x004,
    intercept_exceptions = 0x008,
    intercept_misc1 = 0x00C,
    intercept_misc2 = 0x010,
    intercept_misc3 = 0x014,
    iopm_base_pa = 0x040,
    msrpm_base_pa = 0x048,
    guest_asid = 0x058,
    tlb_control = 0x05C,
    int_control = 0x060,
    interrupt_shadow = 0x068,
    exit_code = 0x070,
    exit_info1 = 0x078,
    exit_info2 = 0x080,
    exit_int_info = 0x088,
    np_enable = 0x090,
    event_inj = 0x0A8,
    n_cr3 = 0x0B0,
    vmcb_clean = 0x0C0,
    next_rip = 0x0C8,
    guest_insn_len = 0x0D0,
    guest_insn_bytes = 0x0D1,
    vmsa_pa = 0x108,
    host_use = 0x3E0,
);
pin_abs!(save:
    es = 0x400,
    cs = 0x410,
    ss = 0x420,
    ds = 0x430,
    fs = 0x440,
    gs = 0x450,
    gdtr = 0x460,
    ldtr = 0x470,
    idtr = 0x480,
    tr = 0x490,
    cpl = 0x4CB,
    efer = 0x4D0,
    perf_ctl0 = 0x4E0,
    cr4 = 0x548,
    cr3 = 0x550,
    cr0 = 0x558,
    dr7 = 0x560,
    dr6 = 0x568,
    rflags = 0x570,
    rip = 0x578,
    instr_retired_ctr = 0x5C0,
    rsp = 0x5D8,
    s_cet = 0x5E0,
    ssp = 0x5E8,
    isst_addr = 0x5F0,
    rax = 0x5F8,
    star = 0x600,
    lstar = 0x608,
    cstar = 0x610,
    sfmask = 0x618,
    kernel_gs_base = 0x620,
    sysenter_cs = 0x628,
    sysenter_esp = 0x630,
    sysenter_eip = 0x638,
    cr2 = 0x640,
    g_pat = 0x668,
    dbgctl = 0x670,
    br_from = 0x678,
    br_to = 0x680,
    last_excp_from = 0x688,
    last_excp_to = 0x690,
    dbg_extn_ctl = 0x698,
    spec_ctrl = 0x6E0,
    lbr_stack = 0xA70,
    lbr_select = 0xB70,
    ibs_fetch_ctl = 0xB78,
    ic_ibs_extd_ctl = 0xBC0,
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte offset of a field reached through `f`, measured on a real value
    /// (a run-time cross-check of the compile-time pins).
    fn offset_in(vmcb: &Vmcb, field: *const u8) -> usize {
        field as usize - vmcb as *const Vmcb as usize
    }

    #[test]
    fn runtime_field_addresses_match_the_pinned_offsets() {
        let v = Box::new(Vmcb::new_zeroed());
        assert_eq!(v.as_ref() as *const Vmcb as usize % 4096, 0, "VMCB not page aligned");
        let cases: [(&str, *const u8, usize); 6] = [
            ("exit_code", &v.control.exit_code as *const u64 as *const u8, 0x70),
            ("n_cr3", &v.control.n_cr3 as *const u64 as *const u8, 0xB0),
            ("es", &v.save.es as *const _ as *const u8, 0x400),
            ("rip", &v.save.rip as *const u64 as *const u8, 0x578),
            ("rax", &v.save.rax as *const u64 as *const u8, 0x5F8),
            ("g_pat", &v.save.g_pat as *const u64 as *const u8, 0x668),
        ];
        for (name, ptr, want) in cases {
            assert_eq!(offset_in(&v, ptr), want, "{name}: expected {want:#x}");
        }
    }

    #[test]
    fn default_is_all_zero() {
        let v = Box::<Vmcb>::default();
        assert_eq!(*v, Vmcb::new_zeroed());
        assert!(!v.control.nested_paging_enabled() && v.control.n_cr3() == 0);
    }
}
