//! Atomic uploads: where an upload's bytes go before they take their final name (the name's
//! resumable partial, or a unique temporary file), and the commit: sync, rename over the final
//! name, sync the directory. Which upload may resume, and whether its prefix matches, is the
//! core session's decision; this module only holds the files.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};

use unstick_core::files::PartialState;

use super::tree::{Create, Dir, file_meta, partial_name, temp_name, try_lock};

/// A file being written before it takes its final name: either the name's resumable partial
/// (locked while in use) or a unique temporary file. Removed on drop unless committed or kept.
pub(super) struct Staging {
    dir: Dir,
    /// The file being written.
    pub(super) file: File,
    name: String,
    kind: StagingKind,
    on_drop: OnDrop,
}

/// Which file a [`Staging`] is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StagingKind {
    /// The name's partial upload, `.unstick-partial-<name>`: locked while in use, kept when the
    /// connection breaks so that the upload can resume.
    Partial,
    /// A unique `.unstick-tmp-*` file (the partial was held by another upload, or a seed
    /// upload): never resumed.
    Temporary,
}

/// What dropping a [`Staging`] does with its file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnDrop {
    /// Remove it: the upload failed.
    Remove,
    /// Leave it: it was committed (renamed away) or kept for a resume.
    Leave,
}

impl Staging {
    /// A unique temporary file in `dir`, locked so that a cleanup of stale temporary files
    /// (at the start of another server on the same root) leaves it alone.
    pub(super) fn temporary(dir: Dir) -> io::Result<Staging> {
        loop {
            let name = temp_name();
            match dir.create_new(&name) {
                Ok(file) => {
                    // Dropped on error, which removes the file.
                    let staging = Staging {
                        dir,
                        file,
                        name,
                        kind: StagingKind::Temporary,
                        on_drop: OnDrop::Remove,
                    };
                    // A file we just created exclusively is locked by nobody else.
                    try_lock(&staging.file)?;
                    return Ok(staging);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Locks and opens the partial file of `name` (creating it if `create` says so); `None`
    /// when another upload holds it. Only the holder of this lock renames or removes the
    /// partial, so while it is held the name stays bound to the file.
    fn lock_partial(dir: &Dir, name: &str, create: Create) -> io::Result<Option<Staging>> {
        let partial = partial_name(name);
        for _ in 0..8 {
            let file = dir.open_rw(&partial, create)?;
            if !try_lock(&file)? {
                return Ok(None);
            }
            // The file may have been committed (renamed away) between our open and our lock.
            if dir.is_same_file(&partial, &file)? {
                return Ok(Some(Staging {
                    dir: dir.duplicate()?,
                    file,
                    name: partial,
                    kind: StagingKind::Partial,
                    on_drop: OnDrop::Remove,
                }));
            }
        }
        Ok(None)
    }

    /// Staging for a new upload of `name`: its partial file, emptied, or a temporary file if
    /// another upload of the same name is running.
    pub(super) fn fresh(dir: Dir, name: &str) -> io::Result<Staging> {
        match Self::lock_partial(&dir, name, Create::IfMissing)? {
            Some(staging) => {
                staging.file.set_len(0)?;
                Ok(staging)
            }
            None => Self::temporary(dir),
        }
    }

    /// The partial upload of `name`, locked, to be continued; `Ok(None)` when another upload
    /// holds it, a `NotFound` error when there is none.
    pub(super) fn partial(dir: &Dir, name: &str) -> io::Result<Option<Staging>> {
        Self::lock_partial(dir, name, Create::Never)
    }

    /// Bytes in the staging file.
    pub(super) fn len(&self) -> io::Result<u64> {
        file_meta(&self.file).map(|m| m.size)
    }

    /// Cuts the file to `len` bytes and writes on from there.
    pub(super) fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.file.seek(SeekFrom::Start(len)).map(drop)
    }

    /// Removes the partial upload of `name` unless a running upload holds it.
    pub(super) fn discard_idle_partial(dir: &Dir, name: &str) -> PartialState {
        match Staging::lock_partial(dir, name, Create::Never) {
            Ok(Some(idle)) => {
                drop(idle); // an uncommitted staging file removes itself
                PartialState::Removed
            }
            Ok(None) => PartialState::InUse,
            Err(_) => PartialState::Absent,
        }
    }

    /// Leaves a resumable partial in place; a temporary file is still removed.
    pub(super) fn keep_for_resume(&mut self) {
        if self.kind == StagingKind::Partial {
            let _ = self.file.sync_data();
            self.on_drop = OnDrop::Leave;
        }
    }

    /// Syncs the data, renames it to `final_name` (replacing any previous file atomically) and
    /// syncs the directory.
    pub(super) fn commit(mut self, final_name: &str) -> io::Result<()> {
        self.file.sync_all()?;
        // Never rename whatever else now has the staging name (the lock makes that impossible
        // for our own uploads; this guards against anyone else touching the root).
        if !self.dir.is_same_file(&self.name, &self.file)? {
            return Err(io::Error::other(
                "the staging file was replaced by someone else during the upload",
            ));
        }
        self.dir.rename(&self.name, final_name)?;
        self.on_drop = OnDrop::Leave;
        self.dir.sync()
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.on_drop == OnDrop::Remove {
            let _ = self.dir.unlink(&self.name, false);
        }
    }
}
