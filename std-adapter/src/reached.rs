//! What a client reached when it is not the server it speaks to, said in one sentence that
//! tells the user what to do, shared by every client (file, shell, seed, info):
//!
//! - another protocol's server (HTTP, TLS, SSH), recognised by the first bytes of its answer,
//!   which no unstick reply can start with ([`recognise_server`], checked once for every client
//!   in the host's reply loop);
//! - the other unstick tool's server: a shell server refuses a file request's op
//!   (`unknown_op`), a file server a shell request's (`bad_request`), and either answers `info`
//!   with the protocols it serves, which decides (`other_tool`).
//!
//! [`recognise_server`]: unstick_core::foreign::recognise_server

use std::fmt;
use std::time::Duration;

use unstick_core::ErrorCode;
use unstick_core::foreign::ForeignProtocol;

use crate::info::request_info;
use crate::link::Link;

/// One of the two unstick tools, as a client speaks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tool {
    /// The remote shell (`unstick shell connect`).
    Shell,
    /// The file tool (`unstick ftp`).
    File,
}

/// What a client reached instead of a server of its own protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reached {
    /// A server of another protocol, which answered in it.
    Foreign(ForeignProtocol),
    /// A server of the other unstick tool than `wanted`, the client's.
    OtherTool {
        /// The tool the client speaks.
        wanted: Tool,
    },
}

impl fmt::Display for Reached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reached::Foreign(ForeignProtocol::Http) => {
                "the server answered HTTP: this is a web server, not unstick; check the address \
                 and port"
            }
            Reached::Foreign(ForeignProtocol::Tls) => {
                "the server answered TLS: this is a TLS server, not a plaintext unstick one; an \
                 unstick server started with --tls is reached as tls://HOST:PORT"
            }
            Reached::Foreign(ForeignProtocol::Ssh) => {
                "the server answered SSH: this is an SSH server, not unstick; use ssh there, or \
                 the unstick server's port (8080 for the shell, 8090 for files)"
            }
            Reached::OtherTool { wanted: Tool::File } => {
                "this is an unstick shell server, not a file server; use `unstick shell \
                 connect` there (the file server's port is 8090 unless it was given another)"
            }
            Reached::OtherTool {
                wanted: Tool::Shell,
            } => {
                "this is an unstick file server, not a shell server; use `unstick ftp` there \
                 (the shell server's port is 8080 unless it was given another)"
            }
        })
    }
}

/// How long the `info` that tells the other tool's server may take.
const INFO_LIMIT: Duration = Duration::from_secs(10);

/// After the server on `link` refused a `wanted` request with `code`: whether it is the other
/// tool's server. Only the refusal of an op the server does not serve (`unknown_op` from a
/// shell server to a file client, `bad_request` from a file server to a shell client) is
/// looked into, by asking the server what it serves (`info`, no token needed): on the same
/// connection, or, when the server closed it with its refusal (one with a body it would not
/// read), on the one `reconnect` opens. `None` when it serves `wanted` after all (a request it
/// found malformed, say), or does not say.
pub(crate) fn other_tool(
    link: &mut Link,
    reconnect: impl FnOnce() -> Option<Link>,
    timeout: Duration,
    wanted: Tool,
    code: &str,
) -> Option<Reached> {
    let op_refused = match wanted {
        Tool::File => ErrorCode::UnknownOp,
        Tool::Shell => ErrorCode::BadRequest,
    };
    if code != op_refused.as_str() {
        return None;
    }
    let timeout = timeout.min(INFO_LIMIT);
    let info = match request_info(link, timeout) {
        Ok(info) => info,
        Err(_) => request_info(&mut reconnect()?, timeout).ok()?,
    };
    let serves = info.facts.protocols;
    let (serves_wanted, serves_other) = match wanted {
        Tool::File => (serves.file, serves.shell),
        Tool::Shell => (serves.shell, serves.file),
    };
    (!serves_wanted && serves_other).then_some(Reached::OtherTool { wanted })
}
