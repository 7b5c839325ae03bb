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
use std::sync::{Arc, Mutex, PoisonError};

use unstick_core::session::{PeerText, Transmit};
use unstick_core::shell::{
    ExecError, SeedClientSession, SeedReply, ShellClientSession, ShellProtocolError, ShellReply,
};

use crate::host::{Inbox, ReplyFailure, await_reply};
use crate::info::{InfoRequestError, RemoteInfo, request_info};
use crate::link::{Endpoint, Link};
use crate::reached::{Reached, Tool, other_tool};
use crate::tls::{ClientTls, TlsConnectError};

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
            | ShellClientError::Output(source) => Some(source),
            _ => None,
        }
    }
}

impl From<ShellProtocolError> for ShellClientError {
    fn from(e: ShellProtocolError) -> Self {
        match e {
            ShellProtocolError::ConnectionClosed => ShellClientError::ConnectionClosed,
            ShellProtocolError::TimedOut { .. } => {
                ShellClientError::Io(io::Error::new(io::ErrorKind::TimedOut, e.to_string()))
            }
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

    fn exec_once(
        &mut self,
        command: &str,
        cwd: Option<&str>,
        sink: &mut dyn OutputSink,
    ) -> Result<ExitReport, ShellClientError> {
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
        self.session
            .exec_in(command, cwd, self.token.as_deref())
            .map_err(|e| match e {
                // A token too long for any request header: nothing was sent.
                ExecError::HeadTooLarge { .. } => {
                    ShellClientError::Io(io::Error::new(io::ErrorKind::InvalidInput, e))
                }
                other => ShellClientError::Io(io::Error::other(other)),
            })?;
        self.interrupter.start(&self.stream);
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
