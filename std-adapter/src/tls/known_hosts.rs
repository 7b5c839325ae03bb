//! The client's record of the servers it trusts on first use, as ssh's `known_hosts`: one line
//! per server, `ADDRESS SHA256:...`, `#` comments and blank lines ignored.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::Fingerprint;

/// The default file: `unstick/known_hosts` under the user's config directory
/// (`$XDG_CONFIG_HOME` or `~/.config` on Linux).
pub fn default_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("unstick").join("known_hosts"))
}

/// What the file says of an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Known {
    /// Not in the file.
    Unknown,
    /// Trusted with this fingerprint, on this line (1-based).
    Trusted {
        /// The fingerprint on record.
        fingerprint: Fingerprint,
        /// Its line.
        line: usize,
    },
}

/// Looks `address` up in the file at `path` (a missing file knows nothing). A line that does
/// not parse is an error naming it: a damaged file must not quietly trust anew.
pub fn lookup(path: &Path, address: &str) -> io::Result<Known> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Known::Unknown),
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("known hosts file {}: {e}", path.display()),
            ));
        }
    };
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let entry = line.trim();
        if entry.is_empty() || entry.starts_with('#') {
            continue;
        }
        let mut fields = entry.split_whitespace();
        let (Some(host), Some(fp), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(damaged(path, line_no, "expected `ADDRESS SHA256:...`"));
        };
        if host != address {
            continue;
        }
        let fingerprint = fp
            .parse::<Fingerprint>()
            .map_err(|e| damaged(path, line_no, &e.to_string()))?;
        return Ok(Known::Trusted {
            fingerprint,
            line: line_no,
        });
    }
    Ok(Known::Unknown)
}

/// Appends `address`'s fingerprint to the file, creating it (and its directory) if needed.
pub fn record(path: &Path, address: &str, fingerprint: Fingerprint) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(file, "{address} {fingerprint}")?;
    file.sync_all()
}

fn damaged(path: &Path, line: usize, problem: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{}:{line}: {problem}; fix or delete that line",
            path.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_recorded_and_found_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("known_hosts");
        assert_eq!(lookup(&path, "a:1").unwrap(), Known::Unknown);
        let (one, two) = (Fingerprint::of(b"one"), Fingerprint::of(b"two"));
        record(&path, "a:1", one).unwrap();
        record(&path, "b:2", two).unwrap();
        assert_eq!(
            lookup(&path, "b:2").unwrap(),
            Known::Trusted {
                fingerprint: two,
                line: 2
            }
        );
        assert_eq!(lookup(&path, "c:3").unwrap(), Known::Unknown);
        fs::write(&path, "# mine\n\na:1 SHA256:nothex\n").unwrap();
        let e = lookup(&path, "a:1").unwrap_err().to_string();
        assert!(e.contains("known_hosts:3"), "{e}");
    }
}
