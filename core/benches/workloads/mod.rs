//! The workloads measured by both bench targets: `framing` (criterion, detailed) and `summary`
//! (one run of each, printed as ratios against a baseline measured in the same run).
//!
//! Every workload builds its wire bytes once with unstick's own encoders, then decodes them the
//! way a receiver would, touching each body slice it is handed.

#![allow(dead_code)] // each bench target uses a different subset

use std::hint::black_box;

use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use tokio_util::codec::{Decoder, LengthDelimitedCodec};
use unstick_core::{
    Algorithm, Event, FrameDecoder, HeaderFrameEncoder, Profile, encode_plain_frame,
};

/// Number of frames in the plain-frame workload.
pub const PLAIN_FRAMES: usize = 1_000_000;
/// Payload length of each plain frame.
pub const PLAIN_PAYLOAD: usize = 64;

/// Body length of each header frame.
pub const HEADER_BODY: usize = 64;
/// Header frames per decoded buffer.
pub const HEADER_FRAMES: usize = 10_000;

/// Body length in the bulk workload: 1 MiB.
pub const BULK_BODY: usize = 1 << 20;
/// Bodies per bulk buffer (64 MiB, larger than any cache here); the summary passes it 16 times
/// for 1 GiB.
pub const BULK_BODIES: usize = 64;
/// The size of each `read` a receiver makes in the bulk workload.
pub const BULK_READ: usize = 64 << 10;

/// `PLAIN_FRAMES` plain frames of `PLAIN_PAYLOAD` bytes, back to back: `[64 LE i32][64 bytes]`.
pub fn plain_wire() -> Vec<u8> {
    let frame_len = 4 + PLAIN_PAYLOAD;
    let mut wire = vec![0u8; PLAIN_FRAMES * frame_len];
    let mut payload = [0u8; PLAIN_PAYLOAD];
    for (i, frame) in wire.chunks_exact_mut(frame_len).enumerate() {
        payload.fill(i as u8);
        encode_plain_frame(&Profile::I32_LE, &payload, frame).expect("frame fits");
    }
    wire
}

/// Decodes every frame in `wire` with `decoder`, fed `step` bytes per call (`usize::MAX` for all
/// at once), calling `on_head` at each frame head; returns the frame count.
fn decode_all<const CAP: usize>(
    mut decoder: FrameDecoder<CAP>,
    wire: &[u8],
    step: usize,
    mut on_head: impl FnMut(&mut FrameDecoder<CAP>),
) -> usize {
    let mut frames = 0;
    for piece in wire.chunks(step.clamp(1, wire.len().max(1))) {
        let mut input = piece;
        loop {
            let (used, event) = decoder.feed(input).expect("valid frames");
            input = &input[used..];
            match event {
                Event::Head(_) => on_head(&mut decoder),
                Event::Body(body) => {
                    black_box(body);
                }
                Event::End(end) => {
                    black_box(end);
                    frames += 1;
                }
                Event::NeedMore => break,
            }
        }
    }
    frames
}

/// Decodes every plain frame in `wire` with unstick's decoder, fed `step` bytes per call;
/// returns the frame count.
pub fn plain_unstick(wire: &[u8], step: usize) -> usize {
    decode_all(
        FrameDecoder::<0>::plain_frames(Profile::I32_LE),
        wire,
        step,
        |_| {},
    )
}

/// The same bytes in a `BytesMut`, as tokio-util's decoder wants them.
pub fn plain_bytes_mut(wire: &[u8]) -> BytesMut {
    BytesMut::from(wire)
}

/// Decodes every plain frame in `buf` with tokio-util's `LengthDelimitedCodec` configured for the
/// same wire format (4-byte little-endian length); returns the frame count.
pub fn plain_tokio(mut buf: BytesMut) -> usize {
    let mut codec = LengthDelimitedCodec::builder()
        .little_endian()
        .length_field_length(4)
        .new_codec();
    let mut frames = 0;
    while let Some(frame) = codec.decode(&mut buf).expect("valid frames") {
        black_box(&frame);
        frames += 1;
    }
    frames
}

/// What the header-frame workload's sender puts in each header (the encoder adds
/// `"total_size"` and, if asked, a digest).
#[derive(Serialize)]
struct OutgoingHeader<'a> {
    file_name: &'a str,
    mode: u32,
    modified: u64,
    part: u32,
    parts: u32,
}

/// The receiver's typed view of the header.
#[derive(Deserialize, Debug)]
pub struct FileHeader<'a> {
    /// File the body belongs to.
    pub file_name: &'a str,
    /// Unix permissions.
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub modified: u64,
    /// Index of this part.
    pub part: u32,
    /// Number of parts.
    pub parts: u32,
    /// Body length.
    pub total_size: u64,
}

/// `HEADER_FRAMES` header frames with a ~120-byte JSON header and a `HEADER_BODY`-byte body, and
/// the JSON text of the first frame's header.
pub fn header_wire(checksum: Option<Algorithm>) -> (Vec<u8>, Vec<u8>) {
    let encoder = HeaderFrameEncoder::new(Profile::I32_LE).checksum(checksum);
    let mut wire = Vec::new();
    let mut frame = [0u8; 512];
    let mut first_header = Vec::new();
    for i in 0..HEADER_FRAMES {
        let header = OutgoingHeader {
            file_name: "logs/2026-11-25/frontend-03.jsonl",
            mode: 0o644,
            modified: 1_764_072_000 + i as u64,
            part: (i % 64) as u32,
            parts: 64,
        };
        let body = [b'a' + (i % 26) as u8; HEADER_BODY];
        let n = encoder
            .encode_frame(&header, &body, &mut frame)
            .expect("frame fits");
        if i == 0 {
            first_header = frame[4..n - HEADER_BODY].to_vec();
        }
        wire.extend_from_slice(&frame[..n]);
    }
    (wire, first_header)
}

/// Decodes every header frame in `wire`, fed `step` bytes per call, deserializing each header
/// into [`FileHeader`]; returns the frame count.
pub fn header_unstick(wire: &[u8], step: usize) -> usize {
    let decoder = FrameDecoder::<256>::header_frames(Profile::I32_LE);
    decode_all(decoder, wire, step, |decoder| {
        let header: FileHeader<'_> = decoder.header().expect("typed header");
        black_box(&header);
    })
}

/// serde_json parsing one header into the same typed view.
pub fn header_serde_json(json: &[u8]) -> FileHeader<'_> {
    serde_json::from_slice(json).expect("valid header")
}

/// A device's report: the sender's side of the large-header workload (about 1 KiB of JSON
/// with nested objects and arrays; the encoder adds `"total_size"`).
#[derive(Serialize)]
struct OutgoingReport<'a> {
    device: Device<'a>,
    firmware: &'a str,
    sequence: u64,
    tags: [&'a str; 6],
    readings: [Reading<'a>; 8],
    location: Location,
    note: &'a str,
}

/// The large header's nested object describing the sender (both sides).
#[derive(Serialize, Deserialize, Debug)]
pub struct Device<'a> {
    /// Device identifier.
    pub id: &'a str,
    /// Hardware model.
    pub model: &'a str,
    /// Seconds since boot.
    pub uptime: u64,
    /// Battery charge, 0 to 1.
    pub battery: f64,
}

/// One sensor reading in the large header (both sides).
#[derive(Serialize, Deserialize, Debug)]
pub struct Reading<'a> {
    /// Sensor name.
    pub sensor: &'a str,
    /// Measured value.
    pub value: f64,
    /// Unit of the value.
    pub unit: &'a str,
    /// Whether the value is within its configured range.
    pub ok: bool,
}

/// Where the device is (both sides).
#[derive(Serialize, Deserialize, Debug)]
pub struct Location {
    /// Degrees north.
    pub lat: f64,
    /// Degrees east.
    pub lon: f64,
    /// Metres above sea level.
    pub alt: i32,
}

/// The receiver's typed view of the large header.
#[derive(Deserialize, Debug)]
pub struct ReportHeader<'a> {
    /// The sending device.
    #[serde(borrow)]
    pub device: Device<'a>,
    /// Firmware version.
    pub firmware: &'a str,
    /// Report number.
    pub sequence: u64,
    /// Free-form labels.
    #[serde(borrow)]
    pub tags: [&'a str; 6],
    /// Sensor readings.
    #[serde(borrow)]
    pub readings: [Reading<'a>; 8],
    /// Where the device is.
    pub location: Location,
    /// A free-text note.
    pub note: &'a str,
    /// Body length.
    pub total_size: u64,
}

/// Large header frames per decoded buffer.
pub const REPORT_FRAMES: usize = 2_000;

/// `REPORT_FRAMES` header frames with a ~1 KiB nested JSON header and a `HEADER_BODY`-byte
/// body, and the JSON text of the first frame's header.
pub fn report_wire() -> (Vec<u8>, Vec<u8>) {
    let encoder = HeaderFrameEncoder::new(Profile::I32_LE);
    let mut wire = Vec::new();
    let mut frame = [0u8; 4096];
    let mut first_header = Vec::new();
    let sensors = [
        ("temperature", "degC"),
        ("humidity", "percent"),
        ("pressure", "hPa"),
        ("co2", "ppm"),
        ("pm2_5", "ug/m3"),
        ("noise", "dBA"),
        ("light", "lux"),
        ("vibration", "mm/s"),
    ];
    for i in 0..REPORT_FRAMES {
        let report = OutgoingReport {
            device: Device {
                id: "gw-eu-west-0042/sensor-node-17",
                model: "STM32F407 rev C",
                uptime: 86_400 + i as u64,
                battery: 0.87,
            },
            firmware: "2.14.3+build.20261125",
            sequence: 1_000_000 + i as u64,
            tags: [
                "outdoor",
                "roof",
                "north-wing",
                "calibrated",
                "batch-7",
                "eu",
            ],
            readings: core::array::from_fn(|k| Reading {
                sensor: sensors[k].0,
                value: 20.5 + (k * 7 + i % 13) as f64 * 0.25,
                unit: sensors[k].1,
                ok: (k + i) % 5 != 0,
            }),
            location: Location {
                lat: 52.520_008,
                lon: 13.404_954,
                alt: 34,
            },
            note: "scheduled report; all channels sampled at 1 Hz and averaged over 60 s; \
                   readings outside their range are flagged and resent in the next report",
        };
        let body = [b'a' + (i % 26) as u8; HEADER_BODY];
        let n = encoder
            .encode_frame(&report, &body, &mut frame)
            .expect("frame fits");
        if i == 0 {
            first_header = frame[4..n - HEADER_BODY].to_vec();
        }
        wire.extend_from_slice(&frame[..n]);
    }
    (wire, first_header)
}

/// Decodes every large header frame in `wire`, deserializing each header into
/// [`ReportHeader`]; returns the frame count.
pub fn report_unstick(wire: &[u8]) -> usize {
    let decoder = FrameDecoder::<2048>::header_frames(Profile::I32_LE);
    decode_all(decoder, wire, usize::MAX, |decoder| {
        let header: ReportHeader<'_> = decoder.header().expect("typed header");
        black_box(&header);
    })
}

/// serde_json parsing one large header into the same typed view.
pub fn report_serde_json(json: &[u8]) -> ReportHeader<'_> {
    serde_json::from_slice(json).expect("valid header")
}

/// `BULK_BODIES` header frames of `BULK_BODY` bytes each, declaring `checksum` (if any), and
/// where in the wire each body starts.
pub fn bulk_wire(checksum: Option<Algorithm>) -> (Vec<u8>, Vec<usize>) {
    let encoder = HeaderFrameEncoder::new(Profile::I32_LE).checksum(checksum);
    let mut wire = Vec::with_capacity(BULK_BODIES * (BULK_BODY + 128));
    let mut head = [0u8; 256];
    let mut body = vec![0u8; BULK_BODY];
    let mut body_starts = Vec::with_capacity(BULK_BODIES);
    for i in 0..BULK_BODIES {
        for (j, b) in body.iter_mut().enumerate() {
            *b = (i * 31 + j * 7) as u8;
        }
        let header = OutgoingHeader {
            file_name: "bulk.bin",
            mode: 0o644,
            modified: 0,
            part: i as u32,
            parts: BULK_BODIES as u32,
        };
        let n = encoder
            .encode_head_for(&header, &body, &mut head)
            .expect("head fits");
        wire.extend_from_slice(&head[..n]);
        body_starts.push(wire.len());
        wire.extend_from_slice(&body);
    }
    (wire, body_starts)
}

/// A receiver writing every body into `sink` (one body's worth, reused), reading `wire` in
/// `BULK_READ`-byte pieces through the decoder; returns the body bytes written.
pub fn bulk_unstick(wire: &[u8], sink: &mut [u8]) -> u64 {
    let mut decoder = FrameDecoder::<256>::header_frames(Profile::I32_LE);
    let mut offset = 0;
    let mut written = 0u64;
    for piece in wire.chunks(BULK_READ) {
        let mut input = piece;
        loop {
            let (used, event) = decoder.feed(input).expect("valid frames");
            input = &input[used..];
            match event {
                Event::Head(_) => offset = 0,
                Event::Body(body) => {
                    sink[offset..offset + body.len()].copy_from_slice(body);
                    offset += body.len();
                    written += body.len() as u64;
                }
                Event::End(end) => {
                    assert!(end.md5 != unstick_core::Verdict::Unsupported);
                    black_box(end);
                }
                Event::NeedMore => break,
            }
        }
    }
    black_box(&sink[..]);
    written
}

/// The baseline: the same bytes copied into `sink` in the same `BULK_READ` pieces, no decoding.
pub fn bulk_memcpy(wire: &[u8], sink: &mut [u8]) -> u64 {
    let mut offset = 0;
    for piece in wire.chunks(BULK_READ) {
        if offset + piece.len() > sink.len() {
            offset = 0;
        }
        sink[offset..offset + piece.len()].copy_from_slice(piece);
        offset += piece.len();
    }
    black_box(&sink[..]);
    wire.len() as u64
}

/// The tight baseline: exactly the copies `bulk_unstick` makes (each body, split where the
/// `BULK_READ`-byte reads split it, at the same source alignment), with no decoding.
pub fn bulk_memcpy_bodies(wire: &[u8], body_starts: &[usize], sink: &mut [u8]) -> u64 {
    let mut written = 0;
    for &start in body_starts {
        let end = start + BULK_BODY;
        let mut at = start;
        while at < end {
            let stop = ((at / BULK_READ + 1) * BULK_READ).min(end);
            let offset = at - start;
            sink[offset..offset + (stop - at)].copy_from_slice(&wire[at..stop]);
            at = stop;
        }
        written += BULK_BODY as u64;
    }
    black_box(&sink[..]);
    written
}
