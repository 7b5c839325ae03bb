//! Serving one request of a file-protocol connection: the core's [`FileServerSession`] decides
//! what is valid, what is answered, what to do and when a client has been silent too long; the
//! shared host loop ([`serve_request`]) moves the bytes; this work carries out the actions on
//! the root directory.

// Results carry the core's `Refusal` inline, as the session takes them.
#![allow(clippy::result_large_err)]

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;

use unstick_core::files::path::MAX_PATH_LEN;
use unstick_core::files::{
    Completed, Deleted, EntryKind, FileAction, FileServerSession, StageKind, Staged, StatFound,
};
use unstick_core::info::{EndpointInfo, Protocols};
use unstick_core::session::{PeerText, Refusal, ServerEvent, SessionError};
use unstick_core::{Algorithm, Checksum, ErrorCode};

use super::config::FileServerConfig;
use super::name::{RemotePath, SERVER_NAME_RULES, name_text};
use super::staging::{Resumable, StageError, Staging};
use super::storage::storage_refusal;
use super::tree::{Dir, file_meta, partial_name};
use crate::host::{Closed, Inbox, Outlet, RequestWork, hand_back, serve_request};
use crate::server::{
    ClientKind, ClientSocket, Connection, HEADER_CAP, Handback, endpoint_info, log_refusal,
};

/// Room for a request's paths: a rename carries two, each up to [`MAX_PATH_LEN`] bytes.
const SESSION_PATH: usize = 2 * MAX_PATH_LEN;

/// The session as this host serves it.
type Session<'s> = FileServerSession<'s, HEADER_CAP, SESSION_PATH>;

/// Serves the request at the start of `conn.received` and hands the connection back with what
/// the client sent beyond it.
pub(super) fn serve_file_request(
    config: &FileServerConfig,
    root: &Dir,
    mut conn: Connection<ClientKind>,
) -> Handback<ClientKind> {
    // A client that stops reading a download is dropped after the idle timeout.
    if conn
        .stream
        .tcp()
        .set_write_timeout(Some(config.lobby.idle_timeout))
        .is_err()
    {
        return Handback::Close(conn);
    }
    let buffer = config.buffer_size.max(64 * 1024);
    let mut session = Session::new(config.rules())
        .with_name_rules(SERVER_NAME_RULES)
        .with_info(file_server_info(root));
    let mut inbox = Inbox::new(buffer, &conn.received);
    let mut work = FileWork {
        config,
        root,
        peer: conn.peer,
        file_buf: Vec::new(),
        open: None,
        staging: None,
        answered: 0,
        token_refused: false,
    };
    let mut out = Outlet::new(&mut conn.stream);
    let served = serve_request(&mut session, &mut out, &mut inbox, &mut work);
    hand_back(conn, &inbox, work.token_refused, served)
}

/// What the file server says of itself in an info reply beyond its session's limits: its
/// platform and, where the system says, the free space of the root's file system.
fn file_server_info(root: &Dir) -> EndpointInfo<'static> {
    let mut info = endpoint_info(Protocols::FILE);
    info.free_space = free_space(root);
    info
}

/// The free space of the root's file system (`fstatvfs`).
#[cfg(unix)]
fn free_space(root: &Dir) -> Option<u64> {
    root.free_space().ok()
}

/// Not measured on Windows: the server's answer leaves it out.
#[cfg(not(unix))]
fn free_space(_root: &Dir) -> Option<u64> {
    None
}

/// What the file server does for its session: the actions on the root directory.
struct FileWork<'s> {
    config: &'s FileServerConfig,
    root: &'s Dir,
    peer: SocketAddr,
    /// File data on its way to the client, allocated on first use.
    file_buf: Vec<u8>,
    /// The file being downloaded.
    open: Option<File>,
    /// Where an upload's bytes go; removed when its request ends unless committed or kept.
    staging: Option<Staging>,
    answered: u64,
    /// A request was refused for its token (counted by the lobby against the address).
    token_refused: bool,
}

/// Reports an action's result to the session. A result it does not take is a bug here,
/// answered by closing the connection.
fn reported(result: Result<(), SessionError>) -> Result<(), Closed> {
    result.map_err(|_| Closed)
}

impl<'s> RequestWork<Session<'s>, ClientSocket> for FileWork<'_> {
    fn act(
        &mut self,
        out: &mut Outlet<'_, ClientSocket>,
        _: &mut Inbox,
        session: &mut Session<'s>,
    ) -> Result<(), Closed> {
        let Some(action) = session.poll_action() else {
            return Ok(());
        };
        match action {
            FileAction::Stat { path } => {
                let found = self.stat(&remote(path)?);
                reported(session.handle_stat(found))
            }
            FileAction::List { path } => {
                let path = path.map(remote).transpose()?;
                self.list(out, session, path.as_ref())
            }
            FileAction::Delete { path } => {
                let deleted = self.delete(&remote(path)?);
                reported(session.handle_deleted(deleted))
            }
            FileAction::OpenFile { path } => {
                let opened = self.open_file(&remote(path)?);
                reported(session.handle_opened(opened))
            }
            FileAction::ReadFile { offset, len } => self.read_file(out, session, offset, len),
            FileAction::Stage { path, kind } => {
                let staged = self.stage(&remote(path)?, kind);
                reported(session.handle_staged(staged))
            }
            FileAction::Truncate { len } => {
                let cut = match self.staging.as_mut() {
                    Some(staging) => staging.truncate(len),
                    None => Err(io::Error::other("no upload is staged")),
                };
                let cut = cut.map_err(|e| storage_refusal(&e, session.path()));
                reported(session.handle_done(cut))
            }
            FileAction::Commit { path, keep } => {
                let path = remote(path)?;
                let committed = match self.staging.take() {
                    Some(staging) => staging.commit(path.file_name(), keep),
                    None => Err(io::Error::other("no upload is staged")),
                };
                let committed = committed.map_err(|e| storage_refusal(&e, path.as_str()));
                reported(session.handle_done(committed))
            }
            FileAction::KeepPartial => {
                if let Some(staging) = self.staging.as_mut() {
                    staging.keep_for_resume();
                }
                reported(session.handle_done(Ok(())))
            }
            FileAction::MakeDir { path, parents } => {
                let made = self.make_dir(&remote(path)?, parents);
                reported(session.handle_done(made))
            }
            FileAction::Rename { from, to } => {
                let renamed = self.rename(&remote(from)?, &remote(to)?);
                reported(session.handle_done(renamed))
            }
            FileAction::Close => Err(Closed),
        }
    }

    /// Writes upload bytes to the staging file.
    fn take(&mut self, session: &mut Session<'s>, chunk: &[u8]) -> Result<(), Closed> {
        let written = match self.staging.as_mut() {
            Some(staging) => staging.file.write_all(chunk),
            None => Err(io::Error::other("no upload is staged")),
        };
        if let Err(e) = written {
            // After the session refused the upload already (its last bytes failed their
            // digest), the failure changes nothing: that refusal is on its way.
            let refusal = storage_refusal(&e, session.path());
            let _ = session.handle_write_failed(refusal);
        }
        Ok(())
    }

    /// Logs what the session refused or completed, and lets go of the files of a request that
    /// ended: before its answer leaves, so that a failed upload's staging file is gone (or kept
    /// for a resume) by the time the client reads why.
    fn record(&mut self, session: &Session<'s>, event: ServerEvent<Completed>) {
        self.let_go_if_answered(session);
        match event {
            ServerEvent::Refused(refusal) => {
                log_refusal("ftp", self.peer, &refusal);
                self.token_refused |= refusal.code == ErrorCode::Unauthorized;
            }
            ServerEvent::Completed(completed) => {
                log_completed(self.peer, session.path(), session.rename_to(), completed);
            }
        }
    }

    fn is_over(&self, session: &Session<'s>) -> bool {
        session.answered() > 0 && session.is_idle()
    }
}

impl FileWork<'_> {
    /// Lets go of the files of a request that was answered: before its answer leaves, so that
    /// a failed upload's staging file is gone (or kept for a resume) by the time the client
    /// reads why.
    fn let_go_if_answered(&mut self, session: &Session<'_>) {
        if session.answered() != self.answered {
            self.answered = session.answered();
            self.staging = None;
            self.open = None;
        }
    }

    fn read_file(
        &mut self,
        out: &mut Outlet<'_, ClientSocket>,
        session: &mut Session<'_>,
        offset: u64,
        len: u64,
    ) -> Result<(), Closed> {
        let buffer = self.config.buffer_size.max(64 * 1024);
        if self.file_buf.len() < buffer {
            self.file_buf.resize(buffer, 0);
        }
        let file = match (self.open.as_mut(), self.staging.as_mut()) {
            (Some(file), _) => Some(file),
            (None, Some(staging)) => Some(&mut staging.file),
            (None, None) => None,
        };
        let want = self
            .file_buf
            .len()
            .min(usize::try_from(len).unwrap_or(usize::MAX));
        let read = match file {
            Some(file) => read_at(file, offset, &mut self.file_buf[..want]),
            None => Err(io::Error::other("no file is open")),
        };
        match read {
            Ok(n) if n > 0 => {
                reported(session.handle_file_data(&self.file_buf[..n]))?;
                // A resume's prefix that does not match ends the request here: its staging
                // file goes before the refusal does.
                self.let_go_if_answered(session);
                out.send(session, &self.file_buf[..n]).map_err(|_| Closed)
            }
            Ok(_) => {
                let refusal = Refusal::new(
                    ErrorCode::StorageError,
                    format_args!(
                        "{}: the file became shorter while it was read",
                        PeerText::new(session.path())
                    ),
                );
                reported(session.handle_read_failed(refusal))
            }
            Err(e) => {
                let refusal = storage_refusal(&e, session.path());
                reported(session.handle_read_failed(refusal))
            }
        }
    }

    fn list(
        &mut self,
        out: &mut Outlet<'_, ClientSocket>,
        session: &mut Session<'_>,
        path: Option<&RemotePath>,
    ) -> Result<(), Closed> {
        let text = path.map_or("", RemotePath::as_str).to_owned();
        let dir = match self.root.walk_to_dir(path) {
            Ok(dir) => dir,
            Err(e) => {
                let refusal = storage_refusal(&e, &text);
                return reported(session.handle_done(Err(refusal)));
            }
        };
        let mut send_failed = false;
        let listed = dir.for_each_entry(|name, meta| {
            let (name, escaped) = name_text(name);
            let sent = session
                .handle_entry(&name, escaped, meta)
                .map_err(io::Error::other)
                .and_then(|()| out.send(session, &[]));
            if sent.is_err() {
                send_failed = true;
                return Err(io::Error::other("client went away"));
            }
            Ok(())
        });
        if send_failed {
            return Err(Closed);
        }
        let listed = listed.map_err(|e| storage_refusal(&e, &text));
        reported(session.handle_done(listed))
    }

    fn stat(&self, path: &RemotePath) -> Result<StatFound, Refusal> {
        let name = path.file_name();
        match self.root.walk_to_parent(path, false) {
            Ok(dir) => {
                let entry = dir
                    .stat(name)
                    .map_err(|e| storage_refusal(&e, path.as_str()))?;
                let partial_size = dir
                    .stat(&partial_name(name))
                    .ok()
                    .flatten()
                    .map_or(0, |m| m.size);
                Ok(StatFound {
                    entry,
                    partial_size,
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(StatFound {
                entry: None,
                partial_size: 0,
            }),
            Err(e) => Err(storage_refusal(&e, path.as_str())),
        }
    }

    fn delete(&self, path: &RemotePath) -> Result<Deleted, Refusal> {
        let name = path.file_name();
        let refuse = |e: io::Error| storage_refusal(&e, path.as_str());
        let dir = self.root.walk_to_parent(path, false).map_err(refuse)?;
        let meta = dir.stat(name).map_err(refuse)?;
        if let Some(meta) = meta {
            dir.unlink(name, meta.kind == EntryKind::Dir)
                .map_err(refuse)?;
        }
        // The partial upload of the name goes too (it is all there is of an upload that broke
        // off), unless a running upload holds it: that upload owns the name.
        let partial = Staging::discard_idle_partial(&dir, name);
        let _ = dir.sync();
        Ok(Deleted {
            entry_removed: meta.is_some(),
            partial,
        })
    }

    /// Creates the directory `path` (with `parents`, its missing parents too, and an existing
    /// directory is fine). Walking never follows a link, so neither does the creation.
    fn make_dir(&self, path: &RemotePath, parents: bool) -> Result<(), Refusal> {
        let refuse = |e: io::Error| storage_refusal(&e, path.as_str());
        let dir = self.root.walk_to_parent(path, parents).map_err(refuse)?;
        let name = path.file_name();
        match dir.stat(name).map_err(refuse)? {
            Some(meta) if meta.kind == EntryKind::Dir && parents => return Ok(()),
            Some(meta) => {
                return Err(Refusal::new(
                    ErrorCode::Exists,
                    format_args!(
                        "{}: exists already (a {})",
                        PeerText::new(path.as_str()),
                        meta.kind.as_str()
                    ),
                ));
            }
            None => {}
        }
        dir.subdir(name, true).map_err(refuse)?;
        let _ = dir.sync();
        Ok(())
    }

    /// Renames `from` to `to`: both walked without following links, the parents of `to` must
    /// exist, a file at `to` is replaced, a directory at `to` is refused (the client puts the
    /// name inside it if that is what it means), and a directory cannot go inside itself.
    fn rename(&self, from: &RemotePath, to: &RemotePath) -> Result<(), Refusal> {
        let (from_text, to_text) = (from.as_str(), to.as_str());
        let (from_shown, to_shown) = (PeerText::new(from_text), PeerText::new(to_text));
        if to_text
            .strip_prefix(from_text)
            .is_some_and(|rest| rest.starts_with('/'))
        {
            return Err(Refusal::new(
                ErrorCode::BadPath,
                format_args!("{to_shown}: a directory cannot be moved inside itself"),
            ));
        }
        let from_dir = self
            .root
            .walk_to_parent(from, false)
            .map_err(|e| storage_refusal(&e, from_text))?;
        let found = from_dir
            .stat(from.file_name())
            .map_err(|e| storage_refusal(&e, from_text))?;
        if found.is_none() {
            return Err(Refusal::new(
                ErrorCode::NotFound,
                format_args!("{from_shown}: no such file or directory; nothing was moved"),
            ));
        }
        if from_text == to_text {
            return Ok(());
        }
        // A missing directory on the way to `to` is the destination's fault: say so, or the
        // refusal would read as if `from` were missing.
        let to_dir = self.root.walk_to_parent(to, false).map_err(|e| {
            match (e.kind(), to_text.rsplit_once('/')) {
                (io::ErrorKind::NotFound, Some((parent, _))) => Refusal::new(
                    ErrorCode::NotFound,
                    format_args!(
                        "{to_shown}: the destination directory {} does not exist; {from_shown} \
                         was not moved",
                        PeerText::new(parent)
                    ),
                ),
                _ => storage_refusal(&e, to_text),
            }
        })?;
        if let Some(meta) = to_dir
            .stat(to.file_name())
            .map_err(|e| storage_refusal(&e, to_text))?
            && meta.kind == EntryKind::Dir
        {
            return Err(Refusal::new(
                ErrorCode::Exists,
                format_args!("{to_shown}: is a directory; give the new name inside it"),
            ));
        }
        from_dir
            .rename_into(from.file_name(), &to_dir, to.file_name())
            .map_err(|e| storage_refusal(&e, to_text))?;
        let _ = from_dir.sync();
        let _ = to_dir.sync();
        Ok(())
    }

    fn open_file(&mut self, path: &RemotePath) -> Result<unstick_core::files::EntryMeta, Refusal> {
        let refuse = |e: io::Error| storage_refusal(&e, path.as_str());
        let dir = self.root.walk_to_parent(path, false).map_err(refuse)?;
        let file = dir.open_file(path.file_name()).map_err(refuse)?;
        let meta = file_meta(&file).map_err(refuse)?;
        self.open = Some(file);
        Ok(meta)
    }

    /// Stages an upload of `path`: its directory (missing parents created; a name that is a
    /// directory refused before the body is read), then the staging file.
    fn stage(&mut self, path: &RemotePath, kind: StageKind) -> Result<Staged, Refusal> {
        let refuse = |e: io::Error| storage_refusal(&e, path.as_str());
        let dir = self.root.walk_to_parent(path, true).map_err(refuse)?;
        let name = path.file_name();
        if let Ok(Some(meta)) = dir.stat(name)
            && meta.kind == EntryKind::Dir
        {
            return Err(Refusal::new(
                ErrorCode::BadPath,
                format_args!(
                    "{}: is a directory; give a file name",
                    PeerText::new(path.as_str())
                ),
            ));
        }
        let refuse_stage = |e: StageError| match e {
            StageError::Io(e) => refuse(e),
            StageError::Foreign {
                staging_name,
                cause,
            } => Refusal::new(
                ErrorCode::StorageError,
                format_args!(
                    "{}: the server's staging file for this name ({}) is held by something it \
                     did not make (a link, a directory or another user's file) and cannot be \
                     removed ({cause}); the server's administrator must remove it",
                    PeerText::new(path.as_str()),
                    PeerText::new(&staging_name),
                ),
            ),
        };
        let staging = match kind {
            StageKind::Fresh => Staging::fresh(dir, name).map_err(refuse_stage)?,
            StageKind::Temporary => Staging::temporary(dir).map_err(refuse)?,
            StageKind::Resume => match Staging::resume(&dir, name).map_err(refuse_stage)? {
                Resumable::Ready(staging) => staging,
                Resumable::InUse => return Ok(Staged::PartialBusy),
                Resumable::Absent => return Ok(Staged::NoPartial),
            },
        };
        let mut staging = staging;
        let len = match staging.len() {
            Ok(len) => len,
            Err(e) => {
                // A partial to be resumed stays for a later try.
                if kind == StageKind::Resume {
                    staging.keep_for_resume();
                }
                return Err(refuse(e));
            }
        };
        self.staging = Some(staging);
        Ok(Staged::Ready { len })
    }
}

/// A path the session has checked, as the file tree takes it. The session checks with the
/// same rules, so a failure here would be a bug, answered by closing the connection.
fn remote(path: &str) -> Result<RemotePath, Closed> {
    RemotePath::parse_with(path, SERVER_NAME_RULES).map_err(|_| Closed)
}

/// Reads up to `buf.len()` bytes at `offset`.
fn read_at(file: &mut File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    file.seek(SeekFrom::Start(offset))?;
    loop {
        match file.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Logs a request that went through.
fn log_completed(peer: SocketAddr, path: &str, to: Option<&str>, completed: Completed) {
    match completed {
        Completed::Stored {
            size,
            resumed_from,
            digest,
            seed: false,
        } => log_digest(peer, "file stored", path, size, resumed_from, digest),
        Completed::Stored {
            size,
            digest,
            seed: true,
            ..
        } => {
            let md5 = digest.map(|d| d.to_hex());
            tracing::info!(
                server = "ftp",
                peer = %peer,
                path,
                size,
                md5 = md5.as_ref().map(|h| h.as_str()),
                verified = md5.is_some(),
                seed_upload = true,
                "file stored"
            );
        }
        Completed::Sent {
            size,
            resumed_from,
            digest,
        } => log_digest(peer, "file sent", path, size, resumed_from, Some(digest)),
        Completed::Listed { entries } => {
            tracing::info!(server = "ftp", peer = %peer, path, entries, "listed");
        }
        Completed::Stat { exists } => {
            tracing::info!(server = "ftp", peer = %peer, path, exists, "stat");
        }
        Completed::Deleted => tracing::info!(server = "ftp", peer = %peer, path, "file deleted"),
        Completed::MadeDir => {
            tracing::info!(server = "ftp", peer = %peer, path, "directory created")
        }
        Completed::Renamed => {
            tracing::info!(server = "ftp", peer = %peer, path, to, "renamed")
        }
    }
}

/// Logs a transfer with its digest (one field named for the algorithm: `xxh3=` or `md5=`).
fn log_digest(
    peer: SocketAddr,
    event: &str,
    path: &str,
    size: u64,
    resumed_from: u64,
    digest: Option<Checksum>,
) {
    let Some(digest) = digest else {
        return;
    };
    let hex = digest.to_hex();
    let hex = hex.as_str();
    match digest.algorithm() {
        Algorithm::Xxh3 => {
            tracing::info!(server = "ftp", peer = %peer, path, size, resumed_from, xxh3 = hex, "{event}")
        }
        Algorithm::Md5 => {
            tracing::info!(server = "ftp", peer = %peer, path, size, resumed_from, md5 = hex, "{event}")
        }
    }
}
