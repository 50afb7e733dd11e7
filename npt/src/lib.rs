//! Page tables in the x86-64 long-mode 4-level format, for AMD SVM nested
//! paging (guest-physical → host-physical, the table `nCR3` names) and for
//! the host's own paging (virtual → physical, the table `CR3` names).
//!
//! This is the NPT part of Certivisor's vm layer. It is pure logic, so it
//! builds as `no_std` without a heap for the kernel and is tested on the host
//! against simulated physical memory.
//!
//! # Principles
//! - **Safe code only.** The tables live in physical memory that this crate
//!   reaches only through [`TableMemory`], and their frames come from a
//!   [`FrameSource`]. The hypervisor backs both with its mm layer and its
//!   identity map (the unsafe part stays in the arch layer); tests back them
//!   with `sim::SimMemory`.
//! - **A bad request is an error, never a panic.** Every failure is an
//!   [`NptError`], and a failed operation has changed nothing: the frames an
//!   operation needs are counted by a dry run and reserved before the first
//!   entry is written.
//! - **Forgetting a TLB flush does not compile** (with
//!   `#![deny(unused_must_use)]`). Every change that may leave stale
//!   translations (unmap, protect that takes rights away or changes caching,
//!   remap, the split of a large page) returns a `#[must_use]` [`TlbFlush`]
//!   naming what must be flushed. Mapping unmapped space returns an empty
//!   token.
//! - **Table frames are freed only by [`PageTable::destroy`].** A CPU may
//!   cache upper-level entries, so a table frame emptied by `unmap` could be
//!   walked after its reuse unless every CPU had flushed first. Keeping the
//!   frame until the table dies avoids that hazard without a deferred-free
//!   protocol; an emptied table is reused by the next mapping of its range
//!   (a large page mapped there is then built from smaller ones).
//! - **Simple over clever.** One recursive walk does every change; the spec
//!   is a plain map of 4 KiB pages.
//! - **An executable spec** (`npt::spec`, with the `spec` feature or in tests)
//!   states what the operations do on a map from 4 KiB pages to
//!   (frame, permissions); the refinement tests in `tests/` check this
//!   implementation against it, operation by operation.
//!
//! # Flavors: one engine, two uses
//! AMD nested paging walks the same format as long-mode paging. A
//! [`PageTable<F>`] is generic over a [`Flavor`]: [`NestedPageTable`]
//! translates guest-physical addresses ([`GuestPhysAddr`]) and sets the U
//! bit at every level, because every guest access counts as a user access;
//! [`HostPageTable`] translates host-virtual addresses ([`HostVirtAddr`], in
//! either canonical half) and sets U in leaves only when asked with
//! [`Perms::USER`]. Both take caching attributes
//! ([`Perms::UNCACHED`] for MMIO) and may cap the page size
//! ([`PageTable::with_max_page_size`]) for CPUs without 1 GiB pages.
//!
//! # Example
//! ```no_run
//! #![deny(unused_must_use)]
//! use npt::sim::SimMemory;
//! use npt::{FlushScope, GuestPhysAddr, HostPhysAddr, NestedPageTable, PageSize, Perms};
//!
//! # fn invlpga_each_page(_: GuestPhysAddr, _: u64) {}
//! # fn flush_asid() {}
//! let mut mem = SimMemory::new();
//! let mut npt = NestedPageTable::new(&mut mem)?;
//!
//! // 6 MiB of guest RAM at guest-physical 0, backed from host 64 MiB on:
//! // three 2 MiB pages.
//! npt.map_range(&mut mem, GuestPhysAddr(0), HostPhysAddr(0x400_0000), 6 << 20, Perms::RWX)?
//!     .apply(|_| unreachable!("mapping unmapped space leaves nothing stale"));
//! let (hpa, perms, size) = npt.translate(&mem, GuestPhysAddr(0x20_1234)).unwrap();
//! assert_eq!((hpa, size), (HostPhysAddr(0x420_1234), PageSize::Size2M));
//! assert!(perms.contains(Perms::USER), "nested leaves always carry U");
//!
//! // Write-protect one page: its 2 MiB page is split, and a flush is owed.
//! let flush = npt.protect(&mut mem, GuestPhysAddr(0x20_1000), PageSize::Size4K, Perms::RX)?;
//! flush.apply(|scope| match scope {
//!     FlushScope::Range { start, len } => invlpga_each_page(start, len),
//!     FlushScope::All => flush_asid(), // e.g. TLB_CONTROL in the VMCB
//! });
//!
//! npt.destroy(&mut mem).apply(|_| {});
//! assert_eq!(mem.frames_in_use(), 0);
//! # Ok::<(), npt::NptError>(())
//! ```
//!
//! (`no_run`: with this workspace's static relocation model, doctests do not
//! link; `tests/behaviour.rs` runs the same steps.) With the token of
//! `protect` dropped instead, the example would not compile;
//! `tests/forgotten_flush.rs` checks that by building such a crate.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(unused_must_use)]

#[cfg(all(feature = "spec", not(test)))]
extern crate std;

mod addr;
mod backend;
mod entry;
mod error;
mod flavor;
mod flush;
mod perms;
mod table;
mod walk;

#[cfg(any(test, feature = "spec"))]
pub mod sim;
#[cfg(any(test, feature = "spec"))]
pub mod spec;

pub use addr::{GuestPhysAddr, HostPhysAddr, HostVirtAddr, InputAddr, PageSize};
pub use backend::{FrameSource, TableMemory};
pub use error::NptError;
pub use flavor::{Flavor, FlavorKind, Host, Nested};
pub use flush::{FlushScope, TlbFlush};
pub use perms::Perms;
pub use table::{HostPageTable, NestedPageTable, PageTable, TableRoot};
