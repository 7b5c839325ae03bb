//! The async host of every session (feature `async-host`), written once over the
//! [`Session`] contract for firmware on an async executor (embassy, say): [`serve_request`] and
//! [`serve_connection`] drive a server's session, [`await_reply`] a client's, and
//! [`Outlet::send`] is the one transmit drain both use. They are the counterparts of
//! `unstick-std`'s blocking host, over [`embedded_io_async::Read`] and
//! [`embedded_io_async::Write`].
//!
//! What differs per protocol is the caller's: a server's actions, what passes through it (an
//! upload's bytes) and what it logs are a [`RequestWork`]; a client's replies go to a closure.
//! Time comes from the host's runtime through a [`Clock`]; every read waits for input or the
//! session's deadline ([`Session::poll_timeout`]), whichever comes first, and a deadline that
//! passed is handed to [`Session::handle_timeout`]. Buffers are the caller's slices: nothing is
//! allocated.
//!
//! # Cancellation: what the stream must promise
//!
//! When the deadline comes before input, the pending [`read`](embedded_io_async::Read::read)
//! future is dropped. The host has lost nothing then (it takes bytes only from a read that
//! completed), but the stream must lose nothing either: **a `read` future dropped before it
//! completes must leave every byte it did not return in the stream**, for the next read. That
//! is what `embedded-io-async` asks of implementations ("cancel-safe"); a UART driver that
//! moves bytes out of its ring buffer only when a read completes meets it, one that copies
//! bytes into the caller's buffer before the future is done does not. Writes are never
//! dropped: a send runs to its end (or its error) before the host waits again.
//!
//! # Example
//!
//! A file server answering a `stat` on an in-memory line: the host reads the request, carries
//! out the session's [`FileAction::Stat`](crate::files::FileAction::Stat) through its work,
//! sends the answer and returns once the request is over.
//!
//! ```
//! use core::convert::Infallible;
//! use core::pin::pin;
//! use core::task::{Context, Poll, Waker};
//! use unstick_core::asynch::host::{Clock, Closed, Inbox, Outlet, RequestWork, serve_request};
//! use unstick_core::files::{FileAction, FileRules, FileServerSession, IDLE_TIMEOUT, StatFound};
//! use unstick_core::time::Instant;
//!
//! /// One end of a connection: what the peer sent, and what is sent to it.
//! struct Line<'a> {
//!     incoming: &'a [u8],
//!     sent: Vec<u8>,
//! }
//! impl embedded_io_async::ErrorType for Line<'_> {
//!     type Error = Infallible;
//! }
//! impl embedded_io_async::Read for Line<'_> {
//!     async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
//!         let n = buf.len().min(self.incoming.len());
//!         buf[..n].copy_from_slice(&self.incoming[..n]);
//!         self.incoming = &self.incoming[n..];
//!         Ok(n)
//!     }
//! }
//! impl embedded_io_async::Write for Line<'_> {
//!     async fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
//!         self.sent.extend_from_slice(buf);
//!         Ok(buf.len())
//!     }
//!     async fn flush(&mut self) -> Result<(), Infallible> {
//!         Ok(())
//!     }
//! }
//!
//! /// The runtime's clock (on embassy: `embassy_time::Instant::now()` and `Timer::at`).
//! struct Stopped;
//! impl Clock for Stopped {
//!     fn now(&self) -> Instant {
//!         Instant::ZERO
//!     }
//!     async fn sleep_until(&mut self, _at: Instant) {
//!         core::future::pending().await
//!     }
//! }
//!
//! /// The protocol's actions on the device's storage, which here holds nothing.
//! struct Empty;
//! type Session<'a> = FileServerSession<'a, 512, 512>;
//! impl<'a, 'l, 'i> RequestWork<'i, Session<'a>, Line<'l>> for Empty {
//!     async fn act(
//!         &mut self,
//!         _out: &mut Outlet<'_, Line<'l>>,
//!         session: &mut Session<'a>,
//!     ) -> Result<(), Closed<Infallible>> {
//!         match session.poll_action() {
//!             Some(FileAction::Stat { .. }) => {
//!                 let found = StatFound { entry: None, partial_size: 0 };
//!                 session.handle_stat(Ok(found)).map_err(|_| Closed::Asked)
//!             }
//!             _ => Err(Closed::Asked),
//!         }
//!     }
//!     async fn take(&mut self, _: &mut Session<'a>, _: &'i [u8]) -> Result<(), Closed<Infallible>> {
//!         Err(Closed::Asked) // no uploads here
//!     }
//!     fn is_over(&self, session: &Session<'a>) -> bool {
//!         session.answered() > 0 && session.is_idle()
//!     }
//! }
//!
//! let header = br#"{"op":"stat","path":"a.txt","total_size":0}"#;
//! let mut request = (header.len() as i32).to_le_bytes().to_vec();
//! request.extend_from_slice(header);
//! let mut line = Line { incoming: &request, sent: Vec::new() };
//!
//! let rules = FileRules { token: None, max_file_size: 1 << 20, idle_timeout: IDLE_TIMEOUT };
//! let mut session = Session::new(rules);
//! let (mut read_buf, mut scratch) = ([0u8; 64], [0u8; 128]);
//! let mut inbox = Inbox::new(&mut read_buf).unwrap();
//! let mut out = Outlet::new(&mut line, &mut scratch).unwrap();
//! let (mut clock, mut work) = (Stopped, Empty);
//! let served = serve_request(&mut session, &mut out, &mut inbox, &mut clock, &mut work);
//! // Any executor runs it; this line never makes it wait, so polling it once is enough.
//! let Poll::Ready(served) = pin!(served).poll(&mut Context::from_waker(Waker::noop())) else {
//!     unreachable!()
//! };
//! assert!(served.is_ok());
//! drop(out);
//! assert!(line.sent.ends_with(br#"{"op":"stat","exists":false,"partial_size":0,"total_size":0}"#));
//! ```

use core::convert::Infallible;
use core::fmt;
use core::future::{Future, poll_fn};
use core::ops::Range;
use core::pin::pin;
use core::task::Poll;

use embedded_io_async::{Error as _, ErrorKind, ErrorType, Read, Write};

use crate::session::{Session, ShortBody, Transmit};
use crate::time::Instant;

/// The host runtime's monotonic clock, as the sessions see it. On embassy, `now` is
/// `embassy_time::Instant::now()` in milliseconds and `sleep_until` awaits `Timer::at`; a test
/// passes a fake clock that moves only when the test says.
///
/// ```
/// use unstick_core::asynch::host::Clock;
/// use unstick_core::time::Instant;
///
/// /// A clock that jumps to every deadline it is asked to wait for.
/// struct Jumping(Instant);
/// impl Clock for Jumping {
///     fn now(&self) -> Instant {
///         self.0
///     }
///     async fn sleep_until(&mut self, at: Instant) {
///         self.0 = self.0.max(at);
///     }
/// }
///
/// let mut clock = Jumping(Instant::ZERO);
/// let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
/// {
///     let sleep = core::pin::pin!(clock.sleep_until(Instant::from_millis(300)));
///     assert!(sleep.poll(&mut cx).is_ready());
/// }
/// assert_eq!(clock.now(), Instant::from_millis(300));
/// ```
// Hosts run on one executor thread (embassy's are single-threaded): the futures need no `Send`.
#[allow(async_fn_in_trait)]
pub trait Clock {
    /// The current instant.
    fn now(&self) -> Instant;

    /// Completes once `at` has come (at once if it has passed). The host drops this future
    /// when input comes first.
    async fn sleep_until(&mut self, at: Instant);
}

/// A buffer the host was given is empty: nothing could be read or written through it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmptyBuffer;

impl fmt::Display for EmptyBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the host's buffer is empty: give it room for at least one byte")
    }
}

impl core::error::Error for EmptyBuffer {}

/// Bytes read from the peer and not yet taken by the session, in a buffer the caller lends.
/// Bytes beyond one request stay here for the next.
#[derive(Debug)]
pub struct Inbox<'b> {
    buf: &'b mut [u8],
    unread: Range<usize>,
}

impl<'b> Inbox<'b> {
    /// An empty inbox reading into `buf` (as much as it holds at a time).
    ///
    /// ```
    /// use unstick_core::asynch::host::{EmptyBuffer, Inbox};
    ///
    /// let mut buf = [0u8; 256];
    /// assert!(Inbox::new(&mut buf).unwrap().unread().is_empty());
    /// assert_eq!(Inbox::new(&mut []).unwrap_err(), EmptyBuffer);
    /// ```
    pub fn new(buf: &'b mut [u8]) -> Result<Self, EmptyBuffer> {
        Self::holding(buf, 0)
    }

    /// An inbox whose first `received` bytes of `buf` were read before the session started
    /// (a request's head read to tell which protocol it is, say): they are fed first.
    /// `received` is cut to the buffer's length.
    ///
    /// ```
    /// use unstick_core::asynch::host::Inbox;
    ///
    /// let mut buf = *b"stat....";
    /// assert_eq!(Inbox::holding(&mut buf, 4).unwrap().unread(), b"stat");
    /// ```
    pub fn holding(buf: &'b mut [u8], received: usize) -> Result<Self, EmptyBuffer> {
        if buf.is_empty() {
            return Err(EmptyBuffer);
        }
        let received = received.min(buf.len());
        Ok(Inbox {
            buf,
            unread: 0..received,
        })
    }

    /// What was read and not taken yet.
    pub fn unread(&self) -> &[u8] {
        &self.buf[self.unread.clone()]
    }

    /// Drops what was read and not taken.
    pub fn clear(&mut self) {
        self.unread = 0..0;
    }

    /// Feeds what was read and not taken to `session` at `now`, keeping what it did not take.
    fn feed<T: Session>(
        &mut self,
        session: &mut T,
        now: Instant,
    ) -> Result<Option<T::Received<'_>>, T::Error> {
        let (used, received) = session.handle_input(now, &self.buf[self.unread.clone()])?;
        self.unread.start += used.min(self.unread.len());
        Ok(received)
    }

    /// Reads once from `stream`, giving up when `deadline` comes first.
    async fn fill<S: Read, C: Clock>(
        &mut self,
        stream: &mut S,
        clock: &mut C,
        deadline: Option<Instant>,
    ) -> Filled<S::Error> {
        loop {
            match read_until(stream, self.buf, clock, deadline).await {
                Some(Ok(0)) => return Filled::End,
                Some(Ok(n)) => {
                    self.unread = 0..n.min(self.buf.len());
                    return Filled::Bytes;
                }
                Some(Err(e)) if e.kind() == ErrorKind::Interrupted => {}
                Some(Err(e)) => return Filled::Failed(e),
                None => return Filled::Deadline,
            }
        }
    }
}

/// How one wait for input ended.
enum Filled<E> {
    /// Bytes came.
    Bytes,
    /// The peer closed its side.
    End,
    /// Reading failed.
    Failed(E),
    /// The session's deadline came first.
    Deadline,
}

/// One read into `buf`, or `None` once `deadline` has come (the read is then dropped; see the
/// [module documentation](self) for what the stream must promise). Bytes that are there win
/// over a deadline that has passed.
async fn read_until<S: Read, C: Clock>(
    stream: &mut S,
    buf: &mut [u8],
    clock: &mut C,
    deadline: Option<Instant>,
) -> Option<Result<usize, S::Error>> {
    let Some(at) = deadline else {
        return Some(stream.read(buf).await);
    };
    let mut read = pin!(stream.read(buf));
    let mut sleep = pin!(clock.sleep_until(at));
    poll_fn(|cx| {
        if let Poll::Ready(read) = read.as_mut().poll(cx) {
            return Poll::Ready(Some(read));
        }
        sleep.as_mut().poll(cx).map(|()| None)
    })
    .await
}

/// Why sending what a session handed out failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError<E> {
    /// Writing to the peer failed.
    Io(E),
    /// The body passed was shorter than the session announced; nothing of it was sent.
    ShortBody(ShortBody),
}

impl<E: fmt::Debug> fmt::Display for SendError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Io(e) => write!(f, "sending failed: {e:?}"),
            SendError::ShortBody(short) => short.fmt(f),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for SendError<E> {}

/// The sending half of a host: the peer's stream, and the scratch buffer the session writes
/// frame heads into. A [`RequestWork`] sends through it what its actions produce (a file's
/// data, a command's output).
#[derive(Debug)]
pub struct Outlet<'a, S> {
    stream: &'a mut S,
    scratch: &'a mut [u8],
}

impl<'a, S: Write> Outlet<'a, S> {
    /// Sends on `stream`, gathering frame heads in `scratch`. Any size works (a head larger
    /// than it leaves in pieces); one that holds a head and a small body sends both in one
    /// write.
    ///
    /// ```
    /// use unstick_core::asynch::host::{EmptyBuffer, Outlet};
    ///
    /// let mut sent = Vec::<u8>::new();
    /// let mut scratch = [0u8; 256];
    /// assert!(Outlet::new(&mut sent, &mut scratch).is_ok());
    /// assert_eq!(Outlet::new(&mut sent, &mut []).unwrap_err(), EmptyBuffer);
    /// ```
    pub fn new(stream: &'a mut S, scratch: &'a mut [u8]) -> Result<Self, EmptyBuffer> {
        if scratch.is_empty() {
            return Err(EmptyBuffer);
        }
        Ok(Outlet { stream, scratch })
    }

    /// The peer's stream.
    pub fn stream(&mut self) -> &mut S {
        self.stream
    }

    /// Sends everything `session` hands out ([`Session::poll_transmit`]) and flushes the
    /// stream: the bytes it writes into the scratch buffer, gathered, then a body it announces
    /// ([`Transmit::Body`]) taken from `body`, the body handed to the session's last `handle_*`
    /// call (`&[]` when there is none). A body shorter than announced is
    /// [`SendError::ShortBody`], and none of it is sent: a shorter frame would put the stream
    /// out of step.
    ///
    /// ```
    /// use unstick_core::asynch::host::Outlet;
    /// use unstick_core::shell::ShellClientSession;
    ///
    /// let mut session = ShellClientSession::<256>::new();
    /// let command = "uname -a";
    /// session.exec(command, None).unwrap();
    /// let (mut wire, mut scratch) = (Vec::<u8>::new(), [0u8; 64]);
    /// let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
    /// {
    ///     let mut out = Outlet::new(&mut wire, &mut scratch).unwrap();
    ///     // The command is the request's body: it is sent from where it is.
    ///     let send = core::pin::pin!(out.send(&mut session, command.as_bytes()));
    ///     assert!(matches!(send.poll(&mut cx), core::task::Poll::Ready(Ok(()))));
    /// }
    /// assert!(wire.ends_with(b"uname -a"));
    /// ```
    pub async fn send<T: Session>(
        &mut self,
        session: &mut T,
        body: &[u8],
    ) -> Result<(), SendError<S::Error>> {
        send_transmits(self.stream, self.scratch, body, |buf| {
            session.poll_transmit(buf)
        })
        .await
    }
}

/// Sends everything `poll` (a session's `poll_transmit`) hands out on `io`: bytes written into
/// `scratch` (which is not empty), gathered, and a body announced as [`Transmit::Body`] taken
/// from `body`, joined to its head in `scratch` when it fits there. Flushes at the end.
async fn send_transmits<W: Write>(
    io: &mut W,
    scratch: &mut [u8],
    body: &[u8],
    mut poll: impl FnMut(&mut [u8]) -> Option<Transmit>,
) -> Result<(), SendError<W::Error>> {
    let mut filled = 0;
    let mut wrote = false;
    loop {
        match poll(&mut scratch[filled..]) {
            Some(Transmit::Bytes(n)) => filled += n.min(scratch.len() - filled),
            Some(transmit @ Transmit::Body(_)) => {
                let body = transmit.resolve(&[], body).map_err(SendError::ShortBody)?;
                if let Some(room) = scratch.get_mut(filled..filled + body.len()) {
                    room.copy_from_slice(body);
                    filled += body.len();
                } else {
                    io.write_all(&scratch[..filled])
                        .await
                        .map_err(SendError::Io)?;
                    io.write_all(body).await.map_err(SendError::Io)?;
                    filled = 0;
                    wrote = true;
                }
            }
            None => break,
        }
        if filled == scratch.len() {
            io.write_all(scratch).await.map_err(SendError::Io)?;
            filled = 0;
            wrote = true;
        }
    }
    if filled > 0 {
        io.write_all(&scratch[..filled])
            .await
            .map_err(SendError::Io)?;
        wrote = true;
    }
    if wrote {
        io.flush().await.map_err(SendError::Io)?;
    }
    Ok(())
}

/// Why a server's host stopped serving a connection: it is to be closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed<E> {
    /// The session asked to close (its protocol's close action: the client went away, was
    /// refused for good, or stayed silent too long), or the [`RequestWork`] chose to.
    Asked,
    /// Reading from the peer failed. The session was told that input ended (a torn upload is
    /// kept for a resume) and then closed.
    Read(E),
    /// Sending to the peer failed.
    Send(SendError<E>),
}

impl<E> From<SendError<E>> for Closed<E> {
    fn from(e: SendError<E>) -> Self {
        Closed::Send(e)
    }
}

impl<E: fmt::Debug> fmt::Display for Closed<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Closed::Asked => f.write_str("the connection is closed as its session asked"),
            Closed::Read(e) => write!(f, "reading from the peer failed: {e:?}"),
            Closed::Send(e) => e.fmt(f),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for Closed<E> {}

/// What a server's host does for its session besides moving bytes: its protocol's actions,
/// what passes through it, what it logs and when a request is over. Its methods are async, so
/// that firmware can write flash or run work without blocking its executor.
///
/// `'i` is the life of what passes through ([`take`](Self::take)'s `received`, a slice of the
/// input): implement it for every `'i` (`impl<'i> RequestWork<'i, ...>`), as the hosts ask.
///
/// See the [module documentation](self) for an implementation.
// Hosts run on one executor thread (embassy's are single-threaded): the futures need no `Send`.
#[allow(async_fn_in_trait)]
pub trait RequestWork<'i, T: Session, S: ErrorType> {
    /// Carries out the session's [`poll_action`](Session::poll_action) (there is one) and
    /// reports its result to the session, sending what it produces through `out` (with the
    /// body it handed the session). `Err` closes the connection; the session's close action
    /// is answered with [`Closed::Asked`].
    async fn act(
        &mut self,
        out: &mut Outlet<'_, S>,
        session: &mut T,
    ) -> Result<(), Closed<S::Error>>;

    /// Takes what passed through the session from the input (an upload's bytes, to be
    /// written). `Err` closes the connection; a failure the session can answer (a write that
    /// failed) is reported to it instead.
    async fn take(
        &mut self,
        session: &mut T,
        received: T::Received<'i>,
    ) -> Result<(), Closed<S::Error>>;

    /// Records an event for the log (a refusal, a completed request). By default events are
    /// dropped.
    fn record(&mut self, session: &T, event: T::Event) {
        let _ = (session, event);
    }

    /// Whether the request is over, so that [`serve_request`] returns (say, once the session
    /// has answered one more request and is idle). [`serve_connection`] does not ask.
    fn is_over(&self, session: &T) -> bool;
}

/// Drives a server's `session` through one request: sends what it queues (through `out`),
/// records its events, carries out its actions and hands over what passes through it (through
/// `work`), and otherwise reads into `inbox`, waiting no longer than the session's deadline
/// (by `clock`). `Ok` once [`RequestWork::is_over`] says so; what was read beyond the request
/// stays in `inbox`. `Err` when the connection is to be closed.
///
/// See the [module documentation](self) for an example.
pub async fn serve_request<T, S, C, W>(
    session: &mut T,
    out: &mut Outlet<'_, S>,
    inbox: &mut Inbox<'_>,
    clock: &mut C,
    work: &mut W,
) -> Result<(), Closed<S::Error>>
where
    T: Session<Error = Infallible>,
    S: Read + Write,
    C: Clock,
    W: for<'i> RequestWork<'i, T, S>,
{
    serve(session, out, inbox, clock, work, true).await
}

/// Drives a server's `session` through every request of a connection, as [`serve_request`]
/// does one, until it is to be closed; returns why. The session's own rules end a connection
/// whose peer stays silent (its idle timeout) or goes away.
///
/// ```
/// # use core::convert::Infallible;
/// # use unstick_core::asynch::host::{Clock, Closed, Inbox, Outlet, RequestWork, serve_connection};
/// # use unstick_core::shell::{Dialect, ShellAction, ShellRules, ShellServerSession};
/// # use unstick_core::time::Instant;
/// # struct Line;
/// # impl embedded_io_async::ErrorType for Line { type Error = Infallible; }
/// # impl embedded_io_async::Read for Line {
/// #     async fn read(&mut self, _: &mut [u8]) -> Result<usize, Infallible> { Ok(0) }
/// # }
/// # impl embedded_io_async::Write for Line {
/// #     async fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> { Ok(buf.len()) }
/// #     async fn flush(&mut self) -> Result<(), Infallible> { Ok(()) }
/// # }
/// # struct Stopped;
/// # impl Clock for Stopped {
/// #     fn now(&self) -> Instant { Instant::ZERO }
/// #     async fn sleep_until(&mut self, _: Instant) { core::future::pending().await }
/// # }
/// /// Runs no command: the line's peer hangs up at once anyway.
/// struct NoShell;
/// impl<'a, 'i> RequestWork<'i, ShellServerSession<'a, 256>, Line> for NoShell {
///     async fn act(
///         &mut self,
///         _: &mut Outlet<'_, Line>,
///         session: &mut ShellServerSession<'a, 256>,
///     ) -> Result<(), Closed<Infallible>> {
///         match session.poll_action() {
///             Some(ShellAction::Run { .. }) => {
///                 session.handle_run_failed(unstick_core::shell::RunFailure::Spawn, "no shell here")
///                     .map_err(|_| Closed::Asked)
///             }
///             _ => Err(Closed::Asked),
///         }
///     }
///     async fn take(&mut self, _: &mut ShellServerSession<'a, 256>, nothing: Infallible)
///         -> Result<(), Closed<Infallible>> {
///         match nothing {}
///     }
///     fn is_over(&self, session: &ShellServerSession<'a, 256>) -> bool {
///         session.is_idle()
///     }
/// }
///
/// let mut command = [0u8; 256];
/// let mut session = ShellServerSession::<256>::new(ShellRules::default(), Dialect::Framed, &mut command);
/// let (mut read_buf, mut scratch) = ([0u8; 64], [0u8; 128]);
/// let mut line = Line;
/// let mut inbox = Inbox::new(&mut read_buf).unwrap();
/// let mut out = Outlet::new(&mut line, &mut scratch).unwrap();
/// let (mut clock, mut work) = (Stopped, NoShell);
/// let served = serve_connection(&mut session, &mut out, &mut inbox, &mut clock, &mut work);
/// let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
/// // The peer's end of input closes the connection.
/// assert_eq!(core::pin::pin!(served).poll(&mut cx), core::task::Poll::Ready(Closed::Asked));
/// ```
pub async fn serve_connection<T, S, C, W>(
    session: &mut T,
    out: &mut Outlet<'_, S>,
    inbox: &mut Inbox<'_>,
    clock: &mut C,
    work: &mut W,
) -> Closed<S::Error>
where
    T: Session<Error = Infallible>,
    S: Read + Write,
    C: Clock,
    W: for<'i> RequestWork<'i, T, S>,
{
    loop {
        if let Err(closed) = serve(session, out, inbox, clock, work, false).await {
            return closed;
        }
    }
}

/// The server host's loop; with `one_request`, it returns once `work` says the request is
/// over.
async fn serve<T, S, C, W>(
    session: &mut T,
    out: &mut Outlet<'_, S>,
    inbox: &mut Inbox<'_>,
    clock: &mut C,
    work: &mut W,
    one_request: bool,
) -> Result<(), Closed<S::Error>>
where
    T: Session<Error = Infallible>,
    S: Read + Write,
    C: Clock,
    W: for<'i> RequestWork<'i, T, S>,
{
    // Why input ended, when it was a failure: the close that follows is for it.
    let mut read_failed = None;
    loop {
        // Events first: what a request leaves behind is dealt with before its answer leaves.
        while let Some(event) = session.poll_event() {
            work.record(session, event);
        }
        out.send(session, &[]).await?;
        if session.poll_action().is_some() {
            if let Err(closed) = work.act(out, session).await {
                return Err(match (closed, read_failed.take()) {
                    (Closed::Asked, Some(e)) => Closed::Read(e),
                    (closed, _) => closed,
                });
            }
            continue;
        }
        if one_request && work.is_over(session) {
            return Ok(());
        }
        if !inbox.unread.is_empty() {
            let Ok(received) = inbox.feed(session, clock.now());
            if let Some(received) = received {
                work.take(session, received).await?;
            }
            continue;
        }
        let deadline = session.poll_timeout(clock.now());
        match inbox.fill(out.stream, clock, deadline).await {
            Filled::Bytes => {}
            Filled::End => {
                let Ok(_) = session.handle_eof();
            }
            // A broken connection is an end of input: a torn upload is kept for a resume.
            Filled::Failed(e) => {
                read_failed = Some(e);
                let Ok(_) = session.handle_eof();
            }
            Filled::Deadline => {
                let Ok(()) = session.handle_timeout(clock.now());
            }
        }
    }
}

/// How a client's wait for a reply ended without one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyError<E, R> {
    /// The session found the server's bytes wrong, or the server silent for too long (its
    /// reply timeout).
    Session(E),
    /// The server closed the connection with no reply due that the session could end.
    Closed,
    /// Reading failed.
    Read(R),
}

impl<E: fmt::Display, R: fmt::Debug> fmt::Display for ReplyError<E, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::Session(e) => e.fmt(f),
            ReplyError::Closed => f.write_str("the server closed the connection before replying"),
            ReplyError::Read(e) => write!(f, "reading the reply failed: {e:?}"),
        }
    }
}

impl<E: fmt::Display + fmt::Debug, R: fmt::Debug> core::error::Error for ReplyError<E, R> {}

/// Drives a client's `session` through one reply read from `stream` into `inbox`: hands every
/// piece it gives ([`Session::Received`]) to `on_received` until that returns a value, which is
/// returned. Reads wait no longer than the session's deadline (its reply timeout), by `clock`;
/// what was read beyond the reply stays in `inbox`.
///
/// Send the request first ([`Outlet::send`]). The callback is async, so that firmware can
/// write a download to flash as it comes; to give up with an error of its own, let it return
/// `Some(Err(..))`.
///
/// ```
/// use core::convert::Infallible;
/// use unstick_core::asynch::host::{Clock, Inbox, await_reply};
/// use unstick_core::shell::{ShellClientSession, ShellReply};
/// use unstick_core::time::Instant;
///
/// # struct Stopped;
/// # impl Clock for Stopped {
/// #     fn now(&self) -> Instant { Instant::ZERO }
/// #     async fn sleep_until(&mut self, _: Instant) { core::future::pending().await }
/// # }
/// let mut session = ShellClientSession::<256>::new();
/// session.exec("echo hi", None).unwrap();
/// // (the request is sent here; the server answers with output and the exit frame)
/// let mut reply = Vec::new();
/// for frame in [&br#"{"op":"stdout","total_size":3}"#[..], br#"{"op":"exit","code":0,"total_size":0}"#] {
///     reply.extend_from_slice(&(frame.len() as i32).to_le_bytes());
///     reply.extend_from_slice(frame);
///     if frame.starts_with(br#"{"op":"stdout""#) {
///         reply.extend_from_slice(b"hi\n");
///     }
/// }
/// let mut stream = &reply[..];
/// let mut clock = Stopped;
/// let mut buf = [0u8; 16];
/// let mut inbox = Inbox::new(&mut buf).unwrap();
/// let mut output = Vec::new();
/// let exit = await_reply(&mut session, &mut stream, &mut inbox, &mut clock, async |_, reply| {
///     match reply {
///         ShellReply::Output { bytes, .. } => {
///             output.extend_from_slice(bytes);
///             None
///         }
///         ShellReply::Exit(report) => Some(Ok(report)),
///         ShellReply::Refused { code, .. } => Some(Err(code)),
///     }
/// });
/// let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
/// let core::task::Poll::Ready(exit) = core::pin::pin!(exit).poll(&mut cx) else { unreachable!() };
/// assert_eq!(exit.unwrap().unwrap().termination, unstick_core::shell::Termination::Exited(0));
/// assert_eq!(output, b"hi\n");
/// ```
pub async fn await_reply<T, S, C, R>(
    session: &mut T,
    stream: &mut S,
    inbox: &mut Inbox<'_>,
    clock: &mut C,
    mut on_received: impl AsyncFnMut(&mut T, T::Received<'_>) -> Option<R>,
) -> Result<R, ReplyError<T::Error, S::Error>>
where
    T: Session,
    S: Read,
    C: Clock,
{
    loop {
        if !inbox.unread.is_empty() {
            let received = inbox
                .feed(session, clock.now())
                .map_err(ReplyError::Session)?;
            if let Some(received) = received
                && let Some(done) = on_received(session, received).await
            {
                return Ok(done);
            }
            continue;
        }
        let deadline = session.poll_timeout(clock.now());
        match inbox.fill(stream, clock, deadline).await {
            Filled::Bytes => {}
            Filled::End => {
                let last = session.handle_eof().map_err(ReplyError::Session)?;
                return match last {
                    Some(received) => on_received(session, received)
                        .await
                        .ok_or(ReplyError::Closed),
                    None => Err(ReplyError::Closed),
                };
            }
            Filled::Failed(e) => return Err(ReplyError::Read(e)),
            Filled::Deadline => session
                .handle_timeout(clock.now())
                .map_err(ReplyError::Session)?,
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use core::task::{Context, Waker};
    use std::vec::Vec;

    /// Polls `future` once: everything here is ready at once.
    fn now_or_never<F: Future>(future: F) -> F::Output {
        match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(out) => out,
            Poll::Pending => panic!("the future waited"),
        }
    }

    /// A stream that records each write apart.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl ErrorType for Writes {
        type Error = Infallible;
    }

    impl Write for Writes {
        async fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
            self.0.push(buf.to_vec());
            Ok(buf.len())
        }

        async fn flush(&mut self) -> Result<(), Infallible> {
            Ok(())
        }
    }

    /// A shell client that has queued `command` (its request's body), and the request's
    /// head alone.
    fn exec(command: &str) -> (crate::shell::ShellClientSession<256>, Vec<u8>) {
        let mut session = crate::shell::ShellClientSession::new();
        session.exec(command, None).unwrap();
        let mut probe = crate::shell::ShellClientSession::<256>::new();
        probe.exec(command, None).unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 256];
        while let Some(Transmit::Bytes(n)) = probe.poll_transmit(&mut buf) {
            head.extend_from_slice(&buf[..n]);
        }
        (session, head)
    }

    /// Sends what `session` queued, `body` its body, through a scratch buffer of `scratch`
    /// bytes.
    fn send(
        session: &mut impl Session,
        body: &[u8],
        scratch: usize,
    ) -> (Writes, Result<(), SendError<Infallible>>) {
        let mut wire = Writes::default();
        let mut scratch = std::vec![0u8; scratch];
        let mut out = Outlet::new(&mut wire, &mut scratch).unwrap();
        let sent = now_or_never(out.send(session, body));
        (wire, sent)
    }

    #[test]
    fn a_head_larger_than_the_scratch_buffer_and_its_body_leave_in_order() {
        let command = "a command longer than the scratch buffer";
        let (mut session, head) = exec(command);
        assert!(head.len() > 16);
        let (wire, sent) = send(&mut session, command.as_bytes(), 16);
        sent.unwrap();
        assert_eq!(wire.0.concat(), [&head[..], command.as_bytes()].concat());
        assert!(
            wire.0.iter().all(|w| w.len() <= command.len()),
            "{:?}",
            wire.0
        );
        assert!(wire.0.len() > 2, "{:?}", wire.0);
    }

    #[test]
    fn a_small_body_leaves_in_the_same_write_as_its_head() {
        let (mut session, head) = exec("ls");
        let (wire, sent) = send(&mut session, b"ls", 256);
        sent.unwrap();
        assert_eq!(wire.0, [[&head[..], b"ls"].concat()]);
    }

    #[test]
    fn a_body_shorter_than_announced_is_an_error_and_nothing_of_it_is_sent() {
        let (mut session, _) = exec("uname -a");
        let (wire, sent) = send(&mut session, b"uname", 16);
        assert_eq!(
            sent,
            Err(SendError::ShortBody(ShortBody {
                announced: 8,
                given: 5
            }))
        );
        assert!(!wire.0.concat().ends_with(b"uname"), "{:?}", wire.0);
    }

    /// A clock that never moves and a sleep that is over at once.
    struct Passed;

    impl Clock for Passed {
        fn now(&self) -> Instant {
            Instant::ZERO
        }

        async fn sleep_until(&mut self, _: Instant) {}
    }

    #[test]
    fn bytes_that_are_there_win_over_a_deadline_that_has_passed() {
        let mut stream = &b"abc"[..];
        let mut buf = [0u8; 8];
        let at = Some(Instant::ZERO);
        let read = now_or_never(read_until(&mut stream, &mut buf, &mut Passed, at));
        assert_eq!(read, Some(Ok(3)));
        // Nothing there: the deadline ends the wait, and the stream is not read.
        let mut silent = Silent;
        let read = now_or_never(read_until(&mut silent, &mut buf, &mut Passed, at));
        assert_eq!(read, None);
    }

    /// A stream with nothing to read yet.
    struct Silent;

    impl ErrorType for Silent {
        type Error = Infallible;
    }

    impl Read for Silent {
        async fn read(&mut self, _: &mut [u8]) -> Result<usize, Infallible> {
            core::future::pending().await
        }
    }
}
