//! Plain frames, the simplest cure for sticky packets: `[N: 4-byte LE i32][N bytes]`.
//!
//! `cargo run --example plain_frames`
//!
//! This is the first solution of the Python scripts unstick started from (`struct.pack('i',
//! total_size)` then the data). A sender thread writes a few messages over loopback TCP, short
//! and long and empty, back to back; the receiver reads through a 1024-byte buffer and gets each
//! one whole, however the bytes were split or glued in transit.

use std::error::Error;
use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

use embedded_io_adapters::std::FromStd;
use unstick_core::blocking::{FrameReader, write_plain_frame};
use unstick_core::{FrameDecoder, Profile};

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

fn main() -> Result<()> {
    run(&mut io::stdout().lock())
}

/// The messages the sender sends, in order.
fn messages() -> Vec<Vec<u8>> {
    let long = "stdout of a chatty command\n".repeat(111); // 2,997 bytes
    vec![
        b"hello".to_vec(),
        b"world".to_vec(),
        long.into_bytes(),
        Vec::new(),
        "done, \u{2713}".as_bytes().to_vec(),
    ]
}

/// Sends [`messages`] from a thread and receives them here, writing what arrived to `out`.
pub fn run(out: &mut dyn Write) -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;

    let sender = thread::spawn(move || -> Result<Vec<String>> {
        let (stream, _) = listener.accept()?;
        let mut io = FromStd::new(&stream);
        let mut log = Vec::new();
        for message in messages() {
            write_plain_frame(&mut io, &Profile::I32_LE, &message)?;
            let prefix = (message.len() as i32).to_le_bytes(); // what went before the body
            log.push(format!("sent [{}] + {} bytes", hex(&prefix), message.len()));
        }
        Ok(log) // the stream closes here: a clean end of stream, between frames
    });

    let stream = TcpStream::connect(address)?;
    let mut read_buf = [0u8; 1024];
    let mut body_buf = vec![0u8; 8192];
    let decoder = FrameDecoder::<0>::plain_frames(Profile::I32_LE);
    let mut receiver = FrameReader::new(FromStd::new(&stream), decoder, &mut read_buf);
    let mut received = Vec::new();
    while let Some((info, body, _end)) = receiver.read_frame(&mut body_buf)? {
        received.push(format!("got {:5} bytes: {}", info.body_len, preview(body)));
    }

    let sent = sender.join().map_err(|_| "sender thread panicked")??;
    for (sent, got) in sent.iter().zip(&received) {
        writeln!(out, "{sent:30} -> {got}")?;
    }
    writeln!(
        out,
        "{} frames sent, {} received",
        sent.len(),
        received.len()
    )?;
    Ok(())
}

/// A message's text, shortened in the middle when long.
fn preview(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= 32 {
        return format!("{text:?}");
    }
    let head: String = chars[..16].iter().collect();
    let tail: String = chars[chars.len() - 12..].iter().collect();
    format!("{head:?} ... {tail:?}")
}

fn hex(bytes: &[u8]) -> String {
    let pairs: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    pairs.join(" ")
}
