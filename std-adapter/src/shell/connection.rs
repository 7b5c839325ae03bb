//! What the shell's sessions share about a client's connection: the sizes of their buffers,
//! reads bounded in time, and a pause read as the end of a seed command.

use std::io::{self, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

pub use crate::server::GREETING_PAUSE;

/// Size of the buffer framed requests are read through.
pub(super) const REQUEST_BUFFER: usize = 16 * 1024;

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
