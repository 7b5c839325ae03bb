//! Time to serve one request while silent connections are held open against the shell server:
//! 0, 500 and 2000 of them, each level on a fresh release-build `unstick shell serve`. Each
//! round opens a fresh connection and runs `true` (`ShellClient` over `TcpStream`, connect
//! included). Also reports the server's threads and resident memory while 2000 are held.
//!
//! ```sh
//! cargo bench --bench flood                        # 50 rounds per level
//! FLOOD_BENCH_ROUNDS=500 cargo bench --bench flood
//! ```
//!
//! A server without the issue-7 lobby options (`--max-waiting-per-address`, `--login-grace`)
//! is run without them, and the rounds it refuses are counted as failed.

use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use unstick_std::shell::{CapturedOutput, ShellClient, Termination};

const BIN: &str = env!("CARGO_BIN_EXE_unstick");
const DEFAULT_ROUNDS: usize = 50;
const WARM_UP_ROUNDS: usize = 5;
const LEVELS: [usize; 3] = [0, 500, 2000];
/// Lobby options: room for every held connection, and a grace longer than the run.
const LOBBY_OPTIONS: [&str; 4] = ["--max-waiting-per-address", "4096", "--login-grace", "10m"];

/// A server process, killed on drop.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `unstick shell serve` on a free loopback port with `extra` options; `None` if it does
    /// not start (an option it does not know, say).
    fn start(extra: &[&str]) -> Option<Server> {
        let child = Command::new(BIN)
            .args(["shell", "serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env_remove("UNSTICK_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn unstick shell serve");
        // From here on, dropping `server` kills and reaps the process.
        let mut server = Server {
            child,
            addr: String::new(),
        };
        let stdout = server.child.stdout.take()?;
        let mut stderr = server.child.stderr.take()?;
        // The log is drained and dropped, so a chatty server never blocks on it.
        thread::spawn(move || {
            let mut sink = [0u8; 8192];
            while matches!(stderr.read(&mut sink), Ok(n) if n > 0) {}
        });
        let (line_tx, line_rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = line_tx.send(line);
            // Keep reading so the server never blocks on stdout either.
            let mut rest = String::new();
            while matches!(reader.read_line(&mut rest), Ok(n) if n > 0) {
                rest.clear();
            }
        });
        let line = line_rx.recv_timeout(Duration::from_secs(20)).ok()?;
        server.addr = line.trim().to_string();
        server.addr.starts_with("127.0.0.1:").then_some(server)
    }

    fn status_field(&self, field: &str) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

/// A connection held open and silent; reset when dropped (no TIME_WAIT left behind).
struct Held(TcpStream);

impl Drop for Held {
    fn drop(&mut self) {
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: setsockopt on our own open socket with a linger struct of the right size.
        unsafe {
            libc::setsockopt(
                self.0.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
    }
}

impl Held {
    /// Whether the server has not closed it.
    fn is_open(&self) -> bool {
        let mut buf = [0u8; 4096];
        let _ = self.0.set_nonblocking(true);
        loop {
            match (&self.0).read(&mut buf) {
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return e.kind() == ErrorKind::WouldBlock,
                Ok(0) => return false,
                Ok(_) => {} // a refusal frame, say: read on to see whether it closed
            }
        }
    }
}

/// Opens up to `count` connections within 30 s.
fn hold(addr: &str, count: usize) -> Vec<Held> {
    let addr: SocketAddr = addr.parse().expect("address");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut held = Vec::with_capacity(count);
    while held.len() < count && Instant::now() < deadline {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(stream) => held.push(Held(stream)),
            Err(e) => {
                eprintln!("connection {} failed: {e}", held.len());
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
    held
}

/// One request on a fresh connection: connect, run `true`, read its exit.
fn serve_one(addr: &str) -> Result<Duration, String> {
    let start = Instant::now();
    let stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut client = ShellClient::from_stream(stream, None);
    let report = client
        .exec("true", &mut CapturedOutput::default())
        .map_err(|e| e.to_string())?;
    let elapsed = start.elapsed();
    if report.termination != Termination::Exited(0) {
        return Err(format!("{report:?}"));
    }
    Ok(elapsed)
}

/// Raises the open-file soft limit to the hard limit; the new soft limit.
fn raise_fd_limit() -> libc::rlim_t {
    // SAFETY: getrlimit/setrlimit with a valid, initialised rlimit struct.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur
    }
}

struct Level {
    wanted: usize,
    held: usize,
    still_open: usize,
    samples: Vec<Duration>,
    failures: usize,
    first_failure: Option<String>,
    threads: Option<u64>,
    rss_kib: Option<u64>,
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else here takes arguments.
    let rounds: usize = std::env::var("FLOOD_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(DEFAULT_ROUNDS);
    let fd_limit = raise_fd_limit();
    if fd_limit < 4500 {
        eprintln!("open-file limit {fd_limit}: fewer connections than asked may be held");
    }
    let with_lobby = match Server::start(&LOBBY_OPTIONS) {
        Some(_) => true,
        None => {
            println!(
                "note: this server does not take {LOBBY_OPTIONS:?} (a pre-issue-7 build); running it with its defaults"
            );
            false
        }
    };
    let options: &[&str] = if with_lobby { &LOBBY_OPTIONS } else { &[] };

    let mut levels = Vec::new();
    for wanted in LEVELS {
        let server = Server::start(options).expect("start the server");
        let held = hold(&server.addr, wanted);
        // Let the server take them all in before measuring.
        thread::sleep(Duration::from_millis(300));
        for _ in 0..WARM_UP_ROUNDS {
            let _ = serve_one(&server.addr);
        }
        let mut level = Level {
            wanted,
            held: held.len(),
            still_open: 0,
            samples: Vec::with_capacity(rounds),
            failures: 0,
            first_failure: None,
            threads: server.status_field("Threads"),
            rss_kib: server.status_field("VmRSS"),
        };
        for _ in 0..rounds {
            match serve_one(&server.addr) {
                Ok(elapsed) => level.samples.push(elapsed),
                Err(e) => {
                    level.failures += 1;
                    level.first_failure.get_or_insert(e);
                }
            }
        }
        if let (Some(t), Some(r)) = (server.status_field("Threads"), server.status_field("VmRSS")) {
            level.threads = level.threads.max(Some(t));
            level.rss_kib = level.rss_kib.max(Some(r));
        }
        level.still_open = held.iter().filter(|h| h.is_open()).count();
        levels.push(level);
        drop(held);
        drop(server);
    }

    println!();
    println!(
        "time to serve one request (fresh connection + `true`) while connections are held silent, {rounds} rounds per level, release build"
    );
    println!();
    println!("| connections held | median | p90 | max | median / 0-held median | failed |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let mut base = None;
    for level in &mut levels {
        level.samples.sort();
        let held = if level.still_open == level.wanted {
            format!("{}", level.wanted)
        } else {
            format!(
                "{} ({} opened, {} still open at the end)",
                level.wanted, level.held, level.still_open
            )
        };
        if level.samples.is_empty() {
            println!("| {held} | - | - | - | - | {} |", level.failures);
            continue;
        }
        let at = |q: f64| level.samples[((level.samples.len() - 1) as f64 * q).round() as usize];
        let median = millis(at(0.5));
        let base = *base.get_or_insert(median);
        println!(
            "| {held} | {median:.2} ms | {:.2} ms | {:.2} ms | {:.2}x | {} |",
            millis(at(0.9)),
            millis(*level.samples.last().unwrap()),
            median / base,
            level.failures
        );
    }
    println!();
    for level in &levels {
        if let Some(e) = &level.first_failure {
            println!("{} held: first failure: {e}", level.wanted);
        }
    }
    if let Some(level) = levels.iter().find(|l| l.wanted == 2000) {
        println!(
            "server while {} connections are held: Threads {}, VmRSS {}",
            level.held,
            level.threads.map_or("?".to_string(), |t| t.to_string()),
            level
                .rss_kib
                .map_or("?".to_string(), |r| format!("{:.1} MiB", r as f64 / 1024.0)),
        );
    }
}
