//! The file protocol's client as a sans-IO session: every protocol decision of a `put`, `get`,
//! `ls`, `stat`, `delete`, `mkdir`, `rename` and seed upload, with no I/O, no clock and no allocation
//! (docs/PROTOCOL.md, "File server").
//!
//! The host owns the socket and the local file. It starts one operation at a time with a method
//! of [`FileClientSession`], then loops:
//!
//! 1. drain [`poll_transmit`](FileClientSession::poll_transmit): frame heads are copied into the
//!    host's buffer ([`Transmit::Bytes`]); a body chunk is announced as [`Transmit::Body`] and
//!    sent by the host from the buffer it handed to
//!    [`handle_local_data`](FileClientSession::handle_local_data), never copied;
//! 2. carry out [`poll_action`](FileClientSession::poll_action): read a range of the local file
//!    and hand it over in chunks (hashed only, for a resumed prefix, or hashed and sent);
//! 3. otherwise feed what the socket gives to
//!    [`handle_input`](FileClientSession::handle_input), which reports [`ClientEvent`]s (a
//!    download's body as slices of the host's own input), and an end of stream to
//!    [`handle_eof`](FileClientSession::handle_eof).
//!
//! The session decides which request to send and with which members, which replies are valid
//! in which order, where an upload resumes ([`resume_offset`]), and checks every digest: the
//! server's `stored` digest against the one computed while sending, and a download's trailer
//! against the bytes received (a resumed download's local prefix included).

use core::fmt;
use core::time::Duration;

use serde::Serialize;
use serde::de::{self, Deserialize, Deserializer, Visitor};

use super::{
    Ack, DigestTrailer, EntryReply, FileAttributes, FileHead, ReplyHead, Request, StatReply,
};
use crate::session::ReplyTimer;
use crate::session::{BoundedText, MESSAGE_CAP, Outbox, Session, SessionError, Transmit};
use crate::time::Instant;
use crate::{
    Algorithm, Algorithms, BodyHasher, Checksum, DecodeError, EncodeError, ErrorCode, ErrorFrame,
    Event, FileOp, FrameDecoder, FrameInfo, HeaderError, HeaderFrameEncoder, PLAIN_ENCODER,
    Profile, SizeField,
};
use crate::{HexDigest, digest_of};

/// Longest entry name kept, in bytes: a component is at most 255 bytes, and an escaped name
/// (`\xNN` per byte that is not UTF-8) at most four times that.
pub const NAME_CAP: usize = 1024;

/// Longest entry kind kept, in bytes (`file`, `dir`, `symlink`, `other`, or a newer server's
/// word).
pub const KIND_CAP: usize = 32;

/// Longest error code kept, in bytes; a longer one is cut.
pub const CODE_CAP: usize = 64;

/// How long a [`FileClientSession`] waits for a silent server by default (see
/// [`FileClientSession::with_reply_timeout`]).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// Smallest outbox a [`FileClientSession`] accepts: room for a digest trailer and a short
/// request. Paths and tokens need more: a request head must fit whole.
pub const MIN_OUT: usize = 256;

/// Where a resumed upload of a `local_size`-byte file starts, given the `partial_size` the
/// server's `stat` reported: the partial's length when it could be a prefix of the file (it is
/// not longer), else 0 (upload from the start).
pub const fn resume_offset(partial_size: u64, local_size: u64) -> u64 {
    if partial_size <= local_size {
        partial_size
    } else {
        0
    }
}

/// What every request carries besides its path: the token, when the server has one, and the
/// digest algorithm (sent as `"algorithm"` with every request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestOptions<'a> {
    /// The server's token, if it needs one.
    pub token: Option<&'a str>,
    /// The digest algorithm for transfers.
    pub algorithm: Algorithm,
}

impl Default for RequestOptions<'_> {
    fn default() -> Self {
        RequestOptions {
            token: None,
            algorithm: Algorithm::Xxh3,
        }
    }
}

/// Local work the session asks its host to carry out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAction {
    /// Read `len` bytes of the local file starting at `offset` and hand them to
    /// [`handle_local_data`](FileClientSession::handle_local_data), in chunks of any size. With
    /// `send`, each chunk is also sent as the body (drain
    /// [`poll_transmit`](FileClientSession::poll_transmit) after each); without, it only goes
    /// into the digest (the prefix of a resumed transfer). The action shrinks as chunks arrive.
    ReadLocal {
        /// Where the next chunk starts in the local file.
        offset: u64,
        /// Bytes still wanted.
        len: u64,
        /// Whether the bytes are sent (else only hashed).
        send: bool,
    },
    /// A seed upload is out whole and its server sends no reply: shut down the sending half,
    /// read until the server closes (what it sends is ignored), then call
    /// [`handle_eof`](FileClientSession::handle_eof).
    CloseSend,
}

/// What the server said about a path (a `stat` reply).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatInfo {
    /// Whether the name exists.
    pub exists: bool,
    /// Kind of entry (`file`, `dir`, `symlink`, `other`); empty when it does not exist.
    pub kind: heapless::String<KIND_CAP>,
    /// Size, when it exists.
    pub size: Option<u64>,
    /// Modification time in seconds since the Unix epoch, when it exists.
    pub mtime: Option<i64>,
    /// Permission bits (within [`MODE_BITS`](super::MODE_BITS)), when it exists and the server
    /// says.
    pub mode: Option<u32>,
    /// Bytes of an interrupted upload of this name the server holds for resuming.
    pub partial_size: u64,
}

/// One entry of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryInfo {
    /// Name as the server sent it (one component). Never print it raw: it is the server's
    /// choice of bytes.
    pub name: heapless::String<NAME_CAP>,
    /// Whether `name` is in escaped form because the real name is not UTF-8 (bytes that are
    /// not UTF-8 as `\xNN`, backslashes doubled).
    pub name_escaped: bool,
    /// `file`, `dir`, `symlink` or `other`.
    pub kind: heapless::String<KIND_CAP>,
    /// Size in bytes.
    pub size: u64,
    /// Modification time in seconds since the Unix epoch.
    pub mtime: i64,
}

/// The server's refusal: an error frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerRefusal {
    /// The code's wire string, kept as sent so that a code this build does not know still
    /// shows (cut at [`CODE_CAP`] bytes).
    pub code: heapless::String<CODE_CAP>,
    /// The server's sentence (cut at [`MESSAGE_CAP`] bytes, ending with `...`). Never print it
    /// raw: it is the server's choice of bytes.
    pub message: heapless::String<MESSAGE_CAP>,
}

impl ServerRefusal {
    /// The code, when this build knows it.
    pub fn error_code(&self) -> Option<ErrorCode> {
        self.code.parse().ok()
    }

    /// The refusal an error frame carries, its code cut to [`CODE_CAP`] bytes.
    pub(crate) fn from_frame(frame: ErrorFrame<Clipped<MESSAGE_CAP>>) -> Self {
        let mut code = heapless::String::new();
        let _ = code.push_str(Clipped::<CODE_CAP>::of(frame.code.0.as_str()).0.as_str());
        ServerRefusal {
            code,
            message: frame.message.0,
        }
    }
}

impl fmt::Display for ServerRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "server refused ({}): {}", self.code, self.message)
    }
}

/// What [`handle_input`](FileClientSession::handle_input) (and
/// [`handle_eof`](FileClientSession::handle_eof)) report.
#[derive(Clone, Debug, PartialEq, Eq)]
// A no_std session cannot box its larger payloads; an event is moved once, to the host.
#[allow(clippy::large_enum_variant)]
pub enum ClientEvent<'i> {
    /// The reply to [`stat`](FileClientSession::stat). The operation is over.
    Stat(StatInfo),
    /// One entry of a listing; more follow until [`ClientEvent::Listed`].
    Entry(EntryInfo),
    /// The listing is complete: `count` entries, as many as were reported. The operation is
    /// over.
    Listed {
        /// Entries listed.
        count: u64,
    },
    /// The path was deleted. The operation is over.
    Deleted,
    /// The directory exists now. The operation is over.
    Made,
    /// The path has its new name. The operation is over.
    Renamed,
    /// A resumed upload read the server's `stat`: it starts at `offset` (0: from the start).
    /// Carry out [`poll_action`](FileClientSession::poll_action) before feeding more input.
    UploadFrom {
        /// Bytes of the file the server already holds and that are not sent again.
        offset: u64,
    },
    /// The upload is committed under the digest both sides computed. The operation is over.
    Stored {
        /// File size.
        size: u64,
        /// Bytes that were already on the server (resume) and were not sent.
        resumed_from: u64,
        /// The digest of the whole file, as the server confirmed it.
        digest: Checksum,
    },
    /// A download starts: write the bodies that follow at `offset` of the local file (cut back
    /// to `offset` bytes).
    FileHead {
        /// Whole file size.
        size: u64,
        /// Where the body starts in the file (the local prefix's length).
        offset: u64,
        /// Modification time in seconds since the Unix epoch.
        mtime: i64,
        /// Permission bits (within [`MODE_BITS`](super::MODE_BITS)), when the server says.
        mode: Option<u32>,
    },
    /// A piece of a download's body: a slice of the input given to
    /// [`handle_input`](FileClientSession::handle_input), to be written where the previous one
    /// ended.
    Body(&'i [u8]),
    /// The download is complete and its digest (local prefix included) matches the server's.
    /// The operation is over.
    Fetched {
        /// File size.
        size: u64,
        /// Bytes that were already in the local partial download.
        resumed_from: u64,
        /// The digest both sides agree on.
        digest: Checksum,
    },
    /// The server refused the request (an error frame). The operation is over. The server
    /// closes the connection after a refusal it sends before a body has been read whole (an
    /// upload refused at its head or mid-body), after `unauthorized`, and after broken framing;
    /// after other refusals (a trailer that does not match, say) the connection goes on.
    Refused(ServerRefusal),
    /// A seed upload is over: all bytes were sent and the server closed the connection. The
    /// operation is over (nothing was verified: the seed's server confirms nothing).
    SeedSent {
        /// Bytes sent.
        size: u64,
    },
}

/// Why the session could not go on. Except for [`Session`](FileProtocolError::Session),
/// [`InFlight`](FileProtocolError::InFlight), [`UnsupportedAlgorithm`] and
/// [`RequestTooLarge`](FileProtocolError::RequestTooLarge) raised when starting an operation
/// (which leave the session unchanged), the connection is out of step afterwards: close it;
/// the session then answers `handle_input` and every new operation with
/// [`Poisoned`](FileProtocolError::Poisoned) (local data is refused as out of order, and the end
/// of the stream is no news).
///
/// [`UnsupportedAlgorithm`]: FileProtocolError::UnsupportedAlgorithm
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileProtocolError {
    /// The host called out of order (see [`SessionError`]); the session is unchanged.
    Session(SessionError),
    /// An operation is already in flight; wait for its last event.
    InFlight,
    /// An earlier error left the connection out of step.
    Poisoned,
    /// The digest algorithm is not compiled into this build.
    UnsupportedAlgorithm(Algorithm),
    /// A request's head does not fit the session's outbox (a long path or token).
    RequestTooLarge(EncodeError),
    /// The server's bytes are not valid frames.
    Framing(DecodeError),
    /// A reply's header lacks a member its op needs, or has one of the wrong type (`op` is
    /// `None` when the op itself could not be read).
    MalformedReply {
        /// The reply's op, when it was read.
        op: Option<FileOp>,
        /// What was wrong.
        error: HeaderError,
    },
    /// A reply of a kind that does not fit the request in flight.
    UnexpectedReply {
        /// What would have fit.
        expected: &'static str,
        /// What came.
        got: FileOp,
    },
    /// A reply that carries no body came with one.
    UnexpectedBody {
        /// The reply's op.
        op: FileOp,
        /// Its body length.
        len: u64,
    },
    /// A download's `file` head does not match the request: another offset, or a body length
    /// other than `size - offset`.
    FileHeadMismatch {
        /// The offset asked for (the local prefix's length).
        asked: u64,
        /// The head's `offset`.
        offset: u64,
        /// The head's `size`.
        size: u64,
        /// The frame's body length.
        body_len: u64,
    },
    /// A string member of a reply is longer than the session keeps.
    MemberTooLong {
        /// The reply's op.
        op: FileOp,
        /// The member.
        member: &'static str,
    },
    /// A reply that must carry a whole-file digest (`stored`, or a download's `done`) has none
    /// of the algorithm in use.
    MissingDigest {
        /// The reply's op.
        op: FileOp,
        /// The algorithm in use.
        algorithm: Algorithm,
    },
    /// The digests disagree: after `stored`, the server committed other bytes than were sent;
    /// after a download's `done`, the bytes received (with the local prefix) are not the
    /// server's file. Nothing should be kept.
    DigestMismatch {
        /// The reply's op.
        op: FileOp,
        /// The algorithm in use.
        algorithm: Algorithm,
    },
    /// The server's `stored` reply names another size than was sent.
    SizeMismatch {
        /// The size the server stored.
        stored: u64,
        /// The size of the file sent.
        sent: u64,
    },
    /// A listing's `end` announces another count than the entries that came.
    CountMismatch {
        /// The count in `end`.
        announced: u64,
        /// Entries received.
        listed: u64,
    },
    /// The server closed the connection while a reply was due.
    Closed,
    /// The server sent nothing for the session's reply timeout while a reply was due.
    TimedOut {
        /// The reply timeout.
        limit: Duration,
    },
    /// The server closed the connection inside a frame.
    Truncated {
        /// At least this many bytes were missing.
        needed: u64,
    },
}

impl fmt::Display for FileProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileProtocolError::Session(e) => fmt::Display::fmt(e, f),
            FileProtocolError::InFlight => f.write_str(
                "an operation is already in flight on this connection; wait for its last event",
            ),
            FileProtocolError::Poisoned => f.write_str(
                "an earlier protocol error left the connection out of step; open a new connection",
            ),
            FileProtocolError::UnsupportedAlgorithm(a) => write!(
                f,
                "{a} digests are not compiled into this build; enable the `{a}` feature of unstick-core or choose another algorithm"
            ),
            FileProtocolError::RequestTooLarge(e) => write!(
                f,
                "the request does not fit the session's outbox ({e}); shorten the path or token, or build the session with a larger OUT"
            ),
            FileProtocolError::Framing(e) => {
                write!(f, "the server's reply is not a valid frame: {e}")
            }
            FileProtocolError::MalformedReply {
                op: Some(op),
                error,
            } => {
                write!(f, "the server's `{op}` reply is malformed: {error}")
            }
            FileProtocolError::MalformedReply { op: None, error } => write!(
                f,
                "the server's reply has no known `op`: {error} (is this an unstick file server?)"
            ),
            FileProtocolError::UnexpectedReply { expected, got } => {
                write!(f, "expected {expected} from the server, got `{got}`")
            }
            FileProtocolError::UnexpectedBody { op, len } => write!(
                f,
                "the server's `{op}` reply carries a body of {len} bytes; that reply has none"
            ),
            FileProtocolError::FileHeadMismatch {
                asked,
                offset,
                size,
                body_len,
            } => write!(
                f,
                "the file header does not match the request (asked from byte {asked}; got size {size}, offset {offset}, {body_len} body bytes)"
            ),
            FileProtocolError::MemberTooLong { op, member } => write!(
                f,
                "the server's `{op}` reply has a `{member}` longer than this client keeps"
            ),
            FileProtocolError::MissingDigest { op, algorithm } => write!(
                f,
                "the server's `{op}` reply carries no `file_{algorithm}` digest of the whole file"
            ),
            FileProtocolError::DigestMismatch {
                op: FileOp::Stored, ..
            } => f.write_str("the server stored a file with another digest"),
            FileProtocolError::DigestMismatch { algorithm, .. } => write!(
                f,
                "the downloaded data does not match the server's {algorithm} digest (corrupted in transit, a bad partial download, or the file changed); keep nothing and download it again"
            ),
            FileProtocolError::SizeMismatch { stored, sent } => {
                write!(f, "the server stored {stored} bytes but {sent} were sent")
            }
            FileProtocolError::CountMismatch { announced, listed } => write!(
                f,
                "the listing ended announcing {announced} entries, but {listed} came"
            ),
            FileProtocolError::Closed => {
                f.write_str("the server closed the connection without replying")
            }
            FileProtocolError::TimedOut { limit } => write!(
                f,
                "the server did not answer within {} s",
                limit.as_secs_f32()
            ),
            FileProtocolError::Truncated { needed } => write!(
                f,
                "the server closed the connection inside a frame ({needed} more bytes were due)"
            ),
        }
    }
}

impl core::error::Error for FileProtocolError {}

impl From<SessionError> for FileProtocolError {
    fn from(e: SessionError) -> Self {
        FileProtocolError::Session(e)
    }
}

/// Where the operation in flight is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Idle,
    Failed,
    Stat,
    Delete,
    MakeDir,
    Rename,
    List {
        count: u64,
    },
    /// The `get` is queued; the local prefix `0..have` is being hashed (`pos` so far).
    GetPrefix {
        pos: u64,
        have: u64,
    },
    GetHead {
        have: u64,
    },
    GetBody {
        size: u64,
        have: u64,
    },
    GetTrailer {
        size: u64,
        have: u64,
    },
    /// A resumed `put` asked for the server's `stat`.
    PutStat {
        size: u64,
    },
    /// The prefix `0..offset` is being hashed (`pos` so far); the `put` head is not queued yet.
    PutPrefix {
        pos: u64,
        offset: u64,
        size: u64,
    },
    /// The body `offset..size` is being sent (`pos` so far).
    PutBody {
        pos: u64,
        offset: u64,
        size: u64,
    },
    /// The body is out; the trailer is queued once the outbox is empty.
    PutTrailer {
        offset: u64,
        size: u64,
    },
    PutStored {
        offset: u64,
        size: u64,
        digest: Checksum,
    },
    SeedBody {
        pos: u64,
        size: u64,
    },
    SeedSent {
        size: u64,
    },
}

/// The seed's upload header; the encoder adds `"filesize"`.
#[derive(Serialize)]
struct SeedHeader<'a> {
    filepath: &'a str,
    filename: &'a str,
}

/// The seed's upload encoder: `"filesize"`, no digest.
const SEED_ENCODER: HeaderFrameEncoder = HeaderFrameEncoder::new(Profile::I32_LE)
    .checksum(None)
    .size_field(SizeField::Filesize);

/// A received string cut to `N` bytes (at a character boundary, ending with `...`) instead of
/// refused.
pub(crate) struct Clipped<const N: usize>(heapless::String<N>);

impl<const N: usize> Clipped<N> {
    fn of(text: &str) -> Self {
        let mut kept = heapless::String::new();
        if kept.push_str(text).is_err() {
            const MARK: &str = "...";
            let mut cut = N.saturating_sub(MARK.len()).min(text.len());
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            let _ = kept.push_str(&text[..cut]);
            let _ = kept.push_str(MARK);
        }
        Clipped(kept)
    }
}

impl<'de, const N: usize> Deserialize<'de> for Clipped<N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ClipVisitor<const N: usize>;

        impl<const N: usize> Visitor<'_> for ClipVisitor<N> {
            type Value = Clipped<N>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Clipped::of(text))
            }
        }

        deserializer.deserialize_str(ClipVisitor::<N>)
    }
}

/// A kept member, or [`FileProtocolError::MemberTooLong`].
fn kept<const N: usize, const M: usize>(
    text: &BoundedText<N>,
    op: FileOp,
    member: &'static str,
) -> Result<heapless::String<M>, FileProtocolError> {
    let mut out = heapless::String::new();
    match text.get() {
        Some(t) if out.push_str(t).is_ok() => Ok(out),
        _ => Err(FileProtocolError::MemberTooLong { op, member }),
    }
}

/// The whole-file digest a trailer carries for `algorithm`.
fn trailer_digest(
    trailer: &DigestTrailer<BoundedText<64>>,
    algorithm: Algorithm,
) -> Option<Checksum> {
    let hex = match algorithm {
        Algorithm::Xxh3 => trailer.file_xxh3.as_ref(),
        Algorithm::Md5 => trailer.file_md5.as_ref(),
    }?;
    Checksum::from_hex(algorithm, hex.get()?.as_bytes())
}

/// The client side of one connection to an unstick file server, sans-IO (see the
/// [module docs](self)).
///
/// `CAP` bounds a reply's JSON header (the decoder's buffer); `OUT` the outbox, which holds
/// request heads (never body bytes) and must fit the longest request: a path of up to 4,096
/// bytes plus the token. A resumed upload also keeps a copy of the path and token in `OUT`
/// bytes until it sends its `put`. Memory is fixed: no operation allocates.
///
/// One operation is in flight at a time; it is over with its last event (marked "the operation
/// is over" in [`ClientEvent`]) or an error.
///
/// # Example
///
/// A `stat`, with the server's reply fed back in one-byte pieces:
///
/// ```
/// use unstick_core::files::StatReply;
/// use unstick_core::files::client::{ClientEvent, FileClientSession, RequestOptions};
/// use unstick_core::session::Transmit;
/// use unstick_core::time::Instant;
/// use unstick_core::{FileOp, PLAIN_ENCODER};
///
/// let mut session = FileClientSession::<1024, 1024>::new();
/// session.stat("dir/a.txt", RequestOptions::default()).unwrap();
/// let mut sent = Vec::new();
/// let mut out = [0u8; 256];
/// while let Some(Transmit::Bytes(n)) = session.poll_transmit(&mut out) {
///     sent.extend_from_slice(&out[..n]);
/// }
/// // The path's XXH3 rides along, so a server refuses a path corrupted on the way.
/// assert!(sent[4..].starts_with(br#"{"op":"stat","path":"dir/a.txt","algorithm":"xxh3","path_xxh3":""#));
/// assert_eq!(session.poll_action(), None); // nothing local to do: wait for the reply
///
/// let reply = StatReply {
///     op: FileOp::Stat,
///     exists: true,
///     kind: Some("file"),
///     size: Some(5),
///     mtime: Some(1_700_000_000),
///     mode: None,
///     partial_size: 0,
/// };
/// let mut wire = [0u8; 256];
/// let n = PLAIN_ENCODER.encode_frame(&reply, b"", &mut wire).unwrap();
/// let mut stat = None;
/// for byte in wire[..n].chunks(1) {
///     let (used, event) = session.handle_input(Instant::ZERO, byte).unwrap();
///     assert_eq!(used, 1);
///     if let Some(ClientEvent::Stat(info)) = event {
///         stat = Some(info);
///     }
/// }
/// let stat = stat.unwrap();
/// assert!(stat.exists);
/// assert_eq!((stat.kind.as_str(), stat.size), ("file", Some(5)));
/// assert!(session.is_idle());
/// ```
pub struct FileClientSession<const CAP: usize = 1024, const OUT: usize = 1024> {
    decoder: FrameDecoder<CAP>,
    outbox: Outbox<OUT>,
    state: State,
    algorithm: Algorithm,
    hasher: BodyHasher,
    /// A resumed upload's path followed by its token, for the `put` sent after the `stat`.
    recall: heapless::String<OUT>,
    recall_path: usize,
    recall_token: bool,
    /// The attributes the upload in flight asks the server to keep (`put -p`).
    keep: FileAttributes,
    /// How long the server may stay silent while a reply is due.
    reply: ReplyTimer,
}

impl<const CAP: usize, const OUT: usize> fmt::Debug for FileClientSession<CAP, OUT> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileClientSession")
            .field("state", &self.state)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl<const CAP: usize, const OUT: usize> Default for FileClientSession<CAP, OUT> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const CAP: usize, const OUT: usize> FileClientSession<CAP, OUT> {
    const OUT_FITS: () = assert!(OUT >= MIN_OUT, "the outbox needs at least MIN_OUT bytes");

    /// A session with no operation in flight.
    pub fn new() -> Self {
        let () = Self::OUT_FITS;
        FileClientSession {
            decoder: FrameDecoder::header_frames(Profile::I32_LE),
            outbox: Outbox::new(),
            state: State::Idle,
            algorithm: Algorithm::Xxh3,
            hasher: BodyHasher::new(Algorithms::NONE),
            recall: heapless::String::new(),
            recall_path: 0,
            recall_token: false,
            keep: FileAttributes::NONE,
            reply: ReplyTimer::new(Some(REPLY_TIMEOUT)),
        }
    }

    /// This session, giving up once the server has sent nothing for `limit` while a reply is
    /// due ([`FileProtocolError::TimedOut`] from [`handle_timeout`](Self::handle_timeout));
    /// `None` waits forever. The default is [`REPLY_TIMEOUT`]. The time the host spends on the
    /// session's actions (reading and sending an upload) does not count.
    pub fn with_reply_timeout(mut self, limit: Option<Duration>) -> Self {
        self.reply.set_limit(limit);
        self
    }

    /// Whether no operation is in flight (and none failed), so another may start.
    pub fn is_idle(&self) -> bool {
        self.state == State::Idle
    }

    /// Whether an error left the connection out of step (every call now fails).
    pub fn is_poisoned(&self) -> bool {
        self.state == State::Failed
    }

    /// Starts `stat` of `path`: the reply is [`ClientEvent::Stat`].
    pub fn stat(
        &mut self,
        path: &str,
        options: RequestOptions<'_>,
    ) -> Result<(), FileProtocolError> {
        self.simple(FileOp::Stat, path, options, State::Stat)
    }

    /// Starts `delete` of `path`: the reply is [`ClientEvent::Deleted`].
    pub fn delete(
        &mut self,
        path: &str,
        options: RequestOptions<'_>,
    ) -> Result<(), FileProtocolError> {
        self.simple(FileOp::Delete, path, options, State::Delete)
    }

    /// Starts `mkdir` of `path`: the reply is [`ClientEvent::Made`]. With `parents`, missing
    /// parents are created too and an existing directory is no error.
    pub fn mkdir(
        &mut self,
        path: &str,
        parents: bool,
        options: RequestOptions<'_>,
    ) -> Result<(), FileProtocolError> {
        self.check_start(None)?;
        let mut request = request(FileOp::Mkdir, path, options);
        request.parents = parents.then_some(true);
        self.queue(&request)?;
        self.begin_unhashed();
        self.state = State::MakeDir;
        Ok(())
    }

    /// Starts `rename` of `from` to `to`: the reply is [`ClientEvent::Renamed`].
    pub fn rename(
        &mut self,
        from: &str,
        to: &str,
        options: RequestOptions<'_>,
    ) -> Result<(), FileProtocolError> {
        self.check_start(None)?;
        let mut request = request(FileOp::Rename, from, options);
        request.to = Some(to);
        self.queue(&request)?;
        self.begin_unhashed();
        self.state = State::Rename;
        Ok(())
    }

    /// Starts `ls` of the directory `dir` (`""` for the root): [`ClientEvent::Entry`] per
    /// entry, then [`ClientEvent::Listed`].
    pub fn list(
        &mut self,
        dir: &str,
        options: RequestOptions<'_>,
    ) -> Result<(), FileProtocolError> {
        self.simple(FileOp::Ls, dir, options, State::List { count: 0 })
    }

    /// Starts an upload of a `size`-byte local file as `path`.
    ///
    /// Without `resume`, the `put` head is queued at once and the file follows through
    /// [`ClientAction::ReadLocal`] with `send`. With `resume`, the session first asks for the
    /// server's `stat`, reports [`ClientEvent::UploadFrom`] with the [`resume_offset`], asks
    /// for the skipped prefix to be hashed (`ReadLocal` without `send`), and sends the rest
    /// with the prefix's digest. The trailer with the whole file's digest goes out after the
    /// body; the operation ends with [`ClientEvent::Stored`] (the server's digest checked) or
    /// [`ClientEvent::Refused`] (`partial_mismatch` when the server's partial is not a prefix of
    /// this file: start again without `resume`).
    pub fn put(
        &mut self,
        path: &str,
        size: u64,
        options: RequestOptions<'_>,
        resume: bool,
    ) -> Result<(), FileProtocolError> {
        self.put_keeping(path, size, options, resume, FileAttributes::NONE)
    }

    /// Starts an upload as [`put`](Self::put) does, asking the server to give the file the
    /// attributes in `keep` (its mode and modification time, `put -p`); the `put` head carries
    /// them (`"mode"`, `"mtime"`), the resumed one too.
    pub fn put_keeping(
        &mut self,
        path: &str,
        size: u64,
        options: RequestOptions<'_>,
        resume: bool,
        keep: FileAttributes,
    ) -> Result<(), FileProtocolError> {
        self.check_start(Some(options.algorithm))?;
        self.keep = keep;
        if resume {
            let mut recall = heapless::String::<OUT>::new();
            let token = options.token.unwrap_or("");
            if recall.push_str(path).is_err() || recall.push_str(token).is_err() {
                return Err(FileProtocolError::RequestTooLarge(
                    EncodeError::BufferTooSmall { capacity: OUT },
                ));
            }
            self.queue(&request(FileOp::Stat, path, options))?;
            self.recall = recall;
            self.recall_path = path.len();
            self.recall_token = options.token.is_some();
            self.state = State::PutStat { size };
        } else {
            let head = put_request(path, options, 0, None, keep);
            push_request(&mut self.outbox, &head, size)
                .map_err(FileProtocolError::RequestTooLarge)?;
            self.state = Self::sending(0, size);
        }
        self.begin(options.algorithm);
        Ok(())
    }

    /// Starts a download of `path`. `have` is the length of the local partial download to
    /// resume (0: from the start): the `get` asks for the rest, and the session first asks for
    /// the local prefix to be hashed (`ReadLocal` without `send`) so that the server's digest of
    /// the whole file can be checked. Then come [`ClientEvent::FileHead`],
    /// [`ClientEvent::Body`]s and [`ClientEvent::Fetched`] (the digest matched; an error
    /// otherwise: keep nothing).
    pub fn get(
        &mut self,
        path: &str,
        options: RequestOptions<'_>,
        have: u64,
    ) -> Result<(), FileProtocolError> {
        self.check_start(Some(options.algorithm))?;
        let mut get = request(FileOp::Get, path, options);
        get.offset = (have > 0).then_some(have);
        self.queue(&get)?;
        self.begin(options.algorithm);
        self.state = if have > 0 {
            State::GetPrefix { pos: 0, have }
        } else {
            State::GetHead { have: 0 }
        };
        Ok(())
    }

    /// Starts an upload in the seed's protocol: header `{"filepath","filename","filesize"}`,
    /// the `size` bytes (`ReadLocal` with `send`), then [`ClientAction::CloseSend`]. `folder`
    /// is the client's own folder (servers ignore it). The seed's server sends no reply, so
    /// nothing is verified; the operation ends with [`ClientEvent::SeedSent`] from
    /// [`handle_eof`](Self::handle_eof).
    pub fn seed_put(
        &mut self,
        folder: &str,
        filename: &str,
        size: u64,
    ) -> Result<(), FileProtocolError> {
        self.check_start(None)?;
        let header = SeedHeader {
            filepath: folder,
            filename,
        };
        self.outbox
            .push_head(&SEED_ENCODER, &header, size, None)
            .map_err(FileProtocolError::RequestTooLarge)?;
        self.begin_unhashed();
        self.state = if size > 0 {
            State::SeedBody { pos: 0, size }
        } else {
            State::SeedSent { size }
        };
        Ok(())
    }

    /// The next thing to send: a frame head copied into `out` ([`Transmit::Bytes`], as much as
    /// fits), or the chunk last given to [`handle_local_data`](Self::handle_local_data)
    /// ([`Transmit::Body`]); `None` when nothing is waiting. Drain it after every `handle_*` and
    /// operation start.
    pub fn poll_transmit(&mut self, out: &mut [u8]) -> Option<Transmit> {
        if let Some(transmit) = self.outbox.poll_transmit(out) {
            return Some(transmit);
        }
        let State::PutTrailer { offset, size } = self.state else {
            return None;
        };
        let digest = self.hasher.finish().get(self.algorithm)?;
        let hex = digest.to_hex();
        let trailer = DigestTrailer::new(FileOp::Done, self.algorithm, hex.as_str(), None);
        // The outbox is empty and holds at least MIN_OUT bytes: the trailer fits.
        if self.outbox.push_frame(&PLAIN_ENCODER, &trailer).is_err() {
            self.state = State::Failed;
            return None;
        }
        self.state = State::PutStored {
            offset,
            size,
            digest,
        };
        self.outbox.poll_transmit(out)
    }

    /// Local work the session waits for, if any (look after draining
    /// [`poll_transmit`](Self::poll_transmit)).
    pub fn poll_action(&self) -> Option<ClientAction> {
        let (offset, end, send) = match self.state {
            State::GetPrefix { pos, have } => (pos, have, false),
            State::PutPrefix { pos, offset, .. } => (pos, offset, false),
            State::PutBody { pos, size, .. } | State::SeedBody { pos, size } => (pos, size, true),
            State::SeedSent { .. } => return Some(ClientAction::CloseSend),
            _ => return None,
        };
        Some(ClientAction::ReadLocal {
            offset,
            len: end - offset,
            send,
        })
    }

    /// Takes the next chunk of the local file asked for by [`ClientAction::ReadLocal`]: hashes
    /// it and, when the action says `send`, announces it as [`Transmit::Body`] (send it from
    /// `chunk` itself). A chunk longer than asked, or any chunk when none is asked for, is
    /// [`SessionError::OutOfOrder`]; a chunk to send while the outbox is not drained is
    /// [`SessionError::OutboxFull`]. An empty chunk changes nothing (if the file ends early, it
    /// shrank: give up the operation).
    pub fn handle_local_data(&mut self, chunk: &[u8]) -> Result<(), FileProtocolError> {
        let Some(ClientAction::ReadLocal { len, send, .. }) = self.poll_action() else {
            return Err(SessionError::OutOfOrder.into());
        };
        let n = chunk.len() as u64;
        if n > len {
            return Err(SessionError::OutOfOrder.into());
        }
        if n == 0 {
            return Ok(());
        }
        if send && !self.outbox.is_empty() {
            return Err(SessionError::OutboxFull.into());
        }
        self.hasher.update(chunk);
        // The host's turn: the server owes nothing until the local data is all handed over.
        self.reply.end();
        if send {
            self.outbox.push_body(chunk.len());
        }
        self.state = match self.state {
            State::GetPrefix { pos, have } if pos + n == have => State::GetHead { have },
            State::GetPrefix { pos, have } => State::GetPrefix { pos: pos + n, have },
            State::PutPrefix { pos, offset, size } if pos + n == offset => {
                self.queue_resumed_put(offset, size)?;
                Self::sending(offset, size)
            }
            State::PutPrefix { pos, offset, size } => State::PutPrefix {
                pos: pos + n,
                offset,
                size,
            },
            State::PutBody { pos, offset, size } if pos + n == size => {
                State::PutTrailer { offset, size }
            }
            State::PutBody { pos, offset, size } => State::PutBody {
                pos: pos + n,
                offset,
                size,
            },
            State::SeedBody { pos, size } if pos + n == size => State::SeedSent { size },
            State::SeedBody { pos, size } => State::SeedBody { pos: pos + n, size },
            other => other,
        };
        Ok(())
    }

    /// Feeds bytes received from the server. Returns how many were consumed and at most one
    /// event; call again with the rest (even when it is empty) while events come: `None` means
    /// all input was consumed and the session waits for more. After
    /// [`ClientEvent::UploadFrom`], carry out [`poll_action`](Self::poll_action) first and keep
    /// any rest for later.
    ///
    /// While the session waits for a local prefix to be hashed, input other than none is
    /// [`SessionError::OutOfOrder`] (nothing is consumed). After a seed upload's body, input is
    /// consumed and ignored.
    pub fn handle_input<'i>(
        &mut self,
        now: Instant,
        input: &'i [u8],
    ) -> Result<(usize, Option<ClientEvent<'i>>), FileProtocolError> {
        if !input.is_empty() {
            self.reply.heard(now);
        }
        match self.state {
            State::Failed => return Err(FileProtocolError::Poisoned),
            State::GetPrefix { .. } | State::PutPrefix { .. } if input.is_empty() => {
                return Ok((0, None));
            }
            State::GetPrefix { .. } | State::PutPrefix { .. } => {
                return Err(SessionError::OutOfOrder.into());
            }
            State::SeedBody { .. } | State::SeedSent { .. } => return Ok((input.len(), None)),
            _ => {}
        }
        let mut used = 0;
        loop {
            let (n, event) = match self.decoder.feed(&input[used..]) {
                Ok(fed) => fed,
                Err(e) => return Err(self.fail(FileProtocolError::Framing(e))),
            };
            used += n;
            match event {
                Event::NeedMore => return Ok((used, None)),
                Event::Head(info) => match self.on_head(info) {
                    Ok(Some(event)) => return Ok((used, Some(event))),
                    Ok(None) => {}
                    Err(e) => return Err(self.fail(e)),
                },
                Event::Body(chunk) => {
                    if let State::GetBody { .. } = self.state {
                        self.hasher.update(chunk);
                        return Ok((used, Some(ClientEvent::Body(chunk))));
                    }
                }
                Event::End(_) => {
                    if let State::GetBody { size, have } = self.state {
                        self.state = State::GetTrailer { size, have };
                    }
                }
            }
        }
    }

    /// When the session next needs [`handle_timeout`](Self::handle_timeout): the end of the
    /// reply timeout while a reply is due and the host has nothing to do for the session (a
    /// wait that begins is timed from `now`); `None` otherwise.
    pub fn poll_timeout(&mut self, now: Instant) -> Option<Instant> {
        if matches!(self.state, State::Idle | State::Failed) {
            self.reply.end();
            return None;
        }
        if !self.outbox.is_empty() || self.poll_action().is_some() {
            // The host's turn: the server owes nothing until it has done its part.
            self.reply.end();
            return None;
        }
        self.reply.due();
        self.reply.deadline(now)
    }

    /// Time has come to `now`: a server silent for the reply timeout while a reply is due is
    /// [`FileProtocolError::TimedOut`], and the connection is out of step.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), FileProtocolError> {
        if self.state == State::Failed {
            return Err(FileProtocolError::Poisoned);
        }
        match (self.poll_timeout(now), self.reply.limit()) {
            (Some(at), Some(limit)) if at <= now => {
                Err(self.fail(FileProtocolError::TimedOut { limit }))
            }
            _ => Ok(()),
        }
    }

    /// Reports that the server closed the connection. Between operations that is a clean end
    /// (`Ok(None)`); after a seed upload it ends the operation ([`ClientEvent::SeedSent`]);
    /// anywhere else it is [`FileProtocolError::Closed`] (or
    /// [`Truncated`](FileProtocolError::Truncated) inside a frame).
    pub fn handle_eof(&mut self) -> Result<Option<ClientEvent<'static>>, FileProtocolError> {
        match self.state {
            State::Idle | State::Failed => Ok(None),
            State::SeedSent { size } => {
                self.state = State::Idle;
                Ok(Some(ClientEvent::SeedSent { size }))
            }
            _ => Err(match self.decoder.check_eof() {
                Err(DecodeError::UnexpectedEof { needed }) => {
                    self.fail(FileProtocolError::Truncated { needed })
                }
                _ => self.fail(FileProtocolError::Closed),
            }),
        }
    }

    /// Checks that an operation may start: nothing in flight, nothing waiting to be sent,
    /// `algorithm` (if any) compiled in.
    fn check_start(&self, algorithm: Option<Algorithm>) -> Result<(), FileProtocolError> {
        match self.state {
            State::Idle => {}
            State::Failed => return Err(FileProtocolError::Poisoned),
            _ => return Err(FileProtocolError::InFlight),
        }
        if !self.outbox.is_empty() {
            return Err(SessionError::OutboxFull.into());
        }
        match algorithm {
            Some(a) if !a.is_supported() => Err(FileProtocolError::UnsupportedAlgorithm(a)),
            _ => Ok(()),
        }
    }

    fn begin(&mut self, algorithm: Algorithm) {
        self.algorithm = algorithm;
        self.hasher = BodyHasher::new(Algorithms::only(algorithm));
        // No wait of an earlier operation carries over: this one's starts once its request is
        // out.
        self.reply.end();
    }

    fn begin_unhashed(&mut self) {
        self.hasher = BodyHasher::new(Algorithms::NONE);
        self.reply.end();
    }

    /// Starts a request that is answered by frames without bodies.
    fn simple(
        &mut self,
        op: FileOp,
        path: &str,
        options: RequestOptions<'_>,
        state: State,
    ) -> Result<(), FileProtocolError> {
        self.check_start(None)?;
        self.queue(&request(op, path, options))?;
        self.begin_unhashed();
        self.state = state;
        Ok(())
    }

    fn queue(&mut self, request: &Request<&str>) -> Result<(), FileProtocolError> {
        push_request(&mut self.outbox, request, 0).map_err(FileProtocolError::RequestTooLarge)
    }

    /// The state of an upload whose body `offset..size` is still to go.
    fn sending(offset: u64, size: u64) -> State {
        if offset < size {
            State::PutBody {
                pos: offset,
                offset,
                size,
            }
        } else {
            State::PutTrailer { offset, size }
        }
    }

    /// Queues the `put` of a resumed upload, now that its prefix is hashed.
    fn queue_resumed_put(&mut self, offset: u64, size: u64) -> Result<(), FileProtocolError> {
        let prefix = self.hasher.clone().finish().get(self.algorithm);
        let Some(prefix) = prefix else {
            return Err(self.fail(FileProtocolError::UnsupportedAlgorithm(self.algorithm)));
        };
        let hex = prefix.to_hex();
        let (path, token) = self.recall.split_at(self.recall_path);
        let options = RequestOptions {
            token: self.recall_token.then_some(token),
            algorithm: self.algorithm,
        };
        let head = put_request(path, options, offset, Some(hex.as_str()), self.keep);
        match push_request(&mut self.outbox, &head, size - offset) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(FileProtocolError::RequestTooLarge(e))),
        }
    }

    fn fail(&mut self, e: FileProtocolError) -> FileProtocolError {
        self.state = State::Failed;
        e
    }

    /// Acts on a reply's head; returns the event it makes, if any.
    fn on_head(
        &mut self,
        info: FrameInfo,
    ) -> Result<Option<ClientEvent<'static>>, FileProtocolError> {
        let ReplyHead { op } = self
            .decoder
            .header()
            .map_err(|error| FileProtocolError::MalformedReply { op: None, error })?;
        if op == FileOp::Error {
            let frame: ErrorFrame<Clipped<MESSAGE_CAP>> = self.typed(op)?;
            self.end_frame(op, info)?;
            if matches!(
                self.state,
                State::PutBody { .. } | State::PutTrailer { .. } | State::PutStored { .. }
            ) {
                // The server closes after refusing an upload: what was queued stays unsent.
                self.outbox = Outbox::new();
            }
            self.state = State::Idle;
            return Ok(Some(ClientEvent::Refused(ServerRefusal::from_frame(frame))));
        }
        let unexpected = |expected| FileProtocolError::UnexpectedReply { expected, got: op };
        match (self.state, op) {
            (State::Stat, FileOp::Stat) => {
                let stat = self.stat_reply(op, info)?;
                self.state = State::Idle;
                Ok(Some(ClientEvent::Stat(stat)))
            }
            (State::Stat, _) => Err(unexpected("`stat`")),
            (State::Delete, FileOp::Deleted) => {
                let _: Ack = self.typed(op)?;
                self.end_frame(op, info)?;
                self.state = State::Idle;
                Ok(Some(ClientEvent::Deleted))
            }
            (State::Delete, _) => Err(unexpected("`deleted`")),
            (State::MakeDir, FileOp::Made) | (State::Rename, FileOp::Renamed) => {
                let _: Ack = self.typed(op)?;
                self.end_frame(op, info)?;
                let event = if self.state == State::MakeDir {
                    ClientEvent::Made
                } else {
                    ClientEvent::Renamed
                };
                self.state = State::Idle;
                Ok(Some(event))
            }
            (State::MakeDir, _) => Err(unexpected("`made`")),
            (State::Rename, _) => Err(unexpected("`renamed`")),
            (State::List { count }, FileOp::Entry) => {
                let entry: EntryReply<BoundedText<NAME_CAP>> = self.typed(op)?;
                self.end_frame(op, info)?;
                let entry = EntryInfo {
                    name: kept(&entry.name, op, "name")?,
                    name_escaped: entry.name_escaped.unwrap_or(false),
                    kind: kept(&entry.kind, op, "kind")?,
                    size: entry.size,
                    mtime: entry.mtime,
                };
                self.state = State::List {
                    count: count.saturating_add(1),
                };
                Ok(Some(ClientEvent::Entry(entry)))
            }
            (State::List { count }, FileOp::End) => {
                let end: Ack = self.typed(op)?;
                self.end_frame(op, info)?;
                if let Some(announced) = end.count.filter(|&n| n != count) {
                    return Err(FileProtocolError::CountMismatch {
                        announced,
                        listed: count,
                    });
                }
                self.state = State::Idle;
                Ok(Some(ClientEvent::Listed { count }))
            }
            (State::List { .. }, _) => Err(unexpected("`entry` or `end`")),
            (State::GetHead { have }, FileOp::File) => {
                let head: FileHead = self.typed(op)?;
                if head.offset != have || head.size.checked_sub(have) != Some(info.body_len) {
                    return Err(FileProtocolError::FileHeadMismatch {
                        asked: have,
                        offset: head.offset,
                        size: head.size,
                        body_len: info.body_len,
                    });
                }
                self.state = if info.body_len == 0 {
                    self.end_frame(op, info)?;
                    State::GetTrailer {
                        size: head.size,
                        have,
                    }
                } else {
                    State::GetBody {
                        size: head.size,
                        have,
                    }
                };
                Ok(Some(ClientEvent::FileHead {
                    size: head.size,
                    offset: head.offset,
                    mtime: head.mtime,
                    mode: head.mode.map(|m| m & super::MODE_BITS),
                }))
            }
            (State::GetHead { .. }, _) => Err(unexpected("`file`")),
            (State::GetTrailer { size, have }, FileOp::Done) => {
                let digest = self.check_trailer(op, info)?;
                self.state = State::Idle;
                Ok(Some(ClientEvent::Fetched {
                    size,
                    resumed_from: have,
                    digest,
                }))
            }
            (State::GetTrailer { .. }, _) => Err(unexpected("`done`")),
            (State::PutStat { size }, FileOp::Stat) => {
                let stat = self.stat_reply(op, info)?;
                let offset = resume_offset(stat.partial_size, size);
                self.state = if offset > 0 {
                    State::PutPrefix {
                        pos: 0,
                        offset,
                        size,
                    }
                } else {
                    let (path, token) = self.recall.split_at(self.recall_path);
                    let options = RequestOptions {
                        token: self.recall_token.then_some(token),
                        algorithm: self.algorithm,
                    };
                    let head = put_request(path, options, 0, None, self.keep);
                    push_request(&mut self.outbox, &head, size)
                        .map_err(FileProtocolError::RequestTooLarge)?;
                    Self::sending(0, size)
                };
                Ok(Some(ClientEvent::UploadFrom { offset }))
            }
            (State::PutStat { .. }, _) => Err(unexpected("`stat`")),
            (State::PutBody { .. }, _) => Err(unexpected(
                "nothing but an `error` before the upload is sent",
            )),
            (
                State::PutTrailer { offset, size } | State::PutStored { offset, size, .. },
                FileOp::Stored,
            ) => {
                let State::PutStored { digest, .. } = self.state else {
                    // `stored` before the trailer was even sent.
                    return Err(unexpected(
                        "nothing but an `error` before the trailer is sent",
                    ));
                };
                let theirs = self.check_stored(op, info, digest)?;
                if let Some(stored) = theirs.filter(|&n| n != size) {
                    return Err(FileProtocolError::SizeMismatch { stored, sent: size });
                }
                self.state = State::Idle;
                Ok(Some(ClientEvent::Stored {
                    size,
                    resumed_from: offset,
                    digest,
                }))
            }
            (State::PutTrailer { .. } | State::PutStored { .. }, _) => Err(unexpected("`stored`")),
            _ => Err(unexpected("nothing (no request is in flight)")),
        }
    }

    /// The current reply's header as `T`.
    fn typed<T: for<'de> Deserialize<'de>>(&mut self, op: FileOp) -> Result<T, FileProtocolError> {
        self.decoder
            .header()
            .map_err(|error| FileProtocolError::MalformedReply {
                op: Some(op),
                error,
            })
    }

    /// Ends a reply frame that must have no body.
    fn end_frame(&mut self, op: FileOp, info: FrameInfo) -> Result<(), FileProtocolError> {
        if info.body_len != 0 {
            return Err(FileProtocolError::UnexpectedBody {
                op,
                len: info.body_len,
            });
        }
        match self.decoder.feed(&[]) {
            Ok((_, Event::End(_))) => Ok(()),
            Ok(_) => Err(FileProtocolError::UnexpectedBody { op, len: 0 }),
            Err(e) => Err(FileProtocolError::Framing(e)),
        }
    }

    fn stat_reply(&mut self, op: FileOp, info: FrameInfo) -> Result<StatInfo, FileProtocolError> {
        let reply: StatReply<BoundedText<KIND_CAP>> = self.typed(op)?;
        self.end_frame(op, info)?;
        Ok(StatInfo {
            exists: reply.exists,
            kind: match &reply.kind {
                Some(kind) => kept(kind, op, "kind")?,
                None => heapless::String::new(),
            },
            size: reply.size,
            mtime: reply.mtime,
            mode: reply.mode.map(|m| m & super::MODE_BITS),
            partial_size: reply.partial_size,
        })
    }

    /// Checks a download's trailer against the digest of the bytes received.
    fn check_trailer(
        &mut self,
        op: FileOp,
        info: FrameInfo,
    ) -> Result<Checksum, FileProtocolError> {
        let trailer: DigestTrailer<BoundedText<64>> = self.typed(op)?;
        self.end_frame(op, info)?;
        let algorithm = self.algorithm;
        let theirs = trailer_digest(&trailer, algorithm)
            .ok_or(FileProtocolError::MissingDigest { op, algorithm })?;
        match self.hasher.finish().get(algorithm) {
            Some(ours) if ours == theirs => Ok(ours),
            _ => Err(FileProtocolError::DigestMismatch { op, algorithm }),
        }
    }

    /// Checks a `stored` reply against the digest sent; returns the size it names.
    fn check_stored(
        &mut self,
        op: FileOp,
        info: FrameInfo,
        digest: Checksum,
    ) -> Result<Option<u64>, FileProtocolError> {
        let stored: DigestTrailer<BoundedText<64>> = self.typed(op)?;
        self.end_frame(op, info)?;
        let algorithm = self.algorithm;
        match trailer_digest(&stored, algorithm) {
            None => Err(FileProtocolError::MissingDigest { op, algorithm }),
            Some(theirs) if theirs != digest => {
                Err(FileProtocolError::DigestMismatch { op, algorithm })
            }
            Some(_) => Ok(stored.size),
        }
    }
}

/// A request for `op` on `path` with the token and algorithm of `options`.
fn request<'a>(op: FileOp, path: &'a str, options: RequestOptions<'a>) -> Request<&'a str> {
    Request {
        path: Some(path),
        token: options.token,
        algorithm: Some(options.algorithm.member()),
        ..Request::new(op)
    }
}

/// Queues `request`'s head for a body of `body_len` bytes, with its path's digest added (when
/// this build computes XXH3).
fn push_request<const OUT: usize>(
    outbox: &mut Outbox<OUT>,
    request: &Request<&str>,
    body_len: u64,
) -> Result<(), EncodeError> {
    let digest = |text: Option<&str>| {
        text.filter(|_| Algorithm::Xxh3.is_supported())
            .and_then(|text| digest_of(Algorithms::XXH3, text.as_bytes()).get(Algorithm::Xxh3))
            .map(|digest| digest.to_hex())
    };
    let (hex, to_hex) = (digest(request.path), digest(request.to));
    let request = Request {
        path_xxh3: hex.as_ref().map(HexDigest::as_str),
        to_xxh3: to_hex.as_ref().map(HexDigest::as_str),
        ..request.clone()
    };
    outbox.push_head(&PLAIN_ENCODER, &request, body_len, None)
}

/// A `put` of `path`, resumed at `offset` with the prefix's digest when `offset > 0`, asking
/// for the attributes in `keep`.
fn put_request<'a>(
    path: &'a str,
    options: RequestOptions<'a>,
    offset: u64,
    prefix: Option<&'a str>,
    keep: FileAttributes,
) -> Request<&'a str> {
    let mut put = request(FileOp::Put, path, options);
    put.mode = keep.mode;
    put.mtime = keep.mtime;
    if offset > 0 {
        put.offset = Some(offset);
        match options.algorithm {
            Algorithm::Xxh3 => put.prefix_xxh3 = prefix,
            Algorithm::Md5 => put.prefix_md5 = prefix,
        }
    }
    put
}

impl<const CAP: usize, const OUT: usize> Session for FileClientSession<CAP, OUT> {
    type Received<'i> = ClientEvent<'i>;
    type Error = FileProtocolError;
    type Action<'s>
        = ClientAction
    where
        Self: 's;
    type Event = core::convert::Infallible;

    fn handle_input<'i>(
        &mut self,
        now: Instant,
        input: &'i [u8],
    ) -> Result<(usize, Option<ClientEvent<'i>>), FileProtocolError> {
        FileClientSession::handle_input(self, now, input)
    }

    fn handle_eof(&mut self) -> Result<Option<ClientEvent<'static>>, FileProtocolError> {
        FileClientSession::handle_eof(self)
    }

    fn poll_timeout(&mut self, now: Instant) -> Option<Instant> {
        FileClientSession::poll_timeout(self, now)
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), FileProtocolError> {
        FileClientSession::handle_timeout(self, now)
    }

    fn poll_transmit(&mut self, out: &mut [u8]) -> Option<Transmit> {
        FileClientSession::poll_transmit(self, out)
    }

    fn poll_action(&self) -> Option<ClientAction> {
        FileClientSession::poll_action(self)
    }

    fn poll_event(&mut self) -> Option<core::convert::Infallible> {
        None
    }

    fn is_idle(&self) -> bool {
        FileClientSession::is_idle(self)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    /// Tests that are not about time all happen at one instant.
    const NOW: Instant = Instant::ZERO;
    use crate::digest_of;
    use std::string::{String, ToString};
    use std::vec::Vec;
    use std::{format, vec};

    type Session = FileClientSession<1024, 8192>;

    const CHUNKINGS: [usize; 6] = [1, 2, 3, 7, 64, 4096];

    fn opts() -> RequestOptions<'static> {
        RequestOptions::default()
    }

    /// `[i32 LE length][json]` followed by `body`.
    fn raw(json: &str, body: &[u8]) -> Vec<u8> {
        let mut bytes = (json.len() as i32).to_le_bytes().to_vec();
        bytes.extend_from_slice(json.as_bytes());
        bytes.extend_from_slice(body);
        bytes
    }

    /// A request's JSON with the `path_xxh3` the client adds before `total_size`.
    fn req(json: &str) -> String {
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        let path = value["path"].as_str().unwrap();
        let digest = hex(Algorithm::Xxh3, path.as_bytes());
        json.replacen(
            r#","total_size""#,
            &format!(r#","path_xxh3":"{digest}","total_size""#),
            1,
        )
    }

    fn hex(algorithm: Algorithm, data: &[u8]) -> String {
        digest_of(Algorithms::only(algorithm), data)
            .get(algorithm)
            .unwrap()
            .to_hex()
            .to_string()
    }

    fn checksum(algorithm: Algorithm, data: &[u8]) -> Checksum {
        digest_of(Algorithms::only(algorithm), data)
            .get(algorithm)
            .unwrap()
    }

    /// What the session asks to send, with `body` standing for the host's last chunk.
    fn sent(session: &mut Session, body: &[u8]) -> Vec<u8> {
        let mut wire = Vec::new();
        let mut out = [0u8; 100];
        while let Some(transmit) = session.poll_transmit(&mut out) {
            match transmit {
                Transmit::Bytes(n) => wire.extend_from_slice(&out[..n]),
                Transmit::Body(n) => wire.extend_from_slice(&body[..n]),
            }
        }
        wire
    }

    /// Hands `data` over as the action asks, in pieces of `chunk` bytes, collecting what is
    /// sent.
    fn serve_local(session: &mut Session, data: &[u8], chunk: usize) -> Vec<u8> {
        let mut wire = sent(session, b"");
        while let Some(ClientAction::ReadLocal { offset, len, .. }) = session.poll_action() {
            let start = offset as usize;
            let end = start + (len as usize).min(chunk);
            let piece = &data[start..end];
            session.handle_local_data(piece).unwrap();
            wire.extend(sent(session, piece));
        }
        wire
    }

    /// An event with its body copied, so that it outlives the input.
    #[derive(Debug, PartialEq, Eq)]
    #[allow(clippy::large_enum_variant)] // a test's bookkeeping
    enum Seen {
        Event(ClientEvent<'static>),
        Body(Vec<u8>),
    }

    fn own(event: ClientEvent<'_>) -> Seen {
        Seen::Event(match event {
            ClientEvent::Body(chunk) => return Seen::Body(chunk.to_vec()),
            ClientEvent::Stat(s) => ClientEvent::Stat(s),
            ClientEvent::Entry(e) => ClientEvent::Entry(e),
            ClientEvent::Listed { count } => ClientEvent::Listed { count },
            ClientEvent::Deleted => ClientEvent::Deleted,
            ClientEvent::Made => ClientEvent::Made,
            ClientEvent::Renamed => ClientEvent::Renamed,
            ClientEvent::UploadFrom { offset } => ClientEvent::UploadFrom { offset },
            ClientEvent::Stored {
                size,
                resumed_from,
                digest,
            } => ClientEvent::Stored {
                size,
                resumed_from,
                digest,
            },
            ClientEvent::FileHead {
                size,
                offset,
                mtime,
                mode,
            } => ClientEvent::FileHead {
                size,
                offset,
                mtime,
                mode,
            },
            ClientEvent::Fetched {
                size,
                resumed_from,
                digest,
            } => ClientEvent::Fetched {
                size,
                resumed_from,
                digest,
            },
            ClientEvent::Refused(r) => ClientEvent::Refused(r),
            ClientEvent::SeedSent { size } => ClientEvent::SeedSent { size },
        })
    }

    /// Feeds `wire` in pieces of `chunk` bytes; bodies are merged into one.
    fn feed(
        session: &mut Session,
        wire: &[u8],
        chunk: usize,
    ) -> Result<Vec<Seen>, FileProtocolError> {
        let mut seen: Vec<Seen> = Vec::new();
        for piece in wire.chunks(chunk) {
            let mut input = piece;
            loop {
                let (used, event) = session.handle_input(NOW, input)?;
                input = &input[used..];
                match event.map(own) {
                    None => break,
                    Some(Seen::Body(b)) => match seen.last_mut() {
                        Some(Seen::Body(all)) => all.extend(b),
                        _ => seen.push(Seen::Body(b)),
                    },
                    Some(event) => seen.push(event),
                }
            }
            assert!(input.is_empty());
        }
        Ok(seen)
    }

    fn refusal(code: &str, message: &str) -> Seen {
        let mut r = ServerRefusal {
            code: heapless::String::new(),
            message: heapless::String::new(),
        };
        r.code.push_str(code).unwrap();
        r.message.push_str(message).unwrap();
        Seen::Event(ClientEvent::Refused(r))
    }

    fn error_frame(code: &str) -> Vec<u8> {
        raw(
            &format!(r#"{{"op":"error","code":"{code}","message":"no \"way\"","total_size":0}}"#),
            b"",
        )
    }

    fn text<const N: usize>(s: &str) -> heapless::String<N> {
        let mut t = heapless::String::new();
        t.push_str(s).unwrap();
        t
    }

    #[test]
    fn mkdir_and_rename_send_golden_requests_and_read_their_replies() {
        let mut s = Session::new();
        s.mkdir("a/b", true, opts()).unwrap();
        assert_eq!(
            sent(&mut s, b""),
            raw(
                &req(r#"{"op":"mkdir","path":"a/b","algorithm":"xxh3","parents":true,"total_size":0}"#)
                    .replacen(r#","parents":true,"path_xxh3""#, r#","path_xxh3""#, 1)
                    .replacen(r#","total_size""#, r#","parents":true,"total_size""#, 1),
                b""
            )
        );
        let seen = feed(&mut s, &raw(r#"{"op":"made","total_size":0}"#, b""), 3).unwrap();
        assert_eq!(seen, [Seen::Event(ClientEvent::Made)]);
        assert!(s.is_idle());
        s.rename("a", "b/c", opts()).unwrap();
        let expected = format!(
            r#"{{"op":"rename","path":"a","algorithm":"xxh3","path_xxh3":"{}","to":"b/c","to_xxh3":"{}","total_size":0}}"#,
            hex(Algorithm::Xxh3, b"a"),
            hex(Algorithm::Xxh3, b"b/c")
        );
        assert_eq!(sent(&mut s, b""), raw(&expected, b""));
        // A reply for another op is out of step.
        assert!(feed(&mut s, &raw(r#"{"op":"made","total_size":0}"#, b""), 64).is_err());
        let mut s = Session::new();
        s.rename("a", "b", opts()).unwrap();
        sent(&mut s, b"");
        let seen = feed(&mut s, &raw(r#"{"op":"renamed","total_size":0}"#, b""), 64).unwrap();
        assert_eq!(seen, [Seen::Event(ClientEvent::Renamed)]);
    }

    #[test]
    fn requests_encode_to_their_golden_bytes() {
        let mut s = Session::new();
        s.stat("dir/a", opts()).unwrap();
        assert_eq!(
            sent(&mut s, b""),
            raw(
                &req(r#"{"op":"stat","path":"dir/a","algorithm":"xxh3","total_size":0}"#),
                b""
            )
        );
        let mut s = Session::new();
        let with_token = RequestOptions {
            token: Some("s3cret"),
            algorithm: Algorithm::Md5,
        };
        s.delete("a \"b\"", with_token).unwrap();
        assert_eq!(
            sent(&mut s, b""),
            raw(
                &req(
                    r#"{"op":"delete","path":"a \"b\"","token":"s3cret","algorithm":"md5","total_size":0}"#
                ),
                b""
            )
        );
        let mut s = Session::new();
        s.list("", opts()).unwrap();
        assert_eq!(
            sent(&mut s, b""),
            raw(
                &req(r#"{"op":"ls","path":"","algorithm":"xxh3","total_size":0}"#),
                b""
            )
        );
        let mut s = Session::new();
        s.get("a/b", opts(), 0).unwrap();
        assert_eq!(
            sent(&mut s, b""),
            raw(
                &req(r#"{"op":"get","path":"a/b","algorithm":"xxh3","total_size":0}"#),
                b""
            )
        );
        assert_eq!(s.poll_action(), None);
        let mut s = Session::new();
        s.get("a/b", with_token, 4096).unwrap();
        assert_eq!(
            sent(&mut s, b""),
            raw(
                &req(
                    r#"{"op":"get","path":"a/b","token":"s3cret","offset":4096,"algorithm":"md5","total_size":0}"#
                ),
                b""
            )
        );
        assert_eq!(
            s.poll_action(),
            Some(ClientAction::ReadLocal {
                offset: 0,
                len: 4096,
                send: false
            })
        );

        // A put: head, body straight from the host's chunks, trailer.
        let data = b"hello, world";
        let mut s = Session::new();
        s.put("dir/name", data.len() as u64, opts(), false).unwrap();
        let mut wire = sent(&mut s, b"");
        wire.extend(serve_local(&mut s, data, 5));
        let mut expected = raw(
            &req(r#"{"op":"put","path":"dir/name","algorithm":"xxh3","total_size":12}"#),
            data,
        );
        let trailer = format!(
            r#"{{"op":"done","file_xxh3":"{}","total_size":0}}"#,
            hex(Algorithm::Xxh3, data)
        );
        expected.extend(raw(&trailer, b""));
        assert_eq!(wire, expected);
        assert_eq!(s.poll_action(), None);

        // An MD5 put of an empty file: head and trailer only.
        let mut s = Session::new();
        s.put("e", 0, with_token, false).unwrap();
        assert_eq!(s.poll_action(), None);
        let mut expected = raw(
            &req(r#"{"op":"put","path":"e","token":"s3cret","algorithm":"md5","total_size":0}"#),
            b"",
        );
        expected.extend(raw(
            &format!(
                r#"{{"op":"done","file_md5":"{}","total_size":0}}"#,
                hex(Algorithm::Md5, b"")
            ),
            b"",
        ));
        assert_eq!(sent(&mut s, b""), expected);

        // The seed's upload header, then the bytes, then close.
        let mut s = Session::new();
        s.seed_put("C:\\Users\\新建", "config", 3).unwrap();
        let mut wire = sent(&mut s, b"");
        wire.extend(serve_local(&mut s, b"abc", 2));
        assert_eq!(
            wire,
            raw(
                r#"{"filepath":"C:\\Users\\新建","filename":"config","filesize":3}"#,
                b"abc"
            )
        );
        assert_eq!(s.poll_action(), Some(ClientAction::CloseSend));
        assert_eq!(s.handle_input(NOW, b"{anything").unwrap(), (9, None));
        assert_eq!(
            s.handle_eof().unwrap(),
            Some(ClientEvent::SeedSent { size: 3 })
        );
        assert!(s.is_idle());
    }

    #[test]
    fn a_resumed_put_asks_for_stat_hashes_the_prefix_and_sends_the_rest() {
        let data: Vec<u8> = (0..100u8).collect();
        for chunk in CHUNKINGS {
            for (partial, offset) in [(40u64, 40u64), (0, 0), (100, 100), (101, 0)] {
                let mut s = Session::new();
                let options = RequestOptions {
                    token: Some("t"),
                    algorithm: Algorithm::Xxh3,
                };
                s.put("big", 100, options, true).unwrap();
                assert_eq!(
                    sent(&mut s, b""),
                    raw(
                        &req(
                            r#"{"op":"stat","path":"big","token":"t","algorithm":"xxh3","total_size":0}"#
                        ),
                        b""
                    )
                );
                assert_eq!(s.poll_action(), None);
                let stat = raw(
                    &format!(
                        r#"{{"op":"stat","exists":false,"partial_size":{partial},"total_size":0}}"#
                    ),
                    b"",
                );
                let seen = feed(&mut s, &stat, chunk).unwrap();
                assert_eq!(seen, [Seen::Event(ClientEvent::UploadFrom { offset })]);
                if offset > 0 {
                    assert_eq!(
                        s.poll_action(),
                        Some(ClientAction::ReadLocal {
                            offset: 0,
                            len: offset,
                            send: false
                        })
                    );
                    // Input while the prefix is being hashed is the host's mistake.
                    assert_eq!(
                        s.handle_input(NOW, b"x"),
                        Err(FileProtocolError::Session(SessionError::OutOfOrder))
                    );
                }
                let wire = serve_local(&mut s, &data, chunk);
                let o = offset as usize;
                let mut expected = if offset > 0 {
                    raw(
                        &req(&format!(
                            r#"{{"op":"put","path":"big","token":"t","offset":{o},"algorithm":"xxh3","prefix_xxh3":"{}","total_size":{}}}"#,
                            hex(Algorithm::Xxh3, &data[..o]),
                            100 - o
                        )),
                        &data[o..],
                    )
                } else {
                    raw(
                        &req(
                            r#"{"op":"put","path":"big","token":"t","algorithm":"xxh3","total_size":100}"#,
                        ),
                        &data,
                    )
                };
                expected.extend(raw(
                    &format!(
                        r#"{{"op":"done","file_xxh3":"{}","total_size":0}}"#,
                        hex(Algorithm::Xxh3, &data)
                    ),
                    b"",
                ));
                let mut wire = wire;
                wire.extend(sent(&mut s, b""));
                assert_eq!(wire, expected, "partial {partial}");
                let stored = raw(
                    &format!(
                        r#"{{"op":"stored","file_xxh3":"{}","size":100,"total_size":0}}"#,
                        hex(Algorithm::Xxh3, &data)
                    ),
                    b"",
                );
                let seen = feed(&mut s, &stored, chunk).unwrap();
                assert_eq!(
                    seen,
                    [Seen::Event(ClientEvent::Stored {
                        size: 100,
                        resumed_from: offset,
                        digest: checksum(Algorithm::Xxh3, &data),
                    })]
                );
                assert!(s.is_idle());
            }
        }
    }

    #[test]
    fn resume_offsets_follow_the_rule() {
        assert_eq!(resume_offset(0, 10), 0);
        assert_eq!(resume_offset(4, 10), 4);
        assert_eq!(resume_offset(10, 10), 10);
        assert_eq!(resume_offset(11, 10), 0);
    }

    #[test]
    fn replies_decode_under_every_chunking() {
        for chunk in CHUNKINGS {
            // stat
            let mut s = Session::new();
            s.stat("a", opts()).unwrap();
            sent(&mut s, b"");
            let reply = raw(
                r#"{"op":"stat","exists":true,"kind":"file","size":5,"mtime":-3,"mode":2541,"partial_size":2,"total_size":0}"#,
                b"",
            );
            assert_eq!(
                feed(&mut s, &reply, chunk).unwrap(),
                [Seen::Event(ClientEvent::Stat(StatInfo {
                    exists: true,
                    kind: text("file"),
                    size: Some(5),
                    mtime: Some(-3),
                    // 0o4755: the set-user-ID bit is not taken.
                    mode: Some(0o755),
                    partial_size: 2,
                }))]
            );
            assert!(s.is_idle());

            // delete
            let mut s = Session::new();
            s.delete("a", opts()).unwrap();
            sent(&mut s, b"");
            let reply = raw(r#"{"op":"deleted","total_size":0}"#, b"");
            assert_eq!(
                feed(&mut s, &reply, chunk).unwrap(),
                [Seen::Event(ClientEvent::Deleted)]
            );

            // ls: entries (escapes, an escaped name) then end
            let mut s = Session::new();
            s.list("d", opts()).unwrap();
            sent(&mut s, b"");
            let mut reply = raw(
                r#"{"op":"entry","name":"a \"q\" \u65b0","kind":"file","size":5,"mtime":7,"total_size":0}"#,
                b"",
            );
            reply.extend(raw(
                r#"{"op":"entry","name":"b\\xff","name_escaped":true,"kind":"dir","size":0,"mtime":0,"total_size":0}"#,
                b"",
            ));
            reply.extend(raw(r#"{"op":"end","count":2,"total_size":0}"#, b""));
            assert_eq!(
                feed(&mut s, &reply, chunk).unwrap(),
                [
                    Seen::Event(ClientEvent::Entry(EntryInfo {
                        name: text("a \"q\" 新"),
                        name_escaped: false,
                        kind: text("file"),
                        size: 5,
                        mtime: 7,
                    })),
                    Seen::Event(ClientEvent::Entry(EntryInfo {
                        name: text("b\\xff"),
                        name_escaped: true,
                        kind: text("dir"),
                        size: 0,
                        mtime: 0,
                    })),
                    Seen::Event(ClientEvent::Listed { count: 2 }),
                ]
            );
            assert!(s.is_idle());

            // get, from the start and resumed
            let data: Vec<u8> = (0..200u32).map(|i| (i * 7) as u8).collect();
            for have in [0usize, 50, 200] {
                for algorithm in [Algorithm::Xxh3, Algorithm::Md5] {
                    let mut s = Session::new();
                    let options = RequestOptions {
                        token: None,
                        algorithm,
                    };
                    s.get("f", options, have as u64).unwrap();
                    sent(&mut s, b"");
                    assert!(serve_local(&mut s, &data[..have], chunk).is_empty());
                    let mut reply = raw(
                        &format!(
                            r#"{{"op":"file","size":200,"offset":{have},"mtime":9,"total_size":{}}}"#,
                            200 - have
                        ),
                        &data[have..],
                    );
                    reply.extend(raw(
                        &format!(
                            r#"{{"op":"done","file_{algorithm}":"{}","total_size":0}}"#,
                            hex(algorithm, &data)
                        ),
                        b"",
                    ));
                    let mut expected = vec![Seen::Event(ClientEvent::FileHead {
                        size: 200,
                        offset: have as u64,
                        mtime: 9,
                        mode: None,
                    })];
                    if have < 200 {
                        expected.push(Seen::Body(data[have..].to_vec()));
                    }
                    expected.push(Seen::Event(ClientEvent::Fetched {
                        size: 200,
                        resumed_from: have as u64,
                        digest: checksum(algorithm, &data),
                    }));
                    assert_eq!(feed(&mut s, &reply, chunk).unwrap(), expected);
                    assert!(s.is_idle());
                }
            }

            // put, then stored
            let mut s = Session::new();
            s.put("p", 3, opts(), false).unwrap();
            sent(&mut s, b"");
            serve_local(&mut s, b"abc", chunk);
            sent(&mut s, b"");
            let reply = raw(
                &format!(
                    r#"{{"op":"stored","file_xxh3":"{}","size":3,"total_size":0}}"#,
                    hex(Algorithm::Xxh3, b"abc")
                ),
                b"",
            );
            assert_eq!(
                feed(&mut s, &reply, chunk).unwrap(),
                [Seen::Event(ClientEvent::Stored {
                    size: 3,
                    resumed_from: 0,
                    digest: checksum(Algorithm::Xxh3, b"abc"),
                })]
            );
        }
    }

    /// A session with `op` in flight, its request sent (and for a put, its body).
    fn started(op: &str) -> Session {
        let mut s = Session::new();
        match op {
            "stat" => s.stat("a", opts()).unwrap(),
            "delete" => s.delete("a", opts()).unwrap(),
            "ls" => s.list("", opts()).unwrap(),
            "get" => s.get("a", opts(), 0).unwrap(),
            "put" => s.put("a", 3, opts(), false).unwrap(),
            "put-resume" => s.put("a", 3, opts(), true).unwrap(),
            "put-body" => s.put("a", 3, opts(), false).unwrap(),
            _ => unreachable!(),
        }
        sent(&mut s, b"");
        if op == "put" {
            serve_local(&mut s, b"abc", 3);
            sent(&mut s, b"");
        }
        s
    }

    const OPS: [&str; 7] = [
        "stat",
        "delete",
        "ls",
        "get",
        "put",
        "put-resume",
        "put-body",
    ];

    #[test]
    fn an_error_frame_ends_every_operation_as_a_refusal() {
        for chunk in CHUNKINGS {
            for op in OPS {
                let mut s = started(op);
                let seen = feed(&mut s, &error_frame("not_found"), chunk).unwrap();
                assert_eq!(seen, [refusal("not_found", "no \"way\"")], "{op}");
                assert!(s.is_idle(), "{op}");
                // Nothing queued survives a refused upload.
                assert_eq!(sent(&mut s, b""), b"", "{op}");
                assert_eq!(s.poll_action(), None, "{op}");
                // The connection goes on.
                s.stat("b", opts()).unwrap();
            }
        }
        // A code this build does not know is kept as sent, and long messages are cut.
        let mut s = started("stat");
        let long = "m".repeat(600);
        let frame = raw(
            &format!(r#"{{"op":"error","code":"brand_new","message":"{long}"}}"#),
            b"",
        );
        let seen = feed(&mut s, &frame, 4096).unwrap();
        let [Seen::Event(ClientEvent::Refused(r))] = &seen[..] else {
            panic!("{seen:?}");
        };
        assert_eq!(r.code.as_str(), "brand_new");
        assert_eq!(r.error_code(), None);
        assert!(r.message.ends_with("...") && r.message.len() <= MESSAGE_CAP);
        // A refusal mid-listing ends the listing.
        let mut s = started("ls");
        let mut wire = raw(
            r#"{"op":"entry","name":"a","kind":"file","size":1,"mtime":0}"#,
            b"",
        );
        wire.extend(error_frame("storage_error"));
        let seen = feed(&mut s, &wire, 3).unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[1], refusal("storage_error", "no \"way\""));
        // An error frame between operations (the server's idle timeout) is reported too.
        let mut s = Session::new();
        let seen = feed(&mut s, &error_frame("idle_timeout"), 2).unwrap();
        assert_eq!(seen, [refusal("idle_timeout", "no \"way\"")]);
        let frame = ServerRefusal {
            code: text("busy"),
            message: text("retry"),
        };
        assert_eq!(frame.error_code(), Some(ErrorCode::Busy));
        assert_eq!(frame.to_string(), "server refused (busy): retry");
    }

    #[test]
    fn a_reply_that_does_not_fit_the_request_is_an_error_and_poisons() {
        let wrong = [
            ("stat", r#"{"op":"deleted"}"#, "`stat`"),
            ("delete", r#"{"op":"stat","exists":false}"#, "`deleted`"),
            ("ls", r#"{"op":"stored"}"#, "`entry` or `end`"),
            ("get", r#"{"op":"done"}"#, "`file`"),
            ("put", r#"{"op":"end","count":0}"#, "`stored`"),
            ("put-resume", r#"{"op":"deleted"}"#, "`stat`"),
            (
                "put-body",
                r#"{"op":"stored"}"#,
                "nothing but an `error` before the upload is sent",
            ),
        ];
        for chunk in CHUNKINGS {
            for (op, json, expected) in wrong {
                let mut s = started(op);
                let err = feed(&mut s, &raw(json, b""), chunk).unwrap_err();
                let FileProtocolError::UnexpectedReply { expected: e, .. } = err else {
                    panic!("{op}: {err:?}");
                };
                assert_eq!(e, expected);
                assert!(s.is_poisoned());
                assert_eq!(s.handle_input(NOW, b""), Err(FileProtocolError::Poisoned));
                assert_eq!(s.stat("a", opts()), Err(FileProtocolError::Poisoned));
            }
        }
        // Nothing is in flight: a reply is unexpected.
        let mut s = Session::new();
        let err = feed(&mut s, &raw(r#"{"op":"deleted"}"#, b""), 1).unwrap_err();
        assert!(err.to_string().contains("no request is in flight"), "{err}");
    }

    #[test]
    fn replies_with_unexpected_bodies_are_errors() {
        for (op, json) in [
            ("stat", r#"{"op":"stat","exists":false,"total_size":2}"#),
            ("delete", r#"{"op":"deleted","total_size":2}"#),
            ("ls", r#"{"op":"end","count":0,"total_size":2}"#),
            (
                "ls",
                r#"{"op":"entry","name":"a","kind":"file","size":1,"mtime":0,"total_size":2}"#,
            ),
            (
                "stat",
                r#"{"op":"error","code":"busy","message":"m","total_size":2}"#,
            ),
            ("put", r#"{"op":"stored","file_xxh3":"00","total_size":2}"#),
        ] {
            for chunk in CHUNKINGS {
                let mut s = started(op);
                let err = feed(&mut s, &raw(json, b"xy"), chunk).unwrap_err();
                assert!(
                    matches!(err, FileProtocolError::UnexpectedBody { len: 2, .. }),
                    "{op} {json}: {err:?}"
                );
                assert!(err.to_string().contains("body of 2 bytes"));
            }
        }
        // A download trailer with a body, after the file.
        let mut s = started("get");
        let mut wire = raw(r#"{"op":"file","size":0,"offset":0,"mtime":0}"#, b"");
        wire.extend(raw(r#"{"op":"done","total_size":1}"#, b"z"));
        let err = feed(&mut s, &wire, 1).unwrap_err();
        assert!(matches!(
            err,
            FileProtocolError::UnexpectedBody {
                op: FileOp::Done,
                ..
            }
        ));
    }

    #[test]
    fn digests_missing_or_different_are_errors() {
        let data = b"abc";
        let good = hex(Algorithm::Xxh3, data);
        let bad = hex(Algorithm::Xxh3, b"abd");
        let put_cases = [
            (r#"{"op":"stored","size":3}"#.to_string(), "missing"),
            (
                format!(r#"{{"op":"stored","file_md5":"{good}","size":3}}"#),
                "missing",
            ),
            (
                r#"{"op":"stored","file_xxh3":"zz","size":3}"#.to_string(),
                "missing",
            ),
            (
                format!(r#"{{"op":"stored","file_xxh3":"{bad}","size":3}}"#),
                "mismatch",
            ),
            (
                format!(r#"{{"op":"stored","file_xxh3":"{good}","size":4}}"#),
                "size",
            ),
        ];
        for (json, kind) in &put_cases {
            let mut s = started("put");
            let err = feed(&mut s, &raw(json, b""), 5).unwrap_err();
            match *kind {
                "missing" => assert!(matches!(err, FileProtocolError::MissingDigest { .. })),
                "mismatch" => {
                    assert!(matches!(
                        err,
                        FileProtocolError::DigestMismatch {
                            op: FileOp::Stored,
                            ..
                        }
                    ));
                    assert_eq!(
                        err.to_string(),
                        "the server stored a file with another digest"
                    );
                }
                _ => assert_eq!(err, FileProtocolError::SizeMismatch { stored: 4, sent: 3 }),
            }
        }
        // A `stored` without a size is fine.
        let mut s = started("put");
        let json = format!(r#"{{"op":"stored","file_xxh3":"{good}"}}"#);
        assert!(feed(&mut s, &raw(&json, b""), 5).is_ok());

        // Downloads: the trailer against what came, local prefix included.
        for (have, prefix, trailer, ok) in [
            (
                0usize,
                &b""[..],
                format!(r#"{{"op":"done","file_xxh3":"{bad}"}}"#),
                false,
            ),
            (0, &b""[..], r#"{"op":"done"}"#.to_string(), false),
            (
                1,
                &b"x"[..],
                format!(r#"{{"op":"done","file_xxh3":"{good}"}}"#),
                false,
            ),
            (
                1,
                &b"a"[..],
                format!(r#"{{"op":"done","file_xxh3":"{good}"}}"#),
                true,
            ),
        ] {
            let mut s = Session::new();
            s.get("f", opts(), have as u64).unwrap();
            sent(&mut s, b"");
            serve_local(&mut s, prefix, 1);
            let mut wire = raw(
                &format!(
                    r#"{{"op":"file","size":3,"offset":{have},"mtime":0,"total_size":{}}}"#,
                    3 - have
                ),
                &data[have..],
            );
            wire.extend(raw(&trailer, b""));
            let got = feed(&mut s, &wire, 2);
            assert_eq!(got.is_ok(), ok, "{trailer}: {got:?}");
            if let Err(err) = got {
                assert!(matches!(
                    err,
                    FileProtocolError::DigestMismatch {
                        op: FileOp::Done,
                        ..
                    } | FileProtocolError::MissingDigest {
                        op: FileOp::Done,
                        ..
                    }
                ));
            }
        }
    }

    #[test]
    fn malformed_and_inconsistent_replies_are_errors() {
        type Check = fn(&FileProtocolError) -> bool;
        let cases: [(&str, Vec<u8>, Check); 9] = [
            ("stat", raw(r#"{"exists":true}"#, b""), |e| {
                matches!(e, FileProtocolError::MalformedReply { op: None, .. })
            }),
            ("stat", raw(r#"{"op":"rm"}"#, b""), |e| {
                matches!(e, FileProtocolError::MalformedReply { op: None, .. })
            }),
            ("stat", raw(r#"{"op":"stat","exists":"yes"}"#, b""), |e| {
                matches!(
                    e,
                    FileProtocolError::MalformedReply {
                        op: Some(FileOp::Stat),
                        ..
                    }
                )
            }),
            ("stat", raw(r#"{"op":"error","code":"busy"}"#, b""), |e| {
                matches!(
                    e,
                    FileProtocolError::MalformedReply {
                        op: Some(FileOp::Error),
                        ..
                    }
                )
            }),
            ("stat", vec![0xff, 0xff, 0xff, 0xff], |e| {
                matches!(
                    e,
                    FileProtocolError::Framing(DecodeError::NegativeLength { .. })
                )
            }),
            ("ls", raw(r#"{"op":"end","count":1}"#, b""), |e| {
                *e == FileProtocolError::CountMismatch {
                    announced: 1,
                    listed: 0,
                }
            }),
            (
                "get",
                raw(
                    r#"{"op":"file","size":5,"offset":1,"mtime":0,"total_size":4}"#,
                    b"abcd",
                ),
                |e| {
                    matches!(
                        e,
                        FileProtocolError::FileHeadMismatch {
                            asked: 0,
                            offset: 1,
                            ..
                        }
                    )
                },
            ),
            (
                "get",
                raw(
                    r#"{"op":"file","size":5,"offset":0,"mtime":0,"total_size":4}"#,
                    b"abcd",
                ),
                |e| {
                    matches!(
                        e,
                        FileProtocolError::FileHeadMismatch {
                            size: 5,
                            body_len: 4,
                            ..
                        }
                    )
                },
            ),
            (
                "stat",
                raw(
                    r#"{"op":"stat","exists":true,"kind":"a-kind-far-longer-than-thirty-two-bytes"}"#,
                    b"",
                ),
                |e| {
                    *e == FileProtocolError::MemberTooLong {
                        op: FileOp::Stat,
                        member: "kind",
                    }
                },
            ),
        ];
        for (op, wire, check) in cases {
            for chunk in CHUNKINGS {
                let mut s = started(op);
                let err = feed(&mut s, &wire, chunk).unwrap_err();
                assert!(check(&err), "{op}: {err:?}");
                assert!(!err.to_string().is_empty());
                assert!(s.is_poisoned());
            }
        }
        // A too-long entry name.
        let mut s = started("ls");
        let json = format!(
            r#"{{"op":"entry","name":"{}","kind":"file","size":1,"mtime":0}}"#,
            "n".repeat(NAME_CAP + 1)
        );
        let mut big = FileClientSession::<4096, 1024>::new();
        big.list("", opts()).unwrap();
        let mut out = [0u8; 256];
        while big.poll_transmit(&mut out).is_some() {}
        let err = big.handle_input(NOW, &raw(&json, b"")).unwrap_err();
        assert_eq!(
            err,
            FileProtocolError::MemberTooLong {
                op: FileOp::Entry,
                member: "name"
            }
        );
        // A header beyond the decoder's capacity.
        let err = feed(&mut s, &raw(&json, b""), 64).unwrap_err();
        assert!(matches!(
            err,
            FileProtocolError::Framing(DecodeError::HeaderTooLarge { .. })
        ));
    }

    #[test]
    fn the_server_closing_early_is_an_error() {
        for op in OPS {
            let mut s = started(op);
            assert_eq!(s.handle_eof(), Err(FileProtocolError::Closed), "{op}");
            assert!(s.is_poisoned());
        }
        let mut s = started("get");
        let wire = raw(
            r#"{"op":"file","size":5,"offset":0,"mtime":0,"total_size":5}"#,
            b"ab",
        );
        feed(&mut s, &wire, 64).unwrap();
        assert_eq!(
            s.handle_eof(),
            Err(FileProtocolError::Truncated { needed: 3 })
        );
        let mut s = Session::new();
        assert_eq!(s.handle_eof(), Ok(None));
        // A seed upload cut short by the server.
        let mut s = Session::new();
        s.seed_put("", "x", 5).unwrap();
        assert_eq!(s.handle_eof(), Err(FileProtocolError::Closed));
    }

    #[test]
    fn host_mistakes_leave_the_session_unchanged() {
        let mut s = Session::new();
        s.stat("a", opts()).unwrap();
        // Not drained yet; and an operation is in flight.
        assert_eq!(s.delete("a", opts()), Err(FileProtocolError::InFlight));
        assert_eq!(
            s.handle_local_data(b"x"),
            Err(FileProtocolError::Session(SessionError::OutOfOrder))
        );
        assert!(!s.is_poisoned());
        let mut s = Session::new();
        s.put("a", 4, opts(), false).unwrap();
        sent(&mut s, b"");
        assert_eq!(
            s.handle_local_data(b"12345"),
            Err(FileProtocolError::Session(SessionError::OutOfOrder))
        );
        s.handle_local_data(b"").unwrap();
        s.handle_local_data(b"12").unwrap();
        // The announced body has not been taken yet.
        assert_eq!(
            s.handle_local_data(b"34"),
            Err(FileProtocolError::Session(SessionError::OutboxFull))
        );
        assert_eq!(sent(&mut s, b"12"), b"12");
        s.handle_local_data(b"34").unwrap();
        // A request too long for the outbox.
        let mut small = FileClientSession::<1024, 256>::new();
        let long = "p".repeat(300);
        assert!(matches!(
            small.stat(&long, opts()),
            Err(FileProtocolError::RequestTooLarge(_))
        ));
        assert!(matches!(
            small.put(&long, 1, opts(), true),
            Err(FileProtocolError::RequestTooLarge(_))
        ));
        assert!(small.is_idle());
        let e = FileProtocolError::Session(SessionError::OutboxFull);
        assert!(e.to_string().contains("poll_transmit"));
    }

    /// Every state takes arbitrary bytes without panicking.
    #[test]
    fn no_input_makes_the_session_panic() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let templates = [
            raw(r#"{"op":"stat","exists":true,"kind":"file","size":1}"#, b""),
            raw(
                r#"{"op":"file","size":3,"offset":0,"mtime":0,"total_size":3}"#,
                b"abc",
            ),
            raw(
                r#"{"op":"entry","name":"a","kind":"file","size":1,"mtime":0}"#,
                b"",
            ),
            error_frame("busy"),
        ];
        for round in 0..3000 {
            let op = OPS[round % OPS.len()];
            let mut s = started(op);
            let mut wire = templates[(next() % 4) as usize].clone();
            for _ in 0..(next() % 4) {
                let i = (next() as usize) % wire.len();
                wire[i] = next() as u8;
            }
            if next() % 3 == 0 {
                let len = (next() % 64) as usize;
                wire = (0..len).map(|_| next() as u8).collect();
            }
            let chunk = CHUNKINGS[(next() % 6) as usize];
            let _ = feed(&mut s, &wire, chunk);
            let _ = s.handle_eof();
            let _ = s.poll_action();
            let _ = sent(&mut s, b"");
        }
    }

    #[test]
    fn a_silent_server_times_the_client_out_but_the_hosts_own_work_does_not_count() {
        let ms = Instant::from_millis;
        let mut s = FileClientSession::<1024, 1024>::new();
        assert_eq!(s.poll_timeout(ms(0)), None, "nothing is due while idle");
        s.stat("a", RequestOptions::default()).unwrap();
        assert_eq!(s.poll_timeout(ms(0)), None, "the request is not sent yet");
        let mut out = [0u8; 1024];
        while s.poll_transmit(&mut out).is_some() {}
        assert_eq!(s.poll_timeout(ms(1_000)), Some(ms(61_000)));
        s.handle_input(ms(30_000), b"\x05").unwrap();
        assert_eq!(s.poll_timeout(ms(30_000)), Some(ms(90_000)));
        assert_eq!(s.handle_timeout(ms(89_999)), Ok(()));
        assert_eq!(
            s.handle_timeout(ms(90_000)),
            Err(FileProtocolError::TimedOut {
                limit: REPLY_TIMEOUT
            })
        );
        assert!(s.is_poisoned());
        // An upload's body is the host's work: no reply is due while it reads and sends.
        let mut s =
            FileClientSession::<1024, 1024>::new().with_reply_timeout(Some(Duration::from_secs(5)));
        s.put("f", 10, RequestOptions::default(), false).unwrap();
        while s.poll_transmit(&mut out).is_some() {}
        assert!(s.poll_action().is_some());
        assert_eq!(s.poll_timeout(ms(0)), None);
        s.handle_local_data(&[0u8; 10]).unwrap();
        while s.poll_transmit(&mut out).is_some() {}
        assert_eq!(s.poll_timeout(ms(100_000)), Some(ms(105_000)));
        let mut patient = FileClientSession::<1024, 1024>::new().with_reply_timeout(None);
        patient.stat("a", RequestOptions::default()).unwrap();
        while patient.poll_transmit(&mut out).is_some() {}
        assert_eq!(patient.poll_timeout(ms(0)), None);
    }

    #[test]
    fn each_operation_times_its_own_reply_whatever_came_before() {
        let ms = Instant::from_millis;
        let mut s = FileClientSession::<1024, 1024>::new();
        let mut out = [0u8; 1024];
        s.stat("a", RequestOptions::default()).unwrap();
        while s.poll_transmit(&mut out).is_some() {}
        assert_eq!(s.poll_timeout(ms(0)), Some(ms(60_000)));
        let reply: StatReply<&str> = StatReply {
            op: FileOp::Stat,
            exists: false,
            kind: None,
            size: None,
            mtime: None,
            mode: None,
            partial_size: 0,
        };
        let mut wire = [0u8; 256];
        let n = PLAIN_ENCODER.encode_frame(&reply, b"", &mut wire).unwrap();
        let (_, event) = s.handle_input(ms(10), &wire[..n]).unwrap();
        assert!(matches!(event, Some(ClientEvent::Stat(_))));
        // No poll_timeout in between (a host need not ask while it has no reply to wait for):
        // an upload started five minutes later, 10 bytes, sent over two minutes.
        s.put("f", 10, RequestOptions::default(), false).unwrap();
        while s.poll_transmit(&mut out).is_some() {}
        s.handle_local_data(&[0u8; 5]).unwrap();
        while s.poll_transmit(&mut out).is_some() {}
        s.handle_local_data(&[0u8; 5]).unwrap();
        while s.poll_transmit(&mut out).is_some() {}
        // The wait for `stored` starts when the host next asks, not at the stat's reply.
        assert_eq!(s.poll_timeout(ms(420_000)), Some(ms(480_000)));
        assert_eq!(s.handle_timeout(ms(420_001)), Ok(()));
    }
}
