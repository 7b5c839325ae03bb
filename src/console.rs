//! What a client command tells its user on stderr besides errors, as `-q/--quiet` and
//! `-v/--verbose` ask: notes (what was stored, written, deleted; progress bars) unless quiet,
//! and details (the config file, the resolved address, the TLS certificate, timings) when
//! verbose. Errors and warnings are always shown.

use std::fmt;
use std::sync::OnceLock;

/// How much a client says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Verbosity {
    /// Errors and warnings only.
    Quiet,
    /// Notes too.
    #[default]
    Normal,
    /// Notes and connection details.
    Verbose,
}

/// `-q` and `-v` as every client command takes them (a server's are
/// [`LogArgs`](crate::serving::LogArgs)).
#[derive(clap::Args, Debug, Clone, Copy, Default)]
pub struct VerbosityArgs {
    /// No progress bars and no notes (`stored ...`), only warnings and errors.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Say which config file, server address and token source are used, the addresses the
    /// server's name resolves to, the one that answered, a TLS server's certificate and the
    /// time taken.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

static VERBOSITY: OnceLock<Verbosity> = OnceLock::new();

/// Sets the process's verbosity, once, from the command line.
pub fn set_verbosity(verbosity: Verbosity) {
    let _ = VERBOSITY.set(verbosity);
}

/// The process's verbosity.
pub fn verbosity() -> Verbosity {
    VERBOSITY.get().copied().unwrap_or_default()
}

/// Whether notes (and progress bars) are shown.
pub fn shows_notes() -> bool {
    verbosity() != Verbosity::Quiet
}

/// Writes a note line to stderr, unless quiet.
pub fn note(line: fmt::Arguments<'_>) {
    if shows_notes() {
        eprintln!("{line}");
    }
}

/// Writes a detail line to stderr (`unstick: ` first), when verbose.
pub fn detail(line: fmt::Arguments<'_>) {
    if verbosity() == Verbosity::Verbose {
        eprintln!("unstick: {line}");
    }
}

/// `n` and the noun for it, singular for one: `1 byte`, `2 bytes`.
pub fn count(n: u64, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        _ => format!("{n} {noun}s"),
    }
}
