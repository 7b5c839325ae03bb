//! `unstick info ADDR` against real servers on loopback: each says which protocol it serves,
//! its limits, digests and platform, without a token and without giving the token or its disk
//! away; and either server answers the request when it comes from the other protocol's client.

mod serve_common;
mod shell_common;

use std::time::Duration;

use serde_json::Value;
use serve_common::{Served, run_client};
use unstick_std::files::{ClientError, ClientOptions, FileClient};
use unstick_std::reached::{Reached, Tool};
use unstick_std::shell::{CapturedOutput, ShellClient, Termination};

/// Longest any one client call may take.
const CALL_LIMIT: Duration = Duration::from_secs(20);

const TOKEN: &str = "info-test-token-0123456789abcdef";

/// `unstick info ARGS...`: its stdout, the call checked to have succeeded.
fn info(args: &[&str]) -> String {
    let mut all = vec!["info"];
    all.extend_from_slice(args);
    let out = run_client(&all, None, CALL_LIMIT);
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `unstick info --json ADDR`, parsed.
fn info_json(addr: &str) -> Value {
    serde_json::from_str(&info(&["--json", addr])).expect("one JSON object")
}

fn platform() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

#[test]
fn the_shell_server_says_it_serves_the_shell_without_a_token() {
    let server = Served::shell(&["--token", TOKEN]);
    let text = info(&[&server.addr]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.contains(&"protocols     shell"), "{text}");
    assert!(lines.contains(&"max command   131071 bytes"), "{text}");
    assert!(lines.contains(&"max header    8192 bytes"), "{text}");
    assert!(lines.contains(&"digests       xxh3, md5"), "{text}");
    assert!(
        !text.contains("max path") && !text.contains(TOKEN),
        "{text}"
    );

    let json = info_json(&server.addr);
    assert_eq!(json["protocols"], serde_json::json!(["shell"]));
    assert_eq!(json["version"], 1);
    assert_eq!(json["max_command"], 131_071);
    assert_eq!(json["platform"], platform().as_str());
    // The token still guards commands.
    let out = run_client(
        &["shell", "connect", &server.addr, "-c", "echo ran"],
        None,
        CALL_LIMIT,
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unauthorized"));
}

#[test]
fn the_file_server_says_its_limits_and_free_space_but_not_its_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("served-root-name");
    let server = Served::ftp(&root, &["--token", TOKEN, "--max-file-size", "3M"]);
    let json = info_json(&server.addr);
    assert_eq!(json["protocols"], serde_json::json!(["file"]));
    assert_eq!(json["max_file_size"], 3 * 1024 * 1024);
    assert_eq!(json["max_path"], 4096);
    assert_eq!(json["digests"], serde_json::json!(["xxh3", "md5"]));
    assert!(json.get("max_command").is_none(), "{json}");
    if cfg!(unix) {
        assert!(json["free_space"].as_u64().is_some_and(|n| n > 0), "{json}");
    }
    let text = info(&[&server.addr]);
    assert!(text.contains("max file size 3145728 bytes"), "{text}");
    for secret in [TOKEN, "served-root-name", dir.path().to_str().unwrap()] {
        assert!(!text.contains(secret) && !json.to_string().contains(secret));
    }
}

#[test]
fn each_server_answers_the_other_protocols_client_and_goes_on_serving_it() {
    let dir = tempfile::tempdir().unwrap();
    let shell = Served::shell(&[]);
    let files = Served::ftp(dir.path(), &[]);

    // A file client asking the shell server.
    let options = ClientOptions {
        timeout: CALL_LIMIT,
        ..ClientOptions::default()
    };
    let mut file_client = FileClient::connect(&shell.addr, options.clone()).unwrap();
    let info = file_client.info().unwrap();
    assert!(info.facts.protocols.shell && !info.facts.protocols.file);
    assert_eq!(info.facts.max_command, Some(131_071));
    assert_eq!(info.platform.as_deref(), Some(platform().as_str()));
    // Its next request, one the shell server does not serve, is refused, and the client,
    // asking info in turn, says what it reached.
    let refused = file_client.list(None).unwrap_err();
    assert!(
        matches!(
            refused,
            ClientError::Reached(Reached::OtherTool { wanted: Tool::File })
        ),
        "{refused}"
    );

    // A shell client asking the file server, then a file client on it.
    let mut shell_client = ShellClient::connect(&files.addr, None).unwrap();
    let info = shell_client.info().unwrap();
    assert!(info.facts.protocols.file && !info.facts.protocols.shell);
    assert_eq!(info.facts.max_path, Some(4096));
    let mut file_client = FileClient::connect(&files.addr, options).unwrap();
    let mut again = file_client.info().unwrap();
    // The disk's free space moves with whatever else writes to it.
    assert!(again.facts.free_space.is_some());
    again.facts.free_space = info.facts.free_space;
    assert_eq!(again, info);
    assert!(file_client.list(None).unwrap().is_empty());

    // The shell client's connection to the shell server carries commands after its info.
    let mut shell_client = ShellClient::connect(&shell.addr, None).unwrap();
    assert!(shell_client.info().unwrap().facts.protocols.shell);
    let mut output = CapturedOutput::default();
    let report = shell_client.exec("echo after", &mut output).unwrap();
    assert_eq!(report.termination, Termination::Exited(0));
    assert_eq!(output.stdout, b"after\n");
}

#[test]
fn an_address_that_answers_nothing_is_an_error_not_a_hang() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    // Accepted by the system, never answered: the timeout ends the wait.
    let out = run_client(&["info", "--timeout", "300ms", &addr], None, CALL_LIMIT);
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("did not answer"), "{stderr}");
    drop(listener);
    let out = run_client(&["info", "localhost"], None, CALL_LIMIT);
    assert_ne!(out.status.code(), Some(0));
}
