//! How the file server runs: its configuration and defaults.

use std::path::PathBuf;
use std::time::Duration;

use super::transfer::TRANSFER_BUFFER;
use unstick_core::files::FileRules;

use crate::server::{LobbyConfig, Penalties, Transport};

/// How the file server runs.
#[derive(Clone, Debug)]
pub struct FileServerConfig {
    /// Directory served; created if missing.
    pub root: PathBuf,
    /// Largest file accepted, in bytes.
    pub max_file_size: u64,
    /// How connections wait and how many requests are served at once (`max_active`; more wait
    /// up to a second for a slot, then get a `busy` error). While a request is served, a connection idle (no byte
    /// read or written) for `idle_timeout` is dropped.
    pub lobby: LobbyConfig,
    /// Token every request must carry; `None` for none (loopback only).
    pub token: Option<String>,
    /// Size of each connection's socket and file buffers.
    pub buffer_size: usize,
    /// TLS, and whether plaintext may leave loopback.
    pub transport: Transport,
    /// Where failed tokens are counted, per client address (shared with the shell server in
    /// `unstick serve`).
    pub penalties: Penalties,
    /// How long a partial upload is kept for a resume after its last write; older ones are
    /// removed by the sweep that starts with the server.
    pub partial_max_age: Duration,
}

/// How long partial uploads are kept by default: a week.
pub const PARTIAL_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

impl Default for FileServerConfig {
    fn default() -> Self {
        FileServerConfig {
            root: PathBuf::from("unstick-files"),
            max_file_size: 1 << 40,
            lobby: LobbyConfig {
                idle_timeout: Duration::from_secs(60),
                ..LobbyConfig::default()
            },
            token: None,
            buffer_size: TRANSFER_BUFFER,
            transport: Transport::default(),
            penalties: Penalties::default(),
            partial_max_age: PARTIAL_MAX_AGE,
        }
    }
}

impl FileServerConfig {
    /// The rules the core's file session applies for this configuration.
    pub fn rules(&self) -> FileRules<'_> {
        FileRules {
            token: self.token.as_deref(),
            max_file_size: self.max_file_size,
            idle_timeout: self.lobby.idle_timeout,
        }
    }
}
