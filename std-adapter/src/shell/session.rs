//! One client connection, from its first bytes to its close.
//!
//! The steps: read the greeting (the first bytes) and classify it; then serve either a
//! [`FramedSession`] (requests and streamed replies in header frames, many commands per
//! connection) or a [`SeedSession`] (one raw-text command per read, one reply each, in the
//! seed's format). This module holds the steps and the socket reads both kinds share. Every read waits at most until the connection's request deadline, which
//! restarts when a request is complete; a client that does not finish a request in time is
//! dropped.

use std::io::{self, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::framed_session::FramedSession;
use super::process::deadline_after;
use super::seed_session::SeedSession;
use super::server::ShellConfig;
use super::wire::{self, Greeting};
use crate::server::configure_stream;

/// How long the server waits for more of a greeting shorter than four bytes before taking it as
/// a short seed command (such as `ls`).
pub const GREETING_PAUSE: Duration = Duration::from_millis(200);

/// Size of the buffer framed requests are read through.
pub(super) const REQUEST_BUFFER: usize = 16 * 1024;

/// Room for a reply frame's head in front of its body.
pub(super) const REPLY_HEAD_ROOM: usize = 512;

/// Whether a session goes on after a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Next {
    Continue,
    Close,
}

/// Serves one accepted connection until it closes. Never panics on client input.
pub(crate) fn serve_connection(stream: TcpStream, config: &ShellConfig) {
    if configure_stream(&stream, config.idle_timeout).is_err() {
        return;
    }
    // A client that stops reading output for this long is dropped (and its command killed), so
    // a stalled reader cannot keep a command alive much past its time limit.
    let write_limit = config.idle_timeout.min(config.limits.timeout);
    if stream.set_write_timeout(Some(write_limit)).is_err() {
        return;
    }
    // The first request, greeting included, must be complete by this deadline.
    let first_deadline = deadline_after(config.idle_timeout);
    let greeting = match read_greeting(&stream, first_deadline) {
        Ok(Some(greeting)) => greeting,
        Ok(None) | Err(_) => return,
    };
    let result = match greeting {
        (Greeting::Seed, first) => SeedSession { config, stream }.run(first),
        (_, first) => FramedSession::new(stream, config).and_then(|s| s.run(first, first_deadline)),
    };
    // The peer may already be gone; there is no one to tell about I/O errors.
    let _ = result;
}

/// Reads the first bytes of a connection until they say which kind of client it is.
/// `Ok(None)` when the client closes before sending anything.
fn read_greeting(stream: &TcpStream, deadline: Instant) -> io::Result<Option<(Greeting, Vec<u8>)>> {
    let mut first = vec![0u8; wire::SEED_COMMAND_READ];
    let mut len = read_within(stream, &mut first, time_left(deadline)?)?;
    if len == 0 {
        return Ok(None);
    }
    loop {
        match wire::classify_greeting(&first[..len]) {
            Greeting::Undecided => {}
            decided => {
                first.truncate(len);
                return Ok(Some((decided, first)));
            }
        }
        match read_within(stream, &mut first[len..], GREETING_PAUSE) {
            Ok(n) if n > 0 => len += n,
            Ok(_) => return Ok(None),
            Err(e) if is_timeout(&e) => {
                first.truncate(len);
                return Ok(Some((Greeting::Seed, first)));
            }
            Err(e) => return Err(e),
        }
    }
}

/// One read that waits at most `limit`.
pub(super) fn read_within(
    stream: &TcpStream,
    buf: &mut [u8],
    limit: Duration,
) -> io::Result<usize> {
    stream.set_read_timeout(Some(limit.max(Duration::from_millis(1))))?;
    let mut reader = stream;
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

pub(super) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The time until `deadline`, or a `TimedOut` error once it has passed.
pub(super) fn time_left(deadline: Instant) -> io::Result<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| io::ErrorKind::TimedOut.into())
}
