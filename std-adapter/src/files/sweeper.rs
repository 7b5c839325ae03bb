//! The background sweep of the root: started once the server listens, on a thread of its own,
//! so that however deep the tree, no request waits for it.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;

use super::tree::{Dir, SweepReport, SweepRules};
use crate::server::Shutdown;

/// Where a server's sweep is.
#[derive(Debug, Default)]
enum SweepState {
    /// Not started: the server has not served yet.
    #[default]
    NotStarted,
    /// Running on its thread.
    Running,
    /// Done: its report, or `None` when it failed (logged).
    Finished(Option<SweepReport>),
}

/// A server's one sweep, shared by its clones: started by the first `serve`, waited for by
/// [`Sweeper::wait`].
#[derive(Debug, Default)]
pub(super) struct Sweeper {
    state: Mutex<SweepState>,
    changed: Condvar,
    /// Held back until the test says go, to show that requests do not wait for the sweep.
    #[cfg(test)]
    pub(super) gate: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl Sweeper {
    /// Starts the sweep of `root` on its own thread, unless it was started before. It stops
    /// early when `shutdown` is requested.
    pub(super) fn start(self: &Arc<Self>, root: &Dir, rules: SweepRules, shutdown: &Shutdown) {
        {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if !matches!(*state, SweepState::NotStarted) {
                return;
            }
            *state = SweepState::Running;
        }
        let root = root.duplicate();
        let shutdown = shutdown.clone();
        let sweeper = Arc::clone(self);
        let spawned = thread::Builder::new()
            .name("unstick-ftp-sweep".into())
            .spawn(move || {
                #[cfg(test)]
                if let Some(gate) = sweeper
                    .gate
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take()
                {
                    let _ = gate.recv();
                }
                let report = root.and_then(|root| root.sweep(rules, &|| shutdown.is_requested()));
                sweeper.finish(log_report(report));
            });
        if let Err(e) = spawned {
            self.finish(log_report(Err(e)));
        }
    }

    fn finish(&self, report: Option<SweepReport>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        *state = SweepState::Finished(report);
        self.changed.notify_all();
    }

    /// Waits for a started sweep to end; its report, `None` when it failed or was never
    /// started.
    pub(super) fn wait(&self) -> Option<SweepReport> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match &*state {
                SweepState::NotStarted => return None,
                SweepState::Finished(report) => return *report,
                SweepState::Running => {
                    state = self
                        .changed
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }
}

/// Logs what a sweep did (nothing when it found nothing to do) and hands on its report.
fn log_report(report: std::io::Result<SweepReport>) -> Option<SweepReport> {
    match report {
        Ok(report) => {
            if report.removed() > 0 || report.skipped_dirs > 0 {
                tracing::info!(
                    server = "ftp",
                    temporaries = report.temporaries,
                    expired_partials = report.expired_partials,
                    unnamed_partials = report.unnamed_partials,
                    skipped_dirs = report.skipped_dirs,
                    "swept the root: removed temporary files left by an earlier crash and \
                     partial uploads past their age"
                );
            }
            Some(report)
        }
        Err(e) => {
            tracing::warn!(
                server = "ftp",
                error = %e,
                "could not sweep the root for old temporary files and partial uploads"
            );
            None
        }
    }
}
