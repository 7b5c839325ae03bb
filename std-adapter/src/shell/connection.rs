//! What the shell's sessions share about a client's connection: the size of the buffer its
//! requests are read through.

pub use crate::server::GREETING_PAUSE;

/// Size of the buffer framed requests are read through.
pub(super) const REQUEST_BUFFER: usize = 16 * 1024;
