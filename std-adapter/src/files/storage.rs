//! The one place where file-system errors become the protocol's error codes.

use std::io;

use unstick_core::ErrorCode;
use unstick_core::session::{PeerText, Refusal};

use crate::system_error::SystemError;

/// What a file-system error means for a client, whichever system reported it.
enum Failure {
    /// Out of space, over a quota or a file-size limit.
    NoSpace,
    /// A component is a link (on Windows any reparse point), which is never followed.
    Link,
    /// A component is not a directory.
    NotADirectory,
    /// The name is a directory.
    IsADirectory,
    /// The directory is not empty.
    NotEmpty,
    /// The file system refuses the name itself.
    #[cfg(windows)]
    BadName,
    /// Anything else; the system's own words say what.
    Other,
}

/// The Unix errors (Linux, macOS and the BSDs all have these).
#[cfg(unix)]
fn failure_of(e: &io::Error) -> Failure {
    match e.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG) => Failure::NoSpace,
        Some(libc::ELOOP) => Failure::Link,
        Some(libc::ENOTDIR) => Failure::NotADirectory,
        Some(libc::EISDIR) => Failure::IsADirectory,
        Some(libc::ENOTEMPTY | libc::EEXIST) => Failure::NotEmpty,
        _ => Failure::Other,
    }
}

/// The Win32 errors (the jail turns `NTSTATUS` into these), and the kinds it sets itself.
#[cfg(windows)]
fn failure_of(e: &io::Error) -> Failure {
    use windows_sys::Win32::Foundation::{
        ERROR_CANT_ACCESS_FILE, ERROR_CANT_RESOLVE_FILENAME, ERROR_DIR_NOT_EMPTY, ERROR_DIRECTORY,
        ERROR_DISK_FULL, ERROR_DISK_QUOTA_EXCEEDED, ERROR_FILE_TOO_LARGE, ERROR_HANDLE_DISK_FULL,
        ERROR_INVALID_NAME, ERROR_STOPPED_ON_SYMLINK,
    };
    match e.raw_os_error().map(|code| code as u32) {
        Some(
            ERROR_DISK_FULL
            | ERROR_HANDLE_DISK_FULL
            | ERROR_DISK_QUOTA_EXCEEDED
            | ERROR_FILE_TOO_LARGE,
        ) => Failure::NoSpace,
        Some(ERROR_STOPPED_ON_SYMLINK | ERROR_CANT_ACCESS_FILE | ERROR_CANT_RESOLVE_FILENAME) => {
            Failure::Link
        }
        Some(ERROR_DIRECTORY) => Failure::NotADirectory,
        Some(ERROR_DIR_NOT_EMPTY) => Failure::NotEmpty,
        Some(ERROR_INVALID_NAME) => Failure::BadName,
        _ => match e.kind() {
            io::ErrorKind::NotADirectory => Failure::NotADirectory,
            io::ErrorKind::IsADirectory => Failure::IsADirectory,
            io::ErrorKind::DirectoryNotEmpty => Failure::NotEmpty,
            _ => Failure::Other,
        },
    }
}

#[cfg(unix)]
const LINK_HINT: &str = "a component is a symbolic link; links are never followed";
#[cfg(windows)]
const LINK_HINT: &str = "a component is a reparse point (symbolic link, junction, mount point); they are never followed";

/// The refusal for a file-system error met while handling `what` (a client's path, escaped
/// here). The system's own words are added where the code alone does not say enough (which
/// limit, which failure).
pub(super) fn storage_refusal(e: &io::Error, what: &str) -> Refusal {
    let what = PeerText::new(what);
    let (code, hint) = match failure_of(e) {
        Failure::NoSpace => {
            let hint = "the server is out of space (or over a file-size limit); the partial data was removed";
            return Refusal::new(
                ErrorCode::NoSpace,
                format_args!("{what}: {hint} ({})", SystemError(e)),
            );
        }
        Failure::Link => (ErrorCode::BadPath, LINK_HINT),
        Failure::NotADirectory => (
            ErrorCode::BadPath,
            "a component is not a directory (or is a symbolic link, which is never followed)",
        ),
        Failure::IsADirectory => (ErrorCode::BadPath, "the name is a directory"),
        Failure::NotEmpty => (
            ErrorCode::NotEmpty,
            "the directory is not empty (interrupted uploads held for resume count too; delete them by name)",
        ),
        #[cfg(windows)]
        Failure::BadName => (
            ErrorCode::BadPath,
            "the server's file system does not take this name",
        ),
        Failure::Other if e.kind() == io::ErrorKind::InvalidInput => (
            ErrorCode::BadPath,
            "the name is not a regular file (a FIFO, socket or device)",
        ),
        Failure::Other if e.kind() == io::ErrorKind::NotFound => {
            (ErrorCode::NotFound, "no such file or directory")
        }
        Failure::Other => {
            let hint = "the server could not access its storage";
            return Refusal::new(
                ErrorCode::StorageError,
                format_args!("{what}: {hint} ({})", SystemError(e)),
            );
        }
    };
    Refusal::new(code, format_args!("{what}: {hint}"))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn os_errors_map_to_codes() {
        let table = [
            (
                io::Error::from_raw_os_error(libc::ENOSPC),
                ErrorCode::NoSpace,
            ),
            (
                io::Error::from_raw_os_error(libc::ELOOP),
                ErrorCode::BadPath,
            ),
            (
                io::Error::from_raw_os_error(libc::ENOTDIR),
                ErrorCode::BadPath,
            ),
            (
                io::Error::from_raw_os_error(libc::ENOTEMPTY),
                ErrorCode::NotEmpty,
            ),
            (
                io::Error::from(io::ErrorKind::NotFound),
                ErrorCode::NotFound,
            ),
            (
                io::Error::from_raw_os_error(libc::EIO),
                ErrorCode::StorageError,
            ),
        ];
        for (e, code) in table {
            let refusal = storage_refusal(&e, "a/b");
            assert_eq!(refusal.code, code, "{e}");
            assert!(refusal.message.starts_with("a/b: "), "{}", refusal.message);
        }
    }
}
