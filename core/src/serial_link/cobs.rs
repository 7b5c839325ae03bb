//! Consistent Overhead Byte Stuffing (Cheshire and Baker, 1999): rewrites a frame so that it
//! holds no zero byte, at a cost of one byte in 254 (at least one), so that a zero can end it.
//!
//! The encoded form is a run of blocks, each a code byte `n` (1 to 255) and `n - 1` data bytes;
//! a block whose code is below 255 stands for its data followed by a zero, and the frame's last
//! zero is implied. `11 22 00 33` encodes as `03 11 22 02 33`.

/// The most bytes `len` bytes take once encoded (no delimiter).
pub const fn max_encoded_len(len: usize) -> usize {
    len + len / 254 + 1
}

/// Encodes into a buffer the caller sized with [`max_encoded_len`], a byte at a time.
pub(crate) struct CobsWriter<'o> {
    out: &'o mut [u8],
    /// Where the current block's code byte goes.
    code_at: usize,
    /// The next free position.
    pos: usize,
    /// The current block's code: one more than its data bytes so far.
    code: u8,
}

impl<'o> CobsWriter<'o> {
    /// Starts writing at `out[0]`. `out` must hold [`max_encoded_len`] of what is pushed.
    pub(crate) fn new(out: &'o mut [u8]) -> CobsWriter<'o> {
        CobsWriter {
            out,
            code_at: 0,
            pos: 1,
            code: 1,
        }
    }

    pub(crate) fn push(&mut self, byte: u8) {
        if byte == 0 {
            self.close_block();
            return;
        }
        self.out[self.pos] = byte;
        self.pos += 1;
        self.code += 1;
        if self.code == 0xFF {
            self.close_block();
        }
    }

    pub(crate) fn push_all(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.push(byte);
        }
    }

    fn close_block(&mut self) {
        self.out[self.code_at] = self.code;
        self.code_at = self.pos;
        self.pos += 1;
        self.code = 1;
    }

    /// Closes the last block; the length written.
    pub(crate) fn finish(self) -> usize {
        self.out[self.code_at] = self.code;
        self.pos
    }
}

/// What one encoded byte did to a [`CobsReader`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// A code byte: nothing decoded.
    Code,
    /// A code byte that closed a block with a zero: decoded `0`.
    CodeAfterZero,
    /// A data byte, decoded as itself.
    Data(u8),
}

/// Decodes one frame's non-zero bytes as they arrive (the zeros between frames are the
/// caller's to find).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CobsReader {
    /// Data bytes left in the current block; 0: the next byte is a code byte.
    left: u8,
    /// The current block's code was 255 (no zero follows its data).
    full: bool,
    /// A block has begun since the last reset.
    started: bool,
}

impl CobsReader {
    pub(crate) const fn new() -> CobsReader {
        CobsReader {
            left: 0,
            full: false,
            started: false,
        }
    }

    /// Takes one byte of the encoded frame, which must not be zero.
    pub(crate) fn step(&mut self, byte: u8) -> Step {
        if self.left > 0 {
            self.left -= 1;
            return Step::Data(byte);
        }
        let zero_before = self.started && !self.full;
        self.started = true;
        self.left = byte - 1;
        self.full = byte == 0xFF;
        if zero_before {
            Step::CodeAfterZero
        } else {
            Step::Code
        }
    }

    /// Whether the encoded bytes so far end on a block boundary (a frame may end here).
    pub(crate) fn at_boundary(&self) -> bool {
        self.left == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(data: &[u8]) -> heapless::Vec<u8, 1024> {
        let mut out = [0u8; 1024];
        let mut writer = CobsWriter::new(&mut out);
        writer.push_all(data);
        let n = writer.finish();
        heapless::Vec::from_slice(&out[..n]).unwrap()
    }

    fn decode(encoded: &[u8]) -> Option<heapless::Vec<u8, 1024>> {
        let mut reader = CobsReader::new();
        let mut out = heapless::Vec::new();
        for &byte in encoded {
            match reader.step(byte) {
                Step::Code => {}
                Step::CodeAfterZero => out.push(0).ok()?,
                Step::Data(b) => out.push(b).ok()?,
            }
        }
        reader.at_boundary().then_some(out)
    }

    #[test]
    fn the_papers_and_wikipedias_examples() {
        let cases: [(&[u8], &[u8]); 7] = [
            (&[], &[0x01]),
            (&[0x00], &[0x01, 0x01]),
            (&[0x00, 0x00], &[0x01, 0x01, 0x01]),
            (&[0x00, 0x11, 0x00], &[0x01, 0x02, 0x11, 0x01]),
            (&[0x11, 0x22, 0x00, 0x33], &[0x03, 0x11, 0x22, 0x02, 0x33]),
            (&[0x11, 0x22, 0x33, 0x44], &[0x05, 0x11, 0x22, 0x33, 0x44]),
            (&[0x11, 0x00, 0x00, 0x00], &[0x02, 0x11, 0x01, 0x01, 0x01]),
        ];
        for (data, encoded) in cases {
            assert_eq!(&encode(data)[..], encoded, "{data:02x?}");
            assert_eq!(&decode(encoded).unwrap()[..], data, "{encoded:02x?}");
        }
    }

    #[test]
    fn long_runs_without_zeros_split_into_blocks_of_254() {
        let data: heapless::Vec<u8, 600> = (0..600).map(|i| (i % 255 + 1) as u8).collect();
        for len in [253, 254, 255, 507, 508, 600] {
            let encoded = encode(&data[..len]);
            assert!(encoded.len() <= max_encoded_len(len), "{len}");
            assert!(!encoded.contains(&0));
            assert_eq!(encoded[0], if len >= 254 { 0xFF } else { len as u8 + 1 });
            assert_eq!(&decode(&encoded).unwrap()[..], &data[..len], "{len}");
        }
    }

    #[test]
    fn a_frame_cut_inside_a_block_is_not_at_a_boundary() {
        assert!(decode(&[0x03, 0x11]).is_none());
    }
}
