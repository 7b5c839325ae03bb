//! What the remote shell protocol puts on the wire: request and reply headers, how a
//! connection's first bytes tell a framed client from a seed client, what makes a command
//! runnable, and the seed reply formats (docs/PROTOCOL.md, "Remote shell").
//!
//! Nothing here performs I/O or allocates.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::{Algorithm, HeaderFrameEncoder, Profile};

mod client;
pub use client::{
    CODE_CAP, ExecError, ExecOptions, RefusalCode, SeedClientSession, SeedReply,
    ShellClientSession, ShellProtocolError, ShellReply,
};

pub use crate::ShellOp;

mod server;

pub use server::{
    ALIVE_MAX, ALIVE_MIN, Dialect, IDLE_TIMEOUT, OUTBOX, Opening, OpeningReply, RunFailure,
    SEED_DISABLED_REPLY, SEED_NEEDS_TOKEN_REPLY, SEED_PAUSE, STDIN_DRAIN, ShellAction, ShellRules,
    ShellServerSession, StdinInput, Terminal, encode_seed_reply_head, judge_opening,
};

/// Longest command accepted, in bytes: Linux refuses a single argument longer than 128 KiB
/// (`MAX_ARG_STRLEN`, counting the terminating NUL), and the command is one argument of `sh -c`.
pub const MAX_COMMAND_LEN: usize = 128 * 1024 - 1;

/// How much a seed client's command read takes at most: the seed's server calls `recv(1024)`.
pub const SEED_COMMAND_READ: usize = 1024;

/// The digest a body's frame carries: XXH3 where this build computes it, else MD5 (a firmware
/// built with MD5 only), else none (the receiver still has the framing's own checks). A
/// receiver checks whichever it is given.
const BODY_DIGEST: Option<Algorithm> = if Algorithm::Xxh3.is_supported() {
    Some(Algorithm::Xxh3)
} else if Algorithm::Md5.is_supported() {
    Some(Algorithm::Md5)
} else {
    None
};

/// Encodes output frames: the body's digest (XXH3 where the build computes it, else MD5)
/// rides in the header, so the receiver checks each chunk.
pub const OUTPUT_ENCODER: HeaderFrameEncoder =
    HeaderFrameEncoder::new(Profile::I32_LE).checksum(BODY_DIGEST);

/// Encodes exec requests: the command's digest (as [`OUTPUT_ENCODER`]'s) rides in the header,
/// so that a command corrupted on the way (a serial line flips a bit) is refused by the server
/// instead of run.
pub const EXEC_ENCODER: HeaderFrameEncoder =
    HeaderFrameEncoder::new(Profile::I32_LE).checksum(BODY_DIGEST);

/// Encodes frames with empty bodies (requests' heads, exit and error frames): no digest.
pub use crate::PLAIN_ENCODER;

/// Encodes seed-mode `json` replies: the body's real MD5, as the seed's header promised.
pub const SEED_REPLY_ENCODER: HeaderFrameEncoder =
    HeaderFrameEncoder::new(Profile::I32_LE).checksum(Some(Algorithm::Md5));

/// Longest working directory an exec request may name (`"cwd"`), in bytes: Linux's `PATH_MAX`.
pub const MAX_CWD_LEN: usize = 4096;

/// Encodes stdin frames: the chunk's XXH3 rides in the header, as a command's does.
pub const STDIN_ENCODER: HeaderFrameEncoder = EXEC_ENCODER;

/// The request header a framed client sends, with the command as the frame's body:
/// `{"op":"exec","total_size":N}` (plus `"token"` when the server has one, `"cwd"` to run
/// the command in another directory than the server's working directory, `"stdin":true`
/// when the client streams the command's standard input after the request, and `"alive"`
/// when it wants keepalives while the command runs).
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecRequest<'a> {
    /// Always [`ShellOp::Exec`].
    pub op: ShellOp,
    /// The shared secret, when the server requires one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<&'a str>,
    /// The directory to run the command in: absolute, or relative to the server's working
    /// directory; at most [`MAX_CWD_LEN`] bytes. `None`: the server's working directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<&'a str>,
    /// The client streams the command's standard input: `stdin` frames follow the request,
    /// then one `stdin_end` frame. Left out when `false`: the command's stdin is empty.
    #[serde(skip_serializing_if = "is_false")]
    pub stdin: bool,
    /// Keepalives, in milliseconds: the server confirms with an `alive` frame when the
    /// command starts, and sends another whenever it sent nothing else for this long while the
    /// command runs, so that a client can tell a silent command from a server gone. `None`:
    /// none (a server that predates them ignores the member).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alive: Option<u64>,
    /// Run the command on a pseudo-terminal of this type and size (`"pty"`); it implies
    /// `"stdin":true` (the terminal's input is the client's), and the output comes as
    /// `stdout` frames only (the terminal merges the streams). `None`: pipes, as without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pty: Option<PtyRequest<'a>>,
}

/// Longest terminal type (`"term"`) a pty request may name, in bytes: terminfo names are far
/// shorter (`xterm-256color` is 14).
pub const MAX_TERM_LEN: usize = 64;

/// A terminal's size in character cells, as `TIOCSWINSZ` takes it.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WindowSize {
    /// Lines.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// The `"pty"` member of an exec request: `{"term":"xterm-256color","rows":24,"cols":80}`.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct PtyRequest<'a> {
    /// The terminal type, the command's `TERM` (at most [`MAX_TERM_LEN`] bytes of printable
    /// ASCII; empty: the server's choice).
    pub term: &'a str,
    /// Lines.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// The `"pty"` member as a server reads it; `S` as in [`RequestHeader`].
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PtyHeader<S> {
    /// The terminal type.
    #[serde(default = "none")]
    pub term: Option<S>,
    /// Lines.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// Header of a `resize` frame, which a client sends while its pty command runs:
/// `{"op":"resize","rows":R,"cols":C,"total_size":0}`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResizeHeader {
    /// Always [`ShellOp::Resize`].
    pub op: ShellOp,
    /// Lines.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// What the server reads from any request header: the operation, the token and the working
/// directory. `S` is an owned string type (`heapless::String<N>`, or `String` with an
/// allocator): a token or a path may hold escapes.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader<S> {
    /// The operation, as sent; only `exec` ([`ShellOp::Exec`]) is served.
    pub op: S,
    /// The token presented, if any.
    #[serde(default = "none")]
    pub token: Option<S>,
    /// The working directory asked for, if any.
    #[serde(default = "none")]
    pub cwd: Option<S>,
    /// Whether the client streams the command's standard input (`"stdin":true`).
    #[serde(default)]
    pub stdin: Option<bool>,
    /// The keepalive interval the client asks for, in milliseconds (`"alive"`).
    #[serde(default)]
    pub alive: Option<u64>,
    /// The pseudo-terminal asked for (`"pty"`).
    #[serde(default = "none")]
    pub pty: Option<PtyHeader<S>>,
}

fn none<S>() -> Option<S> {
    None
}

/// Header of an output frame: `{"op":"stdout"|"stderr","total_size":n,"xxh3":...}`.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputHeader {
    /// [`ShellOp::Stdout`] or [`ShellOp::Stderr`].
    pub op: ShellOp,
}

/// Header of a frame whose only member is its op (the encoder adds the size, and the digest of
/// a body): a chunk of a command's standard input, `{"op":"stdin","total_size":n,"xxh3":...}`,
/// its end, `{"op":"stdin_end","total_size":0}`, and a keepalive,
/// `{"op":"alive","total_size":0}`.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpHeader {
    /// The frame's op.
    pub op: ShellOp,
}

/// Header of the exit frame: the exit code, or the signal that ended the command, and whether
/// the output was cut or the command ran out of time.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitHeader {
    /// Always [`ShellOp::Exit`].
    pub op: ShellOp,
    /// The exit code, when the command exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// The signal number, when a signal ended the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Output beyond the server's cap was dropped and the command killed.
    #[serde(default)]
    pub truncated: bool,
    /// The command ran past the server's time limit and was killed.
    #[serde(default)]
    pub timed_out: bool,
}

/// The `"op"` member of a reply header, read before the rest.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ReplyOp {
    /// The reply's operation.
    pub op: ShellOp,
}

/// Header of a seed-mode reply in the `json` format: the seed's
/// `{"file_name":...,"total_size":N,"md5":...}` (the encoder adds the last two), plus flags the
/// seed's clients ignore.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedReplyHeader<'a> {
    /// A fixed name for the output, as the seed's header carried one.
    pub file_name: &'a str,
    /// Output beyond the cap was dropped.
    pub truncated: bool,
    /// The command ran out of time.
    pub timed_out: bool,
}

/// Which output stream a chunk came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl OutputStream {
    /// The op of an output frame carrying this stream.
    pub const fn op(self) -> ShellOp {
        match self {
            OutputStream::Stdout => ShellOp::Stdout,
            OutputStream::Stderr => ShellOp::Stderr,
        }
    }
}

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Termination {
    /// It exited with this code.
    Exited(i32),
    /// This signal killed it.
    Signaled(i32),
}

impl Termination {
    /// The status a shell would report in `$?`: the exit code, or 128 + the signal number.
    pub fn shell_status(self) -> u8 {
        match self {
            Termination::Exited(code) => (code & 0xff) as u8,
            Termination::Signaled(signal) => (128 + (signal & 0x7f)) as u8,
        }
    }
}

/// How a command ended, as the exit frame reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExitReport {
    /// Exit code or signal.
    pub termination: Termination,
    /// Output beyond the server's cap was dropped and the command killed.
    pub truncated: bool,
    /// The command ran past the server's time limit and was killed.
    pub timed_out: bool,
}

impl ExitReport {
    /// The exit frame's header for this report.
    pub fn header(&self) -> ExitHeader {
        let (code, signal) = match self.termination {
            Termination::Exited(code) => (Some(code), None),
            Termination::Signaled(signal) => (None, Some(signal)),
        };
        ExitHeader {
            op: ShellOp::Exit,
            code,
            signal,
            truncated: self.truncated,
            timed_out: self.timed_out,
        }
    }
}

impl ExitHeader {
    /// The report an exit frame carries; `None` when it has neither `code` nor `signal`, or
    /// both.
    pub fn report(&self) -> Option<ExitReport> {
        let termination = match (self.code, self.signal) {
            (Some(code), None) => Termination::Exited(code),
            (None, Some(signal)) => Termination::Signaled(signal),
            _ => return None,
        };
        Some(ExitReport {
            termination,
            truncated: self.truncated,
            timed_out: self.timed_out,
        })
    }
}

/// Why a command's bytes are not a command a shell can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BadCommand {
    /// It holds a NUL byte, which no argument of `sh -c` can.
    ContainsNul,
    /// It is not UTF-8.
    NotUtf8,
}

impl fmt::Display for BadCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BadCommand::ContainsNul => {
                "the command contains a NUL byte, which no shell command can hold \
                 (a framed request starts with its length prefix)"
            }
            BadCommand::NotUtf8 => "the command is not valid UTF-8; send it as UTF-8 text",
        })
    }
}

impl core::error::Error for BadCommand {}

/// The text of a command, when a shell can run it.
pub fn command_text(bytes: &[u8]) -> Result<&str, BadCommand> {
    if bytes.contains(&0) {
        return Err(BadCommand::ContainsNul);
    }
    core::str::from_utf8(bytes).map_err(|_| BadCommand::NotUtf8)
}

/// How a seed-mode reply is framed (`--seed-reply`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SeedFormat {
    /// The seed's final form: 4-byte LE header length, JSON header with `total_size` and the
    /// body's real `md5`, then stdout followed by stderr.
    #[default]
    Json,
    /// The seed's first fix: 4-byte LE body length, then the body.
    Size,
    /// The seed's first server: the bare output, no framing at all.
    Raw,
}

impl SeedFormat {
    /// Every format, in the order the CLI lists them.
    pub const ALL: [SeedFormat; 3] = [SeedFormat::Json, SeedFormat::Size, SeedFormat::Raw];

    /// The name used on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            SeedFormat::Json => "json",
            SeedFormat::Size => "size",
            SeedFormat::Raw => "raw",
        }
    }

    /// The format called `name` on the command line.
    pub fn from_name(name: &str) -> Option<SeedFormat> {
        SeedFormat::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// What a connection's first bytes say about its client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Greeting {
    /// A framed client: the bytes start a length prefix.
    Framed,
    /// A seed client: the bytes are a text command.
    Seed,
    /// Too few bytes to tell; read more, or take them as a short seed command once the client
    /// pauses.
    Undecided,
}

/// Tells a framed client from a seed client by the first bytes of a connection.
///
/// A framed request starts with a 4-byte little-endian header length; headers are far shorter
/// than 64 KiB, so bytes 3 and 4 are NUL, and the first byte is often a control character. A
/// seed command is text: it contains no NUL, and does not start with a control character other
/// than tab, line feed or carriage return. So: framed if the first byte is NUL or such a control
/// character, or if any of the first four bytes is NUL; seed once four bytes without NUL are in.
pub fn classify_greeting(first: &[u8]) -> Greeting {
    let Some(&lead) = first.first() else {
        return Greeting::Undecided;
    };
    let lead_is_control = lead < 0x20 && !matches!(lead, b'\t' | b'\n' | b'\r');
    if lead_is_control || first.iter().take(4).any(|&b| b == 0) {
        Greeting::Framed
    } else if first.len() >= 4 {
        Greeting::Seed
    } else {
        Greeting::Undecided
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_table() {
        let table: [(&[u8], Greeting); 12] = [
            (b"", Greeting::Undecided),
            (b"l", Greeting::Undecided),
            (b"ls", Greeting::Undecided),
            (b"pwd", Greeting::Undecided),
            (b"ls -l", Greeting::Seed),
            (b"\nls\n", Greeting::Seed),
            // {"op":"exec","total_size":5} is 28 bytes: 0x1c, a control character.
            (&[0x1c], Greeting::Framed),
            (&[0x1c, 0, 0, 0, b'{'], Greeting::Framed),
            // A 42-byte header: '*' then NULs.
            (&[b'*', 0], Greeting::Framed),
            (b"*", Greeting::Undecided),
            (&[0, 1, 0, 0], Greeting::Framed),
            ("ls 新建".as_bytes(), Greeting::Seed),
        ];
        for (bytes, expected) in table {
            assert_eq!(classify_greeting(bytes), expected, "{bytes:?}");
        }
    }

    /// Golden bytes of the replies to `echo hi; kill -9 $$` (as docs/PROTOCOL.md shows them).
    #[test]
    fn reply_frames_golden_bytes() {
        let mut buf = [0u8; 256];
        let output = OutputHeader {
            op: ShellOp::Stdout,
        };
        let n = OUTPUT_ENCODER
            .encode_frame(&output, b"hi\n", &mut buf)
            .unwrap();
        let expected: &[u8] = b"\x48\x00\x00\x00{\"op\":\"stdout\",\"total_size\":3,\
            \"xxh3\":\"f4d0497cf9394caab34d1a3ab2bece70\"}hi\n";
        assert_eq!(&buf[..n], expected);

        let exit = ExitHeader {
            op: ShellOp::Exit,
            code: None,
            signal: Some(9),
            truncated: false,
            timed_out: false,
        };
        let n = PLAIN_ENCODER.encode_frame(&exit, b"", &mut buf).unwrap();
        let expected: &[u8] = b"\x4b\x00\x00\x00{\"op\":\"exit\",\"signal\":9,\
            \"truncated\":false,\"timed_out\":false,\"total_size\":0}";
        assert_eq!(&buf[..n], expected);

        // docs/PROTOCOL.md's replies to `cat` with `hello\n` as its input.
        let n = OUTPUT_ENCODER
            .encode_frame(&output, b"hello\n", &mut buf)
            .unwrap();
        let expected: &[u8] = b"\x48\x00\x00\x00{\"op\":\"stdout\",\"total_size\":6,\
            \"xxh3\":\"6bba86c7e069f56d5a10b435f1c8e49c\"}hello\n";
        assert_eq!(&buf[..n], expected);
        let exit = ExitHeader {
            op: ShellOp::Exit,
            code: Some(0),
            signal: None,
            truncated: false,
            timed_out: false,
        };
        let n = PLAIN_ENCODER.encode_frame(&exit, b"", &mut buf).unwrap();
        let expected: &[u8] = b"\x49\x00\x00\x00{\"op\":\"exit\",\"code\":0,\
            \"truncated\":false,\"timed_out\":false,\"total_size\":0}";
        assert_eq!(&buf[..n], expected);

        let request = ExecRequest {
            op: ShellOp::Exec,
            token: None,
            cwd: None,
            stdin: false,
            alive: None,
            pty: None,
        };
        let n = PLAIN_ENCODER
            .encode_frame(&request, b"ls", &mut buf)
            .unwrap();
        assert_eq!(
            &buf[..n],
            b"\x1c\x00\x00\x00{\"op\":\"exec\",\"total_size\":2}ls"
        );
    }

    /// A seed `json` reply to `echo hi`: what the seed's client unpacks, with md5("hi\n").
    #[test]
    fn seed_json_reply_golden_bytes() {
        let mut buf = [0u8; 256];
        let header = SeedReplyHeader {
            file_name: "output",
            truncated: false,
            timed_out: false,
        };
        let n = SEED_REPLY_ENCODER
            .encode_frame(&header, b"hi\n", &mut buf)
            .unwrap();
        let json = br#"{"file_name":"output","truncated":false,"timed_out":false,"total_size":3,"md5":"764efa883dda1e11db47671c4a3bbd9e"}"#;
        assert_eq!(&buf[..4], (json.len() as i32).to_le_bytes());
        assert_eq!(&buf[4..4 + json.len()], json);
        assert_eq!(&buf[4 + json.len()..n], b"hi\n");
    }

    #[test]
    fn command_text_table() {
        let table: [(&[u8], Result<&str, BadCommand>); 5] = [
            (b"ls -l", Ok("ls -l")),
            (b"", Ok("")),
            ("echo 新".as_bytes(), Ok("echo 新")),
            (b"ls\0-l", Err(BadCommand::ContainsNul)),
            (&[b'l', 0xc3, 0x28], Err(BadCommand::NotUtf8)),
        ];
        for (bytes, expected) in table {
            assert_eq!(command_text(bytes), expected, "{bytes:?}");
        }
    }

    #[test]
    fn seed_format_names_round_trip() {
        for f in SeedFormat::ALL {
            assert_eq!(SeedFormat::from_name(f.name()), Some(f));
        }
        assert_eq!(SeedFormat::from_name("xml"), None);
    }
}
