//! Clients: [`ShellClient`] speaks the framed protocol to an unstick shell server;
//! [`SeedShellClient`] speaks the seed's protocol (raw command out, one JSON-header frame in)
//! to the seed's Python servers.
//!
//! Both are hosts of `unstick-core`'s sans-IO sessions ([`ShellClientSession`],
//! [`SeedClientSession`]), which make every protocol decision: what a request looks like, which
//! replies are valid and which one ends a command, what a refusal says, whether a seed reply's
//! MD5 holds. What stays here is the socket: blocking reads and writes, and reconnecting when
//! the server has closed an idle connection.

use std::fmt;
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use unstick_core::session::{PeerText, Transmit};
use unstick_core::shell::{
    ExecError, ExecOptions, PtyRequest, STDIN_DRAIN, SeedClientSession, SeedReply,
    ShellClientSession, ShellProtocolError, ShellReply, WindowSize,
};

use super::input::{CommandInput, INPUT_CHUNK};
use crate::host::{Inbox, ReplyFailure, ReplyHead, await_reply, now, wait_until};
use crate::info::{InfoRequestError, RemoteInfo, request_info};
use crate::link::{Endpoint, Link};
use crate::reached::{Reached, Tool, other_tool};
use crate::tls::{ClientTls, TlsConnectError};
use unstick_core::ErrorCode;

use super::process::{CapturedOutput, OUTPUT_CHUNK, OutputSink};
use crate::server::HEADER_CAP;
use crate::system_error::SystemError;
use crate::transmit::send_transmits;

/// Room for a request's head: a larger one leaves in more than one write.
const SEND_BUFFER: usize = 4096;

use unstick_core::files::client::REPLY_TIMEOUT;
use unstick_core::info::InfoError;
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
    /// The command was stopped by [`ExecInterrupter::interrupt`]: the connection was dropped,
    /// so the server killed the command's process group. The next command connects again.
    Interrupted,
    /// The command's input could not be read: the connection was dropped, so the server
    /// killed the command.
    Input(io::Error),
    /// The server sent nothing for this long while a command was in flight (see
    /// [`ShellClient::set_server_alive`]): it is down, unreachable, or not a shell server.
    ServerSilent {
        /// How long the server may stay silent.
        limit: std::time::Duration,
    },
    /// The server refused the request with an error frame.
    Server {
        /// The server's stable error code (e.g. `unauthorized`, `busy`).
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// The server is not a shell server: another protocol's, or the file server (its refusal
    /// of `exec` was looked into).
    Reached(Reached),
}

impl fmt::Display for ShellClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShellClientError::Connect { addr, source } => {
                write!(f, "cannot connect to {addr}: {}", SystemError(source))?;
                // A TLS failure says what to do itself; the server is running.
                if source.get_ref().is_none_or(|e| !e.is::<TlsConnectError>()) {
                    f.write_str("; is the server running?")?;
                }
                Ok(())
            }
            ShellClientError::Io(e) => write!(f, "connection failed: {}", SystemError(e)),
            ShellClientError::ConnectionClosed => {
                f.write_str("the server closed the connection before the command finished")
            }
            ShellClientError::Protocol(what) => write!(
                f,
                "unexpected reply from the server ({what}); is it an unstick shell server (or, with --seed, a seed-style one)?"
            ),
            ShellClientError::Output(e) => {
                write!(f, "cannot pass on the command's output: {}", SystemError(e))
            }
            ShellClientError::Interrupted => f.write_str(
                "interrupted: the connection was dropped, so the server killed the command",
            ),
            ShellClientError::Input(e) => write!(
                f,
                "cannot read the command's input: {}; the server killed the command",
                SystemError(e)
            ),
            ShellClientError::ServerSilent { limit } => write!(
                f,
                "the server sent nothing for {} (the client's --server-alive, {} s unless \
                 given): it is down, unreachable, or not an unstick shell server",
                humanize(*limit),
                DEFAULT_SERVER_ALIVE.as_secs()
            ),
            // The server's words are shown escaped: a hostile server cannot drive the terminal.
            ShellClientError::Server { code, message } => write!(
                f,
                "server refused the request ({}): {}",
                PeerText::new(code),
                PeerText::new(message)
            ),
            ShellClientError::Reached(reached) => fmt::Display::fmt(reached, f),
        }
    }
}

impl std::error::Error for ShellClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ShellClientError::Connect { source, .. }
            | ShellClientError::Io(source)
            | ShellClientError::Output(source)
            | ShellClientError::Input(source) => Some(source),
            _ => None,
        }
    }
}

impl From<ShellProtocolError> for ShellClientError {
    fn from(e: ShellProtocolError) -> Self {
        match e {
            ShellProtocolError::ConnectionClosed => ShellClientError::ConnectionClosed,
            ShellProtocolError::TimedOut { limit } => ShellClientError::ServerSilent { limit },
            other => ShellClientError::Protocol(other.to_string()),
        }
    }
}

impl From<ReplyFailure<ShellProtocolError>> for ShellClientError {
    fn from(failure: ReplyFailure<ShellProtocolError>) -> Self {
        match failure {
            ReplyFailure::Session(e) => e.into(),
            ReplyFailure::Closed => ShellClientError::ConnectionClosed,
            ReplyFailure::Io(e) => ShellClientError::Io(e),
            ReplyFailure::Foreign(protocol) => {
                ShellClientError::Reached(Reached::Foreign(protocol))
            }
        }
    }
}

/// How long `shell connect` waits for a server that sends nothing while a command is in flight
/// (its `--server-alive`): servers that keep commands alive send a keepalive every third of
/// it, so a command may be silent for as long as it runs.
pub const DEFAULT_SERVER_ALIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// `limit` as a person reads it: whole seconds, or milliseconds below ten seconds when not
/// whole.
fn humanize(limit: std::time::Duration) -> String {
    if limit.subsec_millis() == 0 || limit.as_secs() >= 10 {
        format!("{} s", limit.as_secs())
    } else {
        format!("{} ms", limit.as_millis())
    }
}

/// Opens `addr`: `HOST:PORT`, or a serial line `serial:PATH[@BAUD]`. Reads wait as long as a
/// command runs.
fn connect(addr: &str, tls: &ClientTls) -> Result<Link, ShellClientError> {
    let connect_error = |source| ShellClientError::Connect {
        addr: addr.to_string(),
        source,
    };
    let endpoint = Endpoint::parse(addr)
        .map_err(|e| connect_error(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    Link::open(&endpoint, None, tls).map_err(connect_error)
}

/// Sends what a session asks for (its `poll_transmit`), `body` being the command it was given,
/// a request's head and body in one write where the link takes it.
fn send_request(
    stream: &mut Link,
    poll: impl FnMut(&mut [u8]) -> Option<Transmit>,
    body: &[u8],
    scratch: &mut [u8],
) -> Result<(), ShellClientError> {
    send_transmits(stream, scratch, body, poll).map_err(ShellClientError::Io)
}

/// A connection to an unstick shell server; runs any number of commands, one at a time.
pub struct ShellClient {
    stream: Link,
    /// Where to reconnect when the server has closed a connection that waited too long.
    addr: Option<String>,
    /// How a `tls://` server is trusted, for reconnecting.
    tls: ClientTls,
    token: Option<String>,
    session: Box<ShellClientSession<HEADER_CAP>>,
    inbox: Inbox,
    send_buf: Vec<u8>,
    /// Where another thread stops the command in flight.
    interrupter: ExecInterrupter,
}

/// Stops the command a [`ShellClient`] is running, from another thread (a Ctrl-C handler):
/// [`interrupt`](Self::interrupt) shuts the connection down, the server sees the client gone
/// and kills the command's process group, and the client's `exec` returns
/// [`ShellClientError::Interrupted`]. Its next command connects again (a client made with
/// [`ShellClient::connect`]). On a serial line there is no connection to drop: the command
/// runs to its end.
#[derive(Clone, Debug, Default)]
pub struct ExecInterrupter {
    in_flight: Arc<Mutex<InFlight>>,
}

#[derive(Debug, Default)]
struct InFlight {
    /// The socket of the command in flight; `None` between commands.
    socket: Option<TcpStream>,
    /// [`ExecInterrupter::interrupt`] dropped the connection of the command in flight.
    interrupted: bool,
}

impl ExecInterrupter {
    /// Stops the command in flight; returns whether one was (`false` between commands, when
    /// there is nothing to stop).
    pub fn interrupt(&self) -> bool {
        let mut in_flight = self.lock();
        let Some(socket) = in_flight.socket.take() else {
            return false;
        };
        let _ = socket.shutdown(Shutdown::Both);
        in_flight.interrupted = true;
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InFlight> {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A command goes out on `link`.
    fn start(&self, link: &Link) {
        let mut in_flight = self.lock();
        in_flight.socket = link.tcp_stream().and_then(|s| s.try_clone().ok());
        in_flight.interrupted = false;
    }

    /// The command is over; whether it was interrupted.
    fn finish(&self) -> bool {
        let mut in_flight = self.lock();
        in_flight.socket = None;
        std::mem::take(&mut in_flight.interrupted)
    }
}

impl fmt::Debug for ShellClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShellClient")
            .field("link", &self.stream)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl ShellClient {
    /// Connects to the server at `addr`, presenting `token` with every request.
    ///
    /// A server closes connections that wait too long between commands; before each command,
    /// a client made this way notices that and connects again (the server had read nothing of
    /// the command, so nothing runs twice).
    pub fn connect(addr: &str, token: Option<String>) -> Result<ShellClient, ShellClientError> {
        ShellClient::connect_with(addr, token, ClientTls::default())
    }

    /// As [`ShellClient::connect`], trusting a `tls://` server as `tls` says.
    pub fn connect_with(
        addr: &str,
        token: Option<String>,
        tls: ClientTls,
    ) -> Result<ShellClient, ShellClientError> {
        let mut client = ShellClient::over(connect(addr, &tls)?, token);
        client.addr = Some(addr.to_string());
        client.tls = tls;
        Ok(client)
    }

    /// The connection to the server (its peer address, a TLS server's certificate).
    pub fn link(&self) -> &Link {
        &self.stream
    }

    /// A client over an established connection.
    pub fn from_stream(stream: TcpStream, token: Option<String>) -> ShellClient {
        ShellClient::over(Link::tcp(stream), token)
    }

    /// A client over an open [`Link`] (a TCP connection or a serial line).
    pub fn over(stream: Link, token: Option<String>) -> ShellClient {
        ShellClient {
            stream,
            addr: None,
            tls: ClientTls::default(),
            token,
            session: Box::default(),
            inbox: Inbox::new(OUTPUT_CHUNK + 1024, &[]),
            send_buf: vec![0; SEND_BUFFER],
            interrupter: ExecInterrupter::default(),
        }
    }

    /// Asks the server what it is: the protocols it serves, its version, limits, digests and
    /// platform (the `info` request, which needs no token). A server that predates it refuses
    /// it ([`ShellClientError::Server`]); the connection goes on either way.
    pub fn info(&mut self) -> Result<RemoteInfo, ShellClientError> {
        request_info(&mut self.stream, REPLY_TIMEOUT).map_err(|e| match e {
            InfoRequestError::Connection(e) => ShellClientError::Io(e),
            InfoRequestError::Foreign(protocol) => {
                ShellClientError::Reached(Reached::Foreign(protocol))
            }
            InfoRequestError::Reply(e) => match *e {
                InfoError::Refused(refusal) => ShellClientError::Server {
                    code: refusal.code.as_str().to_owned(),
                    message: refusal.message.as_str().to_owned(),
                },
                InfoError::Closed => ShellClientError::ConnectionClosed,
                e => ShellClientError::Protocol(e.to_string()),
            },
        })
    }

    /// Gives up on a command in flight once the server has sent nothing for `limit`
    /// ([`ShellClientError::ServerSilent`]); `None`, the default, waits as long as the command
    /// runs. Requests then ask the server for keepalives (every third of `limit`), so that a
    /// command that prints nothing for an hour still runs to its end, while a server gone is
    /// noticed within `limit`. A server that predates keepalives is timed until its first
    /// reply only. `shell connect` sets [`DEFAULT_SERVER_ALIVE`] unless told otherwise.
    pub fn set_server_alive(&mut self, limit: Option<std::time::Duration>) {
        let session = std::mem::take(&mut *self.session);
        *self.session = session.with_reply_timeout(limit);
    }

    /// A handle that stops this client's command in flight from another thread.
    pub fn interrupter(&self) -> ExecInterrupter {
        self.interrupter.clone()
    }

    /// Runs `command` on the server, passing its stdout and stderr to `sink` as they arrive.
    pub fn exec(
        &mut self,
        command: &str,
        sink: &mut dyn OutputSink,
    ) -> Result<ExitReport, ShellClientError> {
        self.exec_in(command, None, sink)
    }

    /// As [`exec`](Self::exec), running `command` in the directory `cwd` on the server
    /// (absolute, or relative to the server's `--workdir`; `None`: the server's `--workdir`).
    /// A `cwd` that is not a directory there is refused with [`ShellClientError::Server`]
    /// (code `bad_path`), and nothing runs.
    ///
    /// A server that closed the connection for waiting too long is noticed before the command
    /// is sent, and connected to again; should the close cross the command on the way, the
    /// server's `idle_timeout` refusal says the command did not run, and it is sent once more
    /// on a new connection. A command is never sent twice otherwise.
    pub fn exec_in(
        &mut self,
        command: &str,
        cwd: Option<&str>,
        sink: &mut dyn OutputSink,
    ) -> Result<ExitReport, ShellClientError> {
        let mut result = self.exec_once(command, cwd, sink);
        if let Err(ShellClientError::Server { code, .. }) = &result
            && code == "idle_timeout"
            && self.addr.is_some()
        {
            result = self.exec_once(command, cwd, sink);
        }
        result
    }

    /// Runs `command` (in `cwd` on the server, when given) with `input` as its standard
    /// input, passing its stdout and stderr to `sink` as they arrive: `input` is streamed to
    /// the command as it reads it (docs/PROTOCOL.md, "Standard input"), and read here only as
    /// fast as it can be sent, so that neither end holds more than a chunk of it however
    /// slowly the command reads; output keeps coming meanwhile. The command reads the end of
    /// its input where `input` ends. A command that ends before reading all of it gets no
    /// more: the rest is not read.
    ///
    /// A serial line carries no input ([`ShellClientError::Io`] with
    /// [`io::ErrorKind::Unsupported`]; a device's built-in commands read none). A server that
    /// predates input streaming runs the command with an empty input.
    pub fn exec_with_input(
        &mut self,
        command: &str,
        cwd: Option<&str>,
        input: &mut CommandInput,
        sink: &mut dyn OutputSink,
    ) -> Result<ExitReport, ShellClientError> {
        let mut read_input = false;
        let mut how = Streamed {
            cwd,
            pty: None,
            terminal: None,
        };
        let mut result = self.exec_once_with_input(command, &mut how, input, sink, &mut read_input);
        // Sent again only when none of the input was read yet: it cannot be read twice.
        if let Err(ShellClientError::Server { code, .. }) = &result
            && code == "idle_timeout"
            && self.addr.is_some()
            && !read_input
        {
            result = self.exec_once_with_input(command, &mut how, input, sink, &mut read_input);
        }
        result
    }

    /// Runs `command` on a pseudo-terminal on the server (docs/PROTOCOL.md, "Terminals"), as
    /// `ssh -t` does: `pty` says its type and first size, `input` is its input (the local
    /// terminal's bytes, passed on unchanged: Ctrl-C is byte 3), its output (the terminal's,
    /// all one stream) goes to `sink` as it arrives. An empty `command` is a login shell.
    /// `terminal` is asked at least every 100 ms while the command runs: a new size is sent
    /// as a `resize` frame; an error stops the command (the connection is closed, so the
    /// server kills it) and is returned as [`ShellClientError::Input`].
    ///
    /// A server without ptys (a device; a Windows server) refuses with
    /// [`ShellClientError::Server`], code `unsupported`.
    pub fn exec_on_terminal(
        &mut self,
        command: &str,
        pty: PtyRequest<'_>,
        input: &mut CommandInput,
        terminal: &mut dyn FnMut() -> io::Result<Option<WindowSize>>,
        sink: &mut dyn OutputSink,
    ) -> Result<ExitReport, ShellClientError> {
        let mut read_input = false;
        let mut how = Streamed {
            cwd: None,
            pty: Some(pty),
            terminal: Some(terminal),
        };
        self.exec_once_with_input(command, &mut how, input, sink, &mut read_input)
    }

    fn exec_once_with_input(
        &mut self,
        command: &str,
        how: &mut Streamed<'_, '_>,
        input: &mut CommandInput,
        sink: &mut dyn OutputSink,
        read_input: &mut bool,
    ) -> Result<ExitReport, ShellClientError> {
        let cwd = how.cwd;
        if self.stream.is_serial() {
            return Err(ShellClientError::Io(io::Error::new(
                io::ErrorKind::Unsupported,
                "a serial line carries no input to a command (a device's built-in commands read \
                 none); run it without input (< /dev/null)",
            )));
        }
        self.start_exec(command, cwd, true, how.pty)?;
        let result = match self.stream.set_nonblocking(true) {
            Ok(()) => {
                let mut exchange = Exchange {
                    stream: &mut self.stream,
                    session: &mut self.session,
                    inbox: &mut self.inbox,
                    scratch: &mut self.send_buf,
                    command: command.as_bytes(),
                    chunk: vec![0u8; INPUT_CHUNK],
                    outgoing: None,
                    body: Body::Command,
                    read_input,
                    terminal: match &mut how.terminal {
                        Some(terminal) => Some(&mut **terminal),
                        None => None,
                    },
                    size: None,
                    head: ReplyHead::default(),
                };
                exchange.run(input, sink)
            }
            Err(e) => Err(ShellClientError::Io(e)),
        };
        let restored = self.stream.set_nonblocking(false);
        let result = match (result, restored) {
            (Ok(_), Err(e)) => Err(ShellClientError::Io(e)),
            (result, _) => result,
        };
        if result
            .as_ref()
            .is_err_and(|e| !matches!(e, ShellClientError::Server { .. }))
        {
            // The connection may be out of step (a frame cut short): the next command
            // connects again, and the server kills this one if it still runs.
            self.session.reset();
            if let Some(socket) = self.stream.tcp_stream() {
                let _ = socket.shutdown(Shutdown::Both);
            }
        }
        let result = match result {
            // A file server refuses `exec` as an op it does not know: say what it is, asked on a
            // connection of its own (this one may still carry the input's frames).
            Err(ShellClientError::Server { code, message }) => Err(
                match self
                    .addr
                    .as_deref()
                    .filter(|_| code == ErrorCode::BadRequest.as_str())
                    .and_then(|addr| connect(addr, &self.tls).ok())
                    .and_then(|mut fresh| {
                        other_tool(&mut fresh, || None, REPLY_TIMEOUT, Tool::Shell, &code)
                    }) {
                    Some(reached) => ShellClientError::Reached(reached),
                    None => ShellClientError::Server { code, message },
                },
            ),
            result => result,
        };
        match result {
            Err(_) if self.interrupter.finish() => Err(ShellClientError::Interrupted),
            result => {
                self.interrupter.finish();
                result
            }
        }
    }

    /// Gets a command's request under way: a connection the server closed is opened again,
    /// what an earlier command left is dropped, and the request is queued in the session (to
    /// run in `cwd`, streaming its input when `stdin`).
    fn start_exec(
        &mut self,
        command: &str,
        cwd: Option<&str>,
        stdin: bool,
        pty: Option<PtyRequest<'_>>,
    ) -> Result<(), ShellClientError> {
        self.interrupter.finish();
        if let Some(addr) = &self.addr
            && self.stream.peer_has_closed()
        {
            self.stream = connect(addr, &self.tls)?;
            self.session.reset();
        }
        // An earlier command that failed midway left its reply unread: start afresh.
        if !self.session.is_idle() {
            self.session.reset();
        }
        // On a UART, the device drops whatever it held of an earlier request.
        self.stream.start_request();
        let options = ExecOptions {
            cwd,
            token: self.token.as_deref(),
            stdin,
            pty,
        };
        self.session
            .exec_with(command, options)
            .map_err(|e| match e {
                // A token too long for any request header: nothing was sent.
                ExecError::HeadTooLarge { .. } => {
                    ShellClientError::Io(io::Error::new(io::ErrorKind::InvalidInput, e))
                }
                other => ShellClientError::Io(io::Error::other(other)),
            })?;
        self.interrupter.start(&self.stream);
        Ok(())
    }

    fn exec_once(
        &mut self,
        command: &str,
        cwd: Option<&str>,
        sink: &mut dyn OutputSink,
    ) -> Result<ExitReport, ShellClientError> {
        self.start_exec(command, cwd, false, None)?;
        let session = &mut self.session;
        let sent = send_request(
            &mut self.stream,
            |buf| session.poll_transmit(buf),
            command.as_bytes(),
            &mut self.send_buf,
        );
        let result = match sent {
            Ok(()) => self.read_reply(sink),
            // A server refuses a bad token on the header alone and closes without reading the
            // rest, and a TLS server that refuses the client's certificate sends an alert and
            // closes: the error frame, or the alert, says why better than the broken pipe does.
            Err(broken) => Err(match self.read_reply(&mut CapturedOutput::default()) {
                Err(refusal @ ShellClientError::Server { .. }) => refusal,
                Err(ShellClientError::Io(alert))
                    if alert.kind() == io::ErrorKind::PermissionDenied =>
                {
                    ShellClientError::Io(alert)
                }
                _ => broken,
            }),
        };
        if let Err(ShellClientError::ServerSilent { .. }) = &result
            && let Some(socket) = self.stream.tcp_stream()
        {
            // What a server that comes back says now answers nothing: the next command
            // connects again.
            let _ = socket.shutdown(Shutdown::Both);
        }
        match result {
            Err(_) if self.interrupter.finish() => Err(ShellClientError::Interrupted),
            result => {
                self.interrupter.finish();
                result
            }
        }
    }

    /// Reads one command's replies: output to `sink`, up to the exit or error frame.
    fn read_reply(&mut self, sink: &mut dyn OutputSink) -> Result<ExitReport, ShellClientError> {
        // Nothing of an earlier command's reply is this one's.
        self.inbox.clear();
        let replied = await_reply(
            &mut *self.session,
            &mut self.stream,
            &mut self.inbox,
            None,
            |_, reply| match reply {
                ShellReply::Output { stream, bytes } => sink
                    .write_output(stream, bytes)
                    .map(|()| None)
                    .map_err(ShellClientError::Output),
                ShellReply::Exit(report) => Ok(Some(report)),
                ShellReply::Refused { code, message } => Err(ShellClientError::Server {
                    code: code.to_string(),
                    message: message
                        .get()
                        .unwrap_or("(an explanation too long to keep)")
                        .to_string(),
                }),
            },
            ShellClientError::from,
        );
        match replied {
            // A file server refuses `exec` as an op it does not know: say what it is.
            Err(ShellClientError::Server { code, message }) => Err(
                match other_tool(
                    &mut self.stream,
                    || connect(self.addr.as_deref()?, &self.tls).ok(),
                    REPLY_TIMEOUT,
                    Tool::Shell,
                    &code,
                ) {
                    Some(reached) => ShellClientError::Reached(reached),
                    None => ShellClientError::Server { code, message },
                },
            ),
            replied => replied,
        }
    }
}

/// Which buffer a body the session announced is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Body {
    /// The command (the request's body).
    Command,
    /// The chunk of input read last.
    Input,
}

/// What is being written: a range of the scratch buffer (a frame head the session wrote), of
/// the command, or of the input's chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outgoing {
    Head(Range<usize>),
    Body(Body, Range<usize>),
}

/// Longest wait for a Windows input, which cannot be polled: its reader thread is asked again
/// after it.
#[cfg(windows)]
const INPUT_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);

/// One command whose input streams: its request, then its input as it is read, sent while its
/// output is received, over a link made non-blocking, waiting with `poll` for whichever can
/// move.
struct Exchange<'a> {
    stream: &'a mut Link,
    session: &'a mut ShellClientSession<HEADER_CAP>,
    inbox: &'a mut Inbox,
    scratch: &'a mut [u8],
    command: &'a [u8],
    /// The input's last chunk, the body of the last `stdin` frame.
    chunk: Vec<u8>,
    outgoing: Option<Outgoing>,
    /// Where the next body the session announces is.
    body: Body,
    /// Whether any of the input was read.
    read_input: &'a mut bool,
    /// The local terminal of a command on a pty, asked for its new sizes.
    terminal: Option<&'a mut (dyn FnMut() -> io::Result<Option<WindowSize>> + 'a)>,
    /// A new size not yet sent (only the latest is kept).
    size: Option<WindowSize>,
    /// The reply's first bytes, to name another protocol's server that answered instead.
    head: ReplyHead,
}

/// How a command whose input streams is run: where, and on which terminal.
struct Streamed<'p, 't> {
    cwd: Option<&'p str>,
    pty: Option<PtyRequest<'p>>,
    /// Asked for the local terminal's new size (see [`ShellClient::exec_on_terminal`]).
    terminal: Option<&'t mut (dyn FnMut() -> io::Result<Option<WindowSize>> + 't)>,
}

/// How often a command on a terminal looks for a new window size at least (a signal that
/// tells of one may reach another thread than the one waiting).
const TERMINAL_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// How the command's answer came.
type Answer = Result<ExitReport, ShellClientError>;

impl Exchange<'_> {
    fn run(&mut self, input: &mut CommandInput, sink: &mut dyn OutputSink) -> Answer {
        self.inbox.clear();
        let mut answer: Option<Answer> = None;
        let mut send_failed: Option<io::Error> = None;
        // Once answered: how long what is due may take to go out (the input's end).
        let mut finish_by: Option<std::time::Instant> = None;
        loop {
            let mut moved = false;
            let mut all_sent = false;
            if send_failed.is_none() {
                match self.send() {
                    Ok((sent, done)) => (moved, all_sent) = (sent, done),
                    Err(e) => send_failed = Some(e),
                }
            }
            if answer.is_none()
                && let Some(terminal) = self.terminal.as_mut()
            {
                match terminal() {
                    Ok(Some(size)) => self.size = Some(size),
                    Ok(None) => {}
                    Err(e) => return Err(ShellClientError::Input(e)),
                }
            }
            let mut takes_input = send_failed.is_none()
                && answer.is_none()
                && self.outgoing.is_none()
                && self.session.wants_stdin();
            if takes_input && let Some(size) = self.size.take() {
                // A frame of its own, ahead of the next chunk of input.
                self.session
                    .send_resize(size)
                    .map_err(|e| ShellClientError::Io(io::Error::other(e)))?;
                moved = true;
                takes_input = false;
            }
            if takes_input {
                match input.read_ready(&mut self.chunk) {
                    Ok(None) => {}
                    Ok(Some(0)) => {
                        let _ = self.session.end_stdin();
                        moved = true;
                    }
                    Ok(Some(n)) => {
                        *self.read_input = true;
                        self.body = Body::Input;
                        self.session
                            .send_stdin(&self.chunk[..n])
                            .map_err(|e| ShellClientError::Io(io::Error::other(e)))?;
                        moved = true;
                    }
                    Err(e) => return Err(ShellClientError::Input(e)),
                }
            }
            if answer.is_none() {
                match self.receive(sink) {
                    Ok((got, reply)) => {
                        moved |= got;
                        // The answer may leave the input's end to send: one more round.
                        all_sent &= reply.is_none();
                        answer = reply;
                    }
                    // A server that refuses a request may close before it has read it all:
                    // its words say more than the broken pipe.
                    Err(e) => return Err(send_failed.map_or(e, ShellClientError::Io)),
                }
            }
            if let Some(done) = &answer {
                // The server drops what comes of the input for as long, then closes.
                let finish_by =
                    *finish_by.get_or_insert_with(|| std::time::Instant::now() + STDIN_DRAIN);
                let out_of_time = std::time::Instant::now() >= finish_by;
                if all_sent || send_failed.is_some() || out_of_time {
                    if !all_sent {
                        // Cut short: the connection is out of step.
                        self.session.reset();
                        if let Some(socket) = self.stream.tcp_stream() {
                            let _ = socket.shutdown(Shutdown::Both);
                        }
                    }
                    return match done {
                        Ok(report) => Ok(*report),
                        Err(_) => answer.take().expect("answered"),
                    };
                }
            }
            if !moved {
                self.wait(
                    answer.is_none(),
                    send_failed.is_none() && !all_sent,
                    takes_input.then_some(&*input),
                    finish_by,
                )?;
            }
        }
    }

    /// Writes what the session queued as far as the socket takes it without waiting: whether
    /// anything went, and whether everything due is out.
    fn send(&mut self) -> io::Result<(bool, bool)> {
        let mut moved = false;
        loop {
            if self.outgoing.is_none() {
                self.outgoing = match self.session.poll_transmit(self.scratch) {
                    Some(Transmit::Bytes(n)) => Some(Outgoing::Head(0..n)),
                    Some(Transmit::Body(n)) => Some(Outgoing::Body(self.body, 0..n)),
                    None => return Ok((moved, self.stream.flush_now()?)),
                };
            }
            let (bytes, range) = match &mut self.outgoing {
                Some(Outgoing::Head(range)) => (&self.scratch[..], range),
                Some(Outgoing::Body(Body::Command, range)) => (self.command, range),
                Some(Outgoing::Body(Body::Input, range)) => (&self.chunk[..], range),
                None => unreachable!("set above"),
            };
            match self.stream.write_now(&bytes[range.clone()]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    moved = true;
                    range.start += n;
                    if range.start == range.end {
                        self.outgoing = None;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok((moved, false)),
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads what came without waiting and hands the replies on: whether anything came, and
    /// the command's answer once it is in.
    fn receive(
        &mut self,
        sink: &mut dyn OutputSink,
    ) -> Result<(bool, Option<Answer>), ShellClientError> {
        let mut moved = false;
        loop {
            if self.inbox.unread().is_empty() {
                let stream = &mut *self.stream;
                match self.inbox.fill_with(|buf| stream.read_now(buf)) {
                    Ok(0) => {
                        if let Some(protocol) = self.head.foreign(&[]) {
                            return Err(ShellClientError::Reached(Reached::Foreign(protocol)));
                        }
                        self.session.handle_eof()?;
                        return Err(ShellClientError::ConnectionClosed);
                    }
                    Ok(_) => moved = true,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok((moved, None)),
                    Err(e) => return Err(ShellClientError::Io(e)),
                }
            }
            let unread = self.inbox.unread();
            let (used, reply) = match self.session.handle_input(now(), unread) {
                Ok(taken) => taken,
                Err(e) => {
                    return Err(match self.head.foreign(unread) {
                        Some(protocol) => ShellClientError::Reached(Reached::Foreign(protocol)),
                        None => e.into(),
                    });
                }
            };
            self.head.keep(&unread[..used]);
            let answer = match reply {
                Some(ShellReply::Output { stream, bytes }) => {
                    sink.write_output(stream, bytes)
                        .map_err(ShellClientError::Output)?;
                    None
                }
                Some(ShellReply::Exit(report)) => Some(Ok(report)),
                Some(ShellReply::Refused { code, message }) => {
                    Some(Err(ShellClientError::Server {
                        code: code.to_string(),
                        message: message
                            .get()
                            .unwrap_or("(an explanation too long to keep)")
                            .to_string(),
                    }))
                }
                None => None,
            };
            self.inbox.consume(used);
            if answer.is_some() {
                return Ok((true, answer));
            }
        }
    }

    /// Waits until the connection has something to read (while `receiving`) or room to write
    /// (while `sending`), `input` is readable, the session's deadline, or `finish_by`; a
    /// deadline of the session's that passed is handed to it.
    fn wait(
        &mut self,
        receiving: bool,
        sending: bool,
        input: Option<&CommandInput>,
        finish_by: Option<std::time::Instant>,
    ) -> Result<(), ShellClientError> {
        use rustix::event::{PollFd, PollFlags, Timespec};
        let deadline = self.session.poll_timeout(now());
        let mut limit = wait_until(deadline);
        if let Some(at) = finish_by {
            let left = at.saturating_duration_since(std::time::Instant::now());
            limit = Some(limit.map_or(left, |l| l.min(left)));
        }
        #[cfg(windows)]
        if input.is_some() {
            limit = Some(limit.map_or(INPUT_CHECK_INTERVAL, |l| l.min(INPUT_CHECK_INTERVAL)));
        }
        if receiving && self.terminal.is_some() {
            let every = TERMINAL_CHECK_INTERVAL;
            limit = Some(limit.map_or(every, |l| l.min(every)));
        }
        let Some(socket) = self.stream.tcp_stream() else {
            return Err(ShellClientError::Io(io::ErrorKind::Unsupported.into()));
        };
        let mut flags = PollFlags::empty();
        if receiving {
            flags |= PollFlags::IN;
        }
        if sending {
            flags |= PollFlags::OUT;
        }
        let mut fds = vec![PollFd::new(socket, flags)];
        #[cfg(unix)]
        if let Some(input) = input {
            fds.push(PollFd::from_borrowed_fd(input.fd(), PollFlags::IN));
        }
        #[cfg(windows)]
        let _ = input;
        let timeout = limit.and_then(|l| Timespec::try_from(l).ok());
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(ShellClientError::Io(e.into())),
        }
        if deadline.is_some_and(|at| at <= now()) {
            self.session.handle_timeout(now())?;
        }
        Ok(())
    }
}

/// A connection to a seed-style Python shell server: sends the command as raw text and reads
/// the seed's reply (4-byte LE header length, JSON header with `total_size`, then the output,
/// stdout and stderr together). A real `"md5"` in the header is verified; the seed's placeholder
/// is accepted.
pub struct SeedShellClient {
    stream: Link,
    session: Box<SeedClientSession<HEADER_CAP>>,
    inbox: Inbox,
    send_buf: Vec<u8>,
}

impl fmt::Debug for SeedShellClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeedShellClient")
            .field("link", &self.stream)
            .finish()
    }
}

impl SeedShellClient {
    /// Connects to the seed-style server at `addr`.
    pub fn connect(addr: &str) -> Result<SeedShellClient, ShellClientError> {
        Ok(SeedShellClient::over(connect(addr, &ClientTls::default())?))
    }

    /// A client over an established connection.
    pub fn from_stream(stream: TcpStream) -> SeedShellClient {
        SeedShellClient::over(Link::tcp(stream))
    }

    /// A client over an open [`Link`].
    pub fn over(stream: Link) -> SeedShellClient {
        SeedShellClient {
            stream,
            session: Box::default(),
            inbox: Inbox::new(OUTPUT_CHUNK, &[]),
            send_buf: vec![0; SEND_BUFFER],
        }
    }

    /// Gives up on a command once the server has sent nothing for `limit`; `None`, the
    /// default, waits as long as it takes. A seed server sends nothing until the command ends,
    /// so the limit bounds every command's run.
    pub fn set_server_alive(&mut self, limit: Option<std::time::Duration>) {
        let session = std::mem::take(&mut *self.session);
        *self.session = session.with_reply_timeout(limit);
    }

    /// Runs `command` and writes the output to `out`. An empty command is not sent (the seed's
    /// server would wait for it forever). The seed's server reads at most 1024 bytes per command.
    pub fn exec(&mut self, command: &str, out: &mut dyn Write) -> Result<(), ShellClientError> {
        // An earlier command that failed midway left its reply unread: start afresh.
        if !self.session.is_idle() {
            self.session.reset();
        }
        self.session
            .send(command)
            .map_err(|e| ShellClientError::Io(io::Error::other(e)))?;
        if self.session.is_idle() {
            return Ok(());
        }
        let session = &mut self.session;
        send_request(
            &mut self.stream,
            |buf| session.poll_transmit(buf),
            command.as_bytes(),
            &mut self.send_buf,
        )?;
        self.inbox.clear();
        await_reply(
            &mut *self.session,
            &mut self.stream,
            &mut self.inbox,
            None,
            |_, reply| match reply {
                SeedReply::Output(bytes) => out
                    .write_all(bytes)
                    .map(|()| None)
                    .map_err(ShellClientError::Output),
                SeedReply::End { last, .. } => out
                    .write_all(last)
                    .and_then(|()| out.flush())
                    .map(Some)
                    .map_err(ShellClientError::Output),
            },
            ShellClientError::from,
        )
    }
}
