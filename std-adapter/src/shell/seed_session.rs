//! A seed session: a client written like the seed's sends raw text commands and gets one reply
//! per command in the configured [`LegacyReply`] format.

use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsFd;

use embedded_io_adapters::std::FromStd;
use unstick_core::Profile;
use unstick_core::blocking::{write_frame, write_plain_frame};

use super::process::{CapturedOutput, deadline_after, run_command};
use super::server::ShellConfig;
use super::session::{
    GREETING_PAUSE, Next, REPLY_HEAD_ROOM, REQUEST_BUFFER, is_timeout, read_within, time_left,
};
use super::wire::{self, LegacyReply};

/// A connection from a seed-style client: each read is one text command, answered with one
/// reply in the configured [`LegacyReply`] format (stdout, then stderr).
pub(super) struct SeedSession<'c> {
    pub(super) config: &'c ShellConfig,
    pub(super) stream: TcpStream,
}

impl SeedSession<'_> {
    pub(super) fn run(mut self, greeting: Vec<u8>) -> io::Result<()> {
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
