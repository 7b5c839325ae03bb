//! `unstick ftp ...`: (placeholder until the ftp issue lands).

use std::process::ExitCode;

use clap::Subcommand;

/// `unstick ftp` subcommands.
#[derive(Subcommand, Debug)]
pub enum FtpCommand {
    /// Run the server (not built yet).
    Serve,
}

impl FtpCommand {
    /// The server with its default options, for `unstick serve`.
    pub fn default_serve() -> Self {
        FtpCommand::Serve
    }
}

/// Runs a subcommand.
pub fn run(cmd: FtpCommand) -> ExitCode {
    match cmd {
        FtpCommand::Serve => {
            eprintln!("unstick ftp: not built yet");
            ExitCode::FAILURE
        }
    }
}
