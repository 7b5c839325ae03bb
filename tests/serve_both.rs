//! `unstick serve`: both servers in one process, and a port that is taken ends the command
//! instead of leaving one server running alone.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_unstick");

#[test]
fn serve_stops_when_one_of_its_servers_cannot_listen() {
    // The file server's port is occupied, by this listener or by whoever already holds it.
    let _held = TcpListener::bind("127.0.0.1:8090");
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .arg("serve")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`unstick serve` kept running with one of its servers down");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!status.success());
    assert!(stderr.contains("cannot listen"), "{stderr}");
}
