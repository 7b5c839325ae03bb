//! What the issue-7 end-to-end tests share: any `unstick` server as a child process whose stderr
//! (the audit log) is captured, signals, bounded waits, held connections for floods, raw frames
//! for the file server, and views of `/proc` (with `shell_common`, which every user of this
//! module declares too).
#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

pub use crate::shell_common::{eventually, status_kib as status_field};

/// The binary under test.
pub const UNSTICK: &str = env!("CARGO_BIN_EXE_unstick");

/// How long a server may take to print its address.
const START_LIMIT: Duration = Duration::from_secs(20);

/// `unstick ARGS...` in `cwd` (if given), stdin closed, stdout and stderr piped, no token from
/// the environment.
pub fn unstick_command(args: &[&str], cwd: Option<&Path>) -> Command {
    let mut command = Command::new(UNSTICK);
    command
        .args(args)
        .env_remove("UNSTICK_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    command
}

/// An `unstick` server process: its address, its captured stderr; killed and reaped on drop.
pub struct Served {
    child: Child,
    /// The address it printed as its first line.
    pub addr: String,
    stdout_lines: Receiver<String>,
    log: Arc<Mutex<String>>,
    exited: Option<ExitStatus>,
}

impl Served {
    /// `unstick shell serve --listen 127.0.0.1:0 ARGS...`.
    pub fn shell(args: &[&str]) -> Served {
        let mut all = vec!["shell", "serve", "--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        Served::start(&all, None)
    }

    /// `unstick ftp serve --listen 127.0.0.1:0 --root ROOT ARGS...`.
    pub fn ftp(root: &Path, args: &[&str]) -> Served {
        let root = root.to_str().expect("UTF-8 root");
        let mut all = vec!["ftp", "serve", "--listen", "127.0.0.1:0", "--root", root];
        all.extend_from_slice(args);
        Served::start(&all, None)
    }

    /// `unstick ARGS...` (in `cwd`, if given), waiting for the address line on stdout.
    pub fn start(args: &[&str], cwd: Option<&Path>) -> Served {
        let mut served = Served::spawn(args, cwd);
        match served.next_stdout_line(START_LIMIT) {
            Some(line) if line.trim().starts_with("127.0.0.1:") => {
                served.addr = line.trim().to_string();
                served
            }
            other => {
                // The server ended (an unknown option, say) or printed something else.
                let status = served.wait_exit(Duration::from_secs(2));
                thread::sleep(Duration::from_millis(100));
                panic!(
                    "`unstick {}` did not print its address (got {other:?}, status {status:?}); stderr:\n{}",
                    args.join(" "),
                    served.log()
                );
            }
        }
    }

    /// `unstick ARGS...` with stdout and stderr captured, without waiting for anything.
    pub fn spawn(args: &[&str], cwd: Option<&Path>) -> Served {
        let mut command = unstick_command(args, cwd);
        let mut child = command.spawn().expect("spawn unstick");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (lines, stdout_lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        // The log is always drained, so a chatty server never blocks on a full pipe.
        let log = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&log);
        thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => sink
                        .lock()
                        .expect("log lock")
                        .push_str(&String::from_utf8_lossy(&line)),
                }
            }
        });
        Served {
            child,
            addr: String::new(),
            stdout_lines,
            log,
            exited: None,
        }
    }

    /// The next line the server prints on stdout, waiting at most `limit`.
    pub fn next_stdout_line(&mut self, limit: Duration) -> Option<String> {
        self.stdout_lines.recv_timeout(limit).ok()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Sends `signal` (`libc::SIGTERM`, ...) to the server.
    pub fn signal(&self, signal: libc::c_int) {
        send_signal(self.pid(), signal);
    }

    /// Waits up to `limit` for the server to exit; its status, or `None` if it still runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        if self.exited.is_some() {
            return self.exited;
        }
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.exited = Some(status);
                return self.exited;
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything the server wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// The log's lines so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log().lines().map(str::to_string).collect()
    }

    /// Waits up to `limit` for a log line that satisfies `wanted`; that line.
    pub fn wait_log_line(&self, limit: Duration, wanted: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(line) = self.log_lines().into_iter().find(|l| wanted(l)) {
                return Some(line);
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// A `/proc/PID/status` field of the server, as a number (`Threads`, `VmRSS` in KiB).
    pub fn status_field(&self, field: &str) -> u64 {
        status_field(self.pid(), field)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `kill(pid, signal)`; whether it was delivered.
pub fn send_signal(pid: u32, signal: libc::c_int) -> bool {
    // SAFETY: kill(2) has no memory effects; the pid is one of this test's children (or a
    // process one of them reported), and a stale pid only makes it fail.
    unsafe { libc::kill(pid as libc::pid_t, signal) == 0 }
}

/// `kill(-pgid, signal)`: the signal to every process of group `pgid`; whether it was sent.
pub fn send_signal_to_group(pgid: u32, signal: libc::c_int) -> bool {
    // SAFETY: kill(2) has no memory effects; the group is one a test's command reported as
    // its own, and a stale group id only makes it fail.
    unsafe { libc::kill(-(pgid as libc::pid_t), signal) == 0 }
}

/// Whether process `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].trim_start().chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}

/// A client process, killed and reaped on drop.
pub struct ClientProcess(pub Option<Child>);

impl ClientProcess {
    /// `unstick ARGS...` with stdin closed and stdout and stderr piped.
    pub fn spawn(args: &[&str], cwd: Option<&Path>) -> ClientProcess {
        let mut command = unstick_command(args, cwd);
        ClientProcess(Some(command.spawn().expect("spawn unstick client")))
    }

    /// Waits up to `limit` for it to end; its output. Kills it and fails past the limit.
    pub fn finish(mut self, limit: Duration) -> Output {
        let mut child = self.0.take().expect("running");
        let mut stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let out = thread::spawn(move || {
            let mut all = Vec::new();
            let _ = stdout.read_to_end(&mut all);
            all
        });
        let err = thread::spawn(move || {
            let mut all = Vec::new();
            let _ = stderr.read_to_end(&mut all);
            all
        });
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("client process ran past {limit:?}");
            }
            thread::sleep(Duration::from_millis(10));
        };
        Output {
            status,
            stdout: out.join().expect("stdout reader"),
            stderr: err.join().expect("stderr reader"),
        }
    }
}

impl Drop for ClientProcess {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `unstick ARGS...` to its end, within `limit`.
pub fn run_client(args: &[&str], cwd: Option<&Path>, limit: Duration) -> Output {
    ClientProcess::spawn(args, cwd).finish(limit)
}

/// Raises this process's open-file soft limit to its hard limit (children inherit it); the new
/// soft limit.
pub fn raise_fd_limit() -> libc::rlim_t {
    // SAFETY: getrlimit/setrlimit with a valid, initialised rlimit struct.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
        limit.rlim_cur
    }
}

/// What a held connection looks like from the client side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Nothing more to read, still connected.
    Open,
    /// The server closed it (end of stream, or a reset).
    Closed,
}

/// A client connection opened and then left alone, or fed a byte at a time; reset (not left in
/// TIME_WAIT) when dropped.
pub struct Held {
    pub stream: TcpStream,
    /// Bytes the server sent.
    pub received: Vec<u8>,
    /// Bytes of `script` sent so far.
    pub sent: usize,
    pub closed: bool,
}

impl Held {
    /// Connects to `addr` within `limit`; `None` if that failed.
    pub fn connect(addr: &str, limit: Duration) -> Option<Held> {
        let addr: SocketAddr = addr.parse().expect("socket address");
        let stream = TcpStream::connect_timeout(&addr, limit).ok()?;
        stream.set_nonblocking(true).expect("nonblocking");
        Some(Held {
            stream,
            received: Vec::new(),
            sent: 0,
            closed: false,
        })
    }

    /// Reads whatever the server sent without waiting; whether the connection is still open.
    pub fn poll(&mut self) -> Seen {
        if self.closed {
            return Seen::Closed;
        }
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.closed = true;
                    return Seen::Closed;
                }
                Ok(n) => self.received.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Seen::Open,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.closed = true;
                    return Seen::Closed;
                }
            }
        }
    }

    /// Sends the next byte of `script` (if the connection is open and bytes remain).
    pub fn drip(&mut self, script: &[u8]) {
        if self.poll() == Seen::Closed || self.sent >= script.len() {
            return;
        }
        match self.stream.write(&script[self.sent..self.sent + 1]) {
            Ok(n) => self.sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => self.closed = true,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // SO_LINGER 0: close with a reset, so thousands of test sockets leave no TIME_WAIT.
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: setsockopt on our own open socket with a linger struct of the right size.
        unsafe {
            libc::setsockopt(
                self.stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
    }
}

/// Opens `count` connections to `addr`, within `limit` in all; fails if any cannot be opened.
pub fn hold_connections(addr: &str, count: usize, limit: Duration) -> Vec<Held> {
    let deadline = Instant::now() + limit;
    let mut held = Vec::with_capacity(count);
    while held.len() < count {
        assert!(
            Instant::now() < deadline,
            "opened only {} of {count} connections in {limit:?}",
            held.len()
        );
        match Held::connect(addr, Duration::from_secs(5)) {
            Some(h) => held.push(h),
            None => panic!("connection {} of {count} could not be opened", held.len()),
        }
    }
    held
}

/// Like [`hold_connections`], for a server expected to keep every connection: after each 100,
/// waits (up to 2 s) for the server to have accepted them (its open network sockets: not every
/// descriptor, since a file server's background sweep opens and closes directories), so a
/// burst never overflows the listen backlog and stalls a connect for a SYN retransmission.
pub fn hold_connections_paced(server: &Served, count: usize, limit: Duration) -> Vec<Held> {
    // Unix sockets (the shell server's line to its keeper, made as the server starts) are not
    // connections: they are told apart by their inode, listed in /proc/PID/net/unix.
    let fds = || {
        let unix: std::collections::HashSet<String> =
            fs::read_to_string(format!("/proc/{}/net/unix", server.pid()))
                .unwrap_or_default()
                .lines()
                .skip(1)
                .filter_map(|line| line.split_whitespace().nth(6).map(str::to_owned))
                .collect();
        fs::read_dir(format!("/proc/{}/fd", server.pid()))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|fd| {
                        fs::read_link(fd.path()).is_ok_and(|to| {
                            let to = to.to_string_lossy();
                            to.strip_prefix("socket:[")
                                .and_then(|rest| rest.strip_suffix(']'))
                                .is_some_and(|inode| !unix.contains(inode))
                        })
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    let base = fds();
    let deadline = Instant::now() + limit;
    let mut held = Vec::with_capacity(count);
    while held.len() < count {
        let batch = (count - held.len()).min(100);
        let remaining = deadline.saturating_duration_since(Instant::now());
        held.extend(hold_connections(&server.addr, batch, remaining));
        let target = base + held.len();
        eventually(Duration::from_secs(2), || fds() >= target);
    }
    held
}

/// A framed request header that takes a long time to send a byte at a time: a prefix and a
/// JSON header padded to about 1,000 bytes (an exec for the shell, a stat for the file server).
pub fn long_header(op: &str) -> Vec<u8> {
    let header = format!(
        r#"{{"op":"{op}","path":"x","pad":"{}","total_size":4}}"#,
        "p".repeat(1000)
    );
    let mut frame = (header.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(header.as_bytes());
    frame
}

/// Error frames (`{"op":"error",...}`) found in `bytes`, read as a sequence of header frames
/// (stops at the first thing that is not one).
pub fn frames_in(bytes: &[u8]) -> Vec<Value> {
    let mut frames = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 4 {
        let len = i32::from_le_bytes(rest[..4].try_into().unwrap());
        if len <= 0 || rest.len() < 4 + len as usize {
            break;
        }
        let Ok(header) = serde_json::from_slice::<Value>(&rest[4..4 + len as usize]) else {
            break;
        };
        let body = header["total_size"].as_u64().unwrap_or(0) as usize;
        rest = &rest[(4 + len as usize + body).min(rest.len())..];
        frames.push(header);
    }
    frames
}

/// A raw framed connection to either server, with a read time limit.
pub struct Raw {
    pub stream: TcpStream,
}

impl Raw {
    pub fn connect(addr: &str) -> Raw {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .expect("read timeout");
        Raw { stream }
    }

    /// Sends `[len][header text]` exactly as given.
    pub fn header(&mut self, text: &str) {
        let mut frame = (text.len() as i32).to_le_bytes().to_vec();
        frame.extend_from_slice(text.as_bytes());
        self.stream.write_all(&frame).expect("send header");
    }

    pub fn body(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send body");
    }

    /// One reply frame: its header and body; `None` at the end of the stream (or a reset).
    pub fn reply(&mut self) -> Option<(Value, Vec<u8>)> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).ok()?;
        let len = i32::from_le_bytes(len);
        assert!((1..=65536).contains(&len), "reply header length {len}");
        let mut header = vec![0u8; len as usize];
        self.stream.read_exact(&mut header).ok()?;
        let header: Value = serde_json::from_slice(&header).expect("reply header is JSON");
        let mut body = vec![0u8; header["total_size"].as_u64().unwrap_or(0) as usize];
        self.stream.read_exact(&mut body).ok()?;
        Some((header, body))
    }
}

/// XXH3-128 of `bytes` as 32 lowercase hex digits, as the file server's digests are written.
pub fn xxh3_hex(bytes: &[u8]) -> String {
    let d = unstick_core::digest_of(unstick_core::Algorithms::XXH3, bytes);
    d.get(unstick_core::Algorithm::Xxh3)
        .unwrap()
        .to_hex()
        .to_string()
}

/// Every name in `dir`, hidden ones included, sorted (not recursive).
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Whether the server has let go of `name`'s partial upload (it holds an exclusive lock on it
/// while the upload's connection is served): only then may a resume take it over.
pub fn partial_is_idle(root: &Path, name: &str) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(file) = fs::File::open(root.join(format!(".unstick-partial-{name}"))) else {
        return false;
    };
    // SAFETY: `file` is an open descriptor for the duration of both calls; flock has no memory
    // effects.
    unsafe {
        if libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) != 0 {
            return false;
        }
        libc::flock(file.as_raw_fd(), libc::LOCK_UN);
    }
    true
}
