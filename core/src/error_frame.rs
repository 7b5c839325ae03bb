//! The error frame both unstick protocols (the remote shell and the file server) answer a
//! refused request with: `{"op":"error","code":"<code>","message":"<sentence>"}` and no body,
//! and the codes it can carry, each with its stable wire string.

use core::fmt;
use core::marker::PhantomData;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

use crate::wire_enum::{UnknownWireName, wire_enum};
use crate::{HeaderFrameEncoder, Profile};

wire_enum! {
    /// Why a request was refused, as both protocols put it on the wire (`"code"`), and as
    /// servers log their refusals. The wire strings never change.
    #[non_exhaustive]
    pub enum ErrorCode {
        /// Broken framing: a negative or oversized header length, a header that is not JSON, a bad
        /// size member, or a body that does not match its header's digest.
        BadFrame = "bad_frame",
        /// A shell request header without a string `"op"` (or with a mistyped `"token"`).
        BadHeader = "bad_header",
        /// A file request with a missing or mistyped member, or an unknown op.
        BadRequest = "bad_request",
        /// A shell request with an op other than `exec`.
        UnknownOp = "unknown_op",
        /// A command that is not UTF-8 or holds a NUL byte.
        BadCommand = "bad_command",
        /// A command longer than the server takes.
        CommandTooLong = "command_too_long",
        /// The server could not start the command's shell.
        SpawnFailed = "spawn_failed",
        /// The server lost track of a running command and killed it.
        RunFailed = "run_failed",
        /// The token is missing or wrong.
        Unauthorized = "unauthorized",
        /// No complete request arrived in time.
        IdleTimeout = "idle_timeout",
        /// No slot is free (or a name is being uploaded by someone else): retry.
        Busy = "busy",
        /// A path refused: traversal, reserved, a symbolic link, not a directory or regular file.
        BadPath = "bad_path",
        /// No such file or directory.
        NotFound = "not_found",
        /// The name exists already (a `mkdir` without `parents`, a rename onto a directory).
        Exists = "exists",
        /// A directory to delete still holds entries (interrupted uploads held for resume
        /// count). Servers before it said `bad_request`.
        NotEmpty = "not_empty",
        /// Above the server's file-size limit.
        TooLarge = "too_large",
        /// The data does not match its digest; nothing was committed.
        ChecksumMismatch = "checksum_mismatch",
        /// The server's partial upload does not match the resumed prefix.
        PartialMismatch = "partial_mismatch",
        /// The server is out of space (or over a file-size limit).
        NoSpace = "no_space",
        /// Another failure of the server's storage.
        StorageError = "storage_error",
        /// The connection ended in the middle of a request.
        Incomplete = "incomplete",
        /// The connection opened with another protocol (HTTP, TLS, SSH); answered in that
        /// protocol's terms or not at all, and logged with this code.
        ForeignProtocol = "foreign_protocol",
        /// Raw text sent to a shell server that does not serve seed-style clients (logged).
        SeedDisabled = "seed_disabled",
        /// The client's address sent too many missing or wrong tokens: its requests are
        /// refused, whatever token they carry, until its penalty ends (the message says when).
        Penalized = "penalized",
        /// The request asks for something this server does not offer (a device whose built-in
        /// commands read no standard input, asked to stream one).
        Unsupported = "unsupported",
    }
}

/// Encodes frames that carry no body digest: error frames, and every other header without a
/// body (requests' heads, exit frames, the file server's replies).
pub const PLAIN_ENCODER: HeaderFrameEncoder =
    HeaderFrameEncoder::new(Profile::I32_LE).checksum(None);

/// The `"op"` of an error frame.
pub const OP_ERROR: &str = "error";

/// An error frame's header, one type to send and to receive: it serializes as
/// `{"op":"error","code":...,"message":...}` (the encoder adds `"total_size":0`), and
/// deserializes from any header with those members, the code kept as its wire string so that a
/// code this build does not know still reads.
///
/// `S` is the string type: `&str` to send; to receive, an owned string such as
/// `heapless::String<N>` (a message may hold escapes, which a borrowed `&str` cannot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorFrame<S> {
    /// The code's wire string (see [`ErrorFrame::error_code`]).
    pub code: S,
    /// A sentence for the user.
    pub message: S,
}

impl<'a> ErrorFrame<&'a str> {
    /// An error frame carrying `code` and `message`.
    pub const fn new(code: ErrorCode, message: &'a str) -> ErrorFrame<&'a str> {
        ErrorFrame {
            code: code.as_str(),
            message,
        }
    }
}

impl<S: AsRef<str>> ErrorFrame<S> {
    /// The code, when it is one this build knows.
    pub fn error_code(&self) -> Result<ErrorCode, UnknownWireName> {
        self.code.as_ref().parse()
    }
}

impl<S: AsRef<str>> Serialize for ErrorFrame<S> {
    fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        let mut header = serializer.serialize_struct("ErrorFrame", 3)?;
        header.serialize_field("op", OP_ERROR)?;
        header.serialize_field("code", self.code.as_ref())?;
        header.serialize_field("message", self.message.as_ref())?;
        header.end()
    }
}

impl<'de, S: Deserialize<'de>> Deserialize<'de> for ErrorFrame<S> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        const MEMBERS: &[&str] = &["op", "code", "message"];
        let visitor = ErrorFrameVisitor(PhantomData);
        deserializer.deserialize_struct("ErrorFrame", MEMBERS, visitor)
    }
}

struct ErrorFrameVisitor<S>(PhantomData<S>);

/// The `"op"` member's value, read without keeping it.
struct IsError(bool);

impl<'de> Deserialize<'de> for IsError {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OpVisitor;
        impl Visitor<'_> for OpVisitor {
            type Value = IsError;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string \"op\"")
            }
            fn visit_str<E: de::Error>(self, op: &str) -> Result<IsError, E> {
                Ok(IsError(op == OP_ERROR))
            }
        }
        deserializer.deserialize_str(OpVisitor)
    }
}

impl<'de, S: Deserialize<'de>> Visitor<'de> for ErrorFrameVisitor<S> {
    type Value = ErrorFrame<S>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an error frame header with \"op\":\"error\", \"code\" and \"message\"")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ErrorFrame<S>, A::Error> {
        let (mut is_error, mut code, mut message) = (false, None, None);
        while let Some(key) = map.next_key::<Member>()? {
            match key {
                Member::Op => is_error = map.next_value::<IsError>()?.0,
                Member::Code => code = Some(map.next_value::<S>()?),
                Member::Message => message = Some(map.next_value::<S>()?),
                Member::Other => map.next_value::<de::IgnoredAny>().map(drop)?,
            }
        }
        if !is_error {
            return Err(de::Error::custom("not an error frame"));
        }
        Ok(ErrorFrame {
            code: code.ok_or_else(|| de::Error::missing_field("code"))?,
            message: message.ok_or_else(|| de::Error::missing_field("message"))?,
        })
    }
}

/// The members an error frame's header may have.
enum Member {
    Op,
    Code,
    Message,
    Other,
}

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MemberVisitor;
        impl Visitor<'_> for MemberVisitor {
            type Value = Member;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Member, E> {
                Ok(match name {
                    "op" => Member::Op,
                    "code" => Member::Code,
                    "message" => Member::Message,
                    _ => Member::Other,
                })
            }
        }
        deserializer.deserialize_identifier(MemberVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, FrameDecoder, HeaderFrameEncoder, Profile};

    #[test]
    fn every_code_reads_back_from_its_wire_string() {
        for &code in ErrorCode::ALL {
            assert_eq!(code.as_str().parse(), Ok(code));
        }
        assert_eq!("no_such_code".parse::<ErrorCode>(), Err(UnknownWireName));
    }

    /// Golden bytes of `busy`, as both servers send it (docs/PROTOCOL.md).
    #[test]
    fn error_frames_encode_to_the_documented_bytes_and_decode_back() {
        let encoder = HeaderFrameEncoder::new(Profile::I32_LE).checksum(None);
        let frame = ErrorFrame::new(ErrorCode::Busy, "retry in a \"second\"");
        let mut buf = [0u8; 256];
        let n = encoder.encode_frame(&frame, b"", &mut buf).unwrap();
        let json =
            br#"{"op":"error","code":"busy","message":"retry in a \"second\"","total_size":0}"#;
        assert_eq!(&buf[..4], (json.len() as i32).to_le_bytes());
        assert_eq!(&buf[4..n], json);

        let mut decoder = FrameDecoder::<256>::header_frames(Profile::I32_LE);
        let (_, event) = decoder.feed(&buf[..n]).unwrap();
        assert!(matches!(event, Event::Head(_)));
        let read: ErrorFrame<heapless::String<64>> = decoder.header().unwrap();
        assert_eq!(read.error_code(), Ok(ErrorCode::Busy));
        assert_eq!(read.message, "retry in a \"second\"");
    }

    #[test]
    fn a_header_that_is_not_an_error_frame_is_refused() {
        for json in [
            br#"{"op":"exit","code":"busy","message":"m"}"#.as_slice(),
            br#"{"op":"error","message":"m"}"#,
            br#"{"op":"error","code":"busy"}"#,
        ] {
            let parsed = serde_json_core::from_slice::<ErrorFrame<&str>>(json);
            assert!(parsed.is_err(), "{:?}", core::str::from_utf8(json));
        }
        let json = br#"{"code":"new_code","op":"error","message":"m","total_size":0}"#;
        let (frame, _) = serde_json_core::from_slice::<ErrorFrame<&str>>(json).unwrap();
        assert_eq!(frame.error_code(), Err(UnknownWireName));
    }
}
