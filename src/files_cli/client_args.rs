//! The options every file client command shares: where the server is, the token, the timeout
//! and TLS; the digest option of the commands that transfer files; and the connection they
//! make.

use std::time::Duration;

use clap::Args;
use unstick_core::Algorithm;
use unstick_std::files::{ClientError, ClientOptions, FileClient};

use crate::client_settings::{ClientSettings, ConfigArgs, Tool, report_connected};
use crate::console::VerbosityArgs;
use crate::serving::{parse_duration, parse_size};
use crate::tls_cli::TlsClientArgs;

/// Options shared by the client commands.
#[derive(Args, Debug)]
pub struct ClientArgs {
    /// Server address: `HOST[:PORT]` (port 8090 when none is given; a name or an IP address,
    /// IPv6 in brackets as `[::1]:8090`), `tls://HOST[:PORT]` for a server started with --tls, or a
    /// device's serial line as serial:PATH or serial:PATH@BAUD (e.g.
    /// serial:/dev/ttyACM0@115200; 115200 when no speed is given), or a TCP bridge to a device's
    /// UART as uart+tcp://HOST:PORT (QEMU's -serial tcp:, ser2net). Default: $UNSTICK_FTP_ADDR,
    /// else the config file's, else 127.0.0.1:8090.
    #[arg(long, value_name = "ADDR")]
    addr: Option<String>,
    /// Token, if the server requires one (default: $UNSTICK_TOKEN, else the config file's).
    #[arg(long)]
    token: Option<String>,
    /// How long to wait for a silent server (e.g. 60, 60s, 500ms, 2m): the shell client's
    /// option of the same name (--timeout is its former name).
    #[arg(
        long = "server-alive",
        visible_alias = "timeout",
        value_name = "TIME",
        default_value = "60s",
        value_parser = parse_duration
    )]
    timeout: Duration,
    #[command(flatten)]
    tls: TlsClientArgs,
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub verbosity: VerbosityArgs,
}

impl ClientArgs {
    /// The server address and token, from the command line, the environment or the config
    /// file.
    fn settings(&self) -> Result<ClientSettings, String> {
        ClientSettings::resolve(Tool::Ftp, self.addr.as_deref(), self.token.as_deref())
    }

    /// The server address, for the seed's upload protocol (which has no token).
    pub(super) fn address(&self) -> Result<String, String> {
        self.settings().map(|settings| settings.addr())
    }

    /// Connects to the server (as `--verbose` asks, saying where and how long it took); its
    /// transfers go as `transfer` says.
    pub(super) fn connect(&self, transfer: Transfer) -> Result<FileClient, ClientError> {
        let settings = self.settings().map_err(ClientError::Settings)?;
        let started = settings.resolve_host().map_err(ClientError::Settings)?;
        let options = ClientOptions {
            token: settings.token.clone(),
            algorithm: transfer.algorithm,
            timeout: self.timeout,
            tls: self.tls.client_tls().map_err(ClientError::Settings)?,
            keep_attributes: transfer.keep_attributes,
            limit_rate: transfer.limit_rate,
            ..ClientOptions::default()
        };
        let client = FileClient::connect(&settings.addr(), options)?;
        report_connected(client.link(), started);
        Ok(client)
    }
}

/// The options only the commands that transfer files (put, get) take: a command that
/// transfers nothing does not offer them (nor does its completion).
#[derive(Args, Debug, Default)]
pub struct TransferArgs {
    /// Verify with MD5 instead of XXH3 (slower; for peers that only know MD5).
    #[arg(long)]
    md5: bool,
    /// Keep each file's mode (permission bits) and modification time, as `scp -p` does; with
    /// -r, those of every file below. Set-user-ID, set-group-ID and sticky bits are never
    /// kept; directories get the receiving side's own.
    #[arg(long = "preserve", short = 'p')]
    preserve: bool,
    /// Transfer at most RATE bytes a second, each file on its own (suffixes K, M, G: powers of
    /// 1024, e.g. 500K, 2M).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    limit_rate: Option<u64>,
}

/// A rate of `--limit-rate`: a size ([`parse_size`]) a second, more than none.
fn parse_rate(text: &str) -> Result<u64, String> {
    match parse_size(text)? {
        0 => Err("a rate of 0 would transfer nothing; give at least 1 (bytes a second)".into()),
        rate => Ok(rate),
    }
}

impl TransferArgs {
    /// How the transfers go.
    pub(super) fn transfer(&self) -> Transfer {
        Transfer {
            algorithm: if self.md5 {
                Algorithm::Md5
            } else {
                Algorithm::Xxh3
            },
            keep_attributes: self.preserve,
            limit_rate: self.limit_rate,
        }
    }
}

/// How a command's transfers go.
#[derive(Clone, Copy, Debug)]
pub(super) struct Transfer {
    /// The digest they are verified with.
    pub algorithm: Algorithm,
    /// Whether files keep their mode and modification time (`-p`).
    pub keep_attributes: bool,
    /// The most bytes a second a transfer moves (`--limit-rate`).
    pub limit_rate: Option<u64>,
}

impl Transfer {
    /// XXH3, nothing kept: what a command that transfers no file connects with.
    pub const PLAIN: Transfer = Transfer {
        algorithm: Algorithm::Xxh3,
        keep_attributes: false,
        limit_rate: None,
    };
}
