//! The file server: framed requests served one at a time from the shared lobby, atomic
//! verified commits.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use embedded_io_adapters::std::FromStd;
use serde::Serialize;
use unstick_core::blocking::{FrameReader, write_frame, write_frame_from};
use unstick_core::{
    Algorithm, Algorithms, BodyHasher, Checksum, DecodeError, Event, FrameDecoder, FrameInfo,
    Profile, ReadError, WriteError,
};

use super::name::{PathError, RemotePath, escape_for_terminal, name_text};
use super::staging::{PartialUpload, Staging};
use super::transfer::{HashingSource, NoProgress, TRANSFER_BUFFER, hash_prefix};
use super::tree::{Dir, EntryKind, file_meta, partial_name};
use super::wire::{
    Ack, DigestTrailer, EntryReply, FileHead, FileOp, Request, RequestHead, StatReply,
};
use crate::server::foreign::{self, Recognition};
use crate::server::lobby::{self, framed_request_ready};
use crate::server::{
    Admission, ClientKind, Connection, ErrorCode, GREETING_PAUSE, HEADER_CAP, Handback,
    LobbyConfig, Next, PLAIN_ENCODER, Refusal, RequestStream, Service, Shutdown, error_frame,
    send_error, token_matches,
};

/// How the file server runs.
#[derive(Clone, Debug)]
pub struct FileServerConfig {
    /// Directory served; created if missing.
    pub root: PathBuf,
    /// Largest file accepted, in bytes.
    pub max_file_size: u64,
    /// How connections wait and how many requests are served at once (`max_active`; more wait
    /// up to a second for a slot, then get a `busy` error). While a request is served, a connection idle (no byte
    /// read or written) for `idle_timeout` is dropped.
    pub lobby: LobbyConfig,
    /// Token every request must carry; `None` for none (loopback only).
    pub token: Option<String>,
    /// Size of each connection's socket and file buffers.
    pub buffer_size: usize,
}

impl Default for FileServerConfig {
    fn default() -> Self {
        FileServerConfig {
            root: PathBuf::from("unstick-files"),
            max_file_size: 1 << 40,
            lobby: LobbyConfig {
                idle_timeout: Duration::from_secs(60),
                ..LobbyConfig::default()
            },
            token: None,
            buffer_size: TRANSFER_BUFFER,
        }
    }
}

/// The file server. Cheap to clone; clones share the root handle.
#[derive(Clone, Debug)]
pub struct FileServer {
    root: Arc<Dir>,
    config: Arc<FileServerConfig>,
}

impl Refusal {
    /// Maps a file-system error met while handling `what`. The system's own words are added
    /// where the code alone does not say enough (which limit, which failure).
    pub(super) fn storage(e: &io::Error, what: &str) -> Self {
        let (code, hint) = match e.raw_os_error() {
            Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG) => {
                let hint = "the server is out of space (or over a file-size limit); the partial data was removed";
                return Refusal::new(ErrorCode::NoSpace, format!("{what}: {hint} ({e})"));
            }
            Some(libc::ELOOP) => (
                ErrorCode::BadPath,
                "a component is a symbolic link; links are never followed",
            ),
            Some(libc::ENOTDIR) => (
                ErrorCode::BadPath,
                "a component is not a directory (or is a symbolic link, which is never followed)",
            ),
            Some(libc::EISDIR) => (ErrorCode::BadPath, "the name is a directory"),
            Some(libc::ENOTEMPTY | libc::EEXIST) => (
                ErrorCode::BadRequest,
                "the directory is not empty (interrupted uploads held for resume count too; delete them by name)",
            ),
            _ if e.kind() == io::ErrorKind::InvalidInput => (
                ErrorCode::BadPath,
                "the name is not a regular file (a FIFO, socket or device)",
            ),
            _ if e.kind() == io::ErrorKind::NotFound => {
                (ErrorCode::NotFound, "no such file or directory")
            }
            _ => {
                let hint = "the server could not access its storage";
                return Refusal::new(ErrorCode::StorageError, format!("{what}: {hint} ({e})"));
            }
        };
        Refusal::new(code, format!("{what}: {hint}"))
    }
}

type Reader<'b> = FrameReader<'b, FromStd<RequestStream>, HEADER_CAP>;

impl FileServer {
    /// Opens (creating it if needed) the root directory. An empty token is refused.
    pub fn new(config: FileServerConfig) -> io::Result<FileServer> {
        if config.token.as_deref() == Some("") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the token is empty; choose a long random secret",
            ));
        }
        let root = Dir::open_root(&config.root).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot open the root directory {}: {e}",
                    config.root.display()
                ),
            )
        })?;
        match root.remove_stale_temporaries() {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                server = "ftp",
                removed = n,
                "removed temporary files left by an earlier crash"
            ),
            Err(e) => tracing::warn!(
                server = "ftp",
                error = %e,
                "could not clean up old temporary files"
            ),
        }
        Ok(FileServer {
            root: Arc::new(root),
            config: Arc::new(config),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &FileServerConfig {
        &self.config
    }

    /// Serves `listener`'s connections until the process ends.
    pub fn serve(&self, listener: TcpListener) -> io::Result<()> {
        self.serve_until(listener, &Shutdown::new())
    }

    /// Serves `listener`'s connections until `shutdown` is requested; then stops accepting,
    /// lets the transfers in progress finish within the shutdown grace, cuts off the rest (an
    /// upload cut off is kept for resume, like any torn upload; temporary files are removed)
    /// and returns. A listener on a non-loopback address is refused unless a token is set.
    pub fn serve_until(&self, listener: TcpListener, shutdown: &Shutdown) -> io::Result<()> {
        let local = listener.local_addr()?;
        if !local.ip().is_loopback() && self.config.token.is_none() {
            return Err(crate::server::insecure_listen(local));
        }
        // A file-size limit (RLIMIT_FSIZE) should fail one upload with EFBIG, not kill the
        // server with SIGXFSZ.
        // SAFETY: setting a signal to SIG_IGN installs no handler code and has no memory
        // effects.
        unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
        let config = self.config.lobby;
        lobby::serve(listener, Arc::new(self.clone()), config, shutdown)
    }

    /// Serves the request at the start of `conn.received` and hands the connection back.
    fn serve_request(&self, mut conn: Connection<ClientKind>) -> Handback<ClientKind> {
        let idle = Some(self.config.lobby.idle_timeout);
        let prepared = conn
            .stream
            .set_read_timeout(idle)
            .and_then(|()| conn.stream.set_write_timeout(idle))
            .and_then(|()| conn.stream.try_clone());
        let Ok(socket) = prepared else {
            return Handback::Close(conn);
        };
        let received = std::mem::take(&mut conn.received);
        let input = FromStd::new(RequestStream::new(received, socket, None));
        let mut buf = vec![0u8; self.config.buffer_size.max(64 * 1024)];
        let profile = Profile::SEED.with_max_body_len(self.config.max_file_size);
        let decoder = FrameDecoder::<HEADER_CAP>::header_frames(profile);
        let mut reader = FrameReader::new(input, decoder, &mut buf);
        let mut session = Session {
            server: self,
            peer: conn.peer,
            out: Vec::new(),
        };
        let close = match session.next_request(&mut reader) {
            Ok(Next::Continue) => false,
            Ok(Next::Close) => true,
            Err(refusal) => {
                refusal.log("ftp", conn.peer);
                let sent = send_error(reader.get_mut(), refusal.code, &refusal.message);
                refusal.closes || sent.is_err()
            }
        };
        conn.requests += 1;
        let mut rest = reader.buffered().to_vec();
        rest.extend_from_slice(reader.get_mut().inner_mut().unread());
        conn.received = rest;
        if close {
            Handback::Close(conn)
        } else {
            Handback::Wait(conn)
        }
    }
}

impl Service for FileServer {
    type Mode = ClientKind;

    const NAME: &'static str = "ftp";

    fn admit(&self, client: ClientKind, received: &[u8], paused: bool) -> Admission<ClientKind> {
        if client == ClientKind::Unknown {
            match foreign::recognise(received, paused) {
                Recognition::Foreign(protocol) => {
                    return Admission::Refuse {
                        code: ErrorCode::ForeignProtocol,
                        reason: format!("the client opened with {protocol}, not the file protocol"),
                        reply: foreign::reply(protocol, "file"),
                    };
                }
                Recognition::Undecided => {
                    return Admission::Wait {
                        pause: Some(GREETING_PAUSE),
                    };
                }
                Recognition::NotForeign => {}
            }
        }
        if framed_request_ready(received, HEADER_CAP) {
            Admission::Serve(ClientKind::Framed)
        } else {
            Admission::Wait { pause: None }
        }
    }

    fn serve(&self, conn: Connection<ClientKind>) -> Handback<ClientKind> {
        self.serve_request(conn)
    }

    fn busy_reply(&self, _client: ClientKind, message: &str) -> Vec<u8> {
        error_frame(ErrorCode::Busy, message)
    }

    fn timeout_reply(&self, _client: ClientKind, _received: &[u8], message: &str) -> Vec<u8> {
        error_frame(ErrorCode::IdleTimeout, message)
    }
}

/// One request's state.
struct Session<'s> {
    server: &'s FileServer,
    /// The client's address, for the log.
    peer: SocketAddr,
    /// Buffer for outgoing frames (downloads), allocated on first use.
    out: Vec<u8>,
}

fn decode_refusal(e: ReadError<io::Error>) -> Result<Next, Refusal> {
    match e {
        ReadError::Io(_) => Ok(Next::Close),
        ReadError::Decode(DecodeError::UnexpectedEof { .. }) => Ok(Next::Close),
        ReadError::Decode(e @ DecodeError::BodyTooLarge { .. }) => {
            Err(Refusal::new(ErrorCode::TooLarge, e.to_string()).closing())
        }
        ReadError::Decode(e) => Err(Refusal::new(ErrorCode::BadFrame, e.to_string()).closing()),
        other => Err(Refusal::new(ErrorCode::BadFrame, other.to_string()).closing()),
    }
}

/// Reads the end of a frame that has no body.
fn expect_end(reader: &mut Reader<'_>) -> Result<(), Refusal> {
    match reader.next_event() {
        Ok(Some(Event::End(_))) => Ok(()),
        Ok(_) => {
            Err(Refusal::new(ErrorCode::BadFrame, "this request must have an empty body").closing())
        }
        Err(e) => match decode_refusal(e) {
            Ok(_) => {
                Err(Refusal::new(ErrorCode::Incomplete, "connection ended mid-frame").closing())
            }
            Err(r) => Err(r),
        },
    }
}

fn reply<H: Serialize>(reader: &mut Reader<'_>, header: &H) -> Result<(), Refusal> {
    let mut head = [0u8; 4096];
    write_frame(reader.get_mut(), &PLAIN_ENCODER, header, &[], &mut head)
        .map_err(|_| Refusal::new(ErrorCode::Incomplete, "could not send the reply").closing())
}

fn parse_path(text: Option<&str>) -> Result<RemotePath, Refusal> {
    let text =
        text.ok_or_else(|| Refusal::new(ErrorCode::BadRequest, "the request has no `path`"))?;
    RemotePath::parse(text).map_err(|e| bad_path(text, e))
}

/// Refuses `text` as a path. The text is echoed escaped: it may hold control characters.
fn bad_path(text: &str, e: PathError) -> Refusal {
    Refusal::new(
        ErrorCode::BadPath,
        format!("`{}`: {e}", escape_for_terminal(text)),
    )
}

impl Session<'_> {
    fn config(&self) -> &FileServerConfig {
        &self.server.config
    }

    fn next_request(&mut self, reader: &mut Reader<'_>) -> Result<Next, Refusal> {
        let info = match reader.next_event() {
            Ok(None) => return Ok(Next::Close),
            Ok(Some(Event::Head(info))) => info,
            Ok(Some(_)) => {
                return Err(
                    Refusal::new(ErrorCode::BadFrame, "expected a request header").closing(),
                );
            }
            Err(e) => return decode_refusal(e),
        };
        let has_body = info.body_len > 0;
        let head: RequestHead<String> = match reader.decoder().header() {
            Ok(head) => head,
            Err(e) => {
                let r = Refusal::new(ErrorCode::BadRequest, format!("{e}"));
                return Err(if has_body { r.closing() } else { r });
            }
        };
        let refuse_with_body = |r: Refusal| if has_body { r.closing() } else { r };
        if let Some(expected) = &self.config().token {
            let presented = head.token.as_deref().unwrap_or("");
            if !token_matches(expected, presented) {
                return Err(refuse_with_body(Refusal::new(
                    ErrorCode::Unauthorized,
                    "missing or wrong token; pass the server's token with --token or UNSTICK_TOKEN",
                )));
            }
        }
        let op = head
            .op
            .as_deref()
            .map(|text| (text, text.parse::<FileOp>()));
        let request_op = match (op, head.filename.as_deref()) {
            (None, Some(filename)) => return self.legacy_upload(reader, &info, filename),
            (
                Some((
                    _,
                    Ok(
                        op @ (FileOp::Put
                        | FileOp::Get
                        | FileOp::Ls
                        | FileOp::Stat
                        | FileOp::Delete),
                    ),
                )),
                _,
            ) => op,
            (Some((op, _)), _) => {
                return Err(refuse_with_body(Refusal::new(
                    ErrorCode::BadRequest,
                    format!(
                        "unknown op `{}`; expected put, get, ls, stat or delete",
                        escape_for_terminal(op)
                    ),
                )));
            }
            (None, None) => {
                return Err(refuse_with_body(Refusal::new(
                    ErrorCode::BadRequest,
                    "the header has neither `op` nor the seed's `filename`",
                )));
            }
        };
        let request: Request<String> = reader
            .decoder()
            .header()
            .map_err(|e| refuse_with_body(Refusal::new(ErrorCode::BadRequest, format!("{e}"))))?;
        if request_op == FileOp::Put {
            return self.put(reader, &info, &request);
        }
        if has_body {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                format!("`{request_op}` takes no body"),
            )
            .closing());
        }
        expect_end(reader)?;
        match request_op {
            FileOp::Get => self.get(reader, &request),
            FileOp::Ls => self.list(reader, &request),
            FileOp::Stat => self.stat(reader, &request),
            _ => self.delete(reader, &request),
        }
    }

    /// The seed's upload: `{"filepath","filename","filesize"}` + body, no trailer; verified by
    /// the header's `md5` when there is one. `filepath` is the client's own folder: ignored.
    fn legacy_upload(
        &mut self,
        reader: &mut Reader<'_>,
        info: &FrameInfo,
        filename: &str,
    ) -> Result<Next, Refusal> {
        let path = parse_path(Some(filename)).map_err(Refusal::closing)?;
        let dir = self.upload_dir(&path)?;
        let mut staging =
            Staging::temporary(&dir).map_err(|e| Refusal::storage(&e, path.as_str()).closing())?;
        let mut hasher = BodyHasher::new(Algorithms::NONE);
        match receive_body(reader, &mut staging.file, &mut hasher) {
            BodyOutcome::Complete => {}
            BodyOutcome::Torn => return Ok(Next::Close),
            BodyOutcome::Mismatch(e) => {
                return Err(Refusal::new(
                    ErrorCode::ChecksumMismatch,
                    format!("{}: {e}; the previous file is untouched", path.as_str()),
                ));
            }
            BodyOutcome::StorageFailed(e) => {
                return Err(Refusal::storage(&e, path.as_str()).closing());
            }
        }
        staging
            .commit(path.file_name())
            .map_err(|e| Refusal::storage(&e, path.as_str()))?;
        let md5 = info.md5.map(|d| Checksum::Md5(d).to_hex());
        tracing::info!(
            server = "ftp",
            peer = %self.peer,
            path = path.as_str(),
            size = info.body_len,
            md5 = md5.as_ref().map(|h| h.as_str()),
            verified = md5.is_some(),
            seed_upload = true,
            "file stored"
        );
        // The seed's client does not read a reply; ours is for clients that do.
        let _ = reply(
            reader,
            &Ack {
                op: FileOp::Stored,
                count: None,
            },
        );
        Ok(Next::Continue)
    }

    fn put(
        &mut self,
        reader: &mut Reader<'_>,
        info: &FrameInfo,
        request: &Request<String>,
    ) -> Result<Next, Refusal> {
        let path = parse_path(request.path.as_deref()).map_err(Refusal::closing)?;
        let algorithm = request.algorithm().ok_or_else(|| {
            Refusal::new(
                ErrorCode::BadRequest,
                "`algorithm` must be \"xxh3\" or \"md5\"",
            )
            .closing()
        })?;
        let offset = request.offset.unwrap_or(0);
        self.check_size(&path, offset, info.body_len)?;
        let name = path.file_name();
        let dir = self.upload_dir(&path)?;
        let (mut staging, mut hasher) = self.stage_put(&dir, &path, request, algorithm, offset)?;
        match receive_body(reader, &mut staging.file, &mut hasher) {
            BodyOutcome::Complete => {}
            BodyOutcome::Torn => {
                staging.keep_for_resume();
                return Ok(Next::Close);
            }
            BodyOutcome::Mismatch(e) => {
                return Err(Refusal::new(
                    ErrorCode::ChecksumMismatch,
                    format!("{}: {e}; the previous file is untouched", path.as_str()),
                )
                .closing());
            }
            BodyOutcome::StorageFailed(e) => {
                return Err(Refusal::storage(&e, path.as_str()).closing());
            }
        }
        let Some(claimed) = read_trailer(reader, &mut staging, algorithm)? else {
            return Ok(Next::Close);
        };
        let actual = hasher.finish().get(algorithm);
        if actual != Some(claimed) {
            return Err(Refusal::new(
                ErrorCode::ChecksumMismatch,
                format!(
                    "{}: the received data does not match the client's {} digest; nothing was committed and the previous file is untouched",
                    path.as_str(),
                    algorithm.member()
                ),
            ));
        }
        let size = staging.file.stream_position().unwrap_or(0);
        staging
            .commit(name)
            .map_err(|e| Refusal::storage(&e, path.as_str()))?;
        let hex = claimed.to_hex();
        log_digest(
            self.peer,
            "file stored",
            path.as_str(),
            size,
            offset,
            algorithm,
            hex.as_str(),
        );
        reply(
            reader,
            &DigestTrailer::new(FileOp::Stored, algorithm, hex.as_str(), Some(size)),
        )?;
        Ok(Next::Continue)
    }

    /// The directory an upload of `path` lands in, missing parents created. A name that is a
    /// directory is refused before the body is read.
    fn upload_dir(&self, path: &RemotePath) -> Result<Dir, Refusal> {
        let dir = self
            .server
            .root
            .walk_to_parent(path, true)
            .map_err(|e| Refusal::storage(&e, path.as_str()).closing())?;
        if let Ok(Some(meta)) = dir.stat(path.file_name()) {
            if meta.kind == EntryKind::Dir {
                return Err(Refusal::new(
                    ErrorCode::BadPath,
                    format!("{}: is a directory; give a file name", path.as_str()),
                )
                .closing());
            }
        }
        Ok(dir)
    }

    /// Refuses, before any file is opened, an upload that would end above the size limit.
    fn check_size(&self, path: &RemotePath, offset: u64, body_len: u64) -> Result<(), Refusal> {
        let max = self.config().max_file_size;
        match offset.checked_add(body_len) {
            Some(total) if total <= max => Ok(()),
            _ => Err(Refusal::new(
                ErrorCode::TooLarge,
                format!(
                    "{}: the file would exceed the server's limit of {max} bytes",
                    path.as_str()
                ),
            )
            .closing()),
        }
    }

    /// Where a put's body goes, and the hasher already over what is in place: a fresh
    /// staging file at offset 0, else the name's partial upload after checking its prefix.
    fn stage_put<'d>(
        &self,
        dir: &'d Dir,
        path: &RemotePath,
        request: &Request<String>,
        algorithm: Algorithm,
        offset: u64,
    ) -> Result<(Staging<'d>, BodyHasher), Refusal> {
        let name = path.file_name();
        if offset == 0 {
            let staging = Staging::fresh(dir, name)
                .map_err(|e| Refusal::storage(&e, path.as_str()).closing())?;
            return Ok((staging, BodyHasher::new(Algorithms::only(algorithm))));
        }
        let prefix = request.prefix_digest(algorithm).ok_or_else(|| {
            Refusal::new(
                ErrorCode::BadRequest,
                format!("a resumed put needs `prefix_{}`", algorithm.member()),
            )
            .closing()
        })?;
        let buffer = self.config().buffer_size;
        Staging::resume(dir, name, offset, algorithm, prefix, buffer).map_err(Refusal::closing)
    }

    fn get(&mut self, reader: &mut Reader<'_>, request: &Request<String>) -> Result<Next, Refusal> {
        let path = parse_path(request.path.as_deref())?;
        let algorithm = request.algorithm().ok_or_else(|| {
            Refusal::new(
                ErrorCode::BadRequest,
                "`algorithm` must be \"xxh3\" or \"md5\"",
            )
        })?;
        let dir = self
            .server
            .root
            .walk_to_parent(&path, false)
            .map_err(|e| Refusal::storage(&e, path.as_str()))?;
        let mut file = dir
            .open_file(path.file_name())
            .map_err(|e| Refusal::storage(&e, path.as_str()))?;
        let meta = file_meta(&file).map_err(|e| Refusal::storage(&e, path.as_str()))?;
        let offset = request.offset.unwrap_or(0);
        if offset > meta.size {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                format!(
                    "{}: resume offset {offset} is beyond the end of the file ({} bytes); download it again from the start",
                    path.as_str(),
                    meta.size
                ),
            ));
        }
        let buffer = self.config().buffer_size.max(64 * 1024);
        self.out.resize(buffer, 0);
        // Hash the part the client already has, so the trailer covers the whole file.
        let mut hasher = hash_prefix(&mut file, offset, algorithm, &mut self.out)
            .map_err(|e| Refusal::storage(&e, path.as_str()))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| Refusal::storage(&e, path.as_str()))?;
        let head = FileHead {
            op: FileOp::File,
            size: meta.size,
            offset,
            mtime: meta.mtime,
        };
        let mut progress = NoProgress;
        let mut source = HashingSource {
            file: &mut file,
            hasher: &mut hasher,
            progress: &mut progress,
        };
        let sent = write_frame_from(
            reader.get_mut(),
            &PLAIN_ENCODER,
            &head,
            meta.size - offset,
            &mut source,
            Algorithms::NONE,
            &mut self.out,
        );
        match sent {
            Ok(_) => {}
            // The client went away or stalled: nothing to report to it.
            Err(WriteError::Io(_)) => return Ok(Next::Close),
            Err(e) => {
                tracing::warn!(server = "ftp", peer = %self.peer, path = path.as_str(), error = %e, "sending a file failed");
                return Ok(Next::Close);
            }
        }
        let digest = hasher.finish().get(algorithm).ok_or_else(|| {
            Refusal::new(ErrorCode::StorageError, "digest unavailable in this build")
        })?;
        let hex = digest.to_hex();
        log_digest(
            self.peer,
            "file sent",
            path.as_str(),
            meta.size,
            offset,
            algorithm,
            hex.as_str(),
        );
        reply(
            reader,
            &DigestTrailer::new(FileOp::Done, algorithm, hex.as_str(), None),
        )?;
        Ok(Next::Continue)
    }

    fn list(
        &mut self,
        reader: &mut Reader<'_>,
        request: &Request<String>,
    ) -> Result<Next, Refusal> {
        let text = request.path.as_deref().unwrap_or("");
        let path = RemotePath::parse_dir(text).map_err(|e| bad_path(text, e))?;
        let dir = self
            .server
            .root
            .walk_to_dir(path.as_ref())
            .map_err(|e| Refusal::storage(&e, text))?;
        let mut count = 0u64;
        let mut send_failed = false;
        let listed = dir.for_each_entry(|name, meta| {
            let (name, escaped) = name_text(name);
            let entry = EntryReply {
                op: FileOp::Entry,
                name: name.as_ref(),
                name_escaped: escaped.then_some(true),
                kind: meta.kind.as_str(),
                size: meta.size,
                mtime: meta.mtime,
            };
            if reply(reader, &entry).is_err() {
                send_failed = true;
                return Err(io::Error::other("client went away"));
            }
            count += 1;
            Ok(())
        });
        if send_failed {
            return Ok(Next::Close);
        }
        if let Err(e) = listed {
            // Entries may already be out: the error frame ends the listing instead of `end`.
            return Err(Refusal::storage(&e, text));
        }
        tracing::info!(server = "ftp", peer = %self.peer, path = text, entries = count, "listed");
        reply(
            reader,
            &Ack {
                op: FileOp::End,
                count: Some(count),
            },
        )?;
        Ok(Next::Continue)
    }

    fn stat(
        &mut self,
        reader: &mut Reader<'_>,
        request: &Request<String>,
    ) -> Result<Next, Refusal> {
        let path = parse_path(request.path.as_deref())?;
        let name = path.file_name();
        let (meta, partial) = match self.server.root.walk_to_parent(&path, false) {
            Ok(dir) => {
                let meta = dir
                    .stat(name)
                    .map_err(|e| Refusal::storage(&e, path.as_str()))?;
                let partial = dir
                    .stat(&partial_name(name))
                    .ok()
                    .flatten()
                    .map_or(0, |m| m.size);
                (meta, partial)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => (None, 0),
            Err(e) => return Err(Refusal::storage(&e, path.as_str())),
        };
        tracing::info!(
            server = "ftp",
            peer = %self.peer,
            path = path.as_str(),
            exists = meta.is_some(),
            "stat"
        );
        reply(
            reader,
            &StatReply {
                op: FileOp::Stat,
                exists: meta.is_some(),
                kind: meta.map(|m| m.kind.as_str()),
                size: meta.map(|m| m.size),
                mtime: meta.map(|m| m.mtime),
                partial_size: partial,
            },
        )?;
        Ok(Next::Continue)
    }

    fn delete(
        &mut self,
        reader: &mut Reader<'_>,
        request: &Request<String>,
    ) -> Result<Next, Refusal> {
        let path = parse_path(request.path.as_deref())?;
        let name = path.file_name();
        let dir = self
            .server
            .root
            .walk_to_parent(&path, false)
            .map_err(|e| Refusal::storage(&e, path.as_str()))?;
        let meta = dir
            .stat(name)
            .map_err(|e| Refusal::storage(&e, path.as_str()))?;
        if let Some(meta) = meta {
            dir.unlink(name, meta.kind == EntryKind::Dir)
                .map_err(|e| Refusal::storage(&e, path.as_str()))?;
        }
        // The partial upload of the name goes too (it is all there is of an upload that broke
        // off), unless a running upload holds it: that upload owns the name.
        match (meta, Staging::discard_idle_partial(&dir, name)) {
            (Some(_), _) | (None, PartialUpload::Removed) => {}
            (None, PartialUpload::InUse) => {
                return Err(Refusal::new(
                    ErrorCode::Busy,
                    format!(
                        "{}: an upload to this name is in progress; try again once it ends",
                        path.as_str()
                    ),
                ));
            }
            (None, PartialUpload::Absent) => {
                return Err(Refusal::new(
                    ErrorCode::NotFound,
                    format!("{}: no such file or directory", path.as_str()),
                ));
            }
        }
        let _ = dir.sync();
        tracing::info!(server = "ftp", peer = %self.peer, path = path.as_str(), "file deleted");
        reply(
            reader,
            &Ack {
                op: FileOp::Deleted,
                count: None,
            },
        )?;
        Ok(Next::Continue)
    }
}

/// Logs a transfer with its digest (one field named for the algorithm: `xxh3=` or `md5=`).
fn log_digest(
    peer: SocketAddr,
    event: &str,
    path: &str,
    size: u64,
    resumed_from: u64,
    algorithm: Algorithm,
    hex: &str,
) {
    match algorithm {
        Algorithm::Xxh3 => {
            tracing::info!(server = "ftp", peer = %peer, path, size, resumed_from, xxh3 = hex, "{event}")
        }
        Algorithm::Md5 => {
            tracing::info!(server = "ftp", peer = %peer, path, size, resumed_from, md5 = hex, "{event}")
        }
    }
}

/// Reads a put's trailer, `{"op":"done","file_<algorithm>":"<hex>"}`, and returns the client's
/// digest of the whole file; `None` when the connection ended first (the partial upload is then
/// kept for a resume).
fn read_trailer(
    reader: &mut Reader<'_>,
    staging: &mut Staging<'_>,
    algorithm: Algorithm,
) -> Result<Option<Checksum>, Refusal> {
    let trailer = match reader.next_event() {
        Ok(Some(Event::Head(t))) => t,
        Ok(_) => {
            staging.keep_for_resume();
            return Ok(None);
        }
        Err(e) => {
            staging.keep_for_resume();
            return decode_refusal(e).map(|_| None);
        }
    };
    let done: Option<DigestTrailer<String>> = reader.decoder().header().ok();
    let Some(done) = done.filter(|d| d.op == FileOp::Done && trailer.body_len == 0) else {
        return Err(Refusal::new(
            ErrorCode::BadFrame,
            "a put body must be followed by {\"op\":\"done\",\"file_xxh3\":...}",
        )
        .closing());
    };
    expect_end(reader)?;
    let claimed = done.file_digest(algorithm).ok_or_else(|| {
        Refusal::new(
            ErrorCode::BadRequest,
            format!("the trailer has no `file_{}` digest", algorithm.member()),
        )
    })?;
    Ok(Some(claimed))
}

/// How receiving a body ended.
enum BodyOutcome {
    /// Every byte arrived and was written; any digest in the header matched.
    Complete,
    /// The connection broke or went idle mid-body.
    Torn,
    /// The body does not match a digest its own header declared.
    Mismatch(DecodeError),
    /// Writing to storage failed.
    StorageFailed(io::Error),
}

/// Streams the current frame's body into `file`, hashing it, until the frame ends.
fn receive_body(reader: &mut Reader<'_>, file: &mut File, hasher: &mut BodyHasher) -> BodyOutcome {
    loop {
        match reader.next_event() {
            Ok(Some(Event::Body(chunk))) => {
                hasher.update(chunk);
                if let Err(e) = file.write_all(chunk) {
                    return BodyOutcome::StorageFailed(e);
                }
            }
            Ok(Some(Event::End(_))) => return BodyOutcome::Complete,
            Ok(_) => return BodyOutcome::Torn,
            Err(ReadError::Decode(e @ DecodeError::ChecksumMismatch { .. })) => {
                return BodyOutcome::Mismatch(e);
            }
            Err(_) => return BodyOutcome::Torn,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(root: &std::path::Path, token: Option<&str>) -> FileServerConfig {
        FileServerConfig {
            root: root.to_path_buf(),
            token: token.map(str::to_owned),
            ..FileServerConfig::default()
        }
    }

    #[test]
    fn beyond_loopback_a_token_is_required_and_must_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let empty = FileServer::new(config(dir.path(), Some(""))).unwrap_err();
        assert_eq!(empty.kind(), io::ErrorKind::InvalidInput);
        let server = FileServer::new(config(dir.path(), None)).unwrap();
        let open = TcpListener::bind("0.0.0.0:0").unwrap();
        let refused = server.serve_until(open, &Shutdown::new()).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::PermissionDenied);
        assert!(refused.to_string().contains("without a token"), "{refused}");
    }
}
