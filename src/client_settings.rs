//! Where a client command connects and with which token: each from its flag, else the
//! environment, else the config file, else the built-in default (for the address:
//! `127.0.0.1` on the tool's port).

use std::fmt;
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, OnceLock};
use std::time::Instant;

use unstick_std::link::{Endpoint, Link};
use unstick_std::system_error::SystemError;

use crate::config_file::{self, ConfigFile, ToolDefaults};
use crate::console;

/// The `--config` option every client command that reads the config file takes (`shell
/// connect` and the `ftp` clients), and only they.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConfigArgs {
    /// Client defaults (server addresses, token) from this file instead of $UNSTICK_CONFIG or
    /// unstick/config.toml under the user's config directory (see the README).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl ConfigArgs {
    /// The file named, if one was.
    pub fn file(&self) -> Option<&PathBuf> {
        self.config.as_ref()
    }
}

/// The config file `--config` named, set once from the command line.
static CONFIG_FLAG: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Records `--config FILE` for the client commands.
pub fn set_config_flag(path: Option<PathBuf>) {
    let _ = CONFIG_FLAG.set(path);
}

/// The two tools, each with its own default port and address variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    /// `unstick shell`.
    Shell,
    /// `unstick ftp`.
    Ftp,
}

/// The shell server's port when an address names none: the seed's.
pub const SHELL_PORT: u16 = 8080;

/// The file server's port when an address names none.
pub const FTP_PORT: u16 = 8090;

/// The host a server listens on, and a client connects to, when none is given.
pub const LOOPBACK: &str = "127.0.0.1";

impl Tool {
    /// The port of an address that names none.
    pub const fn default_port(self) -> u16 {
        match self {
            Tool::Shell => SHELL_PORT,
            Tool::Ftp => FTP_PORT,
        }
    }

    /// The address a server of this tool listens on, and its client connects to, when none is
    /// given: [`LOOPBACK`] on the tool's port.
    pub fn default_address(self) -> &'static str {
        static SHELL: LazyLock<String> = LazyLock::new(|| format!("{LOOPBACK}:{SHELL_PORT}"));
        static FTP: LazyLock<String> = LazyLock::new(|| format!("{LOOPBACK}:{FTP_PORT}"));
        match self {
            Tool::Shell => &SHELL,
            Tool::Ftp => &FTP,
        }
    }

    /// The environment variable holding the server address.
    pub const fn addr_env(self) -> &'static str {
        match self {
            Tool::Shell => "UNSTICK_SHELL_ADDR",
            Tool::Ftp => "UNSTICK_FTP_ADDR",
        }
    }

    /// The config file's section for this tool.
    const fn section(self) -> &'static str {
        match self {
            Tool::Shell => "shell",
            Tool::Ftp => "ftp",
        }
    }

    fn defaults(self, config: &ConfigFile) -> &ToolDefaults {
        match self {
            Tool::Shell => &config.shell,
            Tool::Ftp => &config.ftp,
        }
    }
}

/// Where a setting came from, for `--verbose`.
#[derive(Clone, Debug)]
enum Origin {
    Flag,
    Environment(&'static str),
    ConfigFile(PathBuf),
    BuiltIn,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag => f.write_str("the command line"),
            Origin::Environment(name) => write!(f, "${name}"),
            Origin::ConfigFile(path) => write!(f, "config file {}", path.display()),
            Origin::BuiltIn => f.write_str("the default"),
        }
    }
}

/// What a client command connects with.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// The server.
    pub endpoint: Endpoint,
    /// The shared secret, if any.
    pub token: Option<String>,
}

impl ClientSettings {
    /// Resolves the server address and the token of a `tool` client command: `addr` and
    /// `token` as given on the command line win, then the environment (`$UNSTICK_SHELL_ADDR`
    /// or `$UNSTICK_FTP_ADDR`, `$UNSTICK_TOKEN`), then the config file (the tool's section,
    /// then the top level). A host without a port takes the tool's.
    pub fn resolve(
        tool: Tool,
        addr: Option<&str>,
        token: Option<&str>,
    ) -> Result<ClientSettings, String> {
        let config = loaded_config()?;
        let file_origin = || Origin::ConfigFile(config.path.clone().unwrap_or_default());
        let section = tool.defaults(config);
        let (addr_text, addr_origin) = if let Some(addr) = addr {
            (addr.to_owned(), Origin::Flag)
        } else if let Some(addr) = env_value(tool.addr_env()) {
            (addr, Origin::Environment(tool.addr_env()))
        } else if let Some(addr) = section.addr.as_ref().or(config.common.addr.as_ref()) {
            (addr.clone(), file_origin())
        } else {
            (tool.default_address().to_owned(), Origin::BuiltIn)
        };
        let endpoint =
            Endpoint::parse_with_default_port(&addr_text, tool.default_port()).map_err(|e| {
                match &addr_origin {
                    Origin::Flag => e.to_string(),
                    origin => format!("{e} (the address from {origin})"),
                }
            })?;
        console::detail(format_args!("server {endpoint} (from {addr_origin})"));
        let token = if let Some(token) = token {
            console::detail(format_args!("token from the command line"));
            Some(token.to_owned())
        } else if let Some(token) = env_value(TOKEN_ENV) {
            console::detail(format_args!("token from ${TOKEN_ENV}"));
            Some(token)
        } else {
            token_from_file(tool, config)?
        };
        Ok(ClientSettings { endpoint, token })
    }

    /// The server address as the clients take it.
    pub fn addr(&self) -> String {
        self.endpoint.to_string()
    }

    /// Resolves the server's name now, so that a name that does not resolve is reported as
    /// such (not as a server that is not running); says, when verbose, what it resolves to.
    /// Returns when connecting starts, for [`report_connected`].
    pub fn resolve_host(&self) -> Result<Instant, String> {
        if let Endpoint::Tcp(addr) | Endpoint::Tls(addr) = &self.endpoint {
            let resolved = addr
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve the host of {addr}: {}", SystemError(&e)))?;
            let list: Vec<String> = resolved.map(|a| a.to_string()).collect();
            console::detail(format_args!("{addr} is {}", list.join(", ")));
        }
        Ok(Instant::now())
    }
}

/// The config file's `unknown_hosts`, if it has one.
pub fn configured_unknown_hosts() -> Result<Option<crate::tls_cli::UnknownHosts>, String> {
    Ok(loaded_config()?.unknown_hosts)
}

/// Says, when verbose, where a connection opened `started` ended up and how long it took.
pub fn report_connected(link: &Link, started: Instant) {
    let elapsed = started.elapsed();
    match link.peer_addr() {
        Some(peer) => console::detail(format_args!(
            "connected to {peer} in {:.1} ms",
            elapsed.as_secs_f64() * 1000.0
        )),
        None => console::detail(format_args!(
            "serial line open in {:.1} ms",
            elapsed.as_secs_f64() * 1000.0
        )),
    }
    if let Some(fingerprint) = link.tls_fingerprint() {
        console::detail(format_args!("TLS server certificate {fingerprint}"));
    }
}

/// The config file, read once per process (a command that connects twice warns once).
fn loaded_config() -> Result<&'static ConfigFile, String> {
    static LOADED: OnceLock<Result<ConfigFile, String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let flag = CONFIG_FLAG.get().cloned().flatten();
            let config = ConfigFile::load(flag.as_deref()).map_err(|e| e.to_string())?;
            match &config.path {
                Some(path) => console::detail(format_args!("config file {}", path.display())),
                None => console::detail(format_args!(
                    "no config file ({} does not exist)",
                    config_file::default_path()
                        .map_or_else(|| "none".into(), |p| p.display().to_string())
                )),
            }
            Ok(config)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Environment variable holding the shared secret when `--token` is not given.
pub const TOKEN_ENV: &str = "UNSTICK_TOKEN";

/// A server's token: the one given on the command line, else `UNSTICK_TOKEN` when set and not
/// empty. A `--token` given empty stays empty, for the server to refuse.
pub fn token_or_env(given: Option<&str>) -> Option<String> {
    given.map(str::to_owned).or_else(|| env_value(TOKEN_ENV))
}

/// An environment variable's value, when set and not empty.
fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The token the config file gives `tool`: its section's `token` or `token_file`, else the
/// top level's (`token` before `token_file` at one level).
fn token_from_file(tool: Tool, config: &ConfigFile) -> Result<Option<String>, String> {
    let file = config.path.as_deref().unwrap_or(Path::new(""));
    for (defaults, place) in [
        (tool.defaults(config), format!("[{}]", tool.section())),
        (&config.common, "the top level".to_owned()),
    ] {
        if let Some(token) = &defaults.token {
            console::detail(format_args!(
                "token from config file {} ({place})",
                file.display()
            ));
            return Ok(Some(token.clone()));
        }
        if let Some(path) = &defaults.token_file {
            console::detail(format_args!("token from {}", path.display()));
            return read_token_file(path, file).map(Some);
        }
    }
    Ok(None)
}

/// The first line of a token file, warning when other users can read it.
fn read_token_file(path: &Path, config: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "token file {} (named in config file {}): {e}",
            path.display(),
            config.display()
        )
    })?;
    let token = text.lines().next().unwrap_or("").trim().to_owned();
    if token.is_empty() {
        return Err(format!(
            "token file {} (named in config file {}) is empty",
            path.display(),
            config.display()
        ));
    }
    config_file::warn_if_others_can_read(path, "is a token file");
    Ok(token)
}
