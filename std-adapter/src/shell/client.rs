//! Clients: [`ShellClient`] speaks the framed protocol to an unstick shell server;
//! [`LegacyShellClient`] speaks the seed's protocol (raw command out, one JSON-header frame in)
//! to the seed's Python servers.

use std::fmt;
use std::io::{self, Write};
use std::net::TcpStream;

use embedded_io_adapters::std::FromStd;
use unstick_core::blocking::{FrameReader, write_frame};
use unstick_core::{ErrorFrame, Event, FrameDecoder, Profile, ReadError, WriteError};

use super::process::{CapturedOutput, OUTPUT_CHUNK, OutputSink, OutputStream, Termination};
use super::wire::{self, ExecRequest, ExitHeader, ReplyOp, ShellOp};
use crate::server::HEADER_CAP;

pub use unstick_core::shell::ExitReport;

/// Why a client call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ShellClientError {
    /// The server could not be reached.
    Connect {
        /// The address tried.
        addr: String,
        /// What went wrong.
        source: io::Error,
    },
    /// The connection failed while talking to the server.
    Io(io::Error),
    /// The server closed the connection before the reply was complete.
    ConnectionClosed,
    /// The server's bytes are not the protocol this client speaks.
    Protocol(String),
    /// The command's output could not be passed on: the sink failed (say, our stdout is a pipe
    /// whose reader has gone). The reply was not read to its end, so the connection is out of
    /// step and should be dropped.
    Output(io::Error),
    /// The server refused the request with an error frame.
    Server {
        /// The server's stable error code (e.g. `unauthorized`, `busy`).
        code: String,
        /// The server's explanation.
        message: String,
    },
}

impl fmt::Display for ShellClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShellClientError::Connect { addr, source } => {
                write!(
                    f,
                    "cannot connect to {addr}: {source}; is the server running?"
                )
            }
            ShellClientError::Io(e) => write!(f, "connection failed: {e}"),
            ShellClientError::ConnectionClosed => {
                f.write_str("the server closed the connection before the command finished")
            }
            ShellClientError::Protocol(what) => write!(
                f,
                "unexpected reply from the server ({what}); is it an unstick shell server (or, with --legacy, a seed-style one)?"
            ),
            ShellClientError::Output(e) => write!(f, "cannot pass on the command's output: {e}"),
            ShellClientError::Server { code, message } => {
                write!(f, "server refused the request ({code}): {message}")
            }
        }
    }
}

impl std::error::Error for ShellClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ShellClientError::Connect { source, .. }
            | ShellClientError::Io(source)
            | ShellClientError::Output(source) => Some(source),
            _ => None,
        }
    }
}

impl From<ReadError<io::Error>> for ShellClientError {
    fn from(e: ReadError<io::Error>) -> Self {
        match e {
            ReadError::Io(e) => ShellClientError::Io(e),
            ReadError::Decode(unstick_core::DecodeError::UnexpectedEof { .. }) => {
                ShellClientError::ConnectionClosed
            }
            other => ShellClientError::Protocol(other.to_string()),
        }
    }
}

impl<S: fmt::Debug> From<WriteError<io::Error, S>> for ShellClientError {
    fn from(e: WriteError<io::Error, S>) -> Self {
        match e {
            WriteError::Io(e) => ShellClientError::Io(e),
            other => ShellClientError::Protocol(other.to_string()),
        }
    }
}

fn connect(addr: &str) -> Result<TcpStream, ShellClientError> {
    let stream = TcpStream::connect(addr).map_err(|source| ShellClientError::Connect {
        addr: addr.to_string(),
        source,
    })?;
    stream.set_nodelay(true).map_err(ShellClientError::Io)?;
    Ok(stream)
}

/// Whether the server has closed `stream` (or sent something unasked, which only comes before
/// a close, such as an `idle_timeout` error frame), without waiting.
fn server_has_closed(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let mut byte = [0u8; 1];
    let closed = match stream.peek(&mut byte) {
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
        Ok(_) => true,
    };
    closed || stream.set_nonblocking(false).is_err()
}

/// A connection to an unstick shell server; runs any number of commands, one at a time.
pub struct ShellClient {
    stream: FromStd<TcpStream>,
    /// Where to reconnect when the server has closed a connection that waited too long.
    addr: Option<String>,
    token: Option<String>,
    read_buf: Vec<u8>,
    head: Vec<u8>,
}

impl fmt::Debug for ShellClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShellClient")
            .field("peer", &self.stream.inner().peer_addr().ok())
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// What the reply frame being read is.
enum Reply {
    Pending,
    Output(OutputStream),
    Exit(ExitReport),
    Refused(ErrorFrame<String>),
}

impl ShellClient {
    /// Connects to the server at `addr`, presenting `token` with every request.
    ///
    /// A server closes connections that wait too long between commands; before each command,
    /// a client made this way notices that and connects again (the server had read nothing of
    /// the command, so nothing runs twice).
    pub fn connect(addr: &str, token: Option<String>) -> Result<ShellClient, ShellClientError> {
        let mut client = ShellClient::from_stream(connect(addr)?, token);
        client.addr = Some(addr.to_string());
        Ok(client)
    }

    /// A client over an established connection.
    pub fn from_stream(stream: TcpStream, token: Option<String>) -> ShellClient {
        ShellClient {
            stream: FromStd::new(stream),
            addr: None,
            token,
            read_buf: vec![0u8; OUTPUT_CHUNK + 1024],
            head: vec![0u8; 1024],
        }
    }

    /// Runs `command` on the server, passing its stdout and stderr to `sink` as they arrive.
    pub fn exec(
        &mut self,
        command: &str,
        sink: &mut dyn OutputSink,
    ) -> Result<ExitReport, ShellClientError> {
        if let Some(addr) = &self.addr
            && server_has_closed(self.stream.inner())
        {
            self.stream = FromStd::new(connect(addr)?);
        }
        match self.send_request(command) {
            Ok(()) => self.read_reply(sink),
            // A server refuses a bad token on the header alone and closes without reading the
            // rest; its error frame says why better than the broken pipe does. (Only a broken
            // connection is worth reading: after a local failure no reply is coming.)
            Err(broken @ ShellClientError::Io(_)) => {
                Err(match self.read_reply(&mut CapturedOutput::default()) {
                    Err(refusal @ ShellClientError::Server { .. }) => refusal,
                    _ => broken,
                })
            }
            Err(failed) => Err(failed),
        }
    }

    /// Reads one command's replies: output frames to `sink`, up to the exit or error frame.
    fn read_reply(&mut self, sink: &mut dyn OutputSink) -> Result<ExitReport, ShellClientError> {
        let decoder = FrameDecoder::<HEADER_CAP>::header_frames(Profile::SEED);
        let mut reader = FrameReader::new(&mut self.stream, decoder, &mut self.read_buf);
        let mut reply = Reply::Pending;
        loop {
            match reader.next_event()? {
                None => return Err(ShellClientError::ConnectionClosed),
                Some(Event::Head(_)) => reply = read_reply_header(reader.decoder())?,
                Some(Event::Body(chunk)) => {
                    if let Reply::Output(stream) = reply {
                        sink.write_output(stream, chunk)
                            .map_err(ShellClientError::Output)?;
                    }
                }
                Some(Event::End(_)) => match reply {
                    Reply::Exit(report) => return Ok(report),
                    Reply::Refused(ErrorFrame { code, message }) => {
                        return Err(ShellClientError::Server { code, message });
                    }
                    Reply::Pending | Reply::Output(_) => {}
                },
                Some(Event::NeedMore) => {}
            }
        }
    }

    fn send_request(&mut self, command: &str) -> Result<(), ShellClientError> {
        let request = ExecRequest {
            op: ShellOp::Exec,
            token: self.token.as_deref(),
        };
        // A byte of the token takes at most six in JSON (a control character as `\u001f`).
        let needed = command.len() + self.token.as_ref().map_or(0, String::len) * 6 + 256;
        if self.head.len() < needed {
            self.head.resize(needed, 0);
        }
        write_frame(
            &mut self.stream,
            &wire::PLAIN_ENCODER,
            &request,
            command.as_bytes(),
            &mut self.head,
        )?;
        Ok(())
    }
}

/// Reads which reply a frame is from its header.
fn read_reply_header(decoder: &mut FrameDecoder<HEADER_CAP>) -> Result<Reply, ShellClientError> {
    let shape = |e: unstick_core::HeaderError| ShellClientError::Protocol(e.to_string());
    let ReplyOp { op } = decoder.header().map_err(shape)?;
    Ok(match op {
        ShellOp::Stdout => Reply::Output(OutputStream::Stdout),
        ShellOp::Stderr => Reply::Output(OutputStream::Stderr),
        ShellOp::Exit => {
            let exit: ExitHeader = decoder.header().map_err(shape)?;
            Reply::Exit(exit_report(&exit)?)
        }
        ShellOp::Error => Reply::Refused(decoder.header().map_err(shape)?),
        ShellOp::Exec => {
            return Err(ShellClientError::Protocol(
                "a request (\"op\":\"exec\") where a reply was expected".into(),
            ));
        }
    })
}

fn exit_report(exit: &ExitHeader) -> Result<ExitReport, ShellClientError> {
    let termination = match (exit.code, exit.signal) {
        (Some(code), None) => Termination::Exited(code),
        (None, Some(signal)) => Termination::Signaled(signal),
        _ => {
            return Err(ShellClientError::Protocol(
                "exit frame needs exactly one of \"code\" and \"signal\"".into(),
            ));
        }
    };
    Ok(ExitReport {
        termination,
        truncated: exit.truncated,
        timed_out: exit.timed_out,
    })
}

/// A connection to a seed-style Python shell server: sends the command as raw text and reads
/// the seed's reply (4-byte LE header length, JSON header with `total_size`, then the output,
/// stdout and stderr together). A real `"md5"` in the header is verified; the seed's placeholder
/// is accepted.
pub struct LegacyShellClient {
    stream: FromStd<TcpStream>,
    read_buf: Vec<u8>,
}

impl fmt::Debug for LegacyShellClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LegacyShellClient")
            .field("peer", &self.stream.inner().peer_addr().ok())
            .finish()
    }
}

impl LegacyShellClient {
    /// Connects to the seed-style server at `addr`.
    pub fn connect(addr: &str) -> Result<LegacyShellClient, ShellClientError> {
        Ok(LegacyShellClient::from_stream(connect(addr)?))
    }

    /// A client over an established connection.
    pub fn from_stream(stream: TcpStream) -> LegacyShellClient {
        LegacyShellClient {
            stream: FromStd::new(stream),
            read_buf: vec![0u8; OUTPUT_CHUNK],
        }
    }

    /// Runs `command` and writes the output to `out`. An empty command is not sent (the seed's
    /// server would wait for it forever). The seed's server reads at most 1024 bytes per command.
    pub fn exec(&mut self, command: &str, out: &mut dyn Write) -> Result<(), ShellClientError> {
        if command.is_empty() {
            return Ok(());
        }
        self.stream
            .inner_mut()
            .write_all(command.as_bytes())
            .map_err(ShellClientError::Io)?;
        let decoder = FrameDecoder::<HEADER_CAP>::header_frames(Profile::SEED);
        let mut reader = FrameReader::new(&mut self.stream, decoder, &mut self.read_buf);
        loop {
            match reader.next_event()? {
                None => return Err(ShellClientError::ConnectionClosed),
                Some(Event::Body(chunk)) => {
                    out.write_all(chunk).map_err(ShellClientError::Output)?;
                }
                Some(Event::End(_)) => return out.flush().map_err(ShellClientError::Output),
                Some(Event::Head(_) | Event::NeedMore) => {}
            }
        }
    }
}
