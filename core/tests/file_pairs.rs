//! The file protocol's client and server sessions run against each other in memory: no socket,
//! no thread, no file system. The server's host keeps files, directories and partial uploads in
//! maps; the client's host keeps its local file in a vector. The bytes between the sessions are
//! cut in every chunking of [`pairs::all_cuts`], and every run is bounded by a step budget.
#![cfg(all(feature = "md5", feature = "xxh3"))]
// The server session takes the host's results with a `Refusal` inline, as these do.
#![allow(clippy::result_large_err)]

mod pairs;

use std::collections::{BTreeMap, BTreeSet};

use pairs::{Budget, Cuts, Pipe, Read, all_cuts, generated, steps_for};
use unstick_core::files::client::{
    ClientAction, ClientEvent, EntryInfo, FileClientSession, FileProtocolError, RequestOptions,
    StatInfo,
};
use unstick_core::files::{
    Completed, Deleted, EntryKind, EntryMeta, FileAction, FileAttributes, FileRules,
    FileServerSession, IDLE_TIMEOUT, PartialState, StageKind, Staged, StatFound,
};
use unstick_core::session::{Refusal, ServerEvent};
use unstick_core::time::Instant;
use unstick_core::{Algorithm, Algorithms, BodyHasher, Checksum, ErrorCode, FileOp};

/// How much the client's host reads of its local file at a time.
const LOCAL_READ: usize = 3000;
/// How much the server's host reads of a file at a time.
const SERVER_READ: usize = 4000;

fn digest(algorithm: Algorithm, data: &[u8]) -> Checksum {
    let mut hasher = BodyHasher::new(Algorithms::only(algorithm));
    hasher.update(data);
    hasher.finish().get(algorithm).unwrap()
}

const XXH3: RequestOptions<'static> = RequestOptions {
    token: None,
    algorithm: Algorithm::Xxh3,
};

const MD5: RequestOptions<'static> = RequestOptions {
    token: None,
    algorithm: Algorithm::Md5,
};

/// The server's storage: files and directories by path, and the partial uploads held for
/// resuming, by the name they are uploads of.
#[derive(Debug, Default)]
struct World {
    files: BTreeMap<String, (Vec<u8>, i64)>,
    dirs: BTreeSet<String>,
    partials: BTreeMap<String, Vec<u8>>,
    /// Files' permission bits where an upload set them (`put -p`); others have 0o644.
    modes: BTreeMap<String, u32>,
    clock: i64,
}

fn parent(path: &str) -> Option<&str> {
    path.rsplit_once('/').map(|(dir, _)| dir)
}

fn name_of(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, name)| name)
}

fn refusal(code: ErrorCode, path: &str, why: &str) -> Refusal {
    Refusal::new(code, format_args!("{path}: {why}"))
}

impl World {
    fn with_file(mut self, path: &str, data: &[u8]) -> Self {
        let mut dir = parent(path);
        while let Some(d) = dir {
            self.dirs.insert(d.to_owned());
            dir = parent(d);
        }
        self.clock += 1;
        self.files
            .insert(path.to_owned(), (data.to_vec(), 1_700_000_000 + self.clock));
        self
    }

    fn file(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(|(data, _)| data.as_slice())
    }

    fn meta(&self, path: &str) -> Option<EntryMeta> {
        if let Some((data, mtime)) = self.files.get(path) {
            return Some(EntryMeta {
                kind: EntryKind::File,
                size: data.len() as u64,
                mtime: *mtime,
                // Bits past 0o777 stay the host's: the session never sends them.
                mode: Some(self.modes.get(path).copied().unwrap_or(0o644) | 0o4000),
            });
        }
        self.dirs.contains(path).then_some(EntryMeta {
            kind: EntryKind::Dir,
            size: 0,
            mtime: 1_600_000_000,
            mode: Some(0o755),
        })
    }

    /// Checks that the directories above `path` exist (creating them if `create`) and that
    /// none is a file.
    /// A directory made as a host would: parents walked (created with `parents`), an existing
    /// name refused unless it is a directory and `parents` is set.
    fn mkdir(&mut self, path: &str, parents: bool) -> Result<(), Refusal> {
        self.walk(path, parents)?;
        if self.dirs.contains(path) && parents {
            return Ok(());
        }
        if self.dirs.contains(path) || self.files.contains_key(path) {
            return Err(refusal(ErrorCode::Exists, path, "exists already"));
        }
        self.dirs.insert(path.to_owned());
        Ok(())
    }

    /// A file renamed (directories are not moved by this world).
    fn rename(&mut self, from: &str, to: &str) -> Result<(), Refusal> {
        self.walk(to, false)?;
        let Some(file) = self.files.remove(from) else {
            return Err(refusal(ErrorCode::NotFound, from, "no such file"));
        };
        self.files.insert(to.to_owned(), file);
        Ok(())
    }

    fn walk(&mut self, path: &str, create: bool) -> Result<(), Refusal> {
        let mut above = Vec::new();
        let mut dir = parent(path);
        while let Some(d) = dir {
            above.push(d);
            dir = parent(d);
        }
        for d in above.into_iter().rev() {
            if self.files.contains_key(d) {
                return Err(refusal(ErrorCode::BadPath, d, "not a directory"));
            }
            if !self.dirs.contains(d) {
                if !create {
                    return Err(refusal(ErrorCode::NotFound, d, "no such directory"));
                }
                self.dirs.insert(d.to_owned());
            }
        }
        Ok(())
    }

    fn stat(&mut self, path: &str) -> Result<StatFound, Refusal> {
        match self.walk(path, false) {
            Err(r) if r.code == ErrorCode::NotFound => {}
            other => other?,
        }
        Ok(StatFound {
            entry: self.meta(path),
            partial_size: self.partials.get(path).map_or(0, |p| p.len() as u64),
        })
    }

    fn children(&self, dir: Option<&str>) -> Vec<(String, EntryMeta)> {
        let names = self.files.keys().chain(self.dirs.iter());
        let mut listed: Vec<(String, EntryMeta)> = names
            .filter(|p| parent(p) == dir)
            .map(|p| (name_of(p).to_owned(), self.meta(p).unwrap()))
            .collect();
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        listed
    }

    fn list(&mut self, dir: Option<&str>) -> Result<Vec<(String, EntryMeta)>, Refusal> {
        if let Some(dir) = dir {
            self.walk(dir, false)?;
            match self.meta(dir) {
                Some(m) if m.kind == EntryKind::Dir => {}
                Some(_) => return Err(refusal(ErrorCode::BadPath, dir, "not a directory")),
                None => return Err(refusal(ErrorCode::NotFound, dir, "no such directory")),
            }
        }
        Ok(self.children(dir))
    }

    fn delete(&mut self, path: &str) -> Result<Deleted, Refusal> {
        self.walk(path, false)?;
        let entry_removed = match self.meta(path).map(|m| m.kind) {
            Some(EntryKind::Dir) => {
                if !self.children(Some(path)).is_empty() {
                    return Err(refusal(ErrorCode::BadRequest, path, "not empty"));
                }
                self.dirs.remove(path)
            }
            Some(_) => self.files.remove(path).is_some(),
            None => false,
        };
        let partial = match self.partials.remove(path) {
            Some(_) => PartialState::Removed,
            None => PartialState::Absent,
        };
        Ok(Deleted {
            entry_removed,
            partial,
        })
    }

    fn open(&mut self, path: &str) -> Result<(EntryMeta, Vec<u8>), Refusal> {
        self.walk(path, false)?;
        match (self.meta(path), self.files.get(path)) {
            (Some(meta), Some((data, _))) => Ok((meta, data.clone())),
            (Some(_), None) => Err(refusal(ErrorCode::BadPath, path, "is a directory")),
            _ => Err(refusal(ErrorCode::NotFound, path, "no such file")),
        }
    }
}

/// Where an upload's bytes go on the server.
#[derive(Debug)]
enum Staging {
    /// The name's partial upload (in `World::partials`).
    Partial(String),
    /// A temporary file, never resumed.
    Temporary(Vec<u8>),
}

/// An event the client reported, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Stat(StatInfo),
    Entry(Box<EntryInfo>),
    Listed(u64),
    Deleted,
    Made,
    Renamed,
    UploadFrom(u64),
    Stored {
        size: u64,
        resumed_from: u64,
        digest: Checksum,
    },
    FileHead {
        size: u64,
        offset: u64,
    },
    Fetched {
        size: u64,
        resumed_from: u64,
        digest: Checksum,
    },
    Refused(String),
    SeedSent(u64),
    Failed(FileProtocolError),
}

impl Ev {
    /// Whether the operation is over with this event.
    fn ends(&self) -> bool {
        !matches!(self, Ev::Entry(_) | Ev::UploadFrom(_) | Ev::FileHead { .. })
    }
}

type Hook = Box<dyn FnMut(&Ev, &mut World)>;

/// A client session and a server session on one in-memory connection, over a shared world.
struct FilePair<'w> {
    cuts: Cuts,
    world: &'w mut World,
    server: FileServerSession<'static>,
    client: FileClientSession<1024, 1024>,
    c2s: Pipe,
    s2c: Pipe,
    buf: Vec<u8>,
    /// The fake clock both hosts read; it moves only when a test moves it.
    now: Instant,
    // The server's host.
    server_closed: bool,
    staging: Option<Staging>,
    opened: Option<Vec<u8>>,
    answered: u64,
    refusals: Vec<Refusal>,
    completed: Vec<Completed>,
    /// Every action the server asked for, by name.
    actions: Vec<&'static str>,
    // The client's host.
    local: Vec<u8>,
    download: Vec<u8>,
    events: Vec<Ev>,
    in_flight: bool,
    reading_to_end: bool,
    client_eof: bool,
    hook: Option<Hook>,
    /// The modification time and mode of the last download's head.
    head_attributes: Option<(i64, Option<u32>)>,
}

impl<'w> FilePair<'w> {
    fn new(world: &'w mut World, rules: FileRules<'static>, cuts: Cuts) -> Self {
        FilePair {
            cuts,
            world,
            server: FileServerSession::new(rules),
            client: FileClientSession::new(),
            c2s: Pipe::new(cuts),
            s2c: Pipe::new(cuts.reversed()),
            buf: vec![0u8; 4096],
            now: Instant::ZERO,
            server_closed: false,
            staging: None,
            opened: None,
            answered: 0,
            refusals: Vec::new(),
            completed: Vec::new(),
            actions: Vec::new(),
            local: Vec::new(),
            download: Vec::new(),
            events: Vec::new(),
            in_flight: false,
            reading_to_end: false,
            client_eof: false,
            hook: None,
            head_attributes: None,
        }
    }

    fn summary(&self) -> String {
        format!(
            "cuts {:?}, server closed {}, server action {:?}, server idle {}, answered {}, \
             client {:?} action {:?}, c2s in flight {} pending {} closed {}, s2c in flight {} \
             pending {} closed {}, events {:?}, last actions {:?}",
            self.cuts,
            self.server_closed,
            self.server.poll_action(),
            self.server.is_idle(),
            self.server.answered(),
            self.client,
            self.client.poll_action(),
            self.c2s.in_flight(),
            self.c2s.pending().len(),
            self.c2s.is_closed(),
            self.s2c.in_flight(),
            self.s2c.pending().len(),
            self.s2c.is_closed(),
            self.events,
            &self.actions[self.actions.len().saturating_sub(6)..],
        )
    }

    // ---- the server's host ----

    /// The staging file's bytes.
    fn staged(&mut self) -> &mut Vec<u8> {
        match self.staging.as_mut().expect("an upload is staged") {
            Staging::Partial(path) => self.world.partials.get_mut(path.as_str()).unwrap(),
            Staging::Temporary(data) => data,
        }
    }

    /// A request ended: a staging file neither committed nor kept is removed.
    fn end_request(&mut self) {
        if let Some(Staging::Partial(path)) = self.staging.take() {
            self.world.partials.remove(&path);
        }
        self.opened = None;
    }

    fn server_flush(&mut self, body: &[u8]) -> bool {
        let session = &mut self.server;
        let sent = self
            .s2c
            .send_transmits(&mut self.buf, body, |buf| session.poll_transmit(buf));
        while let Some(event) = self.server.poll_event() {
            match event {
                ServerEvent::Refused(refusal) => self.refusals.push(refusal),
                ServerEvent::Completed(completed) => self.completed.push(completed),
            }
        }
        if self.server.answered() != self.answered {
            self.answered = self.server.answered();
            self.end_request();
        }
        sent
    }

    fn server_step(&mut self) -> bool {
        if self.server_closed {
            return false;
        }
        let flushed = self.server_flush(&[]);
        let Some(action) = self.server.poll_action() else {
            return self.server_feed() || flushed;
        };
        let name = match action {
            FileAction::Stat { .. } => "stat",
            FileAction::List { .. } => "list",
            FileAction::Delete { .. } => "delete",
            FileAction::OpenFile { .. } => "open",
            FileAction::Stage { .. } => "stage",
            FileAction::ReadFile { .. } => "read",
            FileAction::Truncate { .. } => "truncate",
            FileAction::Commit { .. } => "commit",
            FileAction::KeepPartial => "keep",
            FileAction::MakeDir { .. } => "mkdir",
            FileAction::Rename { .. } => "rename",
            FileAction::Close => "close",
        };
        if self.actions.last() != Some(&name) || name != "read" {
            self.actions.push(name);
        }
        // The path, owned, so that the session can be called while it is in hand.
        let path = match action {
            FileAction::Stat { path }
            | FileAction::Delete { path }
            | FileAction::OpenFile { path }
            | FileAction::Stage { path, .. }
            | FileAction::Commit { path, .. } => Some(path.to_owned()),
            FileAction::List { path } => path.map(str::to_owned),
            _ => None,
        };
        match action {
            FileAction::Stat { .. } => {
                let found = self.world.stat(path.as_deref().unwrap());
                self.server.handle_stat(found).unwrap();
            }
            FileAction::List { .. } => match self.world.list(path.as_deref()) {
                Ok(entries) => {
                    for (name, meta) in entries {
                        self.server.handle_entry(&name, false, meta).unwrap();
                        self.server_flush(&[]);
                    }
                    self.server.handle_done(Ok(())).unwrap();
                }
                Err(refusal) => self.server.handle_done(Err(refusal)).unwrap(),
            },
            FileAction::Delete { .. } => {
                let deleted = self.world.delete(path.as_deref().unwrap());
                self.server.handle_deleted(deleted).unwrap();
            }
            FileAction::OpenFile { .. } => {
                let opened = self
                    .world
                    .open(path.as_deref().unwrap())
                    .map(|(meta, data)| {
                        self.opened = Some(data);
                        meta
                    });
                self.server.handle_opened(opened).unwrap();
            }
            FileAction::Stage { kind, .. } => {
                let staged = self.stage(path.as_deref().unwrap(), kind);
                self.server.handle_staged(staged).unwrap();
            }
            FileAction::ReadFile { offset, len } => {
                let source = match &self.opened {
                    Some(data) => data.clone(),
                    None => self.staged().clone(),
                };
                let start = (offset as usize).min(source.len());
                let end = (start + SERVER_READ.min(len as usize)).min(source.len());
                let chunk = &source[start..end];
                if chunk.is_empty() {
                    let refusal = Refusal::new(ErrorCode::StorageError, "the file shrank");
                    self.server.handle_read_failed(refusal).unwrap();
                } else {
                    self.server.handle_file_data(chunk).unwrap();
                    self.server_flush(chunk);
                }
            }
            FileAction::Truncate { len } => {
                self.staged().truncate(len as usize);
                self.server.handle_done(Ok(())).unwrap();
            }
            FileAction::Commit { keep, .. } => {
                let path = path.unwrap();
                let data = match self.staging.take().expect("an upload is staged") {
                    Staging::Partial(name) => self.world.partials.remove(&name).unwrap(),
                    Staging::Temporary(data) => data,
                };
                self.world.clock += 1;
                let mtime = keep.mtime.unwrap_or(1_700_000_000 + self.world.clock);
                match keep.mode {
                    Some(mode) => self.world.modes.insert(path.clone(), mode),
                    None => self.world.modes.remove(&path),
                };
                self.world.files.insert(path, (data, mtime));
                self.server.handle_done(Ok(())).unwrap();
            }
            FileAction::KeepPartial => {
                // The partial stays in the world; the host lets go of it.
                if let Some(Staging::Partial(_)) = self.staging {
                    self.staging = None;
                }
                self.server.handle_done(Ok(())).unwrap();
            }
            FileAction::MakeDir { path, parents } => {
                let path = path.to_owned();
                let made = self.world.mkdir(&path, parents);
                self.server.handle_done(made).unwrap();
            }
            FileAction::Rename { from, to } => {
                let (from, to) = (from.to_owned(), to.to_owned());
                let renamed = self.world.rename(&from, &to);
                self.server.handle_done(renamed).unwrap();
            }
            FileAction::Close => {
                self.server_closed = true;
                self.end_request();
                self.s2c.close();
                return true;
            }
        }
        self.server_flush(&[]);
        true
    }

    fn stage(&mut self, path: &str, kind: StageKind) -> Result<Staged, Refusal> {
        self.world.walk(path, true)?;
        if self.world.dirs.contains(path) {
            return Err(refusal(ErrorCode::BadPath, path, "is a directory"));
        }
        match kind {
            StageKind::Fresh => {
                self.world.partials.insert(path.to_owned(), Vec::new());
                self.staging = Some(Staging::Partial(path.to_owned()));
                Ok(Staged::Ready { len: 0 })
            }
            StageKind::Resume => match self.world.partials.get(path) {
                Some(partial) => {
                    let len = partial.len() as u64;
                    self.staging = Some(Staging::Partial(path.to_owned()));
                    Ok(Staged::Ready { len })
                }
                None => Ok(Staged::NoPartial),
            },
            StageKind::Temporary => {
                self.staging = Some(Staging::Temporary(Vec::new()));
                Ok(Staged::Ready { len: 0 })
            }
        }
    }

    fn server_feed(&mut self) -> bool {
        if self.c2s.pending().is_empty() {
            return match self.c2s.read() {
                Read::Data => true,
                Read::Nothing => false,
                Read::Eof if self.c2s.eof_told => false,
                Read::Eof => {
                    self.c2s.eof_told = true;
                    self.server.handle_eof();
                    true
                }
            };
        }
        let (used, body) = self.server.handle_input(self.now, self.c2s.pending());
        let got_body = body.is_some();
        if let Some(chunk) = body {
            let chunk = chunk.to_vec();
            self.staged().extend_from_slice(&chunk);
        }
        self.c2s.consume(used);
        // A refusal may consume nothing (a framing error): what it queued is progress too.
        let flushed = self.server_flush(&[]);
        used > 0 || got_body || flushed || self.server.poll_action().is_some()
    }

    // ---- the client's host ----

    fn client_flush(&mut self, body: &[u8]) -> bool {
        let session = &mut self.client;
        self.c2s
            .send_transmits(&mut self.buf, body, |buf| session.poll_transmit(buf))
    }

    fn client_step(&mut self) -> bool {
        let flushed = self.client_flush(&[]);
        match self.client.poll_action() {
            // While sending, a reply that is already there is read first (the server refused
            // mid-upload), as the std client checks before each write.
            Some(ClientAction::ReadLocal { offset, len, send })
                if !(send && self.s2c.has_input()) =>
            {
                let start = offset as usize;
                let chunk = self.local[start..start + LOCAL_READ.min(len as usize)].to_vec();
                self.client.handle_local_data(&chunk).unwrap();
                self.client_flush(&chunk);
                return true;
            }
            Some(ClientAction::CloseSend) if !self.c2s.is_closed() => {
                self.c2s.close();
                return true;
            }
            _ => {}
        }
        if (!self.in_flight && !self.reading_to_end) || self.client.is_poisoned() {
            return flushed;
        }
        self.client_feed() || flushed
    }

    fn client_feed(&mut self) -> bool {
        if self.s2c.pending().is_empty() {
            return match self.s2c.read() {
                Read::Data => true,
                Read::Nothing => false,
                Read::Eof if self.s2c.eof_told => false,
                Read::Eof => {
                    self.s2c.eof_told = true;
                    match self.client.handle_eof() {
                        Ok(Some(ClientEvent::SeedSent { size })) => self.record(Ev::SeedSent(size)),
                        Ok(Some(other)) => panic!("unexpected event at the end: {other:?}"),
                        Ok(None) => self.client_eof = true,
                        Err(e) => self.record(Ev::Failed(e)),
                    }
                    true
                }
            };
        }
        let input = self.s2c.pending();
        let (used, event) = match self.client.handle_input(self.now, input) {
            Ok((used, Some(event))) => {
                let ev = match event {
                    ClientEvent::Body(bytes) => {
                        self.download.extend_from_slice(bytes);
                        None
                    }
                    ClientEvent::FileHead {
                        size,
                        offset,
                        mtime,
                        mode,
                    } => {
                        self.download.truncate(offset as usize);
                        self.head_attributes = Some((mtime, mode));
                        Some(Ev::FileHead { size, offset })
                    }
                    ClientEvent::Stat(info) => Some(Ev::Stat(info)),
                    ClientEvent::Entry(info) => Some(Ev::Entry(Box::new(info))),
                    ClientEvent::Listed { count } => Some(Ev::Listed(count)),
                    ClientEvent::Deleted => Some(Ev::Deleted),
                    ClientEvent::Made => Some(Ev::Made),
                    ClientEvent::Renamed => Some(Ev::Renamed),
                    ClientEvent::UploadFrom { offset } => Some(Ev::UploadFrom(offset)),
                    ClientEvent::Stored {
                        size,
                        resumed_from,
                        digest,
                    } => Some(Ev::Stored {
                        size,
                        resumed_from,
                        digest,
                    }),
                    ClientEvent::Fetched {
                        size,
                        resumed_from,
                        digest,
                    } => Some(Ev::Fetched {
                        size,
                        resumed_from,
                        digest,
                    }),
                    ClientEvent::Refused(refusal) => Some(Ev::Refused(refusal.code.to_string())),
                    ClientEvent::SeedSent { size } => Some(Ev::SeedSent(size)),
                };
                (used, ev)
            }
            Ok((used, None)) => (used, None),
            Err(e) => (0, Some(Ev::Failed(e))),
        };
        self.s2c.consume(used);
        let progressed = used > 0 || event.is_some();
        if let Some(ev) = event {
            self.record(ev);
        }
        progressed
    }

    fn record(&mut self, ev: Ev) {
        assert!(
            self.in_flight,
            "an event with no operation in flight: {ev:?}"
        );
        if let Some(hook) = self.hook.as_mut() {
            hook(&ev, self.world);
        }
        if ev.ends() {
            self.in_flight = false;
        }
        self.events.push(ev);
    }

    // ---- what the tests call ----

    fn step_until(&mut self, what: &str, steps: usize, done: impl Fn(&Self) -> bool) {
        let mut budget = Budget::new(steps, format!("{what} ({:?})", self.cuts));
        while !done(self) {
            let server = self.server_step();
            let client = self.client_step();
            budget.spend(server || client, || self.summary());
        }
    }

    /// Starts an operation and runs the pair until its last event.
    fn op(
        &mut self,
        what: &str,
        bytes: usize,
        start: impl FnOnce(&mut FileClientSession<1024, 1024>) -> Result<(), FileProtocolError>,
    ) -> Vec<Ev> {
        start(&mut self.client).unwrap();
        self.events.clear();
        self.in_flight = true;
        self.step_until(what, steps_for(bytes), |p| !p.in_flight);
        std::mem::take(&mut self.events)
    }

    fn put(
        &mut self,
        path: &str,
        data: &[u8],
        options: RequestOptions<'_>,
        resume: bool,
    ) -> Vec<Ev> {
        self.put_keeping(path, data, options, resume, FileAttributes::NONE)
    }

    fn put_keeping(
        &mut self,
        path: &str,
        data: &[u8],
        options: RequestOptions<'_>,
        resume: bool,
        keep: FileAttributes,
    ) -> Vec<Ev> {
        self.local = data.to_vec();
        let size = data.len() as u64;
        self.op(&format!("put {path}"), data.len(), |c| {
            c.put_keeping(path, size, options, resume, keep)
        })
    }

    /// Downloads `path` over the local partial download `have`; returns the events and the
    /// local file as it ends up.
    fn get(&mut self, path: &str, options: RequestOptions<'_>, have: &[u8]) -> (Vec<Ev>, Vec<u8>) {
        self.local = have.to_vec();
        self.download = have.to_vec();
        let size = self.world.file(path).map_or(0, <[u8]>::len);
        let events = self.op(&format!("get {path}"), size, |c| {
            c.get(path, options, have.len() as u64)
        });
        (events, std::mem::take(&mut self.download))
    }

    fn stat(&mut self, path: &str, options: RequestOptions<'_>) -> Vec<Ev> {
        self.op(&format!("stat {path}"), 0, |c| c.stat(path, options))
    }

    fn list(&mut self, dir: &str, options: RequestOptions<'_>) -> Vec<Ev> {
        self.op(&format!("ls {dir}"), 0, |c| c.list(dir, options))
    }

    fn delete(&mut self, path: &str, options: RequestOptions<'_>) -> Vec<Ev> {
        self.op(&format!("delete {path}"), 0, |c| c.delete(path, options))
    }

    fn mkdir(&mut self, path: &str, parents: bool, options: RequestOptions<'_>) -> Vec<Ev> {
        self.op(&format!("mkdir {path}"), 0, |c| {
            c.mkdir(path, parents, options)
        })
    }

    fn rename(&mut self, from: &str, to: &str, options: RequestOptions<'_>) -> Vec<Ev> {
        self.op(&format!("rename {from} {to}"), 0, |c| {
            c.rename(from, to, options)
        })
    }

    fn seed_put(&mut self, folder: &str, filename: &str, data: &[u8]) -> Vec<Ev> {
        self.local = data.to_vec();
        let size = data.len() as u64;
        self.op(&format!("seed put {filename}"), data.len(), |c| {
            c.seed_put(folder, filename, size)
        })
    }

    /// Starts an upload and drops the connection once at least `after` body bytes are out (the
    /// client is gone: it neither sends nor reads again); the server runs on until it closes.
    /// Returns the body bytes that went out.
    fn abandon_put(&mut self, path: &str, data: &[u8], after: u64) -> u64 {
        self.local = data.to_vec();
        self.client
            .put(path, data.len() as u64, XXH3, false)
            .unwrap();
        self.in_flight = true;
        let mut budget = Budget::new(steps_for(data.len()), format!("torn put ({:?})", self.cuts));
        while self.c2s.body_written < after {
            let client = self.client_step();
            let server = self.server_step();
            budget.spend(client || server, || self.summary());
        }
        self.c2s.close();
        while !self.server_closed {
            let server = self.server_step();
            budget.spend(server, || self.summary());
        }
        self.c2s.body_written
    }

    /// Waits for the server to close the connection; the client reads what comes (nothing
    /// must) and sees a clean end.
    fn expect_server_close(&mut self) {
        self.reading_to_end = true;
        self.step_until("the server closing", 10_000, |p| {
            p.client_eof || p.client.is_poisoned()
        });
        assert!(self.server_closed);
        assert!(self.client_eof, "{:?}", self.client);
    }

    /// The client hangs up between operations; the server closes too.
    fn hang_up(&mut self) {
        self.c2s.close();
        self.expect_server_close();
    }

    /// The codes of the refusals the server logged, with whether each closed.
    fn logged(&self) -> Vec<(&'static str, bool)> {
        self.refusals
            .iter()
            .map(|r| (r.code.as_str(), r.closes))
            .collect()
    }
}

const OPEN: FileRules<'static> = FileRules {
    token: None,
    max_file_size: 1 << 30,
    idle_timeout: IDLE_TIMEOUT,
};

fn refused(code: &str) -> Vec<Ev> {
    vec![Ev::Refused(code.to_owned())]
}

fn stored(data: &[u8], resumed_from: u64, algorithm: Algorithm) -> Ev {
    Ev::Stored {
        size: data.len() as u64,
        resumed_from,
        digest: digest(algorithm, data),
    }
}

fn fetched(data: &[u8], resumed_from: u64, algorithm: Algorithm) -> Vec<Ev> {
    vec![
        Ev::FileHead {
            size: data.len() as u64,
            offset: resumed_from,
        },
        Ev::Fetched {
            size: data.len() as u64,
            resumed_from,
            digest: digest(algorithm, data),
        },
    ]
}

fn stat_of(events: &[Ev]) -> &StatInfo {
    match events {
        [Ev::Stat(info)] => info,
        other => panic!("expected a stat, got {other:?}"),
    }
}

/// A listing's entries as (name, kind, size), checked to end with a matching count.
fn listing(events: &[Ev]) -> Vec<(String, String, u64)> {
    let Some((Ev::Listed(count), entries)) = events.split_last() else {
        panic!("expected a listing, got {events:?}")
    };
    assert_eq!(*count as usize, entries.len());
    entries
        .iter()
        .map(|e| match e {
            Ev::Entry(e) => (e.name.to_string(), e.kind.to_string(), e.size),
            other => panic!("expected an entry, got {other:?}"),
        })
        .collect()
}

fn entry(name: &str, kind: &str, size: u64) -> (String, String, u64) {
    (name.to_owned(), kind.to_owned(), size)
}

#[test]
fn put_get_ls_stat_delete_round_trip_on_one_connection() {
    let one = [0x42u8];
    let mid = generated(5_000, 3);
    for cuts in all_cuts() {
        let mut world = World::default();
        let mut pair = FilePair::new(&mut world, OPEN, cuts);
        let puts: [(&str, &[u8], RequestOptions<'_>); 3] = [
            ("a/empty", b"", XXH3),
            ("a/one", &one, MD5),
            ("a/b/mid.bin", &mid, XXH3),
        ];
        for (path, data, options) in puts {
            let events = pair.put(path, data, options, false);
            assert_eq!(
                events,
                [stored(data, 0, options.algorithm)],
                "{path} {cuts:?}"
            );
            assert_eq!(pair.world.file(path), Some(data));
        }
        assert!(pair.world.partials.is_empty());

        let info = stat_of(&pair.stat("a/b/mid.bin", XXH3)).clone();
        assert!(info.exists);
        assert_eq!(
            (info.kind.as_str(), info.size, info.partial_size),
            ("file", Some(5_000), 0)
        );
        assert!(!stat_of(&pair.stat("a/nothing", XXH3)).exists);
        assert!(!stat_of(&pair.stat("no/such/dir/x", XXH3)).exists);
        let info = stat_of(&pair.stat("a/b", XXH3)).clone();
        assert_eq!((info.exists, info.kind.as_str()), (true, "dir"));

        assert_eq!(
            listing(&pair.list("a", XXH3)),
            [
                entry("b", "dir", 0),
                entry("empty", "file", 0),
                entry("one", "file", 1)
            ]
        );
        assert_eq!(listing(&pair.list("", XXH3)), [entry("a", "dir", 0)]);
        assert_eq!(
            listing(&pair.list("a/b/", XXH3)),
            [entry("mid.bin", "file", 5_000)]
        );
        assert_eq!(pair.list("a/empty", XXH3), refused("bad_path"));
        assert_eq!(pair.list("nowhere", XXH3), refused("not_found"));

        for (path, data, options) in puts {
            let (events, local) = pair.get(path, options, b"");
            assert_eq!(
                events,
                fetched(data, 0, options.algorithm),
                "{path} {cuts:?}"
            );
            assert_eq!(local, data);
        }
        assert_eq!(pair.get("a/b", XXH3, b"").0, refused("bad_path"));
        assert_eq!(pair.get("a/missing", XXH3, b"").0, refused("not_found"));

        assert_eq!(pair.delete("a/one", XXH3), [Ev::Deleted]);
        assert_eq!(pair.world.file("a/one"), None);
        assert!(!stat_of(&pair.stat("a/one", XXH3)).exists);
        assert_eq!(pair.delete("a/one", XXH3), refused("not_found"));
        assert_eq!(pair.get("a/one", MD5, b"").0, refused("not_found"));
        assert_eq!(pair.delete("a/b", XXH3), refused("bad_request"));
        assert_eq!(pair.delete("a/b/mid.bin", XXH3), [Ev::Deleted]);
        assert_eq!(pair.delete("a/b", XXH3), [Ev::Deleted]);
        assert_eq!(listing(&pair.list("a", XXH3)), [entry("empty", "file", 0)]);

        assert_eq!(pair.mkdir("m/n", false, XXH3), refused("not_found"));
        assert_eq!(pair.mkdir("m/n", true, XXH3), [Ev::Made]);
        assert_eq!(pair.mkdir("m/n", true, XXH3), [Ev::Made]);
        assert_eq!(pair.mkdir("m/n", false, XXH3), refused("exists"));
        assert_eq!(pair.mkdir("../m", true, XXH3), refused("bad_path"));
        assert_eq!(pair.rename("a/empty", "m/n/moved", XXH3), [Ev::Renamed]);
        assert_eq!(pair.rename("a/empty", "m/x", XXH3), refused("not_found"));
        assert_eq!(
            pair.rename("m/n/moved", "../out", XXH3),
            refused("bad_path")
        );
        assert_eq!(pair.rename("m/n/moved", "a/empty", XXH3), [Ev::Renamed]);

        // Nothing above closed the connection.
        assert!(pair.logged().iter().all(|&(_, closes)| !closes));
        assert_eq!(pair.server.answered(), 34, "{cuts:?}");
        pair.hang_up();
        drop(pair);
        assert_eq!(world.files.len(), 1);
    }
}

#[test]
fn a_few_hundred_kib_round_trip() {
    let big = generated(300 * 1024, 4);
    for cuts in all_cuts() {
        let mut world = World::default();
        let mut pair = FilePair::new(&mut world, OPEN, cuts);
        assert_eq!(
            pair.put("big.bin", &big, XXH3, false),
            [stored(&big, 0, Algorithm::Xxh3)]
        );
        assert!(
            pair.world.file("big.bin") == Some(big.as_slice()),
            "{cuts:?}"
        );
        let (events, local) = pair.get("big.bin", MD5, b"");
        assert_eq!(events, fetched(&big, 0, Algorithm::Md5));
        assert!(local == big, "{cuts:?}");
        pair.hang_up();
    }
}

#[test]
fn get_resumes_over_a_local_partial_and_checks_the_whole_file() {
    let data = generated(60_000, 5);
    for cuts in all_cuts() {
        let mut world = World::default().with_file("d/f", &data);
        for have in [0, 1, 25_000, 59_999, 60_000] {
            let mut pair = FilePair::new(&mut world, OPEN, cuts);
            let (events, local) = pair.get("d/f", XXH3, &data[..have]);
            assert_eq!(
                events,
                fetched(&data, have as u64, Algorithm::Xxh3),
                "{have}"
            );
            assert!(local == data, "{have} {cuts:?}");
            pair.hang_up();
        }
        // A local prefix that is not the file's: the digest of the whole does not match.
        let mut bad = data[..25_000].to_vec();
        bad[1_000] ^= 1;
        let mut pair = FilePair::new(&mut world, OPEN, cuts);
        let (events, _) = pair.get("d/f", MD5, &bad);
        assert_eq!(
            events.last(),
            Some(&Ev::Failed(FileProtocolError::DigestMismatch {
                op: FileOp::Done,
                algorithm: Algorithm::Md5
            })),
            "{cuts:?}"
        );
        assert!(pair.client.is_poisoned());
        drop(pair);
        // A byte flipped on its way: the same.
        let mut pair = FilePair::new(&mut world, OPEN, cuts);
        pair.s2c.flip_body_byte = Some(30_000);
        let (events, _) = pair.get("d/f", XXH3, b"");
        assert!(pair.s2c.flipped);
        assert_eq!(
            events.last(),
            Some(&Ev::Failed(FileProtocolError::DigestMismatch {
                op: FileOp::Done,
                algorithm: Algorithm::Xxh3
            }))
        );
        drop(pair);
        // A local partial longer than the file.
        let mut pair = FilePair::new(&mut world, OPEN, cuts);
        let mut longer = data.clone();
        longer.push(0);
        assert_eq!(pair.get("d/f", XXH3, &longer).0, refused("bad_request"));
        pair.hang_up();
    }
}

#[test]
fn put_resumes_a_good_partial_and_sends_only_the_rest() {
    let data = generated(50_000, 6);
    for cuts in all_cuts() {
        for k in [1, 20_000, 49_999, 50_000] {
            let mut world = World::default();
            world.partials.insert("up/f".into(), data[..k].to_vec());
            let mut pair = FilePair::new(&mut world, OPEN, cuts);
            let events = pair.put("up/f", &data, XXH3, true);
            assert_eq!(
                events,
                [
                    Ev::UploadFrom(k as u64),
                    stored(&data, k as u64, Algorithm::Xxh3)
                ],
                "{k} {cuts:?}"
            );
            assert_eq!(pair.c2s.body_written, (data.len() - k) as u64);
            pair.hang_up();
            assert!(world.file("up/f") == Some(data.as_slice()), "{k} {cuts:?}");
            assert!(world.partials.is_empty());
        }
        // A partial longer than the file cannot be its prefix: the upload starts over.
        let mut world = World::default();
        world.partials.insert("f".into(), generated(60_000, 9));
        let mut pair = FilePair::new(&mut world, OPEN, cuts);
        let events = pair.put("f", &data, MD5, true);
        assert_eq!(
            events,
            [Ev::UploadFrom(0), stored(&data, 0, Algorithm::Md5)]
        );
        pair.hang_up();
        assert!(world.file("f") == Some(data.as_slice()));
        assert!(world.partials.is_empty());
    }
}

#[test]
fn put_resume_over_a_corrupted_partial_is_refused_and_the_partial_discarded() {
    let data = generated(40_000, 7);
    for cuts in all_cuts() {
        let mut world = World::default().with_file("f", b"old");
        let mut corrupted = data[..30_000].to_vec();
        corrupted[12_345] ^= 0x80;
        world.partials.insert("f".into(), corrupted);
        let mut pair = FilePair::new(&mut world, OPEN, cuts);
        let events = pair.put("f", &data, XXH3, true);
        assert_eq!(
            events,
            [
                Ev::UploadFrom(30_000),
                Ev::Refused("partial_mismatch".into())
            ],
            "{cuts:?}"
        );
        pair.expect_server_close();
        assert_eq!(pair.logged(), [("partial_mismatch", true)]);
        assert!(!pair.actions.contains(&"commit"));
        drop(pair);
        assert!(
            world.partials.is_empty(),
            "the corrupted partial is discarded"
        );
        assert_eq!(world.file("f"), Some(&b"old"[..]));
        // A fresh upload (resumed from nothing, now) succeeds.
        let mut pair = FilePair::new(&mut world, OPEN, cuts);
        let events = pair.put("f", &data, XXH3, true);
        assert_eq!(
            events,
            [Ev::UploadFrom(0), stored(&data, 0, Algorithm::Xxh3)]
        );
        pair.hang_up();
        assert!(world.file("f") == Some(data.as_slice()));
    }
}

#[test]
fn put_resume_beyond_a_shorter_partial_is_refused_and_the_partial_kept() {
    let data = generated(40_000, 8);
    for cuts in all_cuts() {
        let mut world = World::default();
        world.partials.insert("f".into(), data[..30_000].to_vec());
        let mut pair = FilePair::new(&mut world, OPEN, cuts);
        // Between the server's stat and its staging, the partial loses its tail.
        pair.hook = Some(Box::new(|ev, world| {
            if *ev == Ev::UploadFrom(30_000) {
                world.partials.get_mut("f").unwrap().truncate(10_000);
            }
        }));
        let events = pair.put("f", &data, XXH3, true);
        assert_eq!(
            events,
            [
                Ev::UploadFrom(30_000),
                Ev::Refused("partial_mismatch".into())
            ],
            "{cuts:?}"
        );
        pair.expect_server_close();
        assert_eq!(pair.logged(), [("partial_mismatch", true)]);
        drop(pair);
        assert!(
            world.partials.get("f").map(Vec::as_slice) == Some(&data[..10_000]),
            "what the server holds stays for a later resume"
        );
        assert_eq!(world.file("f"), None);
        let mut pair = FilePair::new(&mut world, OPEN, cuts);
        let events = pair.put("f", &data, XXH3, true);
        assert_eq!(
            events,
            [
                Ev::UploadFrom(10_000),
                stored(&data, 10_000, Algorithm::Xxh3)
            ]
        );
        pair.hang_up();
        assert!(world.file("f") == Some(data.as_slice()));
    }
}

#[test]
fn put_corrupted_in_transit_is_a_checksum_mismatch_and_nothing_is_committed() {
    let data = generated(20_000, 10);
    for cuts in all_cuts() {
        for algorithm_options in [XXH3, MD5] {
            let mut world = World::default().with_file("doc", b"previous");
            let mut pair = FilePair::new(&mut world, OPEN, cuts);
            pair.c2s.flip_body_byte = Some(7_777);
            let events = pair.put("doc", &data, algorithm_options, false);
            assert!(pair.c2s.flipped);
            assert_eq!(events, refused("checksum_mismatch"), "{cuts:?}");
            assert!(!pair.actions.contains(&"commit"));
            assert_eq!(pair.world.file("doc"), Some(&b"previous"[..]));
            assert!(pair.world.partials.is_empty());
            // The refusal leaves the connection open and in step.
            let info = stat_of(&pair.stat("doc", XXH3)).clone();
            assert_eq!((info.size, info.partial_size), (Some(8), 0));
            let (events, local) = pair.get("doc", XXH3, b"");
            assert_eq!(events, fetched(b"previous", 0, Algorithm::Xxh3));
            assert_eq!(local, b"previous");
            assert_eq!(pair.logged(), [("checksum_mismatch", false)]);
            pair.hang_up();
        }
    }
}

#[test]
fn an_upload_over_the_size_limit_is_too_large_before_any_body_is_stored() {
    let rules = FileRules {
        token: None,
        max_file_size: 10_000,
        idle_timeout: IDLE_TIMEOUT,
    };
    let data = generated(10_001, 11);
    for cuts in all_cuts() {
        let mut world = World::default().with_file("x", b"old");
        let mut pair = FilePair::new(&mut world, rules, cuts);
        assert_eq!(pair.put("x", &data, XXH3, false), refused("too_large"));
        pair.expect_server_close();
        assert!(!pair.actions.contains(&"stage"), "{:?}", pair.actions);
        assert!(!pair.actions.contains(&"receive"));
        drop(pair);
        assert_eq!(world.file("x"), Some(&b"old"[..]));
        assert!(world.partials.is_empty());
        // A resume counts its offset: 5,000 held + 5,001 sent is too large too.
        world.partials.insert("x".into(), data[..5_000].to_vec());
        let mut pair = FilePair::new(&mut world, rules, cuts);
        let events = pair.put("x", &data, XXH3, true);
        assert_eq!(
            events,
            [Ev::UploadFrom(5_000), Ev::Refused("too_large".into())]
        );
        pair.expect_server_close();
        assert!(!pair.actions.contains(&"stage"));
        drop(pair);
        assert!(world.partials.get("x").map(Vec::as_slice) == Some(&data[..5_000]));
        // At the limit it fits.
        let mut pair = FilePair::new(&mut world, rules, cuts);
        let events = pair.put("x", &data[..10_000], XXH3, false);
        assert_eq!(events, [stored(&data[..10_000], 0, Algorithm::Xxh3)]);
        pair.hang_up();
    }
}

#[test]
fn a_missing_or_wrong_token_is_unauthorized() {
    let rules = FileRules {
        token: Some("s3cret"),
        max_file_size: 1 << 20,
        idle_timeout: IDLE_TIMEOUT,
    };
    let with = |token| RequestOptions {
        token,
        algorithm: Algorithm::Xxh3,
    };
    for cuts in all_cuts() {
        let mut world = World::default().with_file("f", b"data");
        let mut pair = FilePair::new(&mut world, rules, cuts);
        assert!(stat_of(&pair.stat("f", with(Some("s3cret")))).exists);
        let (events, local) = pair.get("f", with(Some("s3cret")), b"");
        assert_eq!(events, fetched(b"data", 0, Algorithm::Xxh3));
        assert_eq!(local, b"data");
        pair.hang_up();
        // A wrong token closes the connection, so that every guess costs a connection.
        for token in [
            None,
            Some("guess"),
            Some("s3cre"),
            Some("s3cretx"),
            Some(""),
        ] {
            for request in 0..4 {
                let mut pair = FilePair::new(&mut world, rules, cuts);
                let refusal = match request {
                    0 => pair.stat("f", with(token)),
                    1 => pair.get("f", with(token), b"").0,
                    2 => pair.list("", with(token)),
                    _ => pair.delete("f", with(token)),
                };
                assert_eq!(refusal, refused("unauthorized"), "{token:?} {request}");
                pair.expect_server_close();
            }
        }
        // An upload is refused on its head, and the connection closes.
        for token in [None, Some("guess")] {
            let mut pair = FilePair::new(&mut world, rules, cuts);
            assert_eq!(
                pair.put("f", b"new data", with(token), false),
                refused("unauthorized")
            );
            pair.expect_server_close();
            assert!(!pair.actions.contains(&"stage"));
        }
        assert_eq!(world.file("f"), Some(&b"data"[..]));
        assert!(world.partials.is_empty());
    }
}

#[test]
fn bad_paths_are_refused_and_missing_names_not_found() {
    let bad = [
        "",
        "../etc/passwd",
        "a/../../x",
        "/abs",
        "a//b",
        "a/./b",
        "C:/x",
        "a\\b",
        ".unstick-partial-f",
        "d/.unstick-tmp-1",
        "tab\there",
    ];
    for cuts in all_cuts() {
        let mut world = World::default().with_file("d/f", b"data");
        let mut pair = FilePair::new(&mut world, OPEN, cuts);
        for path in bad {
            assert_eq!(pair.stat(path, XXH3), refused("bad_path"), "{path:?}");
            assert_eq!(pair.get(path, XXH3, b"").0, refused("bad_path"), "{path:?}");
            assert_eq!(pair.delete(path, XXH3), refused("bad_path"), "{path:?}");
            if !path.is_empty() {
                assert_eq!(pair.list(path, XXH3), refused("bad_path"), "{path:?}");
            }
        }
        assert_eq!(pair.get("d/nope", XXH3, b"").0, refused("not_found"));
        assert_eq!(pair.delete("nope/f", XXH3), refused("not_found"));
        assert_eq!(pair.get("d/f/g", XXH3, b"").0, refused("bad_path"));
        assert!(pair.logged().iter().all(|&(_, closes)| !closes));
        assert_eq!(pair.get("d/f", XXH3, b"").1, b"data");
        pair.hang_up();
        for path in ["../x", "/abs", ".unstick-partial-f"] {
            let mut pair = FilePair::new(&mut world, OPEN, cuts);
            assert_eq!(pair.put(path, b"x", XXH3, false), refused("bad_path"));
            pair.expect_server_close();
        }
        // A put over a directory is refused before its body is stored.
        let mut pair = FilePair::new(&mut world, OPEN, cuts);
        assert_eq!(pair.put("d", b"x", XXH3, false), refused("bad_path"));
        pair.expect_server_close();
        drop(pair);
        assert_eq!(world.files.len(), 1);
        assert!(world.partials.is_empty());
    }
}

#[test]
fn seed_uploads_are_stored_unverified() {
    let data = generated(9_000, 12);
    for cuts in all_cuts() {
        let mut world = World::default();
        for (name, body) in [("config", data.as_slice()), ("empty.cfg", &b""[..])] {
            let mut pair = FilePair::new(&mut world, OPEN, cuts);
            let events = pair.seed_put("C:\\Users\\me\\新建", name, body);
            assert_eq!(events, [Ev::SeedSent(body.len() as u64)], "{name} {cuts:?}");
            assert!(pair.server_closed);
            assert_eq!(
                pair.completed,
                [Completed::Stored {
                    size: body.len() as u64,
                    resumed_from: 0,
                    digest: None,
                    seed: true
                }]
            );
            drop(pair);
            assert!(world.file(name) == Some(body), "{name} {cuts:?}");
        }
        assert!(world.partials.is_empty());
        let mut pair = FilePair::new(&mut world, OPEN, cuts);
        let events = pair.seed_put("/home/me", "../escape", b"x");
        assert_eq!(events, [Ev::SeedSent(1)]);
        assert_eq!(pair.logged(), [("bad_path", true)]);
        drop(pair);
        assert_eq!(world.files.len(), 2);
    }
}

#[test]
fn put_keeping_gives_the_file_its_mode_and_mtime_and_get_and_stat_report_them() {
    let data = generated(9_000, 21);
    let keep = FileAttributes {
        // Set-user-ID asked for: never kept.
        mode: Some(0o4755),
        mtime: Some(1_234_567_890),
    };
    for cuts in all_cuts() {
        let mut world = World::default();
        let mut pair = FilePair::new(&mut world, OPEN, cuts);
        let events = pair.put_keeping("bin/run.sh", &data, XXH3, false, keep);
        assert_eq!(events, [stored(&data, 0, Algorithm::Xxh3)], "{cuts:?}");
        let info = stat_of(&pair.stat("bin/run.sh", XXH3)).clone();
        assert_eq!((info.mode, info.mtime), (Some(0o755), Some(1_234_567_890)));
        let (events, got) = pair.get("bin/run.sh", XXH3, &[]);
        assert_eq!(events, fetched(&data, 0, Algorithm::Xxh3));
        assert_eq!(got, data);
        assert_eq!(pair.head_attributes, Some((1_234_567_890, Some(0o755))));
        // A plain put keeps nothing: the host's mode, the time of the upload.
        pair.put("bin/run.sh", &data, XXH3, false);
        let info = stat_of(&pair.stat("bin/run.sh", XXH3)).clone();
        assert_eq!(info.mode, Some(0o644));
        assert_ne!(info.mtime, Some(1_234_567_890));
        // A resumed upload keeps them too.
        pair.world
            .partials
            .insert("r".into(), data[..4_000].to_vec());
        let events = pair.put_keeping("r", &data, XXH3, true, keep);
        assert_eq!(
            events,
            [Ev::UploadFrom(4_000), stored(&data, 4_000, Algorithm::Xxh3)]
        );
        let info = stat_of(&pair.stat("r", XXH3)).clone();
        assert_eq!((info.mode, info.mtime), (Some(0o755), Some(1_234_567_890)));
        // A mode that is not permission bits is refused before anything is stored.
        let not_a_mode = FileAttributes {
            mode: Some(0o100_644),
            mtime: None,
        };
        let events = pair.put_keeping("odd", &data, XXH3, false, not_a_mode);
        assert_eq!(events, refused("bad_request"), "{cuts:?}");
        pair.hang_up();
        assert_eq!(world.file("odd"), None);
    }
}

#[test]
fn a_torn_upload_is_kept_and_resumed() {
    let data = generated(30_000, 13);
    for cuts in all_cuts() {
        for after in [1, 12_345, 26_000] {
            let mut world = World::default();
            let mut pair = FilePair::new(&mut world, OPEN, cuts);
            let sent = pair.abandon_put("t/f", &data, after);
            assert!(sent < data.len() as u64);
            assert_eq!(pair.actions.last(), Some(&"close"));
            assert!(pair.actions.contains(&"keep"), "{:?}", pair.actions);
            assert!(pair.refusals.is_empty());
            drop(pair);
            assert!(
                world.partials.get("t/f").map(Vec::as_slice) == Some(&data[..sent as usize]),
                "{after} {cuts:?}"
            );
            assert_eq!(world.file("t/f"), None);
            let mut pair = FilePair::new(&mut world, OPEN, cuts);
            let info = stat_of(&pair.stat("t/f", XXH3)).clone();
            assert_eq!((info.exists, info.partial_size), (false, sent));
            let events = pair.put("t/f", &data, XXH3, true);
            assert_eq!(
                events,
                [Ev::UploadFrom(sent), stored(&data, sent, Algorithm::Xxh3)]
            );
            pair.hang_up();
            assert!(world.file("t/f") == Some(data.as_slice()));
            assert!(world.partials.is_empty());
        }
    }
}
