//! The protocol clients' sans-IO sessions (`ShellClientSession`, `SeedClientSession`,
//! `FileClientSession`) driven by a host that follows their calling contract, with the fuzzer
//! choosing the server's bytes, how they are cut into reads, which operations the host starts
//! and how it hands over its local file.
//!
//! Input: a configuration byte (which client, token, digest algorithm), a count `n`, `n` bytes
//! of host choices (0 once they run out: whole reads, the first operation), then the server's
//! bytes.
//!
//! Asserted, besides not panicking:
//! - progress: a bounded number of steps per input byte, and no step that changes nothing;
//! - `poll_transmit` runs dry; `Bytes(n)` has `1 <= n <= buf.len()`, `Body(n)` never exceeds
//!   the body handed over (the command, the local chunk), and a request's body goes out whole;
//! - `handle_input` consumes at most what it was given, all of it when it reports nothing, and
//!   hands out output and download bytes as non-empty slices ending where it stopped;
//! - every call the contract allows is taken; a call it does not allow (a second operation, a
//!   chunk nobody asked for, input while a prefix is hashed) is refused and changes nothing;
//! - an event fits the operation in flight, and an operation's last event leaves the session
//!   idle;
//! - after a protocol error the session stays failed (the same error, or `Poisoned`) until it
//!   is reset or replaced;
//! - local reads stay inside the local file; `Stored` and `Fetched` report the digest of the
//!   bytes the host sent or received (the test's own XXH3-128 or MD5), their sizes and offsets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unstick_core::Algorithm;
use unstick_core::Verdict;
use unstick_core::files::client::{
    ClientAction, ClientEvent, FileClientSession, FileProtocolError, RequestOptions,
};
use unstick_core::session::{SessionError, Transmit};
use unstick_core::shell::{
    ExecError, ExecOptions, SeedClientSession, SeedReply, ShellClientSession, ShellProtocolError,
    ShellReply,
};
use unstick_core::time::Instant;
use unstick_fuzz::scripted::{Peer, Script, digest, split};

use std::time::Duration;

/// The host's clock: it stands still but for the waits the script asks for.
const START: Instant = Instant::from_millis(1_000);

/// Whether the script has the host wait for the session's deadline instead of reading.
fn waits(script: &mut Script<'_>) -> bool {
    script.choose() >= 250
}

const TOKEN: &str = "s3cret";
const OUT: usize = 1024;
/// The local file's bytes.
const PATTERN: [u8; 300] = {
    let mut bytes = [0u8; 300];
    let mut i = 0;
    while i < bytes.len() {
        bytes[i] = b"pack my box with five dozen liquor jugs\n"[i % 40];
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
    let mut peer = Peer { bytes: peer, at: 0 };
    match config % 3 {
        0 => shell(config, &mut script, &mut peer),
        1 => seed(&mut script, &mut peer),
        _ => files(config, &mut script, &mut peer),
    }
});

/// A step budget: a few steps per byte of input.
fn budget(script: &Script<'_>, peer: &Peer<'_>) -> usize {
    64 + 16 * (script.choices.len() + peer.bytes.len())
}

/// Drains `poll_transmit` into buffers of the length the script picks, `body` being what the
/// host handed over last; returns the body bytes announced.
fn drain(
    mut poll: impl FnMut(&mut [u8]) -> Option<Transmit>,
    script: &mut Script<'_>,
    body: &[u8],
) -> usize {
    let mut out = [0u8; OUT];
    let len = match script.choose() {
        0 => OUT,
        c => usize::from(c),
    };
    let mut announced = 0;
    for _ in 0..2 * OUT + 4 {
        match poll(&mut out[..len]) {
            None => return announced,
            Some(Transmit::Bytes(n)) => {
                assert!(n >= 1 && n <= len, "Bytes({n}) for a buffer of {len}");
            }
            Some(Transmit::Body(n)) => {
                assert_eq!(announced, 0, "a second Body for one call");
                assert!(
                    n >= 1 && n <= body.len(),
                    "Body({n}) for a body of {}",
                    body.len()
                );
                announced = n;
            }
        }
    }
    panic!("poll_transmit does not run dry");
}

/// Checks that `bytes`, handed out by a call that consumed `used` bytes of `input`, are a
/// non-empty slice of the input ending where the call stopped.
fn check_slice(bytes: &[u8], input: &[u8], used: usize) {
    assert!(!bytes.is_empty(), "an empty slice of output");
    assert_eq!(
        bytes.as_ptr_range().end,
        input[..used].as_ptr_range().end,
        "output that is not the last of the consumed input"
    );
}

// ---------------------------------------------------------------------------------------------
// The shell clients.

const COMMANDS: [&str; 4] = ["uname -a", "echo 新", "", "ls -l /tmp | head -n 3"];

fn shell(config: u8, script: &mut Script<'_>, peer: &mut Peer<'_>) {
    let long_token = "t".repeat(2 * OUT);
    let limit = (config & 16 != 0).then_some(Duration::from_secs(5));
    let mut session = ShellClientSession::<OUT>::new().with_reply_timeout(limit);
    // Commands stream their standard input (a chunk of the pattern at a time).
    let streams = config & 32 != 0;
    let mut now = START;
    let budget = budget(script, peer);
    let mut stalls = 0;
    for step in 0.. {
        assert!(step < budget, "no end after {step} steps");
        let at = peer.at;
        if session.is_idle() {
            // What the command left to send (the end of its input) goes first.
            assert_eq!(drain(|o| session.poll_transmit(o), script, &[]), 0);
            assert!(!session.wants_stdin());
            if peer.is_done() {
                assert_eq!(session.handle_eof(), Ok(()));
                return;
            }
            let choice = script.choose();
            let command = COMMANDS[usize::from(choice) % COMMANDS.len()];
            let token = match (choice >> 2) % 3 {
                _ if config & 4 == 0 => None,
                0 | 1 => Some(TOKEN),
                _ => Some(long_token.as_str()),
            };
            let options = ExecOptions {
                token,
                stdin: streams,
                ..ExecOptions::default()
            };
            if let Err(e) = session.exec_with(command, options) {
                assert_eq!(e, ExecError::HeadTooLarge { capacity: OUT });
                assert!(token.is_some_and(|t| t.len() > OUT / 2));
                assert!(session.is_idle());
                assert_eq!(session.poll_transmit(&mut [0u8; 16]), None);
                session.exec(command, None).unwrap();
            }
            assert!(!session.is_idle());
            let body = drain(|o| session.poll_transmit(o), script, command.as_bytes());
            assert_eq!(body, command.len(), "the command did not go out whole");
            assert_eq!(
                session.exec("x", None),
                Err(ExecError::Session(SessionError::OutOfOrder))
            );
            continue;
        }
        if peer.is_done() {
            let e = session
                .handle_eof()
                .expect_err("the end of a command's stream");
            assert_eq!(e, ShellProtocolError::ConnectionClosed);
            assert_eq!(session.handle_eof(), Err(e));
            return;
        }
        if session.wants_stdin() {
            // A chunk of input, or its end, as the script says; it goes out whole.
            match usize::from(script.choose()) {
                0 => {
                    session.end_stdin().unwrap();
                    assert_eq!(drain(|o| session.poll_transmit(o), script, &[]), 0);
                }
                n => {
                    let chunk = &PATTERN[..n.min(PATTERN.len())];
                    session.send_stdin(chunk).unwrap();
                    assert!(!session.wants_stdin());
                    assert_eq!(session.send_stdin(chunk), Err(SessionError::OutboxFull));
                    let body = drain(|o| session.poll_transmit(o), script, chunk);
                    assert_eq!(body, chunk.len(), "a chunk did not go out whole");
                }
            }
        }
        if waits(script) {
            // The server is silent: the host waits for the session's deadline, if it has one
            // (a limit that a server which predates keepalives made it drop for this command).
            let deadline = session.poll_timeout(now);
            assert!(
                deadline.is_none() || limit.is_some(),
                "a deadline without a limit"
            );
            if let Some(at) = deadline {
                now = at;
                let e = session
                    .handle_timeout(now)
                    .expect_err("a silence past the limit");
                assert!(matches!(e, ShellProtocolError::TimedOut { .. }));
                assert_eq!(session.handle_input(now, b"more"), Err(e));
                session.reset();
                // What the server sends after is the next connection's.
                peer.at += peer.read(script.choose()).len();
                continue;
            }
        }
        let input = peer.read(script.choose());
        match session.handle_input(now, input) {
            Ok((used, reply)) => {
                assert!(used <= input.len(), "consumed {used} of {}", input.len());
                peer.at += used;
                match reply {
                    None => assert_eq!(used, input.len(), "no reply, yet input left"),
                    Some(ShellReply::Output { bytes, .. }) => check_slice(bytes, input, used),
                    Some(ShellReply::Exit(_) | ShellReply::Refused { .. }) => {
                        assert!(session.is_idle(), "a command's end leaves it busy");
                    }
                }
            }
            Err(e) => {
                assert!(!session.is_idle());
                assert_eq!(session.handle_input(now, b"more"), Err(e.clone()));
                assert_eq!(session.handle_input(now, &[]), Err(e.clone()));
                assert_eq!(session.handle_eof(), Err(e));
                assert_eq!(
                    session.exec("x", None),
                    Err(ExecError::Session(SessionError::OutOfOrder))
                );
                // The host drops the connection; what follows is the next one's.
                session.reset();
                assert!(session.is_idle());
                assert_eq!(session.poll_transmit(&mut [0u8; 16]), None);
                peer.at += input.len();
            }
        }
        stalls = if peer.at != at { 0 } else { stalls + 1 };
        assert!(stalls < 3, "steps that change nothing");
    }
}

fn seed(script: &mut Script<'_>, peer: &mut Peer<'_>) {
    let mut session = SeedClientSession::<OUT>::new();
    let budget = budget(script, peer);
    for step in 0.. {
        assert!(step < budget, "no end after {step} steps");
        if session.is_idle() {
            if peer.is_done() {
                assert_eq!(session.handle_eof(), Ok(()));
                return;
            }
            let command = COMMANDS[usize::from(script.choose()) % COMMANDS.len()];
            session.send(command).unwrap();
            let body = drain(|o| session.poll_transmit(o), script, command.as_bytes());
            assert_eq!(body, command.len(), "the command did not go out whole");
            assert_eq!(session.is_idle(), command.is_empty());
            if !command.is_empty() {
                assert_eq!(session.send("x"), Err(SessionError::OutOfOrder));
            }
            continue;
        }
        if peer.is_done() {
            let e = session
                .handle_eof()
                .expect_err("the end of a command's stream");
            assert_eq!(e, ShellProtocolError::ConnectionClosed);
            return;
        }
        let input = peer.read(script.choose());
        match session.handle_input(START, input) {
            Ok((used, reply)) => {
                assert!(used <= input.len(), "consumed {used} of {}", input.len());
                peer.at += used;
                match reply {
                    None => assert_eq!(used, input.len(), "no reply, yet input left"),
                    Some(SeedReply::Output(bytes)) => check_slice(bytes, input, used),
                    Some(SeedReply::End { last, md5 }) => {
                        if !last.is_empty() {
                            check_slice(last, input, used);
                        }
                        assert!(session.is_idle(), "a reply's end leaves it busy");
                        assert!(matches!(
                            md5,
                            Verdict::Verified | Verdict::NotADigest | Verdict::Absent
                        ));
                    }
                }
            }
            Err(e) => {
                assert_eq!(session.handle_input(START, b"more"), Err(e.clone()));
                assert_eq!(session.handle_eof(), Err(e));
                assert_eq!(session.send("x"), Err(SessionError::OutOfOrder));
                session.reset();
                assert!(session.is_idle());
                peer.at += input.len();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The file client.

/// The operation in flight, as the host started it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Stat,
    List {
        entries: u64,
    },
    Delete,
    /// An upload of the local file's first `size` bytes.
    Put {
        size: u64,
        resume: bool,
        from: u64,
    },
    /// A download resuming after a local prefix of `have` bytes.
    Get {
        have: u64,
        head: Option<u64>,
    },
    Seed {
        size: u64,
    },
}

const PATHS: [&str; 3] = ["a", "d/b.txt", "新/x"];

fn files(config: u8, script: &mut Script<'_>, peer: &mut Peer<'_>) {
    let algorithm = if config & 8 == 0 {
        Algorithm::Xxh3
    } else {
        Algorithm::Md5
    };
    let options = RequestOptions {
        token: (config & 4 != 0).then_some(TOKEN),
        algorithm,
    };
    let mut session = FileClientSession::<OUT, OUT>::new();
    let mut now = START;
    let budget = budget(script, peer);
    let mut op: Option<Op> = None;
    // The bytes of the download in progress, after the local prefix.
    let mut received = Vec::new();
    let mut stalls = 0;
    for step in 0.. {
        assert!(step < budget, "no end after {step} steps");
        let before = (op, peer.at);
        let mut moved = false;
        if op.is_none() {
            assert!(session.is_idle(), "busy with no operation in flight");
            if peer.is_done() {
                assert_eq!(session.handle_eof(), Ok(None));
                return;
            }
            op = Some(start(&mut session, script, options));
            assert_eq!(session.stat("a", options), Err(FileProtocolError::InFlight));
            received.clear();
            drain(|o| session.poll_transmit(o), script, &[]);
            continue;
        }
        match session.poll_action() {
            Some(ClientAction::ReadLocal { offset, len, send }) => {
                assert!(len > 0, "a local read of nothing");
                assert_eq!(
                    session.poll_timeout(now),
                    None,
                    "a reply due in the host's turn"
                );
                let end = offset.checked_add(len).expect("a local read past u64");
                let local_len = match op {
                    Some(Op::Put { size, .. } | Op::Seed { size }) => size,
                    Some(Op::Get { have, .. }) => have,
                    _ => panic!("a local read during {op:?}"),
                };
                assert!(
                    end <= local_len,
                    "a local read of {offset}..{end} of {local_len}"
                );
                let choice = script.choose();
                if choice == 255 && !peer.is_done() {
                    // The server's bytes come first (say, a refusal during the upload).
                    if send {
                        moved |= feed(&mut session, script, peer, &mut op, &mut received, now);
                    } else {
                        let input = peer.read(script.choose());
                        assert_eq!(
                            session.handle_input(now, input),
                            Err(SessionError::OutOfOrder.into())
                        );
                        assert!(!session.is_poisoned());
                        // Nothing changed but the script, which runs out.
                        moved = true;
                    }
                } else {
                    let n = if choice == 0 {
                        len
                    } else {
                        u64::from(choice).min(len)
                    };
                    let chunk = &PATTERN[offset as usize..(offset + n) as usize];
                    session.handle_local_data(chunk).unwrap();
                    let body = drain(|o| session.poll_transmit(o), script, chunk);
                    assert_eq!(body, if send { chunk.len() } else { 0 });
                    moved = true;
                }
            }
            Some(ClientAction::CloseSend) => {
                let Some(Op::Seed { size }) = op else {
                    panic!("CloseSend during {op:?}");
                };
                assert_eq!(
                    session.handle_local_data(b"x"),
                    Err(SessionError::OutOfOrder.into())
                );
                if peer.is_done() {
                    let event = session.handle_eof().unwrap();
                    assert_eq!(event, Some(ClientEvent::SeedSent { size }));
                    assert!(session.is_idle());
                    // The server closed the connection: the run is over.
                    return;
                }
                let input = peer.read(script.choose());
                assert_eq!(session.handle_input(now, input), Ok((input.len(), None)));
                peer.at += input.len();
            }
            None => {
                if session.is_idle() {
                    panic!("idle during {op:?} without its last event");
                }
                assert_eq!(
                    session.handle_local_data(b"x"),
                    Err(SessionError::OutOfOrder.into())
                );
                if peer.is_done() {
                    let e = session
                        .handle_eof()
                        .expect_err("the end of a reply's stream");
                    assert!(matches!(
                        e,
                        FileProtocolError::Closed | FileProtocolError::Truncated { .. }
                    ));
                    assert!(session.is_poisoned());
                    return;
                }
                if waits(script) {
                    // The server is silent: the host waits for the reply timeout.
                    let at = session
                        .poll_timeout(now)
                        .expect("a reply due with no deadline");
                    now = at;
                    assert!(matches!(
                        session.handle_timeout(now),
                        Err(FileProtocolError::TimedOut { .. })
                    ));
                    assert!(session.is_poisoned());
                    peer.at += peer.read(script.choose()).len();
                    moved = true;
                } else {
                    moved |= feed(&mut session, script, peer, &mut op, &mut received, now);
                }
            }
        }
        // Replies may queue requests (a resumed put's head after the server's `stat`).
        if drain(|o| session.poll_transmit(o), script, &[]) > 0 {
            panic!("a body announced after a call that handed over none");
        }
        if session.is_poisoned() {
            assert_eq!(
                session.handle_input(now, b"more"),
                Err(FileProtocolError::Poisoned)
            );
            assert_eq!(session.stat("a", options), Err(FileProtocolError::Poisoned));
            // The host drops the connection and opens another.
            session = FileClientSession::new();
            op = None;
            moved = true;
        }
        stalls = if moved || (op, peer.at) != before {
            0
        } else {
            stalls + 1
        };
        assert!(stalls < 3, "steps that change nothing during {op:?}");
    }
}

/// Starts the operation the script picks.
fn start(
    session: &mut FileClientSession<OUT, OUT>,
    script: &mut Script<'_>,
    options: RequestOptions<'_>,
) -> Op {
    let choice = script.choose();
    let path = PATHS[usize::from(choice >> 4) % PATHS.len()];
    let size = u64::from(script.choose()) % (PATTERN.len() as u64 + 1);
    let (op, started) = match choice % 7 {
        0 => (Op::Stat, session.stat(path, options)),
        1 => (Op::List { entries: 0 }, session.list(path, options)),
        2 => (Op::Delete, session.delete(path, options)),
        3 | 4 => {
            let resume = choice % 7 == 4;
            let op = Op::Put {
                size,
                resume,
                from: 0,
            };
            (op, session.put(path, size, options, resume))
        }
        5 => {
            let op = Op::Get {
                have: size,
                head: None,
            };
            (op, session.get(path, options, size))
        }
        _ => (Op::Seed { size }, session.seed_put("/home/me", path, size)),
    };
    started.unwrap_or_else(|e| panic!("{op:?} does not start: {e}"));
    assert!(!session.is_idle());
    op
}

/// Feeds the session one read of the server's bytes, calling again with the rest while events
/// come; returns whether it took any input or reported anything.
fn feed(
    session: &mut FileClientSession<OUT, OUT>,
    script: &mut Script<'_>,
    peer: &mut Peer<'_>,
    op: &mut Option<Op>,
    received: &mut Vec<u8>,
    now: Instant,
) -> bool {
    let start = peer.at;
    let input = peer.read(script.choose());
    let mut rest = input;
    let mut moved = false;
    loop {
        let (used, event) = match session.handle_input(now, rest) {
            Ok(step) => step,
            Err(e) => {
                assert!(
                    !matches!(e, FileProtocolError::Session(_)),
                    "the host kept the contract, yet {e}"
                );
                assert!(session.is_poisoned(), "{e}, yet not poisoned");
                // The rest of this read went to a connection the host drops.
                peer.at = start + input.len();
                return true;
            }
        };
        assert!(used <= rest.len(), "consumed {used} of {}", rest.len());
        peer.at += used;
        moved |= used > 0;
        let Some(event) = event else {
            assert_eq!(used, rest.len(), "no event, yet input left");
            return moved;
        };
        moved = true;
        let consumed = rest;
        rest = &rest[used..];
        if on_event(session, op, received, event, consumed, used) {
            return true;
        }
    }
}

/// Checks an event against the operation in flight; returns whether the host stops feeding
/// (the operation is over, or it has local work first).
fn on_event(
    session: &FileClientSession<OUT, OUT>,
    op: &mut Option<Op>,
    received: &mut Vec<u8>,
    event: ClientEvent<'_>,
    input: &[u8],
    used: usize,
) -> bool {
    let in_flight = op.expect("an event with no operation in flight");
    let over = match (in_flight, event) {
        (Op::Stat, ClientEvent::Stat(_)) | (Op::Delete, ClientEvent::Deleted) => true,
        (Op::List { entries }, ClientEvent::Entry(_)) => {
            *op = Some(Op::List {
                entries: entries + 1,
            });
            false
        }
        (Op::List { entries }, ClientEvent::Listed { count }) => {
            assert_eq!(count, entries, "a listing's count is not its entries'");
            true
        }
        (Op::Put { size, resume, from }, ClientEvent::UploadFrom { offset }) => {
            assert!(resume && from == 0, "UploadFrom out of turn");
            assert!(offset <= size, "a resume from {offset} of {size} bytes");
            *op = Some(Op::Put {
                size,
                resume,
                from: offset,
            });
            // Local work first.
            return true;
        }
        (
            Op::Put { size, from, .. },
            ClientEvent::Stored {
                size: stored,
                resumed_from,
                digest: declared,
            },
        ) => {
            assert_eq!((stored, resumed_from), (size, from));
            assert_eq!(
                declared,
                digest(declared.algorithm(), &PATTERN[..size as usize]),
                "Stored under a digest that is not that of the bytes sent"
            );
            true
        }
        (Op::Get { have, head: None }, ClientEvent::FileHead { size, offset, .. }) => {
            assert_eq!(offset, have, "a download from another offset");
            assert!(size >= have);
            *op = Some(Op::Get {
                have,
                head: Some(size),
            });
            false
        }
        (Op::Get { head: Some(_), .. }, ClientEvent::Body(bytes)) => {
            check_slice(bytes, input, used);
            received.extend_from_slice(bytes);
            false
        }
        (
            Op::Get {
                have,
                head: Some(head),
            },
            ClientEvent::Fetched {
                size,
                resumed_from,
                digest: declared,
            },
        ) => {
            assert_eq!((size, resumed_from), (head, have));
            let mut file = PATTERN[..have as usize].to_vec();
            file.extend_from_slice(received);
            assert_eq!(file.len() as u64, size, "Fetched, but not all of it");
            assert_eq!(
                declared,
                digest(declared.algorithm(), &file),
                "Fetched under a digest that is not that of the bytes received"
            );
            true
        }
        (Op::Seed { .. }, event) => panic!("{event:?} during a seed upload"),
        (_, ClientEvent::Refused(_)) => true,
        (in_flight, event) => panic!("{event:?} during {in_flight:?}"),
    };
    if over {
        assert!(
            session.is_idle(),
            "the operation is over, yet the session is busy"
        );
        *op = None;
    }
    over
}
