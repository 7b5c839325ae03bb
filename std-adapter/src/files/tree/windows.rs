//! The root jail on Windows: every component is opened with `NtCreateFile` relative to the
//! handle of the directory holding it (`OBJECT_ATTRIBUTES.RootDirectory`), with
//! `FILE_OPEN_REPARSE_POINT`, and refused when what was opened is a reparse point (a symbolic
//! link, junction, mount point or any other). This is `openat(O_NOFOLLOW)`:
//!
//! - the name is resolved once, by the kernel, against a directory we hold open; no full path
//!   is ever rebuilt, so a directory renamed or replaced by a junction after it was checked
//!   cannot redirect a later open (the handle still names the directory we checked);
//! - the check is made on the handle that was opened, not on the name, so there is no window
//!   between checking and using (`GetFinalPathNameByHandle` after a path open would only detect
//!   an escape after it happened, and a path can change between two calls);
//! - a relative open goes through neither the Win32 path rules nor the DOS device namespace:
//!   `CON` or `a:b` would be ordinary (and, for other programs, unopenable) names, which is
//!   why the server refuses them beforehand ([`NameRules::Windows`]).
//!
//! Renames and deletions act on a handle too (`NtSetInformationFile`): the rename's target
//! is named relative to the directory handle, and the source is opened with `FILE_WRITE_THROUGH`,
//! which is how `MoveFileExW(MOVEFILE_WRITE_THROUGH)` makes a rename durable. Locks are
//! `LockFileEx` on one byte far past any data, so that they exclude other uploads without
//! blocking anyone's reads or writes (Windows' byte-range locks are mandatory).
//!
//! [`NameRules::Windows`]: unstick_core::files::NameRules::Windows

use std::borrow::Cow;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::windows::ffi::OsStringExt;
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::path::Path;

use windows_sys::Wdk::Foundation::OBJECT_ATTRIBUTES;
use windows_sys::Wdk::Storage::FileSystem::{
    FILE_CREATE, FILE_DIRECTORY_FILE, FILE_INFORMATION_CLASS, FILE_NON_DIRECTORY_FILE, FILE_OPEN,
    FILE_OPEN_IF, FILE_OPEN_REPARSE_POINT, FILE_SYNCHRONOUS_IO_NONALERT, FILE_WRITE_THROUGH,
    FileDispositionInformation, FileDispositionInformationEx, FileRenameInformation,
    FileRenameInformationEx, NTCREATEFILE_CREATE_DISPOSITION, NTCREATEFILE_CREATE_OPTIONS,
    NtCreateFile, NtSetInformationFile,
};
use windows_sys::Win32::Foundation::{
    ERROR_ACCESS_DENIED, ERROR_INVALID_FUNCTION, ERROR_INVALID_PARAMETER, ERROR_LOCK_VIOLATION,
    ERROR_NO_MORE_FILES, ERROR_NOT_SUPPORTED, ERROR_STOPPED_ON_SYMLINK, HANDLE, NTSTATUS,
    OBJ_CASE_INSENSITIVE, RtlNtStatusToDosError, STATUS_FILE_IS_A_DIRECTORY,
    STATUS_NOT_A_DIRECTORY, UNICODE_STRING,
};
use windows_sys::Win32::Storage::FileSystem::{
    BY_HANDLE_FILE_INFORMATION, DELETE, FILE_ACCESS_RIGHTS, FILE_ADD_FILE, FILE_ADD_SUBDIRECTORY,
    FILE_ATTRIBUTE_DIRECTORY, FILE_ATTRIBUTE_NORMAL, FILE_ATTRIBUTE_REPARSE_POINT,
    FILE_DISPOSITION_FLAG_DELETE, FILE_DISPOSITION_FLAG_POSIX_SEMANTICS, FILE_DISPOSITION_INFO_EX,
    FILE_FLAG_BACKUP_SEMANTICS, FILE_GENERIC_READ, FILE_GENERIC_WRITE, FILE_ID_BOTH_DIR_INFO,
    FILE_LIST_DIRECTORY, FILE_READ_ATTRIBUTES, FILE_RENAME_INFO, FILE_SHARE_DELETE,
    FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_TRAVERSE, FileIdBothDirectoryInfo,
    FileIdBothDirectoryRestartInfo, GetFileInformationByHandle, GetFileInformationByHandleEx,
    LOCKFILE_EXCLUSIVE_LOCK, LOCKFILE_FAIL_IMMEDIATELY, LockFileEx, SYNCHRONIZE,
};
use windows_sys::Win32::System::IO::{IO_STATUS_BLOCK, OVERLAPPED};

use super::{EntryKind, EntryMeta, RESERVED_PREFIX, listed_reserved};

/// A directory entry's name as the system spells it: UTF-16 units, not necessarily valid.
pub type RawName = [u16];

/// The bytes of a raw name (WTF-8: UTF-8 where the name is valid UTF-16).
pub fn raw_name_bytes(name: &RawName) -> Cow<'_, [u8]> {
    Cow::Owned(OsString::from_wide(name).into_encoded_bytes())
}

/// `FILE_RENAME_FLAG_REPLACE_IF_EXISTS` and `FILE_RENAME_FLAG_POSIX_SEMANTICS` (winbase.h):
/// replace the target even while it is open (a download in progress keeps the old file).
const RENAME_REPLACE_POSIX: u32 = 0x1 | 0x2;

/// Every open shares everything: our own handles must not stop each other (a staging file is
/// renamed and removed while it is open), and neither must a reader of the old file.
const SHARE_ALL: u32 = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;

/// What a directory handle may do: list, walk, stat, and add entries below it.
const DIR_ACCESS: FILE_ACCESS_RIGHTS = FILE_LIST_DIRECTORY
    | FILE_TRAVERSE
    | FILE_READ_ATTRIBUTES
    | FILE_ADD_FILE
    | FILE_ADD_SUBDIRECTORY
    | SYNCHRONIZE;

/// A directory handle. Every name given to its methods is a single component.
#[derive(Debug)]
pub struct Dir {
    handle: OwnedHandle,
}

/// A name as the kernel takes it.
fn wide(name: &str) -> Vec<u16> {
    name.encode_utf16().collect()
}

/// The error for a reparse point met where the jail wanted a file or directory.
fn reparse_point_refused() -> io::Error {
    io::Error::from_raw_os_error(ERROR_STOPPED_ON_SYMLINK as i32)
}

fn is_a_directory() -> io::Error {
    io::Error::new(io::ErrorKind::IsADirectory, "the name is a directory")
}

/// An `NTSTATUS` failure as an error: the two that tell files and directories apart keep their
/// meaning, the others become their Win32 error codes.
fn status_error(status: NTSTATUS) -> io::Error {
    match status {
        STATUS_FILE_IS_A_DIRECTORY => is_a_directory(),
        STATUS_NOT_A_DIRECTORY => io::Error::new(
            io::ErrorKind::NotADirectory,
            "a component is not a directory",
        ),
        // SAFETY: RtlNtStatusToDosError only maps a number to a number.
        _ => io::Error::from_raw_os_error(unsafe { RtlNtStatusToDosError(status) } as i32),
    }
}

/// `BY_HANDLE_FILE_INFORMATION` of an open handle.
fn handle_info(handle: HANDLE) -> io::Result<BY_HANDLE_FILE_INFORMATION> {
    let mut info = BY_HANDLE_FILE_INFORMATION::default();
    // SAFETY: `handle` is open for the duration of the call and `info` a valid out-pointer.
    if unsafe { GetFileInformationByHandle(handle, &mut info) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info)
}

/// Seconds since 1970 of a `FILETIME` (100 ns ticks since 1601).
fn unix_seconds(ticks: i64) -> i64 {
    const TICKS_PER_SECOND: i64 = 10_000_000;
    const SECONDS_1601_TO_1970: i64 = 11_644_473_600;
    ticks.div_euclid(TICKS_PER_SECOND) - SECONDS_1601_TO_1970
}

fn kind_of(attributes: u32) -> EntryKind {
    if attributes & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
        // Symbolic links, junctions, mount points, placeholders: never followed, shown as links.
        EntryKind::Symlink
    } else if attributes & FILE_ATTRIBUTE_DIRECTORY != 0 {
        EntryKind::Dir
    } else {
        EntryKind::File
    }
}

fn meta_of(info: &BY_HANDLE_FILE_INFORMATION) -> EntryMeta {
    let t = info.ftLastWriteTime;
    let ticks = (i64::from(t.dwHighDateTime) << 32) | i64::from(t.dwLowDateTime);
    EntryMeta {
        kind: kind_of(info.dwFileAttributes),
        size: (u64::from(info.nFileSizeHigh) << 32) | u64::from(info.nFileSizeLow),
        mtime: unix_seconds(ticks),
        // Windows has no permission bits to give.
        mode: None,
    }
}

/// Metadata of an open file.
pub fn file_meta(file: &File) -> io::Result<EntryMeta> {
    handle_info(file.as_raw_handle()).map(|info| meta_of(&info))
}

/// Volume and file index: what tells two handles of the same file apart from two files.
fn identity(info: &BY_HANDLE_FILE_INFORMATION) -> (u32, u32, u32) {
    (
        info.dwVolumeSerialNumber,
        info.nFileIndexHigh,
        info.nFileIndexLow,
    )
}

impl Dir {
    /// Opens (creating it if missing, with its parents) the directory at `path` as a root. The
    /// root itself is where the administrator said, even through a link; below it nothing is
    /// followed.
    pub fn open_root(path: &Path) -> io::Result<Dir> {
        std::fs::create_dir_all(path)?;
        let file = OpenOptions::new()
            .access_mode(DIR_ACCESS)
            .share_mode(SHARE_ALL)
            .custom_flags(FILE_FLAG_BACKUP_SEMANTICS)
            .open(path)?;
        if !file.metadata()?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "the root is not a directory",
            ));
        }
        Ok(Dir {
            handle: OwnedHandle::from(file),
        })
    }

    /// `NtCreateFile` of the single component `name` relative to this directory, never
    /// following a reparse point; the handle is synchronous, as `std::fs::File` expects.
    fn open_at(
        &self,
        name: &[u16],
        access: FILE_ACCESS_RIGHTS,
        disposition: NTCREATEFILE_CREATE_DISPOSITION,
        options: NTCREATEFILE_CREATE_OPTIONS,
        links: Links,
    ) -> io::Result<OwnedHandle> {
        let bytes = u16::try_from(name.len() * 2)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidFilename, "name too long"))?;
        let object_name = UNICODE_STRING {
            Length: bytes,
            MaximumLength: bytes,
            Buffer: name.as_ptr().cast_mut(),
        };
        let attributes = OBJECT_ATTRIBUTES {
            Length: size_of::<OBJECT_ATTRIBUTES>() as u32,
            RootDirectory: self.handle.as_raw_handle(),
            ObjectName: &object_name,
            // NTFS is case-insensitive to Win32 programs; the same here, so that `A.TXT` is
            // the file `a.txt` everyone else sees.
            Attributes: OBJ_CASE_INSENSITIVE,
            SecurityDescriptor: std::ptr::null(),
            SecurityQualityOfService: std::ptr::null(),
        };
        let mut io_status = IO_STATUS_BLOCK::default();
        let mut handle: HANDLE = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the duration of the call: `object_name` borrows
        // `name`, `attributes` borrows `object_name` and our open directory handle; `handle` and
        // `io_status` are out-pointers; no extended attributes are passed. A successful call
        // wrote a fresh handle that nobody else owns, which is taken into an `OwnedHandle`.
        let handle = unsafe {
            let status = NtCreateFile(
                &mut handle,
                access | SYNCHRONIZE,
                &attributes,
                &mut io_status,
                std::ptr::null(),
                FILE_ATTRIBUTE_NORMAL,
                SHARE_ALL,
                disposition,
                options | FILE_OPEN_REPARSE_POINT | FILE_SYNCHRONOUS_IO_NONALERT,
                std::ptr::null(),
                0,
            );
            if status < 0 {
                return Err(status_error(status));
            }
            OwnedHandle::from_raw_handle(handle)
        };
        if links == Links::Refuse {
            // Checked on what was opened, so nothing can swap it between check and use.
            let info = handle_info(handle.as_raw_handle())?;
            if info.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
                return Err(reparse_point_refused());
            }
        }
        Ok(handle)
    }

    /// Opens the subdirectory `name` (never through a reparse point), creating it first when
    /// `create` is set.
    pub fn subdir(&self, name: &str, create: bool) -> io::Result<Dir> {
        self.subdir_raw(&wide(name), create)
    }

    /// [`Dir::subdir`] of a raw name.
    pub fn subdir_raw(&self, name: &[u16], create: bool) -> io::Result<Dir> {
        let disposition = if create { FILE_OPEN_IF } else { FILE_OPEN };
        let handle = self.open_at(
            name,
            DIR_ACCESS,
            disposition,
            FILE_DIRECTORY_FILE,
            Links::Refuse,
        )?;
        Ok(Dir { handle })
    }

    /// Another handle of the same directory.
    pub fn duplicate(&self) -> io::Result<Dir> {
        Ok(Dir {
            handle: self.handle.try_clone()?,
        })
    }

    /// Opens the regular file `name` for reading. A directory is an `IsADirectory` error, a
    /// reparse point `ERROR_STOPPED_ON_SYMLINK`.
    pub fn open_file(&self, name: &str) -> io::Result<File> {
        let handle = self.open_at(
            &wide(name),
            FILE_GENERIC_READ,
            FILE_OPEN,
            FILE_NON_DIRECTORY_FILE,
            Links::Refuse,
        )?;
        regular_file(File::from(handle))
    }

    /// Creates `name` exclusively (it must not exist) for reading and writing.
    pub fn create_new(&self, name: &str) -> io::Result<File> {
        let handle = self.open_at(
            &wide(name),
            FILE_GENERIC_READ | FILE_GENERIC_WRITE,
            FILE_CREATE,
            FILE_NON_DIRECTORY_FILE,
            Links::Refuse,
        )?;
        Ok(File::from(handle))
    }

    /// Opens the existing regular file `name` for reading and writing, without truncating it.
    /// (Files are only ever created by [`Dir::create_new`], exclusively: never opened through a
    /// name someone else placed first.)
    pub fn open_rw(&self, name: &str) -> io::Result<File> {
        let handle = self.open_at(
            &wide(name),
            FILE_GENERIC_READ | FILE_GENERIC_WRITE,
            FILE_OPEN,
            FILE_NON_DIRECTORY_FILE,
            Links::Refuse,
        )?;
        regular_file(File::from(handle))
    }

    /// The information of `name` itself (a reparse point is not followed); `None` if it does
    /// not exist.
    fn stat_raw(&self, name: &[u16]) -> io::Result<Option<BY_HANDLE_FILE_INFORMATION>> {
        // Opened for its attributes only; a reparse point is opened itself, and reported.
        match self.open_at(name, FILE_READ_ATTRIBUTES, FILE_OPEN, 0, Links::Open) {
            Ok(handle) => handle_info(handle.as_raw_handle()).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Metadata of `name` itself (a reparse point is reported as a link, not followed); `None`
    /// if it does not exist.
    pub fn stat(&self, name: &str) -> io::Result<Option<EntryMeta>> {
        Ok(self.stat_raw(&wide(name))?.map(|info| meta_of(&info)))
    }

    /// Whether `name` is the open `file` (same volume and file index).
    pub fn is_same_file(&self, name: &str, file: &File) -> io::Result<bool> {
        let Some(info) = self.stat_raw(&wide(name))? else {
            return Ok(false);
        };
        let open = handle_info(file.as_raw_handle())?;
        Ok(identity(&open) == identity(&info))
    }

    /// Renames `from` to `to` within this directory, replacing `to` atomically (even while
    /// someone reads it, where the file system has POSIX semantics).
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.rename_into(from, self, to)
    }

    /// Renames `from` in this directory to `to` in `to_dir`, replacing a file at `to`
    /// atomically. A reparse point is refused, as everywhere else.
    pub fn rename_into(&self, from: &str, to_dir: &Dir, to: &str) -> io::Result<()> {
        // FILE_WRITE_THROUGH: the rename is on disk when the call returns
        // (what MOVEFILE_WRITE_THROUGH does).
        let source = self.open_at(
            &wide(from),
            DELETE,
            FILE_OPEN,
            FILE_WRITE_THROUGH,
            Links::Refuse,
        )?;
        let target = wide(to);
        let ex = set_rename_info(
            &source,
            to_dir,
            &target,
            FileRenameInformationEx,
            RENAME_REPLACE_POSIX,
        );
        match ex {
            Err(e) if lacks_extended_info(&e) => {
                set_rename_info(&source, to_dir, &target, FileRenameInformation, 1)
            }
            other => other,
        }
    }

    /// Removes the file `name` (or the empty directory, with `dir`). A reparse point is removed
    /// itself, never what it points to.
    pub fn unlink(&self, name: &str, dir: bool) -> io::Result<()> {
        let name = wide(name);
        let options = if dir {
            FILE_DIRECTORY_FILE
        } else {
            FILE_NON_DIRECTORY_FILE
        };
        // A reparse point is opened itself, so removing it removes the link.
        let handle = self.open_at(&name, DELETE, FILE_OPEN, options, Links::Open)?;
        // POSIX semantics: the name is gone when the call returns, even if the file is still
        // open (a staging file is removed while its handle is open).
        let ex = FILE_DISPOSITION_INFO_EX {
            Flags: FILE_DISPOSITION_FLAG_DELETE | FILE_DISPOSITION_FLAG_POSIX_SEMANTICS,
        };
        match set_information(
            &handle,
            FileDispositionInformationEx,
            &ex.Flags.to_ne_bytes(),
        ) {
            Err(e) if lacks_extended_info(&e) => {
                // FILE_DISPOSITION_INFORMATION: DeleteFile, a BOOLEAN, TRUE.
                set_information(&handle, FileDispositionInformation, &[1])
            }
            other => other,
        }
    }

    /// Makes a commit durable. On Windows the rename itself was made through a write-through
    /// handle, which commits it to disk before returning (as `MOVEFILE_WRITE_THROUGH` does), so
    /// there is nothing left to flush: a directory handle cannot be flushed without write
    /// access to the directory's data, which the jail does not ask for.
    pub fn sync(&self) -> io::Result<()> {
        Ok(())
    }

    /// Calls `visit` with each entry's name (WTF-8 bytes: names need not be valid UTF-16) and
    /// metadata, skipping `.`, `..` and the server's reserved names (in any case, as Windows
    /// compares names) but for partial uploads, which are visited under the name they will
    /// take, as [`EntryKind::Partial`].
    pub fn for_each_entry(
        &self,
        mut visit: impl FnMut(&[u8], EntryMeta) -> io::Result<()>,
    ) -> io::Result<()> {
        self.for_each_raw_entry(|name, meta| {
            let name = OsString::from_wide(name);
            let name = name.as_encoded_bytes();
            let prefix = RESERVED_PREFIX.as_bytes();
            if name.len() >= prefix.len() && name[..prefix.len()].eq_ignore_ascii_case(prefix) {
                return match listed_reserved(self, &name[prefix.len()..], meta) {
                    Some((name, meta)) => visit(&name, meta),
                    None => Ok(()),
                };
            }
            visit(name, meta)
        })
    }

    /// Calls `visit` with every entry but `.` and `..`, reserved names included; the metadata
    /// comes from the listing itself (a reparse point is a link, never followed).
    pub fn for_each_raw_entry(
        &self,
        mut visit: impl FnMut(&[u16], EntryMeta) -> io::Result<()>,
    ) -> io::Result<()> {
        // A fresh handle has its own listing position, so listings never share one (a
        // duplicated handle would share it). An empty name opens the directory itself again.
        let listing = self.open_at(
            &[],
            FILE_LIST_DIRECTORY | FILE_READ_ATTRIBUTES,
            FILE_OPEN,
            FILE_DIRECTORY_FILE,
            Links::Open,
        )?;
        // 8-byte aligned, as the records are.
        let mut buf = vec![0u64; 8 * 1024];
        let mut class = FileIdBothDirectoryRestartInfo;
        loop {
            let len = u32::try_from(buf.len() * 8).unwrap_or(u32::MAX);
            // SAFETY: `buf` is valid for `len` bytes and the handle is an open directory.
            let ok = unsafe {
                GetFileInformationByHandleEx(
                    listing.as_raw_handle(),
                    class,
                    buf.as_mut_ptr().cast(),
                    len,
                )
            };
            if ok == 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(ERROR_NO_MORE_FILES as i32) {
                    return Ok(());
                }
                return Err(e);
            }
            class = FileIdBothDirectoryInfo;
            let records: Vec<u8> = buf.iter().flat_map(|word| word.to_ne_bytes()).collect();
            let mut offset = 0usize;
            while let Some(record) = ListedRecord::at(&records, offset) {
                let dot = [u16::from(b'.')];
                let dotdot = [u16::from(b'.'), u16::from(b'.')];
                if record.name != dot && record.name != dotdot {
                    visit(&record.name, record.meta)?;
                }
                match record.next {
                    0 => break,
                    next => offset += next,
                }
            }
        }
    }
}

/// One `FILE_ID_BOTH_DIR_INFO` record of a listing, read from its bytes.
struct ListedRecord {
    name: Vec<u16>,
    meta: EntryMeta,
    /// Bytes from this record to the next; 0 for the last.
    next: usize,
}

impl ListedRecord {
    /// The record at `offset` in `records`; `None` if it does not lie wholly within them.
    fn at(records: &[u8], offset: usize) -> Option<ListedRecord> {
        use std::mem::offset_of;
        let field = |at: usize, len: usize| records.get(offset + at..offset + at + len);
        let u32_at =
            |at| field(at, 4).map(|b| u32::from_ne_bytes(b.try_into().unwrap_or_default()));
        let i64_at =
            |at| field(at, 8).map(|b| i64::from_ne_bytes(b.try_into().unwrap_or_default()));
        let next = u32_at(offset_of!(FILE_ID_BOTH_DIR_INFO, NextEntryOffset))?;
        let attributes = u32_at(offset_of!(FILE_ID_BOTH_DIR_INFO, FileAttributes))?;
        let size = i64_at(offset_of!(FILE_ID_BOTH_DIR_INFO, EndOfFile))?;
        let mtime = i64_at(offset_of!(FILE_ID_BOTH_DIR_INFO, LastWriteTime))?;
        let name_len = u32_at(offset_of!(FILE_ID_BOTH_DIR_INFO, FileNameLength))? as usize;
        let name = field(offset_of!(FILE_ID_BOTH_DIR_INFO, FileName), name_len)?
            .chunks_exact(2)
            .map(|unit| u16::from_ne_bytes([unit[0], unit[1]]))
            .collect();
        Some(ListedRecord {
            name,
            meta: EntryMeta {
                kind: kind_of(attributes),
                size: u64::try_from(size).unwrap_or(0),
                mtime: unix_seconds(mtime),
                mode: None,
            },
            next: next as usize,
        })
    }
}

/// What [`Dir::open_at`] does when the name is a reparse point (it never follows one).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Links {
    /// Refuse it: the caller wants a file or directory to use.
    Refuse,
    /// Return the reparse point itself: to report it (`stat`) or remove it (`unlink`).
    Open,
}

/// Whether `e` says the extended (POSIX-semantics) information class is not supported, so
/// that the plain one should be tried.
fn lacks_extended_info(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(|c| c as u32),
        Some(ERROR_INVALID_PARAMETER | ERROR_NOT_SUPPORTED | ERROR_INVALID_FUNCTION)
    )
}

/// `NtSetInformationFile` with `info`, the bytes of the structure `class` takes. A set class
/// only reads the buffer, and the kernel checks what it reads for the class.
fn set_information(
    handle: &OwnedHandle,
    class: FILE_INFORMATION_CLASS,
    info: &[u8],
) -> io::Result<()> {
    let len =
        u32::try_from(info.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // An 8-byte aligned copy: the structures hold handles and 64-bit fields.
    let words: Vec<u64> = info
        .chunks(8)
        .map(|chunk| {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            u64::from_ne_bytes(word)
        })
        .collect();
    let mut io_status = IO_STATUS_BLOCK::default();
    // SAFETY: the handle is open and synchronous (the call completes before returning);
    // `words` holds `len` readable bytes, aligned for any information class, and outlives the
    // call, which only reads them; `io_status` is an out-pointer.
    let status = unsafe {
        NtSetInformationFile(
            handle.as_raw_handle(),
            &mut io_status,
            words.as_ptr().cast(),
            len,
            class,
        )
    };
    if status < 0 {
        return Err(status_error(status));
    }
    Ok(())
}

/// Renames the file open as `source` to `target` in `dir` (`FILE_RENAME_INFORMATION` with the
/// target relative to the directory handle); `flags` is `ReplaceIfExists` for
/// `FileRenameInformation`, the flags for `FileRenameInformationEx`.
fn set_rename_info(
    source: &OwnedHandle,
    dir: &Dir,
    target: &[u16],
    class: FILE_INFORMATION_CLASS,
    flags: u32,
) -> io::Result<()> {
    use std::mem::offset_of;
    let name_at = offset_of!(FILE_RENAME_INFO, FileName);
    let name_bytes = target.len() * 2;
    let mut info = vec![0u8; (name_at + name_bytes).max(size_of::<FILE_RENAME_INFO>())];
    let mut put = |at: usize, bytes: &[u8]| info[at..at + bytes.len()].copy_from_slice(bytes);
    // The flags, or (the same first byte) ReplaceIfExists.
    put(
        offset_of!(FILE_RENAME_INFO, Anonymous),
        &flags.to_ne_bytes(),
    );
    let root = dir.handle.as_raw_handle() as usize;
    put(
        offset_of!(FILE_RENAME_INFO, RootDirectory),
        &root.to_ne_bytes(),
    );
    let name_len = u32::try_from(name_bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidFilename, "name too long"))?;
    put(
        offset_of!(FILE_RENAME_INFO, FileNameLength),
        &name_len.to_ne_bytes(),
    );
    for (i, unit) in target.iter().enumerate() {
        put(name_at + 2 * i, &unit.to_ne_bytes());
    }
    set_information(source, class, &info)
}

/// `file` if it is a regular file; a directory is `IsADirectory`, a reparse point
/// `ERROR_STOPPED_ON_SYMLINK`.
fn regular_file(file: File) -> io::Result<File> {
    match file_meta(&file)?.kind {
        EntryKind::File => Ok(file),
        EntryKind::Dir => Err(is_a_directory()),
        EntryKind::Symlink | EntryKind::Other | EntryKind::Partial => Err(reparse_point_refused()),
    }
}

/// Whether the open `file` is one the server can trust as its own staging file: a regular
/// file (not a reparse point) with one link, so that no other name, inside the root or out,
/// reaches its data. Checked on the open handle. (Who owns it and who may write it is the
/// directory's inherited access control on Windows, not the file's mode bits as on Unix.)
pub fn is_private_regular_file(file: &File) -> io::Result<bool> {
    let info = handle_info(file.as_raw_handle())?;
    Ok(kind_of(info.dwFileAttributes) == EntryKind::File && info.nNumberOfLinks == 1)
}

/// Whether `e`, from opening a name as a regular file for reading and writing, says that what
/// holds the name is not a usable file of the server's (a reparse point, a directory, a file it
/// may not write) rather than that the system failed.
pub fn is_unusable_entry(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::IsADirectory
        || matches!(
            e.raw_os_error().map(|code| code as u32),
            Some(ERROR_STOPPED_ON_SYMLINK | ERROR_ACCESS_DENIED)
        )
}

/// Takes an exclusive, non-blocking lock on `file`; `Ok(false)` when someone else holds it.
///
/// The lock covers one byte at the very end of the offset range, where no data ever is:
/// Windows' locks are mandatory, and a lock over the data would stop other handles (a
/// download, the digest of a resumed prefix) from reading it. Like `flock`, it belongs to the
/// handle and goes away when the handle is closed or the process dies.
pub fn try_lock(file: &File) -> io::Result<bool> {
    let mut overlapped = OVERLAPPED::default();
    overlapped.Anonymous.Anonymous.Offset = u32::MAX - 1;
    overlapped.Anonymous.Anonymous.OffsetHigh = u32::MAX;
    // SAFETY: the handle is open and synchronous, so LockFileEx completes before returning and
    // `overlapped` outlives the call.
    let ok = unsafe {
        LockFileEx(
            file.as_raw_handle(),
            LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY,
            0,
            1,
            0,
            &mut overlapped,
        )
    };
    if ok != 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(ERROR_LOCK_VIOLATION as i32) {
        Ok(false)
    } else {
        Err(e)
    }
}
