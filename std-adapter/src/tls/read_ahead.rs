//! A socket read through a buffer of its own. rustls reads TLS records from its transport a
//! few KiB at a time; through this, one system call serves many of those reads, which is most
//! of what a bulk transfer over TLS would otherwise spend in the kernel.

use std::io::{self, IoSlice, Read, Write};

/// Bytes one read of the socket may bring in.
pub const READ_AHEAD: usize = 256 * 1024;

/// `inner`, read through a buffer; writes go straight through.
#[derive(Debug)]
pub struct ReadAhead<S> {
    inner: S,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl<S> ReadAhead<S> {
    /// `inner` with an empty buffer of [`READ_AHEAD`] bytes.
    pub fn new(inner: S) -> ReadAhead<S> {
        ReadAhead::with_capacity(inner, READ_AHEAD)
    }

    /// `inner` with an empty buffer of `capacity` bytes.
    pub fn with_capacity(inner: S, capacity: usize) -> ReadAhead<S> {
        ReadAhead {
            inner,
            buf: vec![0u8; capacity.max(1)].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// The socket.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Bytes read from the socket and not yet handed out.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }
}

impl<S: Read> Read for ReadAhead<S> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.start == self.end {
            if out.len() >= self.buf.len() {
                return self.inner.read(out);
            }
            let n = self.inner.read(&mut self.buf)?;
            self.start = 0;
            self.end = n;
        }
        let n = out.len().min(self.end - self.start);
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        Ok(n)
    }
}

impl<S: Write> Write for ReadAhead<S> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.inner.write(bytes)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.inner.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_come_whole_and_in_order_through_the_buffer() {
        let data: Vec<u8> = (0..READ_AHEAD * 2 + 77).map(|i| (i % 251) as u8).collect();
        let mut reader = ReadAhead::new(&data[..]);
        let mut back = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = reader.read(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            back.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(back, data);
        assert_eq!(reader.buffered(), 0);
    }
}
