//! The TLS options of every server and client command.

use std::io::{self, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use unstick_std::server::Transport;
use unstick_std::tls::{
    ClientTls, Fingerprint, FirstContact, FirstContactHook, Origin, ServerTls, ServerTlsOptions,
};

/// TLS options of a server.
#[derive(Args, Debug, Clone, Default)]
pub struct TlsServeArgs {
    /// Serve TLS. Without --cert/--key, a key and a self-signed certificate are generated on
    /// first start into the state directory; its fingerprint is printed for clients to pin.
    #[arg(long)]
    tls: bool,
    /// Certificate chain to serve (PEM, leaf first), with --key.
    #[arg(long, requires_all = ["tls", "key"], value_name = "FILE")]
    cert: Option<PathBuf>,
    /// Private key of --cert (PEM).
    #[arg(long, requires_all = ["tls", "cert"], value_name = "FILE")]
    key: Option<PathBuf>,
    /// Where a generated key and certificate are kept [default: unstick under the user's data
    /// directory, e.g. ~/.local/share/unstick].
    #[arg(long, requires = "tls", value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Require client certificates issued by the CAs in this PEM file.
    #[arg(long, requires = "tls", value_name = "FILE")]
    client_ca: Option<PathBuf>,
    /// Allow plaintext on a non-loopback address (for clients that cannot speak TLS, such as
    /// the seed's scripts); a token is still required there.
    #[arg(long, conflicts_with = "tls")]
    insecure_plaintext: bool,
}

impl TlsServeArgs {
    /// The transport for a server listening on `listen`: TLS loaded or generated (names in a
    /// generated certificate: localhost, the loopback addresses and the listen host).
    pub fn transport(&self, listen: &str) -> Result<Transport, String> {
        if !self.tls {
            return Ok(Transport {
                tls: None,
                insecure_plaintext: self.insecure_plaintext,
            });
        }
        let mut names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        if let Ok(addr) = listen.parse::<SocketAddr>() {
            if !addr.ip().is_unspecified() && !addr.ip().is_loopback() {
                names.push(addr.ip().to_string());
            }
        } else if let Some((host, _)) = listen.rsplit_once(':')
            && !host.is_empty()
            && host != "localhost"
        {
            names.push(host.trim_matches(['[', ']']).to_owned());
        }
        let options = ServerTlsOptions {
            cert: self.cert.clone(),
            key: self.key.clone(),
            state_dir: self.state_dir.clone(),
            client_ca: self.client_ca.clone(),
        };
        let tls = ServerTls::load(&options, &names).map_err(|e| e.to_string())?;
        Ok(Transport {
            tls: Some(tls),
            insecure_plaintext: false,
        })
    }
}

/// Prints a TLS server's fingerprint: `tls SHA256:...` on stdout (after the address line), and
/// where the certificate is on stderr.
pub fn announce(transport: &Transport, server: &str) -> io::Result<()> {
    let Some(tls) = &transport.tls else {
        return Ok(());
    };
    let mut out = io::stdout().lock();
    writeln!(out, "tls {}", tls.fingerprint())?;
    out.flush()?;
    note_origin(transport, server);
    Ok(())
}

/// Says on stderr where a TLS server's certificate comes from (generated, or which file).
pub fn note_origin(transport: &Transport, server: &str) {
    let Some(tls) = &transport.tls else {
        return;
    };
    match tls.origin() {
        Origin::Generated { cert } => eprintln!(
            "unstick {server}: generated a TLS certificate, {} (in {}); clients trust it on first contact, or pin it with --fingerprint",
            tls.fingerprint(),
            cert.display()
        ),
        Origin::Files { cert } => eprintln!(
            "unstick {server}: TLS certificate {} (from {})",
            tls.fingerprint(),
            cert.display()
        ),
    }
}

/// TLS options of a client; they apply to `tls://HOST:PORT` addresses.
#[derive(Args, Debug, Clone, Default)]
pub struct TlsClientArgs {
    /// Trust only the server certificate with this fingerprint (as the server printed it:
    /// SHA256: and 64 hex digits); the known-hosts file is not consulted.
    #[arg(long, value_name = "SHA256:...")]
    fingerprint: Option<Fingerprint>,
    /// Trust server certificates issued by the CAs in this PEM file, for the address's host
    /// name.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// The file of servers trusted on first contact [default: unstick/known_hosts under the
    /// user's config directory, e.g. ~/.config/unstick/known_hosts].
    #[arg(long, value_name = "FILE")]
    known_hosts: Option<PathBuf>,
    /// Client certificate (PEM), for a server that asks for one; with --key.
    #[arg(long, requires = "key", value_name = "FILE")]
    cert: Option<PathBuf>,
    /// Private key of --cert (PEM).
    #[arg(long, requires = "cert", value_name = "FILE")]
    key: Option<PathBuf>,
    /// A server not in the known-hosts file: `ask` shows its fingerprint and asks before
    /// anything is sent when stdin and stderr are a terminal, and otherwise trusts and records
    /// it, saying so; `accept` trusts and records it without asking; `refuse` refuses it
    /// (pin it with --fingerprint, or add it once with `accept`). Default:
    /// $UNSTICK_UNKNOWN_HOSTS, else the config file's `unknown_hosts`, else ask.
    #[arg(long, value_enum, value_name = "POLICY")]
    unknown_hosts: Option<UnknownHosts>,
}

/// What a client does with a TLS server it meets for the first time (`--unknown-hosts`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnknownHosts {
    /// Ask on a terminal; elsewhere trust it, record it and say so.
    Ask,
    /// Trust it, record it and say so, terminal or not.
    Accept,
    /// Refuse it: only known, pinned or CA-issued certificates are trusted.
    Refuse,
}

/// The environment variable of `--unknown-hosts`.
pub const UNKNOWN_HOSTS_ENV: &str = "UNSTICK_UNKNOWN_HOSTS";

impl UnknownHosts {
    /// The policy named `text` (`ask`, `accept`, `refuse`).
    pub fn from_name(text: &str) -> Option<UnknownHosts> {
        <UnknownHosts as clap::ValueEnum>::from_str(text, true).ok()
    }

    /// The policy from the flag, else `$UNSTICK_UNKNOWN_HOSTS`, else the config file, else
    /// [`UnknownHosts::Ask`].
    fn resolve(flag: Option<UnknownHosts>) -> Result<UnknownHosts, String> {
        if let Some(policy) = flag {
            return Ok(policy);
        }
        if let Some(text) = std::env::var(UNKNOWN_HOSTS_ENV)
            .ok()
            .filter(|v| !v.is_empty())
        {
            return UnknownHosts::from_name(&text).ok_or_else(|| {
                format!("${UNKNOWN_HOSTS_ENV} is {text:?}; use ask, accept or refuse")
            });
        }
        Ok(crate::client_settings::configured_unknown_hosts()?.unwrap_or(UnknownHosts::Ask))
    }
}

impl TlsClientArgs {
    /// The client's TLS trust: the flags, and what is done with a server met for the first
    /// time (see `--unknown-hosts`).
    pub fn client_tls(&self) -> Result<ClientTls, String> {
        let policy = UnknownHosts::resolve(self.unknown_hosts)?;
        Ok(ClientTls {
            pin: self.fingerprint,
            ca: self.ca.clone(),
            known_hosts: self.known_hosts.clone(),
            identity: self.cert.clone().zip(self.key.clone()),
            on_first_contact: Some(FirstContactHook::new(move |contact| {
                first_contact(policy, contact)
            })),
        })
    }
}

/// Decides on a server met for the first time, as `policy` says.
fn first_contact(policy: UnknownHosts, contact: &FirstContact) -> Result<(), String> {
    let on_terminal = io::stdin().is_terminal() && io::stderr().is_terminal();
    match policy {
        UnknownHosts::Refuse => Err(format!(
            "unknown hosts are refused (--unknown-hosts refuse); if {} is the certificate the \
             server printed at start, pin it with --fingerprint {}, or connect once with \
             --unknown-hosts accept to record it",
            contact.fingerprint, contact.fingerprint
        )),
        UnknownHosts::Ask if on_terminal => ask(contact),
        UnknownHosts::Ask | UnknownHosts::Accept => {
            // A warning, shown even with --quiet.
            eprintln!("unstick: {contact}");
            Ok(())
        }
    }
}

/// Shows the fingerprint of a server met for the first time and asks, on the terminal,
/// whether to trust it.
fn ask(contact: &FirstContact) -> Result<(), String> {
    let mut err = io::stderr().lock();
    let _ = write!(
        err,
        "unstick: first contact with {}.\n\
         Its certificate's fingerprint is {}.\n\
         Compare it with the one the server printed at start (`tls SHA256:...`).\n\
         Trust it from now on (recorded in {}) and connect? [y/N] ",
        contact.address,
        contact.fingerprint,
        contact.file.display()
    );
    let _ = err.flush();
    drop(err);
    let mut answer = String::new();
    io::stdin()
        .read_line(&mut answer)
        .map_err(|e| format!("no answer could be read: {e}"))?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err("it was not accepted at the prompt".into()),
    }
}
