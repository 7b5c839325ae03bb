//! A client's connection as a server holds it: a TCP socket carrying the protocol in
//! plaintext, or under TLS. The lobby and the request code read and write it the same way
//! either way; what is TCP's own (timeouts, blocking mode, polling, shutting down) is done on
//! [`ClientSocket::tcp`].

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};

use crate::tls::TlsServerStream;

/// A client's connection: plaintext or TLS over one TCP socket.
#[derive(Debug)]
pub enum ClientSocket {
    /// The protocol straight on the socket.
    Plain(TcpStream),
    /// The protocol inside TLS (the handshake done).
    Tls(Box<TlsServerStream>),
}

impl ClientSocket {
    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            ClientSocket::Plain(socket) => socket,
            ClientSocket::Tls(tls) => tls.socket(),
        }
    }

    /// Makes reads and writes wait (a worker serving a request) or not (the lobby). A TLS
    /// connection reads ahead of its records only while they wait: bulk transfers take fewer
    /// system calls, and a connection waiting in the lobby holds no read-ahead buffer.
    pub fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()> {
        match self {
            ClientSocket::Plain(socket) => socket.set_nonblocking(nonblocking),
            ClientSocket::Tls(tls) => tls.set_nonblocking(nonblocking),
        }
    }

    /// Whether the client's bytes are held here, beyond what the socket's readiness announces
    /// (decrypted by TLS but not yet read).
    pub fn has_buffered_input(&mut self) -> bool {
        match self {
            ClientSocket::Plain(_) => false,
            ClientSocket::Tls(tls) => tls.has_buffered_input(),
        }
    }

    /// Ends the sending side: after TLS's `close_notify` for a TLS client, so that it sees a
    /// clean end of the stream.
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        if let ClientSocket::Tls(tls) = self {
            tls.close_notify();
        }
        self.tcp().shutdown(Shutdown::Write)
    }
}

impl crate::host::TimedRead for ClientSocket {
    fn read_within(
        &mut self,
        buf: &mut [u8],
        limit: Option<std::time::Duration>,
    ) -> io::Result<usize> {
        self.tcp().set_read_timeout(limit)?;
        self.read(buf)
    }
}

impl Read for ClientSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ClientSocket::Plain(socket) => socket.read(buf),
            ClientSocket::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for ClientSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            ClientSocket::Plain(socket) => socket.write(buf),
            ClientSocket::Tls(tls) => tls.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            ClientSocket::Plain(socket) => socket.write_vectored(bufs),
            ClientSocket::Tls(tls) => tls.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            ClientSocket::Plain(socket) => socket.flush(),
            ClientSocket::Tls(tls) => tls.flush(),
        }
    }
}
