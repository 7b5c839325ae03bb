//! `unstick known-hosts`: the TLS servers a client trusts, as `ssh-keygen -F` and `-R` show and
//! forget them: `list`, and `remove HOST[:PORT]` (every port of HOST without one).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use unstick_std::tls::known_hosts::{self, Entry};

use crate::exit_status::print_result;

/// `unstick known-hosts` subcommands.
#[derive(Subcommand, Debug)]
pub enum KnownHostsCommand {
    /// List the servers trusted on first contact: address, fingerprint, line.
    List(FileArgs),
    /// Forget a server, so that its next certificate is met as a first contact (after its key
    /// was replaced on purpose, say): `HOST:PORT` as it was connected to, or `HOST` for every
    /// port of it.
    #[command(after_help = "Examples:
  unstick known-hosts remove build-box:8080
  unstick known-hosts remove build-box
  unstick known-hosts remove '[::1]:8090'")]
    Remove {
        /// `HOST:PORT` (`[IPV6]:PORT`), or `HOST` for all its ports.
        #[arg(value_name = "HOST[:PORT]")]
        host: String,
        #[command(flatten)]
        file: FileArgs,
    },
}

/// Which known-hosts file.
#[derive(Args, Debug)]
pub struct FileArgs {
    /// The file [default: unstick/known_hosts under the user's config directory, e.g.
    /// ~/.config/unstick/known_hosts], as the clients' --known-hosts.
    #[arg(long, value_name = "FILE")]
    known_hosts: Option<PathBuf>,
}

impl FileArgs {
    fn path(&self) -> Result<PathBuf, String> {
        self.known_hosts
            .clone()
            .or_else(known_hosts::default_path)
            .ok_or_else(|| {
                "no config directory is known for this user (is $HOME set?); give \
                 --known-hosts FILE"
                    .to_owned()
            })
    }
}

/// Runs a subcommand.
pub fn run(cmd: &KnownHostsCommand) -> ExitCode {
    let result = match cmd {
        KnownHostsCommand::List(file) => list(file),
        KnownHostsCommand::Remove { host, file } => remove(host, file),
    };
    match result {
        Ok(text) => print_result(text.as_bytes(), "known-hosts"),
        Err(message) => {
            eprintln!("unstick known-hosts: {message}");
            ExitCode::FAILURE
        }
    }
}

fn list(file: &FileArgs) -> Result<String, String> {
    let path = file.path()?;
    let entries = known_hosts::entries(&path).map_err(|e| e.to_string())?;
    if entries.is_empty() {
        crate::console::note(format_args!(
            "no known hosts in {} (servers are recorded on first contact)",
            path.display()
        ));
    }
    let width = entries.iter().map(|e| e.address.len()).max().unwrap_or(0);
    Ok(entries
        .iter()
        .map(|e| {
            format!(
                "{:<width$}  {}  (line {})\n",
                e.address, e.fingerprint, e.line
            )
        })
        .collect())
}

fn remove(host: &str, file: &FileArgs) -> Result<String, String> {
    let path = file.path()?;
    let wanted = Wanted::of(host);
    let removed = known_hosts::remove(&path, |e| wanted.matches(e)).map_err(|e| e.to_string())?;
    if removed.is_empty() {
        return Err(format!("no entry for {host} in {}", path.display()));
    }
    Ok(removed
        .iter()
        .map(|e| {
            format!(
                "removed {} {} (line {} of {})\n",
                e.address,
                e.fingerprint,
                e.line,
                path.display()
            )
        })
        .collect())
}

/// The entries `remove` is after: one address, or every port of a host.
#[derive(Debug, PartialEq, Eq)]
enum Wanted<'a> {
    /// `HOST:PORT`, as recorded.
    Address(&'a str),
    /// `HOST` (an IPv6 address without its brackets).
    Host(&'a str),
}

impl<'a> Wanted<'a> {
    /// `HOST:PORT` or `[IPV6]:PORT` is an address; anything else (a name, an IPv4 address, a
    /// bare or bracketed IPv6 address) a host.
    fn of(text: &'a str) -> Wanted<'a> {
        let text = text.trim();
        let has_port = |rest: &str| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit());
        if let Some(inner) = text.strip_prefix('[') {
            return match inner.split_once("]:") {
                Some((_, port)) if has_port(port) => Wanted::Address(text),
                _ => Wanted::Host(inner.trim_end_matches(']')),
            };
        }
        match text.split_once(':') {
            Some((_, port)) if has_port(port) => Wanted::Address(text),
            _ => Wanted::Host(text),
        }
    }

    fn matches(&self, entry: &Entry) -> bool {
        match *self {
            Wanted::Address(address) => entry.address == address,
            Wanted::Host(host) => host_of(&entry.address).eq_ignore_ascii_case(host),
        }
    }
}

/// The host of a recorded `HOST:PORT` (brackets of an IPv6 address removed).
fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_argument_is_an_address_with_a_port_or_else_a_host() {
        let table = [
            ("box:8080", Wanted::Address("box:8080")),
            ("box", Wanted::Host("box")),
            ("192.0.2.7:8090", Wanted::Address("192.0.2.7:8090")),
            ("192.0.2.7", Wanted::Host("192.0.2.7")),
            ("[::1]:8080", Wanted::Address("[::1]:8080")),
            ("[::1]", Wanted::Host("::1")),
            ("::1", Wanted::Host("::1")),
            ("box:", Wanted::Host("box:")),
        ];
        for (text, expected) in table {
            assert_eq!(Wanted::of(text), expected, "{text}");
        }
        let entry = |address: &str| Entry {
            line: 1,
            address: address.into(),
            fingerprint: unstick_std::tls::Fingerprint::of(b"x"),
        };
        assert!(Wanted::of("box").matches(&entry("box:8080")));
        assert!(Wanted::of("BOX").matches(&entry("box:8090")));
        assert!(!Wanted::of("box").matches(&entry("boxer:8080")));
        assert!(Wanted::of("::1").matches(&entry("[::1]:8080")));
        assert!(!Wanted::of("box:8080").matches(&entry("box:8090")));
    }
}
