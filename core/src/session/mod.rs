//! What the protocol sessions ([`shell`](crate::shell), [`files`](crate::files)) share: the
//! [`Session`] contract every host drives them through, how they hand out bytes to send
//! ([`Transmit`], [`Outbox`]), how they refuse a request ([`Refusal`]) and report what happened
//! ([`ServerEvent`]), and how they keep a received string member without an allocator
//! ([`BoundedText`]).
//!
//! Every session is sans-IO, in the manner of quinn-proto: the host feeds it what the socket
//! gave (`handle_input`), the end of input (`handle_eof`), the passing of time
//! (`handle_timeout`) and the results of the actions it carried out (`handle_*`), and drains
//! what it asks for: bytes to send ([`poll_transmit`](Outbox::poll_transmit)), actions to carry
//! out (`poll_action`), events to log (`poll_event`) and when to wake it (`poll_timeout`). No
//! session reads a clock, performs I/O or allocates: time comes in as an
//! [`Instant`] from the host's clock.
//!
//! The calling order is the same for every session, and [`Session`] names it once:
//!
//! 1. after each call, drain `poll_transmit` until it returns `None`, then `poll_event`;
//! 2. carry out `poll_action` if there is one, and report its result;
//! 3. otherwise wait for input, but no later than `poll_timeout(now)`: feed what arrives to
//!    `handle_input`, the end of the stream to `handle_eof`, and, once the instant has passed,
//!    call `handle_timeout`.
//!
//! A `handle_*` call made while bytes are still waiting to be sent may fail with
//! [`SessionError::OutboxFull`]. A session takes every byte it can in one `handle_input` call:
//! a frame that ends without another byte (one without a body) is taken whole, so a host never
//! feeds an empty slice to make progress.

mod bounded_text;
mod escaped_text;
mod events;
mod outbox;
mod refusal;
mod seed_served;
mod timers;
mod token;

pub use crate::peer_text::PeerText;
pub use bounded_text::BoundedText;
pub(crate) use escaped_text::{EscapedText, Unescape};
pub(crate) use events::Events;
pub use events::ServerEvent;
pub use outbox::{Outbox, ShortBody, Transmit};
pub(crate) use refusal::Refused;
pub use refusal::{MESSAGE_CAP, Refusal};
pub(crate) use seed_served::SeedServed;
pub(crate) use timers::{ReplyTimer, Wait, earliest};
pub(crate) use token::escaped_token_matches;
pub use token::{TOKEN_CAP, token_matches};

use core::fmt;

use crate::time::Instant;

/// The one shape of every session, client and server: what a host calls and in which order
/// (see the [module documentation](self)). A host written against it serves any session; the
/// associated types say what passes through each one.
pub trait Session {
    /// What [`handle_input`](Session::handle_input) hands back besides the count of bytes it
    /// took: data passing through (an upload's bytes, a command's output, a download), a slice
    /// of the input, or a reply the host acts on at once.
    type Received<'i>;
    /// What the peer did wrong so that the connection cannot go on (servers answer the peer's
    /// mistakes on the wire and have none: [`Infallible`](core::convert::Infallible)).
    type Error;
    /// Work the session asks the host to carry out.
    type Action<'s>
    where
        Self: 's;
    /// What the session reports for the host's log.
    type Event;

    /// Takes received bytes at `now`; returns how many it took and what passes through. It
    /// stops early once it has something to send, an action, or data for the host: send, act
    /// or write, then feed it the rest.
    #[allow(clippy::type_complexity)]
    fn handle_input<'i>(
        &mut self,
        now: Instant,
        input: &'i [u8],
    ) -> Result<(usize, Option<Self::Received<'i>>), Self::Error>;

    /// The peer closed its side, or the connection broke: nothing more comes.
    fn handle_eof(&mut self) -> Result<Option<Self::Received<'static>>, Self::Error>;

    /// When the session next needs [`handle_timeout`](Session::handle_timeout), asked at
    /// `now` (a wait that began without a time is timed from it); `None` for never.
    fn poll_timeout(&mut self, now: Instant) -> Option<Instant>;

    /// Time has come to `now`: a deadline that passed is acted on.
    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error>;

    /// The next bytes to send; see [`Outbox::poll_transmit`].
    fn poll_transmit(&mut self, out: &mut [u8]) -> Option<Transmit>;

    /// What the host should do next; `None` while the session needs input or time.
    fn poll_action(&self) -> Option<Self::Action<'_>>;

    /// The next event for the host's log, oldest first.
    fn poll_event(&mut self) -> Option<Self::Event>;

    /// Whether the session is between requests with nothing left to send.
    fn is_idle(&self) -> bool;
}

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
