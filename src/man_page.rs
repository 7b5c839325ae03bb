//! The manual pages: clap_mangen's pages (name, synopsis, description, options, subcommands),
//! with the sections it does not know of added to each page, as far as they concern its
//! command: ENVIRONMENT, FILES, EXIT STATUS, CONFIGURATION FILE, EXAMPLES (a command's own
//! examples, from its help, laid out as written) and SEE ALSO.

use std::io;

use clap::Command;
use roff::{Roff, bold, italic, roman};

/// The kinds of command a section's entry concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// `shell connect`.
    ShellClient,
    /// The `ftp` client commands.
    FtpClient,
    /// `info`.
    Info,
    /// `shell serve`, `ftp serve`, `serve`.
    Server,
    /// `known-hosts`.
    KnownHosts,
}

use Scope::*;

/// What a page (`unstick-ftp-put`, say) is about: the scopes of its command and of those
/// below it.
fn scopes_of(page: &str) -> &'static [Scope] {
    let path: Vec<&str> = page.split('-').skip(1).collect();
    match path.as_slice() {
        [] => &[ShellClient, FtpClient, Info, Server, KnownHosts],
        ["shell"] => &[ShellClient, Server],
        ["shell", "connect", ..] => &[ShellClient],
        ["shell", ..] | ["serve", ..] => &[Server],
        ["ftp"] | ["files"] => &[FtpClient, Server],
        ["ftp", "serve", ..] | ["files", "serve", ..] => &[Server],
        ["ftp", ..] | ["files", ..] => &[FtpClient],
        ["info", ..] => &[Info],
        ["known", "hosts", ..] => &[KnownHosts],
        _ => &[],
    }
}

/// A term and what it means, for the commands of `scopes` (empty: every command).
struct Entry {
    term: &'static str,
    text: &'static str,
    scopes: &'static [Scope],
}

const ENVIRONMENT: &[Entry] = &[
    Entry {
        term: "UNSTICK_TOKEN",
        text: "The shared secret, when --token is not given: clients send it with every request, \
               servers require it (and remove it from the environment of the commands they run). \
               Preferred to --token, which every local user can read with ps.",
        scopes: &[ShellClient, FtpClient, Server],
    },
    Entry {
        term: "UNSTICK_SHELL_ADDR",
        text: "The shell server's address when none is given (before the config file's).",
        scopes: &[ShellClient],
    },
    Entry {
        term: "UNSTICK_FTP_ADDR",
        text: "The file server's address when --addr is not given (before the config file's).",
        scopes: &[FtpClient],
    },
    Entry {
        term: "UNSTICK_CONFIG",
        text: "The config file to read when --config is not given; it must exist.",
        scopes: &[ShellClient, FtpClient, Info],
    },
    Entry {
        term: "UNSTICK_UNKNOWN_HOSTS",
        text: "ask, accept or refuse: what a client does with a TLS server it meets for the \
               first time, when --unknown-hosts is not given (before the config file's \
               unknown_hosts).",
        scopes: &[ShellClient, FtpClient, Info],
    },
    Entry {
        term: "XDG_CONFIG_HOME",
        text: "Where the config file and the known-hosts file are (default ~/.config; \
               ~/Library/Application Support on macOS, %APPDATA% on Windows).",
        scopes: &[ShellClient, FtpClient, Info, KnownHosts],
    },
    Entry {
        term: "XDG_STATE_HOME",
        text: "Where the interactive shell's history is (default ~/.local/state).",
        scopes: &[ShellClient],
    },
    Entry {
        term: "XDG_DATA_HOME",
        text: "Where a TLS server keeps the key and certificate it generated (default \
               ~/.local/share), unless --state-dir is given.",
        scopes: &[Server],
    },
    Entry {
        term: "TMPDIR",
        text: "Where put - spools standard input before sending it.",
        scopes: &[FtpClient],
    },
    Entry {
        term: "COMSPEC",
        text: "On Windows, the shell commands run in (cmd.exe) unless --shell names another.",
        scopes: &[Server],
    },
];

const FILES: &[Entry] = &[
    Entry {
        term: "~/.config/unstick/config.toml",
        text: "Client defaults: server addresses, the token or the file holding it, and \
               unknown_hosts (see CONFIGURATION FILE).",
        scopes: &[ShellClient, FtpClient, Info],
    },
    Entry {
        term: "~/.config/unstick/known_hosts",
        text: "The TLS servers trusted, one ADDRESS SHA256:... line each (--known-hosts for \
               another file); unstick known-hosts lists and removes them.",
        scopes: &[ShellClient, FtpClient, Info, KnownHosts],
    },
    Entry {
        term: "~/.local/state/unstick/shell_history",
        text: "The interactive shell's history, 1,000 commands, mode 0600.",
        scopes: &[ShellClient],
    },
    Entry {
        term: "~/.local/share/unstick/tls-cert.pem, tls-key.pem",
        text: "A TLS server's generated certificate and key (--state-dir for another \
               directory; it must be the user's own, the key mode 0600).",
        scopes: &[Server],
    },
    Entry {
        term: "ROOT/.../.unstick-partial-NAME",
        text: "An interrupted upload of NAME, held for put --resume (listed as a partial \
               upload, not as a file; removed after --partial-max-age).",
        scopes: &[Server, FtpClient],
    },
    Entry {
        term: ".NAME.unstick-part",
        text: "A download in progress, next to where NAME will be; renamed into place once \
               verified, continued by get --resume.",
        scopes: &[FtpClient],
    },
];

const EXIT_STATUS: &[Entry] = &[
    Entry {
        term: "0",
        text: "Success (a server: stopped gracefully by a signal).",
        scopes: &[],
    },
    Entry {
        term: "1",
        text: "Failure, said on standard error in one line; for a command given several files, \
               at least one of them failed.",
        scopes: &[],
    },
    Entry {
        term: "2",
        text: "The command line is not valid.",
        scopes: &[],
    },
    Entry {
        term: "141",
        text: "Standard output was closed under the command (as head closes it), quietly, as a \
               shell reports SIGPIPE.",
        scopes: &[],
    },
    Entry {
        term: "the command's status",
        text: "shell connect -c exits with the remote command's exit code, or 128 + the signal \
               that ended it; an interactive session with the last command's, or exit N's.",
        scopes: &[ShellClient],
    },
    Entry {
        term: "255",
        text: "shell connect could not connect, or the server refused the request (the token, \
               a limit, a server that is not a shell server).",
        scopes: &[ShellClient],
    },
    Entry {
        term: "130, 143",
        text: "Interrupted by Ctrl-C (SIGINT) or SIGTERM; a put or get says how --resume \
               continues it.",
        scopes: &[ShellClient, FtpClient],
    },
    Entry {
        term: "128 + N",
        text: "A server stopped at once by a second signal N.",
        scopes: &[Server],
    },
];

/// The config file's format, as the README gives it.
const CONFIGURATION: &[&str] = &[
    "--config FILE, else $UNSTICK_CONFIG, else unstick/config.toml under the user's config \
     directory; the default file may be missing. TOML: key = \"string\" lines, # comments, and \
     the sections [shell] and [ftp] (or dotted keys, ftp.addr = \"...\"). The keys are addr, \
     token and token_file; one outside a section is for both tools, a section's wins for its \
     tool, and at one level token comes before token_file. A token_file path is relative to \
     the config file's directory (~/ is the home directory); its first line is the token. \
     unknown_hosts (ask, accept or refuse) is a top-level key only. A flag wins over the \
     environment, which wins over the file. Unknown keys and sections are refused, naming the \
     line and the closest known name. Servers do not read it.",
];

const CONFIGURATION_EXAMPLE: &str = "token_file = \"~/.config/unstick/token\"
unknown_hosts = \"refuse\"

[shell]
addr = \"build-box\"

[ftp]
addr = \"tls://files.example.org\"";

/// The main page's examples.
const MAIN_EXAMPLES: &str = "unstick serve
unstick shell connect -c 'uname -a'
unstick shell connect build-box
unstick ftp put -p -r photos backup/
unstick ftp get 'logs/*.txt' downloads/
unstick info 127.0.0.1:8090
unstick known-hosts remove build-box:8080";

/// The examples of the pages whose commands have none in their help.
const PAGE_EXAMPLES: &[(&str, &str)] = &[
    (
        "unstick-shell-connect",
        "unstick shell connect -c 'ls -l; echo done >&2'
unstick shell connect build-box
printf 'uname -a\nuptime\n' | unstick shell connect
unstick shell connect tls://build-box:8080 -c make
unstick shell connect serial:/dev/ttyACM0@115200 -c uptime",
    ),
    (
        "unstick-shell-serve",
        "unstick shell serve
UNSTICK_TOKEN=$(unstick token) unstick shell serve --listen 0.0.0.0 --tls
unstick shell serve --seed-reply json --seed-encoding gbk",
    ),
    (
        "unstick-ftp-serve",
        "unstick ftp serve --root /srv/drop
unstick ftp serve --listen 127.0.0.1:0 --max-file-size 10G --max-connections 32",
    ),
    (
        "unstick-serve",
        "unstick serve
UNSTICK_TOKEN=$(unstick token) unstick serve --listen 0.0.0.0 --tls",
    ),
    (
        "unstick-ftp-ls",
        "unstick ftp ls 2026
unstick ftp ls -l --human-readable 2026",
    ),
    (
        "unstick-ftp-delete",
        "unstick ftp rm 2026/q3.pdf
unstick ftp rm -r 2026
unstick ftp rm -f 'tmp/*.log' old.txt",
    ),
    (
        "unstick-ftp-mv",
        "unstick ftp mv 2026/q3.pdf archive/
unstick ftp mv draft.txt final.txt",
    ),
    ("unstick-ftp-mkdir", "unstick ftp mkdir -p 2026/q4/drafts"),
    ("unstick-ftp-stat", "unstick ftp stat big.iso"),
    (
        "unstick-known-hosts-list",
        "unstick known-hosts list
unstick known-hosts list --known-hosts ./known_hosts",
    ),
    ("unstick-token", "export UNSTICK_TOKEN=$(unstick token)"),
    (
        "unstick-completions",
        "unstick completions bash > ~/.local/share/bash-completion/completions/unstick",
    ),
    ("unstick-man", "unstick man --dir ~/.local/share/man/man1"),
];

/// The roff of the sections this module adds to the page `page` (`unstick-ftp-put`), given
/// its command's after-help text (its examples).
fn sections(page: &str, after_help: Option<&str>) -> Roff {
    let scopes = scopes_of(page);
    let concerns =
        |entry: &&Entry| entry.scopes.is_empty() || entry.scopes.iter().any(|s| scopes.contains(s));
    let mut roff = Roff::new();
    for (title, entries) in [
        ("ENVIRONMENT", ENVIRONMENT),
        ("FILES", FILES),
        ("EXIT STATUS", EXIT_STATUS),
    ] {
        let entries: Vec<&Entry> = entries.iter().filter(concerns).collect();
        if entries.is_empty() {
            continue;
        }
        roff.control("SH", [title]);
        for entry in entries {
            roff.control("TP", []);
            roff.text([bold(entry.term)]);
            roff.text([roman(entry.text)]);
        }
    }
    if scopes
        .iter()
        .any(|s| matches!(s, ShellClient | FtpClient | Info))
    {
        roff.control("SH", ["CONFIGURATION FILE"]);
        for paragraph in CONFIGURATION {
            roff.text([roman(*paragraph)]);
        }
        roff.control("PP", []);
        literal(&mut roff, CONFIGURATION_EXAMPLE);
    }
    let examples = match after_help {
        Some(text) => text
            .strip_prefix("Examples:")
            .map(|rest| rest.trim_start_matches('\n')),
        None if page == "unstick" => Some(MAIN_EXAMPLES),
        None => PAGE_EXAMPLES
            .iter()
            .find(|(name, _)| *name == page)
            .map(|(_, examples)| *examples),
    };
    match (examples, after_help) {
        (Some(examples), _) => {
            roff.control("SH", ["EXAMPLES"]);
            let lines: Vec<&str> = examples.lines().map(str::trim).collect();
            literal(&mut roff, &lines.join("\n"));
        }
        (None, Some(notes)) => {
            roff.control("SH", ["NOTES"]);
            roff.text([roman(notes)]);
        }
        (None, None) => {}
    }
    roff.control("SH", ["SEE ALSO"]);
    roff.text([
        roman("The README and docs/PROTOCOL.md of the unstick sources; "),
        bold("unstick"),
        roman(" "),
        italic("COMMAND"),
        roman(" --help."),
    ]);
    roff
}

/// Adds `text` as lines kept as they are (no filling), indented.
fn literal(roff: &mut Roff, text: &str) {
    roff.control("RS", ["4"]);
    roff.control("nf", []);
    for line in text.lines() {
        roff.text([roman(line)]);
    }
    roff.control("fi", []);
    roff.control("RE", []);
}

/// The page of `cmd` (built as its parent builds it, so that its name is the full
/// `unstick-ftp-put`): clap_mangen's sections, then this module's, before VERSION.
pub fn page(cmd: Command) -> io::Result<Vec<u8>> {
    let name = cmd
        .get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_owned();
    let after_help = cmd.get_after_help().map(|text| text.to_string());
    // Its examples are laid out here, not as clap_mangen's EXTRA paragraph.
    let cmd = cmd.after_help(None::<&str>).after_long_help(None::<&str>);
    let mut generated = Vec::new();
    clap_mangen::Man::new(cmd)
        .source(format!("unstick {}", env!("CARGO_PKG_VERSION")))
        .render(&mut generated)?;
    let generated = String::from_utf8_lossy(&generated).into_owned();
    let added = sections(&name, after_help.as_deref()).render();
    let at = generated
        .find("\n.SH VERSION")
        .map_or(generated.len(), |at| at + 1);
    let mut page = generated[..at].to_owned();
    page.push_str(&added);
    page.push_str(&generated[at..]);
    Ok(page.into_bytes())
}

/// The file name of `cmd`'s page: `unstick-ftp-put.1`.
pub fn file_name(cmd: &Command) -> String {
    format!(
        "{}.1",
        cmd.get_display_name().unwrap_or_else(|| cmd.get_name())
    )
}

/// Every page, `root`'s and those of the commands below it (hidden ones left out), as
/// clap_mangen lays them out: `(file name, page)`.
pub fn all_pages(root: Command) -> io::Result<Vec<(String, Vec<u8>)>> {
    fn walk(cmd: Command, out: &mut Vec<(String, Vec<u8>)>) -> io::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            walk(sub, out)?;
        }
        out.push((file_name(&cmd), page(cmd)?));
        Ok(())
    }
    let mut root = root.disable_help_subcommand(true);
    root.build();
    let mut pages = Vec::new();
    walk(root, &mut pages)?;
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_about_their_commands() {
        assert_eq!(scopes_of("unstick-ftp-put"), &[FtpClient]);
        assert_eq!(scopes_of("unstick-ftp-serve"), &[Server]);
        assert_eq!(scopes_of("unstick-shell-connect"), &[ShellClient]);
        assert_eq!(scopes_of("unstick-known-hosts-remove"), &[KnownHosts]);
        assert_eq!(scopes_of("unstick-token"), &[]);
        let put = sections("unstick-ftp-put", Some("Examples:\n  unstick ftp put a b/")).render();
        assert!(put.contains("UNSTICK_FTP_ADDR") && !put.contains("UNSTICK_SHELL_ADDR"));
        assert!(put.contains(".SH EXAMPLES") && put.contains("unstick ftp put a b/"));
        assert!(put.contains(".SH \"EXIT STATUS\"") && put.contains("130, 143"));
        let token = sections("unstick-token", None).render();
        assert!(!token.contains("ENVIRONMENT") && token.contains("EXIT STATUS"));
        assert!(!token.contains("CONFIGURATION FILE"));
    }
}
