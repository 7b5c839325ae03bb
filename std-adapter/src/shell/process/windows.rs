//! Windows: the shell runs in a Job Object of its own, which is what is killed
//! (`TerminateJobObject`). The shell is created suspended and put in the job before its first
//! instruction, so every process it starts is in the job too (a job's processes cannot leave it
//! unless the job allows breakaway, which this one does not); the job is made with
//! `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`, so even a server that dies leaves no command behind.
//! The shell's process handle is held until it is reaped, so its id is never a stranger's.
//!
//! Windows has no `poll(2)` over anonymous pipes: a thread per pipe reads it and hands the chunks
//! over a bounded channel (a slow client still holds the command back, as on Unix), and the
//! supervising thread waits on that channel, checking the shell's exit and the client's socket
//! every [`EXIT_CHECK_INTERVAL`]. The command's input, when the client streams one, is written
//! by a thread of its own, which takes one chunk at a time (a command that does not read holds
//! the client back, as on Unix).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::windows::io::OwnedHandle;
use std::os::windows::process::CommandExt;
use std::process::{Child, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};

use super::drive::{CommandTree, Watch, Woke};
use super::win32::{self, CREATE_NO_WINDOW, CREATE_SUSPENDED};
use super::{
    CommandSpec, KILL_SIGNAL, Listing, OUTPUT_CHUNK, OutputStream, RunningCommands, Termination,
};

/// Longest pause between checks for the shell's exit and the client's hang-up.
const EXIT_CHECK_INTERVAL: Duration = Duration::from_millis(20);

/// The exit code `TerminateJobObject` gives the processes of a killed job: what `sh` reports
/// for a command SIGKILL ended (128 + 9). A shell that ends with it after the server killed its
/// job is reported as killed by SIGKILL, as on Unix.
const KILLED_EXIT_CODE: u32 = 128 + KILL_SIGNAL as u32;

/// Chunks in flight between the pipe readers and the supervisor: with one chunk in each
/// reader's hands, at most four [`OUTPUT_CHUNK`]s per command are held while a client reads
/// slowly.
const CHANNEL_CHUNKS: usize = 2;

/// A Job Object holding one command's processes.
#[derive(Debug)]
struct Job {
    handle: OwnedHandle,
    /// Set once the server has terminated the job.
    killed: AtomicBool,
}

impl Job {
    /// A new, empty job whose processes die when its last handle is closed.
    fn new() -> io::Result<Job> {
        Ok(Job {
            handle: win32::new_job()?,
            killed: AtomicBool::new(false),
        })
    }

    /// Puts `child` (created suspended) in the job.
    fn assign(&self, child: &Child) -> io::Result<()> {
        win32::assign(&self.handle, child)
    }

    /// Terminates every process in the job.
    fn kill(&self) -> io::Result<()> {
        self.killed.store(true, Ordering::SeqCst);
        win32::terminate(&self.handle, KILLED_EXIT_CODE)
    }
}

/// A command's job, as [`RunningCommands`] keeps it. The registry holds the job's handle open
/// itself, so killing a listed job never reaches a closed (or reused) handle.
#[derive(Debug)]
pub(super) struct TreeHandle(Arc<Job>);

impl TreeHandle {
    /// Terminates the job. A failure leaves the command to its own supervisor, which kills it
    /// when the server stops (the job dies with its last handle at the latest).
    pub(super) fn kill(&self) {
        let _ = self.0.kill();
    }
}

/// Starts `spec` in a Job Object of its own (see [`super::run_command`]).
pub(super) fn spawn<'r>(
    spec: &CommandSpec<'_>,
    running: &'r RunningCommands,
) -> io::Result<Command<'r>> {
    if spec.pty.is_some() {
        // The server's rules refuse such a request before it gets here.
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "commands on a pseudo-terminal are not implemented on Windows (no ConPTY support)",
        ));
    }
    let (tree, events, stdin) = ProcessTree::spawn(spec, running)?;
    Ok(Command {
        tree,
        events,
        open: [true, true],
        stdin,
    })
}

/// What a pipe reader reports.
enum Event {
    /// One read's bytes.
    Output(OutputStream, Vec<u8>),
    /// The pipe reached its end.
    Closed(OutputStream),
    /// Reading the pipe failed.
    Failed(io::Error),
}

/// The shell and its job. Dropping it kills the job and reaps the shell, so no path leaves a
/// running command behind.
struct ProcessTree<'r> {
    child: Child,
    job: Arc<Job>,
    running: &'r RunningCommands,
    /// The job's place in `running`, until it is taken off.
    listing: Option<Listing>,
    status: Option<ExitStatus>,
}

impl<'r> ProcessTree<'r> {
    /// Starts the shell suspended, puts it in a new job, lists the job, lets the shell run and
    /// starts a reader on each of its pipes.
    fn spawn(
        spec: &CommandSpec<'_>,
        running: &'r RunningCommands,
    ) -> io::Result<(ProcessTree<'r>, Receiver<Event>, Option<InputWriter>)> {
        let job = Job::new()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot create a Job Object: {e}")))?;
        let mut shell = spec.process();
        // Commands share the server's console, if it has one, as the seed's `shell=True` did (same
        // code page, same Ctrl+C); a server without one (a service, a program started detached)
        // gives each command a console without a window, so no window flashes up per command.
        let window = if win32::has_console() {
            0
        } else {
            CREATE_NO_WINDOW
        };
        shell.creation_flags(CREATE_SUSPENDED | window);
        let mut child = shell.spawn().map_err(|e| spec.spawn_error(e))?;
        // Nothing has run in the shell yet: once it is in the job, so is all it starts.
        if let Err(e) = job.assign(&child) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                e.kind(),
                format!("cannot put the command in a Job Object: {e}"),
            ));
        }
        let job = Arc::new(job);
        let Some(listing) = running.list(TreeHandle(Arc::clone(&job))) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other("the server is stopping"));
        };
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let stdin = child.stdin.take();
        let tree = ProcessTree {
            child,
            job,
            running,
            listing: Some(listing),
            status: None,
        };
        // From here on, a failure drops `tree`, which kills the job and reaps the shell.
        win32::resume_process(tree.child.id())
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start the shell: {e}")))?;
        let (sender, events) = mpsc::sync_channel(CHANNEL_CHUNKS);
        if let Some(pipe) = stdout {
            start_reader(OutputStream::Stdout, pipe, sender.clone())?;
        }
        if let Some(pipe) = stderr {
            start_reader(OutputStream::Stderr, pipe, sender)?;
        }
        let stdin = stdin.map(InputWriter::start).transpose()?;
        Ok((tree, events, stdin))
    }

    /// Terminates every process in the job (the shell and all it started). The shell's handle
    /// stays open until it is reaped.
    fn kill(&mut self) {
        if self.status.is_some() {
            return;
        }
        if self.job.kill().is_err() {
            // The job could not be terminated: the shell at least must end, or `reap` would
            // wait for it; the rest dies when the job's last handle closes.
            let _ = self.child.kill();
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
        Ok(self.termination_of(status))
    }

    /// How the shell's exit reads: a shell whose job the server killed, ended with the kill's
    /// code, is reported as SIGKILL ended it, as on Unix; any other code as an exit (an
    /// NTSTATUS such as 0xC0000005, access violation, as the negative number it is as `i32`).
    fn termination_of(&self, status: ExitStatus) -> Termination {
        let code = status.code().unwrap_or(-1);
        if self.job.killed.load(Ordering::SeqCst) && code as u32 == KILLED_EXIT_CODE {
            Termination::Signaled(KILL_SIGNAL)
        } else {
            Termination::Exited(code)
        }
    }

    fn unlist(&mut self) {
        if let Some(listing) = self.listing.take() {
            self.running.unlist(listing);
        }
    }

    fn kill_and_reap(&mut self) -> io::Result<Termination> {
        self.kill();
        self.reap()
    }

    /// Whether the shell has exited (its handle stays open: nothing is reaped).
    fn has_exited(&mut self) -> io::Result<bool> {
        if self.status.is_some() {
            return Ok(true);
        }
        Ok(self.child.try_wait()?.is_some())
    }

    /// Waits up to `timeout` for the shell to exit.
    fn wait_for_exit(&self, timeout: Duration) -> io::Result<()> {
        win32::wait_for_exit(&self.child, timeout)
    }
}

impl Drop for ProcessTree<'_> {
    fn drop(&mut self) {
        if self.status.is_none() {
            self.kill();
            self.unlist();
            let _ = self.child.wait();
        }
    }
}

/// Reads `pipe` to its end on a thread of its own, handing each read to `events`. The thread
/// ends at the pipe's end (the job's death closes it) or when nobody listens any more.
fn start_reader(
    stream: OutputStream,
    mut pipe: impl Read + Send + 'static,
    events: SyncSender<Event>,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name("unstick-shell-pipe".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let mut buf = vec![0u8; OUTPUT_CHUNK];
            loop {
                let event = match pipe.read(&mut buf) {
                    Ok(0) => Event::Closed(stream),
                    Ok(n) => Event::Output(stream, buf[..n].to_vec()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => Event::Failed(e),
                };
                let last = !matches!(event, Event::Output(..));
                if events.send(event).is_err() || last {
                    return;
                }
            }
        })?;
    Ok(())
}

/// The command's input pipe, written by a thread of its own: it takes one chunk at a time, and
/// says when the pipe broke.
struct InputWriter {
    chunks: SyncSender<Vec<u8>>,
    broken: Arc<AtomicBool>,
    /// A chunk is handed over and the thread has not taken it yet.
    queued: Arc<AtomicBool>,
}

impl InputWriter {
    /// Starts the thread that writes to `pipe`; it ends when the pipe breaks or the writer is
    /// dropped (then the pipe closes, and the command reads its end).
    fn start(mut pipe: impl Write + Send + 'static) -> io::Result<InputWriter> {
        let (chunks, taken) = mpsc::sync_channel::<Vec<u8>>(1);
        let broken = Arc::new(AtomicBool::new(false));
        let queued = Arc::new(AtomicBool::new(false));
        let (failed, waiting) = (Arc::clone(&broken), Arc::clone(&queued));
        std::thread::Builder::new()
            .name("unstick-shell-stdin".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                for chunk in taken {
                    waiting.store(false, Ordering::SeqCst);
                    if pipe.write_all(&chunk).is_err() {
                        failed.store(true, Ordering::SeqCst);
                        return;
                    }
                }
            })?;
        Ok(InputWriter {
            chunks,
            broken,
            queued,
        })
    }

    /// Whether the next chunk would be taken (or the pipe broke, which the next write says).
    fn has_room(&self) -> bool {
        !self.queued.load(Ordering::SeqCst) || self.broken.load(Ordering::SeqCst)
    }

    /// Hands over as much of `bytes` as one chunk holds; `Ok(0)` while the thread still
    /// writes the chunk before.
    fn write(&self, bytes: &[u8]) -> io::Result<usize> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let n = bytes.len().min(OUTPUT_CHUNK);
        self.queued.store(true, Ordering::SeqCst);
        match self.chunks.try_send(bytes[..n].to_vec()) {
            Ok(()) => Ok(n),
            Err(mpsc::TrySendError::Full(_)) => Ok(0),
            Err(mpsc::TrySendError::Disconnected(_)) => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }
}

/// Whether the client behind `socket` has hung up (or its socket failed). Data it sent ahead
/// (a pipelined request) is left unread; a hang-up behind such data is seen when the command
/// ends, as on Unix systems without `POLLRDHUP`.
fn client_gone(socket: &TcpStream) -> io::Result<bool> {
    let mut watch = [PollFd::new(socket, PollFlags::RDNORM)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match rustix::event::poll(&mut watch, Some(&now)) {
        Ok(0) | Err(rustix::io::Errno::INTR) => return Ok(false),
        Ok(_) => {}
        Err(e) => return Err(e.into()),
    }
    if watch[0]
        .revents()
        .intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL)
    {
        return Ok(true);
    }
    // Readable: the end of the stream, or data.
    Ok(match socket.peek(&mut [0u8; 1]) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    })
}

/// A command in flight: its tree, and what its pipes' readers hand over.
pub(super) struct Command<'r> {
    tree: ProcessTree<'r>,
    events: Receiver<Event>,
    /// Whether stdout and stderr are still open.
    open: [bool; 2],
    /// The writer of its input pipe, until closed.
    stdin: Option<InputWriter>,
}

/// Whether `socket` has bytes (or its end) to read, without waiting.
fn client_readable(socket: &TcpStream) -> io::Result<bool> {
    let mut watch = [PollFd::new(socket, PollFlags::RDNORM)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match rustix::event::poll(&mut watch, Some(&now)) {
        Ok(0) | Err(rustix::io::Errno::INTR) => Ok(false),
        Ok(_) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

impl CommandTree for Command<'_> {
    fn has_exited(&mut self) -> io::Result<bool> {
        self.tree.has_exited()
    }

    fn kill_and_reap(&mut self) -> io::Result<Termination> {
        self.tree.kill_and_reap()
    }

    fn output_closed(&self) -> bool {
        self.open == [false, false]
    }

    fn has_stdin(&self) -> bool {
        self.stdin.is_some()
    }

    fn write_stdin(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match &self.stdin {
            Some(writer) => writer.write(bytes),
            None => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    fn resize(&mut self, _: super::WindowSize) {}

    /// Checks the client's socket (for a hang-up, and for input when `watch` says so), then
    /// waits for the readers' next chunk (or, with both pipes closed, for the shell's exit),
    /// for [`EXIT_CHECK_INTERVAL`] at most: the socket, the input pipe's room and the exit are
    /// checked again after it.
    fn wait(
        &mut self,
        until: Instant,
        _shell_running: bool,
        watch: &Watch<'_>,
        buf: &mut [u8],
    ) -> io::Result<Woke> {
        if let Some(client) = watch.client {
            if client_gone(client)? {
                return Ok(Woke::ClientGone);
            }
            if watch.client_input && client_readable(client)? {
                return Ok(Woke::ClientInput);
            }
        }
        // The input's writer took the chunk before: the next one can go.
        if watch.stdin_room && self.stdin.as_ref().is_some_and(InputWriter::has_room) {
            return Ok(Woke::Nothing);
        }
        let Some(left) = until.checked_duration_since(Instant::now()) else {
            return Ok(Woke::Nothing);
        };
        let wait = left.min(EXIT_CHECK_INTERVAL);
        if self.output_closed() {
            // Running, with nothing left to read (a drain ends when the pipes close): wait for
            // the exit itself.
            self.tree.wait_for_exit(wait)?;
            return Ok(Woke::Nothing);
        }
        match self.events.recv_timeout(wait) {
            Ok(Event::Output(stream, bytes)) => {
                buf[..bytes.len()].copy_from_slice(&bytes);
                Ok(Woke::Output(stream, bytes.len()))
            }
            Ok(Event::Closed(stream)) => {
                match stream {
                    OutputStream::Stdout => self.open[0] = false,
                    OutputStream::Stderr => self.open[1] = false,
                }
                Ok(Woke::Nothing)
            }
            Ok(Event::Failed(e)) => Err(e),
            Err(RecvTimeoutError::Timeout) => Ok(Woke::Nothing),
            // Every reader has ended (each says so first; this is a safeguard).
            Err(RecvTimeoutError::Disconnected) => {
                self.open = [false, false];
                Ok(Woke::Nothing)
            }
        }
    }
}
