//! The servers' audit log on stderr (issue 7): one line per event, human (`<RFC 3339> <level>
//! <message> key=value...`) or JSON (`--log-format json`), quieter with `-q`, louder with `-v`,
//! and never a token or a file's contents.

mod serve_common;
mod shell_common;

use std::fs;
use std::time::Duration;

use serde_json::Value;
use serve_common::{Served, run_client, xxh3_hex};

const TOKEN: &str = "s3cretTOKEN123";
const WRONG_TOKEN: &str = "wrongTOKEN456";
const CLIENT_LIMIT: Duration = Duration::from_secs(20);
const LOG_LIMIT: Duration = Duration::from_secs(5);

/// Whether `t` is an RFC 3339 date-time: `2026-01-31T12:34:56(.123)?(Z|+01:00)`.
fn is_rfc3339(t: &str) -> bool {
    let b = t.as_bytes();
    if b.len() < 20 {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let date_time = digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && matches!(b[10], b'T' | b't')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !date_time {
        return false;
    }
    let mut rest = &t[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let n = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &fraction[n..];
    }
    let r = rest.as_bytes();
    matches!(rest, "Z" | "z")
        || (r.len() == 6
            && matches!(r[0], b'+' | b'-')
            && r[1..3].iter().all(u8::is_ascii_digit)
            && r[3] == b':'
            && r[4..6].iter().all(u8::is_ascii_digit))
}

const LEVELS: [&str; 6] = ["error", "warn", "warning", "info", "debug", "trace"];

/// The level of a human-format line (its second word, brackets and case aside).
fn level_of(line: &str) -> Option<String> {
    let word = line.split_whitespace().nth(1)?;
    let level = word
        .trim_matches(|c: char| !c.is_ascii_alphabetic())
        .to_ascii_lowercase();
    LEVELS.contains(&level.as_str()).then_some(level)
}

/// Fails unless every line of `log` is a human-format event line.
fn assert_human_format(log: &str) {
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let first = line.split_whitespace().next().unwrap_or("");
        assert!(
            is_rfc3339(first),
            "a log line that does not start with an RFC 3339 timestamp: {line:?}"
        );
        assert!(
            level_of(line).is_some(),
            "a log line without a level after its timestamp: {line:?}"
        );
    }
}

/// The value of `key=` in a human-format line: up to the next space, or between quotes.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line
        .match_indices(&format!("{key}="))
        .find(|(i, _)| *i == 0 || line.as_bytes()[i - 1] == b' ')?
        .0;
    let value = &line[at + key.len() + 1..];
    if let Some(quoted) = value.strip_prefix('"') {
        let bytes = quoted.as_bytes();
        let mut i = 0;
        while i < bytes.len() && bytes[i] != b'"' {
            i += if bytes[i] == b'\\' { 2 } else { 1 };
        }
        return Some(&quoted[..i.min(quoted.len())]);
    }
    Some(value.split(' ').next().unwrap_or(""))
}

fn wait_line(server: &Served, what: &str, wanted: impl Fn(&str) -> bool) -> String {
    server
        .wait_log_line(LOG_LIMIT, wanted)
        .unwrap_or_else(|| panic!("no {what} line in the log:\n{}", server.log()))
}

fn assert_no_secrets(log: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!log.contains(secret), "the log holds {secret:?}:\n{log}");
    }
}

fn shell_run(addr: &str, command: &str, token: &str) -> std::process::Output {
    run_client(
        &["shell", "connect", addr, "-c", command, "--token", token],
        None,
        CLIENT_LIMIT,
    )
}

/// The checks above accept the shapes the format allows (and refuse what it does not).
#[test]
fn the_log_line_checks_accept_the_documented_shapes() {
    let line = "2026-03-01T12:00:00.123Z INFO command finished peer=127.0.0.1:5555 command=\"echo \\\"hi\\\" there\" exit_code=0 duration_ms=3";
    assert!(is_rfc3339("2026-03-01T12:00:00.123Z"));
    assert!(is_rfc3339("2026-03-01T12:00:00+01:00"));
    assert!(is_rfc3339("2026-03-01T12:00:00.123456789-05:30"));
    assert!(!is_rfc3339("2026-03-01"));
    assert!(!is_rfc3339("12:00:00"));
    assert!(!is_rfc3339("2026-03-01T12:00:00"));
    assert_eq!(level_of(line).as_deref(), Some("info"));
    assert_eq!(
        level_of("2026-03-01T12:00:00Z [WARN] refused").as_deref(),
        Some("warn")
    );
    assert_eq!(
        level_of("2026-03-01T12:00:00Z  DEBUG x").as_deref(),
        Some("debug")
    );
    assert_eq!(level_of("2026-03-01T12:00:00Z refused code=x"), None);
    assert_human_format(&format!("{line}\n\n{line}\n"));
    assert_eq!(field(line, "peer"), Some("127.0.0.1:5555"));
    assert_eq!(field(line, "command"), Some("echo \\\"hi\\\" there"));
    assert_eq!(field(line, "exit_code"), Some("0"));
    assert_eq!(field(line, "code"), None);
    assert_eq!(field(line, "duration_ms"), Some("3"));
}

#[test]
fn the_shell_server_logs_commands_and_refusals_but_no_token() {
    let server = Served::shell(&["--token", TOKEN]);
    let out = shell_run(&server.addr, "echo audit-run", TOKEN);
    assert_eq!(out.stdout, b"audit-run\n");
    let out = shell_run(&server.addr, "kill -9 $$", TOKEN);
    assert_eq!(out.status.code(), Some(128 + 9));
    let out = shell_run(&server.addr, "echo must-not-run", WRONG_TOKEN);
    assert_eq!(out.status.code(), Some(255));

    let finished = wait_line(&server, "`command finished ... exit_code=0`", |l| {
        l.contains("command finished") && l.contains("audit-run") && l.contains("exit_code=0")
    });
    assert!(
        field(&finished, "peer").is_some_and(|p| p.trim_matches('"').starts_with("127.0.0.1:")),
        "{finished}"
    );
    assert!(field(&finished, "command").is_some(), "{finished}");
    assert!(
        field(&finished, "duration_ms").is_some_and(|d| d.parse::<u64>().is_ok()),
        "{finished}"
    );
    wait_line(&server, "`command finished ... signal=9`", |l| {
        l.contains("command finished") && l.contains("signal=9")
    });
    let refused = wait_line(&server, "`refused ... code=unauthorized`", |l| {
        l.contains("refused") && field(l, "code") == Some("unauthorized")
    });
    assert!(
        field(&refused, "peer").is_some_and(|p| p.trim_matches('"').starts_with("127.0.0.1:")),
        "{refused}"
    );
    assert!(
        !server.log().contains("must-not-run"),
        "a refused command was logged as run"
    );
    let log = server.log();
    assert_human_format(&log);
    assert_no_secrets(&log, &[TOKEN, WRONG_TOKEN]);
}

#[test]
fn the_file_server_logs_transfers_and_refusals_but_no_token_or_contents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let server = Served::ftp(&root, &["--token", TOKEN]);
    let contents = b"CONTENTS-MARKER-z7q4 the file's own words\n";
    fs::write(dir.path().join("report.txt"), contents).expect("write");
    let ftp = |args: &[&str]| {
        let mut all = vec!["ftp"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--addr", &server.addr]);
        run_client(&all, Some(dir.path()), CLIENT_LIMIT)
    };
    let ok = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        )
    };
    ok(ftp(&["put", "report.txt", "--token", TOKEN]));
    let back = dir.path().join("back.txt");
    ok(ftp(&[
        "get",
        "report.txt",
        back.to_str().unwrap(),
        "--token",
        TOKEN,
    ]));
    assert_eq!(fs::read(&back).unwrap(), contents);
    ok(ftp(&["delete", "report.txt", "--token", TOKEN]));
    let refused = ftp(&["ls", "--token", WRONG_TOKEN]);
    assert!(!refused.status.success());

    let stored = wait_line(&server, "`file stored`", |l| l.contains("file stored"));
    assert!(
        field(&stored, "path").is_some_and(|p| p.contains("report.txt")),
        "{stored}"
    );
    assert_eq!(
        field(&stored, "size"),
        Some(contents.len().to_string().as_str()),
        "{stored}"
    );
    let xxh3 = field(&stored, "xxh3").map(|x| x.trim_matches('"').to_ascii_lowercase());
    assert_eq!(
        xxh3.as_deref(),
        Some(xxh3_hex(contents).as_str()),
        "{stored}"
    );
    wait_line(&server, "`file sent`", |l| {
        l.contains("file sent") && l.contains("report.txt")
    });
    wait_line(&server, "`file deleted`", |l| {
        l.contains("file deleted") && l.contains("report.txt")
    });
    wait_line(&server, "`refused ... code=unauthorized`", |l| {
        l.contains("refused")
            && field(l, "code") == Some("unauthorized")
            && field(l, "peer").is_some()
    });
    let log = server.log();
    assert_human_format(&log);
    assert_no_secrets(&log, &[TOKEN, WRONG_TOKEN, "CONTENTS-MARKER-z7q4"]);
}

/// The log's lines as JSON objects; fails on a line that is not one.
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line:?}"));
            assert!(value.is_object(), "{line}");
            assert!(
                value["timestamp"].as_str().is_some_and(is_rfc3339),
                "no RFC 3339 timestamp: {line}"
            );
            assert!(
                value["level"]
                    .as_str()
                    .is_some_and(|l| LEVELS.contains(&l.to_ascii_lowercase().as_str())),
                "no level: {line}"
            );
            assert!(value["message"].is_string(), "no message: {line}");
            value
        })
        .collect()
}

/// Waits for a JSON event satisfying `wanted`.
fn wait_event(server: &Served, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let found = server.wait_log_line(LOG_LIMIT, |line| {
        serde_json::from_str::<Value>(line).is_ok_and(|v| wanted(&v))
    });
    let line = found.unwrap_or_else(|| panic!("no {what} event in the log:\n{}", server.log()));
    serde_json::from_str(&line).unwrap()
}

fn message_has(event: &Value, text: &str) -> bool {
    event["message"].as_str().is_some_and(|m| m.contains(text))
}

#[test]
fn log_format_json_gives_one_object_per_event() {
    // As a global option before the subcommand.
    let listen = ["--listen", "127.0.0.1:0", "--token", TOKEN];
    let mut args = vec!["--log-format", "json", "shell", "serve"];
    args.extend_from_slice(&listen);
    let server = Served::start(&args, None);
    assert_eq!(
        shell_run(&server.addr, "echo json-run", TOKEN).stdout,
        b"json-run\n"
    );
    shell_run(&server.addr, "true", WRONG_TOKEN);
    let finished = wait_event(&server, "`command finished`", |v| {
        message_has(v, "command finished")
            && v["command"]
                .as_str()
                .is_some_and(|c| c.contains("json-run"))
    });
    assert!(
        finished["exit_code"] == 0 || finished["exit_code"] == "0",
        "{finished}"
    );
    assert!(
        finished["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{finished}"
    );
    assert!(!finished["duration_ms"].is_null(), "{finished}");
    let refused = wait_event(&server, "`refused`", |v| message_has(v, "refused"));
    assert_eq!(refused["code"], "unauthorized", "{refused}");
    let log = server.log();
    json_lines(&log);
    assert_no_secrets(&log, &[TOKEN, WRONG_TOKEN]);
}

#[test]
fn log_format_json_is_accepted_after_the_subcommand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let server = Served::ftp(&root, &["--log-format", "json"]);
    fs::write(dir.path().join("j.txt"), b"json upload\n").expect("write");
    let out = run_client(
        &["ftp", "put", "j.txt", "--addr", &server.addr],
        Some(dir.path()),
        CLIENT_LIMIT,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = wait_event(&server, "`file stored`", |v| message_has(v, "file stored"));
    assert!(
        stored["path"].as_str().is_some_and(|p| p.contains("j.txt")),
        "{stored}"
    );
    assert!(stored["size"] == 12 || stored["size"] == "12", "{stored}");
    assert_eq!(
        stored["xxh3"],
        xxh3_hex(b"json upload\n").as_str(),
        "{stored}"
    );
    json_lines(&server.log());
}

#[test]
fn quiet_hides_info_lines_but_keeps_refusals() {
    let server = Served::start(
        &[
            "-q",
            "shell",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--token",
            TOKEN,
        ],
        None,
    );
    assert_eq!(
        shell_run(&server.addr, "echo quiet-run", TOKEN).stdout,
        b"quiet-run\n"
    );
    shell_run(&server.addr, "true", WRONG_TOKEN);
    wait_line(&server, "`refused ... code=unauthorized`", |l| {
        l.contains("refused") && l.contains("code=unauthorized")
    });
    // The command finished before the refusal; give a late line a moment anyway.
    std::thread::sleep(Duration::from_millis(300));
    let log = server.log();
    assert!(
        !log.contains("command finished"),
        "-q logged an info line:\n{log}"
    );
    assert!(
        log.lines()
            .filter(|l| !l.trim().is_empty())
            .all(|l| level_of(l).as_deref() != Some("info")),
        "-q logged info lines:\n{log}"
    );
    assert_human_format(&log);
}

#[test]
fn verbose_adds_debug_lines() {
    let server = Served::start(&["-v", "shell", "serve", "--listen", "127.0.0.1:0"], None);
    let out = run_client(
        &["shell", "connect", &server.addr, "-c", "echo verbose-run"],
        None,
        CLIENT_LIMIT,
    );
    assert_eq!(out.stdout, b"verbose-run\n");
    wait_line(&server, "`command finished`", |l| {
        l.contains("command finished")
    });
    let opened = wait_line(&server, "`connection opened`", |l| {
        l.contains("connection opened")
    });
    assert!(field(&opened, "peer").is_some(), "{opened}");
    let closed = wait_line(&server, "`connection closed`", |l| {
        l.contains("connection closed")
    });
    assert!(field(&closed, "peer").is_some(), "{closed}");
    wait_line(&server, "debug-level", |l| {
        level_of(l).as_deref() == Some("debug")
    });
    assert_human_format(&server.log());
}

/// Text that would forge, hide or reorder log lines if written raw: a newline followed by a
/// whole fake line, carriage return, ESC sequences, NEL, the line and paragraph separators,
/// and bidirectional controls.
const FORGING: &str = "x\n2026-01-01T00:00:00Z  INFO command finished FORGED=1\r\u{1b}[8mhidden\u{85}nel\u{2028}ls\u{2029}ps\u{202e}rtl\u{2066}iso";

/// The part of [`FORGING`] a file name may hold (no control characters), so that requests
/// with it get past the path checks and reach the lines of work done.
const FORGING_NAME: &str = "n\u{2028}ls\u{2029}ps\u{202e}rtl\u{2066}iso";

/// Characters no log line may hold raw.
const RAW_FORBIDDEN: [char; 8] = [
    '\r', '\u{1b}', '\u{85}', '\u{2028}', '\u{2029}', '\u{202e}', '\u{2066}', '\u{7}',
];

/// One framed request, `header` (with `total_size` added) and `body`.
fn frame(mut header: Value, body: &[u8]) -> Vec<u8> {
    header["total_size"] = body.len().into();
    let json = serde_json::to_vec(&header).unwrap();
    let mut out = (json.len() as i32).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out.extend_from_slice(body);
    out
}

/// Sends `requests` on one connection, ends its sending side, and reads replies until the
/// server closes it: what it answered does not matter here, only what it logged.
fn send_raw(addr: &str, requests: &[Vec<u8>]) {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return;
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for request in requests {
        if stream.write_all(request).is_err() {
            break;
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 4096];
    for _ in 0..200 {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

/// Fails unless every line of `log` is one whole event line with nothing in it raw that
/// could split, hide or reorder it; returns the log.
fn assert_lines_unforged(log: &str) {
    assert_human_format(log);
    for line in log.lines() {
        assert!(
            !line.contains("FORGED=1") || !line.starts_with("2026-01-01T00:00:00Z"),
            "a forged line: {line:?}"
        );
        for c in RAW_FORBIDDEN {
            assert!(!line.contains(c), "{c:?} raw in a log line: {line:?}");
        }
    }
}

#[test]
fn peer_text_in_every_shell_header_member_is_escaped_in_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir(dir.path().join(FORGING_NAME)).expect("a directory with the name");
    let workdir = dir.path().to_str().unwrap();
    let server = Served::shell(&["--token", TOKEN, "--workdir", workdir]);
    let exec = |extra: Value, command: &str| {
        let mut header = serde_json::json!({"op": "exec", "token": TOKEN});
        for (k, v) in extra.as_object().unwrap() {
            header[k] = v.clone();
        }
        frame(header, command.as_bytes())
    };
    let requests = [
        // A `cwd` that is no directory: refused with `bad_path`, the `cwd` in its reason.
        exec(serde_json::json!({"cwd": FORGING}), "true"),
        // A `cwd` that is one: the command runs, and its line records where.
        exec(serde_json::json!({"cwd": FORGING_NAME}), "true"),
        // The command itself.
        exec(serde_json::json!({}), &format!("true '{FORGING}'")),
        // An unknown op, a mistyped token, a wrong token, an unknown member.
        frame(serde_json::json!({"op": FORGING, "token": TOKEN}), b""),
        frame(serde_json::json!({"op": "exec", "token": 7}), b"true"),
        frame(serde_json::json!({"op": "exec", "token": FORGING}), b"true"),
        exec(serde_json::json!({(FORGING): FORGING}), "true"),
    ];
    for request in &requests {
        send_raw(&server.addr, std::slice::from_ref(request));
    }
    let cwd_line = wait_line(&server, "`command finished` with its cwd", |l| {
        l.contains("command finished") && field(l, "cwd").is_some_and(|c| c.contains("\\u{2028}"))
    });
    assert!(
        field(&cwd_line, "cwd").is_some_and(|c| c.contains("ls") && c.contains("\\u{202e}")),
        "{cwd_line}"
    );
    wait_line(&server, "the bad `cwd` refused", |l| {
        field(l, "code") == Some("bad_path") && l.contains("FORGED")
    });
    wait_line(&server, "the unknown op refused", |l| {
        field(l, "code") == Some("unknown_op")
    });
    wait_line(&server, "the wrong token refused", |l| {
        field(l, "code") == Some("unauthorized")
    });
    let log = server.log();
    assert_lines_unforged(&log);
    assert_no_secrets(&log, &[TOKEN]);
}

#[test]
fn peer_text_in_every_file_header_member_is_escaped_in_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let server = Served::ftp(&root, &["--token", TOKEN]);
    let request = |header: Value| frame(header, b"");
    let mut sent = Vec::new();
    for path in [FORGING, FORGING_NAME] {
        let nested = format!("{path}/{path}");
        sent.extend([
            request(serde_json::json!({"op": "mkdir", "path": path, "token": TOKEN})),
            request(serde_json::json!({"op": "mkdir", "path": path, "token": TOKEN})),
            request(serde_json::json!({"op": "stat", "path": path, "token": TOKEN})),
            request(serde_json::json!({"op": "ls", "path": path, "token": TOKEN})),
            request(serde_json::json!({"op": "get", "path": nested, "token": TOKEN})),
            request(serde_json::json!({"op": "rename", "path": nested, "to": path, "token": TOKEN})),
            request(serde_json::json!({"op": "rename", "path": path, "to": nested, "token": TOKEN})),
            request(serde_json::json!({"op": "rename", "path": path, "to": format!("{path}2"), "token": TOKEN})),
            request(serde_json::json!({"op": "delete", "path": nested, "token": TOKEN})),
            request(serde_json::json!({"op": "get", "path": path, "algorithm": FORGING, "token": TOKEN})),
            [
                frame(
                    serde_json::json!({"op": "put", "path": format!("{path}3"), "token": TOKEN}),
                    b"data",
                ),
                request(serde_json::json!({"op": "done", "file_xxh3": FORGING})),
            ]
            .concat(),
            request(serde_json::json!({"op": "put", "path": path, "offset": 2, "prefix_xxh3": FORGING, "token": TOKEN})),
        ]);
    }
    sent.extend([
        request(serde_json::json!({"op": FORGING, "token": TOKEN})),
        request(serde_json::json!({"op": "ls", "token": FORGING})),
        request(serde_json::json!({"filename": FORGING, "filesize": 1})),
    ]);
    for request in &sent {
        send_raw(&server.addr, std::slice::from_ref(request));
    }
    wait_line(&server, "the directory with the name created", |l| {
        // A field's text, as the log's formatter quotes it.
        l.contains("directory created") && l.contains("\\u{2028}")
    });
    wait_line(&server, "a refusal naming the path", |l| {
        // A refusal's reason, escaped as every message that names peer text.
        l.contains("refused") && l.contains("\\u202e") && !l.contains("directory created")
    });
    wait_line(&server, "the unknown op refused", |l| {
        l.contains("refused") && l.contains("unknown op")
    });
    let log = server.log();
    assert_lines_unforged(&log);
    assert_no_secrets(&log, &[TOKEN]);
}
