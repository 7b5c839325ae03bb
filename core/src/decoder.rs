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

/// What a frame's head declared, reported by [`Event::Head`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameInfo {
    /// Length of the JSON header on the wire (0 for plain frames).
    pub header_len: usize,
    /// Length of the body that follows.
    pub body_len: u64,
    /// The MD5 the header declared, if it holds 32 hex digits.
    pub md5: Option<[u8; 16]>,
    /// Whether the header has an `"md5"` member that is not a digest (such as the seed's
    /// placeholder `"fdsaf2143254f"`): reported as [`Verdict::NotADigest`], not as an error.
    pub md5_not_a_digest: bool,
    /// The XXH3-128 the header declared.
    pub xxh3: Option<u128>,
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

/// Reported by [`Event::End`]: the frame is complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameEnd {
    /// Body length.
    pub body_len: u64,
    /// Outcome of the header's `"md5"`.
    pub md5: Verdict,
    /// Outcome of the header's `"xxh3"`.
    pub xxh3: Verdict,
    /// Digests computed over the body: the declared ones plus those asked for with
    /// [`FrameDecoder::compute`]. Use them to check a digest that travels after the body.
    pub digests: Digests,
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
/// enabled algorithms. `size_of::<FrameDecoder<1024>>()` is 1,832 bytes with both digest
/// features on, 1,096 with both off.
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
    header_has_escapes: bool,
    info: FrameInfo,
    hasher: BodyHasher,
}

const NO_FRAME: FrameInfo = FrameInfo {
    header_len: 0,
    body_len: 0,
    md5: None,
    md5_not_a_digest: false,
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
            header_has_escapes: false,
            info: NO_FRAME,
            hasher: BodyHasher::default(),
        }
    }

    /// Also compute `algorithms` over every body, whether or not the header declares them; the
    /// results are in [`FrameEnd::digests`]. (Declared digests are always computed.)
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
        self.hasher = BodyHasher::default();
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

    /// Body bytes still to come in the current frame (0 outside a body).
    pub fn body_remaining(&self) -> u64 {
        match self.state {
            State::Body { remaining } => remaining,
            _ => 0,
        }
    }

    /// What the current (or last) frame's head declared.
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
                    body_len: len,
                    ..NO_FRAME
                };
                self.begin_body(info).map(Some)
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
        let scanned = match json::scan_header(&mut self.header[..len]) {
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
            Ok(FrameInfo {
                header_len: len,
                body_len,
                md5: match md5 {
                    Some(Checksum::Md5(d)) => Some(d),
                    _ => None,
                },
                md5_not_a_digest: md5.is_none()
                    && !matches!(known.md5, RawValue::Absent | RawValue::Null),
                xxh3,
            })
        })();
        let info = match info {
            Ok(info) => info,
            Err(e) => return Err(self.fail(e)),
        };
        self.header_len = scanned.len;
        self.header_has_escapes = scanned.has_escapes;
        self.begin_body(info)
    }

    fn begin_body(&mut self, info: FrameInfo) -> Result<FrameInfo, DecodeError> {
        if info.body_len > self.profile.max_body_len {
            return Err(self.fail(DecodeError::BodyTooLarge {
                len: info.body_len,
                max: self.profile.max_body_len,
            }));
        }
        let declared = Algorithms {
            md5: info.md5.is_some(),
            xxh3: info.xxh3.is_some(),
        };
        let wanted = declared.union(self.compute);
        if self.hasher.algorithms() != wanted {
            self.hasher = BodyHasher::new(wanted);
        }
        self.info = info;
        self.state = if info.body_len == 0 {
            State::Done
        } else {
            State::Body {
                remaining: info.body_len,
            }
        };
        Ok(info)
    }

    fn verify(&mut self) -> Result<FrameEnd, DecodeError> {
        let digests = self.hasher.finish();
        let info = &self.info;
        let md5 = verdict(Algorithm::Md5, info.md5.map(Checksum::Md5), &digests)?;
        let xxh3 = verdict(Algorithm::Xxh3, info.xxh3.map(Checksum::Xxh3), &digests)?;
        Ok(FrameEnd {
            body_len: info.body_len,
            md5: if md5 == Verdict::Absent && info.md5_not_a_digest {
                Verdict::NotADigest
            } else {
                md5
            },
            xxh3,
            digests,
        })
    }

    /// The frame end when no digest was computed: declared digests are unsupported by this build.
    fn end_unverified(&self) -> FrameEnd {
        let info = &self.info;
        let declared = |present: bool| {
            if present {
                Verdict::Unsupported
            } else {
                Verdict::Absent
            }
        };
        FrameEnd {
            body_len: info.body_len,
            md5: if info.md5_not_a_digest {
                Verdict::NotADigest
            } else {
                declared(info.md5.is_some())
            },
            xxh3: declared(info.xxh3.is_some()),
            digests: Digests::default(),
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
    /// are unescaped into the decoder's spare header capacity; fields that may hold them must be
    /// owned (`heapless::String<N>`), since a borrowed `&str` cannot.
    pub fn header<'de, H: Deserialize<'de>>(&'de mut self) -> Result<H, HeaderError> {
        if self.header_len == 0 {
            return Err(HeaderError::NoHeader);
        }
        let (text, spare) = self.header.split_at_mut(self.header_len);
        parse_header(text, self.header_has_escapes, spare)
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
        parse_header(
            &self.header[..self.header_len],
            self.header_has_escapes,
            scratch,
        )
    }
}

fn parse_header<'de, H: Deserialize<'de>>(
    text: &'de [u8],
    has_escapes: bool,
    scratch: &mut [u8],
) -> Result<H, HeaderError> {
    let (value, _) = if has_escapes {
        serde_json_core::from_slice_escaped(text, scratch)?
    } else {
        serde_json_core::from_slice(text)?
    };
    Ok(value)
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
