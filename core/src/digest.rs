//! Body digests: which algorithms run, the streaming hasher, and hex forms.
//!
//! Two algorithms are supported, each behind a cargo feature that is on by default:
//!
//! - `xxh3`: XXH3-128. Fast (several GB/s) and what unstick's encoders emit by default. It
//!   detects accidents (truncation, bit flips, a mixed-up file) but **not attackers**: anyone can
//!   craft a body with a chosen XXH3 value. Use TLS or a MAC when the peer may be hostile.
//! - `md5`: MD5, which the seed's Python scripts put in their headers. Kept for those peers; it is
//!   an order of magnitude slower and no longer collision-resistant either.

use core::fmt;

/// A digest algorithm the core knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// MD5, header member `"md5"`.
    Md5,
    /// XXH3-128, header member `"xxh3"`.
    Xxh3,
}

impl Algorithm {
    /// The header member that carries this digest.
    pub const fn member(self) -> &'static str {
        match self {
            Algorithm::Md5 => "md5",
            Algorithm::Xxh3 => "xxh3",
        }
    }

    /// Whether this build can compute the algorithm (its cargo feature is enabled).
    pub const fn is_supported(self) -> bool {
        match self {
            Algorithm::Md5 => cfg!(feature = "md5"),
            Algorithm::Xxh3 => cfg!(feature = "xxh3"),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.member())
    }
}

/// A set of algorithms to compute over a body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Algorithms {
    /// Compute MD5.
    pub md5: bool,
    /// Compute XXH3-128.
    pub xxh3: bool,
}

impl Algorithms {
    /// No digest.
    pub const NONE: Algorithms = Algorithms {
        md5: false,
        xxh3: false,
    };
    /// MD5 only.
    pub const MD5: Algorithms = Algorithms {
        md5: true,
        xxh3: false,
    };
    /// XXH3-128 only.
    pub const XXH3: Algorithms = Algorithms {
        md5: false,
        xxh3: true,
    };

    /// The set holding just `algorithm`.
    pub const fn only(algorithm: Algorithm) -> Algorithms {
        match algorithm {
            Algorithm::Md5 => Algorithms::MD5,
            Algorithm::Xxh3 => Algorithms::XXH3,
        }
    }

    /// The union of two sets.
    pub const fn union(self, other: Algorithms) -> Algorithms {
        Algorithms {
            md5: self.md5 || other.md5,
            xxh3: self.xxh3 || other.xxh3,
        }
    }
}

/// A digest value of one algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Checksum {
    /// An MD5 digest.
    Md5([u8; 16]),
    /// An XXH3-128 digest.
    Xxh3(u128),
}

impl Checksum {
    /// The algorithm of this digest.
    pub const fn algorithm(&self) -> Algorithm {
        match self {
            Checksum::Md5(_) => Algorithm::Md5,
            Checksum::Xxh3(_) => Algorithm::Xxh3,
        }
    }

    /// The digest as 32 lowercase hex digits, the form it takes in a header. XXH3-128 is written
    /// in its canonical big-endian form, as `xxhsum -H2` prints it.
    pub fn to_hex(&self) -> HexDigest {
        let bytes = match self {
            Checksum::Md5(d) => *d,
            Checksum::Xxh3(v) => v.to_be_bytes(),
        };
        let mut out = [0u8; 32];
        for (i, b) in bytes.iter().enumerate() {
            out[2 * i] = HEX[(b >> 4) as usize];
            out[2 * i + 1] = HEX[(b & 15) as usize];
        }
        HexDigest(out)
    }

    /// Parses 32 hex digits (either case) as a digest of `algorithm`; `None` if `text` is not
    /// exactly that.
    pub fn from_hex(algorithm: Algorithm, text: &[u8]) -> Option<Checksum> {
        let bytes = parse_hex16(text)?;
        Some(match algorithm {
            Algorithm::Md5 => Checksum::Md5(bytes),
            Algorithm::Xxh3 => Checksum::Xxh3(u128::from_be_bytes(bytes)),
        })
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn parse_hex16(text: &[u8]) -> Option<[u8; 16]> {
    if text.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = crate::hex::digit(pair[0])? << 4 | crate::hex::digit(pair[1])?;
    }
    Some(out)
}

/// 32 lowercase hex digits of a digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HexDigest([u8; 32]);

impl HexDigest {
    /// The hex text.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever stored.
        core::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for HexDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for HexDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Digests of a body, computed over it or declared by its header: one slot per algorithm, `None`
/// where it was not computed or not declared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Digests {
    /// MD5 of the body, if computed.
    pub md5: Option<[u8; 16]>,
    /// XXH3-128 of the body, if computed.
    pub xxh3: Option<u128>,
}

impl Digests {
    /// The digest of `algorithm`, if computed.
    pub fn get(&self, algorithm: Algorithm) -> Option<Checksum> {
        match algorithm {
            Algorithm::Md5 => self.md5.map(Checksum::Md5),
            Algorithm::Xxh3 => self.xxh3.map(Checksum::Xxh3),
        }
    }
}

/// A streaming hasher over a body: feed it the body in pieces of any size, in order.
///
/// Algorithms whose cargo feature is disabled are silently not computed (their slot in
/// [`Digests`] stays `None`).
#[derive(Clone)]
pub struct BodyHasher {
    #[cfg(feature = "md5")]
    md5: Option<md5::Md5>,
    #[cfg(feature = "xxh3")]
    xxh3: Option<xxhash_rust::xxh3::Xxh3Default>,
    /// With `fast-scan`, the XXH3 of a body given [`whole`](Self::whole) (the streaming state
    /// then stays as new).
    #[cfg(all(feature = "xxh3", feature = "fast-scan"))]
    xxh3_whole: Option<u128>,
}

impl fmt::Debug for BodyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyHasher")
            .field("algorithms", &self.algorithms())
            .finish()
    }
}

impl Default for BodyHasher {
    fn default() -> Self {
        Self::new(Algorithms::NONE)
    }
}

impl BodyHasher {
    /// A hasher computing `algorithms`.
    pub fn new(algorithms: Algorithms) -> Self {
        let _ = algorithms;
        BodyHasher {
            #[cfg(feature = "md5")]
            md5: algorithms.md5.then(<md5::Md5 as md5::Digest>::new),
            #[cfg(feature = "xxh3")]
            xxh3: algorithms.xxh3.then(xxhash_rust::xxh3::Xxh3Default::new),
            #[cfg(all(feature = "xxh3", feature = "fast-scan"))]
            xxh3_whole: None,
        }
    }

    /// The algorithms this hasher actually computes.
    pub fn algorithms(&self) -> Algorithms {
        Algorithms {
            #[cfg(feature = "md5")]
            md5: self.md5.is_some(),
            #[cfg(not(feature = "md5"))]
            md5: false,
            #[cfg(feature = "xxh3")]
            xxh3: self.xxh3.is_some(),
            #[cfg(not(feature = "xxh3"))]
            xxh3: false,
        }
    }

    /// Whether no algorithm runs (updates are free).
    pub fn is_idle(&self) -> bool {
        self.algorithms() == Algorithms::NONE
    }

    /// Adds the next piece of the body.
    #[inline]
    pub fn update(&mut self, bytes: &[u8]) {
        let _ = bytes;
        #[cfg(feature = "md5")]
        if let Some(h) = &mut self.md5 {
            md5::Digest::update(h, bytes);
        }
        #[cfg(feature = "xxh3")]
        if let Some(h) = &mut self.xxh3 {
            h.update(bytes);
        }
    }

    /// Adds a whole body at once, to a hasher fed nothing since it was made or last finished:
    /// the same digests as [`update`](Self::update) with the body. XXH3 takes its one-shot form,
    /// several times faster than the streaming one on a short body (with `fast-scan`, whose
    /// builds carry that code).
    #[cfg(feature = "fast-scan")]
    pub(crate) fn whole(&mut self, body: &[u8]) {
        #[cfg(feature = "md5")]
        if let Some(h) = &mut self.md5 {
            md5::Digest::update(h, body);
        }
        #[cfg(feature = "xxh3")]
        if self.xxh3.is_some() {
            self.xxh3_whole = Some(xxhash_rust::xxh3::xxh3_128(body));
        }
        let _ = body;
    }

    /// The digests of everything fed since creation; the hasher starts over, computing the same
    /// algorithms.
    pub fn finish(&mut self) -> Digests {
        #[cfg_attr(not(any(feature = "md5", feature = "xxh3")), allow(unused_mut))]
        let mut digests = Digests::default();
        #[cfg(feature = "md5")]
        if let Some(h) = &mut self.md5 {
            digests.md5 = Some(md5::Digest::finalize_reset(h).into());
        }
        #[cfg(feature = "xxh3")]
        if let Some(h) = &mut self.xxh3 {
            #[cfg(feature = "fast-scan")]
            let whole = self.xxh3_whole.take();
            #[cfg(not(feature = "fast-scan"))]
            let whole = None;
            digests.xxh3 = Some(whole.unwrap_or_else(|| {
                let digest = h.digest128();
                h.reset();
                digest
            }));
        }
        digests
    }
}

/// Computes `algorithms` over a whole body at once.
pub fn digest_of(algorithms: Algorithms, body: &[u8]) -> Digests {
    let mut hasher = BodyHasher::new(algorithms);
    #[cfg(feature = "fast-scan")]
    hasher.whole(body);
    #[cfg(not(feature = "fast-scan"))]
    hasher.update(body);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(feature = "fast-scan")]
    fn a_body_given_whole_has_the_digests_of_the_same_body_streamed() {
        let all = Algorithms {
            md5: true,
            xxh3: true,
        };
        // Every length across XXH3's short, medium and long forms (0-16, 17-128, 129-240,
        // then stripes and blocks), over bytes that are not a pattern.
        let mut bytes = [0u8; 2100];
        let mut x: u32 = 0x9e37_79b9;
        for b in bytes.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        let mut hasher = BodyHasher::new(all);
        for len in (0..=300).chain((301..=bytes.len()).step_by(37)) {
            let body = &bytes[..len];
            let mut streamed = BodyHasher::new(all);
            for piece in body.chunks(7) {
                streamed.update(piece);
            }
            let streamed = streamed.finish();
            // A reused hasher, as the decoder's is: whole, then finished, then whole again.
            hasher.whole(body);
            assert_eq!(hasher.finish(), streamed, "{len} bytes");
            assert_eq!(digest_of(all, body), streamed, "{len} bytes");
        }
        // After a whole body, a streamed one still reads from a fresh state.
        hasher.whole(b"first");
        hasher.finish();
        hasher.update(b"sec");
        hasher.update(b"ond");
        assert_eq!(hasher.finish(), digest_of(all, b"second"));
    }

    #[test]
    fn hex_round_trips_and_rejects_non_digests() {
        let c = Checksum::Xxh3(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        assert_eq!(c.to_hex().as_str(), "0123456789abcdef0011223344556677");
        assert_eq!(
            Checksum::from_hex(Algorithm::Xxh3, c.to_hex().as_str().as_bytes()),
            Some(c)
        );
        assert_eq!(
            Checksum::from_hex(Algorithm::Xxh3, b"0123456789ABCDEF0011223344556677"),
            Some(c)
        );
        // The seed's placeholder is not a digest.
        assert_eq!(Checksum::from_hex(Algorithm::Md5, b"fdsaf2143254f"), None);
        assert_eq!(Checksum::from_hex(Algorithm::Md5, &[b'g'; 32]), None);
    }

    #[cfg(all(feature = "md5", feature = "xxh3"))]
    #[test]
    fn known_vectors_in_any_split() {
        // md5("hello world") and XXH3-128("hello world") as xxhsum prints them.
        let md5 = "5eb63bbbe01eeed093cb22bb8f5acdc3";
        let body = b"hello world";
        for split in 0..=body.len() {
            let mut h = BodyHasher::new(Algorithms::MD5.union(Algorithms::XXH3));
            h.update(&body[..split]);
            h.update(&body[split..]);
            let d = h.finish();
            assert_eq!(Checksum::Md5(d.md5.unwrap()).to_hex().as_str(), md5);
            assert_eq!(d.xxh3, Some(xxhash_rust::xxh3::xxh3_128(body)));
        }
        assert_eq!(
            Checksum::Xxh3(xxhash_rust::xxh3::xxh3_128(b""))
                .to_hex()
                .as_str(),
            "99aa06d3014798d86001c324468d497f"
        );
    }
}
