#![cfg(unix)]
//! Every command that writes results to standard output, run with its output a pipe whose
//! reader has gone (as `| head` leaves it once it has its lines): each ends quietly with 141
//! (128 + SIGPIPE, what a shell reports for a process that SIGPIPE ended), nothing on stderr.
//! The pipe is closed before the client starts, so every write it makes finds it closed.

mod serve_common;
mod shell_common;

use std::fs;
use std::io::Write;
use std::process::{Output, Stdio};
use std::thread;

use serve_common::{Served, unstick_command};
use shell_common::wait_bounded;

/// The status of a command whose output nobody reads any more.
const OUTPUT_CLOSED: i32 = 128 + 13;

/// `unstick ARGS...` with `stdin` as its input and its stdout a pipe already closed at the
/// other end; its status and stderr (stdout is empty).
fn into_closed_pipe(args: &[&str], stdin: &[u8]) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let mut command = unstick_command(args, None);
    command.stdin(Stdio::piped()).stdout(writer);
    let mut child = command.spawn().expect("spawn unstick");
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_vec();
    let feeder = thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let out = wait_bounded(child);
    feeder.join().expect("stdin writer");
    out
}

/// Checks that `unstick ARGS...` ended as a command whose reader left.
fn ends_quietly(args: &[&str], stdin: &[u8]) {
    let out = into_closed_pipe(args, stdin);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(OUTPUT_CLOSED),
        "`unstick {}`: {:?}, stderr: {stderr}",
        args.join(" "),
        out.status
    );
    assert!(stderr.is_empty(), "`unstick {}`: {stderr}", args.join(" "));
}

#[test]
fn file_commands_end_quietly_when_their_output_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(&root).unwrap();
    // Bigger than a pipe holds, so a download is written in many pieces.
    fs::write(root.join("big.bin"), vec![7u8; 1 << 20]).unwrap();
    for i in 0..50 {
        fs::write(root.join(format!("f{i:02}.txt")), b"x").unwrap();
    }
    let server = Served::ftp(&root, &[]);
    let addr = server.addr.as_str();
    ends_quietly(&["ftp", "ls", "--addr", addr], b"");
    ends_quietly(&["ftp", "ls", "-l", "--addr", addr], b"");
    ends_quietly(&["ftp", "get", "big.bin", "-", "--addr", addr], b"");
    ends_quietly(&["ftp", "stat", "big.bin", "--addr", addr], b"");
    ends_quietly(&["info", addr], b"");
    ends_quietly(&["info", "--json", addr], b"");
}

#[test]
fn shell_output_ends_quietly_when_closed() {
    let server = Served::shell(&["--seed-reply", "json"]);
    let addr = server.addr.as_str();
    ends_quietly(&["shell", "connect", addr, "-c", "echo hi"], b"");
    // Line by line from piped input, and `cd -`, which prints the directory itself.
    ends_quietly(&["shell", "connect", addr], b"echo hi\necho again\n");
    ends_quietly(&["shell", "connect", addr], b"cd -\necho after\n");
    ends_quietly(&["shell", "connect", "--seed", addr, "-c", "echo hi"], b"");
}

#[test]
fn generated_text_ends_quietly_when_closed() {
    ends_quietly(&["completions", "bash"], b"");
    ends_quietly(&["man"], b"");
    ends_quietly(&["token"], b"");
}
