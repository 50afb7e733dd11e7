//! The VMCB state save area, VMCB offsets 0x400..0x1000 (APM vol. 2,
//! table B-2; offsets there are relative to 0x400).
//!
//! The guest's general-purpose registers other than RAX and RSP are not
//! here: the world switch saves and restores them itself. Fields from the
//! last defined one (IC_IBS_EXTD_CTL at 0x7C0) to the end of the page are
//! reserved padding.
//!
//! Two quirks of table B-2 (revision 3.44) are kept as the table has them:
//! 0x140..0x147 is not listed and is reserved here, and PERF_CTR_GLOBAL_CTL
//! is listed as a quadword at 0x1D0 while 0x1D4..0x1D7 is also listed as
//! reserved, so it is a `u32` here (the SEV-ES table B-4 calls it a
//! doubleword).

use crate::control::pin;
use crate::efer::Efer;
use crate::segment::Segment;

/// Size of the state save area in bytes.
pub const STATE_SAVE_AREA_SIZE: usize = 0xC00;

/// The state save area of a VMCB (not the SEV-ES VMSA).
#[repr(C)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateSaveArea {
    /// 0x400: ES.
    pub es: Segment,
    /// 0x410: CS.
    pub cs: Segment,
    /// 0x420: SS.
    pub ss: Segment,
    /// 0x430: DS.
    pub ds: Segment,
    /// 0x440: FS.
    pub fs: Segment,
    /// 0x450: GS.
    pub gs: Segment,
    /// 0x460: GDTR (only base and the low 16 bits of limit).
    pub gdtr: Segment,
    /// 0x470: LDTR.
    pub ldtr: Segment,
    /// 0x480: IDTR (only base and the low 16 bits of limit).
    pub idtr: Segment,
    /// 0x490: TR.
    pub tr: Segment,
    reserved_0x0a0: [u8; 0x2B],
    /// 0x4CB: CPL (forced to 0 in real mode, 3 in virtual-8086 mode).
    pub cpl: u8,
    reserved_0x0cc: u32,
    /// 0x4D0: EFER, see [`Efer`]. VMRUN requires SVME set.
    pub efer: u64,
    reserved_0x0d8: [u8; 8],
    /// 0x4E0: PERF_CTL0 (PMC virtualization).
    pub perf_ctl0: u64,
    /// 0x4E8: PERF_CTR0.
    pub perf_ctr0: u64,
    /// 0x4F0: PERF_CTL1.
    pub perf_ctl1: u64,
    /// 0x4F8: PERF_CTR1.
    pub perf_ctr1: u64,
    /// 0x500: PERF_CTL2.
    pub perf_ctl2: u64,
    /// 0x508: PERF_CTR2.
    pub perf_ctr2: u64,
    /// 0x510: PERF_CTL3.
    pub perf_ctl3: u64,
    /// 0x518: PERF_CTR3.
    pub perf_ctr3: u64,
    /// 0x520: PERF_CTL4.
    pub perf_ctl4: u64,
    /// 0x528: PERF_CTR4.
    pub perf_ctr4: u64,
    /// 0x530: PERF_CTL5.
    pub perf_ctl5: u64,
    /// 0x538: PERF_CTR5.
    pub perf_ctr5: u64,
    reserved_0x140: [u8; 8],
    /// 0x548: CR4.
    pub cr4: u64,
    /// 0x550: CR3.
    pub cr3: u64,
    /// 0x558: CR0.
    pub cr0: u64,
    /// 0x560: DR7.
    pub dr7: u64,
    /// 0x568: DR6.
    pub dr6: u64,
    /// 0x570: RFLAGS.
    pub rflags: u64,
    /// 0x578: RIP.
    pub rip: u64,
    reserved_0x180: [u8; 0x40],
    /// 0x5C0: INSTR_RETIRED_CTR (PMC virtualization).
    pub instr_retired_ctr: u64,
    /// 0x5C8: PERF_CTR_GLOBAL_STS.
    pub perf_ctr_global_sts: u64,
    /// 0x5D0: PERF_CTR_GLOBAL_CTL.
    pub perf_ctr_global_ctl: u32,
    reserved_0x1d4: u32,
    /// 0x5D8: RSP.
    pub rsp: u64,
    /// 0x5E0: S_CET.
    pub s_cet: u64,
    /// 0x5E8: SSP.
    pub ssp: u64,
    /// 0x5F0: ISST_ADDR.
    pub isst_addr: u64,
    /// 0x5F8: RAX.
    pub rax: u64,
    /// 0x600: STAR.
    pub star: u64,
    /// 0x608: LSTAR.
    pub lstar: u64,
    /// 0x610: CSTAR.
    pub cstar: u64,
    /// 0x618: SFMASK.
    pub sfmask: u64,
    /// 0x620: KernelGsBase.
    pub kernel_gs_base: u64,
    /// 0x628: SYSENTER_CS.
    pub sysenter_cs: u64,
    /// 0x630: SYSENTER_ESP.
    pub sysenter_esp: u64,
    /// 0x638: SYSENTER_EIP.
    pub sysenter_eip: u64,
    /// 0x640: CR2.
    pub cr2: u64,
    reserved_0x248: [u8; 0x20],
    /// 0x668: G_PAT, the guest PAT (used only with nested paging).
    pub g_pat: u64,
    /// 0x670: DBGCTL (LBR virtualization).
    pub dbgctl: u64,
    /// 0x678: BR_FROM (LastBranchFromIP).
    pub br_from: u64,
    /// 0x680: BR_TO (LastBranchToIP).
    pub br_to: u64,
    /// 0x688: LASTEXCPFROM (LastIntFromIP).
    pub last_excp_from: u64,
    /// 0x690: LASTEXCPTO (LastIntToIP).
    pub last_excp_to: u64,
    /// 0x698: DBGEXTNCTL (LBR stack virtualization).
    pub dbg_extn_ctl: u64,
    reserved_0x2a0: [u8; 0x40],
    /// 0x6E0: SPEC_CTRL.
    pub spec_ctrl: u64,
    reserved_0x2e8: [u8; 0x388],
    /// 0xA70: LBR_STACK_FROM/LBR_STACK_TO, the LastBranchStackFromIp and
    /// LastBranchStackToIp MSRs in MSR address order (LBR stack
    /// virtualization).
    pub lbr_stack: [u64; 32],
    /// 0xB70: LBR_SELECT.
    pub lbr_select: u64,
    /// 0xB78: IBS_FETCH_CTL (IBS virtualization).
    pub ibs_fetch_ctl: u64,
    /// 0xB80: IBS_FETCH_LINADDR.
    pub ibs_fetch_linaddr: u64,
    /// 0xB88: IBS_OP_CTL.
    pub ibs_op_ctl: u64,
    /// 0xB90: IBS_OP_RIP.
    pub ibs_op_rip: u64,
    /// 0xB98: IBS_OP_DATA.
    pub ibs_op_data: u64,
    /// 0xBA0: IBS_OP_DATA2.
    pub ibs_op_data2: u64,
    /// 0xBA8: IBS_OP_DATA3.
    pub ibs_op_data3: u64,
    /// 0xBB0: IBS_DC_LINADDR.
    pub ibs_dc_linaddr: u64,
    /// 0xBB8: BP_IBSTGT_RIP.
    pub bp_ibstgt_rip: u64,
    /// 0xBC0: IC_IBS_EXTD_CTL.
    pub ic_ibs_extd_ctl: u64,
    reserved_0x7c8: [u8; STATE_SAVE_AREA_SIZE - 0x7C8],
}

impl StateSaveArea {
    /// A state save area with every byte zero.
    pub const fn new_zeroed() -> Self {
        Self {
            es: Segment::NULL,
            cs: Segment::NULL,
            ss: Segment::NULL,
            ds: Segment::NULL,
            fs: Segment::NULL,
            gs: Segment::NULL,
            gdtr: Segment::NULL,
            ldtr: Segment::NULL,
            idtr: Segment::NULL,
            tr: Segment::NULL,
            reserved_0x0a0: [0; 0x2B],
            cpl: 0,
            reserved_0x0cc: 0,
            efer: 0,
            reserved_0x0d8: [0; 8],
            perf_ctl0: 0,
            perf_ctr0: 0,
            perf_ctl1: 0,
            perf_ctr1: 0,
            perf_ctl2: 0,
            perf_ctr2: 0,
            perf_ctl3: 0,
            perf_ctr3: 0,
            perf_ctl4: 0,
            perf_ctr4: 0,
            perf_ctl5: 0,
            perf_ctr5: 0,
            reserved_0x140: [0; 8],
            cr4: 0,
            cr3: 0,
            cr0: 0,
            dr7: 0,
            dr6: 0,
            rflags: 0,
            rip: 0,
            reserved_0x180: [0; 0x40],
            instr_retired_ctr: 0,
            perf_ctr_global_sts: 0,
            perf_ctr_global_ctl: 0,
            reserved_0x1d4: 0,
            rsp: 0,
            s_cet: 0,
            ssp: 0,
            isst_addr: 0,
            rax: 0,
            star: 0,
            lstar: 0,
            cstar: 0,
            sfmask: 0,
            kernel_gs_base: 0,
            sysenter_cs: 0,
            sysenter_esp: 0,
            sysenter_eip: 0,
            cr2: 0,
            reserved_0x248: [0; 0x20],
            g_pat: 0,
            dbgctl: 0,
            br_from: 0,
            br_to: 0,
            last_excp_from: 0,
            last_excp_to: 0,
            dbg_extn_ctl: 0,
            reserved_0x2a0: [0; 0x40],
            spec_ctrl: 0,
            reserved_0x2e8: [0; 0x388],
            lbr_stack: [0; 32],
            lbr_select: 0,
            ibs_fetch_ctl: 0,
            ibs_fetch_linaddr: 0,
            ibs_op_ctl: 0,
            ibs_op_rip: 0,
            ibs_op_data: 0,
            ibs_op_data2: 0,
            ibs_op_data3: 0,
            ibs_dc_linaddr: 0,
            bp_ibstgt_rip: 0,
            ic_ibs_extd_ctl: 0,
            reserved_0x7c8: [0; STATE_SAVE_AREA_SIZE - 0x7C8],
        }
    }

    /// EFER as typed flags.
    pub const fn guest_efer(&self) -> Efer {
        Efer::from_bits_retain(self.efer)
    }

    /// Sets EFER from typed flags.
    pub fn set_guest_efer(&mut self, efer: Efer) {
        self.efer = efer.bits();
    }
}

impl Default for StateSaveArea {
    fn default() -> Self {
        Self::new_zeroed()
    }
}

// Offsets relative to the start of the save area, as in table B-2. The
// absolute offsets (+0x400) are pinned again in `vmcb.rs`.
pin!(
    StateSaveArea,
    es = 0x000,
    cs = 0x010,
    ss = 0x020,
    ds = 0x030,
    fs = 0x040,
    gs = 0x050,
    gdtr = 0x060,
    ldtr = 0x070,
    idtr = 0x080,
    tr = 0x090,
    reserved_0x0a0 = 0x0A0,
    cpl = 0x0CB,
    reserved_0x0cc = 0x0CC,
    efer = 0x0D0,
    reserved_0x0d8 = 0x0D8,
    perf_ctl0 = 0x0E0,
    perf_ctr0 = 0x0E8,
    perf_ctl1 = 0x0F0,
    perf_ctr1 = 0x0F8,
    perf_ctl2 = 0x100,
    perf_ctr2 = 0x108,
    perf_ctl3 = 0x110,
    perf_ctr3 = 0x118,
    perf_ctl4 = 0x120,
    perf_ctr4 = 0x128,
    perf_ctl5 = 0x130,
    perf_ctr5 = 0x138,
    reserved_0x140 = 0x140,
    cr4 = 0x148,
    cr3 = 0x150,
    cr0 = 0x158,
    dr7 = 0x160,
    dr6 = 0x168,
    rflags = 0x170,
    rip = 0x178,
    reserved_0x180 = 0x180,
    instr_retired_ctr = 0x1C0,
    perf_ctr_global_sts = 0x1C8,
    perf_ctr_global_ctl = 0x1D0,
    reserved_0x1d4 = 0x1D4,
    rsp = 0x1D8,
    s_cet = 0x1E0,
    ssp = 0x1E8,
    isst_addr = 0x1F0,
    rax = 0x1F8,
    star = 0x200,
    lstar = 0x208,
    cstar = 0x210,
    sfmask = 0x218,
    kernel_gs_base = 0x220,
    sysenter_cs = 0x228,
    sysenter_esp = 0x230,
    sysenter_eip = 0x238,
    cr2 = 0x240,
    reserved_0x248 = 0x248,
    g_pat = 0x268,
    dbgctl = 0x270,
    br_from = 0x278,
    br_to = 0x280,
    last_excp_from = 0x288,
    last_excp_to = 0x290,
    dbg_extn_ctl = 0x298,
    reserved_0x2a0 = 0x2A0,
    spec_ctrl = 0x2E0,
    reserved_0x2e8 = 0x2E8,
    lbr_stack = 0x670,
    lbr_select = 0x770,
    ibs_fetch_ctl = 0x778,
    ibs_fetch_linaddr = 0x780,
    ibs_op_ctl = 0x788,
    ibs_op_rip = 0x790,
    ibs_op_data = 0x798,
    ibs_op_data2 = 0x7A0,
    ibs_op_data3 = 0x7A8,
    ibs_dc_linaddr = 0x7B0,
    bp_ibstgt_rip = 0x7B8,
    ic_ibs_extd_ctl = 0x7C0,
    reserved_0x7c8 = 0x7C8,
);
const _: () = assert!(core::mem::size_of::<StateSaveArea>() == STATE_SAVE_AREA_SIZE);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_efer_round_trips() {
        let mut s = StateSaveArea::new_zeroed();
        s.set_guest_efer(Efer::SVME | Efer::LME | Efer::LMA);
        assert_eq!(s.efer, (1 << 12) | (1 << 8) | (1 << 10));
        assert_eq!(s.guest_efer(), Efer::SVME | Efer::LME | Efer::LMA);
    }
}
