//! The file server and its client.
//!
//! A request is a header frame with an `"op"`: `put` (with the file as its body, then a
//! `{"op":"done","file_xxh3":...}` trailer carrying the digest computed while sending), `get`,
//! `ls`, `stat`, `delete`, `mkdir`, `rename`. The seed's upload header
//! (`{"filepath","filename","filesize"}`, no `op`) is accepted too. The wire details are in `docs/PROTOCOL.md`.
//!
//! What the server promises:
//!
//! - **Streaming:** bodies go from socket to file (and back) through one fixed buffer per
//!   request in progress ([`TRANSFER_BUFFER`] by default); no file is ever held in memory.
//! - **Verified, atomic commits:** an upload is written to a hidden file in the target
//!   directory, synced, checked against the client's digest (XXH3-128, or MD5 when asked), and
//!   only then renamed over the final name, and the directory synced. A mismatch, a torn
//!   connection, a full disk or a killed server never leaves a partial file at the final name.
//! - **Resume:** an interrupted upload stays in a hidden, locked `.unstick-partial-<name>`; a
//!   resumed `put` sends the digest of the prefix it skips, the server checks it (a corrupted
//!   partial is discarded, not extended), and the whole file is verified at the end. Downloads
//!   resume the same way on the client side.
//! - **Paths stay under the root:** names are validated ([`RemotePath`]) and then opened one
//!   component at a time from a directory handle with `O_NOFOLLOW`, so neither `..` nor a
//!   symbolic link nor a race with a rename can lead outside. Symbolic links are never
//!   followed.
//! - **Limits:** file size (refused from the header, before any file is created), requests in
//!   progress (connections waiting between requests hold no slot; see [`crate::server`]), idle
//!   time.

mod attributes;
mod client;
mod config;
mod local;
mod name;
mod request;
mod server;
mod staging;
mod storage;
mod sweeper;
mod transfer;
mod tree;

pub use client::{
    ClientError, ClientOptions, Existing, FileClient, GetReport, Limit, PutReport, RemoteEntry,
    RemoteStat, is_partial_mismatch, partial_download_path, seed_put,
};
pub use config::{FileServerConfig, PARTIAL_MAX_AGE};
pub use name::{PathError, RemotePath, SERVER_NAME_RULES, check_local_name, escape_for_terminal};
pub use server::FileServer;
pub use transfer::{NoProgress, Progress, TRANSFER_BUFFER};
pub use tree::SweepReport;
