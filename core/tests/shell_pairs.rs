//! The remote shell's client and server sessions run against each other in memory: no socket,
//! no thread, no process. The server's host runs commands from a script (command text to output
//! chunks and an end), and the bytes between the two sessions are cut in every chunking of
//! [`pairs::all_cuts`]. Every run is bounded by a step budget.
#![cfg(all(feature = "md5", feature = "xxh3"))]

mod pairs;

use std::collections::{HashMap, VecDeque};

use pairs::{Budget, Cuts, Pipe, Read, all_cuts, generated, steps_for};
use unstick_core::Verdict;
use unstick_core::session::{Refusal, ServerEvent};
use unstick_core::shell::{
    Dialect, ExitReport, OutputStream, RunFailure, SEED_COMMAND_READ, SeedClientSession,
    SeedFormat, SeedReply, ShellAction, ShellClientSession, ShellProtocolError, ShellReply,
    ShellRules, ShellServerSession, Termination,
};
use unstick_core::time::Instant;

/// What the fake runner does for a command.
#[derive(Clone, Debug)]
enum Script {
    /// The command writes these chunks, in order, then ends so.
    Runs {
        chunks: Vec<(OutputStream, Vec<u8>)>,
        report: ExitReport,
    },
    /// The command writes these chunks, then the host fails it.
    Fails {
        chunks: Vec<(OutputStream, Vec<u8>)>,
        failure: RunFailure,
        detail: &'static str,
    },
}

const EXIT_0: ExitReport = ExitReport {
    termination: Termination::Exited(0),
    truncated: false,
    timed_out: false,
};

fn out(text: &str) -> (OutputStream, Vec<u8>) {
    (OutputStream::Stdout, text.as_bytes().to_vec())
}

fn err(text: &str) -> (OutputStream, Vec<u8>) {
    (OutputStream::Stderr, text.as_bytes().to_vec())
}

/// Command text to its script. A command without a script prints its length and exits 0.
#[derive(Default)]
struct Runner {
    scripts: HashMap<String, Script>,
}

impl Runner {
    fn with(mut self, command: &str, script: Script) -> Self {
        self.scripts.insert(command.to_owned(), script);
        self
    }

    fn script(&self, command: &str) -> Script {
        self.scripts
            .get(command)
            .cloned()
            .unwrap_or_else(|| Script::Runs {
                chunks: vec![out(&format!("ran {} bytes\n", command.len()))],
                report: EXIT_0,
            })
    }
}

/// The client side of a pair.
enum Client {
    Framed(Box<ShellClientSession<1024>>),
    Seed(Box<SeedClientSession<1024>>),
    /// Reads the seed formats' bytes as they are, checked by the test.
    Raw,
}

/// How a command ended, as the client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum End {
    Exit(ExitReport),
    Refused { code: String, message: String },
    SeedDone(Verdict),
    Failed(ShellProtocolError),
}

/// What the client saw of one command: its output as runs of one stream (chunks of the same
/// stream merged, since any cut may split them), and its end.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Outcome {
    output: Vec<(OutputStream, Vec<u8>)>,
    end: End,
}

/// Merges adjacent chunks of the same stream and drops empty ones.
fn runs(chunks: &[(OutputStream, Vec<u8>)]) -> Vec<(OutputStream, Vec<u8>)> {
    let mut merged: Vec<(OutputStream, Vec<u8>)> = Vec::new();
    for (stream, bytes) in chunks {
        if bytes.is_empty() {
            continue;
        }
        match merged.last_mut() {
            Some((last, kept)) if last == stream => kept.extend_from_slice(bytes),
            _ => merged.push((*stream, bytes.clone())),
        }
    }
    merged
}

/// A command the server's host is running: what it still writes, and how it ends.
struct Running {
    chunks: VecDeque<(OutputStream, Vec<u8>)>,
    end: Result<ExitReport, (RunFailure, &'static str)>,
}

/// A client session and a server session on one in-memory connection.
struct ShellPair<'a> {
    cuts: Cuts,
    server: ShellServerSession<'a, 1024>,
    dialect: Dialect,
    runner: &'a Runner,
    client: Client,
    c2s: Pipe,
    s2c: Pipe,
    buf: Vec<u8>,
    /// The fake clock both hosts read: time passes only while neither side can move.
    now: Instant,
    // The server's host.
    running: Option<Running>,
    server_closed: bool,
    refusals: Vec<Refusal>,
    ran: Vec<String>,
    // The client's host.
    command: Vec<u8>,
    output: Vec<(OutputStream, Vec<u8>)>,
    end: Option<End>,
    in_flight: bool,
    reading_to_end: bool,
    client_eof: Option<Result<(), ShellProtocolError>>,
    raw: Vec<u8>,
}

impl<'a> ShellPair<'a> {
    fn new(
        rules: ShellRules<'a>,
        dialect: Dialect,
        command_buf: &'a mut [u8],
        runner: &'a Runner,
        cuts: Cuts,
    ) -> Self {
        let client = match dialect {
            Dialect::Framed => Client::Framed(Box::default()),
            Dialect::Seed(SeedFormat::Json) => Client::Seed(Box::default()),
            Dialect::Seed(_) => Client::Raw,
        };
        ShellPair {
            cuts,
            server: ShellServerSession::new(rules, dialect, command_buf),
            dialect,
            runner,
            client,
            c2s: Pipe::new(cuts),
            s2c: Pipe::new(cuts.reversed()),
            buf: vec![0u8; 4096],
            now: Instant::ZERO,
            running: None,
            server_closed: false,
            refusals: Vec::new(),
            ran: Vec::new(),
            command: Vec::new(),
            output: Vec::new(),
            end: None,
            in_flight: false,
            reading_to_end: false,
            client_eof: None,
            raw: Vec::new(),
        }
    }

    fn summary(&self) -> String {
        format!(
            "cuts {:?}, server closed {}, action {:?}, idle {}, answered {}, c2s in flight {} \
             pending {}, s2c in flight {} pending {}, end {:?}, client eof {:?}",
            self.cuts,
            self.server_closed,
            self.server.poll_action(),
            self.server.is_idle(),
            self.server.answered(),
            self.c2s.in_flight(),
            self.c2s.pending().len(),
            self.s2c.in_flight(),
            self.s2c.pending().len(),
            self.end,
            self.client_eof,
        )
    }

    // ---- the server's host ----

    /// Sends what the server session queued; `body` is what its last call handed over.
    fn server_flush(&mut self, body: &[u8]) -> bool {
        let session = &mut self.server;
        let sent = self
            .s2c
            .send_transmits(&mut self.buf, body, |buf| session.poll_transmit(buf));
        while let Some(event) = self.server.poll_event() {
            if let ServerEvent::Refused(refusal) = event {
                self.refusals.push(refusal);
            }
        }
        sent
    }

    fn server_step(&mut self) -> bool {
        if self.server_closed {
            return false;
        }
        let flushed = self.server_flush(&[]);
        if let Some(mut running) = self.running.take() {
            if let Some((stream, bytes)) = running.chunks.pop_front() {
                self.server.handle_output(stream, &bytes).unwrap();
                self.server_flush(&bytes);
                self.running = Some(running);
            } else {
                match running.end {
                    Ok(report) => self.server.handle_exit(report).unwrap(),
                    Err((failure, detail)) => {
                        self.server.handle_run_failed(failure, detail).unwrap()
                    }
                }
                self.server_flush(&[]);
            }
            return true;
        }
        match self.server.poll_action() {
            Some(ShellAction::Run { command }) => {
                let command = command.to_owned();
                self.run(&command);
                true
            }
            Some(ShellAction::Close) => {
                self.server_closed = true;
                self.s2c.close();
                true
            }
            None => self.server_feed() || flushed,
        }
    }

    fn run(&mut self, command: &str) {
        self.ran.push(command.to_owned());
        let (chunks, end) = match self.runner.script(command) {
            Script::Runs { chunks, report } => (chunks, Ok(report)),
            Script::Fails {
                chunks,
                failure,
                detail,
            } => (chunks, Err((failure, detail))),
        };
        match self.dialect {
            Dialect::Framed => {
                self.running = Some(Running {
                    chunks: chunks.into(),
                    end,
                })
            }
            Dialect::Seed(_) => match end {
                Ok(report) => {
                    // The seed's reply holds stdout, then stderr.
                    let mut body = Vec::new();
                    for stream in [OutputStream::Stdout, OutputStream::Stderr] {
                        for (s, bytes) in &chunks {
                            if *s == stream {
                                body.extend_from_slice(bytes);
                            }
                        }
                    }
                    self.server.handle_seed_output(&body, report).unwrap();
                    self.server_flush(&body);
                }
                Err((failure, detail)) => {
                    self.server.handle_run_failed(failure, detail).unwrap();
                    self.server_flush(&[]);
                }
            },
        }
    }

    /// Feeds the server what it read, or reads more.
    fn server_feed(&mut self) -> bool {
        if !self.c2s.pending().is_empty() {
            let used = self.server.handle_input(self.now, self.c2s.pending());
            self.c2s.consume(used);
            // A refusal may consume nothing (a framing error): what it queued is progress too.
            let flushed = self.server_flush(&[]);
            return used > 0 || flushed || self.server.poll_action().is_some();
        }
        let read = match self.dialect {
            Dialect::Framed => self.c2s.read(),
            // The seed's server takes a command in one `recv(1024)`.
            Dialect::Seed(_) => self.c2s.read_at_most(SEED_COMMAND_READ),
        };
        match read {
            Read::Data => true,
            Read::Nothing => false,
            Read::Eof if self.c2s.eof_told => false,
            Read::Eof => {
                self.c2s.eof_told = true;
                self.server.handle_eof();
                true
            }
        }
    }

    // ---- the client's host ----

    fn client_flush(&mut self) -> bool {
        let client = &mut self.client;
        self.c2s
            .send_transmits(&mut self.buf, &self.command, |buf| match client {
                Client::Framed(c) => c.poll_transmit(buf),
                Client::Seed(c) => c.poll_transmit(buf),
                Client::Raw => None,
            })
    }

    fn client_step(&mut self) -> bool {
        let flushed = self.client_flush();
        if !self.in_flight && !self.reading_to_end {
            return flushed;
        }
        if let Client::Raw = self.client {
            let bytes = self.s2c.take_all();
            self.raw.extend_from_slice(&bytes);
            if bytes.is_empty() && self.s2c.is_closed() && !self.s2c.eof_told {
                self.s2c.eof_told = true;
                self.client_eof = Some(Ok(()));
                return true;
            }
            return flushed || !bytes.is_empty();
        }
        if self.s2c.pending().is_empty() {
            return match self.s2c.read() {
                Read::Data => true,
                Read::Nothing => flushed,
                Read::Eof if self.s2c.eof_told => flushed,
                Read::Eof => {
                    self.s2c.eof_told = true;
                    let result = match &mut self.client {
                        Client::Framed(c) => c.handle_eof(),
                        Client::Seed(c) => c.handle_eof(),
                        Client::Raw => Ok(()),
                    };
                    if let Err(e) = &result {
                        self.finish(End::Failed(e.clone()));
                    }
                    self.client_eof = Some(result);
                    true
                }
            };
        }
        let input = self.s2c.pending();
        let now = self.now;
        let mut replied = false;
        let (used, end) = match &mut self.client {
            Client::Framed(c) => match c.handle_input(now, input) {
                Ok((used, reply)) => {
                    let end = match reply {
                        Some(ShellReply::Output { stream, bytes }) => {
                            self.output.push((stream, bytes.to_vec()));
                            replied = true;
                            None
                        }
                        Some(ShellReply::Exit(report)) => Some(End::Exit(report)),
                        Some(ShellReply::Refused { code, message }) => Some(End::Refused {
                            code: code.as_str().unwrap_or("?").to_owned(),
                            message: message.get().unwrap_or("?").to_owned(),
                        }),
                        None => None,
                    };
                    (used, end)
                }
                Err(e) => (0, Some(End::Failed(e))),
            },
            Client::Seed(c) => match c.handle_input(now, input) {
                Ok((used, reply)) => {
                    let end = match reply {
                        Some(SeedReply::Output(bytes)) => {
                            self.output.push((OutputStream::Stdout, bytes.to_vec()));
                            replied = true;
                            None
                        }
                        Some(SeedReply::End { last, md5 }) => {
                            self.output.push((OutputStream::Stdout, last.to_vec()));
                            Some(End::SeedDone(md5))
                        }
                        None => None,
                    };
                    (used, end)
                }
                Err(e) => (0, Some(End::Failed(e))),
            },
            Client::Raw => unreachable!("read above"),
        };
        let failed = matches!(end, Some(End::Failed(_)));
        self.s2c.consume(used);
        if let Some(end) = end {
            self.finish(end);
        }
        used > 0 || replied || failed || flushed
    }

    fn finish(&mut self, end: End) {
        if self.in_flight {
            self.in_flight = false;
            self.end = Some(end);
        } else if let End::Failed(e) = end {
            panic!("the client failed between commands: {e}");
        }
    }

    // ---- what the tests call ----

    fn step_until(&mut self, what: &str, steps: usize, done: impl Fn(&Self) -> bool) {
        let mut budget = Budget::new(steps, format!("{what} ({:?})", self.cuts));
        while !done(self) {
            let server = self.server_step();
            let client = self.client_step();
            let waited = !(server || client) && self.let_time_pass();
            budget.spend(server || client || waited, || self.summary());
        }
    }

    /// Neither side can move: time passes to the sessions' next deadline (a seed client's
    /// pause, an idle timeout, a reply timeout), which each is told of. `false` when neither
    /// has one.
    fn let_time_pass(&mut self) -> bool {
        let now = self.now;
        let server = if self.server_closed {
            None
        } else {
            self.server.poll_timeout(now)
        };
        let client = match &mut self.client {
            Client::Framed(c) => c.poll_timeout(now),
            Client::Seed(c) => c.poll_timeout(now),
            Client::Raw => None,
        };
        let Some(at) = [server, client].into_iter().flatten().min() else {
            return false;
        };
        self.now = at.max(now);
        if server.is_some() {
            self.server.handle_timeout(self.now);
        }
        let timed_out = match &mut self.client {
            Client::Framed(c) => c.handle_timeout(self.now),
            Client::Seed(c) => c.handle_timeout(self.now),
            Client::Raw => Ok(()),
        };
        if let Err(e) = timed_out {
            self.finish(End::Failed(e));
        }
        true
    }

    fn await_end(&mut self, what: &str, bytes: usize) -> Outcome {
        self.in_flight = true;
        self.output.clear();
        self.end = None;
        self.step_until(what, steps_for(bytes), |p| !p.in_flight);
        Outcome {
            output: runs(&self.output),
            end: self.end.take().unwrap(),
        }
    }

    /// Runs `command` on a framed connection, presenting `token`.
    fn exec(&mut self, command: &str, token: Option<&str>) -> Outcome {
        let Client::Framed(client) = &mut self.client else {
            panic!("not a framed pair")
        };
        client.exec(command, token).unwrap();
        self.command = command.as_bytes().to_vec();
        self.await_end(command, command.len() + 200_000)
    }

    /// Sends `wire` (a hand-made request) in place of the framed client's request, with the
    /// client session waiting for the reply as it would for its own.
    fn exec_wire(&mut self, wire: &[u8]) -> Outcome {
        let Client::Framed(client) = &mut self.client else {
            panic!("not a framed pair")
        };
        client.exec("", None).unwrap();
        while client.poll_transmit(&mut self.buf).is_some() {}
        self.c2s.write(wire);
        self.await_end("a hand-made request", wire.len() + 10_000)
    }

    /// Sends a seed command with the seed client session.
    fn seed(&mut self, command: &str) -> Outcome {
        let Client::Seed(client) = &mut self.client else {
            panic!("not a seed pair")
        };
        client.send(command).unwrap();
        self.command = command.as_bytes().to_vec();
        self.await_end(command, command.len() + 200_000)
    }

    /// Sends a seed command as raw text and returns the bytes of the reply, once the server
    /// has answered and is waiting for the next command.
    fn seed_raw(&mut self, command: &str) -> Vec<u8> {
        assert!(matches!(self.client, Client::Raw));
        self.c2s.write(command.as_bytes());
        self.raw.clear();
        self.in_flight = true;
        let answered = self.server.answered() + 1;
        self.step_until(command, steps_for(command.len() + 10_000), |p| {
            p.server.answered() == answered && p.server.is_idle() && !p.s2c.has_input()
        });
        self.in_flight = false;
        std::mem::take(&mut self.raw)
    }

    /// Waits for the server to close the connection, reading what comes (nothing may).
    fn expect_server_close(&mut self) {
        self.reading_to_end = true;
        self.step_until("the server closing", 10_000, |p| p.client_eof.is_some());
        assert!(self.server_closed);
        assert_eq!(self.client_eof, Some(Ok(())), "{:?}", self.cuts);
    }

    /// The client hangs up between commands; the server must close too.
    fn hang_up(&mut self) {
        self.c2s.close();
        self.expect_server_close();
    }
}

/// A hand-made request frame: `header` (with its `total_size`) and `body`.
fn frame(header: &str, body: &[u8]) -> Vec<u8> {
    let mut frame = (header.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(header.as_bytes());
    frame.extend_from_slice(body);
    frame
}

fn exited(code: i32) -> End {
    End::Exit(ExitReport {
        termination: Termination::Exited(code),
        ..EXIT_0
    })
}

fn refused(outcome: &Outcome, code: &str) {
    match &outcome.end {
        End::Refused { code: got, .. } => assert_eq!(got, code, "{outcome:?}"),
        other => panic!("expected a `{code}` refusal, got {other:?}"),
    }
}

#[test]
fn framed_exec_streams_interleaved_output_and_the_exit_code() {
    let big = generated(20_000, 1);
    let chunks = vec![
        out("compiling a\n"),
        err("warning: unused\n"),
        (OutputStream::Stdout, big.clone()),
        out(""),
        err("error: 1\n"),
        err("error: 2\n"),
        out("done\n"),
    ];
    let report = ExitReport {
        termination: Termination::Exited(3),
        ..EXIT_0
    };
    let runner = Runner::default().with(
        "make",
        Script::Runs {
            chunks: chunks.clone(),
            report,
        },
    );
    for cuts in all_cuts() {
        let mut command = [0u8; 1024];
        let mut pair = ShellPair::new(
            ShellRules::default(),
            Dialect::Framed,
            &mut command,
            &runner,
            cuts,
        );
        let outcome = pair.exec("make", None);
        assert_eq!(outcome.end, End::Exit(report), "{cuts:?}");
        assert_eq!(outcome.output, runs(&chunks), "{cuts:?}");
        assert_eq!(
            outcome.output.len(),
            5,
            "stdout, stderr, stdout, stderr, stdout"
        );
        // No output: only the exit frame.
        let outcome = pair.exec("true", None);
        assert_eq!(outcome.output, runs(&[out("ran 4 bytes\n")]));
        assert_eq!(outcome.end, exited(0));
        assert_eq!(pair.ran, ["make", "true"]);
        assert_eq!(pair.server.answered(), 2);
        assert!(pair.refusals.is_empty());
        pair.hang_up();
    }
}

#[test]
fn framed_exec_reports_signals_and_the_truncated_and_timed_out_flags() {
    let cases = [
        (
            "killed",
            ExitReport {
                termination: Termination::Signaled(9),
                truncated: true,
                timed_out: false,
            },
        ),
        (
            "slow",
            ExitReport {
                termination: Termination::Signaled(15),
                truncated: false,
                timed_out: true,
            },
        ),
        (
            "both",
            ExitReport {
                termination: Termination::Exited(137),
                truncated: true,
                timed_out: true,
            },
        ),
    ];
    let mut runner = Runner::default();
    for (command, report) in cases {
        runner = runner.with(
            command,
            Script::Runs {
                chunks: vec![out(&format!("{command} starts\n")), err("cut\n")],
                report,
            },
        );
    }
    for cuts in all_cuts() {
        let mut command = [0u8; 1024];
        let mut pair = ShellPair::new(
            ShellRules::default(),
            Dialect::Framed,
            &mut command,
            &runner,
            cuts,
        );
        for (command, report) in cases {
            let outcome = pair.exec(command, None);
            assert_eq!(outcome.end, End::Exit(report), "{command} {cuts:?}");
            assert_eq!(
                outcome.output,
                runs(&[out(&format!("{command} starts\n")), err("cut\n")])
            );
        }
        pair.hang_up();
    }
}

#[test]
fn framed_refusals_that_do_not_close_leave_the_stream_in_step() {
    let runner = Runner::default()
        .with(
            "spawn-me",
            Script::Fails {
                chunks: vec![],
                failure: RunFailure::Spawn,
                detail: "cannot start /bin/sh: no such file",
            },
        )
        .with(
            "lose-me",
            Script::Fails {
                chunks: vec![out("partial\n"), err("half\n")],
                failure: RunFailure::Lost,
                detail: "the command was lost and killed",
            },
        );
    let rules = ShellRules {
        max_command_len: 64,
        ..ShellRules::default()
    };
    let too_long = format!("echo {}", "x".repeat(60));
    assert_eq!(too_long.len(), 65);
    for cuts in all_cuts() {
        let mut command = [0u8; 1024];
        let mut pair = ShellPair::new(rules, Dialect::Framed, &mut command, &runner, cuts);
        let ok = |pair: &mut ShellPair<'_>, command: &str| {
            let outcome = pair.exec(command, None);
            assert_eq!(outcome.end, exited(0), "{command} {cuts:?}");
            assert_eq!(
                outcome.output,
                runs(&[out(&format!("ran {} bytes\n", command.len()))])
            );
        };
        ok(&mut pair, "echo one");

        let outcome = pair.exec_wire(&frame(r#"{"op":"ls","total_size":3}"#, b"abc"));
        refused(&outcome, "unknown_op");
        assert!(outcome.output.is_empty());
        ok(&mut pair, "echo two");

        let outcome = pair.exec_wire(&frame(
            r#"{"op":"exec","total_size":3}"#,
            &[b'l', 0xc3, 0x28],
        ));
        refused(&outcome, "bad_command");
        let outcome = pair.exec("ls\0-l", None);
        refused(&outcome, "bad_command");
        ok(&mut pair, "echo three");

        let outcome = pair.exec(&too_long, None);
        refused(&outcome, "command_too_long");
        let End::Refused { message, .. } = &outcome.end else {
            unreachable!()
        };
        assert!(message.contains("64-byte limit"), "{message}");
        ok(&mut pair, "echo four");

        let outcome = pair.exec("spawn-me", None);
        assert_eq!(
            outcome.end,
            End::Refused {
                code: "spawn_failed".into(),
                message: "cannot start /bin/sh: no such file".into()
            }
        );
        let outcome = pair.exec("lose-me", None);
        assert_eq!(
            outcome.output,
            runs(&[out("partial\n"), err("half\n")]),
            "{cuts:?}"
        );
        assert_eq!(
            outcome.end,
            End::Refused {
                code: "run_failed".into(),
                message: "the command was lost and killed".into()
            }
        );
        ok(&mut pair, "echo five");

        // None of them closed the connection; the server logged each refusal once.
        let logged: Vec<(&str, bool)> = pair
            .refusals
            .iter()
            .map(|r| (r.code.as_str(), r.closes))
            .collect();
        assert_eq!(
            logged,
            [
                ("unknown_op", false),
                ("bad_command", false),
                ("bad_command", false),
                ("command_too_long", false),
                ("spawn_failed", false),
                ("run_failed", false),
            ],
            "{cuts:?}"
        );
        assert_eq!(
            pair.ran,
            [
                "echo one",
                "echo two",
                "echo three",
                "echo four",
                "spawn-me",
                "lose-me",
                "echo five"
            ]
        );
        assert_eq!(pair.server.answered(), 11);
        pair.hang_up();
    }
}

#[test]
fn framed_tokens_missing_or_wrong_are_unauthorized_and_close() {
    let runner = Runner::default();
    let rules = ShellRules {
        token: Some("s3cret"),
        ..ShellRules::default()
    };
    for cuts in all_cuts() {
        for presented in [None, Some("guess"), Some("s3cre"), Some("s3cretx")] {
            let mut command = [0u8; 1024];
            let mut pair = ShellPair::new(rules, Dialect::Framed, &mut command, &runner, cuts);
            let outcome = pair.exec("echo allowed", Some("s3cret"));
            assert_eq!(outcome.end, exited(0));
            let outcome = pair.exec("echo not allowed", presented);
            refused(&outcome, "unauthorized");
            pair.expect_server_close();
            assert_eq!(pair.ran, ["echo allowed"], "{presented:?} {cuts:?}");
            assert!(pair.refusals[0].closes);
        }
    }
}

#[test]
fn seed_json_replies_carry_stdout_then_stderr_with_a_verified_md5() {
    let big = generated(50_000, 2);
    let runner = Runner::default()
        .with(
            "echo hi",
            Script::Runs {
                chunks: vec![err("warn\n"), out("hi\n"), err("again\n")],
                report: EXIT_0,
            },
        )
        .with(
            "cat big",
            Script::Runs {
                chunks: vec![(OutputStream::Stdout, big.clone())],
                report: EXIT_0,
            },
        )
        .with(
            "lose-me",
            Script::Fails {
                chunks: vec![],
                failure: RunFailure::Lost,
                detail: "lost",
            },
        );
    let rules = ShellRules {
        max_command_len: 4000,
        seed_reply: Some(SeedFormat::Json),
        ..ShellRules::default()
    };
    // Longer than the seed's 1024-byte read: collected until the client pauses.
    let long = format!("echo {}", "y".repeat(1495));
    for cuts in all_cuts() {
        let mut command = vec![0u8; 4096];
        let mut pair = ShellPair::new(
            rules,
            Dialect::Seed(SeedFormat::Json),
            &mut command,
            &runner,
            cuts,
        );
        let outcome = pair.seed("echo hi");
        assert_eq!(outcome.end, End::SeedDone(Verdict::Verified), "{cuts:?}");
        assert_eq!(outcome.output, runs(&[out("hi\nwarn\nagain\n")]));
        let outcome = pair.seed("cat big");
        assert_eq!(outcome.end, End::SeedDone(Verdict::Verified));
        assert_eq!(outcome.output, runs(&[(OutputStream::Stdout, big.clone())]));
        let outcome = pair.seed(&long);
        assert_eq!(outcome.end, End::SeedDone(Verdict::Verified));
        assert_eq!(outcome.output, runs(&[out("ran 1500 bytes\n")]), "{cuts:?}");
        let outcome = pair.seed("lose-me");
        assert_eq!(outcome.end, End::SeedDone(Verdict::Verified));
        assert_eq!(outcome.output, runs(&[out("unstick: lost\n")]));
        assert_eq!(pair.ran, ["echo hi", "cat big", long.as_str(), "lose-me"]);
        assert_eq!(pair.refusals.len(), 1);
        pair.hang_up();
    }
}

#[test]
fn seed_size_and_raw_replies_on_the_wire() {
    let runner = Runner::default().with(
        "echo hi",
        Script::Runs {
            chunks: vec![err("warn\n"), out("hi\n")],
            report: EXIT_0,
        },
    );
    for format in [SeedFormat::Size, SeedFormat::Raw] {
        let rules = ShellRules {
            seed_reply: Some(format),
            ..ShellRules::default()
        };
        for cuts in all_cuts() {
            let mut command = [0u8; 1024];
            let mut pair =
                ShellPair::new(rules, Dialect::Seed(format), &mut command, &runner, cuts);
            let framed = |body: &[u8]| match format {
                SeedFormat::Size => {
                    let mut wire = (body.len() as i32).to_le_bytes().to_vec();
                    wire.extend_from_slice(body);
                    wire
                }
                _ => body.to_vec(),
            };
            assert_eq!(
                pair.seed_raw("echo hi"),
                framed(b"hi\nwarn\n"),
                "{format:?}"
            );
            assert_eq!(pair.seed_raw("uname -a"), framed(b"ran 8 bytes\n"));
            assert_eq!(pair.ran, ["echo hi", "uname -a"]);
            pair.hang_up();
        }
    }
}
