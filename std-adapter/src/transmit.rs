//! Sending what a session hands out, for every std host (both servers, both clients): the
//! bytes it writes into a scratch buffer, gathered, and a body it announces taken from where
//! the host keeps it, written in the same system call as the head before it, so that a frame
//! leaves whole. A body shorter than announced is an error, never a shorter frame.

use std::io::{self, Write};

use unstick_core::session::Transmit;

/// Sends everything a session hands out from `poll` (its `poll_transmit`): the bytes it writes
/// into `scratch`, gathered, and a body announced as [`Transmit::Body`] taken from `body` and
/// written in the same system call as the bytes before it, so that a frame leaves whole.
pub(crate) fn send_transmits(
    socket: &mut impl Write,
    scratch: &mut [u8],
    body: &[u8],
    mut poll: impl FnMut(&mut [u8]) -> Option<Transmit>,
) -> io::Result<()> {
    let mut filled = 0;
    loop {
        match poll(&mut scratch[filled..]) {
            Some(Transmit::Bytes(n)) => {
                filled += n;
                if filled == scratch.len() {
                    socket.write_all(scratch)?;
                    filled = 0;
                }
            }
            Some(transmit @ Transmit::Body(_)) => {
                // A head that promised more than there is would put the stream out of step.
                let body = transmit.resolve(&[], body).map_err(io::Error::other)?;
                if body.len() <= scratch.len() - filled {
                    // A small body (a command) joins its head: the request leaves in one write,
                    // so a server that refuses it and closes is read, not met by a broken pipe.
                    scratch[filled..filled + body.len()].copy_from_slice(body);
                    filled += body.len();
                    if filled == scratch.len() {
                        socket.write_all(scratch)?;
                        filled = 0;
                    }
                } else {
                    write_both(socket, &scratch[..filled], body)?;
                    filled = 0;
                }
            }
            None => return socket.write_all(&scratch[..filled]),
        }
    }
}

/// Writes `head` then `body` with as few system calls as the socket takes.
fn write_both(socket: &mut impl Write, mut head: &[u8], mut body: &[u8]) -> io::Result<()> {
    while !head.is_empty() {
        let n = match socket.write_vectored(&[io::IoSlice::new(head), io::IoSlice::new(body)]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let from_head = n.min(head.len());
        head = &head[from_head..];
        body = &body[n - from_head..];
    }
    socket.write_all(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session stand-in: hands out `head` (in pieces of at most the buffer given), then
    /// announces a body of `body_len` bytes.
    fn transmits(head: &[u8], body_len: usize) -> impl FnMut(&mut [u8]) -> Option<Transmit> {
        let head = head.to_vec();
        let mut sent = 0;
        let mut body_announced = false;
        move |buf| {
            if sent < head.len() {
                let n = buf.len().min(head.len() - sent);
                buf[..n].copy_from_slice(&head[sent..sent + n]);
                sent += n;
                Some(Transmit::Bytes(n))
            } else if !body_announced && body_len > 0 {
                body_announced = true;
                Some(Transmit::Body(body_len))
            } else {
                None
            }
        }
    }

    #[test]
    fn a_head_larger_than_the_scratch_buffer_and_its_body_leave_in_order() {
        let head: Vec<u8> = (0..100u8).collect();
        let mut out = Vec::new();
        let mut scratch = [0u8; 16];
        send_transmits(&mut out, &mut scratch, b"the body", transmits(&head, 8)).unwrap();
        assert_eq!(out, [&head[..], b"the body"].concat());
    }

    #[test]
    fn a_body_shorter_than_announced_is_an_error_and_nothing_of_it_is_sent() {
        let mut out = Vec::new();
        let mut scratch = [0u8; 64];
        let sent = send_transmits(&mut out, &mut scratch, b"short", transmits(b"head", 9));
        let e = sent.unwrap_err();
        assert!(e.to_string().contains("announced a body of 9 bytes"), "{e}");
        assert!(!out.ends_with(b"short"), "{out:?}");
    }
}
