//! unstick-decoder-m4: the least a firmware links to receive unstick frames on a Cortex-M4.
//!
//! It reads the seed's header frames (`[i32 LE length][JSON header][body]`) from UART0 of
//! QEMU's `mps2-an386`, verifies each body's `"md5"` as it streams by, reads one member of each
//! header (the string `"file_name"`), and answers every frame with one byte: `+` when the body
//! matched its digest (or declared none), `-` when it did not. No allocator, no protocol
//! sessions, no XXH3, and no serde: the member is looked up (`FrameDecoder::members`), not read
//! into a derived view, whose visitor would be a KiB of its own. It is built to measure what
//! the core's decoder costs on the chip (README, "unstick-core on microcontrollers").
#![no_std]
#![no_main]

use core::ptr;

use cortex_m_rt::entry;
use unstick_core::{DecodeError, Event, FrameDecoder, Profile};

/// UART0 of the mps2-an386 (a CMSDK APB UART).
const UART0: usize = 0x4000_4000;
const DATA: usize = 0x0;
const STATE: usize = 0x4;
const CTRL: usize = 0x8;
const BAUDDIV: usize = 0x10;
const TX_FULL: u32 = 1;
const RX_FULL: u32 = 2;

/// External interrupts of the mps2-an386's NVIC (AN386; QEMU models the same 32). The firmware
/// polls and enables none.
const IRQS: usize = 32;

unsafe extern "C" {
    /// cortex-m-rt's handler for any exception or interrupt without its own (`link.x`).
    fn DefaultHandler();
}

/// The interrupt half of the vector table (cortex-m-rt's `device` feature: the application or its
/// PAC supplies it), sized for this chip instead of cortex-m-rt's generic 240 entries.
// SAFETY: cortex-m-rt's `link.x` places `.vector_table.interrupts` right after the 16 exception
// vectors and expects exactly one `__INTERRUPTS` there, an array of handler addresses; nothing
// else in this program defines that symbol or section.
#[unsafe(link_section = ".vector_table.interrupts")]
#[unsafe(no_mangle)]
static __INTERRUPTS: [unsafe extern "C" fn(); IRQS] = [DefaultHandler; IRQS];

fn register(offset: usize) -> *mut u32 {
    (UART0 + offset) as *mut u32
}

fn read_byte() -> u8 {
    // SAFETY: UART0's registers are at these addresses on this board; volatile accesses of
    // aligned 32-bit registers, by this one thread.
    unsafe {
        while ptr::read_volatile(register(STATE)) & RX_FULL == 0 {}
        ptr::read_volatile(register(DATA)) as u8
    }
}

fn write_byte(byte: u8) {
    // SAFETY: as in `read_byte`.
    unsafe {
        while ptr::read_volatile(register(STATE)) & TX_FULL != 0 {}
        ptr::write_volatile(register(DATA), u32::from(byte));
    }
}

#[entry]
fn main() -> ! {
    // SAFETY: as in `read_byte`; enables TX and RX with a divider QEMU accepts.
    unsafe {
        ptr::write_volatile(register(BAUDDIV), 16);
        ptr::write_volatile(register(CTRL), 0b11);
    }
    let mut decoder = FrameDecoder::<256>::header_frames(Profile::I32_LE);
    let mut named = 0u32;
    loop {
        let byte = [read_byte()];
        let mut input = &byte[..];
        loop {
            match decoder.feed(input) {
                Ok((used, event)) => {
                    input = &input[used..];
                    match event {
                        Event::Head(_) => {
                            if let Ok([file_name]) = decoder.members(["file_name"])
                                && file_name
                                    .str()
                                    .is_ok_and(|name| name.is_some_and(|n| !n.is_empty()))
                            {
                                named = named.wrapping_add(1);
                            }
                        }
                        Event::End(_) => write_byte(b'+'),
                        Event::Body(_) => {}
                        Event::NeedMore => break,
                    }
                }
                Err(DecodeError::ChecksumMismatch { .. }) => write_byte(b'-'),
                Err(_) => {
                    write_byte(b'!');
                    decoder.reset();
                    break;
                }
            }
        }
        core::hint::black_box(named);
    }
}

/// Required of every `no_std` binary, but never linked in: with `panic = "immediate-abort"`
/// (`.cargo/config.toml`) a panic traps where it happens instead of calling it.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}
