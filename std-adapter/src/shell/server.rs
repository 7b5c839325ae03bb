//! The shell server: the listening socket. Its connections wait in the
//! shared [lobby](crate::server::lobby) between requests; each request gets a slot and a
//! worker thread for as long as it runs.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;

use unstick_core::session::TOKEN_CAP;

use super::config::ShellConfig;
use super::service::ShellService;
use crate::server::token::{HOW_TO_MAKE_A_TOKEN, TokenWeakness, token_weakness};
use crate::server::{Shutdown, lobby};

/// Why the shell server could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum ShellServerError {
    /// The listen address is not loopback and no token is set.
    InsecureListen {
        /// The address asked for.
        addr: String,
    },
    /// A non-loopback listen with a token that is easy to guess.
    WeakToken {
        /// The address asked for.
        addr: String,
        /// What makes the token easy to guess.
        weakness: TokenWeakness,
    },
    /// A non-loopback listen in plaintext, without `--insecure-plaintext`.
    PlaintextListen {
        /// The address asked for.
        addr: String,
    },
    /// The token is empty.
    EmptyToken,
    /// The token is longer than sessions compare ([`TOKEN_CAP`] bytes).
    TokenTooLong {
        /// Its length in bytes.
        len: usize,
    },
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
            ShellServerError::WeakToken { addr, weakness } => write!(
                f,
                "refusing to listen on {addr} with a token that is easy to guess ({weakness}); {HOW_TO_MAKE_A_TOKEN}"
            ),
            ShellServerError::PlaintextListen { addr } => write!(
                f,
                "refusing to listen on {addr} in plaintext: the token, commands and their output would cross the network unencrypted; add --tls, or --insecure-plaintext for clients that cannot speak TLS (such as the seed's scripts)"
            ),
            ShellServerError::EmptyToken => {
                f.write_str("the token is empty; choose a long random secret")
            }
            ShellServerError::TokenTooLong { len } => write!(
                f,
                "the token is {len} bytes long; use at most {TOKEN_CAP} (64 random characters are plenty)"
            ),
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
}

impl ShellServer {
    /// Checks `config` and binds `addr`. A non-loopback address needs a token that is not easy
    /// to guess (see [`token_weakness`]); this is checked before anything is bound.
    pub fn bind(addr: &str, mut config: ShellConfig) -> Result<ShellServer, ShellServerError> {
        match config.token.as_deref().map(str::len) {
            Some(0) => return Err(ShellServerError::EmptyToken),
            Some(len) if len > TOKEN_CAP => return Err(ShellServerError::TokenTooLong { len }),
            _ => {}
        }
        let bind_error = |source| ShellServerError::Bind {
            addr: addr.to_string(),
            source,
        };
        let resolved: Vec<SocketAddr> = addr.to_socket_addrs().map_err(bind_error)?.collect();
        let beyond_loopback = resolved.iter().any(|a| !a.ip().is_loopback());
        match config.token.as_deref() {
            None if beyond_loopback => {
                return Err(ShellServerError::InsecureListen {
                    addr: addr.to_string(),
                });
            }
            Some(token) if beyond_loopback => {
                if let Some(weakness) = token_weakness(token) {
                    return Err(ShellServerError::WeakToken {
                        addr: addr.to_string(),
                        weakness,
                    });
                }
            }
            _ => {}
        }
        config.workdir = checked_workdir(&config.workdir)?;
        if config.transport.tls.is_none() && !config.transport.insecure_plaintext && beyond_loopback
        {
            return Err(ShellServerError::PlaintextListen {
                addr: addr.to_string(),
            });
        }
        let listener = crate::server::bind(addr, config.token.as_deref(), &config.transport)
            .map_err(bind_error)?;
        Ok(ShellServer {
            listener,
            config: Arc::new(config),
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

    /// Serves connections until the process ends.
    pub fn serve(self) -> io::Result<()> {
        self.serve_until(&Shutdown::new())
    }

    /// Serves connections until `shutdown` is requested; then stops accepting, lets the
    /// commands running finish within the shutdown grace, kills the rest (their whole process
    /// groups) and returns.
    pub fn serve_until(self, shutdown: &Shutdown) -> io::Result<()> {
        let lobby_config = self.config.lobby;
        let entrance = self
            .config
            .transport
            .entrance(self.listener, &lobby_config, "shell")?;
        let penalties = self.config.penalties.clone();
        super::process::prepare();
        let service = Arc::new(ShellService::new(self.config));
        lobby::serve(entrance, service, lobby_config, penalties, shutdown)
    }
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
