//! # unstick-core
//!
//! Message framing for byte streams, for firmware and for servers alike: `#![no_std]`, no
//! allocator, no I/O of its own.
//!
//! A TCP stream has no message boundaries: two `send()`s may arrive as one `recv()` and one
//! `send()` as many (the "sticky packet" problem). unstick puts each message in a frame whose
//! length is known before its bytes arrive:
//!
//! ```text
//! header frame:  [L: 4-byte LE i32][L bytes: JSON object][body: N bytes, N from "total_size"]
//! plain frame:   [N: 4-byte LE i32][N bytes]
//! ```
//!
//! These are byte-compatible with the Python `struct.pack('i')` + `json.dumps` scripts the
//! project started from; other prefix widths and byte orders are a [`Profile`] away.
//!
//! ## Architecture
//!
//! - [`FrameDecoder`] is a sans-IO state machine (`Prefix → Header → Body → Done`). Feed it byte
//!   slices of any size; it returns how many bytes it consumed and at most one [`Event`]: a frame
//!   head (with the typed header available from [`FrameDecoder::header`]), a body chunk (a slice
//!   of *your* input, never copied), or the frame end with its digest verdicts. The header buffer
//!   of `CAP` bytes is the only memory it owns.
//! - [`HeaderFrameEncoder`] writes a frame head into your buffer; bodies go out from where they
//!   are.
//! - [`blocking`] and [`asynch`] are thin drivers over `embedded-io` and `embedded-io-async`.
//!
//! Headers are checked by an iterative scanner before `serde-json-core` sees them, so hostile
//! JSON (deep nesting, huge numbers, invalid UTF-8, lone surrogates, trailing bytes) is a typed
//! error. Escapes that Python's `json.dumps` writes (`\u65b0`, surrogate pairs for emoji) are
//! decoded.
//!
//! **Promise:** no input makes the decoder panic, overflow the stack, or allocate; the fuzz
//! targets in `fuzz/` check this for every entry point.
//!
//! ## Example
//!
//! ```
//! use unstick_core::{Algorithm, Event, FrameDecoder, HeaderFrameEncoder, Profile};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Reply<'a> {
//!     file_name: &'a str,
//! }
//!
//! // Two frames written back to back: a receiver may get them glued together in one read.
//! let encoder = HeaderFrameEncoder::new(Profile::I32_LE);
//! let mut wire = [0u8; 256];
//! let a = encoder.encode_frame(&Reply { file_name: "a.txt" }, b"hello", &mut wire).unwrap();
//! let b = encoder.encode_frame(&Reply { file_name: "b.txt" }, b"world", &mut wire[a..]).unwrap();
//!
//! let mut decoder = FrameDecoder::<128>::header_frames(Profile::I32_LE);
//! let mut input = &wire[..a + b];
//! let mut bodies = heapless::Vec::<heapless::Vec<u8, 16>, 2>::new();
//! loop {
//!     let (used, event) = decoder.feed(input).unwrap();
//!     input = &input[used..];
//!     match event {
//!         Event::Head(info) => {
//!             let reply: Reply<'_> = decoder.header().unwrap();
//!             assert!(reply.file_name.ends_with(".txt"));
//!             bodies.push(heapless::Vec::new()).unwrap();
//!             assert_eq!(info.body_len, 5);
//!         }
//!         Event::Body(chunk) => bodies.last_mut().unwrap().extend_from_slice(chunk).unwrap(),
//!         // The encoder added an xxh3 digest, checked here (when the `xxh3` feature is on).
//!         Event::End(end) => assert!(end.is_verified() || !Algorithm::Xxh3.is_supported()),
//!         Event::NeedMore => break,
//!     }
//! }
//! assert_eq!(bodies[0], b"hello");
//! assert_eq!(bodies[1], b"world");
//! ```
//!
//! ## Cargo features
//!
//! - `xxh3` (default): compute and verify `"xxh3"` (XXH3-128) digests; encoders emit one by
//!   default. XXH3 catches accidents, not attackers.
//! - `md5` (default): compute and verify `"md5"` digests, for the seed's Python peers.
//!
//! With a feature off, a declared digest of that kind is reported as
//! [`Verdict::Unsupported`] instead of being checked.
//!
//! - `fast-scan` (default): decode faster on a computer, at a cost in code size: headers are
//!   searched eight bytes at a time (SWAR) for the ends of strings, UTF-8 is checked inside
//!   strings as the scan meets them, the scan records where the header's members stand (up to
//!   16, about 170 bytes in each decoder) so that a typed view reads them without walking the
//!   header again, and a length prefix is read as one integer. It checks exactly as much as
//!   without it; a firmware leaves it out.
//!
//! - `seed` (default): the sessions serve the seed's own clients too: raw-text shell commands
//!   answered in the seed's reply formats, and uploads named by `filename`. A firmware whose
//!   link never carries them (a serial line) leaves it out, and the code that serves them.
//! - `host-names` (default): a file server session can refuse what a host's file system reads
//!   specially ([`files::FileServerSession::with_name_rules`]: Windows' device names, streams
//!   and short names, the reserved prefix in any case). A firmware whose store is a flat
//!   namespace of its own leaves it out and applies the portable rules only.
//!
//! - `protocols` (off by default): the shell and file protocols, as sans-IO sessions and the
//!   vocabulary they speak.
//!   - [`session`]: what every session shares: the outbox that hands out bytes to send
//!     ([`session::Transmit`]), the one refusal type ([`session::Refusal`]), the token check.
//!   - [`shell`]: the remote shell's headers, greeting rule and seed reply formats, its server
//!     session ([`shell::ShellServerSession`]: framed and seed clients, every refusal) and its
//!     client sessions ([`shell::ShellClientSession`], [`shell::SeedClientSession`]).
//!   - [`files`]: the file protocol's headers and path rules, its server session
//!     ([`files::FileServerSession`]: put with resume, get, ls, stat, delete, mkdir, rename,
//!     seed uploads; the host carries out the file actions it asks for) and its client session
//!     ([`files::client::FileClientSession`]).
//!   - [`info`]: the `info` request both servers answer (protocols, version, limits,
//!     digests, platform), and a client session that reads its reply.
//!   - `ShellOp`, `FileOp`, the error codes (`ErrorCode`) with their stable wire strings, the
//!     error frame (`ErrorFrame`), and [`foreign`]: other protocols' openings, which both
//!     servers refuse.
//!
//!   Sessions are driven like quinn-proto's connections: the host feeds received bytes and the
//!   results of the actions it carried out (`handle_*`), and drains bytes to send
//!   (`poll_transmit`) and actions (`poll_action`). They never read a clock, perform I/O or
//!   allocate; bodies pass through as slices, never copied. `unstick-std` hosts them on TCP
//!   sockets, files and processes. A firmware that only frames bytes links none of it.
//!
//! - `async-host` (off by default; turns on `protocols`): `asynch::host`, the sessions' host
//!   written once over `embedded-io-async`, for firmware on an async executor (embassy):
//!   `serve_request` and `serve_connection` drive a server's session (its actions through an
//!   async `RequestWork`), `await_reply` a client's, and `Outlet::send` sends what either hands
//!   out. Time comes from a `Clock` the runtime implements (`now`, `sleep_until`); each read
//!   waits for input or the session's deadline, whichever comes first, so the stream's reads
//!   must be cancel-safe. Buffers are the caller's slices. The module's documentation has a
//!   file server answering a request, runnable as it is.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod asynch;
pub mod blocking;
mod decoder;
mod digest;
mod encoder;
mod error;
#[cfg(feature = "protocols")]
mod error_frame;
#[cfg(feature = "protocols")]
pub mod files;
#[cfg(feature = "protocols")]
pub mod foreign;
mod header_view;
mod hex;
#[cfg(feature = "protocols")]
pub mod info;
pub mod json;
#[cfg(feature = "protocols")]
mod ops;
mod peer_text;
mod profile;
pub mod serial_link;
#[cfg(feature = "protocols")]
pub mod session;
#[cfg(feature = "protocols")]
pub mod shell;
mod string_run;
pub mod time;
mod window;
#[cfg(feature = "protocols")]
mod wire_enum;

pub use decoder::{Event, Format, FrameDecoder, FrameEnd, FrameInfo, Verdict};
pub use digest::{Algorithm, Algorithms, BodyHasher, Checksum, Digests, HexDigest, digest_of};
pub use encoder::{HeaderFrameEncoder, encode_plain_frame, encode_plain_head};
pub use error::{DecodeError, EncodeError, HeaderError, ReadError, SizeField, WriteError};
#[cfg(feature = "protocols")]
pub use error_frame::{ErrorCode, ErrorFrame, OP_ERROR, PLAIN_ENCODER};
pub use header_view::{Member, MemberError, ShapeError};
#[cfg(feature = "protocols")]
pub use ops::{FileOp, ShellOp};
pub use profile::{ByteOrder, PrefixWidth, Profile};
#[cfg(feature = "protocols")]
pub use wire_enum::UnknownWireName;

/// Re-exported so applications name the same `heapless` version in their header types.
pub use heapless;
