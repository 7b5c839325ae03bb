//! The lobby: where every connection of a server waits while no request of its is being
//! served. One thread holds them all (with `epoll(7)` on Linux, kqueue or IOCP elsewhere), so
//! a waiting connection costs a socket and the bytes it has sent, never a thread or a request
//! slot.
//!
//! A connection's life:
//!
//! 1. **Accepted** into the lobby. It has the *login grace* to send the opening of its first
//!    request (trickling bytes does not extend it); the server's [`Service::admit`] looks at
//!    the bytes as they come and says when a request is ready to serve, or refuses them (a
//!    foreign protocol, a client kind the server does not serve).
//! 2. **Served**: a ready request takes a [`Slot`] and a worker thread,
//!    which runs [`Service::serve`] for that one request and hands the connection back.
//!    With no slot free, it queues for one (first come, first served) for [`SLOT_WAIT`], then
//!    the client is told `busy` and when to retry.
//! 3. **Waiting** again, up to the idle timeout, for its next request; bytes it already sent
//!    (a pipelined request) are judged at once.
//! 4. **Closing**: after a refusal or a last reply, the lobby stops sending and reads what the
//!    client still sends for a moment, so the reply is not lost to a reset, then closes.
//!
//! Caps: at most `max_waiting` connections wait in all and `max_waiting_per_address` per client
//! address; past either, the connection that has waited longest is closed to make room, so a
//! flood of silent connections can delay no newcomer by more than its own size.
//!
//! Failed tokens: a request the service refused for its token ([`Connection::token_refused`])
//! counts against its client's address in the [`Penalties`]; while an address is penalized,
//! its ready requests are refused by the lobby itself (`penalized`, in the client's own form)
//! without a slot, a worker or a look at their token.
//!
//! A [`Shutdown`] request stops the accepting, closes the waiting connections, lets the
//! requests in progress finish within the shutdown grace, then cuts off the rest
//! ([`Service::stop_now`] and every request's socket shut down) and returns.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;
use std::time::{Duration, Instant};

use super::shutdown::Shutdown;
use unstick_core::{Event, FrameDecoder, Profile};

use super::client_socket::ClientSocket;
use super::penalties::{AddressKey, Penalties, penalized_message};
use super::slots::{NoSlot, Slot, Slots};
pub use super::tls_front::Handoff;
use super::workers::Workers;
use super::{CLOSING_LINGER, ErrorCode, HEADER_CAP, deadline_after};
use crate::readiness::{Readiness, Waker};

/// Most bytes the lobby holds for one connection before its request must be judged ready or
/// refused (a request's header is at most [`HEADER_CAP`] bytes).
pub const MAX_RECEIVED: usize = 16 * 1024;

/// How long a ready request waits for a slot before the client is told `busy`: a burst that
/// outruns the slots for a moment is served, not refused.
pub const SLOT_WAIT: Duration = Duration::from_secs(1);

/// How long the requests still running after the shutdown grace have to end once their sockets
/// are shut down.
const CUT_OFF_WAIT: Duration = Duration::from_secs(5);

/// The readiness key of the listener; connections use their ids, which stay below it.
const LISTENER_KEY: usize = usize::MAX - 1;

/// Most connections accepted in one turn of the loop, so that the waiting ones are read too.
const ACCEPT_BATCH: usize = 256;

/// How the lobby treats connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LobbyConfig {
    /// Time a new connection has to present its first request.
    pub login_grace: Duration,
    /// Time a connection may wait between requests.
    pub idle_timeout: Duration,
    /// Requests served at once.
    pub max_active: usize,
    /// Requests served at once for one client address.
    pub max_active_per_address: usize,
    /// Connections waiting at once.
    pub max_waiting: usize,
    /// Connections waiting at once from one client address.
    pub max_waiting_per_address: usize,
    /// Time the requests in progress have to finish after a shutdown request.
    pub shutdown_grace: Duration,
}

impl Default for LobbyConfig {
    fn default() -> Self {
        LobbyConfig {
            login_grace: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(300),
            max_active: 64,
            max_active_per_address: 64,
            max_waiting: 4096,
            max_waiting_per_address: 256,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// A client connection and what the lobby knows of it.
#[derive(Debug)]
pub struct Connection<M> {
    /// The socket (blocking while a worker serves it).
    pub stream: ClientSocket,
    /// The client's address.
    pub peer: SocketAddr,
    /// What the service has learnt about the client (say, which protocol it speaks).
    pub mode: M,
    /// Bytes received and not yet consumed by a request.
    pub received: Vec<u8>,
    /// Requests served on this connection so far.
    pub requests: u64,
    /// Set by the service when it refused the last request for a missing or wrong token; the
    /// lobby counts it against the client's address (see [`Penalties`]) and clears it.
    pub token_refused: bool,
}

/// What a service makes of a waiting connection's bytes.
#[derive(Debug)]
pub enum Admission<M> {
    /// Not enough to tell: wait for more. With a pause, [`Service::admit`] is asked again with
    /// `paused` set when no byte arrives for that long.
    Wait {
        /// How long a silence makes the bytes final.
        pause: Option<Duration>,
    },
    /// A request starts here: serve it, with the connection in this mode.
    Serve(M),
    /// Refused: log `code` and `reason`, send `reply`, close.
    Refuse {
        /// Why, for the log.
        code: ErrorCode,
        /// What was wrong, for the log.
        reason: String,
        /// Bytes to send the client before closing (may be empty).
        reply: Vec<u8>,
    },
}

/// What becomes of a connection after a request.
#[derive(Debug)]
pub enum Handback<M> {
    /// Wait in the lobby for the next request.
    Wait(Connection<M>),
    /// Close it (after a short linger that keeps the last reply from being lost to a reset).
    Close(Connection<M>),
}

/// A server's protocol, as the lobby drives it.
pub trait Service: Send + Sync + 'static {
    /// Per-connection state the service keeps across requests.
    type Mode: Copy + Default + Send + fmt::Debug + 'static;

    /// The server's name in log lines (`shell`, `ftp`).
    const NAME: &'static str;

    /// Looks at the bytes a waiting connection has sent (its mode says what came before).
    /// Must not block: it runs on the lobby's thread.
    fn admit(&self, mode: Self::Mode, received: &[u8], paused: bool) -> Admission<Self::Mode>;

    /// Serves the request that starts at `conn.received`, on a worker thread, with the socket in
    /// blocking mode.
    fn serve(&self, conn: Connection<Self::Mode>) -> Handback<Self::Mode>;

    /// The bytes that tell a client in `mode` its ready request is refused by the lobby with
    /// `code`: [`ErrorCode::Busy`] (no slot is free) or [`ErrorCode::Penalized`] (its address
    /// sent too many failed tokens); `message` says why and when to retry.
    fn refusal_reply(&self, mode: Self::Mode, code: ErrorCode, message: &str) -> Vec<u8>;

    /// The bytes that tell a client in `mode`, which sent `received` but no complete request,
    /// that its time ran out.
    fn timeout_reply(&self, mode: Self::Mode, received: &[u8], message: &str) -> Vec<u8>;

    /// Ends whatever the requests in progress started that outlives their sockets (say,
    /// commands' process groups). Called when the shutdown grace runs out.
    fn stop_now(&self) {}
}

/// Where a lobby's connections come from.
#[derive(Debug)]
pub enum Entrance {
    /// Accepted from a listening socket.
    Listener(TcpListener),
    /// Handed over by a TLS front, which owns the listening socket.
    Front(Handoff),
}

impl Entrance {
    /// Has `readiness` report a waiting connection: the listener is watched under
    /// [`LISTENER_KEY`]; a front wakes the wait when it hands a connection over.
    fn watch(&self, readiness: &mut Readiness) -> io::Result<()> {
        match self {
            Entrance::Listener(listener) => readiness.watch(listener, LISTENER_KEY),
            Entrance::Front(handoff) => {
                let waker = readiness.waker();
                handoff.wake_with(waker.clone());
                // What the front handed over before is taken on the next turn.
                waker.wake();
                Ok(())
            }
        }
    }

    /// Stops watching the listener.
    fn unwatch(&self, readiness: &mut Readiness) {
        if let Entrance::Listener(listener) = self {
            readiness.unwatch(listener);
        }
    }
}

/// Serves the connections that come through `entrance` with `service` until `shutdown` is
/// requested and the requests in progress have ended (or been cut off at the shutdown grace).
/// Failed tokens are counted in `penalties` (which other lobbies of the process may share).
pub fn serve<S: Service>(
    entrance: Entrance,
    service: Arc<S>,
    config: LobbyConfig,
    penalties: Penalties,
    shutdown: &Shutdown,
) -> io::Result<()> {
    if let Entrance::Listener(listener) = &entrance {
        listener.set_nonblocking(true)?;
    }
    let mut readiness = Readiness::new()?;
    let _registration = shutdown.add_waker(readiness.waker());
    let (returns_tx, returns) = mpsc::channel();
    entrance.watch(&mut readiness)?;
    let mut lobby = Lobby {
        waker: readiness.waker(),
        readiness,
        slots: Slots::new(
            config.max_active.max(1),
            config.max_active_per_address.max(1),
        ),
        service,
        config,
        penalties,
        entrance: Some(entrance),
        accept_paused_until: None,
        waiting: HashMap::new(),
        order: VecDeque::new(),
        by_address: HashMap::new(),
        next_id: 0,
        lingering: Arc::new(AtomicUsize::new(0)),
        shutdown: shutdown.clone(),
        queued: VecDeque::new(),
        queued_count: Arc::new(AtomicUsize::new(0)),
        timers: BinaryHeap::new(),
        ready_keys: Vec::new(),
        workers: Workers::new(format!("unstick-{}", S::NAME)),
        returns_tx,
        returns,
        stop: None,
    };
    lobby.run(shutdown);
    Ok(())
}

/// A connection in the lobby.
struct Waiting<M> {
    conn: Connection<M>,
    phase: Phase,
    /// When it must have presented a request (or, closing, when it is dropped).
    deadline: Instant,
    /// When a silence makes its bytes final (see [`Admission::Wait`]).
    pause_until: Option<Instant>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for (the rest of) a request.
    Request,
    /// Its request is ready and waits for a free slot (until the deadline; then `busy`).
    Queued,
    /// Sending nothing more; what arrives is dropped until the client closes or the deadline.
    Closing,
}

/// Where a stop stands.
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// Requests in progress may finish until `until`.
    Grace { until: Instant },
    /// Their sockets were shut down; the lobby returns once they end or at `until`.
    CutOff { until: Instant },
}

/// The waiting connections of one address, oldest first. Ids of connections that have left
/// stay until they reach the front (or the queue is compacted).
#[derive(Default)]
struct AddressQueue {
    waiting: usize,
    ids: VecDeque<usize>,
}

struct Lobby<S: Service> {
    /// First, so that it is dropped before the sockets it may still watch (the waiting
    /// connections', the listener).
    readiness: Readiness,
    /// Wakes the lobby's wait: a worker that hands a connection back.
    waker: Waker,
    service: Arc<S>,
    config: LobbyConfig,
    penalties: Penalties,
    slots: Slots,
    entrance: Option<Entrance>,
    /// Set when accepting failed for want of descriptors with nothing left to evict.
    accept_paused_until: Option<Instant>,
    waiting: HashMap<usize, Waiting<S::Mode>>,
    /// Ids in the order they entered the lobby (with stale ones, skipped when met).
    order: VecDeque<usize>,
    by_address: HashMap<IpAddr, AddressQueue>,
    next_id: usize,
    /// Workers waiting for a connection's next request themselves (see [`Serving`]).
    lingering: Arc<AtomicUsize>,
    shutdown: Shutdown,
    /// Ids of ready requests waiting for a slot, oldest first.
    queued: VecDeque<usize>,
    /// Its length, for workers: while requests are queued, a worker hands its connection's next
    /// request to the lobby instead of taking a slot ahead of them.
    queued_count: Arc<AtomicUsize>,
    /// Deadlines and pauses of waiting connections, soonest first.
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    /// The keys the last wait found ready (kept to reuse its allocation).
    ready_keys: Vec<usize>,
    workers: Workers,
    returns_tx: Sender<Handback<S::Mode>>,
    returns: Receiver<Handback<S::Mode>>,
    stop: Option<Stop>,
}

impl<S: Service> Lobby<S> {
    fn run(&mut self, shutdown: &Shutdown) {
        loop {
            if shutdown.is_requested() && self.stop.is_none() {
                self.begin_stop();
            }
            if let Some(stop) = self.stop
                && self.stop_progress(stop)
            {
                return;
            }
            let ready = match self.poll() {
                Ok(ready) => ready,
                Err(e) => {
                    tracing::error!(server = S::NAME, error = %e, "poll failed");
                    thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            self.take_returns();
            if ready.listener {
                self.accept_batch();
            }
            for id in ready.connections {
                self.on_readable(id);
            }
            self.on_timers();
        }
    }

    /// Waits for the listener (while accepting), every waiting connection and a wake-up, up to
    /// the nearest timer.
    fn poll(&mut self) -> io::Result<Ready> {
        let mut next_timer: Option<Instant> = self.accept_paused_until;
        let mut earliest = |t: Instant| next_timer = Some(next_timer.map_or(t, |n| n.min(t)));
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if self.timer_is_set(at, id) {
                earliest(at);
                break;
            }
            self.timers.pop();
        }
        match self.stop {
            Some(Stop::Grace { until } | Stop::CutOff { until }) => earliest(until),
            None => {}
        }
        let timeout = next_timer.map(|t| t.saturating_duration_since(Instant::now()));
        let mut keys = std::mem::take(&mut self.ready_keys);
        let waited = self.readiness.wait(timeout, &mut keys);
        if let Some(until) = self.accept_paused_until
            && Instant::now() >= until
        {
            self.accept_paused_until = None;
            if let Some(entrance) = &self.entrance {
                let _ = entrance.watch(&mut self.readiness);
            }
        }
        let ready = Ready {
            // A front's connections come with a wake-up, not a readable socket: its channel is
            // looked at on every turn.
            listener: keys.contains(&LISTENER_KEY)
                || matches!(self.entrance, Some(Entrance::Front(_))),
            connections: keys
                .iter()
                .copied()
                .filter(|&key| key != LISTENER_KEY)
                .collect(),
        };
        self.ready_keys = keys;
        waited.map(|()| ready)
    }

    /// Takes back the connections whose request has been served.
    fn take_returns(&mut self) {
        while let Ok(handback) = self.returns.try_recv() {
            match handback {
                Handback::Wait(mut conn) if self.stop.is_none() => {
                    if conn.stream.set_nonblocking(true).is_err() {
                        log_closed(S::NAME, &conn, "socket error");
                        continue;
                    }
                    tracing::debug!(
                        server = S::NAME,
                        peer = %conn.peer,
                        requests = conn.requests,
                        "waiting for the next request"
                    );
                    let deadline = deadline_after(self.config.idle_timeout);
                    // What TLS decrypted beyond the last request is in no socket to poll.
                    let buffered = conn.stream.has_buffered_input();
                    let id = self.enter(conn, Phase::Request, deadline);
                    if buffered {
                        self.on_readable(id);
                    } else if self
                        .waiting
                        .get(&id)
                        .is_some_and(|w| !w.conn.received.is_empty())
                    {
                        self.judge(id, false);
                    }
                }
                Handback::Wait(conn) => log_closed(S::NAME, &conn, "server shutting down"),
                Handback::Close(conn) => self.close_gracefully(conn),
            }
        }
        // Each return freed a slot.
        if !self.queued.is_empty() {
            self.start_queued();
        }
    }

    /// Accepts what the listener has (or takes what the TLS front hands over), up to a batch.
    fn accept_batch(&mut self) {
        if let Some(Entrance::Front(handoff)) = &self.entrance {
            let handed: Vec<_> = handoff.connections.try_iter().collect();
            for (stream, peer) in handed {
                self.admit_new(stream, peer);
            }
            return;
        }
        for _ in 0..ACCEPT_BATCH {
            let Some(Entrance::Listener(listener)) = &self.entrance else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => self.admit_new(ClientSocket::Plain(stream), peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_out_of_descriptors(&e) => {
                    // Make room by closing the connection that has waited longest; with
                    // nothing to close, stop accepting for a moment.
                    if !self.evict_oldest(None) {
                        tracing::warn!(server = S::NAME, error = %e, "cannot accept: out of descriptors");
                        if let Some(entrance) = &self.entrance {
                            entrance.unwatch(&mut self.readiness);
                        }
                        self.accept_paused_until = Some(Instant::now() + Duration::from_millis(50));
                        return;
                    }
                }
                // A connection reset before it was accepted, and the like.
                Err(e) => {
                    tracing::debug!(server = S::NAME, error = %e, "accept failed");
                    return;
                }
            }
        }
    }

    /// Takes a new connection in.
    fn admit_new(&mut self, mut stream: ClientSocket, peer: SocketAddr) {
        if stream.set_nonblocking(true).is_err() || stream.tcp().set_nodelay(true).is_err() {
            return;
        }
        // A penalized address's attempts are not logged one by one: its penalty was, once.
        if self.penalties.time_left(peer.ip()).is_some() {
            tracing::debug!(server = S::NAME, peer = %peer, "connection opened (penalized address)");
        } else {
            tracing::info!(server = S::NAME, peer = %peer, "connection opened");
        }
        let address = peer.ip();
        let from_address = self.by_address.get(&address).map_or(0, |q| q.waiting);
        if from_address >= self.config.max_waiting_per_address.max(1) {
            self.evict_oldest(Some(address));
        }
        if self.waiting.len() >= self.config.max_waiting.max(1) {
            self.evict_oldest(None);
        }
        // A TLS client's first request can come with its handshake, read with it.
        let buffered = stream.has_buffered_input();
        let conn = Connection {
            stream,
            peer,
            mode: S::Mode::default(),
            received: Vec::new(),
            requests: 0,
            token_refused: false,
        };
        let deadline = deadline_after(self.config.login_grace);
        let id = self.enter(conn, Phase::Request, deadline);
        if buffered {
            self.on_readable(id);
        }
    }

    /// Whether the timer `(at, id)` is still a waiting connection's deadline or pause.
    fn timer_is_set(&self, at: Instant, id: usize) -> bool {
        self.waiting
            .get(&id)
            .is_some_and(|w| w.deadline == at || w.pause_until == Some(at))
    }

    /// Sets a timer for connection `id` at `at` (its deadline or pause; timers of connections
    /// that left, or of pauses since replaced, are skipped when met).
    fn set_timer(&mut self, at: Instant, id: usize) {
        if self.timers.len() > 4 * self.waiting.len() + 64 {
            let waiting = &self.waiting;
            self.timers.retain(|&Reverse((at, id))| {
                waiting
                    .get(&id)
                    .is_some_and(|w| w.deadline == at || w.pause_until == Some(at))
            });
        }
        self.timers.push(Reverse((at, id)));
    }

    fn enter(&mut self, conn: Connection<S::Mode>, phase: Phase, deadline: Instant) -> usize {
        let id = self.next_id;
        // Below the listener's key; an id comes round again only after that many connections.
        self.next_id = (self.next_id + 1) % LISTENER_KEY;
        self.set_timer(deadline, id);
        let queue = self.by_address.entry(conn.peer.ip()).or_default();
        queue.waiting += 1;
        queue.ids.push_back(id);
        if queue.ids.len() > 2 * queue.waiting + 16 {
            let waiting = &self.waiting;
            queue.ids.retain(|i| *i == id || waiting.contains_key(i));
        }
        self.order.push_back(id);
        if self.order.len() > 2 * self.waiting.len() + 64 {
            let waiting = &self.waiting;
            self.order.retain(|i| *i == id || waiting.contains_key(i));
        }
        // A queued request is not read: its further bytes (a body, a pipelined request, the end
        // of its input) stay in the socket for its worker.
        if phase != Phase::Queued
            && let Err(e) = self.readiness.watch(conn.stream.tcp(), id)
        {
            // Unwatched, it still ends at its deadline.
            tracing::warn!(server = S::NAME, peer = %conn.peer, error = %e, "cannot watch a connection");
        }
        self.waiting.insert(
            id,
            Waiting {
                conn,
                phase,
                deadline,
                pause_until: None,
            },
        );
        id
    }

    /// Takes a connection out of the lobby.
    fn leave(&mut self, id: usize) -> Option<Waiting<S::Mode>> {
        let w = self.waiting.remove(&id)?;
        self.readiness.unwatch(w.conn.stream.tcp());
        let address = w.conn.peer.ip();
        if let Some(queue) = self.by_address.get_mut(&address) {
            queue.waiting -= 1;
            if queue.waiting == 0 {
                self.by_address.remove(&address);
            }
        }
        Some(w)
    }

    /// Closes the connection that has waited longest (of `address`, or of all); `false` when
    /// there is none.
    fn evict_oldest(&mut self, address: Option<IpAddr>) -> bool {
        let oldest = match address {
            Some(address) => {
                let Some(queue) = self.by_address.get_mut(&address) else {
                    return false;
                };
                pop_live(&mut queue.ids, &self.waiting)
            }
            None => pop_live(&mut self.order, &self.waiting),
        };
        let Some(w) = oldest.and_then(|id| self.leave(id)) else {
            return false;
        };
        log_closed(
            S::NAME,
            &w.conn,
            "evicted: the connection that waited longest made room for a new one",
        );
        true
    }

    fn on_readable(&mut self, id: usize) {
        let Some(w) = self.waiting.get_mut(&id) else {
            return;
        };
        let phase = w.phase;
        let ended = match read_available(w) {
            Ok(Input::More) if phase == Phase::Request => return self.judge(id, false),
            // A queued request's further bytes (a pipelined request) wait with it.
            Ok(Input::More) => return,
            // What a client sent before closing its side is still a request: a seed upload
            // ends that way (a shell command is killed at once, as its client is gone).
            Ok(Input::Ended) if phase == Phase::Request && !w.conn.received.is_empty() => {
                self.judge(id, true);
                "closed by the client before its request was complete"
            }
            Ok(Input::Ended) => "closed by the client",
            Err(_) => "connection reset",
        };
        if let Some(w) = self.waiting.get(&id)
            && w.phase == phase
        {
            let w = self.leave(id).expect("present");
            if phase != Phase::Closing {
                log_closed(S::NAME, &w.conn, ended);
            }
        }
    }

    /// Asks the service what the connection's bytes are, and acts on it.
    fn judge(&mut self, id: usize, paused: bool) {
        let Some(w) = self.waiting.get_mut(&id) else {
            return;
        };
        let full = w.conn.received.len() >= MAX_RECEIVED;
        match self
            .service
            .admit(w.conn.mode, &w.conn.received, paused || full)
        {
            Admission::Wait { pause } => {
                w.pause_until = pause.map(|p| Instant::now() + p);
                if let Some(at) = w.pause_until {
                    self.set_timer(at, id);
                }
            }
            Admission::Serve(mode) => {
                let mut w = self.leave(id).expect("present");
                w.conn.mode = mode;
                match self.penalties.time_left(w.conn.peer.ip()) {
                    None => self.start_request(w.conn),
                    Some(left) => self.refuse_penalized(w.conn, left),
                }
            }
            Admission::Refuse {
                code,
                reason,
                reply,
            } => {
                let mut w = self.leave(id).expect("present");
                tracing::warn!(server = S::NAME, peer = %w.conn.peer, code = %code, reason = %reason, "refused");
                send_nonblocking(&mut w.conn.stream, &reply);
                self.close_gracefully(w.conn);
            }
        }
    }

    /// Gives a ready request a slot and a worker thread, or, with none free, queues it for
    /// [`SLOT_WAIT`].
    fn start_request(&mut self, conn: Connection<S::Mode>) {
        // First come, first served: behind a queue, a request queues too.
        let conn = if self.queued.is_empty() {
            match self.try_start(conn) {
                Ok(()) => return,
                Err((conn, _)) => conn,
            }
        } else {
            conn
        };
        let id = self.enter(conn, Phase::Queued, deadline_after(SLOT_WAIT));
        self.queued.push_back(id);
        self.queued_count.store(self.queued.len(), Ordering::SeqCst);
        self.start_queued();
    }

    /// Starts the queued requests that find a slot now, oldest first.
    fn start_queued(&mut self) {
        let mut still_queued = VecDeque::new();
        while let Some(id) = self.queued.pop_front() {
            let Some(w) = self.waiting.get(&id).filter(|w| w.phase == Phase::Queued) else {
                continue;
            };
            if self.slots.active() >= self.config.max_active.max(1) {
                still_queued.push_back(id);
                continue;
            }
            let deadline = w.deadline;
            let w = self.leave(id).expect("present");
            match self.try_start(w.conn) {
                Ok(()) => {}
                // Its address is at its own limit: it waits on, and others go first.
                Err((conn, _)) => {
                    let id = self.enter(conn, Phase::Queued, deadline);
                    still_queued.push_back(id);
                }
            }
        }
        self.queued = still_queued;
        self.queued_count.store(self.queued.len(), Ordering::SeqCst);
    }

    /// Gives a ready request a slot and a worker thread; hands it back when no slot is free.
    fn try_start(
        &mut self,
        mut conn: Connection<S::Mode>,
    ) -> Result<(), (Connection<S::Mode>, NoSlot)> {
        let slot = match self.slots.try_acquire(conn.peer.ip(), conn.stream.tcp()) {
            Ok(slot) => slot,
            Err(no_slot) => return Err((conn, no_slot)),
        };
        if conn.stream.set_nonblocking(false).is_err() {
            log_closed(S::NAME, &conn, "socket error");
            return Ok(());
        }
        tracing::debug!(
            server = S::NAME,
            peer = %conn.peer,
            client = ?conn.mode,
            received = conn.received.len(),
            in_progress = self.slots.active(),
            "request ready: serving it"
        );
        let serving = Serving {
            service: Arc::clone(&self.service),
            penalties: self.penalties.clone(),
            slots: self.slots.clone(),
            lingering: Arc::clone(&self.lingering),
            max_lingering: self.config.max_active.max(1),
            shutdown: self.shutdown.clone(),
            queued: Arc::clone(&self.queued_count),
        };
        let returns = self.returns_tx.clone();
        let wake = self.waker.clone();
        let peer = conn.peer;
        let started = self.workers.run(Box::new(move || {
            let handback = serving.serve(conn, slot);
            let _ = returns.send(handback);
            wake.wake();
        }));
        if let Err(e) = started {
            // The closure, and with it the connection and the slot, is dropped.
            tracing::warn!(server = S::NAME, peer = %peer, error = %e, "cannot start a worker thread; connection closed");
        }
        Ok(())
    }

    fn refuse_busy(&mut self, mut conn: Connection<S::Mode>, no_slot: NoSlot) {
        let message = no_slot.to_string();
        tracing::warn!(server = S::NAME, peer = %conn.peer, code = %ErrorCode::Busy, reason = %message, "refused");
        send_nonblocking(
            &mut conn.stream,
            &self
                .service
                .refusal_reply(conn.mode, ErrorCode::Busy, &message),
        );
        self.close_gracefully(conn);
    }

    /// Refuses a ready request from a penalized address, `left` before its penalty ends. Logged
    /// at debug level only: the penalty was logged once, when it began.
    fn refuse_penalized(&mut self, mut conn: Connection<S::Mode>, left: Duration) {
        let key = AddressKey::from(conn.peer.ip());
        let message = penalized_message(key, &self.penalties.rules(), left);
        tracing::debug!(server = S::NAME, peer = %conn.peer, code = %ErrorCode::Penalized, reason = %message, "refused");
        send_nonblocking(
            &mut conn.stream,
            &self
                .service
                .refusal_reply(conn.mode, ErrorCode::Penalized, &message),
        );
        self.linger_then_close(conn);
    }

    /// Stops sending and lingers, reading and dropping what the client still sends, so that
    /// the last reply is not lost to a reset; then closes.
    fn close_gracefully(&mut self, conn: Connection<S::Mode>) {
        log_closed(S::NAME, &conn, "closed by the server");
        self.linger_then_close(conn);
    }

    /// [`close_gracefully`](Self::close_gracefully) without a log line.
    fn linger_then_close(&mut self, mut conn: Connection<S::Mode>) {
        if self.stop.is_some()
            || conn.stream.set_nonblocking(true).is_err()
            || conn.stream.shutdown_write().is_err()
        {
            return;
        }
        self.enter(conn, Phase::Closing, Instant::now() + CLOSING_LINGER);
    }

    /// Acts on the deadlines and pauses that have passed.
    fn on_timers(&mut self) {
        let now = Instant::now();
        let mut expired = Vec::new();
        let mut paused = Vec::new();
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            match self.waiting.get(&id) {
                Some(w) if w.deadline == at => expired.push(id),
                Some(w) if w.pause_until == Some(at) => paused.push(id),
                _ => {}
            }
        }
        for id in paused {
            if let Some(w) = self.waiting.get_mut(&id) {
                w.pause_until = None;
            }
            self.judge(id, true);
        }
        for id in expired {
            let Some(mut w) = self.leave(id) else {
                continue;
            };
            match w.phase {
                Phase::Closing => continue,
                Phase::Queued => {
                    match self.try_start(w.conn) {
                        Ok(()) => {}
                        Err((conn, no_slot)) => self.refuse_busy(conn, no_slot),
                    }
                    continue;
                }
                Phase::Request => {}
            }
            let limit = if w.conn.requests == 0 {
                ("login grace", self.config.login_grace)
            } else {
                ("idle timeout", self.config.idle_timeout)
            };
            if w.conn.received.is_empty() {
                let reason = format!("silent for the {} of {:?}", limit.0, limit.1);
                log_closed(S::NAME, &w.conn, &reason);
                continue;
            }
            let message = format!(
                "no complete request within the {} of {:?}; closing the connection",
                limit.0, limit.1
            );
            tracing::warn!(server = S::NAME, peer = %w.conn.peer, code = %ErrorCode::IdleTimeout, reason = %message, "refused");
            let reply = self
                .service
                .timeout_reply(w.conn.mode, &w.conn.received, &message);
            send_nonblocking(&mut w.conn.stream, &reply);
            self.close_gracefully(w.conn);
        }
    }

    /// Stops accepting and closes every waiting connection; the requests in progress get the
    /// shutdown grace.
    fn begin_stop(&mut self) {
        if let Some(entrance) = self.entrance.take() {
            entrance.unwatch(&mut self.readiness);
        }
        let ids: Vec<usize> = self.waiting.keys().copied().collect();
        for id in ids {
            let Some(mut w) = self.leave(id) else {
                continue;
            };
            if w.phase == Phase::Queued {
                let message = "the server is shutting down; retry in a moment";
                send_nonblocking(
                    &mut w.conn.stream,
                    &self
                        .service
                        .refusal_reply(w.conn.mode, ErrorCode::Busy, message),
                );
            }
            if w.phase != Phase::Closing {
                log_closed(S::NAME, &w.conn, "server shutting down");
            }
        }
        let grace = self.config.shutdown_grace;
        tracing::info!(
            server = S::NAME,
            in_progress = self.slots.active(),
            grace = ?grace,
            "shutting down: no longer accepting; waiting for the requests in progress"
        );
        self.stop = Some(Stop::Grace {
            until: deadline_after(grace),
        });
    }

    /// Moves a stop along; `true` when the lobby is done.
    fn stop_progress(&mut self, stop: Stop) -> bool {
        // Lingering workers first: one that stops lingering holds its slot by then.
        let lingering = self.lingering.load(Ordering::SeqCst);
        let active = self.slots.active();
        if lingering == 0 && active == 0 {
            // Whatever a request started that could outlive it goes too.
            self.service.stop_now();
            tracing::info!(server = S::NAME, "stopped");
            return true;
        }
        let now = Instant::now();
        match stop {
            Stop::Grace { until } if now >= until => {
                tracing::warn!(
                    server = S::NAME,
                    in_progress = active,
                    "shutdown grace over: cutting off the requests in progress"
                );
                self.service.stop_now();
                self.slots.cut_off_all();
                self.stop = Some(Stop::CutOff {
                    until: now + CUT_OFF_WAIT,
                });
                false
            }
            Stop::CutOff { until } if now >= until => {
                tracing::error!(
                    server = S::NAME,
                    in_progress = active,
                    "requests did not end after their sockets were shut down; stopping anyway"
                );
                self.service.stop_now();
                true
            }
            _ => false,
        }
    }
}

/// How long a worker that served a request waits for the same connection's next one before
/// handing the connection back to the lobby: a client sending requests one after another is
/// served without a trip through the lobby's thread (two thread wake-ups per request).
const WORKER_LINGER: Duration = Duration::from_millis(50);

/// What a worker thread needs to serve a connection's requests.
struct Serving<S: Service> {
    service: Arc<S>,
    penalties: Penalties,
    slots: Slots,
    /// Workers in [`WORKER_LINGER`] now, at most `max_lingering` (so threads stay bounded).
    lingering: Arc<AtomicUsize>,
    max_lingering: usize,
    shutdown: Shutdown,
    /// Requests queued in the lobby for a slot (they go first).
    queued: Arc<AtomicUsize>,
}

impl<S: Service> Serving<S> {
    /// Serves the request `slot` was taken for, then the connection's next ones while they
    /// come at once; hands the connection back for the lobby.
    fn serve(&self, mut conn: Connection<S::Mode>, mut slot: Slot) -> Handback<S::Mode> {
        loop {
            let mut handback = self.service.serve(conn);
            // The slot is free before the connection can come back with another request.
            drop(slot);
            let (Handback::Wait(served) | Handback::Close(served)) = &mut handback;
            self.count_token_refusal(served);
            conn = match handback {
                Handback::Wait(conn) => conn,
                close => return close,
            };
            slot = match self.next_request(&mut conn) {
                Some(slot) => slot,
                None => return Handback::Wait(conn),
            };
        }
    }

    /// Counts a request refused for its token against the client's address; logs the penalty
    /// it earns, once.
    fn count_token_refusal(&self, conn: &mut Connection<S::Mode>) {
        if !std::mem::take(&mut conn.token_refused) {
            return;
        }
        let Some(penalty) = self.penalties.record_failure(conn.peer.ip()) else {
            return;
        };
        let rules = self.penalties.rules();
        tracing::warn!(
            server = S::NAME,
            peer = %conn.peer,
            address = %AddressKey::from(conn.peer.ip()),
            failures = rules.max_failures,
            window = ?rules.window,
            penalty = ?penalty.length,
            repeated = penalty.repeated,
            "penalized: too many missing or wrong tokens; refusing this address's requests"
        );
    }

    /// A slot for the connection's next request, when it is ready within [`WORKER_LINGER`]
    /// (what arrives is kept in `conn.received` either way).
    ///
    /// The worker counts as lingering until it holds the slot, and looks for a stop after
    /// reading: so a stopping lobby that sees no lingering worker and no request in progress
    /// can be sure none will start.
    fn next_request(&self, conn: &mut Connection<S::Mode>) -> Option<Slot> {
        let others = self.lingering.fetch_add(1, Ordering::SeqCst);
        let slot = self.next_request_lingering(conn, others < self.max_lingering);
        self.lingering.fetch_sub(1, Ordering::SeqCst);
        slot
    }

    fn next_request_lingering(
        &self,
        conn: &mut Connection<S::Mode>,
        may_wait: bool,
    ) -> Option<Slot> {
        if conn.received.is_empty() && !(may_wait && read_soon(conn)) {
            return None;
        }
        if self.shutdown.is_requested() || self.queued.load(Ordering::SeqCst) > 0 {
            return None;
        }
        match self.service.admit(conn.mode, &conn.received, false) {
            // A penalized address's request is refused by the lobby.
            Admission::Serve(_) if self.penalties.time_left(conn.peer.ip()).is_some() => None,
            Admission::Serve(mode) => {
                conn.mode = mode;
                self.slots
                    .try_acquire(conn.peer.ip(), conn.stream.tcp())
                    .ok()
            }
            // Waiting and refusing are the lobby's work.
            Admission::Wait { .. } | Admission::Refuse { .. } => None,
        }
    }
}

/// One read of what the client sends within [`WORKER_LINGER`], added to `conn.received`.
fn read_soon<M>(conn: &mut Connection<M>) -> bool {
    let mut buf = [0u8; 4096];
    if conn
        .stream
        .tcp()
        .set_read_timeout(Some(WORKER_LINGER))
        .is_err()
    {
        return false;
    }
    match conn.stream.read(&mut buf) {
        Ok(n) if n > 0 => {
            conn.received.extend_from_slice(&buf[..n]);
            true
        }
        _ => false,
    }
}

/// What one `poll` call found ready.
#[derive(Default)]
struct Ready {
    listener: bool,
    connections: Vec<usize>,
}

/// What reading a waiting connection found.
enum Input {
    /// Bytes (or nothing yet); the connection is open.
    More,
    /// The client closed its sending side.
    Ended,
}

/// Most bytes read from a closing connection in one turn: a client that keeps sending cannot
/// keep the lobby reading.
const CLOSING_READ_PER_TURN: usize = 64 * 1024;

/// Reads what a waiting connection has sent: kept while it makes up a request (up to
/// [`MAX_RECEIVED`]), dropped while the connection closes (up to [`CLOSING_READ_PER_TURN`] a
/// turn; the rest waits for the next).
fn read_available<M>(w: &mut Waiting<M>) -> io::Result<Input> {
    let mut buf = [0u8; 4096];
    let mut dropped = 0;
    loop {
        if w.phase == Phase::Closing && dropped >= CLOSING_READ_PER_TURN {
            return Ok(Input::More);
        }
        let room = match w.phase {
            Phase::Request | Phase::Queued => MAX_RECEIVED.saturating_sub(w.conn.received.len()),
            Phase::Closing => buf.len(),
        };
        if room == 0 {
            return Ok(Input::More);
        }
        let take = room.min(buf.len());
        // A closing connection's bytes are dropped unread: TLS records need no decrypting.
        let read = match w.phase {
            Phase::Closing => w.conn.stream.tcp().read(&mut buf[..take]),
            Phase::Request | Phase::Queued => w.conn.stream.read(&mut buf[..take]),
        };
        match read {
            Ok(0) => return Ok(Input::Ended),
            Ok(n) if w.phase != Phase::Closing => w.conn.received.extend_from_slice(&buf[..n]),
            Ok(n) => dropped += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Input::More),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The first id in `queue` that is still waiting, taken out of the queue.
fn pop_live<M>(queue: &mut VecDeque<usize>, waiting: &HashMap<usize, Waiting<M>>) -> Option<usize> {
    while let Some(id) = queue.pop_front() {
        if waiting.contains_key(&id) {
            return Some(id);
        }
    }
    None
}

/// Writes a short reply to a non-blocking socket as far as it goes (a fresh socket's buffer
/// takes any reply the lobby sends whole).
fn send_nonblocking(stream: &mut ClientSocket, bytes: &[u8]) {
    if !bytes.is_empty() {
        let _ = stream.write(bytes);
    }
}

/// Whether accepting failed for want of descriptors (of this process or of the system).
#[cfg(unix)]
fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Whether accepting failed for want of sockets or of the memory they take.
#[cfg(windows)]
fn is_out_of_descriptors(e: &io::Error) -> bool {
    use windows_sys::Win32::Networking::WinSock::{WSAEMFILE, WSAENOBUFS};
    matches!(e.raw_os_error(), Some(WSAEMFILE | WSAENOBUFS))
}

fn log_closed<M>(server: &str, conn: &Connection<M>, reason: &str) {
    tracing::info!(server, peer = %conn.peer, requests = conn.requests, reason, "connection closed");
}

/// Whether `received` holds a framed request's prefix and its whole header, or a prefix that
/// can never start a valid frame (the worker then answers with an error frame): the point at
/// which a header-frame request is ready to serve.
pub fn framed_request_ready(received: &[u8], header_cap: usize) -> bool {
    let Some(prefix) = received.first_chunk::<4>() else {
        return false;
    };
    let len = i32::from_le_bytes(*prefix);
    match usize::try_from(len) {
        Ok(len) if (1..=header_cap).contains(&len) => received.len() >= 4 + len,
        _ => true,
    }
}

/// Whether `received` holds a whole header frame (or bytes no frame can start with, or more
/// than the lobby holds): the point at which a request with a small body, such as a command, is
/// ready to serve. Its worker then never waits for a client that sends slowly.
pub fn framed_request_complete(received: &[u8]) -> bool {
    if received.len() >= MAX_RECEIVED {
        return true;
    }
    let mut decoder = FrameDecoder::<HEADER_CAP>::header_frames(Profile::I32_LE);
    let mut input = received;
    loop {
        match decoder.feed(input) {
            Ok((_, Event::End(_))) | Err(_) => return true,
            Ok((_, Event::NeedMore)) => return false,
            Ok((used, _)) => input = &input[used..],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::ClientKind;
    use std::io::BufRead;
    use std::net::{Shutdown as SocketShutdown, TcpStream};

    /// A line protocol: a request is a line; the reply is `ok <line>`. The line `sleep` takes
    /// 600 ms to serve, `slow` twice [`SLOT_WAIT`]; `badtoken` is refused as a wrong token.
    struct Lines;

    impl Service for Lines {
        type Mode = ClientKind;
        const NAME: &'static str = "lines";

        fn admit(&self, _: ClientKind, received: &[u8], _: bool) -> Admission<ClientKind> {
            if received.starts_with(b"GET ") {
                return Admission::Refuse {
                    code: ErrorCode::ForeignProtocol,
                    reason: "HTTP".into(),
                    reply: b"no\n".to_vec(),
                };
            }
            match received.contains(&b'\n') {
                true => Admission::Serve(ClientKind::Framed),
                false => Admission::Wait { pause: None },
            }
        }

        fn serve(&self, mut conn: Connection<ClientKind>) -> Handback<ClientKind> {
            let end = conn.received.iter().position(|&b| b == b'\n').unwrap();
            let line: Vec<u8> = conn.received.drain(..=end).collect();
            if line == b"badtoken\n" {
                conn.token_refused = true;
                let _ = conn.stream.write_all(b"unauthorized\n");
                return Handback::Close(conn);
            }
            match line.as_slice() {
                b"sleep\n" => thread::sleep(Duration::from_millis(600)),
                b"slow\n" => thread::sleep(2 * SLOT_WAIT),
                _ => {}
            }
            conn.requests += 1;
            let mut reply = b"ok ".to_vec();
            reply.extend_from_slice(&line);
            match conn.stream.write_all(&reply) {
                Ok(()) => Handback::Wait(conn),
                Err(_) => Handback::Close(conn),
            }
        }

        fn refusal_reply(&self, _: ClientKind, code: ErrorCode, _: &str) -> Vec<u8> {
            format!("{code}\n").into_bytes()
        }

        fn timeout_reply(&self, _: ClientKind, _: &[u8], _: &str) -> Vec<u8> {
            b"timeout\n".to_vec()
        }
    }

    struct Running {
        addr: SocketAddr,
        shutdown: Shutdown,
        done: mpsc::Receiver<()>,
    }

    fn start(config: LobbyConfig) -> Running {
        start_with(config, Penalties::default())
    }

    fn start_with(config: LobbyConfig, penalties: Penalties) -> Running {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = Shutdown::new();
        let (done_tx, done) = mpsc::channel();
        let stop = shutdown.clone();
        thread::spawn(move || {
            serve(
                Entrance::Listener(listener),
                Arc::new(Lines),
                config,
                penalties,
                &stop,
            )
            .unwrap();
            let _ = done_tx.send(());
        });
        Running {
            addr,
            shutdown,
            done,
        }
    }

    fn connect(addr: SocketAddr) -> io::BufReader<TcpStream> {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        io::BufReader::new(stream)
    }

    fn line(reader: &mut io::BufReader<TcpStream>) -> String {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        line
    }

    fn send(reader: &mut io::BufReader<TcpStream>, bytes: &[u8]) {
        reader.get_mut().write_all(bytes).unwrap();
    }

    #[test]
    fn pipelined_requests_are_served_in_order_across_handbacks() {
        let lobby = start(LobbyConfig::default());
        let mut client = connect(lobby.addr);
        send(&mut client, b"a\nb\nc");
        assert_eq!(line(&mut client), "ok a\n");
        assert_eq!(line(&mut client), "ok b\n");
        send(&mut client, b"\n");
        assert_eq!(line(&mut client), "ok c\n");
        let mut web = connect(lobby.addr);
        send(&mut web, b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(line(&mut web), "no\n");
        assert_eq!(line(&mut web), "", "closed after the refusal");
    }

    #[test]
    fn the_longest_waiting_connection_of_an_address_makes_room() {
        let lobby = start(LobbyConfig {
            max_waiting_per_address: 3,
            ..LobbyConfig::default()
        });
        let mut silent: Vec<_> = (0..5).map(|_| connect(lobby.addr)).collect();
        // Each connection is in before the next one is made: a request proves it.
        let mut newcomer = connect(lobby.addr);
        send(&mut newcomer, b"hi\n");
        assert_eq!(line(&mut newcomer), "ok hi\n");
        // Six connections, room for three: the three oldest were closed.
        for (i, conn) in silent.iter_mut().enumerate() {
            conn.get_ref()
                .set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let mut byte = [0u8; 1];
            let closed = match conn.get_mut().read(&mut byte) {
                Ok(n) => n == 0,
                Err(e) => !matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ),
            };
            assert_eq!(closed, i < 3, "connection {i}");
        }
    }

    #[test]
    fn the_login_grace_ends_silent_and_trickling_connections() {
        let lobby = start(LobbyConfig {
            login_grace: Duration::from_millis(300),
            ..LobbyConfig::default()
        });
        let mut silent = connect(lobby.addr);
        let mut trickling = connect(lobby.addr);
        for _ in 0..6 {
            send(&mut trickling, b"x");
            thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(line(&mut trickling), "timeout\n");
        assert_eq!(line(&mut silent), "", "closed without a word");
        // A connection that was served waits for the idle timeout instead.
        let mut served = connect(lobby.addr);
        send(&mut served, b"a\n");
        assert_eq!(line(&mut served), "ok a\n");
        thread::sleep(Duration::from_millis(500));
        send(&mut served, b"b\n");
        assert_eq!(line(&mut served), "ok b\n");
    }

    #[test]
    fn a_request_over_the_slots_waits_for_one_then_is_told_busy() {
        let lobby = start(LobbyConfig {
            max_active: 1,
            ..LobbyConfig::default()
        });
        // Waiting between requests holds no slot.
        let mut idle = connect(lobby.addr);
        send(&mut idle, b"a\n");
        assert_eq!(line(&mut idle), "ok a\n");
        // A request that finds the slot taken for a moment waits for it.
        let mut sleeper = connect(lobby.addr);
        send(&mut sleeper, b"sleep\n");
        thread::sleep(Duration::from_millis(100));
        let mut patient = connect(lobby.addr);
        send(&mut patient, b"b\n");
        assert_eq!(line(&mut sleeper), "ok sleep\n");
        assert_eq!(line(&mut patient), "ok b\n");
        // One that would wait longer than SLOT_WAIT is told the server is busy.
        let mut slow = connect(lobby.addr);
        send(&mut slow, b"slow\n");
        thread::sleep(Duration::from_millis(100));
        let mut late = connect(lobby.addr);
        send(&mut late, b"c\n");
        assert_eq!(line(&mut late), "busy\n");
        assert_eq!(line(&mut slow), "ok slow\n");
        send(&mut idle, b"d\n");
        assert_eq!(line(&mut idle), "ok d\n");
    }

    #[test]
    fn a_queued_request_is_served_even_after_its_client_closed_its_side() {
        let lobby = start(LobbyConfig {
            max_active: 1,
            ..LobbyConfig::default()
        });
        let mut sleeper = connect(lobby.addr);
        send(&mut sleeper, b"sleep\n");
        thread::sleep(Duration::from_millis(100));
        // Sent, then the sending side closed (as a seed upload does), while the slot is taken.
        let mut closed = connect(lobby.addr);
        send(&mut closed, b"b\n");
        closed.get_ref().shutdown(SocketShutdown::Write).unwrap();
        assert_eq!(line(&mut sleeper), "ok sleep\n");
        assert_eq!(line(&mut closed), "ok b\n");
    }

    #[test]
    fn a_queued_request_goes_before_a_busy_connections_next_one() {
        let lobby = start(LobbyConfig {
            max_active: 1,
            ..LobbyConfig::default()
        });
        // A sends two 600 ms requests back to back; B asks while the first runs.
        let mut a = connect(lobby.addr);
        send(&mut a, b"sleep\nsleep\n");
        thread::sleep(Duration::from_millis(100));
        let mut b = connect(lobby.addr);
        send(&mut b, b"b\n");
        // B is served when A's first request ends (not told busy after A's second).
        assert_eq!(line(&mut b), "ok b\n");
        assert_eq!(line(&mut a), "ok sleep\n");
        assert_eq!(line(&mut a), "ok sleep\n");
    }

    #[test]
    fn a_stop_lets_requests_in_progress_finish_and_refuses_newcomers() {
        let lobby = start(LobbyConfig::default());
        let mut waiting = connect(lobby.addr);
        send(&mut waiting, b"a\n");
        assert_eq!(line(&mut waiting), "ok a\n");
        let mut sleeper = connect(lobby.addr);
        send(&mut sleeper, b"sleep\n");
        thread::sleep(Duration::from_millis(200));
        lobby.shutdown.request();
        assert_eq!(line(&mut waiting), "", "waiting connections are closed");
        assert_eq!(line(&mut sleeper), "ok sleep\n");
        lobby
            .done
            .recv_timeout(Duration::from_secs(5))
            .expect("serve returns once the request has ended");
        assert!(TcpStream::connect(lobby.addr).is_err(), "still accepting");
    }

    #[test]
    fn a_stop_cuts_off_what_outlasts_the_grace() {
        let lobby = start(LobbyConfig {
            shutdown_grace: Duration::from_millis(100),
            ..LobbyConfig::default()
        });
        let mut sleeper = connect(lobby.addr);
        send(&mut sleeper, b"sleep\n");
        thread::sleep(Duration::from_millis(100));
        let asked = Instant::now();
        lobby.shutdown.request();
        lobby
            .done
            .recv_timeout(Duration::from_secs(5))
            .expect("serve returns");
        // The request's socket was shut down at the grace, before the request would have ended.
        assert_eq!(line(&mut sleeper), "");
        assert!(asked.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn an_address_that_failed_its_token_too_often_is_refused_until_its_penalty_ends() {
        use super::super::penalties::PenaltyRules;
        let lobby = start_with(
            LobbyConfig::default(),
            Penalties::new(PenaltyRules {
                max_failures: 2,
                penalty: Duration::from_secs(1),
                ..PenaltyRules::default()
            }),
        );
        // A connection that waits between requests is refused too, once penalized.
        let mut waiting = connect(lobby.addr);
        send(&mut waiting, b"a\n");
        assert_eq!(line(&mut waiting), "ok a\n");
        for _ in 0..2 {
            let mut guesser = connect(lobby.addr);
            send(&mut guesser, b"badtoken\n");
            assert_eq!(line(&mut guesser), "unauthorized\n");
            assert_eq!(line(&mut guesser), "", "closed after the refusal");
        }
        let mut refused = connect(lobby.addr);
        send(&mut refused, b"a\n");
        assert_eq!(line(&mut refused), "penalized\n");
        assert_eq!(line(&mut refused), "", "closed after the refusal");
        send(&mut waiting, b"b\n");
        assert_eq!(line(&mut waiting), "penalized\n");
        // Served again once the penalty is over (polled, at most 10 s).
        let served = (0..100).any(|_| {
            thread::sleep(Duration::from_millis(100));
            let mut client = connect(lobby.addr);
            send(&mut client, b"c\n");
            line(&mut client) == "ok c\n"
        });
        assert!(served, "still refused after the penalty");
    }

    #[test]
    fn framed_requests_are_ready_once_their_header_is_in() {
        let frame = b"\x0b\x00\x00\x00{\"op\":\"x\"}body";
        for cut in 0..4 + 11 {
            assert!(!framed_request_ready(&frame[..cut], 100), "{cut}");
        }
        assert!(framed_request_ready(&frame[..15], 100));
        assert!(framed_request_ready(frame, 100));
        for cut in 0..frame.len() + 4 {
            let mut whole = b"\x1b\x00\x00\x00{\"op\":\"x\",\"total_size\":4}body".to_vec();
            let len = whole.len();
            whole.truncate(cut);
            assert_eq!(framed_request_complete(&whole), cut >= len, "{cut}");
        }
        // Prefixes no frame can have: the worker refuses them with an error frame.
        for bad in [
            &[0, 0, 0, 0][..],
            &[0xff, 0xff, 0xff, 0xff],
            &[0x65, 0, 0, 0],
        ] {
            assert!(framed_request_ready(bad, 100), "{bad:?}");
        }
    }
}
