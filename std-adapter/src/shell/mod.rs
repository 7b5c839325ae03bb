//! The remote shell: a server that runs commands for its clients through a shell (`sh -c` on
//! Unix, `cmd.exe /c` on Windows, or the [`Shell`] chosen) and streams their output back in
//! frames, and the clients that talk to it.
//!
//! ## Architecture
//!
//! - [`wire`]: the headers on the wire and the rule that tells a framed client from a seed
//!   client by its first bytes (no I/O).
//! - [`process`]: runs one command in a process tree of its own (a process group on Unix, a Job
//!   Object on Windows) and pumps both output pipes to an [`OutputSink`] (and the client's input,
//!   when it streams one, into the command's input pipe as it takes it), enforcing the time
//!   limit and the output cap, killing the tree when the client hangs up, and always reaping the
//!   shell.
//! - [`ShellServer`]: binds (loopback only unless a token is set) and hands its connections to
//!   the shared [lobby](crate::server::lobby), which holds them while they wait and gives each
//!   ready request a slot and a worker thread.
//! - `session`: the shell's side of the lobby: what a connection's first bytes are (another
//!   protocol, refused; a framed client; a seed client, served only with a [`SeedFormat`]
//!   format chosen), then one request at a time by `request`, which hosts the core's
//!   [`ShellServerSession`](unstick_core::shell::ShellServerSession): the session decides what
//!   is valid and what is answered (streamed `stdout`/`stderr` frames and an `exit` frame, or
//!   one reply per seed command); the host reads the socket and runs the command.
//! - [`ShellClient`] and [`SeedShellClient`]: the framed client (which streams a command's
//!   input from a [`CommandInput`] while it receives the output) and the client for the seed's
//!   Python servers, each a socket around `unstick-core`'s sans-IO session
//!   ([`ShellClientSession`](unstick_core::shell::ShellClientSession),
//!   [`SeedClientSession`](unstick_core::shell::SeedClientSession)), which makes the protocol's
//!   decisions; reconnecting stays here.
//!
//! The protocol is described in `docs/PROTOCOL.md` (section "Remote shell").
//!
//! ## Example
//!
//! ```
//! use unstick_std::shell::{CapturedOutput, ShellClient, ShellConfig, ShellServer, Termination};
//!
//! let server = ShellServer::bind("127.0.0.1:0", ShellConfig::default())?;
//! let addr = server.local_addr()?.to_string();
//! std::thread::spawn(move || server.serve());
//!
//! let mut client = ShellClient::connect(&addr, None)?;
//! let mut output = CapturedOutput::default();
//! let report = client.exec("echo hello; echo oops >&2; exit 3", &mut output)?;
//! assert_eq!(output.stdout, b"hello\n");
//! assert_eq!(output.stderr, b"oops\n");
//! assert_eq!(report.termination, Termination::Exited(3));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod client;
mod config;
mod connection;
mod encoding;
mod input;
mod interpreter;
pub mod process;
mod request;
mod server;
mod service;
pub mod wire;

pub use client::{
    DEFAULT_SERVER_ALIVE, ExecInterrupter, ExitReport, SeedShellClient, ShellClient,
    ShellClientError,
};
pub use config::{
    DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_OUTPUT, DEFAULT_MAX_SESSIONS, DEFAULT_TIMEOUT, ShellConfig,
};
pub use connection::GREETING_PAUSE;
pub use encoding::SeedEncoding;
pub use input::CommandInput;
pub use interpreter::{Shell, ShellKind};
pub use process::{
    CapturedOutput, CommandLimits, CommandSpec, OutputSink, OutputStream, RunError,
    RunningCommands, Termination, kill_all_commands,
};
pub use server::{ShellServer, ShellServerError};
pub use wire::SeedFormat;
