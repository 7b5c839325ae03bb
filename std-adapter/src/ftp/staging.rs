//! Atomic uploads: where an upload's bytes go before they take their final name (the name's
//! resumable partial, or a unique temporary file), how a resumed upload's prefix is checked,
//! and the commit: sync, rename over the final name, sync the directory.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};

use unstick_core::{Algorithm, BodyHasher, Checksum};

use super::transfer::hash_prefix;
use super::tree::{Create, Dir, file_meta, partial_name, temp_name, try_lock};
use crate::server::{ErrorCode, Refusal};

/// A file being written before it takes its final name: either the name's resumable partial
/// (locked while in use) or a unique temporary file. Removed on drop unless committed or kept.
pub(super) struct Staging<'d> {
    dir: &'d Dir,
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

impl<'d> Staging<'d> {
    /// A unique temporary file in `dir`, locked so that a cleanup of stale temporary files
    /// (at the start of another server on the same root) leaves it alone.
    pub(super) fn temporary(dir: &'d Dir) -> io::Result<Staging<'d>> {
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
    fn lock_partial(dir: &'d Dir, name: &str, create: Create) -> io::Result<Option<Staging<'d>>> {
        let partial = partial_name(name);
        for _ in 0..8 {
            let file = dir.open_rw(&partial, create)?;
            if !try_lock(&file)? {
                return Ok(None);
            }
            // The file may have been committed (renamed away) between our open and our lock.
            if dir.is_same_file(&partial, &file)? {
                return Ok(Some(Staging {
                    dir,
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
    pub(super) fn fresh(dir: &'d Dir, name: &str) -> io::Result<Staging<'d>> {
        match Self::lock_partial(dir, name, Create::IfMissing)? {
            Some(staging) => {
                staging.file.set_len(0)?;
                Ok(staging)
            }
            None => Self::temporary(dir),
        }
    }

    /// Staging that continues the partial upload of `name` at `offset`, after checking that
    /// its first `offset` bytes have the client's digest. A partial that does not match is
    /// discarded, never extended.
    pub(super) fn resume(
        dir: &'d Dir,
        name: &str,
        offset: u64,
        algorithm: Algorithm,
        prefix: Checksum,
        buffer: usize,
    ) -> Result<(Staging<'d>, BodyHasher), Refusal> {
        let locked = match Self::lock_partial(dir, name, Create::Never) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Refusal::new(
                    ErrorCode::PartialMismatch,
                    format!(
                        "{name}: the server holds no partial upload of this name; upload from the start"
                    ),
                ));
            }
            other => other.map_err(|e| Refusal::storage(&e, name))?,
        };
        let mut staging = locked.ok_or_else(|| {
            Refusal::new(
                ErrorCode::Busy,
                format!("{name}: another upload of this name is in progress"),
            )
        })?;
        let have = file_meta(&staging.file).map(|m| m.size).unwrap_or(0);
        if have < offset {
            staging.on_drop = OnDrop::Leave; // keep what there is; the client asked for too much
            return Err(Refusal::new(
                ErrorCode::PartialMismatch,
                format!(
                    "{name}: the server holds {have} bytes of this upload, fewer than the resume offset {offset}"
                ),
            ));
        }
        let mut buf = vec![0u8; buffer.clamp(64 * 1024, 4 << 20)];
        let hasher = hash_prefix(&mut staging.file, offset, algorithm, &mut buf)
            .map_err(|e| Refusal::storage(&e, name))?;
        if hasher.clone().finish().get(algorithm) != Some(prefix) {
            // Corrupted (or from another file): dropping the staging removes it.
            return Err(Refusal::new(
                ErrorCode::PartialMismatch,
                format!(
                    "{name}: the server's partial upload does not match the first {offset} bytes of the client's file; it was discarded, upload again from the start"
                ),
            ));
        }
        staging
            .file
            .set_len(offset)
            .and_then(|_| staging.file.seek(SeekFrom::Start(offset)).map(drop))
            .map_err(|e| Refusal::storage(&e, name))?;
        Ok((staging, hasher))
    }

    /// Removes the partial upload of `name` unless a running upload holds it.
    pub(super) fn discard_idle_partial(dir: &Dir, name: &str) -> PartialUpload {
        match Staging::lock_partial(dir, name, Create::Never) {
            Ok(Some(idle)) => {
                drop(idle); // an uncommitted staging file removes itself
                PartialUpload::Removed
            }
            Ok(None) => PartialUpload::InUse,
            Err(_) => PartialUpload::Absent,
        }
    }

    /// Leaves a resumable partial in place (a torn upload); a temporary file is still removed.
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

/// What became of a name's partial upload when the name was deleted.
pub(super) enum PartialUpload {
    /// It was idle (left by an upload that broke off) and is gone.
    Removed,
    /// A running upload holds it; it stays.
    InUse,
    /// There is none (or it cannot be opened).
    Absent,
}

impl Drop for Staging<'_> {
    fn drop(&mut self) {
        if self.on_drop == OnDrop::Remove {
            let _ = self.dir.unlink(&self.name, false);
        }
    }
}
