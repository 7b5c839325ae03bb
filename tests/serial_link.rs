//! The clients over a serial line: a pseudo-terminal stands in for a device's UART, and a
//! bridge carries its bytes to a real server over loopback TCP. It behaves as a device does
//! (docs/PROTOCOL.md, "Serial lines"): once the line has been quiet for 100 ms both ways, it
//! drops the TCP connection, and with it whatever the server had of a request. The same bridge
//! can flip and drop bytes on the way, as a noisy line does: nothing wrong is ever stored or
//! run, and the link recovers.

mod serve_common;
mod shell_common;

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serve_common::{Served, run_client};

/// How long one client command may take.
const LIMIT: Duration = Duration::from_secs(60);

/// A pseudo-terminal whose far side is bridged to a TCP server.
struct SerialBridge {
    /// The address a client uses: `serial:/dev/pts/N`.
    addr: String,
    stop: Arc<AtomicBool>,
    /// Flip the byte at every this many bytes from the client (0: never).
    flip_every: Arc<AtomicUsize>,
    /// Drop the byte at every this many bytes from the client (0: never).
    drop_every: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
    /// Held so that the pty stays usable between client runs.
    _slave: OwnedFd,
}

impl SerialBridge {
    fn to(server: &str) -> SerialBridge {
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
        // SAFETY: ttyname returns a static NUL-terminated string for a terminal descriptor.
        let name = unsafe { std::ffi::CStr::from_ptr(libc::ttyname(slave.as_raw_fd())) }
            .to_str()
            .expect("a UTF-8 pty name")
            .to_owned();
        let stop = Arc::new(AtomicBool::new(false));
        let flip_every = Arc::new(AtomicUsize::new(0));
        let drop_every = Arc::new(AtomicUsize::new(0));
        let thread = thread::spawn({
            let faults = Faults {
                flip_every: Arc::clone(&flip_every),
                drop_every: Arc::clone(&drop_every),
            };
            let (stop, server) = (Arc::clone(&stop), server.to_owned());
            move || relay(master, &server, &stop, &faults)
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
const DEVICE_GAP: Duration = Duration::from_millis(100);

/// Carries bytes between the pty and the server until told to stop: a new TCP connection for
/// the first byte after the last one was dropped, by the server or by a quiet gap.
fn relay(mut pty: File, server: &str, stop: &AtomicBool, faults: &Faults) {
    let mut tcp: Option<TcpStream> = None;
    let mut buf = [0u8; 64 * 1024];
    let mut counted = 0usize;
    let mut last_traffic = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        if tcp.is_some() && last_traffic.elapsed() >= DEVICE_GAP {
            tcp = None;
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
                    continue;
                }
                kept.push(if flip > 0 && counted % flip == 0 {
                    byte ^ 0x10
                } else {
                    byte
                });
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
                    let _ = pty.write_all(&buf[..n]);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => tcp = None,
            }
        }
    }
}

fn ok(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

#[test]
fn files_move_over_a_serial_line_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let server = Served::ftp(&root, &[]);
    let bridge = SerialBridge::to(&server.addr);
    let work = dir.path();
    for (name, len) in [("empty", 0), ("one", 1), ("big", 200 * 1024)] {
        let data = pattern(len, len as u32 + 7);
        std::fs::write(work.join(name), &data).unwrap();
        ok(&run_client(
            &["ftp", "put", "--addr", &bridge.addr, name, name],
            Some(work),
            LIMIT,
        ));
        assert_eq!(
            std::fs::read(root.join(name)).unwrap(),
            data,
            "{name} stored"
        );
        let back = format!("{name}.back");
        ok(&run_client(
            &["ftp", "get", "--addr", &bridge.addr, name, &back],
            Some(work),
            LIMIT,
        ));
        assert_eq!(
            std::fs::read(work.join(&back)).unwrap(),
            data,
            "{name} fetched"
        );
    }
    let listing = ok(&run_client(
        &["ftp", "ls", "--addr", &bridge.addr],
        Some(work),
        LIMIT,
    ));
    for name in ["empty", "one", "big"] {
        assert!(listing.contains(name), "{listing}");
    }
    ok(&run_client(
        &["ftp", "delete", "--addr", &bridge.addr, "one"],
        Some(work),
        LIMIT,
    ));
    assert!(!root.join("one").exists());
}

#[test]
fn commands_run_over_a_serial_line_with_their_status_and_stderr() {
    let dir = tempfile::tempdir().expect("tempdir");
    let workdir = dir.path().to_str().unwrap();
    let server = Served::shell(&["--workdir", workdir]);
    let bridge = SerialBridge::to(&server.addr);
    let out = run_client(
        &[
            "shell",
            "connect",
            &bridge.addr,
            "-c",
            "echo hi; echo oops >&2; exit 3",
        ],
        None,
        LIMIT,
    );
    assert_eq!(out.stdout, b"hi\n");
    assert_eq!(out.stderr, b"oops\n");
    assert_eq!(out.status.code(), Some(3));
}

/// Uploads `data` as `copy0`, `copy1`, ... over `bridge` while the line misbehaves; returns how
/// many were refused. Every upload that went through stored exactly `data`, and every refused
/// one stored nothing.
fn noisy_uploads(
    bridge: &SerialBridge,
    root: &Path,
    work: &Path,
    data: &[u8],
    rounds: usize,
) -> usize {
    let mut refused = 0;
    for round in 0..rounds {
        let name = format!("copy{round}");
        let out = run_client(
            &[
                "ftp",
                "put",
                "--addr",
                &bridge.addr,
                "--timeout",
                "2",
                "data",
                &name,
            ],
            Some(work),
            LIMIT,
        );
        let stored = root.join(&name);
        if out.status.success() {
            assert_eq!(std::fs::read(&stored).unwrap(), data, "round {round}");
        } else {
            refused += 1;
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!err.trim().is_empty(), "round {round}: a failure says why");
            assert!(
                !stored.exists(),
                "round {round}: something was stored: {err}"
            );
        }
    }
    refused
}

#[test]
fn a_noisy_line_never_stores_a_wrong_byte_and_the_link_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let server = Served::ftp(&root, &[]);
    let bridge = SerialBridge::to(&server.addr);
    let work = dir.path();
    let data = pattern(64 * 1024, 3);
    std::fs::write(work.join("data"), &data).unwrap();
    // One flipped byte in every 5,000 from the client: each upload meets several.
    bridge.flip_every.store(5_000, Ordering::SeqCst);
    assert!(
        noisy_uploads(&bridge, &root, work, &data, 4) > 0,
        "flips went unnoticed"
    );
    bridge.flip_every.store(0, Ordering::SeqCst);
    // One lost byte in every 30,000: a frame comes up short, and the side waiting for the
    // missing byte gives up (the client after its timeout, the far end after a quiet gap).
    bridge.drop_every.store(30_000, Ordering::SeqCst);
    assert!(
        noisy_uploads(&bridge, &root, work, &data, 3) > 0,
        "losses went unnoticed"
    );
    bridge.drop_every.store(0, Ordering::SeqCst);
    // Once the line is clean again, the next transfer goes through: the link recovered.
    ok(&run_client(
        &["ftp", "put", "--addr", &bridge.addr, "data", "clean"],
        Some(work),
        LIMIT,
    ));
    assert_eq!(std::fs::read(root.join("clean")).unwrap(), data);
}

#[test]
fn a_flipped_command_is_refused_never_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let workdir = dir.path().to_str().unwrap();
    let server = Served::shell(&["--workdir", workdir]);
    let bridge = SerialBridge::to(&server.addr);
    // The command's bytes come after a head of about 80 bytes: flip one of them.
    bridge.flip_every.store(90, Ordering::SeqCst);
    let out = run_client(
        &[
            "shell",
            "connect",
            &bridge.addr,
            "-c",
            "touch ran-0123456789",
        ],
        None,
        LIMIT,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad_frame") || err.contains("checksum"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "something ran"
    );
}
