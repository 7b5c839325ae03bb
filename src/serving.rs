//! What every `serve` command shares: the options of the lobby where connections wait and of
//! the penalties for failed tokens, stopping on SIGTERM/SIGINT (Ctrl-C/Ctrl-Break on Windows),
//! room for many connections, and the duration and size syntax of all options.

use std::io;
use std::thread;
use std::time::Duration;

use clap::{Args, ValueEnum};
use unstick_std::address::HostPort;
use unstick_std::server::penalties::{
    DEFAULT_FAILURE_WINDOW, DEFAULT_MAX_FAILURES, DEFAULT_MAX_PENALTY, DEFAULT_PENALTY,
};
use unstick_std::server::{LobbyConfig, Penalties, PenaltyRules, Shutdown};
use unstick_std::shell::kill_all_commands;

use crate::stop_signals::StopSignals;

/// The log's line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `<time> <LEVEL> <message> key=value ...`
    Human,
    /// `{"timestamp":...,"level":...,"message":...,<fields>}`
    Json,
}

/// How a server logs: options every server command takes (`shell serve`, `ftp serve`,
/// `serve`), and only they (a client's `-q` and `-v` are [`console::VerbosityArgs`]).
///
/// [`console::VerbosityArgs`]: crate::console::VerbosityArgs
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct LogArgs {
    /// How the server writes its log to stderr: `human` (one timestamped line per event) or
    /// `json` (one JSON object per line) [default: human].
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Log only warnings and errors (refusals included).
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Log more detail (`-vv` for everything).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Options of how a server holds connections, shared by `shell serve` and `ftp serve`.
#[derive(Args, Debug, Clone)]
pub struct LobbyArgs {
    /// Time a new connection has to send its first request; silent and trickling connections
    /// are closed after it.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    login_grace: Duration,
    /// Connections held open while they wait for their next request, in all; past it, the one
    /// that waited longest is closed.
    #[arg(long, default_value_t = 4096)]
    max_waiting: usize,
    /// The same, per client address.
    #[arg(long, default_value_t = 256)]
    max_waiting_per_address: usize,
    /// Requests served at once for one client address (default: the server's whole limit).
    #[arg(long)]
    max_per_address: Option<usize>,
    /// After SIGTERM or SIGINT: time the requests in progress have to finish before they are
    /// cut off (a second signal stops at once).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    shutdown_grace: Duration,
    #[command(flatten)]
    penalties: PenaltyArgs,
}

impl Default for LobbyArgs {
    fn default() -> Self {
        let defaults = LobbyConfig::default();
        LobbyArgs {
            login_grace: defaults.login_grace,
            max_waiting: defaults.max_waiting,
            max_waiting_per_address: defaults.max_waiting_per_address,
            max_per_address: None,
            shutdown_grace: defaults.shutdown_grace,
            penalties: PenaltyArgs::default(),
        }
    }
}

impl LobbyArgs {
    /// The lobby configuration for a server serving `max_active` requests at once, with
    /// connections waiting up to `idle_timeout` between requests.
    pub fn config(&self, max_active: usize, idle_timeout: Duration) -> LobbyConfig {
        let max_active = max_active.max(1);
        LobbyConfig {
            login_grace: self.login_grace,
            idle_timeout,
            max_active,
            max_active_per_address: self
                .max_per_address
                .unwrap_or(max_active)
                .clamp(1, max_active),
            max_waiting: self.max_waiting.max(1),
            max_waiting_per_address: self.max_waiting_per_address.max(1),
            shutdown_grace: self.shutdown_grace,
        }
    }

    /// A table of failed tokens with the penalty options, for one server.
    pub fn penalties(&self) -> Penalties {
        self.penalties.table()
    }
}

/// Options of the penalties for failed tokens, shared by every `serve` command.
#[derive(Args, Debug, Clone)]
pub struct PenaltyArgs {
    /// Missing or wrong tokens from one client address (an IPv6 client's /64) within
    /// --auth-failure-window after which its requests are refused for a while, whatever token
    /// they carry (0: never).
    #[arg(long, default_value_t = DEFAULT_MAX_FAILURES, value_name = "N")]
    max_auth_failures: u32,
    /// The time within which failed tokens are counted together.
    #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    auth_failure_window: Duration,
    /// How long an address's requests are first refused after too many failed tokens; each
    /// further penalty (within --max-auth-penalty of the last one's end) doubles.
    #[arg(long, default_value = "15s", value_parser = parse_duration, value_name = "DURATION")]
    auth_penalty: Duration,
    /// The longest penalty.
    #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
    max_auth_penalty: Duration,
}

impl Default for PenaltyArgs {
    fn default() -> Self {
        PenaltyArgs {
            max_auth_failures: DEFAULT_MAX_FAILURES,
            auth_failure_window: DEFAULT_FAILURE_WINDOW,
            auth_penalty: DEFAULT_PENALTY,
            max_auth_penalty: DEFAULT_MAX_PENALTY,
        }
    }
}

impl PenaltyArgs {
    /// A table of failed tokens with these options (one per process: both servers of
    /// `unstick serve` share it).
    pub fn table(&self) -> Penalties {
        Penalties::new(PenaltyRules {
            max_failures: self.max_auth_failures,
            window: self.auth_failure_window,
            penalty: self.auth_penalty,
            max_penalty: self.max_auth_penalty.max(self.auth_penalty),
            ..PenaltyRules::default()
        })
    }
}

/// The status of a server stopped at once by a second signal, once that has come.
static STOPPED_AT_ONCE: std::sync::OnceLock<i32> = std::sync::OnceLock::new();

/// The status the process must end with when a second signal stopped it at once, even if the
/// servers' graceful stop ended first (the signal thread exits with it, but `main` may get
/// there before).
pub fn stopped_at_once() -> Option<i32> {
    STOPPED_AT_ONCE.get().copied()
}

/// Installs the handlers for SIGTERM and SIGINT (on Windows, Ctrl-C, Ctrl-Break and the
/// console closing): the first asks `shutdown` for a graceful stop, a second kills every
/// running command and exits at once (with the status the signal would have given, 128 + the
/// signal on Unix).
pub fn stop_on_signals(shutdown: Shutdown) -> io::Result<()> {
    let mut signals = StopSignals::install()?;
    thread::Builder::new()
        .name("unstick-signals".into())
        .spawn(move || {
            let mut arriving = signals.arriving();
            if let Some(signal) = arriving.next() {
                tracing::info!(
                    signal = signal.name,
                    "stopping: no new connections; a second signal stops at once"
                );
                shutdown.request();
            }
            if let Some(signal) = arriving.next() {
                tracing::warn!(
                    signal = signal.name,
                    "second signal: killing every running command and stopping now"
                );
                // Said before the kill: the graceful stop it lets finish must not end `main`
                // with a success.
                let _ = STOPPED_AT_ONCE.set(signal.exit_code);
                kill_all_commands();
                crate::log_queue::flush(crate::log_queue::FLUSH_LIMIT);
                std::process::exit(signal.exit_code);
            }
        })?;
    Ok(())
}

/// Raises this process's soft limit on open descriptors to its hard limit, so that a server can
/// hold thousands of waiting connections (the soft limit is often 1024). Windows has no such
/// limit on sockets.
#[cfg(unix)]
pub fn raise_descriptor_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    // `None` is "unlimited": a soft limit below an unlimited hard one is raised to it too.
    if limit.current.is_some() && limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            ..limit
        };
        let _ = setrlimit(Resource::Nofile, raised);
    }
}

/// Catches SIGXFSZ for the whole process, so that a file-size limit (`RLIMIT_FSIZE`) fails one
/// upload with `EFBIG` (refused as `no_space`) instead of killing the file server: a signal
/// that is caught, like one that is ignored, leaves the write to fail. A handler (a flag no one
/// reads) rather than "ignore" keeps commands the process starts at the default disposition,
/// which exec restores for caught signals only. Windows has neither.
#[cfg(unix)]
pub fn catch_file_size_signal() {
    let caught = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _ = signal_hook::flag::register(signal_hook::consts::SIGXFSZ, caught);
}

/// A server's listen address as `--listen` takes it, `HOST[:PORT]` (an IPv6 address in
/// brackets), in the form binding reads: a missing port is `default_port`, port 0 any free one.
pub fn listen_address(text: &str, default_port: u16) -> Result<String, String> {
    HostPort::parse(text, Some(default_port))
        .map(|address| address.to_string())
        .map_err(|e| format!("--listen: {e}"))
}

/// Parses a duration as humantime reads it (`500ms`, `60s`, `1.5s`, `2m`, `1h 30m`, `7d`), or a
/// plain number of seconds (`60`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let plain_seconds = !text.is_empty() && text.chars().all(|c| c.is_ascii_digit() || c == '.');
    // humantime wants a unit, and a plain number has always been seconds here.
    let parsed = if plain_seconds {
        humantime::parse_duration(&format!("{text}s"))
    } else {
        humantime::parse_duration(text)
    };
    let duration = parsed.map_err(|e| {
        format!(
            "{text:?} is not a duration ({e}); write e.g. 60 (seconds), 500ms, 60s, 2m, 1h or 7d"
        )
    })?;
    if duration < Duration::from_millis(1) {
        return Err(format!(
            "{text:?} is too short: a duration must be at least 1ms"
        ));
    }
    Ok(duration)
}

/// Parses a byte count: a number with an optional binary unit `K`, `M`, `G` or `T` (either
/// case; `KiB`, `MB` and the like also accepted), powers of 1024. Every size option takes it.
/// Not a crate's parser: bytesize and byte-unit read `M` and `MB` as powers of 1000 (the
/// documented 16 MiB of `--max-output 16M` would become 16,000,000 bytes), and bytesize
/// saturates a size too large instead of refusing it.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size; write e.g. 1048576, 512K or 16M"))?;
    let unit = unit.trim();
    let unit = unit
        .strip_suffix("iB")
        .or_else(|| unit.strip_suffix('B'))
        .unwrap_or(unit);
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}; use K, M, G or T (powers of 1024)"
            ));
        }
    };
    value
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        let table = [
            ("60", Some(Duration::from_secs(60))),
            ("60s", Some(Duration::from_secs(60))),
            ("500ms", Some(Duration::from_millis(500))),
            ("1.5s", Some(Duration::from_millis(1500))),
            ("2m", Some(Duration::from_secs(120))),
            ("1h", Some(Duration::from_secs(3600))),
            ("0", None),
            ("ten", None),
            ("7d", Some(Duration::from_secs(7 * 86400))),
            ("1h 30m", Some(Duration::from_secs(5400))),
            ("5x", None),
            ("-1", None),
            ("", None),
        ];
        for (text, expected) in table {
            assert_eq!(parse_duration(text).ok(), expected, "{text}");
        }
        let unknown = parse_duration("5x").unwrap_err();
        assert!(
            unknown.contains("unknown time unit") && unknown.contains("500ms, 60s, 2m"),
            "{unknown}"
        );
        let zero = parse_duration("0").unwrap_err();
        assert!(zero.contains("at least 1ms"), "{zero}");
    }

    #[test]
    fn sizes_parse_with_units() {
        let table = [
            ("1000", Some(1000)),
            ("512K", Some(512 * 1024)),
            ("512k", Some(512 * 1024)),
            ("16M", Some(16 << 20)),
            ("16m", Some(16 << 20)),
            ("16MiB", Some(16 << 20)),
            ("16MB", Some(16 << 20)),
            ("1G", Some(1 << 30)),
            ("1T", Some(1 << 40)),
            ("99999999999999G", None),
            ("12P", None),
            ("", None),
        ];
        for (text, expected) in table {
            assert_eq!(parse_size(text).ok(), expected, "{text}");
        }
        let unknown = parse_size("12P").unwrap_err();
        assert!(
            unknown.contains("\"12P\"") && unknown.contains("K, M, G or T"),
            "{unknown}"
        );
    }

    #[test]
    fn penalty_options_default_to_the_servers_defaults() {
        #[derive(clap::Parser)]
        struct Options {
            #[command(flatten)]
            penalties: PenaltyArgs,
        }
        let parsed = <Options as clap::Parser>::parse_from(["serve"]);
        assert_eq!(parsed.penalties.table().rules(), PenaltyRules::default());
        assert_eq!(
            PenaltyArgs::default().table().rules(),
            PenaltyRules::default()
        );
    }

    #[test]
    fn per_address_limit_defaults_to_the_whole_server() {
        let args = LobbyArgs::default();
        let idle = Duration::from_secs(9);
        assert_eq!(args.config(64, idle).max_active_per_address, 64);
        assert_eq!(args.config(1, idle).max_active_per_address, 1);
        let args = LobbyArgs {
            max_per_address: Some(500),
            ..LobbyArgs::default()
        };
        assert_eq!(args.config(8, idle).max_active_per_address, 8);
    }
}
