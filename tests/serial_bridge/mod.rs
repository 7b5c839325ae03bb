//! A pseudo-terminal standing in for a device's UART, bridged to a TCP endpoint, with a line
//! that can flip and drop the client's bytes (used by `serial_link.rs` and `device.rs`).
#![allow(dead_code)]

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// A pseudo-terminal whose far side is bridged to a TCP server.
pub struct SerialBridge {
    /// The address a client uses: `serial:/dev/pts/N`.
    pub addr: String,
    stop: Arc<AtomicBool>,
    /// Flip the byte at every this many bytes from the client (0: never).
    pub flip_every: Arc<AtomicUsize>,
    /// Drop the byte at every this many bytes from the client (0: never).
    pub drop_every: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
    /// Held so that the pty stays usable between client runs.
    _slave: OwnedFd,
}

impl SerialBridge {
    /// A pty bridged to `server`. With `drop_on_gap`, the bridge drops its TCP connection once
    /// the line has been quiet for 300 ms both ways, as a device drops a half request (for a
    /// server that is not a device); without it, the far end resynchronises by itself.
    pub fn to(server: &str, drop_on_gap: bool) -> SerialBridge {
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
        let thread = thread::spawn({
            let faults = Faults {
                flip_every: Arc::clone(&flip_every),
                drop_every: Arc::clone(&drop_every),
            };
            let (stop, server) = (Arc::clone(&stop), server.to_owned());
            move || relay(master, slave_fd, &server, &stop, &faults, drop_on_gap)
        });
        SerialBridge {
            addr: format!("serial:{name}@115200"),
            stop,
            flip_every,
            drop_every,
            thread: Some(thread),
            _slave: slave,
        }
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
}

/// How long the line stays quiet before the far end drops a half-received request.
const DEVICE_GAP: Duration = Duration::from_millis(300);

/// Carries bytes between the pty and the server until told to stop: a new TCP connection for
/// the first byte after the last one was dropped, by the server or by a quiet gap.
fn relay(
    mut pty: File,
    slave_fd: i32,
    server: &str,
    stop: &AtomicBool,
    faults: &Faults,
    drop_on_gap: bool,
) {
    let mut tcp: Option<TcpStream> = None;
    let mut buf = [0u8; 64 * 1024];
    let mut counted = 0usize;
    let mut last_traffic = Instant::now();
    let mut tainted = false;
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
        if drop_on_gap && tainted && tcp.is_some() && last_traffic.elapsed() >= DEVICE_GAP {
            tcp = None;
            tainted = false;
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
                if drop > 0 && counted % drop == 0 {
                    tainted = true;
                    continue;
                }
                let flipped = flip > 0 && counted % flip == 0;
                tainted |= flipped;
                kept.push(if flipped { byte ^ 0x10 } else { byte });
            }
            if tcp.is_none() {
                tcp = TcpStream::connect(server).ok();
            }
            if let Some(stream) = &mut tcp
                && stream.write_all(&kept).is_err()
            {
                tcp = None;
            }
        }
        if fds[1].revents & (libc::POLLIN | libc::POLLHUP) != 0
            && let Some(stream) = &mut tcp
        {
            match stream.read(&mut buf) {
                Ok(0) => tcp = None,
                Ok(n) => {
                    last_traffic = Instant::now();
                    write_some(&mut pty, &buf[..n]);
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
