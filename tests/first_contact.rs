//! What a client does before it sends anything: a TLS server met for the first time is shown
//! and asked about on a terminal (and trusted, said, elsewhere; refused with
//! `--unknown-hosts refuse`, its variable or its config key), `unstick known-hosts` lists and
//! forgets servers, and an interactive shell session checks its token before its first prompt.
//! Clients run on a pseudo-terminal where it matters (opened with rustix's safe calls; the
//! terminal is not their controlling one, which none of this needs). Loopback only, every wait
//! bounded.
#![cfg(unix)]

mod serve_common;
mod shell_common;

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
use serve_common::{Served, UNSTICK, run_client};

/// Longest wait for anything a client should show, or for it to end.
const LIMIT: Duration = Duration::from_secs(30);

/// A client on a pseudo-terminal (stdin, stdout and stderr); killed and reaped on drop.
struct OnTerminal {
    child: Child,
    master: File,
    /// Everything the client wrote to the terminal so far.
    screen: Arc<Mutex<Vec<u8>>>,
    seen: usize,
}

impl OnTerminal {
    /// `unstick ARGS...` with `env` set, on a new pseudo-terminal.
    fn start(args: &[&str], env: &[(&str, &Path)]) -> OnTerminal {
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("openpt");
        grantpt(&master).expect("grantpt");
        unlockpt(&master).expect("unlockpt");
        let name = ptsname(&master, Vec::new()).expect("ptsname");
        let slave = File::options()
            .read(true)
            .write(true)
            .open(name.to_str().expect("UTF-8 terminal name"))
            .expect("open the terminal");
        let mut command = Command::new(UNSTICK);
        command
            .args(args)
            .env_remove("UNSTICK_TOKEN")
            .env_remove("UNSTICK_UNKNOWN_HOSTS")
            .env("TERM", "dumb")
            .stdin(Stdio::from(slave.try_clone().expect("dup")))
            .stdout(Stdio::from(slave.try_clone().expect("dup")))
            .stderr(Stdio::from(slave));
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().expect("spawn unstick");
        drop(command);
        let master = File::from(master);
        let screen = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().expect("dup master");
        let shown = Arc::clone(&screen);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once the client, the terminal's last user, is gone.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                shown.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        OnTerminal {
            child,
            master,
            screen,
            seen: 0,
        }
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned()
    }

    /// Waits until `text` shows after what earlier calls consumed.
    fn expect(&mut self, text: &str) {
        let deadline = Instant::now() + LIMIT;
        loop {
            let screen = self.screen();
            if let Some(at) = screen.get(self.seen..).and_then(|rest| rest.find(text)) {
                self.seen += at + text.len();
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{text:?} did not show; the screen: {screen:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn type_line(&mut self, line: &str) {
        self.master.write_all(line.as_bytes()).expect("type");
        self.master.write_all(b"\r").expect("type");
    }

    /// Waits for the client to end; its status and everything it showed.
    fn finish(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // What it wrote last may still be on its way through the terminal.
                thread::sleep(Duration::from_millis(100));
                return (status, self.screen());
            }
            assert!(
                Instant::now() < deadline,
                "the client did not end: {:?}",
                self.screen()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for OnTerminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A file server with TLS on loopback, its identity in `state`, and the fingerprint it
/// printed.
fn tls_file_server(root: &Path, state: &Path) -> (Served, String) {
    let mut served = Served::start(
        &[
            "ftp",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--root",
            root.to_str().unwrap(),
            "--tls",
            "--state-dir",
            state.to_str().unwrap(),
        ],
        None,
    );
    let line = served
        .next_stdout_line(LIMIT)
        .expect("a TLS server prints its fingerprint");
    let fingerprint = line
        .strip_prefix("tls ")
        .expect("a fingerprint line")
        .to_owned();
    (served, fingerprint)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn on_a_terminal_first_contact_shows_the_fingerprint_and_asks_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let (server, fingerprint) = tls_file_server(&dir.path().join("root"), dir.path());
    let known = dir.path().join("known_hosts");
    let addr = format!("tls://{}", server.addr);
    let args = [
        "ftp",
        "ls",
        "--addr",
        &addr,
        "--known-hosts",
        known.to_str().unwrap(),
    ];

    // Declined: nothing recorded, nothing sent (the server saw no request).
    let mut client = OnTerminal::start(&args, &[]);
    client.expect(&format!("Its certificate's fingerprint is {fingerprint}"));
    client.expect("[y/N]");
    client.type_line("n");
    let (status, screen) = client.finish();
    assert_eq!(status.code(), Some(1), "{screen}");
    assert!(
        screen.contains("was not trusted: it was not accepted at the prompt; nothing was sent"),
        "{screen}"
    );
    assert!(!known.exists());

    // Accepted: recorded, and the request goes.
    let mut client = OnTerminal::start(&args, &[]);
    client.expect("[y/N]");
    client.type_line("yes");
    let (status, screen) = client.finish();
    assert!(status.success(), "{screen}");
    let recorded = fs::read_to_string(&known).unwrap();
    assert_eq!(recorded, format!("{} {fingerprint}\n", server.addr));
    // One listing in all: the declined client sent no request.
    assert!(
        server
            .wait_log_line(LIMIT, |l| l.contains("listed"))
            .is_some()
    );
    let listed = server.log().matches("listed").count();
    assert_eq!(listed, 1, "{}", server.log());

    // Known now: no question.
    let (status, screen) = OnTerminal::start(&args, &[]).finish();
    assert!(status.success(), "{screen}");
    assert!(!screen.contains("[y/N]"), "{screen}");
}

#[test]
fn unknown_hosts_are_trusted_off_a_terminal_unless_refused_by_flag_variable_or_config() {
    let dir = tempfile::tempdir().unwrap();
    let (server, fingerprint) = tls_file_server(&dir.path().join("root"), dir.path());
    let known = dir.path().join("known_hosts");
    let addr = format!("tls://{}", server.addr);
    let ls = |extra: &[&str], env: &[(&str, &str)]| {
        let mut all = vec![
            "ftp",
            "ls",
            "--addr",
            &addr,
            "--known-hosts",
            known.to_str().unwrap(),
        ];
        all.extend_from_slice(extra);
        let mut command = serve_common::unstick_command(&all, None);
        command.env_remove("UNSTICK_UNKNOWN_HOSTS");
        for (name, value) in env {
            command.env(name, value);
        }
        shell_common::wait_bounded(command.spawn().expect("spawn"))
    };

    // Refused three ways: nothing recorded, and the way to pin it is named.
    let config = dir.path().join("config.toml");
    fs::write(&config, "unknown_hosts = \"refuse\"\n").unwrap();
    let config = config.to_str().unwrap();
    for (extra, env) in [
        (&["--unknown-hosts", "refuse"][..], &[][..]),
        (&[][..], &[("UNSTICK_UNKNOWN_HOSTS", "refuse")][..]),
        (&[][..], &[("UNSTICK_CONFIG", config)][..]),
    ] {
        let out = ls(extra, env);
        let said = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{extra:?} {env:?}: {said}");
        assert!(
            said.contains("unknown hosts are refused")
                && said.contains(&format!("--fingerprint {fingerprint}")),
            "{said}"
        );
        assert!(!known.exists(), "{extra:?} {env:?}");
    }
    // The flag wins over the config file; a bad value is named.
    let out = ls(
        &["--unknown-hosts", "accept"],
        &[("UNSTICK_CONFIG", config)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    fs::remove_file(&known).unwrap();
    let out = ls(&[], &[("UNSTICK_UNKNOWN_HOSTS", "sometimes")]);
    assert!(
        stderr(&out).contains("use ask, accept or refuse"),
        "{}",
        stderr(&out)
    );

    // Not on a terminal, asking is not possible: trusted, recorded and said, as before.
    let out = ls(&[], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "first contact with {}: trusting its certificate {fingerprint}",
            server.addr
        )),
        "{}",
        stderr(&out)
    );
    assert!(fs::read_to_string(&known).unwrap().contains(&fingerprint));
}

#[test]
fn known_hosts_lists_and_removes_entries_by_address_or_host() {
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known_hosts");
    let a = "SHA256:6E089402E54DAB91D9E0F3C6F7B4EB47B474131C89129E4E13AF8BAF460D3CC0";
    let b = "SHA256:3E19266E2FF6C47BDFFB5E188D1C1A5DF0BEFFC05243027872820B63DBD30AA2";
    fs::write(
        &known,
        format!("# trusted\nbox:8080 {a}\nbox:8090 {b}\n[::1]:8080 {a}\nother:8080 {b}\n"),
    )
    .unwrap();
    let file = known.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["known-hosts"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--known-hosts", file]);
        run_client(&all, None, LIMIT)
    };

    let out = run(&["list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(listed.lines().count(), 4, "{listed}");
    assert!(
        listed.contains(&format!("box:8090    {b}  (line 3)")),
        "{listed}"
    );

    let out = run(&["remove", "box:8090"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("removed box:8090"),
        "{out:?}"
    );
    let out = run(&["remove", "::1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["remove", "box"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(&known).unwrap(),
        format!("# trusted\nother:8080 {b}\n")
    );
    let out = run(&["remove", "box"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no entry for box"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_interactive_session_checks_its_token_before_the_first_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let token = "first-contact-token-0123456789";
    let server = Served::shell(&["--token", token]);
    let state = dir.path();
    let env = [("HOME", state), ("XDG_STATE_HOME", state)];

    // No token: said at once, no prompt.
    let (status, screen) = OnTerminal::start(&["shell", "connect", &server.addr], &env).finish();
    assert_eq!(status.code(), Some(255), "{screen}");
    assert!(screen.contains("(unauthorized)"), "{screen}");
    assert!(!screen.contains(">>>"), "{screen}");

    // The right one: the prompt comes, and commands run (-T: the line-at-a-time session,
    // whose prompt this is; a terminal session gets a login shell's).
    let mut session = OnTerminal::start(
        &["shell", "connect", "-T", &server.addr, "--token", token],
        &env,
    );
    session.expect(">>>");
    session.type_line("echo ran-$((40+2))");
    session.expect("ran-42");
    session.type_line("exit");
    let (status, screen) = session.finish();
    assert!(status.success(), "{screen}");

    // A file server's port: what it is, before any prompt.
    let root = dir.path().join("root");
    let files = Served::ftp(&root, &[]);
    let (status, screen) = OnTerminal::start(&["shell", "connect", &files.addr], &env).finish();
    assert_eq!(status.code(), Some(255), "{screen}");
    assert!(
        screen.contains("this is an unstick file server"),
        "{screen}"
    );
}
