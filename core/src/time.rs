//! Time as the sessions see it: an [`Instant`] the host reads from its own monotonic clock and
//! passes in, and [`Duration`]s for the rules. No session reads a clock:
//! each says when it next needs the host's attention (`poll_timeout`) and is told when that
//! time has come (`handle_timeout`), so a pair of sessions can be driven by a fake clock.

use core::time::Duration;

/// A point on the host's monotonic clock, in milliseconds from an origin the host picks (boot,
/// process start). Only differences mean anything; it never goes backwards.
///
/// ```
/// use core::time::Duration;
/// use unstick_core::time::Instant;
///
/// let start = Instant::from_millis(1_000);
/// let later = start + Duration::from_millis(250);
/// assert_eq!(later.as_millis(), 1_250);
/// assert_eq!(later.saturating_duration_since(start), Duration::from_millis(250));
/// assert_eq!(start.saturating_duration_since(later), Duration::ZERO);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The origin of the host's clock.
    pub const ZERO: Instant = Instant(0);

    /// The instant `millis` milliseconds after the clock's origin.
    pub const fn from_millis(millis: u64) -> Instant {
        Instant(millis)
    }

    /// Milliseconds since the clock's origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// How long after `earlier` this is; zero when it is not later.
    pub const fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl core::ops::Add<Duration> for Instant {
    type Output = Instant;

    /// The instant `span` later (rounded down to the millisecond), saturating at the end of
    /// the clock rather than wrapping: a very long limit means "never".
    fn add(self, span: Duration) -> Instant {
        let millis = u64::try_from(span.as_millis()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_a_huge_span_saturates_instead_of_wrapping() {
        let late = Instant::from_millis(u64::MAX - 5);
        assert_eq!(
            late + Duration::from_secs(1),
            Instant::from_millis(u64::MAX)
        );
        assert_eq!(
            Instant::ZERO + Duration::MAX,
            Instant::from_millis(u64::MAX)
        );
    }
}
