//! The UART as the byte stream the sessions are fed from: received bytes not yet taken, waits
//! bounded by the millisecond clock, and the resynchronisation after a request that broke off.
//!
//! A UART has no connection to close. When a session asks to close (a refusal that leaves the
//! stream out of step, a torn request), the device instead drops what it holds and discards
//! input until the line has been quiet for [`QUIET_MS`]: the rest of a refused upload, or the
//! tail of a torn request, then cannot be mistaken for the next request.

use embedded_io::{Read, ReadReady, Write};

/// Quiet time on the line after which the device takes the next byte as a request's first.
pub const QUIET_MS: u32 = 100;

/// Longest silence inside a request before it counts as torn (the client went away).
pub const REQUEST_IDLE_MS: u32 = 300;

/// Polls of the line before a wait for input goes to sleep.
const SPIN_POLLS: u32 = 2_000;

/// A byte stream that can idle until input may be there.
pub trait WaitForInput {
    /// Returns when a byte may have arrived, or after some other event (at most a millisecond
    /// later: the clock's tick wakes it too).
    fn wait_for_input(&mut self);
}

/// A UART and the bytes read from it that no session has taken yet.
pub struct Link<'b, U> {
    uart: U,
    buf: &'b mut [u8],
    start: usize,
    end: usize,
    now_ms: fn() -> u32,
}

impl<'b, U: Read + ReadReady + Write + WaitForInput> Link<'b, U> {
    /// The stream of `uart`, read through `buf`, with time from `now_ms`.
    pub fn new(uart: U, buf: &'b mut [u8], now_ms: fn() -> u32) -> Self {
        Link {
            uart,
            buf,
            start: 0,
            end: 0,
            now_ms,
        }
    }

    /// The clock's time, in milliseconds.
    pub fn now_ms(&self) -> u32 {
        (self.now_ms)()
    }

    /// Received bytes not taken yet.
    pub fn unread(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Marks `n` unread bytes as taken.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }

    /// Makes sure some bytes are unread, waiting up to `timeout_ms` for the line (`None`:
    /// however long it takes, idling between ticks). `false` when the time ran out.
    pub fn fill(&mut self, timeout_ms: Option<u32>) -> bool {
        if self.start < self.end {
            return true;
        }
        let since = self.now_ms();
        let mut polls = 0u32;
        loop {
            if let Ok(true) = self.uart.read_ready() {
                let n = self.uart.read(self.buf).unwrap_or(0);
                self.start = 0;
                self.end = n;
                return true;
            }
            if let Some(limit) = timeout_ms
                && self.now_ms().wrapping_sub(since) >= limit
            {
                return false;
            }
            // Bytes of a request follow each other closely: poll a while before sleeping.
            if polls < SPIN_POLLS {
                polls += 1;
            } else {
                self.uart.wait_for_input();
            }
        }
    }

    /// Sends `bytes` whole.
    pub fn send(&mut self, bytes: &[u8]) {
        let _ = self.uart.write_all(bytes);
    }

    /// Drops what is unread, then discards input until the line has been quiet for
    /// [`QUIET_MS`].
    pub fn resync(&mut self) {
        self.start = 0;
        self.end = 0;
        while self.fill(Some(QUIET_MS)) {
            self.start = 0;
            self.end = 0;
        }
    }
}
