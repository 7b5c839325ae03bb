//! What the protocol sessions ([`shell`](crate::shell), [`files`](crate::files)) share: how they
//! hand out bytes to send ([`Transmit`], [`Outbox`]), how they refuse a request ([`Refusal`]),
//! and how they keep a received string member without an allocator ([`BoundedText`]).
//!
//! Every session is sans-IO, in the manner of quinn-proto: the host feeds it what the socket
//! gave (`handle_input`) and the results of the actions it carried out (`handle_*`), and drains
//! what it asks for: bytes to send ([`poll_transmit`](Outbox::poll_transmit)) and actions to
//! carry out (`poll_action`). No session reads a clock, performs I/O or allocates.
//!
//! The calling order is the same for every session: after each `handle_*` call, drain
//! `poll_transmit` until it returns `None`, then look at `poll_action`. A `handle_*` call made
//! while bytes are still waiting to be sent may fail with [`SessionError::OutboxFull`]. A frame
//! without a body ends without another byte arriving: once the received bytes are used up, call
//! `handle_input(&[])` once more before waiting on the socket.

mod bounded_text;
mod escaped_text;
mod outbox;
mod peer_text;
mod refusal;
mod token;

pub use bounded_text::BoundedText;
pub(crate) use escaped_text::{EscapedText, Unescape};
pub use outbox::{Outbox, ShortBody, Transmit};
pub use peer_text::PeerText;
pub use refusal::{MESSAGE_CAP, Refusal};
pub(crate) use token::escaped_token_matches;
pub use token::{TOKEN_CAP, token_matches};

use core::fmt;

/// Why a session could not take a call. Each is a mistake of the host, not of the peer: the
/// peer's mistakes are [`Refusal`]s, answered on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionError {
    /// Bytes from an earlier step are still waiting in the outbox; drain `poll_transmit` first.
    OutboxFull,
    /// The call does not fit the session's state (say, a result for an action it did not ask
    /// for). The session is unchanged.
    OutOfOrder,
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SessionError::OutboxFull => {
                "the session's outbox still holds bytes to send; drain poll_transmit first"
            }
            SessionError::OutOfOrder => "the call does not fit the session's state",
        })
    }
}

impl core::error::Error for SessionError {}
