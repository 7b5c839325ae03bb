//! The shell server's side of the [lobby](crate::server::lobby): what a waiting connection's
//! bytes are ([`ShellService::admit`]), and serving one request on a worker thread.
//!
//! A connection's first bytes say which kind of client it is (see [`wire::classify_greeting`]):
//! a framed client, served one request at a time, or a seed client (raw text commands), served
//! one command at a time, and only when the operator chose a seed reply format; either way by
//! the core's shell session, one per request ([`serve_shell_request`]). Before either, bytes that open another protocol (an HTTP
//! request line, a TLS ClientHello, ...) are refused, so that no browser page or stray client
//! can have its bytes run as commands.

use std::sync::Arc;

use super::config::ShellConfig;
use super::connection::GREETING_PAUSE;
use super::process::RunningCommands;
use super::request::serve_shell_request;
use super::wire::{self, Greeting, Opening};
use crate::server::foreign::{self, ForeignProtocol};
use crate::server::lobby::framed_request_complete;
use crate::server::{Admission, ClientKind, Connection, ErrorCode, Handback, Service, error_frame};

/// A seed-mode reply holding `body`, in `format`.
fn seed_reply(format: wire::SeedFormat, body: &[u8]) -> Vec<u8> {
    let mut head = [0u8; 256];
    // The head of any format fits in 256 bytes.
    let n = wire::encode_seed_reply_head(format, body, false, false, &mut head).unwrap_or(0);
    let mut reply = head[..n].to_vec();
    reply.extend_from_slice(body);
    reply
}

/// The shell protocol, as the lobby drives it.
#[derive(Debug)]
pub(crate) struct ShellService {
    config: Arc<ShellConfig>,
    /// The commands running now, killed when a stop runs out of grace.
    running: Arc<RunningCommands>,
}

impl ShellService {
    pub(crate) fn new(config: Arc<ShellConfig>) -> ShellService {
        ShellService {
            config,
            running: RunningCommands::new(),
        }
    }

    /// Judges a new connection's first bytes by the core's rules.
    fn admit_opening(&self, received: &[u8], paused: bool) -> Admission<ClientKind> {
        let rules = self.config.rules();
        match wire::judge_opening(received, paused, &rules) {
            Opening::Undecided => Admission::Wait {
                pause: Some(GREETING_PAUSE),
            },
            Opening::Framed => admit_framed(received),
            Opening::Seed(_) => self.admit(ClientKind::Seed, received, true),
            Opening::Refused {
                code,
                reason,
                reply,
            } => {
                let mut bytes = vec![0u8; 1024];
                let n = reply.encode(&mut bytes);
                bytes.truncate(n);
                Admission::Refuse {
                    code,
                    reason: reason.into(),
                    reply: bytes,
                }
            }
        }
    }
}

/// A framed request is served once it is all in (a command is short), so that a client that
/// sends slowly holds no slot.
fn admit_framed(received: &[u8]) -> Admission<ClientKind> {
    if framed_request_complete(received) {
        Admission::Serve(ClientKind::Framed)
    } else {
        Admission::Wait { pause: None }
    }
}

impl Service for ShellService {
    type Mode = ClientKind;

    const NAME: &'static str = "shell";

    fn admit(&self, kind: ClientKind, received: &[u8], paused: bool) -> Admission<ClientKind> {
        match kind {
            ClientKind::Unknown => self.admit_opening(received, paused),
            ClientKind::Framed => admit_framed(received),
            ClientKind::Seed if received.is_empty() => Admission::Wait { pause: None },
            // The rest of an HTTP request whose opening came apart from it is no command.
            ClientKind::Seed if foreign::holds_http_request_line(received) => Admission::Refuse {
                code: ErrorCode::ForeignProtocol,
                reason: "a raw-text command holds an HTTP request line".into(),
                reply: foreign::reply(ForeignProtocol::Http, "shell"),
            },
            ClientKind::Seed => Admission::Serve(ClientKind::Seed),
        }
    }

    fn serve(&self, conn: Connection<ClientKind>) -> Handback<ClientKind> {
        serve_shell_request(conn, &self.config, &self.running)
    }

    fn refusal_reply(&self, kind: ClientKind, code: ErrorCode, message: &str) -> Vec<u8> {
        match (kind, self.config.seed_reply) {
            // A seed client shows the reply's text as a command's output.
            (ClientKind::Seed, Some(format)) => {
                seed_reply(format, format!("unstick: {message}\n").as_bytes())
            }
            _ => error_frame(code, message),
        }
    }

    fn timeout_reply(&self, kind: ClientKind, received: &[u8], message: &str) -> Vec<u8> {
        let framed =
            kind == ClientKind::Framed || wire::classify_greeting(received) == Greeting::Framed;
        if framed {
            error_frame(ErrorCode::IdleTimeout, message)
        } else {
            Vec::new()
        }
    }

    fn stop_now(&self) {
        self.running.kill_all();
    }
}
