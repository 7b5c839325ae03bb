//! How deep the stack has ever been: the free stack is painted with a pattern at boot, and the
//! high-water mark is where the pattern first gives way (the `stack` built-in reports it).

use core::ptr;

/// What unused stack holds.
const PAINT: u32 = 0xA5A5_5A5A;

/// Room left unpainted below the stack pointer of the painting function.
const MARGIN: usize = 256;

unsafe extern "C" {
    /// The top of the stack (cortex-m-rt's `link.x`: the end of RAM).
    static _stack_start: u32;
    /// The end of `.bss` and `.uninit`: the lowest address the stack can grow to.
    static __sheap: u32;
}

/// Only the linker symbols' addresses are taken, never their values.
fn stack_bottom() -> usize {
    (ptr::addr_of!(__sheap) as usize + 3) & !3
}

fn stack_top() -> usize {
    ptr::addr_of!(_stack_start) as usize
}

/// Paints the stack below this function's frame. Call once, early. Never inlined: inlined, its
/// frame would be part of the caller's, which may reach below the marker (on the micro:bit's
/// firmware `main`'s did, and its locals were painted over).
#[inline(never)]
pub fn paint() {
    let marker = 0u8;
    let sp = ptr::addr_of!(marker) as usize;
    let mut addr = stack_bottom();
    while addr + MARGIN < sp {
        // SAFETY: `addr` is word-aligned, between the end of the statics and below the live
        // stack (the margin keeps this frame out of it): RAM nothing else uses yet.
        unsafe { ptr::write_volatile(addr as *mut u32, PAINT) };
        addr += 4;
    }
}

/// The most stack ever used since [`paint`], in bytes.
pub fn high_water() -> usize {
    let (bottom, top) = (stack_bottom(), stack_top());
    let mut addr = bottom;
    // SAFETY: word-aligned reads of RAM between the end of the statics and the top of the
    // stack; a word the stack never reached still holds the paint.
    while addr < top && unsafe { ptr::read_volatile(addr as *const u32) } == PAINT {
        addr += 4;
    }
    top - addr
}
