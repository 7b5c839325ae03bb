//! A server's TLS identity: its certificate chain and private key, from PEM files the operator
//! names or generated once into the server's state directory.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::fingerprint::Fingerprint;

/// File names of a generated identity inside the state directory.
const CERT_FILE: &str = "tls-cert.pem";
const KEY_FILE: &str = "tls-key.pem";

/// A certificate chain (leaf first) and the leaf's private key.
pub struct Identity {
    /// The chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's key.
    pub key: PrivateKeyDer<'static>,
    /// Where it came from, for messages.
    pub origin: Origin,
}

/// Where an identity came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Generated now, into these files.
    Generated {
        /// The certificate file.
        cert: PathBuf,
    },
    /// Read from files made earlier (by the server or the operator).
    Files {
        /// The certificate file.
        cert: PathBuf,
    },
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint())
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// Why a server's TLS could not be set up.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsSetupError {
    /// A file could not be read or written.
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// A file holds no usable certificate or key.
    Pem {
        /// The file.
        path: PathBuf,
        /// What is missing or malformed.
        problem: String,
    },
    /// The key pair or certificate could not be generated.
    Generate(String),
    /// No state directory was given and the system names no data directory.
    NoStateDir,
    /// The certificate, key or client CAs were refused by the TLS library.
    Config(String),
}

impl fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsSetupError::File { path, source } => write!(f, "{}: {source}", path.display()),
            TlsSetupError::Pem { path, problem } => write!(f, "{}: {problem}", path.display()),
            TlsSetupError::Generate(e) => write!(f, "cannot generate a TLS certificate: {e}"),
            TlsSetupError::NoStateDir => f.write_str(
                "no data directory is known for this user (is $HOME set?); give --state-dir DIR \
                 or --cert FILE --key FILE",
            ),
            TlsSetupError::Config(e) => write!(f, "TLS set-up: {e}"),
        }
    }
}

impl std::error::Error for TlsSetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsSetupError::File { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Identity {
    /// The leaf certificate's fingerprint, as clients pin it.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.chain[0])
    }

    /// Reads a certificate chain (leaf first) and a private key from PEM files.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Identity, TlsSetupError> {
        let chain = read_chain(cert)?;
        let key_der = fs::read(key).map_err(|source| TlsSetupError::File {
            path: key.to_owned(),
            source,
        })?;
        let key_der = PrivateKeyDer::from_pem_slice(&key_der).map_err(|e| TlsSetupError::Pem {
            path: key.to_owned(),
            problem: format!("no private key in PEM form ({e})"),
        })?;
        Ok(Identity {
            chain,
            key: key_der,
            origin: Origin::Files {
                cert: cert.to_owned(),
            },
        })
    }

    /// The identity kept in `state_dir`: read when it was generated before, else generated now
    /// (a P-256 key and a self-signed certificate for `names`) and written there, the directory
    /// and the key readable by this user only.
    pub fn in_state_dir(state_dir: &Path, names: &[String]) -> Result<Identity, TlsSetupError> {
        // Two servers of one process (`unstick serve`) start at once: one generates, the other
        // reads what it wrote.
        static GENERATING: Mutex<()> = Mutex::new(());
        let _one_at_a_time = GENERATING.lock().unwrap_or_else(PoisonError::into_inner);
        let cert = state_dir.join(CERT_FILE);
        let key = state_dir.join(KEY_FILE);
        let file_error = |path: &Path| {
            let path = path.to_owned();
            move |source| TlsSetupError::File { path, source }
        };
        if !state_dir.exists() {
            create_private_dir(state_dir).map_err(file_error(state_dir))?;
        }
        check_private(state_dir, 0o022, "chmod 700")?;
        if cert.exists() || key.exists() {
            return Identity::read_generated(&cert, &key);
        }
        let key_pair =
            rcgen::KeyPair::generate().map_err(|e| TlsSetupError::Generate(e.to_string()))?;
        let mut params = rcgen::CertificateParams::new(names.to_vec())
            .map_err(|e| TlsSetupError::Generate(e.to_string()))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "unstick server");
        let certificate = params
            .self_signed(&key_pair)
            .map_err(|e| TlsSetupError::Generate(e.to_string()))?;
        // The key first: a certificate without its key is of no use. A key that appeared
        // meanwhile was written by another server process starting at the same moment: its
        // identity is the one to use.
        match write_private(&key, key_pair.serialize_pem().as_bytes()) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Identity::read_generated(&cert, &key);
            }
            written => written.map_err(file_error(&key))?,
        }
        write_private(&cert, certificate.pem().as_bytes()).map_err(file_error(&cert))?;
        let key_der = PrivateKeyDer::from_pem_slice(key_pair.serialize_pem().as_bytes())
            .map_err(|e| TlsSetupError::Generate(e.to_string()))?;
        Ok(Identity {
            chain: vec![certificate.der().clone()],
            key: key_der,
            origin: Origin::Generated { cert },
        })
    }
}

impl Identity {
    /// Reads an identity generated into a state directory earlier (or by another process just
    /// now: a key whose certificate is not there yet is waited for, briefly). The key must be
    /// this user's alone.
    fn read_generated(cert: &Path, key: &Path) -> Result<Identity, TlsSetupError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while key.exists() && !cert.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if key.exists() != cert.exists() {
            let present = if key.exists() { key } else { cert };
            return Err(TlsSetupError::Pem {
                path: present.to_owned(),
                problem: format!(
                    "its partner file {} is missing; delete {} to generate a new identity",
                    if key.exists() { cert } else { key }.display(),
                    present.display()
                ),
            });
        }
        check_private(key, 0o077, "chmod 600")?;
        Identity::from_pem_files(cert, key)
    }
}

/// Refuses `path` when it is not this user's, or when its mode has any of `loose` (bits
/// others could use to read or replace what is in it), naming the command that fixes it.
#[cfg(unix)]
fn check_private(path: &Path, loose: u32, fix: &str) -> Result<(), TlsSetupError> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path).map_err(|source| TlsSetupError::File {
        path: path.to_owned(),
        source,
    })?;
    let me = rustix::process::geteuid().as_raw();
    let problem = if meta.uid() != me {
        Some(format!(
            "belongs to another user (uid {}); the server's key must be its own",
            meta.uid()
        ))
    } else if meta.mode() & loose != 0 {
        Some(format!(
            "has mode {:o}, which lets others read or replace the server's key; {fix} {}",
            meta.mode() & 0o7777,
            path.display()
        ))
    } else {
        None
    };
    match problem {
        Some(problem) => Err(TlsSetupError::Pem {
            path: path.to_owned(),
            problem,
        }),
        None => Ok(()),
    }
}

#[cfg(not(unix))]
fn check_private(_: &Path, _: u32, _: &str) -> Result<(), TlsSetupError> {
    Ok(())
}

/// The default state directory: `unstick` under the user's data directory
/// (`$XDG_DATA_HOME` or `~/.local/share` on Linux).
pub fn default_state_dir() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("unstick"))
}

/// Reads every certificate of a PEM file.
pub fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let bytes = fs::read(path).map_err(|source| TlsSetupError::File {
        path: path.to_owned(),
        source,
    })?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsSetupError::Pem {
            path: path.to_owned(),
            problem: format!("a certificate is malformed ({e})"),
        })?;
    if chain.is_empty() {
        return Err(TlsSetupError::Pem {
            path: path.to_owned(),
            problem: "no certificate in PEM form (-----BEGIN CERTIFICATE-----)".into(),
        });
    }
    Ok(chain)
}

/// Creates `dir` (and its parents) readable by this user only.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Writes a new file readable by this user only; an existing file is left alone (an error).
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
