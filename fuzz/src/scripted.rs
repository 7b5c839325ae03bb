//! What the session targets share: an input split into the host's choices and the peer's
//! bytes, reads of the lengths the choices pick, and the targets' own digests (computed by
//! crates of their own, to check the sessions' digest decisions against).

use md5::Digest;
use unstick_core::{Algorithm, Checksum};

/// The host's choices, then the peer's bytes: the first byte says how many choices there are.
pub fn split(rest: &[u8]) -> (&[u8], &[u8]) {
    let Some((&n, rest)) = rest.split_first() else {
        return (&[], &[]);
    };
    rest.split_at(usize::from(n).min(rest.len()))
}

/// The host's choices, 0 once they run out.
pub struct Script<'a> {
    /// Every choice.
    pub choices: &'a [u8],
    /// How many were taken.
    pub at: usize,
}

impl Script<'_> {
    /// The next choice.
    pub fn choose(&mut self) -> u8 {
        let c = self.choices.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        c
    }

    /// How many choices there are.
    pub fn len(&self) -> usize {
        self.choices.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.choices.is_empty()
    }
}

/// The peer's bytes, handed over in reads whose lengths the script picks.
pub struct Peer<'a> {
    /// Everything the peer sends.
    pub bytes: &'a [u8],
    /// How much was taken.
    pub at: usize,
}

impl<'a> Peer<'a> {
    /// Whether everything was taken.
    pub fn is_done(&self) -> bool {
        self.at == self.bytes.len()
    }

    /// The next read: as many bytes as the choice says (0: all that is left).
    pub fn read(&self, choice: u8) -> &'a [u8] {
        let rest = &self.bytes[self.at..];
        let n = if choice == 0 {
            rest.len()
        } else {
            usize::from(choice).min(rest.len())
        };
        &rest[..n]
    }
}

/// The target's own digest of `bytes`.
pub fn digest(algorithm: Algorithm, bytes: &[u8]) -> Checksum {
    match algorithm {
        Algorithm::Xxh3 => Checksum::Xxh3(xxhash_rust::xxh3::xxh3_128(bytes)),
        Algorithm::Md5 => Checksum::Md5(md5::Md5::digest(bytes).into()),
    }
}
