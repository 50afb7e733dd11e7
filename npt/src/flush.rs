//! TLB flush tokens.
//!
//! An operation that may leave stale translations in some CPU's TLB returns
//! a [`TlbFlush`]. It is `#[must_use]`, so dropping it unread is a warning,
//! and an error in crates with `#![deny(unused_must_use)]`. Consume it with
//! [`TlbFlush::apply`], [`TlbFlush::into_scope`] or [`TlbFlush::merge`].

use crate::addr::{GuestPhysAddr, InputAddr};

/// What has to be invalidated.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum FlushScope<A> {
    /// Every translation of `start..start + len`. Invalidating any one
    /// address of a large page drops that page's whole TLB entry, so a range
    /// flush may be done page by page (`INVLPGA`) or widened to `All`.
    Range {
        /// First address.
        start: A,
        /// Length in bytes.
        len: u64,
    },
    /// Every translation of the address space (for nested tables: the ASID,
    /// by TLB_CONTROL or a new ASID).
    All,
}

/// The TLB invalidation still owed after a page-table change.
///
/// Until it has been applied, and on every CPU that may hold translations
/// of this table, guest accesses may still use the old mappings.
#[must_use = "stale TLB entries stay until this flush is applied: call .apply(), .into_scope() or .merge()"]
#[derive(PartialEq, Eq, Debug)]
pub struct TlbFlush<A = GuestPhysAddr> {
    scope: Option<FlushScope<A>>,
}

impl<A: InputAddr> TlbFlush<A> {
    /// Nothing to flush.
    pub const fn none() -> Self {
        Self { scope: None }
    }

    /// Flush `start..start + len`.
    pub(crate) const fn range(start: A, len: u64) -> Self {
        Self { scope: Some(FlushScope::Range { start, len }) }
    }

    /// Flush everything.
    pub(crate) const fn all() -> Self {
        Self { scope: Some(FlushScope::All) }
    }

    /// Whether nothing needs flushing.
    pub fn is_none(&self) -> bool {
        self.scope.is_none()
    }

    /// What needs flushing, without consuming the token.
    pub fn scope(&self) -> Option<FlushScope<A>> {
        self.scope
    }

    /// Whether applying this flush invalidates the translation of `addr`.
    pub fn covers(&self, addr: A) -> bool {
        match self.scope {
            None => false,
            Some(FlushScope::All) => true,
            Some(FlushScope::Range { start, len }) => addr.raw() >= start.raw() && addr.raw() - start.raw() < len,
        }
    }

    /// One token owing both flushes: two ranges become the smallest range
    /// holding both.
    pub fn merge(self, other: Self) -> Self {
        let scope = match (self.scope, other.scope) {
            (None, s) | (s, None) => s,
            (Some(FlushScope::All), _) | (_, Some(FlushScope::All)) => Some(FlushScope::All),
            (Some(FlushScope::Range { start: a, len: la }), Some(FlushScope::Range { start: b, len: lb })) => {
                let start = a.raw().min(b.raw());
                // The last byte, not the end: a range may end at 2^64.
                let last = (a.raw() + (la - 1)).max(b.raw() + (lb - 1));
                Some(FlushScope::Range { start: A::from_raw(start), len: last - start + 1 })
            }
        };
        Self { scope }
    }

    /// Calls `flush` with what needs flushing, if anything does.
    pub fn apply(self, flush: impl FnOnce(FlushScope<A>)) {
        if let Some(scope) = self.scope {
            flush(scope);
        }
    }

    /// What needs flushing; the caller now owes it.
    pub fn into_scope(self) -> Option<FlushScope<A>> {
        self.scope
    }
}
