//! The waits a session times: a server's wait for its client ([`Wait`]) and a client's
//! patience with its server ([`ReplyTimer`]), both on the host's [`Instant`]s.

use core::time::Duration;

use crate::time::Instant;

/// The earlier of two optional deadlines (`None` is "never").
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// A limit on waiting, started by the first [`Instant`] the session sees once it begins to
/// wait (the host's next `poll_timeout` or input), so that calls which carry no time can start
/// one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Nothing is waited for.
    Off,
    /// A wait began; it is timed from the next instant the session is given.
    Starting,
    /// A wait began at this instant.
    Since(Instant),
}

impl Wait {
    /// Starts timing at `now` if the wait began without a time.
    pub(crate) fn start_at(&mut self, now: Instant) {
        if *self == Wait::Starting {
            *self = Wait::Since(now);
        }
    }

    /// When a limit of `limit` on this wait runs out.
    pub(crate) fn deadline(self, limit: Duration) -> Option<Instant> {
        match self {
            Wait::Since(since) => Some(since + limit),
            Wait::Off | Wait::Starting => None,
        }
    }
}

/// A client's patience with its server: how long the server may stay silent while an answer is
/// due (`None`: forever). The wait begins when the request is out (timed from the next
/// instant the session sees), starts over with every byte that comes, and ends with the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReplyTimer {
    limit: Option<Duration>,
    wait: Wait,
}

impl ReplyTimer {
    /// No wait yet, with `limit` for the waits to come.
    pub(crate) const fn new(limit: Option<Duration>) -> Self {
        ReplyTimer {
            limit,
            wait: Wait::Off,
        }
    }

    /// The limit on a wait.
    pub(crate) fn limit(&self) -> Option<Duration> {
        self.limit
    }

    /// Sets the limit on waits, the current one included.
    pub(crate) fn set_limit(&mut self, limit: Option<Duration>) {
        self.limit = limit;
    }

    /// An answer is due from now on (the host's turn ended).
    pub(crate) fn begin(&mut self) {
        self.wait = Wait::Starting;
    }

    /// An answer is due, if one was not already: the wait begins unless it is running.
    pub(crate) fn due(&mut self) {
        if self.wait == Wait::Off {
            self.wait = Wait::Starting;
        }
    }

    /// Bytes came at `now`: the server is not silent.
    pub(crate) fn heard(&mut self, now: Instant) {
        if self.wait != Wait::Off {
            self.wait = Wait::Since(now);
        }
    }

    /// Nothing is due: the answer came, or the host has work to do first.
    pub(crate) fn end(&mut self) {
        self.wait = Wait::Off;
    }

    /// When the wait runs out, asked at `now`.
    pub(crate) fn deadline(&mut self, now: Instant) -> Option<Instant> {
        self.wait.start_at(now);
        self.wait.deadline(self.limit?)
    }

    /// Whether the wait has run out at `now`.
    pub(crate) fn has_expired(&mut self, now: Instant) -> bool {
        self.deadline(now).is_some_and(|at| at <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_timer_runs_only_while_an_answer_is_due_and_restarts_with_every_byte() {
        let ms = Instant::from_millis;
        let mut timer = ReplyTimer::new(Some(Duration::from_secs(2)));
        assert_eq!(timer.deadline(ms(0)), None);
        timer.heard(ms(10));
        assert_eq!(
            timer.deadline(ms(10)),
            None,
            "bytes while nothing is due start nothing"
        );
        timer.begin();
        assert_eq!(timer.deadline(ms(100)), Some(ms(2_100)));
        timer.heard(ms(1_000));
        assert!(!timer.has_expired(ms(2_100)));
        assert!(timer.has_expired(ms(3_000)));
        timer.end();
        assert!(!timer.has_expired(ms(9_000)));
        let mut patient = ReplyTimer::new(None);
        patient.begin();
        assert_eq!(patient.deadline(ms(0)), None);
    }

    #[test]
    fn a_wait_is_timed_from_the_first_instant_it_sees() {
        let mut wait = Wait::Starting;
        assert_eq!(wait.deadline(Duration::from_secs(1)), None);
        wait.start_at(Instant::from_millis(500));
        wait.start_at(Instant::from_millis(900));
        assert_eq!(
            wait.deadline(Duration::from_secs(1)),
            Some(Instant::from_millis(1_500))
        );
        assert_eq!(
            earliest(Some(Instant::from_millis(3)), None),
            Some(Instant::from_millis(3))
        );
        assert_eq!(
            earliest(Some(Instant::from_millis(3)), Some(Instant::from_millis(2))),
            Some(Instant::from_millis(2))
        );
    }
}
