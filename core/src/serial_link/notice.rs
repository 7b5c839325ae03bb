//! What a device tells a client about the link itself: that it dropped the request in progress
//! because part of it never arrived, so the client need not wait for a reply.

use core::fmt;

/// Why a device dropped a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoticeReason {
    /// A frame of the request was lost or damaged (the next one's number skipped it).
    Gap,
    /// The request's frames stopped coming before it was whole.
    Silence,
}

/// The payload of a notice frame: 1 byte of reason (1: gap, 2: silence), then the count of
/// damaged frames the device has dropped since it started, `u32` little-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Why the request was dropped.
    pub reason: NoticeReason,
    /// Damaged or unreadable frames the device has dropped since it started.
    pub dropped_frames: u32,
}

/// Bytes of a notice's payload.
pub const NOTICE_LEN: usize = 5;

impl Notice {
    /// The payload bytes.
    pub fn encode(&self) -> [u8; NOTICE_LEN] {
        let reason = match self.reason {
            NoticeReason::Gap => 1,
            NoticeReason::Silence => 2,
        };
        let count = self.dropped_frames.to_le_bytes();
        [reason, count[0], count[1], count[2], count[3]]
    }

    /// Reads a notice's payload; `None` when it is not one this version knows.
    pub fn decode(payload: &[u8]) -> Option<Notice> {
        let [reason, a, b, c, d] = *payload else {
            return None;
        };
        let reason = match reason {
            1 => NoticeReason::Gap,
            2 => NoticeReason::Silence,
            _ => return None,
        };
        Some(Notice {
            reason,
            dropped_frames: u32::from_le_bytes([a, b, c, d]),
        })
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            NoticeReason::Gap => f.write_str(
                "the device dropped the request: a link frame of it was lost or damaged on the line",
            )?,
            NoticeReason::Silence => f.write_str(
                "the device dropped the request: its link frames stopped before it was whole",
            )?,
        }
        write!(
            f,
            " ({} damaged frames dropped since the device started); nothing of it was run or \
             committed: retry",
            self.dropped_frames
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip_and_unknown_ones_are_refused() {
        let notice = Notice {
            reason: NoticeReason::Silence,
            dropped_frames: 0x0102_0304,
        };
        assert_eq!(notice.encode(), [2, 4, 3, 2, 1]);
        assert_eq!(Notice::decode(&notice.encode()), Some(notice));
        assert_eq!(Notice::decode(&[3, 0, 0, 0, 0]), None);
        assert_eq!(Notice::decode(&[1, 0, 0, 0]), None);
    }
}
