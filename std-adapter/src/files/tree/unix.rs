//! The root jail on Unix (Linux, macOS, the BSDs), on `cap-std`: a [`Dir`] is a
//! `cap_std::fs::Dir`, through which nothing can be opened, created, renamed or removed outside
//! it (`openat2` with `RESOLVE_BENEATH` where the kernel has it, a checked component walk
//! elsewhere); every name the server gives is one component, and every open refuses a symbolic
//! link (`O_NOFOLLOW`). Locks are `flock`, through `std::fs::File::try_lock`.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt};
use cap_std::fs::{FileType, Metadata, MetadataExt as _, OpenOptions, OpenOptionsExt};

use super::{EntryKind, EntryMeta, RESERVED_PREFIX, listed_reserved};

/// A directory entry's name as the system spells it: bytes, not necessarily UTF-8.
pub type RawName = OsStr;

/// The bytes of a raw name.
pub fn raw_name_bytes(name: &RawName) -> Cow<'_, [u8]> {
    Cow::Borrowed(name.as_bytes())
}

/// A directory handle. Every name given to its methods is a single component.
#[derive(Debug)]
pub struct Dir {
    dir: cap_std::fs::Dir,
}

fn kind_of(file_type: FileType) -> EntryKind {
    if file_type.is_file() {
        EntryKind::File
    } else if file_type.is_dir() {
        EntryKind::Dir
    } else if file_type.is_symlink() {
        EntryKind::Symlink
    } else {
        EntryKind::Other
    }
}

/// Metadata of an entry as `cap-std` reads it (`fstatat` without following a link).
fn meta_of(meta: &Metadata) -> EntryMeta {
    EntryMeta {
        kind: kind_of(meta.file_type()),
        size: meta.len(),
        mtime: meta.mtime(),
        mode: Some(meta.mode()),
    }
}

/// Metadata of an open file.
pub fn file_meta(file: &File) -> io::Result<EntryMeta> {
    Metadata::from_file(file).map(|meta| meta_of(&meta))
}

/// Options that open one component without following a link, and without blocking on a FIFO
/// planted under the name.
fn no_follow(options: &mut OpenOptions) -> &mut OpenOptions {
    options
        .follow(FollowSymlinks::No)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
}

impl Dir {
    /// Bytes free for an unprivileged user on the file system this directory is on.
    pub fn free_space(&self) -> io::Result<u64> {
        let st = rustix::fs::fstatvfs(&self.dir)?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }

    /// Opens (creating it if missing, with its parents) the directory at `path` as a root. The
    /// root itself is where the administrator said, even through a link; below it nothing is
    /// followed.
    pub fn open_root(path: &Path) -> io::Result<Dir> {
        std::fs::create_dir_all(path)?;
        let dir = cap_std::fs::Dir::open_ambient_dir(path, cap_std::ambient_authority())?;
        Ok(Dir { dir })
    }

    /// Opens the subdirectory `name` (never through a symbolic link), creating it first when
    /// `create` is set.
    pub fn subdir(&self, name: &str, create: bool) -> io::Result<Dir> {
        self.subdir_raw(OsStr::new(name), create)
    }

    /// [`Dir::subdir`] of a raw name.
    pub fn subdir_raw(&self, name: &RawName, create: bool) -> io::Result<Dir> {
        if create {
            match self.dir.create_dir(name) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
        }
        match self.dir.open_dir_nofollow(name) {
            Ok(dir) => Ok(Dir { dir }),
            // `cap-std` opens directories with `O_PATH` where it can, which opens a link itself
            // and then says it is not a directory; the client is told that it is a link (what
            // `ELOOP` says). Only the error is chosen here: nothing was opened.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) => {
                match self.stat_raw(name) {
                    Ok(Some(meta)) if meta.file_type().is_symlink() => {
                        Err(rustix::io::Errno::LOOP.into())
                    }
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Another handle of the same directory.
    pub fn duplicate(&self) -> io::Result<Dir> {
        Ok(Dir {
            dir: self.dir.try_clone()?,
        })
    }

    /// Opens the regular file `name` for reading. A directory is `EISDIR`; symbolic links
    /// (`ELOOP`), FIFOs and devices are refused (the open does not block on a FIFO).
    pub fn open_file(&self, name: &str) -> io::Result<File> {
        let file = self
            .dir
            .open_with(name, no_follow(OpenOptions::new().read(true)))?;
        let file = regular_file(file.into_std())?;
        // Back to blocking reads for a regular file.
        rustix::fs::fcntl_setfl(&file, rustix::fs::OFlags::empty())?;
        Ok(file)
    }

    /// Creates `name` exclusively (it must not exist) for reading and writing.
    pub fn create_new(&self, name: &str) -> io::Result<File> {
        let mut options = OpenOptions::new();
        options
            .read(true)
            .write(true)
            .create_new(true)
            .follow(FollowSymlinks::No)
            .mode(0o644);
        Ok(self.dir.open_with(name, &options)?.into_std())
    }

    /// Opens the existing regular file `name` for reading and writing, without truncating it.
    /// (Files are only ever created by [`Dir::create_new`], exclusively: never opened through a
    /// name someone else placed first.)
    pub fn open_rw(&self, name: &str) -> io::Result<File> {
        // Non-blocking, so that a FIFO planted under the name cannot stall the open.
        let options = no_follow(OpenOptions::new().read(true).write(true)).clone();
        regular_file(self.dir.open_with(name, &options)?.into_std())
    }

    /// Metadata of `name` itself (never following a link); `None` if it does not exist.
    fn stat_raw(&self, name: &RawName) -> io::Result<Option<Metadata>> {
        match self.dir.symlink_metadata(name) {
            Ok(meta) => Ok(Some(meta)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Metadata of `name` itself (a symbolic link is reported as one, not followed); `None` if
    /// it does not exist.
    pub fn stat(&self, name: &str) -> io::Result<Option<EntryMeta>> {
        Ok(self.stat_raw(OsStr::new(name))?.map(|meta| meta_of(&meta)))
    }

    /// Whether `name` is the open `file` (same device and inode).
    pub fn is_same_file(&self, name: &str, file: &File) -> io::Result<bool> {
        let Some(named) = self.stat_raw(OsStr::new(name))? else {
            return Ok(false);
        };
        let open = Metadata::from_file(file)?;
        Ok(open.dev() == named.dev() && open.ino() == named.ino())
    }

    /// Renames `from` to `to` within this directory, replacing `to` atomically.
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.rename_into(from, self, to)
    }

    /// Renames `from` in this directory to `to` in `to_dir`, replacing a file at `to`
    /// atomically. A symbolic link is renamed itself.
    pub fn rename_into(&self, from: &str, to_dir: &Dir, to: &str) -> io::Result<()> {
        self.dir.rename(from, &to_dir.dir, to)
    }

    /// Removes the file `name` (or the empty directory, with `dir`). A symbolic link is removed
    /// itself, never what it points to.
    pub fn unlink(&self, name: &str, dir: bool) -> io::Result<()> {
        if dir {
            self.dir.remove_dir(name)
        } else {
            self.dir.remove_file(name)
        }
    }

    /// Flushes the directory itself (a rename is durable only once its directory is synced).
    /// The handle itself may be `O_PATH` (as `cap-std` opens directories on Linux), which
    /// cannot be synced: a fresh read-only open of `.` is.
    pub fn sync(&self) -> io::Result<()> {
        let this = self.dir.open_with(".", OpenOptions::new().read(true))?;
        this.into_std().sync_all()
    }

    /// Calls `visit` with each entry's name (its bytes: names need not be UTF-8) and metadata,
    /// skipping `.`, `..` and the server's reserved names but for partial uploads, which are
    /// visited under the name they will take, as [`EntryKind::Partial`].
    pub fn for_each_entry(
        &self,
        mut visit: impl FnMut(&[u8], EntryMeta) -> io::Result<()>,
    ) -> io::Result<()> {
        self.for_each_raw_entry(|name, meta| {
            let name = name.as_bytes();
            if let Some(rest) = name.strip_prefix(RESERVED_PREFIX.as_bytes()) {
                return match listed_reserved(self, rest, meta) {
                    Some((name, meta)) => visit(&name, meta),
                    None => Ok(()),
                };
            }
            visit(name, meta)
        })
    }

    /// Calls `visit` with every entry but `.` and `..`, reserved names included. Each listing
    /// reads its own fresh open of the directory (listings never share a position), closed when
    /// the listing ends, however it ends.
    pub fn for_each_raw_entry(
        &self,
        mut visit: impl FnMut(&RawName, EntryMeta) -> io::Result<()>,
    ) -> io::Result<()> {
        for entry in self.dir.entries()? {
            let entry = entry?;
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // removed meanwhile
                Err(e) => return Err(e),
            };
            visit(&entry.file_name(), meta_of(&meta))?;
        }
        Ok(())
    }
}

/// `file` if it is a regular file; a directory is `EISDIR`, anything else `InvalidInput`.
fn regular_file(file: File) -> io::Result<File> {
    match file_meta(&file)?.kind {
        EntryKind::File => Ok(file),
        EntryKind::Dir => Err(io::Error::from_raw_os_error(
            rustix::io::Errno::ISDIR.raw_os_error(),
        )),
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
    let meta = Metadata::from_file(file)?;
    let me = rustix::process::geteuid().as_raw();
    Ok(meta.file_type().is_file()
        && meta.nlink() == 1
        && meta.uid() == me
        && meta.mode() & 0o022 == 0)
}

/// Whether `e`, from opening a name as a regular file for reading and writing, says that what
/// holds the name is not a usable file of the server's (a symbolic link, a directory, a FIFO,
/// socket or device, a file it may not write) rather than that the system failed.
pub fn is_unusable_entry(e: &io::Error) -> bool {
    use rustix::io::Errno;
    // PermissionDenied covers EACCES and EPERM, and cap-std's refusal of a name that would
    // lead out of the root.
    matches!(
        e.kind(),
        io::ErrorKind::InvalidInput | io::ErrorKind::PermissionDenied
    ) || [Errno::LOOP, Errno::ISDIR, Errno::NXIO]
        .iter()
        .any(|errno| e.raw_os_error() == Some(errno.raw_os_error()))
}

/// Takes an exclusive, non-blocking lock on `file` (`flock`); `Ok(false)` when someone else
/// holds it.
pub fn try_lock(file: &File) -> io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
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
        // Refused as a link (ELOOP), which is what the client is told.
        for create in [false, true] {
            let e = root.walk_to_parent(&through_link, create).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
        }
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
