//! A server's TLS front: it owns the listening socket, completes each client's handshake on a
//! thread of its own, and hands the lobby the connection ([`ClientSocket::Tls`]) with the
//! client's real address. From then on the lobby and the request code read and write it as
//! they do a plaintext client's, so a TLS connection gets the same request limits, timeouts and
//! logging, and its bytes cross no other thread.
//!
//! The front bounds what happens before: handshakes in progress are capped in all and per
//! address, the oldest making room for a newcomer as in the lobby, and each has a time limit.
//! A connection whose first bytes cannot start a TLS handshake is a plaintext client on a TLS
//! port: it gets an error frame saying so (an HTTP client, a `400`), and is closed.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown as SocketShutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection};

use super::foreign::{self, ForeignProtocol, Recognition};
use super::{CLOSING_LINGER, ClientSocket, ErrorCode, GREETING_PAUSE, error_frame};
use crate::readiness::{self, Interest, Readiness, Waker};
use crate::tls::TlsServerStream;

/// The first byte of every TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Most bytes read and dropped from a refused plaintext client.
const CLOSING_DRAIN: usize = 1 << 20;

/// Stack of a handshake's thread (rustls and the handshake's cryptography need little).
const HANDSHAKE_STACK: usize = 256 * 1024;

/// How the front treats connections before the lobby's part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrontLimits {
    /// Time a client has to complete its handshake.
    pub handshake_time: Duration,
    /// Handshakes in progress at once; a newcomer beyond closes the one waiting longest.
    pub max_handshakes: usize,
    /// The same, per client address.
    pub max_handshakes_per_address: usize,
}

/// Connections the front hands the lobby, each with the client's address. The front stops
/// accepting once the handoff is dropped.
#[derive(Debug)]
pub struct Handoff {
    /// The connections.
    pub connections: Receiver<(ClientSocket, SocketAddr)>,
    doorbell: Arc<Doorbell>,
    /// Wakes the front's accept loop.
    front: Waker,
}

impl Handoff {
    /// Has `waker` woken each time a connection is handed over (those handed over before are
    /// the lobby's to take when it starts).
    pub(crate) fn wake_with(&self, waker: Waker) {
        *self
            .doorbell
            .lobby
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(waker);
    }
}

impl Drop for Handoff {
    fn drop(&mut self) {
        self.doorbell.closed.store(true, Ordering::SeqCst);
        self.front.wake();
    }
}

/// What the front and the lobby's [`Handoff`] share.
#[derive(Debug, Default)]
struct Doorbell {
    /// Wakes the lobby; set once the lobby waits.
    lobby: Mutex<Option<Waker>>,
    /// Set when the lobby has dropped its handoff.
    closed: AtomicBool,
}

impl Doorbell {
    /// Tells the lobby a connection is waiting.
    fn ring(&self) {
        if let Some(lobby) = &*self.lobby.lock().unwrap_or_else(PoisonError::into_inner) {
            lobby.wake();
        }
    }
}

/// The listening socket and the readiness that watches it (unwatched when dropped).
struct Accepting {
    listener: TcpListener,
    readiness: Readiness,
}

impl Drop for Accepting {
    fn drop(&mut self) {
        self.readiness.unwatch(&self.listener);
    }
}

/// A handshake in progress: who, and a handle to cut it short with.
struct Pending {
    id: u64,
    address: IpAddr,
    socket: TcpStream,
}

/// The handshakes in progress, oldest first.
struct PendingHandshakes {
    queue: VecDeque<Pending>,
    next_id: u64,
    /// The server they are for, named in the log.
    server: &'static str,
}

impl PendingHandshakes {
    fn new(server: &'static str) -> Self {
        PendingHandshakes {
            queue: VecDeque::new(),
            next_id: 0,
            server,
        }
    }

    /// Registers a handshake from `address` (its socket a clone of the client's), first closing
    /// the oldest one from that address, or in all, when a limit is reached. Its id.
    fn enter(&mut self, address: IpAddr, socket: TcpStream, limits: &FrontLimits) -> u64 {
        let from_address = self.queue.iter().filter(|p| p.address == address).count();
        if from_address >= limits.max_handshakes_per_address.max(1)
            && let Some(i) = self.queue.iter().position(|p| p.address == address)
        {
            self.evict(i);
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
            tracing::info!(server = self.server, peer = %oldest.address, "evicted: the TLS handshake waiting longest made room for a new one");
            let _ = oldest.socket.shutdown(SocketShutdown::Both);
        }
    }

    fn leave(&mut self, id: u64) {
        self.queue.retain(|p| p.id != id);
    }
}

/// What the handshake threads share.
struct Front {
    config: Arc<ServerConfig>,
    limits: FrontLimits,
    pending: Mutex<PendingHandshakes>,
    handoff: Mutex<Sender<(ClientSocket, SocketAddr)>>,
    doorbell: Arc<Doorbell>,
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
    let mut accepting = Accepting {
        listener,
        readiness: Readiness::new()?,
    };
    accepting.readiness.watch(&accepting.listener, 0)?;
    let front_waker = accepting.readiness.waker();
    let (connections_tx, connections) = mpsc::channel();
    let doorbell = Arc::new(Doorbell::default());
    let front = Arc::new(Front {
        config,
        limits,
        pending: Mutex::new(PendingHandshakes::new(server)),
        handoff: Mutex::new(connections_tx),
        doorbell: Arc::clone(&doorbell),
        server,
    });
    thread::Builder::new()
        .name(format!("unstick-{server}-tls"))
        .spawn(move || accept_loop(accepting, &front))?;
    Ok(Handoff {
        connections,
        doorbell,
        front: front_waker,
    })
}

/// Accepts connections until the lobby drops its [`Handoff`].
fn accept_loop(mut accepting: Accepting, front: &Arc<Front>) {
    let mut ready = Vec::new();
    loop {
        if front.doorbell.closed.load(Ordering::SeqCst) {
            return;
        }
        if accepting.readiness.wait(None, &mut ready).is_err() {
            thread::sleep(Duration::from_millis(50));
            continue;
        }
        if front.doorbell.closed.load(Ordering::SeqCst) {
            return;
        }
        loop {
            match accepting.listener.accept() {
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
    let handshake_front = Arc::clone(front);
    let started = thread::Builder::new()
        .name(format!("unstick-{}-tls", front.server))
        .stack_size(HANDSHAKE_STACK)
        .spawn(move || serve_connection(&handshake_front, id, stream, peer));
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

/// One client's handshake; the connection then goes to the lobby.
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
    let connection = ClientSocket::Tls(Box::new(TlsServerStream::new(tls, socket)));
    let handoff = front.handoff.lock().unwrap_or_else(PoisonError::into_inner);
    // A send fails only once the lobby has stopped; the connection is then closed.
    if handoff.send((connection, peer)).is_ok() {
        front.doorbell.ring();
    }
}

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
                wait_for(socket, Interest::Write, deadline)?;
                continue;
            }
            return Ok(Some(tls));
        }
        let interest = if tls.wants_write() {
            Interest::Write
        } else {
            Interest::Read
        };
        wait_for(socket, interest, deadline)?;
        if interest == Interest::Write {
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
                wait_for(socket, Interest::Read, deadline)?;
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

/// Waits until `socket` is ready for `interest`, or fails at `deadline`.
fn wait_for(socket: &TcpStream, interest: Interest, deadline: Instant) -> Result<(), String> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err("no TLS handshake in time".into());
    }
    readiness::wait_for(socket, interest, left).map_err(|e| e.to_string())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_address: usize) -> FrontLimits {
        FrontLimits {
            handshake_time: Duration::from_secs(1),
            max_handshakes: total,
            max_handshakes_per_address: per_address,
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
        let mut pending = PendingHandshakes::new("test");
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
