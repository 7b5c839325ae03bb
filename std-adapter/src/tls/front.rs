//! A server's TLS front: it owns the listening socket, completes each client's handshake on a
//! thread of its own, and hands the lobby a plaintext connection (one end of a socket pair)
//! with the client's real address, relaying bytes between the two for as long as both are
//! open.
//!
//! The lobby and the request code behind it stay what they are for plaintext clients, so a TLS
//! connection gets the same request limits, timeouts and logging. The front adds its own
//! bounds for what happens before and after: handshakes in progress are capped in all and per
//! address, the oldest making room for a newcomer as in the lobby; a client that stops taking
//! bytes is dropped after the lobby's idle timeout; and a stopping server waits for its relays
//! to pass on the last replies. A connection whose first bytes cannot start a TLS handshake is
//! a plaintext client on a TLS port: it gets an error frame saying so (an HTTP client, a `400`),
//! and is closed.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown as SocketShutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection};

use super::read_ahead::ReadAhead;
use crate::poll::{self, Events, PollFd, Pollable, READABLE, WRITABLE};
use crate::server::foreign::{self, ForeignProtocol, Recognition};
use crate::server::{ErrorCode, GREETING_PAUSE, error_frame};
use crate::wake::{self, WakeSignal, Waker};

/// The first byte of every TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Bytes read from either side at a time. With [`BATCH`], what a connection's buffers can hold
/// once it has been busy: a waiting TLS connection costs about a quarter of a MiB at most.
const CHUNK: usize = 64 * 1024;

/// Decrypted bytes gathered for the lobby before they are written to it.
const BATCH: usize = 128 * 1024;

/// How long the front keeps a closed connection's TLS side open for the client's last bytes,
/// so that its final reply is not lost to a reset; also how long it drains a refused client.
const CLOSING_LINGER: Duration = Duration::from_secs(2);

/// Most bytes read and dropped from a refused plaintext client.
const CLOSING_DRAIN: usize = 1 << 20;

/// How long a client that stopped taking bytes keeps its connection once the lobby has
/// closed its side.
const CLOSING_STALL: Duration = Duration::from_secs(10);

/// Stack of a relay thread (rustls and the handshake's cryptography need little).
const RELAY_STACK: usize = 256 * 1024;

/// How the front treats connections before and after the lobby's part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrontLimits {
    /// Time a client has to complete its handshake.
    pub handshake_time: Duration,
    /// Handshakes in progress at once; a newcomer beyond closes the one waiting longest.
    pub max_handshakes: usize,
    /// The same, per client address.
    pub max_handshakes_per_address: usize,
    /// Time a client may take no bytes while the relay has some for it (the lobby's idle
    /// timeout, its own write timeout).
    pub stall_time: Duration,
}

/// Connections the front hands the lobby: each one end of a socket pair and the client's real
/// address. `signal` turns readable when one is waiting.
#[derive(Debug)]
pub struct Handoff {
    /// The connections.
    pub connections: Receiver<(TcpStream, SocketAddr)>,
    /// Readable when a connection is waiting (drain it, then take them all).
    pub(crate) signal: WakeSignal,
    relays: Arc<Relays>,
}

impl Handoff {
    /// A handle to wait for the relays with after the hand-off itself is gone.
    pub fn relays(&self) -> RelayWaiter {
        RelayWaiter(Arc::clone(&self.relays))
    }
}

/// Waits for a front's relays (see [`Handoff::relays`]).
#[derive(Debug)]
pub struct RelayWaiter(Arc<Relays>);

impl RelayWaiter {
    /// Waits up to `limit` for every relay to have passed on its last bytes and closed.
    pub fn wait(&self, limit: Duration) {
        self.0.wait_until_none(limit);
    }
}

/// The relays running, to wait for at a stop.
#[derive(Debug, Default)]
struct Relays {
    running: Mutex<usize>,
    ended: Condvar,
}

impl Relays {
    fn wait_until_none(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        while *running > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            running = self
                .ended
                .wait_timeout(running, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// Counts a relay as running while it lives.
struct RelayRunning<'r>(&'r Relays);

impl<'r> RelayRunning<'r> {
    fn start(relays: &'r Relays) -> RelayRunning<'r> {
        *relays
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner) += 1;
        RelayRunning(relays)
    }
}

impl Drop for RelayRunning<'_> {
    fn drop(&mut self) {
        *self
            .0
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner) -= 1;
        self.0.ended.notify_all();
    }
}

/// A handshake in progress: who, and a handle to cut it short with.
struct Pending {
    id: u64,
    address: IpAddr,
    socket: TcpStream,
}

/// The handshakes in progress, oldest first.
#[derive(Default)]
struct PendingHandshakes {
    queue: VecDeque<Pending>,
    next_id: u64,
}

impl PendingHandshakes {
    /// Registers a handshake from `address` (its socket a clone of the client's), first closing
    /// the oldest one from that address, or in all, when a limit is reached. Its id.
    fn enter(&mut self, address: IpAddr, socket: TcpStream, limits: &FrontLimits) -> u64 {
        let from_address = self.queue.iter().filter(|p| p.address == address).count();
        if from_address >= limits.max_handshakes_per_address.max(1) {
            if let Some(i) = self.queue.iter().position(|p| p.address == address) {
                self.evict(i);
            }
        }
        if self.queue.len() >= limits.max_handshakes.max(1) {
            self.evict(0);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.queue.push_back(Pending {
            id,
            address,
            socket,
        });
        id
    }

    /// Closes the handshake at `index`: its thread's next wait ends with an error.
    fn evict(&mut self, index: usize) {
        if let Some(oldest) = self.queue.remove(index) {
            tracing::info!(peer = %oldest.address, "evicted: the TLS handshake waiting longest made room for a new one");
            let _ = oldest.socket.shutdown(SocketShutdown::Both);
        }
    }

    fn leave(&mut self, id: u64) {
        self.queue.retain(|p| p.id != id);
    }
}

/// What the relays share.
struct Front {
    config: Arc<ServerConfig>,
    limits: FrontLimits,
    pending: Mutex<PendingHandshakes>,
    relays: Arc<Relays>,
    handoff: Mutex<(Sender<(TcpStream, SocketAddr)>, Waker)>,
    server: &'static str,
}

/// Starts the front on `listener` for the server named `server`; it stops accepting once the
/// lobby drops the returned [`Handoff`].
pub fn start(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    limits: FrontLimits,
    server: &'static str,
) -> io::Result<Handoff> {
    listener.set_nonblocking(true)?;
    let (signal, signal_tx) = wake::pair()?;
    let (connections_tx, connections) = mpsc::channel();
    let relays = Arc::new(Relays::default());
    let front = Arc::new(Front {
        config,
        limits,
        pending: Mutex::new(PendingHandshakes::default()),
        relays: Arc::clone(&relays),
        handoff: Mutex::new((connections_tx, signal_tx.try_clone()?)),
        server,
    });
    thread::Builder::new()
        .name(format!("unstick-{server}-tls"))
        .spawn(move || accept_loop(&listener, &signal_tx, &front))?;
    Ok(Handoff {
        connections,
        signal,
        relays,
    })
}

/// Accepts connections until the lobby goes (its end of the signal socket closes).
fn accept_loop(listener: &TcpListener, lobby: &Waker, front: &Arc<Front>) {
    loop {
        let mut fds = [
            PollFd::new(listener.raw_socket(), READABLE),
            PollFd::new(lobby.raw_socket(), READABLE),
        ];
        if poll::poll(&mut fds, None).is_err() {
            thread::sleep(Duration::from_millis(50));
            continue;
        }
        if fds[1].found() != 0 {
            return;
        }
        loop {
            match listener.accept() {
                Ok((stream, peer)) => admit(front, stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::debug!(server = front.server, error = %e, "accept failed");
                    // Out of descriptors, say: let some connections end first.
                    thread::sleep(Duration::from_millis(20));
                    break;
                }
            }
        }
    }
}

/// Starts a connection's handshake on a thread of its own, making room if needed.
fn admit(front: &Arc<Front>, stream: TcpStream, peer: SocketAddr) {
    let Ok(handle) = stream.try_clone() else {
        return;
    };
    let id = front
        .pending
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .enter(peer.ip(), handle, &front.limits);
    let relay_front = Arc::clone(front);
    let started = thread::Builder::new()
        .name(format!("unstick-{}-tls", front.server))
        .stack_size(RELAY_STACK)
        .spawn(move || serve_connection(&relay_front, id, stream, peer));
    if let Err(e) = started {
        front.leave_pending(id);
        tracing::warn!(server = front.server, peer = %peer, error = %e, "cannot start a TLS thread; connection closed");
    }
}

impl Front {
    fn leave_pending(&self, id: u64) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .leave(id);
    }
}

/// One client: its handshake, then the relay.
fn serve_connection(front: &Front, id: u64, socket: TcpStream, peer: SocketAddr) {
    let handshaken = handshake(front, &socket, peer);
    front.leave_pending(id);
    let tls = match handshaken {
        Ok(Some(tls)) => tls,
        Ok(None) => return,
        Err(reason) => {
            tracing::warn!(server = front.server, peer = %peer, reason = %reason, "TLS handshake failed");
            return;
        }
    };
    let (near, far) = match lobby_pair() {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(server = front.server, peer = %peer, error = %e, "cannot reach the lobby; connection closed");
            return;
        }
    };
    let _running = RelayRunning::start(&front.relays);
    {
        let handoff = front.handoff.lock().unwrap_or_else(PoisonError::into_inner);
        if handoff.0.send((far, peer)).is_err() {
            // The server is stopping.
            return;
        }
        handoff.1.wake();
    }
    if let Err(e) = relay(tls, &socket, &near, front.limits.stall_time) {
        tracing::debug!(server = front.server, peer = %peer, error = %e, "TLS connection ended");
    }
}

/// A connected pair of stream sockets: the near end for the relay, the far end for the lobby,
/// which takes every connection as a `TcpStream`. The far end is a Unix-domain socket: the
/// calls the lobby and the request code make on it (reads and writes, time-outs,
/// non-blocking mode, shutdown, cloning, polling) are those of any stream socket; the one that
/// is TCP's own (`set_nodelay`) fails on it, and the lobby does without for handed-over
/// connections. No listening socket is involved, so no other process can get in between.
#[cfg(unix)]
fn lobby_pair() -> io::Result<(Near, TcpStream)> {
    use std::os::fd::AsRawFd;
    let (near, far) = Near::pair()?;
    // Room for a few batches in flight, so that the relay and the request's thread take turns
    // less often than the default buffer (about 200 KiB) makes them.
    let size: libc::c_int = 1 << 20;
    // SAFETY: setsockopt(2) on a socket this function owns, reading one c_int whose size is
    // passed; a failure only leaves the default buffer.
    unsafe {
        libc::setsockopt(
            near.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    let far = TcpStream::from(std::os::fd::OwnedFd::from(far));
    Ok((near, far))
}

/// On Windows, which has no `socketpair`, two loopback TCP sockets connected through a
/// listener of their own, closed once they are (a stranger that connected meanwhile is
/// dropped; the listener lives for one connect, so no lock is held across it).
#[cfg(windows)]
fn lobby_pair() -> io::Result<(Near, TcpStream)> {
    let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
    let near = TcpStream::connect(listener.local_addr()?)?;
    let near_addr = near.local_addr()?;
    for _ in 0..64 {
        let (far, from) = listener.accept()?;
        if from == near_addr {
            near.set_nodelay(true)?;
            far.set_nodelay(true)?;
            return Ok((near, far));
        }
    }
    Err(io::Error::other(
        "the lobby pair's loopback listener is flooded by strangers",
    ))
}

/// The relay's end of the lobby pair.
#[cfg(unix)]
type Near = std::os::unix::net::UnixStream;
#[cfg(windows)]
type Near = TcpStream;

/// Completes the handshake within the time limit. `Ok(None)`: the client went away or spoke
/// plaintext (answered and logged).
fn handshake(
    front: &Front,
    socket: &TcpStream,
    peer: SocketAddr,
) -> Result<Option<ServerConnection>, String> {
    let deadline = Instant::now() + front.limits.handshake_time;
    socket.set_nonblocking(true).map_err(|e| e.to_string())?;
    socket.set_nodelay(true).map_err(|e| e.to_string())?;
    let Some(opening) = peek_opening(socket, deadline)? else {
        return Ok(None);
    };
    if opening.first() != Some(&TLS_HANDSHAKE_RECORD) {
        refuse_plaintext(front, socket, peer, &opening);
        return Ok(None);
    }
    let mut tls = ServerConnection::new(Arc::clone(&front.config)).map_err(|e| e.to_string())?;
    tls.set_buffer_limit(None);
    loop {
        flush_tls(&mut tls, socket).map_err(|e| e.to_string())?;
        if !tls.is_handshaking() {
            if tls.wants_write() {
                wait_for(socket, WRITABLE, deadline)?;
                continue;
            }
            return Ok(Some(tls));
        }
        let events = if tls.wants_write() {
            WRITABLE
        } else {
            READABLE
        };
        wait_for(socket, events, deadline)?;
        if events == WRITABLE {
            continue;
        }
        match tls.read_tls(&mut &*socket) {
            Ok(0) => return Err("the client closed the connection during the handshake".into()),
            Ok(_) => {
                if let Err(e) = tls.process_new_packets() {
                    // Tell the client why (an alert), as far as the socket takes it.
                    let _ = flush_tls(&mut tls, socket);
                    return Err(e.to_string());
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// The connection's first bytes, without taking them: one for a TLS record; for anything
/// else, as many as arrive within [`GREETING_PAUSE`] (up to 16), to tell an HTTP request from
/// other plaintext. `None` when the client closed first.
fn peek_opening(socket: &TcpStream, deadline: Instant) -> Result<Option<Vec<u8>>, String> {
    let mut opening = [0u8; 16];
    let mut judged_at: Option<Instant> = None;
    loop {
        match socket.peek(&mut opening) {
            Ok(0) => return Ok(None),
            Ok(n) if opening[0] == TLS_HANDSHAKE_RECORD || n == opening.len() => {
                return Ok(Some(opening[..n].to_vec()));
            }
            Ok(n) => {
                let at = *judged_at.get_or_insert_with(|| Instant::now() + GREETING_PAUSE);
                if Instant::now() >= at {
                    return Ok(Some(opening[..n].to_vec()));
                }
                thread::sleep(Duration::from_millis(10));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_for(socket, READABLE, deadline)?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Ok(None),
        }
    }
}

/// Answers a plaintext client on a TLS port (an HTTP client with a `400`, any other with an
/// error frame), then drains what it sends for a moment so that the answer is not lost to a
/// reset, and closes.
fn refuse_plaintext(front: &Front, socket: &TcpStream, peer: SocketAddr, opening: &[u8]) {
    let service = if front.server == "ftp" {
        "file"
    } else {
        front.server
    };
    let reply = match foreign::recognise(opening, true) {
        Recognition::Foreign(ForeignProtocol::Http) => {
            tracing::warn!(server = front.server, peer = %peer, code = %ErrorCode::ForeignProtocol, "refused: an HTTP client on a TLS port");
            foreign::reply(ForeignProtocol::Http, service)
        }
        _ => {
            tracing::warn!(server = front.server, peer = %peer, code = %ErrorCode::ForeignProtocol, "refused: a plaintext client on a TLS port");
            error_frame(
                ErrorCode::ForeignProtocol,
                "this server speaks TLS: connect to tls://HOST:PORT (the client's tls:// address form)",
            )
        }
    };
    let _ = socket.set_nonblocking(false);
    let _ = socket.set_write_timeout(Some(CLOSING_LINGER));
    let _ = (&*socket).write_all(&reply);
    let _ = socket.shutdown(SocketShutdown::Write);
    let until = Instant::now() + CLOSING_LINGER;
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < CLOSING_DRAIN {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || socket.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match (&*socket).read(&mut sink) {
            Ok(0) | Err(_) => return,
            Ok(n) => drained += n,
        }
    }
}

/// Waits until `socket` is ready for `events`, or fails at `deadline`.
fn wait_for(socket: &TcpStream, events: Events, deadline: Instant) -> Result<(), String> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err("no TLS handshake in time".into());
    }
    let mut fds = [PollFd::new(socket.raw_socket(), events)];
    poll::poll(&mut fds, Some(left)).map_err(|e| e.to_string())?;
    Ok(())
}

/// Writes what rustls has to send, as far as the socket takes it now. Whether anything went.
fn flush_tls(tls: &mut ServerConnection, socket: &TcpStream) -> io::Result<bool> {
    let mut sent = false;
    while tls.wants_write() {
        match tls.write_tls(&mut &*socket) {
            Ok(n) => sent |= n > 0,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(sent),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(sent)
}

/// Relays between the client's TLS connection and the lobby's end until both are done: the
/// client's bytes, decrypted, to `near`; `near`'s, encrypted, to the client. A client that
/// takes no bytes for `stall_time` while some wait for it (for [`CLOSING_STALL`] once the
/// lobby has closed its side) is dropped.
fn relay(
    mut tls: ServerConnection,
    socket: &TcpStream,
    near: &Near,
    stall_time: Duration,
) -> io::Result<()> {
    near.set_nonblocking(true)?;
    let mut buf = vec![0u8; CHUNK];
    // Decrypted bytes not yet written to `near`.
    let mut to_near = Plaintext::new(BATCH + CHUNK);
    // The client has nothing more to send (close_notify or end of stream).
    let mut client_done = false;
    let mut near_write_shut = false;
    // The lobby closed its side; close_notify is queued.
    let mut lobby_done = false;
    let mut linger_until: Option<Instant> = None;
    // When the client last took bytes (or had none waiting).
    let mut last_progress = Instant::now();
    let mut wire = ReadAhead::with_capacity(socket, CHUNK);
    // Application data that came with the handshake's last flight.
    to_near.fill_from(&mut tls, &mut client_done);
    loop {
        if flush_tls(&mut tls, socket)? || !tls.wants_write() {
            last_progress = Instant::now();
        }
        while !to_near.is_empty() {
            match (&*near).write(to_near.unsent()) {
                Ok(n) => to_near.consume(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if to_near.is_empty() {
            // What rustls decrypted beyond the last batch.
            to_near.fill_from(&mut tls, &mut client_done);
        }
        if to_near.is_empty() && client_done && !near_write_shut {
            let _ = near.shutdown(SocketShutdown::Write);
            near_write_shut = true;
        }
        if lobby_done && !tls.wants_write() {
            if linger_until.is_none() {
                let _ = socket.shutdown(SocketShutdown::Write);
                linger_until = Some(Instant::now() + CLOSING_LINGER);
            }
            if client_done {
                return Ok(());
            }
        }
        let stall_limit = if lobby_done {
            CLOSING_STALL.min(stall_time)
        } else {
            stall_time
        };
        let stalled_at = tls.wants_write().then(|| last_progress + stall_limit);
        let wake_at = match (linger_until, stalled_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let now = Instant::now();
        if wake_at.is_some_and(|at| at <= now) {
            if stalled_at.is_some_and(|at| at <= now) {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client took no bytes for too long",
                ));
            }
            return Ok(());
        }
        let read_client = !client_done && to_near.is_empty();
        let read_lobby = !lobby_done && !tls.wants_write();
        let socket_events =
            if read_client { READABLE } else { 0 } | if tls.wants_write() { WRITABLE } else { 0 };
        let near_events =
            if read_lobby { READABLE } else { 0 } | if to_near.is_empty() { 0 } else { WRITABLE };
        let mut fds = [
            PollFd::new(socket.raw_socket(), socket_events),
            PollFd::new(near.raw_socket(), near_events),
        ];
        let mut left = wake_at.map(|at| at.saturating_duration_since(now));
        // Bytes read ahead are ready without the socket.
        let ahead = read_client && wire.buffered() > 0;
        if ahead {
            left = Some(Duration::ZERO);
        }
        poll::poll(&mut fds, left)?;
        if read_client && (ahead || fds[0].found() != 0) {
            // Records until the socket is dry or a batch for the lobby is ready.
            while !client_done && to_near.len() < BATCH {
                match tls.read_tls(&mut wire) {
                    Ok(0) => client_done = true,
                    Ok(_) => {
                        let state = match tls.process_new_packets() {
                            Ok(state) => state,
                            Err(e) => {
                                let _ = flush_tls(&mut tls, socket);
                                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                            }
                        };
                        to_near.fill_from(&mut tls, &mut client_done);
                        client_done |= state.peer_has_closed();
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => client_done = true,
                }
            }
        }
        if read_lobby && fds[1].found() != 0 {
            match (&*near).read(&mut buf) {
                Ok(0) => {
                    lobby_done = true;
                    tls.send_close_notify();
                }
                Ok(n) => tls.writer().write_all(&buf[..n])?,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => {
                    lobby_done = true;
                    tls.send_close_notify();
                }
            }
        }
    }
}

/// Decrypted bytes on their way to the lobby: one buffer, allocated once, that rustls copies
/// plaintext straight into and the socket pair is written from.
struct Plaintext {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Plaintext {
    fn new(capacity: usize) -> Plaintext {
        Plaintext {
            buf: vec![0u8; capacity].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    fn len(&self) -> usize {
        self.end - self.start
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The bytes not yet written.
    fn unsent(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Marks `n` bytes as written.
    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Moves the plaintext rustls holds in, as far as there is room; notes a clean or unclean
    /// end of the client's data in `done`.
    fn fill_from(&mut self, tls: &mut ServerConnection, done: &mut bool) {
        while self.end < self.buf.len() {
            match tls.reader().read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    *done = true;
                    return;
                }
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    *done = true;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_address: usize) -> FrontLimits {
        FrontLimits {
            handshake_time: Duration::from_secs(1),
            max_handshakes: total,
            max_handshakes_per_address: per_address,
            stall_time: Duration::from_secs(1),
        }
    }

    /// A connected socket whose peer is kept, and that peer.
    fn connection(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (served, _) = listener.accept().unwrap();
        (served, client)
    }

    /// Whether `client` sees its connection closed by the server.
    fn closed(client: &TcpStream) -> bool {
        client
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        match (&*client).read(&mut [0u8; 1]) {
            Ok(0) => true,
            Err(e) => !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            Ok(_) => false,
        }
    }

    #[test]
    fn the_oldest_handshake_makes_room_in_all_and_per_address() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut pending = PendingHandshakes::default();
        let one: IpAddr = "10.0.0.1".parse().unwrap();
        let two: IpAddr = "10.0.0.2".parse().unwrap();
        let (a, a_client) = connection(&listener);
        let (b, b_client) = connection(&listener);
        let (c, c_client) = connection(&listener);
        let (d, d_client) = connection(&listener);
        // Per address: a second handshake from `one` closes the first.
        pending.enter(one, a, &limits(3, 1));
        pending.enter(two, b, &limits(3, 1));
        pending.enter(one, c, &limits(3, 1));
        assert!(closed(&a_client));
        // In all: a fourth over three closes the oldest left (`two`'s).
        pending.enter("10.0.0.3".parse().unwrap(), d, &limits(2, 1));
        assert!(closed(&b_client));
        assert!(!closed(&c_client) && !closed(&d_client));
        assert_eq!(pending.queue.len(), 2);
    }
}
