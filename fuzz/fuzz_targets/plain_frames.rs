//! Plain frames (`[N][N bytes]`) from arbitrary bytes, cut at arbitrary points: no panic, the
//! invariants of `unstick_fuzz::decode`, and the same transcript as the stream fed whole.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use unstick_core::{FrameDecoder, HeaderError};
use unstick_fuzz::{ProfileChoice, Record, decode, pieces};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    profile: ProfileChoice,
    cuts: Vec<u8>,
    stream: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let profile = input.profile.profile();

    let mut decoder = FrameDecoder::<0>::plain_frames(profile);
    let cut = decode(
        &mut decoder,
        &pieces(input.stream, &input.cuts),
        |d, info| {
            assert_eq!(info.header_len, 0);
            assert_eq!(d.header_json(), None);
            assert!(matches!(
                d.header::<serde::de::IgnoredAny>(),
                Err(HeaderError::NoHeader)
            ));
        },
    );

    let mut decoder = FrameDecoder::<0>::plain_frames(profile);
    let whole = decode(&mut decoder, &[input.stream], |_, _| {});
    assert_eq!(cut, whole, "cutting the input changed the outcome");

    // Plain frames declare no digest, so nothing can mismatch.
    assert!(
        !whole
            .iter()
            .any(|r| matches!(r, Record::Error(e) if e.is_recoverable()))
    );
});
