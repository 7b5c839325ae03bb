//! `unstick shell ...`: the remote shell server and its client.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use unstick_std::server::{Penalties, Shutdown};
use unstick_std::shell::{
    CapturedOutput, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_OUTPUT, DEFAULT_MAX_SESSIONS,
    DEFAULT_TIMEOUT, SeedEncoding, SeedFormat, SeedShellClient, Shell, ShellClient,
    ShellClientError, ShellConfig, ShellServer,
};

use crate::client_settings::{
    ClientSettings, ConfigArgs, SHELL_PORT, Tool, report_connected, token_or_env,
};
use crate::console::VerbosityArgs;
use crate::serving::{LobbyArgs, LogArgs, listen_address, parse_duration, parse_size};
use crate::tls_cli::{self, TlsClientArgs, TlsServeArgs};

use crate::exit_status::{self, CONNECTION_FAILED, OUTPUT_CLOSED};
use crate::shell_lines::{self, RemoteShell, TerminalOutput};

/// `unstick shell` subcommands.
#[derive(Subcommand, Debug)]
pub enum ShellCommand {
    /// Run the shell server: `sh -c` (`cmd.exe /c` on Windows, or --shell) for every command a
    /// client sends.
    Serve(ServeArgs),
    /// Run commands on a shell server: interactively, from piped input, or one with `-c`.
    ///
    /// Interactively: line editing and history, Ctrl-C stops the running command (not the
    /// client), `cd DIR` is kept by the client and sent with every later command, `exit [N]`
    /// or `quit` leaves, and a construct that spans lines (`for ... done`, an open quote) is
    /// sent once complete. Piped input is read the same way, one whole command at a time.
    /// Nothing else carries over between commands: each runs in a fresh shell.
    Connect(ConnectArgs),
}

/// Options of `unstick shell serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on, `HOST[:PORT]` (port 8080 when none is given); a non-loopback
    /// address needs a token.
    #[arg(long, default_value = Tool::Shell.default_address())]
    listen: String,
    /// Shared secret every request must carry (default: $UNSTICK_TOKEN).
    #[arg(long)]
    token: Option<String>,
    /// Time limit per command (e.g. 60, 60s, 500ms, 2m); the command's process group is killed
    /// when it runs out.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    timeout: Duration,
    /// Output cap per command, stdout and stderr together (e.g. 16M, 512K, 1000000).
    #[arg(long, default_value = "16M", value_parser = parse_size)]
    max_output: u64,
    /// Time a connection may wait between requests, and has to complete one.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// Commands running at once; more wait up to a second for one to end, then are refused as
    /// busy. Connections waiting between
    /// commands do not count.
    #[arg(long, default_value_t = DEFAULT_MAX_SESSIONS)]
    max_sessions: usize,
    /// Working directory of the commands.
    #[arg(long, default_value = ".")]
    workdir: PathBuf,
    /// The shell commands run through: sh, bash, cmd, powershell, pwsh, or a path to one
    /// (default: sh on Unix, cmd.exe on Windows, as the seed's shell=True). cmd gets
    /// `/c "COMMAND"`, powershell and pwsh `-NoProfile -NonInteractive -EncodedCommand`, any
    /// other `-c COMMAND`.
    #[arg(long)]
    shell: Option<Shell>,
    /// Also serve seed-style clients (raw text commands, no framing, no token), replying in
    /// this format: json, size or raw. Off unless given.
    #[arg(long, value_parser = parse_seed_format, visible_alias = "legacy-reply")]
    seed_reply: Option<SeedFormat>,
    /// Encoding of the output seed-style clients get: gbk (what the seed's clients decode,
    /// written on Chinese Windows; a character GBK lacks becomes ?) or as-is. Default: as-is,
    /// except on Windows whose code page is UTF-8 (65001), where it is gbk.
    #[arg(long, requires = "seed_reply", visible_alias = "legacy-encoding")]
    seed_encoding: Option<SeedEncoding>,
    #[command(flatten)]
    lobby: LobbyArgs,
    #[command(flatten)]
    tls: TlsServeArgs,
    #[command(flatten)]
    pub log: LogArgs,
    /// A table of failed tokens shared with another server (`unstick serve`); else one of its
    /// own, with the lobby's penalty options.
    #[arg(skip)]
    shared_penalties: Option<Penalties>,
}

impl Default for ServeArgs {
    fn default() -> Self {
        ServeArgs {
            listen: Tool::Shell.default_address().to_owned(),
            token: None,
            timeout: DEFAULT_TIMEOUT,
            max_output: DEFAULT_MAX_OUTPUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_sessions: DEFAULT_MAX_SESSIONS,
            workdir: PathBuf::from("."),
            shell: None,
            seed_reply: None,
            seed_encoding: None,
            lobby: LobbyArgs::default(),
            tls: TlsServeArgs::default(),
            log: LogArgs::default(),
            shared_penalties: None,
        }
    }
}

/// Options of `unstick shell connect`.
#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// Server address: `HOST[:PORT]` (port 8080 when none is given; a name or an IP address,
    /// IPv6 in brackets as `[::1]:8080`), `tls://HOST[:PORT]` for a server started with --tls, or
    /// a device's serial line as serial:PATH or serial:PATH@BAUD (e.g.
    /// serial:/dev/ttyACM0@115200; 115200 when no speed is given), or a TCP bridge to a device's
    /// UART as uart+tcp://HOST:PORT (QEMU's -serial tcp:, ser2net). Default: $UNSTICK_SHELL_ADDR,
    /// else the config file's, else 127.0.0.1:8080.
    #[arg(value_name = "ADDR", conflicts_with = "addr_flag")]
    addr: Option<String>,
    /// The server address, as `unstick ftp` takes it: the same as ADDR.
    #[arg(long = "addr", value_name = "ADDR")]
    addr_flag: Option<String>,
    /// Run this one command, write its output byte for byte and exit with its status.
    #[arg(short = 'c', long = "command")]
    command: Option<String>,
    /// Shared secret the server expects (default: $UNSTICK_TOKEN, else the config file's).
    #[arg(long, conflicts_with = "seed")]
    token: Option<String>,
    /// Talk to a seed-style Python server: raw command out, JSON-header reply in (stdout and
    /// stderr arrive together, no exit status, and no token: seed servers have none).
    #[arg(long, visible_alias = "legacy")]
    seed: bool,
    #[command(flatten)]
    tls: TlsClientArgs,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub verbosity: VerbosityArgs,
}

impl ServeArgs {
    /// The server's options in `unstick serve`: its defaults, but for what that command takes
    /// (and the table of failed tokens it shares with the file server).
    pub fn for_serve_both(
        listen: String,
        token: Option<String>,
        workdir: PathBuf,
        tls: TlsServeArgs,
        penalties: Penalties,
    ) -> Self {
        ServeArgs {
            listen,
            token,
            workdir,
            tls,
            shared_penalties: Some(penalties),
            ..ServeArgs::default()
        }
    }
}

/// Runs a subcommand.
pub fn run(cmd: ShellCommand, shutdown: &Shutdown) -> ExitCode {
    match cmd {
        ShellCommand::Serve(args) => serve(args, shutdown),
        ShellCommand::Connect(args) if args.seed => connect_seed(&args),
        ShellCommand::Connect(args) => connect(args),
    }
}

fn serve(args: ServeArgs, shutdown: &Shutdown) -> ExitCode {
    let server = match bind(args) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("unstick shell serve: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = announce_address(&server)
        .and_then(|()| tls_cli::announce(&server.config().transport, "shell serve"))
    {
        eprintln!("unstick shell serve: {e}");
        return ExitCode::FAILURE;
    }
    serve_bound(server, shutdown)
}

/// The shell server `args` describe, bound to its address but not serving yet.
pub fn bind(mut args: ServeArgs) -> Result<ShellServer, String> {
    args.listen = listen_address(&args.listen, SHELL_PORT)?;
    let transport = args.tls.transport(&args.listen)?;
    let defaults = ShellConfig::default();
    let penalties = args
        .shared_penalties
        .unwrap_or_else(|| args.lobby.penalties());
    let mut config = ShellConfig {
        penalties,
        transport,
        shell: args.shell.unwrap_or(defaults.shell),
        workdir: args.workdir,
        token: token_or_env(args.token.as_deref()),
        lobby: args.lobby.config(args.max_sessions, args.idle_timeout),
        seed_reply: args.seed_reply,
        seed_encoding: args.seed_encoding.unwrap_or(defaults.seed_encoding),
        ..defaults
    };
    config.limits.timeout = args.timeout;
    config.limits.max_output = args.max_output;
    ShellServer::bind(&args.listen, config).map_err(|e| e.to_string())
}

/// Serves a bound shell server until `shutdown`.
pub fn serve_bound(server: ShellServer, shutdown: &Shutdown) -> ExitCode {
    match server.serve_until(shutdown) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("unstick shell serve: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints the bound address as the first line of stdout, for scripts that listen on port 0.
fn announce_address(server: &ShellServer) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{}", server.local_addr()?)?;
    out.flush()
}

impl ConnectArgs {
    /// The server address and token, from the command line, the environment or the config
    /// file.
    fn settings(&self) -> Result<ClientSettings, String> {
        let addr = self.addr.as_deref().or(self.addr_flag.as_deref());
        ClientSettings::resolve(Tool::Shell, addr, self.token.as_deref())
    }
}

fn connect(args: ConnectArgs) -> ExitCode {
    let settings = match args.settings() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("unstick shell connect: {e}");
            return ExitCode::from(CONNECTION_FAILED);
        }
    };
    let started = match settings.resolve_host() {
        Ok(started) => started,
        Err(e) => {
            eprintln!("unstick shell connect: {e}");
            return ExitCode::from(CONNECTION_FAILED);
        }
    };
    let addr = settings.addr();
    let tls = match args.tls.client_tls() {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("unstick shell connect: {e}");
            return ExitCode::from(CONNECTION_FAILED);
        }
    };
    let mut client = match ShellClient::connect_with(&addr, settings.token, tls) {
        Ok(client) => client,
        Err(e) => return connection_failed(&e),
    };
    report_connected(client.link(), started);
    match args.command {
        Some(command) => status_of(run_one(&mut client, &command)),
        None => {
            if io::stdin().is_terminal()
                && let Err(e) = check_before_the_prompt(&mut client)
            {
                return connection_failed(&e);
            }
            ExitCode::from(shell_lines::run(RemoteShell::Framed(Box::new(client))))
        }
    }
}

/// Sends an empty command, which runs nothing a shell would notice (`sh -c ''`), before an
/// interactive session shows its first prompt: a missing or wrong token, a penalized
/// address, or a server that is not a shell server is then said at once, not as the refusal
/// of every command typed.
fn check_before_the_prompt(client: &mut ShellClient) -> Result<(), ShellClientError> {
    client.exec("", &mut CapturedOutput::default()).map(drop)
}

/// Runs one command, writing its output to our stdout and stderr; returns the status a shell
/// would report for it.
fn run_one(client: &mut ShellClient, command: &str) -> Result<u8, ShellClientError> {
    let report = client.exec(command, &mut TerminalOutput::default())?;
    shell_lines::note_cut_short(&report);
    Ok(report.termination.shell_status())
}

fn status_of(result: Result<u8, ShellClientError>) -> ExitCode {
    match result {
        Ok(status) => ExitCode::from(status),
        Err(e) => connection_failed(&e),
    }
}

fn connection_failed(e: &ShellClientError) -> ExitCode {
    if exit_status::output_closed(e) {
        return ExitCode::from(OUTPUT_CLOSED);
    }
    eprintln!("unstick shell connect: {e}");
    ExitCode::from(CONNECTION_FAILED)
}

fn connect_seed(args: &ConnectArgs) -> ExitCode {
    let settings = match args.settings() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("unstick shell connect: {e}");
            return ExitCode::from(CONNECTION_FAILED);
        }
    };
    let mut client = match SeedShellClient::connect(&settings.addr()) {
        Ok(client) => client,
        Err(e) => return connection_failed(&e),
    };
    match &args.command {
        Some(command) => status_of(client.exec(command, &mut io::stdout()).map(|()| 0)),
        None => ExitCode::from(shell_lines::run(RemoteShell::Seed(Box::new(client)))),
    }
}

fn parse_seed_format(text: &str) -> Result<SeedFormat, String> {
    SeedFormat::from_name(text).ok_or_else(|| {
        let names: Vec<&str> = SeedFormat::ALL.iter().map(|f| f.name()).collect();
        format!(
            "unknown reply format {text:?}; use one of {}",
            names.join(", ")
        )
    })
}
