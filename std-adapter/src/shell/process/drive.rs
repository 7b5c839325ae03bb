//! Supervising one command, the same on every platform: output forwarded within the cap while
//! the shell runs, and the client's input, when it streams one, written to the command as its
//! pipe takes it; once the shell exits, what is left of its tree killed and the pipes drained
//! for [`DRAIN_GRACE`]; an early stop on the deadline, the output cap or the client's hang-up;
//! and whatever happened, the tree killed and the shell reaped. What differs between platforms
//! (how the pipes, the client and the shell's exit are waited for, how a tree is killed) is
//! behind [`CommandTree`].

use std::io;
use std::net::TcpStream;
use std::time::Instant;

use super::{
    CommandClient, CommandLimits, DRAIN_GRACE, OUTPUT_CHUNK, OutputBudget, OutputStream,
    RunOutcome, StdinStep, Stop, Termination, WindowSize, deadline_after,
};

/// A running command as its platform holds it: the shell, its process tree and the read ends
/// of its output pipes.
pub(super) trait CommandTree {
    /// Whether the shell has exited. It is not reaped, so the id its tree is killed by stays
    /// its own.
    fn has_exited(&mut self) -> io::Result<bool>;

    /// Kills the whole tree (unless the shell was reaped already) and reaps the shell.
    fn kill_and_reap(&mut self) -> io::Result<Termination>;

    /// Whether both output pipes reached their end.
    fn output_closed(&self) -> bool;

    /// Whether the command's standard input is a pipe still open.
    fn has_stdin(&self) -> bool;

    /// Writes what the command's input pipe takes of `bytes` without waiting; `Ok(0)` when it
    /// is full. An error: the pipe broke (the command closed it, or ended).
    fn write_stdin(&mut self, bytes: &[u8]) -> io::Result<usize>;

    /// Closes the command's input pipe: the command reads its end. (A command on a pty
    /// keeps its terminal: the input written to it just stops.)
    fn close_stdin(&mut self);

    /// Gives the command's pty a new window size (its foreground group gets SIGWINCH); nothing
    /// for a command without one.
    fn resize(&mut self, size: WindowSize);

    /// Waits, until `until` at most, for output (one read, put in `buf`, which is
    /// [`OUTPUT_CHUNK`] long), what `watch` asks for (the client's hang-up, its input, room in
    /// the command's input pipe), or, while `shell_running`, the shell's exit. May return
    /// [`Woke::Nothing`] before `until`: a pipe's end, room in the input pipe, the shell's
    /// exit, a signal, or a platform's periodic check.
    fn wait(
        &mut self,
        until: Instant,
        shell_running: bool,
        watch: &Watch<'_>,
        buf: &mut [u8],
    ) -> io::Result<Woke>;
}

/// What a [`CommandTree::wait`] watches besides the output pipes and the shell's exit.
#[derive(Clone, Copy, Debug)]
pub(super) struct Watch<'a> {
    /// The client's connection, watched for a hang-up.
    pub(super) client: Option<&'a TcpStream>,
    /// Whether the connection is also watched for input ([`Woke::ClientInput`]).
    pub(super) client_input: bool,
    /// Whether the command's input pipe is watched for room.
    pub(super) stdin_room: bool,
}

/// What a [`CommandTree::wait`] saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Woke {
    /// This many bytes of this stream are at the start of the buffer.
    Output(OutputStream, usize),
    /// The client hung up, or its socket failed.
    ClientGone,
    /// The client's connection has input (or its end) to read.
    ClientInput,
    /// Nothing to pass on; the state is to be checked again.
    Nothing,
}

/// Where a command run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The shell is running: output is forwarded until it exits or the deadline passes.
    Running,
    /// The shell has exited and its tree was killed: what is left in the pipes is read until
    /// they close or `until` passes.
    Draining {
        /// End of the drain (the grace period, or the deadline if sooner).
        until: Instant,
    },
}

/// What the command's input waits for after [`feed_stdin`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StdinWait {
    /// Nothing.
    Nothing,
    /// The client's next bytes.
    ClientInput,
    /// Room in the command's input pipe.
    PipeRoom,
    /// The client broke the protocol: the command stops.
    Abort,
}

/// Does what the command's input needs without waiting: writes what the client sent as far as
/// the pipe takes it, closes the pipe at the input's end, drops the input of a command whose
/// pipe broke; says what is waited for next.
fn feed_stdin(
    tree: &mut impl CommandTree,
    client: &mut dyn CommandClient,
) -> io::Result<StdinWait> {
    loop {
        match client.next_stdin()? {
            StdinStep::Idle => return Ok(StdinWait::Nothing),
            StdinStep::ReadClient => return Ok(StdinWait::ClientInput),
            StdinStep::Abort => return Ok(StdinWait::Abort),
            StdinStep::Close => tree.close_stdin(),
            StdinStep::Resize(size) => tree.resize(size),
            StdinStep::Write(_) if !tree.has_stdin() => client.stdin_closed(),
            StdinStep::Write(bytes) => match tree.write_stdin(bytes) {
                Ok(0) => return Ok(StdinWait::PipeRoom),
                Ok(n) => client.stdin_written(n),
                // The command closed its input, or ended: it reads no more.
                Err(_) => {
                    tree.close_stdin();
                    client.stdin_closed();
                }
            },
        }
    }
}

/// Supervises `tree` to its end under `limits`, streaming its output to `client` and the
/// client's input to it; then makes sure the tree is gone and the shell reaped, also when
/// supervising failed.
pub(super) fn drive(
    tree: &mut impl CommandTree,
    limits: &CommandLimits,
    client: &mut dyn CommandClient,
) -> io::Result<RunOutcome> {
    let stop = match supervise(tree, limits, client) {
        Ok(stop) => stop,
        Err(e) => {
            tree.kill_and_reap()?;
            return Err(e);
        }
    };
    let termination = tree.kill_and_reap()?;
    Ok(RunOutcome::new(termination, stop))
}

/// Forwards output while the shell runs, notices its exit (then kills what is left of its tree
/// and drains the pipes), and stops early on the deadline, the output cap or a hang-up. A
/// command that closes its output and keeps running is still timed; one that leaves a
/// background process holding its output open ends when the shell does.
fn supervise(
    tree: &mut impl CommandTree,
    limits: &CommandLimits,
    client: &mut dyn CommandClient,
) -> io::Result<Option<Stop>> {
    let deadline = deadline_after(limits.timeout);
    // Activity (output, or bytes from the client) starts the idle limit over.
    let mut active = Instant::now();
    let mut budget = OutputBudget::new(limits.max_output);
    let mut phase = Phase::Running;
    let mut buf = vec![0u8; OUTPUT_CHUNK];
    loop {
        if phase == Phase::Running && tree.has_exited()? {
            tree.kill_and_reap()?;
            // The input left unread is the session's to drop, once the command is answered.
            tree.close_stdin();
            let until = deadline.min(Instant::now() + DRAIN_GRACE);
            phase = Phase::Draining { until };
        }
        let until = match phase {
            Phase::Running => limits.idle.map_or(deadline, |idle| {
                deadline.min(deadline_after_from(active, idle))
            }),
            Phase::Draining { until } => {
                if tree.output_closed() {
                    return Ok(None);
                }
                until
            }
        };
        if Instant::now() >= until {
            return Ok((phase == Phase::Running).then_some(Stop::TimedOut));
        }
        let stdin = match phase {
            Phase::Running => feed_stdin(tree, client)?,
            Phase::Draining { .. } => StdinWait::Nothing,
        };
        if stdin == StdinWait::Abort {
            return Ok(Some(Stop::ClientGone));
        }
        // The client's protocol may have something to send meanwhile (a keepalive).
        let protocol_due = client.deadline();
        if protocol_due.is_some_and(|at| at <= Instant::now()) {
            if client.on_deadline().is_err() {
                return Ok(Some(Stop::ClientGone));
            }
            continue;
        }
        let watch = Watch {
            client: client.socket(),
            client_input: stdin == StdinWait::ClientInput,
            stdin_room: stdin == StdinWait::PipeRoom,
        };
        let wake_by = protocol_due.map_or(until, |at| at.min(until));
        match tree.wait(wake_by, phase == Phase::Running, &watch, &mut buf)? {
            Woke::Output(stream, n) => {
                active = Instant::now();
                if let Some(stop) = budget.forward(stream, &buf[..n], client) {
                    return Ok(Some(stop));
                }
            }
            Woke::ClientGone => return Ok(Some(Stop::ClientGone)),
            Woke::ClientInput => {
                active = Instant::now();
                if !client.receive()? {
                    return Ok(Some(Stop::ClientGone));
                }
            }
            Woke::Nothing => {}
        }
    }
}

/// `from` plus `limit`, or far in the future when that cannot be told.
fn deadline_after_from(from: Instant, limit: std::time::Duration) -> Instant {
    from.checked_add(limit)
        .unwrap_or_else(|| deadline_after(limit))
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::time::Duration;

    use super::super::{CapturedOutput, OutputOnly};
    use super::*;

    /// What a scripted tree's next wait sees.
    enum Step {
        Output(OutputStream, &'static [u8]),
        /// The shell exits.
        Exit,
        /// Both pipes reach their end.
        Close,
        ClientGone,
    }

    /// A tree whose waits follow a script, with no process behind it.
    struct Scripted {
        steps: VecDeque<Step>,
        exited: bool,
        closed: bool,
        /// Calls of `kill_and_reap`, and whether the shell still ran at each.
        kills: Vec<bool>,
    }

    impl Scripted {
        fn new(steps: impl IntoIterator<Item = Step>) -> Scripted {
            Scripted {
                steps: steps.into_iter().collect(),
                exited: false,
                closed: false,
                kills: Vec::new(),
            }
        }
    }

    impl CommandTree for Scripted {
        fn has_exited(&mut self) -> io::Result<bool> {
            Ok(self.exited)
        }

        fn kill_and_reap(&mut self) -> io::Result<Termination> {
            self.kills.push(!self.exited);
            let killed = self.kills.iter().any(|&running| running);
            self.exited = true;
            Ok(if killed {
                Termination::Signaled(9)
            } else {
                Termination::Exited(0)
            })
        }

        fn output_closed(&self) -> bool {
            self.closed
        }

        fn has_stdin(&self) -> bool {
            false
        }

        fn write_stdin(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }

        fn close_stdin(&mut self) {}

        fn resize(&mut self, _: WindowSize) {}

        fn wait(
            &mut self,
            _until: Instant,
            _shell_running: bool,
            _watch: &Watch<'_>,
            buf: &mut [u8],
        ) -> io::Result<Woke> {
            let step = self
                .steps
                .pop_front()
                .expect("the run waited past its script");
            Ok(match step {
                Step::Output(stream, bytes) => {
                    buf[..bytes.len()].copy_from_slice(bytes);
                    Woke::Output(stream, bytes.len())
                }
                Step::Exit => {
                    self.exited = true;
                    Woke::Nothing
                }
                Step::Close => {
                    self.closed = true;
                    Woke::Nothing
                }
                Step::ClientGone => Woke::ClientGone,
            })
        }
    }

    fn limits(max_output: u64) -> CommandLimits {
        CommandLimits {
            timeout: Duration::from_secs(3600),
            max_output,
            idle: None,
        }
    }

    fn run(tree: &mut Scripted, limits: &CommandLimits) -> (RunOutcome, CapturedOutput) {
        let mut out = CapturedOutput::default();
        let mut client = OutputOnly {
            sink: &mut out,
            socket: None,
        };
        let outcome = drive(tree, limits, &mut client).unwrap();
        (outcome, out)
    }

    #[test]
    fn output_left_after_the_shell_exits_is_passed_on_until_the_pipes_close() {
        let mut tree = Scripted::new([
            Step::Output(OutputStream::Stdout, b"a"),
            Step::Exit,
            Step::Output(OutputStream::Stderr, b"b"),
            Step::Close,
        ]);
        let (outcome, out) = run(&mut tree, &limits(100));
        assert_eq!(outcome, RunOutcome::new(Termination::Exited(0), None));
        assert_eq!((&out.stdout[..], &out.stderr[..]), (&b"a"[..], &b"b"[..]));
        // The tree's rest is killed as soon as the exit is seen, and again at the end.
        assert_eq!(tree.kills, [false, false]);
        assert!(tree.steps.is_empty());
    }

    #[test]
    fn a_hang_up_stops_the_run_and_kills_the_tree() {
        let mut tree = Scripted::new([Step::Output(OutputStream::Stdout, b"x"), Step::ClientGone]);
        let (outcome, out) = run(&mut tree, &limits(100));
        let expected = RunOutcome::new(Termination::Signaled(9), Some(Stop::ClientGone));
        assert_eq!(outcome, expected);
        assert_eq!(out.stdout, b"x");
        assert_eq!(tree.kills, [true]);
    }

    #[test]
    fn the_cap_cuts_the_chunk_that_crosses_it_and_kills_the_tree() {
        let mut tree = Scripted::new([
            Step::Output(OutputStream::Stdout, b"ab"),
            Step::Output(OutputStream::Stderr, b"cdef"),
        ]);
        let (outcome, out) = run(&mut tree, &limits(4));
        let expected = RunOutcome::new(Termination::Signaled(9), Some(Stop::Truncated));
        assert_eq!(outcome, expected);
        assert_eq!((&out.stdout[..], &out.stderr[..]), (&b"ab"[..], &b"cd"[..]));
        assert_eq!(tree.kills, [true]);
    }

    #[test]
    fn a_run_past_its_deadline_is_timed_out_and_killed_without_a_wait() {
        // The script is empty: a wait would fail the test.
        let mut tree = Scripted::new([]);
        let limits = CommandLimits {
            timeout: Duration::ZERO,
            ..limits(100)
        };
        let (outcome, _) = run(&mut tree, &limits);
        let expected = RunOutcome::new(Termination::Signaled(9), Some(Stop::TimedOut));
        assert_eq!(outcome, expected);
        assert_eq!(tree.kills, [true]);
    }
}
