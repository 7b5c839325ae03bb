//! A server's token: whether it is strong enough for a listener beyond loopback, and making one
//! that is.
//!
//! On loopback any non-empty token will do (only this machine's users can guess). Beyond it a
//! token must be at least [`MIN_TOKEN_CHARS`] characters and not one of the patterns people type
//! when asked for a secret: few distinct characters, a short piece repeated, or a run such as
//! `abcdef...` or `123456...`. These checks catch mistakes, not every weak secret: a token is
//! best made by [`generate_token`] (`unstick token`) or `openssl rand -hex 32`.

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};

/// Fewest characters of a token beyond loopback.
pub const MIN_TOKEN_CHARS: usize = 16;

/// Fewest distinct characters of a token beyond loopback (a random hexadecimal token of 16
/// characters has fewer about once in 10^8).
pub const MIN_DISTINCT_CHARS: usize = 5;

/// Random bytes in a generated token (written as twice as many hexadecimal digits).
pub const GENERATED_TOKEN_BYTES: usize = 32;

/// The command that makes a strong token, for messages.
pub const HOW_TO_MAKE_A_TOKEN: &str = "make one with `unstick token` (or `openssl rand -hex 32`) and pass it with --token or UNSTICK_TOKEN";

/// Why a token is too easy to guess for a listener beyond loopback.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenWeakness {
    /// Fewer than [`MIN_TOKEN_CHARS`] characters.
    TooShort {
        /// Its length in characters.
        chars: usize,
    },
    /// Fewer than [`MIN_DISTINCT_CHARS`] distinct characters.
    FewDistinct {
        /// How many distinct characters it has.
        distinct: usize,
    },
    /// A piece of at most half its length, repeated.
    Repeated {
        /// The length of the repeated piece, in characters.
        piece: usize,
    },
    /// Mostly characters that follow each other (`abcd`, `4321`, `aabb`).
    Run,
}

impl fmt::Display for TokenWeakness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenWeakness::TooShort { chars } => write!(
                f,
                "it is {chars} characters long, fewer than {MIN_TOKEN_CHARS}"
            ),
            TokenWeakness::FewDistinct { distinct } => write!(
                f,
                "it has only {distinct} distinct characters (at least {MIN_DISTINCT_CHARS} needed)"
            ),
            TokenWeakness::Repeated { piece } => {
                write!(f, "it is a piece of {piece} characters repeated")
            }
            TokenWeakness::Run => {
                f.write_str("it is mostly a run of neighbouring characters, such as abcd or 1234")
            }
        }
    }
}

/// Why `token` is too easy to guess for a listener beyond loopback; `None` when it is not.
pub fn token_weakness(token: &str) -> Option<TokenWeakness> {
    let chars: Vec<char> = token.chars().collect();
    if chars.len() < MIN_TOKEN_CHARS {
        return Some(TokenWeakness::TooShort { chars: chars.len() });
    }
    let mut distinct = chars.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < MIN_DISTINCT_CHARS {
        return Some(TokenWeakness::FewDistinct {
            distinct: distinct.len(),
        });
    }
    if let Some(piece) =
        (1..=chars.len() / 2).find(|&p| (p..chars.len()).all(|i| chars[i] == chars[i - p]))
    {
        return Some(TokenWeakness::Repeated { piece });
    }
    // Steps of -1, 0 or +1 between neighbours: in a random token about one in five at most.
    let steps = chars.len() - 1;
    let small = chars
        .windows(2)
        .filter(|pair| (i64::from(u32::from(pair[1])) - i64::from(u32::from(pair[0]))).abs() <= 1)
        .count();
    if small * 4 >= steps * 3 {
        return Some(TokenWeakness::Run);
    }
    None
}

/// The operating system's random number generator failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoRandomness;

impl fmt::Display for NoRandomness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the operating system's random number generator failed; make a token with \
             `openssl rand -hex 32` instead",
        )
    }
}

impl std::error::Error for NoRandomness {}

/// A new token: [`GENERATED_TOKEN_BYTES`] bytes from the operating system's random number
/// generator, in lowercase hexadecimal.
pub fn generate_token() -> Result<String, NoRandomness> {
    let mut bytes = [0u8; GENERATED_TOKEN_BYTES];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| NoRandomness)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guessable_tokens_are_refused_with_the_reason() {
        let table: [(&str, TokenWeakness); 9] = [
            ("a", TokenWeakness::TooShort { chars: 1 }),
            ("s3cret", TokenWeakness::TooShort { chars: 6 }),
            // Characters, not bytes.
            ("新新新新新新新新", TokenWeakness::TooShort { chars: 8 }),
            (
                "aaaaaaaaaaaaaaaaaaaaaaaa",
                TokenWeakness::FewDistinct { distinct: 1 },
            ),
            (
                "abababababababbbaaab",
                TokenWeakness::FewDistinct { distinct: 2 },
            ),
            ("secretsecretsecret", TokenWeakness::Repeated { piece: 6 }),
            ("abcdeabcdeabcdeabc", TokenWeakness::Repeated { piece: 5 }),
            ("abcdefghijklmnopqrstuvwxyz", TokenWeakness::Run),
            ("0123456789012345", TokenWeakness::Run),
        ];
        for (token, weakness) in table {
            assert_eq!(token_weakness(token), Some(weakness), "{token}");
        }
        assert_eq!(token_weakness("9876543210zyxwvu"), Some(TokenWeakness::Run));
    }

    #[test]
    fn random_looking_tokens_pass() {
        for token in [
            "f3a9c2e07b1d4c58",
            "correct horse battery staple",
            "Tr0ub4dor&3-tr0ub4dor",
            "новый-секретный-ключ",
        ] {
            assert_eq!(token_weakness(token), None, "{token}");
        }
    }

    #[test]
    fn generated_tokens_are_strong_and_differ() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert_eq!(a.len(), 2 * GENERATED_TOKEN_BYTES);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
        assert_eq!(token_weakness(&a), None);
    }

    #[test]
    fn messages_say_what_is_wrong() {
        let message = TokenWeakness::TooShort { chars: 1 }.to_string();
        assert!(message.contains("fewer than 16"), "{message}");
        assert!(HOW_TO_MAKE_A_TOKEN.contains("unstick token"));
    }
}
