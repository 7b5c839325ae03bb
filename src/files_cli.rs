//! `unstick ftp ...`: the file server and its client commands (the commands themselves are in
//! [`commands`]).

mod client_args;
mod commands;
mod interrupt;
mod progress_bar;
mod remote_glob;

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use unstick_std::files::{FileServer, FileServerConfig};
use unstick_std::server::{Penalties, Shutdown};

use crate::client_settings::{FTP_PORT, Tool, token_or_env};
use crate::console;
use crate::exit_status::OUTPUT_CLOSED;
use crate::serving::{LobbyArgs, LogArgs, listen_address, parse_duration, parse_size};
use crate::tls_cli::{self, TlsServeArgs};
pub use client_args::ClientArgs;
use client_args::TransferArgs;
use commands::Failure;

/// `unstick ftp` subcommands.
#[derive(Subcommand, Debug)]
pub enum FilesCommand {
    /// Serve files under a root directory.
    Serve(ServeArgs),
    /// Upload files: `put LOCAL [REMOTE]`, `put LOCAL... DIR` (as scp), `put - REMOTE` from
    /// standard input.
    ///
    /// REMOTE that is a remote directory, or ends with `/`, receives LOCAL under its own name.
    /// With two arguments or more the last is the destination, unless it is an existing local
    /// file: then all are uploaded to the root (`put *.txt`). --to names the destination
    /// explicitly.
    #[command(
        after_help = "Examples:\n  unstick ftp put a.txt b.txt docs/\n  unstick ftp put *.txt\n  unstick ftp put -r photos backup/\n  tar c dir | unstick ftp put - dir.tar"
    )]
    Put {
        /// Local files (or directories with -r); `-` reads standard input. The last argument
        /// may be the remote destination (see above).
        #[arg(required = true, num_args = 1.., value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// The remote destination; every positional argument is then a local source.
        #[arg(long, short = 't', value_name = "REMOTE")]
        to: Option<String>,
        /// Upload directories with everything below them (links are not followed).
        #[arg(long, short = 'r')]
        recursive: bool,
        /// Continue an interrupted upload instead of starting over; a file the server already
        /// holds whole (same size and digest) is skipped.
        #[arg(long, short = 'C')]
        resume: bool,
        /// Speak the seed's upload protocol (`{"filepath","filename","filesize"}`, no reply):
        /// for the original Python server. Nothing is verified.
        #[arg(long, conflicts_with = "resume", visible_alias = "legacy")]
        seed: bool,
        #[command(flatten)]
        transfer: TransferArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Download files: `get REMOTE [LOCAL]`, `get REMOTE... DIR`, `get REMOTE -` to standard
    /// output.
    #[command(
        after_help = "Examples:\n  unstick ftp get a.txt\n  unstick ftp get a.txt b.txt downloads/\n  unstick ftp get -r photos .\n  unstick ftp get dir.tar - | tar x"
    )]
    Get {
        /// Remote paths, then the local file or directory (default: each remote file's name in
        /// the current directory); `-` writes standard output. A remote path's last component
        /// may be a pattern (`*`, `?`, `[...]`; quote it so that the local shell leaves it),
        /// expanded from a listing of its directory.
        #[arg(required = true, num_args = 1.., value_name = "PATH")]
        paths: Vec<String>,
        /// Download directories with everything below them.
        #[arg(long, short = 'r')]
        recursive: bool,
        /// Continue an interrupted download instead of starting over.
        #[arg(long, short = 'C')]
        resume: bool,
        /// Never replace a local file that exists (it is skipped with a note); by default a
        /// verified download replaces it, as scp does.
        #[arg(long, short = 'n')]
        no_clobber: bool,
        #[command(flatten)]
        transfer: TransferArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List a remote directory (default: the root): name, size, modification time; partial
    /// uploads are marked.
    Ls {
        /// Remote directory.
        dir: Option<String>,
        /// Long format, as `ls -l`: kind, size, time, name.
        #[arg(short = 'l')]
        long: bool,
        /// Sizes in K, M, G (powers of 1024), as `ls -h` prints them (`-h` is help here, as
        /// everywhere in unstick).
        #[arg(long = "human-readable", visible_alias = "human")]
        human: bool,
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
    /// Delete remote files (or empty directories, or with -r whole directories), and any
    /// interrupted upload of them held for resume.
    #[command(visible_alias = "rm")]
    Delete {
        /// Remote paths; the last component of each may be a pattern (`*`, `?`, `[...]`;
        /// quote it so that the local shell leaves it), expanded from a listing of its
        /// directory.
        #[arg(required = true)]
        paths: Vec<String>,
        /// Delete directories with everything below them.
        #[arg(long, short = 'r')]
        recursive: bool,
        /// A name that is not there, or a pattern that matches nothing, is no error (as
        /// `rm -f`).
        #[arg(long, short = 'f')]
        force: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Create remote directories.
    Mkdir {
        /// Remote directories.
        #[arg(required = true)]
        paths: Vec<String>,
        /// Create missing parents too; an existing directory is no error.
        #[arg(long, short = 'p')]
        parents: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Rename or move remote files and directories: `mv FROM TO`, `mv FROM... DIR`.
    #[command(visible_alias = "rename")]
    Mv {
        /// Remote paths, then the new name (or a remote directory to move them into).
        #[arg(required = true, num_args = 2.., value_name = "PATH")]
        paths: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

impl FilesCommand {
    /// A client command's options (`None` for `serve`).
    pub fn client(&self) -> Option<&ClientArgs> {
        match self {
            FilesCommand::Serve(_) => None,
            FilesCommand::Put { client, .. }
            | FilesCommand::Get { client, .. }
            | FilesCommand::Ls { client, .. }
            | FilesCommand::Stat { client, .. }
            | FilesCommand::Delete { client, .. }
            | FilesCommand::Mkdir { client, .. }
            | FilesCommand::Mv { client, .. } => Some(client),
        }
    }
}

/// Options of `unstick ftp serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on, `HOST[:PORT]` (port 8090 when none is given); a non-loopback
    /// address needs a token.
    #[arg(long, default_value = Tool::Ftp.default_address())]
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
    /// How long an interrupted upload is kept for `put --resume` after its last write (e.g.
    /// 7d, 12h); older ones are removed by the sweep that runs in the background at start.
    #[arg(long, default_value = "7d", value_parser = parse_duration)]
    partial_max_age: Duration,
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

impl ServeArgs {
    /// The server's options in `unstick serve`: its defaults, but for what that command takes
    /// (and the table of failed tokens it shares with the shell server).
    pub fn for_serve_both(
        listen: String,
        token: Option<String>,
        root: PathBuf,
        partial_max_age: Duration,
        tls: TlsServeArgs,
        penalties: Penalties,
    ) -> Self {
        ServeArgs {
            listen,
            root,
            max_file_size: 1 << 40,
            max_connections: 64,
            idle_timeout: Duration::from_secs(60),
            token,
            partial_max_age,
            lobby: LobbyArgs::default(),
            tls,
            log: LogArgs::default(),
            shared_penalties: Some(penalties),
        }
    }
}

/// Runs a subcommand.
pub fn run(cmd: FilesCommand, shutdown: &Shutdown) -> ExitCode {
    let started = std::time::Instant::now();
    let result: Result<(), Failure> = match cmd {
        FilesCommand::Serve(args) => serve(args, shutdown).map_err(Failure::from),
        FilesCommand::Put {
            paths,
            to,
            recursive,
            resume,
            seed,
            transfer,
            client,
        } => commands::plan_put(&paths, to)
            .and_then(|plan| {
                let options = commands::PutOptions {
                    recursive,
                    resume,
                    seed,
                    transfer: transfer.transfer(),
                };
                commands::put(plan, &options, &client)
            })
            .map_err(Failure::from),
        FilesCommand::Get {
            paths,
            recursive,
            resume,
            no_clobber,
            transfer,
            client,
        } => {
            let options = commands::GetOptions {
                recursive,
                resume,
                no_clobber,
                transfer: transfer.transfer(),
            };
            commands::get(&paths, &options, &client)
        }
        FilesCommand::Ls {
            dir,
            long,
            human,
            client,
        } => {
            let style = commands::ListStyle { long, human };
            commands::ls(dir.as_deref(), &style, &client)
        }
        FilesCommand::Stat { path, client } => commands::stat(&path, &client),
        FilesCommand::Delete {
            paths,
            recursive,
            force,
            client,
        } => {
            let options = commands::DeleteOptions { recursive, force };
            commands::delete(&paths, &options, &client).map_err(Failure::from)
        }
        FilesCommand::Mkdir {
            paths,
            parents,
            client,
        } => commands::mkdir(&paths, parents, &client).map_err(Failure::from),
        FilesCommand::Mv { paths, client } => commands::mv(&paths, &client).map_err(Failure::from),
    };
    console::detail(format_args!(
        "finished in {:.3} s",
        started.elapsed().as_secs_f64()
    ));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::OutputClosed) => ExitCode::from(OUTPUT_CLOSED),
        Err(Failure::Message(message)) => {
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
    let listener = unstick_std::server::bind(&args.listen, token.as_deref(), &transport)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let server = FileServer::new(FileServerConfig {
        root: args.root.clone(),
        max_file_size: args.max_file_size,
        lobby: args.lobby.config(args.max_connections, args.idle_timeout),
        token,
        transport,
        penalties: args
            .shared_penalties
            .unwrap_or_else(|| args.lobby.penalties()),
        partial_max_age: args.partial_max_age,
        ..FileServerConfig::default()
    })
    .map_err(|e| e.to_string())?;
    tracing::info!(
        server = "ftp",
        root = %args.root.display(),
        max_file_size = args.max_file_size,
        max_connections = args.max_connections,
        partial_max_age = ?args.partial_max_age,
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
        #[cfg(unix)]
        crate::serving::catch_file_size_signal();
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
