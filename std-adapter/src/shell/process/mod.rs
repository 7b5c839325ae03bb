//! Running one command: the [`Shell`] in a process tree of its own (a process group on Unix, a
//! Job Object on Windows), both output pipes drained as they fill, the whole tree killed on
//! timeout, on the output cap, when the client goes away, when the server stops, and when the
//! shell exits (so nothing the command started in its tree outlives it), and the shell always
//! reaped. When the server dies without stopping (`kill -9`, a crash), the tree dies with it on
//! Linux (a keeper process, started once, kills every group the server told it of) and on
//! Windows (the Job Object is closed with the server's handles); on other Unix systems it runs
//! on.
//!
//! What is shared lives here: the limits, the outcome, where output goes, the registry of
//! running commands that a stopping server kills, and (in `drive`) the loop that supervises a
//! command to its end. How a tree is started, waited on and killed is each platform's: `unix`
//! (one thread, `poll(2)` over the pipes, the client's socket and the shell's exit;
//! `group_keeper` on Linux) and `windows` (a Job Object, a reader thread per pipe; its calls
//! into Windows in `win32`).

use std::fmt;
use std::io;
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

pub(crate) use crate::server::deadline_after;

use super::interpreter::Shell;

mod drive;
#[cfg(target_os = "linux")]
mod group_keeper;
#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as platform;

#[cfg(windows)]
mod win32;
#[cfg(windows)]
pub(crate) use win32::code_pages;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as platform;

pub use unstick_core::shell::{OutputStream, Terminal, Termination, WindowSize};

/// Size of one read from a pipe, and so the largest output frame body.
pub const OUTPUT_CHUNK: usize = 64 * 1024;

/// How long the output pipes are still read after the shell has exited and the rest of its
/// process tree was killed: enough for the killed processes to die and what they wrote to be
/// read, short enough that a process outside the tree holding a pipe open (a `setsid` daemon
/// that kept the command's output) cannot stall the reply.
pub const DRAIN_GRACE: Duration = Duration::from_millis(250);

/// Environment variables removed from the commands' environment (secrets of the server).
const SCRUBBED_ENV: [&str; 1] = ["UNSTICK_TOKEN"];

/// The process trees of the commands one server is running, so that a server that stops can
/// kill them all. A tree is listed from its spawn until just before its shell is reaped, and it
/// has been killed (or its shell has exited) by then: while listed, the id it is killed by
/// cannot belong to anyone else.
#[derive(Debug)]
pub struct RunningCommands {
    trees: Mutex<Vec<(u64, platform::TreeHandle)>>,
    /// Numbers the listed trees.
    next_id: Mutex<u64>,
    /// Set by [`kill_all`](Self::kill_all): no command starts after it.
    stopping: AtomicBool,
}

/// Every [`RunningCommands`] made with [`RunningCommands::new`], for [`kill_all_commands`].
static ALL_RUNNING: Mutex<Vec<Weak<RunningCommands>>> = Mutex::new(Vec::new());

impl RunningCommands {
    /// A registry, which [`kill_all_commands`] reaches too.
    pub fn new() -> Arc<RunningCommands> {
        let running = Arc::new(RunningCommands {
            trees: Mutex::new(Vec::new()),
            next_id: Mutex::new(0),
            stopping: AtomicBool::new(false),
        });
        let mut all = ALL_RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
        all.retain(|r| r.strong_count() > 0);
        all.push(Arc::downgrade(&running));
        running
    }

    fn trees(&self) -> MutexGuard<'_, Vec<(u64, platform::TreeHandle)>> {
        self.trees.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Kills the process tree of every command running here (SIGKILL to its group on Unix,
    /// `TerminateJobObject` on Windows), and stops new ones from starting: for a server that is
    /// stopping, nothing a command started in its tree outlives it.
    pub fn kill_all(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for (_, tree) in self.trees().iter() {
            tree.kill();
        }
    }

    /// Lists a tree that was just spawned; `None` (and the tree killed) when a stop came
    /// first.
    fn list(&self, tree: platform::TreeHandle) -> Option<Listing> {
        let mut trees = self.trees();
        if self.stopping.load(Ordering::SeqCst) {
            tree.kill();
            return None;
        }
        let id = {
            let mut next = self.next_id.lock().unwrap_or_else(PoisonError::into_inner);
            *next += 1;
            *next
        };
        trees.push((id, tree));
        Some(Listing(id))
    }

    fn unlist(&self, listing: Listing) {
        self.trees().retain(|(id, _)| *id != listing.0);
    }
}

/// A tree's place in a [`RunningCommands`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Listing(u64);

/// Kills the commands of every server in this process (see [`RunningCommands::kill_all`]): for
/// a process that must stop at once.
pub fn kill_all_commands() {
    let all = ALL_RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
    for running in all.iter().filter_map(Weak::upgrade) {
        running.kill_all();
    }
}

/// Gets ready to run commands before a server serves: on Linux, starts the process that kills
/// the commands if the server dies (see `group_keeper`) now rather than at the first command,
/// so that the first command does not wait for it and a failure shows when the server starts.
/// A failure is logged; the first command tries again.
pub(crate) fn prepare() {
    #[cfg(target_os = "linux")]
    if let Err(e) = group_keeper::GroupKeeper::get().start() {
        tracing::warn!(
            server = "shell",
            error = %e,
            "cannot start the process that kills commands if the server dies; the first command tries again"
        );
    }
}

/// Limits applied to one command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandLimits {
    /// Wall-clock time the command may run before its process tree is killed.
    pub timeout: Duration,
    /// Output bytes (stdout and stderr together) passed on before the rest is cut and the
    /// process tree killed.
    pub max_output: u64,
    /// How long a command on a pty may go without activity (a byte of output, of input or a
    /// window size from the client) before its tree is killed; `None`: no limit. It ends as
    /// one that ran out of time.
    pub idle: Option<Duration>,
}

/// What happened to a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunOutcome {
    /// How the shell ended. A shell the server killed (time limit, output cap, client gone,
    /// stop) reads as killed by SIGKILL on every platform.
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

/// The client a command runs for, as its supervisor sees it: where the output goes
/// ([`OutputSink`]), the connection watched for the client's hang-up, and, when the client
/// streams the command's standard input, where that comes from. The supervisor asks
/// [`next_stdin`](Self::next_stdin) before every wait and does what it says; none of these
/// calls waits for the client.
pub(crate) trait CommandClient: OutputSink {
    /// The client's connection: watched for a hang-up while the command runs, and for input
    /// while [`next_stdin`](Self::next_stdin) says [`StdinStep::ReadClient`].
    fn socket(&self) -> Option<&TcpStream>;

    /// What the command's standard input needs now.
    fn next_stdin(&mut self) -> io::Result<StdinStep<'_>>;

    /// `n` of the bytes [`StdinStep::Write`] gave were written to the command.
    fn stdin_written(&mut self, n: usize);

    /// The command reads no more of its input (its pipe broke, or it was closed): what is
    /// held is dropped, and so is what the client still sends.
    fn stdin_closed(&mut self);

    /// The connection is readable: reads what it has (waiting no more than a moment) and
    /// takes it. `Ok(false)`: the client hung up.
    fn receive(&mut self) -> io::Result<bool>;

    /// When the client's protocol next needs [`on_deadline`](Self::on_deadline) while the
    /// command runs (a keepalive is due); `None` for never.
    fn deadline(&mut self) -> Option<std::time::Instant>;

    /// The [`deadline`](Self::deadline) has come: sends what is then due. `Err`: the client
    /// is gone.
    fn on_deadline(&mut self) -> io::Result<()>;
}

/// What a command's standard input needs next (see [`CommandClient::next_stdin`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StdinStep<'a> {
    /// Nothing now: the command gets no input, or none is due.
    Idle,
    /// Write these bytes to the command, as many as its pipe takes.
    Write(&'a [u8]),
    /// The client's input ended: close the command's pipe, so that it reads the end.
    Close,
    /// The client's terminal has a new size: apply it to the command's pty.
    Resize(WindowSize),
    /// Wait for the client's connection to be readable, then [`CommandClient::receive`].
    ReadClient,
    /// The client broke the protocol (it was told why): stop the command.
    Abort,
}

/// A client that sends no input: output goes to `sink`, `socket` is watched for a hang-up.
struct OutputOnly<'a> {
    sink: &'a mut dyn OutputSink,
    socket: Option<&'a TcpStream>,
}

impl OutputSink for OutputOnly<'_> {
    fn write_output(&mut self, stream: OutputStream, bytes: &[u8]) -> io::Result<()> {
        self.sink.write_output(stream, bytes)
    }
}

impl CommandClient for OutputOnly<'_> {
    fn socket(&self) -> Option<&TcpStream> {
        self.socket
    }

    fn next_stdin(&mut self) -> io::Result<StdinStep<'_>> {
        Ok(StdinStep::Idle)
    }

    fn stdin_written(&mut self, _: usize) {}

    fn stdin_closed(&mut self) {}

    fn receive(&mut self) -> io::Result<bool> {
        Ok(true)
    }

    fn deadline(&mut self) -> Option<std::time::Instant> {
        None
    }

    fn on_deadline(&mut self) -> io::Result<()> {
        Ok(())
    }
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
    /// The shell could not be started (say, the working directory is gone, the shell is not
    /// installed, or the system is out of processes).
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

/// What [`run_command`] runs: which shell, which command, where, and whether it reads the
/// client's input.
#[derive(Clone, Copy, Debug)]
pub struct CommandSpec<'a> {
    /// The shell the command is given to.
    pub shell: &'a Shell,
    /// The command line.
    pub command: &'a str,
    /// Its working directory.
    pub workdir: &'a Path,
    /// Its standard input is a pipe the client's input is written to; else it is empty.
    pub stdin: bool,
    /// Run it on a pseudo-terminal of this type and size instead of pipes (Unix only): its
    /// input is the client's (whatever `stdin` says), its output all `stdout`. An empty
    /// `command` is then a login shell.
    pub pty: Option<Terminal<'a>>,
}

impl CommandSpec<'_> {
    /// The shell's process for this command: in `workdir`, stdin a pipe or empty, both outputs
    /// piped, the server's secrets out of its environment. Each platform adds how its tree is
    /// kept.
    fn process(&self) -> std::process::Command {
        use std::process::Stdio;
        let mut process = self.bare_process(self.shell.command(self.command));
        let stdin = if self.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        process
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        process
    }

    /// The process for this command on a terminal: as [`process`](Self::process) without its
    /// standard streams (the terminal is all three), `TERM` set from the request; an empty
    /// command is a login shell: the server user's `$SHELL -l` when the server runs commands
    /// with the default `sh`, else the configured shell with `-l`.
    #[cfg(unix)]
    fn terminal_process(&self, terminal: &Terminal<'_>) -> std::process::Command {
        let shell = if !self.command.is_empty() {
            self.shell.command(self.command)
        } else {
            let program = match std::env::var_os("SHELL") {
                Some(login) if !login.is_empty() && self.shell.program() == "sh" => login,
                _ => self.shell.program().to_owned(),
            };
            let mut login = std::process::Command::new(program);
            login.arg("-l");
            login
        };
        let mut process = self.bare_process(shell);
        if !terminal.term.is_empty() {
            process.env("TERM", terminal.term);
        }
        process
    }

    /// `process` in `workdir`, the server's secrets out of its environment.
    fn bare_process(&self, mut process: std::process::Command) -> std::process::Command {
        process.current_dir(self.workdir);
        for name in SCRUBBED_ENV {
            process.env_remove(name);
        }
        process
    }

    /// `e`, saying which shell could not start, and what to check.
    fn spawn_error(&self, e: io::Error) -> io::Error {
        if !self.workdir.is_dir() {
            let workdir = self.workdir.display();
            return io::Error::new(
                e.kind(),
                format!("the working directory {workdir} is gone: {e}"),
            );
        }
        let hint = if e.kind() == io::ErrorKind::NotFound {
            " (is it installed and on PATH? choose another with --shell)"
        } else {
            ""
        };
        io::Error::new(e.kind(), format!("cannot start {}: {e}{hint}", self.shell))
    }
}

/// Runs `spec`, streaming its output to `sink`.
///
/// `client` is the socket of the client that asked for the command: when it hangs up, the
/// command is killed. The command's tree is listed in `running` while it runs. Whatever
/// happens, the command's process tree is gone and its shell reaped when this returns.
pub fn run_command(
    spec: &CommandSpec<'_>,
    limits: &CommandLimits,
    client: Option<&TcpStream>,
    running: &RunningCommands,
    sink: &mut dyn OutputSink,
) -> Result<RunOutcome, RunError> {
    let mut client = OutputOnly {
        sink,
        socket: client,
    };
    run_command_for(spec, limits, running, &mut client)
}

/// Runs `spec` for `client`: its output goes to the client, its standard input (when
/// `spec.stdin`) comes from it, and a hang-up kills it; otherwise as [`run_command`].
pub(crate) fn run_command_for(
    spec: &CommandSpec<'_>,
    limits: &CommandLimits,
    running: &RunningCommands,
    client: &mut dyn CommandClient,
) -> Result<RunOutcome, RunError> {
    let mut command = platform::spawn(spec, running).map_err(RunError::Spawn)?;
    drive::drive(&mut command, limits, client).map_err(RunError::Supervise)
}

/// How a command run stops early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    TimedOut,
    Truncated,
    ClientGone,
}

impl RunOutcome {
    fn new(termination: Termination, stop: Option<Stop>) -> RunOutcome {
        RunOutcome {
            termination,
            truncated: stop == Some(Stop::Truncated),
            timed_out: stop == Some(Stop::TimedOut),
            client_gone: stop == Some(Stop::ClientGone),
        }
    }
}

/// The output cap: how much of what is produced is passed on.
#[derive(Clone, Copy, Debug)]
struct OutputBudget {
    max_output: u64,
    emitted: u64,
}

impl OutputBudget {
    fn new(max_output: u64) -> OutputBudget {
        OutputBudget {
            max_output,
            emitted: 0,
        }
    }

    /// Passes what fits of `bytes` (one read of `stream`) to `sink`; a stop when the cap cut it
    /// or the sink is gone.
    fn forward(
        &mut self,
        stream: OutputStream,
        bytes: &[u8],
        sink: &mut dyn OutputSink,
    ) -> Option<Stop> {
        let n = bytes.len();
        let room = self.max_output.saturating_sub(self.emitted);
        let take = usize::try_from(room).map_or(n, |room| room.min(n));
        if take > 0 {
            if sink.write_output(stream, &bytes[..take]).is_err() {
                return Some(Stop::ClientGone);
            }
            self.emitted += take as u64;
        }
        (take < n).then_some(Stop::Truncated)
    }
}

/// The signal a killed tree's shell is reported as ended by where there are no signals
/// (Windows): SIGKILL's number, what Unix reports for the same kill.
#[cfg(windows)]
const KILL_SIGNAL: i32 = 9;

#[cfg(test)]
mod tests;
