//! # unstick-ffi
//!
//! A C ABI for [`unstick_core`]'s frame decoder and encoders, for firmware and programs written
//! in C or C++: `libunstick.a` (every target) and `libunstick.so` (hosted targets), declared in
//! `include/unstick.h`, which `cbindgen` generates from this crate (`ffi/generate-header.sh`).
//!
//! ## Architecture
//!
//! Every function is a thin shell around the core: it checks its pointers and lengths, turns
//! them into slices, calls the core and maps the result to a flat [`UnstickStatus`]. Nothing is
//! allocated and nothing is kept between calls but the decoder the caller holds:
//!
//! - **Decoder** ([`decoder`]): the caller provides its memory (`unstick_decoder_size()` bytes
//!   aligned to `unstick_decoder_align()`, or any [`UNSTICK_DECODER_STORAGE_SIZE`] bytes), and
//!   `unstick_decoder_init` places a `FrameDecoder<UNSTICK_HEADER_CAP>` there. Each
//!   `unstick_decoder_feed` consumes input and fills an [`UnstickEvent`]: a frame head (its
//!   JSON header and body length), a body chunk (a pointer into the caller's input), a frame end
//!   (digest verdicts) or "need more". The calling order is the core's: feed until
//!   `UNSTICK_EVENT_KIND_NEED_MORE`, with the unconsumed rest of the input and then with new
//!   input.
//! - **Encoders** ([`encoder`]): a header frame from JSON text and a body, with `"total_size"`
//!   and optionally a digest added as the Rust encoder adds them; a plain frame from a body.
//!   Both write into the caller's buffer.
//! - **Statuses** ([`status`]): one enum for every function, named by phase (`ARG_`, `DECODE_`,
//!   `ENCODE_`), with `unstick_status_name` and `unstick_status_message` as static strings.
//!
//! ## Promises
//!
//! No function panics, allocates or recurses on any input: null pointers, lengths above
//! `PTRDIFF_MAX`, too little memory and out-of-range enum values are `UNSTICK_STATUS_ARG_*`
//! statuses, and the core's promise (no input makes the decoder panic) covers the rest. Pointers
//! that are not null must be valid for the lengths given, as each function's `# Safety` says;
//! that the C side alone can promise.
//!
//! ## Panics and the ABI
//!
//! No panic is expected (see above), but should one happen it must not unwind into C. How a
//! `no_std` library gets its panic runtime depends on the build's panic strategy:
//!
//! - `panic = "abort"` (the `ffi` profile of the workspace's `Cargo.toml`, which `run.sh` and the
//!   README build with, and every bare-metal target): the library is `no_std` through and
//!   through and brings its own `#[panic_handler]`, which aborts on the spot: through the C
//!   library's `abort()` on hosted targets (which always link one), and with a permanently
//!   undefined instruction (`udf`, a HardFault) on bare metal, where the C side may have no C
//!   library. The thumb build goes further with `panic = "immediate-abort"`, which traps at the
//!   panic itself and never calls the handler.
//! - `panic = "unwind"` (cargo's own profiles on hosted targets, so that `cargo build
//!   --workspace` and `cargo test` work): `core` alone cannot link a library with that
//!   strategy, so `std` is linked for its panic runtime, and a panic that reaches one of the
//!   `extern "C"` functions aborts the process there (Rust guarantees it since 1.81), never
//!   unwinding into C. `cargo test` builds this way too, with the test harness's std.
//!
//! ## Cargo features
//!
//! - `md5` (default): verify and compute `"md5"` digests, as the seed's Python scripts send.
//! - `xxh3` (default): verify and compute `"xxh3"` digests.
//!
//! With a feature off, a declared digest of that kind ends its frame as
//! `UNSTICK_VERDICT_UNSUPPORTED`, and encoding with it is
//! `UNSTICK_STATUS_ENCODE_DIGEST_UNSUPPORTED`.
#![no_std]
#![deny(missing_docs)]

mod boundary;
pub mod decoder;
pub mod encoder;
pub mod profile;
pub mod status;
#[cfg(test)]
mod tests;

pub use decoder::{
    UNSTICK_DECODER_STORAGE_SIZE, UNSTICK_HEADER_CAP, UnstickDecoder, UnstickEvent,
    UnstickEventKind, UnstickVerdict,
};
pub use encoder::UnstickDigest;
pub use profile::{UnstickByteOrder, UnstickProfile};
pub use status::UnstickStatus;

// The unwinding runtime, for builds with `panic = "unwind"` (see "Panics and the ABI").
#[cfg(panic = "unwind")]
extern crate std;

/// Aborts without unwinding (see the crate docs, "Panics and the ABI").
#[cfg(all(not(panic = "unwind"), not(test), not(target_os = "none")))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    unsafe extern "C" {
        /// The C library's `abort()` (C99 7.20.4.1), in every hosted program's C library.
        fn abort() -> !;
    }
    // SAFETY: `abort` takes no arguments, is safe to call in any state and never returns.
    unsafe { abort() }
}

/// Traps without unwinding (see the crate docs, "Panics and the ABI").
#[cfg(all(not(panic = "unwind"), not(test), target_os = "none"))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: `udf` raises an UndefinedInstruction fault (a HardFault on Cortex-M0), the
    // architecture's abort: it reads and writes no memory and never falls through.
    #[cfg(target_arch = "arm")]
    unsafe {
        core::arch::asm!("udf #0", options(noreturn, nomem, nostack))
    }
    #[cfg(not(target_arch = "arm"))]
    loop {
        core::hint::spin_loop();
    }
}
