//! The clients over a serial line: a pseudo-terminal stands in for a device's UART, and a
//! bridge carries its bytes to a real server over loopback TCP. It plays a device's link layer
//! (docs/PROTOCOL.md, "Serial lines"): it takes the client's link frames, a new connection to
//! the server for each request's start frame, drops a request with a frame missing (and says
//! so), and frames the replies. The same bridge can flip and drop bytes on the way, as a noisy
//! line does: nothing wrong is ever stored or run, and the link recovers with no quiet gap.

mod serial_bridge;
mod serve_common;
mod shell_common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serial_bridge::SerialBridge;
use serve_common::{Served, run_client};

/// How long one client command may take.
const LIMIT: Duration = Duration::from_secs(60);

fn ok(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

#[test]
fn files_move_over_a_serial_line_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let server = Served::ftp(&root, &[]);
    let bridge = SerialBridge::to(&server.addr, true);
    let work = dir.path();
    for (name, len) in [("empty", 0), ("one", 1), ("big", 200 * 1024)] {
        let data = pattern(len, len as u32 + 7);
        std::fs::write(work.join(name), &data).unwrap();
        ok(&run_client(
            &["ftp", "put", "--addr", &bridge.addr, name, name],
            Some(work),
            LIMIT,
        ));
        assert_eq!(
            std::fs::read(root.join(name)).unwrap(),
            data,
            "{name} stored"
        );
        let back = format!("{name}.back");
        ok(&run_client(
            &["ftp", "get", "--addr", &bridge.addr, name, &back],
            Some(work),
            LIMIT,
        ));
        assert_eq!(
            std::fs::read(work.join(&back)).unwrap(),
            data,
            "{name} fetched"
        );
    }
    let listing = ok(&run_client(
        &["ftp", "ls", "--addr", &bridge.addr],
        Some(work),
        LIMIT,
    ));
    for name in ["empty", "one", "big"] {
        assert!(listing.contains(name), "{listing}");
    }
    ok(&run_client(
        &["ftp", "delete", "--addr", &bridge.addr, "one"],
        Some(work),
        LIMIT,
    ));
    assert!(!root.join("one").exists());
}

#[test]
fn commands_run_over_a_serial_line_with_their_status_and_stderr() {
    let dir = tempfile::tempdir().expect("tempdir");
    let workdir = dir.path().to_str().unwrap();
    let server = Served::shell(&["--workdir", workdir]);
    let bridge = SerialBridge::to(&server.addr, true);
    let out = run_client(
        &[
            "shell",
            "connect",
            &bridge.addr,
            "-c",
            "echo hi; echo oops >&2; exit 3",
        ],
        None,
        LIMIT,
    );
    assert_eq!(out.stdout, b"hi\n");
    assert_eq!(out.stderr, b"oops\n");
    assert_eq!(out.status.code(), Some(3));
}

/// Uploads `data` as `copy0`, `copy1`, ... over `bridge` while the line misbehaves; returns how
/// many were refused. Every upload that went through stored exactly `data`, and every refused
/// one stored nothing.
fn noisy_uploads(
    bridge: &SerialBridge,
    root: &Path,
    work: &Path,
    data: &[u8],
    rounds: usize,
) -> usize {
    let mut refused = 0;
    for round in 0..rounds {
        let name = format!("copy{round}");
        let out = run_client(
            &[
                "ftp",
                "put",
                "--addr",
                &bridge.addr,
                "--timeout",
                "2",
                "data",
                &name,
            ],
            Some(work),
            LIMIT,
        );
        let stored = root.join(&name);
        if out.status.success() {
            assert_eq!(std::fs::read(&stored).unwrap(), data, "round {round}");
        } else {
            refused += 1;
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!err.trim().is_empty(), "round {round}: a failure says why");
            assert!(
                !stored.exists(),
                "round {round}: something was stored: {err}"
            );
        }
    }
    refused
}

#[test]
fn a_noisy_line_never_stores_a_wrong_byte_and_the_link_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let server = Served::ftp(&root, &[]);
    let bridge = SerialBridge::to(&server.addr, true);
    let work = dir.path();
    let data = pattern(64 * 1024, 3);
    std::fs::write(work.join("data"), &data).unwrap();
    // One flipped byte in every 5,000 from the client: each upload meets several.
    bridge.flip_every.store(5_000, Ordering::SeqCst);
    assert!(
        noisy_uploads(&bridge, &root, work, &data, 4) > 0,
        "flips went unnoticed"
    );
    bridge.flip_every.store(0, Ordering::SeqCst);
    // One lost byte in every 30,000: a link frame comes up short and fails its CRC, the next
    // one shows the gap, and the far end drops the request and tells the client.
    bridge.drop_every.store(30_000, Ordering::SeqCst);
    assert!(
        noisy_uploads(&bridge, &root, work, &data, 3) > 0,
        "losses went unnoticed"
    );
    bridge.drop_every.store(0, Ordering::SeqCst);
    // Once the line is clean again, the next transfer goes through: the link recovered.
    ok(&run_client(
        &["ftp", "put", "--addr", &bridge.addr, "data", "clean"],
        Some(work),
        LIMIT,
    ));
    assert_eq!(std::fs::read(root.join("clean")).unwrap(), data);
}

#[test]
fn a_damaged_frame_of_a_command_drops_it_at_once_never_runs_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let workdir = dir.path().to_str().unwrap();
    let server = Served::shell(&["--workdir", workdir]);
    let bridge = SerialBridge::to(&server.addr, true);
    // A command of two link frames; one byte of the second is flipped. The first frame starts
    // the request, the second fails its CRC and is dropped, and the far end, missing the rest,
    // drops the request and sends a notice: the client fails at once, saying why.
    let padding = "x".repeat(1200);
    let command = format!("touch ran-0123456789 # {padding}");
    bridge.flip_every.store(1100, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let out = run_client(
        &["shell", "connect", &bridge.addr, "-c", &command],
        None,
        LIMIT,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dropped the request"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the client waited for its time-out: {err}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "something ran"
    );
    // And the next command goes through on the same line.
    bridge.flip_every.store(0, Ordering::SeqCst);
    let out = run_client(
        &["shell", "connect", &bridge.addr, "-c", "echo back"],
        None,
        LIMIT,
    );
    assert_eq!(ok(&out), "back\n");
}

#[test]
fn garbage_on_the_line_before_a_request_costs_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let workdir = dir.path().to_str().unwrap();
    let server = Served::shell(&["--workdir", workdir]);
    let bridge = SerialBridge::to(&server.addr, true);
    // 300 bytes of noise, zeros among them, then at once a request: no quiet gap.
    let garbage: Vec<u8> = pattern(300, 77).iter().map(|b| b % 7).collect();
    bridge.inject_from_client(&garbage);
    let out = run_client(
        &["shell", "connect", &bridge.addr, "-c", "echo hi"],
        None,
        LIMIT,
    );
    assert_eq!(ok(&out), "hi\n");
    assert!(bridge.dropped_frames() > 0, "the noise was not seen");
}
