//! Linux: a keeper process that kills the commands' process groups when the server dies,
//! however it dies (`kill -9`, the OOM killer, a crash), not only when it stops.
//!
//! The keeper is forked from the server once, when the server starts to serve (or, failing
//! that, at its first command), and runs no program. It shares a table of process group ids with the server (an anonymous shared
//! mapping made before the fork) and holds the read end of a pipe whose write end only the
//! server holds (the lifeline). The server stores each command's group id in a free slot of the
//! table when the group is spawned, and clears the slot once the group is killed and its leader
//! reaped: two memory stores, no system call, and nothing wakes the keeper. The keeper only
//! blocks reading the lifeline. When the server process ends, whatever ends it, the kernel
//! closes the write end; the read returns, and the keeper sends SIGKILL to every group still in
//! the table, then exits.
//!
//! What is not covered: a group spawned in the microseconds between its spawn returning and
//! its id being stored, should the server die exactly then.
//!
//! A parent-death signal (`PR_SET_PDEATHSIG`) on the shell would not do: it fires when the
//! *thread* that forked ends (the server's worker threads come and go), and it reaches the shell
//! only, not what the shell started.
//!
//! Should the keeper itself die (an administrator's `kill`, the OOM killer), the next command
//! finds it gone: it is reaped and a new one forked, which shares the same table.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use rustix::mm::{MapFlags, ProtFlags};
use rustix::pipe::PipeFlags;
use rustix::process::{Pid, Resource, Signal, WaitOptions};

/// The keeper's name in `ps` and `/proc/PID/comm` (at most 15 bytes).
const KEEPER_NAME: &CStr = c"unstick-keeper";

/// Groups the table holds (256 KiB shared); a server runs far fewer commands at once. Beyond
/// it, a group is not kept (the server still kills it itself whenever it stops normally).
const TABLE_SLOTS: usize = 1 << 16;

/// Descriptors closed one by one in the keeper where `close_range(2)` is missing (kernels
/// before 5.9), at most.
const MAX_FDS_CLOSED_ONE_BY_ONE: u64 = 1 << 20;

/// The process's keeper, forked on first use.
static KEEPER: OnceLock<GroupKeeper> = OnceLock::new();

/// The server's side of the keeper: the shared table, which slots are free, and the keeper.
#[derive(Debug)]
pub(super) struct GroupKeeper {
    state: Mutex<KeeperState>,
}

#[derive(Debug, Default)]
struct KeeperState {
    /// The table shared with the keeper, once made.
    table: Option<SharedTable>,
    /// The keeper running now, if one could be forked.
    running: Option<RunningKeeper>,
    /// Slots never used yet start here.
    fresh: usize,
    /// Slots used and cleared since.
    free: Vec<usize>,
    /// Where each kept group is.
    kept: Vec<(Pid, usize)>,
}

#[derive(Debug)]
struct RunningKeeper {
    pid: Pid,
    /// The write end of its lifeline: the only copy (close-on-exec, so no command holds it).
    _lifeline: OwnedFd,
}

impl GroupKeeper {
    /// The process's keeper.
    pub(super) fn get() -> &'static GroupKeeper {
        KEEPER.get_or_init(GroupKeeper::new)
    }

    fn new() -> GroupKeeper {
        GroupKeeper {
            state: Mutex::new(KeeperState::default()),
        }
    }

    /// Forks the keeper if none runs yet.
    pub(super) fn start(&self) -> io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.ensure_running()
    }

    /// Keeps group `pgid`: the keeper kills it if the server dies first. `Err` when no keeper
    /// could be started (the command still runs, without that cover).
    pub(super) fn keep(&self, pgid: Pid) -> io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.ensure_running()?;
        let slot = match state.free.pop() {
            Some(slot) => slot,
            None if state.fresh < TABLE_SLOTS => {
                state.fresh += 1;
                state.fresh - 1
            }
            None => return Err(io::Error::other("the keeper's table is full")),
        };
        state.kept.push((pgid, slot));
        state.slots()[slot].store(pgid.as_raw_pid(), Ordering::Release);
        Ok(())
    }

    /// Stops keeping group `pgid`: it was killed and its leader reaped.
    pub(super) fn release(&self, pgid: Pid) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = state.kept.iter().position(|&(g, _)| g == pgid) {
            let (_, slot) = state.kept.swap_remove(i);
            state.slots()[slot].store(0, Ordering::Release);
            state.free.push(slot);
        }
    }

    /// The keeper's pid, forking it if none runs: for tests.
    #[cfg(test)]
    fn pid(&self) -> io::Result<Pid> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.ensure_running()?;
        state
            .running
            .as_ref()
            .map(|keeper| keeper.pid)
            .ok_or_else(|| io::Error::other("no keeper"))
    }
}

impl KeeperState {
    /// The table's slots (empty before the first keeper).
    fn slots(&self) -> &[AtomicI32] {
        self.table.as_ref().map_or(&[], SharedTable::slots)
    }

    /// Makes sure a keeper runs: forks one if there is none yet or the last one died (it is
    /// reaped first).
    fn ensure_running(&mut self) -> io::Result<()> {
        if let Some(keeper) = &self.running {
            // `keeper.pid` is our child and not yet reaped (it is reaped only here).
            if let Ok(None) = rustix::process::waitpid(Some(keeper.pid), WaitOptions::NOHANG) {
                return Ok(());
            }
            self.running = None;
        }
        if self.table.is_none() {
            self.table = Some(SharedTable::new()?);
        }
        let table = self.table.as_ref().expect("made above");
        self.running = Some(fork_keeper(table)?);
        Ok(())
    }
}

/// A table of process group ids in memory shared with the keeper: slots of `i32`, 0 for none.
#[derive(Debug)]
struct SharedTable {
    base: std::ptr::NonNull<AtomicI32>,
}

// SAFETY: the table is only ever read and written through atomics; the pointer is to a mapping
// that lives as long as the process (it is never unmapped).
unsafe impl Send for SharedTable {}

impl SharedTable {
    /// Maps a zeroed table, shared with the processes forked from now on.
    fn new() -> io::Result<SharedTable> {
        let len = TABLE_SLOTS * size_of::<AtomicI32>();
        // SAFETY: an anonymous shared mapping of fresh pages: no file, no address asked for, so
        // it overlaps nothing of ours. (rustix's is the thinnest safe-as-can-be call; a mapping
        // crate would still leave the table's atomics to be made from raw memory below.)
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
            )
        }?;
        let base = std::ptr::NonNull::new(base.cast::<AtomicI32>())
            .ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
        Ok(SharedTable { base })
    }

    fn slots(&self) -> &[AtomicI32] {
        // SAFETY: the mapping is TABLE_SLOTS i32s long, page-aligned (more than AtomicI32
        // needs), zero-filled (a valid AtomicI32 is any i32), never unmapped, and only ever
        // accessed through these atomics, here and in the keeper.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr(), TABLE_SLOTS) }
    }
}

/// Forks a keeper over `table`.
fn fork_keeper(table: &SharedTable) -> io::Result<RunningKeeper> {
    // Both ends close-on-exec: no command gets a copy of the write end.
    let (watched_end, lifeline) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?;
    // Everything the keeper uses is made before the fork: it may not allocate.
    let fd_limit = fds_to_close();
    let slots = table.slots();
    // SAFETY: fork(2) in a process with other threads: the child runs only `keep_groups`, which
    // makes async-signal-safe system calls and atomic loads on values made before the fork (no
    // allocation, no lock, no unwinding) and never returns; that it is the fork's child is what
    // `keep_groups` asks. The parent goes on as after any fork. (rustix offers fork only in its
    // unstable runtime module, unsafe too; std only forks to run a program, and the keeper runs
    // none.)
    let pid = unsafe {
        let pid = libc::fork();
        if pid == 0 {
            keep_groups(&watched_end, fd_limit, slots)
        }
        pid
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    let pid = Pid::from_raw(pid).ok_or_else(|| io::Error::other("fork returned no pid"))?;
    Ok(RunningKeeper {
        pid,
        _lifeline: lifeline,
    })
}

/// How many descriptors the keeper closes one by one where `close_range(2)` is missing: the
/// open-file limit, bounded.
fn fds_to_close() -> libc::c_int {
    let limit = rustix::process::getrlimit(Resource::Nofile)
        .current
        .map_or(MAX_FDS_CLOSED_ONE_BY_ONE, |n| {
            n.min(MAX_FDS_CLOSED_ONE_BY_ONE)
        });
    libc::c_int::try_from(limit).unwrap_or(libc::c_int::MAX)
}

/// The keeper's whole life: block every signal (a Ctrl-C on the server's terminal is the
/// server's to handle), leave the server's group, keep no descriptor but the lifeline's read
/// end (the server's sockets and the commands' pipes must not stay open in it), wait for the
/// lifeline to end, then kill every group in `slots`.
///
/// # Safety
///
/// Only for the child of a fork: it closes every other descriptor and never returns, and calls
/// nothing but async-signal-safe system calls and atomic loads, on memory made before the fork
/// and its own stack.
unsafe fn keep_groups(lifeline: &OwnedFd, fd_limit: libc::c_int, slots: &[AtomicI32]) -> ! {
    let keep = lifeline.as_raw_fd();
    let keep_index = libc::c_uint::try_from(keep).unwrap_or(0);
    let no_flags: libc::c_uint = 0;
    // SAFETY: sigfillset(3) and sigprocmask(2) are async-signal-safe and touch only `signals`,
    // on this stack, which sigfillset initialises before sigprocmask reads it; the child has one
    // thread. close_range(2) and close(2) take plain integers, and no descriptor closed is used
    // again: the keeper keeps only `lifeline` (a closed one yields EBADF). Every descriptor but
    // the lifeline goes, with close_range or, on kernels before 5.9, one by one below
    // `fd_limit`. (rustix sets a signal mask only in its unstable runtime module and closes
    // descriptors it does not own only unsafely too: this child, between fork and exit, is what
    // no crate covers.)
    unsafe {
        let mut signals = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigfillset(signals.as_mut_ptr());
        libc::sigprocmask(libc::SIG_SETMASK, signals.as_ptr(), std::ptr::null_mut());
        let below = keep_index == 0
            || libc::syscall(libc::SYS_close_range, 0, keep_index - 1, no_flags) == 0;
        let above = libc::syscall(
            libc::SYS_close_range,
            keep_index + 1,
            libc::c_uint::MAX,
            no_flags,
        ) == 0;
        if !(below && above) {
            for fd in (0..fd_limit).filter(|fd| *fd != keep) {
                libc::close(fd);
            }
        }
    }
    let _ = rustix::process::setpgid(None, None);
    let _ = rustix::thread::set_name(KEEPER_NAME);
    let mut byte = [0u8; 1];
    loop {
        // Nobody writes to the lifeline; a read returns at its end (or on an error that only a
        // vanished lifeline could cause). EINTR cannot come with every signal blocked, but is
        // not an end either.
        match rustix::io::read(lifeline, &mut byte) {
            Err(rustix::io::Errno::INTR) => continue,
            Ok(1) => continue,
            _ => break,
        }
    }
    for slot in slots {
        // A group in the table was not released, so its leader was not reaped and its id is
        // still the group's.
        if let Some(pgid) = Pid::from_raw(slot.load(Ordering::Acquire)) {
            let _ = rustix::process::kill_process_group(pgid, Signal::KILL);
        }
    }
    // SAFETY: _exit(2) ends the process at once, running nothing of the server's (no atexit
    // handler, no flush of a buffer another thread may have held at the fork).
    unsafe { libc::_exit(0) }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::{Child, Command};
    use std::time::{Duration, Instant};

    use super::*;

    fn sleeper() -> Child {
        Command::new("sleep")
            .arg("60")
            .process_group(0)
            .spawn()
            .unwrap()
    }

    /// Reaps this test's keeper once it ended.
    fn reap(pid: Pid) {
        let _ = rustix::process::waitpid(Some(pid), WaitOptions::empty());
    }

    fn wait_killed(child: &mut Child) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_keeper_kills_the_groups_it_keeps_when_its_lifeline_ends_and_spares_the_released() {
        // A keeper of this test's own, so that its lifeline can be ended as a server's death
        // ends it.
        let keeper = GroupKeeper::new();
        let mut kept = sleeper();
        let mut released = sleeper();
        keeper.keep(Pid::from_child(&kept)).unwrap();
        keeper.keep(Pid::from_child(&released)).unwrap();
        keeper.release(Pid::from_child(&released));
        let pid = keeper.pid().unwrap();
        // What a server that dies does: its end of the lifeline closes, it kills nothing.
        drop(keeper);
        let status = wait_killed(&mut kept);
        let _ = kept.kill();
        assert_eq!(
            status.and_then(|s| s.signal()),
            Some(libc::SIGKILL),
            "{status:?}"
        );
        reap(pid);
        assert!(
            released.try_wait().unwrap().is_none(),
            "a released group was killed"
        );
        let _ = released.kill();
        let _ = released.wait();
    }

    #[test]
    fn a_keeper_that_died_is_replaced_by_one_that_keeps_the_same_groups() {
        let keeper = GroupKeeper::new();
        let mut kept = sleeper();
        keeper.keep(Pid::from_child(&kept)).unwrap();
        let first = keeper.pid().unwrap();
        // `first` is this test's keeper, not yet reaped.
        rustix::process::kill_process(first, Signal::KILL).unwrap();
        // Once it is gone, the next command finds it so and forks a new keeper.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut other = sleeper();
        loop {
            keeper.keep(Pid::from_child(&other)).unwrap();
            keeper.release(Pid::from_child(&other));
            if keeper.pid().unwrap() != first || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let second = keeper.pid().unwrap();
        assert_ne!(second, first, "no new keeper after the first died");
        drop(keeper);
        let status = wait_killed(&mut kept);
        let _ = kept.kill();
        assert_eq!(
            status.and_then(|s| s.signal()),
            Some(libc::SIGKILL),
            "{status:?}"
        );
        reap(second);
        let _ = other.kill();
        let _ = other.wait();
    }
}
