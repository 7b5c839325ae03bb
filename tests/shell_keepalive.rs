//! Keepalives over loopback: `shell connect` gives up on a server that sends nothing within
//! `--server-alive`, naming the option, while a command that prints nothing for several times
//! that runs to its end; clients that do not ask for keepalives (older ones, the seed's) never
//! get one, and a server that predates them is not cut off once it has answered.

mod shell_common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;
use std::time::Duration;

use shell_common::{
    ServerProcess, connect_cli, exec_frame, header_frame, raw_connection, read_raw_frame,
};

/// A listener that accepts connections and never answers; its address.
fn silent_listener() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    addr
}

#[test]
fn a_server_that_never_answers_is_given_up_on_after_server_alive() {
    let addr = silent_listener();
    for input in [&b""[..], b"hello\n"] {
        let out = connect_cli(
            &addr,
            &["--server-alive", "500ms", "-c", "true"],
            input,
            &[],
        );
        assert_eq!(out.status.code(), Some(255), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("sent nothing for 500 ms") && stderr.contains("--server-alive"),
            "{stderr}"
        );
    }
}

#[test]
fn a_silent_command_outlives_a_short_server_alive() {
    let server = ServerProcess::start(&[]);
    // Three times the limit without a byte of output: keepalives every third of it.
    let out = connect_cli(
        &server.addr,
        &["--server-alive", "1s", "-c", "sleep 3; echo done"],
        b"",
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, b"done\n");
    // With its input still streaming, and from a terminal-less `0` (wait forever) alike.
    let out = connect_cli(
        &server.addr,
        &["--server-alive", "1s", "-c", "sleep 3; cat"],
        b"late\n",
        &[],
    );
    assert_eq!(
        (out.status.code(), &out.stdout[..]),
        (Some(0), &b"late\n"[..])
    );
    let out = connect_cli(
        &server.addr,
        &["--server-alive", "0", "-c", "echo x"],
        b"",
        &[],
    );
    assert_eq!(out.stdout, b"x\n");
}

#[test]
fn a_client_that_asks_for_no_keepalives_gets_none() {
    let server = ServerProcess::start(&[]);
    let mut stream = raw_connection(&server.addr);
    stream
        .write_all(&exec_frame("sleep 1; echo x"))
        .expect("send");
    let ops: Vec<String> = (0..2)
        .map(|_| read_raw_frame(&mut stream).expect("a reply").0["op"].to_string())
        .collect();
    assert_eq!(ops, [r#""stdout""#, r#""exit""#]);
    // One that asks gets one at the command's start, and more while it is silent.
    let header = r#"{"op":"exec","alive":200,"total_size":15}"#;
    stream
        .write_all(&header_frame(header, b"sleep 1; echo x"))
        .expect("send");
    let mut ops = Vec::new();
    while ops.last().is_none_or(|op| op != "exit") {
        let (header, _) = read_raw_frame(&mut stream).expect("a reply");
        ops.push(header["op"].as_str().unwrap_or("?").to_owned());
    }
    assert_eq!(ops[0], "alive");
    assert!(
        ops.iter().filter(|op| *op == "alive").count() >= 3,
        "{ops:?}"
    );
    assert_eq!(&ops[ops.len() - 2..], ["stdout", "exit"]);
}

#[test]
fn a_server_that_predates_keepalives_is_not_cut_off_once_it_answered() {
    // An older server: it ignores "alive", writes, stays silent for twice the client's limit,
    // then ends the command.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let old_server = thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut prefix = [0u8; 4];
        conn.read_exact(&mut prefix).expect("request");
        let mut header = vec![0u8; i32::from_le_bytes(prefix) as usize];
        conn.read_exact(&mut header).expect("header");
        let header: serde_json::Value = serde_json::from_slice(&header).expect("json");
        assert!(header["alive"].as_u64().is_some(), "{header}");
        let mut command = vec![0u8; header["total_size"].as_u64().unwrap() as usize];
        conn.read_exact(&mut command).expect("command");
        conn.write_all(&header_frame(
            r#"{"op":"stdout","total_size":6}"#,
            b"first\n",
        ))
        .expect("output");
        thread::sleep(Duration::from_secs(2));
        let exit = r#"{"op":"exit","code":0,"truncated":false,"timed_out":false,"total_size":0}"#;
        conn.write_all(&header_frame(exit, b"")).expect("exit");
        let _ = conn.read_to_end(&mut Vec::new());
    });
    let out = connect_cli(&addr, &["--server-alive", "1s", "-c", "x"], b"", &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, b"first\n");
    old_server.join().expect("the old server");
}
