//! The device's host of a session, written once over the core's `Session` contract as
//! `unstick-std`'s is: it feeds the session the request's head, then what the link gives,
//! waits for the line no longer than the session's deadline, sends what the session hands out,
//! and leaves the protocol's actions to a [`RequestWork`].

use core::convert::Infallible;

use embedded_io::{Read, ReadReady, Write};
use unstick_core::session::Session;

use crate::link::{Fill, Link, WaitForInput};
use crate::{Outcome, flush};

/// The request is over without an answer: the session asked to close, or a result it does not
/// take (a bug of this host) started it over.
pub struct Closed;

/// What a protocol's host does for its session besides moving bytes.
pub trait RequestWork<S: Session> {
    /// Carries out the session's [`poll_action`](Session::poll_action) (there is one) and
    /// reports its result.
    fn act<U: Read + ReadReady + Write + WaitForInput>(
        &mut self,
        link: &mut Link<'_, U>,
        session: &mut S,
    ) -> Result<(), Closed>;

    /// Takes what passed through the session from the input (an upload's bytes).
    fn take(&mut self, session: &mut S, received: S::Received<'_>);

    /// The link broke the request off (a frame of it was lost, or the next request started).
    fn interrupted(&mut self) {}

    /// Whether the request is answered and nothing is left to send.
    fn is_over(&self, session: &S) -> bool;
}

/// Drives `session` through the request whose head is `head`.
pub fn serve_request<S, U, W>(
    link: &mut Link<'_, U>,
    session: &mut S,
    mut head: &[u8],
    work: &mut W,
) -> Outcome
where
    S: Session<Error = Infallible>,
    U: Read + ReadReady + Write + WaitForInput,
    W: RequestWork<S>,
{
    loop {
        flush(link, &[], &mut |out| session.poll_transmit(out));
        // The device keeps no log: what the session reports is what it sent.
        while session.poll_event().is_some() {}
        if session.poll_action().is_some() {
            if work.act(link, session).is_err() {
                return Outcome::Closed;
            }
            continue;
        }
        if work.is_over(session) {
            return Outcome::Answered;
        }
        let now = link.now();
        if !head.is_empty() {
            let Ok((used, received)) = session.handle_input(now, head);
            head = &head[used..];
            if let Some(received) = received {
                work.take(session, received);
            }
            continue;
        }
        if !link.unread().is_empty() {
            let used = {
                let Ok((used, received)) = session.handle_input(now, link.unread());
                if let Some(received) = received {
                    work.take(session, received);
                }
                used
            };
            link.consume(used);
            continue;
        }
        match link.fill_until(session.poll_timeout(now)) {
            Fill::Bytes => {}
            // The session's deadline passed with the line silent: the link has dropped the
            // request and told the client (a notice), so the request ends as a torn one does,
            // with nothing more sent on it (a torn upload is kept for a resume).
            Fill::Silent => {
                let Ok(_) = session.handle_eof();
            }
            Fill::Interrupted => {
                work.interrupted();
                return Outcome::Closed;
            }
        }
    }
}
