//! `unstick serve`: both servers in one process, with the options both take; the address lines
//! are labelled and printed only once both servers listen, and a port that is taken ends the
//! command instead of leaving one server running alone.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod serve_common;
mod shell_common;

const BIN: &str = env!("CARGO_BIN_EXE_unstick");

/// Waits up to 20 s for `child` to exit; its stdout and stderr.
fn exit_of(mut child: Child) -> (std::process::ExitStatus, String, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`unstick serve` kept running with one of its servers down");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `unstick serve ARGS...` in a new temporary directory.
fn serve(args: &[&str], dir: &std::path::Path) -> Child {
    Command::new(BIN)
        .arg("serve")
        .args(args)
        .env_remove("UNSTICK_TOKEN")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn serve_stops_and_prints_no_address_when_one_of_its_servers_cannot_listen() {
    // The file server's port is taken; the shell server's is free.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let child = serve(&["--shell-port", "0", "--ftp-port", &port], dir.path());
    let (status, stdout, stderr) = exit_of(child);
    assert!(!status.success());
    assert!(stderr.contains("file server: cannot listen"), "{stderr}");
    assert_eq!(
        stdout, "",
        "an address was printed for a server that did not start"
    );
}

#[test]
fn serve_takes_both_servers_options_and_labels_its_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let root = dir.path().join("files");
    let mut child = serve(
        &[
            "--listen",
            "localhost",
            "--shell-port",
            "0",
            "--ftp-port",
            "0",
            "--root",
            root.to_str().unwrap(),
            "--workdir",
            work.to_str().unwrap(),
            "--token",
            "sesame",
        ],
        dir.path(),
    );
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || lines.next().unwrap().unwrap();
    let (shell, ftp) = (next(), next());
    let shell = shell.strip_prefix("shell ").expect(&shell).to_owned();
    let ftp = ftp.strip_prefix("ftp ").expect(&ftp).to_owned();
    // The shell runs in --workdir and wants the token.
    let pwd = Command::new(BIN)
        .args(["shell", "connect", "--addr", &shell, "--token", "sesame"])
        .args(["-c", "pwd"])
        .output()
        .unwrap();
    assert!(pwd.status.success(), "{pwd:?}");
    let pwd = String::from_utf8_lossy(&pwd.stdout);
    assert!(pwd.trim().ends_with("/work"), "{pwd}");
    let refused = Command::new(BIN)
        .args(["shell", "connect", &shell, "--token", "wrong", "-c", "true"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    // The file server serves --root.
    std::fs::write(dir.path().join("f.txt"), b"filed").unwrap();
    let put = Command::new(BIN)
        .current_dir(dir.path())
        .args(["ftp", "put", "f.txt", "--addr", &ftp, "--token", "sesame"])
        .output()
        .unwrap();
    assert!(put.status.success(), "{put:?}");
    assert_eq!(std::fs::read(root.join("f.txt")).unwrap(), b"filed");
    // A graceful stop writes out every line; each event of either server says whose it is.
    assert!(serve_common::send_signal(child.id(), libc::SIGTERM));
    let (status, _, log) = exit_of(child);
    assert!(status.success(), "{status:?}\n{log}");
    let mut seen = [0; 4];
    for line in log.lines() {
        let server = ["shell", "ftp"]
            .into_iter()
            .position(|name| line.contains(&format!(" server=\"{name}\"")));
        let event = [
            "connection opened",
            "connection closed",
            "refused",
            "command finished",
        ]
        .iter()
        .position(|event| line.contains(event));
        if let Some(event) = event {
            assert!(server.is_some(), "a line that names no server: {line}");
            seen[event] += 1;
        }
    }
    assert!(seen.iter().all(|&n| n > 0), "{seen:?}\n{log}");
}

#[test]
fn serve_refuses_a_port_in_listen() {
    let dir = tempfile::tempdir().unwrap();
    let child = serve(&["--listen", "127.0.0.1:8080"], dir.path());
    let (status, stdout, stderr) = exit_of(child);
    assert!(!status.success());
    assert!(stderr.contains("--shell-port"), "{stderr}");
    assert_eq!(stdout, "");
}

#[test]
fn failed_tokens_on_one_server_penalize_the_address_on_both() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("files");
    let mut child = serve(
        &[
            "--shell-port",
            "0",
            "--ftp-port",
            "0",
            "--root",
            root.to_str().unwrap(),
            "--token",
            "sesame",
            "--max-auth-failures",
            "2",
            "--auth-penalty",
            "10m",
        ],
        dir.path(),
    );
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || lines.next().unwrap().unwrap();
    let (shell, ftp) = (next(), next());
    let shell = shell.strip_prefix("shell ").expect(&shell).to_owned();
    let ftp = ftp.strip_prefix("ftp ").expect(&ftp).to_owned();
    let shell_with = |token: &str| {
        Command::new(BIN)
            .args(["shell", "connect", &shell, "--token", token, "-c", "true"])
            .output()
            .unwrap()
    };
    // Guesses at the shell, until its replies say the address is penalized (bounded).
    let stderr_of = |out: &std::process::Output| String::from_utf8_lossy(&out.stderr).into_owned();
    let guessed = (0..10).any(|_| stderr_of(&shell_with("wrong")).contains("(penalized)"));
    assert!(guessed, "never penalized");
    let right = shell_with("sesame");
    assert!(!right.status.success());
    let told = stderr_of(&right);
    assert!(
        told.contains("(penalized)") && told.contains("s more") && told.contains("--token"),
        "{told}"
    );
    // The file server shares the count: the right token is refused there too.
    let ls = Command::new(BIN)
        .args(["ftp", "ls", "--addr", &ftp, "--token", "sesame"])
        .output()
        .unwrap();
    assert!(!ls.status.success());
    let told = stderr_of(&ls);
    assert!(
        told.contains("(penalized)") && told.contains("s more"),
        "{told}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
