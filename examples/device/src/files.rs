//! Serving one file-protocol request: the core's `FileServerSession` decides what is valid, what
//! is answered and when to commit; this host carries its actions out on the [`Store`] and the
//! link, the way `unstick-std`'s file server does on a directory and a socket.

// The session takes `Refusal`s inline, as results.
#![allow(clippy::result_large_err)]

use embedded_io::{Read, ReadReady, Write};
use unstick_core::ErrorCode;
use unstick_core::files::{
    Deleted, EntryKind, EntryMeta, FileAction, FileRules, FileServerSession, PartialState,
    StageKind, Staged, StatFound,
};
use unstick_core::info::{EndpointInfo, Protocols};
use unstick_core::session::{Refusal, SessionError};

use crate::host::{Closed, RequestWork, serve_request};
use crate::link::{Link, REQUEST_IDLE, WaitForInput};
use crate::shell::MAX_COMMAND;
use crate::store::{CAPACITY, MAX_FILES, NAME_CAP, PartialGone, Store, StoreError};
use crate::{BOARD, HEADER_CAP, Outcome, PLATFORM, SESSION_OUTBOX, flush};

/// A path is never longer than the header that carries it: `HEADER_CAP` bytes hold any path
/// this session can be sent (the core's default room is 4 KiB).
type Session = FileServerSession<'static, HEADER_CAP, HEADER_CAP, SESSION_OUTBOX>;

/// What the host reads the file data of a `ReadFile` from.
#[derive(Clone, Copy)]
enum Source {
    /// The file of this index in the store's table (a download).
    File(usize),
    /// The staged upload (a resume's prefix check).
    Staging,
}

/// Serves the request whose head (prefix and header) is `head`; `upload_size` is what the head
/// announced for an upload (`offset` plus the body's length), checked against the free space
/// before a byte of it is written. Out of line, so that the session's room on the stack is
/// taken only while it serves (never together with the shell's).
#[inline(never)]
pub fn serve<U: Read + ReadReady + Write + WaitForInput>(
    link: &mut Link<'_, U>,
    store: &mut Store<'_>,
    head: &[u8],
    upload_size: u64,
) -> Outcome {
    let rules = FileRules {
        token: None,
        max_file_size: CAPACITY as u64,
        idle_timeout: REQUEST_IDLE,
    };
    // Built in place: a builder's move would copy the whole session on the stack.
    let mut session = Session::new(rules);
    session.set_info(device_info(store));
    let mut work = StoreWork {
        store,
        source: None,
        upload_size,
    };
    let outcome = serve_request(link, &mut session, head, &mut work);
    work.store.end_request();
    outcome
}

/// What the device says of itself in an info reply, beyond what the file session knows: both
/// protocols (an info request comes here, whichever protocol's client sent it), the shell's
/// longest command, the store's name length and free space, and the board.
fn device_info(store: &Store<'_>) -> EndpointInfo<'static> {
    let mut info = EndpointInfo::new(Protocols::BOTH);
    info.max_command = Some(MAX_COMMAND as u64);
    info.max_path = Some(NAME_CAP as u64);
    info.free_space = Some(store.free() as u64);
    info.platform = Some(PLATFORM);
    info.board = Some(BOARD);
    info
}

/// What the device's file server does for its session: the actions on the store.
struct StoreWork<'s, 'b> {
    store: &'s mut Store<'b>,
    source: Option<Source>,
    upload_size: u64,
}

/// Reports an action's result to the session. A result it does not take is a bug of this
/// host: the request starts over.
fn reported(result: Result<(), SessionError>) -> Result<(), Closed> {
    result.map_err(|_| Closed)
}

impl RequestWork<Session> for StoreWork<'_, '_> {
    /// Each action is answered by a function of its own, out of line: a result that may hold
    /// a refusal (half a KiB) takes room on the stack only while its one action is answered.
    fn act<U: Read + ReadReady + Write + WaitForInput>(
        &mut self,
        link: &mut Link<'_, U>,
        session: &mut Session,
    ) -> Result<(), Closed> {
        let Some(action) = session.poll_action() else {
            return Ok(());
        };
        let store = &mut *self.store;
        reported(match action {
            FileAction::Stat { path } => {
                let found = stat(store, path);
                session.handle_stat(Ok(found))
            }
            FileAction::List { path } => {
                let subdirectory = path.is_some();
                list(link, session, store, subdirectory)
            }
            FileAction::Delete { path } => {
                let deleted = delete(store, path);
                session.handle_deleted(Ok(deleted))
            }
            FileAction::OpenFile { path } => {
                let opened = store
                    .files()
                    .enumerate()
                    .find(|(_, f)| f.name == path)
                    .map(|(i, f)| (i, meta(f)));
                self.source = opened.map(|(i, _)| Source::File(i));
                answer_open(session, opened.map(|(_, meta)| meta))
            }
            FileAction::ReadFile { offset, len } => {
                read_file(link, session, store, self.source, offset, len)
            }
            FileAction::Stage { path, kind } => {
                let staged = stage(store, path, kind, self.upload_size);
                if staged.is_ok() {
                    self.source = Some(Source::Staging);
                }
                answer_stage(session, staged)
            }
            FileAction::Truncate { len } => {
                let cut = store.truncate(usize::try_from(len).unwrap_or(usize::MAX));
                answer_done(session, cut)
            }
            FileAction::Commit { path, keep } => {
                // A `put -p`'s time when the store can hold it (it has no modes to keep), else
                // the uptime, as the board has no calendar clock.
                let mtime = keep
                    .mtime
                    .and_then(|t| u32::try_from(t).ok())
                    .unwrap_or_else(|| link.now_ms() / 1000);
                let committed = store.commit(path, mtime);
                answer_done(session, committed)
            }
            FileAction::KeepPartial => {
                store.keep();
                session.handle_done(Ok(()))
            }
            // The store is flat and names are fixed once written: say so rather than pretend.
            FileAction::MakeDir { .. } | FileAction::Rename { .. } => refuse_flat(session),
            FileAction::Close => return Err(Closed),
        })
    }

    /// Writes upload bytes to the staging extent.
    fn take(&mut self, session: &mut Session, chunk: &[u8]) {
        if let Err(e) = self.store.write(chunk) {
            answer_write_failed(session, e);
        }
    }

    /// Broken off by the next request's start (or by a lost frame) rather than by silence: an
    /// upload is kept for a resume all the same, as the session keeps a torn one. What it
    /// staged came in good frames, in order.
    fn interrupted(&mut self) {
        self.store.keep();
    }

    fn is_over(&self, session: &Session) -> bool {
        session.answered() > 0 && session.is_idle()
    }
}

/// Answers an action done on the store (`Ok`) or refused by it, about the request's path.
#[inline(never)]
fn answer_done(session: &mut Session, done: Result<(), StoreError>) -> Result<(), SessionError> {
    let result = done.map_err(|e| refusal(e, session.path()));
    session.handle_done(result)
}

#[inline(never)]
fn answer_open(session: &mut Session, found: Option<EntryMeta>) -> Result<(), SessionError> {
    let opened = found.ok_or_else(|| refusal(StoreError::NotFound, session.path()));
    session.handle_opened(opened)
}

#[inline(never)]
fn answer_stage(
    session: &mut Session,
    staged: Result<Staged, StoreError>,
) -> Result<(), SessionError> {
    let staged = staged.map_err(|e| refusal(e, session.path()));
    session.handle_staged(staged)
}

#[inline(never)]
fn answer_write_failed(session: &mut Session, e: StoreError) {
    let refusal = refusal(e, session.path());
    let _ = session.handle_write_failed(refusal);
}

#[inline(never)]
fn refuse_flat(session: &mut Session) -> Result<(), SessionError> {
    let refusal = Refusal::new(
        ErrorCode::BadRequest,
        "this device's store is flat: it supports neither mkdir nor rename",
    );
    session.handle_done(Err(refusal))
}

#[inline(never)]
fn list<U: Read + ReadReady + Write + WaitForInput>(
    link: &mut Link<'_, U>,
    session: &mut Session,
    store: &Store<'_>,
    subdirectory: bool,
) -> Result<(), SessionError> {
    if subdirectory {
        let refusal = Refusal::new(
            ErrorCode::NotFound,
            format_args!(
                "{}: no such directory (this device's store is flat)",
                session.path()
            ),
        );
        return session.handle_done(Err(refusal));
    }
    for file in store.files() {
        session.handle_entry(&file.name, false, meta(file))?;
        flush(link, &[], &mut |out| session.poll_transmit(out));
    }
    session.handle_done(Ok(()))
}

#[inline(never)]
fn read_file<U: Read + ReadReady + Write + WaitForInput>(
    link: &mut Link<'_, U>,
    session: &mut Session,
    store: &Store<'_>,
    source: Option<Source>,
    offset: u64,
    len: u64,
) -> Result<(), SessionError> {
    let bytes = match source {
        Some(Source::File(i)) => store.files().nth(i).map(|f| store.contents(f)),
        Some(Source::Staging) => Some(store.staged_bytes()),
        None => None,
    };
    let range = usize::try_from(offset)
        .ok()
        .zip(usize::try_from(len).ok())
        .and_then(|(start, len)| Some(start..start.checked_add(len)?));
    let Some(chunk) = bytes.zip(range).and_then(|(bytes, range)| bytes.get(range)) else {
        let refusal = Refusal::new(
            ErrorCode::StorageError,
            format_args!("{}: the stored data ended early", session.path()),
        );
        return session.handle_read_failed(refusal);
    };
    session.handle_file_data(chunk)?;
    flush(link, chunk, &mut |out| session.poll_transmit(out));
    Ok(())
}

fn meta(file: &crate::store::File) -> EntryMeta {
    EntryMeta {
        kind: EntryKind::File,
        size: file.len as u64,
        mtime: i64::from(file.mtime),
        mode: None,
    }
}

fn stat(store: &Store<'_>, path: &str) -> StatFound {
    StatFound {
        entry: store.file(path).map(meta),
        partial_size: store.partial_size(path) as u64,
    }
}

fn delete(store: &mut Store<'_>, path: &str) -> Deleted {
    let (entry_removed, partial) = store.delete(path);
    Deleted {
        entry_removed,
        partial: match partial {
            PartialGone::Removed => PartialState::Removed,
            PartialGone::Absent => PartialState::Absent,
        },
    }
}

fn stage(
    store: &mut Store<'_>,
    path: &str,
    kind: StageKind,
    size: u64,
) -> Result<Staged, StoreError> {
    let staged = match kind {
        StageKind::Fresh => store.stage_fresh(path, size, true).map(|()| Some(0)),
        StageKind::Temporary => store.stage_fresh(path, size, false).map(|()| Some(0)),
        StageKind::Resume => store.stage_resume(path, size),
    };
    Ok(match staged? {
        Some(len) => Staged::Ready { len: len as u64 },
        None => Staged::NoPartial,
    })
}

/// The refusal the client is sent for a store error about `path`.
fn refusal(e: StoreError, path: &str) -> Refusal {
    match e {
        StoreError::BadName => Refusal::new(
            ErrorCode::BadPath,
            format_args!(
                "`{path}`: this device's store is flat: a name is one component of at most \
                 {NAME_CAP} bytes, no directories"
            ),
        ),
        StoreError::NotFound => {
            Refusal::new(ErrorCode::NotFound, format_args!("{path}: no such file"))
        }
        StoreError::NoSpace { needed, free } => Refusal::new(
            ErrorCode::NoSpace,
            format_args!(
                "{path}: no space on the device: {needed} bytes do not fit in the {free} bytes \
                 free of its {CAPACITY}-byte store; nothing was written"
            ),
        ),
        StoreError::TableFull => Refusal::new(
            ErrorCode::NoSpace,
            format_args!(
                "{path}: the device's store holds {MAX_FILES} files, its most; delete one first"
            ),
        ),
        StoreError::NotStaged => Refusal::new(
            ErrorCode::StorageError,
            format_args!("{path}: no upload is staged"),
        ),
    }
}
