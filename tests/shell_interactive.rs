//! `unstick shell connect` as a person uses it: the real binary on a pseudo-terminal (its
//! controlling terminal, so Ctrl-C is a SIGINT as at a keyboard), typed at through the pty's
//! master. Ctrl-C during a command and at the prompt, `exit N`, history across sessions,
//! reconnecting after the server's idle timeout, the `cd` model, multi-line constructs; and
//! the same constructs on piped input. Every wait is bounded; loopback only.
#![cfg(unix)]

mod shell_common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use shell_common::{ServerProcess, UNSTICK, connect_cli, eventually, shells_of};

/// Longest wait for anything the client should show.
const SHOW_LIMIT: Duration = Duration::from_secs(15);

/// `unstick shell connect` on a pseudo-terminal; killed and reaped on drop.
struct TypedSession {
    child: Child,
    master: File,
    /// Everything the client wrote to the terminal so far.
    screen: Arc<Mutex<Vec<u8>>>,
    /// How much of `screen` the last `expect` consumed.
    seen: usize,
    /// Copies the terminal's output into `screen` until the client is gone.
    reader: thread::JoinHandle<()>,
}

impl TypedSession {
    /// Starts the client against `addr`, its state directory (history) in `state`.
    fn start(addr: &str, state: &Path) -> TypedSession {
        let (mut master_fd, mut slave_fd) = (0, 0);
        let size = libc::winsize {
            ws_row: 24,
            ws_col: 120,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two descriptors into the integers given; no name is asked
        // for, the termios pointer is null (defaults) and `size` lives across the call.
        let opened = unsafe {
            libc::openpty(
                &mut master_fd,
                &mut slave_fd,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: openpty succeeded, so both are open descriptors that nothing else owns.
        let (master, slave) = unsafe {
            (
                OwnedFd::from_raw_fd(master_fd),
                OwnedFd::from_raw_fd(slave_fd),
            )
        };
        let mut command = Command::new(UNSTICK);
        command
            // The line-at-a-time mode: on a terminal the default is a remote pty.
            .args(["shell", "connect", "-T", addr])
            .env_remove("UNSTICK_TOKEN")
            .env("TERM", "xterm")
            .env("HOME", state)
            .env("XDG_STATE_HOME", state)
            .stdin(Stdio::from(slave.try_clone().expect("dup slave")))
            .stdout(Stdio::from(slave.try_clone().expect("dup slave")))
            .stderr(Stdio::from(slave));
        // SAFETY: only async-signal-safe calls between fork and exec: a new session, whose
        // controlling terminal becomes the pty (stdin), so that Ctrl-C sends SIGINT.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("spawn unstick shell connect");
        drop(command);
        let master = File::from(master);
        let screen = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().expect("dup master");
        let shown = Arc::clone(&screen);
        let reader = thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once the client (the last holder of the slave) is gone.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                shown.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let mut session = TypedSession {
            child,
            master,
            screen,
            seen: 0,
            reader,
        };
        session.expect(">>>");
        session
    }

    fn type_keys(&mut self, keys: &[u8]) {
        self.master.write_all(keys).expect("type");
    }

    /// Types `line` and Enter.
    fn type_line(&mut self, line: &str) {
        self.type_keys(line.as_bytes());
        self.type_keys(b"\r");
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned()
    }

    /// Waits until `text` shows after what earlier calls consumed; returns the screen from
    /// there up to and including it.
    fn expect(&mut self, text: &str) -> String {
        let deadline = Instant::now() + SHOW_LIMIT;
        loop {
            let screen = self.screen();
            if let Some(at) = screen.get(self.seen..).and_then(|rest| rest.find(text)) {
                let start = self.seen;
                self.seen += at + text.len();
                return screen[start..self.seen].to_string();
            }
            if Instant::now() > deadline {
                panic!(
                    "{text:?} did not show within {SHOW_LIMIT:?}; after what was seen: {:?}",
                    screen.get(self.seen..).unwrap_or_default()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the client wrote, once it has exited and all of it is read.
    fn final_screen(&mut self) -> String {
        self.exit_status();
        let deadline = Instant::now() + SHOW_LIMIT;
        while !self.reader.is_finished() {
            assert!(Instant::now() < deadline, "the terminal did not close");
            thread::sleep(Duration::from_millis(20));
        }
        self.screen()
    }

    /// Waits for the client to exit.
    fn exit_status(&mut self) -> ExitStatus {
        let deadline = Instant::now() + SHOW_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the client did not exit: {:?}",
                self.screen()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TypedSession {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_running(pid: i32) -> bool {
    // SAFETY: signal 0 only asks whether the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[test]
fn ctrl_c_stops_the_remote_command_and_the_client_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let workdir = dir.path().to_str().expect("utf-8 path");
    let server = ServerProcess::start(&["--workdir", workdir]);
    let mut session = TypedSession::start(&server.addr, dir.path());
    let started = Instant::now();
    session.type_line("echo $$ > pid; echo run-$((20+1)); sleep 30; touch late");
    session.expect("run-21");
    let pid: i32 = std::fs::read_to_string(dir.path().join("pid"))
        .expect("pid file")
        .trim()
        .parse()
        .expect("a pid");
    assert!(is_running(pid));
    session.type_keys(b"\x03");
    session.expect(">>>");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the prompt came back only when the command ended"
    );
    assert!(
        eventually(Duration::from_secs(5), || !is_running(pid)
            && shells_of(server.pid()).is_empty()),
        "the remote command outlived the Ctrl-C"
    );
    assert!(!dir.path().join("late").exists());
    // The client is still there, and runs the next command on a new connection.
    session.type_line("echo alive-$((1+1)); exit 7");
    session.expect("alive-2");
    session.type_line("echo status-was-$?");
    // `$?` is not carried over: each command is a shell of its own.
    session.expect("status-was-0");
    session.type_line("exit 4");
    assert_eq!(session.exit_status().code(), Some(4));
}

#[test]
fn ctrl_c_at_the_prompt_drops_the_line_and_ctrl_d_leaves_on_a_new_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&[]);
    let mut session = TypedSession::start(&server.addr, dir.path());
    session.type_keys(b"echo partial-$((1+1))");
    session.expect("echo partial-$((1+1))");
    session.type_keys(b"\x03");
    session.expect("^C");
    session.expect(">>>");
    // An open construct is dropped too.
    session.type_line("for i in 1 2");
    session.expect("...");
    session.type_keys(b"\x03");
    session.expect(">>>");
    session.type_line("echo fresh-$((2+3))");
    session.expect("fresh-5");
    session.expect(">>>");
    // Output without a final newline: the prompt starts a line of its own.
    session.type_line("printf abc");
    // The line is ended before the prompt; without that, the editor would clear the prompt's
    // line (`\r` and erase) and wipe `abc`.
    session.expect("abc\r\n");
    session.expect(">>>");
    session.type_keys(b"\x04");
    let status = session.exit_status();
    // The last command's status, as a shell leaves with.
    assert_eq!(status.code(), Some(0));
    let screen = session.final_screen();
    assert!(
        !screen.contains("partial-2"),
        "the dropped line ran: {screen:?}"
    );
    assert!(
        screen.ends_with("\r\n"),
        "no newline after Ctrl-D: {screen:?}"
    );
}

#[test]
fn exit_and_quit_leave_with_their_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&[]);
    let table = [
        (vec!["exit 5"], 5),
        (vec!["false", "exit"], 1),
        (vec!["quit"], 0),
        (vec!["exit nope", "logout 300"], 300 & 0xff),
    ];
    for (lines, status) in table {
        let mut session = TypedSession::start(&server.addr, dir.path());
        for line in &lines {
            session.type_line(line);
        }
        assert_eq!(session.exit_status().code(), Some(status), "{lines:?}");
        if lines[0] == "exit nope" {
            assert!(session.final_screen().contains("a number is needed"));
        }
    }
}

#[test]
fn up_arrow_recalls_commands_of_this_and_earlier_sessions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&[]);
    let mut first = TypedSession::start(&server.addr, dir.path());
    first.type_line("echo hist-$((6*7))");
    first.expect("hist-42\r\n");
    first.expect(">>>");
    // Up-arrow then Enter in the same session...
    first.type_keys(b"\x1b[A\r");
    first.expect("hist-42\r\n");
    first.expect(">>>");
    // A leading space keeps a command out of the history.
    first.type_line(" echo secret-$((2*2))");
    first.expect("secret-4\r\n");
    first.expect(">>>");
    first.type_line("exit");
    assert_eq!(first.exit_status().code(), Some(0));
    let history = dir.path().join("unstick/shell_history");
    let saved = std::fs::read_to_string(&history).expect("history file");
    assert!(saved.contains("echo hist-$((6*7))"), "{saved:?}");
    assert!(!saved.contains("secret"), "{saved:?}");

    // ...and in the next one, from the file: Up twice passes `exit`.
    let mut second = TypedSession::start(&server.addr, dir.path());
    second.type_keys(b"\x1b[A\x1b[A\r");
    second.expect("hist-42\r\n");
    second.type_line("exit");
    assert_eq!(second.exit_status().code(), Some(0));
}

#[test]
fn the_next_command_after_the_idle_timeout_runs_on_a_new_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&["--idle-timeout", "1s"]);
    let mut session = TypedSession::start(&server.addr, dir.path());
    session.type_line("echo one-$((0+1))");
    session.expect("one-1\r\n");
    session.expect(">>>");
    // The server closes the connection while the prompt waits.
    thread::sleep(Duration::from_millis(2500));
    session.type_line("echo two-$((1+1))");
    let shown = session.expect("two-2\r\n");
    assert!(!shown.contains("unstick shell connect:"), "{shown:?}");
    session.expect(">>>");
    thread::sleep(Duration::from_millis(2500));
    session.type_line("exit 9");
    assert_eq!(session.exit_status().code(), Some(9));
    let screen = session.final_screen();
    assert!(
        !screen.contains("Broken pipe") && !screen.contains("closed"),
        "{screen:?}"
    );
}

#[test]
fn cd_is_kept_by_the_client_and_sent_with_each_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().canonicalize().expect("canonical");
    std::fs::create_dir_all(root.join("a/b c")).expect("mkdir");
    let workdir = root.to_str().expect("utf-8 path");
    let server = ServerProcess::start(&["--workdir", workdir]);
    let mut session = TypedSession::start(&server.addr, dir.path());
    session.type_line("cd 'a/b c'");
    session.expect(">>>");
    session.type_line("pwd; touch here");
    session.expect(&format!("{workdir}/a/b c\r\n"));
    // The command has ended (its `touch` too) when the prompt is back.
    session.expect(">>>");
    assert!(root.join("a/b c/here").exists());
    session.type_line("cd ..");
    session.expect(">>>");
    session.type_line("echo in-$(basename \"$PWD\")");
    session.expect("in-a\r\n");
    // `cd -` goes back, and says where.
    session.type_line("cd -");
    session.expect(&format!("{workdir}/a/b c\r\n"));
    // A directory that is not there: the shell says so, and nothing changes.
    session.type_line("cd nowhere");
    session.expect("nowhere");
    session.type_line("echo still-$(basename \"$PWD\")");
    session.expect("still-b c\r\n");
    // `cd` inside a longer command is the server's shell's alone.
    session.type_line("cd / && echo at-$PWD");
    session.expect("at-/\r\n");
    session.type_line("echo again-$(basename \"$PWD\")");
    session.expect("again-b c\r\n");
    // The directory goes away under us: commands are refused, `cd` gets out.
    std::fs::remove_file(root.join("a/b c/here")).expect("rm");
    std::fs::remove_dir(root.join("a/b c")).expect("rmdir");
    session.type_line("echo lost");
    session.expect("bad_path");
    session.type_line("cd /");
    session.expect(">>>");
    session.type_line("echo out-$PWD");
    session.expect("out-/\r\n");
    session.type_line("exit");
    session.exit_status();
}

#[test]
fn multi_line_constructs_are_collected_at_a_continuation_prompt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&[]);
    let mut session = TypedSession::start(&server.addr, dir.path());
    session.type_line("for i in 1 2");
    session.expect("...");
    session.type_line("do echo n$i$i");
    session.expect("...");
    session.type_line("done");
    session.expect("n11\r\n");
    session.expect("n22\r\n");
    session.type_line("echo 'open");
    session.expect("...");
    session.type_line("quote' \\");
    session.expect("...");
    session.type_line("end");
    session.expect("open\r\nquote end\r\n");
    session.type_line("exit");
    session.exit_status();
    let history =
        std::fs::read_to_string(dir.path().join("unstick/shell_history")).expect("history file");
    assert!(history.contains("for i in 1 2"), "{history:?}");
}

#[test]
fn piped_input_is_sent_one_whole_construct_at_a_time() {
    let server = ServerProcess::start(&[]);
    let script = b"for i in a b\ndo\n  echo x$i\ndone\nif true; then\n  echo yes\nfi\n\
        echo 'multi\nline'\ncat <<EOF\nit's $((1<<2))\nEOF\ncd /\npwd\nprintf no-newline\nexit 3\necho never\n";
    let out = connect_cli(&server.addr, &[], script, &[]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "xa\nxb\nyes\nmulti\nline\nit's 4\n/\nno-newline"
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    // An unfinished construct at the end of input is sent, and the server's shell says why.
    let out = connect_cli(
        &server.addr,
        &[],
        b"echo before\nif true; then\n echo x\n",
        &[],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "before\n");
    assert_ne!(out.status.code(), Some(0));
    assert!(!out.stderr.is_empty());
}

#[test]
fn a_cwd_that_is_not_a_directory_is_refused_and_nothing_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("file"), b"").expect("file");
    std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
    let workdir = dir.path().to_str().expect("utf-8 path");
    let server = ServerProcess::start(&["--workdir", workdir]);
    let mut client = server.client(None);
    let mut out = shell_common::Collected::keeping();
    let report = client
        .exec_in("pwd", Some("sub"), &mut out)
        .expect("relative cwd");
    assert_eq!(report.termination.shell_status(), 0);
    assert!(out.stdout.ends_with(b"/sub\n"), "{:?}", out.stdout);
    for cwd in ["file", "missing", "/nonexistent/x"] {
        let mut out = shell_common::Collected::keeping();
        match client.exec_in("touch ran", Some(cwd), &mut out) {
            Err(unstick_std::shell::ShellClientError::Server { code, message }) => {
                assert_eq!(code, "bad_path");
                assert!(message.contains(cwd), "{message}");
            }
            other => panic!("{cwd}: expected bad_path, got {other:?}"),
        }
    }
    assert!(!dir.path().join("ran").exists());
    // The connection goes on.
    let (report, out) = shell_common::exec(&mut client, "echo ok");
    assert_eq!(report.termination.shell_status(), 0);
    assert_eq!(out.stdout, b"ok\n");
}
