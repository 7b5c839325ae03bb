//! Compatibility with the seed's Python scripts: a client written like the seed's against our
//! server in each `--seed-reply` format, and `connect --seed` against a server written like
//! the seed's.

mod shell_common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use shell_common::{ServerProcess, connect_cli, raw_connection, read_raw_frame, wait_bounded};

fn peer(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(name)
}

/// Runs the seed-style client with `commands`; one parsed JSON line per command.
fn seed_client(addr: &str, format: &str, commands: &[&str]) -> Vec<serde_json::Value> {
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    let child = Command::new("python3")
        .arg(peer("shell_seed_client.py"))
        .args([host, port, format])
        .args(commands)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let out = wait_bounded(child);
    assert!(
        out.status.success(),
        "seed client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), commands.len());
    lines
}

fn body(reply: &serde_json::Value) -> Vec<u8> {
    let hex = reply["body"].as_str().expect("hex body");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Commands and the reply body the seed's server would send for each (stdout, then stderr).
fn seed_commands(workdir: &str) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        // Shorter than a length prefix: taken as a command once the client pauses.
        ("pwd", format!("{workdir}\n").into_bytes()),
        ("echo out; echo err >&2", b"out\nerr\n".to_vec()),
        ("head -c 100000 /dev/zero | tr '\\0' x", vec![b'x'; 100_000]),
        ("printf '\\377\\376'", vec![0xff, 0xfe]),
        ("echo 新建文件夹", "新建文件夹\n".as_bytes().to_vec()),
        ("exit 3", Vec::new()),
    ]
}

fn canonical_tempdir() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().canonicalize().expect("canonical");
    let path = path.to_str().expect("utf-8 path").to_string();
    (dir, path)
}

#[test]
fn seed_client_reads_json_header_replies_with_real_md5() {
    let (_dir, workdir) = canonical_tempdir();
    let server = ServerProcess::start(&["--workdir", &workdir, "--seed-reply", "json"]);
    let expected = seed_commands(&workdir);
    let commands: Vec<&str> = expected.iter().map(|(c, _)| *c).collect();
    let replies = seed_client(&server.addr, "json", &commands);
    for ((command, want), reply) in expected.iter().zip(&replies) {
        assert_eq!(&body(reply), want, "{command}");
        assert_eq!(reply["header"]["total_size"], want.len(), "{command}");
        assert_eq!(reply["md5_ok"], true, "{command}: {reply}");
        assert_eq!(reply["header"]["truncated"], false);
    }
}

#[test]
fn seed_client_reads_size_prefixed_replies() {
    let (_dir, workdir) = canonical_tempdir();
    let server = ServerProcess::start(&["--workdir", &workdir, "--seed-reply", "size"]);
    let expected = seed_commands(&workdir);
    let commands: Vec<&str> = expected.iter().map(|(c, _)| *c).collect();
    let replies = seed_client(&server.addr, "size", &commands);
    for ((command, want), reply) in expected.iter().zip(&replies) {
        assert_eq!(&body(reply), want, "{command}");
    }
}

#[test]
fn seed_client_reads_raw_replies() {
    let server = ServerProcess::start(&["--seed-reply", "raw"]);
    let replies = seed_client(
        &server.addr,
        "raw",
        &["echo hello", "echo out; echo err >&2", "ls"],
    );
    assert_eq!(body(&replies[0]), b"hello\n");
    assert_eq!(body(&replies[1]), b"out\nerr\n");
    assert!(!body(&replies[2]).is_empty());
}

#[test]
fn a_seed_command_a_shell_cannot_run_is_explained_and_the_session_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let workdir = dir.path().to_str().expect("utf-8 path");
    let server = ServerProcess::start(&["--workdir", workdir, "--seed-reply", "json"]);
    let mut stream = raw_connection(&server.addr);
    // Raw text as the seed's client sends it, each answered before the next is sent.
    let refused: [(&[u8], &str); 2] = [
        (b"touch bad \xff\xfe", "not valid UTF-8"),
        (b"touch bad; echo a\0b", "NUL byte"),
    ];
    for (command, reason) in refused {
        stream.write_all(command).expect("send");
        let (header, body) = read_raw_frame(&mut stream).expect("a reply");
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains(reason), "{text:?}");
        assert_eq!(header["total_size"], body.len());
    }
    stream.write_all(b"echo next").expect("send");
    let (_, body) = read_raw_frame(&mut stream).expect("a reply");
    assert_eq!(body, b"next\n");
    // Nothing of the refused commands ran.
    assert!(
        std::fs::read_dir(dir.path())
            .expect("workdir")
            .next()
            .is_none()
    );
}

#[test]
fn a_seed_command_longer_than_one_read_runs_whole() {
    let server = ServerProcess::start(&["--seed-reply", "json"]);
    // The seed's server would run the first 1024 bytes, then the rest, as two commands.
    let long = format!("echo {}; echo end", "x".repeat(3000));
    let replies = seed_client(&server.addr, "json", &[&long, "echo next"]);
    let mut want = vec![b'x'; 3000];
    want.extend_from_slice(b"\nend\n");
    assert_eq!(body(&replies[0]), want);
    assert_eq!(body(&replies[1]), b"next\n");
}

#[test]
fn a_seed_command_over_the_limit_is_refused_and_none_of_it_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let workdir = dir.path().to_str().expect("utf-8 path");
    let server = ServerProcess::start(&["--workdir", workdir, "--seed-reply", "json"]);
    let mut stream = shell_common::raw_connection(&server.addr);
    let mut command = b"touch ran; : ".to_vec();
    command.extend(std::iter::repeat_n(b'x', 200_000));
    // The server stops reading past the limit, so the end of this may not be taken.
    let _ = stream.write_all(&command);
    let (header, reply) = shell_common::read_raw_frame(&mut stream).expect("a reply");
    assert_eq!(header["total_size"], reply.len());
    let text = String::from_utf8_lossy(&reply);
    assert!(text.contains("longer than"), "{text}");
    assert!(
        shell_common::read_raw_frame(&mut stream).is_none(),
        "still open"
    );
    assert!(
        !dir.path().join("ran").exists(),
        "a piece of the command ran"
    );
}

#[test]
fn seed_client_is_refused_by_a_server_with_a_token() {
    let server = ServerProcess::start(&["--token", "s3cret", "--seed-reply", "json"]);
    let replies = seed_client(&server.addr, "json", &["echo should-not-run"]);
    let text = String::from_utf8(body(&replies[0])).expect("utf-8");
    assert!(text.contains("requires a token"), "{text}");
    assert!(!text.contains("should-not-run"));
}

/// A server written like the seed's, on a loopback port; killed on drop.
struct SeedServer {
    child: std::process::Child,
    addr: String,
}

impl SeedServer {
    fn start(args: &[&str]) -> SeedServer {
        let mut child = Command::new("python3")
            .arg(peer("shell_seed_server.py"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("port line");
        let port: u16 = line.trim().parse().expect("port");
        SeedServer {
            child,
            addr: format!("127.0.0.1:{port}"),
        }
    }
}

impl Drop for SeedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn connect_seed_talks_to_a_seed_server_with_the_placeholder_md5() {
    let seed = SeedServer::start(&[]);
    let out = connect_cli(
        &seed.addr,
        &["--seed", "-c", "echo hi; echo err >&2"],
        b"",
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"hi\nerr\n");
}

#[test]
fn connect_seed_runs_one_command_per_line_and_checks_a_real_md5() {
    let seed = SeedServer::start(&["--real-md5"]);
    let input = b"echo one\n\nhead -c 5000 /dev/zero | tr '\\0' z\necho two\n";
    // `--legacy`, the option's former name, still works.
    let out = connect_cli(&seed.addr, &["--legacy"], input, &[]);
    assert!(out.status.success(), "{out:?}");
    let mut want = b"one\n".to_vec();
    want.extend_from_slice(&[b'z'; 5000]);
    want.extend_from_slice(b"two\n");
    assert_eq!(out.stdout, want);
}

#[test]
fn connect_seed_refuses_a_token_it_could_not_send() {
    // Nothing listens there: the refusal comes before any connection.
    let out = connect_cli(
        "127.0.0.1:1",
        &["--seed", "--token", "s3cret", "-c", "true"],
        b"",
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(message.contains("--token"), "{message}");
}

#[test]
fn the_seed_client_decoding_gbk_reads_chinese_output_with_seed_encoding_gbk() {
    let (_dir, workdir) = canonical_tempdir();
    let command = "echo 新建文件夹; printf 'a\\360\\237\\230\\200b'";
    // As is, the output is UTF-8: the seed's client fails on it, as it does on the seed's
    // server run anywhere but Chinese Windows.
    let server = ServerProcess::start(&["--workdir", &workdir, "--seed-reply", "json"]);
    let replies = seed_client(&server.addr, "json", &[command]);
    let shown = replies[0]["gbk"].as_str().unwrap();
    assert!(shown.starts_with("UnicodeDecodeError"), "{shown}");
    // With --seed-encoding gbk it reads the text; what GBK lacks (an emoji) is a `?`.
    let server = ServerProcess::start(&[
        "--workdir",
        &workdir,
        "--seed-reply",
        "json",
        "--seed-encoding",
        "gbk",
    ]);
    let replies = seed_client(&server.addr, "json", &[command]);
    assert_eq!(replies[0]["gbk"], "新建文件夹\na?b");
    assert_eq!(replies[0]["md5_ok"], true);
}
