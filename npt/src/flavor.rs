//! Flavors: the same table format serves nested paging and the host's own
//! paging.
//!
//! AMD nested paging uses the long-mode 4-level format unchanged. The two
//! uses differ in three ways, and a flavor fixes each of them:
//!
//! | | [`Nested`] | [`Host`] |
//! |---|---|---|
//! | translates | [`GuestPhysAddr`], `0..2^48` | [`HostVirtAddr`], either canonical half |
//! | U bit in leaves | always: every guest access counts as a user access, so a leaf without U faults | only with [`Perms::USER`] |
//! | U bit in table entries | always | always, so that the leaf alone decides |
//!
//! [`Perms::USER`]: crate::Perms::USER

use crate::addr::{GuestPhysAddr, HostVirtAddr, InputAddr};

/// Which use a page table serves.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum FlavorKind {
    /// Guest-physical to host-physical (AMD nested paging, `nCR3`).
    Nested,
    /// Host-virtual to host-physical (the host's `CR3`).
    Host,
}

/// A table flavor, chosen by type: [`Nested`] or [`Host`].
pub trait Flavor: Copy + Eq + core::fmt::Debug + 'static {
    /// The addresses this flavor translates.
    type Addr: InputAddr;
    /// Which flavor this is.
    const KIND: FlavorKind;
}

/// Nested page tables: guest-physical to host-physical. Every entry, leaf or
/// not, has the U bit set, and translations report [`Perms::USER`].
///
/// [`Perms::USER`]: crate::Perms::USER
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Nested {}

/// The host's page tables: host-virtual to host-physical. Leaves have U only
/// when [`Perms::USER`] is asked for. Addresses in the upper canonical half
/// (`0xffff_8000_0000_0000..`) are supported.
///
/// [`Perms::USER`]: crate::Perms::USER
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Host {}

impl Flavor for Nested {
    type Addr = GuestPhysAddr;
    const KIND: FlavorKind = FlavorKind::Nested;
}

impl Flavor for Host {
    type Addr = HostVirtAddr;
    const KIND: FlavorKind = FlavorKind::Host;
}
