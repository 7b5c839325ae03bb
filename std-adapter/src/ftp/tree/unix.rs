//! The root jail on Unix (Linux, macOS, the BSDs): `openat`/`mkdirat`/`renameat`/`unlinkat`/
//! `fstatat` relative to directory descriptors, every open with `O_NOFOLLOW`, and `flock` for the
//! locks on partial uploads.

use std::borrow::Cow;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::{EntryKind, EntryMeta, RESERVED_PREFIX, listed_reserved};

/// A directory entry's name as the system spells it: bytes, not necessarily UTF-8.
pub type RawName = CStr;

/// The bytes of a raw name.
pub fn raw_name_bytes(name: &RawName) -> Cow<'_, [u8]> {
    Cow::Borrowed(name.to_bytes())
}

/// A directory handle. Every name given to its methods is a single component.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
}

fn cstring(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains NUL"))
}

fn meta_of(st: &libc::stat) -> EntryMeta {
    let kind = match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => EntryKind::File,
        libc::S_IFDIR => EntryKind::Dir,
        libc::S_IFLNK => EntryKind::Symlink,
        _ => EntryKind::Other,
    };
    EntryMeta {
        kind,
        size: st.st_size as u64,
        mtime: st.st_mtime,
    }
}

/// Stats an open descriptor.
pub fn fstat(fd: &impl AsRawFd) -> io::Result<libc::stat> {
    // SAFETY: `stat` is plain data; all-zero bytes are a valid value that fstat overwrites.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: the descriptor is open for the duration of the call and `st` is a valid
    // out-pointer.
    let rc = unsafe { libc::fstat(fd.as_raw_fd(), &mut st) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// Metadata of an open file.
pub fn file_meta(file: &File) -> io::Result<EntryMeta> {
    fstat(file).map(|st| meta_of(&st))
}

impl Dir {
    /// Bytes free for an unprivileged user on the file system this directory is on.
    pub fn free_space(&self) -> io::Result<u64> {
        // SAFETY: `statvfs` is plain data; all-zero bytes are a valid value that fstatvfs
        // overwrites.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: the descriptor is open for the duration of the call and `st` is a valid
        // out-pointer.
        let rc = unsafe { libc::fstatvfs(self.fd.as_raw_fd(), &mut st) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        #[allow(clippy::unnecessary_cast)] // the fields' types differ between systems
        Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
    }

    /// Opens (creating it if missing, with its parents) the directory at `path` as a root.
    pub fn open_root(path: &Path) -> io::Result<Dir> {
        std::fs::create_dir_all(path)?;
        let c = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "root path contains NUL"))?;
        // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        Self::from_result(fd)
    }

    fn from_result(fd: libc::c_int) -> io::Result<Dir> {
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by a successful open and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Dir { fd })
    }

    fn open_at(&self, name: &CStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
        // SAFETY: `self.fd` is an open directory, `name` a valid C string; the returned descriptor
        // is checked before use.
        let fd = unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                name.as_ptr(),
                flags | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                libc::c_uint::from(mode),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor from a successful openat.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Opens the subdirectory `name` (never through a symbolic link), creating it first when
    /// `create` is set.
    pub fn subdir(&self, name: &str, create: bool) -> io::Result<Dir> {
        self.subdir_raw(&cstring(name)?, create)
    }

    /// [`Dir::subdir`] of a raw name.
    pub fn subdir_raw(&self, name: &CStr, create: bool) -> io::Result<Dir> {
        if create {
            // SAFETY: valid directory descriptor and C string.
            let rc = unsafe { libc::mkdirat(self.fd.as_raw_fd(), name.as_ptr(), 0o755) };
            if rc != 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::AlreadyExists {
                    return Err(e);
                }
            }
        }
        let fd = self.open_at(name, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        Ok(Dir { fd })
    }

    /// Another handle of the same directory.
    pub fn duplicate(&self) -> io::Result<Dir> {
        Ok(Dir {
            fd: self.fd.try_clone()?,
        })
    }

    /// Opens the regular file `name` for reading. A directory is `EISDIR`; symbolic links
    /// (`ELOOP`), FIFOs and devices are refused (the open does not block on a FIFO).
    pub fn open_file(&self, name: &str) -> io::Result<File> {
        let fd = self.open_at(&cstring(name)?, libc::O_RDONLY | libc::O_NONBLOCK, 0)?;
        let file = regular_file(File::from(fd))?;
        // Back to blocking reads for a regular file.
        // SAFETY: valid descriptor; F_SETFL with plain flags has no memory effects.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, libc::O_RDONLY) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(file)
    }

    /// Creates `name` exclusively (it must not exist) for reading and writing.
    pub fn create_new(&self, name: &str) -> io::Result<File> {
        let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL;
        let fd = self.open_at(&cstring(name)?, flags, 0o644)?;
        Ok(File::from(fd))
    }

    /// Opens the existing regular file `name` for reading and writing, without truncating it.
    /// (Files are only ever created by [`Dir::create_new`], exclusively: never opened through a
    /// name someone else placed first.)
    pub fn open_rw(&self, name: &str) -> io::Result<File> {
        // Non-blocking, so that a FIFO planted under the name cannot stall the open.
        let fd = self.open_at(&cstring(name)?, libc::O_RDWR | libc::O_NONBLOCK, 0)?;
        regular_file(File::from(fd))
    }

    /// `fstatat` of `name` itself (never following a link); `None` if it does not exist.
    fn stat_raw(&self, name: &CStr) -> io::Result<Option<libc::stat>> {
        // SAFETY: `stat` is plain data; zero is a valid value.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid directory descriptor, C string and out-pointer.
        let rc = unsafe {
            libc::fstatat(
                self.fd.as_raw_fd(),
                name.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::NotFound {
                Ok(None)
            } else {
                Err(e)
            };
        }
        Ok(Some(st))
    }

    /// Metadata of `name` itself (a symbolic link is reported as one, not followed); `None` if
    /// it does not exist.
    pub fn stat(&self, name: &str) -> io::Result<Option<EntryMeta>> {
        Ok(self.stat_raw(&cstring(name)?)?.map(|st| meta_of(&st)))
    }

    /// Whether `name` is the open `file` (same device and inode).
    pub fn is_same_file(&self, name: &str, file: &File) -> io::Result<bool> {
        let Some(st) = self.stat_raw(&cstring(name)?)? else {
            return Ok(false);
        };
        let open = fstat(file)?;
        Ok(open.st_dev == st.st_dev && open.st_ino == st.st_ino)
    }

    /// Renames `from` to `to` within this directory, replacing `to` atomically.
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.rename_into(from, self, to)
    }

    /// Renames `from` in this directory to `to` in `to_dir`, replacing a file at `to`
    /// atomically. A symbolic link is renamed itself.
    pub fn rename_into(&self, from: &str, to_dir: &Dir, to: &str) -> io::Result<()> {
        let (a, b) = (cstring(from)?, cstring(to)?);
        // SAFETY: valid directory descriptors and C strings.
        let rc = unsafe {
            libc::renameat(
                self.fd.as_raw_fd(),
                a.as_ptr(),
                to_dir.fd.as_raw_fd(),
                b.as_ptr(),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Removes the file `name` (or the empty directory, with `dir`).
    pub fn unlink(&self, name: &str, dir: bool) -> io::Result<()> {
        let name = cstring(name)?;
        let flags = if dir { libc::AT_REMOVEDIR } else { 0 };
        // SAFETY: valid directory descriptor and C string.
        let rc = unsafe { libc::unlinkat(self.fd.as_raw_fd(), name.as_ptr(), flags) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Flushes the directory itself (a rename is durable only once its directory is synced).
    pub fn sync(&self) -> io::Result<()> {
        File::from(self.fd.try_clone()?).sync_all()
    }

    /// Calls `visit` with each entry's name (its bytes: names need not be UTF-8) and metadata,
    /// skipping `.`, `..` and the server's reserved names but for partial uploads, which are
    /// visited under the name they will take, as [`EntryKind::Partial`].
    pub fn for_each_entry(
        &self,
        mut visit: impl FnMut(&[u8], EntryMeta) -> io::Result<()>,
    ) -> io::Result<()> {
        self.for_each_raw_entry(|name, meta| {
            let name = name.to_bytes();
            if let Some(rest) = name.strip_prefix(RESERVED_PREFIX.as_bytes()) {
                return match listed_reserved(self, rest, meta) {
                    Some((name, meta)) => visit(&name, meta),
                    None => Ok(()),
                };
            }
            visit(name, meta)
        })
    }

    /// Calls `visit` with every entry but `.` and `..`, reserved names included.
    pub fn for_each_raw_entry(
        &self,
        mut visit: impl FnMut(&CStr, EntryMeta) -> io::Result<()>,
    ) -> io::Result<()> {
        // A fresh open of "." has its own read position, so listings never share one.
        let fd = self.open_at(c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
        // SAFETY: `raw` is an open directory descriptor we own; fdopendir takes ownership of it
        // on success (closedir below closes it).
        let stream = unsafe { libc::fdopendir(raw) };
        if stream.is_null() {
            let e = io::Error::last_os_error();
            // SAFETY: fdopendir failed, so `raw` is still ours to close.
            unsafe { libc::close(raw) };
            return Err(e);
        }
        let result = (|| loop {
            // SAFETY: `stream` is a valid DIR* until closedir below.
            let entry = unsafe { libc::readdir(stream) };
            if entry.is_null() {
                return Ok(());
            }
            // SAFETY: readdir returned a valid dirent whose d_name is NUL-terminated and lives
            // until the next readdir call on this stream; we copy it out before that.
            let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) };
            if name == c"." || name == c".." {
                continue;
            }
            let Some(meta) = self.stat_raw(name)? else {
                continue; // removed meanwhile
            };
            visit(name, meta_of(&meta))?;
        })();
        // SAFETY: `stream` is valid and closed exactly once.
        unsafe { libc::closedir(stream) };
        result
    }
}

/// `file` if it is a regular file; a directory is `EISDIR`, anything else `InvalidInput`.
fn regular_file(file: File) -> io::Result<File> {
    match file_meta(&file)?.kind {
        EntryKind::File => Ok(file),
        EntryKind::Dir => Err(io::Error::from_raw_os_error(libc::EISDIR)),
        EntryKind::Symlink | EntryKind::Other | EntryKind::Partial => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO, socket or device)",
        )),
    }
}

/// Whether the open `file` is one the server can trust as its own staging file: a regular
/// file with one link (no other name anywhere, inside the root or out), owned by this process's
/// user and writable by nobody else. Checked on the open descriptor, so nothing can be swapped
/// in between the check and the use.
pub fn is_private_regular_file(file: &File) -> io::Result<bool> {
    let st = fstat(file)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    Ok(st.st_mode & libc::S_IFMT == libc::S_IFREG
        && st.st_nlink == 1
        && st.st_uid == me
        && st.st_mode & (libc::S_IWGRP | libc::S_IWOTH) == 0)
}

/// Whether `e`, from opening a name as a regular file for reading and writing, says that what
/// holds the name is not a usable file of the server's (a symbolic link, a directory, a FIFO,
/// socket or device, a file it may not write) rather than that the system failed.
pub fn is_unusable_entry(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidInput
        || matches!(
            e.raw_os_error(),
            Some(libc::ELOOP | libc::EISDIR | libc::ENXIO | libc::EACCES | libc::EPERM)
        )
}

/// Takes an exclusive, non-blocking lock on `file`; `Ok(false)` when someone else holds it.
pub fn try_lock(file: &File) -> io::Result<bool> {
    // SAFETY: valid descriptor; flock has no memory effects.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::WouldBlock {
        Ok(false)
    } else {
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::io::{Read, Write};
    use std::os::unix::ffi::OsStrExt;

    use super::super::super::name::MAX_COMPONENT_LEN;
    use super::super::{RemotePath, SweepRules, partial_name, temp_name, write_record};
    use super::*;

    #[test]
    fn walking_never_follows_a_symbolic_link() {
        let dir = tempfile::tempdir().unwrap();
        let root_path = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root_path.join("real")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(&outside, root_path.join("link")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), root_path.join("file-link")).unwrap();
        let root = Dir::open_root(&root_path).unwrap();

        let through_link = RemotePath::parse("link/secret").unwrap();
        assert!(root.walk_to_parent(&through_link, false).is_err());
        assert!(root.walk_to_parent(&through_link, true).is_err());
        assert!(root.open_file("file-link").is_err());
        assert!(root.open_rw("file-link").is_err());
        assert_eq!(
            root.stat("file-link").unwrap().map(|m| m.kind),
            Some(EntryKind::Symlink)
        );
        let inside = RemotePath::parse("real/new/deeper/f").unwrap();
        let parent = root.walk_to_parent(&inside, true).unwrap();
        parent.create_new("f").unwrap().write_all(b"x").unwrap();
        let mut text = String::new();
        root.walk_to_parent(&inside, false)
            .unwrap()
            .open_file("f")
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "x");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
    }

    #[test]
    fn listings_hide_reserved_names_show_partials_and_can_be_repeated() {
        let dir = tempfile::tempdir().unwrap();
        let root = Dir::open_root(dir.path()).unwrap();
        root.create_new("a").unwrap();
        root.create_new(&temp_name()).unwrap();
        root.create_new(&partial_name("a")).unwrap();
        // A partial of a name too long for the plain form is listed under the name its record
        // holds; one whose record is missing is not (nothing could name it).
        let long = "l".repeat(250);
        root.create_new(&partial_name(&long)).unwrap();
        write_record(&root, &long).unwrap();
        root.create_new(&partial_name(&"m".repeat(250))).unwrap();
        root.subdir("d", true).unwrap();
        std::fs::write(dir.path().join(OsStr::from_bytes(b"not utf8 \xff")), b"x").unwrap();
        for _ in 0..2 {
            let mut names = Vec::new();
            root.for_each_entry(|name, meta| {
                names.push((name.to_vec(), meta.kind));
                Ok(())
            })
            .unwrap();
            names.sort_by_key(|(name, kind)| (name.clone(), kind.as_str()));
            assert_eq!(
                names,
                [
                    (b"a".to_vec(), EntryKind::File),
                    (b"a".to_vec(), EntryKind::Partial),
                    (b"d".to_vec(), EntryKind::Dir),
                    (long.as_bytes().to_vec(), EntryKind::Partial),
                    (b"not utf8 \xff".to_vec(), EntryKind::File)
                ]
            );
        }
    }

    #[test]
    fn partial_names_fit_in_a_component_and_locks_exclude() {
        let long = "x".repeat(255);
        let name = partial_name(&long);
        assert!(name.len() <= MAX_COMPONENT_LEN && name.starts_with(RESERVED_PREFIX));
        assert_ne!(partial_name(&long), partial_name(&"y".repeat(255)));
        assert_eq!(partial_name("a"), ".unstick-partial-a");
        let hex = &name[".unstick-partial~".len()..];
        assert_eq!(hex.len(), 32);
        assert_ne!(
            partial_name(hex),
            name,
            "a short name cannot take a long name's partial"
        );

        let dir = tempfile::tempdir().unwrap();
        let root = Dir::open_root(dir.path()).unwrap();
        let first = root.create_new("p").unwrap();
        let second = root.open_rw("p").unwrap();
        assert!(try_lock(&first).unwrap());
        assert!(!try_lock(&second).unwrap());
        assert!(root.is_same_file("p", &second).unwrap());
        root.rename("p", "q").unwrap();
        assert!(!root.is_same_file("p", &second).unwrap());
        drop(first);
        assert!(try_lock(&second).unwrap());
    }

    #[test]
    fn stale_temporaries_are_removed_unless_locked_and_links_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root_path = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root_path.join("a/b")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join(".unstick-tmp-1-0-0"), b"not ours").unwrap();
        std::os::unix::fs::symlink(&outside, root_path.join("a/link")).unwrap();
        let root = Dir::open_root(&root_path).unwrap();
        for stale in [
            "a/.unstick-tmp-9-1-0",
            "a/b/.unstick-tmp-9-2-0",
            ".unstick-tmp-9-3-0",
        ] {
            std::fs::write(root_path.join(stale), b"torn").unwrap();
        }
        let live_name = temp_name();
        let live = root.create_new(&live_name).unwrap();
        assert!(try_lock(&live).unwrap());
        std::fs::write(root_path.join(partial_name("kept")), b"resumable").unwrap();
        std::fs::write(root_path.join("a/b/file"), b"data").unwrap();

        let report = root.sweep(WEEK, &|| false).unwrap();
        assert_eq!(report.temporaries, 3);
        assert_eq!(report.removed(), 3);
        let mut left: Vec<String> = walkdir_names(&root_path);
        left.sort();
        let mut expected = vec![
            "a".to_owned(),
            "a/b".into(),
            "a/b/file".into(),
            "a/link".into(),
            partial_name("kept"),
            live_name,
        ];
        expected.sort();
        assert_eq!(left, expected);
        assert!(outside.join(".unstick-tmp-1-0-0").exists());
    }

    const WEEK: SweepRules = SweepRules {
        partial_max_age: std::time::Duration::from_secs(7 * 24 * 3600),
    };

    /// Sets the last write of `path` to `days` ago.
    fn age(path: &Path, days: u64) {
        let when = std::time::SystemTime::now() - std::time::Duration::from_secs(days * 24 * 3600);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }

    #[test]
    fn partials_past_their_age_and_unnamed_hashed_partials_are_swept_the_rest_stay() {
        let dir = tempfile::tempdir().unwrap();
        let root = Dir::open_root(dir.path()).unwrap();
        let sub = root.subdir("sub", true).unwrap();
        let long = |c: &str| c.repeat(250);
        // Old enough to go: a plain and a hashed partial (with its record), one level down.
        for name in ["old", &long("o")] {
            sub.create_new(&partial_name(name)).unwrap();
            write_record(&sub, name).unwrap();
            age(&dir.path().join("sub").join(partial_name(name)), 8);
        }
        // Young ones stay, and so does an old one that a running upload holds.
        for name in ["young", &long("y")] {
            root.create_new(&partial_name(name)).unwrap();
            write_record(&root, name).unwrap();
        }
        let held = sub.create_new(&partial_name("held")).unwrap();
        assert!(try_lock(&held).unwrap());
        age(&dir.path().join("sub").join(partial_name("held")), 30);
        // A hashed partial without its record (a crash between the two) cannot be listed or
        // named: it goes, whatever its age, if it is from before the sweep began. One made
        // since may be a running upload's, between its creation and its lock and record.
        root.create_new(&partial_name(&long("u"))).unwrap();
        age(&dir.path().join(partial_name(&long("u"))), 1);
        root.create_new(&partial_name(&long("f"))).unwrap();
        // A temporary file of another process goes; one of this process's stays (it is locked
        // just after it is made, and the sweep must not get in between).
        root.create_new(".unstick-tmp-1-2-3").unwrap();
        let own = temp_name();
        root.create_new(&own).unwrap();

        let report = root.sweep(WEEK, &|| false).unwrap();
        assert_eq!(
            (
                report.expired_partials,
                report.unnamed_partials,
                report.temporaries
            ),
            (2, 1, 1),
            "{report:?}"
        );
        let mut left = walkdir_names(dir.path());
        left.sort();
        let mut expected = vec![
            "sub".to_owned(),
            format!("sub/{}", partial_name("held")),
            partial_name("young"),
            partial_name(&long("y")),
            format!("{}.name", partial_name(&long("y"))),
            partial_name(&long("f")),
            own,
        ];
        expected.sort();
        assert_eq!(left, expected);
        // A sweep asked to stop at once still sweeps the root, and says it stopped.
        assert!(root.sweep(WEEK, &|| true).unwrap().stopped);
    }

    fn walkdir_names(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut pending = vec![root.to_owned()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let entry = entry.unwrap();
                if entry.file_type().unwrap().is_dir() {
                    pending.push(entry.path());
                }
                let rel = entry.path().strip_prefix(root).unwrap().to_owned();
                out.push(rel.to_string_lossy().into_owned());
            }
        }
        out
    }
}
