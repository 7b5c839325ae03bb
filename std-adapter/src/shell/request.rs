//! Serving one request of a shell connection: the core's [`ShellServerSession`] decides and
//! keeps the time, the shared host loop ([`serve_request`]) moves the bytes, and this work runs
//! the command.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use unstick_core::info::Protocols;
use unstick_core::session::{PeerText, ServerEvent};
use unstick_core::shell::{
    Dialect, ExitReport, RunFailure, ShellAction, ShellServerSession, StdinInput, Terminal,
    WindowSize,
};

use super::config::ShellConfig;
use super::connection::REQUEST_BUFFER;
use super::process::{
    CapturedOutput, CommandClient, CommandLimits, CommandSpec, OutputSink, OutputStream, RunError,
    RunOutcome, RunningCommands, StdinStep, Termination, run_command, run_command_for,
};
use crate::host::{Closed, Inbox, Outlet, RequestWork, hand_back, is_timeout, now, serve_request};
use crate::server::{
    ClientKind, ClientSocket, Connection, ErrorCode, HEADER_CAP, Handback, endpoint_info,
    log_refusal,
};
use crate::system_error::SystemError;

/// The session as this host serves it.
type Session<'c> = ShellServerSession<'c, HEADER_CAP>;

/// Serves the request at the start of `conn.received` (the lobby saw it ready) and hands the
/// connection back with what the client sent beyond it.
pub(super) fn serve_shell_request(
    mut conn: Connection<ClientKind>,
    config: &ShellConfig,
    running: &RunningCommands,
) -> Handback<ClientKind> {
    let dialect = match (conn.mode, config.seed_reply) {
        (ClientKind::Framed, _) => Dialect::Framed,
        (ClientKind::Seed, Some(format)) => Dialect::Seed(format),
        _ => return Handback::Close(conn),
    };
    // A client that stops reading output for this long is dropped (and its command killed), so
    // a stalled reader cannot keep a command alive much past its time limit.
    let write_limit = config.lobby.idle_timeout.min(config.limits.timeout);
    if conn
        .stream
        .tcp()
        .set_write_timeout(Some(write_limit))
        .is_err()
    {
        return Handback::Close(conn);
    }
    let mut command = COMMAND_BUFFER.take();
    // Room for the longest command and, after it, the request's working directory.
    command.resize(
        config
            .max_command_len
            .min(unstick_core::shell::MAX_COMMAND_LEN)
            + unstick_core::shell::MAX_CWD_LEN,
        0,
    );
    let mut session = ShellServerSession::<HEADER_CAP>::new(config.rules(), dialect, &mut command)
        .with_info(endpoint_info(Protocols::SHELL));
    // A seed client's first read is what the lobby received, taken whole as one command.
    let mut inbox = Inbox::new(REQUEST_BUFFER, &conn.received);
    let mut work = CommandWork {
        config,
        running,
        peer: conn.peer,
        dialect,
        token_refused: false,
    };
    let mut out = Outlet::new(&mut conn.stream);
    let served = serve_request(&mut session, &mut out, &mut inbox, &mut work);
    drop(session);
    COMMAND_BUFFER.set(command);
    hand_back(conn, &inbox, work.token_refused, served)
}

std::thread_local! {
    /// A worker's command buffer, kept between requests.
    static COMMAND_BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// What the shell server does for its session: runs commands.
struct CommandWork<'c> {
    config: &'c ShellConfig,
    running: &'c RunningCommands,
    peer: SocketAddr,
    dialect: Dialect,
    /// A request was refused for its token (counted by the lobby against the address).
    token_refused: bool,
}

impl<'s> RequestWork<Session<'s>, ClientSocket> for CommandWork<'_> {
    fn act(
        &mut self,
        out: &mut Outlet<'_, ClientSocket>,
        inbox: &mut Inbox,
        session: &mut Session<'s>,
    ) -> Result<(), Closed> {
        match session.poll_action() {
            Some(ShellAction::Run { command }) => {
                let command = command.to_owned();
                let cwd = session.cwd().map(str::to_owned);
                let terminal = session.terminal().map(|t| (t.term.to_owned(), t.size));
                let terminal = terminal
                    .as_ref()
                    .map(|(term, size)| Terminal { term, size: *size });
                self.run(out, inbox, session, &command, cwd.as_deref(), terminal)
            }
            Some(ShellAction::Close) | None => Err(Closed),
        }
    }

    fn take(
        &mut self,
        _: &mut Session<'s>,
        nothing: core::convert::Infallible,
    ) -> Result<(), Closed> {
        match nothing {}
    }

    fn record(&mut self, _: &Session<'s>, event: ServerEvent<ExitReport>) {
        // A finished command is logged by `run`, which knows how long it took.
        if let ServerEvent::Refused(refusal) = event {
            log_refusal("shell", self.peer, &refusal);
            self.token_refused |= refusal.code == ErrorCode::Unauthorized;
        }
    }

    fn is_over(&self, session: &Session<'s>) -> bool {
        session.answered() > 0 && session.is_idle()
    }
}

impl CommandWork<'_> {
    /// Runs `command` in the server's working directory, or in `cwd` (relative to it) when the
    /// request named one, on `terminal` when it asked for one; a `cwd` that is no directory is
    /// refused and nothing runs.
    fn run(
        &mut self,
        out: &mut Outlet<'_, ClientSocket>,
        inbox: &mut Inbox,
        session: &mut Session<'_>,
        command: &str,
        cwd: Option<&str>,
        terminal: Option<Terminal<'_>>,
    ) -> Result<(), Closed> {
        let started = Instant::now();
        let config = self.config;
        let workdir = match cwd {
            None => std::borrow::Cow::Borrowed(config.workdir.as_path()),
            Some(cwd) => match request_workdir(&config.workdir, cwd) {
                Ok(dir) => std::borrow::Cow::Owned(dir),
                Err(why) => {
                    let _ = session.handle_run_failed(RunFailure::BadCwd, why);
                    return Ok(());
                }
            },
        };
        let spec = CommandSpec {
            shell: &config.shell,
            command,
            workdir: &workdir,
            stdin: session.streams_stdin(),
            pty: terminal,
        };
        // A terminal session that does nothing (no output, nothing from the client) for the
        // idle timeout ends as one that ran out of time. A login session (a terminal, no
        // command) is one user's whole visit: no output cap, and the login timeout in place of
        // the per-command one.
        let limits = match terminal {
            Some(_) if command.is_empty() => CommandLimits {
                timeout: config.login_timeout.unwrap_or(Duration::MAX),
                max_output: u64::MAX,
                idle: Some(config.lobby.idle_timeout),
            },
            Some(_) => CommandLimits {
                idle: Some(config.lobby.idle_timeout),
                ..config.limits
            },
            None => config.limits,
        };
        let outcome = match self.dialect {
            Dialect::Framed => {
                let mut client = FramedClient {
                    out,
                    inbox,
                    session,
                    held: 0..0,
                    stdin_ended: false,
                    resize: None,
                };
                run_command_for(&spec, &limits, self.running, &mut client)
                    .map(|outcome| (outcome, CapturedOutput::default()))
            }
            Dialect::Seed(_) => {
                // Watched for the client hanging up while the command runs.
                let socket = out.stream.tcp().try_clone().map_err(|_| Closed)?;
                let mut output = CapturedOutput::default();
                let limits = CommandLimits {
                    max_output: config.limits.max_output.min(i32::MAX as u64),
                    ..config.limits
                };
                run_command(&spec, &limits, Some(&socket), self.running, &mut output)
                    .map(|outcome| (outcome, output))
            }
        };
        let (outcome, output) = match outcome {
            Ok(done) => done,
            Err(e) => {
                let failure = match e {
                    RunError::Spawn(_) => RunFailure::Spawn,
                    _ => RunFailure::Lost,
                };
                let _ = session.handle_run_failed(failure, &e);
                return Ok(());
            }
        };
        log_finished(self.peer, command, cwd, &outcome, started);
        if outcome.client_gone {
            // A client that broke the protocol while its input streamed was refused: logged.
            while let Some(event) = session.poll_event() {
                self.record(session, event);
            }
            session.handle_client_gone();
            return Err(Closed);
        }
        let report = ExitReport {
            termination: outcome.termination,
            truncated: outcome.truncated,
            timed_out: outcome.timed_out,
        };
        match self.dialect {
            Dialect::Framed => {
                let _ = session.handle_exit(report);
                Ok(())
            }
            Dialect::Seed(_) => {
                let mut body = output.stdout;
                body.extend_from_slice(&output.stderr);
                let body = config.seed_encoding.encode(body);
                let _ = session.handle_seed_output(&body, report);
                out.send(session, &body).map_err(|_| Closed)
            }
        }
    }
}

/// The directory a request's `cwd` names: `cwd` itself when absolute, else under `workdir`.
/// `Err` says, for the client and the log, why it is not a directory a command can run in
/// (the `cwd` escaped: it is the client's text).
fn request_workdir(workdir: &Path, cwd: &str) -> Result<PathBuf, String> {
    let dir = workdir.join(cwd);
    let shown = PeerText::new(cwd);
    match std::fs::metadata(&dir) {
        Ok(meta) if meta.is_dir() => Ok(dir),
        Ok(_) => Err(format!("cwd {shown}: not a directory on the server")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(format!("cwd {shown}: no such directory on the server"))
        }
        Err(e) => Err(format!("cwd {shown}: {}", SystemError(&e))),
    }
}

/// How long a read of a client whose socket is readable may wait for the rest of a TLS
/// record: its input is read between forwarding its command's output.
const RECEIVE_WAIT: Duration = Duration::from_millis(100);

/// A framed client while its command runs: the command's output goes to it through the
/// session as it is produced, and its input, when it streams one, comes from it through the
/// session, read from the socket into the request's inbox only while the session takes it, so
/// that a client sending faster than the command reads is held back by the connection itself.
struct FramedClient<'o, 'w, 'i, 's, 'c> {
    out: &'o mut Outlet<'w, ClientSocket>,
    inbox: &'i mut Inbox,
    session: &'s mut Session<'c>,
    /// Where, in the inbox, the input the session handed out and not yet written is.
    held: Range<usize>,
    /// The input ended and the command's pipe is still to be closed.
    stdin_ended: bool,
    /// A window size the client sent, still to be applied to the command's pty.
    resize: Option<WindowSize>,
}

impl FramedClient<'_, '_, '_, '_, '_> {
    /// Sends what the session queued (an error frame for a client that broke the protocol).
    fn send_queued(&mut self) -> io::Result<()> {
        self.out.send(self.session, &[])
    }
}

impl OutputSink for FramedClient<'_, '_, '_, '_, '_> {
    fn write_output(&mut self, stream: OutputStream, bytes: &[u8]) -> io::Result<()> {
        self.session
            .handle_output(stream, bytes)
            .map_err(io::Error::other)?;
        self.out.send(self.session, bytes)
    }
}

impl CommandClient for FramedClient<'_, '_, '_, '_, '_> {
    fn socket(&self) -> Option<&TcpStream> {
        Some(self.out.stream.tcp())
    }

    fn next_stdin(&mut self) -> io::Result<StdinStep<'_>> {
        loop {
            if self.session.poll_action() == Some(ShellAction::Close) {
                return Ok(StdinStep::Abort);
            }
            if !self.held.is_empty() {
                return Ok(StdinStep::Write(self.inbox.taken(self.held.clone())));
            }
            if std::mem::take(&mut self.stdin_ended) {
                return Ok(StdinStep::Close);
            }
            if let Some(size) = self.resize.take() {
                return Ok(StdinStep::Resize(size));
            }
            if !self.session.takes_stdin() {
                return Ok(StdinStep::Idle);
            }
            if self.inbox.unread().is_empty() {
                // Bytes TLS decrypted already make the socket no more readable.
                if !self.out.stream.has_buffered_input() {
                    return Ok(StdinStep::ReadClient);
                }
                if !self.receive()? {
                    return Ok(StdinStep::Abort);
                }
                continue;
            }
            let start = self.inbox.unread_start();
            let (used, input) = self.session.handle_stdin(self.inbox.unread());
            // The input handed out is the last of the bytes taken.
            let end = start + used;
            match input {
                Some(StdinInput::Bytes(bytes)) => self.held = end - bytes.len()..end,
                Some(StdinInput::End) => self.stdin_ended = true,
                Some(StdinInput::Resize(size)) => self.resize = Some(size),
                None => {}
            }
            self.inbox.consume(used);
            if self.send_queued().is_err() {
                return Ok(StdinStep::Abort);
            }
        }
    }

    fn stdin_written(&mut self, n: usize) {
        self.held.start += n;
        if self.held.is_empty() {
            let _ = self.session.handle_stdin_written();
        }
    }

    fn stdin_closed(&mut self) {
        self.held = 0..0;
        let _ = self.session.handle_stdin_closed();
    }

    fn receive(&mut self) -> io::Result<bool> {
        match self.inbox.fill_within(self.out.stream, RECEIVE_WAIT) {
            Ok(0) => Ok(false),
            Ok(_) => Ok(true),
            // The rest of a TLS record is late: the next readiness brings it.
            Err(e) if is_timeout(&e) => Ok(true),
            Err(_) => Ok(false),
        }
    }

    fn deadline(&mut self) -> Option<std::time::Instant> {
        let now = now();
        let at = self.session.poll_timeout(now)?;
        Some(Instant::now() + at.saturating_duration_since(now))
    }

    fn on_deadline(&mut self) -> io::Result<()> {
        self.session.handle_timeout(now());
        self.send_queued()
    }
}

/// Logs a command's end: where it ran (the request's `cwd`, when it named one), how it ended,
/// how long it ran, whether it was cut short. The command and `cwd` are the client's text,
/// quoted and escaped as every string field is.
fn log_finished(
    peer: SocketAddr,
    command: &str,
    cwd: Option<&str>,
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
        cwd,
        exit_code,
        signal,
        duration_ms,
        timed_out = outcome.timed_out,
        truncated = outcome.truncated,
        client_gone = outcome.client_gone,
        "command finished"
    );
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use crate::shell::{SeedFormat, ShellConfig, ShellServer};

    #[test]
    fn a_trickled_seed_command_is_cut_off_by_the_idle_timeout() {
        let mut config = ShellConfig {
            workdir: std::env::temp_dir(),
            seed_reply: Some(SeedFormat::Size),
            ..ShellConfig::default()
        };
        config.lobby.idle_timeout = Duration::from_secs(1);
        let server = ShellServer::bind("127.0.0.1:0", config).unwrap();
        let addr = server.local_addr().unwrap();
        std::thread::spawn(move || server.serve());
        let mut client = TcpStream::connect(addr).unwrap();
        // A first read that fills the seed's 1024 bytes, so the command may go on...
        let mut first = b"true".to_vec();
        first.resize(1024, b' ');
        client.write_all(&first).unwrap();
        // ...and a byte every 100 ms, under the 200 ms pause, for 8 s: 8 idle timeouts.
        let trickling = Arc::new(AtomicBool::new(true));
        let trickle = std::thread::spawn({
            let mut client = client.try_clone().unwrap();
            let trickling = Arc::clone(&trickling);
            move || {
                for _ in 0..80 {
                    std::thread::sleep(Duration::from_millis(100));
                    if client.write_all(b" ").is_err() {
                        break;
                    }
                }
                trickling.store(false, Ordering::SeqCst);
            }
        });
        client
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut prefix = [0u8; 4];
        client.read_exact(&mut prefix).unwrap();
        assert!(
            trickling.load(Ordering::SeqCst),
            "the command was collected for as long as the client trickled"
        );
        drop(client);
        trickle.join().unwrap();
    }
}
