//! Text a peer chose, shown safely: in a refusal's message, a log line or a terminal.

use core::fmt::{self, Write};

/// Text from a peer (a path, an op, a server's message), displayed so that it cannot drive a
/// terminal or a log reader, and otherwise as it was typed: control characters (C0, DEL and
/// C1, U+0085 among them), the line and paragraph separators (U+2028, U+2029) and
/// bidirectional-formatting characters are written as the escapes a shell's `$'...'` quoting
/// reads (`\n`, `\t`, `\r`, `\x1b`, `\u2028`), so a user can type the name back; every
/// other character, a backslash included, is written as it is.
///
/// The escapes are for safety, not a round trip: a name that holds the text `\x1b` reads
/// the same as one that holds ESC. Text already in an escaped form of its own (a name that is
/// not UTF-8, as `\xNN` with doubled backslashes) passes unchanged, escapes and all.
#[derive(Clone, Copy, Debug)]
pub struct PeerText<'t> {
    text: &'t str,
}

impl<'t> PeerText<'t> {
    /// `text`, escaped where it is unprintable.
    pub const fn new(text: &'t str) -> Self {
        PeerText { text }
    }
}

impl fmt::Display for PeerText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.text.chars() {
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if !needs_escape(c) => f.write_char(c)?,
                c if c.is_ascii() => write!(f, "\\x{:02x}", c as u32)?,
                c if (c as u32) <= 0xffff => write!(f, "\\u{:04x}", c as u32)?,
                c => write!(f, "\\U{:08x}", c as u32)?,
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
    fn unprintable_characters_are_escaped_as_a_shell_reads_them_and_nothing_else() {
        let table = [
            ("plain 新.txt", "plain 新.txt"),
            ("bad\\name", "bad\\name"),
            ("ctl\u{1}name", "ctl\\x01name"),
            ("a\u{1b}[2J", "a\\x1b[2J"),
            ("tab\tline\nret\r", "tab\\tline\\nret\\r"),
            ("del\u{7f}", "del\\x7f"),
            ("nel\u{85}", "nel\\u0085"),
            ("\u{2028}\u{2029}", "\\u2028\\u2029"),
            ("\u{202e}txt.exe", "\\u202etxt.exe"),
            ("\u{2066}iso\u{61c}", "\\u2066iso\\u061c"),
            // A name that is not UTF-8, in its escaped form, stays as it is.
            ("x\\xff\\\\y", "x\\xff\\\\y"),
        ];
        for (text, shown) in table {
            assert_eq!(format!("{}", PeerText::new(text)), shown, "{text:?}");
        }
    }
}
