//! Which frames belong together: a sender numbers its frames and marks where a request (or
//! the reply to one) starts; a receiver takes the frames that follow in order, and notices a
//! frame that went missing.
//!
//! A client marks the first frame of every request [`start`](Header::start) and numbers its
//! frames on from there. A device takes a start frame at any time (the client began afresh:
//! whatever it held of an earlier request is dropped), then each next number; a gap means a
//! frame was lost, so it drops the request and discards frames until the next start. The first
//! frame of its reply is a start frame that carries the number of the request's start frame,
//! so that a client takes no reply of an older request for the one it just sent.

use super::frame::Header;

/// Numbers the frames one side sends.
#[derive(Clone, Copy, Debug)]
pub struct LinkSender {
    next_seq: u8,
    start_next: bool,
}

impl LinkSender {
    /// A sender whose first frame carries `first_seq` (a client picks one that differs from run
    /// to run, such as from the clock, so a device's reply to an earlier client cannot match).
    pub const fn new(first_seq: u8) -> LinkSender {
        LinkSender {
            next_seq: first_seq,
            start_next: false,
        }
    }

    /// Marks the next frame as the start of a request; returns the number it will carry, which
    /// the reply's start frame echoes.
    pub fn start_request(&mut self) -> u8 {
        self.start_next = true;
        self.next_seq
    }

    /// Marks the next frame as the start of the reply to the request whose start frame carried
    /// `seq` (a device): that frame carries `seq`, and the numbers go on from there.
    pub fn answer(&mut self, seq: u8) {
        self.start_next = true;
        self.next_seq = seq;
    }

    /// The header of the next frame, with protocol bytes (`notice: false`) or a notice.
    pub fn next_header(&mut self, notice: bool) -> Header {
        let header = Header {
            start: self.start_next,
            notice,
            seq: self.next_seq,
        };
        self.start_next = false;
        self.next_seq = self.next_seq.wrapping_add(1);
        header
    }
}

/// What a receiver makes of a frame with a matching CRC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    /// A start frame: a new request (or reply) begins with its payload.
    Start,
    /// The next frame in order: its payload follows what came before.
    Next,
    /// A frame that belongs to nothing the receiver is waiting for (the rest of a request
    /// already dropped, a reply to an older request): discarded.
    Stale,
    /// Not the number expected: a frame in between was lost. What the receiver held of the
    /// current request or reply is incomplete; frames are discarded until the next start.
    Gap {
        /// The number expected.
        expected: u8,
        /// The number that came.
        got: u8,
    },
}

/// A device's view of the requests on its line.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestReceiver {
    /// The number of the next frame of the current request; `None` between requests (or after
    /// a loss), when only a start frame is taken.
    expected: Option<u8>,
}

impl RequestReceiver {
    /// A receiver waiting for a start frame.
    pub const fn new() -> RequestReceiver {
        RequestReceiver { expected: None }
    }

    /// Takes the header of a frame whose CRC matched.
    pub fn accept(&mut self, header: Header) -> Accept {
        if header.notice {
            // Notices go from device to client only.
            return Accept::Stale;
        }
        if header.start {
            self.expected = Some(header.seq.wrapping_add(1));
            return Accept::Start;
        }
        match self.expected {
            Some(expected) if expected == header.seq => {
                self.expected = Some(expected.wrapping_add(1));
                Accept::Next
            }
            Some(expected) => {
                self.expected = None;
                Accept::Gap {
                    expected,
                    got: header.seq,
                }
            }
            None => Accept::Stale,
        }
    }

    /// The request is over (answered, refused or dropped): frames other than a start frame are
    /// discarded from here on.
    pub fn end_request(&mut self) {
        self.expected = None;
    }

    /// Whether frames of a request are being taken.
    pub fn in_request(&self) -> bool {
        self.expected.is_some()
    }
}

/// A client's view of the replies on its line.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReplyReceiver {
    awaiting: Awaiting,
}

#[derive(Clone, Copy, Debug, Default)]
enum Awaiting {
    /// No request sent: every frame is stale.
    #[default]
    Nothing,
    /// The start frame of the reply to the request whose start frame carried this number.
    StartOf(u8),
    /// The frame of this number, within a reply.
    Next(u8),
}

impl ReplyReceiver {
    /// A receiver that has sent no request yet.
    pub const fn new() -> ReplyReceiver {
        ReplyReceiver {
            awaiting: Awaiting::Nothing,
        }
    }

    /// A request went out whose start frame carried `seq`: only the reply that echoes it is
    /// taken from here on.
    pub fn expect_reply_to(&mut self, seq: u8) {
        self.awaiting = Awaiting::StartOf(seq);
    }

    /// Takes the header of a frame whose CRC matched.
    pub fn accept(&mut self, header: Header) -> Accept {
        match self.awaiting {
            Awaiting::StartOf(seq) if header.start && header.seq == seq => {
                self.awaiting = Awaiting::Next(seq.wrapping_add(1));
                Accept::Start
            }
            Awaiting::Next(expected) if !header.start => {
                if header.seq == expected {
                    self.awaiting = Awaiting::Next(expected.wrapping_add(1));
                    Accept::Next
                } else {
                    self.awaiting = Awaiting::Nothing;
                    Accept::Gap {
                        expected,
                        got: header.seq,
                    }
                }
            }
            _ => Accept::Stale,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(start: bool, seq: u8) -> Header {
        Header {
            start,
            notice: false,
            seq,
        }
    }

    #[test]
    fn a_device_takes_requests_in_order_and_drops_one_with_a_gap() {
        let mut rx = RequestReceiver::new();
        assert_eq!(rx.accept(header(false, 3)), Accept::Stale);
        assert_eq!(rx.accept(header(true, 255)), Accept::Start);
        assert_eq!(rx.accept(header(false, 0)), Accept::Next);
        assert_eq!(
            rx.accept(header(false, 2)),
            Accept::Gap {
                expected: 1,
                got: 2
            }
        );
        assert_eq!(rx.accept(header(false, 3)), Accept::Stale);
        assert_eq!(rx.accept(header(true, 9)), Accept::Start);
        // A client that starts afresh mid-request is taken at once.
        assert_eq!(rx.accept(header(true, 40)), Accept::Start);
        rx.end_request();
        assert_eq!(rx.accept(header(false, 41)), Accept::Stale);
    }

    #[test]
    fn a_client_takes_only_the_reply_to_its_request() {
        let mut client = LinkSender::new(200);
        let mut device = LinkSender::new(17);
        let mut rx = ReplyReceiver::new();
        assert_eq!(rx.accept(device.next_header(false)), Accept::Stale);
        let seq = client.start_request();
        let sent = client.next_header(false);
        assert_eq!(sent, header(true, 200));
        rx.expect_reply_to(seq);
        // A late reply to something else.
        assert_eq!(rx.accept(header(true, 199)), Accept::Stale);
        device.answer(sent.seq);
        assert_eq!(rx.accept(device.next_header(false)), Accept::Start);
        assert_eq!(rx.accept(device.next_header(false)), Accept::Next);
        device.next_header(false);
        assert_eq!(
            rx.accept(device.next_header(false)),
            Accept::Gap {
                expected: 202,
                got: 203
            }
        );
        assert_eq!(rx.accept(device.next_header(false)), Accept::Stale);
    }
}
