//! The ABI's functions called as C calls them: raw pointers, the caller's memory, out-parameters.

extern crate std;

use core::ffi::{CStr, c_void};
use core::ptr;
use std::vec::Vec;

use crate::decoder::*;
use crate::encoder::*;
use crate::profile::*;
use crate::status::*;

/// Memory for a decoder, aligned more than any target needs, with `offset` bytes skipped.
#[repr(C, align(64))]
struct Storage([u8; UNSTICK_DECODER_STORAGE_SIZE + 64]);

fn storage() -> std::boxed::Box<Storage> {
    std::boxed::Box::new(Storage([0xa5; UNSTICK_DECODER_STORAGE_SIZE + 64]))
}

fn init(mem: *mut u8, len: usize, format: UnstickFormat) -> (UnstickStatus, *mut UnstickDecoder) {
    let profile = unstick_profile_seed();
    let mut decoder = ptr::null_mut();
    // SAFETY: `mem` is valid for `len` bytes (every caller's storage); the rest are locals.
    let status = unsafe { unstick_decoder_init(mem.cast(), len, &profile, format, &mut decoder) };
    (status, decoder)
}

/// Encodes a header frame with the seed's profile.
fn header_frame(json: &str, body: &[u8], digest: UnstickDigest) -> Result<Vec<u8>, UnstickStatus> {
    let mut out = std::vec![0u8; json.len() + body.len() + 100];
    let mut len = usize::MAX;
    // SAFETY: every pointer is a live local or `out`, with its length.
    let status = unsafe {
        unstick_encode_header_frame(
            &unstick_profile_seed(),
            json.as_ptr().cast(),
            json.len(),
            body.as_ptr(),
            body.len(),
            digest,
            out.as_mut_ptr(),
            out.len(),
            &mut len,
        )
    };
    match status {
        UnstickStatus::Ok => Ok(out[..len].to_vec()),
        e => Err(e),
    }
}

/// An event no call has written.
const NO_EVENT_YET: UnstickEvent = UnstickEvent {
    kind: UnstickEventKind::None,
    data: ptr::null(),
    len: usize::MAX,
    body_len: u64::MAX,
    md5: UnstickVerdict::Absent,
    xxh3: UnstickVerdict::Absent,
};

/// `unstick_decoder_check_eof` of a decoder `init` made.
fn check_eof(decoder: *const UnstickDecoder) -> UnstickStatus {
    // SAFETY: every caller's decoder was initialised in storage that is still alive.
    unsafe { unstick_decoder_check_eof(decoder) }
}

/// What a C receive loop would record of one event (or error status).
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Head(std::string::String, u64),
    Body(Vec<u8>),
    End(u64, UnstickVerdict, UnstickVerdict),
    Failed(UnstickStatus),
}

/// Feeds `wire` in pieces of `piece` bytes, as a C loop would, merging adjacent body chunks.
fn decode_in_pieces(decoder: *mut UnstickDecoder, wire: &[u8], piece: usize) -> Vec<Seen> {
    let mut seen = Vec::new();
    for chunk in wire.chunks(piece).chain([&[][..]]) {
        let mut input = chunk;
        loop {
            let mut consumed = usize::MAX;
            let mut event = NO_EVENT_YET;
            // SAFETY: the decoder was initialised in live storage; the rest are locals.
            let status = unsafe {
                unstick_decoder_feed(
                    decoder,
                    input.as_ptr(),
                    input.len(),
                    &mut consumed,
                    &mut event,
                )
            };
            assert!(consumed <= input.len());
            input = &input[consumed..];
            if status != UnstickStatus::Ok {
                assert_eq!(event.kind, UnstickEventKind::None);
                seen.push(Seen::Failed(status));
                match status {
                    UnstickStatus::DecodeMd5Mismatch | UnstickStatus::DecodeXxh3Mismatch => {
                        continue;
                    }
                    // The stream is out of sync: a C program closes the connection here.
                    _ => return seen,
                }
            }
            let data = || match event.len {
                0 => Vec::new(), // `data` may then be null
                // SAFETY: the decoder promises `len` bytes at `data` for HEAD and BODY events.
                len => unsafe { core::slice::from_raw_parts(event.data, len) }.to_vec(),
            };
            match event.kind {
                UnstickEventKind::NeedMore => break,
                UnstickEventKind::Head => seen.push(Seen::Head(
                    std::string::String::from_utf8(data()).unwrap(),
                    event.body_len,
                )),
                UnstickEventKind::Body => match seen.last_mut() {
                    Some(Seen::Body(body)) => body.extend(data()),
                    _ => seen.push(Seen::Body(data())),
                },
                UnstickEventKind::End => {
                    seen.push(Seen::End(event.body_len, event.md5, event.xxh3))
                }
                UnstickEventKind::None => panic!("no event with status OK"),
            }
        }
    }
    seen
}

#[test]
fn too_little_memory_is_an_error_and_any_alignment_is_taken() {
    let mut mem = storage();
    let base = mem.0.as_mut_ptr();
    let size = unstick_decoder_size();
    let align = unstick_decoder_align();
    assert!(size + align - 1 <= UNSTICK_DECODER_STORAGE_SIZE);
    // (offset into the aligned storage, length, expected)
    let table = [
        (0, size, UnstickStatus::Ok),
        (0, size - 1, UnstickStatus::ArgMemoryTooSmall),
        (0, 0, UnstickStatus::ArgMemoryTooSmall),
        (1, size, UnstickStatus::ArgMemoryTooSmall),
        (1, size + align - 1, UnstickStatus::Ok),
        (3, UNSTICK_DECODER_STORAGE_SIZE, UnstickStatus::Ok),
    ];
    for (offset, len, expected) in table {
        // SAFETY: `offset + len` is within the storage.
        let (status, decoder) = init(unsafe { base.add(offset) }, len, UNSTICK_FORMAT_HEADER);
        assert_eq!(status, expected, "offset {offset}, {len} bytes");
        if expected == UnstickStatus::Ok {
            assert_eq!(decoder as usize % align, 0);
            assert!(decoder as usize + size <= base as usize + offset + len);
        } else {
            assert!(decoder.is_null(), "nothing is written on an error");
        }
    }
}

#[test]
fn null_pointers_and_bad_arguments_are_errors() {
    let mut mem = storage();
    let (m, m_len) = (mem.0.as_mut_ptr().cast::<c_void>(), mem.0.len());
    let seed = unstick_profile_seed();
    let p = &seed as *const UnstickProfile;
    let mut decoder: *mut UnstickDecoder = ptr::null_mut();
    let d = &mut decoder as *mut *mut UnstickDecoder;
    let (mut consumed, mut event) = (7usize, NO_EVENT_YET);
    let (c, e) = (&mut consumed as *mut usize, &mut event as *mut UnstickEvent);
    let byte = [0u8];
    let i = byte.as_ptr();
    let json = c"{}";
    let j = json.as_ptr();
    let mut out = [0u8; 64];
    let o = out.as_mut_ptr();
    let mut out_len = 0usize;
    let l = &mut out_len as *mut usize;
    let (np, nm, nd, nj, ni, nl) = (
        ptr::null(),
        ptr::null_mut(),
        ptr::null_mut(),
        ptr::null(),
        ptr::null(),
        ptr::null_mut(),
    );
    let (null, ok) = (UnstickStatus::ArgNullPointer, UnstickStatus::Ok);
    // SAFETY: every pointer is null or a live local with its length (for `feed`, `len` 1).
    let init = |m, p, f, d| unsafe { unstick_decoder_init(m, m_len, p, f, d) };
    // SAFETY: as above; `out` has 64 bytes.
    let header = |p, j, b, n, digest, o, l| unsafe {
        unstick_encode_header_frame(p, j, 2, b, n, digest, o, 64, l)
    };
    // SAFETY: as above.
    let plain = |p, b, n, o, l| unsafe { unstick_encode_plain_frame(p, b, n, o, 64, l) };
    let table = [
        ("init: mem", init(nm, p, 0, d), null),
        ("init: profile", init(m, np, 0, d), null),
        ("init: decoder", init(m, p, 0, nd), null),
        (
            "init: width 3",
            init(
                m,
                &UnstickProfile {
                    prefix_width: 3,
                    ..seed
                },
                0,
                d,
            ),
            UnstickStatus::ArgProfileInvalid,
        ),
        (
            "init: order 2",
            init(
                m,
                &UnstickProfile {
                    byte_order: 2,
                    ..seed
                },
                0,
                d,
            ),
            UnstickStatus::ArgProfileInvalid,
        ),
        (
            "init: format 2",
            init(m, p, 2, d),
            UnstickStatus::ArgFormatInvalid,
        ),
        ("header: profile", header(np, j, ni, 0, 0, o, l), null),
        ("header: json", header(p, nj, ni, 0, 0, o, l), null),
        ("header: body of 1 byte", header(p, j, ni, 1, 0, o, l), null),
        ("header: out", header(p, j, ni, 0, 0, nm.cast(), l), null),
        ("header: out_len", header(p, j, ni, 0, 0, o, nl), null),
        (
            "header: digest 3",
            header(p, j, ni, 0, 3, o, l),
            UnstickStatus::ArgDigestInvalid,
        ),
        ("plain: profile", plain(np, ni, 0, o, l), null),
        ("plain: body of 2 bytes", plain(p, ni, 2, o, l), null),
        ("plain: out_len", plain(p, ni, 0, o, nl), null),
    ];
    for (call, status, expected) in table {
        assert_eq!(status, expected, "{call}");
    }
    assert!(
        decoder.is_null() && out_len == 0,
        "nothing is written on an error"
    );

    assert_eq!(init(m, p, UNSTICK_FORMAT_HEADER, d), ok);
    // SAFETY: the decoder was just initialised; the rest as above.
    let feed = |d, i, n, c, e| unsafe { unstick_decoder_feed(d, i, n, c, e) };
    let huge = isize::MAX as usize + 1;
    // SAFETY: the decoder is null or the one just initialised.
    let reset = |d| unsafe { unstick_decoder_reset(d) };
    let table = [
        ("feed: decoder", feed(ptr::null_mut(), i, 1, c, e), null),
        ("feed: input", feed(decoder, ni, 1, c, e), null),
        ("feed: consumed", feed(decoder, i, 1, nl, e), null),
        ("feed: event", feed(decoder, i, 1, c, nm.cast()), null),
        (
            "feed: length",
            feed(decoder, i, huge, c, e),
            UnstickStatus::ArgLengthInvalid,
        ),
        ("reset", reset(ptr::null_mut()), null),
        ("check_eof", check_eof(ptr::null()), null),
    ];
    for (call, status, expected) in table {
        assert_eq!(status, expected, "{call}");
    }
    assert_eq!((consumed, event), (7, NO_EVENT_YET), "nothing is written");
    // Empty input may be null: the decoder needs more.
    assert_eq!(feed(decoder, ni, 0, c, e), ok);
    assert_eq!((consumed, event.kind), (0, UnstickEventKind::NeedMore));

    // No output buffer at all is a buffer too small, not a null pointer.
    // SAFETY: as above, with no output buffer.
    let status = unsafe { unstick_encode_header_frame(p, j, 2, ni, 0, 0, nm.cast(), 0, l) };
    assert_eq!(status, UnstickStatus::EncodeBufferTooSmall);
    assert_eq!(header(p, j, ni, 0, 0, o, l), ok);
    assert_eq!(&out[..out_len], b"\x10\0\0\0{\"total_size\":0}");
    assert_eq!(plain(p, b"hi".as_ptr(), 2, o, l), ok);
    assert_eq!(&out[..out_len], b"\x02\0\0\0hi");
}

#[test]
fn encoded_frames_decode_in_any_pieces() {
    let md5_placeholder = br#"{"md5": "fdsaf2143254f", "file_name": "f1.txt", "total_size": 5}"#;
    let mut seed_reply = (md5_placeholder.len() as i32).to_le_bytes().to_vec();
    seed_reply.extend_from_slice(md5_placeholder);
    seed_reply.extend_from_slice(b"hello");
    let md5 = header_frame(r#" {"file_name": "a.txt"} "#, b"hello", UNSTICK_DIGEST_MD5).unwrap();
    let xxh3 = header_frame(r#"{"n":"\u00e9"}"#, b"world!", UNSTICK_DIGEST_XXH3).unwrap();
    let empty = header_frame("{}", b"", UNSTICK_DIGEST_NONE).unwrap();
    // The md5 frame with its body's last byte changed: consumed whole, then the next frame.
    let mut corrupt = md5.clone();
    *corrupt.last_mut().unwrap() ^= 1;
    let wire = [&md5[..], &xxh3, &seed_reply, &corrupt, &empty].concat();
    let (v, nd, a) = (
        UnstickVerdict::Verified,
        UnstickVerdict::NotADigest,
        UnstickVerdict::Absent,
    );
    let expected = [
        Seen::Head(
            r#"{"file_name": "a.txt","total_size":5,"md5":"5d41402abc4b2a76b9719d911017c592"}"#
                .into(),
            5,
        ),
        Seen::Body(b"hello".to_vec()),
        Seen::End(5, v, a),
        Seen::Head(
            r#"{"n":"é","total_size":6,"xxh3":"33d167de115ccfee02f61c0c874c21a6"}"#.into(),
            6,
        ),
        Seen::Body(b"world!".to_vec()),
        Seen::End(6, a, v),
        Seen::Head(std::str::from_utf8(md5_placeholder).unwrap().into(), 5),
        Seen::Body(b"hello".to_vec()),
        Seen::End(5, nd, a),
        Seen::Head(
            r#"{"file_name": "a.txt","total_size":5,"md5":"5d41402abc4b2a76b9719d911017c592"}"#
                .into(),
            5,
        ),
        Seen::Body(b"helln".to_vec()),
        Seen::Failed(UnstickStatus::DecodeMd5Mismatch),
        Seen::Head(r#"{"total_size":0}"#.into(), 0),
        Seen::End(0, a, a),
    ];
    let mut mem = storage();
    for piece in [1, 2, 3, 5, 7, 64, wire.len()] {
        let (status, decoder) = init(mem.0.as_mut_ptr(), mem.0.len(), UNSTICK_FORMAT_HEADER);
        assert_eq!(status, UnstickStatus::Ok);
        let seen = decode_in_pieces(decoder, &wire, piece);
        assert_eq!(seen[..3], expected[..3], "{piece}-byte pieces");
        if cfg!(feature = "xxh3") {
            assert_eq!(seen, expected, "{piece}-byte pieces");
        }
        assert_eq!(check_eof(decoder), UnstickStatus::Ok);
    }
}

#[test]
fn stream_errors_poison_until_reset_and_plain_frames_decode() {
    let mut mem = storage();
    let (_, decoder) = init(mem.0.as_mut_ptr(), mem.0.len(), UNSTICK_FORMAT_HEADER);
    let negative = [0xff, 0xff, 0xff, 0xff, b'{'];
    assert_eq!(
        decode_in_pieces(decoder, &negative, 5),
        [Seen::Failed(UnstickStatus::DecodeNegativeLength)]
    );
    assert_eq!(
        decode_in_pieces(decoder, b"{}", 2),
        [Seen::Failed(UnstickStatus::DecodePoisoned)]
    );
    // SAFETY: initialised above, in live storage.
    assert_eq!(unsafe { unstick_decoder_reset(decoder) }, UnstickStatus::Ok);
    assert_eq!(decode_in_pieces(decoder, b"\x02\0\0\0{}\x03", 7).len(), 2);
    assert_eq!(check_eof(decoder), UnstickStatus::DecodeUnexpectedEof);

    let (_, plain) = init(mem.0.as_mut_ptr(), mem.0.len(), UNSTICK_FORMAT_PLAIN);
    assert_eq!(
        decode_in_pieces(plain, b"\x02\0\0\0hi\0\0\0\0", 3),
        [
            Seen::Head(std::string::String::new(), 2),
            Seen::Body(b"hi".to_vec()),
            Seen::End(2, UnstickVerdict::Absent, UnstickVerdict::Absent),
            Seen::Head(std::string::String::new(), 0),
            Seen::End(0, UnstickVerdict::Absent, UnstickVerdict::Absent),
        ]
    );
}

#[test]
fn status_names_are_the_header_constants() {
    let header = include_str!("../include/unstick.h");
    for code in -1..64 {
        let name = unsafe_c_str(unstick_status_name(code));
        let message = unsafe_c_str(unstick_status_message(code));
        match UnstickStatus::from_code(code) {
            Some(status) => {
                assert_eq!(status as i32, code);
                let constant = std::format!("{name} = {code},");
                assert!(header.contains(&constant), "{constant} is not in unstick.h");
                assert!(!message.is_empty() && message != "unknown status");
            }
            None => assert_eq!(
                (name, message),
                ("UNSTICK_STATUS_UNKNOWN", "unknown status")
            ),
        }
    }
}

/// A static C string as `&str`.
fn unsafe_c_str(ptr: *const core::ffi::c_char) -> &'static str {
    // SAFETY: the status functions return static NUL-terminated strings.
    unsafe { CStr::from_ptr(ptr) }.to_str().unwrap()
}
