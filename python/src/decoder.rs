//! `Decoder` and `Frame`: the core's sans-IO decoder, whole frames out.
//!
//! The work is split in two so that the GIL is held only to make Python objects:
//! [`FrameStream`] is plain Rust (bytes in, [`Decoded`] frames and at most one error out) and
//! runs detached; [`Decoder`] turns its output into `Frame`s and exceptions.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyList, PyString};
use unstick_core::{DecodeError, Event, FrameDecoder, Profile, Verdict};

use crate::{DigestMismatch, FrameError, profile};

/// The header capacities a decoder is built with: the smallest that holds `max_header`. The
/// buffer is the decoder's only memory, so the default 8 KiB stays small; 64 KiB is the most a
/// header may take.
const SMALL: usize = 8 * 1024;
/// The larger capacity (see [`SMALL`]).
pub(crate) const MAX_HEADER_LIMIT: usize = 64 * 1024;

/// The calls the package makes on a [`FrameDecoder`], whatever its capacity.
trait DecodeFrames: Send + Sync {
    fn feed<'a>(&mut self, input: &'a [u8]) -> Result<(usize, Event<'a>), DecodeError>;
    fn header_json(&self) -> Option<&str>;
    fn check_eof(&self) -> Result<(), DecodeError>;
    fn reset(&mut self);
}

impl<const CAP: usize> DecodeFrames for FrameDecoder<CAP> {
    fn feed<'a>(&mut self, input: &'a [u8]) -> Result<(usize, Event<'a>), DecodeError> {
        FrameDecoder::feed(self, input)
    }
    fn header_json(&self) -> Option<&str> {
        FrameDecoder::header_json(self)
    }
    fn check_eof(&self) -> Result<(), DecodeError> {
        FrameDecoder::check_eof(self)
    }
    fn reset(&mut self) {
        FrameDecoder::reset(self)
    }
}

/// One frame as the stream produced it, before it becomes a Python `Frame`.
struct Decoded {
    header_json: String,
    body: Vec<u8>,
    md5: Verdict,
    xxh3: Verdict,
}

/// Why [`FrameStream::feed`] stopped before the end of its input.
enum StreamError {
    /// The core's decoder refused the bytes.
    Decode(DecodeError),
    /// A frame's prefix declares a header longer than `max_header` (checked here, from the
    /// prefix alone, since the decoder's own limit is its capacity).
    HeaderOverLimit { len: i64, max: usize },
    /// Input after an error that left the stream out of sync, before a reset.
    Refused,
}

impl StreamError {
    fn message(&self) -> String {
        match self {
            StreamError::Decode(e) => e.to_string(),
            StreamError::HeaderOverLimit { len, max } => format!(
                "header of {len} bytes exceeds max_header ({max} bytes); pass a larger max_header \
                 (up to {MAX_HEADER_LIMIT}) or check the peer's framing"
            ),
            StreamError::Refused => DecodeError::Poisoned.to_string(),
        }
    }
}

/// The decoder with what surrounds it: the `max_header` check, the frame being assembled, and
/// the input left over after a digest mismatch.
struct FrameStream {
    decoder: Box<dyn DecodeFrames>,
    profile: Profile,
    max_header: usize,
    /// The current frame's prefix bytes seen so far; once all `width` are in, the frame's
    /// header length has been checked against `max_header`.
    prefix: [u8; 8],
    prefix_have: usize,
    /// The header of the frame whose body is arriving, and that body so far.
    head: Option<String>,
    body: Vec<u8>,
    /// Input not yet decoded when a digest mismatch stopped a feed: decoded first next time.
    rest: Vec<u8>,
    refused: bool,
}

impl FrameStream {
    fn new(profile: Profile, max_header: usize) -> Self {
        let decoder: Box<dyn DecodeFrames> = if max_header <= SMALL {
            Box::new(FrameDecoder::<SMALL>::header_frames(profile))
        } else {
            Box::new(FrameDecoder::<MAX_HEADER_LIMIT>::header_frames(profile))
        };
        FrameStream {
            decoder,
            profile,
            max_header,
            prefix: [0; 8],
            prefix_have: 0,
            head: None,
            body: Vec::new(),
            rest: Vec::new(),
            refused: false,
        }
    }

    fn reset(&mut self) {
        self.decoder.reset();
        self.prefix_have = 0;
        self.head = None;
        self.body = Vec::new();
        self.rest = Vec::new();
        self.refused = false;
    }

    /// Decodes `data` (after any input left over from a digest mismatch): the frames it
    /// completes, and the error that stopped it, if one did.
    fn feed(&mut self, data: &[u8]) -> (Vec<Decoded>, Option<StreamError>) {
        let mut frames = Vec::new();
        if self.refused {
            return (frames, Some(StreamError::Refused));
        }
        let leftover = std::mem::take(&mut self.rest);
        let joined;
        let input = if leftover.is_empty() {
            data
        } else {
            joined = [&leftover[..], data].concat();
            &joined[..]
        };
        let mut pos = 0;
        loop {
            if let Err(e) = self.watch_prefix(&input[pos..]) {
                return (frames, Some(e));
            }
            match self.decoder.feed(&input[pos..]) {
                Ok((used, event)) => {
                    pos += used;
                    match event {
                        Event::NeedMore => return (frames, None),
                        Event::Head(info) => {
                            let header = self.decoder.header_json().unwrap_or("{}");
                            self.head = Some(header.to_owned());
                            // What the header declares, up to 1 MiB: more grows as it arrives.
                            let expected = info.body_len.min(1 << 20) as usize;
                            self.body = Vec::with_capacity(expected);
                        }
                        Event::Body(chunk) => self.body.extend_from_slice(chunk),
                        Event::End(end) => {
                            self.prefix_have = 0;
                            frames.push(Decoded {
                                header_json: self.head.take().unwrap_or_default(),
                                body: std::mem::take(&mut self.body),
                                md5: end.md5,
                                xxh3: end.xxh3,
                            });
                        }
                    }
                }
                Err(e) => {
                    self.head = None;
                    self.body = Vec::new();
                    if e.is_recoverable() {
                        // The frame was consumed whole: the rest is the next frames' input.
                        self.prefix_have = 0;
                        self.rest = input[pos..].to_vec();
                    } else {
                        // Out of sync, as the decoder now is: refused until a reset.
                        self.refused = true;
                    }
                    return (frames, Some(StreamError::Decode(e)));
                }
            }
        }
    }

    /// Copies the prefix bytes at the start of `input` (when the decoder is in a frame's prefix)
    /// and, once the prefix is whole, refuses a header longer than `max_header` before the
    /// decoder buffers any of it.
    fn watch_prefix(&mut self, input: &[u8]) -> Result<(), StreamError> {
        let width = self.profile.width.len();
        if self.prefix_have == width {
            return Ok(());
        }
        let take = (width - self.prefix_have).min(input.len());
        self.prefix[self.prefix_have..self.prefix_have + take].copy_from_slice(&input[..take]);
        self.prefix_have += take;
        if self.prefix_have < width {
            return Ok(());
        }
        let len = profile::read_prefix(&self.profile, &self.prefix);
        if len > self.max_header as i64 {
            self.refused = true;
            return Err(StreamError::HeaderOverLimit {
                len,
                max: self.max_header,
            });
        }
        Ok(())
    }

    /// How many bytes the frame in progress still lacks, at least: the rest of its prefix,
    /// header or body, and a whole prefix between frames. 0 when input is waiting to be decoded
    /// (after a digest mismatch) or after an error.
    fn bytes_needed(&self) -> u64 {
        if self.refused || !self.rest.is_empty() {
            return 0;
        }
        match self.decoder.check_eof() {
            Err(DecodeError::UnexpectedEof { needed }) => needed,
            _ => self.profile.width.len() as u64,
        }
    }

    fn at_boundary(&self) -> bool {
        !self.refused && self.rest.is_empty() && self.prefix_have == 0
    }
}

/// Turns bytes into whole frames, ``[length][JSON header][body]``, however the bytes are cut.
///
/// ``feed(data)`` takes the bytes as they arrive, any number at a time, and returns the frames
/// they complete (often none, sometimes several). The header is checked before it is parsed:
/// well-formed JSON, an object, at most ``max_header`` bytes (up to 65536), nested at most 32
/// levels; ``"total_size"`` (or the seed's ``"filesize"``) gives the body's length, refused above
/// ``max_body`` before a body byte is read; an ``"md5"`` or ``"xxh3"`` member is checked against
/// the body.
///
/// ``profile`` is the length prefix: ``"seed"`` (4 bytes, little-endian, as the seed's
/// ``struct.pack('i')``), or ``"i16-le"``, ``"i16-be"``, ``"i32-le"``, ``"i32-be"``,
/// ``"i64-le"``, ``"i64-be"``.
#[pyclass(module = "unstick")]
pub(crate) struct Decoder {
    stream: FrameStream,
}

#[pymethods]
impl Decoder {
    #[new]
    #[pyo3(signature = (profile = "seed", max_header = 8192, max_body = None))]
    fn new(profile: &str, max_header: usize, max_body: Option<u64>) -> PyResult<Self> {
        let mut profile = profile::parse(profile)?;
        if !(2..=MAX_HEADER_LIMIT).contains(&max_header) {
            return Err(PyValueError::new_err(format!(
                "max_header must be between 2 (the header `{{}}`) and {MAX_HEADER_LIMIT}, not {max_header}"
            )));
        }
        if let Some(max_body) = max_body {
            profile = profile.with_max_body_len(max_body);
        }
        Ok(Decoder {
            stream: FrameStream::new(profile, max_header),
        })
    }

    /// Decodes ``data`` (bytes or bytearray) and returns the frames it completes, in order.
    ///
    /// Raises FrameError when the bytes cannot be frames; its ``frames`` attribute holds the
    /// frames completed before the error. After a DigestMismatch, call feed() again (with
    /// b"" or more bytes) to go on; after any other FrameError the decoder refuses input until
    /// reset().
    fn feed<'py>(
        &mut self,
        py: Python<'py>,
        data: PyBackedBytes,
    ) -> PyResult<Vec<Bound<'py, Frame>>> {
        let stream = &mut self.stream;
        let (decoded, error) = py.detach(|| stream.feed(&data));
        let mut frames = Vec::with_capacity(decoded.len());
        for d in decoded {
            frames.push(Bound::new(py, Frame::from_decoded(py, d)?)?);
        }
        match error {
            None => Ok(frames),
            Some(e) => {
                let err = match &e {
                    StreamError::Decode(d) if d.is_recoverable() => {
                        DigestMismatch::new_err(e.message())
                    }
                    _ => FrameError::new_err(e.message()),
                };
                err.value(py).setattr("frames", PyList::new(py, frames)?)?;
                Err(err)
            }
        }
    }

    /// Forgets any partial frame, leftover input and error, ready for a new stream.
    fn reset(&mut self) {
        self.stream.reset();
    }

    /// The fewest bytes that finish the next part of the current frame (the rest of its
    /// prefix, header or body; a whole prefix between frames). Reading at most this many never
    /// reads into the next frame. 0 after an error, or while input left over from a
    /// DigestMismatch waits for feed(b"").
    #[getter]
    fn bytes_needed(&self) -> u64 {
        self.stream.bytes_needed()
    }

    /// Whether the decoder is between frames: no byte of a next frame has arrived, so the
    /// stream may end here. False after an error, until reset().
    #[getter]
    fn at_boundary(&self) -> bool {
        self.stream.at_boundary()
    }

    /// The largest header this decoder accepts, in bytes.
    #[getter]
    fn max_header(&self) -> usize {
        self.stream.max_header
    }

    fn __repr__(&self) -> String {
        format!(
            "Decoder(max_header={}, max_body={})",
            self.stream.max_header,
            match self.stream.profile.max_body_len {
                u64::MAX => "None".to_owned(),
                n => n.to_string(),
            }
        )
    }
}

/// One decoded frame: ``header`` (a dict), ``body`` (bytes), and the verdicts on the digests its
/// header declared, ``md5`` and ``xxh3``: ``"verified"``, ``"absent"`` (none declared),
/// ``"not_a_digest"`` (a member that is no digest, like the seed's placeholder
/// ``"fdsaf2143254f"``) or ``"unsupported"``. A digest that does not match never makes a Frame:
/// it raises DigestMismatch.
#[pyclass(module = "unstick", frozen)]
pub(crate) struct Frame {
    /// The header as a dict, parsed by Python's ``json`` from the decoder's checked text.
    #[pyo3(get)]
    header: Py<PyAny>,
    /// The body.
    #[pyo3(get)]
    body: Py<PyBytes>,
    /// The header as the decoder checked it: JSON text, ``\uXXXX`` escapes decoded.
    #[pyo3(get)]
    header_json: Py<PyString>,
    md5: Verdict,
    xxh3: Verdict,
}

/// `json.loads`, looked up once.
static JSON_LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

impl Frame {
    fn from_decoded(py: Python<'_>, d: Decoded) -> PyResult<Frame> {
        let loads = JSON_LOADS.get_or_try_init(py, || {
            py.import("json")?.getattr("loads").map(Bound::unbind)
        })?;
        let header_json = PyString::new(py, &d.header_json);
        Ok(Frame {
            header: loads.call1(py, (&header_json,))?,
            body: PyBytes::new(py, &d.body).unbind(),
            header_json: header_json.unbind(),
            md5: d.md5,
            xxh3: d.xxh3,
        })
    }
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Verified => "verified",
        Verdict::Absent => "absent",
        Verdict::NotADigest => "not_a_digest",
        Verdict::Unsupported => "unsupported",
    }
}

#[pymethods]
impl Frame {
    /// The verdict on the header's ``"md5"``.
    #[getter]
    fn md5(&self) -> &'static str {
        verdict_name(self.md5)
    }

    /// The verdict on the header's ``"xxh3"``.
    #[getter]
    fn xxh3(&self) -> &'static str {
        verdict_name(self.xxh3)
    }

    /// Whether a declared digest was checked and matched.
    #[getter]
    fn verified(&self) -> bool {
        self.md5 == Verdict::Verified || self.xxh3 == Verdict::Verified
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Frame(header={}, body={}, md5='{}', xxh3='{}')",
            self.header.bind(py).repr()?,
            self.body.bind(py).repr()?,
            self.md5(),
            self.xxh3()
        ))
    }
}
