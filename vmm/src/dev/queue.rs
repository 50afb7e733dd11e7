//! A fixed-capacity byte FIFO without heap, for the UART's receive FIFO and
//! its output queue.

/// A ring of at most `N` bytes, oldest first.
#[derive(Clone, Debug)]
pub(crate) struct ByteQueue<const N: usize> {
    buf: [u8; N],
    head: usize,
    len: usize,
}

impl<const N: usize> ByteQueue<N> {
    pub(crate) const fn new() -> Self {
        Self { buf: [0; N], head: 0, len: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room left, in bytes.
    pub(crate) fn free(&self) -> usize {
        N - self.len
    }

    /// Appends `byte`; returns false (and drops nothing) if the ring is full.
    pub(crate) fn push(&mut self, byte: u8) -> bool {
        if self.len == N {
            return false;
        }
        self.buf[(self.head + self.len) % N] = byte;
        self.len += 1;
        true
    }

    /// Removes and returns the oldest byte.
    pub(crate) fn pop(&mut self) -> Option<u8> {
        if self.len == 0 {
            return None;
        }
        let byte = self.buf[self.head];
        self.head = (self.head + 1) % N;
        self.len -= 1;
        Some(byte)
    }

    pub(crate) fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keeps_order_across_wraparound_and_refuses_when_full() {
        let mut q = ByteQueue::<4>::new();
        for round in 0..5u8 {
            for i in 0..4 {
                assert!(q.push(round * 10 + i));
            }
            assert!(!q.push(99), "a full queue must refuse");
            assert_eq!(q.free(), 0);
            for i in 0..4 {
                assert_eq!(q.pop(), Some(round * 10 + i));
            }
            assert_eq!(q.pop(), None);
            assert!(q.push(1));
            assert_eq!(q.len(), 1);
            q.clear();
            assert!(q.is_empty());
        }
    }
}
