//! The checks at the C boundary: raw pointers and lengths into slices and references, or a
//! status saying what was wrong with them.

use crate::status::UnstickStatus;

/// `len` bytes at `ptr` as a slice. An empty input may be a null pointer, as C callers pass it.
///
/// # Safety
///
/// Unless `len` is 0, `ptr` is null or valid for reads of `len` bytes for `'a`, and no one
/// writes them meanwhile.
pub(crate) unsafe fn input<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], UnstickStatus> {
    if is_empty(ptr.is_null(), len)? {
        return Ok(&[]);
    }
    // SAFETY: not null, `len` fits in `isize`, and the caller promises the rest (above).
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// `len` writable bytes at `ptr`, a null pointer allowed for an empty buffer.
///
/// # Safety
///
/// Unless `len` is 0, `ptr` is null or valid for writes of `len` bytes for `'a`, and no one
/// else reads or writes them meanwhile.
pub(crate) unsafe fn output<'a>(ptr: *mut u8, len: usize) -> Result<&'a mut [u8], UnstickStatus> {
    if is_empty(ptr.is_null(), len)? {
        return Ok(&mut []);
    }
    // SAFETY: not null, `len` fits in `isize`, and the caller promises the rest (above).
    Ok(unsafe { core::slice::from_raw_parts_mut(ptr, len) })
}

/// Whether a buffer of `len` bytes is empty (any pointer will do); otherwise checks that its
/// pointer is not null and that `len` fits a slice (at most `isize::MAX`, C's `PTRDIFF_MAX`).
fn is_empty(null: bool, len: usize) -> Result<bool, UnstickStatus> {
    if len == 0 {
        Ok(true)
    } else if null {
        Err(UnstickStatus::ArgNullPointer)
    } else if len > isize::MAX as usize {
        Err(UnstickStatus::ArgLengthInvalid)
    } else {
        Ok(false)
    }
}

/// `ptr` as a reference, or `ArgNullPointer`.
///
/// # Safety
///
/// `ptr` is null or points to a valid, aligned `T` that no one writes for `'a`.
pub(crate) unsafe fn reference<'a, T>(ptr: *const T) -> Result<&'a T, UnstickStatus> {
    // SAFETY: the caller promises that a pointer that is not null points to a valid `T`.
    unsafe { ptr.as_ref() }.ok_or(UnstickStatus::ArgNullPointer)
}

/// Checks that an out-parameter is not null; the caller writes it with `ptr::write`.
pub(crate) fn out_param<T>(ptr: *mut T) -> Result<*mut T, UnstickStatus> {
    if ptr.is_null() {
        Err(UnstickStatus::ArgNullPointer)
    } else {
        Ok(ptr)
    }
}
