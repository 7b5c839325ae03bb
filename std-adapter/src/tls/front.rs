//! A server's TLS front: it owns the listening socket, completes each client's handshake on a
//! thread of its own, and hands the lobby a plaintext loopback connection with the client's
//! real address, relaying bytes between the two for as long as both are open.
//!
//! The lobby and the request code behind it stay what they are for plaintext clients, so a TLS
//! connection gets the same limits, timeouts, logging and shutdown. A connection whose first
//! byte cannot start a TLS handshake is a plaintext client on a TLS port: it gets an error
//! frame saying so, and is closed.

use std::io::{self, Read, Write};
use std::net::{Shutdown as SocketShutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection};

use super::read_ahead::ReadAhead;
use crate::poll::{self, Events, PollFd, Pollable, READABLE, WRITABLE};
use crate::server::{ErrorCode, error_frame};
use crate::wake::{self, WakeSignal, Waker};

/// The first byte of every TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Bytes read from either side at a time. With [`BATCH`], what a connection's buffers can hold
/// once it has been busy: a waiting TLS connection costs about a quarter of a MiB at most.
const CHUNK: usize = 64 * 1024;

/// Decrypted bytes gathered for the lobby before they are written to it.
const BATCH: usize = 128 * 1024;

/// How long the front keeps a closed connection's TLS side open for the client's last bytes,
/// so that its final reply is not lost to a reset.
const CLOSING_LINGER: Duration = Duration::from_secs(2);

/// Stack of a relay thread (rustls and the handshake's cryptography need little).
const RELAY_STACK: usize = 256 * 1024;

/// How the front treats connections before they reach the lobby.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrontLimits {
    /// Time a client has to complete its handshake.
    pub handshake_time: Duration,
    /// Handshakes in progress at once; connections beyond are closed at once.
    pub max_handshakes: usize,
}

/// Connections the front hands the lobby: each a plaintext loopback stream and the client's
/// real address. `signal` turns readable when one is waiting.
#[derive(Debug)]
pub struct Handoff {
    /// The connections.
    pub connections: Receiver<(TcpStream, SocketAddr)>,
    /// Readable when a connection is waiting (drain it, then take them all).
    pub(crate) signal: WakeSignal,
}

/// What the relays share.
struct Front {
    config: Arc<ServerConfig>,
    limits: FrontLimits,
    pairs: LoopbackPairs,
    handshakes: AtomicUsize,
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
    let front = Arc::new(Front {
        config,
        limits,
        pairs: LoopbackPairs::new()?,
        handshakes: AtomicUsize::new(0),
        handoff: Mutex::new((connections_tx, signal_tx.try_clone()?)),
        server,
    });
    thread::Builder::new()
        .name(format!("unstick-{server}-tls"))
        .spawn(move || accept_loop(&listener, &signal_tx, &front))?;
    Ok(Handoff {
        connections,
        signal,
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

/// Starts a connection's handshake on a thread of its own, within the limit.
fn admit(front: &Arc<Front>, stream: TcpStream, peer: SocketAddr) {
    let limit = front.limits.max_handshakes.max(1);
    if front.handshakes.fetch_add(1, Ordering::SeqCst) >= limit {
        front.handshakes.fetch_sub(1, Ordering::SeqCst);
        tracing::warn!(server = front.server, peer = %peer, limit, "refused: too many TLS handshakes in progress");
        return;
    }
    let relay_front = Arc::clone(front);
    let started = thread::Builder::new()
        .name(format!("unstick-{}-tls", front.server))
        .stack_size(RELAY_STACK)
        .spawn(move || serve_connection(&relay_front, stream, peer));
    if let Err(e) = started {
        front.handshakes.fetch_sub(1, Ordering::SeqCst);
        tracing::warn!(server = front.server, peer = %peer, error = %e, "cannot start a TLS thread; connection closed");
    }
}

/// One client: its handshake, then the relay.
fn serve_connection(front: &Front, socket: TcpStream, peer: SocketAddr) {
    let handshaken = handshake(front, &socket, peer);
    front.handshakes.fetch_sub(1, Ordering::SeqCst);
    let tls = match handshaken {
        Ok(Some(tls)) => tls,
        Ok(None) => return,
        Err(reason) => {
            tracing::warn!(server = front.server, peer = %peer, reason = %reason, "TLS handshake failed");
            return;
        }
    };
    let (near, far) = match front.pairs.pair() {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(server = front.server, peer = %peer, error = %e, "cannot reach the lobby; connection closed");
            return;
        }
    };
    {
        let handoff = front.handoff.lock().unwrap_or_else(PoisonError::into_inner);
        if handoff.0.send((far, peer)).is_err() {
            // The server is stopping.
            return;
        }
        handoff.1.wake();
    }
    if let Err(e) = relay(tls, &socket, &near) {
        tracing::debug!(server = front.server, peer = %peer, error = %e, "TLS connection ended");
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
    let mut first = [0u8; 1];
    loop {
        match socket.peek(&mut first) {
            Ok(0) => return Ok(None),
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_for(socket, READABLE, deadline)?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Ok(None),
        }
    }
    if first[0] != TLS_HANDSHAKE_RECORD {
        tracing::warn!(server = front.server, peer = %peer, code = %ErrorCode::ForeignProtocol, "refused: a plaintext client on a TLS port");
        let reply = error_frame(
            ErrorCode::ForeignProtocol,
            "this server speaks TLS: connect to tls://HOST:PORT (the client's tls:// address form)",
        );
        let _ = (&*socket).write(&reply);
        let _ = socket.shutdown(SocketShutdown::Write);
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

/// Writes what rustls has to send, as far as the socket takes it now.
fn flush_tls(tls: &mut ServerConnection, socket: &TcpStream) -> io::Result<()> {
    while tls.wants_write() {
        match tls.write_tls(&mut &*socket) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Relays between the client's TLS connection and the lobby's loopback end until both are
/// done: the client's bytes, decrypted, to `near`; `near`'s, encrypted, to the client.
fn relay(mut tls: ServerConnection, socket: &TcpStream, near: &TcpStream) -> io::Result<()> {
    near.set_nonblocking(true)?;
    near.set_nodelay(true)?;
    let mut buf = vec![0u8; CHUNK];
    // Decrypted bytes not yet written to `near`.
    let mut to_near: Vec<u8> = Vec::with_capacity(CHUNK);
    let mut to_near_at = 0;
    // The client has nothing more to send (close_notify or end of stream).
    let mut client_done = false;
    let mut near_write_shut = false;
    // The lobby closed its side; close_notify is queued.
    let mut lobby_done = false;
    let mut linger_until: Option<Instant> = None;
    let mut wire = ReadAhead::with_capacity(socket, CHUNK);
    // Application data that came with the handshake's last flight.
    drain_plaintext(&mut tls, &mut to_near, &mut buf, &mut client_done);
    loop {
        flush_tls(&mut tls, socket)?;
        while to_near_at < to_near.len() {
            match (&*near).write(&to_near[to_near_at..]) {
                Ok(n) => to_near_at += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if to_near_at == to_near.len() {
            to_near.clear();
            to_near.shrink_to(CHUNK);
            to_near_at = 0;
            if client_done && !near_write_shut {
                let _ = near.shutdown(SocketShutdown::Write);
                near_write_shut = true;
            }
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
        let mut left = linger_until.map(|until| until.saturating_duration_since(Instant::now()));
        if left.is_some_and(|left| left.is_zero()) {
            return Ok(());
        }
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
                        drain_plaintext(&mut tls, &mut to_near, &mut buf, &mut client_done);
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

/// Moves the plaintext rustls holds into `out`; notes a clean or unclean end of the client's
/// data.
fn drain_plaintext(tls: &mut ServerConnection, out: &mut Vec<u8>, buf: &mut [u8], done: &mut bool) {
    loop {
        match tls.reader().read(buf) {
            Ok(0) => {
                *done = true;
                return;
            }
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => {
                *done = true;
                return;
            }
        }
    }
}

/// Pairs of connected loopback sockets, made through a listener of the front's own.
struct LoopbackPairs {
    listener: TcpListener,
    addr: SocketAddr,
    making: Mutex<()>,
}

impl LoopbackPairs {
    fn new() -> io::Result<LoopbackPairs> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        Ok(LoopbackPairs {
            listener,
            addr,
            making: Mutex::new(()),
        })
    }

    /// A connected pair: the near end (the front's) and the far end (the lobby's). A stranger
    /// that connected to the listener is dropped.
    fn pair(&self) -> io::Result<(TcpStream, TcpStream)> {
        let _one_at_a_time = self.making.lock().unwrap_or_else(PoisonError::into_inner);
        let near = TcpStream::connect(self.addr)?;
        let near_addr = near.local_addr()?;
        for _ in 0..64 {
            let (far, from) = self.listener.accept()?;
            if from == near_addr {
                return Ok((near, far));
            }
        }
        Err(io::Error::other(
            "the front's loopback listener is flooded by strangers",
        ))
    }
}
