//! A link layer for byte streams with no connection and no integrity, such as a UART: the
//! shell and file protocols' bytes travel in *link frames* that a receiver finds again right
//! after garbage, checks, and puts back in order, without waiting for the line to fall silent.
//!
//! ```text
//! on the line:   00 | COBS( flags | seq | payload (0..=1024 bytes) | CRC-32 LE ) | 00
//! flags:         bit 0 START (a request, or the reply to one, begins), bit 1 NOTICE
//! ```
//!
//! - **COBS** ([`cobs`] encoding) leaves no zero in a frame, so a zero always ends one: after
//!   any garbage, a receiver is back in step at the next zero. A sender writes a zero before
//!   each frame as well as after it, so garbage with no zero of its own cannot run into the
//!   next frame.
//! - **CRC-32** (IEEE, as zlib's) over flags, number and payload: a damaged frame is dropped
//!   and counted ([`Dropped`]); the receiver takes the next one.
//! - **Numbers and starts** ([`sequence`]): a frame lost in the middle of a request shows as a
//!   gap in the numbers; the receiver drops the rest of that request and waits for the next
//!   start frame. A reply's start frame echoes the number of its request's, so that a client
//!   never takes an older reply for its own.
//! - **Notices** ([`Notice`]): a device that drops a request tells the client, which then fails
//!   at once with a message, rather than after its time-out.
//!
//! Over TCP and TLS none of this is used: a TCP stream is already whole and in order.
//!
//! Everything here is sans-IO: [`encode_frame`] writes into the caller's buffer,
//! [`LinkFrameReader`] holds one frame of a fixed capacity, and the sequence types are a few
//! bytes of state.
//!
//! # Example
//!
//! A request of three frames; garbage on the line before it is dropped, and the receiver finds
//! the first frame right after it. The garbage here holds a zero, so it is dropped as two
//! pieces: the bytes up to that zero, and the two after it, which end at the zero the sender
//! writes before every frame.
//!
//! ```
//! use unstick_core::serial_link::{
//!     Accept, LinkEvent, LinkFrameReader, LinkSender, MAX_ENCODED, RequestReceiver,
//!     encode_frame,
//! };
//!
//! let mut sender = LinkSender::new(42);
//! sender.start_request();
//! let mut line = Vec::new();
//! line.extend_from_slice(b"\x13\x37noise on the line\x00\xff\xfe");
//! for piece in [&b"first "[..], b"second ", b"third"] {
//!     let mut frame = [0u8; MAX_ENCODED];
//!     let n = encode_frame(sender.next_header(false), piece, &mut frame).unwrap();
//!     line.extend_from_slice(&frame[..n]);
//! }
//!
//! let mut reader = LinkFrameReader::<{ unstick_core::serial_link::MAX_FRAME }>::new();
//! let mut requests = RequestReceiver::new();
//! let (mut request, mut dropped) = (Vec::new(), 0);
//! let mut input = &line[..];
//! while !input.is_empty() {
//!     let (used, event) = reader.feed(input);
//!     input = &input[used..];
//!     match event {
//!         Some(LinkEvent::Frame(frame)) => match requests.accept(frame.header) {
//!             Accept::Start => request = frame.payload.to_vec(),
//!             Accept::Next => request.extend_from_slice(frame.payload),
//!             Accept::Stale | Accept::Gap { .. } => unreachable!("nothing was lost"),
//!         },
//!         Some(LinkEvent::Dropped(_)) => dropped += 1,
//!         None => {}
//!     }
//! }
//! assert_eq!(request, b"first second third");
//! assert_eq!(dropped, 2);
//! ```

pub mod cobs;
mod crc32;
mod frame;
mod notice;
pub mod sequence;

pub use crc32::{Crc32, crc32};
pub use frame::{
    CRC_LEN, Dropped, HEADER_LEN, Header, LinkEncodeError, LinkEvent, LinkFrame, LinkFrameReader,
    MAX_ENCODED, MAX_FRAME, MTU, encode_frame, max_encoded_len,
};
pub use notice::{NOTICE_LEN, Notice, NoticeReason};
pub use sequence::{Accept, LinkSender, ReplyReceiver, RequestReceiver};
