//! A pseudo-terminal standing in for a device's UART, bridged to a TCP endpoint, with a line
//! that can flip and drop the client's bytes (used by `serial_link.rs` and `device.rs`). In
//! front of a server that speaks plain TCP, the bridge plays a device's link layer: it takes the
//! client's link frames as a device does and frames the server's replies.
#![allow(dead_code)]

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use unstick_core::serial_link::{
    Accept, LinkEvent, LinkFrameReader, LinkSender, MAX_ENCODED, MAX_FRAME, MTU, Notice,
    NoticeReason, RequestReceiver, encode_frame,
};

/// A pseudo-terminal whose far side is bridged to a TCP server.
pub struct SerialBridge {
    /// The address a client uses: `serial:/dev/pts/N`.
    pub addr: String,
    stop: Arc<AtomicBool>,
    /// Flip the byte at every this many bytes from the client (0: never).
    pub flip_every: Arc<AtomicUsize>,
    /// Drop the byte at every this many bytes from the client (0: never).
    pub drop_every: Arc<AtomicUsize>,
    /// Bytes to pass on as if the client had sent them (noise on the line).
    injected: Arc<Mutex<Vec<u8>>>,
    /// Damaged link frames the bridge dropped (when it plays the link layer).
    dropped: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
    /// Held so that the pty stays usable between client runs.
    _slave: OwnedFd,
}

impl SerialBridge {
    /// A pty bridged to `server`. With `link_layer`, `server` speaks plain TCP and the bridge
    /// plays the device's link layer (docs/PROTOCOL.md, "Serial lines"): each start frame opens
    /// a new connection (the server's view of "a request, from scratch"), the frames that follow
    /// in order are passed on, a gap or 300 ms of silence inside a request after a damaged frame
    /// drops the connection with a notice, and the server's replies go back in link frames.
    /// Without it, bytes pass as they are (to a device, which frames its own).
    pub fn to(server: &str, link_layer: bool) -> SerialBridge {
        let (mut master, mut slave) = (0, 0);
        // SAFETY: openpty writes two descriptors into the integers we pass; the name and the
        // settings pointers may be null.
        let opened = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(opened, 0, "openpty failed");
        // SAFETY: both descriptors were just opened for us and are owned from here on.
        let (master, slave) = unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        // Raw from the start, so that nothing is echoed before a client sets the port up.
        // SAFETY: tcgetattr/tcsetattr on a descriptor we own, with a valid termios struct.
        unsafe {
            let mut mode: libc::termios = std::mem::zeroed();
            libc::tcgetattr(slave.as_raw_fd(), &mut mode);
            libc::cfmakeraw(&mut mode);
            libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &mode);
        }
        let name = pty_name(&master);
        let stop = Arc::new(AtomicBool::new(false));
        let flip_every = Arc::new(AtomicUsize::new(0));
        let drop_every = Arc::new(AtomicUsize::new(0));
        let slave_fd = slave.as_raw_fd();
        let injected = Arc::new(Mutex::new(Vec::new()));
        let dropped = Arc::new(AtomicUsize::new(0));
        let thread = thread::spawn({
            let faults = Faults {
                flip_every: Arc::clone(&flip_every),
                drop_every: Arc::clone(&drop_every),
                injected: Arc::clone(&injected),
                dropped: Arc::clone(&dropped),
            };
            let (stop, server) = (Arc::clone(&stop), server.to_owned());
            move || relay(master, slave_fd, &server, &stop, &faults, link_layer)
        });
        SerialBridge {
            addr: format!("serial:{name}@115200"),
            stop,
            flip_every,
            drop_every,
            injected,
            dropped,
            thread: Some(thread),
            _slave: slave,
        }
    }
}

impl SerialBridge {
    /// Puts `bytes` on the line towards the server, as if the client had sent them, and returns
    /// once the bridge has passed them on.
    pub fn inject_from_client(&self, bytes: &[u8]) {
        self.injected.lock().unwrap().extend_from_slice(bytes);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.injected.lock().unwrap().is_empty() {
            assert!(
                Instant::now() < deadline,
                "the bridge took no injected bytes"
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Damaged link frames dropped so far, when the bridge plays the link layer.
    pub fn dropped_frames(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }
}

impl Drop for SerialBridge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the line does to the client's bytes.
struct Faults {
    flip_every: Arc<AtomicUsize>,
    drop_every: Arc<AtomicUsize>,
    injected: Arc<Mutex<Vec<u8>>>,
    dropped: Arc<AtomicUsize>,
}

/// How long a request's frames may stop, after a damaged one, before it is dropped. Shorter
/// than the device's second of silence (`REQUEST_IDLE` in examples/device) on purpose: it
/// applies only after a damaged frame, and keeps the noisy-line tests short.
const DEVICE_GAP: Duration = Duration::from_millis(300);

/// The device's side of the link layer, in front of a plain TCP server.
struct DeviceLink {
    reader: Box<LinkFrameReader<MAX_FRAME>>,
    requests: RequestReceiver,
    sender: LinkSender,
    dropped: u32,
    /// A damaged frame came since the current request started.
    tainted: bool,
}

impl DeviceLink {
    fn new() -> DeviceLink {
        DeviceLink {
            reader: Box::default(),
            requests: RequestReceiver::new(),
            sender: LinkSender::new(0),
            dropped: 0,
            tainted: false,
        }
    }

    /// Frames `bytes` from the server (or a notice) to the pty.
    fn send(&mut self, pty: &mut File, bytes: &[u8], notice: bool) {
        let mut frame = [0u8; MAX_ENCODED];
        for piece in bytes.chunks(MTU) {
            let n = encode_frame(self.sender.next_header(notice), piece, &mut frame)
                .expect("a piece of MTU bytes fits");
            write_some(pty, &frame[..n]);
        }
    }

    fn notice(&mut self, pty: &mut File, reason: NoticeReason) {
        let notice = Notice {
            reason,
            dropped_frames: self.dropped,
        };
        self.send(pty, &notice.encode(), true);
    }

    /// Takes the client's bytes: payload for the server goes out on `tcp`, a new connection at
    /// each start frame.
    fn receive(
        &mut self,
        mut input: &[u8],
        pty: &mut File,
        tcp: &mut Option<TcpStream>,
        server: &str,
        dropped: &AtomicUsize,
    ) {
        while !input.is_empty() {
            let (used, event) = self.reader.feed(input);
            input = &input[used..];
            match event {
                Some(LinkEvent::Frame(frame)) => match self.requests.accept(frame.header) {
                    Accept::Start => {
                        self.sender.answer(frame.header.seq);
                        self.tainted = false;
                        *tcp = TcpStream::connect(server).ok();
                        pass_on(tcp, frame.payload);
                    }
                    Accept::Next => pass_on(tcp, frame.payload),
                    Accept::Stale => {}
                    Accept::Gap { .. } => {
                        *tcp = None;
                        self.notice(pty, NoticeReason::Gap);
                    }
                },
                Some(LinkEvent::Dropped(_)) => {
                    dropped.fetch_add(1, Ordering::SeqCst);
                    self.dropped += 1;
                    self.tainted = true;
                }
                None => {}
            }
        }
    }
}

fn pass_on(tcp: &mut Option<TcpStream>, payload: &[u8]) {
    if let Some(stream) = tcp
        && stream.write_all(payload).is_err()
    {
        *tcp = None;
    }
}

/// Carries bytes between the pty and the server until told to stop: with `link_layer`, as
/// [`SerialBridge::to`] says; without it, a new TCP connection for the first byte after the
/// last one was dropped by the server.
fn relay(
    mut pty: File,
    slave_fd: i32,
    server: &str,
    stop: &AtomicBool,
    faults: &Faults,
    link_layer: bool,
) {
    let mut tcp: Option<TcpStream> = None;
    let mut device = link_layer.then(DeviceLink::new);
    let mut buf = [0u8; 64 * 1024];
    let mut counted = 0usize;
    let mut last_traffic = Instant::now();
    // Replies go to the pty without blocking: a client that left without reading one must not
    // stall the bridge (its bytes are dropped, as a line drops what nobody reads).
    // SAFETY: fcntl on a descriptor we own, with plain integer flags.
    unsafe {
        let flags = libc::fcntl(pty.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(pty.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    while !stop.load(Ordering::SeqCst) {
        // A client holds the port exclusively (TIOCEXCL). The kernel clears that when the
        // port's last user closes it, but this test keeps the pty open on its side, so a
        // client that exits without closing (an error path) would lock out the next one.
        // SAFETY: TIOCNXCL on a terminal descriptor we own takes no argument.
        unsafe { libc::ioctl(slave_fd, libc::TIOCNXCL) };
        // Only a line that lost or flipped bytes leaves a half request behind; a clean one may
        // be quiet because the server is working.
        if let Some(device) = &mut device
            && device.tainted
            && device.requests.in_request()
            && last_traffic.elapsed() >= DEVICE_GAP
        {
            tcp = None;
            device.tainted = false;
            device.requests.end_request();
            device.notice(&mut pty, NoticeReason::Silence);
        }
        let noise = std::mem::take(&mut *faults.injected.lock().unwrap());
        if !noise.is_empty() {
            match &mut device {
                Some(device) => device.receive(&noise, &mut pty, &mut tcp, server, &faults.dropped),
                None => {
                    if tcp.is_none() {
                        tcp = TcpStream::connect(server).ok();
                    }
                    pass_on(&mut tcp, &noise);
                }
            }
        }
        let mut fds = [
            libc::pollfd {
                fd: pty.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: tcp.as_ref().map_or(-1, |t| t.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfd structs (a negative fd is ignored by poll).
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, 10) };
        if ready <= 0 {
            continue;
        }
        if fds[0].revents & libc::POLLIN != 0 {
            let Ok(n) = pty.read(&mut buf) else { continue };
            last_traffic = Instant::now();
            let (flip, drop) = (
                faults.flip_every.load(Ordering::SeqCst),
                faults.drop_every.load(Ordering::SeqCst),
            );
            let mut kept = Vec::with_capacity(n);
            for &byte in &buf[..n] {
                counted += 1;
                if drop > 0 && counted.is_multiple_of(drop) {
                    continue;
                }
                let flipped = flip > 0 && counted.is_multiple_of(flip);
                kept.push(if flipped { byte ^ 0x10 } else { byte });
            }
            if let Some(device) = &mut device {
                device.receive(&kept, &mut pty, &mut tcp, server, &faults.dropped);
            } else {
                if tcp.is_none() {
                    tcp = TcpStream::connect(server).ok();
                }
                pass_on(&mut tcp, &kept);
            }
        }
        if fds[1].revents & (libc::POLLIN | libc::POLLHUP) != 0
            && let Some(stream) = &mut tcp
        {
            match stream.read(&mut buf) {
                Ok(0) => tcp = None,
                Ok(n) => {
                    last_traffic = Instant::now();
                    match &mut device {
                        Some(device) => device.send(&mut pty, &buf[..n], false),
                        None => write_some(&mut pty, &buf[..n]),
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => tcp = None,
            }
        }
    }
}

/// Writes `bytes` to the non-blocking pty, waiting briefly for room; what finds none within a
/// second is dropped.
fn write_some(pty: &mut File, mut bytes: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while !bytes.is_empty() && Instant::now() < deadline {
        match pty.write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(2));
            }
            Err(_) => return,
        }
    }
}

/// The name of the pty whose master is `master` (`ptsname_r`: tests make ptys on several
/// threads at once, and `ttyname` answers from one static buffer).
pub fn pty_name(master: &impl AsRawFd) -> String {
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: ptsname_r writes at most `name.len()` bytes, NUL included, into our buffer.
    let failed = unsafe { libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()) };
    assert_eq!(failed, 0, "ptsname_r failed");
    // SAFETY: on success the buffer holds a NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
        .to_str()
        .expect("a UTF-8 pty name")
        .to_owned()
}
