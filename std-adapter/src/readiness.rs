//! Waiting for sockets.
//!
//! [`Readiness`] watches many sockets at once for input, each under a key of the caller's
//! choosing, on the `polling` crate: `epoll(7)` on Linux, where a wait costs the same however
//! many sockets are watched, kqueue on macOS and the BSDs, IOCP on Windows. Sockets are watched
//! level-triggered: a socket is reported by every wait until it is read dry or unwatched. A
//! [`Waker`] ends a readiness's wait from another thread.
//!
//! [`wait_for`] waits for one socket: `poll(2)` (`WSAPoll` on Windows) through `rustix`, which
//! needs no descriptor of its own, where a poller takes three on Linux.

use std::io;
use std::sync::{Arc, Weak};
use std::time::Duration;

use polling::{AsSource, Event, Events, PollMode, Poller};
use rustix::event::{PollFd, PollFlags, Timespec};

/// Watches sockets for input.
pub(crate) struct Readiness {
    poller: Arc<Poller>,
    events: Events,
}

impl Readiness {
    pub(crate) fn new() -> io::Result<Readiness> {
        Ok(Readiness {
            poller: Arc::new(Poller::new()?),
            events: Events::new(),
        })
    }

    /// Watches `socket` under `key` (any but `usize::MAX`) until [`unwatch`](Self::unwatch),
    /// which must come before the socket is closed.
    pub(crate) fn watch(&mut self, socket: impl AsSource, key: usize) -> io::Result<()> {
        // SAFETY: `add_with_mode` asks that the socket be deleted from the poller before it is
        // closed (the poller keeps its raw handle). Every watcher unwatches a socket before it
        // closes it or hands it on: the lobby when a connection leaves it (`Lobby::leave`, the
        // only way out of its waiting map, emptied before the lobby returns) and when it stops
        // accepting, the TLS front when its accept loop ends.
        unsafe {
            self.poller
                .add_with_mode(&socket.source(), Event::readable(key), PollMode::Level)
        }
    }

    /// Stops watching `socket` (before it is closed or handed on: a duplicate of it elsewhere
    /// would keep it watched). Watching it again is allowed.
    pub(crate) fn unwatch(&mut self, socket: impl AsSource) {
        let _ = self.poller.delete(socket);
    }

    /// Waits up to `timeout` (`None`: without end) and puts the keys of the ready sockets in
    /// `ready`: none when the time ran out or a [`Waker`] woke the wait.
    pub(crate) fn wait(
        &mut self,
        timeout: Option<Duration>,
        ready: &mut Vec<usize>,
    ) -> io::Result<()> {
        ready.clear();
        self.events.clear();
        self.poller.wait(&mut self.events, timeout)?;
        ready.extend(self.events.iter().map(|event| event.key));
        Ok(())
    }

    /// A handle that wakes this readiness's waits from any thread.
    pub(crate) fn waker(&self) -> Waker {
        Waker(Arc::downgrade(&self.poller))
    }
}

/// Ends the current wait of a [`Readiness`], or its next one when none is under way (wake-ups
/// before a wait count as one). Does nothing once the readiness is dropped.
#[derive(Clone, Debug)]
pub(crate) struct Waker(Weak<Poller>);

impl Waker {
    pub(crate) fn wake(&self) {
        if let Some(poller) = self.0.upgrade() {
            let _ = poller.notify();
        }
    }
}

/// What [`wait_for`] waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Interest {
    /// Bytes (or a connection, on a listener) are waiting to be read.
    Read,
    /// A write would not block.
    Write,
}

/// Waits up to `timeout` until `socket` is ready for `interest`, hung up or failed; whether it
/// is (`false`: the time ran out, or a signal came).
pub(crate) fn wait_for(
    socket: &impl rustix::fd::AsFd,
    interest: Interest,
    timeout: Duration,
) -> io::Result<bool> {
    let flags = match interest {
        Interest::Read => PollFlags::IN,
        Interest::Write => PollFlags::OUT,
    };
    let mut fds = [PollFd::new(socket, flags)];
    // Past what a timespec holds, the wait has no end.
    let timeout = Timespec::try_from(timeout).ok();
    match rustix::event::poll(&mut fds, timeout.as_ref()) {
        Ok(found) => Ok(found > 0 && !fds[0].revents().is_empty()),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::sync::mpsc;
    use std::thread;

    /// A connected pair of loopback TCP sockets.
    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let near = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        (near, listener.accept().unwrap().0)
    }

    /// The keys a wait of at most `wait` finds ready.
    fn ready_within(readiness: &mut Readiness, wait: Duration) -> Vec<usize> {
        let mut ready = Vec::new();
        readiness.wait(Some(wait), &mut ready).unwrap();
        ready
    }

    #[test]
    fn ready_sockets_are_reported_by_key_until_read_dry_or_unwatched() {
        let quiet = Duration::from_millis(10);
        let long = Duration::from_secs(5);
        let mut readiness = Readiness::new().unwrap();
        let (a, mut a_peer) = pair();
        let (b, mut b_peer) = pair();
        readiness.watch(&a, 7).unwrap();
        readiness.watch(&b, 9).unwrap();
        assert!(ready_within(&mut readiness, quiet).is_empty());
        a_peer.write_all(b"x").unwrap();
        assert_eq!(ready_within(&mut readiness, long), [7]);
        // Level-triggered: still ready, as nothing was read.
        assert_eq!(ready_within(&mut readiness, long), [7]);
        readiness.unwatch(&a);
        assert!(ready_within(&mut readiness, quiet).is_empty());
        // Read dry, a socket waits again.
        b_peer.write_all(b"y").unwrap();
        assert_eq!(ready_within(&mut readiness, long), [9]);
        std::io::Read::read(&mut &b, &mut [0u8; 1]).unwrap();
        assert!(ready_within(&mut readiness, quiet).is_empty());
        readiness.unwatch(&b);
    }

    #[test]
    fn a_wake_up_ends_the_wait_under_way_or_the_next_one() {
        let mut readiness = Readiness::new().unwrap();
        let waker = readiness.waker();
        // Woken before it waits: the next wait returns at once, with no key.
        waker.wake();
        let mut ready = vec![1];
        readiness.wait(None, &mut ready).unwrap();
        assert!(ready.is_empty());
        // Woken from another thread while it waits.
        let (done_tx, done) = mpsc::channel();
        let waiting = thread::spawn(move || {
            let mut ready = Vec::new();
            readiness.wait(None, &mut ready).unwrap();
            let _ = done_tx.send(ready);
            readiness
        });
        let mut woken = None;
        for _ in 0..100 {
            waker.wake();
            if let Ok(ready) = done.recv_timeout(Duration::from_millis(100)) {
                woken = Some(ready);
                break;
            }
        }
        assert_eq!(woken, Some(Vec::new()), "not woken");
        drop(waiting.join().unwrap());
        // A waker outliving its readiness does nothing.
        waker.wake();
    }

    #[test]
    fn one_socket_is_ready_once_bytes_arrive() {
        let (near, mut far) = pair();
        assert!(!wait_for(&near, Interest::Read, Duration::ZERO).unwrap());
        assert!(wait_for(&near, Interest::Write, Duration::from_secs(5)).unwrap());
        far.write_all(b"x").unwrap();
        assert!(wait_for(&near, Interest::Read, Duration::from_secs(5)).unwrap());
        // A hung-up socket counts as ready: a read says so at once.
        drop(far);
        std::io::Read::read(&mut &near, &mut [0u8; 1]).unwrap();
        assert!(wait_for(&near, Interest::Read, Duration::from_secs(5)).unwrap());
    }
}
