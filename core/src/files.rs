//! What the file server's protocol puts on the wire, as the sender writes it: the request
//! headers, the digest trailer and every reply (docs/PROTOCOL.md, "File server"). Strings are
//! borrowed; nothing here performs I/O or allocates.

use serde::{Deserialize, Serialize};

use crate::{Algorithm, Checksum, FileOp};

pub mod client;
pub mod path;

pub use path::{
    NameRules, PathError, check_component_with, check_dir, check_dir_with, check_path,
    check_path_with,
};

mod server;

pub use server::{
    Completed, Deleted, EntryKind, EntryMeta, FileAction, FileRules, FileServerSession,
    IDLE_TIMEOUT, OUTBOX, PartialState, StageKind, Staged, StatFound,
};

/// Parses an `"algorithm"` member; absent means XXH3.
pub fn parse_algorithm(text: Option<&str>) -> Option<Algorithm> {
    match text {
        None | Some("xxh3") => Some(Algorithm::Xxh3),
        Some("md5") => Some(Algorithm::Md5),
        Some(_) => None,
    }
}

fn none<S>() -> Option<S> {
    None
}

/// The permission bits a file's `mode` may carry on the wire (`put -p`, `get` and `stat`
/// replies): read, write and execute for owner, group and others. Set-user-ID, set-group-ID
/// and sticky bits are never sent, kept or applied.
pub const MODE_BITS: u32 = 0o777;

/// What `put -p` keeps of a file besides its bytes: its permission bits and its modification
/// time, each when known. A put's head carries them (`"mode"`, `"mtime"`) only when the client
/// asks for them to be kept, and the server applies only those it gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileAttributes {
    /// Permission bits, within [`MODE_BITS`].
    pub mode: Option<u32>,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: Option<i64>,
}

impl FileAttributes {
    /// Nothing to keep: the server gives the file its own mode and the time of the upload.
    pub const NONE: FileAttributes = FileAttributes {
        mode: None,
        mtime: None,
    };

    /// Whether there is nothing to keep.
    pub const fn is_none(&self) -> bool {
        self.mode.is_none() && self.mtime.is_none()
    }
}

/// A request from the client: `op` plus what that op needs. Members left `None` are omitted.
/// `S` is `&str` to send, an owned string type to receive.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Request<S> {
    /// The operation.
    pub op: FileOp,
    /// Path relative to the server root.
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub path: Option<S>,
    /// Token, when the server needs one.
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub token: Option<S>,
    /// Resume offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Digest algorithm.
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<S>,
    /// XXH3 of the resumed prefix.
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub prefix_xxh3: Option<S>,
    /// MD5 of the resumed prefix.
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub prefix_md5: Option<S>,
    /// XXH3-128 of `path` as text, so that a path corrupted on the way (a serial line flips a
    /// bit) is refused instead of acted on. Servers check it when it is there.
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub path_xxh3: Option<S>,
    /// The new name of a `rename`, relative to the server root.
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub to: Option<S>,
    /// XXH3-128 of `to` as text, checked like `path_xxh3`.
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub to_xxh3: Option<S>,
    /// A `mkdir` that also creates missing parents and accepts an existing directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parents: Option<bool>,
    /// A `put`'s permission bits to give the file (`put -p`), within [`MODE_BITS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// A `put`'s modification time to give the file (`put -p`), seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<i64>,
}

impl<S> Request<S> {
    /// A request for `op` with no other member set.
    pub fn new(op: FileOp) -> Request<S> {
        Request {
            op,
            path: None,
            token: None,
            offset: None,
            algorithm: None,
            prefix_xxh3: None,
            prefix_md5: None,
            path_xxh3: None,
            to: None,
            to_xxh3: None,
            parents: None,
            mode: None,
            mtime: None,
        }
    }
}

impl<S: AsRef<str>> Request<S> {
    /// The digest of the resumed prefix carried for `algorithm`.
    pub fn prefix_digest(&self, algorithm: Algorithm) -> Option<Checksum> {
        let hex = match algorithm {
            Algorithm::Xxh3 => self.prefix_xxh3.as_ref(),
            Algorithm::Md5 => self.prefix_md5.as_ref(),
        }?;
        Checksum::from_hex(algorithm, hex.as_ref().as_bytes())
    }

    /// The digest algorithm asked for (absent means XXH3); `None` when it names none.
    pub fn algorithm(&self) -> Option<Algorithm> {
        parse_algorithm(self.algorithm.as_ref().map(AsRef::as_ref))
    }
}

/// A frame that carries a whole-file digest after a body: `{"op":"done","file_xxh3":...}`.
/// `S` is `&str` to send, an owned string type to receive.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DigestTrailer<S> {
    /// `"done"` after a body, `"stored"` in the server's reply to a put.
    pub op: FileOp,
    /// XXH3-128 of the whole file.
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub file_xxh3: Option<S>,
    /// MD5 of the whole file.
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub file_md5: Option<S>,
    /// File size (in `stored`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

impl<S> DigestTrailer<S> {
    /// A trailer of kind `op` carrying `hex` as the `algorithm` digest.
    pub fn new(op: FileOp, algorithm: Algorithm, hex: S, size: Option<u64>) -> Self {
        let (file_xxh3, file_md5) = match algorithm {
            Algorithm::Xxh3 => (Some(hex), None),
            Algorithm::Md5 => (None, Some(hex)),
        };
        DigestTrailer {
            op,
            file_xxh3,
            file_md5,
            size,
        }
    }
}

impl<S: AsRef<str>> DigestTrailer<S> {
    /// The digest of the whole file carried for `algorithm`.
    pub fn file_digest(&self, algorithm: Algorithm) -> Option<Checksum> {
        let hex = match algorithm {
            Algorithm::Xxh3 => self.file_xxh3.as_ref(),
            Algorithm::Md5 => self.file_md5.as_ref(),
        }?;
        Checksum::from_hex(algorithm, hex.as_ref().as_bytes())
    }
}

/// What a client reads first from any reply: its op (an `error` is then read as an
/// [`ErrorFrame`](crate::ErrorFrame), anything else as that op's reply type).
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHead {
    /// The reply's kind.
    pub op: FileOp,
}

/// The head of a download: `{"op":"file","size":S,"offset":k,"mtime":T,"mode":M}` + `S - k`
/// body bytes.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHead {
    /// Always `"file"`.
    pub op: FileOp,
    /// Whole file size.
    pub size: u64,
    /// Where the body starts in the file.
    pub offset: u64,
    /// Modification time.
    pub mtime: i64,
    /// Permission bits (within [`MODE_BITS`]), when the server keeps them (not on Windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// A `stat` reply. `S` is `&str` to send, an owned string type to receive.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct StatReply<S> {
    /// Always `"stat"`.
    pub op: FileOp,
    /// Whether the name exists.
    pub exists: bool,
    /// Kind of entry, when it exists.
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub kind: Option<S>,
    /// Size, when it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Modification time, when it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<i64>,
    /// Permission bits (within [`MODE_BITS`]), when it exists and the server keeps them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// Bytes held in a resumable partial upload of this name (0 when none).
    #[serde(default)]
    pub partial_size: u64,
}

/// One entry of an `ls` reply. `S` is `&str` to send, an owned string type to receive.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct EntryReply<S> {
    /// Always `"entry"`.
    pub op: FileOp,
    /// Entry name (one component). A name that is not UTF-8 is sent in escaped form: bytes
    /// that are not UTF-8 as `\xNN`, backslashes doubled.
    pub name: S,
    /// `Some(true)` when `name` is in escaped form; omitted otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_escaped: Option<bool>,
    /// Kind of entry.
    pub kind: S,
    /// Size in bytes.
    pub size: u64,
    /// Modification time.
    pub mtime: i64,
}

/// A reply with nothing but its kind and an optional count: `end`, `deleted`, and `stored`
/// after a seed upload.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// Reply kind.
    pub op: FileOp,
    /// Entries listed (for `end`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::{ErrorCode, ErrorFrame, PLAIN_ENCODER};
    use std::string::String;
    use std::vec::Vec;

    /// The frame `header` encodes to: `[i32 LE length][json]` (no body).
    fn frame<H: Serialize>(header: &H) -> Vec<u8> {
        let mut buf = [0u8; 512];
        let n = PLAIN_ENCODER.encode_frame(header, b"", &mut buf).unwrap();
        buf[..n].to_vec()
    }

    fn expected(json: &str) -> Vec<u8> {
        let mut bytes = (json.len() as i32).to_le_bytes().to_vec();
        bytes.extend_from_slice(json.as_bytes());
        bytes
    }

    /// Golden bytes of every header the file protocol sends (docs/PROTOCOL.md, "File server").
    #[test]
    fn messages_encode_to_their_golden_bytes() {
        let x = "f4d0497cf9394caab34d1a3ab2bece70";
        let table: [(Vec<u8>, &str); 14] = [
            (
                frame(&Request {
                    path: Some("dir/name"),
                    algorithm: Some("xxh3"),
                    ..Request::new(FileOp::Put)
                }),
                r#"{"op":"put","path":"dir/name","algorithm":"xxh3","total_size":0}"#,
            ),
            (
                frame(&Request {
                    path: Some("big.iso"),
                    token: Some("s3cret"),
                    offset: Some(4096),
                    algorithm: Some("xxh3"),
                    prefix_xxh3: Some(x),
                    ..Request::new(FileOp::Put)
                }),
                r#"{"op":"put","path":"big.iso","token":"s3cret","offset":4096,"algorithm":"xxh3","prefix_xxh3":"f4d0497cf9394caab34d1a3ab2bece70","total_size":0}"#,
            ),
            (
                frame(&Request {
                    path: Some("run.sh"),
                    algorithm: Some("xxh3"),
                    mode: Some(0o755),
                    mtime: Some(1_700_000_000),
                    ..Request::new(FileOp::Put)
                }),
                r#"{"op":"put","path":"run.sh","algorithm":"xxh3","mode":493,"mtime":1700000000,"total_size":0}"#,
            ),
            (
                frame(&DigestTrailer::new(FileOp::Done, Algorithm::Xxh3, x, None)),
                r#"{"op":"done","file_xxh3":"f4d0497cf9394caab34d1a3ab2bece70","total_size":0}"#,
            ),
            (
                frame(&DigestTrailer::new(
                    FileOp::Stored,
                    Algorithm::Md5,
                    x,
                    Some(3),
                )),
                r#"{"op":"stored","file_md5":"f4d0497cf9394caab34d1a3ab2bece70","size":3,"total_size":0}"#,
            ),
            (
                frame(&Request {
                    path: Some("a/b"),
                    offset: Some(0),
                    ..Request::new(FileOp::Get)
                }),
                r#"{"op":"get","path":"a/b","offset":0,"total_size":0}"#,
            ),
            (
                frame(&FileHead {
                    op: FileOp::File,
                    size: 10,
                    offset: 2,
                    mtime: 1_700_000_000,
                    mode: None,
                }),
                r#"{"op":"file","size":10,"offset":2,"mtime":1700000000,"total_size":0}"#,
            ),
            (
                frame(&FileHead {
                    op: FileOp::File,
                    size: 10,
                    offset: 0,
                    mtime: 1_700_000_000,
                    mode: Some(0o644),
                }),
                r#"{"op":"file","size":10,"offset":0,"mtime":1700000000,"mode":420,"total_size":0}"#,
            ),
            (
                frame(&EntryReply {
                    op: FileOp::Entry,
                    name: "名前",
                    name_escaped: None,
                    kind: "file",
                    size: 5,
                    mtime: 0,
                }),
                r#"{"op":"entry","name":"名前","kind":"file","size":5,"mtime":0,"total_size":0}"#,
            ),
            (
                frame(&Ack {
                    op: FileOp::End,
                    count: Some(1),
                }),
                r#"{"op":"end","count":1,"total_size":0}"#,
            ),
            (
                frame(&StatReply::<&str> {
                    op: FileOp::Stat,
                    exists: false,
                    kind: None,
                    size: None,
                    mtime: None,
                    mode: None,
                    partial_size: 7,
                }),
                r#"{"op":"stat","exists":false,"partial_size":7,"total_size":0}"#,
            ),
            (
                frame(&Ack {
                    op: FileOp::Deleted,
                    count: None,
                }),
                r#"{"op":"deleted","total_size":0}"#,
            ),
            (
                frame(&ErrorFrame::new(
                    ErrorCode::NotFound,
                    "a: no such file or directory",
                )),
                r#"{"op":"error","code":"not_found","message":"a: no such file or directory","total_size":0}"#,
            ),
            (
                frame(&Request {
                    path: Some(""),
                    ..Request::new(FileOp::Ls)
                }),
                r#"{"op":"ls","path":"","total_size":0}"#,
            ),
        ];
        for (bytes, json) in table {
            assert_eq!(
                String::from_utf8_lossy(&bytes[4..]),
                json,
                "header text of {json}"
            );
            assert_eq!(bytes, expected(json), "{json}");
        }
    }

    /// The types that are sent are the types that are read: a request and a trailer round trip
    /// through the decoder, escapes included.
    #[test]
    fn requests_and_trailers_read_back_as_they_were_sent() {
        use crate::{Event, FrameDecoder, Profile};
        type Owned = heapless::String<64>;
        let sent = Request {
            path: Some("dir/a \"quoted\" name"),
            token: Some("s3cret"),
            offset: Some(7),
            algorithm: Some("md5"),
            prefix_md5: Some("764efa883dda1e11db47671c4a3bbd9e"),
            ..Request::new(FileOp::Put)
        };
        let bytes = frame(&sent);
        let mut decoder = FrameDecoder::<512>::header_frames(Profile::I32_LE);
        assert!(matches!(decoder.feed(&bytes), Ok((_, Event::Head(_)))));
        let read: Request<Owned> = decoder.header().unwrap();
        assert_eq!(read.op, FileOp::Put);
        assert_eq!(read.token.as_deref(), Some("s3cret"));
        assert_eq!(read.path.as_deref(), Some("dir/a \"quoted\" name"));
        assert_eq!(read.offset, Some(7));
        assert_eq!(read.algorithm(), Some(Algorithm::Md5));
        assert_eq!(
            read.prefix_digest(Algorithm::Md5).map(|d| d.to_hex()),
            Some(
                Checksum::from_hex(Algorithm::Md5, b"764efa883dda1e11db47671c4a3bbd9e")
                    .unwrap()
                    .to_hex()
            )
        );

        let trailer = DigestTrailer::new(
            FileOp::Done,
            Algorithm::Md5,
            "764efa883dda1e11db47671c4a3bbd9e",
            None,
        );
        let bytes = frame(&trailer);
        let mut decoder = FrameDecoder::<512>::header_frames(Profile::I32_LE);
        assert!(matches!(decoder.feed(&bytes), Ok((_, Event::Head(_)))));
        let read: DigestTrailer<Owned> = decoder.header().unwrap();
        assert_eq!(read.op, FileOp::Done);
        assert!(read.file_digest(Algorithm::Md5).is_some());
        assert_eq!(read.file_digest(Algorithm::Xxh3), None);
    }
}
