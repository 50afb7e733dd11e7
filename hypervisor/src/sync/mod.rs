//! sync: spin locks for the layers above.
//!
//! What this layer promises (see `spec` (host tests only)): a lock is held by at most one
//! party at a time, and parties that take a ticket enter in the order in
//! which they took it (FIFO), even across the 32-bit wrap of the counters.
//!
//! - [`TicketLock`] is the raw ticket lock: `take_ticket`, wait for
//!   `now == ticket`, `release`. All comparisons are equalities on wrapping
//!   counters, so a counter that wraps from `u32::MAX` to 0 keeps its order.
//! - [`Lock<T>`] protects a value: [`Lock::lock`] returns a `#[must_use]`
//!   [`LockGuard`] that releases the lock when dropped.
//!
//! Both are generic over [`Atomics`], a small abstraction of a 32-bit atomic
//! cell. The kernel uses [`CoreAtomics`] (`core::sync::atomic`); the loom
//! model checks in this module's tests instantiate the very same code with
//! loom's atomics, so the model-checked lock is the one the kernel runs.
//!
//! This layer relies only on the atomics of `core` and on `spin::Mutex` as a
//! safe data cell (see [`Lock`] for why that cell is never contended).
mod atomics;
mod lock;
mod rwlock;
#[cfg(test)]
pub mod spec;
mod ticket;

#[cfg(test)]
mod loom_tests;
#[cfg(test)]
mod rw_tests;
#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) use atomics::LoomAtomics;
pub use atomics::{Atomics, CoreAtomics};
pub use lock::{Lock, LockGuard};
pub use rwlock::{ReadGuard, RwLock, RwTicket, WriteGuard};
pub use ticket::{NotHolder, Ticket, TicketLock};
