//! A string member of a received header, borrowed from the header rather than copied out.

use core::fmt;
use core::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, Visitor};

use super::BoundedText;
use crate::header_view::{InvalidEscape, RAW_STRING, for_each_piece};

/// A string member as it stands in a received header: its JSON text between the quotes,
/// escapes and all, borrowed from the decoder's header buffer. A session unescapes it once,
/// straight into the field that keeps it ([`unescape_into`](Self::unescape_into)), so that a
/// long member (a path of up to 4 KiB) is never copied through the deserializer's layers on
/// the stack.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct EscapedText<'h>(&'h str);

impl<'de: 'h, 'h> Deserialize<'de> for EscapedText<'h> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RawVisitor<'h>(PhantomData<&'h str>);

        impl<'de: 'h, 'h> Visitor<'de> for RawVisitor<'h> {
            type Value = EscapedText<'h>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                raw: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(EscapedText(raw))
            }
        }

        // The header reader lends the text between the quotes as it stands.
        deserializer.deserialize_newtype_struct(RAW_STRING, RawVisitor(PhantomData))
    }
}

impl From<InvalidEscape> for Unescape {
    fn from(_: InvalidEscape) -> Self {
        Unescape::Invalid
    }
}

/// Why [`EscapedText::unescape_into`] kept nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unescape {
    /// The text is longer than the room given.
    TooLong,
    /// The text holds an escape JSON does not have (the decoder's header check lets none
    /// through; kept for a header that did not pass it).
    Invalid,
}

impl<'h> EscapedText<'h> {
    /// The string member `member` of a lookup by kind, if present.
    pub(crate) fn of(member: &crate::Member<'h>) -> Option<Self> {
        member.checked_text().map(EscapedText)
    }

    /// Writes the unescaped text into `out`, which it clears first; on an error `out` is left
    /// empty.
    pub(crate) fn unescape_into<const N: usize>(
        &self,
        out: &mut heapless::String<N>,
    ) -> Result<(), Unescape> {
        out.clear();
        self.unescape_append(out)
    }

    /// Appends the unescaped text to `out`; on an error `out` is cut back to what it held
    /// before.
    pub(crate) fn unescape_append<const N: usize>(
        &self,
        out: &mut heapless::String<N>,
    ) -> Result<(), Unescape> {
        let before = out.len();
        let kept = self.for_each_piece(|piece| out.push_str(piece).map_err(|_| Unescape::TooLong));
        if kept.is_err() {
            out.truncate(before);
        }
        kept
    }

    /// Writes the unescaped text at the start of `out` and returns its length in bytes (UTF-8);
    /// on an error what `out` holds is unspecified.
    pub(crate) fn unescape_into_bytes(&self, out: &mut [u8]) -> Result<usize, Unescape> {
        let mut len = 0;
        self.for_each_piece(|piece| {
            let room = out
                .get_mut(len..len + piece.len())
                .ok_or(Unescape::TooLong)?;
            room.copy_from_slice(piece.as_bytes());
            len += piece.len();
            Ok(())
        })?;
        Ok(len)
    }

    /// Hands `take` the unescaped text piece by piece: runs without escapes whole, each escape
    /// as its character.
    fn for_each_piece(
        &self,
        take: impl FnMut(&str) -> Result<(), Unescape>,
    ) -> Result<(), Unescape> {
        for_each_piece(self.0, take)
    }

    /// The unescaped text kept in `N` bytes, as a [`BoundedText`] would have read it (an
    /// invalid escape reads as too long: the text is not kept either way).
    pub(crate) fn to_bounded<const N: usize>(self) -> BoundedText<N> {
        let mut text = heapless::String::new();
        let too_long = self.unescape_into(&mut text).is_err();
        BoundedText::from_parts(text, too_long)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Header<'h> {
        #[serde(borrow)]
        name: EscapedText<'h>,
        other: Option<BoundedText<8>>,
    }

    #[test]
    fn text_is_borrowed_and_unescaped_into_the_room_given() {
        let mut scratch = [0u8; 16];
        let json = br#"{"name":"a\"b\\c\n\u0001","other":"x\ty"}"#;
        let h = crate::header_view::read_view::<Header<'_>>(json, &mut scratch).unwrap();
        let mut out = heapless::String::<16>::new();
        h.name.unescape_into(&mut out).unwrap();
        assert_eq!(out, "a\"b\\c\n\u{1}");
        assert_eq!(h.other.unwrap().get(), Some("x\ty"));
        let mut short = heapless::String::<4>::new();
        assert_eq!(h.name.unescape_into(&mut short), Err(Unescape::TooLong));
        assert!(short.is_empty());
        assert_eq!(h.name.to_bounded::<7>().get(), Some("a\"b\\c\n\u{1}"));
        assert!(h.name.to_bounded::<6>().is_too_long());
        let mut bytes = [0u8; 16];
        assert_eq!(h.name.unescape_into_bytes(&mut bytes), Ok(7));
        assert_eq!(&bytes[..7], "a\"b\\c\n\u{1}".as_bytes());
        assert_eq!(
            h.name.unescape_into_bytes(&mut bytes[..6]),
            Err(Unescape::TooLong)
        );
        let h =
            crate::header_view::read_view::<Header<'_>>(br#"{"name":"plain"}"#, &mut []).unwrap();
        assert_eq!(h.name.to_bounded::<5>().get(), Some("plain"));
        let bad = EscapedText(r"a\x");
        assert_eq!(bad.unescape_into(&mut out), Err(Unescape::Invalid));
        assert!(crate::header_view::read_view::<Header<'_>>(br#"{"name":4}"#, &mut []).is_err());
    }
}
