//! `RwLock<T>`: many readers or one writer, writers first.
//!
//! The raw lock, [`RwTicket`], is a ticket lock among writers plus one word
//! `state`: the number of readers inside, and a bit [`CLOSED`] that the
//! writer whose turn has come sets to keep new readers out. A reader enters
//! with one compare-and-swap that adds 1 to a word without [`CLOSED`]; a
//! writer takes its ticket, waits for its turn, closes the door, waits
//! until the readers inside have left, and is then alone. So a writer
//! waits for the readers already inside, never for readers that come after
//! it (writers first: a stream of readers cannot starve it), and writers
//! enter in ticket order.
//!
//! The steps are separate calls (`try_read`, `take_write_ticket`,
//! `try_enter_write`, ...) so that the refinement test can drive them one
//! at a time against the spec (`spec::RwSpec`); [`RwLock`] is the blocking
//! lock built on them, and the loom model checks (`loom_tests.rs`) run it.
//! [`RwLock::write_nudging`] calls a function once after it has closed the
//! door: the syscall layer uses it to make the CPUs whose readers sit in a
//! guest leave it (the TLB shootdown, docs/layers.md).
use super::atomics::{Atomics, CoreAtomics};
use super::ticket::{Ticket, TicketLock};
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, Ordering};

/// The bit of `state` that keeps new readers out.
pub const CLOSED: u32 = 1 << 31;

/// The raw lock: see the module documentation.
pub struct RwTicket<A: Atomics = CoreAtomics> {
    writers: TicketLock<A>,
    state: A::U32,
}

impl RwTicket<CoreAtomics> {
    pub const fn new() -> Self {
        RwTicket { writers: TicketLock::new(), state: AtomicU32::new(0) }
    }
}

impl Default for RwTicket<CoreAtomics> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A: Atomics> RwTicket<A> {
    pub fn with_atomics() -> Self {
        RwTicket { writers: TicketLock::with_atomics(), state: A::new_u32(0) }
    }

    /// Enters as a reader if no writer has closed the door. (A race with
    /// another reader, which moves the count, is retried: only a closed
    /// door refuses.)
    pub fn try_read(&self) -> bool {
        loop {
            let s = A::load(&self.state, Ordering::Relaxed);
            if s & CLOSED != 0 {
                return false;
            }
            if A::compare_exchange(&self.state, s, s + 1, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                return true;
            }
        }
    }

    /// A reader leaves.
    pub fn read_release(&self) {
        A::fetch_add(&self.state, u32::MAX, Ordering::Release);
    }

    /// A writer queues for its turn.
    pub fn take_write_ticket(&self) -> Ticket {
        self.writers.take_ticket()
    }

    /// The writer holding `t`: if its turn has come, closes the door (once)
    /// and says whether the readers have all left (then it is alone).
    pub fn try_enter_write(&self, t: &Ticket) -> bool {
        if !self.writers.is_turn(t) {
            return false;
        }
        let mut s = A::load(&self.state, Ordering::Acquire);
        while s & CLOSED == 0 {
            match A::compare_exchange(&self.state, s, s | CLOSED, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => s |= CLOSED,
                Err(now) => s = now,
            }
        }
        s == CLOSED
    }

    /// The writer holding `t` (which entered) leaves: the door opens and
    /// the next writer's turn comes. A ticket whose turn has not come is
    /// handed back.
    pub fn write_release(&self, t: Ticket) -> Result<(), Ticket> {
        if !self.writers.is_turn(&t) {
            return Err(t);
        }
        let mut s = A::load(&self.state, Ordering::Relaxed);
        while s & CLOSED != 0 {
            match A::compare_exchange(&self.state, s, s & !CLOSED, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        self.writers.release(t).map_err(|e| e.0)
    }

    /// (readers inside, door closed), for tests.
    #[cfg(test)]
    pub(crate) fn state(&self) -> (u32, bool) {
        let s = A::load(&self.state, Ordering::SeqCst);
        (s & !CLOSED, s & CLOSED != 0)
    }

    /// The writer ticket lock, for tests.
    #[cfg(test)]
    pub(crate) fn writers(&self) -> &TicketLock<A> {
        &self.writers
    }
}

/// A value that many readers or one writer use at a time.
///
/// As in [`super::Lock`], the value sits in a safe data cell
/// (`spin::RwLock`) that only parties the raw lock let in take, so it is
/// never contended.
pub struct RwLock<T, A: Atomics = CoreAtomics> {
    raw: RwTicket<A>,
    data: spin::RwLock<T>,
}

impl<T> RwLock<T, CoreAtomics> {
    /// A lock around `value`, usable in a `static`.
    pub const fn new(value: T) -> Self {
        RwLock { raw: RwTicket::new(), data: spin::RwLock::new(value) }
    }
}

impl<T, A: Atomics> RwLock<T, A> {
    pub fn with_atomics(value: T) -> Self {
        RwLock { raw: RwTicket::with_atomics(), data: spin::RwLock::new(value) }
    }

    /// Waits until no writer has closed the door, then reads.
    pub fn read(&self) -> ReadGuard<'_, T, A> {
        while !self.raw.try_read() {
            A::spin_hint();
        }
        self.enter_read()
    }

    /// Reads if no writer has closed the door.
    pub fn try_read(&self) -> Option<ReadGuard<'_, T, A>> {
        self.raw.try_read().then(|| self.enter_read())
    }

    /// Waits for its turn among writers and for the readers inside to
    /// leave, then writes.
    pub fn write(&self) -> WriteGuard<'_, T, A> {
        self.write_nudging(|| {})
    }

    /// [`write`](Self::write), calling `nudge` once as soon as the door is
    /// closed (before waiting for the readers inside), so that the caller
    /// can make them hurry.
    pub fn write_nudging(&self, nudge: impl FnOnce()) -> WriteGuard<'_, T, A> {
        let t = self.raw.take_write_ticket();
        let mut nudge = Some(nudge);
        loop {
            let alone = self.raw.try_enter_write(&t);
            if self.raw.writers.is_turn(&t) {
                if let Some(f) = nudge.take() {
                    f();
                }
            }
            if alone {
                break;
            }
            A::spin_hint();
        }
        let data = match self.data.try_write() {
            Some(g) => g,
            None => self.data.write(),
        };
        WriteGuard { data, _release: WriteRelease { raw: &self.raw, ticket: Some(t) } }
    }

    /// The raw lock, for tests.
    #[cfg(test)]
    pub(crate) fn raw_for_tests(&self) -> &RwTicket<A> {
        &self.raw
    }

    fn enter_read(&self) -> ReadGuard<'_, T, A> {
        let data = match self.data.try_read() {
            Some(g) => g,
            None => self.data.read(),
        };
        ReadGuard { data, _release: ReadRelease { raw: &self.raw } }
    }
}

/// Shared access to the value of an [`RwLock`].
#[must_use = "the lock is released as soon as the guard is dropped"]
#[clippy::has_significant_drop]
pub struct ReadGuard<'a, T, A: Atomics = CoreAtomics> {
    // Fields drop in declaration order: the data cell is given back before
    // the raw lock is left.
    data: spin::RwLockReadGuard<'a, T>,
    _release: ReadRelease<'a, A>,
}

struct ReadRelease<'a, A: Atomics> {
    raw: &'a RwTicket<A>,
}

impl<A: Atomics> Drop for ReadRelease<'_, A> {
    fn drop(&mut self) {
        self.raw.read_release();
    }
}

impl<T, A: Atomics> Deref for ReadGuard<'_, T, A> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.data
    }
}

/// Exclusive access to the value of an [`RwLock`].
#[must_use = "the lock is released as soon as the guard is dropped"]
#[clippy::has_significant_drop]
pub struct WriteGuard<'a, T, A: Atomics = CoreAtomics> {
    // As in ReadGuard: the cell first, then the raw lock.
    data: spin::RwLockWriteGuard<'a, T>,
    _release: WriteRelease<'a, A>,
}

struct WriteRelease<'a, A: Atomics> {
    raw: &'a RwTicket<A>,
    ticket: Option<Ticket>,
}

impl<A: Atomics> Drop for WriteRelease<'_, A> {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            // Cannot fail: the guard's ticket is the one being served.
            let _ = self.raw.write_release(t);
        }
    }
}

impl<T, A: Atomics> Deref for WriteGuard<'_, T, A> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.data
    }
}

impl<T, A: Atomics> DerefMut for WriteGuard<'_, T, A> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.data
    }
}
