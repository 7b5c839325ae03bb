//! Log lines go to stderr through a queue and a thread of their own, so that a stderr that
//! blocks (a pipe nobody reads, a paused terminal, a stalled collector) never stalls a server's
//! connection thread. When the queue is full (8,192 lines or 8 MiB), lines are dropped and
//! counted, and the count is reported once stderr takes lines again, or at the end.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// Lines held while stderr is slow; beyond them, lines are dropped.
const QUEUE_LINES: usize = 8192;

/// Bytes held while stderr is slow (a line can be long: a command is logged whole); beyond
/// them, lines are dropped.
const QUEUE_BYTES: usize = 8 << 20;

/// Makes a writer per log event; each event's bytes are queued whole when it is written.
#[derive(Clone)]
pub struct LogQueue {
    lines: SyncSender<Vec<u8>>,
    counts: Arc<Counts>,
}

/// What went through the queue.
#[derive(Default)]
struct Counts {
    queued: AtomicU64,
    dropped: AtomicU64,
    /// Bytes queued and not yet written.
    held: AtomicUsize,
    /// Lines written to stderr, and a signal for each.
    written: Mutex<u64>,
    wrote: Condvar,
}

/// The queue in use, for [`flush`].
static IN_USE: OnceLock<LogQueue> = OnceLock::new();

impl LogQueue {
    /// Starts the thread that writes queued lines to stderr.
    pub fn to_stderr() -> io::Result<LogQueue> {
        let (lines, queued) = mpsc::sync_channel(QUEUE_LINES);
        let counts = Arc::new(Counts::default());
        let written = Arc::clone(&counts);
        thread::Builder::new()
            .name("unstick-log".into())
            .spawn(move || write_lines(&queued, &written))?;
        let queue = LogQueue { lines, counts };
        let _ = IN_USE.set(queue.clone());
        Ok(queue)
    }
}

/// Waits up to `limit` for the lines queued so far to reach stderr: for the end of the process.
pub fn flush(limit: Duration) {
    let Some(queue) = IN_USE.get() else {
        return;
    };
    let target = queue.counts.queued.load(Ordering::SeqCst);
    let deadline = Instant::now() + limit;
    let mut written = queue
        .counts
        .written
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    while *written < target {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return;
        };
        written = queue
            .counts
            .wrote
            .wait_timeout(written, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    drop(written);
    // Lines dropped after the last one written are reported here, or never.
    report_dropped(&mut io::stderr().lock(), &queue.counts);
}

fn write_lines(queued: &Receiver<Vec<u8>>, counts: &Counts) {
    let stderr = io::stderr();
    for line in queued {
        let mut out = stderr.lock();
        let lost = counts.dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let _ = writeln!(
                out,
                "unstick: {lost} log lines dropped: stderr was not keeping up"
            );
        }
        let _ = out.write_all(&line);
        drop(out);
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
            "unstick: {lost} log lines dropped: stderr was not keeping up"
        );
    }
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
        let line = std::mem::take(&mut self.line);
        let counts = &self.queue.counts;
        let len = line.len();
        if counts.held.fetch_add(len, Ordering::SeqCst) + len > QUEUE_BYTES {
            counts.held.fetch_sub(len, Ordering::SeqCst);
            counts.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.queue.lines.try_send(line) {
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

impl<'q> MakeWriter<'q> for LogQueue {
    type Writer = QueuedLine<'q>;

    fn make_writer(&'q self) -> Self::Writer {
        QueuedLine {
            queue: self,
            line: Vec::with_capacity(256),
        }
    }
}
