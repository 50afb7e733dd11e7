//! The bzImage loader on random setup headers (Linux boot protocol,
//! Documentation/arch/x86/boot.rst): a header the loader must refuse is
//! refused with the error its first bad field names, and a loaded kernel
//! obeys every rule the header sets: the payload at CODE32_START in
//! usable RAM from 1 MiB, at PREF_ADDRESS or aligned to KERNEL_ALIGNMENT;
//! the initrd above the kernel's init_size and below INITRD_ADDR_MAX; the
//! command line no longer than CMDLINE_SIZE; the 64-bit entry 0x200 in.
use proptest::prelude::*;

use super::images::{bzimage, BzOpts, BZ_PAYLOAD_SEED};
use super::MIB;
use crate::loader::bzimage::{hdr, ENTRY_64_OFFSET, MIN_PROTOCOL_VERSION};
use crate::loader::layout::{BOOT_INFO_ADDR, HIGH_MEM_START};
use crate::loader::testutil::{bytes, c_string, pattern, u32_at, SparseMemory};
use crate::loader::{load_bzimage, LoadError, MemLayout};
use crate::proptest_cases::cases;

const RAM: u64 = 64 * MIB;

fn options() -> impl Strategy<Value = BzOpts> {
    let d = BzOpts::default();
    (
        (prop_oneof![Just(d.version), 0x0200u16..0x0210], prop_oneof![8 => Just(1u8), 1 => any::<u8>()]),
        (prop_oneof![8 => Just(3u16), 1 => any::<u16>()], any::<bool>()),
        prop_oneof![Just(0x20_0000u32), Just(0x1000), Just(0x1234), Just(0), any::<u32>()],
        prop_oneof![Just(0x100_0000u64), Just(0), Just(0x8_0000), HIGH_MEM_START..RAM, any::<u64>()],
        prop_oneof![Just(0u32), 0u32..0x40_0000, Just(RAM as u32)],
        prop_oneof![Just(2047u32), 0u32..64],
        prop_oneof![Just(0x7FFF_FFFFu32), HIGH_MEM_START as u32..RAM as u32, 0u32..0x20_0000],
        0x200usize..0x4000,
    )
        .prop_map(
            move |(
                (version, loadflags),
                (xloadflags, relocatable),
                kernel_alignment,
                pref_address,
                init_size,
                cmdline_size,
                initrd_addr_max,
                payload_len,
            )| BzOpts {
                version,
                loadflags,
                xloadflags,
                relocatable,
                kernel_alignment,
                pref_address,
                init_size,
                cmdline_size,
                initrd_addr_max,
                // SYSSIZE counts 16-byte paragraphs.
                payload_len: payload_len & !15,
                ..d.clone()
            },
        )
}

/// Whether `[addr, addr + len)` is RAM from 1 MiB up.
fn high_ram(addr: u64, len: u64) -> bool {
    addr >= HIGH_MEM_START && addr.checked_add(len).is_some_and(|end| end <= RAM)
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn bzimage_loads_by_the_rules_of_its_header_or_names_its_first_bad_field(
        o in options(),
        initrd_len in prop_oneof![Just(0usize), 1usize..0x3000],
        cmdline in prop::collection::vec(1u8..=255, 0..80),
    ) {
        let image = bzimage(&o);
        let initrd = pattern(initrd_len, 7);
        let mut mem = SparseMemory::new(RAM);
        let result = load_bzimage(&mut mem, &MemLayout::new(RAM), &image, Some(&initrd), &cmdline);
        // The fields the header is checked for, in the loader's order.
        if o.version < MIN_PROTOCOL_VERSION {
            prop_assert!(matches!(result, Err(LoadError::UnsupportedProtocolVersion { .. })), "{result:?}");
            return Ok(());
        }
        if o.loadflags & 1 == 0 {
            prop_assert_eq!(result, Err(LoadError::NotLoadedHigh));
            return Ok(());
        }
        if o.xloadflags & 1 == 0 {
            prop_assert_eq!(result, Err(LoadError::No64BitEntry));
            return Ok(());
        }
        let need = u64::from(o.init_size).max(o.payload_len as u64);
        let state = match result {
            Ok(state) => state,
            Err(LoadError::CmdlineTooLong { len, .. }) => {
                prop_assert!(len > u64::from(o.cmdline_size), "a line of {len} refused for a limit of {}", o.cmdline_size);
                return Ok(());
            }
            Err(LoadError::NotRelocatable { .. } | LoadError::KernelDoesNotFit { .. }) => {
                prop_assert!(!high_ram(o.pref_address, need), "the preferred address fitted");
                return Ok(());
            }
            Err(LoadError::BadKernelAlignment { alignment }) => {
                prop_assert!(o.relocatable && !alignment.is_power_of_two());
                return Ok(());
            }
            Err(LoadError::InitrdTooLarge { .. }) => return Ok(()),
            Err(e) => return Err(TestCaseError::fail(format!("{e:?} for a header with {o:?}"))),
        };
        let load = u64::from(u32_at(&mem, BOOT_INFO_ADDR + hdr::CODE32_START));
        prop_assert!(high_ram(load, need), "kernel at {load:#x}+{need:#x}");
        prop_assert!(
            load == o.pref_address || (o.relocatable && load % u64::from(o.kernel_alignment).max(0x1000) == 0),
            "kernel at {load:#x}, preferred {:#x}, alignment {:#x}", o.pref_address, o.kernel_alignment
        );
        prop_assert_eq!(bytes(&mem, load, o.payload_len), pattern(o.payload_len, BZ_PAYLOAD_SEED));
        prop_assert_eq!(state.rip, load + ENTRY_64_OFFSET);
        let line = c_string(&mem, u64::from(u32_at(&mem, BOOT_INFO_ADDR + hdr::CMD_LINE_PTR)));
        prop_assert!(line.len() as u64 <= u64::from(o.cmdline_size));
        prop_assert_eq!(line, cmdline);
        let rd = u64::from(u32_at(&mem, BOOT_INFO_ADDR + hdr::RAMDISK_IMAGE));
        let rd_size = u32_at(&mem, BOOT_INFO_ADDR + hdr::RAMDISK_SIZE) as usize;
        prop_assert_eq!(rd_size, initrd_len);
        if initrd_len > 0 {
            prop_assert!(rd >= load + need, "initrd at {rd:#x} inside the kernel's {load:#x}+{need:#x}");
            prop_assert!(rd + initrd_len as u64 - 1 <= u64::from(o.initrd_addr_max), "initrd at {rd:#x} past the max");
            prop_assert!(high_ram(rd, initrd_len as u64));
            prop_assert_eq!(bytes(&mem, rd, initrd_len), initrd);
        }
    }
}
