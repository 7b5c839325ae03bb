//! Requests to the device firmware (`examples/device`, under QEMU's `mps2-an386`) over a serial
//! line paced at its baud rate, timed as a user sees them: the `unstick` binary from start-up
//! to exit, against `serial:<pty>@BAUD`.
//!
//! ```sh
//! cargo bench --bench device_serial                    # 115,200 baud, 20 rounds, 3 transfers
//! DEVICE_BENCH_BAUD=57600 DEVICE_BENCH_ROUNDS=40 DEVICE_BENCH_TRANSFERS=5 \
//!     cargo bench --bench device_serial
//! ```
//!
//! Needs the firmware (the "device firmware" step of `.ci/run` builds it) and
//! `qemu-system-arm`; without either it says which is missing and exits 0.
//!
//! The line: QEMU's UART is on a loopback TCP port, which a relay thread holds open for the
//! whole run; the relay owns a pseudo-terminal pair, and the client opens its slave as a serial
//! port. Each way, the relay passes bytes at BAUD/10 bytes per second (8N1): a byte crosses one
//! byte time after the line is free and it has been sent, so a busy line runs at exactly its
//! rate and an idle one lends no burst (a token bucket that fills only while bytes wait). The
//! relay also counts the bytes each way, so every request's time can be set against the time
//! its own bytes take on the wire.
//!
//! Measured, in this order: the client's start-up floor (`unstick --version`), then per round
//! `shell connect -c 'echo hi'` and `ftp ls` (median and p90), then per transfer round `ftp put`
//! and `ftp get` of 128 KiB (set against the ideal 131,072 / (BAUD/10) s: the line-rate
//! fraction), then requests made right after 300 bytes of garbage are put on the line (each must
//! succeed; its time is reported). Last, the device's peak stack (its `stack` built-in) and its
//! text size (`arm-none-eabi-size`, where installed).

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_unstick");

const DEFAULT_BAUD: u32 = 115_200;
const DEFAULT_ROUNDS: usize = 20;
const DEFAULT_TRANSFERS: usize = 3;
/// The transfers' size.
const TRANSFER: usize = 128 * 1024;
/// Bytes of garbage put on the line before a request.
const GARBAGE: usize = 300;
/// Bytes the relay holds each way, waiting for the line or for the far side to take them (a
/// UART driver's buffer).
const HELD: usize = 4096;

fn main() {
    let firmware = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/device/target/thumbv7em-none-eabihf/release/unstick-device");
    if !firmware.is_file() {
        println!(
            "device_serial: skipped: {} is not built (see the \"device firmware\" step of .ci/run)",
            firmware.display()
        );
        return;
    }
    if !runs("qemu-system-arm", &["--version"]) {
        println!(
            "device_serial: skipped: qemu-system-arm is not installed (apt-get install qemu-system-arm)"
        );
        return;
    }
    let baud: u32 = env_or("DEVICE_BENCH_BAUD", DEFAULT_BAUD);
    let rounds: usize = env_or("DEVICE_BENCH_ROUNDS", DEFAULT_ROUNDS).max(1);
    let transfers: usize = env_or("DEVICE_BENCH_TRANSFERS", DEFAULT_TRANSFERS).max(1);
    let bytes_per_sec = f64::from(baud) / 10.0;

    let qemu = Qemu::boot(&firmware);
    let line = PacedLine::to(&qemu.uart, bytes_per_sec);
    let addr = format!("serial:{}@{baud}", line.path);
    let dir = tempfile::Builder::new()
        .prefix("unstick-device-bench")
        .tempdir()
        .expect("temp dir");
    let cwd = dir.path();
    wait_ready(&line, &addr, cwd);
    println!(
        "device serial benchmark: {baud} baud ({bytes_per_sec:.0} B/s each way), a paced pty \
         in front of QEMU's UART bridge; {rounds} rounds, {transfers} transfer rounds of {} KiB",
        TRANSFER / 1024
    );

    // The client's start-up and exit, with no line: the floor of every figure below.
    let mut floor = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        let out = Command::new(BIN)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .expect("run unstick");
        floor.push(started.elapsed());
        assert!(out.status.success());
    }
    let floor = Stats::of(&floor);

    let echo = ["shell", "connect", &addr, "-c", "echo hi"];
    let ls = ["ftp", "ls", "--addr", &addr];
    let mut echo_runs = Runs::default();
    let mut ls_runs = Runs::default();
    for _ in 0..rounds {
        let (out, run) = timed(&line, &echo, cwd);
        assert_eq!(ok(&out, "echo hi"), "hi\n");
        echo_runs.push(run);
        let (out, run) = timed(&line, &ls, cwd);
        ok(&out, "ftp ls");
        ls_runs.push(run);
    }

    let source = cwd.join("source.bin");
    fs::write(&source, pattern(TRANSFER)).expect("write the source");
    let ideal = TRANSFER as f64 / bytes_per_sec;
    let mut puts = Runs::default();
    let mut gets = Runs::default();
    // Transfers that failed, and why: on a loaded machine QEMU can be held off the CPU for
    // longer than the second of silence after which the device tears a request. Reported, not
    // timed.
    let mut failed = Vec::new();
    for round in 0..transfers {
        // A new name each round: replacing a file would need room for both copies.
        let name = format!("bench{round}.bin");
        let (out, run) = timed(
            &line,
            &["ftp", "put", "source.bin", &name, "--addr", &addr],
            cwd,
        );
        if !out.status.success() {
            failed.push(format!(
                "put: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            continue;
        }
        puts.push(run);
        let back = format!("back{round}.bin");
        let (out, run) = timed(&line, &["ftp", "get", &name, &back, "--addr", &addr], cwd);
        if !out.status.success() {
            failed.push(format!(
                "get: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            continue;
        }
        gets.push(run);
        assert!(
            fs::read(cwd.join(&back)).expect("the download") == fs::read(&source).unwrap(),
            "the download differs from the upload"
        );
        let (out, _) = timed(&line, &["ftp", "delete", &name, "--addr", &addr], cwd);
        ok(&out, "ftp delete");
    }

    // Garbage on the line (zeros among it, so that it is many broken frames), then at once a
    // request, which must be answered.
    let mut after_garbage = Runs::default();
    for round in 0..rounds.min(10) {
        let garbage: Vec<u8> = pattern(GARBAGE)
            .iter()
            .map(|b| b.wrapping_add(round as u8) % 9)
            .collect();
        line.inject(&garbage);
        let (out, run) = timed(&line, &echo, cwd);
        assert_eq!(ok(&out, "echo hi after garbage"), "hi\n");
        after_garbage.push(run);
    }
    let link = ok(
        &timed(&line, &["shell", "connect", &addr, "-c", "link"], cwd).0,
        "link",
    );
    let stack = ok(
        &timed(&line, &["shell", "connect", &addr, "-c", "stack"], cwd).0,
        "stack",
    );

    let wire = |bytes: u64| Duration::from_secs_f64(bytes as f64 / bytes_per_sec);
    println!();
    println!(
        "client start-up floor (`unstick --version`): median {}, p90 {}",
        ms(floor.median),
        ms(floor.p90)
    );
    for (name, runs) in [
        ("shell connect -c 'echo hi'", &echo_runs),
        ("ftp ls", &ls_runs),
        ("echo hi after 300 B of garbage", &after_garbage),
    ] {
        let time = Stats::of(&runs.times);
        let (up, down) = runs.median_bytes();
        // What the request cannot take less than: its bytes' time on the line, one way after
        // the other, and the client's start-up.
        let least = wire(up + down) + floor.median;
        println!(
            "{name:32} median {} (p90 {}, best {}): {up} B up + {down} B down = {} on the \
             wire; {:.2}x the wire time plus the start-up floor",
            ms(time.median),
            ms(time.p90),
            ms(time.best),
            ms(wire(up + down)),
            time.median.as_secs_f64() / least.as_secs_f64(),
        );
    }
    println!("ideal 128 KiB at {bytes_per_sec:.0} B/s: {:.2} s", ideal);
    for failure in &failed {
        println!("a transfer failed: {failure}");
    }
    for (name, runs) in [("ftp put 128 KiB", &puts), ("ftp get 128 KiB", &gets)] {
        if runs.times.is_empty() {
            println!("{name:32} no transfer succeeded");
            continue;
        }
        let time = Stats::of(&runs.times);
        let (up, down) = runs.median_bytes();
        let busiest = up.max(down);
        println!(
            "{name:32} median {:.2} s (best {:.2} s): line-rate fraction {:.1}% (best {:.1}%); \
             {up} B up, {down} B down (the busy way carries {:.1}% over the payload)",
            time.median.as_secs_f64(),
            time.best.as_secs_f64(),
            100.0 * ideal / time.median.as_secs_f64(),
            100.0 * ideal / time.best.as_secs_f64(),
            100.0 * (busiest as f64 / TRANSFER as f64 - 1.0),
        );
    }
    println!("device link counts: {}", link.trim());
    println!("device peak stack (`stack`): {}", stack.trim());
    if let Ok(size) = Command::new("arm-none-eabi-size").arg(&firmware).output()
        && size.status.success()
    {
        print!("{}", String::from_utf8_lossy(&size.stdout));
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Median, 90th percentile and best of some times.
struct Stats {
    median: Duration,
    p90: Duration,
    best: Duration,
}

impl Stats {
    fn of(times: &[Duration]) -> Stats {
        let mut sorted = times.to_vec();
        sorted.sort();
        let at =
            |q: f64| sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1];
        Stats {
            median: at(0.5),
            p90: at(0.9),
            best: sorted[0],
        }
    }
}

/// One run of the client: its time, and the bytes it cost on the line each way.
struct Run {
    time: Duration,
    up: u64,
    down: u64,
}

#[derive(Default)]
struct Runs {
    times: Vec<Duration>,
    up: Vec<u64>,
    down: Vec<u64>,
}

impl Runs {
    fn push(&mut self, run: Run) {
        self.times.push(run.time);
        self.up.push(run.up);
        self.down.push(run.down);
    }

    fn median_bytes(&self) -> (u64, u64) {
        let median = |v: &[u64]| {
            let mut v = v.to_vec();
            v.sort();
            v[v.len() / 2]
        };
        (median(&self.up), median(&self.down))
    }
}

/// Runs `unstick ARGS` in `cwd` from start-up to exit.
fn timed(line: &PacedLine, args: &[&str], cwd: &Path) -> (Output, Run) {
    line.release_port();
    let (up, down) = line.carried();
    let started = Instant::now();
    let out = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("run unstick");
    let time = started.elapsed();
    let (up_after, down_after) = line.carried();
    let run = Run {
        time,
        up: up_after - up,
        down: down_after - down,
    };
    (out, run)
}

/// Its stdout, when the run succeeded.
fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until the device answers (after boot), with short-lived requests.
fn wait_ready(line: &PacedLine, addr: &str, cwd: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let args = ["ftp", "stat", "probe", "--addr", addr, "--timeout", "1"];
        let (out, _) = timed(line, &args, cwd);
        // `stat` of a name that does not exist fails with this message: an answer.
        if String::from_utf8_lossy(&out.stderr).contains("no such file") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the device did not answer within 60 s: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// Bytes no compressor or pattern shortens (xorshift).
fn pattern(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// QEMU running the firmware, its UART on a loopback TCP port; killed when dropped.
struct Qemu {
    child: Child,
    /// QEMU's UART bridge, `HOST:PORT`.
    uart: String,
}

impl Qemu {
    fn boot(firmware: &Path) -> Qemu {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let uart = format!("127.0.0.1:{port}");
        let child = Command::new("qemu-system-arm")
            .args(["-machine", "mps2-an386", "-cpu", "cortex-m4", "-nographic"])
            .args(["-monitor", "none", "-serial"])
            // nodelay: QEMU writes the UART's bytes to the socket one at a time, and with
            // Nagle's algorithm all but the first of a reply would wait for the relay's delayed
            // ACK (40 ms on Linux once the connection has left quick-ACK mode).
            .arg(format!("tcp:{uart},server=on,wait=off,nodelay=on"))
            .arg("-kernel")
            .arg(firmware)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start qemu-system-arm");
        Qemu { child, uart }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pseudo-terminal whose master is relayed to QEMU's UART bridge at the line's rate.
struct PacedLine {
    /// The slave's path, which the client opens.
    path: String,
    /// Held open so that the master never sees a hang-up between clients; garbage is written
    /// to it.
    slave: File,
    /// Bytes carried to the device and from it.
    carried: Arc<[AtomicU64; 2]>,
    stop: Arc<AtomicBool>,
    relay: Option<JoinHandle<()>>,
}

impl PacedLine {
    fn to(uart: &str, bytes_per_sec: f64) -> PacedLine {
        let deadline = Instant::now() + Duration::from_secs(20);
        let tcp = loop {
            match TcpStream::connect(uart) {
                Ok(tcp) => break tcp,
                Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
                Err(e) => panic!("QEMU's UART bridge never opened: {e}"),
            }
        };
        tcp.set_nodelay(true).expect("nodelay");
        tcp.set_nonblocking(true).expect("non-blocking socket");
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
        let (master, slave) = unsafe { (File::from_raw_fd(master), File::from_raw_fd(slave)) };
        // SAFETY: tcgetattr/tcsetattr and fcntl on descriptors we own, with a valid termios
        // struct and plain integer flags. Raw from the start, so that nothing is echoed before
        // a client sets the port up; the master never blocks the relay.
        unsafe {
            let mut mode: libc::termios = std::mem::zeroed();
            libc::tcgetattr(slave.as_raw_fd(), &mut mode);
            libc::cfmakeraw(&mut mode);
            libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &mode);
            let flags = libc::fcntl(master.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(master.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        let path = pty_name(&master);
        let carried = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let stop = Arc::new(AtomicBool::new(false));
        let relay = thread::spawn({
            let (carried, stop) = (Arc::clone(&carried), Arc::clone(&stop));
            move || relay(master, tcp, bytes_per_sec, &carried, &stop)
        });
        PacedLine {
            path,
            slave,
            carried,
            stop,
            relay: Some(relay),
        }
    }

    /// Bytes carried so far: (to the device, from the device).
    fn carried(&self) -> (u64, u64) {
        (
            self.carried[0].load(Ordering::SeqCst),
            self.carried[1].load(Ordering::SeqCst),
        )
    }

    /// Lets the next client take the port: a client holds it exclusively (TIOCEXCL), which the
    /// kernel clears only when the port's last user closes it, and this side keeps it open.
    fn release_port(&self) {
        // SAFETY: TIOCNXCL on a terminal descriptor we own takes no argument.
        unsafe { libc::ioctl(self.slave.as_raw_fd(), libc::TIOCNXCL) };
    }

    /// Puts `bytes` on the line towards the device, as a client would.
    fn inject(&self, bytes: &[u8]) {
        (&self.slave).write_all(bytes).expect("write to the pty");
    }
}

impl Drop for PacedLine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(relay) = self.relay.take() {
            let _ = relay.join();
        }
    }
}

/// One way of the line: bytes taken from one side, crossing at the line's rate, then handed to
/// the other side as it takes them.
struct Way {
    /// Taken, not across yet.
    queue: VecDeque<u8>,
    /// Across, not taken by the far side yet.
    across: Vec<u8>,
    /// When the line has finished sending the byte before the queue's first.
    free_at: Instant,
    byte_time: Duration,
}

impl Way {
    fn new(bytes_per_sec: f64) -> Way {
        Way {
            queue: VecDeque::new(),
            across: Vec::new(),
            free_at: Instant::now(),
            byte_time: Duration::from_secs_f64(1.0 / bytes_per_sec),
        }
    }

    fn has_room(&self) -> bool {
        self.queue.len() < HELD
    }

    fn take(&mut self, bytes: &[u8], now: Instant) {
        if self.queue.is_empty() {
            // An idle line starts on these bytes now: it saved no time while it was idle.
            self.free_at = self.free_at.max(now);
        }
        self.queue.extend(bytes);
    }

    /// Moves the bytes whose last bit has crossed by `now`; how many.
    fn cross(&mut self, now: Instant) -> usize {
        if self.queue.is_empty() || self.across.len() >= HELD {
            return 0;
        }
        let elapsed = now.saturating_duration_since(self.free_at);
        let n = ((elapsed.as_nanos() / self.byte_time.as_nanos()) as usize)
            .min(self.queue.len())
            .min(HELD);
        self.across.extend(self.queue.drain(..n));
        self.free_at += self.byte_time * n as u32;
        n
    }

    /// When the next byte will have crossed.
    fn next_due(&self) -> Option<Instant> {
        (!self.queue.is_empty() && self.across.len() < HELD).then(|| self.free_at + self.byte_time)
    }

    /// Hands what has crossed to `sink`, as much as it takes now.
    fn deliver(&mut self, sink: &mut impl Write) {
        while !self.across.is_empty() {
            match sink.write(&self.across) {
                Ok(0) => return,
                Ok(n) => {
                    self.across.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }
}

/// Carries bytes between the pty master and QEMU's UART bridge, each way at `bytes_per_sec`,
/// until told to stop.
fn relay(
    mut pty: File,
    mut tcp: TcpStream,
    bytes_per_sec: f64,
    carried: &[AtomicU64; 2],
    stop: &AtomicBool,
) {
    let mut to_device = Way::new(bytes_per_sec);
    let mut from_device = Way::new(bytes_per_sec);
    let mut buf = [0u8; HELD];
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        let crossed = to_device.cross(now);
        carried[0].fetch_add(crossed as u64, Ordering::SeqCst);
        let crossed = from_device.cross(now);
        carried[1].fetch_add(crossed as u64, Ordering::SeqCst);
        to_device.deliver(&mut tcp);
        from_device.deliver(&mut pty);

        let due = [to_device.next_due(), from_device.next_due()]
            .into_iter()
            .flatten()
            .min();
        // Poll's timeout is in whole milliseconds: round up, so that it never spins.
        let wait_ms = match due {
            Some(due) => due
                .saturating_duration_since(Instant::now())
                .as_micros()
                .div_ceil(1000)
                .min(10) as i32,
            None => 10,
        };
        let events = |room: bool, pending: bool| {
            (if room { libc::POLLIN } else { 0 }) | (if pending { libc::POLLOUT } else { 0 })
        };
        let mut fds = [
            libc::pollfd {
                fd: pty.as_raw_fd(),
                events: events(to_device.has_room(), !from_device.across.is_empty()),
                revents: 0,
            },
            libc::pollfd {
                fd: tcp.as_raw_fd(),
                events: events(from_device.has_room(), !to_device.across.is_empty()),
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfd structs on descriptors we own.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, wait_ms) };
        if ready <= 0 {
            continue;
        }
        let now = Instant::now();
        if fds[0].revents & libc::POLLIN != 0 && to_device.has_room() {
            let room = HELD - to_device.queue.len();
            if let Ok(n) = pty.read(&mut buf[..room]) {
                to_device.take(&buf[..n], now);
            }
        }
        if fds[1].revents & libc::POLLIN != 0 && from_device.has_room() {
            let room = HELD - from_device.queue.len();
            match tcp.read(&mut buf[..room]) {
                Ok(0) => panic!("QEMU closed its UART bridge"),
                Ok(n) => from_device.take(&buf[..n], now),
                Err(_) => {}
            }
        }
    }
}

/// The name of the pty whose master is `master`.
fn pty_name(master: &impl AsRawFd) -> String {
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
