//! virtio-console (device ID 3, virtio 1.x §5.3): one port, no multiport,
//! no size; Linux shows it as /dev/hvc0.
//!
//! Queue 0 (receiveq) takes input: the bytes typed on the VM's console,
//! kept in a small buffer until the driver has a receive buffer for them.
//! Queue 1 (transmitq) gives output: a notification marks it, and the VM's
//! thread copies the chains to the same console mux as the UART's output
//! when it next pumps the console (right after the exit).
use super::device::VirtioDevice;
use super::queue::{QueueError, Virtqueue};
use crate::dev::queue::ByteQueue;
use guest_x86::mem::GuestMemory;

/// The console's device ID.
pub const DEVICE_ID: u32 = 3;
/// Entries in each queue.
pub const QUEUE_SIZE: u16 = 64;
/// The receive queue.
pub const RECEIVEQ: usize = 0;
/// The transmit queue.
pub const TRANSMITQ: usize = 1;
/// Bytes of input held.
pub const INPUT_BUFFER: usize = 128;

/// A virtio console. Output is not copied here: a notified transmit
/// queue is only marked, and [`Console::drain_output`] copies its chains
/// straight to the console mux when the VMM next pumps the console.
pub struct Console {
    input: ByteQueue<INPUT_BUFFER>,
    /// The driver notified the transmit queue since the last drain.
    output_pending: bool,
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl Console {
    pub const fn new() -> Self {
        Console { input: ByteQueue::new(), output_pending: false }
    }

    /// Takes a typed byte; false if the input buffer is full (the byte is
    /// the caller's to keep or drop).
    pub fn receive(&mut self, byte: u8) -> bool {
        self.input.push(byte)
    }

    /// Input bytes waiting for a receive buffer.
    pub fn input_len(&self) -> usize {
        self.input.len()
    }

    /// The driver has sent output not drained yet.
    pub fn has_output(&self) -> bool {
        self.output_pending
    }

    /// Hands every transmit chain's bytes to `sink`, oldest first, and
    /// gives the chains back.
    pub fn drain_output(
        &mut self,
        q: &mut Virtqueue,
        mem: &mut dyn GuestMemory,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<(), QueueError> {
        self.output_pending = false;
        while let Some(chain) = q.pop(mem)? {
            let mut buf = [0u8; 256];
            let mut offset = 0u64;
            loop {
                let n = chain.read_at(mem, offset, &mut buf).map_err(|_| QueueError::Device("transmit buffer"))?;
                if n == 0 {
                    break;
                }
                sink(&buf[..n]);
                offset += n as u64;
            }
            q.push_used(mem, chain.head, 0)?;
        }
        Ok(())
    }

    /// Moves waiting input into the driver's receive buffers.
    fn fill_receive(&mut self, q: &mut Virtqueue, mem: &mut dyn GuestMemory) -> Result<(), QueueError> {
        while !self.input.is_empty() {
            let Some(chain) = q.pop(mem)? else {
                return Ok(());
            };
            let mut buf = [0u8; INPUT_BUFFER];
            let n = (chain.writable_len() as usize).min(self.input.len());
            for b in &mut buf[..n] {
                *b = self.input.pop().unwrap_or(0);
            }
            let done = chain.write_at(mem, 0, &buf[..n]).map_err(|_| QueueError::Device("receive buffer"))?;
            q.push_used(mem, chain.head, done as u32)?;
        }
        Ok(())
    }
}

impl VirtioDevice for Console {
    fn device_id(&self) -> u32 {
        DEVICE_ID
    }

    fn kind(&self) -> &'static str {
        "virtio-console"
    }

    fn features(&self) -> u64 {
        0
    }

    fn queue_max_sizes(&self) -> &'static [u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }

    /// Without VIRTIO_CONSOLE_F_SIZE or _MULTIPORT the fields mean nothing:
    /// the space reads zero.
    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    /// Input already typed stays for the driver that comes next.
    fn reset(&mut self) {
        self.output_pending = false;
    }

    fn serve(&mut self, index: usize, queues: &mut [Virtqueue], mem: &mut dyn GuestMemory) -> Result<(), QueueError> {
        match index {
            RECEIVEQ => self.fill_receive(queues.get_mut(RECEIVEQ).ok_or(QueueError::NotReady)?, mem),
            _ => {
                self.output_pending = true;
                Ok(())
            }
        }
    }
}
