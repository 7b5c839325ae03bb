//! Wake-ups for a thread that waits for sockets: a connected pair of sockets, one end written a
//! byte per wake-up, the other waited for with the sockets. A Unix socket pair on Unix; on
//! Windows, which has no `socketpair`, a pair of loopback TCP sockets.

use std::io::{self, Read, Write};

use crate::poll::{Pollable, RawSocket};

#[cfg(unix)]
type Stream = std::os::unix::net::UnixStream;
#[cfg(windows)]
type Stream = std::net::TcpStream;

/// The end that turns readable when woken.
#[derive(Debug)]
pub(crate) struct WakeSignal(Stream);

/// The end that wakes. Dropping every clone of it makes the [`WakeSignal`] hung up (readable
/// for good), and the other way round.
#[derive(Debug)]
pub(crate) struct Waker(Stream);

/// A connected pair, both ends non-blocking.
pub(crate) fn pair() -> io::Result<(WakeSignal, Waker)> {
    let (signal, waker) = connected_pair()?;
    signal.set_nonblocking(true)?;
    waker.set_nonblocking(true)?;
    Ok((WakeSignal(signal), Waker(waker)))
}

#[cfg(unix)]
fn connected_pair() -> io::Result<(Stream, Stream)> {
    Stream::pair()
}

/// Two loopback TCP sockets connected to each other, through a listener of their own that is
/// closed once they are (a stranger that connected to it meanwhile is dropped).
#[cfg(windows)]
fn connected_pair() -> io::Result<(Stream, Stream)> {
    use std::net::{Ipv4Addr, TcpListener};
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let waker = Stream::connect(listener.local_addr()?)?;
    let waker_addr = waker.local_addr()?;
    for _ in 0..64 {
        let (signal, from) = listener.accept()?;
        if from == waker_addr {
            // A wake-up is one byte: it must not wait for an acknowledgement (Nagle).
            signal.set_nodelay(true)?;
            waker.set_nodelay(true)?;
            return Ok((signal, waker));
        }
    }
    Err(io::Error::other(
        "a wake-up socket's loopback listener is flooded by strangers",
    ))
}

impl WakeSignal {
    /// Reads every pending wake-up, so that the socket waits again.
    pub(crate) fn drain(&self) {
        let mut buf = [0u8; 256];
        while matches!((&self.0).read(&mut buf), Ok(n) if n > 0) {}
    }
}

impl Waker {
    /// Wakes the signal's thread. A full socket buffer means a wake-up is already pending.
    pub(crate) fn wake(&self) {
        let _ = (&self.0).write(&[1]);
    }

    /// Another handle to the same end.
    pub(crate) fn try_clone(&self) -> io::Result<Waker> {
        self.0.try_clone().map(Waker)
    }
}

impl Pollable for WakeSignal {
    fn raw_socket(&self) -> RawSocket {
        self.0.raw_socket()
    }
}

impl Pollable for Waker {
    fn raw_socket(&self) -> RawSocket {
        self.0.raw_socket()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poll::{PollFd, READABLE, poll};
    use std::time::Duration;

    fn readable(socket: &impl Pollable, wait: Duration) -> bool {
        let mut fds = [PollFd::new(socket.raw_socket(), READABLE)];
        poll(&mut fds, Some(wait)).unwrap() == 1
    }

    #[test]
    fn a_wake_up_is_readable_until_drained_and_a_dropped_waker_hangs_up() {
        let (signal, waker) = pair().unwrap();
        assert!(!readable(&signal, Duration::from_millis(10)));
        waker.wake();
        waker.wake();
        assert!(readable(&signal, Duration::from_secs(5)));
        signal.drain();
        assert!(!readable(&signal, Duration::from_millis(10)));
        drop(waker);
        assert!(readable(&signal, Duration::from_secs(5)));
        drop(signal);
    }
}
