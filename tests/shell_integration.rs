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
