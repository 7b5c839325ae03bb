//! Linux: a watchdog in each command's process group, so that the group dies with the server
//! however the server ends (`kill -9`, the OOM killer, a crash), not only when it stops.
//!
//! The watchdog is a process forked from the server that runs no program. It leads the
//! command's process group (the shell is spawned into it), holds the read end of a pipe whose
//! write end only the server holds (the lifeline), and blocks reading it. When the server
//! process ends, whatever ends it, the kernel closes the write end; the read returns, and the
//! watchdog sends SIGKILL to its own group, which is the command's. Being the group's leader and
//! the server's child, it keeps the group's id from being reused until the server reaps it.
//!
//! A parent-death signal (`PR_SET_PDEATHSIG`) on the shell would not do: it fires when the
//! *thread* that forked ends (the server's worker threads come and go), and it reaches the shell
//! only, not what the shell started.
//!
//! While the server runs the watchdog does nothing: the server kills the group, watchdog
//! included, whenever a command ends, and reaps the watchdog after the shell.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The watchdog's name in `ps` and `/proc/PID/comm` (at most 15 bytes).
const WATCHDOG_NAME: &[u8; 14] = b"unstick-watch\0";

/// Descriptors closed one by one in the watchdog where `close_range(2)` is missing (kernels
/// before 5.9), at most.
const MAX_FDS_CLOSED_ONE_BY_ONE: libc::rlim_t = 1 << 20;

/// A command's watchdog, forked and leading a process group of its own, into which the
/// command's shell is to be spawned. Dropping it kills and reaps the watchdog.
#[derive(Debug)]
pub(super) struct GroupWatchdog {
    pid: libc::pid_t,
    /// The write end of the watchdog's lifeline; its only copy outside short-lived forks.
    _lifeline: OwnedFd,
    reaped: bool,
}

impl GroupWatchdog {
    /// Forks the watchdog and makes it the leader of a new process group.
    pub(super) fn start() -> io::Result<GroupWatchdog> {
        let (watched_end, lifeline) = lifeline_pipe()?;
        // Everything the watchdog uses is made before the fork: it may not allocate.
        let fd_limit = fds_to_close();
        let all_signals = all_signals()?;
        // SAFETY: fork(2) in a process with other threads: the child runs only `watch`, which
        // makes async-signal-safe system calls on values made before the fork (no allocation,
        // no lock, no unwinding) and never returns. The parent goes on as after any fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            // SAFETY: this is the child of the fork above, as `watch` requires.
            unsafe { watch(watched_end.as_raw_fd(), fd_limit, &all_signals) }
        }
        drop(watched_end);
        let watchdog = GroupWatchdog {
            pid,
            _lifeline: lifeline,
            reaped: false,
        };
        // The watchdog makes itself a group leader too; whichever comes first, it leads its
        // group before the shell is spawned into it.
        // SAFETY: setpgid(2) takes plain integers; `pid` is our child, not yet reaped.
        if unsafe { libc::setpgid(pid, pid) } != 0 {
            return Err(io::Error::last_os_error()); // dropping `watchdog` kills and reaps it
        }
        Ok(watchdog)
    }

    /// The id of the group it leads: its pid.
    pub(super) fn pgid(&self) -> libc::pid_t {
        self.pid
    }

    /// Kills the watchdog (if the group's kill has not already) and reaps it; from then on the
    /// group's id may be reused.
    pub(super) fn kill_and_reap(&mut self) {
        if self.reaped {
            return;
        }
        // SAFETY: kill(2) takes plain integers; the watchdog is our child and not yet reaped,
        // so its pid is still its own.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
        }
        let mut status = 0;
        loop {
            // SAFETY: `status` is a live, exclusively borrowed int, all waitpid(2) writes.
            let rc = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if rc >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                break;
            }
        }
        self.reaped = true;
    }
}

impl Drop for GroupWatchdog {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}

/// A pipe, both ends close-on-exec: (read end, write end).
fn lifeline_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as RawFd; 2];
    // SAFETY: `fds` is a live array of two ints, which is what pipe2(2) writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just made by the kernel for us and nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// How many descriptors the watchdog closes one by one where `close_range(2)` is missing: the
/// open-file limit, bounded.
fn fds_to_close() -> libc::c_int {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a live, exclusively borrowed rlimit, all getrlimit(2) writes.
    let known = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    let limit = if known {
        limit.rlim_cur.min(MAX_FDS_CLOSED_ONE_BY_ONE)
    } else {
        MAX_FDS_CLOSED_ONE_BY_ONE
    };
    libc::c_int::try_from(limit).unwrap_or(libc::c_int::MAX)
}

/// A signal set with every signal in it.
fn all_signals() -> io::Result<libc::sigset_t> {
    let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigfillset(3) initialises the set it is given, a live, exclusively borrowed one.
    if unsafe { libc::sigfillset(set.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: sigfillset succeeded, so the set is initialised.
    Ok(unsafe { set.assume_init() })
}

/// The watchdog's whole life: block every signal, lead a new group, keep no descriptor but the
/// lifeline's read end (the server's sockets and the other commands' pipes and lifelines must
/// not stay open in it), wait for the lifeline to end, then kill the group, itself included.
///
/// # Safety
///
/// Only for the child of a fork: it never returns, and calls nothing but async-signal-safe
/// system calls, on `all_signals` and its own stack.
unsafe fn watch(lifeline: RawFd, fd_limit: libc::c_int, all_signals: &libc::sigset_t) -> ! {
    // SAFETY: sigprocmask(2), setpgid(2) and prctl(PR_SET_NAME) read only `all_signals` and
    // the static name, both live; none of them allocates or locks. The child has one thread.
    unsafe {
        libc::sigprocmask(libc::SIG_SETMASK, all_signals, std::ptr::null_mut());
        libc::setpgid(0, 0);
        let unused: libc::c_ulong = 0;
        libc::prctl(
            libc::PR_SET_NAME,
            WATCHDOG_NAME.as_ptr(),
            unused,
            unused,
            unused,
        );
    }
    close_all_but(lifeline, fd_limit);
    let mut byte = 0u8;
    loop {
        // SAFETY: `byte` is one live, exclusively borrowed byte, all read(2) writes.
        let n = unsafe { libc::read(lifeline, (&raw mut byte).cast(), 1) };
        // Nobody writes to the lifeline; a read returns at its end (or on an error that only a
        // vanished lifeline could cause). EINTR cannot come with every signal blocked, but is
        // not an end either.
        let interrupted = n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR);
        if n <= 0 && !interrupted {
            break;
        }
    }
    // SAFETY: kill(2) and _exit(2) take plain integers. Pid 0 is this process's group, which
    // it leads and so is the command's; SIGKILL ends the watchdog too, and _exit is for
    // the case it could not be sent.
    unsafe {
        libc::kill(0, libc::SIGKILL);
        libc::_exit(0)
    }
}

/// Closes every descriptor but `keep`: with `close_range(2)`, or one by one below `fd_limit`.
fn close_all_but(keep: RawFd, fd_limit: libc::c_int) {
    let Ok(keep_index) = libc::c_uint::try_from(keep) else {
        return;
    };
    let below = keep_index == 0 || close_range(0, keep_index - 1);
    if below && close_range(keep_index + 1, libc::c_uint::MAX) {
        return;
    }
    for fd in (0..fd_limit).filter(|fd| *fd != keep) {
        // SAFETY: close(2) takes a plain integer; in the watchdog nothing else uses the
        // descriptors closed (a closed one yields EBADF).
        unsafe {
            libc::close(fd);
        }
    }
}

/// `close_range(first, last, 0)`; whether the kernel did it.
fn close_range(first: libc::c_uint, last: libc::c_uint) -> bool {
    let flags: libc::c_uint = 0;
    // SAFETY: close_range(2) takes plain integers and closes descriptors only; in the watchdog
    // nothing else uses them.
    unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) == 0 }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::Command;
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn the_watchdog_kills_its_group_when_its_lifeline_ends() {
        let mut watchdog = GroupWatchdog::start().unwrap();
        let mut sleeper = Command::new("sleep")
            .arg("60")
            .process_group(watchdog.pgid())
            .spawn()
            .unwrap();
        // What a server that dies does: its end of the lifeline closes, it kills nothing.
        let (_, stand_in) = lifeline_pipe().unwrap();
        drop(std::mem::replace(&mut watchdog._lifeline, stand_in));
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = sleeper.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = sleeper.kill();
                let _ = sleeper.wait();
                panic!("the group outlived its watchdog's lifeline");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
        watchdog.kill_and_reap();
    }
}
