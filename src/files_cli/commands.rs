//! The client commands of `unstick ftp`: what the arguments mean (which file goes where, as
//! `scp` reads them), the walks of `-r`, standard input and output as `-`, and what is
//! printed. The protocol is [`FileClient`]'s; every remote path is checked before it is sent,
//! and every local name taken from a listing is checked before it is written.

use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use unicode_width::UnicodeWidthStr;
use unstick_core::ErrorCode;
use unstick_std::files::{
    ClientError, Existing, FileClient, NoProgress, RemoteEntry, RemotePath, check_local_name,
    escape_for_terminal, is_partial_mismatch, seed_put,
};
use unstick_std::system_error::SystemError;

use super::client_args::{ClientArgs, Transfer};
use super::interrupt::{self, InFlight};
use super::progress_bar::progress_bar;
use super::remote_glob;
use crate::console;
use crate::exit_status::WatchedStdout;

/// `-`: standard input for `put`, standard output for `get`.
const STDIO: &str = "-";

/// Why a command failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// What to tell the user (after `unstick ftp: `).
    Message(String),
    /// Standard output is a pipe nobody reads any more: the command ends quietly, with
    /// [`OUTPUT_CLOSED`](crate::exit_status::OUTPUT_CLOSED).
    OutputClosed,
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Message(message)
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        Failure::Message(message.to_owned())
    }
}

/// A failed write of a command's results to standard output.
fn output_failed(out: &WatchedStdout, e: &io::Error) -> Failure {
    if out.closed() {
        Failure::OutputClosed
    } else {
        Failure::Message(format!("standard output: {}", SystemError(e)))
    }
}

/// A failure of the local file system at `path`, in the system's words.
fn local_failure(path: &Path, e: &io::Error) -> String {
    format!(
        "{}: {}",
        escape_for_terminal(&path.display().to_string()),
        SystemError(e)
    )
}

/// A connection made when first needed and dropped after a failure, so that the next file
/// starts on a fresh one (a refused upload closes the connection; a serial line is held by one
/// client at a time).
struct Connection<'a> {
    args: &'a ClientArgs,
    transfer: Transfer,
    client: Option<FileClient>,
}

impl<'a> Connection<'a> {
    /// A connection for requests that transfer no file.
    fn new(args: &'a ClientArgs) -> Self {
        Connection::transferring(args, Transfer::PLAIN)
    }

    /// A connection whose transfers go as `transfer` says.
    fn transferring(args: &'a ClientArgs, transfer: Transfer) -> Self {
        Connection {
            args,
            transfer,
            client: None,
        }
    }

    /// Runs `op` on the connection; a failure drops it.
    fn run<T>(
        &mut self,
        op: impl FnOnce(&mut FileClient) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let client = match &mut self.client {
            Some(client) => client,
            slot => slot.insert(self.args.connect(self.transfer)?),
        };
        let result = op(client);
        if result.is_err() {
            self.client = None;
        }
        result
    }

    /// Lets go of the connection (before a reconnect).
    fn close(&mut self) {
        self.client = None;
    }
}

/// Counts the files a command handled, and reports each failure as it happens, as `scp`
/// does, so that one bad file does not stop the rest and is not heard of only after a long
/// upload that followed it. A command that handles one thing ends with that thing's error
/// alone; one that handles several (or walks a tree) ends with a count.
#[derive(Default)]
struct Tally {
    failed: usize,
    done: usize,
    /// Several things are handled: each failure is printed when it happens.
    several: bool,
    /// The failure of a command that handles one thing: its final error, not printed here.
    only: Option<String>,
}

impl Tally {
    /// A tally for a command given `items` things to handle.
    fn new(items: usize) -> Tally {
        Tally {
            several: items > 1,
            ..Tally::default()
        }
    }

    /// A walk (`-r`) begins: whatever its one argument held, there may be many things.
    fn walking(&mut self) {
        self.several = true;
    }

    fn record(&mut self, result: Result<(), String>) {
        // A command that was to handle one thing is handling another: it has several.
        if let Some(message) = self.only.take() {
            eprintln!("unstick ftp: {message}");
            self.several = true;
        }
        match result {
            Ok(()) => self.done += 1,
            Err(message) if self.several => {
                eprintln!("unstick ftp: {message}");
                self.failed += 1;
            }
            Err(message) => {
                self.only = Some(message);
                self.failed += 1;
            }
        }
    }

    fn finish(self, what: &str) -> Result<(), String> {
        match (self.failed, self.only) {
            (0, _) => Ok(()),
            (_, Some(message)) => Err(message),
            (n, None) => Err(format!("{n} of {} {what} failed", n + self.done)),
        }
    }
}

fn remote_path(text: &str) -> Result<RemotePath, String> {
    RemotePath::parse(text).map_err(|e| format!("remote path `{}`: {e}", escape_for_terminal(text)))
}

fn remote_dir(text: &str) -> Result<Option<RemotePath>, String> {
    RemotePath::parse_dir(text)
        .map_err(|e| format!("remote directory `{}`: {e}", escape_for_terminal(text)))
}

/// `name` inside the remote directory `dir` (`None`: the root).
fn remote_join(dir: Option<&RemotePath>, name: &str) -> Result<RemotePath, String> {
    match dir {
        None => remote_path(name),
        Some(dir) => remote_path(&format!("{}/{name}", dir.as_str())),
    }
}

/// The remote paths `text` names: itself, or, when its last component is a pattern
/// ([`remote_glob`]), the names in a listing of its directory that match and whose kind
/// `wanted` takes, sorted (a name listed twice, as a file and a partial upload, once). A
/// pattern that matches nothing is an error naming it, unless `none_is_fine` (`rm -f`).
fn expand_remote(
    conn: &mut Connection<'_>,
    text: &str,
    wanted: impl Fn(&str) -> bool,
    none_is_fine: bool,
) -> Result<Vec<String>, String> {
    let Some(pattern) = remote_glob::pattern_in(text)? else {
        return Ok(vec![text.to_owned()]);
    };
    let dir = remote_dir(pattern.dir)?;
    let entries = conn
        .run(|c| c.list(dir.as_ref()))
        .map_err(|e| e.to_string())?;
    let mut names: Vec<String> = entries
        .iter()
        .filter(|e| !e.name_escaped && wanted(&e.kind))
        .filter(|e| remote_glob::matches(pattern.pattern, &e.name))
        .map(|e| match &dir {
            None => e.name.clone(),
            Some(dir) => format!("{}/{}", dir.as_str(), e.name),
        })
        .collect();
    names.dedup();
    if names.is_empty() && !none_is_fine {
        return Err(format!(
            "`{}`: no remote name matches",
            escape_for_terminal(text)
        ));
    }
    Ok(names)
}

/// The last component of a local path, as a remote name.
fn local_file_name(local: &Path) -> Result<String, String> {
    local
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| {
            format!(
                "{}: cannot derive a remote name (not UTF-8, or no file name); give REMOTE",
                local.display()
            )
        })
}

/// A name from a listing (the server's choice), checked before it becomes a local file name:
/// one component, not `.` or `..`, not a trap on this system.
fn listed_local_name(entry: &RemoteEntry) -> Result<&str, String> {
    let name = entry.name.as_str();
    let shown = entry.display_name();
    if entry.name_escaped {
        return Err(format!(
            "{shown}: the name is not UTF-8 on the server; it cannot be named in a request, skipped"
        ));
    }
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\']) {
        return Err(format!(
            "{shown}: not a single file name; the server's listing is refused"
        ));
    }
    check_local_name(name)
        .map_err(|e| format!("{shown}: cannot be a local file name here: {e}"))?;
    Ok(name)
}

// ----------------------------------------------------------------------------------------
// put

/// What `put`'s arguments ask for: the files to send and where.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct PutPlan {
    /// Local files and directories.
    pub sources: Vec<PathBuf>,
    /// The destination as typed (`None`: the root, under each source's own name).
    pub dest: Option<String>,
}

/// Reads `put`'s arguments. With `--to`, every argument is a source. Otherwise, with two
/// arguments or more, the last is the destination, unless it names an existing local regular
/// file and does not end with `/`: then every argument is a source (that is `put *.txt` as the
/// shell expands it, into the root). `put - NAME` always reads NAME as the destination.
pub(super) fn plan_put(args: &[PathBuf], to: Option<String>) -> Result<PutPlan, String> {
    if let Some(dest) = to {
        return Ok(PutPlan {
            sources: args.to_vec(),
            dest: Some(dest),
        });
    }
    let Some((last, rest)) = args.split_last() else {
        return Err("nothing to upload: give LOCAL".into());
    };
    if rest.is_empty() {
        return Ok(PutPlan {
            sources: vec![last.clone()],
            dest: None,
        });
    }
    let text = last.to_str().ok_or_else(|| {
        format!(
            "{}: a remote path must be UTF-8 (use --to to name the destination)",
            last.display()
        )
    })?;
    let stdin_source = rest.len() == 1 && rest[0].as_os_str() == STDIO;
    let local_file = fs::metadata(last).is_ok_and(|m| m.is_file());
    if local_file && !text.ends_with('/') && !stdin_source {
        if let [first] = rest {
            eprintln!(
                "note: {} is a local file, so both are uploaded; to upload {} under that name, use --to {}",
                last.display(),
                first.display(),
                last.display()
            );
        }
        return Ok(PutPlan {
            sources: args.to_vec(),
            dest: None,
        });
    }
    Ok(PutPlan {
        sources: rest.to_vec(),
        dest: Some(text.to_owned()),
    })
}

/// Options of one `put`.
pub(super) struct PutOptions {
    pub recursive: bool,
    pub resume: bool,
    pub seed: bool,
    /// `--md5`, `-p`.
    pub transfer: Transfer,
}

pub(super) fn put(plan: PutPlan, options: &PutOptions, args: &ClientArgs) -> Result<(), String> {
    interrupt::watch();
    if plan.sources.iter().any(|s| s.as_os_str() == STDIO) {
        return put_stdin(&plan, options, args);
    }
    if options.seed {
        return put_seed(&plan, options, args);
    }
    let mut conn = Connection::transferring(args, options.transfer);
    let several = plan.sources.len() > 1;
    // Into a directory when there are several sources, no destination, a trailing `/`, or a
    // destination that is a remote directory (as `scp` does).
    let into_dir = match plan.dest.as_deref() {
        _ if several => true,
        None => true,
        Some(text) if text.ends_with('/') || text == "." => true,
        Some(text) => {
            let dest = remote_path(text)?;
            let stat = conn.run(|c| c.stat(&dest)).map_err(|e| e.to_string())?;
            stat.entry.is_some_and(|e| e.kind == "dir")
        }
    };
    let dest_dir = match (&plan.dest, into_dir) {
        (Some(text), true) => remote_dir(text)?,
        _ => None,
    };
    let mut tally = Tally::new(plan.sources.len());
    for source in &plan.sources {
        let target = if into_dir {
            local_file_name(source).and_then(|name| remote_join(dest_dir.as_ref(), &name))
        } else {
            remote_path(plan.dest.as_deref().unwrap_or_default())
        };
        let result = target.and_then(|target| match fs::metadata(source) {
            Ok(meta) if meta.is_dir() && options.recursive => {
                put_tree(&mut conn, source, &target, options, &mut tally)
            }
            Ok(meta) if meta.is_dir() => Err(format!(
                "{}: is a directory; use -r to upload it with what it holds",
                source.display()
            )),
            Ok(_) => put_file(&mut conn, source, &target, options.resume),
            Err(e) => Err(local_failure(source, &e)),
        });
        tally.record(result);
    }
    tally.finish("uploads")
}

/// Uploads the local directory `dir` as the remote directory `target`: the directory is made
/// (so empty ones arrive too), files are sent, subdirectories walked. Links are not followed,
/// so a link cannot pull in files from elsewhere: they, and anything else that is not a file
/// or a directory (a FIFO, a socket, a device), are skipped with a note, which is no failure
/// (as rsync skips non-regular files).
fn put_tree(
    conn: &mut Connection<'_>,
    dir: &Path,
    target: &RemotePath,
    options: &PutOptions,
    tally: &mut Tally,
) -> Result<(), String> {
    conn.run(|c| c.mkdir(target, true))
        .map_err(|e| e.to_string())?;
    let mut entries: Vec<_> = fs::read_dir(dir)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| local_failure(dir, &e))?;
    entries.sort_by_key(|e| e.file_name());
    tally.walking();
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type();
        if let Ok(kind) = &kind
            && !kind.is_dir()
            && !kind.is_file()
        {
            skipped(&path.display().to_string(), kind.is_symlink());
            continue;
        }
        let result = local_file_name(&path)
            .and_then(|name| remote_join(Some(target), &name))
            .and_then(|child| match &kind {
                Ok(kind) if kind.is_dir() => put_tree(conn, &path, &child, options, tally),
                Ok(_) => put_file(conn, &path, &child, options.resume),
                Err(e) => Err(local_failure(&path, e)),
            });
        // A subdirectory reports its own files; only its own failure counts here.
        match result {
            Ok(()) if kind.is_ok_and(|k| k.is_dir()) => {}
            other => tally.record(other),
        }
    }
    Ok(())
}

/// Below this size a plain `put` does not ask whether the server holds an interrupted upload
/// of the name: sending the file again costs about what resuming would save.
const PARTIAL_WORTH_A_NOTE: u64 = 1 << 20;

/// Uploads one file, as `put --resume` skipping it when the server already holds it whole. A
/// plain `put` of a file of a MiB or more first asks whether the server holds an interrupted
/// upload of the name, and says that this upload starts over and replaces it.
fn put_file(
    conn: &mut Connection<'_>,
    local: &Path,
    remote: &RemotePath,
    resume: bool,
) -> Result<(), String> {
    if resume && already_on_server(conn, local, remote)? {
        console::note(format_args!(
            "{}: already complete on the server (same size and digest); skipped",
            escape_for_terminal(remote.as_str())
        ));
        return Ok(());
    }
    if !resume {
        note_partial_replaced(conn, local, remote);
    }
    let _in_flight = InFlight::upload(remote.as_str());
    let mut progress = progress_bar(remote.file_name());
    let first = conn.run(|c| c.put(local, remote, resume, &mut progress));
    let report = match first {
        Err(e) if resume && is_partial_mismatch(&e) => {
            eprintln!("unstick ftp: {e}");
            eprintln!("unstick ftp: uploading the whole file again");
            conn.close();
            conn.run(|c| c.put(local, remote, false, &mut progress))
        }
        other => other,
    }
    .map_err(interrupted_hint)?;
    let resumed = resumed_note(report.resumed_from);
    console::note(format_args!(
        "stored {} ({}, {} {} verified{resumed})",
        escape_for_terminal(remote.as_str()),
        console::count(report.size, "byte"),
        report.digest.algorithm(),
        report.digest.to_hex()
    ));
    Ok(())
}

/// Says, before a plain `put` of `local`, that the interrupted upload the server holds of
/// `remote` is not continued but replaced. Nothing is said of a small file, and nothing when
/// the server cannot be asked (the upload that follows reports why).
fn note_partial_replaced(conn: &mut Connection<'_>, local: &Path, remote: &RemotePath) {
    if fs::metadata(local).map_or(true, |m| m.len() < PARTIAL_WORTH_A_NOTE) {
        return;
    }
    let Ok(stat) = conn.run(|c| c.stat(remote)) else {
        return;
    };
    if stat.partial_size > 0 {
        console::note(format_args!(
            "note: the server holds an interrupted upload of {} ({}); this upload starts from \
             byte 0 and replaces it (`put --resume` continues it instead)",
            escape_for_terminal(remote.as_str()),
            console::count(stat.partial_size, "byte")
        ));
    }
}

/// Whether the server holds `local` whole under `remote` (what rsync's skip is): a file of the
/// same size with no upload of it held for resume, and the same digest (the server hashes its
/// copy, nothing is sent). A different copy is replaced by the upload that follows.
fn already_on_server(
    conn: &mut Connection<'_>,
    local: &Path,
    remote: &RemotePath,
) -> Result<bool, String> {
    let mut file = File::open(local).map_err(|e| local_failure(local, &e))?;
    let size = file.metadata().map_err(|e| local_failure(local, &e))?.len();
    let stat = conn.run(|c| c.stat(remote)).map_err(|e| e.to_string())?;
    let same_size = stat
        .entry
        .as_ref()
        .is_some_and(|e| e.kind == "file" && e.size == size);
    if !same_size || stat.partial_size > 0 {
        return Ok(false);
    }
    let same = conn
        .run(|c| c.same_as_remote(&mut file, size, local, remote))
        .map_err(|e| e.to_string())?;
    if !same {
        // The comparison ended the connection's usefulness (see `same_as_remote`).
        conn.close();
    }
    Ok(same)
}

/// `put - NAME`: standard input, spooled to a temporary file first (the protocol announces a
/// body's size before it, and a pipe has none), then sent as any file.
fn put_stdin(plan: &PutPlan, options: &PutOptions, args: &ClientArgs) -> Result<(), String> {
    if plan.sources.len() != 1 {
        return Err("`-` (standard input) must be the only source".into());
    }
    if options.resume || options.seed || options.recursive {
        return Err("`-` (standard input) cannot be resumed, sent with --seed or with -r".into());
    }
    let Some(dest) = plan.dest.as_deref().filter(|d| !d.ends_with('/')) else {
        return Err("standard input has no name: give one, as in `put - notes.txt`".into());
    };
    let remote = remote_path(dest)?;
    let spool = SpooledStdin::read()?;
    let size = spool
        .file
        .metadata()
        .map_err(|e| format!("standard input (spooled): {}", SystemError(&e)))?
        .len();
    // A clone shares the position the spooling left at the end: back to the start.
    let mut file = spool
        .file
        .try_clone()
        .map_err(|e| format!("standard input (spooled): {}", SystemError(&e)))?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| format!("standard input (spooled): {}", SystemError(&e)))?;
    // Standard input has no mode or time of its own to keep.
    let transfer = Transfer {
        keep_attributes: false,
        ..options.transfer
    };
    let mut conn = Connection::transferring(args, transfer);
    let mut progress = progress_bar(remote.file_name());
    let report = conn
        .run(|c| c.put_file(file, size, Path::new(STDIO), &remote, false, &mut progress))
        .map_err(interrupted_hint)?;
    console::note(format_args!(
        "stored {} ({} from standard input, {} {} verified)",
        escape_for_terminal(remote.as_str()),
        console::count(report.size, "byte"),
        report.digest.algorithm(),
        report.digest.to_hex()
    ));
    Ok(())
}

/// Standard input copied to a file in the temporary directory, removed when dropped.
struct SpooledStdin {
    file: File,
    path: PathBuf,
}

impl SpooledStdin {
    fn read() -> Result<SpooledStdin, String> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("unstick-stdin-{}-{nanos:08x}", std::process::id()));
        let mut options = fs::OpenOptions::new();
        options.read(true).write(true).create_new(true);
        // What comes through a pipe may be private: only its owner may read the spool.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path).map_err(|e| {
            format!(
                "{}: cannot spool standard input: {}",
                path.display(),
                SystemError(&e)
            )
        })?;
        let spool = SpooledStdin { file, path };
        file = spool
            .file
            .try_clone()
            .map_err(|e| local_failure(&spool.path, &e))?;
        io::copy(&mut io::stdin().lock(), &mut file)
            .and_then(|_| file.flush())
            .map_err(|e| {
                format!(
                    "reading standard input into {}: {}",
                    spool.path.display(),
                    SystemError(&e)
                )
            })?;
        Ok(spool)
    }
}

impl Drop for SpooledStdin {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// `put --seed`: one file to the seed's server, which confirms nothing.
fn put_seed(plan: &PutPlan, options: &PutOptions, args: &ClientArgs) -> Result<(), String> {
    let [source] = plan.sources.as_slice() else {
        return Err("--seed sends one file per call (the seed's server has no directories)".into());
    };
    if options.recursive {
        return Err("--seed cannot send a directory".into());
    }
    let name = match plan.dest.as_deref() {
        Some(text) => text.to_owned(),
        None => local_file_name(source)?,
    };
    let remote = remote_path(&name)?;
    let mut progress = progress_bar(remote.file_name());
    let sent = seed_put(&args.address()?, source, remote.as_str(), &mut progress)
        .map_err(|e| e.to_string())?;
    console::note(format_args!(
        "sent {} ({}) with the seed's protocol; that server does not confirm or verify",
        escape_for_terminal(remote.as_str()),
        console::count(sent, "byte")
    ));
    Ok(())
}

// ----------------------------------------------------------------------------------------
// get

/// Options of one `get`.
pub(super) struct GetOptions {
    pub recursive: bool,
    pub resume: bool,
    pub no_clobber: bool,
    /// `--md5`, `-p`.
    pub transfer: Transfer,
}

/// `get REMOTE [LOCAL]`, or `get REMOTE... DIR` (DIR an existing local directory), or
/// `get REMOTE -` to standard output.
pub(super) fn get(
    paths: &[String],
    options: &GetOptions,
    args: &ClientArgs,
) -> Result<(), Failure> {
    interrupt::watch();
    let (remotes, local) = match paths {
        [] => return Err("nothing to download: give REMOTE".into()),
        [one] => (std::slice::from_ref(one), None),
        [rest @ .., last] => (rest, Some(last.as_str())),
    };
    if local == Some(STDIO) {
        let [remote] = remotes else {
            return Err("`-` (standard output) takes one remote file".into());
        };
        if options.recursive || options.resume || options.no_clobber {
            return Err(
                "`-` (standard output) cannot be used with -r, --resume or --no-clobber".into(),
            );
        }
        return get_stdout(remote, options.transfer, args);
    }
    let local_dir = local.map(Path::new).filter(|p| p.is_dir());
    if let Some(text) = local.filter(|t| t.ends_with(['/', '\\']) && local_dir.is_none()) {
        return Err(format!("{text}: no such local directory").into());
    }
    let several = |local: Option<&str>| {
        format!(
            "{}: not a local directory; with several remote files the last argument is the directory they go to",
            local.unwrap_or_default()
        )
    };
    if remotes.len() > 1 && local_dir.is_none() {
        return Err(several(local).into());
    }
    let mut conn = Connection::transferring(args, options.transfer);
    let mut tally = Tally::new(remotes.len());
    let mut expanded = Vec::new();
    for text in remotes {
        // A pattern's names: files, and directories for -r (a directory without -r is
        // refused as when typed).
        match expand_remote(
            &mut conn,
            text,
            |kind| kind == "file" || kind == "dir",
            false,
        ) {
            Ok(names) if names.len() > 1 && local.is_some() && local_dir.is_none() => {
                tally.record(Err(several(local)));
            }
            Ok(names) => expanded.extend(names),
            Err(message) => tally.record(Err(message)),
        }
    }
    for text in &expanded {
        let result = remote_path(text).and_then(|remote| {
            // The local name comes from the user, or from the remote path they typed: never
            // from the server.
            let target = match (local_dir, local) {
                (Some(dir), _) => dir.join(local_name(&remote)?),
                (None, Some(path)) => PathBuf::from(path),
                (None, None) => PathBuf::from(local_name(&remote)?),
            };
            if options.recursive {
                let stat = conn.run(|c| c.stat(&remote)).map_err(|e| e.to_string())?;
                if stat.entry.is_some_and(|e| e.kind == "dir") {
                    return get_tree(&mut conn, &remote, &target, options, &mut tally);
                }
            }
            get_file(&mut conn, &remote, &target, options)
        });
        tally.record(result);
    }
    Ok(tally.finish("downloads")?)
}

/// The local name `get` derives from the remote path's last component, when the user gave no
/// file name: refused if this system would read it as something else (on Windows `CON` is the
/// console and `a:b` a stream of `a`).
fn local_name(remote: &RemotePath) -> Result<&str, String> {
    let name = remote.file_name();
    check_local_name(name).map_err(|e| {
        format!(
            "`{}` cannot be a local file name here: {e}; give a local path",
            escape_for_terminal(name)
        )
    })?;
    Ok(name)
}

fn get_file(
    conn: &mut Connection<'_>,
    remote: &RemotePath,
    target: &Path,
    options: &GetOptions,
) -> Result<(), String> {
    let existing = if options.no_clobber {
        Existing::Keep
    } else {
        Existing::Replace
    };
    if existing == Existing::Keep && fs::symlink_metadata(target).is_ok() {
        console::note(format_args!(
            "{}: exists; not replaced (--no-clobber)",
            target.display()
        ));
        return Ok(());
    }
    let _in_flight = InFlight::download(&target.display().to_string());
    let mut progress = progress_bar(remote.file_name());
    let report = conn
        .run(|c| c.get_as(remote, target, options.resume, existing, &mut progress))
        .map_err(|e| match e {
            ClientError::Server { ref message, .. }
                if message.ends_with("the name is a directory") =>
            {
                format!("{e}; use -r to download a directory")
            }
            other => interrupted_hint(other),
        })?;
    let resumed = resumed_note(report.resumed_from);
    console::note(format_args!(
        "wrote {} ({}, {} {} verified{resumed})",
        target.display(),
        console::count(report.size, "byte"),
        report.digest.algorithm(),
        report.digest.to_hex()
    ));
    Ok(())
}

/// Downloads the remote directory `dir` into the local directory `target` (created if
/// missing). Names come from the server's listing and are checked first
/// ([`listed_local_name`]); links, partial uploads and special files are skipped, links and
/// special files with a note, which is no failure.
fn get_tree(
    conn: &mut Connection<'_>,
    dir: &RemotePath,
    target: &Path,
    options: &GetOptions,
    tally: &mut Tally,
) -> Result<(), String> {
    match fs::create_dir(target) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && target.is_dir() => {}
        Err(e) => return Err(local_failure(target, &e)),
    }
    let entries = conn.run(|c| c.list(Some(dir))).map_err(|e| e.to_string())?;
    tally.walking();
    for entry in entries {
        let result = listed_local_name(&entry).and_then(|name| {
            let child = remote_join(Some(dir), name)?;
            let local = target.join(name);
            match entry.kind.as_str() {
                "dir" => get_tree(conn, &child, &local, options, tally).map(|()| None),
                "file" => get_file(conn, &child, &local, options).map(Some),
                "partial" => Ok(None), // an upload still to finish: nothing to fetch yet
                kind => {
                    skipped(&escape_for_terminal(child.as_str()), kind == "symlink");
                    Ok(None)
                }
            }
        });
        match result {
            Ok(None) => {}
            Ok(Some(())) => tally.record(Ok(())),
            Err(message) => tally.record(Err(message)),
        }
    }
    Ok(())
}

/// `get REMOTE -`: the file's bytes to standard output as they arrive; every note goes to
/// standard error.
fn get_stdout(remote: &str, transfer: Transfer, args: &ClientArgs) -> Result<(), Failure> {
    let remote = remote_path(remote)?;
    // Standard output has no mode or time to give.
    let transfer = Transfer {
        keep_attributes: false,
        ..transfer
    };
    let mut conn = Connection::transferring(args, transfer);
    let mut out = WatchedStdout::lock();
    let report = conn
        .run(|c| c.get_into(&remote, &mut out, Path::new("standard output"), &mut NoProgress))
        .map_err(|e| match e {
            _ if out.closed() => Failure::OutputClosed,
            ClientError::DigestMismatch { .. } => Failure::Message(format!(
                "{}: the data written to standard output does not match the server's digest; do not trust it",
                escape_for_terminal(remote.as_str())
            )),
            other => Failure::Message(other.to_string()),
        })?;
    console::note(format_args!(
        "sent {} to standard output ({}, {} {} verified)",
        escape_for_terminal(remote.as_str()),
        console::count(report.size, "byte"),
        report.digest.algorithm(),
        report.digest.to_hex()
    ));
    Ok(())
}

// ----------------------------------------------------------------------------------------
// ls, stat, delete, mkdir, mv

/// How `ls` prints.
pub(super) struct ListStyle {
    /// `-l`: kind, size, time, name (name last, as `ls -l`).
    pub long: bool,
    /// `-h`: sizes in K, M, G (powers of 1024).
    pub human: bool,
}

pub(super) fn ls(dir: Option<&str>, style: &ListStyle, args: &ClientArgs) -> Result<(), Failure> {
    let dir = match dir {
        None => None,
        Some(text) => remote_dir(text)?,
    };
    let mut conn = Connection::new(args);
    let entries = conn
        .run(|c| c.list(dir.as_ref()))
        .map_err(|e| e.to_string())?;
    let mut out = WatchedStdout::lock();
    for line in listing_lines(&entries, style) {
        writeln!(out, "{line}").map_err(|e| output_failed(&out, &e))?;
    }
    out.flush().map_err(|e| output_failed(&out, &e))
}

/// The lines of a listing, columns aligned by display width (a double-width name takes two
/// columns per character, as a terminal shows it).
pub(super) fn listing_lines(entries: &[RemoteEntry], style: &ListStyle) -> Vec<String> {
    let rows: Vec<(String, &str, String, String)> = entries
        .iter()
        .map(|e| {
            let mut name = e.display_name();
            match e.kind.as_str() {
                "dir" => name.push('/'),
                "symlink" => name.push('@'),
                "partial" if !style.long => name.push_str(" [partial upload]"),
                _ => {}
            }
            let size = if style.human {
                human_size(e.size)
            } else {
                e.size.to_string()
            };
            (name, e.kind.as_str(), size, format_utc(e.mtime))
        })
        .collect();
    let name_width = rows.iter().map(|r| r.0.width()).max().unwrap_or(0);
    let kind_width = rows.iter().map(|r| r.1.width()).max().unwrap_or(0);
    let size_width = rows.iter().map(|r| r.2.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(name, kind, size, mtime)| {
            if style.long {
                let kind = escape_for_terminal(kind);
                format!("{kind:<kind_width$}  {size:>size_width$}  {mtime}  {name}")
            } else {
                let pad = " ".repeat(name_width - name.width());
                format!("{name}{pad}  {size:>size_width$}  {mtime}")
            }
        })
        .collect()
}

/// `size` as `ls -h` writes it: bytes below 1 KiB, else one decimal below 10 and none above,
/// with K, M, G, T, P, E (powers of 1024).
pub(super) fn human_size(size: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if size < 1024 {
        return size.to_string();
    }
    let mut value = size as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.1}{}", UNITS[unit])
    } else {
        format!("{value:.0}{}", UNITS[unit])
    }
}

pub(super) fn stat(path: &str, args: &ClientArgs) -> Result<(), Failure> {
    let remote = remote_path(path)?;
    let mut conn = Connection::new(args);
    let stat = conn.run(|c| c.stat(&remote)).map_err(|e| e.to_string())?;
    let shown = escape_for_terminal(remote.as_str());
    let Some(entry) = stat.entry else {
        return Err(Failure::Message(if stat.partial_size > 0 {
            format!(
                "{shown}: no such file (an interrupted upload of {} is held for `put --resume`)",
                console::count(stat.partial_size, "byte")
            )
        } else {
            format!("{shown}: no such file or directory")
        }));
    };
    let mode = entry
        .mode
        .map(|mode| format!(", mode {mode:04o}"))
        .unwrap_or_default();
    let mut text = format!(
        "{shown}: {} {}, modified {}{mode}\n",
        escape_for_terminal(&entry.kind),
        console::count(entry.size, "byte"),
        format_utc(entry.mtime)
    );
    if stat.partial_size > 0 {
        text.push_str(&format!(
            "{shown}: {} of an interrupted upload held for resume\n",
            console::count(stat.partial_size, "byte")
        ));
    }
    let mut out = WatchedStdout::lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| output_failed(&out, &e))
}

/// Options of `rm`.
pub(super) struct DeleteOptions {
    /// `-r`: directories with everything below them.
    pub recursive: bool,
    /// `-f`: a name that is not there (or a pattern that matches nothing) is no error.
    pub force: bool,
}

pub(super) fn delete(
    paths: &[String],
    options: &DeleteOptions,
    args: &ClientArgs,
) -> Result<(), String> {
    let recursive = options.recursive;
    let mut conn = Connection::new(args);
    let mut tally = Tally::new(paths.len());
    let mut expanded = Vec::new();
    for text in paths {
        // A pattern's names, whatever they are: `rm` takes links and partial uploads too.
        match expand_remote(&mut conn, text, |_| true, options.force) {
            Ok(names) => expanded.extend(names),
            Err(message) => tally.record(Err(message)),
        }
    }
    for text in &expanded {
        let result = remote_path(text).and_then(|remote| {
            let shown = escape_for_terminal(remote.as_str());
            if recursive {
                let stat = conn.run(|c| c.stat(&remote)).map_err(|e| e.to_string())?;
                if stat.entry.is_some_and(|e| e.kind == "dir") {
                    let removed = delete_tree(&mut conn, &remote)?;
                    console::note(format_args!("deleted {shown} ({removed} entries below it)"));
                    return Ok(());
                }
            }
            let deleted = conn.run(|c| c.delete(&remote));
            if options.force
                && deleted
                    .as_ref()
                    .is_err_and(|e| e.server_code() == Some(ErrorCode::NotFound.as_str()))
            {
                // `rm -f`: not there is as good as deleted, and said no more than rm says it.
                return Ok(());
            }
            deleted.map_err(|e| match e {
                // `not_empty`, or `bad_request` and these words from a server before that code.
                ClientError::Server {
                    ref code,
                    ref message,
                } if code == ErrorCode::NotEmpty.as_str()
                    || message.contains("the directory is not empty") =>
                {
                    format!("{e}; use -r to delete it with what it holds")
                }
                other => other.to_string(),
            })?;
            console::note(format_args!("deleted {shown}"));
            Ok(())
        });
        tally.record(result);
    }
    tally.finish("deletions")
}

/// Deletes the remote directory `dir` and everything below it, depth first, from the client:
/// one listing per directory and one `delete` per entry (see docs/PROTOCOL.md for why not on
/// the server). A link is deleted as a link; the walk never enters one. Returns the entries
/// removed below `dir`. The first failure stops the walk, so nothing is half-reported.
fn delete_tree(conn: &mut Connection<'_>, dir: &RemotePath) -> Result<u64, String> {
    let entries = conn.run(|c| c.list(Some(dir))).map_err(|e| e.to_string())?;
    let mut removed = 0;
    // A file and its partial upload are listed as two entries of one name, and one delete
    // takes both.
    let mut deleted: Vec<&str> = Vec::new();
    for entry in &entries {
        if deleted.contains(&entry.name.as_str()) {
            continue;
        }
        if entry.name_escaped {
            return Err(format!(
                "{}/{}: the name is not UTF-8 on the server and cannot be named in a request; the directory stays",
                escape_for_terminal(dir.as_str()),
                entry.display_name()
            ));
        }
        let child = remote_join(Some(dir), &entry.name)?;
        if entry.kind == "dir" {
            // The subdirectory goes last, with its own walk.
            removed += delete_tree(conn, &child)? + 1;
            continue;
        }
        conn.run(|c| c.delete(&child)).map_err(|e| e.to_string())?;
        removed += 1;
        deleted.push(&entry.name);
    }
    conn.run(|c| c.delete(dir)).map_err(|e| e.to_string())?;
    Ok(removed)
}

pub(super) fn mkdir(paths: &[String], parents: bool, args: &ClientArgs) -> Result<(), String> {
    let mut conn = Connection::new(args);
    let mut tally = Tally::new(paths.len());
    for text in paths {
        let result = remote_dir(text).and_then(|dir| {
            let Some(dir) = dir else {
                return Err("the root exists already".to_owned());
            };
            conn.run(|c| c.mkdir(&dir, parents))
                .map_err(|e| e.to_string())?;
            console::note(format_args!("made {}/", escape_for_terminal(dir.as_str())));
            Ok(())
        });
        tally.record(result);
    }
    tally.finish("directories")
}

/// `mv FROM TO`, or `mv FROM... DIR`: into DIR when it is a remote directory (or ends with
/// `/`, or there are several sources), as `mv` does.
pub(super) fn mv(paths: &[String], args: &ClientArgs) -> Result<(), String> {
    let Some((dest, sources)) = paths.split_last().filter(|(_, s)| !s.is_empty()) else {
        return Err("give FROM and TO".into());
    };
    let mut conn = Connection::new(args);
    let into_dir = if sources.len() > 1 || dest.ends_with('/') || dest == "." {
        true
    } else {
        let to = remote_path(dest)?;
        let stat = conn.run(|c| c.stat(&to)).map_err(|e| e.to_string())?;
        stat.entry.is_some_and(|e| e.kind == "dir")
    };
    let dest_dir = if into_dir { remote_dir(dest)? } else { None };
    let mut tally = Tally::new(sources.len());
    for text in sources {
        let result = remote_path(text).and_then(|from| {
            let to = if into_dir {
                remote_join(dest_dir.as_ref(), from.file_name())?
            } else {
                remote_path(dest)?
            };
            conn.run(|c| c.rename(&from, &to))
                .map_err(|e| e.to_string())?;
            console::note(format_args!(
                "renamed {} to {}",
                escape_for_terminal(from.as_str()),
                escape_for_terminal(to.as_str())
            ));
            Ok(())
        });
        tally.record(result);
    }
    tally.finish("renames")
}

/// Notes that a walk (`-r`) skipped `shown`, a symbolic link (never followed) or another
/// entry that is not a file or a directory. A note, not a failure: the command still succeeds,
/// as rsync's does.
fn skipped(shown: &str, symlink: bool) {
    let what = if symlink {
        "a symbolic link (links are not followed)"
    } else {
        "not a regular file or directory"
    };
    console::note(format_args!("note: {shown}: {what}, skipped"));
}

/// The error, plus how to continue when the connection broke mid-transfer.
fn interrupted_hint(e: ClientError) -> String {
    match e {
        ClientError::Connection(_) => {
            format!("{e}; run the same command with --resume to continue where it stopped")
        }
        other => other.to_string(),
    }
}

fn resumed_note(resumed_from: u64) -> String {
    if resumed_from > 0 {
        format!(", resumed at byte {resumed_from}")
    } else {
        String::new()
    }
}

/// `YYYY-MM-DD HH:MM:SS` UTC for seconds since the Unix epoch; `@SECONDS` for a time outside
/// the years -9999 to 9999, which a server may send but no calendar shows.
fn format_utc(secs: i64) -> String {
    let Ok(time) = time::OffsetDateTime::from_unix_timestamp(secs) else {
        return format!("@{secs}");
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(format_utc(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(format_utc(-1), "1969-12-31 23:59:59");
        assert_eq!(format_utc(i64::MAX), format!("@{}", i64::MAX));
    }

    fn entry(name: &str, kind: &str, size: u64) -> RemoteEntry {
        RemoteEntry {
            name: name.into(),
            name_escaped: false,
            kind: kind.into(),
            size,
            mtime: 0,
            mode: None,
        }
    }

    #[test]
    fn put_arguments_name_a_destination_unless_the_last_is_a_local_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.txt");
        let b = dir.path().join("b.txt");
        fs::write(&a, b"a").unwrap();
        fs::write(&b, b"b").unwrap();
        let p = |args: &[&Path]| args.iter().map(|p| p.to_path_buf()).collect::<Vec<_>>();
        // `put *.txt`: both are sources, into the root.
        assert_eq!(
            plan_put(&p(&[&a, &b]), None).unwrap(),
            PutPlan {
                sources: p(&[&a, &b]),
                dest: None
            }
        );
        // A name that is no local file is the destination.
        assert_eq!(
            plan_put(&p(&[&a, Path::new("remote.txt")]), None).unwrap(),
            PutPlan {
                sources: p(&[&a]),
                dest: Some("remote.txt".into())
            }
        );
        // A trailing `/` is a directory, whatever is local.
        let slash = PathBuf::from(format!("{}/", b.display()));
        assert_eq!(plan_put(&p(&[&a, &slash]), None).unwrap().sources, p(&[&a]));
        // --to takes away any doubt.
        assert_eq!(
            plan_put(&p(&[&a, &b]), Some("x".into())).unwrap(),
            PutPlan {
                sources: p(&[&a, &b]),
                dest: Some("x".into())
            }
        );
        // `put - NAME` names the destination even when NAME is a local file.
        assert_eq!(
            plan_put(&p(&[Path::new("-"), &b]), None).unwrap().sources,
            p(&[Path::new("-")])
        );
        assert!(plan_put(&[], None).is_err());
    }

    #[test]
    fn listings_align_double_width_names_and_mark_partials() {
        let entries = [
            entry("名前", "file", 5),
            entry("abcdef", "file", 1_048_576),
            entry("d", "dir", 0),
            entry("big.iso", "partial", 4096),
        ];
        let plain = ListStyle {
            long: false,
            human: false,
        };
        let lines = listing_lines(&entries, &plain);
        let widths: Vec<usize> = lines.iter().map(|l| l.width()).collect();
        assert!(widths.iter().all(|&w| w == widths[0]), "{lines:#?}");
        assert!(lines[0].starts_with("名前 "), "{lines:#?}");
        assert!(
            lines[3].starts_with("big.iso [partial upload]"),
            "{lines:#?}"
        );
        let long = ListStyle {
            long: true,
            human: true,
        };
        let lines = listing_lines(&entries, &long);
        assert!(
            lines[1].starts_with("file     1.0M  1970-01-01"),
            "{lines:#?}"
        );
        assert!(lines[3].starts_with("partial  4.0K"), "{lines:#?}");
        assert!(lines[0].ends_with("  名前"), "{lines:#?}");
    }

    #[test]
    fn human_sizes_read_as_ls_writes_them() {
        for (size, text) in [
            (0, "0"),
            (1023, "1023"),
            (1024, "1.0K"),
            (1536, "1.5K"),
            (10 * 1024, "10K"),
            (100 * 1024 * 1024, "100M"),
            (u64::MAX, "16E"),
        ] {
            assert_eq!(human_size(size), text, "{size}");
        }
    }

    #[test]
    fn names_from_a_listing_are_checked_before_they_become_local_files() {
        for bad in ["..", ".", "a/b", "a\\b", ""] {
            assert!(
                listed_local_name(&entry(bad, "file", 0)).is_err(),
                "{bad:?}"
            );
        }
        assert_eq!(listed_local_name(&entry("ok.txt", "file", 0)), Ok("ok.txt"));
        let mut escaped = entry("x\\xff", "file", 0);
        escaped.name_escaped = true;
        assert!(listed_local_name(&escaped).is_err());
    }
}
