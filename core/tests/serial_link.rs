//! Properties of the serial link layer: whatever garbage comes before, however the bytes are
//! split, and whatever bytes are flipped, lost or added, a receiver never hands out a payload
//! that was not sent, nor frames of a request out of order or with one missing.

use proptest::prelude::*;
use unstick_core::serial_link::{
    Accept, Header, LinkEvent, LinkFrameReader, LinkSender, MAX_ENCODED, MAX_FRAME, MTU,
    RequestReceiver, encode_frame,
};

/// A request's pieces as frames on the line, and the headers they went with.
fn frames(first_seq: u8, pieces: &[Vec<u8>]) -> (Vec<u8>, Vec<(Header, Vec<u8>)>) {
    let mut sender = LinkSender::new(first_seq);
    sender.start_request();
    let mut line = Vec::new();
    let mut sent = Vec::new();
    for piece in pieces {
        let header = sender.next_header(false);
        let mut out = [0u8; MAX_ENCODED];
        let n = encode_frame(header, piece, &mut out).unwrap();
        line.extend_from_slice(&out[..n]);
        sent.push((header, piece.clone()));
    }
    (line, sent)
}

/// Feeds `line` in pieces cut at `cuts`; the frames found, and how many drops.
fn receive(line: &[u8], cuts: &[usize]) -> (Vec<(Header, Vec<u8>)>, usize) {
    let mut reader = LinkFrameReader::<MAX_FRAME>::new();
    let mut found = Vec::new();
    let mut dropped = 0;
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (line.len() + 1)).collect();
    bounds.push(0);
    bounds.push(line.len());
    bounds.sort_unstable();
    for window in bounds.windows(2) {
        let mut input = &line[window[0]..window[1]];
        while !input.is_empty() {
            let (used, event) = reader.feed(input);
            assert!(used > 0 && used <= input.len());
            input = &input[used..];
            match event {
                Some(LinkEvent::Frame(frame)) => {
                    found.push((frame.header, frame.payload.to_vec()));
                }
                Some(LinkEvent::Dropped(_)) => dropped += 1,
                None => {}
            }
        }
    }
    (found, dropped)
}

fn pieces() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..40),
            prop::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 0..600),
            prop::collection::vec(any::<u8>(), MTU - 2..=MTU),
        ],
        1..6,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_garbage_then_any_split_still_yields_every_frame(
        garbage in prop::collection::vec(any::<u8>(), 0..2000),
        pieces in pieces(),
        seq in any::<u8>(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let (frames, sent) = frames(seq, &pieces);
        let mut line = garbage.clone();
        line.extend_from_slice(&frames);
        let (found, _) = receive(&line, &cuts);
        // The garbage may (by chance) hold a valid frame only if it holds a CRC-checked one; a
        // random one never does in practice, so every sent frame comes out, in order, last.
        prop_assert!(found.len() >= sent.len());
        prop_assert_eq!(&found[found.len() - sent.len()..], &sent[..]);
    }

    #[test]
    fn damage_never_yields_a_wrong_payload_or_a_request_with_a_hole(
        pieces in pieces(),
        seq in any::<u8>(),
        damage in prop::collection::vec((any::<usize>(), 0u8..3, 1u8..=255), 1..8),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let (mut line, sent) = frames(seq, &pieces);
        for (at, kind, value) in damage {
            let at = at % line.len();
            match kind {
                0 => line[at] ^= value,
                1 => { line.remove(at); }
                _ => line.insert(at, value),
            }
            if line.is_empty() {
                break;
            }
        }
        let (found, _) = receive(&line, &cuts);
        // Every frame found is one that was sent.
        for frame in &found {
            prop_assert!(sent.contains(frame), "a frame that was never sent: {:?}", frame);
        }
        // And what a device takes as the request is the sent request's first frames, in
        // order, with none missing.
        let mut receiver = RequestReceiver::new();
        let mut taken = Vec::new();
        for (header, payload) in &found {
            match receiver.accept(*header) {
                Accept::Start => taken = vec![payload.clone()],
                Accept::Next => taken.push(payload.clone()),
                Accept::Gap { .. } => taken.clear(),
                Accept::Stale => {}
            }
        }
        let expected: Vec<Vec<u8>> = sent.iter().take(taken.len()).map(|(_, p)| p.clone()).collect();
        prop_assert_eq!(taken, expected);
    }
}

#[test]
fn a_stream_of_zeros_and_ones_is_never_a_frame() {
    let line: Vec<u8> = (0..5000).map(|i| (i % 3 == 0) as u8).collect();
    let (found, dropped) = receive(&line, &[]);
    assert!(found.is_empty());
    assert!(dropped > 0);
}
