//! Lines of text to standard output, without `core::fmt` (about 12 KB of formatting code here).

use crate::linux;

/// One line of output, built in a fixed buffer and written with a single `write` call. Text that
/// does not fit is cut off.
pub struct Line {
    buf: [u8; 160],
    len: usize,
}

impl Line {
    /// An empty line.
    pub const fn new() -> Line {
        Line {
            buf: [0; 160],
            len: 0,
        }
    }

    /// Appends `s`, or as much of it as fits.
    pub fn text(&mut self, s: &str) -> &mut Line {
        self.bytes(s.as_bytes())
    }

    /// Appends `n` in decimal.
    pub fn num(&mut self, mut n: u64) -> &mut Line {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.bytes(&digits[i..])
    }

    fn bytes(&mut self, bytes: &[u8]) -> &mut Line {
        let room = &mut self.buf[self.len..];
        let n = bytes.len().min(room.len());
        room[..n].copy_from_slice(&bytes[..n]);
        self.len += n;
        self
    }

    /// Writes the line and a newline to standard output, and empties it.
    pub fn print(&mut self) {
        if self.len == self.buf.len() {
            self.len -= 1;
        }
        self.buf[self.len] = b'\n';
        linux::write_all(linux::STDOUT, &self.buf[..=self.len]);
        self.len = 0;
    }
}
