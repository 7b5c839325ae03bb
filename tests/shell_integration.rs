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
    for word in ["shell", "ftp", "serve", "completions"] {
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
    // Each command's page has its own options: a client's config file, a server's log.
    assert!(connect.contains("\\-\\-config"), "{connect}");
    let serve = std::fs::read_to_string(pages.join("unstick-serve.1")).unwrap();
    assert!(serve.contains("\\-\\-log\\-format"), "{serve}");

    // Beyond the options: what a reader of a man page looks for, as far as it concerns the
    // command.
    for section in [
        ".SH ENVIRONMENT",
        ".SH FILES",
        ".SH \"EXIT STATUS\"",
        ".SH \"CONFIGURATION FILE\"",
        ".SH EXAMPLES",
    ] {
        assert!(page.contains(section), "no {section} in unstick.1");
        assert!(
            connect.contains(section),
            "no {section} in unstick-shell-connect.1"
        );
    }
    assert!(page.contains("UNSTICK_UNKNOWN_HOSTS") && page.contains("known_hosts"));
    assert!(connect.contains("UNSTICK_SHELL_ADDR") && !connect.contains("UNSTICK_FTP_ADDR"));
    assert!(connect.contains("255"), "{connect}");
    assert!(serve.contains("128 + N") && !serve.contains("CONFIGURATION FILE"));
    let put = std::fs::read_to_string(pages.join("unstick-ftp-put.1")).unwrap();
    assert!(put.contains("unstick ftp put \\-r photos backup/"), "{put}");
    // Examples are laid out as written, not filled into a paragraph.
    assert!(put.contains(".nf"), "{put}");
    assert!(!put.contains(".SH EXTRA"), "{put}");
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

/// Every command, as its words.
const COMMANDS: &[&[&str]] = &[
    &[],
    &["shell"],
    &["shell", "serve"],
    &["shell", "connect"],
    &["ftp"],
    &["ftp", "serve"],
    &["ftp", "put"],
    &["ftp", "get"],
    &["ftp", "ls"],
    &["ftp", "stat"],
    &["ftp", "delete"],
    &["ftp", "mkdir"],
    &["ftp", "mv"],
    &["serve"],
    &["info"],
    &["completions"],
    &["man"],
    &["token"],
];

const SERVERS: &[&[&str]] = &[&["shell", "serve"], &["ftp", "serve"], &["serve"]];

const CLIENTS: &[&[&str]] = &[
    &["shell", "connect"],
    &["ftp", "put"],
    &["ftp", "get"],
    &["ftp", "ls"],
    &["ftp", "stat"],
    &["ftp", "rm"],
    &["ftp", "mkdir"],
    &["ftp", "mv"],
    &["info"],
];

fn help_of(words: &[&str], flag: &str) -> String {
    let mut args = words.to_vec();
    args.push(flag);
    stdout_of(&args)
}

#[test]
fn dash_h_is_help_everywhere() {
    for words in COMMANDS {
        let short = help_of(words, "-h");
        let usage = format!(
            "Usage: {}",
            ["unstick"]
                .iter()
                .chain(words.iter())
                .copied()
                .collect::<Vec<_>>()
                .join(" ")
        );
        assert!(short.contains(&usage), "{words:?}: {short}");
    }
    // Aliases too.
    for words in [&["ftp", "rm"][..], &["files", "ls"], &["ftp", "rename"]] {
        assert!(
            help_of(words, "-h").contains("Usage: unstick "),
            "{words:?}"
        );
    }
    // `ls` sizes in K, M, G have a spelling of their own.
    let ls = help_of(&["ftp", "ls"], "--help");
    assert!(ls.contains("--human-readable"), "{ls}");
}

#[test]
fn client_help_shows_client_options_and_server_help_server_ones() {
    for words in CLIENTS {
        let help = help_of(words, "--help");
        for server_only in ["--log-format", "--listen", "Servers:", "log only"] {
            assert!(
                !help.contains(server_only),
                "{words:?} shows {server_only}:\n{help}"
            );
        }
    }
    for words in SERVERS {
        let help = help_of(words, "--help");
        assert!(
            help.contains("--log-format") && help.contains("--quiet"),
            "{words:?}:\n{help}"
        );
        for client_only in ["--config", "Clients:", "progress bars"] {
            assert!(
                !help.contains(client_only),
                "{words:?} shows {client_only}:\n{help}"
            );
        }
    }
    // The completions agree.
    let bash = stdout_of(&["completions", "bash"]);
    for command in ["put", "get", "ls", "stat", "delete", "mkdir", "mv"] {
        let options = bash_options(&bash, &["ftp", command]);
        assert!(
            !options.iter().any(|o| o == "--log-format"),
            "{command}: {options:?}"
        );
        assert!(
            options.iter().any(|o| o == "--config"),
            "{command}: {options:?}"
        );
    }
    let options = bash_options(&bash, &["ftp", "serve"]);
    assert!(options.iter().any(|o| o == "--log-format"), "{options:?}");
    assert!(!options.iter().any(|o| o == "--config"), "{options:?}");
}
