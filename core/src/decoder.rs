//! The sans-IO frame decoder.

use serde::Deserialize;

use crate::digest::{Algorithm, Algorithms, BodyHasher, Checksum, Digests};
use crate::error::{DecodeError, HeaderError, SizeField};
use crate::json::{self, RawValue};
use crate::profile::Profile;

/// Which framing a [`FrameDecoder`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// `[header length][JSON header][body]`, the body length taken from the header.
    Header,
    /// `[body length][body]`.
    Plain,
}

/// Where the decoder is inside the frame, named after the part of the frame it expects next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading the length prefix; `have` bytes of it are buffered.
    Prefix { have: u8 },
    /// Reading a JSON header of `len` bytes; `have` of them are buffered.
    Header { len: usize, have: usize },
    /// Passing body bytes through; `remaining` are still to come.
    Body { remaining: u64 },
    /// The body is complete; the next call reports the end of the frame.
    Done,
    /// A prefix or header error: no further input until `reset`.
    Failed,
}

/// The lengths of a frame, reported by [`Event::Head`]. The digests its header declared are
/// [`FrameDecoder::declared_digests`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameInfo {
    /// Length of the JSON header on the wire (0 for plain frames).
    pub header_len: usize,
    /// Length of the body that follows.
    pub body_len: u64,
}

/// The outcome of one declared digest at the end of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The header declared no digest of this algorithm.
    Absent,
    /// The body matches the declared digest.
    Verified,
    /// The header member is present but is not a digest (the seed's `"md5"` placeholder).
    NotADigest,
    /// The header declared a digest, but this build cannot compute the algorithm.
    Unsupported,
}

/// Reported by [`Event::End`]: the frame is complete. The digests computed over its body are
/// [`FrameDecoder::digests`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameEnd {
    /// Body length.
    pub body_len: u64,
    /// Outcome of the header's `"md5"`: [`Verdict::NotADigest`] for an `"md5"` member that is not
    /// a digest (such as the seed's placeholder `"fdsaf2143254f"`), which is not an error.
    pub md5: Verdict,
    /// Outcome of the header's `"xxh3"`.
    pub xxh3: Verdict,
}

impl FrameEnd {
    /// Whether at least one digest was checked and all checked ones matched.
    pub fn is_verified(&self) -> bool {
        self.md5 == Verdict::Verified || self.xxh3 == Verdict::Verified
    }
}

/// What the decoder has for the caller after a call to [`FrameDecoder::feed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// All input was consumed and nothing is ready: feed more bytes.
    NeedMore,
    /// A frame's head is complete. For header frames, the typed header is available from
    /// [`FrameDecoder::header`] until the next frame's head starts arriving.
    Head(FrameInfo),
    /// A piece of the body: always `&input[..consumed]`, a slice of the caller's input.
    Body(&'a [u8]),
    /// The frame is complete and its declared digests matched (mismatches are
    /// [`DecodeError::ChecksumMismatch`]). The decoder is at the next frame boundary.
    End(FrameEnd),
}

/// A sans-IO decoder for a stream of frames.
///
/// Feed it bytes as they arrive, in pieces of any size; each call consumes some of them and
/// returns at most one [`Event`]. Call again with the unconsumed rest (and then with new input)
/// until it returns [`Event::NeedMore`]. The calling order is:
///
/// ```text
/// feed → Head(info) → Body(chunk)* → End(verdicts) → Head(..) → ...
/// ```
///
/// `End` is returned by the call *after* the last body byte, even with empty input, so a caller
/// that has no more bytes keeps calling while it gets events other than `NeedMore`.
///
/// Memory: the header buffer of `CAP` bytes (the only buffer the decoder owns; plain frames need
/// none, so `FrameDecoder<0>` reads them) plus a small fixed state and the digest states of the
/// enabled algorithms, and with `fast-scan` the places of up to 16 header members.
/// `size_of::<FrameDecoder<1024>>()` is 1,984 bytes with the default features, 1,856 without
/// `fast-scan`, 1,232 with neither digest feature nor `fast-scan` (measured on x86_64 by a unit
/// test).
///
/// No input makes the decoder panic, allocate, or recurse: headers are checked by an iterative
/// scanner with a nesting limit before any deserializer sees them.
#[derive(Clone, Debug)]
pub struct FrameDecoder<const CAP: usize = 1024> {
    profile: Profile,
    format: Format,
    compute: Algorithms,
    state: State,
    prefix: [u8; 8],
    header: [u8; CAP],
    /// Length of the normalised header in `header`, 0 when there is none.
    header_len: usize,
    /// Where the header object's members stand, as the scan found them (with `fast-scan`), so
    /// that a typed view goes straight to them.
    spans: json::Spans,
    info: FrameInfo,
    /// The digests the current frame's header declared.
    declared: Digests,
    /// Whether the header has an `"md5"` member that is not a digest.
    md5_not_a_digest: bool,
    hasher: BodyHasher,
    /// The digests computed over the body of the frame whose end was reported last.
    computed: Digests,
}

const NO_FRAME: FrameInfo = FrameInfo {
    header_len: 0,
    body_len: 0,
};

const NO_DIGESTS: Digests = Digests {
    md5: None,
    xxh3: None,
};

impl<const CAP: usize> FrameDecoder<CAP> {
    /// A decoder for header frames (`[L][JSON header of L bytes][body]`) with headers of up to
    /// `CAP` bytes.
    pub fn header_frames(profile: Profile) -> Self {
        Self::new(profile, Format::Header)
    }

    /// A decoder for plain frames (`[N][N bytes]`).
    pub fn plain_frames(profile: Profile) -> Self {
        Self::new(profile, Format::Plain)
    }

    /// A decoder for `format`.
    pub fn new(profile: Profile, format: Format) -> Self {
        FrameDecoder {
            profile,
            format,
            compute: Algorithms::NONE,
            state: State::Prefix { have: 0 },
            prefix: [0; 8],
            header: [0; CAP],
            header_len: 0,
            spans: json::Spans::NONE,
            info: NO_FRAME,
            declared: NO_DIGESTS,
            md5_not_a_digest: false,
            hasher: BodyHasher::default(),
            computed: NO_DIGESTS,
        }
    }

    /// Also compute `algorithms` over every body, whether or not the header declares them; the
    /// results are [`digests`](Self::digests) after each frame's end. (Declared digests are
    /// always computed.)
    pub fn compute(mut self, algorithms: Algorithms) -> Self {
        self.compute = algorithms;
        self
    }

    /// The profile this decoder reads.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The format this decoder reads.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Forgets any partial frame and any error, ready for a new stream.
    pub fn reset(&mut self) {
        self.state = State::Prefix { have: 0 };
        self.header_len = 0;
        self.info = NO_FRAME;
        self.declared = NO_DIGESTS;
        self.md5_not_a_digest = false;
        self.hasher = BodyHasher::default();
        self.computed = NO_DIGESTS;
    }

    /// Whether the decoder is between frames (no byte of a next frame has been consumed), so an
    /// end of stream here is clean.
    pub fn is_at_boundary(&self) -> bool {
        self.state == State::Prefix { have: 0 }
    }

    /// Checks that the stream may end here: `Ok` between frames, otherwise
    /// [`DecodeError::UnexpectedEof`] with at least how many bytes are missing. (With a frame end
    /// still to report, call [`feed`](Self::feed) first.)
    pub fn check_eof(&self) -> Result<(), DecodeError> {
        let needed = match self.state {
            State::Prefix { have: 0 } | State::Failed => return Ok(()),
            State::Prefix { have } => (self.profile.width.len() - have as usize) as u64,
            State::Header { len, have } => (len - have) as u64,
            State::Body { remaining } => remaining,
            State::Done => return Ok(()),
        };
        Err(DecodeError::UnexpectedEof { needed })
    }

    /// The digests the current frame's header declared, each if it holds a digest of its
    /// algorithm (an `"md5"` that does not is reported by [`FrameEnd::md5`]): from the frame's
    /// [`Event::Head`] until the next frame's, both `None` for plain frames and after an error
    /// that stops the decoder.
    pub fn declared_digests(&self) -> &Digests {
        // A stopped decoder keeps the last declaration (clearing it where the decoder stops
        // costs every header frame about 70 instructions, in the error paths' code) but shows
        // none.
        match self.state {
            State::Failed => &NO_DIGESTS,
            _ => &self.declared,
        }
    }

    /// The digests computed over the body of the frame whose [`Event::End`] was reported last (or
    /// that failed with [`DecodeError::ChecksumMismatch`]: what its body's digest was): the
    /// declared ones plus those asked for with [`compute`](Self::compute). Use them to check a
    /// digest that travels after the body. Both `None` before the first end.
    pub fn digests(&self) -> &Digests {
        &self.computed
    }

    /// Body bytes still to come in the current frame (0 outside a body).
    pub fn body_remaining(&self) -> u64 {
        match self.state {
            State::Body { remaining } => remaining,
            _ => 0,
        }
    }

    /// What the current frame's head declared: from its head event until its end event has
    /// been returned (`None` between frames and after an error).
    pub fn frame_info(&self) -> Option<&FrameInfo> {
        match self.state {
            State::Body { .. } | State::Done => Some(&self.info),
            _ => None,
        }
    }

    /// Consumes bytes from `input` and reports the next event.
    ///
    /// Returns how many bytes of `input` were consumed (the caller passes the rest, `&input[n..]`,
    /// next time) and the event. On error, the input that caused it counts as consumed.
    pub fn feed<'a>(&mut self, input: &'a [u8]) -> Result<(usize, Event<'a>), DecodeError> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            match self.state {
                State::Prefix { have: 0 } if rest.len() >= self.profile.width.len() => {
                    // Fast path: the whole prefix is in this input, read it in place.
                    let width = self.profile.width.len();
                    used += width;
                    let len = self.profile.read_prefix(&rest[..width]);
                    if let Some(info) = self.start_frame(len)? {
                        return Ok((used, Event::Head(info)));
                    }
                }
                State::Prefix { have } => {
                    let width = self.profile.width.len();
                    let have = have as usize;
                    let take = (width - have).min(rest.len());
                    if take == 0 {
                        return Ok((used, Event::NeedMore));
                    }
                    self.prefix[have..have + take].copy_from_slice(&rest[..take]);
                    used += take;
                    if have + take < width {
                        self.state = State::Prefix {
                            have: (have + take) as u8,
                        };
                        return Ok((used, Event::NeedMore));
                    }
                    let len = self.profile.read_prefix(&self.prefix);
                    if let Some(info) = self.start_frame(len)? {
                        return Ok((used, Event::Head(info)));
                    }
                }
                State::Header { len, have } => {
                    let take = (len - have).min(rest.len());
                    if take == 0 {
                        return Ok((used, Event::NeedMore));
                    }
                    self.header[have..have + take].copy_from_slice(&rest[..take]);
                    used += take;
                    if have + take < len {
                        self.state = State::Header {
                            len,
                            have: have + take,
                        };
                        return Ok((used, Event::NeedMore));
                    }
                    let info = self.finish_header(len)?;
                    return Ok((used, Event::Head(info)));
                }
                State::Body { remaining } => {
                    let take = remaining.min(rest.len() as u64) as usize;
                    if take == 0 {
                        return Ok((used, Event::NeedMore));
                    }
                    debug_assert_eq!(used, 0, "a body chunk always starts a call's input");
                    let chunk = &rest[..take];
                    #[cfg(feature = "fast-scan")]
                    if !self.hasher.is_idle() {
                        self.hash(chunk, take as u64 == self.info.body_len);
                    }
                    #[cfg(not(feature = "fast-scan"))]
                    self.hasher.update(chunk);
                    let remaining = remaining - take as u64;
                    self.state = if remaining == 0 {
                        State::Done
                    } else {
                        State::Body { remaining }
                    };
                    return Ok((used + take, Event::Body(chunk)));
                }
                State::Done => {
                    self.state = State::Prefix { have: 0 };
                    let end = if self.hasher.is_idle() {
                        // Nothing was hashed, so nothing to finish or compare.
                        self.end_unverified()
                    } else {
                        self.verify()?
                    };
                    return Ok((used, Event::End(end)));
                }
                State::Failed => return Err(DecodeError::Poisoned),
            }
        }
    }

    /// Acts on a complete prefix. Returns the head event for plain frames; `None` when a header
    /// follows.
    fn start_frame(&mut self, len: i64) -> Result<Option<FrameInfo>, DecodeError> {
        if len < 0 {
            return Err(self.fail(DecodeError::NegativeLength { len }));
        }
        let len = len as u64;
        match self.format {
            Format::Plain => {
                self.header_len = 0;
                let info = FrameInfo {
                    header_len: 0,
                    body_len: len,
                };
                self.begin_body(info, NO_DIGESTS, false).map(Some)
            }
            Format::Header => {
                if len == 0 {
                    return Err(self.fail(DecodeError::EmptyHeader));
                }
                if len > CAP as u64 {
                    return Err(self.fail(DecodeError::HeaderTooLarge { len, cap: CAP }));
                }
                self.header_len = 0;
                self.state = State::Header {
                    len: len as usize,
                    have: 0,
                };
                Ok(None)
            }
        }
    }

    /// Checks a complete header of `len` bytes and reads the members the core interprets.
    fn finish_header(&mut self, len: usize) -> Result<FrameInfo, DecodeError> {
        let scanned = match json::scan_header(&mut self.header[..len], &mut self.spans) {
            Ok(s) => s,
            Err(e) => return Err(self.fail(DecodeError::HeaderNotJson(e))),
        };
        let text = &self.header[..scanned.len];
        let known = scanned.known;
        let info = (|| {
            let total_size = size_member(text, known.total_size, SizeField::TotalSize)?;
            let filesize = size_member(text, known.filesize, SizeField::Filesize)?;
            let body_len = match (total_size, filesize) {
                (Some(t), Some(f)) if t != f => {
                    return Err(DecodeError::SizeMismatch {
                        total_size: t,
                        filesize: f,
                    });
                }
                (Some(n), _) | (None, Some(n)) => n,
                (None, None) => 0,
            };
            let md5 = match digest_member(text, known.md5) {
                Some(hex) => Checksum::from_hex(Algorithm::Md5, hex),
                None => None,
            };
            let xxh3 = match digest_member(text, known.xxh3) {
                Some(hex) => match Checksum::from_hex(Algorithm::Xxh3, hex) {
                    Some(Checksum::Xxh3(v)) => Some(v),
                    _ => {
                        return Err(DecodeError::ChecksumMalformed {
                            algorithm: Algorithm::Xxh3,
                        });
                    }
                },
                None if known.xxh3 == RawValue::Absent || known.xxh3 == RawValue::Null => None,
                None => {
                    return Err(DecodeError::ChecksumMalformed {
                        algorithm: Algorithm::Xxh3,
                    });
                }
            };
            let declared = Digests {
                md5: match md5 {
                    Some(Checksum::Md5(d)) => Some(d),
                    _ => None,
                },
                xxh3,
            };
            let md5_not_a_digest =
                md5.is_none() && !matches!(known.md5, RawValue::Absent | RawValue::Null);
            let info = FrameInfo {
                header_len: len,
                body_len,
            };
            Ok((info, declared, md5_not_a_digest))
        })();
        let (info, declared, md5_not_a_digest) = match info {
            Ok(head) => head,
            Err(e) => return Err(self.fail(e)),
        };
        self.header_len = scanned.len;
        self.begin_body(info, declared, md5_not_a_digest)
    }

    fn begin_body(
        &mut self,
        info: FrameInfo,
        declared: Digests,
        md5_not_a_digest: bool,
    ) -> Result<FrameInfo, DecodeError> {
        if info.body_len > self.profile.max_body_len {
            return Err(self.fail(DecodeError::BodyTooLarge {
                len: info.body_len,
                max: self.profile.max_body_len,
            }));
        }
        let wanted = Algorithms {
            md5: declared.md5.is_some(),
            xxh3: declared.xxh3.is_some(),
        }
        .union(self.compute);
        if self.hasher.algorithms() != wanted {
            self.hasher = BodyHasher::new(wanted);
        }
        self.info = info;
        self.declared = declared;
        self.md5_not_a_digest = md5_not_a_digest;
        self.state = if info.body_len == 0 {
            State::Done
        } else {
            State::Body {
                remaining: info.body_len,
            }
        };
        Ok(info)
    }

    /// With `fast-scan`, hashes the next piece of the body (`whole`: the whole body, in one
    /// piece, hashed at once), out of line: a frame without digests only tests whether to call
    /// it.
    #[cfg(feature = "fast-scan")]
    #[inline(never)]
    fn hash(&mut self, chunk: &[u8], whole: bool) {
        if whole {
            self.hasher.whole(chunk);
        } else {
            self.hasher.update(chunk);
        }
    }

    fn verify(&mut self) -> Result<FrameEnd, DecodeError> {
        self.computed = self.hasher.finish();
        let declared = &self.declared;
        let md5 = verdict(
            Algorithm::Md5,
            declared.md5.map(Checksum::Md5),
            &self.computed,
        )?;
        let xxh3 = verdict(
            Algorithm::Xxh3,
            declared.xxh3.map(Checksum::Xxh3),
            &self.computed,
        )?;
        Ok(FrameEnd {
            body_len: self.info.body_len,
            md5: if md5 == Verdict::Absent && self.md5_not_a_digest {
                Verdict::NotADigest
            } else {
                md5
            },
            xxh3,
        })
    }

    /// The frame end when no digest was computed: declared digests are unsupported by this build.
    fn end_unverified(&mut self) -> FrameEnd {
        self.computed = NO_DIGESTS;
        let declared = |present: bool| {
            if present {
                Verdict::Unsupported
            } else {
                Verdict::Absent
            }
        };
        FrameEnd {
            body_len: self.info.body_len,
            md5: if self.md5_not_a_digest {
                Verdict::NotADigest
            } else {
                declared(self.declared.md5.is_some())
            },
            xxh3: declared(self.declared.xxh3.is_some()),
        }
    }

    fn fail(&mut self, e: DecodeError) -> DecodeError {
        self.state = State::Failed;
        self.header_len = 0;
        e
    }

    /// The current frame's header as normalised JSON text: escapes of non-ASCII characters are
    /// decoded to UTF-8 (see the crate docs); `None` for plain frames or before a header.
    pub fn header_json(&self) -> Option<&str> {
        if self.header_len == 0 {
            return None;
        }
        core::str::from_utf8(&self.header[..self.header_len]).ok()
    }

    /// A typed view of the current frame's header, deserialized into the application's own
    /// type. Unknown members are ignored. Strings with escapes (`\"`, `\\`, control characters)
    /// are unescaped into the decoder's spare header capacity (`CAP` minus the header's length,
    /// enough for the longest such string, ignored members included, or
    /// [`HeaderError::ScratchTooSmall`]); fields that may hold them must be owned
    /// (`heapless::String<N>`), since a borrowed `&str` cannot.
    pub fn header<'de, H: Deserialize<'de>>(&'de mut self) -> Result<H, HeaderError> {
        if self.header_len == 0 {
            return Err(HeaderError::NoHeader);
        }
        let (text, spare) = self.header.split_at_mut(self.header_len);
        parse_header(text, spare, &self.spans)
    }

    /// Like [`header`](Self::header), unescaping strings into `scratch` instead of the spare
    /// capacity (which may be too small when a header nearly fills `CAP`).
    pub fn header_with_scratch<'de, H: Deserialize<'de>>(
        &'de self,
        scratch: &mut [u8],
    ) -> Result<H, HeaderError> {
        if self.header_len == 0 {
            return Err(HeaderError::NoHeader);
        }
        parse_header(&self.header[..self.header_len], scratch, &self.spans)
    }

    /// Looks up the members `names` of the current frame's header, in one walk over it, and
    /// hands back each one's value as it stands, to read as a string, integer, flag or object
    /// ([`Member`](crate::Member)). Members not named are stepped over; a named member that
    /// appears twice is an error.
    ///
    /// A typed view ([`header`](Self::header)) is the convenient way to read a header. A lookup
    /// is the small one: its code is shared by every lookup, where each derived view is code
    /// of its own (one to two KiB on a Cortex-M0).
    ///
    /// ```
    /// use unstick_core::{Event, FrameDecoder, HeaderFrameEncoder, Profile};
    ///
    /// let mut wire = [0u8; 128];
    /// let header = serde_json::json!({"op": "get", "path": "log.txt", "offset": 512});
    /// let n = HeaderFrameEncoder::new(Profile::I32_LE)
    ///     .encode_frame(&header, b"", &mut wire)
    ///     .unwrap();
    ///
    /// let mut decoder = FrameDecoder::<256>::header_frames(Profile::I32_LE);
    /// let (_, event) = decoder.feed(&wire[..n]).unwrap();
    /// assert!(matches!(event, Event::Head(_)));
    /// let [op, path, offset, parents] = decoder.members(["op", "path", "offset", "parents"])?;
    /// assert_eq!(op.str()?, Some("get"));
    /// assert_eq!(path.str()?, Some("log.txt"));
    /// assert_eq!(offset.unsigned::<u64>()?, Some(512));
    /// assert_eq!(parents.bool()?, None);
    /// // A member of another type is an error that names it.
    /// let error = op.unsigned::<u64>().unwrap_err();
    /// assert!(error.to_string().contains("`op` has the wrong type (a string)"));
    /// # Ok::<(), unstick_core::HeaderError>(())
    /// ```
    pub fn members<'h, const N: usize>(
        &'h self,
        names: [&'h str; N],
    ) -> Result<[crate::Member<'h>; N], crate::MemberError<'h>> {
        let text = self.header_json().ok_or(crate::MemberError::NO_HEADER)?;
        crate::header_view::members(text, names)
    }

    /// Looks up the members `names` of the header as [`members`](Self::members) does, each of
    /// the kind it is paired with: one of another kind is an error naming it, so that a session
    /// reads each member without an error path of its own.
    #[cfg(feature = "protocols")]
    pub(crate) fn members_of<'h, const N: usize>(
        &'h self,
        names: [(&'h str, crate::header_view::Kind); N],
    ) -> Result<[crate::Member<'h>; N], crate::MemberError<'h>> {
        let text = self.header_json().ok_or(crate::MemberError::NO_HEADER)?;
        crate::header_view::members_of(text, names)
    }
}

fn parse_header<'de, H: Deserialize<'de>>(
    text: &'de [u8],
    scratch: &mut [u8],
    spans: &'de json::Spans,
) -> Result<H, HeaderError> {
    crate::header_view::read_view_at(text, scratch, spans)
}

fn verdict(
    algorithm: Algorithm,
    declared: Option<Checksum>,
    computed: &Digests,
) -> Result<Verdict, DecodeError> {
    let Some(declared) = declared else {
        return Ok(Verdict::Absent);
    };
    match computed.get(algorithm) {
        None => Ok(Verdict::Unsupported),
        Some(actual) if actual == declared => Ok(Verdict::Verified),
        Some(_) => Err(DecodeError::ChecksumMismatch { algorithm }),
    }
}

/// Reads `total_size`/`filesize`: a non-negative integer literal, or `null`/absent.
#[cfg_attr(feature = "fast-scan", inline(always))]
fn size_member(text: &[u8], value: RawValue, field: SizeField) -> Result<Option<u64>, DecodeError> {
    match value {
        RawValue::Absent | RawValue::Null => Ok(None),
        RawValue::Number(a, z) => {
            let mut n: u64 = 0;
            for &d in &text[a..z] {
                if !d.is_ascii_digit() {
                    return Err(DecodeError::BodyLengthInvalid { field });
                }
                n = n
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(d - b'0')))
                    .ok_or(DecodeError::BodyLengthInvalid { field })?;
            }
            Ok(Some(n))
        }
        RawValue::String(..) | RawValue::Other => Err(DecodeError::BodyLengthInvalid { field }),
    }
}

/// The text of a string member, if it is one.
fn digest_member(text: &[u8], value: RawValue) -> Option<&[u8]> {
    match value {
        RawValue::String(a, z) => Some(&text[a..z]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec::Vec;

    use super::*;
    use crate::digest::digest_of;
    use crate::json::{JsonError, JsonProblem};
    use crate::profile::{ByteOrder, PrefixWidth};

    const ALL_PROFILES: [Profile; 6] = [
        Profile::new(PrefixWidth::Two, ByteOrder::Little),
        Profile::new(PrefixWidth::Two, ByteOrder::Big),
        Profile::new(PrefixWidth::Four, ByteOrder::Little),
        Profile::new(PrefixWidth::Four, ByteOrder::Big),
        Profile::new(PrefixWidth::Eight, ByteOrder::Little),
        Profile::new(PrefixWidth::Eight, ByteOrder::Big),
    ];

    /// `[L][json][body]` in `profile`.
    fn header_frame(profile: Profile, json: &[u8], body: &[u8]) -> Vec<u8> {
        let mut out = std::vec![0u8; 8];
        let n = profile.write_prefix(json.len() as u64, &mut out).unwrap();
        out.truncate(n);
        out.extend_from_slice(json);
        out.extend_from_slice(body);
        out
    }

    /// `[N][body]` in `profile`.
    fn plain_frame(profile: Profile, body: &[u8]) -> Vec<u8> {
        header_frame(profile, body, b"")
    }

    /// An event with the body chunk copied, so it outlives the input.
    #[derive(Debug, PartialEq)]
    enum Owned {
        Head(FrameInfo),
        Body(Vec<u8>),
        End(FrameEnd),
    }

    /// Feeds `input` (in one piece, calling again until `NeedMore`) and collects the events.
    fn decode<const CAP: usize>(
        decoder: &mut FrameDecoder<CAP>,
        mut input: &[u8],
    ) -> Result<Vec<Owned>, DecodeError> {
        let mut events = Vec::new();
        loop {
            let (used, event) = decoder.feed(input)?;
            input = &input[used..];
            events.push(match event {
                Event::NeedMore => {
                    assert!(input.is_empty(), "NeedMore with {} bytes left", input.len());
                    return Ok(events);
                }
                Event::Head(info) => Owned::Head(info),
                Event::Body(chunk) => Owned::Body(chunk.to_vec()),
                Event::End(end) => Owned::End(end),
            });
        }
    }

    /// Feeds `setup`, which must decode without error, to put the decoder in a state.
    fn reach<const CAP: usize>(decoder: &mut FrameDecoder<CAP>, setup: &[u8]) {
        decode(decoder, setup).unwrap_or_else(|e| panic!("setup {setup:?}: {e}"));
    }

    fn head(header_len: usize, body_len: u64) -> FrameInfo {
        FrameInfo {
            header_len,
            body_len,
        }
    }

    fn end(body_len: u64) -> FrameEnd {
        FrameEnd {
            body_len,
            md5: Verdict::Absent,
            xxh3: Verdict::Absent,
        }
    }

    fn not_json(offset: usize, problem: JsonProblem) -> DecodeError {
        DecodeError::HeaderNotJson(JsonError { offset, problem })
    }

    type Expected = Result<(usize, Event<'static>), DecodeError>;

    /// Runs a table of `(setup, input, expected result of one feed)` on fresh decoders.
    fn run_table<const CAP: usize>(
        new: impl Fn() -> FrameDecoder<CAP>,
        table: &[(&[u8], &[u8], Expected)],
    ) {
        for (i, (setup, input, expected)) in table.iter().enumerate() {
            let mut decoder = new();
            // Feed the setup, stopping short of an end event so that rows can start in `Done`.
            let mut rest: &[u8] = setup;
            while decoder.state != State::Done {
                let (used, event) = decoder.feed(rest).unwrap();
                rest = &rest[used..];
                if event == Event::NeedMore {
                    break;
                }
            }
            assert!(rest.is_empty(), "row {i}: setup not consumed");
            let got = decoder.feed(input);
            assert_eq!(&got, expected, "row {i}: setup {setup:?}, input {input:?}");
        }
    }

    #[test]
    fn prefix_state_table() {
        let table: &[(&[u8], &[u8], Expected)] = &[
            (b"", b"", Ok((0, Event::NeedMore))),
            (b"", b"\x02", Ok((1, Event::NeedMore))),
            (b"", b"\x02\x00\x00", Ok((3, Event::NeedMore))),
            (b"\x02\x00", b"\x00", Ok((1, Event::NeedMore))),
            // A complete prefix moves on to the header in the same call.
            (b"", b"\x02\x00\x00\x00", Ok((4, Event::NeedMore))),
            (b"", b"\x02\x00\x00\x00{", Ok((5, Event::NeedMore))),
            (b"\x02\x00\x00", b"\x00{}", Ok((3, Event::Head(head(2, 0))))),
            // Two frames back to back: the call stops at the first head.
            (
                b"",
                b"\x02\x00\x00\x00{}\x02\x00\x00\x00{}",
                Ok((6, Event::Head(head(2, 0)))),
            ),
            // Errors from the prefix alone, whatever follows.
            (
                b"",
                b"\xff\xff\xff\xff",
                Err(DecodeError::NegativeLength { len: -1 }),
            ),
            (
                b"",
                b"\x00\x00\x00\x80{}",
                Err(DecodeError::NegativeLength {
                    len: i32::MIN as i64,
                }),
            ),
            (
                b"\xfe\xff",
                b"\xff\xff{}",
                Err(DecodeError::NegativeLength { len: -2 }),
            ),
            (b"", b"\x00\x00\x00\x00{}", Err(DecodeError::EmptyHeader)),
            (
                b"",
                b"\x41\x00\x00\x00{}",
                Err(DecodeError::HeaderTooLarge { len: 65, cap: 64 }),
            ),
            (
                b"",
                b"\xff\xff\xff\x7f",
                Err(DecodeError::HeaderTooLarge {
                    len: i32::MAX as u64,
                    cap: 64,
                }),
            ),
            (b"", b"\x40\x00\x00\x00", Ok((4, Event::NeedMore))),
        ];
        run_table(|| FrameDecoder::<64>::header_frames(Profile::I32_LE), table);
    }

    #[test]
    fn prefix_errors_come_from_the_prefix_alone_and_poison() {
        let cases: [(&[u8], DecodeError); 3] = [
            (b"\xff\xff\xff\xff", DecodeError::NegativeLength { len: -1 }),
            (b"\x00\x00\x00\x00", DecodeError::EmptyHeader),
            (
                b"\x00\x01\x00\x00",
                DecodeError::HeaderTooLarge { len: 256, cap: 64 },
            ),
        ];
        for (prefix, error) in cases {
            let mut decoder = FrameDecoder::<64>::header_frames(Profile::I32_LE);
            // The first three bytes are taken one at a time; the fourth raises the error,
            // with no header byte in sight.
            for &b in &prefix[..3] {
                assert_eq!(decoder.feed(&[b]), Ok((1, Event::NeedMore)));
            }
            assert_eq!(decoder.feed(&prefix[3..]), Err(error));
            assert_eq!(decoder.header_json(), None, "no header byte was buffered");
            // Poisoned for any input, even a valid frame, until reset.
            assert_eq!(decoder.feed(b""), Err(DecodeError::Poisoned));
            assert_eq!(
                decoder.feed(b"\x02\x00\x00\x00{}"),
                Err(DecodeError::Poisoned)
            );
            assert_eq!(decoder.check_eof(), Ok(()));
            decoder.reset();
            assert!(decoder.is_at_boundary());
            let events = decode(&mut decoder, b"\x02\x00\x00\x00{}").unwrap();
            assert_eq!(events, [Owned::Head(head(2, 0)), Owned::End(end(0))]);
        }
    }

    #[test]
    fn header_state_table() {
        // Setup: a prefix declaring a 20-byte header, `{"total_size":3}   ` padded with spaces.
        const PREFIX: &[u8] = b"\x14\x00\x00\x00";
        let json: &[u8] = b"{\"total_size\":3}    ";
        assert_eq!(json.len(), 20);
        let table: &[(&[u8], &[u8], Expected)] = &[
            (PREFIX, b"", Ok((0, Event::NeedMore))),
            (PREFIX, &json[..1], Ok((1, Event::NeedMore))),
            (PREFIX, &json[..19], Ok((19, Event::NeedMore))),
            (PREFIX, json, Ok((20, Event::Head(head(20, 3))))),
            // The head call does not touch the body.
            (
                PREFIX,
                b"{\"total_size\":3}    abc",
                Ok((20, Event::Head(head(20, 3)))),
            ),
            (
                b"\x14\x00\x00\x00{\"total_size\"",
                b":3}    abc",
                Ok((7, Event::Head(head(20, 3)))),
            ),
            // Errors are raised when the last header byte arrives.
            (
                PREFIX,
                b"{\"total_size\":3}   x",
                Err(not_json(19, JsonProblem::TrailingBytes)),
            ),
            (
                PREFIX,
                b"[\"total_size\",3]    ",
                Err(not_json(0, JsonProblem::NotAnObject)),
            ),
            (
                PREFIX,
                b"{\"total_size\":3     ",
                Err(not_json(20, JsonProblem::Truncated)),
            ),
            (
                PREFIX,
                b"{\"total_size\":-3}   ",
                Err(DecodeError::BodyLengthInvalid {
                    field: SizeField::TotalSize,
                }),
            ),
            (b"\x02\x00\x00\x00", b"{}", Ok((2, Event::Head(head(2, 0))))),
            (
                b"\x02\x00\x00\x00",
                b"[]",
                Err(not_json(0, JsonProblem::NotAnObject)),
            ),
            (
                b"\x01\x00\x00\x00",
                b"{",
                Err(not_json(1, JsonProblem::Truncated)),
            ),
            (
                b"\x02\x00\x00\x00",
                b"{\xff",
                Err(not_json(1, JsonProblem::InvalidUtf8)),
            ),
        ];
        run_table(|| FrameDecoder::<64>::header_frames(Profile::I32_LE), table);
    }

    #[test]
    fn header_errors_poison_until_reset() {
        let bad_headers: [&[u8]; 6] = [
            b"{\"a\":}",
            b"{\"total_size\":1,\"filesize\":2}",
            b"{\"total_size\":\"1\"}",
            b"{\"xxh3\":\"fdsaf2143254f\"}",
            b"{\"total_size\":9}",
            b"{}{}",
        ];
        for json in bad_headers {
            // The limited profile makes `{"total_size":9}` a BodyTooLarge.
            let profile = Profile::I32_LE.with_max_body_len(8);
            let mut decoder = FrameDecoder::<64>::header_frames(profile);
            let frame = header_frame(profile, json, b"");
            let err = decode(&mut decoder, &frame).unwrap_err();
            assert!(!err.is_recoverable(), "{err:?}");
            assert_eq!(decoder.header_json(), None);
            assert_eq!(decoder.header::<()>(), Err(HeaderError::NoHeader));
            let good = header_frame(profile, b"{\"total_size\":1}", b"x");
            assert_eq!(decoder.feed(&good), Err(DecodeError::Poisoned), "{json:?}");
            decoder.reset();
            let events = decode(&mut decoder, &good).unwrap();
            assert_eq!(events[1], Owned::Body(std::vec![b'x']));
        }
    }

    #[test]
    fn body_state_table() {
        // Setup: the head of a frame with a 5-byte body.
        const HEAD: &[u8] = b"\x10\x00\x00\x00{\"total_size\":5}";
        let table: &[(&[u8], &[u8], Expected)] = &[
            (HEAD, b"", Ok((0, Event::NeedMore))),
            (HEAD, b"h", Ok((1, Event::Body(b"h")))),
            (HEAD, b"hello", Ok((5, Event::Body(b"hello")))),
            // The body ends where the header says, even with the next frame glued on.
            (HEAD, b"helloworld", Ok((5, Event::Body(b"hello")))),
            (
                b"\x10\x00\x00\x00{\"total_size\":5}hel",
                b"loworld",
                Ok((2, Event::Body(b"lo"))),
            ),
        ];
        run_table(|| FrameDecoder::<64>::header_frames(Profile::I32_LE), table);
        // The same in a plain-frame decoder.
        let table: &[(&[u8], &[u8], Expected)] = &[
            (b"\x05\x00\x00\x00", b"", Ok((0, Event::NeedMore))),
            (
                b"\x05\x00\x00\x00",
                b"helloworld",
                Ok((5, Event::Body(b"hello"))),
            ),
            (
                b"\x05\x00\x00\x00hell",
                b"oworld",
                Ok((1, Event::Body(b"o"))),
            ),
        ];
        run_table(|| FrameDecoder::<0>::plain_frames(Profile::I32_LE), table);
    }

    #[test]
    fn done_state_table() {
        // Setup: a whole frame, short of its end event.
        const FRAME: &[u8] = b"\x10\x00\x00\x00{\"total_size\":5}hello";
        let table: &[(&[u8], &[u8], Expected)] = &[
            (FRAME, b"", Ok((0, Event::End(end(5))))),
            // The end consumes nothing; the next call starts the next frame.
            (FRAME, b"\x02\x00\x00\x00{}", Ok((0, Event::End(end(5))))),
            (b"\x02\x00\x00\x00{}", b"", Ok((0, Event::End(end(0))))),
            (
                b"\x02\x00\x00\x00{}",
                b"\xff\xff\xff\xff",
                Ok((0, Event::End(end(0)))),
            ),
        ];
        run_table(|| FrameDecoder::<64>::header_frames(Profile::I32_LE), table);
        let table: &[(&[u8], &[u8], Expected)] = &[
            (b"\x05\x00\x00\x00hello", b"", Ok((0, Event::End(end(5))))),
            (b"\x00\x00\x00\x00", b"\x00", Ok((0, Event::End(end(0))))),
        ];
        run_table(|| FrameDecoder::<0>::plain_frames(Profile::I32_LE), table);
    }

    #[test]
    fn failed_state_table() {
        const POISON: &[u8] = b"\xff\xff\xff\xff";
        let table: &[&[u8]] = &[b"", b"\x02\x00\x00\x00{}", b"\x00"];
        for input in table {
            let mut decoder = FrameDecoder::<64>::header_frames(Profile::I32_LE);
            assert!(decoder.feed(POISON).is_err());
            assert_eq!(decoder.feed(input), Err(DecodeError::Poisoned));
            assert_eq!(decoder.frame_info(), None);
            assert_eq!(decoder.body_remaining(), 0);
        }
    }

    #[test]
    fn check_eof_in_every_state() {
        // (bytes fed, expected check_eof)
        let table: &[(&[u8], Result<(), DecodeError>)] = &[
            (b"", Ok(())),
            (b"\x10", Err(DecodeError::UnexpectedEof { needed: 3 })),
            (
                b"\x10\x00\x00",
                Err(DecodeError::UnexpectedEof { needed: 1 }),
            ),
            (
                b"\x10\x00\x00\x00",
                Err(DecodeError::UnexpectedEof { needed: 16 }),
            ),
            (
                b"\x10\x00\x00\x00{\"total",
                Err(DecodeError::UnexpectedEof { needed: 9 }),
            ),
            (
                b"\x10\x00\x00\x00{\"total_size\":5}",
                Err(DecodeError::UnexpectedEof { needed: 5 }),
            ),
            (
                b"\x10\x00\x00\x00{\"total_size\":5}hell",
                Err(DecodeError::UnexpectedEof { needed: 1 }),
            ),
            // Done and after the end: the body is whole.
            (b"\x10\x00\x00\x00{\"total_size\":5}hello", Ok(())),
            (b"\x02\x00\x00\x00{}", Ok(())),
        ];
        for (fed, expected) in table {
            let mut decoder = FrameDecoder::<64>::header_frames(Profile::I32_LE);
            let mut input: &[u8] = fed;
            loop {
                let (used, event) = decoder.feed(input).unwrap();
                input = &input[used..];
                // Stop short of the end event, to see the Done state too.
                if event == Event::NeedMore || decoder.state == State::Done {
                    break;
                }
            }
            assert_eq!(decoder.check_eof(), *expected, "after {fed:?}");
            assert_eq!(decoder.is_at_boundary(), fed.is_empty(), "after {fed:?}");
        }
        // A clean end after a whole frame and its end event.
        let mut decoder = FrameDecoder::<64>::header_frames(Profile::I32_LE);
        reach(&mut decoder, b"\x02\x00\x00\x00{}");
        assert!(decoder.is_at_boundary());
        assert_eq!(decoder.check_eof(), Ok(()));
        // Plain frames and the other widths count their own prefix.
        let mut decoder =
            FrameDecoder::<0>::plain_frames(Profile::new(PrefixWidth::Eight, ByteOrder::Big));
        reach(&mut decoder, b"\x00\x00");
        assert_eq!(
            decoder.check_eof(),
            Err(DecodeError::UnexpectedEof { needed: 6 })
        );
        reach(&mut decoder, b"\x00\x00\x00\x00\x00\x07ab");
        assert_eq!(
            decoder.check_eof(),
            Err(DecodeError::UnexpectedEof { needed: 5 })
        );
        assert_eq!(decoder.body_remaining(), 5);
        assert_eq!(decoder.frame_info().map(|i| i.body_len), Some(7));
    }

    #[test]
    fn frame_info_lives_from_head_to_end() {
        let mut decoder = FrameDecoder::<64>::header_frames(Profile::I32_LE);
        let frame = header_frame(Profile::I32_LE, b"{\"total_size\":2}", b"ab");
        assert_eq!(decoder.frame_info(), None);
        let (used, _) = decoder.feed(&frame).unwrap();
        assert_eq!(decoder.frame_info(), Some(&head(16, 2)));
        let (n, _) = decoder.feed(&frame[used..]).unwrap();
        assert_eq!(used + n, frame.len());
        assert_eq!(
            decoder.frame_info(),
            Some(&head(16, 2)),
            "body complete, end not yet reported"
        );
        assert_eq!(decoder.feed(b"").unwrap(), (0, Event::End(end(2))));
        assert_eq!(decoder.frame_info(), None);
    }

    #[test]
    fn empty_header_is_refused_but_empty_object_is_fine() {
        let mut decoder = FrameDecoder::<64>::header_frames(Profile::I32_LE);
        assert_eq!(
            decoder.feed(b"\x00\x00\x00\x00"),
            Err(DecodeError::EmptyHeader)
        );
        let mut decoder = FrameDecoder::<64>::header_frames(Profile::I32_LE);
        let events = decode(&mut decoder, b"\x02\x00\x00\x00{}\x04\x00\x00\x00 {} ").unwrap();
        assert_eq!(
            events,
            [
                Owned::Head(head(2, 0)),
                Owned::End(end(0)),
                Owned::Head(head(4, 0)),
                Owned::End(end(0))
            ]
        );
        assert_eq!(decoder.header_json(), Some(" {} "));
    }

    #[test]
    fn header_capacity_is_exact() {
        // A header of exactly CAP bytes is fine; CAP + 1 is refused from the prefix.
        let json = b"{\"total_size\":1}";
        let mut decoder = FrameDecoder::<16>::header_frames(Profile::I32_LE);
        let events = decode(&mut decoder, &header_frame(Profile::I32_LE, json, b"z")).unwrap();
        assert_eq!(events[0], Owned::Head(head(16, 1)));
        let mut decoder = FrameDecoder::<15>::header_frames(Profile::I32_LE);
        assert_eq!(
            decoder.feed(&header_frame(Profile::I32_LE, json, b"z")),
            Err(DecodeError::HeaderTooLarge { len: 16, cap: 15 })
        );
        // CAP 0 reads no header frame at all.
        let mut decoder = FrameDecoder::<0>::header_frames(Profile::I32_LE);
        assert_eq!(
            decoder.feed(b"\x02\x00\x00\x00{}"),
            Err(DecodeError::HeaderTooLarge { len: 2, cap: 0 })
        );
    }

    #[cfg(feature = "xxh3")]
    #[test]
    fn declared_and_computed_digests_last_as_documented() {
        let body = b"hello world";
        let digest = digest_of(Algorithms::XXH3, body).xxh3.unwrap();
        let json = std::format!(
            "{{\"total_size\":11,\"xxh3\":\"{}\"}}",
            Checksum::Xxh3(digest).to_hex().as_str()
        );
        let mut stream = header_frame(Profile::I32_LE, json.as_bytes(), body);
        let first = stream.len();
        stream.extend(header_frame(Profile::I32_LE, b"{\"total_size\":2}", b"ok"));
        let second = stream.len();
        // The same declaration over another body.
        stream.extend(header_frame(
            Profile::I32_LE,
            json.as_bytes(),
            b"hello_world",
        ));
        let mut decoder = FrameDecoder::<64>::header_frames(Profile::I32_LE);
        let declared = Digests {
            md5: None,
            xxh3: Some(digest),
        };
        // The head: the declared digest, nothing computed yet.
        let (used, event) = decoder.feed(&stream).unwrap();
        assert!(matches!(event, Event::Head(_)));
        assert_eq!(*decoder.declared_digests(), declared);
        assert_eq!(*decoder.digests(), NO_DIGESTS);
        // The end: the body's digest, the declaration still there.
        let (n, _) = decoder.feed(&stream[used..first]).unwrap();
        assert_eq!(
            decoder.feed(&[]).unwrap().1,
            Event::End(FrameEnd {
                body_len: 11,
                md5: Verdict::Absent,
                xxh3: Verdict::Verified,
            })
        );
        assert_eq!(used + n, first);
        assert_eq!(*decoder.digests(), declared);
        assert_eq!(*decoder.declared_digests(), declared);
        // The next head declares nothing; the last end's digests stay until the next end.
        let (used, _) = decoder.feed(&stream[first..]).unwrap();
        assert_eq!(*decoder.declared_digests(), NO_DIGESTS);
        assert_eq!(*decoder.digests(), declared);
        decoder.feed(&stream[first + used..second]).unwrap();
        assert!(matches!(decoder.feed(&[]).unwrap().1, Event::End(_)));
        assert_eq!(*decoder.digests(), NO_DIGESTS);
        // A mismatch: what was declared and what the body's digest was.
        let (used, _) = decoder.feed(&stream[second..]).unwrap();
        decoder.feed(&stream[second + used..]).unwrap();
        assert_eq!(
            decoder.feed(&[]),
            Err(DecodeError::ChecksumMismatch {
                algorithm: Algorithm::Xxh3
            })
        );
        assert_eq!(*decoder.declared_digests(), declared);
        assert_eq!(
            *decoder.digests(),
            digest_of(Algorithms::XXH3, b"hello_world")
        );
        // A reset forgets both.
        decoder.reset();
        assert_eq!(*decoder.declared_digests(), NO_DIGESTS);
        assert_eq!(*decoder.digests(), NO_DIGESTS);
        // So does an error that stops the decoder, for the declaration.
        let events = decode(&mut decoder, &stream[..first]).unwrap();
        assert!(matches!(events.last(), Some(Owned::End(_))));
        assert_eq!(*decoder.declared_digests(), declared);
        assert!(decoder.feed(b"\xff\xff\xff\xff").is_err());
        assert_eq!(*decoder.declared_digests(), NO_DIGESTS);
    }

    #[cfg(all(feature = "md5", feature = "xxh3"))]
    #[test]
    fn checksum_mismatch_is_recoverable() {
        let body = b"hello world";
        let good_md5 = b"5eb63bbbe01eeed093cb22bb8f5acdc3";
        let bad_md5 = b"5eb63bbbe01eeed093cb22bb8f5acdc4";
        let xxh3 = Checksum::Xxh3(digest_of(Algorithms::XXH3, body).xxh3.unwrap()).to_hex();
        let mut bad_xxh3 = [0u8; 32];
        bad_xxh3.copy_from_slice(xxh3.as_str().as_bytes());
        bad_xxh3[31] = if bad_xxh3[31] == b'0' { b'1' } else { b'0' };
        let json = |member: &str, hex: &[u8]| {
            let mut j = std::format!("{{\"total_size\":11,\"{member}\":\"").into_bytes();
            j.extend_from_slice(hex);
            j.extend_from_slice(b"\"}");
            j
        };
        let cases = [
            (json("md5", bad_md5), Algorithm::Md5),
            (json("xxh3", &bad_xxh3), Algorithm::Xxh3),
        ];
        for (bad, algorithm) in &cases {
            let (bad, algorithm) = (bad.as_slice(), *algorithm);
            let mut stream = header_frame(Profile::I32_LE, bad, body);
            stream.extend(header_frame(Profile::I32_LE, &json("md5", good_md5), body));
            stream.extend(header_frame(
                Profile::I32_LE,
                &json("xxh3", xxh3.as_str().as_bytes()),
                body,
            ));
            let mut decoder = FrameDecoder::<64>::header_frames(Profile::I32_LE);
            let err = decode(&mut decoder, &stream).unwrap_err();
            assert_eq!(err, DecodeError::ChecksumMismatch { algorithm });
            assert!(err.is_recoverable());
            assert!(decoder.is_at_boundary());
            // The rest of the stream is the two good frames.
            let used = 4 + bad.len() + body.len();
            let events = decode(&mut decoder, &stream[used..]).unwrap();
            let Owned::End(first) = &events[2] else {
                panic!("{events:?}")
            };
            assert_eq!(
                (first.md5, first.xxh3),
                (Verdict::Verified, Verdict::Absent)
            );
            let Owned::End(second) = &events[5] else {
                panic!("{events:?}")
            };
            assert_eq!(
                (second.md5, second.xxh3),
                (Verdict::Absent, Verdict::Verified)
            );
            assert!(first.is_verified() && second.is_verified());
            assert_eq!(events.len(), 6);
        }
    }

    #[test]
    fn seed_md5_placeholder_is_not_a_digest() {
        let json = b"{\"md5\": \"fdsaf2143254f\", \"file_name\": \"f1.txt\", \"total_size\": 2}";
        let mut decoder = FrameDecoder::<128>::header_frames(Profile::I32_LE);
        let events = decode(&mut decoder, &header_frame(Profile::I32_LE, json, b"ok")).unwrap();
        assert_eq!(*decoder.declared_digests(), Digests::default());
        let Owned::End(frame_end) = events[2] else {
            panic!()
        };
        assert_eq!(frame_end.md5, Verdict::NotADigest);
        assert_eq!(frame_end.xxh3, Verdict::Absent);
        assert!(!frame_end.is_verified());
        // `"md5": null` is simply absent.
        let mut decoder = FrameDecoder::<128>::header_frames(Profile::I32_LE);
        let events = decode(
            &mut decoder,
            &header_frame(Profile::I32_LE, b"{\"md5\":null}", b""),
        )
        .unwrap();
        let Owned::End(frame_end) = events[1] else {
            panic!()
        };
        assert_eq!(frame_end.md5, Verdict::Absent);
        // A number or an object is not a digest either.
        for json in [
            &b"{\"md5\":5}"[..],
            b"{\"md5\":{\"a\":\"5eb63bbbe01eeed093cb22bb8f5acdc3\"}}",
        ] {
            let mut decoder = FrameDecoder::<128>::header_frames(Profile::I32_LE);
            let events = decode(&mut decoder, &header_frame(Profile::I32_LE, json, b"")).unwrap();
            let Owned::End(frame_end) = events[1] else {
                panic!()
            };
            assert_eq!(frame_end.md5, Verdict::NotADigest, "{json:?}");
        }
    }

    #[test]
    fn body_length_members() {
        use DecodeError::{BodyLengthInvalid, SizeMismatch};
        use SizeField::{Filesize, TotalSize};
        let table: &[(&[u8], Result<u64, DecodeError>)] = &[
            (b"{}", Ok(0)),
            (b"{\"total_size\":7}", Ok(7)),
            (b"{\"filesize\":7}", Ok(7)),
            (b"{\"total_size\":7,\"filesize\":7}", Ok(7)),
            (b"{\"filesize\":0,\"total_size\":0}", Ok(0)),
            (b"{\"total_size\":null}", Ok(0)),
            (b"{\"total_size\":null,\"filesize\":7}", Ok(7)),
            (b"{\"total_size\":7,\"filesize\":null}", Ok(7)),
            (b"{\"total_size\":18446744073709551615}", Ok(u64::MAX)),
            (
                b"{\"total_size\":7,\"filesize\":8}",
                Err(SizeMismatch {
                    total_size: 7,
                    filesize: 8,
                }),
            ),
            (
                b"{\"total_size\":0,\"filesize\":8}",
                Err(SizeMismatch {
                    total_size: 0,
                    filesize: 8,
                }),
            ),
            (
                b"{\"total_size\":-1}",
                Err(BodyLengthInvalid { field: TotalSize }),
            ),
            (
                b"{\"total_size\":-0}",
                Err(BodyLengthInvalid { field: TotalSize }),
            ),
            (
                b"{\"filesize\":1.5}",
                Err(BodyLengthInvalid { field: Filesize }),
            ),
            (
                b"{\"filesize\":7.0}",
                Err(BodyLengthInvalid { field: Filesize }),
            ),
            (
                b"{\"total_size\":1e3}",
                Err(BodyLengthInvalid { field: TotalSize }),
            ),
            (
                b"{\"total_size\":18446744073709551616}",
                Err(BodyLengthInvalid { field: TotalSize }),
            ),
            (
                b"{\"total_size\":99999999999999999999999999999999999999}",
                Err(BodyLengthInvalid { field: TotalSize }),
            ),
            (
                b"{\"total_size\":\"7\"}",
                Err(BodyLengthInvalid { field: TotalSize }),
            ),
            (
                b"{\"total_size\":true}",
                Err(BodyLengthInvalid { field: TotalSize }),
            ),
            (
                b"{\"filesize\":[]}",
                Err(BodyLengthInvalid { field: Filesize }),
            ),
            (
                b"{\"filesize\":[7]}",
                Err(BodyLengthInvalid { field: Filesize }),
            ),
            (
                b"{\"total_size\":{\"n\":7}}",
                Err(BodyLengthInvalid { field: TotalSize }),
            ),
            (
                b"{\"total_size\":[7],\"filesize\":7}",
                Err(BodyLengthInvalid { field: TotalSize }),
            ),
            // Only the top-level members count.
            (b"{\"x\":{\"total_size\":7}}", Ok(0)),
        ];
        for (json, expected) in table {
            let mut decoder = FrameDecoder::<64>::header_frames(Profile::I32_LE);
            let frame = header_frame(Profile::I32_LE, json, b"");
            let got = decoder.feed(&frame).map(|(_, event)| match event {
                Event::Head(info) => info.body_len,
                other => panic!("{other:?}"),
            });
            assert_eq!(got, *expected, "{:?}", core::str::from_utf8(json));
        }
    }

    #[test]
    fn max_body_len_is_enforced_before_the_body() {
        for limit in [0, 5, 1 << 40] {
            let profile = Profile::I32_LE.with_max_body_len(limit);
            // At the limit: fine.
            let json = std::format!("{{\"total_size\":{limit}}}");
            let mut decoder = FrameDecoder::<64>::header_frames(profile);
            let frame = header_frame(profile, json.as_bytes(), b"");
            assert_eq!(
                decoder.feed(&frame).unwrap().1,
                Event::Head(head(json.len(), limit))
            );
            // One over: refused at the head, no body byte needed.
            let json = std::format!("{{\"total_size\":{}}}", limit + 1);
            let mut decoder = FrameDecoder::<64>::header_frames(profile);
            let frame = header_frame(profile, json.as_bytes(), b"");
            let expected = DecodeError::BodyTooLarge {
                len: limit + 1,
                max: limit,
            };
            assert_eq!(decoder.feed(&frame), Err(expected));
            assert_eq!(decoder.feed(b""), Err(DecodeError::Poisoned));
            // Plain frames, from the prefix alone.
            let mut decoder = FrameDecoder::<0>::plain_frames(
                Profile::new(PrefixWidth::Eight, ByteOrder::Little).with_max_body_len(limit),
            );
            assert_eq!(decoder.feed(&(limit + 1).to_le_bytes()), Err(expected));
        }
    }

    /// One static mebibyte, fed again and again as body bytes.
    static MIB: [u8; 1 << 20] = [0x5a; 1 << 20];

    #[test]
    fn body_over_4_gib_is_counted_exactly() {
        const LEN: u64 = (4 << 30) + (1 << 20) + 12_345;
        let json = std::format!("{{\"total_size\":{LEN}}}");
        let mut decoder = FrameDecoder::<64>::header_frames(Profile::I32_LE);
        let frame = header_frame(Profile::I32_LE, json.as_bytes(), b"");
        assert_eq!(
            decoder.feed(&frame),
            Ok((frame.len(), Event::Head(head(json.len(), LEN))))
        );
        let mut total: u64 = 0;
        let mut calls = 0u32;
        loop {
            let (used, event) = decoder.feed(&MIB).unwrap();
            calls += 1;
            match event {
                Event::Body(chunk) => {
                    assert_eq!(chunk.len(), used);
                    total += used as u64;
                }
                Event::End(frame_end) => {
                    assert_eq!(used, 0);
                    assert_eq!(frame_end.body_len, LEN);
                    break;
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(decoder.body_remaining(), LEN - total);
        }
        assert_eq!(total, LEN);
        assert_eq!(calls, 4096 + 1 + 1 + 1);
        assert!(decoder.is_at_boundary());
        // The same through an 8-byte plain prefix.
        let mut decoder =
            FrameDecoder::<0>::plain_frames(Profile::new(PrefixWidth::Eight, ByteOrder::Big));
        assert_eq!(
            decoder.feed(&LEN.to_be_bytes()).unwrap().1,
            Event::Head(head(0, LEN))
        );
        let mut total: u64 = 0;
        while let Event::Body(chunk) = decoder.feed(&MIB).unwrap().1 {
            total += chunk.len() as u64;
        }
        assert_eq!(total, LEN);
    }

    #[test]
    fn plain_frames_including_empty_bodies() {
        let mut stream = Vec::new();
        for body in [&b"hello"[..], b"", b"world", b""] {
            stream.extend(plain_frame(Profile::I32_LE, body));
        }
        let mut decoder = FrameDecoder::<0>::plain_frames(Profile::I32_LE);
        assert_eq!(decoder.format(), Format::Plain);
        let events = decode(&mut decoder, &stream).unwrap();
        assert_eq!(
            events,
            [
                Owned::Head(head(0, 5)),
                Owned::Body(b"hello".to_vec()),
                Owned::End(end(5)),
                Owned::Head(head(0, 0)),
                Owned::End(end(0)),
                Owned::Head(head(0, 5)),
                Owned::Body(b"world".to_vec()),
                Owned::End(end(5)),
                Owned::Head(head(0, 0)),
                Owned::End(end(0)),
            ]
        );
        assert_eq!(decoder.header::<()>(), Err(HeaderError::NoHeader));
        assert_eq!(decoder.header_json(), None);
        // A plain frame's body may hold anything, JSON included.
        let mut decoder = FrameDecoder::<0>::plain_frames(Profile::I32_LE);
        let events = decode(
            &mut decoder,
            &plain_frame(Profile::I32_LE, b"{\"total_size\":99}"),
        )
        .unwrap();
        assert_eq!(events[0], Owned::Head(head(0, 17)));
    }

    #[test]
    fn every_prefix_width_and_order() {
        for profile in ALL_PROFILES {
            let width = profile.width.len();
            // Header frames, fed one byte at a time.
            let mut stream = header_frame(profile, b"{\"total_size\":5}", b"hello");
            stream.extend(header_frame(profile, b"{}", b""));
            let mut decoder = FrameDecoder::<64>::header_frames(profile);
            assert_eq!(decoder.profile(), &profile);
            let mut events = Vec::new();
            for b in &stream {
                events.extend(decode(&mut decoder, core::slice::from_ref(b)).unwrap());
            }
            events.extend(decode(&mut decoder, b"").unwrap());
            let bodies: Vec<u8> = events
                .iter()
                .filter_map(|e| match e {
                    Owned::Body(b) => Some(b[0]),
                    _ => None,
                })
                .collect();
            assert_eq!(bodies, b"hello", "{profile:?}");
            assert_eq!(events.first(), Some(&Owned::Head(head(16, 5))));
            assert_eq!(events.last(), Some(&Owned::End(end(0))));
            // Plain frames.
            let mut decoder = FrameDecoder::<0>::plain_frames(profile);
            let events = decode(&mut decoder, &plain_frame(profile, b"abc")).unwrap();
            assert_eq!(events[1], Owned::Body(b"abc".to_vec()), "{profile:?}");
            // All bits set is -1 in every width.
            let mut decoder = FrameDecoder::<64>::header_frames(profile);
            assert_eq!(
                decoder.feed(&[0xff; 8][..width]),
                Err(DecodeError::NegativeLength { len: -1 })
            );
            // The largest length of the width: too large a header, a fine plain body.
            let mut max = [0u8; 8];
            profile
                .write_prefix(profile.width.max_len(), &mut max)
                .unwrap();
            let mut decoder = FrameDecoder::<64>::header_frames(profile);
            let too_large = DecodeError::HeaderTooLarge {
                len: profile.width.max_len(),
                cap: 64,
            };
            assert_eq!(decoder.feed(&max[..width]), Err(too_large));
            let mut decoder = FrameDecoder::<0>::plain_frames(profile);
            let expected = Event::Head(head(0, profile.width.max_len()));
            assert_eq!(decoder.feed(&max[..width]), Ok((width, expected)));
        }
    }

    #[test]
    fn header_stays_readable_until_the_next_head() {
        #[derive(Deserialize, Debug, PartialEq)]
        struct Reply<'a> {
            file_name: &'a str,
        }
        let mut stream = header_frame(
            Profile::I32_LE,
            b"{\"file_name\":\"a.txt\",\"total_size\":2}",
            b"ab",
        );
        stream.extend(header_frame(
            Profile::I32_LE,
            b"{\"file_name\":\"b.txt\"}",
            b"",
        ));
        let mut decoder = FrameDecoder::<64>::header_frames(Profile::I32_LE);
        assert_eq!(decoder.header::<Reply<'_>>(), Err(HeaderError::NoHeader));
        let (used, _) = decoder.feed(&stream).unwrap();
        assert_eq!(decoder.header::<Reply<'_>>().unwrap().file_name, "a.txt");
        let (n, _) = decoder.feed(&stream[used..]).unwrap(); // body
        assert_eq!(decoder.header::<Reply<'_>>().unwrap().file_name, "a.txt");
        let (m, _) = decoder.feed(&stream[used + n..]).unwrap(); // end
        assert_eq!(decoder.header::<Reply<'_>>().unwrap().file_name, "a.txt");
        decoder.feed(&stream[used + n + m..]).unwrap();
        assert_eq!(decoder.header::<Reply<'_>>().unwrap().file_name, "b.txt");
        decoder.reset();
        assert_eq!(decoder.header::<Reply<'_>>(), Err(HeaderError::NoHeader));
    }

    #[test]
    fn compute_hands_out_digests_without_a_declared_one() {
        let mut decoder = FrameDecoder::<64>::header_frames(Profile::I32_LE)
            .compute(Algorithms::MD5.union(Algorithms::XXH3));
        let frame = header_frame(Profile::I32_LE, b"{\"total_size\":11}", b"hello world");
        let events = decode(&mut decoder, &frame).unwrap();
        let Owned::End(frame_end) = events.last().unwrap() else {
            panic!()
        };
        assert_eq!(
            *decoder.digests(),
            digest_of(Algorithms::MD5.union(Algorithms::XXH3), b"hello world")
        );
        assert_eq!(
            (frame_end.md5, frame_end.xxh3),
            (Verdict::Absent, Verdict::Absent)
        );
        assert!(!frame_end.is_verified());
    }

    #[cfg(not(feature = "md5"))]
    #[test]
    fn declared_md5_without_the_feature_is_unsupported() {
        let json = b"{\"total_size\":11,\"md5\":\"5eb63bbbe01eeed093cb22bb8f5acdc3\"}";
        let mut decoder = FrameDecoder::<128>::header_frames(Profile::I32_LE);
        let events = decode(
            &mut decoder,
            &header_frame(Profile::I32_LE, json, b"hello world"),
        )
        .unwrap();
        let Owned::End(frame_end) = events[2] else {
            panic!()
        };
        assert_eq!(frame_end.md5, Verdict::Unsupported);
    }

    #[test]
    fn size_of_default_decoder() {
        let size = core::mem::size_of::<FrameDecoder<1024>>();
        std::println!("size_of::<FrameDecoder<1024>>() = {size}");
        // Keep the number in the `FrameDecoder` docs in step with this one.
        #[cfg(all(
            target_pointer_width = "64",
            feature = "md5",
            feature = "xxh3",
            feature = "fast-scan"
        ))]
        assert_eq!(size, 1984, "update the number in the FrameDecoder docs");
        #[cfg(all(
            target_pointer_width = "64",
            feature = "md5",
            feature = "xxh3",
            not(feature = "fast-scan")
        ))]
        assert_eq!(size, 1856, "update the number in the FrameDecoder docs");
        #[cfg(all(
            target_pointer_width = "64",
            not(any(feature = "md5", feature = "xxh3"))
        ))]
        assert_eq!(size, 1232, "update the number in the FrameDecoder docs");
        assert!(size > 1024);
        // And the README's figure for plain frames.
        let plain = core::mem::size_of::<FrameDecoder<0>>();
        std::println!("size_of::<FrameDecoder<0>>() = {plain}");
        assert_eq!(
            size - plain,
            1024,
            "the header buffer is the only difference"
        );
    }
}

#[cfg(test)]
mod recorded_member_tests {
    extern crate std;

    use std::string::String;
    use std::vec::Vec;

    use super::*;

    /// Feeds `header` as one header frame with an empty body and returns the decoder at its head.
    fn at_head(header: &[u8]) -> FrameDecoder<2048> {
        let mut wire = Vec::new();
        wire.extend_from_slice(&(header.len() as i32).to_le_bytes());
        wire.extend_from_slice(header);
        let mut decoder = FrameDecoder::<2048>::header_frames(Profile::I32_LE);
        let (_, event) = decoder.feed(&wire).unwrap();
        assert!(matches!(event, Event::Head(_)), "{event:?}");
        decoder
    }

    #[test]
    fn a_view_through_the_recorded_members_reads_what_a_walk_reads() {
        let mut many = String::from("{");
        for i in 0..20 {
            many.push_str(&std::format!("\"m{i}\" : [{i}, {{\"x\":\"{i}\"}}] ,"));
        }
        many.push_str("\"last\":\"a\\\"b\"}");
        let headers: [&[u8]; 9] = [
            b"{}",
            b" \t{ } \n",
            br#" { "a" : 1 , "b":"x y" ,"c" : [1,{"d":"}"}] , "e":{"f":null} } "#,
            br#"{"esc\"aped":"v","n":"after"}"#,
            br#"{"n":"w\\x","m":"plain","k\u00e9":"\u00e9\/"}"#,
            br#"{"deep":{"a":{"b":[[[{}]]]}},"s":"\u0001"}"#,
            br#"{"t":true,"f":false,"z":null,"neg":-12.5e3,"big":18446744073709551616}"#,
            many.as_bytes(),
            br#"{"a":"x","b":"y","c":"z","d":1,"e":2,"f":3,"g":4,"h":5,"i":6,"j":7,"k":8,"l":9,"m":0,"n":1,"o":2,"p":"last"}"#,
        ];
        for header in headers {
            let mut decoder = at_head(header);
            let want: serde_json::Value = serde_json::from_slice(header).unwrap();
            let got: serde_json::Value = decoder.header().unwrap();
            assert_eq!(got, want, "{:?}", core::str::from_utf8(header));
            let got: serde_json::Value = decoder.header_with_scratch(&mut [0; 64]).unwrap();
            assert_eq!(got, want, "{:?}", core::str::from_utf8(header));
        }
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct View<'a> {
        name: &'a str,
        size: u32,
        #[serde(default)]
        note: Option<heapless::String<16>>,
    }

    #[test]
    fn a_view_through_the_recorded_members_skips_names_and_refuses_as_a_walk_does() {
        let mut decoder =
            at_head(br#"{ "skip" : {"name":"inner","size":9} , "size" : 7 , "name" : "n" }"#);
        assert_eq!(
            decoder.header::<View<'_>>().unwrap(),
            View {
                name: "n",
                size: 7,
                note: None
            }
        );
        let mut decoder = at_head(br#"{"name":"n","size":1,"note":"a\"b"}"#);
        assert_eq!(
            decoder.header::<View<'_>>().unwrap().note.as_deref(),
            Some("a\"b")
        );
        let mut decoder = at_head(br#"{"name":"a\"b","size":1}"#);
        let e = decoder.header::<View<'_>>().unwrap_err();
        assert!(std::format!("{e}").contains("owned string"), "{e}");
        let mut decoder = at_head(br#"{"name":"n","size":"7"}"#);
        let HeaderError::Shape(e) = decoder.header::<View<'_>>().unwrap_err() else {
            panic!()
        };
        assert_eq!(e.member(), Some("size"));
        let mut decoder = at_head(br#"{"name":"n","size":7,"name":"m"}"#);
        let e = decoder.header::<View<'_>>().unwrap_err();
        assert!(std::format!("{e}").contains("repeats `name`"), "{e}");
        let mut decoder = at_head(br#"{"size":7}"#);
        let e = decoder.header::<View<'_>>().unwrap_err();
        assert!(std::format!("{e}").contains("no `name`"), "{e}");
    }
}
