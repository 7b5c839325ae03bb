//! A command's standard input streamed from the shell's client session to its server session,
//! in memory, under every chunking of [`pairs::all_cuts`]: the server's host feeds a fake
//! command through a small pipe that the command drains at its own pace, taking the client's
//! bytes only while the session takes stdin (so at most one chunk is held), and the client's
//! host reads its input only while its session wants it. Commands that read everything
//! (`cat`, `wc -c`), stop early (`head -c N`) or never read (`true`) all end with their exit
//! frame, and the connection stays in step for the next command.
#![cfg(all(feature = "md5", feature = "xxh3"))]

mod pairs;

use std::collections::VecDeque;

use pairs::{Budget, Cuts, Pipe, Read, all_cuts, generated, steps_for};
use unstick_core::session::ServerEvent;
use unstick_core::shell::{
    Dialect, ExecOptions, ExitReport, OutputStream, ShellAction, ShellClientSession, ShellReply,
    ShellRules, ShellServerSession, StdinInput, Termination,
};
use unstick_core::time::Instant;

/// Bytes the fake command's pipe holds (a real one holds 64 KiB).
const PIPE: usize = 100;

/// Bytes the client's host reads from its input at a time.
const CHUNK: usize = 333;

const EXIT_0: ExitReport = ExitReport {
    termination: Termination::Exited(0),
    truncated: false,
    timed_out: false,
};

/// What the fake command does with its standard input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Command {
    /// Writes what it reads to stdout; exits at the input's end.
    Cat,
    /// Counts what it reads; writes the count at the input's end.
    Wc,
    /// Reads this many bytes, writes them, and exits without reading more.
    Head(usize),
    /// Reads nothing; writes one line and exits.
    True,
}

impl Command {
    fn parse(text: &str) -> Command {
        match text.split_whitespace().collect::<Vec<_>>()[..] {
            ["cat"] => Command::Cat,
            ["wc", "-c"] => Command::Wc,
            ["head", "-c", n] => Command::Head(n.parse().unwrap()),
            _ => Command::True,
        }
    }
}

/// The server's host: a session, the fake command it runs, and the command's stdin pipe.
struct Server<'a> {
    session: ShellServerSession<'a, 1024>,
    buf: Vec<u8>,
    running: Option<Command>,
    /// The command's stdin pipe.
    pipe: VecDeque<u8>,
    /// The client's input ended and the pipe was closed.
    pipe_closed: bool,
    /// The rest of the chunk the session handed out, not yet in the pipe.
    held: Vec<u8>,
    /// Most bytes held at once.
    most_held: usize,
    /// What the command has read.
    read: u64,
    closed: bool,
}

/// The client's host: a session, the input it streams and what came back.
struct Client {
    session: ShellClientSession<1024>,
    buf: Vec<u8>,
    /// The body of the last frame queued: the command, or a chunk of input.
    body: Vec<u8>,
    input: Vec<u8>,
    sent: usize,
    stdout: Vec<u8>,
    end: Option<ExitReport>,
}

struct StdinPair<'a> {
    cuts: Cuts,
    server: Server<'a>,
    client: Client,
    c2s: Pipe,
    s2c: Pipe,
}

impl<'a> StdinPair<'a> {
    fn new(command_buf: &'a mut [u8], cuts: Cuts) -> Self {
        let rules = ShellRules {
            stdin: true,
            ..ShellRules::default()
        };
        StdinPair {
            cuts,
            server: Server {
                session: ShellServerSession::new(rules, Dialect::Framed, command_buf),
                buf: vec![0u8; 4096],
                running: None,
                pipe: VecDeque::new(),
                pipe_closed: false,
                held: Vec::new(),
                most_held: 0,
                read: 0,
                closed: false,
            },
            client: Client {
                session: ShellClientSession::new(),
                buf: vec![0u8; 4096],
                body: Vec::new(),
                input: Vec::new(),
                sent: 0,
                stdout: Vec::new(),
                end: None,
            },
            c2s: Pipe::new(cuts),
            s2c: Pipe::new(cuts.reversed()),
        }
    }

    fn server_flush(&mut self, body: &[u8]) -> bool {
        let session = &mut self.server.session;
        let sent = self
            .s2c
            .send_transmits(&mut self.server.buf, body, |buf| session.poll_transmit(buf));
        while let Some(event) = self.server.session.poll_event() {
            if let ServerEvent::Refused(refusal) = event {
                panic!("refused: {refusal:?}");
            }
        }
        sent
    }

    fn output(&mut self, bytes: &[u8]) {
        self.server
            .session
            .handle_output(OutputStream::Stdout, bytes)
            .unwrap();
        self.server_flush(bytes);
    }

    /// The command's step: reads what its pipe holds (a few bytes a step, a slow reader),
    /// writes, and perhaps exits.
    fn command_step(&mut self, command: Command) -> bool {
        let want = match command {
            Command::Head(n) => (n as u64 - self.server.read).min(7) as usize,
            Command::True => 0,
            Command::Cat | Command::Wc => 7,
        };
        // A read takes what a pipe holds at its turn: with fewer bytes than it wants, and more
        // to come, the command waits for them (as a reader woken by a full pipe would).
        let more_to_come = !self.server.pipe_closed;
        let take = if self.server.pipe.len() < want && more_to_come {
            0
        } else {
            want.min(self.server.pipe.len())
        };
        let bytes: Vec<u8> = self.server.pipe.drain(..take).collect();
        self.server.read += take as u64;
        if matches!(command, Command::Cat | Command::Head(_)) && !bytes.is_empty() {
            self.output(&bytes);
        }
        let at_end = self.server.pipe_closed && self.server.pipe.is_empty();
        let exits = match command {
            Command::Cat => at_end,
            Command::Wc => {
                if at_end {
                    let count = format!("{}\n", self.server.read);
                    self.output(count.as_bytes());
                }
                at_end
            }
            Command::Head(n) => self.server.read == n as u64 || at_end,
            Command::True => {
                self.output(b"did not read\n");
                true
            }
        };
        if exits {
            // What the pipe still holds dies with it; the session drops the rest.
            self.server.pipe.clear();
            self.server.held.clear();
            self.server.running = None;
            if self.server.session.streams_stdin() {
                self.server.session.handle_stdin_closed().unwrap();
            }
            self.server.session.handle_exit(EXIT_0).unwrap();
            self.server_flush(&[]);
        }
        take > 0 || exits
    }

    fn server_step(&mut self) -> bool {
        if self.server.closed {
            return false;
        }
        let mut moved = self.server_flush(&[]);
        if let Some(command) = self.server.running {
            moved |= self.command_step(command);
            if self.server.running.is_none() {
                return true;
            }
            // The held chunk goes into the pipe as far as it has room.
            if !self.server.held.is_empty() {
                let room = PIPE - self.server.pipe.len();
                let n = room.min(self.server.held.len());
                self.server.pipe.extend(self.server.held.drain(..n));
                if self.server.held.is_empty() {
                    self.server.session.handle_stdin_written().unwrap();
                }
                return moved || n > 0;
            }
            // The client's bytes are read only while the session takes them.
            if !self.server.session.takes_stdin() {
                return moved;
            }
            if self.c2s.pending().is_empty() {
                return match self.c2s.read() {
                    Read::Data => true,
                    Read::Nothing | Read::Eof => moved,
                };
            }
            let (used, input) = self.server.session.handle_stdin(self.c2s.pending());
            match input {
                Some(StdinInput::Bytes(bytes)) => {
                    assert!(!self.server.session.takes_stdin());
                    self.server.held = bytes.to_vec();
                    self.server.most_held = self.server.most_held.max(bytes.len());
                }
                Some(StdinInput::End) => self.server.pipe_closed = true,
                Some(StdinInput::Resize(_)) | None => {}
            }
            self.c2s.consume(used);
            return true;
        }
        match self.server.session.poll_action() {
            Some(ShellAction::Run { command }) => {
                let command = Command::parse(command);
                assert!(self.server.session.streams_stdin() || command == Command::True);
                self.server.running = Some(command);
                self.server.pipe.clear();
                self.server.pipe_closed = !self.server.session.streams_stdin();
                self.server.read = 0;
                true
            }
            Some(ShellAction::Close) => {
                self.server.closed = true;
                self.s2c.close();
                true
            }
            None => {
                if !self.c2s.pending().is_empty() {
                    let used = self
                        .server
                        .session
                        .handle_input(Instant::ZERO, self.c2s.pending());
                    self.c2s.consume(used);
                    return used > 0 || self.server_flush(&[]) || moved;
                }
                match self.c2s.read() {
                    Read::Data => true,
                    Read::Nothing | Read::Eof => moved,
                }
            }
        }
    }

    fn client_step(&mut self) -> bool {
        let client = &mut self.client;
        let session = &mut client.session;
        let mut moved = self
            .c2s
            .send_transmits(&mut client.buf, &client.body, |buf| {
                session.poll_transmit(buf)
            });
        // Input is read only while the session wants it: one chunk at a time.
        if client.session.wants_stdin() {
            let chunk = &client.input[client.sent..(client.sent + CHUNK).min(client.input.len())];
            if chunk.is_empty() {
                client.session.end_stdin().unwrap();
            } else {
                client.body = chunk.to_vec();
                client.sent += chunk.len();
                client.session.send_stdin(&client.body).unwrap();
            }
            moved = true;
        }
        if client.end.is_some() {
            return moved;
        }
        if self.s2c.pending().is_empty() {
            return match self.s2c.read() {
                Read::Data => true,
                Read::Nothing | Read::Eof => moved,
            };
        }
        let (used, reply) = client
            .session
            .handle_input(Instant::ZERO, self.s2c.pending())
            .unwrap();
        match reply {
            Some(ShellReply::Output { bytes, .. }) => client.stdout.extend_from_slice(bytes),
            Some(ShellReply::Exit(report)) => client.end = Some(report),
            Some(ShellReply::Refused { code, .. }) => panic!("refused: {code}"),
            None => {}
        }
        self.s2c.consume(used);
        true
    }

    /// Runs `command` with `input` as its stdin; returns its stdout, once the client has the
    /// exit and has sent everything.
    fn run(&mut self, command: &str, input: Option<&[u8]>) -> Vec<u8> {
        let client = &mut self.client;
        let options = ExecOptions {
            stdin: input.is_some(),
            ..ExecOptions::default()
        };
        client.session.exec_with(command, options).unwrap();
        client.body = command.as_bytes().to_vec();
        client.input = input.unwrap_or_default().to_vec();
        client.sent = 0;
        client.stdout.clear();
        client.end = None;
        let what = format!("{command} ({:?})", self.cuts);
        let mut budget = Budget::new(steps_for(2 * client.input.len() + 1000), what);
        let done = |p: &Self| {
            p.client.end.is_some()
                && p.server.session.is_idle()
                && p.c2s.in_flight() == 0
                && p.c2s.pending().is_empty()
        };
        while !done(self) {
            let server = self.server_step();
            let client = self.client_step();
            budget.spend(server || client, || {
                format!(
                    "server action {:?}, takes stdin {}, held {}, pipe {}, c2s {}+{}, s2c {}+{}, end {:?}",
                    self.server.session.poll_action(),
                    self.server.session.takes_stdin(),
                    self.server.held.len(),
                    self.server.pipe.len(),
                    self.c2s.pending().len(),
                    self.c2s.in_flight(),
                    self.s2c.pending().len(),
                    self.s2c.in_flight(),
                    self.client.end
                )
            });
        }
        assert_eq!(self.client.end, Some(EXIT_0));
        std::mem::take(&mut self.client.stdout)
    }
}

#[test]
fn stdin_streams_through_commands_that_read_all_some_or_none_of_it() {
    let input = generated(5_000, 21);
    for cuts in all_cuts() {
        let mut command_buf = vec![0u8; 256];
        let mut pair = StdinPair::new(&mut command_buf, cuts);
        assert_eq!(pair.run("cat", Some(&input)), input, "{cuts:?}");
        assert_eq!(pair.run("wc -c", Some(&input)), b"5000\n", "{cuts:?}");
        assert_eq!(
            pair.run("head -c 10", Some(&input)),
            &input[..10],
            "{cuts:?}"
        );
        assert_eq!(
            pair.run("true", Some(&input)),
            b"did not read\n",
            "{cuts:?}"
        );
        assert_eq!(pair.run("cat", Some(b"")), b"", "{cuts:?}");
        // The connection is in step: a command without stdin runs as before.
        assert_eq!(pair.run("true", None), b"did not read\n", "{cuts:?}");
        assert!(pair.server.most_held <= 20_000, "one read at most is held");
        assert_eq!(pair.server.session.answered(), 6);
    }
}
