//! What every unstick server shares: binding, the [`lobby`] where connections wait between
//! requests (entered from the listener itself, or through the [`tls_front`] that completes TLS
//! handshakes), request [`slots`], a graceful [`shutdown`], recognising [`foreign`] protocols,
//! tokens (their [`token`] strength, the [`penalties`] for failed ones), binding a listener
//! ([`bind`], refused beyond loopback without a strong token and TLS), client sockets and
//! error frames.

mod client_socket;
pub mod foreign;
mod listen;
pub mod lobby;
pub mod penalties;
pub mod shutdown;
pub mod slots;
pub mod tls_front;
pub mod token;
mod workers;

pub use client_socket::ClientSocket;
pub use listen::{Transport, bind};
pub use lobby::{Admission, Connection, Entrance, Handback, LobbyConfig, Service};
pub use penalties::{Penalties, PenaltyRules};
pub use shutdown::Shutdown;
pub use token::{TokenWeakness, generate_token, token_weakness};

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use embedded_io_adapters::std::FromStd;

pub use unstick_core::ErrorCode;
use unstick_core::blocking::write_frame;
use unstick_core::{ErrorFrame, WriteError};

/// How long a server waits for more of a connection's first bytes that could still grow into
/// something else (another protocol's opening, a short seed command such as `ls`) before
/// judging them as they are.
/// The same pause as ends a long seed command ([`SEED_PAUSE`](unstick_core::shell::SEED_PAUSE)).
pub const GREETING_PAUSE: Duration = unstick_core::shell::SEED_PAUSE;

/// How long a closing connection's remaining input is read and dropped before the socket is
/// closed, so that the answer written to it (a refusal, say) is not lost to a reset: in the
/// lobby, and in the TLS front for a plaintext client on a TLS port.
pub const CLOSING_LINGER: Duration = Duration::from_secs(2);

/// What a server knows of a client between its requests: what its first bytes said.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientKind {
    /// Nothing yet: its first bytes will tell.
    #[default]
    Unknown,
    /// It speaks header frames.
    Framed,
    /// It sends raw text commands, as the seed's shell clients do.
    Seed,
}

pub use unstick_core::PLAIN_ENCODER;

/// Header capacity used by the servers and clients (bytes).
pub const HEADER_CAP: usize = 8192;

/// The system and processor this server runs on, as its info reply names them:
/// `linux-x86_64`, `windows-aarch64`.
pub fn platform() -> &'static str {
    static PLATFORM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PLATFORM.get_or_init(|| format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH))
}

/// What a server serving `protocols` says of itself beyond what its session knows: its
/// platform.
pub fn endpoint_info(
    protocols: unstick_core::info::Protocols,
) -> unstick_core::info::EndpointInfo<'static> {
    let mut info = unstick_core::info::EndpointInfo::new(protocols);
    info.platform = Some(platform());
    info
}

pub use unstick_core::session::token_matches;

/// The instant `limit` from now; a limit too large to represent (say, `u64::MAX` seconds) waits
/// as good as forever instead of overflowing.
pub(crate) fn deadline_after(limit: Duration) -> Instant {
    const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    let now = Instant::now();
    now.checked_add(limit.min(FOREVER))
        .or_else(|| now.checked_add(Duration::from_secs(u32::MAX.into())))
        .unwrap_or(now)
}

/// Sends an error frame (`{"op":"error","code":...,"message":...}`, no body).
pub fn send_error<W: embedded_io::Write>(
    io: &mut W,
    code: ErrorCode,
    message: &str,
) -> Result<(), WriteError<W::Error>> {
    // JSON escaping grows a byte to at most six (`\u001f`); the rest is the prefix, the member
    // names and the size member.
    let mut head = vec![0u8; (message.len() + code.as_str().len()) * 6 + 128];
    write_frame(
        io,
        &PLAIN_ENCODER,
        &ErrorFrame::new(code, message),
        &[],
        &mut head,
    )
}

/// Logs the refusal of a request from `peer` to `server`.
pub(crate) fn log_refusal(
    server: &str,
    peer: SocketAddr,
    refusal: &unstick_core::session::Refusal,
) {
    tracing::warn!(
        server,
        peer = %peer,
        code = %refusal.code,
        reason = %refusal.message,
        "refused"
    );
}

/// An error frame's bytes, for a reply written later (by the lobby, say).
pub fn error_frame(code: ErrorCode, message: &str) -> Vec<u8> {
    let mut out = FromStd::new(Vec::new());
    // Writing to a vector cannot fail, and the head buffer is sized for any message.
    let _ = send_error(&mut out, code, message);
    out.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use unstick_core::{Event, FrameDecoder, Profile};

    #[derive(serde::Deserialize)]
    struct Reply {
        op: String,
        code: String,
        message: String,
    }

    #[test]
    fn error_frames_hold_messages_of_any_escaping() {
        // Every byte of this message becomes a six-byte `\u00XX` escape on the wire.
        let message: String = (0..2000u32)
            .map(|i| char::from(1 + (i % 7) as u8))
            .collect();
        let mut out = FromStd::new(Vec::new());
        send_error(&mut out, ErrorCode::BadPath, &message).expect("error frame written");
        let wire = out.into_inner();

        let mut decoder = FrameDecoder::<16384>::header_frames(Profile::I32_LE);
        let (used, event) = decoder.feed(&wire).expect("valid frame");
        assert_eq!(used, wire.len());
        assert!(matches!(event, Event::Head(info) if info.body_len == 0));
        let mut scratch = vec![0u8; message.len()];
        let reply: Reply = decoder.header_with_scratch(&mut scratch).expect("typed");
        assert_eq!(
            (reply.op.as_str(), reply.code.as_str()),
            ("error", "bad_path")
        );
        assert_eq!(reply.message, message);
    }
}
