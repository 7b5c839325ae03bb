//! Floods and slow clients (issue 7): connections waiting for a request sit in one shared lobby
//! (no thread, no session slot each), the lobby is capped per address and in all by closing
//! the oldest, `--login-grace` and `--idle-timeout` close slow and idle connections, and a
//! request with no free slot is refused as `busy` with a hint to retry.
//!
//! The tests that hold thousands of connections run one at a time (they share the machine's
//! two cores with the rest of the suite).

mod serve_common;
mod shell_common;

use std::fs;
use std::net::TcpStream;
use std::process::Output;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use serve_common::{
    Held, Raw, Seen, Served, eventually, frames_in, hold_connections, hold_connections_paced,
    long_header, raise_fd_limit, run_client,
};
use shell_common::{Collected, exec_frame, shells_of};
use unstick_std::shell::{ShellClient, ShellClientError, Termination};

/// The open-file limit the 2000-connection tests need (both ends live on this machine).
const FDS_FOR_2000: libc::rlim_t = 4500;
/// Bound for one client run while the server is flooded.
const CLIENT_LIMIT: Duration = Duration::from_secs(20);
/// Bound for opening a flood.
const FLOOD_OPEN_LIMIT: Duration = Duration::from_secs(30);
/// Server threads allowed while thousands of connections wait.
const MAX_THREADS: u64 = 20;
/// Server resident memory allowed while thousands of connections wait, in KiB.
const MAX_RSS_KIB: u64 = 64 * 1024;

static HEAVY: Mutex<()> = Mutex::new(());

/// One flood at a time.
fn heavy() -> MutexGuard<'static, ()> {
    HEAVY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Raises the open-file limit; whether it is enough for 2000 connections (else says why not).
fn room_for_2000() -> bool {
    let limit = raise_fd_limit();
    if limit < FDS_FOR_2000 {
        println!(
            "skipped: the open-file limit is {limit}, below the {FDS_FOR_2000} this test needs"
        );
        return false;
    }
    true
}

/// The largest `Threads` and `VmRSS` seen while sampling.
#[derive(Default, Debug)]
struct Peak {
    threads: u64,
    rss_kib: u64,
}

impl Peak {
    fn sample(&mut self, server: &Served) {
        self.threads = self.threads.max(server.status_field("Threads"));
        self.rss_kib = self.rss_kib.max(server.status_field("VmRSS"));
    }

    fn assert_small(&self, server: &Served) {
        assert!(
            self.threads < MAX_THREADS,
            "the server ran {} threads while connections waited",
            self.threads
        );
        assert!(
            self.rss_kib < MAX_RSS_KIB,
            "the server's RSS reached {} KiB while connections waited; log tail:\n{}",
            self.rss_kib,
            tail(&server.log())
        );
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Runs `unstick ARGS...` in a thread while `meanwhile` is called every ~100 ms; its output.
fn run_client_while(
    args: &[&str],
    cwd: Option<&std::path::Path>,
    mut meanwhile: impl FnMut(),
) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let cwd = cwd.map(|c| c.to_path_buf());
    let running = thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_client(&args, cwd.as_deref(), CLIENT_LIMIT)
    });
    let deadline = Instant::now() + CLIENT_LIMIT + Duration::from_secs(5);
    while !running.is_finished() && Instant::now() < deadline {
        meanwhile();
        thread::sleep(Duration::from_millis(100));
    }
    running.join().expect("client thread")
}

fn assert_printed(out: &Output, expected: &[u8], server: &Served) {
    assert_eq!(
        out.stdout,
        expected,
        "client failed ({:?}): {}\nserver log tail:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        tail(&server.log())
    );
    assert_eq!(out.status.code(), Some(0));
}

fn count_open(held: &mut [Held]) -> usize {
    held.iter_mut()
        .map(|h| h.poll())
        .filter(|s| *s == Seen::Open)
        .count()
}

#[test]
fn two_thousand_silent_connections_do_not_keep_a_shell_client_out() {
    let _one = heavy();
    if !room_for_2000() {
        return;
    }
    let server = Served::shell(&["--max-waiting-per-address", "4096", "--login-grace", "60s"]);
    let mut held = hold_connections_paced(&server, 2000, FLOOD_OPEN_LIMIT);
    let mut peak = Peak::default();
    peak.sample(&server);
    let out = run_client_while(
        &["shell", "connect", &server.addr, "-c", "echo served"],
        None,
        || peak.sample(&server),
    );
    peak.sample(&server);
    assert_printed(&out, b"served\n", &server);
    peak.assert_small(&server);
    assert_eq!(
        count_open(&mut held),
        2000,
        "the server closed waiting connections below its caps"
    );
}

#[test]
fn two_thousand_trickling_connections_do_not_keep_a_shell_client_out() {
    let _one = heavy();
    if !room_for_2000() {
        return;
    }
    let server = Served::shell(&["--max-waiting-per-address", "4096", "--login-grace", "60s"]);
    let script = long_header("exec");
    let mut held = hold_connections_paced(&server, 2000, FLOOD_OPEN_LIMIT);
    // Every connection sends a byte of its header about every 100 ms, before and while the
    // client runs.
    for _ in 0..5 {
        held.iter_mut().for_each(|h| h.drip(&script));
        thread::sleep(Duration::from_millis(100));
    }
    let mut peak = Peak::default();
    let out = run_client_while(
        &["shell", "connect", &server.addr, "-c", "echo served"],
        None,
        || {
            held.iter_mut().for_each(|h| h.drip(&script));
            peak.sample(&server);
        },
    );
    peak.sample(&server);
    assert_printed(&out, b"served\n", &server);
    peak.assert_small(&server);
    assert!(held.iter().all(|h| h.sent >= 5 && h.sent < script.len()));
    assert_eq!(
        count_open(&mut held),
        2000,
        "the server closed trickling connections below its caps and before their grace"
    );
}

#[test]
fn two_thousand_silent_connections_do_not_keep_an_upload_out() {
    let _one = heavy();
    if !room_for_2000() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let server = Served::ftp(
        &root,
        &["--max-waiting-per-address", "4096", "--login-grace", "60s"],
    );
    fs::write(dir.path().join("six.txt"), b"hello\n").expect("write");
    let mut held = hold_connections_paced(&server, 2000, FLOOD_OPEN_LIMIT);
    let mut peak = Peak::default();
    peak.sample(&server);
    let out = run_client_while(
        &["ftp", "put", "six.txt", "--addr", &server.addr],
        Some(dir.path()),
        || peak.sample(&server),
    );
    assert!(
        out.status.success(),
        "put failed: {}\nserver log tail:\n{}",
        String::from_utf8_lossy(&out.stderr),
        tail(&server.log())
    );
    assert_eq!(fs::read(root.join("six.txt")).expect("stored"), b"hello\n");
    peak.assert_small(&server);
    assert_eq!(count_open(&mut held), 2000);
}

#[test]
fn past_the_per_address_cap_the_oldest_waiting_connections_are_closed() {
    let _one = heavy();
    raise_fd_limit();
    // Default caps: 256 waiting per address, 4096 in all.
    let server = Served::shell(&[]);
    let mut held = hold_connections(&server.addr, 600, FLOOD_OPEN_LIMIT);
    let out = run_client(
        &["shell", "connect", &server.addr, "-c", "echo ok"],
        None,
        CLIENT_LIMIT,
    );
    assert_printed(&out, b"ok\n", &server);
    // 600 - 256 = 344 had to go, oldest first: the first 300 are closed by now or soon.
    let oldest_closed = eventually(Duration::from_secs(10), || {
        held[..300].iter_mut().all(|h| h.poll() == Seen::Closed)
    });
    let closed = held[..300]
        .iter_mut()
        .map(|h| h.poll())
        .filter(|s| *s == Seen::Closed)
        .count();
    assert!(
        oldest_closed,
        "only {closed} of the 300 oldest connections were closed"
    );
    let newest_open = count_open(&mut held[500..]);
    assert_eq!(newest_open, 100, "newer connections were closed instead");
}

#[test]
fn past_the_waiting_cap_the_oldest_waiting_connections_are_closed() {
    let server = Served::shell(&["--max-waiting", "50"]);
    let mut held = hold_connections(&server.addr, 100, FLOOD_OPEN_LIMIT);
    let out = run_client(
        &["shell", "connect", &server.addr, "-c", "echo ok"],
        None,
        CLIENT_LIMIT,
    );
    assert_printed(&out, b"ok\n", &server);
    assert!(
        eventually(Duration::from_secs(10), || {
            held[..40].iter_mut().all(|h| h.poll() == Seen::Closed)
        }),
        "the 40 oldest of 100 were not all closed under --max-waiting 50"
    );
    assert_eq!(
        count_open(&mut held[60..]),
        40,
        "newer connections were closed"
    );
}

/// `--login-grace 1s` on a server: a silent connection and one trickling a header are both
/// closed within a few seconds, the trickler told `idle_timeout` first, and it is logged.
fn login_grace_closes_the_slow(server: &Served, op: &str) {
    let script = long_header(op);
    let mut silent = Held::connect(&server.addr, Duration::from_secs(5)).expect("connect");
    let mut trickler = Held::connect(&server.addr, Duration::from_secs(5)).expect("connect");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && (silent.poll() == Seen::Open || !trickler.closed) {
        trickler.drip(&script);
        thread::sleep(Duration::from_millis(100));
    }
    assert!(
        silent.closed,
        "a silent connection outlived --login-grace 1s"
    );
    assert!(
        trickler.closed,
        "a trickling connection outlived --login-grace 1s ({} bytes sent)",
        trickler.sent
    );
    assert!(trickler.sent < script.len());
    let told = frames_in(&trickler.received);
    assert!(
        told.iter()
            .any(|f| f["op"] == "error" && f["code"] == "idle_timeout"),
        "the trickler got no idle_timeout error frame: {:?}",
        String::from_utf8_lossy(&trickler.received)
    );
    for frame in frames_in(&silent.received) {
        assert_eq!(frame["code"], "idle_timeout", "{frame}");
    }
    assert!(
        server
            .wait_log_line(Duration::from_secs(5), |l| l.contains("refused")
                && l.contains("code=idle_timeout"))
            .is_some(),
        "no `refused ... code=idle_timeout` in the log:\n{}",
        server.log()
    );
}

#[test]
fn login_grace_closes_silent_and_trickling_shell_connections() {
    let server = Served::shell(&["--login-grace", "1s"]);
    login_grace_closes_the_slow(&server, "exec");
}

#[test]
fn login_grace_closes_silent_and_trickling_file_server_connections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Served::ftp(&dir.path().join("root"), &["--login-grace", "1s"]);
    login_grace_closes_the_slow(&server, "stat");
}

/// A framed client whose reads give up after 20 s, so no test waits forever.
fn bounded_client(addr: &str) -> ShellClient {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    stream.set_nodelay(true).expect("nodelay");
    ShellClient::from_stream(stream, None)
}

fn run(client: &mut ShellClient, command: &str, server: &Served) -> (Termination, Vec<u8>) {
    let mut out = Collected::keeping();
    match client.exec(command, &mut out) {
        Ok(report) => (report.termination, out.stdout),
        Err(e) => panic!("`{command}` failed: {e}\nserver log:\n{}", server.log()),
    }
}

#[test]
fn connected_idle_clients_hold_no_session_slot() {
    let server = Served::shell(&["--max-sessions", "2", "--max-per-address", "2"]);
    let mut clients: Vec<ShellClient> = (0..10).map(|_| bounded_client(&server.addr)).collect();
    for client in &mut clients {
        assert_eq!(run(client, "true", &server).0, Termination::Exited(0));
    }
    // All ten are still connected; an eleventh is served.
    let mut eleventh = bounded_client(&server.addr);
    assert_eq!(
        run(&mut eleventh, "echo ok", &server),
        (Termination::Exited(0), b"ok\n".to_vec())
    );
    for (i, client) in clients.iter_mut().enumerate() {
        let command = format!("echo again {i}");
        assert_eq!(
            run(client, &command, &server),
            (Termination::Exited(0), format!("again {i}\n").into_bytes())
        );
    }
}

/// Starts `sleep SECONDS` on a client in a thread, once the server has it running.
fn start_sleeper(server: &Served, seconds: u32) -> thread::JoinHandle<Result<Termination, String>> {
    let before = shells_of(server.pid()).len();
    let addr = server.addr.clone();
    let sleeper = thread::spawn(move || {
        let mut client = bounded_client(&addr);
        client
            .exec(&format!("sleep {seconds}"), &mut Collected::default())
            .map(|r| r.termination)
            .map_err(|e| e.to_string())
    });
    assert!(
        eventually(Duration::from_secs(10), || shells_of(server.pid()).len()
            > before),
        "the sleeper's command never started; log:\n{}",
        server.log()
    );
    sleeper
}

/// Asserts that a new client's command is refused as busy with a hint to retry.
fn assert_refused_busy(server: &Served) {
    let mut client = bounded_client(&server.addr);
    match client.exec("echo should-not-run", &mut Collected::keeping()) {
        Err(e @ ShellClientError::Server { .. }) => {
            let ShellClientError::Server { code, message } = &e else {
                unreachable!()
            };
            assert_eq!(code, "busy", "{e}");
            assert!(message.contains("retry"), "no retry hint: {message:?}");
            let text = e.to_string();
            assert!(text.contains("busy") && text.contains("retry"), "{text}");
        }
        other => panic!(
            "expected a busy refusal, got {other:?}; log:\n{}",
            server.log()
        ),
    }
}

#[test]
fn a_request_with_no_free_slot_is_refused_busy_with_a_retry_hint() {
    let server = Served::shell(&["--max-sessions", "1", "--max-per-address", "1"]);
    let sleeper = start_sleeper(&server, 2);
    assert_refused_busy(&server);
    assert_eq!(sleeper.join().expect("sleeper"), Ok(Termination::Exited(0)));
    assert!(
        server
            .wait_log_line(Duration::from_secs(5), |l| l.contains("refused")
                && l.contains("code=busy"))
            .is_some(),
        "no `refused ... code=busy` in the log:\n{}",
        server.log()
    );
    // The slot is free again.
    let mut client = bounded_client(&server.addr);
    assert_eq!(
        run(&mut client, "echo ok", &server),
        (Termination::Exited(0), b"ok\n".to_vec())
    );
}

#[test]
fn the_per_address_cap_holds_below_the_sessions() {
    // --max-sessions 4, --max-per-address 2: a third request at once from one address is busy.
    let server = Served::shell(&["--max-sessions", "4", "--max-per-address", "2"]);
    let first = start_sleeper(&server, 2);
    let second = start_sleeper(&server, 2);
    assert_refused_busy(&server);
    assert_eq!(first.join().expect("sleeper"), Ok(Termination::Exited(0)));
    assert_eq!(second.join().expect("sleeper"), Ok(Termination::Exited(0)));
}

#[test]
fn the_file_server_refuses_busy_with_a_retry_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let server = Served::ftp(&root, &["--max-connections", "1", "--max-per-address", "1"]);
    // An upload in progress holds the only slot.
    let mut upload = Raw::connect(&server.addr);
    upload.header(&json!({"op": "put", "path": "big", "total_size": 1 << 20}).to_string());
    upload.body(&[7u8; 4096]);
    assert!(
        eventually(Duration::from_secs(10), || fs::metadata(
            root.join(".unstick-partial-big")
        )
        .is_ok_and(|m| m.len() == 4096)),
        "the upload never started"
    );
    let mut other = Raw::connect(&server.addr);
    other.header(r#"{"op":"stat","path":"big"}"#);
    let (reply, _) = other.reply().expect("a reply");
    assert_eq!(reply["op"], "error", "{reply}");
    assert_eq!(reply["code"], "busy", "{reply}");
    assert!(
        reply["message"].as_str().unwrap_or("").contains("retry"),
        "no retry hint: {reply}"
    );
    drop(upload);
}

/// Reads a framed exec's replies up to its exit frame.
fn exec_raw(stream: &mut TcpStream, command: &str) -> serde_json::Value {
    use std::io::Write;
    stream.write_all(&exec_frame(command)).expect("send");
    loop {
        let (header, _) = shell_common::read_raw_frame(stream).expect("reply frame");
        if header["op"] != "stdout" && header["op"] != "stderr" {
            return header;
        }
    }
}

/// Whether the server closes `stream` within `limit` (an error frame first is fine).
fn closed_within(stream: &TcpStream, limit: Duration) -> bool {
    use std::io::{ErrorKind, Read};
    let mut reader = stream.try_clone().expect("clone");
    reader
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("read timeout");
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match reader.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn idle_timeout_closes_a_connection_between_requests_on_both_servers() {
    let shell = Served::shell(&["--idle-timeout", "1s"]);
    let mut stream = shell_common::raw_connection(&shell.addr);
    assert_eq!(exec_raw(&mut stream, "true")["op"], "exit");
    assert!(
        closed_within(&stream, Duration::from_secs(10)),
        "an idle shell connection outlived --idle-timeout 1s"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let ftp = Served::ftp(&dir.path().join("root"), &["--idle-timeout", "500ms"]);
    let mut raw = Raw::connect(&ftp.addr);
    raw.header(r#"{"op":"stat","path":"x"}"#);
    assert_eq!(raw.reply().expect("stat reply").0["op"], "stat");
    assert!(
        closed_within(&raw.stream, Duration::from_secs(10)),
        "an idle file server connection outlived --idle-timeout 500ms"
    );
}

#[test]
fn durations_take_units_and_plain_seconds_on_both_servers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    for durations in [
        ["500ms", "2s", "1m"],
        ["3", "30", "1"],
        ["1m", "500ms", "2s"],
    ] {
        let options = [
            "--login-grace",
            durations[0],
            "--idle-timeout",
            durations[1],
            "--shutdown-grace",
            durations[2],
        ];
        let shell = Served::shell(&options);
        let out = run_client(
            &["shell", "connect", &shell.addr, "-c", "echo ok"],
            None,
            CLIENT_LIMIT,
        );
        assert_printed(&out, b"ok\n", &shell);
        let ftp = Served::ftp(&root, &options);
        let out = run_client(&["ftp", "ls", "--addr", &ftp.addr], None, CLIENT_LIMIT);
        assert!(
            out.status.success(),
            "{options:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_stderr_nobody_reads_does_not_stall_the_server() {
    // The log goes to a pipe that is never read: once it is full, a server that wrote its log
    // lines in place would stop serving.
    let mut child = std::process::Command::new(serve_common::UNSTICK)
        .args(["shell", "serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the server");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("address line");
    let addr = line.trim().to_string();
    // Each connection logs two lines of about 100 bytes: 1,500 of them are far more than a
    // pipe holds.
    for _ in 0..1500 {
        drop(TcpStream::connect(&addr).expect("connect"));
    }
    let served = run_client(
        &["shell", "connect", &addr, "-c", "echo served"],
        None,
        Duration::from_secs(20),
    );
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        String::from_utf8_lossy(&served.stdout),
        "served\n",
        "{served:?}"
    );
}
