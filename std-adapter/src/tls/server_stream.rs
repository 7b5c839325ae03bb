//! A server's end of a TLS connection once its handshake is done: plaintext in and out over
//! the client's own socket, read and written by whichever thread holds it (the lobby, without
//! blocking, between requests; a worker, blocking, during one).

use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use rustls::ServerConnection;

use super::read_ahead::ReadAhead;
use crate::readiness::{self, Interest};

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

    /// Blocking, before a further wait on the socket within one read that began waiting at
    /// `since`: waits for input only for what is left of the socket's read timeout, then fails
    /// as the socket's own timeout does (`WouldBlock`).
    fn wait_readable_within(&self, since: Instant) -> io::Result<()> {
        let Some(limit) = self.socket().read_timeout()? else {
            return Ok(());
        };
        loop {
            let left = limit.saturating_sub(since.elapsed());
            if left.is_zero() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            // Not ready: the time ran out, or a signal came (then the rest is waited for).
            if readiness::wait_for(self.socket(), Interest::Read, left)? {
                return Ok(());
            }
        }
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
        // When this read first waited on the socket (blocking): a client trickling a record
        // must not make it wait longer than the socket's read timeout in all.
        let mut waited_since: Option<Instant> = None;
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
            if !self.nonblocking && self.wire.buffered() == 0 {
                match waited_since {
                    None => waited_since = Some(Instant::now()),
                    Some(since) => self.wait_readable_within(since)?,
                }
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
                // Records to send back (say, what an earlier write left queued): an error
                // waits for the next write rather than losing the plaintext already in `buf`.
                if self.tls.wants_write() {
                    match self.send_queued() {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(_) if filled > 0 => return Ok(filled),
                        Err(e) => return Err(e),
                    }
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

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;
    use std::thread;
    use std::time::{Duration, Instant};

    use rustls::ServerConnection;

    use super::TlsServerStream;
    use crate::tls::{ClientTls, Identity, ServerTls, TlsStream};

    /// A handshaken pair on loopback: the server's end (blocking) and the client's.
    fn pair() -> (TlsServerStream, TlsStream, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let identity = Identity::in_state_dir(dir.path(), &["localhost".to_owned()]).unwrap();
        let server_tls = ServerTls::new(identity, None).unwrap();
        let pin = server_tls.fingerprint();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let config = server_tls.config();
        let server = thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut tls = ServerConnection::new(Arc::clone(&config)).unwrap();
            while tls.is_handshaking() {
                tls.complete_io(&mut socket).unwrap();
            }
            socket.set_nonblocking(true).unwrap();
            TlsServerStream::new(tls, socket)
        });
        let trust = ClientTls {
            pin: Some(pin),
            ..ClientTls::default()
        };
        let client = trust
            .connect(&addr.to_string(), TcpStream::connect(addr).unwrap())
            .unwrap();
        let mut served = server.join().unwrap();
        served.set_nonblocking(false).unwrap();
        (served, client, dir)
    }

    /// The records `client` has encrypted and not sent, taken out of it.
    fn records_of(client: &mut TlsStream, plaintext: &[u8]) -> Vec<u8> {
        client.conn.writer().write_all(plaintext).unwrap();
        let mut wire = Vec::new();
        while client.conn.wants_write() {
            client.conn.write_tls(&mut wire).unwrap();
        }
        wire
    }

    #[test]
    fn a_trickled_record_does_not_stretch_a_blocking_read_past_its_timeout() {
        let (mut served, mut client, _dir) = pair();
        let wire = records_of(&mut client, b"a request sent a byte at a time");
        let socket = client.sock.get_ref().try_clone().unwrap();
        // One byte every 40 ms: each under the 300 ms read timeout, the record in ~2.4 s.
        let trickle = thread::spawn(move || {
            for byte in wire {
                thread::sleep(Duration::from_millis(40));
                if (&socket).write_all(&[byte]).is_err() {
                    break;
                }
            }
        });
        served
            .socket()
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let started = Instant::now();
        let read = served.read(&mut [0u8; 256]);
        let waited = started.elapsed();
        assert!(
            waited < Duration::from_millis(1200),
            "a read with a 300 ms timeout waited {waited:?} ({read:?})"
        );
        assert!(
            read.as_ref().is_err_and(|e| matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            )),
            "{read:?}"
        );
        trickle.join().unwrap();
        // The record, complete by now, is read whole.
        served
            .socket()
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 256];
        let n = served.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"a request sent a byte at a time");
    }
}
