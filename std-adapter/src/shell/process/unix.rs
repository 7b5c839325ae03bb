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
//!
//! A command asked for on a pty (`pty_process`) runs in a session of its own, led by the
//! shell, with the pty as its controlling terminal: the session's first group is the shell's,
//! killed and kept as any command's. The pty's master is both the command's input (written
//! without waiting, as the input pipe is) and its output (read as stdout). Jobs an interactive
//! shell starts in groups of their own: the foreground one is killed with the shell when the
//! server kills it, the others get the hang-up the kernel sends when the terminal's session
//! ends.

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
use super::{
    CommandSpec, Listing, OutputStream, RunningCommands, Terminal, Termination, WindowSize,
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

/// Starts `spec` in its own process group (see [`super::run_command`]).
pub(super) fn spawn<'r>(
    spec: &CommandSpec<'_>,
    running: &'r RunningCommands,
) -> io::Result<Command<'r>> {
    if let Some(terminal) = &spec.pty {
        return spawn_on_pty(spec, terminal, running);
    }
    let mut shell = spec.process();
    shell.process_group(0);
    let child = shell.spawn().map_err(|e| spec.spawn_error(e))?;
    let (group, pipes, stdin) = ProcessGroup::adopt(child, running)?;
    // Written only as far as the pipe takes it: a command that does not read never holds up
    // the one thread that also forwards its output.
    if let Some(stdin) = &stdin {
        rustix::io::ioctl_fionbio(stdin, true)?;
    }
    Ok(Command {
        group,
        pipes,
        stdin,
        terminal: None,
        ready: Vec::with_capacity(2),
    })
}

/// Starts `spec` on a new pty sized and typed as `terminal` asks, in a session of its own
/// whose controlling terminal it is (see [`super::run_command`]).
fn spawn_on_pty<'r>(
    spec: &CommandSpec<'_>,
    terminal: &Terminal<'_>,
    running: &'r RunningCommands,
) -> io::Result<Command<'r>> {
    let (pty, pts) = pty_process::blocking::open().map_err(pty_error)?;
    pty.resize(pty_size(terminal.size)).map_err(pty_error)?;
    // Written and read only as far as it goes without waiting, as the pipes are.
    rustix::io::ioctl_fionbio(&pty, true)?;
    let process = pty_process::blocking::Command::from(spec.terminal_process(terminal));
    let child = process
        .spawn(pts)
        .map_err(|e| spec.spawn_error(pty_error(e)))?;
    let (group, pipes, _) = ProcessGroup::adopt(child, running)?;
    Ok(Command {
        group,
        pipes,
        stdin: None,
        terminal: Some(TerminalIo {
            pty: Some(pty),
            input_closed: false,
        }),
        ready: Vec::with_capacity(2),
    })
}

fn pty_size(size: WindowSize) -> pty_process::Size {
    pty_process::Size::new(size.rows, size.cols)
}

fn pty_error(e: pty_process::Error) -> io::Error {
    match e {
        pty_process::Error::Io(e) => e,
        pty_process::Error::Rustix(errno) => errno.into(),
    }
}

/// The master side of a command's pty.
struct TerminalIo {
    /// `None` once the command's side is closed by all (its output reached its end).
    pty: Option<pty_process::blocking::Pty>,
    /// The client's input ended or the command's tree is gone: nothing more is written.
    input_closed: bool,
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
    /// Takes charge of `child`, just spawned as the leader of a group of its own (of a session
    /// of its own on a pty).
    fn adopt(
        mut child: Child,
        running: &'r RunningCommands,
    ) -> io::Result<(ProcessGroup<'r>, OutputPipes, Option<ChildStdin>)> {
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
    /// Its pty, when it runs on one (then it has neither pipes nor `stdin`).
    terminal: Option<TerminalIo>,
    /// Pipes the last poll found readable and that were not read since, stdout first: each
    /// wait reads one, so that a busy stdout cannot starve stderr.
    ready: Vec<OutputStream>,
}

impl Command<'_> {
    /// The pty's master, while the command's side is open.
    fn pty(&self) -> Option<&pty_process::blocking::Pty> {
        self.terminal.as_ref()?.pty.as_ref()
    }

    /// One read of the pty, as stdout; its end (EIO on Linux once no process holds the
    /// command's side) closes it.
    fn read_terminal(&mut self, buf: &mut [u8]) -> io::Result<Woke> {
        let Some(terminal) = self.terminal.as_mut() else {
            return Ok(Woke::Nothing);
        };
        let Some(pty) = terminal.pty.as_mut() else {
            return Ok(Woke::Nothing);
        };
        loop {
            match pty.read(buf) {
                Ok(0) => break,
                Ok(n) => return Ok(Woke::Output(OutputStream::Stdout, n)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Woke::Nothing),
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) => break,
                Err(e) => return Err(e),
            }
        }
        terminal.pty = None;
        Ok(Woke::Nothing)
    }

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
        // The terminal's foreground job, in a group of its own under an interactive shell,
        // dies with the shell's group; its id is its leader's, which the shell has not reaped
        // while it runs.
        if let Some(pty) = self.pty()
            && !self.group.has_exited().unwrap_or(true)
            && let Ok(foreground) = rustix::termios::tcgetpgrp(pty)
            && foreground != self.group.pgid
        {
            TreeHandle(foreground).kill();
        }
        self.group.kill_and_reap()
    }

    fn output_closed(&self) -> bool {
        self.pipes.all_closed() && self.pty().is_none()
    }

    fn has_stdin(&self) -> bool {
        match &self.terminal {
            Some(terminal) => terminal.pty.is_some() && !terminal.input_closed,
            None => self.stdin.is_some(),
        }
    }

    fn write_stdin(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if let Some(terminal) = &mut self.terminal {
            let Some(pty) = terminal.pty.as_mut().filter(|_| !terminal.input_closed) else {
                return Err(io::ErrorKind::BrokenPipe.into());
            };
            return write_without_waiting(pty, bytes);
        }
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(io::ErrorKind::BrokenPipe.into());
        };
        write_without_waiting(stdin, bytes)
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
        if let Some(terminal) = &mut self.terminal {
            terminal.input_closed = true;
        }
    }

    fn resize(&mut self, size: WindowSize) {
        // A terminal gone, or a size the kernel refuses, is no reason to stop the command.
        if let Some(pty) = self.pty() {
            let _ = pty.resize(pty_size(size));
        }
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
        let pty_events = if watch.stdin_room {
            PollFlags::IN | PollFlags::OUT
        } else {
            PollFlags::IN
        };
        let terminal = self
            .terminal
            .as_ref()
            .and_then(|t| t.pty.as_ref())
            .map(|pty| add(pty.as_fd(), pty_events));
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
        // The terminal's output (or its end: a hang-up), before the client's input too.
        let terminal_output = terminal.is_some_and(|i| {
            fds[i]
                .revents()
                .intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR)
        });
        if terminal_output {
            return self.read_terminal(buf);
        }
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

/// Writes what `to` takes of `bytes` without waiting (it is non-blocking); `Ok(0)` when it is
/// full.
fn write_without_waiting(mut to: impl Write, bytes: &[u8]) -> io::Result<usize> {
    loop {
        match to.write(bytes) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            written => return written,
        }
    }
}

/// Events that mean the peer hung up: a half-close (where the platform reports it), a full
/// hang-up, or a socket error (always reported).
#[cfg(any(target_os = "linux", target_os = "android"))]
const HANGUP_EVENTS: PollFlags = PollFlags::RDHUP;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const HANGUP_EVENTS: PollFlags = PollFlags::empty();
