//! unstick-device: a Cortex-M4 firmware (QEMU's `mps2-an386`) that serves unstick's file and
//! shell protocols over its UART, to the unchanged desktop CLI.
//!
//! No `std`, no allocator: the core's sans-IO sessions (`FileServerSession`,
//! `ShellServerSession`) decide everything about the protocols; this firmware feeds them the
//! UART's bytes, carries out what they ask on a file store in RAM ([`store`]) or by running a
//! built-in command ([`shell`]), and sends what they hand out.
//!
//! The UART carries link frames both ways ([`link`]): each request begins with a start frame,
//! damaged frames are dropped, and a request with a frame missing is dropped with a notice to
//! the client. Both protocols share the one stream of requests. Every request is a header
//! frame, so the device reads each request's head (prefix and JSON header) first and looks at
//! its `"op"`: `exec` goes to a fresh shell session, anything else (including the seed's
//! upload, which has no `op`, and `info`, answered for both protocols) to a fresh file
//! session. The session gets the head's bytes, then the request's, until it has answered or
//! asks to close; either way the device then takes nothing but the next start frame: there is
//! no connection to close on a UART. Over QEMU's `-serial tcp:...` bridge (`uart+tcp://` to
//! the CLI), each TCP connection of the CLI is a run of requests on the line.
#![no_std]
#![no_main]

mod clock;
mod files;
mod host;
mod link;
mod shell;
mod stack;
mod store;
mod uart;

use cortex_m_rt::{entry, exception};
use embedded_io::{Read, ReadReady, Write};
use unstick_core::serial_link::{LinkFrameReader, MAX_ENCODED, MAX_FRAME, MTU};
use unstick_core::session::{BoundedText, Transmit};
use unstick_core::{Event, FrameDecoder, Profile};

use crate::link::{Fill, Link, LinkBuffers, REQUEST_IDLE, WaitForInput};
use crate::store::{CAPACITY, Store};
use crate::uart::{UART0_BASE, UART0_RX_IRQ, Uart};

/// Header capacity of the sessions' decoders: the longest request header taken. The CLI's are
/// well under 300 bytes (a resumed `put` with a long path is the longest).
pub const HEADER_CAP: usize = 1024;

/// The board this firmware is built for, as its info reply names it.
pub const BOARD: &str = "mps2-an386";

/// The target this firmware is built for, as its info reply names its platform.
pub const PLATFORM: &str = "thumbv7em-none-eabihf";

/// Bytes read from the UART at once (it holds one; more arrive while the firmware works).
const READ_BUFFER: usize = 256;

/// How a request ended (either way, the device then waits for the next start frame).
pub enum Outcome {
    /// Answered.
    Answered,
    /// The session asked to close (a refusal that leaves the rest of the request unread), or
    /// the request broke off.
    Closed,
}

#[entry]
fn main() -> ! {
    // cortex-m-rt hands these to `main` as `&'static mut`, once.
    static mut STORE: [u8; CAPACITY] = [0; CAPACITY];
    static mut READ_BUF: [u8; READ_BUFFER] = [0; READ_BUFFER];
    static mut HEAD: [u8; 4 + HEADER_CAP] = [0; 4 + HEADER_CAP];
    static mut READER: LinkFrameReader<MAX_FRAME> = LinkFrameReader::new();
    static mut PAYLOAD: [u8; MTU] = [0; MTU];
    static mut OUTGOING: [u8; MTU] = [0; MTU];
    static mut ENCODED: [u8; MAX_ENCODED] = [0; MAX_ENCODED];

    stack::paint();
    clock::start();
    // SAFETY: UART0 of the mps2-an386 is a CMSDK APB UART at this address, and this is the
    // only place that takes it.
    let uart = unsafe { Uart::new(UART0_BASE) };
    uart.enable_rx_interrupt(UART0_RX_IRQ);
    let buffers = LinkBuffers {
        raw: READ_BUF,
        reader: READER,
        payload: PAYLOAD,
        outgoing: OUTGOING,
        encoded: ENCODED,
    };
    let mut link = Link::new(uart, buffers, clock::now_ms);
    let mut store = Store::new(STORE);
    loop {
        link.next_request();
        let outcome = match read_head(&mut link, HEAD) {
            Some(len) => {
                let head = &HEAD[..len];
                match peek(head) {
                    Peek::Exec => shell::serve(&mut link, &store, head),
                    Peek::Other { upload_size } => {
                        files::serve(&mut link, &mut store, head, upload_size)
                    }
                }
            }
            None => Outcome::Closed,
        };
        link.end_request(matches!(outcome, Outcome::Answered));
    }
}

/// Reads a request's head into `head`: the 4-byte prefix and, when its length is one a session
/// takes, the header. Returns its length; `None` when the request broke off inside it.
fn read_head<U: Read + ReadReady + Write + WaitForInput>(
    link: &mut Link<'_, U>,
    head: &mut [u8],
) -> Option<usize> {
    let mut len = 0;
    let mut want = 4;
    while len < want {
        let deadline = link.now() + REQUEST_IDLE;
        if !matches!(link.fill_until(Some(deadline)), Fill::Bytes) {
            return None;
        }
        let take = link.unread().len().min(want - len);
        head[len..len + take].copy_from_slice(&link.unread()[..take]);
        link.consume(take);
        len += take;
        if len == 4 && want == 4 {
            let header_len = i32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            match usize::try_from(header_len) {
                // The session refuses an impossible length from the prefix alone.
                Ok(n) if (1..=HEADER_CAP).contains(&n) => want = 4 + n,
                _ => return Some(4),
            }
        }
    }
    Some(len)
}

/// Where a request goes.
enum Peek {
    /// `"op":"exec"`: the shell.
    Exec,
    /// Anything else: the file server (which refuses what it does not know), with the size an
    /// upload announced.
    Other { upload_size: u64 },
}

/// The members of a request header that route it.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct RouteView {
    op: Option<BoundedText<16>>,
    offset: Option<u64>,
}

/// Decodes a request's head on its own, to route it. Out of line, as each protocol's `serve`
/// is, so that its decoder is off the stack before a session is on it.
#[inline(never)]
fn peek(head: &[u8]) -> Peek {
    let mut decoder = FrameDecoder::<HEADER_CAP>::header_frames(Profile::I32_LE);
    let Ok((_, Event::Head(info))) = decoder.feed(head) else {
        return Peek::Other { upload_size: 0 };
    };
    let body_len = info.body_len;
    let Ok(view) = decoder.header::<RouteView>() else {
        return Peek::Other {
            upload_size: body_len,
        };
    };
    if view.op.as_ref().and_then(BoundedText::get) == Some("exec") {
        return Peek::Exec;
    }
    Peek::Other {
        upload_size: body_len.saturating_add(view.offset.unwrap_or(0)),
    }
}

/// Sends what a session has queued: `poll` is its `poll_transmit`, `body` the body its last
/// `handle_*` call was given. A body shorter than the session announced (a mistake here, not
/// the client's) is not sent cut short: the request is ended unanswered, which the client
/// reports, rather than sending a frame that puts the stream out of step.
pub fn flush<U: Read + ReadReady + Write + WaitForInput>(
    link: &mut Link<'_, U>,
    body: &[u8],
    mut poll: impl FnMut(&mut [u8]) -> Option<Transmit>,
) {
    let mut scratch = [0u8; 256];
    while let Some(transmit) = poll(&mut scratch) {
        match transmit.resolve(&scratch, body) {
            Ok(bytes) => link.send(bytes),
            Err(_) => {
                link.end_request(false);
                return;
            }
        }
    }
}

/// The one external interrupt enabled, UART0's receive interrupt, only wakes the core from
/// `wfi`: clear it and return (the main loop reads the byte).
#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    if irqn == i16::try_from(UART0_RX_IRQ).unwrap_or(-1) {
        // SAFETY: UART0 is a CMSDK APB UART at this address.
        unsafe { Uart::clear_rx_interrupt(UART0_BASE) };
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // Nothing to report to and nobody to restart the board: stop here, idling.
    loop {
        clock::sleep_until_tick();
    }
}
