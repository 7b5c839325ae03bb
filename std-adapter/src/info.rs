//! Asking an endpoint what it is: the `info` request (docs/PROTOCOL.md, "Info") over any
//! [`Link`], to a shell server, a file server or a device alike.

use std::fmt;
use std::io::{self, Read, Write};

use unstick_core::info::{EndpointInfo, InfoClientSession, InfoError, encode_request};
use unstick_core::session::PeerText;

use crate::link::Link;
use crate::server::HEADER_CAP;

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
                    PeerText::new(&e.to_string())
                )
            }
            InfoRequestError::Reply(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for InfoRequestError {}

/// Sends an info request on `link` and reads the reply, as its next request; the link then
/// carries other requests as before.
pub fn request_info(link: &mut Link) -> Result<RemoteInfo, InfoRequestError> {
    let mut request = [0u8; 64];
    let n = encode_request(&mut request).map_err(|e| {
        InfoRequestError::Connection(io::Error::other(format!("cannot encode the request: {e}")))
    })?;
    link.start_request();
    link.write_all(&request[..n])
        .and_then(|()| link.flush())
        .map_err(InfoRequestError::Connection)?;
    let mut session = Box::new(InfoClientSession::<HEADER_CAP>::new());
    let mut buf = [0u8; 1024];
    loop {
        let got = loop {
            match link.read(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                read => break read.map_err(InfoRequestError::Connection)?,
            }
        };
        if got == 0 {
            return Err(InfoRequestError::Reply(Box::new(InfoError::Closed)));
        }
        let mut input = &buf[..got];
        while !input.is_empty() {
            let (used, done) = session
                .handle_input(input)
                .map_err(|e| InfoRequestError::Reply(Box::new(e)))?;
            if done {
                let info = session
                    .reply()
                    .map_err(|e| InfoRequestError::Reply(Box::new(e)))?;
                return Ok(RemoteInfo::of(&info));
            }
            input = &input[used..];
        }
    }
}
