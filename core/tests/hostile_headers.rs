//! Hostile and malformed header JSON through the decoder: every case is a typed error (and a
//! poisoned decoder), never a panic, a stack overflow, or a silently wrong body length.

mod recording;

use recording::record_all;
use unstick_core::json::{JsonError, JsonProblem, MAX_DEPTH};
use unstick_core::{DecodeError, FrameDecoder, Profile};

fn frame(json: &[u8]) -> Vec<u8> {
    let mut out = (json.len() as i32).to_le_bytes().to_vec();
    out.extend_from_slice(json);
    out
}

/// Decodes one header frame; checks that an error poisons the decoder.
fn outcome<const CAP: usize>(
    decoder: &mut FrameDecoder<CAP>,
    json: &[u8],
) -> Result<u64, DecodeError> {
    match decoder.feed(&frame(json)) {
        Ok((used, unstick_core::Event::Head(info))) => {
            assert_eq!(used, 4 + json.len());
            Ok(info.body_len)
        }
        Ok(other) => panic!("{other:?}"),
        Err(e) => {
            assert_eq!(
                decoder.feed(b"\x02\x00\x00\x00{}"),
                Err(DecodeError::Poisoned)
            );
            assert_eq!(decoder.header_json(), None);
            Err(e)
        }
    }
}

fn problem(offset: usize, problem: JsonProblem) -> Result<u64, DecodeError> {
    Err(DecodeError::HeaderNotJson(JsonError { offset, problem }))
}

fn check_table(table: &[(&[u8], Result<u64, DecodeError>)]) {
    for (json, expected) in table {
        let mut decoder = FrameDecoder::<256>::header_frames(Profile::I32_LE);
        assert_eq!(
            outcome(&mut decoder, json),
            *expected,
            "{:?}",
            String::from_utf8_lossy(json)
        );
    }
}

/// `{"ignored":` + `open` x n + `close` x n + `,"total_size":1}`.
fn nested(open: &[u8], close: &[u8], n: usize) -> Vec<u8> {
    let mut json = b"{\"ignored\":".to_vec();
    for _ in 0..n {
        json.extend_from_slice(open);
    }
    json.push(b'0');
    for _ in 0..n {
        json.extend_from_slice(close);
    }
    json.extend_from_slice(b",\"total_size\":1}");
    json
}

#[test]
fn deep_nesting_is_a_typed_error_not_a_stack_overflow() {
    // 100,000 arrays deep in an ignored member, in a decoder large enough to buffer it all.
    const CAP: usize = 256 * 1024;
    let mut decoder = Box::new(FrameDecoder::<CAP>::header_frames(Profile::I32_LE));
    let json = nested(b"[", b"]", 100_000);
    assert!(json.len() < CAP);
    // The header object is level 1, so the 32nd '[' is one too many.
    let at = 11 + MAX_DEPTH - 1;
    assert_eq!(
        outcome(&mut decoder, &json),
        problem(at, JsonProblem::TooDeep)
    );

    // Objects nest the same way.
    let mut decoder = Box::new(FrameDecoder::<CAP>::header_frames(Profile::I32_LE));
    let json = nested(b"{\"a\":", b"}", 40_000);
    let at = 11 + 5 * (MAX_DEPTH - 1);
    assert_eq!(
        outcome(&mut decoder, &json),
        problem(at, JsonProblem::TooDeep)
    );

    // Exactly the limit is fine, and the members after it are still read.
    let mut decoder = FrameDecoder::<1024>::header_frames(Profile::I32_LE);
    assert_eq!(
        outcome(&mut decoder, &nested(b"[", b"]", MAX_DEPTH - 1)),
        Ok(1)
    );
    // Unclosed nesting to the end of the header is truncated, however deep.
    let mut decoder = FrameDecoder::<1024>::header_frames(Profile::I32_LE);
    assert_eq!(
        outcome(&mut decoder, b"{\"a\":[[[[[[[[[["),
        problem(15, JsonProblem::Truncated)
    );
}

#[test]
fn huge_numbers() {
    let forty = "1234567890123456789012345678901234567890";
    let forty_one = "12345678901234567890123456789012345678901";
    let ignored_40 = format!("{{\"n\":{forty},\"total_size\":2}}");
    let ignored_41 = format!("{{\"n\":{forty_one},\"total_size\":2}}");
    let exp_40 = format!("{{\"n\":1e{},\"total_size\":2}}", &forty[..38]);
    let size_40 = format!("{{\"total_size\":{forty}}}");
    check_table(&[
        // Up to 40 characters in an ignored member: fine.
        (ignored_40.as_bytes(), Ok(2)),
        (exp_40.as_bytes(), Ok(2)),
        (b"{\"n\":-1.5e-308,\"total_size\":2}", Ok(2)),
        // Longer: refused, pointing at the number.
        (
            ignored_41.as_bytes(),
            problem(5, JsonProblem::NumberTooLong),
        ),
        // A body length that does not fit in 64 bits.
        (
            size_40.as_bytes(),
            Err(DecodeError::BodyLengthInvalid {
                field: unstick_core::SizeField::TotalSize,
            }),
        ),
        (b"{\"n\":01}", problem(6, JsonProblem::InvalidNumber)),
        (b"{\"n\":1.}", problem(7, JsonProblem::InvalidNumber)),
        (b"{\"n\":.5}", problem(5, JsonProblem::UnexpectedByte)),
        (b"{\"n\":+1}", problem(5, JsonProblem::UnexpectedByte)),
        (b"{\"n\":0x10}", problem(6, JsonProblem::UnexpectedByte)),
        // What Python's json.dumps writes for float('nan') and float('inf'): not JSON.
        (b"{\"n\": NaN}", problem(6, JsonProblem::UnexpectedByte)),
        (
            b"{\"n\": Infinity}",
            problem(6, JsonProblem::UnexpectedByte),
        ),
        (
            b"{\"n\": -Infinity}",
            problem(7, JsonProblem::InvalidNumber),
        ),
    ]);
    // A number of a hundred thousand digits is refused without trouble.
    const CAP: usize = 128 * 1024;
    let mut decoder = Box::new(FrameDecoder::<CAP>::header_frames(Profile::I32_LE));
    let mut json = b"{\"n\":".to_vec();
    json.resize(5 + 100_000, b'7');
    json.push(b'}');
    assert_eq!(
        outcome(&mut decoder, &json),
        problem(5, JsonProblem::NumberTooLong)
    );
}

#[test]
fn invalid_utf8() {
    check_table(&[
        (b"{\"a\":\"\xff\"}", problem(6, JsonProblem::InvalidUtf8)),
        // A lone continuation byte, an overlong '/', a UTF-8-encoded surrogate, a cut-off
        // three-byte sequence (the first bytes of '新'), a code point above U+10FFFF.
        (b"{\"a\":\"\x80\"}", problem(6, JsonProblem::InvalidUtf8)),
        (
            b"{\"a\":\"\xc0\xaf\"}",
            problem(6, JsonProblem::InvalidUtf8),
        ),
        (
            b"{\"a\":\"\xed\xa0\xbd\"}",
            problem(6, JsonProblem::InvalidUtf8),
        ),
        (
            b"{\"a\":\"\xe6\x96\"}",
            problem(6, JsonProblem::InvalidUtf8),
        ),
        (
            b"{\"a\":\"\xf4\x90\x80\x80\"}",
            problem(6, JsonProblem::InvalidUtf8),
        ),
        // Invalid UTF-8 outside strings, in a key, and at the very end.
        (b"{\xe6\x96\xb0:1}", problem(1, JsonProblem::UnexpectedByte)),
        (b"{\"\xfe\":1}", problem(2, JsonProblem::InvalidUtf8)),
        (b"{}\xe6", problem(2, JsonProblem::InvalidUtf8)),
        // GBK, as a Windows peer might send: '新' is d0 c2.
        (
            b"{\"a\":\"\xd0\xc2\"}",
            problem(6, JsonProblem::InvalidUtf8),
        ),
        // Valid UTF-8 passes through.
        ("{\"a\":\"新建\",\"total_size\":3}".as_bytes(), Ok(3)),
    ]);
}

#[test]
fn trailing_bytes_and_other_framing_mistakes() {
    check_table(&[
        (b"{}x", problem(2, JsonProblem::TrailingBytes)),
        (b"{} {}", problem(3, JsonProblem::TrailingBytes)),
        (b"{}\x00", problem(2, JsonProblem::TrailingBytes)),
        (
            b"{\"total_size\":1}2",
            problem(16, JsonProblem::TrailingBytes),
        ),
        (b"{}  \r\n\t", Ok(0)),
        (b" \n{\"total_size\":4}", Ok(4)),
        (b"    ", problem(4, JsonProblem::Truncated)),
        (b"\"{}\"", problem(0, JsonProblem::NotAnObject)),
        (b"null", problem(0, JsonProblem::NotAnObject)),
        // Python's str(dict) instead of json.dumps(dict).
        (
            b"{'total_size': 1}",
            problem(1, JsonProblem::UnexpectedByte),
        ),
        (b"{\"a\":1,}", problem(7, JsonProblem::UnexpectedByte)),
        (b"{\"a\":[1,]}", problem(8, JsonProblem::UnexpectedByte)),
        (
            b"{\"a\":1 // note\n}",
            problem(7, JsonProblem::UnexpectedByte),
        ),
        (b"{\"a\"}", problem(4, JsonProblem::UnexpectedByte)),
        (b"{\"a\":}", problem(5, JsonProblem::UnexpectedByte)),
        (b"{\"a\":[}", problem(6, JsonProblem::UnexpectedByte)),
        (b"{\"a\":{]}", problem(6, JsonProblem::UnexpectedByte)),
        (b"{\"a\":\"x}", problem(8, JsonProblem::Truncated)),
        (
            b"{\"a\":\"x\ny\"}",
            problem(7, JsonProblem::ControlCharacter),
        ),
        (
            b"{\"a\":\"\x00\"}",
            problem(6, JsonProblem::ControlCharacter),
        ),
        (b"{\"a\":\"\\", problem(6, JsonProblem::Truncated)),
        (b"{\"a\":\"\\q\"}", problem(6, JsonProblem::InvalidEscape)),
        (
            b"{\"a\":\"\\u00zz\"}",
            problem(6, JsonProblem::InvalidEscape),
        ),
        (b"{\"a\":\"\\u00\"}", problem(6, JsonProblem::InvalidEscape)),
        (b"{\"a\":True}", problem(5, JsonProblem::UnexpectedByte)),
        (b"{\"a\":nul}", problem(5, JsonProblem::UnexpectedByte)),
    ]);
}

#[test]
fn lone_surrogates() {
    check_table(&[
        (
            b"{\"a\":\"\\ud83d\"}",
            problem(6, JsonProblem::LoneSurrogate),
        ),
        (
            b"{\"a\":\"\\ude00\"}",
            problem(6, JsonProblem::LoneSurrogate),
        ),
        (
            b"{\"a\":\"\\ud83dx\"}",
            problem(6, JsonProblem::LoneSurrogate),
        ),
        (
            b"{\"a\":\"\\ud83d\\u0041\"}",
            problem(6, JsonProblem::LoneSurrogate),
        ),
        // Two high halves, and a pair in the wrong order.
        (
            b"{\"a\":\"\\ud83d\\ud83d\"}",
            problem(6, JsonProblem::LoneSurrogate),
        ),
        (
            b"{\"a\":\"\\ude00\\ud83d\"}",
            problem(6, JsonProblem::LoneSurrogate),
        ),
        // At the very end of the header, and in a key.
        (b"{\"a\":\"\\ud83d", problem(6, JsonProblem::LoneSurrogate)),
        (b"{\"\\udfff\":1}", problem(2, JsonProblem::LoneSurrogate)),
        // A proper pair, upper-case hex, the highest code point.
        (b"{\"a\":\"\\uD83D\\uDE00\",\"total_size\":1}", Ok(1)),
        (b"{\"a\":\"\\udbff\\udfff\"}", Ok(0)),
    ]);
}

#[test]
fn duplicate_known_members() {
    check_table(&[
        (
            b"{\"total_size\":1,\"total_size\":1}",
            problem(16, JsonProblem::DuplicateField),
        ),
        (
            b"{\"filesize\":1,\"filesize\":2}",
            problem(14, JsonProblem::DuplicateField),
        ),
        (
            b"{\"md5\":null,\"md5\":\"x\"}",
            problem(12, JsonProblem::DuplicateField),
        ),
        (
            b"{\"xxh3\":null,\"xxh3\":null}",
            problem(13, JsonProblem::DuplicateField),
        ),
        // A duplicate spelled with an escape is the same member.
        (
            b"{\"total_size\":1,\"total\\u005fsize\":2}",
            problem(16, JsonProblem::DuplicateField),
        ),
        // A duplicate after a non-empty container value is still a duplicate.
        (
            b"{\"total_size\":{\"a\":1},\"total_size\":3}",
            problem(22, JsonProblem::DuplicateField),
        ),
        (
            b"{\"total_size\":[3],\"total_size\":3}",
            problem(18, JsonProblem::DuplicateField),
        ),
        // Unknown members may repeat; known names inside nested values do not count.
        (b"{\"a\":1,\"a\":2,\"total_size\":5}", Ok(5)),
        (
            b"{\"x\":{\"total_size\":9},\"y\":[{\"total_size\":8}],\"total_size\":5}",
            Ok(5),
        ),
    ]);
}

#[test]
fn random_garbage_never_panics() {
    // Every byte value at every position of a small valid header.
    let base = b"{\"md5\":\"x\",\"total_size\":[1,{\"a\":\"\\u00e9\"}],\"n\":-1.5e3}";
    for i in 0..base.len() {
        for b in 0..=255u8 {
            let mut json = base.to_vec();
            json[i] = b;
            let mut decoder = FrameDecoder::<64>::header_frames(Profile::I32_LE);
            let _ = record_all(&mut decoder, &frame(&json));
            let _ = decoder.header::<serde::de::IgnoredAny>();
        }
    }
}
