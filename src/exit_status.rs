//! The statuses `unstick` ends with besides success (0) and a plain failure (1,
//! `ExitCode::FAILURE`, which every command that fails otherwise uses), and the failures that
//! map to them. A server stopped at once by a second signal ends with the signal's own status
//! ([`StopSignal::exit_code`](crate::stop_signals::StopSignal::exit_code)).
//!
//! `shell connect` ends with the status of the last command it ran on the server, or with one
//! of these when it could not run one.

use std::io::{self, Write};
use std::process::ExitCode;

use unstick_std::shell::ShellClientError;
use unstick_std::system_error::SystemError;

/// A command the client could not run (the connection failed, or the server refused it), as
/// `ssh` reports it.
pub const CONNECTION_FAILED: u8 = 255;

/// The client's own output is a pipe nobody reads any more: what a shell reports for a process
/// that `SIGPIPE` ended (128 + 13), so `connect -c yes | head -1` ends quietly.
pub const OUTPUT_CLOSED: u8 = 128 + 13;

/// After a Ctrl-C, as a shell reports a command that SIGINT ended (128 + 2).
pub const INTERRUPTED: u8 = 128 + 2;

/// `exit` with an argument that is not a number, as `sh` has it.
pub const BAD_EXIT_ARGUMENT: u8 = 2;

/// Whether a failed write to the client's own output means that nobody reads it any more (a
/// pipe whose reader left, as `| head` does): the command then ends with [`OUTPUT_CLOSED`]
/// and says nothing. The one test of it every command uses.
pub fn closes_output(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

/// Whether a shell client failed only because its own output was closed ([`closes_output`]).
pub fn output_closed(e: &ShellClientError) -> bool {
    matches!(e, ShellClientError::Output(output) if closes_output(output))
}

/// Standard output for a command's results that remembers whether a write found it closed
/// ([`closes_output`]), so that a failure of the operation that wrote through it (a download
/// to `-`, say, whose error names the file) can be told from one of its own.
pub struct WatchedStdout {
    out: io::StdoutLock<'static>,
    closed: bool,
}

impl WatchedStdout {
    /// Standard output, locked for this writer.
    pub fn lock() -> Self {
        WatchedStdout {
            out: io::stdout().lock(),
            closed: false,
        }
    }

    /// Whether a write or flush found the output closed.
    pub fn closed(&self) -> bool {
        self.closed
    }

    fn watch<T>(&mut self, result: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &result
            && closes_output(e)
        {
            self.closed = true;
        }
        result
    }
}

impl Write for WatchedStdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let result = self.out.write(buf);
        self.watch(result)
    }

    fn flush(&mut self) -> io::Result<()> {
        let result = self.out.flush();
        self.watch(result)
    }
}

/// Writes a command's whole result to standard output: success, [`OUTPUT_CLOSED`] quietly
/// when nobody reads it, or a failure said on stderr as `unstick COMMAND: ...`.
pub fn print_result(text: &[u8], command: &str) -> ExitCode {
    let mut out = WatchedStdout::lock();
    match out.write_all(text).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) if out.closed() => ExitCode::from(OUTPUT_CLOSED),
        Err(e) => {
            eprintln!("unstick {command}: standard output: {}", SystemError(&e));
            ExitCode::FAILURE
        }
    }
}
