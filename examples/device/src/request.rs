//! What every request goes through before and around its session, on either board: its head
//! read from the link, routed by its `"op"`, and what the session queues sent. Shared by the
//! Cortex-M4 firmware and the micro:bit's (`examples/microbit` includes this file).

use embedded_io::{Read, ReadReady, Write};
use unstick_core::session::Transmit;
use unstick_core::{Event, FrameDecoder, Profile};

use crate::HEADER_CAP;
use crate::link::{Fill, Link, REQUEST_IDLE, WaitForInput};
use crate::store::Store;
use crate::{files, shell};

/// How a request ended (either way, the device then waits for the next start frame).
pub enum Outcome {
    /// Answered.
    Answered,
    /// The session asked to close (a refusal that leaves the rest of the request unread), or
    /// the request broke off.
    Closed,
}

/// Serves request after request on `link`, each head read into `head` and routed by its op to
/// the shell or the file server over `store`.
pub fn serve_requests<U: Read + ReadReady + Write + WaitForInput>(
    link: &mut Link<'_, U>,
    store: &mut Store<'_>,
    head: &mut [u8],
) -> ! {
    loop {
        link.next_request();
        let outcome = match read_head(link, head) {
            Some(len) => {
                let head = &head[..len];
                match peek(head) {
                    Peek::Exec => shell::serve(link, store, head),
                    Peek::Other { upload_size } => files::serve(link, store, head, upload_size),
                }
            }
            None => Outcome::Closed,
        };
        link.end_request(matches!(outcome, Outcome::Answered));
    }
}

/// Reads a request's head into `head`: the 4-byte prefix and, when its length is one a session
/// takes, the header. Returns its length; `None` when the request broke off inside it.
pub fn read_head<U: Read + ReadReady + Write + WaitForInput>(
    link: &mut Link<'_, U>,
    head: &mut [u8],
) -> Option<usize> {
    let mut len = 0;
    let mut want = 4;
    while len < want {
        let deadline = link.now() + REQUEST_IDLE;
        if !matches!(link.fill_until(Some(deadline)), Fill::Bytes) {
            return None;
        }
        let take = link.unread().len().min(want - len);
        head[len..len + take].copy_from_slice(&link.unread()[..take]);
        link.consume(take);
        len += take;
        if len == 4 && want == 4 {
            let header_len = i32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            match usize::try_from(header_len) {
                // The session refuses an impossible length from the prefix alone.
                Ok(n) if (1..=HEADER_CAP).contains(&n) => want = 4 + n,
                _ => return Some(4),
            }
        }
    }
    Some(len)
}

/// Where a request goes.
pub enum Peek {
    /// `"op":"exec"`: the shell.
    Exec,
    /// Anything else: the file server (which refuses what it does not know), with the size an
    /// upload announced.
    Other { upload_size: u64 },
}

/// Decodes a request's head on its own, to route it. Out of line, as each protocol's `serve`
/// is, so that its decoder is off the stack before a session is on it.
#[inline(never)]
pub fn peek(head: &[u8]) -> Peek {
    let mut decoder = FrameDecoder::<HEADER_CAP>::header_frames(Profile::I32_LE);
    let Ok((_, Event::Head(info))) = decoder.feed(head) else {
        return Peek::Other { upload_size: 0 };
    };
    let body_len = info.body_len;
    // Looked up rather than read into a derived view: one less view's code in the image.
    let Ok([op, offset]) = decoder.members(["op", "offset"]) else {
        return Peek::Other {
            upload_size: body_len,
        };
    };
    if op.str() == Ok(Some("exec")) {
        return Peek::Exec;
    }
    Peek::Other {
        upload_size: body_len.saturating_add(offset.unsigned().ok().flatten().unwrap_or(0)),
    }
}

/// Sends what a session has queued: `poll` is its `poll_transmit`, `body` the body its last
/// `handle_*` call was given. A body shorter than the session announced (a mistake here, not
/// the client's) is not sent cut short: the request is ended unanswered, which the client
/// reports, rather than sending a frame that puts the stream out of step. `poll` is a trait
/// object so that the loop is in the image once, not once per session and call.
#[inline(never)]
pub fn flush<U: Read + ReadReady + Write + WaitForInput>(
    link: &mut Link<'_, U>,
    body: &[u8],
    poll: &mut dyn FnMut(&mut [u8]) -> Option<Transmit>,
) {
    let mut scratch = [0u8; 256];
    while let Some(transmit) = poll(&mut scratch) {
        match transmit.resolve(&scratch, body) {
            Ok(bytes) => link.send(bytes),
            Err(_) => {
                link.end_request(false);
                return;
            }
        }
    }
}
