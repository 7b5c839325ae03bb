//! `unstick serve`: the shell server and the file server in one process, with the options both
//! take. Both are bound before anything is printed, so an address is only ever printed for a
//! server that is listening; a server that cannot start, or that fails later, ends the whole
//! command instead of leaving the other running alone.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use unstick_std::address::HostPort;
use unstick_std::server::Shutdown;

use crate::client_settings::{FTP_PORT, LOOPBACK, SHELL_PORT};
use crate::serving::{LogArgs, PenaltyArgs, parse_duration};
use crate::tls_cli::{self, TlsServeArgs};
use crate::{files_cli, shell_cli};

/// Options of `unstick serve`.
#[derive(Args, Debug)]
pub struct ServeBothArgs {
    /// Host (name or IP address; IPv6 in brackets) both servers listen on; anything but
    /// loopback needs a token and --tls (or --insecure-plaintext).
    #[arg(long, default_value = LOOPBACK, value_name = "HOST")]
    listen: String,
    /// The shell server's port (0: any free one, printed at start).
    #[arg(long, default_value_t = SHELL_PORT, value_name = "PORT")]
    shell_port: u16,
    /// The file server's port (0: any free one, printed at start).
    #[arg(long, default_value_t = FTP_PORT, value_name = "PORT")]
    ftp_port: u16,
    /// Directory the file server serves (created if missing).
    #[arg(long, default_value = "unstick-files", value_name = "DIR")]
    root: PathBuf,
    /// Working directory of the shell's commands.
    #[arg(long, default_value = ".", value_name = "DIR")]
    workdir: PathBuf,
    /// Shared secret both servers require (default: $UNSTICK_TOKEN).
    #[arg(long)]
    token: Option<String>,
    /// How long the file server keeps an interrupted upload for `put --resume` after its last
    /// write (e.g. 7d, 12h).
    #[arg(long, default_value = "7d", value_parser = parse_duration)]
    partial_max_age: Duration,
    #[command(flatten)]
    tls: TlsServeArgs,
    // Failed tokens are counted for both servers together.
    #[command(flatten)]
    penalties: PenaltyArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

impl ServeBothArgs {
    /// `--listen` with `port`: refused when it has a port of its own, which would be one for
    /// two servers.
    fn address(&self, port: u16) -> Result<String, String> {
        if HostPort::parse(&self.listen, None).is_ok() {
            return Err(format!(
                "--listen `{}` has a port; give the host alone, and the ports with --shell-port \
                 and --ftp-port",
                self.listen
            ));
        }
        HostPort::parse(&self.listen, Some(port))
            .map(|address| address.to_string())
            .map_err(|e| format!("--listen: {e}"))
    }
}

/// Binds both servers, prints `shell ADDR`, `ftp ADDR` and for TLS `tls SHA256:...` (one line
/// per distinct certificate) on stdout, then runs both until both stop (a signal stops both).
pub fn run(args: ServeBothArgs, shutdown: &Shutdown) -> ExitCode {
    match bind_both(args) {
        Ok((shell, ftp)) => serve_both(shell, ftp, shutdown),
        Err(e) => {
            eprintln!("unstick serve: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bind_both(
    args: ServeBothArgs,
) -> Result<(unstick_std::shell::ShellServer, files_cli::BoundFileServer), String> {
    let shell_listen = args.address(args.shell_port)?;
    let ftp_listen = args.address(args.ftp_port)?;
    let penalties = args.penalties.table();
    let shell = shell_cli::bind(shell_cli::ServeArgs::for_serve_both(
        shell_listen,
        args.token.clone(),
        args.workdir,
        args.tls.clone(),
        penalties.clone(),
    ))
    .map_err(|e| format!("shell server: {e}"))?;
    let ftp = files_cli::bind(files_cli::ServeArgs::for_serve_both(
        ftp_listen,
        args.token,
        args.root,
        args.partial_max_age,
        args.tls,
        penalties,
    ))
    .map_err(|e| format!("file server: {e}"))?;
    announce(&shell, &ftp).map_err(|e| e.to_string())?;
    Ok((shell, ftp))
}

/// The stdout lines scripts read: `shell ADDR`, `ftp ADDR`, then `tls SHA256:...` for each
/// distinct certificate (one: both servers load the same one unless told otherwise).
fn announce(
    shell: &unstick_std::shell::ShellServer,
    ftp: &files_cli::BoundFileServer,
) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "shell {}", shell.local_addr()?)?;
    writeln!(out, "ftp {}", ftp.local_addr()?)?;
    let mut printed = Vec::new();
    for transport in [&shell.config().transport, ftp.transport()] {
        if let Some(tls) = &transport.tls
            && !printed.contains(&tls.fingerprint())
        {
            writeln!(out, "tls {}", tls.fingerprint())?;
            printed.push(tls.fingerprint());
            tls_cli::note_origin(transport, "serve");
        }
    }
    out.flush()
}

/// One bound server, run on its own thread until the stop it is given.
type RunServer = Box<dyn FnOnce(&Shutdown) -> ExitCode + Send>;

/// Runs both bound servers until both stop; a server that ends by itself (it failed, or
/// panicked) stops the other, gracefully, and the command fails.
fn serve_both(
    shell: unstick_std::shell::ShellServer,
    ftp: files_cli::BoundFileServer,
    shutdown: &Shutdown,
) -> ExitCode {
    let (stopped, stops) = std::sync::mpsc::channel();
    let servers: [RunServer; 2] = [
        Box::new(move |shutdown| shell_cli::serve_bound(shell, shutdown)),
        Box::new(move |shutdown| match ftp.serve(shutdown) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("unstick serve: file server: {e}");
                ExitCode::FAILURE
            }
        }),
    ];
    for server in servers {
        let stopped = stopped.clone();
        let shutdown = shutdown.clone();
        std::thread::spawn(move || {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server(&shutdown)))
                .unwrap_or(ExitCode::FAILURE);
            let _ = stopped.send(code);
        });
    }
    let first = stops.recv().unwrap_or(ExitCode::FAILURE);
    if !shutdown.is_requested() {
        // One server ended by itself: stop the other too, gracefully, so that none of its
        // commands outlives the process.
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
