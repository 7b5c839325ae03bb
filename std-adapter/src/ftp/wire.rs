//! The file protocol's headers: the ones sent are `unstick-core`'s
//! [`files`](unstick_core::files) messages; the client reads replies through [`Message`].

use serde::Deserialize;
pub use unstick_core::FileOp;
pub use unstick_core::files::*;
use unstick_core::{Algorithm, Checksum};

/// Every reply member the client reads, all optional: it decides which it needs from `op`.
/// Unknown members are ignored. (The server reads requests as `unstick-core`'s typed
/// [`RequestHead`] and [`Request`].)
#[derive(Deserialize, Default, Debug, Clone)]
#[serde(default)]
pub struct Message {
    /// The operation or reply kind (`put`, `get`, `ls`, `stat`, `delete`, `done`, `stored`,
    /// `file`, `entry`, `end`, `deleted`, `error`).
    pub op: Option<String>,
    /// Where a resumed transfer starts.
    pub offset: Option<u64>,
    /// XXH3-128 of the whole file, in a trailer or a reply.
    pub file_xxh3: Option<String>,
    /// MD5 of the whole file, in a trailer or a reply.
    pub file_md5: Option<String>,
    /// Error code.
    pub code: Option<String>,
    /// Error message.
    pub message: Option<String>,
    /// A file size.
    pub size: Option<u64>,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: Option<i64>,
    /// `"file"`, `"dir"`, `"symlink"` or `"other"`.
    pub kind: Option<String>,
    /// A directory entry's name.
    pub name: Option<String>,
    /// Whether `name` is in escaped form (the name is not UTF-8).
    pub name_escaped: Option<bool>,
    /// Whether a stat target exists.
    pub exists: Option<bool>,
    /// Bytes of a resumable partial upload the server holds for a name.
    pub partial_size: Option<u64>,
}

impl Message {
    /// The digest of the whole file carried for `algorithm`.
    pub fn file_digest(&self, algorithm: Algorithm) -> Option<Checksum> {
        let hex = match algorithm {
            Algorithm::Xxh3 => self.file_xxh3.as_deref(),
            Algorithm::Md5 => self.file_md5.as_deref(),
        }?;
        Checksum::from_hex(algorithm, hex.as_bytes())
    }
}
