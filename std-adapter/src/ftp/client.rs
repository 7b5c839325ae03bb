//! The file client: put, get, ls, stat and delete against an unstick file server, and a legacy
//! upload to the seed's Python server.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use embedded_io_adapters::std::FromStd;
use unstick_core::blocking::{FrameReader, write_frame, write_frame_from};
use unstick_core::{
    Algorithm, Algorithms, BodyHasher, Checksum, ErrorFrame, Event, FrameDecoder,
    HeaderFrameEncoder, Profile, ReadError, SizeField, WriteError,
};

use super::name::{RemotePath, escape_escaped_name_for_terminal, escape_for_terminal};
use super::transfer::{HashingSource, Progress, TRANSFER_BUFFER, hash_prefix};
use super::tree::Create;
use super::wire::{
    Ack, DigestTrailer, EntryReply, FileHead, FileOp, ReplyHead, Request, StatReply,
};
use crate::server::{ErrorCode, FramedStream, HEADER_CAP, PLAIN_ENCODER};
use serde::de::DeserializeOwned;

/// Why a client operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// Could not connect to the server.
    Connect {
        /// Address tried.
        addr: String,
        /// Cause.
        source: io::Error,
    },
    /// The connection failed mid-operation.
    Connection(io::Error),
    /// The server refused the request.
    Server {
        /// Stable error code (see the protocol docs).
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// The server's reply did not follow the protocol.
    Protocol(String),
    /// A local file could not be read or written.
    Local {
        /// The local path.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// The downloaded data does not match the server's digest; the partial download was
    /// removed.
    DigestMismatch {
        /// Where the file would have gone.
        path: PathBuf,
    },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect { addr, source } => write!(
                f,
                "cannot connect to {addr}: {source} (is `unstick ftp serve` running there?)"
            ),
            ClientError::Connection(e) => write!(f, "connection to the server failed: {e}"),
            // The server's words are shown escaped: a hostile server cannot drive the terminal.
            ClientError::Server { code, message } => write!(
                f,
                "server refused ({}): {}",
                escape_for_terminal(code),
                escape_for_terminal(message)
            ),
            ClientError::Protocol(m) => write!(f, "unexpected reply from the server: {m}"),
            ClientError::Local { path, source } => write!(f, "{}: {source}", path.display()),
            ClientError::DigestMismatch { path } => write!(
                f,
                "{}: the downloaded data does not match the server's digest (corrupted in transit, a bad partial download, or the file changed); nothing was kept, download it again",
                path.display()
            ),
        }
    }
}

impl std::error::Error for ClientError {}

impl ClientError {
    /// The server's error code, if the server refused.
    pub fn server_code(&self) -> Option<&str> {
        match self {
            ClientError::Server { code, .. } => Some(code),
            _ => None,
        }
    }
}

fn local(path: &Path) -> impl FnOnce(io::Error) -> ClientError + '_ {
    move |source| ClientError::Local {
        path: path.to_owned(),
        source,
    }
}

/// Client options.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Token for a server that requires one.
    pub token: Option<String>,
    /// Digest algorithm for transfers (XXH3 unless the peer needs MD5).
    pub algorithm: Algorithm,
    /// Size of the socket and file buffers.
    pub buffer_size: usize,
    /// Give up on a server silent for this long.
    pub timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            token: None,
            algorithm: Algorithm::Xxh3,
            buffer_size: TRANSFER_BUFFER,
            timeout: Duration::from_secs(60),
        }
    }
}

/// What a finished upload reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PutReport {
    /// File size.
    pub size: u64,
    /// Bytes that were already on the server (resume) and not sent again.
    pub resumed_from: u64,
    /// The digest both sides agreed on.
    pub digest: Checksum,
}

/// What a finished download reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GetReport {
    /// File size.
    pub size: u64,
    /// Bytes that were already in the local partial download and not fetched again.
    pub resumed_from: u64,
    /// The digest both sides agreed on.
    pub digest: Checksum,
}

/// One entry of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteEntry {
    /// Name as the server sent it; print [`RemoteEntry::display_name`] instead.
    pub name: String,
    /// Whether `name` is in escaped form because the real name is not UTF-8 (bytes that are
    /// not UTF-8 as `\xNN`, backslashes doubled).
    pub name_escaped: bool,
    /// `"file"`, `"dir"`, `"symlink"` or `"other"`.
    pub kind: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: i64,
}

impl RemoteEntry {
    /// The name as it is safe to print: control and bidi characters escaped, so that a name
    /// chosen by someone else cannot drive the terminal.
    pub fn display_name(&self) -> String {
        if self.name_escaped {
            escape_escaped_name_for_terminal(&self.name)
        } else {
            escape_for_terminal(&self.name)
        }
    }
}

/// What `stat` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteStat {
    /// The entry, if it exists.
    pub entry: Option<RemoteEntry>,
    /// Bytes of an interrupted upload of this name the server holds for resuming.
    pub partial_size: u64,
}

/// A connection to a file server.
pub struct FileClient {
    io: FramedStream,
    options: ClientOptions,
    buf: Vec<u8>,
}

impl fmt::Debug for FileClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileClient")
            .field("peer", &self.io.inner().peer_addr().ok())
            .finish_non_exhaustive()
    }
}

fn connect_stream(addr: &str, timeout: Duration) -> Result<TcpStream, ClientError> {
    let stream = TcpStream::connect(addr).map_err(|source| ClientError::Connect {
        addr: addr.to_owned(),
        source,
    })?;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    Ok(stream)
}

fn decoder() -> FrameDecoder<HEADER_CAP> {
    FrameDecoder::header_frames(Profile::SEED)
}

fn read_failed(e: ReadError<io::Error>) -> ClientError {
    match e {
        ReadError::Io(e) => ClientError::Connection(e),
        other => ClientError::Protocol(other.to_string()),
    }
}

/// The next frame head and its op; an `error` reply becomes [`ClientError::Server`]. The
/// reply's own type is then read from `reader.decoder()`.
fn next_reply(
    reader: &mut FrameReader<'_, &mut FramedStream, HEADER_CAP>,
) -> Result<(FileOp, u64), ClientError> {
    let info = match reader.next_event().map_err(read_failed)? {
        Some(Event::Head(info)) => info,
        Some(_) => return Err(ClientError::Protocol("expected a frame header".into())),
        None => {
            return Err(ClientError::Connection(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection without replying",
            )));
        }
    };
    let ReplyHead { op } = reply_header(reader)?;
    if op == FileOp::Error {
        let refusal: ErrorFrame<String> = reply_header(reader)?;
        return Err(ClientError::Server {
            code: refusal.code,
            message: refusal.message,
        });
    }
    Ok((op, info.body_len))
}

/// The current reply's header as `T`.
fn reply_header<T: DeserializeOwned>(
    reader: &mut FrameReader<'_, &mut FramedStream, HEADER_CAP>,
) -> Result<T, ClientError> {
    reader
        .decoder()
        .header()
        .map_err(|e| ClientError::Protocol(e.to_string()))
}

/// Reads a reply of kind `op`, with no body, as `T`.
fn expect_reply<T: DeserializeOwned>(
    reader: &mut FrameReader<'_, &mut FramedStream, HEADER_CAP>,
    op: FileOp,
) -> Result<T, ClientError> {
    let (got, body_len) = next_reply(reader)?;
    if got != op || body_len != 0 {
        return Err(ClientError::Protocol(format!(
            "expected `{op}`, got `{got}`"
        )));
    }
    let reply = reply_header(reader)?;
    match reader.next_event().map_err(read_failed)? {
        Some(Event::End(_)) => Ok(reply),
        _ => Err(ClientError::Protocol("reply frame did not end".into())),
    }
}

/// A socket writer that notices an early reply: before each write it checks (without waiting)
/// whether the server has sent something, which mid-upload can only be a refusal, and stops.
struct WatchedSink<'a> {
    io: &'a mut FramedStream,
}

impl embedded_io::ErrorType for WatchedSink<'_> {
    type Error = io::Error;
}

/// What a [`WatchedSink`] returns when the server sent something (or closed) mid-upload.
#[derive(Debug)]
struct EarlyReply;

impl fmt::Display for EarlyReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the server answered or closed before the upload finished")
    }
}

impl std::error::Error for EarlyReply {}

fn is_early_reply(e: &ClientError) -> bool {
    match e {
        ClientError::Connection(e) => e.get_ref().is_some_and(|inner| inner.is::<EarlyReply>()),
        _ => false,
    }
}

impl embedded_io::Write for WatchedSink<'_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, io::Error> {
        let mut pfd = libc::pollfd {
            fd: self.io.inner().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is a valid pollfd for the duration of the call; count is 1; zero
        // timeout, so the call does not block.
        let ready = unsafe { libc::poll(&mut pfd, 1, 0) };
        if ready > 0 && pfd.revents & libc::POLLIN != 0 {
            return Err(io::Error::other(EarlyReply));
        }
        embedded_io::Write::write(self.io, buf)
    }

    fn flush(&mut self) -> Result<(), io::Error> {
        embedded_io::Write::flush(self.io)
    }
}

impl FileClient {
    /// Connects to the server at `addr`.
    pub fn connect(addr: &str, options: ClientOptions) -> Result<FileClient, ClientError> {
        let stream = connect_stream(addr, options.timeout)?;
        Ok(FileClient {
            io: FromStd::new(stream),
            buf: vec![0u8; options.buffer_size.max(64 * 1024)],
            options,
        })
    }

    fn send_request(&mut self, op: FileOp, path: Option<&str>) -> Result<(), ClientError> {
        let mut head = [0u8; HEADER_CAP];
        let request = new_request(&self.options, op, path);
        write_frame(&mut self.io, &PLAIN_ENCODER, &request, &[], &mut head).map_err(write_failed)
    }

    /// Uploads `local` as `remote`. With `resume`, continues an interrupted upload of the same
    /// file (the server checks the digest of what it holds first; a mismatch is
    /// [`ClientError::Server`] with code `partial_mismatch`, and the partial is discarded).
    pub fn put(
        &mut self,
        local: &Path,
        remote: &RemotePath,
        resume: bool,
        progress: &mut dyn Progress,
    ) -> Result<PutReport, ClientError> {
        let algorithm = self.options.algorithm;
        let (mut file, size) = open_upload(local)?;
        let offset = if resume {
            self.resume_offset(remote, size)?
        } else {
            0
        };
        let mut hasher =
            hash_prefix(&mut file, offset, algorithm, &mut self.buf).map_err(self::local(local))?;
        let prefix_hex = hasher.clone().finish().get(algorithm).map(|c| c.to_hex());
        file.seek(SeekFrom::Start(offset))
            .map_err(self::local(local))?;
        let mut request = new_request(&self.options, FileOp::Put, Some(remote.as_str()));
        if offset > 0 {
            request.offset = Some(offset);
            let hex = prefix_hex.as_ref().map(|h| h.as_str());
            match algorithm {
                Algorithm::Xxh3 => request.prefix_xxh3 = hex,
                Algorithm::Md5 => request.prefix_md5 = hex,
            }
        }
        progress.start(size, offset);
        let mut source = HashingSource {
            file: &mut file,
            hasher: &mut hasher,
            progress,
        };
        let mut sink = WatchedSink { io: &mut self.io };
        let sent = write_frame_from(
            &mut sink,
            &PLAIN_ENCODER,
            &request,
            size - offset,
            &mut source,
            Algorithms::NONE,
            &mut self.buf,
        )
        .map_err(|e| upload_failed(local, e))
        .and_then(|_| send_trailer(&mut sink, hasher, algorithm));
        progress.finish();
        if let Err(e @ ClientError::Local { .. }) = sent {
            return Err(e);
        }
        // Whether the upload went out whole or broke off, the server's reply says why.
        let mut reader = FrameReader::new(&mut self.io, decoder(), &mut self.buf);
        let replied: Result<DigestTrailer<String>, _> = expect_reply(&mut reader, FileOp::Stored);
        let digest = match (sent, replied) {
            (Ok(digest), Ok(reply)) => {
                if reply.file_digest(algorithm) != Some(digest) {
                    return Err(ClientError::Protocol(
                        "the server stored a file with another digest".into(),
                    ));
                }
                digest
            }
            (_, Err(e @ ClientError::Server { .. })) => return Err(e),
            // Stopped because the server closed: say what reading its reply found.
            (Err(sent), Err(replied)) if is_early_reply(&sent) => return Err(replied),
            (Err(e), _) | (Ok(_), Err(e)) => return Err(e),
        };
        Ok(PutReport {
            size,
            resumed_from: offset,
            digest,
        })
    }

    /// Where a resumed upload of a `size`-byte file starts: the length of the server's partial
    /// upload of `remote`, or 0 when there is none that could be a prefix of this file.
    fn resume_offset(&mut self, remote: &RemotePath, size: u64) -> Result<u64, ClientError> {
        let partial = self.stat(remote)?.partial_size;
        Ok(if partial <= size { partial } else { 0 })
    }

    /// Downloads `remote` to `local`, through a partial file next to it
    /// (`.<name>.unstick-part`) that is renamed into place once the whole file is verified.
    /// With `resume`, an existing partial download is continued.
    pub fn get(
        &mut self,
        remote: &RemotePath,
        local: &Path,
        resume: bool,
        progress: &mut dyn Progress,
    ) -> Result<GetReport, ClientError> {
        let algorithm = self.options.algorithm;
        let part = partial_download_path(local);
        let (have, mut hasher) = if resume {
            self.hash_partial_download(&part, algorithm)?
        } else {
            (0, BodyHasher::new(Algorithms::only(algorithm)))
        };
        let mut head = [0u8; HEADER_CAP];
        let mut request = new_request(&self.options, FileOp::Get, Some(remote.as_str()));
        request.offset = (have > 0).then_some(have);
        write_frame(&mut self.io, &PLAIN_ENCODER, &request, &[], &mut head)
            .map_err(write_failed)?;
        let mut reader = FrameReader::new(&mut self.io, decoder(), &mut self.buf);
        let (op, body_len) = next_reply(&mut reader)?;
        let head: FileHead = reply_header(&mut reader)?;
        let size = head.size;
        if op != FileOp::File || head.offset != have || size.checked_sub(have) != Some(body_len) {
            return Err(ClientError::Protocol(
                "the file header does not match the request".into(),
            ));
        }
        // Only now, with the file on its way, is the partial download created (or cut back to
        // the prefix that was hashed).
        let mut file =
            open_partial_download(&part, Create::IfMissing).map_err(self::local(&part))?;
        file.set_len(have)
            .and_then(|_| file.seek(SeekFrom::Start(have)))
            .map_err(self::local(&part))?;
        progress.start(size, have);
        let received = receive_download(&mut reader, &mut file, &mut hasher, progress, &part);
        progress.finish();
        received?;
        let trailer: DigestTrailer<String> = expect_reply(&mut reader, FileOp::Done)?;
        let digest = hasher.finish().get(algorithm);
        let Some(digest) = digest.filter(|d| trailer.file_digest(algorithm) == Some(*d)) else {
            drop(file);
            let _ = std::fs::remove_file(&part);
            return Err(ClientError::DigestMismatch {
                path: local.to_owned(),
            });
        };
        commit_download(file, &part, local)?;
        Ok(GetReport {
            size,
            resumed_from: have,
            digest,
        })
    }

    /// The length and running digest of the partial download at `part` (none: 0 bytes).
    fn hash_partial_download(
        &mut self,
        part: &Path,
        algorithm: Algorithm,
    ) -> Result<(u64, BodyHasher), ClientError> {
        let mut file = match open_partial_download(part, Create::Never) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok((0, BodyHasher::new(Algorithms::only(algorithm))));
            }
            Err(e) => {
                return Err(ClientError::Local {
                    path: part.to_owned(),
                    source: e,
                });
            }
        };
        let have = file.metadata().map_err(self::local(part))?.len();
        let hasher =
            hash_prefix(&mut file, have, algorithm, &mut self.buf).map_err(self::local(part))?;
        Ok((have, hasher))
    }

    /// Lists the directory `dir` (`None` for the root).
    pub fn list(&mut self, dir: Option<&RemotePath>) -> Result<Vec<RemoteEntry>, ClientError> {
        self.send_request(FileOp::Ls, Some(dir.map_or("", |d| d.as_str())))?;
        let mut reader = FrameReader::new(&mut self.io, decoder(), &mut self.buf);
        let mut entries = Vec::new();
        loop {
            let (op, body_len) = next_reply(&mut reader)?;
            let entry = match op {
                FileOp::Entry => Some(reply_header::<EntryReply<String>>(&mut reader)?),
                FileOp::End => None,
                other => {
                    return Err(ClientError::Protocol(format!(
                        "unexpected `{other}` in a listing"
                    )));
                }
            };
            if body_len != 0 || !matches!(reader.next_event(), Ok(Some(Event::End(_)))) {
                return Err(ClientError::Protocol("listing frames have no body".into()));
            }
            let Some(entry) = entry else {
                break;
            };
            entries.push(RemoteEntry {
                name: entry.name,
                name_escaped: entry.name_escaped.unwrap_or(false),
                kind: entry.kind,
                size: entry.size,
                mtime: entry.mtime,
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// What the server holds under `path`.
    pub fn stat(&mut self, path: &RemotePath) -> Result<RemoteStat, ClientError> {
        self.send_request(FileOp::Stat, Some(path.as_str()))?;
        let mut reader = FrameReader::new(&mut self.io, decoder(), &mut self.buf);
        let reply: StatReply<String> = expect_reply(&mut reader, FileOp::Stat)?;
        let entry = reply.exists.then(|| RemoteEntry {
            name: path.file_name().to_owned(),
            name_escaped: false,
            kind: reply.kind.clone().unwrap_or_default(),
            size: reply.size.unwrap_or(0),
            mtime: reply.mtime.unwrap_or(0),
        });
        Ok(RemoteStat {
            entry,
            partial_size: reply.partial_size,
        })
    }

    /// Deletes the file (or empty directory) `path`.
    pub fn delete(&mut self, path: &RemotePath) -> Result<(), ClientError> {
        self.send_request(FileOp::Delete, Some(path.as_str()))?;
        let mut reader = FrameReader::new(&mut self.io, decoder(), &mut self.buf);
        expect_reply::<Ack>(&mut reader, FileOp::Deleted).map(drop)
    }
}

/// A request for `op` on `path` with the token and digest algorithm of `options`.
fn new_request<'a>(
    options: &'a ClientOptions,
    op: FileOp,
    path: Option<&'a str>,
) -> Request<&'a str> {
    Request {
        path,
        token: options.token.as_deref(),
        algorithm: Some(options.algorithm.member()),
        ..Request::new(op)
    }
}

fn write_failed<S: fmt::Debug>(e: WriteError<io::Error, S>) -> ClientError {
    match e {
        WriteError::Io(e) => ClientError::Connection(e),
        other => ClientError::Protocol(other.to_string()),
    }
}

/// Sends a put's trailer with the digest of the whole file, and returns that digest.
fn send_trailer(
    sink: &mut WatchedSink<'_>,
    mut hasher: BodyHasher,
    algorithm: Algorithm,
) -> Result<Checksum, ClientError> {
    let digest = hasher
        .finish()
        .get(algorithm)
        .ok_or_else(|| ClientError::Protocol("digest not compiled into this build".into()))?;
    let hex = digest.to_hex();
    let trailer = DigestTrailer::new(FileOp::Done, algorithm, hex.as_str(), None);
    let mut head = [0u8; 256];
    write_frame(sink, &PLAIN_ENCODER, &trailer, &[], &mut head).map_err(write_failed)?;
    Ok(digest)
}

/// Maps a failure to send the file `local`: reading it locally, or the connection.
fn upload_failed(local: &Path, e: WriteError<io::Error, io::Error>) -> ClientError {
    let source = match e {
        WriteError::Source(e) => e,
        WriteError::SourceEnded { missing } => io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the file shrank while being sent ({missing} bytes missing)"),
        ),
        other => return write_failed(other),
    };
    ClientError::Local {
        path: local.to_owned(),
        source,
    }
}

/// Opens the local file to upload and returns it with its size. Only a regular file will do;
/// the open does not wait on a FIFO.
fn open_upload(local: &Path) -> Result<(File, u64), ClientError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(local)
        .map_err(self::local(local))?;
    let meta = file.metadata().map_err(self::local(local))?;
    if !meta.is_file() {
        return Err(ClientError::Local {
            path: local.to_owned(),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file; only files can be uploaded",
            ),
        });
    }
    // O_NONBLOCK changes nothing for a regular file's reads.
    Ok((file, meta.len()))
}

/// Writes a download's body into `file` (the partial download `part`), hashing it.
fn receive_download(
    reader: &mut FrameReader<'_, &mut FramedStream, HEADER_CAP>,
    file: &mut File,
    hasher: &mut BodyHasher,
    progress: &mut dyn Progress,
    part: &Path,
) -> Result<(), ClientError> {
    loop {
        match reader.next_event().map_err(read_failed)? {
            Some(Event::Body(chunk)) => {
                hasher.update(chunk);
                file.write_all(chunk).map_err(local(part))?;
                progress.advance(chunk.len() as u64);
            }
            Some(Event::End(_)) => return Ok(()),
            _ => return Err(ClientError::Protocol("the file body broke off".into())),
        }
    }
}

/// Syncs a verified download and renames it from `part` to `local`, then syncs the directory
/// so that the rename survives a crash.
fn commit_download(file: File, part: &Path, local: &Path) -> Result<(), ClientError> {
    file.sync_all().map_err(self::local(part))?;
    drop(file);
    std::fs::rename(part, local).map_err(self::local(local))?;
    let parent = match local.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if let Ok(dir) = File::open(parent) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Opens the partial download `part` for reading and writing, never through a symbolic link
/// (one planted under that name cannot redirect the download).
fn open_partial_download(part: &Path, create: Create) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create == Create::IfMissing)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW)
        .open(part)
}

/// Where a download to `local` is staged: `.<name>.unstick-part` in the same directory.
pub fn partial_download_path(local: &Path) -> PathBuf {
    let name = local
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "download".into());
    local.with_file_name(format!(".{name}.unstick-part"))
}

/// The seed's upload header: the client's folder, the file name, and (added by the encoder)
/// `filesize`.
#[derive(serde::Serialize)]
struct LegacyHeader<'a> {
    filepath: &'a str,
    filename: &'a str,
}

/// Uploads `local` to a server that speaks the seed's protocol: header
/// `{"filepath","filename","filesize"}`, then the bytes, then close. The seed's server sends no
/// reply, so nothing is verified; returns the bytes sent.
pub fn put_legacy(
    addr: &str,
    local: &Path,
    remote_name: &str,
    progress: &mut dyn Progress,
) -> Result<u64, ClientError> {
    let (mut file, size) = open_upload(local)?;
    let folder = local
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(|p| p.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let stream = connect_stream(addr, Duration::from_secs(60))?;
    let mut io = FromStd::new(stream);
    let header = LegacyHeader {
        filepath: &folder,
        filename: remote_name,
    };
    let encoder = HeaderFrameEncoder::new(Profile::SEED)
        .checksum(None)
        .size_field(SizeField::Filesize);
    let mut buf = vec![0u8; TRANSFER_BUFFER];
    let mut hasher = BodyHasher::new(Algorithms::NONE);
    progress.start(size, 0);
    let sent = write_frame_from(
        &mut io,
        &encoder,
        &header,
        size,
        &mut HashingSource {
            file: &mut file,
            hasher: &mut hasher,
            progress,
        },
        Algorithms::NONE,
        &mut buf,
    );
    progress.finish();
    sent.map_err(|e| upload_failed(local, e))?;
    // Done sending; wait for the server to close so the bytes are known to have been read.
    let stream = io.inner_mut();
    let _ = stream.shutdown(Shutdown::Write);
    let mut sink = [0u8; 4096];
    while let Ok(n) = io::Read::read(stream, &mut sink) {
        if n == 0 {
            break;
        }
    }
    Ok(size)
}

/// Whether `e` is the server refusing a resume because its partial upload does not match.
pub fn is_partial_mismatch(e: &ClientError) -> bool {
    e.server_code() == Some(ErrorCode::PartialMismatch.as_str())
}
