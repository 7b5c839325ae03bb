//! `info`: every endpoint says what it is (docs/PROTOCOL.md, "Info").
//!
//! A client sends `{"op":"info","total_size":0}` and gets one reply frame,
//! `{"op":"info","protocols":[...],"version":1,...}`, saying which protocols the endpoint
//! serves, its protocol version, its limits, the digests it computes and its platform or board.
//! The request is the same on both protocols (they share the header-frame framing), so a shell
//! server answers it as a file server does, and a device that serves both answers it once. It
//! needs no token: the reply holds nothing secret (no path of the server's disk, no token).
//!
//! [`EndpointInfo`] is the reply, one type to send and to receive (strings borrowed, nothing
//! allocated). The server sessions answer with their own limits, completed by what the host
//! gives them ([`ShellServerSession::with_info`](crate::shell::ShellServerSession::with_info),
//! [`FileServerSession::with_info`](crate::files::FileServerSession::with_info));
//! [`InfoClientSession`] reads the reply.

// A refusal travels inline (there is no allocator to box it into), once per request at most.
#![allow(clippy::result_large_err, clippy::large_enum_variant)]

use core::fmt;
use core::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use crate::files::client::REPLY_TIMEOUT;
use crate::files::client::{Clipped, ServerRefusal};
use crate::session::{BoundedText, MESSAGE_CAP, Outbox, PeerText, ReplyTimer, Session, Transmit};
use crate::time::Instant;
use crate::{
    Algorithm, Algorithms, DecodeError, EncodeError, ErrorFrame, Event, FrameDecoder, HeaderError,
    OP_ERROR, PLAIN_ENCODER, Profile,
};

/// The `"op"` of an info request and of its reply, on both protocols.
pub const OP_INFO: &str = "info";

/// The version of the protocols this build speaks, as an info reply gives it. Version 1 is the
/// first that answers `info`; a later one adds to it without changing what version 1 means.
pub const PROTOCOL_VERSION: u32 = 1;

/// The wire name of the remote shell protocol in [`Protocols`].
pub const SHELL: &str = "shell";

/// The wire name of the file protocol in [`Protocols`].
pub const FILE: &str = "file";

/// The protocols an endpoint serves; on the wire, a list of names (`["shell","file"]`), in
/// which names this build does not know are skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Protocols {
    /// The remote shell (`"shell"`).
    pub shell: bool,
    /// The file protocol (`"file"`).
    pub file: bool,
}

impl Protocols {
    /// The remote shell only.
    pub const SHELL: Protocols = Protocols {
        shell: true,
        file: false,
    };
    /// The file protocol only.
    pub const FILE: Protocols = Protocols {
        shell: false,
        file: true,
    };
    /// Both protocols.
    pub const BOTH: Protocols = Protocols {
        shell: true,
        file: true,
    };

    /// The protocols of either set.
    pub const fn union(self, other: Protocols) -> Protocols {
        Protocols {
            shell: self.shell || other.shell,
            file: self.file || other.file,
        }
    }

    /// The wire names of the protocols in the set, in a fixed order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        [(self.shell, SHELL), (self.file, FILE)]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
    }
}

impl Serialize for Protocols {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut list = serializer.serialize_seq(None)?;
        for name in self.names() {
            list.serialize_element(name)?;
        }
        list.end()
    }
}

impl<'de> Deserialize<'de> for Protocols {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut protocols = Protocols::default();
        deserializer.deserialize_seq(NameList(|name: &str| match name {
            SHELL => protocols.shell = true,
            FILE => protocols.file = true,
            _ => {}
        }))?;
        Ok(protocols)
    }
}

/// Reads a JSON list of names, handing each to the closure (longer names than any this build
/// knows are skipped unseen).
struct NameList<F>(F);

impl<'de, F: FnMut(&str)> Visitor<'de> for NameList<F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of names")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        while let Some(name) = seq.next_element::<BoundedText<16>>()? {
            if let Some(name) = name.get() {
                (self.0)(name);
            }
        }
        Ok(())
    }
}

/// `digests` on the wire: the algorithms' member names (`["xxh3","md5"]`).
mod digest_list {
    use super::*;

    pub fn serialize<S: Serializer>(
        digests: &Algorithms,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut list = serializer.serialize_seq(None)?;
        for (on, algorithm) in [
            (digests.xxh3, Algorithm::Xxh3),
            (digests.md5, Algorithm::Md5),
        ] {
            if on {
                list.serialize_element(algorithm.member())?;
            }
        }
        list.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Algorithms, D::Error> {
        let mut digests = Algorithms::NONE;
        deserializer.deserialize_seq(NameList(|name: &str| {
            if name == Algorithm::Xxh3.member() {
                digests.xxh3 = true;
            } else if name == Algorithm::Md5.member() {
                digests.md5 = true;
            }
        }))?;
        Ok(digests)
    }
}

/// The `"op"` member of an info reply: always `"info"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct InfoTag;

impl Serialize for InfoTag {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(OP_INFO)
    }
}

impl<'de> Deserialize<'de> for InfoTag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let op = BoundedText::<16>::deserialize(deserializer)?;
        match op.get() {
            Some(OP_INFO) => Ok(InfoTag),
            _ => Err(de::Error::custom("not an info reply")),
        }
    }
}

/// The digests this build computes.
pub const fn supported_digests() -> Algorithms {
    Algorithms {
        md5: Algorithm::Md5.is_supported(),
        xxh3: Algorithm::Xxh3.is_supported(),
    }
}

/// What an endpoint is: the reply to an info request, one type to send and to receive.
///
/// ```text
/// {"op":"info","protocols":["file"],"version":1,"max_header":8192,"max_path":4096,
///  "max_file_size":1099511627776,"free_space":52428800,"digests":["xxh3","md5"],
///  "platform":"linux-x86_64","total_size":0}
/// ```
///
/// Every limit is `None` where the endpoint does not say (an older or smaller one, or a fact
/// it does not know, such as the free space of a disk it cannot measure); `None` members are
/// left out on the wire, and members this build does not know are ignored. Strings are
/// borrowed: a received one with an escape left in it (`\"`, `\\`, a control character) fails
/// the reply, which no endpoint has a reason to send. Show them as [`PeerText`] only: a
/// hostile endpoint chooses their bytes.
///
/// [`PeerText`]: crate::session::PeerText
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EndpointInfo<'a> {
    op: InfoTag,
    /// The protocols served.
    pub protocols: Protocols,
    /// The protocol version ([`PROTOCOL_VERSION`] for this build).
    pub version: u32,
    /// Longest request header taken, in bytes (the JSON, without the length prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_header: Option<u64>,
    /// Longest command run, in bytes (a shell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_command: Option<u64>,
    /// Longest path taken, in bytes (a file server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_path: Option<u64>,
    /// Largest file stored, in bytes (a file server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file_size: Option<u64>,
    /// Bytes free for files now, where the endpoint knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_space: Option<u64>,
    /// The body digests the endpoint computes and checks.
    #[serde(with = "digest_list", default)]
    pub digests: Algorithms,
    /// The operating system and processor (`linux-x86_64`), or the firmware's target.
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    pub platform: Option<&'a str>,
    /// The board a firmware runs on (`mps2-an386`).
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    pub board: Option<&'a str>,
    /// Whether the shell server runs a command on a pseudo-terminal when asked (`"pty"`);
    /// `None` from an endpoint that predates them (it has none) or serves no shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pty: Option<bool>,
}

impl<'a> EndpointInfo<'a> {
    /// An endpoint serving `protocols` at [`PROTOCOL_VERSION`], computing the digests this
    /// build supports, with every other member unknown.
    pub const fn new(protocols: Protocols) -> Self {
        EndpointInfo {
            op: InfoTag,
            protocols,
            version: PROTOCOL_VERSION,
            max_header: None,
            max_command: None,
            max_path: None,
            max_file_size: None,
            free_space: None,
            digests: supported_digests(),
            platform: None,
            board: None,
            pty: None,
        }
    }

    /// The same facts without the strings (`platform` and `board` unknown), for a host that
    /// keeps them after the reply's bytes are gone (and the strings as its own copies).
    pub fn without_text(self) -> EndpointInfo<'static> {
        EndpointInfo {
            op: InfoTag,
            protocols: self.protocols,
            version: self.version,
            max_header: self.max_header,
            max_command: self.max_command,
            max_path: self.max_path,
            max_file_size: self.max_file_size,
            free_space: self.free_space,
            digests: self.digests,
            platform: None,
            board: None,
            pty: self.pty,
        }
    }

    /// These facts, each member left unknown here taken from `known`, and `known`'s protocols
    /// added: what a session answers when its host knows some members better (a device's
    /// shorter names, the free space) and the session the rest (its header capacity).
    pub fn completed_by(self, known: &EndpointInfo<'a>) -> Self {
        EndpointInfo {
            op: InfoTag,
            protocols: self.protocols.union(known.protocols),
            version: self.version,
            max_header: self.max_header.or(known.max_header),
            max_command: self.max_command.or(known.max_command),
            max_path: self.max_path.or(known.max_path),
            max_file_size: self.max_file_size.or(known.max_file_size),
            free_space: self.free_space.or(known.free_space),
            digests: self.digests,
            platform: self.platform.or(known.platform),
            board: self.board.or(known.board),
            pty: self.pty.or(known.pty),
        }
    }
}

/// The header of an info request.
#[derive(Serialize)]
struct InfoRequest {
    op: &'static str,
}

/// Writes an info request, `{"op":"info","total_size":0}` in a header frame, into `out` and
/// returns its length (32 bytes).
pub fn encode_request(out: &mut [u8]) -> Result<usize, EncodeError> {
    PLAIN_ENCODER.encode_frame(&InfoRequest { op: OP_INFO }, b"", out)
}

/// Why an info request got no [`EndpointInfo`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InfoError {
    /// The reply broke the framing.
    Framing(DecodeError),
    /// The server refused the request: a server that predates `info` answers `unknown_op`
    /// (a shell) or `bad_request` (a file server).
    Refused(ServerRefusal),
    /// The reply is neither an info reply nor an error frame (its op, as sent, cut to 16
    /// bytes), or an info reply with a body.
    UnexpectedReply(heapless::String<16>),
    /// The info reply's header does not fit [`EndpointInfo`].
    Malformed(HeaderError),
    /// The connection ended before the whole reply was in.
    Closed,
    /// The server sent nothing for the session's reply timeout.
    TimedOut {
        /// The reply timeout.
        limit: Duration,
    },
}

impl fmt::Display for InfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InfoError::Framing(e) => write!(f, "the reply to info is not a frame: {e}"),
            InfoError::Refused(refusal) => write!(
                f,
                "the server refused info ({}): {}; it may predate it",
                PeerText::new(&refusal.code),
                PeerText::new(&refusal.message)
            ),
            InfoError::UnexpectedReply(op) => write!(
                f,
                "the server answered info with {:?}, not an info reply",
                PeerText::new(op)
            ),
            InfoError::Malformed(e) => write!(f, "the server's info reply is malformed: {e}"),
            InfoError::Closed => {
                f.write_str("the server closed the connection before its info reply")
            }
            InfoError::TimedOut { limit } => write!(
                f,
                "the server did not answer the info request within {} s",
                limit.as_secs_f32()
            ),
        }
    }
}

impl core::error::Error for InfoError {}

/// What the reply read so far is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Reply {
    /// No head yet.
    Waiting,
    /// An info reply's head; its frame has not ended yet.
    Info,
    /// An error frame's head.
    Refused(ServerRefusal),
    /// The info reply's frame has ended.
    Answered,
}

/// The client side of one info request, sans-IO, with the contract of every session
/// ([`Session`]): send what [`poll_transmit`](Self::poll_transmit) hands out (the request that
/// [`encode_request`] writes), then feed the reply's bytes to
/// [`handle_input`](Self::handle_input) until it says the reply is in, and read it with
/// [`reply`](Self::reply). It takes no byte past the reply, so a connection goes on with other
/// requests after it. A server silent for the reply timeout ([`REPLY_TIMEOUT`] unless set) is
/// [`InfoError::TimedOut`] from [`handle_timeout`](Self::handle_timeout).
///
/// ```
/// use unstick_core::info::{EndpointInfo, InfoClientSession, Protocols, encode_request};
/// use unstick_core::PLAIN_ENCODER;
///
/// let mut request = [0u8; 64];
/// let n = encode_request(&mut request).unwrap();
/// assert_eq!(&request[4..n], br#"{"op":"info","total_size":0}"#);
///
/// let mut sent = EndpointInfo::new(Protocols::SHELL);
/// sent.max_command = Some(131_071);
/// let mut wire = [0u8; 256];
/// let len = PLAIN_ENCODER.encode_frame(&sent, b"", &mut wire).unwrap();
///
/// let mut client = InfoClientSession::<1024>::new();
/// let now = unstick_core::time::Instant::ZERO;
/// let (used, done) = client.handle_input(now, &wire[..len]).unwrap();
/// assert!(done && used == len);
/// let info = client.reply().unwrap();
/// assert!(info.protocols.shell && !info.protocols.file);
/// assert_eq!(info.max_command, Some(131_071));
/// ```
#[derive(Debug)]
pub struct InfoClientSession<const CAP: usize = 1024> {
    decoder: FrameDecoder<CAP>,
    reply: Reply,
    /// The request, until sent.
    outbox: Outbox<REQUEST_LEN>,
    /// How long the server may stay silent before its reply is in.
    timer: ReplyTimer,
}

/// The length of an info request.
const REQUEST_LEN: usize = 32;

/// The reply to an info request is in: read it with [`InfoClientSession::reply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replied;

impl<const CAP: usize> Default for InfoClientSession<CAP> {
    fn default() -> Self {
        InfoClientSession::new()
    }
}

impl<const CAP: usize> InfoClientSession<CAP> {
    /// A session with an info request to send.
    pub fn new() -> Self {
        let mut outbox = Outbox::new();
        // An empty outbox of REQUEST_LEN bytes holds the request.
        let _ = outbox.push_frame(&PLAIN_ENCODER, &InfoRequest { op: OP_INFO });
        let mut timer = ReplyTimer::new(Some(REPLY_TIMEOUT));
        timer.begin();
        InfoClientSession {
            decoder: FrameDecoder::header_frames(Profile::I32_LE),
            reply: Reply::Waiting,
            outbox,
            timer,
        }
    }

    /// This session, giving up once the server has sent nothing for `limit` (`None`: waits
    /// forever).
    pub fn with_reply_timeout(mut self, limit: Option<Duration>) -> Self {
        self.timer.set_limit(limit);
        self
    }

    /// The request's bytes, once: see [`Outbox::poll_transmit`].
    pub fn poll_transmit(&mut self, out: &mut [u8]) -> Option<Transmit> {
        self.outbox.poll_transmit(out)
    }

    /// When the session next needs [`handle_timeout`](Self::handle_timeout): the end of the
    /// reply timeout once the request is out and until the reply is in.
    pub fn poll_timeout(&mut self, now: Instant) -> Option<Instant> {
        if self.reply == Reply::Answered || !self.outbox.is_empty() {
            return None;
        }
        self.timer.deadline(now)
    }

    /// Time has come to `now`: a server silent for the reply timeout is
    /// [`InfoError::TimedOut`].
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), InfoError> {
        match self.timer.limit() {
            Some(limit) if self.poll_timeout(now).is_some_and(|at| at <= now) => {
                Err(InfoError::TimedOut { limit })
            }
            _ => Ok(()),
        }
    }

    /// The server closed the connection: [`InfoError::Closed`] unless the reply was in.
    pub fn handle_eof(&mut self) -> Result<(), InfoError> {
        match self.reply {
            Reply::Answered => Ok(()),
            _ => Err(InfoError::Closed),
        }
    }

    /// Takes reply bytes received at `now`; returns how many it consumed and whether the reply
    /// is in (then [`reply`](Self::reply) has it). A refusal and a reply that breaks the rules
    /// are errors.
    pub fn handle_input(&mut self, now: Instant, input: &[u8]) -> Result<(usize, bool), InfoError> {
        if !input.is_empty() {
            self.timer.heard(now);
        }
        let mut used = 0;
        loop {
            if self.reply == Reply::Answered {
                return Ok((used, true));
            }
            let (n, event) = self
                .decoder
                .feed(&input[used..])
                .map_err(InfoError::Framing)?;
            used += n;
            match event {
                Event::NeedMore => return Ok((used, false)),
                Event::Head(head) => self.on_head(head.body_len)?,
                // Neither an info reply nor an error frame has a body.
                Event::Body(_) => {}
                Event::End(_) => match core::mem::replace(&mut self.reply, Reply::Answered) {
                    Reply::Refused(refusal) => return Err(InfoError::Refused(refusal)),
                    _ => return Ok((used, true)),
                },
            }
        }
    }

    /// The reply, once [`handle_input`](Self::handle_input) said it is in; before, or when the
    /// header does not fit, [`InfoError::Malformed`].
    pub fn reply(&mut self) -> Result<EndpointInfo<'_>, InfoError> {
        if self.reply != Reply::Answered {
            return Err(InfoError::Malformed(HeaderError::NoHeader));
        }
        self.decoder.header().map_err(InfoError::Malformed)
    }

    fn on_head(&mut self, body_len: u64) -> Result<(), InfoError> {
        #[derive(Deserialize)]
        struct Op {
            op: BoundedText<16>,
        }
        let op = self
            .decoder
            .header::<Op>()
            .map_err(InfoError::Malformed)?
            .op;
        let op = op.get().unwrap_or("(too long)");
        if op == OP_INFO && body_len == 0 {
            self.reply = Reply::Info;
        } else if op == OP_ERROR {
            let frame: ErrorFrame<Clipped<MESSAGE_CAP>> =
                self.decoder.header().map_err(InfoError::Malformed)?;
            self.reply = Reply::Refused(ServerRefusal::from_frame(frame));
        } else {
            let mut kept = heapless::String::new();
            let _ = kept.push_str(op);
            return Err(InfoError::UnexpectedReply(kept));
        }
        Ok(())
    }
}

impl<const CAP: usize> Session for InfoClientSession<CAP> {
    type Received<'i> = Replied;
    type Error = InfoError;
    type Action<'s>
        = core::convert::Infallible
    where
        Self: 's;
    type Event = core::convert::Infallible;

    fn handle_input(
        &mut self,
        now: Instant,
        input: &[u8],
    ) -> Result<(usize, Option<Replied>), InfoError> {
        InfoClientSession::handle_input(self, now, input)
            .map(|(used, done)| (used, done.then_some(Replied)))
    }

    fn handle_eof(&mut self) -> Result<Option<Replied>, InfoError> {
        InfoClientSession::handle_eof(self).map(|()| None)
    }

    fn poll_timeout(&mut self, now: Instant) -> Option<Instant> {
        InfoClientSession::poll_timeout(self, now)
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), InfoError> {
        InfoClientSession::handle_timeout(self, now)
    }

    fn poll_transmit(&mut self, out: &mut [u8]) -> Option<Transmit> {
        InfoClientSession::poll_transmit(self, out)
    }

    fn poll_action(&self) -> Option<core::convert::Infallible> {
        None
    }

    fn poll_event(&mut self) -> Option<core::convert::Infallible> {
        None
    }

    fn is_idle(&self) -> bool {
        self.reply == Reply::Answered
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    const NOW: Instant = Instant::ZERO;
    use std::vec::Vec;

    fn frame(header: &str) -> Vec<u8> {
        let mut frame = (header.len() as i32).to_le_bytes().to_vec();
        frame.extend_from_slice(header.as_bytes());
        frame
    }

    #[test]
    fn the_request_and_a_full_reply_have_golden_bytes() {
        let mut out = [0u8; 512];
        let n = encode_request(&mut out).unwrap();
        assert_eq!(
            &out[..n],
            b"\x1c\x00\x00\x00{\"op\":\"info\",\"total_size\":0}"
        );

        let mut info = EndpointInfo::new(Protocols::BOTH);
        info.max_header = Some(1024);
        info.max_command = Some(256);
        info.max_path = Some(64);
        info.max_file_size = Some(262_144);
        info.free_space = Some(200_000);
        info.digests = Algorithms::XXH3.union(Algorithms::MD5);
        info.platform = Some("thumbv7em-none-eabihf");
        info.board = Some("mps2-an386");
        let n = PLAIN_ENCODER.encode_frame(&info, b"", &mut out).unwrap();
        let json = r#"{"op":"info","protocols":["shell","file"],"version":1,"max_header":1024,"max_command":256,"max_path":64,"max_file_size":262144,"free_space":200000,"digests":["xxh3","md5"],"platform":"thumbv7em-none-eabihf","board":"mps2-an386","total_size":0}"#;
        assert_eq!(&out[4..n], json.as_bytes());
        assert_eq!(&out[..4], &(json.len() as i32).to_le_bytes());
    }

    #[test]
    fn a_reply_reads_back_in_any_chunking_and_leaves_what_follows() {
        let mut sent = EndpointInfo::new(Protocols::FILE);
        sent.max_path = Some(4096);
        sent.platform = Some("linux-x86_64");
        let mut wire = [0u8; 512];
        let n = PLAIN_ENCODER.encode_frame(&sent, b"", &mut wire).unwrap();
        let mut input = wire[..n].to_vec();
        input.extend_from_slice(b"next");
        for step in [1, 2, 5, 4096] {
            let mut client = InfoClientSession::<256>::new();
            let mut at = 0;
            loop {
                let end = (at + step).min(input.len());
                let (used, done) = client.handle_input(NOW, &input[at..end]).unwrap();
                at += used;
                if done {
                    break;
                }
                assert!(at < input.len(), "step {step}");
            }
            assert_eq!(at, n, "the bytes after the reply are not taken");
            assert_eq!(client.reply().unwrap(), sent, "step {step}");
        }
    }

    #[test]
    fn unknown_members_and_names_are_skipped_and_missing_limits_are_unknown() {
        let wire = frame(
            r#"{"op":"info","protocols":["telnet","file","a-name-much-too-long-to-keep"],"version":7,"digests":["sha3","md5"],"colour":"blue","total_size":0}"#,
        );
        let mut client = InfoClientSession::<512>::new();
        assert_eq!(client.handle_input(NOW, &wire).unwrap(), (wire.len(), true));
        let info = client.reply().unwrap();
        assert_eq!(info.protocols, Protocols::FILE);
        assert_eq!(info.version, 7);
        assert_eq!(info.digests, Algorithms::MD5);
        assert_eq!((info.max_path, info.platform), (None, None));
    }

    #[test]
    fn a_refusal_or_another_reply_is_an_error_not_an_answer() {
        let refusal = frame(
            r#"{"op":"error","code":"unknown_op","message":"this is the shell server","total_size":0}"#,
        );
        let mut client = InfoClientSession::<512>::new();
        match client.handle_input(NOW, &refusal) {
            Err(InfoError::Refused(r)) => {
                assert_eq!(r.code.as_str(), "unknown_op");
                assert_eq!(r.message.as_str(), "this is the shell server");
            }
            other => panic!("{other:?}"),
        }
        let table: [&[u8]; 3] = [
            &frame(r#"{"op":"stdout","total_size":0}"#),
            &frame(r#"{"op":"info","total_size":2}"#),
            &frame(r#"{"op":"info","protocols":"shell","version":1,"total_size":0}"#),
        ];
        for wire in table {
            let mut client = InfoClientSession::<512>::new();
            let outcome = client
                .handle_input(NOW, wire)
                .and_then(|_| client.reply().map(|_| ()));
            assert!(
                matches!(
                    outcome,
                    Err(InfoError::UnexpectedReply(_) | InfoError::Malformed(_))
                ),
                "{outcome:?}"
            );
        }
        let mut client = InfoClientSession::<512>::new();
        assert!(matches!(
            client.handle_input(NOW, &[0xff, 0xff, 0xff, 0xff]),
            Err(InfoError::Framing(_))
        ));
    }

    #[test]
    fn a_hosts_facts_win_and_the_session_fills_in_the_rest() {
        let mut host = EndpointInfo::new(Protocols::SHELL);
        host.max_path = Some(64);
        host.board = Some("mps2-an386");
        let mut known = EndpointInfo::new(Protocols::FILE);
        known.max_path = Some(1024);
        known.max_header = Some(1024);
        let info = host.completed_by(&known);
        assert_eq!(info.protocols, Protocols::BOTH);
        assert_eq!(
            (info.max_path, info.max_header, info.board),
            (Some(64), Some(1024), Some("mps2-an386"))
        );
    }

    #[test]
    fn the_session_sends_the_request_once_and_times_a_silent_server_out() {
        let mut client =
            InfoClientSession::<1024>::new().with_reply_timeout(Some(Duration::from_secs(2)));
        let mut expected = [0u8; 64];
        let n = encode_request(&mut expected).unwrap();
        let mut out = [0u8; 64];
        assert_eq!(
            client.poll_timeout(NOW),
            None,
            "nothing is due before the request is out"
        );
        assert_eq!(client.poll_transmit(&mut out), Some(Transmit::Bytes(n)));
        assert_eq!(&out[..n], &expected[..n]);
        assert_eq!(client.poll_transmit(&mut out), None);
        let ms = Instant::from_millis;
        assert_eq!(client.poll_timeout(ms(10)), Some(ms(2_010)));
        assert_eq!(client.handle_timeout(ms(2_009)), Ok(()));
        assert_eq!(
            client.handle_timeout(ms(2_010)),
            Err(InfoError::TimedOut {
                limit: Duration::from_secs(2)
            })
        );
        assert_eq!(client.handle_eof(), Err(InfoError::Closed));
    }
}
