//! A refused request: what both protocols' sessions answer and log.

use core::fmt::{self, Write};

use crate::ErrorCode;

/// Longest refusal message kept, in bytes; a longer one is cut at a character boundary and
/// ends with `...`.
pub const MESSAGE_CAP: usize = 480;

/// A refused request: its code, a sentence for the user, and whether the connection closes
/// after it (when the stream can no longer be trusted to be in step, or the peer may not go
/// on). Sessions send it as an error frame and keep it for the host to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Why, as the wire and the logs name it.
    pub code: ErrorCode,
    /// A sentence for the user.
    pub message: heapless::String<MESSAGE_CAP>,
    /// Whether the connection closes after the refusal.
    pub closes: bool,
}

impl Refusal {
    /// A refusal that leaves the connection open, with a message written by `message`'s
    /// `Display` (so a caller can pass `format_args!`).
    pub fn new(code: ErrorCode, message: impl fmt::Display) -> Refusal {
        let mut refusal = Refusal {
            code,
            message: heapless::String::new(),
            closes: false,
        };
        let _ = refusal.set(code, message);
        refusal
    }

    /// Rewrites this refusal in place as [`Refusal::new`] would build it. A session keeps one
    /// refusal and writes each into it, so that no half-KiB value is built on a stack and
    /// copied (a microcontroller's stack would pay for each one a function holds).
    pub(crate) fn set(&mut self, code: ErrorCode, message: impl fmt::Display) -> Refused {
        self.code = code;
        self.closes = false;
        self.message.clear();
        let _ = write!(Truncating(&mut self.message), "{message}");
        Refused(())
    }

    /// Puts `refusal` (a host's) in place of this one.
    pub(crate) fn hold(&mut self, refusal: Refusal) -> Refused {
        *self = refusal;
        Refused(())
    }

    /// Like [`Refusal::set`], closing the connection.
    pub(crate) fn set_closing(&mut self, code: ErrorCode, message: impl fmt::Display) -> Refused {
        let refused = self.set(code, message);
        self.closes = true;
        refused
    }

    /// The same refusal, closing the connection.
    pub fn closing(mut self) -> Refusal {
        self.closes = true;
        self
    }

    /// The same refusal, closing the connection when `closes` says so.
    pub fn closing_if(mut self, closes: bool) -> Refusal {
        self.closes |= closes;
        self
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// Proof that a session's refusal was written into its one [`Refusal`] ([`Refusal::set`]):
/// what the session's checks return instead of a refusal by value.
#[derive(Debug)]
#[must_use = "a refusal written is to be sent"]
pub(crate) struct Refused(());

impl Refused {
    /// For a refusal written earlier and kept in the session's slot since (a request refused
    /// at its head, answered once its frame has ended).
    pub(crate) const HELD: Refused = Refused(());
}

/// Writes as much as fits, then marks the cut with `...`.
struct Truncating<'m>(&'m mut heapless::String<MESSAGE_CAP>);

impl Write for Truncating<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        const MARK: &str = "...";
        if self.0.len() + s.len() <= MESSAGE_CAP {
            let _ = self.0.push_str(s);
            return Ok(());
        }
        let room = MESSAGE_CAP.saturating_sub(self.0.len() + MARK.len());
        let mut cut = room.min(s.len());
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        let _ = self.0.push_str(&s[..cut]);
        let _ = self.0.push_str(MARK);
        Err(fmt::Error)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        let short = Refusal::new(ErrorCode::Busy, format_args!("retry in {} s", 1));
        assert_eq!(short.message.as_str(), "retry in 1 s");
        assert!(!short.closes);
        assert!(short.clone().closing().closes);
        let long = Refusal::new(ErrorCode::BadPath, "新".repeat(200).as_str());
        assert!(long.message.len() <= MESSAGE_CAP);
        assert!(long.message.ends_with("新..."));
    }
}
