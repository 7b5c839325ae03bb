//! Header frames, the custom-header cure for sticky packets:
//! `[L: 4-byte LE i32][L bytes of JSON header][body of "total_size" bytes]`.
//!
//! `cargo run --example header_frames`
//!
//! This is the second solution of the Python scripts unstick started from: the header says how
//! long the body is and what it is (file name, digest). A sender thread writes four frames over
//! loopback TCP: one from unstick's encoder (with a real MD5), the exact bytes the Python shell
//! server sends (its `"md5"` is a placeholder, not a digest), one whose body was damaged in
//! transit, and the exact bytes the Python upload client sends (`"filesize"`, and a Windows path
//! with `\uXXXX` escapes, since `json.dumps` writes ASCII). The receiver prints each typed header
//! and the digest verdict.

use std::error::Error;
use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

use embedded_io_adapters::std::FromStd;
use embedded_io_adapters::std::ToStd;
use serde::{Deserialize, Serialize};
use unstick_core::blocking::{FrameReader, write_frame};
use unstick_core::{Algorithm, Event, FrameDecoder, HeaderFrameEncoder, Profile, ReadError};

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

fn main() -> Result<()> {
    run(&mut io::stdout().lock())
}

/// What the sender's application puts in a header; the encoder adds `total_size` and `md5`.
#[derive(Serialize)]
struct Outgoing<'a> {
    file_name: &'a str,
}

/// The receiver's typed view of any of the four headers. Unknown members are ignored; the body
/// length and digests are read by the decoder itself.
#[derive(Deserialize)]
struct FileHeader {
    /// Written by unstick senders and the Python shell server.
    file_name: Option<String>,
    /// Written by the Python upload client, with the folder in `filepath`.
    filename: Option<String>,
    filepath: Option<String>,
}

/// A frame exactly as Python writes it: `struct.pack('i', len(h)) + h + body`, with `h` the
/// UTF-8 of `json.dumps(header)`.
fn python_frame(json: &str, body: &[u8]) -> Vec<u8> {
    let mut frame = (json.len() as i32).to_le_bytes().to_vec();
    frame.extend_from_slice(json.as_bytes());
    frame.extend_from_slice(body);
    frame
}

/// Sends the four frames.
fn send(stream: TcpStream) -> Result<()> {
    let mut io = FromStd::new(&stream);
    let body = b"first line of f1.txt\n";
    let mut head = [0u8; 256];

    // 1. unstick's encoder, asked for an MD5 (its default is XXH3-128).
    let encoder = HeaderFrameEncoder::new(Profile::I32_LE).checksum(Some(Algorithm::Md5));
    write_frame(
        &mut io,
        &encoder,
        &Outgoing {
            file_name: "f1.txt",
        },
        body,
        &mut head,
    )?;

    // 2. The Python shell server's reply header, byte for byte.
    let json = format!(
        r#"{{"md5": "fdsaf2143254f", "file_name": "f1.txt", "total_size": {}}}"#,
        body.len()
    );
    let mut raw = ToStd::new(&mut io);
    raw.write_all(&python_frame(&json, body))?;

    // 3. Like 1, with one body byte flipped on the way.
    let mut damaged = [0u8; 256];
    let n = encoder.encode_frame(
        &Outgoing {
            file_name: "f2.txt",
        },
        body,
        &mut damaged,
    )?;
    damaged[n - 1] ^= 0x20;
    raw.write_all(&damaged[..n])?;

    // 4. The Python upload client's header, byte for byte.
    let config = b"[server]\nport = 8090\n";
    let json = format!(
        r#"{{"filepath": "C:\\Users\\Aaron\\Desktop\\\u65b0\u5efa\u6587\u4ef6\u5939", "filename": "config", "filesize": {}}}"#,
        config.len()
    );
    raw.write_all(&python_frame(&json, config))?;
    Ok(())
}

/// Sends from a thread, receives here, and writes each header and verdict to `out`.
pub fn run(out: &mut dyn Write) -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let sender = thread::spawn(move || send(listener.accept()?.0));

    let stream = TcpStream::connect(address)?;
    let mut read_buf = [0u8; 1024];
    let decoder = FrameDecoder::<512>::header_frames(Profile::I32_LE);
    let mut receiver = FrameReader::new(FromStd::new(&stream), decoder, &mut read_buf);
    let mut body = Vec::new();
    loop {
        let event = match receiver.next_event() {
            Ok(Some(event)) => event,
            Ok(None) => break, // clean end of stream, between frames
            Err(ReadError::Decode(e)) if e.is_recoverable() => {
                writeln!(out, "  verdict: refused, {e}")?;
                writeln!(
                    out,
                    "  (the frame was consumed whole; the next one decodes)"
                )?;
                continue;
            }
            Err(e) => return Err(e.to_string().into()),
        };
        match event {
            Event::Head(info) => {
                let json = receiver.decoder().header_json().unwrap_or("").to_owned();
                let header: FileHeader = receiver.decoder().header()?;
                writeln!(out, "header, {} bytes on the wire: {json}", info.header_len)?;
                let name = header.file_name.or(header.filename).unwrap_or_default();
                let folder = header.filepath.unwrap_or_else(|| "(none)".into());
                writeln!(out, "  typed: name = {name}, folder = {folder}")?;
                body.clear();
            }
            Event::Body(chunk) => body.extend_from_slice(chunk),
            Event::End(end) => {
                let text = String::from_utf8_lossy(&body);
                writeln!(out, "  body, {} bytes: {text:?}", end.body_len)?;
                writeln!(out, "  verdict: md5 {:?}, xxh3 {:?}", end.md5, end.xxh3)?;
            }
            Event::NeedMore => {}
        }
    }
    sender.join().map_err(|_| "sender thread panicked")??;
    Ok(())
}
