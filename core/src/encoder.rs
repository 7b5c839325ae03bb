//! Frame encoders: write a frame's head (prefix and JSON header) into a caller's buffer.
//!
//! The body itself is never copied by the encoder: write it after the head, straight from where
//! it lives. [`encode_frame`](HeaderFrameEncoder::encode_frame) is the one-call form for bodies
//! that are already in memory and fit in the output buffer.

use serde::Serialize;

use crate::digest::{Algorithm, Algorithms, Checksum, digest_of};
use crate::error::{EncodeError, SizeField};
use crate::json;
use crate::profile::Profile;

/// Writes header frames: `[L][JSON header][body]`.
///
/// The encoder adds the body length (as `"total_size"`, or `"filesize"` for the seed's upload
/// server) and, for bodies given as a slice, a digest (`"xxh3"` by default, or `"md5"`) to the
/// application's header value. For bodies that are streamed, hash while sending with a
/// [`BodyHasher`](crate::BodyHasher) and carry the digest in a later frame, so that the first
/// byte goes out without a hashing pass over the whole body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderFrameEncoder {
    profile: Profile,
    size_field: SizeField,
    checksum: Option<Algorithm>,
}

impl Default for HeaderFrameEncoder {
    fn default() -> Self {
        Self::new(Profile::SEED)
    }
}

impl HeaderFrameEncoder {
    /// An encoder writing `"total_size"` and, when the `xxh3` feature is on, an `"xxh3"` digest
    /// of slice bodies.
    pub const fn new(profile: Profile) -> Self {
        HeaderFrameEncoder {
            profile,
            size_field: SizeField::TotalSize,
            checksum: if cfg!(feature = "xxh3") {
                Some(Algorithm::Xxh3)
            } else {
                None
            },
        }
    }

    /// Which member carries the body length.
    pub const fn size_field(mut self, field: SizeField) -> Self {
        self.size_field = field;
        self
    }

    /// Which digest [`encode_head_for`](Self::encode_head_for) and
    /// [`encode_frame`](Self::encode_frame) put in the header (`None` for no digest).
    pub const fn checksum(mut self, algorithm: Option<Algorithm>) -> Self {
        self.checksum = algorithm;
        self
    }

    /// The profile this encoder writes.
    pub const fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Writes the head of a frame whose body is `body_len` bytes into `out`: the prefix, then
    /// `header` as JSON with the size member and `checksum` (if any) added. Returns the head's
    /// length; the caller sends `out[..n]` and then the body.
    pub fn encode_head<H: Serialize + ?Sized>(
        &self,
        header: &H,
        body_len: u64,
        checksum: Option<Checksum>,
        out: &mut [u8],
    ) -> Result<usize, EncodeError> {
        let width = self.profile.width.len();
        let too_small = EncodeError::BufferTooSmall {
            capacity: out.len(),
        };
        let json_out = out.get_mut(width..).ok_or(too_small)?;
        let user_len = serde_json_core::to_slice(header, json_out).map_err(|_| too_small)?;
        let mut w = JsonWriter {
            out: json_out,
            len: user_len,
            too_small,
        };
        check_user_header(&mut w.out[..user_len])?;
        // Reopen the object: drop the closing brace, add our members, close it again.
        w.len -= 1;
        let empty = w.out[..w.len]
            .iter()
            .rev()
            .find(|b| !b.is_ascii_whitespace())
            == Some(&b'{');
        w.member_start(self.size_field.member(), !empty)?;
        w.number(body_len)?;
        if let Some(checksum) = checksum {
            w.member_start(checksum.algorithm().member(), true)?;
            w.raw(b"\"")?;
            w.raw(checksum.to_hex().as_str().as_bytes())?;
            w.raw(b"\"")?;
        }
        w.raw(b"}")?;
        let header_len = w.len;
        self.profile.write_prefix(header_len as u64, out)?;
        Ok(width + header_len)
    }

    /// Writes the head of a frame for `body`, computing the configured digest over it.
    pub fn encode_head_for<H: Serialize + ?Sized>(
        &self,
        header: &H,
        body: &[u8],
        out: &mut [u8],
    ) -> Result<usize, EncodeError> {
        let checksum = match self.checksum {
            None => None,
            Some(algorithm) if !algorithm.is_supported() => {
                return Err(EncodeError::AlgorithmUnsupported { algorithm });
            }
            Some(algorithm) => digest_of(Algorithms::only(algorithm), body).get(algorithm),
        };
        self.encode_head(header, body.len() as u64, checksum, out)
    }

    /// Writes a whole frame (head and `body`) into `out` and returns its length.
    pub fn encode_frame<H: Serialize + ?Sized>(
        &self,
        header: &H,
        body: &[u8],
        out: &mut [u8],
    ) -> Result<usize, EncodeError> {
        let head = self.encode_head_for(header, body, out)?;
        let end = head + body.len();
        let capacity = out.len();
        out.get_mut(head..end)
            .ok_or(EncodeError::BufferTooSmall { capacity })?
            .copy_from_slice(body);
        Ok(end)
    }
}

/// Refuses header values that are not objects or already carry members the encoder writes.
fn check_user_header(json_text: &mut [u8]) -> Result<(), EncodeError> {
    if json_text.first() != Some(&b'{') || json_text.last() != Some(&b'}') {
        return Err(EncodeError::HeaderNotObject);
    }
    // serde-json-core escapes only `"`, `\` and control characters, so scanning (which rewrites
    // other escapes in place) leaves its output unchanged.
    let scanned = json::scan_header(json_text).map_err(|_| EncodeError::HeaderNotObject)?;
    let k = scanned.known;
    let absent = json::RawValue::Absent;
    if k.total_size != absent || k.filesize != absent || k.md5 != absent || k.xxh3 != absent {
        return Err(EncodeError::ReservedMember);
    }
    Ok(())
}

struct JsonWriter<'o> {
    out: &'o mut [u8],
    len: usize,
    too_small: EncodeError,
}

impl JsonWriter<'_> {
    fn raw(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let end = self.len + bytes.len();
        self.out
            .get_mut(self.len..end)
            .ok_or(self.too_small)?
            .copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    fn member_start(&mut self, name: &str, comma: bool) -> Result<(), EncodeError> {
        if comma {
            self.raw(b",")?;
        }
        self.raw(b"\"")?;
        self.raw(name.as_bytes())?;
        self.raw(b"\":")
    }

    fn number(&mut self, mut n: u64) -> Result<(), EncodeError> {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.raw(&digits[i..])
    }
}

/// Writes the prefix of a plain frame (`[N][N bytes]`) for a body of `body_len` bytes into `out`
/// and returns the prefix length.
pub fn encode_plain_head(
    profile: &Profile,
    body_len: u64,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    profile.write_prefix(body_len, out)
}

/// Writes a whole plain frame into `out` and returns its length.
pub fn encode_plain_frame(
    profile: &Profile,
    body: &[u8],
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    let head = profile.write_prefix(body.len() as u64, out)?;
    let end = head + body.len();
    let capacity = out.len();
    out.get_mut(head..end)
        .ok_or(EncodeError::BufferTooSmall { capacity })?
        .copy_from_slice(body);
    Ok(end)
}
