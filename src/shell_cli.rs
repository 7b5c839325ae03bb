//! `unstick shell ...`: (placeholder until the shell issue lands).

use std::process::ExitCode;

use clap::Subcommand;

/// `unstick shell` subcommands.
#[derive(Subcommand, Debug)]
pub enum ShellCommand {
    /// Run the server (not built yet).
    Serve,
}

impl ShellCommand {
    /// The server with its default options, for `unstick serve`.
    pub fn default_serve() -> Self {
        ShellCommand::Serve
    }
}

/// Runs a subcommand.
pub fn run(cmd: ShellCommand) -> ExitCode {
    match cmd {
        ShellCommand::Serve => {
            eprintln!("unstick shell: not built yet");
            ExitCode::FAILURE
        }
    }
}
