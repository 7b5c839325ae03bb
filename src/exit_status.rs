//! The statuses `unstick` ends with besides success (0) and a plain failure (1,
//! `ExitCode::FAILURE`, which every command that fails otherwise uses), and the failures that
//! map to them. A server stopped at once by a second signal ends with the signal's own status
//! ([`StopSignal::exit_code`](crate::stop_signals::StopSignal::exit_code)).
//!
//! `shell connect` ends with the status of the last command it ran on the server, or with one
//! of these when it could not run one.

use std::io;

use unstick_std::shell::ShellClientError;

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

/// Whether a shell client failed only because its own output was closed: the status is then
/// [`OUTPUT_CLOSED`], and nothing is said.
pub fn output_closed(e: &ShellClientError) -> bool {
    matches!(e, ShellClientError::Output(output) if output.kind() == io::ErrorKind::BrokenPipe)
}
