//! What both ends of a transfer share: the buffer size and progress reports.

/// Default size of the transfer buffers (socket reads and file reads), per connection.
pub const TRANSFER_BUFFER: usize = 512 * 1024;

/// Reports transfer progress, e.g. to a terminal progress bar.
pub trait Progress {
    /// A transfer of `total` bytes starts, `done` of them already in place (resume).
    fn start(&mut self, total: u64, done: u64);
    /// `n` more bytes moved.
    fn advance(&mut self, n: u64);
    /// The transfer is over (successfully or not).
    fn finish(&mut self);
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&mut self, _total: u64, _done: u64) {}
    fn advance(&mut self, _n: u64) {}
    fn finish(&mut self) {}
}
