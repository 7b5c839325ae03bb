//! What the shell's sessions share about a client's connection: the sizes of their buffers,
//! and a pause read as the end of a seed command.

use std::io;
use std::time::{Duration, Instant};

pub use crate::server::GREETING_PAUSE;

/// Size of the buffer framed requests are read through.
pub(super) const REQUEST_BUFFER: usize = 16 * 1024;

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
