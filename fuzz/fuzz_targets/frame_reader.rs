//! The blocking and async `FrameReader`s over a source that returns arbitrarily short reads,
//! through an input buffer of arbitrary size: no panic, no `NeedMore` handed out, and the same
//! events, errors and end-of-stream verdict as the sans-IO decoder fed the whole stream.
//! `read_frame` is checked against the same transcript.
#![no_main]

use std::convert::Infallible;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use unstick_core::{DecodeError, Event, Format, FrameDecoder, FrameEnd, FrameInfo, ReadError};
use unstick_fuzz::{ProfileChoice, Record, ShortReads, decode, push_body, run_ready};

const CAP: usize = 256;
/// Body buffer given to `read_frame`.
const BODY_OUT: usize = 300;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    profile: ProfileChoice,
    plain: bool,
    /// Input buffer size, 1..=256.
    buf_len: u8,
    read_sizes: Vec<u8>,
    stream: &'a [u8],
}

/// Adds one `next_event` outcome to a reader transcript; `false` when reading must stop.
fn record(
    records: &mut Vec<Record>,
    step: Result<Option<Event<'_>>, ReadError<Infallible>>,
) -> bool {
    match step {
        Ok(None) => {
            records.push(Record::Eof(Ok(())));
            false
        }
        Ok(Some(Event::Head(info))) => {
            records.push(Record::Head(info));
            true
        }
        Ok(Some(Event::Body(chunk))) => {
            assert!(!chunk.is_empty(), "empty body chunk");
            push_body(records, chunk);
            true
        }
        Ok(Some(Event::End(end))) => {
            records.push(Record::End(end));
            true
        }
        Ok(Some(Event::NeedMore)) => panic!("a reader handed out NeedMore"),
        Err(ReadError::Decode(e @ DecodeError::UnexpectedEof { .. })) => {
            records.push(Record::Eof(Err(e)));
            false
        }
        Err(ReadError::Decode(e)) => {
            records.push(Record::Error(e));
            e.is_recoverable()
        }
        Err(e) => panic!("unexpected reader error {e:?}"),
    }
}

/// What `read_frame` must return, call by call, given the decoder's transcript.
#[derive(Debug, PartialEq)]
enum FrameCall {
    Frame(FrameInfo, Vec<u8>, FrameEnd),
    TooLarge(u64),
    Error(DecodeError),
    Eof(Result<(), DecodeError>),
}

fn expected_calls(records: &[Record]) -> Vec<FrameCall> {
    let mut calls = Vec::new();
    let mut head = None;
    let mut body = Vec::new();
    for r in records {
        match r {
            Record::Head(info) if info.body_len > BODY_OUT as u64 => {
                calls.push(FrameCall::TooLarge(info.body_len));
                return calls;
            }
            Record::Head(info) => {
                head = Some(*info);
                body.clear();
            }
            Record::Body(bytes) => body.extend_from_slice(bytes),
            Record::End(end) => {
                let info = head.take().expect("end without head");
                calls.push(FrameCall::Frame(info, std::mem::take(&mut body), *end));
            }
            Record::Error(e) => {
                calls.push(FrameCall::Error(*e));
                if !e.is_recoverable() {
                    return calls;
                }
                head = None;
            }
            Record::Eof(result) => calls.push(FrameCall::Eof(*result)),
        }
    }
    calls
}

/// What `read_frame` returns.
type FrameResult<'o> = Result<Option<(FrameInfo, &'o [u8], FrameEnd)>, ReadError<Infallible>>;

fn frame_call(step: FrameResult<'_>) -> FrameCall {
    match step {
        Ok(Some((info, body, end))) => FrameCall::Frame(info, body.to_vec(), end),
        Ok(None) => FrameCall::Eof(Ok(())),
        Err(ReadError::Decode(e @ DecodeError::UnexpectedEof { .. })) => FrameCall::Eof(Err(e)),
        Err(ReadError::Decode(e)) => FrameCall::Error(e),
        Err(ReadError::BodyExceedsBuffer { len, capacity }) => {
            assert_eq!(capacity, BODY_OUT);
            FrameCall::TooLarge(len)
        }
        Err(e) => panic!("unexpected reader error {e:?}"),
    }
}

fuzz_target!(|input: Input<'_>| {
    let format = if input.plain {
        Format::Plain
    } else {
        Format::Header
    };
    let decoder = || FrameDecoder::<CAP>::new(input.profile.profile(), format);
    let expected = decode(&mut decoder(), &[input.stream], |_, _| {});
    let mut buf = vec![0u8; usize::from(input.buf_len).max(1)];
    // Each call reads at most 1 + its list length times; a bound that ends every loop.
    let max_calls = 4 * (input.stream.len() + 4);

    let source = ShortReads::new(input.stream, &input.read_sizes);
    let mut reader = unstick_core::blocking::FrameReader::new(source, decoder(), &mut buf);
    let mut got = Vec::new();
    for _ in 0..max_calls {
        if !record(&mut got, reader.next_event()) {
            break;
        }
    }
    assert_eq!(got, expected, "blocking reader differs from the decoder");

    let source = ShortReads::new(input.stream, &input.read_sizes);
    let mut reader = unstick_core::asynch::FrameReader::new(source, decoder(), &mut buf);
    let mut got = Vec::new();
    for _ in 0..max_calls {
        if !record(&mut got, run_ready(reader.next_event())) {
            break;
        }
    }
    assert_eq!(got, expected, "async reader differs from the decoder");

    let want = expected_calls(&expected);
    let source = ShortReads::new(input.stream, &input.read_sizes);
    let mut reader = unstick_core::blocking::FrameReader::new(source, decoder(), &mut buf);
    let mut out = [0u8; BODY_OUT];
    let mut got = Vec::new();
    while got.len() < want.len() {
        got.push(frame_call(reader.read_frame(&mut out)));
    }
    assert_eq!(got, want, "read_frame differs from the decoder");
});
