//! # unstick-std
//!
//! [`unstick_core`] on std TCP sockets, through `embedded-io-adapters`' std adapter, and the two
//! tools built on it: a remote shell ([`shell`]) and a file server ([`files`]), each with its
//! client. The protocols themselves are the core's `protocols` feature: sans-IO sessions that
//! make every protocol decision. This crate hosts them on sockets, files and processes, and
//! reaches a server over TCP or a device over a serial line ([`link`]), at an address written as
//! [`address`] reads it.
//!
//! What both servers share is in [`server`]: the lobby where every connection waits between
//! requests (one thread, `epoll` on Linux, kqueue on macOS, IOCP on Windows, through `polling`),
//! request slots and their queue, a graceful stop, the refusal of other protocols' openings,
//! and error frames. Servers log through `tracing`; the binary
//! decides where the lines go.
#![deny(missing_docs)]

pub mod address;
pub mod files;
mod host;
pub mod info;
pub mod link;
pub mod reached;
pub(crate) mod readiness;
pub mod server;
pub mod shell;
pub mod system_error;
pub mod tls;
pub(crate) mod transmit;
