//! The `unstick` command-line tool.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use unstick_std::server::Shutdown;

use serving::LogFormat;

mod client_settings;
mod config_file;
mod console;
mod exit_status;
mod files_cli;
mod info_cli;
mod known_hosts_cli;
mod log_queue;
mod man_page;
mod serve_both;
mod serving;
mod shell_cli;
mod shell_construct;
mod shell_integration;
mod shell_lines;
#[cfg(unix)]
mod shell_terminal;
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
    /// `--log-format` before the command, as earlier versions took it; each server command
    /// has its own, and only they show it.
    #[arg(long, value_enum, hide = true)]
    log_format: Option<LogFormat>,
    /// `-q` and `-v` before the command, as earlier versions took them; each server and client
    /// command has its own, with what they mean for it.
    #[arg(short, long, hide = true, conflicts_with = "verbose")]
    quiet: bool,
    #[arg(short, long, hide = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// `--config` before the command, as earlier versions took it; each client command that
    /// reads the config file has its own, and only they show it.
    #[arg(long, value_name = "FILE", hide = true)]
    config: Option<std::path::PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Remote shell: run commands on a server, output streamed back in frames.
    #[command(subcommand)]
    Shell(shell_cli::ShellCommand),
    /// File server: put, get, ls, stat, mkdir, mv and rm files under a server root.
    #[command(subcommand, name = "ftp", visible_alias = "files")]
    Files(files_cli::FilesCommand),
    /// Run the shell server and the file server together (127.0.0.1:8080 and :8090).
    ///
    /// Both are bound before `shell ADDR` and `ftp ADDR` are printed on stdout.
    Serve(serve_both::ServeBothArgs),
    /// Ask an endpoint what it is: a shell server, a file server or a device says which
    /// protocols it serves, its protocol version, its limits, its digests and its platform.
    ///
    /// Either server's port answers (the request is the same on both protocols), and no token
    /// is needed.
    #[command(after_help = "Examples:
  unstick info 127.0.0.1:8090
  unstick info --json uart+tcp://127.0.0.1:7000
  unstick info serial:/dev/ttyACM0")]
    Info(info_cli::InfoArgs),
    /// The TLS servers this client trusts (its known-hosts file): list them, or remove one
    /// whose key was replaced on purpose.
    #[command(subcommand, name = "known-hosts")]
    KnownHosts(known_hosts_cli::KnownHostsCommand),
    /// Print a tab-completion script for bash, zsh, fish or PowerShell (see the README for
    /// where to put it).
    Completions(shell_integration::CompletionsArgs),
    /// Print the manual page (roff), or write one per command with --dir.
    Man(shell_integration::ManArgs),
    /// Print a new random token for --token or UNSTICK_TOKEN: 64 hexadecimal digits (256 bits)
    /// from the operating system's random number generator.
    Token,
}

impl Command {
    fn is_server(&self) -> bool {
        matches!(
            self,
            Command::Serve(_)
                | Command::Shell(shell_cli::ShellCommand::Serve(_))
                | Command::Files(files_cli::FilesCommand::Serve(_))
        )
    }

    /// A server command's `--log-format`.
    fn log_format(&self) -> Option<LogFormat> {
        match self {
            Command::Serve(args) => args.log.log_format,
            Command::Shell(shell_cli::ShellCommand::Serve(args)) => args.log.log_format,
            Command::Files(files_cli::FilesCommand::Serve(args)) => args.log.log_format,
            _ => None,
        }
    }

    /// `-q` and `-v` as the command took them: quiet, and how verbose.
    fn verbosity(&self) -> (bool, u8) {
        let log = |args: &serving::LogArgs| (args.quiet, args.verbose);
        let console = |args: &console::VerbosityArgs| (args.quiet, args.verbose);
        match self {
            Command::Serve(args) => log(&args.log),
            Command::Shell(shell_cli::ShellCommand::Serve(args)) => log(&args.log),
            Command::Files(files_cli::FilesCommand::Serve(args)) => log(&args.log),
            Command::Shell(shell_cli::ShellCommand::Connect(args)) => console(&args.verbosity),
            Command::Files(cmd) => cmd
                .client()
                .map_or((false, 0), |client| console(&client.verbosity)),
            Command::Info(args) => console(&args.verbosity),
            Command::Completions(_) | Command::Man(_) | Command::Token | Command::KnownHosts(_) => {
                (false, 0)
            }
        }
    }

    /// A client command's `--config`.
    fn config_file(&self) -> Option<&std::path::PathBuf> {
        match self {
            Command::Shell(shell_cli::ShellCommand::Connect(args)) => args.config.file(),
            Command::Files(cmd) => cmd.client().and_then(|client| client.config.file()),
            _ => None,
        }
    }
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    // Before the command (the old place) or after it, as each command takes them.
    let (quiet, verbose) = cli.command.verbosity();
    cli.quiet |= quiet;
    cli.verbose = cli.verbose.saturating_add(verbose);
    init_log(&cli);
    console::set_verbosity(match (cli.quiet, cli.verbose) {
        (true, _) => console::Verbosity::Quiet,
        (false, 0) => console::Verbosity::Normal,
        (false, _) => console::Verbosity::Verbose,
    });
    client_settings::set_config_flag(cli.command.config_file().or(cli.config.as_ref()).cloned());
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
        Command::Files(cmd) => files_cli::run(cmd, &shutdown),
        Command::Serve(args) => serve_both::run(args, &shutdown),
        Command::Info(args) => info_cli::run(&args),
        Command::KnownHosts(cmd) => known_hosts_cli::run(&cmd),
        Command::Completions(args) => {
            shell_integration::completions(&args, <Cli as clap::CommandFactory>::command())
        }
        Command::Man(args) => {
            shell_integration::man(&args, <Cli as clap::CommandFactory>::command())
        }
        Command::Token => print_token(),
    };
    log_queue::flush(log_queue::FLUSH_LIMIT);
    if let Some(status) = serving::stopped_at_once() {
        std::process::exit(status);
    }
    code
}

/// `unstick token`: prints a new random token on stdout.
fn print_token() -> ExitCode {
    match unstick_std::server::generate_token() {
        Ok(token) => exit_status::print_result(format!("{token}\n").as_bytes(), "token"),
        Err(e) => {
            eprintln!("unstick token: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Sends log events (the servers') to stderr in the chosen format and level, through a queue
/// so that a slow stderr never holds up a server.
fn init_log(cli: &Cli) {
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => tracing::Level::WARN,
        (false, 0) => tracing::Level::INFO,
        (false, 1) => tracing::Level::DEBUG,
        (false, _) => tracing::Level::TRACE,
    };
    let format = cli
        .command
        .log_format()
        .or(cli.log_format)
        .unwrap_or(LogFormat::Human);
    let line_format = match format {
        LogFormat::Human => log_queue::LineFormat::Human,
        LogFormat::Json => log_queue::LineFormat::Json,
    };
    let Ok(queue) = log_queue::LogQueue::to_stderr(line_format) else {
        eprintln!("unstick: cannot start the log thread; logging nothing");
        return;
    };
    let log = tracing_subscriber::fmt()
        .with_writer(queue)
        .with_max_level(level)
        .with_ansi(false)
        .with_target(false);
    match format {
        LogFormat::Human => log.init(),
        LogFormat::Json => log
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}
