//! `unstick ftp ...`: the file server and its client commands.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use unstick_core::Algorithm;
use unstick_std::ftp::{
    ClientError, ClientOptions, FileClient, FileServer, FileServerConfig, Progress, RemotePath,
    TerminalProgress, check_local_name, escape_for_terminal, is_partial_mismatch, put_legacy,
};
use unstick_std::server::Shutdown;

use crate::client_settings::{ClientSettings, FTP_PORT, Tool, report_connected};
use crate::console;
use crate::serving::{LobbyArgs, listen_address, parse_duration, parse_size};
use crate::tls_cli::{self, TlsClientArgs, TlsServeArgs};
use crate::token_or_env;

const DEFAULT_ADDR: &str = "127.0.0.1:8090";

/// `unstick ftp` subcommands.
#[derive(Subcommand, Debug)]
pub enum FtpCommand {
    /// Serve files under a root directory.
    Serve(ServeArgs),
    /// Upload LOCAL as REMOTE (default: LOCAL's file name).
    Put {
        /// Local file to upload.
        local: PathBuf,
        /// Remote path, relative to the server root.
        remote: Option<String>,
        /// Continue an interrupted upload of this file instead of starting over.
        #[arg(long, short = 'C')]
        resume: bool,
        /// Speak the seed's upload protocol (`{"filepath","filename","filesize"}`, no reply):
        /// for the original Python server. Nothing is verified.
        #[arg(long, conflicts_with = "resume")]
        legacy: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Download REMOTE to LOCAL (default: REMOTE's file name in the current directory).
    Get {
        /// Remote path, relative to the server root.
        remote: String,
        /// Local file (or existing directory) to write.
        local: Option<PathBuf>,
        /// Continue an interrupted download instead of starting over.
        #[arg(long, short = 'C')]
        resume: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List a remote directory (default: the root): name, size, modification time.
    Ls {
        /// Remote directory.
        dir: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a remote file's kind, size and modification time.
    Stat {
        /// Remote path.
        path: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a remote file (or empty directory), and any interrupted upload of it held for
    /// resume.
    Delete {
        /// Remote path.
        path: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Options of `unstick ftp serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on, `HOST[:PORT]` (port 8090 when none is given); a non-loopback
    /// address needs a token.
    #[arg(long, default_value = DEFAULT_ADDR)]
    listen: String,
    /// Directory to serve (created if missing).
    #[arg(long, default_value = "unstick-files")]
    root: PathBuf,
    /// Largest file accepted, in bytes (suffixes K, M, G, T: powers of 1024).
    #[arg(long, default_value = "1T", value_parser = parse_size)]
    max_file_size: u64,
    /// Requests served at once; more wait up to a second for one to end, then are refused as
    /// busy. Connections waiting between
    /// requests do not count.
    #[arg(long, default_value_t = 64)]
    max_connections: usize,
    /// Time a connection may wait between requests, or stay silent during one (e.g. 60, 60s,
    /// 2m).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// Token clients must present (or set UNSTICK_TOKEN).
    #[arg(long)]
    token: Option<String>,
    #[command(flatten)]
    lobby: LobbyArgs,
    #[command(flatten)]
    tls: TlsServeArgs,
}

/// Options shared by the client commands.
#[derive(Args, Debug)]
pub struct ClientArgs {
    /// Server address: `HOST[:PORT]` (port 8090 when none is given; a name or an IP address,
    /// IPv6 in brackets as `[::1]:8090`), `tls://HOST[:PORT]` for a server started with --tls, or a
    /// device's serial line as serial:PATH or serial:PATH@BAUD (e.g.
    /// serial:/dev/ttyACM0@115200; 115200 when no speed is given). Default: $UNSTICK_FTP_ADDR,
    /// else the config file's, else 127.0.0.1:8090.
    #[arg(long, value_name = "ADDR")]
    addr: Option<String>,
    /// Token, if the server requires one (default: $UNSTICK_TOKEN, else the config file's).
    #[arg(long)]
    token: Option<String>,
    /// Verify with MD5 instead of XXH3 (slower; for peers that only know MD5).
    #[arg(long)]
    md5: bool,
    /// How long to wait for a silent server (e.g. 60, 60s, 500ms, 2m).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    tls: TlsClientArgs,
}

impl ClientArgs {
    /// The server address and token, from the command line, the environment or the config
    /// file.
    fn settings(&self) -> Result<ClientSettings, String> {
        ClientSettings::resolve(Tool::Ftp, self.addr.as_deref(), self.token.as_deref())
    }

    /// The server address, for the seed's upload protocol (which has no token).
    fn address(&self) -> Result<String, String> {
        self.settings().map(|settings| settings.addr())
    }

    /// Connects to the server (as `--verbose` asks, saying where and how long it took).
    fn connect(&self) -> Result<FileClient, ClientError> {
        let settings = self.settings().map_err(ClientError::Settings)?;
        let started = settings.resolve_host().map_err(ClientError::Settings)?;
        let options = ClientOptions {
            token: settings.token.clone(),
            algorithm: if self.md5 {
                Algorithm::Md5
            } else {
                Algorithm::Xxh3
            },
            timeout: self.timeout,
            tls: self.tls.client_tls(),
            ..ClientOptions::default()
        };
        let client = FileClient::connect(&settings.addr(), options)?;
        report_connected(client.link(), started);
        Ok(client)
    }
}

/// A progress bar on stderr when it is a terminal, unless `--quiet`.
struct ProgressBar(Option<TerminalProgress>);

/// The progress bar of a transfer labelled `label`.
fn progress_bar(label: &str) -> ProgressBar {
    ProgressBar(console::shows_notes().then(|| TerminalProgress::new(label)))
}

impl Progress for ProgressBar {
    fn start(&mut self, total: u64, done: u64) {
        if let Some(bar) = &mut self.0 {
            bar.start(total, done);
        }
    }

    fn advance(&mut self, n: u64) {
        if let Some(bar) = &mut self.0 {
            bar.advance(n);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = &mut self.0 {
            bar.finish();
        }
    }
}

impl ServeArgs {
    /// The server's options in `unstick serve`: its defaults, but for what that command takes.
    pub fn for_serve_both(
        listen: String,
        token: Option<String>,
        root: PathBuf,
        tls: TlsServeArgs,
    ) -> Self {
        ServeArgs {
            listen,
            root,
            max_file_size: 1 << 40,
            max_connections: 64,
            idle_timeout: Duration::from_secs(60),
            token,
            lobby: LobbyArgs::default(),
            tls,
        }
    }
}

/// Runs a subcommand.
pub fn run(cmd: FtpCommand, shutdown: &Shutdown) -> ExitCode {
    let started = std::time::Instant::now();
    let result = match cmd {
        FtpCommand::Serve(args) => serve(args, shutdown),
        FtpCommand::Put {
            local,
            remote,
            resume,
            legacy,
            client,
        } => put(&local, remote, resume, legacy, &client),
        FtpCommand::Get {
            remote,
            local,
            resume,
            client,
        } => get(&remote, local, resume, &client),
        FtpCommand::Ls { dir, client } => ls(dir.as_deref(), &client),
        FtpCommand::Stat { path, client } => stat(&path, &client),
        FtpCommand::Delete { path, client } => delete(&path, &client),
    };
    console::detail(format_args!(
        "finished in {:.3} s",
        started.elapsed().as_secs_f64()
    ));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("unstick ftp: {message}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs, shutdown: &Shutdown) -> Result<(), String> {
    let bound = bind(args)?;
    print_address(&bound.listener)?;
    tls_cli::announce(&bound.server.config().transport, "ftp serve").map_err(|e| e.to_string())?;
    bound.serve(shutdown)
}

/// A file server bound to its address, not serving yet.
#[derive(Debug)]
pub struct BoundFileServer {
    server: FileServer,
    listener: TcpListener,
}

/// The file server `args` describe, bound to its address (its root created) but not serving
/// yet.
pub fn bind(mut args: ServeArgs) -> Result<BoundFileServer, String> {
    args.listen = listen_address(&args.listen, FTP_PORT)?;
    let token = token_or_env(args.token.as_deref());
    let transport = args.tls.transport(&args.listen)?;
    let listener = unstick_std::server::bind(&args.listen, token.is_some(), &transport)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let server = FileServer::new(FileServerConfig {
        root: args.root.clone(),
        max_file_size: args.max_file_size,
        lobby: args.lobby.config(args.max_connections, args.idle_timeout),
        token,
        transport,
        ..FileServerConfig::default()
    })
    .map_err(|e| e.to_string())?;
    tracing::info!(
        server = "ftp",
        root = %args.root.display(),
        max_file_size = args.max_file_size,
        max_connections = args.max_connections,
        "serving"
    );
    Ok(BoundFileServer { server, listener })
}

impl BoundFileServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Its TLS (or plaintext) transport.
    pub fn transport(&self) -> &unstick_std::server::Transport {
        &self.server.config().transport
    }

    /// Serves until `shutdown`.
    pub fn serve(self, shutdown: &Shutdown) -> Result<(), String> {
        self.server
            .serve_until(self.listener, shutdown)
            .map_err(|e| e.to_string())
    }
}

fn print_address(listener: &TcpListener) -> Result<(), String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{addr}")
        .and_then(|_| out.flush())
        .map_err(|e| e.to_string())
}

fn remote_path(text: &str) -> Result<RemotePath, String> {
    RemotePath::parse(text).map_err(|e| format!("remote path `{}`: {e}", escape_for_terminal(text)))
}

fn local_file_name(local: &Path) -> Result<String, String> {
    local
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| {
            format!(
                "{}: cannot derive a remote name; give REMOTE",
                local.display()
            )
        })
}

/// The local name `get` derives from the remote path's last component, when the user gave no
/// file name: refused if this system would read it as something else (on Windows `CON` is the
/// console and `a:b` a stream of `a`).
fn local_name(remote: &RemotePath) -> Result<&str, String> {
    let name = remote.file_name();
    check_local_name(name).map_err(|e| {
        format!(
            "`{}` cannot be a local file name here: {e}; give a local path",
            escape_for_terminal(name)
        )
    })?;
    Ok(name)
}

fn put(
    local: &Path,
    remote: Option<String>,
    resume: bool,
    legacy: bool,
    args: &ClientArgs,
) -> Result<(), String> {
    let remote_text = match remote {
        Some(r) => r,
        None => local_file_name(local)?,
    };
    let remote = remote_path(&remote_text)?;
    let mut progress = progress_bar(remote.file_name());
    if legacy {
        let sent = put_legacy(&args.address()?, local, remote.as_str(), &mut progress)
            .map_err(|e| e.to_string())?;
        console::note(format_args!(
            "sent {} ({}) with the seed's protocol; that server does not confirm or verify",
            escape_for_terminal(remote.as_str()),
            console::count(sent, "byte")
        ));
        return Ok(());
    }
    let mut client = args.connect().map_err(|e| e.to_string())?;
    let first = client.put(local, &remote, resume, &mut progress);
    let report = match first {
        Err(e) if resume && is_partial_mismatch(&e) => {
            eprintln!("unstick ftp: {e}");
            eprintln!("unstick ftp: uploading the whole file again");
            // A serial port is held by one client at a time: let go of it first.
            drop(client);
            let mut client = args.connect().map_err(|e| e.to_string())?;
            client.put(local, &remote, false, &mut progress)
        }
        other => other,
    }
    .map_err(interrupted_hint)?;
    let resumed = resumed_note(report.resumed_from);
    console::note(format_args!(
        "stored {} ({}, {} {} verified{resumed})",
        escape_for_terminal(remote.as_str()),
        console::count(report.size, "byte"),
        report.digest.algorithm(),
        report.digest.to_hex()
    ));
    Ok(())
}

fn get(
    remote: &str,
    local: Option<PathBuf>,
    resume: bool,
    args: &ClientArgs,
) -> Result<(), String> {
    let remote = remote_path(remote)?;
    // The local name comes from the user, or from the remote path they typed: never from the
    // server.
    let target = match local {
        Some(path) if path.is_dir() => path.join(local_name(&remote)?),
        Some(path) => path,
        None => PathBuf::from(local_name(&remote)?),
    };
    let mut client = args.connect().map_err(|e| e.to_string())?;
    let mut progress = progress_bar(remote.file_name());
    let report = client
        .get(&remote, &target, resume, &mut progress)
        .map_err(interrupted_hint)?;
    let resumed = resumed_note(report.resumed_from);
    console::note(format_args!(
        "wrote {} ({}, {} {} verified{resumed})",
        target.display(),
        console::count(report.size, "byte"),
        report.digest.algorithm(),
        report.digest.to_hex()
    ));
    Ok(())
}

fn ls(dir: Option<&str>, args: &ClientArgs) -> Result<(), String> {
    let dir = match dir {
        None => None,
        Some(text) => RemotePath::parse_dir(text)
            .map_err(|e| format!("remote directory `{}`: {e}", escape_for_terminal(text)))?,
    };
    let mut client = args.connect().map_err(|e| e.to_string())?;
    let entries = client.list(dir.as_ref()).map_err(|e| e.to_string())?;
    let rows: Vec<(String, String, String)> = entries
        .iter()
        .map(|e| {
            let mut name = e.display_name();
            if e.kind == "dir" {
                name.push('/');
            } else if e.kind == "symlink" {
                name.push('@');
            }
            (name, e.size.to_string(), format_utc(e.mtime))
        })
        .collect();
    let name_width = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let size_width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for (name, size, mtime) in &rows {
        let pad = name_width - name.chars().count();
        writeln!(
            out,
            "{name}{}  {size:>size_width$}  {mtime}",
            " ".repeat(pad)
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn stat(path: &str, args: &ClientArgs) -> Result<(), String> {
    let remote = remote_path(path)?;
    let mut client = args.connect().map_err(|e| e.to_string())?;
    let stat = client.stat(&remote).map_err(|e| e.to_string())?;
    let shown = escape_for_terminal(remote.as_str());
    match stat.entry {
        Some(entry) => {
            println!(
                "{shown}: {} {}, modified {}",
                escape_for_terminal(&entry.kind),
                console::count(entry.size, "byte"),
                format_utc(entry.mtime)
            );
            if stat.partial_size > 0 {
                println!(
                    "{shown}: {} of an interrupted upload held for resume",
                    console::count(stat.partial_size, "byte")
                );
            }
            Ok(())
        }
        None if stat.partial_size > 0 => Err(format!(
            "{shown}: no such file (an interrupted upload of {} is held for `put --resume`)",
            console::count(stat.partial_size, "byte")
        )),
        None => Err(format!("{shown}: no such file or directory")),
    }
}

fn delete(path: &str, args: &ClientArgs) -> Result<(), String> {
    let remote = remote_path(path)?;
    let mut client = args.connect().map_err(|e| e.to_string())?;
    client.delete(&remote).map_err(|e| e.to_string())?;
    console::note(format_args!(
        "deleted {}",
        escape_for_terminal(remote.as_str())
    ));
    Ok(())
}

/// The error, plus how to continue when the connection broke mid-transfer.
fn interrupted_hint(e: ClientError) -> String {
    match e {
        ClientError::Connection(_) => {
            format!("{e}; run the same command with --resume to continue where it stopped")
        }
        other => other.to_string(),
    }
}

fn resumed_note(resumed_from: u64) -> String {
    if resumed_from > 0 {
        format!(", resumed at byte {resumed_from}")
    } else {
        String::new()
    }
}

/// `YYYY-MM-DD HH:MM:SS` UTC for seconds since the Unix epoch.
fn format_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(format_utc(1_700_000_000), "2023-11-14 22:13:20");
    }
}
