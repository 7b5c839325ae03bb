//! The TLS options of every server and client command.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use unstick_std::server::Transport;
use unstick_std::tls::{
    ClientTls, Fingerprint, FirstContactHook, Origin, ServerTls, ServerTlsOptions,
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
}

impl TlsClientArgs {
    /// The client's TLS trust.
    pub fn client_tls(&self) -> ClientTls {
        ClientTls {
            pin: self.fingerprint,
            ca: self.ca.clone(),
            known_hosts: self.known_hosts.clone(),
            identity: self.cert.clone().zip(self.key.clone()),
            // A warning, shown even with --quiet.
            on_first_contact: Some(FirstContactHook::new(|contact| {
                eprintln!("unstick: {contact}");
            })),
        }
    }
}
