//! Text a peer chose, shown safely: in a refusal's message, a log line or a terminal.

use core::fmt::{self, Write};

/// Text from a peer (a path, an op, a server's message), displayed so that it cannot drive a
/// terminal or a log reader: control characters (C0, DEL and C1, U+0085 among them), the line
/// and paragraph separators (U+2028, U+2029) and bidirectional-formatting characters are
/// written as escapes (`\u{1b}`, `\n`, `\u{2028}`), and backslashes doubled so that an
/// escape in the text itself cannot pass for one of ours.
#[derive(Clone, Copy, Debug)]
pub struct PeerText<'t> {
    text: &'t str,
    double_backslashes: bool,
}

impl<'t> PeerText<'t> {
    /// `text`, escaped.
    pub const fn new(text: &'t str) -> Self {
        PeerText {
            text,
            double_backslashes: true,
        }
    }

    /// `text` that is already in an escaped form of its own (a non-UTF-8 name with `\xNN`
    /// and doubled backslashes): its backslashes stay as they are.
    pub const fn keeping_backslashes(text: &'t str) -> Self {
        PeerText {
            text,
            double_backslashes: false,
        }
    }
}

impl fmt::Display for PeerText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.text.chars() {
            if needs_escape(c) {
                write!(f, "{}", c.escape_default())?;
            } else if c == '\\' && self.double_backslashes {
                f.write_str("\\\\")?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// Whether `c` is written as an escape: it could end a line for a log reader, move a
/// terminal's cursor or colours, or reorder the text around it.
fn needs_escape(c: char) -> bool {
    let separator = matches!(c, '\u{2028}' | '\u{2029}');
    let bidi = matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    );
    c.is_control() || separator || bidi
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::format;

    #[test]
    fn control_bidi_and_backslashes_are_escaped() {
        let text = "a\\b\u{1b}[2J\u{202e}txt.exe 新\n\u{85}\u{2028}\u{2029}\u{7f}";
        assert_eq!(
            format!("{}", PeerText::new(text)),
            "a\\\\b\\u{1b}[2J\\u{202e}txt.exe 新\\n\\u{85}\\u{2028}\\u{2029}\\u{7f}"
        );
        assert_eq!(
            format!("{}", PeerText::keeping_backslashes("x\\xff")),
            "x\\xff"
        );
    }
}
