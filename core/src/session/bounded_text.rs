//! A string member of a received header, kept without an allocator.

use core::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A received string member kept in `N` bytes; a longer one is remembered as too long rather
/// than failing the whole header, so that a session can answer it precisely (a too-long token
/// is a wrong token, a too-long path a bad path).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BoundedText<const N: usize> {
    text: heapless::String<N>,
    too_long: bool,
}

impl<const N: usize> BoundedText<N> {
    /// The text, or `None` when it was longer than `N` bytes.
    pub fn get(&self) -> Option<&str> {
        (!self.too_long).then_some(self.text.as_str())
    }

    /// Whether the text was longer than `N` bytes (and so was not kept).
    pub fn is_too_long(&self) -> bool {
        self.too_long
    }

    /// Text already kept, or (`too_long`) none.
    pub(crate) fn from_parts(text: heapless::String<N>, too_long: bool) -> Self {
        BoundedText { text, too_long }
    }

    /// `text`, or a too-long marker when it does not fit.
    pub fn from_text(text: &str) -> Self {
        let mut kept = heapless::String::new();
        let too_long = kept.push_str(text).is_err();
        if too_long {
            kept.clear();
        }
        BoundedText {
            text: kept,
            too_long,
        }
    }
}

impl<'de, const N: usize> Deserialize<'de> for BoundedText<N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor<const N: usize>;

        impl<const N: usize> Visitor<'_> for TextVisitor<N> {
            type Value = BoundedText<N>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(BoundedText::from_text(text))
            }
        }

        deserializer.deserialize_str(TextVisitor::<N>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Header {
        name: BoundedText<4>,
    }

    #[test]
    fn text_that_fits_is_kept_and_longer_text_is_marked() {
        let (h, _) = serde_json_core::from_slice::<Header>(br#"{"name":"abcd"}"#).unwrap();
        assert_eq!(h.name.get(), Some("abcd"));
        let (h, _) = serde_json_core::from_slice::<Header>(br#"{"name":"abcde"}"#).unwrap();
        assert_eq!(h.name.get(), None);
        assert!(h.name.is_too_long());
        let mut scratch = [0u8; 16];
        let (h, _) =
            serde_json_core::from_slice_escaped::<Header>(br#"{"name":"a\"b"}"#, &mut scratch)
                .unwrap();
        assert_eq!(h.name.get(), Some("a\"b"));
        assert!(serde_json_core::from_slice::<Header>(br#"{"name":4}"#).is_err());
    }
}
