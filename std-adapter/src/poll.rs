//! Waiting for a few sockets at once: `poll(2)` on Unix, `WSAPoll` on Windows (the same call
//! under another name: an array of sockets, the events wanted, the events found).
//!
//! Entries that want no event are skipped: a closed socket would otherwise be reported hung up
//! however often it is asked, and a caller waiting on it would spin.

use std::io;
use std::time::Duration;

/// A socket as the system names it: a descriptor on Unix, a `SOCKET` on Windows.
#[cfg(unix)]
pub(crate) type RawSocket = std::os::fd::RawFd;
/// A socket as the system names it: a descriptor on Unix, a `SOCKET` on Windows.
#[cfg(windows)]
pub(crate) type RawSocket = std::os::windows::io::RawSocket;

/// Something with a socket to wait for (TCP streams and listeners, wake-up sockets).
pub(crate) trait Pollable {
    /// The socket, borrowed for as long as `self` lives.
    fn raw_socket(&self) -> RawSocket;
}

#[cfg(unix)]
impl<T: std::os::fd::AsRawFd> Pollable for T {
    fn raw_socket(&self) -> RawSocket {
        self.as_raw_fd()
    }
}

#[cfg(windows)]
impl<T: std::os::windows::io::AsRawSocket> Pollable for T {
    fn raw_socket(&self) -> RawSocket {
        self.as_raw_socket()
    }
}

/// Bits of what is wanted of a socket, or found on it.
pub(crate) type Events = i16;

#[cfg(unix)]
mod sys {
    pub(crate) use libc::pollfd as PollFd;
    pub(crate) const READABLE: super::Events = libc::POLLIN;
    pub(crate) const WRITABLE: super::Events = libc::POLLOUT;
    pub(crate) const HUNG_UP: super::Events = libc::POLLHUP;
}

#[cfg(windows)]
mod sys {
    pub(crate) use WinSock::WSAPOLLFD as PollFd;
    use windows_sys::Win32::Networking::WinSock;
    pub(crate) const READABLE: super::Events = WinSock::POLLIN;
    pub(crate) const WRITABLE: super::Events = WinSock::POLLOUT;
    pub(crate) const HUNG_UP: super::Events = WinSock::POLLHUP;
}

/// Bytes (or a connection, on a listener) are waiting to be read.
pub(crate) const READABLE: Events = sys::READABLE;
/// A write would not block.
pub(crate) const WRITABLE: Events = sys::WRITABLE;
/// The peer is gone (found only; never wanted).
pub(crate) const HUNG_UP: Events = sys::HUNG_UP;

/// One socket to wait for.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub(crate) struct PollFd(sys::PollFd);

impl PollFd {
    /// Waits for `events` on `socket`; with none, the entry is skipped.
    #[cfg(unix)]
    pub(crate) fn new(socket: RawSocket, events: Events) -> PollFd {
        PollFd(libc::pollfd {
            // poll(2) skips a negative descriptor.
            fd: if events == 0 { -1 } else { socket },
            events,
            revents: 0,
        })
    }

    /// Waits for `events` on `socket`; with none, the entry is skipped.
    #[cfg(windows)]
    pub(crate) fn new(socket: RawSocket, events: Events) -> PollFd {
        PollFd(sys::PollFd {
            // RawSocket is a u64 holding a SOCKET (a usize): a Windows socket handle fits.
            fd: socket as usize,
            events,
            revents: 0,
        })
    }

    /// The events found by the last [`poll`] (none for a skipped entry).
    pub(crate) fn found(&self) -> Events {
        self.0.revents
    }

    #[cfg(windows)]
    fn wants_nothing(&self) -> bool {
        self.0.events == 0
    }
}

/// Milliseconds for a wait of `timeout` (rounded up; `None` waits without end).
pub(crate) fn timeout_millis(timeout: Option<Duration>) -> i32 {
    timeout.map_or(-1, |t| {
        t.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
    })
}

/// What a `poll(2)`/`epoll_wait(2)` return value says: how many sockets are ready, an
/// interruption by a signal being a wake-up with none.
#[cfg(unix)]
pub(crate) fn waited(n: libc::c_int) -> io::Result<usize> {
    match usize::try_from(n) {
        Ok(ready) => Ok(ready),
        Err(_) => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(e)
            }
        }
    }
}

/// Waits up to `timeout` (`None`: without end) until one of `fds` has what it wants, and
/// returns how many do (0 when the time ran out or a signal interrupted the wait).
#[cfg(unix)]
pub(crate) fn poll(fds: &mut [PollFd], timeout: Option<Duration>) -> io::Result<usize> {
    let nfds = libc::nfds_t::try_from(fds.len()).map_err(io::Error::other)?;
    // SAFETY: `fds` is a live, exclusively borrowed slice of `nfds` PollFd, each a
    // transparent libc::pollfd, which is what poll(2) reads and writes.
    let n = unsafe { libc::poll(fds.as_mut_ptr().cast(), nfds, timeout_millis(timeout)) };
    waited(n)
}

/// Waits up to `timeout` (`None`: without end) until one of `fds` has what it wants, and
/// returns how many do (0 when the time ran out).
#[cfg(windows)]
pub(crate) fn poll(fds: &mut [PollFd], timeout: Option<Duration>) -> io::Result<usize> {
    use windows_sys::Win32::Networking::WinSock::{SOCKET_ERROR, WSAGetLastError, WSAPoll};
    // WSAPoll has no entry to skip (and fails on an empty array): wait for the others only.
    if fds.iter().any(PollFd::wants_nothing) {
        let mut wanted: Vec<PollFd> = fds
            .iter()
            .copied()
            .filter(|fd| !fd.wants_nothing())
            .collect();
        if wanted.is_empty() {
            // Nothing to wait for: the wait is all time, as poll(2) makes it.
            match timeout {
                Some(timeout) => std::thread::sleep(timeout),
                None => loop {
                    std::thread::park();
                },
            }
            return Ok(0);
        }
        let n = poll(&mut wanted, timeout)?;
        let mut found = wanted.iter();
        for fd in fds.iter_mut() {
            fd.0.revents = match fd.wants_nothing() {
                true => 0,
                false => found.next().map_or(0, PollFd::found),
            };
        }
        return Ok(n);
    }
    let count = u32::try_from(fds.len()).map_err(io::Error::other)?;
    // SAFETY: `fds` is a live, exclusively borrowed slice of `count` PollFd, each a transparent
    // WSAPOLLFD, which is what WSAPoll reads and writes.
    let n = unsafe { WSAPoll(fds.as_mut_ptr().cast(), count, timeout_millis(timeout)) };
    if n == SOCKET_ERROR {
        // SAFETY: WSAGetLastError takes nothing and reads this thread's last Winsock error.
        return Err(io::Error::from_raw_os_error(unsafe { WSAGetLastError() }));
    }
    Ok(usize::try_from(n).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn a_socket_is_readable_once_bytes_arrive_and_skipped_entries_stay_quiet() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let mut fds = [
            PollFd::new(server.raw_socket(), READABLE),
            PollFd::new(client.raw_socket(), 0),
        ];
        assert_eq!(poll(&mut fds, Some(Duration::from_millis(10))).unwrap(), 0);
        client.write_all(b"x").unwrap();
        assert_eq!(poll(&mut fds, Some(Duration::from_secs(5))).unwrap(), 1);
        assert_ne!(fds[0].found() & READABLE, 0);
        assert_eq!(fds[1].found(), 0);
    }
}
