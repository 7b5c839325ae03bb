//! A system error as a user reads it.

use std::fmt;
use std::io;

/// An I/O error shown in the system's own words (`No such file or directory`), without the
/// `(os error 2)` that std's `Display` adds for programmers, also where an error's text
/// wraps another's.
#[derive(Clone, Copy, Debug)]
pub struct SystemError<'e>(pub &'e io::Error);

impl fmt::Display for SystemError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.to_string();
        let mut rest = text.as_str();
        while let Some(at) = rest.find(" (os error ") {
            let (before, tail) = rest.split_at(at);
            let tail = &tail[" (os error ".len()..];
            let digits = tail.len()
                - tail
                    .trim_start_matches(|c: char| c == '-' || c.is_ascii_digit())
                    .len();
            f.write_str(before)?;
            match tail[digits..].strip_prefix(')') {
                Some(after) if digits > 0 => rest = after,
                // Not the suffix after all: keep it.
                _ => {
                    f.write_str(" (os error ")?;
                    rest = tail;
                }
            }
        }
        f.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_os_error_number_is_left_out() {
        let table = [
            (io::Error::from(io::ErrorKind::NotFound), "entity not found"),
            (io::Error::other("plain words"), "plain words"),
            (io::Error::other("x (os error y)"), "x (os error y)"),
            (io::Error::other("x (os error 12"), "x (os error 12"),
        ];
        for (e, text) in table {
            assert_eq!(SystemError(&e).to_string(), text);
        }
        let os = io::Error::from_raw_os_error(2);
        let shown = SystemError(&os).to_string();
        assert!(!shown.contains("os error") && !shown.is_empty(), "{shown}");
        let wrapped = io::Error::other(format!("a.txt: {os}; and {os}"));
        assert_eq!(
            SystemError(&wrapped).to_string(),
            format!("a.txt: {shown}; and {shown}")
        );
    }
}
