//! The header checker: a strict, iterative JSON scanner that runs once over a complete header.
//!
//! `serde-json-core` is a fine deserializer for headers that are known to be well formed, but it
//! recurses without a depth limit, rejects UTF-16 surrogate pairs, cannot hand out `&str` fields
//! that contained escapes, and folds many problems into one error. So every header goes through
//! the scanner here first, which in a single pass, with no recursion and no allocation:
//!
//! - checks the header is one JSON object (RFC 8259, strict: no trailing commas, no comments, no
//!   bytes after the object, no control characters in strings, valid UTF-8);
//! - limits nesting to [`MAX_DEPTH`] and number literals to [`MAX_NUMBER_LEN`] characters;
//! - rewrites string escapes *in place* into the shortest form `serde-json-core` reads: `\uXXXX`
//!   escapes (surrogate pairs included) become raw UTF-8, `\/` becomes `/`, and only `\"`, `\\`
//!   and control characters stay escaped. The rewrite never grows the header, and the scan
//!   only reads until an escape shortens it: nothing is written for a header without such
//!   escapes, and after one the text that follows is moved down in the same pass;
//! - records the top-level members the core understands (`total_size`, `filesize`, `md5`,
//!   `xxh3`), refusing duplicates of them.

/// Deepest nesting of arrays and objects a header may have (the header object itself is level 1).
pub const MAX_DEPTH: usize = 32;

/// Longest number literal, in characters, a header may contain.
pub const MAX_NUMBER_LEN: usize = 40;

/// What is wrong with a header's JSON text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JsonProblem {
    /// The header is not valid UTF-8.
    InvalidUtf8,
    /// The header is valid JSON but not an object (`{...}`).
    NotAnObject,
    /// A byte that cannot appear here in JSON.
    UnexpectedByte,
    /// The header ended in the middle of a value.
    Truncated,
    /// Non-whitespace bytes follow the header object.
    TrailingBytes,
    /// Arrays and objects nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// A number literal longer than [`MAX_NUMBER_LEN`] characters.
    NumberTooLong,
    /// A malformed number literal (leading zeros, missing digits, ...).
    InvalidNumber,
    /// An unknown escape or a `\u` not followed by four hex digits.
    InvalidEscape,
    /// A `\uD800`-`\uDFFF` escape that is not part of a surrogate pair.
    LoneSurrogate,
    /// A raw control character (below U+0020) inside a string.
    ControlCharacter,
    /// A member the core interprets (`total_size`, `filesize`, `md5`, `xxh3`) appears twice.
    DuplicateField,
}

impl JsonProblem {
    /// A short description, for messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            JsonProblem::InvalidUtf8 => "is not valid UTF-8",
            JsonProblem::NotAnObject => "is not a JSON object",
            JsonProblem::UnexpectedByte => "has a byte that is not valid JSON here",
            JsonProblem::Truncated => "ends in the middle of a value",
            JsonProblem::TrailingBytes => "has bytes after the closing brace",
            JsonProblem::TooDeep => "nests arrays/objects more than 32 levels deep",
            JsonProblem::NumberTooLong => "has a number literal longer than 40 characters",
            JsonProblem::InvalidNumber => "has a malformed number",
            JsonProblem::InvalidEscape => "has an invalid string escape",
            JsonProblem::LoneSurrogate => "has a \\u surrogate escape without its pair",
            JsonProblem::ControlCharacter => "has a raw control character inside a string",
            JsonProblem::DuplicateField => {
                "repeats one of total_size, filesize, md5, xxh3 (ambiguous, refused)"
            }
        }
    }
}

/// A header JSON error: what is wrong and the byte offset (in the header as received) where it
/// was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct JsonError {
    /// Offset into the header bytes as received.
    pub offset: usize,
    /// The problem.
    pub problem: JsonProblem,
}

/// A top-level member value as found by the scanner, as a span of the *normalised* header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum RawValue {
    /// The member is not present.
    #[default]
    Absent,
    /// `null`.
    Null,
    /// A number literal, `start..end`.
    Number(usize, usize),
    /// A string's contents (without quotes), `start..end`, escapes already normalised.
    String(usize, usize),
    /// `true`, `false`, an array or an object.
    Other,
}

/// The members of the header object that the core interprets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct KnownMembers {
    pub total_size: RawValue,
    pub filesize: RawValue,
    pub md5: RawValue,
    pub xxh3: RawValue,
}

/// Result of a successful scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Scanned {
    /// Length of the normalised header (a prefix of the buffer).
    pub len: usize,
    /// Whether any string still holds an escape (`\"`, `\\` or a control character).
    pub has_escapes: bool,
    /// Known top-level members.
    pub known: KnownMembers,
}

/// Most top-level members whose places the scan keeps for the typed view (with `fast-scan`);
/// a header with more is read by walking it.
#[cfg(feature = "fast-scan")]
pub(crate) const MAX_SPANS: usize = 16;

/// Where one top-level member stands in the normalised header.
#[cfg(feature = "fast-scan")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct MemberSpan {
    /// The name's text, without its quotes.
    pub name: (u16, u16),
    /// The value, from its first byte to the separator after it (so with any whitespace
    /// that follows it).
    pub value: (u16, u16),
    /// Whether the name or value may hold an escape (no header text before the end of the
    /// value held one when this is false).
    pub escaped: bool,
}

/// With `fast-scan`, the places of the header object's members as the scan found them, so that
/// the typed view goes straight to each member instead of walking the header a second time.
#[cfg(feature = "fast-scan")]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spans {
    /// Whether `members` holds every member of the last header scanned.
    pub complete: bool,
    /// Where the header object starts (its `{`) and where the scan ended (after its `}` and
    /// any whitespace after it).
    pub object: (u16, u16),
    len: u8,
    members: [MemberSpan; MAX_SPANS],
}

#[cfg(feature = "fast-scan")]
impl Spans {
    /// Nothing recorded.
    pub const NONE: Spans = Spans {
        complete: false,
        object: (0, 0),
        len: 0,
        members: [MemberSpan {
            name: (0, 0),
            value: (0, 0),
            escaped: false,
        }; MAX_SPANS],
    };

    /// The members recorded, when they are all of them.
    pub fn members(&self) -> Option<&[MemberSpan]> {
        if self.complete {
            self.members.get(..usize::from(self.len))
        } else {
            None
        }
    }

    fn start(&mut self) {
        self.complete = false;
        self.len = 0;
    }

    /// A member whose name is the text `name` and whose value is `value`, from its first byte
    /// to the separator after it (so with any whitespace before that); `escaped`: whether the
    /// header held an escape up to there.
    #[inline(always)]
    fn push(&mut self, name: (usize, usize), value: (usize, usize), escaped: bool) {
        match self.members.get_mut(usize::from(self.len)) {
            Some(m) => {
                *m = MemberSpan {
                    name: (name.0 as u16, name.1 as u16),
                    value: (value.0 as u16, value.1 as u16),
                    escaped,
                };
                self.len += 1;
            }
            // One more than fit: the view walks this header.
            None => self.len = MAX_SPANS as u8 + 1,
        }
    }

    fn finish(&mut self, object: (usize, usize)) {
        self.object = (object.0 as u16, object.1 as u16);
        // Spans are `u16`: a longer header is walked.
        self.complete = usize::from(self.len) <= MAX_SPANS && object.1 <= u16::MAX as usize;
    }
}

/// Without `fast-scan` nothing is recorded (the smallest code): the view walks the header.
#[cfg(not(feature = "fast-scan"))]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spans;

#[cfg(not(feature = "fast-scan"))]
impl Spans {
    /// Nothing recorded.
    pub const NONE: Spans = Spans;
    #[inline(always)]
    fn start(&mut self) {}
    #[inline(always)]
    fn finish(&mut self, _: (usize, usize)) {}
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Member {
    TotalSize,
    Filesize,
    Md5,
    Xxh3,
}

impl Member {
    #[cfg_attr(feature = "fast-scan", inline(always))]
    fn from_key(key: &[u8]) -> Option<Member> {
        match key {
            b"total_size" => Some(Member::TotalSize),
            b"filesize" => Some(Member::Filesize),
            b"md5" => Some(Member::Md5),
            b"xxh3" => Some(Member::Xxh3),
            _ => None,
        }
    }
}

struct Scanner<'b> {
    buf: &'b mut [u8],
    /// Read position (into the header as received).
    r: usize,
    /// How many bytes the escapes rewritten so far saved: an input byte at `i` belongs at
    /// `i - shift` of the normalised output. While it is 0 (no escape has shortened the header,
    /// the usual case) nothing is ever written.
    shift: usize,
    /// The input before this position is in its output place already (matters once `shift` is
    /// not 0).
    settled: usize,
    has_escapes: bool,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl Scanner<'_> {
    fn err(&self, problem: JsonProblem) -> JsonError {
        JsonError {
            offset: self.r,
            problem,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.buf.get(self.r).copied()
    }

    /// Where the byte at the read position goes in the normalised output.
    fn out(&self) -> usize {
        self.r - self.shift
    }

    /// Moves the bytes read since the last rewrite down to their output place (nothing to move
    /// while no escape has shortened the header). Byte by byte, front to back: the output
    /// trails the input, and a generic `copy_within` would link a whole `memmove` into a
    /// firmware for this one use.
    #[inline(always)]
    fn settle(&mut self) {
        // With `fast-scan`, nothing is called while nothing moves (where `settled` stands is
        // only read once `shift` is not 0, and `rewrite` sets it as `shift` grows).
        #[cfg(feature = "fast-scan")]
        if self.shift == 0 {
            return;
        }
        self.settle_moved();
    }

    /// [`settle`](Self::settle)'s work, out of line.
    #[inline(never)]
    fn settle_moved(&mut self) {
        if self.shift != 0 {
            for from in self.settled..self.r {
                if let Some(&b) = self.buf.get(from)
                    && let Some(out) = self.buf.get_mut(from - self.shift)
                {
                    *out = b;
                }
            }
        }
        self.settled = self.r;
    }

    /// Replaces the `len` input bytes at the read position (an escape) with the shorter
    /// `with`.
    fn rewrite(&mut self, len: usize, with: &[u8]) {
        self.settle();
        let at = self.out();
        for (i, &b) in with.iter().enumerate() {
            if let Some(out) = self.buf.get_mut(at + i) {
                *out = b;
            }
        }
        self.r += len;
        self.shift += len - with.len();
        self.settled = self.r;
    }

    /// Steps over whitespace and returns the next byte.
    #[cfg_attr(feature = "fast-scan", inline(always))]
    fn skip_ws(&mut self) -> Option<u8> {
        while let Some(b) = self.peek() {
            if !is_ws(b) {
                return Some(b);
            }
            self.r += 1;
        }
        None
    }

    #[cfg_attr(feature = "fast-scan", inline(always))]
    fn expect_byte(&mut self) -> Result<u8, JsonError> {
        self.skip_ws()
            .ok_or_else(|| self.err(JsonProblem::Truncated))
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let digits = self.buf.get(at..at + 4)?;
        let mut v = 0u32;
        for &d in digits {
            v = v * 16 + u32::from(crate::hex::digit(d)?);
        }
        Some(v)
    }

    /// Scans a string starting at its opening quote; returns the normalised content span.
    /// (Called for names and values; one copy of it in a firmware.)
    /// With `fast-scan`, inlined where it is called, for speed.
    #[cfg_attr(not(feature = "fast-scan"), inline(never))]
    #[cfg_attr(feature = "fast-scan", inline(always))]
    fn string(&mut self) -> Result<(usize, usize), JsonError> {
        self.r += 1; // opening quote
        let start = self.out();
        loop {
            // The bytes up to the next quote, backslash or control character need no rewriting.
            self.r += crate::string_run::plain_len(&self.buf[self.r..]);
            let Some(b) = self.peek() else {
                return Err(self.err(JsonProblem::Truncated));
            };
            match b {
                b'"' => {
                    let end = self.out();
                    self.r += 1;
                    return Ok((start, end));
                }
                b'\\' => self.escape()?,
                #[cfg(feature = "fast-scan")]
                0x80.. => self.utf8_char()?,
                _ => return Err(self.err(JsonProblem::ControlCharacter)),
            }
        }
    }

    /// Checks the UTF-8 character that starts at the read position (a byte above 0x7F) and
    /// steps over it.
    #[cfg(feature = "fast-scan")]
    fn utf8_char(&mut self) -> Result<(), JsonError> {
        let len = match self.buf[self.r] {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => 0,
        };
        match self.buf.get(self.r..self.r + len) {
            Some(ch) if len > 0 && core::str::from_utf8(ch).is_ok() => {
                self.r += len;
                Ok(())
            }
            _ => Err(self.err(JsonProblem::InvalidUtf8)),
        }
    }

    /// Checks one escape sequence at the read position, rewriting it if it has a shorter form.
    fn escape(&mut self) -> Result<(), JsonError> {
        let Some(kind) = self.buf.get(self.r + 1).copied() else {
            return Err(self.err(JsonProblem::Truncated));
        };
        match kind {
            b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => {
                self.r += 2;
                self.has_escapes = true;
                Ok(())
            }
            b'/' => {
                self.rewrite(2, b"/");
                Ok(())
            }
            b'u' => self.unicode_escape(),
            _ => Err(self.err(JsonProblem::InvalidEscape)),
        }
    }

    fn unicode_escape(&mut self) -> Result<(), JsonError> {
        let Some(unit) = self.hex4(self.r + 2) else {
            return Err(self.err(JsonProblem::InvalidEscape));
        };
        let (code, len) = match unit {
            0xD800..=0xDBFF => {
                let low = match (self.buf.get(self.r + 6..self.r + 8), self.hex4(self.r + 8)) {
                    (Some(b"\\u"), Some(low @ 0xDC00..=0xDFFF)) => low,
                    _ => return Err(self.err(JsonProblem::LoneSurrogate)),
                };
                (0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00), 12)
            }
            0xDC00..=0xDFFF => return Err(self.err(JsonProblem::LoneSurrogate)),
            _ => (unit, 6),
        };
        let short = match code {
            0x22 => Some(b'"'),
            0x5c => Some(b'\\'),
            0x08 => Some(b'b'),
            0x0c => Some(b'f'),
            0x0a => Some(b'n'),
            0x0d => Some(b'r'),
            0x09 => Some(b't'),
            _ => None,
        };
        if let Some(short) = short {
            self.rewrite(len, &[b'\\', short]);
            self.has_escapes = true;
        } else if code < 0x20 {
            // No short form: keep the six-byte escape as it is.
            self.r += 6;
            self.has_escapes = true;
        } else {
            // Surrogates were handled above, so this is a scalar value.
            let ch = char::from_u32(code).ok_or_else(|| self.err(JsonProblem::InvalidEscape))?;
            let mut utf8 = [0u8; 4];
            let utf8 = ch.encode_utf8(&mut utf8).as_bytes();
            self.rewrite(len, utf8);
        }
        Ok(())
    }

    /// Steps over decimal digits; returns how many.
    #[cfg_attr(feature = "fast-scan", inline(always))]
    fn digits(&mut self) -> usize {
        let start = self.r;
        while let Some(b'0'..=b'9') = self.peek() {
            self.r += 1;
        }
        self.r - start
    }

    #[cfg_attr(feature = "fast-scan", inline(always))]
    fn number(&mut self) -> Result<(usize, usize), JsonError> {
        let start_r = self.r;
        if self.peek() == Some(b'-') {
            self.r += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.r += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(self.err(JsonProblem::InvalidNumber));
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err(JsonProblem::InvalidNumber)),
        }
        if self.peek() == Some(b'.') {
            self.r += 1;
            if self.digits() == 0 {
                return Err(self.err(JsonProblem::InvalidNumber));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.r += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.r += 1;
            }
            if self.digits() == 0 {
                return Err(self.err(JsonProblem::InvalidNumber));
            }
        }
        if self.r - start_r > MAX_NUMBER_LEN {
            return Err(JsonError {
                offset: start_r,
                problem: JsonProblem::NumberTooLong,
            });
        }
        Ok((start_r - self.shift, self.out()))
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), JsonError> {
        if self.buf.get(self.r..self.r + word.len()) != Some(word) {
            return Err(self.err(JsonProblem::UnexpectedByte));
        }
        self.r += word.len();
        Ok(())
    }
}

/// Checks and normalises `buf` (a complete header as received) in place.
///
/// On success the normalised header is `buf[..scanned.len]`.
///
/// With `fast-scan`, `spans` receives where each member of the header object stands.
pub(crate) fn scan_header(buf: &mut [u8], spans: &mut Spans) -> Result<Scanned, JsonError> {
    spans.start();
    utf8_up_front(buf)?;
    let mut s = Scanner {
        buf,
        r: 0,
        shift: 0,
        settled: 0,
        has_escapes: false,
    };
    scan(&mut s, spans).map_err(|e| utf8_first(&s, e))
}

/// Checks the whole header is UTF-8 before the scan (the smallest code).
#[cfg(not(feature = "fast-scan"))]
fn utf8_up_front(buf: &[u8]) -> Result<(), JsonError> {
    match core::str::from_utf8(buf) {
        Ok(_) => Ok(()),
        Err(e) => Err(JsonError {
            offset: e.valid_up_to(),
            problem: JsonProblem::InvalidUtf8,
        }),
    }
}

/// With `fast-scan`, UTF-8 is checked as the scan goes instead: every byte outside a string
/// must be ASCII to be JSON, and inside strings each non-ASCII character is checked where the
/// scan meets it ([`Scanner::utf8_char`]).
#[cfg(feature = "fast-scan")]
fn utf8_up_front(_: &[u8]) -> Result<(), JsonError> {
    Ok(())
}

/// The error for a header refused as `e`: without `fast-scan`, `e`.
#[cfg(not(feature = "fast-scan"))]
fn utf8_first(_: &Scanner<'_>, e: JsonError) -> JsonError {
    e
}

/// The error for a header refused as `e`: with `fast-scan`, the same as a check of the whole
/// header first would give. The scan stopped at `s.r`, on a character boundary, with valid
/// UTF-8 before it, and the bytes from there on are as received: if they are not UTF-8, the
/// header is refused as such, at the first bad byte.
#[cfg(feature = "fast-scan")]
#[cold]
#[inline(never)]
fn utf8_first(s: &Scanner<'_>, e: JsonError) -> JsonError {
    let rest = s.buf.get(s.r..).unwrap_or_default();
    match core::str::from_utf8(rest) {
        Ok(_) => e,
        Err(bad) => JsonError {
            offset: s.r + bad.valid_up_to(),
            problem: JsonProblem::InvalidUtf8,
        },
    }
}

/// The arrays and objects open around the read position, the header object included: how many,
/// and the kind of each (bit i of `kinds` set: level i+1 is an object). Nesting is counted, never
/// recursed into.
struct Levels {
    kinds: u32,
    depth: usize,
}

impl Levels {
    /// Opens the array or object whose bracket `open` is at the read position, refusing one
    /// level more than [`MAX_DEPTH`], and steps past the bracket and any whitespace. Returns
    /// whether it holds anything: an empty one is closed again at once.
    #[cfg_attr(feature = "fast-scan", inline(always))]
    fn open(&mut self, s: &mut Scanner<'_>, open: u8) -> Result<bool, JsonError> {
        if self.depth == MAX_DEPTH {
            return Err(s.err(JsonProblem::TooDeep));
        }
        let is_object = open == b'{';
        if is_object {
            self.kinds |= 1 << self.depth;
        } else {
            self.kinds &= !(1 << self.depth);
        }
        self.depth += 1;
        s.r += 1;
        let close = if is_object { b'}' } else { b']' };
        if s.expect_byte()? == close {
            s.r += 1;
            self.depth -= 1;
            return Ok(false);
        }
        Ok(true)
    }

    /// Whether the innermost open level is an object.
    #[cfg_attr(feature = "fast-scan", inline(always))]
    fn in_object(&self) -> bool {
        self.kinds & (1 << (self.depth - 1)) != 0
    }
}

/// The scan proper, over a header whose UTF-8 is checked (or is checked as it goes). Without
/// `fast-scan`, one loop reads every level, the header object's members included (the smallest
/// code; with `fast-scan` they have a loop of their own, below).
#[cfg(not(feature = "fast-scan"))]
fn scan(s: &mut Scanner<'_>, spans: &mut Spans) -> Result<Scanned, JsonError> {
    let mut known = KnownMembers::default();
    // Bit i set: level i+1 is an object; clear: an array.
    let mut levels = Levels { kinds: 0, depth: 0 };
    // The known member whose value comes next (only at depth 1).
    let mut pending: Option<(Member, usize)> = None;

    match s.skip_ws() {
        Some(b'{') => {}
        Some(_) => return Err(s.err(JsonProblem::NotAnObject)),
        None => return Err(s.err(JsonProblem::Truncated)),
    }
    let object_start = s.r;

    // Each turn parses one value, then the separators after it.
    'value: loop {
        let b = s.expect_byte()?;
        let value = match b {
            b'{' | b'[' => {
                if levels.open(s, b)? {
                    // A non-empty container: a known member that holds it is recorded now, so
                    // that neither its first element nor a member inside it is taken for it.
                    record(&mut known, pending.take(), RawValue::Other)?;
                    if levels.in_object() {
                        pending = member_key(s, levels.depth)?;
                    }
                    continue 'value;
                }
                RawValue::Other
            }
            b'"' => {
                let (a, z) = s.string()?;
                RawValue::String(a, z)
            }
            b'-' | b'0'..=b'9' => {
                let (a, z) = s.number()?;
                RawValue::Number(a, z)
            }
            b't' => s.literal(b"true").map(|_| RawValue::Other)?,
            b'f' => s.literal(b"false").map(|_| RawValue::Other)?,
            b'n' => s.literal(b"null").map(|_| RawValue::Null)?,
            _ => return Err(s.err(JsonProblem::UnexpectedByte)),
        };
        record(&mut known, pending.take(), value)?;
        // After a value: separators and closing brackets until the next value or the end.
        loop {
            if levels.depth == 0 {
                if s.skip_ws().is_some() {
                    return Err(s.err(JsonProblem::TrailingBytes));
                }
                s.settle();
                spans.finish((object_start, s.out()));
                return Ok(Scanned {
                    len: s.out(),
                    has_escapes: s.has_escapes,
                    known,
                });
            }
            match (s.expect_byte()?, levels.in_object()) {
                (b',', true) => {
                    s.r += 1;
                    s.expect_byte()?;
                    pending = member_key(s, levels.depth)?;
                    continue 'value;
                }
                (b',', false) => {
                    s.r += 1;
                    continue 'value;
                }
                (b'}', true) | (b']', false) => {
                    s.r += 1;
                    levels.depth -= 1;
                }
                _ => return Err(s.err(JsonProblem::UnexpectedByte)),
            }
        }
    }
}

/// The scan proper, over a header whose UTF-8 is checked (or is checked as it goes). With
/// `fast-scan`, the header object's members have a loop of their own, and values nested in them
/// are read by [`nested`]: fewer steps per member than one loop for every level, and 300 to
/// 550 bytes more code on the Cortex-M firmwares (so not without the feature). The two scans
/// check and normalise alike, byte for byte, and report the same errors at the same offsets
/// (the scanner's tests run in both builds, with the same expectations).
#[cfg(feature = "fast-scan")]
fn scan(s: &mut Scanner<'_>, spans: &mut Spans) -> Result<Scanned, JsonError> {
    let mut known = KnownMembers::default();
    match s.skip_ws() {
        Some(b'{') => {}
        Some(_) => return Err(s.err(JsonProblem::NotAnObject)),
        None => return Err(s.err(JsonProblem::Truncated)),
    }
    let object_start = s.r;
    s.r += 1;
    if s.expect_byte()? == b'}' {
        s.r += 1;
    } else {
        // Each turn reads one member, `"name": value`, and the separator after it.
        loop {
            let key_offset = s.r;
            let name = s.member_name()?;
            s.skip_ws();
            let value_start = s.out();
            // The name's normalised text, in its output place.
            s.settle();
            let mut member = Member::from_key(&s.buf[name.0..name.1]).map(|m| (m, key_offset));
            let value = match s.expect_byte()? {
                b'"' => {
                    let (a, z) = s.string()?;
                    RawValue::String(a, z)
                }
                b'-' | b'0'..=b'9' => {
                    let (a, z) = s.number()?;
                    RawValue::Number(a, z)
                }
                b't' => s.literal(b"true").map(|_| RawValue::Other)?,
                b'f' => s.literal(b"false").map(|_| RawValue::Other)?,
                b'n' => s.literal(b"null").map(|_| RawValue::Null)?,
                open @ (b'{' | b'[') => {
                    let mut levels = Levels { kinds: 1, depth: 1 };
                    if levels.open(s, open)? {
                        // A non-empty container: a known member that holds it is recorded
                        // before what is inside it is read.
                        record(&mut known, member.take(), RawValue::Other)?;
                        nested(s, levels)?;
                    }
                    RawValue::Other
                }
                _ => return Err(s.err(JsonProblem::UnexpectedByte)),
            };
            record(&mut known, member, value)?;
            match s.expect_byte()? {
                b',' => {
                    spans.push(name, (value_start, s.out()), s.has_escapes);
                    s.r += 1;
                    s.expect_byte()?;
                }
                b'}' => {
                    spans.push(name, (value_start, s.out()), s.has_escapes);
                    s.r += 1;
                    break;
                }
                _ => return Err(s.err(JsonProblem::UnexpectedByte)),
            }
        }
    }
    if s.skip_ws().is_some() {
        return Err(s.err(JsonProblem::TrailingBytes));
    }
    s.settle();
    spans.finish((object_start, s.out()));
    Ok(Scanned {
        len: s.out(),
        has_escapes: s.has_escapes,
        known,
    })
}

/// Scans the rest of a non-empty array or object that is a value of the header object (opened
/// in `levels`, two deep), from the first byte after its opening bracket (whitespace skipped).
#[cfg(feature = "fast-scan")]
fn nested(s: &mut Scanner<'_>, mut levels: Levels) -> Result<(), JsonError> {
    if levels.in_object() {
        s.member_name()?;
    }
    // Each turn reads one value, then the separators after it.
    'value: loop {
        match s.expect_byte()? {
            open @ (b'{' | b'[') => {
                if levels.open(s, open)? {
                    if levels.in_object() {
                        s.member_name()?;
                    }
                    continue 'value;
                }
            }
            b'"' => {
                s.string()?;
            }
            b'-' | b'0'..=b'9' => {
                s.number()?;
            }
            b't' => s.literal(b"true")?,
            b'f' => s.literal(b"false")?,
            b'n' => s.literal(b"null")?,
            _ => return Err(s.err(JsonProblem::UnexpectedByte)),
        }
        // After a value: separators and closing brackets until the next value or the end.
        loop {
            match (s.expect_byte()?, levels.in_object()) {
                (b',', true) => {
                    s.r += 1;
                    s.expect_byte()?;
                    s.member_name()?;
                    continue 'value;
                }
                (b',', false) => {
                    s.r += 1;
                    continue 'value;
                }
                (b'}', true) | (b']', false) => {
                    s.r += 1;
                    levels.depth -= 1;
                    if levels.depth == 1 {
                        return Ok(());
                    }
                }
                _ => return Err(s.err(JsonProblem::UnexpectedByte)),
            }
        }
    }
}

/// Stores the value of a known member (if `pending` names one), refusing duplicates.
fn record(
    known: &mut KnownMembers,
    pending: Option<(Member, usize)>,
    value: RawValue,
) -> Result<(), JsonError> {
    let Some((member, key_offset)) = pending else {
        return Ok(());
    };
    let slot = match member {
        Member::TotalSize => &mut known.total_size,
        Member::Filesize => &mut known.filesize,
        Member::Md5 => &mut known.md5,
        Member::Xxh3 => &mut known.xxh3,
    };
    if *slot != RawValue::Absent {
        return Err(JsonError {
            offset: key_offset,
            problem: JsonProblem::DuplicateField,
        });
    }
    *slot = value;
    Ok(())
}

/// Parses `"key":` at the read position (whitespace already skipped) and, at depth 1, says which
/// known member it names.
#[cfg(not(feature = "fast-scan"))]
fn member_key(s: &mut Scanner<'_>, depth: usize) -> Result<Option<(Member, usize)>, JsonError> {
    let key_offset = s.r;
    let (a, z) = s.member_name()?;
    if depth != 1 {
        return Ok(None);
    }
    // The name's normalised text, in its output place.
    s.settle();
    Ok(Member::from_key(&s.buf[a..z]).map(|m| (m, key_offset)))
}

impl Scanner<'_> {
    /// Reads `"name":` at the read position (whitespace already skipped); returns the name's
    /// normalised span.
    #[cfg_attr(feature = "fast-scan", inline(always))]
    fn member_name(&mut self) -> Result<(usize, usize), JsonError> {
        if self.peek() != Some(b'"') {
            return Err(self.err(JsonProblem::UnexpectedByte));
        }
        let name = self.string()?;
        if self.expect_byte()? != b':' {
            return Err(self.err(JsonProblem::UnexpectedByte));
        }
        self.r += 1;
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(text: &[u8]) -> Result<(heapless::Vec<u8, 512>, Scanned), JsonError> {
        let mut buf: heapless::Vec<u8, 512> = heapless::Vec::from_slice(text).unwrap();
        let mut spans = Spans::NONE;
        let scanned = scan_header(&mut buf, &mut spans)?;
        buf.truncate(scanned.len);
        Ok((buf, scanned))
    }

    #[test]
    fn accepts_and_normalises() {
        let table: [(&[u8], &[u8], bool); 9] = [
            (b"{}", b"{}", false),
            (
                b" { \"a\" : [1, 2.5e-3, true, null, {\"b\":[]}] } \n",
                b" { \"a\" : [1, 2.5e-3, true, null, {\"b\":[]}] } \n",
                false,
            ),
            // Python json.dumps(ensure_ascii=True) of a Chinese folder name.
            (
                br#"{"p":"C:\\Users\\Aaron\\Desktop\\\u65b0\u5efa\u6587\u4ef6\u5939"}"#,
                "{\"p\":\"C:\\\\Users\\\\Aaron\\\\Desktop\\\\新建文件夹\"}".as_bytes(),
                true,
            ),
            // A surrogate pair (emoji) becomes four UTF-8 bytes.
            (
                br#"{"e":"\ud83d\ude00.txt"}"#,
                "{\"e\":\"😀.txt\"}".as_bytes(),
                false,
            ),
            (br#"{"s":"a\/b"}"#, br#"{"s":"a/b"}"#, false),
            (br#"{"q":"\u0022\u005C\u000a"}"#, br#"{"q":"\"\\\n"}"#, true),
            (br#"{"c":"\u0001"}"#, br#"{"c":"\u0001"}"#, true),
            (br#"{"k\u0041":"x"}"#, br#"{"kA":"x"}"#, false),
            (
                "{\"raw\":\"é\"}".as_bytes(),
                "{\"raw\":\"é\"}".as_bytes(),
                false,
            ),
        ];
        for (input, normalised, escapes) in table {
            let (out, scanned) = scan(input).unwrap_or_else(|e| panic!("{input:?}: {e:?}"));
            assert_eq!(&out[..], normalised, "{:?}", core::str::from_utf8(input));
            assert_eq!(
                scanned.has_escapes,
                escapes,
                "{:?}",
                core::str::from_utf8(input)
            );
        }
    }

    #[test]
    fn rejects_with_problem_and_offset() {
        let table: [(&[u8], JsonProblem, usize); 22] = [
            (b"", JsonProblem::Truncated, 0),
            (b"[]", JsonProblem::NotAnObject, 0),
            (b"42", JsonProblem::NotAnObject, 0),
            (b"{", JsonProblem::Truncated, 1),
            (b"{\"a\":1,}", JsonProblem::UnexpectedByte, 7),
            (b"{\"a\":1}x", JsonProblem::TrailingBytes, 7),
            (b"{\"a\":1}{}", JsonProblem::TrailingBytes, 7),
            (b"{\"a\" 1}", JsonProblem::UnexpectedByte, 5),
            (b"{a:1}", JsonProblem::UnexpectedByte, 1),
            (b"{\"a\":01}", JsonProblem::InvalidNumber, 6),
            (b"{\"a\":-}", JsonProblem::InvalidNumber, 6),
            (b"{\"a\":1.}", JsonProblem::InvalidNumber, 7),
            (b"{\"a\":1e}", JsonProblem::InvalidNumber, 7),
            (b"{\"a\":\"\\x\"}", JsonProblem::InvalidEscape, 6),
            (b"{\"a\":\"\\u12\"}", JsonProblem::InvalidEscape, 6),
            (b"{\"a\":\"\\ud83d\"}", JsonProblem::LoneSurrogate, 6),
            (b"{\"a\":\"\\ude00\"}", JsonProblem::LoneSurrogate, 6),
            (b"{\"a\":\"\x01\"}", JsonProblem::ControlCharacter, 6),
            (b"{\"a\":\xff}", JsonProblem::InvalidUtf8, 5),
            (b"{\"a\":tru}", JsonProblem::UnexpectedByte, 5),
            (
                b"{\"md5\":\"a\",\"md5\":\"b\"}",
                JsonProblem::DuplicateField,
                11,
            ),
            (b"{\"a\":[1 2]}", JsonProblem::UnexpectedByte, 8),
        ];
        for (input, problem, offset) in table {
            let err = scan(input).expect_err(core::str::from_utf8(input).unwrap_or("?"));
            assert_eq!(
                (err.problem, err.offset),
                (problem, offset),
                "{:?}",
                core::str::from_utf8(input)
            );
        }
    }

    #[test]
    fn invalid_utf8_is_refused_at_its_first_bad_byte_wherever_it_is() {
        let table: [&[u8]; 10] = [
            b"{\"a\":\"\xc3\"}",
            b"{\"a\":\"\xc3\xa9\xa9\"}",
            b"{\"a\":\"\xc0\xaf\"}",
            b"{\"a\":\"\xed\xa0\x80\"}",
            b"{\"a\":\"\xf4\x90\x80\x80\"}",
            b"{\"a\":\"\xf0\x9f\x98",
            b"{\"\xe2\x82\":1}",
            // After a syntax error, or where no string is.
            b"{\"a\":tru \"\xff\"}",
            b"{\"a\":1}\xfe",
            b"\xff{}",
        ];
        for input in table {
            let bad = core::str::from_utf8(input).unwrap_err().valid_up_to();
            let err = scan(input).expect_err("invalid UTF-8 taken");
            assert_eq!(
                (err.problem, err.offset),
                (JsonProblem::InvalidUtf8, bad),
                "{input:?}"
            );
        }
        let (out, _) = scan("{\"é\":\"😀 ü €\"}".as_bytes()).unwrap();
        assert_eq!(&out[..], "{\"é\":\"😀 ü €\"}".as_bytes());
    }

    #[test]
    fn limits_depth_without_recursion() {
        let mut deep = heapless::Vec::<u8, 512>::new();
        deep.extend_from_slice(b"{\"x\":").unwrap();
        for _ in 0..MAX_DEPTH - 1 {
            deep.push(b'[').unwrap();
        }
        for _ in 0..MAX_DEPTH - 1 {
            deep.push(b']').unwrap();
        }
        deep.push(b'}').unwrap();
        assert!(scan(&deep).is_ok(), "exactly MAX_DEPTH levels are fine");

        let mut too_deep = heapless::Vec::<u8, 512>::new();
        too_deep.extend_from_slice(b"{\"x\":").unwrap();
        for _ in 0..MAX_DEPTH {
            too_deep.push(b'[').unwrap();
        }
        assert_eq!(scan(&too_deep).unwrap_err().problem, JsonProblem::TooDeep);
    }

    #[test]
    fn number_length_is_limited() {
        let long = b"{\"a\":12345678901234567890123456789012345678901}";
        assert_eq!(scan(long).unwrap_err().problem, JsonProblem::NumberTooLong);
    }

    #[test]
    fn text_after_a_shortening_escape_moves_down_with_its_spans() {
        let (out, scanned) = scan(
            br#"{"a":"\u00e9\/x", "b" : [1, "\"", true], "total\u005fsize": 12, "md5":"\/ab"}"#,
        )
        .unwrap();
        assert_eq!(
            &out[..],
            "{\"a\":\"é/x\", \"b\" : [1, \"\\\"\", true], \"total_size\": 12, \"md5\":\"/ab\"}"
                .as_bytes()
        );
        assert!(scanned.has_escapes);
        let RawValue::Number(a, z) = scanned.known.total_size else {
            panic!("{:?}", scanned.known)
        };
        assert_eq!(&out[a..z], b"12");
        let RawValue::String(a, z) = scanned.known.md5 else {
            panic!("{:?}", scanned.known)
        };
        assert_eq!(&out[a..z], b"/ab");
    }

    #[test]
    fn records_known_top_level_members_only() {
        let (out, scanned) =
            scan(br#"{"x":{"total_size":9},"total_size":12,"md5":"ab","filesize":null,"xxh3":[]}"#)
                .unwrap();
        let RawValue::Number(a, z) = scanned.known.total_size else {
            panic!("{:?}", scanned.known)
        };
        assert_eq!(&out[a..z], b"12");
        let RawValue::String(a, z) = scanned.known.md5 else {
            panic!()
        };
        assert_eq!(&out[a..z], b"ab");
        assert_eq!(scanned.known.filesize, RawValue::Null);
        assert_eq!(scanned.known.xxh3, RawValue::Other);
    }
}
