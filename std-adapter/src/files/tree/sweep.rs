//! The sweep of a root for what uploads leave behind: temporary files of uploads a crash cut
//! short, partial uploads nobody resumed within their allowed age, and hashed partials whose
//! record is gone (a crash between the two), which nothing could list or resume by name.
//!
//! The walk goes down with directory handles, each directory opened from its parent's handle
//! (never following a link), depth first. What it remembers is one level per directory on the
//! way down: the subdirectories still to visit there, and the level's handle for the most
//! recent levels and every [`OPEN_WINDOW`]-th one. A level whose handle was let go is reopened
//! from the nearest kept one above it (fewer than [`OPEN_WINDOW`] opens). So the cost is linear
//! in the entries, the memory grows with the depth (not with path length times count, as a
//! queue of full paths does), and the descriptors held stay far below any limit for any depth.

use std::fs::File;
use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::super::name::RESERVED_PREFIX;
use super::{
    Dir, EntryKind, EntryMeta, RawName, ReservedKind, file_meta, made_by_this_process,
    raw_name_bytes, read_record, remove_record, try_lock,
};

/// The most recent levels whose handles stay open; beyond them, one level in this many keeps
/// its handle, to reopen the others from.
const OPEN_WINDOW: usize = 64;

/// What a sweep removes.
#[derive(Clone, Copy, Debug)]
pub struct SweepRules {
    /// Partial uploads whose last write is older than this are removed.
    pub partial_max_age: Duration,
}

/// What a sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Temporary files removed (uploads cut short by a crash).
    pub temporaries: u64,
    /// Partial uploads removed because they were older than the allowed age.
    pub expired_partials: u64,
    /// Hashed partial uploads removed because their name record was missing.
    pub unnamed_partials: u64,
    /// Subdirectories that could not be opened or read, and were left out.
    pub skipped_dirs: u64,
    /// Directories swept, the root included.
    pub dirs: u64,
    /// The sweep was stopped before it had seen every directory.
    pub stopped: bool,
}

impl SweepReport {
    /// Files removed, of every kind.
    pub fn removed(&self) -> u64 {
        self.temporaries + self.expired_partials + self.unnamed_partials
    }
}

/// One directory on the way down.
struct Level {
    /// Its handle, unless let go to bound the descriptors held.
    dir: Option<Dir>,
    /// Its name in the level above (`None` for the root).
    name: Option<Box<RawName>>,
    /// Its subdirectories still to visit.
    pending: Vec<Box<RawName>>,
}

/// The times a sweep judges by, in seconds since the Unix epoch.
#[derive(Clone, Copy)]
struct Ages {
    /// Partials last written at or before it are past their age.
    cutoff: i64,
    /// When the sweep began: what was made since belongs to this server's running uploads.
    started: i64,
}

impl Dir {
    /// Sweeps this directory and every directory below it (links are never followed) of
    /// temporary files, of partial uploads older than `rules` allow and of hashed partials
    /// without their record. A file locked by a running upload (of this server or another on
    /// the same root) is left alone, and so is a subdirectory that cannot be read. `stop` is
    /// asked between directories; when it says so, the sweep ends early.
    pub fn sweep(&self, rules: SweepRules, stop: &dyn Fn() -> bool) -> io::Result<SweepReport> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let cutoff = now.saturating_sub(rules.partial_max_age).as_secs();
        let cutoff = i64::try_from(cutoff).unwrap_or(i64::MAX);
        let ages = Ages {
            cutoff,
            started: i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
        };
        let mut report = SweepReport::default();
        let mut pending = Vec::new();
        sweep_one(self, ages, &mut report, &mut pending)?;
        let mut levels = vec![Level {
            dir: Some(self.duplicate()?),
            name: None,
            pending,
        }];
        while let Some(depth) = levels.len().checked_sub(1) {
            if stop() {
                report.stopped = true;
                break;
            }
            let Some(child) = levels[depth].pending.pop() else {
                levels.pop();
                continue;
            };
            let opened = match reopen(&mut levels, depth) {
                Some(parent) => parent.subdir_raw(&child, false),
                None => {
                    // The level is gone (removed or renamed meanwhile): so is what is below.
                    report.skipped_dirs += levels[depth].pending.len() as u64 + 1;
                    levels[depth].pending.clear();
                    continue;
                }
            };
            let mut pending = Vec::new();
            let swept = opened.and_then(|dir| {
                sweep_one(&dir, ages, &mut report, &mut pending)?;
                Ok(dir)
            });
            let Ok(dir) = swept else {
                report.skipped_dirs += 1;
                continue;
            };
            levels.push(Level {
                dir: Some(dir),
                name: Some(child),
                pending,
            });
            let deepest = levels.len() - 1;
            if let Some(old) = deepest.checked_sub(OPEN_WINDOW)
                && old % OPEN_WINDOW != 0
            {
                levels[old].dir = None;
            }
        }
        Ok(report)
    }
}

/// The handle of `levels[at]`, reopened from the nearest level above that kept its handle if
/// it was let go; `None` if it cannot be reopened.
fn reopen(levels: &mut [Level], at: usize) -> Option<&Dir> {
    if levels[at].dir.is_none() {
        let kept = (0..at).rev().find(|&i| levels[i].dir.is_some())?;
        let mut dir = levels[kept].dir.as_ref()?.duplicate().ok()?;
        for level in &levels[kept + 1..=at] {
            dir = dir.subdir_raw(level.name.as_deref()?, false).ok()?;
        }
        levels[at].dir = Some(dir);
    }
    levels[at].dir.as_ref()
}

/// Sweeps the files of `dir` and adds its subdirectories to `pending`.
fn sweep_one(
    dir: &Dir,
    ages: Ages,
    report: &mut SweepReport,
    pending: &mut Vec<Box<RawName>>,
) -> io::Result<()> {
    let mut reserved: Vec<(String, EntryMeta)> = Vec::new();
    dir.for_each_raw_entry(|name, meta| {
        match meta.kind {
            EntryKind::Dir => pending.push(Box::from(name)),
            EntryKind::File => {
                // The server's own names are ASCII; anything else is not its own.
                let bytes = raw_name_bytes(name);
                if bytes.starts_with(RESERVED_PREFIX.as_bytes())
                    && let Ok(text) = std::str::from_utf8(&bytes)
                {
                    reserved.push((text.to_owned(), meta));
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    report.dirs += 1;
    for (name, meta) in reserved {
        let rest = &name.as_bytes()[RESERVED_PREFIX.len()..];
        let cutoff = ages.cutoff;
        let expired = |file: &File| file_meta(file).is_ok_and(|m| m.mtime <= cutoff);
        match ReservedKind::of(rest) {
            // This process's own are locked just after they are made: not in between.
            ReservedKind::Temporary if !made_by_this_process(&name) => {
                if remove_if_unlocked(dir, &name, |_| true) {
                    report.temporaries += 1;
                }
            }
            ReservedKind::PlainPartial(_) if meta.mtime <= cutoff => {
                if remove_if_unlocked(dir, &name, expired) {
                    report.expired_partials += 1;
                }
            }
            ReservedKind::HashedPartial if meta.mtime <= cutoff => {
                if remove_if_unlocked(dir, &name, expired) {
                    report.expired_partials += 1;
                }
            }
            // One made since the sweep began may not have its lock or its record yet.
            ReservedKind::HashedPartial if meta.mtime < ages.started => {
                // Checked once the lock is held: the lock's holder writes the record.
                let unnamed = |_: &File| matches!(read_record(dir, &name), Ok(None));
                if remove_if_unlocked(dir, &name, unnamed) {
                    report.unnamed_partials += 1;
                }
            }
            ReservedKind::Temporary
            | ReservedKind::HashedPartial
            | ReservedKind::PlainPartial(_)
            | ReservedKind::Record
            | ReservedKind::Unknown => {}
        }
    }
    Ok(())
}

/// Removes the file `name` (and its record, for a hashed partial) if nobody holds its lock and
/// `still_due`, asked with the lock held, agrees; whether it was removed. A file that cannot be
/// opened (another user's, say) is left alone.
fn remove_if_unlocked(dir: &Dir, name: &str, still_due: impl FnOnce(&File) -> bool) -> bool {
    let Ok(file) = dir.open_rw(name) else {
        return false;
    };
    let ours = try_lock(&file).unwrap_or(false)
        && dir.is_same_file(name, &file).unwrap_or(false)
        && still_due(&file);
    if !ours {
        return false;
    }
    remove_record(dir, name);
    dir.unlink(name, false).is_ok()
}
