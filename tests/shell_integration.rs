//! `unstick completions SHELL` and `unstick man`: each generator runs and knows the real
//! subcommands and options.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_unstick");

fn stdout_of(args: &[&str]) -> String {
    let output = Command::new(BIN).args(args).output().unwrap();
    assert!(output.status.success(), "unstick {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn completions_exist_for_each_shell_and_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let script = stdout_of(&["completions", shell]);
        for word in [
            "unstick",
            "connect",
            "serve",
            "put",
            "stat",
            "addr",
            "shell-port",
        ] {
            assert!(script.contains(word), "{shell}: no `{word}`");
        }
    }
    let unknown = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
}

#[test]
fn bash_accepts_its_completion_script() {
    if Command::new("bash").arg("--version").output().is_err() {
        println!("skipped: no bash");
        return;
    }
    let script = stdout_of(&["completions", "bash"]);
    let output = Command::new("bash")
        .args(["-c", &format!("{script}\ncomplete -p unstick")])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("unstick"));
}

#[test]
fn man_pages_cover_every_command() {
    let page = stdout_of(&["man"]);
    assert!(page.contains(".TH unstick 1"), "{page}");
    for word in ["shell", "ftp", "serve", "completions", "\\-\\-config"] {
        assert!(page.contains(word), "no `{word}` in the man page");
    }
    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man1");
    stdout_of(&["man", "--dir", pages.to_str().unwrap()]);
    for name in [
        "unstick.1",
        "unstick-shell-connect.1",
        "unstick-ftp-put.1",
        "unstick-serve.1",
    ] {
        let text = std::fs::read_to_string(pages.join(name)).unwrap();
        assert!(text.contains(".SH NAME"), "{name}");
    }
    let connect = std::fs::read_to_string(pages.join("unstick-shell-connect.1")).unwrap();
    assert!(connect.contains("addr"), "{connect}");
}

/// The options bash completion offers after `unstick PATH...` (`["ftp", "delete"]`).
fn bash_options(script: &str, path: &[&str]) -> Vec<String> {
    let label = format!("unstick__subcmd__{})", path.join("__subcmd__"));
    let mut lines = script.lines().skip_while(|l| l.trim() != label);
    assert!(lines.next().is_some(), "no `{label}` in the bash script");
    let opts = lines
        .next()
        .and_then(|l| l.trim().strip_prefix("opts=\""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no opts after `{label}`"));
    opts.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn completions_offer_md5_only_where_it_is_taken() {
    let bash = stdout_of(&["completions", "bash"]);
    for command in ["put", "get"] {
        let options = bash_options(&bash, &["ftp", command]);
        assert!(
            options.iter().any(|o| o == "--md5"),
            "{command}: {options:?}"
        );
    }
    for command in ["ls", "stat", "delete", "mkdir", "mv"] {
        let options = bash_options(&bash, &["ftp", command]);
        assert!(
            options.iter().any(|o| o == "--addr"),
            "{command}: {options:?}"
        );
        assert!(
            !options.iter().any(|o| o == "--md5"),
            "{command}: {options:?}"
        );
    }
    // fish names the subcommand on every line that offers an option.
    let fish = stdout_of(&["completions", "fish"]);
    for line in fish.lines().filter(|l| l.contains("-l md5")) {
        assert!(
            line.contains("seen_subcommand_from put") || line.contains("seen_subcommand_from get"),
            "{line}"
        );
    }
    // zsh and PowerShell too: one line for each of two commands in `ftp` and its alias `files`.
    for shell in ["zsh", "powershell"] {
        let script = stdout_of(&["completions", shell]);
        let lines = script.lines().filter(|l| l.contains("--md5")).count();
        assert_eq!(lines, 4, "{shell}");
    }
    // And the commands refuse it as any unknown option.
    for command in ["ls", "stat", "rm", "mkdir", "mv"] {
        let out = Command::new(BIN)
            .args(["ftp", command, "--md5", "x"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(stderr.contains("unexpected argument '--md5'"), "{stderr}");
    }
}
