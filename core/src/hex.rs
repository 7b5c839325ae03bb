//! Hex digits, as the header's `\u` escapes and the digest members spell them.

/// The value of one hex digit, either case; `None` for any other byte. (`| 0x20` lowers a
/// letter's case and leaves no other byte a letter.)
pub(crate) fn digit(b: u8) -> Option<u8> {
    let decimal = b.wrapping_sub(b'0');
    if decimal < 10 {
        return Some(decimal);
    }
    let letter = (b | 0x20).wrapping_sub(b'a');
    if letter < 6 { Some(letter + 10) } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_reads_as_the_hex_digit_it_is_or_as_none() {
        for b in 0..=255u8 {
            let want = (b as char).to_digit(16).map(|d| d as u8);
            assert_eq!(digit(b), want, "{b:#04x}");
        }
    }
}
