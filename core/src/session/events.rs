//! What a server session reports for its host's log, kept in a small queue until polled.

use super::Refusal;

/// What a server session reports for the host's log: a request it refused, or one that went
/// through (`C` says how, per protocol).
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "no allocator to box a refusal with; an event is moved once, to the host"
)]
pub enum ServerEvent<C> {
    /// A request was refused; the refusal went out on the wire.
    Refused(Refusal),
    /// A request went through.
    Completed(C),
}

/// Room for events between two drains: a request yields one (its refusal or its completion),
/// and a second slot leaves slack for a host that drains a call late. Each slot has room for a
/// refusal (about half a KiB), which a microcontroller's stack pays for.
const EVENTS: usize = 2;

/// A session's queue of events. When a host lets it fill, the oldest event gives way: a session
/// never stalls for its log.
#[derive(Debug)]
pub(crate) struct Events<E> {
    queue: heapless::Deque<E, EVENTS>,
}

impl<E> Events<E> {
    /// An empty queue.
    pub(crate) const fn new() -> Self {
        Events {
            queue: heapless::Deque::new(),
        }
    }

    /// Adds `event` at the back, dropping the oldest when full.
    pub(crate) fn push(&mut self, event: E) {
        if self.queue.is_full() {
            self.queue.pop_front();
        }
        let _ = self.queue.push_back(event);
    }

    /// Takes the oldest event.
    pub(crate) fn pop(&mut self) -> Option<E> {
        self.queue.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_oldest_first_and_a_full_queue_lets_the_oldest_go() {
        let mut events = Events::<u8>::new();
        for n in 0..5 {
            events.push(n);
        }
        let mut out = [0u8; 5];
        let mut len = 0;
        while let Some(n) = events.pop() {
            out[len] = n;
            len += 1;
        }
        assert_eq!(&out[..len], &[3, 4]);
    }
}
