//! The protocols' vocabulary (`unstick-core`'s `protocols` feature) on arbitrary bytes.
//!
//! - Bytes as a connection's first bytes: recognising another protocol's opening, telling a
//!   framed client from a seed client, checking a command and looking for an HTTP request line
//!   never panic, and an opening recognised without a pause is recognised after one too.
//! - Bytes as a frame's header: every typed view of the shell and file protocols (requests,
//!   replies, the error frame) reads or refuses it without panicking, and whatever reads as a
//!   view encodes again and reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unstick_core::files::{
    Ack, DigestTrailer, EntryReply, FileHead, ReplyHead, Request, StatReply,
};
use unstick_core::foreign::{Recognition, holds_http_request_line, recognise};
use unstick_core::shell::{ExitHeader, ReplyOp, RequestHeader, classify_greeting, command_text};
use unstick_core::{ErrorFrame, Event, FrameDecoder, PLAIN_ENCODER, Profile};

const CAP: usize = 1024;
type Owned = heapless::String<256>;

fuzz_target!(|bytes: &[u8]| {
    first_bytes(bytes);
    if !bytes.is_empty() && bytes.len() <= CAP {
        header_views(bytes);
    }
});

fn first_bytes(bytes: &[u8]) {
    let _ = classify_greeting(bytes);
    let _ = command_text(bytes);
    let _ = holds_http_request_line(bytes);
    let paused = recognise(bytes, true);
    let open = recognise(bytes, false);
    if let Recognition::Foreign(protocol) = open {
        assert_eq!(paused, Recognition::Foreign(protocol));
    }
}

fn header_views(header: &[u8]) {
    let mut frame = Vec::with_capacity(4 + header.len());
    frame.extend_from_slice(&(header.len() as i32).to_le_bytes());
    frame.extend_from_slice(header);
    let mut decoder = FrameDecoder::<CAP>::header_frames(Profile::I32_LE);
    let Ok((_, Event::Head(_))) = decoder.feed(&frame) else {
        return;
    };
    let mut scratch = [0u8; CAP];
    // The views a receiver only reads.
    let _ = decoder.header_with_scratch::<ReplyHead>(&mut scratch);
    let _ = decoder.header_with_scratch::<RequestHeader<Owned>>(&mut scratch);
    let _ = decoder.header_with_scratch::<ReplyOp>(&mut scratch);
    // The views both sides use: what reads, encodes and reads back the same.
    macro_rules! round_trips {
        ($($ty:ty),+ $(,)?) => {$(
            if let Ok(view) = decoder.header_with_scratch::<$ty>(&mut scratch) {
                round_trip(&view);
            }
        )+};
    }
    round_trips!(
        Request<Owned>,
        DigestTrailer<Owned>,
        FileHead,
        StatReply<Owned>,
        EntryReply<Owned>,
        Ack,
        ErrorFrame<Owned>,
        ExitHeader,
    );
}

/// Encodes `view` and reads it back: the same value.
fn round_trip<V>(view: &V)
where
    V: serde::Serialize + serde::de::DeserializeOwned + PartialEq + core::fmt::Debug,
{
    let mut buf = [0u8; 4 * CAP];
    let Ok(n) = PLAIN_ENCODER.encode_frame(view, b"", &mut buf) else {
        return; // A view whose escapes do not fit the buffer.
    };
    let mut decoder = FrameDecoder::<{ 4 * CAP }>::header_frames(Profile::I32_LE);
    let Ok((_, Event::Head(_))) = decoder.feed(&buf[..n]) else {
        panic!("an encoded view does not decode: {view:?}");
    };
    let mut scratch = [0u8; 4 * CAP];
    let back: V = decoder
        .header_with_scratch(&mut scratch)
        .unwrap_or_else(|e| panic!("{view:?} does not read back: {e}"));
    assert_eq!(&back, view);
}
