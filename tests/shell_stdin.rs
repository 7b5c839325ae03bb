//! A command's standard input, streamed from the client over loopback: piped and file input
//! through `shell connect`, megabytes through `cat` both ways at once, commands that read all,
//! some or none of it, and the connection staying in step for the next command.
#![cfg(unix)]

mod shell_common;

use std::fs::File;
use std::io::{Read, Write};
use std::process::Stdio;
use std::thread;

use shell_common::{
    Collected, ServerProcess, connect_cli, connect_command, header_frame, pseudo_random,
    raw_connection, read_raw_frame, wait_bounded,
};
use unstick_std::shell::{CommandInput, ShellClientError, Termination};

#[test]
fn piped_input_reaches_the_command_with_its_end() {
    let server = ServerProcess::start(&[]);
    let out = connect_cli(&server.addr, &["-c", "cat"], b"hello\n", &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, b"hello\n");
    // Words after the address are the command, as ssh takes them.
    let out = connect_cli(&server.addr, &["tr", "a-z", "A-Z"], b"hello\n", &[]);
    assert_eq!(
        (out.status.code(), &out.stdout[..]),
        (Some(0), &b"HELLO\n"[..])
    );
    // Joined with spaces, split again by the server's shell.
    let out = connect_cli(&server.addr, &["printf", "'%s|'", "a  b", "c"], b"", &[]);
    assert_eq!(out.stdout, b"a|b|c|");
    let out = connect_cli(
        &server.addr,
        &["read", "x;", "echo", "got:$x"],
        b"one\ntwo\n",
        &[],
    );
    assert_eq!(out.stdout, b"got:one\n");
}

#[test]
fn eight_mib_through_cat_arrive_byte_exact_while_its_output_streams_back() {
    let server = ServerProcess::start(&["--max-output", "64M"]);
    let data = pseudo_random(8 << 20, 7);
    // Both directions at once: neither end may wait for the other to finish.
    let out = connect_cli(&server.addr, &["-c", "cat; cat >&2 </dev/null"], &data, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout == data,
        "stdout differs: {} bytes",
        out.stdout.len()
    );
    // Through two commands that both read and write, and a file as the input.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("in");
    std::fs::write(&path, &data).expect("write the input");
    let mut command = connect_command(&server.addr, &["-c", "cat | cat"]);
    command.stdin(Stdio::from(File::open(&path).expect("open the input")));
    let out = wait_bounded(command.spawn().expect("spawn"));
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout == data, "file input differs");
}

#[test]
fn commands_that_read_some_or_none_of_their_input_end_with_their_status() {
    let server = ServerProcess::start(&[]);
    let data = pseudo_random(32 << 20, 3);
    let out = connect_cli(&server.addr, &["-c", "head -c 10"], &data, &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stdout, &data[..10]);
    let out = connect_cli(
        &server.addr,
        &["-c", "echo did not read; exit 4"],
        &data,
        &[],
    );
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(out.stdout, b"did not read\n");
    // `wc -c < file`: the whole file, counted.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("in");
    std::fs::write(&path, &data[..1_000_000]).expect("write the input");
    let mut command = connect_command(&server.addr, &["-c", "wc -c"]);
    command.stdin(Stdio::from(File::open(&path).expect("open")));
    let out = wait_bounded(command.spawn().expect("spawn"));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1000000");
    // Empty input: the end, at once.
    let out = connect_cli(&server.addr, &["-c", "wc -c"], b"", &[]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
}

#[test]
fn a_connection_stays_in_step_after_input_the_command_left_unread() {
    let server = ServerProcess::start(&[]);
    let mut client = server.client(None);
    let data = pseudo_random(3 << 20, 5);
    for command in ["head -c 100", "true", "cat", "read line"] {
        let (reader, mut writer) = std::io::pipe().expect("pipe");
        let feeder = thread::spawn({
            let data = data.clone();
            move || {
                let _ = writer.write_all(&data);
            }
        });
        let mut input = CommandInput::from_pipe(reader).expect("input");
        let mut out = Collected::keeping();
        let report = client
            .exec_with_input(command, None, &mut input, &mut out)
            .expect(command);
        assert_eq!(report.termination, Termination::Exited(0), "{command}");
        let expected: &[u8] = match command {
            "head -c 100" => &data[..100],
            "cat" => &data,
            _ => b"",
        };
        assert!(
            out.stdout == expected,
            "{command}: {} bytes",
            out.stdout.len()
        );
        drop(input);
        feeder.join().expect("feeder");
        // The same connection runs the next command, with or without input.
        let (report, out) = shell_common::exec(&mut client, "echo next");
        assert_eq!(report.termination, Termination::Exited(0));
        assert_eq!(out.stdout, b"next\n", "after {command}");
    }
    // A refused request drops its input, and the connection goes on.
    let mut input = CommandInput::from_file(File::open("/dev/null").expect("null")).unwrap();
    let refused = client.exec_with_input(
        "cat",
        Some("/no/such/dir"),
        &mut input,
        &mut Collected::keeping(),
    );
    assert!(
        matches!(&refused, Err(ShellClientError::Server { code, .. }) if code == "bad_path"),
        "{refused:?}"
    );
    let (_, out) = shell_common::exec(&mut client, "echo after");
    assert_eq!(out.stdout, b"after\n");
}

#[test]
fn a_client_that_hangs_up_while_its_input_streams_has_its_command_killed() {
    let server = ServerProcess::start(&[]);
    let mut stream = raw_connection(&server.addr);
    let mut wire = header_frame(r#"{"op":"exec","stdin":true,"total_size":3}"#, b"cat");
    wire.extend(header_frame(r#"{"op":"stdin","total_size":3}"#, b"hi\n"));
    stream.write_all(&wire).expect("send");
    let (header, body) = read_raw_frame(&mut stream).expect("the output");
    assert_eq!(
        (header["op"].as_str(), &body[..]),
        (Some("stdout"), &b"hi\n"[..])
    );
    // Gone (a half-close counts): the command is killed, and no exit frame comes.
    stream
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
}

#[test]
fn a_client_that_sends_another_request_before_its_input_ends_is_refused() {
    let server = ServerProcess::start(&[]);
    let mut stream = raw_connection(&server.addr);
    let mut wire = header_frame(r#"{"op":"exec","stdin":true,"total_size":3}"#, b"cat");
    wire.extend(header_frame(r#"{"op":"exec","total_size":2}"#, b"ls"));
    stream.write_all(&wire).expect("send");
    let mut ops = Vec::new();
    while let Some((header, _)) = read_raw_frame(&mut stream) {
        ops.push(header["op"].as_str().unwrap_or("?").to_owned());
        if header["op"] == "error" {
            assert_eq!(header["code"], "unknown_op");
        }
    }
    assert_eq!(ops, ["error"]);
}

#[test]
fn requests_without_input_behave_as_before() {
    let server = ServerProcess::start(&[]);
    // An exec without "stdin": the command's input is empty, and what follows it is the next
    // request, read only once the command has ended.
    let mut stream = raw_connection(&server.addr);
    let mut wire = header_frame(r#"{"op":"exec","total_size":3}"#, b"cat");
    wire.extend(header_frame(
        r#"{"op":"exec","total_size":9}"#,
        b"echo next",
    ));
    stream.write_all(&wire).expect("send");
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let (header, body) = read_raw_frame(&mut stream).expect("a reply");
        seen.push((header["op"].as_str().unwrap_or("?").to_owned(), body));
    }
    assert_eq!(seen[0].0, "exit", "cat read an empty input");
    assert_eq!(
        (seen[1].0.as_str(), &seen[1].1[..]),
        ("stdout", &b"next\n"[..])
    );
    assert_eq!(seen[2].0, "exit");
    // And the CLI from a terminal-less stdin that is /dev/null: the end at once.
    let mut command = connect_command(&server.addr, &["-c", "cat"]);
    command.stdin(Stdio::null());
    let out = wait_bounded(command.spawn().expect("spawn"));
    assert_eq!((out.status.code(), out.stdout.len()), (Some(0), 0));
}
