//! TLS for both servers and their clients: encryption, server authentication by a pinned or
//! CA-issued certificate, and optional client certificates.
//!
//! - A server gets its [`Identity`] from PEM files, or generates one on first start into its
//!   state directory and prints the certificate's [`Fingerprint`]; [`ServerTls`] is what it
//!   serves with. The server's TLS front ([`crate::server::tls_front`], one of the lobby's
//!   entrances) completes handshakes and hands the lobby each connection as a
//!   [`TlsServerStream`], read and written like a plaintext one, so limits, timeouts and logs
//!   are those of plaintext clients.
//! - A client trusts a server on first use (the [`known_hosts`] file), by a pinned fingerprint,
//!   or by a CA file ([`ClientTls`]).
//!
//! The crypto provider is *ring*: on two cores a clean release build of rustls and rcgen with
//! ring took 59 s against aws-lc-rs's 80 s (README, "TLS"), it needs only a C compiler (no
//! CMake or Go), and it builds for Windows with MinGW and for macOS.

mod client;
pub mod fingerprint;
pub mod identity;
pub mod known_hosts;
pub mod read_ahead;
mod server_stream;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

pub(crate) use client::explain_read_error;
pub use client::{ClientTls, FirstContact, FirstContactHook, TlsConnectError, TlsStream};
pub use fingerprint::Fingerprint;
pub use identity::{Identity, Origin, TlsSetupError};
pub use server_stream::TlsServerStream;

/// The crypto provider every TLS connection here uses: ring's, with AES-128-GCM preferred (a
/// third faster than AES-256-GCM on bulk transfers with AES instructions, and as safe for
/// this use).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.sort_by_key(|suite| {
        use rustls::CipherSuite::{
            TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            TLS13_AES_128_GCM_SHA256,
        };
        match suite.suite() {
            TLS13_AES_128_GCM_SHA256 => 0,
            TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 | TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 1,
            _ => 2,
        }
    });
    Arc::new(provider)
}

/// Where a server's TLS identity comes from, and whom it asks for client certificates.
#[derive(Clone, Debug, Default)]
pub struct ServerTlsOptions {
    /// Certificate chain (PEM, leaf first); with `key`. Without them the identity is generated
    /// into (or read back from) `state_dir`.
    pub cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    pub key: Option<PathBuf>,
    /// Where a generated identity is kept (default: [`identity::default_state_dir`]).
    pub state_dir: Option<PathBuf>,
    /// Require client certificates issued by the CAs in this PEM file.
    pub client_ca: Option<PathBuf>,
}

/// A server's TLS: its configuration and the fingerprint clients pin.
#[derive(Clone, Debug)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    fingerprint: Fingerprint,
    origin: Origin,
}

impl ServerTls {
    /// Loads or generates the identity `options` name (a generated certificate holds
    /// `names`), and sets up the server's TLS with it.
    pub fn load(options: &ServerTlsOptions, names: &[String]) -> Result<ServerTls, TlsSetupError> {
        let identity = match (&options.cert, &options.key) {
            (Some(cert), Some(key)) => Identity::from_pem_files(cert, key)?,
            (Some(_), None) | (None, Some(_)) => {
                return Err(TlsSetupError::Config(
                    "--cert and --key go together: give both, or neither to use a generated \
                     certificate"
                        .into(),
                ));
            }
            (None, None) => {
                let dir = options
                    .state_dir
                    .clone()
                    .or_else(identity::default_state_dir)
                    .ok_or(TlsSetupError::NoStateDir)?;
                Identity::in_state_dir(&dir, names)?
            }
        };
        ServerTls::new(identity, options.client_ca.as_deref())
    }

    /// A server's TLS with `identity`, asking for client certificates issued by the CAs in
    /// `client_ca` when given.
    pub fn new(identity: Identity, client_ca: Option<&Path>) -> Result<ServerTls, TlsSetupError> {
        let provider = provider();
        let fingerprint = identity.fingerprint();
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSetupError::Config(e.to_string()))?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for cert in identity::read_chain(path)? {
                    roots.add(cert).map_err(|e| TlsSetupError::Pem {
                        path: path.to_owned(),
                        problem: format!("not a usable CA certificate ({e})"),
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| TlsSetupError::Config(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(identity.chain, identity.key)
            .map_err(|e| {
                TlsSetupError::Config(format!("the certificate and key do not go together: {e}"))
            })?;
        // Every request is independent: no resumption tickets to send (they would also arrive
        // as bytes on a connection nobody asked for).
        config.send_tls13_tickets = 0;
        Ok(ServerTls {
            config: Arc::new(config),
            fingerprint,
            origin: identity.origin,
        })
    }

    /// The fingerprint of the certificate the server presents.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Where the certificate came from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The rustls configuration.
    pub(crate) fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.config)
    }
}
