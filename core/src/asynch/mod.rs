//! Async drivers over [`embedded_io_async::Read`] and [`embedded_io_async::Write`], the
//! counterparts of [`blocking`](crate::blocking) with the same contracts.
//!
//! Cancellation: all framing state lives in the decoder and the input window, and both are
//! updated only after a read completes. Dropping a [`FrameReader::next_event`] future therefore
//! loses nothing the reader had already consumed (whether the dropped *read* itself lost bytes is
//! up to the byte source).
//!
//! With the `async-host` feature, `host` drives the protocol sessions over the same traits.

#[cfg(feature = "async-host")]
pub mod host;

use embedded_io_async::{Read, Write};
use serde::Serialize;

use crate::decoder::{Event, FrameDecoder, FrameEnd, FrameInfo};
use crate::digest::{Algorithms, BodyHasher, Digests};
use crate::encoder::HeaderFrameEncoder;
use crate::error::{ReadError, WriteError};
use crate::profile::Profile;
use crate::window::{BodyCollector, BodyOverflow, ReadWindow, Step};

/// Reads frames from an async byte source, through a caller-provided input buffer.
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

    /// The next event; `Ok(None)` when the stream ended cleanly between frames.
    pub async fn next_event(&mut self) -> Result<Option<Event<'_>>, ReadError<R::Error>> {
        loop {
            match self.window.step(&mut self.decoder)? {
                Step::NeedMore => {}
                step => return Ok(Some(self.window.event(step))),
            }
            let spare = self.window.spare();
            if spare.is_empty() {
                return Err(ReadError::BufferEmpty);
            }
            let n = self.io.read(spare).await.map_err(ReadError::Io)?;
            if n == 0 {
                self.decoder.check_eof()?;
                return Ok(None);
            }
            self.window.filled(n);
        }
    }

    /// Reads one whole frame, copying its body into `body_out`; see
    /// [`blocking::FrameReader::read_frame`](crate::blocking::FrameReader::read_frame).
    ///
    /// Unlike [`next_event`](Self::next_event), this future is not cancel-safe: dropped in the
    /// middle of a frame, the head and the body bytes it had already copied are gone with it.
    pub async fn read_frame<'o>(
        &mut self,
        body_out: &'o mut [u8],
    ) -> Result<Option<(FrameInfo, &'o [u8], FrameEnd)>, ReadError<R::Error>> {
        let mut frame = BodyCollector::new(body_out);
        loop {
            let Some(event) = self.next_event().await? else {
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

    /// Bytes read from the source but not yet decoded.
    pub fn buffered(&self) -> &[u8] {
        self.window.pending()
    }

    /// Gives back the source and the decoder.
    pub fn into_parts(self) -> (R, FrameDecoder<CAP>) {
        (self.io, self.decoder)
    }
}

/// Writes a header frame for `body`; see [`blocking::write_frame`](crate::blocking::write_frame).
pub async fn write_frame<W: Write, H: Serialize + ?Sized>(
    io: &mut W,
    encoder: &HeaderFrameEncoder,
    header: &H,
    body: &[u8],
    head_buf: &mut [u8],
) -> Result<(), WriteError<W::Error>> {
    let head = encoder.encode_head_for(header, body, head_buf)?;
    if let Some(room) = head_buf.get_mut(head..head + body.len()) {
        room.copy_from_slice(body);
        let all = &head_buf[..head + body.len()];
        return io.write_all(all).await.map_err(WriteError::Io);
    }
    io.write_all(&head_buf[..head])
        .await
        .map_err(WriteError::Io)?;
    io.write_all(body).await.map_err(WriteError::Io)
}

/// Writes a plain frame (`[N][N bytes]`).
pub async fn write_plain_frame<W: Write>(
    io: &mut W,
    profile: &Profile,
    body: &[u8],
) -> Result<(), WriteError<W::Error>> {
    let mut head = [0u8; 8];
    let n = profile.write_prefix(body.len() as u64, &mut head)?;
    io.write_all(&head[..n]).await.map_err(WriteError::Io)?;
    io.write_all(body).await.map_err(WriteError::Io)
}

/// Writes a header frame whose body is streamed from `source`; see
/// [`blocking::write_frame_from`](crate::blocking::write_frame_from).
pub async fn write_frame_from<W: Write, S: Read, H: Serialize + ?Sized>(
    io: &mut W,
    encoder: &HeaderFrameEncoder,
    header: &H,
    body_len: u64,
    source: &mut S,
    algorithms: Algorithms,
    buf: &mut [u8],
) -> Result<Digests, WriteError<W::Error, S::Error>> {
    let head = encoder.encode_head(header, body_len, None, buf)?;
    io.write_all(&buf[..head]).await.map_err(WriteError::Io)?;
    let mut hasher = BodyHasher::new(algorithms);
    let mut left = body_len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = source
            .read(&mut buf[..want])
            .await
            .map_err(WriteError::Source)?
            .min(want);
        if n == 0 {
            return Err(WriteError::SourceEnded { missing: left });
        }
        hasher.update(&buf[..n]);
        io.write_all(&buf[..n]).await.map_err(WriteError::Io)?;
        left -= n as u64;
    }
    Ok(hasher.finish())
}
