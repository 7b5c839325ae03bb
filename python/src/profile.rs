//! Profiles as Python names them: `"seed"`, or a prefix width and byte order such as `"i32-be"`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use unstick_core::{ByteOrder, PrefixWidth, Profile};

/// The names a `profile=` argument takes, in the order an error lists them.
const NAMES: [(&str, PrefixWidth, ByteOrder); 7] = [
    ("seed", PrefixWidth::Four, ByteOrder::Little),
    ("i16-le", PrefixWidth::Two, ByteOrder::Little),
    ("i16-be", PrefixWidth::Two, ByteOrder::Big),
    ("i32-le", PrefixWidth::Four, ByteOrder::Little),
    ("i32-be", PrefixWidth::Four, ByteOrder::Big),
    ("i64-le", PrefixWidth::Eight, ByteOrder::Little),
    ("i64-be", PrefixWidth::Eight, ByteOrder::Big),
];

/// The profile named `name` (the seed's is `struct.pack('i')` on a little-endian machine), with
/// no body limit; a `ValueError` listing the names otherwise.
pub(crate) fn parse(name: &str) -> PyResult<Profile> {
    NAMES
        .iter()
        .find(|(n, ..)| *n == name)
        .map(|&(_, width, order)| Profile::new(width, order))
        .ok_or_else(|| {
            let names: Vec<&str> = NAMES.iter().map(|(n, ..)| *n).collect();
            PyValueError::new_err(format!(
                "unknown profile {name:?}; expected one of {}",
                names.join(", ")
            ))
        })
}

/// Reads a complete prefix (`profile.width.len()` bytes) as the signed length it carries.
pub(crate) fn read_prefix(profile: &Profile, bytes: &[u8]) -> i64 {
    let mut raw = [0u8; 8];
    let n = profile.width.len();
    raw[..n].copy_from_slice(&bytes[..n]);
    if profile.order == ByteOrder::Big {
        raw[..n].reverse();
    }
    match profile.width {
        PrefixWidth::Two => i64::from(i16::from_le_bytes([raw[0], raw[1]])),
        PrefixWidth::Four => i64::from(i32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]])),
        PrefixWidth::Eight => i64::from_le_bytes(raw),
    }
}
