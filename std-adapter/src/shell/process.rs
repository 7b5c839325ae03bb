//! Running one command: `sh -c` in its own process group, both output pipes drained as they
//! fill, the whole group killed on timeout, on the output cap or when the client goes away, and
//! the shell always reaped.
//!
//! One thread does it all with `poll(2)`: the two pipes, the client's socket (watched for a
//! hang-up only, so pipelined requests stay unread) and the deadline. Output is handed to an
//! [`OutputSink`] chunk by chunk as it arrives; nothing is accumulated here.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Size of one read from a pipe, and so the largest output frame body.
pub const OUTPUT_CHUNK: usize = 64 * 1024;

/// Environment variables removed from the commands' environment (secrets of the server).
const SCRUBBED_ENV: [&str; 1] = ["UNSTICK_TOKEN"];

/// Which output stream a chunk came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Termination {
    /// It exited with this code.
    Exited(i32),
    /// This signal killed it.
    Signaled(i32),
}

impl Termination {
    /// The status a shell would report in `$?`: the exit code, or 128 + the signal number.
    pub fn shell_status(self) -> u8 {
        match self {
            Termination::Exited(code) => (code & 0xff) as u8,
            Termination::Signaled(signal) => (128 + (signal & 0x7f)) as u8,
        }
    }

    fn from_status(status: ExitStatus) -> Termination {
        match (status.code(), status.signal()) {
            (Some(code), _) => Termination::Exited(code),
            (None, Some(signal)) => Termination::Signaled(signal),
            // wait(2) only reports terminated children; this is unreachable in practice.
            (None, None) => Termination::Exited(-1),
        }
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

/// Runs `command` with `sh -c` in `workdir`, streaming its output to `sink`.
///
/// `client` is the socket of the client that asked for the command: when it hangs up, the
/// command is killed. Returns an error only when the command could not be started (or polling
/// failed, in which case it has been killed and reaped).
pub fn run_command(
    command: &str,
    workdir: &Path,
    limits: &CommandLimits,
    client: Option<BorrowedFd<'_>>,
    sink: &mut dyn OutputSink,
) -> io::Result<RunOutcome> {
    let (group, pipes) = ProcessGroup::spawn(command, workdir)?;
    let mut run = CommandRun {
        group,
        pipes,
        client: client.map(|fd| fd.as_raw_fd()),
        deadline: Instant::now() + limits.timeout,
        max_output: limits.max_output,
        emitted: 0,
    };
    run.drive(sink)
}

/// The shell, leader of its own process group. Dropping it kills the group and reaps the shell,
/// so no path leaves a running group or a zombie behind.
struct ProcessGroup {
    child: Child,
    status: Option<ExitStatus>,
    /// Readable once the shell has exited, where the platform offers that (Linux pidfd).
    exit_watch: Option<OwnedFd>,
}

impl ProcessGroup {
    fn spawn(command: &str, workdir: &Path) -> io::Result<(ProcessGroup, OutputPipes)> {
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
        let pipes = OutputPipes {
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
        };
        let exit_watch = exit_watch(child.id());
        let group = ProcessGroup {
            child,
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
                let status = self.child.wait()?;
                self.status = Some(status);
                status
            }
        };
        Ok(Termination::from_status(status))
    }

    /// The shell's end, if it has ended.
    fn try_reap(&mut self) -> io::Result<Option<Termination>> {
        if self.status.is_none() {
            self.status = self.child.try_wait()?;
        }
        Ok(self.status.map(Termination::from_status))
    }

    fn kill_and_reap(&mut self) -> io::Result<Termination> {
        self.kill();
        self.reap()
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if self.status.is_none() {
            self.kill();
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

/// What one wait in [`CommandRun::wait_for_output`] saw.
#[derive(Clone, Copy, Debug, Default)]
struct Readiness {
    stdout: bool,
    stderr: bool,
    client_gone: bool,
    deadline_passed: bool,
}

/// One command in flight.
struct CommandRun {
    group: ProcessGroup,
    pipes: OutputPipes,
    client: Option<RawFd>,
    deadline: Instant,
    max_output: u64,
    emitted: u64,
}

/// How a command run stops early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    TimedOut,
    Truncated,
    ClientGone,
}

impl CommandRun {
    /// Pumps output until both pipes close, then waits for the shell; stops early on the
    /// deadline, the output cap or a hang-up.
    fn drive(&mut self, sink: &mut dyn OutputSink) -> io::Result<RunOutcome> {
        let stop = match self.pump_output(sink) {
            Ok(None) => self.await_exit()?,
            Ok(Some(stop)) => Some(stop),
            Err(e) => {
                self.group.kill_and_reap()?;
                return Err(e);
            }
        };
        let termination = match stop {
            None => self.group.reap()?,
            Some(_) => self.group.kill_and_reap()?,
        };
        Ok(RunOutcome {
            termination,
            truncated: stop == Some(Stop::Truncated),
            timed_out: stop == Some(Stop::TimedOut),
            client_gone: stop == Some(Stop::ClientGone),
        })
    }

    fn pump_output(&mut self, sink: &mut dyn OutputSink) -> io::Result<Option<Stop>> {
        let mut buf = vec![0u8; OUTPUT_CHUNK];
        while !self.pipes.all_closed() {
            let ready = self.wait_for_output()?;
            if ready.client_gone {
                return Ok(Some(Stop::ClientGone));
            }
            if ready.deadline_passed {
                return Ok(Some(Stop::TimedOut));
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
        Ok(None)
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

    /// Blocks until a pipe is readable, the client hangs up, or the deadline passes.
    fn wait_for_output(&self) -> io::Result<Readiness> {
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
        let Some(wait) = self.deadline.checked_duration_since(Instant::now()) else {
            return Ok(Readiness {
                deadline_passed: true,
                ..Readiness::default()
            });
        };
        fds.poll(wait)?;
        Ok(Readiness {
            stdout: stdout.is_some_and(|i| fds.is_ready(i)),
            stderr: stderr.is_some_and(|i| fds.is_ready(i)),
            client_gone: client.is_some_and(|i| fds.is_ready(i)),
            deadline_passed: false,
        })
    }

    /// After both pipes closed: waits for the shell to exit, still watching the deadline and the
    /// client (a command may close its output and keep running). Without an exit watch it
    /// checks at growing intervals (1 ms to 20 ms).
    fn await_exit(&mut self) -> io::Result<Option<Stop>> {
        let mut nap = Duration::from_millis(1);
        loop {
            if self.group.try_reap()?.is_some() {
                return Ok(None);
            }
            let Some(left) = self.deadline.checked_duration_since(Instant::now()) else {
                return Ok(Some(Stop::TimedOut));
            };
            let mut fds = PollSet::default();
            let client = self.client.map(|fd| fds.add_hangup_watch(fd));
            let exit = self
                .group
                .exit_watch
                .as_ref()
                .map(|fd| fds.add_input(fd.as_raw_fd()));
            fds.poll(if exit.is_some() { left } else { nap.min(left) })?;
            if client.is_some_and(|i| fds.is_ready(i)) {
                return Ok(Some(Stop::ClientGone));
            }
            nap = (nap * 2).min(Duration::from_millis(20));
        }
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

/// Up to three descriptors for one `poll(2)` call.
#[derive(Default)]
struct PollSet {
    fds: [Option<libc::pollfd>; 3],
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
        let mut raw: [libc::pollfd; 3] = [libc::pollfd {
            fd: -1,
            events: 0,
            revents: 0,
        }; 3];
        for (slot, fd) in raw.iter_mut().zip(self.fds.iter().flatten()) {
            *slot = *fd;
        }
        let millis = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
        // SAFETY: `raw` is a live, exclusively borrowed array of `self.len` initialised pollfd
        // structs (self.len <= 3), which is exactly what poll(2) reads and writes.
        let n = unsafe { libc::poll(raw.as_mut_ptr(), self.len as libc::nfds_t, millis) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
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
        let outcome = run_command(command, Path::new("/"), limits, None, &mut out).unwrap();
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
    fn spawn_failure_is_an_error() {
        let mut out = CapturedOutput::default();
        let missing = Path::new("/nonexistent/unstick/workdir");
        assert!(run_command("true", missing, &limits(), None, &mut out).is_err());
    }
}
