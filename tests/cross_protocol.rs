//! No cross-protocol execution (issue 7): bytes of another protocol (HTTP from curl or a
//! browser, HTTP/2, WebSocket, TLS, SSH) reaching either server run nothing and store nothing,
//! and the shell server serves seed-style raw text only when `--seed-reply` asks for it.
//!
//! The "command" in every attack is `touch <marker>`, placed where a seed-style server would
//! run it (a line of its own, or `${IFS}` for the space where a line cannot break), so the
//! marker's absence from the server's directory shows that nothing ran.

mod serve_common;
mod shell_common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::thread;
use std::time::Duration;

use serve_common::{Served, names_in, run_client};

/// How long an attack waits for the server to answer and close.
const REPLY_LIMIT: Duration = Duration::from_secs(8);
/// Pause between the pieces of a request sent in pieces: longer than the seed detector's
/// 200 ms pause, so a server that runs whatever it has after a pause would run the pieces.
const PIECE_PAUSE: Duration = Duration::from_millis(300);

/// What the server must do with an attack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Answer `HTTP/1.1 400 Bad Request`, then close.
    Http400,
    /// Close (whatever it says first).
    Closed,
    /// Refuse in words, then close: `HTTP/1.1 400 Bad Request`, or (a server that does not
    /// serve seed clients and took the first piece for raw text) an `unstick: ` line.
    Refused,
}

struct Attack {
    name: &'static str,
    marker: &'static str,
    pieces: Vec<Vec<u8>>,
    expect: Expect,
}

/// The exact bytes of
/// `curl -s -m 3 -X POST -H 'Content-Type: text/plain' --data-binary $'\ntouch pwned-by-http\n' http://127.0.0.1:PORT/`.
fn curl_post(port: u16) -> Vec<u8> {
    curl_post_of(port, "\ntouch pwned-by-http\n")
}

/// What curl sends for a text/plain POST of `body`.
fn curl_post_of(port: u16, body: &str) -> Vec<u8> {
    format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// What a browser sends for a page's
/// `fetch("http://127.0.0.1:PORT/", {method: "POST", mode: "no-cors", body: "\ntouch pwned-by-fetch\n"})`.
fn browser_fetch(port: u16) -> Vec<u8> {
    let body = "\ntouch pwned-by-fetch\n";
    format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: keep-alive\r\nContent-Length: {}\r\nsec-ch-ua-platform: \"Linux\"\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\nsec-ch-ua: \"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\"\r\nContent-Type: text/plain;charset=UTF-8\r\nsec-ch-ua-mobile: ?0\r\nAccept: */*\r\nOrigin: https://evil.example\r\nSec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: no-cors\r\nSec-Fetch-Dest: empty\r\nReferer: https://evil.example/\r\nAccept-Encoding: gzip, deflate, br, zstd\r\nAccept-Language: en-US,en;q=0.9\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn custom_method(port: u16) -> Vec<u8> {
    let body = "\ntouch pwned-by-foo\n";
    format!(
        "FOO /x HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A CORS preflight; it has no body, so the command rides in the path.
fn options_preflight(port: u16) -> Vec<u8> {
    format!(
        "OPTIONS /;touch${{IFS}}pwned-by-options;: HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: */*\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\nOrigin: https://evil.example\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nSec-Fetch-Mode: cors\r\n\r\n"
    )
    .into_bytes()
}

fn websocket_upgrade(port: u16) -> Vec<u8> {
    format!(
        "GET /ws;touch${{IFS}}pwned-by-websocket;: HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nOrigin: https://evil.example\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .into_bytes()
}

/// The HTTP/2 prior-knowledge preface, then a line a shell would run.
fn http2_preface() -> Vec<u8> {
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\ntouch pwned-by-h2\n".to_vec()
}

/// An SSH client's identification string, then a line a shell would run.
fn ssh_banner() -> Vec<u8> {
    b"SSH-2.0-OpenSSH_9.6\r\ntouch pwned-by-ssh\n".to_vec()
}

/// A TLS 1.3 ClientHello record (TLS 1.0 record version, as clients send it) for `localhost`,
/// whose random carries a shell line.
fn tls_client_hello() -> Vec<u8> {
    let mut random = b"\ntouch pwned-by-tls\n".to_vec();
    random.resize(32, b'#');
    let host = b"localhost";
    let mut extensions = Vec::new();
    // server_name
    extensions.extend_from_slice(&[0x00, 0x00]);
    extensions.extend_from_slice(&((host.len() + 5) as u16).to_be_bytes());
    extensions.extend_from_slice(&((host.len() + 3) as u16).to_be_bytes());
    extensions.push(0x00);
    extensions.extend_from_slice(&(host.len() as u16).to_be_bytes());
    extensions.extend_from_slice(host);
    // supported_versions: TLS 1.3, 1.2
    extensions.extend_from_slice(&[0x00, 0x2b, 0x00, 0x05, 0x04, 0x03, 0x04, 0x03, 0x03]);
    // supported_groups: x25519
    extensions.extend_from_slice(&[0x00, 0x0a, 0x00, 0x04, 0x00, 0x02, 0x00, 0x1d]);
    let ciphers = [0x13, 0x01, 0x13, 0x02, 0x13, 0x03, 0xc0, 0x2f];
    let mut hello = vec![0x03, 0x03];
    hello.extend_from_slice(&random);
    hello.push(32);
    hello.extend_from_slice(&[0x5a; 32]);
    hello.extend_from_slice(&(ciphers.len() as u16).to_be_bytes());
    hello.extend_from_slice(&ciphers);
    hello.extend_from_slice(&[0x01, 0x00]);
    hello.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    hello.extend_from_slice(&extensions);
    let mut handshake = vec![0x01];
    handshake.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// A curl POST (with its own marker), sent as a client that writes in small pieces with
/// pauses would.
fn curl_post_in_pieces(port: u16) -> Vec<Vec<u8>> {
    let whole = curl_post_of(port, "\ntouch pwned-by-http-in-pieces\n");
    let find = |what: &[u8]| whole.windows(what.len()).position(|w| w == what).unwrap();
    let host_at = find(b"Host:");
    let body_at = find(b"\r\n\r\n") + 4;
    vec![
        whole[..2].to_vec(),        // "PO"
        whole[2..host_at].to_vec(), // "ST / HTTP/1.1\r\n"
        whole[host_at..body_at].to_vec(),
        whole[body_at..].to_vec(),
    ]
}

/// Every attack on the shell server, for a server on `port`.
fn shell_attacks(port: u16) -> Vec<Attack> {
    let one = |name, marker, bytes: Vec<u8>, expect| Attack {
        name,
        marker,
        pieces: vec![bytes],
        expect,
    };
    vec![
        one(
            "curl POST",
            "pwned-by-http",
            curl_post(port),
            Expect::Http400,
        ),
        Attack {
            name: "curl POST in pieces",
            marker: "pwned-by-http-in-pieces",
            pieces: curl_post_in_pieces(port),
            expect: Expect::Refused,
        },
        one(
            "browser fetch() POST",
            "pwned-by-fetch",
            browser_fetch(port),
            Expect::Http400,
        ),
        one(
            "custom method",
            "pwned-by-foo",
            custom_method(port),
            Expect::Http400,
        ),
        one(
            "OPTIONS preflight",
            "pwned-by-options",
            options_preflight(port),
            Expect::Http400,
        ),
        one(
            "WebSocket upgrade",
            "pwned-by-websocket",
            websocket_upgrade(port),
            Expect::Http400,
        ),
        one(
            "HTTP/2 preface",
            "pwned-by-h2",
            http2_preface(),
            Expect::Closed,
        ),
        one(
            "TLS ClientHello",
            "pwned-by-tls",
            tls_client_hello(),
            Expect::Closed,
        ),
        one("SSH banner", "pwned-by-ssh", ssh_banner(), Expect::Closed),
    ]
}

/// Every attack on the file server: the HTTP ones (one of them posting a seed upload as its
/// body), HTTP/2, TLS and SSH. The markers are the names a stored file could get.
fn ftp_attacks(port: u16) -> Vec<Attack> {
    let seed_header = r#"{"filepath":"C:\\x","filename":"pwned-by-upload","filesize":6}"#;
    let mut seed_upload = (seed_header.len() as u32).to_le_bytes().to_vec();
    seed_upload.extend_from_slice(seed_header.as_bytes());
    seed_upload.extend_from_slice(b"touch\n");
    let mut upload_post = format!(
        "POST /upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        seed_upload.len()
    )
    .into_bytes();
    upload_post.extend_from_slice(&seed_upload);
    let mut attacks = shell_attacks(port);
    attacks.insert(
        1,
        Attack {
            name: "POST of a seed upload",
            marker: "pwned-by-upload",
            pieces: vec![upload_post],
            expect: Expect::Http400,
        },
    );
    attacks
}

/// What one attack got back.
#[derive(Debug)]
struct Answer {
    received: Vec<u8>,
    /// The server closed the connection (end of stream or reset) within [`REPLY_LIMIT`].
    closed: bool,
}

/// Sends `pieces` (pausing between them) on a fresh connection while reading everything the
/// server sends until it closes or [`REPLY_LIMIT`] passes.
fn send_attack(addr: &str, pieces: &[Vec<u8>]) -> Answer {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(REPLY_LIMIT))
        .expect("read timeout");
    let mut reader = stream.try_clone().expect("clone");
    let reading = thread::spawn(move || {
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return (received, true),
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return (received, false);
                }
                // A reset: the server closed without reading everything.
                Err(_) => return (received, true),
            }
        }
    });
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 {
            thread::sleep(PIECE_PAUSE);
        }
        // The server may close before the whole request is in.
        if stream.write_all(piece).is_err() {
            break;
        }
    }
    let (received, closed) = reading.join().expect("reader");
    Answer { received, closed }
}

/// Runs every attack against `addr` at once; each one's name, marker and answer.
fn run_attacks(addr: &str, attacks: Vec<Attack>) -> Vec<(Attack, Answer)> {
    let running: Vec<_> = attacks
        .into_iter()
        .map(|attack| {
            let addr = addr.to_string();
            thread::spawn(move || {
                let answer = send_attack(&addr, &attack.pieces);
                (attack, answer)
            })
        })
        .collect();
    running
        .into_iter()
        .map(|t| t.join().expect("attack"))
        .collect()
}

/// Checks each answer against its expectation; the failures, described.
fn wrong_answers(results: &[(Attack, Answer)]) -> Vec<String> {
    let mut wrong = Vec::new();
    for (attack, answer) in results {
        let text = String::from_utf8_lossy(&answer.received);
        if !answer.closed {
            wrong.push(format!(
                "{}: still open after {REPLY_LIMIT:?} (received {text:?})",
                attack.name
            ));
        }
        let http_400 = text.starts_with("HTTP/1.1 400 Bad Request");
        if attack.expect == Expect::Http400 && !http_400 {
            wrong.push(format!(
                "{}: no `HTTP/1.1 400 Bad Request` reply (received {text:?})",
                attack.name
            ));
        }
        if attack.expect == Expect::Refused && !http_400 && !text.starts_with("unstick: ") {
            wrong.push(format!(
                "{}: neither `HTTP/1.1 400 Bad Request` nor an `unstick: ` line (received {text:?})",
                attack.name
            ));
        }
    }
    wrong
}

/// Fails if any attack's marker exists in `dir` (after a moment for a late command).
fn assert_nothing_ran(dir: &Path, results: &[(Attack, Answer)], server: &Served) {
    thread::sleep(Duration::from_millis(500));
    let ran: Vec<_> = results
        .iter()
        .filter(|(a, _)| dir.join(a.marker).exists())
        .map(|(a, _)| format!("{} created {}", a.name, a.marker))
        .collect();
    assert!(ran.is_empty(), "{ran:?}; server log:\n{}", server.log());
    assert_eq!(names_in(dir), Vec::<String>::new(), "the directory changed");
    // Not even a harmless piece of an attack ran (`PO`, say, before the pause).
    let commands: Vec<String> = server
        .log_lines()
        .into_iter()
        .filter(|l| l.contains("command finished"))
        .collect();
    assert!(
        commands.is_empty(),
        "parts of the attacks ran as commands:\n{}",
        commands.join("\n")
    );
}

fn assert_serves_a_shell_client(server: &Served) {
    let out = run_client(
        &["shell", "connect", &server.addr, "-c", "echo ok"],
        None,
        Duration::from_secs(20),
    );
    assert_eq!(
        out.stdout,
        b"ok\n",
        "{}; server log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    assert_eq!(out.status.code(), Some(0));
}

/// Whether the log has a human-format refusal of a foreign protocol.
fn logged_foreign_protocol(server: &Served) -> bool {
    server
        .wait_log_line(Duration::from_secs(5), |l| {
            l.contains("refused") && l.contains("code=foreign_protocol")
        })
        .is_some()
}

/// All the attacks against `unstick shell serve EXTRA...`: none runs anything, each is refused
/// as expected, and the server then serves a framed client.
fn shell_server_runs_no_attack(extra: &[&str]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let workdir = dir.path().to_str().expect("UTF-8 path");
    let mut args = vec!["--workdir", workdir];
    args.extend_from_slice(extra);
    let server = Served::shell(&args);
    let results = run_attacks(&server.addr, shell_attacks(server.port()));
    assert_nothing_ran(dir.path(), &results, &server);
    let wrong = wrong_answers(&results);
    assert!(
        wrong.is_empty(),
        "{wrong:#?}\nserver log:\n{}",
        server.log()
    );
    assert!(
        logged_foreign_protocol(&server),
        "no `refused ... code=foreign_protocol` line in the log:\n{}",
        server.log()
    );
    assert_serves_a_shell_client(&server);
    assert_eq!(names_in(dir.path()), Vec::<String>::new());
}

#[test]
fn seed_text_is_not_run_without_seed_reply_and_the_client_is_told_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let workdir = dir.path().to_str().expect("UTF-8 path");
    let server = Served::shell(&["--workdir", workdir]);
    let answer = send_attack(&server.addr, &[b"touch pwned".to_vec()]);
    let text = String::from_utf8_lossy(&answer.received).into_owned();
    let first_line = text.lines().next().unwrap_or("");
    assert!(
        first_line.starts_with("unstick: ") && first_line.contains("--seed-reply"),
        "no `unstick: ... --seed-reply` line: {text:?}"
    );
    assert!(answer.closed, "the connection stayed open: {text:?}");
    thread::sleep(Duration::from_millis(500));
    assert!(
        !dir.path().join("pwned").exists(),
        "the seed-style command ran"
    );
    assert_serves_a_shell_client(&server);
    assert_eq!(names_in(dir.path()), Vec::<String>::new());
}

#[test]
fn foreign_protocols_run_nothing_on_the_shell_server_by_default() {
    shell_server_runs_no_attack(&[]);
}

#[test]
fn foreign_protocols_run_nothing_with_seed_reply_json() {
    shell_server_runs_no_attack(&["--seed-reply", "json"]);
}

#[test]
fn foreign_protocols_run_nothing_with_seed_reply_size() {
    shell_server_runs_no_attack(&["--seed-reply", "size"]);
}

#[test]
fn foreign_protocols_run_nothing_with_seed_reply_raw() {
    // The option's former name still works.
    shell_server_runs_no_attack(&["--legacy-reply", "raw"]);
}

#[test]
fn foreign_protocols_store_nothing_on_the_file_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let server = Served::ftp(&root, &[]);
    let results = run_attacks(&server.addr, ftp_attacks(server.port()));
    assert_nothing_ran(&root, &results, &server);
    let wrong = wrong_answers(&results);
    assert!(
        wrong.is_empty(),
        "{wrong:#?}\nserver log:\n{}",
        server.log()
    );
    assert!(
        logged_foreign_protocol(&server),
        "no `refused ... code=foreign_protocol` line in the log:\n{}",
        server.log()
    );

    // The same server still takes an upload.
    let local = dir.path().join("hello.txt");
    std::fs::write(&local, b"hello\n").expect("write");
    let out = run_client(
        &["ftp", "put", "hello.txt", "--addr", &server.addr],
        Some(dir.path()),
        Duration::from_secs(20),
    );
    assert!(
        out.status.success(),
        "{}; server log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    assert_eq!(std::fs::read(root.join("hello.txt")).unwrap(), b"hello\n");
    assert_eq!(names_in(&root), ["hello.txt"]);
}
