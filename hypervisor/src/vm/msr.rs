//! Which MSRs the guest reaches directly.
//!
//! These are the MSRs whose guest values live in the VMCB's state save area
//! (swapped by VMRUN/#VMEXIT or VMLOAD/VMSAVE), so the guest can read and
//! write them without an exit and without touching the host's values.
//! Every other MSR is intercepted and emulated or refused by the VMM.
pub const PASSTHROUGH: [u32; 10] = [
    0xC000_0081, // STAR
    0xC000_0082, // LSTAR
    0xC000_0083, // CSTAR
    0xC000_0084, // SFMASK
    0xC000_0100, // FS_BASE
    0xC000_0101, // GS_BASE
    0xC000_0102, // KERNEL_GS_BASE
    0x174,       // SYSENTER_CS
    0x175,       // SYSENTER_ESP
    0x176,       // SYSENTER_EIP
];
