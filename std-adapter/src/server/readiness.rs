//! Which of many sockets have something to read: `epoll(7)` on Linux, where a wait costs the
//! same however many sockets are watched, `poll(2)` elsewhere (`WSAPoll` on Windows). Each
//! socket is watched under a key of the caller's choosing, and level-triggered: a socket stays
//! ready until it is read dry.

use std::io;
use std::time::Duration;

use crate::poll::RawSocket;
// The shell's process code waits with these too (they live with the other waiting helpers).
#[cfg(unix)]
pub(crate) use crate::poll::{timeout_millis, waited};

/// Watches sockets for input.
pub(crate) struct Readiness {
    #[cfg(target_os = "linux")]
    epoll: std::os::fd::OwnedFd,
    #[cfg(not(target_os = "linux"))]
    watched: std::collections::HashMap<u64, RawSocket>,
}

#[cfg(target_os = "linux")]
impl Readiness {
    pub(crate) fn new() -> io::Result<Readiness> {
        use std::os::fd::FromRawFd;
        // SAFETY: epoll_create1(2) takes a flag and returns a new descriptor or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created for us and nothing else owns it.
        let epoll = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        Ok(Readiness { epoll })
    }

    fn control(&self, op: libc::c_int, fd: RawSocket, key: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: key,
        };
        // SAFETY: `event` is a live epoll_event, which is all epoll_ctl(2) reads; the
        // descriptors are plain integers.
        let rc = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut event) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Watches `fd` under `key`.
    pub(crate) fn watch(&mut self, fd: RawSocket, key: u64) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_ADD, fd, key)
    }

    /// Stops watching `fd` (before it is closed or handed on: a duplicate of it elsewhere
    /// would keep it watched).
    pub(crate) fn unwatch(&mut self, fd: RawSocket) {
        let _ = self.control(libc::EPOLL_CTL_DEL, fd, 0);
    }

    /// Waits up to `timeout` and puts the keys of the ready sockets in `ready`.
    pub(crate) fn wait(
        &mut self,
        timeout: Option<Duration>,
        ready: &mut Vec<u64>,
    ) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        const BATCH: usize = 256;
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; BATCH];
        ready.clear();
        // SAFETY: `events` is a live, exclusively borrowed array of BATCH epoll_event structs,
        // which is what epoll_wait(2) writes (at most BATCH of them).
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                events.as_mut_ptr(),
                BATCH as libc::c_int,
                timeout_millis(timeout),
            )
        };
        let n = waited(n)?;
        ready.extend(events[..n].iter().map(|e| e.u64));
        Ok(())
    }
}

#[cfg(not(target_os = "linux"))]
impl Readiness {
    pub(crate) fn new() -> io::Result<Readiness> {
        Ok(Readiness {
            watched: std::collections::HashMap::new(),
        })
    }

    /// Watches `fd` under `key`.
    pub(crate) fn watch(&mut self, fd: RawSocket, key: u64) -> io::Result<()> {
        self.watched.insert(key, fd);
        Ok(())
    }

    /// Stops watching `fd`.
    pub(crate) fn unwatch(&mut self, fd: RawSocket) {
        self.watched.retain(|_, watched| *watched != fd);
    }

    /// Waits up to `timeout` and puts the keys of the ready sockets in `ready`.
    pub(crate) fn wait(
        &mut self,
        timeout: Option<Duration>,
        ready: &mut Vec<u64>,
    ) -> io::Result<()> {
        use crate::poll::{PollFd, READABLE, poll};
        let (keys, mut fds): (Vec<u64>, Vec<PollFd>) = self
            .watched
            .iter()
            .map(|(&key, &fd)| (key, PollFd::new(fd, READABLE)))
            .unzip();
        ready.clear();
        if poll(&mut fds, timeout)? == 0 {
            return Ok(());
        }
        ready.extend(
            keys.iter()
                .zip(&fds)
                .filter(|(_, fd)| fd.found() != 0)
                .map(|(key, _)| *key),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poll::Pollable;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    /// A connected pair of loopback TCP sockets.
    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let near = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        (near, listener.accept().unwrap().0)
    }

    #[test]
    fn ready_sockets_are_reported_by_key_until_unwatched() {
        let mut readiness = Readiness::new().unwrap();
        let (a, mut a_peer) = pair();
        let (b, _b_peer) = pair();
        readiness.watch(a.raw_socket(), 7).unwrap();
        readiness.watch(b.raw_socket(), 9).unwrap();
        let mut ready = Vec::new();
        readiness
            .wait(Some(Duration::from_millis(10)), &mut ready)
            .unwrap();
        assert!(ready.is_empty());
        a_peer.write_all(b"x").unwrap();
        readiness
            .wait(Some(Duration::from_secs(5)), &mut ready)
            .unwrap();
        assert_eq!(ready, [7]);
        readiness.unwatch(a.raw_socket());
        readiness
            .wait(Some(Duration::from_millis(10)), &mut ready)
            .unwrap();
        assert!(ready.is_empty());
    }
}
