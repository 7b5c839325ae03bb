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

/// One server the file trusts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its line (1-based).
    pub line: usize,
    /// The address, as the client was given it (`HOST:PORT`).
    pub address: String,
    /// The certificate trusted for it.
    pub fingerprint: Fingerprint,
}

/// The file's text, `None` when it does not exist.
fn read(path: &Path) -> io::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("known hosts file {}: {e}", path.display()),
        )),
    }
}

/// The entry on `line` (numbered `line_no`), `None` for a comment or a blank line.
fn parse_line(path: &Path, line_no: usize, line: &str) -> io::Result<Option<Entry>> {
    let entry = line.trim();
    if entry.is_empty() || entry.starts_with('#') {
        return Ok(None);
    }
    let mut fields = entry.split_whitespace();
    let (Some(address), Some(fp), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err(damaged(path, line_no, "expected `ADDRESS SHA256:...`"));
    };
    let fingerprint = fp
        .parse::<Fingerprint>()
        .map_err(|e| damaged(path, line_no, &e.to_string()))?;
    Ok(Some(Entry {
        line: line_no,
        address: address.to_owned(),
        fingerprint,
    }))
}

/// Every entry of the file at `path`, in order (a missing file has none). A line that does not
/// parse is an error naming it.
pub fn entries(path: &Path) -> io::Result<Vec<Entry>> {
    let Some(text) = read(path)? else {
        return Ok(Vec::new());
    };
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        entries.extend(parse_line(path, index + 1, line)?);
    }
    Ok(entries)
}

/// Looks `address` up in the file at `path` (a missing file knows nothing). A line that does
/// not parse is an error naming it: a damaged file must not quietly trust anew.
pub fn lookup(path: &Path, address: &str) -> io::Result<Known> {
    let Some(text) = read(path)? else {
        return Ok(Known::Unknown);
    };
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let entry = line.trim();
        if entry.is_empty() || entry.starts_with('#') {
            continue;
        }
        let mut fields = entry.split_whitespace();
        let (Some(host), Some(_), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(damaged(path, line_no, "expected `ADDRESS SHA256:...`"));
        };
        // Another server's fingerprint is not read: only the one asked for must parse.
        if host != address {
            continue;
        }
        if let Some(entry) = parse_line(path, line_no, line)? {
            return Ok(Known::Trusted {
                fingerprint: entry.fingerprint,
                line: entry.line,
            });
        }
    }
    Ok(Known::Unknown)
}

/// Removes the entries `remove` picks from the file at `path` and returns them; comments and
/// the other entries stay as they were. The file is rewritten whole and renamed into place,
/// so a crash leaves the old file or the new one. Nothing picked: the file is not touched.
pub fn remove(path: &Path, remove: impl Fn(&Entry) -> bool) -> io::Result<Vec<Entry>> {
    let Some(text) = read(path)? else {
        return Ok(Vec::new());
    };
    let mut kept = String::with_capacity(text.len());
    let mut removed = Vec::new();
    for (index, line) in text.lines().enumerate() {
        match parse_line(path, index + 1, line)? {
            Some(entry) if remove(&entry) => removed.push(entry),
            _ => {
                kept.push_str(line);
                kept.push('\n');
            }
        }
    }
    if removed.is_empty() {
        return Ok(removed);
    }
    let name = path.file_name().map_or_else(
        || "known_hosts".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let temporary = path.with_file_name(format!(".{name}.{}.new", std::process::id()));
    let written = (|| {
        let mut file = fs::File::create(&temporary)?;
        file.write_all(kept.as_bytes())?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written.map(|()| removed)
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
        assert_eq!(
            entries(&path).unwrap(),
            [
                Entry {
                    line: 1,
                    address: "a:1".into(),
                    fingerprint: one
                },
                Entry {
                    line: 2,
                    address: "b:2".into(),
                    fingerprint: two
                }
            ]
        );
        fs::write(&path, "# mine\n\na:1 SHA256:nothex\n").unwrap();
        let e = lookup(&path, "a:1").unwrap_err().to_string();
        assert!(e.contains("known_hosts:3"), "{e}");
        assert!(entries(&path).is_err());
    }

    #[test]
    fn removing_keeps_comments_and_the_other_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        let (one, two) = (Fingerprint::of(b"one"), Fingerprint::of(b"two"));
        fs::write(
            &path,
            format!("# servers\nbox:8080 {one}\n\nbox:8090 {two}\nother:8080 {one}\n"),
        )
        .unwrap();
        let removed = remove(&path, |e| e.address == "box:8090").unwrap();
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].line, 4);
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("# servers\nbox:8080 {one}\n\nother:8080 {one}\n")
        );
        assert!(remove(&path, |e| e.address == "none:1").unwrap().is_empty());
        assert_eq!(lookup(&path, "box:8090").unwrap(), Known::Unknown);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no file left over"
        );
    }
}
