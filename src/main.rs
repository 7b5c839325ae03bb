//! The `unstick` command-line tool.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod ftp_cli;
mod shell_cli;

#[derive(Parser)]
#[command(
    name = "unstick",
    version,
    about = "Framed TCP tools without sticky packets: a remote shell and a file server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Remote shell: run commands on a server, output streamed back in frames.
    #[command(subcommand)]
    Shell(shell_cli::ShellCommand),
    /// File server: put, get, ls, stat and delete files under a server root.
    #[command(subcommand)]
    Ftp(ftp_cli::FtpCommand),
    /// Run the shell server and the file server together, each with its defaults.
    Serve,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Shell(cmd) => shell_cli::run(cmd),
        Command::Ftp(cmd) => ftp_cli::run(cmd),
        Command::Serve => serve_both(),
    }
}

/// Runs both servers with their defaults until one of them stops; a server that cannot start
/// (its port taken, say) or that panics ends the whole command instead of leaving the other
/// running alone.
fn serve_both() -> ExitCode {
    let (stopped, first_stop) = std::sync::mpsc::channel();
    let servers: [fn() -> ExitCode; 2] = [
        || shell_cli::run(shell_cli::ShellCommand::default_serve()),
        || ftp_cli::run(ftp_cli::FtpCommand::default_serve()),
    ];
    for server in servers {
        let stopped = stopped.clone();
        std::thread::spawn(move || {
            let code = std::panic::catch_unwind(server).unwrap_or(ExitCode::FAILURE);
            let _ = stopped.send(code);
        });
    }
    // Returning from main ends the other server's thread with the process.
    first_stop.recv().unwrap_or(ExitCode::FAILURE)
}
