//! Golden byte vectors: the exact bytes the Python scripts unstick started from send (made with
//! `struct.pack('i', len(header)) + json.dumps(header).encode('utf-8')`, default
//! `ensure_ascii=True`), the same frames in every prefix width and byte order, and the exact
//! bytes unstick's own encoders write for fixed inputs.

mod recording;

use recording::{Frame, frames, record, record_all, unhex};
use serde::{Deserialize, Serialize};
use unstick_core::heapless::String;
use unstick_core::{
    ByteOrder, FrameDecoder, FrameInfo, HeaderFrameEncoder, PrefixWidth, Profile, SizeField,
    Verdict, encode_plain_frame,
};

/// The seed's shell server reply for an 11-byte output:
/// `{'md5': 'fdsaf2143254f', 'file_name': 'f1.txt', 'total_size': 11}` + `b"hello world"`.
const SEED_SHELL_REPLY: &str = "
    410000007b226d6435223a202266647361663231343332353466222c20226669
    6c655f6e616d65223a202266312e747874222c2022746f74616c5f73697a6522
    3a2031317d68656c6c6f20776f726c64";

/// The same reply with a real digest: `'md5': hashlib.md5(b'hello world').hexdigest()`.
const SHELL_REPLY_REAL_MD5: &str = "
    540000007b226d6435223a202235656236336262626530316565656430393363
    62323262623866356163646333222c202266696c655f6e616d65223a20226631
    2e747874222c2022746f74616c5f73697a65223a2031317d68656c6c6f20776f
    726c64";

/// The seed's upload client: `{'filepath': r'C:\Users\Aaron\Desktop\新建文件夹',
/// 'filename': 'config', 'filesize': 5}` + `b"12345"`. The folder name arrives as `\uXXXX`.
const SEED_UPLOAD: &str = "
    6e0000007b2266696c6570617468223a2022433a5c5c55736572735c5c416172
    6f6e5c5c4465736b746f705c5c5c75363562305c75356566615c75363538375c
    75346566365c7535393339222c202266696c656e616d65223a2022636f6e6669
    67222c202266696c6573697a65223a20357d3132333435";

/// The upload head before the client fills in the size (`'filesize': None`).
const SEED_UPLOAD_SIZE_NONE: &str = "
    710000007b2266696c6570617468223a2022433a5c5c55736572735c5c416172
    6f6e5c5c4465736b746f705c5c5c75363562305c75356566615c75363538375c
    75346566365c7535393339222c202266696c656e616d65223a2022636f6e6669
    67222c202266696c6573697a65223a206e756c6c7d";

/// The commented-out variant of the upload client: `json.dumps(head, ensure_ascii=False)`,
/// the folder name as raw UTF-8.
const SEED_UPLOAD_RAW_UTF8: &str = "
    5f0000007b2266696c6570617468223a2022433a5c5c55736572735c5c416172
    6f6e5c5c4465736b746f705c5ce696b0e5bbbae69687e4bbb6e5a4b9222c2022
    66696c656e616d65223a2022636f6e666967222c202266696c6573697a65223a
    20357d3132333435";

/// `{'filename': '😀 photo.jpg', 'filesize': 3}`: the emoji arrives as a surrogate pair,
/// `\ud83d\ude00`. Body `ff d8 ff`.
const EMOJI_UPLOAD: &str = "
    350000007b2266696c656e616d65223a20225c75643833645c75646530302070
    686f746f2e6a7067222c202266696c6573697a65223a20337dffd8ff";

/// The seed's first solution, `struct.pack('i', 5) + b'hello'`, twice glued together: the
/// "hello" + "world" sends that arrived as one `recv`.
const SEED_PLAIN_HELLO_WORLD: &str = "0500000068656c6c6f05000000776f726c64";

/// The seed's first shell server: `struct.pack('i', total_size)` and the output, no header.
const SEED_PLAIN_REPLY: &str = "0b00000068656c6c6f20776f726c64";

/// What Python sends for a Linux file name that is not UTF-8: `os.listdir` gives
/// `'bad\udcff.txt'` (surrogateescape) and `json.dumps` writes the lone surrogate as `\udcff`.
const PYTHON_UNDECODABLE_NAME: &str = "
    2c0000007b2266696c656e616d65223a20226261645c75646366662e747874222c
    202266696c6573697a65223a20307d";

#[derive(Deserialize, Debug, PartialEq)]
struct ShellReply {
    md5: String<32>,
    file_name: String<64>,
    total_size: u64,
}

#[derive(Deserialize, Debug, PartialEq)]
struct Upload {
    filepath: String<64>,
    filename: String<16>,
    filesize: Option<u64>,
}

#[derive(Deserialize, Debug, PartialEq)]
struct Photo<'a> {
    filename: &'a str,
    filesize: u64,
}

fn decode_one<const CAP: usize>(decoder: &mut FrameDecoder<CAP>, wire: &[u8]) -> Frame {
    let mut found = frames(&record_all(decoder, wire).unwrap());
    assert_eq!(found.len(), 1);
    found.remove(0)
}

#[test]
fn seed_shell_reply() {
    let wire = unhex(SEED_SHELL_REPLY);
    assert_eq!(&wire[..4], &65i32.to_le_bytes());
    let mut decoder = FrameDecoder::<128>::header_frames(Profile::I32_LE);
    let frame = decode_one(&mut decoder, &wire);
    assert_eq!(
        frame.info,
        FrameInfo {
            header_len: 65,
            body_len: 11,
        }
    );
    assert_eq!(frame.declared, unstick_core::Digests::default());
    assert_eq!(frame.body, b"hello world");
    // The placeholder is reported, not refused.
    assert_eq!(frame.end.md5, Verdict::NotADigest);
    assert_eq!(frame.end.xxh3, Verdict::Absent);
    assert!(!frame.end.is_verified());
    let reply: ShellReply = decoder.header().unwrap();
    assert_eq!(reply.md5, "fdsaf2143254f");
    assert_eq!(reply.file_name, "f1.txt");
    assert_eq!(reply.total_size, 11);
    assert_eq!(
        decoder.header_json(),
        Some(r#"{"md5": "fdsaf2143254f", "file_name": "f1.txt", "total_size": 11}"#)
    );
}

#[test]
fn shell_reply_with_a_real_md5() {
    let mut decoder = FrameDecoder::<128>::header_frames(Profile::I32_LE);
    let frame = decode_one(&mut decoder, &unhex(SHELL_REPLY_REAL_MD5));
    assert_eq!(frame.body, b"hello world");
    assert_eq!(
        frame.declared.md5,
        Some([
            0x5e, 0xb6, 0x3b, 0xbb, 0xe0, 0x1e, 0xee, 0xd0, 0x93, 0xcb, 0x22, 0xbb, 0x8f, 0x5a,
            0xcd, 0xc3
        ])
    );
    #[cfg(feature = "md5")]
    {
        assert_eq!(frame.end.md5, Verdict::Verified);
        assert!(frame.end.is_verified());
    }
    #[cfg(not(feature = "md5"))]
    assert_eq!(frame.end.md5, Verdict::Unsupported);
}

#[test]
fn seed_upload_with_chinese_folder() {
    let mut decoder = FrameDecoder::<256>::header_frames(Profile::I32_LE);
    let frame = decode_one(&mut decoder, &unhex(SEED_UPLOAD));
    assert_eq!(frame.info.header_len, 110);
    assert_eq!(frame.body, b"12345");
    assert_eq!(frame.end.md5, Verdict::Absent);
    let upload: Upload = decoder.header().unwrap();
    assert_eq!(upload.filepath, r"C:\Users\Aaron\Desktop\新建文件夹");
    assert_eq!(upload.filename, "config");
    assert_eq!(upload.filesize, Some(5));
    // The normalised header keeps `\\` escaped and holds the folder name as UTF-8.
    assert_eq!(
        decoder.header_json(),
        Some(
            r#"{"filepath": "C:\\Users\\Aaron\\Desktop\\新建文件夹", "filename": "config", "filesize": 5}"#
        )
    );

    // `ensure_ascii=False` sends the same text as raw UTF-8: same result.
    let mut decoder = FrameDecoder::<128>::header_frames(Profile::I32_LE);
    let frame = decode_one(&mut decoder, &unhex(SEED_UPLOAD_RAW_UTF8));
    assert_eq!(frame.body, b"12345");
    // This header leaves 33 bytes of the 128 spare, too few to unescape the 38-byte path into:
    // a typed error, and the view works with scratch space of its own.
    assert_eq!(
        decoder.header::<Upload>(),
        Err(unstick_core::HeaderError::ScratchTooSmall)
    );
    let mut scratch = [0u8; 38];
    assert_eq!(
        decoder.header_with_scratch::<Upload>(&mut scratch[..37]),
        Err(unstick_core::HeaderError::ScratchTooSmall)
    );
    assert_eq!(
        decoder.header_with_scratch::<Upload>(&mut scratch),
        Ok(upload)
    );

    // Before the size is filled in: `null` means no body.
    let mut decoder = FrameDecoder::<256>::header_frames(Profile::I32_LE);
    let frame = decode_one(&mut decoder, &unhex(SEED_UPLOAD_SIZE_NONE));
    assert_eq!(frame.info.body_len, 0);
    let upload: Upload = decoder.header().unwrap();
    assert_eq!(upload.filesize, None);
    assert_eq!(upload.filepath, r"C:\Users\Aaron\Desktop\新建文件夹");
}

#[test]
fn emoji_filename_from_a_surrogate_pair() {
    let mut decoder = FrameDecoder::<64>::header_frames(Profile::I32_LE);
    let frame = decode_one(&mut decoder, &unhex(EMOJI_UPLOAD));
    assert_eq!(frame.body, [0xff, 0xd8, 0xff]);
    // No escape is left after normalising, so a borrowed `&str` field works.
    let photo: Photo<'_> = decoder.header().unwrap();
    assert_eq!(photo.filename, "😀 photo.jpg");
    assert_eq!(photo.filename.as_bytes()[..4], [0xf0, 0x9f, 0x98, 0x80]);
    assert_eq!(photo.filesize, 3);
    #[derive(Deserialize)]
    struct Owned {
        filename: String<16>,
    }
    let owned: Owned = decoder.header().unwrap();
    assert_eq!(owned.filename, "😀 photo.jpg");
}

#[test]
fn seed_hello_world_plain_frames_separate() {
    let wire = unhex(SEED_PLAIN_HELLO_WORLD);
    let mut decoder = FrameDecoder::<0>::plain_frames(Profile::I32_LE);
    let found = frames(&record_all(&mut decoder, &wire).unwrap());
    let bodies: Vec<&[u8]> = found.iter().map(|f| f.body.as_slice()).collect();
    assert_eq!(bodies, [&b"hello"[..], b"world"]);
    // The seed's `struct.pack('i', 183346)` example.
    let mut prefix = [0u8; 4];
    Profile::I32_LE.write_prefix(183_346, &mut prefix).unwrap();
    assert_eq!(prefix, *unhex("32cc0200"));
}

#[test]
fn seed_plain_reply() {
    let mut decoder = FrameDecoder::<0>::plain_frames(Profile::I32_LE);
    let frame = decode_one(&mut decoder, &unhex(SEED_PLAIN_REPLY));
    assert_eq!(frame.body, b"hello world");
    assert_eq!(frame.info.header_len, 0);
    let mut out = [0u8; 32];
    let n = encode_plain_frame(&Profile::I32_LE, b"hello world", &mut out).unwrap();
    assert_eq!(out[..n], *unhex(SEED_PLAIN_REPLY));
}

#[test]
fn python_lone_surrogate_is_refused_with_a_typed_error() {
    let mut decoder = FrameDecoder::<64>::header_frames(Profile::I32_LE);
    let err = record_all(&mut decoder, &unhex(PYTHON_UNDECODABLE_NAME)).unwrap_err();
    assert_eq!(
        err,
        unstick_core::DecodeError::HeaderNotJson(unstick_core::json::JsonError {
            offset: 17,
            problem: unstick_core::json::JsonProblem::LoneSurrogate,
        })
    );
    assert!(err.to_string().contains("surrogate"), "{err}");
}

#[test]
fn all_seed_frames_in_one_stream_byte_by_byte() {
    let mut wire = Vec::new();
    for hex in [
        SEED_SHELL_REPLY,
        SHELL_REPLY_REAL_MD5,
        SEED_UPLOAD,
        SEED_UPLOAD_SIZE_NONE,
        SEED_UPLOAD_RAW_UTF8,
        EMOJI_UPLOAD,
    ] {
        wire.extend(unhex(hex));
    }
    let mut decoder = FrameDecoder::<128>::header_frames(Profile::I32_LE);
    let mut log = Vec::new();
    for b in &wire {
        record(&mut decoder, std::slice::from_ref(b), &mut log).unwrap();
    }
    record(&mut decoder, &[], &mut log).unwrap();
    let bodies: Vec<Vec<u8>> = frames(&log).into_iter().map(|f| f.body).collect();
    assert_eq!(
        bodies,
        [
            &b"hello world"[..],
            b"hello world",
            b"12345",
            b"",
            b"12345",
            b"\xff\xd8\xff"
        ]
    );
    assert!(decoder.is_at_boundary());
}

/// `struct.pack(FMT, len(h)) + h + b'hi'` with `h = b'{"total_size": 2}'`, and
/// `struct.pack(FMT, 3) + b'abc'`, for each prefix format.
const EVERY_PROFILE: [(PrefixWidth, ByteOrder, &str, &str); 6] = [
    (
        PrefixWidth::Two,
        ByteOrder::Little,
        "11007b22746f74616c5f73697a65223a20327d6869",
        "0300616263",
    ),
    (
        PrefixWidth::Two,
        ByteOrder::Big,
        "00117b22746f74616c5f73697a65223a20327d6869",
        "0003616263",
    ),
    (
        PrefixWidth::Four,
        ByteOrder::Little,
        "110000007b22746f74616c5f73697a65223a20327d6869",
        "03000000616263",
    ),
    (
        PrefixWidth::Four,
        ByteOrder::Big,
        "000000117b22746f74616c5f73697a65223a20327d6869",
        "00000003616263",
    ),
    (
        PrefixWidth::Eight,
        ByteOrder::Little,
        "11000000000000007b22746f74616c5f73697a65223a20327d6869",
        "0300000000000000616263",
    ),
    (
        PrefixWidth::Eight,
        ByteOrder::Big,
        "00000000000000117b22746f74616c5f73697a65223a20327d6869",
        "0000000000000003616263",
    ),
];

#[test]
fn every_prefix_width_and_byte_order() {
    for (width, order, header_hex, plain_hex) in EVERY_PROFILE {
        let profile = Profile::new(width, order);
        let mut decoder = FrameDecoder::<32>::header_frames(profile);
        let frame = decode_one(&mut decoder, &unhex(header_hex));
        assert_eq!(
            (frame.info.header_len, frame.body.as_slice()),
            (17, &b"hi"[..])
        );
        let mut decoder = FrameDecoder::<0>::plain_frames(profile);
        let frame = decode_one(&mut decoder, &unhex(plain_hex));
        assert_eq!(frame.body, b"abc");
        // Our plain encoder writes the same bytes.
        let mut out = [0u8; 16];
        let n = encode_plain_frame(&profile, b"abc", &mut out).unwrap();
        assert_eq!(out[..n], *unhex(plain_hex), "{profile:?}");
    }
}

#[derive(Serialize)]
struct Reply<'a> {
    file_name: &'a str,
}

#[derive(Serialize)]
struct UploadHead<'a> {
    filepath: &'a str,
    filename: &'a str,
}

#[derive(Serialize)]
struct NoMembers {}

/// Our encoder's output for fixed inputs, compared with Python's
/// `json.dumps(h, separators=(',', ':'), ensure_ascii=False)` of the same members.
#[test]
fn encoder_exact_bytes() {
    let body = b"hello world";
    let reply = Reply {
        file_name: "f1.txt",
    };
    let mut out = [0u8; 256];
    // No digest: `{"file_name":"f1.txt","total_size":11}`.
    let plain = HeaderFrameEncoder::new(Profile::I32_LE).checksum(None);
    let n = plain.encode_frame(&reply, body, &mut out).unwrap();
    let expected = unhex(
        "260000007b2266696c655f6e616d65223a2266312e747874222c22746f74616c
         5f73697a65223a31317d68656c6c6f20776f726c64",
    );
    assert_eq!(out[..n], *expected);

    // The seed's upload head, size in "filesize", non-ASCII as raw UTF-8.
    let upload = UploadHead {
        filepath: r"C:\Users\Aaron\Desktop\新建文件夹",
        filename: "config",
    };
    let n = plain
        .size_field(SizeField::Filesize)
        .encode_frame(&upload, b"12345", &mut out)
        .unwrap();
    let expected = unhex(
        "5a0000007b2266696c6570617468223a22433a5c5c55736572735c5c4161726f
         6e5c5c4465736b746f705c5ce696b0e5bbbae69687e4bbb6e5a4b9222c226669
         6c656e616d65223a22636f6e666967222c2266696c6573697a65223a357d3132
         333435",
    );
    assert_eq!(out[..n], *expected);

    // An empty header value.
    let n = plain.encode_frame(&NoMembers {}, b"", &mut out).unwrap();
    assert_eq!(out[..n], *unhex("100000007b22746f74616c5f73697a65223a307d"));

    // Other prefixes: only the prefix changes.
    let two_be = HeaderFrameEncoder::new(Profile::new(PrefixWidth::Two, ByteOrder::Big));
    let n = two_be
        .checksum(None)
        .encode_frame(&reply, body, &mut out)
        .unwrap();
    let expected = unhex(
        "00267b2266696c655f6e616d65223a2266312e747874222c22746f74616c5f73
         697a65223a31317d68656c6c6f20776f726c64",
    );
    assert_eq!(out[..n], *expected);
    let eight_be = HeaderFrameEncoder::new(Profile::new(PrefixWidth::Eight, ByteOrder::Big));
    let n = eight_be
        .checksum(None)
        .encode_frame(&reply, body, &mut out)
        .unwrap();
    let expected = unhex(
        "00000000000000267b2266696c655f6e616d65223a2266312e747874222c2274
         6f74616c5f73697a65223a31317d68656c6c6f20776f726c64",
    );
    assert_eq!(out[..n], *expected);
}

#[cfg(feature = "md5")]
#[test]
fn encoder_exact_bytes_with_md5() {
    let encoder =
        HeaderFrameEncoder::new(Profile::I32_LE).checksum(Some(unstick_core::Algorithm::Md5));
    let mut out = [0u8; 256];
    let n = encoder
        .encode_frame(
            &Reply {
                file_name: "f1.txt",
            },
            b"hello world",
            &mut out,
        )
        .unwrap();
    let expected = unhex(
        "4f0000007b2266696c655f6e616d65223a2266312e747874222c22746f74616c
         5f73697a65223a31312c226d6435223a22356562363362626265303165656564
         3039336362323262623866356163646333227d68656c6c6f20776f726c64",
    );
    assert_eq!(out[..n], *expected);
    let mut decoder = FrameDecoder::<128>::header_frames(Profile::I32_LE);
    assert_eq!(
        decode_one(&mut decoder, &out[..n]).end.md5,
        Verdict::Verified
    );
}

/// The default encoder adds `"xxh3"`; the value is XXH3-128 of `hello world` as the reference
/// implementation prints it (`xxhash.xxh3_128_hexdigest`).
#[cfg(feature = "xxh3")]
#[test]
fn encoder_exact_bytes_with_xxh3_by_default() {
    let encoder = HeaderFrameEncoder::default();
    let mut out = [0u8; 256];
    let n = encoder
        .encode_frame(
            &Reply {
                file_name: "f1.txt",
            },
            b"hello world",
            &mut out,
        )
        .unwrap();
    let expected = unhex(
        "500000007b2266696c655f6e616d65223a2266312e747874222c22746f74616c
         5f73697a65223a31312c2278786833223a226466386430396539336638373439
         303061393962383737356363313562366337227d68656c6c6f20776f726c64",
    );
    assert_eq!(out[..n], *expected);
    let mut decoder = FrameDecoder::<128>::header_frames(Profile::I32_LE);
    let frame = decode_one(&mut decoder, &out[..n]);
    assert_eq!(frame.end.xxh3, Verdict::Verified);
    assert_eq!(frame.end.md5, Verdict::Absent);
}
