//! `unstick shell connect -t`: a command (or a login shell) on a pseudo-terminal on the server,
//! as `ssh -t` runs one. The local terminal goes raw for the duration ([`RawMode`], restored
//! on every way out: return, error, panic, SIGTERM and SIGHUP, which end the session instead of
//! the process), its bytes go to the command unchanged (Ctrl-C is byte 3, which the remote
//! terminal turns into SIGINT for its foreground job), a new window size (SIGWINCH) goes as a
//! `resize` frame, and the output is written as it comes.

use std::io::{self, IsTerminal};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::termios::{self, OptionalActions, Termios};
use unstick_core::shell::{ExitReport, PtyRequest, WindowSize};
use unstick_std::shell::{CommandInput, ShellClient, ShellClientError};

use crate::shell_lines::TerminalOutput;

/// The size a terminal is given when the local side has none to tell (input from a pipe).
const DEFAULT_SIZE: WindowSize = WindowSize { rows: 24, cols: 80 };

/// The local terminal in raw mode (no echo, no line editing, no signals from keys, no output
/// processing) until dropped, which restores the settings it found. Nothing when standard
/// input is no terminal.
pub struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    /// Puts standard input's terminal in raw mode, if it is one.
    pub fn enter() -> io::Result<RawMode> {
        let stdin = io::stdin();
        if !stdin.is_terminal() {
            return Ok(RawMode { saved: None });
        }
        let saved = termios::tcgetattr(stdin.as_fd())?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(stdin.as_fd(), OptionalActions::Now, &raw)?;
        Ok(RawMode { saved: Some(saved) })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            // Queued output is written first (`Drain`), so that the terminal ends as it was.
            let _ = termios::tcsetattr(io::stdin().as_fd(), OptionalActions::Drain, saved);
        }
    }
}

/// The local terminal's size: standard output's, else standard input's, else 24x80.
pub fn window_size() -> WindowSize {
    let of = |fd: std::os::fd::BorrowedFd<'_>| {
        termios::tcgetwinsize(fd)
            .ok()
            .filter(|w| w.ws_row > 0 && w.ws_col > 0)
            .map(|w| WindowSize {
                rows: w.ws_row,
                cols: w.ws_col,
            })
    };
    of(io::stdout().as_fd())
        .or_else(|| of(io::stdin().as_fd()))
        .unwrap_or(DEFAULT_SIZE)
}

/// Runs `command` (a login shell when empty) on a pseudo-terminal on the server, the local
/// terminal raw meanwhile; the command's status as a shell reports it.
pub fn run(client: &mut ShellClient, command: &str) -> Result<ExitReport, ShellClientError> {
    let resized = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut handlers = Vec::new();
    let register = |signal, flag: &Arc<AtomicBool>| {
        signal_hook::flag::register(signal, Arc::clone(flag)).map_err(ShellClientError::Input)
    };
    handlers.push(register(signal_hook::consts::SIGWINCH, &resized)?);
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        handlers.push(register(signal, &stop)?);
    }
    let result = run_raw(client, command, &resized, &stop);
    for handler in handlers {
        signal_hook::low_level::unregister(handler);
    }
    result
}

fn run_raw(
    client: &mut ShellClient,
    command: &str,
    resized: &AtomicBool,
    stop: &AtomicBool,
) -> Result<ExitReport, ShellClientError> {
    let term = std::env::var("TERM").unwrap_or_default();
    let mut size = window_size();
    let pty = PtyRequest {
        term: &term,
        rows: size.rows,
        cols: size.cols,
    };
    let mut input = CommandInput::stdin().map_err(ShellClientError::Input)?;
    let raw = RawMode::enter().map_err(ShellClientError::Input)?;
    let mut terminal = || {
        if stop.load(Ordering::Relaxed) {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "a signal ended the session",
            ));
        }
        if !resized.swap(false, Ordering::Relaxed) {
            return Ok(None);
        }
        let now = window_size();
        Ok((now != size).then(|| {
            size = now;
            now
        }))
    };
    let mut output = TerminalOutput::default();
    let result = client.exec_on_terminal(command, pty, &mut input, &mut terminal, &mut output);
    drop(raw);
    result
}
