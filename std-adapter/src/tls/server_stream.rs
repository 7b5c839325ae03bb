//! A server's end of a TLS connection once its handshake is done: plaintext in and out over
//! the client's own socket, read and written by whichever thread holds it (the lobby, without
//! blocking, between requests; a worker, blocking, during one).

use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream;

use rustls::ServerConnection;

use super::read_ahead::ReadAhead;

/// A TLS connection whose handshake is complete, on the client's socket. Reads and writes wait
/// as long as the socket's timeouts allow, or not at all once
/// [`set_nonblocking`](Self::set_nonblocking).
#[derive(Debug)]
pub struct TlsServerStream {
    tls: ServerConnection,
    wire: ReadAhead<TcpStream>,
    nonblocking: bool,
    /// A record that failed to decrypt or parse after plaintext was handed out: reported by
    /// the next read.
    failed: Option<rustls::Error>,
}

impl TlsServerStream {
    /// The connection `tls`, whose handshake is complete, on `socket`.
    /// Its socket is non-blocking, as the handshake left it.
    pub fn new(tls: ServerConnection, socket: TcpStream) -> TlsServerStream {
        let mut wire = ReadAhead::new(socket);
        wire.read_direct(true);
        TlsServerStream {
            tls,
            wire,
            nonblocking: true,
            failed: None,
        }
    }

    /// The client's socket, for its timeouts, polling and shutting it down. Bytes read or
    /// written on it directly bypass TLS.
    pub fn socket(&self) -> &TcpStream {
        self.wire.get_ref()
    }

    /// Makes reads and writes wait (a request being served: records are read ahead of rustls,
    /// so bulk transfers take fewer system calls) or not (a connection waiting between
    /// requests, which then holds no read-ahead buffer). Blocking, a write returns once every
    /// record has been sent; non-blocking, what the socket does not take waits in rustls for
    /// the next write.
    pub fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()> {
        self.socket().set_nonblocking(nonblocking)?;
        self.nonblocking = nonblocking;
        self.wire.read_direct(nonblocking);
        Ok(())
    }

    /// Whether bytes from the client are held here (decrypted, or read ahead of rustls) that
    /// the socket's readiness would not announce.
    pub fn has_buffered_input(&mut self) -> bool {
        self.wire.buffered() > 0
            || self
                .tls
                .process_new_packets()
                .is_ok_and(|state| state.plaintext_bytes_to_read() > 0)
    }

    /// Queues TLS's `close_notify` and sends what is queued as far as the socket takes it: the
    /// client then sees a clean end of the stream once the socket's sending side is shut down.
    pub fn close_notify(&mut self) {
        self.tls.send_close_notify();
        let _ = self.send_queued();
    }

    /// Writes the records rustls has queued. On a blocking socket, a write timeout is a
    /// `TimedOut` error.
    fn send_queued(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.wire) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !self.nonblocking => {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// After plaintext was taken: sends it, or, non-blocking, leaves what the socket does not
    /// take for later.
    fn send_taken(&mut self, taken: usize) -> io::Result<usize> {
        match self.send_queued() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(taken),
            Err(e) => Err(e),
            Ok(()) => Ok(taken),
        }
    }
}

impl Read for TlsServerStream {
    /// Plaintext from the client; `Ok(0)` at its end, clean (`close_notify`) or not (the end
    /// of a request's stream is judged by the protocol, as over plain TCP). Waits only while
    /// nothing has been read; after that, the records already read ahead are decrypted into
    /// `buf` as far as it has room, so a bulk transfer is handed on in large pieces rather
    /// than a record (16 KiB) at a time.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = self.failed.take() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        let mut filled = 0;
        loop {
            match self.tls.reader().read(&mut buf[filled..]) {
                Ok(0) => return Ok(filled),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(filled),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) if filled > 0 => return Ok(filled),
                Err(e) => return Err(e),
            }
            if filled == buf.len() || (filled > 0 && self.wire.buffered() == 0) {
                return Ok(filled);
            }
            // From the bytes read ahead when there are any (no system call), else the socket.
            if self.tls.read_tls(&mut self.wire)? > 0 {
                if let Err(e) = self.tls.process_new_packets() {
                    // Tell the client why (an alert), as far as the socket takes it.
                    let _ = self.send_queued();
                    if filled > 0 {
                        self.failed = Some(e);
                        return Ok(filled);
                    }
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
                // A key update's answer, say.
                if self.tls.wants_write() {
                    self.send_queued()?;
                }
            }
        }
    }
}

impl Write for TlsServerStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.tls.writer().write(buf)?;
        self.send_taken(n)
    }

    /// Encrypts every slice, then sends the records in as few system calls as the socket
    /// takes (a frame's head and body leave together).
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut taken = 0;
        for buf in bufs {
            self.tls.writer().write_all(buf)?;
            taken += buf.len();
        }
        self.send_taken(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_queued()
    }
}
