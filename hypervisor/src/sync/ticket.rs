//! The raw ticket lock.
//!
//! Two counters: `next` (the next ticket to hand out) and `now` (the ticket
//! being served). To acquire, take `t = next++` and wait until `now == t`;
//! to release, set `now = t + 1`. Both counters wrap at 2^32. The wait
//! compares with `!=`, never `<=`: after a wrap a later ticket is
//! numerically smaller, and an ordered comparison would let it in early.
//! Up to 2^32 - 1 parties can hold or wait for tickets at once.
use super::atomics::{Atomics, CoreAtomics};
use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

/// A ticket taken from one [`TicketLock`]. It is not `Clone`: whoever holds
/// it is the one party entitled to enter when its turn comes, and
/// [`TicketLock::release`] consumes it.
#[must_use = "a ticket that is dropped unreleased blocks every later ticket"]
#[derive(Debug, PartialEq, Eq)]
pub struct Ticket {
    value: u32,
    /// Address of the lock that issued it, so that it cannot release another.
    lock: usize,
}

impl Ticket {
    /// The ticket's number.
    pub fn value(&self) -> u32 {
        self.value
    }
}

/// [`TicketLock::release`] was called with a ticket that is not being
/// served (or that another lock issued). The ticket is handed back.
#[derive(Debug, PartialEq, Eq)]
pub struct NotHolder(pub Ticket);

impl fmt::Display for NotHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ticket {} does not hold the lock", self.0.value)
    }
}

/// A FIFO spin lock without data; see the module documentation.
pub struct TicketLock<A: Atomics = CoreAtomics> {
    next: A::U32,
    now: A::U32,
}

impl TicketLock<CoreAtomics> {
    /// An unlocked lock, usable in a `static`.
    pub const fn new() -> Self {
        TicketLock { next: AtomicU32::new(0), now: AtomicU32::new(0) }
    }
}

impl Default for TicketLock<CoreAtomics> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A: Atomics> fmt::Debug for TicketLock<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (next, now) = self.counters();
        f.debug_struct("TicketLock").field("next", &next).field("now", &now).finish()
    }
}

impl<A: Atomics> TicketLock<A> {
    /// An unlocked lock on the atomics `A`.
    pub fn with_atomics() -> Self {
        Self::counters_at(0)
    }

    /// An unlocked lock whose counters both start at `start`. Only tests use
    /// this, to start next to the wrap point.
    #[cfg(test)]
    pub(crate) fn starting_at(start: u32) -> Self {
        Self::counters_at(start)
    }

    fn counters_at(start: u32) -> Self {
        TicketLock { next: A::new_u32(start), now: A::new_u32(start) }
    }

    fn id(&self) -> usize {
        self as *const Self as usize
    }

    /// Joins the queue: returns the next ticket (fetch-and-increment).
    pub fn take_ticket(&self) -> Ticket {
        // Relaxed: the ticket only fixes the order; the synchronisation with
        // the previous holder happens on `now` (Acquire in `is_turn`).
        let value = A::fetch_add(&self.next, 1, Ordering::Relaxed);
        Ticket { value, lock: self.id() }
    }

    /// Whether `ticket` is being served, i.e. its holder owns the lock.
    /// Acquire: pairs with the Release in [`Self::release`], so the new holder
    /// sees everything the previous one wrote.
    pub fn is_turn(&self, ticket: &Ticket) -> bool {
        ticket.lock == self.id() && A::load(&self.now, Ordering::Acquire) == ticket.value
    }

    /// Spins until `ticket` is served. The wait is `now != ticket`, which
    /// stays correct when the counters wrap.
    pub fn wait_turn(&self, ticket: &Ticket) {
        while !self.is_turn(ticket) {
            A::spin_hint();
        }
    }

    /// Takes a ticket and waits for it: the lock is held on return.
    pub fn acquire(&self) -> Ticket {
        let ticket = self.take_ticket();
        self.wait_turn(&ticket);
        ticket
    }

    /// Takes the lock if nobody holds it or waits for it; never spins.
    pub fn try_acquire(&self) -> Option<Ticket> {
        let now = A::load(&self.now, Ordering::Acquire);
        // The lock is free exactly when no ticket is outstanding: next == now.
        A::compare_exchange(&self.next, now, now.wrapping_add(1), Ordering::Relaxed, Ordering::Relaxed)
            .ok()
            .map(|value| Ticket { value, lock: self.id() })
    }

    /// Gives the lock to the next ticket. Fails, handing the ticket back, if
    /// `ticket` is not the one being served.
    pub fn release(&self, ticket: Ticket) -> Result<(), NotHolder> {
        if ticket.lock != self.id() || A::load(&self.now, Ordering::Relaxed) != ticket.value {
            return Err(NotHolder(ticket));
        }
        // Only the holder writes `now`, so a plain store suffices. Release:
        // publishes the critical section to the next holder.
        A::store(&self.now, ticket.value.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    /// `(next, now)`: tickets handed out and the ticket being served. For
    /// tests and diagnostics; racy when others use the lock.
    pub fn counters(&self) -> (u32, u32) {
        (A::load(&self.next, Ordering::Relaxed), A::load(&self.now, Ordering::Relaxed))
    }

    /// Parties that hold or wait for the lock (racy, for diagnostics).
    pub fn queued(&self) -> u32 {
        let (next, now) = self.counters();
        next.wrapping_sub(now)
    }
}
