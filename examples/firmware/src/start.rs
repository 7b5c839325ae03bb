//! Process entry and panics, in place of the C runtime and `std`.

use crate::linux;

// The kernel starts the process at `_start` with `rsp` pointing at `argc` (16-byte aligned,
// but nothing here relies on that). The x86-64 ABI wants `rsp` 16-byte aligned *before* a
// `call`, so align it explicitly, clear `rbp` to mark the outermost frame, and call Rust. The
// entry function never returns; `ud2` traps if it ever did.
core::arch::global_asm!(
    ".globl _start",
    ".type _start,@function",
    "_start:",
    "    xor ebp, ebp",
    "    and rsp, -16",
    "    call {entry}",
    "    ud2",
    ".size _start, . - _start",
    entry = sym entry,
);

/// Called once from `_start`: runs the program and exits with its status.
extern "C" fn entry() -> ! {
    linux::exit(crate::run())
}

/// Reports a panic and exits with status 101.
///
/// It reads nothing from the `PanicInfo`, not even the location: only a handler that ignores it
/// lets the optimiser delete the message arguments every panic site in `core` builds (index out
/// of bounds, slice and `str` boundaries, ...), and with them all of `core::fmt` they point to,
/// about 12 KB of this binary. The panic sites stay; none is expected to be reached.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    linux::write_all(linux::STDOUT, b"unstick-firmware: panicked\n");
    linux::exit(101)
}

/// The precompiled `core` for this target is built to unwind, and unoptimised builds keep a
/// reference to the unwinder's personality routine. With `panic = "abort"` nothing ever unwinds,
/// so this is never called; it ends the process if it ever were.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {
    linux::exit(134)
}
