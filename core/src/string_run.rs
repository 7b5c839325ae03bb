//! The one loop both header readers spend their time in: the run of a JSON string's bytes that
//! needs no attention, up to its closing quote, an escape or a raw control character.
//!
//! The strict scan ([`json`](crate::json)) calls [`plain_len`], the typed view's reader
//! ([`header_view`](crate::header_view)) [`plain_step`]. With the `fast-scan` feature
//! it looks at eight bytes at a time (a few more instructions of code, several times faster on
//! long strings); without it, one byte at a time, the smallest code.

/// How many bytes at the start of `bytes` are neither a quote, a backslash nor a control
/// character (below U+0020): the length of a string's plain run (all of `bytes` if none is).
#[cfg(not(feature = "fast-scan"))]
#[inline]
pub(crate) fn plain_len(bytes: &[u8]) -> usize {
    bytewise(bytes, false)
}

/// How many bytes at the start of `bytes` are neither a quote, a backslash, a control
/// character (below U+0020) nor a byte above 0x7F: the length of a string's plain ASCII run
/// (all of `bytes` if none is). The scan checks UTF-8 where it meets a non-ASCII byte instead
/// of checking the whole header first.
///
/// Eight bytes at a time, as one `u64` (SWAR): a byte equal to `c` is a zero byte of
/// `word ^ splat(c)`, and a byte `x` has its flag (the top bit) set in
/// `(x - splat(n)) & !x & splat(0x80)` when `x < n` (for `n = 1`: when it is zero). A borrow
/// only runs upwards from a flagged byte, so the lowest flag is always a true one, and on a
/// little-endian reading of the bytes the lowest flag is the first byte.
#[cfg(feature = "fast-scan")]
#[inline]
pub(crate) fn plain_len(bytes: &[u8]) -> usize {
    const fn splat(b: u8) -> u64 {
        0x0101_0101_0101_0101 * b as u64
    }
    let below = |x: u64, n: u8| x.wrapping_sub(splat(n)) & !x;
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(word);
        let x = u64::from_le_bytes(eight);
        let flags = (below(x ^ splat(b'"'), 1) | below(x ^ splat(b'\\'), 1) | below(x, 0x20) | x)
            & splat(0x80);
        if flags != 0 {
            return at + (flags.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + bytewise(words.remainder(), true)
}

/// How far to step from a string byte that is neither a quote nor a backslash (the start of
/// `bytes`) to the next that may be one: past the whole plain run with `fast-scan`, else past
/// the one byte (the smallest code: the typed view's reader reads checked text, where a byte
/// loop needs no other test).
#[cfg(feature = "fast-scan")]
#[inline]
pub(crate) fn plain_step(bytes: &[u8]) -> usize {
    plain_len(bytes).max(1)
}

/// How far to step from a string byte that is neither a quote nor a backslash (the start of
/// `bytes`) to the next that may be one: past the whole plain run with `fast-scan`, else past
/// the one byte (the smallest code: the typed view's reader reads checked text, where a byte
/// loop needs no other test).
#[cfg(not(feature = "fast-scan"))]
#[inline]
pub(crate) fn plain_step(_: &[u8]) -> usize {
    1
}

/// [`plain_len`] one byte at a time, stopping at bytes above 0x7F too if `non_ascii`.
#[inline]
fn bytewise(bytes: &[u8], non_ascii: bool) -> usize {
    bytes
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20 || (non_ascii && b > 0x7f))
        .unwrap_or(bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: bool = cfg!(feature = "fast-scan");

    #[test]
    fn non_ascii_bytes_end_a_run_with_fast_scan_only() {
        let bytes = "abcdefghijé\"".as_bytes();
        assert_eq!(plain_len(bytes), if FAST { 10 } else { 12 });
    }

    #[test]
    fn stops_at_the_first_quote_backslash_or_control() {
        let table: [(&[u8], usize); 12] = [
            (b"", 0),
            (b"abc", 3),
            (b"\"", 0),
            (b"abcdefghijklmnop", 16),
            (b"abcdefg\"", 7),
            (b"abcdefgh\\", 8),
            (b"abcdefghijk\x1f\"", 11),
            (b"abc\x00def", 3),
            (b"\x7f~!#$%&\x21 ~!#$%&", 15),
            // A borrow out of a flagged byte marks no earlier byte.
            (b"ab\"\x01\x00\"\\\\", 2),
            (b"\x21\x21\x21\x21\x21\x21\x21\x20\x1f", 8),
            (
                b"\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x5c",
                15,
            ),
        ];
        for (bytes, want) in table {
            assert_eq!(plain_len(bytes), want, "{bytes:?}");
            assert_eq!(bytewise(bytes, FAST), want, "{bytes:?}");
        }
    }

    #[test]
    fn every_byte_at_every_place_agrees_with_the_bytewise_loop() {
        for b in 0..=255u8 {
            for place in 0..20 {
                let mut bytes = [b'a'; 24];
                bytes[place] = b;
                for start in 0..4 {
                    assert_eq!(
                        plain_len(&bytes[start..]),
                        bytewise(&bytes[start..], FAST),
                        "{b:#x} at {place} from {start}"
                    );
                }
            }
        }
    }
}
