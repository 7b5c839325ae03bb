//! Tokens, listen-address safety, session cap, and hostile frames answered with error frames
//! while other sessions go on.

mod shell_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use shell_common::{
    ServerProcess, UNSTICK, connect_cli, exec, exec_frame, header_frame, raw_connection,
    read_raw_frame, wait_bounded,
};
use unstick_std::shell::{ShellClientError, Termination};

fn stderr_text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_token_is_required_accepted_and_refused() {
    let server = ServerProcess::start(&["--token", "s3cret"]);

    let missing = connect_cli(&server.addr, &["-c", "echo ran"], b"", &[]);
    assert_eq!(missing.status.code(), Some(255));
    assert!(missing.stdout.is_empty());
    assert!(
        stderr_text(&missing).contains("requires a token"),
        "{missing:?}"
    );

    let wrong = connect_cli(
        &server.addr,
        &["-c", "echo ran", "--token", "guess"],
        b"",
        &[],
    );
    assert_eq!(wrong.status.code(), Some(255));
    assert!(wrong.stdout.is_empty());
    assert!(stderr_text(&wrong).contains("does not match"), "{wrong:?}");

    let flag = connect_cli(
        &server.addr,
        &["-c", "echo ran", "--token", "s3cret"],
        b"",
        &[],
    );
    assert_eq!(flag.stdout, b"ran\n");
    assert_eq!(flag.status.code(), Some(0));

    let env = connect_cli(
        &server.addr,
        &["-c", "echo ran"],
        b"",
        &[("UNSTICK_TOKEN", "s3cret")],
    );
    assert_eq!(env.stdout, b"ran\n");
}

#[test]
fn a_wrong_token_on_a_command_too_big_to_buffer_is_still_explained() {
    let server = ServerProcess::start(&["--token", "s3cret"]);
    // The server refuses on the header and closes while the client is still sending.
    let mut line = b": ".to_vec();
    line.extend(std::iter::repeat_n(b'x', 8 << 20));
    line.push(b'\n');
    let out = connect_cli(&server.addr, &["--token", "guess"], &line, &[]);
    assert_eq!(out.status.code(), Some(255));
    assert!(stderr_text(&out).contains("does not match"), "{out:?}");
}

#[test]
fn a_token_of_control_characters_travels_escaped() {
    // Each of these bytes takes six in the JSON header (`\u0001`).
    let token = "\u{1}".repeat(300);
    let server = ServerProcess::start(&["--token", &token]);
    let mut client = server.client(Some(&token));
    let (report, out) = exec(&mut client, "echo in");
    assert_eq!(report.termination, Termination::Exited(0));
    assert_eq!(out.stdout, b"in\n");
}

#[test]
fn the_server_token_can_come_from_the_environment() {
    let server = ServerProcess::start_with_env(&[], &[("UNSTICK_TOKEN", "from-env")]);
    let mut client = server.client(None);
    let refused = client.exec("true", &mut shell_common::Collected::default());
    assert!(
        matches!(&refused, Err(ShellClientError::Server { code, .. }) if code == "unauthorized"),
        "{refused:?}"
    );
    let mut client = server.client(Some("from-env"));
    let (report, _) = exec(&mut client, "true");
    assert_eq!(report.termination, Termination::Exited(0));
}

#[test]
fn a_non_loopback_address_needs_a_token() {
    let child = Command::new(UNSTICK)
        .args(["shell", "serve", "--listen", "0.0.0.0:0"])
        .env_remove("UNSTICK_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let out = wait_bounded(child);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "it printed an address: {out:?}");
    assert!(stderr_text(&out).contains("without a token"), "{out:?}");
}

/// The code and message of a refused `echo ran` from a new client presenting `token`, or `None`
/// when it ran.
fn refusal_of(server: &ServerProcess, token: &str) -> Option<(String, String)> {
    let mut client = server.client(Some(token));
    match client.exec("echo ran", &mut shell_common::Collected::default()) {
        Ok(_) => None,
        Err(ShellClientError::Server { code, message }) => Some((code, message)),
        Err(e) => panic!("neither served nor refused: {e}"),
    }
}

#[test]
fn an_address_that_guesses_tokens_is_penalized_while_other_addresses_are_served() {
    let server = ServerProcess::start(&[
        "--token",
        "s3cret",
        "--max-auth-failures",
        "3",
        "--auth-penalty",
        "3s",
    ]);
    // Wrong tokens until the address is penalized (the failure that earns it is counted as its
    // reply leaves, so one more guess may still be told `unauthorized`).
    let mut codes = Vec::new();
    let mut penalized = None;
    for _ in 0..10 {
        let (code, message) = refusal_of(&server, "guess").expect("a wrong token ran");
        codes.push(code.clone());
        if code == "penalized" {
            penalized = Some(message);
            break;
        }
    }
    let message = penalized.unwrap_or_else(|| panic!("never penalized: {codes:?}"));
    assert!(
        codes[..codes.len() - 1].iter().all(|c| c == "unauthorized") && codes.len() >= 4,
        "{codes:?}"
    );
    assert!(message.contains("127.0.0.1"), "{message}");
    assert!(message.contains("s more"), "{message}");
    // The right token is refused too while the penalty lasts: guessing it then is no use.
    let (code, _) = refusal_of(&server, "s3cret").expect("the right token was served");
    assert_eq!(code, "penalized");
    // Another address is served as before.
    #[cfg(target_os = "linux")]
    {
        let to: std::net::SocketAddrV4 = server.addr.parse().expect("an IPv4 address");
        let mut other = shell_common::connect_from([127, 0, 0, 2].into(), to);
        let header = r#"{"op":"exec","token":"s3cret","total_size":8}"#;
        other
            .write_all(&header_frame(header, b"echo ran"))
            .expect("send");
        let (stdout, exit) = read_exec_reply(&mut other);
        assert_eq!(
            (stdout.as_slice(), &exit["code"]),
            (&b"ran\n"[..], &0.into())
        );
    }
    // The penalty ends (polled for at most 20 s).
    let served = shell_common::eventually(Duration::from_secs(20), || {
        refusal_of(&server, "s3cret").is_none()
    });
    assert!(served, "the address was still refused");
}

#[test]
fn commands_over_the_cap_are_told_the_server_is_busy_and_idle_connections_hold_no_slot() {
    let server = ServerProcess::start(&["--max-sessions", "2"]);
    // Connections that ran a command and went quiet hold no slot.
    let mut idle: Vec<_> = (0..5).map(|_| server.client(None)).collect();
    for client in &mut idle {
        exec(client, "true");
    }
    // Two commands running take both slots.
    let mut running: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut stream = raw_connection(&server.addr);
            stream.write_all(&exec_frame("sleep 2")).expect("send");
            stream
        })
        .collect();
    assert!(shell_common::eventually(Duration::from_secs(5), || {
        shell_common::shells_of(server.pid()).len() == 2
    }));
    let mut third = raw_connection(&server.addr);
    third.write_all(&exec_frame("true")).expect("send");
    let (header, _) = read_raw_frame(&mut third).expect("busy frame");
    assert_eq!(header["op"], "error");
    assert_eq!(header["code"], "busy");
    assert!(
        header["message"].as_str().unwrap().contains("retry"),
        "{header}"
    );
    for stream in &mut running {
        let (_, exit) = read_exec_reply(stream);
        assert_eq!(exit["code"], 0);
    }
    // Slots free up as commands end, and the quiet connections are still served.
    for client in &mut idle {
        let (_, out) = exec(client, "echo again");
        assert_eq!(out.stdout, b"again\n");
    }
}

/// Sends `bytes` on a fresh connection and returns the first reply frame's header.
fn first_reply(addr: &str, bytes: &[u8]) -> (serde_json::Value, TcpStream) {
    let mut stream = raw_connection(addr);
    stream.write_all(bytes).expect("send");
    let (header, _) = read_raw_frame(&mut stream).expect("a reply frame");
    (header, stream)
}

/// Reads an exec's replies up to its exit frame: stdout and the exit header.
fn read_exec_reply(stream: &mut TcpStream) -> (Vec<u8>, serde_json::Value) {
    let mut stdout = Vec::new();
    loop {
        let (header, body) = read_raw_frame(stream).expect("reply frame");
        match header["op"].as_str() {
            Some("stdout") => stdout.extend_from_slice(&body),
            Some("stderr") => {}
            _ => return (stdout, header),
        }
    }
}

#[test]
fn hostile_frames_get_error_frames_while_other_sessions_go_on() {
    let server = ServerProcess::start(&[]);
    let addr = server.addr.clone();
    let bystander = thread::spawn(move || {
        let mut client = shell_common::client_at(&addr, None);
        exec(&mut client, "sleep 1; echo survived")
    });

    // Frames that leave the stream out of step: an error frame, then the connection closes.
    let closing: [(&str, Vec<u8>); 5] = [
        ("negative length", vec![0, 0, 0, 0x80, b'{']),
        ("header over the cap", vec![0, 0, 1, 0, b'{']),
        ("header not JSON", header_frame("{abc}", b"")),
        ("deep nesting", header_frame(&"[".repeat(500), b"")),
        (
            "bad total_size",
            header_frame(r#"{"op":"exec","total_size":-5}"#, b""),
        ),
    ];
    for (what, bytes) in closing {
        let (header, mut stream) = first_reply(&server.addr, &bytes);
        assert_eq!(header["op"], "error", "{what}");
        assert_eq!(header["code"], "bad_frame", "{what}: {header}");
        assert!(read_raw_frame(&mut stream).is_none(), "{what}: still open");
    }

    // Requests that are refused but leave the stream in step: the same connection goes on.
    let recoverable: [(&str, Vec<u8>, &str); 5] = [
        (
            "unknown op",
            header_frame(r#"{"op":"rm","total_size":0}"#, b""),
            "unknown_op",
        ),
        (
            "no op",
            header_frame(r#"{"total_size":2}"#, b"ls"),
            "bad_header",
        ),
        (
            "not UTF-8",
            header_frame(r#"{"op":"exec","total_size":2}"#, &[0xff, 0xfe]),
            "bad_command",
        ),
        (
            "too long",
            header_frame(r#"{"op":"exec","total_size":200000}"#, &[b'x'; 200_000]),
            "command_too_long",
        ),
        (
            "wrong checksum",
            header_frame(
                r#"{"op":"exec","total_size":4,"xxh3":"00000000000000000000000000000000"}"#,
                b"true",
            ),
            "bad_frame",
        ),
    ];
    for (what, bytes, code) in recoverable {
        let (header, mut stream) = first_reply(&server.addr, &bytes);
        assert_eq!(header["op"], "error", "{what}");
        assert_eq!(header["code"], code, "{what}: {header}");
        stream.write_all(&exec_frame("echo next")).expect("send");
        let (stdout, exit) = read_exec_reply(&mut stream);
        assert_eq!(stdout, b"next\n", "{what}");
        assert_eq!(exit["code"], 0, "{what}");
    }

    // Garbage without a NUL is taken for a seed-style command, and seed clients are not
    // served unless the operator chose a reply format: a line says so, and the server closes.
    let told = {
        let mut stream = raw_connection(&server.addr);
        stream.write_all(&[0xff, 0xff, 0xff, 0xff]).expect("send");
        let mut told = Vec::new();
        stream
            .read_to_end(&mut told)
            .expect("the refusal, then the end");
        String::from_utf8_lossy(&told).into_owned()
    };
    assert!(told.starts_with("unstick: "), "{told:?}");
    assert!(told.contains("--seed-reply"), "{told:?}");

    let (report, out) = bystander.join().expect("bystander");
    assert_eq!(report.termination, Termination::Exited(0));
    assert_eq!(out.stdout, b"survived\n");
}
