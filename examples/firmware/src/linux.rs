//! The two Linux system calls the firmware needs, made directly with the `syscall` instruction
//! (x86-64 ABI: number in `rax`, arguments in `rdi`, `rsi`, `rdx`; the kernel clobbers `rcx` and
//! `r11`). There is no libc to call instead.

use core::arch::asm;

const SYS_WRITE: usize = 1;
const SYS_EXIT_GROUP: usize = 231;
const EINTR: isize = 4;

/// Standard output.
pub const STDOUT: i32 = 1;

/// Writes all of `bytes` to file descriptor `fd`, retrying short writes and interrupted calls.
/// Gives up silently on any other error: there is nowhere left to report it.
pub fn write_all(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let ret: isize;
        // SAFETY: write(2) reads at most `bytes.len()` bytes from `bytes.as_ptr()`, which is a
        // valid, initialised slice for the duration of the call; it writes no user memory.
        // `rcx` and `r11` are declared clobbered as the syscall instruction requires.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") SYS_WRITE as isize => ret,
                in("rdi") fd as isize,
                in("rsi") bytes.as_ptr(),
                in("rdx") bytes.len(),
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack, readonly),
            );
        }
        match ret {
            n if n > 0 => bytes = bytes.get(n as usize..).unwrap_or_default(),
            n if n == -EINTR => {}
            _ => return,
        }
    }
}

/// Ends the process with `status`.
pub fn exit(status: i32) -> ! {
    // SAFETY: exit_group(2) takes an integer and does not return; no memory is touched.
    unsafe {
        asm!(
            "syscall",
            in("rax") SYS_EXIT_GROUP,
            in("rdi") status as isize,
            options(noreturn, nostack),
        );
    }
}
