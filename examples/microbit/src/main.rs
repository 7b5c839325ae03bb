//! unstick-microbit: a Cortex-M0 firmware (QEMU's `microbit`, an nRF51822 with 16 KiB of RAM
//! and 256 KiB of flash) that serves unstick's file and shell protocols over its UART, to the
//! unchanged desktop CLI, with its files in the chip's flash.
//!
//! It is the Cortex-M4 device's firmware (`examples/device`) on a small part: the request
//! loop, the link layer, the host of a session and both protocols' hosts are that firmware's
//! files, included here (`#[path]`), not copies. What is this board's own: the UART and timer
//! drivers, the flash (NVMC) driver and the file store in flash ([`store`]), which keeps the
//! interface of the device's RAM store, and the sizes of the buffers.
#![no_std]
#![no_main]

mod clock;
#[path = "../../device/src/files.rs"]
mod files;
mod flash;
#[path = "../../device/src/host.rs"]
mod host;
#[path = "../../device/src/link.rs"]
mod link;
mod mmio;
#[path = "../../device/src/request.rs"]
mod request;
#[path = "../../device/src/shell.rs"]
mod shell;
#[path = "../../device/src/stack.rs"]
mod stack;
mod store;
#[path = "../../device/src/store_errors.rs"]
mod store_errors;
mod uart;

use cortex_m_rt::{entry, exception};
use unstick_core::serial_link::{LinkFrameReader, MAX_ENCODED, MAX_FRAME, MTU};

use crate::flash::Flash;
use crate::link::{Link, LinkBuffers};
use crate::request::serve_requests;
pub use crate::request::{Outcome, flush};
use crate::store::Store;
use crate::uart::{UART0_IRQ, Uart};

/// Header capacity of the sessions' decoders (and of a file request's path): the longest
/// request header taken. The CLI's are well under 300 bytes.
pub const HEADER_CAP: usize = 384;

/// Room for the frame heads and refusals a session queues: a quarter of the core's default,
/// enough for every reply this firmware gives (its refusals' messages are short and plain).
pub const SESSION_OUTBOX: usize = 768;

/// The board this firmware is built for, as its info reply names it.
pub const BOARD: &str = "microbit";

/// The target this firmware is built for, as its info reply names its platform.
pub const PLATFORM: &str = "thumbv6m-none-eabi";

/// Bytes read from the UART at once (its receive FIFO holds six).
const READ_BUFFER: usize = 64;

#[entry]
fn main() -> ! {
    // cortex-m-rt hands these to `main` as `&'static mut`, once.
    static mut READ_BUF: [u8; READ_BUFFER] = [0; READ_BUFFER];
    static mut HEAD: [u8; 4 + HEADER_CAP] = [0; 4 + HEADER_CAP];
    static mut READER: LinkFrameReader<MAX_FRAME> = LinkFrameReader::new();
    static mut PAYLOAD: [u8; MTU] = [0; MTU];
    static mut OUTGOING: [u8; MTU] = [0; MTU];
    static mut ENCODED: [u8; MAX_ENCODED] = [0; MAX_ENCODED];
    static mut FLASH: Option<Flash> = None;

    stack::paint();
    clock::start();
    let uart = Uart::take();
    let buffers = LinkBuffers {
        raw: READ_BUF,
        reader: READER,
        payload: PAYLOAD,
        outgoing: OUTGOING,
        encoded: ENCODED,
    };
    let mut link = Link::new(uart, buffers, clock::now_ms);
    let mut store = Store::mount(FLASH.insert(Flash::take()));
    serve_requests(&mut link, &mut store, HEAD)
}

/// The interrupts enabled: TIMER0's millisecond tick, and UART0's receive interrupt, which
/// only wakes the core from `wfi`.
#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    match u32::try_from(irqn) {
        Ok(clock::TIMER0_IRQ) => clock::tick(),
        Ok(UART0_IRQ) => Uart::rx_woken(),
        _ => {}
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // Nothing to report to and nobody to restart the board: stop here, idling.
    loop {
        mmio::wfi();
    }
}
