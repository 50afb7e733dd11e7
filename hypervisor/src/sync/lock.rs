//! `Lock<T>`: a ticket lock that owns the data it protects.
use super::atomics::{Atomics, CoreAtomics};
use super::ticket::{Ticket, TicketLock};
use core::fmt;
use core::ops::{Deref, DerefMut};

/// A value protected by a [`TicketLock`].
///
/// The ticket lock decides who may enter and in which order. The value
/// itself sits in a `spin::Mutex`, which is only a safe data cell here: it
/// is taken only by the ticket holder, so it is never contended and its
/// `try_lock` always succeeds. (This keeps the sync layer free of `unsafe`;
/// the cell's own Acquire/Release orderings are redundant with the ticket
/// lock's.) If the ticket lock ever let two parties in, the second would
/// find the cell taken and wait on it instead of racing on the data.
pub struct Lock<T, A: Atomics = CoreAtomics> {
    ticket: TicketLock<A>,
    data: spin::Mutex<T>,
}

impl<T> Lock<T, CoreAtomics> {
    /// A lock around `value`, usable in a `static`.
    pub const fn new(value: T) -> Self {
        Lock { ticket: TicketLock::new(), data: spin::Mutex::new(value) }
    }
}

impl<T, A: Atomics> Lock<T, A> {
    /// A lock around `value` on the atomics `A`.
    pub fn with_atomics(value: T) -> Self {
        Lock { ticket: TicketLock::with_atomics(), data: spin::Mutex::new(value) }
    }

    /// A lock whose ticket counters start at `start`; only for tests that
    /// exercise the wrap of the counters.
    #[cfg(test)]
    pub(crate) fn starting_at(value: T, start: u32) -> Self {
        Lock { ticket: TicketLock::starting_at(start), data: spin::Mutex::new(value) }
    }

    /// Waits for the lock in FIFO order and returns a guard that releases it.
    pub fn lock(&self) -> LockGuard<'_, T, A> {
        let ticket = self.ticket.acquire();
        self.enter(ticket)
    }

    /// Takes the lock only if it is free right now.
    pub fn try_lock(&self) -> Option<LockGuard<'_, T, A>> {
        let ticket = self.ticket.try_acquire()?;
        Some(self.enter(ticket))
    }

    /// The value, through exclusive access to the lock itself.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// The underlying ticket lock (for diagnostics and tests).
    pub fn raw(&self) -> &TicketLock<A> {
        &self.ticket
    }

    fn enter(&self, ticket: Ticket) -> LockGuard<'_, T, A> {
        // We hold the ticket, so nobody else holds the cell: try_lock
        // succeeds. Falling back to a spinning lock keeps this panic-free.
        let data = match self.data.try_lock() {
            Some(guard) => guard,
            None => self.data.lock(),
        };
        LockGuard { data, _release: Release { lock: &self.ticket, ticket: Some(ticket) } }
    }
}

impl<T: Default> Default for Lock<T, CoreAtomics> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T, A: Atomics> fmt::Debug for Lock<T, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock").field("ticket", &self.ticket).finish_non_exhaustive()
    }
}

/// Exclusive access to the value of a [`Lock`]; dropping it releases the
/// lock to the next ticket.
#[must_use = "the lock is released as soon as the guard is dropped"]
#[clippy::has_significant_drop]
pub struct LockGuard<'a, T, A: Atomics = CoreAtomics> {
    // Field order matters: fields drop in declaration order, so the data
    // cell is given back before the ticket is released.
    data: spin::MutexGuard<'a, T>,
    _release: Release<'a, A>,
}

/// Releases the ticket when dropped (the last thing a guard does).
struct Release<'a, A: Atomics> {
    lock: &'a TicketLock<A>,
    ticket: Option<Ticket>,
}

impl<A: Atomics> Drop for Release<'_, A> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            // Cannot fail: the guard's ticket is the one being served.
            let _ = self.lock.release(ticket);
        }
    }
}

impl<T, A: Atomics> LockGuard<'_, T, A> {
    /// The number of the ticket this guard holds the lock with. Tickets are
    /// served in the order they were taken, so this orders critical sections.
    pub fn ticket(&self) -> u32 {
        self._release.ticket.as_ref().map_or(0, Ticket::value)
    }
}

impl<T, A: Atomics> Deref for LockGuard<'_, T, A> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.data
    }
}

impl<T, A: Atomics> DerefMut for LockGuard<'_, T, A> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.data
    }
}

impl<T: fmt::Debug, A: Atomics> fmt::Debug for LockGuard<'_, T, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.data, f)
    }
}
