//! The file store in the nRF51's flash, with the same interface as the Cortex-M4 device's RAM
//! store (the shared `files.rs` and `shell.rs` drive either).
//!
//! # Layout
//!
//! The store's region (`memory.x`, 192 pages of 1 KiB after the 64 KiB image) begins with two
//! **directory pages**, then the **data pages**. A file is a run of whole data pages holding
//! its bytes from the run's first page on.
//!
//! A directory page holds: the magic word `USTK`, a sequence number, the allocation cursor,
//! the count of files and whether an upload is kept for a resume, an entry per file (name,
//! first page, length, time) and one for the kept upload, then the CRC-32 of all of it. Of the
//! two pages, the one with a valid record (magic and CRC) and the higher sequence number is the
//! store. Neither valid (QEMU's flash reads zero at first boot; a real part's reads erased) is
//! an empty store, written at once.
//!
//! # Changing it safely
//!
//! - An upload is written to free data pages, never over a page a file holds: the previous
//!   content of the name stays intact until the commit, and forever if the upload fails its
//!   digest, breaks off or the board resets mid-way (its pages are simply free again).
//! - **Commit** (and delete, and keeping a partial upload for a resume) writes the new
//!   directory to the *other* directory page, with the next sequence number: until its last
//!   word (the CRC) is programmed, the old page is the store. A reset at any point leaves one
//!   or the other.
//! - A data page is erased right before its first word is programmed.
//!
//! # Wear
//!
//! New uploads take the first free run of pages at or after the **cursor**, which moves past
//! each allocation and is kept in the directory: the data pages are used in turn, not the
//! lowest ones over and over. The directory pages take one erase per commit, delete or kept
//! upload, alternating. The nRF51 is rated for 20,000 erase cycles per page (its reference
//! manual): about 40,000 directory changes, or 40,000 commits if they are the only changes;
//! at a hundred uploads a day, more than a year; with the data pages used in turn, those
//! last about 190 times longer for uploads of one page.
//!
//! # Names and limits
//!
//! Flat: a name is one component of at most [`NAME_CAP`] bytes; at most [`MAX_FILES`] files.
//! One upload is staged at a time; a torn `put` is kept for a resume (in the directory, so a
//! reset keeps it too); a new upload of any name, or a `delete` of its name, discards it.
//! There is no calendar clock on the board: `mtime` is the uptime in seconds at the commit,
//! or a `put -p`'s time.

use heapless::{String, Vec};
use unstick_core::serial_link::Crc32;

pub use crate::store_errors::{PartialGone, StoreError};

use crate::flash::{Flash, PAGE};

/// Pages of the store's region (`memory.x` must give it this many; checked at boot).
pub const STORE_PAGES: usize = 192;

/// Directory pages at the start of the region.
const DIR_PAGES: usize = 2;

/// Bytes of file data the store holds, committed and staged together.
pub const CAPACITY: usize = (STORE_PAGES - DIR_PAGES) * PAGE;

/// Most files the table holds.
pub const MAX_FILES: usize = 12;

/// Longest file name, in bytes.
pub const NAME_CAP: usize = 48;

/// A file name as the store keeps it.
pub type Name = String<NAME_CAP>;

const MAGIC: u32 = u32::from_le_bytes(*b"USTK");
/// Bytes of a directory entry: name length, name, padding to a word, first page, length, time.
const ENTRY: usize = 64;
const HEADER: usize = 16;

/// A committed file.
#[derive(Clone, Debug)]
pub struct File {
    /// Its name.
    pub name: Name,
    /// Its first data page (index in the region).
    start: usize,
    /// Size in bytes.
    pub len: usize,
    /// Uptime in seconds when it was committed, or the time a `put -p` gave.
    pub mtime: u32,
}

impl File {
    fn pages(&self) -> core::ops::Range<usize> {
        self.start..self.start + self.len.div_ceil(PAGE)
    }
}

/// The upload being received, or the one kept for a resume.
#[derive(Clone, Debug)]
struct Staging {
    name: Name,
    /// Its first data page.
    start: usize,
    /// Pages it may fill.
    pages: usize,
    /// Bytes written (the last up to 3 of them may still wait in `tail`).
    len: usize,
    /// Kept for a resume (a torn `put`), rather than owned by the request in progress.
    kept: bool,
    /// A `put` (resumable), not a seed upload (dropped when its request ends uncommitted).
    resumable: bool,
}

/// The store over its flash.
pub struct Store<'f> {
    flash: &'f mut Flash,
    files: Vec<File, MAX_FILES>,
    staging: Option<Staging>,
    /// Bytes of the staged upload not programmed yet (less than a word).
    tail: [u8; 4],
    /// The directory page in force, and its sequence number.
    dir: usize,
    seq: u32,
    /// Where the next upload's search for free pages begins.
    cursor: usize,
}

impl<'f> Store<'f> {
    /// The store in `flash`: the newest valid directory, or an empty store written now.
    ///
    /// # Panics
    ///
    /// If the linker gave the region another size than [`STORE_PAGES`].
    #[inline(never)]
    pub fn mount(flash: &'f mut Flash) -> Self {
        assert_eq!(
            flash.pages(),
            STORE_PAGES,
            "memory.x and STORE_PAGES disagree"
        );
        let mut store = Store {
            flash,
            files: Vec::new(),
            staging: None,
            tail: [0; 4],
            dir: 1,
            seq: 0,
            cursor: DIR_PAGES,
        };
        let seqs = [0, 1].map(|page| store.valid_seq(page));
        let newest = match seqs {
            [Some(a), Some(b)] => Some(if b > a { 1 } else { 0 }),
            [Some(_), None] => Some(0),
            [None, Some(_)] => Some(1),
            [None, None] => None,
        };
        match newest {
            Some(page) => store.load(page),
            None => store.save(),
        }
        store
    }

    /// The sequence number of the directory on `page`, if it holds a valid one.
    fn valid_seq(&self, page: usize) -> Option<u32> {
        let dir = self.flash.bytes(page * PAGE, PAGE);
        let word = |i: usize| u32::from_le_bytes([dir[i], dir[i + 1], dir[i + 2], dir[i + 3]]);
        if word(0) != MAGIC {
            return None;
        }
        let counts = word(12);
        let (files, kept) = ((counts & 0xFF) as usize, counts >> 8);
        if files > MAX_FILES || kept > 1 {
            return None;
        }
        let end = HEADER + (files + kept as usize) * ENTRY;
        let mut crc = Crc32::new();
        crc.update(&dir[..end]);
        (word(end) == crc.value()).then(|| word(4))
    }

    /// Takes the (valid) directory on `page` as the store. Out of line, and filling the
    /// table in place: the caller's frame (`main`'s) holds no second table.
    #[inline(never)]
    fn load(&mut self, page: usize) {
        let dir = self.flash.bytes(page * PAGE, PAGE);
        let word = |i: usize| u32::from_le_bytes([dir[i], dir[i + 1], dir[i + 2], dir[i + 3]]);
        let counts = word(12);
        let (files, kept) = ((counts & 0xFF) as usize, counts >> 8);
        let entry = |i: usize| {
            let at = HEADER + i * ENTRY;
            let name_len = usize::from(dir[at]).min(NAME_CAP);
            let name = core::str::from_utf8(&dir[at + 1..at + 1 + name_len]).unwrap_or("");
            let name = Name::try_from(name).unwrap_or_default();
            let start = (word(at + 52) as usize).clamp(DIR_PAGES, STORE_PAGES);
            File {
                name,
                start,
                len: (word(at + 56) as usize).min((STORE_PAGES - start) * PAGE),
                mtime: word(at + 60),
            }
        };
        self.files.clear();
        for i in 0..files {
            let _ = self.files.push(entry(i));
        }
        let staging = (kept == 1).then(|| {
            let file = entry(files);
            Staging {
                pages: (file.mtime as usize).min(STORE_PAGES - file.start),
                name: file.name,
                start: file.start,
                len: file.len & !3,
                kept: true,
                resumable: true,
            }
        });
        self.seq = word(4);
        self.cursor = (word(8) as usize).clamp(DIR_PAGES, STORE_PAGES - 1);
        self.dir = page;
        self.staging = staging;
    }

    /// Writes the directory (the files and a kept upload) to the other directory page, with
    /// the next sequence number: it is the store once its CRC is programmed.
    fn save(&mut self) {
        let page = 1 - self.dir;
        let seq = self.seq.wrapping_add(1);
        let kept = self.staging.as_ref().filter(|s| s.kept).cloned();
        self.flash.erase(page);
        let mut out = DirWriter {
            flash: &mut *self.flash,
            at: page * PAGE,
            word: [0; 4],
            fill: 0,
            crc: Crc32::new(),
        };
        let counts = self.files.len() as u32 | (u32::from(kept.is_some()) << 8);
        for word in [MAGIC, seq, self.cursor as u32, counts] {
            out.put(&word.to_le_bytes());
        }
        let mut entry = |name: &str, start: usize, len: usize, extra: u32| {
            let mut head = [0u8; 52];
            head[0] = name.len() as u8;
            head[1..=name.len()].copy_from_slice(name.as_bytes());
            out.put(&head);
            for word in [start as u32, len as u32, extra] {
                out.put(&word.to_le_bytes());
            }
        };
        for file in &self.files {
            entry(&file.name, file.start, file.len, file.mtime);
        }
        if let Some(s) = &kept {
            // A kept upload's entry carries its page count where a file's has its time.
            entry(&s.name, s.start, s.len, s.pages as u32);
        }
        let crc = out.crc.value();
        out.flash.write_word(out.at, crc);
        self.dir = page;
        self.seq = seq;
    }

    /// Checks that `name` can be a file of this store.
    pub fn check_name(name: &str) -> Result<(), StoreError> {
        if name.is_empty() || name.len() > NAME_CAP || name.contains('/') {
            return Err(StoreError::BadName);
        }
        Ok(())
    }

    /// The committed files, in the order they were committed.
    pub fn files(&self) -> impl Iterator<Item = &File> {
        self.files.iter()
    }

    /// The committed file `name`.
    pub fn file(&self, name: &str) -> Option<&File> {
        self.files.iter().find(|f| f.name == name)
    }

    /// The bytes of a committed file.
    pub fn contents(&self, file: &File) -> &[u8] {
        self.flash.bytes(file.start * PAGE, file.len)
    }

    /// Bytes held by committed files.
    pub fn used(&self) -> usize {
        self.files.iter().map(|f| f.len).sum()
    }

    /// Bytes held by the staged (or kept) upload.
    pub fn staged(&self) -> usize {
        self.staging.as_ref().map_or(0, |s| s.len)
    }

    /// The largest upload that fits: the longest run of pages no file holds (a new upload
    /// discards a kept partial of another name).
    pub fn free(&self) -> usize {
        let mut best = 0;
        let mut run = 0;
        for page in DIR_PAGES..STORE_PAGES {
            run = if self.held(page) { 0 } else { run + 1 };
            best = best.max(run);
        }
        best * PAGE
    }

    /// Whether a committed file holds `page`.
    fn held(&self, page: usize) -> bool {
        self.files.iter().any(|f| f.pages().contains(&page))
    }

    /// The first run of `n` pages no file holds, at or after the cursor, else from the start.
    fn allocate(&self, n: usize) -> Option<usize> {
        if n == 0 {
            return Some(self.cursor);
        }
        for from in [self.cursor, DIR_PAGES] {
            let mut run = 0;
            for page in from..STORE_PAGES {
                run = if self.held(page) { 0 } else { run + 1 };
                if run == n {
                    return Some(page + 1 - n);
                }
            }
        }
        None
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
        if removed || partial == PartialGone::Removed {
            self.save();
        }
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
        let was_kept = self.staging.take().is_some_and(|s| s.kept);
        let pages = (size as usize).div_ceil(PAGE);
        let start = self.allocate(pages).ok_or(StoreError::NoSpace {
            needed: size,
            free: self.free(),
        })?;
        self.cursor = start + pages;
        if self.cursor >= STORE_PAGES {
            self.cursor = DIR_PAGES;
        }
        if was_kept {
            // The kept upload's pages are free again: say so before they are written.
            self.save();
        }
        self.staging = Some(Staging {
            name,
            start,
            pages,
            len: 0,
            kept: false,
            resumable,
        });
        Ok(())
    }

    /// Takes up the partial upload kept for `name`, of `size` bytes in all; `None` when there
    /// is none (or it was staged for a smaller file: the upload then starts afresh). Returns
    /// the bytes it holds.
    pub fn stage_resume(&mut self, name: &str, size: u64) -> Result<Option<usize>, StoreError> {
        Self::check_name(name)?;
        match &mut self.staging {
            Some(s) if s.kept && s.name == name && size <= (s.pages * PAGE) as u64 => {
                s.kept = false;
            }
            _ => return Ok(None),
        }
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

    /// Appends upload bytes to the staged pages.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let s = self.staging.as_mut().ok_or(StoreError::NotStaged)?;
        if s.len + bytes.len() > s.pages * PAGE {
            return Err(StoreError::NoSpace {
                needed: (s.len + bytes.len()) as u64,
                free: s.pages * PAGE,
            });
        }
        for &byte in bytes {
            self.tail[s.len % 4] = byte;
            s.len += 1;
            if s.len % 4 == 0 {
                let at = s.start * PAGE + s.len - 4;
                if at % PAGE == 0 {
                    self.flash.erase(at / PAGE);
                }
                self.flash.write_word(at, u32::from_le_bytes(self.tail));
            }
        }
        Ok(())
    }

    /// Programs the bytes waiting in `tail` (the end of the upload), padded with ones.
    fn flush_tail(&mut self) {
        let Some(s) = &self.staging else { return };
        let waiting = s.len % 4;
        if waiting == 0 {
            return;
        }
        let at = s.start * PAGE + s.len - waiting;
        let mut word = [0xFF; 4];
        word[..waiting].copy_from_slice(&self.tail[..waiting]);
        if at % PAGE == 0 {
            self.flash.erase(at / PAGE);
        }
        self.flash.write_word(at, u32::from_le_bytes(word));
    }

    /// Cuts the staged upload to `len` bytes. Programmed flash cannot be rewritten in place:
    /// the page `len` falls in is erased and its first bytes programmed again.
    pub fn truncate(&mut self, len: usize) -> Result<(), StoreError> {
        let s = self.staging.as_ref().ok_or(StoreError::NotStaged)?;
        if len >= s.len {
            return Ok(());
        }
        let keep = len % PAGE;
        if keep > 0 {
            self.rewrite_prefix(s.start + len / PAGE, keep);
        }
        if let Some(s) = &mut self.staging {
            s.len = len;
        }
        Ok(())
    }

    /// Erases `page` keeping its first `keep` bytes (whole words; a last partial word is
    /// left to the upload's next write, from `tail`). Out of line: its page buffer takes the
    /// stack only here.
    #[inline(never)]
    fn rewrite_prefix(&mut self, page: usize, keep: usize) {
        let mut saved = [0u8; PAGE];
        saved[..keep].copy_from_slice(self.flash.bytes(page * PAGE, keep));
        self.flash.erase(page);
        for (i, word) in saved[..keep & !3].chunks_exact(4).enumerate() {
            let word = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
            self.flash.write_word(page * PAGE + i * 4, word);
        }
        // The last partial word's bytes are still in `saved`: hand them to `tail`.
        let rest = keep & !3;
        self.tail[..keep - rest].copy_from_slice(&saved[rest..keep]);
    }

    /// The staged bytes (for checking a resumed prefix: a kept upload holds whole words).
    pub fn staged_bytes(&self) -> &[u8] {
        match &self.staging {
            Some(s) => self.flash.bytes(s.start * PAGE, s.len & !3),
            None => &[],
        }
    }

    /// Makes the staged upload the file `name` in one step (the directory's); the old file's
    /// pages are free from then on.
    pub fn commit(&mut self, name: &str, mtime: u32) -> Result<(), StoreError> {
        self.flush_tail();
        let s = self.staging.as_ref().ok_or(StoreError::NotStaged)?;
        let name = Name::try_from(name).map_err(|_| StoreError::BadName)?;
        let file = File {
            name,
            start: s.start,
            len: s.len,
            mtime,
        };
        if let Some(i) = self.files.iter().position(|f| f.name == file.name) {
            self.files.remove(i);
        }
        self.files.push(file).map_err(|_| StoreError::TableFull)?;
        self.staging = None;
        self.save();
        Ok(())
    }

    /// Keeps the staged upload for a resume, in the directory (a seed upload, which cannot be
    /// resumed, is dropped instead). The bytes of a last partial word are dropped: the resume
    /// sends them again.
    pub fn keep(&mut self) {
        match &mut self.staging {
            Some(s) if s.resumable => {
                s.len &= !3;
                if !s.kept {
                    s.kept = true;
                    self.save();
                }
            }
            _ => self.staging = None,
        }
    }

    /// The request is over: an upload it staged and neither committed nor kept is dropped.
    pub fn end_request(&mut self) {
        if self.staging.as_ref().is_some_and(|s| !s.kept) {
            self.staging = None;
        }
    }
}

/// Programs a directory record word by word, computing its CRC.
struct DirWriter<'f> {
    flash: &'f mut Flash,
    at: usize,
    word: [u8; 4],
    fill: usize,
    crc: Crc32,
}

impl DirWriter<'_> {
    /// Adds `bytes` (records are whole words in all).
    fn put(&mut self, bytes: &[u8]) {
        self.crc.update(bytes);
        for &byte in bytes {
            self.word[self.fill] = byte;
            self.fill += 1;
            if self.fill == 4 {
                self.flash
                    .write_word(self.at, u32::from_le_bytes(self.word));
                self.at += 4;
                self.fill = 0;
            }
        }
    }
}
