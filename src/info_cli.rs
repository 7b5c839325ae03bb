//! `unstick info ADDR`: what an endpoint is (a shell server, a file server or a device), from
//! its answer to the `info` request.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use unstick_core::info::EndpointInfo;
use unstick_core::session::PeerText;
use unstick_std::info::{RemoteInfo, request_info};
use unstick_std::link::{Endpoint, Link};
use unstick_std::system_error::SystemError;

use crate::client_settings::report_connected;
use crate::console::VerbosityArgs;
use crate::exit_status::print_result;
use crate::serving::parse_duration;
use crate::tls_cli::TlsClientArgs;

/// Options of `unstick info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    /// The endpoint: `HOST:PORT` (a shell server's or a file server's port), `tls://HOST:PORT`,
    /// a device's serial line as serial:PATH or serial:PATH@BAUD, or a TCP bridge to its UART
    /// as uart+tcp://HOST:PORT.
    #[arg(value_name = "ADDR")]
    addr: String,
    /// Print the answer as one JSON object: the members of the endpoint's reply, its strings
    /// escaped as for a terminal.
    #[arg(long)]
    json: bool,
    /// How long to wait for a silent endpoint (e.g. 10, 10s, 500ms): the clients' option of
    /// the same name (--timeout is its former name).
    #[arg(
        long = "server-alive",
        visible_alias = "timeout",
        value_name = "TIME",
        default_value = "10s",
        value_parser = parse_duration
    )]
    timeout: Duration,
    #[command(flatten)]
    tls: TlsClientArgs,
    #[command(flatten)]
    pub verbosity: VerbosityArgs,
}

/// Runs `unstick info`.
pub fn run(args: &InfoArgs) -> ExitCode {
    match ask(args) {
        Ok(text) => print_result(text.as_bytes(), "info"),
        Err(message) => {
            eprintln!("unstick info: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Asks the endpoint and returns what to print.
fn ask(args: &InfoArgs) -> Result<String, String> {
    let endpoint = Endpoint::parse(&args.addr).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let tls = args.tls.client_tls()?;
    let mut link = Link::open(&endpoint, Some(args.timeout), &tls)
        .map_err(|e| format!("cannot connect to {endpoint}: {}", SystemError(&e)))?;
    report_connected(&link, started);
    let info = request_info(&mut link, args.timeout).map_err(|e| e.to_string())?;
    Ok(if args.json { json(&info) } else { human(&info) })
}

/// The strings as they may reach a terminal: escaped ([`PeerText`]).
fn escaped(info: &RemoteInfo) -> (Option<String>, Option<String>) {
    let escape =
        |text: &Option<String>| text.as_deref().map(|text| PeerText::new(text).to_string());
    (escape(&info.platform), escape(&info.board))
}

/// One JSON object on a line: the reply's header as this build reads it (`total_size` left
/// out, and members this build does not know).
fn json(info: &RemoteInfo) -> String {
    let (platform, board) = escaped(info);
    let mut facts: EndpointInfo<'_> = info.facts;
    facts.platform = platform.as_deref();
    facts.board = board.as_deref();
    // Numbers, lists of names and strings: nothing that can fail to serialize.
    let text = serde_json::to_string(&facts).unwrap_or_default();
    format!("{text}\n")
}

/// One line per member the endpoint gave: `name  value`.
fn human(info: &RemoteInfo) -> String {
    let facts = &info.facts;
    let (platform, board) = escaped(info);
    let bytes = |n: Option<u64>| n.map(|n| format!("{n} bytes"));
    let protocols: Vec<&str> = facts.protocols.names().collect();
    let digests: Vec<&str> = [(facts.digests.xxh3, "xxh3"), (facts.digests.md5, "md5")]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
    let lines = [
        ("protocols", Some(protocols.join(", "))),
        ("version", Some(facts.version.to_string())),
        ("max header", bytes(facts.max_header)),
        ("max command", bytes(facts.max_command)),
        ("max path", bytes(facts.max_path)),
        ("max file size", bytes(facts.max_file_size)),
        ("free space", bytes(facts.free_space)),
        ("digests", Some(digests.join(", "))),
        (
            "pty",
            facts.pty.map(|on| if on { "yes" } else { "no" }.to_owned()),
        ),
        ("platform", platform),
        ("board", board),
    ];
    let mut text = String::new();
    for (name, value) in lines {
        if let Some(value) = value {
            text.push_str(&format!("{name:<14}{value}\n"));
        }
    }
    text
}
