//! A serial line carrying link frames (`unstick_core::serial_link`): what a client writes goes
//! out in numbered, CRC-checked frames, the first of each request marked as its start; what it
//! reads is the payload of the reply's frames, in order, the rest dropped. Damaged frames and
//! garbage are skipped at the next zero on the line, with no quiet gap; a reply with a frame
//! missing, or a device's notice that it dropped the request, is an error at once.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use unstick_core::serial_link::{
    Accept, Dropped, LinkEvent, LinkFrameReader, LinkSender, MAX_ENCODED, MAX_FRAME, MTU, Notice,
    ReplyReceiver, encode_frame,
};

/// The serial port as the system has it: a terminal device on Unix, a COM port on Windows.
#[cfg(unix)]
pub(super) type SerialPortNative = serialport::TTYPort;
/// The serial port as the system has it: a terminal device on Unix, a COM port on Windows.
#[cfg(windows)]
pub(super) type SerialPortNative = serialport::COMPort;

/// The byte stream the frames travel on.
pub(super) enum Line {
    /// A serial port.
    Port(Box<SerialPortNative>),
    /// A TCP connection to a UART bridge (QEMU's `-serial tcp:`, a ser2net-style server).
    Bridge(TcpStream),
}

impl Line {
    fn read_within(&mut self, buf: &mut [u8], wait: Duration) -> io::Result<usize> {
        // A zero timeout means "no limit" to a socket.
        let wait = wait.max(Duration::from_millis(1));
        match self {
            Line::Port(port) => {
                serialport::SerialPort::set_timeout(port.as_mut(), wait)
                    .map_err(io::Error::from)?;
                port.read(buf)
            }
            Line::Bridge(stream) => {
                stream.set_read_timeout(Some(wait))?;
                stream.read(buf)
            }
        }
    }
}

/// Bytes read from the line at once.
const RAW_READ: usize = 4096;

/// A line of link frames, one client's end of it.
pub(super) struct FramedLine {
    pub(super) line: Line,
    sender: LinkSender,
    replies: ReplyReceiver,
    reader: Box<LinkFrameReader<MAX_FRAME>>,
    /// Bytes read from the line and not yet fed to `reader`.
    raw: Box<[u8; RAW_READ]>,
    raw_start: usize,
    raw_end: usize,
    /// The payload of the last frame taken, and how much of it was read.
    payload: Vec<u8>,
    payload_read: usize,
    /// One encoded frame on its way out.
    encoded: Box<[u8; MAX_ENCODED]>,
    /// How long a read waits for the next payload byte.
    pub(super) timeout: Duration,
    /// Damaged frames dropped since the line was opened, and the last one's reason.
    dropped: u64,
    last_drop: Option<Dropped>,
}

impl FramedLine {
    /// Frames on `line`; the first frame written starts a request.
    pub(super) fn new(line: Line, timeout: Duration) -> FramedLine {
        // A first number that differs from run to run: a device's late reply to an earlier
        // client then echoes a number this one does not wait for.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let first_seq = (now.subsec_nanos() ^ std::process::id()) as u8;
        let mut sender = LinkSender::new(first_seq);
        sender.start_request();
        FramedLine {
            line,
            sender,
            replies: ReplyReceiver::new(),
            reader: Box::default(),
            raw: Box::new([0; RAW_READ]),
            raw_start: 0,
            raw_end: 0,
            payload: Vec::with_capacity(MTU),
            payload_read: 0,
            encoded: Box::new([0; MAX_ENCODED]),
            timeout,
            dropped: 0,
            last_drop: None,
        }
    }

    /// Marks the next frame written as the start of a request.
    pub(super) fn start_request(&mut self) {
        self.sender.start_request();
    }

    /// Whether payload, or line bytes that may hold some, are waiting.
    pub(super) fn has_buffered(&self) -> bool {
        self.payload_read < self.payload.len() || self.raw_start < self.raw_end
    }

    fn lost_error(&self, expected: u8, got: u8) -> io::Error {
        let why = match self.last_drop {
            Some(drop) => format!("the last one: {drop}"),
            None => "none arrived damaged: one was lost whole".to_owned(),
        };
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "a link frame of the reply was lost on the serial line (frame {got} came where \
                 {expected} was due; {} damaged frames dropped, {why}): the reply is \
                 incomplete; retry",
                self.dropped
            ),
        )
    }
}

impl Read for FramedLine {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            if self.payload_read < self.payload.len() {
                let n = buf.len().min(self.payload.len() - self.payload_read);
                buf[..n].copy_from_slice(&self.payload[self.payload_read..self.payload_read + n]);
                self.payload_read += n;
                return Ok(n);
            }
            if self.raw_start == self.raw_end {
                let wait = deadline.saturating_duration_since(Instant::now());
                if wait.is_zero() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no reply on the serial line in time",
                    ));
                }
                let n = self.line.read_within(&mut self.raw[..], wait)?;
                if n == 0 {
                    // A bridge closed its connection.
                    return Ok(0);
                }
                self.raw_start = 0;
                self.raw_end = n;
            }
            let (used, event) = self.reader.feed(&self.raw[self.raw_start..self.raw_end]);
            self.raw_start += used;
            match event {
                Some(LinkEvent::Frame(frame)) => match self.replies.accept(frame.header) {
                    Accept::Start | Accept::Next if frame.header.notice => {
                        let message = match Notice::decode(frame.payload) {
                            Some(notice) => notice.to_string(),
                            None => "the device dropped the request (with a notice this \
                                     version cannot read); retry"
                                .to_owned(),
                        };
                        // The next request starts afresh.
                        self.sender.start_request();
                        return Err(io::Error::new(io::ErrorKind::InvalidData, message));
                    }
                    Accept::Start | Accept::Next => {
                        self.payload.clear();
                        self.payload.extend_from_slice(frame.payload);
                        self.payload_read = 0;
                    }
                    Accept::Stale => {}
                    Accept::Gap { expected, got } => {
                        self.sender.start_request();
                        return Err(self.lost_error(expected, got));
                    }
                },
                Some(LinkEvent::Dropped(why)) => {
                    self.dropped += 1;
                    self.last_drop = Some(why);
                }
                None => {}
            }
        }
    }
}

impl Write for FramedLine {
    /// Sends up to [`MTU`] bytes of `buf` as one frame, at once.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = buf.len().min(MTU);
        let header = self.sender.next_header(false);
        if header.start {
            // What is left of an earlier reply is no answer to this request.
            self.payload.clear();
            self.payload_read = 0;
            self.replies.expect_reply_to(header.seq);
        }
        let len = encode_frame(header, &buf[..n], &mut self.encoded[..])
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let frame = &self.encoded[..len];
        match &mut self.line {
            Line::Port(port) => port.write_all(frame)?,
            Line::Bridge(stream) => stream.write_all(frame)?,
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.line {
            Line::Port(port) => port.flush(),
            Line::Bridge(stream) => stream.flush(),
        }
    }
}
