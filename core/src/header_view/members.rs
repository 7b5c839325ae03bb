//! Members of a checked header looked up by name, without serde.
//!
//! A derived `Deserialize` view is the convenient way to read a header, but each one is its own
//! visitor: on a Cortex-M0 every view a firmware reads costs it one to two KiB of code. A lookup
//! walks the checked header once with code shared by every lookup, and hands back each member's
//! value as it stands; reading a value as a string, an integer or a flag is a call per member.
//! The sessions read every request this way, and so can a firmware that reads a few members.

use core::fmt;

use super::{Found, Problem, Reader, ShapeError};
use crate::HeaderError;

/// One member of a checked header, looked up by name with
/// [`FrameDecoder::members`](crate::FrameDecoder::members): its value as it stands in the
/// header, read as the type asked for.
///
/// Each reader returns `Ok(None)` when the member is absent or `null`, and a [`MemberError`]
/// naming the member when it holds a value of another type.
#[derive(Clone, Copy, Debug)]
pub struct Member<'h> {
    name: &'h str,
    value: Value<'h>,
}

/// What a session reads a member as: a lookup with kinds ([`members_of`]) refuses, naming the
/// member, a value that is not of its kind, so that the session reads each one without an error
/// path of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "protocols"), allow(dead_code))]
pub(crate) enum Kind {
    /// A string, escapes as they stand.
    Text,
    /// `true` or `false`.
    Flag,
    /// An integer from 0 to `u16::MAX`.
    U16,
    /// An integer from 0 to `u32::MAX`.
    U32,
    /// An integer from 0 to `u64::MAX`.
    U64,
    /// An integer within `i64`.
    I64,
    /// An object.
    Object,
}

/// A member's value, as the lookup found it.
#[derive(Clone, Copy, Debug)]
enum Value<'h> {
    Absent,
    Null,
    Bool(bool),
    /// A number literal.
    Number(&'h str),
    /// A string's text between its quotes, escapes as they stand.
    String(&'h str),
    Array,
    /// An object's text, braces included.
    Object(&'h str),
}

impl<'h> Member<'h> {
    /// The name it was looked up by.
    pub fn name(&self) -> &'h str {
        self.name
    }

    /// Whether the header has the member (with any value, `null` included).
    pub fn is_present(&self) -> bool {
        !matches!(self.value, Value::Absent)
    }

    /// The member as a string lent from the header. A string holding an escape that the header
    /// keeps escaped (`\"`, `\\` or a control character) cannot be lent as it stands, and is an
    /// error: read such a member with a typed view into an owned string.
    #[inline(never)]
    pub fn str(&self) -> Result<Option<&'h str>, MemberError<'h>> {
        match self.escaped()? {
            None => Ok(None),
            Some(raw) if !raw.contains('\\') => Ok(Some(raw)),
            Some(_) => Err(self.error(Problem::NeedsOwnedString)),
        }
    }

    /// The member as a string's text between its quotes, escapes as they stand.
    #[inline(never)]
    pub(crate) fn escaped(&self) -> Result<Option<&'h str>, MemberError<'h>> {
        match self.value {
            Value::Absent | Value::Null => Ok(None),
            Value::String(raw) => Ok(Some(raw)),
            _ => Err(self.wrong_type()),
        }
    }

    /// The member as `true` or `false`.
    #[inline(never)]
    pub fn bool(&self) -> Result<Option<bool>, MemberError<'h>> {
        match self.value {
            Value::Absent | Value::Null => Ok(None),
            Value::Bool(flag) => Ok(Some(flag)),
            _ => Err(self.wrong_type()),
        }
    }

    /// The member as a non-negative integer that fits a `T` (`u64`, `u32`, `u16`, ...).
    #[inline(never)]
    pub fn unsigned<T: TryFrom<u64>>(&self) -> Result<Option<T>, MemberError<'h>> {
        match self.integer()? {
            None => Ok(None),
            Some(Ok(n)) => match T::try_from(n) {
                Ok(n) => Ok(Some(n)),
                Err(_) => Err(self.error(Problem::Value(Found::Number))),
            },
            Some(Err(_)) => Err(self.error(Problem::Value(Found::Number))),
        }
    }

    /// The member as an integer that fits a `T` (`i64`, `i32`, ...).
    #[inline(never)]
    pub fn signed<T: TryFrom<i64>>(&self) -> Result<Option<T>, MemberError<'h>> {
        let n = match self.integer()? {
            None => return Ok(None),
            Some(Ok(n)) => i64::try_from(n).ok(),
            Some(Err(n)) => Some(n),
        };
        match n.map(T::try_from) {
            Some(Ok(n)) => Ok(Some(n)),
            _ => Err(self.error(Problem::Value(Found::Number))),
        }
    }

    /// The members `names` of the object this member holds, looked up as
    /// [`FrameDecoder::members`](crate::FrameDecoder::members) looks up the header's.
    #[inline(never)]
    pub fn members<const N: usize>(
        &self,
        names: [&'h str; N],
    ) -> Result<Option<[Member<'h>; N]>, MemberError<'h>> {
        match self.value {
            Value::Absent | Value::Null => Ok(None),
            Value::Object(text) => members(text, names).map(Some),
            _ => Err(self.wrong_type()),
        }
    }

    /// The member's value, which must be present: a missing member is an error naming it.
    #[inline(never)]
    pub fn required<T>(&self, value: Option<T>) -> Result<T, MemberError<'h>> {
        value.ok_or_else(|| match self.value {
            Value::Absent => self.error(Problem::Missing),
            _ => self.wrong_type(),
        })
    }

    /// Whether the member, when present, holds a value of `kind`: an error naming it when not.
    #[inline(never)]
    fn check(&self, kind: Kind) -> Result<(), MemberError<'h>> {
        match (self.value, kind) {
            (Value::Absent | Value::Null, _)
            | (Value::String(_), Kind::Text)
            | (Value::Bool(_), Kind::Flag)
            | (Value::Object(_), Kind::Object) => Ok(()),
            (Value::Number(_), Kind::U16) => self.unsigned::<u16>().map(drop),
            (Value::Number(_), Kind::U32) => self.unsigned::<u32>().map(drop),
            (Value::Number(_), Kind::U64) => self.unsigned::<u64>().map(drop),
            (Value::Number(_), Kind::I64) => self.signed::<i64>().map(drop),
            _ => Err(self.wrong_type()),
        }
    }

    /// A string member of a lookup by kind ([`Kind::Text`]), escapes as they stand.
    #[cfg(feature = "protocols")]
    pub(crate) fn checked_text(&self) -> Option<&'h str> {
        self.escaped().ok().flatten()
    }

    /// A flag member of a lookup by kind ([`Kind::Flag`]).
    #[cfg(feature = "protocols")]
    pub(crate) fn checked_flag(&self) -> Option<bool> {
        self.bool().ok().flatten()
    }

    /// A [`Kind::U16`] member of a lookup by kind.
    #[cfg(feature = "protocols")]
    pub(crate) fn checked_u16(&self) -> Option<u16> {
        self.unsigned().ok().flatten()
    }

    /// A [`Kind::U32`] member of a lookup by kind.
    #[cfg(feature = "protocols")]
    pub(crate) fn checked_u32(&self) -> Option<u32> {
        self.unsigned().ok().flatten()
    }

    /// A [`Kind::U64`] member of a lookup by kind.
    #[cfg(feature = "protocols")]
    pub(crate) fn checked_u64(&self) -> Option<u64> {
        self.unsigned().ok().flatten()
    }

    /// A signed member of a lookup by kind ([`Kind::I64`]).
    #[cfg(feature = "protocols")]
    pub(crate) fn checked_signed(&self) -> Option<i64> {
        self.signed().ok().flatten()
    }

    /// The members `names` of an object member of a lookup by kind ([`Kind::Object`]), looked
    /// up by kind in turn.
    #[cfg(feature = "protocols")]
    pub(crate) fn checked_members<const N: usize>(
        &self,
        names: [(&'h str, Kind); N],
    ) -> Result<Option<[Member<'h>; N]>, MemberError<'h>> {
        match self.value {
            Value::Object(text) => members_of(text, names).map(Some),
            _ => Ok(None),
        }
    }

    /// An integer literal: `Ok(n)` non-negative, `Err(n)` negative.
    #[inline(never)]
    fn integer(&self) -> Result<Option<Result<u64, i64>>, MemberError<'h>> {
        match self.value {
            Value::Absent | Value::Null => Ok(None),
            Value::Number(literal) => {
                let mut reader = Reader::over(literal);
                // A fraction, an exponent or more than 64 bits: not an integer.
                match reader.integer() {
                    Some(n) => Ok(Some(n)),
                    None => Err(self.wrong_type()),
                }
            }
            _ => Err(self.wrong_type()),
        }
    }

    #[inline(never)]
    fn wrong_type(&self) -> MemberError<'h> {
        let found = match self.value {
            Value::Absent | Value::Null => Found::Null,
            Value::Bool(_) => Found::Bool,
            Value::Number(_) => Found::Number,
            Value::String(_) => Found::String,
            Value::Array => Found::Array,
            Value::Object(_) => Found::Object,
        };
        self.error(Problem::Type(found))
    }

    #[inline(never)]
    fn error(&self, problem: Problem) -> MemberError<'h> {
        MemberError {
            name: self.name,
            problem: Some(problem),
        }
    }
}

/// A member looked up that does not hold what it was read as, or is missing or repeated; or a
/// lookup made with no header. Small, to pass back cheaply through a firmware's calls; it
/// converts into a [`HeaderError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberError<'h> {
    name: &'h str,
    /// `None`: no header.
    problem: Option<Problem>,
}

impl<'h> MemberError<'h> {
    /// The lookup's error when there is no header to look in.
    pub(crate) const NO_HEADER: MemberError<'static> = MemberError {
        name: "",
        problem: None,
    };

    /// The member it is about (`None`: the header itself).
    pub fn member(&self) -> Option<&'h str> {
        (!self.name.is_empty()).then_some(self.name)
    }
}

impl fmt::Display for MemberError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problem {
            Some(problem) => problem.describe(f, self.name),
            None => fmt::Display::fmt(&HeaderError::NoHeader, f),
        }
    }
}

impl core::error::Error for MemberError<'_> {}

impl From<MemberError<'_>> for HeaderError {
    fn from(e: MemberError<'_>) -> HeaderError {
        match e.problem {
            Some(problem) => HeaderError::Shape(ShapeError::new(problem, e.name)),
            None => HeaderError::NoHeader,
        }
    }
}

/// Looks up `names` among the members of `text`, an object the strict scan checked (a header,
/// or an object within one).
pub(crate) fn members<'h, const N: usize>(
    text: &'h str,
    names: [&'h str; N],
) -> Result<[Member<'h>; N], MemberError<'h>> {
    let mut found = names.map(|name| Member {
        name,
        value: Value::Absent,
    });
    find(text, &mut found, &[])?;
    Ok(found)
}

/// Looks up the members `names` of `text` as [`members`] does, each of the kind it is paired
/// with: a member present with a value of another kind is an error naming it.
#[cfg(feature = "protocols")]
pub(crate) fn members_of<'h, const N: usize>(
    text: &'h str,
    names: [(&'h str, Kind); N],
) -> Result<[Member<'h>; N], MemberError<'h>> {
    let mut found = names.map(|(name, _)| Member {
        name,
        value: Value::Absent,
    });
    find(text, &mut found, &names.map(|(_, kind)| kind))?;
    Ok(found)
}

/// Fills in the values of `found`'s members from the object `text`, in one walk over it; with
/// `kinds` (one per member, or none), checks each value found against its kind.
#[inline(never)]
fn find<'h>(
    text: &'h str,
    found: &mut [Member<'h>],
    kinds: &[Kind],
) -> Result<(), MemberError<'h>> {
    let mut reader = Reader::over(text);
    if reader.peek() != b'{' {
        return Err(MemberError {
            name: "",
            problem: Some(Problem::Type(Found::Other)),
        });
    }
    reader.bump();
    loop {
        // The text is checked: members are strings, each followed by `:` and a value, with a
        // comma between them and the closing brace after the last.
        match reader.peek() {
            b'"' => {}
            b',' => {
                reader.bump();
                continue;
            }
            _ => return Ok(()),
        }
        let name = reader.raw_string();
        reader.peek();
        reader.bump();
        let Some(index) = found.iter().position(|member| member.name == name) else {
            reader.skip_value();
            continue;
        };
        let member = &mut found[index];
        if member.is_present() {
            return Err(member.error(Problem::Duplicate));
        }
        member.value = match reader.peek() {
            b'"' => Value::String(reader.raw_string()),
            b'{' => {
                let start = reader.at;
                reader.skip_value();
                Value::Object(text.get(start..reader.at).unwrap_or("{}"))
            }
            b'[' => {
                reader.skip_value();
                Value::Array
            }
            b't' | b'f' | b'n' => {
                let first = reader.peek();
                reader.skip_value();
                match first {
                    b't' => Value::Bool(true),
                    b'f' => Value::Bool(false),
                    _ => Value::Null,
                }
            }
            _ => Value::Number(reader.number()),
        };
        if let Some(&kind) = kinds.get(index) {
            member.check(kind)?;
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::string::ToString;

    const HEADER: &str = r#"{"op":"put","skip":{"a":[1,{"b":"}"}]},"path":"a\"b","offset":7,
        "neg":-3,"big":18446744073709551615,"x":1.5,"flag":true,"none":null,
        "pty":{"term":"xterm","rows":24,"cols":80}}"#;

    #[test]
    fn a_lookup_finds_members_in_any_order_and_steps_over_the_rest() {
        let [offset, op, missing, flag, none] =
            members(HEADER, ["offset", "op", "missing", "flag", "none"]).unwrap();
        assert_eq!(offset.unsigned::<u64>().unwrap(), Some(7));
        assert_eq!(op.str().unwrap(), Some("put"));
        assert!(!missing.is_present());
        assert_eq!(missing.str().unwrap(), None);
        assert_eq!(flag.bool().unwrap(), Some(true));
        assert!(none.is_present());
        assert_eq!(none.unsigned::<u32>().unwrap(), None);
    }

    #[test]
    fn escaped_strings_are_lent_as_they_stand_only_to_the_sessions() {
        let [path] = members(HEADER, ["path"]).unwrap();
        assert_eq!(path.escaped().unwrap(), Some(r#"a\"b"#));
        let e = path.str().unwrap_err().to_string();
        assert!(e.contains("`path` holds escapes"), "{e}");
    }

    #[test]
    fn integers_are_read_within_their_type() {
        let [neg, big, x, offset] = members(HEADER, ["neg", "big", "x", "offset"]).unwrap();
        assert_eq!(neg.signed::<i64>().unwrap(), Some(-3));
        assert_eq!(big.unsigned::<u64>().unwrap(), Some(u64::MAX));
        assert_eq!(offset.signed::<i8>().unwrap(), Some(7));
        let e = neg.unsigned::<u64>().unwrap_err().to_string();
        assert!(
            e.contains("`neg` is a number the view does not take"),
            "{e}"
        );
        assert!(big.signed::<i64>().is_err());
        assert!(big.unsigned::<u32>().is_err());
        let e = x.unsigned::<u64>().unwrap_err().to_string();
        assert!(e.contains("`x` has the wrong type (a number)"), "{e}");
    }

    #[test]
    fn a_value_of_another_type_names_its_member() {
        let [op, pty] = members(HEADER, ["op", "pty"]).unwrap();
        let e = op.bool().unwrap_err().to_string();
        assert!(e.contains("`op` has the wrong type (a string)"), "{e}");
        let e = pty.str().unwrap_err().to_string();
        assert!(e.contains("`pty` has the wrong type (an object)"), "{e}");
    }

    #[test]
    fn nested_objects_are_looked_up_in_turn() {
        let [pty, op] = members(HEADER, ["pty", "op"]).unwrap();
        let [term, rows, cols] = pty.members(["term", "rows", "cols"]).unwrap().unwrap();
        assert_eq!(term.str().unwrap(), Some("xterm"));
        assert_eq!(rows.unsigned::<u16>().unwrap(), Some(24));
        assert_eq!(cols.unsigned::<u16>().unwrap(), Some(80));
        assert!(op.members(["a"]).is_err());
    }

    #[test]
    #[cfg(feature = "protocols")]
    fn a_lookup_by_kind_refuses_a_member_of_another_kind_by_name() {
        let [op, offset, flag, none, missing, pty] = members_of(
            HEADER,
            [
                ("op", Kind::Text),
                ("offset", Kind::U16),
                ("flag", Kind::Flag),
                ("none", Kind::U64),
                ("missing", Kind::I64),
                ("pty", Kind::Object),
            ],
        )
        .unwrap();
        assert_eq!(op.checked_text(), Some("put"));
        assert_eq!(offset.checked_u16(), Some(7));
        assert_eq!(flag.checked_flag(), Some(true));
        assert_eq!(none.checked_u64(), None);
        assert_eq!(missing.checked_signed(), None);
        let [rows] = pty.checked_members([("rows", Kind::U16)]).unwrap().unwrap();
        assert_eq!(rows.checked_u16(), Some(24));
        for (name, kind, expected) in [
            ("op", Kind::Flag, "`op` has the wrong type (a string)"),
            ("neg", Kind::U64, "`neg` is a number the view does not take"),
            ("big", Kind::U32, "`big` is a number the view does not take"),
            ("big", Kind::I64, "`big` is a number the view does not take"),
            ("x", Kind::I64, "`x` has the wrong type (a number)"),
            ("pty", Kind::Text, "`pty` has the wrong type (an object)"),
            (
                "flag",
                Kind::Object,
                "`flag` has the wrong type (a boolean)",
            ),
        ] {
            let e = members_of(HEADER, [(name, kind)]).unwrap_err().to_string();
            assert!(e.contains(expected), "{name} as {kind:?}: {e}");
        }
    }

    #[test]
    fn a_missing_required_member_and_a_repeated_one_are_named() {
        let [missing] = members(HEADER, ["missing"]).unwrap();
        let e = missing.required(missing.str().unwrap()).unwrap_err();
        assert_eq!(e.to_string(), "the header has no `missing` member");
        assert_eq!(e.member(), Some("missing"));
        assert_eq!(
            HeaderError::from(e).to_string(),
            "header does not match the expected fields: the header has no `missing` member"
        );
        let [none] = members(HEADER, ["none"]).unwrap();
        assert!(none.required(none.str().unwrap()).is_err());
        let e = members(r#"{"a":1,"b":2,"a":3}"#, ["a"]).unwrap_err();
        assert!(e.to_string().contains("repeats `a`"), "{e}");
        // A repeat of a member nobody asked for is not this lookup's concern.
        assert!(members(r#"{"a":1,"b":2,"b":3}"#, ["a"]).is_ok());
    }
}
