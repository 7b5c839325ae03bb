//! The one loop both header readers spend their time in: the run of a JSON string's bytes that
//! needs no attention, up to its closing quote, an escape or a raw control character.
//!
//! The strict scan ([`json`](crate::json)) and the typed view's reader
//! ([`header_view`](crate::header_view)) both call [`plain_len`].

/// How many bytes at the start of `bytes` are neither a quote, a backslash nor a control
/// character (below U+0020): the length of a string's plain run (all of `bytes` if none is).
#[inline]
pub(crate) fn plain_len(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .unwrap_or(bytes.len())
}
