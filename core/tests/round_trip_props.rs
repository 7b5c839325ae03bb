//! Property tests: whatever the header members, body, profile and checksum, frames written by
//! `HeaderFrameEncoder` (and plain frames) come back out of `FrameDecoder` exactly, however the
//! bytes are split on the way, one byte at a time included, and frames sent back to back
//! separate exactly.

mod recording;

use std::fmt;

use proptest::prelude::*;
use recording::{Frame, Recorded, frames, record};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use unstick_core::{
    Algorithm, ByteOrder, Digests, FrameDecoder, HeaderFrameEncoder, PrefixWidth, Profile, Verdict,
    digest_of, encode_plain_frame,
};

const PROFILES: [Profile; 6] = [
    Profile::new(PrefixWidth::Two, ByteOrder::Little),
    Profile::new(PrefixWidth::Two, ByteOrder::Big),
    Profile::new(PrefixWidth::Four, ByteOrder::Little),
    Profile::new(PrefixWidth::Four, ByteOrder::Big),
    Profile::new(PrefixWidth::Eight, ByteOrder::Little),
    Profile::new(PrefixWidth::Eight, ByteOrder::Big),
];

/// A header member value the tests generate.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Text(String),
    Int(i64),
    Flag(bool),
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Text(t) => s.serialize_str(t),
            Value::Int(n) => s.serialize_i64(*n),
            Value::Flag(b) => s.serialize_bool(*b),
        }
    }
}

/// Header members in order (names may repeat), written as one JSON object.
#[derive(Clone, Debug)]
struct Members(Vec<(String, Value)>);

impl Serialize for Members {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name.as_str(), value)?;
        }
        map.end()
    }
}

/// A string read through a typed view (`visit_str`, so escapes are decoded).
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
        }
        d.deserialize_str(V)
    }
}

/// What the decoder's typed view reads back: the members in order, each read with the type
/// it was written with, then the encoder's own members.
#[derive(Debug, PartialEq)]
struct ReadBack {
    members: Vec<(String, Value)>,
    added: Vec<String>,
}

std::thread_local! {
    /// The members the current test case wrote, so that `ReadBack` knows their types.
    static EXPECTED: std::cell::RefCell<Vec<(String, Value)>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl<'de> Deserialize<'de> for ReadBack {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let expected = EXPECTED.with(|e| e.borrow().clone());
        d.deserialize_map(Expecting(&expected))
    }
}

struct Expecting<'a>(&'a [(String, Value)]);

impl<'de> Visitor<'de> for Expecting<'_> {
    type Value = ReadBack;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the generated members")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ReadBack, A::Error> {
        let mut members = Vec::new();
        for (_, written) in self.0 {
            let Some(Text(name)) = map.next_key::<Text>()? else {
                break;
            };
            let value = match written {
                Value::Text(_) => Value::Text(map.next_value::<Text>()?.0),
                Value::Int(_) => Value::Int(map.next_value::<i64>()?),
                Value::Flag(_) => Value::Flag(map.next_value::<bool>()?),
            };
            members.push((name, value));
        }
        let mut added = Vec::new();
        while let Some(Text(name)) = map.next_key::<Text>()? {
            map.next_value::<de::IgnoredAny>()?;
            added.push(name);
        }
        Ok(ReadBack { members, added })
    }
}

/// Characters that JSON escapes, that Python escapes, that are several UTF-8 bytes long, and
/// anything else.
fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::char::range('a', 'z'),
        2 => prop::sample::select(vec![
            '"', '\\', '/', '\n', '\r', '\t', '\u{8}', '\u{c}', '\u{0}', '\u{1}', '\u{1f}',
            '\u{7f}', ' ', '{', '}', '[', ']', ':', ',',
        ]),
        2 => prop::sample::select(vec![
            'é', '新', '建', '文', '件', '夹', '😀', '\u{2028}', '\u{fffd}', '\u{ffff}',
            '\u{10000}', '\u{10ffff}',
        ]),
        1 => any::<char>(),
    ]
}

fn any_text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any_char(), 0..max).prop_map(|c| c.into_iter().collect())
}

fn any_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => any_text(16).prop_map(Value::Text),
        2 => any::<i64>().prop_map(Value::Int),
        1 => any::<bool>().prop_map(Value::Flag),
    ]
}

fn any_members() -> impl Strategy<Value = Members> {
    let reserved = ["total_size", "filesize", "md5", "xxh3"];
    let name = any_text(12).prop_filter("the encoder writes these itself", move |n| {
        !reserved.contains(&n.as_str())
    });
    prop::collection::vec((name, any_value()), 0..6).prop_map(Members)
}

fn any_checksum() -> impl Strategy<Value = Option<Algorithm>> {
    prop::sample::select(vec![None, Some(Algorithm::Md5), Some(Algorithm::Xxh3)])
}

fn any_body() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..300)
}

/// Cut points into an input of `len` bytes (unsorted, may repeat; any value is clamped).
fn any_cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(any::<usize>(), 0..12)
}

/// `input` in pieces cut at `cuts` (taken modulo the length).
fn pieces<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    at.push(0);
    at.push(input.len());
    at.sort_unstable();
    at.windows(2).map(|w| &input[w[0]..w[1]]).collect()
}

/// Decodes `pieces` in order, then asks for any event still pending.
fn decode_pieces<const CAP: usize>(
    decoder: &mut FrameDecoder<CAP>,
    pieces: &[&[u8]],
) -> Vec<Recorded> {
    let mut log = Vec::new();
    for piece in pieces {
        record(decoder, piece, &mut log).unwrap();
    }
    record(decoder, &[], &mut log).unwrap();
    assert!(decoder.is_at_boundary());
    assert_eq!(decoder.check_eof(), Ok(()));
    log
}

type Spec = (Members, Vec<u8>, Option<Algorithm>);

fn encode_all(profile: Profile, specs: &[Spec]) -> Vec<u8> {
    let mut wire = Vec::new();
    for (members, body, checksum) in specs {
        let encoder = HeaderFrameEncoder::new(profile).checksum(*checksum);
        let mut out = vec![0u8; 8 + 4096 + body.len()];
        let n = encoder.encode_frame(members, body, &mut out).unwrap();
        wire.extend_from_slice(&out[..n]);
    }
    wire
}

/// Checks decoded frames against what was sent.
fn check_frames(specs: &[Spec], got: &[Frame]) {
    assert_eq!(got.len(), specs.len());
    for ((_, body, checksum), frame) in specs.iter().zip(got) {
        assert_eq!(&frame.body, body);
        assert_eq!(frame.info.body_len, body.len() as u64);
        let (md5, xxh3) = match checksum {
            None => (Verdict::Absent, Verdict::Absent),
            Some(Algorithm::Md5) if Algorithm::Md5.is_supported() => {
                (Verdict::Verified, Verdict::Absent)
            }
            Some(Algorithm::Xxh3) => (Verdict::Absent, Verdict::Verified),
            Some(Algorithm::Md5) => unreachable!("not generated without the feature"),
        };
        assert_eq!((frame.end.md5, frame.end.xxh3), (md5, xxh3));
        // What the decoder kept of the frame: the declared digest and the body's, the same, and
        // nothing of an earlier frame (no digest is computed unless declared).
        let expected = match checksum {
            Some(algorithm) => digest_of(unstick_core::Algorithms::only(*algorithm), body),
            None => Digests::default(),
        };
        assert_eq!((frame.declared, frame.computed), (expected, expected));
    }
}

fn supported(checksum: Option<Algorithm>) -> Option<Algorithm> {
    checksum.filter(|a| a.is_supported())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// One frame, random members and body, random profile and checksum, random cuts; the typed
    /// view reads every member back with its exact text.
    #[test]
    fn header_frame_round_trips_under_any_split(
        members in any_members(),
        body in any_body(),
        checksum in any_checksum(),
        profile in prop::sample::select(PROFILES.to_vec()),
        cuts in any_cuts(),
    ) {
        let specs = [(members.clone(), body, supported(checksum))];
        let wire = encode_all(profile, &specs);
        let mut decoder = FrameDecoder::<4096>::header_frames(profile);
        let log = decode_pieces(&mut decoder, &pieces(&wire, &cuts));
        check_frames(&specs, &frames(&log));

        // Read back through the decoder's typed views, with the expected member types.
        EXPECTED.with(|e| *e.borrow_mut() = members.0.clone());
        let mut added = vec!["total_size".to_owned()];
        if let Some(algorithm) = supported(checksum) {
            added.push(algorithm.member().to_owned());
        }
        let mut scratch = [0u8; 4096];
        let read = decoder.header_with_scratch::<ReadBack>(&mut scratch).unwrap();
        prop_assert_eq!(&read.members, &members.0);
        prop_assert_eq!(&read.added, &added);
        let read = decoder.header::<ReadBack>().unwrap();
        prop_assert_eq!(&read.members, &members.0);
        prop_assert_eq!(&read.added, &added);
    }

    /// The same frame fed one byte at a time.
    #[test]
    fn header_frame_round_trips_one_byte_at_a_time(
        members in any_members(),
        body in prop::collection::vec(any::<u8>(), 0..64),
        checksum in any_checksum(),
        profile in prop::sample::select(PROFILES.to_vec()),
    ) {
        let specs = [(members, body, supported(checksum))];
        let wire = encode_all(profile, &specs);
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        let mut decoder = FrameDecoder::<4096>::header_frames(profile);
        check_frames(&specs, &frames(&decode_pieces(&mut decoder, &bytes)));
    }

    /// Several frames back to back in one buffer, cut anywhere.
    #[test]
    fn back_to_back_header_frames_separate_exactly(
        specs in prop::collection::vec((any_members(), any_body(), any_checksum()), 1..5),
        profile in prop::sample::select(PROFILES.to_vec()),
        cuts in any_cuts(),
    ) {
        let specs: Vec<Spec> = specs.into_iter().map(|(m, b, c)| (m, b, supported(c))).collect();
        let wire = encode_all(profile, &specs);
        let mut decoder = FrameDecoder::<4096>::header_frames(profile);
        check_frames(&specs, &frames(&decode_pieces(&mut decoder, &pieces(&wire, &cuts))));
    }

    /// Plain frames in every profile, back to back, cut anywhere.
    #[test]
    fn plain_frames_round_trip(
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..6),
        profile in prop::sample::select(PROFILES.to_vec()),
        cuts in any_cuts(),
        one_byte_at_a_time in any::<bool>(),
    ) {
        let mut wire = Vec::new();
        for body in &bodies {
            let mut out = vec![0u8; 8 + body.len()];
            let n = encode_plain_frame(&profile, body, &mut out).unwrap();
            wire.extend_from_slice(&out[..n]);
        }
        let parts = if one_byte_at_a_time { wire.chunks(1).collect() } else { pieces(&wire, &cuts) };
        let mut decoder = FrameDecoder::<0>::plain_frames(profile);
        let got: Vec<Vec<u8>> = frames(&decode_pieces(&mut decoder, &parts)).into_iter().map(|f| f.body).collect();
        prop_assert_eq!(got, bodies);
    }

    /// Arbitrary bytes never make the decoder panic, and it never claims more than it got.
    #[test]
    fn arbitrary_bytes_are_decoded_or_refused(
        bytes in prop::collection::vec(any::<u8>(), 0..400),
        cuts in any_cuts(),
        profile in prop::sample::select(PROFILES.to_vec()),
    ) {
        let mut header = FrameDecoder::<256>::header_frames(profile);
        let mut plain = FrameDecoder::<0>::plain_frames(profile);
        for piece in pieces(&bytes, &cuts) {
            let mut log = Vec::new();
            let _ = record(&mut header, piece, &mut log);
            let _ = header.header::<de::IgnoredAny>();
            let _ = record(&mut plain, piece, &mut log);
        }
        let _ = header.check_eof();
        let _ = plain.check_eof();
    }
}

/// The seed's second case: "hello" and "world" sent quickly arrive as one read. As header
/// frames, cut at every pair of points (one byte at a time included), they come apart exactly.
#[test]
fn hello_and_world_separate_at_every_cut() {
    #[derive(Serialize)]
    struct Reply<'a> {
        file_name: &'a str,
    }
    let encoder = HeaderFrameEncoder::default();
    let mut wire = vec![0u8; 256];
    let a = encoder
        .encode_frame(&Reply { file_name: "1.txt" }, b"hello", &mut wire)
        .unwrap();
    let b = encoder
        .encode_frame(&Reply { file_name: "2.txt" }, b"world", &mut wire[a..])
        .unwrap();
    wire.truncate(a + b);
    for i in 0..=wire.len() {
        for j in i..=wire.len() {
            let parts = [&wire[..i], &wire[i..j], &wire[j..]];
            let mut decoder = FrameDecoder::<128>::header_frames(Profile::I32_LE);
            let got = frames(&decode_pieces(&mut decoder, &parts));
            let bodies: Vec<&[u8]> = got.iter().map(|f| f.body.as_slice()).collect();
            assert_eq!(bodies, [&b"hello"[..], b"world"], "cut at {i} and {j}");
        }
    }
    let bytes: Vec<&[u8]> = wire.chunks(1).collect();
    let mut decoder = FrameDecoder::<128>::header_frames(Profile::I32_LE);
    assert_eq!(frames(&decode_pieces(&mut decoder, &bytes)).len(), 2);
}
