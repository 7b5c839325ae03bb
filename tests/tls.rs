//! TLS end to end, with the real binary: both tools over TLS, trust on first use, pins, CAs,
//! client certificates, the plaintext/TLS mismatches on both ends, the non-loopback rule, and
//! `openssl s_client` (a client no one here wrote) against the printed fingerprint.

mod serve_common;
mod shell_common;

use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use serve_common::{Served, partial_is_idle, unstick_command};
use unstick_std::tls::{ClientTls, Fingerprint};

/// How long a server may take to print its fingerprint line after its address.
const LINE_LIMIT: Duration = Duration::from_secs(20);

/// A server started with TLS, and the fingerprint it printed.
struct TlsServed {
    served: Served,
    fingerprint: Fingerprint,
}

impl TlsServed {
    /// `unstick ARGS...` (a server with --tls), reading the `tls SHA256:...` line after the
    /// address.
    fn start(args: &[&str]) -> TlsServed {
        let mut served = Served::start(args, None);
        let line = served
            .next_stdout_line(LINE_LIMIT)
            .expect("a TLS server prints its fingerprint after its address");
        let fingerprint = line
            .strip_prefix("tls ")
            .unwrap_or_else(|| panic!("not a fingerprint line: {line}"))
            .parse()
            .expect("the printed fingerprint parses");
        TlsServed {
            served,
            fingerprint,
        }
    }

    /// `unstick shell serve` on loopback with TLS, its identity in `state`, and `args`.
    fn shell(state: &Path, args: &[&str]) -> TlsServed {
        let mut all = vec![
            "shell",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls",
            "--state-dir",
            path(state),
        ];
        all.extend_from_slice(args);
        TlsServed::start(&all)
    }

    /// `unstick ftp serve` on loopback with TLS, serving `root`, its identity in `state`.
    fn ftp(root: &Path, state: &Path) -> TlsServed {
        TlsServed::start(&[
            "ftp",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--root",
            path(root),
            "--tls",
            "--state-dir",
            path(state),
        ])
    }

    /// Fails unless the server logs a line holding `text` within ten seconds.
    #[track_caller]
    fn assert_logged(&self, text: &str) {
        let found = self
            .served
            .wait_log_line(Duration::from_secs(10), |l| l.contains(text));
        assert!(found.is_some(), "no `{text}` in: {}", self.served.log());
    }

    fn addr(&self) -> &str {
        &self.served.addr
    }

    fn tls_addr(&self) -> String {
        format!("tls://{}", self.served.addr)
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Runs `unstick ARGS...` in `cwd` to its end (bounded by the CLI's own timeouts).
fn unstick(args: &[&str], cwd: &Path) -> Output {
    let child = unstick_command(args, Some(cwd)).spawn().expect("spawn");
    shell_common::wait_bounded(child)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed ({}): {}{}",
        out.status,
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

#[track_caller]
fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "succeeded where it should fail: {}",
        stdout(out)
    );
    stderr(out)
}

/// `ftp ARGS... --addr ADDR EXTRA...`.
fn ftp(args: &[&str], addr: &str, extra: &[&str], cwd: &Path) -> Output {
    let mut all = vec!["ftp"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--addr", addr]);
    all.extend_from_slice(extra);
    unstick(&all, cwd)
}

/// `shell connect ADDR -c COMMAND EXTRA...`.
fn shell(addr: &str, command: &str, extra: &[&str], cwd: &Path) -> Output {
    let mut all = vec!["shell", "connect", addr, "-c", command];
    all.extend_from_slice(extra);
    unstick(&all, cwd)
}

#[test]
fn both_tools_work_over_tls_trusting_the_server_on_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let state = cwd.join("state");
    let known = cwd.join("known_hosts");
    let kh = ["--known-hosts", path(&known)];
    let shell_server = TlsServed::start(&[
        "shell",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls",
        "--state-dir",
        path(&state),
        "--token",
        "sesame",
    ]);
    // The generated key is this user's alone.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&state.join("tls-key.pem")), 0o600);
    }
    let addr = shell_server.tls_addr();
    let with_token = [kh[0], kh[1], "--token", "sesame"];

    // First contact: trusted, recorded with the fingerprint the server printed, and said so.
    let out = shell(&addr, "echo out; echo err >&2; exit 3", &with_token, cwd);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "out\n");
    assert!(stderr(&out).contains("err\n"), "{}", stderr(&out));
    assert!(stderr(&out).contains("first contact"), "{}", stderr(&out));
    let recorded = fs::read_to_string(&known).unwrap();
    assert_eq!(
        recorded,
        format!("{} {}\n", shell_server.addr(), shell_server.fingerprint)
    );
    // Known now: no notice, same answer.
    let out = shell(&addr, "echo again", &with_token, cwd);
    assert_eq!(ok(&out), "again\n");
    assert!(!stderr(&out).contains("first contact"), "{}", stderr(&out));
    // The token is still enforced inside TLS.
    let out = shell(&addr, "echo nope", &[kh[0], kh[1], "--token", "wrong"], cwd);
    assert!(failed(&out).contains("unauthorized"), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    // Lines on stdin, one connection, several commands.
    let mut child = unstick_command(&["shell", "connect", &addr, kh[0], kh[1]], Some(cwd))
        .env("UNSTICK_TOKEN", "sesame")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo one\necho two\n")
        .unwrap();
    let out = shell_common::wait_bounded(child);
    assert!(
        stdout(&out).contains("one\n") && stdout(&out).contains("two\n"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    // The file server in the same state directory serves the same certificate.
    let root = cwd.join("root");
    let files = TlsServed::start(&[
        "ftp",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--root",
        path(&root),
        "--tls",
        "--state-dir",
        path(&state),
    ]);
    assert_eq!(files.fingerprint, shell_server.fingerprint);
    let addr = files.tls_addr();
    let data = shell_common::pseudo_random(3 << 20, 7);
    fs::write(cwd.join("big.bin"), &data).unwrap();
    fs::write(cwd.join("empty.bin"), b"").unwrap();
    ok(&ftp(&["put", "big.bin"], &addr, &kh, cwd));
    ok(&ftp(&["put", "empty.bin"], &addr, &kh, cwd));
    assert_eq!(fs::read(root.join("big.bin")).unwrap(), data);
    ok(&ftp(&["get", "big.bin", "back.bin"], &addr, &kh, cwd));
    assert!(fs::read(cwd.join("back.bin")).unwrap() == data);
    let listing = ok(&ftp(&["ls"], &addr, &kh, cwd));
    assert!(
        listing.contains("big.bin") && listing.contains("3145728"),
        "{listing}"
    );
    let stat = ok(&ftp(&["stat", "empty.bin"], &addr, &kh, cwd));
    assert!(stat.contains("0 bytes"), "{stat}");
    ok(&ftp(&["delete", "empty.bin"], &addr, &kh, cwd));
    assert!(!root.join("empty.bin").exists());

    // An upload torn mid-body over TLS is kept, and `put --resume` finishes it.
    let torn = shell_common::pseudo_random(2 << 20, 9);
    fs::write(cwd.join("torn.bin"), &torn).unwrap();
    {
        let socket = TcpStream::connect(files.addr()).unwrap();
        let trust = ClientTls {
            pin: Some(files.fingerprint),
            ..ClientTls::default()
        };
        let mut tls = trust.connect(files.addr(), socket).expect("handshake");
        let header = format!(
            r#"{{"op":"put","path":"torn.bin","total_size":{}}}"#,
            torn.len()
        );
        tls.write_all(&(header.len() as i32).to_le_bytes()).unwrap();
        tls.write_all(header.as_bytes()).unwrap();
        tls.write_all(&torn[..1 << 20]).unwrap();
        tls.flush().unwrap();
        // Dropped without a close_notify: the connection breaks off mid-body.
    }
    let kept = shell_common::eventually(Duration::from_secs(10), || {
        let out = ftp(&["stat", "torn.bin"], &addr, &kh, cwd);
        (stdout(&out) + &stderr(&out)).contains("interrupted upload of 1048576 bytes")
            && partial_is_idle(&root, "torn.bin")
    });
    assert!(kept, "the torn upload was not kept");
    let out = ftp(&["put", "--resume", "torn.bin"], &addr, &kh, cwd);
    ok(&out);
    assert!(
        stderr(&out).contains("resumed at byte 1048576"),
        "{}",
        stderr(&out)
    );
    assert!(fs::read(root.join("torn.bin")).unwrap() == torn);
}

#[test]
fn a_changed_key_is_refused_naming_the_file_and_line_and_nothing_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let server = TlsServed::shell(&cwd.join("state"), &[]);
    let known = cwd.join("known_hosts");
    let other = Fingerprint::of(b"another server's certificate");
    fs::write(&known, format!("# servers\n{} {other}\n", server.addr())).unwrap();
    let marker = cwd.join("ran");
    let out = shell(
        &server.tls_addr(),
        &format!("touch {}", path(&marker)),
        &["--known-hosts", path(&known)],
        cwd,
    );
    let message = failed(&out);
    assert_eq!(out.status.code(), Some(255));
    assert!(message.contains("KEY HAS CHANGED"), "{message}");
    assert!(
        message.contains(&format!("line 2 of {}", known.display())),
        "{message}"
    );
    assert!(
        message.contains(&server.fingerprint.to_string()) && message.contains(&other.to_string()),
        "{message}"
    );
    assert!(!marker.exists(), "the command ran despite the changed key");
    // The file is left as it was, and the server saw the client's refusal.
    assert!(
        fs::read_to_string(&known)
            .unwrap()
            .contains(&other.to_string())
    );
    server.assert_logged("TLS handshake failed");
}

#[test]
fn a_pinned_fingerprint_is_all_that_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let root = cwd.join("root");
    let server = TlsServed::ftp(&root, &cwd.join("state"));
    let known = cwd.join("known_hosts");
    let pin = server.fingerprint.to_string();
    let extra = ["--fingerprint", &pin, "--known-hosts", path(&known)];
    ok(&ftp(&["ls"], &server.tls_addr(), &extra, cwd));
    // A pin consults and records nothing.
    assert!(!known.exists());
    // openssl's form (colons, no prefix) is accepted too.
    let colons: Vec<&str> = (7..pin.len()).step_by(2).map(|i| &pin[i..i + 2]).collect();
    let colons = colons.join(":");
    ok(&ftp(
        &["ls"],
        &server.tls_addr(),
        &["--fingerprint", &colons],
        cwd,
    ));
    let wrong = Fingerprint::of(b"not it").to_string();
    let message = failed(&ftp(
        &["ls"],
        &server.tls_addr(),
        &["--fingerprint", &wrong],
        cwd,
    ));
    assert!(message.contains("not the pinned"), "{message}");
    let message = failed(&ftp(
        &["ls"],
        &server.tls_addr(),
        &["--fingerprint", "SHA256:12ab"],
        cwd,
    ));
    assert!(message.contains("64 hex digits"), "{message}");
}

/// A certificate authority for tests.
struct Authority {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Authority {
    fn new(name: &str) -> Authority {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        Authority {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes the CA's certificate to `dir/NAME.pem`.
    fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let file = dir.join(format!("{name}.pem"));
        fs::write(&file, &self.pem).unwrap();
        file
    }

    /// Issues a certificate for `names` (a server's with `server`, else a client's), valid
    /// until `not_after` (year), into `dir/NAME-cert.pem` and `dir/NAME-key.pem`.
    fn issue(
        &self,
        dir: &Path,
        name: &str,
        names: &[&str],
        server: bool,
        not_after: i32,
    ) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(not_after, 1, 1);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let cert_file = dir.join(format!("{name}-cert.pem"));
        let key_file = dir.join(format!("{name}-key.pem"));
        fs::write(&cert_file, cert.pem()).unwrap();
        fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }
}

/// A shell server serving `cert`/`key`, with more `args`.
fn shell_with_cert(cert: &Path, key: &Path, args: &[&str]) -> TlsServed {
    let mut all = vec![
        "shell",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls",
        "--cert",
        path(cert),
        "--key",
        path(key),
    ];
    all.extend_from_slice(args);
    TlsServed::start(&all)
}

#[test]
fn ca_issued_certificates_are_checked_for_authority_name_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let ca = Authority::new("unstick test CA");
    let ca_file = ca.write(cwd, "ca");
    let stranger_file = Authority::new("another CA").write(cwd, "stranger");

    let (cert, key) = ca.issue(cwd, "server", &["localhost"], true, 4000);
    let server = shell_with_cert(&cert, &key, &[]);
    let by_name = format!("tls://localhost:{}", server.served.port());
    let ca_arg = ["--ca", path(&ca_file)];
    assert_eq!(
        ok(&shell(&by_name, "echo by name", &ca_arg, cwd)),
        "by name\n"
    );
    // The certificate names localhost, not 127.0.0.1.
    let message = failed(&shell(&server.tls_addr(), "echo by address", &ca_arg, cwd));
    assert!(
        message.contains("not valid") && message.contains("NotValidForName"),
        "{message}"
    );
    // Another CA vouches for nothing here.
    let message = failed(&shell(
        &by_name,
        "echo other ca",
        &["--ca", path(&stranger_file)],
        cwd,
    ));
    assert!(message.contains("not valid"), "{message}");
    // A CA and a pin together: both must hold.
    let pin = server.fingerprint.to_string();
    let both = ["--ca", path(&ca_file), "--fingerprint", &pin];
    assert_eq!(ok(&shell(&by_name, "echo both", &both, cwd)), "both\n");
    let wrong = Fingerprint::of(b"x").to_string();
    let both = ["--ca", path(&ca_file), "--fingerprint", &wrong];
    assert!(failed(&shell(&by_name, "echo both", &both, cwd)).contains("not the pinned"));

    // Expired.
    let (old_cert, old_key) = ca.issue(cwd, "old", &["localhost"], true, 2001);
    let expired = shell_with_cert(&old_cert, &old_key, &[]);
    let by_name = format!("tls://localhost:{}", expired.served.port());
    let message = failed(&shell(&by_name, "echo expired", &ca_arg, cwd));
    assert!(message.contains("Expired"), "{message}");
}

#[test]
fn client_certificates_are_required_when_the_server_names_a_client_ca() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let ca = Authority::new("unstick clients");
    let ca_file = ca.write(cwd, "clients");
    let (client_cert, client_key) = ca.issue(cwd, "alice", &[], false, 4000);
    let (stray_cert, stray_key) =
        Authority::new("elsewhere").issue(cwd, "mallory", &[], false, 4000);
    let server = TlsServed::shell(&cwd.join("state"), &["--client-ca", path(&ca_file)]);
    let pin = server.fingerprint.to_string();
    let addr = server.tls_addr();
    let message = failed(&shell(
        &addr,
        "echo anonymous",
        &["--fingerprint", &pin],
        cwd,
    ));
    assert!(message.contains("client certificate"), "{message}");
    let alice = [
        "--fingerprint",
        &pin,
        "--cert",
        path(&client_cert),
        "--key",
        path(&client_key),
    ];
    assert_eq!(ok(&shell(&addr, "echo alice", &alice, cwd)), "alice\n");
    let mallory = [
        "--fingerprint",
        &pin,
        "--cert",
        path(&stray_cert),
        "--key",
        path(&stray_key),
    ];
    let out = shell(&addr, "echo mallory", &mallory, cwd);
    failed(&out);
    assert_eq!(stdout(&out), "");
    server.assert_logged("TLS handshake failed");
}

#[test]
fn plaintext_and_tls_clients_on_the_wrong_port_are_told_the_fix_on_both_ends() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let root = cwd.join("root");
    let tls_server = TlsServed::ftp(&root, &cwd.join("state"));
    let message = failed(&ftp(&["ls"], tls_server.addr(), &[], cwd));
    assert!(
        message.contains("speaks TLS") && message.contains("tls://"),
        "{message}"
    );
    assert_eq!(message.trim().lines().count(), 1, "{message}");
    tls_server.assert_logged("plaintext client on a TLS port");

    let plain = Served::shell(&[]);
    let message = failed(&shell(
        &format!("tls://{}", plain.addr),
        "echo x",
        &["--known-hosts", path(&cwd.join("kh"))],
        cwd,
    ));
    assert!(
        message.contains("does not speak TLS") && message.contains("without tls://"),
        "{message}"
    );
    assert_eq!(message.trim().lines().count(), 1, "{message}");
    assert!(
        plain
            .wait_log_line(Duration::from_secs(10), |l| l.contains(
                "opened with TLS, not the shell protocol: start the server with --tls"
            ))
            .is_some(),
        "{}",
        plain.log()
    );
    assert!(!cwd.join("kh").exists(), "a plaintext server was recorded");
}

/// A token no check finds easy to guess.
const STRONG_TOKEN: &str = "5f0c1e9a7b3d2e48a6c1f07b9d3e5a21";

#[test]
fn a_non_loopback_listen_needs_tls_and_a_token_unless_plaintext_is_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let state = cwd.join("state");
    // TEST-NET-1: never an address of this machine, so nothing listens beyond loopback; a
    // start that passes the rule fails to bind instead.
    let far = "192.0.2.1:0";
    let root = cwd.join("root");
    for server in [
        vec!["shell", "serve", "--listen", far],
        vec!["ftp", "serve", "--listen", far, "--root", path(&root)],
    ] {
        let run = |extra: &[&str]| {
            let mut args = server.clone();
            args.extend_from_slice(extra);
            let out = unstick(&args, cwd);
            assert!(!out.status.success());
            stderr(&out)
        };
        let message = run(&["--token", STRONG_TOKEN]);
        assert!(
            message.contains("in plaintext") && message.contains("--tls"),
            "{message}"
        );
        let message = run(&["--tls", "--state-dir", path(&state)]);
        assert!(message.contains("without a token"), "{message}");
        for allowed in [
            vec!["--token", STRONG_TOKEN, "--insecure-plaintext"],
            vec![
                "--token",
                STRONG_TOKEN,
                "--tls",
                "--state-dir",
                path(&state),
            ],
        ] {
            let message = run(&allowed);
            assert!(
                !message.contains("refusing") && message.contains("cannot listen"),
                "{message}"
            );
        }
    }
}

#[test]
fn a_non_loopback_listen_refuses_a_token_easy_to_guess_and_says_how_to_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let state = cwd.join("state");
    let root = cwd.join("root");
    // TEST-NET-1, as above: a start that passes the rules fails to bind.
    let far = "192.0.2.1";
    let far_port = "192.0.2.1:0";
    let made = unstick(&["token"], cwd);
    assert!(made.status.success(), "{}", stderr(&made));
    let made = stdout(&made).trim().to_owned();
    assert_eq!(made.len(), 64, "{made}");
    for server in [
        vec!["shell", "serve", "--listen", far_port],
        vec!["ftp", "serve", "--listen", far_port, "--root", path(&root)],
        vec![
            "serve",
            "--listen",
            far,
            "--shell-port",
            "0",
            "--ftp-port",
            "0",
        ],
    ] {
        let run = |extra: &[&str]| {
            let mut args = server.clone();
            args.extend_from_slice(extra);
            let out = unstick(&args, cwd);
            assert!(!out.status.success());
            assert!(stdout(&out).is_empty(), "it printed an address");
            stderr(&out)
        };
        // Whatever the transport, and before plaintext is judged.
        for weak in ["a", "aaaaaaaaaaaaaaaaaaaaaaaa", "0123456789abcdef"] {
            for transport in [
                vec![],
                vec!["--insecure-plaintext"],
                vec!["--tls", "--state-dir", path(&state)],
            ] {
                let mut extra = vec!["--token", weak];
                extra.extend_from_slice(&transport);
                let message = run(&extra);
                assert!(
                    message.contains("easy to guess")
                        && message.contains("unstick token")
                        && message.contains("openssl rand -hex 32"),
                    "{server:?} {extra:?}: {message}"
                );
            }
        }
        // The token `unstick token` made is taken.
        let message = run(&["--token", &made, "--insecure-plaintext"]);
        assert!(
            !message.contains("refusing") && message.contains("cannot listen"),
            "{message}"
        );
    }
}

#[test]
fn openssl_s_client_shows_the_certificate_whose_fingerprint_the_server_printed() {
    if Command::new("openssl").arg("version").output().is_err() {
        println!("skipped: `openssl` is not installed (.ci/run installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = TlsServed::start(&[
        "shell",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls",
        "--state-dir",
        path(&dir.path().join("state")),
    ]);
    let s_client = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            server.addr(),
            "-servername",
            "localhost",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = shell_common::wait_bounded(s_client);
    let text = stdout(&out);
    let begin = text
        .find("-----BEGIN CERTIFICATE-----")
        .unwrap_or_else(|| panic!("no certificate shown: {text}{}", stderr(&out)));
    let end = text.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
    let pem = format!("{}\n", &text[begin..end]);
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    x509.stdin
        .take()
        .unwrap()
        .write_all(pem.as_bytes())
        .unwrap();
    let shown = shell_common::wait_bounded(x509);
    let shown = stdout(&shown);
    let hex = shown
        .trim()
        .split_once('=')
        .unwrap_or_else(|| panic!("{shown}"))
        .1;
    assert_eq!(
        hex.parse::<Fingerprint>().unwrap(),
        server.fingerprint,
        "{shown}"
    );
    // The handshake completed with a TLS 1.3 suite.
    assert!(text.contains("TLSv1.3"), "{text}");
}

#[test]
fn a_flood_of_silent_connections_does_not_lock_a_client_out() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let server = TlsServed::shell(
        &cwd.join("state"),
        &["--max-waiting", "16", "--max-waiting-per-address", "8"],
    );
    // Three times the handshakes the server holds, from this address, none saying a word.
    let silent: Vec<TcpStream> = (0..48)
        .map(|_| TcpStream::connect(server.addr()).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let pin = server.fingerprint.to_string();
    let out = shell(&server.tls_addr(), "echo in", &["--fingerprint", &pin], cwd);
    assert_eq!(ok(&out), "in\n");
    server.assert_logged("evicted: the TLS handshake waiting longest");
    drop(silent);
}

#[test]
fn http_on_a_tls_port_gets_a_readable_400() {
    let dir = tempfile::tempdir().unwrap();
    let server = TlsServed::shell(&dir.path().join("state"), &[]);
    let mut raw = TcpStream::connect(server.addr()).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut reply = String::new();
    let _ = std::io::Read::read_to_string(&mut raw, &mut reply);
    assert!(reply.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{reply}");
    server.assert_logged("an HTTP client on a TLS port");
}

#[test]
fn a_client_that_stops_reading_is_let_go_of() {
    let dir = tempfile::tempdir().unwrap();
    let server = TlsServed::shell(&dir.path().join("state"), &["--idle-timeout", "1s"]);
    let trust = ClientTls {
        pin: Some(server.fingerprint),
        ..ClientTls::default()
    };
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let socket = TcpStream::connect(server.addr()).unwrap();
        let mut tls = trust.connect(server.addr(), socket).expect("handshake");
        tls.write_all(&shell_common::exec_frame("head -c 50000000 /dev/zero"))
            .unwrap();
        tls.flush().unwrap();
        // Never read.
        stalled.push(tls);
    }
    // Each request's writes give up after the idle timeout: its command is ended and its slot
    // freed, though the clients are still connected.
    let ended = shell_common::eventually(Duration::from_secs(20), || {
        server
            .served
            .log()
            .lines()
            .filter(|l| l.contains("head -c 50000000"))
            .count()
            >= 4
    });
    assert!(ended, "{}", server.served.log());
    let pin = server.fingerprint.to_string();
    let cwd = dir.path();
    let out = shell(&server.tls_addr(), "echo in", &["--fingerprint", &pin], cwd);
    assert_eq!(ok(&out), "in\n");
    drop(stalled);
}

#[test]
fn a_stopping_server_passes_on_the_last_replies_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let server = TlsServed::shell(&cwd.join("state"), &[]);
    let pin = server.fingerprint.to_string();
    let client = unstick_command(
        &[
            "shell",
            "connect",
            &server.tls_addr(),
            "--fingerprint",
            &pin,
            "-c",
            "sleep 1; head -c 6000000 /dev/zero | tr '\\0' x; echo END",
        ],
        Some(cwd),
    )
    .spawn()
    .unwrap();
    server
        .served
        .wait_log_line(Duration::from_secs(10), |l| l.contains("connection opened"))
        .expect("the client connected");
    std::thread::sleep(Duration::from_millis(300));
    server.served.signal(libc::SIGTERM);
    let out = shell_common::wait_bounded(client);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(text.len(), 6_000_004, "{}", stderr(&out));
    assert!(text.ends_with("xEND\n"));
}

#[test]
fn a_state_directory_or_key_others_could_touch_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let serve = |state: &Path| {
        unstick(
            &[
                "shell",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--tls",
                "--state-dir",
                path(state),
            ],
            cwd,
        )
    };
    let open = cwd.join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let message = failed(&serve(&open));
    assert!(message.contains("chmod 700"), "{message}");
    assert!(!open.join("tls-key.pem").exists());

    // A generated identity whose key was made readable to all.
    let state = cwd.join("state");
    let generated = TlsServed::shell(&state, &[]);
    drop(generated);
    let key = state.join("tls-key.pem");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let message = failed(&serve(&state));
    assert!(message.contains("chmod 600"), "{message}");
    // Half of an identity: say which file to delete.
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    fs::remove_file(state.join("tls-cert.pem")).unwrap();
    let message = failed(&serve(&state));
    assert!(
        message.contains("delete") && message.contains("tls-key.pem"),
        "{message}"
    );
}

#[test]
fn tls_options_on_a_plaintext_address_are_refused_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let plain = Served::shell(&[]);
    let marker = cwd.join("ran");
    let pin = Fingerprint::of(b"x").to_string();
    let out = shell(
        &plain.addr,
        &format!("touch {}", path(&marker)),
        &["--fingerprint", &pin],
        cwd,
    );
    let message = failed(&out);
    assert!(
        message.contains(&format!("did you mean tls://{}", plain.addr)),
        "{message}"
    );
    assert!(!marker.exists());
}

#[test]
fn a_request_trickled_inside_a_tls_record_is_cut_off_by_the_idle_timeout() {
    use std::io::Read;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let server = TlsServed::shell(
        &dir.path().join("state"),
        &["--seed-reply", "size", "--idle-timeout", "1s"],
    );
    let trust = ClientTls {
        pin: Some(server.fingerprint),
        ..ClientTls::default()
    };
    let socket = TcpStream::connect(server.addr()).unwrap();
    let mut tls = trust.connect(server.addr(), socket).expect("handshake");
    // A seed client's first read, filled whole, so the command may go on until a pause...
    let mut first = b"true".to_vec();
    first.resize(1024, b' ');
    tls.write_all(&first).unwrap();
    tls.flush().unwrap();
    // ...then one record of spaces whose bytes come one every 100 ms (under the 200 ms pause)
    // for about 12 s: each wait on the socket is short, the record long in coming.
    tls.conn.writer().write_all(&[b' '; 100]).unwrap();
    let mut record = Vec::new();
    while tls.conn.wants_write() {
        tls.conn.write_tls(&mut record).unwrap();
    }
    let trickling = Arc::new(AtomicBool::new(true));
    let trickle = std::thread::spawn({
        let socket = tls.sock.get_ref().try_clone().unwrap();
        let trickling = Arc::clone(&trickling);
        move || {
            for byte in record {
                std::thread::sleep(Duration::from_millis(100));
                if (&socket).write_all(&[byte]).is_err() {
                    break;
                }
            }
            trickling.store(false, Ordering::SeqCst);
        }
    });
    tls.sock
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut prefix = [0u8; 4];
    tls.read_exact(&mut prefix).unwrap();
    assert!(
        trickling.load(Ordering::SeqCst),
        "the command was collected for as long as the client trickled"
    );
    drop(tls);
    trickle.join().unwrap();
}

#[test]
fn requests_sent_with_the_handshakes_last_flight_are_served_in_order() {
    use std::io::Read;
    use std::net::TcpListener;
    let dir = tempfile::tempdir().unwrap();
    let server = TlsServed::shell(&dir.path().join("state"), &[]);
    // A relay that holds the client's second flight (its Finished) back until the requests
    // sent after it have come too, so that the server reads them in one piece.
    let relay = TcpListener::bind("127.0.0.1:0").unwrap();
    let relay_addr = relay.local_addr().unwrap().to_string();
    let server_addr = server.addr().to_owned();
    std::thread::spawn(move || {
        let (client, _) = relay.accept().unwrap();
        let upstream = TcpStream::connect(server_addr).unwrap();
        let (mut down_from, mut down_to) =
            (upstream.try_clone().unwrap(), client.try_clone().unwrap());
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut down_from, &mut down_to);
        });
        let (mut from, mut to) = (client, upstream);
        let mut buf = vec![0u8; 65536];
        let n = from.read(&mut buf).unwrap();
        to.write_all(&buf[..n]).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        from.set_nonblocking(true).unwrap();
        let mut held = Vec::new();
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            held.extend_from_slice(&buf[..n]);
        }
        from.set_nonblocking(false).unwrap();
        to.write_all(&held).unwrap();
        let _ = std::io::copy(&mut from, &mut to);
    });
    let trust = ClientTls {
        pin: Some(server.fingerprint),
        ..ClientTls::default()
    };
    let socket = TcpStream::connect(&relay_addr).unwrap();
    let mut tls = trust.connect(&relay_addr, socket).expect("handshake");
    let mut requests = Vec::new();
    for word in ["one", "two", "three"] {
        requests.extend_from_slice(&shell_common::exec_frame(&format!("echo {word}")));
    }
    tls.write_all(&requests).unwrap();
    tls.flush().unwrap();
    tls.sock
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut replies = Vec::new();
    let mut buf = [0u8; 4096];
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    while find(&replies, b"three\n").is_none() {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => replies.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "no replies ({e}) after: {:?}",
                String::from_utf8_lossy(&replies)
            ),
        }
    }
    let (one, two, three) = (
        find(&replies, b"one\n").expect("one"),
        find(&replies, b"two\n").expect("two"),
        find(&replies, b"three\n").expect("three"),
    );
    assert!(one < two && two < three);
}
