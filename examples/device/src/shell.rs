//! Serving one shell request: the core's `ShellServerSession` (framed dialect) checks it and
//! frames the replies; this host runs the command as a built-in of the device.
//!
//! | command | output | exit status |
//! |---|---|---|
//! | `echo ARGS...` | the arguments, one space apart, and a newline | 0 |
//! | `uptime` | milliseconds since boot | 0 |
//! | `free` | bytes of the file store used, held by a partial upload, free | 0 |
//! | `ls` | each stored file: size and name | 0 |
//! | `crc FILE` | the CRC-32 (IEEE, as `zlib.crc32`) of a stored file, and its size | 0; 1 with a message on stderr when there is no such file |
//! | `stack` | the most stack used since boot | 0 |
//! | `link` | link frames taken, dropped (damaged or garbage) and stale; requests answered, closed, dropped for a lost frame, torn | 0 |
//! | `help` | the list of commands | 0 |
//! | anything else | `NAME: command not found` on stderr | 127 |
//!
//! Arguments are split at whitespace; there is no quoting. An empty command succeeds silently.

use core::fmt::Write as _;

use core::time::Duration;

use embedded_io::{Read, ReadReady, Write};
use unstick_core::shell::{
    Dialect, ExitReport, OutputStream, SEED_PAUSE, ShellAction, ShellRules, ShellServerSession,
    Termination,
};

use crate::host::{Closed, RequestWork, serve_request};
use crate::link::{Link, LinkCounts, WaitForInput};
use crate::store::{CAPACITY, Store};
use crate::{HEADER_CAP, Outcome, SESSION_OUTBOX, flush};

/// Longest command taken, in bytes.
pub const MAX_COMMAND: usize = 256;

/// How long a whole request has from its head on: the shell session counts the request's
/// time, not its silences, and the longest command takes 0.3 s at 9,600 baud.
const REQUEST_WITHIN: Duration = Duration::from_secs(1);

/// A line of output, formatted before it is sent.
type Line = heapless::String<160>;

/// The session as this host serves it.
type Session<'c> = ShellServerSession<'c, HEADER_CAP, SESSION_OUTBOX>;

/// Serves the `exec` request whose head (prefix and header) is `head`. Out of line, so that
/// the session's room on the stack is taken only while it serves (never together with the
/// file server's).
#[inline(never)]
pub fn serve<U: Read + ReadReady + Write + WaitForInput>(
    link: &mut Link<'_, U>,
    store: &Store<'_>,
    head: &[u8],
) -> Outcome {
    let mut command_buf = [0u8; MAX_COMMAND];
    let rules = ShellRules {
        token: None,
        max_command_len: MAX_COMMAND,
        seed_reply: None,
        idle_timeout: REQUEST_WITHIN,
        seed_pause: SEED_PAUSE,
        // The built-ins read no input: a request that streams one is refused as unsupported.
        stdin: false,
        // Nor is any run on a terminal: a request for a pty is refused as unsupported.
        pty: false,
    };
    let mut session = Session::new(rules, Dialect::Framed, &mut command_buf);
    serve_request(link, &mut session, head, &mut Builtins { store })
}

/// What the device's shell does for its session: runs a built-in.
struct Builtins<'s, 'b> {
    store: &'s Store<'b>,
}

impl<'c> RequestWork<Session<'c>> for Builtins<'_, '_> {
    fn act<U: Read + ReadReady + Write + WaitForInput>(
        &mut self,
        link: &mut Link<'_, U>,
        session: &mut Session<'c>,
    ) -> Result<(), Closed> {
        let Some(ShellAction::Run { command }) = session.poll_action() else {
            return Err(Closed);
        };
        let mut text = [0u8; MAX_COMMAND];
        let len = command.len();
        text[..len].copy_from_slice(command.as_bytes());
        let command = core::str::from_utf8(&text[..len]).unwrap_or("");
        let counts = link.counts();
        let now_ms = link.now_ms();
        let status = run(command, self.store, now_ms, counts, &mut |stream, bytes| {
            if session.handle_output(stream, bytes).is_ok() {
                flush(link, bytes, &mut |out| session.poll_transmit(out));
            }
        });
        let report = ExitReport {
            termination: Termination::Exited(status),
            truncated: false,
            timed_out: false,
        };
        session.handle_exit(report).map_err(|_| Closed)
    }

    fn take(&mut self, _: &mut Session<'c>, nothing: core::convert::Infallible) {
        match nothing {}
    }

    fn is_over(&self, session: &Session<'c>) -> bool {
        session.answered() > 0 && session.is_idle()
    }
}

/// Runs a built-in, writing its output through `out`; returns its exit status.
fn run(
    command: &str,
    store: &Store<'_>,
    now_ms: u32,
    link: LinkCounts,
    out: &mut dyn FnMut(OutputStream, &[u8]),
) -> i32 {
    let mut words = command.split_ascii_whitespace();
    let Some(name) = words.next() else {
        return 0;
    };
    let mut line = Line::new();
    match name {
        "echo" => {
            // One piece of output, so one stdout message: each costs a header with a digest
            // (about 75 bytes, 6.5 ms at 115,200 baud), more than the words themselves. The
            // words, one space apart, and the newline are never longer than the command.
            let mut echoed = [0u8; MAX_COMMAND];
            let mut len = 0;
            for (i, word) in words.enumerate() {
                if i > 0 {
                    echoed[len] = b' ';
                    len += 1;
                }
                echoed[len..len + word.len()].copy_from_slice(word.as_bytes());
                len += word.len();
            }
            echoed[len] = b'\n';
            out(OutputStream::Stdout, &echoed[..=len]);
            0
        }
        "uptime" => {
            let _ = writeln!(line, "{now_ms} ms since boot");
            out(OutputStream::Stdout, line.as_bytes());
            0
        }
        "free" => {
            let used = store.used();
            let staged = store.staged();
            let _ = writeln!(
                line,
                "{used} bytes used, {staged} held by a partial upload, {} free of {CAPACITY}",
                store.free() - staged
            );
            out(OutputStream::Stdout, line.as_bytes());
            0
        }
        "ls" => {
            for file in store.files() {
                line.clear();
                let _ = writeln!(line, "{:>8} {}", file.len, file.name);
                out(OutputStream::Stdout, line.as_bytes());
            }
            0
        }
        "crc" => match (words.next(), words.next()) {
            (Some(path), None) => match store.file(path) {
                Some(file) => {
                    let crc = crc32(store.contents(file));
                    let _ = writeln!(line, "{crc:08x} {} {path}", file.len);
                    out(OutputStream::Stdout, line.as_bytes());
                    0
                }
                None => {
                    let _ = writeln!(line, "crc: {path}: no such file");
                    out(OutputStream::Stderr, line.as_bytes());
                    1
                }
            },
            _ => {
                out(OutputStream::Stderr, b"usage: crc FILE\n");
                1
            }
        },
        "stack" => {
            let _ = writeln!(
                line,
                "{} bytes of stack used at most",
                crate::stack::high_water()
            );
            out(OutputStream::Stdout, line.as_bytes());
            0
        }
        "link" => {
            let _ = writeln!(
                line,
                "link frames: {} taken, {} dropped (damaged or garbage), {} stale",
                link.frames, link.dropped, link.stale
            );
            out(OutputStream::Stdout, line.as_bytes());
            line.clear();
            let _ = writeln!(
                line,
                "requests: {} answered, {} closed, {} lost a frame, {} torn",
                link.answered, link.closed, link.gaps, link.torn
            );
            out(OutputStream::Stdout, line.as_bytes());
            0
        }
        "help" => {
            out(
                OutputStream::Stdout,
                b"built-in commands: echo ARGS, uptime, free, ls, crc FILE, stack, link, help\n",
            );
            0
        }
        _ => {
            out(OutputStream::Stderr, name.as_bytes());
            out(OutputStream::Stderr, b": command not found (try `help`)\n");
            127
        }
    }
}

/// CRC-32 (IEEE 802.3, reflected, as zlib and `cksum -a crc32b` compute it): the link layer's.
pub use unstick_core::serial_link::crc32;
