//! The byte streams a client reaches a server over: a TCP connection, TLS over TCP
//! (`tls://HOST:PORT`), or a device's UART: a serial line (`serial:/dev/ttyACM0@115200`) or a
//! TCP bridge to one (`uart+tcp://HOST:PORT`, such as QEMU's `-serial tcp:` or ser2net).
//!
//! A UART has no connections and no integrity: a device cannot tell one client's bytes from the
//! next one's, and bytes can be lost or flipped on the way. So a [`Link`] to a UART carries the
//! protocols' bytes in link frames (`unstick_core::serial_link`): each request starts with a
//! start frame ([`Link::start_request`]), damaged frames are dropped at the next zero on the
//! line, and a reply with a frame missing is an error at once (see `docs/PROTOCOL.md`, "Serial
//! lines"). Over TCP and TLS the bytes go as they are.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use serialport::{ClearBuffer, SerialPort};

use crate::address::{AddressError, HostPort};
use crate::readiness::{self, Interest};
use crate::tls::{ClientTls, Fingerprint, TlsConnectError, TlsStream};

mod framed_line;

use framed_line::{FramedLine, Line, SerialPortNative};

/// What an address names: `HOST:PORT`, `tls://HOST:PORT`, `serial:PATH[@BAUD]` or
/// `uart+tcp://HOST:PORT`.
///
/// The TCP, TLS and UART bridge variants hold the address in the form [`HostPort`] writes (`HOST:PORT`,
/// an IPv6 host in brackets) when made by [`Endpoint::parse`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP address, `HOST:PORT`.
    Tcp(String),
    /// A TLS server's TCP address, `HOST:PORT`.
    Tls(String),
    /// A serial port.
    Serial {
        /// The device, such as `/dev/ttyACM0`.
        path: String,
        /// Bits per second.
        baud: u32,
    },
    /// A TCP server that bridges to a device's UART (QEMU's `-serial tcp:`, a ser2net-style
    /// server), `HOST:PORT`: link frames, as on a serial port.
    UartTcp(String),
}

/// The prefix of a TLS address.
pub const TLS_PREFIX: &str = "tls://";

/// How long a TLS handshake may take when the link itself waits without limit.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(30);

/// The prefix of a serial address.
pub const SERIAL_PREFIX: &str = "serial:";

/// The prefix of a UART bridge's address.
pub const UART_TCP_PREFIX: &str = "uart+tcp://";

/// The speed of a serial address that names none.
pub const DEFAULT_BAUD: u32 = 115_200;

/// How long a client waits for a device's next byte when it asked for no limit: a request
/// whose last frame was lost on the line gets no answer, so a wait must end.
pub const SERIAL_REPLY_LIMIT: Duration = Duration::from_secs(30);

impl Endpoint {
    /// Reads an address whose port must be given: see [`Endpoint::parse_with_default_port`].
    pub fn parse(addr: &str) -> Result<Endpoint, AddressError> {
        Endpoint::parse_address(addr, None)
    }

    /// Reads an address: `serial:PATH` or `serial:PATH@BAUD` names a serial port,
    /// `uart+tcp://HOST[:PORT]` a TCP bridge to a UART, `tls://HOST[:PORT]` a TLS server, anything else a TCP server as `HOST[:PORT]` (see
    /// [`HostPort::parse`]: a name or an IP address, an IPv6 address in brackets). A missing
    /// port is `default_port`. The TCP and TLS addresses are kept as `HOST:PORT`, which
    /// [`Link::open`] resolves, trying every address the name has.
    pub fn parse_with_default_port(
        addr: &str,
        default_port: u16,
    ) -> Result<Endpoint, AddressError> {
        Endpoint::parse_address(addr, Some(default_port))
    }

    fn parse_address(addr: &str, default_port: Option<u16>) -> Result<Endpoint, AddressError> {
        let host_port = |text: &str| {
            let host_port = HostPort::parse(text, default_port)?;
            host_port.check_connectable()?;
            Ok::<_, AddressError>(host_port.to_string())
        };
        if let Some(rest) = addr.strip_prefix(TLS_PREFIX) {
            if rest.trim().is_empty() {
                return Err(AddressError::NoTlsHost {
                    addr: addr.to_owned(),
                });
            }
            return Ok(Endpoint::Tls(host_port(rest)?));
        }
        if let Some(rest) = addr.strip_prefix(UART_TCP_PREFIX) {
            if rest.trim().is_empty() {
                return Err(AddressError::NoUartBridgeHost {
                    addr: addr.to_owned(),
                });
            }
            return Ok(Endpoint::UartTcp(host_port(rest)?));
        }
        let Some(rest) = addr.strip_prefix(SERIAL_PREFIX) else {
            return Ok(Endpoint::Tcp(host_port(addr)?));
        };
        let (path, baud) = match rest.rsplit_once('@') {
            Some((path, baud_text)) => {
                let baud = baud_text
                    .parse::<u32>()
                    .ok()
                    .filter(|&b| b > 0)
                    .ok_or_else(|| AddressError::BadBaud {
                        baud: baud_text.to_owned(),
                        addr: addr.to_owned(),
                    })?;
                (path, baud)
            }
            None => (rest, DEFAULT_BAUD),
        };
        if path.is_empty() {
            return Err(AddressError::NoSerialPort {
                addr: addr.to_owned(),
            });
        }
        Ok(Endpoint::Serial {
            path: path.to_owned(),
            baud,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(addr) => f.write_str(addr),
            Endpoint::Tls(addr) => write!(f, "{TLS_PREFIX}{addr}"),
            Endpoint::Serial { path, baud } => write!(f, "{SERIAL_PREFIX}{path}@{baud}"),
            Endpoint::UartTcp(addr) => write!(f, "{UART_TCP_PREFIX}{addr}"),
        }
    }
}

/// An open byte stream to a server.
pub struct Link {
    kind: Kind,
}

enum Kind {
    Tcp(TcpStream),
    Tls(Box<TlsStream>),
    /// Link frames on a serial port or a UART bridge.
    Serial(Box<FramedLine>),
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Tcp(stream) => f
                .debug_struct("Link")
                .field("peer", &stream.peer_addr().ok())
                .finish(),
            Kind::Tls(stream) => f
                .debug_struct("Link")
                .field("tls_peer", &stream.sock.get_ref().peer_addr().ok())
                .finish(),
            Kind::Serial(framed) => match &framed.line {
                Line::Port(port) => f.debug_struct("Link").field("port", &port.name()).finish(),
                Line::Bridge(stream) => f
                    .debug_struct("Link")
                    .field("uart_bridge", &stream.peer_addr().ok())
                    .finish(),
            },
        }
    }
}

impl Link {
    /// Opens `endpoint`: a TCP connection (no Nagle delay), TLS over one (trusting the server
    /// as `tls` says), the serial port in raw mode, held exclusively, its input buffer emptied,
    /// or a TCP connection to a UART bridge. Reads and writes wait at most `timeout` (`None`: as
    /// long as it takes on TCP and TLS, [`SERIAL_REPLY_LIMIT`] for the next reply bytes from a
    /// UART). The first bytes written to a UART start a request.
    pub fn open(
        endpoint: &Endpoint,
        timeout: Option<Duration>,
        tls: &ClientTls,
    ) -> io::Result<Link> {
        if tls.is_configured() && !matches!(endpoint, Endpoint::Tls(_)) {
            // Trust settings for a plaintext connection would give a false sense of security.
            return Err(TlsConnectError::Setup(format!(
                "--fingerprint, --ca, --known-hosts, --cert and --key apply to TLS servers; did \
                 you mean {TLS_PREFIX}{endpoint}?"
            ))
            .into());
        }
        match endpoint {
            Endpoint::Tcp(addr) => {
                let stream = TcpStream::connect(addr)?;
                stream.set_nodelay(true)?;
                stream.set_read_timeout(timeout)?;
                stream.set_write_timeout(timeout)?;
                Ok(Link::tcp(stream))
            }
            Endpoint::Tls(addr) => {
                let stream = TcpStream::connect(addr)?;
                stream.set_nodelay(true)?;
                let handshake = timeout.unwrap_or(HANDSHAKE_LIMIT).min(HANDSHAKE_LIMIT);
                stream.set_read_timeout(Some(handshake))?;
                stream.set_write_timeout(Some(handshake))?;
                let stream = tls.connect(addr, stream)?;
                stream.sock.get_ref().set_read_timeout(timeout)?;
                stream.sock.get_ref().set_write_timeout(timeout)?;
                Ok(Link {
                    kind: Kind::Tls(Box::new(stream)),
                })
            }
            Endpoint::Serial { path, baud } => {
                let timeout = timeout.unwrap_or(SERIAL_REPLY_LIMIT);
                let port = serialport::new(path, *baud)
                    .timeout(timeout)
                    .open_native()
                    .map_err(io::Error::from)?;
                // Bytes a device sent before the port was opened answer nothing of ours.
                port.clear(ClearBuffer::Input).map_err(io::Error::from)?;
                let line = Line::Port(Box::new(port));
                Ok(Link {
                    kind: Kind::Serial(Box::new(FramedLine::new(line, timeout))),
                })
            }
            Endpoint::UartTcp(addr) => {
                let stream = TcpStream::connect(addr)?;
                stream.set_nodelay(true)?;
                stream.set_write_timeout(timeout)?;
                let line = Line::Bridge(stream);
                let timeout = timeout.unwrap_or(SERIAL_REPLY_LIMIT);
                Ok(Link {
                    kind: Kind::Serial(Box::new(FramedLine::new(line, timeout))),
                })
            }
        }
    }

    /// A link over an established TCP connection.
    pub fn tcp(stream: TcpStream) -> Link {
        Link {
            kind: Kind::Tcp(stream),
        }
    }

    /// Whether this is a device's UART (a serial port or a TCP bridge to one), which carries
    /// link frames.
    pub fn is_serial(&self) -> bool {
        matches!(self.kind, Kind::Serial(_))
    }

    /// The TCP connection, when this is one (under TLS, the socket TLS runs over).
    pub fn tcp_stream(&self) -> Option<&TcpStream> {
        match &self.kind {
            Kind::Tcp(stream) => Some(stream),
            Kind::Tls(stream) => Some(stream.sock.get_ref()),
            Kind::Serial(_) => None,
        }
    }

    /// The server's socket address, on TCP and TLS (the one of the resolved addresses that
    /// answered).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.tcp_stream().and_then(|stream| stream.peer_addr().ok())
    }

    /// The fingerprint of the certificate a TLS server presented.
    pub fn tls_fingerprint(&self) -> Option<Fingerprint> {
        let Kind::Tls(stream) = &self.kind else {
            return None;
        };
        let chain = stream.conn.peer_certificates()?;
        chain.first().map(|leaf| Fingerprint::of(leaf.as_ref()))
    }

    /// Marks the next bytes written as the start of a request: on a UART, the next link frame
    /// is a start frame, so the device drops whatever it held of an earlier request, and only
    /// the reply to this one is read. Nothing to do on TCP and TLS, where requests follow each
    /// other whole. Call it before every request.
    pub fn start_request(&mut self) {
        if let Kind::Serial(framed) = &mut self.kind {
            framed.start_request();
        }
    }

    /// Sets how long a read waits.
    pub fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        match &mut self.kind {
            Kind::Tcp(stream) => stream.set_read_timeout(Some(timeout)),
            Kind::Tls(stream) => stream.sock.get_ref().set_read_timeout(Some(timeout)),
            Kind::Serial(framed) => {
                framed.timeout = timeout;
                Ok(())
            }
        }
    }

    /// Whether bytes (or the end of the stream) are waiting to be read, without waiting.
    pub fn readable_now(&self) -> bool {
        let socket = match &self.kind {
            Kind::Tcp(stream) => stream,
            // The server sends no session tickets, so bytes on the socket (or read ahead from
            // it) are a reply, or a close.
            Kind::Tls(stream) if stream.sock.buffered() > 0 => return true,
            Kind::Tls(stream) => stream.sock.get_ref(),
            Kind::Serial(framed) if framed.has_buffered() => return true,
            Kind::Serial(framed) => match &framed.line {
                Line::Port(port) => return serial_readable_now(port),
                Line::Bridge(stream) => stream,
            },
        };
        readiness::wait_for(socket, Interest::Read, Duration::ZERO).unwrap_or(false)
    }

    /// Whether the server has closed a TCP connection (or sent something unasked, which only
    /// comes before a close), without waiting. A serial line never closes.
    pub fn peer_has_closed(&self) -> bool {
        let stream = match &self.kind {
            Kind::Tcp(stream) => stream,
            // Bytes already read ahead came unasked too.
            Kind::Tls(stream) if stream.sock.buffered() > 0 => return true,
            Kind::Tls(stream) => stream.sock.get_ref(),
            Kind::Serial(_) => return false,
        };
        if stream.set_nonblocking(true).is_err() {
            return true;
        }
        let mut byte = [0u8; 1];
        let closed = match stream.peek(&mut byte) {
            Err(e) => e.kind() != io::ErrorKind::WouldBlock,
            Ok(_) => true,
        };
        closed || stream.set_nonblocking(false).is_err()
    }

    /// Makes reads and writes on TCP and TLS return at once instead of waiting, for
    /// [`read_now`](Self::read_now), [`write_now`](Self::write_now) and
    /// [`flush_now`](Self::flush_now): a client that sends and receives at the same time (a
    /// command's input out, its output in) waits for both with `poll`, on
    /// [`tcp_stream`](Self::tcp_stream). A serial line cannot (`Unsupported`).
    pub(crate) fn set_nonblocking(&mut self, nonblocking: bool) -> io::Result<()> {
        match &self.kind {
            Kind::Tcp(stream) => stream.set_nonblocking(nonblocking),
            Kind::Tls(stream) => stream.sock.get_ref().set_nonblocking(nonblocking),
            Kind::Serial(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a serial line does not carry a command's input",
            )),
        }
    }

    /// One read that does not wait (the link made non-blocking): `WouldBlock` when nothing
    /// came. Under TLS, records queued to send stay queued: a reply is read even while the
    /// server takes none of ours.
    pub(crate) fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Kind::Tls(stream) = &mut self.kind else {
            return self.read(buf);
        };
        loop {
            match stream.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The server closed without a close_notify: the protocol's framing judges.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            if stream.conn.read_tls(&mut stream.sock)? == 0 {
                return Ok(0);
            }
            if let Err(e) = stream.conn.process_new_packets() {
                return Err(crate::tls::explain_read_error(io::Error::new(
                    io::ErrorKind::InvalidData,
                    e,
                )));
            }
        }
    }

    /// One write that does not wait (the link made non-blocking): how much of `buf` was
    /// taken, `WouldBlock` when none. Under TLS the records queued before go first, and what
    /// the socket does not take of the new ones stays queued for [`flush_now`](Self::flush_now).
    pub(crate) fn write_now(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Kind::Tls(stream) = &mut self.kind {
            if !flush_tls(stream)? {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = stream.conn.writer().write(buf)?;
            flush_tls(stream)?;
            return Ok(n);
        }
        self.write(buf)
    }

    /// Sends what TLS queued, as far as the socket takes it without waiting; whether all of it
    /// went (always, on TCP).
    pub(crate) fn flush_now(&mut self) -> io::Result<bool> {
        match &mut self.kind {
            Kind::Tls(stream) => flush_tls(stream),
            _ => Ok(true),
        }
    }

    /// Tells a TCP peer that nothing more comes (the seed's upload ends so); a serial line has
    /// no such signal.
    pub fn finish_sending(&mut self) {
        match &mut self.kind {
            Kind::Tcp(stream) => {
                let _ = stream.shutdown(Shutdown::Write);
            }
            Kind::Tls(stream) => {
                stream.conn.send_close_notify();
                let _ = stream.flush();
                let _ = stream.sock.get_ref().shutdown(Shutdown::Write);
            }
            Kind::Serial(_) => {}
        }
    }
}

/// Writes the records TLS queued as far as the non-blocking socket takes them; whether all
/// went.
fn flush_tls(stream: &mut TlsStream) -> io::Result<bool> {
    while stream.conn.wants_write() {
        match stream.conn.write_tls(&mut stream.sock) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Whether a serial port has bytes waiting, without waiting: its input queue is asked for its
/// length (`FIONREAD` on a terminal, `ClearCommError` on a COM port). A port that cannot say
/// has hung up (a USB adapter pulled out), which the next read reports.
fn serial_readable_now(port: &SerialPortNative) -> bool {
    port.bytes_to_read().map_or(true, |waiting| waiting > 0)
}

impl crate::host::TimedRead for Link {
    /// Waits at most `limit`; without one, as long as it takes on TCP and TLS, and
    /// [`SERIAL_REPLY_LIMIT`] for the next reply bytes from a UART.
    fn read_within(&mut self, buf: &mut [u8], limit: Option<Duration>) -> io::Result<usize> {
        match &mut self.kind {
            Kind::Tcp(stream) => stream.set_read_timeout(limit)?,
            Kind::Tls(stream) => stream.sock.get_ref().set_read_timeout(limit)?,
            Kind::Serial(framed) => framed.timeout = limit.unwrap_or(SERIAL_REPLY_LIMIT),
        }
        self.read(buf)
    }
}

impl Read for Link {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.kind {
            Kind::Tcp(stream) => stream.read(buf),
            Kind::Tls(stream) => match stream.read(buf) {
                // The server closed without a close_notify: the protocol's own framing tells
                // whether anything is missing, and says so in its terms.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                Ok(n) if n > 0 => Ok(n + read_ahead_records(stream, &mut buf[n..])),
                read => read.map_err(crate::tls::explain_read_error),
            },
            Kind::Serial(framed) => framed.read(buf),
        }
    }
}

/// Decrypts the records already read ahead into `buf`, without a system call: a download is
/// then handed on in large pieces rather than a record (16 KiB) at a time. How many bytes it
/// added. A record that fails is left for the next read to report (rustls keeps the error).
fn read_ahead_records(stream: &mut TlsStream, buf: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buf.len() {
        match stream.conn.reader().read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
        if stream.sock.buffered() == 0
            || !matches!(stream.conn.read_tls(&mut stream.sock), Ok(n) if n > 0)
            || stream.conn.process_new_packets().is_err()
        {
            break;
        }
    }
    filled
}

impl Write for Link {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.kind {
            Kind::Tcp(stream) => stream.write(buf),
            Kind::Tls(stream) => stream.write(buf),
            Kind::Serial(framed) => framed.write(buf),
        }
    }

    /// A frame's head and body in one system call on TCP and TLS (one record), so that a
    /// request leaves in one segment.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match &mut self.kind {
            Kind::Tcp(stream) => stream.write_vectored(bufs),
            Kind::Tls(stream) => stream.write_vectored(bufs),
            Kind::Serial(framed) => framed.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.kind {
            Kind::Tcp(stream) => stream.flush(),
            Kind::Tls(stream) => stream.flush(),
            Kind::Serial(framed) => framed.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_name_tcp_or_a_serial_port() {
        assert_eq!(
            Endpoint::parse("127.0.0.1:8080"),
            Ok(Endpoint::Tcp("127.0.0.1:8080".into()))
        );
        assert_eq!(
            Endpoint::parse("serial:/dev/ttyACM0"),
            Ok(Endpoint::Serial {
                path: "/dev/ttyACM0".into(),
                baud: DEFAULT_BAUD
            })
        );
        let at_speed = Endpoint::parse("serial:/dev/pts/3@9600").unwrap();
        assert_eq!(at_speed.to_string(), "serial:/dev/pts/3@9600");
        assert_eq!(
            Endpoint::parse_with_default_port("tls://files.example", 8090),
            Ok(Endpoint::Tls("files.example:8090".into()))
        );
        assert_eq!(
            Endpoint::parse_with_default_port("::1", 8080),
            Ok(Endpoint::Tcp("[::1]:8080".into()))
        );
        assert!(Endpoint::parse("localhost").is_err());
        for bad in [
            "tls://",
            "127.0.0.1:0",
            "host:port",
            "serial:",
            "serial:@9600",
            "serial:/dev/x@fast",
            "serial:/dev/x@0",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn uart_bridges_are_tcp_addresses_that_carry_link_frames() {
        let bridge = Endpoint::parse_with_default_port("uart+tcp://localhost:7000", 1).unwrap();
        assert_eq!(bridge, Endpoint::UartTcp("localhost:7000".into()));
        assert_eq!(bridge.to_string(), "uart+tcp://localhost:7000");
        for bad in ["uart+tcp://", "uart+tcp:// ", "uart+tcp://host:port"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    /// Linux only: Windows has no pseudo-terminal to stand in for a COM port.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_pty_is_a_serial_line_that_carries_link_frames() {
        use unstick_core::serial_link::{
            Accept, LinkEvent, LinkFrameReader, LinkSender, MAX_ENCODED, RequestReceiver,
            encode_frame,
        };
        // A pseudo-terminal pair stands in for a device's UART.
        use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        // ptsname(3) would answer from one static buffer, shared by every test thread.
        let name = ptsname(&master, Vec::new()).unwrap().into_string().unwrap();
        // The slave side stays open for the whole test, so the master never sees it hung up.
        let _slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&name)
            .unwrap();
        let mut device = std::fs::File::from(master);
        let endpoint = Endpoint::Serial {
            path: name,
            baud: DEFAULT_BAUD,
        };
        let mut link = Link::open(
            &endpoint,
            Some(Duration::from_secs(2)),
            &ClientTls::default(),
        )
        .unwrap();
        assert!(link.is_serial());

        // The device's side: read one frame.
        let mut reader = LinkFrameReader::<64>::new();
        let mut requests = RequestReceiver::new();
        let mut read_frame = |device: &mut std::fs::File| loop {
            let mut byte = [0u8; 1];
            device.read_exact(&mut byte).unwrap();
            if let (_, Some(LinkEvent::Frame(frame))) = reader.feed(&byte) {
                return (
                    frame.header,
                    requests.accept(frame.header),
                    frame.payload.to_vec(),
                );
            }
        };
        link.write_all(b"ping").unwrap();
        let (header, accepted, payload) = read_frame(&mut device);
        assert_eq!(
            (accepted, payload.as_slice()),
            (Accept::Start, &b"ping"[..])
        );
        let request_seq = header.seq;

        // Garbage, a late frame of some older reply, then the reply: only the reply is read.
        let mut device_sender = LinkSender::new(9);
        let mut frame = [0u8; MAX_ENCODED];
        device.write_all(b"\x01\x02garbage\xff").unwrap();
        let n = encode_frame(device_sender.next_header(false), b"stale", &mut frame).unwrap();
        device.write_all(&frame[..n]).unwrap();
        device_sender.answer(request_seq);
        for piece in [&b"po"[..], b"ng"] {
            let n = encode_frame(device_sender.next_header(false), piece, &mut frame).unwrap();
            device.write_all(&frame[..n]).unwrap();
        }
        let mut got = [0u8; 4];
        link.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"pong");

        // The next request is a start frame again; a reply with a frame missing is an error.
        link.start_request();
        link.write_all(b"again").unwrap();
        let (header, accepted, _) = read_frame(&mut device);
        assert_eq!(accepted, Accept::Start);
        device_sender.answer(header.seq);
        let n = encode_frame(device_sender.next_header(false), b"a", &mut frame).unwrap();
        device.write_all(&frame[..n]).unwrap();
        device_sender.next_header(false);
        let n = encode_frame(device_sender.next_header(false), b"c", &mut frame).unwrap();
        device.write_all(&frame[..n]).unwrap();
        let mut got = [0u8; 1];
        link.read_exact(&mut got).unwrap();
        let lost = link.read_exact(&mut got).unwrap_err();
        assert!(lost.to_string().contains("was lost"), "{lost}");
    }
}
