//! A file's mode and modification time, as `put -p` and `get -p` keep them: read from a local
//! file's metadata, and applied to an open file (the server's staging file before it is
//! committed, the client's partial download before it is put in place), through its handle.
//!
//! Only the permission bits within `MODE_BITS` (0o777) are ever applied: never set-user-ID,
//! set-group-ID or sticky. Windows has no such bits; there the mode is neither read nor
//! applied, and only the time is kept.

use std::fs::{File, FileTimes, Metadata};
use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use unstick_core::files::FileAttributes;
#[cfg(unix)]
use unstick_core::files::MODE_BITS;

/// The mode and modification time of a local file, to be kept.
pub(crate) fn of(meta: &Metadata) -> FileAttributes {
    #[cfg(unix)]
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        Some(meta.permissions().mode() & MODE_BITS)
    };
    #[cfg(not(unix))]
    let mode = None;
    FileAttributes {
        mode,
        mtime: meta.modified().ok().and_then(seconds_since_epoch),
    }
}

/// Seconds from the Unix epoch to `at` (negative before it), whole seconds towards the past.
fn seconds_since_epoch(at: SystemTime) -> Option<i64> {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).ok(),
        Err(before) => {
            let before = before.duration();
            let whole = i64::try_from(before.as_secs()).ok()?;
            Some(if before.subsec_nanos() > 0 {
                -whole - 1
            } else {
                -whole
            })
        }
    }
}

/// The instant `seconds` after the Unix epoch (before it when negative).
fn instant_of(seconds: i64) -> Option<SystemTime> {
    let span = Duration::from_secs(seconds.unsigned_abs());
    if seconds >= 0 {
        UNIX_EPOCH.checked_add(span)
    } else {
        UNIX_EPOCH.checked_sub(span)
    }
}

/// Gives the open `file` the attributes in `keep` (each when there is one): its permission
/// bits within `MODE_BITS` (on Unix), then its modification time.
pub(crate) fn apply(file: &File, keep: FileAttributes) -> io::Result<()> {
    #[cfg(unix)]
    if let Some(mode) = keep.mode {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(mode & MODE_BITS))?;
    }
    if let Some(mtime) = keep.mtime {
        let at = instant_of(mtime).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("modification time {mtime} is out of this system's range"),
            )
        })?;
        file.set_times(FileTimes::new().set_modified(at))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_through_seconds_either_side_of_the_epoch() {
        for seconds in [0, 1, 1_700_000_000, -1, -86_400] {
            assert_eq!(
                instant_of(seconds).and_then(seconds_since_epoch),
                Some(seconds)
            );
        }
        // A time between two seconds counts as the earlier one.
        let half_before = UNIX_EPOCH - Duration::from_millis(500);
        assert_eq!(seconds_since_epoch(half_before), Some(-1));
    }

    #[cfg(unix)]
    #[test]
    fn only_permission_bits_are_applied_and_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create(&path).unwrap();
        let keep = FileAttributes {
            mode: Some(0o4755),
            mtime: Some(1_234_567_890),
        };
        apply(&file, keep).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
        assert_eq!(
            of(&meta),
            FileAttributes {
                mode: Some(0o755),
                mtime: Some(1_234_567_890),
            }
        );
    }
}
