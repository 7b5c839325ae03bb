//! The blocking std host of every session, written once over the core's
//! [`Session`] contract: [`serve_request`] drives either server's session through one request,
//! [`await_reply`] drives either client's session through one reply. Both read from the
//! session's peer no later than the session's own deadline ([`Session::poll_timeout`]) and send
//! through the one transmit drain ([`send_transmits`]); what differs per protocol (the actions,
//! what passes through, what is logged) is a [`RequestWork`] or a closure.

use std::io::{self, Read, Write};
use std::ops::Range;
use std::sync::OnceLock;
use std::time::Duration;

use unstick_core::foreign::{ForeignProtocol, recognise_server};
use unstick_core::session::Session;
use unstick_core::time::Instant;

use crate::server::{ClientKind, Connection, Handback};
use crate::transmit::send_transmits;

/// The process's monotonic clock as the sessions see it: milliseconds since its first reading.
pub(crate) fn now() -> Instant {
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(std::time::Instant::now);
    let millis = origin.elapsed().as_millis();
    Instant::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
}

/// How long a read may wait to be back by `deadline`: at least a millisecond (a socket takes
/// zero as "forever"); `None` without a deadline.
pub(crate) fn wait_until(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|at| {
        at.saturating_duration_since(now())
            .max(Duration::from_millis(1))
    })
}

/// Whether `e` is a read that waited as long as it was allowed.
pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// A stream a host reads with a limit on each read's wait.
pub(crate) trait TimedRead: Read + Write {
    /// One read that waits at most `limit` (`None`: as long as it takes).
    fn read_within(&mut self, buf: &mut [u8], limit: Option<Duration>) -> io::Result<usize>;
}

/// The connection is to be closed.
#[derive(Debug)]
pub(crate) struct Closed;

/// Bytes read from the peer and not yet taken by the session.
#[derive(Debug)]
pub(crate) struct Inbox {
    buf: Vec<u8>,
    unread: Range<usize>,
}

impl Inbox {
    /// An inbox reading `size` bytes at a time, holding `received` (bytes read before the
    /// session started) as its first read, whole.
    pub(crate) fn new(size: usize, received: &[u8]) -> Inbox {
        let mut buf = vec![0u8; size.max(received.len())];
        buf[..received.len()].copy_from_slice(received);
        Inbox {
            buf,
            unread: 0..received.len(),
        }
    }

    /// Drops what was read and not taken.
    pub(crate) fn clear(&mut self) {
        self.unread = 0..0;
    }

    /// What was read and not taken yet.
    pub(crate) fn unread(&self) -> &[u8] {
        &self.buf[self.unread.clone()]
    }

    /// Where the unread bytes start in the inbox's buffer.
    pub(crate) fn unread_start(&self) -> usize {
        self.unread.start
    }

    /// The session took `n` of the unread bytes.
    pub(crate) fn consume(&mut self, n: usize) {
        self.unread.start += n;
    }

    /// Bytes the session took and handed back (at `range` of the buffer, before the unread
    /// ones): valid until the next read, which comes only once everything is taken.
    pub(crate) fn taken(&self, range: Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    /// Reads once through `read` (handed the inbox's buffer), when everything before was
    /// taken. `Ok(0)` is the end of the stream.
    pub(crate) fn fill_with(
        &mut self,
        read: impl FnOnce(&mut [u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        debug_assert!(self.unread.is_empty(), "a read over unread bytes");
        let n = read(&mut self.buf)?;
        self.unread = 0..n;
        Ok(n)
    }

    /// Reads once from `stream`, waiting at most `limit`. `Ok(0)` is the end of the stream.
    pub(crate) fn fill_within(
        &mut self,
        stream: &mut impl TimedRead,
        limit: Duration,
    ) -> io::Result<usize> {
        self.fill(stream, None, Some(limit))
    }

    /// Reads once from `stream`, waiting at most until `deadline`, or for `limit` without one.
    /// `Ok(0)` is the end of the stream.
    fn fill(
        &mut self,
        stream: &mut impl TimedRead,
        deadline: Option<Instant>,
        limit: Option<Duration>,
    ) -> io::Result<usize> {
        debug_assert!(self.unread.is_empty(), "a read over unread bytes");
        loop {
            match stream.read_within(&mut self.buf, wait_until(deadline).or(limit)) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
                Ok(n) => {
                    self.unread = 0..n;
                    return Ok(n);
                }
            }
        }
    }
}

/// The sending half of a host: the peer's stream and the scratch buffer frame heads are written
/// into.
pub(crate) struct Outlet<'s, S> {
    pub(crate) stream: &'s mut S,
    scratch: Vec<u8>,
}

/// Room for the frame heads a session writes; any head fits.
const SCRATCH: usize = 4096;

impl<'s, S: Write> Outlet<'s, S> {
    pub(crate) fn new(stream: &'s mut S) -> Self {
        Outlet {
            stream,
            scratch: vec![0u8; SCRATCH],
        }
    }

    /// Sends everything `session` has queued; `body` is the body its last call handed over.
    pub(crate) fn send<T: Session>(&mut self, session: &mut T, body: &[u8]) -> io::Result<()> {
        send_transmits(self.stream, &mut self.scratch, body, |buf| {
            session.poll_transmit(buf)
        })
    }
}

/// What a server's host does for its session besides moving bytes: its protocol's actions,
/// what passes through it, what it logs, and when the request it serves is over.
pub(crate) trait RequestWork<T: Session, S> {
    /// Carries out the session's [`poll_action`](Session::poll_action) (there is one) and
    /// reports its result; `Err` closes the connection. What the client sends while it is
    /// carried out (a command's standard input) is read into `inbox`, and what the session
    /// does not take stays there for it.
    fn act(
        &mut self,
        out: &mut Outlet<'_, S>,
        inbox: &mut Inbox,
        session: &mut T,
    ) -> Result<(), Closed>;

    /// Takes what passed through the session from the input (an upload's bytes).
    fn take(&mut self, session: &mut T, received: T::Received<'_>) -> Result<(), Closed>;

    /// Records an event for the log.
    fn record(&mut self, session: &T, event: T::Event);

    /// Whether the request is over and the connection goes back to wait for the next one.
    fn is_over(&self, session: &T) -> bool;
}

/// Drives `session` through one request on `out`'s stream, reading into `inbox`: sends what it
/// queues, logs its events, carries out its actions through `work`, and otherwise reads, no
/// longer than the session's deadline. `Ok` when the request is over; `Err` when the
/// connection is to be closed.
pub(crate) fn serve_request<T, S, W>(
    session: &mut T,
    out: &mut Outlet<'_, S>,
    inbox: &mut Inbox,
    work: &mut W,
) -> Result<(), Closed>
where
    T: Session<Error = core::convert::Infallible>,
    S: TimedRead,
    W: RequestWork<T, S>,
{
    loop {
        // Events first: what a request leaves behind is dealt with before its answer leaves.
        while let Some(event) = session.poll_event() {
            work.record(session, event);
        }
        out.send(session, &[]).map_err(|_| Closed)?;
        if session.poll_action().is_some() {
            work.act(out, inbox, session)?;
            continue;
        }
        if work.is_over(session) {
            return Ok(());
        }
        if !inbox.unread.is_empty() {
            let Ok((used, received)) =
                session.handle_input(now(), &inbox.buf[inbox.unread.clone()]);
            inbox.unread.start += used;
            if let Some(received) = received {
                work.take(session, received)?;
            }
            continue;
        }
        let deadline = session.poll_timeout(now());
        match inbox.fill(out.stream, deadline, None) {
            Ok(0) => {
                let Ok(_) = session.handle_eof();
            }
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {
                let Ok(()) = session.handle_timeout(now());
            }
            // A broken connection is an end of input: a torn upload is kept for a resume.
            Err(_) => {
                let Ok(_) = session.handle_eof();
            }
        }
    }
}

/// The connection of a request [`serve_request`] served, handed back to the lobby: with what
/// the client sent beyond the request, and whether a token was refused; closed when `served`
/// says so.
pub(crate) fn hand_back(
    mut conn: Connection<ClientKind>,
    inbox: &Inbox,
    token_refused: bool,
    served: Result<(), Closed>,
) -> Handback<ClientKind> {
    conn.received = inbox.unread().to_vec();
    conn.token_refused = token_refused;
    conn.requests += 1;
    match served {
        Ok(()) => Handback::Wait(conn),
        Err(Closed) => Handback::Close(conn),
    }
}

/// How a client's wait for a reply ended without one.
#[derive(Debug)]
pub(crate) enum ReplyFailure<E> {
    /// The session found the server's bytes wrong, or the server silent for too long.
    Session(E),
    /// The server closed the connection with no reply due that the session could end.
    Closed,
    /// Reading failed.
    Io(io::Error),
    /// The session failed, or the server closed, on bytes that open another protocol's answer:
    /// the client reached an HTTP, TLS or SSH server, not an unstick one.
    Foreign(ForeignProtocol),
}

/// The first bytes of a reply, kept to tell another protocol's server when the session fails
/// on them ([`recognise_server`]).
#[derive(Default)]
pub(crate) struct ReplyHead {
    bytes: [u8; 16],
    len: usize,
}

impl ReplyHead {
    /// Keeps what fits of `taken`, the next bytes of the reply.
    pub(crate) fn keep(&mut self, taken: &[u8]) {
        let n = taken.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&taken[..n]);
        self.len += n;
    }

    /// The failure to report: `failure`, or the foreign protocol whose answer the reply
    /// opened with, `unread` being the bytes the session failed on.
    fn failure<E>(&mut self, failure: ReplyFailure<E>, unread: &[u8]) -> ReplyFailure<E> {
        match self.foreign(unread) {
            Some(protocol) => ReplyFailure::Foreign(protocol),
            None => failure,
        }
    }

    /// The other protocol whose answer the reply opened with, `unread` being the bytes a
    /// session failed on (or none, when the server closed).
    pub(crate) fn foreign(&mut self, unread: &[u8]) -> Option<ForeignProtocol> {
        self.keep(unread);
        recognise_server(&self.bytes[..self.len])
    }
}

/// Drives a client's `session` through one reply from `stream`, reading into `inbox`: hands
/// every piece it gives to `on_received` until that returns a value; `fail` words why there is
/// none. A reply the session fails on, or that the server closes without finishing, is
/// checked for another protocol's answer first (an HTTP status line, a TLS alert, an SSH
/// banner): every client recognises them here, and [`ReplyFailure::Foreign`] says which. Reads wait no longer than the session's deadline (its reply timeout), when it has one,
/// else no longer than `read_limit` (say, after sending broke off, when the session still
/// counts the host's turn as unfinished and owes no deadline).
pub(crate) fn await_reply<T, S, R, F>(
    session: &mut T,
    stream: &mut S,
    inbox: &mut Inbox,
    read_limit: Option<Duration>,
    mut on_received: impl FnMut(&mut T, T::Received<'_>) -> Result<Option<R>, F>,
    fail: impl Fn(ReplyFailure<T::Error>) -> F,
) -> Result<R, F>
where
    T: Session,
    S: TimedRead,
{
    let mut head = ReplyHead::default();
    loop {
        if !inbox.unread.is_empty() {
            let unread = &inbox.buf[inbox.unread.clone()];
            let (used, received) = match session.handle_input(now(), unread) {
                Ok(taken) => taken,
                Err(e) => return Err(fail(head.failure(ReplyFailure::Session(e), unread))),
            };
            head.keep(&unread[..used]);
            inbox.unread.start += used;
            if let Some(received) = received
                && let Some(done) = on_received(session, received)?
            {
                return Ok(done);
            }
            continue;
        }
        let deadline = session.poll_timeout(now());
        match inbox.fill(stream, deadline, read_limit) {
            Ok(0) => {
                let last = match session.handle_eof() {
                    Ok(last) => last,
                    Err(e) => return Err(fail(head.failure(ReplyFailure::Session(e), &[]))),
                };
                return match last {
                    Some(received) => on_received(session, received)?
                        .ok_or_else(|| fail(head.failure(ReplyFailure::Closed, &[]))),
                    None => Err(fail(head.failure(ReplyFailure::Closed, &[]))),
                };
            }
            Ok(_) => {}
            Err(e) if is_timeout(&e) && deadline.is_some() => session
                .handle_timeout(now())
                .map_err(|e| fail(ReplyFailure::Session(e)))?,
            Err(e) => return Err(fail(ReplyFailure::Io(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_moves_forward_and_a_deadline_leaves_at_least_a_millisecond() {
        let a = now();
        std::thread::sleep(Duration::from_millis(5));
        assert!(now() > a);
        assert_eq!(wait_until(None), None);
        assert_eq!(
            wait_until(Some(Instant::ZERO)),
            Some(Duration::from_millis(1))
        );
        let later = now() + Duration::from_secs(60);
        assert!(wait_until(Some(later)).unwrap() > Duration::from_secs(59));
    }

    #[test]
    fn a_reply_head_tells_another_protocol_only_from_its_first_bytes() {
        let mut head = ReplyHead::default();
        head.keep(b"HT");
        assert!(matches!(
            head.failure(ReplyFailure::<()>::Closed, b"TP/1.1 400 Bad Request"),
            ReplyFailure::Foreign(ForeignProtocol::Http)
        ));
        let mut head = ReplyHead::default();
        head.keep(b"\x1c\x00\x00\x00{\"op\":\"exit\",\"code\":0}");
        head.keep(b"HTTP/1.1 200 OK");
        assert!(matches!(
            head.failure(ReplyFailure::<()>::Closed, b""),
            ReplyFailure::Closed
        ));
    }

    #[test]
    fn an_inbox_holds_what_came_before_as_one_read() {
        let inbox = Inbox::new(4, b"too long for four");
        assert_eq!(inbox.unread(), b"too long for four");
    }
}
