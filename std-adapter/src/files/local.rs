//! The client's own files: the file an upload reads, the partial download it writes, and the
//! rename that puts a verified download in place. Each system's way of not being led astray by
//! a FIFO or a link planted under the name is here.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use super::tree::Create;

/// Opens the local file to upload for reading; the open does not wait on a FIFO.
#[cfg(unix)]
pub(super) fn open_for_upload(local: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK changes nothing for a regular file's reads.
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(local)
}

/// Opens the local file to upload for reading (Windows has no FIFOs in its file systems; a
/// pipe or device path given on purpose is refused by the caller's regular-file check).
#[cfg(windows)]
pub(super) fn open_for_upload(local: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).open(local)
}

/// Opens the partial download `part` for reading and writing, never through a symbolic link
/// (one planted under that name cannot redirect the download).
#[cfg(unix)]
pub(super) fn open_partial_download(part: &Path, create: Create) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create == Create::IfMissing)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW)
        .open(part)
}

/// Opens the partial download `part` for reading and writing, never through a reparse point
/// (symbolic link, junction): it is opened itself (`FILE_FLAG_OPEN_REPARSE_POINT`) and refused,
/// so one planted under that name cannot redirect the download.
#[cfg(windows)]
pub(super) fn open_partial_download(part: &Path, create: Create) -> io::Result<File> {
    use std::os::windows::fs::{MetadataExt, OpenOptionsExt};
    use windows_sys::Win32::Storage::FileSystem::{
        FILE_ATTRIBUTE_REPARSE_POINT, FILE_FLAG_OPEN_REPARSE_POINT,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create == Create::IfMissing)
        .truncate(false)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
        .open(part)?;
    let meta = file.metadata()?;
    if meta.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT != 0 || !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the partial download is a link or not a regular file; remove it and retry",
        ));
    }
    Ok(file)
}

/// Renames the verified download `part` to `local`, replacing it, then syncs the directory so
/// that the rename survives a crash.
#[cfg(unix)]
pub(super) fn replace_with_download(part: &Path, local: &Path) -> io::Result<()> {
    std::fs::rename(part, local)?;
    let parent = match local.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if let Ok(dir) = File::open(parent) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Renames the verified download `part` to `local`, replacing it, with `MoveFileExW`
/// (`MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH`: the call returns once the rename is
/// on disk, which is what syncing the directory does on Unix).
#[cfg(windows)]
pub(super) fn replace_with_download(part: &Path, local: &Path) -> io::Result<()> {
    use std::os::windows::ffi::OsStrExt;
    use windows_sys::Win32::Storage::FileSystem::{
        MOVEFILE_REPLACE_EXISTING, MOVEFILE_WRITE_THROUGH, MoveFileExW,
    };
    let wide = |p: &Path| -> io::Result<Vec<u16>> {
        let mut w: Vec<u16> = p.as_os_str().encode_wide().collect();
        if w.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the path contains a NUL character",
            ));
        }
        w.push(0);
        Ok(w)
    };
    let (from, to) = (wide(part)?, wide(local)?);
    // SAFETY: both are NUL-terminated UTF-16 strings that outlive the call.
    let ok = unsafe {
        MoveFileExW(
            from.as_ptr(),
            to.as_ptr(),
            MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Moves a verified download from `part` to `local` only if no file is there: a hard link
/// (which fails if the name is taken, with no window for another writer), then the partial
/// name removed. Where the file system has no hard links, a check then a rename (a race with
/// another writer of the same name is then possible, and is the one thing not guarded).
pub(super) fn place_download_new(part: &Path, local: &Path) -> io::Result<()> {
    match std::fs::hard_link(part, local) {
        Ok(()) => {
            std::fs::remove_file(part)?;
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(_) if std::fs::symlink_metadata(local).is_ok() => {
            Err(io::Error::from(io::ErrorKind::AlreadyExists))
        }
        Err(_) => replace_with_download(part, local),
    }
}
