//! A seed session: a client written like the seed's sends raw text commands and gets one reply
//! per command in the configured [`LegacyReply`] format.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::time::Instant;

use embedded_io_adapters::std::FromStd;
use unstick_core::Profile;
use unstick_core::blocking::{write_frame, write_plain_frame};

use super::connection::{
    GREETING_PAUSE, Next, REPLY_HEAD_ROOM, REQUEST_BUFFER, is_timeout, read_within, time_left,
};
use super::framed_session::log_finished;
use super::process::{CapturedOutput, RunningCommands, deadline_after, run_command};
use super::server::ShellConfig;
use super::wire::{self, LegacyReply};
use crate::server::foreign::{self, ForeignProtocol};
use crate::server::{ClientKind, Connection, ErrorCode, Handback};

/// A command from a seed-style client: each read is one text command, answered with one reply
/// in the configured [`LegacyReply`] format (stdout, then stderr).
pub(super) struct SeedSession<'c> {
    config: &'c ShellConfig,
    running: &'c RunningCommands,
    format: LegacyReply,
    peer: SocketAddr,
    stream: &'c TcpStream,
}

impl SeedSession<'_> {
    /// Runs the command in `conn.received` (the lobby saw it arrive) and hands the connection
    /// back to wait for the next.
    pub(super) fn serve_command(
        mut conn: Connection<ClientKind>,
        config: &ShellConfig,
        running: &RunningCommands,
    ) -> Handback<ClientKind> {
        let Some(format) = config.legacy_reply else {
            return Handback::Close(conn);
        };
        // A client that stops reading its reply for this long is dropped, so it cannot hold
        // its slot (or its thread) longer.
        let write_limit = config.lobby.idle_timeout.min(config.limits.timeout);
        if conn.stream.set_write_timeout(Some(write_limit)).is_err() {
            return Handback::Close(conn);
        }
        let mut command = std::mem::take(&mut conn.received);
        conn.requests += 1;
        let mut session = SeedSession {
            config,
            running,
            format,
            peer: conn.peer,
            stream: &conn.stream,
        };
        let next = match session.serve(&mut command) {
            Ok(next) => next,
            Err(_) => Next::Close,
        };
        match next {
            Next::Continue => Handback::Wait(conn),
            Next::Close => Handback::Close(conn),
        }
    }

    fn serve(&mut self, command: &mut Vec<u8>) -> io::Result<Next> {
        if self.collect_long_command(command)? {
            if foreign::holds_http_request_line(command) {
                tracing::warn!(
                    server = "shell",
                    peer = %self.peer,
                    code = %ErrorCode::ForeignProtocol,
                    reason = "a raw-text command holds an HTTP request line",
                    "refused"
                );
                let mut stream = self.stream;
                stream.write_all(&foreign::reply(ForeignProtocol::Http, "shell"))?;
                return Ok(Next::Close);
            }
            return self.answer(command);
        }
        let message = format!(
            "unstick: the command is longer than the {}-byte limit\n",
            self.config.max_command_len
        );
        tracing::warn!(
            server = "shell",
            peer = %self.peer,
            code = %ErrorCode::CommandTooLong,
            reason = %message.trim_end(),
            "refused"
        );
        self.reply(message.as_bytes(), false, false)?;
        Ok(Next::Close)
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
        let deadline = deadline_after(self.config.lobby.idle_timeout);
        let mut buf = vec![0u8; REQUEST_BUFFER];
        while command.len() <= limit {
            let Ok(left) = time_left(deadline) else {
                break;
            };
            match read_within(self.stream, &mut buf, left.min(GREETING_PAUSE)) {
                Ok(0) => break,
                Ok(n) => command.extend_from_slice(&buf[..n]),
                Err(e) if is_timeout(&e) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(command.len() <= limit)
    }

    fn answer(&mut self, command: &[u8]) -> io::Result<Next> {
        let text = match wire::command_text(command) {
            Ok(text) => text,
            Err(e) => {
                tracing::warn!(server = "shell", peer = %self.peer, code = %ErrorCode::BadCommand, reason = %e, "refused");
                self.reply(format!("unstick: {e}\n").as_bytes(), false, false)?;
                return Ok(Next::Continue);
            }
        };
        let started = Instant::now();
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
            self.running,
            &mut output,
        );
        if let Ok(outcome) = &outcome {
            log_finished(self.peer, text, outcome, started);
        }
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
        let mut stream = self.stream;
        stream.write_all(&seed_reply(self.format, body, truncated, timed_out))
    }
}

/// A seed-mode reply holding `body`, in `format`.
pub(super) fn seed_reply(
    format: LegacyReply,
    body: &[u8],
    truncated: bool,
    timed_out: bool,
) -> Vec<u8> {
    let mut out = FromStd::new(Vec::with_capacity(body.len() + REPLY_HEAD_ROOM));
    // Writing to a vector cannot fail, and the head has room for the fixed header.
    let _ = match format {
        LegacyReply::Json => {
            let header = wire::SeedReplyHeader {
                file_name: "output",
                truncated,
                timed_out,
            };
            let mut head = [0u8; REPLY_HEAD_ROOM];
            write_frame(
                &mut out,
                &wire::SEED_REPLY_ENCODER,
                &header,
                body,
                &mut head,
            )
            .map_err(|_| ())
        }
        LegacyReply::Size => write_plain_frame(&mut out, &Profile::SEED, body).map_err(|_| ()),
        LegacyReply::Raw => {
            out.inner_mut().extend_from_slice(body);
            Ok(())
        }
    };
    out.into_inner()
}
