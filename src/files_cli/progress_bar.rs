//! The progress bar of a transfer: rate and ETA on stderr, drawn only when stderr is a
//! terminal and the command is not `--quiet`.

use std::io::IsTerminal;

use indicatif::{ProgressDrawTarget, ProgressStyle};
use unstick_std::files::Progress;

use crate::console;

/// A transfer's progress, drawn on stderr when it is a terminal, unless `--quiet`; silent
/// otherwise.
pub(crate) struct ProgressBar {
    label: String,
    bar: Option<indicatif::ProgressBar>,
}

/// The progress bar of a transfer labelled `label` (usually the file name).
pub(crate) fn progress_bar(label: &str) -> ProgressBar {
    ProgressBar {
        label: label.to_owned(),
        bar: None,
    }
}

impl Progress for ProgressBar {
    fn start(&mut self, total: u64, done: u64) {
        if !console::shows_notes() || !std::io::stderr().is_terminal() {
            return;
        }
        let bar =
            indicatif::ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
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
