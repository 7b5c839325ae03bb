//! One link frame: its header, how it is written ([`encode_frame`]) and how a receiver finds it
//! again in a byte stream ([`LinkFrameReader`]).

use core::fmt;

use super::cobs::{self, CobsReader, CobsWriter, Step};
use super::crc32::Crc32;

/// Most payload bytes in one link frame.
pub const MTU: usize = 1024;

/// Bytes of a link frame's header: flags, then sequence number.
pub const HEADER_LEN: usize = 2;

/// Bytes of the CRC-32 that ends a link frame (little-endian).
pub const CRC_LEN: usize = 4;

/// The longest link frame before COBS: header, [`MTU`] payload bytes, CRC. A
/// [`LinkFrameReader`] of this capacity takes every frame a sender of this crate writes.
pub const MAX_FRAME: usize = HEADER_LEN + MTU + CRC_LEN;

/// The most bytes [`encode_frame`] writes for a payload of `payload_len` bytes: the COBS form of
/// header, payload and CRC, with a zero before and after it.
pub const fn max_encoded_len(payload_len: usize) -> usize {
    cobs::max_encoded_len(HEADER_LEN + payload_len + CRC_LEN) + 2
}

/// The most bytes one link frame takes on the line.
pub const MAX_ENCODED: usize = max_encoded_len(MTU);

const FLAG_START: u8 = 0x01;
const FLAG_NOTICE: u8 = 0x02;
const KNOWN_FLAGS: u8 = FLAG_START | FLAG_NOTICE;

/// A link frame's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The frame begins a request (from a client) or the reply to one (from a device): the
    /// receiver drops what it held of an earlier one (flag bit 0).
    pub start: bool,
    /// The payload is a [`Notice`](super::Notice) about the link, not protocol bytes (flag
    /// bit 1).
    pub notice: bool,
    /// The frame's number, one more than the last frame's from the same sender (wrapping).
    pub seq: u8,
}

impl Header {
    /// The flags byte.
    pub const fn flags(&self) -> u8 {
        (if self.start { FLAG_START } else { 0 }) | (if self.notice { FLAG_NOTICE } else { 0 })
    }
}

/// Why [`encode_frame`] wrote nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkEncodeError {
    /// The payload is longer than [`MTU`]: send it in several frames.
    PayloadTooLong {
        /// Its length.
        len: usize,
    },
    /// The output buffer is too short: give it [`max_encoded_len`] of the payload's length.
    OutputTooSmall {
        /// Bytes the frame may need.
        needed: usize,
        /// Bytes the buffer has.
        available: usize,
    },
}

impl fmt::Display for LinkEncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkEncodeError::PayloadTooLong { len } => write!(
                f,
                "a link frame carries at most {MTU} payload bytes, not {len}: split the payload"
            ),
            LinkEncodeError::OutputTooSmall { needed, available } => write!(
                f,
                "a link frame may take {needed} bytes and the output buffer has {available}: \
                 size it with max_encoded_len"
            ),
        }
    }
}

impl core::error::Error for LinkEncodeError {}

/// Writes the link frame of `header` and `payload` into `out`: a zero, the COBS form of header,
/// payload and CRC-32, and a zero. Returns the length written.
pub fn encode_frame(
    header: Header,
    payload: &[u8],
    out: &mut [u8],
) -> Result<usize, LinkEncodeError> {
    if payload.len() > MTU {
        return Err(LinkEncodeError::PayloadTooLong { len: payload.len() });
    }
    let needed = max_encoded_len(payload.len());
    if out.len() < needed {
        return Err(LinkEncodeError::OutputTooSmall {
            needed,
            available: out.len(),
        });
    }
    let head = [header.flags(), header.seq];
    let mut crc = Crc32::new();
    crc.update(&head);
    crc.update(payload);
    out[0] = 0;
    let mut writer = CobsWriter::new(&mut out[1..]);
    writer.push_all(&head);
    writer.push_all(payload);
    writer.push_all(&crc.value().to_le_bytes());
    let end = 1 + writer.finish();
    out[end] = 0;
    Ok(end + 1)
}

/// A link frame found whole, its CRC checked.
#[derive(Debug, PartialEq, Eq)]
pub struct LinkFrame<'a> {
    /// Its header.
    pub header: Header,
    /// Its payload (in the reader's buffer, until the reader is fed again).
    pub payload: &'a [u8],
}

/// Why the bytes between two zeros were dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Longer than the reader's capacity: garbage, or a sender with a larger MTU.
    TooLong {
        /// The reader's capacity, in decoded bytes.
        capacity: usize,
    },
    /// The bytes ended inside a COBS block: a zero came where none can (noise, or a torn frame).
    Torn,
    /// Too short to hold a header and a CRC.
    TooShort {
        /// Decoded length.
        len: usize,
    },
    /// The CRC does not match the bytes: some were flipped or lost.
    BadCrc {
        /// The CRC of the bytes received.
        computed: u32,
        /// The CRC the frame carried.
        carried: u32,
    },
    /// The CRC matched but the flags have bits this version does not know (a newer sender).
    UnknownFlags {
        /// The flags byte.
        flags: u8,
    },
}

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dropped::TooLong { capacity } => {
                write!(f, "no zero after {capacity} bytes: not a link frame")
            }
            Dropped::Torn => f.write_str("a link frame broke off inside a COBS block"),
            Dropped::TooShort { len } => write!(
                f,
                "{len} bytes between zeros: too short for a link frame's header and CRC"
            ),
            Dropped::BadCrc { computed, carried } => write!(
                f,
                "a link frame's CRC-32 is {carried:08x}, its bytes give {computed:08x}: damaged \
                 on the line"
            ),
            Dropped::UnknownFlags { flags } => write!(
                f,
                "a link frame has flags {flags:#04x}, unknown to this version"
            ),
        }
    }
}

/// What the reader found at a zero.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkEvent<'a> {
    /// A whole frame whose CRC matches.
    Frame(LinkFrame<'a>),
    /// Bytes that were not one: dropped, and the reader already looks for the next frame.
    Dropped(Dropped),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadState {
    /// No byte since the last zero.
    Idle,
    /// Decoding a frame.
    Collecting,
    /// More bytes than fit: skipping to the next zero.
    Overlong,
    /// A frame was handed out and is still borrowed: start afresh on the next byte.
    Delivered,
}

/// Finds link frames in a byte stream, sans-IO: feed it bytes as they come, in pieces of any
/// size, and it hands out each frame whose CRC matches, or says why the bytes up to a zero
/// were dropped. It holds one decoded frame of at most `CAP` bytes (header, payload and CRC:
/// [`MAX_FRAME`] for frames of a full [`MTU`]), and nothing else.
///
/// A zero always ends what came before it, so a receiver is back in step at the first zero
/// after any garbage, however long.
#[derive(Clone, Debug)]
pub struct LinkFrameReader<const CAP: usize = MAX_FRAME> {
    buf: [u8; CAP],
    len: usize,
    cobs: CobsReader,
    state: ReadState,
}

impl<const CAP: usize> Default for LinkFrameReader<CAP> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const CAP: usize> LinkFrameReader<CAP> {
    /// A reader that looks for the start of a frame.
    pub const fn new() -> Self {
        LinkFrameReader {
            buf: [0; CAP],
            len: 0,
            cobs: CobsReader::new(),
            state: ReadState::Idle,
        }
    }

    /// Whether some bytes of a frame have been taken and its end not yet.
    pub fn is_mid_frame(&self) -> bool {
        matches!(self.state, ReadState::Collecting | ReadState::Overlong)
    }

    /// Forgets the bytes of a frame begun: the next byte is looked at as if after a zero.
    pub fn reset(&mut self) {
        self.len = 0;
        self.cobs = CobsReader::new();
        self.state = ReadState::Idle;
    }

    /// Takes bytes from `input` up to and including the next zero that ends a frame (or all of
    /// it). Returns how many it took and, at such a zero, what it found there. Zeros with
    /// nothing before them are taken silently.
    pub fn feed(&mut self, input: &[u8]) -> (usize, Option<LinkEvent<'_>>) {
        if self.state == ReadState::Delivered {
            self.reset();
        }
        for (i, &byte) in input.iter().enumerate() {
            if byte == 0 {
                let state = self.state;
                if state == ReadState::Idle {
                    continue;
                }
                return (i + 1, Some(self.end_of_frame(state)));
            }
            match self.state {
                ReadState::Overlong => continue,
                ReadState::Idle | ReadState::Delivered => self.state = ReadState::Collecting,
                ReadState::Collecting => {}
            }
            let decoded = match self.cobs.step(byte) {
                Step::Code => continue,
                Step::CodeAfterZero => 0,
                Step::Data(b) => b,
            };
            if self.len == CAP {
                self.state = ReadState::Overlong;
                continue;
            }
            self.buf[self.len] = decoded;
            self.len += 1;
        }
        (input.len(), None)
    }

    fn end_of_frame(&mut self, state: ReadState) -> LinkEvent<'_> {
        let at_boundary = self.cobs.at_boundary();
        let len = self.len;
        self.state = ReadState::Delivered;
        if state == ReadState::Overlong {
            return LinkEvent::Dropped(Dropped::TooLong { capacity: CAP });
        }
        if !at_boundary {
            return LinkEvent::Dropped(Dropped::Torn);
        }
        if len < HEADER_LEN + CRC_LEN {
            return LinkEvent::Dropped(Dropped::TooShort { len });
        }
        let (body, crc) = self.buf[..len].split_at(len - CRC_LEN);
        let carried = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        let mut computed = Crc32::new();
        computed.update(body);
        let computed = computed.value();
        if computed != carried {
            return LinkEvent::Dropped(Dropped::BadCrc { computed, carried });
        }
        let flags = body[0];
        if flags & !KNOWN_FLAGS != 0 {
            return LinkEvent::Dropped(Dropped::UnknownFlags { flags });
        }
        LinkEvent::Frame(LinkFrame {
            header: Header {
                start: flags & FLAG_START != 0,
                notice: flags & FLAG_NOTICE != 0,
                seq: body[1],
            },
            payload: &body[HEADER_LEN..],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START_7: Header = Header {
        start: true,
        notice: false,
        seq: 7,
    };

    #[test]
    fn a_frame_on_the_wire() {
        let mut out = [0u8; 64];
        let n = encode_frame(START_7, b"hi", &mut out).unwrap();
        // 01 07 'h' 'i' + CRC-32 of those four bytes, little-endian, then COBS.
        let crc = super::super::crc32::crc32(&[0x01, 0x07, b'h', b'i']).to_le_bytes();
        assert!(!crc.contains(&0), "pick another example");
        let mut expected = heapless::Vec::<u8, 16>::new();
        expected
            .extend_from_slice(&[0x00, 0x09, 0x01, 0x07, b'h', b'i'])
            .unwrap();
        expected.extend_from_slice(&crc).unwrap();
        expected.push(0x00).unwrap();
        assert_eq!(&out[..n], &expected[..]);
        let mut reader = LinkFrameReader::<64>::new();
        let (used, event) = reader.feed(&out[..n]);
        assert_eq!(used, n);
        assert_eq!(
            event,
            Some(LinkEvent::Frame(LinkFrame {
                header: START_7,
                payload: b"hi"
            }))
        );
    }

    #[test]
    fn encoding_refuses_what_does_not_fit() {
        let mut out = [0u8; MAX_ENCODED];
        assert_eq!(
            encode_frame(START_7, &[1; MTU + 1], &mut out),
            Err(LinkEncodeError::PayloadTooLong { len: MTU + 1 })
        );
        assert_eq!(
            encode_frame(START_7, &[1; 10], &mut out[..10]),
            Err(LinkEncodeError::OutputTooSmall {
                needed: max_encoded_len(10),
                available: 10
            })
        );
        let n = encode_frame(START_7, &[0xFF; MTU], &mut out).unwrap();
        assert!(n <= MAX_ENCODED);
    }

    #[test]
    fn drops_say_why() {
        let mut reader = LinkFrameReader::<16>::new();
        let mut out = [0u8; 64];
        let n = encode_frame(START_7, b"0123456789ab", &mut out).unwrap();
        assert_eq!(
            reader.feed(&out[..n]).1,
            Some(LinkEvent::Dropped(Dropped::TooLong { capacity: 16 }))
        );
        // A zero inside a block: the frame was cut.
        assert_eq!(
            reader.feed(&[0x05, 0x11, 0x00]).1,
            Some(LinkEvent::Dropped(Dropped::Torn))
        );
        assert_eq!(
            reader.feed(&[0x03, 0x11, 0x22, 0x00]).1,
            Some(LinkEvent::Dropped(Dropped::TooShort { len: 2 }))
        );
        let n = encode_frame(START_7, b"ok", &mut out).unwrap();
        out[4] ^= 0x20;
        assert!(matches!(
            reader.feed(&out[..n]).1,
            Some(LinkEvent::Dropped(Dropped::BadCrc { .. }))
        ));
        // Flags from a newer version, with a good CRC.
        let mut raw = [0x80u8, 1, 0, 0, 0, 0];
        let crc = super::super::crc32::crc32(&raw[..2]).to_le_bytes();
        raw[2..].copy_from_slice(&crc);
        let mut encoded = [0u8; 16];
        let mut writer = CobsWriter::new(&mut encoded);
        writer.push_all(&raw);
        let len = writer.finish();
        reader.feed(&encoded[..len]);
        assert_eq!(
            reader.feed(&[0]).1,
            Some(LinkEvent::Dropped(Dropped::UnknownFlags { flags: 0x80 }))
        );
        // Zeros alone are nothing.
        assert_eq!(reader.feed(&[0, 0, 0]), (3, None));
    }
}
