//! Test support shared by the integration tests: decoder events recorded with owned bodies, and
//! hex literals turned into bytes.
#![allow(dead_code)]

use unstick_core::{DecodeError, Digests, Event, FrameDecoder, FrameEnd, FrameInfo};

/// A decoder event with its body chunk copied, so that it outlives the input.
#[derive(Clone, Debug, PartialEq)]
pub enum Recorded {
    Head(FrameInfo),
    Body(Vec<u8>),
    End(FrameEnd),
    /// After an end, what the decoder holds of the frame: the digests its header declared and
    /// those computed over its body (recorded by [`record`] only).
    Digests {
        declared: Digests,
        computed: Digests,
    },
}

/// Feeds `input` until the decoder needs more, recording every event; checks that `NeedMore`
/// comes only with all input consumed.
pub fn record<const CAP: usize>(
    decoder: &mut FrameDecoder<CAP>,
    mut input: &[u8],
    log: &mut Vec<Recorded>,
) -> Result<(), DecodeError> {
    loop {
        let (used, event) = decoder.feed(input)?;
        assert!(used <= input.len());
        input = &input[used..];
        if let Event::Body(chunk) = event {
            assert_eq!(chunk.len(), used);
        }
        match recorded(event) {
            Some(event) => {
                let end = matches!(event, Recorded::End(_));
                log.push(event);
                if end {
                    log.push(Recorded::Digests {
                        declared: *decoder.declared_digests(),
                        computed: *decoder.digests(),
                    });
                }
            }
            None => {
                assert!(input.is_empty(), "NeedMore with {} bytes left", input.len());
                return Ok(());
            }
        }
    }
}

/// The event with its body copied; `None` for `NeedMore`.
pub fn recorded(event: Event<'_>) -> Option<Recorded> {
    match event {
        Event::NeedMore => None,
        Event::Head(info) => Some(Recorded::Head(info)),
        Event::Body(chunk) => Some(Recorded::Body(chunk.to_vec())),
        Event::End(end) => Some(Recorded::End(end)),
    }
}

/// Feeds all of `input` in one piece and returns the events.
pub fn record_all<const CAP: usize>(
    decoder: &mut FrameDecoder<CAP>,
    input: &[u8],
) -> Result<Vec<Recorded>, DecodeError> {
    let mut log = Vec::new();
    record(decoder, input, &mut log)?;
    Ok(log)
}

/// A frame as seen by a receiver: its head, its body put back together, and its end.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    pub info: FrameInfo,
    pub body: Vec<u8>,
    pub end: FrameEnd,
    /// The digests the header declared (`None`s unless recorded by [`record`]).
    pub declared: Digests,
    /// The digests computed over the body (`None`s unless recorded by [`record`]).
    pub computed: Digests,
}

/// Groups recorded events into frames; panics if they do not follow Head, Body*, End.
pub fn frames(log: &[Recorded]) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut current: Option<(FrameInfo, Vec<u8>)> = None;
    for event in log {
        match (event, &mut current) {
            (Recorded::Head(info), None) => current = Some((*info, Vec::new())),
            (Recorded::Body(chunk), Some((_, body))) => body.extend_from_slice(chunk),
            (Recorded::End(end), Some(_)) => {
                let (info, body) = current.take().unwrap();
                out.push(Frame {
                    info,
                    body,
                    end: *end,
                    declared: Digests::default(),
                    computed: Digests::default(),
                });
            }
            (Recorded::Digests { declared, computed }, None) if !out.is_empty() => {
                let last: &mut Frame = out.last_mut().unwrap();
                last.declared = *declared;
                last.computed = *computed;
            }
            (event, _) => panic!("out of order: {event:?} in {log:?}"),
        }
    }
    assert!(current.is_none(), "a frame did not end: {log:?}");
    out
}

/// Bytes from hex digits; whitespace is ignored.
pub fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}
