//! What the shell end-to-end tests share: a server process that is killed when the test ends,
//! runs of the `unstick` binary with a time bound, raw frame I/O for hostile and seed-style
//! peers, and views of `/proc`.
#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use unstick_std::shell::{ExitReport, OutputSink, OutputStream, ShellClient};

/// The binary under test.
pub const UNSTICK: &str = env!("CARGO_BIN_EXE_unstick");

/// Longest any spawned process may run before a test gives up on it.
pub const PROCESS_LIMIT: Duration = Duration::from_secs(60);

/// An `unstick shell serve` process on a loopback port; killed and reaped on drop.
pub struct ServerProcess {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    /// The address it printed.
    pub addr: String,
}

impl ServerProcess {
    /// Starts a server on `127.0.0.1:0` with extra `args` and waits for its address line.
    pub fn start(args: &[&str]) -> ServerProcess {
        Self::start_with_env(args, &[])
    }

    /// Like [`start`](Self::start), with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> ServerProcess {
        let mut command = Command::new(UNSTICK);
        command
            .args(["shell", "serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("UNSTICK_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn unstick shell serve");
        let mut stdout = BufReader::new(child.stdout.take().expect("server stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read the address line");
        let addr = line.trim().to_string();
        assert!(
            addr.starts_with("127.0.0.1:"),
            "server did not print its address: {line:?}"
        );
        ServerProcess {
            child,
            _stdout: stdout,
            addr,
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A framed client connected to this server.
    pub fn client(&self, token: Option<&str>) -> ShellClient {
        client_at(&self.addr, token)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A framed client connected to `addr`.
pub fn client_at(addr: &str, token: Option<&str>) -> ShellClient {
    ShellClient::connect(addr, token.map(str::to_string)).expect("connect")
}

/// Waits for `child` to end within [`PROCESS_LIMIT`], killing it (and failing) otherwise.
pub fn wait_bounded(mut child: Child) -> Output {
    let deadline = Instant::now() + PROCESS_LIMIT;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_reader = thread::spawn(move || read_all(stdout.as_mut()));
    let err_reader = thread::spawn(move || read_all(stderr.as_mut()));
    let status: ExitStatus = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process ran past {PROCESS_LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    }
}

fn read_all(source: Option<&mut impl Read>) -> Vec<u8> {
    let mut all = Vec::new();
    if let Some(source) = source {
        let _ = source.read_to_end(&mut all);
    }
    all
}

/// `unstick shell connect ADDR ARGS...` with piped stdio and no token in its environment.
pub fn connect_command(addr: &str, args: &[&str]) -> Command {
    let mut command = Command::new(UNSTICK);
    command
        .args(["shell", "connect", addr])
        .args(args)
        .env_remove("UNSTICK_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs `unstick shell connect ADDR ARGS...` with `stdin` as its input.
pub fn connect_cli(addr: &str, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    let mut command = connect_command(addr, args);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("spawn unstick shell connect");
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_vec();
    let writer = thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let output = wait_bounded(child);
    writer.join().expect("stdin writer");
    output
}

/// Output kept apart by stream, or only counted.
#[derive(Default)]
pub struct Collected {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub keep: bool,
    pub counted: u64,
}

impl Collected {
    pub fn keeping() -> Collected {
        Collected {
            keep: true,
            ..Collected::default()
        }
    }
}

impl OutputSink for Collected {
    fn write_output(&mut self, stream: OutputStream, bytes: &[u8]) -> std::io::Result<()> {
        self.counted += bytes.len() as u64;
        if self.keep {
            match stream {
                OutputStream::Stdout => self.stdout.extend_from_slice(bytes),
                OutputStream::Stderr => self.stderr.extend_from_slice(bytes),
            }
        }
        Ok(())
    }
}

/// Runs `command` with `client`, keeping its output.
pub fn exec(client: &mut ShellClient, command: &str) -> (ExitReport, Collected) {
    let mut out = Collected::keeping();
    let report = client.exec(command, &mut out).expect("exec");
    (report, out)
}

/// A header frame: 4-byte LE length, the JSON header, the body.
pub fn header_frame(header: &str, body: &[u8]) -> Vec<u8> {
    let mut frame = (header.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(header.as_bytes());
    frame.extend_from_slice(body);
    frame
}

/// An exec request frame for `command`.
pub fn exec_frame(command: &str) -> Vec<u8> {
    let header = format!(r#"{{"op":"exec","total_size":{}}}"#, command.len());
    header_frame(&header, command.as_bytes())
}

/// Reads one header frame with plain reads (an independent reader of the wire format): the
/// parsed header and the body. `None` at the end of the stream.
pub fn read_raw_frame(stream: &mut TcpStream) -> Option<(serde_json::Value, Vec<u8>)> {
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).ok()?;
    let len = i32::from_le_bytes(prefix);
    assert!((1..=65536).contains(&len), "header length {len}");
    let mut header = vec![0u8; len as usize];
    stream.read_exact(&mut header).expect("header");
    let header: serde_json::Value = serde_json::from_slice(&header).expect("header is JSON");
    let size = header["total_size"].as_u64().expect("total_size");
    let mut body = vec![0u8; size as usize];
    stream.read_exact(&mut body).expect("body");
    Some((header, body))
}

/// A raw connection with a read timeout, so a test never waits forever.
pub fn raw_connection(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    stream
}

/// A TCP connection to `to` from the local address `from` (its port chosen by the system),
/// with a read timeout: a second client address on loopback, such as 127.0.0.2 (Linux routes
/// all of 127.0.0.0/8 to the loopback interface).
#[cfg(target_os = "linux")]
pub fn connect_from(from: std::net::Ipv4Addr, to: std::net::SocketAddrV4) -> TcpStream {
    use std::os::fd::FromRawFd;
    let sockaddr = |addr: std::net::SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: socket(2) takes integers and touches no memory of ours.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` was just opened and belongs to nothing else; the stream owns it from here
    // and closes it when dropped.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    let local = sockaddr(std::net::SocketAddrV4::new(from, 0));
    // SAFETY: bind(2) reads `len` bytes at the pointer, which is `local`, a live sockaddr_in.
    let bound = unsafe { libc::bind(fd, (&raw const local).cast(), len) };
    assert_eq!(bound, 0, "bind {from}: {}", std::io::Error::last_os_error());
    let remote = sockaddr(to);
    // SAFETY: connect(2) reads `len` bytes at the pointer, which is `remote`, a live
    // sockaddr_in.
    let connected = unsafe { libc::connect(fd, (&raw const remote).cast(), len) };
    assert_eq!(
        connected,
        0,
        "connect {to}: {}",
        std::io::Error::last_os_error()
    );
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    stream
}

/// One process as `/proc/PID/stat` describes it.
#[derive(Clone, Debug)]
pub struct ProcStat {
    pub pid: u32,
    /// Its name (`comm`): the program's, or the one it gave itself.
    pub name: String,
    pub state: char,
    pub ppid: u32,
    pub pgrp: u32,
}

/// Every process visible in `/proc`.
pub fn processes() -> Vec<ProcStat> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(proc_stat)
        .collect()
}

fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields resume after the last ')'.
    let name_end = text.rfind(')')?;
    let name = text[text.find('(')? + 1..name_end].to_string();
    let rest = &text[name_end + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some(ProcStat {
        pid,
        name,
        state,
        ppid,
        pgrp,
    })
}

/// Children of `pid`, in any state.
pub fn children_of(pid: u32) -> Vec<ProcStat> {
    processes().into_iter().filter(|p| p.ppid == pid).collect()
}

/// The name a server's group keeper gives itself (on Linux, a child of the server): the last
/// argument of its command line (`/bin/sh -c SCRIPT unstick-keeper`), and its `comm` once it
/// has renamed itself.
pub const KEEPER_NAME: &str = "unstick-keeper";

/// Whether `p` is a server's group keeper. Until its program runs it is a copy of the server,
/// named as the server is (`unstick`); then a shell, named `sh` until it has renamed itself, but
/// with its name last on its command line from the start.
pub fn is_keeper(p: &ProcStat) -> bool {
    p.name == KEEPER_NAME
        || p.name == "unstick"
        || fs::read(format!("/proc/{}/cmdline", p.pid)).is_ok_and(|line| {
            line.strip_suffix(b"\0")
                .and_then(|line| line.rsplit(|&b| b == 0).next())
                .is_some_and(|last| last == KEEPER_NAME.as_bytes())
        })
}

/// Children of `pid` but its group keeper: on a server, the shells of its running commands. A
/// child in the middle of its exec (named after its new program, its arguments not yet set:
/// the keeper can be seen so) is not counted until its arguments tell what it is; a zombie,
/// which has no arguments left, is.
pub fn shells_of(pid: u32) -> Vec<ProcStat> {
    children_of(pid)
        .into_iter()
        .filter(|p| {
            let execing = p.state != 'Z'
                && fs::read(format!("/proc/{}/cmdline", p.pid)).is_ok_and(|line| line.is_empty());
            !is_keeper(p) && !execing
        })
        .collect()
}

/// The process group of live process `pid` (for a command's shell, the command's group).
pub fn group_of(pid: u32) -> u32 {
    proc_stat(pid)
        .unwrap_or_else(|| panic!("process {pid} is gone"))
        .pgrp
}

/// Processes of group `pgrp` that are still alive (not zombies).
pub fn live_group_members(pgrp: u32) -> Vec<ProcStat> {
    processes()
        .into_iter()
        .filter(|p| p.pgrp == pgrp && p.state != 'Z' && p.state != 'X')
        .collect()
}

/// Polls `condition` every 20 ms for up to `limit`; whether it became true.
pub fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A field of `/proc/PID/status` in KiB (e.g. `VmRSS`, `VmHWM`).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} missing from /proc/{pid}/status"))
}

/// Deterministic bytes of every value (not text): a 64-bit LCG, seeded.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 56) as u8
        })
        .collect()
}

/// Writes `bytes` to `dir/name`.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) {
    fs::write(dir.join(name), bytes).expect("write test file");
}
