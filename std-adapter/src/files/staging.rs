//! Atomic uploads: where an upload's bytes go before they take their final name (the name's
//! resumable partial, or a unique temporary file), and the commit: sync, rename over the final
//! name, sync the directory. Which upload may resume, and whether its prefix matches, is the
//! core session's decision; this module only holds the files.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};

use unstick_core::files::{FileAttributes, PartialState};

use super::tree::{
    Dir, file_meta, is_private_regular_file, is_unusable_entry, partial_name, remove_record,
    temp_name, try_lock, write_record,
};

/// How often staging tries again when a race with another upload changed what is at the
/// partial's name; then it settles for a temporary file (or calls the partial busy).
const ATTEMPTS: usize = 8;

/// Why an upload could not be staged.
#[derive(Debug)]
pub(super) enum StageError {
    /// The file system failed.
    Io(io::Error),
    /// The partial's name holds something that is not the server's own staging file (a link,
    /// a directory, another user's file: placed there by whoever else can write in the
    /// directory), and it could not be removed.
    Foreign {
        /// The staging file's name in its directory.
        staging_name: String,
        /// Why it could not be removed.
        cause: io::Error,
    },
}

impl From<io::Error> for StageError {
    fn from(e: io::Error) -> Self {
        StageError::Io(e)
    }
}

/// The partial upload of a name, for a resume.
pub(super) enum Resumable {
    /// Locked and checked, to be continued.
    Ready(Staging),
    /// Another running upload holds it.
    InUse,
    /// There is none (or what there was is not the server's own, and was removed).
    Absent,
}

/// What [`clear_idle`] found at a partial's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cleared {
    /// Something idle was there and is removed.
    Removed,
    /// A running upload holds it; it stays.
    InUse,
    /// Nothing was there.
    Absent,
}

/// Removes what holds the partial name `partial` in `dir` (the partial of an upload that broke
/// off, or anything someone else placed there) unless a running upload holds its lock. A file
/// is only opened, locked and unlinked, never written.
fn clear_idle(dir: &Dir, partial: &str) -> Result<Cleared, StageError> {
    match dir.open_rw(partial) {
        Ok(file) => {
            if !try_lock(&file)? {
                return Ok(Cleared::InUse);
            }
            if !dir.is_same_file(partial, &file)? {
                return Ok(Cleared::Absent); // committed or removed meanwhile
            }
            remove_record(dir, partial);
            match dir.unlink(partial, false) {
                Ok(()) => Ok(Cleared::Removed),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Cleared::Absent),
                Err(cause) => Err(StageError::Foreign {
                    staging_name: partial.to_owned(),
                    cause,
                }),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Cleared::Absent),
        // Only what cannot be a staging file is removed unlocked: an error of the moment (out
        // of descriptors, memory, I/O) says nothing of the entry, which may be a running
        // upload's partial.
        Err(e) if is_unusable_entry(&e) => {
            remove_foreign(dir, partial, e).map(|()| Cleared::Removed)
        }
        Err(e) => Err(StageError::Io(e)),
    }
}

/// Removes the entry at `partial`, which is not a staging file the server can use (`why` says
/// what was wrong with it): a file, link or FIFO is unlinked, an empty directory removed. When
/// that fails too, the upload is refused with [`StageError::Foreign`].
fn remove_foreign(dir: &Dir, partial: &str, why: io::Error) -> Result<(), StageError> {
    remove_record(dir, partial);
    let removed = dir
        .unlink(partial, false)
        .or_else(|_| dir.unlink(partial, true));
    match removed {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(cause) => {
            tracing::warn!(
                server = "ftp",
                staging = partial,
                found = %why,
                error = %cause,
                "a staging name holds something the server did not make, and it cannot be removed"
            );
            Err(StageError::Foreign {
                staging_name: partial.to_owned(),
                cause,
            })
        }
    }
}

/// What a file at a partial's name that is not the server's own is.
fn foreign_file() -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        "not a regular file with one link, owned by the server and writable by it alone",
    )
}

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

    /// Staging for a new upload of `name`: its partial file, created afresh and exclusively
    /// (whatever held the partial's name before is removed first, never written through), or a
    /// temporary file if another upload of the same name is running.
    pub(super) fn fresh(dir: Dir, name: &str) -> Result<Staging, StageError> {
        let partial = partial_name(name);
        for _ in 0..ATTEMPTS {
            match dir.create_new(&partial) {
                Ok(file) => {
                    // Someone may have locked it between our create and our lock (a resume of
                    // the same name, or a sweep); it is theirs then.
                    if !try_lock(&file)? || !dir.is_same_file(&partial, &file)? {
                        break;
                    }
                    return Self::held_partial(&dir, file, partial, name);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    match clear_idle(&dir, &partial)? {
                        Cleared::InUse => break,
                        Cleared::Removed | Cleared::Absent => continue,
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Self::temporary(dir)?)
    }

    /// The partial `file` of `name` (at `partial` in `dir`), which this upload has locked, as
    /// its staging; its record is written (again, if a crash lost it), so that it is listed.
    fn held_partial(
        dir: &Dir,
        file: File,
        partial: String,
        name: &str,
    ) -> Result<Staging, StageError> {
        let staging = Staging {
            dir: dir.duplicate()?,
            file,
            name: partial,
            kind: StagingKind::Partial,
            on_drop: OnDrop::Remove,
        };
        write_record(&staging.dir, name)?;
        Ok(staging)
    }

    /// The partial upload of `name`, locked, to be continued. Only a file the server can trust
    /// as its own is continued (a regular file with one link, its user's, writable by nobody
    /// else: see [`is_private_regular_file`]); anything else under the partial's name was put
    /// there by someone else, and is removed, never written through.
    pub(super) fn resume(dir: &Dir, name: &str) -> Result<Resumable, StageError> {
        let partial = partial_name(name);
        for _ in 0..ATTEMPTS {
            let file = match dir.open_rw(&partial) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Resumable::Absent),
                Err(e) if is_unusable_entry(&e) => {
                    remove_foreign(dir, &partial, e)?;
                    return Ok(Resumable::Absent);
                }
                Err(e) => return Err(e.into()),
            };
            if !try_lock(&file)? {
                return Ok(Resumable::InUse);
            }
            // The file may have been committed (renamed away) between our open and our lock.
            if !dir.is_same_file(&partial, &file)? {
                continue;
            }
            if !is_private_regular_file(&file)? {
                remove_foreign(dir, &partial, foreign_file())?;
                return Ok(Resumable::Absent);
            }
            return Self::held_partial(dir, file, partial, name).map(Resumable::Ready);
        }
        Ok(Resumable::InUse)
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

    /// Removes the partial upload of `name` (and whatever else holds its name) unless a running
    /// upload holds it.
    pub(super) fn discard_idle_partial(dir: &Dir, name: &str) -> PartialState {
        match clear_idle(dir, &partial_name(name)) {
            Ok(Cleared::Removed) => PartialState::Removed,
            Ok(Cleared::InUse) => PartialState::InUse,
            Ok(Cleared::Absent) | Err(_) => PartialState::Absent,
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
    pub(super) fn commit(mut self, final_name: &str, keep: FileAttributes) -> io::Result<()> {
        super::attributes::apply(&self.file, keep)?;
        self.file.sync_all()?;
        // Never rename whatever else now has the staging name (the lock makes that impossible
        // for our own uploads; this guards against anyone else touching the root).
        if !self.dir.is_same_file(&self.name, &self.file)? {
            return Err(io::Error::other(
                "the staging file was replaced by someone else during the upload",
            ));
        }
        // The record goes first, while the lock still binds the partial's name to us: a record
        // never outlives its partial.
        remove_record(&self.dir, &self.name);
        self.dir.rename(&self.name, final_name)?;
        self.on_drop = OnDrop::Leave;
        self.dir.sync()
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // Only while the name is still this file: were it removed meanwhile (an administrator,
        // a crash's sweep) and taken by another upload, that upload's file must stay.
        if self.on_drop == OnDrop::Remove
            && self
                .dir
                .is_same_file(&self.name, &self.file)
                .unwrap_or(false)
        {
            remove_record(&self.dir, &self.name);
            let _ = self.dir.unlink(&self.name, false);
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::*;

    /// A root inside a temporary directory, and a file outside it that must never change.
    fn setup() -> (tempfile::TempDir, Dir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"precious").unwrap();
        let root = Dir::open_root(&root).unwrap();
        (dir, root, outside)
    }

    fn partial_path(dir: &Path, name: &str) -> std::path::PathBuf {
        dir.join("root").join(partial_name(name))
    }

    #[test]
    fn a_planted_hard_link_is_never_written_through() {
        let (dir, root, outside) = setup();
        for name in ["f", &"long".repeat(70)] {
            std::fs::hard_link(&outside, partial_path(dir.path(), name)).unwrap();
            // A new upload that fails (say, its digest mismatches): its bytes went to a file of
            // its own, and the planted link is gone.
            let mut staging = Staging::fresh(root.duplicate().unwrap(), name).unwrap();
            staging.file.write_all(b"attacker's bytes").unwrap();
            drop(staging);
            assert_eq!(std::fs::read(&outside).unwrap(), b"precious");
            assert!(!partial_path(dir.path(), name).exists());

            // A resume finds nothing of the server's own to continue: the link is removed.
            std::fs::hard_link(&outside, partial_path(dir.path(), name)).unwrap();
            assert!(matches!(
                Staging::resume(&root, name).unwrap(),
                Resumable::Absent
            ));
            assert!(!partial_path(dir.path(), name).exists());
            assert_eq!(std::fs::read(&outside).unwrap(), b"precious");
        }
        assert_eq!(std::fs::metadata(&outside).unwrap().len(), 8);
    }

    #[test]
    fn only_a_private_partial_of_the_servers_own_is_resumed() {
        let (dir, root, outside) = setup();
        // The server's own partial, kept when an upload broke off, is continued.
        let mut staging = Staging::fresh(root.duplicate().unwrap(), "ok").unwrap();
        staging.file.write_all(b"abc").unwrap();
        staging.keep_for_resume();
        drop(staging);
        let Resumable::Ready(resumed) = Staging::resume(&root, "ok").unwrap() else {
            panic!("the server's own partial was not resumed");
        };
        assert_eq!(resumed.len().unwrap(), 3);
        drop(resumed);

        // One that others may write (as a planted mode-0666 file is) is removed instead.
        let planted = partial_path(dir.path(), "shared");
        std::fs::write(&planted, b"abc").unwrap();
        std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(
            Staging::resume(&root, "shared").unwrap(),
            Resumable::Absent
        ));
        assert!(!planted.exists());

        // A symbolic link is removed, not followed, and a new upload makes its own file.
        std::os::unix::fs::symlink(&outside, partial_path(dir.path(), "link")).unwrap();
        assert!(matches!(
            Staging::resume(&root, "link").unwrap(),
            Resumable::Absent
        ));
        std::os::unix::fs::symlink(&outside, partial_path(dir.path(), "link")).unwrap();
        let mut staging = Staging::fresh(root.duplicate().unwrap(), "link").unwrap();
        staging.file.write_all(b"new").unwrap();
        staging.commit("link", FileAttributes::NONE).unwrap();
        assert_eq!(std::fs::read(&outside).unwrap(), b"precious");
        let committed = std::fs::symlink_metadata(dir.path().join("root/link")).unwrap();
        assert!(committed.is_file());
        assert_eq!(std::os::unix::fs::MetadataExt::nlink(&committed), 1);
    }

    #[test]
    fn what_cannot_be_removed_refuses_the_upload_with_its_reason() {
        let (dir, root, _outside) = setup();
        let planted = partial_path(dir.path(), "d");
        std::fs::create_dir(&planted).unwrap();
        std::fs::write(planted.join("inside"), b"x").unwrap();
        let Err(StageError::Foreign {
            staging_name,
            cause,
        }) = Staging::fresh(root.duplicate().unwrap(), "d")
        else {
            panic!("a non-empty directory at the partial's name was not refused");
        };
        assert_eq!(staging_name, partial_name("d"));
        assert_eq!(cause.kind(), io::ErrorKind::DirectoryNotEmpty, "{cause}");
        assert!(matches!(
            Staging::resume(&root, "d"),
            Err(StageError::Foreign { .. })
        ));
        // An empty one is simply removed.
        std::fs::remove_file(planted.join("inside")).unwrap();
        let staging = Staging::fresh(root.duplicate().unwrap(), "d").unwrap();
        assert!(std::fs::symlink_metadata(&planted).unwrap().is_file());
        drop(staging);
    }
}
