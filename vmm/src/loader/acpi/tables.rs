//! The bytes of each table (ACPI 6.0 chapter 5) and where each goes.

use super::super::error::LoadError;
use super::super::layout::{ACPI_AREA_END, ACPI_AREA_START};
use super::{AcpiConfig, MAX_VCPUS};
use crate::dev::acpi_pm::{PM1A_CNT_BLK, PM1A_EVT_BLK, PM1_CNT_LEN, PM1_EVT_LEN, SCI_IRQ, SLP_TYP_S5};
use crate::dev::sysctl::PORT_RESET_CONTROL;
use crate::dev::{ioapic, isa_irq, lapic};
use crate::virtio::slots;
use guest_x86::mem::GuestMemory;

/// The system description table header.
pub const HEADER_LEN: u64 = 36;
pub const OEM_ID: [u8; 6] = *b"CERTIV";
pub const OEM_TABLE_ID: [u8; 8] = *b"CERTIVSR";
const OEM_REVISION: u32 = 1;
const CREATOR_ID: [u8; 4] = *b"CTVR";
const CREATOR_REVISION: u32 = 1;

pub const RSDP_LEN: u64 = 36;
/// The RSDP's first checksum covers the ACPI 1.0 part.
pub const RSDP_V1_LEN: u64 = 20;
pub const FACS_LEN: u64 = 64;
pub const FADT_LEN: u64 = 276;
const XSDT_ENTRIES: u64 = 2;
const XSDT_LEN: u64 = HEADER_LEN + 8 * XSDT_ENTRIES;

/// Table revisions of ACPI 6.0.
const FADT_REVISION: u8 = 6;
const MADT_REVISION: u8 = 4;
const DSDT_REVISION: u8 = 2;
const XSDT_REVISION: u8 = 1;
const RSDP_REVISION: u8 = 2;
const FACS_VERSION: u8 = 2;

/// MADT entry types and lengths.
pub mod madt {
    pub const LOCAL_APIC: u8 = 0;
    pub const LOCAL_APIC_LEN: u8 = 8;
    pub const IO_APIC: u8 = 1;
    pub const IO_APIC_LEN: u8 = 12;
    pub const SOURCE_OVERRIDE: u8 = 2;
    pub const SOURCE_OVERRIDE_LEN: u8 = 10;
    pub const LOCAL_APIC_NMI: u8 = 4;
    pub const LOCAL_APIC_NMI_LEN: u8 = 6;
    /// Local APIC flags: enabled.
    pub const ENABLED: u32 = 1;
    /// MADT flags: the PC's 8259 pair is present.
    pub const PCAT_COMPAT: u32 = 1;
    /// The processor UID that means every processor.
    pub const ALL_PROCESSORS: u8 = 0xFF;
}

/// FADT fixed-feature flags (ACPI 6.0 table 5-35).
pub mod fadt_flags {
    pub const WBINVD: u32 = 1 << 0;
    pub const PROC_C1: u32 = 1 << 2;
    /// Set: the sleep button, if any, is a control-method device (there is
    /// none). Clear for the power button: it is the fixed-feature one.
    pub const SLP_BUTTON: u32 = 1 << 5;
    pub const RESET_REG_SUP: u32 = 1 << 10;
}

/// IAPC_BOOT_ARCH flags (ACPI 6.0 table 5-36).
pub mod boot_arch {
    pub const LEGACY_DEVICES: u16 = 1 << 0;
    pub const I8042: u16 = 1 << 1;
    pub const VGA_NOT_PRESENT: u16 = 1 << 2;
}

/// The reset register's value: the PIIX's full reset (SYS_RST | RST_CPU).
pub const RESET_VALUE: u8 = 6;
/// The CMOS index of the RTC's century byte.
pub const CENTURY_INDEX: u8 = 0x32;
/// C2 and C3 latencies above 100 and 1000 µs: the states do not exist.
const NO_C2_LATENCY: u16 = 0x0FFF;
const NO_C3_LATENCY: u16 = 0x0FFF;

/// The DSDT's definition block: `Name (\_S5, Package (4) { 5, 5, 0, 0 })`.
pub const DSDT_AML: [u8; 17] = {
    const S5: u8 = SLP_TYP_S5 as u8;
    const NAME_OP: u8 = 0x08;
    const PACKAGE_OP: u8 = 0x12;
    const BYTE_PREFIX: u8 = 0x0A;
    [
        NAME_OP,
        b'\\',
        b'_',
        b'S',
        b'5',
        b'_', // \_S5_
        PACKAGE_OP,
        10,
        4, // PkgLength (itself, NumElements, 8 bytes), NumElements
        BYTE_PREFIX,
        S5,
        BYTE_PREFIX,
        S5,
        BYTE_PREFIX,
        0,
        BYTE_PREFIX,
        0, // SLP_TYPa, SLP_TYPb, reserved
    ]
};

/// Bytes of one virtio-mmio device in the DSDT ([`virtio_device_aml`]).
pub const VIRTIO_DEVICE_AML_LEN: usize = 61;
/// Bytes of `Scope (\_SB)`'s opcode, two-byte PkgLength and name.
const SB_SCOPE_HEAD: usize = 1 + 2 + 5;

/// Bytes of the DSDT with `virtio` virtio-mmio devices.
pub const fn dsdt_len(virtio: u8) -> u64 {
    let devices = if virtio == 0 { 0 } else { SB_SCOPE_HEAD + VIRTIO_DEVICE_AML_LEN * virtio as usize };
    HEADER_LEN + DSDT_AML.len() as u64 + devices as u64
}

/// The AML of virtio slot `slot`, for Linux's `virtio_mmio` driver (which
/// matches `LNRO0005` in its ACPI table):
///
/// ```text
/// Device (VIOn) {
///     Name (_HID, "LNRO0005")
///     Name (_UID, n)
///     Name (_CRS, ResourceTemplate () {
///         Memory32Fixed (ReadWrite, window base, 0x1000)
///         Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive) { GSI }
///     })
/// }
/// ```
pub fn virtio_device_aml(slot: u8, base: u32, gsi: u32) -> [u8; VIRTIO_DEVICE_AML_LEN] {
    const NAME_OP: u8 = 0x08;
    const STRING_PREFIX: u8 = 0x0D;
    const BYTE_PREFIX: u8 = 0x0A;
    const BUFFER_OP: u8 = 0x11;
    const MEMORY32_FIXED: u8 = 0x86;
    const EXTENDED_IRQ: u8 = 0x89;
    const END_TAG: u8 = 0x79;
    /// Consumer, level-triggered, active-high, exclusive.
    const IRQ_FLAGS: u8 = 0x01;
    const READ_WRITE: u8 = 0x01;
    let mut a = [0u8; VIRTIO_DEVICE_AML_LEN];
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        a[n..n + bytes.len()].copy_from_slice(bytes);
        n += bytes.len();
    };
    // DeviceOp, PkgLength (itself and the 58 bytes after it), NameSeg.
    put(&[0x5B, 0x82, 59, b'V', b'I', b'O', b'0' + slot]);
    put(&[NAME_OP, b'_', b'H', b'I', b'D', STRING_PREFIX]);
    put(b"LNRO0005\0");
    put(&[NAME_OP, b'_', b'U', b'I', b'D', BYTE_PREFIX, slot]);
    // Buffer: PkgLength 26 (itself, the size's 2 bytes, 23 bytes of data).
    put(&[NAME_OP, b'_', b'C', b'R', b'S', BUFFER_OP, 26, BYTE_PREFIX, 23]);
    put(&[MEMORY32_FIXED, 9, 0, READ_WRITE]);
    put(&base.to_le_bytes());
    put(&(crate::virtio::mmio::WINDOW as u32).to_le_bytes());
    put(&[EXTENDED_IRQ, 6, 0, IRQ_FLAGS, 1]);
    put(&gsi.to_le_bytes());
    put(&[END_TAG, 0]);
    a
}

/// MADT length for `vcpus` processors.
pub const fn madt_len(vcpus: u8) -> u64 {
    HEADER_LEN
        + 8
        + madt::LOCAL_APIC_LEN as u64 * vcpus as u64
        + madt::IO_APIC_LEN as u64
        + madt::SOURCE_OVERRIDE_LEN as u64 * isa_irq::OVERRIDES.len() as u64
        + madt::LOCAL_APIC_NMI_LEN as u64
}

const fn align_up(v: u64, to: u64) -> u64 {
    v.div_ceil(to) * to
}

/// Where each table goes: RSDP first (16-byte aligned, where the BIOS-area
/// scan looks), then the FACS (64-byte aligned, as the spec asks), then the
/// rest 16-byte aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub rsdp: u64,
    pub facs: u64,
    pub dsdt: u64,
    pub fadt: u64,
    pub madt: u64,
    pub xsdt: u64,
    pub end: u64,
}

impl Plan {
    pub const fn new(vcpus: u8, virtio: u8) -> Self {
        let rsdp = ACPI_AREA_START;
        let facs = align_up(rsdp + RSDP_LEN, 64);
        let dsdt = align_up(facs + FACS_LEN, 16);
        let fadt = align_up(dsdt + dsdt_len(virtio), 16);
        let madt = align_up(fadt + FADT_LEN, 16);
        let xsdt = align_up(madt + madt_len(vcpus), 16);
        Plan { rsdp, facs, dsdt, fadt, madt, xsdt, end: xsdt + XSDT_LEN }
    }
}

const _: () = assert!(Plan::new(MAX_VCPUS, slots::SLOTS as u8).end <= ACPI_AREA_END, "the tables fit the BIOS area");

/// A table being written into guest memory, its length and checksum
/// filled in by [`Table::finish`].
struct Table<'m, M: ?Sized> {
    mem: &'m mut M,
    start: u64,
    len: u64,
}

impl<'m, M: GuestMemory + ?Sized> Table<'m, M> {
    /// Starts a table at `start` with a system description table header.
    fn sdt(mem: &'m mut M, start: u64, signature: &[u8; 4], revision: u8) -> Result<Self, LoadError> {
        let mut t = Table { mem, start, len: 0 };
        t.put(signature)?;
        t.u32(0)?; // length, set by finish
        t.put(&[revision, 0])?; // checksum, set by finish
        t.put(&OEM_ID)?;
        t.put(&OEM_TABLE_ID)?;
        t.u32(OEM_REVISION)?;
        t.put(&CREATOR_ID)?;
        t.u32(CREATOR_REVISION)?;
        Ok(t)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), LoadError> {
        self.mem.write(self.start + self.len, bytes)?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    fn u8(&mut self, v: u8) -> Result<(), LoadError> {
        self.put(&[v])
    }

    fn u16(&mut self, v: u16) -> Result<(), LoadError> {
        self.put(&v.to_le_bytes())
    }

    fn u32(&mut self, v: u32) -> Result<(), LoadError> {
        self.put(&v.to_le_bytes())
    }

    fn u64(&mut self, v: u64) -> Result<(), LoadError> {
        self.put(&v.to_le_bytes())
    }

    fn gas(&mut self, g: Gas) -> Result<(), LoadError> {
        self.put(&[g.space, g.bit_width, 0, g.access_size])?;
        self.u64(g.address)
    }

    /// Fills in the header's length and checksum.
    fn finish(self) -> Result<(), LoadError> {
        self.mem.write_u32(self.start + 4, self.len as u32)?;
        let sum = checksum(self.mem, self.start, self.len)?;
        self.mem.write(self.start + 9, &[sum])?;
        Ok(())
    }
}

/// The byte that makes `[start, start + len)` sum to zero, the checksum
/// byte itself being zero.
fn checksum<M: GuestMemory + ?Sized>(mem: &M, start: u64, len: u64) -> Result<u8, LoadError> {
    let mut sum = 0u8;
    let mut chunk = [0u8; 64];
    let mut at = start;
    while at < start + len {
        let n = (start + len - at).min(chunk.len() as u64) as usize;
        mem.read(at, &mut chunk[..n])?;
        sum = chunk[..n].iter().fold(sum, |s, &b| s.wrapping_add(b));
        at += n as u64;
    }
    Ok(sum.wrapping_neg())
}

/// A generic address structure.
#[derive(Clone, Copy)]
struct Gas {
    space: u8,
    bit_width: u8,
    access_size: u8,
    address: u64,
}

const SPACE_IO: u8 = 1;
const ACCESS_BYTE: u8 = 1;
const ACCESS_WORD: u8 = 2;

impl Gas {
    const NONE: Gas = Gas { space: 0, bit_width: 0, access_size: 0, address: 0 };

    /// `len` ports at `port`, read as 16-bit registers.
    const fn ports(port: u16, len: u8) -> Gas {
        Gas { space: SPACE_IO, bit_width: len * 8, access_size: ACCESS_WORD, address: port as u64 }
    }
}

pub fn write_facs<M: GuestMemory + ?Sized>(mem: &mut M, at: u64) -> Result<(), LoadError> {
    mem.zero(at, FACS_LEN)?;
    mem.write(at, b"FACS")?;
    mem.write_u32(at + 4, FACS_LEN as u32)?;
    mem.write(at + 32, &[FACS_VERSION])?;
    Ok(())
}

/// The DSDT: `\_S5`, then, if there are virtio slots in use, `Scope
/// (\_SB)` with one device per slot, slots `0..virtio`.
pub fn write_dsdt<M: GuestMemory + ?Sized>(mem: &mut M, at: u64, virtio: u8) -> Result<(), LoadError> {
    let mut t = Table::sdt(mem, at, b"DSDT", DSDT_REVISION)?;
    t.put(&DSDT_AML)?;
    if virtio > 0 {
        const SCOPE_OP: u8 = 0x10;
        // PkgLength in two bytes: the low nibble in the first, the rest in the second.
        let len = (SB_SCOPE_HEAD - 1 + VIRTIO_DEVICE_AML_LEN * usize::from(virtio)) as u16;
        t.put(&[SCOPE_OP, 0x40 | (len & 0x0F) as u8, (len >> 4) as u8, b'\\', b'_', b'S', b'B', b'_'])?;
        for slot in 0..usize::from(virtio) {
            let aml = virtio_device_aml(slot as u8, slots::window(slot).base as u32, u32::from(slots::gsi(slot)));
            t.put(&aml)?;
        }
    }
    t.finish()
}

pub fn write_fadt<M: GuestMemory + ?Sized>(mem: &mut M, plan: &Plan) -> Result<(), LoadError> {
    let mut t = Table::sdt(mem, plan.fadt, b"FACP", FADT_REVISION)?;
    t.u32(plan.facs as u32)?; // FIRMWARE_CTRL
    t.u32(plan.dsdt as u32)?; // DSDT
    t.put(&[0, 0])?; // reserved, Preferred_PM_Profile: unspecified
    t.u16(u16::from(SCI_IRQ))?;
    t.u32(0)?; // SMI_CMD: none, the platform is always in ACPI mode
    t.put(&[0; 4])?; // ACPI_ENABLE, ACPI_DISABLE, S4BIOS_REQ, PSTATE_CNT
    t.u32(PM1A_EVT_BLK.into())?;
    t.u32(0)?; // PM1b_EVT_BLK
    t.u32(PM1A_CNT_BLK.into())?;
    t.put(&[0; 4 * 5])?; // PM1b_CNT_BLK, PM2_CNT_BLK, PM_TMR_BLK, GPE0_BLK, GPE1_BLK
    t.put(&[PM1_EVT_LEN, PM1_CNT_LEN])?;
    t.put(&[0; 6])?; // PM2_CNT_LEN, PM_TMR_LEN, GPE0/1_BLK_LEN, GPE1_BASE, CST_CNT
    t.u16(NO_C2_LATENCY)?;
    t.u16(NO_C3_LATENCY)?;
    t.put(&[0; 4])?; // FLUSH_SIZE, FLUSH_STRIDE
    t.put(&[0; 4])?; // DUTY_OFFSET, DUTY_WIDTH, DAY_ALRM, MON_ALRM
    t.u8(CENTURY_INDEX)?;
    t.u16(boot_arch::LEGACY_DEVICES | boot_arch::I8042 | boot_arch::VGA_NOT_PRESENT)?;
    t.u8(0)?;
    t.u32(fadt_flags::WBINVD | fadt_flags::PROC_C1 | fadt_flags::SLP_BUTTON | fadt_flags::RESET_REG_SUP)?;
    t.gas(Gas { space: SPACE_IO, bit_width: 8, access_size: ACCESS_BYTE, address: PORT_RESET_CONTROL.into() })?;
    t.u8(RESET_VALUE)?;
    t.u16(0)?; // ARM_BOOT_ARCH
    t.u8(0)?; // FADT minor version (6.0)
              // X_FIRMWARE_CTRL: only for a FACS above 4 GiB; it must be zero when
              // FIRMWARE_CTRL is set (ACPI 6.0 §5.2.9, table 5-34).
    t.u64(0)?;
    t.u64(plan.dsdt)?; // X_DSDT
    t.gas(Gas::ports(PM1A_EVT_BLK, PM1_EVT_LEN))?;
    t.gas(Gas::NONE)?; // X_PM1b_EVT_BLK
    t.gas(Gas::ports(PM1A_CNT_BLK, PM1_CNT_LEN))?;
    for _ in 0..7 {
        // X_PM1b_CNT_BLK, X_PM2_CNT_BLK, X_PM_TMR_BLK, X_GPE0_BLK, X_GPE1_BLK,
        // SLEEP_CONTROL_REG, SLEEP_STATUS_REG
        t.gas(Gas::NONE)?;
    }
    t.u64(0)?; // hypervisor vendor identity
    debug_assert_eq!(t.len, FADT_LEN);
    t.finish()
}

pub fn write_madt<M: GuestMemory + ?Sized>(mem: &mut M, at: u64, config: &AcpiConfig) -> Result<(), LoadError> {
    let mut t = Table::sdt(mem, at, b"APIC", MADT_REVISION)?;
    t.u32(lapic::DEFAULT_BASE as u32)?;
    t.u32(madt::PCAT_COMPAT)?;
    for cpu in 0..config.vcpus {
        t.put(&[madt::LOCAL_APIC, madt::LOCAL_APIC_LEN, cpu, cpu])?;
        t.u32(madt::ENABLED)?;
    }
    t.put(&[madt::IO_APIC, madt::IO_APIC_LEN, config.ioapic_id, 0])?;
    t.u32(ioapic::DEFAULT_BASE as u32)?;
    t.u32(0)?; // GSI base
    for o in isa_irq::OVERRIDES {
        t.put(&[madt::SOURCE_OVERRIDE, madt::SOURCE_OVERRIDE_LEN, 0, o.isa_irq])?;
        t.u32(o.gsi.into())?;
        t.u16(o.flags)?;
    }
    t.put(&[madt::LOCAL_APIC_NMI, madt::LOCAL_APIC_NMI_LEN, madt::ALL_PROCESSORS])?;
    t.u16(isa_irq::inti::CONFORMING)?;
    t.u8(1)?; // LINT1
    debug_assert_eq!(t.len, madt_len(config.vcpus));
    t.finish()
}

pub fn write_xsdt<M: GuestMemory + ?Sized>(mem: &mut M, plan: &Plan) -> Result<(), LoadError> {
    let mut t = Table::sdt(mem, plan.xsdt, b"XSDT", XSDT_REVISION)?;
    t.u64(plan.fadt)?;
    t.u64(plan.madt)?;
    t.finish()
}

pub fn write_rsdp<M: GuestMemory + ?Sized>(mem: &mut M, at: u64, xsdt: u64) -> Result<(), LoadError> {
    mem.zero(at, RSDP_LEN)?;
    mem.write(at, b"RSD PTR ")?;
    mem.write(at + 9, &OEM_ID)?;
    mem.write(at + 15, &[RSDP_REVISION])?;
    mem.write_u32(at + 16, 0)?; // no RSDT: ACPI 2.0+ guests use the XSDT
    mem.write_u32(at + 20, RSDP_LEN as u32)?;
    mem.write_u64(at + 24, xsdt)?;
    let v1 = checksum(mem, at, RSDP_V1_LEN)?;
    mem.write(at + 8, &[v1])?;
    let extended = checksum(mem, at, RSDP_LEN)?;
    mem.write(at + 32, &[extended])?;
    Ok(())
}
