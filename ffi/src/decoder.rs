//! The decoder in the caller's memory: init, feed, reset, end-of-stream check.

use core::ffi::c_void;
use core::mem::{align_of, size_of};
use core::ptr;

use unstick_core::{Event, Format, FrameDecoder, Verdict};

use crate::boundary;
use crate::profile::UnstickProfile;
use crate::status::UnstickStatus;

/// The longest JSON header the decoder takes, in bytes; longer ones are
/// `UNSTICK_STATUS_DECODE_HEADER_TOO_LARGE`. Headers of the seed and of unstick's own tools are
/// far shorter (the protocols' longest is under 1 KiB); this leaves room for applications'.
pub const UNSTICK_HEADER_CAP: usize = 8192;

/// Bytes of memory that hold a decoder at any alignment, on every target this library builds
/// for: a size for static storage (`static uint8_t mem[UNSTICK_DECODER_STORAGE_SIZE];`), which
/// a compile-time check in the library keeps true.
pub const UNSTICK_DECODER_STORAGE_SIZE: usize = 9216;

/// Which framing a decoder reads, one of the `UNSTICK_FORMAT_*` values.
pub type UnstickFormat = u32;
/// `[length][JSON header][body]`, the body length from the header's `"total_size"` (or
/// `"filesize"`): the seed's.
pub const UNSTICK_FORMAT_HEADER: UnstickFormat = 0;
/// `[length][body]`.
pub const UNSTICK_FORMAT_PLAIN: UnstickFormat = 1;

/// A frame decoder, placed in the caller's memory by `unstick_decoder_init`. It holds no
/// pointers: memory holding one may be moved or freed at will (when no call is using it), and
/// it needs no destructor.
pub struct UnstickDecoder(FrameDecoder<UNSTICK_HEADER_CAP>);

const _: () = assert!(
    size_of::<UnstickDecoder>() + align_of::<UnstickDecoder>() - 1 <= UNSTICK_DECODER_STORAGE_SIZE,
    "UNSTICK_DECODER_STORAGE_SIZE is too small for this target",
);

/// What `unstick_decoder_feed` has for the caller.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnstickEventKind {
    /// No event: the call failed (see its status).
    None = 0,
    /// All input was consumed and nothing is ready: feed more bytes.
    NeedMore = 1,
    /// A frame's head is complete: `data`/`len` are its JSON header, `body_len` its body length.
    Head = 2,
    /// A piece of the body: `data`/`len` are the first `len` bytes of the input just fed.
    Body = 3,
    /// The frame is complete: `body_len`, and the `md5` and `xxh3` verdicts.
    End = 4,
}

/// The outcome of one declared digest at a frame's end (a mismatch is a status instead,
/// `UNSTICK_STATUS_DECODE_MD5_MISMATCH` or `..._XXH3_MISMATCH`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnstickVerdict {
    /// The header declared no digest of this algorithm (or the event is not an end).
    Absent = 0,
    /// The body matches the declared digest.
    Verified = 1,
    /// The header member is there but is not a digest (the seed's placeholder
    /// `"fdsaf2143254f"`).
    NotADigest = 2,
    /// The header declared a digest this library was built without.
    Unsupported = 3,
}

impl From<Verdict> for UnstickVerdict {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Absent => UnstickVerdict::Absent,
            Verdict::Verified => UnstickVerdict::Verified,
            Verdict::NotADigest => UnstickVerdict::NotADigest,
            Verdict::Unsupported => UnstickVerdict::Unsupported,
        }
    }
}

/// One event, filled by every `unstick_decoder_feed` that gets past its argument checks.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnstickEvent {
    /// Which event; the fields below that it does not name are 0 (null).
    pub kind: UnstickEventKind,
    /// `HEAD`: the JSON header (not NUL-terminated, escapes of non-ASCII characters decoded to
    /// UTF-8), in the decoder's memory, valid until the feed after this frame's `END` (null for
    /// plain frames). `BODY`: the chunk, a pointer into the input just fed.
    pub data: *const u8,
    /// Length of `data` in bytes.
    pub len: usize,
    /// `HEAD`, `END`: the body length.
    pub body_len: u64,
    /// `END`: the verdict on the header's `"md5"`.
    pub md5: UnstickVerdict,
    /// `END`: the verdict on the header's `"xxh3"`.
    pub xxh3: UnstickVerdict,
}

const NO_EVENT: UnstickEvent = UnstickEvent {
    kind: UnstickEventKind::None,
    data: ptr::null(),
    len: 0,
    body_len: 0,
    md5: UnstickVerdict::Absent,
    xxh3: UnstickVerdict::Absent,
};

/// Size of a decoder in bytes: the memory `unstick_decoder_init` needs, when aligned to
/// `unstick_decoder_align()`.
#[unsafe(no_mangle)]
pub extern "C" fn unstick_decoder_size() -> usize {
    size_of::<UnstickDecoder>()
}

/// Alignment of a decoder in bytes.
#[unsafe(no_mangle)]
pub extern "C" fn unstick_decoder_align() -> usize {
    align_of::<UnstickDecoder>()
}

/// Places a decoder in `mem` and sets `*decoder` to it: at `mem` itself when `mem` is aligned
/// to `unstick_decoder_align()`, otherwise at the next aligned address, so `mem_len` must cover
/// the padding too (`UNSTICK_DECODER_STORAGE_SIZE` bytes always do).
///
/// `profile` is copied; `format` is `UNSTICK_FORMAT_HEADER` or `UNSTICK_FORMAT_PLAIN`. A decoder
/// needs no destructor: stop using it and reuse its memory.
///
/// # Safety
///
/// `mem` is null or valid for writes of `mem_len` bytes, which no one else uses while the
/// decoder does; `profile` is null or points to an `UnstickProfile`; `decoder` is null or points
/// to a writable `UnstickDecoder *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn unstick_decoder_init(
    mem: *mut c_void,
    mem_len: usize,
    profile: *const UnstickProfile,
    format: UnstickFormat,
    decoder: *mut *mut UnstickDecoder,
) -> UnstickStatus {
    // SAFETY: the caller promises `profile` is null or points to a profile.
    let profile = match unsafe { boundary::reference(profile) } {
        Ok(p) => p,
        Err(status) => return status,
    };
    let (Ok(decoder), false) = (boundary::out_param(decoder), mem.is_null()) else {
        return UnstickStatus::ArgNullPointer;
    };
    let profile = match profile.to_core() {
        Ok(p) => p,
        Err(status) => return status,
    };
    let format = match format {
        UNSTICK_FORMAT_HEADER => Format::Header,
        UNSTICK_FORMAT_PLAIN => Format::Plain,
        _ => return UnstickStatus::ArgFormatInvalid,
    };
    let padding = mem.cast::<u8>().align_offset(align_of::<UnstickDecoder>());
    if padding > mem_len || mem_len - padding < size_of::<UnstickDecoder>() {
        return UnstickStatus::ArgMemoryTooSmall;
    }
    // SAFETY: `padding + size_of::<UnstickDecoder>() <= mem_len` (checked above), so the
    // decoder's place is inside the caller's `mem_len` writable bytes (their promise) and aligned
    // (`align_offset`); `decoder` is not null and the caller promises it is writable.
    unsafe {
        let place = mem.cast::<u8>().add(padding).cast::<UnstickDecoder>();
        place.write(UnstickDecoder(FrameDecoder::new(profile, format)));
        decoder.write(place);
    }
    UnstickStatus::Ok
}

/// Consumes bytes of `input` and reports the next event in `*event`, and in `*consumed` how many
/// bytes it consumed: call again with the rest (`input + *consumed`) and then with new input,
/// until `UNSTICK_EVENT_KIND_NEED_MORE`. A frame's `END` comes from the call after its last body
/// byte, so keep calling, with `len` 0 if there is no more input, while other events come back.
///
/// `input` may be null when `len` is 0. On `UNSTICK_STATUS_DECODE_MD5_MISMATCH` and
/// `..._XXH3_MISMATCH` nothing was consumed and the decoder is at the next frame; on other
/// `DECODE_` statuses the whole input counts as consumed and the decoder needs
/// `unstick_decoder_reset`. On `ARG_` statuses nothing is written.
///
/// # Safety
///
/// `decoder` is null or was set by `unstick_decoder_init`, its memory untouched since, and no
/// other call uses it meanwhile; `input` is null or valid for reads of `len` bytes (not inside
/// the decoder's memory); `consumed` and `event` are null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn unstick_decoder_feed(
    decoder: *mut UnstickDecoder,
    input: *const u8,
    len: usize,
    consumed: *mut usize,
    event: *mut UnstickEvent,
) -> UnstickStatus {
    // SAFETY: the caller promises a decoder that nothing else uses during this call.
    let Some(decoder) = (unsafe { decoder.as_mut() }) else {
        return UnstickStatus::ArgNullPointer;
    };
    // SAFETY: the caller promises `len` readable bytes at `input`, apart from the decoder.
    let input = match unsafe { boundary::input(input, len) } {
        Ok(i) => i,
        Err(status) => return status,
    };
    let (Ok(consumed), Ok(event)) = (boundary::out_param(consumed), boundary::out_param(event))
    else {
        return UnstickStatus::ArgNullPointer;
    };
    let (used, out, status) = decoder.feed(input);
    // SAFETY: both are not null, and the caller promises they are writable.
    unsafe {
        consumed.write(used);
        event.write(out);
    }
    status
}

impl UnstickDecoder {
    /// One step of the core's decoder, as the C side sees it: bytes consumed, the event, the
    /// status.
    fn feed(&mut self, input: &[u8]) -> (usize, UnstickEvent, UnstickStatus) {
        let (used, event) = match self.0.feed(input) {
            Ok(step) => step,
            Err(e) => {
                let used = if e.is_recoverable() { 0 } else { input.len() };
                return (used, NO_EVENT, e.into());
            }
        };
        let out = match event {
            Event::NeedMore => UnstickEvent {
                kind: UnstickEventKind::NeedMore,
                ..NO_EVENT
            },
            Event::Head(info) => {
                let header = self.0.header_json().unwrap_or("");
                UnstickEvent {
                    kind: UnstickEventKind::Head,
                    data: if header.is_empty() {
                        ptr::null()
                    } else {
                        header.as_ptr()
                    },
                    len: header.len(),
                    body_len: info.body_len,
                    ..NO_EVENT
                }
            }
            Event::Body(chunk) => UnstickEvent {
                kind: UnstickEventKind::Body,
                data: chunk.as_ptr(),
                len: chunk.len(),
                ..NO_EVENT
            },
            Event::End(end) => UnstickEvent {
                kind: UnstickEventKind::End,
                body_len: end.body_len,
                md5: end.md5.into(),
                xxh3: end.xxh3.into(),
                ..NO_EVENT
            },
        };
        (used, out, UnstickStatus::Ok)
    }
}

/// Forgets any partial frame and any error: the decoder is ready for a new stream.
///
/// # Safety
///
/// `decoder` is null or was set by `unstick_decoder_init`, its memory untouched since, and no
/// other call uses it meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn unstick_decoder_reset(decoder: *mut UnstickDecoder) -> UnstickStatus {
    // SAFETY: the caller promises a decoder that nothing else uses during this call.
    match unsafe { decoder.as_mut() } {
        Some(decoder) => {
            decoder.0.reset();
            UnstickStatus::Ok
        }
        None => UnstickStatus::ArgNullPointer,
    }
}

/// Whether the stream may end here: `UNSTICK_STATUS_OK` between frames (and after an error),
/// `UNSTICK_STATUS_DECODE_UNEXPECTED_EOF` inside one. With a frame's `END` still to report,
/// feed first.
///
/// # Safety
///
/// `decoder` is null or was set by `unstick_decoder_init`, its memory untouched since, and no
/// call writes it meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn unstick_decoder_check_eof(
    decoder: *const UnstickDecoder,
) -> UnstickStatus {
    // SAFETY: the caller promises a decoder that no call writes meanwhile.
    match unsafe { boundary::reference(decoder) } {
        Ok(decoder) => match decoder.0.check_eof() {
            Ok(()) => UnstickStatus::Ok,
            Err(e) => e.into(),
        },
        Err(status) => status,
    }
}
