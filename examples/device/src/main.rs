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
mod request;
mod shell;
mod stack;
mod store;
mod store_errors;
mod uart;

use cortex_m_rt::{entry, exception};
use unstick_core::serial_link::{LinkFrameReader, MAX_ENCODED, MAX_FRAME, MTU};

use crate::link::{Link, LinkBuffers};
use crate::request::serve_requests;
pub use crate::request::{Outcome, flush};
use crate::store::{CAPACITY, Store};
use crate::uart::{UART0_BASE, UART0_RX_IRQ, Uart};

/// Header capacity of the sessions' decoders: the longest request header taken. The CLI's are
/// well under 300 bytes (a resumed `put` with a long path is the longest).
pub const HEADER_CAP: usize = 1024;

/// Room for the frame heads and refusals a session queues: a listing entry's head with the
/// longest escaped name this store holds, or an error frame with the longest refusal message
/// (480 bytes, its escapes doubled in JSON), fits. The core's default (4 KiB) is for a server
/// whose names and paths run to 4 KiB.
pub const SESSION_OUTBOX: usize = 1536;

/// The board this firmware is built for, as its info reply names it.
pub const BOARD: &str = "mps2-an386";

/// The target this firmware is built for, as its info reply names its platform.
pub const PLATFORM: &str = "thumbv7em-none-eabihf";

/// Bytes read from the UART at once (it holds one; more arrive while the firmware works).
const READ_BUFFER: usize = 256;

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
    serve_requests(&mut link, &mut store, HEAD)
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
