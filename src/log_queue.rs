//! Log lines go to stderr through a queue and a thread of their own, so that a stderr that
//! blocks (a pipe nobody reads, a paused terminal, a stalled collector) never stalls a server's
//! connection thread. While stderr is behind by more than the queue holds (8,192 lines or
//! 8 MiB waiting), new lines are dropped and counted; the count is written as a line of its own
//! as soon as stderr takes lines again, and at the end.
//!
//! In the human format, the queue is also the last guard of the log's shape: a line reaches
//! stderr as one line, with every control, line-separating and bidirectional-formatting
//! character inside it written as an escape (see [`guard_line`]), whatever a field held.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;
use unstick_core::session::PeerText;

/// Lines held while stderr is behind; beyond them, lines are dropped.
const QUEUE_LINES: usize = 8192;

/// Bytes held while stderr is behind (a line can be long: a command is logged whole); beyond
/// them, lines are dropped.
const QUEUE_BYTES: usize = 8 << 20;

/// Makes a writer per log event; each event's bytes are queued whole when it is written.
#[derive(Clone)]
pub struct LogQueue {
    lines: SyncSender<Vec<u8>>,
    counts: Arc<Counts>,
    /// Whether lines are guarded (the human format); JSON escapes its own strings.
    guard: bool,
}

/// What went through the queue.
#[derive(Default)]
struct Counts {
    queued: AtomicU64,
    dropped: AtomicU64,
    /// Bytes queued and not yet written: what the queue holds now.
    held: AtomicUsize,
    /// Lines written out, and a signal for each.
    written: Mutex<u64>,
    wrote: Condvar,
}

/// The queue in use, for [`flush`].
static IN_USE: OnceLock<LogQueue> = OnceLock::new();

/// The format of the lines a queue carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineFormat {
    /// `tracing-subscriber`'s human format: lines are guarded.
    Human,
    /// JSON objects, one per line, escaped by the encoder.
    Json,
}

impl LogQueue {
    /// Starts the thread that writes queued lines to stderr; [`flush`] waits for it.
    pub fn to_stderr(format: LineFormat) -> io::Result<LogQueue> {
        let queue = LogQueue::to_writer(io::stderr(), format)?;
        let _ = IN_USE.set(queue.clone());
        Ok(queue)
    }

    /// Starts a thread that writes queued lines to `out`.
    fn to_writer(out: impl Write + Send + 'static, format: LineFormat) -> io::Result<LogQueue> {
        let (lines, queued) = mpsc::sync_channel(QUEUE_LINES);
        let counts = Arc::new(Counts::default());
        let written = Arc::clone(&counts);
        thread::Builder::new()
            .name("unstick-log".into())
            .spawn(move || write_lines(&queued, &written, out))?;
        Ok(LogQueue {
            lines,
            counts,
            guard: format == LineFormat::Human,
        })
    }

    /// Waits up to `limit` for the lines queued so far to be written; `false` if they were
    /// not by then.
    fn wait_written(&self, limit: Duration) -> bool {
        let target = self.counts.queued.load(Ordering::SeqCst);
        let deadline = Instant::now() + limit;
        let mut written = self
            .counts
            .written
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while *written < target {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            written = self
                .counts
                .wrote
                .wait_timeout(written, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Queues one line, or counts it dropped while the queue is full.
    fn enqueue(&self, line: Vec<u8>) {
        let counts = &self.counts;
        let len = line.len();
        if counts.held.fetch_add(len, Ordering::SeqCst) + len > QUEUE_BYTES {
            counts.held.fetch_sub(len, Ordering::SeqCst);
            counts.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.lines.try_send(line) {
            Ok(()) => {
                counts.queued.fetch_add(1, Ordering::SeqCst);
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                counts.held.fetch_sub(len, Ordering::SeqCst);
                counts.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// How long the end of the process waits for its last log lines to reach stderr.
pub const FLUSH_LIMIT: Duration = Duration::from_secs(1);

/// Waits up to `limit` for the lines queued so far to reach stderr, then reports lines dropped
/// since the last report: for the end of the process.
pub fn flush(limit: Duration) {
    let Some(queue) = IN_USE.get() else {
        return;
    };
    queue.wait_written(limit);
    // Lines dropped after the last one written are reported here, or never.
    report_dropped(&mut io::stderr().lock(), &queue.counts);
}

fn write_lines(queued: &Receiver<Vec<u8>>, counts: &Counts, mut out: impl Write) {
    for line in queued {
        report_dropped(&mut out, counts);
        let _ = out.write_all(&line);
        let _ = out.flush();
        // Only now is the line's room free again.
        counts.held.fetch_sub(line.len(), Ordering::SeqCst);
        *counts
            .written
            .lock()
            .unwrap_or_else(PoisonError::into_inner) += 1;
        counts.wrote.notify_all();
    }
}

/// Writes how many lines were dropped since the last report, if any.
fn report_dropped(out: &mut impl Write, counts: &Counts) {
    let lost = counts.dropped.swap(0, Ordering::Relaxed);
    if lost > 0 {
        let _ = writeln!(
            out,
            "unstick: {lost} log lines dropped: stderr fell behind by more than {QUEUE_LINES} lines or {} MiB",
            QUEUE_BYTES >> 20
        );
    }
}

/// `line` as one line of the human log: the text before its final newline with every control,
/// line-separating and bidirectional-formatting character escaped as [`PeerText`] escapes
/// them (a field already escaped keeps its form, since escapes are printable). The
/// formatter writes none of these characters itself, so only text that reached a field
/// unescaped is changed; a line that needs nothing is returned as it is.
fn guard_line(line: Vec<u8>) -> Vec<u8> {
    let body = line.strip_suffix(b"\n").unwrap_or(&line);
    let text = String::from_utf8_lossy(body);
    let guarded = PeerText::new(&text).to_string();
    if guarded.len() == body.len() && guarded.as_bytes() == body {
        return line;
    }
    let mut out = guarded.into_bytes();
    out.push(b'\n');
    out
}

/// One event's bytes, queued when dropped.
pub struct QueuedLine<'q> {
    queue: &'q LogQueue,
    line: Vec<u8>,
}

impl Write for QueuedLine<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for QueuedLine<'_> {
    fn drop(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let mut line = std::mem::take(&mut self.line);
        if self.queue.guard {
            line = guard_line(line);
        }
        self.queue.enqueue(line);
    }
}

impl<'q> MakeWriter<'q> for LogQueue {
    type Writer = QueuedLine<'q>;

    fn make_writer(&'q self) -> Self::Writer {
        QueuedLine {
            queue: self,
            line: Vec::with_capacity(256),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose bytes the test can read.
    #[derive(Clone, Default)]
    struct Collected(Arc<Mutex<Vec<u8>>>);

    impl Write for Collected {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn log(queue: &LogQueue, text: &str) {
        let mut line = queue.make_writer();
        line.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn a_queue_that_keeps_up_never_drops_however_much_passes_through() {
        let out = Collected::default();
        let queue = LogQueue::to_writer(out.clone(), LineFormat::Human).unwrap();
        // 40 MiB in all, five times what the queue holds, in batches it holds easily.
        let filler = "x".repeat(1000);
        for batch in 0..40 {
            for line in 0..1024 {
                log(&queue, &format!("{batch}.{line} {filler}\n"));
            }
            assert!(queue.wait_written(Duration::from_secs(60)), "batch {batch}");
        }
        log(&queue, "the last line\n");
        assert!(queue.wait_written(Duration::from_secs(60)));
        let written = out.0.lock().unwrap();
        let text = String::from_utf8_lossy(&written);
        assert!(
            text.ends_with("the last line\n"),
            "the last line is written"
        );
        assert!(!text.contains("dropped"), "nothing was dropped");
        assert_eq!(text.lines().count(), 40 * 1024 + 1);
        assert_eq!(queue.counts.held.load(Ordering::SeqCst), 0);
    }

    /// A writer that blocks until the test lets it go.
    struct Stalled {
        out: Collected,
        gate: Arc<(Mutex<bool>, Condvar)>,
    }

    impl Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let (open, opened) = &*self.gate;
            let mut open = open.lock().unwrap();
            while !*open {
                open = opened.wait(open).unwrap();
            }
            self.out.write(buf)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_dropped_while_the_writer_stalls_are_counted_in_a_line_once_it_catches_up() {
        let out = Collected::default();
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let stalled = Stalled {
            out: out.clone(),
            gate: Arc::clone(&gate),
        };
        let queue = LogQueue::to_writer(stalled, LineFormat::Human).unwrap();
        // The writer thread takes one line and blocks in it; the queue fills behind it.
        let extra = 100;
        for i in 0..QUEUE_LINES + 1 + extra {
            log(&queue, &format!("line {i}\n"));
        }
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        assert!(queue.wait_written(Duration::from_secs(60)));
        log(&queue, "after\n");
        assert!(queue.wait_written(Duration::from_secs(60)));
        let written = out.0.lock().unwrap();
        let text = String::from_utf8_lossy(&written);
        let report = text
            .lines()
            .find(|l| l.contains("log lines dropped"))
            .expect("the drop is reported before the next line");
        let dropped: u64 = report
            .trim_start_matches("unstick: ")
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        // The line the writer held when it stalled left room for one more in the channel.
        assert!(
            (extra as u64 - 1..=extra as u64).contains(&dropped),
            "{report}"
        );
        assert!(text.ends_with("after\n"));
    }

    #[test]
    fn guarded_lines_escape_what_could_split_hide_or_reorder_them() {
        let forged = "refused reason=cwd a\nZ INFO command finished\u{1b}[8m\u{2028}x\u{2029}\u{85}\u{202e}y\r\\n\n";
        let guarded = String::from_utf8(guard_line(forged.as_bytes().to_vec())).unwrap();
        assert_eq!(guarded.lines().count(), 1, "{guarded:?}");
        assert!(guarded.ends_with('\n'));
        for c in ['\u{1b}', '\u{2028}', '\u{2029}', '\u{85}', '\u{202e}', '\r'] {
            assert!(!guarded.contains(c), "{c:?} in {guarded:?}");
        }
        // Escapes a field already carries keep their form.
        assert!(guarded.ends_with("y\\r\\n\n"), "{guarded:?}");
        let plain = b"2026-01-01T00:00:00Z INFO ok peer=1.2.3.4:5 path=\"a\\\\b\"\n".to_vec();
        assert_eq!(guard_line(plain.clone()), plain);
    }
}
