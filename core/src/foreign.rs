//! Recognising another protocol's opening bytes, so that a browser's `fetch()`, `curl`, a
//! WebSocket handshake or a TLS client aimed at an unstick port is refused on its first bytes
//! instead of being read as a command or a frame; and, on a client's side, another protocol's
//! server answering an unstick request ([`recognise_server`]), so that the client can say what
//! it reached instead of reporting a broken frame.
//!
//! Nothing here performs I/O or allocates.

use core::fmt;

/// A protocol other than unstick's, recognised by its opening bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ForeignProtocol {
    /// An HTTP/1.x request line (any method, WebSocket handshakes included) or the HTTP/2
    /// connection preface.
    Http,
    /// A TLS record carrying a handshake message (a ClientHello).
    Tls,
    /// An SSH identification string.
    Ssh,
}

impl ForeignProtocol {
    /// The protocol's usual name.
    pub const fn name(self) -> &'static str {
        match self {
            ForeignProtocol::Http => "HTTP",
            ForeignProtocol::Tls => "TLS",
            ForeignProtocol::Ssh => "SSH",
        }
    }
}

impl fmt::Display for ForeignProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Writes what a server answers an opening of `protocol` with into `out` and returns its
/// length: for HTTP, a complete `400 Bad Request` response whose text names `service`, the
/// unstick protocol the port serves (a browser shows it, `curl` prints it); for TLS, an error
/// frame ([`ErrorCode::ForeignProtocol`](crate::ErrorCode::ForeignProtocol)) saying the port
/// is plaintext, which an unstick TLS client recognises as "not TLS" and a person reads in a
/// capture; for SSH, nothing. A buffer too small for the response gets none of it (256 bytes
/// hold it for a service name of up to 40 bytes).
pub fn encode_reply(protocol: ForeignProtocol, service: &str, out: &mut [u8]) -> usize {
    use core::fmt::Write;

    match protocol {
        ForeignProtocol::Http => {}
        ForeignProtocol::Tls => {
            let frame = crate::ErrorFrame::new(
                crate::ErrorCode::ForeignProtocol,
                "this port speaks plaintext unstick, not TLS: connect without tls://, or start \
                 the server with --tls",
            );
            return crate::PLAIN_ENCODER
                .encode_frame(&frame, b"", out)
                .unwrap_or(0);
        }
        ForeignProtocol::Ssh => return 0,
    }
    let mut body = heapless::String::<160>::new();
    let body_fits = writeln!(
        body,
        "This port serves the unstick {service} protocol, not HTTP. Use the unstick client."
    )
    .is_ok();
    let mut response = heapless::String::<320>::new();
    let fits = body_fits
        && write!(
            response,
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .is_ok();
    match out.get_mut(..response.len()) {
        Some(room) if fits => {
            room.copy_from_slice(response.as_bytes());
            response.len()
        }
        _ => 0,
    }
}

/// What the first bytes of a connection say about a foreign protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recognition {
    /// They open this foreign protocol.
    Foreign(ForeignProtocol),
    /// They cannot open any protocol this module knows.
    NotForeign,
    /// Too few bytes to tell: they are the start of an opening this module knows.
    Undecided,
}

/// HTTP methods a client sends without being told to (browsers send only `GET`, `HEAD` and
/// `POST` without a preflight, which is an `OPTIONS`), as request-line openings.
const HTTP_METHODS: [&[u8]; 10] = [
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
    b"PRI * HTTP/2",
];

/// The opening of an SSH identification string (RFC 4253, section 4.2).
const SSH_OPENING: &[u8] = b"SSH-";

/// Recognises the opening of HTTP (a request line with any method, the HTTP/2 preface), TLS (a
/// handshake record) and SSH (an identification string) in the first bytes of a connection.
///
/// Bytes that are the start of one of the fixed openings (`POS`, `SS`, a lone `0x16`) stay
/// [`Recognition::Undecided`] until more arrive, however long the client pauses: a request
/// must not get in by arriving in pieces. `paused` says the client has stopped sending for a
/// while; without it, a first line that could still become an HTTP request line with another
/// method (`token SP target SP HTTP/digit`) is undecided too, until its line feed arrives.
pub fn recognise(received: &[u8], paused: bool) -> Recognition {
    let Some(&lead) = received.first() else {
        return Recognition::Undecided;
    };
    // TLS: content type 22 (handshake), then major version 3.
    if lead == 0x16 {
        return match received.get(1) {
            None => Recognition::Undecided,
            Some(3) => Recognition::Foreign(ForeignProtocol::Tls),
            Some(_) => Recognition::NotForeign,
        };
    }
    let mut opening_started = false;
    for opening in HTTP_METHODS.iter().chain([&SSH_OPENING]) {
        let n = opening.len().min(received.len());
        if received[..n] == opening[..n] {
            if n == opening.len() {
                let protocol = if *opening == SSH_OPENING {
                    ForeignProtocol::Ssh
                } else {
                    ForeignProtocol::Http
                };
                return Recognition::Foreign(protocol);
            }
            opening_started = true;
        }
    }
    let line = first_line(received);
    if is_http_request_line(line) {
        return Recognition::Foreign(ForeignProtocol::Http);
    }
    let line_open = !received.contains(&b'\n');
    if opening_started || (!paused && line_open && could_become_request_line(line)) {
        Recognition::Undecided
    } else {
        Recognition::NotForeign
    }
}

/// Recognises another protocol's server in the first bytes it sent to a client, once the
/// client's session has failed to read them as a reply: an HTTP response (a status line, or the
/// HTML page an HTTP/0.9-style answer starts with), a TLS record (an alert or a handshake) or
/// an SSH identification string (which an SSH server sends as soon as a client connects).
///
/// No unstick reply can start like any of these: read as a frame's length prefix (the default
/// profile's), each asks for a header of more than 64 KiB, and the seed's replies are framed
/// the same way. A client asks only after its session refused the bytes or the server closed
/// without a reply, so a decoder with a larger capacity loses nothing.
pub fn recognise_server(received: &[u8]) -> Option<ForeignProtocol> {
    let starts_with_ignoring_case = |opening: &[u8]| {
        received.len() >= opening.len() && received[..opening.len()].eq_ignore_ascii_case(opening)
    };
    match received {
        // A record of type alert (21) or handshake (22), version 3.1 to 3.4 (TLS 1.0 to 1.3 as
        // records carry them): as a prefix, a header of at least 66,325 bytes.
        [0x15 | 0x16, 0x03, 0x01..=0x04, ..] => Some(ForeignProtocol::Tls),
        _ if received.starts_with(b"HTTP/") => Some(ForeignProtocol::Http),
        _ if starts_with_ignoring_case(b"<!doctype") || starts_with_ignoring_case(b"<html") => {
            Some(ForeignProtocol::Http)
        }
        _ if received.starts_with(SSH_OPENING) => Some(ForeignProtocol::Ssh),
        _ => None,
    }
}

/// Whether any line of `text` is an HTTP request line. A raw-text command holding one is the
/// rest of an HTTP request whose opening arrived apart (after a pause), not a command.
pub fn holds_http_request_line(text: &[u8]) -> bool {
    text.split(|&b| b == b'\n').any(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        is_http_request_line(line)
    })
}

/// The bytes up to the first line feed (without it and a carriage return before it), or all of
/// them.
fn first_line(received: &[u8]) -> &[u8] {
    let line = match received.iter().position(|&b| b == b'\n') {
        Some(end) => &received[..end],
        None => received,
    };
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn is_tchar(b: &u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b)
}

/// Whether more bytes (without a line feed) could make `line` a request line.
fn could_become_request_line(line: &[u8]) -> bool {
    let mut split = line.split(|&b| b == b' ');
    let parts = (split.next(), split.next(), split.next(), split.next());
    let version_may_grow = |v: &[u8]| {
        let n = v.len().min(5);
        v[..n] == b"HTTP/"[..n] && (v.len() <= 5 || v[5].is_ascii_digit())
    };
    match parts {
        (Some(method), None, _, _) => method.iter().all(is_tchar),
        (Some(method), Some(_target), None, _) => !method.is_empty() && method.iter().all(is_tchar),
        (Some(method), Some(target), Some(version), None) => {
            !method.is_empty()
                && method.iter().all(is_tchar)
                && !target.is_empty()
                && version_may_grow(version)
        }
        _ => false,
    }
}

/// Whether `line` is `token SP target SP HTTP/digit...`, the form of every HTTP/1.x request line
/// (RFC 9112, section 3), whatever the method.
fn is_http_request_line(line: &[u8]) -> bool {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    !method.is_empty()
        && method.iter().all(is_tchar)
        && !target.is_empty()
        && version
            .strip_prefix(b"HTTP/")
            .is_some_and(|v| v.first().is_some_and(u8::is_ascii_digit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ForeignProtocol::*;
    use Recognition::*;

    #[test]
    fn http_gets_a_whole_400_response_and_the_others_nothing() {
        let mut out = [0u8; 256];
        let n = encode_reply(Http, "file", &mut out);
        let text = core::str::from_utf8(&out[..n]).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(head.contains("Connection: close"));
        assert!(body.contains("unstick file protocol"));
        let length = head.split("Content-Length: ").nth(1).unwrap();
        let length: usize = length.split("\r\n").next().unwrap().parse().unwrap();
        assert_eq!(length, body.len());
        assert_eq!(encode_reply(Http, "file", &mut out[..n - 1]), 0);
        // A TLS client gets an error frame saying the port is plaintext.
        let n = encode_reply(Tls, "file", &mut out);
        let frame = core::str::from_utf8(&out[4..n]).unwrap();
        assert!(
            frame.contains("\"code\":\"foreign_protocol\"") && frame.contains("not TLS"),
            "{frame}"
        );
        assert_eq!(encode_reply(Tls, "file", &mut out[..n - 1]), 0);
        assert_eq!(encode_reply(Ssh, "file", &mut out), 0);
    }

    #[test]
    fn openings_table() {
        // (bytes, verdict while the client may send more, verdict once it paused)
        let table: [(&[u8], Recognition, Recognition); 28] = [
            (b"", Undecided, Undecided),
            (b"P", Undecided, Undecided),
            (b"POST", Undecided, Undecided),
            (b"POST ", Foreign(Http), Foreign(Http)),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\n\r\n",
                Foreign(Http),
                Foreign(Http),
            ),
            (
                b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n",
                Foreign(Http),
                Foreign(Http),
            ),
            (b"OPTIONS * HTTP/1.1\r\n", Foreign(Http), Foreign(Http)),
            (
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                Foreign(Http),
                Foreign(Http),
            ),
            (b"FOO /x HTTP/1.1\r\n", Foreign(Http), Foreign(Http)),
            (b"FOO /x HTTP/1.1", Foreign(Http), Foreign(Http)),
            (b"get / HTTP/1.0\n", Foreign(Http), Foreign(Http)),
            // A custom method's request line, still arriving.
            (b"FOO /x HTT", Undecided, NotForeign),
            (b"FOO /x HTTP/", Undecided, NotForeign),
            (&[0x16, 0x03, 0x01, 0x02, 0x00], Foreign(Tls), Foreign(Tls)),
            (&[0x16], Undecided, Undecided),
            (&[0x16, 0x00, 0x00, 0x00], NotForeign, NotForeign),
            (b"SSH-2.0-OpenSSH_9.6\r\n", Foreign(Ssh), Foreign(Ssh)),
            (b"SS", Undecided, Undecided),
            // Seed commands: no line feed, so they are judged when the client pauses.
            (b"ls -l", Undecided, NotForeign),
            (b"echo GET / HTTP/1.1", NotForeign, NotForeign),
            (b"ls -l\n", NotForeign, NotForeign),
            (b"ls -l | wc", NotForeign, NotForeign),
            (b"GETX", Undecided, NotForeign),
            (b"PS", Undecided, NotForeign),
            (b"cat a b\n", NotForeign, NotForeign),
            // A framed request: its length prefix is binary.
            (b"\x1c\x00\x00\x00{\"op\":\"exec\"}", NotForeign, NotForeign),
            (b"A\x00\x00\x00{\"op\":\"ls\"}", NotForeign, NotForeign),
            ("echo 新".as_bytes(), Undecided, NotForeign),
        ];
        for (bytes, open, paused) in table {
            let shown = core::str::from_utf8(bytes).unwrap_or("<not UTF-8>");
            assert_eq!(recognise(bytes, false), open, "{shown:?}");
            assert_eq!(recognise(bytes, true), paused, "{shown:?} after a pause");
        }
    }

    #[test]
    fn servers_of_other_protocols_are_told_by_their_first_bytes() {
        let table: [(&[u8], Option<ForeignProtocol>); 14] = [
            (b"HTTP/1.1 400 Bad Request\r\n", Some(Http)),
            (b"HTTP/1.0 200 OK\r\n", Some(Http)),
            (b"<!DOCTYPE HTML>\n<html>", Some(Http)),
            (b"<html><head>", Some(Http)),
            (b"<HTML>", Some(Http)),
            (&[0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46], Some(Tls)),
            (&[0x16, 0x03, 0x03, 0x00, 0x7a, 0x02], Some(Tls)),
            (b"SSH-2.0-OpenSSH_9.6\r\n", Some(Ssh)),
            // Unstick frames: a small header length, NULs in its high bytes.
            (b"\x1c\x00\x00\x00{\"op\":\"exit\"}", None),
            (&[0x16, 0x03, 0x00, 0x00], None),
            (b"HTTP", None),
            (b"<h1>", None),
            (b"", None),
            (b"SSH", None),
        ];
        for (bytes, expected) in table {
            assert_eq!(recognise_server(bytes), expected, "{bytes:?}");
            // None of them is an unstick reply's prefix: as one, each is past 64 KiB.
            if let (Some(_), Some(prefix)) = (expected, bytes.get(..4)) {
                let len = i32::from_le_bytes(prefix.try_into().unwrap());
                assert!(!(0..=65_536).contains(&len), "{bytes:?} reads as {len}");
            }
        }
    }

    #[test]
    fn request_lines_are_found_anywhere_in_a_text() {
        assert!(holds_http_request_line(
            b"ST / HTTP/1.1\r\nHost: x\r\n\r\ntouch x\n"
        ));
        assert!(holds_http_request_line(b"ls\nGET /x HTTP/1.0\n"));
        assert!(!holds_http_request_line(
            b"ls -l\necho HTTP/1.1\ncurl -s http://x/"
        ));
    }
}
