//! The file client: put, get, ls, stat, delete, mkdir and rename against an unstick file server,
//! and an upload to the seed's Python server.
//!
//! Every protocol decision (which request, which replies in which order, where an upload
//! resumes, every digest) is `unstick-core`'s [`FileClientSession`]; this module only drives it
//! over a socket and local files: it sends what the session hands out, reads the file ranges it
//! asks for, writes downloads through a partial file and renames them into place, and reports
//! progress.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use unstick_core::Algorithm;
use unstick_core::Checksum;
use unstick_core::FileOp;
use unstick_core::files::FileAttributes;
use unstick_core::files::client::{
    ClientAction, ClientEvent, FileClientSession, FileProtocolError, RequestOptions,
};
use unstick_core::info::{EndpointInfo, InfoError};

use super::attributes;
use super::local::{
    open_for_upload, open_partial_download, place_download_new, replace_with_download,
};
use super::name::{RemotePath, escape_for_terminal};
use super::transfer::{Pace, Progress, TRANSFER_BUFFER};
use super::tree::Create;
use crate::host::{Inbox, ReplyFailure, await_reply};
use crate::info::{InfoRequestError, RemoteInfo, request_info};
use crate::link::{Endpoint, Link};
use crate::reached::{Reached, Tool, other_tool};
use crate::server::{ErrorCode, HEADER_CAP};
use crate::system_error::SystemError;
use crate::tls::{ClientTls, TlsConnectError};
use crate::transmit::send_transmits;

/// Room for a request head: a path of up to 4,096 bytes (quotes escaped) plus a token.
const REQUEST_CAP: usize = 16 * 1024;

/// The protocol session every connection drives.
type Session = FileClientSession<HEADER_CAP, REQUEST_CAP>;

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
    /// The client's own settings cannot be used (an address that is not one, a config file
    /// with a bad entry, a name that does not resolve); nothing was sent. The message says
    /// which setting and why.
    Settings(String),
    /// The request would break a limit the device said it has in its info reply; it was not
    /// sent.
    OverLimit {
        /// Which limit.
        limit: Limit,
        /// What the request needs (bytes).
        needed: u64,
        /// The device's limit (bytes).
        max: u64,
    },
    /// The server is not a file server: another protocol's, or the shell's (its refusal of
    /// the request's op was looked into).
    Reached(Reached),
}

/// A limit of the server's that a request can break.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// The longest remote path.
    Path,
    /// The largest file.
    FileSize,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect { addr, source } => {
                write!(f, "cannot connect to {addr}: {}", SystemError(source))?;
                // A TLS failure says what to do itself; the server is running.
                if source.get_ref().is_none_or(|e| !e.is::<TlsConnectError>()) {
                    f.write_str(" (is `unstick ftp serve` running there?)")?;
                }
                Ok(())
            }
            ClientError::Connection(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                f.write_str(
                    "the server did not answer in time (the client's --server-alive, 60 s unless \
                     given)",
                )
            }
            ClientError::Connection(e) => {
                write!(f, "connection to the server failed: {}", SystemError(e))
            }
            // The server's words are shown escaped: a hostile server cannot drive the terminal.
            ClientError::Server { code, message } => write!(
                f,
                "server refused ({}): {}",
                escape_for_terminal(code),
                escape_for_terminal(message)
            ),
            ClientError::Protocol(m) => write!(f, "unexpected reply from the server: {m}"),
            ClientError::Local { path, source } => {
                write!(f, "{}: {}", path.display(), SystemError(source))
            }
            ClientError::DigestMismatch { path } => write!(
                f,
                "{}: the downloaded data does not match the server's digest (corrupted in transit, a bad partial download, or the file changed); nothing was kept, download it again",
                path.display()
            ),
            ClientError::Settings(m) => f.write_str(m),
            ClientError::Reached(reached) => fmt::Display::fmt(reached, f),
            ClientError::OverLimit {
                limit: Limit::Path,
                needed,
                max,
            } => write!(
                f,
                "the remote path is {needed} bytes long, and the device takes paths of at most \
                 {max} bytes (its info reply says so); nothing was sent: choose a shorter name"
            ),
            ClientError::OverLimit {
                limit: Limit::FileSize,
                needed,
                max,
            } => write!(
                f,
                "the file is {needed} bytes, and the device stores files of at most {max} bytes \
                 (its info reply says so); nothing was sent"
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
    /// How a `tls://` server is trusted.
    pub tls: ClientTls,
    /// Keep files' mode and modification time (`put -p`, `get -p`): an upload asks the server
    /// to give the file those of the local one, a download gives the local file those the
    /// server reports (permission bits only, never set-user-ID, set-group-ID or sticky).
    pub keep_attributes: bool,
    /// Move each file's bytes at most this fast, in bytes a second (`--limit-rate`); `None`:
    /// as fast as the connection goes.
    pub limit_rate: Option<u64>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            token: None,
            algorithm: Algorithm::Xxh3,
            buffer_size: TRANSFER_BUFFER,
            timeout: Duration::from_secs(60),
            tls: ClientTls::default(),
            keep_attributes: false,
            limit_rate: None,
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
    /// `"file"`, `"dir"`, `"symlink"`, `"other"`, or `"partial"` for an interrupted (or
    /// running) upload held for resume under this name, `size` being the bytes held.
    pub kind: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: i64,
    /// Permission bits, when the server reports them (`stat` of a Unix server; listings do
    /// not carry them).
    pub mode: Option<u32>,
}

impl RemoteEntry {
    /// The name as it is safe to print: control and bidi characters escaped, so that a name
    /// chosen by someone else cannot drive the terminal.
    pub fn display_name(&self) -> String {
        // An escaped name (`name_escaped`) is shown in its escaped form, which is printable.
        escape_for_terminal(&self.name)
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
    stream: Link,
    /// The address connected to, for a second connection.
    addr: String,
    options: ClientOptions,
    session: Box<Session>,
    /// Local file reads.
    buf: Vec<u8>,
    /// Bytes read from the server and not yet fed to the session.
    inbox: Inbox,
    /// What a device says of itself (its limits, its digests), once asked (`Some(None)`: it
    /// does not say).
    device_info: Option<Option<EndpointInfo<'static>>>,
}

impl fmt::Debug for FileClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileClient")
            .field("link", &self.stream)
            .finish_non_exhaustive()
    }
}

/// Opens `addr`: `HOST:PORT`, or a serial line `serial:PATH[@BAUD]`.
fn connect_stream(addr: &str, timeout: Duration, tls: &ClientTls) -> Result<Link, ClientError> {
    let connect_error = |source| ClientError::Connect {
        addr: addr.to_owned(),
        source,
    };
    let endpoint = Endpoint::parse(addr)
        .map_err(|e| connect_error(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    Link::open(&endpoint, Some(timeout), tls).map_err(connect_error)
}

/// The token and algorithm of `options`, as every request carries them.
fn request_options(options: &ClientOptions) -> RequestOptions<'_> {
    RequestOptions {
        token: options.token.as_deref(),
        algorithm: options.algorithm,
    }
}

/// A session error as the client reports it; `download` names the local target of a download,
/// whose digest errors are [`ClientError::DigestMismatch`].
fn protocol_failed(e: FileProtocolError, download: Option<&Path>) -> ClientError {
    match e {
        FileProtocolError::Closed | FileProtocolError::Truncated { .. } => {
            ClientError::Connection(io::Error::new(io::ErrorKind::UnexpectedEof, e.to_string()))
        }
        // Worded with the option that sets the limit.
        FileProtocolError::TimedOut { .. } => {
            ClientError::Connection(io::Error::new(io::ErrorKind::TimedOut, e.to_string()))
        }
        FileProtocolError::DigestMismatch {
            op: FileOp::Done, ..
        }
        | FileProtocolError::MissingDigest {
            op: FileOp::Done, ..
        } if download.is_some() => ClientError::DigestMismatch {
            path: download.map(Path::to_owned).unwrap_or_default(),
        },
        other => ClientError::Protocol(other.to_string()),
    }
}

/// An event the operation in flight cannot produce (the session rules them out).
/// A download's last event: its report once the file is all there, anything else unexpected.
fn download_ended(event: &ClientEvent<'_>) -> Result<Option<GetReport>, ClientError> {
    match *event {
        ClientEvent::Fetched {
            size,
            resumed_from,
            digest,
        } => Ok(Some(GetReport {
            size,
            resumed_from,
            digest,
        })),
        ref other => Err(unexpected(other)),
    }
}

fn unexpected(event: &ClientEvent<'_>) -> ClientError {
    ClientError::Protocol(format!("unexpected reply: {event:?}"))
}

/// Why sending stopped.
enum Stop {
    /// The server sent something (or closed) mid-upload: its reply says why.
    EarlyReply,
    /// Writing to the socket failed.
    Io(io::Error),
    /// Anything else, final.
    Failed(ClientError),
}

impl From<Stop> for ClientError {
    fn from(stop: Stop) -> Self {
        match stop {
            Stop::EarlyReply => ClientError::Connection(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the server answered or closed before the upload finished",
            )),
            Stop::Io(e) => ClientError::Connection(e),
            Stop::Failed(e) => e,
        }
    }
}

/// Whether the server has sent something (or closed), checked without waiting. Mid-upload
/// that can only be a refusal.
fn readable_now(stream: &Link) -> bool {
    stream.readable_now()
}

/// Sends everything the session has queued; `body` is the chunk last handed to it. With
/// `watch`, an early reply from the server stops the sending before it starts.
fn flush(stream: &mut Link, session: &mut Session, body: &[u8], watch: bool) -> Result<(), Stop> {
    if watch && readable_now(stream) {
        return Err(Stop::EarlyReply);
    }
    let mut scratch = [0u8; 4096];
    send_transmits(stream, &mut scratch, body, |buf| session.poll_transmit(buf)).map_err(Stop::Io)
}

/// Reads the next piece of `file` into `buf` (at most `len` bytes).
fn read_chunk<'b>(file: &mut File, buf: &'b mut [u8], len: u64) -> io::Result<&'b [u8]> {
    let want = buf.len().min(usize::try_from(len).unwrap_or(usize::MAX));
    loop {
        match file.read(&mut buf[..want]) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
            Ok(n) => return Ok(&buf[..n]),
        }
    }
}

/// Carries out the session's `ReadLocal` actions from `file` (read sequentially from where it
/// is at `pos`), sending the chunks meant for sending, until the session wants no more local
/// data. Reports progress from the first chunk sent; the chunks sent keep to `pace`, when
/// there is one.
#[allow(clippy::too_many_arguments)]
fn transfer_local(
    stream: &mut Link,
    session: &mut Session,
    file: &mut File,
    local: &Path,
    buf: &mut [u8],
    watch: bool,
    progress: &mut dyn Progress,
    mut pace: Option<&mut Pace>,
) -> Result<(), Stop> {
    let mut pos = 0u64;
    let mut started = false;
    flush(stream, session, &[], watch)?;
    while let Some(ClientAction::ReadLocal { offset, len, send }) = session.poll_action() {
        let local_failed = |source| {
            Stop::Failed(ClientError::Local {
                path: local.to_owned(),
                source,
            })
        };
        if send && !started {
            // The body runs to the end of the file.
            progress.start(offset + len, offset);
            started = true;
        }
        if pos != offset {
            file.seek(SeekFrom::Start(offset)).map_err(local_failed)?;
            pos = offset;
        }
        let room = match &pace {
            Some(pace) if send => pace.step().min(buf.len()),
            _ => buf.len(),
        };
        let chunk = read_chunk(file, &mut buf[..room], len).map_err(local_failed)?;
        if chunk.is_empty() {
            let message = if send {
                format!("the file shrank while being sent ({len} bytes missing)")
            } else {
                "file is shorter than the resume offset".to_owned()
            };
            return Err(local_failed(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                message,
            )));
        }
        pos += chunk.len() as u64;
        session
            .handle_local_data(chunk)
            .map_err(|e| Stop::Failed(protocol_failed(e, None)))?;
        if send {
            progress.advance(chunk.len() as u64);
        }
        flush(stream, session, chunk, watch)?;
        if send && let Some(pace) = pace.as_deref_mut() {
            pace.moved(chunk.len());
        }
    }
    Ok(())
}

impl FileClient {
    /// Connects to the server at `addr`.
    pub fn connect(addr: &str, options: ClientOptions) -> Result<FileClient, ClientError> {
        let stream = connect_stream(addr, options.timeout, &options.tls)?;
        let size = options.buffer_size.max(64 * 1024);
        // Under a rate limit a download is read a step at a time, so that each wait is short.
        let read_size = match options.limit_rate {
            Some(rate) => Pace::new(rate).step().clamp(4096, size),
            None => size,
        };
        Ok(FileClient {
            stream,
            addr: addr.to_owned(),
            session: Box::new(Session::new().with_reply_timeout(Some(options.timeout))),
            buf: vec![0u8; size],
            inbox: Inbox::new(read_size, &[]),
            options,
            device_info: None,
        })
    }

    /// Asks the server what it is: the protocols it serves, its version, limits, digests and
    /// platform (the `info` request, which needs no token). A server that predates it refuses
    /// it ([`ClientError::Server`]); the connection goes on either way.
    pub fn info(&mut self) -> Result<RemoteInfo, ClientError> {
        request_info(&mut self.stream, self.options.timeout).map_err(|e| match e {
            InfoRequestError::Connection(e) => ClientError::Connection(e),
            InfoRequestError::Foreign(protocol) => ClientError::Reached(Reached::Foreign(protocol)),
            InfoRequestError::Reply(e) => match *e {
                InfoError::Refused(refusal) => ClientError::Server {
                    code: refusal.code.as_str().to_owned(),
                    message: refusal.message.as_str().to_owned(),
                },
                e => ClientError::Protocol(e.to_string()),
            },
        })
    }

    /// Checks an upload of `size` bytes to `remote` against a device's limits before a byte of
    /// it goes out: on a serial line, sending a request the device refuses costs the line's
    /// time, so the device is asked once per connection what it takes. Servers over TCP and
    /// TLS are not asked (their refusal costs a round trip, as asking would).
    fn check_device_limits(&mut self, remote: &RemotePath, size: u64) -> Result<(), ClientError> {
        let Some(limits) = self.device_facts()? else {
            return Ok(());
        };
        let checks = [
            (Limit::Path, remote.as_str().len() as u64, limits.max_path),
            (Limit::FileSize, size, limits.max_file_size),
        ];
        for (limit, needed, max) in checks {
            if let Some(max) = max.filter(|&max| needed > max) {
                return Err(ClientError::OverLimit { limit, needed, max });
            }
        }
        Ok(())
    }

    /// What a device says of itself, asked once per connection on a serial line (`None` on
    /// other links, and from a device that predates `info`).
    fn device_facts(&mut self) -> Result<Option<EndpointInfo<'static>>, ClientError> {
        if !self.stream.is_serial() {
            return Ok(None);
        }
        if let Some(facts) = self.device_info {
            return Ok(facts);
        }
        let facts = match self.info() {
            Ok(info) => Some(info.facts),
            // A device that predates info: its refusals tell, as before.
            Err(ClientError::Server { .. }) => None,
            Err(e) => return Err(e),
        };
        Ok(*self.device_info.insert(facts))
    }

    /// Verifies transfers with MD5 on a device that computes it but not XXH3 (a small part
    /// built with one digest), instead of having them refused; an explicit `--md5` is kept as
    /// it is. Devices are asked as [`device_facts`](Self::device_facts) says; a server over
    /// TCP or TLS computes both.
    fn choose_digest(&mut self) -> Result<(), ClientError> {
        if self.options.algorithm != Algorithm::Xxh3 {
            return Ok(());
        }
        if let Some(facts) = self.device_facts()?
            && !facts.digests.xxh3
            && facts.digests.md5
        {
            self.options.algorithm = Algorithm::Md5;
        }
        Ok(())
    }

    /// The connection to the server (its peer address, a TLS server's certificate).
    pub fn link(&self) -> &Link {
        &self.stream
    }

    /// Sends the request the session has queued.
    fn send_request(&mut self) -> Result<(), ClientError> {
        flush(&mut self.stream, &mut self.session, &[], false).map_err(ClientError::from)
    }

    /// Reads replies and feeds them to the session, handing each event to `on_event` until it
    /// returns a value. A refusal is [`ClientError::Server`]; `download` as in
    /// [`protocol_failed`].
    fn pump<T>(
        &mut self,
        download: Option<&Path>,
        mut on_event: impl FnMut(ClientEvent<'_>) -> Result<Option<T>, ClientError>,
    ) -> Result<T, ClientError> {
        let replied = await_reply(
            &mut *self.session,
            &mut self.stream,
            &mut self.inbox,
            Some(self.options.timeout),
            |_, event| match event {
                ClientEvent::Refused(refusal) => Err(ClientError::Server {
                    code: refusal.code.as_str().to_owned(),
                    message: refusal.message.as_str().to_owned(),
                }),
                event => on_event(event),
            },
            |failure| match failure {
                ReplyFailure::Session(e) => protocol_failed(e, download),
                ReplyFailure::Closed => protocol_failed(FileProtocolError::Closed, download),
                ReplyFailure::Io(e) => ClientError::Connection(e),
                ReplyFailure::Foreign(protocol) => ClientError::Reached(Reached::Foreign(protocol)),
            },
        );
        match replied {
            // A shell server refuses every op of this protocol: say so, not "unknown op".
            Err(ClientError::Server { code, message }) => Err(
                match other_tool(
                    &mut self.stream,
                    || connect_stream(&self.addr, self.options.timeout, &self.options.tls).ok(),
                    self.options.timeout,
                    Tool::File,
                    &code,
                ) {
                    Some(reached) => ClientError::Reached(reached),
                    None => ClientError::Server { code, message },
                },
            ),
            replied => replied,
        }
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
        let (file, size) = open_upload(local)?;
        self.put_file(file, size, local, remote, resume, progress)
    }

    /// Uploads the `size` bytes of the open regular file `file` as `remote`, as
    /// [`put`](Self::put) does; `label` names the file in errors (`-` for standard input that
    /// was spooled to a file, say). The file is read from where the session asks, so it must
    /// not change meanwhile.
    pub fn put_file(
        &mut self,
        mut file: File,
        size: u64,
        label: &Path,
        remote: &RemotePath,
        resume: bool,
        progress: &mut dyn Progress,
    ) -> Result<PutReport, ClientError> {
        let local = label;
        self.check_device_limits(remote, size)?;
        self.choose_digest()?;
        let keep = if self.options.keep_attributes {
            attributes::of(&file.metadata().map_err(self::local(local))?)
        } else {
            FileAttributes::NONE
        };
        self.stream.start_request();
        self.session
            .put_keeping(
                remote.as_str(),
                size,
                request_options(&self.options),
                resume,
                keep,
            )
            .map_err(|e| protocol_failed(e, None))?;
        if resume {
            // The server's stat decides where the upload starts.
            self.send_request()?;
            self.pump(None, |event| match event {
                ClientEvent::UploadFrom { .. } => Ok(Some(())),
                other => Err(unexpected(&other)),
            })?;
            // The upload itself is a request of its own, after the stat's reply.
            self.stream.start_request();
        }
        let mut pace = self.options.limit_rate.map(Pace::new);
        let sent = transfer_local(
            &mut self.stream,
            &mut self.session,
            &mut file,
            local,
            &mut self.buf,
            true,
            progress,
            pace.as_mut(),
        );
        progress.finish();
        if let Err(Stop::Failed(e)) = sent {
            return Err(e);
        }
        // Whether the upload went out whole or broke off, the server's reply says why.
        let replied = self.pump(None, |event| match event {
            ClientEvent::Stored {
                size,
                resumed_from,
                digest,
            } => Ok(Some(PutReport {
                size,
                resumed_from,
                digest,
            })),
            other => Err(unexpected(&other)),
        });
        match (sent, replied) {
            (Ok(()), replied) => replied,
            (_, Err(e @ ClientError::Server { .. })) => Err(e),
            // Stopped because the server answered or closed: say what reading its reply found.
            (Err(Stop::EarlyReply), Err(replied)) => Err(replied),
            (Err(stop), _) => Err(stop.into()),
        }
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
        self.get_as(remote, local, resume, Existing::Replace, progress)
    }

    /// Downloads `remote` to `local` as [`get`](Self::get) does; with [`Existing::Keep`] a
    /// file already at `local` is never replaced (checked before anything is fetched, and
    /// again, atomically, when the verified download takes the name): that is a
    /// [`ClientError::Local`] of kind `AlreadyExists`.
    pub fn get_as(
        &mut self,
        remote: &RemotePath,
        local: &Path,
        resume: bool,
        existing: Existing,
        progress: &mut dyn Progress,
    ) -> Result<GetReport, ClientError> {
        if existing == Existing::Keep && std::fs::symlink_metadata(local).is_ok() {
            return Err(ClientError::Local {
                path: local.to_owned(),
                source: io::Error::new(io::ErrorKind::AlreadyExists, "exists; not replaced"),
            });
        }
        self.choose_digest()?;
        let part = partial_download_path(local);
        let (have, prefix) = if resume {
            match open_partial_download(&part, Create::Never) {
                Ok(file) => {
                    let have = file.metadata().map_err(self::local(&part))?.len();
                    (have, Some(file))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => (0, None),
                Err(e) => {
                    return Err(ClientError::Local {
                        path: part.clone(),
                        source: e,
                    });
                }
            }
        } else {
            (0, None)
        };
        self.stream.start_request();
        self.session
            .get(remote.as_str(), request_options(&self.options), have)
            .map_err(|e| protocol_failed(e, None))?;
        self.send_request()?;
        if let Some(mut prefix) = prefix {
            // The local prefix goes into the digest the server's trailer is checked against.
            transfer_local(
                &mut self.stream,
                &mut self.session,
                &mut prefix,
                &part,
                &mut self.buf,
                false,
                &mut super::transfer::NoProgress,
                None,
            )?;
        }
        let mut pace = self.options.limit_rate.map(Pace::new);
        let mut file: Option<File> = None;
        let mut keep = FileAttributes::NONE;
        let keep_attributes = self.options.keep_attributes;
        let received = self.pump(Some(local), |event| match event {
            ClientEvent::FileHead {
                size,
                offset,
                mtime,
                mode,
            } => {
                if keep_attributes {
                    keep = FileAttributes {
                        mode,
                        mtime: Some(mtime),
                    };
                }
                // Only now, with the file on its way, is the partial download created (or cut
                // back to the prefix that was hashed).
                // A failure to create it is reported under the name the user gave: the
                // partial's own name means nothing to them.
                let mut opened = open_partial_download(&part, Create::IfMissing)
                    .map_err(|e| download_target_failed(local, e))?;
                opened
                    .set_len(offset)
                    .and_then(|_| opened.seek(SeekFrom::Start(offset)))
                    .map_err(self::local(&part))?;
                progress.start(size, offset);
                file = Some(opened);
                Ok(None)
            }
            ClientEvent::Body(chunk) => {
                let Some(file) = file.as_mut() else {
                    return Err(unexpected(&ClientEvent::Body(chunk)));
                };
                file.write_all(chunk).map_err(self::local(&part))?;
                progress.advance(chunk.len() as u64);
                if let Some(pace) = pace.as_mut() {
                    pace.moved(chunk.len());
                }
                Ok(None)
            }
            other => download_ended(&other),
        });
        progress.finish();
        match (received, file) {
            (Ok(report), Some(file)) => {
                attributes::apply(&file, keep).map_err(self::local(local))?;
                commit_download(file, &part, local, existing)?;
                Ok(report)
            }
            (Err(e @ ClientError::DigestMismatch { .. }), file) => {
                drop(file);
                let _ = std::fs::remove_file(&part);
                Err(e)
            }
            (Err(e), _) => Err(e),
            (Ok(_), None) => Err(ClientError::Protocol(
                "the download ended without a file".into(),
            )),
        }
    }

    /// Lists the directory `dir` (`None` for the root).
    pub fn list(&mut self, dir: Option<&RemotePath>) -> Result<Vec<RemoteEntry>, ClientError> {
        self.stream.start_request();
        self.session
            .list(
                dir.map_or("", |d| d.as_str()),
                request_options(&self.options),
            )
            .map_err(|e| protocol_failed(e, None))?;
        self.send_request()?;
        let mut entries = Vec::new();
        self.pump(None, |event| match event {
            ClientEvent::Entry(entry) => {
                entries.push(RemoteEntry {
                    name: entry.name.as_str().to_owned(),
                    name_escaped: entry.name_escaped,
                    kind: entry.kind.as_str().to_owned(),
                    size: entry.size,
                    mtime: entry.mtime,
                    mode: None,
                });
                Ok(None)
            }
            ClientEvent::Listed { .. } => Ok(Some(())),
            other => Err(unexpected(&other)),
        })?;
        // By name; a name listed twice (a file and its partial upload) by kind.
        entries.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.kind.cmp(&b.kind)));
        Ok(entries)
    }

    /// What the server holds under `path`.
    pub fn stat(&mut self, path: &RemotePath) -> Result<RemoteStat, ClientError> {
        self.stream.start_request();
        self.session
            .stat(path.as_str(), request_options(&self.options))
            .map_err(|e| protocol_failed(e, None))?;
        self.send_request()?;
        let stat = self.pump(None, |event| match event {
            ClientEvent::Stat(stat) => Ok(Some(stat)),
            other => Err(unexpected(&other)),
        })?;
        let entry = stat.exists.then(|| RemoteEntry {
            name: path.file_name().to_owned(),
            name_escaped: false,
            kind: stat.kind.as_str().to_owned(),
            size: stat.size.unwrap_or(0),
            mtime: stat.mtime.unwrap_or(0),
            mode: stat.mode,
        });
        Ok(RemoteStat {
            entry,
            partial_size: stat.partial_size,
        })
    }

    /// Downloads `remote` into `out` (standard output, say) as it arrives, with no partial
    /// file and no resume. The digest is checked at the end: by then the bytes are written, so
    /// a mismatch ([`ClientError::DigestMismatch`], naming `label`) means that what `out` got
    /// must not be trusted.
    pub fn get_into(
        &mut self,
        remote: &RemotePath,
        out: &mut dyn Write,
        label: &Path,
        progress: &mut dyn Progress,
    ) -> Result<GetReport, ClientError> {
        self.choose_digest()?;
        self.stream.start_request();
        self.session
            .get(remote.as_str(), request_options(&self.options), 0)
            .map_err(|e| protocol_failed(e, None))?;
        self.send_request()?;
        let mut pace = self.options.limit_rate.map(Pace::new);
        let received = self.pump(Some(label), |event| match event {
            ClientEvent::FileHead { size, offset, .. } => {
                progress.start(size, offset);
                Ok(None)
            }
            ClientEvent::Body(chunk) => {
                out.write_all(chunk).map_err(self::local(label))?;
                progress.advance(chunk.len() as u64);
                if let Some(pace) = pace.as_mut() {
                    pace.moved(chunk.len());
                }
                Ok(None)
            }
            other => download_ended(&other),
        });
        progress.finish();
        out.flush().map_err(self::local(label))?;
        received
    }

    /// Whether the server's `remote` holds exactly the `size` bytes of `file`: the server
    /// hashes its whole file, the client hashes `file`, and nothing else is sent (a download
    /// resumed at the end). `false` when the digests differ; the server refusing (no such
    /// file, a different size) is [`ClientError::Server`]. After `false` the connection is
    /// out of step: connect again.
    pub fn same_as_remote(
        &mut self,
        file: &mut File,
        size: u64,
        label: &Path,
        remote: &RemotePath,
    ) -> Result<bool, ClientError> {
        self.choose_digest()?;
        self.stream.start_request();
        self.session
            .get(remote.as_str(), request_options(&self.options), size)
            .map_err(|e| protocol_failed(e, None))?;
        self.send_request()?;
        file.seek(SeekFrom::Start(0)).map_err(self::local(label))?;
        transfer_local(
            &mut self.stream,
            &mut self.session,
            file,
            label,
            &mut self.buf,
            false,
            &mut super::transfer::NoProgress,
            None,
        )?;
        let compared = self.pump(Some(label), |event| match event {
            ClientEvent::FileHead { size: theirs, .. } if theirs == size => Ok(None),
            ClientEvent::FileHead { .. } => Ok(Some(false)),
            ClientEvent::Fetched { .. } => Ok(Some(true)),
            other => Err(unexpected(&other)),
        });
        match compared {
            Err(ClientError::DigestMismatch { .. }) => Ok(false),
            other => other,
        }
    }

    /// Creates the directory `path`; with `parents`, its missing parents too, and an existing
    /// directory is no error.
    pub fn mkdir(&mut self, path: &RemotePath, parents: bool) -> Result<(), ClientError> {
        self.stream.start_request();
        self.session
            .mkdir(path.as_str(), parents, request_options(&self.options))
            .map_err(|e| protocol_failed(e, None))?;
        self.send_request()?;
        self.pump(None, |event| match event {
            ClientEvent::Made => Ok(Some(())),
            other => Err(unexpected(&other)),
        })
    }

    /// Renames `from` to `to` on the server (a file at `to` is replaced; a directory at `to`
    /// is refused: name the entry inside it).
    pub fn rename(&mut self, from: &RemotePath, to: &RemotePath) -> Result<(), ClientError> {
        self.stream.start_request();
        self.session
            .rename(from.as_str(), to.as_str(), request_options(&self.options))
            .map_err(|e| protocol_failed(e, None))?;
        self.send_request()?;
        self.pump(None, |event| match event {
            ClientEvent::Renamed => Ok(Some(())),
            other => Err(unexpected(&other)),
        })
    }

    /// Deletes the file (or empty directory) `path`.
    pub fn delete(&mut self, path: &RemotePath) -> Result<(), ClientError> {
        self.stream.start_request();
        self.session
            .delete(path.as_str(), request_options(&self.options))
            .map_err(|e| protocol_failed(e, None))?;
        self.send_request()?;
        self.pump(None, |event| match event {
            ClientEvent::Deleted => Ok(Some(())),
            other => Err(unexpected(&other)),
        })
    }
}

/// Uploads `local` to a server that speaks the seed's protocol: header
/// `{"filepath","filename","filesize"}`, then the bytes, then close. The seed's server sends no
/// reply, so nothing is verified; returns the bytes sent.
pub fn seed_put(
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
    let mut stream = connect_stream(addr, Duration::from_secs(60), &ClientTls::default())?;
    let mut session = Box::<Session>::default();
    session
        .seed_put(&folder, remote_name, size)
        .map_err(|e| protocol_failed(e, None))?;
    let mut buf = vec![0u8; TRANSFER_BUFFER];
    if size == 0 {
        progress.start(0, 0);
    }
    let sent = transfer_local(
        &mut stream,
        &mut session,
        &mut file,
        local,
        &mut buf,
        false,
        progress,
        None,
    );
    progress.finish();
    sent?;
    // Done sending; wait for the server to close so the bytes are known to have been read.
    if session.poll_action() == Some(ClientAction::CloseSend) {
        stream.finish_sending();
        let mut sink = [0u8; 4096];
        while let Ok(n) = stream.read(&mut sink) {
            if n == 0 {
                break;
            }
        }
        let _ = session.handle_eof();
    }
    Ok(size)
}

/// Opens the local file to upload and returns it with its size. Only a regular file will do;
/// the open does not wait on a FIFO.
fn open_upload(local: &Path) -> Result<(File, u64), ClientError> {
    let file = open_for_upload(local).map_err(self::local(local))?;
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
    Ok((file, meta.len()))
}

/// Syncs a verified download and renames it from `part` to `local`, then syncs the directory
/// so that the rename survives a crash.
fn commit_download(
    file: File,
    part: &Path,
    local: &Path,
    existing: Existing,
) -> Result<(), ClientError> {
    file.sync_all().map_err(self::local(part))?;
    drop(file);
    match existing {
        Existing::Replace => replace_with_download(part, local).map_err(self::local(local)),
        Existing::Keep => place_download_new(part, local).map_err(|e| {
            let source = if e.kind() == io::ErrorKind::AlreadyExists {
                let message = format!(
                    "appeared during the download; not replaced (the download is kept as {})",
                    part.display()
                );
                io::Error::new(io::ErrorKind::AlreadyExists, message)
            } else {
                e
            };
            ClientError::Local {
                path: local.to_owned(),
                source,
            }
        }),
    }
}

/// A download's partial file could not be created next to `local`: said of `local`.
fn download_target_failed(local: &Path, e: io::Error) -> ClientError {
    let source = if e.kind() == io::ErrorKind::NotFound {
        io::Error::new(io::ErrorKind::NotFound, "no such directory to write it in")
    } else {
        e
    };
    ClientError::Local {
        path: local.to_owned(),
        source,
    }
}

/// What a download does with a file already at its local name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// Replace it once the download is verified (as `scp` does).
    Replace,
    /// Leave it, and fail instead (`--no-clobber`).
    Keep,
}

/// Where a download to `local` is staged: `.<name>.unstick-part` in the same directory.
pub fn partial_download_path(local: &Path) -> PathBuf {
    let name = local
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "download".into());
    local.with_file_name(format!(".{name}.unstick-part"))
}

/// Whether `e` is the server refusing a resume because its partial upload does not match.
pub fn is_partial_mismatch(e: &ClientError) -> bool {
    e.server_code() == Some(ErrorCode::PartialMismatch.as_str())
}
