//! The threads that serve requests. A thread that finished a request waits a while for the next
//! one instead of exiting, so a busy server does not pay for a new thread per request. A thread
//! serves a request (the slots bound those), lingers for its connection's next one (bounded by
//! the lobby to as many again), or idles here: at most twice the slots, plus idle threads that
//! exit after 30 s.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

/// How long a thread without work waits for a request before it exits.
const IDLE_LIFETIME: Duration = Duration::from_secs(30);

/// One request's work.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// A set of worker threads. Dropping it lets its idle threads exit.
pub(crate) struct Workers {
    shared: Arc<Shared>,
    name: String,
}

struct Shared {
    state: Mutex<State>,
    job_ready: Condvar,
}

#[derive(Default)]
struct State {
    /// Threads waiting for a job that no job has been promised to.
    idle: usize,
    /// Jobs handed to idle threads and not yet taken.
    jobs: VecDeque<Job>,
    /// Set when the owner is gone: idle threads exit.
    closed: bool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Workers {
    /// Threads named `name`.
    pub(crate) fn new(name: String) -> Workers {
        Workers {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                job_ready: Condvar::new(),
            }),
            name,
        }
    }

    /// Runs `job` on an idle thread, or on a new one when none is idle. On error (no thread
    /// could be started) the job has been dropped.
    pub(crate) fn run(&self, job: Job) -> io::Result<()> {
        let mut state = self.shared.state();
        if state.idle > 0 {
            state.idle -= 1;
            state.jobs.push_back(job);
            drop(state);
            self.shared.job_ready.notify_one();
            return Ok(());
        }
        drop(state);
        let shared = Arc::clone(&self.shared);
        thread::Builder::new()
            .name(self.name.clone())
            .spawn(move || work(&shared, job))
            .map(drop)
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.shared.state().closed = true;
        self.shared.job_ready.notify_all();
    }
}

/// A worker thread's life: its first job, then whatever it is handed until it has waited
/// [`IDLE_LIFETIME`] for nothing.
fn work(shared: &Shared, first: Job) {
    let mut job = first;
    loop {
        job();
        let mut state = shared.state();
        state.idle += 1;
        job = loop {
            if let Some(next) = state.jobs.pop_front() {
                break next;
            }
            if state.closed {
                state.idle -= 1;
                return;
            }
            let (next_state, wait) = shared
                .job_ready
                .wait_timeout(state, IDLE_LIFETIME)
                .unwrap_or_else(PoisonError::into_inner);
            state = next_state;
            if wait.timed_out() && state.jobs.is_empty() {
                state.idle -= 1;
                return;
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_thread_that_finished_takes_the_next_job() {
        let workers = Workers::new("test-worker".into());
        let (done, finished) = mpsc::channel();
        let mut threads = std::collections::HashSet::new();
        for _ in 0..20 {
            let done = done.clone();
            let job = Box::new(move || done.send(thread::current().id()).unwrap());
            workers.run(job).unwrap();
            threads.insert(finished.recv_timeout(Duration::from_secs(5)).unwrap());
            // Wait until the thread is back waiting, so that the next job finds it idle.
            while workers.shared.state().idle == 0 {
                thread::yield_now();
            }
        }
        assert_eq!(threads.len(), 1, "sequential jobs ran on {threads:?}");
    }
}
