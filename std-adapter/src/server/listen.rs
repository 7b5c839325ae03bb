//! Listening: a server's [`Transport`] (TLS or plaintext), the checks that refuse to listen
//! beyond loopback without a strong token and TLS, [`bind`] with a long accept queue, and the
//! lobby's entrance on the bound listener (the listener itself, or a [`tls_front`] on it).
//!
//! [`tls_front`]: super::tls_front

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use super::lobby::{Entrance, LobbyConfig};
use super::tls_front::{self, FrontLimits};
use super::token::{self, TokenWeakness, token_weakness};
use crate::tls::ServerTls;

/// Connections the system queues for a server before it accepts them. A burst of connections
/// beyond the queue waits for a SYN retransmission (a second or more), so the queue is made as
/// long as the system allows (`net.core.somaxconn` caps it).
#[cfg(unix)]
const ACCEPT_QUEUE: i32 = 4096;

/// How a server's connections are secured on the wire.
#[derive(Clone, Debug, Default)]
pub struct Transport {
    /// Serve TLS with this; plaintext without.
    pub tls: Option<ServerTls>,
    /// Allow plaintext beyond loopback (for clients that cannot speak TLS, such as the seed's
    /// scripts). A token is still required there.
    pub insecure_plaintext: bool,
}

impl PartialEq for Transport {
    fn eq(&self, other: &Transport) -> bool {
        self.insecure_plaintext == other.insecure_plaintext
            && self.tls.as_ref().map(ServerTls::fingerprint)
                == other.tls.as_ref().map(ServerTls::fingerprint)
    }
}

impl Eq for Transport {}

impl Transport {
    /// Refuses to serve on `local` beyond loopback without a token, with a token that is easy
    /// to guess ([`token_weakness`]), or in plaintext unless the operator allowed it.
    pub fn check_listen(&self, local: SocketAddr, token: Option<&str>) -> io::Result<()> {
        if local.ip().is_loopback() {
            return Ok(());
        }
        let Some(token) = token else {
            return Err(insecure_listen(local));
        };
        if let Some(weakness) = token_weakness(token) {
            return Err(weak_token_listen(local, &weakness));
        }
        if self.tls.is_none() && !self.insecure_plaintext {
            return Err(plaintext_listen(local));
        }
        Ok(())
    }

    /// The lobby's entrance: `listener` itself, or a TLS front on it for the server `name`.
    pub(crate) fn entrance(
        &self,
        listener: TcpListener,
        lobby: &LobbyConfig,
        name: &'static str,
    ) -> io::Result<Entrance> {
        let Some(tls) = &self.tls else {
            return Ok(Entrance::Listener(listener));
        };
        let limits = FrontLimits {
            handshake_time: lobby.login_grace.min(TLS_HANDSHAKE_TIME),
            max_handshakes: lobby.max_waiting.clamp(1, MAX_TLS_HANDSHAKES),
            max_handshakes_per_address: lobby.max_waiting_per_address.clamp(1, MAX_TLS_HANDSHAKES),
        };
        tls_front::start(listener, tls.config(), limits, name).map(Entrance::Front)
    }
}

/// Longest time a client has for its TLS handshake (less when the login grace is shorter).
const TLS_HANDSHAKE_TIME: Duration = Duration::from_secs(10);

/// Most TLS handshakes in progress at once (each has a thread).
const MAX_TLS_HANDSHAKES: usize = 512;

/// The error for a server listening beyond loopback in plaintext.
fn plaintext_listen(local: SocketAddr) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "refusing to listen on {local} in plaintext: the token and everything it protects would cross the network unencrypted; add --tls, or --insecure-plaintext for clients that cannot speak TLS (such as the seed's scripts)"
        ),
    )
}

/// Binds `addr`, refusing a non-loopback address unless a `token` is set, strong enough, and
/// `transport` allows it.
pub fn bind(addr: &str, token: Option<&str>, transport: &Transport) -> io::Result<TcpListener> {
    // Judged before binding, so that a refused address is never listened on, even briefly.
    for resolved in std::net::ToSocketAddrs::to_socket_addrs(addr)? {
        transport.check_listen(resolved, token)?;
    }
    let listener = TcpListener::bind(addr)?;
    // Windows keeps the queue of a socket's first listen (a second one succeeds and changes
    // nothing), so there it stays std's 128.
    #[cfg(unix)]
    lengthen_accept_queue(&listener);
    transport.check_listen(listener.local_addr()?, token)?;
    Ok(listener)
}

/// Makes `listener`'s queue of connections not yet accepted [`ACCEPT_QUEUE`] long (std listens
/// with a queue of 128). Listening again on a listening socket only changes the queue's length.
#[cfg(unix)]
fn lengthen_accept_queue(listener: &TcpListener) {
    let _ = rustix::net::listen(listener, ACCEPT_QUEUE);
}

/// The error for a server listening beyond loopback without a token.
fn insecure_listen(local: SocketAddr) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "refusing to listen on {local} without a token: anyone who can reach it could use the server; set --token or UNSTICK_TOKEN, or listen on 127.0.0.1"
        ),
    )
}

/// The error for a server listening beyond loopback with a token that is easy to guess.
fn weak_token_listen(local: SocketAddr, weakness: &TokenWeakness) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "refusing to listen on {local} with a token that is easy to guess ({weakness}); {}",
            token::HOW_TO_MAKE_A_TOKEN
        ),
    )
}
