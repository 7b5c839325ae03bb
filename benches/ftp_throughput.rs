//! File server throughput: 1 GiB `put` and `get` over loopback against a raw TCP copy of the
//! same bytes into a synced file (same buffer size, same run), the same over TLS against
//! plaintext, a TLS handshake's time, the server's peak RSS during the upload, and the same
//! upload between Python peers written like the seed's (1024-byte buffers).
//!
//! Run: `cargo bench --bench ftp_throughput` (`FTP_BENCH_MIB` sets the size, default 1024;
//! `FTP_BENCH_ROUNDS` the rounds, default 3, best of each reported). The files live in a
//! temporary directory that is removed at the end.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use unstick_core::Algorithm;
use unstick_std::files::{ClientOptions, FileClient, NoProgress, RemotePath, TRANSFER_BUFFER};
use unstick_std::tls::{ClientTls, Fingerprint};

const BIN: &str = env!("CARGO_BIN_EXE_unstick");

fn main() {
    let mib: u64 = std::env::var("FTP_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let size = mib << 20;
    let dir = tempfile::Builder::new()
        .prefix("unstick-ftp-bench")
        .tempdir_in(std::env::temp_dir())
        .expect("temp dir");
    // The source lives in the server root, so that every transfer (raw copy, `put`, `get`)
    // runs in the same state: one cached file of the size read, one new file written. (On this
    // VM, writing a third large file costs noticeably more than the second, whoever writes it;
    // the order of the three is also rotated each round.)
    let root = dir.path().join("root");
    fs::create_dir_all(&root).expect("root");
    let source = root.join("source.bin");
    write_source(&source, size);
    let gb = |secs: f64| size as f64 / secs / 1e9;
    println!(
        "file server benchmark: {mib} MiB over loopback, {} KiB buffers",
        TRANSFER_BUFFER / 1024
    );

    let mut raw = f64::MAX;
    let mut put = f64::MAX;
    let mut get = f64::MAX;
    let mut tls_put = f64::MAX;
    let mut tls_get = f64::MAX;
    let mut peak_rss_kib = 0;
    let state = dir.path().join("state");
    let rounds: u32 = std::env::var("FTP_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let scratch = dir.path().join("raw.bin");
    let back = dir.path().join("back.bin");
    for round in 0..rounds {
        let server = Server::start(&root, None);
        let tls_server = Server::start(&root, Some(&state));
        for step in 0..5 {
            match (round + step) % 5 {
                0 => {
                    raw = raw.min(raw_copy(&source, &scratch));
                    let _ = fs::remove_file(&scratch);
                }
                1 => {
                    let (secs, rss) = timed_put(&server, &source, Algorithm::Xxh3);
                    put = put.min(secs);
                    peak_rss_kib = peak_rss_kib.max(rss);
                    let _ = fs::remove_file(root.join("bench.bin"));
                }
                2 => {
                    tls_put = tls_put.min(timed_put(&tls_server, &source, Algorithm::Xxh3).0);
                    let _ = fs::remove_file(root.join("bench.bin"));
                }
                3 => {
                    tls_get = tls_get.min(timed_get(&tls_server, &back));
                    if round == 0 {
                        assert!(same_contents(&source, &back), "download over TLS differs");
                    }
                    let _ = fs::remove_file(&back);
                }
                _ => {
                    get = get.min(timed_get(&server, &back));
                    if round == 0 {
                        assert!(same_contents(&source, &back), "download differs");
                    }
                    let _ = fs::remove_file(&back);
                }
            }
        }
    }
    let server = Server::start(&root, None);
    let (md5_put, _) = timed_put(&server, &source, Algorithm::Md5);
    drop(server);
    let tls_server = Server::start(&root, Some(&state));
    let (tcp_connect, handshake) = handshake_times(&tls_server);
    drop(tls_server);
    let _ = fs::remove_file(root.join("bench.bin"));

    let python = python_seed_upload(&source, &dir.path().join("py"));

    println!();
    println!("| transfer | time | rate | vs raw copy |");
    println!("|---|---|---|---|");
    for (what, secs) in [
        ("raw TCP copy into a synced file", raw),
        ("`put`, xxh3 verified", put),
        ("`get`, xxh3 verified", get),
        ("`put --md5`", md5_put),
    ] {
        println!(
            "| {what} | {secs:.2} s | {:.2} GB/s | {:.2}x |",
            gb(secs),
            raw / secs
        );
    }
    match python {
        Some(py) => println!(
            "| Python seed-style client and server, 1024-byte buffers | {py:.2} s | {:.2} GB/s | {:.2}x (`put` is {:.1}x faster) |",
            gb(py),
            raw / py,
            py / put
        ),
        None => println!("| Python seed-style peers | skipped (python3 not found) | | |"),
    }
    println!();
    println!("| over TLS (rustls, ring) | time | rate | vs the same over plaintext |");
    println!("|---|---|---|---|");
    for (what, secs, plain) in [("`put`", tls_put, put), ("`get`", tls_get, get)] {
        println!(
            "| {what} | {secs:.2} s | {:.2} GB/s | {:.2}x |",
            gb(secs),
            plain / secs
        );
    }
    println!();
    println!(
        "TLS handshake (connect and handshake, median of {HANDSHAKES}): {:.2} ms, against {:.3} ms for a plain TCP connect ({:.2} ms for the handshake itself)",
        handshake * 1e3,
        tcp_connect * 1e3,
        (handshake - tcp_connect) * 1e3
    );
    println!();
    println!(
        "server peak RSS (VmHWM) during the upload: {:.1} MiB",
        peak_rss_kib as f64 / 1024.0
    );
}

/// Writes `size` bytes of a non-repeating pattern.
fn write_source(path: &Path, size: u64) {
    let mut file = File::create(path).expect("create source");
    let mut block = vec![0u8; 1 << 20];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for b in block.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 32) as u8;
    }
    let mut written = 0u64;
    let mut n = 0u64;
    while written < size {
        // Vary each block so no two MiB are equal.
        block[..8].copy_from_slice(&n.to_le_bytes());
        let take = (size - written).min(block.len() as u64) as usize;
        file.write_all(&block[..take]).expect("write source");
        written += take as u64;
        n += 1;
    }
    file.sync_all().expect("sync source");
}

/// The physical limit: read the file, send it over loopback, write it to a file, sync it.
fn raw_copy(source: &Path, dest: &Path) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let dest = dest.to_owned();
    let start = Instant::now();
    let receiver = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut out = File::create(&dest).unwrap();
        let mut buf = vec![0u8; TRANSFER_BUFFER];
        loop {
            let n = conn.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n]).unwrap();
        }
        out.sync_all().unwrap();
    });
    let mut conn = TcpStream::connect(addr).unwrap();
    let mut file = File::open(source).unwrap();
    let mut buf = vec![0u8; TRANSFER_BUFFER];
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        conn.write_all(&buf[..n]).unwrap();
    }
    drop(conn);
    receiver.join().unwrap();
    start.elapsed().as_secs_f64()
}

struct Server {
    child: Child,
    /// The address clients use (`tls://...` for a TLS server).
    addr: String,
    /// A TLS server's fingerprint, which clients pin.
    pin: Option<Fingerprint>,
}

impl Server {
    /// A file server on `root`, with TLS (its identity in `tls_state`) when given.
    fn start(root: &Path, tls_state: Option<&Path>) -> Server {
        let mut command = Command::new(BIN);
        command
            .args(["ftp", "serve", "--listen", "127.0.0.1:0", "--root"])
            .arg(root);
        if let Some(state) = tls_state {
            command.args(["--tls", "--state-dir"]).arg(state);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the server");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = lines.next().unwrap().unwrap().trim().to_owned();
        let pin = tls_state.map(|_| {
            let line = lines.next().unwrap().unwrap();
            line.trim().strip_prefix("tls ").unwrap().parse().unwrap()
        });
        Server {
            child,
            addr: match pin {
                Some(_) => format!("tls://{addr}"),
                None => addr,
            },
            pin,
        }
    }

    /// The server's TCP address, without a `tls://`.
    fn socket_addr(&self) -> &str {
        self.addr.strip_prefix("tls://").unwrap_or(&self.addr)
    }

    /// Peak resident set size of the server process so far, in KiB.
    fn peak_rss_kib(&self) -> u64 {
        let status =
            fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn options(server: &Server, algorithm: Algorithm) -> ClientOptions {
    ClientOptions {
        algorithm,
        timeout: Duration::from_secs(120),
        tls: trust(server),
        ..ClientOptions::default()
    }
}

/// Trust in `server`'s pinned certificate.
fn trust(server: &Server) -> ClientTls {
    ClientTls {
        pin: server.pin,
        ..ClientTls::default()
    }
}

/// Connections timed for a handshake's cost.
const HANDSHAKES: usize = 100;

/// The median time of a plain TCP connect, and of a connect with a TLS handshake, to `server`
/// (a TLS server), in seconds.
fn handshake_times(server: &Server) -> (f64, f64) {
    let median = |mut times: Vec<f64>| {
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    let addr = server.socket_addr();
    let trust = trust(server);
    let mut plain = Vec::with_capacity(HANDSHAKES);
    let mut tls = Vec::with_capacity(HANDSHAKES);
    for _ in 0..HANDSHAKES {
        let start = Instant::now();
        let socket = TcpStream::connect(addr).unwrap();
        plain.push(start.elapsed().as_secs_f64());
        drop(socket);
        let start = Instant::now();
        let socket = TcpStream::connect(addr).unwrap();
        socket.set_nodelay(true).unwrap();
        let stream = trust.connect(addr, socket).expect("handshake");
        tls.push(start.elapsed().as_secs_f64());
        drop(stream);
    }
    (median(plain), median(tls))
}

fn timed_put(server: &Server, source: &Path, algorithm: Algorithm) -> (f64, u64) {
    let remote = RemotePath::parse("bench.bin").unwrap();
    let start = Instant::now();
    let mut client = FileClient::connect(&server.addr, options(server, algorithm)).unwrap();
    client
        .put(source, &remote, false, &mut NoProgress)
        .expect("put");
    (start.elapsed().as_secs_f64(), server.peak_rss_kib())
}

fn timed_get(server: &Server, dest: &Path) -> f64 {
    let remote = RemotePath::parse("source.bin").unwrap();
    let start = Instant::now();
    let mut client = FileClient::connect(&server.addr, options(server, Algorithm::Xxh3)).unwrap();
    client
        .get(&remote, dest, false, &mut NoProgress)
        .expect("get");
    start.elapsed().as_secs_f64()
}

fn same_contents(a: &Path, b: &Path) -> bool {
    let (mut a, mut b) = (File::open(a).unwrap(), File::open(b).unwrap());
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = read_full(&mut a, &mut x);
        let m = read_full(&mut b, &mut y);
        if n != m || x[..n] != y[..m] {
            return false;
        }
        if n == 0 {
            return true;
        }
    }
}

fn read_full(file: &mut File, buf: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]).unwrap() {
            0 => break,
            n => filled += n,
        }
    }
    filled
}

/// The seed's upload, both ends in Python with 1024-byte buffers; `None` without python3.
fn python_seed_upload(source: &Path, dest: &Path) -> Option<f64> {
    let peers = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers");
    fs::create_dir_all(dest).ok()?;
    let start = Instant::now();
    let mut server = Command::new("python3")
        .arg(peers.join("ftp_seed_server.py"))
        .arg(dest)
        .args(["--buffer", "1024"])
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let mut port = String::new();
    BufReader::new(server.stdout.take()?)
        .read_line(&mut port)
        .ok()?;
    let folder = source.parent()?;
    let name = source.file_name()?;
    let client = Command::new("python3")
        .arg(peers.join("ftp_seed_upload.py"))
        .arg(port.trim())
        .arg(folder)
        .arg(name)
        .args(["--buffer", "1024"])
        .status()
        .ok()?;
    let served = server.wait().ok()?;
    let secs = start.elapsed().as_secs_f64();
    assert!(client.success() && served.success(), "python peers failed");
    let stored = fs::metadata(dest.join(name)).ok()?.len();
    assert_eq!(
        stored,
        fs::metadata(source).ok()?.len(),
        "python upload incomplete"
    );
    let _ = fs::remove_dir_all(dest);
    Some(secs)
}
