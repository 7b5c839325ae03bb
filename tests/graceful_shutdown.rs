//! Graceful shutdown on real signals (issue 7): SIGTERM or SIGINT lets the requests in progress
//! finish within `--shutdown-grace`, serves nobody new, kills what is left when the grace runs
//! out (commands' process groups, staging files) and exits 0; a second signal ends the server
//! at once.

mod serve_common;
mod shell_common;

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::thread;
use std::time::Duration;

use serde_json::json;
use serve_common::{
    ClientProcess, Raw, Served, eventually, frames_in, is_alive, names_in, xxh3_hex,
};
use shell_common::{exec_frame, group_of, live_group_members, pseudo_random, shells_of};

/// How long a server may take to exit once it should.
const EXIT_LIMIT: Duration = Duration::from_secs(10);

/// Kills a command's process group when the test ends, whatever happened.
struct GroupGuard(u32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if !live_group_members(self.0).is_empty() {
            serve_common::send_signal_to_group(self.0, libc::SIGKILL);
        }
    }
}

/// Waits for `dir/name` to hold a complete line of numbers, as a command wrote it.
fn numbers_written_to(dir: &Path, name: &str) -> Vec<u32> {
    let path = dir.join(name);
    let mut numbers = Vec::new();
    let written = eventually(Duration::from_secs(10), || {
        let Ok(text) = fs::read_to_string(&path) else {
            return false;
        };
        let Some(line) = text.strip_suffix('\n') else {
            return false;
        };
        numbers = line
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        !numbers.is_empty()
    });
    assert!(written, "the command did not write {name}");
    numbers
}

/// A connection opened after the signal: it must be refused, or closed without the command
/// running (an error frame is fine). Returns a description of what went wrong, if anything.
fn newcomer_is_turned_away(addr: &str, workdir: &Path) -> Result<(), String> {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return Ok(()); // refused: the listener is closed
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("read timeout");
    if stream
        .write_all(&exec_frame("touch late; echo late"))
        .is_err()
    {
        return Ok(());
    }
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err("a connection made after the signal was left open".into());
            }
            Err(_) => break, // reset
        }
    }
    let ops: Vec<_> = frames_in(&received)
        .into_iter()
        .map(|f| f["op"].as_str().unwrap_or("").to_string())
        .collect();
    if ops.iter().any(|op| op == "stdout" || op == "exit") {
        return Err(format!(
            "a connection made after the signal was served: {ops:?}"
        ));
    }
    thread::sleep(Duration::from_millis(200));
    if workdir.join("late").exists() {
        return Err("a command sent after the signal ran".into());
    }
    Ok(())
}

#[test]
fn sigterm_lets_a_running_command_finish_turns_newcomers_away_and_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let workdir = dir.path().to_str().expect("UTF-8 path");
    let mut server = Served::shell(&["--workdir", workdir]);
    let client = ClientProcess::spawn(
        &["shell", "connect", &server.addr, "-c", "sleep 2; echo done"],
        None,
    );
    assert!(
        eventually(Duration::from_secs(10), || !shells_of(server.pid())
            .is_empty()),
        "the command never started"
    );
    server.signal(libc::SIGTERM);
    thread::sleep(Duration::from_millis(200));
    let newcomer = newcomer_is_turned_away(&server.addr, dir.path());

    let out = client.finish(Duration::from_secs(20));
    assert_eq!(
        out.stdout,
        b"done\n",
        "the running command was cut short: {}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    assert_eq!(out.status.code(), Some(0));
    newcomer.unwrap();
    let status = server
        .wait_exit(EXIT_LIMIT)
        .expect("the server did not exit");
    assert_eq!(status.code(), Some(0), "{status:?}; log:\n{}", server.log());
}

/// `--shutdown-grace 1s`, a command with a background job still running: `signal` ends the
/// server with status 0 within a few seconds, and the job with it.
fn grace_runs_out_and_the_commands_are_killed(signal: libc::c_int) {
    let dir = tempfile::tempdir().expect("tempdir");
    let workdir = dir.path().to_str().expect("UTF-8 path");
    let mut server = Served::shell(&["--workdir", workdir, "--shutdown-grace", "1s"]);
    let client = ClientProcess::spawn(
        &[
            "shell",
            "connect",
            &server.addr,
            "-c",
            "sleep 60 & echo $! $$ > pids; wait",
        ],
        None,
    );
    let pids = numbers_written_to(dir.path(), "pids");
    let (job, group) = (pids[0], group_of(pids[1]));
    let _guard = GroupGuard(group);
    assert!(is_alive(job));

    server.signal(signal);
    let status = server
        .wait_exit(EXIT_LIMIT)
        .expect("the server did not exit when its shutdown grace ran out");
    assert_eq!(status.code(), Some(0), "{status:?}; log:\n{}", server.log());
    assert!(
        eventually(Duration::from_secs(5), || !is_alive(job)),
        "the background job {job} outlived the server"
    );
    assert!(
        eventually(Duration::from_secs(5), || live_group_members(group)
            .is_empty()),
        "the command's group outlived the server: {:?}",
        live_group_members(group)
    );
    // The client learns that its command ended, one way or another.
    client.finish(Duration::from_secs(20));
}

#[test]
fn sigterm_past_the_grace_kills_the_commands_and_exits_0() {
    grace_runs_out_and_the_commands_are_killed(libc::SIGTERM);
}

#[test]
fn sigint_past_the_grace_kills_the_commands_and_exits_0() {
    grace_runs_out_and_the_commands_are_killed(libc::SIGINT);
}

#[test]
fn a_second_signal_ends_the_server_at_once_with_its_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let workdir = dir.path().to_str().expect("UTF-8 path");
    let mut server = Served::shell(&["--workdir", workdir, "--shutdown-grace", "60s"]);
    let client = ClientProcess::spawn(
        &[
            "shell",
            "connect",
            &server.addr,
            "-c",
            "echo $$ > pid; sleep 60",
        ],
        None,
    );
    let group = group_of(numbers_written_to(dir.path(), "pid")[0]);
    let _guard = GroupGuard(group);

    server.signal(libc::SIGTERM);
    // Within its 60 s grace, with a command running, the server waits for it.
    assert!(
        server.wait_exit(Duration::from_millis(500)).is_none(),
        "the server did not wait for its running command; log:\n{}",
        server.log()
    );
    server.signal(libc::SIGINT);
    let status = server
        .wait_exit(EXIT_LIMIT)
        .expect("the second signal did not end the server");
    assert!(!status.success(), "{status:?}");
    assert!(
        eventually(Duration::from_secs(5), || live_group_members(group)
            .is_empty()),
        "the command's group outlived the server: {:?}",
        live_group_members(group)
    );
    client.finish(Duration::from_secs(20));
}

/// Sends `bytes`, failing with a clear message if the server is gone.
fn send(raw: &mut Raw, bytes: &[u8], what: &str) {
    if let Err(e) = raw.stream.write_all(bytes) {
        panic!("{what}: the server dropped the upload: {e}");
    }
}

fn put_header(path: &str, size: usize) -> Vec<u8> {
    let text = json!({"op": "put", "path": path, "total_size": size}).to_string();
    let mut frame = (text.len() as i32).to_le_bytes().to_vec();
    frame.extend_from_slice(text.as_bytes());
    frame
}

fn done_trailer(data: &[u8]) -> Vec<u8> {
    let text = json!({"op": "done", "file_xxh3": xxh3_hex(data), "total_size": 0}).to_string();
    let mut frame = (text.len() as i32).to_le_bytes().to_vec();
    frame.extend_from_slice(text.as_bytes());
    frame
}

fn partial_len(root: &Path, name: &str) -> Option<u64> {
    fs::metadata(root.join(format!(".unstick-partial-{name}")))
        .ok()
        .map(|m| m.len())
}

#[test]
fn an_upload_in_progress_at_sigterm_is_stored_and_the_file_server_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let mut server = Served::ftp(&root, &[]);
    let data = pseudo_random(1 << 20, 71);
    let half = data.len() / 2;
    let mut raw = Raw::connect(&server.addr);
    send(&mut raw, &put_header("up.bin", data.len()), "header");
    send(&mut raw, &data[..half], "first half");
    assert!(
        eventually(Duration::from_secs(10), || partial_len(&root, "up.bin")
            == Some(half as u64)),
        "the first half never reached the disk"
    );

    server.signal(libc::SIGTERM);
    thread::sleep(Duration::from_millis(300));
    send(&mut raw, &data[half..], "second half");
    send(&mut raw, &done_trailer(&data), "trailer");
    let (reply, _) = raw.reply().unwrap_or_else(|| {
        panic!(
            "no reply to the upload after SIGTERM; log:\n{}",
            server.log()
        )
    });
    assert_eq!(reply["op"], "stored", "{reply}");
    drop(raw);
    let status = server
        .wait_exit(EXIT_LIMIT)
        .expect("the server did not exit");
    assert_eq!(status.code(), Some(0), "{status:?}; log:\n{}", server.log());
    assert_eq!(fs::read(root.join("up.bin")).expect("stored file"), data);
}

#[test]
fn stalled_uploads_past_the_grace_leave_no_file_and_no_temporary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let mut server = Served::ftp(&root, &["--shutdown-grace", "1s"]);
    let data = pseudo_random(1 << 20, 72);
    // The first upload of the name grows the partial; a second one meanwhile is staged in a
    // temporary file. Both stall mid-body.
    let mut first = Raw::connect(&server.addr);
    send(&mut first, &put_header("stall.bin", data.len()), "header");
    send(&mut first, &data[..data.len() / 2], "first half");
    assert!(
        eventually(Duration::from_secs(10), || partial_len(&root, "stall.bin")
            == Some(data.len() as u64 / 2)),
        "the first upload never reached the disk"
    );
    let mut second = Raw::connect(&server.addr);
    send(&mut second, &put_header("stall.bin", data.len()), "header");
    send(&mut second, &data[..data.len() / 4], "first quarter");
    let temporaries = || {
        names_in(&root)
            .into_iter()
            .filter(|n| n.starts_with(".unstick-tmp-"))
            .collect::<Vec<_>>()
    };
    assert!(
        eventually(Duration::from_secs(10), || !temporaries().is_empty()),
        "the second upload was not staged: {:?}",
        names_in(&root)
    );

    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(EXIT_LIMIT)
        .expect("the server did not exit when its shutdown grace ran out");
    assert_eq!(status.code(), Some(0), "{status:?}; log:\n{}", server.log());
    assert!(
        !root.join("stall.bin").exists(),
        "a stalled upload committed"
    );
    assert_eq!(
        temporaries(),
        Vec::<String>::new(),
        "temporary files left behind"
    );
    drop((first, second));
}

#[test]
fn unstick_serve_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Served::spawn(
        &["serve", "--shell-port", "0", "--ftp-port", "0"],
        Some(dir.path()),
    );
    for label in ["shell 127.0.0.1:", "ftp 127.0.0.1:"] {
        let line = server.next_stdout_line(Duration::from_secs(20));
        assert!(
            line.as_deref().is_some_and(|l| l.starts_with(label)),
            "`unstick serve` did not print `{label}...`: {line:?}; log:\n{}",
            server.log()
        );
    }
    assert!(dir.path().join("unstick-files").is_dir());
    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(EXIT_LIMIT)
        .expect("the server did not exit");
    assert_eq!(status.code(), Some(0), "{status:?}; log:\n{}", server.log());
}
