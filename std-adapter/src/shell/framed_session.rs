//! A framed session: requests in header frames (`{"op":"exec",...}` + the command), each answered
//! with streamed `stdout`/`stderr` frames and an `exit` frame, any number per connection.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::time::Instant;

use embedded_io_adapters::std::FromStd;
use unstick_core::ReadError;
use unstick_core::blocking::{FrameReader, write_frame};
use unstick_core::{DecodeError, Event, FrameDecoder, FrameInfo, HeaderFrameEncoder, Profile};

use super::connection::{Next, REPLY_HEAD_ROOM, REQUEST_BUFFER, is_timeout};
use super::process::{OUTPUT_CHUNK, OutputSink, OutputStream, RunError, RunOutcome, Termination};
use super::process::{RunningCommands, deadline_after, run_command};
use super::server::ShellConfig;
use super::wire::{self, ExitHeader, OutputHeader, RequestHeader, ShellOp};
use crate::server::{
    ClientKind, Connection, ErrorCode, HEADER_CAP, Handback, Refusal, RequestStream, send_error,
    token_matches,
};

/// The outcome of reading one framed request.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    Exec(String),
    Refused(Refusal),
    Closed,
}

/// One request of a connection speaking header frames.
pub(super) struct FramedSession<'c> {
    config: &'c ShellConfig,
    running: &'c RunningCommands,
    peer: SocketAddr,
    socket: TcpStream,
    replies: FrameReplies,
}

impl<'c> FramedSession<'c> {
    /// Serves the request at the start of `conn.received` (its header is in; the rest must
    /// arrive within the idle timeout) and hands the connection back with what it sent beyond.
    pub(super) fn serve_request(
        mut conn: Connection<ClientKind>,
        config: &'c ShellConfig,
        running: &'c RunningCommands,
    ) -> Handback<ClientKind> {
        // A client that stops reading output for this long is dropped (and its command
        // killed), so a stalled reader cannot keep a command alive much past its time limit.
        let write_limit = config.lobby.idle_timeout.min(config.limits.timeout);
        let clones = conn
            .stream
            .set_write_timeout(Some(write_limit))
            .and_then(|()| Ok((conn.stream.try_clone()?, conn.stream.try_clone()?)))
            .and_then(|(a, b)| Ok((a, b, conn.stream.try_clone()?)));
        let Ok((input_socket, reply_socket, socket)) = clones else {
            return Handback::Close(conn);
        };
        let mut session = FramedSession {
            config,
            running,
            peer: conn.peer,
            socket,
            replies: FrameReplies::new(reply_socket),
        };
        let deadline = deadline_after(config.lobby.idle_timeout);
        let received = std::mem::take(&mut conn.received);
        let input = RequestStream::new(received, input_socket, Some(deadline));
        let mut buf = vec![0u8; REQUEST_BUFFER];
        let decoder = FrameDecoder::<HEADER_CAP>::header_frames(Profile::SEED);
        let mut reader = FrameReader::new(FromStd::new(input), decoder, &mut buf);
        let next = match read_request(&mut reader, config) {
            Request::Exec(command) => {
                conn.requests += 1;
                session.execute(&command)
            }
            Request::Refused(refusal) => {
                conn.requests += 1;
                session.refuse(&refusal)
            }
            Request::Closed => Next::Close,
        };
        let mut rest = reader.buffered().to_vec();
        rest.extend_from_slice(reader.get_mut().inner_mut().unread());
        conn.received = rest;
        match next {
            Next::Continue => Handback::Wait(conn),
            Next::Close => Handback::Close(conn),
        }
    }

    fn execute(&mut self, command: &str) -> Next {
        let config = self.config;
        let started = Instant::now();
        let outcome = run_command(
            command,
            &config.workdir,
            &config.limits,
            Some(self.socket.as_fd()),
            self.running,
            &mut self.replies,
        );
        match outcome {
            Ok(outcome) => {
                log_finished(self.peer, command, &outcome, started);
                if outcome.client_gone {
                    Next::Close
                } else {
                    self.replies.send_exit(&outcome)
                }
            }
            Err(e) => self.refuse(&Refusal::new(run_error_code(&e), e.to_string())),
        }
    }

    fn refuse(&mut self, refusal: &Refusal) -> Next {
        refusal.log("shell", self.peer);
        let sent = send_error(&mut self.replies.stream, refusal.code, &refusal.message);
        if sent.is_err() || refusal.closes {
            Next::Close
        } else {
            Next::Continue
        }
    }
}

/// Logs a command's end: how it ended, how long it ran, whether it was cut short.
pub(super) fn log_finished(
    peer: SocketAddr,
    command: &str,
    outcome: &RunOutcome,
    started: Instant,
) {
    let duration_ms = started.elapsed().as_millis() as u64;
    let (exit_code, signal) = match outcome.termination {
        Termination::Exited(code) => (Some(code), None),
        Termination::Signaled(signal) => (None, Some(signal)),
    };
    tracing::info!(
        server = "shell",
        peer = %peer,
        command,
        exit_code,
        signal,
        duration_ms,
        timed_out = outcome.timed_out,
        truncated = outcome.truncated,
        client_gone = outcome.client_gone,
        "command finished"
    );
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
    let header: RequestHeader<String> = decoder.header().map_err(|e| {
        Refusal::new(
            ErrorCode::BadHeader,
            format!("request header needs a string \"op\" member (and \"token\" if set): {e}"),
        )
    })?;
    check_token(config.token.as_deref(), header.token.as_deref())?;
    if header.op.parse() != Ok(ShellOp::Exec) {
        return Err(Refusal::new(
            ErrorCode::UnknownOp,
            format!(
                "this is the shell server; it serves \"op\":\"exec\" only, not {:?}",
                header.op
            ),
        ));
    }
    if info.body_len > config.max_command_len as u64 {
        return Err(Refusal::new(
            ErrorCode::CommandTooLong,
            format!(
                "command of {} bytes is longer than the {}-byte limit; send a long script as \
                 a file and run that",
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
            ErrorCode::Unauthorized,
            "this server requires a token: pass --token or set UNSTICK_TOKEN",
        )
        .closing()),
        (Some(expected), Some(presented)) if token_matches(expected, presented) => Ok(()),
        (Some(_), Some(_)) => Err(Refusal::new(
            ErrorCode::Unauthorized,
            "the token does not match the server's",
        )
        .closing()),
    }
}

/// The request to run `command`, or its refusal when no shell could run it.
fn exec_request(command: &[u8]) -> Request {
    match wire::command_text(command) {
        Ok(text) => Request::Exec(text.to_owned()),
        Err(e) => Request::Refused(Refusal::new(ErrorCode::BadCommand, e.to_string())),
    }
}

/// The error code a failed run is reported with.
fn run_error_code(e: &RunError) -> ErrorCode {
    match e {
        RunError::Spawn(_) => ErrorCode::SpawnFailed,
        _ => ErrorCode::RunFailed,
    }
}

fn read_failure(e: ReadError<io::Error>, config: &ShellConfig) -> Request {
    let refusal = match e {
        ReadError::Io(e) if is_timeout(&e) => Refusal::new(
            ErrorCode::IdleTimeout,
            format!(
                "no complete request within {:?}; closing the connection",
                config.lobby.idle_timeout
            ),
        ),
        ReadError::Io(_) => return Request::Closed,
        ReadError::Decode(DecodeError::UnexpectedEof { .. }) => return Request::Closed,
        ReadError::Decode(e) if e.is_recoverable() => {
            return Request::Refused(Refusal::new(ErrorCode::BadFrame, e.to_string()));
        }
        other => Refusal::new(ErrorCode::BadFrame, other.to_string()),
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
    pub(super) fn new(stream: TcpStream) -> FrameReplies {
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
            op: ShellOp::Exit,
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
            OutputStream::Stdout => ShellOp::Stdout,
            OutputStream::Stderr => ShellOp::Stderr,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

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
            Request::Refused(r) => (r.code.as_str(), r.closes),
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
