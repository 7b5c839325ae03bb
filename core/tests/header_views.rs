//! Typed views of a decoded header: `FrameDecoder::header` and `header_with_scratch`.

use serde::Deserialize;
use unstick_core::heapless::String;
use unstick_core::{Event, FrameDecoder, HeaderError, Profile};

/// Decodes the head of one header frame carrying `json`.
fn decoder_with<const CAP: usize>(json: &[u8]) -> FrameDecoder<CAP> {
    let mut wire = (json.len() as i32).to_le_bytes().to_vec();
    wire.extend_from_slice(json);
    let mut decoder = FrameDecoder::<CAP>::header_frames(Profile::I32_LE);
    let (used, event) = decoder.feed(&wire).unwrap();
    assert_eq!(used, wire.len());
    assert!(matches!(event, Event::Head(_)), "{event:?}");
    decoder
}

#[derive(Deserialize, Debug, PartialEq)]
struct Borrowed<'a> {
    name: &'a str,
    #[serde(default)]
    size: Option<u64>,
}

#[derive(Deserialize, Debug, PartialEq)]
struct Owned {
    name: String<32>,
}

#[test]
fn borrowed_str_fields_without_escapes() {
    let mut decoder = decoder_with::<128>(
        br#"{"size":3,"name":"report.pdf","extra":[1,{"deep":"\"q\""}],"total_size":0}"#,
    );
    let view: Borrowed<'_> = decoder.header().unwrap();
    assert_eq!(
        view,
        Borrowed {
            name: "report.pdf",
            size: Some(3)
        }
    );
    // Missing optional members are None; unknown members are ignored.
    let mut decoder = decoder_with::<64>(br#"{"name":"a","other":{"x":null}}"#);
    assert_eq!(decoder.header::<Borrowed<'_>>().unwrap().size, None);
    // Escapes of non-ASCII text are gone after normalising, so borrowing still works.
    let mut decoder = decoder_with::<64>(br#"{"name":"caf\u00e9 \ud83d\ude00 a\/b"}"#);
    assert_eq!(
        decoder.header::<Borrowed<'_>>().unwrap().name,
        "café 😀 a/b"
    );
}

#[test]
fn escapes_need_an_owned_field() {
    let json = br#"{"name":"say \"hi\"\\\n\t\u0001"}"#;
    let mut decoder = decoder_with::<128>(json);
    let owned: Owned = decoder.header().unwrap();
    assert_eq!(owned.name, "say \"hi\"\\\n\t\u{1}");
    // A borrowed &str cannot point at unescaped text: a typed error, not a wrong string.
    assert!(matches!(
        decoder.header::<Borrowed<'_>>(),
        Err(HeaderError::Shape(_))
    ));
}

#[test]
fn wrong_shapes_are_typed_errors() {
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Sized {
        size: u64,
    }
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Flag {
        flag: bool,
    }
    let mut decoder = decoder_with::<64>(br#"{"name":5}"#);
    let Err(HeaderError::Shape(shape)) = decoder.header::<Owned>() else {
        panic!("a number read as a string");
    };
    assert_eq!(shape.member(), Some("name"));
    let mut decoder = decoder_with::<64>(br#"{"other":"x"}"#);
    assert!(matches!(
        decoder.header::<Owned>(),
        Err(HeaderError::Shape(_))
    ));
    let mut decoder = decoder_with::<64>(br#"{"size":-1}"#);
    assert!(matches!(
        decoder.header::<Sized>(),
        Err(HeaderError::Shape(_))
    ));
    let mut decoder = decoder_with::<64>(br#"{"size":99999999999999999999}"#);
    assert!(matches!(
        decoder.header::<Sized>(),
        Err(HeaderError::Shape(_))
    ));
    let mut decoder = decoder_with::<64>(br#"{"size":1.5}"#);
    assert!(matches!(
        decoder.header::<Sized>(),
        Err(HeaderError::Shape(_))
    ));
    let mut decoder = decoder_with::<64>(br#"{"flag":"true"}"#);
    assert!(matches!(
        decoder.header::<Flag>(),
        Err(HeaderError::Shape(_))
    ));
    // A string too long for its heapless::String.
    let mut decoder = decoder_with::<128>(br#"{"name":"0123456789abcdef0123456789abcdef!"}"#);
    assert!(matches!(
        decoder.header::<Owned>(),
        Err(HeaderError::Shape(_))
    ));
    // Display says what to do, and where.
    let text = HeaderError::Shape(shape).to_string();
    assert!(text.contains("expected fields"), "{text}");
    assert!(
        text.contains("`name` has the wrong type (a number)"),
        "{text}"
    );
}

#[test]
fn unescaping_room_comes_from_spare_capacity_or_scratch() {
    // 24 bytes of header with a 5-byte escaped string; CAP 24 leaves no spare room.
    let json = br#"{"name":"a\"b\"c","x":1}"#;
    let mut decoder = decoder_with::<24>(json);
    assert_eq!(decoder.header_json().map(str::len), Some(json.len()));
    assert_eq!(decoder.header::<Owned>(), Err(HeaderError::ScratchTooSmall));
    let mut scratch = [0u8; 5];
    assert_eq!(
        decoder.header_with_scratch::<Owned>(&mut scratch[..4]),
        Err(HeaderError::ScratchTooSmall)
    );
    let owned: Owned = decoder.header_with_scratch(&mut scratch).unwrap();
    assert_eq!(owned.name, "a\"b\"c");
    // With five bytes to spare the decoder's own capacity is enough.
    let mut decoder = decoder_with::<29>(json);
    assert_eq!(decoder.header::<Owned>().unwrap().name, "a\"b\"c");
    // Members the view ignores are stepped over, not unescaped: they need no room.
    let mut decoder = decoder_with::<26>(br#"{"name":"ok","i":"\"\"\""}"#);
    assert_eq!(decoder.header::<Owned>().unwrap().name, "ok");
    assert!(
        HeaderError::ScratchTooSmall
            .to_string()
            .contains("scratch buffer")
    );
}

#[test]
fn tiny_capacities() {
    #[derive(Deserialize, Debug, PartialEq)]
    struct Nothing {}
    // The smallest header, in the smallest decoder that can hold it.
    let mut decoder = decoder_with::<2>(b"{}");
    assert_eq!(decoder.header::<Nothing>(), Ok(Nothing {}));
    assert_eq!(decoder.header_json(), Some("{}"));
    assert!(matches!(
        decoder.header::<Owned>(),
        Err(HeaderError::Shape(_))
    ));
    let mut scratch = [];
    assert_eq!(
        decoder.header_with_scratch::<Nothing>(&mut scratch),
        Ok(Nothing {})
    );
    // A header that shrinks when normalised leaves room even at full capacity.
    let json = br#"{"name":"\u0041\u0041\""}"#;
    let mut decoder = decoder_with::<25>(json);
    assert_eq!(decoder.header_json(), Some(r#"{"name":"AA\""}"#));
    assert_eq!(decoder.header::<Owned>().unwrap().name, "AA\"");
}

#[test]
fn no_header_for_plain_frames_or_before_one() {
    let mut decoder = FrameDecoder::<64>::plain_frames(Profile::I32_LE);
    assert_eq!(decoder.header::<Owned>(), Err(HeaderError::NoHeader));
    decoder.feed(b"\x02\x00\x00\x00{}").unwrap();
    assert_eq!(decoder.header::<Owned>(), Err(HeaderError::NoHeader));
    assert_eq!(
        decoder.header_with_scratch::<Owned>(&mut [0; 8]),
        Err(HeaderError::NoHeader)
    );
    assert!(HeaderError::NoHeader.to_string().contains("no JSON header"));
}
