//! Whether this build serves the seed's own clients (the `seed` feature).

/// Proof that this build serves the seed's clients: raw-text shell commands and uploads by
/// `filename` (the `seed` feature, on by default). A session's seed states hold one, so that
/// in a build without the feature they cannot be built, and the compiler leaves their code
/// out: a firmware whose link can never carry a seed client (a serial line) does not pay for
/// serving one.
#[cfg(feature = "seed")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SeedServed(());

/// Proof that this build serves the seed's clients; none can be made in this build, which
/// was made without the `seed` feature.
#[cfg(not(feature = "seed"))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SeedServed {}

impl SeedServed {
    /// The proof, in a build with the `seed` feature.
    pub(crate) const fn in_this_build() -> Option<SeedServed> {
        #[cfg(feature = "seed")]
        return Some(SeedServed(()));
        #[cfg(not(feature = "seed"))]
        return None;
    }
}
