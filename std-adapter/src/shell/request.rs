//! Serving one request of a shell connection: the core's [`ShellServerSession`] decides and
//! keeps the time, the shared host loop ([`serve_request`]) moves the bytes, and this work runs
//! the command.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use unstick_core::info::Protocols;
use unstick_core::session::{PeerText, ServerEvent};
use unstick_core::shell::{Dialect, ExitReport, RunFailure, ShellAction, ShellServerSession};

use super::config::ShellConfig;
use super::connection::REQUEST_BUFFER;
use super::process::{
    CapturedOutput, CommandLimits, CommandSpec, OutputSink, OutputStream, RunError, RunOutcome,
    RunningCommands, Termination, run_command,
};
use crate::host::{Closed, Inbox, Outlet, RequestWork, hand_back, serve_request};
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
        session: &mut Session<'s>,
    ) -> Result<(), Closed> {
        match session.poll_action() {
            Some(ShellAction::Run { command }) => {
                let command = command.to_owned();
                let cwd = session.cwd().map(str::to_owned);
                self.run(out, session, &command, cwd.as_deref())
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
    /// request named one; a `cwd` that is no directory is refused and nothing runs.
    fn run(
        &mut self,
        out: &mut Outlet<'_, ClientSocket>,
        session: &mut Session<'_>,
        command: &str,
        cwd: Option<&str>,
    ) -> Result<(), Closed> {
        let started = Instant::now();
        // Watched for the client hanging up while the command runs.
        let socket = out.stream.tcp().try_clone().map_err(|_| Closed)?;
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
        };
        let outcome = match self.dialect {
            Dialect::Framed => {
                let mut sink = SessionSink { out, session };
                run_command(
                    &spec,
                    &config.limits,
                    Some(&socket),
                    self.running,
                    &mut sink,
                )
                .map(|outcome| (outcome, CapturedOutput::default()))
            }
            Dialect::Seed(_) => {
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

/// Passes a framed command's output through the session to the client as it is produced.
struct SessionSink<'o, 'w, 's, 'c> {
    out: &'o mut Outlet<'w, ClientSocket>,
    session: &'s mut Session<'c>,
}

impl OutputSink for SessionSink<'_, '_, '_, '_> {
    fn write_output(&mut self, stream: OutputStream, bytes: &[u8]) -> io::Result<()> {
        self.session
            .handle_output(stream, bytes)
            .map_err(io::Error::other)?;
        self.out.send(self.session, bytes)
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
