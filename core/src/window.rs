//! The input window shared by the blocking and async drivers: a caller-provided buffer holding
//! bytes read but not yet consumed by the decoder. No I/O happens here.

use core::ops::Range;

use crate::decoder::{Event, FrameDecoder};
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
