//! The server's view of its root: directory handles walked one component at a time with
//! no-follow opens, so there is no window between checking a name and opening it.
//!
//! One API, [`Dir`], over two implementations:
//!
//! - Unix (`unix.rs`): `cap-std`'s directory handles, which nothing opened through them can
//!   leave (`openat2` with `RESOLVE_BENEATH` where Linux has it), with no-follow opens.
//! - Windows (`windows.rs`): `NtCreateFile` relative to directory handles, and renames,
//!   removals and listings on handles. `cap-std` is not used there because on Windows it lists,
//!   renames, removes and creates directories through a full path rebuilt from the handle
//!   (`GetFinalPathNameByHandle`, then the path call): a junction swapped into that path between
//!   the two calls would redirect the call outside the root, which the handle-relative calls
//!   rule out. Its locks differ too: `File::try_lock` locks the whole file, and Windows' locks
//!   are mandatory, so a lock would stop other handles from reading the data.
//!
//! What does not depend on the system is here: the names of the server's own files, partial
//! uploads and the records of their names ([`partials`]), and the sweep of what uploads leave
//! behind ([`sweep`]).

use std::borrow::Cow;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::name::{RESERVED_PREFIX, RemotePath};

pub use unstick_core::files::{EntryKind, EntryMeta};

mod partials;
mod sweep;
pub use partials::{
    ReservedKind, partial_name, read_record, recorded_name, remove_record, write_record,
};
pub use sweep::{SweepReport, SweepRules};

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::{
    Dir, RawName, file_meta, is_private_regular_file, is_unusable_entry, raw_name_bytes, try_lock,
};

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::{
    Dir, RawName, file_meta, is_private_regular_file, is_unusable_entry, raw_name_bytes, try_lock,
};

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

/// A fresh hidden name for a temporary file.
pub fn temp_name() -> String {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{TEMP_PREFIX}{}-{n}-{nanos:08x}", std::process::id())
}

/// Whether the temporary file `name` was made by this process (its pid follows the prefix).
pub fn made_by_this_process(name: &str) -> bool {
    name.strip_prefix(TEMP_PREFIX)
        .and_then(|rest| rest.split('-').next())
        .is_some_and(|pid| pid == std::process::id().to_string())
}

/// What a listing shows of an entry whose name starts with the reserved prefix, given the rest
/// of its name: a partial upload, under the name it will take (its kind
/// [`EntryKind::Partial`]; a hashed partial's name comes from its record), or nothing
/// (temporary files, records, a hashed partial without a valid record).
pub fn listed_reserved<'a>(
    dir: &Dir,
    rest: &'a [u8],
    meta: EntryMeta,
) -> Option<(Cow<'a, [u8]>, EntryMeta)> {
    if meta.kind != EntryKind::File {
        return None;
    }
    let meta = EntryMeta {
        kind: EntryKind::Partial,
        ..meta
    };
    match ReservedKind::of(rest) {
        ReservedKind::PlainPartial(name) => Some((Cow::Borrowed(name), meta)),
        ReservedKind::HashedPartial => {
            let partial = format!("{RESERVED_PREFIX}{}", std::str::from_utf8(rest).ok()?);
            let name = recorded_name(dir, &partial)?;
            Some((Cow::Owned(name.into_bytes()), meta))
        }
        ReservedKind::Temporary | ReservedKind::Record | ReservedKind::Unknown => None,
    }
}
