//! Error types: one enum per operation (decoding, encoding, typed header views).

use core::fmt;

use crate::digest::Algorithm;
use crate::header_view::ShapeError;
use crate::json::JsonError;

/// The header member a body length was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SizeField {
    /// `"total_size"` (the seed's shell replies, and unstick's encoders).
    TotalSize,
    /// `"filesize"` (the seed's upload client).
    Filesize,
}

impl SizeField {
    /// The member name.
    pub const fn member(self) -> &'static str {
        match self {
            SizeField::TotalSize => "total_size",
            SizeField::Filesize => "filesize",
        }
    }
}

/// Why a byte stream could not be decoded into frames.
///
/// Errors from the prefix or the header leave the stream out of sync (the decoder cannot know
/// where the next frame starts): the decoder then refuses input with [`DecodeError::Poisoned`]
/// until [`reset`](crate::FrameDecoder::reset), and the usual answer is to report the error to the
/// peer and close the connection. [`DecodeError::ChecksumMismatch`] is the exception: it is raised
/// at the end of a frame whose length was honoured, so the decoder is at the next frame boundary
/// and can go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecodeError {
    /// The length prefix is negative (a set top bit; e.g. `ff ff ff ff` is -1).
    NegativeLength {
        /// The length as read.
        len: i64,
    },
    /// A header frame declares a header of 0 bytes; a header is at least `{}`.
    EmptyHeader,
    /// The declared header length exceeds the decoder's header capacity. Raised from the prefix
    /// alone, before any header byte is buffered.
    HeaderTooLarge {
        /// Declared header length.
        len: u64,
        /// The decoder's capacity (its `CAP` parameter).
        cap: usize,
    },
    /// The header is not a well-formed JSON object, or breaks a scanner limit.
    HeaderNotJson(JsonError),
    /// `total_size` or `filesize` is not a non-negative integer that fits in 64 bits (and not
    /// `null`).
    BodyLengthInvalid {
        /// Which member.
        field: SizeField,
    },
    /// `total_size` and `filesize` are both present and disagree.
    SizeMismatch {
        /// The `total_size` value.
        total_size: u64,
        /// The `filesize` value.
        filesize: u64,
    },
    /// The declared body length exceeds the profile's `max_body_len`. Raised before any body
    /// byte is read.
    BodyTooLarge {
        /// Declared body length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// An `"xxh3"` member is not 32 hex digits. (A malformed `"md5"` is tolerated as
    /// unverifiable, because the seed's scripts send a placeholder there.)
    ChecksumMalformed {
        /// Which member.
        algorithm: Algorithm,
    },
    /// The body does not match the digest its header declared. The frame has been consumed whole
    /// and the decoder is at the next frame boundary; its declared and computed digests are
    /// [`FrameDecoder::declared_digests`](crate::FrameDecoder::declared_digests) and
    /// [`FrameDecoder::digests`](crate::FrameDecoder::digests) until the next frame's head.
    ChecksumMismatch {
        /// Which digest failed.
        algorithm: Algorithm,
    },
    /// The stream ended inside a frame.
    UnexpectedEof {
        /// At least this many more bytes were needed to finish the frame.
        needed: u64,
    },
    /// An earlier prefix or header error left the stream out of sync; the decoder takes no input
    /// until [`reset`](crate::FrameDecoder::reset).
    Poisoned,
}

impl DecodeError {
    /// Whether the decoder stays at a frame boundary after this error and can decode the next
    /// frame without a reset.
    pub const fn is_recoverable(&self) -> bool {
        matches!(self, DecodeError::ChecksumMismatch { .. })
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::NegativeLength { len } => write!(
                f,
                "length prefix is negative ({len}); the peer is not speaking this framing or uses another prefix width/byte order"
            ),
            DecodeError::EmptyHeader => f.write_str("header length is 0; a header is at least `{}`"),
            DecodeError::HeaderTooLarge { len, cap } => write!(
                f,
                "header of {len} bytes exceeds this decoder's capacity of {cap} bytes; raise the capacity or check the peer's framing"
            ),
            DecodeError::HeaderNotJson(e) => write!(
                f,
                "header {} (at byte {} of the header)",
                e.problem.as_str(),
                e.offset
            ),
            DecodeError::BodyLengthInvalid { field } => write!(
                f,
                "header member `{}` must be a non-negative integer below 2^64",
                field.member()
            ),
            DecodeError::SizeMismatch {
                total_size,
                filesize,
            } => write!(
                f,
                "header says total_size {total_size} but filesize {filesize}; the body length is ambiguous"
            ),
            DecodeError::BodyTooLarge { len, max } => write!(
                f,
                "body of {len} bytes exceeds the limit of {max} bytes"
            ),
            DecodeError::ChecksumMalformed { algorithm } => write!(
                f,
                "header member `{algorithm}` must be 32 hex digits"
            ),
            DecodeError::ChecksumMismatch { algorithm } => write!(
                f,
                "body does not match its {algorithm} digest: the data was corrupted or truncated in transit"
            ),
            DecodeError::UnexpectedEof { needed } => write!(
                f,
                "stream ended inside a frame; at least {needed} more bytes were expected"
            ),
            DecodeError::Poisoned => f.write_str(
                "an earlier framing error left the stream out of sync; reset the decoder (and usually close the connection)",
            ),
        }
    }
}

impl core::error::Error for DecodeError {}

/// Why a frame could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EncodeError {
    /// A length does not fit in the profile's prefix.
    LengthTooLarge {
        /// The length.
        len: u64,
        /// The largest length the prefix holds.
        max: u64,
    },
    /// The output buffer is too small for the frame (or its head).
    BufferTooSmall {
        /// Size of the buffer that was given.
        capacity: usize,
    },
    /// The header value did not serialize to a JSON object.
    HeaderNotObject,
    /// The header value already has a member the encoder writes itself (`total_size`,
    /// `filesize`, `md5`, `xxh3`); leave it out and configure the encoder instead.
    ReservedMember,
    /// The checksum asked for is not compiled in (its cargo feature is off).
    AlgorithmUnsupported {
        /// The algorithm.
        algorithm: Algorithm,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::LengthTooLarge { len, max } => write!(
                f,
                "length {len} does not fit in the length prefix (at most {max}); use a wider prefix"
            ),
            EncodeError::BufferTooSmall { capacity } => write!(
                f,
                "output buffer of {capacity} bytes is too small for the frame; pass a larger one"
            ),
            EncodeError::HeaderNotObject => {
                f.write_str("header value must serialize to a JSON object (a struct or map) nested at most 32 levels deep")
            }
            EncodeError::ReservedMember => f.write_str(
                "header value has a total_size, filesize, md5 or xxh3 member; the encoder writes those itself",
            ),
            EncodeError::AlgorithmUnsupported { algorithm } => write!(
                f,
                "{algorithm} support is not compiled in; enable the `{algorithm}` feature of unstick-core"
            ),
        }
    }
}

impl core::error::Error for EncodeError {}

/// Why a typed view of a header could not be produced.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// No header is available: the frame has no JSON header (a plain frame), or no header frame
    /// has been decoded since the last reset.
    NoHeader,
    /// The header JSON does not have the members or types the view expects, or a borrowed `&str`
    /// field would need an escape decoded (use `heapless::String` for such fields). It names
    /// the member where it can.
    Shape(ShapeError),
    /// A string in the header needs more room to unescape than the scratch space has; pass a
    /// larger buffer to [`header_with_scratch`](crate::FrameDecoder::header_with_scratch).
    ScratchTooSmall,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::NoHeader => f.write_str("no JSON header has been decoded"),
            HeaderError::Shape(e) => write!(f, "header does not match the expected fields: {e}"),
            HeaderError::ScratchTooSmall => f.write_str(
                "a header string needs more room to unescape than the scratch buffer has",
            ),
        }
    }
}

impl core::error::Error for HeaderError {}

/// Why a driver could not read the next frame or event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadError<E> {
    /// The byte source failed.
    Io(E),
    /// The bytes are not valid frames (this includes [`DecodeError::UnexpectedEof`]).
    Decode(DecodeError),
    /// [`read_frame`](crate::blocking::FrameReader::read_frame) was given a body buffer smaller
    /// than the frame's body.
    BodyExceedsBuffer {
        /// Body length.
        len: u64,
        /// Size of the buffer given.
        capacity: usize,
    },
    /// The driver's input buffer has no room (it was created with an empty buffer).
    BufferEmpty,
}

impl<E> From<DecodeError> for ReadError<E> {
    fn from(e: DecodeError) -> Self {
        ReadError::Decode(e)
    }
}

impl<E: fmt::Debug> fmt::Display for ReadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "read failed: {e:?}"),
            ReadError::Decode(e) => fmt::Display::fmt(e, f),
            ReadError::BodyExceedsBuffer { len, capacity } => write!(
                f,
                "frame body of {len} bytes does not fit the {capacity}-byte buffer given for it"
            ),
            ReadError::BufferEmpty => {
                f.write_str("the frame reader was given an empty input buffer")
            }
        }
    }
}

impl<E: fmt::Debug> core::error::Error for ReadError<E> {}

/// Why a driver could not write a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteError<E, S = core::convert::Infallible> {
    /// The byte sink failed.
    Io(E),
    /// The frame could not be encoded.
    Encode(EncodeError),
    /// The body's source failed.
    Source(S),
    /// The body's source ended before the declared body length.
    SourceEnded {
        /// Bytes that were still due.
        missing: u64,
    },
}

impl<E, S> From<EncodeError> for WriteError<E, S> {
    fn from(e: EncodeError) -> Self {
        WriteError::Encode(e)
    }
}

impl<E: fmt::Debug, S: fmt::Debug> fmt::Display for WriteError<E, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Io(e) => write!(f, "write failed: {e:?}"),
            WriteError::Encode(e) => fmt::Display::fmt(e, f),
            WriteError::Source(e) => write!(f, "reading the body failed: {e:?}"),
            WriteError::SourceEnded { missing } => write!(
                f,
                "the body's source ended {missing} bytes short of the declared length"
            ),
        }
    }
}

impl<E: fmt::Debug, S: fmt::Debug> core::error::Error for WriteError<E, S> {}
