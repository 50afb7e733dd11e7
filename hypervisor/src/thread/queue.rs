//! Intrusive doubly linked thread queues, after CertiKOS's `tdqueue`.
//!
//! The links live in per-thread arrays indexed by thread number (`prev`,
//! `next`), and each queue is a (head, tail) pair, so enqueue, dequeue and
//! remove are O(1) and need no memory beyond the fixed arrays. Each thread
//! also records which queue it is on, which makes the error paths checkable
//! in O(1): a thread is on at most one queue, and `remove` refuses a thread
//! that is not on the queue named.
//!
//! Spec (`super::spec::QueueSpec`, host tests only): one `VecDeque` per queue.

/// Links hold `index + 1`, so that 0 means "none" and an empty queue set
/// is all zeroes (a static of it lives in .bss, not in the image).
const NIL: u16 = 0;

fn link(t: usize) -> u16 {
    t as u16 + 1
}

fn index_of(l: u16) -> usize {
    l as usize - 1
}

/// Why a queue operation was refused. Nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// No queue with that number.
    BadQueue,
    /// No thread with that number.
    BadThread,
    /// `enqueue` of a thread that is already on a queue.
    AlreadyQueued,
    /// `remove` of a thread that is not on that queue.
    NotMember,
    /// `dequeue` from an empty queue.
    Empty,
}

/// `Q` queues over `T` threads.
pub struct QueueSet<const T: usize, const Q: usize> {
    prev: [u16; T],
    next: [u16; T],
    /// The queue each thread is on, or NIL.
    on: [u16; T],
    head: [u16; Q],
    tail: [u16; Q],
    len: [u16; Q],
}

impl<const T: usize, const Q: usize> Default for QueueSet<T, Q> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const T: usize, const Q: usize> QueueSet<T, Q> {
    /// All queues empty.
    pub const fn new() -> Self {
        assert!(T < u16::MAX as usize && Q < u16::MAX as usize);
        QueueSet { prev: [NIL; T], next: [NIL; T], on: [NIL; T], head: [NIL; Q], tail: [NIL; Q], len: [0; Q] }
    }

    fn check(&self, q: usize, t: Option<usize>) -> Result<(), QueueError> {
        if q >= Q {
            return Err(QueueError::BadQueue);
        }
        match t {
            Some(t) if t >= T => Err(QueueError::BadThread),
            _ => Ok(()),
        }
    }

    /// Appends `t` to queue `q`.
    pub fn enqueue(&mut self, q: usize, t: usize) -> Result<(), QueueError> {
        self.check(q, Some(t))?;
        if self.on[t] != NIL {
            return Err(QueueError::AlreadyQueued);
        }
        let tail = self.tail[q];
        self.prev[t] = tail;
        self.next[t] = NIL;
        if tail == NIL {
            self.head[q] = link(t);
        } else {
            self.next[index_of(tail)] = link(t);
        }
        self.tail[q] = link(t);
        self.on[t] = link(q);
        self.len[q] += 1;
        Ok(())
    }

    /// Takes the first thread off queue `q`.
    pub fn dequeue(&mut self, q: usize) -> Result<usize, QueueError> {
        self.check(q, None)?;
        let head = self.head[q];
        if head == NIL {
            return Err(QueueError::Empty);
        }
        let t = index_of(head);
        self.unlink(q, t);
        Ok(t)
    }

    /// Takes `t` off queue `q`, wherever it is in the queue.
    pub fn remove(&mut self, q: usize, t: usize) -> Result<(), QueueError> {
        self.check(q, Some(t))?;
        if self.on[t] != link(q) {
            return Err(QueueError::NotMember);
        }
        self.unlink(q, t);
        Ok(())
    }

    /// Unlinks member `t` of `q`.
    fn unlink(&mut self, q: usize, t: usize) {
        let (p, n) = (self.prev[t], self.next[t]);
        if p == NIL {
            self.head[q] = n;
        } else {
            self.next[index_of(p)] = n;
        }
        if n == NIL {
            self.tail[q] = p;
        } else {
            self.prev[index_of(n)] = p;
        }
        self.prev[t] = NIL;
        self.next[t] = NIL;
        self.on[t] = NIL;
        self.len[q] -= 1;
    }

    /// The queue `t` is on.
    pub fn queue_of(&self, t: usize) -> Option<usize> {
        self.on.get(t).filter(|&&q| q != NIL).map(|&q| index_of(q))
    }

    /// Threads on queue `q`, front to back (empty for a bad `q`).
    pub fn iter(&self, q: usize) -> impl Iterator<Item = usize> + '_ {
        let mut cur = self.head.get(q).copied().unwrap_or(NIL);
        core::iter::from_fn(move || {
            if cur == NIL {
                return None;
            }
            let t = index_of(cur);
            cur = self.next[t];
            Some(t)
        })
    }

    /// Length of queue `q` (0 for a bad `q`).
    pub fn len(&self, q: usize) -> usize {
        self.len.get(q).map_or(0, |&l| l as usize)
    }

    pub fn is_empty(&self, q: usize) -> bool {
        self.len(q) == 0
    }
}
