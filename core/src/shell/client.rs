//! The remote shell's client side as sans-IO sessions: [`ShellClientSession`] speaks the framed
//! protocol to an unstick shell server, [`SeedClientSession`] the seed's protocol (raw command
//! out, one JSON-header frame in) to the seed's Python servers.
//!
//! A session decides everything the protocol decides: what a request looks like on the wire,
//! which reply frames are valid, which one ends a command, what a refusal says, whether a
//! seed reply's MD5 holds. Its host keeps the socket: it sends what
//! [`poll_transmit`](ShellClientSession::poll_transmit) asks for, feeds what it reads to
//! [`handle_input`](ShellClientSession::handle_input), and reports the end of the stream with
//! [`handle_eof`](ShellClientSession::handle_eof). Reconnecting is the host's business too: it
//! calls [`reset`](ShellClientSession::reset) for a new connection.

use core::fmt;
use core::time::Duration;

use serde::Deserialize;

use super::{
    EXEC_ENCODER, ExecRequest, ExitHeader, ExitReport, OpHeader, OutputStream, PtyRequest, ReplyOp,
    ResizeHeader, STDIN_ENCODER, ShellOp, WindowSize,
};
use crate::session::ReplyTimer;
use crate::session::{BoundedText, MESSAGE_CAP, Outbox, Session, SessionError, Transmit};
use crate::time::Instant;
use crate::{Algorithm, FrameEnd, Verdict};
use crate::{DecodeError, ErrorCode, Event, FrameDecoder, HeaderError, PLAIN_ENCODER, Profile};

/// Longest error code a [`RefusalCode::Unknown`] keeps, in bytes (every code this build knows
/// is far shorter).
pub const CODE_CAP: usize = 64;

/// The code of a refusal, as the server's error frame gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefusalCode {
    /// A code this build knows.
    Known(ErrorCode),
    /// A code this build does not know (a newer server's), kept as its wire string.
    Unknown(BoundedText<CODE_CAP>),
}

impl RefusalCode {
    fn from_wire(code: &BoundedText<CODE_CAP>) -> RefusalCode {
        match code.get().map(str::parse::<ErrorCode>) {
            Some(Ok(known)) => RefusalCode::Known(known),
            _ => RefusalCode::Unknown(code.clone()),
        }
    }

    /// The code's wire string; `None` for an unknown code longer than [`CODE_CAP`] bytes.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            RefusalCode::Known(code) => Some(code.as_str()),
            RefusalCode::Unknown(text) => text.get(),
        }
    }
}

impl fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            self.as_str()
                .unwrap_or("(an unknown code too long to keep)"),
        )
    }
}

/// What a [`ShellClientSession`] has read from the server: one event per
/// [`handle_input`](ShellClientSession::handle_input) call at most.
#[allow(
    clippy::large_enum_variant,
    reason = "no allocator to box a refusal with; one reply per command carries it"
)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShellReply<'i> {
    /// A chunk of the command's output, as it was produced: a slice of the input, not a copy.
    Output {
        /// Which stream it came from.
        stream: OutputStream,
        /// The bytes.
        bytes: &'i [u8],
    },
    /// The command ended; the session is idle again.
    Exit(ExitReport),
    /// The server refused the request with an error frame; the session is idle again (the
    /// server may close the connection after some refusals, see docs/PROTOCOL.md).
    Refused {
        /// Why, as the server named it.
        code: RefusalCode,
        /// The server's explanation; not kept if longer than [`MESSAGE_CAP`] bytes (an unstick
        /// server's never is).
        message: BoundedText<MESSAGE_CAP>,
    },
}

/// What a [`SeedClientSession`] has read from the seed-style server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedReply<'i> {
    /// A chunk of the reply's body (stdout and stderr together): a slice of the input.
    Output(&'i [u8]),
    /// The reply is complete; the session is idle again.
    End {
        /// The body's last chunk, a slice of the input (empty when the reply had no body or
        /// ended at an earlier chunk's end).
        last: &'i [u8],
        /// What became of the header's `"md5"`: [`Verdict::Verified`] for a real digest that
        /// matched (one that does not match is an error), [`Verdict::NotADigest`] for the
        /// seed's placeholder, [`Verdict::Absent`] without one.
        md5: Verdict,
    },
}

/// The server's bytes broke the protocol. The connection is out of step: after one of these a
/// session returns the same error from every call until [`reset`](ShellClientSession::reset),
/// and the host should drop the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShellProtocolError {
    /// The bytes are not header frames, or a body does not match its header's digest (an
    /// output frame's `xxh3`, a seed reply's `md5`; the chunks already handed out were part
    /// of it).
    Framing(DecodeError),
    /// A reply header lacks a member the protocol needs, has one of the wrong type, or names
    /// an op this build does not know.
    BadHeader(HeaderError),
    /// A request (`"op":"exec"`, `"stdin"`, `"stdin_end"`), or an `info` reply, where a
    /// command's reply was expected.
    RequestAsReply,
    /// An exit frame without exactly one of `"code"` and `"signal"`.
    ExitStatus,
    /// The server sent bytes while no command was in flight.
    Unsolicited,
    /// The server closed the connection before the command finished.
    ConnectionClosed,
    /// The server sent nothing for the session's reply timeout while a command was in flight.
    TimedOut {
        /// The reply timeout.
        limit: Duration,
    },
}

impl fmt::Display for ShellProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShellProtocolError::Framing(e) => fmt::Display::fmt(e, f),
            ShellProtocolError::BadHeader(e) => fmt::Display::fmt(e, f),
            ShellProtocolError::RequestAsReply => f.write_str(
                "a request (\"op\":\"exec\", \"stdin\" or \"stdin_end\") or an info reply where a \
                 command's reply was expected",
            ),
            ShellProtocolError::ExitStatus => {
                f.write_str("exit frame needs exactly one of \"code\" and \"signal\"")
            }
            ShellProtocolError::Unsolicited => {
                f.write_str("the server sent a reply while no command was in flight")
            }
            ShellProtocolError::ConnectionClosed => {
                f.write_str("the server closed the connection before the command finished")
            }
            ShellProtocolError::TimedOut { limit } => write!(
                f,
                "the server sent nothing for {} s while the command was in flight",
                limit.as_secs_f32()
            ),
        }
    }
}

impl core::error::Error for ShellProtocolError {}

/// Why [`ShellClientSession::exec`] did not queue a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExecError {
    /// A command is in flight (or the session failed and needs a
    /// [`reset`](ShellClientSession::reset)): [`SessionError::OutOfOrder`].
    Session(SessionError),
    /// The request's header does not fit the session's `CAP` bytes: the token is too long.
    HeadTooLarge {
        /// The session's capacity (`CAP`).
        capacity: usize,
    },
}

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExecError::Session(e) => fmt::Display::fmt(e, f),
            ExecError::HeadTooLarge { capacity } => write!(
                f,
                "the request header does not fit in {capacity} bytes: the token is too long"
            ),
        }
    }
}

impl core::error::Error for ExecError {}

impl From<SessionError> for ExecError {
    fn from(e: SessionError) -> Self {
        ExecError::Session(e)
    }
}

/// What an exec request asks for besides its command (see
/// [`ShellClientSession::exec_with`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecOptions<'a> {
    /// The directory to run the command in (the request's `"cwd"`: absolute, or relative to
    /// the server's working directory); `None`: the server's working directory.
    pub cwd: Option<&'a str>,
    /// The token to present, when the server requires one.
    pub token: Option<&'a str>,
    /// Stream the command's standard input after the request (`"stdin":true`): chunks through
    /// [`ShellClientSession::send_stdin`], its end through
    /// [`ShellClientSession::end_stdin`]. Without, the command's standard input is empty.
    pub stdin: bool,
    /// Run the command on a pseudo-terminal (`"pty"`); implies [`stdin`](Self::stdin). The
    /// terminal's new sizes go through [`ShellClientSession::send_resize`]; all its output
    /// comes as [`OutputStream::Stdout`]. An empty command is a login shell.
    pub pty: Option<PtyRequest<'a>>,
}

/// The standard input a [`ShellClientSession`] streams for the command in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stdin {
    /// Not streamed (or nothing in flight).
    Absent,
    /// Chunks are taken.
    Open,
    /// Its end is to be sent once what is queued has gone out.
    EndOwed,
    /// Its end is queued or sent.
    Ended,
}

/// Whether the server of the command in flight keeps it alive (see
/// [`ShellClientSession::with_reply_timeout`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Keepalive {
    /// None asked for (no reply timeout), or no command in flight.
    NotAsked,
    /// Asked for; the server's first frame says whether it sends them.
    Asked,
    /// The server confirmed (its first frame was `alive`): its silence is timed.
    Confirmed,
    /// The server's first frame was another (a server that predates keepalives): it is not
    /// timed any more for this command.
    Unsupported,
}

/// Where a [`ShellClientSession`] is.
#[allow(
    clippy::large_enum_variant,
    reason = "no allocator to box a refusal with; the session holds one either way"
)]
#[derive(Clone, Debug)]
enum State {
    /// No command in flight.
    Idle,
    /// A command is in flight; the next reply frame has not started.
    Awaiting,
    /// Inside an output frame.
    Output(OutputStream),
    /// The exit frame's head is in; its end finishes the command.
    Exit(ExitReport),
    /// An error frame's head is in; its end finishes the command.
    Refused {
        code: RefusalCode,
        message: BoundedText<MESSAGE_CAP>,
    },
    /// The server broke the protocol; the stream is out of step.
    Failed(ShellProtocolError),
}

/// The members of an error frame the client reads (its `"op"` was read before).
#[derive(Deserialize)]
struct ErrorReply {
    code: BoundedText<CODE_CAP>,
    message: BoundedText<MESSAGE_CAP>,
}

/// The client side of the remote shell's framed protocol, sans-IO: one command at a time on a
/// connection, any number of them.
///
/// `CAP` bounds a reply header the session reads (with room to unescape its strings) and the
/// request header it writes (so a token up to about `CAP - 60` bytes fits). A server's
/// headers are short; its refusal messages are at most [`MESSAGE_CAP`] bytes.
///
/// The calling order, per command:
///
/// 1. [`exec`](Self::exec) queues the request;
/// 2. drain [`poll_transmit`](Self::poll_transmit) until `None`, sending
///    [`Transmit::Bytes`] from your buffer and [`Transmit::Body`] from the command itself
///    (the command is not copied);
/// 3. feed what the socket gives to [`handle_input`](Self::handle_input), which returns how
///    much it consumed and at most one [`ShellReply`], until it returns
///    [`ShellReply::Exit`] or [`ShellReply::Refused`]. A call that returns no reply has
///    consumed all its input. At the end of the stream, call [`handle_eof`](Self::handle_eof).
///
/// No input makes it panic or allocate; it performs no I/O and reads no clock.
///
/// ```
/// use unstick_core::session::Transmit;
/// use unstick_core::shell::{ExitHeader, OutputHeader, PLAIN_ENCODER, ShellClientSession};
/// use unstick_core::shell::{ShellOp, ShellReply, Termination};
/// use unstick_core::time::Instant;
///
/// let mut session = ShellClientSession::<1024>::new();
/// session.exec("echo hi", None).unwrap();
///
/// // What to send: the request's head, then the command from where it is.
/// let mut sent = Vec::new();
/// let mut buf = [0u8; 256];
/// while let Some(transmit) = session.poll_transmit(&mut buf) {
///     match transmit {
///         Transmit::Bytes(n) => sent.extend_from_slice(&buf[..n]),
///         Transmit::Body(n) => sent.extend_from_slice(&"echo hi".as_bytes()[..n]),
///     }
/// }
/// // The command's XXH3 rides in the header, so the server refuses a corrupted command.
/// assert!(sent[4..].starts_with(br#"{"op":"exec","total_size":7,"xxh3":""#));
/// assert!(sent.ends_with(b"}echo hi"));
///
/// // What the server answers: an output frame and the exit frame, here in one read.
/// let mut wire = [0u8; 256];
/// let output = OutputHeader { op: ShellOp::Stdout };
/// let a = PLAIN_ENCODER.encode_frame(&output, b"hi\n", &mut wire).unwrap();
/// let exit = ExitHeader { op: ShellOp::Exit, code: Some(0), signal: None, truncated: false, timed_out: false };
/// let b = PLAIN_ENCODER.encode_frame(&exit, b"", &mut wire[a..]).unwrap();
///
/// let mut input = &wire[..a + b];
/// let mut stdout = Vec::new();
/// let report = loop {
///     let (used, reply) = session.handle_input(Instant::ZERO, input).unwrap();
///     input = &input[used..];
///     match reply {
///         Some(ShellReply::Output { bytes, .. }) => stdout.extend_from_slice(bytes),
///         Some(ShellReply::Exit(report)) => break report,
///         Some(ShellReply::Refused { code, .. }) => panic!("refused: {code}"),
///         None => unreachable!("the whole reply is in"),
///     }
/// };
/// assert_eq!(stdout, b"hi\n");
/// assert_eq!(report.termination, Termination::Exited(0));
/// assert!(session.is_idle());
/// ```
#[derive(Debug)]
pub struct ShellClientSession<const CAP: usize = 1024> {
    decoder: FrameDecoder<CAP>,
    outbox: Outbox<CAP>,
    state: State,
    /// How long the server may stay silent while a command is in flight.
    reply: ReplyTimer,
    /// The standard input streamed after the request, if any.
    stdin: Stdin,
    /// Whether the server keeps the command in flight alive.
    keepalive: Keepalive,
}

impl<const CAP: usize> Default for ShellClientSession<CAP> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const CAP: usize> ShellClientSession<CAP> {
    /// A session for a new connection, with no command in flight.
    pub fn new() -> Self {
        ShellClientSession {
            decoder: FrameDecoder::header_frames(Profile::I32_LE),
            outbox: Outbox::new(),
            state: State::Idle,
            reply: ReplyTimer::new(None),
            stdin: Stdin::Absent,
            keepalive: Keepalive::NotAsked,
        }
    }

    /// This session, giving up on a command in flight once the server has sent nothing for
    /// `limit` ([`ShellProtocolError::TimedOut`] from
    /// [`handle_timeout`](Self::handle_timeout)); `None`, the default, waits for as long as
    /// the command runs.
    ///
    /// With a limit, every request asks the server for keepalives ([`ExecRequest::alive`],
    /// a third of the limit), so that a command may be silent for as long as the server lets
    /// it run while a server gone silent is noticed within the limit; the wait starts over
    /// with every byte that comes. A server that predates keepalives answers with another
    /// frame first: from then on that command is not timed (it could not be told from a
    /// silent command), as without a limit. A server that sends nothing at all is given up on
    /// after the limit, whatever it is.
    pub fn with_reply_timeout(mut self, limit: Option<Duration>) -> Self {
        self.reply.set_limit(limit);
        self
    }

    /// Forgets everything: a command in flight, bytes not yet sent, an error. For a new
    /// connection (after a reconnect, or to start over after an error).
    pub fn reset(&mut self) {
        self.decoder.reset();
        self.outbox = Outbox::new();
        self.state = State::Idle;
        self.reply.end();
        self.stdin = Stdin::Absent;
        self.keepalive = Keepalive::NotAsked;
    }

    /// Whether no command is in flight (and no error is pending): [`exec`](Self::exec) may be
    /// called once [`poll_transmit`](Self::poll_transmit) has run dry (a command that streamed
    /// its standard input may leave the input's end to send after its answer).
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle)
    }

    /// Queues the request to run `command`, presenting `token` if given:
    /// `{"op":"exec","total_size":N[,"token":"..."]}`, then the command as the body, which is
    /// not copied: [`poll_transmit`](Self::poll_transmit) announces it as
    /// [`Transmit::Body`]`(command.len())` for the host to send from `command`.
    ///
    /// Fails, queueing nothing, while a command is in flight or after an error
    /// ([`SessionError::OutOfOrder`]), or when the header does not fit in `CAP` bytes.
    pub fn exec(&mut self, command: &str, token: Option<&str>) -> Result<(), ExecError> {
        self.exec_in(command, None, token)
    }

    /// As [`exec`](Self::exec), asking the server to run `command` in the directory `cwd`
    /// (the request's `"cwd"`: absolute, or relative to the server's working directory); with
    /// `None`, in the server's working directory. A server refuses a `cwd` that is not a
    /// directory there with a `bad_path` error frame, running nothing.
    pub fn exec_in(
        &mut self,
        command: &str,
        cwd: Option<&str>,
        token: Option<&str>,
    ) -> Result<(), ExecError> {
        let options = ExecOptions {
            cwd,
            token,
            stdin: false,
            pty: None,
        };
        self.exec_with(command, options)
    }

    /// Queues the request to run `command` as `options` say: in another directory, with a
    /// token, and streaming its standard input. With [`ExecOptions::stdin`], feed the input
    /// after the request, a chunk at a time, through [`send_stdin`](Self::send_stdin) while
    /// [`wants_stdin`](Self::wants_stdin), and its end through
    /// [`end_stdin`](Self::end_stdin); the command's answer may come first (it exited without
    /// reading it all), and then the session ends the input itself.
    ///
    /// Fails, queueing nothing, while a command is in flight or after an error
    /// ([`SessionError::OutOfOrder`]), while an earlier command's bytes are still to be sent
    /// ([`SessionError::OutboxFull`]), or when the header does not fit in `CAP` bytes.
    pub fn exec_with(&mut self, command: &str, options: ExecOptions<'_>) -> Result<(), ExecError> {
        if !self.is_idle() {
            return Err(ExecError::Session(SessionError::OutOfOrder));
        }
        if !self.outbox.is_empty() || self.stdin == Stdin::EndOwed {
            return Err(ExecError::Session(SessionError::OutboxFull));
        }
        // A third of the limit: a keepalive or two may be late or lost in a buffer.
        let alive = self.reply.limit().map(|limit| {
            u64::try_from(limit.as_millis() / 3)
                .unwrap_or(u64::MAX)
                .max(1)
        });
        let stdin = options.stdin || options.pty.is_some();
        let request = ExecRequest {
            op: ShellOp::Exec,
            token: options.token,
            cwd: options.cwd,
            stdin,
            alive,
            pty: options.pty,
        };
        // The command's digest rides along when this build computes XXH3. Every other
        // encoding error means the head does not fit: the header is an object without
        // reserved members.
        let queued = if Algorithm::Xxh3.is_supported() {
            self.outbox
                .push_frame_for(&EXEC_ENCODER, &request, command.as_bytes())
        } else {
            self.outbox
                .push_head(&PLAIN_ENCODER, &request, command.len() as u64, None)
                .map(|()| self.outbox.push_body(command.len()))
        };
        queued.map_err(|_| ExecError::HeadTooLarge { capacity: CAP })?;
        self.state = State::Awaiting;
        self.reply.begin();
        self.stdin = if stdin { Stdin::Open } else { Stdin::Absent };
        self.keepalive = if alive.is_some() {
            Keepalive::Asked
        } else {
            Keepalive::NotAsked
        };
        Ok(())
    }

    /// Whether the session takes a chunk of standard input now
    /// ([`send_stdin`](Self::send_stdin)): the command in flight streams it, its end is not
    /// sent, and what was queued before has gone out. A host reads its local input only then,
    /// so that it holds no more than the chunk it sends.
    pub fn wants_stdin(&self) -> bool {
        self.stdin == Stdin::Open
            && self.outbox.is_empty()
            && !matches!(self.state, State::Idle | State::Failed(_))
    }

    /// Queues `chunk` of the command's standard input: a `stdin` frame whose head (with the
    /// chunk's XXH3) [`poll_transmit`](Self::poll_transmit) hands out, then
    /// [`Transmit::Body`]`(chunk.len())` for the host to send from `chunk`, which is not
    /// copied. An empty chunk queues nothing (the input's end is
    /// [`end_stdin`](Self::end_stdin)).
    ///
    /// Fails, queueing nothing, when the command streams no input or its end was sent, or
    /// after its answer ([`SessionError::OutOfOrder`]), and while earlier bytes are still
    /// queued ([`SessionError::OutboxFull`]).
    pub fn send_stdin(&mut self, chunk: &[u8]) -> Result<(), SessionError> {
        if self.stdin != Stdin::Open || matches!(self.state, State::Idle | State::Failed(_)) {
            return Err(SessionError::OutOfOrder);
        }
        if !self.outbox.is_empty() {
            return Err(SessionError::OutboxFull);
        }
        if chunk.is_empty() {
            return Ok(());
        }
        let header = OpHeader { op: ShellOp::Stdin };
        let queued = if Algorithm::Xxh3.is_supported() {
            self.outbox.push_frame_for(&STDIN_ENCODER, &header, chunk)
        } else {
            self.outbox
                .push_head(&PLAIN_ENCODER, &header, chunk.len() as u64, None)
                .map(|()| self.outbox.push_body(chunk.len()))
        };
        // The head is a few dozen bytes in an empty outbox of CAP bytes.
        queued.map_err(|_| SessionError::OutboxFull)
    }

    /// Queues a `resize` frame, `{"op":"resize","rows":R,"cols":C,"total_size":0}`: the
    /// terminal of a command run on a pty ([`ExecOptions::pty`]) has a new size. Taken when a
    /// chunk of input would be ([`wants_stdin`](Self::wants_stdin)); a host keeps the latest
    /// size until then.
    ///
    /// Fails, queueing nothing, as [`send_stdin`](Self::send_stdin) does.
    pub fn send_resize(&mut self, size: WindowSize) -> Result<(), SessionError> {
        if self.stdin != Stdin::Open || matches!(self.state, State::Idle | State::Failed(_)) {
            return Err(SessionError::OutOfOrder);
        }
        if !self.outbox.is_empty() {
            return Err(SessionError::OutboxFull);
        }
        let header = ResizeHeader {
            op: ShellOp::Resize,
            rows: size.rows,
            cols: size.cols,
        };
        // The head is a few dozen bytes in an empty outbox of CAP bytes.
        self.outbox
            .push_frame(&PLAIN_ENCODER, &header)
            .map_err(|_| SessionError::OutboxFull)
    }

    /// The command's standard input ends: a `stdin_end` frame goes out once what is queued
    /// has (the command then reads the end of its input). Done already when the command's
    /// answer came first. Fails ([`SessionError::OutOfOrder`]) when the command streams no
    /// input.
    pub fn end_stdin(&mut self) -> Result<(), SessionError> {
        match self.stdin {
            Stdin::Absent => Err(SessionError::OutOfOrder),
            Stdin::Open => {
                self.stdin = Stdin::EndOwed;
                Ok(())
            }
            Stdin::EndOwed | Stdin::Ended => Ok(()),
        }
    }

    /// The next thing to send (see [`Outbox::poll_transmit`]): request bytes copied into
    /// `buf`, then the command's length (or a chunk of standard input's); `None` when nothing
    /// is waiting.
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<Transmit> {
        if self.outbox.is_empty() && self.stdin == Stdin::EndOwed {
            let end = OpHeader {
                op: ShellOp::StdinEnd,
            };
            // An empty outbox of CAP bytes holds a head of a few dozen.
            if self.outbox.push_frame(&PLAIN_ENCODER, &end).is_ok() {
                self.stdin = Stdin::Ended;
            }
        }
        self.outbox.poll_transmit(buf)
    }

    /// Feeds bytes the server sent. Returns how many were consumed (pass the rest next time)
    /// and at most one reply. Without a reply, all of `input` was consumed. After
    /// [`ShellReply::Exit`] or [`ShellReply::Refused`] it consumes nothing more: the rest of
    /// `input`, if any, was not asked for.
    pub fn handle_input<'i>(
        &mut self,
        now: Instant,
        input: &'i [u8],
    ) -> Result<(usize, Option<ShellReply<'i>>), ShellProtocolError> {
        match &self.state {
            State::Failed(e) => return Err(e.clone()),
            State::Idle if input.is_empty() => return Ok((0, None)),
            State::Idle => return Err(self.fail(ShellProtocolError::Unsolicited)),
            _ => {}
        }
        if !input.is_empty() {
            self.reply.heard(now);
        }
        let mut used = 0;
        loop {
            let rest = input.get(used..).unwrap_or_default();
            let (n, event) = match self.decoder.feed(rest) {
                Ok(step) => step,
                Err(e) => return Err(self.fail(ShellProtocolError::Framing(e))),
            };
            used += n;
            match event {
                Event::NeedMore => return Ok((used, None)),
                Event::Head(_) => match self.read_head() {
                    Ok(state) => self.state = state,
                    Err(e) => return Err(self.fail(e)),
                },
                Event::Body(bytes) => {
                    if let State::Output(stream) = self.state {
                        return Ok((used, Some(ShellReply::Output { stream, bytes })));
                    }
                    // The body of an exit or error frame (empty from any unstick server)
                    // carries nothing: skipped.
                }
                Event::End(_) => match core::mem::replace(&mut self.state, State::Awaiting) {
                    State::Exit(report) => {
                        self.finish_command();
                        return Ok((used, Some(ShellReply::Exit(report))));
                    }
                    State::Refused { code, message } => {
                        self.finish_command();
                        return Ok((used, Some(ShellReply::Refused { code, message })));
                    }
                    // An output frame ended; more replies follow.
                    _ => {}
                },
            }
        }
    }

    /// The server closed the connection (a read returned 0 bytes). Fine between commands; in
    /// the middle of one, [`ShellProtocolError::ConnectionClosed`].
    pub fn handle_eof(&mut self) -> Result<(), ShellProtocolError> {
        match &self.state {
            State::Idle => Ok(()),
            State::Failed(e) => Err(e.clone()),
            _ => Err(self.fail(ShellProtocolError::ConnectionClosed)),
        }
    }

    /// When the session next needs [`handle_timeout`](Self::handle_timeout): the end of the
    /// reply timeout while a command is in flight (timed from `now` if the request just went
    /// out); `None` without a reply timeout or a command.
    pub fn poll_timeout(&mut self, now: Instant) -> Option<Instant> {
        match self.state {
            State::Idle | State::Failed(_) => None,
            _ => self.reply.deadline(now),
        }
    }

    /// Time has come to `now`: a server silent for the reply timeout is
    /// [`ShellProtocolError::TimedOut`], and the session needs a [`reset`](Self::reset).
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ShellProtocolError> {
        match (&self.state, self.reply.limit()) {
            (State::Failed(e), _) => Err(e.clone()),
            (State::Idle, _) | (_, None) => Ok(()),
            (_, Some(limit)) if self.reply.has_expired(now) => {
                Err(self.fail(ShellProtocolError::TimedOut { limit }))
            }
            _ => Ok(()),
        }
    }

    /// Reads which reply the frame whose head just arrived is.
    fn read_head(&mut self) -> Result<State, ShellProtocolError> {
        let ReplyOp { op } = self
            .decoder
            .header()
            .map_err(ShellProtocolError::BadHeader)?;
        match (self.keepalive, op) {
            (Keepalive::Asked, ShellOp::Alive) => self.keepalive = Keepalive::Confirmed,
            // A server that does not confirm keepalives cannot be told from a silent command.
            (Keepalive::Asked, _) => {
                self.keepalive = Keepalive::Unsupported;
                self.reply.end();
            }
            _ => {}
        }
        Ok(match op {
            // Only its arrival counts (the reply timer heard it); the replies go on.
            ShellOp::Alive => State::Awaiting,
            ShellOp::Stdout => State::Output(OutputStream::Stdout),
            ShellOp::Stderr => State::Output(OutputStream::Stderr),
            ShellOp::Exit => {
                let exit: ExitHeader = self
                    .decoder
                    .header()
                    .map_err(ShellProtocolError::BadHeader)?;
                State::Exit(exit.report().ok_or(ShellProtocolError::ExitStatus)?)
            }
            ShellOp::Error => {
                let ErrorReply { code, message } = self
                    .decoder
                    .header()
                    .map_err(ShellProtocolError::BadHeader)?;
                State::Refused {
                    code: RefusalCode::from_wire(&code),
                    message,
                }
            }
            ShellOp::Exec
            | ShellOp::Info
            | ShellOp::Stdin
            | ShellOp::StdinEnd
            | ShellOp::Resize => {
                return Err(ShellProtocolError::RequestAsReply);
            }
        })
    }

    /// The command is over. A command that streams its standard input goes on sending what
    /// was handed out, then ends the input: the server reads it to its end. Otherwise
    /// whatever of its request was not sent yet (the server answered without reading it, as
    /// it does a bad token) is dropped.
    fn finish_command(&mut self) {
        self.state = State::Idle;
        self.reply.end();
        self.keepalive = Keepalive::NotAsked;
        match self.stdin {
            Stdin::Open => self.stdin = Stdin::EndOwed,
            Stdin::EndOwed | Stdin::Ended => {}
            Stdin::Absent => {
                if !self.outbox.is_empty() {
                    self.outbox = Outbox::new();
                }
            }
        }
    }

    fn fail(&mut self, e: ShellProtocolError) -> ShellProtocolError {
        self.state = State::Failed(e.clone());
        e
    }
}

/// Where a [`SeedClientSession`] is.
#[derive(Clone, Debug)]
enum SeedState {
    Idle,
    Awaiting,
    Failed(ShellProtocolError),
}

/// The client side of the seed's shell protocol, sans-IO, for the seed's Python servers (and
/// `unstick shell serve --seed-reply json`): the command goes out as raw text, the reply
/// comes back as one header frame (`{"file_name":...,"total_size":N,"md5":...}` and the
/// output, stdout and stderr together). A real `"md5"` is verified; the seed's placeholder
/// (`"fdsaf2143254f"`) is accepted as "no digest".
///
/// The calling order is [`ShellClientSession`]'s, with [`send`](Self::send) in place of
/// `exec`; the seed's server reads at most 1024 bytes per command.
#[derive(Debug)]
pub struct SeedClientSession<const CAP: usize = 1024> {
    decoder: FrameDecoder<CAP>,
    outbox: Outbox<0>,
    state: SeedState,
    /// How long the server may stay silent while a command is in flight.
    reply: ReplyTimer,
}

impl<const CAP: usize> Default for SeedClientSession<CAP> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const CAP: usize> SeedClientSession<CAP> {
    /// A session for a new connection.
    pub fn new() -> Self {
        SeedClientSession {
            decoder: FrameDecoder::header_frames(Profile::I32_LE),
            outbox: Outbox::new(),
            state: SeedState::Idle,
            reply: ReplyTimer::new(None),
        }
    }

    /// This session, giving up on a command once the server has sent nothing for `limit`, as
    /// [`ShellClientSession::with_reply_timeout`] does.
    pub fn with_reply_timeout(mut self, limit: Option<Duration>) -> Self {
        self.reply.set_limit(limit);
        self
    }

    /// Forgets a command in flight and any error, for a new connection.
    pub fn reset(&mut self) {
        self.decoder.reset();
        self.outbox = Outbox::new();
        self.state = SeedState::Idle;
        self.reply.end();
    }

    /// Whether no command is in flight (and no error is pending).
    pub fn is_idle(&self) -> bool {
        matches!(self.state, SeedState::Idle)
    }

    /// Announces `command` to send as it is: [`poll_transmit`](Self::poll_transmit) returns
    /// [`Transmit::Body`]`(command.len())`, and the host sends it from `command`. An empty
    /// command is not sent (the seed's server would wait for it forever) and needs no reply:
    /// the session stays idle.
    ///
    /// Fails with [`SessionError::OutOfOrder`] while a command is in flight or after an error.
    pub fn send(&mut self, command: &str) -> Result<(), SessionError> {
        if !self.is_idle() {
            return Err(SessionError::OutOfOrder);
        }
        if !command.is_empty() {
            self.outbox.push_body(command.len());
            self.state = SeedState::Awaiting;
            self.reply.begin();
        }
        Ok(())
    }

    /// The next thing to send: the command's length, once; `buf` is not written to.
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<Transmit> {
        self.outbox.poll_transmit(buf)
    }

    /// Feeds bytes the server sent; returns how many were consumed and at most one reply, as
    /// [`ShellClientSession::handle_input`] does.
    pub fn handle_input<'i>(
        &mut self,
        now: Instant,
        input: &'i [u8],
    ) -> Result<(usize, Option<SeedReply<'i>>), ShellProtocolError> {
        match &self.state {
            SeedState::Failed(e) => return Err(e.clone()),
            SeedState::Idle if input.is_empty() => return Ok((0, None)),
            SeedState::Idle => return Err(self.fail(ShellProtocolError::Unsolicited)),
            SeedState::Awaiting => {}
        }
        if !input.is_empty() {
            self.reply.heard(now);
        }
        let mut used = 0;
        loop {
            let rest = input.get(used..).unwrap_or_default();
            let (n, event) = match self.decoder.feed(rest) {
                Ok(step) => step,
                Err(e) => return Err(self.fail(ShellProtocolError::Framing(e))),
            };
            used += n;
            match event {
                Event::NeedMore => return Ok((used, None)),
                // The header says nothing the client needs beyond the body's length and
                // digest, which the decoder reads.
                Event::Head(_) => {}
                Event::Body(bytes) => {
                    // The body's last bytes end the reply too: no byte is left to wait for.
                    return match self.decoder.feed(&[]) {
                        Ok((_, Event::End(FrameEnd { md5, .. }))) => {
                            self.end_reply();
                            Ok((used, Some(SeedReply::End { last: bytes, md5 })))
                        }
                        Ok(_) => Ok((used, Some(SeedReply::Output(bytes)))),
                        Err(e) => Err(self.fail(ShellProtocolError::Framing(e))),
                    };
                }
                Event::End(FrameEnd { md5, .. }) => {
                    self.end_reply();
                    return Ok((used, Some(SeedReply::End { last: &[], md5 })));
                }
            }
        }
    }

    /// The server closed the connection. Fine between commands; in the middle of one,
    /// [`ShellProtocolError::ConnectionClosed`].
    pub fn handle_eof(&mut self) -> Result<(), ShellProtocolError> {
        match &self.state {
            SeedState::Idle => Ok(()),
            SeedState::Failed(e) => Err(e.clone()),
            SeedState::Awaiting => Err(self.fail(ShellProtocolError::ConnectionClosed)),
        }
    }

    /// When the session next needs [`handle_timeout`](Self::handle_timeout), as
    /// [`ShellClientSession::poll_timeout`].
    pub fn poll_timeout(&mut self, now: Instant) -> Option<Instant> {
        match self.state {
            SeedState::Awaiting => self.reply.deadline(now),
            SeedState::Idle | SeedState::Failed(_) => None,
        }
    }

    /// Time has come to `now`, as [`ShellClientSession::handle_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ShellProtocolError> {
        match (&self.state, self.reply.limit()) {
            (SeedState::Failed(e), _) => Err(e.clone()),
            (SeedState::Awaiting, Some(limit)) if self.reply.has_expired(now) => {
                Err(self.fail(ShellProtocolError::TimedOut { limit }))
            }
            _ => Ok(()),
        }
    }

    /// The reply is in: the session is idle again.
    fn end_reply(&mut self) {
        self.state = SeedState::Idle;
        self.reply.end();
        self.outbox = Outbox::new();
    }

    fn fail(&mut self, e: ShellProtocolError) -> ShellProtocolError {
        self.state = SeedState::Failed(e.clone());
        e
    }
}

/// Both shell clients present the one [`Session`] shape; neither asks the host for local work
/// nor logs.
macro_rules! client_session {
    ($session:ident, $reply:ident) => {
        impl<const CAP: usize> Session for $session<CAP> {
            type Received<'i> = $reply<'i>;
            type Error = ShellProtocolError;
            type Action<'s>
                = core::convert::Infallible
            where
                Self: 's;
            type Event = core::convert::Infallible;

            fn handle_input<'i>(
                &mut self,
                now: Instant,
                input: &'i [u8],
            ) -> Result<(usize, Option<$reply<'i>>), ShellProtocolError> {
                $session::handle_input(self, now, input)
            }

            fn handle_eof(&mut self) -> Result<Option<$reply<'static>>, ShellProtocolError> {
                $session::handle_eof(self).map(|()| None)
            }

            fn poll_timeout(&mut self, now: Instant) -> Option<Instant> {
                $session::poll_timeout(self, now)
            }

            fn handle_timeout(&mut self, now: Instant) -> Result<(), ShellProtocolError> {
                $session::handle_timeout(self, now)
            }

            fn poll_transmit(&mut self, out: &mut [u8]) -> Option<Transmit> {
                $session::poll_transmit(self, out)
            }

            fn poll_action(&self) -> Option<core::convert::Infallible> {
                None
            }

            fn poll_event(&mut self) -> Option<core::convert::Infallible> {
                None
            }

            fn is_idle(&self) -> bool {
                $session::is_idle(self)
            }
        }
    };
}

client_session!(ShellClientSession, ShellReply);
client_session!(SeedClientSession, SeedReply);

#[cfg(test)]
mod tests {
    extern crate std;

    use std::string::{String, ToString};
    use std::vec::Vec;

    use super::*;

    /// Tests that are not about time all happen at one instant.
    const NOW: Instant = Instant::ZERO;
    use crate::shell::{
        OUTPUT_ENCODER, OutputHeader, SEED_REPLY_ENCODER, SeedReplyHeader, Termination,
    };
    use crate::{Algorithm, ErrorFrame, HeaderFrameEncoder};

    const CHUNKINGS: [usize; 6] = [1, 2, 3, 7, 64, 4096];

    /// Everything a session was asked to send for `command`, head and body.
    fn sent<const CAP: usize>(session: &mut ShellClientSession<CAP>, command: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 5];
        while let Some(t) = session.poll_transmit(&mut buf) {
            match t {
                Transmit::Bytes(n) => out.extend_from_slice(&buf[..n]),
                Transmit::Body(n) => out.extend_from_slice(&command.as_bytes()[..n]),
            }
        }
        out
    }

    fn output_encoder() -> HeaderFrameEncoder {
        if Algorithm::Xxh3.is_supported() {
            OUTPUT_ENCODER
        } else {
            PLAIN_ENCODER
        }
    }

    fn output_frame(wire: &mut Vec<u8>, stream: OutputStream, body: &[u8]) {
        let mut buf = std::vec![0u8; body.len() + 256];
        let header = OutputHeader { op: stream.op() };
        let n = output_encoder()
            .encode_frame(&header, body, &mut buf)
            .unwrap();
        wire.extend_from_slice(&buf[..n]);
    }

    fn json_frame(wire: &mut Vec<u8>, json: &str) {
        wire.extend_from_slice(&(json.len() as i32).to_le_bytes());
        wire.extend_from_slice(json.as_bytes());
    }

    fn exit_frame(wire: &mut Vec<u8>, report: ExitReport) {
        let mut buf = [0u8; 256];
        let n = PLAIN_ENCODER
            .encode_frame(&report.header(), b"", &mut buf)
            .unwrap();
        wire.extend_from_slice(&buf[..n]);
    }

    fn error_frame(wire: &mut Vec<u8>, code: &str, message: &str) {
        let mut buf = [0u8; 1024];
        let frame = ErrorFrame { code, message };
        let n = PLAIN_ENCODER.encode_frame(&frame, b"", &mut buf).unwrap();
        wire.extend_from_slice(&buf[..n]);
    }

    /// What a host saw of one command's replies.
    #[derive(Debug, PartialEq, Eq)]
    struct Seen {
        stdout: Vec<u8>,
        stderr: Vec<u8>,
        end: Result<ShellReplyEnd, ShellProtocolError>,
        consumed: usize,
    }

    #[derive(Debug, PartialEq, Eq)]
    enum ShellReplyEnd {
        Exit(ExitReport),
        Refused(RefusalCode, Option<String>),
        /// The input ran out first.
        Pending,
    }

    /// Feeds `wire` to `session` in pieces of `chunk` bytes, as a host would, up to the end of
    /// the command.
    fn feed<const CAP: usize>(
        session: &mut ShellClientSession<CAP>,
        wire: &[u8],
        chunk: usize,
    ) -> Seen {
        let mut seen = Seen {
            stdout: Vec::new(),
            stderr: Vec::new(),
            end: Ok(ShellReplyEnd::Pending),
            consumed: 0,
        };
        for piece in wire.chunks(chunk) {
            let mut input = piece;
            loop {
                let (used, reply) = match session.handle_input(NOW, input) {
                    Ok(step) => step,
                    Err(e) => {
                        seen.end = Err(e);
                        return seen;
                    }
                };
                assert!(used <= input.len());
                seen.consumed += used;
                input = &input[used..];
                match reply {
                    None => {
                        assert!(input.is_empty(), "no reply, yet input left");
                        break;
                    }
                    Some(ShellReply::Output { stream, bytes }) => match stream {
                        OutputStream::Stdout => seen.stdout.extend_from_slice(bytes),
                        OutputStream::Stderr => seen.stderr.extend_from_slice(bytes),
                    },
                    Some(ShellReply::Exit(report)) => {
                        seen.end = Ok(ShellReplyEnd::Exit(report));
                        return seen;
                    }
                    Some(ShellReply::Refused { code, message }) => {
                        let message = message.get().map(String::from);
                        seen.end = Ok(ShellReplyEnd::Refused(code, message));
                        return seen;
                    }
                }
            }
        }
        seen
    }

    fn exited(code: i32) -> ExitReport {
        ExitReport {
            termination: Termination::Exited(code),
            truncated: false,
            timed_out: false,
        }
    }

    /// Golden bytes of requests: the command's XXH3 rides in the header.
    #[test]
    fn exec_requests_golden_bytes() {
        let mut session = ShellClientSession::<1024>::new();
        session.exec("ls", None).unwrap();
        assert_eq!(
            sent(&mut session, "ls"),
            b"\x46\x00\x00\x00{\"op\":\"exec\",\"total_size\":2,\"xxh3\":\"384ff6d26c6b0c60850dada5a04671b1\"}ls"
        );

        // docs/PROTOCOL.md's example, byte for byte.
        let mut session = ShellClientSession::<1024>::new();
        session.exec("echo hi; kill -9 $$", None).unwrap();
        assert_eq!(
            sent(&mut session, "echo hi; kill -9 $$"),
            b"\x47\x00\x00\x00{\"op\":\"exec\",\"total_size\":19,\"xxh3\":\"d8d54f4e406162c7febfaeb13832f159\"}echo hi; kill -9 $$"
        );

        let mut session = ShellClientSession::<1024>::new();
        session
            .exec("echo hi; kill -9 $$", Some("s3\"cret"))
            .unwrap();
        let bytes = sent(&mut session, "echo hi; kill -9 $$");
        assert!(
            bytes[4..].starts_with(br#"{"op":"exec","token":"s3\"cret","total_size":19,"xxh3":""#)
        );
        assert!(bytes.ends_with(b"\"}echo hi; kill -9 $$"));

        // A working directory rides after the token; escapes as JSON has them.
        let mut session = ShellClientSession::<1024>::new();
        session
            .exec_in("pwd", Some("/tmp/a \"b\""), Some("t"))
            .unwrap();
        let bytes = sent(&mut session, "pwd");
        assert!(
            bytes[4..].starts_with(
                br#"{"op":"exec","token":"t","cwd":"/tmp/a \"b\"","total_size":3,"xxh3":""#
            ),
            "{:?}",
            String::from_utf8_lossy(&bytes)
        );

        // The same bytes as the encoder writes for a whole frame.
        for (command, token) in [("", None), ("ls -l 新", Some("t")), ("x", Some(""))] {
            let mut session = ShellClientSession::<1024>::new();
            session.exec(command, token).unwrap();
            let request = ExecRequest {
                op: ShellOp::Exec,
                token,
                cwd: None,
                stdin: false,
                alive: None,
                pty: None,
            };
            let mut buf = [0u8; 256];
            let n = EXEC_ENCODER
                .encode_frame(&request, command.as_bytes(), &mut buf)
                .unwrap();
            assert_eq!(sent(&mut session, command), &buf[..n]);
        }
    }

    #[test]
    fn the_body_is_announced_not_copied() {
        let command = "x".repeat(100_000);
        let mut session = ShellClientSession::<256>::new();
        session.exec(&command, None).unwrap();
        let mut buf = [0u8; 256];
        let Some(Transmit::Bytes(n)) = session.poll_transmit(&mut buf) else {
            panic!("the head comes first");
        };
        assert!(buf[4..n].starts_with(br#"{"op":"exec","total_size":100000,"xxh3":""#));
        assert_eq!(
            session.poll_transmit(&mut buf),
            Some(Transmit::Body(100_000))
        );
        assert_eq!(session.poll_transmit(&mut buf), None);
    }

    #[test]
    fn exec_refuses_a_second_command_and_a_token_too_long() {
        let mut session = ShellClientSession::<128>::new();
        let token = "t".repeat(100);
        assert_eq!(
            session.exec("ls", Some(&token)),
            Err(ExecError::HeadTooLarge { capacity: 128 })
        );
        assert!(session.is_idle());
        assert_eq!(session.poll_transmit(&mut [0u8; 128]), None);

        session.exec("ls", Some("short")).unwrap();
        assert!(!session.is_idle());
        assert_eq!(
            session.exec("pwd", None),
            Err(ExecError::Session(SessionError::OutOfOrder))
        );
        // The first request is intact.
        let bytes = sent(&mut session, "ls");
        assert!(bytes.ends_with(
            br#""token":"short","total_size":2,"xxh3":"384ff6d26c6b0c60850dada5a04671b1"}ls"#
        ));
    }

    /// Two commands' replies, each decoded the same under every chunking.
    #[test]
    fn replies_decode_alike_under_every_chunking() {
        let big: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let mut first = Vec::new();
        output_frame(&mut first, OutputStream::Stdout, b"hello\n");
        output_frame(&mut first, OutputStream::Stderr, b"oops\n");
        output_frame(&mut first, OutputStream::Stdout, b"");
        output_frame(&mut first, OutputStream::Stdout, &big);
        let report = ExitReport {
            termination: Termination::Exited(3),
            truncated: true,
            timed_out: false,
        };
        exit_frame(&mut first, report);
        let mut second = Vec::new();
        output_frame(&mut second, OutputStream::Stderr, "新\n".as_bytes());
        let killed = ExitReport {
            termination: Termination::Signaled(9),
            truncated: false,
            timed_out: true,
        };
        exit_frame(&mut second, killed);

        let mut expected_stdout = b"hello\n".to_vec();
        expected_stdout.extend_from_slice(&big);
        for chunk in CHUNKINGS {
            let mut session = ShellClientSession::<1024>::new();
            session.exec("first", None).unwrap();
            sent(&mut session, "first");
            let seen = feed(&mut session, &first, chunk);
            assert_eq!(seen.end, Ok(ShellReplyEnd::Exit(report)), "chunk {chunk}");
            assert_eq!(seen.stdout, expected_stdout);
            assert_eq!(seen.stderr, b"oops\n");
            assert_eq!(seen.consumed, first.len());
            assert!(session.is_idle());
            assert_eq!(session.handle_eof(), Ok(()));

            session.exec("second", Some("tok")).unwrap();
            sent(&mut session, "second");
            let seen = feed(&mut session, &second, chunk);
            assert_eq!(seen.end, Ok(ShellReplyEnd::Exit(killed)), "chunk {chunk}");
            assert_eq!(seen.stderr, "新\n".as_bytes());
            assert!(seen.stdout.is_empty());
        }
    }

    #[test]
    fn refusals_decode_alike_under_every_chunking_and_end_the_command() {
        let cases: [(&str, &str, RefusalCode); 3] = [
            (
                "unauthorized",
                "the token does not match the server's",
                RefusalCode::Known(ErrorCode::Unauthorized),
            ),
            (
                "busy",
                "retry in a \"second\"\n\u{1}",
                RefusalCode::Known(ErrorCode::Busy),
            ),
            (
                "new_code",
                "a newer server's refusal",
                RefusalCode::Unknown(BoundedText::from_text("new_code")),
            ),
        ];
        for (code, message, expected) in cases {
            let mut wire = Vec::new();
            error_frame(&mut wire, code, message);
            for chunk in CHUNKINGS {
                let mut session = ShellClientSession::<1024>::new();
                session.exec("ls", Some("wrong")).unwrap();
                let seen = feed(&mut session, &wire, chunk);
                assert_eq!(
                    seen.end,
                    Ok(ShellReplyEnd::Refused(
                        expected.clone(),
                        Some(message.to_string())
                    )),
                    "chunk {chunk}"
                );
                assert!(session.is_idle());
                // The unsent request was dropped with the command.
                assert_eq!(session.poll_transmit(&mut [0u8; 64]), None);
                session.exec("pwd", None).unwrap();
            }
        }
        assert_eq!(RefusalCode::Known(ErrorCode::Busy).to_string(), "busy");
        let long = "c".repeat(CODE_CAP + 1);
        let mut wire = Vec::new();
        error_frame(&mut wire, &long, "m");
        let mut session = ShellClientSession::<1024>::new();
        session.exec("ls", None).unwrap();
        let Ok(ShellReplyEnd::Refused(code, _)) = feed(&mut session, &wire, 4096).end else {
            panic!("a refusal");
        };
        assert_eq!(code.as_str(), None);
        assert!(code.to_string().contains("unknown code"));
    }

    #[test]
    fn output_then_refusal_as_after_a_lost_command() {
        let mut wire = Vec::new();
        output_frame(&mut wire, OutputStream::Stdout, b"partial");
        error_frame(&mut wire, "run_failed", "lost track");
        let mut session = ShellClientSession::<1024>::new();
        session.exec("ls", None).unwrap();
        let seen = feed(&mut session, &wire, 3);
        assert_eq!(seen.stdout, b"partial");
        assert!(matches!(
            seen.end,
            Ok(ShellReplyEnd::Refused(
                RefusalCode::Known(ErrorCode::RunFailed),
                _
            ))
        ));
    }

    #[test]
    fn nothing_after_the_exit_frame_is_consumed() {
        let mut wire = Vec::new();
        exit_frame(&mut wire, exited(0));
        let exit_len = wire.len();
        output_frame(&mut wire, OutputStream::Stdout, b"late");
        let mut session = ShellClientSession::<1024>::new();
        session.exec("true", None).unwrap();
        let (used, reply) = session.handle_input(NOW, &wire).unwrap();
        assert_eq!(used, exit_len);
        assert_eq!(reply, Some(ShellReply::Exit(exited(0))));
        assert_eq!(session.handle_input(NOW, &[]), Ok((0, None)));
        assert_eq!(
            session.handle_input(NOW, &wire[used..]),
            Err(ShellProtocolError::Unsolicited)
        );
    }

    /// Feeds `wire` after an `exec` and returns the error it ends in.
    fn error_of(wire: &[u8]) -> ShellProtocolError {
        let mut first = None;
        for chunk in CHUNKINGS {
            let mut session = ShellClientSession::<256>::new();
            session.exec("ls", None).unwrap();
            let e = feed(&mut session, wire, chunk).end.unwrap_err();
            // The error sticks until a reset.
            assert_eq!(session.handle_input(NOW, b"x").unwrap_err(), e);
            assert_eq!(session.handle_eof().unwrap_err(), e);
            assert!(!session.is_idle());
            assert_eq!(
                session.exec("ls", None),
                Err(ExecError::Session(SessionError::OutOfOrder))
            );
            session.reset();
            assert!(session.is_idle());
            session.exec("ls", None).unwrap();
            assert_eq!(first.get_or_insert_with(|| e.clone()), &e, "chunk {chunk}");
        }
        first.unwrap()
    }

    #[test]
    fn every_protocol_error() {
        // Broken framing.
        let e = error_of(&[0xff, 0xff, 0xff, 0xff, b'{']);
        assert_eq!(
            e,
            ShellProtocolError::Framing(DecodeError::NegativeLength { len: -1 })
        );
        let mut wire = Vec::new();
        json_frame(&mut wire, "not json");
        assert!(matches!(
            error_of(&wire),
            ShellProtocolError::Framing(DecodeError::HeaderNotJson(_))
        ));
        let mut wire = Vec::new();
        json_frame(
            &mut wire,
            &std::format!(r#"{{"op":"{}"}}"#, "x".repeat(300)),
        );
        assert!(matches!(
            error_of(&wire),
            ShellProtocolError::Framing(DecodeError::HeaderTooLarge { .. })
        ));

        // A request where a reply was expected.
        let mut wire = Vec::new();
        json_frame(&mut wire, r#"{"op":"exec","total_size":0}"#);
        let e = error_of(&wire);
        assert_eq!(e, ShellProtocolError::RequestAsReply);
        assert!(e.to_string().contains("\"op\":\"exec\""));

        // Exit frames without exactly one of code and signal.
        for json in [
            r#"{"op":"exit","total_size":0}"#,
            r#"{"op":"exit","code":0,"signal":9,"total_size":0}"#,
        ] {
            let mut wire = Vec::new();
            json_frame(&mut wire, json);
            let e = error_of(&wire);
            assert_eq!(e, ShellProtocolError::ExitStatus, "{json}");
            assert!(e.to_string().contains("exactly one of"));
        }

        // Headers the protocol does not know or cannot read.
        for json in [
            r#"{"op":"ls","total_size":0}"#,
            r#"{"total_size":0}"#,
            r#"{"op":7,"total_size":0}"#,
            r#"{"op":"exit","code":"zero","total_size":0}"#,
            r#"{"op":"error","code":"busy","total_size":0}"#,
            r#"{"op":"error","code":4,"message":"m","total_size":0}"#,
        ] {
            let mut wire = Vec::new();
            json_frame(&mut wire, json);
            assert!(
                matches!(error_of(&wire), ShellProtocolError::BadHeader(_)),
                "{json}"
            );
        }

        // The server closed mid-command.
        let mut wire = Vec::new();
        output_frame(&mut wire, OutputStream::Stdout, b"hello");
        for cut in [0, 3, 20, wire.len() - 1, wire.len()] {
            let mut session = ShellClientSession::<1024>::new();
            session.exec("ls", None).unwrap();
            feed(&mut session, &wire[..cut], 4096);
            let e = session.handle_eof().unwrap_err();
            assert_eq!(e, ShellProtocolError::ConnectionClosed);
            assert!(e.to_string().contains("closed the connection"));
        }

        // A reply while no command is in flight.
        let mut session = ShellClientSession::<1024>::new();
        assert_eq!(session.handle_eof(), Ok(()));
        assert_eq!(
            session.handle_input(NOW, &wire),
            Err(ShellProtocolError::Unsolicited)
        );
        assert!(!session.is_idle());
    }

    #[cfg(feature = "xxh3")]
    #[test]
    fn an_output_frame_that_does_not_match_its_xxh3_is_an_error() {
        let mut wire = Vec::new();
        output_frame(&mut wire, OutputStream::Stdout, b"hello");
        let last = wire.len() - 1;
        wire[last] ^= 1;
        let e = error_of(&wire);
        assert_eq!(
            e,
            ShellProtocolError::Framing(DecodeError::ChecksumMismatch {
                algorithm: Algorithm::Xxh3
            })
        );
        assert!(e.to_string().contains("corrupted"));
    }

    #[test]
    fn the_body_of_an_exit_frame_is_skipped() {
        let mut wire = Vec::new();
        json_frame(
            &mut wire,
            r#"{"op":"exit","code":1,"total_size":4,"extra":[1,{"a":null}]}"#,
        );
        wire.extend_from_slice(b"junk");
        for chunk in CHUNKINGS {
            let mut session = ShellClientSession::<1024>::new();
            session.exec("false", None).unwrap();
            let seen = feed(&mut session, &wire, chunk);
            assert_eq!(seen.end, Ok(ShellReplyEnd::Exit(exited(1))));
            assert!(seen.stdout.is_empty() && seen.stderr.is_empty());
        }
    }

    #[test]
    fn no_panic_on_arbitrary_bytes() {
        // A deterministic walk over byte strings built from frame-like pieces.
        let pieces: [&[u8]; 8] = [
            b"\x0e\x00\x00\x00",
            br#"{"op":"stdout"}"#,
            br#"{"op":"exit","code":1}"#,
            b"\xff\xff\xff\xff",
            b"\x00",
            br#"{"op":"error","code":"busy","message":"\u0001"}"#,
            b"\x22\x00\x00\x00",
            b"zz",
        ];
        let mut state = 0x2545_f491_u32;
        for _ in 0..2000 {
            let mut wire = Vec::new();
            for _ in 0..6 {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                wire.extend_from_slice(pieces[(state % 8) as usize]);
            }
            let mut session = ShellClientSession::<128>::new();
            session.exec("ls", None).unwrap();
            let _ = feed(&mut session, &wire, (state % 9 + 1) as usize);
            let _ = session.handle_eof();
        }
    }

    #[test]
    fn errors_read_as_sentences() {
        let cases = [
            ShellProtocolError::Framing(DecodeError::EmptyHeader),
            ShellProtocolError::BadHeader(HeaderError::NoHeader),
            ShellProtocolError::RequestAsReply,
            ShellProtocolError::ExitStatus,
            ShellProtocolError::Unsolicited,
            ShellProtocolError::ConnectionClosed,
        ];
        for e in cases {
            assert!(e.to_string().len() > 10, "{e:?}");
        }
        let e = ExecError::HeadTooLarge { capacity: 8 };
        assert!(e.to_string().contains("token is too long"));
        assert_eq!(
            ExecError::from(SessionError::OutOfOrder).to_string(),
            SessionError::OutOfOrder.to_string()
        );
    }

    // The seed's protocol.

    fn seed_sent<const CAP: usize>(session: &mut SeedClientSession<CAP>) -> Vec<Transmit> {
        let mut out = Vec::new();
        while let Some(t) = session.poll_transmit(&mut [0u8; 16]) {
            out.push(t);
        }
        out
    }

    fn seed_feed<const CAP: usize>(
        session: &mut SeedClientSession<CAP>,
        wire: &[u8],
        chunk: usize,
    ) -> Result<(Vec<u8>, Option<Verdict>, usize), ShellProtocolError> {
        let (mut body, mut consumed) = (Vec::new(), 0);
        for piece in wire.chunks(chunk) {
            let mut input = piece;
            loop {
                let (used, reply) = session.handle_input(NOW, input)?;
                consumed += used;
                input = &input[used..];
                match reply {
                    None => break,
                    Some(SeedReply::Output(bytes)) => body.extend_from_slice(bytes),
                    Some(SeedReply::End { last, md5 }) => {
                        body.extend_from_slice(last);
                        return Ok((body, Some(md5), consumed));
                    }
                }
            }
        }
        Ok((body, None, consumed))
    }

    #[test]
    fn seed_commands_go_out_raw_and_an_empty_one_not_at_all() {
        let mut session = SeedClientSession::<256>::new();
        session.send("").unwrap();
        assert!(session.is_idle());
        assert!(seed_sent(&mut session).is_empty());

        session.send("ls -l").unwrap();
        assert!(!session.is_idle());
        assert_eq!(session.send("pwd"), Err(SessionError::OutOfOrder));
        assert_eq!(seed_sent(&mut session), [Transmit::Body(5)]);
    }

    #[test]
    fn seed_replies_decode_alike_under_every_chunking() {
        let body: Vec<u8> = (0..3000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let mut real = Vec::new();
        if Algorithm::Md5.is_supported() {
            let mut buf = std::vec![0u8; body.len() + 256];
            let header = SeedReplyHeader {
                file_name: "output",
                truncated: false,
                timed_out: false,
            };
            let n = SEED_REPLY_ENCODER
                .encode_frame(&header, &body, &mut buf)
                .unwrap();
            real.extend_from_slice(&buf[..n]);
        }
        // The seed's server: a placeholder where the digest goes.
        let mut placeholder = Vec::new();
        json_frame(
            &mut placeholder,
            &std::format!(
                r#"{{"file_name":"output","total_size":{},"md5":"fdsaf2143254f"}}"#,
                body.len()
            ),
        );
        placeholder.extend_from_slice(&body);
        let mut bare = Vec::new();
        json_frame(&mut bare, r#"{"total_size":0}"#);

        let cases = [
            (&real, body.as_slice(), Verdict::Verified),
            (&placeholder, body.as_slice(), Verdict::NotADigest),
            (&bare, b"".as_slice(), Verdict::Absent),
        ];
        for (wire, expected, verdict) in cases {
            if wire.is_empty() {
                continue;
            }
            for chunk in CHUNKINGS {
                let mut session = SeedClientSession::<256>::new();
                session.send("ls").unwrap();
                let (got, end, consumed) = seed_feed(&mut session, wire, chunk).unwrap();
                assert_eq!(got, expected, "chunk {chunk}");
                assert_eq!(end, Some(verdict), "chunk {chunk}");
                assert_eq!(consumed, wire.len());
                assert!(session.is_idle());
                assert_eq!(session.handle_eof(), Ok(()));
            }
        }
    }

    #[test]
    fn seed_reply_errors() {
        // A real md5 that does not match.
        if Algorithm::Md5.is_supported() {
            let mut wire = Vec::new();
            json_frame(
                &mut wire,
                r#"{"file_name":"output","total_size":3,"md5":"764efa883dda1e11db47671c4a3bbd9e"}"#,
            );
            wire.extend_from_slice(b"hi\n");
            let mut session = SeedClientSession::<256>::new();
            session.send("echo hi").unwrap();
            assert!(seed_feed(&mut session, &wire, 4096).unwrap().1 == Some(Verdict::Verified));
            let last = wire.len() - 1;
            wire[last] = b'!';
            session.send("echo hi").unwrap();
            let e = seed_feed(&mut session, &wire, 4096).unwrap_err();
            assert_eq!(
                e,
                ShellProtocolError::Framing(DecodeError::ChecksumMismatch {
                    algorithm: Algorithm::Md5
                })
            );
            assert_eq!(session.send("ls"), Err(SessionError::OutOfOrder));
            session.reset();
            session.send("ls").unwrap();
        }

        // Not a frame at all: the seed's first server answers with bare output.
        let mut session = SeedClientSession::<256>::new();
        session.send("ls").unwrap();
        assert!(matches!(
            seed_feed(&mut session, b"README.md\n", 4096),
            Err(ShellProtocolError::Framing(_))
        ));

        // Closed mid-reply, or before it.
        let mut wire = Vec::new();
        json_frame(&mut wire, r#"{"total_size":10}"#);
        for cut in [0, 2, wire.len()] {
            let mut session = SeedClientSession::<256>::new();
            session.send("ls").unwrap();
            seed_feed(&mut session, &wire[..cut], 1).unwrap();
            assert_eq!(
                session.handle_eof(),
                Err(ShellProtocolError::ConnectionClosed)
            );
        }

        // Bytes nobody asked for.
        let mut session = SeedClientSession::<256>::new();
        assert_eq!(session.handle_input(NOW, b""), Ok((0, None)));
        assert_eq!(
            session.handle_input(NOW, b"x"),
            Err(ShellProtocolError::Unsolicited)
        );
        assert_eq!(
            session.handle_input(NOW, b""),
            Err(ShellProtocolError::Unsolicited)
        );
    }

    /// Everything a session sends for a command that streams stdin, `body` being the
    /// command or the last chunk handed to `send_stdin`.
    fn sent_with<const CAP: usize>(session: &mut ShellClientSession<CAP>, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 7];
        while let Some(t) = session.poll_transmit(&mut buf) {
            out.extend_from_slice(t.resolve(&buf, body).unwrap());
        }
        out
    }

    /// Golden bytes of a login shell on a pty, a resize and a Ctrl-C (docs/PROTOCOL.md's
    /// example).
    #[test]
    fn pty_frames_golden_bytes() {
        let mut session = ShellClientSession::<1024>::new();
        let options = ExecOptions {
            pty: Some(PtyRequest {
                term: "xterm-256color",
                rows: 24,
                cols: 80,
            }),
            ..ExecOptions::default()
        };
        session.exec_with("", options).unwrap();
        let sent = sent_with(&mut session, b"");
        assert_eq!(
            &sent[4..],
            br#"{"op":"exec","stdin":true,"pty":{"term":"xterm-256color","rows":24,"cols":80},"total_size":0,"xxh3":"99aa06d3014798d86001c324468d497f"}"#
        );
        assert_eq!(sent[..4], ((sent.len() - 4) as u32).to_le_bytes());
        assert!(session.wants_stdin(), "a pty streams stdin");
        session
            .send_resize(WindowSize {
                rows: 50,
                cols: 132,
            })
            .unwrap();
        assert_eq!(
            session.send_resize(WindowSize { rows: 1, cols: 1 }),
            Err(SessionError::OutboxFull)
        );
        assert_eq!(
            sent_with(&mut session, b""),
            b"\x33\x00\x00\x00{\"op\":\"resize\",\"rows\":50,\"cols\":132,\"total_size\":0}"
        );
        session.send_stdin(b"\x03").unwrap();
        assert!(sent_with(&mut session, b"\x03").ends_with(b"}\x03"));
        // Without a pty (or a stream of stdin) there is no terminal to resize.
        let mut session = ShellClientSession::<1024>::new();
        session.exec("ls", None).unwrap();
        let size = WindowSize { rows: 1, cols: 1 };
        assert_eq!(session.send_resize(size), Err(SessionError::OutOfOrder));
    }

    /// Golden bytes of a command that streams its stdin (docs/PROTOCOL.md's example).
    #[test]
    fn stdin_frames_golden_bytes() {
        let mut session = ShellClientSession::<1024>::new();
        let options = ExecOptions {
            stdin: true,
            ..ExecOptions::default()
        };
        session.exec_with("cat", options).unwrap();
        assert!(!session.wants_stdin(), "the request goes first");
        assert_eq!(
            sent_with(&mut session, b"cat"),
            b"\x53\x00\x00\x00{\"op\":\"exec\",\"stdin\":true,\"total_size\":3,\"xxh3\":\"0381fd7cec51321d42548a8a111c54ee\"}cat"
        );
        assert!(session.wants_stdin());
        session.send_stdin(b"hello\n").unwrap();
        assert!(!session.wants_stdin());
        assert_eq!(session.send_stdin(b"x"), Err(SessionError::OutboxFull));
        assert_eq!(
            sent_with(&mut session, b"hello\n"),
            b"\x47\x00\x00\x00{\"op\":\"stdin\",\"total_size\":6,\"xxh3\":\"6bba86c7e069f56d5a10b435f1c8e49c\"}hello\n"
        );
        session.send_stdin(b"").unwrap();
        assert_eq!(sent_with(&mut session, b""), b"");
        session.end_stdin().unwrap();
        assert!(!session.wants_stdin());
        assert_eq!(
            sent_with(&mut session, b""),
            b"\x21\x00\x00\x00{\"op\":\"stdin_end\",\"total_size\":0}"
        );
        assert_eq!(session.send_stdin(b"x"), Err(SessionError::OutOfOrder));
        assert_eq!(session.end_stdin(), Ok(()));
        // Without stdin, there is none to send.
        let mut session = ShellClientSession::<1024>::new();
        session.exec("cat", None).unwrap();
        sent(&mut session, "cat");
        assert!(!session.wants_stdin());
        assert_eq!(session.send_stdin(b"x"), Err(SessionError::OutOfOrder));
        assert_eq!(session.end_stdin(), Err(SessionError::OutOfOrder));
    }

    #[test]
    fn an_answer_before_the_end_of_stdin_ends_it_after_the_chunk_in_flight() {
        let options = ExecOptions {
            stdin: true,
            ..ExecOptions::default()
        };
        let mut exit = Vec::new();
        exit_frame(&mut exit, exited(0));
        // The answer comes: before the chunk's head is out, after it, or after its body.
        for sent_before in 0..3 {
            let mut session = ShellClientSession::<1024>::new();
            session.exec_with("head -c 1", options).unwrap();
            sent_with(&mut session, b"head -c 1");
            session.send_stdin(b"abc").unwrap();
            let mut buf = [0u8; 1024];
            let mut wire = Vec::new();
            for _ in 0..sent_before {
                let t = session.poll_transmit(&mut buf).unwrap();
                wire.extend_from_slice(t.resolve(&buf, b"abc").unwrap());
            }
            let seen = feed(&mut session, &exit, 4096);
            assert_eq!(seen.end, Ok(ShellReplyEnd::Exit(exited(0))));
            assert!(session.is_idle() && !session.wants_stdin());
            assert_eq!(
                session.exec("ls", None),
                Err(ExecError::Session(SessionError::OutboxFull)),
                "the stdin is still to be ended"
            );
            wire.extend(sent_with(&mut session, b"abc"));
            let end = b"\x21\x00\x00\x00{\"op\":\"stdin_end\",\"total_size\":0}";
            assert!(wire.ends_with(end), "{sent_before}: {wire:?}");
            // The chunk goes out whole, then the end.
            let stdin = &wire[..wire.len() - end.len()];
            assert!(stdin.starts_with(b"\x47\x00\x00\x00{\"op\":\"stdin\",\"total_size\":3"));
            assert!(stdin.ends_with(b"}abc"));
            session.exec("ls", None).unwrap();
        }
        // A refusal ends it too: the server drops it.
        let mut refusal = Vec::new();
        error_frame(&mut refusal, "bad_path", "no such directory");
        let mut session = ShellClientSession::<1024>::new();
        session.exec_with("cat", options).unwrap();
        let seen = feed(&mut session, &refusal, 4096);
        assert!(matches!(seen.end, Ok(ShellReplyEnd::Refused(..))));
        let wire = sent_with(&mut session, b"cat");
        assert!(wire.ends_with(b"{\"op\":\"stdin_end\",\"total_size\":0}"));
        assert!(wire[4..].starts_with(b"{\"op\":\"exec\",\"stdin\":true"));
    }

    #[test]
    fn a_reply_timeout_is_opt_in_and_restarts_with_every_byte() {
        let ms = Instant::from_millis;
        let mut session = ShellClientSession::<1024>::new();
        session.exec("sleep 100", None).unwrap();
        sent(&mut session, "sleep 100");
        assert_eq!(session.poll_timeout(ms(0)), None, "no limit by default");
        let mut session =
            ShellClientSession::<1024>::new().with_reply_timeout(Some(Duration::from_secs(5)));
        assert_eq!(session.poll_timeout(ms(0)), None, "nothing in flight");
        session.exec("ls", None).unwrap();
        // The request asks for keepalives every third of the limit.
        assert_eq!(
            sent(&mut session, "ls"),
            b"\x53\x00\x00\x00{\"op\":\"exec\",\"alive\":1666,\"total_size\":2,\"xxh3\":\"384ff6d26c6b0c60850dada5a04671b1\"}ls"
        );
        assert_eq!(session.poll_timeout(ms(1_000)), Some(ms(6_000)));
        let mut alive = Vec::new();
        json_frame(&mut alive, r#"{"op":"alive","total_size":0}"#);
        let mut wire = alive.clone();
        output_frame(&mut wire, OutputStream::Stdout, b"a");
        session.handle_input(ms(2_000), &alive).unwrap();
        assert_eq!(session.poll_timeout(ms(2_000)), Some(ms(7_000)));
        session
            .handle_input(ms(4_000), &wire[alive.len()..])
            .unwrap();
        assert_eq!(session.poll_timeout(ms(4_000)), Some(ms(9_000)));
        assert_eq!(session.handle_timeout(ms(8_999)), Ok(()));
        let limit = Duration::from_secs(5);
        assert_eq!(
            session.handle_timeout(ms(9_000)),
            Err(ShellProtocolError::TimedOut { limit })
        );
        assert!(!session.is_idle());
        session.reset();
        assert!(session.is_idle());
        assert_eq!(session.poll_timeout(ms(9_000)), None);
        // Keepalives restart the wait as any bytes do: a command silent for a minute goes on.
        session.exec("sleep 60", None).unwrap();
        sent(&mut session, "sleep 60");
        for at in (0..=60_000).step_by(1_666) {
            assert_eq!(session.handle_timeout(ms(at)), Ok(()));
            assert_eq!(
                session.handle_input(ms(at), &alive),
                Ok((alive.len(), None))
            );
        }
        let mut exit = Vec::new();
        exit_frame(&mut exit, exited(0));
        let seen = feed(&mut session, &exit, 4096);
        assert_eq!(seen.end, Ok(ShellReplyEnd::Exit(exited(0))));
        // A server that predates keepalives answers with another frame first: from then on
        // that command is not timed, as it could not be told from a silent one.
        session.exec("sleep 60", None).unwrap();
        sent(&mut session, "sleep 60");
        assert_eq!(session.poll_timeout(ms(100_000)), Some(ms(105_000)));
        session
            .handle_input(ms(101_000), &wire[alive.len()..])
            .unwrap();
        assert_eq!(session.poll_timeout(ms(101_000)), None);
        assert_eq!(session.handle_timeout(ms(900_000)), Ok(()));
        // An alive frame after the command is over is not asked for.
        feed(&mut session, &exit, 4096);
        assert_eq!(
            session.handle_input(ms(0), &alive),
            Err(ShellProtocolError::Unsolicited)
        );
        // The seed client alike.
        let mut seed =
            SeedClientSession::<1024>::new().with_reply_timeout(Some(Duration::from_secs(1)));
        seed.send("ls").unwrap();
        assert_eq!(seed.poll_timeout(ms(0)), Some(ms(1_000)));
        assert_eq!(
            seed.handle_timeout(ms(1_000)),
            Err(ShellProtocolError::TimedOut {
                limit: Duration::from_secs(1)
            })
        );
    }
}
