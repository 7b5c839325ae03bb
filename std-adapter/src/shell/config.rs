//! How the shell server runs: its configuration and defaults.

use std::path::PathBuf;
use std::time::Duration;

use super::encoding::SeedEncoding;
use super::interpreter::Shell;
use super::process::CommandLimits;
use super::wire::{MAX_COMMAND_LEN, SeedFormat, ShellRules};
use crate::server::{LobbyConfig, Penalties, Transport};

/// Default per-command time limit.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default output cap per command (stdout and stderr together).
pub const DEFAULT_MAX_OUTPUT: u64 = 16 * 1024 * 1024;
/// Default time a connection may wait between requests, and has to complete one.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default cap on commands running at once.
pub const DEFAULT_MAX_SESSIONS: usize = 64;

/// How the shell server runs commands and treats clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShellConfig {
    /// The shell every command runs through (`sh -c` on Unix, `cmd.exe /c` on Windows).
    pub shell: Shell,
    /// Working directory of every command.
    pub workdir: PathBuf,
    /// Shared secret every framed request must carry; `None` serves anyone who can connect
    /// (allowed on loopback only).
    pub token: Option<String>,
    /// Per-command time limit and output cap.
    pub limits: CommandLimits,
    /// Wall-clock limit of an interactive login session (a request for a terminal with no
    /// command), which `limits` do not bound: `None` lets it run until the idle timeout finds
    /// it doing nothing, or its user leaves, as an ssh login does.
    pub login_timeout: Option<Duration>,
    /// How connections wait and how many requests run at once (`max_active` commands).
    pub lobby: LobbyConfig,
    /// Reply format for seed-style clients (raw text commands); `None` refuses them. Seed mode
    /// is off unless chosen: raw text is also what other protocols' clients send.
    pub seed_reply: Option<SeedFormat>,
    /// The encoding seed clients get command output in (by default
    /// [`SeedEncoding::system_default`]).
    pub seed_encoding: SeedEncoding,
    /// Longest command accepted, in bytes.
    pub max_command_len: usize,
    /// TLS, and whether plaintext may leave loopback.
    pub transport: Transport,
    /// Where failed tokens are counted, per client address (shared with the file server in
    /// `unstick serve`).
    pub penalties: Penalties,
}

impl Default for ShellConfig {
    fn default() -> Self {
        ShellConfig {
            shell: Shell::default(),
            workdir: PathBuf::from("."),
            token: None,
            limits: CommandLimits {
                timeout: DEFAULT_TIMEOUT,
                max_output: DEFAULT_MAX_OUTPUT,
                idle: None,
            },
            login_timeout: None,
            lobby: LobbyConfig {
                idle_timeout: DEFAULT_IDLE_TIMEOUT,
                max_active: DEFAULT_MAX_SESSIONS,
                max_active_per_address: DEFAULT_MAX_SESSIONS,
                ..LobbyConfig::default()
            },
            seed_reply: None,
            seed_encoding: SeedEncoding::system_default(),
            max_command_len: MAX_COMMAND_LEN,
            transport: Transport::default(),
            penalties: Penalties::default(),
        }
    }
}

impl ShellConfig {
    /// The rules the core's shell sessions apply for this configuration.
    pub fn rules(&self) -> ShellRules<'_> {
        ShellRules {
            token: self.token.as_deref(),
            max_command_len: self.max_command_len,
            seed_reply: self.seed_reply,
            idle_timeout: self.lobby.idle_timeout,
            seed_pause: unstick_core::shell::SEED_PAUSE,
            // Commands run with a pipe for their input (`process`), filled as the client sends.
            stdin: true,
            // Unix runs a command on a pty when asked (`process`); Windows refuses (no ConPTY
            // yet).
            pty: cfg!(unix),
        }
    }
}
