//! `memcpy`, `memmove`, `memset`, `memcmp` and `bcmp`: the compiler emits calls to these for
//! copies, fills and comparisons, and without libc nobody else defines them.
//!
//! They must not be written as plain byte loops: LLVM recognises such a loop as the very idiom
//! it implements and replaces it with a call to `memcpy`/`memset`, so `memcpy` would call itself
//! forever. Copies and fills therefore use the x86 string instructions (`rep movsb`,
//! `rep stosb`; fast on every CPU with ERMSB), and comparisons read through `read_volatile`,
//! which the optimiser may not merge into a call.

use core::arch::asm;
use core::ptr;

/// Copies `n` bytes forwards from `src` to `dest`, one at a time (`rep movsb`).
///
/// # Safety
/// `src` must be valid for reading and `dest` for writing `n` bytes; if the ranges overlap,
/// `dest` must not be above `src`.
unsafe fn copy_forward(dest: *mut u8, src: *const u8, n: usize) {
    // SAFETY: the caller guarantees both ranges are valid and that a forward copy is correct.
    // The direction flag is clear (x86-64 ABI), so `rep movsb` walks upwards from `rdi`/`rsi`.
    unsafe {
        asm!(
            "rep movsb",
            inout("rcx") n => _,
            inout("rdi") dest => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags),
        );
    }
}

/// Copies `n` bytes backwards (last byte first) from `src` to `dest`.
///
/// # Safety
/// `src` must be valid for reading and `dest` for writing `n` bytes (`n > 0`).
unsafe fn copy_backward(dest: *mut u8, src: *const u8, n: usize) {
    // SAFETY: the caller guarantees both ranges are valid and `n > 0`, so `n - 1` is the offset
    // of their last bytes. `std` makes `rep movsb` walk downwards; `cld` restores the clear
    // direction flag the ABI requires before any other code runs.
    unsafe {
        asm!(
            "std",
            "rep movsb",
            "cld",
            inout("rcx") n => _,
            inout("rdi") dest.add(n - 1) => _,
            inout("rsi") src.add(n - 1) => _,
            options(nostack),
        );
    }
}

/// C `memcpy`.
///
/// # Safety
/// As in C: both ranges valid for `n` bytes and not overlapping.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract is `copy_forward`'s (non-overlapping ranges qualify).
    unsafe { copy_forward(dest, src, n) };
    dest
}

/// C `memmove`: ranges may overlap.
///
/// # Safety
/// As in C: both ranges valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    let (d, s) = (dest as usize, src as usize);
    if n == 0 || d == s {
        return dest;
    }
    if d < s || d >= s.wrapping_add(n) {
        // SAFETY: `dest` is below `src`, or past the end of the source: a forward copy never
        // overwrites a source byte before reading it.
        unsafe { copy_forward(dest, src, n) };
    } else {
        // SAFETY: `dest` starts inside the source range, so copy the last byte first; `n > 0`.
        unsafe { copy_backward(dest, src, n) };
    }
    dest
}

/// C `memset`.
///
/// # Safety
/// As in C: `dest` valid for writing `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees `dest` is valid for `n` bytes; `rep stosb` stores `al` into
    // exactly those, upwards (direction flag clear).
    unsafe {
        asm!(
            "rep stosb",
            inout("rcx") n => _,
            inout("rdi") dest => _,
            in("al") c as u8,
            options(nostack, preserves_flags),
        );
    }
    dest
}

/// C `memcmp`: the sign of the first differing byte pair, or 0.
///
/// # Safety
/// As in C: both ranges valid for reading `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: `i < n` and both ranges are valid for `n` bytes.
        let (x, y) = unsafe { (ptr::read_volatile(a.add(i)), ptr::read_volatile(b.add(i))) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// C `bcmp`: 0 when the ranges are equal, non-zero otherwise.
///
/// # Safety
/// As in C: both ranges valid for reading `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the same contract as `memcmp`.
    unsafe { memcmp(a, b, n) }
}
