#![cfg(unix)]
//! End-to-end tests of the file commands people bring from scp, rsync and a shell (issue 12):
//! several files and trees per `put`/`get`, `-` for standard input and output, `mkdir`, `mv`,
//! `rm -r`, `ls -l`/`-h` and partial uploads in listings, `put --resume` skipping a complete
//! file, `get --no-clobber`. The real binary over loopback, every client run bounded; every
//! outcome is checked on disk, byte for byte, or by the refusal's words.

mod serve_common;
mod shell_common;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use serve_common::{ClientProcess, Raw, Served, unstick_command, xxh3_hex};

/// How long one client command may take.
const LIMIT: Duration = Duration::from_secs(60);

/// A file server on a temporary root, and a local working directory.
struct Setup {
    server: Served,
    root: PathBuf,
    local: PathBuf,
    _dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let local = dir.path().join("local");
        fs::create_dir_all(&local).unwrap();
        let server = Served::ftp(&root, &[]);
        Setup {
            server,
            root,
            local,
            _dir: dir,
        }
    }

    /// `unstick ftp ARGS... --addr ADDR` in the local directory, with `stdin` as its input.
    fn ftp_with_input(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut all = vec!["ftp"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--addr", &self.server.addr]);
        let mut command = unstick_command(&all, Some(&self.local));
        command.stdin(Stdio::piped());
        let mut child = command.spawn().expect("spawn the client");
        let mut input = child.stdin.take().unwrap();
        let stdin = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&stdin);
        });
        let out = ClientProcess(Some(child)).finish(LIMIT);
        writer.join().unwrap();
        out
    }

    fn ftp(&self, args: &[&str]) -> Output {
        self.ftp_with_input(args, b"")
    }

    fn ok(&self, args: &[&str]) -> (String, String) {
        let out = self.ftp(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "`ftp {}` failed: {stderr}\nserver log:\n{}",
            args.join(" "),
            self.server.log()
        );
        (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
    }

    /// Runs a command that must fail; its stderr.
    fn refused(&self, args: &[&str]) -> String {
        let out = self.ftp(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "`ftp {}` should have failed: {stderr}",
            args.join(" ")
        );
        assert!(stderr.contains("unstick ftp: "), "{stderr}");
        stderr
    }

    fn write_local(&self, name: &str, bytes: &[u8]) {
        let path = self.local.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }
}

/// Every path under `dir` (directories with a trailing `/`), sorted, hidden ones included.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let rel = entry
                .path()
                .strip_prefix(base)
                .unwrap()
                .display()
                .to_string();
            if entry.file_type().unwrap().is_dir() {
                out.push(format!("{rel}/"));
                walk(base, &entry.path(), out);
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out.sort();
    out
}

/// Deterministic bytes.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn several_files_go_where_scp_would_put_them() {
    let s = Setup::new();
    s.write_local("a.txt", b"alpha");
    s.write_local("b.txt", b"bravo");
    s.write_local("small.txt", b"small");
    // `put a.txt b.txt dir/`: a new remote directory, both files inside.
    s.ok(&["put", "a.txt", "b.txt", "dir/"]);
    assert_eq!(fs::read(s.root.join("dir/a.txt")).unwrap(), b"alpha");
    assert_eq!(fs::read(s.root.join("dir/b.txt")).unwrap(), b"bravo");
    // `put *.txt` as the shell expands it: every argument is a local file, all to the root.
    s.ok(&["put", "a.txt", "b.txt", "small.txt"]);
    for (name, bytes) in [
        ("a.txt", "alpha"),
        ("b.txt", "bravo"),
        ("small.txt", "small"),
    ] {
        assert_eq!(fs::read(s.root.join(name)).unwrap(), bytes.as_bytes());
    }
    // `put small.txt dir` where `dir` is a remote directory: `dir/small.txt`.
    s.ok(&["put", "small.txt", "dir"]);
    assert_eq!(fs::read(s.root.join("dir/small.txt")).unwrap(), b"small");
    // A name that is neither stays the file's new name; --to settles any doubt.
    s.ok(&["put", "small.txt", "renamed.txt"]);
    assert_eq!(fs::read(s.root.join("renamed.txt")).unwrap(), b"small");
    s.ok(&["put", "--to", "b.txt", "a.txt"]);
    assert_eq!(fs::read(s.root.join("b.txt")).unwrap(), b"alpha");
    // Two local files: both go, and the note says how to mean the other thing.
    let (_, stderr) = s.ok(&["put", "small.txt", "b.txt"]);
    assert_eq!(fs::read(s.root.join("b.txt")).unwrap(), b"bravo");
    assert!(stderr.contains("use --to b.txt"), "{stderr}");

    // `get` of several files into a local directory.
    fs::create_dir(s.local.join("back")).unwrap();
    s.ok(&["get", "dir/a.txt", "dir/b.txt", "back"]);
    assert_eq!(fs::read(s.local.join("back/a.txt")).unwrap(), b"alpha");
    assert_eq!(fs::read(s.local.join("back/b.txt")).unwrap(), b"bravo");
    let err = s.refused(&["get", "dir/a.txt", "dir/b.txt", "nowhere"]);
    assert!(err.contains("nowhere: not a local directory"), "{err}");
    // One failure among several: the others still go, and the end says how many failed.
    let err = s.refused(&["get", "dir/a.txt", "missing.txt", "back"]);
    assert!(err.contains("missing.txt: no such file"), "{err}");
    assert!(err.contains("1 of 2 downloads failed"), "{err}");
    // `.` is the root on the server; a local name ending with `/` must be a directory.
    s.ok(&["put", "small.txt", "."]);
    s.ok(&["mv", "dir/small.txt", "."]);
    assert_eq!(fs::read(s.root.join("small.txt")).unwrap(), b"small");
    assert!(!s.root.join("dir/small.txt").exists());
    let err = s.refused(&["get", "small.txt", "newdir/"]);
    assert!(err.contains("newdir/: no such local directory"), "{err}");
    assert!(!s.local.join("newdir").exists());
    // A directory without -r is refused with the way out.
    let err = s.refused(&["get", "dir"]);
    assert!(err.contains("use -r"), "{err}");
    assert!(!s.local.join("dir").exists());
}

/// Where each of `wanted` first appears in `text`, failing if one does not.
fn positions(text: &str, wanted: &[&str]) -> Vec<usize> {
    wanted
        .iter()
        .map(|w| {
            text.find(w)
                .unwrap_or_else(|| panic!("no `{w}` in:\n{text}"))
        })
        .collect()
}

/// Whether `wanted` appear in `text` in this order.
fn in_order(text: &str, wanted: &[&str]) -> bool {
    positions(text, wanted).windows(2).all(|w| w[0] < w[1])
}

#[test]
fn each_failure_among_several_files_is_reported_before_the_next_file() {
    let s = Setup::new();
    s.write_local("a.txt", b"alpha");
    s.write_local("huge.bin", &pattern(2 << 20, 3));
    // The missing file is reported before the large one after it is sent, not after.
    let err = s.refused(&["put", "a.txt", "missing.txt", "huge.bin", "dest/"]);
    let order = [
        "stored dest/a.txt",
        "missing.txt: ",
        "stored dest/huge.bin",
        "1 of 3 uploads failed",
    ];
    assert!(in_order(&err, &order), "{err}");
    assert_eq!(err.matches("missing.txt").count(), 1, "{err}");
    // The same for rm, get, mkdir and mv.
    let err = s.refused(&["rm", "dest/a.txt", "dest/missing.txt", "dest/huge.bin"]);
    let order = [
        "deleted dest/a.txt",
        "dest/missing.txt: ",
        "deleted dest/huge.bin",
        "1 of 3 deletions failed",
    ];
    assert!(in_order(&err, &order), "{err}");
    s.ok(&["put", "a.txt", "huge.bin", "dest/"]);
    fs::create_dir(s.local.join("back")).unwrap();
    let err = s.refused(&["get", "dest/a.txt", "nothing.txt", "dest/huge.bin", "back"]);
    let order = [
        "wrote ",
        "nothing.txt: ",
        "huge.bin (",
        "1 of 3 downloads failed",
    ];
    assert!(in_order(&err, &order), "{err}");
    let err = s.refused(&["mkdir", "m1", "dest/a.txt/sub", "m2"]);
    let order = [
        "made m1/",
        "dest/a.txt/sub",
        "made m2/",
        "1 of 3 directories failed",
    ];
    assert!(in_order(&err, &order), "{err}");
    let err = s.refused(&["mv", "dest/a.txt", "gone.txt", "dest/huge.bin", "m1"]);
    let order = [
        "renamed dest/a.txt",
        "gone.txt",
        "renamed dest/huge.bin",
        "1 of 3 renames failed",
    ];
    assert!(in_order(&err, &order), "{err}");
    // One thing, one failure: its error alone, once, no count.
    let err = s.refused(&["rm", "gone.txt"]);
    assert_eq!(err.matches("gone.txt").count(), 1, "{err}");
    assert!(!err.contains("failed"), "{err}");
}

#[test]
fn messages_say_which_side_is_missing_and_show_names_as_typed() {
    let s = Setup::new();
    s.write_local("q3.txt", b"q3");
    s.ok(&["put", "q3.txt", "a/q3.txt"]);
    // Into a directory that does not exist: the destination is named as the missing side.
    let err = s.refused(&["mv", "a/q3.txt", "archive/"]);
    assert!(
        err.contains("the destination directory archive does not exist")
            && err.contains("a/q3.txt was not moved"),
        "{err}"
    );
    assert!(!err.contains("archive/q3.txt: no such file"), "{err}");
    assert!(s.root.join("a/q3.txt").exists());
    // A source that does not exist is named as such.
    let err = s.refused(&["mv", "a/missing.txt", "a/q4.txt"]);
    assert!(
        err.contains("a/missing.txt: no such file or directory; nothing was moved"),
        "{err}"
    );
    // A directory that still holds something: its own code, and the way out.
    let err = s.refused(&["rm", "a"]);
    assert!(
        err.contains("(not_empty)") && err.contains("use -r"),
        "{err}"
    );
    // The system's words without `(os error N)`.
    let err = s.refused(&["put", "missing.txt"]);
    assert!(err.contains("missing.txt: "), "{err}");
    assert!(!err.contains("os error"), "{err}");
    // Names as typed: a backslash as it is, only what cannot be printed escaped, and that as
    // a shell's `$'...'` reads it.
    let err = s.refused(&["stat", "bad\\name"]);
    assert!(err.contains("`bad\\name`"), "{err}");
    let err = s.refused(&["stat", "ctl\u{1}name"]);
    assert!(err.contains("`ctl\\x01name`"), "{err}");
    assert!(!err.contains("\\u{"), "{err}");
}

#[test]
fn trees_go_up_and_down_with_r_and_rm_r_removes_them() {
    let s = Setup::new();
    let big = pattern(300_000, 7);
    s.write_local("tree/top.txt", b"top");
    s.write_local("tree/sub/deep/big.bin", &big);
    s.write_local("tree/名前/ファイル.txt", "中身".as_bytes());
    fs::create_dir_all(s.local.join("tree/empty")).unwrap();
    // A link in the tree is not followed (it would pull in files from elsewhere): it is
    // skipped with a note, which is no failure, as rsync does.
    symlink("/etc", s.local.join("tree/etc-link")).unwrap();
    let (_, stderr) = s.ok(&["put", "-r", "tree"]);
    assert!(
        stderr.contains("note: ")
            && stderr.contains("etc-link: a symbolic link (links are not followed), skipped"),
        "{stderr}"
    );
    assert!(!stderr.contains("unstick ftp: "), "{stderr}");
    assert_eq!(
        tree(&s.root),
        [
            "tree/",
            "tree/empty/",
            "tree/sub/",
            "tree/sub/deep/",
            "tree/sub/deep/big.bin",
            "tree/top.txt",
            "tree/名前/",
            "tree/名前/ファイル.txt",
        ]
    );
    assert_eq!(fs::read(s.root.join("tree/sub/deep/big.bin")).unwrap(), big);
    // Into an existing remote directory, under the tree's own name.
    s.ok(&["mkdir", "backup"]);
    fs::remove_file(s.local.join("tree/etc-link")).unwrap();
    s.ok(&["put", "-r", "tree", "backup"]);
    assert_eq!(
        fs::read(s.root.join("backup/tree/名前/ファイル.txt")).unwrap(),
        "中身".as_bytes()
    );

    // Down again, into a new local directory.
    s.ok(&["get", "-r", "tree", "copy"]);
    assert_eq!(
        tree(&s.local.join("copy")),
        [
            "empty/",
            "sub/",
            "sub/deep/",
            "sub/deep/big.bin",
            "top.txt",
            "名前/",
            "名前/ファイル.txt",
        ]
    );
    assert_eq!(
        fs::read(s.local.join("copy/sub/deep/big.bin")).unwrap(),
        big
    );

    // An upload over an existing name that broke off: the name is listed twice (file and
    // partial) and `rm -r` takes both with one delete.
    let mut raw = Raw::connect(&s.server.addr);
    raw.header(r#"{"op":"put","path":"tree/top.txt","total_size":10}"#);
    raw.body(b"abc");
    drop(raw);
    let idle = shell_common::eventually(Duration::from_secs(10), || {
        serve_common::partial_is_idle(&s.root.join("tree"), "top.txt")
    });
    assert!(idle, "the torn upload was not kept");
    let (listing, _) = s.ok(&["ls", "tree"]);
    assert!(listing.contains("top.txt [partial upload]"), "{listing}");

    // A non-empty directory needs -r; with it, everything below goes, depth first.
    let err = s.refused(&["rm", "tree"]);
    assert!(err.contains("not empty") && err.contains("use -r"), "{err}");
    let (_, stderr) = s.ok(&["rm", "-r", "tree", "backup"]);
    assert!(
        stderr.contains("deleted tree (7 entries below it)"),
        "{stderr}"
    );
    assert_eq!(tree(&s.root), Vec::<String>::new());
}

#[test]
fn dash_is_standard_input_and_standard_output() {
    let s = Setup::new();
    let data = pattern(1 << 20, 3);
    let (_, stderr) = {
        let out = s.ftp_with_input(&["put", "-", "piped.bin"], &data);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            out.stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert!(stderr.contains("from standard input"), "{stderr}");
    assert_eq!(fs::read(s.root.join("piped.bin")).unwrap(), data);
    // Nothing named `-` anywhere, and the spool is gone.
    assert!(!s.local.join("-").exists() && !s.root.join("-").exists());

    let out = s.ftp(&["get", "piped.bin", "-"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Standard output holds the file's bytes and nothing else; the note is on stderr.
    assert_eq!(out.stdout, data);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("xxh3 {} verified", xxh3_hex(&data))),
        "{stderr}"
    );
    assert!(!s.local.join("-").exists());

    let err = s.refused(&["put", "-"]);
    assert!(err.contains("standard input has no name"), "{err}");
    let err = s.refused(&["get", "piped.bin", "piped.bin", "-"]);
    assert!(err.contains("takes one remote file"), "{err}");
}

#[test]
fn mkdir_and_mv_work_and_never_leave_the_root() {
    let s = Setup::new();
    let outside = s._dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    s.write_local("a.txt", b"alpha");
    s.ok(&["put", "a.txt"]);

    s.ok(&["mkdir", "-p", "x/y/z"]);
    assert!(s.root.join("x/y/z").is_dir());
    s.ok(&["mkdir", "-p", "x/y"]); // an existing directory is fine with -p
    let err = s.refused(&["mkdir", "x"]);
    assert!(
        err.contains("(exists)") && err.contains("x: exists already"),
        "{err}"
    );
    let err = s.refused(&["mkdir", "no/parent"]);
    assert!(err.contains("no such file or directory"), "{err}");
    let err = s.refused(&["mkdir", "a.txt/sub"]);
    assert!(err.contains("not a directory"), "{err}");

    // mv: a new name, then into a directory (as mv does), then back under a name.
    s.ok(&["mv", "a.txt", "b.txt"]);
    assert_eq!(fs::read(s.root.join("b.txt")).unwrap(), b"alpha");
    s.ok(&["mv", "b.txt", "x/y"]);
    assert_eq!(fs::read(s.root.join("x/y/b.txt")).unwrap(), b"alpha");
    s.ok(&["rename", "x/y/b.txt", "c.txt"]);
    assert_eq!(fs::read(s.root.join("c.txt")).unwrap(), b"alpha");
    s.ok(&["mv", "x", "moved"]);
    assert!(s.root.join("moved/y/z").is_dir() && !s.root.join("x").exists());
    let err = s.refused(&["mv", "moved", "moved/y/inside"]);
    assert!(err.contains("cannot be moved inside itself"), "{err}");
    let err = s.refused(&["mv", "nothing", "c2.txt"]);
    assert!(err.contains("nothing: no such file or directory"), "{err}");

    // Escapes: refused by the client, and by the server when a raw peer tries.
    for args in [
        &["mkdir", "../escape"][..],
        &["mkdir", "/abs"],
        &["mv", "c.txt", "../escape.txt"],
        &["mv", "c.txt", ".unstick-partial-c.txt"],
        &["mv", "../etc/passwd", "c.txt"],
    ] {
        let err = s.refused(args);
        assert!(
            err.contains("refused") || err.contains("reserved"),
            "{args:?}: {err}"
        );
    }
    let mut raw = Raw::connect(&s.server.addr);
    for header in [
        r#"{"op":"mkdir","path":"../escape","parents":true}"#,
        r#"{"op":"rename","path":"c.txt","to":"../escape.txt"}"#,
        r#"{"op":"rename","path":"c.txt","to":"d/.unstick-tmp-1"}"#,
        r#"{"op":"rename","path":"c.txt","to":"/tmp/x"}"#,
    ] {
        raw.header(header);
        let (reply, _) = raw.reply().expect("a reply");
        assert_eq!(reply["op"], "error", "{header}");
        assert_eq!(reply["code"], "bad_path", "{header}: {reply}");
    }
    // A link inside the root is never walked through, by mkdir or by mv.
    symlink(&outside, s.root.join("link")).unwrap();
    let err = s.refused(&["mkdir", "-p", "link/made"]);
    assert!(err.contains("symbolic link"), "{err}");
    let err = s.refused(&["mv", "c.txt", "link/c.txt"]);
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    assert_eq!(fs::read(s.root.join("c.txt")).unwrap(), b"alpha");
    assert!(!s._dir.path().join("escape").exists());
    assert!(!s._dir.path().join("escape.txt").exists());
}

#[test]
fn ls_marks_partial_uploads_aligns_wide_names_and_has_long_and_human_forms() {
    let s = Setup::new();
    s.write_local("名前.txt", b"12345");
    s.write_local("plain.txt", &pattern(2048, 1));
    s.ok(&["put", "名前.txt", "plain.txt", "d/"]);
    // An upload that broke off after 3 bytes, as `stat` reports it.
    let mut raw = Raw::connect(&s.server.addr);
    raw.header(r#"{"op":"put","path":"d/big.iso","total_size":10}"#);
    raw.body(b"abc");
    drop(raw);
    let partial = s.root.join("d/.unstick-partial-big.iso");
    let idle = shell_common::eventually(Duration::from_secs(10), || {
        fs::metadata(&partial).is_ok_and(|m| m.len() == 3)
            && serve_common::partial_is_idle(&s.root.join("d"), "big.iso")
    });
    assert!(idle, "the torn upload was not kept");
    let stat = s.refused(&["stat", "d/big.iso"]);
    assert!(stat.contains("an interrupted upload of 3 bytes"), "{stat}");
    let (listing, _) = s.ok(&["ls", "d"]);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 3, "{listing}");
    assert!(
        lines[0].starts_with("big.iso [partial upload]  "),
        "{listing}"
    );
    assert!(lines[1].starts_with("plain.txt  "), "{listing}");
    assert!(lines[2].starts_with("名前.txt  "), "{listing}");
    // Columns line up on screen: `名前` is four columns wide, so its line has two chars fewer.
    let widths: Vec<usize> = lines
        .iter()
        .map(|l| l.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum())
        .collect();
    assert!(widths.iter().all(|&w| w == widths[0]), "{listing}");

    let (long, _) = s.ok(&["ls", "-l", "--human-readable", "d"]);
    let lines: Vec<&str> = long.lines().collect();
    assert!(lines[0].starts_with("partial     3  "), "{long}");
    assert!(lines[0].ends_with("  big.iso"), "{long}");
    assert!(lines[1].starts_with("file     2.0K  "), "{long}");
    assert!(lines[2].ends_with("  名前.txt"), "{long}");

    // --md5 means nothing to ls, stat or delete: not offered, and refused.
    let out = s.ftp(&["ls", "--md5"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("unexpected argument '--md5'"), "{err}");
    let help = s.ok(&["ls", "--help"]).0;
    assert!(!help.contains("--md5"), "{help}");
    assert!(s.ok(&["put", "--help"]).0.contains("--md5"));
}

#[test]
fn resume_skips_a_complete_file_and_no_clobber_keeps_local_files() {
    let s = Setup::new();
    let data = pattern(100_000, 9);
    s.write_local("f.bin", &data);
    s.ok(&["put", "f.bin"]);
    let (_, stderr) = s.ok(&["put", "--resume", "f.bin"]);
    assert!(
        stderr.contains("already complete on the server") && stderr.contains("skipped"),
        "{stderr}"
    );
    assert!(!stderr.contains("stored"), "{stderr}");
    // Same size, other bytes: not skipped, replaced.
    let mut other = data.clone();
    other[50_000] ^= 0xff;
    fs::write(s.root.join("f.bin"), &other).unwrap();
    let (_, stderr) = s.ok(&["put", "--resume", "f.bin"]);
    assert!(stderr.contains("stored f.bin"), "{stderr}");
    assert_eq!(fs::read(s.root.join("f.bin")).unwrap(), data);

    // get: by default a verified download replaces the local file, as scp does...
    s.write_local("g.bin", b"old");
    s.ok(&["put", "f.bin", "--to", "g.bin"]);
    s.ok(&["get", "g.bin"]);
    assert_eq!(fs::read(s.local.join("g.bin")).unwrap(), data);
    // ... and with --no-clobber it never does.
    fs::write(s.local.join("g.bin"), b"keep me").unwrap();
    let (_, stderr) = s.ok(&["get", "--no-clobber", "g.bin"]);
    assert!(
        stderr.contains("exists; not replaced (--no-clobber)"),
        "{stderr}"
    );
    assert_eq!(fs::read(s.local.join("g.bin")).unwrap(), b"keep me");
    s.ok(&["get", "-n", "g.bin", "fresh.bin"]);
    assert_eq!(fs::read(s.local.join("fresh.bin")).unwrap(), data);
}

#[test]
fn a_download_into_a_missing_directory_names_the_path_given_not_the_staging_file() {
    let s = Setup::new();
    s.write_local("x.txt", b"x");
    s.ok(&["put", "x.txt"]);
    let err = s.refused(&["get", "x.txt", "nodir/sub/x.txt"]);
    assert!(err.contains("nodir/sub/x.txt: no such directory"), "{err}");
    assert!(!err.contains("unstick-part"), "{err}");
}

/// Whether the partial upload stored as `partial` in `dir` is kept and not held by an upload.
fn stored_partial_is_idle(dir: &Path, partial: &str) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(file) = fs::File::open(dir.join(partial)) else {
        return false;
    };
    // SAFETY: `file` is an open descriptor for the duration of both calls; flock has no memory
    // effects.
    unsafe {
        if libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) != 0 {
            return false;
        }
        libc::flock(file.as_raw_fd(), libc::LOCK_UN);
    }
    true
}

#[test]
fn a_partial_upload_of_a_long_name_is_listed_and_rm_r_takes_its_directory() {
    let s = Setup::new();
    // A name too long for `.unstick-partial-<name>`: its partial is stored under a digest.
    let long = format!("{}.bin", "n".repeat(240));
    let mut raw = Raw::connect(&s.server.addr);
    raw.header(&format!(
        r#"{{"op":"put","path":"drop/{long}","total_size":10}}"#
    ));
    raw.body(b"abcd");
    drop(raw);
    let partial = format!(".unstick-partial~{}", xxh3_hex(long.as_bytes()));
    let idle = shell_common::eventually(Duration::from_secs(10), || {
        fs::metadata(s.root.join("drop").join(&partial)).is_ok_and(|m| m.len() == 4)
            && stored_partial_is_idle(&s.root.join("drop"), &partial)
    });
    assert!(idle, "the torn upload was not kept");

    let (listing, _) = s.ok(&["ls", "-l", "drop"]);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 1, "{listing}");
    assert!(
        lines[0].starts_with("partial") && lines[0].ends_with(&format!("  {long}")),
        "{listing}"
    );
    let err = s.refused(&["rm", "drop"]);
    assert!(err.contains("not empty"), "{err}");
    let (_, stderr) = s.ok(&["rm", "-r", "drop"]);
    assert!(
        stderr.contains("deleted drop (1 entries below it)"),
        "{stderr}"
    );
    assert_eq!(tree(&s.root), Vec::<String>::new());
}

#[test]
fn partial_uploads_past_partial_max_age_are_swept_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("sub")).unwrap();
    let days_ago = |days: u64| std::time::SystemTime::now() - Duration::from_secs(days * 24 * 3600);
    let long = "l".repeat(250);
    let plant = |path: PathBuf, days: u64| {
        fs::write(&path, b"held").unwrap();
        let file = fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(days_ago(days)).unwrap();
    };
    let hashed = format!(".unstick-partial~{}", xxh3_hex(long.as_bytes()));
    plant(root.join("sub/.unstick-partial-old.iso"), 3);
    plant(root.join("sub").join(&hashed), 3);
    fs::write(root.join("sub").join(format!("{hashed}.name")), &long).unwrap();
    plant(root.join("sub/.unstick-partial-young.iso"), 1);

    let _server = Served::ftp(&root, &["--partial-max-age", "2d"]);
    let swept = shell_common::eventually(Duration::from_secs(30), || {
        tree(&root) == ["sub/", "sub/.unstick-partial-young.iso"]
    });
    assert!(swept, "{:?}", tree(&root));
}

/// The permission bits (with set-user-ID, set-group-ID and sticky) and the modification time
/// of `path`, in whole seconds.
fn mode_and_mtime(path: &Path) -> (u32, i64) {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path).unwrap();
    (meta.mode() & 0o7777, meta.mtime())
}

/// Gives the local file `path` the mode `mode` and the modification time `mtime`.
fn set_mode_and_mtime(path: &Path, mode: u32, mtime: i64) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    let at = std::time::UNIX_EPOCH + Duration::from_secs(mtime as u64);
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(at)
        .unwrap();
}

#[test]
fn put_p_and_get_p_keep_mode_and_mtime_with_r_too() {
    let s = Setup::new();
    s.write_local("run.sh", b"#!/bin/sh\necho hi\n");
    s.write_local("tree/bin/tool.sh", b"#!/bin/sh\n");
    s.write_local("tree/secret.txt", b"private");
    let (t1, t2, t3) = (1_000_000_000, 1_100_000_000, 1_200_000_000);
    // Set-user-ID asked for: never kept.
    set_mode_and_mtime(&s.local.join("run.sh"), 0o4755, t1);
    set_mode_and_mtime(&s.local.join("tree/bin/tool.sh"), 0o750, t2);
    set_mode_and_mtime(&s.local.join("tree/secret.txt"), 0o600, t3);
    symlink("/etc/passwd", s.local.join("tree/passwd-link")).unwrap();

    s.ok(&["put", "-p", "run.sh"]);
    assert_eq!(mode_and_mtime(&s.root.join("run.sh")), (0o755, t1));
    let (stat, _) = s.ok(&["stat", "run.sh"]);
    assert!(stat.contains("mode 0755"), "{stat}");
    // Without -p: the server's own mode and the time of the upload.
    s.ok(&["put", "run.sh", "plain.sh"]);
    let (mode, mtime) = mode_and_mtime(&s.root.join("plain.sh"));
    assert_eq!(mode & 0o111, 0, "{mode:o}");
    assert_ne!(mtime, t1);

    // A tree: every file keeps its own; the link is a note, and the command succeeds.
    let (_, stderr) = s.ok(&["put", "-p", "-r", "tree"]);
    assert!(stderr.contains("passwd-link: a symbolic link"), "{stderr}");
    assert_eq!(
        mode_and_mtime(&s.root.join("tree/bin/tool.sh")),
        (0o750, t2)
    );
    assert_eq!(mode_and_mtime(&s.root.join("tree/secret.txt")), (0o600, t3));

    // And back: get -p gives the local file what the server reports.
    s.ok(&["get", "-p", "run.sh", "copy.sh"]);
    assert_eq!(mode_and_mtime(&s.local.join("copy.sh")), (0o755, t1));
    s.ok(&["get", "run.sh", "plain-copy.sh"]);
    assert_ne!(mode_and_mtime(&s.local.join("plain-copy.sh")).1, t1);
    s.ok(&["get", "-p", "-r", "tree", "tree-copy"]);
    assert_eq!(
        mode_and_mtime(&s.local.join("tree-copy/bin/tool.sh")),
        (0o750, t2)
    );
    assert_eq!(
        mode_and_mtime(&s.local.join("tree-copy/secret.txt")),
        (0o600, t3)
    );
}

#[test]
fn a_put_whose_mode_is_not_permission_bits_is_refused() {
    let s = Setup::new();
    let mut raw = Raw::connect(&s.server.addr);
    raw.header(r#"{"op":"put","path":"odd","mode":33188,"total_size":0}"#);
    let (reply, _) = raw.reply().expect("a reply");
    assert_eq!(reply["code"], "bad_request", "{reply}");
    assert!(
        reply["message"]
            .as_str()
            .unwrap()
            .contains("permission bits"),
        "{reply}"
    );
    assert_eq!(tree(&s.root), Vec::<String>::new());
}

/// Reads one frame's head from `conn`: its header's text (the body, if any, is left unread).
fn read_head(conn: &mut TcpStream) -> Option<String> {
    let mut prefix = [0u8; 4];
    conn.read_exact(&mut prefix).ok()?;
    let mut header = vec![0u8; i32::from_le_bytes(prefix) as usize];
    conn.read_exact(&mut header).ok()?;
    String::from_utf8(header).ok()
}

/// A header frame with no body.
fn frame(header: &str) -> Vec<u8> {
    let mut bytes = (header.len() as i32).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes
}

/// A loopback file server of one connection that answers a `stat` (nothing there) and, to the
/// next request, sends `answer` and then neither reads nor answers: a transfer to it stays in
/// progress. Its address, and the connection once that request's head came (within `LIMIT`).
fn stalling_server(answer: Vec<u8>) -> (String, std::sync::mpsc::Receiver<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut conn, _)) = listener.accept() else {
            return;
        };
        conn.set_read_timeout(Some(LIMIT)).unwrap();
        while let Some(head) = read_head(&mut conn) {
            if head.contains(r#""op":"stat""#) {
                let reply = r#"{"op":"stat","exists":false,"partial_size":0,"total_size":0}"#;
                let _ = conn.write_all(&frame(reply));
                continue;
            }
            let _ = conn.write_all(&answer);
            let _ = tx.send(conn);
            return;
        }
    });
    (addr, rx)
}

/// Sends SIGINT to `client` once `server` saw its first bytes; its output.
fn interrupt_when_started(
    client: ClientProcess,
    server: &std::sync::mpsc::Receiver<TcpStream>,
) -> Output {
    // Held (unread) until the client has ended.
    let _held = server.recv_timeout(LIMIT).expect("the client connected");
    let pid = client.0.as_ref().unwrap().id();
    assert!(serve_common::send_signal(pid, libc::SIGINT));
    client.finish(LIMIT)
}

#[test]
fn ctrl_c_during_a_transfer_says_that_resume_continues_it() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.bin");
    fs::write(&big, pattern(32 << 20, 3)).unwrap();
    let (addr, server) = stalling_server(Vec::new());
    let client = ClientProcess::spawn(
        &["ftp", "put", big.to_str().unwrap(), "--addr", &addr],
        Some(dir.path()),
    );
    let out = interrupt_when_started(client, &server);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted (SIGINT): the server keeps what it received of big.bin")
            && stderr.contains("`unstick ftp put` with --resume"),
        "{stderr}"
    );

    // A download: the server announced 1 MiB and sent part of it.
    let mut reply =
        frame(r#"{"op":"file","size":1048576,"offset":0,"mtime":0,"total_size":1048576}"#);
    reply.extend_from_slice(&[7u8; 1000]);
    let (addr, server) = stalling_server(reply);
    let client = ClientProcess::spawn(
        &["ftp", "get", "big.bin", "copy.bin", "--addr", &addr],
        Some(dir.path()),
    );
    let out = interrupt_when_started(client, &server);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("copy.bin is kept in its partial download")
            && stderr.contains("`unstick ftp get` with --resume"),
        "{stderr}"
    );
}

#[test]
fn a_plain_put_over_an_interrupted_upload_says_it_starts_over() {
    let s = Setup::new();
    let big = pattern(2 << 20, 5);
    s.write_local("big.bin", &big);
    let mut raw = Raw::connect(&s.server.addr);
    raw.header(&format!(
        r#"{{"op":"put","path":"big.bin","total_size":{}}}"#,
        big.len()
    ));
    raw.body(&big[..4096]);
    drop(raw);
    let idle = shell_common::eventually(Duration::from_secs(10), || {
        serve_common::partial_is_idle(&s.root, "big.bin")
    });
    assert!(idle, "the torn upload was not kept");
    let (_, stderr) = s.ok(&["put", "big.bin"]);
    assert!(
        stderr.contains("the server holds an interrupted upload of big.bin (4096 bytes)")
            && stderr.contains("starts from byte 0 and replaces it")
            && stderr.contains("`put --resume` continues it instead"),
        "{stderr}"
    );
    assert_eq!(fs::read(s.root.join("big.bin")).unwrap(), big);
    // With nothing held, nothing is said.
    let (_, stderr) = s.ok(&["put", "big.bin"]);
    assert!(!stderr.contains("interrupted upload"), "{stderr}");
}

#[test]
fn rm_f_takes_missing_names_and_remote_patterns_expand_from_a_listing() {
    let s = Setup::new();
    for name in ["a.txt", "b.txt", "c.log", ".hidden.txt", "d.TXT"] {
        s.write_local(&format!("logs/{name}"), name.as_bytes());
    }
    s.ok(&["put", "-r", "logs"]);

    // get: the matching files, into the current directory or the one named.
    let (_, stderr) = s.ok(&["get", "logs/*.txt"]);
    assert!(
        stderr.contains("wrote a.txt") && stderr.contains("wrote b.txt"),
        "{stderr}"
    );
    assert!(
        !s.local.join(".hidden.txt").exists(),
        "a dot name needs a dot pattern"
    );
    assert!(!s.local.join("d.TXT").exists() && !s.local.join("c.log").exists());
    fs::create_dir(s.local.join("some")).unwrap();
    s.ok(&["get", "logs/[bc].*", "logs/?.TXT", "some"]);
    assert_eq!(tree(&s.local.join("some")), ["b.txt", "c.log", "d.TXT"]);
    // Several matches and a destination that is no directory: refused, nothing written.
    let err = s.refused(&["get", "logs/*.txt", "one-file.txt"]);
    assert!(err.contains("not a local directory"), "{err}");
    let err = s.refused(&["get", "logs/*.zip"]);
    assert!(
        err.contains("`logs/*.zip`: no remote name matches"),
        "{err}"
    );
    let err = s.refused(&["get", "lo*/*.txt"]);
    assert!(err.contains("only the last component"), "{err}");
    // A pattern character before the last component is part of a name.
    let err = s.refused(&["get", "lo*/a.txt"]);
    assert!(err.contains("lo*/a.txt: no such file"), "{err}");

    // rm: the matching names only.
    s.ok(&["rm", "logs/*.log"]);
    assert_eq!(
        tree(&s.root.join("logs")),
        [".hidden.txt", "a.txt", "b.txt", "d.TXT"]
    );
    let err = s.refused(&["rm", "logs/*.log"]);
    assert!(err.contains("no remote name matches"), "{err}");
    // -f: missing names and empty matches are fine, and said nothing of.
    let (_, stderr) = s.ok(&["rm", "-f", "logs/*.log", "logs/missing.txt", "logs/a.txt"]);
    assert!(!stderr.contains("unstick ftp"), "{stderr}");
    assert!(stderr.contains("deleted logs/a.txt"), "{stderr}");
    let err = s.refused(&["rm", "logs/missing.txt"]);
    assert!(err.contains("no such file"), "{err}");
    s.ok(&["rm", "-r", "-f", "gone", "logs"]);
    assert_eq!(tree(&s.root), Vec::<String>::new());
}

#[test]
fn limit_rate_takes_a_size_a_second_and_the_transfer_still_arrives_whole() {
    let s = Setup::new();
    let data = pattern(300_000, 9);
    s.write_local("paced.bin", &data);
    s.ok(&["put", "--limit-rate", "2M", "paced.bin"]);
    assert_eq!(fs::read(s.root.join("paced.bin")).unwrap(), data);
    s.ok(&["get", "--limit-rate", "2M", "paced.bin", "back.bin"]);
    assert_eq!(fs::read(s.local.join("back.bin")).unwrap(), data);
    let out = s.ftp(&["get", "--limit-rate", "2048K", "paced.bin", "-"]);
    assert!(out.status.success());
    assert_eq!(out.stdout, data);
    for bad in ["0", "12X", "fast"] {
        let out = s.ftp(&["put", "--limit-rate", bad, "paced.bin"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("--limit-rate"), "{bad}: {err}");
    }
}
