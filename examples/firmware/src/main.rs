//! unstick-firmware: proof that `unstick-core` runs with no `std`, no allocator and no libc.
//!
//! A freestanding Linux executable (its own `_start`, raw system calls, its own `memcpy` and
//! friends) that receives three header frames from an in-memory `embedded_io` source through
//! `unstick_core::blocking::FrameReader`, the way firmware would read them from a UART or a TCP
//! socket:
//!
//! 1. a firmware image (`filename`, `filesize`, `md5`), streamed page by page into a flash-like
//!    sink and read back to check the programmed bytes;
//! 2. a shell reply (`file_name`, `total_size`, `xxh3`);
//! 3. the upload header of the classic Python client, whose folder name
//!    `C:\Users\Aaron\Desktop\新建文件夹` arrives as `\u` escapes, parsed into a typed header of
//!    `heapless::String`s.
//!
//! It then feeds a copy with one flipped body byte and checks that the image is rejected with
//! `ChecksumMismatch` while the frames after it still arrive. The exit status is 0 only if all
//! of that holds. The frames come from `fixtures/frames.bin`, written by `make_fixture.py`.
#![no_std]
#![no_main]

mod console;
mod flash;
mod linux;
mod mem_routines;
mod start;

use heapless::String;
use serde::Deserialize;
use unstick_core::blocking::FrameReader;
use unstick_core::{
    Algorithm, Algorithms, DecodeError, Event, FrameDecoder, FrameEnd, HeaderError, Profile,
    ReadError, Verdict, digest_of,
};

use crate::console::Line;
use crate::flash::{Flash, FlashError};

/// The frames, as the Python script wrote them.
const FRAMES: &[u8] = include_bytes!("../fixtures/frames.bin");

/// The folder name of the Python upload client, as it must read after unescaping.
const SEED_FOLDER: &str = "C:\\Users\\Aaron\\Desktop\\新建文件夹";

/// Header capacity of the decoder: the largest header this firmware accepts.
const HEADER_CAP: usize = 256;

/// The header members this firmware reads. One type serves all three frames: each typed header
/// type costs its own deserializer (about 1 KB of code), so the members a frame may lack are
/// `Option`s, checked per frame in `start_frame`.
#[derive(Deserialize)]
struct Header {
    /// `filename` in the image and upload headers, `file_name` in the shell reply's.
    #[serde(alias = "file_name")]
    filename: String<64>,
    /// Only in the upload header.
    filepath: Option<String<64>>,
    /// In the image and upload headers (the shell reply's size is `total_size`).
    filesize: Option<u64>,
}

/// The frames the stream must hold, in order.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expected {
    FlashImage,
    ShellReply,
    SeedUpload,
}

const EXPECTED: [Expected; 3] = [
    Expected::FlashImage,
    Expected::ShellReply,
    Expected::SeedUpload,
];

/// Why receiving stopped early.
enum Failure {
    Read(ReadError<core::convert::Infallible>),
    Header(HeaderError),
    Flash(FlashError),
    /// The frame decoded but is not what was sent.
    Wrong(&'static str),
}

/// What became of the frames of one stream.
struct Tally {
    verified: usize,
    /// Frames refused at their end because the body did not match its digest.
    rejected: usize,
    failure: Option<Failure>,
}

/// The frame being received.
struct Frame {
    kind: Expected,
    name: String<64>,
    received: u64,
}

/// Runs the whole check and returns the exit status.
pub(crate) fn run() -> i32 {
    let Some(mut flash) = Flash::take() else {
        return 3;
    };
    Line::new()
        .text("unstick-firmware: ")
        .num(FRAMES.len() as u64)
        .text(" bytes of frames, header capacity ")
        .num(HEADER_CAP as u64)
        .print();

    let clean = receive(FRAMES, &mut flash);
    let clean_ok = report("clean stream", &clean) && clean.verified == 3 && clean.rejected == 0;

    let mut corrupted = [0u8; FRAMES.len()];
    corrupted.copy_from_slice(FRAMES);
    if !flip_image_byte(&mut corrupted) {
        Line::new()
            .text("FAIL: fixture too short to corrupt")
            .print();
        return 1;
    }
    let bad = receive(&corrupted, &mut flash);
    let bad_ok = report("corrupted stream", &bad)
        && bad.verified == 2
        && bad.rejected == 1
        && flash.image().is_none();

    if clean_ok && bad_ok {
        Line::new()
            .text("PASS: every frame decoded and verified; the corrupted image was rejected")
            .print();
        0
    } else {
        Line::new().text("FAIL").print();
        1
    }
}

/// Flips one bit in the body of the first frame (the flash image).
fn flip_image_byte(stream: &mut [u8]) -> bool {
    let Some(prefix) = stream.first_chunk::<4>() else {
        return false;
    };
    let header_len = u32::from_le_bytes(*prefix) as usize;
    match stream.get_mut(4 + header_len + 1000) {
        Some(byte) => {
            *byte ^= 0x20;
            true
        }
        None => false,
    }
}

/// Receives every frame of `stream`, each into where it belongs.
fn receive(stream: &[u8], flash: &mut Flash) -> Tally {
    let mut buf = [0u8; 96];
    let decoder = FrameDecoder::<HEADER_CAP>::header_frames(Profile::I32_LE);
    let mut reader = FrameReader::new(stream, decoder, &mut buf);
    let mut tally = Tally {
        verified: 0,
        rejected: 0,
        failure: None,
    };
    let mut index = 0;
    let mut frame: Option<Frame> = None;
    loop {
        let step = match reader.next_event() {
            Ok(None) => break,
            Ok(Some(Event::Head(info))) => {
                start_frame(index, info.body_len, reader.decoder(), flash).map(|f| frame = Some(f))
            }
            Ok(Some(Event::Body(chunk))) => body(frame.as_mut(), chunk, flash),
            Ok(Some(Event::End(end))) => {
                let computed = reader.decoder().digests().md5;
                end_frame(frame.take(), &end, computed, flash).map(|()| {
                    tally.verified += 1;
                    index += 1;
                })
            }
            Ok(Some(Event::NeedMore)) => Ok(()),
            Err(ReadError::Decode(DecodeError::ChecksumMismatch { algorithm })) => {
                // The frame was consumed whole; the decoder is at the next frame and goes on.
                flash.abandon();
                let name = frame.take().map(|f| f.name).unwrap_or_default();
                Line::new()
                    .text("  frame ")
                    .num(index as u64 + 1)
                    .text(": ")
                    .text(&name)
                    .text(" REJECTED: body does not match its ")
                    .text(algorithm.member())
                    .print();
                tally.rejected += 1;
                index += 1;
                Ok(())
            }
            Err(e) => Err(Failure::Read(e)),
        };
        if let Err(failure) = step {
            tally.failure = Some(failure);
            break;
        }
    }
    if tally.failure.is_none() && index != EXPECTED.len() {
        tally.failure = Some(Failure::Wrong(
            "the stream did not hold exactly three frames",
        ));
    }
    tally
}

/// Reads the typed header of frame `index` and prepares its destination.
fn start_frame(
    index: usize,
    body_len: u64,
    decoder: &mut FrameDecoder<HEADER_CAP>,
    flash: &mut Flash,
) -> Result<Frame, Failure> {
    let kind = *EXPECTED
        .get(index)
        .ok_or(Failure::Wrong("more frames than were sent"))?;
    let header: Header = decoder.header().map_err(Failure::Header)?;
    match kind {
        Expected::FlashImage => flash.begin(body_len).map_err(Failure::Flash)?,
        Expected::ShellReply => {}
        Expected::SeedUpload => {
            let filepath = header.filepath.unwrap_or_default();
            if filepath != SEED_FOLDER {
                return Err(Failure::Wrong(
                    "filepath did not unescape to the sent folder name",
                ));
            }
            if header.filesize != Some(body_len) {
                return Err(Failure::Wrong(
                    "typed filesize differs from the frame's body length",
                ));
            }
            Line::new()
                .text("  frame 3 filepath: ")
                .text(&filepath)
                .print();
        }
    }
    Ok(Frame {
        kind,
        name: header.filename,
        received: 0,
    })
}

/// Passes a body chunk to its destination.
fn body(frame: Option<&mut Frame>, chunk: &[u8], flash: &mut Flash) -> Result<(), Failure> {
    let frame = frame.ok_or(Failure::Wrong("body bytes before a header"))?;
    frame.received += chunk.len() as u64;
    if frame.kind == Expected::FlashImage {
        flash.write(chunk).map_err(Failure::Flash)?;
    }
    Ok(())
}

/// Checks a complete frame: length, digest verdict, and for the image the flash contents.
fn end_frame(
    frame: Option<Frame>,
    end: &FrameEnd,
    computed_md5: Option<[u8; 16]>,
    flash: &mut Flash,
) -> Result<(), Failure> {
    let frame = frame.ok_or(Failure::Wrong("frame end before a header"))?;
    if frame.received != end.body_len {
        return Err(Failure::Wrong("body bytes differ from the declared length"));
    }
    if !end.is_verified() {
        return Err(Failure::Wrong("frame carries no verified digest"));
    }
    let mut line = Line::new();
    line.text("  frame ")
        .num(match frame.kind {
            Expected::FlashImage => 1,
            Expected::ShellReply => 2,
            Expected::SeedUpload => 3,
        })
        .text(": ")
        .text(&frame.name)
        .text(", ")
        .num(end.body_len)
        .text(" bytes, ")
        .text(verified_by(end))
        .text(" verified");
    if frame.kind == Expected::FlashImage {
        let image = flash.finish().map_err(Failure::Flash)?;
        let read_back = digest_of(Algorithms::MD5, image).md5;
        if read_back.is_none() || read_back != computed_md5 {
            return Err(Failure::Wrong(
                "flash read-back does not match the received md5",
            ));
        }
        line.text(", ")
            .num(flash.pages_programmed() as u64)
            .text(" flash pages programmed, read-back md5 ok");
    }
    line.print();
    Ok(())
}

fn verified_by(end: &FrameEnd) -> &'static str {
    if end.md5 == Verdict::Verified {
        Algorithm::Md5.member()
    } else {
        Algorithm::Xxh3.member()
    }
}

/// Prints how a stream went; `false` if it stopped on a failure.
fn report(what: &str, tally: &Tally) -> bool {
    let mut line = Line::new();
    line.text(what)
        .text(": ")
        .num(tally.verified as u64)
        .text(" verified, ")
        .num(tally.rejected as u64)
        .text(" rejected");
    let Some(failure) = &tally.failure else {
        line.print();
        return true;
    };
    line.text("; stopped: ");
    match failure {
        Failure::Read(ReadError::Decode(e)) => line
            .text("the frames could not be decoded: ")
            .text(decode_error_name(e)),
        Failure::Read(_) => line.text("reading the source failed"),
        Failure::Header(HeaderError::Shape(_)) => {
            line.text("a header lacks a field of its typed view, or has the wrong type")
        }
        Failure::Header(HeaderError::ScratchTooSmall) => {
            line.text("no room to unescape a header string")
        }
        Failure::Header(_) => line.text("no header to read"),
        Failure::Flash(e) => line.text(e.as_str()),
        Failure::Wrong(why) => line.text(why),
    };
    line.print();
    false
}

/// The variant name of a decoding error (its `Display` would pull in `core::fmt`).
fn decode_error_name(e: &DecodeError) -> &'static str {
    match e {
        DecodeError::NegativeLength { .. } => "NegativeLength",
        DecodeError::EmptyHeader => "EmptyHeader",
        DecodeError::HeaderTooLarge { .. } => "HeaderTooLarge",
        DecodeError::HeaderNotJson(_) => "HeaderNotJson",
        DecodeError::BodyLengthInvalid { .. } => "BodyLengthInvalid",
        DecodeError::SizeMismatch { .. } => "SizeMismatch",
        DecodeError::BodyTooLarge { .. } => "BodyTooLarge",
        DecodeError::ChecksumMalformed { .. } => "ChecksumMalformed",
        DecodeError::ChecksumMismatch { .. } => "ChecksumMismatch",
        DecodeError::UnexpectedEof { .. } => "UnexpectedEof",
        DecodeError::Poisoned => "Poisoned",
        _ => "another decoding error",
    }
}
