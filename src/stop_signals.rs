//! The requests to stop that reach a server from outside: SIGTERM and SIGINT on Unix; on
//! Windows, which has no such signals, Ctrl-C and Ctrl-Break at the console, and the console
//! being closed or the system shutting down. [`StopSignals::arriving`] yields them as they come.

use std::io;

/// One request to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StopSignal {
    /// Its name, for the log (`SIGTERM`, `Ctrl-C`, ...).
    pub name: &'static str,
    /// The status a process ended by it has, by the system's convention: 128 + the signal on
    /// Unix (as a shell reports it), `STATUS_CONTROL_C_EXIT` on Windows.
    pub exit_code: i32,
}

#[cfg(unix)]
pub use unix::StopSignals;
#[cfg(windows)]
pub use windows::StopSignals;

#[cfg(unix)]
mod unix {
    use super::{StopSignal, io};
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;

    /// SIGTERM and SIGINT, as they arrive.
    pub struct StopSignals {
        signals: Signals,
    }

    impl StopSignals {
        /// Takes over SIGTERM and SIGINT: from now on they only come through [`arriving`].
        ///
        /// [`arriving`]: StopSignals::arriving
        pub fn install() -> io::Result<StopSignals> {
            Ok(StopSignals {
                signals: Signals::new([SIGTERM, SIGINT])?,
            })
        }

        /// The signals as they arrive (each `next` waits for one). One iterator is kept for
        /// all of them: it holds the signals that arrived together.
        pub fn arriving(&mut self) -> impl Iterator<Item = StopSignal> + '_ {
            self.signals.forever().map(|signal| StopSignal {
                name: match signal {
                    SIGTERM => "SIGTERM",
                    SIGINT => "SIGINT",
                    _ => "signal",
                },
                exit_code: 128 + signal,
            })
        }
    }
}

#[cfg(windows)]
mod windows {
    use super::{StopSignal, io};
    use std::sync::OnceLock;
    use std::sync::mpsc::{self, Receiver, Sender};
    use windows_sys::Win32::Foundation::{FALSE, TRUE};
    use windows_sys::Win32::System::Console::{
        CTRL_BREAK_EVENT, CTRL_C_EVENT, CTRL_CLOSE_EVENT, CTRL_SHUTDOWN_EVENT,
        SetConsoleCtrlHandler,
    };
    use windows_sys::core::BOOL;

    /// The status of a process ended by Ctrl-C or Ctrl-Break (NTSTATUS 0xC000013A, as Windows
    /// ends a console process that does not handle them).
    const STATUS_CONTROL_C_EXIT: i32 = 0xC000_013A_u32 as i32;

    /// Where the console handler sends the events; set once, by [`StopSignals::install`].
    static EVENTS: OnceLock<Sender<StopSignal>> = OnceLock::new();

    /// Ctrl-C, Ctrl-Break, the console closing and the system shutting down, as they arrive.
    pub struct StopSignals {
        events: Receiver<StopSignal>,
    }

    impl StopSignals {
        /// Handles the console's events: from now on they only come through [`arriving`].
        /// Once per process.
        ///
        /// [`arriving`]: StopSignals::arriving
        pub fn install() -> io::Result<StopSignals> {
            let (sender, events) = mpsc::channel();
            EVENTS.set(sender).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "the console's stop events are already handled",
                )
            })?;
            // SAFETY: the handler is a function with the signature Windows calls, living for
            // the whole process; adding it touches no memory of ours.
            if unsafe { SetConsoleCtrlHandler(Some(on_console_event), TRUE) } == FALSE {
                return Err(io::Error::last_os_error());
            }
            Ok(StopSignals { events })
        }

        /// The events as they arrive (each `next` waits for one).
        pub fn arriving(&mut self) -> impl Iterator<Item = StopSignal> + '_ {
            self.events.iter()
        }
    }

    /// Runs on a thread Windows starts for each console event. Ctrl-C and Ctrl-Break are
    /// handled once passed on. Windows ends the process when the handler of a closing console
    /// or a shutdown returns (or after some seconds), so that handler waits instead, giving
    /// the graceful stop the time Windows grants.
    extern "system" fn on_console_event(event: u32) -> BOOL {
        let (name, wait) = match event {
            CTRL_C_EVENT => ("Ctrl-C", false),
            CTRL_BREAK_EVENT => ("Ctrl-Break", false),
            CTRL_CLOSE_EVENT => ("console closed", true),
            CTRL_SHUTDOWN_EVENT => ("system shutdown", true),
            _ => return FALSE,
        };
        let Some(events) = EVENTS.get() else {
            return FALSE;
        };
        let _ = events.send(StopSignal {
            name,
            exit_code: STATUS_CONTROL_C_EXIT,
        });
        if wait {
            loop {
                std::thread::park();
            }
        }
        TRUE
    }
}
