//! End-to-end tests of `unstick ftp`: the real binary over loopback, plus raw frames and Python
//! peers written like the seed's scripts.

mod serve_common;
mod shell_common;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use serve_common::partial_is_idle;

const BIN: &str = env!("CARGO_BIN_EXE_unstick");

/// A running `unstick ftp serve`, killed when dropped.
struct Server {
    child: Child,
    addr: String,
    root: PathBuf,
}

impl Server {
    fn start(root: &Path, extra: &[&str]) -> Server {
        let mut command = Server::command(root);
        command.args(extra);
        Server::spawn(command, root)
    }

    /// `unstick ftp serve` on a free loopback port, serving `root`.
    fn command(root: &Path) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(["ftp", "serve", "--listen", "127.0.0.1:0", "--root"])
            .arg(root)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        command
    }

    fn spawn(mut command: Command, root: &Path) -> Server {
        let mut child = command.spawn().expect("start the server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("server prints its address");
        Server {
            child,
            addr: line.trim().to_owned(),
            root: root.to_owned(),
        }
    }

    fn port(&self) -> String {
        self.addr.rsplit(':').next().unwrap().to_owned()
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn unstick(server: &Server, args: &[&str], cwd: &Path) -> Output {
    Command::new(BIN)
        .arg("ftp")
        .args(args)
        .args(["--addr", &server.addr])
        .current_dir(cwd)
        .output()
        .expect("run the client")
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn failed(output: &Output) -> String {
    assert!(!output.status.success(), "expected a failure");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Deterministic, incompressible-looking bytes.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Every name under `dir`, recursively, hidden ones included.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
            out.push(rel);
        }
    }
    out.sort();
    out
}

/// A raw framed connection, for requests the real client would never send.
struct Raw {
    stream: TcpStream,
}

impl Raw {
    fn connect(server: &Server) -> Raw {
        let stream = TcpStream::connect(&server.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Raw { stream }
    }

    /// Sends `[len][header text]`, exactly as given (hostile numbers included).
    fn header(&mut self, text: &str) {
        let mut frame = (text.len() as i32).to_le_bytes().to_vec();
        frame.extend_from_slice(text.as_bytes());
        self.stream.write_all(&frame).unwrap();
    }

    fn body(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads one reply frame: its header as JSON and its body.
    fn reply(&mut self) -> Option<(Value, Vec<u8>)> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).ok()?;
        let mut header = vec![0u8; i32::from_le_bytes(len) as usize];
        self.stream.read_exact(&mut header).ok()?;
        let header: Value = serde_json::from_slice(&header).unwrap();
        let mut body = vec![0u8; header["total_size"].as_u64().unwrap_or(0) as usize];
        self.stream.read_exact(&mut body).ok()?;
        Some((header, body))
    }

    fn error_code(&mut self) -> String {
        let (reply, _) = self.reply().expect("an error reply");
        assert_eq!(reply["op"], "error", "{reply}");
        assert!(reply["message"].as_str().unwrap().len() > 10);
        reply["code"].as_str().unwrap().to_owned()
    }
}

fn xxh3_hex(bytes: &[u8]) -> String {
    let d = unstick_core::digest_of(unstick_core::Algorithms::XXH3, bytes);
    d.get(unstick_core::Algorithm::Xxh3)
        .unwrap()
        .to_hex()
        .to_string()
}

/// Polls `check` for up to 10 seconds.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for: {what}");
}

fn partial_size(server: &Server, name: &str, cwd: &Path) -> u64 {
    let out = Command::new(BIN)
        .args(["ftp", "stat", name, "--addr", &server.addr])
        .current_dir(cwd)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    // "N bytes of an interrupted upload" or "an interrupted upload of N bytes".
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(4)
        .find_map(|w| match w {
            [n, "bytes", "of", "an"] => n.parse().ok(),
            ["upload", "of", n, "bytes"] => n.parse().ok(),
            _ => None,
        })
        .unwrap_or(0)
}

#[test]
fn files_of_every_size_round_trip_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let server = Server::start(&root, &[]);
    for (i, len) in [0usize, 1, 1 << 20, 100 << 20].into_iter().enumerate() {
        let data = pattern(len, i as u64);
        let name = format!("f{len}.bin");
        fs::write(dir.path().join(&name), &data).unwrap();
        ok(&unstick(
            &server,
            &["put", &name, &format!("d/{name}")],
            dir.path(),
        ));
        assert_eq!(fs::read(root.join("d").join(&name)).unwrap(), data);
        let back = format!("back-{name}");
        ok(&unstick(
            &server,
            &["get", &format!("d/{name}"), &back],
            dir.path(),
        ));
        assert_eq!(fs::read(dir.path().join(&back)).unwrap(), data, "{len}");
    }
    // Nothing but the files: no temporary or partial left behind.
    assert_eq!(
        tree(&root),
        [
            "d",
            "d/f0.bin",
            "d/f1.bin",
            "d/f1048576.bin",
            "d/f104857600.bin",
        ]
    );
    let listing = ok(&unstick(&server, &["ls", "d"], dir.path()));
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 4);
    assert!(
        lines[3].starts_with("f104857600.bin  104857600  20"),
        "{listing}"
    );
    assert!(
        lines[0].starts_with("f0.bin                  0  20"),
        "{listing}"
    );
    // Aligned columns: name, size right-aligned, then the time, so every line is as long.
    assert!(lines.iter().all(|l| l.len() == lines[0].len()), "{listing}");
    // MD5 on request, both ways (the digest is named in the confirmation).
    for args in [
        ["put", "--md5", "f1048576.bin", "md5.bin"],
        ["get", "--md5", "md5.bin", "back-md5.bin"],
    ] {
        let out = unstick(&server, &args, dir.path());
        ok(&out);
        assert!(String::from_utf8_lossy(&out.stderr).contains(" md5 "));
    }
    assert_eq!(
        fs::read(dir.path().join("back-md5.bin")).unwrap(),
        pattern(1 << 20, 2)
    );
    ok(&unstick(&server, &["delete", "md5.bin"], dir.path()));
    let stat = ok(&unstick(&server, &["stat", "d/f1.bin"], dir.path()));
    assert!(stat.contains("file 1 byte,"), "{stat}");
    ok(&unstick(&server, &["delete", "d/f1.bin"], dir.path()));
    assert!(!root.join("d/f1.bin").exists());
    let err = failed(&unstick(&server, &["get", "d/f1.bin"], dir.path()));
    assert!(err.contains("not_found"), "{err}");
    // A refused download leaves no empty partial download behind.
    assert!(!dir.path().join(".f1.bin.unstick-part").exists());
}

#[test]
fn thirty_two_concurrent_clients_and_one_winner_per_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let server = Server::start(&root, &["--max-connections", "128"]);
    let addr = server.addr.clone();
    let threads: Vec<_> = (0..32)
        .map(|i| {
            let addr = addr.clone();
            let work = dir.path().join(format!("c{i}"));
            fs::create_dir(&work).unwrap();
            std::thread::spawn(move || {
                let data = pattern(300_000 + i * 1000, 100 + i as u64);
                fs::write(work.join("mine"), &data).unwrap();
                // Half the clients upload their own name, half race for one shared name.
                let remote = if i % 2 == 0 {
                    format!("own/{i}")
                } else {
                    "shared".to_owned()
                };
                let put = Command::new(BIN)
                    .args(["ftp", "put", "mine", &remote, "--addr", &addr])
                    .current_dir(&work)
                    .output()
                    .unwrap();
                assert!(
                    put.status.success(),
                    "{}",
                    String::from_utf8_lossy(&put.stderr)
                );
                if i % 2 == 0 {
                    let get = Command::new(BIN)
                        .args(["ftp", "get", &remote, "back", "--addr", &addr])
                        .current_dir(&work)
                        .output()
                        .unwrap();
                    assert!(get.status.success());
                    assert_eq!(fs::read(work.join("back")).unwrap(), data);
                }
                data
            })
        })
        .collect();
    // Meanwhile, other connections send garbage: none of it may disturb the transfers.
    let mut hostile = Vec::new();
    for round in 0..40 {
        let mut raw = Raw::connect(&server);
        match round % 4 {
            0 => raw.body(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]),
            1 => raw.header("{not json"),
            2 => raw.header(r#"{"op":"put","path":"../x","total_size":5}"#),
            _ => {
                raw.header(r#"{"op":"put","path":"shared","total_size":1000000}"#);
                raw.body(&[0u8; 1000]);
            }
        }
        hostile.push(raw);
    }
    let uploads: Vec<Vec<u8>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    drop(hostile);
    let shared = fs::read(root.join("shared")).unwrap();
    let winners = uploads
        .iter()
        .enumerate()
        .filter(|(i, d)| i % 2 == 1 && **d == shared)
        .count();
    assert_eq!(
        winners, 1,
        "the shared name holds exactly one upload, unmixed"
    );
    // The torn hostile uploads' temporary files go as soon as the server sees them end.
    eventually("no temporary file is left", || {
        tree(&root).iter().all(|n| !n.contains(".unstick-tmp"))
    });
}

#[test]
fn torn_upload_leaves_nothing_then_resume_completes_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let server = Server::start(&root, &[]);
    let data = pattern(3 << 20, 7);
    fs::write(dir.path().join("big"), &data).unwrap();
    // The previous version must survive a torn upload.
    fs::create_dir_all(&root).unwrap();
    fs::write(root.join("big"), b"old version").unwrap();

    let mut raw = Raw::connect(&server);
    raw.header(&json!({"op": "put", "path": "big", "total_size": data.len()}).to_string());
    raw.body(&data[..1 << 20]);
    raw.stream.shutdown(Shutdown::Both).unwrap();
    eventually("the partial upload is recorded and let go of", || {
        partial_size(&server, "big", dir.path()) == 1 << 20 && partial_is_idle(&root, "big")
    });
    assert_eq!(fs::read(root.join("big")).unwrap(), b"old version");

    ok(&unstick(&server, &["put", "--resume", "big"], dir.path()));
    assert_eq!(fs::read(root.join("big")).unwrap(), data);
    assert_eq!(tree(&root), ["big"]);
}

#[test]
fn resume_reports_the_offset_and_a_corrupted_partial_is_caught_not_extended() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let server = Server::start(&root, &[]);
    let data = pattern(2 << 20, 8);
    fs::write(dir.path().join("f"), &data).unwrap();

    // Torn after 1 MiB, then resumed: the client says where it resumed.
    let mut raw = Raw::connect(&server);
    raw.header(&json!({"op": "put", "path": "f", "total_size": data.len()}).to_string());
    raw.body(&data[..1 << 20]);
    drop(raw);
    eventually("partial recorded and let go of", || {
        partial_size(&server, "f", dir.path()) == 1 << 20 && partial_is_idle(&root, "f")
    });
    let out = unstick(&server, &["put", "-C", "f"], dir.path());
    ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("resumed at byte 1048576"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(root.join("f")).unwrap(), data);

    // Torn again, then the partial is damaged on the server's disk.
    let mut raw = Raw::connect(&server);
    raw.header(&json!({"op": "put", "path": "g", "total_size": data.len()}).to_string());
    raw.body(&data[..1 << 20]);
    drop(raw);
    eventually("partial recorded and let go of", || {
        partial_size(&server, "g", dir.path()) == 1 << 20 && partial_is_idle(&root, "g")
    });
    let partial = root.join(".unstick-partial-g");
    let mut bytes = fs::read(&partial).unwrap();
    bytes[1000] ^= 0xff;
    fs::write(&partial, &bytes).unwrap();
    fs::write(dir.path().join("g"), &data).unwrap();
    let out = unstick(&server, &["put", "--resume", "g"], dir.path());
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("partial_mismatch"), "{stderr}");
    assert!(!stderr.contains("resumed at byte"), "{stderr}");
    assert_eq!(fs::read(root.join("g")).unwrap(), data);
}

#[test]
fn a_server_killed_mid_upload_leaves_no_file_and_the_upload_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let mut server = Server::start(&root, &[]);
    let data = pattern(4 << 20, 9);
    fs::write(dir.path().join("k"), &data).unwrap();
    let mut raw = Raw::connect(&server);
    raw.header(&json!({"op": "put", "path": "k", "total_size": data.len()}).to_string());
    raw.body(&data[..2 << 20]);
    eventually("bytes reach the disk", || {
        fs::metadata(root.join(".unstick-partial-k")).is_ok_and(|m| m.len() == 2 << 20)
    });
    // A second upload of the same name meanwhile is staged in a temporary file.
    let mut second = Raw::connect(&server);
    second.header(&json!({"op": "put", "path": "k", "total_size": data.len()}).to_string());
    second.body(&data[..1 << 20]);
    let temporaries = || {
        tree(&root)
            .into_iter()
            .filter(|n| n.starts_with(".unstick-tmp-"))
            .count()
    };
    eventually("the second upload is staged", || temporaries() == 1);
    server.kill();
    drop((raw, second));
    assert!(!root.join("k").exists(), "nothing at the final name");

    // The restarted server removes the dead temporary file (in the background, once it
    // listens) and keeps the resumable partial.
    let server = Server::start(&root, &[]);
    eventually("the dead temporary file is removed", || temporaries() == 0);
    assert_eq!(partial_size(&server, "k", dir.path()), 2 << 20);
    let out = unstick(&server, &["put", "--resume", "k"], dir.path());
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("resumed at byte 2097152"));
    assert_eq!(fs::read(root.join("k")).unwrap(), data);
}

#[test]
fn hostile_sizes_are_refused_before_any_file_is_opened() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let server = Server::start(&root, &["--max-file-size", "1M"]);
    let cases = [
        (r#"{"op":"put","path":"a","total_size":-1}"#, "bad_frame"),
        (
            r#"{"op":"put","path":"a","total_size":9223372036854775808}"#,
            "too_large",
        ),
        (
            r#"{"op":"put","path":"a","total_size":2097152}"#,
            "too_large",
        ),
        (
            r#"{"op":"put","path":"a","total_size":10,"offset":1048570,"prefix_xxh3":"00000000000000000000000000000000"}"#,
            "too_large",
        ),
        (
            r#"{"filepath":"x","filename":"a","filesize":-1}"#,
            "bad_frame",
        ),
        (
            r#"{"filepath":"x","filename":"a","filesize":9223372036854775808}"#,
            "too_large",
        ),
    ];
    for (header, code) in cases {
        let mut raw = Raw::connect(&server);
        raw.header(header);
        raw.body(&[0u8; 100]);
        assert_eq!(raw.error_code(), code, "{header}");
    }
    let names = if root.exists() { tree(&root) } else { vec![] };
    assert!(names.is_empty(), "no file was opened: {names:?}");
    // N-1 bytes, then end of stream: nothing at the final name.
    let mut raw = Raw::connect(&server);
    raw.header(r#"{"filepath":"x","filename":"short","filesize":1000}"#);
    raw.body(&[7u8; 999]);
    raw.stream.shutdown(Shutdown::Write).unwrap();
    let _ = raw.reply();
    let mut raw = Raw::connect(&server);
    raw.header(r#"{"op":"put","path":"short2","total_size":1000}"#);
    raw.body(&[7u8; 999]);
    raw.stream.shutdown(Shutdown::Write).unwrap();
    let _ = raw.reply();
    std::thread::sleep(Duration::from_millis(200));
    let names = if root.exists() { tree(&root) } else { vec![] };
    assert!(
        names.iter().all(|n| n.starts_with(".unstick-partial-")),
        "{names:?}"
    );
    // The real client refuses an oversized file from the server's reply.
    fs::write(dir.path().join("big"), pattern(2 << 20, 1)).unwrap();
    let err = failed(&unstick(&server, &["put", "big"], dir.path()));
    assert!(err.contains("too_large"), "{err}");
    assert!(!root.join("big").exists());
}

#[test]
fn every_traversal_form_is_refused_and_nothing_lands_outside_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret"), b"secret").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret"), root.join("secret-link")).unwrap();
    let server = Server::start(&root, &[]);
    let control_characters = "\u{1}".repeat(300);
    let evil = [
        control_characters.as_str(),
        "../escape",
        "/tmp/escape",
        "a/../../escape",
        "..",
        "C:\\escape",
        "c:escape",
        "a\\..\\..\\escape",
        "a\u{0}b",
        "link/escape",
        "link/secret",
        ".unstick-partial-x",
        "a//b",
    ];
    for path in evil {
        let mut raw = Raw::connect(&server);
        raw.header(&json!({"op": "put", "path": path, "total_size": 6}).to_string());
        raw.body(b"escape");
        raw.header(r#"{"op":"done","file_xxh3":"00000000000000000000000000000000"}"#);
        assert_eq!(raw.error_code(), "bad_path", "put {path:?}");

        let mut raw = Raw::connect(&server);
        raw.header(&json!({"op": "get", "path": path}).to_string());
        assert_eq!(raw.error_code(), "bad_path", "get {path:?}");

        let mut raw = Raw::connect(&server);
        raw.header(&json!({"filepath": "C:\\x", "filename": path, "filesize": 6}).to_string());
        raw.body(b"escape");
        assert_eq!(raw.error_code(), "bad_path", "seed upload {path:?}");
    }
    let mut raw = Raw::connect(&server);
    raw.header(r#"{"op":"delete","path":"link/secret"}"#);
    assert_eq!(raw.error_code(), "bad_path");
    let mut raw = Raw::connect(&server);
    raw.header(r#"{"op":"delete","path":"secret-link"}"#);
    assert_eq!(raw.reply().unwrap().0["op"], "deleted");
    assert!(!root.join("secret-link").exists());
    // Deleting the link itself removes the link, never its target.
    assert_eq!(fs::read(outside.join("secret")).unwrap(), b"secret");
    assert_eq!(tree(&outside), ["secret"]);
    assert!(!dir.path().join("escape").exists());
    assert!(!Path::new("/tmp/escape").exists());
    // The client refuses the same names before connecting.
    let err = failed(&unstick(&server, &["get", "../escape"], dir.path()));
    assert!(err.contains("`..`"), "{err}");
}

#[test]
fn a_seed_style_python_client_is_stored_intact() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let server = Server::start(&root, &[]);
    // A non-ASCII folder (json.dumps escapes it as \u65b0...) and an emoji file name
    // (escaped as a surrogate pair).
    let folder = dir.path().join("新建文件夹");
    fs::create_dir(&folder).unwrap();
    let peers = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers");
    let cases = [
        ("😀 报告.bin", 3_000_000usize, None),
        ("with md5.bin", 100_000, Some("--md5")),
        ("empty", 0, None),
    ];
    for (i, (name, len, flag)) in cases.iter().enumerate() {
        let data = pattern(*len, 40 + i as u64);
        fs::write(folder.join(name), &data).unwrap();
        let mut cmd = Command::new("python3");
        cmd.arg(peers.join("ftp_seed_upload.py"))
            .arg(server.port())
            .arg(&folder)
            .arg(name);
        if let Some(flag) = flag {
            cmd.arg(flag);
        }
        let out = cmd.output().expect("python3");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The client closes without waiting: poll for the commit.
        let target = root.join(name);
        eventually("the upload is committed", || {
            fs::read(&target).is_ok_and(|b| b == data)
        });
    }
    // A seed header with a wrong md5 is not committed; the previous file survives.
    fs::write(folder.join("with md5.bin"), pattern(100_000, 99)).unwrap();
    let out = Command::new("python3")
        .arg(peers.join("ftp_seed_upload.py"))
        .arg(server.port())
        .arg(&folder)
        .arg("with md5.bin")
        .arg("--bad-md5")
        .output()
        .unwrap();
    assert!(out.status.success());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        fs::read(root.join("with md5.bin")).unwrap(),
        pattern(100_000, 41)
    );
    assert!(!tree(&root).iter().any(|n| n.contains("新建文件夹")));
    // Our own seed upload speaks the same header, so this server stores it too.
    let data = pattern(700_000, 77);
    fs::write(dir.path().join("legacy.bin"), &data).unwrap();
    ok(&unstick(
        &server,
        &["put", "--seed", "legacy.bin", "sub/legacy.bin"],
        dir.path(),
    ));
    eventually("the seed upload is committed", || {
        fs::read(root.join("sub/legacy.bin")).is_ok_and(|b| b == data)
    });
}

#[test]
fn put_seed_uploads_to_a_seed_style_python_server() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("dest");
    fs::create_dir(&dest).unwrap();
    let peers = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers");
    let mut python = Command::new("python3")
        .arg(peers.join("ftp_seed_server.py"))
        .arg(&dest)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut port = String::new();
    BufReader::new(python.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let data = pattern(1_500_000, 5);
    fs::write(dir.path().join("config"), &data).unwrap();
    let out = Command::new(BIN)
        .args(["ftp", "put", "--seed", "config", "--addr"])
        .arg(format!("127.0.0.1:{}", port.trim()))
        .current_dir(dir.path())
        .output()
        .unwrap();
    ok(&out);
    assert!(python.wait().unwrap().success());
    assert_eq!(fs::read(dest.join("config")).unwrap(), data);
}

#[test]
fn a_checksum_mismatch_is_detected_and_the_old_file_survives() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(&root).unwrap();
    fs::write(root.join("keep"), b"previous contents").unwrap();
    let server = Server::start(&root, &[]);
    let body = pattern(200_000, 3);
    let mut wrong = xxh3_hex(&body).into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    let mut raw = Raw::connect(&server);
    raw.header(&json!({"op": "put", "path": "keep", "total_size": body.len()}).to_string());
    raw.body(&body);
    raw.header(&json!({"op": "done", "file_xxh3": String::from_utf8(wrong).unwrap()}).to_string());
    assert_eq!(raw.error_code(), "checksum_mismatch");
    // The connection stays usable, and the right digest is accepted.
    raw.header(&json!({"op": "put", "path": "keep", "total_size": body.len()}).to_string());
    assert_eq!(fs::read(root.join("keep")).unwrap(), b"previous contents");
    raw.body(&body);
    raw.header(&json!({"op": "done", "file_xxh3": xxh3_hex(&body)}).to_string());
    let (reply, _) = raw.reply().unwrap();
    assert_eq!(reply["op"], "stored", "{reply}");
    assert_eq!(fs::read(root.join("keep")).unwrap(), body);
    assert_eq!(tree(&root), ["keep"]);
}

#[test]
fn get_resumes_a_partial_download_and_catches_a_corrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(&root).unwrap();
    let data = pattern(3 << 20, 12);
    fs::write(root.join("r"), &data).unwrap();
    let server = Server::start(&root, &[]);
    let part = dir.path().join(".r.unstick-part");
    fs::write(&part, &data[..1 << 20]).unwrap();
    let out = unstick(&server, &["get", "--resume", "r"], dir.path());
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("resumed at byte 1048576"));
    assert_eq!(fs::read(dir.path().join("r")).unwrap(), data);
    assert!(!part.exists());

    let mut bad = data[..1 << 20].to_vec();
    bad[12345] ^= 1;
    let part2 = dir.path().join(".r2.unstick-part");
    fs::write(&part2, &bad).unwrap();
    let err = failed(&unstick(
        &server,
        &["get", "--resume", "r", "r2"],
        dir.path(),
    ));
    assert!(err.contains("does not match"), "{err}");
    assert!(!dir.path().join("r2").exists());
    assert!(!part2.exists());
}

#[test]
fn ls_escapes_control_characters_in_names() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("sub")).unwrap();
    fs::write(root.join("evil\u{1b}[2J\nname"), b"x").unwrap();
    fs::write(root.join("plain.txt"), b"hello").unwrap();
    let server = Server::start(&root, &[]);
    let listing = ok(&unstick(&server, &["ls"], dir.path()));
    assert!(!listing.contains('\u{1b}'), "{listing:?}");
    assert!(listing.contains("evil\\x1b[2J\\nname"), "{listing:?}");
    assert!(listing.contains("sub/"), "{listing:?}");
    assert_eq!(listing.lines().count(), 3);
}

#[test]
fn disk_full_is_reported_and_the_temporary_file_removed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(&root).unwrap();
    fs::write(root.join("f"), b"previous").unwrap();
    // A file-size limit makes writes past 1 MiB fail, as a full disk does.
    let mut cmd = Server::command(&root);
    // SAFETY: the closure runs in the child between fork and exec and only calls setrlimit,
    // which is async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            let limit = libc::rlimit {
                rlim_cur: 1 << 20,
                rlim_max: 1 << 20,
            };
            libc::setrlimit(libc::RLIMIT_FSIZE, &limit);
            Ok(())
        });
    }
    let server = Server::spawn(cmd, &root);
    fs::write(dir.path().join("f"), pattern(3 << 20, 2)).unwrap();
    let err = failed(&unstick(&server, &["put", "f"], dir.path()));
    assert!(err.contains("no_space"), "{err}");
    assert_eq!(fs::read(server.root.join("f")).unwrap(), b"previous");
    assert_eq!(tree(&root), ["f"]);
}

#[test]
fn connections_over_the_limit_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("root"), &["--max-connections", "1"]);
    // A connection between requests holds no slot.
    let mut idle = Raw::connect(&server);
    idle.header(r#"{"op":"stat","path":"x"}"#);
    let (reply, _) = idle.reply().unwrap();
    assert_eq!(reply["op"], "stat");
    ok(&unstick(&server, &["ls"], dir.path()));
    // An upload in progress does.
    let mut first = Raw::connect(&server);
    first.header(r#"{"op":"put","path":"big","total_size":1000000}"#);
    first.body(&[7u8; 1000]);
    eventually("the upload holds the slot", || {
        let out = unstick(&server, &["ls"], dir.path());
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("busy")
    });
    let err = failed(&unstick(&server, &["ls"], dir.path()));
    assert!(err.contains("busy") && err.contains("retry"), "{err}");
    drop(first);
    eventually("the slot frees", || {
        unstick(&server, &["ls"], dir.path()).status.success()
    });
}

#[test]
fn tokens_are_required_when_set_and_idle_connections_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let server = Server::start(&root, &["--token", "s3cret", "--login-grace", "1s"]);
    let err = failed(&unstick(&server, &["ls"], dir.path()));
    assert!(err.contains("unauthorized"), "{err}");
    ok(&unstick(&server, &["ls", "--token", "s3cret"], dir.path()));
    // A seed upload carries no token: refused, nothing stored.
    let mut raw = Raw::connect(&server);
    raw.header(r#"{"filepath":"x","filename":"a","filesize":3}"#);
    raw.body(b"abc");
    assert_eq!(raw.error_code(), "unauthorized");
    assert!(!root.join("a").exists());
    // A silent connection is closed by the server (the read sees the end, not our timeout).
    let mut idle = Raw::connect(&server);
    let mut byte = [0u8; 1];
    assert_eq!(idle.stream.read(&mut byte).unwrap(), 0);
}

#[test]
fn a_delete_during_an_upload_never_lets_it_commit_another_uploads_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(&root).unwrap();
    fs::write(root.join("n"), b"old").unwrap();
    let server = Server::start(&root, &[]);
    let first = pattern(200_000, 21);
    let second = pattern(200_000, 22);
    let mut upload = Raw::connect(&server);
    upload.header(&json!({"op": "put", "path": "n", "total_size": first.len()}).to_string());
    upload.body(&first[..100_000]);
    eventually("the first upload is staged", || {
        fs::metadata(root.join(".unstick-partial-n")).is_ok_and(|m| m.len() == 100_000)
    });
    let mut delete = Raw::connect(&server);
    delete.header(r#"{"op":"delete","path":"n"}"#);
    assert_eq!(delete.reply().unwrap().0["op"], "deleted");
    // Another upload of the name starts while the first is still going.
    let mut other = Raw::connect(&server);
    other.header(&json!({"op": "put", "path": "n", "total_size": second.len()}).to_string());
    other.body(&second[..50_000]);
    eventually("the second upload is staged", || {
        tree(&root).iter().any(|n| {
            n.starts_with(".unstick-")
                && fs::metadata(root.join(n)).is_ok_and(|m| m.len() == 50_000)
        })
    });
    upload.body(&first[100_000..]);
    upload.header(&json!({"op": "done", "file_xxh3": xxh3_hex(&first)}).to_string());
    assert_eq!(upload.reply().unwrap().0["op"], "stored");
    let stored = fs::read(root.join("n")).unwrap();
    assert!(
        stored == first,
        "not the first upload, whole: {} bytes",
        stored.len()
    );
    other.body(&second[50_000..]);
    other.header(&json!({"op": "done", "file_xxh3": xxh3_hex(&second)}).to_string());
    assert_eq!(other.reply().unwrap().0["op"], "stored");
    assert!(fs::read(root.join("n")).unwrap() == second);
    assert_eq!(tree(&root), ["n"]);
}

#[test]
fn odd_entries_are_listed_escaped_and_refused_as_downloads() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("a directory")).unwrap();
    let not_utf8 = std::ffi::OsStr::from_bytes(b"latin1 caf\xe9");
    fs::write(root.join(not_utf8), b"x").unwrap();
    let fifo = std::ffi::CString::new(root.join("fifo").as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo has no memory effects.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let server = Server::start(&root, &[]);
    let listing = ok(&unstick(&server, &["ls"], dir.path()));
    assert!(listing.contains("latin1 caf\\xe9 "), "{listing:?}");
    assert_eq!(listing.lines().count(), 3, "{listing:?}");
    for name in ["a directory", "fifo"] {
        let err = failed(&unstick(&server, &["get", name, "out"], dir.path()));
        assert!(err.contains("bad_path"), "{err}");
    }
    // Uploads onto a directory's name are refused from the header, seed ones included.
    for header in [
        json!({"op": "put", "path": "a directory", "total_size": 3}),
        json!({"filepath": "x", "filename": "a directory", "filesize": 3}),
    ] {
        let mut raw = Raw::connect(&server);
        raw.header(&header.to_string());
        assert_eq!(raw.error_code(), "bad_path", "{header}");
    }
    assert!(root.join("a directory").is_dir());
    assert_eq!(
        tree(dir.path())
            .iter()
            .filter(|n| !n.starts_with("root"))
            .count(),
        0
    );
}

#[test]
fn a_partial_upload_alone_can_be_deleted_and_a_resume_without_one_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let server = Server::start(&root, &[]);
    let data = pattern(300_000, 31);
    let mut raw = Raw::connect(&server);
    raw.header(&json!({"op": "put", "path": "d/torn", "total_size": data.len()}).to_string());
    raw.body(&data[..100_000]);
    eventually("the partial upload is recorded", || {
        partial_size(&server, "d/torn", dir.path()) == 100_000
    });
    // While the upload runs, it owns the name: delete says so and leaves its partial alone.
    let err = failed(&unstick(&server, &["delete", "d/torn"], dir.path()));
    assert!(err.contains("busy") && err.contains("in progress"), "{err}");
    drop(raw);
    // Nothing at the final name, but the partial is what there is of it: once the server has
    // seen the upload break off, delete drops it, and then the directory, which looked empty,
    // can go too.
    eventually("delete drops the broken-off upload's partial", || {
        unstick(&server, &["delete", "d/torn"], dir.path())
            .status
            .success()
    });
    assert_eq!(tree(&root), ["d"]);
    ok(&unstick(&server, &["delete", "d"], dir.path()));
    let err = failed(&unstick(&server, &["delete", "d"], dir.path()));
    assert!(err.contains("not_found"), "{err}");

    // A resume of an upload the server holds nothing of is refused without leaving a file.
    let mut raw = Raw::connect(&server);
    let resumed = json!({"op": "put", "path": "r", "total_size": 10, "offset": 5,
        "prefix_xxh3": xxh3_hex(&data[..5])});
    raw.header(&resumed.to_string());
    raw.body(&data[5..15]);
    assert_eq!(raw.error_code(), "partial_mismatch");
    assert!(tree(&root).is_empty(), "{:?}", tree(&root));
}

#[test]
fn uploading_a_fifo_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("root"), &[]);
    let fifo = std::ffi::CString::new(dir.path().join("pipe").into_os_string().into_vec()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo has no memory effects.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    for legacy in [false, true] {
        let mut command = Command::new(BIN);
        command
            .args(["ftp", "put", "pipe", "--addr", &server.addr])
            .args(legacy.then_some("--seed"))
            .current_dir(dir.path())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("`put` of a FIFO hangs (legacy: {legacy})");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(!status.success());
        assert!(stderr.contains("not a regular file"), "{stderr}");
    }
}

#[test]
fn the_client_escapes_what_a_hostile_server_says() {
    // A fake server that answers every request with one hostile frame, then closes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let replies = [
        json!({"op": "stat", "exists": true, "kind": "file\u{1b}[2J", "size": 1, "mtime": 0,
            "partial_size": 0}),
        json!({"op": "error", "code": "busy\u{1b}]0;x\u{7}", "message": "go \u{1b}[31maway"}),
    ];
    let fake = std::thread::spawn(move || {
        for reply in replies {
            let (mut stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut len = [0u8; 4];
            stream.read_exact(&mut len).unwrap();
            let mut request = vec![0u8; i32::from_le_bytes(len) as usize];
            stream.read_exact(&mut request).unwrap();
            let text = reply.to_string();
            stream
                .write_all(&(text.len() as i32).to_le_bytes())
                .unwrap();
            stream.write_all(text.as_bytes()).unwrap();
        }
    });
    let dir = tempfile::tempdir().unwrap();
    for args in [["stat", "x"], ["ls", "d"]] {
        let out = Command::new(BIN)
            .arg("ftp")
            .args(args)
            .args(["--addr", &addr, "--timeout", "10"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        let shown = [out.stdout, out.stderr].concat();
        assert!(
            !shown.contains(&0x1b),
            "{}",
            String::from_utf8_lossy(&shown)
        );
        assert!(
            !shown.contains(&0x07),
            "{}",
            String::from_utf8_lossy(&shown)
        );
        assert!(String::from_utf8_lossy(&shown).contains("\\x1b"));
    }
    fake.join().unwrap();
}

#[test]
fn get_names_the_download_after_the_remote_path_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("2026")).unwrap();
    fs::write(root.join("2026/q3.pdf"), b"quarter three").unwrap();
    let server = Server::start(&root, &[]);
    // No LOCAL: the remote path's last component, in the current directory.
    ok(&unstick(&server, &["get", "2026/q3.pdf"], dir.path()));
    assert_eq!(
        fs::read(dir.path().join("q3.pdf")).unwrap(),
        b"quarter three"
    );
    // LOCAL a directory: the same name inside it.
    fs::create_dir(dir.path().join("into")).unwrap();
    ok(&unstick(
        &server,
        &["get", "2026/q3.pdf", "into"],
        dir.path(),
    ));
    assert_eq!(
        fs::read(dir.path().join("into/q3.pdf")).unwrap(),
        b"quarter three"
    );
    // LOCAL a file name: exactly there.
    ok(&unstick(
        &server,
        &["get", "2026/q3.pdf", "renamed"],
        dir.path(),
    ));
    assert_eq!(
        fs::read(dir.path().join("renamed")).unwrap(),
        b"quarter three"
    );
    // Nothing else was written next to them (no `2026/` directory, no partial download).
    let mut local = tree(dir.path());
    local.retain(|n| !n.starts_with("root"));
    assert_eq!(local, ["into", "into/q3.pdf", "q3.pdf", "renamed"]);
}

#[test]
fn serve_defaults_to_the_seeds_port_and_an_unstick_files_root() {
    // The root is created in the current directory when missing.
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(BIN);
    command
        .args(["ftp", "serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let server = Server::spawn(command, &dir.path().join("unstick-files"));
    assert!(server.root.is_dir(), "./unstick-files was not created");
    fs::write(dir.path().join("f"), b"stored").unwrap();
    ok(&unstick(&server, &["put", "f"], dir.path()));
    assert_eq!(fs::read(server.root.join("f")).unwrap(), b"stored");
    // Every subcommand's default address is the seed's port, under either name of the tool.
    for subcommand in ["serve", "put", "get", "ls", "stat", "delete"] {
        let help_of = |tool| {
            let help = Command::new(BIN)
                .args([tool, subcommand, "--help"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&help.stdout).into_owned()
        };
        let help = help_of("ftp");
        assert!(help.contains("127.0.0.1:8090"), "{subcommand}: {help}");
        assert_eq!(
            help_of("files"),
            help,
            "`unstick files {subcommand}` is `ftp`'s"
        );
    }
}

#[test]
fn serve_refuses_a_non_loopback_address_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["ftp", "serve", "--listen", "0.0.0.0:0", "--root"])
        .arg(dir.path().join("root"))
        .env_remove("UNSTICK_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server started on 0.0.0.0 without a token");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "it printed an address: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("without a token"), "{stderr}");
}

#[test]
fn a_progress_bar_is_drawn_on_a_terminal_and_nothing_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let server = Server::start(&root, &[]);
    fs::write(dir.path().join("f"), pattern(3 << 20, 5)).unwrap();
    // `put` with its stderr on a pseudo-terminal; everything drawn there is printed as hex.
    let script = r#"
import os, select, subprocess, sys
master, slave = os.openpty()
put = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=slave)
os.close(slave)
drawn = b''
while True:
    if not select.select([master], [], [], 20)[0]:
        put.kill()
        sys.exit('put drew nothing for 20 s')
    try:
        chunk = os.read(master, 65536)
    except OSError:
        break
    if not chunk:
        break
    drawn += chunk
sys.stdout.write(drawn.hex())
sys.exit(put.wait(timeout=20))
"#;
    let out = Command::new("python3")
        .args(["-c", script, BIN, "ftp", "put", "f", "--addr", &server.addr])
        .current_dir(dir.path())
        .output()
        .expect("python3");
    assert!(out.status.success(), "{out:?}");
    let hex = String::from_utf8(out.stdout).unwrap();
    let drawn: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let drawn = String::from_utf8_lossy(&drawn);
    assert!(drawn.contains("3.00 MiB"), "{drawn}");
    assert!(drawn.contains("/s ETA"), "{drawn}");
    // Not a terminal: only the one-line confirmation.
    let out = unstick(&server, &["put", "f", "g"], dir.path());
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("ETA") && !stderr.contains('\u{1b}'),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn a_silent_server_is_reported_as_not_answering_within_the_timeout() {
    // Accepts, reads nothing, answers nothing.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let started = Instant::now();
    let out = Command::new(BIN)
        .args(["ftp", "ls", "--addr", &addr, "--timeout", "300ms"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(message.contains("did not answer in time"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the 300 ms limit was not applied"
    );
    drop(silent);
}
