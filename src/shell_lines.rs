//! `unstick shell connect` without `-c`: commands read from the terminal (with line editing,
//! history and a prompt) or from piped input, one whole shell command at a time.
//!
//! Every command is a request of its own, run by a fresh `sh -c` on the server, so the client
//! keeps what should carry over between lines:
//!
//! - **The working directory.** `cd DIR` is answered by the client: it asks the server to
//!   resolve `DIR` (`cd DIR && pwd`, run where the client is), and sends the result as the
//!   `"cwd"` of every later request. `cd` alone goes to the server's home, `cd -` back.
//! - **Whole constructs.** Lines are collected until they make a whole command
//!   ([`shell_construct`](crate::shell_construct)): an open quote, a trailing backslash or
//!   `|`, `if` ... `fi`, `for` ... `done` and the like are sent once closed, as one request.
//! - **The status.** `exit` leaves with the last command's status, `exit N` with `N`; `quit`
//!   and `logout` are `exit`.
//!
//! Nothing else carries over (`export`, shell variables, `$?`, aliases): each request starts
//! afresh, as an `ssh HOST COMMAND` does.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;

use rustyline::config::Config;
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use unstick_core::session::PeerText;
use unstick_std::shell::{
    DEFAULT_MAX_OUTPUT, DEFAULT_TIMEOUT, ExecInterrupter, ExitReport, OutputSink, OutputStream,
    SeedShellClient, ShellClient, ShellClientError,
};
use unstick_std::system_error::SystemError;

use crate::exit_status::{self, BAD_EXIT_ARGUMENT, CONNECTION_FAILED, INTERRUPTED, OUTPUT_CLOSED};
use crate::shell_construct::{Completeness, completeness};

/// The prompt: the seed's.
pub const PROMPT: &str = ">>>";

/// The prompt of a command's further lines, while a construct is open.
pub const CONTINUATION_PROMPT: &str = "...";

/// Most commands the history file keeps.
const HISTORY_SIZE: usize = 1000;

/// The server the commands run on: over the framed protocol (which can carry a working
/// directory) or the seed's (which cannot).
pub enum RemoteShell {
    /// `unstick shell connect`.
    Framed(Box<ShellClient>),
    /// `unstick shell connect --seed`.
    Seed(Box<SeedShellClient>),
}

impl RemoteShell {
    fn run(
        &mut self,
        command: &str,
        cwd: Option<&str>,
        out: &mut dyn OutputSink,
    ) -> Result<u8, ShellClientError> {
        match self {
            RemoteShell::Framed(client) => {
                let report = client.exec_in(command, cwd, out)?;
                note_cut_short(&report);
                Ok(report.termination.shell_status())
            }
            RemoteShell::Seed(client) => client.exec(command, &mut SinkWriter(out)).map(|()| 0),
        }
    }

    fn keeps_cwd(&self) -> bool {
        matches!(self, RemoteShell::Framed(_))
    }

    fn interrupter(&self) -> Option<ExecInterrupter> {
        match self {
            RemoteShell::Framed(client) => Some(client.interrupter()),
            RemoteShell::Seed(_) => None,
        }
    }
}

/// Says on stderr why the server cut a command short, naming the server's option that set
/// the limit (the client cannot change it).
pub fn note_cut_short(report: &ExitReport) {
    if report.timed_out {
        eprintln!(
            "unstick: the command ran out of time and was killed: the server's time limit per \
             command (`unstick shell serve --timeout`, {} s unless set)",
            DEFAULT_TIMEOUT.as_secs()
        );
    }
    if report.truncated {
        eprintln!(
            "unstick: the command's output reached the server's cap and the command was killed \
             (`unstick shell serve --max-output`, {} MiB unless set)",
            DEFAULT_MAX_OUTPUT >> 20
        );
    }
}

/// A seed reply's output (stdout and stderr together) written as stdout.
struct SinkWriter<'s>(&'s mut dyn OutputSink);

impl Write for SinkWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_output(OutputStream::Stdout, buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Our stdout and stderr, written byte for byte and flushed per chunk so that output shows as
/// the command produces it; remembers whether the last byte ended a line, so that a prompt
/// never runs into output that lacks its final newline.
#[derive(Debug)]
pub struct TerminalOutput {
    at_line_start: bool,
}

impl Default for TerminalOutput {
    fn default() -> Self {
        TerminalOutput {
            at_line_start: true,
        }
    }
}

impl TerminalOutput {
    /// Ends the line the last output left open, if it did.
    fn start_line(&mut self) {
        if !self.at_line_start {
            let mut out = io::stdout().lock();
            let _ = out.write_all(b"\n").and_then(|()| out.flush());
            self.at_line_start = true;
        }
    }
}

impl OutputSink for TerminalOutput {
    fn write_output(&mut self, stream: OutputStream, bytes: &[u8]) -> io::Result<()> {
        let Some(&last) = bytes.last() else {
            return Ok(());
        };
        self.at_line_start = last == b'\n';
        match stream {
            OutputStream::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(bytes)?;
                out.flush()
            }
            OutputStream::Stderr => io::stderr().lock().write_all(bytes),
        }
    }
}

/// A `cd`'s resolution: stdout kept (the directory `pwd` printed), stderr shown.
struct Resolution<'t> {
    stdout: Vec<u8>,
    terminal: &'t mut TerminalOutput,
}

impl OutputSink for Resolution<'_> {
    fn write_output(&mut self, stream: OutputStream, bytes: &[u8]) -> io::Result<()> {
        match stream {
            OutputStream::Stdout => {
                self.stdout.extend_from_slice(bytes);
                Ok(())
            }
            OutputStream::Stderr => self.terminal.write_output(stream, bytes),
        }
    }
}

/// A command the client answers itself, or not.
#[derive(Debug, PartialEq, Eq)]
enum ClientCommand<'c> {
    /// `exit`, `exit N`, `quit`, `logout`.
    Exit(Option<&'c str>),
    /// `cd` and its argument text (empty for none).
    Cd(&'c str),
    /// `cd -`.
    CdBack,
    /// Anything else: the server runs it.
    Remote,
}

/// Characters that make a line more than a plain command: then it goes to the server as it is.
const SHELL_SYNTAX: &[char] = &[';', '&', '|', '<', '>', '(', ')', '`', '\n'];

fn classify(command: &str) -> ClientCommand<'_> {
    let command = command.trim();
    let (name, rest) = command
        .split_once(char::is_whitespace)
        .map_or((command, ""), |(name, rest)| (name, rest.trim()));
    if command.contains(SHELL_SYNTAX) {
        return ClientCommand::Remote;
    }
    match name {
        "exit" | "quit" | "logout" if !rest.contains(char::is_whitespace) => {
            ClientCommand::Exit(Some(rest).filter(|r| !r.is_empty()))
        }
        "cd" if rest == "-" => ClientCommand::CdBack,
        "cd" => ClientCommand::Cd(rest),
        _ => ClientCommand::Remote,
    }
}

/// The status `exit ARG` leaves with, as `sh` computes it (modulo 256).
fn exit_status(arg: &str) -> Option<u8> {
    arg.parse::<i64>().ok().map(|n| (n & 0xff) as u8)
}

/// What is kept between commands.
struct Session {
    runner: RemoteShell,
    output: TerminalOutput,
    /// The directory commands run in; `None`: the server's `--workdir`.
    cwd: Option<String>,
    /// Where `cd -` goes.
    previous_cwd: Option<String>,
    /// The last command's status.
    status: u8,
    /// A person is typing: failures are reported and the session goes on.
    interactive: bool,
}

/// What to do after a command.
enum Next {
    Read,
    Exit(u8),
}

impl Session {
    fn handle(&mut self, command: &str) -> Next {
        match classify(command) {
            ClientCommand::Exit(None) => Next::Exit(self.status),
            ClientCommand::Exit(Some(arg)) => match exit_status(arg) {
                Some(status) => Next::Exit(status),
                None => {
                    eprintln!("unstick: exit: {arg}: a number is needed (0 to 255)");
                    self.status = BAD_EXIT_ARGUMENT;
                    Next::Read
                }
            },
            ClientCommand::Cd(target) if self.runner.keeps_cwd() => {
                let resolve = if target.is_empty() {
                    "cd && pwd".to_string()
                } else {
                    format!("cd {target} && pwd")
                };
                self.change_directory(&resolve, self.cwd.clone(), false)
            }
            ClientCommand::CdBack if self.runner.keeps_cwd() => {
                self.change_directory("pwd", self.previous_cwd.clone(), true)
            }
            _ => self.remote(command),
        }
    }

    /// Runs `command` on the server, in the current directory.
    fn remote(&mut self, command: &str) -> Next {
        let result = self
            .runner
            .run(command, self.cwd.as_deref(), &mut self.output);
        self.settle(result)
    }

    /// Asks the server where `resolve` (`cd DIR && pwd`, run in `from`) ends up, and makes that
    /// the current directory; `show`: print it, as `cd -` does.
    fn change_directory(&mut self, resolve: &str, from: Option<String>, show: bool) -> Next {
        let mut resolution = Resolution {
            stdout: Vec::new(),
            terminal: &mut self.output,
        };
        let mut result = self.runner.run(resolve, from.as_deref(), &mut resolution);
        if let Err(ShellClientError::Server { code, .. }) = &result
            && code == "bad_path"
            && from.is_some()
        {
            // The directory we were in is gone: resolve from the server's own.
            eprintln!(
                "unstick: {} is no longer a directory on the server; going from the server's \
                 working directory",
                from.as_deref().unwrap_or_default()
            );
            result = self.runner.run(resolve, None, &mut resolution);
        }
        let stdout = resolution.stdout;
        let status = match result {
            Ok(0) => {
                let text = String::from_utf8_lossy(&stdout);
                // `pwd` prints last (a `cd` found through CDPATH prints the directory too).
                let dir = text
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .trim_end_matches('\r');
                if dir.is_empty() {
                    eprintln!(
                        "unstick: cd: the server's `pwd` printed `{}`, not a directory",
                        PeerText::new(&text)
                    );
                    Ok(1)
                } else {
                    self.previous_cwd = self.cwd.replace(dir.to_string());
                    if show {
                        // As the command's output: a closed stdout ends the session quietly.
                        let line = format!("{dir}\n");
                        self.output
                            .write_output(OutputStream::Stdout, line.as_bytes())
                            .map(|()| 0)
                            .map_err(ShellClientError::Output)
                    } else {
                        Ok(0)
                    }
                }
            }
            other => other,
        };
        self.settle(status)
    }

    /// Takes a command's outcome: its status, or a failure reported.
    fn settle(&mut self, result: Result<u8, ShellClientError>) -> Next {
        self.status = match result {
            Ok(status) => status,
            Err(ShellClientError::Interrupted) => {
                // The terminal echoed ^C; the prompt goes below it.
                println!();
                self.output.at_line_start = true;
                INTERRUPTED
            }
            Err(e) if exit_status::output_closed(&e) => return Next::Exit(OUTPUT_CLOSED),
            Err(e) => {
                if self.interactive {
                    // On a terminal the message starts a line; piped output stays as it was.
                    self.output.start_line();
                }
                eprintln!("unstick shell connect: {e}");
                // A refusal ends that command only; a failed connection ends piped input.
                if !self.interactive && !matches!(e, ShellClientError::Server { .. }) {
                    return Next::Exit(CONNECTION_FAILED);
                }
                CONNECTION_FAILED
            }
        };
        Next::Read
    }
}

/// One read of a line.
enum LineRead {
    Line(String),
    /// Ctrl-C at the prompt.
    Interrupted,
    /// Ctrl-D, or the end of piped input.
    End,
    /// A line that is not UTF-8 (commands travel as UTF-8 text).
    NotUtf8,
    Failed(io::Error),
}

/// Where lines come from.
enum LineSource {
    /// A terminal on both sides: line editing and history.
    Editor {
        editor: Box<rustyline::Editor<(), DefaultHistory>>,
        history: Option<PathBuf>,
    },
    /// Piped input, or a terminal whose output is not one: plain lines, the prompt shown only
    /// when a person types.
    Plain {
        lines: io::Split<io::StdinLock<'static>>,
        prompt: bool,
    },
}

impl LineSource {
    fn open() -> LineSource {
        let typed = io::stdin().is_terminal();
        if typed
            && io::stdout().is_terminal()
            && let Some(source) = LineSource::editor()
        {
            return source;
        }
        LineSource::Plain {
            lines: io::stdin().lock().split(b'\n'),
            prompt: typed,
        }
    }

    fn editor() -> Option<LineSource> {
        let config = Config::builder()
            .max_history_size(HISTORY_SIZE)
            .ok()?
            .history_ignore_dups(true)
            .ok()?
            .history_ignore_space(true)
            .auto_add_history(false)
            .build();
        let mut editor = rustyline::Editor::with_config(config).ok()?;
        let history = history_path();
        if let Some(path) = &history {
            // A first session has none yet.
            let _ = editor.load_history(path);
        }
        Some(LineSource::Editor {
            editor: Box::new(editor),
            history,
        })
    }

    /// Whether a prompt is shown.
    fn prompts(&self) -> bool {
        match self {
            LineSource::Editor { .. } => true,
            LineSource::Plain { prompt, .. } => *prompt,
        }
    }

    fn read(&mut self, prompt: &str) -> LineRead {
        match self {
            LineSource::Editor { editor, .. } => match editor.readline(prompt) {
                Ok(line) => LineRead::Line(line),
                Err(ReadlineError::Interrupted) => LineRead::Interrupted,
                Err(ReadlineError::Eof) => LineRead::End,
                Err(ReadlineError::Io(e)) => LineRead::Failed(e),
                Err(e) => LineRead::Failed(io::Error::other(e)),
            },
            LineSource::Plain {
                lines,
                prompt: shown,
            } => {
                if *shown {
                    print!("{prompt}");
                    let _ = io::stdout().flush();
                }
                match lines.next() {
                    None => LineRead::End,
                    Some(Err(e)) => LineRead::Failed(e),
                    Some(Ok(mut line)) => {
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                        match String::from_utf8(line) {
                            Ok(line) => LineRead::Line(line),
                            Err(_) => LineRead::NotUtf8,
                        }
                    }
                }
            }
        }
    }

    /// Adds a command to the history, and to its file.
    fn remember(&mut self, command: &str) {
        if let LineSource::Editor { editor, history } = self {
            let _ = editor.add_history_entry(command);
            if let Some(path) = history {
                if let Some(dir) = path.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                let _ = editor.append_history(path);
            }
        }
    }
}

/// Where the interactive history is kept: `unstick/shell_history` under the user's state
/// directory (`$XDG_STATE_HOME`, by default `~/.local/state`, on Linux), or the local data
/// directory elsewhere (`~/Library/Application Support` on macOS, `%LOCALAPPDATA%` on Windows).
pub fn history_path() -> Option<PathBuf> {
    dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .map(|dir| dir.join("unstick").join("shell_history"))
}

/// Stops the command in flight on Ctrl-C (the server kills it, and the session goes on); other
/// requests to stop (SIGTERM, the console closing) end the client as before.
fn stop_commands_on_ctrl_c(interrupter: ExecInterrupter) {
    let Ok(mut signals) = crate::stop_signals::StopSignals::install() else {
        return;
    };
    std::thread::spawn(move || {
        for signal in signals.arriving() {
            if matches!(signal.name, "SIGINT" | "Ctrl-C") {
                interrupter.interrupt();
            } else {
                std::process::exit(signal.exit_code);
            }
        }
    });
}

/// Reads commands until `exit`, Ctrl-D or the end of input, running each through `runner`;
/// returns the status to exit with (the last command's, or `exit`'s).
pub fn run(runner: RemoteShell) -> u8 {
    let mut source = LineSource::open();
    let interactive = io::stdin().is_terminal();
    if interactive && let Some(interrupter) = runner.interrupter() {
        stop_commands_on_ctrl_c(interrupter);
    }
    let mut session = Session {
        runner,
        output: TerminalOutput::default(),
        cwd: None,
        previous_cwd: None,
        status: 0,
        interactive,
    };
    let mut pending = String::new();
    loop {
        let prompt = if pending.is_empty() {
            PROMPT
        } else {
            CONTINUATION_PROMPT
        };
        if source.prompts() {
            session.output.start_line();
        }
        let line = match source.read(prompt) {
            LineRead::Line(line) => line,
            LineRead::Interrupted => {
                // As bash: the line is dropped, a new prompt below it.
                println!("^C");
                pending.clear();
                session.status = INTERRUPTED;
                continue;
            }
            LineRead::End => {
                if !pending.trim().is_empty() {
                    // Unfinished: the server's shell says what is missing.
                    if let Next::Exit(status) = session.handle(&pending) {
                        return status;
                    }
                }
                if source.prompts() {
                    // The local shell's prompt goes on a line of its own.
                    println!();
                }
                return session.status;
            }
            LineRead::NotUtf8 => {
                eprintln!("unstick shell connect: skipped a line that is not UTF-8 text");
                session.status = CONNECTION_FAILED;
                continue;
            }
            LineRead::Failed(e) => {
                eprintln!(
                    "unstick shell connect: cannot read input: {}",
                    SystemError(&e)
                );
                return 1;
            }
        };
        if !pending.is_empty() {
            pending.push('\n');
        }
        pending.push_str(&line);
        if let Completeness::Open(_) = completeness(&pending) {
            continue;
        }
        let command = std::mem::take(&mut pending);
        if command.trim().is_empty() {
            continue;
        }
        // As typed: a leading space keeps a command out of the history.
        source.remember(&command);
        if let Next::Exit(status) = session.handle(command.trim()) {
            return status;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_commands_table() {
        let table = [
            ("exit", ClientCommand::Exit(None)),
            ("  exit 5 ", ClientCommand::Exit(Some("5"))),
            ("quit", ClientCommand::Exit(None)),
            ("logout 1", ClientCommand::Exit(Some("1"))),
            ("exit 1 2", ClientCommand::Remote),
            ("exit; echo", ClientCommand::Remote),
            ("cd", ClientCommand::Cd("")),
            ("cd /tmp", ClientCommand::Cd("/tmp")),
            ("cd 'my dir'", ClientCommand::Cd("'my dir'")),
            ("cd -", ClientCommand::CdBack),
            ("cd /tmp && ls", ClientCommand::Remote),
            ("cd $HOME", ClientCommand::Cd("$HOME")),
            ("cd $(mktemp -d)", ClientCommand::Remote),
            ("cdx", ClientCommand::Remote),
            ("echo exit", ClientCommand::Remote),
            ("ls", ClientCommand::Remote),
        ];
        for (line, expected) in table {
            assert_eq!(classify(line), expected, "{line:?}");
        }
    }

    #[test]
    fn exit_statuses_wrap_as_sh_has_them() {
        assert_eq!(exit_status("5"), Some(5));
        assert_eq!(exit_status("256"), Some(0));
        assert_eq!(exit_status("-1"), Some(255));
        assert_eq!(exit_status("x"), None);
    }
}
