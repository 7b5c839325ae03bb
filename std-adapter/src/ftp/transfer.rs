//! Pieces both ends of a transfer share: hashing while reading, and hashing a resumed prefix.

use std::fs::File;
use std::io::{self, Read};

use unstick_core::{Algorithm, Algorithms, BodyHasher};

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

/// An `embedded-io` byte source over a file that feeds every byte it hands out to a hasher and
/// a progress report.
pub struct HashingSource<'a> {
    /// The file being read.
    pub file: &'a mut File,
    /// Hasher continued over the bytes read.
    pub hasher: &'a mut BodyHasher,
    /// Progress report.
    pub progress: &'a mut dyn Progress,
}

impl embedded_io::ErrorType for HashingSource<'_> {
    type Error = io::Error;
}

impl embedded_io::Read for HashingSource<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, io::Error> {
        let n = loop {
            match self.file.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        self.hasher.update(&buf[..n]);
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// Hashes the first `len` bytes of `file` (from its current position) with `algorithm`,
/// returning the hasher so the caller can continue it. Fails with `UnexpectedEof` if the file
/// is shorter.
pub fn hash_prefix(
    file: &mut File,
    len: u64,
    algorithm: Algorithm,
    buf: &mut [u8],
) -> io::Result<BodyHasher> {
    let mut hasher = BodyHasher::new(Algorithms::only(algorithm));
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file is shorter than the resume offset",
            ));
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(hasher)
}
