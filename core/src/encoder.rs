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
        Self::new(Profile::I32_LE)
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
        self.head(&Value(header), body_len, checksum, out)
    }

    /// Writes the head of a frame for `body`, computing the configured digest over it.
    pub fn encode_head_for<H: Serialize + ?Sized>(
        &self,
        header: &H,
        body: &[u8],
        out: &mut [u8],
    ) -> Result<usize, EncodeError> {
        self.head_for(&Value(header), body, out)
    }

    /// Writes a whole frame (head and `body`) into `out` and returns its length.
    pub fn encode_frame<H: Serialize + ?Sized>(
        &self,
        header: &H,
        body: &[u8],
        out: &mut [u8],
    ) -> Result<usize, EncodeError> {
        self.frame(&Value(header), body, out)
    }

    /// Like [`encode_head`](Self::encode_head), with the application's header given as JSON
    /// text: one object, whitespace around it ignored, for callers that have no `Serialize`
    /// type (the C ABI). It is checked as the decoder checks a header
    /// ([`EncodeError::HeaderNotObject`] if it is not one well-formed object), and its escapes
    /// are normalised as the decoder does (`\u00e9` is written as UTF-8).
    pub fn encode_head_json(
        &self,
        json: &[u8],
        body_len: u64,
        checksum: Option<Checksum>,
        out: &mut [u8],
    ) -> Result<usize, EncodeError> {
        self.head(&JsonText(json), body_len, checksum, out)
    }

    /// Like [`encode_frame`](Self::encode_frame), with the header given as JSON text (see
    /// [`encode_head_json`](Self::encode_head_json)).
    pub fn encode_frame_json(
        &self,
        json: &[u8],
        body: &[u8],
        out: &mut [u8],
    ) -> Result<usize, EncodeError> {
        self.frame(&JsonText(json), body, out)
    }

    fn head(
        &self,
        header: &impl UserHeader,
        body_len: u64,
        checksum: Option<Checksum>,
        out: &mut [u8],
    ) -> Result<usize, EncodeError> {
        let width = self.profile.width.len();
        let too_small = EncodeError::BufferTooSmall {
            capacity: out.len(),
        };
        let json_out = out.get_mut(width..).ok_or(too_small)?;
        let user_len = header.write_json(json_out).ok_or(too_small)?;
        let mut w = JsonWriter {
            out: json_out,
            len: user_len,
            too_small,
        };
        // The scan may shorten pre-escaped text (`EscapedStr`) in place: go on from its end.
        w.len = check_user_header(&mut w.out[..user_len])?;
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

    fn head_for(
        &self,
        header: &impl UserHeader,
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
        self.head(header, body.len() as u64, checksum, out)
    }

    fn frame(
        &self,
        header: &impl UserHeader,
        body: &[u8],
        out: &mut [u8],
    ) -> Result<usize, EncodeError> {
        let head = self.head_for(header, body, out)?;
        let end = head + body.len();
        let capacity = out.len();
        out.get_mut(head..end)
            .ok_or(EncodeError::BufferTooSmall { capacity })?
            .copy_from_slice(body);
        Ok(end)
    }
}

/// Where the application's part of a header comes from: a `Serialize` value or JSON text.
trait UserHeader {
    /// Writes the header's JSON into `out`; `None` when it does not fit.
    fn write_json(&self, out: &mut [u8]) -> Option<usize>;
}

/// A header value, serialized by `serde-json-core`.
struct Value<'h, H: ?Sized>(&'h H);

impl<H: Serialize + ?Sized> UserHeader for Value<'_, H> {
    fn write_json(&self, out: &mut [u8]) -> Option<usize> {
        serde_json_core::to_slice(self.0, out).ok()
    }
}

/// A header given as JSON text, copied as it is (less surrounding whitespace).
struct JsonText<'j>(&'j [u8]);

impl UserHeader for JsonText<'_> {
    fn write_json(&self, out: &mut [u8]) -> Option<usize> {
        let text = self.0.trim_ascii();
        out.get_mut(..text.len())?.copy_from_slice(text);
        Some(text.len())
    }
}

/// Refuses header values that are not objects or already carry members the encoder writes.
/// Returns the length of the text after the scanner's in-place normalisation.
fn check_user_header(json_text: &mut [u8]) -> Result<usize, EncodeError> {
    if json_text.first() != Some(&b'{') || json_text.last() != Some(&b'}') {
        return Err(EncodeError::HeaderNotObject);
    }
    // serde-json-core escapes only `"`, `\` and control characters, so scanning (which rewrites
    // other escapes in place) leaves its output unchanged, except for pre-escaped strings.
    let mut spans = json::Spans::NONE;
    let scanned =
        json::scan_header(json_text, &mut spans).map_err(|_| EncodeError::HeaderNotObject)?;
    let k = scanned.known;
    let absent = json::RawValue::Absent;
    if k.total_size != absent || k.filesize != absent || k.md5 != absent || k.xxh3 != absent {
        return Err(EncodeError::ReservedMember);
    }
    Ok(scanned.len)
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

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec::Vec;

    use serde::Serialize;

    use super::*;
    use crate::decoder::{Event, FrameDecoder};
    use crate::profile::{ByteOrder, PrefixWidth};

    #[derive(Serialize)]
    struct Named<'a> {
        name: &'a str,
    }

    /// `[L][json]` as written for a header of `json` text.
    fn seed_head(json: &str) -> Vec<u8> {
        let mut out = (json.len() as i32).to_le_bytes().to_vec();
        out.extend_from_slice(json.as_bytes());
        out
    }

    #[test]
    fn head_members_are_appended_exactly() {
        let plain = HeaderFrameEncoder::new(Profile::I32_LE).checksum(None);
        let mut out = [0u8; 128];
        // (header, body length, checksum, expected JSON)
        let xxh3 = Checksum::Xxh3(0x0011_2233_4455_6677_8899_aabb_ccdd_eeff);
        let md5 = Checksum::Md5([0xab; 16]);
        let table: [(&str, u64, Option<Checksum>, &str); 5] = [
            ("a", 0, None, r#"{"name":"a","total_size":0}"#),
            (
                "",
                u64::MAX,
                None,
                r#"{"name":"","total_size":18446744073709551615}"#,
            ),
            (
                "x",
                10,
                Some(xxh3),
                r#"{"name":"x","total_size":10,"xxh3":"00112233445566778899aabbccddeeff"}"#,
            ),
            (
                "x",
                1,
                Some(md5),
                r#"{"name":"x","total_size":1,"md5":"abababababababababababababababab"}"#,
            ),
            (
                "q\"\n\u{1}é",
                3,
                None,
                r#"{"name":"q\"\n\u0001é","total_size":3}"#,
            ),
        ];
        for (name, body_len, checksum, json) in table {
            let n = plain
                .encode_head(&Named { name }, body_len, checksum, &mut out)
                .unwrap();
            assert_eq!(out[..n], *seed_head(json), "{json}");
        }
        // A value with no members of its own.
        #[derive(Serialize)]
        struct Empty {}
        let n = plain.encode_head(&Empty {}, 7, None, &mut out).unwrap();
        assert_eq!(out[..n], *seed_head(r#"{"total_size":7}"#));
        let n = plain
            .size_field(SizeField::Filesize)
            .encode_head(&Empty {}, 7, Some(md5), &mut out)
            .unwrap();
        assert_eq!(
            out[..n],
            *seed_head(r#"{"filesize":7,"md5":"abababababababababababababababab"}"#)
        );
        assert_eq!(plain.profile(), &Profile::I32_LE);
    }

    #[test]
    fn refuses_values_that_are_not_plain_objects() {
        let encoder = HeaderFrameEncoder::new(Profile::I32_LE);
        let mut out = [0u8; 64];
        assert_eq!(
            encoder.encode_head(&5u32, 0, None, &mut out),
            Err(EncodeError::HeaderNotObject)
        );
        assert_eq!(
            encoder.encode_head("text", 0, None, &mut out),
            Err(EncodeError::HeaderNotObject)
        );
        assert_eq!(
            encoder.encode_head(&[1u8, 2], 0, None, &mut out),
            Err(EncodeError::HeaderNotObject)
        );
        #[derive(Serialize)]
        struct Sized {
            total_size: u64,
        }
        #[derive(Serialize)]
        struct Digest<'a> {
            md5: &'a str,
        }
        #[derive(Serialize)]
        struct Nested {
            inner: Sized,
        }
        assert_eq!(
            encoder.encode_head(&Sized { total_size: 1 }, 0, None, &mut out),
            Err(EncodeError::ReservedMember)
        );
        assert_eq!(
            encoder.encode_head(&Digest { md5: "x" }, 0, None, &mut out),
            Err(EncodeError::ReservedMember)
        );
        // Reserved names inside nested values are the application's business.
        let n = encoder
            .checksum(None)
            .encode_head(
                &Nested {
                    inner: Sized { total_size: 1 },
                },
                0,
                None,
                &mut out,
            )
            .unwrap();
        assert_eq!(
            out[..n],
            *seed_head(r#"{"inner":{"total_size":1},"total_size":0}"#)
        );
    }

    #[test]
    fn every_short_buffer_is_a_typed_error() {
        let encoder = HeaderFrameEncoder::new(Profile::I32_LE).checksum(Some(Algorithm::Md5));
        let md5 = Some(Checksum::Md5([1; 16]));
        let mut big = [0u8; 128];
        let full = encoder
            .encode_head(&Named { name: "f1.txt" }, 11, md5, &mut big)
            .unwrap();
        for capacity in 0..full {
            let mut out = std::vec![0u8; capacity];
            assert_eq!(
                encoder.encode_head(&Named { name: "f1.txt" }, 11, md5, &mut out),
                Err(EncodeError::BufferTooSmall { capacity }),
                "capacity {capacity}"
            );
        }
        // Whole frames: the body must fit too.
        let plain = encoder.checksum(None);
        let frame = plain
            .encode_frame(&Named { name: "a" }, b"body", &mut big)
            .unwrap();
        for capacity in 0..frame {
            let mut out = std::vec![0u8; capacity];
            assert_eq!(
                plain.encode_frame(&Named { name: "a" }, b"body", &mut out),
                Err(EncodeError::BufferTooSmall { capacity })
            );
            assert!(matches!(
                encode_plain_frame(&Profile::I32_LE, &big[..capacity], &mut out),
                Err(EncodeError::BufferTooSmall { .. })
            ));
        }
        assert_eq!(
            encode_plain_head(&Profile::I32_LE, 1, &mut [0u8; 3]),
            Err(EncodeError::BufferTooSmall { capacity: 3 })
        );
    }

    #[test]
    fn lengths_the_prefix_cannot_hold() {
        let two = Profile::new(PrefixWidth::Two, ByteOrder::Little);
        let long = [b'x'; 40_000];
        let name = core::str::from_utf8(&long).unwrap();
        let mut out = std::vec![0u8; 50_000];
        let encoder = HeaderFrameEncoder::new(two).checksum(None);
        let json_len = 9 + 40_000 + 17;
        assert_eq!(
            encoder.encode_head(&Named { name }, 0, None, &mut out),
            Err(EncodeError::LengthTooLarge {
                len: json_len,
                max: 32_767
            })
        );
        assert_eq!(
            encode_plain_frame(&two, &long, &mut out),
            Err(EncodeError::LengthTooLarge {
                len: 40_000,
                max: 32_767
            })
        );
        assert_eq!(
            encode_plain_head(&Profile::I32_LE, 1 << 31, &mut out),
            Err(EncodeError::LengthTooLarge {
                len: 1 << 31,
                max: i32::MAX as u64
            })
        );
        // A body length is JSON text, not a prefix: any u64 goes.
        let n = encoder
            .encode_head(&Named { name: "" }, u64::MAX, None, &mut out)
            .unwrap();
        assert!(n < 64);
    }

    /// A pre-escaped string (`serde_json_core::str::EscapedStr`) may hold escapes the header
    /// scanner rewrites in place; the head must stay consistent (it used to keep the old length,
    /// leaving stray bytes inside the JSON).
    #[test]
    fn pre_escaped_strings_stay_consistent() {
        #[derive(Serialize)]
        struct Raw<'a> {
            name: serde_json_core::str::EscapedStr<'a>,
        }
        let encoder = HeaderFrameEncoder::new(Profile::I32_LE).checksum(None);
        let mut out = [0u8; 128];
        let header = Raw {
            name: serde_json_core::str::EscapedStr(r"caf\u00e9 \ud83d\ude00 a\/b"),
        };
        let n = encoder.encode_frame(&header, b"xy", &mut out).unwrap();
        let mut decoder = FrameDecoder::<128>::header_frames(Profile::I32_LE);
        let (used, event) = decoder.feed(&out[..n]).unwrap();
        assert!(
            matches!(event, Event::Head(info) if info.body_len == 2),
            "{event:?}"
        );
        assert_eq!(
            decoder.header_json(),
            Some(r#"{"name":"café 😀 a/b","total_size":2}"#)
        );
        assert_eq!(
            decoder.feed(&out[used..n]).unwrap(),
            (2, Event::Body(b"xy"))
        );
    }

    #[test]
    fn json_text_headers_get_the_same_members() {
        let encoder = HeaderFrameEncoder::new(Profile::I32_LE).checksum(None);
        let mut out = [0u8; 128];
        // (JSON text, body length, expected header or error)
        let table: [(&str, u64, Result<&str, EncodeError>); 7] = [
            (
                r#"{"file_name": "a.txt"}"#,
                5,
                Ok(r#"{"file_name": "a.txt","total_size":5}"#),
            ),
            (" \n{} \t", 0, Ok(r#"{"total_size":0}"#)),
            (r#"{"a":"\u00e9\/"}"#, 1, Ok(r#"{"a":"é/","total_size":1}"#)),
            ("[1]", 0, Err(EncodeError::HeaderNotObject)),
            (r#"{"a":}"#, 0, Err(EncodeError::HeaderNotObject)),
            ("", 0, Err(EncodeError::HeaderNotObject)),
            (r#"{"md5":"x"}"#, 0, Err(EncodeError::ReservedMember)),
        ];
        for (json, body_len, expected) in table {
            let got = encoder.encode_head_json(json.as_bytes(), body_len, None, &mut out);
            let expected = expected.map(seed_head);
            assert_eq!(got.map(|n| out[..n].to_vec()), expected, "{json:?}");
        }
        // The same frame as from a typed value, digest included.
        let md5 = HeaderFrameEncoder::new(Profile::I32_LE).checksum(Some(Algorithm::Md5));
        let mut typed = [0u8; 128];
        let typed = md5
            .encode_frame(&Named { name: "a" }, b"hello", &mut typed)
            .map(|n| typed[..n].to_vec());
        let from_text = md5
            .encode_frame_json(br#"{"name":"a"}"#, b"hello", &mut out)
            .map(|n| out[..n].to_vec());
        assert_eq!(from_text, typed);
        assert_eq!(
            md5.encode_frame_json(br#"{"name":"a"}"#, b"hello", &mut out[..20]),
            Err(if Algorithm::Md5.is_supported() {
                EncodeError::BufferTooSmall { capacity: 20 }
            } else {
                EncodeError::AlgorithmUnsupported {
                    algorithm: Algorithm::Md5,
                }
            })
        );
    }

    #[cfg(not(feature = "xxh3"))]
    #[test]
    fn unsupported_checksum_is_refused() {
        let encoder = HeaderFrameEncoder::new(Profile::I32_LE).checksum(Some(Algorithm::Xxh3));
        assert_eq!(
            encoder.encode_head_for(&Named { name: "a" }, b"", &mut [0u8; 64]),
            Err(EncodeError::AlgorithmUnsupported {
                algorithm: Algorithm::Xxh3
            })
        );
    }
}
