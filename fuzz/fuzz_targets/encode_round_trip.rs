//! Encoder round trip: an arbitrary header value and body, encoded in an arbitrary profile with
//! an arbitrary size member and digest, then decoded from arbitrary cuts, give back the same
//! header value, the same body and a verified digest, whether the header is given as a value
//! or as JSON text; plain frames likewise. The only encoder
//! errors allowed are "does not fit": the buffer, or the prefix width.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};
use unstick_core::{
    Algorithm, EncodeError, FrameDecoder, HeaderFrameEncoder, Profile, SizeField, Verdict,
    encode_plain_frame,
};
use unstick_fuzz::{ProfileChoice, Record, decode, pieces};

const CAP: usize = 1024;

#[derive(Arbitrary, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct AppHeader {
    file_name: String,
    filepath: String,
    cmd: Option<String>,
    code: i32,
    offset: u64,
    ok: bool,
    tags: Vec<u16>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    profile: ProfileChoice,
    filesize: bool,
    checksum: u8,
    header: AppHeader,
    body: Vec<u8>,
    cuts: Vec<u8>,
}

fn allowed(e: EncodeError) {
    assert!(
        matches!(
            e,
            EncodeError::BufferTooSmall { .. } | EncodeError::LengthTooLarge { .. }
        ),
        "encoder refused a valid header: {e:?}"
    );
}

/// Decodes `wire` from the input's cuts and checks it gives back the input's header value and
/// body, with the digest `checksum` verified.
fn check_round_trip(profile: Profile, wire: &[u8], input: &Input, checksum: Option<Algorithm>) {
    let mut header_seen = None;
    let mut scratch = [0u8; CAP];
    let mut decoder = FrameDecoder::<CAP>::header_frames(profile);
    let records = decode(&mut decoder, &pieces(wire, &input.cuts), |d, _| {
        let header: Result<AppHeader, _> = d.header_with_scratch(&mut scratch);
        header_seen = Some(header);
    });
    let header = header_seen
        .expect("no frame head")
        .expect("header view failed");
    assert_eq!(header, input.header, "header changed in the round trip");

    let mut it = records.into_iter();
    let Some(Record::Head(info)) = it.next() else {
        panic!("no head")
    };
    assert_eq!(info.body_len, input.body.len() as u64);
    let mut next = it.next();
    if !input.body.is_empty() {
        assert_eq!(next, Some(Record::Body(input.body.clone())), "body changed");
        next = it.next();
    }
    let Some(Record::End(end)) = next else {
        panic!("no end: {next:?}")
    };
    let (md5, xxh3) = match checksum {
        None => (Verdict::Absent, Verdict::Absent),
        Some(Algorithm::Md5) => (Verdict::Verified, Verdict::Absent),
        Some(Algorithm::Xxh3) => (Verdict::Absent, Verdict::Verified),
    };
    assert_eq!((end.md5, end.xxh3), (md5, xxh3));
    assert_eq!(it.next(), Some(Record::Eof(Ok(()))));
    assert_eq!(it.next(), None);
}

fuzz_target!(|input: Input| {
    // A body limit below the body is a decoder refusal, not a round trip; drop it here.
    let profile = input.profile.profile().with_max_body_len(u64::MAX);
    let checksum = match input.checksum % 3 {
        0 => None,
        1 => Some(Algorithm::Md5),
        _ => Some(Algorithm::Xxh3),
    };
    let size_field = if input.filesize {
        SizeField::Filesize
    } else {
        SizeField::TotalSize
    };
    let encoder = HeaderFrameEncoder::new(profile)
        .size_field(size_field)
        .checksum(checksum);

    // The head must fit the decoder's capacity: give the encoder exactly that much room.
    let mut wire = vec![0u8; profile.width.len() + CAP + input.body.len()];
    let mut head = vec![0u8; profile.width.len() + CAP];
    match encoder.encode_head_for(&input.header, &input.body, &mut head) {
        Ok(n) => {
            wire[..n].copy_from_slice(&head[..n]);
            wire[n..n + input.body.len()].copy_from_slice(&input.body);
            wire.truncate(n + input.body.len());
        }
        Err(e) => return allowed(e),
    }
    let mut frame = vec![0u8; wire.len()];
    assert_eq!(
        encoder.encode_frame(&input.header, &input.body, &mut frame),
        Ok(wire.len())
    );
    assert_eq!(frame, wire, "encode_frame and encode_head_for disagree");

    check_round_trip(profile, &wire, &input, checksum);

    // The same header as JSON text (serde_json's, with whitespace around it), as the C ABI
    // passes it: the same round trip.
    let text = format!(" {} \n", serde_json::to_string(&input.header).unwrap());
    let mut from_text = vec![0u8; profile.width.len() + CAP + input.body.len()];
    match encoder.encode_frame_json(text.as_bytes(), &input.body, &mut from_text) {
        // serde_json may escape more than serde-json-core: a head past the capacity is a
        // decoder refusal, not a round trip.
        Ok(n) if n - input.body.len() > profile.width.len() + CAP => {}
        Ok(n) => check_round_trip(profile, &from_text[..n], &input, checksum),
        Err(e) => allowed(e),
    }

    // Plain frames: the body alone.
    let mut plain = vec![0u8; 8 + input.body.len()];
    let n = match encode_plain_frame(&profile, &input.body, &mut plain) {
        Ok(n) => n,
        Err(e) => return allowed(e),
    };
    let mut decoder = FrameDecoder::<0>::plain_frames(profile);
    let records = decode(&mut decoder, &pieces(&plain[..n], &input.cuts), |_, _| {});
    let mut want = vec![Record::Head(unstick_core::FrameInfo {
        header_len: 0,
        body_len: input.body.len() as u64,
    })];
    if !input.body.is_empty() {
        want.push(Record::Body(input.body.clone()));
    }
    assert!(matches!(records.get(want.len()), Some(Record::End(_))));
    assert_eq!(records[..want.len()], want[..]);
});
