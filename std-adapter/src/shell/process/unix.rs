//! Unix: the command runs in a process group of its own, led by the shell, which is what is
//! killed (SIGKILL to the group). On Linux the group is also listed with the process's group
//! keeper, which kills it if the server dies without doing it (see `group_keeper`). The
//! group's leader is reaped only after the group was killed, so the group id cannot be reused
//! by a stranger while it may still be signalled.
//!
//! One thread does it all with `poll(2)`: the two pipes, the client's socket (watched for a
//! hang-up only, so pipelined requests stay unread), the shell's exit (a pidfd on Linux, a
//! kqueue on macOS, a check every 20 ms elsewhere) and the deadline. Output is handed to an
//! [`OutputSink`] chunk by chunk as it arrives; nothing is accumulated here.

use std::io::{self, Read};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStderr, ChildStdout, ExitStatus};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};

#[cfg(target_os = "linux")]
use super::group_keeper::GroupKeeper;
use super::{
    CommandLimits, CommandSpec, DRAIN_GRACE, Listing, OUTPUT_CHUNK, OutputBudget, OutputSink,
    OutputStream, RunError, RunOutcome, RunningCommands, Stop, Termination, deadline_after,
};

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

/// Runs `spec` in its own process group (see [`super::run_command`]).
pub(super) fn run_command(
    spec: &CommandSpec<'_>,
    limits: &CommandLimits,
    client: Option<&TcpStream>,
    running: &RunningCommands,
    sink: &mut dyn OutputSink,
) -> Result<RunOutcome, RunError> {
    let (group, pipes) = ProcessGroup::spawn(spec, running).map_err(RunError::Spawn)?;
    let mut run = CommandRun {
        group,
        pipes,
        client,
        deadline: deadline_after(limits.timeout),
        budget: OutputBudget::new(limits.max_output),
        phase: Phase::Running,
    };
    run.drive(sink).map_err(RunError::Supervise)
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
    ) -> io::Result<(ProcessGroup<'r>, OutputPipes)> {
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
        let exit_watch = exit_watch(pgid);
        let group = ProcessGroup {
            child,
            pgid,
            running,
            listing: Some(listing),
            status: None,
            exit_watch,
        };
        Ok((group, pipes))
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

/// Where a command run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The shell is running: output is forwarded until it exits or the deadline passes.
    Running,
    /// The shell has exited and its process group was killed: what is left in the pipes is
    /// read until they close or `until` passes.
    Draining {
        /// End of the drain (the grace period, or the deadline if sooner).
        until: Instant,
    },
}

/// What one wait in [`CommandRun::wait`] saw.
#[derive(Clone, Copy, Debug, Default)]
struct Readiness {
    stdout: bool,
    stderr: bool,
    client_gone: bool,
    time_up: bool,
}

/// One command in flight.
struct CommandRun<'r, 'c> {
    group: ProcessGroup<'r>,
    pipes: OutputPipes,
    client: Option<&'c TcpStream>,
    deadline: Instant,
    budget: OutputBudget,
    phase: Phase,
}

impl CommandRun<'_, '_> {
    /// Supervises the command to its end, then makes sure its group is gone and the shell
    /// reaped.
    fn drive(&mut self, sink: &mut dyn OutputSink) -> io::Result<RunOutcome> {
        let stop = match self.supervise(sink) {
            Ok(stop) => stop,
            Err(e) => {
                self.group.kill_and_reap()?;
                return Err(e);
            }
        };
        let termination = self.group.kill_and_reap()?;
        Ok(RunOutcome::new(termination, stop))
    }

    /// Forwards output while the shell runs, notices its exit (then kills what is left of its
    /// group and drains the pipes), and stops early on the deadline, the output cap or a
    /// hang-up. A command that closes its output and keeps running is still timed; one that
    /// leaves a background process holding its output open ends when the shell does.
    fn supervise(&mut self, sink: &mut dyn OutputSink) -> io::Result<Option<Stop>> {
        let mut buf = vec![0u8; OUTPUT_CHUNK];
        loop {
            if self.phase == Phase::Running && self.group.has_exited()? {
                self.group.kill_and_reap()?;
                let until = self.deadline.min(Instant::now() + DRAIN_GRACE);
                self.phase = Phase::Draining { until };
            }
            if matches!(self.phase, Phase::Draining { .. }) && self.pipes.all_closed() {
                return Ok(None);
            }
            let ready = self.wait()?;
            if ready.client_gone {
                return Ok(Some(Stop::ClientGone));
            }
            if ready.time_up {
                return Ok(match self.phase {
                    Phase::Running => Some(Stop::TimedOut),
                    Phase::Draining { .. } => None,
                });
            }
            for (stream, is_ready) in [
                (OutputStream::Stdout, ready.stdout),
                (OutputStream::Stderr, ready.stderr),
            ] {
                if !is_ready {
                    continue;
                }
                if let Some(stop) = self.forward_chunk(stream, &mut buf, sink)? {
                    return Ok(Some(stop));
                }
            }
        }
    }

    /// Moves one read of `stream` to `sink`, within the output cap.
    fn forward_chunk(
        &mut self,
        stream: OutputStream,
        buf: &mut [u8],
        sink: &mut dyn OutputSink,
    ) -> io::Result<Option<Stop>> {
        let n = self.pipes.read(stream, buf)?;
        if n == 0 {
            return Ok(None);
        }
        Ok(self.budget.forward(stream, &buf[..n], sink))
    }

    /// Blocks until a pipe is readable, the client hangs up, the shell exits (while running),
    /// or the phase's time is up. Where the shell's exit cannot be watched, wakes up every
    /// [`EXIT_CHECK_INTERVAL`] to check it.
    fn wait(&self) -> io::Result<Readiness> {
        let until = match self.phase {
            Phase::Running => self.deadline,
            Phase::Draining { until } => until,
        };
        let Some(left) = until.checked_duration_since(Instant::now()) else {
            return Ok(Readiness {
                time_up: true,
                ..Readiness::default()
            });
        };
        let mut fds = Vec::with_capacity(4);
        let mut watch = |fd, events| {
            fds.push(PollFd::from_borrowed_fd(fd, events));
            fds.len() - 1
        };
        let stdout = self
            .pipes
            .fd(OutputStream::Stdout)
            .map(|fd| watch(fd, PollFlags::IN));
        let stderr = self
            .pipes
            .fd(OutputStream::Stderr)
            .map(|fd| watch(fd, PollFlags::IN));
        // Watched for a hang-up only, leaving data that arrives unread.
        let client = self.client.map(|c| watch(c.as_fd(), HANGUP_EVENTS));
        let wait = match (self.phase, &self.group.exit_watch) {
            (Phase::Running, Some(exit)) => {
                watch(exit.as_fd(), PollFlags::IN);
                left
            }
            (Phase::Running, None) => left.min(EXIT_CHECK_INTERVAL),
            (Phase::Draining { .. }, _) => left,
        };
        // Past what a timespec holds, the wait has no end.
        let timeout = Timespec::try_from(wait).ok();
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            // A signal is a wake-up with nothing ready.
            Ok(0) | Err(rustix::io::Errno::INTR) => return Ok(Readiness::default()),
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        let is_ready = |i: Option<usize>| i.is_some_and(|i| !fds[i].revents().is_empty());
        Ok(Readiness {
            stdout: is_ready(stdout),
            stderr: is_ready(stderr),
            client_gone: is_ready(client),
            time_up: false,
        })
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
