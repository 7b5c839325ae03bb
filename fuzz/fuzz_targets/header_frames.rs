//! Header frames from arbitrary bytes, cut at arbitrary points: no panic, the invariants of
//! `unstick_fuzz::decode`, and the same transcript as the stream fed whole. Every head's header
//! is also read through typed views and as JSON text.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use unstick_core::{FrameDecoder, FrameInfo};
use unstick_fuzz::{ProfileChoice, decode, pieces};

const CAP: usize = 512;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    profile: ProfileChoice,
    cuts: Vec<u8>,
    stream: &'a [u8],
}

/// A header type with many shapes of field, all optional, as applications write them.
#[derive(Deserialize, Debug)]
#[allow(dead_code)]
struct AppHeader<'a> {
    file_name: Option<&'a str>,
    filename: Option<heapless::String<32>>,
    filepath: Option<heapless::String<128>>,
    total_size: Option<u64>,
    filesize: Option<u64>,
    md5: Option<heapless::String<40>>,
    cmd: Option<&'a str>,
    code: Option<i32>,
    ratio: Option<f32>,
    ok: Option<bool>,
    list: Option<heapless::Vec<u32, 8>>,
    nested: Option<Nested>,
}

#[derive(Deserialize, Debug)]
#[allow(dead_code)]
struct Nested {
    a: Option<i64>,
    b: Option<heapless::Vec<heapless::String<8>, 4>>,
}

/// A header type with a required field.
#[derive(Deserialize, Debug)]
#[allow(dead_code)]
struct Required {
    filename: heapless::String<64>,
}

fn read_views(decoder: &mut FrameDecoder<CAP>, info: &FrameInfo) {
    let text = decoder
        .header_json()
        .expect("a header frame head has JSON text");
    let object = text.trim_matches([' ', '\t', '\n', '\r']);
    assert!(object.starts_with('{') && object.ends_with('}'), "{text:?}");
    assert!(text.len() <= info.header_len, "normalising grew the header");
    if let Ok(h) = decoder.header::<AppHeader<'_>>() {
        // The core read the body length from the same members.
        if let Some(n) = h.total_size.or(h.filesize) {
            assert_eq!(n, info.body_len);
        }
    }
    let _ = decoder.header::<Required>();
    let _ = decoder.header::<serde::de::IgnoredAny>();
    let mut small = [0u8; 7];
    let _ = decoder.header_with_scratch::<AppHeader<'_>>(&mut small);
}

fuzz_target!(|input: Input<'_>| {
    let profile = input.profile.profile();

    let mut decoder = FrameDecoder::<CAP>::header_frames(profile);
    let cut = decode(&mut decoder, &pieces(input.stream, &input.cuts), read_views);

    let mut decoder = FrameDecoder::<CAP>::header_frames(profile);
    let whole = decode(&mut decoder, &[input.stream], |_, _| {});
    assert_eq!(cut, whole, "cutting the input changed the outcome");
});
