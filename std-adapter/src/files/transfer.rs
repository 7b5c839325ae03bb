//! What both ends of a transfer share: the buffer size and progress reports.

/// Default size of the transfer buffers (socket reads and file reads), per connection.
pub const TRANSFER_BUFFER: usize = 512 * 1024;

/// Reports transfer progress, e.g. to a terminal progress bar.
pub trait Progress {
    /// A transfer of `total` bytes starts, `done` of them already in place (resume).
    fn start(&mut self, total: u64, done: u64);
    /// `n` more bytes moved.
    fn advance(&mut self, n: u64);
    /// The transfer is over (successfully or not).
    fn finish(&mut self);
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&mut self, _total: u64, _done: u64) {}
    fn advance(&mut self, _n: u64) {}
    fn finish(&mut self) {}
}

/// Keeps a transfer at or under a rate (`--limit-rate`): the bytes moved since the transfer
/// started never run ahead of the rate by more than one step, a tenth of a second's worth.
/// The wait is the host's own (it sleeps between chunks); the protocol does not know of it.
#[derive(Debug)]
pub(crate) struct Pace {
    /// Bytes a second.
    rate: u64,
    started: std::time::Instant,
    moved: u64,
}

impl Pace {
    /// A pace of `rate` bytes a second (at least one), from now.
    pub(crate) fn new(rate: u64) -> Pace {
        Pace {
            rate: rate.max(1),
            started: std::time::Instant::now(),
            moved: 0,
        }
    }

    /// The most bytes to move in one go: a tenth of a second's worth, at least one, so that
    /// the peer hears from us often however low the rate.
    pub(crate) fn step(&self) -> usize {
        usize::try_from(self.rate / 10).unwrap_or(usize::MAX).max(1)
    }

    /// Counts `n` more bytes moved, and waits until they keep to the rate.
    pub(crate) fn moved(&mut self, n: usize) {
        self.moved = self.moved.saturating_add(n as u64);
        if let Some(wait) = wait_for(self.rate, self.moved, self.started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

/// How long to wait, `elapsed` after a transfer started, for `moved` bytes to keep to `rate`
/// bytes a second; `None` when they already do.
fn wait_for(rate: u64, moved: u64, elapsed: std::time::Duration) -> Option<std::time::Duration> {
    let due_nanos = u128::from(moved) * 1_000_000_000 / u128::from(rate.max(1));
    let due = std::time::Duration::from_nanos(u64::try_from(due_nanos).unwrap_or(u64::MAX));
    due.checked_sub(elapsed).filter(|wait| !wait.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_wait_brings_the_bytes_moved_back_to_the_rate() {
        let ms = Duration::from_millis;
        let table = [
            // (rate, moved, elapsed, wait)
            (1000, 1000, ms(0), Some(ms(1000))),
            (1000, 1000, ms(400), Some(ms(600))),
            (1000, 1000, ms(1000), None),
            (1000, 1000, ms(5000), None),
            (1024, 512, ms(0), Some(ms(500))),
            (1, 1, ms(0), Some(ms(1000))),
            (10 << 20, 1 << 20, ms(50), Some(ms(50))),
        ];
        for (rate, moved, elapsed, wait) in table {
            assert_eq!(
                wait_for(rate, moved, elapsed),
                wait,
                "{rate} {moved} {elapsed:?}"
            );
        }
        assert_eq!(wait_for(u64::MAX, u64::MAX, ms(0)), Some(ms(1000)));
    }

    #[test]
    fn a_step_is_a_tenth_of_a_second_and_never_nothing() {
        assert_eq!(Pace::new(500 * 1024).step(), 51_200);
        assert_eq!(Pace::new(5).step(), 1);
        assert_eq!(Pace::new(0).step(), 1);
    }
}
