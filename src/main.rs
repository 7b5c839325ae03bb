//! The `unstick` command-line tool.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use unstick_std::server::Shutdown;

mod ftp_cli;
mod log_queue;
mod serving;
mod shell_cli;
mod shell_construct;
mod shell_lines;
mod stop_signals;
mod tls_cli;

#[derive(Parser)]
#[command(
    name = "unstick",
    version,
    about = "Framed TCP tools without sticky packets: a remote shell and a file server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How servers write their log to stderr: `human` (one timestamped line per event) or
    /// `json` (one JSON object per line).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    /// Log only warnings and errors (refusals included).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Log more detail (`-vv` for everything).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// The log's line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// `<time> <LEVEL> <message> key=value ...`
    Human,
    /// `{"timestamp":...,"level":...,"message":...,<fields>}`
    Json,
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
    Serve(tls_cli::TlsServeArgs),
}

impl Command {
    fn is_server(&self) -> bool {
        matches!(
            self,
            Command::Serve(_)
                | Command::Shell(shell_cli::ShellCommand::Serve(_))
                | Command::Ftp(ftp_cli::FtpCommand::Serve(_))
        )
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_log(&cli);
    let shutdown = Shutdown::new();
    if cli.command.is_server() {
        #[cfg(unix)]
        serving::raise_descriptor_limit();
        if let Err(e) = serving::stop_on_signals(shutdown.clone()) {
            eprintln!("unstick: cannot handle the signals that stop a server: {e}");
            return ExitCode::FAILURE;
        }
    }
    let code = match cli.command {
        Command::Shell(cmd) => shell_cli::run(cmd, &shutdown),
        Command::Ftp(cmd) => ftp_cli::run(cmd, &shutdown),
        Command::Serve(tls) => serve_both(tls, &shutdown),
    };
    log_queue::flush(LOG_FLUSH_LIMIT);
    if let Some(status) = serving::stopped_at_once() {
        std::process::exit(status);
    }
    code
}

/// Environment variable holding the shared secret when `--token` is not given.
const TOKEN_ENV: &str = "UNSTICK_TOKEN";

/// The token given on the command line, else `UNSTICK_TOKEN` when set and not empty. A `--token`
/// given empty stays empty, for the server to refuse.
fn token_or_env(given: Option<&str>) -> Option<String> {
    given
        .map(str::to_owned)
        .or_else(|| std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty()))
}

/// How long the end of the process waits for its last log lines to reach stderr.
pub const LOG_FLUSH_LIMIT: Duration = Duration::from_secs(1);

/// Sends log events (the servers') to stderr in the chosen format and level, through a queue
/// so that a slow stderr never holds up a server.
fn init_log(cli: &Cli) {
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => tracing::Level::WARN,
        (false, 0) => tracing::Level::INFO,
        (false, 1) => tracing::Level::DEBUG,
        (false, _) => tracing::Level::TRACE,
    };
    let Ok(queue) = log_queue::LogQueue::to_stderr() else {
        eprintln!("unstick: cannot start the log thread; logging nothing");
        return;
    };
    let log = tracing_subscriber::fmt()
        .with_writer(queue)
        .with_max_level(level)
        .with_ansi(false)
        .with_target(false);
    match cli.log_format {
        LogFormat::Human => log.init(),
        LogFormat::Json => log
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}

/// Runs both servers with their defaults until both stop (a signal stops both); a server that
/// cannot start (its port taken, say) or that panics ends the whole command instead of leaving
/// the other running alone.
fn serve_both(tls: tls_cli::TlsServeArgs, shutdown: &Shutdown) -> ExitCode {
    let (stopped, stops) = std::sync::mpsc::channel();
    let servers: [fn(tls_cli::TlsServeArgs, &Shutdown) -> ExitCode; 2] = [
        |tls, shutdown| shell_cli::run(shell_cli::ShellCommand::default_serve(tls), shutdown),
        |tls, shutdown| ftp_cli::run(ftp_cli::FtpCommand::default_serve(tls), shutdown),
    ];
    for server in servers {
        let stopped = stopped.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        std::thread::spawn(move || {
            let code =
                std::panic::catch_unwind(|| server(tls, &shutdown)).unwrap_or(ExitCode::FAILURE);
            let _ = stopped.send(code);
        });
    }
    let first = stops.recv().unwrap_or(ExitCode::FAILURE);
    if !shutdown.is_requested() {
        // One server ended by itself (it could not start, or it failed): stop the other too,
        // gracefully, so that none of its commands outlives the process.
        shutdown.request();
        let _ = stops.recv();
        return ExitCode::FAILURE;
    }
    // Stopping on a signal: let the other finish its own graceful stop.
    let second = stops.recv().unwrap_or(ExitCode::FAILURE);
    if first == ExitCode::SUCCESS {
        second
    } else {
        first
    }
}
