//! What a client command connects with (issue 12): one address form in both tools, a host
//! without a port, names as well as IPs, the config file and its precedence (flag, then
//! environment, then file), and what `-q` and `-v` show.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_unstick");

/// A server (`unstick shell serve` or `unstick ftp serve`) on a free loopback port, with a
/// token; killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(tool: &str, dir: &Path) -> Server {
        let mut command = Command::new(BIN);
        command
            .args([
                tool,
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--token",
                "sesame",
            ])
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if tool == "ftp" {
            command.arg("--root").arg(dir.join("root"));
        }
        let mut child = command.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().rsplit(':').next().unwrap().parse().unwrap();
        Server { child, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `unstick ARGS...` in `dir`, with no address, token or config file from the environment but
/// `env`.
fn unstick(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .current_dir(dir)
        .env_remove("UNSTICK_TOKEN")
        .env_remove("UNSTICK_SHELL_ADDR")
        .env_remove("UNSTICK_FTP_ADDR")
        .env_remove("UNSTICK_CONFIG")
        // The default config file is then one that does not exist (on Linux).
        .env("XDG_CONFIG_HOME", dir.join("xdg"))
        .stdin(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn both_tools_take_addr_and_names_and_the_shell_its_positional() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "").unwrap();
    let config = config.to_str().unwrap();
    let shell = Server::start("shell", dir.path());
    let by_name = format!("localhost:{}", shell.port);
    for form in [
        vec!["shell", "connect", "--addr", &by_name],
        vec!["shell", "connect", &by_name],
    ] {
        let mut args = vec!["--config", config];
        args.extend(form);
        args.extend(["--token", "sesame", "-c", "echo reached"]);
        let output = unstick(dir.path(), &args, &[]);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        assert_eq!(String::from_utf8_lossy(&output.stdout), "reached\n");
    }
    let both = unstick(
        dir.path(),
        &[
            "shell", "connect", &by_name, "--addr", &by_name, "-c", "true",
        ],
        &[],
    );
    assert!(!both.status.success());
    // A bad address names its bad part; exit 255 as for any connection failure.
    let bad = unstick(
        dir.path(),
        &[
            "--config",
            config,
            "shell",
            "connect",
            "127.0.0.1:80x",
            "-c",
            "true",
        ],
        &[],
    );
    assert_eq!(bad.status.code(), Some(255));
    assert!(stderr(&bad).contains("port `80x`"), "{}", stderr(&bad));
    let unresolved = unstick(
        dir.path(),
        &[
            "--config",
            config,
            "ftp",
            "ls",
            "--addr",
            "no-such-host.invalid",
        ],
        &[],
    );
    assert!(
        stderr(&unresolved).contains("cannot resolve the host of no-such-host.invalid:8090"),
        "{}",
        stderr(&unresolved)
    );
}

#[test]
fn the_config_file_gives_defaults_that_the_environment_and_flags_override() {
    let dir = tempfile::tempdir().unwrap();
    let ftp = Server::start("ftp", dir.path());
    let config = dir.path().join("config.toml");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "sesame\n").unwrap();
    std::fs::write(
        &config,
        format!(
            "# client defaults\n[ftp]\naddr = \"localhost:{}\"\ntoken_file = \"token\"\n",
            ftp.port
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let config = config.to_str().unwrap();
    std::fs::write(dir.path().join("f.txt"), b"x").unwrap();
    // From the file: address and token.
    let put = unstick(
        dir.path(),
        &["--config", config, "ftp", "put", "f.txt"],
        &[],
    );
    assert!(put.status.success(), "{}", stderr(&put));
    assert!(
        stderr(&put).contains("stored f.txt (1 byte,"),
        "{}",
        stderr(&put)
    );
    // $UNSTICK_CONFIG names it too.
    let ls = unstick(dir.path(), &["ftp", "ls"], &[("UNSTICK_CONFIG", config)]);
    assert!(ls.status.success(), "{}", stderr(&ls));
    // The environment wins over the file, and the flag over both.
    let env = [
        ("UNSTICK_FTP_ADDR", "127.0.0.1:1"),
        ("UNSTICK_CONFIG", config),
    ];
    let from_env = unstick(dir.path(), &["ftp", "ls"], &env);
    assert!(!from_env.status.success());
    assert!(
        stderr(&from_env).contains("127.0.0.1:1"),
        "{}",
        stderr(&from_env)
    );
    let flag = format!("127.0.0.1:{}", ftp.port);
    let from_flag = unstick(dir.path(), &["ftp", "ls", "--addr", &flag], &env);
    assert!(from_flag.status.success(), "{}", stderr(&from_flag));
    let wrong_token = unstick(
        dir.path(),
        &["ftp", "ls"],
        &[("UNSTICK_TOKEN", "wrong"), ("UNSTICK_CONFIG", config)],
    );
    assert!(!wrong_token.status.success());
}

#[test]
fn a_bad_config_file_is_refused_with_its_line_and_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[ftp]\naddress = \"h\"\n").unwrap();
    let output = unstick(
        dir.path(),
        &["--config", config.to_str().unwrap(), "ftp", "ls"],
        &[],
    );
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("config.toml, line 2") && message.contains("did you mean `addr`"),
        "{message}"
    );
    let named = dir.path().join("no-such-config.toml");
    let missing = unstick(
        dir.path(),
        &["ftp", "ls"],
        &[("UNSTICK_CONFIG", named.to_str().unwrap())],
    );
    assert!(
        stderr(&missing).contains("no-such-config.toml"),
        "{}",
        stderr(&missing)
    );
}

#[cfg(unix)]
#[test]
fn a_token_in_a_file_others_can_read_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ftp = Server::start("ftp", dir.path());
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "token = \"sesame\"\nftp.addr = \"127.0.0.1:{}\"\n",
            ftp.port
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = config.to_str().unwrap();
    let output = unstick(dir.path(), &["--config", config, "ftp", "ls"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("chmod 600"), "{}", stderr(&output));
    std::fs::set_permissions(config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let output = unstick(dir.path(), &["--config", config, "ftp", "ls"], &[]);
    assert_eq!(stderr(&output), "");
}

#[test]
fn quiet_says_nothing_and_verbose_says_where_it_connected() {
    let dir = tempfile::tempdir().unwrap();
    let ftp = Server::start("ftp", dir.path());
    let addr = format!("localhost:{}", ftp.port);
    std::fs::write(dir.path().join("f.txt"), b"data").unwrap();
    let token = [("UNSTICK_TOKEN", "sesame")];
    let quiet = unstick(
        dir.path(),
        &["-q", "ftp", "put", "f.txt", "--addr", &addr],
        &token,
    );
    assert!(quiet.status.success());
    assert_eq!(stderr(&quiet), "");
    // After the command, as its help shows it (before it, the old place, works too).
    let verbose = unstick(
        dir.path(),
        &["ftp", "put", "f.txt", "-v", "--addr", &addr],
        &token,
    );
    assert!(verbose.status.success());
    let said = stderr(&verbose);
    for expected in [
        "server localhost:",
        "(from the command line)",
        "token from $UNSTICK_TOKEN",
        "connected to ",
        "stored f.txt",
        "finished in ",
    ] {
        assert!(said.contains(expected), "no `{expected}` in:\n{said}");
    }
    assert!(!said.contains("sesame"), "the token was shown:\n{said}");
}
