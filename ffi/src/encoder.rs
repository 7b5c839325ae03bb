//! The encoders: whole frames into the caller's buffer.

use core::ffi::c_char;

use unstick_core::{Algorithm, EncodeError, HeaderFrameEncoder, Profile, encode_plain_frame};

use crate::boundary;
use crate::profile::UnstickProfile;
use crate::status::UnstickStatus;

/// Which digest of the body `unstick_encode_header_frame` adds to the header, one of the
/// `UNSTICK_DIGEST_*` values.
pub type UnstickDigest = u32;
/// No digest: the header gets `"total_size"` only.
pub const UNSTICK_DIGEST_NONE: UnstickDigest = 0;
/// `"md5"`, 32 hex digits: what the seed's Python scripts send and check.
pub const UNSTICK_DIGEST_MD5: UnstickDigest = 1;
/// `"xxh3"` (XXH3-128), 32 hex digits: what unstick's own encoders add by default.
pub const UNSTICK_DIGEST_XXH3: UnstickDigest = 2;

/// Writes a header frame into `out`: the length prefix, the JSON object `json` (`json_len`
/// bytes, not NUL-terminated; whitespace around it is dropped) with `"total_size"` (the body
/// length) and the `digest` of the body added as its last members, then the body. Sets
/// `*out_len` to the frame's length.
///
/// The JSON is checked as a decoder checks a header, and escapes of non-ASCII characters are
/// written as UTF-8. A header that already has `total_size`, `filesize`, `md5` or `xxh3` is
/// `UNSTICK_STATUS_ENCODE_RESERVED_MEMBER`; a frame longer than `out_cap` is
/// `UNSTICK_STATUS_ENCODE_BUFFER_TOO_SMALL` (a frame takes at most
/// `prefix_width + json_len + 80 + body_len` bytes). `body` may be null when `body_len` is 0.
/// On an error `*out_len` is untouched, and `out` holds no complete frame.
///
/// # Safety
///
/// `profile` is null or points to an `UnstickProfile`; `json` and `body` are null or valid for
/// reads of `json_len` and `body_len` bytes; `out` is null or valid for writes of `out_cap`
/// bytes and overlaps neither; `out_len` is null or writable.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // the C signature: each buffer is a pointer and a length
pub unsafe extern "C" fn unstick_encode_header_frame(
    profile: *const UnstickProfile,
    json: *const c_char,
    json_len: usize,
    body: *const u8,
    body_len: usize,
    digest: UnstickDigest,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> UnstickStatus {
    let checksum = match digest {
        UNSTICK_DIGEST_NONE => None,
        UNSTICK_DIGEST_MD5 => Some(Algorithm::Md5),
        UNSTICK_DIGEST_XXH3 => Some(Algorithm::Xxh3),
        _ => return UnstickStatus::ArgDigestInvalid,
    };
    if json.is_null() {
        return UnstickStatus::ArgNullPointer;
    }
    // SAFETY: the caller's promises for `json`, `body` and `out` (above).
    let buffers = unsafe {
        (
            boundary::input(json.cast::<u8>(), json_len),
            boundary::input(body, body_len),
        )
    };
    let (json, body) = match buffers {
        (Ok(json), Ok(body)) => (json, body),
        (Err(status), _) | (_, Err(status)) => return status,
    };
    // SAFETY: the caller's promises for `profile`, `out` and `out_len` (above).
    unsafe {
        encode(profile, out, out_cap, out_len, |profile, out| {
            HeaderFrameEncoder::new(profile)
                .checksum(checksum)
                .encode_frame_json(json, body, out)
        })
    }
}

/// Writes a plain frame into `out`: the length prefix, then the body. Sets `*out_len` to the
/// frame's length (`prefix_width + body_len`). `body` may be null when `body_len` is 0. On an
/// error `*out_len` is untouched.
///
/// # Safety
///
/// `profile` is null or points to an `UnstickProfile`; `body` is null or valid for reads of
/// `body_len` bytes; `out` is null or valid for writes of `out_cap` bytes and does not overlap
/// `body`; `out_len` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn unstick_encode_plain_frame(
    profile: *const UnstickProfile,
    body: *const u8,
    body_len: usize,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
) -> UnstickStatus {
    // SAFETY: the caller promises `body_len` readable bytes at `body`.
    let body = match unsafe { boundary::input(body, body_len) } {
        Ok(body) => body,
        Err(status) => return status,
    };
    // SAFETY: the caller's promises for `profile`, `out` and `out_len` (above).
    unsafe {
        encode(profile, out, out_cap, out_len, |profile, out| {
            encode_plain_frame(&profile, body, out)
        })
    }
}

/// What both encoders share: the profile and output checks, the call, the status.
///
/// # Safety
///
/// `profile` is null or points to an `UnstickProfile`; `out` is null or valid for writes of
/// `out_cap` bytes that overlap nothing `frame` reads; `out_len` is null or writable.
unsafe fn encode(
    profile: *const UnstickProfile,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
    frame: impl FnOnce(Profile, &mut [u8]) -> Result<usize, EncodeError>,
) -> UnstickStatus {
    // SAFETY: the caller promises `profile` is null or points to a profile.
    let profile = match unsafe { boundary::reference(profile) }.and_then(|p| p.to_core()) {
        Ok(p) => p,
        Err(status) => return status,
    };
    let Ok(out_len) = boundary::out_param(out_len) else {
        return UnstickStatus::ArgNullPointer;
    };
    // SAFETY: the caller promises `out_cap` writable bytes at `out`, overlapping no input.
    let out = match unsafe { boundary::output(out, out_cap) } {
        Ok(out) => out,
        Err(status) => return status,
    };
    match frame(profile, out) {
        Ok(n) => {
            // SAFETY: not null, and the caller promises it is writable.
            unsafe { out_len.write(n) };
            UnstickStatus::Ok
        }
        Err(e) => e.into(),
    }
}
