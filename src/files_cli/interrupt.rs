//! Ctrl-C (or SIGTERM) during a transfer: the process ends as the signal would have ended it,
//! but first says what is left behind and how to continue: an interrupted upload is kept on
//! the server, an interrupted download in its partial file, and `--resume` picks either up.
//!
//! The signals are taken over by [`watch`], once, by the commands that transfer; a thread
//! waits for them and reads what is in flight from [`InFlight`], which each transfer sets for
//! its duration.

use std::io::IsTerminal;
use std::sync::{Mutex, Once, PoisonError};

use unstick_std::files::escape_for_terminal;

use crate::stop_signals::StopSignals;

/// A transfer in progress.
#[derive(Clone, Debug)]
enum Transfer {
    /// An upload to this remote path.
    Upload(String),
    /// A download to this local path.
    Download(String),
}

/// What is being transferred now; `None` between transfers.
static IN_FLIGHT: Mutex<Option<Transfer>> = Mutex::new(None);

/// Takes over Ctrl-C and SIGTERM for the rest of the process: each ends it with the status the
/// signal would have given (130 for Ctrl-C), after the hint for the transfer in flight, if any.
/// Without the signals (they could not be taken over), they end the process as before, without
/// the hint.
pub(super) fn watch() {
    static WATCHING: Once = Once::new();
    WATCHING.call_once(|| {
        let Ok(mut signals) = StopSignals::install() else {
            return;
        };
        std::thread::spawn(move || {
            if let Some(signal) = signals.arriving().next() {
                let in_flight = IN_FLIGHT
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                // A progress bar may be drawn on the line: start a line of our own.
                if std::io::stderr().is_terminal() {
                    eprintln!();
                }
                eprintln!(
                    "unstick ftp: {}",
                    interrupted(signal.name, in_flight.as_ref())
                );
                std::process::exit(signal.exit_code);
            }
        });
    });
}

/// What is said when `signal` interrupts `in_flight`.
fn interrupted(signal: &str, in_flight: Option<&Transfer>) -> String {
    match in_flight {
        Some(Transfer::Upload(remote)) => format!(
            "interrupted ({signal}): the server keeps what it received of {}; run the same \
             `unstick ftp put` with --resume to continue from there",
            escape_for_terminal(remote)
        ),
        Some(Transfer::Download(local)) => format!(
            "interrupted ({signal}): what arrived of {} is kept in its partial download; run \
             the same `unstick ftp get` with --resume to continue from there",
            escape_for_terminal(local)
        ),
        None => format!("interrupted ({signal})"),
    }
}

/// A transfer in progress, known to the signal watcher while this lives.
pub(super) struct InFlight(());

impl InFlight {
    /// An upload to `remote` is in progress.
    pub(super) fn upload(remote: &str) -> InFlight {
        InFlight::set(Transfer::Upload(remote.to_owned()))
    }

    /// A download to `local` is in progress.
    pub(super) fn download(local: &str) -> InFlight {
        InFlight::set(Transfer::Download(local.to_owned()))
    }

    fn set(transfer: Transfer) -> InFlight {
        *IN_FLIGHT.lock().unwrap_or_else(PoisonError::into_inner) = Some(transfer);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        *IN_FLIGHT.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hint_names_the_transfer_and_resume() {
        let upload = Transfer::Upload("big.iso".into());
        let said = interrupted("SIGINT", Some(&upload));
        assert!(
            said.contains("big.iso") && said.contains("put` with --resume"),
            "{said}"
        );
        let download = Transfer::Download("out/big.iso".into());
        let said = interrupted("SIGINT", Some(&download));
        assert!(said.contains("get` with --resume"), "{said}");
        assert_eq!(interrupted("SIGINT", None), "interrupted (SIGINT)");
    }
}
