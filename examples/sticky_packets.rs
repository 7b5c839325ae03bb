//! The "sticky packet" problem, reproduced over loopback TCP, then gone with unstick frames.
//!
//! `cargo run --example sticky_packets`
//!
//! TCP delivers a stream of bytes, not messages. A `read` returns whatever has arrived, up to the
//! buffer's size, so:
//!
//! 1. a receiver that reads too little (`recv(1024)` of a longer reply) leaves the rest in the
//!    socket, and its next read returns that rest instead of the next reply;
//! 2. two quick small sends ("hello", "world") can arrive together, in one read.
//!
//! Both ends live in this one thread, over a real loopback connection; each step waits until the
//! bytes are in the receiver's socket buffer, so what each read returns is the same on every run.

use std::error::Error;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use embedded_io_adapters::std::FromStd;
use serde::{Deserialize, Serialize};
use unstick_core::blocking::{FrameReader, write_frame, write_plain_frame};
use unstick_core::{Event, FrameDecoder, HeaderFrameEncoder, Profile};

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

fn main() -> Result<()> {
    run(&mut io::stdout().lock())
}

/// Runs both cases, raw and framed, writing what each read got to `out`.
pub fn run(out: &mut dyn Write) -> Result<()> {
    let shell = fake_shell();
    writeln!(out, "== raw TCP: what each recv() actually got ==")?;
    raw_short_read(out, &shell)?;
    raw_quick_sends(out)?;
    writeln!(out, "\n== unstick frames: every message arrives as sent ==")?;
    framed_short_read(out, &shell)?;
    framed_quick_sends(out)
}

/// Case 1, raw: the reply to `ls -l` is longer than the client's `recv(1024)`.
fn raw_short_read(out: &mut dyn Write, shell: &[(&str, Vec<u8>)]) -> Result<()> {
    let (mut client, mut server) = loopback_pair()?;
    let mut recv = [0u8; 1024];
    let mut unread = 0; // reply bytes sent to the client and not read yet
    writeln!(out, "case 1: the client reads 1024 bytes of each reply")?;
    for (command, reply) in shell {
        client.write_all(command.as_bytes())?;
        wait_until_buffered(&server, command.len())?;
        let n = server.read(&mut recv)?;
        server.write_all(reply)?;
        unread += reply.len();
        writeln!(
            out,
            "  server got {:?}, replies {} bytes",
            text(&recv[..n]),
            reply.len()
        )?;
        wait_until_buffered(&client, unread)?;
        let n = client.read(&mut recv)?;
        unread -= n;
        writeln!(
            out,
            "  client recv(1024) -> {n} bytes: {}",
            preview(&recv[..n])
        )?;
    }
    writeln!(
        out,
        "  each read after the first got the rest of an earlier reply, glued to the next one"
    )?;
    Ok(())
}

/// Case 2, raw: two small sends in quick succession arrive as one read.
fn raw_quick_sends(out: &mut dyn Write) -> Result<()> {
    let (mut client, mut server) = loopback_pair()?;
    client.write_all(b"hello")?;
    client.write_all(b"world")?;
    drop(client);
    wait_until_buffered(&server, 10)?;
    let mut recv = [0u8; 1024];
    writeln!(out, "case 2: the client sends \"hello\", then \"world\"")?;
    let first = server.read(&mut recv)?;
    writeln!(out, "  1: {:?}", text(&recv[..first]))?;
    let second = server.read(&mut recv)?;
    writeln!(out, "  2: {:?}", text(&recv[..second]))?;
    Ok(())
}

/// The header the framed server puts on each reply (the encoder adds `total_size` and `xxh3`).
#[derive(Serialize, Deserialize)]
struct ReplyHeader<'a> {
    command: &'a str,
}

/// Case 1, framed: same commands, same 1024-byte reads, but each reply is a header frame.
fn framed_short_read(out: &mut dyn Write, shell: &[(&str, Vec<u8>)]) -> Result<()> {
    let (client, server) = loopback_pair()?;
    let mut server_buf = [0u8; 1024];
    let mut commands = FrameReader::new(
        FromStd::new(&server),
        FrameDecoder::<0>::plain_frames(Profile::I32_LE),
        &mut server_buf,
    );
    let mut client_buf = [0u8; 1024];
    let mut replies = FrameReader::new(
        FromStd::new(&client),
        FrameDecoder::<256>::header_frames(Profile::I32_LE),
        &mut client_buf,
    );
    let encoder = HeaderFrameEncoder::new(Profile::I32_LE);
    let (mut command_buf, mut reply_buf, mut head_buf) = ([0u8; 64], vec![0u8; 8192], [0u8; 256]);
    writeln!(out, "case 1: the client reads through a 1024-byte buffer")?;
    for (command, reply) in shell {
        write_plain_frame(
            &mut FromStd::new(&client),
            &Profile::I32_LE,
            command.as_bytes(),
        )?;
        let (_, got, _) = commands
            .read_frame(&mut command_buf)?
            .ok_or("server: no command")?;
        let got = std::str::from_utf8(got)?;
        let header = ReplyHeader { command: got };
        write_frame(
            &mut FromStd::new(&server),
            &encoder,
            &header,
            reply,
            &mut head_buf,
        )?;
        let (info, body, end) = replies
            .read_frame(&mut reply_buf)?
            .ok_or("client: no reply")?;
        let header: ReplyHeader<'_> = replies.decoder().header()?;
        writeln!(
            out,
            "  reply to {:?}: {} of {} bytes, xxh3 {:?}: {}",
            header.command,
            body.len(),
            info.body_len,
            end.xxh3,
            preview(body)
        )?;
    }
    Ok(())
}

/// Case 2, framed: "hello" and "world" as plain frames still arrive in one read, and the
/// decoder separates them.
fn framed_quick_sends(out: &mut dyn Write) -> Result<()> {
    let (client, mut server) = loopback_pair()?;
    for message in [b"hello", b"world"] {
        write_plain_frame(&mut FromStd::new(&client), &Profile::I32_LE, message)?;
    }
    drop(client);
    wait_until_buffered(&server, 18)?;
    let mut recv = [0u8; 1024];
    let n = server.read(&mut recv)?;
    writeln!(
        out,
        "case 2: one recv(1024) got {n} bytes: {}",
        hex(&recv[..n])
    )?;
    let mut decoder = FrameDecoder::<0>::plain_frames(Profile::I32_LE);
    let mut input = &recv[..n];
    let mut frame = 0;
    loop {
        let (used, event) = decoder.feed(input)?;
        input = &input[used..];
        match event {
            Event::Head(info) => {
                frame += 1;
                write!(out, "  frame {frame}: {} bytes", info.body_len)?;
            }
            Event::Body(body) => write!(out, " {:?}", text(body))?,
            Event::End(_) => writeln!(out)?,
            Event::NeedMore => break,
        }
    }
    // The sender closed after two frames: the next read is a clean end between frames.
    let n = server.read(&mut recv)?;
    decoder.check_eof()?;
    writeln!(
        out,
        "  then recv -> {n} bytes: end of stream, between frames"
    )?;
    Ok(())
}

/// A connected client/server pair on an ephemeral loopback port.
fn loopback_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    Ok((client, server))
}

/// Waits (at most 5 s) until `n` bytes sit in `stream`'s receive buffer, without reading them.
fn wait_until_buffered(stream: &TcpStream, n: usize) -> io::Result<()> {
    let mut peek = vec![0u8; n];
    let deadline = Instant::now() + Duration::from_secs(5);
    while stream.peek(&mut peek)? < n {
        if Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "bytes did not arrive",
            ));
        }
        thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// Commands and the replies a shell might give: the first is about 2.3 KB, longer than one
/// 1024-byte read.
fn fake_shell() -> Vec<(&'static str, Vec<u8>)> {
    let mut listing = b"total 40\n".to_vec();
    for i in 1..=40 {
        let size = i * 97;
        let line =
            format!("-rw-r--r-- 1 aaron staff {size:5} Nov 25 09:{i:02} report-{i:02}.txt\n");
        listing.extend_from_slice(line.as_bytes());
    }
    vec![
        ("ls -l", listing),
        ("whoami", b"aaron\n".to_vec()),
        ("pwd", b"/home/aaron\n".to_vec()),
    ]
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The first and last few characters of a longer message.
fn preview(bytes: &[u8]) -> String {
    let text = text(bytes);
    if text.len() <= 40 {
        return format!("{text:?}");
    }
    format!("{:?} ... {:?}", &text[..20], &text[text.len() - 20..])
}

fn hex(bytes: &[u8]) -> String {
    let pairs: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    pairs.join(" ")
}
