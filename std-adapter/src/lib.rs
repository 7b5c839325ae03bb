//! # unstick-std
//!
//! [`unstick_core`] on std TCP sockets, through `embedded-io-adapters`' std adapter, and the two
//! tools built on it: a remote shell ([`shell`]) and a file server ([`ftp`]), each with its
//! client.
#![deny(missing_docs)]

pub mod ftp;
pub mod server;
pub mod shell;
