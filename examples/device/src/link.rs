//! The UART as the byte stream the sessions are fed from: link frames in both directions
//! (`unstick_core::serial_link`, docs/PROTOCOL.md "Serial lines"), waits bounded by the
//! millisecond clock.
//!
//! A UART has no connection to close, and no integrity. The client's bytes come in link frames:
//! a damaged frame is dropped at the next zero on the line and counted; the first frame of
//! every request is a start frame, taken at any time (whatever the device held of an earlier
//! request is dropped); a frame missing inside a request (a gap in the numbers) drops the
//! request, and the device tells the client with a notice, then takes nothing until the next
//! start frame. So the rest of a refused upload, or the tail of a broken request, can never be
//! mistaken for the next request, and no client waits for the line to fall silent.
//!
//! What the sessions send is gathered into a frame of up to [`MTU`] bytes, sent when it is full
//! and whenever the device is about to wait for input or has finished a request
//! ([`Link::flush`]). The reply's first frame is a start frame that echoes the number of the
//! request's.

use core::time::Duration;

use embedded_io::{Read, ReadReady, Write};
use unstick_core::serial_link::{
    Accept, LinkEvent, LinkFrameReader, LinkSender, MAX_ENCODED, MAX_FRAME, MTU, Notice,
    NoticeReason, RequestReceiver, encode_frame,
};
use unstick_core::time::Instant;

/// Longest silence inside a request before it counts as torn (the client went away, or the
/// request's last frame was lost): the sessions' idle timeout, and the wait for a request's
/// head before it goes to one. A second: long enough that a client descheduled for a moment (a
/// loaded host, a USB serial adapter's latency timer) does not tear a healthy upload, short
/// enough that a lost last frame is reported while the user still waits for it.
pub const REQUEST_IDLE: Duration = Duration::from_secs(1);

/// Polls of the line before a wait for input goes to sleep.
const SPIN_POLLS: u32 = 2_000;

/// A byte stream that can idle until input may be there.
pub trait WaitForInput {
    /// Returns when a byte may have arrived, or after some other event (at most a millisecond
    /// later: the clock's tick wakes it too).
    fn wait_for_input(&mut self);
}

/// What the link has counted since boot (the `link` built-in prints it).
#[derive(Clone, Copy, Default)]
pub struct LinkCounts {
    /// Frames taken with a matching CRC.
    pub frames: u32,
    /// Bytes between zeros that were no frame: damaged, torn, or garbage.
    pub dropped: u32,
    /// Good frames that belonged to no request being taken (the rest of a dropped one).
    pub stale: u32,
    /// Requests dropped because a frame of theirs was missing.
    pub gaps: u32,
    /// Requests dropped because their frames stopped coming.
    pub torn: u32,
    /// Requests answered.
    pub answered: u32,
    /// Requests the session closed without an answer (refused in a way that leaves the rest
    /// unread, or broken off).
    pub closed: u32,
}

/// What [`Link::fill`] found.
pub enum Fill {
    /// Bytes of the request are unread.
    Bytes,
    /// The request's frames stopped: it is torn (the client was told).
    Silent,
    /// The request is over: a frame of it was lost (the client was told), or the client
    /// started a new one, which [`Link::next_request`] takes next.
    Interrupted,
}

/// What one frame from the line was.
enum Got {
    Start,
    Next,
    Gap,
    Silent,
}

/// The buffers a [`Link`] works in, all of fixed size.
pub struct LinkBuffers<'b> {
    /// Bytes read from the UART at once.
    pub raw: &'b mut [u8],
    /// The frame being found in the line's bytes.
    pub reader: &'b mut LinkFrameReader<MAX_FRAME>,
    /// The payload of the last frame taken.
    pub payload: &'b mut [u8; MTU],
    /// Reply bytes gathered for the next frame.
    pub outgoing: &'b mut [u8; MTU],
    /// One encoded frame.
    pub encoded: &'b mut [u8; MAX_ENCODED],
}

/// A UART carrying link frames, and the request bytes read from it that no session has taken.
pub struct Link<'b, U> {
    uart: U,
    buffers: LinkBuffers<'b>,
    raw_start: usize,
    raw_end: usize,
    payload_start: usize,
    payload_end: usize,
    /// The payload is that of a start frame that arrived during another request.
    start_pending: bool,
    outgoing_len: usize,
    requests: RequestReceiver,
    sender: LinkSender,
    counts: LinkCounts,
    now_ms: fn() -> u32,
    /// The clock's time at the last reading, widened past the 32-bit tick's wrap.
    clock: (u32, u64),
}

impl<'b, U: Read + ReadReady + Write + WaitForInput> Link<'b, U> {
    /// The link on `uart`, working in `buffers`, with time from `now_ms`.
    pub fn new(uart: U, buffers: LinkBuffers<'b>, now_ms: fn() -> u32) -> Self {
        Link {
            uart,
            buffers,
            raw_start: 0,
            raw_end: 0,
            payload_start: 0,
            payload_end: 0,
            start_pending: false,
            outgoing_len: 0,
            requests: RequestReceiver::new(),
            sender: LinkSender::new(0),
            counts: LinkCounts::default(),
            now_ms,
            clock: (0, 0),
        }
    }

    /// The clock's time as the sessions take it. Read often enough (every request reads it),
    /// the 32-bit tick's wrap every 49 days does not set it back.
    pub fn now(&mut self) -> Instant {
        let tick = (self.now_ms)();
        let (last, wide) = self.clock;
        let wide = wide + u64::from(tick.wrapping_sub(last));
        self.clock = (tick, wide);
        Instant::from_millis(wide)
    }

    /// As [`fill`](Self::fill), waiting for the next frame no later than `deadline` (a
    /// session's), or for as long as it takes without one.
    pub fn fill_until(&mut self, deadline: Option<Instant>) -> Fill {
        let now = self.now();
        let wait = deadline.map(|at| {
            let left = at.saturating_duration_since(now).as_millis();
            u32::try_from(left).unwrap_or(u32::MAX)
        });
        self.fill(wait)
    }

    /// The clock's time, in milliseconds.
    pub fn now_ms(&self) -> u32 {
        (self.now_ms)()
    }

    /// What the link has counted since boot.
    pub fn counts(&self) -> LinkCounts {
        self.counts
    }

    /// Request bytes not taken yet.
    pub fn unread(&self) -> &[u8] {
        &self.buffers.payload[self.payload_start..self.payload_end]
    }

    /// Marks `n` unread bytes as taken.
    pub fn consume(&mut self, n: usize) {
        self.payload_start = (self.payload_start + n).min(self.payload_end);
    }

    /// Waits for the start frame of a request, discarding anything else; its payload is then
    /// unread.
    pub fn next_request(&mut self) {
        if core::mem::take(&mut self.start_pending) {
            return;
        }
        while !matches!(self.receive(None), Got::Start) {}
    }

    /// Makes sure some bytes of the current request are unread, waiting up to `timeout_ms`
    /// for its next frame (sending what the sessions gave first).
    pub fn fill(&mut self, timeout_ms: Option<u32>) -> Fill {
        if self.start_pending {
            return Fill::Interrupted;
        }
        if self.payload_start < self.payload_end {
            return Fill::Bytes;
        }
        self.flush();
        loop {
            match self.receive(timeout_ms) {
                Got::Next if self.payload_start == self.payload_end => continue,
                Got::Next => return Fill::Bytes,
                Got::Start => {
                    self.start_pending = true;
                    return Fill::Interrupted;
                }
                Got::Gap => return Fill::Interrupted,
                Got::Silent => {
                    self.counts.torn += 1;
                    self.requests.end_request();
                    self.notice(NoticeReason::Silence);
                    return Fill::Silent;
                }
            }
        }
    }

    /// The current request is over, `answered` or not: what it sent goes out, and frames other
    /// than a start frame are discarded until the next request.
    pub fn end_request(&mut self, answered: bool) {
        if answered {
            self.counts.answered = self.counts.answered.wrapping_add(1);
        } else {
            self.counts.closed = self.counts.closed.wrapping_add(1);
        }
        self.flush();
        if !self.start_pending {
            self.requests.end_request();
            self.payload_start = 0;
            self.payload_end = 0;
        }
    }

    /// Adds `bytes` to the reply, sending each frame as it fills.
    pub fn send(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let take = bytes.len().min(MTU - self.outgoing_len);
            self.buffers.outgoing[self.outgoing_len..self.outgoing_len + take]
                .copy_from_slice(&bytes[..take]);
            self.outgoing_len += take;
            bytes = &bytes[take..];
            if self.outgoing_len == MTU {
                self.flush();
            }
        }
    }

    /// Sends the reply bytes gathered so far, as one frame.
    pub fn flush(&mut self) {
        if self.outgoing_len > 0 {
            let len = core::mem::take(&mut self.outgoing_len);
            self.send_frame(false, len);
        }
    }

    /// Tells the client its request was dropped.
    fn notice(&mut self, reason: NoticeReason) {
        self.flush();
        let notice = Notice {
            reason,
            dropped_frames: self.counts.dropped,
        }
        .encode();
        self.buffers.outgoing[..notice.len()].copy_from_slice(&notice);
        self.send_frame(true, notice.len());
    }

    /// Encodes and sends the first `len` bytes of `outgoing` as a frame.
    fn send_frame(&mut self, notice: bool, len: usize) {
        let header = self.sender.next_header(notice);
        let buffers = &mut self.buffers;
        if let Ok(n) = encode_frame(header, &buffers.outgoing[..len], &mut buffers.encoded[..]) {
            let _ = self.uart.write_all(&buffers.encoded[..n]);
        }
    }

    /// Reads the line until a frame of a request comes (its payload is then unread), a frame
    /// shows that one was lost, or `timeout_ms` passes without one.
    fn receive(&mut self, timeout_ms: Option<u32>) -> Got {
        let since = self.now_ms();
        loop {
            while self.raw_start < self.raw_end {
                let input = &self.buffers.raw[self.raw_start..self.raw_end];
                let (used, event) = self.buffers.reader.feed(input);
                self.raw_start += used;
                let frame = match event {
                    Some(LinkEvent::Frame(frame)) => frame,
                    Some(LinkEvent::Dropped(_)) => {
                        self.counts.dropped = self.counts.dropped.wrapping_add(1);
                        continue;
                    }
                    None => continue,
                };
                self.counts.frames = self.counts.frames.wrapping_add(1);
                let got = match self.requests.accept(frame.header) {
                    Accept::Start => {
                        self.sender.answer(frame.header.seq);
                        Got::Start
                    }
                    Accept::Next => Got::Next,
                    Accept::Stale => {
                        self.counts.stale = self.counts.stale.wrapping_add(1);
                        continue;
                    }
                    Accept::Gap { .. } => {
                        self.counts.gaps = self.counts.gaps.wrapping_add(1);
                        self.payload_start = 0;
                        self.payload_end = 0;
                        self.notice(NoticeReason::Gap);
                        return Got::Gap;
                    }
                };
                let payload = frame.payload;
                self.buffers.payload[..payload.len()].copy_from_slice(payload);
                self.payload_start = 0;
                self.payload_end = payload.len();
                return got;
            }
            if !self.read_raw(since, timeout_ms) {
                return Got::Silent;
            }
        }
    }

    /// Reads what the UART has into `raw`, waiting for a byte until `timeout_ms` after
    /// `since`. `false` when the time ran out.
    fn read_raw(&mut self, since: u32, timeout_ms: Option<u32>) -> bool {
        let mut polls = 0u32;
        loop {
            if let Ok(true) = self.uart.read_ready() {
                let n = self.uart.read(self.buffers.raw).unwrap_or(0);
                self.raw_start = 0;
                self.raw_end = n;
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
}
