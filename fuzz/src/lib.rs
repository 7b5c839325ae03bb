//! What the fuzz targets share: a decoding transcript with the decoder's invariants checked at
//! every call, profiles and chunkings chosen by the fuzzer, and byte sources that read short.
//!
//! The invariants, asserted (a failed assertion is a crash the fuzzer reports):
//! - `feed` never consumes more than it was given; `NeedMore` means it consumed everything;
//! - a body chunk is exactly `&input[..consumed]`, never empty;
//! - the body bytes of a frame add up to the length its head declared, and `End` repeats it;
//! - after an error that is not recoverable, the decoder refuses input (`Poisoned`); after a
//!   recoverable one it consumed nothing more and carries on;
//! - how the input is cut into pieces changes nothing: the transcript of a stream fed in pieces
//!   equals the transcript of the same stream fed whole.

pub mod scripted;

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use arbitrary::Arbitrary;
use unstick_core::{
    ByteOrder, DecodeError, Event, FrameDecoder, FrameEnd, FrameInfo, PrefixWidth, Profile, Verdict,
};

/// One step of what a decoder reported for a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A frame's head.
    Head(FrameInfo),
    /// Body bytes (consecutive chunks merged, so that chunking does not show).
    Body(Vec<u8>),
    /// A frame's end.
    End(FrameEnd),
    /// A decoding error.
    Error(DecodeError),
    /// The verdict on ending the stream where it ended (only when no fatal error came first).
    Eof(Result<(), DecodeError>),
}

/// Appends body bytes to the transcript, merging with a preceding body record.
pub fn push_body(records: &mut Vec<Record>, chunk: &[u8]) {
    if let Some(Record::Body(body)) = records.last_mut() {
        body.extend_from_slice(chunk);
    } else {
        records.push(Record::Body(chunk.to_vec()));
    }
}

/// A wire profile chosen by the fuzzer.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub struct ProfileChoice {
    width: u8,
    big_endian: bool,
    max_body_len: Option<u16>,
}

impl ProfileChoice {
    /// The profile.
    pub fn profile(&self) -> Profile {
        let width = match self.width % 3 {
            0 => PrefixWidth::Four,
            1 => PrefixWidth::Two,
            _ => PrefixWidth::Eight,
        };
        let order = if self.big_endian {
            ByteOrder::Big
        } else {
            ByteOrder::Little
        };
        let profile = Profile::new(width, order);
        match self.max_body_len {
            Some(max) => profile.with_max_body_len(u64::from(max)),
            None => profile,
        }
    }
}

/// Cuts `stream` into pieces: one per entry of `sizes` (0 is an empty feed), then the rest.
pub fn pieces<'s>(stream: &'s [u8], sizes: &[u8]) -> Vec<&'s [u8]> {
    let mut out = Vec::with_capacity(sizes.len() + 1);
    let mut rest = stream;
    for &size in sizes {
        let (piece, tail) = rest.split_at(usize::from(size).min(rest.len()));
        out.push(piece);
        rest = tail;
    }
    out.push(rest);
    out
}

/// Body accounting for the frame in progress.
#[derive(Default)]
struct FrameBody {
    declared: Option<u64>,
    received: u64,
}

/// Feeds `pieces` to `decoder` in order and returns the transcript, asserting the invariants
/// above at every call. `on_head` runs at every frame head, with the decoder (for its header
/// views).
pub fn decode<const CAP: usize>(
    decoder: &mut FrameDecoder<CAP>,
    pieces: &[&[u8]],
    mut on_head: impl FnMut(&mut FrameDecoder<CAP>, &FrameInfo),
) -> Vec<Record> {
    let mut records = Vec::new();
    let mut body = FrameBody::default();
    for piece in pieces {
        let mut rest: &[u8] = piece;
        loop {
            let (used, event) = match decoder.feed(rest) {
                Ok(step) => step,
                Err(e) => {
                    records.push(Record::Error(e));
                    if e.is_recoverable() {
                        assert!(decoder.is_at_boundary(), "{e:?} left the decoder mid-frame");
                        body = FrameBody::default();
                        continue;
                    }
                    assert_eq!(decoder.feed(b"more"), Err(DecodeError::Poisoned));
                    assert_eq!(decoder.feed(&[]), Err(DecodeError::Poisoned));
                    return records;
                }
            };
            assert!(
                used <= rest.len(),
                "consumed {used} of {} bytes",
                rest.len()
            );
            match event {
                Event::NeedMore => {
                    assert_eq!(used, rest.len(), "NeedMore with input left over");
                    break;
                }
                Event::Head(info) => {
                    assert!(body.declared.is_none(), "a head inside a frame");
                    body = FrameBody {
                        declared: Some(info.body_len),
                        received: 0,
                    };
                    assert_eq!(decoder.frame_info(), Some(&info));
                    records.push(Record::Head(info));
                    on_head(decoder, &info);
                }
                Event::Body(chunk) => {
                    assert!(!chunk.is_empty(), "empty body chunk");
                    assert_eq!(chunk.as_ptr(), rest.as_ptr(), "body chunk is not the input");
                    assert_eq!(chunk.len(), used, "body chunk is not all that was consumed");
                    let declared = body.declared.expect("body bytes outside a frame");
                    body.received += used as u64;
                    assert!(body.received <= declared, "more body than declared");
                    assert_eq!(decoder.body_remaining(), declared - body.received);
                    push_body(&mut records, chunk);
                }
                Event::End(end) => {
                    let declared = body.declared.take().expect("frame end outside a frame");
                    assert_eq!(end.body_len, declared, "end disagrees with head");
                    assert_eq!(body.received, declared, "body total differs from declared");
                    assert!(decoder.is_at_boundary());
                    // A digest is never reported as verified unless the header declared it and
                    // the body's matched.
                    let (declared, computed) = (decoder.declared_digests(), decoder.digests());
                    if end.md5 == Verdict::Verified {
                        assert!(declared.md5.is_some() && declared.md5 == computed.md5);
                    }
                    if end.xxh3 == Verdict::Verified {
                        assert!(declared.xxh3.is_some() && declared.xxh3 == computed.xxh3);
                    }
                    records.push(Record::End(end));
                }
            }
            rest = &rest[used..];
        }
    }
    records.push(Record::Eof(decoder.check_eof()));
    records
}

/// A byte source that returns at most the next of `sizes` bytes per read (at least 1), cycling.
pub struct ShortReads<'a> {
    data: &'a [u8],
    sizes: &'a [u8],
    next: usize,
}

impl<'a> ShortReads<'a> {
    /// Reads `data` in pieces of the given sizes.
    pub fn new(data: &'a [u8], sizes: &'a [u8]) -> Self {
        ShortReads {
            data,
            sizes,
            next: 0,
        }
    }

    fn read_some(&mut self, buf: &mut [u8]) -> usize {
        let size = match self.sizes.get(self.next % self.sizes.len().max(1)) {
            Some(&s) => usize::from(s).max(1),
            None => usize::MAX,
        };
        self.next += 1;
        let n = size.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        n
    }
}

impl embedded_io::ErrorType for ShortReads<'_> {
    type Error = Infallible;
}

impl embedded_io::Read for ShortReads<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        Ok(self.read_some(buf))
    }
}

impl embedded_io_async::Read for ShortReads<'_> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        Ok(self.read_some(buf))
    }
}

/// Runs a future that never waits (its sources are in memory) to completion.
pub fn run_ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1_000 {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("an in-memory read kept pending");
}
