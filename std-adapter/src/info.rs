//! Asking an endpoint what it is: the `info` request (docs/PROTOCOL.md, "Info") over any
//! [`Link`], to a shell server, a file server or a device alike.

use std::fmt;
use std::io;
use std::time::Duration;

use unstick_core::foreign::ForeignProtocol;
use unstick_core::info::{EndpointInfo, InfoClientSession, InfoError, Replied};
use unstick_core::session::PeerText;

use crate::host::{Inbox, Outlet, ReplyFailure, await_reply};
use crate::link::Link;
use crate::reached::Reached;
use crate::server::HEADER_CAP;
use crate::system_error::SystemError;

/// What an endpoint said it is, kept after its reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteInfo {
    /// Its protocols, version, limits and digests (`platform` and `board` are in the fields
    /// below).
    pub facts: EndpointInfo<'static>,
    /// Its operating system and processor, or a firmware's target, as it wrote them: show it
    /// as [`PeerText`] only.
    pub platform: Option<String>,
    /// The board a firmware runs on, as it wrote it: show it as [`PeerText`] only.
    pub board: Option<String>,
}

impl RemoteInfo {
    fn of(info: &EndpointInfo<'_>) -> RemoteInfo {
        RemoteInfo {
            facts: info.without_text(),
            platform: info.platform.map(str::to_owned),
            board: info.board.map(str::to_owned),
        }
    }
}

/// Why an info request got no answer.
#[derive(Debug)]
pub enum InfoRequestError {
    /// Sending the request or reading the reply failed.
    Connection(io::Error),
    /// The reply was a refusal (an endpoint that predates `info`), or broke the rules.
    Reply(Box<InfoError>),
    /// The endpoint answered in another protocol (HTTP, TLS, SSH): it is not unstick's.
    Foreign(ForeignProtocol),
}

impl fmt::Display for InfoRequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InfoRequestError::Connection(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                f.write_str("the server did not answer the info request in time")
            }
            InfoRequestError::Connection(e) => {
                write!(
                    f,
                    "connection to the server failed: {}",
                    PeerText::new(&SystemError(e).to_string())
                )
            }
            InfoRequestError::Reply(e) => fmt::Display::fmt(e, f),
            InfoRequestError::Foreign(protocol) => {
                fmt::Display::fmt(&Reached::Foreign(*protocol), f)
            }
        }
    }
}

impl std::error::Error for InfoRequestError {}

/// Sends an info request on `link` and reads the reply, as its next request; the link then
/// carries other requests as before. The server may stay silent for `reply_timeout` at most.
pub fn request_info(
    link: &mut Link,
    reply_timeout: Duration,
) -> Result<RemoteInfo, InfoRequestError> {
    let mut session =
        Box::new(InfoClientSession::<HEADER_CAP>::new().with_reply_timeout(Some(reply_timeout)));
    link.start_request();
    Outlet::new(link)
        .send(&mut *session, &[])
        .map_err(InfoRequestError::Connection)?;
    let mut inbox = Inbox::new(1024, &[]);
    await_reply(
        &mut *session,
        link,
        &mut inbox,
        Some(reply_timeout),
        |_, Replied| Ok(Some(())),
        |failure| match failure {
            ReplyFailure::Session(e) => InfoRequestError::Reply(Box::new(e)),
            ReplyFailure::Closed => InfoRequestError::Reply(Box::new(InfoError::Closed)),
            ReplyFailure::Io(e) => InfoRequestError::Connection(e),
            ReplyFailure::Foreign(protocol) => InfoRequestError::Foreign(protocol),
        },
    )?;
    let info = session
        .reply()
        .map_err(|e| InfoRequestError::Reply(Box::new(e)))?;
    Ok(RemoteInfo::of(&info))
}
