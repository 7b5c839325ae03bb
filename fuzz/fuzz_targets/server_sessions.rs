//! The protocol servers' sans-IO sessions (`ShellServerSession` in both dialects,
//! `FileServerSession`) driven by a host that follows the calling contract of
//! `unstick_core::session`, with the fuzzer choosing the client's bytes, how they are cut into
//! reads, and every answer of the host (successes, refusals, short reads, failed writes).
//!
//! Input: a configuration byte (which server, dialect, token, limits), a count `n`, `n` bytes of
//! host choices (0 once they run out: whole reads, successes), then the client's bytes.
//!
//! Asserted, besides not panicking:
//! - progress: a bounded number of steps per input byte, and no step that changes nothing;
//! - `poll_transmit` runs dry; `Bytes(n)` has `1 <= n <= buf.len()`, `Body(n)` comes at most
//!   once per call and never exceeds the body handed to that call;
//! - `handle_input` consumes at most what it was given, and upload bytes it hands back are the
//!   last of the consumed bytes;
//! - every answer to the action the session asked for is taken (`Ok`), and every call that does
//!   not fit the state is `OutOfOrder` and changes nothing;
//! - after `Close` the session asks for nothing but `Close` and takes no more input;
//! - `answered()` never decreases (and grows by at most one per call); refusals have messages;
//! - what a framed session sends decodes as header frames (digests included);
//! - file server: a read stays inside the file it reads, a cut stays inside the staging file, a
//!   resume's prefix is only kept when it matches the request's `prefix_*` digest, and a
//!   `Commit` only comes when the digest the put's trailer declared (or the seed header's real
//!   MD5) is the hash of the bytes the host wrote; what it then reports stored is those bytes.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use std::time::Duration;
use unstick_core::files::{
    Completed, Deleted, EntryKind, EntryMeta, FileAction, FileRules, FileServerSession,
    IDLE_TIMEOUT, PartialState, StageKind, Staged, StatFound,
};
use unstick_core::session::{MESSAGE_CAP, Refusal, ServerEvent, SessionError, Transmit};
use unstick_core::shell::{
    Dialect, ExitReport, OutputStream, RunFailure, SeedFormat, ShellAction, ShellRules,
    ShellServerSession, StdinInput, Termination,
};
use unstick_core::time::Instant;
use unstick_core::{Algorithm, Checksum, ErrorCode, Event, FrameDecoder, Profile};
use unstick_fuzz::scripted::{Peer, Script, digest, split};

const TOKEN: &str = "s3cret";
const OUT: usize = 4096;
const HEADER_CAP: usize = 1024;
/// Output and file bytes the hosts hand over.
const PATTERN: [u8; 600] = {
    let mut bytes = [0u8; 600];
    let mut i = 0;
    while i < bytes.len() {
        bytes[i] = b"the quick brown fox jumps over the lazy dog\n"[i % 44];
        i += 1;
    }
    bytes
};

fuzz_target!(|bytes: &[u8]| {
    let Some((&config, rest)) = bytes.split_first() else {
        return;
    };
    let (script, peer) = split(rest);
    let mut script = Script {
        choices: script,
        at: 0,
    };
    if config & 1 == 0 {
        shell(config, &mut script, peer);
    } else {
        files(config, &mut script, peer);
    }
});

/// Everything a session sent, checked to decode as header frames when it should.
struct Sent {
    decoder: Option<Box<FrameDecoder<OUT>>>,
}

impl Sent {
    fn new(framed: bool) -> Self {
        Sent {
            decoder: framed.then(|| Box::new(FrameDecoder::header_frames(Profile::I32_LE))),
        }
    }

    fn push(&mut self, mut bytes: &[u8]) {
        let Some(decoder) = self.decoder.as_mut() else {
            return;
        };
        loop {
            match decoder.feed(bytes) {
                Ok((_, Event::NeedMore)) => return,
                Ok((n, _)) => bytes = &bytes[n..],
                Err(e) => panic!("a session sent bytes that are not header frames: {e}"),
            }
        }
    }
}

/// Drains `poll_transmit` into buffers of the length the script picks, `body` being what the
/// host handed to the last call; returns whether anything was sent.
fn drain(
    mut poll: impl FnMut(&mut [u8]) -> Option<Transmit>,
    script: &mut Script<'_>,
    body: &[u8],
    sent: &mut Sent,
) -> bool {
    let mut out = [0u8; OUT];
    let len = match script.choose() {
        0 => OUT,
        c => usize::from(c),
    };
    let mut bodies = 0;
    for round in 0..2 * OUT + 4 {
        let Some(transmit) = poll(&mut out[..len]) else {
            return round > 0;
        };
        match transmit {
            Transmit::Bytes(n) => {
                assert!(n >= 1 && n <= len, "Bytes({n}) for a buffer of {len}");
                sent.push(&out[..n]);
            }
            Transmit::Body(n) => {
                bodies += 1;
                assert_eq!(bodies, 1, "a second Body for one call");
                assert!(
                    n >= 1 && n <= body.len(),
                    "Body({n}) for a body of {}",
                    body.len()
                );
                sent.push(&body[..n]);
            }
        }
    }
    panic!("poll_transmit does not run dry");
}

fn check_refusal(refusal: &Refusal) {
    assert!(!refusal.message.is_empty(), "a refusal without a message");
    assert!(refusal.message.len() <= MESSAGE_CAP);
}

/// The host's clock: it moves only when the script lets time pass, by up to 2.55 s, or to the
/// session's deadline.
struct Clock(Instant);

impl Clock {
    /// Lets time pass as the script says: mostly none.
    fn tick(&mut self, script: &mut Script<'_>) -> Instant {
        let choice = script.choose();
        if choice >= 200 {
            self.0 = self.0 + Duration::from_millis(u64::from(choice - 200) * 50);
        }
        self.0
    }

    /// Waits for the deadline of a session that waits for input (it always has one); returns
    /// the instant then.
    fn wait_for(&mut self, deadline: Option<Instant>) -> Instant {
        let at = deadline.expect("a session waiting for input with no deadline");
        assert!(
            at.saturating_duration_since(self.0) <= Duration::from_secs(600),
            "a deadline past every limit"
        );
        self.0 = self.0.max(at);
        self.0
    }
}

/// Checks `answered()` after a call: it never decreases and grows by one at most.
fn check_answered(last: &mut u64, now: u64) {
    assert!(now >= *last, "answered() went from {last} to {now}");
    assert!(
        now - *last <= 1,
        "answered() went from {last} to {now} in one call"
    );
    *last = now;
}

fn refusal(code: ErrorCode) -> Refusal {
    Refusal::new(code, "the host says no")
}

// ---------------------------------------------------------------------------------------------
// The shell server.

const DONE: ExitReport = ExitReport {
    termination: Termination::Exited(0),
    truncated: false,
    timed_out: false,
};

/// What a shell session asks for, without the borrow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ShellAsk {
    Nothing,
    Run,
    Close,
}

fn shell_ask(session: &ShellServerSession<'_, HEADER_CAP>) -> ShellAsk {
    match session.poll_action() {
        None => ShellAsk::Nothing,
        Some(ShellAction::Run { .. }) => ShellAsk::Run,
        Some(ShellAction::Close) => ShellAsk::Close,
    }
}

fn shell(config: u8, script: &mut Script<'_>, peer: &[u8]) {
    let dialect = match (config >> 1) & 3 {
        0 => Dialect::Framed,
        1 => Dialect::Seed(SeedFormat::Json),
        2 => Dialect::Seed(SeedFormat::Size),
        _ => Dialect::Seed(SeedFormat::Raw),
    };
    let rules = ShellRules {
        token: (config & 8 != 0).then_some(TOKEN),
        max_command_len: if config & 16 != 0 { 16 } else { 2000 },
        seed_reply: match dialect {
            Dialect::Seed(format) => Some(format),
            Dialect::Framed => None,
        },
        idle_timeout: Duration::from_secs(30),
        seed_pause: Duration::from_millis(200),
        stdin: config & 64 != 0,
        pty: config & 128 != 0,
    };
    let framed = dialect == Dialect::Framed;
    let mut command = vec![0u8; if config & 32 != 0 { 32 } else { 2048 }];
    let mut session = ShellServerSession::<HEADER_CAP>::new(rules, dialect, &mut command);
    let max = session.max_command_len();
    let mut sent = Sent::new(framed);
    let mut peer = Peer { bytes: peer, at: 0 };
    let mut answered = 0;
    let mut clock = Clock(Instant::from_millis(1_000));
    let budget = 64 + 8 * (peer.bytes.len() + script.len());
    let mut stalls = 0;
    for step in 0.. {
        assert!(step < budget, "no end after {step} steps");
        let before = (shell_ask(&session), peer.at, session.answered());
        shell_misuse(&mut session, framed);
        let mut moved = false;
        match session.poll_action() {
            Some(ShellAction::Close) => {
                assert_eq!(session.handle_input(clock.0, b"more"), 0);
                session.handle_eof();
                assert_eq!(session.poll_timeout(clock.0), None, "a timer after Close");
                session.handle_timeout(clock.0 + Duration::from_secs(3600));
                assert_eq!(session.poll_action(), Some(ShellAction::Close));
                assert_eq!(session.poll_transmit(&mut [0u8; 64]), None);
                return;
            }
            Some(ShellAction::Run { command }) => {
                assert!(command.len() <= max, "a command over the limit runs");
                let refused =
                    session.streams_stdin() && !shell_stdin(&mut session, script, &mut peer);
                // A client that broke the protocol while its input streamed is refused, closing.
                if !refused {
                    match script.choose() % 5 {
                        0 | 1 if framed => {
                            for i in 0..script.choose() % 4 {
                                let len = usize::from(script.choose()) % 300 + 1;
                                let body = &PATTERN[i as usize..][..len];
                                let stream = if i % 2 == 0 {
                                    OutputStream::Stdout
                                } else {
                                    OutputStream::Stderr
                                };
                                session.handle_output(stream, body).unwrap();
                                drain(|o| session.poll_transmit(o), script, body, &mut sent);
                                check_answered(&mut answered, session.answered());
                            }
                            session.handle_exit(DONE).unwrap();
                        }
                        0 | 1 => {
                            let len = usize::from(script.choose()) % 300;
                            let body = &PATTERN[..len];
                            session.handle_seed_output(body, DONE).unwrap();
                            drain(|o| session.poll_transmit(o), script, body, &mut sent);
                        }
                        2 => session
                            .handle_run_failed(RunFailure::Spawn, "sh: not found")
                            .unwrap(),
                        3 => session
                            .handle_run_failed(RunFailure::Lost, format_args!("lost pid {}", 7))
                            .unwrap(),
                        _ => {
                            session.handle_client_gone();
                            assert_eq!(session.poll_action(), Some(ShellAction::Close));
                        }
                    }
                }
                moved = true;
            }
            // The client is silent (the script's choice, or it has nothing more): the host waits
            // for the session's deadline (a seed pause, the idle timeout), or sees the end.
            None if peer.is_done() || script.choose() >= 240 => {
                let now = clock.wait_for(session.poll_timeout(clock.0));
                if !peer.is_done() || script.choose() & 1 == 0 {
                    session.handle_timeout(now);
                    assert_eq!(
                        session.poll_timeout(now).filter(|&at| at <= now),
                        None,
                        "a deadline that passed and was not acted on"
                    );
                } else {
                    session.handle_eof();
                }
                moved = true;
            }
            None => moved |= shell_read(&mut session, script, &mut peer, &mut clock),
        }
        moved |= drain(|o| session.poll_transmit(o), script, &[], &mut sent);
        while let Some(event) = session.poll_event() {
            if let ServerEvent::Refused(refusal) = &event {
                check_refusal(refusal);
            }
        }
        check_answered(&mut answered, session.answered());
        let after = (shell_ask(&session), peer.at, session.answered());
        stalls = if moved || after != before {
            0
        } else {
            stalls + 1
        };
        assert!(stalls < 3, "steps that change nothing, at {after:?}");
    }
}

/// Passes the client's input to the running command, as the script says: reads fed while the
/// session takes them, each chunk written or the pipe found broken, until the input ends, the
/// script stops it (the command ends first) or the client runs dry. `false` when the client
/// broke the protocol (the session then asks to close).
fn shell_stdin(
    session: &mut ShellServerSession<'_, HEADER_CAP>,
    script: &mut Script<'_>,
    peer: &mut Peer<'_>,
) -> bool {
    let mut sent = Sent::new(true);
    for _ in 0..4 * peer.bytes.len() + 8 {
        if session.poll_action() == Some(ShellAction::Close) {
            drain(|o| session.poll_transmit(o), script, &[], &mut sent);
            return false;
        }
        if !session.takes_stdin() || peer.is_done() || script.choose() >= 250 {
            break;
        }
        let read = peer.read(script.choose());
        let (used, input) = session.handle_stdin(read);
        assert!(used <= read.len(), "consumed {used} of {}", read.len());
        peer.at += used;
        match input {
            Some(StdinInput::Bytes(bytes)) => {
                assert!(!bytes.is_empty() && read[..used].ends_with(bytes));
                assert!(
                    !session.takes_stdin(),
                    "more input taken while a chunk is held"
                );
                assert_eq!(session.handle_stdin(read), (0, None));
                if script.choose() & 3 == 0 {
                    session.handle_stdin_closed().unwrap();
                } else {
                    session.handle_stdin_written().unwrap();
                }
            }
            Some(StdinInput::End) => {
                assert!(!session.takes_stdin());
                assert_eq!(
                    session.handle_stdin_written(),
                    Err(SessionError::OutOfOrder)
                );
                break;
            }
            Some(StdinInput::Resize(_)) => {
                assert!(session.takes_stdin(), "a size is taken without a hold");
            }
            None => {}
        }
    }
    if session.poll_action() == Some(ShellAction::Close) {
        drain(|o| session.poll_transmit(o), script, &[], &mut sent);
        return false;
    }
    true
}

/// Feeds the session one read; returns whether it took any of it.
fn shell_read(
    session: &mut ShellServerSession<'_, HEADER_CAP>,
    script: &mut Script<'_>,
    peer: &mut Peer<'_>,
    clock: &mut Clock,
) -> bool {
    let now = clock.tick(script);
    let read = peer.read(script.choose());
    let used = session.handle_input(now, read);
    assert!(used <= read.len(), "consumed {used} of {}", read.len());
    peer.at += used;
    used > 0
}

/// Calls that do not fit the session's state: refused, changing nothing.
fn shell_misuse(session: &mut ShellServerSession<'_, HEADER_CAP>, framed: bool) {
    let before = (shell_ask(session), session.answered(), session.is_idle());
    let ask = before.0;
    let out_of_order = Err(SessionError::OutOfOrder);
    if ask != ShellAsk::Run || !framed {
        assert_eq!(
            session.handle_output(OutputStream::Stdout, b"x"),
            out_of_order
        );
        assert_eq!(session.handle_exit(DONE), out_of_order);
    }
    if ask != ShellAsk::Run || framed {
        assert_eq!(session.handle_seed_output(b"x", DONE), out_of_order);
    }
    if ask != ShellAsk::Run {
        assert_eq!(
            session.handle_run_failed(RunFailure::Spawn, "x"),
            out_of_order
        );
        assert_eq!(session.handle_stdin_written(), out_of_order);
        assert_eq!(session.handle_stdin_closed(), out_of_order);
        assert!(!session.streams_stdin() && !session.takes_stdin());
        assert_eq!(session.handle_stdin(b"\x00"), (0, None));
    }
    assert_eq!(
        (shell_ask(session), session.answered(), session.is_idle()),
        before
    );
    assert_eq!(session.poll_transmit(&mut [0u8; 64]), None);
    assert_eq!(session.poll_event(), None);
}

// ---------------------------------------------------------------------------------------------
// The file server.

/// What a file session asks for, without the borrow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FileAsk {
    Nothing,
    Stat,
    List,
    Delete,
    Open,
    Stage,
    Read,
    Truncate,
    Commit,
    Keep,
    MakeDir,
    Rename,
    Close,
}

fn file_ask(session: &FileServerSession<'_, HEADER_CAP>) -> FileAsk {
    match session.poll_action() {
        None => FileAsk::Nothing,
        Some(FileAction::Stat { .. }) => FileAsk::Stat,
        Some(FileAction::List { .. }) => FileAsk::List,
        Some(FileAction::Delete { .. }) => FileAsk::Delete,
        Some(FileAction::OpenFile { .. }) => FileAsk::Open,
        Some(FileAction::Stage { .. }) => FileAsk::Stage,
        Some(FileAction::ReadFile { .. }) => FileAsk::Read,
        Some(FileAction::Truncate { .. }) => FileAsk::Truncate,
        Some(FileAction::Commit { .. }) => FileAsk::Commit,
        Some(FileAction::KeepPartial) => FileAsk::Keep,
        Some(FileAction::MakeDir { .. }) => FileAsk::MakeDir,
        Some(FileAction::Rename { .. }) => FileAsk::Rename,
        Some(FileAction::Close) => FileAsk::Close,
    }
}

const MTIME: i64 = 1_700_000_000;

fn file_meta(bytes: &[u8]) -> EntryMeta {
    EntryMeta {
        kind: EntryKind::File,
        size: bytes.len() as u64,
        mtime: MTIME,
        mode: Some(0o100_644),
    }
}

/// The heads of the frames the session consumed, read by a decoder of its own from exactly the
/// bytes the session took: the last two (a put's request and its trailer).
struct Shadow {
    decoder: Box<FrameDecoder<HEADER_CAP>>,
    heads: [Option<serde_json::Value>; 2],
    broken: bool,
}

impl Shadow {
    fn feed(&mut self, mut bytes: &[u8]) {
        while !self.broken {
            match self.decoder.feed(bytes) {
                Ok((_, Event::NeedMore)) => return,
                Ok((n, Event::Head(_))) => {
                    bytes = &bytes[n..];
                    // A header with escapes is left unchecked: `serde_json` unescapes member
                    // names, the session's reader does not, so the two could see other members.
                    let json = self.decoder.header_json().filter(|j| !j.contains('\\'));
                    self.heads[0] = self.heads[1].take();
                    self.heads[1] = json.and_then(|j| serde_json::from_str(j).ok());
                }
                Ok((n, _)) => bytes = &bytes[n..],
                Err(e) if e.is_recoverable() => {}
                Err(_) => self.broken = true,
            }
        }
    }

    /// The request (the last head but one) and the last head.
    fn request_and_last(&self) -> Option<(&serde_json::Value, &serde_json::Value)> {
        if self.broken {
            return None;
        }
        Some((self.heads[0].as_ref()?, self.heads[1].as_ref()?))
    }

    fn last(&self) -> Option<&serde_json::Value> {
        if self.broken {
            return None;
        }
        self.heads[1].as_ref()
    }
}

/// The digest algorithm a request names (absent or `null`: XXH3).
fn request_algorithm(request: &serde_json::Value) -> Option<Algorithm> {
    match request.get("algorithm") {
        None | Some(serde_json::Value::Null) => Some(Algorithm::Xxh3),
        Some(serde_json::Value::String(name)) if name == "xxh3" => Some(Algorithm::Xxh3),
        Some(serde_json::Value::String(name)) if name == "md5" => Some(Algorithm::Md5),
        Some(_) => None,
    }
}

/// The `{prefix}xxh3` or `{prefix}md5` member of `head` as a digest.
fn digest_member(head: &serde_json::Value, prefix: &str, algorithm: Algorithm) -> Option<Checksum> {
    let name = format!("{prefix}{}", algorithm.member());
    let hex = head.get(&name)?.as_str()?;
    Checksum::from_hex(algorithm, hex.as_bytes())
}

/// A tiny store: files, and the partial uploads kept for a resume.
struct Store {
    files: BTreeMap<String, Vec<u8>>,
    partials: BTreeMap<String, Vec<u8>>,
}

struct Staging {
    bytes: Vec<u8>,
    kind: StageKind,
}

fn files(config: u8, script: &mut Script<'_>, peer: &[u8]) {
    let max_file_size = if config & 16 != 0 { 64 } else { 1 << 20 };
    let rules = FileRules {
        token: (config & 8 != 0).then_some(TOKEN),
        max_file_size,
        idle_timeout: IDLE_TIMEOUT,
    };
    let mut session = FileServerSession::<HEADER_CAP>::new(rules);
    let mut clock = Clock(Instant::from_millis(1_000));
    let mut store = Store {
        files: BTreeMap::from([
            ("a".to_string(), PATTERN[..12].to_vec()),
            ("d/b".to_string(), PATTERN[..300].to_vec()),
            ("e".to_string(), Vec::new()),
        ]),
        partials: BTreeMap::from([
            ("a".to_string(), PATTERN[..5].to_vec()),
            ("p".to_string(), PATTERN[..40].to_vec()),
        ]),
    };
    let mut shadow = Shadow {
        decoder: Box::new(FrameDecoder::header_frames(
            Profile::I32_LE.with_max_body_len(max_file_size),
        )),
        heads: [None, None],
        broken: false,
    };
    let mut staging: Option<Staging> = None;
    let mut open: Option<Vec<u8>> = None;
    let mut sent = Sent::new(true);
    let mut peer = Peer { bytes: peer, at: 0 };
    // The host's read buffer: what was read and not taken yet.
    let mut unread: &[u8] = &[];
    let mut answered = 0;
    let budget = 64 + 16 * (peer.bytes.len() + script.len());
    let mut stalls = 0;
    for step in 0.. {
        assert!(step < budget, "no end after {step} steps");
        let before = (
            file_ask(&session),
            peer.at,
            unread.len(),
            session.answered(),
        );
        file_misuse(&mut session);
        let mut moved = false;
        let ask = file_ask(&session);
        match session.poll_action() {
            None => {
                if unread.is_empty() && (peer.is_done() || script.choose() >= 250) {
                    // The client is silent: the host waits for the session's deadline, or sees
                    // the end.
                    let now = clock.wait_for(session.poll_timeout(clock.0));
                    if !peer.is_done() || script.choose() & 1 == 0 {
                        session.handle_timeout(now);
                    } else {
                        session.handle_eof();
                    }
                    moved = true;
                } else if unread.is_empty() {
                    unread = peer.read(script.choose());
                    peer.at += unread.len();
                    moved = true;
                } else {
                    let now = clock.tick(script);
                    let (used, received) = session.handle_input(now, unread);
                    assert!(used <= unread.len(), "consumed {used} of {}", unread.len());
                    shadow.feed(&unread[..used]);
                    let consumed = &unread[..used];
                    unread = &unread[used..];
                    moved |= used > 0;
                    if let Some(chunk) = received {
                        assert_eq!(ask, FileAsk::Nothing, "upload bytes in the host's turn");
                        assert!(!chunk.is_empty());
                        assert_eq!(
                            chunk.as_ptr_range().end,
                            consumed.as_ptr_range().end,
                            "upload bytes that are not the last consumed"
                        );
                        if script.choose() == 255 {
                            session
                                .handle_write_failed(refusal(ErrorCode::StorageError))
                                .unwrap();
                        } else {
                            let staged = staging.as_mut().expect("upload bytes with no staging");
                            staged.bytes.extend_from_slice(chunk);
                        }
                    }
                }
            }
            Some(FileAction::Close) => {
                assert_eq!(session.handle_input(clock.0, b"more"), (0, None));
                session.handle_eof();
                assert_eq!(session.poll_timeout(clock.0), None, "a timer after Close");
                assert_eq!(session.poll_action(), Some(FileAction::Close));
                assert_eq!(session.poll_transmit(&mut [0u8; 64]), None);
                assert_eq!(session.handle_done(Ok(())), Err(SessionError::OutOfOrder));
                return;
            }
            Some(FileAction::Stat { path }) => {
                let found = if script.choose() == 255 {
                    Err(refusal(ErrorCode::StorageError))
                } else {
                    Ok(StatFound {
                        entry: store.files.get(path).map(|f| file_meta(f)),
                        partial_size: store.partials.get(path).map_or(0, |p| p.len() as u64),
                    })
                };
                session.handle_stat(found).unwrap();
            }
            Some(FileAction::List { path }) => {
                let names: Vec<String> = store
                    .files
                    .keys()
                    .filter_map(|name| match path {
                        None => Some(name.split('/').next().unwrap_or(name).to_string()),
                        Some(dir) => name
                            .strip_prefix(dir)
                            .and_then(|rest| rest.strip_prefix('/'))
                            .map(str::to_string),
                    })
                    .collect();
                let extra = usize::from(script.choose() % 4);
                let escaped_names = ["bad\\xff", "x\\\\y"];
                for (i, name) in names
                    .iter()
                    .map(String::as_str)
                    .chain(escaped_names.into_iter().cycle().take(extra))
                    .enumerate()
                {
                    let meta = file_meta(&PATTERN[..i]);
                    session.handle_entry(name, i >= names.len(), meta).unwrap();
                    drain(|o| session.poll_transmit(o), script, &[], &mut sent);
                    check_answered(&mut answered, session.answered());
                }
                let listed = if script.choose() == 255 {
                    Err(refusal(ErrorCode::StorageError))
                } else {
                    Ok(())
                };
                session.handle_done(listed).unwrap();
            }
            Some(FileAction::Delete { path }) => {
                let deleted = match script.choose() {
                    255 => Err(refusal(ErrorCode::StorageError)),
                    choice => {
                        let path = path.to_string();
                        let entry_removed = store.files.remove(&path).is_some();
                        let partial = if !store.partials.contains_key(&path) {
                            PartialState::Absent
                        } else if choice == 254 {
                            PartialState::InUse
                        } else {
                            store.partials.remove(&path);
                            PartialState::Removed
                        };
                        Ok(Deleted {
                            entry_removed,
                            partial,
                        })
                    }
                };
                session.handle_deleted(deleted).unwrap();
            }
            Some(FileAction::OpenFile { path }) => {
                let opened = match store.files.get(path) {
                    _ if script.choose() == 255 => Err(refusal(ErrorCode::StorageError)),
                    Some(file) => {
                        open = Some(file.clone());
                        Ok(file_meta(file))
                    }
                    None => Err(refusal(ErrorCode::NotFound)),
                };
                session.handle_opened(opened).unwrap();
            }
            Some(FileAction::Stage { path, kind }) => {
                let staged = match (script.choose(), kind) {
                    (255, _) => Err(refusal(ErrorCode::StorageError)),
                    (254, StageKind::Fresh | StageKind::Resume) => Ok(Staged::PartialBusy),
                    (_, StageKind::Resume) => match store.partials.get(path) {
                        Some(partial) => {
                            let len = partial.len() as u64;
                            staging = Some(Staging {
                                bytes: partial.clone(),
                                kind,
                            });
                            Ok(Staged::Ready { len })
                        }
                        None => Ok(Staged::NoPartial),
                    },
                    (_, StageKind::Fresh | StageKind::Temporary) => {
                        if kind == StageKind::Fresh {
                            store.partials.remove(path);
                        }
                        staging = Some(Staging {
                            bytes: Vec::new(),
                            kind,
                        });
                        Ok(Staged::Ready { len: 0 })
                    }
                };
                session.handle_staged(staged).unwrap();
            }
            Some(FileAction::ReadFile { offset, len }) => {
                let source = match (&open, &staging) {
                    (Some(file), _) => file.as_slice(),
                    (None, Some(staged)) => staged.bytes.as_slice(),
                    (None, None) => panic!("a read with nothing open or staged"),
                };
                assert!(len > 0, "a read of nothing");
                let end = offset.checked_add(len).expect("a read past u64");
                assert!(
                    end <= source.len() as u64,
                    "a read of {offset}..{end} from {} bytes",
                    source.len()
                );
                let (offset, len) = (offset as usize, len as usize);
                match script.choose() {
                    255 => session
                        .handle_read_failed(refusal(ErrorCode::StorageError))
                        .unwrap(),
                    choice => {
                        let n = if choice == 0 {
                            len
                        } else {
                            usize::from(choice).min(len)
                        };
                        // Copied out: the store may change before the body is sent.
                        let chunk = source[offset..offset + n].to_vec();
                        session.handle_file_data(&chunk).unwrap();
                        moved |= drain(|o| session.poll_transmit(o), script, &chunk, &mut sent);
                    }
                }
            }
            Some(FileAction::Truncate { len }) => {
                let staged = staging.as_mut().expect("a cut with nothing staged");
                assert!(
                    len as usize <= staged.bytes.len(),
                    "a cut past the staging file"
                );
                // The prefix kept is the one the client vouched for.
                if let Some(request) = shadow.last() {
                    let algorithm = request_algorithm(request).expect("a put without algorithm");
                    assert_eq!(
                        digest_member(request, "prefix_", algorithm),
                        Some(digest(algorithm, &staged.bytes[..len as usize])),
                        "a resumed prefix kept that does not match the request's digest"
                    );
                }
                staged.bytes.truncate(len as usize);
                let cut = if script.choose() == 255 {
                    Err(refusal(ErrorCode::StorageError))
                } else {
                    Ok(())
                };
                session.handle_done(cut).unwrap();
            }
            Some(FileAction::Commit { path, .. }) => {
                let path = path.to_string();
                let staged = staging.take().expect("a commit with nothing staged");
                let seed = staged.kind == StageKind::Temporary;
                if !seed && let Some((request, trailer)) = shadow.request_and_last() {
                    let algorithm = request_algorithm(request).expect("a put without algorithm");
                    assert_eq!(
                        digest_member(trailer, "file_", algorithm),
                        Some(digest(algorithm, &staged.bytes)),
                        "a commit of a put whose trailer digest is not that of the bytes written"
                    );
                }
                if script.choose() == 255 {
                    session
                        .handle_done(Err(refusal(ErrorCode::StorageError)))
                        .unwrap();
                } else {
                    session.handle_done(Ok(())).unwrap();
                    let Some(ServerEvent::Completed(Completed::Stored {
                        size,
                        resumed_from,
                        digest: declared,
                        seed: was_seed,
                    })) = session.poll_event()
                    else {
                        panic!("a commit that completes nothing");
                    };
                    assert_eq!(size, staged.bytes.len() as u64, "stored size");
                    assert_eq!(was_seed, seed);
                    assert!(resumed_from <= size);
                    assert!(seed || declared.is_some(), "a put stored without a digest");
                    if let Some(declared) = declared {
                        assert_eq!(
                            declared,
                            digest(declared.algorithm(), &staged.bytes),
                            "stored under a digest that is not that of the bytes written"
                        );
                    }
                    store.partials.remove(&path);
                    store.files.insert(path, staged.bytes);
                }
            }
            Some(FileAction::KeepPartial) => {
                if let Some(staged) = staging.take()
                    && staged.kind != StageKind::Temporary
                {
                    store
                        .partials
                        .insert(session.path().to_string(), staged.bytes);
                }
                session.handle_done(Ok(())).unwrap();
            }
            Some(FileAction::MakeDir { path, .. }) => {
                assert!(unstick_core::files::check_path(path).is_ok(), "{path:?}");
                let made = if script.choose() == 255 {
                    Err(refusal(ErrorCode::Exists))
                } else {
                    Ok(())
                };
                session.handle_done(made).unwrap();
            }
            Some(FileAction::Rename { from, to }) => {
                // Both names obey the rules every other path does.
                assert!(unstick_core::files::check_path(from).is_ok(), "{from:?}");
                assert!(unstick_core::files::check_path(to).is_ok(), "{to:?}");
                let renamed = match store.files.remove(from) {
                    Some(bytes) => {
                        store.files.insert(to.to_string(), bytes);
                        Ok(())
                    }
                    None => Err(refusal(ErrorCode::NotFound)),
                };
                session.handle_done(renamed).unwrap();
            }
        }
        moved |= drain(|o| session.poll_transmit(o), script, &[], &mut sent);
        while let Some(event) = session.poll_event() {
            if let ServerEvent::Refused(refusal) = &event {
                check_refusal(refusal);
            }
        }
        if session.answered() != answered {
            staging = None;
            open = None;
        }
        check_answered(&mut answered, session.answered());
        let after = (
            file_ask(&session),
            peer.at,
            unread.len(),
            session.answered(),
        );
        stalls = if moved || after != before {
            0
        } else {
            stalls + 1
        };
        assert!(stalls < 3, "steps that change nothing, at {after:?}");
    }
}

/// Calls that do not fit the session's state: refused, changing nothing.
fn file_misuse(session: &mut FileServerSession<'_, HEADER_CAP>) {
    let before = (file_ask(session), session.answered(), session.is_idle());
    let ask = before.0;
    let out_of_order = Err(SessionError::OutOfOrder);
    let meta = file_meta(b"");
    if ask != FileAsk::Stat {
        let found = StatFound {
            entry: None,
            partial_size: 0,
        };
        assert_eq!(session.handle_stat(Ok(found)), out_of_order);
    }
    if ask != FileAsk::List {
        assert_eq!(session.handle_entry("x", false, meta), out_of_order);
    }
    if ask != FileAsk::Delete {
        let deleted = Deleted {
            entry_removed: true,
            partial: PartialState::Absent,
        };
        assert_eq!(session.handle_deleted(Ok(deleted)), out_of_order);
    }
    if ask != FileAsk::Open {
        assert_eq!(session.handle_opened(Ok(meta)), out_of_order);
    }
    if ask != FileAsk::Stage {
        assert_eq!(
            session.handle_staged(Ok(Staged::Ready { len: 0 })),
            out_of_order
        );
    }
    if ask != FileAsk::Read {
        assert_eq!(session.handle_file_data(b"x"), out_of_order);
        assert_eq!(
            session.handle_read_failed(refusal(ErrorCode::StorageError)),
            out_of_order
        );
    }
    // Upload bytes may fail to be written while they come (the session asks for nothing) and
    // once the last of them ended the body (it may ask for the commit): anywhere else the
    // failure is out of order.
    if !matches!(ask, FileAsk::Nothing | FileAsk::Commit) {
        assert_eq!(
            session.handle_write_failed(refusal(ErrorCode::StorageError)),
            out_of_order
        );
    }
    if !matches!(
        ask,
        FileAsk::List
            | FileAsk::Truncate
            | FileAsk::Commit
            | FileAsk::Keep
            | FileAsk::MakeDir
            | FileAsk::Rename
    ) {
        assert_eq!(session.handle_done(Ok(())), out_of_order);
    }
    assert_eq!(
        (file_ask(session), session.answered(), session.is_idle()),
        before
    );
    assert_eq!(session.poll_transmit(&mut [0u8; 64]), None);
    assert_eq!(session.poll_event(), None);
}
