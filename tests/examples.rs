//! The examples, run in-process: each one's whole output, checked for what it demonstrates.
//!
//! Every example keeps its logic in a `run(out)` function that `main` calls with stdout, so the
//! test exercises the same code (over real loopback sockets) without spawning cargo.

#[allow(dead_code)] // `main` is for `cargo run --example`
#[path = "../examples/sticky_packets.rs"]
mod sticky_packets;

#[allow(dead_code)]
#[path = "../examples/plain_frames.rs"]
mod plain_frames;

#[allow(dead_code)]
#[path = "../examples/header_frames.rs"]
mod header_frames;

type Run = fn(&mut dyn std::io::Write) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn output_of(run: Run) -> String {
    let mut out = Vec::new();
    run(&mut out).expect("example runs to completion");
    String::from_utf8(out).expect("example prints UTF-8")
}

fn assert_has(output: &str, line: &str) {
    assert!(
        output.contains(line),
        "missing {line:?} in the output:\n{output}"
    );
}

#[test]
fn sticky_packets_shows_both_cases_raw_then_framed() {
    let output = output_of(sticky_packets::run);
    let (raw, framed) = output
        .split_once("== unstick frames")
        .expect("a framed part follows the raw part");
    // Raw: the short read leaves listing bytes that glue onto the later replies.
    assert_has(raw, "client recv(1024) -> 1024 bytes: \"total 40\\n");
    assert_has(raw, "client recv(1024) -> 299 bytes:");
    assert_has(raw, "\"t\\naaron\\n/home/aaron\\n\"");
    assert_has(raw, "1: \"helloworld\"\n  2: \"\"");
    // Framed: every reply whole and verified, hello and world apart though read at once.
    assert_has(
        framed,
        "reply to \"ls -l\": 2329 of 2329 bytes, xxh3 Verified",
    );
    assert_has(
        framed,
        "reply to \"whoami\": 6 of 6 bytes, xxh3 Verified: \"aaron\\n\"",
    );
    assert_has(
        framed,
        "reply to \"pwd\": 12 of 12 bytes, xxh3 Verified: \"/home/aaron\\n\"",
    );
    assert_has(
        framed,
        "one recv(1024) got 18 bytes: 05 00 00 00 68 65 6c 6c 6f 05 00 00 00 77 6f 72 6c 64",
    );
    assert_has(
        framed,
        "frame 1: 5 bytes \"hello\"\n  frame 2: 5 bytes \"world\"\n",
    );
}

#[test]
fn plain_frames_arrive_whole_including_empty_and_long_ones() {
    let output = output_of(plain_frames::run);
    assert_has(&output, "sent [05 00 00 00] + 5 bytes");
    assert_has(&output, "sent [b5 0b 00 00] + 2997 bytes");
    assert_has(&output, "got  2997 bytes: \"stdout of a chat\"");
    assert_has(&output, "sent [00 00 00 00] + 0 bytes");
    assert_has(&output, "got     9 bytes: \"done, \u{2713}\"");
    assert_has(&output, "5 frames sent, 5 received");
}

#[test]
fn header_frames_show_typed_headers_and_every_verdict() {
    let output = output_of(header_frames::run);
    let frames: Vec<&str> = output.split("header, ").skip(1).collect();
    assert_eq!(frames.len(), 4, "four frames in:\n{output}");
    assert_has(frames[0], "md5 Verified");
    assert_has(
        frames[1],
        "65 bytes on the wire: {\"md5\": \"fdsaf2143254f\", \"file_name\": \"f1.txt\", \"total_size\": 21}",
    );
    assert_has(frames[1], "md5 NotADigest");
    assert_has(
        frames[2],
        "verdict: refused, body does not match its md5 digest",
    );
    assert_has(
        frames[3],
        "typed: name = config, folder = C:\\Users\\Aaron\\Desktop\\\u{65b0}\u{5efa}\u{6587}\u{4ef6}\u{5939}",
    );
    assert_has(frames[3], "body, 21 bytes: \"[server]\\nport = 8090\\n\"");
}
