//! A certificate's fingerprint: the SHA-256 of its DER encoding, written `SHA256:` and 64 hex
//! digits, the form `openssl x509 -noout -fingerprint -sha256` prints (less its colons).

use std::fmt;
use std::str::FromStr;

/// The SHA-256 of a certificate's DER bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

/// The prefix every written fingerprint starts with.
pub const PREFIX: &str = "SHA256:";

impl Fingerprint {
    /// The fingerprint of the certificate `der`.
    pub fn of(der: &[u8]) -> Fingerprint {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        Fingerprint(bytes)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PREFIX)?;
        for byte in self.0 {
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a text is not a fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadFingerprint(String);

impl fmt::Display for BadFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a certificate fingerprint; write SHA256: and 64 hex digits (colons \
             allowed), as the server prints it at start",
            self.0
        )
    }
}

impl std::error::Error for BadFingerprint {}

impl FromStr for Fingerprint {
    type Err = BadFingerprint;

    /// Reads `SHA256:` (any case; optional) and 64 hex digits, colons between them allowed.
    fn from_str(text: &str) -> Result<Fingerprint, BadFingerprint> {
        let bad = || BadFingerprint(text.to_owned());
        let trimmed = text.trim();
        let hex = match trimmed.get(..PREFIX.len()) {
            Some(head) if head.eq_ignore_ascii_case(PREFIX) => &trimmed[PREFIX.len()..],
            _ => trimmed,
        };
        let mut digits = hex.bytes().filter(|&b| b != b':');
        let mut bytes = [0u8; 32];
        for byte in &mut bytes {
            let high = digits.next().and_then(hex_value).ok_or_else(bad)?;
            let low = digits.next().and_then(hex_value).ok_or_else(bad)?;
            *byte = high << 4 | low;
        }
        if digits.next().is_some() {
            return Err(bad());
        }
        Ok(Fingerprint(bytes))
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_read_back_what_they_write() {
        let fp = Fingerprint::of(b"certificate");
        let text = fp.to_string();
        assert!(
            text.starts_with("SHA256:") && text.len() == 7 + 64,
            "{text}"
        );
        assert_eq!(text.parse::<Fingerprint>(), Ok(fp));
        assert_eq!(text.to_lowercase().parse::<Fingerprint>(), Ok(fp));
        // openssl's form: colons, no prefix.
        let colons: Vec<String> = text.as_bytes()[7..]
            .chunks(2)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        assert_eq!(colons.join(":").parse::<Fingerprint>(), Ok(fp));
        for bad in [
            "",
            "SHA256:",
            "SHA256:abc",
            &format!("{text}00"),
            "SHA256:zz",
        ] {
            assert!(bad.parse::<Fingerprint>().is_err(), "{bad}");
        }
    }
}
