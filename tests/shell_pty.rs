//! `shell connect -t` driven through a real pseudo-terminal made here, as a user's terminal
//! would drive it: the remote side is a terminal (`tty`), an interactive shell keeps its state
//! between lines, a window size change reaches it, Ctrl-C interrupts its foreground job and
//! the session goes on, and the exit status comes back.
#![cfg(target_os = "linux")]

mod shell_common;

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pty_process::blocking::Pty;
use shell_common::{ServerProcess, UNSTICK};

/// The longest any step may take before the test gives up (a bound, not a measurement).
const BOUND: Duration = Duration::from_secs(30);

/// The client's terminal, as this test holds its master side: what the client wrote to it
/// so far (read by a thread of its own), and what is typed into it.
struct Terminal {
    pty: Arc<Pty>,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Terminal {
    fn watch(pty: Pty) -> Terminal {
        let pty = Arc::new(pty);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (reader, sink) = (Arc::clone(&pty), Arc::clone(&seen));
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once the client's side is closed by all.
            while let Ok(n) = (&*reader).read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Terminal { pty, seen }
    }

    fn type_in(&self, bytes: &[u8]) {
        (&*self.pty).write_all(bytes).unwrap();
    }

    /// Waits (within [`BOUND`]) until `needle` has appeared after `from`; returns where it
    /// ended.
    fn wait_for(&self, needle: &str, from: usize) -> usize {
        let started = Instant::now();
        loop {
            {
                let seen = self.seen.lock().unwrap();
                if let Some(at) = seen[from.min(seen.len())..]
                    .windows(needle.len())
                    .position(|w| w == needle.as_bytes())
                {
                    return from + at + needle.len();
                }
                assert!(
                    started.elapsed() < BOUND,
                    "{needle:?} did not appear; the screen: {:?}",
                    String::from_utf8_lossy(&seen)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Waits (within [`BOUND`]) until a process runs with exactly `args` as its command line.
fn wait_for_process(args: &[&str]) {
    let wanted: Vec<u8> = args
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    let started = Instant::now();
    loop {
        let running = std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
            std::fs::read(entry.path().join("cmdline")).is_ok_and(|line| line == wanted)
        });
        if running {
            return;
        }
        assert!(started.elapsed() < BOUND, "{args:?} did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_login_shell_on_a_pty_is_a_terminal_that_keeps_state_follows_resizes_and_takes_ctrl_c() {
    // The login shell is the server user's $SHELL: sh, whatever the machine's user has. A
    // login session is not one command: the per-command time limit does not end it.
    let server = ServerProcess::start_with_env(&["--timeout", "1s"], &[("SHELL", "/bin/sh")]);
    let (pty, pts) = pty_process::blocking::open().unwrap();
    pty.resize(pty_process::Size::new(24, 80)).unwrap();
    let mut client = pty_process::blocking::Command::new(UNSTICK)
        .args(["shell", "connect", "-t", &server.addr])
        .env_remove("UNSTICK_TOKEN")
        .env("TERM", "xterm-256color")
        .spawn(pts)
        .unwrap();
    let screen = Terminal::watch(pty);

    screen.type_in(b"tty; echo \"$TERM\"\n");
    let at = screen.wait_for("/dev/pts/", 0);
    let at = screen.wait_for("xterm-256color\r\n", at);
    // A variable set on one line is there on the next: one shell for the whole session.
    screen.type_in(b"x=6; echo $((x*7))\n");
    let at = screen.wait_for("42\r\n", at);

    // The kernel tells the client (SIGWINCH, its terminal's foreground group); the client
    // tells the server before it sends what is typed next.
    screen.pty.resize(pty_process::Size::new(33, 101)).unwrap();
    screen.type_in(b"stty size\n");
    let at = screen.wait_for("33 101\r\n", at);

    // Ctrl-C is byte 3 to the remote terminal, which interrupts its foreground job only.
    screen.type_in(b"sleep 4321\n");
    wait_for_process(&["sleep", "4321"]);
    screen.type_in(b"\x03");
    screen.type_in(b"echo alive-$((1+1))\n");
    screen.wait_for("alive-2\r\n", at);

    screen.type_in(b"sleep 2; echo outlived-$((2+3))\n");
    screen.wait_for("outlived-5\r\n", at);

    screen.type_in(b"exit 7\n");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = client.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < BOUND, "the client did not end");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(7));
}

#[test]
fn a_command_on_a_pty_gets_its_status_and_all_output_as_one_stream() {
    let server = ServerProcess::start(&[]);
    let (pty, pts) = pty_process::blocking::open().unwrap();
    pty.resize(pty_process::Size::new(24, 80)).unwrap();
    let mut client = pty_process::blocking::Command::new(UNSTICK)
        .args(["shell", "connect", "-t", &server.addr])
        .args(["test -t 0 && test -t 1 && echo on-a-tty; echo err >&2; exit 3"])
        .env_remove("UNSTICK_TOKEN")
        .spawn(pts)
        .unwrap();
    let screen = Terminal::watch(pty);
    let at = screen.wait_for("on-a-tty\r\n", 0);
    screen.wait_for("err\r\n", at);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = client.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < BOUND, "the client did not end");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(3));
}
