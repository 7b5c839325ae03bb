//! Comparing a presented token with the server's.

use super::EscapedText;

/// Longest token a server takes, in bytes. A server refuses to start with a longer one, and a
/// longer one presented is a wrong token.
pub const TOKEN_CAP: usize = 512;

/// Whether `presented` equals `expected`, compared in time that does not depend on where they
/// differ (only on their lengths), so that timing does not reveal a token's prefix.
pub fn token_matches(expected: &str, presented: &str) -> bool {
    let (a, b) = (expected.as_bytes(), presented.as_bytes());
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= u64::from(x ^ y);
    }
    core::hint::black_box(diff) == 0
}

/// Whether the token presented in a header (`None`: none, which is the empty token) is
/// `expected`, as [`token_matches`] compares them; a token too long to keep is a wrong one. Out
/// of line, so that only a server with a token makes room for one on the stack.
#[inline(never)]
pub(crate) fn escaped_token_matches(expected: &str, presented: Option<EscapedText<'_>>) -> bool {
    let mut text = heapless::String::<TOKEN_CAP>::new();
    let kept = presented.is_none_or(|presented| presented.unescape_into(&mut text).is_ok());
    kept && token_matches(expected, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_token_matches() {
        assert!(token_matches("s3cret", "s3cret"));
        for wrong in ["", "s3cre", "s3cretx", "S3cret", "s3cre\0"] {
            assert!(!token_matches("s3cret", wrong), "{wrong:?}");
        }
    }
}
