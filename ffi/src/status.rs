//! The one status every function returns, and its names and messages as static C strings.

use core::ffi::{CStr, c_char};

use unstick_core::{Algorithm, DecodeError, EncodeError};

/// What a call did: `UNSTICK_STATUS_OK` (0) or why it failed, named by phase: `ARG_` for the
/// arguments (nothing was read or written), `DECODE_` for the input stream, `ENCODE_` for a frame
/// to write.
///
/// After a `DECODE_` status other than `DECODE_MD5_MISMATCH` and `DECODE_XXH3_MISMATCH` the
/// stream is out of sync: the decoder refuses input (`DECODE_POISONED`) until
/// `unstick_decoder_reset`, and the usual answer is to close the connection. A mismatch ends its
/// frame whole and leaves the decoder at the next frame.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnstickStatus {
    /// Success.
    Ok = 0,
    /// A pointer that must not be null is null.
    ArgNullPointer = 1,
    /// A length is above `PTRDIFF_MAX`.
    ArgLengthInvalid = 2,
    /// The memory given to `unstick_decoder_init` is smaller than the decoder (after aligning).
    ArgMemoryTooSmall = 3,
    /// A profile's prefix width is not 2, 4 or 8, or its byte order is unknown.
    ArgProfileInvalid = 4,
    /// The format is not an `UNSTICK_FORMAT_*` value.
    ArgFormatInvalid = 5,
    /// The digest is not an `UNSTICK_DIGEST_*` value.
    ArgDigestInvalid = 6,
    /// The length prefix is negative (its top bit is set).
    DecodeNegativeLength = 10,
    /// A header frame declares a header of 0 bytes.
    DecodeEmptyHeader = 11,
    /// The declared header is longer than `UNSTICK_HEADER_CAP`.
    DecodeHeaderTooLarge = 12,
    /// The header is not one well-formed JSON object, or breaks a scanner limit.
    DecodeHeaderNotJson = 13,
    /// `total_size` or `filesize` is not a non-negative integer below 2^64.
    DecodeBodyLengthInvalid = 14,
    /// `total_size` and `filesize` disagree.
    DecodeSizeMismatch = 15,
    /// The declared body is longer than the profile's `max_body_len`.
    DecodeBodyTooLarge = 16,
    /// An `"xxh3"` member is not 32 hex digits.
    DecodeDigestMalformed = 17,
    /// The body does not match its `"md5"`; the frame is consumed and the decoder is at the next.
    DecodeMd5Mismatch = 18,
    /// The body does not match its `"xxh3"`; the frame is consumed and the decoder is at the next.
    DecodeXxh3Mismatch = 19,
    /// The stream ended inside a frame (`unstick_decoder_check_eof`).
    DecodeUnexpectedEof = 20,
    /// An earlier error left the stream out of sync; reset the decoder.
    DecodePoisoned = 21,
    /// A decoding error this version of the ABI has no name for.
    DecodeOther = 29,
    /// A length does not fit in the profile's prefix.
    EncodeLengthTooLarge = 30,
    /// The output buffer is too small for the frame.
    EncodeBufferTooSmall = 31,
    /// The header text is not one well-formed JSON object.
    EncodeHeaderNotObject = 32,
    /// The header already has `total_size`, `filesize`, `md5` or `xxh3`, which the encoder writes.
    EncodeReservedMember = 33,
    /// The digest asked for is not compiled in (a cargo feature of this library is off).
    EncodeDigestUnsupported = 34,
    /// An encoding error this version of the ABI has no name for.
    EncodeOther = 39,
}

/// Every status, for lookups by code.
const ALL: [UnstickStatus; 26] = {
    use UnstickStatus::*;
    [
        Ok,
        ArgNullPointer,
        ArgLengthInvalid,
        ArgMemoryTooSmall,
        ArgProfileInvalid,
        ArgFormatInvalid,
        ArgDigestInvalid,
        DecodeNegativeLength,
        DecodeEmptyHeader,
        DecodeHeaderTooLarge,
        DecodeHeaderNotJson,
        DecodeBodyLengthInvalid,
        DecodeSizeMismatch,
        DecodeBodyTooLarge,
        DecodeDigestMalformed,
        DecodeMd5Mismatch,
        DecodeXxh3Mismatch,
        DecodeUnexpectedEof,
        DecodePoisoned,
        DecodeOther,
        EncodeLengthTooLarge,
        EncodeBufferTooSmall,
        EncodeHeaderNotObject,
        EncodeReservedMember,
        EncodeDigestUnsupported,
        EncodeOther,
    ]
};

impl UnstickStatus {
    /// The status with this code, if there is one.
    pub fn from_code(code: i32) -> Option<UnstickStatus> {
        ALL.into_iter().find(|s| *s as i32 == code)
    }

    /// The name of its constant in `unstick.h`.
    pub fn name(self) -> &'static CStr {
        use UnstickStatus::*;
        match self {
            Ok => c"UNSTICK_STATUS_OK",
            ArgNullPointer => c"UNSTICK_STATUS_ARG_NULL_POINTER",
            ArgLengthInvalid => c"UNSTICK_STATUS_ARG_LENGTH_INVALID",
            ArgMemoryTooSmall => c"UNSTICK_STATUS_ARG_MEMORY_TOO_SMALL",
            ArgProfileInvalid => c"UNSTICK_STATUS_ARG_PROFILE_INVALID",
            ArgFormatInvalid => c"UNSTICK_STATUS_ARG_FORMAT_INVALID",
            ArgDigestInvalid => c"UNSTICK_STATUS_ARG_DIGEST_INVALID",
            DecodeNegativeLength => c"UNSTICK_STATUS_DECODE_NEGATIVE_LENGTH",
            DecodeEmptyHeader => c"UNSTICK_STATUS_DECODE_EMPTY_HEADER",
            DecodeHeaderTooLarge => c"UNSTICK_STATUS_DECODE_HEADER_TOO_LARGE",
            DecodeHeaderNotJson => c"UNSTICK_STATUS_DECODE_HEADER_NOT_JSON",
            DecodeBodyLengthInvalid => c"UNSTICK_STATUS_DECODE_BODY_LENGTH_INVALID",
            DecodeSizeMismatch => c"UNSTICK_STATUS_DECODE_SIZE_MISMATCH",
            DecodeBodyTooLarge => c"UNSTICK_STATUS_DECODE_BODY_TOO_LARGE",
            DecodeDigestMalformed => c"UNSTICK_STATUS_DECODE_DIGEST_MALFORMED",
            DecodeMd5Mismatch => c"UNSTICK_STATUS_DECODE_MD5_MISMATCH",
            DecodeXxh3Mismatch => c"UNSTICK_STATUS_DECODE_XXH3_MISMATCH",
            DecodeUnexpectedEof => c"UNSTICK_STATUS_DECODE_UNEXPECTED_EOF",
            DecodePoisoned => c"UNSTICK_STATUS_DECODE_POISONED",
            DecodeOther => c"UNSTICK_STATUS_DECODE_OTHER",
            EncodeLengthTooLarge => c"UNSTICK_STATUS_ENCODE_LENGTH_TOO_LARGE",
            EncodeBufferTooSmall => c"UNSTICK_STATUS_ENCODE_BUFFER_TOO_SMALL",
            EncodeHeaderNotObject => c"UNSTICK_STATUS_ENCODE_HEADER_NOT_OBJECT",
            EncodeReservedMember => c"UNSTICK_STATUS_ENCODE_RESERVED_MEMBER",
            EncodeDigestUnsupported => c"UNSTICK_STATUS_ENCODE_DIGEST_UNSUPPORTED",
            EncodeOther => c"UNSTICK_STATUS_ENCODE_OTHER",
        }
    }

    /// A sentence saying what happened and what to do about it.
    pub fn message(self) -> &'static CStr {
        use UnstickStatus::*;
        match self {
            Ok => c"success",
            ArgNullPointer => c"a pointer argument is null; pass valid memory",
            ArgLengthInvalid => c"a length argument is above PTRDIFF_MAX",
            ArgMemoryTooSmall => {
                c"the decoder's memory is too small; give unstick_decoder_size() bytes aligned to unstick_decoder_align(), or UNSTICK_DECODER_STORAGE_SIZE bytes"
            }
            ArgProfileInvalid => {
                c"the profile's prefix width must be 2, 4 or 8 and its byte order an UNSTICK_BYTE_ORDER_* value"
            }
            ArgFormatInvalid => c"the format must be UNSTICK_FORMAT_HEADER or UNSTICK_FORMAT_PLAIN",
            ArgDigestInvalid => c"the digest must be an UNSTICK_DIGEST_* value",
            DecodeNegativeLength => {
                c"length prefix is negative; the peer is not speaking this framing or uses another prefix width/byte order"
            }
            DecodeEmptyHeader => c"header length is 0; a header is at least `{}`",
            DecodeHeaderTooLarge => {
                c"header exceeds UNSTICK_HEADER_CAP bytes; check the peer's framing"
            }
            DecodeHeaderNotJson => {
                c"header is not one well-formed JSON object (or nests deeper than 32 levels)"
            }
            DecodeBodyLengthInvalid => {
                c"header member total_size or filesize must be a non-negative integer below 2^64"
            }
            DecodeSizeMismatch => {
                c"header's total_size and filesize disagree; the body length is ambiguous"
            }
            DecodeBodyTooLarge => c"body exceeds the profile's max_body_len",
            DecodeDigestMalformed => c"header member xxh3 must be 32 hex digits",
            DecodeMd5Mismatch => {
                c"body does not match its md5 digest: the data was corrupted or truncated in transit"
            }
            DecodeXxh3Mismatch => {
                c"body does not match its xxh3 digest: the data was corrupted or truncated in transit"
            }
            DecodeUnexpectedEof => c"stream ended inside a frame",
            DecodePoisoned => {
                c"an earlier framing error left the stream out of sync; reset the decoder (and usually close the connection)"
            }
            DecodeOther => c"the stream cannot be decoded; reset the decoder",
            EncodeLengthTooLarge => {
                c"a length does not fit in the profile's length prefix; use a wider prefix"
            }
            EncodeBufferTooSmall => {
                c"output buffer is too small for the frame; pass a larger one"
            }
            EncodeHeaderNotObject => {
                c"header must be one JSON object nested at most 32 levels deep"
            }
            EncodeReservedMember => {
                c"header has a total_size, filesize, md5 or xxh3 member; the encoder writes those itself"
            }
            EncodeDigestUnsupported => {
                c"that digest is not compiled into this library (its cargo feature is off)"
            }
            EncodeOther => c"the frame cannot be encoded",
        }
    }
}

impl From<DecodeError> for UnstickStatus {
    fn from(e: DecodeError) -> Self {
        use UnstickStatus::*;
        match e {
            DecodeError::NegativeLength { .. } => DecodeNegativeLength,
            DecodeError::EmptyHeader => DecodeEmptyHeader,
            DecodeError::HeaderTooLarge { .. } => DecodeHeaderTooLarge,
            DecodeError::HeaderNotJson(_) => DecodeHeaderNotJson,
            DecodeError::BodyLengthInvalid { .. } => DecodeBodyLengthInvalid,
            DecodeError::SizeMismatch { .. } => DecodeSizeMismatch,
            DecodeError::BodyTooLarge { .. } => DecodeBodyTooLarge,
            DecodeError::ChecksumMalformed { .. } => DecodeDigestMalformed,
            DecodeError::ChecksumMismatch {
                algorithm: Algorithm::Md5,
            } => DecodeMd5Mismatch,
            DecodeError::ChecksumMismatch {
                algorithm: Algorithm::Xxh3,
            } => DecodeXxh3Mismatch,
            DecodeError::UnexpectedEof { .. } => DecodeUnexpectedEof,
            DecodeError::Poisoned => DecodePoisoned,
            _ => DecodeOther,
        }
    }
}

impl From<EncodeError> for UnstickStatus {
    fn from(e: EncodeError) -> Self {
        use UnstickStatus::*;
        match e {
            EncodeError::LengthTooLarge { .. } => EncodeLengthTooLarge,
            EncodeError::BufferTooSmall { .. } => EncodeBufferTooSmall,
            EncodeError::HeaderNotObject => EncodeHeaderNotObject,
            EncodeError::ReservedMember => EncodeReservedMember,
            EncodeError::AlgorithmUnsupported { .. } => EncodeDigestUnsupported,
            _ => EncodeOther,
        }
    }
}

/// The name of a status's constant (`"UNSTICK_STATUS_DECODE_MD5_MISMATCH"`), or
/// `"UNSTICK_STATUS_UNKNOWN"` for a code that is none: a static, NUL-terminated string.
#[unsafe(no_mangle)]
pub extern "C" fn unstick_status_name(code: i32) -> *const c_char {
    UnstickStatus::from_code(code)
        .map_or(c"UNSTICK_STATUS_UNKNOWN", UnstickStatus::name)
        .as_ptr()
}

/// A sentence saying what a status means and what to do about it, or `"unknown status"`: a
/// static, NUL-terminated string.
#[unsafe(no_mangle)]
pub extern "C" fn unstick_status_message(code: i32) -> *const c_char {
    UnstickStatus::from_code(code)
        .map_or(c"unknown status", UnstickStatus::message)
        .as_ptr()
}
