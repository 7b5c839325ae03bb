//! A progress bar with rate and ETA on stderr, shown only when stderr is a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::transfer::Progress;

/// Progress drawn on stderr when it is a terminal; silent otherwise.
#[derive(Debug)]
pub struct TerminalProgress {
    label: String,
    bar: Option<ProgressBar>,
}

impl TerminalProgress {
    /// A progress report labelled `label` (usually the file name).
    pub fn new(label: impl Into<String>) -> Self {
        TerminalProgress {
            label: label.into(),
            bar: None,
        }
    }
}

impl Progress for TerminalProgress {
    fn start(&mut self, total: u64, done: u64) {
        if !std::io::stderr().is_terminal() {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(self.label.clone());
        bar.set_position(done);
        bar.reset_eta();
        self.bar = Some(bar);
    }

    fn advance(&mut self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
