//! The one place where file-system errors become the protocol's error codes.

use std::io;

use unstick_core::ErrorCode;
use unstick_core::session::Refusal;

/// The refusal for a file-system error met while handling `what`. The system's own words are
/// added where the code alone does not say enough (which limit, which failure).
pub(super) fn storage_refusal(e: &io::Error, what: &str) -> Refusal {
    let (code, hint) = match e.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG) => {
            let hint = "the server is out of space (or over a file-size limit); the partial data was removed";
            return Refusal::new(ErrorCode::NoSpace, format_args!("{what}: {hint} ({e})"));
        }
        Some(libc::ELOOP) => (
            ErrorCode::BadPath,
            "a component is a symbolic link; links are never followed",
        ),
        Some(libc::ENOTDIR) => (
            ErrorCode::BadPath,
            "a component is not a directory (or is a symbolic link, which is never followed)",
        ),
        Some(libc::EISDIR) => (ErrorCode::BadPath, "the name is a directory"),
        Some(libc::ENOTEMPTY | libc::EEXIST) => (
            ErrorCode::BadRequest,
            "the directory is not empty (interrupted uploads held for resume count too; delete them by name)",
        ),
        _ if e.kind() == io::ErrorKind::InvalidInput => (
            ErrorCode::BadPath,
            "the name is not a regular file (a FIFO, socket or device)",
        ),
        _ if e.kind() == io::ErrorKind::NotFound => {
            (ErrorCode::NotFound, "no such file or directory")
        }
        _ => {
            let hint = "the server could not access its storage";
            return Refusal::new(
                ErrorCode::StorageError,
                format_args!("{what}: {hint} ({e})"),
            );
        }
    };
    Refusal::new(code, format_args!("{what}: {hint}"))
}

#[cfg(test)]
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
                ErrorCode::BadRequest,
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
