//! The Windows build of `unstick` as a server, run under Wine, driven by the Linux client and
//! by the seed-style Python client: `cmd.exe` commands with their output and exit codes, and
//! the file server's transfers, atomic commit, resume and Windows jail.
//!
//! `.ci/run` builds the Windows binary (x86_64-pc-windows-gnu) and names it in
//! `UNSTICK_WINDOWS_EXE`; without it these tests say so and pass, as there is nothing to run.

mod serve_common;
mod shell_common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serve_common::unstick_command;

/// How long Wine may take to start a server and print its address.
const START_LIMIT: Duration = Duration::from_secs(90);

/// The Windows binary, when `.ci/run` built one.
fn windows_exe() -> Option<PathBuf> {
    match std::env::var_os("UNSTICK_WINDOWS_EXE") {
        Some(exe) => Some(PathBuf::from(exe)),
        None => {
            println!(
                "skipped: UNSTICK_WINDOWS_EXE is not set (.ci/run builds the Windows binary and \
                 sets it)"
            );
            None
        }
    }
}

/// `unstick.exe ARGS...` under Wine; killed on drop.
struct WineServer {
    child: Child,
    addr: String,
}

impl WineServer {
    fn start(exe: &Path, args: &[&str], cwd: &Path) -> WineServer {
        let runner = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/wine/run.sh");
        let mut child = Command::new(runner)
            .arg(exe)
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Wine");
        let stdout = child.stdout.take().unwrap();
        let (lines, first) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let addr = first
            .recv_timeout(START_LIMIT)
            .expect("the Windows server printed its address")
            .trim()
            .to_owned();
        assert!(addr.starts_with("127.0.0.1:"), "{addr}");
        WineServer { child, addr }
    }
}

impl Drop for WineServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(args: &[&str], cwd: &Path) -> Output {
    shell_common::wait_bounded(unstick_command(args, Some(cwd)).spawn().expect("spawn"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn cmd_exe_serves_the_framed_client_and_the_seed_client() {
    let Some(exe) = windows_exe() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = WineServer::start(
        &exe,
        &[
            "shell",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--seed-reply",
            "json",
        ],
        dir.path(),
    );
    let out = run(
        &[
            "shell",
            "connect",
            &server.addr,
            "-c",
            "echo out& echo err 1>&2& exit /b 3",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "out\r\n");
    assert!(text(&out.stderr).contains("err"), "{}", text(&out.stderr));

    // The client's input reaches the command through the pipe the Windows runner writes
    // (`more` copies it; Wine's `findstr` reads no piped input).
    let mut piped = unstick_command(
        &["shell", "connect", &server.addr, "-c", "more"],
        Some(dir.path()),
    );
    let mut child = piped.stdin(Stdio::piped()).spawn().expect("spawn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"first line\r\nsecond line\r\n")
        .unwrap();
    let out = shell_common::wait_bounded(child);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "first line\r\nsecond line\r\n");

    // The seed's client: a raw command, a JSON header and the output with its MD5.
    let (host, port) = server.addr.rsplit_once(':').unwrap();
    let seed = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/shell_seed_client.py"))
        .args([host, port, "json", "echo seed"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let out = shell_common::wait_bounded(seed);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(reply["gbk"], "seed\r\n");
    assert_eq!(reply["md5_ok"], true);
}

#[test]
fn the_file_server_keeps_its_promises_on_windows() {
    let Some(exe) = windows_exe() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let root = cwd.join("root");
    let server = WineServer::start(
        &exe,
        &[
            "ftp",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--root",
            root.to_str().unwrap(),
        ],
        cwd,
    );
    let ftp = |args: &[&str]| {
        let mut all = vec!["ftp"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--addr", &server.addr]);
        run(&all, cwd)
    };
    let ok = |out: Output| {
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout) + &text(&out.stderr)
    };
    for (name, len) in [("empty.bin", 0), ("one.bin", 1), ("big.bin", 3 << 20)] {
        let data = shell_common::pseudo_random(len, len as u64);
        fs::write(cwd.join(name), &data).unwrap();
        ok(ftp(&["put", name]));
        ok(ftp(&["get", name, "back.bin"]));
        assert!(fs::read(cwd.join("back.bin")).unwrap() == data, "{name}");
        assert!(fs::read(root.join(name)).unwrap() == data, "{name}");
    }
    let listing = ok(ftp(&["ls"]));
    assert!(
        listing.contains("big.bin") && listing.contains("3145728"),
        "{listing}"
    );

    // Directories, moves and removals: handle-relative renames and POSIX-semantics deletes.
    ok(ftp(&["mkdir", "kept"]));
    ok(ftp(&["mv", "one.bin", "kept/moved.bin"]));
    assert!(!root.join("one.bin").exists());
    let one = fs::read(cwd.join("one.bin")).unwrap();
    assert!(fs::read(root.join("kept").join("moved.bin")).unwrap() == one);
    let refused = ftp(&["rm", "kept"]);
    assert!(
        !refused.status.success(),
        "a directory with a file in it was removed"
    );
    ok(ftp(&["rm", "kept/moved.bin"]));
    ok(ftp(&["rm", "kept"]));
    assert!(!root.join("kept").exists());
    ok(ftp(&["put", "one.bin"]));

    // Atomic: an upload whose digest does not match leaves the stored file as it was.
    let before = fs::read(root.join("big.bin")).unwrap();
    {
        let mut raw = TcpStream::connect(&server.addr).unwrap();
        raw.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let body = vec![7u8; 1000];
        let header = format!(
            r#"{{"op":"put","path":"big.bin","algorithm":"xxh3","total_size":{}}}"#,
            body.len()
        );
        let trailer =
            r#"{"op":"done","file_xxh3":"00000000000000000000000000000000","total_size":0}"#;
        for frame in [
            shell_common::header_frame(&header, &body),
            shell_common::header_frame(trailer, b""),
        ] {
            raw.write_all(&frame).unwrap();
        }
        let mut reply = Vec::new();
        let _ = std::io::Read::read_to_end(&mut raw, &mut reply);
        assert!(
            text(&reply).contains("checksum_mismatch"),
            "{}",
            text(&reply)
        );
    }
    assert!(fs::read(root.join("big.bin")).unwrap() == before);

    // Resume: an upload cut off is kept, and `put --resume` finishes it.
    let torn = shell_common::pseudo_random(2 << 20, 11);
    fs::write(cwd.join("torn.bin"), &torn).unwrap();
    {
        let mut raw = TcpStream::connect(&server.addr).unwrap();
        let header = format!(
            r#"{{"op":"put","path":"torn.bin","total_size":{}}}"#,
            torn.len()
        );
        raw.write_all(&(header.len() as i32).to_le_bytes()).unwrap();
        raw.write_all(header.as_bytes()).unwrap();
        raw.write_all(&torn[..1 << 20]).unwrap();
    }
    let kept = shell_common::eventually(Duration::from_secs(30), || {
        let out = ftp(&["stat", "torn.bin"]);
        (text(&out.stdout) + &text(&out.stderr)).contains("interrupted upload of 1048576")
    });
    assert!(kept, "the torn upload was not kept");
    let resumed = shell_common::eventually(Duration::from_secs(30), || {
        let out = ftp(&["put", "--resume", "torn.bin"]);
        out.status.success() && text(&out.stderr).contains("resumed at byte 1048576")
    });
    assert!(resumed, "not resumed at 1 MiB");
    assert!(fs::read(root.join("torn.bin")).unwrap() == torn);

    // The jail: Windows' own traps are refused by the server.
    for name in ["CON", "nul.txt", "a.txt:stream", "trailing.", "PROGRA~1"] {
        let out = ftp(&["put", "one.bin", name]);
        assert!(!out.status.success(), "{name} was accepted");
        assert!(
            text(&out.stderr).contains("refused"),
            "{name}: {}",
            text(&out.stderr)
        );
    }
    let stored: Vec<String> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".unstick-"))
        .collect();
    assert_eq!(stored.len(), 4, "{stored:?}");
    ok(ftp(&["delete", "big.bin"]));
    assert!(!root.join("big.bin").exists());
}
