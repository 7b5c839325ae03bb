//! Blocking drivers over [`embedded_io::Read`] and [`embedded_io::Write`].
//!
//! Reads follow the `embedded-io` contract: a read may return fewer bytes than asked (that is
//! normal, and the driver asks again), and `Ok(0)` means end of stream. End of stream between
//! frames is "no more frames" (`Ok(None)`); inside a frame it is
//! [`DecodeError::UnexpectedEof`](crate::DecodeError::UnexpectedEof).

use embedded_io::{Read, Write};
use serde::Serialize;

use crate::decoder::{Event, FrameDecoder, FrameEnd, FrameInfo};
use crate::digest::{Algorithms, BodyHasher, Digests};
use crate::encoder::HeaderFrameEncoder;
use crate::error::{ReadError, WriteError};
use crate::profile::Profile;
use crate::window::{BodyCollector, BodyOverflow, ReadWindow, Step};

/// Reads frames from a blocking byte source, through a caller-provided input buffer.
///
/// Body chunks are slices of that buffer; a buffer of a few KiB is plenty for any frame size.
pub struct FrameReader<'b, R, const CAP: usize = 1024> {
    io: R,
    decoder: FrameDecoder<CAP>,
    window: ReadWindow<'b>,
}

impl<'b, R: Read, const CAP: usize> FrameReader<'b, R, CAP> {
    /// Reads frames from `io` with `decoder`, reading into `buf` (which must not be empty).
    pub fn new(io: R, decoder: FrameDecoder<CAP>, buf: &'b mut [u8]) -> Self {
        FrameReader {
            io,
            decoder,
            window: ReadWindow::new(buf),
        }
    }

    /// The next event; `Ok(None)` when the stream ended cleanly between frames. Never returns
    /// [`Event::NeedMore`].
    pub fn next_event(&mut self) -> Result<Option<Event<'_>>, ReadError<R::Error>> {
        loop {
            match self.window.step(&mut self.decoder)? {
                Step::NeedMore => {}
                step => return Ok(Some(self.window.event(step))),
            }
            let spare = self.window.spare();
            if spare.is_empty() {
                return Err(ReadError::BufferEmpty);
            }
            let n = self.io.read(spare).map_err(ReadError::Io)?;
            if n == 0 {
                self.decoder.check_eof()?;
                return Ok(None);
            }
            self.window.filled(n);
        }
    }

    /// Reads one whole frame, copying its body into `body_out`. Returns `Ok(None)` at a clean end
    /// of stream. A body larger than `body_out` is an error (and leaves the stream mid-frame).
    #[allow(clippy::type_complexity)] // a plain tuple reads best at the call site
    pub fn read_frame<'o>(
        &mut self,
        body_out: &'o mut [u8],
    ) -> Result<Option<(FrameInfo, &'o [u8], FrameEnd)>, ReadError<R::Error>> {
        let mut frame = BodyCollector::new(body_out);
        loop {
            let Some(event) = self.next_event()? else {
                return Ok(None);
            };
            match frame.absorb(event) {
                Ok(None) => {}
                Ok(Some(end)) => return Ok(Some(frame.finish(end))),
                Err(BodyOverflow) => {
                    return Err(ReadError::BodyExceedsBuffer {
                        len: self.decoder.frame_info().map_or(0, |info| info.body_len),
                        capacity: frame.capacity(),
                    });
                }
            }
        }
    }

    /// The decoder, e.g. for [`FrameDecoder::header`] after [`Event::Head`].
    pub fn decoder(&mut self) -> &mut FrameDecoder<CAP> {
        &mut self.decoder
    }

    /// The byte source.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.io
    }

    /// Bytes read from the source but not yet decoded (the start of the next frame, or bytes a
    /// protocol switch hands to another reader).
    pub fn buffered(&self) -> &[u8] {
        self.window.pending()
    }

    /// Gives back the source and the decoder.
    pub fn into_parts(self) -> (R, FrameDecoder<CAP>) {
        (self.io, self.decoder)
    }
}

/// Writes a header frame for `body`, with the head built in `head_buf` (a few hundred bytes is
/// typical). When head and body fit in `head_buf` together they go out in one write.
pub fn write_frame<W: Write, H: Serialize + ?Sized>(
    io: &mut W,
    encoder: &HeaderFrameEncoder,
    header: &H,
    body: &[u8],
    head_buf: &mut [u8],
) -> Result<(), WriteError<W::Error>> {
    let head = encoder.encode_head_for(header, body, head_buf)?;
    write_head_and_body(io, head_buf, head, body)
}

/// Writes a plain frame (`[N][N bytes]`).
pub fn write_plain_frame<W: Write>(
    io: &mut W,
    profile: &Profile,
    body: &[u8],
) -> Result<(), WriteError<W::Error>> {
    let mut head = [0u8; 8];
    let n = profile.write_prefix(body.len() as u64, &mut head)?;
    io.write_all(&head[..n]).map_err(WriteError::Io)?;
    io.write_all(body).map_err(WriteError::Io)
}

fn write_head_and_body<W: Write>(
    io: &mut W,
    buf: &mut [u8],
    head: usize,
    body: &[u8],
) -> Result<(), WriteError<W::Error>> {
    if let Some(room) = buf.get_mut(head..head + body.len()) {
        room.copy_from_slice(body);
        return io
            .write_all(&buf[..head + body.len()])
            .map_err(WriteError::Io);
    }
    io.write_all(&buf[..head]).map_err(WriteError::Io)?;
    io.write_all(body).map_err(WriteError::Io)
}

/// Writes a header frame whose body of `body_len` bytes is streamed from `source` through `buf`,
/// computing `algorithms` on the way. The head carries no digest (that would need a pass over
/// the body before the first byte is sent): send the returned digests after the body, e.g. in a
/// trailer frame. `buf` holds the head first, so it must be larger than the head.
pub fn write_frame_from<W: Write, S: Read, H: Serialize + ?Sized>(
    io: &mut W,
    encoder: &HeaderFrameEncoder,
    header: &H,
    body_len: u64,
    source: &mut S,
    algorithms: Algorithms,
    buf: &mut [u8],
) -> Result<Digests, WriteError<W::Error, S::Error>> {
    let head = encoder.encode_head(header, body_len, None, buf)?;
    io.write_all(&buf[..head]).map_err(WriteError::Io)?;
    copy_body(io, source, body_len, algorithms, buf)
}

/// Copies exactly `len` bytes from `source` to `io` through `buf`, hashing them.
pub fn copy_body<W: Write, S: Read>(
    io: &mut W,
    source: &mut S,
    len: u64,
    algorithms: Algorithms,
    buf: &mut [u8],
) -> Result<Digests, WriteError<W::Error, S::Error>> {
    let mut hasher = BodyHasher::new(algorithms);
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Err(WriteError::Encode(crate::EncodeError::BufferTooSmall {
                capacity: 0,
            }));
        }
        // A source that claims more than it was given room for breaks its contract; never
        // trust it past the buffer.
        let n = source
            .read(&mut buf[..want])
            .map_err(WriteError::Source)?
            .min(want);
        if n == 0 {
            return Err(WriteError::SourceEnded { missing: left });
        }
        hasher.update(&buf[..n]);
        io.write_all(&buf[..n]).map_err(WriteError::Io)?;
        left -= n as u64;
    }
    Ok(hasher.finish())
}
