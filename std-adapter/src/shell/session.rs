//! One client connection, from its first bytes to its close.
//!
//! The steps: read the greeting (the first bytes) and classify it; then serve either a
//! [`FramedSession`] (requests and streamed replies in header frames, many commands per
//! connection) or a [`SeedSession`] (one raw-text command per read, one reply each, in the
//! seed's format). Every read waits at most until the connection's request deadline, which
//! restarts when a request is complete; a client that does not finish a request in time is
//! dropped.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use embedded_io_adapters::std::FromStd;
use unstick_core::blocking::{FrameReader, write_frame, write_plain_frame};
use unstick_core::{DecodeError, Event, FrameDecoder, HeaderFrameEncoder, Profile};
use unstick_core::{FrameInfo, ReadError};

use super::process::{CapturedOutput, OUTPUT_CHUNK, OutputSink, OutputStream, RunOutcome};
use super::process::{RunError, Termination, deadline_after, run_command};
use super::server::ShellConfig;
use super::wire::{self, ExitHeader, Greeting, LegacyReply, OutputHeader, RequestHeader};
use crate::server::{HEADER_CAP, configure_stream, send_error, token_matches};

/// How long the server waits for more of a greeting shorter than four bytes before taking it as
/// a short seed command (such as `ls`).
pub const GREETING_PAUSE: Duration = Duration::from_millis(200);

/// Size of the buffer framed requests are read through.
const REQUEST_BUFFER: usize = 16 * 1024;

/// Room for a reply frame's head in front of its body.
const REPLY_HEAD_ROOM: usize = 512;

/// Whether a session goes on after a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    Continue,
    Close,
}

/// Serves one accepted connection until it closes. Never panics on client input.
pub(crate) fn serve_connection(stream: TcpStream, config: &ShellConfig) {
    if configure_stream(&stream, config.idle_timeout).is_err() {
        return;
    }
    // A client that stops reading output for this long is dropped (and its command killed), so
    // a stalled reader cannot keep a command alive much past its time limit.
    let write_limit = config.idle_timeout.min(config.limits.timeout);
    if stream.set_write_timeout(Some(write_limit)).is_err() {
        return;
    }
    // The first request, greeting included, must be complete by this deadline.
    let first_deadline = deadline_after(config.idle_timeout);
    let greeting = match read_greeting(&stream, first_deadline) {
        Ok(Some(greeting)) => greeting,
        Ok(None) | Err(_) => return,
    };
    let result = match greeting {
        (Greeting::Seed, first) => SeedSession { config, stream }.run(first),
        (_, first) => FramedSession::new(stream, config).and_then(|s| s.run(first, first_deadline)),
    };
    // The peer may already be gone; there is no one to tell about I/O errors.
    let _ = result;
}

/// Reads the first bytes of a connection until they say which kind of client it is.
/// `Ok(None)` when the client closes before sending anything.
fn read_greeting(stream: &TcpStream, deadline: Instant) -> io::Result<Option<(Greeting, Vec<u8>)>> {
    let mut first = vec![0u8; wire::SEED_COMMAND_READ];
    let mut len = read_within(stream, &mut first, time_left(deadline)?)?;
    if len == 0 {
        return Ok(None);
    }
    loop {
        match wire::classify_greeting(&first[..len]) {
            Greeting::Undecided => {}
            decided => {
                first.truncate(len);
                return Ok(Some((decided, first)));
            }
        }
        match read_within(stream, &mut first[len..], GREETING_PAUSE) {
            Ok(n) if n > 0 => len += n,
            Ok(_) => return Ok(None),
            Err(e) if is_timeout(&e) => {
                first.truncate(len);
                return Ok(Some((Greeting::Seed, first)));
            }
            Err(e) => return Err(e),
        }
    }
}

/// One read that waits at most `limit`.
fn read_within(stream: &TcpStream, buf: &mut [u8], limit: Duration) -> io::Result<usize> {
    stream.set_read_timeout(Some(limit.max(Duration::from_millis(1))))?;
    let mut reader = stream;
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The request side of a framed connection: the greeting bytes again, then the socket, every
/// read bounded by the current request's deadline.
struct RequestInput {
    greeting: Vec<u8>,
    replayed: usize,
    stream: TcpStream,
    deadline: Instant,
}

impl RequestInput {
    fn restart_deadline(&mut self, idle: Duration) {
        self.deadline = deadline_after(idle);
    }
}

impl Read for RequestInput {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(rest) = self.greeting.get(self.replayed..).filter(|r| !r.is_empty()) {
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            self.replayed += n;
            return Ok(n);
        }
        read_within(&self.stream, buf, time_left(self.deadline)?)
    }
}

/// The time until `deadline`, or a `TimedOut` error once it has passed.
fn time_left(deadline: Instant) -> io::Result<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| io::ErrorKind::TimedOut.into())
}

/// Why a framed request is not run. Refusals that leave the stream out of step, or that concern
/// the token, close the connection after the error frame.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Refusal {
    code: &'static str,
    message: String,
    closes: bool,
}

impl Refusal {
    fn new(code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
            closes: false,
        }
    }

    fn closing(mut self) -> Refusal {
        self.closes = true;
        self
    }
}

/// The outcome of reading one framed request.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    Exec(String),
    Refused(Refusal),
    Closed,
}

/// A connection speaking header frames.
struct FramedSession<'c> {
    config: &'c ShellConfig,
    socket: TcpStream,
    replies: FrameReplies,
}

impl<'c> FramedSession<'c> {
    fn new(stream: TcpStream, config: &'c ShellConfig) -> io::Result<Self> {
        let replies = FrameReplies::new(stream.try_clone()?);
        Ok(FramedSession {
            config,
            socket: stream,
            replies,
        })
    }

    /// Serves requests until the connection closes; the first must be complete by
    /// `first_deadline`, each later one within the idle timeout from the end of the previous.
    fn run(mut self, greeting: Vec<u8>, first_deadline: Instant) -> io::Result<()> {
        let input = RequestInput {
            greeting,
            replayed: 0,
            stream: self.socket.try_clone()?,
            deadline: first_deadline,
        };
        let mut buf = vec![0u8; REQUEST_BUFFER];
        let decoder = FrameDecoder::<HEADER_CAP>::header_frames(Profile::SEED);
        let mut reader = FrameReader::new(FromStd::new(input), decoder, &mut buf);
        loop {
            let next = match read_request(&mut reader, self.config) {
                Request::Exec(command) => self.execute(&command),
                Request::Refused(refusal) => self.refuse(&refusal),
                Request::Closed => Next::Close,
            };
            if next == Next::Close {
                let _ = self.socket.shutdown(Shutdown::Both);
                return Ok(());
            }
            let idle = self.config.idle_timeout;
            reader.get_mut().inner_mut().restart_deadline(idle);
        }
    }

    fn execute(&mut self, command: &str) -> Next {
        let config = self.config;
        let outcome = run_command(
            command,
            &config.workdir,
            &config.limits,
            Some(self.socket.as_fd()),
            &mut self.replies,
        );
        match outcome {
            Ok(outcome) if outcome.client_gone => Next::Close,
            Ok(outcome) => self.replies.send_exit(&outcome),
            Err(e) => self.refuse(&Refusal::new(run_error_code(&e), e.to_string())),
        }
    }

    fn refuse(&mut self, refusal: &Refusal) -> Next {
        let sent = send_error(&mut self.replies.stream, refusal.code, &refusal.message);
        if sent.is_err() || refusal.closes {
            Next::Close
        } else {
            Next::Continue
        }
    }
}

/// Reads one request frame: its header is checked (token, operation, size) as soon as it is in.
/// A bad token is answered at once; the body of any other refused request is read and dropped so
/// the next request starts in step.
fn read_request<R>(reader: &mut FrameReader<'_, R, HEADER_CAP>, config: &ShellConfig) -> Request
where
    R: embedded_io::Read<Error = io::Error>,
{
    let mut admission: Result<Vec<u8>, Refusal> = Ok(Vec::new());
    loop {
        match reader.next_event() {
            Ok(None) => return Request::Closed,
            // A refusal that closes (a bad token) goes out at once: the body is not waited for.
            Ok(Some(Event::Head(info))) => match admit(reader.decoder(), &info, config) {
                Err(refusal) if refusal.closes => return Request::Refused(refusal),
                checked => admission = checked,
            },
            Ok(Some(Event::Body(chunk))) => {
                if let Ok(command) = &mut admission {
                    command.extend_from_slice(chunk);
                }
            }
            Ok(Some(Event::End(_))) => {
                return match admission {
                    Ok(command) => exec_request(&command),
                    Err(refusal) => Request::Refused(refusal),
                };
            }
            Ok(Some(Event::NeedMore)) => {}
            Err(e) => return read_failure(e, config),
        }
    }
}

/// Checks a request header; the `Ok` vector is ready to take the command.
fn admit(
    decoder: &mut FrameDecoder<HEADER_CAP>,
    info: &FrameInfo,
    config: &ShellConfig,
) -> Result<Vec<u8>, Refusal> {
    let header: RequestHeader = decoder.header().map_err(|e| {
        Refusal::new(
            "bad_header",
            format!("request header needs a string \"op\" member (and \"token\" if set): {e}"),
        )
    })?;
    check_token(config.token.as_deref(), header.token.as_deref())?;
    if header.op != wire::OP_EXEC {
        return Err(Refusal::new(
            "unknown_op",
            format!(
                "this is the shell server; it serves \"op\":\"exec\" only, not {:?}",
                header.op
            ),
        ));
    }
    if info.body_len > config.max_command_len as u64 {
        return Err(Refusal::new(
            "command_too_long",
            format!(
                "command of {} bytes is longer than the {}-byte limit",
                info.body_len, config.max_command_len
            ),
        ));
    }
    Ok(Vec::with_capacity(info.body_len as usize))
}

fn check_token(expected: Option<&str>, presented: Option<&str>) -> Result<(), Refusal> {
    match (expected, presented) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(Refusal::new(
            "unauthorized",
            "this server requires a token: pass --token or set UNSTICK_TOKEN",
        )
        .closing()),
        (Some(expected), Some(presented)) if token_matches(expected, presented) => Ok(()),
        (Some(_), Some(_)) => {
            Err(Refusal::new("unauthorized", "the token does not match the server's").closing())
        }
    }
}

/// The request to run `command`, or its refusal when no shell could run it.
fn exec_request(command: &[u8]) -> Request {
    match wire::command_text(command) {
        Ok(text) => Request::Exec(text.to_owned()),
        Err(e) => Request::Refused(Refusal::new("bad_command", e.to_string())),
    }
}

/// The error code a failed run is reported with.
fn run_error_code(e: &RunError) -> &'static str {
    match e {
        RunError::Spawn(_) => "spawn_failed",
        _ => "run_failed",
    }
}

fn read_failure(e: ReadError<io::Error>, config: &ShellConfig) -> Request {
    let refusal = match e {
        ReadError::Io(e) if is_timeout(&e) => Refusal::new(
            "idle_timeout",
            format!(
                "no complete request within {:?}; closing the connection",
                config.idle_timeout
            ),
        ),
        ReadError::Io(_) => return Request::Closed,
        ReadError::Decode(DecodeError::UnexpectedEof { .. }) => return Request::Closed,
        ReadError::Decode(e) if e.is_recoverable() => {
            return Request::Refused(Refusal::new("bad_frame", e.to_string()));
        }
        other => Refusal::new("bad_frame", other.to_string()),
    };
    Request::Refused(refusal.closing())
}

/// Writes a framed session's replies: output frames as output arrives, then the exit frame.
struct FrameReplies {
    stream: FromStd<TcpStream>,
    output_encoder: HeaderFrameEncoder,
    status_encoder: HeaderFrameEncoder,
    head: Vec<u8>,
}

impl FrameReplies {
    fn new(stream: TcpStream) -> FrameReplies {
        FrameReplies {
            stream: FromStd::new(stream),
            output_encoder: wire::OUTPUT_ENCODER,
            status_encoder: wire::PLAIN_ENCODER,
            head: vec![0u8; OUTPUT_CHUNK + REPLY_HEAD_ROOM],
        }
    }

    fn send_exit(&mut self, outcome: &RunOutcome) -> Next {
        let (code, signal) = match outcome.termination {
            Termination::Exited(code) => (Some(code), None),
            Termination::Signaled(signal) => (None, Some(signal)),
        };
        let header = ExitHeader {
            op: wire::OP_EXIT,
            code,
            signal,
            truncated: outcome.truncated,
            timed_out: outcome.timed_out,
        };
        match write_frame(
            &mut self.stream,
            &self.status_encoder,
            &header,
            &[],
            &mut self.head,
        ) {
            Ok(()) => Next::Continue,
            Err(_) => Next::Close,
        }
    }
}

impl OutputSink for FrameReplies {
    fn write_output(&mut self, stream: OutputStream, bytes: &[u8]) -> io::Result<()> {
        let op = match stream {
            OutputStream::Stdout => wire::OP_STDOUT,
            OutputStream::Stderr => wire::OP_STDERR,
        };
        let header = OutputHeader { op };
        write_frame(
            &mut self.stream,
            &self.output_encoder,
            &header,
            bytes,
            &mut self.head,
        )
        .map_err(crate::server::write_error_to_io)
    }
}

/// A connection from a seed-style client: each read is one text command, answered with one
/// reply in the configured [`LegacyReply`] format (stdout, then stderr).
struct SeedSession<'c> {
    config: &'c ShellConfig,
    stream: TcpStream,
}

impl SeedSession<'_> {
    fn run(mut self, greeting: Vec<u8>) -> io::Result<()> {
        if self.config.token.is_some() {
            let refusal = "unstick: this server requires a token, which seed-style clients \
                           cannot send; connect with `unstick shell connect --token ...`\n";
            self.reply(refusal.as_bytes(), false, false)?;
            return self.stream.shutdown(Shutdown::Both);
        }
        let mut command = greeting;
        while !command.is_empty() {
            let next = if self.collect_long_command(&mut command)? {
                self.answer(&command)?
            } else {
                let message = format!(
                    "unstick: the command is longer than the {}-byte limit\n",
                    self.config.max_command_len
                );
                self.reply(message.as_bytes(), false, false)?;
                Next::Close
            };
            if next == Next::Close {
                break;
            }
            command = self.read_command()?;
        }
        let _ = self.stream.shutdown(Shutdown::Both);
        Ok(())
    }

    /// A command that filled the seed's 1024-byte read may go on: the rest is collected until
    /// the client pauses for [`GREETING_PAUSE`] (a seed client sends a command, then waits for
    /// its reply), so a long command never runs in pieces. `false` when it is over the length
    /// limit (the rest is not read; the connection can only be closed).
    fn collect_long_command(&mut self, command: &mut Vec<u8>) -> io::Result<bool> {
        if command.len() < wire::SEED_COMMAND_READ {
            return Ok(true);
        }
        let limit = self.config.max_command_len;
        let deadline = deadline_after(self.config.idle_timeout);
        let mut buf = vec![0u8; REQUEST_BUFFER];
        while command.len() <= limit {
            let Ok(left) = time_left(deadline) else {
                break;
            };
            match read_within(&self.stream, &mut buf, left.min(GREETING_PAUSE)) {
                Ok(0) => break,
                Ok(n) => command.extend_from_slice(&buf[..n]),
                Err(e) if is_timeout(&e) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(command.len() <= limit)
    }

    /// Reads the next command as the seed's server does: whatever one read of up to 1024 bytes
    /// returns (see [`collect_long_command`](Self::collect_long_command) for longer ones). Empty
    /// at the end of the stream or the idle deadline.
    fn read_command(&mut self) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; wire::SEED_COMMAND_READ];
        match read_within(&self.stream, &mut buf, self.config.idle_timeout) {
            Ok(n) => {
                buf.truncate(n);
                Ok(buf)
            }
            Err(e) if is_timeout(&e) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    fn answer(&mut self, command: &[u8]) -> io::Result<Next> {
        let text = match wire::command_text(command) {
            Ok(text) => text,
            Err(e) => {
                self.reply(format!("unstick: {e}\n").as_bytes(), false, false)?;
                return Ok(Next::Continue);
            }
        };
        let mut output = CapturedOutput::default();
        let config = self.config;
        let limits = super::process::CommandLimits {
            max_output: config.limits.max_output.min(i32::MAX as u64),
            ..config.limits
        };
        let outcome = run_command(
            text,
            &config.workdir,
            &limits,
            Some(self.stream.as_fd()),
            &mut output,
        );
        let outcome = match outcome {
            Ok(outcome) if outcome.client_gone => return Ok(Next::Close),
            Ok(outcome) => outcome,
            Err(e) => {
                let message = format!("unstick: {e}\n");
                self.reply(message.as_bytes(), false, false)?;
                return Ok(Next::Continue);
            }
        };
        let mut body = output.stdout;
        body.extend_from_slice(&output.stderr);
        self.reply(&body, outcome.truncated, outcome.timed_out)?;
        Ok(Next::Continue)
    }

    fn reply(&mut self, body: &[u8], truncated: bool, timed_out: bool) -> io::Result<()> {
        let mut out = FromStd::new(&mut self.stream);
        match self.config.legacy_reply {
            LegacyReply::Json => {
                let header = wire::SeedReplyHeader {
                    file_name: "output",
                    truncated,
                    timed_out,
                };
                let encoder = wire::SEED_REPLY_ENCODER;
                let mut head = [0u8; REPLY_HEAD_ROOM];
                write_frame(&mut out, &encoder, &header, body, &mut head)
                    .map_err(crate::server::write_error_to_io)
            }
            LegacyReply::Size => write_plain_frame(&mut out, &Profile::SEED, body)
                .map_err(crate::server::write_error_to_io),
            LegacyReply::Raw => out.inner_mut().write_all(body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that hands out its bytes `step` at a time, as a slow network would.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    fn frame(header: &str, body: &[u8]) -> Vec<u8> {
        let mut frame = (header.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(header.as_bytes());
        frame.extend_from_slice(body);
        frame
    }

    /// Reads every request in `wire`, `step` bytes per read.
    fn requests(wire: &[u8], step: usize, config: &ShellConfig) -> Vec<Request> {
        let mut buf = vec![0u8; 64];
        let decoder = FrameDecoder::<HEADER_CAP>::header_frames(Profile::SEED);
        let source = FromStd::new(Trickle { bytes: wire, step });
        let mut reader = FrameReader::new(source, decoder, &mut buf);
        let mut seen = Vec::new();
        loop {
            let request = read_request(&mut reader, config);
            let end = matches!(&request, Request::Closed)
                || matches!(&request, Request::Refused(r) if r.closes);
            seen.push(request);
            if end {
                return seen;
            }
        }
    }

    fn refused(seen: &Request) -> (&'static str, bool) {
        match seen {
            Request::Refused(r) => (r.code, r.closes),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn requests_are_read_in_any_chunking_and_refusals_keep_the_stream_in_step() {
        let config = ShellConfig {
            max_command_len: 16,
            ..ShellConfig::default()
        };
        let mut wire = frame(r#"{"op":"exec","total_size":7}"#, b"echo hi");
        wire.extend(frame(r#"{"op":"ls","total_size":3}"#, b"abc"));
        wire.extend(frame(r#"{"total_size":2}"#, b"ls"));
        wire.extend(frame(r#"{"op":"exec","total_size":2}"#, &[0xc3, 0x28]));
        wire.extend(frame(r#"{"op":"exec","total_size":5}"#, b"ls\0-l"));
        wire.extend(frame(r#"{"op":"exec","total_size":20}"#, &[b'x'; 20]));
        wire.extend(frame(
            r#"{"op":"exec","total_size":8}"#,
            "echo 新".as_bytes(),
        ));
        for step in [1, 2, 3, 7, 64, 4096] {
            let seen = requests(&wire, step, &config);
            assert_eq!(seen.len(), 8, "step {step}: {seen:?}");
            assert_eq!(seen[0], Request::Exec("echo hi".into()));
            assert_eq!(refused(&seen[1]), ("unknown_op", false));
            assert_eq!(refused(&seen[2]), ("bad_header", false));
            assert_eq!(refused(&seen[3]), ("bad_command", false));
            assert_eq!(refused(&seen[4]), ("bad_command", false));
            assert_eq!(refused(&seen[5]), ("command_too_long", false));
            assert_eq!(seen[6], Request::Exec("echo 新".into()));
            assert_eq!(seen[7], Request::Closed);
        }
    }

    #[test]
    fn tokens_are_checked_before_anything_else() {
        let config = ShellConfig {
            token: Some("s3cret".into()),
            ..ShellConfig::default()
        };
        let table: [(&str, Option<(&str, bool)>); 8] = [
            // A prefix, an extension and an empty token are all wrong.
            (
                r#"{"op":"exec","token":"s3cre","total_size":4}"#,
                Some(("unauthorized", true)),
            ),
            (
                r#"{"op":"exec","token":"s3cretx","total_size":4}"#,
                Some(("unauthorized", true)),
            ),
            (
                r#"{"op":"exec","token":"","total_size":4}"#,
                Some(("unauthorized", true)),
            ),
            (r#"{"op":"exec","token":"s3cret","total_size":4}"#, None),
            // Refused on its header alone, though the promised body never comes.
            (
                r#"{"op":"exec","token":"guess","total_size":1000000}"#,
                Some(("unauthorized", true)),
            ),
            (
                r#"{"op":"exec","total_size":4}"#,
                Some(("unauthorized", true)),
            ),
            (
                r#"{"op":"exec","token":"guess","total_size":4}"#,
                Some(("unauthorized", true)),
            ),
            (
                r#"{"op":"ls","token":"nope","total_size":4}"#,
                Some(("unauthorized", true)),
            ),
        ];
        for (header, expected) in table {
            let seen = requests(&frame(header, b"true"), 5, &config);
            match expected {
                None => assert_eq!(seen[0], Request::Exec("true".into()), "{header}"),
                Some(refusal) => assert_eq!(refused(&seen[0]), refusal, "{header}"),
            }
        }
    }

    #[test]
    fn broken_framing_is_refused_and_closes() {
        let config = ShellConfig::default();
        let table: [&[u8]; 4] = [
            &[0, 0, 0, 0x80],
            &[0, 0, 0, 0],
            b"\x05\x00\x00\x00{abc}",
            b"\x19\x00\x00\x00{\"op\":\"exec\",\"total_size\":-1}",
        ];
        for wire in table {
            let seen = requests(wire, 3, &config);
            assert_eq!(refused(&seen[0]), ("bad_frame", true), "{wire:?}");
        }
        // A stream that ends inside a frame is a plain close, not an error to report.
        let seen = requests(
            &frame(r#"{"op":"exec","total_size":9}"#, b"ech"),
            2,
            &config,
        );
        assert_eq!(seen, [Request::Closed]);
    }
}
