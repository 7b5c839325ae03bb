//! A socket read through a buffer of its own. rustls reads TLS records from its transport a
//! few KiB at a time; through this, one system call serves many of those reads, which is most
//! of what a bulk transfer over TLS would otherwise spend in the kernel.

use std::io::{self, IoSlice, Read, Write};

/// Bytes one read of the socket may bring in.
pub const READ_AHEAD: usize = 256 * 1024;

/// `inner`, read through a buffer; writes go straight through. The buffer is allocated on the
/// first read that uses it, and can be given back while the stream waits
/// ([`read_direct`](ReadAhead::read_direct)).
#[derive(Debug)]
pub struct ReadAhead<S> {
    inner: S,
    buf: Vec<u8>,
    capacity: usize,
    start: usize,
    end: usize,
    direct: bool,
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
            buf: Vec::new(),
            capacity: capacity.max(1),
            start: 0,
            end: 0,
            direct: false,
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

    /// With `direct`, reads go straight to the socket once the bytes read ahead are handed out,
    /// and the buffer is freed then: for a connection that waits between requests, where
    /// reading ahead would only hold memory. Without, reads fill the buffer again.
    pub fn read_direct(&mut self, direct: bool) {
        self.direct = direct;
        self.free_if_drained();
    }

    fn free_if_drained(&mut self) {
        if self.direct && self.start == self.end && !self.buf.is_empty() {
            self.buf = Vec::new();
        }
    }
}

impl<S: Read> Read for ReadAhead<S> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.start == self.end {
            self.free_if_drained();
            if self.direct || out.len() >= self.capacity {
                return self.inner.read(out);
            }
            if self.buf.is_empty() {
                self.buf = vec![0u8; self.capacity];
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

    /// Everything `reader` has left, read `chunk` bytes at a time at most.
    fn read_to_end(reader: &mut impl Read, chunk: usize) -> Vec<u8> {
        let mut back = Vec::new();
        let mut buf = vec![0u8; chunk];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                return back;
            }
            back.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn reads_come_whole_and_in_order_through_the_buffer() {
        let data: Vec<u8> = (0..READ_AHEAD * 2 + 77).map(|i| (i % 251) as u8).collect();
        let mut reader = ReadAhead::new(&data[..]);
        assert_eq!(read_to_end(&mut reader, 4096), data);
        assert_eq!(reader.buffered(), 0);
    }

    #[test]
    fn direct_reads_hand_out_what_was_read_ahead_first_then_free_the_buffer() {
        let data: Vec<u8> = (0..10_000).map(|i| (i % 251) as u8).collect();
        let mut reader = ReadAhead::with_capacity(&data[..], 4096);
        let mut first = [0u8; 100];
        assert_eq!(reader.read(&mut first).unwrap(), 100);
        assert_eq!(reader.buffered(), 3996);
        reader.read_direct(true);
        assert_eq!(reader.buf.len(), 4096, "kept while it holds bytes");
        let mut back = first.to_vec();
        back.extend(read_to_end(&mut reader, 1000));
        assert_eq!(back, data);
        assert!(reader.buf.is_empty(), "freed once drained");
    }
}
