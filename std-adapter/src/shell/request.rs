//! Serving one request of a shell connection: the core's [`ShellServerSession`] decides, this
//! host reads the socket, runs the command and writes what the session hands out.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use unstick_core::info::Protocols;
use unstick_core::session::PeerText;
use unstick_core::shell::{Dialect, ExitReport, RunFailure, ShellAction, ShellServerSession};

use super::config::ShellConfig;
use super::connection::{GREETING_PAUSE, REQUEST_BUFFER, is_timeout, time_left};
use super::process::{
    CapturedOutput, CommandLimits, CommandSpec, OutputSink, OutputStream, RunError, RunOutcome,
    RunningCommands, Termination, deadline_after, run_command,
};
use crate::server::{
    ClientKind, Connection, ErrorCode, HEADER_CAP, Handback, RequestStream, endpoint_info,
    log_refusal,
};
use crate::transmit::send_transmits;

/// Room for the frame heads the session writes; any head fits.
const TRANSMIT_BUFFER: usize = 4096;

/// Serves the request at the start of `conn.received` (the lobby saw it ready) and hands the
/// connection back with what the client sent beyond it.
pub(super) fn serve_request(
    mut conn: Connection<ClientKind>,
    config: &ShellConfig,
    running: &RunningCommands,
) -> Handback<ClientKind> {
    let dialect = match (conn.mode, config.legacy_reply) {
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
    let rules = config.rules();
    let mut command = COMMAND_BUFFER.take();
    // Room for the longest command and, after it, the request's working directory.
    command.resize(
        config
            .max_command_len
            .min(unstick_core::shell::MAX_COMMAND_LEN)
            + unstick_core::shell::MAX_CWD_LEN,
        0,
    );
    let session = ShellServerSession::<HEADER_CAP>::new(rules, dialect, &mut command)
        .with_info(endpoint_info(Protocols::SHELL));
    let received = std::mem::take(&mut conn.received);
    // A seed client's first read is what the lobby received, taken whole as one command.
    let (received, seed_first_read) = match dialect {
        Dialect::Framed => (received, None),
        Dialect::Seed(_) => (Vec::new(), Some(received)),
    };
    let deadline = deadline_after(config.lobby.idle_timeout);
    let mut host = RequestHost {
        session,
        config,
        running,
        peer: conn.peer,
        transmit_buf: vec![0u8; TRANSMIT_BUFFER],
        stream: RequestStream::new(received, &mut conn.stream, Some(deadline)),
        dialect,
        read_buf: vec![0u8; REQUEST_BUFFER],
        unread: 0..0,
        seed_first_read,
        collect_deadline: None,
        token_refused: false,
    };
    let close = host.serve().is_err();
    let mut rest = host.read_buf[host.unread.clone()].to_vec();
    rest.extend_from_slice(host.stream.unread());
    let token_refused = host.token_refused;
    drop(host);
    COMMAND_BUFFER.set(command);
    conn.received = rest;
    conn.token_refused = token_refused;
    conn.requests += 1;
    if close {
        Handback::Close(conn)
    } else {
        Handback::Wait(conn)
    }
}

std::thread_local! {
    /// A worker's command buffer, kept between requests.
    static COMMAND_BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// The connection is to be closed.
struct Closed;

/// Sends everything `session` has queued to `stream`, through `scratch`; `body` is the body
/// the session's last call handed over.
fn send_queued(
    stream: &mut RequestStream<'_>,
    scratch: &mut [u8],
    session: &mut ShellServerSession<'_, HEADER_CAP>,
    body: &[u8],
) -> io::Result<()> {
    send_transmits(stream, scratch, body, |buf| session.poll_transmit(buf))
}

struct RequestHost<'h, 'c> {
    session: ShellServerSession<'h, HEADER_CAP>,
    config: &'c ShellConfig,
    running: &'c RunningCommands,
    peer: SocketAddr,
    /// Room for the frame heads the session writes.
    transmit_buf: Vec<u8>,
    stream: RequestStream<'h>,
    dialect: Dialect,
    read_buf: Vec<u8>,
    /// Bytes of `read_buf` read but not yet taken by the session.
    unread: std::ops::Range<usize>,
    /// A seed client's first read (what the lobby received), until the session has it.
    seed_first_read: Option<Vec<u8>>,
    /// When collecting a long seed command must end, once it has started.
    collect_deadline: Option<Instant>,
    /// A request was refused for its token (counted by the lobby against the address).
    token_refused: bool,
}

impl RequestHost<'_, '_> {
    /// Serves one request; `Err` when the connection is to be closed.
    fn serve(&mut self) -> Result<(), Closed> {
        loop {
            self.flush(&[])?;
            match self.session.poll_action() {
                Some(ShellAction::Run { command }) => {
                    let command = command.to_owned();
                    let cwd = self.session.cwd().map(str::to_owned);
                    self.run(&command, cwd.as_deref())?;
                }
                Some(ShellAction::Close) => return Err(Closed),
                Some(ShellAction::AwaitPause) => self.read_until_pause()?,
                None if self.session.answered() > 0 && self.session.is_idle() => return Ok(()),
                None => self.read_more()?,
            }
        }
    }

    fn flush(&mut self, body: &[u8]) -> Result<(), Closed> {
        let sent = send_queued(
            &mut self.stream,
            &mut self.transmit_buf,
            &mut self.session,
            body,
        );
        if let Some(refusal) = self.session.take_refusal() {
            log_refusal("shell", self.peer, &refusal);
            self.token_refused |= refusal.code == ErrorCode::Unauthorized;
        }
        sent.map_err(|_| Closed)
    }

    /// Feeds the session what was read and not taken yet, or reads more.
    fn read_more(&mut self) -> Result<(), Closed> {
        if let Some(first) = self.seed_first_read.take() {
            self.session.handle_input(&first);
            return Ok(());
        }
        if self.unread.is_empty() {
            match self.stream.read(&mut self.read_buf) {
                Ok(0) => self.session.handle_eof(),
                Ok(n) => self.unread = 0..n,
                Err(e) if is_timeout(&e) => self
                    .session
                    .handle_idle_timeout(self.config.lobby.idle_timeout.as_secs()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Closed),
            }
            return Ok(());
        }
        let used = self
            .session
            .handle_input(&self.read_buf[self.unread.clone()]);
        self.unread.start += used;
        Ok(())
    }

    /// A seed command that filled the seed's read may go on until the client pauses, and for
    /// no longer than the idle timeout in all.
    fn read_until_pause(&mut self) -> Result<(), Closed> {
        let deadline = *self
            .collect_deadline
            .get_or_insert_with(|| deadline_after(self.config.lobby.idle_timeout));
        let Ok(left) = time_left(deadline) else {
            self.session.handle_pause();
            return Ok(());
        };
        match self
            .stream
            .read_within(&mut self.read_buf, left.min(GREETING_PAUSE))
        {
            Ok(0) => self.session.handle_pause(),
            Ok(n) => {
                self.session.handle_input(&self.read_buf[..n]);
            }
            Err(e) if is_timeout(&e) => self.session.handle_pause(),
            Err(_) => return Err(Closed),
        }
        Ok(())
    }

    /// Runs `command` in the server's working directory, or in `cwd` (relative to it) when the
    /// request named one; a `cwd` that is no directory is refused and nothing runs.
    fn run(&mut self, command: &str, cwd: Option<&str>) -> Result<(), Closed> {
        let started = Instant::now();
        // Watched for the client hanging up while the command runs.
        let socket = self.stream.tcp().try_clone().map_err(|_| Closed)?;
        let config = self.config;
        let workdir = match cwd {
            None => std::borrow::Cow::Borrowed(config.workdir.as_path()),
            Some(cwd) => match request_workdir(&config.workdir, cwd) {
                Ok(dir) => std::borrow::Cow::Owned(dir),
                Err(why) => {
                    let _ = self.session.handle_run_failed(RunFailure::BadCwd, why);
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
                let mut sink = SessionSink { host: self };
                let running = sink.host.running;
                run_command(&spec, &config.limits, Some(&socket), running, &mut sink)
                    .map(|outcome| (outcome, CapturedOutput::default()))
            }
            Dialect::Seed(_) => {
                let mut output = CapturedOutput::default();
                let limits = CommandLimits {
                    max_output: self.config.limits.max_output.min(i32::MAX as u64),
                    ..self.config.limits
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
                let _ = self.session.handle_run_failed(failure, &e);
                return Ok(());
            }
        };
        log_finished(self.peer, command, cwd, &outcome, started);
        if outcome.client_gone {
            self.session.handle_client_gone();
            return Err(Closed);
        }
        let report = ExitReport {
            termination: outcome.termination,
            truncated: outcome.truncated,
            timed_out: outcome.timed_out,
        };
        match self.dialect {
            Dialect::Framed => {
                let _ = self.session.handle_exit(report);
                Ok(())
            }
            Dialect::Seed(_) => {
                let mut body = output.stdout;
                body.extend_from_slice(&output.stderr);
                let body = self.config.legacy_encoding.encode(body);
                let _ = self.session.handle_seed_output(&body, report);
                self.flush(&body)
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
        Err(e) => Err(format!("cwd {shown}: {e}")),
    }
}

/// Passes a framed command's output through the session to the client as it is produced.
struct SessionSink<'s, 'h, 'c> {
    host: &'s mut RequestHost<'h, 'c>,
}

impl OutputSink for SessionSink<'_, '_, '_> {
    fn write_output(&mut self, stream: OutputStream, bytes: &[u8]) -> io::Result<()> {
        self.host
            .session
            .handle_output(stream, bytes)
            .map_err(io::Error::other)?;
        let host = &mut *self.host;
        send_queued(
            &mut host.stream,
            &mut host.transmit_buf,
            &mut host.session,
            bytes,
        )
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

    use crate::shell::{LegacyReply, ShellConfig, ShellServer};

    #[test]
    fn a_trickled_seed_command_is_cut_off_by_the_idle_timeout() {
        let mut config = ShellConfig {
            workdir: std::env::temp_dir(),
            legacy_reply: Some(LegacyReply::Size),
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
