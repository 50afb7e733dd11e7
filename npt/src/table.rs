//! [`PageTable`]: the operations on one 4-level table.

use core::fmt;
use core::marker::PhantomData;

use crate::addr::InputAddr;
use crate::entry::LEVELS;
use crate::walk::{self, Op, Reserve, Walk, PHYS_LIMIT};
use crate::{
    Flavor, FlavorKind, FrameSource, Host, HostPhysAddr, Nested, NptError, PageSize, Perms, TableMemory, TlbFlush,
};

/// Where the 48-bit space of a 4-level walk ends.
const LINEAR_LIMIT: u64 = 1 << 48;
/// The first address of the upper canonical half.
const UPPER_HALF: u64 = 0xffff_8000_0000_0000;

/// A 4-level page table of flavor `F`, owning its table frames.
///
/// The frames live in memory reached through the backend passed to each
/// call; the table only remembers its root. Dropping a table without
/// [`PageTable::destroy`] leaks its frames.
pub struct PageTable<F: Flavor> {
    root: TableRoot,
    max_page: PageSize,
    flavor: PhantomData<F>,
}

/// The root frame (PML4) of a [`PageTable`], as the table holds it.
///
/// Only this crate makes one, from a frame it got for a new table, and the
/// table keeps it: it cannot be made up from an address, copied or cloned,
/// and code outside reaches it only borrowed from a live table
/// ([`PageTable::root`]). So a value for `nCR3` or `CR3` that comes from a
/// `TableRoot` names a table this crate built.
#[derive(Debug, PartialEq, Eq)]
pub struct TableRoot(HostPhysAddr);

impl TableRoot {
    /// The root frame's host-physical address.
    pub fn addr(&self) -> HostPhysAddr {
        self.0
    }
}

/// Guest-physical to host-physical: the table `nCR3` points to.
pub type NestedPageTable = PageTable<Nested>;

/// Host-virtual to host-physical: the table the host's `CR3` points to.
pub type HostPageTable = PageTable<Host>;

impl<F: Flavor> fmt::Debug for PageTable<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageTable")
            .field("flavor", &F::KIND)
            .field("root", &self.root.0)
            .field("max_page", &self.max_page)
            .finish()
    }
}

impl<F: Flavor> PageTable<F> {
    /// An empty table that may use every page size up to 1 GiB.
    pub fn new<B: FrameSource + TableMemory>(mem: &mut B) -> Result<Self, NptError> {
        Self::with_max_page_size(mem, PageSize::Size1G)
    }

    /// An empty table whose leaves are at most `max_page`. Use
    /// [`PageSize::Size2M`] where the CPU lacks 1 GiB pages (QEMU's
    /// `qemu64` model, for one).
    pub fn with_max_page_size<B: FrameSource + TableMemory>(mem: &mut B, max_page: PageSize) -> Result<Self, NptError> {
        let root = match mem.alloc_table() {
            Some(frame) if walk::frame_ok(frame) => frame,
            Some(frame) => {
                mem.free_table(frame);
                return Err(NptError::BadFrame);
            }
            None => return Err(NptError::OutOfFrames),
        };
        Ok(Self { root: TableRoot(root), max_page, flavor: PhantomData })
    }

    /// The root table (PML4): its address is the value for `nCR3` or `CR3`.
    pub fn root(&self) -> &TableRoot {
        &self.root
    }

    /// The largest page this table creates.
    pub fn max_page_size(&self) -> PageSize {
        self.max_page
    }

    /// Maps the page of `size` at `addr` to `hpa`.
    ///
    /// Errors, checked in this order: [`NptError::UnsupportedPageSize`],
    /// [`NptError::Misaligned`] (either address), [`NptError::AddressTooLarge`],
    /// [`NptError::InvalidPerms`], [`NptError::AlreadyMapped`] (any page of
    /// the range), [`NptError::OutOfFrames`]. Mapping into unmapped space
    /// leaves nothing stale, so the token is empty.
    pub fn map<B: FrameSource + TableMemory>(
        &mut self,
        mem: &mut B,
        addr: F::Addr,
        hpa: HostPhysAddr,
        size: PageSize,
        perms: Perms,
    ) -> Result<TlbFlush<F::Addr>, NptError> {
        let (start, end, perms) = self.check_map(addr, hpa, size, perms)?;
        self.check_coverage(mem, start, end, false)?;
        self.change(mem, start, end, Op::Map { start, hpa: hpa.0, perms })
    }

    /// Maps the page of `size` at `addr` to `hpa`, replacing whatever part
    /// of it was mapped before.
    ///
    /// Errors as [`PageTable::map`] has them, except `AlreadyMapped`. The
    /// token covers the old translations that changed.
    pub fn remap<B: FrameSource + TableMemory>(
        &mut self,
        mem: &mut B,
        addr: F::Addr,
        hpa: HostPhysAddr,
        size: PageSize,
        perms: Perms,
    ) -> Result<TlbFlush<F::Addr>, NptError> {
        let (start, end, perms) = self.check_map(addr, hpa, size, perms)?;
        self.change(mem, start, end, Op::Map { start, hpa: hpa.0, perms })
    }

    /// Unmaps the `size` bytes at `addr`, splitting a larger page that holds
    /// them. Table frames stay in the table until [`PageTable::destroy`].
    ///
    /// Errors, in order: [`NptError::Misaligned`], [`NptError::AddressTooLarge`],
    /// [`NptError::NotMapped`] (any page of the range), [`NptError::OutOfFrames`]
    /// (for a split).
    pub fn unmap<B: FrameSource + TableMemory>(
        &mut self,
        mem: &mut B,
        addr: F::Addr,
        size: PageSize,
    ) -> Result<TlbFlush<F::Addr>, NptError> {
        let (start, end) = self.check_range(addr.raw(), size.bytes(), size.bytes())?;
        self.check_coverage(mem, start, end, true)?;
        self.change(mem, start, end, Op::Unmap)
    }

    /// Sets the permissions of every page in the `size` bytes at `addr`,
    /// keeping their frames, and splitting a larger page that holds them.
    ///
    /// Errors, in order: [`NptError::Misaligned`], [`NptError::AddressTooLarge`],
    /// [`NptError::InvalidPerms`], [`NptError::NotMapped`] (any page of the
    /// range), [`NptError::OutOfFrames`] (for a split). The token is empty
    /// when rights were only added, with no split.
    pub fn protect<B: FrameSource + TableMemory>(
        &mut self,
        mem: &mut B,
        addr: F::Addr,
        size: PageSize,
        perms: Perms,
    ) -> Result<TlbFlush<F::Addr>, NptError> {
        let (start, end) = self.check_range(addr.raw(), size.bytes(), size.bytes())?;
        let perms = normalize::<F>(perms)?;
        self.check_coverage(mem, start, end, true)?;
        self.change(mem, start, end, Op::Protect { perms })
    }

    /// Maps `len` bytes at `addr` to `hpa..`, with the largest pages that
    /// alignment allows: 1 GiB where both addresses are 1 GiB aligned and a
    /// whole 1 GiB fits, else 2 MiB likewise, else 4 KiB. A zero `len` does
    /// nothing.
    ///
    /// Errors, in order: [`NptError::Misaligned`] (addresses or `len` not
    /// 4 KiB multiples), [`NptError::AddressTooLarge`], [`NptError::InvalidPerms`],
    /// [`NptError::AlreadyMapped`] (any page of the range), [`NptError::OutOfFrames`].
    pub fn map_range<B: FrameSource + TableMemory>(
        &mut self,
        mem: &mut B,
        addr: F::Addr,
        hpa: HostPhysAddr,
        len: u64,
        perms: Perms,
    ) -> Result<TlbFlush<F::Addr>, NptError> {
        if len == 0 {
            return Ok(TlbFlush::none());
        }
        let page = PageSize::Size4K.bytes();
        if !hpa.is_aligned(page) {
            return Err(NptError::Misaligned);
        }
        let (start, end) = self.check_range(addr.raw(), len, page)?;
        check_phys(hpa, len)?;
        let perms = normalize::<F>(perms)?;
        self.check_coverage(mem, start, end, false)?;
        self.change(mem, start, end, Op::Map { start, hpa: hpa.0, perms })
    }

    /// The host-physical address `addr` translates to, the permissions of
    /// its page and the page's size; `None` if unmapped or out of range.
    pub fn translate<M: TableMemory>(&self, mem: &M, addr: F::Addr) -> Option<(HostPhysAddr, Perms, PageSize)> {
        let (linear, _) = self.check_range(addr.raw(), 1, 1).ok()?;
        let (hpa, perms, level) = walk::lookup(mem, self.root.0, linear)?;
        let size = PageSize::of_level(level);
        Some((HostPhysAddr(hpa + (linear & (size.bytes() - 1))), perms, size))
    }

    /// Calls `visit(addr, hpa, size, perms)` for every page the table maps,
    /// in address order (the upper canonical half last).
    pub fn for_each_mapping<M: TableMemory>(
        &self,
        mem: &M,
        mut visit: impl FnMut(F::Addr, HostPhysAddr, PageSize, Perms),
    ) {
        walk::for_each_leaf(mem, self.root.0, LEVELS, 0, &mut |linear, hpa, level, perms| {
            visit(F::Addr::from_raw(from_linear::<F>(linear)), HostPhysAddr(hpa), PageSize::of_level(level), perms)
        });
    }

    /// How many table frames the table holds, the root included.
    pub fn table_count<M: TableMemory>(&self, mem: &M) -> usize {
        let mut count = 0;
        walk::for_each_table(mem, self.root.0, LEVELS, &mut |_| count += 1);
        count
    }

    /// Frees every table frame. No CPU may use the table any more (for
    /// nested tables: no VMCB names it as `nCR3` when it next runs); the
    /// token asks to flush the whole address space before its ASID (or
    /// PCID) is used again.
    pub fn destroy<B: FrameSource + TableMemory>(self, mem: &mut B) -> TlbFlush<F::Addr> {
        walk::free_tables(mem, self.root.0, LEVELS);
        TlbFlush::all()
    }

    /// Checks the arguments of `map` and `remap`.
    fn check_map(
        &self,
        addr: F::Addr,
        hpa: HostPhysAddr,
        size: PageSize,
        perms: Perms,
    ) -> Result<(u64, u64, Perms), NptError> {
        if size > self.max_page {
            return Err(NptError::UnsupportedPageSize);
        }
        let bytes = size.bytes();
        if !hpa.is_aligned(bytes) {
            return Err(NptError::Misaligned);
        }
        let (start, end) = self.check_range(addr.raw(), bytes, bytes)?;
        check_phys(hpa, bytes)?;
        Ok((start, end, normalize::<F>(perms)?))
    }

    /// Checks that `raw..raw + len` (`len` > 0) is `align`-aligned and lies
    /// in the flavor's space; returns it in the 48-bit linear space of the
    /// walk.
    fn check_range(&self, raw: u64, len: u64, align: u64) -> Result<(u64, u64), NptError> {
        if !raw.is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(NptError::Misaligned);
        }
        let last = raw.checked_add(len - 1).ok_or(NptError::AddressTooLarge)?;
        let inside = match F::KIND {
            FlavorKind::Nested => last < LINEAR_LIMIT,
            FlavorKind::Host => last < LINEAR_LIMIT / 2 || raw >= UPPER_HALF,
        };
        if !inside {
            return Err(NptError::AddressTooLarge);
        }
        let start = raw & (LINEAR_LIMIT - 1);
        Ok((start, start + len))
    }

    /// Fails with `NotMapped` if `must_be_mapped` and a page of the range is
    /// unmapped, or with `AlreadyMapped` if not and a page is mapped.
    fn check_coverage<M: TableMemory>(
        &self,
        mem: &M,
        start: u64,
        end: u64,
        must_be_mapped: bool,
    ) -> Result<(), NptError> {
        let seen = walk::coverage(mem, self.root.0, LEVELS, start, end);
        match (must_be_mapped, seen.all, seen.any) {
            (true, false, _) => Err(NptError::NotMapped),
            (false, _, true) => Err(NptError::AlreadyMapped),
            _ => Ok(()),
        }
    }

    /// Reserves the frames `op` needs, then applies it.
    fn change<B: FrameSource + TableMemory>(
        &mut self,
        mem: &mut B,
        start: u64,
        end: u64,
        op: Op,
    ) -> Result<TlbFlush<F::Addr>, NptError> {
        let mut dry = Walk::dry(mem, self.max_page);
        dry.run(self.root.0, start, end, op);
        let needed = dry.tables_needed;
        let reserve = Reserve::take_from(mem, needed)?;
        let mut real = Walk::real(mem, self.max_page, reserve);
        real.run(self.root.0, start, end, op);
        Ok(match real.finish() {
            None => TlbFlush::none(),
            Some((first, last)) => TlbFlush::range(F::Addr::from_raw(from_linear::<F>(first)), last - first + 1),
        })
    }
}

/// Checks that `hpa..hpa + len` lies below the 52-bit physical limit.
fn check_phys(hpa: HostPhysAddr, len: u64) -> Result<(), NptError> {
    match hpa.0.checked_add(len) {
        Some(end) if end <= PHYS_LIMIT => Ok(()),
        _ => Err(NptError::AddressTooLarge),
    }
}

/// Checks `perms` and adds what the flavor implies.
fn normalize<F: Flavor>(perms: Perms) -> Result<Perms, NptError> {
    if !perms.contains(Perms::READ) || Perms::from_bits(perms.bits()).is_none() {
        return Err(NptError::InvalidPerms);
    }
    Ok(match F::KIND {
        FlavorKind::Nested => perms | Perms::USER,
        FlavorKind::Host => perms,
    })
}

/// The address of the flavor's space at `linear` in the walk's 48-bit space.
fn from_linear<F: Flavor>(linear: u64) -> u64 {
    match F::KIND {
        FlavorKind::Host if linear >= LINEAR_LIMIT / 2 => linear | UPPER_HALF,
        _ => linear,
    }
}
