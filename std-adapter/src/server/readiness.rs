//! Which of many sockets have something to read: `epoll(7)` on Linux, where a wait costs the
//! same however many sockets are watched, `poll(2)` elsewhere. Each socket is watched under a
//! key of the caller's choosing, and level-triggered: a socket stays ready until it is read dry.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// Watches sockets for input.
pub(crate) struct Readiness {
    #[cfg(target_os = "linux")]
    epoll: std::os::fd::OwnedFd,
    #[cfg(not(target_os = "linux"))]
    watched: std::collections::HashMap<u64, RawFd>,
}

/// What a `poll(2)`/`epoll_wait(2)` return value says: how many descriptors are ready, an
/// interruption by a signal being a wake-up with none.
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

/// Milliseconds for a wait of `timeout` (rounded up; `None` waits without end).
pub(crate) fn timeout_millis(timeout: Option<Duration>) -> libc::c_int {
    timeout.map_or(-1, |t| {
        t.as_micros().div_ceil(1000).min(libc::c_int::MAX as u128) as libc::c_int
    })
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

    fn control(&self, op: libc::c_int, fd: RawFd, key: u64) -> io::Result<()> {
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
    pub(crate) fn watch(&mut self, fd: RawFd, key: u64) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_ADD, fd, key)
    }

    /// Stops watching `fd` (before it is closed or handed on: a duplicate of it elsewhere
    /// would keep it watched).
    pub(crate) fn unwatch(&mut self, fd: RawFd) {
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
    pub(crate) fn watch(&mut self, fd: RawFd, key: u64) -> io::Result<()> {
        self.watched.insert(key, fd);
        Ok(())
    }

    /// Stops watching `fd`.
    pub(crate) fn unwatch(&mut self, fd: RawFd) {
        self.watched.retain(|_, watched| *watched != fd);
    }

    /// Waits up to `timeout` and puts the keys of the ready sockets in `ready`.
    pub(crate) fn wait(
        &mut self,
        timeout: Option<Duration>,
        ready: &mut Vec<u64>,
    ) -> io::Result<()> {
        let (keys, mut fds): (Vec<u64>, Vec<libc::pollfd>) = self
            .watched
            .iter()
            .map(|(&key, &fd)| {
                let pollfd = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                (key, pollfd)
            })
            .unzip();
        ready.clear();
        let nfds = libc::nfds_t::try_from(fds.len()).map_err(io::Error::other)?;
        // SAFETY: `fds` is a live, exclusively borrowed vector of `nfds` pollfd structs, which
        // is what poll(2) reads and writes.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), nfds, timeout_millis(timeout)) };
        if waited(n)? == 0 {
            return Ok(());
        }
        ready.extend(
            keys.iter()
                .zip(&fds)
                .filter(|(_, fd)| fd.revents != 0)
                .map(|(key, _)| *key),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn ready_sockets_are_reported_by_key_until_unwatched() {
        let mut readiness = Readiness::new().unwrap();
        let (a, mut a_peer) = UnixStream::pair().unwrap();
        let (b, _b_peer) = UnixStream::pair().unwrap();
        readiness.watch(a.as_raw_fd(), 7).unwrap();
        readiness.watch(b.as_raw_fd(), 9).unwrap();
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
        readiness.unwatch(a.as_raw_fd());
        readiness
            .wait(Some(Duration::from_millis(10)), &mut ready)
            .unwrap();
        assert!(ready.is_empty());
    }
}
