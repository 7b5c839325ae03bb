//! The input window shared by the blocking and async drivers: a caller-provided buffer holding
//! bytes read but not yet consumed by the decoder. No I/O happens here.

use core::ops::Range;

use crate::decoder::{Event, FrameDecoder, FrameEnd, FrameInfo};
use crate::error::DecodeError;

/// A decoder step without a borrow of the window, so the driver may read into the window before
/// turning it into an [`Event`].
pub(crate) enum Step {
    NeedMore,
    Body(Range<usize>),
    Other(Event<'static>),
}

pub(crate) struct ReadWindow<'b> {
    buf: &'b mut [u8],
    start: usize,
    end: usize,
}

impl<'b> ReadWindow<'b> {
    pub(crate) fn new(buf: &'b mut [u8]) -> Self {
        ReadWindow {
            buf,
            start: 0,
            end: 0,
        }
    }

    /// Bytes read but not yet consumed.
    pub(crate) fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Feeds the unconsumed bytes to the decoder once.
    pub(crate) fn step<const CAP: usize>(
        &mut self,
        decoder: &mut FrameDecoder<CAP>,
    ) -> Result<Step, DecodeError> {
        let start = self.start;
        let (used, event) = decoder.feed(&self.buf[start..self.end])?;
        self.start += used;
        Ok(match event {
            Event::NeedMore => Step::NeedMore,
            Event::Body(_) => Step::Body(start..start + used),
            Event::Head(info) => Step::Other(Event::Head(info)),
            Event::End(end) => Step::Other(Event::End(end)),
        })
    }

    pub(crate) fn event(&self, step: Step) -> Event<'_> {
        match step {
            Step::NeedMore => Event::NeedMore,
            Step::Body(range) => Event::Body(&self.buf[range]),
            Step::Other(event) => event,
        }
    }

    /// The free space to read into, after moving unconsumed bytes to the front.
    pub(crate) fn spare(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    /// Records that `n` bytes were read into [`spare`](Self::spare).
    pub(crate) fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }
}

/// Collects one frame's body into a caller's buffer, for the drivers' `read_frame`.
pub(crate) struct BodyCollector<'o> {
    out: &'o mut [u8],
    len: usize,
    info: Option<FrameInfo>,
}

/// The body does not fit the collector's buffer.
pub(crate) struct BodyOverflow;

impl<'o> BodyCollector<'o> {
    pub(crate) fn new(out: &'o mut [u8]) -> Self {
        BodyCollector {
            out,
            len: 0,
            info: None,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.out.len()
    }

    /// Takes one event; returns the frame end once it arrives.
    pub(crate) fn absorb(&mut self, event: Event<'_>) -> Result<Option<FrameEnd>, BodyOverflow> {
        match event {
            Event::Head(head) => {
                if head.body_len > self.out.len() as u64 {
                    return Err(BodyOverflow);
                }
                self.info = Some(head);
            }
            Event::Body(chunk) => {
                // The head's check covers the body, unless the caller took the head with
                // `next_event` before `read_frame`: then the rest may not fit.
                let room = self
                    .out
                    .get_mut(self.len..self.len + chunk.len())
                    .ok_or(BodyOverflow)?;
                room.copy_from_slice(chunk);
                self.len += chunk.len();
            }
            Event::End(end) => return Ok(Some(end)),
            Event::NeedMore => {}
        }
        Ok(None)
    }

    /// The whole frame: its head (or, if the head was taken before collecting began, what the
    /// end reports), the body, and the end.
    pub(crate) fn finish(self, end: FrameEnd) -> (FrameInfo, &'o [u8], FrameEnd) {
        let info = self.info.unwrap_or(FrameInfo {
            header_len: 0,
            body_len: end.body_len,
        });
        (info, &self.out[..self.len], end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profile;

    fn fill(window: &mut ReadWindow<'_>, bytes: &[u8]) {
        let spare = window.spare();
        spare[..bytes.len()].copy_from_slice(bytes);
        window.filled(bytes.len());
    }

    #[test]
    fn steps_hand_out_body_ranges_of_the_window() {
        let mut buf = [0u8; 8];
        let mut window = ReadWindow::new(&mut buf);
        let mut decoder = FrameDecoder::<0>::plain_frames(Profile::I32_LE);
        assert_eq!(window.spare().len(), 8);
        // A whole 3-byte frame and the first byte of the next one fill the window.
        fill(&mut window, b"\x03\x00\x00\x00abc\x02");
        let head = window.step(&mut decoder).unwrap();
        assert!(matches!(window.event(head), Event::Head(info) if info.body_len == 3));
        let body = window.step(&mut decoder).unwrap();
        assert!(matches!(body, Step::Body(ref r) if *r == (4..7)));
        assert_eq!(window.event(body), Event::Body(b"abc"));
        assert!(matches!(
            window.step(&mut decoder).unwrap(),
            Step::Other(Event::End(_))
        ));
        assert_eq!(window.pending(), b"\x02");
        // The window is full: asking for room moves the unconsumed byte to the front.
        assert_eq!(window.spare().len(), 7);
        assert_eq!(window.pending(), b"\x02");
        fill(&mut window, b"\x00\x00\x00hi");
        assert!(matches!(
            window.step(&mut decoder).unwrap(),
            Step::Other(Event::Head(_))
        ));
        let body = window.step(&mut decoder).unwrap();
        assert_eq!(window.event(body), Event::Body(b"hi"));
        assert!(matches!(
            window.step(&mut decoder).unwrap(),
            Step::Other(Event::End(_))
        ));
        // All consumed: the whole buffer is free again.
        assert!(matches!(window.step(&mut decoder).unwrap(), Step::NeedMore));
        assert_eq!(window.pending(), b"");
        assert_eq!(window.spare().len(), 8);
    }

    #[test]
    fn partly_consumed_window_keeps_its_room() {
        let mut buf = [0u8; 8];
        let mut window = ReadWindow::new(&mut buf);
        let mut decoder = FrameDecoder::<0>::plain_frames(Profile::I32_LE);
        fill(&mut window, b"\x01\x00\x00\x00z");
        assert!(matches!(
            window.step(&mut decoder).unwrap(),
            Step::Other(Event::Head(_))
        ));
        // Not full: no move, the room after the bytes is offered.
        assert_eq!(window.spare().len(), 3);
        assert_eq!(window.pending(), b"z");
    }

    #[test]
    fn filled_never_claims_more_than_the_buffer() {
        let mut buf = [0u8; 4];
        let mut window = ReadWindow::new(&mut buf);
        window.filled(100);
        assert_eq!(window.pending().len(), 4);
        assert_eq!(window.spare().len(), 0);
        let mut empty: [u8; 0] = [];
        let mut window = ReadWindow::new(&mut empty);
        assert!(window.spare().is_empty());
        window.filled(1);
        assert!(window.pending().is_empty());
    }
}
