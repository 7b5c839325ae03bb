//! The async host (`asynch::host`) serving real sessions over in-memory async streams: tokio's
//! duplex pipe, small enough that a side blocks until the other reads, seen as an
//! `embedded-io-async` stream through `embedded-io-adapters`. Both hosts of a connection run on
//! one hand-written executor with a fake clock that moves only when neither side can do
//! anything else, straight to the earliest deadline a host waits for: timeouts take no time.
#![cfg(feature = "xxh3")]
// The server session takes the host's results with a `Refusal` inline, as these do.
#![allow(clippy::result_large_err)]

use std::cell::Cell;
use std::collections::BTreeMap;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

mod pairs;

use embedded_io_adapters::tokio_1::FromTokio;
use embedded_io_async::{Read, Write};
use pairs::generated;
use tokio::io::DuplexStream;
use unstick_core::ErrorCode;
use unstick_core::asynch::host::{
    Clock, Closed, Inbox, Outlet, ReplyError, RequestWork, await_reply, serve_connection,
    serve_request,
};
use unstick_core::files::client::{
    ClientAction, ClientEvent, FileClientSession, FileProtocolError, RequestOptions,
};
use unstick_core::files::{
    Completed, EntryKind, EntryMeta, FileAction, FileRules, FileServerSession, StageKind, Staged,
    StatFound,
};
use unstick_core::session::{Refusal, ServerEvent};
use unstick_core::shell::{
    Dialect, ExitReport, OutputStream, RefusalCode, ShellAction, ShellClientSession, ShellReply,
    ShellRules, ShellServerSession, Termination,
};
use unstick_core::time::Instant;

/// One end of an in-memory connection, as the hosts see it.
type Stream = FromTokio<DuplexStream>;

/// A connection whose pipes hold `capacity` bytes each way.
fn connection(capacity: usize) -> (Stream, Stream) {
    let (a, b) = tokio::io::duplex(capacity);
    (FromTokio::new(a), FromTokio::new(b))
}

// ---- the executor and its clock ----

/// The fake clock's time and the deadlines the hosts' sleeps wait for in the current round.
#[derive(Default)]
struct Time {
    now: Cell<Instant>,
    wanted: Cell<Option<Instant>>,
}

/// A host's view of the shared fake clock.
#[derive(Clone, Default)]
struct FakeClock(Rc<Time>);

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        self.0.now.get()
    }

    async fn sleep_until(&mut self, at: Instant) {
        poll_fn(|_| {
            if self.0.now.get() >= at {
                return Poll::Ready(());
            }
            let wanted = self.0.wanted.get().map_or(at, |w| w.min(at));
            self.0.wanted.set(Some(wanted));
            Poll::Pending
        })
        .await
    }
}

/// Whether a waker was woken since the flag was last cleared.
#[derive(Default)]
struct Woken(AtomicBool);

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Runs `a` and `b` to their ends on `clock`, polling both in every round. When a round woke
/// nothing (no bytes moved), time jumps to the earliest deadline a sleep waits for; with none,
/// the run is stuck and fails. Bounded by a round budget.
fn run<A: Future, B: Future>(clock: &FakeClock, a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (mut a_out, mut b_out) = (None, None);
    let woken = Arc::new(Woken::default());
    let waker = Waker::from(Arc::clone(&woken));
    let mut cx = Context::from_waker(&waker);
    for _ in 0..200_000 {
        woken.0.store(false, Ordering::SeqCst);
        clock.0.wanted.set(None);
        if a_out.is_none()
            && let Poll::Ready(out) = a.as_mut().poll(&mut cx)
        {
            a_out = Some(out);
        }
        if b_out.is_none()
            && let Poll::Ready(out) = b.as_mut().poll(&mut cx)
        {
            b_out = Some(out);
        }
        if let (Some(_), Some(_)) = (&a_out, &b_out) {
            return (a_out.take().unwrap(), b_out.take().unwrap());
        }
        if !woken.0.load(Ordering::SeqCst) {
            match clock.0.wanted.get() {
                Some(at) => clock.0.now.set(at),
                None => panic!("stuck: neither side can move and no deadline is waited for"),
            }
        }
    }
    panic!("not done after 200,000 rounds");
}

// ---- the file server's work: a store in memory ----

const FILE_RULES: FileRules<'static> = FileRules {
    token: None,
    max_file_size: 1 << 20,
    idle_timeout: Duration::from_secs(5),
};

type FileServer = FileServerSession<'static, 1024, 1024>;

/// Where an upload's bytes go.
enum Staging {
    /// The name's partial upload, in `Store::partials`.
    Partial(String),
    /// A temporary file, never resumed.
    Temporary(Vec<u8>),
}

/// The file server's storage, and what its host saw.
#[derive(Default)]
struct Store {
    files: BTreeMap<String, Vec<u8>>,
    partials: BTreeMap<String, Vec<u8>>,
    staging: Option<Staging>,
    opened: Option<Vec<u8>>,
    /// Every action asked for, by name (a run of reads as one).
    actions: Vec<String>,
    events: Vec<ServerEvent<Completed>>,
    /// Requests answered when the current one began.
    answered: u64,
}

impl Store {
    fn staged(&mut self) -> &mut Vec<u8> {
        match self.staging.as_mut().expect("an upload is staged") {
            Staging::Partial(path) => self.partials.get_mut(path.as_str()).unwrap(),
            Staging::Temporary(data) => data,
        }
    }

    fn stage(&mut self, path: &str, kind: StageKind) -> Staged {
        match kind {
            StageKind::Fresh => {
                self.partials.insert(path.to_owned(), Vec::new());
                self.staging = Some(Staging::Partial(path.to_owned()));
                Staged::Ready { len: 0 }
            }
            StageKind::Resume => match self.partials.get(path) {
                Some(partial) => {
                    let len = partial.len() as u64;
                    self.staging = Some(Staging::Partial(path.to_owned()));
                    Staged::Ready { len }
                }
                None => Staged::NoPartial,
            },
            StageKind::Temporary => {
                self.staging = Some(Staging::Temporary(Vec::new()));
                Staged::Ready { len: 0 }
            }
        }
    }
}

fn not_found(path: &str) -> Refusal {
    Refusal::new(ErrorCode::NotFound, format_args!("{path}: no such file"))
}

/// How much of a file the store hands over per read.
const FILE_READ: u64 = 700;

impl<'i, S: Write> RequestWork<'i, FileServer, S> for Store {
    async fn act(
        &mut self,
        out: &mut Outlet<'_, S>,
        session: &mut FileServer,
    ) -> Result<(), Closed<S::Error>> {
        let action = session.poll_action().expect("an action");
        // The action's name, as its variant is called.
        let name = format!("{action:?}");
        let name = name.split([' ', '{']).next().unwrap_or_default().to_owned();
        if self.actions.last() != Some(&name) || name != "ReadFile" {
            self.actions.push(name);
        }
        let reported = match action {
            FileAction::Stat { path } => {
                let found = StatFound {
                    entry: self.files.get(path).map(|data| EntryMeta {
                        kind: EntryKind::File,
                        size: data.len() as u64,
                        mtime: 1_700_000_000,
                        mode: None,
                    }),
                    partial_size: self.partials.get(path).map_or(0, |p| p.len() as u64),
                };
                session.handle_stat(Ok(found))
            }
            FileAction::OpenFile { path } => {
                let opened = match self.files.get(path) {
                    Some(data) => {
                        self.opened = Some(data.clone());
                        Ok(EntryMeta {
                            kind: EntryKind::File,
                            size: data.len() as u64,
                            mtime: 1_700_000_000,
                            mode: None,
                        })
                    }
                    None => Err(not_found(path)),
                };
                session.handle_opened(opened)
            }
            FileAction::Stage { path, kind } => {
                let path = path.to_owned();
                session.handle_staged(Ok(self.stage(&path, kind)))
            }
            FileAction::ReadFile { offset, len } => {
                let source = match &self.opened {
                    Some(data) => data.clone(),
                    None => self.staged().clone(),
                };
                let start = offset as usize;
                let chunk = &source[start..start + len.min(FILE_READ) as usize];
                session.handle_file_data(chunk).map_err(|_| Closed::Asked)?;
                return Ok(out.send(session, chunk).await?);
            }
            FileAction::Truncate { len } => {
                self.staged().truncate(len as usize);
                session.handle_done(Ok(()))
            }
            FileAction::Commit { path, .. } => {
                let path = path.to_owned();
                let data = match self.staging.take().expect("an upload is staged") {
                    Staging::Partial(name) => self.partials.remove(&name).unwrap(),
                    Staging::Temporary(data) => data,
                };
                self.files.insert(path, data);
                session.handle_done(Ok(()))
            }
            FileAction::KeepPartial => {
                self.staging = None;
                session.handle_done(Ok(()))
            }
            FileAction::Close => return Err(Closed::Asked),
            other => panic!("not used here: {other:?}"),
        };
        reported.map_err(|_| Closed::Asked)
    }

    async fn take(&mut self, _: &mut FileServer, chunk: &'i [u8]) -> Result<(), Closed<S::Error>> {
        self.staged().extend_from_slice(chunk);
        Ok(())
    }

    fn record(&mut self, session: &FileServer, event: ServerEvent<Completed>) {
        // A request that ended lets go of its files; a partial neither committed nor kept goes.
        if session.answered() != self.answered {
            self.answered = session.answered();
            if let Some(Staging::Partial(path)) = self.staging.take() {
                self.partials.remove(&path);
            }
            self.opened = None;
        }
        self.events.push(event);
    }

    fn is_over(&self, session: &FileServer) -> bool {
        session.answered() > self.answered && session.is_idle()
    }
}

/// Serves a file-protocol connection on `stream` from `store`, reading `read` bytes at a time
/// and gathering heads in `scratch` bytes.
async fn serve_files<S: Read + Write>(
    stream: &mut S,
    store: &mut Store,
    clock: &FakeClock,
    read: usize,
    scratch: usize,
) -> Closed<S::Error> {
    let mut session = FileServer::new(FILE_RULES);
    let (mut read_buf, mut scratch) = (vec![0u8; read], vec![0u8; scratch]);
    let mut inbox = Inbox::new(&mut read_buf).unwrap();
    let mut out = Outlet::new(stream, &mut scratch).unwrap();
    serve_connection(
        &mut session,
        &mut out,
        &mut inbox,
        &mut clock.clone(),
        store,
    )
    .await
}

// ---- the file client's host ----

type FileClient = FileClientSession<1024, 1024>;

/// Why a client's operation failed.
#[derive(Debug)]
#[allow(dead_code, reason = "shown by Debug when a test fails")]
enum Failed {
    Protocol(FileProtocolError),
    Reply(ReplyError<FileProtocolError, io::Error>),
    Refused(ErrorCode),
    Send,
}

/// The client's end of a connection and its buffers.
struct Client<'b, S> {
    session: FileClient,
    out: Outlet<'b, S>,
    inbox: Inbox<'b>,
    clock: FakeClock,
}

impl<'b, S: Write> Client<'b, S> {
    /// A client of `session` on `stream`, reading into `buffers.0` and gathering heads in
    /// `buffers.1`.
    fn new(
        session: FileClient,
        stream: &'b mut S,
        buffers: &'b mut (Vec<u8>, Vec<u8>),
        clock: &FakeClock,
    ) -> Self {
        let (read_buf, scratch) = buffers;
        Client {
            session,
            out: Outlet::new(stream, scratch).unwrap(),
            inbox: Inbox::new(read_buf).unwrap(),
            clock: clock.clone(),
        }
    }

    /// Sends what the session queued (a request's head).
    async fn send_head(&mut self) -> Result<(), Failed> {
        self.out
            .send(&mut self.session, &[])
            .await
            .map_err(|_| Failed::Send)
    }

    /// Sends the upload's body from `data`, up to `stop_after` bytes of it, in pieces of 300.
    async fn send_body(&mut self, data: &[u8], stop_after: usize) -> Result<(), Failed> {
        self.send_head().await?;
        while let Some(ClientAction::ReadLocal { offset, len, send }) = self.session.poll_action() {
            assert!(send, "nothing is resumed here");
            let start = offset as usize;
            if start >= stop_after {
                return Ok(());
            }
            let chunk = &data[start..start + (len as usize).min(300)];
            self.session
                .handle_local_data(chunk)
                .map_err(Failed::Protocol)?;
            self.out
                .send(&mut self.session, chunk)
                .await
                .map_err(|_| Failed::Send)?;
        }
        Ok(())
    }
}

impl Client<'_, Stream> {
    /// Reads the reply to the operation in flight until `pick` takes an event.
    async fn reply<R>(
        &mut self,
        mut pick: impl FnMut(ClientEvent<'_>) -> Option<R>,
    ) -> Result<R, Failed> {
        let reply = await_reply(
            &mut self.session,
            self.out.stream(),
            &mut self.inbox,
            &mut self.clock,
            async |_, event| match event {
                ClientEvent::Refused(refusal) => Some(Err(refusal.code.as_str().parse().unwrap())),
                event => pick(event).map(Ok),
            },
        )
        .await;
        reply.map_err(Failed::Reply)?.map_err(Failed::Refused)
    }

    async fn put(&mut self, path: &str, data: &[u8]) -> Result<u64, Failed> {
        let options = RequestOptions::default();
        self.session
            .put(path, data.len() as u64, options, false)
            .map_err(Failed::Protocol)?;
        self.send_body(data, data.len()).await?;
        self.reply(|event| match event {
            ClientEvent::Stored { size, .. } => Some(size),
            other => panic!("not a put's reply: {other:?}"),
        })
        .await
    }

    async fn get(&mut self, path: &str) -> Result<Vec<u8>, Failed> {
        self.session
            .get(path, RequestOptions::default(), 0)
            .map_err(Failed::Protocol)?;
        self.send_head().await?;
        let mut data = Vec::new();
        self.reply(|event| match event {
            ClientEvent::FileHead { .. } => None,
            ClientEvent::Body(chunk) => {
                data.extend_from_slice(chunk);
                None
            }
            ClientEvent::Fetched { size, .. } => Some(size),
            other => panic!("not a get's reply: {other:?}"),
        })
        .await?;
        Ok(data)
    }
}

#[test]
fn a_file_goes_up_and_comes_back_down_through_small_buffers_and_a_small_pipe() {
    let clock = FakeClock::default();
    let (mut client_end, mut server_end) = connection(64);
    let data = generated(5_000, 1);
    let mut store = Store::default();

    let server = serve_files(&mut server_end, &mut store, &clock, 33, 100);
    let client = async {
        let mut buffers = (vec![0u8; 29], vec![0u8; 80]);
        let mut client = Client::new(FileClient::new(), &mut client_end, &mut buffers, &clock);
        let stored = client.put("dir/a.bin", &data).await.unwrap();
        let missing = client.get("b.bin").await.unwrap_err();
        let fetched = client.get("dir/a.bin").await.unwrap();
        drop(client);
        // The client hangs up: the server reads the end of the stream.
        drop(client_end);
        (stored, missing, fetched)
    };
    let (closed, (stored, missing, fetched)) = run(&clock, server, client);

    assert!(matches!(closed, Closed::Asked), "{closed:?}");
    assert_eq!(stored, 5_000);
    assert!(
        matches!(missing, Failed::Refused(ErrorCode::NotFound)),
        "{missing:?}"
    );
    assert_eq!(fetched, data);
    assert_eq!(store.files["dir/a.bin"], data);
    assert!(store.partials.is_empty(), "{:?}", store.partials.keys());
    assert_eq!(
        store.actions,
        [
            "Stage", "Commit", "OpenFile", "OpenFile", "ReadFile", "Close"
        ]
    );
    assert!(
        matches!(
            store.events[..],
            [
                ServerEvent::Completed(Completed::Stored { size: 5_000, .. }),
                ServerEvent::Refused(Refusal {
                    code: ErrorCode::NotFound,
                    ..
                }),
                ServerEvent::Completed(_),
            ]
        ),
        "{:?}",
        store.events
    );
    // Nothing waited for time.
    assert_eq!(clock.now(), Instant::ZERO);
}

#[test]
fn a_silent_client_tears_its_upload_off_at_the_idle_timeout_and_the_partial_is_kept() {
    let clock = FakeClock::default();
    let (mut client_end, mut server_end) = connection(4096);
    let data = generated(3_000, 1);
    let mut store = Store::default();

    let server = serve_files(&mut server_end, &mut store, &clock, 512, 256);
    // The client sends 1,200 bytes of the body and then nothing, its end still open.
    let client = async {
        let mut buffers = (vec![0u8; 64], vec![0u8; 256]);
        let mut client = Client::new(FileClient::new(), &mut client_end, &mut buffers, &clock);
        client
            .session
            .put("a.bin", data.len() as u64, RequestOptions::default(), false)
            .unwrap();
        client.send_body(&data, 1_200).await.unwrap();
    };
    let (closed, ()) = run(&clock, server, client);

    assert!(matches!(closed, Closed::Asked), "{closed:?}");
    assert_eq!(store.actions, ["Stage", "KeepPartial", "Close"]);
    assert_eq!(store.partials["a.bin"], data[..1_200]);
    assert!(store.files.is_empty());
    assert_eq!(clock.now(), Instant::ZERO + FILE_RULES.idle_timeout);
    drop(client_end);
}

#[test]
fn a_client_whose_server_stays_silent_times_out_at_its_reply_timeout() {
    let clock = FakeClock::default();
    // The server's end is held open and never read.
    let (mut client_end, _server_end) = connection(4096);
    let limit = Duration::from_secs(2);

    let client = async {
        let mut buffers = (vec![0u8; 64], vec![0u8; 256]);
        let mut client = Client::new(
            FileClient::new().with_reply_timeout(Some(limit)),
            &mut client_end,
            &mut buffers,
            &clock,
        );
        client
            .session
            .stat("a.bin", RequestOptions::default())
            .unwrap();
        client.out.send(&mut client.session, &[]).await.unwrap();
        client.reply(|_| Some(())).await
    };
    let (failed, ()) = run(&clock, client, async {});

    assert!(
        matches!(
            failed,
            Err(Failed::Reply(ReplyError::Session(FileProtocolError::TimedOut { limit: l }))) if l == limit
        ),
        "{failed:?}"
    );
    assert_eq!(clock.now(), Instant::ZERO + limit);
}

/// A connection's server end whose peer sent `input` and whose reads fail after `fail_at`
/// bytes of it; what the server sends is kept.
struct Breaks {
    input: Vec<u8>,
    at: usize,
    fail_at: usize,
    sent: Vec<u8>,
}

impl embedded_io_async::ErrorType for Breaks {
    type Error = io::Error;
}

impl embedded_io_async::Read for Breaks {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, io::Error> {
        if self.at == self.fail_at {
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        let n = buf.len().min(self.fail_at - self.at).min(50);
        buf[..n].copy_from_slice(&self.input[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl embedded_io_async::Write for Breaks {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, io::Error> {
        self.sent.extend_from_slice(buf);
        Ok(buf.len())
    }

    async fn flush(&mut self) -> Result<(), io::Error> {
        Ok(())
    }
}

#[test]
fn a_read_that_fails_mid_upload_keeps_the_partial_and_closes_for_the_failure() {
    let clock = FakeClock::default();
    let data = generated(2_000, 1);
    // The client's request and 900 bytes of the body, written down first.
    let mut request = Vec::new();
    let head_len = {
        let mut buffers = (vec![0u8; 64], vec![0u8; 256]);
        let mut client = Client::new(FileClient::new(), &mut request, &mut buffers, &clock);
        client
            .session
            .put("a.bin", data.len() as u64, RequestOptions::default(), false)
            .unwrap();
        let (head, ()) = run(&clock, client.send_head(), async {});
        head.unwrap();
        let head_len = client.out.stream().len();
        let (sent, ()) = run(&clock, client.send_body(&data, 900), async {});
        sent.unwrap();
        head_len
    };
    assert_eq!(request.len(), head_len + 900);
    // The connection breaks after 600 bytes of the body.
    let mut server_end = Breaks {
        input: request,
        at: 0,
        fail_at: head_len + 600,
        sent: Vec::new(),
    };
    let mut store = Store::default();
    let server = serve_files(&mut server_end, &mut store, &clock, 100, 256);
    let (closed, ()) = run(&clock, server, async {});

    assert!(
        matches!(&closed, Closed::Read(e) if e.kind() == io::ErrorKind::ConnectionReset),
        "{closed:?}"
    );
    assert_eq!(store.actions, ["Stage", "KeepPartial", "Close"]);
    assert_eq!(store.partials["a.bin"], data[..600]);
    // A torn upload is answered with nothing: the connection is gone.
    assert!(server_end.sent.is_empty());
}

// ---- the shell server's work: commands echoed ----

type ShellServer<'c> = ShellServerSession<'c, 512>;

/// Runs every command by answering with its text on stdout, in two chunks, and exit status 0.
#[derive(Default)]
struct Echo {
    ran: Vec<String>,
    refused: Vec<ErrorCode>,
    answered: u64,
}

impl<'c, 'i> RequestWork<'i, ShellServer<'c>, Stream> for Echo {
    async fn act(
        &mut self,
        out: &mut Outlet<'_, Stream>,
        session: &mut ShellServer<'c>,
    ) -> Result<(), Closed<io::Error>> {
        let Some(ShellAction::Run { command }) = session.poll_action() else {
            return Err(Closed::Asked);
        };
        let command = command.to_owned();
        let output = format!("ran: {command}\n");
        for chunk in output.as_bytes().chunks(5) {
            session
                .handle_output(OutputStream::Stdout, chunk)
                .map_err(|_| Closed::Asked)?;
            out.send(session, chunk).await?;
        }
        self.ran.push(command);
        let report = ExitReport {
            termination: Termination::Exited(0),
            truncated: false,
            timed_out: false,
        };
        session.handle_exit(report).map_err(|_| Closed::Asked)
    }

    async fn take(
        &mut self,
        _: &mut ShellServer<'c>,
        nothing: std::convert::Infallible,
    ) -> Result<(), Closed<io::Error>> {
        match nothing {}
    }

    fn record(&mut self, _: &ShellServer<'c>, event: ServerEvent<ExitReport>) {
        if let ServerEvent::Refused(refusal) = event {
            self.refused.push(refusal.code);
        }
    }

    fn is_over(&self, session: &ShellServer<'c>) -> bool {
        session.answered() > self.answered && session.is_idle()
    }
}

/// What a shell client read of one command's reply: its output and how it ended.
type Replied = Result<
    (Vec<u8>, Result<ExitReport, RefusalCode>),
    ReplyError<unstick_core::shell::ShellProtocolError, io::Error>,
>;

/// Reads the reply to the command `session` sent.
async fn read_reply(
    session: &mut ShellClientSession<512>,
    stream: &mut Stream,
    inbox: &mut Inbox<'_>,
    clock: &mut FakeClock,
) -> Replied {
    let mut output = Vec::new();
    let ended = await_reply(
        session,
        stream,
        inbox,
        clock,
        async |_, reply| match reply {
            ShellReply::Output { bytes, .. } => {
                output.extend_from_slice(bytes);
                None
            }
            ShellReply::Exit(report) => Some(Ok(report)),
            ShellReply::Refused { code, .. } => Some(Err(code)),
        },
    )
    .await?;
    Ok((output, ended))
}

#[test]
fn a_shell_request_is_served_alone_and_what_came_after_it_waits_in_the_inbox() {
    let clock = FakeClock::default();
    let (mut client_end, mut server_end) = connection(4096);
    let mut echo = Echo::default();

    let server = async {
        let mut command = [0u8; 512];
        let mut session = ShellServer::new(ShellRules::default(), Dialect::Framed, &mut command);
        let (mut read_buf, mut scratch) = ([0u8; 200], [0u8; 64]);
        let mut inbox = Inbox::new(&mut read_buf).unwrap();
        let mut out = Outlet::new(&mut server_end, &mut scratch).unwrap();
        let mut clock = clock.clone();
        // The first request, alone: the second, read with it, waits.
        serve_request(&mut session, &mut out, &mut inbox, &mut clock, &mut echo)
            .await
            .unwrap();
        let after_first = (echo.ran.clone(), inbox.unread().len());
        echo.answered = session.answered();
        serve_request(&mut session, &mut out, &mut inbox, &mut clock, &mut echo)
            .await
            .unwrap();
        echo.answered = session.answered();
        let closed =
            serve_connection(&mut session, &mut out, &mut inbox, &mut clock, &mut echo).await;
        (after_first, closed)
    };
    // Two commands sent back to back (one client session each), then both replies read,
    // through one small inbox: what the first reply's reads took of the second stays in it.
    let client = async {
        let mut sessions = [ShellClientSession::<512>::new(), ShellClientSession::new()];
        let mut scratch = [0u8; 512];
        let mut out = Outlet::new(&mut client_end, &mut scratch).unwrap();
        for (session, command) in sessions.iter_mut().zip(["echo one", "ls -l /tmp"]) {
            session.exec(command, None).unwrap();
            out.send(session, command.as_bytes()).await.unwrap();
        }
        let mut read_buf = [0u8; 7];
        let mut inbox = Inbox::new(&mut read_buf).unwrap();
        let mut clock = clock.clone();
        let [first, second] = &mut sessions;
        let first = read_reply(first, out.stream(), &mut inbox, &mut clock).await;
        let second = read_reply(second, out.stream(), &mut inbox, &mut clock).await;
        drop(client_end);
        (first.unwrap(), second.unwrap())
    };
    let (((ran_first, unread), closed), (first, second)) = run(&clock, server, client);

    assert_eq!(ran_first, ["echo one"]);
    assert!(unread > 0, "the second request was not read with the first");
    assert_eq!(echo.ran, ["echo one", "ls -l /tmp"]);
    assert!(matches!(closed, Closed::Asked), "{closed:?}");
    assert_eq!(first.0, b"ran: echo one\n");
    assert_eq!(second.0, b"ran: ls -l /tmp\n");
    for (_, ended) in [first, second] {
        assert_eq!(ended.unwrap().termination, Termination::Exited(0));
    }
    assert!(echo.refused.is_empty());
    assert_eq!(clock.now(), Instant::ZERO);
}

#[test]
fn a_shell_client_that_stops_mid_request_is_refused_at_the_idle_timeout_and_closed() {
    let clock = FakeClock::default();
    let (mut client_end, mut server_end) = connection(4096);
    let mut echo = Echo::default();
    let rules = ShellRules {
        idle_timeout: Duration::from_secs(30),
        ..ShellRules::default()
    };

    let server = async {
        let mut command = [0u8; 512];
        let mut session = ShellServer::new(rules, Dialect::Framed, &mut command);
        let (mut read_buf, mut scratch) = ([0u8; 64], [0u8; 64]);
        let mut inbox = Inbox::new(&mut read_buf).unwrap();
        let mut out = Outlet::new(&mut server_end, &mut scratch).unwrap();
        let mut clock = clock.clone();
        serve_connection(&mut session, &mut out, &mut inbox, &mut clock, &mut echo).await
    };
    // Half of the request's head goes out; then the client waits for the answer.
    let client = async {
        let mut session = ShellClientSession::<512>::new();
        session.exec("uname", None).unwrap();
        let (mut request, mut scratch) = (Vec::new(), [0u8; 512]);
        Outlet::new(&mut request, &mut scratch)
            .unwrap()
            .send(&mut session, b"uname")
            .await
            .unwrap();
        client_end.write_all(&request[..10]).await.unwrap();
        let mut read_buf = [0u8; 64];
        let mut inbox = Inbox::new(&mut read_buf).unwrap();
        let mut clock = clock.clone();
        await_reply(
            &mut session,
            &mut client_end,
            &mut inbox,
            &mut clock,
            async |_, reply| match reply {
                ShellReply::Refused { code, message } => {
                    Some((code, message.get().unwrap_or_default().to_owned()))
                }
                other => panic!("not a refusal: {other:?}"),
            },
        )
        .await
    };
    let (closed, refused) = run(&clock, server, client);

    assert!(matches!(closed, Closed::Asked), "{closed:?}");
    let (code, message) = refused.unwrap();
    assert_eq!(code, RefusalCode::Known(ErrorCode::IdleTimeout));
    assert!(message.contains("30 s"), "{message}");
    assert_eq!(echo.refused, [ErrorCode::IdleTimeout]);
    assert!(echo.ran.is_empty());
    assert_eq!(clock.now(), Instant::ZERO + rules.idle_timeout);
}
