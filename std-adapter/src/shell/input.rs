//! The local input a [`ShellClient`](super::ShellClient) streams to a remote command's
//! standard input ([`ShellClient::exec_with_input`](super::ShellClient::exec_with_input)): the
//! process's own stdin (piped or a file), a file, or a pipe.
//!
//! The client reads it only when its session can send what it reads, never ahead: on Unix the
//! input's descriptor is polled together with the connection, and read once it is readable; on
//! Windows, where pipes cannot be polled, a thread reads it a chunk at a time and hands each
//! chunk over only when the client takes it (one chunk is held at most, besides the one the
//! thread is reading).

use std::fs::File;
use std::io;

/// Bytes read from the input at a time: a `stdin` frame's body at most.
pub const INPUT_CHUNK: usize = 64 * 1024;

/// Local input for a remote command's standard input.
#[derive(Debug)]
pub struct CommandInput {
    source: platform::Source,
}

impl CommandInput {
    /// The process's standard input, read directly (not through `std::io::Stdin`'s buffer).
    pub fn stdin() -> io::Result<CommandInput> {
        platform::Source::stdin().map(|source| CommandInput { source })
    }

    /// A file, read from where its offset stands.
    pub fn from_file(file: File) -> io::Result<CommandInput> {
        platform::Source::file(file).map(|source| CommandInput { source })
    }

    /// The reading end of a pipe.
    pub fn from_pipe(pipe: io::PipeReader) -> io::Result<CommandInput> {
        platform::Source::pipe(pipe).map(|source| CommandInput { source })
    }

    /// Reads what the input has without waiting: `None` when nothing is there yet, `Some(0)`
    /// at its end.
    pub(crate) fn read_ready(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        self.source.read_ready(buf)
    }

    /// The descriptor to poll for the input's readiness.
    #[cfg(unix)]
    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.source.fd()
    }
}

#[cfg(unix)]
mod platform {
    use std::fs::File;
    use std::io::{self, Read};
    use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

    use rustix::event::{PollFd, PollFlags, Timespec};

    /// The input's descriptor, as a file.
    #[derive(Debug)]
    pub(super) struct Source(File);

    impl Source {
        pub(super) fn stdin() -> io::Result<Source> {
            let fd = io::stdin().as_fd().try_clone_to_owned()?;
            Ok(Source(File::from(fd)))
        }

        pub(super) fn file(file: File) -> io::Result<Source> {
            Ok(Source(file))
        }

        pub(super) fn pipe(pipe: io::PipeReader) -> io::Result<Source> {
            Ok(Source(File::from(OwnedFd::from(pipe))))
        }

        pub(super) fn fd(&self) -> BorrowedFd<'_> {
            self.0.as_fd()
        }

        pub(super) fn read_ready(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
            let mut watch = [PollFd::new(&self.0, PollFlags::IN)];
            let now = Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            match rustix::event::poll(&mut watch, Some(&now)) {
                Ok(0) | Err(rustix::io::Errno::INTR) => return Ok(None),
                Ok(_) => {}
                Err(e) => return Err(e.into()),
            }
            loop {
                match self.0.read(buf) {
                    Ok(n) => return Ok(Some(n)),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // An input left non-blocking by whoever handed it over.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

#[cfg(windows)]
mod platform {
    use std::fs::File;
    use std::io::{self, Read};
    use std::sync::mpsc::{self, Receiver, TryRecvError};

    use super::INPUT_CHUNK;

    /// What the reading thread hands over.
    type Chunk = io::Result<Vec<u8>>;

    /// A thread reading the input a chunk at a time; an empty chunk is its end.
    #[derive(Debug)]
    pub(super) struct Source {
        chunks: Receiver<Chunk>,
        /// A chunk taken from the thread and not yet all handed out.
        rest: Vec<u8>,
        ended: bool,
    }

    impl Source {
        pub(super) fn stdin() -> io::Result<Source> {
            Source::start(io::stdin())
        }

        pub(super) fn file(file: File) -> io::Result<Source> {
            Source::start(file)
        }

        pub(super) fn pipe(pipe: io::PipeReader) -> io::Result<Source> {
            Source::start(pipe)
        }

        /// Starts the thread that reads `input`: it holds one chunk while the one before waits
        /// to be taken, and ends at the input's end, on an error, or once nobody takes more.
        fn start(mut input: impl Read + Send + 'static) -> io::Result<Source> {
            let (sender, chunks) = mpsc::sync_channel::<Chunk>(0);
            std::thread::Builder::new()
                .name("unstick-input".into())
                .stack_size(64 * 1024)
                .spawn(move || {
                    let mut buf = vec![0u8; INPUT_CHUNK];
                    loop {
                        let chunk = match input.read(&mut buf) {
                            Ok(n) => Ok(buf[..n].to_vec()),
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                            Err(e) => Err(e),
                        };
                        let last = !matches!(&chunk, Ok(bytes) if !bytes.is_empty());
                        if sender.send(chunk).is_err() || last {
                            return;
                        }
                    }
                })?;
            Ok(Source {
                chunks,
                rest: Vec::new(),
                ended: false,
            })
        }

        pub(super) fn read_ready(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
            if self.rest.is_empty() && !self.ended {
                match self.chunks.try_recv() {
                    Ok(Ok(bytes)) if bytes.is_empty() => self.ended = true,
                    Ok(Ok(bytes)) => self.rest = bytes,
                    Ok(Err(e)) => return Err(e),
                    Err(TryRecvError::Empty) => return Ok(None),
                    Err(TryRecvError::Disconnected) => self.ended = true,
                }
            }
            let n = self.rest.len().min(buf.len());
            buf[..n].copy_from_slice(&self.rest[..n]);
            self.rest.drain(..n);
            Ok(Some(n))
        }
    }
}
