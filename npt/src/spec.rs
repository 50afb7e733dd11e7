//! The executable specification of a page table.
//!
//! The abstract state is a map from each mapped 4 KiB page (its address in
//! the flavor's space) to its host-physical frame and permissions. Page
//! sizes, tables and frames do not appear: an implementation refines this
//! spec if, after every operation, expanding its leaves to 4 KiB pages gives
//! this map, and both return the same results.
//!
//! The spec has no frames, so it never fails with `OutOfFrames`; an
//! implementation may, but then must leave the state unchanged, and only
//! where the spec succeeds.
//!
//! Written for clarity, not speed: a 1 GiB operation touches 262,144 pages.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use crate::addr::InputAddr;
use crate::{Flavor, FlavorKind, HostPhysAddr, NptError, PageSize, Perms};

const PAGE: u64 = 4096;

/// The pages whose old translations a TLB may still hold: the lowest and
/// highest such page address. A flush must cover both, and so all between.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Stale {
    /// The lowest stale page.
    pub first_page: u64,
    /// The highest stale page.
    pub last_page: u64,
}

/// The abstract page table of flavor `F`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Spec<F: Flavor> {
    pages: BTreeMap<u64, (u64, Perms)>,
    max_page: PageSize,
    flavor: PhantomData<F>,
}

/// The spec of a nested page table.
pub type NptSpec = Spec<crate::Nested>;

/// The result of a changing operation: stale pages, if any, or the error.
pub type SpecResult = Result<Option<Stale>, NptError>;

impl<F: Flavor> Default for Spec<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Flavor> Spec<F> {
    /// No mappings; pages up to 1 GiB allowed.
    pub fn new() -> Self {
        Self::with_max_page_size(PageSize::Size1G)
    }

    /// No mappings; `map` and `remap` refuse pages above `max_page`.
    pub fn with_max_page_size(max_page: PageSize) -> Self {
        Spec { pages: BTreeMap::new(), max_page, flavor: PhantomData }
    }

    /// The abstract state: page address to (frame, permissions).
    pub fn pages(&self) -> &BTreeMap<u64, (u64, Perms)> {
        &self.pages
    }

    /// The frame and permissions of the page holding `addr`, with `addr`'s
    /// offset added to the frame.
    pub fn translate(&self, addr: F::Addr) -> Option<(HostPhysAddr, Perms)> {
        let raw = addr.raw();
        let (hpa, perms) = self.pages.get(&(raw & !(PAGE - 1)))?;
        Some((HostPhysAddr(hpa + raw % PAGE), *perms))
    }

    /// Maps the page of `size` at `addr` to `hpa`, if none of it is mapped.
    pub fn map(&mut self, addr: F::Addr, hpa: HostPhysAddr, size: PageSize, perms: Perms) -> SpecResult {
        let perms = self.check_page_map(addr, hpa, size, perms)?;
        let (start, len) = (addr.raw(), size.bytes());
        if self.count_mapped(start, len) > 0 {
            return Err(NptError::AlreadyMapped);
        }
        Ok(self.set_range(start, len, |k, _| Some((hpa.0 + k * PAGE, perms))))
    }

    /// Maps the page of `size` at `addr` to `hpa`, whatever was there.
    pub fn remap(&mut self, addr: F::Addr, hpa: HostPhysAddr, size: PageSize, perms: Perms) -> SpecResult {
        let perms = self.check_page_map(addr, hpa, size, perms)?;
        Ok(self.set_range(addr.raw(), size.bytes(), |k, _| Some((hpa.0 + k * PAGE, perms))))
    }

    /// Unmaps the page of `size` at `addr`, all of which must be mapped.
    pub fn unmap(&mut self, addr: F::Addr, size: PageSize) -> SpecResult {
        let (start, len) = (addr.raw(), size.bytes());
        check_input::<F>(start, len, len)?;
        if self.count_mapped(start, len) != len / PAGE {
            return Err(NptError::NotMapped);
        }
        Ok(self.set_range(start, len, |_, _| None))
    }

    /// Gives every page of the `size` bytes at `addr`, all of which must be
    /// mapped, the permissions `perms`.
    pub fn protect(&mut self, addr: F::Addr, size: PageSize, perms: Perms) -> SpecResult {
        let (start, len) = (addr.raw(), size.bytes());
        check_input::<F>(start, len, len)?;
        let perms = check_perms::<F>(perms)?;
        if self.count_mapped(start, len) != len / PAGE {
            return Err(NptError::NotMapped);
        }
        Ok(self.set_range(start, len, |_, old| old.map(|(hpa, _)| (hpa, perms))))
    }

    /// Maps `len` bytes at `addr` to `hpa..`, if none of them is mapped.
    pub fn map_range(&mut self, addr: F::Addr, hpa: HostPhysAddr, len: u64, perms: Perms) -> SpecResult {
        if len == 0 {
            return Ok(None);
        }
        let start = addr.raw();
        if !hpa.0.is_multiple_of(PAGE) {
            return Err(NptError::Misaligned);
        }
        check_input::<F>(start, len, PAGE)?;
        check_phys(hpa.0, len)?;
        let perms = check_perms::<F>(perms)?;
        if self.count_mapped(start, len) > 0 {
            return Err(NptError::AlreadyMapped);
        }
        Ok(self.set_range(start, len, |k, _| Some((hpa.0 + k * PAGE, perms))))
    }

    fn check_page_map(
        &self,
        addr: F::Addr,
        hpa: HostPhysAddr,
        size: PageSize,
        perms: Perms,
    ) -> Result<Perms, NptError> {
        if size > self.max_page {
            return Err(NptError::UnsupportedPageSize);
        }
        let len = size.bytes();
        if !hpa.0.is_multiple_of(len) {
            return Err(NptError::Misaligned);
        }
        check_input::<F>(addr.raw(), len, len)?;
        check_phys(hpa.0, len)?;
        check_perms::<F>(perms)
    }

    /// How many pages of `start..start + len` are mapped.
    fn count_mapped(&self, start: u64, len: u64) -> u64 {
        self.pages.range(start..=start + (len - 1)).count() as u64
    }

    /// Sets page `k` of the range to `new(k, old value)`, and reports the
    /// pages whose change needs a flush.
    fn set_range(
        &mut self,
        start: u64,
        len: u64,
        new: impl Fn(u64, Option<(u64, Perms)>) -> Option<(u64, Perms)>,
    ) -> Option<Stale> {
        let mut stale: Option<Stale> = None;
        for k in 0..len / PAGE {
            let page = start + k * PAGE;
            let old = self.pages.get(&page).copied();
            let value = new(k, old);
            match value {
                Some(v) => self.pages.insert(page, v),
                None => self.pages.remove(&page),
            };
            if let Some(old) = old {
                if flush_needed(old, value) {
                    stale = Some(match stale {
                        None => Stale { first_page: page, last_page: page },
                        Some(s) => Stale { last_page: page, ..s },
                    });
                }
            }
        }
        stale
    }
}

/// A page that changes from `old` to `new` may be stale in a TLB unless it
/// keeps its frame and caching and loses no rights.
fn flush_needed(old: (u64, Perms), new: Option<(u64, Perms)>) -> bool {
    let Some((hpa, perms)) = new else { return true };
    let kept_rights = perms.rights() & old.1.rights() == old.1.rights();
    !(hpa == old.0 && kept_rights && perms.caching() == old.1.caching())
}

/// `start..start + len` must be `align`-aligned and translatable by `F`.
fn check_input<F: Flavor>(start: u64, len: u64, align: u64) -> Result<(), NptError> {
    if !start.is_multiple_of(align) || !len.is_multiple_of(align) {
        return Err(NptError::Misaligned);
    }
    let Some(last) = start.checked_add(len - 1) else {
        return Err(NptError::AddressTooLarge);
    };
    let ok = match F::KIND {
        // Guest-physical addresses: 48 bits.
        FlavorKind::Nested => last < 1 << 48,
        // Virtual addresses: all in the lower or all in the upper canonical half.
        FlavorKind::Host => last <= 0x0000_7fff_ffff_ffff || start >= 0xffff_8000_0000_0000,
    };
    if ok {
        Ok(())
    } else {
        Err(NptError::AddressTooLarge)
    }
}

/// `hpa..hpa + len` must end at or below 2^52.
fn check_phys(hpa: u64, len: u64) -> Result<(), NptError> {
    match hpa.checked_add(len) {
        Some(end) if end <= 1 << 52 => Ok(()),
        _ => Err(NptError::AddressTooLarge),
    }
}

/// `perms` must include READ and nothing unknown; nested mappings are
/// always user mappings.
fn check_perms<F: Flavor>(perms: Perms) -> Result<Perms, NptError> {
    if !perms.contains(Perms::READ) || perms.bits() & !Perms::all().bits() != 0 {
        return Err(NptError::InvalidPerms);
    }
    Ok(match F::KIND {
        FlavorKind::Nested => perms | Perms::USER,
        FlavorKind::Host => perms,
    })
}
