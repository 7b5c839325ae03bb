//! The in-memory link the pair tests run a client session and a server session over: two
//! one-way pipes that hand their bytes to the reader in chosen cuts (as a socket's reads
//! would), and a step budget that fails a run which stalls or goes on too long.
#![allow(dead_code)]

use std::collections::VecDeque;

use unstick_core::session::Transmit;

/// How a pipe cuts the bytes in flight into the reads its reader gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cuts {
    /// Every read gives at most this many bytes.
    Fixed(usize),
    /// Read sizes drawn by a xorshift generator from this seed: mostly small, sometimes large.
    Random(u64),
}

impl Cuts {
    /// The chunking of the other direction of the same connection: the same fixed size, or
    /// random cuts from another seed.
    pub fn reversed(self) -> Cuts {
        match self {
            Cuts::Fixed(n) => Cuts::Fixed(n),
            Cuts::Random(seed) => Cuts::Random(seed.rotate_left(17) ^ 0xa5),
        }
    }
}

/// The fixed read sizes every scenario runs under.
pub const FIXED: [usize; 6] = [1, 2, 3, 7, 64, 4096];

/// The seeds of the random cuts every scenario runs under.
pub const SEEDS: [u64; 3] = [0x9e37_79b9_7f4a_7c15, 0x0123_4567_89ab_cdef, 7];

/// Every chunking: the fixed sizes, then the seeded random cuts.
pub fn all_cuts() -> Vec<Cuts> {
    FIXED
        .iter()
        .map(|&n| Cuts::Fixed(n))
        .chain(SEEDS.iter().map(|&s| Cuts::Random(s)))
        .collect()
}

/// A xorshift64 generator: small, seeded, the same on every run.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        XorShift(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `1..=max`.
    pub fn up_to(&mut self, max: u64) -> u64 {
        1 + self.next_u64() % max
    }
}

/// `len` bytes that are not a repeating pattern of any short period, from `seed`.
pub fn generated(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = XorShift::new(seed ^ 0x5555_aaaa_5555_aaaa);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

/// Draws the size of each read.
#[derive(Clone, Debug)]
struct Cutter {
    cuts: Cuts,
    rng: XorShift,
}

impl Cutter {
    fn new(cuts: Cuts) -> Self {
        let seed = match cuts {
            Cuts::Fixed(n) => n as u64,
            Cuts::Random(seed) => seed,
        };
        Cutter {
            cuts,
            rng: XorShift::new(seed),
        }
    }

    fn next(&mut self) -> usize {
        match self.cuts {
            Cuts::Fixed(n) => n.max(1),
            Cuts::Random(_) => {
                let max = match self.rng.next_u64() % 8 {
                    0..=2 => 8,
                    3..=6 => 512,
                    _ => 20_000,
                };
                self.rng.up_to(max) as usize
            }
        }
    }
}

/// What a reader got when it asked its pipe for more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// A new read is pending.
    Data,
    /// Nothing is in flight now; the writer may send more later.
    Nothing,
    /// The writer shut down its side and everything was read.
    Eof,
}

/// One direction of a connection: bytes written and not yet read, the reader's current read
/// (what a host got from one `read` call and has not fed to its session yet), and an optional
/// fault: one body byte flipped in transit.
#[derive(Debug)]
pub struct Pipe {
    queue: VecDeque<u8>,
    closed: bool,
    cutter: Cutter,
    read: Vec<u8>,
    at: usize,
    /// The reader saw the end of the stream and told its session.
    pub eof_told: bool,
    /// Bytes written so far.
    pub written: u64,
    /// Body bytes written so far (bytes a session announced as `Transmit::Body`).
    pub body_written: u64,
    /// The index, among body bytes, of the one to flip in transit.
    pub flip_body_byte: Option<u64>,
    /// Whether the flip happened.
    pub flipped: bool,
}

impl Pipe {
    pub fn new(cuts: Cuts) -> Self {
        Pipe {
            queue: VecDeque::new(),
            closed: false,
            cutter: Cutter::new(cuts),
            read: Vec::new(),
            at: 0,
            eof_told: false,
            written: 0,
            body_written: 0,
            flip_body_byte: None,
            flipped: false,
        }
    }

    /// Sends bytes the session wrote into the host's buffer.
    pub fn write(&mut self, bytes: &[u8]) {
        assert!(!self.closed, "write after shutdown");
        self.queue.extend(bytes);
        self.written += bytes.len() as u64;
    }

    /// Sends body bytes (the host's own buffer), flipping the chosen one if it is among them.
    pub fn write_body(&mut self, bytes: &[u8]) {
        let start = self.body_written;
        let mut bytes = bytes.to_vec();
        let here = start..start + bytes.len() as u64;
        if let Some(k) = self.flip_body_byte.filter(|k| here.contains(k)) {
            bytes[(k - start) as usize] ^= 0x5a;
            self.flipped = true;
        }
        self.body_written += bytes.len() as u64;
        self.write(&bytes);
    }

    /// Sends everything a session hands out from `poll` (its `poll_transmit`), `buf` being
    /// the host's buffer and `body` what the session's last call was handed; whether anything
    /// went out.
    pub fn send_transmits(
        &mut self,
        buf: &mut [u8],
        body: &[u8],
        mut poll: impl FnMut(&mut [u8]) -> Option<Transmit>,
    ) -> bool {
        let mut sent = false;
        while let Some(t) = poll(buf) {
            sent = true;
            match t {
                Transmit::Bytes(n) => self.write(&buf[..n]),
                Transmit::Body(n) => {
                    assert!(
                        n <= body.len(),
                        "a session announced a body it was not given"
                    );
                    self.write_body(&body[..n]);
                }
            }
        }
        sent
    }

    /// The writer shuts down its side: the reader sees the end once it has read everything.
    pub fn close(&mut self) {
        self.closed = true;
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// What the reader's current read still holds.
    pub fn pending(&self) -> &[u8] {
        &self.read[self.at..]
    }

    /// The reader's session took `n` bytes of the current read.
    pub fn consume(&mut self, n: usize) {
        assert!(
            n <= self.pending().len(),
            "consumed {n} of {}",
            self.pending().len()
        );
        self.at += n;
    }

    /// Whether anything is waiting for the reader (in its current read or in flight).
    pub fn has_input(&self) -> bool {
        !self.pending().is_empty() || !self.queue.is_empty()
    }

    /// Bytes in flight, not yet read.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// The next read, cut by the pipe's chunking. Call only once the current read is used up.
    pub fn read(&mut self) -> Read {
        let n = self.cutter.next();
        self.read_at_most(n)
    }

    /// The next read, of at most `max` bytes.
    pub fn read_at_most(&mut self, max: usize) -> Read {
        assert!(self.pending().is_empty(), "read with bytes still pending");
        if self.queue.is_empty() {
            return if self.closed {
                Read::Eof
            } else {
                Read::Nothing
            };
        }
        let n = max.max(1).min(self.queue.len());
        self.read.clear();
        self.read.extend(self.queue.drain(..n));
        self.at = 0;
        Read::Data
    }

    /// Everything still in flight, taken at once (for a reader that checks bytes itself).
    pub fn take_all(&mut self) -> Vec<u8> {
        let mut all = self.pending().to_vec();
        self.at = self.read.len();
        all.extend(self.queue.drain(..));
        all
    }
}

/// Bounds a run: it fails when the steps run out, or when a step in which neither side could
/// do anything leaves the run unfinished (it would never finish).
#[derive(Debug)]
pub struct Budget {
    left: usize,
    what: String,
}

impl Budget {
    pub fn new(steps: usize, what: impl Into<String>) -> Self {
        Budget {
            left: steps,
            what: what.into(),
        }
    }

    /// Takes one step; `progressed` says whether either side did anything in it.
    pub fn spend(&mut self, progressed: bool, state: impl FnOnce() -> String) {
        if !progressed {
            panic!("{}: stalled, neither side can move: {}", self.what, state());
        }
        if self.left == 0 {
            panic!("{}: step limit reached: {}", self.what, state());
        }
        self.left -= 1;
    }
}

/// A step limit for a run that moves `bytes` bytes: every step moves at least one byte or takes
/// one action, and there are a few actions per frame.
pub fn steps_for(bytes: usize) -> usize {
    20_000 + 12 * bytes
}
