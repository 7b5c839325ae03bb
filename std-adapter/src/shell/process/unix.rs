//! Unix: the command runs in a process group of its own, led by the shell, which is what is
//! killed (SIGKILL to the group). On Linux the group is also listed with the process's group
//! keeper, which kills it if the server dies without doing it (see `group_keeper`). The
//! group's leader is reaped only after the group was killed, so the group id cannot be reused
//! by a stranger while it may still be signalled.
//!
//! One thread does it all with `poll(2)`: the two output pipes, the input pipe (non-blocking,
//! watched for room while the client's input waits for it), the client's socket (watched for a
//! hang-up, and for input only while the command's input takes it, so pipelined requests stay
//! unread), the shell's exit (a pidfd on Linux, a kqueue on macOS, a check every 20 ms
//! elsewhere) and the deadline. Output is handed to the client chunk by chunk as it arrives;
//! nothing is accumulated here.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, ExitStatus};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};

use super::drive::{CommandTree, Watch, Woke};
#[cfg(target_os = "linux")]
use super::group_keeper::GroupKeeper;
use super::{CommandSpec, Listing, OutputStream, RunningCommands, Termination};

/// A process group, as [`RunningCommands`] keeps it: its id, which is its leader's pid.
#[derive(Debug)]
pub(super) struct TreeHandle(Pid);

impl TreeHandle {
    /// Sends SIGKILL to the group. A listed group's leader is not yet reaped, so its id is still
    /// the group's; a group that is already gone yields ESRCH, which is fine to ignore.
    pub(super) fn kill(&self) {
        let _ = rustix::process::kill_process_group(self.0, Signal::KILL);
    }
}

/// How a finished child's status reads as a [`Termination`].
fn termination_of(status: ExitStatus) -> Termination {
    match (status.code(), status.signal()) {
        (Some(code), _) => Termination::Exited(code),
        (None, Some(signal)) => Termination::Signaled(signal),
        // wait(2) only reports terminated children; this is unreachable in practice.
        (None, None) => Termination::Exited(-1),
    }
}

/// Starts `spec` in its own process group (see [`super::run_command`]).
pub(super) fn spawn<'r>(
    spec: &CommandSpec<'_>,
    running: &'r RunningCommands,
) -> io::Result<Command<'r>> {
    let (group, pipes, stdin) = ProcessGroup::spawn(spec, running)?;
    // Written only as far as the pipe takes it: a command that does not read never holds up
    // the one thread that also forwards its output.
    if let Some(stdin) = &stdin {
        rustix::io::ioctl_fionbio(stdin, true)?;
    }
    Ok(Command {
        group,
        pipes,
        stdin,
        ready: Vec::with_capacity(2),
    })
}

/// The shell in its own process group, which it leads. Dropping it kills the group and reaps
/// the shell, so no path leaves a running group or a zombie behind.
struct ProcessGroup<'r> {
    child: Child,
    /// The group's id: its leader's pid.
    pgid: Pid,
    running: &'r RunningCommands,
    /// The group's place in `running`, until it is taken off.
    listing: Option<Listing>,
    status: Option<ExitStatus>,
    /// Readable once the shell has exited, where the platform offers that (a pidfd on Linux, a
    /// kqueue on macOS).
    exit_watch: Option<OwnedFd>,
}

impl<'r> ProcessGroup<'r> {
    fn spawn(
        spec: &CommandSpec<'_>,
        running: &'r RunningCommands,
    ) -> io::Result<(ProcessGroup<'r>, OutputPipes, Option<ChildStdin>)> {
        let mut shell = spec.process();
        shell.process_group(0);
        let mut child = shell.spawn().map_err(|e| spec.spawn_error(e))?;
        let pgid = Some(Pid::from_child(&child));
        // Kept right away: from here on the group dies with the server however it dies.
        #[cfg(target_os = "linux")]
        if let Some(pgid) = pgid
            && let Err(e) = GroupKeeper::get().keep(pgid)
        {
            tracing::warn!(
                server = "shell",
                error = %e,
                "cannot start the process that kills commands if the server dies; this command runs without it"
            );
        }
        // Listed after the spawn (which may take a while: no lock is held across it). A stop
        // that came between kills the group here; the shell is reaped below either way.
        let listing = pgid.and_then(|pgid| Some((pgid, running.list(TreeHandle(pgid))?)));
        let Some((pgid, listing)) = listing else {
            if let Some(pgid) = pgid {
                TreeHandle(pgid).kill();
            }
            let _ = child.kill();
            let _ = child.wait();
            if let Some(pgid) = pgid {
                released(pgid);
            }
            return Err(io::Error::other("the server is stopping"));
        };
        let pipes = OutputPipes {
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
        };
        let stdin = child.stdin.take();
        let exit_watch = exit_watch(pgid);
        let group = ProcessGroup {
            child,
            pgid,
            running,
            listing: Some(listing),
            status: None,
            exit_watch,
        };
        Ok((group, pipes, stdin))
    }

    /// Sends SIGKILL to every process in the group (the shell, and whatever it started that did
    /// not leave the group). Until the shell, the group's leader, is reaped, its id cannot be
    /// reused, so this never hits a stranger.
    fn kill(&mut self) {
        if self.status.is_some() {
            return;
        }
        TreeHandle(self.pgid).kill();
    }

    /// Waits for the shell to end.
    fn reap(&mut self) -> io::Result<Termination> {
        let status = match self.status {
            Some(status) => status,
            None => {
                self.unlist();
                let status = self.child.wait()?;
                self.status = Some(status);
                released(self.pgid);
                status
            }
        };
        Ok(termination_of(status))
    }

    /// Takes the group off its [`RunningCommands`]; called only once it was killed or its shell
    /// has exited, right before the shell is reaped.
    fn unlist(&mut self) {
        if let Some(listing) = self.listing.take() {
            self.running.unlist(listing);
        }
    }

    fn kill_and_reap(&mut self) -> io::Result<Termination> {
        self.kill();
        self.reap()
    }

    /// Whether the shell has exited, without reaping it: the group's leader stays unreaped, so
    /// the group id stays reserved for [`kill`](Self::kill).
    fn has_exited(&self) -> io::Result<bool> {
        if self.status.is_some() {
            return Ok(true);
        }
        let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
        loop {
            match rustix::process::waitid(WaitId::Pid(self.pgid), options) {
                Ok(status) => return Ok(status.is_some()),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Drop for ProcessGroup<'_> {
    fn drop(&mut self) {
        if self.status.is_none() {
            self.kill();
            self.unlist();
            let _ = self.child.wait();
            released(self.pgid);
        }
    }
}

/// Group `pgid` was killed and its leader reaped: on Linux the keeper stops keeping it, so
/// that it never kills the id once it is reused.
fn released(pgid: Pid) {
    #[cfg(target_os = "linux")]
    GroupKeeper::get().release(pgid);
    #[cfg(not(target_os = "linux"))]
    let _ = pgid;
}

/// The read ends of the command's stdout and stderr; `None` once that pipe reached its end.
struct OutputPipes {
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
}

impl OutputPipes {
    fn all_closed(&self) -> bool {
        self.stdout.is_none() && self.stderr.is_none()
    }

    fn fd(&self, stream: OutputStream) -> Option<BorrowedFd<'_>> {
        match stream {
            OutputStream::Stdout => self.stdout.as_ref().map(AsFd::as_fd),
            OutputStream::Stderr => self.stderr.as_ref().map(AsFd::as_fd),
        }
    }

    /// Reads what `stream` has; `Ok(0)` closes it.
    fn read(&mut self, stream: OutputStream, buf: &mut [u8]) -> io::Result<usize> {
        let n = loop {
            let read = match stream {
                OutputStream::Stdout => self.stdout.as_mut().map(|p| p.read(buf)),
                OutputStream::Stderr => self.stderr.as_mut().map(|p| p.read(buf)),
            };
            match read {
                None => break 0,
                Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Some(result) => break result?,
            }
        };
        if n == 0 {
            self.close(stream);
        }
        Ok(n)
    }

    fn close(&mut self, stream: OutputStream) {
        match stream {
            OutputStream::Stdout => self.stdout = None,
            OutputStream::Stderr => self.stderr = None,
        }
    }
}

/// Longest pause between checks for the shell's exit where the platform cannot signal it.
const EXIT_CHECK_INTERVAL: Duration = Duration::from_millis(20);

/// A command in flight: its group and its pipes, which one thread watches with `poll(2)`.
pub(super) struct Command<'r> {
    group: ProcessGroup<'r>,
    pipes: OutputPipes,
    /// The write end of its input pipe (non-blocking), until closed.
    stdin: Option<ChildStdin>,
    /// Pipes the last poll found readable and that were not read since, stdout first: each
    /// wait reads one, so that a busy stdout cannot starve stderr.
    ready: Vec<OutputStream>,
}

impl Command<'_> {
    /// One read of the next pipe found readable and not read since; `None` when there is none.
    fn read_ready(&mut self, buf: &mut [u8]) -> io::Result<Option<Woke>> {
        if self.ready.is_empty() {
            return Ok(None);
        }
        let stream = self.ready.remove(0);
        Ok(Some(match self.pipes.read(stream, buf)? {
            0 => Woke::Nothing,
            n => Woke::Output(stream, n),
        }))
    }
}

impl CommandTree for Command<'_> {
    fn has_exited(&mut self) -> io::Result<bool> {
        self.group.has_exited()
    }

    fn kill_and_reap(&mut self) -> io::Result<Termination> {
        self.group.kill_and_reap()
    }

    fn output_closed(&self) -> bool {
        self.pipes.all_closed()
    }

    fn has_stdin(&self) -> bool {
        self.stdin.is_some()
    }

    fn write_stdin(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(io::ErrorKind::BrokenPipe.into());
        };
        loop {
            match stdin.write(bytes) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
                written => return written,
            }
        }
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Polls the output pipes, the client's socket (for a hang-up, and for input when `watch`
    /// says so: otherwise pipelined requests stay unread), the input pipe for room when `watch`
    /// says so and, while the shell runs, its exit watch; where there is no exit watch, wakes
    /// up every [`EXIT_CHECK_INTERVAL`] to check the exit. Output comes before the client's
    /// input, so a client that sends fast cannot hold the command's output back.
    fn wait(
        &mut self,
        until: Instant,
        shell_running: bool,
        watch: &Watch<'_>,
        buf: &mut [u8],
    ) -> io::Result<Woke> {
        if let Some(woke) = self.read_ready(buf)? {
            return Ok(woke);
        }
        let Some(left) = until.checked_duration_since(Instant::now()) else {
            return Ok(Woke::Nothing);
        };
        let mut fds = Vec::with_capacity(5);
        let mut add = |fd, events| {
            fds.push(PollFd::from_borrowed_fd(fd, events));
            fds.len() - 1
        };
        let streams = [OutputStream::Stdout, OutputStream::Stderr]
            .map(|stream| Some((stream, add(self.pipes.fd(stream)?, PollFlags::IN))));
        let client_events = if watch.client_input {
            HANGUP_EVENTS | PollFlags::IN
        } else {
            HANGUP_EVENTS
        };
        let client = watch.client.map(|c| add(c.as_fd(), client_events));
        if watch.stdin_room
            && let Some(stdin) = &self.stdin
        {
            add(stdin.as_fd(), PollFlags::OUT);
        }
        let wait = match (shell_running, &self.group.exit_watch) {
            (true, Some(exit)) => {
                add(exit.as_fd(), PollFlags::IN);
                left
            }
            (true, None) => left.min(EXIT_CHECK_INTERVAL),
            (false, _) => left,
        };
        // Past what a timespec holds, the wait has no end.
        let timeout = Timespec::try_from(wait).ok();
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            // A signal is a wake-up with nothing ready.
            Ok(0) | Err(rustix::io::Errno::INTR) => return Ok(Woke::Nothing),
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        let is_ready = |i: usize| !fds[i].revents().is_empty();
        // A hang-up (or a socket error) beats whatever is ready: the command is killed.
        let hung_up = HANGUP_EVENTS | PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL;
        let client_ready = client.map(|i| fds[i].revents());
        if client_ready.is_some_and(|events| events.intersects(hung_up)) {
            return Ok(Woke::ClientGone);
        }
        self.ready.extend(
            streams
                .into_iter()
                .flatten()
                .filter(|&(_, i)| is_ready(i))
                .map(|(stream, _)| stream),
        );
        match self.read_ready(buf)? {
            Some(woke) => Ok(woke),
            None if client_ready.is_some_and(|events| events.contains(PollFlags::IN)) => {
                Ok(Woke::ClientInput)
            }
            None => Ok(Woke::Nothing),
        }
    }
}

/// A descriptor that becomes readable when process `pid` exits (`pidfd_open(2)`), or `None`
/// where the kernel does not offer one.
#[cfg(target_os = "linux")]
fn exit_watch(pid: Pid) -> Option<OwnedFd> {
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
}

/// A kqueue that becomes readable when process `pid` exits (`EVFILT_PROC`, `NOTE_EXIT`): what
/// macOS offers instead of a pidfd. `None` when it cannot be made (the shell's exit is then
/// checked every [`EXIT_CHECK_INTERVAL`]). A shell that exited before the watch was set is seen
/// by [`ProcessGroup::has_exited`], which is asked before every wait. A kqueue is not inherited
/// by children, so no command gets a copy.
#[cfg(target_vendor = "apple")]
fn exit_watch(pid: Pid) -> Option<OwnedFd> {
    use rustix::event::kqueue::{Event, EventFilter, EventFlags, ProcessEvents, kevent_timespec};
    let kq = rustix::event::kqueue::kqueue().ok()?;
    let filter = EventFilter::Proc {
        pid,
        flags: ProcessEvents::EXIT,
    };
    let change = Event::new(
        filter,
        EventFlags::ADD | EventFlags::ONESHOT,
        std::ptr::null_mut(),
    );
    let mut none: [Event; 0] = [];
    let no_wait = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: rustix marks kevent unsafe because a descriptor registered with a kqueue must stay
    // open as long as the kqueue; this registers a process id, no descriptor. With no room for
    // events and a zero timeout it only registers. (No crate watches a process's exit through a
    // descriptor that poll(2) can wait on together with pipes and a socket.)
    let registered = unsafe { kevent_timespec(&kq, &[change], &mut none[..], Some(&no_wait)) };
    registered.ok().map(|_| kq)
}

#[cfg(not(any(target_os = "linux", target_vendor = "apple")))]
fn exit_watch(_pid: Pid) -> Option<OwnedFd> {
    None
}

/// Events that mean the peer hung up: a half-close (where the platform reports it), a full
/// hang-up, or a socket error (always reported).
#[cfg(any(target_os = "linux", target_os = "android"))]
const HANGUP_EVENTS: PollFlags = PollFlags::RDHUP;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const HANGUP_EVENTS: PollFlags = PollFlags::empty();
