//! The remote shell's server side as a sans-IO session: which request is valid, what is refused
//! and how, which reply follows which request, in both the framed and the seed dialects.

use core::fmt;
use core::time::Duration;

use super::{
    ExitReport, MAX_TERM_LEN, OUTPUT_ENCODER, OpHeader, OutputHeader, OutputStream, PtyHeader,
    RequestHeader, SEED_COMMAND_READ, SEED_REPLY_ENCODER, SeedFormat, SeedReplyHeader, ShellOp,
    WindowSize, command_text,
};
use crate::foreign::{self, ForeignProtocol};
use crate::header_view::Kind::{Flag, Object, Text, U16, U64};
use crate::info::{EndpointInfo, Protocols};
use crate::session::{
    EscapedText, Events, Outbox, PeerText, Refusal, Refused, SeedServed, ServerEvent, Session,
    SessionError, TOKEN_CAP, Transmit, escaped_token_matches,
};
use crate::session::{Wait, earliest};
use crate::time::Instant;
use crate::{
    DecodeError, EncodeError, ErrorCode, ErrorFrame, Event, FrameDecoder, MemberError,
    PLAIN_ENCODER, Profile,
};

/// The op of the frame whose head `decoder` holds, when it is one the shell knows.
#[inline(never)]
fn frame_op<const CAP: usize>(decoder: &FrameDecoder<CAP>) -> Option<ShellOp> {
    let [op] = decoder.members_of([("op", Text)]).ok()?;
    op.checked_text()?.parse().ok()
}

/// The size a `resize` frame asks for (the members of a [`ResizeHeader`](super::ResizeHeader)
/// but its op): `None` when a member is missing or does not fit.
#[inline(never)]
fn window_size<const CAP: usize>(decoder: &FrameDecoder<CAP>) -> Option<WindowSize> {
    let [rows, cols] = decoder.members_of([("rows", U16), ("cols", U16)]).ok()?;
    Some(WindowSize {
        rows: rows.checked_u16()?,
        cols: cols.checked_u16()?,
    })
}

/// The members of a request's header the server reads, strings as they stand.
#[inline(never)]
fn read_request<const CAP: usize>(
    decoder: &FrameDecoder<CAP>,
) -> Result<RequestHeader<EscapedText<'_>>, MemberError<'_>> {
    let [op, token, cwd, stdin, alive, pty] = decoder.members_of([
        ("op", Text),
        ("token", Text),
        ("cwd", Text),
        ("stdin", Flag),
        ("alive", U64),
        ("pty", Object),
    ])?;
    let pty = match pty.checked_members([("term", Text), ("rows", U16), ("cols", U16)])? {
        None => None,
        Some([term, rows, cols]) => Some(PtyHeader {
            term: EscapedText::of(&term),
            rows: rows.required(rows.checked_u16())?,
            cols: cols.required(cols.checked_u16())?,
        }),
    };
    Ok(RequestHeader {
        op: op.required(EscapedText::of(&op))?,
        token: EscapedText::of(&token),
        cwd: EscapedText::of(&cwd),
        stdin: stdin.checked_flag(),
        alive: alive.checked_u64(),
        pty,
    })
}

/// The default room for a frame head or a refusal in a session's outbox:
/// [`ShellServerSession`]'s `OUT`.
pub const OUTBOX: usize = 4096;

/// What a shell server accepts: the rules a [`ShellServerSession`] applies to every request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShellRules<'a> {
    /// The token every framed request must carry; `None` for none.
    pub token: Option<&'a str>,
    /// Longest command run, in bytes (the command buffer's length caps it too).
    pub max_command_len: usize,
    /// How seed clients' replies are framed; `None` when seed clients are not served.
    pub seed_reply: Option<SeedFormat>,
    /// How long a client has, from the end of the previous request (or the session's start),
    /// to send a whole request; a seed command collected past its first read ends then too.
    pub idle_timeout: Duration,
    /// How long a seed client pauses to end a command that filled the seed's 1024-byte read.
    pub seed_pause: Duration,
    /// Whether the host passes a client's standard input on to its commands (it feeds
    /// [`ShellServerSession::handle_stdin`] while a command runs). Without, an exec request
    /// with `"stdin":true` is refused as `unsupported` and the connection closed.
    pub stdin: bool,
    /// Whether the host runs a command on a pseudo-terminal when its request asks for one
    /// (`"pty"`, see [`ShellServerSession::terminal`]). Without, such a request is refused as
    /// `unsupported` and the connection closed.
    pub pty: bool,
}

/// The default [`ShellRules::idle_timeout`].
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// The default [`ShellRules::seed_pause`]: long enough for a command's next `send()` over a
/// slow link, short enough that a seed client does not notice it.
pub const SEED_PAUSE: Duration = Duration::from_millis(200);

/// The shortest keepalive interval a server keeps to: a client asking for less gets one every
/// this long.
pub const ALIVE_MIN: Duration = Duration::from_millis(200);

/// The longest keepalive interval a server keeps to: a client asking for more gets one every
/// this long.
pub const ALIVE_MAX: Duration = Duration::from_secs(60);

/// How long a client has, once its command's answer (the exit frame, or a refusal) is queued,
/// to end the standard input it was streaming (`stdin_end`); what it sends until then is read
/// and dropped. Past it the connection closes.
pub const STDIN_DRAIN: Duration = Duration::from_secs(10);

impl Default for ShellRules<'_> {
    fn default() -> Self {
        ShellRules {
            token: None,
            max_command_len: super::MAX_COMMAND_LEN,
            seed_reply: None,
            idle_timeout: IDLE_TIMEOUT,
            seed_pause: SEED_PAUSE,
            stdin: false,
            pty: false,
        }
    }
}

/// Which dialect a connection speaks (its first bytes say; see
/// [`classify_greeting`](super::classify_greeting)). A build without the `seed` feature serves
/// the seed's clients no reply of theirs: a session made for [`Dialect::Seed`] there speaks
/// [`Dialect::Framed`], and refuses a raw-text command as a bad frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// Header frames: `{"op":"exec"}` + command, answered by output frames and an exit frame.
    Framed,
    /// Raw text commands, answered in the [`SeedFormat`] format.
    Seed(SeedFormat),
}

/// The dialect a session speaks: [`Dialect`], with the proof that this build serves the
/// seed's clients when it speaks theirs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Speaks {
    Framed,
    Seed(SeedFormat, SeedServed),
}

/// What the host should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShellAction<'s> {
    /// Run `command`, then report its output ([`ShellServerSession::handle_output`], framed
    /// clients) and its end ([`ShellServerSession::handle_exit`] or
    /// [`ShellServerSession::handle_seed_output`]), or its failure
    /// ([`ShellServerSession::handle_run_failed`]). When the request
    /// [streams stdin](ShellServerSession::streams_stdin), give the command a pipe for its
    /// standard input and fill it from [`ShellServerSession::handle_stdin`] while it runs;
    /// otherwise its standard input is empty.
    Run {
        /// The command, checked to be runnable text.
        command: &'s str,
    },
    /// Send what the outbox holds, then close the connection.
    Close,
}

/// The pseudo-terminal a command to [`Run`](ShellAction::Run) asked for (see
/// [`ShellServerSession::terminal`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Terminal<'s> {
    /// The terminal type, for the command's `TERM`: printable ASCII without `=`, at most
    /// [`MAX_TERM_LEN`] bytes; empty when the client named none.
    pub term: &'s str,
    /// Its size at the start.
    pub size: WindowSize,
}

/// Why a command could not be run to its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunFailure {
    /// The shell could not be started.
    Spawn,
    /// The host lost track of the running command and killed it.
    Lost,
    /// The working directory the request named ([`ShellServerSession::cwd`]) is not a
    /// directory the host can run a command in; nothing ran. Answered with `bad_path`.
    BadCwd,
}

/// What [`ShellServerSession::handle_stdin`] hands the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StdinInput<'i> {
    /// Bytes for the command's standard input: a slice of the input, not a copy. Write them
    /// to the command, then report [`handle_stdin_written`](ShellServerSession::handle_stdin_written);
    /// until then the session takes no more input.
    Bytes(&'i [u8]),
    /// The client's standard input ended (`stdin_end`): close the command's pipe, so that it
    /// reads the end. The session takes no more input until the command ends. (A terminal
    /// has no end of input to pass on: a host running the command on a pty leaves it be.)
    End,
    /// The client's terminal has a new size (a `resize` frame; pty requests only): apply it
    /// to the command's pty. The session takes input again at once.
    Resize(WindowSize),
}

/// Where a session is in the current request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading a framed request; `Refusing` drops the body of a refused one.
    Reading(Body),
    /// Collecting a seed command: waiting for its first read, or, once that filled the seed's
    /// read, taking more until the client pauses.
    Collecting(Collect, SeedServed),
    /// The command is ready or running, with the client's standard input as it stands.
    Running(Stdin),
    /// The request is answered, but the client is still streaming the standard input it
    /// declared: its `stdin` frames are read and dropped up to its `stdin_end` (for
    /// [`STDIN_DRAIN`] at most), which ends the request.
    DrainingStdin,
    /// The connection is to be closed.
    Closing,
}

/// The client's standard input while its command runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stdin {
    /// Not streamed: the command's standard input is empty.
    Absent,
    /// `stdin` frames are read; their bodies go to the command.
    Open,
    /// A chunk is with the host, not yet reported written: no more input is taken.
    Held,
    /// The command reads no more (its pipe broke): `stdin` frames are read and dropped, so
    /// that the client is never held up, until `stdin_end`.
    Unread,
    /// `stdin_end` came: nothing more is read until the command ends.
    Ended,
}

/// How a client streaming stdin broke the protocol; the connection closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StdinBreach {
    /// A frame other than `stdin` and `stdin_end`.
    OtherFrame,
    /// A `stdin_end` frame with a body.
    EndWithBody,
    /// A `resize` frame with a body, without whole-number `rows` and `cols`, or for a
    /// command that runs on no pty.
    BadResize,
}

impl StdinBreach {
    /// Writes the refusal of this breach into `refusal`. Out of line, as every refusal's
    /// words are.
    #[inline(never)]
    fn write_to(self, refusal: &mut Refusal) -> Refused {
        match self {
            StdinBreach::OtherFrame => refusal.set_closing(
                ErrorCode::UnknownOp,
                "the request's stdin is open: only \"stdin\" and \"stdin_end\" frames may \
                 follow it until its \"stdin_end\"",
            ),
            StdinBreach::EndWithBody => {
                refusal.set_closing(ErrorCode::BadHeader, "a stdin_end frame has no body")
            }
            StdinBreach::BadResize => refusal.set_closing(
                ErrorCode::BadHeader,
                "a resize frame has whole-number \"rows\" and \"cols\" and no body, and \
                 follows a request with a \"pty\" only",
            ),
        }
    }
}

/// Which stdin frame the decoder is inside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StdinFrame {
    /// Between frames.
    Between,
    /// A `stdin` frame: its body is the command's input.
    Bytes,
    /// The `stdin_end` frame; its end ends the input.
    End,
    /// A `resize` frame; its end hands the size out.
    Resize(WindowSize),
}

/// Where the collection of a seed command is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Collect {
    /// Its first read has not come.
    FirstRead,
    /// Its first read filled the seed's read: more is taken until the client pauses, or until
    /// the idle timeout from `since`. `last` is when the last bytes came.
    UntilPause { since: Instant, last: Instant },
}

/// What becomes of a framed request's body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Body {
    /// No head yet.
    AwaitingHead,
    /// The command, kept in the command buffer.
    Command,
    /// Read and dropped: the request was refused for this reason.
    Refused(ErrorCode),
    /// An `info` request, answered once its (empty) frame has ended.
    Info,
}

/// The server side of one shell connection, sans-IO.
///
/// Feed it what the socket gives ([`handle_input`](Self::handle_input)); after every call,
/// send what [`poll_transmit`](Self::poll_transmit) hands out until it returns `None`, then
/// look at [`poll_action`](Self::poll_action). The command is collected in the caller's
/// buffer, so the longest command is the shorter of the buffer and
/// [`ShellRules::max_command_len`].
///
/// ```
/// use unstick_core::session::Transmit;
/// use unstick_core::shell::{
///     Dialect, ExitReport, ShellAction, ShellRules, ShellServerSession, Termination,
/// };
///
/// let mut command = [0u8; 64];
/// let mut session = ShellServerSession::<256>::new(ShellRules::default(), Dialect::Framed, &mut command);
/// let header = br#"{"op":"exec","total_size":5}"#;
/// let mut request = (header.len() as i32).to_le_bytes().to_vec();
/// request.extend_from_slice(header);
/// request.extend_from_slice(b"uname");
/// let now = unstick_core::time::Instant::ZERO;
/// assert_eq!(session.handle_input(now, &request), request.len());
/// assert_eq!(session.poll_action(), Some(ShellAction::Run { command: "uname" }));
/// session.handle_output(unstick_core::shell::OutputStream::Stdout, b"Linux\n").unwrap();
/// let mut out = [0u8; 256];
/// assert!(matches!(session.poll_transmit(&mut out), Some(Transmit::Bytes(_))));
/// assert_eq!(session.poll_transmit(&mut out), Some(Transmit::Body(6))); // send "Linux\n"
/// let report = ExitReport { termination: Termination::Exited(0), truncated: false, timed_out: false };
/// session.handle_exit(report).unwrap();
/// assert!(matches!(session.poll_transmit(&mut out), Some(Transmit::Bytes(_))));
/// assert_eq!(session.poll_action(), None); // waiting for the next request
/// assert_eq!(session.answered(), 1);
/// ```
#[derive(Debug)]
pub struct ShellServerSession<'a, const CAP: usize = 1024, const OUT: usize = OUTBOX> {
    rules: ShellRules<'a>,
    speaks: Speaks,
    decoder: FrameDecoder<CAP>,
    /// The command from its start; the request's working directory, if any, in its last
    /// `cwd_len` bytes.
    command: &'a mut [u8],
    command_len: usize,
    cwd_len: usize,
    /// A seed command went past the limit (its excess was not kept).
    overflowed: bool,
    state: State,
    outbox: Outbox<OUT>,
    /// The request's refusal, written here in place ([`Refused`] says it was); that of a
    /// request whose body is being dropped is sent at its end.
    refusal: Refusal,
    /// Refusals and finished commands, until the host polls them for its log.
    events: Events<ServerEvent<ExitReport>>,
    /// The wait for the current request, timed against [`ShellRules::idle_timeout`].
    wait: Wait,
    answered: u64,
    /// What the host says of the endpoint, for an `info` reply.
    info: EndpointInfo<'a>,
    /// The current request declared `"stdin":true`: its frames follow it up to `stdin_end`.
    stdin_declared: bool,
    /// How often the current request's client wants to hear from the server while its
    /// command runs (its `"alive"`, kept within [`ALIVE_MIN`] and [`ALIVE_MAX`]).
    alive_every: Option<Duration>,
    /// Since the last frame was queued while the command runs.
    alive_wait: Wait,
    /// Which stdin frame is being read.
    stdin_frame: StdinFrame,
    /// The size of the pseudo-terminal the current request asked for, if any.
    pty: Option<WindowSize>,
    /// Its terminal type.
    term: heapless::String<MAX_TERM_LEN>,
}

impl<'a, const CAP: usize, const OUT: usize> ShellServerSession<'a, CAP, OUT> {
    /// A session for a connection speaking `dialect`, collecting commands in `command`.
    pub fn new(rules: ShellRules<'a>, dialect: Dialect, command: &'a mut [u8]) -> Self {
        let speaks = match (dialect, SeedServed::in_this_build()) {
            (Dialect::Seed(format), Some(served)) => Speaks::Seed(format, served),
            _ => Speaks::Framed,
        };
        let state = match speaks {
            Speaks::Framed => State::Reading(Body::AwaitingHead),
            Speaks::Seed(_, served) => State::Collecting(Collect::FirstRead, served),
        };
        ShellServerSession {
            rules,
            speaks,
            decoder: FrameDecoder::header_frames(Profile::I32_LE),
            command,
            command_len: 0,
            cwd_len: 0,
            overflowed: false,
            state,
            outbox: Outbox::new(),
            refusal: Refusal::new(ErrorCode::BadRequest, ""),
            events: Events::new(),
            wait: Wait::Starting,
            answered: 0,
            info: EndpointInfo::new(Protocols::SHELL),
            stdin_declared: false,
            stdin_frame: StdinFrame::Between,
            alive_every: None,
            alive_wait: Wait::Off,
            pty: None,
            term: heapless::String::new(),
        }
    }

    /// This session, answering an `info` request with `info` (the host's facts: its platform,
    /// the protocols it serves), completed by what the session knows itself (its header
    /// capacity, the longest command).
    pub fn with_info(mut self, info: EndpointInfo<'a>) -> Self {
        self.info = info;
        self
    }

    /// The longest command this session runs (the current request's working directory takes
    /// room in the command buffer too).
    pub fn max_command_len(&self) -> usize {
        self.rules
            .max_command_len
            .min(self.command.len() - self.cwd_len)
    }

    /// The working directory the request to [`Run`](ShellAction::Run) named (its `"cwd"`),
    /// checked to be non-empty text without NUL of at most
    /// [`MAX_CWD_LEN`](super::MAX_CWD_LEN) bytes; `None` when it named none (run in the
    /// server's own), and outside a request. Whether it is a directory is the host's to check:
    /// when it is not, [`handle_run_failed`](Self::handle_run_failed) with
    /// [`RunFailure::BadCwd`].
    pub fn cwd(&self) -> Option<&str> {
        if self.cwd_len == 0 || !matches!(self.state, State::Running(_)) {
            return None;
        }
        let start = self.command.len() - self.cwd_len;
        core::str::from_utf8(&self.command[start..]).ok()
    }

    /// The pseudo-terminal the command to [`Run`](ShellAction::Run) runs on (its request's
    /// `"pty"`); `None` outside a request, and for a command run with pipes. Run it in a
    /// session of its own with the pty as its controlling terminal, `TERM` set to
    /// [`Terminal::term`], the pty sized [`Terminal::size`]; its input is the client's
    /// ([`streams_stdin`](Self::streams_stdin) holds), its output goes out as
    /// [`OutputStream::Stdout`]. An empty command means a login shell.
    pub fn terminal(&self) -> Option<Terminal<'_>> {
        if !matches!(self.state, State::Running(_)) {
            return None;
        }
        Some(Terminal {
            term: self.term.as_str(),
            size: self.pty?,
        })
    }

    /// Whether the command to [`Run`](ShellAction::Run) gets the client's standard input (its
    /// request's `"stdin":true`): give it a pipe, and fill that from
    /// [`handle_stdin`](Self::handle_stdin). `false` outside a request, and for a command whose
    /// standard input is empty.
    pub fn streams_stdin(&self) -> bool {
        matches!(self.state, State::Running(stdin) if stdin != Stdin::Absent)
    }

    /// Whether the session takes the client's bytes now, as standard input for the running
    /// command ([`handle_stdin`](Self::handle_stdin)): the input is streamed, no chunk is with
    /// the host, and it has not ended. While not, the host leaves the client's bytes unread
    /// (it watches the connection for a hang-up only), so that a client sending faster than
    /// the command reads is held back by the connection itself.
    pub fn takes_stdin(&self) -> bool {
        self.outbox.is_empty() && matches!(self.state, State::Running(Stdin::Open | Stdin::Unread))
    }

    /// Takes the client's bytes received while its command runs, reading them as
    /// `stdin` frames; returns how many it consumed and what the host is to do: write
    /// [`StdinInput::Bytes`] to the command (a slice of `input`) and report it
    /// [written](Self::handle_stdin_written), or close the command's input at
    /// [`StdinInput::End`]. Takes nothing while it does not [take stdin](Self::takes_stdin).
    ///
    /// A client that breaks the protocol here (a frame that is not `stdin` or `stdin_end`,
    /// broken framing, a chunk that does not match its digest: the bytes before it already
    /// went to the command) is refused with an error frame, which ends its command's reply,
    /// and [`poll_action`](Self::poll_action) then asks to close: kill the command and close.
    pub fn handle_stdin<'i>(&mut self, input: &'i [u8]) -> (usize, Option<StdinInput<'i>>) {
        if !self.takes_stdin() {
            return (0, None);
        }
        let mut used = 0;
        loop {
            let (n, event) = match self.decoder.feed(&input[used..]) {
                Ok(step) => step,
                Err(e) => {
                    let refused = self.refusal.set_closing(ErrorCode::BadFrame, e);
                    self.refuse(refused);
                    return (used, None);
                }
            };
            used += n;
            match event {
                Event::NeedMore => return (used, None),
                Event::Head(info) => {
                    let resize_ok = self.pty.is_some();
                    if let Err(breach) = self.admit_stdin_head(info.body_len, resize_ok) {
                        let refused = breach.write_to(&mut self.refusal);
                        self.refuse(refused);
                        return (used, None);
                    }
                }
                Event::Body(chunk) => {
                    if self.state == State::Running(Stdin::Open) && !chunk.is_empty() {
                        self.state = State::Running(Stdin::Held);
                        return (used, Some(StdinInput::Bytes(chunk)));
                    }
                }
                Event::End(_) => {
                    match core::mem::replace(&mut self.stdin_frame, StdinFrame::Between) {
                        StdinFrame::End => {
                            self.state = State::Running(Stdin::Ended);
                            return (used, Some(StdinInput::End));
                        }
                        StdinFrame::Resize(size) => return (used, Some(StdinInput::Resize(size))),
                        StdinFrame::Between | StdinFrame::Bytes => {}
                    }
                }
            }
        }
    }

    /// The chunk [`handle_stdin`](Self::handle_stdin) handed out is written to the command:
    /// the session takes input again.
    pub fn handle_stdin_written(&mut self) -> Result<(), SessionError> {
        if self.state != State::Running(Stdin::Held) {
            return Err(SessionError::OutOfOrder);
        }
        self.state = State::Running(Stdin::Open);
        Ok(())
    }

    /// The command reads no more of its standard input (its pipe broke: it closed it, or it
    /// ended): the chunk with the host, if any, is dropped, and so is whatever the client
    /// still streams, up to its `stdin_end`, so that the client is never held up.
    pub fn handle_stdin_closed(&mut self) -> Result<(), SessionError> {
        match self.state {
            State::Running(Stdin::Open | Stdin::Held) => {
                self.state = State::Running(Stdin::Unread);
                Ok(())
            }
            State::Running(Stdin::Unread | Stdin::Ended) => Ok(()),
            _ => Err(SessionError::OutOfOrder),
        }
    }

    /// Requests answered so far: run to their end, or refused.
    pub fn answered(&self) -> u64 {
        self.answered
    }

    /// The next refusal or finished command for the host's log, oldest first.
    pub fn poll_event(&mut self) -> Option<ServerEvent<ExitReport>> {
        self.events.pop()
    }

    /// Whether the session is between requests with nothing left to send: the host may stop
    /// here and come back with the connection's next bytes.
    pub fn is_idle(&self) -> bool {
        self.outbox.is_empty()
            && match self.state {
                State::Reading(Body::AwaitingHead) => self.decoder.is_at_boundary(),
                State::Collecting(collect, _) => collect == Collect::FirstRead,
                State::Running(_) | State::DrainingStdin | State::Closing | State::Reading(_) => {
                    false
                }
            }
    }

    /// The next bytes to send; see [`Outbox::poll_transmit`].
    pub fn poll_transmit(&mut self, out: &mut [u8]) -> Option<Transmit> {
        self.outbox.poll_transmit(out)
    }

    /// What the host should do next; `None` while the session needs more input.
    pub fn poll_action(&self) -> Option<ShellAction<'_>> {
        match self.state {
            State::Running(_) => Some(ShellAction::Run {
                // Checked when the command became ready.
                command: command_text(&self.command[..self.command_len]).unwrap_or(""),
            }),
            State::Closing => Some(ShellAction::Close),
            State::Reading(_) | State::Collecting(..) | State::DrainingStdin => None,
        }
    }

    /// Takes bytes received at `now` and returns how many it consumed. It stops early once it
    /// has something to send or an action for the host: send, act, then feed it the rest. A
    /// seed client's bytes are one read of its socket per call (the seed's `recv(1024)` is the
    /// unit of a command).
    pub fn handle_input(&mut self, now: Instant, input: &[u8]) -> usize {
        self.wait.start_at(now);
        if !self.outbox.is_empty() {
            return 0;
        }
        match self.state {
            State::Reading(_) => self.read_framed(input),
            State::Collecting(collect, served) => self.collect_seed(now, input, collect, served),
            State::DrainingStdin => self.drain_stdin(input),
            State::Running(_) | State::Closing => 0,
        }
    }

    /// The client closed its side, or the connection broke: nothing more comes. A seed command
    /// being collected past its first read is whole.
    pub fn handle_eof(&mut self) {
        match self.state {
            State::Collecting(Collect::UntilPause { .. }, _) => self.seed_command_complete(),
            _ => self.state = State::Closing,
        }
    }

    /// When the session next needs [`handle_timeout`](Self::handle_timeout): the end of the
    /// wait for a request (a wait that began without a time is timed from `now`), a seed
    /// command's pause, the end of the wait for a client's `stdin_end`, or, while a command
    /// runs for a client that asked for keepalives, the next one (the host then calls it while
    /// the command runs, and sends what it queues).
    pub fn poll_timeout(&mut self, now: Instant) -> Option<Instant> {
        self.wait.start_at(now);
        match self.state {
            State::Reading(_) | State::Collecting(Collect::FirstRead, _) => {
                self.wait.deadline(self.rules.idle_timeout)
            }
            State::Collecting(Collect::UntilPause { since, last }, _) => earliest(
                Some(last + self.rules.seed_pause),
                Some(since + self.rules.idle_timeout),
            ),
            State::DrainingStdin => self.wait.deadline(self.stdin_drain()),
            State::Running(_) => {
                self.alive_wait.start_at(now);
                self.alive_wait.deadline(self.alive_every?)
            }
            State::Closing => None,
        }
    }

    /// Time has come to `now`. A seed client that paused (or kept trickling for the idle
    /// timeout) has sent its whole command; a client that sent no complete request within the
    /// idle timeout is refused (a framed one with an error frame; a seed client is sent
    /// nothing it did not ask for) and the connection closes.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout(now).is_none_or(|at| at > now) {
            return;
        }
        if let State::Collecting(Collect::UntilPause { .. }, _) = self.state {
            self.seed_command_complete();
            return;
        }
        if let State::Running(_) = self.state {
            // Silent for the interval: a keepalive, unless something is still to go out.
            if self.outbox.is_empty() && self.queue_alive().is_ok() {
                self.alive_wait = Wait::Since(now);
            }
            return;
        }
        if self.state == State::DrainingStdin {
            // The answer is out: the client is told nothing more, the connection just closes.
            let drain = self.stdin_drain().as_secs();
            let refused = self.refusal.set(
                ErrorCode::IdleTimeout,
                format_args!(
                    "the client's stdin did not end within {drain} s of its command's answer; \
                     closing the connection",
                ),
            );
            self.drain_failed(refused);
            return;
        }
        let refused = self.refusal.set_closing(
            ErrorCode::IdleTimeout,
            format_args!(
                "no complete request within {} s; closing the connection",
                self.rules.idle_timeout.as_secs()
            ),
        );
        match self.speaks {
            Speaks::Framed => self.refuse(refused),
            Speaks::Seed(..) => {
                self.events.push(ServerEvent::Refused(self.refusal.clone()));
                self.state = State::Closing;
            }
        }
    }

    /// A chunk of the running command's output (framed clients). Send it after the head the
    /// outbox then holds ([`Transmit::Body`]).
    pub fn handle_output(
        &mut self,
        stream: OutputStream,
        bytes: &[u8],
    ) -> Result<(), SessionError> {
        if !matches!(self.state, State::Running(_)) || self.speaks != Speaks::Framed {
            return Err(SessionError::OutOfOrder);
        }
        if !self.outbox.is_empty() {
            return Err(SessionError::OutboxFull);
        }
        if bytes.is_empty() {
            return Ok(());
        }
        let header = OutputHeader { op: stream.op() };
        self.outbox
            .push_frame_for(&OUTPUT_ENCODER, &header, bytes)
            .map_err(|_| SessionError::OutboxFull)?;
        self.alive_wait = Wait::Starting;
        Ok(())
    }

    /// The command ended (framed clients): its exit frame is queued.
    pub fn handle_exit(&mut self, report: ExitReport) -> Result<(), SessionError> {
        if !matches!(self.state, State::Running(_)) || self.speaks != Speaks::Framed {
            return Err(SessionError::OutOfOrder);
        }
        if !self.outbox.is_empty() {
            return Err(SessionError::OutboxFull);
        }
        self.finish_request();
        self.events.push(ServerEvent::Completed(report));
        self.outbox
            .push_frame(&PLAIN_ENCODER, &report.header())
            .map_err(|_| SessionError::OutboxFull)
    }

    /// The command ended (seed clients): `output` is its stdout followed by its stderr, all of
    /// it (the seed's reply announces its size first). Send it after the head the outbox then
    /// holds ([`Transmit::Body`]).
    pub fn handle_seed_output(
        &mut self,
        output: &[u8],
        report: ExitReport,
    ) -> Result<(), SessionError> {
        let Speaks::Seed(format, _) = self.speaks else {
            return Err(SessionError::OutOfOrder);
        };
        if !matches!(self.state, State::Running(_)) {
            return Err(SessionError::OutOfOrder);
        }
        if !self.outbox.is_empty() {
            return Err(SessionError::OutboxFull);
        }
        let mut head = [0u8; 256];
        let queued = encode_seed_reply_head(
            format,
            output,
            report.truncated,
            report.timed_out,
            &mut head,
        )
        .and_then(|n| self.outbox.push_bytes(&head[..n]));
        self.finish_request();
        self.events.push(ServerEvent::Completed(report));
        if queued.is_err() {
            // The client would wait for a reply that cannot come: end the connection instead.
            self.state = State::Closing;
            return Err(SessionError::OutboxFull);
        }
        self.outbox.push_body(output.len());
        Ok(())
    }

    /// The command could not be run to its end; `detail` says why, for the client.
    pub fn handle_run_failed(
        &mut self,
        failure: RunFailure,
        detail: impl fmt::Display,
    ) -> Result<(), SessionError> {
        if !matches!(self.state, State::Running(_)) {
            return Err(SessionError::OutOfOrder);
        }
        if !self.outbox.is_empty() {
            return Err(SessionError::OutboxFull);
        }
        let code = match failure {
            RunFailure::Spawn => ErrorCode::SpawnFailed,
            RunFailure::Lost => ErrorCode::RunFailed,
            RunFailure::BadCwd => ErrorCode::BadPath,
        };
        let refused = self.refusal.set(code, detail);
        self.refuse(refused);
        Ok(())
    }

    /// The client went away while its command ran: nothing more is sent.
    pub fn handle_client_gone(&mut self) {
        self.state = State::Closing;
    }

    fn finish_request(&mut self) {
        // A client streaming stdin goes on until its `stdin_end`, which it sends once it has
        // the answer: what it sends until then is read and dropped.
        let stdin_open = self.stdin_declared && self.state != State::Running(Stdin::Ended);
        self.answered += 1;
        self.command_len = 0;
        self.cwd_len = 0;
        self.overflowed = false;
        self.stdin_declared = false;
        self.alive_every = None;
        self.alive_wait = Wait::Off;
        self.pty = None;
        self.term.clear();
        self.wait = Wait::Starting;
        self.state = match self.speaks {
            Speaks::Framed if stdin_open => State::DrainingStdin,
            Speaks::Framed => State::Reading(Body::AwaitingHead),
            Speaks::Seed(_, served) => State::Collecting(Collect::FirstRead, served),
        };
    }

    /// The command of the request is ready: keepalives start with one that says so, when the
    /// client asked for them.
    fn command_ready(&mut self) {
        self.state = State::Running(self.stdin_at_start());
        if self.alive_every.is_some() && self.queue_alive().is_ok() {
            self.alive_wait = Wait::Starting;
        }
    }

    /// Queues a keepalive, `{"op":"alive","total_size":0}`.
    fn queue_alive(&mut self) -> Result<(), EncodeError> {
        let alive = OpHeader { op: ShellOp::Alive };
        self.outbox.push_frame(&PLAIN_ENCODER, &alive)
    }

    /// The standard input of a command that becomes ready: streamed when its request said so.
    fn stdin_at_start(&self) -> Stdin {
        if self.stdin_declared {
            Stdin::Open
        } else {
            Stdin::Absent
        }
    }

    /// How long a client has to end its stdin once its command is answered.
    fn stdin_drain(&self) -> Duration {
        STDIN_DRAIN.min(self.rules.idle_timeout)
    }

    /// Checks the head of a frame that came while the client streams stdin: `stdin` (its
    /// body is input), `stdin_end` (without a body) or, where `resize_ok` (a pty request, or
    /// its input drained), `resize`; anything else breaks the protocol and closes the
    /// connection.
    fn admit_stdin_head(&mut self, body_len: u64, resize_ok: bool) -> Result<(), StdinBreach> {
        self.stdin_frame = match frame_op(&self.decoder) {
            Some(ShellOp::Stdin) => StdinFrame::Bytes,
            Some(ShellOp::StdinEnd) if body_len == 0 => StdinFrame::End,
            Some(ShellOp::StdinEnd) => return Err(StdinBreach::EndWithBody),
            Some(ShellOp::Resize) => match window_size(&self.decoder) {
                Some(size) if resize_ok && body_len == 0 => StdinFrame::Resize(size),
                _ => return Err(StdinBreach::BadResize),
            },
            _ => return Err(StdinBreach::OtherFrame),
        };
        Ok(())
    }

    /// Reads and drops the rest of the standard input of a request that is answered, up to
    /// its `stdin_end`, which ends the request.
    fn drain_stdin(&mut self, input: &[u8]) -> usize {
        let mut used = 0;
        while self.outbox.is_empty() && self.state == State::DrainingStdin {
            let (n, event) = match self.decoder.feed(&input[used..]) {
                Ok(step) => step,
                Err(e) => {
                    let refused = self.refusal.set(ErrorCode::BadFrame, e);
                    self.drain_failed(refused);
                    return used;
                }
            };
            used += n;
            match event {
                Event::NeedMore => return used,
                Event::Head(info) => {
                    // A resize that crossed the command's answer is dropped with the rest.
                    if let Err(breach) = self.admit_stdin_head(info.body_len, true) {
                        let refused = breach.write_to(&mut self.refusal);
                        self.drain_failed(refused);
                        return used;
                    }
                }
                Event::Body(_) => {}
                Event::End(_) => {
                    if core::mem::replace(&mut self.stdin_frame, StdinFrame::Between)
                        == StdinFrame::End
                    {
                        self.wait = Wait::Starting;
                        self.state = State::Reading(Body::AwaitingHead);
                    }
                }
            }
        }
        used
    }

    /// The client broke the protocol after its request was answered: the connection closes,
    /// with nothing more sent (its answer is out), and the log says why.
    fn drain_failed(&mut self, _: Refused) {
        self.refusal.closes = true;
        self.events.push(ServerEvent::Refused(self.refusal.clone()));
        self.state = State::Closing;
    }

    /// Answers the current request with the refusal written into `self.refusal`, in the
    /// client's dialect.
    #[inline(never)]
    fn refuse(&mut self, _: Refused) {
        let closes = self.refusal.closes;
        let queued = match self.speaks {
            Speaks::Framed => self.outbox.push_frame(
                &PLAIN_ENCODER,
                &ErrorFrame::new(self.refusal.code, &self.refusal.message),
            ),
            Speaks::Seed(format, _) => self.queue_seed_refusal(format),
        };
        self.events.push(ServerEvent::Refused(self.refusal.clone()));
        self.finish_request();
        if closes || queued.is_err() {
            self.state = State::Closing;
        }
    }

    /// Queues a seed reply whose body is `unstick: <message>\n`, the message being the
    /// refusal's. Out of line: only a seed client's refusal makes room for its body.
    #[inline(never)]
    fn queue_seed_refusal(&mut self, format: SeedFormat) -> Result<(), EncodeError> {
        let mut body = heapless::String::<{ crate::session::MESSAGE_CAP + 16 }>::new();
        let _ = body.push_str("unstick: ");
        let _ = body.push_str(&self.refusal.message);
        let _ = body.push('\n');
        let mut head = [0u8; 256];
        let n = encode_seed_reply_head(format, body.as_bytes(), false, false, &mut head)?;
        self.outbox.push_bytes(&head[..n])?;
        self.outbox.push_bytes(body.as_bytes())
    }

    fn read_framed(&mut self, input: &[u8]) -> usize {
        let mut used = 0;
        while self.outbox.is_empty() && matches!(self.state, State::Reading(_)) {
            let (n, event) = match self.decoder.feed(&input[used..]) {
                Ok(step) => step,
                Err(e) => {
                    self.framing_failed(e);
                    return used;
                }
            };
            used += n;
            match event {
                Event::NeedMore => return used,
                Event::Head(info) => self.admit_head(info.body_len),
                Event::Body(chunk) => {
                    if self.state == State::Reading(Body::Command) {
                        let end = self.command_len + chunk.len();
                        self.command[self.command_len..end].copy_from_slice(chunk);
                        self.command_len = end;
                    }
                }
                Event::End(_) => self.request_complete(),
            }
        }
        used
    }

    fn framing_failed(&mut self, e: DecodeError) {
        // A body that fails its digest was read whole: the stream is still in step.
        let refused = self.refusal.set(ErrorCode::BadFrame, e);
        self.refusal.closes = !e.is_recoverable();
        self.refuse(refused);
    }

    /// Checks a request's head: the token (a refusal that closes at once, without waiting for
    /// the body), the op and the command's length (refused once the body has been dropped).
    fn admit_head(&mut self, body_len: u64) {
        let header = match read_request(&self.decoder) {
            Ok(header) => header,
            Err(e) => {
                self.state = State::Reading(Body::Refused(ErrorCode::BadHeader));
                let _held = self.refusal.set(
                    ErrorCode::BadHeader,
                    format_args!("the request header does not fit: {e}"),
                );
                return;
            }
        };
        // An info request needs no token: its reply holds nothing secret.
        if header.op.to_bounded::<16>().get() == Some(ShellOp::Info.as_str()) {
            if body_len > 0 {
                let refused = self
                    .refusal
                    .set_closing(ErrorCode::BadHeader, "an info request has no body");
                self.refuse(refused);
            } else {
                self.state = State::Reading(Body::Info);
            }
            return;
        }
        if let Some(expected) = self.rules.token {
            let message = match header.token {
                None => Some("this server requires a token: pass --token or set UNSTICK_TOKEN"),
                Some(presented) if escaped_token_matches(expected, Some(presented)) => None,
                Some(_) => Some("the token does not match the server's"),
            };
            if let Some(message) = message {
                let refused = self.refusal.set_closing(ErrorCode::Unauthorized, message);
                self.refuse(refused);
                return;
            }
        }
        let op = header.op.to_bounded::<16>();
        self.cwd_len = 0;
        let is_exec = op.get().unwrap_or("").parse() == Ok(ShellOp::Exec);
        let pty = header.pty.as_ref().filter(|_| is_exec);
        // Its stdin frames follow the request whatever becomes of it: they are read to their
        // end, into the command or dropped. A terminal's input is the client's.
        self.stdin_declared = is_exec && (header.stdin == Some(true) || pty.is_some());
        let bad_term = match pty.map(|pty| keep_pty(pty, &mut self.term)) {
            Some(Ok(size)) => {
                self.pty = Some(size);
                None
            }
            Some(Err(bad)) => Some(bad),
            None => None,
        };
        self.alive_every = header
            .alive
            .filter(|_| is_exec)
            .map(|ms| Duration::from_millis(ms).clamp(ALIVE_MIN, ALIVE_MAX));
        let refused = if !is_exec {
            Some(unknown_op(&mut self.refusal, header.op))
        } else if pty.is_some() && !self.rules.pty {
            Some(no_pty(&mut self.refusal))
        } else if self.stdin_declared && !self.rules.stdin {
            Some(self.refusal.set_closing(
                ErrorCode::Unsupported,
                "this server does not pass standard input on to its commands; run the \
                 command without it (`< /dev/null`)",
            ))
        } else if let Some(bad) = bad_term {
            Some(bad.write_to(&mut self.refusal))
        } else if let Some(Err(bad)) = header
            .cwd
            .map(|cwd| keep_cwd(cwd, self.command, &mut self.cwd_len))
        {
            Some(bad.write_to(&mut self.refusal))
        } else if body_len > self.max_command_len() as u64 {
            let max_command_len = self.max_command_len();
            Some(self.refusal.set(
                ErrorCode::CommandTooLong,
                format_args!(
                    "command of {body_len} bytes is longer than the {max_command_len}-byte limit; send a long \
                     script as a file and run that",
                ),
            ))
        } else {
            None
        };
        self.command_len = 0;
        self.state = match refused {
            Some(Refused { .. }) => State::Reading(Body::Refused(self.refusal.code)),
            None => State::Reading(Body::Command),
        };
    }

    fn request_complete(&mut self) {
        match self.state {
            State::Reading(Body::Command) => {
                match command_text(&self.command[..self.command_len]) {
                    Ok(_) => self.command_ready(),
                    Err(e) => {
                        let refused = self.refusal.set(ErrorCode::BadCommand, e);
                        self.refuse(refused);
                    }
                }
            }
            State::Reading(Body::Info) => self.answer_info(),
            State::Reading(Body::Refused(_)) => self.refuse(Refused::HELD),
            _ => {}
        }
    }

    /// Answers an `info` request with the host's facts and the session's own limits.
    fn answer_info(&mut self) {
        let mut known = EndpointInfo::new(Protocols::SHELL);
        known.max_header = Some(CAP as u64);
        known.max_command = Some(self.max_command_len() as u64);
        known.pty = Some(self.rules.pty);
        let reply = self.info.completed_by(&known);
        let queued = self.outbox.push_frame(&PLAIN_ENCODER, &reply);
        self.finish_request();
        if queued.is_err() {
            self.state = State::Closing;
        }
    }

    fn collect_seed(
        &mut self,
        now: Instant,
        input: &[u8],
        collect: Collect,
        served: SeedServed,
    ) -> usize {
        let room = self.max_command_len() - self.command_len;
        let kept = input.len().min(room);
        self.command[self.command_len..self.command_len + kept].copy_from_slice(&input[..kept]);
        self.command_len += kept;
        self.overflowed |= kept < input.len();
        let whole_read = collect == Collect::FirstRead && input.len() < SEED_COMMAND_READ;
        if whole_read || self.overflowed {
            self.seed_command_complete();
        } else {
            let since = match collect {
                Collect::FirstRead => now,
                Collect::UntilPause { since, .. } => since,
            };
            self.state = State::Collecting(Collect::UntilPause { since, last: now }, served);
        }
        input.len()
    }

    fn seed_command_complete(&mut self) {
        let command = &self.command[..self.command_len];
        if self.overflowed {
            let max_command_len = self.max_command_len();
            let refused = self.refusal.set_closing(
                ErrorCode::CommandTooLong,
                format_args!("the command is longer than the {max_command_len}-byte limit"),
            );
            self.refuse(refused);
        } else if foreign::holds_http_request_line(command) {
            let mut reply = [0u8; 256];
            let n = foreign::encode_reply(ForeignProtocol::Http, "shell", &mut reply);
            let _ = self.outbox.push_bytes(&reply[..n]);
            let _logged = self.refusal.set_closing(
                ErrorCode::ForeignProtocol,
                "a raw-text command holds an HTTP request line",
            );
            self.events.push(ServerEvent::Refused(self.refusal.clone()));
            self.finish_request();
            self.state = State::Closing;
        } else if let Err(e) = command_text(command) {
            let refused = self.refusal.set(ErrorCode::BadCommand, e);
            self.refuse(refused);
        } else {
            self.state = State::Running(Stdin::Absent);
        }
    }
}

impl<'a, const CAP: usize, const OUT: usize> Session for ShellServerSession<'a, CAP, OUT> {
    type Received<'i> = core::convert::Infallible;
    type Error = core::convert::Infallible;
    type Action<'s>
        = ShellAction<'s>
    where
        Self: 's;
    type Event = ServerEvent<ExitReport>;

    fn handle_input<'i>(
        &mut self,
        now: Instant,
        input: &'i [u8],
    ) -> Result<(usize, Option<Self::Received<'i>>), Self::Error> {
        Ok((ShellServerSession::handle_input(self, now, input), None))
    }

    fn handle_eof(&mut self) -> Result<Option<Self::Received<'static>>, Self::Error> {
        ShellServerSession::handle_eof(self);
        Ok(None)
    }

    fn poll_timeout(&mut self, now: Instant) -> Option<Instant> {
        ShellServerSession::poll_timeout(self, now)
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error> {
        ShellServerSession::handle_timeout(self, now);
        Ok(())
    }

    fn poll_transmit(&mut self, out: &mut [u8]) -> Option<Transmit> {
        ShellServerSession::poll_transmit(self, out)
    }

    fn poll_action(&self) -> Option<ShellAction<'_>> {
        ShellServerSession::poll_action(self)
    }

    fn poll_event(&mut self) -> Option<Self::Event> {
        ShellServerSession::poll_event(self)
    }

    fn is_idle(&self) -> bool {
        ShellServerSession::is_idle(self)
    }
}

/// What a shell server makes of a new connection's first bytes (see [`judge_opening`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opening {
    /// Too few bytes to tell: wait for more, or for the client to pause (a pause decides).
    Undecided,
    /// A framed client.
    Framed,
    /// A seed client, answered in this format.
    Seed(SeedFormat),
    /// Refused before anything is read into it: log `code` and `reason`, send `reply` (see
    /// [`OpeningReply::encode`]) and close.
    Refused {
        /// The code the refusal is logged with.
        code: ErrorCode,
        /// Why, for the log.
        reason: &'static str,
        /// What the client is sent.
        reply: OpeningReply,
    },
}

/// What a client refused at its opening is sent before the connection closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpeningReply {
    /// Another protocol's terms ([`foreign::encode_reply`]).
    Foreign(ForeignProtocol),
    /// One line of text: raw text was sent and seed clients are not served.
    SeedDisabled,
    /// A seed reply in this format: the server needs a token, which a seed client cannot send.
    SeedNeedsToken(SeedFormat),
}

/// The line a raw-text client gets when seed clients are not served.
pub const SEED_DISABLED_REPLY: &str = "unstick: this server takes framed requests only (use \
    `unstick shell connect`); its operator can serve seed-style clients with --seed-reply \
    json|size|raw\n";

/// The body of the seed reply a seed client gets from a server with a token.
pub const SEED_NEEDS_TOKEN_REPLY: &str = "unstick: this server requires a token, which seed-style \
    clients cannot send; connect with `unstick shell connect --token ...`\n";

impl OpeningReply {
    /// Writes the reply into `out` and returns its length (0 when `out` is too small, or when
    /// the protocol is one that cannot show text).
    pub fn encode(self, out: &mut [u8]) -> usize {
        let text = match self {
            OpeningReply::Foreign(protocol) => {
                return foreign::encode_reply(protocol, "shell", out);
            }
            OpeningReply::SeedDisabled => {
                return copy_into(SEED_DISABLED_REPLY.as_bytes(), out);
            }
            OpeningReply::SeedNeedsToken(format) => (format, SEED_NEEDS_TOKEN_REPLY.as_bytes()),
        };
        let (format, body) = text;
        let Ok(head) = encode_seed_reply_head(format, body, false, false, out) else {
            return 0;
        };
        match copy_into(body, &mut out[head..]) {
            0 => 0,
            n => head + n,
        }
    }
}

fn copy_into(bytes: &[u8], out: &mut [u8]) -> usize {
    match out.get_mut(..bytes.len()) {
        Some(room) => {
            room.copy_from_slice(bytes);
            bytes.len()
        }
        None => 0,
    }
}

/// Judges a new connection's first bytes, as a shell server applying `rules` does: another
/// protocol's opening is refused (its fixed openings wait for more bytes however long the
/// client pauses); then a framed client is told from a seed client
/// ([`classify_greeting`](super::classify_greeting)), a short text taken as a seed command once
/// the client has `paused`; a seed client is served only with a reply format chosen and no
/// token set.
pub fn judge_opening(received: &[u8], paused: bool, rules: &ShellRules<'_>) -> Opening {
    match foreign::recognise(received, paused) {
        foreign::Recognition::Foreign(protocol) => {
            return Opening::Refused {
                code: ErrorCode::ForeignProtocol,
                reason: match protocol {
                    ForeignProtocol::Http => "the client opened with HTTP, not the shell protocol",
                    ForeignProtocol::Tls => {
                        "the client opened with TLS, not the shell protocol: start the server \
                         with --tls, or connect without tls://"
                    }
                    ForeignProtocol::Ssh => "the client opened with SSH, not the shell protocol",
                },
                reply: OpeningReply::Foreign(protocol),
            };
        }
        foreign::Recognition::Undecided => return Opening::Undecided,
        foreign::Recognition::NotForeign => {}
    }
    match super::classify_greeting(received) {
        super::Greeting::Framed => return Opening::Framed,
        super::Greeting::Undecided if !paused => return Opening::Undecided,
        super::Greeting::Seed | super::Greeting::Undecided => {}
    }
    match (rules.seed_reply, rules.token) {
        (None, _) => Opening::Refused {
            code: ErrorCode::SeedDisabled,
            reason: "raw text sent, and seed clients are not enabled",
            reply: OpeningReply::SeedDisabled,
        },
        (Some(format), Some(_)) => Opening::Refused {
            code: ErrorCode::Unauthorized,
            reason: "a seed client cannot present the token",
            reply: OpeningReply::SeedNeedsToken(format),
        },
        (Some(format), None) => Opening::Seed(format),
    }
}

/// Why a request's `"cwd"` is refused (with `bad_path`) before anything runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CwdRefusal {
    /// Longer than [`MAX_CWD_LEN`](super::MAX_CWD_LEN) bytes, or than the buffer holds.
    TooLong { cap: usize },
    /// `""`: not a path.
    Empty,
    /// It holds a NUL byte.
    ContainsNul,
}

impl CwdRefusal {
    /// Writes the refusal of this `"cwd"` into `refusal`.
    fn write_to(self, refusal: &mut Refusal) -> Refused {
        match self {
            CwdRefusal::TooLong { cap } => refusal.set(
                ErrorCode::BadPath,
                format_args!("the \"cwd\" is longer than the server's {cap}-byte limit"),
            ),
            CwdRefusal::Empty => refusal.set(
                ErrorCode::BadPath,
                "the \"cwd\" is empty; leave it out to run in the server's working directory",
            ),
            CwdRefusal::ContainsNul => refusal.set(
                ErrorCode::BadPath,
                "the \"cwd\" contains a NUL byte, which no path can hold",
            ),
        }
    }
}

/// Keeps a request's working directory in the last bytes of `command` and sets `cwd_len` to
/// its length. The buffer is free: the command's body comes after the head.
fn keep_cwd(
    cwd: EscapedText<'_>,
    command: &mut [u8],
    cwd_len: &mut usize,
) -> Result<(), CwdRefusal> {
    *cwd_len = 0;
    let cap = command.len().min(super::MAX_CWD_LEN);
    let len = cwd
        .unescape_into_bytes(&mut command[..cap])
        .map_err(|_| CwdRefusal::TooLong { cap })?;
    if len == 0 {
        return Err(CwdRefusal::Empty);
    }
    if command[..len].contains(&0) {
        return Err(CwdRefusal::ContainsNul);
    }
    let start = command.len() - len;
    command.copy_within(..len, start);
    *cwd_len = len;
    Ok(())
}

/// A request's `"pty"` names a `"term"` that is no terminal type; refused with `bad_header`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BadTerm;

impl BadTerm {
    /// Writes the refusal of this `"term"` into `refusal`.
    #[inline(never)]
    fn write_to(self, refusal: &mut Refusal) -> Refused {
        refusal.set(
            ErrorCode::BadHeader,
            format_args!(
                "the pty's \"term\" is a terminal type of at most {MAX_TERM_LEN} printable \
                 ASCII characters, such as \"xterm-256color\""
            ),
        )
    }
}

/// Keeps a request's `"pty"` terminal type in `term`, checked to be a name (a `TERM` value)
/// of at most [`MAX_TERM_LEN`] bytes, and returns its size.
fn keep_pty(
    pty: &PtyHeader<EscapedText<'_>>,
    term: &mut heapless::String<MAX_TERM_LEN>,
) -> Result<WindowSize, BadTerm> {
    term.clear();
    if let Some(text) = pty.term {
        let text = text.to_bounded::<MAX_TERM_LEN>();
        let name = text
            .get()
            .filter(|t| t.bytes().all(|b| b.is_ascii_graphic() && b != b'='))
            .ok_or(BadTerm)?;
        // Fits: both hold MAX_TERM_LEN bytes.
        let _ = term.push_str(name);
    }
    Ok(WindowSize {
        rows: pty.rows,
        cols: pty.cols,
    })
}

/// The refusal of a pty request by a host that runs no command on a terminal. Out of line, as
/// every refusal's words are.
#[inline(never)]
fn no_pty(refusal: &mut Refusal) -> Refused {
    refusal.set_closing(
        ErrorCode::Unsupported,
        "this server runs no command on a pseudo-terminal (a device has none, and a Windows \
         server does not implement ConPTY); run the command without one (`-T`)",
    )
}

/// The refusal of an op other than `exec`. Out of line: only such a request makes room on the
/// stack for the op's text (up to [`TOKEN_CAP`] bytes, as a token's).
#[inline(never)]
fn unknown_op(refusal: &mut Refusal, op: EscapedText<'_>) -> Refused {
    let op = op.to_bounded::<TOKEN_CAP>();
    refusal.set(
        ErrorCode::UnknownOp,
        format_args!(
            "this is the shell server; it serves \"op\":\"exec\" and \"info\" only, not \"{}\"",
            PeerText::new(shortened(op.get().unwrap_or("")))
        ),
    )
}

/// At most 64 bytes of peer text for a message, cut at a character boundary.
fn shortened(text: &str) -> &str {
    let mut cut = text.len().min(64);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
}

/// Writes the head of a seed-mode reply holding `body` in `format` into `out` and returns its
/// length: the `json` header frame's prefix and header (with the body's MD5), the `size`
/// format's length prefix, or nothing for `raw`. The body follows it on the wire.
pub fn encode_seed_reply_head(
    format: SeedFormat,
    body: &[u8],
    truncated: bool,
    timed_out: bool,
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    match format {
        SeedFormat::Json => {
            let header = SeedReplyHeader {
                file_name: "output",
                truncated,
                timed_out,
            };
            SEED_REPLY_ENCODER.encode_head_for(&header, body, out)
        }
        SeedFormat::Size => crate::encode_plain_head(&Profile::I32_LE, body.len() as u64, out),
        SeedFormat::Raw => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    /// Tests that are not about time all happen at one instant.
    const NOW: Instant = Instant::ZERO;
    use crate::shell::Termination;
    use std::string::{String, ToString};
    use std::vec::Vec;

    /// What the session decided for one request.
    #[derive(Debug, PartialEq, Eq)]
    enum Seen {
        Run(String),
        Refused(&'static str, bool),
        Closed,
    }

    fn frame(header: &str, body: &[u8]) -> Vec<u8> {
        let mut frame = (header.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(header.as_bytes());
        frame.extend_from_slice(body);
        frame
    }

    const DONE: ExitReport = ExitReport {
        termination: Termination::Exited(0),
        truncated: false,
        timed_out: false,
    };

    /// Drives a session over `wire`, `step` bytes per read, answering every command with an
    /// empty exit; returns the decisions and the bytes sent. Bounded: every step consumes input
    /// or ends a request.
    fn serve(
        rules: ShellRules<'_>,
        dialect: Dialect,
        wire: &[u8],
        step: usize,
    ) -> (Vec<Seen>, Vec<u8>) {
        let mut command = [0u8; 64];
        let mut session = ShellServerSession::<1024>::new(rules, dialect, &mut command);
        let (mut seen, mut sent) = (Vec::new(), Vec::new());
        let mut out = [0u8; 4096];
        let mut at = 0;
        for _ in 0..100_000 {
            while let Some(t) = session.poll_transmit(&mut out) {
                if let Transmit::Bytes(n) = t {
                    sent.extend_from_slice(&out[..n]);
                }
            }
            while let Some(event) = session.poll_event() {
                if let ServerEvent::Refused(r) = event {
                    seen.push(Seen::Refused(r.code.as_str(), r.closes));
                }
            }
            match session.poll_action() {
                Some(ShellAction::Run { command }) => {
                    seen.push(Seen::Run(command.to_string()));
                    match dialect {
                        Dialect::Framed => session.handle_exit(DONE).unwrap(),
                        Dialect::Seed(_) => session.handle_seed_output(b"", DONE).unwrap(),
                    }
                }
                Some(ShellAction::Close) => {
                    seen.push(Seen::Closed);
                    return (seen, sent);
                }
                None => {
                    if at == wire.len() {
                        session.handle_eof();
                        continue;
                    }
                    let end = (at + step).min(wire.len());
                    let used = session.handle_input(NOW, &wire[at..end]);
                    at += used;
                }
            }
        }
        panic!("the session did not finish");
    }

    #[test]
    fn requests_in_any_chunking_are_run_or_refused_and_the_stream_stays_in_step() {
        let rules = ShellRules {
            max_command_len: 16,
            ..ShellRules::default()
        };
        let mut wire = frame(r#"{"op":"exec","total_size":7}"#, b"echo hi");
        wire.extend(frame(r#"{"op":"ls","total_size":3}"#, b"abc"));
        wire.extend(frame(r#"{"total_size":2}"#, b"ls"));
        wire.extend(frame(r#"{"op":"exec","total_size":2}"#, &[0xc3, 0x28]));
        wire.extend(frame(r#"{"op":"exec","total_size":5}"#, b"ls\0-l"));
        wire.extend(frame(r#"{"op":"exec","total_size":20}"#, &[b'x'; 20]));
        wire.extend(frame(
            r#"{"op":"exec","total_size":4,"xxh3":"00000000000000000000000000000000"}"#,
            b"true",
        ));
        wire.extend(frame(
            r#"{"op":"exec","total_size":8}"#,
            "echo 新".as_bytes(),
        ));
        for step in [1, 2, 3, 7, 64, 4096] {
            let (seen, _) = serve(rules, Dialect::Framed, &wire, step);
            assert_eq!(
                seen,
                [
                    Seen::Run("echo hi".into()),
                    Seen::Refused("unknown_op", false),
                    Seen::Refused("bad_header", false),
                    Seen::Refused("bad_command", false),
                    Seen::Refused("bad_command", false),
                    Seen::Refused("command_too_long", false),
                    Seen::Refused("bad_frame", false),
                    Seen::Run("echo 新".into()),
                    Seen::Closed,
                ],
                "step {step}"
            );
        }
    }

    #[test]
    fn info_is_answered_without_the_token_with_the_sessions_limits_and_the_hosts_facts() {
        use crate::info::InfoClientSession;
        let rules = ShellRules {
            token: Some("s3cret"),
            max_command_len: 40,
            ..ShellRules::default()
        };
        let mut wire = frame(r#"{"op":"info","total_size":0}"#, b"");
        wire.extend(frame(r#"{"op":"exec","total_size":4}"#, b"true"));
        for step in [1, 2, 5, 4096] {
            let (seen, sent) = serve(rules, Dialect::Framed, &wire, step);
            // The info request grants nothing: the exec after it still needs the token.
            assert_eq!(
                seen,
                [Seen::Refused("unauthorized", true), Seen::Closed],
                "step {step}"
            );
            let mut client = InfoClientSession::<1024>::new();
            let (used, done) = client.handle_input(NOW, &sent).unwrap();
            assert!(done && used < sent.len(), "step {step}");
            let info = client.reply().unwrap();
            assert_eq!(info.protocols, Protocols::SHELL);
            assert_eq!((info.max_header, info.max_command), (Some(1024), Some(40)));
            assert_eq!((info.max_path, info.max_file_size), (None, None));
            assert!(!sent.windows(6).any(|w| w == b"s3cret"));
        }
        let mut host = EndpointInfo::new(Protocols::FILE);
        host.platform = Some("linux-x86_64");
        let mut command = [0u8; 64];
        let mut session =
            ShellServerSession::<256>::new(ShellRules::default(), Dialect::Framed, &mut command)
                .with_info(host);
        let request = frame(r#"{"op":"info"}"#, b"");
        assert_eq!(session.handle_input(NOW, &request), request.len());
        let mut out = [0u8; 512];
        let Some(Transmit::Bytes(n)) = session.poll_transmit(&mut out) else {
            panic!("an info reply")
        };
        assert!(session.is_idle() && session.answered() == 1);
        assert_eq!(session.poll_action(), None);
        let mut client = InfoClientSession::<1024>::new();
        assert_eq!(client.handle_input(NOW, &out[..n]).unwrap(), (n, true));
        let info = client.reply().unwrap();
        assert_eq!(info.protocols, Protocols::BOTH);
        assert_eq!((info.max_header, info.max_command), (Some(256), Some(64)));
        assert_eq!(info.platform, Some("linux-x86_64"));
        // With a body, it is refused, and the connection closed without reading it.
        let (seen, _) = serve(
            ShellRules::default(),
            Dialect::Framed,
            &frame(r#"{"op":"info","total_size":3}"#, b"abc"),
            4,
        );
        assert_eq!(seen, [Seen::Refused("bad_header", true), Seen::Closed]);
    }

    #[test]
    fn replies_are_output_frames_then_the_exit_frame() {
        let mut command = [0u8; 64];
        let mut session =
            ShellServerSession::<256>::new(ShellRules::default(), Dialect::Framed, &mut command);
        let wire = frame(r#"{"op":"exec","total_size":7}"#, b"echo hi");
        assert_eq!(session.handle_input(NOW, &wire), wire.len());
        session
            .handle_output(OutputStream::Stdout, b"hi\n")
            .unwrap();
        assert_eq!(
            session.handle_output(OutputStream::Stderr, b"x"),
            Err(SessionError::OutboxFull)
        );
        let mut out = [0u8; 256];
        let Some(Transmit::Bytes(n)) = session.poll_transmit(&mut out) else {
            panic!("a head")
        };
        assert_eq!(
            &out[..n],
            b"\x48\x00\x00\x00{\"op\":\"stdout\",\"total_size\":3,\"xxh3\":\"f4d0497cf9394caab34d1a3ab2bece70\"}"
        );
        assert_eq!(session.poll_transmit(&mut out), Some(Transmit::Body(3)));
        let killed = ExitReport {
            termination: Termination::Signaled(9),
            ..DONE
        };
        session.handle_exit(killed).unwrap();
        let Some(Transmit::Bytes(n)) = session.poll_transmit(&mut out) else {
            panic!("the exit frame")
        };
        assert_eq!(
            &out[..n],
            b"\x4b\x00\x00\x00{\"op\":\"exit\",\"signal\":9,\"truncated\":false,\"timed_out\":false,\"total_size\":0}"
        );
        assert!(session.is_idle());
        assert_eq!(session.handle_exit(DONE), Err(SessionError::OutOfOrder));
    }

    #[test]
    fn tokens_are_checked_before_anything_else_and_close_at_once() {
        let rules = ShellRules {
            token: Some("s3cret"),
            ..ShellRules::default()
        };
        let long = std::format!(
            r#"{{"op":"exec","token":"{}","total_size":4}}"#,
            "s".repeat(600)
        );
        let table: [(&str, Option<&str>); 9] = [
            (r#"{"op":"exec","token":"s3cre","total_size":4}"#, None),
            (r#"{"op":"exec","token":"s3cretx","total_size":4}"#, None),
            (r#"{"op":"exec","token":"","total_size":4}"#, None),
            (
                r#"{"op":"exec","token":"s3cret","total_size":4}"#,
                Some("true"),
            ),
            (
                r#"{"op":"exec","token":"s\u0033cret","total_size":4}"#,
                Some("true"),
            ),
            // Refused on its header alone, though the promised body never comes.
            (
                r#"{"op":"exec","token":"guess","total_size":1000000}"#,
                None,
            ),
            (r#"{"op":"exec","total_size":4}"#, None),
            (r#"{"op":"ls","token":"nope","total_size":4}"#, None),
            (&long, None),
        ];
        for (header, runs) in table {
            for step in [1, 5, 4096] {
                let (seen, _) = serve(rules, Dialect::Framed, &frame(header, b"true"), step);
                match runs {
                    Some(command) => assert_eq!(seen[0], Seen::Run(command.into()), "{header}"),
                    None => assert_eq!(
                        seen,
                        [Seen::Refused("unauthorized", true), Seen::Closed],
                        "{header}"
                    ),
                }
            }
        }
    }

    #[test]
    fn broken_framing_is_refused_and_closes_and_a_torn_request_just_closes() {
        let table: [&[u8]; 4] = [
            &[0, 0, 0, 0x80],
            &[0, 0, 0, 0],
            b"\x05\x00\x00\x00{abc}",
            b"\x19\x00\x00\x00{\"op\":\"exec\",\"total_size\":-1}",
        ];
        for wire in table {
            let (seen, sent) = serve(ShellRules::default(), Dialect::Framed, wire, 3);
            assert_eq!(
                seen,
                [Seen::Refused("bad_frame", true), Seen::Closed],
                "{wire:?}"
            );
            assert!(sent.windows(9).any(|w| w == b"bad_frame"));
        }
        let torn = frame(r#"{"op":"exec","total_size":9}"#, b"ech");
        let (seen, sent) = serve(ShellRules::default(), Dialect::Framed, &torn, 2);
        assert_eq!(seen, [Seen::Closed]);
        assert!(sent.is_empty());
    }

    /// Runs one framed request through a fresh session with a 64-byte command buffer; returns
    /// the command and working directory it was to run with, or the refusal's code.
    fn run_or_refusal(wire: &[u8]) -> Result<(String, Option<String>), &'static str> {
        let mut command = [0u8; 64];
        let rules = ShellRules::default();
        let mut session = ShellServerSession::<1024>::new(rules, Dialect::Framed, &mut command);
        let used = session.handle_input(NOW, wire);
        if let Some(ServerEvent::Refused(refusal)) = session.poll_event() {
            return Err(refusal.code.as_str());
        }
        assert_eq!(used, wire.len(), "the whole request is taken");
        let cwd = session.cwd().map(str::to_string);
        let Some(ShellAction::Run { command }) = session.poll_action() else {
            panic!("neither run nor refused: {wire:?}")
        };
        Ok((command.to_string(), cwd))
    }

    #[test]
    fn a_working_directory_rides_with_the_command_and_a_bad_one_is_refused() {
        type Expected<'a> = Result<(&'a str, Option<&'a str>), &'a str>;
        let table: [(&str, &[u8], Expected<'_>); 8] = [
            (r#"{"op":"exec","total_size":3}"#, b"pwd", Ok(("pwd", None))),
            (
                r#"{"op":"exec","cwd":"/tmp","total_size":3}"#,
                b"pwd",
                Ok(("pwd", Some("/tmp"))),
            ),
            (
                r#"{"op":"exec","cwd":"a \"q\" \u00e9","total_size":2}"#,
                b"ls",
                Ok(("ls", Some("a \"q\" é"))),
            ),
            (
                r#"{"op":"exec","cwd":"","total_size":2}"#,
                b"ls",
                Err("bad_path"),
            ),
            (
                r#"{"op":"exec","cwd":"a\u0000b","total_size":2}"#,
                b"ls",
                Err("bad_path"),
            ),
            (
                r#"{"op":"exec","cwd":7,"total_size":2}"#,
                b"ls",
                Err("bad_header"),
            ),
            // 60 bytes of directory leave 4 of the buffer's 64 for the command.
            (
                concat!(
                    r#"{"op":"exec","cwd":""#,
                    "/123456789012345678901234567890123456789012345678901234567890",
                    r#"","total_size":5}"#
                ),
                b"echo1",
                Err("command_too_long"),
            ),
            (
                concat!(
                    r#"{"op":"exec","cwd":""#,
                    "/12345678901234567890123456789012345678901234567890123456789",
                    r#"","total_size":4}"#
                ),
                b"echo",
                Ok((
                    "echo",
                    Some("/12345678901234567890123456789012345678901234567890123456789"),
                )),
            ),
        ];
        for (header, body, expected) in table {
            let got = run_or_refusal(&frame(header, body));
            let expected = expected.map(|(c, d)| (c.to_string(), d.map(str::to_string)));
            assert_eq!(got, expected, "{header}");
        }
        // Longer than the buffer: refused, never cut.
        let long = "/x".repeat(40);
        let header = std::format!(r#"{{"op":"exec","cwd":"{long}","total_size":2}}"#);
        assert_eq!(run_or_refusal(&frame(&header, b"ls")), Err("bad_path"));
    }

    #[test]
    fn the_working_directory_is_the_current_requests_only() {
        let mut command = [0u8; 64];
        let rules = ShellRules::default();
        let mut session = ShellServerSession::<1024>::new(rules, Dialect::Framed, &mut command);
        let mut out = [0u8; 1024];
        let first = frame(r#"{"op":"exec","cwd":"/srv","total_size":2}"#, b"ls");
        session.handle_input(NOW, &first);
        assert_eq!(session.cwd(), Some("/srv"));
        session
            .handle_run_failed(RunFailure::BadCwd, "/srv: no such directory")
            .unwrap();
        assert!(matches!(
            session.poll_event(),
            Some(ServerEvent::Refused(Refusal {
                code: ErrorCode::BadPath,
                ..
            }))
        ));
        while session.poll_transmit(&mut out).is_some() {}
        assert_eq!(session.cwd(), None);
        let second = frame(r#"{"op":"exec","total_size":3}"#, b"pwd");
        session.handle_input(NOW, &second);
        assert_eq!(
            session.poll_action(),
            Some(ShellAction::Run { command: "pwd" })
        );
        assert_eq!(session.cwd(), None);
        assert_eq!(session.max_command_len(), 64);
    }

    /// Runs without the `seed` feature too (`.ci/run` tests the core as the micro:bit's
    /// firmware is built).
    #[test]
    fn seed_clients_commands_run_only_in_a_build_that_serves_them() {
        let rules = ShellRules {
            seed_reply: Some(SeedFormat::Size),
            ..ShellRules::default()
        };
        let mut command = [0u8; 256];
        let mut session =
            ShellServerSession::<256>::new(rules, Dialect::Seed(SeedFormat::Size), &mut command);
        session.handle_input(NOW, b"echo hi");
        if SeedServed::in_this_build().is_some() {
            let action = session.poll_action();
            assert_eq!(action, Some(ShellAction::Run { command: "echo hi" }));
            return;
        }
        // Read as a frame: its first four bytes are a header length no frame has.
        let mut out = [0u8; 512];
        let Some(Transmit::Bytes(n)) = session.poll_transmit(&mut out) else {
            panic!("an error frame is sent")
        };
        assert!(
            std::str::from_utf8(&out[4..n])
                .unwrap()
                .contains(r#""code":"bad_frame""#),
            "{:?}",
            &out[..n]
        );
        assert!(matches!(
            session.poll_event(),
            Some(ServerEvent::Refused(_))
        ));
        assert_eq!(session.poll_action(), Some(ShellAction::Close));
    }

    #[test]
    fn seed_commands_are_one_read_or_collected_until_a_pause() {
        let rules = ShellRules {
            max_command_len: 2000,
            seed_reply: Some(SeedFormat::Size),
            ..ShellRules::default()
        };
        let mut command = [0u8; 2048];
        let mut session =
            ShellServerSession::<256>::new(rules, Dialect::Seed(SeedFormat::Size), &mut command);
        assert!(session.is_idle());
        session.handle_input(NOW, b"ls -l");
        assert_eq!(
            session.poll_action(),
            Some(ShellAction::Run { command: "ls -l" })
        );
        session.handle_seed_output(b"out", DONE).unwrap();
        let mut out = [0u8; 64];
        assert_eq!(session.poll_transmit(&mut out), Some(Transmit::Bytes(4)));
        assert_eq!(&out[..4], &3i32.to_le_bytes());
        assert_eq!(session.poll_transmit(&mut out), Some(Transmit::Body(3)));
        assert!(session.is_idle());
        assert_eq!(
            session.poll_event(),
            Some(ServerEvent::Completed(DONE)),
            "the command's end is reported for the log"
        );
        // A read that fills the seed's 1024 bytes goes on until the client pauses (200 ms).
        let ms = Instant::from_millis;
        let long = [b'a'; 1500];
        session.handle_input(ms(1_000), &long[..1024]);
        assert_eq!(session.poll_action(), None);
        assert_eq!(session.poll_timeout(ms(1_000)), Some(ms(1_200)));
        session.handle_input(ms(1_150), &long[1024..]);
        assert_eq!(session.poll_timeout(ms(1_150)), Some(ms(1_350)));
        session.handle_timeout(ms(1_349));
        assert_eq!(session.poll_action(), None, "no pause yet");
        session.handle_timeout(ms(1_350));
        let Some(ShellAction::Run { command }) = session.poll_action() else {
            panic!("the whole command runs")
        };
        assert_eq!(command.len(), 1500);
        assert_eq!(
            session.poll_timeout(ms(1_400)),
            None,
            "no timer while it runs"
        );
    }

    #[test]
    fn a_seed_client_that_never_pauses_is_cut_off_at_the_idle_timeout() {
        let rules = ShellRules {
            max_command_len: 100_000,
            seed_reply: Some(SeedFormat::Size),
            idle_timeout: Duration::from_secs(5),
            ..ShellRules::default()
        };
        let mut command = std::vec![0u8; 100_000];
        let mut session =
            ShellServerSession::<256>::new(rules, Dialect::Seed(SeedFormat::Size), &mut command);
        let ms = Instant::from_millis;
        session.handle_input(ms(0), &[b' '; 1024]);
        // A byte every 100 ms, under the pause, for as long as the client likes...
        let mut at = 0;
        while session.poll_action().is_none() {
            at += 100;
            assert!(at <= 5_000, "the collection ran past the idle timeout");
            session.handle_timeout(ms(at));
            session.handle_input(ms(at), b" ");
        }
        // ...is collected for the idle timeout, then run as it stands.
        assert_eq!(at, 5_000);
        assert!(matches!(
            session.poll_action(),
            Some(ShellAction::Run { .. })
        ));
    }

    #[test]
    fn a_request_that_does_not_come_whole_within_the_idle_timeout_is_refused_and_closes() {
        let rules = ShellRules {
            idle_timeout: Duration::from_secs(30),
            ..ShellRules::default()
        };
        let ms = Instant::from_millis;
        let mut command = [0u8; 64];
        let mut session = ShellServerSession::<1024>::new(rules, Dialect::Framed, &mut command);
        // The wait is timed from the first instant the session sees.
        assert_eq!(session.poll_timeout(ms(500)), Some(ms(30_500)));
        let request = frame(r#"{"op":"exec","total_size":2}"#, b"ls");
        // Trickling does not extend it: the whole request is due by then.
        session.handle_input(ms(29_000), &request[..10]);
        assert_eq!(session.poll_timeout(ms(29_000)), Some(ms(30_500)));
        session.handle_timeout(ms(30_499));
        assert_eq!(session.poll_action(), None);
        session.handle_timeout(ms(30_500));
        let Some(ServerEvent::Refused(refusal)) = session.poll_event() else {
            panic!("the silence is refused")
        };
        assert_eq!(
            (refusal.code, refusal.closes),
            (ErrorCode::IdleTimeout, true)
        );
        assert!(refusal.message.contains("within 30 s"));
        let mut out = [0u8; 512];
        let Some(Transmit::Bytes(n)) = session.poll_transmit(&mut out) else {
            panic!("a framed client is told")
        };
        assert!(out[..n].windows(12).any(|w| w == b"idle_timeout"));
        assert_eq!(session.poll_action(), Some(ShellAction::Close));
        // After a request is answered, the next wait starts from the instant after it.
        let mut command = [0u8; 64];
        let mut session = ShellServerSession::<1024>::new(rules, Dialect::Framed, &mut command);
        session.handle_input(ms(0), &request);
        assert_eq!(session.poll_timeout(ms(10)), None, "no timer while it runs");
        session.handle_exit(DONE).unwrap();
        while session.poll_transmit(&mut out).is_some() {}
        assert_eq!(session.poll_timeout(ms(90_000)), Some(ms(120_000)));
    }

    #[test]
    fn seed_refusals_are_answered_in_the_seed_format() {
        let rules = ShellRules {
            max_command_len: 1100,
            seed_reply: Some(SeedFormat::Raw),
            ..ShellRules::default()
        };
        let dialect = Dialect::Seed(SeedFormat::Raw);
        let (seen, sent) = serve(rules, dialect, b"ls\xff", 4096);
        assert_eq!(seen, [Seen::Refused("bad_command", false), Seen::Closed]);
        assert!(sent.starts_with(b"unstick: the command is not valid UTF-8"));
        let (seen, sent) = serve(rules, dialect, &[b'a'; 1200], 1024);
        assert_eq!(
            seen,
            [Seen::Refused("command_too_long", true), Seen::Closed]
        );
        assert_eq!(
            sent,
            b"unstick: the command is longer than the 64-byte limit\n"
        );
        let (seen, sent) = serve(rules, dialect, b"x\r\nGET / HTTP/1.1\r\n", 4096);
        assert_eq!(
            seen,
            [Seen::Refused("foreign_protocol", true), Seen::Closed]
        );
        assert!(sent.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
    }

    #[test]
    fn openings_are_judged_foreign_first_then_framed_or_seed() {
        let seed = ShellRules {
            seed_reply: Some(SeedFormat::Json),
            ..ShellRules::default()
        };
        let seed_with_token = ShellRules {
            token: Some("t"),
            ..seed
        };
        let closed = ShellRules::default();
        let refused = |opening: Opening| match opening {
            Opening::Refused { code, reply, .. } => Some((code, reply)),
            _ => None,
        };
        assert_eq!(judge_opening(b"", true, &seed), Opening::Undecided);
        assert_eq!(
            judge_opening(b"\x1d\x00\x00\x00{", false, &closed),
            Opening::Framed
        );
        assert_eq!(judge_opening(b"ls", false, &seed), Opening::Undecided);
        assert_eq!(
            judge_opening(b"ls", true, &seed),
            Opening::Seed(SeedFormat::Json)
        );
        assert_eq!(
            judge_opening(b"uname -a\n", false, &seed),
            Opening::Seed(SeedFormat::Json)
        );
        assert_eq!(
            refused(judge_opening(b"POST / HTTP/1.1\r\n", false, &seed)),
            Some((
                ErrorCode::ForeignProtocol,
                OpeningReply::Foreign(ForeignProtocol::Http)
            ))
        );
        // The start of a fixed opening waits however long the client pauses.
        assert_eq!(judge_opening(b"PO", true, &seed), Opening::Undecided);
        assert_eq!(
            refused(judge_opening(b"uname -a\n", false, &closed)),
            Some((ErrorCode::SeedDisabled, OpeningReply::SeedDisabled))
        );
        assert_eq!(
            refused(judge_opening(b"uname -a\n", false, &seed_with_token)),
            Some((
                ErrorCode::Unauthorized,
                OpeningReply::SeedNeedsToken(SeedFormat::Json)
            ))
        );
        let mut out = [0u8; 512];
        let n = OpeningReply::SeedDisabled.encode(&mut out);
        assert_eq!(&out[..n], SEED_DISABLED_REPLY.as_bytes());
        let n = OpeningReply::SeedNeedsToken(SeedFormat::Size).encode(&mut out);
        assert_eq!(
            &out[..4],
            &(SEED_NEEDS_TOKEN_REPLY.len() as i32).to_le_bytes()
        );
        assert_eq!(&out[4..n], SEED_NEEDS_TOKEN_REPLY.as_bytes());
        assert_eq!(OpeningReply::SeedDisabled.encode(&mut out[..8]), 0);
    }

    /// Rules for a host that passes stdin on.
    fn stdin_rules() -> ShellRules<'static> {
        ShellRules {
            stdin: true,
            ..ShellRules::default()
        }
    }

    /// An exec request for `command` that streams stdin.
    fn exec_stdin(command: &str) -> Vec<u8> {
        let header = std::format!(
            r#"{{"op":"exec","stdin":true,"total_size":{}}}"#,
            command.len()
        );
        frame(&header, command.as_bytes())
    }

    fn stdin_chunk(body: &[u8]) -> Vec<u8> {
        frame(
            &std::format!(r#"{{"op":"stdin","total_size":{}}}"#, body.len()),
            body,
        )
    }

    fn stdin_end() -> Vec<u8> {
        frame(r#"{"op":"stdin_end","total_size":0}"#, b"")
    }

    /// What a host passed to the command's stdin, fed `wire` in reads of `step` bytes once the
    /// command runs (each read only while the session takes stdin); whether the end came, and
    /// how much of `wire` the session took.
    fn pass_stdin(
        session: &mut ShellServerSession<'_, 1024>,
        wire: &[u8],
        step: usize,
    ) -> (Vec<u8>, bool, usize) {
        let (mut passed, mut at) = (Vec::new(), 0);
        for _ in 0..100_000 {
            if !session.takes_stdin() {
                break;
            }
            let end = (at + step).min(wire.len());
            let (used, input) = session.handle_stdin(&wire[at..end]);
            at += used;
            match input {
                Some(StdinInput::Bytes(bytes)) => {
                    assert!(!session.takes_stdin(), "one chunk at a time");
                    assert_eq!(session.handle_stdin(&wire[at..]), (0, None));
                    passed.extend_from_slice(bytes);
                    session.handle_stdin_written().unwrap();
                }
                Some(StdinInput::End) => return (passed, true, at),
                Some(StdinInput::Resize(_)) => {}
                None if at == wire.len() => break,
                None => {}
            }
        }
        (passed, false, at)
    }

    #[test]
    fn stdin_frames_reach_the_command_a_chunk_at_a_time_under_every_chunking() {
        let mut wire = exec_stdin("cat");
        let command_end = wire.len();
        wire.extend(stdin_chunk(b"hello "));
        wire.extend(stdin_chunk("wörld\n".as_bytes()));
        wire.extend(stdin_chunk(b""));
        wire.extend(stdin_end());
        let stdin_end_at = wire.len();
        wire.extend(frame(r#"{"op":"exec","total_size":3}"#, b"pwd"));
        for step in [1, 2, 3, 7, 64, 4096] {
            let mut command = [0u8; 64];
            let mut session =
                ShellServerSession::<1024>::new(stdin_rules(), Dialect::Framed, &mut command);
            let mut at = 0;
            while session.poll_action().is_none() {
                let end = (at + step).min(command_end);
                at += session.handle_input(NOW, &wire[at..end]);
            }
            assert_eq!(at, command_end, "step {step}");
            assert_eq!(
                session.poll_action(),
                Some(ShellAction::Run { command: "cat" })
            );
            assert!(session.streams_stdin());
            assert_eq!(
                session.handle_input(NOW, &wire[at..]),
                0,
                "stdin is not a request"
            );
            let (passed, ended, used) = pass_stdin(&mut session, &wire[at..], step);
            assert_eq!(passed, "hello wörld\n".as_bytes(), "step {step}");
            assert!(ended);
            assert_eq!(at + used, stdin_end_at, "nothing past stdin_end is taken");
            assert!(!session.takes_stdin());
            session.handle_exit(DONE).unwrap();
            let mut out = [0u8; 256];
            while session.poll_transmit(&mut out).is_some() {}
            assert!(session.is_idle(), "the request ends with its answer");
            let rest = &wire[stdin_end_at..];
            assert_eq!(session.handle_input(NOW, rest), rest.len());
            assert_eq!(
                session.poll_action(),
                Some(ShellAction::Run { command: "pwd" })
            );
            assert!(!session.streams_stdin());
        }
    }

    #[test]
    fn a_request_without_stdin_runs_as_before_and_its_stdin_is_empty() {
        let mut command = [0u8; 64];
        let mut session =
            ShellServerSession::<1024>::new(stdin_rules(), Dialect::Framed, &mut command);
        let mut wire = frame(r#"{"op":"exec","stdin":false,"total_size":3}"#, b"cat");
        wire.extend(stdin_chunk(b"x"));
        let used = session.handle_input(NOW, &wire);
        assert!(!session.streams_stdin() && !session.takes_stdin());
        assert_eq!(session.handle_stdin(&wire[used..]), (0, None));
        assert_eq!(
            session.handle_stdin_written(),
            Err(SessionError::OutOfOrder)
        );
        session.handle_exit(DONE).unwrap();
        let mut out = [0u8; 256];
        while session.poll_transmit(&mut out).is_some() {}
        assert!(session.is_idle());
        // A stdin frame that follows no request that declared one is no request.
        session.handle_input(NOW, &wire[used..]);
        let Some(ServerEvent::Refused(refusal)) = session.poll_event().and(session.poll_event())
        else {
            panic!("refused")
        };
        assert_eq!(refusal.code, ErrorCode::UnknownOp);
    }

    #[test]
    fn stdin_left_when_the_command_ends_is_read_and_dropped_up_to_its_end() {
        let mut wire = exec_stdin("head -c 3");
        let command_end = wire.len();
        wire.extend(stdin_chunk(b"abcdef"));
        wire.extend(stdin_chunk(b"ghi"));
        wire.extend(stdin_end());
        wire.extend(frame(r#"{"op":"exec","total_size":2}"#, b"ls"));
        for step in [1, 5, 4096] {
            let mut command = [0u8; 64];
            let mut session =
                ShellServerSession::<1024>::new(stdin_rules(), Dialect::Framed, &mut command);
            let mut at = session.handle_input(NOW, &wire[..command_end]);
            // The first chunk goes to the command, which takes 3 bytes and exits.
            let (used, input) = loop {
                let end = (at + step).min(wire.len());
                let (used, input) = session.handle_stdin(&wire[at..end]);
                if input.is_some() {
                    break (used, input);
                }
                at += used;
            };
            at += used;
            assert!(matches!(input, Some(StdinInput::Bytes(_))));
            session.handle_stdin_closed().unwrap();
            session.handle_exit(DONE).unwrap();
            let mut out = [0u8; 256];
            let Some(Transmit::Bytes(n)) = session.poll_transmit(&mut out) else {
                panic!("the exit frame goes out at once")
            };
            assert!(out[..n].windows(11).any(|w| w == br#""op":"exit""#));
            assert!(!session.is_idle() && session.poll_action().is_none());
            assert_eq!(session.poll_timeout(ms(0)), Some(ms(10_000)));
            while session.poll_action().is_none() {
                let end = (at + step).min(wire.len());
                at += session.handle_input(NOW, &wire[at..end]);
            }
            assert_eq!(
                session.poll_action(),
                Some(ShellAction::Run { command: "ls" }),
                "step {step}: the stream is in step after the dropped stdin"
            );
            assert_eq!(session.answered(), 1);
        }
    }

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    #[test]
    fn a_command_that_stops_reading_does_not_hold_the_client_up() {
        let mut command = [0u8; 64];
        let mut session =
            ShellServerSession::<1024>::new(stdin_rules(), Dialect::Framed, &mut command);
        let mut wire = exec_stdin("sleep 9 <&-");
        let used = session.handle_input(NOW, &wire);
        wire.drain(..used);
        wire.extend(stdin_chunk(b"abc"));
        wire.extend(stdin_chunk(b"def"));
        wire.extend(stdin_end());
        session.handle_stdin_closed().unwrap();
        // Everything is taken and dropped while the command still runs; its end is reported.
        let (passed, ended, used) = pass_stdin(&mut session, &wire, 4);
        assert_eq!((passed.len(), ended, used), (0, true, wire.len()));
        assert_eq!(
            session.poll_action(),
            Some(ShellAction::Run {
                command: "sleep 9 <&-"
            })
        );
        session.handle_exit(DONE).unwrap();
        let mut out = [0u8; 256];
        while session.poll_transmit(&mut out).is_some() {}
        assert!(session.is_idle(), "stdin_end came before the answer");
    }

    #[test]
    fn a_client_that_never_ends_its_stdin_is_closed_after_the_drain_limit() {
        let mut command = [0u8; 64];
        let mut session =
            ShellServerSession::<1024>::new(stdin_rules(), Dialect::Framed, &mut command);
        session.handle_input(ms(0), &exec_stdin("true"));
        session.handle_exit(DONE).unwrap();
        let mut out = [0u8; 256];
        while session.poll_transmit(&mut out).is_some() {}
        assert_eq!(session.poll_timeout(ms(1_000)), Some(ms(11_000)));
        // Chunks keep coming, but they do not extend the limit.
        let more = stdin_chunk(b"more");
        assert_eq!(session.handle_input(ms(5_000), &more), more.len());
        session.handle_timeout(ms(10_999));
        assert_eq!(session.poll_action(), None);
        session.handle_timeout(ms(11_000));
        assert_eq!(session.poll_action(), Some(ShellAction::Close));
        assert_eq!(
            session.poll_transmit(&mut out),
            None,
            "nothing more is sent"
        );
        let Some(ServerEvent::Refused(refusal)) = session.poll_event().and(session.poll_event())
        else {
            panic!("the close is logged")
        };
        assert!(refusal.closes && refusal.message.contains("did not end within 10 s"));
    }

    #[test]
    fn a_refused_request_that_declared_stdin_drops_it_and_the_connection_goes_on() {
        let mut wire = frame(
            r#"{"op":"exec","stdin":true,"cwd":"","total_size":3}"#,
            b"cat",
        );
        wire.extend(stdin_chunk(b"secret"));
        wire.extend(stdin_end());
        wire.extend(frame(r#"{"op":"exec","total_size":4}"#, b"true"));
        for step in [1, 3, 4096] {
            let (seen, _) = serve(stdin_rules(), Dialect::Framed, &wire, step);
            assert_eq!(
                seen,
                [
                    Seen::Refused("bad_path", false),
                    Seen::Run("true".into()),
                    Seen::Closed
                ],
                "step {step}"
            );
        }
        // A host that passes no stdin refuses it, and closes: the stdin is not read.
        let wire = [exec_stdin("cat"), stdin_end()].concat();
        let (seen, sent) = serve(ShellRules::default(), Dialect::Framed, &wire, 4096);
        assert_eq!(seen, [Seen::Refused("unsupported", true), Seen::Closed]);
        assert!(sent.windows(11).any(|w| w == b"unsupported"));
    }

    #[test]
    fn a_client_that_breaks_the_protocol_while_its_stdin_streams_is_refused_and_closed() {
        let table: [(&[u8], &str); 4] = [
            (
                &frame(r#"{"op":"exec","total_size":2}"#, b"ls"),
                "unknown_op",
            ),
            (
                &frame(r#"{"op":"stdin_end","total_size":1}"#, b"x"),
                "bad_header",
            ),
            (
                &frame(
                    r#"{"op":"stdin","total_size":2,"xxh3":"00000000000000000000000000000000"}"#,
                    b"ab",
                ),
                "bad_frame",
            ),
            (&[0xff, 0xff, 0xff, 0xff], "bad_frame"),
        ];
        for (input, code) in table {
            let mut command = [0u8; 64];
            let mut session =
                ShellServerSession::<1024>::new(stdin_rules(), Dialect::Framed, &mut command);
            session.handle_input(NOW, &exec_stdin("cat"));
            let mut at = 0;
            for _ in 0..4 {
                if session.poll_action() == Some(ShellAction::Close) {
                    break;
                }
                let (used, input) = session.handle_stdin(&input[at..]);
                at += used;
                if input.is_some() {
                    session.handle_stdin_written().unwrap();
                }
            }
            assert_eq!(session.poll_action(), Some(ShellAction::Close), "{code}");
            let mut out = [0u8; 512];
            let Some(Transmit::Bytes(n)) = session.poll_transmit(&mut out) else {
                panic!("{code}: an error frame ends the command's reply")
            };
            assert!(
                out[..n].windows(code.len()).any(|w| w == code.as_bytes()),
                "{code}"
            );
        }
    }

    /// Every frame `session` has queued, as (op, body length).
    fn sent_ops(session: &mut ShellServerSession<'_, 1024>) -> Vec<String> {
        let mut out = [0u8; 1024];
        let mut wire = Vec::new();
        while let Some(t) = session.poll_transmit(&mut out) {
            if let Transmit::Bytes(n) = t {
                wire.extend_from_slice(&out[..n]);
            }
        }
        let mut ops = Vec::new();
        let mut rest = &wire[..];
        while rest.len() >= 4 {
            let len = i32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
            let header = core::str::from_utf8(&rest[4..4 + len]).unwrap();
            let op = header.split('"').nth(3).unwrap_or("?").to_string();
            ops.push(op);
            // Output bodies are the host's; none is queued in these tests.
            rest = &rest[4 + len..];
        }
        ops
    }

    #[test]
    fn keepalives_go_to_clients_that_ask_while_their_command_is_silent() {
        let mut command = [0u8; 64];
        let mut session =
            ShellServerSession::<1024>::new(ShellRules::default(), Dialect::Framed, &mut command);
        session.handle_input(
            ms(0),
            &frame(r#"{"op":"exec","alive":1000,"total_size":8}"#, b"sleep 60"),
        );
        assert!(matches!(
            session.poll_action(),
            Some(ShellAction::Run { .. })
        ));
        let mut out = [0u8; 64];
        assert_eq!(session.poll_transmit(&mut out), Some(Transmit::Bytes(33)));
        assert_eq!(
            &out[..33],
            b"\x1d\x00\x00\x00{\"op\":\"alive\",\"total_size\":0}",
            "the command's start is confirmed"
        );
        assert_eq!(session.poll_timeout(ms(10)), Some(ms(1_010)));
        session.handle_timeout(ms(1_009));
        assert!(sent_ops(&mut session).is_empty());
        session.handle_timeout(ms(1_010));
        assert_eq!(sent_ops(&mut session), ["alive"]);
        assert_eq!(session.poll_timeout(ms(1_100)), Some(ms(2_010)));
        // Output is a sign of life too: the next keepalive is due an interval after it.
        session.handle_output(OutputStream::Stdout, b"x").unwrap();
        let mut out = [0u8; 256];
        while session.poll_transmit(&mut out).is_some() {}
        assert_eq!(session.poll_timeout(ms(1_500)), Some(ms(2_500)));
        session.handle_exit(DONE).unwrap();
        assert_eq!(sent_ops(&mut session), ["exit"]);
        assert_eq!(
            session.poll_timeout(ms(3_000)),
            Some(ms(3_000) + IDLE_TIMEOUT),
            "no keepalive once the command is answered"
        );
        // Not asked for: none, and no timer while the command runs.
        session.handle_input(
            ms(4_000),
            &frame(r#"{"op":"exec","total_size":8}"#, b"sleep 60"),
        );
        assert!(sent_ops(&mut session).is_empty());
        assert_eq!(session.poll_timeout(ms(4_000)), None);
        session.handle_exit(DONE).unwrap();
        sent_ops(&mut session);
        // The interval asked for is kept within bounds.
        for (asked, every) in [
            ("1", ALIVE_MIN),
            ("0", ALIVE_MIN),
            ("999999999", ALIVE_MAX),
            // Past 32 bits, up to the largest 64-bit count: still an interval, kept to the most.
            ("4294967296", ALIVE_MAX),
            ("18446744073709551615", ALIVE_MAX),
        ] {
            let header = std::format!(r#"{{"op":"exec","alive":{asked},"total_size":1}}"#);
            session.handle_input(ms(5_000), &frame(&header, b"x"));
            assert_eq!(sent_ops(&mut session), ["alive"]);
            assert_eq!(session.poll_timeout(ms(5_000)), Some(ms(5_000) + every));
            session.handle_exit(DONE).unwrap();
            sent_ops(&mut session);
        }
        // An interval that is not a count of milliseconds is a bad header.
        for bad in ["-1", "\"5s\"", "1.5", "18446744073709551616"] {
            let header = std::format!(r#"{{"op":"exec","alive":{bad},"total_size":1}}"#);
            assert_eq!(
                run_or_refusal(&frame(&header, b"x")),
                Err("bad_header"),
                "{bad}"
            );
        }
    }

    #[test]
    fn an_idle_framed_client_gets_an_error_frame_and_a_seed_client_nothing() {
        let mut command = [0u8; 64];
        let mut session =
            ShellServerSession::<256>::new(ShellRules::default(), Dialect::Framed, &mut command);
        session.handle_input(NOW, b"\x1d\x00");
        session.handle_timeout(NOW + IDLE_TIMEOUT);
        let mut out = [0u8; 256];
        let Some(Transmit::Bytes(n)) = session.poll_transmit(&mut out) else {
            panic!("an error frame")
        };
        assert!(out[..n].windows(12).any(|w| w == b"idle_timeout"));
        assert_eq!(session.poll_action(), Some(ShellAction::Close));
        let mut session = ShellServerSession::<256>::new(
            ShellRules::default(),
            Dialect::Seed(SeedFormat::Json),
            &mut command,
        );
        session.poll_timeout(NOW);
        session.handle_timeout(NOW + IDLE_TIMEOUT);
        assert_eq!(session.poll_transmit(&mut out), None);
        assert_eq!(session.poll_action(), Some(ShellAction::Close));
    }

    fn pty_rules() -> ShellRules<'static> {
        ShellRules {
            stdin: true,
            pty: true,
            ..ShellRules::default()
        }
    }

    fn resize(rows: u16, cols: u16) -> Vec<u8> {
        frame(
            &std::format!(r#"{{"op":"resize","rows":{rows},"cols":{cols},"total_size":0}}"#),
            b"",
        )
    }

    /// What a pty session hands its host, one step per item: bytes, sizes, the end.
    #[derive(Debug, PartialEq, Eq)]
    enum PtyInput {
        Bytes(Vec<u8>),
        Resize(u16, u16),
        End,
    }

    #[test]
    fn a_pty_request_streams_its_input_and_window_sizes_under_every_chunking() {
        let head =
            r#"{"op":"exec","pty":{"term":"xterm-256color","rows":24,"cols":80},"total_size":0}"#;
        let mut wire = frame(head, b"");
        let request_end = wire.len();
        wire.extend(stdin_chunk(b"echo $((6*7))\n"));
        wire.extend(resize(50, 132));
        wire.extend(stdin_chunk(b"\x03"));
        wire.extend(stdin_end());
        for step in [1, 2, 5, 64, 4096] {
            let mut command = [0u8; 64];
            let mut session =
                ShellServerSession::<1024>::new(pty_rules(), Dialect::Framed, &mut command);
            let mut at = 0;
            while session.poll_action().is_none() {
                let end = (at + step).min(request_end);
                at += session.handle_input(NOW, &wire[at..end]);
            }
            // An empty command on a pty: a login shell.
            assert_eq!(
                session.poll_action(),
                Some(ShellAction::Run { command: "" })
            );
            assert!(session.streams_stdin(), "a pty implies stdin");
            let terminal = session.terminal().unwrap();
            assert_eq!(terminal.term, "xterm-256color");
            assert_eq!(terminal.size, WindowSize { rows: 24, cols: 80 });
            let mut seen = Vec::new();
            for _ in 0..10_000 {
                if !session.takes_stdin() {
                    break;
                }
                let end = (at + step).min(wire.len());
                let (used, input) = session.handle_stdin(&wire[at..end]);
                at += used;
                match input {
                    Some(StdinInput::Bytes(b)) => {
                        match seen.last_mut() {
                            Some(PtyInput::Bytes(held)) => held.extend_from_slice(b),
                            _ => seen.push(PtyInput::Bytes(b.to_vec())),
                        }
                        session.handle_stdin_written().unwrap();
                    }
                    Some(StdinInput::Resize(size)) => {
                        seen.push(PtyInput::Resize(size.rows, size.cols));
                        assert!(session.takes_stdin(), "a size needs no acknowledgement");
                    }
                    Some(StdinInput::End) => seen.push(PtyInput::End),
                    None => {}
                }
            }
            assert_eq!(
                seen,
                [
                    PtyInput::Bytes(b"echo $((6*7))\n".to_vec()),
                    PtyInput::Resize(50, 132),
                    PtyInput::Bytes(b"\x03".to_vec()),
                    PtyInput::End,
                ],
                "step {step}"
            );
            assert_eq!(at, wire.len());
            session.handle_exit(DONE).unwrap();
            assert_eq!(session.terminal(), None, "the terminal was the request's");
        }
    }

    #[test]
    fn a_resize_crossing_the_answer_is_dropped_and_one_without_a_pty_breaks_the_protocol() {
        let mut command = [0u8; 64];
        let mut session =
            ShellServerSession::<1024>::new(pty_rules(), Dialect::Framed, &mut command);
        let wire = frame(
            r#"{"op":"exec","pty":{"rows":1,"cols":2},"total_size":3}"#,
            b"cat",
        );
        assert_eq!(session.handle_input(NOW, &wire), wire.len());
        assert_eq!(
            session.terminal().unwrap().term,
            "",
            "no term: the server's choice"
        );
        session.handle_exit(DONE).unwrap();
        let mut out = [0u8; 256];
        while session.poll_transmit(&mut out).is_some() {}
        let mut late = resize(3, 4);
        late.extend(stdin_end());
        assert_eq!(session.handle_input(NOW, &late), late.len());
        assert!(session.is_idle());

        // Without a pty, a resize is a frame that has no place in the input.
        let mut wire = exec_stdin("cat");
        wire.extend(resize(3, 4));
        let (seen, _) = serve(stdin_rules(), Dialect::Framed, &wire, 4096);
        assert_eq!(seen, [Seen::Run("cat".into()), Seen::Closed]);
        let mut command = [0u8; 64];
        let mut session =
            ShellServerSession::<1024>::new(pty_rules(), Dialect::Framed, &mut command);
        let start = exec_stdin("cat");
        assert_eq!(session.handle_input(NOW, &start), start.len());
        let bad = resize(3, 4);
        assert_eq!(session.handle_stdin(&bad).1, None);
        assert_eq!(session.poll_action(), Some(ShellAction::Close));
        let Some(ServerEvent::Refused(refusal)) = session.poll_event() else {
            panic!("a refusal")
        };
        assert_eq!((refusal.code, refusal.closes), (ErrorCode::BadHeader, true));
    }

    #[test]
    fn a_request_header_that_does_not_fit_is_refused_naming_its_member() {
        let table = [
            (
                r#"{"op":"exec","alive":"soon","total_size":2}"#,
                "`alive` has the wrong type (a string)",
            ),
            (
                r#"{"op":"exec","pty":{"rows":"a","cols":3},"total_size":2}"#,
                "`rows` has the wrong type",
            ),
            (r#"{"total_size":2}"#, "the header has no `op` member"),
            (
                r#"{"op":"exec","stdin":1,"total_size":2}"#,
                "`stdin` has the wrong type (a number)",
            ),
        ];
        for (header, expected) in table {
            let mut command = [0u8; 64];
            let mut session =
                ShellServerSession::<1024>::new(pty_rules(), Dialect::Framed, &mut command);
            let wire = frame(header, b"ls");
            assert_eq!(session.handle_input(NOW, &wire), wire.len());
            let Some(ServerEvent::Refused(refusal)) = session.poll_event() else {
                panic!("{header}: not refused")
            };
            assert_eq!(refusal.code, ErrorCode::BadHeader, "{header}");
            assert!(
                refusal
                    .message
                    .starts_with("the request header does not fit: ")
                    && refusal.message.contains(expected),
                "{header}: {}",
                refusal.message
            );
        }
    }

    #[test]
    fn a_pty_is_refused_where_the_host_has_none_and_a_bad_term_is_a_bad_header() {
        let wire = frame(
            r#"{"op":"exec","pty":{"term":"vt100","rows":24,"cols":80},"total_size":2}"#,
            b"ls",
        );
        // The device's rules: neither stdin nor a pty.
        let (seen, sent) = serve(ShellRules::default(), Dialect::Framed, &wire, 4096);
        assert_eq!(seen, [Seen::Refused("unsupported", true), Seen::Closed]);
        let sent = std::string::String::from_utf8_lossy(&sent);
        assert!(
            sent.contains("pseudo-terminal") && sent.contains("-T"),
            "{sent}"
        );
        let table = [
            r#"{"term":"xterm 256","rows":1,"cols":1}"#,
            r#"{"term":"TERM=x","rows":1,"cols":1}"#,
            r#"{"term":"xterm","rows":-1,"cols":1}"#,
            r#"{"term":"xterm"}"#,
        ];
        for pty in table {
            let mut wire = frame(
                &std::format!(r#"{{"op":"exec","pty":{pty},"total_size":2}}"#),
                b"ls",
            );
            wire.extend(stdin_end());
            let (seen, _) = serve(pty_rules(), Dialect::Framed, &wire, 4096);
            assert_eq!(seen[0], Seen::Refused("bad_header", false), "{pty}");
        }
        let long = "x".repeat(MAX_TERM_LEN + 1);
        let mut wire = frame(
            &std::format!(
                r#"{{"op":"exec","pty":{{"term":"{long}","rows":1,"cols":1}},"total_size":2}}"#
            ),
            b"ls",
        );
        wire.extend(stdin_end());
        let (seen, _) = serve(pty_rules(), Dialect::Framed, &wire, 4096);
        assert_eq!(seen[0], Seen::Refused("bad_header", false));
    }
}
