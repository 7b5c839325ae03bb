//! A graceful stop shared by every server in a process: [`Shutdown::request`] (called, say,
//! from a thread that waits for SIGTERM; it is not async-signal-safe) wakes each server's lobby, which stops accepting, lets the requests
//! in progress finish within its grace period, then cuts the rest off and returns from `serve`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::readiness::Waker;

/// A handle to request a graceful stop of the servers that were given a clone of it. Cheap to
/// clone; all clones are the same switch.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    requested: AtomicBool,
    /// A waker of each serving lobby, by registration number.
    wakers: Mutex<Vec<(u64, Waker)>>,
    next_waker: AtomicU64,
}

/// A registered waker; dropping it unregisters it.
pub(crate) struct WakerRegistration {
    shutdown: Shutdown,
    id: u64,
}

impl Drop for WakerRegistration {
    fn drop(&mut self) {
        self.shutdown
            .inner
            .wakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(id, _)| *id != self.id);
    }
}

impl Shutdown {
    /// A switch that is off until [`request`](Self::request) is called.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Asks every server holding a clone to stop gracefully. Safe to call more than once and
    /// from any thread.
    pub fn request(&self) {
        self.inner.requested.store(true, Ordering::SeqCst);
        let wakers = self
            .inner
            .wakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (_, waker) in wakers.iter() {
            waker.wake();
        }
    }

    /// Whether a stop has been requested.
    pub fn is_requested(&self) -> bool {
        self.inner.requested.load(Ordering::SeqCst)
    }

    /// Registers a waker to wake when a stop is requested (a lobby's), for as long as the
    /// registration is kept. A request that came before the registration is not lost: callers
    /// check `is_requested` after registering.
    pub(crate) fn add_waker(&self, waker: Waker) -> WakerRegistration {
        let id = self.inner.next_waker.fetch_add(1, Ordering::Relaxed);
        self.inner
            .wakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((id, waker));
        WakerRegistration {
            shutdown: self.clone(),
            id,
        }
    }
}
