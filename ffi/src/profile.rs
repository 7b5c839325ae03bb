//! The wire profile as C passes it: prefix width, byte order, body limit.

use unstick_core::{ByteOrder, PrefixWidth, Profile};

use crate::status::UnstickStatus;

/// Byte order of the length prefix, one of the `UNSTICK_BYTE_ORDER_*` values.
pub type UnstickByteOrder = u8;
/// Least significant byte first, as the seed's `struct.pack('i')` on x86 and ARM.
pub const UNSTICK_BYTE_ORDER_LITTLE: UnstickByteOrder = 0;
/// Most significant byte first, "network order" (`struct.pack('!i')`).
pub const UNSTICK_BYTE_ORDER_BIG: UnstickByteOrder = 1;

/// The framing both ends agree on. `unstick_profile_seed()` returns the seed's.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnstickProfile {
    /// Width of the signed length prefix in bytes: 2, 4 or 8.
    pub prefix_width: u8,
    /// Byte order of the prefix, an `UNSTICK_BYTE_ORDER_*` value.
    pub byte_order: UnstickByteOrder,
    /// Largest body a decoder accepts, in bytes (`UINT64_MAX` for no limit); larger declared
    /// lengths are `UNSTICK_STATUS_DECODE_BODY_TOO_LARGE` before any body byte is read.
    pub max_body_len: u64,
}

impl UnstickProfile {
    /// The core's profile, or `ArgProfileInvalid` for a width or byte order out of range.
    pub(crate) fn to_core(self) -> Result<Profile, UnstickStatus> {
        let width = match self.prefix_width {
            2 => PrefixWidth::Two,
            4 => PrefixWidth::Four,
            8 => PrefixWidth::Eight,
            _ => return Err(UnstickStatus::ArgProfileInvalid),
        };
        let order = match self.byte_order {
            UNSTICK_BYTE_ORDER_LITTLE => ByteOrder::Little,
            UNSTICK_BYTE_ORDER_BIG => ByteOrder::Big,
            _ => return Err(UnstickStatus::ArgProfileInvalid),
        };
        Ok(Profile::new(width, order).with_max_body_len(self.max_body_len))
    }
}

/// The seed's profile: a 4-byte little-endian signed prefix, no body limit.
#[unsafe(no_mangle)]
pub extern "C" fn unstick_profile_seed() -> UnstickProfile {
    UnstickProfile {
        prefix_width: 4,
        byte_order: UNSTICK_BYTE_ORDER_LITTLE,
        max_body_len: u64::MAX,
    }
}
