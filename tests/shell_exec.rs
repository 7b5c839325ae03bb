//! The remote shell end to end over loopback: exit statuses, stdout and stderr kept apart and
//! byte-exact under heavy interleaving, many commands per connection, many clients at once.

mod shell_common;

use std::io::Read;
use std::thread;
use std::time::Duration;

use shell_common::{
    ServerProcess, connect_cli, eventually, exec, pseudo_random, shells_of, wait_bounded,
    write_file,
};
use unstick_std::shell::{ShellClientError, Termination};

#[test]
fn exit_codes_and_signals_become_the_clients_status() {
    let server = ServerProcess::start(&[]);
    let table = [
        ("true", 0),
        ("exit 3", 3),
        ("false", 1),
        ("exit 255", 255),
        ("kill -9 $$", 128 + 9),
        ("kill -TERM $$", 128 + 15),
    ];
    for (command, status) in table {
        let out = connect_cli(&server.addr, &["-c", command], b"", &[]);
        assert_eq!(out.status.code(), Some(status), "{command}: {out:?}");
    }
}

#[test]
fn a_signal_is_reported_as_that_signal() {
    let server = ServerProcess::start(&[]);
    let mut client = server.client(None);
    let (report, _) = exec(&mut client, "kill -9 $$");
    assert_eq!(report.termination, Termination::Signaled(9));
    assert!(!report.timed_out && !report.truncated);
    let (report, _) = exec(&mut client, "exit 0");
    assert_eq!(report.termination, Termination::Exited(0));
}

#[test]
fn four_mib_on_each_stream_arrive_apart_and_byte_exact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stdout_data = pseudo_random(4 << 20, 1);
    let stderr_data = pseudo_random(4 << 20, 2);
    write_file(dir.path(), "a", &stdout_data);
    write_file(dir.path(), "b", &stderr_data);
    let workdir = dir.path().to_str().expect("utf-8 path");
    let server = ServerProcess::start(&["--workdir", workdir, "--max-output", "64M"]);

    // Both streams written at once by two processes (the seed's server deadlocks on this).
    let out = connect_cli(&server.addr, &["-c", "cat a & cat b >&2; wait"], b"", &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout == stdout_data, "stdout differs");
    assert!(out.stderr == stderr_data, "stderr differs");

    // Strict alternation in 64 KiB pieces from one process, read by the library client.
    let alternate = "i=0; while [ $i -lt 64 ]; do \
        dd if=a bs=65536 skip=$i count=1 status=none; \
        dd if=b bs=65536 skip=$i count=1 status=none >&2; \
        i=$((i+1)); done";
    let mut client = server.client(None);
    let (report, output) = exec(&mut client, alternate);
    assert_eq!(report.termination, Termination::Exited(0));
    assert!(output.stdout == stdout_data, "alternating stdout differs");
    assert!(output.stderr == stderr_data, "alternating stderr differs");
}

#[test]
fn many_commands_share_one_connection() {
    let server = ServerProcess::start(&[]);
    let mut client = server.client(None);
    for i in 0..50 {
        let (report, out) = exec(
            &mut client,
            &format!("echo out{i}; echo err{i} >&2; exit {}", i % 7),
        );
        assert_eq!(report.termination, Termination::Exited(i % 7));
        assert_eq!(out.stdout, format!("out{i}\n").as_bytes());
        assert_eq!(out.stderr, format!("err{i}\n").as_bytes());
    }
}

#[test]
fn a_client_whose_waiting_connection_was_closed_connects_again() {
    let server = ServerProcess::start(&["--login-grace", "300ms", "--idle-timeout", "300ms"]);
    let mut client = server.client(None);
    // Longer than the login grace: the server closes the connection before the first command.
    thread::sleep(Duration::from_millis(800));
    let (_, out) = exec(&mut client, "echo first");
    assert_eq!(out.stdout, b"first\n");
    // And longer than the idle timeout between commands.
    thread::sleep(Duration::from_millis(800));
    let (_, out) = exec(&mut client, "echo second");
    assert_eq!(out.stdout, b"second\n");
}

/// A scripted server: for each connection in turn, reads one request and answers with
/// `replies[i]` (`None`: closes without a word); returns the commands it was sent.
fn scripted_server(
    replies: Vec<Option<&'static str>>,
) -> (String, thread::JoinHandle<Vec<String>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let script = thread::spawn(move || {
        let mut commands = Vec::new();
        for reply in replies {
            let (mut stream, _) = listener.accept().expect("accept");
            stream
                .set_read_timeout(Some(Duration::from_secs(20)))
                .expect("timeout");
            let Some((_, body)) = shell_common::read_raw_frame(&mut stream) else {
                continue;
            };
            commands.push(String::from_utf8(body).expect("utf-8"));
            if let Some(header) = reply {
                std::io::Write::write_all(&mut stream, &shell_common::header_frame(header, b""))
                    .expect("reply");
            }
        }
        // Nobody else comes: a second attempt would be seen here.
        listener.set_nonblocking(true).expect("nonblocking");
        thread::sleep(Duration::from_millis(300));
        assert!(listener.accept().is_err(), "the client connected once more");
        commands
    });
    (addr, script)
}

#[test]
fn a_command_is_sent_again_only_when_the_server_says_it_did_not_run() {
    // The server's idle timeout crossed the command: it says so, and the command goes again on
    // a new connection.
    let (addr, script) = scripted_server(vec![
        Some(
            r#"{"op":"error","code":"idle_timeout","message":"no complete request within 1 s; closing the connection","total_size":0}"#,
        ),
        Some(r#"{"op":"exit","code":0,"truncated":false,"timed_out":false,"total_size":0}"#),
    ]);
    let mut client = shell_common::client_at(&addr, None);
    let (report, _) = exec(&mut client, "touch once");
    assert_eq!(report.termination, Termination::Exited(0));
    drop(client);
    assert_eq!(script.join().expect("script"), ["touch once", "touch once"]);

    // A connection that just closes may have run it: it is not sent again.
    let (addr, script) = scripted_server(vec![None]);
    let mut client = shell_common::client_at(&addr, None);
    let mut out = shell_common::Collected::keeping();
    let result = client.exec("touch once", &mut out);
    assert!(
        matches!(result, Err(ShellClientError::ConnectionClosed)),
        "{result:?}"
    );
    assert_eq!(script.join().expect("script"), ["touch once"]);
}

#[test]
fn output_streams_while_the_command_runs() {
    let server = ServerProcess::start(&[]);
    let mut client = server.client(None);
    // The first line must arrive before the command ends: the sink sees two chunks.
    struct Chunks(Vec<Vec<u8>>);
    impl unstick_std::shell::OutputSink for Chunks {
        fn write_output(
            &mut self,
            _: unstick_std::shell::OutputStream,
            bytes: &[u8],
        ) -> std::io::Result<()> {
            self.0.push(bytes.to_vec());
            Ok(())
        }
    }
    let mut chunks = Chunks(Vec::new());
    let report = client
        .exec("echo first; sleep 0.3; echo second", &mut chunks)
        .expect("exec");
    assert_eq!(report.termination, Termination::Exited(0));
    assert_eq!(chunks.0, [b"first\n".to_vec(), b"second\n".to_vec()]);
}

#[test]
fn commands_run_in_the_working_directory_without_the_servers_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let workdir = dir.path().canonicalize().expect("canonical");
    let workdir = workdir.to_str().expect("utf-8 path");
    let server = ServerProcess::start_with_env(
        &["--workdir", workdir, "--token", "t0ken"],
        &[("UNSTICK_TOKEN", "t0ken")],
    );
    let mut client = server.client(Some("t0ken"));
    let (_, out) = exec(&mut client, "pwd; echo \"token=${UNSTICK_TOKEN:-unset}\"");
    assert_eq!(out.stdout, format!("{workdir}\ntoken=unset\n").as_bytes());
}

#[test]
fn connect_reads_one_command_per_line_without_a_prompt() {
    let server = ServerProcess::start(&[]);
    let input = b"echo one\n\n   \necho two >&2\nexit 5\n";
    let out = connect_cli(&server.addr, &[], input, &[]);
    assert_eq!(out.stdout, b"one\n");
    assert_eq!(out.stderr, b"two\n");
    assert_eq!(out.status.code(), Some(5));
}

#[test]
fn a_line_that_is_not_utf8_is_skipped_and_the_session_goes_on() {
    let server = ServerProcess::start(&[]);
    let out = connect_cli(&server.addr, &[], b"echo a\n\xff\xfe\necho b\n", &[]);
    assert_eq!(out.stdout, b"a\nb\n", "{out:?}");
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(message.contains("not UTF-8"), "{message}");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn connect_whose_output_reader_goes_away_ends_quietly() {
    let server = ServerProcess::start(&[]);
    let mut child = shell_common::connect_command(&server.addr, &["-c", "yes"])
        .spawn()
        .expect("spawn unstick shell connect");
    // Like `| head -c 4`: read a little, then close the pipe.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 4];
    stdout.read_exact(&mut first).expect("some output");
    assert_eq!(&first, b"y\ny\n");
    drop(stdout);
    let out = wait_bounded(child);
    assert_eq!(out.status.code(), Some(128 + 13), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The server killed `yes` when the client went.
    assert!(eventually(Duration::from_secs(10), || shells_of(
        server.pid()
    )
    .is_empty()));
}

#[test]
fn a_failing_command_does_not_end_a_line_by_line_session() {
    let server = ServerProcess::start(&[]);
    // (`exit 255` alone would end the session: the client answers `exit` itself.)
    let out = connect_cli(&server.addr, &[], b"echo a\n(exit 255)\necho b\n", &[]);
    assert_eq!(out.stdout, b"a\nb\n");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn fifty_concurrent_clients_each_get_their_own_output() {
    let server = ServerProcess::start(&[]);
    let clients: Vec<_> = (0..50)
        .map(|c| {
            let mut client = server.client(None);
            thread::spawn(move || {
                for round in 0..5 {
                    let command = format!(
                        "echo client{c} round{round}; sleep 0.0{}; echo e{c}.{round} >&2; exit {}",
                        c % 10,
                        (c + round) % 100
                    );
                    let (report, out) = exec(&mut client, &command);
                    assert_eq!(report.termination, Termination::Exited((c + round) % 100));
                    assert_eq!(out.stdout, format!("client{c} round{round}\n").as_bytes());
                    assert_eq!(out.stderr, format!("e{c}.{round}\n").as_bytes());
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("client thread");
    }
}

#[test]
fn a_missing_server_is_a_clear_connection_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let out = connect_cli(&format!("127.0.0.1:{port}"), &["-c", "true"], b"", &[]);
    assert_eq!(out.status.code(), Some(255));
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(message.contains("cannot connect"), "{message}");
}

#[test]
fn a_command_that_cannot_start_is_refused_and_the_session_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let workdir = dir.path().join("work");
    std::fs::create_dir(&workdir).expect("mkdir");
    let server = ServerProcess::start(&["--workdir", workdir.to_str().expect("utf-8 path")]);
    let mut client = server.client(None);
    std::fs::remove_dir(&workdir).expect("rmdir");
    let refused = client.exec("echo never", &mut shell_common::Collected::default());
    match refused {
        Err(ShellClientError::Server { code, message }) => {
            assert_eq!(code, "spawn_failed");
            assert!(message.contains("could not start"), "{message}");
        }
        other => panic!("expected spawn_failed, got {other:?}"),
    }
    std::fs::create_dir(&workdir).expect("mkdir again");
    let (report, out) = exec(&mut client, "echo back");
    assert_eq!(report.termination, Termination::Exited(0));
    assert_eq!(out.stdout, b"back\n");
}

#[test]
fn connect_shows_the_seed_prompt_when_stdin_is_a_terminal() {
    let server = ServerProcess::start(&[]);
    let peer =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/shell_tty_session.py");
    let child = std::process::Command::new("python3")
        .arg(peer)
        .args([shell_common::UNSTICK, &server.addr, "echo one", "echo two"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let out = wait_bounded(child);
    assert!(out.status.success(), "{out:?}");
    let hex = String::from_utf8(out.stdout).expect("hex");
    let hex = hex.trim();
    let stdout: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    // After Ctrl-D, a newline: the local shell's prompt starts a line of its own.
    assert_eq!(stdout, b">>>one\n>>>two\n>>>\n");
}

#[test]
fn both_ends_default_to_the_seeds_address() {
    for subcommand in ["serve", "connect"] {
        let child = std::process::Command::new(shell_common::UNSTICK)
            .args(["shell", subcommand, "--help"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let out = wait_bounded(child);
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("127.0.0.1:8080"), "{subcommand}: {help}");
    }
}
