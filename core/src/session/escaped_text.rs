//! A string member of a received header, borrowed from the header rather than copied out.

use serde::Deserialize;
use serde_json_core::str::{EscapedStr, EscapedStringFragment};

use super::BoundedText;

/// A string member as it stands in a received header: its JSON text between the quotes,
/// escapes and all, borrowed from the decoder's header buffer. A session unescapes it once,
/// straight into the field that keeps it ([`unescape_into`](Self::unescape_into)), so that a
/// long member (a path of up to 4 KiB) is never copied through the deserializer's layers on
/// the stack.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(transparent)]
pub(crate) struct EscapedText<'h>(#[serde(borrow)] EscapedStr<'h>);

/// Why [`EscapedText::unescape_into`] kept nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unescape {
    /// The text is longer than the room given.
    TooLong,
    /// The text holds an escape JSON does not have (the decoder's header check lets none
    /// through; kept for a header that did not pass it).
    Invalid,
}

impl EscapedText<'_> {
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
        mut take: impl FnMut(&str) -> Result<(), Unescape>,
    ) -> Result<(), Unescape> {
        self.0.fragments().try_for_each(|fragment| {
            let mut char_buf = [0u8; 4];
            let piece = match fragment.map_err(|_| Unescape::Invalid)? {
                EscapedStringFragment::NotEscaped(text) => text,
                EscapedStringFragment::Escaped(c) => c.encode_utf8(&mut char_buf),
            };
            take(piece)
        })
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
        let (h, _) = serde_json_core::from_slice_escaped::<Header<'_>>(json, &mut scratch).unwrap();
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
        let (h, _) = serde_json_core::from_slice::<Header<'_>>(br#"{"name":"plain"}"#).unwrap();
        assert_eq!(h.name.to_bounded::<5>().get(), Some("plain"));
        let bad = EscapedText(EscapedStr(r"a\x"));
        assert_eq!(bad.unescape_into(&mut out), Err(Unescape::Invalid));
        assert!(serde_json_core::from_slice::<Header<'_>>(br#"{"name":4}"#).is_err());
    }
}
