//! The server's view of its root: directory handles walked one component at a time with
//! no-follow opens, so there is no window between checking a name and opening it.
//!
//! One API, [`Dir`], over each system's own calls: `openat` and friends on Unix (`unix.rs`),
//! `NtCreateFile` relative to directory handles on Windows (`windows.rs`). What does not depend
//! on the system (the names of the server's own files) is here.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::name::{MAX_COMPONENT_LEN, RESERVED_PREFIX, RemotePath};

pub use unstick_core::files::{EntryKind, EntryMeta};

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::{Dir, file_meta, try_lock};

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::{Dir, file_meta, try_lock};

/// Walking paths, the same on every system: one component at a time, each opened relative to
/// its parent by the system's `Dir::subdir`.
impl Dir {
    /// Walks from this directory to the directory holding `path`'s last component.
    pub fn walk_to_parent(&self, path: &RemotePath, create: bool) -> io::Result<Dir> {
        let mut dir = self.duplicate()?;
        for component in path.parents() {
            dir = dir.subdir(component, create)?;
        }
        Ok(dir)
    }

    /// Walks from this directory to the directory `path` (`None` is this directory).
    pub fn walk_to_dir(&self, path: Option<&RemotePath>) -> io::Result<Dir> {
        match path {
            None => self.duplicate(),
            Some(path) => self
                .walk_to_parent(path, false)?
                .subdir(path.file_name(), false),
        }
    }
}

/// Whether to create a file that does not exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Create {
    /// Create it, empty.
    IfMissing,
    /// Fail with `NotFound`.
    Never,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Prefix of the temporary files uploads are staged in.
const TEMP_PREFIX: &str = ".unstick-tmp-";

fn is_temp_name(name: &[u8]) -> bool {
    name.starts_with(TEMP_PREFIX.as_bytes())
}

/// A fresh hidden name for a temporary file.
pub fn temp_name() -> String {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{TEMP_PREFIX}{}-{n}-{nanos:08x}", std::process::id())
}

/// What a listing shows of an entry whose name starts with the reserved prefix, given the rest
/// of its name: a partial upload, under the name it will take (its kind [`EntryKind::Partial`]),
/// or nothing (temporary files; a partial whose name was too long and is kept as a digest).
pub fn listed_reserved(rest: &[u8], meta: EntryMeta) -> Option<(&[u8], EntryMeta)> {
    const PARTIAL: &[u8] = b"partial-";
    let is_partial = rest.len() > PARTIAL.len()
        && rest[..PARTIAL.len()].eq_ignore_ascii_case(PARTIAL)
        && meta.kind == EntryKind::File;
    is_partial.then(|| {
        let meta = EntryMeta {
            kind: EntryKind::Partial,
            ..meta
        };
        (&rest[PARTIAL.len()..], meta)
    })
}

/// The hidden name under which a resumable upload of `name` grows: `.unstick-partial-<name>`,
/// or `.unstick-partial~<XXH3-128 of name>` when that would be longer than a component may be.
pub fn partial_name(name: &str) -> String {
    let plain = format!("{RESERVED_PREFIX}partial-{name}");
    if plain.len() <= MAX_COMPONENT_LEN {
        return plain;
    }
    let digest = unstick_core::digest_of(unstick_core::Algorithms::XXH3, name.as_bytes());
    let hex = digest
        .get(unstick_core::Algorithm::Xxh3)
        .map(|c| c.to_hex().to_string())
        .unwrap_or_default();
    // `~` instead of `-`: no name, however chosen, has the same partial as a long name.
    format!("{RESERVED_PREFIX}partial~{hex}")
}
