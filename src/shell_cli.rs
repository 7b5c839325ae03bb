//! `unstick shell ...`: the remote shell server and its client.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use unstick_std::server::{Penalties, Shutdown};
use unstick_std::shell::{
    CapturedOutput, CommandInput, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_OUTPUT, DEFAULT_MAX_SESSIONS,
    DEFAULT_SERVER_ALIVE, DEFAULT_TIMEOUT, SeedEncoding, SeedFormat, SeedShellClient, Shell,
    ShellClient, ShellClientError, ShellConfig, ShellServer,
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
    /// Run commands on a shell server: interactively, from piped input, or one with `-c` (or
    /// as words after the address, as ssh takes them).
    ///
    /// One command (`-c CMD`, or `ADDR CMD ARGS...`) gets the client's standard input when that
    /// is piped or a file (`echo hi | unstick shell connect HOST cat`), streamed as the command
    /// reads it; from a terminal it gets none.
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
    /// Time limit of an interactive login session (`shell connect -t` with no command), which
    /// --timeout and --max-output do not bound (default: none; --idle-timeout still ends one
    /// that does nothing).
    #[arg(long, value_parser = parse_duration)]
    login_timeout: Option<Duration>,
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
            login_timeout: None,
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
    /// Run this one command, write its output byte for byte and exit with its status. Its
    /// standard input is ours when that is piped or a file.
    #[arg(short = 'c', long = "command", conflicts_with = "words")]
    command: Option<String>,
    /// The command to run, as words after the address, as ssh takes them: joined with spaces
    /// into one command line that the server's shell splits again, so quote for both shells
    /// (`unstick shell connect HOST 'echo "a  b"'`). The same as -c with that line.
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        requires = "addr"
    )]
    words: Vec<String>,
    /// Shared secret the server expects (default: $UNSTICK_TOKEN, else the config file's).
    #[arg(long, conflicts_with = "seed")]
    token: Option<String>,
    /// Run on a pseudo-terminal on the server, as `ssh -t`: a login shell without COMMAND, the
    /// local terminal raw (Ctrl-C, Ctrl-Z reach the remote side), window size followed. The
    /// default for an interactive session on a terminal (Unix).
    #[arg(short = 't', long = "tty", conflicts_with_all = ["no_tty", "seed"])]
    tty: bool,
    /// No pseudo-terminal: an interactive session edits a line at a time here and runs each
    /// as a command of its own.
    #[arg(short = 'T', long = "no-tty")]
    no_tty: bool,
    /// Talk to a seed-style Python server: raw command out, JSON-header reply in (stdout and
    /// stderr arrive together, no exit status, and no token: seed servers have none).
    #[arg(long, visible_alias = "legacy")]
    seed: bool,
    /// How long a server that sends nothing is waited for while a command runs (e.g. 15s,
    /// 500ms, 2m; 0 waits forever). The server is asked for a keepalive every third of it, so a
    /// command that prints nothing for hours still runs to its end, and a server gone (or a
    /// port that accepts and never answers) is noticed in this time. Default: 15s; with
    /// --seed, forever (a seed server says nothing until the command ends). The file client's
    /// option of the same name.
    #[arg(long, value_name = "TIME", value_parser = parse_server_alive)]
    server_alive: Option<ServerAlive>,
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
    config.login_timeout = args.login_timeout;
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
    /// The one command to run: `-c`'s, or the words after the address joined with spaces (as
    /// ssh joins them); `None` for a session of commands.
    fn one_command(&self) -> Option<String> {
        match (&self.command, self.words.is_empty()) {
            (Some(command), _) => Some(command.clone()),
            (None, false) => Some(self.words.join(" ")),
            (None, true) => None,
        }
    }

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
    client.set_server_alive(
        args.server_alive
            .map_or(Some(DEFAULT_SERVER_ALIVE), |s| s.0),
    );
    report_connected(client.link(), started);
    #[cfg(unix)]
    if wants_terminal(&args, &client) {
        let command = args.one_command().unwrap_or_default();
        match crate::shell_terminal::run(&mut client, &command) {
            Err(ShellClientError::Server { code, message }) if code == "unsupported" => {
                if args.tty || !command.is_empty() {
                    eprintln!(
                        "unstick shell connect: the server has no pseudo-terminal to give:                          {message}\nunstick shell connect: run it without one: -T"
                    );
                    return ExitCode::from(CONNECTION_FAILED);
                }
                eprintln!(
                    "unstick shell connect: the server has no pseudo-terminal; a line at a                      time instead (-T asks for this)"
                );
            }
            result => {
                return status_of(result.map(|report| {
                    shell_lines::note_cut_short(&report);
                    report.termination.shell_status()
                }));
            }
        }
    }
    match args.one_command() {
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
/// would report for it. Its input is our standard input when that is piped or a file (not a
/// terminal: a command would wait for lines nobody knows to type, and without a pseudo-terminal
/// it would not see them as typed); a device on a serial line gets none (its built-ins read
/// none).
/// Whether the command (or the session) runs on a pseudo-terminal: asked for with `-t`, or an
/// interactive session with a terminal on both sides, unless `-T`. A serial line carries no
/// input, so no terminal either.
#[cfg(unix)]
fn wants_terminal(args: &ConnectArgs, client: &ShellClient) -> bool {
    if args.no_tty || client.link().is_serial() {
        return false;
    }
    args.tty
        || (args.one_command().is_none() && io::stdin().is_terminal() && io::stdout().is_terminal())
}

/// Whether standard input is the null device.
#[cfg(unix)]
fn stdin_is_null() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(stdin) = io::stdin().as_fd().try_clone_to_owned() else {
        return false;
    };
    match (
        std::fs::File::from(stdin).metadata(),
        std::fs::metadata("/dev/null"),
    ) {
        (Ok(stdin), Ok(null)) => stdin.file_type().is_char_device() && stdin.rdev() == null.rdev(),
        _ => false,
    }
}

/// Whether standard input is the null device (not told apart on this system: its end comes at
/// once anyway).
#[cfg(not(unix))]
fn stdin_is_null() -> bool {
    false
}

fn run_one(client: &mut ShellClient, command: &str) -> Result<u8, ShellClientError> {
    let mut output = TerminalOutput::default();
    // A standard input that is closed (`<&-`) is none at all, and the null device
    // (`< /dev/null`, a service's) has nothing to send: the command runs as one without input.
    let input = (!io::stdin().is_terminal() && !client.link().is_serial() && !stdin_is_null())
        .then(CommandInput::stdin)
        .and_then(Result::ok);
    let report = match input {
        Some(mut input) => client.exec_with_input(command, None, &mut input, &mut output)?,
        None => client.exec(command, &mut output)?,
    };
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
    client.set_server_alive(args.server_alive.and_then(|s| s.0));
    match args.one_command() {
        Some(command) => status_of(client.exec(&command, &mut io::stdout()).map(|()| 0)),
        None => ExitCode::from(shell_lines::run(RemoteShell::Seed(Box::new(client)))),
    }
}

/// `--server-alive`: how long a silent server is waited for; `None` (`0`): forever.
#[derive(Clone, Copy, Debug)]
struct ServerAlive(Option<Duration>);

fn parse_server_alive(text: &str) -> Result<ServerAlive, String> {
    if text.trim().trim_end_matches('s') == "0" {
        return Ok(ServerAlive(None));
    }
    parse_duration(text).map(|limit| ServerAlive(Some(limit)))
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
