//! Bytes a session asks its host to send.

use serde::Serialize;

use crate::{Checksum, EncodeError, HeaderFrameEncoder};

/// What [`Outbox::poll_transmit`] asks the host to send next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// This many bytes were written to the start of the caller's buffer: send them.
    Bytes(usize),
    /// Send this many bytes of the body the host handed to the session's last `handle_*` call
    /// (an output chunk, a chunk of a file), from where they are: bodies are never copied.
    Body(usize),
}

impl Transmit {
    /// The bytes this transmit names: the first `n` of `written` (what `poll_transmit` wrote
    /// into the caller's buffer) for [`Transmit::Bytes`], the first `n` of `body` (the body
    /// handed to the session's last `handle_*` call) for [`Transmit::Body`]. A body shorter
    /// than the session announced is an error, never a shorter frame: sending less would put
    /// the stream out of step with the head already sent.
    ///
    /// ```
    /// use unstick_core::session::{ShortBody, Transmit};
    ///
    /// assert_eq!(Transmit::Bytes(2).resolve(b"head", b""), Ok(&b"he"[..]));
    /// assert_eq!(Transmit::Body(3).resolve(b"", b"body"), Ok(&b"bod"[..]));
    /// assert_eq!(
    ///     Transmit::Body(5).resolve(b"", b"body"),
    ///     Err(ShortBody { announced: 5, given: 4 })
    /// );
    /// ```
    pub fn resolve<'a>(self, written: &'a [u8], body: &'a [u8]) -> Result<&'a [u8], ShortBody> {
        match self {
            Transmit::Bytes(n) => Ok(&written[..n.min(written.len())]),
            Transmit::Body(n) => body.get(..n).ok_or(ShortBody {
                announced: n,
                given: body.len(),
            }),
        }
    }
}

/// A host passed a body shorter than the session announced for it (see
/// [`Transmit::resolve`]): a mistake of the host, which must not send a shorter frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShortBody {
    /// The body's length the session announced (and wrote into the frame's head).
    pub announced: usize,
    /// The length of the body the host passed.
    pub given: usize,
}

impl core::fmt::Display for ShortBody {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "the session announced a body of {} bytes but was given {}; pass the body handed to \
             its last handle_* call",
            self.announced, self.given
        )
    }
}

impl core::error::Error for ShortBody {}

/// A session's queue of bytes to send: frame heads (and frames without bodies) encoded into a
/// fixed buffer of `N` bytes, then the length of a body the host sends itself.
#[derive(Debug)]
pub struct Outbox<const N: usize> {
    buf: [u8; N],
    start: usize,
    end: usize,
    body: usize,
}

impl<const N: usize> Default for Outbox<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Outbox<N> {
    /// An empty outbox.
    pub const fn new() -> Self {
        Outbox {
            buf: [0; N],
            start: 0,
            end: 0,
            body: 0,
        }
    }

    /// Whether nothing is waiting to be sent.
    pub fn is_empty(&self) -> bool {
        self.start == self.end && self.body == 0
    }

    /// Queues a frame head for a body of `body_len` bytes that the host sends itself (announced
    /// as [`Transmit::Body`] once the head is out), with `checksum` in the header if given.
    pub(crate) fn push_head<H: Serialize + ?Sized>(
        &mut self,
        encoder: &HeaderFrameEncoder,
        header: &H,
        body_len: u64,
        checksum: Option<Checksum>,
    ) -> Result<(), EncodeError> {
        self.compact();
        let n = encoder.encode_head(header, body_len, checksum, &mut self.buf[self.end..])?;
        self.end += n;
        Ok(())
    }

    /// Queues the head of a frame for `body`, with the encoder's digest of it, and announces
    /// the body.
    pub(crate) fn push_frame_for<H: Serialize + ?Sized>(
        &mut self,
        encoder: &HeaderFrameEncoder,
        header: &H,
        body: &[u8],
    ) -> Result<(), EncodeError> {
        self.compact();
        let n = encoder.encode_head_for(header, body, &mut self.buf[self.end..])?;
        self.end += n;
        self.body = body.len();
        Ok(())
    }

    /// Queues a frame with an empty body.
    pub(crate) fn push_frame<H: Serialize + ?Sized>(
        &mut self,
        encoder: &HeaderFrameEncoder,
        header: &H,
    ) -> Result<(), EncodeError> {
        self.push_head(encoder, header, 0, None)
    }

    /// Queues raw bytes (a reply in another protocol's terms, a plain frame's prefix).
    pub(crate) fn push_bytes(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.compact();
        let room = &mut self.buf[self.end..];
        let Some(room) = room.get_mut(..bytes.len()) else {
            return Err(EncodeError::BufferTooSmall {
                capacity: N - self.end,
            });
        };
        room.copy_from_slice(bytes);
        self.end += bytes.len();
        Ok(())
    }

    /// Announces `len` body bytes the host sends itself, after the queued bytes.
    pub(crate) fn push_body(&mut self, len: usize) {
        self.body = len;
    }

    fn compact(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// The next thing to send: queued bytes copied into `out` (as many as fit), then the body
    /// the host holds; `None` when nothing is waiting.
    pub fn poll_transmit(&mut self, out: &mut [u8]) -> Option<Transmit> {
        if self.start < self.end {
            let n = (self.end - self.start).min(out.len());
            out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
            self.start += n;
            self.compact();
            return Some(Transmit::Bytes(n));
        }
        if self.body > 0 {
            return Some(Transmit::Body(core::mem::take(&mut self.body)));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::{ErrorCode, ErrorFrame, PLAIN_ENCODER};
    use std::vec::Vec;

    #[test]
    fn queued_bytes_come_out_in_order_in_any_buffer_then_the_body() {
        let frame = ErrorFrame::new(ErrorCode::Busy, "retry");
        let mut expected = b"ab".to_vec();
        let mut head = [0u8; 128];
        let n = PLAIN_ENCODER
            .encode_head(&frame, 3, None, &mut head)
            .unwrap();
        expected.extend_from_slice(&head[..n]);
        for out_len in [1, 2, 7, 128] {
            let mut outbox = Outbox::<128>::new();
            assert_eq!(outbox.poll_transmit(&mut [0u8; 4]), None);
            outbox.push_bytes(b"ab").unwrap();
            outbox.push_head(&PLAIN_ENCODER, &frame, 3, None).unwrap();
            outbox.push_body(3);
            let mut sent = Vec::new();
            let mut out = [0u8; 128];
            let body = loop {
                match outbox.poll_transmit(&mut out[..out_len]) {
                    Some(Transmit::Bytes(k)) => sent.extend_from_slice(&out[..k]),
                    other => break other,
                }
            };
            assert_eq!(sent, expected);
            assert_eq!(body, Some(Transmit::Body(3)));
            assert!(outbox.is_empty());
            assert_eq!(outbox.poll_transmit(&mut out), None);
        }
    }

    #[test]
    fn a_frame_that_does_not_fit_is_refused_and_nothing_is_queued() {
        let mut outbox = Outbox::<16>::new();
        outbox.push_bytes(b"0123456789").unwrap();
        let frame = ErrorFrame::new(ErrorCode::Busy, "retry");
        assert!(outbox.push_frame(&PLAIN_ENCODER, &frame).is_err());
        assert!(outbox.push_bytes(b"0123456789").is_err());
        let mut out = [0u8; 16];
        assert_eq!(outbox.poll_transmit(&mut out), Some(Transmit::Bytes(10)));
        assert_eq!(outbox.poll_transmit(&mut out), None);
    }
}
