//! Typed views of a checked header: a serde `Deserializer` over header JSON that the strict scan
//! ([`json`](crate::json)) has already checked and normalised.
//!
//! The text is known to be one well-formed object (RFC 8259, at most
//! [`MAX_DEPTH`](crate::json::MAX_DEPTH) levels deep, number literals of at most
//! [`MAX_NUMBER_LEN`](crate::json::MAX_NUMBER_LEN) characters, valid UTF-8 and valid escapes), so
//! this reader checks no syntax again: it reads values into the view's types and reports a value
//! that does not fit them, naming the member. A string without escapes is lent out of the header
//! as it stands; one with escapes is unescaped into a scratch buffer. Members the view does not
//! read are stepped over, never unescaped.

use core::fmt;

use serde::Deserialize;
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, Expected, MapAccess, SeqAccess, Unexpected,
    VariantAccess, Visitor,
};

use crate::HeaderError;
#[cfg(feature = "fast-scan")]
use crate::json::MemberSpan;
use crate::json::Spans;
use crate::string_run::plain_step;

mod members;

pub(crate) use members::members;
#[cfg(feature = "protocols")]
pub(crate) use members::{Kind, members_of};
pub use members::{Member, MemberError};

/// The serde name of the newtype through which a field asks for a string member's text as it
/// stands in the header, escapes and all (the sessions' `EscapedText`), borrowed rather than
/// unescaped.
pub(crate) const RAW_STRING: &str = "$unstick::RawString";

/// Longest member name a [`ShapeError`] keeps to name where it was found.
const MEMBER_NAME_CAP: usize = 32;

/// Reads `text` (a header the strict scan accepted, normalised) as an `H`, unescaping strings
/// into `scratch`.
#[cfg(test)]
pub(crate) fn read_view<'de, H: Deserialize<'de>>(
    text: &'de [u8],
    scratch: &mut [u8],
) -> Result<H, HeaderError> {
    static NONE: Spans = Spans::NONE;
    read_view_at(text, scratch, &NONE)
}

/// Reads `text` (a header the strict scan accepted, normalised, recording `spans`) as an `H`,
/// unescaping strings into `scratch`.
#[inline(never)]
pub(crate) fn read_view_at<'de, H: Deserialize<'de>>(
    text: &'de [u8],
    scratch: &mut [u8],
    spans: &'de Spans,
) -> Result<H, HeaderError> {
    // Checked by the scan; validated again here, once, so that the reader slices `str`s.
    let Ok(text) = core::str::from_utf8(text) else {
        return Err(HeaderError::Shape(ShapeError::new(Problem::Other, "")));
    };
    let _ = spans;
    let mut reader = Reader {
        text,
        at: 0,
        scratch,
        failed_in: None,
        #[cfg(feature = "fast-scan")]
        recorded: Recorded::of(spans),
    };
    match H::deserialize(&mut reader) {
        Ok(view) => Ok(view),
        Err(e) => Err(reader.header_error(e)),
    }
}

/// The header does not have the members or types a typed view expects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeError {
    problem: Problem,
    /// The member whose value did not fit (empty: the header itself, or not known), cut to
    /// [`MEMBER_NAME_CAP`] bytes.
    member: heapless::String<MEMBER_NAME_CAP>,
}

/// What did not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Problem {
    /// A value of another type.
    Type(Found),
    /// A value of the right type that the view does not take (out of range, an unknown name).
    Value(Found),
    /// A string, array or object of a length the view does not take.
    Length(usize),
    /// A required member is missing.
    Missing,
    /// A member the view reads once appears twice.
    Duplicate,
    /// A string the view borrows holds escapes, which only an owned string can hold.
    NeedsOwnedString,
    /// The view's own check failed.
    Other,
}

/// What kind of value was found, for a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Found {
    Bool,
    Number,
    String,
    Null,
    Array,
    Object,
    Other,
}

impl Found {
    fn of(unexpected: &Unexpected<'_>) -> Found {
        match unexpected {
            Unexpected::Bool(_) => Found::Bool,
            Unexpected::Unsigned(_) | Unexpected::Signed(_) | Unexpected::Float(_) => Found::Number,
            Unexpected::Char(_) | Unexpected::Str(_) => Found::String,
            Unexpected::Unit | Unexpected::Option => Found::Null,
            Unexpected::Seq => Found::Array,
            Unexpected::Map => Found::Object,
            _ => Found::Other,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Found::Bool => "a boolean",
            Found::Number => "a number",
            Found::String => "a string",
            Found::Null => "null",
            Found::Array => "an array",
            Found::Object => "an object",
            Found::Other => "a value",
        }
    }
}

impl ShapeError {
    /// The error `problem` in the member `name` (cut to [`MEMBER_NAME_CAP`] bytes).
    fn new(problem: Problem, name: &str) -> ShapeError {
        let mut end = name.len().min(MEMBER_NAME_CAP);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        let mut member = heapless::String::new();
        let _ = member.push_str(&name[..end]);
        ShapeError { problem, member }
    }

    /// The member whose value did not fit (the innermost, for nested objects), when known: its
    /// name as it stands in the header (escapes as sent), cut to 32 bytes.
    pub fn member(&self) -> Option<&str> {
        (!self.member.is_empty()).then_some(self.member.as_str())
    }
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.problem.describe(f, &self.member)
    }
}

impl Problem {
    /// Says what is wrong with the member `member` (empty: the header itself).
    fn describe(self, f: &mut fmt::Formatter<'_>, member: &str) -> fmt::Result {
        let place = crate::peer_text::PeerText::new(member);
        match self {
            Problem::Missing => return write!(f, "the header has no `{place}` member"),
            Problem::Duplicate => return write!(f, "the header repeats `{place}`"),
            _ if member.is_empty() => f.write_str("the header")?,
            _ => write!(f, "`{place}`")?,
        }
        match self {
            Problem::Type(found) => write!(f, " has the wrong type ({})", found.as_str()),
            Problem::Value(found) => write!(f, " is {} the view does not take", found.as_str()),
            Problem::Length(n) => write!(f, " has a length ({n}) the view does not take"),
            Problem::NeedsOwnedString => f.write_str(
                " holds escapes: read it into an owned string (heapless::String), not a &str",
            ),
            Problem::Other | Problem::Missing | Problem::Duplicate => {
                f.write_str(" does not fit the view")
            }
        }
    }
}

impl core::error::Error for ShapeError {}

/// What reading a view stops on: small, as it passes through every call of the reader (the
/// member it happened in is kept by the reader).
#[derive(Clone, Copy, Debug)]
enum ViewError {
    Shape(Problem),
    /// A problem with a member the view names itself (missing or repeated).
    Member(Problem, &'static str),
    /// A string needs more room to unescape than the scratch buffer has.
    ScratchTooSmall,
}

impl fmt::Display for ViewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ViewError::Shape(_) | ViewError::Member(..) => {
                f.write_str("the header does not fit the view")
            }
            ViewError::ScratchTooSmall => f.write_str("no room to unescape a string"),
        }
    }
}

impl core::error::Error for ViewError {}

impl de::Error for ViewError {
    fn custom<T: fmt::Display>(_: T) -> Self {
        ViewError::Shape(Problem::Other)
    }

    fn invalid_type(unexpected: Unexpected<'_>, _: &dyn Expected) -> Self {
        ViewError::Shape(Problem::Type(Found::of(&unexpected)))
    }

    fn invalid_value(unexpected: Unexpected<'_>, _: &dyn Expected) -> Self {
        ViewError::Shape(Problem::Value(Found::of(&unexpected)))
    }

    fn invalid_length(len: usize, _: &dyn Expected) -> Self {
        ViewError::Shape(Problem::Length(len))
    }

    fn unknown_variant(_: &str, _: &'static [&'static str]) -> Self {
        ViewError::Shape(Problem::Value(Found::String))
    }

    fn missing_field(field: &'static str) -> Self {
        ViewError::Member(Problem::Missing, field)
    }

    fn duplicate_field(field: &'static str) -> Self {
        ViewError::Member(Problem::Duplicate, field)
    }
}

/// A string value: lent from the header, or unescaped into the scratch buffer.
enum Text<'de, 's> {
    Header(&'de str),
    Scratch(&'s str),
}

/// The reader over one checked header.
struct Reader<'de, 's> {
    text: &'de str,
    at: usize,
    scratch: &'s mut [u8],
    /// The innermost member whose value failed to read (its raw name), to name it.
    failed_in: Option<&'de str>,
    /// What the scan recorded of the header object's members.
    #[cfg(feature = "fast-scan")]
    recorded: Recorded<'de>,
}

/// With `fast-scan`, the places the scan recorded: the header object's members, until the view
/// reads the object, then the member whose value is being read.
#[cfg(feature = "fast-scan")]
#[derive(Clone, Copy, Default)]
struct Recorded<'de> {
    /// The header object's members, and where the object starts and ends.
    members: Option<(&'de [MemberSpan], (u16, u16))>,
    /// The member whose value is being read (its value is known to start and end there).
    current: Option<&'de MemberSpan>,
}

#[cfg(feature = "fast-scan")]
impl<'de> Recorded<'de> {
    fn of(spans: &'de Spans) -> Recorded<'de> {
        Recorded {
            members: spans.members().map(|m| (m, spans.object)),
            current: None,
        }
    }

    /// The current member, if its value starts at `at`.
    fn value_at(&self, at: usize) -> Option<&'de MemberSpan> {
        self.current
            .filter(|m| m.value.0 as usize == at && !m.escaped)
    }
}

impl<'de> Reader<'de, '_> {
    /// The error a failed read reports.
    #[inline(never)]
    fn header_error(&self, e: ViewError) -> HeaderError {
        let shape = match e {
            ViewError::ScratchTooSmall => return HeaderError::ScratchTooSmall,
            ViewError::Member(problem, name) => ShapeError::new(problem, name),
            ViewError::Shape(problem) => ShapeError::new(problem, self.failed_in.unwrap_or("")),
        };
        HeaderError::Shape(shape)
    }

    /// A reader over `text` for values that need no unescaping.
    fn over(text: &'de str) -> Reader<'de, 'static> {
        Reader {
            text,
            at: 0,
            scratch: &mut [],
            failed_in: None,
            #[cfg(feature = "fast-scan")]
            recorded: Recorded::default(),
        }
    }

    /// The next byte that is not whitespace (the text is checked: there is one while a value
    /// is being read).
    #[inline]
    fn peek(&mut self) -> u8 {
        while let Some(&b) = self.text.as_bytes().get(self.at) {
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return b;
            }
            self.at += 1;
        }
        0
    }

    /// Steps over the byte [`peek`](Self::peek) returned.
    fn bump(&mut self) {
        self.at += 1;
    }

    /// The raw text of the string that starts here (escapes and all, without its quotes).
    fn raw_string(&mut self) -> &'de str {
        self.raw_string_and_escapes().0
    }

    /// The raw text of the string that starts here, and whether it holds an escape.
    #[cfg_attr(not(feature = "fast-scan"), inline(never))]
    #[cfg_attr(feature = "fast-scan", inline(always))]
    fn raw_string_and_escapes(&mut self) -> (&'de str, bool) {
        #[cfg(feature = "fast-scan")]
        if let Some(m) = self.recorded.value_at(self.at) {
            // A member's string value without escapes: where it ends is known (its closing
            // quote is the last byte before the whitespace up to the separator).
            let bytes = self.text.as_bytes();
            let mut z = m.value.1 as usize;
            while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(z.wrapping_sub(1)) {
                z -= 1;
            }
            self.at = z;
            let a = m.value.0 as usize + 1;
            return (self.text.get(a..z.saturating_sub(1)).unwrap_or(""), false);
        }
        self.bump();
        let start = self.at;
        let mut escapes = false;
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.at) {
            match b {
                b'"' => break,
                b'\\' => {
                    escapes = true;
                    self.at += 2;
                }
                _ => self.at += plain_step(&bytes[self.at..]),
            }
        }
        let end = self.at.min(self.text.len());
        self.at = end + 1;
        // Cut at quotes (ASCII): on character boundaries.
        (self.text.get(start..end).unwrap_or(""), escapes)
    }

    /// The string that starts here, unescaped.
    #[cfg_attr(not(feature = "fast-scan"), inline(never))]
    #[cfg_attr(feature = "fast-scan", inline(always))]
    fn string(&mut self) -> Result<Text<'de, '_>, ViewError> {
        let (raw, escapes) = self.raw_string_and_escapes();
        if !escapes {
            return Ok(Text::Header(raw));
        }
        let mut len = 0;
        for_each_piece(raw, |piece| {
            let room = self
                .scratch
                .get_mut(len..len + piece.len())
                .ok_or(ViewError::ScratchTooSmall)?;
            room.copy_from_slice(piece.as_bytes());
            len += piece.len();
            Ok::<(), ViewError>(())
        })?;
        // Whole characters were copied: valid UTF-8.
        Ok(Text::Scratch(
            core::str::from_utf8(&self.scratch[..len]).unwrap_or(""),
        ))
    }

    /// The number literal that starts here.
    #[inline(never)]
    fn number(&mut self) -> &'de str {
        let start = self.at;
        while let Some(&b) = self.text.as_bytes().get(self.at) {
            if !matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                break;
            }
            self.at += 1;
        }
        self.text.get(start..self.at).unwrap_or("")
    }

    /// Steps over the value that starts here, whatever it is.
    #[inline(never)]
    fn skip_value(&mut self) {
        #[cfg(feature = "fast-scan")]
        {
            self.peek();
            if let Some(m) = self.recorded.value_at(self.at) {
                self.at = m.value.1 as usize;
                return;
            }
        }
        let mut depth = 0usize;
        loop {
            match self.peek() {
                b'"' => {
                    self.raw_string();
                }
                b'{' | b'[' => {
                    self.bump();
                    depth += 1;
                    continue;
                }
                b'}' | b']' => {
                    self.bump();
                    depth = depth.saturating_sub(1);
                }
                b',' | b':' if depth > 0 => {
                    self.bump();
                    continue;
                }
                b't' | b'n' => self.at += 4,
                b'f' => self.at += 5,
                0 => return,
                _ => {
                    self.number();
                }
            }
            if depth == 0 {
                return;
            }
        }
    }

    /// What kind of value starts here, for a type error.
    #[inline(never)]
    fn found(&mut self) -> Unexpected<'static> {
        match self.peek() {
            b'"' => Unexpected::Str(""),
            b't' => Unexpected::Bool(true),
            b'f' => Unexpected::Bool(false),
            b'n' => Unexpected::Unit,
            b'[' => Unexpected::Seq,
            b'{' => Unexpected::Map,
            _ => Unexpected::Float(0.0),
        }
    }

    fn wrong_type(&mut self, expected: &dyn Expected) -> ViewError {
        de::Error::invalid_type(self.found(), expected)
    }

    /// The integer literal that starts here: `Ok(n)` for a non-negative one, `Err(n)` for a
    /// negative one; `None` when it has a fraction or exponent or does not fit 64 bits.
    #[cfg_attr(not(feature = "fast-scan"), inline(never))]
    #[cfg_attr(feature = "fast-scan", inline(always))]
    fn integer(&mut self) -> Option<Result<u64, i64>> {
        let (negative, n) = self.magnitude()?;
        if !negative {
            return Some(Ok(n));
        }
        // Down to i64::MIN, whose magnitude is one more than i64::MAX.
        match n {
            0..=0x7FFF_FFFF_FFFF_FFFF => Some(Err(-(n as i64))),
            0x8000_0000_0000_0000 => Some(Err(i64::MIN)),
            _ => None,
        }
    }

    /// Steps over a number literal: whether it is negative, and its magnitude when it is an
    /// integer of at most 64 bits. With `fast-scan` the digits are read as they are stepped
    /// over, in one pass.
    #[cfg(feature = "fast-scan")]
    #[inline(always)]
    fn magnitude(&mut self) -> Option<(bool, u64)> {
        let bytes = self.text.as_bytes();
        let negative = bytes.get(self.at) == Some(&b'-');
        let mut at = self.at + usize::from(negative);
        let mut n: u64 = 0;
        while let Some(&d) = bytes.get(at) {
            let digit = d.wrapping_sub(b'0');
            if digit > 9 {
                break;
            }
            match n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(digit)))
            {
                Some(next) => n = next,
                None => break,
            }
            at += 1;
        }
        self.at = at;
        if let Some(b'0'..=b'9' | b'.' | b'e' | b'E') = bytes.get(at) {
            // A fraction, an exponent or more than 64 bits: stepped over whole.
            self.number();
            return None;
        }
        Some((negative, n))
    }

    /// Steps over a number literal: whether it is negative, and its magnitude when it is an
    /// integer of at most 64 bits. Without `fast-scan`, the literal is stepped over, then read
    /// (the smallest code).
    #[cfg(not(feature = "fast-scan"))]
    fn magnitude(&mut self) -> Option<(bool, u64)> {
        let literal = self.number().as_bytes();
        let (negative, digits) = match literal.split_first() {
            Some((b'-', digits)) => (true, digits),
            _ => (false, literal),
        };
        let mut n: u64 = 0;
        for &d in digits {
            if !d.is_ascii_digit() {
                return None;
            }
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        Some((negative, n))
    }

    fn visit_integer<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, ViewError> {
        if !matches!(self.peek(), b'-' | b'0'..=b'9') {
            return Err(self.wrong_type(&visitor));
        }
        match self.integer() {
            Some(Ok(n)) => visitor.visit_u64(n),
            Some(Err(n)) => visitor.visit_i64(n),
            None => Err(de::Error::invalid_type(Unexpected::Float(0.0), &visitor)),
        }
    }

    fn visit_float<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, ViewError> {
        if !matches!(self.peek(), b'-' | b'0'..=b'9') {
            return Err(self.wrong_type(&visitor));
        }
        match self.number().parse::<f64>() {
            Ok(x) => visitor.visit_f64(x),
            Err(_) => Err(de::Error::invalid_type(
                Unexpected::Other("number"),
                &visitor,
            )),
        }
    }
}

impl<'de> Deserializer<'de> for &mut Reader<'de, '_> {
    type Error = ViewError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ViewError> {
        match self.peek() {
            b'"' => self.deserialize_str(visitor),
            b't' | b'f' => self.deserialize_bool(visitor),
            b'n' => {
                self.at += 4;
                visitor.visit_unit()
            }
            b'[' => self.deserialize_seq(visitor),
            b'{' => self.deserialize_map(visitor),
            _ => {
                let start = self.at;
                match self.integer() {
                    Some(Ok(n)) => visitor.visit_u64(n),
                    Some(Err(n)) => visitor.visit_i64(n),
                    None => {
                        self.at = start;
                        self.visit_float(visitor)
                    }
                }
            }
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ViewError> {
        match self.peek() {
            b't' => {
                self.at += 4;
                visitor.visit_bool(true)
            }
            b'f' => {
                self.at += 5;
                visitor.visit_bool(false)
            }
            _ => Err(self.wrong_type(&visitor)),
        }
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ViewError> {
        self.visit_integer(visitor)
    }

    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ViewError> {
        self.visit_integer(visitor)
    }

    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ViewError> {
        self.visit_integer(visitor)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ViewError> {
        self.visit_integer(visitor)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ViewError> {
        self.visit_integer(visitor)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ViewError> {
        self.visit_integer(visitor)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ViewError> {
        self.visit_integer(visitor)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ViewError> {
        self.visit_integer(visitor)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ViewError> {
        self.visit_float(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ViewError> {
        self.visit_float(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ViewError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ViewError> {
        if self.peek() != b'"' {
            return Err(self.wrong_type(&visitor));
        }
        match self.string()? {
            Text::Header(text) => visitor.visit_borrowed_str(text),
            Text::Scratch(text) => visitor.visit_str(text).map_err(|e| match e {
                // A borrowed `&str` asked for text that only exists unescaped.
                ViewError::Shape(Problem::Type(Found::String)) => {
                    ViewError::Shape(Problem::NeedsOwnedString)
                }
                other => other,
            }),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ViewError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ViewError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ViewError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ViewError> {
        if self.peek() == b'n' {
            self.at += 4;
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ViewError> {
        if self.peek() == b'n' {
            self.at += 4;
            visitor.visit_unit()
        } else {
            Err(self.wrong_type(&visitor))
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, ViewError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ViewError> {
        if name == RAW_STRING {
            if self.peek() != b'"' {
                return Err(self.wrong_type(&visitor));
            }
            let raw = self.raw_string();
            return visitor.visit_borrowed_str(raw);
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ViewError> {
        if self.peek() != b'[' {
            return Err(self.wrong_type(&visitor));
        }
        self.bump();
        let value = visitor.visit_seq(Elements {
            reader: &mut *self,
            first: true,
        })?;
        // Elements the view left unread are stepped over.
        while !matches!(self.peek(), b']' | 0) {
            if self.peek() == b',' {
                self.bump();
            }
            self.skip_value();
        }
        self.bump();
        Ok(value)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, ViewError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, ViewError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ViewError> {
        if self.peek() != b'{' {
            return Err(self.wrong_type(&visitor));
        }
        #[cfg(feature = "fast-scan")]
        if let Some((members, object)) = self.recorded.members
            && self.at == object.0 as usize
        {
            // The header object: its members are where the scan found them.
            self.recorded.members = None;
            let value = visitor.visit_map(RecordedMembers {
                reader: &mut *self,
                members,
                current: None,
            })?;
            self.at = object.1 as usize;
            return Ok(value);
        }
        self.bump();
        let value = visitor.visit_map(Members {
            reader: &mut *self,
            first: true,
            key: "",
        })?;
        while !matches!(self.peek(), b'}' | 0) {
            if self.peek() == b',' {
                self.bump();
            }
            self.skip_value();
            if self.peek() == b':' {
                self.bump();
                self.skip_value();
            }
        }
        self.bump();
        Ok(value)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ViewError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ViewError> {
        match self.peek() {
            // A unit variant, by its name.
            b'"' => visitor.visit_enum(Variant {
                reader: self,
                in_object: false,
            }),
            // `{"Variant": value}`.
            b'{' => {
                self.bump();
                let value = visitor.visit_enum(Variant {
                    reader: &mut *self,
                    in_object: true,
                })?;
                if self.peek() == b'}' {
                    self.bump();
                    Ok(value)
                } else {
                    Err(de::Error::invalid_length(2, &"an object with one member"))
                }
            }
            _ => Err(self.wrong_type(&visitor)),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ViewError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ViewError> {
        self.skip_value();
        visitor.visit_unit()
    }
}

/// An array's elements.
struct Elements<'r, 'de, 's> {
    reader: &'r mut Reader<'de, 's>,
    first: bool,
}

impl<'de> SeqAccess<'de> for Elements<'_, 'de, '_> {
    type Error = ViewError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ViewError> {
        match self.reader.peek() {
            b']' => return Ok(None),
            b',' if !self.first => self.reader.bump(),
            _ => {}
        }
        self.first = false;
        seed.deserialize(&mut *self.reader).map(Some)
    }
}

/// An object's members.
struct Members<'r, 'de, 's> {
    reader: &'r mut Reader<'de, 's>,
    first: bool,
    /// The raw text of the current member's name, to name it in an error.
    key: &'de str,
}

impl<'de> MapAccess<'de> for Members<'_, 'de, '_> {
    type Error = ViewError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ViewError> {
        match self.reader.peek() {
            b'}' => return Ok(None),
            b',' if !self.first => self.reader.bump(),
            _ => {}
        }
        self.first = false;
        self.reader.peek();
        let start = self.reader.at;
        let (name, escapes) = self.reader.raw_string_and_escapes();
        self.key = name;
        let key = if escapes {
            // Read again, unescaped.
            self.reader.at = start;
            seed.deserialize(&mut *self.reader)?
        } else {
            seed.deserialize(de::value::BorrowedStrDeserializer::<ViewError>::new(name))?
        };
        if self.reader.peek() == b':' {
            self.reader.bump();
        }
        Ok(Some(key))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, ViewError> {
        let value = seed.deserialize(&mut *self.reader);
        if value.is_err() && self.reader.failed_in.is_none() {
            self.reader.failed_in = Some(self.key);
        }
        value
    }
}

/// The header object's members, as the scan recorded them (with `fast-scan`).
#[cfg(feature = "fast-scan")]
struct RecordedMembers<'r, 'de, 's> {
    reader: &'r mut Reader<'de, 's>,
    /// The members not read yet.
    members: &'de [MemberSpan],
    /// The member whose name was read last.
    current: Option<&'de MemberSpan>,
}

#[cfg(feature = "fast-scan")]
impl<'de> MapAccess<'de> for RecordedMembers<'_, 'de, '_> {
    type Error = ViewError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ViewError> {
        let Some((member, rest)) = self.members.split_first() else {
            return Ok(None);
        };
        self.members = rest;
        self.current = Some(member);
        let (a, z) = (member.name.0 as usize, member.name.1 as usize);
        if member.escaped {
            // Read again, unescaped, from its opening quote.
            self.reader.at = a - 1;
            self.reader.recorded.current = None;
            seed.deserialize(&mut *self.reader).map(Some)
        } else {
            let name = self.reader.text.get(a..z).unwrap_or("");
            seed.deserialize(de::value::BorrowedStrDeserializer::<ViewError>::new(name))
                .map(Some)
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, ViewError> {
        let Some(member) = self.current else {
            // A visitor that asks for a value before its name (serde's own never do).
            return Err(de::Error::custom(
                "a value asked for before its member's name",
            ));
        };
        self.reader.at = member.value.0 as usize;
        self.reader.recorded.current = Some(member);
        let value = seed.deserialize(&mut *self.reader);
        self.reader.recorded.current = None;
        if value.is_err() && self.reader.failed_in.is_none() {
            let (a, z) = (member.name.0 as usize, member.name.1 as usize);
            self.reader.failed_in = Some(self.reader.text.get(a..z).unwrap_or(""));
        }
        value
    }
}

/// An enum's variant: a name (`in_object: false`), or an object's one member.
struct Variant<'r, 'de, 's> {
    reader: &'r mut Reader<'de, 's>,
    in_object: bool,
}

impl<'de> EnumAccess<'de> for Variant<'_, 'de, '_> {
    type Error = ViewError;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self), ViewError> {
        let name = seed.deserialize(&mut *self.reader)?;
        if self.in_object && self.reader.peek() == b':' {
            self.reader.bump();
        }
        Ok((name, self))
    }
}

impl<'de> VariantAccess<'de> for Variant<'_, 'de, '_> {
    type Error = ViewError;

    fn unit_variant(self) -> Result<(), ViewError> {
        if self.in_object {
            self.reader.skip_value();
        }
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, ViewError> {
        if !self.in_object {
            return Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"a newtype variant",
            ));
        }
        seed.deserialize(&mut *self.reader)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, ViewError> {
        if !self.in_object {
            return Err(de::Error::invalid_type(Unexpected::UnitVariant, &visitor));
        }
        self.reader.deserialize_seq(visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ViewError> {
        if !self.in_object {
            return Err(de::Error::invalid_type(Unexpected::UnitVariant, &visitor));
        }
        self.reader.deserialize_map(visitor)
    }
}

/// Why a string's escapes could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InvalidEscape;

/// Hands `take` the unescaped text of `raw` (a string's text between its quotes, as the scan
/// normalised it) piece by piece: runs without escapes whole, each escape as its character.
pub(crate) fn for_each_piece<E: From<InvalidEscape>>(
    raw: &str,
    mut take: impl FnMut(&str) -> Result<(), E>,
) -> Result<(), E> {
    let mut rest = raw;
    // Header strings are short: a plain loop, not `memchr`'s code, finds the backslashes.
    while let Some(at) = rest.bytes().position(|b| b == b'\\') {
        if at > 0 {
            take(&rest[..at])?;
        }
        let (c, used) = escape_at(&rest.as_bytes()[at..]).ok_or(InvalidEscape)?;
        take(c)?;
        rest = &rest[at + used..];
    }
    if !rest.is_empty() {
        take(rest)?;
    }
    Ok(())
}

/// The controls below U+0020, each at the offset of its code.
const CONTROLS: &str = "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f";

/// The character of the escape at the start of `bytes` and the bytes the escape takes. The
/// scan leaves only these in a header (it turns every other `\uXXXX` into UTF-8 and `\/` into
/// `/`): `\"`, `\\`, the short forms of controls and `\u00XX` for the other controls, each
/// standing for one ASCII character.
fn escape_at(bytes: &[u8]) -> Option<(&'static str, usize)> {
    let code = match *bytes.get(1)? {
        b'"' => return Some(("\"", 2)),
        b'\\' => return Some(("\\", 2)),
        b'b' => 0x08,
        b'f' => 0x0c,
        b'n' => 0x0a,
        b'r' => 0x0d,
        b't' => 0x09,
        b'u' => match *bytes.get(2..6)? {
            [b'0', b'0', high @ b'0'..=b'1', low] => {
                let low = usize::from(crate::hex::digit(low)?);
                return Some((control(usize::from(high - b'0') << 4 | low), 6));
            }
            _ => return None,
        },
        _ => return None,
    };
    Some((control(code), 2))
}

fn control(code: usize) -> &'static str {
    &CONTROLS[code..code + 1]
}

impl From<InvalidEscape> for ViewError {
    fn from(_: InvalidEscape) -> Self {
        ViewError::Shape(Problem::Other)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::string::{String, ToString};

    fn unescaped(raw: &str) -> Result<String, InvalidEscape> {
        let mut out = String::new();
        for_each_piece(raw, |piece| {
            out.push_str(piece);
            Ok::<(), InvalidEscape>(())
        })?;
        Ok(out)
    }

    #[test]
    fn every_escape_the_scan_leaves_reads_as_its_character() {
        assert_eq!(
            unescaped(r#"a\"b\\c\bd\f\n\r\te\u0001\u001f\u0000"#).unwrap(),
            "a\"b\\c\u{8}d\u{c}\n\r\te\u{1}\u{1f}\u{0}"
        );
        assert_eq!(unescaped("plain é").unwrap(), "plain é");
        // What the scan turns into UTF-8 never reaches the reader; anything else is refused.
        for other in [r"\x", r"\/", r"\u00e9", r"\u0020", r"\ud83d", r"\u12", "\\"] {
            assert_eq!(unescaped(other), Err(InvalidEscape), "{other}");
        }
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        File,
        Dir,
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct View<'a> {
        name: &'a str,
        size: Option<u32>,
        kind: Kind,
        tags: heapless::Vec<u8, 4>,
        #[serde(default)]
        ratio: Option<f64>,
    }

    #[test]
    fn a_view_reads_members_in_any_order_and_skips_the_rest() {
        let text = br#"{"extra":{"a":[1,"}",{"b":null}],"c":true},"tags":[1,2],"kind":"dir",
            "size":null,"name":"n","ratio":-2.5e1,"last":[]}"#;
        let view: View<'_> = read_view(text, &mut []).unwrap();
        assert_eq!(
            view,
            View {
                name: "n",
                size: None,
                kind: Kind::Dir,
                tags: heapless::Vec::from_slice(&[1, 2]).unwrap(),
                ratio: Some(-25.0),
            }
        );
    }

    #[test]
    fn a_value_that_does_not_fit_names_its_member() {
        let text = br#"{"name":"n","size":"12","kind":"file","tags":[]}"#;
        let Err(HeaderError::Shape(e)) = read_view::<View<'_>>(text, &mut []) else {
            panic!("a string where a number belongs was taken");
        };
        assert_eq!(e.member(), Some("size"));
        let text = e.to_string();
        assert_eq!(text, "`size` has the wrong type (a string)");
        let text = br#"{"name":"n","size":70000000000,"kind":"file","tags":[]}"#;
        let Err(HeaderError::Shape(e)) = read_view::<View<'_>>(text, &mut []) else {
            panic!("a number out of range was taken");
        };
        assert!(e.to_string().contains("does not take"), "{e}");
        let text = br#"{"name":"n","kind":"link","tags":[]}"#;
        assert!(read_view::<View<'_>>(text, &mut []).is_err());
        let text = br#"{"name":"n","kind":"file"}"#;
        let Err(HeaderError::Shape(e)) = read_view::<View<'_>>(text, &mut []) else {
            panic!("a missing member was not noticed");
        };
        assert_eq!(e.to_string(), "the header has no `tags` member");
    }

    #[test]
    fn escaped_strings_go_through_the_scratch_buffer() {
        #[derive(serde::Deserialize, Debug)]
        struct Owned {
            name: heapless::String<8>,
        }
        let text = br#"{"name":"a\"b"}"#;
        let mut scratch = [0u8; 3];
        assert_eq!(
            read_view::<Owned>(text, &mut scratch)
                .unwrap()
                .name
                .as_str(),
            "a\"b"
        );
        assert_eq!(
            read_view::<Owned>(text, &mut scratch[..2]).unwrap_err(),
            HeaderError::ScratchTooSmall
        );
        let Err(HeaderError::Shape(e)) = read_view::<View<'_>>(text, &mut scratch) else {
            panic!("a borrowed field took unescaped text");
        };
        assert!(e.to_string().contains("owned string"), "{e}");
    }
}
