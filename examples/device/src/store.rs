//! A flash-like file store in RAM: one fixed region of [`CAPACITY`] bytes and a table of at most
//! [`MAX_FILES`] committed files, each a contiguous extent of the region.
//!
//! # Layout
//!
//! ```text
//!  0                                            top                        CAPACITY
//!  +------+--------+------+----------------------+-------------------------+
//!  | file | (hole) | file |  staging extent ...  |          free           |
//!  +------+--------+------+----------------------+-------------------------+
//! ```
//!
//! - Committed files are extents, kept in the table in the order of their start. Deleting or
//!   replacing a file leaves a hole; holes are squeezed out (the files above are moved down)
//!   before a new upload is staged, so the free space is always one run at the top.
//! - An upload is written to the **staging extent**, always above every file, never over a
//!   committed byte: the previous content of the name stays readable and intact until the
//!   commit, and stays so forever if the upload fails its digest or breaks off.
//! - **Commit** switches the table in one step: the staged extent becomes the name's file and
//!   the old extent (if any) a hole. Only the session decides to commit, after the whole file
//!   matched the client's digest.
//! - One upload is staged at a time. An upload that breaks off is **kept** for a resume (`stat`
//!   reports it as `partial_size`, `put --resume` continues it); a new upload of any name, or a
//!   `delete` of its name, discards it.
//! - The store is flat: names are single path components of at most [`NAME_CAP`] bytes;
//!   directories are refused with `bad_path`.
//! - There is no calendar clock on the board: `mtime` is the uptime in seconds at the commit.

use heapless::{String, Vec};

pub use crate::store_errors::{PartialGone, StoreError};

/// Bytes of file data the store holds, committed and staged together.
pub const CAPACITY: usize = 256 * 1024;

/// Most files the table holds.
pub const MAX_FILES: usize = 16;

/// Longest file name, in bytes.
pub const NAME_CAP: usize = 64;

/// A file name as the store keeps it.
pub type Name = String<NAME_CAP>;

/// A committed file.
#[derive(Clone, Debug)]
pub struct File {
    /// Its name.
    pub name: Name,
    start: usize,
    /// Size in bytes.
    pub len: usize,
    /// Uptime in seconds when it was committed.
    pub mtime: u32,
}

/// The upload being received, or the one kept for a resume.
#[derive(Clone, Debug)]
struct Staging {
    name: Name,
    start: usize,
    len: usize,
    /// Kept for a resume (a torn `put`), rather than owned by the request in progress.
    kept: bool,
    /// A `put` (resumable), not a seed upload (dropped when its request ends uncommitted).
    resumable: bool,
}

/// The store over its region of memory.
pub struct Store<'m> {
    mem: &'m mut [u8; CAPACITY],
    files: Vec<File, MAX_FILES>,
    staging: Option<Staging>,
}

impl<'m> Store<'m> {
    /// An empty store over `mem`.
    pub fn new(mem: &'m mut [u8; CAPACITY]) -> Self {
        Store {
            mem,
            files: Vec::new(),
            staging: None,
        }
    }

    /// Checks that `name` can be a file of this store.
    pub fn check_name(name: &str) -> Result<(), StoreError> {
        if name.is_empty() || name.len() > NAME_CAP || name.contains('/') {
            return Err(StoreError::BadName);
        }
        Ok(())
    }

    /// The committed files, in the order of their start in the region.
    pub fn files(&self) -> impl Iterator<Item = &File> {
        self.files.iter()
    }

    /// The committed file `name`.
    pub fn file(&self, name: &str) -> Option<&File> {
        self.files.iter().find(|f| f.name == name)
    }

    /// The bytes of a committed file.
    pub fn contents(&self, file: &File) -> &[u8] {
        &self.mem[file.start..file.start + file.len]
    }

    /// Bytes held by committed files.
    pub fn used(&self) -> usize {
        self.files.iter().map(|f| f.len).sum()
    }

    /// Bytes held by the staged (or kept) upload.
    pub fn staged(&self) -> usize {
        self.staging.as_ref().map_or(0, |s| s.len)
    }

    /// The largest upload that fits: everything the files do not hold (a new upload discards a
    /// kept partial of another name, and continues one of its own name).
    pub fn free(&self) -> usize {
        CAPACITY - self.used()
    }

    /// Bytes held for a resume of `name` (0 when none).
    pub fn partial_size(&self, name: &str) -> usize {
        match &self.staging {
            Some(s) if s.kept && s.name == name => s.len,
            _ => 0,
        }
    }

    /// Removes the file `name` and the partial upload kept for it.
    pub fn delete(&mut self, name: &str) -> (bool, PartialGone) {
        let removed = match self.files.iter().position(|f| f.name == name) {
            Some(i) => {
                self.files.remove(i);
                true
            }
            None => false,
        };
        let partial = match &self.staging {
            Some(s) if s.kept && s.name == name => {
                self.staging = None;
                PartialGone::Removed
            }
            _ => PartialGone::Absent,
        };
        (removed, partial)
    }

    /// Starts an upload of `name` of `size` bytes from its first byte (`resumable`: a `put`,
    /// kept if it breaks off). Any kept partial upload is discarded.
    pub fn stage_fresh(
        &mut self,
        name: &str,
        size: u64,
        resumable: bool,
    ) -> Result<(), StoreError> {
        let name = self.admit(name, size)?;
        self.staging = None;
        self.compact();
        self.staging = Some(Staging {
            name,
            start: self.used(),
            len: 0,
            kept: false,
            resumable,
        });
        Ok(())
    }

    /// Takes up the partial upload kept for `name`, of `size` bytes in all; `None` when there
    /// is none. Returns the bytes it holds.
    pub fn stage_resume(&mut self, name: &str, size: u64) -> Result<Option<usize>, StoreError> {
        self.admit(name, size)?;
        match &mut self.staging {
            Some(s) if s.kept && s.name == name => s.kept = false,
            _ => return Ok(None),
        }
        self.compact();
        Ok(Some(self.staged()))
    }

    /// Checks an upload of `size` bytes to `name` against the name rules, the table and the
    /// free space.
    fn admit(&self, name: &str, size: u64) -> Result<Name, StoreError> {
        Self::check_name(name)?;
        let free = self.free();
        if size > free as u64 {
            return Err(StoreError::NoSpace { needed: size, free });
        }
        if self.file(name).is_none() && self.files.is_full() {
            return Err(StoreError::TableFull);
        }
        Name::try_from(name).map_err(|_| StoreError::BadName)
    }

    /// Appends upload bytes to the staging extent.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let s = self.staging.as_mut().ok_or(StoreError::NotStaged)?;
        let end = s.start + s.len;
        let Some(room) = self.mem.get_mut(end..end + bytes.len()) else {
            return Err(StoreError::NoSpace {
                needed: (s.len + bytes.len()) as u64,
                free: CAPACITY - s.start,
            });
        };
        room.copy_from_slice(bytes);
        s.len += bytes.len();
        Ok(())
    }

    /// Cuts the staging extent to `len` bytes.
    pub fn truncate(&mut self, len: usize) -> Result<(), StoreError> {
        let s = self.staging.as_mut().ok_or(StoreError::NotStaged)?;
        s.len = s.len.min(len);
        Ok(())
    }

    /// The staged bytes (for checking a resumed prefix).
    pub fn staged_bytes(&self) -> &[u8] {
        match &self.staging {
            Some(s) => &self.mem[s.start..s.start + s.len],
            None => &[],
        }
    }

    /// Makes the staged upload the file `name` in one step; the old file's extent becomes a
    /// hole.
    pub fn commit(&mut self, name: &str, mtime: u32) -> Result<(), StoreError> {
        let s = self.staging.as_ref().ok_or(StoreError::NotStaged)?;
        let name = Name::try_from(name).map_err(|_| StoreError::BadName)?;
        let file = File {
            name,
            start: s.start,
            len: s.len,
            mtime,
        };
        let old = self.files.iter().position(|f| f.name == file.name);
        match old {
            Some(i) => {
                // The staging extent is above every file, so the table stays in start order.
                self.files.remove(i);
                let _ = self.files.push(file);
            }
            None => self.files.push(file).map_err(|_| StoreError::TableFull)?,
        }
        self.staging = None;
        Ok(())
    }

    /// Keeps the staged upload for a resume (a seed upload, which cannot be resumed, is
    /// dropped instead).
    pub fn keep(&mut self) {
        match &mut self.staging {
            Some(s) if s.resumable => s.kept = true,
            _ => self.staging = None,
        }
    }

    /// The request is over: an upload it staged and neither committed nor kept is dropped.
    pub fn end_request(&mut self) {
        if self.staging.as_ref().is_some_and(|s| !s.kept) {
            self.staging = None;
        }
    }

    /// Moves the files (and the staged upload, always last) down over the holes.
    fn compact(&mut self) {
        let mut top = 0;
        for file in self.files.iter_mut() {
            if file.start != top {
                self.mem.copy_within(file.start..file.start + file.len, top);
                file.start = top;
            }
            top += file.len;
        }
        if let Some(s) = &mut self.staging {
            if s.start != top {
                self.mem.copy_within(s.start..s.start + s.len, top);
                s.start = top;
            }
        }
    }
}
