//! The file server's side of the protocol as a sans-IO session: which request is valid, what is
//! refused and how, the order of replies, resume and digest decisions. The host owns the files.

// A host's refusal travels inline, as a result (there is no allocator to box it into), once per
// request at most; the session writes its own into its one `refusal`.
#![allow(clippy::result_large_err)]

use super::path::{MAX_PATH_LEN, NameRules, check_dir_with, check_path_with};
use super::{Ack, DigestTrailer, EntryReply, FileAttributes, FileHead, MODE_BITS, StatReply};
use core::time::Duration;

use crate::header_view::Kind::{Flag, I64, Text, U32, U64};
use crate::info::{EndpointInfo, Protocols};
use crate::session::Wait;
use crate::session::{
    BoundedText, EscapedText, Events, Outbox, PeerText, Refusal, Refused, SeedServed, ServerEvent,
    Session, SessionError, Transmit, Unescape, escaped_token_matches,
};
use crate::time::Instant;
use crate::{
    Algorithm, Algorithms, BodyHasher, Checksum, DecodeError, ErrorCode, ErrorFrame, Event, FileOp,
    FrameDecoder, MemberError, PLAIN_ENCODER, Profile,
};

/// The default room for the frame heads and replies a session queues (a listing entry with a
/// long escaped name, a refusal whose message is all escapes): [`FileServerSession`]'s `OUT`.
pub const OUTBOX: usize = 4096;

/// What a file server accepts: the rules a [`FileServerSession`] applies to every request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileRules<'a> {
    /// The token every request must carry; `None` for none.
    pub token: Option<&'a str>,
    /// Largest file stored, in bytes (a resumed upload's offset counts).
    pub max_file_size: u64,
    /// How long the client may stay silent, between requests or inside one, before the
    /// connection closes (a torn upload is kept for a resume).
    pub idle_timeout: Duration,
}

/// The default [`FileRules::idle_timeout`].
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// What kind of entry a name is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed).
    Symlink,
    /// Anything else (FIFO, socket, device).
    Other,
    /// Not an entry of its own: the interrupted (or running) upload of the name, held for
    /// resume. Listed so that a listing shows what `stat` shows; its size is the bytes held.
    Partial,
}

impl EntryKind {
    /// The name used on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink => "symlink",
            EntryKind::Other => "other",
            EntryKind::Partial => "partial",
        }
    }
}

/// Kind, size, modification time and permission bits of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryMeta {
    /// Kind.
    pub kind: EntryKind,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: i64,
    /// Permission bits (the session keeps only those within [`MODE_BITS`]); `None` where the
    /// host has none to give (Windows, a device's store).
    pub mode: Option<u32>,
}

/// What the host found for a `stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatFound {
    /// The entry, when the name exists.
    pub entry: Option<EntryMeta>,
    /// Bytes held in the name's partial upload (0 when none).
    pub partial_size: u64,
}

/// What became of a name's partial upload when the host tried to remove it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartialState {
    /// It was idle (left by an upload that broke off) and is gone.
    Removed,
    /// A running upload holds it; it stays.
    InUse,
    /// There is none.
    Absent,
}

/// What the host did for a `delete`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deleted {
    /// Whether an entry was at the name (and was removed).
    pub entry_removed: bool,
    /// What became of the name's partial upload.
    pub partial: PartialState,
}

/// Where an upload's bytes go before they take the final name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageKind {
    /// The name's resumable partial upload, emptied (or a temporary file when another upload
    /// holds the partial).
    Fresh,
    /// The name's partial upload, to be continued: report its length.
    Resume,
    /// A temporary file that is never resumed (a seed upload).
    Temporary,
}

/// What the host found when it staged an upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Staged {
    /// Staging is ready (a fresh or temporary file, or the locked partial of `len` bytes for a
    /// [`StageKind::Resume`]).
    Ready {
        /// Bytes already in the staging file.
        len: u64,
    },
    /// There is no partial upload of the name to resume.
    NoPartial,
    /// Another running upload holds the name's partial.
    PartialBusy,
}

/// What the host should do next. Paths are checked ([`check_path`](super::check_path), and the
/// session's [`NameRules`]) and relative to the root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileAction<'s> {
    /// Look up `path` and its partial upload; answer with
    /// [`handle_stat`](FileServerSession::handle_stat).
    Stat {
        /// The name.
        path: &'s str,
    },
    /// List the directory `path` (`None`: the root): one
    /// [`handle_entry`](FileServerSession::handle_entry) per entry (hidden bookkeeping files
    /// left out), then [`handle_done`](FileServerSession::handle_done).
    List {
        /// The directory.
        path: Option<&'s str>,
    },
    /// Remove the entry at `path` (a file, a link itself or an empty directory) and the name's
    /// idle partial upload; answer with [`handle_deleted`](FileServerSession::handle_deleted).
    Delete {
        /// The name.
        path: &'s str,
    },
    /// Open the regular file at `path` for reading; answer with
    /// [`handle_opened`](FileServerSession::handle_opened).
    OpenFile {
        /// The name.
        path: &'s str,
    },
    /// Stage an upload of `path` (missing parent directories created; a name that is a
    /// directory refused); answer with [`handle_staged`](FileServerSession::handle_staged).
    Stage {
        /// The final name.
        path: &'s str,
        /// Which staging file.
        kind: StageKind,
    },
    /// Read `len` bytes from `offset` of the open file (a download, or the staging file whose
    /// prefix is checked) and hand them over in chunks with
    /// [`handle_file_data`](FileServerSession::handle_file_data).
    ReadFile {
        /// Where to start.
        offset: u64,
        /// How many bytes.
        len: u64,
    },
    /// Cut the staging file to `len` bytes and write on from there (a resume whose prefix
    /// matched); then [`handle_done`](FileServerSession::handle_done).
    Truncate {
        /// The length kept.
        len: u64,
    },
    /// Give the staging file the attributes in `keep` (a `put -p`'s mode and modification
    /// time, each when there is one), sync it, rename it over `path`, sync the directory; then
    /// [`handle_done`](FileServerSession::handle_done). A host that cannot apply them refuses
    /// the upload there; one that has no permission bits (Windows, a device's store) leaves
    /// the mode.
    Commit {
        /// The final name.
        path: &'s str,
        /// What the client asked to keep; [`FileAttributes::NONE`] unless it did.
        keep: FileAttributes,
    },
    /// Leave the staging file for a resume (a torn upload, or a resume that asked for more
    /// than it holds); then [`handle_done`](FileServerSession::handle_done). A staging file
    /// not committed or kept is removed when its request ends.
    KeepPartial,
    /// Create the directory `path`; with `parents`, create its missing parents too and take
    /// an existing directory as success (without, an existing name is refused). Answer with
    /// [`handle_done`](FileServerSession::handle_done). A host that keeps no directories
    /// refuses it there.
    MakeDir {
        /// The new directory.
        path: &'s str,
        /// Whether missing parents are created and an existing directory is fine.
        parents: bool,
    },
    /// Rename the entry `from` (a file, a directory, a link itself) to `to`, replacing a file
    /// at `to` but never a directory; the parents of `to` must exist. Answer with
    /// [`handle_done`](FileServerSession::handle_done). Both paths are checked alike.
    Rename {
        /// The current name.
        from: &'s str,
        /// The new name.
        to: &'s str,
    },
    /// Send what the outbox holds, then close the connection.
    Close,
}

/// What the host logs of a request that went through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completed {
    /// An upload was committed.
    Stored {
        /// File size.
        size: u64,
        /// Bytes that were resumed rather than sent.
        resumed_from: u64,
        /// The whole file's digest; `None` for a seed upload whose header had no MD5.
        digest: Option<Checksum>,
        /// Whether this was a seed upload.
        seed: bool,
    },
    /// A file was sent.
    Sent {
        /// File size.
        size: u64,
        /// Where the body started.
        resumed_from: u64,
        /// The whole file's digest.
        digest: Checksum,
    },
    /// A directory was listed.
    Listed {
        /// Entries sent.
        entries: u64,
    },
    /// A name was looked up.
    Stat {
        /// Whether it exists.
        exists: bool,
    },
    /// A name was deleted.
    Deleted,
    /// A directory was created (or, with `parents`, already existed).
    MadeDir,
    /// A name was renamed.
    Renamed,
}

/// Where a session is: between requests, or in one, holding exactly that request's data for
/// its phase. A request that ends leaves [`State::Idle`] behind, and with it nothing of its own.
#[derive(Debug)]
enum State {
    /// Waiting for a request head.
    Idle,
    /// A request without a body is in and checked; the host is asked once its frame has ended,
    /// so that the stream stays in step.
    AwaitingEnd(Query),
    /// A request without a body was refused at its head; the refusal goes out once its frame
    /// has ended.
    Refusing,
    /// The host looks the name up ([`FileAction::Stat`]).
    Stat,
    /// The host lists the directory ([`FileAction::List`]).
    Listing {
        /// Entries sent so far.
        entries: u64,
    },
    /// The host removes the name ([`FileAction::Delete`]).
    Deleting,
    /// The host creates the directory ([`FileAction::MakeDir`]).
    MakingDir {
        /// Whether missing parents are created and an existing directory is fine.
        parents: bool,
    },
    /// The host renames the entry ([`FileAction::Rename`]).
    Renaming,
    /// The host opens the file a `get` asked for ([`FileAction::OpenFile`]).
    Opening(Get),
    /// A `get` whose file is open: its bytes are read, hashed and sent.
    Downloading(Download),
    /// An upload (`put` or seed) from its head to its commit.
    Uploading(Upload),
    /// The connection is to be closed.
    Closing,
}

/// A request without a body, checked at its head: what the host is asked once its frame ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Query {
    Stat,
    List,
    Delete,
    MakeDir {
        /// `"parents":true`.
        parents: bool,
    },
    Rename,
    Get(Get),
    /// What the endpoint is; answered by the session alone.
    Info,
}

/// What a `get` asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Get {
    /// Where the body starts: the client has the bytes before it.
    offset: u64,
    /// The trailer's digest.
    algorithm: Algorithm,
}

/// A `get` whose file is open.
#[derive(Debug)]
struct Download {
    get: Get,
    /// The file's size.
    size: u64,
    /// The file's modification time, for the head.
    mtime: i64,
    /// The file's permission bits, for the head.
    mode: Option<u32>,
    /// The whole file's digest so far, the bytes the client has included.
    hasher: BodyHasher,
    phase: DownloadPhase,
}

/// Where a download is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DownloadPhase {
    /// The bytes the client has are read and hashed only, so that the trailer covers the
    /// whole file; `to_read` of them are still to come from the host.
    Prefix { to_read: u64 },
    /// The head is queued and the body is read and sent; `to_read` bytes are still to come.
    Body { to_read: u64 },
    /// The body is out; the trailer goes out with the next transmit and ends the request.
    Trailer,
}

/// An upload, `put` or seed, from its head on.
#[derive(Debug)]
struct Upload {
    kind: UploadKind,
    /// The attributes the file is committed with (`put -p`).
    keep: FileAttributes,
    /// Bytes resumed from the name's partial upload rather than sent (0 for a fresh upload).
    offset: u64,
    /// The whole file's size.
    size: u64,
    /// The whole file's digest so far, a resumed prefix included.
    hasher: BodyHasher,
    phase: UploadPhase,
}

/// Which upload, and how its body is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UploadKind {
    /// A `put`: the `done` trailer after its body carries the whole file's digest in
    /// `algorithm`, which the session checks.
    Put { algorithm: Algorithm },
    /// A seed upload: the decoder checks its body against the MD5 its head declared, if any.
    Seed {
        md5: Option<Checksum>,
        served: SeedServed,
    },
}

/// Where an upload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UploadPhase {
    /// The host stages the upload ([`FileAction::Stage`]); `prefix` is a resume's digest of
    /// the `offset` bytes the client skips (`None`: not a resume).
    Staging { prefix: Option<Checksum> },
    /// The staged bytes a resume skips are hashed against `prefix`; `to_read` of them are
    /// still to come from the host.
    CheckingPrefix { prefix: Checksum, to_read: u64 },
    /// The host cuts the staging file to `offset` bytes ([`FileAction::Truncate`]).
    Truncating,
    /// The body is coming.
    Receiving,
    /// The body is in; waiting for the `done` trailer's head.
    AwaitingTrailer,
    /// The trailer's head is in; waiting for its frame to end. `digest` is what it declared
    /// (`None`: nothing, which is refused then).
    AwaitingTrailerEnd { digest: Option<Checksum> },
    /// The host commits the staging file ([`FileAction::Commit`]); `digest` is the whole
    /// file's, as both ends agreed (`None`: a seed upload whose head had no MD5).
    Committing { digest: Option<Checksum> },
    /// The host keeps the staging file for a resume ([`FileAction::KeepPartial`]); what
    /// follows depends on why.
    KeepingPartial { why: KeptFor },
}

/// Why an upload's staging file is kept for a resume. The refusal that follows, if any, is
/// written once the host has kept it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeptFor {
    /// The connection broke mid-upload; it closes.
    Torn,
    /// A resume asked to skip more than the `held` bytes the partial upload has: refused.
    ShortPartial { held: u64 },
    /// The trailer did not come as a frame: refused, and the connection closes.
    BrokenTrailer(DecodeError),
}

/// The server side of one file-protocol connection, sans-IO.
///
/// Feed it what the socket gives ([`handle_input`](Self::handle_input)); after every call,
/// send what [`poll_transmit`](Self::poll_transmit) hands out until it returns `None`, then
/// carry out [`poll_action`](Self::poll_action) and report its result with the `handle_*`
/// call the action names.
///
/// `CAP` is the longest request header taken, in bytes. `PATH` is the room kept for the
/// request's path: [`MAX_PATH_LEN`], or less when headers are short: a path is never longer
/// than the header that carries it, so `PATH` may be as small as `CAP` (a firmware with 1 KiB
/// headers keeps 1 KiB for the path, not 4). A smaller `PATH` does not compile.
///
/// ```
/// use unstick_core::files::{FileAction, FileRules, FileServerSession, StatFound};
/// use unstick_core::session::Transmit;
///
/// let rules = FileRules { token: None, max_file_size: 1 << 20, idle_timeout: unstick_core::files::IDLE_TIMEOUT };
/// let mut session = FileServerSession::<1024>::new(rules);
/// let header = br#"{"op":"stat","path":"a.txt","total_size":0}"#;
/// let mut request = (header.len() as i32).to_le_bytes().to_vec();
/// request.extend_from_slice(header);
/// let now = unstick_core::time::Instant::ZERO;
/// let (used, _) = session.handle_input(now, &request);
/// assert_eq!(used, request.len());
/// assert_eq!(session.poll_action(), Some(FileAction::Stat { path: "a.txt" }));
/// session.handle_stat(Ok(StatFound { entry: None, partial_size: 0 })).unwrap();
/// let mut out = [0u8; 256];
/// let Some(Transmit::Bytes(n)) = session.poll_transmit(&mut out) else { unreachable!() };
/// assert!(out[..n].ends_with(b"{\"op\":\"stat\",\"exists\":false,\"partial_size\":0,\"total_size\":0}"));
/// assert_eq!(session.poll_action(), None); // ready for the next request
/// ```
#[derive(Debug)]
pub struct FileServerSession<
    'a,
    const CAP: usize = 8192,
    const PATH: usize = MAX_PATH_LEN,
    const OUT: usize = OUTBOX,
> {
    rules: FileRules<'a>,
    #[cfg(feature = "host-names")]
    names: NameRules,
    decoder: FrameDecoder<CAP>,
    outbox: Outbox<OUT>,
    state: State,
    /// The current (or last) request's path (empty for the root of a listing), followed, for
    /// a rename, by its new name from byte `to_at` on. It outlives its request for the host's
    /// log, and is cleared when the next request's head comes.
    path: heapless::String<PATH>,
    /// Where a rename's new name starts in `path`.
    to_at: Option<usize>,
    /// Refusals and requests that went through, until the host polls them for its log.
    events: Events<ServerEvent<Completed>>,
    /// The request's refusal, written here in place ([`Refused`] says it was), sent from here
    /// and copied to `events`.
    refusal: Refusal,
    /// The client's silence, timed against [`FileRules::idle_timeout`] while the session
    /// waits for its bytes.
    wait: Wait,
    answered: u64,
    /// What the host says of the endpoint, for an `info` reply.
    info: EndpointInfo<'a>,
}

impl<'a, const CAP: usize, const PATH: usize, const OUT: usize>
    FileServerSession<'a, CAP, PATH, OUT>
{
    /// This session, refusing also the names `names` says are traps on the host's file system
    /// (by default only the portable rules apply). With the `host-names` feature (a default).
    #[cfg(feature = "host-names")]
    pub fn with_name_rules(mut self, names: NameRules) -> Self {
        self.names = names;
        self
    }

    /// This session, answering an `info` request with `info` (the host's facts: the free
    /// space, its platform, names shorter than the session takes), completed by what the
    /// session knows itself (its header capacity, the longest path, the largest file).
    pub fn with_info(mut self, info: EndpointInfo<'a>) -> Self {
        self.set_info(info);
        self
    }

    /// Sets what [`with_info`](Self::with_info) sets, on a session already in place: a
    /// firmware builds its session where it serves from, rather than moving a few KiB of it
    /// through a builder (a copy the optimiser does not always remove).
    pub fn set_info(&mut self, info: EndpointInfo<'a>) {
        self.info = info;
    }

    /// The name rules the session applies: [`NameRules::Portable`] in a build without the
    /// `host-names` feature, so that the others' code is not in its image.
    fn names(&self) -> NameRules {
        #[cfg(feature = "host-names")]
        return self.names;
        #[cfg(not(feature = "host-names"))]
        return NameRules::Portable;
    }

    /// A session applying `rules`.
    pub fn new(rules: FileRules<'a>) -> Self {
        const {
            assert!(
                PATH >= MAX_PATH_LEN || PATH >= CAP,
                "PATH must hold any path a header of CAP bytes can carry, up to MAX_PATH_LEN"
            );
        }
        let profile = Profile::I32_LE.with_max_body_len(rules.max_file_size);
        FileServerSession {
            rules,
            #[cfg(feature = "host-names")]
            names: NameRules::Portable,
            decoder: FrameDecoder::header_frames(profile),
            outbox: Outbox::new(),
            state: State::Idle,
            path: heapless::String::new(),
            to_at: None,
            events: Events::new(),
            refusal: Refusal::new(ErrorCode::BadRequest, ""),
            wait: Wait::Starting,
            answered: 0,
            info: EndpointInfo::new(Protocols::FILE),
        }
    }

    /// Requests answered so far.
    pub fn answered(&self) -> u64 {
        self.answered
    }

    /// The current (or last) request's path, for the host's log (a rename's old name).
    pub fn path(&self) -> &str {
        match self.to_at {
            Some(at) => &self.path[..at],
            None => &self.path,
        }
    }

    /// A rename's new name, for the host's log.
    pub fn rename_to(&self) -> Option<&str> {
        self.to_at.map(|at| &self.path[at..])
    }

    /// The next refusal or request that went through, for the host's log, oldest first. The
    /// request's [`path`](Self::path) stays readable until the next request's head comes.
    pub fn poll_event(&mut self) -> Option<ServerEvent<Completed>> {
        self.events.pop()
    }

    /// Whether the session is between requests with nothing left to send.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle) && self.outbox.is_empty() && self.decoder.is_at_boundary()
    }

    /// The next bytes to send; see [`Outbox::poll_transmit`].
    pub fn poll_transmit(&mut self, out: &mut [u8]) -> Option<Transmit> {
        if let Some(transmit) = self.outbox.poll_transmit(out) {
            return Some(transmit);
        }
        if let State::Downloading(Download {
            phase: DownloadPhase::Trailer,
            ..
        }) = self.state
        {
            self.send_download_trailer();
            return self.outbox.poll_transmit(out);
        }
        None
    }

    /// What the host should do next; `None` while the session needs more input.
    pub fn poll_action(&self) -> Option<FileAction<'_>> {
        let path = self.path();
        let action = match &self.state {
            State::Stat => FileAction::Stat { path },
            State::Listing { .. } => FileAction::List {
                path: (!path.is_empty()).then_some(path),
            },
            State::Deleting => FileAction::Delete { path },
            State::MakingDir { parents } => FileAction::MakeDir {
                path,
                parents: *parents,
            },
            State::Renaming => FileAction::Rename {
                from: path,
                to: self.rename_to().unwrap_or_default(),
            },
            State::Opening(_) => FileAction::OpenFile { path },
            State::Downloading(download) => match download.phase {
                DownloadPhase::Prefix { to_read } => FileAction::ReadFile {
                    offset: download.get.offset - to_read,
                    len: to_read,
                },
                DownloadPhase::Body { to_read } => FileAction::ReadFile {
                    offset: download.size - to_read,
                    len: to_read,
                },
                DownloadPhase::Trailer => return None,
            },
            State::Uploading(upload) => match &upload.phase {
                UploadPhase::Staging { prefix } => FileAction::Stage {
                    path,
                    kind: match (upload.kind, prefix) {
                        (UploadKind::Seed { .. }, _) => StageKind::Temporary,
                        (UploadKind::Put { .. }, None) => StageKind::Fresh,
                        (UploadKind::Put { .. }, Some(_)) => StageKind::Resume,
                    },
                },
                UploadPhase::CheckingPrefix { to_read, .. } => FileAction::ReadFile {
                    offset: upload.offset - to_read,
                    len: *to_read,
                },
                UploadPhase::Truncating => FileAction::Truncate { len: upload.offset },
                UploadPhase::Committing { .. } => FileAction::Commit {
                    path,
                    keep: upload.keep,
                },
                UploadPhase::KeepingPartial { .. } => FileAction::KeepPartial,
                // The body's chunks come out of `handle_input`, to be written as they come (a
                // failed write is reported with `handle_write_failed`).
                UploadPhase::Receiving
                | UploadPhase::AwaitingTrailer
                | UploadPhase::AwaitingTrailerEnd { .. } => return None,
            },
            State::Closing => FileAction::Close,
            State::Idle | State::AwaitingEnd(_) | State::Refusing => return None,
        };
        Some(action)
    }

    /// Takes bytes received at `now`; returns how many it consumed and any upload bytes among
    /// them. It stops early once it has something to send, an action for the host, or body
    /// bytes: send, act or write, then feed it the rest.
    pub fn handle_input<'i>(&mut self, now: Instant, input: &'i [u8]) -> (usize, Option<&'i [u8]>) {
        if !input.is_empty() {
            self.wait = Wait::Since(now);
        }
        let mut used = 0;
        loop {
            if !self.state.reads_frames() || !self.outbox.is_empty() {
                return (used, None);
            }
            let (n, event) = match self.decoder.feed(&input[used..]) {
                Ok(step) => step,
                Err(e) => {
                    self.framing_failed(e);
                    return (used, None);
                }
            };
            used += n;
            match event {
                Event::NeedMore => return (used, None),
                Event::Head(info) => {
                    let md5 = self.decoder.declared_digests().md5;
                    self.on_head(info.body_len, md5)
                }
                Event::Body(chunk) => {
                    if let State::Uploading(Upload {
                        hasher,
                        phase: UploadPhase::Receiving,
                        ..
                    }) = &mut self.state
                    {
                        hasher.update(chunk);
                        // The body's last bytes end its frame too: no byte is left to wait for.
                        match self.decoder.feed(&[]) {
                            Ok((_, Event::End(_))) => self.on_end(),
                            Ok(_) => {}
                            Err(e) => self.framing_failed(e),
                        }
                        // Writing the chunk is the host's turn: the client's silence is timed
                        // from its end.
                        self.wait = Wait::Starting;
                        return (used, Some(chunk));
                    }
                }
                Event::End(_) => self.on_end(),
            }
        }
    }

    /// When the session next needs [`handle_timeout`](Self::handle_timeout): the end of the
    /// client's allowed silence while the session waits for its bytes (timed from `now` when
    /// the wait began without a time); `None` while the host has work to do.
    pub fn poll_timeout(&mut self, now: Instant) -> Option<Instant> {
        if !self.state.reads_frames() || !self.outbox.is_empty() {
            return None;
        }
        self.wait.start_at(now);
        self.wait.deadline(self.rules.idle_timeout)
    }

    /// Time has come to `now`. A client silent for the idle timeout is done: a torn upload is
    /// kept for a resume, and otherwise it is told why the connection closes.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout(now).is_none_or(|at| at > now) {
            return;
        }
        if self.keep_torn_upload() {
            return;
        }
        let secs = self.rules.idle_timeout.as_secs();
        let refused = if self.is_idle() {
            self.refusal.set_closing(
                ErrorCode::IdleTimeout,
                format_args!("no request within {secs} s; closing the connection"),
            )
        } else {
            self.refusal.set_closing(
                ErrorCode::IdleTimeout,
                format_args!(
                    "the request stalled: nothing came for {secs} s; closing the connection"
                ),
            )
        };
        self.refuse(refused);
    }

    /// The connection ended, broke or went idle: nothing more comes. A torn upload is kept for
    /// a resume.
    pub fn handle_eof(&mut self) {
        if !self.keep_torn_upload() {
            self.state = State::Closing;
        }
    }

    /// An upload without body bytes (an empty file, a resume with nothing left) is whole once
    /// staged: its frame's end came with its head, so it is taken now, not when bytes that
    /// may never come arrive (a seed client sends nothing after an empty file).
    fn take_empty_body_end(&mut self) {
        match self.decoder.feed(&[]) {
            Ok((_, Event::End(_))) => self.on_end(),
            Ok(_) => {}
            Err(e) => self.framing_failed(e),
        }
    }

    /// Keeps an upload whose body or trailer was torn off for a resume; `false` when there is
    /// none.
    fn keep_torn_upload(&mut self) -> bool {
        if let State::Uploading(Upload {
            kind: UploadKind::Put { .. },
            phase:
                phase @ (UploadPhase::Receiving
                | UploadPhase::AwaitingTrailer
                | UploadPhase::AwaitingTrailerEnd { .. }),
            ..
        }) = &mut self.state
        {
            *phase = UploadPhase::KeepingPartial { why: KeptFor::Torn };
            true
        } else {
            false
        }
    }

    /// The result of [`FileAction::Stat`].
    pub fn handle_stat(&mut self, found: Result<StatFound, Refusal>) -> Result<(), SessionError> {
        self.expect(matches!(self.state, State::Stat))?;
        match found {
            Err(refusal) => self.refuse_from_host(refusal),
            Ok(found) => {
                let reply = StatReply {
                    op: FileOp::Stat,
                    exists: found.entry.is_some(),
                    kind: found.entry.map(|m| m.kind.as_str()),
                    size: found.entry.map(|m| m.size),
                    mtime: found.entry.map(|m| m.mtime),
                    mode: found.entry.and_then(|m| m.mode).map(|m| m & MODE_BITS),
                    partial_size: found.partial_size,
                };
                self.events.push(ServerEvent::Completed(Completed::Stat {
                    exists: found.entry.is_some(),
                }));
                self.reply(&reply);
            }
        }
        Ok(())
    }

    /// One entry of a [`FileAction::List`]: `name` is one component, in escaped form (bytes
    /// that are not UTF-8 as `\xNN`, backslashes doubled) when `escaped`.
    pub fn handle_entry(
        &mut self,
        name: &str,
        escaped: bool,
        meta: EntryMeta,
    ) -> Result<(), SessionError> {
        let State::Listing { entries } = &mut self.state else {
            return Err(SessionError::OutOfOrder);
        };
        if !self.outbox.is_empty() {
            return Err(SessionError::OutboxFull);
        }
        let entry = EntryReply {
            op: FileOp::Entry,
            name,
            name_escaped: escaped.then_some(true),
            kind: meta.kind.as_str(),
            size: meta.size,
            mtime: meta.mtime,
        };
        self.outbox
            .push_frame(&PLAIN_ENCODER, &entry)
            .map_err(|_| SessionError::OutboxFull)?;
        *entries += 1;
        Ok(())
    }

    /// The result of [`FileAction::Delete`].
    pub fn handle_deleted(
        &mut self,
        deleted: Result<Deleted, Refusal>,
    ) -> Result<(), SessionError> {
        self.expect(matches!(self.state, State::Deleting))?;
        let path = PeerText::new(&self.path);
        let deleted = match deleted {
            Err(refusal) => {
                self.refuse_from_host(refusal);
                return Ok(());
            }
            Ok(deleted) => deleted,
        };
        match (deleted.entry_removed, deleted.partial) {
            (true, _) | (false, PartialState::Removed) => {
                self.events.push(ServerEvent::Completed(Completed::Deleted));
                self.reply(&Ack {
                    op: FileOp::Deleted,
                    count: None,
                });
                Ok(())
            }
            (false, PartialState::InUse) => {
                let refused = self.refusal.set(
                    ErrorCode::Busy,
                    format_args!(
                        "{path}: an upload to this name is in progress; try again once it ends"
                    ),
                );
                self.refuse_now(refused)
            }
            (false, PartialState::Absent) => {
                let refused = self.refusal.set(
                    ErrorCode::NotFound,
                    format_args!("{path}: no such file or directory"),
                );
                self.refuse_now(refused)
            }
        }
    }

    /// The result of [`FileAction::OpenFile`]: the file's size and time.
    pub fn handle_opened(
        &mut self,
        opened: Result<EntryMeta, Refusal>,
    ) -> Result<(), SessionError> {
        let State::Opening(get) = self.state else {
            return Err(SessionError::OutOfOrder);
        };
        self.expect(true)?;
        let meta = match opened {
            Err(refusal) => {
                self.refuse_from_host(refusal);
                return Ok(());
            }
            Ok(meta) => meta,
        };
        if get.offset > meta.size {
            let refused = self.refusal.set(
                ErrorCode::BadRequest,
                format_args!(
                    "{}: resume offset {} is beyond the end of the file ({} bytes); download it again from the start",
                    PeerText::new(&self.path),
                    get.offset,
                    meta.size
                ),
            );
            return self.refuse_now(refused);
        }
        self.state = State::Downloading(Download {
            get,
            size: meta.size,
            mtime: meta.mtime,
            mode: meta.mode.map(|m| m & MODE_BITS),
            hasher: BodyHasher::new(Algorithms::only(get.algorithm)),
            // The part the client already has is hashed too, so the trailer covers the whole
            // file.
            phase: DownloadPhase::Prefix {
                to_read: get.offset,
            },
        });
        self.after_read();
        Ok(())
    }
}

impl State {
    /// Whether the session reads frames from the peer in this state.
    fn reads_frames(&self) -> bool {
        match self {
            State::Idle | State::AwaitingEnd(_) | State::Refusing => true,
            State::Uploading(upload) => matches!(
                upload.phase,
                UploadPhase::Receiving
                    | UploadPhase::AwaitingTrailer
                    | UploadPhase::AwaitingTrailerEnd { .. }
            ),
            _ => false,
        }
    }
}

impl<'a, const CAP: usize, const PATH: usize, const OUT: usize> Session
    for FileServerSession<'a, CAP, PATH, OUT>
{
    type Received<'i> = &'i [u8];
    type Error = core::convert::Infallible;
    type Action<'s>
        = FileAction<'s>
    where
        Self: 's;
    type Event = ServerEvent<Completed>;

    fn handle_input<'i>(
        &mut self,
        now: Instant,
        input: &'i [u8],
    ) -> Result<(usize, Option<&'i [u8]>), Self::Error> {
        Ok(FileServerSession::handle_input(self, now, input))
    }

    fn handle_eof(&mut self) -> Result<Option<&'static [u8]>, Self::Error> {
        FileServerSession::handle_eof(self);
        Ok(None)
    }

    fn poll_timeout(&mut self, now: Instant) -> Option<Instant> {
        FileServerSession::poll_timeout(self, now)
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error> {
        FileServerSession::handle_timeout(self, now);
        Ok(())
    }

    fn poll_transmit(&mut self, out: &mut [u8]) -> Option<Transmit> {
        FileServerSession::poll_transmit(self, out)
    }

    fn poll_action(&self) -> Option<FileAction<'_>> {
        FileServerSession::poll_action(self)
    }

    fn poll_event(&mut self) -> Option<Self::Event> {
        FileServerSession::poll_event(self)
    }

    fn is_idle(&self) -> bool {
        FileServerSession::is_idle(self)
    }
}

/// The refusal of a request without an `op`.
const NO_OP: &str = if SeedServed::in_this_build().is_some() {
    "the header has neither `op` nor the seed's `filename`"
} else {
    "the header has no `op` (this server takes no seed uploads by `filename`)"
};

/// What a server reads first from any request header: its op, its token and a seed upload's
/// file name. The rest is read only once the token is good, so that an unauthenticated peer
/// meets nothing but the token check. Long strings stay in the decoder's header buffer
/// ([`EscapedText`]) until the session unescapes them where it keeps them.
#[derive(Default)]
struct HeadView<'h> {
    op: Option<EscapedText<'h>>,
    token: Option<EscapedText<'h>>,
    filename: Option<EscapedText<'h>>,
}

impl<'h> HeadView<'h> {
    #[inline(never)]
    fn read<const CAP: usize>(decoder: &'h FrameDecoder<CAP>) -> Result<Self, MemberError<'h>> {
        let [op, token, filename] =
            decoder.members_of([("op", Text), ("token", Text), ("filename", Text)])?;
        Ok(HeadView {
            op: EscapedText::of(&op),
            token: EscapedText::of(&token),
            filename: EscapedText::of(&filename),
        })
    }
}

/// The members of a request the server reads once its op is known. Strings are kept up to the
/// protocol's limits; a longer one is refused precisely.
#[derive(Default)]
struct RequestView<'h> {
    path: Option<EscapedText<'h>>,
    offset: Option<u64>,
    algorithm: Option<EscapedText<'h>>,
    prefix_xxh3: Option<EscapedText<'h>>,
    prefix_md5: Option<EscapedText<'h>>,
    path_xxh3: Option<EscapedText<'h>>,
    to: Option<EscapedText<'h>>,
    to_xxh3: Option<EscapedText<'h>>,
    parents: Option<bool>,
    mode: Option<u32>,
    mtime: Option<i64>,
}

impl<'h> RequestView<'h> {
    #[inline(never)]
    fn read<const CAP: usize>(decoder: &'h FrameDecoder<CAP>) -> Result<Self, MemberError<'h>> {
        let [
            path,
            offset,
            algorithm,
            prefix_xxh3,
            prefix_md5,
            path_xxh3,
            to,
            to_xxh3,
            parents,
            mode,
            mtime,
        ] = decoder.members_of([
            ("path", Text),
            ("offset", U64),
            ("algorithm", Text),
            ("prefix_xxh3", Text),
            ("prefix_md5", Text),
            ("path_xxh3", Text),
            ("to", Text),
            ("to_xxh3", Text),
            ("parents", Flag),
            ("mode", U32),
            ("mtime", I64),
        ])?;
        Ok(RequestView {
            path: EscapedText::of(&path),
            offset: offset.checked_u64(),
            algorithm: EscapedText::of(&algorithm),
            prefix_xxh3: EscapedText::of(&prefix_xxh3),
            prefix_md5: EscapedText::of(&prefix_md5),
            path_xxh3: EscapedText::of(&path_xxh3),
            to: EscapedText::of(&to),
            to_xxh3: EscapedText::of(&to_xxh3),
            parents: parents.checked_flag(),
            mode: mode.checked_u32(),
            mtime: mtime.checked_signed(),
        })
    }

    /// Whether `path` (the `path` member, unescaped) disagrees with `path_xxh3` (the line
    /// corrupted one of them). A request without the digest, or a build without XXH3, checks
    /// nothing.
    fn path_corrupted(&self, path: &str) -> bool {
        text_corrupted(self.path_xxh3, path)
    }
}

/// Whether `text` disagrees with the XXH3 digest `claimed` (absent: nothing is checked, nor in
/// a build without XXH3).
fn text_corrupted(claimed: Option<EscapedText<'_>>, text: &str) -> bool {
    {
        let Some(claimed) = claimed else {
            return false;
        };
        if !Algorithm::Xxh3.is_supported() {
            return false;
        }
        let claimed = claimed
            .to_bounded::<32>()
            .get()
            .and_then(|hex| Checksum::from_hex(Algorithm::Xxh3, hex.as_bytes()));
        let actual = crate::digest_of(Algorithms::XXH3, text.as_bytes()).get(Algorithm::Xxh3);
        claimed.is_none() || claimed != actual
    }
}

/// What became of a request's path member (`path`, or a seed upload's `filename`) when it was
/// unescaped into the session's `path`, before any check of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PathMember {
    /// The request has none.
    Absent,
    /// In the session's `path`, unchecked.
    Kept,
    /// Longer than the session keeps (never shorter than [`MAX_PATH_LEN`] or the header);
    /// not kept.
    TooLong,
    /// With an escape JSON does not have; not kept.
    Invalid,
}

/// Unescapes a path member into `path`.
fn keep_path<const PATH: usize>(
    member: Option<EscapedText<'_>>,
    path: &mut heapless::String<PATH>,
) -> PathMember {
    match member.map(|text| text.unescape_into(path)) {
        None => PathMember::Absent,
        Some(Ok(())) => PathMember::Kept,
        Some(Err(Unescape::TooLong)) => PathMember::TooLong,
        Some(Err(Unescape::Invalid)) => PathMember::Invalid,
    }
}

/// Unescapes a rename's `to` member after the old name in `path` and checks it against its
/// digest; returns where it starts (`None`: the request has none).
fn keep_rename_target<const PATH: usize>(
    member: Option<EscapedText<'_>>,
    claimed: Option<EscapedText<'_>>,
    path: &mut heapless::String<PATH>,
    refusal: &mut Refusal,
) -> Result<Option<usize>, Refused> {
    let at = path.len();
    let Some(member) = member else {
        return Ok(None);
    };
    match member.unescape_append(path) {
        Err(Unescape::TooLong) => Err(too_long_path(refusal)),
        Err(Unescape::Invalid) => Err(invalid_path_escape(refusal)),
        Ok(()) if text_corrupted(claimed, &path[at..]) => {
            path.truncate(at);
            Err(refusal.set(
                ErrorCode::ChecksumMismatch,
                "the new name does not match its `to_xxh3` digest (corrupted on the way?); nothing was done",
            ))
        }
        // An empty new name is checked (and refused) as a path.
        Ok(()) => Ok(Some(at)),
    }
}

/// The trailer's fields: `{"op":"done","file_xxh3"|"file_md5":...}`.
#[derive(Default)]
struct TrailerView<'h> {
    op: Option<EscapedText<'h>>,
    file_xxh3: Option<EscapedText<'h>>,
    file_md5: Option<EscapedText<'h>>,
}

impl<'h> TrailerView<'h> {
    #[inline(never)]
    fn read<const CAP: usize>(decoder: &'h FrameDecoder<CAP>) -> Result<Self, MemberError<'h>> {
        let [op, file_xxh3, file_md5] =
            decoder.members_of([("op", Text), ("file_xxh3", Text), ("file_md5", Text)])?;
        Ok(TrailerView {
            op: EscapedText::of(&op),
            file_xxh3: EscapedText::of(&file_xxh3),
            file_md5: EscapedText::of(&file_md5),
        })
    }
}

/// The digest of `algorithm` among a request's two members (`xxh3` or `md5`), when it holds
/// one.
fn digest_member(
    algorithm: Algorithm,
    xxh3: Option<EscapedText<'_>>,
    md5: Option<EscapedText<'_>>,
) -> Option<Checksum> {
    let text = match algorithm {
        Algorithm::Xxh3 => xxh3,
        Algorithm::Md5 => md5,
    }?;
    Checksum::from_hex(algorithm, text.to_bounded::<32>().get()?.as_bytes())
}

/// A member that names an op, as an op's name is kept (a longer one is no op).
fn op_name(member: Option<EscapedText<'_>>) -> Option<BoundedText<16>> {
    member.map(EscapedText::to_bounded)
}

impl<const CAP: usize, const PATH: usize, const OUT: usize> FileServerSession<'_, CAP, PATH, OUT> {
    /// The result of [`FileAction::Stage`].
    pub fn handle_staged(&mut self, staged: Result<Staged, Refusal>) -> Result<(), SessionError> {
        // The host's turn ends with this result: the client's silence is timed from here.
        self.wait = Wait::Starting;
        let State::Uploading(upload) = &mut self.state else {
            return Err(SessionError::OutOfOrder);
        };
        let UploadPhase::Staging { prefix } = upload.phase else {
            return Err(SessionError::OutOfOrder);
        };
        if !self.outbox.is_empty() {
            return Err(SessionError::OutboxFull);
        }
        let path = PeerText::new(&self.path);
        let refused = match (staged, prefix) {
            (Err(refusal), _) => self.refusal.hold(refusal.closing()),
            (Ok(Staged::NoPartial), _) => self.refusal.set_closing(
                ErrorCode::PartialMismatch,
                format_args!(
                    "{path}: the server holds no partial upload of this name; upload from the start"
                ),
            ),
            (Ok(Staged::PartialBusy), _) => self.refusal.set_closing(
                ErrorCode::Busy,
                format_args!("{path}: another upload of this name is in progress"),
            ),
            (Ok(Staged::Ready { len }), Some(_)) if len < upload.offset => {
                // What there is stays for a later resume; the client asked for too much.
                upload.phase = UploadPhase::KeepingPartial {
                    why: KeptFor::ShortPartial { held: len },
                };
                return Ok(());
            }
            (Ok(Staged::Ready { .. }), Some(prefix)) => {
                upload.phase = UploadPhase::CheckingPrefix {
                    prefix,
                    to_read: upload.offset,
                };
                return Ok(());
            }
            (Ok(Staged::Ready { .. }), None) => {
                upload.phase = UploadPhase::Receiving;
                self.take_empty_body_end();
                return Ok(());
            }
        };
        self.refuse_now(refused)
    }

    /// A chunk of what a [`FileAction::ReadFile`] asked for, in order. During a download, send
    /// it after the bytes the outbox then holds ([`Transmit::Body`]).
    pub fn handle_file_data(&mut self, chunk: &[u8]) -> Result<(), SessionError> {
        // The host's turn ends with this result: the client's silence is timed from here.
        self.wait = Wait::Starting;
        let (hasher, to_read, body) = match &mut self.state {
            State::Downloading(Download {
                hasher,
                phase: DownloadPhase::Prefix { to_read },
                ..
            })
            | State::Uploading(Upload {
                hasher,
                phase: UploadPhase::CheckingPrefix { to_read, .. },
                ..
            }) => (hasher, to_read, false),
            State::Downloading(Download {
                hasher,
                phase: DownloadPhase::Body { to_read },
                ..
            }) => (hasher, to_read, true),
            _ => return Err(SessionError::OutOfOrder),
        };
        if chunk.len() as u64 > *to_read {
            return Err(SessionError::OutOfOrder);
        }
        if body && !self.outbox.is_empty() {
            return Err(SessionError::OutboxFull);
        }
        hasher.update(chunk);
        *to_read -= chunk.len() as u64;
        if body {
            self.outbox.push_body(chunk.len());
        }
        match self.state {
            State::Uploading(_) => self.after_prefix_check(),
            _ => self.after_read(),
        }
        Ok(())
    }

    /// A [`FileAction::ReadFile`] failed (or the file ended early): `refusal` says why.
    pub fn handle_read_failed(&mut self, refusal: Refusal) -> Result<(), SessionError> {
        // The host's turn ends with this result: the client's silence is timed from here.
        self.wait = Wait::Starting;
        match &self.state {
            // Before the download's head: the client can still be told.
            State::Downloading(Download {
                phase: DownloadPhase::Prefix { .. },
                ..
            }) => {
                self.refuse_from_host(refusal);
                Ok(())
            }
            // Mid-body: a frame cannot be cut short, so the connection is.
            State::Downloading(Download {
                phase: DownloadPhase::Body { .. },
                ..
            }) => {
                self.events.push(ServerEvent::Refused(refusal));
                self.state = State::Closing;
                Ok(())
            }
            State::Uploading(Upload {
                phase: UploadPhase::CheckingPrefix { .. },
                ..
            }) => {
                self.refuse_from_host(refusal.closing());
                Ok(())
            }
            _ => Err(SessionError::OutOfOrder),
        }
    }

    /// Writing upload bytes to the staging file failed: `refusal` says why. It may come after
    /// the body's last bytes, which ended its frame.
    pub fn handle_write_failed(&mut self, refusal: Refusal) -> Result<(), SessionError> {
        let State::Uploading(Upload {
            phase:
                UploadPhase::Receiving | UploadPhase::AwaitingTrailer | UploadPhase::Committing { .. },
            ..
        }) = self.state
        else {
            return Err(SessionError::OutOfOrder);
        };
        // The rest of the body is not read: the stream is out of step.
        self.refuse_from_host(refusal.closing());
        Ok(())
    }

    /// The result of an action that returns nothing: [`FileAction::List`] (after its entries),
    /// [`FileAction::Truncate`], [`FileAction::Commit`], [`FileAction::KeepPartial`],
    /// [`FileAction::MakeDir`], [`FileAction::Rename`].
    pub fn handle_done(&mut self, result: Result<(), Refusal>) -> Result<(), SessionError> {
        self.expect(self.state.awaits_host())?;
        match (&mut self.state, result) {
            (State::Listing { entries }, Ok(())) => {
                let entries = *entries;
                self.events
                    .push(ServerEvent::Completed(Completed::Listed { entries }));
                self.reply(&Ack {
                    op: FileOp::End,
                    count: Some(entries),
                });
            }
            // Entries may be out already: the error frame ends the listing instead of `end`.
            (State::Listing { .. }, Err(refusal)) => self.refuse_from_host(refusal),
            (State::MakingDir { .. }, Ok(())) => {
                self.events.push(ServerEvent::Completed(Completed::MadeDir));
                self.reply(&Ack {
                    op: FileOp::Made,
                    count: None,
                });
            }
            (State::Renaming, Ok(())) => {
                self.events.push(ServerEvent::Completed(Completed::Renamed));
                self.reply(&Ack {
                    op: FileOp::Renamed,
                    count: None,
                });
            }
            (State::MakingDir { .. } | State::Renaming, Err(refusal)) => {
                self.refuse_from_host(refusal);
            }
            (State::Uploading(upload), result) => match (&upload.phase, result) {
                (UploadPhase::Truncating, Ok(())) => {
                    upload.phase = UploadPhase::Receiving;
                    self.take_empty_body_end();
                }
                (UploadPhase::Truncating, Err(refusal)) => {
                    self.refuse_from_host(refusal.closing());
                }
                (UploadPhase::Committing { digest }, Ok(())) => {
                    let (kind, size, offset, digest) =
                        (upload.kind, upload.size, upload.offset, *digest);
                    self.stored(kind, size, offset, digest);
                }
                (UploadPhase::Committing { .. }, Err(refusal)) => self.refuse_from_host(refusal),
                (UploadPhase::KeepingPartial { why }, _) => match *why {
                    KeptFor::Torn => {
                        self.finish_request();
                        self.state = State::Closing;
                    }
                    KeptFor::ShortPartial { held } => {
                        let refused = self.refusal.set_closing(
                            ErrorCode::PartialMismatch,
                            format_args!(
                                "{}: the server holds {held} bytes of this upload, fewer than the resume offset {}",
                                PeerText::new(&self.path),
                                upload.offset
                            ),
                        );
                        self.refuse(refused);
                    }
                    KeptFor::BrokenTrailer(e) => {
                        let refused = self.refusal.set_closing(ErrorCode::BadFrame, e);
                        self.refuse(refused);
                    }
                },
                _ => return Err(SessionError::OutOfOrder),
            },
            _ => return Err(SessionError::OutOfOrder),
        }
        Ok(())
    }

    /// `Ok` when the session is in the state a `handle_*` call answers (`expected`) and can
    /// queue its reply.
    fn expect(&mut self, expected: bool) -> Result<(), SessionError> {
        if !expected {
            return Err(SessionError::OutOfOrder);
        }
        if !self.outbox.is_empty() {
            return Err(SessionError::OutboxFull);
        }
        // The host's turn ends with this result: the client's silence is timed from here.
        self.wait = Wait::Starting;
        Ok(())
    }

    /// Ends the request: the session is idle again.
    fn finish_request(&mut self) {
        self.answered += 1;
        self.state = State::Idle;
    }

    /// Queues a reply that ends the request.
    fn reply<H: serde::Serialize>(&mut self, header: &H) {
        let queued = self.outbox.push_frame(&PLAIN_ENCODER, header);
        self.finish_request();
        if queued.is_err() {
            self.state = State::Closing;
        }
    }

    /// Answers the request with the refusal written into `self.refusal` (an error frame)
    /// and ends it.
    #[inline(never)]
    fn refuse(&mut self, _: Refused) {
        let queued = self.outbox.push_frame(
            &PLAIN_ENCODER,
            &ErrorFrame::new(self.refusal.code, &self.refusal.message),
        );
        let closes = self.refusal.closes || queued.is_err();
        self.events.push(ServerEvent::Refused(self.refusal.clone()));
        self.finish_request();
        if closes {
            self.state = State::Closing;
        }
    }

    /// Answers the request with a host's refusal.
    fn refuse_from_host(&mut self, refusal: Refusal) {
        let refused = self.refusal.hold(refusal);
        self.refuse(refused);
    }

    fn refuse_now(&mut self, refused: Refused) -> Result<(), SessionError> {
        self.refuse(refused);
        Ok(())
    }

    /// Refuses a request whose head was just read: at once when it closes the connection,
    /// else once its (empty) frame has ended, so that the stream stays in step.
    fn refuse_head(&mut self, refused: Refused, has_body: bool) {
        self.refusal.closes |= has_body;
        if self.refusal.closes {
            self.refuse(refused);
        } else {
            self.state = State::Refusing;
        }
    }

    #[inline(never)]
    fn framing_failed(&mut self, e: DecodeError) {
        let path = PeerText::new(&self.path);
        let refused = match (e, &mut self.state) {
            (DecodeError::BodyTooLarge { .. }, _) => {
                self.refusal.set_closing(ErrorCode::TooLarge, e)
            }
            (
                DecodeError::ChecksumMismatch { .. },
                State::Uploading(Upload {
                    kind,
                    phase: UploadPhase::Receiving,
                    ..
                }),
            ) => {
                // Read whole: a seed upload's stream is still in step; a put's trailer is not
                // worth waiting for.
                let refused = self.refusal.set(
                    ErrorCode::ChecksumMismatch,
                    format_args!("{path}: {e}; the previous file is untouched"),
                );
                self.refusal.closes = matches!(kind, UploadKind::Put { .. });
                refused
            }
            (
                _,
                State::Uploading(Upload {
                    kind: UploadKind::Put { .. },
                    phase: phase @ UploadPhase::AwaitingTrailer,
                    ..
                }),
            ) => {
                // The body is whole and staged: keep it for a resume.
                *phase = UploadPhase::KeepingPartial {
                    why: KeptFor::BrokenTrailer(e),
                };
                return;
            }
            _ => self.refusal.set_closing(ErrorCode::BadFrame, e),
        };
        self.refuse(refused);
    }

    fn on_head(&mut self, body_len: u64, md5: Option<[u8; 16]>) {
        match self.state {
            State::Idle => self.on_request(body_len, md5),
            State::Uploading(Upload {
                phase: UploadPhase::AwaitingTrailer,
                ..
            }) => self.on_trailer(body_len),
            // A frame's head comes only after the previous frame's end.
            _ => {
                let refused = self
                    .refusal
                    .set_closing(ErrorCode::BadFrame, "a frame out of order");
                self.refuse(refused);
            }
        }
    }

    #[inline(never)]
    fn on_request(&mut self, body_len: u64, md5: Option<[u8; 16]>) {
        self.clear_path();
        let has_body = body_len > 0;
        let view = match HeadView::read(&self.decoder) {
            Ok(view) => view,
            Err(e) => {
                let refused = self.refusal.set(ErrorCode::BadRequest, e);
                return self.refuse_head(refused, has_body);
            }
        };
        // An info request needs no token: its reply holds nothing secret.
        let op = op_name(view.op);
        if op.as_ref().and_then(BoundedText::get) == Some(FileOp::Info.as_str()) {
            if has_body {
                let refused = self
                    .refusal
                    .set_closing(ErrorCode::BadRequest, "`info` takes no body");
                return self.refuse(refused);
            }
            self.state = State::AwaitingEnd(Query::Info);
            return;
        }
        if let Some(expected) = self.rules.token
            && !escaped_token_matches(expected, view.token)
        {
            // Closing makes a guesser pay a connection per guess, as the shell server does.
            let refused = self.refusal.set_closing(
                ErrorCode::Unauthorized,
                "missing or wrong token; pass the server's token with --token or UNSTICK_TOKEN",
            );
            return self.refuse_head(refused, has_body);
        }
        let op = match (&op, view.filename.zip(SeedServed::in_this_build())) {
            (None, Some((filename, served))) => {
                let member = keep_path(Some(filename), &mut self.path);
                if let Err(refused) = self.take_path(member) {
                    self.refusal.closes = true;
                    return self.refuse(refused);
                }
                self.state = State::Uploading(Upload {
                    kind: UploadKind::Seed {
                        md5: md5.map(Checksum::Md5),
                        served,
                    },
                    keep: FileAttributes::NONE,
                    offset: 0,
                    size: body_len,
                    // The decoder checks the body's MD5; the session hashes nothing.
                    hasher: BodyHasher::new(Algorithms::NONE),
                    phase: UploadPhase::Staging { prefix: None },
                });
                return;
            }
            (None, None) => {
                let refused = self.refusal.set(ErrorCode::BadRequest, NO_OP);
                return self.refuse_head(refused, has_body);
            }
            (Some(op), _) => match op.get().map(str::parse::<FileOp>) {
                Some(Ok(
                    op @ (FileOp::Put
                    | FileOp::Get
                    | FileOp::Ls
                    | FileOp::Stat
                    | FileOp::Delete
                    | FileOp::Mkdir
                    | FileOp::Rename),
                )) => op,
                _ => {
                    let refused = self.refusal.set(
                        ErrorCode::BadRequest,
                        format_args!(
                            "unknown op `{}`; expected put, get, ls, stat, delete, mkdir, rename or info",
                            PeerText::new(op.get().unwrap_or("(too long)"))
                        ),
                    );
                    return self.refuse_head(refused, has_body);
                }
            },
        };
        let view = match RequestView::read(&self.decoder) {
            Ok(view) => view,
            Err(e) => {
                let refused = self.refusal.set(ErrorCode::BadRequest, e);
                return self.refuse_head(refused, has_body);
            }
        };
        // The path is unescaped once, into the session's own field, and checked there; it is
        // cleared again if the request is refused before it is taken.
        let path = keep_path(view.path, &mut self.path);
        let corrupted = path == PathMember::Kept && view.path_corrupted(&self.path);
        // A rename's new name follows the old one in `self.path`; both are checked below.
        let target = match op {
            FileOp::Rename if path == PathMember::Kept => {
                keep_rename_target(view.to, view.to_xxh3, &mut self.path, &mut self.refusal)
            }
            _ => Ok(None),
        };
        if let Ok(Some(at)) = target {
            self.to_at = Some(at);
        }
        let parents = view.parents == Some(true);
        let offset = view.offset.unwrap_or(0);
        let algorithm = match view.algorithm.map(EscapedText::to_bounded::<8>) {
            None => super::parse_algorithm(None),
            Some(text) => text.get().and_then(|t| super::parse_algorithm(Some(t))),
        };
        let prefix = algorithm.and_then(|a| digest_member(a, view.prefix_xxh3, view.prefix_md5));
        if corrupted {
            self.clear_path();
            let refused = self.refusal.set(
                ErrorCode::ChecksumMismatch,
                "the path does not match its `path_xxh3` digest (corrupted on the way?); nothing was done",
            );
            return self.refuse_head(refused, has_body);
        }
        if op == FileOp::Put {
            let keep = FileAttributes {
                mode: view.mode,
                mtime: view.mtime,
            };
            match self.check_put(path, algorithm, prefix, offset, body_len, keep) {
                Ok(put) => {
                    self.state = State::Uploading(Upload {
                        kind: UploadKind::Put {
                            algorithm: put.algorithm,
                        },
                        keep: put.keep,
                        offset,
                        size: put.size,
                        hasher: BodyHasher::new(Algorithms::only(put.algorithm)),
                        phase: UploadPhase::Staging { prefix: put.prefix },
                    });
                }
                Err(refused) => {
                    self.refusal.closes = true;
                    self.refuse(refused);
                }
            }
            return;
        }
        if has_body {
            self.clear_path();
            let refused = self.refusal.set_closing(
                ErrorCode::BadRequest,
                format_args!("`{}` takes no body", op.as_str()),
            );
            return self.refuse(refused);
        }
        // Checked once the frame has ended, so that a refusal leaves the stream in step.
        let checked = match (op, path) {
            (FileOp::Ls, PathMember::Absent) => Ok(()),
            (FileOp::Ls, PathMember::Kept) => self.take_dir(),
            (FileOp::Rename, _) => self
                .take_path(path)
                .and_then(|()| self.take_rename_target(target)),
            _ => self.take_path(path),
        };
        let query = checked.and_then(|()| match op {
            FileOp::Get => match algorithm {
                Some(algorithm) if algorithm.is_supported() => {
                    Ok(Query::Get(Get { offset, algorithm }))
                }
                Some(algorithm) => Err(unsupported_algorithm(&mut self.refusal, algorithm)),
                None => Err(bad_algorithm(&mut self.refusal)),
            },
            FileOp::Ls => Ok(Query::List),
            FileOp::Stat => Ok(Query::Stat),
            FileOp::Mkdir => Ok(Query::MakeDir { parents }),
            FileOp::Rename => Ok(Query::Rename),
            // `delete`, the one op left.
            _ => Ok(Query::Delete),
        });
        self.state = match query {
            Ok(query) => State::AwaitingEnd(query),
            Err(Refused { .. }) => State::Refusing,
        };
    }

    /// Checks a `put`'s head: its path (kept in `self.path` as `path` says), algorithm, size,
    /// for a resume the digest of the prefix it skips, and the attributes to `keep` (a mode
    /// must be permission bits; set-user-ID, set-group-ID and sticky bits are dropped).
    fn check_put(
        &mut self,
        path: PathMember,
        algorithm: Option<Algorithm>,
        prefix: Option<Checksum>,
        offset: u64,
        body_len: u64,
        keep: FileAttributes,
    ) -> Result<PutHead, Refused> {
        self.take_path(path)?;
        let algorithm = match algorithm {
            Some(algorithm) if algorithm.is_supported() => algorithm,
            Some(algorithm) => {
                self.clear_path();
                return Err(unsupported_algorithm(&mut self.refusal, algorithm));
            }
            None => {
                self.clear_path();
                return Err(bad_algorithm(&mut self.refusal));
            }
        };
        let keep = match keep.mode {
            Some(mode) if mode > 0o7777 => {
                self.clear_path();
                return Err(self.refusal.set(
                    ErrorCode::BadRequest,
                    format_args!(
                        "`mode` {mode} is not a file's permission bits (0 to 4095, 0o7777)"
                    ),
                ));
            }
            mode => FileAttributes {
                mode: mode.map(|m| m & MODE_BITS),
                mtime: keep.mtime,
            },
        };
        let max = self.rules.max_file_size;
        let size = match offset.checked_add(body_len) {
            Some(total) if total <= max => total,
            _ => {
                return Err(self.refusal.set(
                    ErrorCode::TooLarge,
                    format_args!(
                        "{}: the file would exceed the server's limit of {max} bytes",
                        PeerText::new(&self.path)
                    ),
                ));
            }
        };
        let prefix = match (offset, prefix) {
            (0, _) => None,
            (_, Some(prefix)) => Some(prefix),
            (_, None) => {
                return Err(self.refusal.set(
                    ErrorCode::BadRequest,
                    format_args!("a resumed put needs `prefix_{}`", algorithm.member()),
                ));
            }
        };
        Ok(PutHead {
            algorithm,
            size,
            prefix,
            keep,
        })
    }

    /// Checks the request's path, unescaped into `self.path` as `member` says, and keeps it;
    /// a refused one is cleared.
    fn take_path(&mut self, member: PathMember) -> Result<(), Refused> {
        let checked = match member {
            PathMember::Kept => check_path_with(&self.path, self.names())
                .map_err(|e| bad_path(&mut self.refusal, &self.path, e)),
            PathMember::Absent => Err(self
                .refusal
                .set(ErrorCode::BadRequest, "the request has no `path`")),
            PathMember::TooLong => Err(too_long_path(&mut self.refusal)),
            PathMember::Invalid => Err(invalid_path_escape(&mut self.refusal)),
        };
        if checked.is_err() {
            self.clear_path();
        }
        checked
    }

    /// Checks a rename's new name, kept after the old one as [`keep_rename_target`] found it,
    /// with the same rules; a refused one clears both.
    fn take_rename_target(
        &mut self,
        target: Result<Option<usize>, Refused>,
    ) -> Result<(), Refused> {
        let checked = match target {
            Ok(Some(at)) => {
                let to = &self.path[at..];
                check_path_with(to, self.names()).map_err(|e| bad_path(&mut self.refusal, to, e))
            }
            Ok(None) => Err(self
                .refusal
                .set(ErrorCode::BadRequest, "a rename needs `to`, the new name")),
            Err(refused) => Err(refused),
        };
        if checked.is_err() {
            self.clear_path();
        }
        checked
    }

    fn clear_path(&mut self) {
        self.path.clear();
        self.to_at = None;
    }

    /// Checks the directory of a listing, unescaped into `self.path`, and keeps it without a
    /// trailing `/` (empty for the root); a refused one is cleared.
    fn take_dir(&mut self) -> Result<(), Refused> {
        let checked = match check_dir_with(&self.path, self.names()) {
            Ok(dir) => Ok(dir.map_or(0, str::len)),
            Err(e) => Err(bad_path(&mut self.refusal, &self.path, e)),
        };
        match checked {
            Ok(len) => {
                self.path.truncate(len);
                Ok(())
            }
            Err(refusal) => {
                self.path.clear();
                Err(refusal)
            }
        }
    }

    #[inline(never)]
    fn on_end(&mut self) {
        match &mut self.state {
            State::AwaitingEnd(Query::Info) => self.answer_info(),
            State::AwaitingEnd(query) => {
                self.state = match *query {
                    Query::Stat => State::Stat,
                    Query::List => State::Listing { entries: 0 },
                    Query::Delete => State::Deleting,
                    Query::MakeDir { parents } => State::MakingDir { parents },
                    Query::Rename => State::Renaming,
                    Query::Get(get) => State::Opening(get),
                    Query::Info => State::Idle,
                };
            }
            State::Refusing => self.refuse(Refused::HELD),
            State::Uploading(upload) => match (&upload.phase, upload.kind) {
                (UploadPhase::Receiving, UploadKind::Put { .. }) => {
                    upload.phase = UploadPhase::AwaitingTrailer;
                }
                (UploadPhase::Receiving, UploadKind::Seed { md5, .. }) => {
                    upload.phase = UploadPhase::Committing { digest: md5 };
                }
                (
                    UploadPhase::AwaitingTrailerEnd { digest: None },
                    UploadKind::Put { algorithm },
                ) => {
                    let refused = self.refusal.set(
                        ErrorCode::BadRequest,
                        format_args!("the trailer has no `file_{}` digest", algorithm.member()),
                    );
                    self.refuse(refused);
                }
                (
                    UploadPhase::AwaitingTrailerEnd {
                        digest: Some(claimed),
                    },
                    UploadKind::Put { algorithm },
                ) => {
                    let claimed = *claimed;
                    let actual = upload.hasher.finish().get(algorithm);
                    if actual != Some(claimed) {
                        let refused = self.refusal.set(
                            ErrorCode::ChecksumMismatch,
                            format_args!(
                                "{}: the received data does not match the client's {} digest; nothing was committed and the previous file is untouched",
                                PeerText::new(&self.path),
                                algorithm.member()
                            ),
                        );
                        return self.refuse(refused);
                    }
                    upload.phase = UploadPhase::Committing {
                        digest: Some(claimed),
                    };
                }
                _ => {}
            },
            _ => {}
        }
    }

    #[inline(never)]
    fn on_trailer(&mut self, body_len: u64) {
        let view = TrailerView::read(&self.decoder).unwrap_or_default();
        let op = op_name(view.op);
        let is_done = op.as_ref().and_then(BoundedText::get) == Some(FileOp::Done.as_str());
        if !is_done || body_len != 0 {
            let refused = self.refusal.set_closing(
                ErrorCode::BadFrame,
                "a put body must be followed by {\"op\":\"done\",\"file_xxh3\":...}",
            );
            return self.refuse(refused);
        }
        let State::Uploading(Upload {
            kind: UploadKind::Put { algorithm },
            phase,
            ..
        }) = &mut self.state
        else {
            return;
        };
        *phase = UploadPhase::AwaitingTrailerEnd {
            digest: digest_member(*algorithm, view.file_xxh3, view.file_md5),
        };
    }

    /// Answers an `info` request with the host's facts and the session's own limits.
    fn answer_info(&mut self) {
        let mut known = EndpointInfo::new(Protocols::FILE);
        known.max_header = Some(CAP as u64);
        known.max_path = Some(PATH.min(MAX_PATH_LEN).min(CAP) as u64);
        known.max_file_size = Some(self.rules.max_file_size);
        let reply = self.info.completed_by(&known);
        self.reply(&reply);
    }

    /// Moves a download on once the requested bytes are read: from the prefix to the head and
    /// body, from the body to the trailer.
    fn after_read(&mut self) {
        let State::Downloading(download) = &mut self.state else {
            return;
        };
        match download.phase {
            DownloadPhase::Prefix { to_read: 0 } => {
                let head = FileHead {
                    op: FileOp::File,
                    size: download.size,
                    offset: download.get.offset,
                    mtime: download.mtime,
                    mode: download.mode,
                };
                let body_len = download.size - download.get.offset;
                if self
                    .outbox
                    .push_head(&PLAIN_ENCODER, &head, body_len, None)
                    .is_err()
                {
                    self.state = State::Closing;
                    return;
                }
                download.phase = match body_len {
                    0 => DownloadPhase::Trailer,
                    _ => DownloadPhase::Body { to_read: body_len },
                };
            }
            // The request ends once the trailer is out; nothing more is asked of the host.
            DownloadPhase::Body { to_read: 0 } => download.phase = DownloadPhase::Trailer,
            _ => {}
        }
    }

    fn send_download_trailer(&mut self) {
        let State::Downloading(download) = &mut self.state else {
            return;
        };
        let Download { get, size, .. } = *download;
        let Some(digest) = download.hasher.finish().get(get.algorithm) else {
            let refused = self
                .refusal
                .set_closing(ErrorCode::StorageError, "digest unavailable in this build");
            return self.refuse(refused);
        };
        let hex = digest.to_hex();
        let trailer = DigestTrailer::new(FileOp::Done, get.algorithm, hex.as_str(), None);
        self.events.push(ServerEvent::Completed(Completed::Sent {
            size,
            resumed_from: get.offset,
            digest,
        }));
        self.reply(&trailer);
    }

    /// Moves a resumed upload on once its staged prefix is hashed.
    fn after_prefix_check(&mut self) {
        let State::Uploading(upload) = &mut self.state else {
            return;
        };
        let (UploadPhase::CheckingPrefix { prefix, to_read: 0 }, UploadKind::Put { algorithm }) =
            (&upload.phase, upload.kind)
        else {
            return;
        };
        // The hasher goes on over the body: the trailer's digest covers the whole file.
        let actual = upload.hasher.clone().finish().get(algorithm);
        if actual == Some(*prefix) {
            upload.phase = UploadPhase::Truncating;
            return;
        }
        // Corrupted (or from another file): the staging file is removed with the request.
        let refused = self.refusal.set_closing(
            ErrorCode::PartialMismatch,
            format_args!(
                "{}: the server's partial upload does not match the first {} bytes of the client's file; it was discarded, upload again from the start",
                PeerText::new(&self.path),
                upload.offset
            ),
        );
        self.refuse(refused);
    }

    /// Answers a committed upload of `size` bytes, `offset` of them resumed, whose whole-file
    /// digest is `digest`.
    fn stored(&mut self, kind: UploadKind, size: u64, offset: u64, digest: Option<Checksum>) {
        self.events.push(ServerEvent::Completed(Completed::Stored {
            size,
            resumed_from: offset,
            digest,
            seed: matches!(kind, UploadKind::Seed { .. }),
        }));
        match (kind, digest) {
            (UploadKind::Put { algorithm }, Some(digest)) => {
                let hex = digest.to_hex();
                let reply = DigestTrailer::new(FileOp::Stored, algorithm, hex.as_str(), Some(size));
                self.reply(&reply);
            }
            _ => self.reply(&Ack {
                op: FileOp::Stored,
                count: None,
            }),
        }
    }
}

/// What a checked `put` head holds beyond its path and offset.
struct PutHead {
    algorithm: Algorithm,
    /// The whole file's size (offset and body).
    size: u64,
    /// A resume's digest of the prefix it skips; `None` when it is not a resume.
    prefix: Option<Checksum>,
    /// The attributes to commit the file with.
    keep: FileAttributes,
}

impl State {
    /// Whether the host is to act and answer with a `handle_*` call.
    fn awaits_host(&self) -> bool {
        match self {
            State::Stat
            | State::Listing { .. }
            | State::Deleting
            | State::MakingDir { .. }
            | State::Renaming
            | State::Opening(_) => true,
            State::Downloading(download) => download.phase != DownloadPhase::Trailer,
            State::Uploading(_) => !self.reads_frames(),
            State::Idle | State::AwaitingEnd(_) | State::Refusing | State::Closing => false,
        }
    }
}

fn bad_path(refusal: &mut Refusal, text: &str, e: super::PathError) -> Refused {
    refusal.set(
        ErrorCode::BadPath,
        format_args!("`{}`: {e}", PeerText::new(text)),
    )
}

fn too_long_path(refusal: &mut Refusal) -> Refused {
    refusal.set(ErrorCode::BadPath, super::PathError::TooLong)
}

/// A path member whose escapes are not JSON's (the decoder's header check lets none through).
fn invalid_path_escape(refusal: &mut Refusal) -> Refused {
    refusal.set(
        ErrorCode::BadRequest,
        "the header's path holds an invalid string escape",
    )
}

/// A transfer's digest that this build does not compute: refused at the head, before a byte of
/// the file moves, rather than found missing at its end.
fn unsupported_algorithm(refusal: &mut Refusal, algorithm: Algorithm) -> Refused {
    let other = match algorithm {
        Algorithm::Xxh3 => Algorithm::Md5,
        Algorithm::Md5 => Algorithm::Xxh3,
    };
    if other.is_supported() {
        let how = match other {
            Algorithm::Md5 => "the CLI's --md5",
            Algorithm::Xxh3 => "the CLI's default, without --md5",
        };
        refusal.set(
            ErrorCode::Unsupported,
            format_args!(
                "this server does not compute {algorithm} digests; transfer with {other} ({how})"
            ),
        )
    } else {
        refusal.set(
            ErrorCode::Unsupported,
            format_args!("this server does not compute {algorithm} digests"),
        )
    }
}

fn bad_algorithm(refusal: &mut Refusal) -> Refused {
    refusal.set(
        ErrorCode::BadRequest,
        "`algorithm` must be \"xxh3\" or \"md5\"",
    )
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    /// Tests that are not about time all happen at one instant.
    const NOW: Instant = Instant::ZERO;

    /// The refusal the session reported for its log last.
    fn refusal_of<const CAP: usize, const PATH: usize, const OUT: usize>(
        session: &mut FileServerSession<'_, CAP, PATH, OUT>,
    ) -> Refusal {
        let mut last = None;
        while let Some(event) = session.poll_event() {
            if let ServerEvent::Refused(refusal) = event {
                last = Some(refusal);
            }
        }
        last.expect("the session refused a request")
    }
    use crate::{HeaderFrameEncoder, digest_of};
    use std::string::String;
    use std::vec::Vec;

    fn frame(header: &str, body: &[u8]) -> Vec<u8> {
        let mut frame = (header.len() as i32).to_le_bytes().to_vec();
        frame.extend_from_slice(header.as_bytes());
        frame.extend_from_slice(body);
        frame
    }

    /// A session with a small outbox (a firmware's, `OUT` = 1024) serves as the default one
    /// does: the same reply bytes for a stat.
    #[test]
    fn a_small_outbox_serves_the_same_reply() {
        fn stat_reply<const OUT: usize>() -> Vec<u8> {
            let rules = FileRules {
                token: None,
                max_file_size: 1 << 20,
                idle_timeout: IDLE_TIMEOUT,
            };
            let mut session = FileServerSession::<512, 512, OUT>::new(rules);
            let request = frame(r#"{"op":"stat","path":"a.txt","total_size":0}"#, b"");
            let (used, _) = session.handle_input(NOW, &request);
            assert_eq!(used, request.len());
            assert_eq!(
                session.poll_action(),
                Some(FileAction::Stat { path: "a.txt" })
            );
            let found = StatFound {
                entry: None,
                partial_size: 0,
            };
            session.handle_stat(Ok(found)).unwrap();
            let mut out = [0u8; 256];
            let mut reply = Vec::new();
            while let Some(Transmit::Bytes(n)) = session.poll_transmit(&mut out) {
                reply.extend_from_slice(&out[..n]);
            }
            reply
        }
        assert_eq!(stat_reply::<1024>(), stat_reply::<OUTBOX>());
        assert!(!stat_reply::<1024>().is_empty());
    }

    /// What the session did with one request.
    #[derive(Debug, PartialEq, Eq)]
    enum Seen {
        Refused(&'static str, bool),
        Acted(String),
        Closed,
    }

    /// Drives a session over `wire`, `step` bytes at a time, with a host that finds nothing
    /// (no file exists, staging always works, every put's body is written); returns what it
    /// saw and the bytes it sent. Bounded.
    fn serve(rules: FileRules<'_>, wire: &[u8], step: usize) -> (Vec<Seen>, Vec<u8>) {
        serve_with(FileServerSession::new(rules), wire, step)
    }

    /// [`serve`] with `session`.
    fn serve_with(
        mut session: FileServerSession<'_, 1024>,
        wire: &[u8],
        step: usize,
    ) -> (Vec<Seen>, Vec<u8>) {
        let (mut seen, mut sent) = (Vec::new(), Vec::new());
        let mut out = [0u8; 4096];
        let mut at = 0;
        for _ in 0..100_000 {
            while let Some(t) = session.poll_transmit(&mut out) {
                if let Transmit::Bytes(n) = t {
                    sent.extend_from_slice(&out[..n]);
                }
            }
            while let Some(event) = session.poll_event() {
                if let ServerEvent::Refused(r) = event {
                    seen.push(Seen::Refused(r.code.as_str(), r.closes));
                }
            }
            let action = session.poll_action().map(|a| std::format!("{a:?}"));
            if let Some(action) = &action
                && action != "Close"
            {
                seen.push(Seen::Acted(action.clone()));
            }
            match session.poll_action() {
                Some(FileAction::Close) => {
                    seen.push(Seen::Closed);
                    return (seen, sent);
                }
                Some(FileAction::Stat { .. }) => session
                    .handle_stat(Ok(StatFound {
                        entry: None,
                        partial_size: 0,
                    }))
                    .unwrap(),
                Some(FileAction::List { .. }) => session.handle_done(Ok(())).unwrap(),
                Some(FileAction::Delete { .. }) => session
                    .handle_deleted(Ok(Deleted {
                        entry_removed: false,
                        partial: PartialState::Absent,
                    }))
                    .unwrap(),
                Some(FileAction::OpenFile { path }) => {
                    let refusal = Refusal::new(ErrorCode::NotFound, path);
                    session.handle_opened(Err(refusal)).unwrap()
                }
                Some(FileAction::Stage { .. }) => {
                    session.handle_staged(Ok(Staged::Ready { len: 0 })).unwrap()
                }
                Some(FileAction::Commit { .. })
                | Some(FileAction::KeepPartial)
                | Some(FileAction::MakeDir { .. })
                | Some(FileAction::Rename { .. }) => session.handle_done(Ok(())).unwrap(),
                Some(other) => panic!("unexpected {other:?}"),
                None => {
                    if at == wire.len() {
                        session.handle_eof();
                        continue;
                    }
                    let end = (at + step).min(wire.len());
                    let (used, _) = session.handle_input(NOW, &wire[at..end]);
                    at += used;
                }
            }
        }
        panic!("the session did not finish");
    }

    const OPEN: FileRules<'static> = FileRules {
        token: None,
        max_file_size: 100,
        idle_timeout: IDLE_TIMEOUT,
    };

    /// Reads the first frame of `sent` as an info reply; returns the client holding it and the
    /// reply's length.
    fn read_info(sent: &[u8]) -> (crate::info::InfoClientSession<1024>, usize) {
        let mut client = crate::info::InfoClientSession::new();
        let (used, done) = client.handle_input(NOW, sent).unwrap();
        assert!(done, "a whole info reply");
        (client, used)
    }

    #[test]
    fn info_is_answered_without_the_token_and_grants_nothing_after_it() {
        let rules = FileRules {
            token: Some("s3cret"),
            max_file_size: 100,
            idle_timeout: IDLE_TIMEOUT,
        };
        let mut wire = frame(r#"{"op":"info","total_size":0}"#, b"");
        wire.extend(frame(r#"{"op":"info","token":"wrong"}"#, b""));
        wire.extend(frame(r#"{"op":"stat","path":"a"}"#, b""));
        for step in [1, 2, 5, 4096] {
            let (seen, sent) = serve(rules, &wire, step);
            assert_eq!(
                seen,
                [Seen::Refused("unauthorized", true), Seen::Closed],
                "step {step}"
            );
            let (mut first, used) = read_info(&sent);
            let (mut second, _) = read_info(&sent[used..]);
            let first = first.reply().unwrap();
            assert_eq!(first, second.reply().unwrap());
            assert_eq!(first.protocols, Protocols::FILE);
            assert_eq!(first.version, crate::info::PROTOCOL_VERSION);
            assert_eq!(
                (first.max_header, first.max_path, first.max_file_size),
                (Some(1024), Some(1024), Some(100))
            );
            assert_eq!((first.max_command, first.free_space), (None, None));
            assert_eq!(first.digests, crate::info::supported_digests());
            // Nothing of the server's disk or secrets.
            assert!(!sent.windows(6).any(|w| w == b"s3cret"));
        }
        // An info request with a body is refused, and the body never read.
        let (seen, _) = serve(OPEN, &frame(r#"{"op":"info","total_size":3}"#, b"abc"), 4);
        assert_eq!(seen, [Seen::Refused("bad_request", true), Seen::Closed]);
    }

    #[test]
    fn a_hosts_facts_complete_the_info_reply() {
        let mut host = EndpointInfo::new(Protocols::SHELL);
        host.max_path = Some(64);
        host.free_space = Some(4000);
        host.board = Some("mps2-an386");
        let mut session = FileServerSession::<1024>::new(OPEN).with_info(host);
        let wire = frame(r#"{"op":"info"}"#, b"");
        assert_eq!(session.handle_input(NOW, &wire).0, wire.len());
        let mut out = [0u8; 1024];
        let Some(Transmit::Bytes(n)) = session.poll_transmit(&mut out) else {
            panic!("an info reply")
        };
        assert!(session.is_idle() && session.answered() == 1);
        assert_eq!(session.poll_action(), None);
        let (mut client, _) = read_info(&out[..n]);
        let info = client.reply().unwrap();
        assert_eq!(info.protocols, Protocols::BOTH);
        assert_eq!(
            (info.max_path, info.free_space, info.max_file_size),
            (Some(64), Some(4000), Some(100))
        );
        assert_eq!(info.board, Some("mps2-an386"));
    }

    /// Runs without the `seed` feature too (`.ci/run` tests the core as the micro:bit's
    /// firmware is built).
    #[test]
    fn seed_clients_upload_by_filename_only_in_a_build_that_serves_them() {
        let upload = frame(r#"{"filename":"e.txt","filesize":3}"#, b"abc");
        let (seen, _) = serve(OPEN, &upload, 1);
        let staged = seen.iter().any(|s| matches!(s, Seen::Acted(_)));
        if SeedServed::in_this_build().is_some() {
            assert!(staged, "{seen:?}");
        } else {
            assert!(!staged, "{seen:?}");
            assert!(
                matches!(seen.first(), Some(Seen::Refused("bad_request", _))),
                "{seen:?}"
            );
        }
    }

    /// Runs with a digest feature off (`.ci/run` tests the core with md5 only, as the
    /// micro:bit's firmware is built).
    #[test]
    fn a_transfer_with_a_digest_this_build_lacks_is_refused_at_its_head() {
        let lacking = [Algorithm::Xxh3, Algorithm::Md5]
            .into_iter()
            .filter(|a| !a.is_supported());
        for algorithm in lacking {
            let get = std::format!(r#"{{"op":"get","path":"a","algorithm":"{algorithm}"}}"#);
            let put = std::format!(
                r#"{{"op":"put","path":"a","algorithm":"{algorithm}","total_size":3}}"#
            );
            for (header, body, closes) in [(get, &b""[..], false), (put, &b"abc"[..], true)] {
                let (seen, _) = serve(OPEN, &frame(&header, body), 1);
                assert!(
                    !seen.iter().any(|s| matches!(s, Seen::Acted(_))),
                    "{header}: {seen:?}"
                );
                assert!(
                    matches!(seen.first(), Some(Seen::Refused("unsupported", c)) if *c == closes),
                    "{header}: {seen:?}"
                );
            }
        }
    }

    #[test]
    fn refusals_keep_the_stream_in_step_or_close_it_in_any_chunking() {
        let table: [(&str, &[u8], &'static str, bool); 12] = [
            (r#"{"op":"rm","path":"a"}"#, b"", "bad_request", false),
            (r#"{"op":"stat"}"#, b"", "bad_request", false),
            (r#"{"op":"stat","path":"../etc"}"#, b"", "bad_path", false),
            (
                r#"{"op":"stat","path":".unstick-partial-x"}"#,
                b"",
                "bad_path",
                false,
            ),
            (r#"{"op":"ls","path":"/"}"#, b"", "", false),
            (r#"{"op":"ls","path":"a/../b"}"#, b"", "bad_path", false),
            (
                r#"{"op":"get","path":"a","algorithm":"sha1"}"#,
                b"",
                "bad_request",
                false,
            ),
            (r#"{"op":"get","path":"a"}"#, b"", "not_found", false),
            (r#"{"op":"delete","path":"a"}"#, b"", "not_found", false),
            (
                r#"{"op":"stat","path":"a","offset":-1}"#,
                b"",
                "bad_request",
                false,
            ),
            (
                r#"{"op":"get","path":"a","total_size":2}"#,
                b"xx",
                "bad_request",
                true,
            ),
            (r#"{"path":"a","total_size":1}"#, b"x", "bad_request", true),
        ];
        for (header, body, code, closes) in table {
            for step in [1, 2, 3, 7, 64, 4096] {
                let mut wire = frame(header, body);
                // The stream goes on after a refusal that does not close.
                wire.extend(frame(r#"{"op":"stat","path":"next"}"#, b""));
                let (seen, _) = serve(OPEN, &wire, step);
                let refused: Vec<_> = seen
                    .iter()
                    .filter_map(|s| match s {
                        Seen::Refused(code, closes) => Some((*code, *closes)),
                        _ => None,
                    })
                    .collect();
                let expected: Vec<_> = (!code.is_empty())
                    .then_some((code, closes))
                    .into_iter()
                    .collect();
                assert_eq!(refused, expected, "{header} step {step}");
                let stat_next = seen.contains(&Seen::Acted("Stat { path: \"next\" }".into()));
                assert_eq!(stat_next, !closes, "{header} step {step}: {seen:?}");
            }
        }
    }

    #[test]
    fn mkdir_and_rename_obey_the_path_rules_for_both_names() {
        let table: [(&str, Result<&str, &str>); 11] = [
            (
                r#"{"op":"mkdir","path":"d/e","parents":true}"#,
                Ok(r#"MakeDir { path: "d/e", parents: true }"#),
            ),
            (
                r#"{"op":"mkdir","path":"d"}"#,
                Ok(r#"MakeDir { path: "d", parents: false }"#),
            ),
            (r#"{"op":"mkdir","path":"../x"}"#, Err("bad_path")),
            (
                r#"{"op":"mkdir","path":".unstick-partial-x"}"#,
                Err("bad_path"),
            ),
            (r#"{"op":"mkdir"}"#, Err("bad_request")),
            (
                r#"{"op":"rename","path":"a","to":"b/c\"d"}"#,
                Ok(r#"Rename { from: "a", to: "b/c\"d" }"#),
            ),
            (r#"{"op":"rename","path":"a","to":"../b"}"#, Err("bad_path")),
            (
                r#"{"op":"rename","path":"a","to":"/etc/passwd"}"#,
                Err("bad_path"),
            ),
            (
                r#"{"op":"rename","path":"a","to":"d/.unstick-tmp-1"}"#,
                Err("bad_path"),
            ),
            (r#"{"op":"rename","path":"../a","to":"b"}"#, Err("bad_path")),
            (r#"{"op":"rename","path":"a"}"#, Err("bad_request")),
        ];
        for (header, expected) in table {
            for step in [1, 5, 4096] {
                let (seen, sent) = serve(OPEN, &frame(header, b""), step);
                match expected {
                    Ok(action) => {
                        assert_eq!(seen[0], Seen::Acted(action.into()), "{header}");
                        let reply = if header.contains("mkdir") {
                            r#"{"op":"made","total_size":0}"#
                        } else {
                            r#"{"op":"renamed","total_size":0}"#
                        };
                        assert_eq!(sent, frame(reply, b""), "{header}");
                    }
                    Err(code) => {
                        assert_eq!(seen[0], Seen::Refused(code, false), "{header} step {step}");
                        assert!(
                            !seen.iter().any(|s| matches!(s, Seen::Acted(_))),
                            "{header}"
                        );
                    }
                }
            }
        }
        // The new name's digest is checked like the path's.
        let hex = digest_of(Algorithms::XXH3, b"b.txt")
            .get(Algorithm::Xxh3)
            .unwrap()
            .to_hex();
        let good = std::format!(
            r#"{{"op":"rename","path":"a","to":"b.txt","to_xxh3":"{}"}}"#,
            hex.as_str()
        );
        let (seen, _) = serve(OPEN, &frame(&good, b""), 4);
        assert_eq!(
            seen[0],
            Seen::Acted(r#"Rename { from: "a", to: "b.txt" }"#.into())
        );
        let flipped = good.replace("b.txt\"", "b.tzt\"");
        let (seen, _) = serve(OPEN, &frame(&flipped, b""), 4);
        assert_eq!(seen[0], Seen::Refused("checksum_mismatch", false));
        // A host that keeps no directories refuses, and the connection goes on.
        let mut session = FileServerSession::<1024>::new(OPEN);
        let mut wire = frame(r#"{"op":"mkdir","path":"d"}"#, b"");
        wire.extend(frame(r#"{"op":"stat","path":"next"}"#, b""));
        let (used, _) = session.handle_input(NOW, &wire);
        assert!(matches!(
            session.poll_action(),
            Some(FileAction::MakeDir { .. })
        ));
        let refusal = Refusal::new(ErrorCode::BadRequest, "this store keeps no directories");
        session.handle_done(Err(refusal)).unwrap();
        let mut out = [0u8; 512];
        while session.poll_transmit(&mut out).is_some() {}
        session.handle_input(NOW, &wire[used..]);
        assert_eq!(
            session.poll_action(),
            Some(FileAction::Stat { path: "next" })
        );
    }

    #[test]
    fn a_path_that_disagrees_with_its_digest_is_refused_before_any_action() {
        let hex = digest_of(Algorithms::XXH3, b"a.txt")
            .get(Algorithm::Xxh3)
            .unwrap()
            .to_hex();
        let good = std::format!(
            r#"{{"op":"delete","path":"a.txt","path_xxh3":"{}"}}"#,
            hex.as_str()
        );
        let (seen, _) = serve(OPEN, &frame(&good, b""), 4);
        assert_eq!(seen[0], Seen::Acted("Delete { path: \"a.txt\" }".into()));
        // One bit flipped in the path on the way: `a.txt` arrives as `a.tzt`.
        let flipped = good.replace("a.txt", "a.tzt");
        let (seen, _) = serve(OPEN, &frame(&flipped, b""), 4);
        assert_eq!(seen[0], Seen::Refused("checksum_mismatch", false));
        assert!(!seen.iter().any(|s| matches!(s, Seen::Acted(_))));
        let upload = std::format!(
            r#"{{"op":"put","path":"a.tzt","path_xxh3":"{}","total_size":1}}"#,
            hex.as_str()
        );
        let (seen, _) = serve(OPEN, &frame(&upload, b"x"), 4);
        assert_eq!(seen[0], Seen::Refused("checksum_mismatch", true));
    }

    #[test]
    #[cfg(feature = "host-names")]
    fn windows_name_rules_refuse_device_names_and_streams_as_bad_paths() {
        for header in [
            r#"{"op":"stat","path":"d/nul.txt","total_size":0}"#,
            r#"{"op":"get","path":"file:stream","total_size":0}"#,
            r#"{"op":"ls","path":"CON/","total_size":0}"#,
        ] {
            let (seen, _) = serve_with(
                FileServerSession::new(OPEN).with_name_rules(NameRules::Windows),
                &frame(header, b""),
                5,
            );
            assert_eq!(seen[0], Seen::Refused("bad_path", false), "{header}");
            // The portable rules take them.
            let (seen, _) = serve(OPEN, &frame(header, b""), 5);
            assert!(matches!(seen[0], Seen::Acted(_)), "{header}: {:?}", seen[0]);
        }
    }

    #[test]
    fn a_bad_member_of_an_unauthenticated_request_meets_the_token_check_first() {
        let rules = FileRules {
            token: Some("s3cret"),
            ..OPEN
        };
        let (seen, _) = serve(rules, &frame(r#"{"op":"stat","path":1}"#, b""), 3);
        assert_eq!(seen[0], Seen::Refused("unauthorized", true));
        // A seed upload's other members are not read at all.
        let (seen, _) = serve(
            OPEN,
            &frame(r#"{"filename":"a","offset":"x","filesize":1}"#, b"z"),
            3,
        );
        assert_eq!(
            seen[0],
            Seen::Acted("Stage { path: \"a\", kind: Temporary }".into())
        );
    }

    #[test]
    fn tokens_are_checked_first_and_a_wrong_one_closes() {
        let rules = FileRules {
            token: Some("s3cret"),
            ..OPEN
        };
        for (header, body, closes) in [
            (r#"{"op":"stat","path":"a"}"#, &b""[..], true),
            (r#"{"op":"stat","path":"a","token":"s3cre"}"#, b"", true),
            (
                r#"{"op":"put","path":"a","token":"x","total_size":3}"#,
                b"abc",
                true,
            ),
            (r#"{"filename":"a","filesize":3}"#, b"abc", true),
        ] {
            let (seen, _) = serve(rules, &frame(header, body), 5);
            assert_eq!(seen[0], Seen::Refused("unauthorized", closes), "{header}");
        }
        let (seen, _) = serve(
            rules,
            &frame(r#"{"op":"stat","path":"a","token":"s3cret"}"#, b""),
            5,
        );
        assert_eq!(seen[0], Seen::Acted("Stat { path: \"a\" }".into()));
    }

    #[test]
    fn escaped_members_are_unescaped_into_the_session_and_a_refused_path_is_not_kept() {
        let rules = FileRules {
            token: Some("s\"3"),
            ..OPEN
        };
        // A token, a path and a listed directory, each with escapes the decoder keeps.
        let (seen, _) = serve(
            rules,
            &frame(r#"{"op":"stat","path":"a\"b\u00e9","token":"s\"3"}"#, b""),
            5,
        );
        assert_eq!(seen[0], Seen::Acted(r#"Stat { path: "a\"bé" }"#.into()));
        let (seen, _) = serve(OPEN, &frame(r#"{"op":"ls","path":"d\"/"}"#, b""), 5);
        assert_eq!(seen[0], Seen::Acted(r#"List { path: Some("d\"") }"#.into()));
        let (seen, _) = serve(OPEN, &frame(r#"{"op":"ls","path":"./"}"#, b""), 5);
        assert_eq!(seen[0], Seen::Acted("List { path: None }".into()));
        // A path one byte too long for the session is refused as too long.
        let long = std::format!(
            r#"{{"op":"stat","path":"{}x"}}"#,
            "d/".repeat(MAX_PATH_LEN / 2)
        );
        let mut session = FileServerSession::<8192>::new(OPEN);
        session.handle_input(NOW, &frame(&long, b""));
        assert_eq!(session.path(), "");
        let refusal = refusal_of(&mut session);
        assert_eq!((refusal.code, refusal.closes), (ErrorCode::BadPath, false));
        // A refused path leaves nothing behind for the host's log.
        let mut session = FileServerSession::<1024>::new(OPEN);
        session.handle_input(NOW, &frame(r#"{"op":"stat","path":"a/../b\n"}"#, b""));
        assert_eq!(session.path(), "");
        assert_eq!(refusal_of(&mut session).code, ErrorCode::BadPath);
    }

    #[test]
    fn a_path_as_long_as_the_header_allows_fits_a_session_whose_path_room_is_the_header_cap() {
        let path = "p".repeat(256 - r#"{"op":"stat","path":""}"#.len());
        let header = std::format!(r#"{{"op":"stat","path":"{path}"}}"#);
        assert_eq!(header.len(), 256);
        let mut session = FileServerSession::<256, 256>::new(OPEN);
        session.handle_input(NOW, &frame(&header, b""));
        assert_eq!(
            session.poll_action(),
            Some(FileAction::Stat { path: &path })
        );
    }

    #[test]
    fn a_put_is_staged_checked_against_its_trailer_and_committed_with_golden_replies() {
        let body = b"hello world";
        let digest = digest_of(Algorithms::XXH3, body)
            .get(Algorithm::Xxh3)
            .unwrap();
        let hex = digest.to_hex();
        let mut wire = frame(
            r#"{"op":"put","path":"d/f.txt","algorithm":"xxh3","total_size":11}"#,
            body,
        );
        let good = std::format!(r#"{{"op":"done","file_xxh3":"{}"}}"#, hex.as_str());
        wire.extend(frame(&good, b""));
        for step in [1, 3, 64, 4096] {
            let (seen, sent) = serve(OPEN, &wire, step);
            assert_eq!(
                seen,
                [
                    Seen::Acted("Stage { path: \"d/f.txt\", kind: Fresh }".into()),
                    Seen::Acted(
                        "Commit { path: \"d/f.txt\", keep: FileAttributes { mode: None, mtime: None } }".into(),
                    ),
                    Seen::Closed
                ],
                "step {step}"
            );
            let reply = std::format!(
                r#"{{"op":"stored","file_xxh3":"{}","size":11,"total_size":0}}"#,
                hex.as_str()
            );
            assert_eq!(sent, frame(&reply, b""));
        }
        // A trailer that disagrees commits nothing; the connection goes on.
        let mut wire = frame(r#"{"op":"put","path":"f","total_size":11}"#, body);
        wire.extend(frame(
            r#"{"op":"done","file_xxh3":"00000000000000000000000000000000"}"#,
            b"",
        ));
        let (seen, _) = serve(OPEN, &wire, 7);
        assert_eq!(seen[1], Seen::Refused("checksum_mismatch", false));
        assert!(
            !seen
                .iter()
                .any(|s| matches!(s, Seen::Acted(a) if a.starts_with("Commit")))
        );
        // Too large: refused from the head, before staging.
        let wire = frame(
            r#"{"op":"put","path":"f","offset":95,"total_size":11}"#,
            body,
        );
        let (seen, _) = serve(OPEN, &wire, 7);
        assert_eq!(seen[0], Seen::Refused("too_large", true));
        let wire = frame(r#"{"op":"put","path":"f","total_size":101}"#, &[0; 101]);
        let (seen, _) = serve(OPEN, &wire, 7);
        assert_eq!(seen[0], Seen::Refused("too_large", true));
    }

    #[test]
    fn a_trailer_without_its_digest_is_refused_and_a_broken_one_keeps_the_partial() {
        let put = frame(r#"{"op":"put","path":"f","total_size":5}"#, b"hello");
        // No digest: refused once the trailer's frame has ended, nothing committed, and the
        // stream stays in step.
        let mut wire = put.clone();
        wire.extend(frame(r#"{"op":"done"}"#, b""));
        wire.extend(frame(r#"{"op":"stat","path":"next"}"#, b""));
        for step in [1, 4, 4096] {
            let (seen, _) = serve(OPEN, &wire, step);
            assert_eq!(
                seen,
                [
                    Seen::Acted("Stage { path: \"f\", kind: Fresh }".into()),
                    Seen::Refused("bad_request", false),
                    Seen::Acted("Stat { path: \"next\" }".into()),
                    Seen::Closed
                ],
                "step {step}"
            );
        }
        // A trailer that is no frame (a negative length): the whole body is staged, so it is
        // kept for a resume before the refusal closes the connection.
        let mut wire = put;
        wire.extend([0xff; 4]);
        for step in [1, 4096] {
            let (seen, _) = serve(OPEN, &wire, step);
            assert_eq!(
                seen,
                [
                    Seen::Acted("Stage { path: \"f\", kind: Fresh }".into()),
                    Seen::Acted("KeepPartial".into()),
                    Seen::Refused("bad_frame", true),
                    Seen::Closed
                ],
                "step {step}"
            );
        }
    }

    #[test]
    fn a_torn_put_is_kept_for_resume_and_a_seed_upload_needs_no_trailer() {
        let wire = frame(r#"{"op":"put","path":"f","total_size":11}"#, b"hello");
        let (seen, _) = serve(OPEN, &wire, 4);
        assert_eq!(seen.last(), Some(&Seen::Closed));
        assert!(seen.contains(&Seen::Acted("KeepPartial".into())));
        let seed = HeaderFrameEncoder::new(Profile::I32_LE).checksum(Some(Algorithm::Md5));
        #[derive(serde::Serialize)]
        struct SeedHead<'a> {
            filepath: &'a str,
            filename: &'a str,
        }
        let mut buf = [0u8; 256];
        let head = SeedHead {
            filepath: "C:\\x",
            filename: "config",
        };
        let n = seed.encode_frame(&head, b"12345", &mut buf).unwrap();
        let (seen, sent) = serve(OPEN, &buf[..n], 3);
        assert_eq!(
            seen,
            [
                Seen::Acted("Stage { path: \"config\", kind: Temporary }".into()),
                Seen::Acted(
                    "Commit { path: \"config\", keep: FileAttributes { mode: None, mtime: None } }"
                        .into(),
                ),
                Seen::Closed
            ]
        );
        assert_eq!(sent, frame(r#"{"op":"stored","total_size":0}"#, b""));
        // A seed upload whose body fails its MD5 is refused; nothing is committed.
        buf[n - 1] ^= 1;
        let (seen, _) = serve(OPEN, &buf[..n], 3);
        assert_eq!(seen[1], Seen::Refused("checksum_mismatch", false));
    }

    #[test]
    fn a_silent_client_is_timed_out_between_requests_and_a_torn_upload_is_kept() {
        let ms = Instant::from_millis;
        let rules = FileRules {
            idle_timeout: Duration::from_secs(10),
            ..OPEN
        };
        // Between requests: told why, and closed.
        let mut session = FileServerSession::<1024>::new(rules);
        assert_eq!(session.poll_timeout(ms(1_000)), Some(ms(11_000)));
        session.handle_timeout(ms(10_999));
        assert_eq!(session.poll_action(), None);
        session.handle_timeout(ms(11_000));
        let refusal = refusal_of(&mut session);
        assert_eq!(
            (refusal.code, refusal.closes),
            (ErrorCode::IdleTimeout, true)
        );
        assert!(refusal.message.contains("no request within 10 s"));
        assert_eq!(session.poll_action(), Some(FileAction::Close));
        // Mid-upload: every byte restarts the wait, the host's turn does not count, and a
        // silence keeps what came for a resume.
        let mut session = FileServerSession::<1024>::new(rules);
        let put = frame(
            r#"{"op":"put","path":"f","algorithm":"xxh3","total_size":10}"#,
            b"01234",
        );
        let (used, _) = session.handle_input(ms(0), &put);
        assert!(matches!(
            session.poll_action(),
            Some(FileAction::Stage { .. })
        ));
        assert_eq!(session.poll_timeout(ms(50_000)), None, "the host's turn");
        session.handle_staged(Ok(Staged::Ready { len: 0 })).unwrap();
        assert_eq!(session.poll_timeout(ms(60_000)), Some(ms(70_000)));
        let (_, body) = session.handle_input(ms(65_000), &put[used..]);
        assert_eq!(body, Some(&b"01234"[..]));
        assert_eq!(session.poll_timeout(ms(65_000)), Some(ms(75_000)));
        session.handle_timeout(ms(75_000));
        assert_eq!(session.poll_action(), Some(FileAction::KeepPartial));
        session.handle_done(Ok(())).unwrap();
        assert_eq!(session.poll_action(), Some(FileAction::Close));
    }

    #[test]
    fn a_request_without_a_body_is_acted_on_without_another_call() {
        let mut session = FileServerSession::<1024>::new(OPEN);
        let mut wire = frame(r#"{"op":"stat","path":"a"}"#, b"");
        wire.extend(frame(r#"{"op":"ls"}"#, b""));
        let (used, _) = session.handle_input(NOW, &wire);
        assert_eq!(session.poll_action(), Some(FileAction::Stat { path: "a" }));
        session
            .handle_stat(Ok(StatFound {
                entry: None,
                partial_size: 0,
            }))
            .unwrap();
        let mut out = [0u8; 512];
        while session.poll_transmit(&mut out).is_some() {}
        let (rest, _) = session.handle_input(NOW, &wire[used..]);
        assert_eq!(used + rest, wire.len());
        assert_eq!(session.poll_action(), Some(FileAction::List { path: None }));
        // An empty seed upload is whole once staged: nothing more need come.
        let mut session = FileServerSession::<1024>::new(OPEN);
        let seed = frame(r#"{"filename":"e","filesize":0}"#, b"");
        session.handle_input(NOW, &seed);
        assert!(matches!(
            session.poll_action(),
            Some(FileAction::Stage { .. })
        ));
        session.handle_staged(Ok(Staged::Ready { len: 0 })).unwrap();
        assert!(matches!(
            session.poll_action(),
            Some(FileAction::Commit { .. })
        ));
    }
}
