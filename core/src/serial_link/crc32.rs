//! CRC-32 (IEEE 802.3, reflected, initial and final value `0xFFFF_FFFF`): the checksum zlib's
//! `crc32`, Ethernet and `cksum -a crc32b` compute. A link frame carries it over its header and
//! payload.
//!
//! A nibble at a time from a 16-entry table (64 bytes, built at compile time): small enough
//! for a microcontroller's flash, and far faster than any UART.

/// The reflected IEEE polynomial.
const POLYNOMIAL: u32 = 0xEDB8_8320;

const TABLE: [u32; 16] = {
    let mut table = [0u32; 16];
    let mut i = 0;
    while i < 16 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 4 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLYNOMIAL
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// A CRC-32 being computed over bytes that arrive in pieces.
#[derive(Clone, Copy, Debug)]
pub struct Crc32 {
    state: u32,
}

impl Default for Crc32 {
    fn default() -> Self {
        Crc32::new()
    }
}

impl Crc32 {
    /// A CRC over no bytes yet.
    pub const fn new() -> Crc32 {
        Crc32 { state: !0 }
    }

    /// Adds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        let mut crc = self.state;
        for &byte in bytes {
            crc = (crc >> 4) ^ TABLE[((crc ^ u32::from(byte)) & 0xf) as usize];
            crc = (crc >> 4) ^ TABLE[((crc ^ u32::from(byte >> 4)) & 0xf) as usize];
        }
        self.state = crc;
    }

    /// The CRC of the bytes added so far.
    pub const fn value(&self) -> u32 {
        !self.state
    }
}

/// The CRC-32 of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = Crc32::new();
    crc.update(bytes);
    crc.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // The check value of CRC-32/ISO-HDLC, and values zlib.crc32 gives.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"a"), 0xE8B7_BE43);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
        assert_eq!(crc32(&[0u8; 32]), 0x190A_55AD);
    }

    #[test]
    fn pieces_give_the_same_crc_as_the_whole() {
        let text = b"The quick brown fox jumps over the lazy dog";
        for split in 0..=text.len() {
            let mut crc = Crc32::new();
            crc.update(&text[..split]);
            crc.update(&text[split..]);
            assert_eq!(crc.value(), 0x414F_A339, "split at {split}");
        }
    }
}
