//! The blocking and async drivers over in-memory byte sources and sinks: short reads of any
//! size, clean and unclean ends of stream, whole-frame reads, every way of writing a frame, and
//! async futures dropped half-way.

mod recording;

use core::convert::Infallible;
use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

use proptest::prelude::*;
use recording::{Frame, Recorded, frames, record_all, recorded};
use serde::Serialize;
use unstick_core::{
    Algorithms, ByteOrder, DecodeError, EncodeError, FrameDecoder, FrameInfo, HeaderFrameEncoder,
    PrefixWidth, Profile, ReadError, WriteError, asynch, blocking, digest_of, encode_plain_frame,
};

#[derive(Serialize)]
struct Reply<'a> {
    file_name: &'a str,
}

/// A byte source that hands out `data` in reads of the sizes in `sizes` (cycled), never more
/// than asked; before each read it may first answer `Pending` once (async only).
struct ShortReads<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    reads: usize,
    pend_before_read: bool,
    pending_now: bool,
}

impl<'a> ShortReads<'a> {
    fn new(data: &'a [u8], sizes: &[usize]) -> Self {
        ShortReads {
            data,
            sizes: sizes.iter().map(|&s| s.max(1)).collect(),
            reads: 0,
            pend_before_read: false,
            pending_now: true,
        }
    }

    fn take(&mut self, buf: &mut [u8]) -> usize {
        let size = self.sizes[self.reads % self.sizes.len()];
        self.reads += 1;
        let n = size.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        n
    }
}

impl embedded_io::ErrorType for ShortReads<'_> {
    type Error = Infallible;
}

impl embedded_io::Read for ShortReads<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        Ok(self.take(buf))
    }
}

/// Answers `Pending` on its first poll, then `Ready`.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: core::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            Poll::Pending
        }
    }
}

impl embedded_io_async::Read for ShortReads<'_> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        if self.pend_before_read && self.pending_now {
            // Cleared before yielding: a future dropped here leaves the next read to go ahead.
            self.pending_now = false;
            YieldOnce(false).await;
        }
        self.pending_now = true;
        Ok(self.take(buf))
    }
}

/// A byte sink that takes at most `max` bytes per write and counts the writes.
struct ShortWrites {
    bytes: Vec<u8>,
    max: usize,
    writes: usize,
}

impl ShortWrites {
    fn new(max: usize) -> Self {
        ShortWrites {
            bytes: Vec::new(),
            max,
            writes: 0,
        }
    }

    fn put(&mut self, buf: &[u8]) -> usize {
        let n = buf.len().min(self.max);
        self.bytes.extend_from_slice(&buf[..n]);
        self.writes += 1;
        n
    }
}

impl embedded_io::ErrorType for ShortWrites {
    type Error = Infallible;
}

impl embedded_io::Write for ShortWrites {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        Ok(self.put(buf))
    }
    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

impl embedded_io_async::Write for ShortWrites {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        YieldOnce(false).await;
        Ok(self.put(buf))
    }
    async fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

/// A source that fails after `ok` bytes.
struct Failing {
    ok: usize,
}

impl embedded_io::ErrorType for Failing {
    type Error = embedded_io::ErrorKind;
}

impl embedded_io::Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, embedded_io::ErrorKind> {
        if self.ok == 0 {
            return Err(embedded_io::ErrorKind::ConnectionReset);
        }
        let n = self.ok.min(buf.len());
        buf[..n].fill(0);
        self.ok -= n;
        Ok(n)
    }
}

/// Polls `future` to completion with a waker that does nothing (every future here is ready on
/// its next poll), in a bounded number of polls.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..100_000 {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("future not ready after 100,000 polls");
}

/// Three header frames (one with an empty body) and the bodies they carry.
fn three_frames() -> (Vec<u8>, Vec<Vec<u8>>) {
    let encoder = HeaderFrameEncoder::default();
    let bodies: Vec<Vec<u8>> = vec![
        b"hello".to_vec(),
        Vec::new(),
        (0..1000u32).map(|i| (i * 7) as u8).collect(),
    ];
    let mut wire = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let mut out = vec![0u8; 256 + body.len()];
        let name = format!("{i}.bin");
        let n = encoder
            .encode_frame(&Reply { file_name: &name }, body, &mut out)
            .unwrap();
        wire.extend_from_slice(&out[..n]);
    }
    (wire, bodies)
}

fn blocking_events<R: embedded_io::Read>(
    reader: &mut blocking::FrameReader<'_, R, 256>,
) -> Result<Vec<Recorded>, ReadError<R::Error>> {
    let mut log = Vec::new();
    for _ in 0..100_000 {
        match reader.next_event()? {
            None => return Ok(log),
            Some(event) => log.push(recorded(event).expect("next_event never says NeedMore")),
        }
    }
    panic!("no end of stream");
}

fn bodies_of(log: &[Recorded]) -> Vec<Vec<u8>> {
    frames(log).into_iter().map(|f| f.body).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn blocking_reader_over_short_reads(
        sizes in prop::collection::vec(1usize..40, 1..8),
        window in 1usize..64,
    ) {
        let (wire, bodies) = three_frames();
        let mut buf = vec![0u8; window];
        let decoder = FrameDecoder::<256>::header_frames(Profile::I32_LE);
        let mut reader = blocking::FrameReader::new(ShortReads::new(&wire, &sizes), decoder, &mut buf);
        let log = blocking_events(&mut reader).unwrap();
        prop_assert_eq!(bodies_of(&log), bodies);
        // Every body chunk is a piece of the window, so never larger than it.
        for event in &log {
            if let Recorded::Body(chunk) = event {
                prop_assert!(chunk.len() <= window);
            }
        }
        for frame in frames(&log) {
            prop_assert_eq!(frame.end.is_verified(), cfg!(feature = "xxh3"));
        }
        // After the end, the end stays.
        prop_assert_eq!(reader.next_event().map(|e| e.is_none()), Ok(true));
    }

    #[test]
    fn async_reader_over_short_reads_with_dropped_futures(
        sizes in prop::collection::vec(1usize..40, 1..8),
        window in 1usize..64,
    ) {
        let (wire, bodies) = three_frames();
        let mut buf = vec![0u8; window];
        let decoder = FrameDecoder::<256>::header_frames(Profile::I32_LE);
        let mut source = ShortReads::new(&wire, &sizes);
        source.pend_before_read = true;
        let mut reader = asynch::FrameReader::new(source, decoder, &mut buf);
        let mut log = Vec::new();
        let mut dropped = 0;
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..100_000 {
            // Poll a fresh future once; when it is not ready, drop it half-way.
            let mut future = pin!(reader.next_event());
            match future.as_mut().poll(&mut cx) {
                Poll::Pending => dropped += 1,
                Poll::Ready(Ok(None)) => break,
                Poll::Ready(Ok(Some(event))) => log.push(recorded(event).unwrap()),
                Poll::Ready(Err(e)) => panic!("{e}"),
            }
        }
        prop_assert!(dropped > 0);
        prop_assert_eq!(bodies_of(&log), bodies);
    }
}

/// What `check_eof` must say when a stream of `frame` (prefix 4, header `header_len`, body
/// `body_len`) stops after `k` bytes.
fn expected_eof(k: usize, header_len: usize, body_len: usize) -> Result<(), DecodeError> {
    let needed = if k == 0 || k == 4 + header_len + body_len {
        return Ok(());
    } else if k < 4 {
        4 - k
    } else if k < 4 + header_len {
        4 + header_len - k
    } else {
        4 + header_len + body_len - k
    };
    Err(DecodeError::UnexpectedEof {
        needed: needed as u64,
    })
}

#[test]
fn eof_anywhere_in_a_frame() {
    let encoder = HeaderFrameEncoder::default();
    let mut first = [0u8; 128];
    let first_len = encoder
        .encode_frame(&Reply { file_name: "a" }, b"first", &mut first)
        .unwrap();
    let mut frame = [0u8; 128];
    let body = b"0123456789";
    let head_len = encoder
        .encode_head_for(&Reply { file_name: "b" }, body, &mut frame)
        .unwrap();
    frame[head_len..head_len + body.len()].copy_from_slice(body);
    let frame = &frame[..head_len + body.len()];
    let header_len = head_len - 4;
    for k in 0..=frame.len() {
        // The first frame whole, then `k` bytes of the second.
        let mut wire = first[..first_len].to_vec();
        wire.extend_from_slice(&frame[..k]);
        let expected = expected_eof(k, header_len, body.len());
        for sizes in [&[1usize][..], &[3, 1, 7], &[1000]] {
            let mut buf = [0u8; 16];
            let decoder = FrameDecoder::<256>::header_frames(Profile::I32_LE);
            let mut reader =
                blocking::FrameReader::new(ShortReads::new(&wire, sizes), decoder, &mut buf);
            let got = blocking_events(&mut reader);
            match expected {
                Ok(()) => assert_eq!(bodies_of(&got.unwrap()).len(), 1 + usize::from(k > 0)),
                Err(e) => assert_eq!(got.unwrap_err(), ReadError::Decode(e), "k = {k}"),
            }
            // The same through the async reader.
            let decoder = FrameDecoder::<256>::header_frames(Profile::I32_LE);
            let mut reader =
                asynch::FrameReader::new(ShortReads::new(&wire, sizes), decoder, &mut buf);
            let got: Result<Vec<Recorded>, _> = block_on(async {
                let mut log = Vec::new();
                while let Some(event) = reader.next_event().await? {
                    log.push(recorded(event).unwrap());
                }
                Ok::<_, ReadError<Infallible>>(log)
            });
            match expected {
                Ok(()) => assert_eq!(bodies_of(&got.unwrap()).len(), 1 + usize::from(k > 0)),
                Err(e) => assert_eq!(got.unwrap_err(), ReadError::Decode(e), "k = {k}"),
            }
        }
    }
}

#[test]
fn clean_eof_and_errors() {
    // An empty stream is no frames at all.
    let mut buf = [0u8; 8];
    let decoder = FrameDecoder::<64>::header_frames(Profile::I32_LE);
    let mut reader = blocking::FrameReader::new(&b""[..], decoder, &mut buf);
    assert!(matches!(reader.next_event(), Ok(None)));
    assert!(matches!(reader.read_frame(&mut [0; 4]), Ok(None)));
    // No room to read into.
    let decoder = FrameDecoder::<64>::header_frames(Profile::I32_LE);
    let mut reader = blocking::FrameReader::new(&b"\x02\x00\x00\x00{}"[..], decoder, &mut []);
    assert!(matches!(reader.next_event(), Err(ReadError::BufferEmpty)));
    // The source's errors and the decoder's errors come through typed.
    let mut buf = [0u8; 8];
    let decoder = FrameDecoder::<64>::header_frames(Profile::I32_LE);
    let mut reader = blocking::FrameReader::new(Failing { ok: 3 }, decoder, &mut buf);
    assert!(matches!(
        reader.next_event(),
        Err(ReadError::Io(embedded_io::ErrorKind::ConnectionReset))
    ));
    let decoder = FrameDecoder::<64>::header_frames(Profile::I32_LE);
    let mut reader = blocking::FrameReader::new(&b"\xff\xff\xff\xff{}"[..], decoder, &mut buf);
    let err = reader.next_event().map(|_| ()).unwrap_err();
    assert_eq!(
        err,
        ReadError::Decode(DecodeError::NegativeLength { len: -1 })
    );
    assert!(err.to_string().contains("negative"));
    assert!(matches!(
        reader.next_event(),
        Err(ReadError::Decode(DecodeError::Poisoned))
    ));
    let mut buf = [0u8; 8];
    let decoder = FrameDecoder::<64>::header_frames(Profile::I32_LE);
    let mut reader = asynch::FrameReader::new(&b"\xff\xff\xff\xff"[..], decoder, &mut buf);
    assert!(matches!(
        block_on(reader.next_event()),
        Err(ReadError::Decode(DecodeError::NegativeLength { len: -1 }))
    ));
}

#[test]
fn read_frame_whole_frames() {
    let (wire, bodies) = three_frames();
    let mut buf = [0u8; 32];
    let decoder = FrameDecoder::<256>::header_frames(Profile::I32_LE);
    let mut reader =
        blocking::FrameReader::new(ShortReads::new(&wire, &[5, 64]), decoder, &mut buf);
    let mut body_out = [0u8; 1000];
    for expected in &bodies {
        let (info, body, end) = reader.read_frame(&mut body_out).unwrap().unwrap();
        assert_eq!(body, expected.as_slice());
        assert_eq!(info.body_len, expected.len() as u64);
        assert!(info.header_len > 0);
        assert_eq!(
            reader.decoder().declared_digests().xxh3.is_some(),
            cfg!(feature = "xxh3")
        );
        assert_eq!(end.is_verified(), cfg!(feature = "xxh3"));
    }
    assert!(reader.read_frame(&mut body_out).unwrap().is_none());

    // The same, async.
    let mut buf = [0u8; 32];
    let decoder = FrameDecoder::<256>::header_frames(Profile::I32_LE);
    let mut source = ShortReads::new(&wire, &[5, 64]);
    source.pend_before_read = true;
    let mut reader = asynch::FrameReader::new(source, decoder, &mut buf);
    for expected in &bodies {
        let (_, body, end) = block_on(reader.read_frame(&mut body_out)).unwrap().unwrap();
        assert_eq!(body, expected.as_slice());
        assert_eq!(end.is_verified(), cfg!(feature = "xxh3"));
    }
    assert!(
        block_on(reader.read_frame(&mut body_out))
            .unwrap()
            .is_none()
    );
}

#[test]
fn read_frame_refuses_a_body_larger_than_its_buffer() {
    let (wire, _) = three_frames();
    let mut buf = [0u8; 32];
    let decoder = FrameDecoder::<256>::header_frames(Profile::I32_LE);
    let mut reader = blocking::FrameReader::new(&wire[..], decoder, &mut buf);
    let mut body_out = [0u8; 4];
    assert_eq!(
        reader.read_frame(&mut body_out).map(|_| ()),
        Err(ReadError::BodyExceedsBuffer {
            len: 5,
            capacity: 4
        })
    );
    let mut buf = [0u8; 32];
    let decoder = FrameDecoder::<256>::header_frames(Profile::I32_LE);
    let mut reader = asynch::FrameReader::new(&wire[..], decoder, &mut buf);
    assert_eq!(
        block_on(reader.read_frame(&mut body_out)).map(|_| ()),
        Err(ReadError::BodyExceedsBuffer {
            len: 5,
            capacity: 4
        })
    );
}

/// `read_frame` after the head was taken with `next_event`: the rest of the body is checked
/// against the buffer as it arrives (this used to panic on a slice index).
#[test]
fn read_frame_after_the_head_was_taken() {
    let (wire, bodies) = three_frames();
    let decoder = FrameDecoder::<256>::header_frames(Profile::I32_LE);
    let mut buf = [0u8; 64];
    let mut reader = blocking::FrameReader::new(&wire[..], decoder, &mut buf);
    assert!(matches!(
        reader.next_event(),
        Ok(Some(unstick_core::Event::Head(_)))
    ));
    // The body fits: the frame comes back with what the end knows of it.
    let mut body_out = [0u8; 8];
    let (info, body, _) = reader.read_frame(&mut body_out).unwrap().unwrap();
    assert_eq!(body, b"hello");
    assert_eq!(
        info,
        FrameInfo {
            header_len: 0,
            body_len: 5,
        }
    );
    // Skip the empty frame, take the third head, then offer too small a buffer.
    assert_eq!(reader.read_frame(&mut body_out).unwrap().unwrap().1, b"");
    assert!(matches!(
        reader.next_event(),
        Ok(Some(unstick_core::Event::Head(_)))
    ));
    let err = reader.read_frame(&mut body_out).map(|_| ()).unwrap_err();
    assert_eq!(
        err,
        ReadError::BodyExceedsBuffer {
            len: bodies[2].len() as u64,
            capacity: 8
        }
    );

    let decoder = FrameDecoder::<256>::header_frames(Profile::I32_LE);
    let mut buf = [0u8; 64];
    let mut reader = asynch::FrameReader::new(&wire[..], decoder, &mut buf);
    for _ in 0..2 {
        block_on(reader.read_frame(&mut [0u8; 8])).unwrap().unwrap();
    }
    assert!(matches!(
        block_on(reader.next_event()),
        Ok(Some(unstick_core::Event::Head(_)))
    ));
    assert_eq!(
        block_on(reader.read_frame(&mut body_out)).map(|_| ()),
        Err(ReadError::BodyExceedsBuffer {
            len: bodies[2].len() as u64,
            capacity: 8
        })
    );
}

#[test]
fn reader_parts_and_buffered_bytes() {
    let (wire, _) = three_frames();
    let mut buf = [0u8; 2048];
    let decoder = FrameDecoder::<256>::header_frames(Profile::I32_LE);
    let mut reader = blocking::FrameReader::new(&wire[..], decoder, &mut buf);
    let mut body_out = [0u8; 8];
    reader.read_frame(&mut body_out).unwrap().unwrap();
    // One read took the whole stream: the next frames wait in the buffer.
    let first_len = 4 + reader.decoder().header_json().unwrap().len() + 5;
    assert_eq!(reader.buffered(), &wire[first_len..]);
    assert!(reader.get_mut().is_empty());
    let (_, decoder) = reader.into_parts();
    assert!(decoder.is_at_boundary());
}

#[test]
fn write_frame_matches_the_encoder() {
    let encoder = HeaderFrameEncoder::default();
    let header = Reply {
        file_name: "f1.txt",
    };
    let body = b"hello world";
    let mut expected = [0u8; 256];
    let n = encoder.encode_frame(&header, body, &mut expected).unwrap();
    let expected = &expected[..n];
    // Head and body fit the buffer: one write. They do not: two.
    for (head_buf_len, writes) in [(256, 1), (n - 1, 2)] {
        let mut sink = ShortWrites::new(usize::MAX);
        let mut head_buf = vec![0u8; head_buf_len];
        blocking::write_frame(&mut sink, &encoder, &header, body, &mut head_buf).unwrap();
        assert_eq!(sink.bytes, expected);
        assert_eq!(sink.writes, writes);
        let mut sink = ShortWrites::new(usize::MAX);
        block_on(asynch::write_frame(
            &mut sink,
            &encoder,
            &header,
            body,
            &mut head_buf,
        ))
        .unwrap();
        assert_eq!(sink.bytes, expected);
        assert_eq!(sink.writes, writes);
    }
    // Short writes are retried.
    let mut sink = ShortWrites::new(3);
    blocking::write_frame(&mut sink, &encoder, &header, body, &mut [0u8; 128]).unwrap();
    assert_eq!(sink.bytes, expected);
    // A head buffer too small for the head writes nothing.
    let mut sink = ShortWrites::new(usize::MAX);
    let err = blocking::write_frame(&mut sink, &encoder, &header, body, &mut [0u8; 10]);
    assert_eq!(
        err,
        Err(WriteError::Encode(EncodeError::BufferTooSmall {
            capacity: 10
        }))
    );
    assert!(sink.bytes.is_empty());
}

#[test]
fn write_plain_frame_matches_the_encoder() {
    for profile in [
        Profile::I32_LE,
        Profile::new(PrefixWidth::Two, ByteOrder::Big),
        Profile::new(PrefixWidth::Eight, ByteOrder::Little),
    ] {
        for body in [&b""[..], b"hello"] {
            let mut expected = [0u8; 16];
            let n = encode_plain_frame(&profile, body, &mut expected).unwrap();
            let mut sink = ShortWrites::new(2);
            blocking::write_plain_frame(&mut sink, &profile, body).unwrap();
            assert_eq!(sink.bytes, &expected[..n]);
            let mut sink = ShortWrites::new(2);
            block_on(asynch::write_plain_frame(&mut sink, &profile, body)).unwrap();
            assert_eq!(sink.bytes, &expected[..n]);
        }
    }
    let two = Profile::new(PrefixWidth::Two, ByteOrder::Little);
    let big = vec![0u8; 40_000];
    let mut sink = ShortWrites::new(usize::MAX);
    let too_large = Err(WriteError::Encode(EncodeError::LengthTooLarge {
        len: 40_000,
        max: 32_767,
    }));
    assert_eq!(
        blocking::write_plain_frame(&mut sink, &two, &big),
        too_large
    );
    assert_eq!(
        block_on(asynch::write_plain_frame(&mut sink, &two, &big)),
        too_large
    );
    assert!(sink.bytes.is_empty());
}

#[test]
fn write_frame_from_a_streamed_body() {
    let encoder = HeaderFrameEncoder::default();
    let header = Reply {
        file_name: "big.bin",
    };
    let body: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let both = Algorithms::MD5.union(Algorithms::XXH3);
    let mut head = [0u8; 128];
    let head_len = encoder
        .encode_head(&header, body.len() as u64, None, &mut head)
        .unwrap();
    let mut expected = head[..head_len].to_vec();
    expected.extend_from_slice(&body);

    let check = |sink: &ShortWrites, digests| {
        assert_eq!(sink.bytes, expected);
        assert_eq!(digests, digest_of(both, &body));
        // A receiver computing the same digests agrees (the head carries none).
        let mut decoder = FrameDecoder::<256>::header_frames(Profile::I32_LE).compute(both);
        let got: Vec<Frame> = frames(&record_all(&mut decoder, &sink.bytes).unwrap());
        assert_eq!(got[0].computed, digests);
        assert_eq!(got[0].body, body);
    };
    let mut sink = ShortWrites::new(1000);
    let mut source = ShortReads::new(&body, &[7, 300, 1]);
    let mut buf = [0u8; 256];
    let digests = blocking::write_frame_from(
        &mut sink,
        &encoder,
        &header,
        body.len() as u64,
        &mut source,
        both,
        &mut buf,
    )
    .unwrap();
    check(&sink, digests);

    let mut sink = ShortWrites::new(1000);
    let mut source = ShortReads::new(&body, &[7, 300, 1]);
    source.pend_before_read = true;
    let digests = block_on(asynch::write_frame_from(
        &mut sink,
        &encoder,
        &header,
        body.len() as u64,
        &mut source,
        both,
        &mut buf,
    ))
    .unwrap();
    check(&sink, digests);

    // A source shorter than the declared length: how much was missing.
    let mut sink = ShortWrites::new(1000);
    let mut source = ShortReads::new(&body[..9_990], &[64]);
    let err = blocking::write_frame_from(
        &mut sink,
        &encoder,
        &header,
        body.len() as u64,
        &mut source,
        both,
        &mut buf,
    );
    assert_eq!(err, Err(WriteError::SourceEnded { missing: 10 }));
    assert_eq!(sink.bytes.len(), head_len + 9_990);
    let mut source = ShortReads::new(&body[..9_990], &[64]);
    let err = block_on(asynch::write_frame_from(
        &mut ShortWrites::new(1000),
        &encoder,
        &header,
        body.len() as u64,
        &mut source,
        both,
        &mut buf,
    ));
    assert_eq!(err, Err(WriteError::SourceEnded { missing: 10 }));
    assert!(
        WriteError::<Infallible, Infallible>::SourceEnded { missing: 10 }
            .to_string()
            .contains("10 bytes short")
    );
}

#[test]
fn copy_body_edges() {
    let mut sink = ShortWrites::new(usize::MAX);
    // Nothing to copy: digests of the empty body, even with no buffer.
    let digests = blocking::copy_body(
        &mut sink,
        &mut ShortReads::new(b"", &[1]),
        0,
        Algorithms::XXH3,
        &mut [],
    )
    .unwrap();
    assert_eq!(digests, digest_of(Algorithms::XXH3, b""));
    // Something to copy and no buffer: a typed error, not a loop.
    let err = blocking::copy_body(
        &mut sink,
        &mut ShortReads::new(b"abc", &[1]),
        3,
        Algorithms::NONE,
        &mut [],
    );
    assert_eq!(
        err,
        Err(WriteError::Encode(EncodeError::BufferTooSmall {
            capacity: 0
        }))
    );
    assert!(sink.bytes.is_empty());
}
