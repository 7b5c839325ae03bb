//! The client's side: which server certificates it trusts (first use, a pin, or a CA), and the
//! handshake over a connected socket, with failures told in terms of what to do.

use std::fmt;
use std::io;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, StreamOwned};

use super::known_hosts::{self, Known};
use super::read_ahead::ReadAhead;
use super::{Fingerprint, identity, provider};

/// A TLS connection to a server.
pub type TlsStream = StreamOwned<ClientConnection, ReadAhead<TcpStream>>;

/// How a client trusts servers, and what it shows them of itself.
#[derive(Clone, Debug, Default)]
pub struct ClientTls {
    /// Accept only the certificate with this fingerprint (known hosts are not consulted).
    pub pin: Option<Fingerprint>,
    /// Accept certificates issued by the CAs in this PEM file for the server's name (known
    /// hosts are not consulted; a pin, if given too, must match as well).
    pub ca: Option<PathBuf>,
    /// The known-hosts file for trust on first use (default: [`known_hosts::default_path`]).
    pub known_hosts: Option<PathBuf>,
    /// A client certificate chain and its key (PEM files), for servers that ask for one.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// Asked about each server met for the first time, once the handshake has shown its
    /// certificate and before anything is sent or recorded: `Ok` trusts it (it is recorded
    /// in the known-hosts file), `Err` with a reason refuses the connection
    /// ([`TlsConnectError::NotTrusted`]). None: every server met first is trusted without a
    /// word.
    pub on_first_contact: Option<FirstContactHook>,
}

/// A server met for the first time, presenting a certificate the known-hosts file has no
/// entry for. Its `Display` is the sentence a user is shown once it is trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirstContact {
    /// The address as given (`HOST:PORT`).
    pub address: String,
    /// The certificate the server presented, trusted from now on.
    pub fingerprint: Fingerprint,
    /// The known-hosts file it was recorded in.
    pub file: PathBuf,
}

impl fmt::Display for FirstContact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "first contact with {}: trusting its certificate {} from now on (recorded in {}; \
             compare it with what the server printed at start)",
            self.address,
            self.fingerprint,
            self.file.display()
        )
    }
}

/// What a client calls with each [`FirstContact`], on the thread that connects, before
/// anything is sent: the host decides whether it is trusted (the CLI asks on a terminal, and
/// otherwise trusts it and says so, or refuses unknown servers when told to) and how a user
/// hears of it. `Err` holds why it is not trusted.
#[derive(Clone)]
#[allow(clippy::type_complexity)]
pub struct FirstContactHook(Arc<dyn Fn(&FirstContact) -> Result<(), String> + Send + Sync>);

impl FirstContactHook {
    /// A hook that calls `decide`.
    pub fn new(
        decide: impl Fn(&FirstContact) -> Result<(), String> + Send + Sync + 'static,
    ) -> FirstContactHook {
        FirstContactHook(Arc::new(decide))
    }
}

impl fmt::Debug for FirstContactHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FirstContactHook")
    }
}

/// How the certificate of one server is judged.
#[derive(Debug)]
enum Trust {
    /// Issued by a CA (and, with a pin, that certificate).
    Ca {
        verifier: Arc<WebPkiServerVerifier>,
        pin: Option<Fingerprint>,
    },
    /// Exactly this certificate.
    Pinned(Fingerprint),
    /// The known-hosts file's entry, or none yet (trusted on first use).
    FirstUse { file: PathBuf, known: Known },
}

/// A server certificate verifier for one connection: it keeps the fingerprint it saw, so
/// that a refusal can say what was presented.
#[derive(Debug)]
struct ServerTrust {
    trust: Trust,
    provider: Arc<CryptoProvider>,
    seen: Mutex<Option<Fingerprint>>,
}

impl ServerCertVerifier for ServerTrust {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = Fingerprint::of(end_entity);
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = Some(presented);
        let mismatch = || {
            rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )
        };
        match &self.trust {
            Trust::Ca { verifier, pin } => {
                verifier.verify_server_cert(
                    end_entity,
                    intermediates,
                    server_name,
                    ocsp_response,
                    now,
                )?;
                if pin.is_some_and(|pin| pin != presented) {
                    return Err(mismatch());
                }
            }
            Trust::Pinned(pin) if *pin != presented => return Err(mismatch()),
            Trust::FirstUse {
                known: Known::Trusted { fingerprint, .. },
                ..
            } if *fingerprint != presented => return Err(mismatch()),
            Trust::Pinned(_) | Trust::FirstUse { .. } => {}
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Why a TLS connection could not be set up.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsConnectError {
    /// The client's own files (CA, certificate, key, known hosts) could not be used.
    Setup(String),
    /// The server's certificate differs from the one the known-hosts file trusts for it.
    ChangedKey {
        /// The address as given.
        address: String,
        /// What the server presented.
        presented: Fingerprint,
        /// What the file trusts.
        trusted: Fingerprint,
        /// The file.
        file: PathBuf,
        /// The line of the entry.
        line: usize,
    },
    /// The server's certificate is not the pinned one.
    PinMismatch {
        /// What the server presented.
        presented: Fingerprint,
        /// The pin.
        pinned: Fingerprint,
    },
    /// The server's certificate failed the CA check (expired, another name, another CA, ...).
    BadCertificate(String),
    /// A server met for the first time was not trusted (see [`ClientTls::on_first_contact`]);
    /// nothing was sent or recorded.
    NotTrusted {
        /// The address as given.
        address: String,
        /// What the server presented.
        presented: Fingerprint,
        /// Why it is not trusted.
        reason: String,
    },
    /// The server answered, but not in TLS: a plaintext server.
    NotTls,
    /// The handshake failed otherwise (the server refused it, the connection broke, ...).
    Handshake(String),
}

impl fmt::Display for TlsConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsConnectError::Setup(e) => f.write_str(e),
            TlsConnectError::ChangedKey {
                address,
                presented,
                trusted,
                file,
                line,
            } => write!(
                f,
                "THE SERVER'S KEY HAS CHANGED: {address} presented certificate {presented}, but \
                 line {line} of {} trusts {trusted} for it. Someone may be impersonating the \
                 server; nothing was sent. If its key was replaced on purpose, delete line \
                 {line} of that file and connect again",
                file.display()
            ),
            TlsConnectError::PinMismatch { presented, pinned } => write!(
                f,
                "the server presented certificate {presented}, not the pinned {pinned}; nothing \
                 was sent"
            ),
            TlsConnectError::BadCertificate(e) => {
                write!(
                    f,
                    "the server's certificate is not valid: {e}; nothing was sent"
                )
            }
            TlsConnectError::NotTrusted {
                address,
                presented,
                reason,
            } => write!(
                f,
                "{address} is not a known host, and its certificate {presented} was not trusted: \
                 {reason}; nothing was sent"
            ),
            TlsConnectError::NotTls => f.write_str(
                "the server does not speak TLS (it answered in plaintext): connect without \
                 tls://, or start the server with --tls",
            ),
            TlsConnectError::Handshake(e) => write!(f, "TLS handshake failed: {e}"),
        }
    }
}

impl std::error::Error for TlsConnectError {}

impl From<TlsConnectError> for io::Error {
    fn from(e: TlsConnectError) -> io::Error {
        let kind = match e {
            TlsConnectError::Setup(_) => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::ConnectionRefused,
        };
        io::Error::new(kind, e)
    }
}

impl ClientTls {
    /// Whether any trust or identity option is set (they mean nothing without TLS).
    pub fn is_configured(&self) -> bool {
        self.pin.is_some()
            || self.ca.is_some()
            || self.known_hosts.is_some()
            || self.identity.is_some()
    }

    /// Sets up TLS on `socket`, connected to `address` (`HOST:PORT` as the user gave it: the
    /// known-hosts key, and the name a CA-issued certificate must hold), and completes the
    /// handshake. A server met for the first time is recorded in the known-hosts file, and
    /// [`ClientTls::on_first_contact`] is told of it.
    pub fn connect(
        &self,
        address: &str,
        mut socket: TcpStream,
    ) -> Result<TlsStream, TlsConnectError> {
        let provider = provider();
        let trust = self.trust(address, &provider)?;
        let verifier = Arc::new(ServerTrust {
            trust,
            provider: Arc::clone(&provider),
            seen: Mutex::new(None),
        });
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsConnectError::Setup(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone());
        let config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = identity::read_chain(cert)
                    .map_err(|e| TlsConnectError::Setup(e.to_string()))?;
                let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    TlsConnectError::Setup(format!(
                        "{}: no private key in PEM form ({e})",
                        key.display()
                    ))
                })?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| TlsConnectError::Setup(format!("client certificate: {e}")))?
            }
        };
        let name = ServerName::try_from(host_of(address).to_owned()).map_err(|_| {
            TlsConnectError::Setup(format!("`{address}` has no host name or address for TLS"))
        })?;
        let mut conn = ClientConnection::new(Arc::new(config), name)
            .map_err(|e| TlsConnectError::Setup(e.to_string()))?;
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut socket) {
                let seen = *verifier.seen.lock().unwrap_or_else(PoisonError::into_inner);
                return Err(handshake_error(&verifier.trust, address, seen, &e));
            }
        }
        if let Trust::FirstUse {
            file,
            known: Known::Unknown,
        } = &verifier.trust
        {
            let seen = verifier
                .seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .ok_or_else(|| TlsConnectError::Handshake("no server certificate".into()))?;
            if let Some(FirstContactHook(decide)) = &self.on_first_contact {
                let contact = FirstContact {
                    address: address.to_owned(),
                    fingerprint: seen,
                    file: file.clone(),
                };
                decide(&contact).map_err(|reason| TlsConnectError::NotTrusted {
                    address: address.to_owned(),
                    presented: seen,
                    reason,
                })?;
            }
            known_hosts::record(file, address, seen).map_err(|e| {
                TlsConnectError::Setup(format!(
                    "cannot record the server in {}: {e}",
                    file.display()
                ))
            })?;
        }
        Ok(StreamOwned::new(conn, ReadAhead::new(socket)))
    }

    fn trust(
        &self,
        address: &str,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Trust, TlsConnectError> {
        if let Some(ca) = &self.ca {
            let mut roots = RootCertStore::empty();
            for cert in
                identity::read_chain(ca).map_err(|e| TlsConnectError::Setup(e.to_string()))?
            {
                roots.add(cert).map_err(|e| {
                    TlsConnectError::Setup(format!(
                        "{}: not a usable CA certificate ({e})",
                        ca.display()
                    ))
                })?;
            }
            let verifier =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
                    .build()
                    .map_err(|e| TlsConnectError::Setup(format!("{}: {e}", ca.display())))?;
            return Ok(Trust::Ca {
                verifier,
                pin: self.pin,
            });
        }
        if let Some(pin) = self.pin {
            return Ok(Trust::Pinned(pin));
        }
        let file = self
            .known_hosts
            .clone()
            .or_else(known_hosts::default_path)
            .ok_or_else(|| {
                TlsConnectError::Setup(
                    "no config directory is known for this user (is $HOME set?); give \
                     --fingerprint SHA256:... or --known-hosts FILE"
                        .into(),
                )
            })?;
        let known = known_hosts::lookup(&file, address)
            .map_err(|e| TlsConnectError::Setup(e.to_string()))?;
        Ok(Trust::FirstUse { file, known })
    }
}

/// Says what a failed read means when it is a server's refusal of this client's certificate:
/// in TLS 1.3 that comes after the client's side of the handshake, with the first reply.
pub(crate) fn explain_read_error(e: io::Error) -> io::Error {
    let Some(rustls::Error::AlertReceived(alert)) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return e;
    };
    use rustls::AlertDescription as Alert;
    let message = match alert {
        Alert::CertificateRequired => {
            "the server asks for a client certificate: give --cert FILE --key FILE".to_owned()
        }
        Alert::BadCertificate
        | Alert::UnknownCA
        | Alert::CertificateUnknown
        | Alert::CertificateExpired
        | Alert::CertificateRevoked
        | Alert::UnsupportedCertificate
        | Alert::AccessDenied => format!(
            "the server refused this client's certificate ({alert:?}): use one issued by a CA \
             the server trusts (its --client-ca)"
        ),
        _ => return e,
    };
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        TlsConnectError::Handshake(message),
    )
}

/// The host of `HOST:PORT` (brackets of an IPv6 address removed).
fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// Says what a failed handshake means.
fn handshake_error(
    trust: &Trust,
    address: &str,
    seen: Option<Fingerprint>,
    e: &io::Error,
) -> TlsConnectError {
    let tls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match (tls_error, trust, seen) {
        (
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
            Trust::FirstUse {
                file,
                known: Known::Trusted { fingerprint, line },
            },
            Some(presented),
        ) => TlsConnectError::ChangedKey {
            address: address.to_owned(),
            presented,
            trusted: *fingerprint,
            file: file.clone(),
            line: *line,
        },
        (
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
            Trust::Pinned(pinned)
            | Trust::Ca {
                pin: Some(pinned), ..
            },
            Some(presented),
        ) => TlsConnectError::PinMismatch {
            presented,
            pinned: *pinned,
        },
        (Some(rustls::Error::InvalidCertificate(reason)), _, _) => {
            TlsConnectError::BadCertificate(format!("{reason:?}"))
        }
        (Some(rustls::Error::InvalidMessage(_)), _, None) => TlsConnectError::NotTls,
        (
            Some(rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired)),
            _,
            _,
        ) => TlsConnectError::Handshake(
            "the server asks for a client certificate: give --cert FILE --key FILE".into(),
        ),
        (Some(other), _, _) => TlsConnectError::Handshake(other.to_string()),
        (None, _, _)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            TlsConnectError::Handshake(
                "the server did not complete a TLS handshake in time: is it a TLS server?".into(),
            )
        }
        (None, _, None) if e.kind() == io::ErrorKind::UnexpectedEof => TlsConnectError::Handshake(
            "the server closed the connection before the handshake ended: it may not speak TLS \
             (connect without tls://)"
                .into(),
        ),
        (None, _, _) => TlsConnectError::Handshake(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::thread;

    use rustls::ServerConnection;

    use super::*;
    use crate::tls::{Identity, ServerTls};

    /// A new server identity in a temporary state directory, and a loopback listener for it:
    /// the directory, the certificate's fingerprint, the listener, its address and the TLS
    /// configuration to serve with.
    fn fresh_server() -> (
        tempfile::TempDir,
        Fingerprint,
        TcpListener,
        String,
        Arc<rustls::ServerConfig>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let identity = Identity::in_state_dir(dir.path(), &["localhost".to_owned()]).unwrap();
        let server_tls = ServerTls::new(identity, None).unwrap();
        let fingerprint = server_tls.fingerprint();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        (dir, fingerprint, listener, address, server_tls.config())
    }

    #[test]
    fn a_server_met_first_is_told_to_the_hook_once_and_recorded() {
        let (dir, fingerprint, listener, address, config) = fresh_server();
        let server = thread::spawn(move || {
            for _ in 0..2 {
                let (mut socket, _) = listener.accept().unwrap();
                let mut tls = ServerConnection::new(Arc::clone(&config)).unwrap();
                while tls.is_handshaking() {
                    tls.complete_io(&mut socket).unwrap();
                }
            }
        });
        let told = Arc::new(Mutex::new(Vec::new()));
        let file = dir.path().join("known_hosts");
        let trust = ClientTls {
            known_hosts: Some(file.clone()),
            on_first_contact: Some(FirstContactHook::new({
                let told = Arc::clone(&told);
                move |contact| {
                    told.lock().unwrap().push(contact.clone());
                    Ok(())
                }
            })),
            ..ClientTls::default()
        };
        for _ in 0..2 {
            trust
                .connect(&address, TcpStream::connect(&address).unwrap())
                .unwrap();
        }
        server.join().unwrap();
        // The first connection is told, the second (known now) is not.
        let contact = FirstContact {
            address: address.clone(),
            fingerprint,
            file: file.clone(),
        };
        assert_eq!(*told.lock().unwrap(), std::slice::from_ref(&contact));
        assert!(matches!(
            known_hosts::lookup(&file, &address).unwrap(),
            Known::Trusted { fingerprint: f, .. } if f == fingerprint
        ));
        assert!(contact.to_string().starts_with(&format!(
            "first contact with {address}: trusting its certificate {fingerprint} from now on"
        )));
    }

    #[test]
    fn a_server_met_first_and_refused_is_not_recorded_and_nothing_is_sent() {
        let (dir, fingerprint, listener, address, config) = fresh_server();
        let server = thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut tls = ServerConnection::new(Arc::clone(&config)).unwrap();
            while tls.is_handshaking() {
                if tls.complete_io(&mut socket).is_err() {
                    return 0;
                }
            }
            // What the client sent after the handshake: nothing, it closed.
            let mut buf = [0u8; 64];
            let mut stream = rustls::StreamOwned::new(tls, socket);
            std::io::Read::read(&mut stream, &mut buf).unwrap_or(0)
        });
        let file = dir.path().join("known_hosts");
        let trust = ClientTls {
            known_hosts: Some(file.clone()),
            on_first_contact: Some(FirstContactHook::new(|_| Err("declined".into()))),
            ..ClientTls::default()
        };
        let e = trust
            .connect(&address, TcpStream::connect(&address).unwrap())
            .unwrap_err();
        assert!(
            matches!(&e, TlsConnectError::NotTrusted { presented, reason, .. }
                if *presented == fingerprint && reason == "declined"),
            "{e:?}"
        );
        assert!(e.to_string().ends_with("declined; nothing was sent"), "{e}");
        assert_eq!(server.join().unwrap(), 0);
        assert_eq!(
            known_hosts::lookup(&file, &address).unwrap(),
            Known::Unknown
        );
    }

    #[test]
    fn hosts_come_out_of_addresses() {
        assert_eq!(host_of("example.com:7001"), "example.com");
        assert_eq!(host_of("127.0.0.1:7001"), "127.0.0.1");
        assert_eq!(host_of("[::1]:7001"), "::1");
    }
}
