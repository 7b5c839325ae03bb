//! The header checker against a reference JSON parser: arbitrary bytes as a frame's header.
//!
//! - A header the decoder accepts is a JSON object for `serde_json` too, and the normalised text
//!   the decoder hands out (`header_json`) means the same as the bytes received.
//! - A header the decoder refuses as not JSON is refused by `serde_json` too, unless the decoder
//!   refused it for one of its own limits (nesting, number length, a repeated size or digest
//!   member); one it calls "not an object" is not an object for `serde_json` either.
//! - A header that is JSON but whose members the core refuses is JSON for `serde_json` too.
//! - A string member read through the typed view (`serde-json-core` over the normalised text)
//!   equals what `serde_json` reads from the bytes received: escapes, surrogate pairs and all.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde_json::Value;
use unstick_core::json::JsonProblem;
use unstick_core::{DecodeError, Event, FrameDecoder, Profile};

const CAP: usize = 1024;

/// The typed view read from the decoder.
#[derive(Deserialize)]
struct Probe {
    file_name: Option<heapless::String<128>>,
}

/// The same view read by `serde_json`.
#[derive(Deserialize)]
struct ProbeStd {
    file_name: Option<String>,
}

fuzz_target!(|header: &[u8]| {
    if header.is_empty() || header.len() > CAP {
        return;
    }
    let mut frame = Vec::with_capacity(4 + header.len());
    frame.extend_from_slice(&(header.len() as i32).to_le_bytes());
    frame.extend_from_slice(header);

    let reference = serde_json::from_slice::<Value>(header);
    // Numbers beyond f64 are valid JSON that serde_json refuses to hold; skip those.
    if let Err(e) = &reference
        && e.to_string().starts_with("number out of range")
    {
        return;
    }

    let mut decoder = FrameDecoder::<CAP>::header_frames(Profile::I32_LE);
    match decoder.feed(&frame) {
        Ok((used, Event::Head(_))) => {
            assert_eq!(used, frame.len());
            let received = reference.expect("decoder accepted a header serde_json refuses");
            assert!(received.is_object(), "decoder accepted a non-object");
            let text = decoder.header_json().expect("accepted header has text");
            let normalised: Value =
                serde_json::from_str(text).expect("normalised header is not JSON");
            assert_eq!(
                normalised, received,
                "normalising changed the header's meaning"
            );

            if let Ok(want) = serde_json::from_slice::<ProbeStd>(header)
                && want.file_name.as_ref().is_none_or(|s| s.len() <= 128)
            {
                let mut scratch = [0u8; CAP];
                let got: Probe = decoder
                    .header_with_scratch(&mut scratch)
                    .expect("typed view failed where serde_json succeeds");
                assert_eq!(got.file_name.as_deref(), want.file_name.as_deref());
            }
        }
        Ok(other) => panic!("a whole header frame gave {other:?}"),
        Err(DecodeError::HeaderNotJson(e)) => match e.problem {
            JsonProblem::TooDeep | JsonProblem::NumberTooLong | JsonProblem::DuplicateField => {}
            JsonProblem::NotAnObject => {
                // Said of anything that does not start as an object, JSON or not.
                assert!(
                    !reference.is_ok_and(|v| v.is_object()),
                    "refused an object as not an object"
                );
            }
            problem => assert!(
                reference.is_err(),
                "decoder refused valid JSON: {problem:?} at {}",
                e.offset
            ),
        },
        Err(
            DecodeError::BodyLengthInvalid { .. }
            | DecodeError::SizeMismatch { .. }
            | DecodeError::ChecksumMalformed { .. }
            | DecodeError::BodyTooLarge { .. },
        ) => {
            let value = reference.expect("member error for a header that is not JSON");
            assert!(value.is_object());
        }
        Err(e) => panic!("unexpected error for a whole header frame: {e:?}"),
    }
});
