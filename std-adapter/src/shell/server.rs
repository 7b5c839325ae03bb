//! The shell server: its configuration, the listening socket and the accept loop. Each accepted
//! connection gets a session slot and a thread; a connection over the cap is told the server is
//! busy and closed.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use embedded_io_adapters::std::FromStd;

use super::process::CommandLimits;
use super::session::serve_connection;
use super::wire::{LegacyReply, MAX_COMMAND_LEN};
use crate::server::{SessionLimit, send_error};

/// The address `unstick shell serve` listens on by default: the seed's.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default per-command time limit.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default output cap per command (stdout and stderr together).
pub const DEFAULT_MAX_OUTPUT: u64 = 16 * 1024 * 1024;
/// Default time a connection has to complete each request.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default cap on concurrent sessions.
pub const DEFAULT_MAX_SESSIONS: usize = 64;

/// How the shell server runs commands and treats clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShellConfig {
    /// Working directory of every command.
    pub workdir: PathBuf,
    /// Shared secret every framed request must carry; `None` serves anyone who can connect
    /// (allowed on loopback only).
    pub token: Option<String>,
    /// Per-command time limit and output cap.
    pub limits: CommandLimits,
    /// Time a connection has to complete each request (from the end of the previous one);
    /// slower clients are dropped.
    pub idle_timeout: Duration,
    /// Concurrent sessions served; more connections are refused as busy.
    pub max_sessions: usize,
    /// Reply format for seed-style clients.
    pub legacy_reply: LegacyReply,
    /// Longest command accepted, in bytes.
    pub max_command_len: usize,
}

impl Default for ShellConfig {
    fn default() -> Self {
        ShellConfig {
            workdir: PathBuf::from("."),
            token: None,
            limits: CommandLimits {
                timeout: DEFAULT_TIMEOUT,
                max_output: DEFAULT_MAX_OUTPUT,
            },
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_sessions: DEFAULT_MAX_SESSIONS,
            legacy_reply: LegacyReply::Json,
            max_command_len: MAX_COMMAND_LEN,
        }
    }
}

/// Why the shell server could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum ShellServerError {
    /// The listen address is not loopback and no token is set.
    InsecureListen {
        /// The address asked for.
        addr: String,
    },
    /// The token is empty.
    EmptyToken,
    /// The working directory is missing or not a directory.
    Workdir {
        /// The directory asked for.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// The address could not be resolved or bound.
    Bind {
        /// The address asked for.
        addr: String,
        /// What went wrong.
        source: io::Error,
    },
}

impl fmt::Display for ShellServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShellServerError::InsecureListen { addr } => write!(
                f,
                "refusing to listen on {addr} without a token: anyone who can reach it could run commands; set --token or UNSTICK_TOKEN, or listen on 127.0.0.1"
            ),
            ShellServerError::EmptyToken => {
                f.write_str("the token is empty; choose a long random secret")
            }
            ShellServerError::Workdir { path, source } => write!(
                f,
                "working directory {} is not usable: {source}",
                path.display()
            ),
            ShellServerError::Bind { addr, source } => {
                write!(f, "cannot listen on {addr}: {source}")
            }
        }
    }
}

impl std::error::Error for ShellServerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ShellServerError::Workdir { source, .. } | ShellServerError::Bind { source, .. } => {
                Some(source)
            }
            _ => None,
        }
    }
}

/// A bound shell server, ready to [`serve`](Self::serve).
#[derive(Debug)]
pub struct ShellServer {
    listener: TcpListener,
    config: Arc<ShellConfig>,
    sessions: SessionLimit,
}

impl ShellServer {
    /// Checks `config` and binds `addr`. A non-loopback address needs a token; this is checked
    /// before anything is bound.
    pub fn bind(addr: &str, mut config: ShellConfig) -> Result<ShellServer, ShellServerError> {
        if config.token.as_deref() == Some("") {
            return Err(ShellServerError::EmptyToken);
        }
        let bind_error = |source| ShellServerError::Bind {
            addr: addr.to_string(),
            source,
        };
        let resolved: Vec<SocketAddr> = addr.to_socket_addrs().map_err(bind_error)?.collect();
        if config.token.is_none() && resolved.iter().any(|a| !a.ip().is_loopback()) {
            return Err(ShellServerError::InsecureListen {
                addr: addr.to_string(),
            });
        }
        config.workdir = checked_workdir(&config.workdir)?;
        let listener = crate::server::bind(addr, config.token.is_some()).map_err(bind_error)?;
        let sessions = SessionLimit::new(config.max_sessions);
        Ok(ShellServer {
            listener,
            config: Arc::new(config),
            sessions,
        })
    }

    /// The address the server listens on (useful after binding port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The configuration in force (with the working directory made absolute).
    pub fn config(&self) -> &ShellConfig {
        &self.config
    }

    /// Accepts and serves connections, each on its own thread, until the process ends.
    pub fn serve(self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => self.start_session(stream),
                // Out of descriptors or a connection reset before accept: wait and go on.
                Err(_) => thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    fn start_session(&self, stream: TcpStream) {
        let Some(slot) = self.sessions.try_acquire() else {
            refuse_busy(stream, self.config.max_sessions);
            return;
        };
        let config = Arc::clone(&self.config);
        // A failed spawn drops the closure, which frees the slot and closes the connection.
        let _ = thread::Builder::new()
            .name("unstick-shell-session".into())
            .spawn(move || {
                let _slot = slot;
                serve_connection(stream, &config);
            });
    }
}

/// Tells a connection over the session cap that the server is busy.
fn refuse_busy(stream: TcpStream, max: usize) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let message = format!("the server is already serving {max} sessions; try again later");
    let _ = send_error(&mut FromStd::new(&stream), "busy", &message);
}

fn checked_workdir(path: &std::path::Path) -> Result<PathBuf, ShellServerError> {
    let workdir_error = |source| ShellServerError::Workdir {
        path: path.to_path_buf(),
        source,
    };
    let absolute = path.canonicalize().map_err(workdir_error)?;
    if !absolute.is_dir() {
        return Err(workdir_error(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a directory",
        )));
    }
    Ok(absolute)
}
