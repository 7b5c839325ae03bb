//! Running one command: `sh -c` in its own process group, both output pipes drained as they
//! fill, the whole group killed on timeout, on the output cap, when the client goes away, and
//! when the shell exits (so no process the command started in its group outlives it), and the
//! shell always reaped.
//!
//! One thread does it all with `poll(2)`: the two pipes, the client's socket (watched for a
//! hang-up only, so pipelined requests stay unread), the shell's exit (a pidfd on Linux) and the
//! deadline. Output is handed to an [`OutputSink`] chunk by chunk as it arrives; nothing is
//! accumulated here.

use std::collections::BTreeSet;
use std::fmt;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

pub(crate) use crate::server::deadline_after;
use crate::server::readiness::{timeout_millis, waited};

/// Size of one read from a pipe, and so the largest output frame body.
pub const OUTPUT_CHUNK: usize = 64 * 1024;

/// The process groups of the commands one server is running, so that a server that stops can
/// kill them all. A group is listed from its spawn until just before its shell is reaped, and
/// it has been sent SIGKILL (or its shell has exited) by then: while listed, its id cannot
/// belong to anyone else.
#[derive(Debug)]
pub struct RunningCommands {
    groups: Mutex<BTreeSet<libc::pid_t>>,
    /// Set by [`kill_all`](Self::kill_all): no command starts after it.
    stopping: AtomicBool,
}

/// Every [`RunningCommands`] made with [`RunningCommands::new`], for [`kill_all_commands`].
static ALL_RUNNING: Mutex<Vec<Weak<RunningCommands>>> = Mutex::new(Vec::new());

impl RunningCommands {
    /// A registry, which [`kill_all_commands`] reaches too.
    pub fn new() -> Arc<RunningCommands> {
        let running = Arc::new(RunningCommands {
            groups: Mutex::new(BTreeSet::new()),
            stopping: AtomicBool::new(false),
        });
        let mut all = ALL_RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
        all.retain(|r| r.strong_count() > 0);
        all.push(Arc::downgrade(&running));
        running
    }

    fn groups(&self) -> MutexGuard<'_, BTreeSet<libc::pid_t>> {
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends SIGKILL to the process group of every command running here, and stops new ones
    /// from starting: for a server that is stopping, nothing a command started in its group
    /// outlives it.
    pub fn kill_all(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for &pgid in self.groups().iter() {
            // SAFETY: kill(2) takes plain integers and touches no memory of ours; a listed
            // group is not yet reaped, so its id is still ours.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }

    /// Lists a group that was just spawned; `false` (and the group killed) when a stop came
    /// first.
    fn list(&self, pgid: libc::pid_t) -> bool {
        let mut groups = self.groups();
        if self.stopping.load(Ordering::SeqCst) {
            // SAFETY: as in kill_all; the shell was spawned by our caller and is not reaped.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
            return false;
        }
        groups.insert(pgid);
        true
    }

    fn unlist(&self, pgid: libc::pid_t) {
        self.groups().remove(&pgid);
    }
}

/// Kills the commands of every server in this process (see [`RunningCommands::kill_all`]): for
/// a process that must stop at once.
pub fn kill_all_commands() {
    let all = ALL_RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
    for running in all.iter().filter_map(Weak::upgrade) {
        running.kill_all();
    }
}

/// Environment variables removed from the commands' environment (secrets of the server).
const SCRUBBED_ENV: [&str; 1] = ["UNSTICK_TOKEN"];

pub use unstick_core::shell::{OutputStream, Termination};

/// How a finished child's status reads as a [`Termination`].
fn termination_of(status: ExitStatus) -> Termination {
    match (status.code(), status.signal()) {
        (Some(code), _) => Termination::Exited(code),
        (None, Some(signal)) => Termination::Signaled(signal),
        // wait(2) only reports terminated children; this is unreachable in practice.
        (None, None) => Termination::Exited(-1),
    }
}

/// Limits applied to one command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandLimits {
    /// Wall-clock time the command may run before its process group is killed.
    pub timeout: Duration,
    /// Output bytes (stdout and stderr together) passed on before the rest is cut and the
    /// process group killed.
    pub max_output: u64,
}

/// What happened to a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunOutcome {
    /// How the shell ended.
    pub termination: Termination,
    /// Output was cut at [`CommandLimits::max_output`].
    pub truncated: bool,
    /// The command ran out of time.
    pub timed_out: bool,
    /// The client hung up, or its socket failed, while the command ran.
    pub client_gone: bool,
}

/// Receives a command's output as it is produced.
pub trait OutputSink {
    /// Takes the next chunk of `stream`. An error means the receiver is gone: the command is
    /// killed.
    fn write_output(&mut self, stream: OutputStream, bytes: &[u8]) -> io::Result<()>;
}

/// Output collected in memory, stdout and stderr apart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CapturedOutput {
    /// Everything written to standard output.
    pub stdout: Vec<u8>,
    /// Everything written to standard error.
    pub stderr: Vec<u8>,
}

impl OutputSink for CapturedOutput {
    fn write_output(&mut self, stream: OutputStream, bytes: &[u8]) -> io::Result<()> {
        match stream {
            OutputStream::Stdout => self.stdout.extend_from_slice(bytes),
            OutputStream::Stderr => self.stderr.extend_from_slice(bytes),
        }
        Ok(())
    }
}

/// Why [`run_command`] has no [`RunOutcome`] to report.
#[derive(Debug)]
#[non_exhaustive]
pub enum RunError {
    /// `sh` could not be started (say, the working directory is gone, or the system is out of
    /// processes).
    Spawn(io::Error),
    /// Watching the running command failed; it has been killed and reaped.
    Supervise(io::Error),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Spawn(e) => write!(f, "the server could not start the command: {e}"),
            RunError::Supervise(e) => {
                write!(f, "the server lost track of the command and killed it: {e}")
            }
        }
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RunError::Spawn(e) | RunError::Supervise(e) => Some(e),
        }
    }
}

/// Runs `command` with `sh -c` in `workdir`, streaming its output to `sink`.
///
/// `client` is the socket of the client that asked for the command: when it hangs up, the
/// command is killed. The command's group is listed in `running` while it runs. Whatever happens, the command's process group is gone and its shell
/// reaped when this returns.
pub fn run_command(
    command: &str,
    workdir: &Path,
    limits: &CommandLimits,
    client: Option<BorrowedFd<'_>>,
    running: &RunningCommands,
    sink: &mut dyn OutputSink,
) -> Result<RunOutcome, RunError> {
    let (group, pipes) = ProcessGroup::spawn(command, workdir, running).map_err(RunError::Spawn)?;
    let mut run = CommandRun {
        group,
        pipes,
        client: client.map(|fd| fd.as_raw_fd()),
        deadline: deadline_after(limits.timeout),
        max_output: limits.max_output,
        emitted: 0,
        phase: Phase::Running,
    };
    run.drive(sink).map_err(RunError::Supervise)
}

/// The shell, leader of its own process group. Dropping it kills the group and reaps the shell,
/// so no path leaves a running group or a zombie behind.
struct ProcessGroup<'r> {
    child: Child,
    running: &'r RunningCommands,
    status: Option<ExitStatus>,
    /// Readable once the shell has exited, where the platform offers that (Linux pidfd).
    exit_watch: Option<OwnedFd>,
}

impl<'r> ProcessGroup<'r> {
    fn spawn(
        command: &str,
        workdir: &Path,
        running: &'r RunningCommands,
    ) -> io::Result<(ProcessGroup<'r>, OutputPipes)> {
        let mut shell = Command::new("sh");
        shell
            .arg("-c")
            .arg(command)
            .current_dir(workdir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        for name in SCRUBBED_ENV {
            shell.env_remove(name);
        }
        let mut child = shell.spawn()?;
        // Listed after the spawn (which may take a while: no lock is held across it). A stop
        // that came between kills the group here; the shell is reaped below either way.
        let listed = libc::pid_t::try_from(child.id()).is_ok_and(|pgid| running.list(pgid));
        if !listed {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other("the server is stopping"));
        }
        let pipes = OutputPipes {
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
        };
        let exit_watch = exit_watch(child.id());
        let group = ProcessGroup {
            child,
            running,
            status: None,
            exit_watch,
        };
        Ok((group, pipes))
    }

    /// Sends SIGKILL to every process in the group (the shell and whatever it started that did
    /// not leave the group). Until the shell is reaped its pid, which is the group id, cannot be
    /// reused, so this never hits a stranger.
    fn kill(&mut self) {
        if self.status.is_some() {
            return;
        }
        let Ok(pgid) = libc::pid_t::try_from(self.child.id()) else {
            return;
        };
        // SAFETY: kill(2) takes plain integers and touches no memory of ours; a group that is
        // already gone yields ESRCH, which is fine to ignore.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }

    /// Waits for the shell to end.
    fn reap(&mut self) -> io::Result<Termination> {
        let status = match self.status {
            Some(status) => status,
            None => {
                self.unlist();
                let status = self.child.wait()?;
                self.status = Some(status);
                status
            }
        };
        Ok(termination_of(status))
    }

    /// Takes the group off its [`RunningCommands`]; called only once it was killed or its shell has
    /// exited, right before the shell is reaped.
    fn unlist(&self) {
        if let Ok(pgid) = libc::pid_t::try_from(self.child.id()) {
            self.running.unlist(pgid);
        }
    }

    fn kill_and_reap(&mut self) -> io::Result<Termination> {
        self.kill();
        self.reap()
    }

    /// Whether the shell has exited, without reaping it: its pid, and so the group id, stays
    /// reserved for [`kill`](Self::kill).
    fn has_exited(&self) -> io::Result<bool> {
        if self.status.is_some() {
            return Ok(true);
        }
        let pid: libc::id_t = self.child.id();
        loop {
            // SAFETY: an all-zero siginfo_t is a valid value (plain integers and unions of them).
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            let options = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
            // SAFETY: `info` is a live, exclusively borrowed siginfo_t, which is all waitid(2)
            // writes; WNOWAIT leaves the child waitable for `reap`.
            let rc = unsafe { libc::waitid(libc::P_PID, pid, &mut info, options) };
            if rc == 0 {
                // With WNOHANG and no change yet, the pid field stays zero.
                return Ok(waited_pid(&info) != 0);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// The pid `waitid(2)` reported.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn waited_pid(info: &libc::siginfo_t) -> libc::pid_t {
    // SAFETY: for the WEXITED waits this module makes, the kernel fills the child fields.
    unsafe { info.si_pid() }
}

/// The pid `waitid(2)` reported.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn waited_pid(info: &libc::siginfo_t) -> libc::pid_t {
    info.si_pid
}

impl Drop for ProcessGroup<'_> {
    fn drop(&mut self) {
        if self.status.is_none() {
            self.kill();
            self.unlist();
            let _ = self.child.wait();
        }
    }
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

    fn fd(&self, stream: OutputStream) -> Option<RawFd> {
        match stream {
            OutputStream::Stdout => self.stdout.as_ref().map(AsRawFd::as_raw_fd),
            OutputStream::Stderr => self.stderr.as_ref().map(AsRawFd::as_raw_fd),
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

/// How long the output pipes are still read after the shell has exited and the rest of its
/// process group was killed: enough for the killed processes to die and what they wrote to be
/// read, short enough that a process outside the group holding a pipe open (a `setsid` daemon
/// that kept the command's output) cannot stall the reply.
pub const DRAIN_GRACE: Duration = Duration::from_millis(250);

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
struct CommandRun<'r> {
    group: ProcessGroup<'r>,
    pipes: OutputPipes,
    client: Option<RawFd>,
    deadline: Instant,
    max_output: u64,
    emitted: u64,
    phase: Phase,
}

/// How a command run stops early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    TimedOut,
    Truncated,
    ClientGone,
}

impl CommandRun<'_> {
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
        Ok(RunOutcome {
            termination,
            truncated: stop == Some(Stop::Truncated),
            timed_out: stop == Some(Stop::TimedOut),
            client_gone: stop == Some(Stop::ClientGone),
        })
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
        let room = self.max_output.saturating_sub(self.emitted);
        let take = usize::try_from(room).map_or(n, |room| room.min(n));
        if take > 0 {
            if sink.write_output(stream, &buf[..take]).is_err() {
                return Ok(Some(Stop::ClientGone));
            }
            self.emitted += take as u64;
        }
        Ok((take < n).then_some(Stop::Truncated))
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
        let mut fds = PollSet::default();
        let stdout = self
            .pipes
            .fd(OutputStream::Stdout)
            .map(|fd| fds.add_input(fd));
        let stderr = self
            .pipes
            .fd(OutputStream::Stderr)
            .map(|fd| fds.add_input(fd));
        let client = self.client.map(|fd| fds.add_hangup_watch(fd));
        let wait = match (self.phase, &self.group.exit_watch) {
            (Phase::Running, Some(exit)) => {
                fds.add_input(exit.as_raw_fd());
                left
            }
            (Phase::Running, None) => left.min(EXIT_CHECK_INTERVAL),
            (Phase::Draining { .. }, _) => left,
        };
        fds.poll(wait)?;
        Ok(Readiness {
            stdout: stdout.is_some_and(|i| fds.is_ready(i)),
            stderr: stderr.is_some_and(|i| fds.is_ready(i)),
            client_gone: client.is_some_and(|i| fds.is_ready(i)),
            time_up: false,
        })
    }
}

/// A descriptor that becomes readable when process `pid` exits (`pidfd_open(2)`), or `None`
/// where the kernel does not offer one.
#[cfg(target_os = "linux")]
fn exit_watch(pid: u32) -> Option<OwnedFd> {
    use std::os::fd::FromRawFd;
    let pid = libc::pid_t::try_from(pid).ok()?;
    let flags: libc::c_uint = 0;
    // SAFETY: pidfd_open(2) takes a pid and flags by value and returns a new descriptor or -1;
    // it reads or writes no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, flags) };
    let fd = RawFd::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: `fd` was just created by the kernel for this process and nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(not(target_os = "linux"))]
fn exit_watch(_pid: u32) -> Option<OwnedFd> {
    None
}

/// Events that mean the peer hung up: a half-close (where the platform reports it), a full
/// hang-up, or a socket error.
#[cfg(any(target_os = "linux", target_os = "android"))]
const HANGUP_EVENTS: libc::c_short = libc::POLLRDHUP;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const HANGUP_EVENTS: libc::c_short = 0;

/// Up to four descriptors for one `poll(2)` call: two pipes, the client, the exit watch.
#[derive(Default)]
struct PollSet {
    fds: [Option<libc::pollfd>; 4],
    len: usize,
}

impl PollSet {
    fn add(&mut self, fd: RawFd, events: libc::c_short) -> usize {
        let index = self.len;
        self.fds[index] = Some(libc::pollfd {
            fd,
            events,
            revents: 0,
        });
        self.len += 1;
        index
    }

    /// Watches `fd` for data (or its end).
    fn add_input(&mut self, fd: RawFd) -> usize {
        self.add(fd, libc::POLLIN)
    }

    /// Watches `fd` for a hang-up only, leaving data that arrives unread.
    fn add_hangup_watch(&mut self, fd: RawFd) -> usize {
        self.add(fd, HANGUP_EVENTS)
    }

    fn is_ready(&self, index: usize) -> bool {
        self.fds[index].is_some_and(|p| p.revents != 0)
    }

    /// Waits up to `timeout` (rounded up to whole milliseconds) for any event.
    fn poll(&mut self, timeout: Duration) -> io::Result<()> {
        let mut raw: [libc::pollfd; 4] = [libc::pollfd {
            fd: -1,
            events: 0,
            revents: 0,
        }; 4];
        for (slot, fd) in raw.iter_mut().zip(self.fds.iter().flatten()) {
            *slot = *fd;
        }
        let millis = timeout_millis(Some(timeout));
        // SAFETY: `raw` is a live, exclusively borrowed array of `self.len` initialised pollfd
        // structs (self.len <= 4), which is exactly what poll(2) reads and writes.
        let n = unsafe { libc::poll(raw.as_mut_ptr(), self.len as libc::nfds_t, millis) };
        if waited(n)? == 0 {
            return Ok(());
        }
        for (fd, polled) in self.fds.iter_mut().flatten().zip(raw) {
            fd.revents = polled.revents;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> CommandLimits {
        CommandLimits {
            timeout: Duration::from_secs(20),
            max_output: 1 << 20,
        }
    }

    fn run(command: &str, limits: &CommandLimits) -> (RunOutcome, CapturedOutput) {
        let mut out = CapturedOutput::default();
        let running = RunningCommands::new();
        let outcome =
            run_command(command, Path::new("/"), limits, None, &running, &mut out).unwrap();
        (outcome, out)
    }

    #[test]
    fn exit_codes_and_streams_are_reported() {
        let (outcome, out) = run("echo out; echo err >&2; exit 7", &limits());
        assert_eq!(outcome.termination, Termination::Exited(7));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert!(!outcome.truncated && !outcome.timed_out && !outcome.client_gone);
    }

    #[test]
    fn signals_are_reported_as_signals() {
        let (outcome, _) = run("kill -9 $$", &limits());
        assert_eq!(outcome.termination, Termination::Signaled(9));
        assert_eq!(outcome.termination.shell_status(), 137);
    }

    #[test]
    fn output_is_cut_at_the_cap() {
        let limits = CommandLimits {
            max_output: 100_000,
            ..limits()
        };
        let (outcome, out) = run("yes", &limits);
        assert!(outcome.truncated);
        assert_eq!(outcome.termination, Termination::Signaled(libc::SIGKILL));
        assert_eq!(out.stdout.len(), 100_000);
        assert!(out.stdout.chunks(2).all(|c| c == b"y\n"));
    }

    #[test]
    fn a_command_that_closes_its_output_is_still_timed() {
        let limits = CommandLimits {
            timeout: Duration::from_millis(300),
            ..limits()
        };
        let (outcome, _) = run("exec >&- 2>&-; sleep 30", &limits);
        assert!(outcome.timed_out);
        assert_eq!(outcome.termination, Termination::Signaled(libc::SIGKILL));
    }

    #[test]
    fn a_background_job_holding_the_output_ends_with_the_shell() {
        // Before the shell's exit was watched, this waited for the time limit.
        let (outcome, out) = run("sleep 30 & echo started", &limits());
        assert!(!outcome.timed_out, "{outcome:?}");
        assert_eq!(outcome.termination, Termination::Exited(0));
        assert_eq!(out.stdout, b"started\n");
    }

    #[test]
    fn huge_limits_do_not_overflow_the_clock() {
        let limits = CommandLimits {
            timeout: Duration::MAX,
            ..limits()
        };
        let (outcome, out) = run("echo ok", &limits);
        assert_eq!(outcome.termination, Termination::Exited(0));
        assert_eq!(out.stdout, b"ok\n");
    }

    #[test]
    fn spawn_failure_is_an_error() {
        let mut out = CapturedOutput::default();
        let missing = Path::new("/nonexistent/unstick/workdir");
        let running = RunningCommands::new();
        let failure = run_command("true", missing, &limits(), None, &running, &mut out);
        assert!(matches!(failure, Err(RunError::Spawn(_))), "{failure:?}");
    }
}
