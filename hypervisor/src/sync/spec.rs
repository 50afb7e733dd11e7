//! Executable specification of a FIFO lock.
//!
//! The abstract lock is who holds it and the queue of parties waiting for
//! it. Taking a ticket joins the queue (or enters at once when the lock is
//! free and nobody waits); releasing hands the lock to the first waiter.
//! Only the holder may release. [`super::TicketLock`] refines this spec: its
//! holder is the party whose ticket equals `now`, its waiters are the other
//! outstanding tickets in wrapping order from `now`.
use std::collections::VecDeque;

/// A party (a CPU or a thread) that uses the lock.
pub type Party = usize;

/// Why a spec operation refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockSpecError {
    /// Release by a party that does not hold the lock.
    NotHolder,
}

/// The abstract state of a lock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockSpec {
    /// The party that owns the lock (its turn has come).
    pub holder: Option<Party>,
    /// Parties that took a ticket and wait, first come first served.
    pub waiters: VecDeque<Party>,
}

impl LockSpec {
    /// `p` takes a ticket: it is granted the lock at once when the lock is
    /// free, otherwise it queues behind the waiters.
    pub fn take_ticket(&mut self, p: Party) {
        if self.holder.is_none() {
            self.holder = Some(p);
        } else {
            self.waiters.push_back(p);
        }
    }

    /// `p` takes the lock only if it is free.
    pub fn try_acquire(&mut self, p: Party) -> bool {
        if self.holder.is_none() {
            self.holder = Some(p);
            true
        } else {
            false
        }
    }

    /// Whether `p` holds the lock.
    pub fn is_turn(&self, p: Party) -> bool {
        self.holder == Some(p)
    }

    /// `p` releases the lock, which passes to the first waiter.
    pub fn release(&mut self, p: Party) -> Result<(), LockSpecError> {
        if self.holder != Some(p) {
            return Err(LockSpecError::NotHolder);
        }
        self.holder = self.waiters.pop_front();
        Ok(())
    }

    /// Whether `p` holds or waits for the lock.
    pub fn is_queued(&self, p: Party) -> bool {
        self.holder == Some(p) || self.waiters.contains(&p)
    }
}

/// Executable specification of a writers-first reader/writer lock
/// ([`super::RwTicket`]): the readers inside, the writers' FIFO queue
/// (a [`LockSpec`]: its holder is the writer whose turn it is), whether
/// that writer has closed the door to new readers, and the writer inside.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RwSpec {
    pub readers: std::collections::BTreeSet<Party>,
    pub writers: LockSpec,
    pub closed: bool,
    pub writing: Option<Party>,
}

impl RwSpec {
    /// `p` enters as a reader unless the door is closed.
    pub fn try_read(&mut self, p: Party) -> bool {
        if self.closed {
            return false;
        }
        self.readers.insert(p);
        true
    }

    /// Reader `p` leaves.
    pub fn read_release(&mut self, p: Party) -> Result<(), LockSpecError> {
        if self.readers.remove(&p) {
            Ok(())
        } else {
            Err(LockSpecError::NotHolder)
        }
    }

    /// Writer `p` queues.
    pub fn take_write_ticket(&mut self, p: Party) {
        self.writers.take_ticket(p);
    }

    /// Writer `p`, if its turn has come, closes the door; it is inside
    /// (true) once no reader is.
    pub fn try_enter_write(&mut self, p: Party) -> bool {
        if !self.writers.is_turn(p) {
            return false;
        }
        self.closed = true;
        if self.readers.is_empty() {
            self.writing = Some(p);
        }
        self.writing == Some(p)
    }

    /// Writer `p`, whose turn it is, leaves: the door opens, the next
    /// writer's turn comes.
    pub fn write_release(&mut self, p: Party) -> Result<(), LockSpecError> {
        self.writers.release(p)?;
        self.closed = false;
        self.writing = None;
        Ok(())
    }
}
