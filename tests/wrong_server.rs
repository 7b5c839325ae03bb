//! Clients say what they reached when it is not their server: the other unstick tool's server
//! (a file client on the shell's port, a shell client on the file server's), or a server of
//! another protocol (HTTP, TLS, SSH), instead of "unknown op" or a header of 1,347,703,880
//! bytes. Every client (`ftp`, `shell connect`, `info`) says it the same way.

mod serve_common;
mod shell_common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Output;
use std::thread;
use std::time::Duration;

use serve_common::{Served, run_client};
use unstick_std::files::{ClientError, ClientOptions, FileClient, RemotePath};
use unstick_std::reached::{Reached, Tool};

/// Longest any one client call may take.
const CALL_LIMIT: Duration = Duration::from_secs(30);

/// How long a fake server waits for a client's bytes or its close.
const FAKE_LIMIT: Duration = Duration::from_secs(10);

/// A server of another protocol on a loopback port: for each connection it sends `banner` at
/// once (SSH's identification string), or `answer` after the client's first bytes (an HTTP
/// response, a TLS alert), then reads until the client closes. Its threads end with the test
/// process.
fn fake_server(banner: &'static [u8], answer: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address").to_string();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(FAKE_LIMIT));
                let _ = conn.write_all(banner);
                let mut buf = [0u8; 4096];
                if !answer.is_empty() && matches!(conn.read(&mut buf), Ok(n) if n > 0) {
                    let _ = conn.write_all(answer);
                }
                while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

const HTTP_400: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\nConnection: close\r\n\r\nBad Request";
/// A fatal `protocol_version` alert, as a TLS server answers bytes that are not a ClientHello.
const TLS_ALERT: &[u8] = &[0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46];
const SSH_BANNER: &[u8] = b"SSH-2.0-OpenSSH_9.6\r\n";

/// The client's stderr, its status checked to be `status`.
fn failed(out: &Output, status: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(status), "{stderr}");
    stderr
}

/// Runs every client against `addr` and checks that each says `expected`.
fn every_client_says(addr: &str, expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("note.txt");
    std::fs::write(&file, "a line\n").unwrap();
    let file = file.to_str().unwrap();
    let runs: [(&[&str], i32); 4] = [
        (&["ftp", "ls", "--addr", addr], 1),
        (&["ftp", "put", file, "--addr", addr], 1),
        (&["shell", "connect", addr, "-c", "true"], 255),
        (&["info", addr], 1),
    ];
    for (args, status) in runs {
        let stderr = failed(&run_client(args, None, CALL_LIMIT), status);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("capacity"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_web_server_is_named_as_one() {
    let addr = fake_server(b"", HTTP_400);
    every_client_says(
        &addr,
        "the server answered HTTP: this is a web server, not unstick",
    );
}

#[test]
fn a_tls_server_is_named_as_one_with_the_address_form_to_use() {
    let addr = fake_server(b"", TLS_ALERT);
    every_client_says(&addr, "the server answered TLS: this is a TLS server");
    every_client_says(&addr, "tls://HOST:PORT");
}

#[test]
fn an_ssh_server_is_named_as_one() {
    let addr = fake_server(SSH_BANNER, b"");
    every_client_says(
        &addr,
        "the server answered SSH: this is an SSH server, not unstick",
    );
}

#[test]
fn a_file_client_on_the_shell_port_is_told_to_use_the_shell() {
    let served = Served::shell(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("note.txt");
    std::fs::write(&file, "a line\n").unwrap();
    let file = file.to_str().unwrap();
    let addr = served.addr.as_str();
    // A request without a body (the connection stays open for `info`), an upload (the server
    // closes it with its refusal, so `info` goes on a new one), a download.
    let runs: [&[&str]; 3] = [
        &["ftp", "ls", "--addr", addr],
        &["ftp", "put", file, "--addr", addr],
        &["ftp", "get", "x.txt", "--addr", addr],
    ];
    for args in runs {
        let stderr = failed(&run_client(args, Some(dir.path()), CALL_LIMIT), 1);
        assert!(
            stderr.contains(
                "this is an unstick shell server, not a file server; use `unstick shell connect`"
            ),
            "{args:?}: {stderr}"
        );
    }
    // The library says it as a value.
    let mut client = FileClient::connect(addr, ClientOptions::default()).unwrap();
    let e = client.stat(&RemotePath::parse("x").unwrap()).unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::Reached(Reached::OtherTool { wanted: Tool::File })
        ),
        "{e:?}"
    );
}

#[test]
fn a_shell_client_on_the_file_port_is_told_to_use_ftp() {
    let root = tempfile::tempdir().unwrap();
    let served = Served::ftp(root.path(), &[]);
    let stderr = failed(
        &run_client(
            &["shell", "connect", &served.addr, "-c", "true"],
            None,
            CALL_LIMIT,
        ),
        255,
    );
    assert!(
        stderr.contains("this is an unstick file server, not a shell server; use `unstick ftp`"),
        "{stderr}"
    );
}

#[test]
fn a_refusal_from_the_right_server_is_passed_on_as_it_is() {
    // A file server's own refusal is not taken for the shell's: it serves the file protocol.
    let root = tempfile::tempdir().unwrap();
    let served = Served::ftp(root.path(), &[]);
    let stderr = failed(
        &run_client(
            &["ftp", "stat", "missing.txt", "--addr", &served.addr],
            None,
            CALL_LIMIT,
        ),
        1,
    );
    assert!(
        stderr.contains("missing.txt: no such file or directory")
            && !stderr.contains("server, not"),
        "{stderr}"
    );
}
